//! 10,000 subscribers' circuits from a generated ShapedDevices.csv and
//! network.json, in virtual time through the real shaper: each circuit
//! with traffic gets its plan, and an access point whose circuits all
//! want more than it has holds its limit while each of them keeps its
//! guarantee.

mod sim_util;

use sim_util::*;
use weir_config::subscribers::Synth;

const CIRCUITS: u32 = 10_000;
const APS: u32 = 200;
/// Circuits offered more than their plan's max: 0, 101, 202, … (circuit
/// `i` hangs under AP `i % 200`, so at most one or two per access point,
/// far below its limit, and every tier of plans).
const SAMPLED: u32 = 100;
const STRIDE: u32 = 101;
/// The access point whose 50 circuits are all offered more than their max
/// (no sampled circuit hangs under it: 101·k ≡ 7 (mod 200) needs k = 107).
const BUSY_AP: u32 = 7;

/// The download tree: the link far above what the sample asks for, so
/// only the plans (and the busy access point) limit.
fn config_text() -> String {
    r#"
[subscribers]
devices = "ShapedDevices.csv"
network = "network.json"
download = "down"
parent = "1:1"

[tree.down]
default = "1:ffff"

[[tree.down.class]]
id = "1:1"
rate = "100gbit"

[[tree.down.class]]
id = "1:ffff"
parent = "1:1"
rate = "10mbit"
"#
    .to_string()
}

#[test]
#[cfg_attr(debug_assertions, ignore = "heavy: run in release by scripts/test.sh")]
fn ten_thousand_circuits_each_get_their_plan() {
    let dir = std::env::temp_dir().join(format!("weir-sim-subscribers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("make the directory");
    let g = Synth::new(CIRCUITS, APS);
    std::fs::write(dir.join("ShapedDevices.csv"), g.devices_csv()).expect("write");
    std::fs::write(dir.join("network.json"), g.network_json()).expect("write");
    std::fs::write(dir.join("weir.toml"), config_text()).expect("write");
    let loaded = weir_config::load(&dir.join("weir.toml"));
    let _ = std::fs::remove_dir_all(&dir);
    let c = match loaded {
        Ok(l) => l.config,
        Err(e) => panic!(
            "{:?}",
            e.iter().map(ToString::to_string).collect::<Vec<_>>()
        ),
    };
    let t = c.tree("down").expect("the tree");
    assert_eq!(t.classes.len() as u32, 2 + APS + APS / 10 + CIRCUITS);

    // 1500-byte frames at 1.2 times each sampled circuit's max, and at
    // 1.2 times the max of every circuit of the busy access point.
    let mut traffic = String::from("duration = \"3s\"\nwarmup = \"1s\"\nseed = 1\n");
    let busy: Vec<u32> = (BUSY_AP..CIRCUITS).step_by(APS as usize).collect();
    let sampled: Vec<u32> = (0..SAMPLED).map(|k| k * STRIDE).collect();
    assert!(sampled.iter().all(|i| i % APS != BUSY_AP));
    for &i in sampled.iter().chain(&busy) {
        let dmax = Synth::tier(i).1;
        traffic.push_str(&format!(
            "[[source]]\nname = \"c{i}\"\nkind = \"cbr\"\nrate = \"{}kbit\"\nsize = 1500\ndst = \"{}\"\n",
            (dmax * 1200.0) as u64,
            g.address(i).expect("in range")
        ));
    }
    let r = run(&c, &traffic);
    // A circuit's class is labelled `1:MINOR (ID)`, a node's `1:MINOR (NAME)`.
    let class = |r: &'_ Report, name: &str| -> ClassReport {
        let tail = format!(" ({name})");
        r.classes
            .iter()
            .find(|k| k.label.ends_with(&tail))
            .unwrap_or_else(|| panic!("no class {name} in the report"))
            .clone()
    };

    // Each sampled circuit: its ceil (the plan's max), ±1 %.
    for &i in &sampled {
        let k = class(&r, &format!("c{i}"));
        let want = (Synth::tier(i).1 * 1e6) as u64;
        assert_eq!(k.ceil_bps, want);
        assert_near(k.achieved_bps, want, 0.01, &format!("circuit c{i}"));
    }
    // The busy access point: its limit, ±1 %, shared so that every
    // circuit has at least its min (HTB: each is served its rate first,
    // the rest by quantum).
    let ap = class(&r, &format!("AP_{BUSY_AP}"));
    assert!(
        ap.offered_bps > ap.ceil_bps * 2,
        "the access point is oversubscribed: {} offered, ceil {}",
        mbit(ap.offered_bps),
        mbit(ap.ceil_bps)
    );
    assert_near(ap.achieved_bps, ap.ceil_bps, 0.01, &format!("AP_{BUSY_AP}"));
    for &i in &busy {
        let k = class(&r, &format!("c{i}"));
        assert!(
            k.achieved_bps as f64 >= k.rate_bps as f64 * 0.99,
            "circuit c{i} under the busy AP: {} Mbit/s, its min is {}",
            mbit(k.achieved_bps),
            mbit(k.rate_bps)
        );
        assert!(
            k.achieved_bps <= k.ceil_bps + k.ceil_bps / 100,
            "c{i} above its max"
        );
    }
    // Nothing else was sent anywhere.
    let silent = r
        .classes
        .iter()
        .filter(|k| k.leaf && k.offered.packets == 0)
        .count();
    assert_eq!(
        silent as u32,
        CIRCUITS - sampled.len() as u32 - busy.len() as u32 + 1
    );
}
