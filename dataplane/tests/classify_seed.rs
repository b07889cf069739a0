//! The seed document's tc filters (sections 1.3 and 2.1), written as the
//! config layer will hand them over (`FilterSpec`s in prio-then-file order),
//! classifying real frames end to end: bytes → `parse_frame` → `classify`.

use etherparse::PacketBuilder;
use weir_dataplane::classify::{Classifier, FilterSpec, L3Match, PortMatch};
use weir_dataplane::parse::{parse_frame, Headers};

const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];
const SRC: [u8; 4] = [198, 18, 0, 1];
const DST: [u8; 4] = [198, 19, 0, 1];

fn udp4(tos: u8, sport: u16, dport: u16) -> Headers {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(SRC, DST, 64)
        .udp(sport, dport)
        .write(&mut out, &[0; 18])
        .expect("build");
    set_tos(&mut out, tos);
    parse_frame(&out).expect("valid frame")
}

fn tcp4(tos: u8, sport: u16, dport: u16) -> Headers {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(SRC, DST, 64)
        .tcp(sport, dport, 1, 65535)
        .write(&mut out, &[])
        .expect("build");
    set_tos(&mut out, tos);
    parse_frame(&out).expect("valid frame")
}

fn icmp4(tos: u8) -> Headers {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(SRC, DST, 64)
        .icmpv4_echo_request(1, 1)
        .write(&mut out, &[0; 56])
        .expect("build");
    set_tos(&mut out, tos);
    parse_frame(&out).expect("valid frame")
}

fn tcp6(sport: u16, dport: u16) -> Headers {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv6(
            [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            64,
        )
        .tcp(sport, dport, 1, 65535)
        .write(&mut out, &[])
        .expect("build");
    parse_frame(&out).expect("valid frame")
}

fn arp() -> Headers {
    let mut f = MAC_A.to_vec();
    f.extend_from_slice(&MAC_B);
    f.extend_from_slice(&[0x08, 0x06]);
    f.extend_from_slice(&[0; 28]);
    parse_frame(&f).expect("valid frame")
}

/// The classifier reads the TOS byte from the parsed header; the checksum
/// does not matter to it.
fn set_tos(frame: &mut [u8], tos: u8) {
    frame[15] = tos;
}

/// `match ip sport P 0xffff`
fn sport(p: u16, target: u32) -> FilterSpec {
    FilterSpec {
        l3: L3Match::Ipv4,
        sport: Some(PortMatch::Masked {
            value: p,
            mask: 0xffff,
        }),
        target,
        ..FilterSpec::default()
    }
}

/// `match ip tos V M`
fn tos(value: u8, mask: u8, target: u32) -> FilterSpec {
    FilterSpec {
        l3: L3Match::Ipv4,
        tos: Some((value, mask)),
        target,
        ..FilterSpec::default()
    }
}

// Class 1:N is target N.
const C10: u32 = 10;
const C11: u32 = 11;
const C20: u32 = 20;
const C30: u32 = 30;
const C40: u32 = 40;

/// Seed section 1.3: web and databases to 1:10, ssh and EF video to 1:20,
/// bulk to 1:30, ICMP to 1:11 — sorted by prio, then file order.
fn seed_1_3() -> Vec<FilterSpec> {
    vec![
        // prio 1
        sport(80, C10),
        sport(443, C10),
        sport(3306, C10),
        sport(5432, C10),
        FilterSpec {
            l3: L3Match::Ipv4,
            ip_proto: Some(1),
            target: C11,
            ..FilterSpec::default()
        },
        // prio 2
        sport(22, C20),
        tos(0xb8, 0xfc, C20),
        // prio 3
        sport(873, C30),
        sport(3260, C30),
    ]
}

#[test]
fn seed_1_3_port_and_protocol_filters() {
    let c = Classifier::new(&seed_1_3()).expect("valid");
    assert_eq!(c.classify(&tcp4(0, 80, 40000)), Some(C10));
    assert_eq!(c.classify(&tcp4(0, 443, 40000)), Some(C10));
    assert_eq!(c.classify(&tcp4(0, 3306, 40000)), Some(C10));
    assert_eq!(c.classify(&tcp4(0, 5432, 40000)), Some(C10));
    assert_eq!(c.classify(&tcp4(0, 22, 40000)), Some(C20));
    assert_eq!(c.classify(&tcp4(0, 873, 40000)), Some(C30));
    assert_eq!(c.classify(&tcp4(0, 3260, 40000)), Some(C30));
    // `sport` is sport: the client side of the same connections is not hit.
    assert_eq!(c.classify(&tcp4(0, 40000, 443)), None);
    // UDP from the same ports matches too (u32 only looks at the offsets).
    assert_eq!(c.classify(&udp4(0, 443, 40000)), Some(C10));
    // ICMP: protocol 1, whatever its TOS.
    assert_eq!(c.classify(&icmp4(0)), Some(C11));
    assert_eq!(c.classify(&icmp4(0xb8)), Some(C11));
    // EF-marked traffic on an unlisted port: the prio 2 tos filter.
    assert_eq!(c.classify(&udp4(0xb8, 5004, 5004)), Some(C20));
    // EF on a bulk port: prio 2 (tos) beats prio 3 (sport 3260).
    assert_eq!(c.classify(&tcp4(0xb8, 3260, 40000)), Some(C20));
    // EF on a web port: prio 1 wins.
    assert_eq!(c.classify(&tcp4(0xb8, 443, 40000)), Some(C10));
    // Everything else falls to the tree's default (None here).
    assert_eq!(c.classify(&tcp4(0, 8080, 40000)), None);
    // `protocol ip` filters never see IPv6 or ARP.
    assert_eq!(c.classify(&tcp6(443, 40000)), None);
    assert_eq!(c.classify(&arp()), None);
}

/// Seed section 2.1: DSCP classes by TOS byte with mask 0xfc (ECN bits
/// ignored).
fn seed_2_1() -> Vec<FilterSpec> {
    vec![
        tos(46 << 2, 0xfc, C10), // EF   0xb8, prio 1
        tos(34 << 2, 0xfc, C20), // AF41 0x88, prio 2
        tos(36 << 2, 0xfc, C20), // AF42 0x90, prio 2
        tos(26 << 2, 0xfc, C30), // AF31 0x68, prio 3
        tos(0, 0xfc, C40),       // BE   0x00, prio 4
    ]
}

#[test]
fn seed_2_1_dscp_filters() {
    let c = Classifier::new(&seed_2_1()).expect("valid");
    for ecn in 0..4u8 {
        assert_eq!(c.classify(&udp4(0xb8 | ecn, 1, 2)), Some(C10), "EF");
        assert_eq!(c.classify(&udp4(0x88 | ecn, 1, 2)), Some(C20), "AF41");
        assert_eq!(c.classify(&udp4(0x90 | ecn, 1, 2)), Some(C20), "AF42");
        assert_eq!(c.classify(&udp4(0x68 | ecn, 1, 2)), Some(C30), "AF31");
        assert_eq!(c.classify(&udp4(ecn, 1, 2)), Some(C40), "BE");
    }
    // DSCP is not looked at through the ports: TCP and ICMP classify alike.
    assert_eq!(c.classify(&tcp4(0x88, 1, 2)), Some(C20));
    assert_eq!(c.classify(&icmp4(0x68)), Some(C30));
    // CS1 (8 << 2) and AF11 (10 << 2) have no filter: default class.
    assert_eq!(c.classify(&udp4(8 << 2, 1, 2)), None);
    assert_eq!(c.classify(&udp4(10 << 2, 1, 2)), None);
    // Every DSCP value lands exactly where its filter says.
    for dscp in 0..64u8 {
        let want = match dscp {
            46 => Some(C10),
            34 | 36 => Some(C20),
            26 => Some(C30),
            0 => Some(C40),
            _ => None,
        };
        assert_eq!(c.classify(&udp4(dscp << 2, 1, 2)), want, "dscp {dscp}");
    }
}

#[test]
fn seed_sets_compile_into_few_groups() {
    // Nine filters of three shapes (sport, protocol, tos): the per-packet
    // cost is three probes at most, not nine comparisons.
    let c = Classifier::new(&seed_1_3()).expect("valid");
    assert_eq!(c.group_count(), 3);
    let c = Classifier::new(&seed_2_1()).expect("valid");
    assert_eq!(c.group_count(), 1);
}

#[test]
fn vlan_and_ethertype_filters() {
    let filters = [
        FilterSpec {
            l3: L3Match::EtherType(0x0806),
            target: 1,
            ..FilterSpec::default()
        },
        FilterSpec {
            vlan: Some(100),
            target: 2,
            ..FilterSpec::default()
        },
        FilterSpec {
            l3: L3Match::Ipv6,
            target: 3,
            ..FilterSpec::default()
        },
        FilterSpec {
            target: 4,
            ..FilterSpec::default()
        },
    ];
    let c = Classifier::new(&filters).expect("valid");
    assert_eq!(c.classify(&arp()), Some(1));
    assert_eq!(c.classify(&tcp6(1, 2)), Some(3));
    // A catch-all (`l3: Any`, nothing else) takes non-IP frames too.
    let mut lldp = MAC_A.to_vec();
    lldp.extend_from_slice(&MAC_B);
    lldp.extend_from_slice(&[0x88, 0xcc]);
    assert_eq!(c.classify(&parse_frame(&lldp).expect("valid")), Some(4));
    let mut tagged = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .single_vlan(100.try_into().expect("vid"))
        .ipv4(SRC, DST, 64)
        .udp(1, 2)
        .write(&mut tagged, &[])
        .expect("build");
    assert_eq!(c.classify(&parse_frame(&tagged).expect("valid")), Some(2));
    assert_eq!(c.classify(&udp4(0, 1, 2)), Some(4));
}

#[test]
fn port_filters_never_match_packets_without_ports() {
    let filters = [FilterSpec {
        sport: Some(PortMatch::Range { lo: 0, hi: 65535 }),
        target: 1,
        ..FilterSpec::default()
    }];
    let c = Classifier::new(&filters).expect("valid");
    assert_eq!(c.classify(&udp4(0, 0, 0)), Some(1));
    assert_eq!(c.classify(&icmp4(0)), None);
    assert_eq!(c.classify(&arp()), None);
    // A later fragment of a UDP datagram.
    let mut out = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(SRC, DST, 64)
        .udp(1, 2)
        .write(&mut out, &[0; 16])
        .expect("build");
    out[20..22].copy_from_slice(&0x0004u16.to_be_bytes()); // offset 32 bytes
    let later = parse_frame(&out).expect("valid");
    assert_eq!(later.ports(), None);
    assert_eq!(c.classify(&later), None);
}
