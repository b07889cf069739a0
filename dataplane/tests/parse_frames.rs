//! Hand-built frames for the cases the parser must get exactly right:
//! padding, options, fragments, extension header chains, QinQ, non-IP,
//! every error, `mark_ce` on both families, and the flow hash.

use weir_dataplane::packet::flags;
use weir_dataplane::parse::{
    mark_ce, parse_frame, Fragment, HeaderKind, IpVersion, ParseError, L4,
    MAX_IPV6_EXTENSION_HEADERS,
};
use weir_testkit::frame::{self, checksum, tcp, udp, Ipv4, Ipv6, MAC_A, MAC_B};

fn eth(ethertype: u16) -> Vec<u8> {
    frame::eth(MAC_B, MAC_A, ethertype)
}

fn vlan_tag(f: &mut Vec<u8>, tpid_of_tag: u16, vid: u16, next: u16) {
    // `f` ends with the EtherType that announces this tag.
    let n = f.len();
    f[n - 2..].copy_from_slice(&tpid_of_tag.to_be_bytes());
    f.extend_from_slice(&(0xe000 | vid).to_be_bytes()); // PCP 7 must be masked off
    f.extend_from_slice(&next.to_be_bytes());
}

/// IPv4 header with `options` bytes, `payload` after it, checksum filled in.
fn ipv4(tos: u8, proto: u8, frag: u16, options: &[u8], payload: &[u8]) -> Vec<u8> {
    let ip = Ipv4 {
        tos,
        id: 0x1234,
        frag,
        protocol: proto,
        options: options.to_vec(),
        ..Ipv4::default()
    };
    ip.packet(payload)
}

fn ipv6(tc: u8, next: u8, payload: &[u8]) -> Vec<u8> {
    let ip = Ipv6 {
        traffic_class: tc,
        flow_label: 0xabcde, // must not leak into the class
        next_header: next,
        ..Ipv6::default()
    };
    ip.packet(payload)
}

fn frame(ethertype: u16, l3: &[u8]) -> Vec<u8> {
    let mut f = eth(ethertype);
    f.extend_from_slice(l3);
    f
}

#[test]
fn ipv4_udp_with_ethernet_padding() {
    // 60-byte minimum frame: 14 + 20 + 8 + 2 data = 44, then 16 bytes of pad
    // that look like a UDP header if read wrongly.
    let mut f = frame(0x0800, &ipv4(0x2e, 17, 0, &[], &udp(5000, 53, &[1, 2])));
    f.extend_from_slice(&[0xff; 16]);
    let h = parse_frame(&f).expect("valid");
    let ip = h.ip.expect("ip");
    assert_eq!(ip.version, IpVersion::V4);
    assert_eq!(ip.src, 0xffff_c612_0001);
    assert_eq!(ip.dst, 0xffff_c613_0002);
    assert_eq!(ip.protocol, 17);
    assert_eq!(ip.tos, 0x2e);
    assert_eq!(h.ports(), Some((5000, 53)));
    assert_eq!(ip.l4_offset, 34);
    assert_eq!(h.packet_flags(), flags::IPV4 | flags::ECT);
}

#[test]
fn padding_never_supplies_a_missing_l4_header() {
    // total length covers only 4 bytes of UDP: the pad must not complete it.
    let mut l3 = ipv4(0, 17, 0, &[], &[0, 80, 0, 81]);
    l3.extend_from_slice(&[0; 20]);
    let f = frame(0x0800, &l3);
    assert_eq!(
        parse_frame(&f),
        Err(ParseError::Truncated {
            what: HeaderKind::Udp
        })
    );
}

#[test]
fn ipv4_options_move_the_l4_header() {
    let opts = [1u8; 40]; // IHL 15
    let f = frame(0x0800, &ipv4(0, 6, 0, &opts, &tcp(443, 50000, 5)));
    let h = parse_frame(&f).expect("valid");
    assert_eq!(h.ip.expect("ip").l4_offset, 14 + 60);
    assert_eq!(h.ports(), Some((443, 50000)));
}

#[test]
fn ipv4_fragments() {
    let first = frame(0x0800, &ipv4(0, 17, 0x2000, &[], &udp(1, 2, &[0; 8])));
    let h = parse_frame(&first).expect("first fragment");
    assert_eq!(h.ip.expect("ip").fragment, Fragment::First);
    assert_eq!(h.ports(), Some((1, 2)), "first fragments carry ports");

    // A later fragment whose payload happens to look like a UDP header.
    for frag in [0x0001u16, 0x2001, 0x1fff] {
        let later = frame(0x0800, &ipv4(0, 17, frag, &[], &udp(1, 2, &[0; 8])));
        let h = parse_frame(&later).expect("later fragment");
        let ip = h.ip.expect("ip");
        assert_eq!(ip.fragment, Fragment::Later);
        assert_eq!(ip.protocol, 17);
        assert_eq!(ip.l4, L4::None);
        assert_eq!(h.ports(), None);
    }

    // DF alone is not a fragment.
    let df = frame(0x0800, &ipv4(0, 17, 0x4000, &[], &udp(1, 2, &[])));
    assert_eq!(
        parse_frame(&df).expect("df").ip.expect("ip").fragment,
        Fragment::None
    );
}

#[test]
fn fragments_hash_alike_so_they_stay_in_one_flow() {
    let first = frame(0x0800, &ipv4(0, 17, 0x2000, &[], &udp(1, 2, &[0; 8])));
    let later = frame(0x0800, &ipv4(0, 17, 0x0003, &[], &[0; 16]));
    let a = parse_frame(&first).expect("first");
    let b = parse_frame(&later).expect("later");
    assert_eq!(a.flow_hash(), b.flow_hash());
}

#[test]
fn flow_hash_separates_flows_and_is_stable() {
    let mut seen = std::collections::HashSet::new();
    for sport in 0..2000u16 {
        let f = frame(0x0800, &ipv4(0, 17, 0, &[], &udp(sport, 53, &[])));
        let h = parse_frame(&f).expect("valid");
        assert_eq!(h.flow_hash(), parse_frame(&f).expect("valid").flow_hash());
        seen.insert(h.flow_hash());
        // The ECN / DSCP byte is not part of the flow.
        let g = frame(0x0800, &ipv4(0xb9, 17, 0, &[], &udp(sport, 53, &[])));
        assert_eq!(parse_frame(&g).expect("valid").flow_hash(), h.flow_hash());
    }
    // 2000 flows into 2^32: any collision would point at a weak mixer.
    assert_eq!(seen.len(), 2000);
    // Buckets of a 1024-way table are used evenly enough (no bucket gets
    // more than 4x its share), even without perturbation.
    let mut buckets = vec![0u32; 64];
    for dst in 0..6400u32 {
        let mut l3 = ipv4(0, 6, 0, &[], &tcp(40000, 443, 5));
        l3[16..20].copy_from_slice(&(0xc612_0000 | dst).to_be_bytes());
        let h = parse_frame(&frame(0x0800, &l3)).expect("valid");
        buckets[(h.flow_hash() % 64) as usize] += 1;
    }
    assert!(buckets.iter().all(|&n| n < 400), "{buckets:?}");
}

#[test]
fn ipv6_traffic_class_and_ports() {
    let f = frame(0x86dd, &ipv6(0xb9, 17, &udp(4000, 443, &[])));
    let h = parse_frame(&f).expect("valid");
    let ip = h.ip.expect("ip");
    assert_eq!(ip.version, IpVersion::V6);
    assert_eq!(ip.tos, 0xb9);
    assert_eq!(ip.src, 0x2001_0db8_0000_0000_0000_0000_0000_0001);
    assert_eq!(h.ports(), Some((4000, 443)));
    assert_eq!(h.packet_flags(), flags::IPV6 | flags::ECT);
}

/// An extension header of `len` bytes (a multiple of 8) announcing `next`.
fn ext(next: u8, len: usize) -> Vec<u8> {
    let mut e = vec![0u8; len];
    e[0] = next;
    e[1] = (len / 8 - 1) as u8;
    e
}

#[test]
fn ipv6_extension_chain() {
    // hop-by-hop → routing → dest opts → AH → UDP
    let mut payload = ext(43, 8);
    payload.extend(ext(60, 24));
    payload.extend(ext(51, 16));
    let mut ah = vec![17u8, 4, 0, 0]; // (4 + 2) * 4 = 24 bytes
    ah.extend_from_slice(&[0; 20]);
    payload.extend(ah);
    payload.extend(udp(7, 9, &[]));
    let f = frame(0x86dd, &ipv6(0, 0, &payload));
    let h = parse_frame(&f).expect("valid");
    let ip = h.ip.expect("ip");
    assert_eq!(ip.protocol, 17);
    assert_eq!(usize::from(ip.l4_offset), 14 + 40 + 8 + 24 + 16 + 24);
    assert_eq!(h.ports(), Some((7, 9)));
}

#[test]
fn ipv6_stops_at_esp_and_no_next_header() {
    for stop in [50u8, 59, 47] {
        let mut payload = ext(stop, 8);
        payload.extend_from_slice(&[0xaa; 16]);
        let f = frame(0x86dd, &ipv6(0, 60, &payload));
        let h = parse_frame(&f).expect("valid");
        let ip = h.ip.expect("ip");
        assert_eq!(ip.protocol, stop);
        assert_eq!(ip.l4, L4::None);
        assert_eq!(usize::from(ip.l4_offset), 14 + 40 + 8);
    }
}

fn frag_hdr(next: u8, offset: u16, more: bool) -> Vec<u8> {
    let word = (offset << 3) | u16::from(more);
    let mut e = vec![next, 0];
    e.extend_from_slice(&word.to_be_bytes());
    e.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    e
}

#[test]
fn ipv6_fragments() {
    let mut first = frag_hdr(17, 0, true);
    first.extend(udp(1, 2, &[0; 8]));
    let h = parse_frame(&frame(0x86dd, &ipv6(0, 44, &first))).expect("first");
    assert_eq!(h.ip.expect("ip").fragment, Fragment::First);
    assert_eq!(h.ports(), Some((1, 2)));

    let mut later = frag_hdr(17, 185, false);
    later.extend(udp(1, 2, &[0; 8]));
    let h = parse_frame(&frame(0x86dd, &ipv6(0, 44, &later))).expect("later");
    let ip = h.ip.expect("ip");
    assert_eq!(ip.fragment, Fragment::Later);
    assert_eq!(ip.protocol, 17);
    assert_eq!(h.ports(), None);

    // Atomic fragment: offset 0, no more fragments — a whole datagram.
    let mut atomic = frag_hdr(6, 0, false);
    atomic.extend(tcp(22, 1022, 5));
    let h = parse_frame(&frame(0x86dd, &ipv6(0, 44, &atomic))).expect("atomic");
    assert_eq!(h.ip.expect("ip").fragment, Fragment::None);
    assert_eq!(h.ports(), Some((22, 1022)));
}

#[test]
fn ipv6_extension_walk_is_bounded() {
    let build = |n: usize| {
        let mut payload = Vec::new();
        for i in 0..n {
            payload.extend(ext(if i + 1 == n { 17 } else { 60 }, 8));
        }
        payload.extend(udp(1, 2, &[]));
        frame(0x86dd, &ipv6(0, 60, &payload))
    };
    let h = parse_frame(&build(MAX_IPV6_EXTENSION_HEADERS)).expect("at the bound");
    assert_eq!(h.ports(), Some((1, 2)));
    assert_eq!(
        parse_frame(&build(MAX_IPV6_EXTENSION_HEADERS + 1)),
        Err(ParseError::TooManyExtensionHeaders)
    );
}

#[test]
fn vlan_tags() {
    // Single 802.1Q.
    let mut f = eth(0x8100);
    vlan_tag(&mut f, 0x8100, 100, 0x0800);
    f.extend(ipv4(0, 17, 0, &[], &udp(1, 2, &[])));
    let h = parse_frame(&f).expect("valid");
    assert_eq!((h.outer_vlan, h.inner_vlan), (Some(100), None));
    assert_eq!(h.ethertype, 0x0800);
    assert_eq!(h.l3_offset, 18);
    assert_eq!(h.ports(), Some((1, 2)));

    // QinQ with each outer TPID.
    for outer in [0x88a8u16, 0x9100, 0x8100] {
        let mut f = eth(outer);
        vlan_tag(&mut f, outer, 4095, 0x8100);
        vlan_tag(&mut f, 0x8100, 7, 0x86dd);
        f.extend(ipv6(0, 17, &udp(1, 2, &[])));
        let h = parse_frame(&f).expect("valid");
        assert_eq!((h.outer_vlan, h.inner_vlan), (Some(4095), Some(7)));
        assert_eq!(h.ethertype, 0x86dd);
        assert_eq!(h.l3_offset, 22);
        assert!(h.ip.is_some());
    }

    // A third tag is not looked into: non-IP, not an error.
    let mut f = eth(0x88a8);
    vlan_tag(&mut f, 0x88a8, 1, 0x8100);
    vlan_tag(&mut f, 0x8100, 2, 0x8100);
    f.extend_from_slice(&[0, 3, 0x08, 0x00]);
    f.extend(ipv4(0, 17, 0, &[], &udp(1, 2, &[])));
    let h = parse_frame(&f).expect("valid");
    assert_eq!(h.ethertype, 0x8100);
    assert_eq!(h.ip, None);

    // A tag cut short is an error.
    let mut f = eth(0x8100);
    f.extend_from_slice(&[0, 5]);
    assert_eq!(
        parse_frame(&f),
        Err(ParseError::Truncated {
            what: HeaderKind::Vlan
        })
    );
}

#[test]
fn non_ip_frames_parse() {
    let mut arp = eth(0x0806);
    arp.extend_from_slice(&[0; 28]);
    let h = parse_frame(&arp).expect("arp");
    assert_eq!(h.ethertype, 0x0806);
    assert_eq!(h.ip, None);
    assert_eq!(h.flow_hash(), 0);
    assert_eq!(h.packet_flags(), 0);
    assert_eq!(h.ports(), None);

    // LLDP with nothing after the header is still a frame.
    let h = parse_frame(&eth(0x88cc)).expect("lldp");
    assert_eq!(h.l3_offset, 14);
}

#[test]
fn errors_name_what_was_wrong() {
    assert_eq!(
        parse_frame(&[0; 13]),
        Err(ParseError::Truncated {
            what: HeaderKind::Ethernet
        })
    );
    let good = ipv4(0, 17, 0, &[], &udp(1, 2, &[]));
    assert_eq!(
        parse_frame(&frame(0x0800, &good[..19])),
        Err(ParseError::Truncated {
            what: HeaderKind::Ipv4
        })
    );
    let mut v = good.clone();
    v[0] = 0x65;
    assert_eq!(
        parse_frame(&frame(0x0800, &v)),
        Err(ParseError::BadIpVersion { found: 6 })
    );
    let mut v = good.clone();
    v[0] = 0x44;
    assert_eq!(
        parse_frame(&frame(0x0800, &v)),
        Err(ParseError::BadIhl { ihl: 4 })
    );
    let mut v = good.clone();
    v[2..4].copy_from_slice(&19u16.to_be_bytes());
    assert_eq!(
        parse_frame(&frame(0x0800, &v)),
        Err(ParseError::BadTotalLength { total_length: 19 })
    );
    let mut v = good.clone();
    v[2..4].copy_from_slice(&29u16.to_be_bytes());
    assert_eq!(
        parse_frame(&frame(0x0800, &v)),
        Err(ParseError::Truncated {
            what: HeaderKind::Ipv4Payload
        })
    );
    // IHL 15 but only a 20-byte header present.
    let mut v = good[..20].to_vec();
    v[0] = 0x4f;
    v[2..4].copy_from_slice(&60u16.to_be_bytes());
    assert_eq!(
        parse_frame(&frame(0x0800, &v)),
        Err(ParseError::Truncated {
            what: HeaderKind::Ipv4Payload
        })
    );
    assert_eq!(
        parse_frame(&frame(0x0800, &ipv4(0, 6, 0, &[], &tcp(1, 2, 4)))),
        Err(ParseError::BadTcpDataOffset { data_offset: 4 })
    );
    let mut t = tcp(1, 2, 5);
    t[12] = 8 << 4; // says 32 bytes, has 20
    assert_eq!(
        parse_frame(&frame(0x0800, &ipv4(0, 6, 0, &[], &t))),
        Err(ParseError::Truncated {
            what: HeaderKind::Tcp
        })
    );
    assert_eq!(
        parse_frame(&frame(0x0800, &ipv4(0, 1, 0, &[], &[8, 0, 0, 0]))),
        Err(ParseError::Truncated {
            what: HeaderKind::Icmp
        })
    );
    let six = ipv6(0, 17, &udp(1, 2, &[]));
    assert_eq!(
        parse_frame(&frame(0x86dd, &six[..39])),
        Err(ParseError::Truncated {
            what: HeaderKind::Ipv6
        })
    );
    assert_eq!(
        parse_frame(&frame(0x86dd, &six[..47])),
        Err(ParseError::Truncated {
            what: HeaderKind::Ipv6Payload
        })
    );
    let mut v = six.clone();
    v[0] = 0x40;
    assert_eq!(
        parse_frame(&frame(0x86dd, &v)),
        Err(ParseError::BadIpVersion { found: 4 })
    );
    // An extension header longer than the payload.
    let mut payload = ext(17, 8);
    payload[1] = 3;
    assert_eq!(
        parse_frame(&frame(0x86dd, &ipv6(0, 0, &payload))),
        Err(ParseError::Truncated {
            what: HeaderKind::Ipv6Extension
        })
    );
    // Errors print what failed.
    let msg = ParseError::Truncated {
        what: HeaderKind::Tcp,
    }
    .to_string();
    assert!(msg.contains("tcp"), "{msg}");
}

#[test]
fn icmp_type_and_code() {
    let f = frame(0x0800, &ipv4(0, 1, 0, &[], &[3, 4, 0, 0, 0, 0, 5, 0xdc]));
    let h = parse_frame(&f).expect("valid");
    assert_eq!(h.icmp(), Some((3, 4)));
    assert_eq!(h.ports(), None);
    let f = frame(0x86dd, &ipv6(0, 58, &[128, 0, 0, 0, 0, 1, 0, 1]));
    assert_eq!(parse_frame(&f).expect("valid").icmp(), Some((128, 0)));
}

#[test]
fn sctp_and_udp_lite_ports() {
    let mut sctp = vec![0u8; 12];
    sctp[0..4].copy_from_slice(&[0x0b, 0x59, 0x0b, 0x5a]);
    let h = parse_frame(&frame(0x0800, &ipv4(0, 132, 0, &[], &sctp))).expect("sctp");
    assert_eq!(h.ports(), Some((2905, 2906)));
    let h = parse_frame(&frame(0x86dd, &ipv6(0, 136, &udp(9, 10, &[])))).expect("udplite");
    assert_eq!(h.ports(), Some((9, 10)));
}

#[test]
fn mark_ce_ipv4_fixes_the_checksum() {
    for ecn in [1u8, 2] {
        for tos in [0x00u8, 0xb8, 0xfc, 0x04] {
            let opts = [0x01u8; 8];
            let mut f = frame(0x0800, &ipv4(tos | ecn, 17, 0, &opts, &udp(1, 2, &[])));
            assert!(mark_ce(&mut f, 14));
            let ip = &f[14..14 + 28];
            assert_eq!(ip[1], tos | 3);
            assert_eq!(checksum(ip), 0, "header must still sum to 0xffff");
            let h = parse_frame(&f).expect("valid");
            assert_eq!(h.packet_flags(), flags::IPV4 | flags::CE);
        }
    }
}

#[test]
fn mark_ce_leaves_non_ect_and_ce_alone() {
    let mut f = frame(0x0800, &ipv4(0xb8, 17, 0, &[], &udp(1, 2, &[])));
    let before = f.clone();
    assert!(!mark_ce(&mut f, 14), "not-ECT must be dropped, not marked");
    assert_eq!(f, before);

    let mut f = frame(0x0800, &ipv4(0xbb, 17, 0, &[], &udp(1, 2, &[])));
    let before = f.clone();
    assert!(mark_ce(&mut f, 14), "already CE counts as marked");
    assert_eq!(f, before);

    // Not IP at the offset, or out of range.
    let mut arp = eth(0x0806);
    arp.extend_from_slice(&[0; 28]);
    assert!(!mark_ce(&mut arp, 14));
    assert!(!mark_ce(&mut arp, 1000));
    let mut short = frame(0x0800, &ipv4(0x01, 17, 0, &[], &[])[..19]);
    assert!(!mark_ce(&mut short, 14));
}

#[test]
fn mark_ce_ipv6() {
    for tc in [0x01u8, 0x02, 0xb9, 0xfe] {
        let mut f = frame(0x86dd, &ipv6(tc, 17, &udp(1, 2, &[])));
        let before = f.clone();
        assert!(mark_ce(&mut f, 14));
        let h = parse_frame(&f).expect("valid");
        assert_eq!(h.ip.expect("ip").tos, tc | 3);
        // Only byte 1 changed, and the flow label nibble survived.
        let diff: Vec<usize> = (0..f.len()).filter(|&i| f[i] != before[i]).collect();
        assert_eq!(diff, vec![15]);
        assert_eq!(f[15] & 0x0f, 0x0a);
    }
    let mut f = frame(0x86dd, &ipv6(0xb8, 17, &udp(1, 2, &[])));
    assert!(!mark_ce(&mut f, 14));
}
