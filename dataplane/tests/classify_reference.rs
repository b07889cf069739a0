//! The compiled classifier against a plain linear matcher written here from
//! the documented semantics: on random filter lists × random headers both
//! must pick the same filter (first match in list order) every time.

use proptest::prelude::*;
use weir_dataplane::classify::{
    Classifier, ClassifyError, FilterSpec, IpPrefix, L3Match, PortMatch,
};
use weir_dataplane::parse::{Fragment, Headers, IpHeader, IpVersion, L4};

// ---------------------------------------------------------------------------
// Reference semantics, as plainly as possible.

fn prefix_matches(p: &IpPrefix, ip: &IpHeader, addr: u128) -> bool {
    if p.v6 {
        if ip.version != IpVersion::V6 {
            return false;
        }
        let mask = if p.len == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(p.len))
        };
        addr & mask == p.addr & mask
    } else {
        if ip.version != IpVersion::V4 {
            return false;
        }
        let mask = if p.len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(p.len))
        };
        (addr as u32) & mask == (p.addr as u32) & mask
    }
}

fn port_matches(m: &PortMatch, port: u16) -> bool {
    match *m {
        PortMatch::Range { lo, hi } => lo <= port && port <= hi,
        PortMatch::Masked { value, mask } => port & mask == value & mask,
    }
}

fn reference_matches(f: &FilterSpec, h: &Headers) -> bool {
    match f.l3 {
        L3Match::Any => {}
        L3Match::Ipv4 => {
            if h.ip.map(|ip| ip.version) != Some(IpVersion::V4) {
                return false;
            }
        }
        L3Match::Ipv6 => {
            if h.ip.map(|ip| ip.version) != Some(IpVersion::V6) {
                return false;
            }
        }
        L3Match::EtherType(t) => {
            if h.ethertype != t {
                return false;
            }
        }
    }
    if let Some(v) = f.vlan {
        if h.outer_vlan != Some(v) {
            return false;
        }
    }
    let uses_ip = f.src.is_some()
        || f.dst.is_some()
        || f.ip_proto.is_some()
        || f.tos.is_some()
        || f.sport.is_some()
        || f.dport.is_some();
    if !uses_ip {
        return true;
    }
    let Some(ip) = h.ip else {
        return false;
    };
    if let Some(p) = &f.src {
        if !prefix_matches(p, &ip, ip.src) {
            return false;
        }
    }
    if let Some(p) = &f.dst {
        if !prefix_matches(p, &ip, ip.dst) {
            return false;
        }
    }
    if let Some(proto) = f.ip_proto {
        if ip.protocol != proto {
            return false;
        }
    }
    if let Some((value, mask)) = f.tos {
        if ip.tos & mask != value & mask {
            return false;
        }
    }
    if f.sport.is_some() || f.dport.is_some() {
        let L4::Ports { sport, dport } = ip.l4 else {
            return false;
        };
        if let Some(m) = &f.sport {
            if !port_matches(m, sport) {
                return false;
            }
        }
        if let Some(m) = &f.dport {
            if !port_matches(m, dport) {
                return false;
            }
        }
    }
    true
}

fn reference_classify(filters: &[FilterSpec], h: &Headers) -> Option<u32> {
    filters
        .iter()
        .find(|f| reference_matches(f, h))
        .map(|f| f.target)
}

// ---------------------------------------------------------------------------
// Generators. Values come from small pools so that filters and packets
// collide often; prefixes are cut from pool addresses at random lengths.

const V4_POOL: [u32; 6] = [
    0xc612_0001,
    0xc612_0002,
    0xc612_0102,
    0xc613_ff00,
    0x0a00_0001,
    0x0000_0000,
];
const V6_POOL: [u128; 4] = [
    0x2001_0db8_0000_0000_0000_0000_0000_0001,
    0x2001_0db8_0000_0000_0000_0000_0000_0002,
    0x2001_0db8_0001_0000_0000_0000_0000_0001,
    0x0000_0000_0000_0000_0000_ffff_c612_0001, // v4-mapped, in an IPv6 packet
];
const PORT_POOL: [u16; 9] = [0, 1, 22, 80, 443, 1023, 1024, 5432, 65535];
const TOS_POOL: [u8; 6] = [0x00, 0xb8, 0xb9, 0x88, 0x68, 0x03];
const PROTO_POOL: [u8; 5] = [6, 17, 1, 58, 132];
const ETHERTYPES: [u16; 3] = [0x0806, 0x88cc, 0x0800];

fn v4_addr() -> impl Strategy<Value = u128> {
    prop_oneof![
        4 => proptest::sample::select(&V4_POOL[..]),
        1 => any::<u32>(),
    ]
    .prop_map(|a| 0xffff_0000_0000 | u128::from(a))
}

fn v6_addr() -> impl Strategy<Value = u128> {
    prop_oneof![
        4 => proptest::sample::select(&V6_POOL[..]),
        1 => any::<u128>(),
    ]
}

fn port() -> impl Strategy<Value = u16> {
    prop_oneof![
        3 => proptest::sample::select(&PORT_POOL[..]),
        1 => any::<u16>(),
    ]
}

fn port_match() -> impl Strategy<Value = PortMatch> {
    prop_oneof![
        // Single ports, as tc `sport 80 0xffff` usually is.
        2 => port().prop_map(|p| PortMatch::Masked { value: p, mask: 0xffff }),
        1 => (port(), any::<u16>()).prop_map(|(value, mask)| PortMatch::Masked { value, mask }),
        1 => (port(), prop_oneof![Just(0xff00u16), Just(0xfc00), Just(0)])
            .prop_map(|(value, mask)| PortMatch::Masked { value, mask }),
        2 => (port(), port()).prop_map(|(a, b)| PortMatch::Range { lo: a.min(b), hi: a.max(b) }),
        1 => Just(PortMatch::Range { lo: 1, hi: 65534 }),
        1 => Just(PortMatch::Range { lo: 1024, hi: 65535 }),
    ]
}

#[derive(Clone, Copy, Debug)]
enum Family {
    Any,
    V4,
    V6,
    Ether(u16),
}

fn prefix(v6: bool) -> BoxedStrategy<IpPrefix> {
    if v6 {
        (
            v6_addr(),
            prop_oneof![Just(128u8), Just(64), Just(0), 0u8..=128],
        )
            .prop_map(|(addr, len)| IpPrefix {
                v6: true,
                addr,
                len,
            })
            .boxed()
    } else {
        (
            v4_addr(),
            prop_oneof![Just(32u8), Just(24), Just(16), Just(0), 0u8..=32],
        )
            .prop_map(|(addr, len)| IpPrefix {
                v6: false,
                addr,
                len,
            })
            .boxed()
    }
}

fn filter() -> impl Strategy<Value = FilterSpec> {
    let family = prop_oneof![
        3 => Just(Family::Any),
        2 => Just(Family::V4),
        2 => Just(Family::V6),
        1 => proptest::sample::select(&ETHERTYPES[..]).prop_map(Family::Ether),
    ];
    (family, any::<bool>()).prop_flat_map(|(family, l3_explicit)| {
        let ether = matches!(family, Family::Ether(_));
        // Prefixes follow the family; with no family, either.
        let prefix_family: BoxedStrategy<bool> = match family {
            Family::V4 => Just(false).boxed(),
            Family::V6 => Just(true).boxed(),
            _ => any::<bool>().boxed(),
        };
        let l3 = match family {
            Family::Any => L3Match::Any,
            Family::V4 if l3_explicit => L3Match::Ipv4,
            Family::V6 if l3_explicit => L3Match::Ipv6,
            Family::V4 | Family::V6 => L3Match::Any,
            Family::Ether(t) => L3Match::EtherType(t),
        };
        let ip_weight = 0.3;
        (
            Just(l3),
            prefix_family,
            proptest::option::weighted(0.2, prop_oneof![Just(1u16), Just(2), 0u16..4096]),
            proptest::option::weighted(0.3, any::<u8>()),
            proptest::option::weighted(ip_weight, proptest::sample::select(&PROTO_POOL[..])),
            proptest::option::weighted(
                ip_weight,
                (
                    proptest::sample::select(&TOS_POOL[..]),
                    prop_oneof![Just(0xfcu8), Just(0xff), Just(0x03), any::<u8>()],
                ),
            ),
            proptest::option::weighted(ip_weight, port_match()),
            proptest::option::weighted(ip_weight, port_match()),
            0u32..1000,
            (prefix(false), prefix(true), prefix(false), prefix(true)),
        )
            .prop_map(
                move |(l3, pv6, vlan, which_prefix, ip_proto, tos, sport, dport, target, p)| {
                    // which_prefix: bit 0 = src, bit 1 = dst (never with an
                    // EtherType).
                    let has = |bit: u8| !ether && which_prefix.is_some_and(|w| w & bit != 0);
                    let (src4, src6, dst4, dst6) = p;
                    // No IP fields with an EtherType (the contract refuses them).
                    let ip_proto = ip_proto.filter(|_| !ether);
                    let tos = tos.filter(|_| !ether);
                    let sport = sport.filter(|_| !ether);
                    let dport = dport.filter(|_| !ether);
                    let src = has(1).then_some(if pv6 { src6 } else { src4 });
                    let dst = has(2).then_some(if pv6 { dst6 } else { dst4 });
                    FilterSpec {
                        l3,
                        vlan,
                        src,
                        dst,
                        ip_proto,
                        tos,
                        sport,
                        dport,
                        target,
                    }
                },
            )
    })
}

fn headers() -> impl Strategy<Value = Headers> {
    let l4 = prop_oneof![
        4 => (port(), port()).prop_map(|(sport, dport)| L4::Ports { sport, dport }),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(icmp_type, code)| L4::Icmp { icmp_type, code }),
        1 => Just(L4::None),
    ];
    let fragment = prop_oneof![
        6 => Just(Fragment::None),
        1 => Just(Fragment::First),
        1 => Just(Fragment::Later),
    ];
    let ip = (
        any::<bool>(),
        v4_addr(),
        v4_addr(),
        v6_addr(),
        v6_addr(),
        prop_oneof![4 => proptest::sample::select(&TOS_POOL[..]), 1 => any::<u8>()],
        proptest::sample::select(&PROTO_POOL[..]),
        fragment,
        l4,
    )
        .prop_map(
            |(v6, s4, d4, s6, d6, tos, protocol, fragment, l4)| IpHeader {
                src: if v6 { s6 } else { s4 },
                dst: if v6 { d6 } else { d4 },
                version: if v6 { IpVersion::V6 } else { IpVersion::V4 },
                tos,
                protocol,
                fragment,
                // Later fragments never carry an L4 header.
                l4: if fragment == Fragment::Later {
                    L4::None
                } else {
                    l4
                },
                l4_offset: 34,
            },
        );
    (
        proptest::option::weighted(0.8, ip),
        proptest::option::weighted(0.3, prop_oneof![Just(1u16), Just(2), 0u16..4096]),
        proptest::sample::select(&ETHERTYPES[..]),
    )
        .prop_map(|(ip, outer_vlan, non_ip_type)| Headers {
            outer_vlan,
            inner_vlan: None,
            ethertype: match ip.map(|i| i.version) {
                Some(IpVersion::V4) => 0x0800,
                Some(IpVersion::V6) => 0x86dd,
                None => non_ip_type,
            },
            l3_offset: if outer_vlan.is_some() { 18 } else { 14 },
            ip,
        })
}

/// Make targets unique so a mismatch cannot hide behind equal targets.
fn unique_targets(mut filters: Vec<FilterSpec>) -> Vec<FilterSpec> {
    for (i, f) in filters.iter_mut().enumerate() {
        f.target = i as u32;
    }
    filters
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
    #![proptest_config(ProptestConfig::with_cases(cases(100, 1_500)))]

    #[test]
    fn compiled_equals_linear_on_small_lists(
        filters in proptest::collection::vec(filter(), 0..40),
        packets in proptest::collection::vec(headers(), 1..60),
    ) {
        let filters = unique_targets(filters);
        let c = Classifier::new(&filters).expect("generated filters are valid");
        prop_assert_eq!(c.len(), filters.len());
        for h in &packets {
            prop_assert_eq!(c.classify(h), reference_classify(&filters, h), "headers {:?}", h);
        }
    }

    #[test]
    fn duplicate_targets_still_pick_the_first_filter(
        filters in proptest::collection::vec(filter(), 0..40),
        packets in proptest::collection::vec(headers(), 1..60),
    ) {
        // Targets as generated (often shared): the result must be the same
        // target as the reference's first match.
        let c = Classifier::new(&filters).expect("generated filters are valid");
        for h in &packets {
            prop_assert_eq!(c.classify(h), reference_classify(&filters, h));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(16, 128)))]

    /// Many filters per shape (hashed groups, not scanned ones) with random
    /// ones mixed in at random positions.
    #[test]
    fn compiled_equals_linear_on_large_lists(
        dsts in proptest::collection::vec(any::<u32>(), 50..400),
        extra in proptest::collection::vec((any::<usize>(), filter()), 0..30),
        packets in proptest::collection::vec((any::<usize>(), headers()), 100..300),
    ) {
        let mut filters: Vec<FilterSpec> = dsts
            .iter()
            .map(|&d| FilterSpec {
                dst: Some(IpPrefix { v6: false, addr: 0xffff_0000_0000 | u128::from(d), len: 32 }),
                ..FilterSpec::default()
            })
            .collect();
        for (at, f) in extra {
            let at = at % (filters.len() + 1);
            filters.insert(at, f);
        }
        let filters = unique_targets(filters);
        let c = Classifier::new(&filters).expect("valid");
        for (pick, mut h) in packets {
            // Half the packets go to a configured subscriber.
            if pick % 2 == 0 {
                if let Some(ip) = h.ip.as_mut() {
                    ip.version = IpVersion::V4;
                    ip.dst = 0xffff_0000_0000 | u128::from(dsts[pick / 2 % dsts.len()]);
                    h.ethertype = 0x0800;
                }
            }
            prop_assert_eq!(c.classify(&h), reference_classify(&filters, &h));
        }
    }
}

#[test]
fn empty_classifier_matches_nothing() {
    let c = Classifier::new(&[]).expect("empty is fine");
    assert!(c.is_empty());
    assert_eq!(c.classify(&Headers::default()), None);
    assert_eq!(Classifier::default().classify(&Headers::default()), None);
}

#[test]
fn invalid_filters_are_refused_with_their_index() {
    let ok = FilterSpec::default();
    let cases = [
        (
            FilterSpec {
                vlan: Some(4096),
                ..ok
            },
            ClassifyError::VlanOutOfRange {
                filter: 1,
                vlan: 4096,
            },
        ),
        (
            FilterSpec {
                src: Some(IpPrefix {
                    v6: false,
                    addr: 0,
                    len: 33,
                }),
                ..ok
            },
            ClassifyError::PrefixTooLong {
                filter: 1,
                len: 33,
                max: 32,
            },
        ),
        (
            FilterSpec {
                dst: Some(IpPrefix {
                    v6: true,
                    addr: 0,
                    len: 129,
                }),
                ..ok
            },
            ClassifyError::PrefixTooLong {
                filter: 1,
                len: 129,
                max: 128,
            },
        ),
        (
            FilterSpec {
                sport: Some(PortMatch::Range { lo: 10, hi: 9 }),
                ..ok
            },
            ClassifyError::EmptyPortRange {
                filter: 1,
                lo: 10,
                hi: 9,
            },
        ),
        (
            FilterSpec {
                l3: L3Match::EtherType(0x0806),
                ip_proto: Some(6),
                ..ok
            },
            ClassifyError::IpFieldsWithEtherType {
                filter: 1,
                ethertype: 0x0806,
            },
        ),
        (
            FilterSpec {
                l3: L3Match::Ipv4,
                dst: Some(IpPrefix {
                    v6: true,
                    addr: 0,
                    len: 0,
                }),
                ..ok
            },
            ClassifyError::FamilyConflict { filter: 1 },
        ),
        (
            FilterSpec {
                src: Some(IpPrefix {
                    v6: false,
                    addr: 0,
                    len: 0,
                }),
                dst: Some(IpPrefix {
                    v6: true,
                    addr: 0,
                    len: 0,
                }),
                ..ok
            },
            ClassifyError::FamilyConflict { filter: 1 },
        ),
    ];
    for (bad, want) in cases {
        let err = Classifier::new(&[ok, bad]).expect_err("must be refused");
        assert_eq!(err, want);
        assert!(err.to_string().contains("filter 1"), "{err}");
    }
}
