//! What a checked config means: defaults, order, and the spec the
//! dataplane gets.

use weir_config::{self as config, parse_str, ClassId, Tree};
use weir_dataplane::classify::{IpPrefix, L3Match, PortMatch};
use weir_dataplane::qdisc::{FifoLimit, FqCodelParams, QdiscParams, SfqParams};
use weir_dataplane::shaper::MalformedPolicy;

fn tree(text: &str) -> Tree {
    match parse_str(text, "t.toml") {
        Ok(l) => l.config.trees.into_iter().next().unwrap(),
        Err(e) => panic!("{e:#?}"),
    }
}

#[test]
fn children_listed_first_are_put_after_their_parents() {
    let t = tree(
        r#"
[tree.t]
default = "leaf"
[[tree.t.class]]
id = "1:11"
name = "leaf"
parent = "mid"
rate = "10mbit"
[[tree.t.class]]
id = "1:10"
name = "mid"
parent = "1:1"
rate = "20mbit"
[[tree.t.class]]
id = "1:1"
rate = "100mbit"
[[tree.t.class]]
id = "1:2"
parent = "1:"
rate = "1mbit"
"#,
    );
    let ids: Vec<String> = t.classes.iter().map(|c| c.id.to_string()).collect();
    assert_eq!(ids, ["1:1", "1:10", "1:11", "1:2"]);
    for (i, c) in t.classes.iter().enumerate() {
        if let Some(p) = c.parent {
            assert!((p as usize) < i);
        }
    }
    assert_eq!(t.classes[2].parent, Some(1));
    assert_eq!(
        t.classes[3].parent, None,
        "parent \"1:\" is the qdisc: top level"
    );
    assert_eq!(t.default_class, 2);
    assert_eq!(t.class_index("leaf"), Some(2));
    assert_eq!(t.class_index("1:11"), Some(2));
    assert_eq!(t.class_index("1:99"), None);
    assert_eq!(t.label(2), "1:11 (leaf)");
    assert_eq!(t.label(0), "1:1");
    assert!(t.classes[2].is_leaf() && !t.classes[1].is_leaf());
}

#[test]
fn class_defaults_are_tcs() {
    let t = tree(
        r#"
[tree.t]
default = "1:10"
[[tree.t.class]]
id = "1:1"
rate = "10gbit"
[[tree.t.class]]
id = "1:10"
parent = "1:1"
rate = "64kbit"
[[tree.t.class]]
id = "1:20"
parent = "1:1"
rate = "10mbit"
ceil = "20mbit"
[[tree.t.class]]
id = "1:30"
parent = "1:1"
rate = "5mbit"
burst = "15k"
cburst = 3000
prio = 7
quantum = 1514
"#,
    );
    let c = &t.classes;
    // ceil defaults to rate; burst = rate/hz + 1600 with hz = 1e9.
    assert_eq!(c[0].ceil, c[0].rate);
    assert_eq!(c[0].burst.bytes(), 1_250_000_000 / 1_000_000_000 + 1600);
    assert_eq!(c[1].burst.bytes(), 1600);
    assert_eq!(c[2].cburst.bytes(), 1600);
    // quantum = rate_bytes / r2q, clamped to 1000..=200000.
    assert_eq!(c[1].quantum.bytes(), 1000);
    assert_eq!(c[2].quantum.bytes(), 125_000);
    assert_eq!(c[3].quantum.bytes(), 1514);
    assert_eq!(c[3].burst.bytes(), 15 * 1024);
    assert_eq!(c[3].cburst.bytes(), 3000);
    assert_eq!(c[3].prio, 7);
    assert_eq!(c[1].prio, 0);
    assert_eq!(
        c[1].qdisc,
        Some(QdiscParams::Fifo(FifoLimit::Packets(1000)))
    );
    assert_eq!(c[0].qdisc, None);
    assert_eq!(t.r2q, 10);
    assert_eq!(t.pool, 65536);
    assert_eq!(t.malformed, MalformedPolicy::Default);
}

#[test]
fn shaper_spec_is_in_bytes_and_evaluation_order() {
    let t = tree(
        r#"
[tree.t]
default = "1:30"
link = "1gbit"
overhead = -14
mpu = 64
malformed = "drop"
pool = 4096
[[tree.t.class]]
id = "1:1"
rate = "100%"
[[tree.t.class]]
id = "1:10"
parent = "1:1"
rate = "30%"
ceil = "62.5%"
[[tree.t.class]]
id = "1:30"
parent = "1:1"
rate = "100bit"
[[tree.t.filter]]
prio = 2
flowid = "1:30"
sport = "1024-2048"
[[tree.t.filter]]
prio = 1
flowid = "1:10"
dport = "0x50/0xfff0"
src = "198.18.0.0/15"
protocol = "all"
[[tree.t.filter]]
prio = 2
flowid = "1:10"
dscp = "EF"
vlan = 100
ip_proto = "udp"
[[tree.t.filter]]
flowid = "1:10"
dst = "2001:db8::/32"
"#,
    );
    let s = t.shaper_spec(42);
    assert_eq!(s.htb.seed, 42);
    assert_eq!(s.htb.overhead, -14);
    assert_eq!(s.htb.mpu, 64);
    assert_eq!(s.htb.pool_capacity, 4096);
    assert_eq!(s.malformed, MalformedPolicy::Drop);
    assert_eq!(s.default_class, 2);
    assert_eq!(s.htb.classes[0].rate, 125_000_000);
    assert_eq!(s.htb.classes[1].rate, 37_500_000);
    assert_eq!(s.htb.classes[1].ceil, 78_125_000);
    // 100 bit/s is 12 bytes/s: tc truncates the same way.
    assert_eq!(s.htb.classes[2].rate, 12);
    // prio 1 first; then the two prio 2 filters in file order; then the
    // one without prio (tc's 0xC000).
    let targets: Vec<u32> = s.filters.iter().map(|f| f.target).collect();
    assert_eq!(targets, [1, 2, 1, 1]);
    assert_eq!(
        t.filters.iter().map(|f| f.prio).collect::<Vec<_>>(),
        [1, 2, 2, 0xC000]
    );
    let f = &s.filters[0];
    assert_eq!(f.l3, L3Match::Any);
    assert_eq!(
        f.dport,
        Some(PortMatch::Masked {
            value: 0x50,
            mask: 0xfff0
        })
    );
    assert_eq!(
        f.src,
        Some(IpPrefix {
            v6: false,
            addr: 0xffff_0000_0000 | 0xc612_0000,
            len: 15
        })
    );
    assert_eq!(
        s.filters[1].sport,
        Some(PortMatch::Range { lo: 1024, hi: 2048 })
    );
    let f = &s.filters[2];
    assert_eq!(f.tos, Some((46 << 2, 0xfc)));
    assert_eq!(f.vlan, Some(100));
    assert_eq!(f.ip_proto, Some(17));
    assert_eq!(
        s.filters[3].dst,
        Some(IpPrefix {
            v6: true,
            addr: 0x2001_0db8u128 << 96,
            len: 32
        })
    );
    assert_eq!(s.filters[3].target, 1);
}

/// `action = "drop"`: tc's `action drop`. Drop filters are numbered in
/// evaluation order for the core's counters; `weir check` and `weir tc`
/// say `action drop`.
#[test]
fn drop_filters_are_numbered_in_evaluation_order() {
    use weir_config::Action;
    use weir_dataplane::shaper::FILTER_DROP;
    let filters = r#"
[[tree.t.filter]]
prio = 5
action = "drop"
src = "198.18.2.0/24"

[[tree.t.filter]]
prio = 1
action = "drop"
src = "198.18.1.0/24"
dst = "198.18.3.0/24"

[[tree.t.filter]]
prio = 3
flowid = "1:10"
dport = 22
"#;
    let t = tree(&format!("{}{filters}", weir_testkit::fixture::TREE_T));
    let actions: Vec<(u16, Action, u32)> = t
        .filters
        .iter()
        .map(|f| (f.prio, f.action, f.spec.target))
        .collect();
    assert_eq!(
        actions,
        [
            (1, Action::Drop, FILTER_DROP),
            (3, Action::Class(1), 1),
            (5, Action::Drop, FILTER_DROP | 1),
        ]
    );
    let spec = t.shaper_spec(1);
    assert_eq!(spec.filters[2].target, FILTER_DROP | 1);
    let check = t.tree();
    assert!(
        check.contains("src 198.18.1.0/24 dst 198.18.3.0/24 action drop"),
        "{check}"
    );
}

#[test]
fn qdisc_defaults_and_units() {
    let t = tree(
        r#"
[tree.t]
default = "1:1"
link = "100mbit"
[[tree.t.class]]
id = "1:1"
rate = 8000
qdisc = { kind = "sfq", perturb = 10 }
[[tree.t.class]]
id = "1:2"
rate = 8000
qdisc = { kind = "sfq", perturb = "500ms", quantum = "3k", limit = 50, divisor = 256, flows = 64, depth = 10 }
[[tree.t.class]]
id = "1:3"
rate = 8000
qdisc = { kind = "fq_codel", target = 5000, interval = "100ms", ce_threshold = "1ms", ecn = false, memory_limit = "4mb", drop_batch = 8 }
[[tree.t.class]]
id = "1:4"
rate = 8000
qdisc = { kind = "red", min = 10000, max = 30000, avpkt = 1000, burst = 20, probability = 0.1 }
[[tree.t.class]]
id = "1:5"
rate = 8000
qdisc = { kind = "red", limit = "400kb", avpkt = 1000, ecn = true, harddrop = true, adaptive = true, bandwidth = "10%" }
[[tree.t.class]]
id = "1:6"
rate = 8000
qdisc = { kind = "bfifo" }
[[tree.t.class]]
id = "1:7"
rate = 8000
qdisc = { kind = "bfifo", limit = "64kb" }
[[tree.t.class]]
id = "1:8"
rate = 8000
qdisc = { kind = "fq_codel" }
"#,
    );
    let q = |i: usize| t.classes[i].qdisc.unwrap();
    assert_eq!(
        q(0),
        QdiscParams::Sfq(SfqParams {
            perturb_ns: 10_000_000_000,
            ..SfqParams::default()
        })
    );
    assert_eq!(
        q(1),
        QdiscParams::Sfq(SfqParams {
            perturb_ns: 500_000_000,
            quantum: 3072,
            limit: 50,
            divisor: 256,
            flows: 50,
            depth: 10,
        })
    );
    assert_eq!(
        q(2),
        QdiscParams::FqCodel(FqCodelParams {
            target_ns: 5_000_000,
            interval_ns: 100_000_000,
            ce_threshold_ns: Some(1_000_000),
            ecn: false,
            memory_limit: 4 << 20,
            drop_batch_size: 8,
            ..FqCodelParams::default()
        })
    );
    let QdiscParams::Red(r) = q(3) else { panic!() };
    assert_eq!((r.min, r.max, r.avpkt, r.burst), (10000, 30000, 1000, 20));
    assert_eq!(r.limit, 120_000, "no limit: weir uses 4 x max");
    assert_eq!(r.probability, (0.1f64 * 4_294_967_296.0) as u32);
    assert_eq!(r.bandwidth, 1_250_000, "tc's 10Mbit default, in bytes/s");
    assert!(!r.ecn && !r.harddrop && !r.adaptive);
    let QdiscParams::Red(r) = q(4) else { panic!() };
    // tc: max = limit / 4, min = max / 3, burst = (2 min + max) / (3 avpkt).
    assert_eq!(r.limit, 409_600);
    assert_eq!(r.max, 102_400);
    assert_eq!(r.min, 34_133);
    assert_eq!(r.burst, (2 * 34_133 + 102_400) / 3000);
    assert_eq!(r.probability, (0.02f64 * 4_294_967_296.0) as u32);
    assert_eq!(r.bandwidth, 1_250_000, "10% of 100mbit");
    assert!(r.ecn && r.harddrop && r.adaptive);
    assert_eq!(q(5), QdiscParams::Fifo(FifoLimit::Bytes(1000 * 1514)));
    assert_eq!(q(6), QdiscParams::Fifo(FifoLimit::Bytes(65536)));
    assert_eq!(q(7), QdiscParams::FqCodel(FqCodelParams::default()));
}

#[test]
fn pairs_name_trees() {
    let l = parse_str(
        r#"
[[pair]]
name = "a"
inside = "eth0"
outside = "eth1"
download = "d"
upload = "u"

[tree.u]
default = "1:1"
[[tree.u.class]]
id = "1:1"
rate = "1mbit"

[tree.d]
default = "2:1"
[[tree.d.class]]
id = "2:1"
rate = "1mbit"
"#,
        "t.toml",
    )
    .unwrap();
    let c = &l.config;
    assert_eq!(
        c.trees.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["u", "d"]
    );
    assert_eq!(c.pairs[0].upload, Some(0));
    assert_eq!(c.pairs[0].download, Some(1));
    assert_eq!(c.tree("d").unwrap().classes[0].id, ClassId::new(2, 1));
    assert!(l.warnings.is_empty(), "{:#?}", l.warnings);
}

#[test]
fn inline_tables_and_arrays_work_too() {
    let t = tree(
        r#"
tree = { t = { default = "1:1", class = [ { id = "1:1", rate = "1mbit" } ], filter = [ { flowid = "1:1", dport = 53 } ] } }
"#,
    );
    assert_eq!(t.classes.len(), 1);
    assert_eq!(t.filters.len(), 1);
}

#[test]
fn load_and_cli_check() {
    let dir = std::env::temp_dir().join(format!("weir-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        "[tree.t]\ndefault = \"1:1\"\n[[tree.t.class]]\nid = \"1:1\"\nrate = \"1mbit\"\n",
    )
    .unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[tree.t]\ndefault = \"1:1\"\n[[tree.t.class]]\nid = \"1:1\"\nrate = \"1 furlong\"\n",
    )
    .unwrap();
    let missing = dir.join("missing.toml");
    let binary = dir.join("binary.toml");
    std::fs::write(&binary, b"[tree.t]\n\xff\xfe").unwrap();

    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(config::cli_check(&good, &mut out, &mut err), 0);
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("class htb 1:1 root prio 0 quantum 12500 rate 1Mbit ceil 1Mbit burst 1600b cburst 1600b"), "{out}");
    assert!(out.contains("qdisc pfifo limit 1000p"), "{out}");

    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(config::cli_check(&bad, &mut out, &mut err), 2);
    let err = String::from_utf8(err).unwrap();
    assert!(
        err.starts_with(&format!(
            "{}:5:8: `rate`: unknown unit \"furlong\"",
            bad.display()
        )),
        "{err}"
    );

    let e = config::load(&missing).unwrap_err();
    assert_eq!((e.len(), e[0].line, e[0].col), (1, 0, 0));
    assert!(e[0].message.contains("can't read"), "{e:?}");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(config::cli_check(&missing, &mut out, &mut err), 2);

    let e = config::load(&binary).unwrap_err();
    assert_eq!((e[0].line, e[0].col), (2, 1));
    assert!(e[0].message.contains("not UTF-8"), "{e:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn qdisc_as_a_sub_table() {
    let t = tree(
        r#"
[tree.t]
default = "1:1"
[[tree.t.class]]
id = "1:1"
rate = "1mbit"
[tree.t.class.qdisc]
kind = "pfifo"
limit = 7
"#,
    );
    assert_eq!(
        t.classes[0].qdisc,
        Some(QdiscParams::Fifo(FifoLimit::Packets(7)))
    );
}

/// Thousands of classes and filters check in linear-ish time (a wide tree
/// of inner classes once made the children-rate check quadratic).
#[test]
fn large_tree() {
    let n = 3000;
    let mut s = String::from("[tree.t]\ndefault = \"1:2\"\nr2q = 1\n[[tree.t.class]]\nid = \"1:1\"\nrate = \"100gbit\"\n");
    for i in 0..n {
        let (inner, leaf) = (0x10000 + 2 * i, 0x10001 + 2 * i);
        s.push_str(&format!(
            "[[tree.t.class]]\nid = \"1:{inner:x}\"\nparent = \"1:1\"\nrate = \"1mbit\"\n[[tree.t.class]]\nid = \"1:{leaf:x}\"\nparent = \"1:{inner:x}\"\nrate = \"1mbit\"\n[[tree.t.filter]]\nflowid = \"1:{leaf:x}\"\ndst = \"198.18.{}.{}/32\"\n",
            i / 256,
            i % 256
        ));
    }
    s.push_str("[[tree.t.class]]\nid = \"1:2\"\nparent = \"1:1\"\nrate = \"1mbit\"\n");
    let t = tree(&s);
    assert_eq!(t.classes.len(), 2 * n as usize + 2);
    assert_eq!(t.filters.len(), n as usize);
}
