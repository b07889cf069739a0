//! No input makes the loader panic: arbitrary text, arbitrary bytes, and
//! config-shaped documents with random values.

use proptest::prelude::*;
use weir_config::{parse_bytes, parse_str};
use weir_dataplane::shaper::Shaper;

/// Values that are sometimes right and often wrong for any key.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("\"1:1\"".to_string()),
        Just("\"1:10\"".to_string()),
        Just("\"1:\"".to_string()),
        Just("\"leaf\"".to_string()),
        Just("\"100%\"".to_string()),
        Just("\"50%\"".to_string()),
        Just("\"1mbit\"".to_string()),
        Just("\"10gbit\"".to_string()),
        Just("\"5ms\"".to_string()),
        Just("\"0x50/0xfff0\"".to_string()),
        Just("\"10-5\"".to_string()),
        Just("\"10.0.0.0/8\"".to_string()),
        Just("\"::/0\"".to_string()),
        Just("\"EF\"".to_string()),
        Just("\"tcp\"".to_string()),
        Just("\"ip\"".to_string()),
        Just("\"pfifo\"".to_string()),
        Just("{ kind = \"red\", min = 10, max = 30, avpkt = 1 }".to_string()),
        Just("{ kind = \"sfq\", divisor = 0 }".to_string()),
        Just("{ kind = \"fq_codel\", target = \"0\" }".to_string()),
        Just("{ kind = \"red\", avpkt = 1, limit = 4294967295 }".to_string()),
        Just("{ kind = \"red\", avpkt = 4294967295, min = 4294967295 }".to_string()),
        Just("{ value = 300, mask = -1 }".to_string()),
        Just("true".to_string()),
        Just("1.5".to_string()),
        Just("[]".to_string()),
        Just("\"<0.1\"".to_string()),
        Just("\">1000\"".to_string()),
        Just("\"160-320\"".to_string()),
        Just("[5060, \"10000-20000\"]".to_string()),
        Just("[\"*.a.test\", \"b.test\"]".to_string()),
        Just("{ pps = 5, hold = \"5s\" }".to_string()),
        Just("\"if-unmarked\"".to_string()),
        Just("\"5s\"".to_string()),
        any::<i64>().prop_map(|i| i.to_string()),
        (0i64..70000).prop_map(|i| i.to_string()),
        "\"[ -~]{0,12}\"".prop_map(|s| s.replace('\\', "")),
    ]
}

fn key() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "id",
        "name",
        "parent",
        "rate",
        "ceil",
        "burst",
        "cburst",
        "prio",
        "quantum",
        "qdisc",
        "flowid",
        "protocol",
        "ip_proto",
        "sport",
        "dport",
        "src",
        "dst",
        "dscp",
        "tos",
        "vlan",
        "default",
        "link",
        "r2q",
        "overhead",
        "mpu",
        "malformed",
        "pool",
        "limit",
        "kind",
        "upload",
        "download",
        "inside",
        "outside",
        "class",
        "remark",
        "wash",
        "ports",
        "sni",
        "host",
        "avg_size",
        "iat_variance",
        "regular",
        "bursty",
        "bulk",
        "long_lived",
        "min_packets",
        "flows",
        "idle_timeout",
        "inspect_slots",
        "inspect_packets",
        "bulk_window",
        "pps",
        "hold",
    ])
}

fn section() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec![
            "[[tree.t.class]]",
            "[[tree.t.filter]]",
            "[[pair]]",
            "[tree.u]",
            "[[tree.u.class]]",
            "[tree.t.class.qdisc]",
            "[tree.t.filter.tos]",
            "[tree.t.class.rate]",
            "[tree.t.apps]",
            "[[tree.t.app]]",
            "[[tree.t.app.match]]",
            "[tree.t.app.match.bulk]",
        ]),
        prop::collection::vec((key(), value()), 0..6),
    )
        .prop_map(|(h, kvs)| {
            let mut s = format!("{h}\n");
            let mut seen = std::collections::HashSet::new();
            for (k, v) in kvs {
                if seen.insert(k) {
                    s.push_str(&format!("{k} = {v}\n"));
                }
            }
            s
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(s in ".{0,300}") {
        let _ = parse_str(&s, "fuzz.toml");
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_bytes(&b, "fuzz.toml");
    }

    /// Config-shaped documents reach the deep checks; whatever they
    /// accept must build in the dataplane.
    #[test]
    fn config_shaped_documents_never_panic(
        base in any::<bool>(),
        sections in prop::collection::vec(section(), 0..12),
    ) {
        // Half the time start from a valid tree, so appended classes and
        // filters get as far as the cross-checks and the dataplane.
        let mut text = String::new();
        if base {
            text.push_str("[tree.t]\ndefault = \"1:10\"\nlink = \"1gbit\"\n[[tree.t.class]]\nid = \"1:1\"\nrate = \"1gbit\"\n[[tree.t.class]]\nid = \"1:10\"\nname = \"leaf\"\nparent = \"1:1\"\nrate = \"10mbit\"\n");
        }
        text.push_str(&sections.concat());
        if let Ok(l) = parse_str(&text, "fuzz.toml") {
            for t in &l.config.trees {
                let _ = t.tree();
                // Small tables: the test is about checks, not allocation.
                let mut spec = t.shaper_spec(1);
                spec.apps.flows = spec.apps.flows.min(1024);
                spec.apps.inspect_slots = spec.apps.inspect_slots.min(64);
                prop_assert!(Shaper::new(&spec, 0).is_ok(), "{}", text);
            }
        }
    }
}
