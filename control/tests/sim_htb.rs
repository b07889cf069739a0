//! HTB sharing semantics, proven in virtual time through the real shaper.

mod sim_util;

use sim_util::*;

/// Seed section 1.2's tree with pfifo leaves, one filter per leaf by
/// destination port.
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

fn seed_1_2_traffic(active: &[u32]) -> String {
    let mut t = String::from("duration = \"10s\"\n");
    for port in active {
        t.push_str(&format!(
            "[[source]]\nname = \"to-1:{port}\"\nrate = \"1200mbit\"\nsize = 1500\ndport = {port}\n"
        ));
    }
    t
}

#[test]
#[cfg_attr(debug_assertions, ignore = "heavy: run in release by scripts/test.sh")]
fn seed_1_2_all_saturated_get_their_rates() {
    let cfg = config(SEED_1_2);
    let r = run(&cfg, &seed_1_2_traffic(&[10, 20, 30]));
    assert_near(class(&r, "1:10").achieved_bps, 300_000_000, 0.01, "1:10");
    assert_near(class(&r, "1:20").achieved_bps, 500_000_000, 0.01, "1:20");
    assert_near(class(&r, "1:30").achieved_bps, 200_000_000, 0.01, "1:30");
    assert_near(class(&r, "1:1").achieved_bps, 1_000_000_000, 0.01, "1:1");
    for id in ["1:1", "1:10", "1:20", "1:30"] {
        assert_never_above_ceil(class(&r, id));
    }
}

#[test]
fn debug_root_burst() {
    let cfg = config(SEED_1_2);
    let mut t = seed_1_2_traffic(&[10, 20, 30]);
    t = t.replace("duration = \"10s\"", "duration = \"200ms\"");
    let r = run_with(&cfg, &t, &weir_control::sim::SimOptions { timeline_bucket: Some(100_000), ..Default::default() });
    for id in ["1:1", "1:10", "1:20", "1:30"] {
        let c = class(&r, id);
        eprintln!("{id}: burst {} cburst {} max_burst_at_ceil {} achieved {} htb {:?}", c.burst, c.cburst, c.max_burst_at_ceil, c.achieved_bps, c.htb);
        eprintln!("  first buckets {:?}", &c.timeline.bytes[..20]);
        let mut cum: i64 = 0; let mut worst = (0i64, 0usize);
        let per = (c.ceil_bps / 8 / 10_000) as i64;
        let mut minc = 0i64;
        for (i, b) in c.timeline.bytes.iter().enumerate() { cum += *b as i64 - per; if cum - minc > worst.0 { worst = (cum - minc, i) }; minc = minc.min(cum); }
        eprintln!("  worst excess {:?}", worst);
    }
}
