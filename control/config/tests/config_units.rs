//! tc units: the documented meanings, and print/parse round trips.

use proptest::prelude::*;
use weir_config::{ClassId, Dscp, Rate, Size, Time, Tos};

/// tc(8) PARAMETERS and `tc_util.c`, value by value.
#[test]
fn tc_table() {
    let rates: &[(&str, u64)] = &[
        ("1000", 1000),
        ("1bit", 1),
        ("1kbit", 1_000),
        ("1mbit", 1_000_000),
        ("1gbit", 1_000_000_000),
        ("1tbit", 1_000_000_000_000),
        ("1kibit", 1024),
        ("1mibit", 1_048_576),
        ("1gibit", 1_073_741_824),
        ("1tibit", 1_099_511_627_776),
        ("1bps", 8),
        ("1kbps", 8_000),
        ("1mbps", 8_000_000),
        ("1gbps", 8_000_000_000),
        ("1tbps", 8_000_000_000_000),
        ("1kibps", 8_192),
        ("1mibps", 8_388_608),
        ("1gibps", 8_589_934_592),
        ("1tibps", 8_796_093_022_208),
        ("1.5mbit", 1_500_000),
        ("300Mbit", 300_000_000),
        ("2.5GBps", 20_000_000_000),
    ];
    for &(s, bits) in rates {
        assert_eq!(s.parse::<Rate>().unwrap().bits_per_sec(), bits, "{s}");
    }
    let sizes: &[(&str, u64)] = &[
        ("1514", 1514),
        ("1514b", 1514),
        ("1k", 1024),
        ("1kb", 1024),
        ("1m", 1_048_576),
        ("1mb", 1_048_576),
        ("1g", 1_073_741_824),
        ("1gb", 1_073_741_824),
        ("1kbit", 128),
        ("8mbit", 1_048_576),
        ("1gbit", 134_217_728),
    ];
    for &(s, bytes) in sizes {
        assert_eq!(s.parse::<Size>().unwrap().bytes(), bytes, "{s}");
    }
    let times: &[(&str, u64)] = &[
        ("100", 100_000),
        ("1s", 1_000_000_000),
        ("1sec", 1_000_000_000),
        ("1secs", 1_000_000_000),
        ("5ms", 5_000_000),
        ("5msec", 5_000_000),
        ("5msecs", 5_000_000),
        ("10us", 10_000),
        ("10usec", 10_000),
        ("10usecs", 10_000),
        ("10ns", 10),
    ];
    for &(s, ns) in times {
        assert_eq!(s.parse::<Time>().unwrap().ns(), ns, "{s}");
    }
    assert_eq!("1:10".parse::<ClassId>().unwrap(), ClassId::new(1, 16));
    assert_eq!("1:a".parse::<ClassId>().unwrap(), ClassId::new(1, 10));
    assert_eq!(ClassId::new(1, 16).to_string(), "1:10");
    assert_eq!("EF".parse::<Dscp>().unwrap().value(), 46);
    assert_eq!("AF41".parse::<Dscp>().unwrap().value(), 34);
    assert_eq!("CS1".parse::<Dscp>().unwrap().value(), 8);
    assert_eq!(
        "0xb8/0xfc".parse::<Tos>().unwrap(),
        Dscp::new(46).unwrap().tos()
    );
}

const RATE_SUFFIXES: &[&str] = &[
    "", "bit", "kbit", "mbit", "gbit", "tbit", "kibit", "mibit", "gibit", "tibit", "bps", "kbps",
    "mbps", "gbps", "tbps", "kibps", "mibps", "gibps", "tibps",
];
const SIZE_SUFFIXES: &[&str] = &[
    "", "b", "k", "kb", "m", "mb", "g", "gb", "kbit", "mbit", "gbit",
];
const TIME_SUFFIXES: &[&str] = &[
    "", "s", "sec", "secs", "ms", "msec", "msecs", "us", "usec", "usecs", "ns", "nsec", "nsecs",
];

/// A tc-style number: digits, maybe a fraction.
fn number() -> impl Strategy<Value = String> {
    (0u64..100_000_000, proptest::option::of("[0-9]{1,6}")).prop_map(|(i, f)| match f {
        Some(f) => format!("{i}.{f}"),
        None => i.to_string(),
    })
}

/// Mixed case, as tc matches suffixes case-insensitively.
fn any_case(s: &str, mask: u64) -> String {
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> (i % 64) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

proptest! {
    #[test]
    fn rate_print_parse(v in any::<u64>()) {
        let r = Rate::from_bits_per_sec(v);
        prop_assert_eq!(r.to_string().parse::<Rate>().unwrap(), r);
    }

    #[test]
    fn size_print_parse(v in any::<u64>()) {
        let s = Size::from_bytes(v);
        prop_assert_eq!(s.to_string().parse::<Size>().unwrap(), s);
    }

    #[test]
    fn time_print_parse(v in any::<u64>()) {
        let t = Time::from_ns(v);
        prop_assert_eq!(t.to_string().parse::<Time>().unwrap(), t);
    }

    #[test]
    fn class_id_print_parse(major in any::<u32>(), minor in any::<u32>()) {
        let c = ClassId::new(major, minor);
        prop_assert_eq!(c.to_string().parse::<ClassId>().unwrap(), c);
    }

    #[test]
    fn dscp_print_parse(v in 0u8..=63) {
        let d = Dscp::new(v).unwrap();
        prop_assert_eq!(d.to_string().parse::<Dscp>().unwrap(), d);
    }

    #[test]
    fn tos_print_parse(value in any::<u8>(), mask in any::<u8>()) {
        let t = Tos { value, mask };
        prop_assert_eq!(t.to_string().parse::<Tos>().unwrap(), t);
    }

    #[test]
    fn rate_parse_print(n in number(), i in 0..RATE_SUFFIXES.len(), case in any::<u64>()) {
        let s = format!("{n}{}", any_case(RATE_SUFFIXES[i], case));
        if let Ok(r) = s.parse::<Rate>() {
            prop_assert_eq!(r.to_string().parse::<Rate>().unwrap(), r, "{}", s);
        }
    }

    #[test]
    fn size_parse_print(n in number(), i in 0..SIZE_SUFFIXES.len(), case in any::<u64>()) {
        let s = format!("{n}{}", any_case(SIZE_SUFFIXES[i], case));
        if let Ok(v) = s.parse::<Size>() {
            prop_assert_eq!(v.to_string().parse::<Size>().unwrap(), v, "{}", s);
        }
    }

    #[test]
    fn time_parse_print(n in number(), i in 0..TIME_SUFFIXES.len(), case in any::<u64>()) {
        let s = format!("{n}{}", any_case(TIME_SUFFIXES[i], case));
        let v = s.parse::<Time>().unwrap();
        prop_assert_eq!(v.to_string().parse::<Time>().unwrap(), v, "{}", s);
    }

    /// Small enough numbers always parse, and integers scale exactly.
    #[test]
    fn integers_scale_exactly(i in 0u64..1_000_000) {
        prop_assert_eq!(format!("{i}mbit").parse::<Rate>().unwrap().bits_per_sec(), i * 1_000_000);
        prop_assert_eq!(format!("{i}mbps").parse::<Rate>().unwrap().bits_per_sec(), i * 8_000_000);
        prop_assert_eq!(format!("{i}kb").parse::<Size>().unwrap().bytes(), i * 1024);
        prop_assert_eq!(format!("{i}").parse::<Time>().unwrap().ns(), i * 1000);
    }

    #[test]
    fn parsers_never_panic(s in ".{0,40}") {
        let _ = s.parse::<Rate>();
        let _ = Rate::parse(&s, Some(Rate::from_bits_per_sec(u64::MAX)));
        let _ = s.parse::<Size>();
        let _ = s.parse::<Time>();
        let _ = Time::parse_default_secs(&s);
        let _ = s.parse::<ClassId>();
        let _ = s.parse::<Dscp>();
        let _ = s.parse::<Tos>();
    }

    #[test]
    fn unit_like_strings_never_panic(s in "[0-9.%:/x-]{0,30}[a-zA-Z%]{0,6}") {
        let _ = s.parse::<Rate>();
        let _ = Rate::parse(&s, Some(Rate::from_bits_per_sec(u64::MAX)));
        let _ = s.parse::<Size>();
        let _ = s.parse::<Time>();
        let _ = s.parse::<ClassId>();
        let _ = s.parse::<Tos>();
    }
}
