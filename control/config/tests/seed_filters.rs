//! The seed's classification examples (sections 1.3 and 2.1), as frames
//! through the real parser and classifier built from the example configs:
//! each lands in the class the seed means it to.

use etherparse::{
    IpHeaders, IpNumber, Ipv4Dscp, Ipv4Ecn, Ipv4Extensions, Ipv4Header, PacketBuilder,
};
use weir_config::{self as config, Tree};
use weir_dataplane::classify::Classifier;
use weir_dataplane::parse::parse_frame;
use weir_testkit::fixture::config_path;
use weir_testkit::frame::{self, MAC_A, MAC_B};

// RFC 2544 benchmarking addresses, as every weir test uses.
const SRC: [u8; 4] = [198, 18, 0, 1];
const DST: [u8; 4] = [198, 19, 0, 1];

#[derive(Clone, Copy)]
enum L4 {
    Tcp(u16, u16),
    Udp(u16, u16),
    IcmpEcho,
}

/// An IPv4 frame with the given TOS byte (DSCP << 2 | ECN).
fn v4(l4: L4, tos: u8) -> Vec<u8> {
    let mut ip = Ipv4Header::new(0, 64, IpNumber::TCP, SRC, DST).unwrap();
    ip.dscp = Ipv4Dscp::try_new(tos >> 2).unwrap();
    ip.ecn = Ipv4Ecn::try_new(tos & 3).unwrap();
    let b =
        PacketBuilder::ethernet2(MAC_A, MAC_B).ip(IpHeaders::Ipv4(ip, Ipv4Extensions::default()));
    let payload = [0u8; 32];
    let mut out = Vec::new();
    match l4 {
        L4::Tcp(s, d) => b.tcp(s, d, 1, 65535).write(&mut out, &payload).unwrap(),
        L4::Udp(s, d) => b.udp(s, d).write(&mut out, &payload).unwrap(),
        L4::IcmpEcho => b
            .icmpv4_echo_request(7, 1)
            .write(&mut out, &payload)
            .unwrap(),
    }
    out
}

fn v6_tcp(sport: u16, dport: u16, traffic_class: u8) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv6(
            [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            64,
        )
        .tcp(sport, dport, 1, 65535);
    let mut out = Vec::new();
    b.write(&mut out, &[0u8; 32]).unwrap();
    // Traffic class: the 8 bits after the version nibble.
    out[14] = 0x60 | (traffic_class >> 4);
    out[15] = (out[15] & 0x0f) | (traffic_class << 4);
    out
}

fn arp() -> Vec<u8> {
    let mut f = frame::eth([0xff; 6], MAC_A, frame::ETHERTYPE_ARP);
    f.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&MAC_A);
    f.extend_from_slice(&SRC);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&DST);
    f
}

fn load(name: &str) -> Tree {
    let loaded = config::load(&config_path(name)).unwrap_or_else(|e| panic!("{name}: {e:#?}"));
    loaded.config.trees.into_iter().next().unwrap()
}

/// Classify `frame` as the shaper would: the first matching filter, else
/// the tree's default class.
fn class_of(tree: &Tree, classifier: &Classifier, frame: &[u8]) -> String {
    let h = parse_frame(frame).unwrap_or_else(|e| panic!("frame does not parse: {e:?}"));
    let c = classifier.classify(&h).unwrap_or(tree.default_class);
    tree.classes[c as usize].id.to_string()
}

fn check(tree: &Tree, cases: &[(&str, Vec<u8>, &str)]) {
    let spec = tree.shaper_spec(0);
    let classifier = Classifier::new(&spec.filters).expect("filters compile");
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|(what, frame, want)| {
            let got = class_of(tree, &classifier, frame);
            (got != *want).then(|| format!("{what}: got {got}, the seed means {want}"))
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn seed_1_3_classification() {
    let t = load("seed-1.3-classify.toml");
    // The seed sends these to 1:10 "high"; in weir 1:10 is the inner class
    // of 1:11 (ICMP) and 1:12, the leaf that holds 1:10's old queue.
    let high_leaf = "1:12";
    let leaf = t.class_index(high_leaf).unwrap() as usize;
    let high = t.class_index("1:10").unwrap();
    assert_eq!(t.classes[leaf].parent, Some(high));

    let cases = vec![
        (
            "HTTP reply (tcp sport 80)",
            v4(L4::Tcp(80, 40000), 0),
            high_leaf,
        ),
        (
            "HTTPS reply (tcp sport 443)",
            v4(L4::Tcp(443, 40001), 0),
            high_leaf,
        ),
        (
            "QUIC reply (udp sport 443: the u32 match has no protocol)",
            v4(L4::Udp(443, 40002), 0),
            high_leaf,
        ),
        (
            "MySQL reply (sport 3306)",
            v4(L4::Tcp(3306, 40003), 0),
            high_leaf,
        ),
        (
            "PostgreSQL reply (sport 5432)",
            v4(L4::Tcp(5432, 40004), 0),
            high_leaf,
        ),
        ("SSH (sport 22)", v4(L4::Tcp(22, 40005), 0), "1:20"),
        (
            "video marked tos 0xb8 (EF)",
            v4(L4::Udp(5004, 5004), 0xb8),
            "1:20",
        ),
        (
            "EF with ECT(0) still matches mask 0xfc",
            v4(L4::Udp(5004, 5004), 0xba),
            "1:20",
        ),
        ("rsync (sport 873)", v4(L4::Tcp(873, 40006), 0), "1:30"),
        ("iSCSI (sport 3260)", v4(L4::Tcp(3260, 40007), 0), "1:30"),
        ("ICMP echo (protocol 1)", v4(L4::IcmpEcho, 0), "1:11"),
        (
            "HTTP reply marked EF: prio 1 beats prio 2",
            v4(L4::Tcp(80, 40008), 0xb8),
            high_leaf,
        ),
        (
            "rsync marked EF: prio 2 beats prio 3",
            v4(L4::Tcp(873, 40009), 0xb8),
            "1:20",
        ),
        (
            "HTTP request (dport 80) matches no sport filter: default",
            v4(L4::Tcp(40010, 80), 0),
            "1:30",
        ),
        (
            "anything else: default 1:30",
            v4(L4::Tcp(12345, 54321), 0),
            "1:30",
        ),
        (
            "IPv6 HTTP reply: the filters say protocol ip",
            v6_tcp(80, 40011, 0),
            "1:30",
        ),
        ("ARP: default", arp(), "1:30"),
    ];
    check(&t, &cases);
}

#[test]
fn seed_2_1_dscp_classification() {
    let t = load("seed-2.1-dscp.toml");
    let dscp = |d: u8| v4(L4::Udp(5004, 5004), d << 2);
    let cases = vec![
        ("voice EF (46)", dscp(46), "1:10"),
        (
            "voice EF with ECT(1)",
            v4(L4::Udp(5004, 5004), (46 << 2) | 1),
            "1:10",
        ),
        ("video AF41 (34)", dscp(34), "1:20"),
        ("video AF42 (36)", dscp(36), "1:20"),
        ("critical AF31 (26)", dscp(26), "1:30"),
        ("best effort (0)", dscp(0), "1:40"),
        ("best effort TCP", v4(L4::Tcp(443, 40000), 0), "1:40"),
        ("AF43 (38): no filter, default 1:40", dscp(38), "1:40"),
        ("AF32 (28): no filter, default 1:40", dscp(28), "1:40"),
        ("CS1 (8): no filter, default 1:40", dscp(8), "1:40"),
        ("ICMP best effort", v4(L4::IcmpEcho, 0), "1:40"),
        (
            "IPv6 EF: the filters say protocol ip, default",
            v6_tcp(5060, 5060, 46 << 2),
            "1:40",
        ),
        ("ARP: default", arp(), "1:40"),
    ];
    check(&t, &cases);
}

#[test]
fn lab_dscp_classification_both_directions() {
    let loaded = config::load(&config_path("lab.toml")).unwrap();
    assert_eq!(loaded.config.trees.len(), 2);
    for t in &loaded.config.trees {
        let dscp = |d: u8| v4(L4::Udp(5004, 5004), d << 2);
        check(
            t,
            &[
                ("EF", dscp(46), "1:10"),
                ("AF41", dscp(34), "1:20"),
                ("AF42: default", dscp(36), "1:30"),
                ("BE: default", dscp(0), "1:30"),
            ],
        );
    }
}
