//! Differential tests of `parse_frame` against etherparse, on random valid
//! frames built with `etherparse::PacketBuilder` (VLAN / QinQ, IPv4 with
//! options and fragments, IPv6 with extension headers, TCP / UDP / ICMP),
//! plus: mutated and truncated valid frames never panic, and `mark_ce`
//! leaves a header whose checksum etherparse recomputes to the same value.

use etherparse::{
    IpAuthHeader, IpFragOffset, IpHeaders, IpNumber, Ipv4Dscp, Ipv4Ecn, Ipv4Header, Ipv4Options,
    Ipv6Extensions, Ipv6FragmentHeader, Ipv6Header, Ipv6RawExtHeader, Ipv6RoutingExtensions,
    NetSlice, PacketBuilder, SlicedPacket, TransportSlice, VlanSlice,
};
use proptest::prelude::*;
use weir_dataplane::packet::flags;
use weir_dataplane::parse::{mark_ce, parse_frame, Fragment, IpVersion, L4};

#[derive(Clone, Debug)]
enum Vlans {
    None,
    One(u16),
    Two(u16, u16),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Frag {
    None,
    First,
    /// Offset in 8-byte units, > 0; `more` fragments follow or not.
    Later(u16, bool),
}

#[derive(Clone, Debug)]
enum Transport {
    Udp(u16, u16),
    /// Ports and TCP option words (0..=10).
    Tcp(u16, u16, usize),
    Icmp(u8, u8),
}

#[derive(Clone, Debug)]
struct V4 {
    src: [u8; 4],
    dst: [u8; 4],
    dscp: u8,
    ecn: u8,
    option_words: usize,
    frag: Frag,
}

#[derive(Clone, Debug)]
struct V6 {
    src: [u8; 16],
    dst: [u8; 16],
    traffic_class: u8,
    /// Extension header sizes in 8-byte units beyond the first 8.
    hop_by_hop: Option<usize>,
    dest_options: Option<usize>,
    routing: Option<usize>,
    frag: Option<Frag>,
    /// AH ICV size in 4-byte words.
    auth: Option<usize>,
}

#[derive(Clone, Debug)]
enum Ip {
    V4(V4),
    V6(V6),
}

#[derive(Clone, Debug)]
struct Spec {
    vlans: Vlans,
    ip: Ip,
    transport: Transport,
    payload: Vec<u8>,
    /// Trailing bytes after the IP packet (Ethernet padding).
    padding: Vec<u8>,
}

fn vlans() -> impl Strategy<Value = Vlans> {
    prop_oneof![
        Just(Vlans::None),
        (0u16..4096).prop_map(Vlans::One),
        (0u16..4096, 0u16..4096).prop_map(|(o, i)| Vlans::Two(o, i)),
    ]
}

fn frag() -> impl Strategy<Value = Frag> {
    prop_oneof![
        3 => Just(Frag::None),
        1 => Just(Frag::First),
        1 => (1u16..0x2000, any::<bool>()).prop_map(|(o, m)| Frag::Later(o, m)),
    ]
}

fn v4() -> impl Strategy<Value = V4> {
    (
        any::<[u8; 4]>(),
        any::<[u8; 4]>(),
        0u8..64,
        0u8..4,
        0usize..=10,
        frag(),
    )
        .prop_map(|(src, dst, dscp, ecn, option_words, frag)| V4 {
            src,
            dst,
            dscp,
            ecn,
            option_words,
            frag,
        })
}

fn v6() -> impl Strategy<Value = V6> {
    (
        any::<[u8; 16]>(),
        any::<[u8; 16]>(),
        any::<u8>(),
        proptest::option::of(0usize..3),
        proptest::option::of(0usize..3),
        proptest::option::of(0usize..3),
        proptest::option::weighted(0.4, frag()),
        proptest::option::weighted(0.3, 0usize..4),
    )
        .prop_map(
            |(src, dst, traffic_class, hop_by_hop, dest_options, routing, frag, auth)| V6 {
                src,
                dst,
                traffic_class,
                hop_by_hop,
                dest_options,
                routing,
                frag,
                auth,
            },
        )
}

fn transport() -> impl Strategy<Value = Transport> {
    prop_oneof![
        (any::<u16>(), any::<u16>()).prop_map(|(s, d)| Transport::Udp(s, d)),
        (any::<u16>(), any::<u16>(), 0usize..=10).prop_map(|(s, d, o)| Transport::Tcp(s, d, o)),
        (any::<u8>(), any::<u8>()).prop_map(|(t, c)| Transport::Icmp(t, c)),
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        vlans(),
        prop_oneof![v4().prop_map(Ip::V4), v6().prop_map(Ip::V6)],
        transport(),
        proptest::collection::vec(any::<u8>(), 0..64),
        proptest::collection::vec(any::<u8>(), 0..24),
    )
        .prop_map(|(vlans, ip, transport, payload, padding)| Spec {
            vlans,
            ip,
            transport,
            payload,
            padding,
        })
}

/// ICMP types etherparse slices with an 8-byte minimum: avoid the ones it
/// gives fixed larger sizes (timestamps), whatever the random type was.
fn icmp_type(t: u8, v6: bool) -> u8 {
    let v4_types = [0u8, 3, 4, 5, 8, 11, 12, 42, 200];
    let v6_types = [1u8, 2, 3, 4, 128, 129, 135, 136, 200];
    let set = if v6 { &v6_types } else { &v4_types };
    set[usize::from(t) % set.len()]
}

fn ext(units: usize) -> Ipv6RawExtHeader {
    // next_header is rewritten by the builder.
    Ipv6RawExtHeader::new_raw(IpNumber(59), &vec![0u8; 6 + 8 * units]).expect("valid length")
}

fn frag_fields(f: Frag) -> (u16, bool) {
    match f {
        Frag::None => (0, false),
        Frag::First => (0, true),
        Frag::Later(o, m) => (o, m),
    }
}

fn ip_headers(ip: &Ip) -> IpHeaders {
    match ip {
        Ip::V4(v) => {
            let mut h = Ipv4Header::new(0, 64, IpNumber(17), v.src, v.dst).expect("header");
            h.dscp = Ipv4Dscp::try_from(v.dscp).expect("dscp");
            h.ecn = Ipv4Ecn::try_from(v.ecn).expect("ecn");
            h.options = Ipv4Options::try_from(&vec![1u8; 4 * v.option_words][..]).expect("opts");
            let (offset, more) = frag_fields(v.frag);
            h.fragment_offset = IpFragOffset::try_new(offset).expect("offset");
            h.more_fragments = more;
            IpHeaders::Ipv4(h, Default::default())
        }
        Ip::V6(v) => {
            let h = Ipv6Header {
                traffic_class: v.traffic_class,
                hop_limit: 64,
                source: v.src,
                destination: v.dst,
                ..Default::default()
            };
            let exts = Ipv6Extensions {
                hop_by_hop_options: v.hop_by_hop.map(ext),
                destination_options: v.dest_options.map(ext),
                routing: v.routing.map(|u| Ipv6RoutingExtensions {
                    routing: ext(u),
                    final_destination_options: None,
                }),
                fragment: v.frag.map(|f| {
                    let (offset, more) = frag_fields(f);
                    Ipv6FragmentHeader::new(
                        IpNumber(59),
                        IpFragOffset::try_new(offset).expect("offset"),
                        more,
                        0x1234_5678,
                    )
                }),
                auth: v.auth.map(|words| {
                    IpAuthHeader::new(IpNumber(59), 1, 2, &vec![0u8; 4 * words]).expect("icv")
                }),
            };
            IpHeaders::Ipv6(h, exts)
        }
    }
}

fn build(s: &Spec) -> Vec<u8> {
    let base = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    let iph = ip_headers(&s.ip);
    let step = match s.vlans {
        Vlans::None => base.ip(iph),
        Vlans::One(v) => base.single_vlan(v.try_into().expect("vid")).ip(iph),
        Vlans::Two(o, i) => base
            .double_vlan(o.try_into().expect("vid"), i.try_into().expect("vid"))
            .ip(iph),
    };
    let v6 = matches!(s.ip, Ip::V6(_));
    let mut out = Vec::new();
    match s.transport {
        Transport::Udp(sp, dp) => step.udp(sp, dp).write(&mut out, &s.payload),
        Transport::Tcp(sp, dp, words) => step
            .tcp(sp, dp, 1, 1000)
            .options_raw(&vec![1u8; 4 * words])
            .expect("tcp options")
            .write(&mut out, &s.payload),
        Transport::Icmp(t, c) if v6 => step
            .icmpv6_raw(icmp_type(t, true), c, [0; 4])
            .write(&mut out, &s.payload),
        Transport::Icmp(t, c) => step
            .icmpv4_raw(icmp_type(t, false), c, [0; 4])
            .write(&mut out, &s.payload),
    }
    .expect("build frame");
    if let Ip::V6(v) = &s.ip {
        if let Some(f) = v.frag {
            // etherparse up to 0.19 writes the IPv6 fragment offset and M
            // flag in the wrong bit positions (etherparse issue #150, fixed
            // in 0.20): rewrite them as RFC 8200 section 4.5 lays them out,
            // a big-endian word `offset << 3 | M`.
            let tags = match s.vlans {
                Vlans::None => 0,
                Vlans::One(_) => 1,
                Vlans::Two(..) => 2,
            };
            let at = 14
                + 4 * tags
                + 40
                + ext_len(v.hop_by_hop)
                + ext_len(v.dest_options)
                + ext_len(v.routing);
            let (offset, more) = frag_fields(f);
            let word = (offset << 3) | u16::from(more);
            out[at + 2..at + 4].copy_from_slice(&word.to_be_bytes());
        }
    }
    out.extend_from_slice(&s.padding);
    out
}

fn ext_len(units: Option<usize>) -> usize {
    units.map_or(0, |u| 8 + 8 * u)
}

fn mapped(a: [u8; 4]) -> u128 {
    0xffff_0000_0000 | u128::from(u32::from_be_bytes(a))
}

fn transport_proto(t: &Transport, v6: bool) -> u8 {
    match t {
        Transport::Udp(..) => 17,
        Transport::Tcp(..) => 6,
        Transport::Icmp(..) if v6 => 58,
        Transport::Icmp(..) => 1,
    }
}

fn expected_fragment(f: Frag) -> Fragment {
    match f {
        Frag::None => Fragment::None,
        Frag::First => Fragment::First,
        Frag::Later(..) => Fragment::Later,
    }
}

/// Check `parse_frame` against the spec the frame was built from.
fn check_against_spec(s: &Spec, frame: &[u8]) -> Result<(), TestCaseError> {
    let h = parse_frame(frame).map_err(|e| TestCaseError::fail(format!("{e}")))?;
    let (outer, inner, tags) = match s.vlans {
        Vlans::None => (None, None, 0),
        Vlans::One(v) => (Some(v), None, 1),
        Vlans::Two(o, i) => (Some(o), Some(i), 2),
    };
    prop_assert_eq!(h.outer_vlan, outer);
    prop_assert_eq!(h.inner_vlan, inner);
    let l3 = 14 + 4 * tags;
    prop_assert_eq!(usize::from(h.l3_offset), l3);
    let ip = h.ip.ok_or_else(|| TestCaseError::fail("no ip"))?;
    let v6 = matches!(s.ip, Ip::V6(_));
    let l4_proto = transport_proto(&s.transport, v6);
    let (fragment, protocol, l4_offset, tos) = match &s.ip {
        Ip::V4(v) => {
            prop_assert_eq!(h.ethertype, 0x0800);
            prop_assert_eq!(ip.version, IpVersion::V4);
            prop_assert_eq!(ip.src, mapped(v.src));
            prop_assert_eq!(ip.dst, mapped(v.dst));
            (
                expected_fragment(v.frag),
                l4_proto,
                l3 + 20 + 4 * v.option_words,
                (v.dscp << 2) | v.ecn,
            )
        }
        Ip::V6(v) => {
            prop_assert_eq!(h.ethertype, 0x86dd);
            prop_assert_eq!(ip.version, IpVersion::V6);
            prop_assert_eq!(ip.src, u128::from_be_bytes(v.src));
            prop_assert_eq!(ip.dst, u128::from_be_bytes(v.dst));
            let fragment = v.frag.map_or(Fragment::None, expected_fragment);
            // Atomic fragments (offset 0, no more) count as unfragmented.
            let mut offset = l3 + 40;
            offset += ext_len(v.hop_by_hop) + ext_len(v.dest_options) + ext_len(v.routing);
            offset += v.frag.map_or(0, |_| 8);
            let protocol = if fragment == Fragment::Later {
                // The walk stops at the fragment header of a later fragment.
                if v.auth.is_some() {
                    51
                } else {
                    l4_proto
                }
            } else {
                offset += v.auth.map_or(0, |w| 12 + 4 * w);
                l4_proto
            };
            (fragment, protocol, offset, v.traffic_class)
        }
    };
    prop_assert_eq!(ip.fragment, fragment);
    prop_assert_eq!(ip.protocol, protocol);
    prop_assert_eq!(usize::from(ip.l4_offset), l4_offset);
    prop_assert_eq!(ip.tos, tos);
    let l4 = if fragment == Fragment::Later {
        L4::None
    } else {
        match s.transport {
            Transport::Udp(sport, dport) | Transport::Tcp(sport, dport, _) => {
                L4::Ports { sport, dport }
            }
            Transport::Icmp(t, code) => L4::Icmp {
                icmp_type: icmp_type(t, v6),
                code,
            },
        }
    };
    prop_assert_eq!(ip.l4, l4);
    let family = if v6 { flags::IPV6 } else { flags::IPV4 };
    let ecn = match tos & 3 {
        0 => 0,
        3 => flags::CE,
        _ => flags::ECT,
    };
    prop_assert_eq!(h.packet_flags(), family | ecn);
    Ok(())
}

/// Check `parse_frame` against etherparse's view of the same bytes.
fn check_against_etherparse(frame: &[u8]) -> Result<(), TestCaseError> {
    let ours = parse_frame(frame).map_err(|e| TestCaseError::fail(format!("{e}")))?;
    let theirs = SlicedPacket::from_ethernet(frame)
        .map_err(|e| TestCaseError::fail(format!("etherparse: {e:?}")))?;
    let (outer, inner) = match &theirs.vlan {
        None => (None, None),
        Some(VlanSlice::SingleVlan(v)) => (Some(v.vlan_identifier().value()), None),
        Some(VlanSlice::DoubleVlan(d)) => (
            Some(d.outer().vlan_identifier().value()),
            Some(d.inner().vlan_identifier().value()),
        ),
    };
    prop_assert_eq!(ours.outer_vlan, outer);
    prop_assert_eq!(ours.inner_vlan, inner);
    let ip = ours.ip.ok_or_else(|| TestCaseError::fail("no ip"))?;
    let payload = match &theirs.net {
        Some(NetSlice::Ipv4(v4)) => {
            let hdr = v4.header();
            prop_assert_eq!(ours.ethertype, 0x0800);
            prop_assert_eq!(ip.src, mapped(hdr.source()));
            prop_assert_eq!(ip.dst, mapped(hdr.destination()));
            prop_assert_eq!(ip.tos, (hdr.dcp().value() << 2) | hdr.ecn().value());
            prop_assert_eq!(ip.protocol, hdr.protocol().0);
            let later = hdr.fragments_offset().value() != 0;
            prop_assert_eq!(ip.fragment == Fragment::Later, later);
            prop_assert_eq!(
                ip.fragment == Fragment::First,
                !later && hdr.more_fragments()
            );
            v4.payload()
        }
        Some(NetSlice::Ipv6(v6)) => {
            let hdr = v6.header();
            prop_assert_eq!(ours.ethertype, 0x86dd);
            prop_assert_eq!(ip.src, u128::from_be_bytes(hdr.source()));
            prop_assert_eq!(ip.dst, u128::from_be_bytes(hdr.destination()));
            prop_assert_eq!(ip.tos, hdr.traffic_class());
            if v6
                .extensions()
                .clone()
                .into_iter()
                .any(|e| matches!(e, etherparse::Ipv6ExtensionSlice::Fragment(_)))
            {
                // etherparse 0.16 reads the fragment offset and M flag from
                // the wrong bits (issue #150); the spec check covers these.
                return Ok(());
            }
            v6.payload()
        }
        None => return Err(TestCaseError::fail("etherparse saw no ip")),
    };
    if payload.fragmented {
        // etherparse does not look past a fragmenting header; the spec check
        // covers first and later fragments.
        return Ok(());
    }
    prop_assert_eq!(ip.protocol, payload.ip_number.0);
    let l4_offset = payload.payload.as_ptr() as usize - frame.as_ptr() as usize;
    prop_assert_eq!(usize::from(ip.l4_offset), l4_offset);
    let l4 = match &theirs.transport {
        Some(TransportSlice::Udp(u)) => L4::Ports {
            sport: u.source_port(),
            dport: u.destination_port(),
        },
        Some(TransportSlice::Tcp(t)) => L4::Ports {
            sport: t.source_port(),
            dport: t.destination_port(),
        },
        Some(TransportSlice::Icmpv4(i)) => L4::Icmp {
            icmp_type: i.type_u8(),
            code: i.code_u8(),
        },
        Some(TransportSlice::Icmpv6(i)) => L4::Icmp {
            icmp_type: i.type_u8(),
            code: i.code_u8(),
        },
        None => L4::None,
    };
    prop_assert_eq!(ip.l4, l4);
    Ok(())
}

#[derive(Clone, Debug)]
enum Mutation {
    Set(usize, u8),
    Truncate(usize),
    /// Drop bytes in the middle (shifts headers).
    Remove(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => (any::<usize>(), 1usize..16).prop_map(|(i, n)| Mutation::Remove(i, n)),
    ]
}

fn apply(frame: &mut Vec<u8>, m: &Mutation) {
    if frame.is_empty() {
        return;
    }
    let len = frame.len();
    match *m {
        // Bias writes towards the headers, where the parser looks.
        Mutation::Set(i, b) => frame[i % len.min(96)] = b,
        Mutation::Truncate(n) => frame.truncate(n % (len + 1)),
        Mutation::Remove(i, n) => {
            let at = i % len;
            let end = (at + n).min(len);
            frame.drain(at..end);
        }
    }
}

/// Fewer cases in debug builds (run by developers) than in the release run
/// of the suite, where each case costs microseconds.
const fn cases(debug: u32, release: u32) -> u32 {
    if cfg!(debug_assertions) {
        debug
    } else {
        release
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(500, 10_000)))]

    #[test]
    fn valid_frames_parse_as_built(s in spec()) {
        let frame = build(&s);
        check_against_spec(&s, &frame)?;
    }

    #[test]
    fn valid_frames_parse_like_etherparse(s in spec()) {
        let frame = build(&s);
        check_against_etherparse(&frame)?;
    }

    #[test]
    fn mutated_frames_never_panic(
        s in spec(),
        muts in proptest::collection::vec(mutation(), 1..6),
        l3 in 0u16..40,
    ) {
        let mut frame = build(&s);
        for m in &muts {
            apply(&mut frame, m);
        }
        if let Ok(h) = parse_frame(&frame) {
            prop_assert!(usize::from(h.l3_offset) <= frame.len());
            if let Some(ip) = h.ip {
                prop_assert!(usize::from(ip.l4_offset) <= frame.len());
                let _ = h.flow_hash();
            }
            // mark_ce agrees with what the parser says about ECN (it is only
            // ever called for packets the parser called IP).
            if h.ip.is_none() {
                return Ok(());
            }
            let before = frame.clone();
            let flags = h.packet_flags();
            let marked = mark_ce(&mut frame, h.l3_offset);
            prop_assert_eq!(marked, flags & (flags::ECT | flags::CE) != 0);
            if flags & flags::ECT == 0 {
                prop_assert_eq!(&frame, &before);
            } else {
                let again = parse_frame(&frame);
                prop_assert!(again.is_ok());
                if let Ok(again) = again {
                    prop_assert_eq!(again.packet_flags(), (flags & !flags::ECT) | flags::CE);
                }
            }
        }
        // Any offset, any bytes: no panic.
        let _ = mark_ce(&mut frame, l3);
    }

    #[test]
    fn mark_ce_keeps_ipv4_checksum_valid(s in spec()) {
        let mut frame = build(&s);
        let h = parse_frame(&frame).expect("valid frame");
        let ip = h.ip.expect("ip");
        let ect = matches!(ip.tos & 3, 1 | 2);
        prop_assert_eq!(mark_ce(&mut frame, h.l3_offset), ip.tos & 3 != 0);
        let after = parse_frame(&frame).expect("still valid");
        let after_ip = after.ip.expect("ip");
        if ect || ip.tos & 3 == 3 {
            prop_assert_eq!(after_ip.tos, ip.tos | 3);
        } else {
            prop_assert_eq!(after_ip.tos, ip.tos);
        }
        // Everything but the ECN bits is untouched.
        prop_assert_eq!(after_ip.src, ip.src);
        prop_assert_eq!(after_ip.l4, ip.l4);
        if ip.version == IpVersion::V4 {
            let l3 = usize::from(h.l3_offset);
            let hdr = etherparse::Ipv4HeaderSlice::from_slice(&frame[l3..]).expect("ipv4");
            prop_assert_eq!(hdr.header_checksum(), hdr.to_header().calc_header_checksum());
        }
    }
}
