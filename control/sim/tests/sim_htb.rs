//! HTB sharing semantics, proven in virtual time through the real shaper:
//! guaranteed rates, prio-ordered borrowing, ceilings at every level.

mod sim_util;

use sim_util::*;

/// Seed section 1.2's tree (pfifo leaves instead of pfifo/SFQ/RED: this is
/// about HTB sharing), one filter per leaf by destination port.
const SEED_1_2: &str = r#"
[tree.up]
default = "1:30"

[[tree.up.class]]
id = "1:1"
rate = "1000mbit"
ceil = "1000mbit"

[[tree.up.class]]
id = "1:10"
parent = "1:1"
rate = "300mbit"
ceil = "600mbit"
prio = 1
qdisc = { kind = "pfifo", limit = 1000 }

[[tree.up.class]]
id = "1:20"
parent = "1:1"
rate = "500mbit"
ceil = "800mbit"
prio = 2
qdisc = { kind = "pfifo", limit = 1000 }

[[tree.up.class]]
id = "1:30"
parent = "1:1"
rate = "200mbit"
ceil = "1000mbit"
prio = 3
qdisc = { kind = "pfifo", limit = 1000 }

[[tree.up.filter]]
dport = 10
flowid = "1:10"

[[tree.up.filter]]
dport = 20
flowid = "1:20"

[[tree.up.filter]]
dport = 30
flowid = "1:30"
"#;

/// One 1500-byte CBR source per listed leaf (by minor), each offering
/// 1200 Mbit/s: above every ceil of the tree.
fn seed_1_2_traffic(active: &[u32]) -> String {
    let mut t = String::from("duration = \"10s\"\n");
    for minor in active {
        t.push_str(&format!(
            "[[source]]\nname = \"to-1:{minor}\"\nrate = \"1200mbit\"\nsize = 1500\ndport = {minor}\n"
        ));
    }
    t
}

fn check_ceilings(r: &sim_util::Report, ids: &[&str]) {
    for id in ids {
        assert_never_above_ceil(r, id);
    }
}

#[test]
#[cfg_attr(debug_assertions, ignore = "heavy: run in release by scripts/test.sh")]
fn seed_1_2_all_saturated_get_their_rates() {
    let r = run(&config(SEED_1_2), &seed_1_2_traffic(&[10, 20, 30]));
    assert_near(class(&r, "1:10").achieved_bps, 300_000_000, 0.01, "1:10");
    assert_near(class(&r, "1:20").achieved_bps, 500_000_000, 0.01, "1:20");
    assert_near(class(&r, "1:30").achieved_bps, 200_000_000, 0.01, "1:30");
    assert_near(class(&r, "1:1").achieved_bps, 1_000_000_000, 0.01, "1:1");
    check_ceilings(&r, &["1:1", "1:10", "1:20", "1:30"]);
}

#[test]
#[cfg_attr(debug_assertions, ignore = "heavy: run in release by scripts/test.sh")]
fn seed_1_2_idle_low_class_excess_goes_to_prio_1_first() {
    // 800 Mbit/s of guarantees are used; the idle 200 are offered to prio 1
    // (1:10) first, which takes all of it (300 + 200 < its 600 ceil).
    let r = run(&config(SEED_1_2), &seed_1_2_traffic(&[10, 20]));
    assert_near(class(&r, "1:10").achieved_bps, 500_000_000, 0.01, "1:10");
    assert_near(class(&r, "1:20").achieved_bps, 500_000_000, 0.01, "1:20");
    assert_eq!(class(&r, "1:30").sent.packets, 0);
    check_ceilings(&r, &["1:1", "1:10", "1:20"]);
}

#[test]
#[cfg_attr(debug_assertions, ignore = "heavy: run in release by scripts/test.sh")]
fn seed_1_2_alone_a_class_reaches_its_ceil() {
    let r = run(&config(SEED_1_2), &seed_1_2_traffic(&[20]));
    assert_near(class(&r, "1:20").achieved_bps, 800_000_000, 0.01, "1:20");
    check_ceilings(&r, &["1:1", "1:20"]);
}

/// Seed section 3.1's file as shipped, plus one filter per leaf by
/// destination port = the class minor (the script has no filters).
fn seed_3_1() -> weir_config::Config {
    let mut text = seed_config("seed-3.1-tiers.toml");
    for minor in [11, 12, 13, 21, 22, 23, 31, 32, 33, 40] {
        text.push_str(&format!(
            "\n[[tree.eth1.filter]]\ndport = {minor}\nflowid = \"1:{minor}\"\n"
        ));
    }
    config(&text)
}

/// (leaf minor, rate, ceil) in Mbit/s, from the seed.
const LEAVES_3_1: [(u32, u64, u64); 10] = [
    (11, 1600, 3000),
    (12, 1600, 2800),
    (13, 800, 1400),
    (21, 1400, 2500),
    (22, 1400, 2000),
    (23, 700, 1000),
    (31, 800, 1500),
    (32, 800, 1200),
    (33, 400, 600),
    (40, 500, 1000),
];

/// Each listed leaf offered 1.2 x its ceil in 1500-byte packets.
fn seed_3_1_traffic(active: &[u32]) -> String {
    let mut t = String::from("duration = \"10s\"\n");
    for &(minor, _, ceil) in LEAVES_3_1.iter().filter(|l| active.contains(&l.0)) {
        t.push_str(&format!(
            "[[source]]\nname = \"to-1:{minor}\"\nrate = \"{}mbit\"\nsize = 1500\ndport = {minor}\n",
            ceil * 12 / 10
        ));
    }
    t
}

const TIERS_3_1: [&str; 5] = ["1:1", "1:10", "1:20", "1:30", "1:40"];

#[test]
#[cfg_attr(debug_assertions, ignore = "heavy: run in release by scripts/test.sh")]
fn seed_3_1_all_leaves_saturated() {
    let all: Vec<u32> = LEAVES_3_1.iter().map(|l| l.0).collect();
    let r = run(&seed_3_1(), &seed_3_1_traffic(&all));
    for (minor, rate, ceil) in LEAVES_3_1 {
        let id = format!("1:{minor}");
        let got = class(&r, &id).achieved_bps;
        assert!(
            got as f64 >= rate as f64 * 1e6 * 0.99,
            "{id}: {:.3} Mbit/s, below its rate {rate} Mbit/s - 1%",
            mbit(got)
        );
        assert!(
            got as f64 <= ceil as f64 * 1e6 * 1.01,
            "{id}: {:.3} Mbit/s, above its ceil {ceil} Mbit/s + 1%",
            mbit(got)
        );
    }
    for id in TIERS_3_1 {
        let c = class(&r, id);
        assert!(
            c.achieved_bps as f64 <= c.ceil_bps as f64 * 1.01,
            "{id}: {:.3} Mbit/s above its ceil",
            mbit(c.achieved_bps)
        );
    }
    // The leaves' rates add up to the root's: nothing is left to borrow.
    assert_near(class(&r, "1:1").achieved_bps, 10_000_000_000, 0.01, "1:1");
    assert_eq!(class(&r, "1:999").sent.packets, 0);
    for (minor, _, _) in LEAVES_3_1 {
        assert_never_above_ceil(&r, &format!("1:{minor}"));
    }
    for id in TIERS_3_1 {
        assert_never_above_ceil(&r, id);
    }
}

#[test]
#[cfg_attr(debug_assertions, ignore = "heavy: run in release by scripts/test.sh")]
fn seed_3_1_idle_leaves_lend_to_siblings_up_to_each_ceil() {
    // Premium: all three busy, wanting 3000 + 2800 + 1400 = 7200 > the
    // tier's 7000 ceil. Borrowing goes by prio: 1:11 (prio 1) and 1:12
    // (prio 2) reach their ceils, 1:13 (prio 3) keeps its 800 rate plus the
    // 400 left under the tier's ceil.
    // Standard: only 1:23 busy; its idle siblings lend it the tier's rate,
    // but it stops at its own 1000 ceil. Basic: only 1:33, stops at 600.
    // Total 8600 < the root's 10000: no one is short of the root.
    let r = run(&seed_3_1(), &seed_3_1_traffic(&[11, 12, 13, 23, 33]));
    let want = [
        ("1:11", 3000),
        ("1:12", 2800),
        ("1:13", 1200),
        ("1:10", 7000),
        ("1:23", 1000),
        ("1:20", 1000),
        ("1:33", 600),
        ("1:30", 600),
        ("1:1", 8600),
    ];
    for (id, mbit_s) in want {
        assert_near(class(&r, id).achieved_bps, mbit_s * 1_000_000, 0.01, id);
    }
    for id in [
        "1:11", "1:12", "1:13", "1:23", "1:33", "1:10", "1:20", "1:30", "1:1",
    ] {
        assert_never_above_ceil(&r, id);
    }
    for idle in ["1:21", "1:22", "1:31", "1:32", "1:40"] {
        assert_eq!(class(&r, idle).sent.packets, 0, "{idle}");
    }
}
