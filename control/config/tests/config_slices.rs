//! `[slices]`, `[[slice]]` and `[[slice_type]]` (seed section 4,
//! docs/slices.md): config/seed-4-slices.toml compiles into a class per
//! slice in both trees, with the prio, ceil and leaf of its type and
//! latency, membership by prefix and VLAN, and drop filters for isolation
//! and default-deny; every mistake is reported at its place.

use weir_config::{parse_str, Action, Config, Tree};
use weir_dataplane::qdisc::QdiscParams;
use weir_testkit::fixture::{config_path, marked};

fn seed() -> Config {
    weir_config::load(&config_path("seed-4-slices.toml"))
        .expect("config/seed-4-slices.toml loads")
        .config
}

fn class<'a>(t: &'a Tree, name: &str) -> &'a weir_config::Class {
    let i = t.class_index(name).expect("the slice's class");
    &t.classes[i as usize]
}

#[test]
fn the_seeds_three_slices_become_classes_in_both_trees() {
    let c = seed();
    let slices = c.slices.as_ref().expect("slices");
    assert_eq!(slices.slices.len(), 3);
    for tree in ["up", "down"] {
        let t = c.tree(tree).expect("tree");
        let urllc = class(t, "critical_control");
        assert_eq!(urllc.id.to_string(), "1:200");
        assert_eq!(urllc.rate.to_string(), "100Mbit");
        // URLLC: no overbooking, prio 1, fq_codel at half its 1 ms.
        assert_eq!(urllc.ceil, urllc.rate);
        assert_eq!(urllc.prio, 1);
        let Some(QdiscParams::FqCodel(q)) = urllc.qdisc else {
            panic!("{:?}", urllc.qdisc)
        };
        assert_eq!((q.target_ns, q.interval_ns), (500_000, 10_000_000));
        // eMBB: may borrow 1.5 times its guarantee; CoDel's own defaults.
        let embb = class(t, "video_streaming");
        assert_eq!(
            (embb.rate.to_string(), embb.ceil.to_string()),
            ("1Gbit".into(), "1500Mbit".into())
        );
        assert_eq!(embb.prio, 2);
        let Some(QdiscParams::FqCodel(q)) = embb.qdisc else {
            panic!("{:?}", embb.qdisc)
        };
        assert_eq!((q.target_ns, q.interval_ns), (5_000_000, 100_000_000));
        // mIoT: sfq, perturbed every 10 s.
        let miot = class(t, "iot_sensors");
        assert_eq!(miot.prio, 3);
        let Some(QdiscParams::Sfq(q)) = miot.qdisc else {
            panic!("{:?}", miot.qdisc)
        };
        assert_eq!(q.perturb_ns, 10_000_000_000);
        assert_eq!(miot.parent, t.class_index("1:1"));
    }
    let down = c.tree("down").expect("down");
    let placed = slices.download.as_ref().expect("download placement");
    assert_eq!(placed.classes, [2, 3, 4]);
    assert_eq!(
        down.default_class,
        down.class_index("other").expect("other")
    );
}

#[test]
fn isolation_and_default_deny_are_counted_drop_filters() {
    let c = seed();
    let up = c.tree("up").expect("up");
    let text = up.tree();
    // critical_control (isolation 3) is kept from both others, both ways;
    // video_streaming (2) from iot_sensors (1), both ways.
    for (from, to) in [
        (100, 101),
        (100, 102),
        (101, 100),
        (101, 102),
        (102, 100),
        (102, 101),
    ] {
        let line = format!("src 198.18.{from}.0/24 dst 198.18.{to}.0/24 action drop");
        assert!(text.contains(&line), "{line}\n{text}");
    }
    // Security 5: ICMP and SSH of critical_control go to its class, then
    // the rest of its traffic is dropped, before membership.
    let order: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("198.18.100.0/24") && !l.contains("dst 198.18.10"))
        .map(str::trim)
        .collect();
    assert_eq!(order.len(), 5, "{text}");
    assert!(
        order[0].contains("ip_proto icmp src 198.18.100.0/24 flowid 1:200"),
        "{order:?}"
    );
    assert!(
        order[3].ends_with("src 198.18.100.0/24 action drop"),
        "{order:?}"
    );
    assert!(
        order[4].contains("src 198.18.100.0/24 flowid 1:200"),
        "{order:?}"
    );
    let drops = up
        .filters
        .iter()
        .filter(|f| f.action == Action::Drop)
        .count();
    assert_eq!(drops, 7);
}

#[test]
fn allow_lets_two_slices_talk_as_their_isolation_says() {
    let text = std::fs::read_to_string(config_path("seed-4-slices.toml")).expect("read");
    // video_streaming (2) allows iot_sensors: their traffic passes.
    let embb = text.replacen(
        "isolation = 2\n",
        "isolation = 2\nallow = [\"iot_sensors\"]\n",
        1,
    );
    let c = parse_str(&embb, "s.toml").expect("valid").config;
    let t = c.tree("up").expect("up").tree();
    assert!(
        !t.contains("src 198.18.101.0/24 dst 198.18.102.0/24 action drop"),
        "{t}"
    );
    assert!(
        !t.contains("src 198.18.102.0/24 dst 198.18.101.0/24 action drop"),
        "{t}"
    );
    // critical_control (3) needs both to allow: one is not enough.
    let one = text.replacen(
        "isolation = 3\n",
        "isolation = 3\nallow = [\"video_streaming\"]\n",
        1,
    );
    let c = parse_str(&one, "s.toml").expect("valid").config;
    let t = c.tree("up").expect("up").tree();
    assert!(
        t.contains("src 198.18.100.0/24 dst 198.18.101.0/24 action drop"),
        "{t}"
    );
    let both = one.replacen(
        "isolation = 2\n",
        "isolation = 2\nallow = [\"critical_control\"]\n",
        1,
    );
    let c = parse_str(&both, "s.toml").expect("valid").config;
    let t = c.tree("up").expect("up").tree();
    assert!(
        !t.contains("src 198.18.100.0/24 dst 198.18.101.0/24 action drop"),
        "{t}"
    );
}

#[test]
fn a_custom_type_gives_its_defaults() {
    let text = std::fs::read_to_string(config_path("seed-4-slices.toml"))
        .expect("read")
        .replacen(
            "[slices]",
            "[[slice_type]]\nname = \"telemetry\"\nleaf = \"pfifo\"\nprio = 5\nceil_factor = 2.0\nisolation = 1\n\n[slices]",
            1,
        )
        + "\n[[slice]]\nname = \"meters\"\ntype = \"telemetry\"\nprefixes = [\"198.18.103.0/24\"]\nbandwidth = \"10mbit\"\n";
    let c = parse_str(&text, "s.toml").expect("valid").config;
    let t = c.tree("down").expect("down");
    let m = class(t, "meters");
    assert_eq!((m.prio, m.ceil.to_string()), (5, "20Mbit".to_string()));
    assert!(
        matches!(m.qdisc, Some(QdiscParams::Fifo(_))),
        "{:?}",
        m.qdisc
    );
}

#[test]
fn mistakes_are_reported_where_they_are() {
    let base = std::fs::read_to_string(config_path("seed-4-slices.toml")).expect("read");
    let cases = [
        (
            base.replacen("type = \"mIoT\"", "type = @\"mMTC\"", 1),
            "unknown slice type \"mMTC\"",
        ),
        (
            base.replacen("name = \"iot_sensors\"", "name = @\"video_streaming\"", 1),
            "slice \"video_streaming\" is defined twice",
        ),
        (
            base.replacen(
                "isolation = 1\n",
                "isolation = 1\nallow = [@\"nobody\"]\n",
                1,
            ),
            "`allow` names \"nobody\", which is not another slice",
        ),
        (
            base.replacen(
                "bandwidth = \"50mbit\"",
                "bandwidth = \"50mbit\"\nceil = @\"10mbit\"",
                1,
            ),
            "`ceil` 10Mbit is below the slice's `bandwidth` 50Mbit",
        ),
        (
            base.replacen("security = 2", "security = @9", 1),
            "`security`",
        ),
        (
            base.replacen("download = \"down\"   #", "download = @\"dwn\"   #", 1),
            "[slices] names tree `dwn`",
        ),
        (base.replacen("vlan = 102", "vlan = @5000", 1), "`vlan`"),
        (
            base.replacen(
                "prefixes = [\"198.18.102.0/24\"]",
                "prefixes = [@\"198.18.300.0/24\"]",
                1,
            ),
            "bad `prefixes` \"198.18.300.0/24\"",
        ),
    ];
    for (src, needle) in cases {
        let (text, line, col) = marked(&src);
        let errors = parse_str(&text, "s.toml").expect_err(needle);
        assert!(
            errors
                .iter()
                .any(|d| d.line == line && d.col == col && d.message.contains(needle)),
            "{needle} at {line}:{col}: {errors:#?}"
        );
    }
    // A slice with no [slices] to say where it goes.
    let text = base.replacen("[slices]", "[elsewhere]", 1);
    assert!(parse_str(&text, "s.toml").is_err());
}
