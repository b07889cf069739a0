//! 10,000-filter sets, as an ISP-style per-subscriber config has them: every
//! subscriber must land in its own class, the few service filters around
//! them must keep their priority, and the compiled form must stay a handful
//! of groups (the per-packet cost), not 10,000 comparisons.

use weir_dataplane::classify::{Classifier, FilterSpec, IpPrefix, L3Match, PortMatch};
use weir_dataplane::parse::{Fragment, Headers, IpHeader, IpVersion, L4};

const SUBSCRIBERS: u32 = 10_000;
/// 198.18.0.0/15, the benchmarking range: room for 131,072 subscribers.
const BASE: u32 = 0xc612_0000;

fn v4(dst: u32, tos: u8, sport: u16, dport: u16) -> Headers {
    Headers {
        ethertype: 0x0800,
        l3_offset: 14,
        ip: Some(IpHeader {
            src: 0xffff_0a00_0001,
            dst: 0xffff_0000_0000 | u128::from(dst),
            version: IpVersion::V4,
            tos,
            protocol: 17,
            fragment: Fragment::None,
            l4: L4::Ports { sport, dport },
            l4_offset: 34,
        }),
        ..Headers::default()
    }
}

fn v6(dst: u128, sport: u16, dport: u16) -> Headers {
    Headers {
        ethertype: 0x86dd,
        l3_offset: 14,
        ip: Some(IpHeader {
            src: 1,
            dst,
            version: IpVersion::V6,
            tos: 0,
            protocol: 6,
            fragment: Fragment::None,
            l4: L4::Ports { sport, dport },
            l4_offset: 54,
        }),
        ..Headers::default()
    }
}

fn subscriber(i: u32) -> FilterSpec {
    FilterSpec {
        l3: L3Match::Ipv4,
        dst: Some(IpPrefix {
            v6: false,
            addr: 0xffff_0000_0000 | u128::from(BASE + i),
            len: 32,
        }),
        target: 100 + i,
        ..FilterSpec::default()
    }
}

const SSH: u32 = 1;
const VOICE: u32 = 2;
const BULK: u32 = 3;

/// ssh first, then every subscriber, then EF voice, then bulk ports: the
/// order a generated config would have.
fn isp_filters() -> Vec<FilterSpec> {
    let mut f = vec![FilterSpec {
        sport: Some(PortMatch::Masked {
            value: 22,
            mask: 0xffff,
        }),
        target: SSH,
        ..FilterSpec::default()
    }];
    f.extend((0..SUBSCRIBERS).map(subscriber));
    f.push(FilterSpec {
        tos: Some((0xb8, 0xfc)),
        target: VOICE,
        ..FilterSpec::default()
    });
    f.push(FilterSpec {
        dport: Some(PortMatch::Range { lo: 6881, hi: 6999 }),
        target: BULK,
        ..FilterSpec::default()
    });
    f
}

#[test]
fn ten_thousand_subscribers_each_land_in_their_class() {
    let filters = isp_filters();
    let c = Classifier::new(&filters).expect("valid");
    assert_eq!(c.len(), filters.len());
    // ssh, the subscribers, tos, and the range's handful of blocks.
    assert!(c.group_count() <= 12, "{} groups", c.group_count());
    for i in 0..SUBSCRIBERS {
        assert_eq!(c.classify(&v4(BASE + i, 0, 40000, 443)), Some(100 + i));
        // ssh is above every subscriber.
        assert_eq!(c.classify(&v4(BASE + i, 0, 22, 40000)), Some(SSH));
        // A subscriber's voice stays the subscriber's (it comes first).
        assert_eq!(c.classify(&v4(BASE + i, 0xb8, 5004, 5004)), Some(100 + i));
    }
    // Outside the subscriber range only the service filters apply.
    let outsider = BASE + SUBSCRIBERS;
    assert_eq!(c.classify(&v4(outsider, 0, 40000, 443)), None);
    assert_eq!(c.classify(&v4(outsider, 0xb9, 40000, 443)), Some(VOICE));
    assert_eq!(c.classify(&v4(outsider, 0, 40000, 6881)), Some(BULK));
    assert_eq!(c.classify(&v4(outsider, 0, 40000, 6999)), Some(BULK));
    assert_eq!(c.classify(&v4(outsider, 0, 40000, 7000)), None);
    // An IPv6 packet with the same low bits is nobody's subscriber.
    assert_eq!(c.classify(&v6(u128::from(BASE), 40000, 443)), None);
}

#[test]
fn ten_thousand_port_filters() {
    // One class per destination port, e.g. a per-service slice map.
    let filters: Vec<FilterSpec> = (0..10_000u16)
        .map(|i| FilterSpec {
            dport: Some(PortMatch::Masked {
                value: 20_000 + i,
                mask: 0xffff,
            }),
            target: u32::from(i),
            ..FilterSpec::default()
        })
        .collect();
    let c = Classifier::new(&filters).expect("valid");
    assert_eq!(c.group_count(), 1);
    for i in 0..10_000u16 {
        assert_eq!(c.classify(&v4(BASE, 0, 1, 20_000 + i)), Some(u32::from(i)));
        assert_eq!(c.classify(&v6(7, 1, 20_000 + i)), Some(u32::from(i)));
    }
    assert_eq!(c.classify(&v4(BASE, 0, 1, 19_999)), None);
    assert_eq!(c.classify(&v4(BASE, 0, 1, 30_000)), None);
}

#[test]
fn ten_thousand_ipv6_subscriber_prefixes() {
    let prefix = |i: u32| 0x2001_0db8_0000_0000_0000_0000_0000_0000u128 | (u128::from(i) << 64);
    let filters: Vec<FilterSpec> = (0..10_000u32)
        .map(|i| FilterSpec {
            dst: Some(IpPrefix {
                v6: true,
                addr: prefix(i),
                len: 64,
            }),
            target: i,
            ..FilterSpec::default()
        })
        .collect();
    let c = Classifier::new(&filters).expect("valid");
    assert_eq!(c.group_count(), 1);
    for i in 0..10_000u32 {
        // Any host inside the /64.
        let host = prefix(i) | u128::from(i.wrapping_mul(2_654_435_761)) | 1;
        assert_eq!(c.classify(&v6(host, 1, 2)), Some(i));
    }
    assert_eq!(c.classify(&v6(prefix(10_000), 1, 2)), None);
}

#[test]
fn wide_port_ranges_fall_back_to_a_list_and_stay_correct() {
    // sport 1-65534 × dport 1-65534 would be 900 exact-match entries.
    let mut filters: Vec<FilterSpec> = (0..SUBSCRIBERS).map(subscriber).collect();
    filters.insert(
        5000,
        FilterSpec {
            sport: Some(PortMatch::Range { lo: 1, hi: 65534 }),
            dport: Some(PortMatch::Range { lo: 1, hi: 65534 }),
            target: 7,
            ..FilterSpec::default()
        },
    );
    let c = Classifier::new(&filters).expect("valid");
    assert_eq!(c.listed_count(), 1);
    assert_eq!(c.classify(&v4(BASE + 10, 0, 5, 6)), Some(110));
    // Subscriber 5000 and later come after the wide filter.
    assert_eq!(c.classify(&v4(BASE + 5000, 0, 5, 6)), Some(7));
    assert_eq!(c.classify(&v4(BASE + 5000, 0, 0, 6)), Some(5100));
    assert_eq!(c.classify(&v4(BASE + 9999, 0, 5, 65535)), Some(10_099));
    assert_eq!(c.classify(&v4(1, 0, 5, 6)), Some(7));
}
