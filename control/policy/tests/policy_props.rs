//! The policy engine's invariants under random metrics and clocks: at
//! every tick, every parent's children fit its rate, every policy class
//! stays within its bounds, ceil >= rate, classes no rule names never
//! move, the emitted changes replay to the engine's state, and the same
//! inputs give the same decisions.

use proptest::prelude::*;

use weir_config::rules::Weekday;
use weir_config::{parse_str, Config};
use weir_policy::{
    ClassMetrics, Decision, Engine, InterfaceMetrics, LocalTime, Metrics, Shaping, TreeMetrics,
};

/// Three levels, inner and leaf policies, throttles and sets that fight
/// each other and the parents, a throttle on the root that must be
/// refused, schedules crossing midnight, penalties.
const CONFIG: &str = r#"
[[pair]]
name = "p"
inside = "in0"
outside = "out0"
upload = "up"

[tree.up]
link = "100mbit"
default = "1:30"
r2q = 100

[[tree.up.class]]
id = "1:1"
rate = "100mbit"

[[tree.up.class]]
id = "1:10"
name = "a"
parent = "1:1"
rate = "50mbit"
ceil = "100mbit"

[[tree.up.class]]
id = "1:11"
name = "a1"
parent = "1:10"
rate = "20mbit"
ceil = "100mbit"

[[tree.up.class]]
id = "1:12"
name = "a2"
parent = "1:10"
rate = "20mbit"
ceil = "60mbit"

[[tree.up.class]]
id = "1:20"
name = "b"
parent = "1:1"
rate = "20mbit"
ceil = "100mbit"

[[tree.up.class]]
id = "1:30"
name = "c"
parent = "1:1"
rate = "10mbit"
ceil = "100mbit"

[[tree.up.class]]
id = "1:40"
name = "untouched"
parent = "1:1"
rate = "5mbit"
ceil = "10mbit"

[[policy]]
name = "a"
tree = "up"
class = "a"
min_rate = "40mbit"
max_rate = "70mbit"
adjust = { high = "80%", low = "40%", step = "10mbit", every = "3s" }

[[policy]]
name = "a1"
tree = "up"
class = "a1"
min_rate = "10mbit"
max_rate = "40mbit"
max_ceil = "100mbit"
adjust = { high = "80%", low = "40%", step = "25%", every = "2s" }
schedule = [
  { days = "mon-fri", hours = "22:00-06:00", rate = "30mbit", ceil = "50mbit" },
  { days = "sat", hours = "06:00-24:00", rate = "12mbit" },
]
penalty = { sla = "a2-busy", factor = 0.5 }

[[policy]]
name = "b"
tree = "up"
class = "b"
min_rate = "10mbit"
max_rate = "50mbit"
adjust = { high = "70%", low = "20%", step = "7mbit", every = "1s" }
penalty = { sla = "hot", factor = 0.3 }

[[sla]]
name = "hot"
interface = "out0"
when = "utilization > 70% for 3s"
actions = [{ throttle = { tree = "up", class = "c", factor = 0.5 } }, { log = true }]

[[sla]]
name = "a2-busy"
tree = "up"
class = "a2"
when = "utilization > 50% for 2s"
actions = [{ set = { rate = "45mbit", ceil = "60mbit" } }]

[[sla]]
name = "c-drops"
tree = "up"
class = "c"
when = "drops > 10/s"
actions = [{ set = { tree = "up", class = "c", rate = "80mbit", ceil = "100mbit" } }]
restore = false

[[sla]]
name = "crush"
interface = "out0"
when = "rate < 5mbit for 2s"
actions = [{ throttle = { tree = "up", class = "1:1", factor = 0.2 } }, { throttle = { tree = "up", class = "a", factor = 0.1 } }]
"#;

const UNTOUCHED: u32 = 6;

fn config() -> Config {
    parse_str(CONFIG, "props.toml").unwrap().config
}

/// One tick's random inputs: seconds since the last tick, a local time, and
/// per class a utilization (percent of its rate) and drops.
#[derive(Clone, Debug)]
struct Step {
    dt: u64,
    day: usize,
    minute: u16,
    tx_mbit: u64,
    util: Vec<u64>,
    drops: Vec<u64>,
}

fn step() -> impl Strategy<Value = Step> {
    (
        1u64..4,
        0usize..7,
        0u16..1440,
        0u64..110,
        proptest::collection::vec(0u64..150, 7),
        proptest::collection::vec(prop_oneof![4 => Just(0u64), 1 => 0u64..40], 7),
    )
        .prop_map(|(dt, day, minute, tx_mbit, util, drops)| Step {
            dt,
            day,
            minute,
            tx_mbit,
            util,
            drops,
        })
}

fn metrics(e: &Engine, s: &Step) -> Metrics {
    let classes = (0..7u32)
        .map(|c| {
            let a = e.applied(0, c).unwrap();
            ClassMetrics {
                rate_bps: a.rate * 8 * s.util[c as usize] / 100,
                rate: a.rate,
                ceil: a.ceil,
                drops: s.drops[c as usize],
                ..ClassMetrics::default()
            }
        })
        .collect();
    Metrics {
        interval_ns: s.dt * 1_000_000_000,
        trees: vec![TreeMetrics { classes }],
        interfaces: vec![InterfaceMetrics {
            name: "out0".into(),
            tx_bps: s.tx_mbit * 1_000_000,
            drops: 0,
        }],
    }
}

fn check(cfg: &Config, e: &Engine, replay: &[Shaping], tick: usize) -> Result<(), TestCaseError> {
    let t = &cfg.trees[0];
    let applied: Vec<Shaping> = (0..t.classes.len() as u32)
        .map(|c| e.applied(0, c).unwrap())
        .collect();
    prop_assert_eq!(&applied, replay, "tick {}: changes don't replay", tick);
    for (i, c) in t.classes.iter().enumerate() {
        let a = applied[i];
        prop_assert!(
            a.rate >= 1 && a.ceil >= a.rate,
            "tick {}: class {} {:?}",
            tick,
            c.id,
            a
        );
        let children: u64 = t
            .classes
            .iter()
            .enumerate()
            .filter(|(_, k)| k.parent == Some(i as u32))
            .map(|(k, _)| applied[k].rate)
            .sum();
        prop_assert!(
            children <= a.rate,
            "tick {}: children of {} get {} > its {}",
            tick,
            c.id,
            children,
            a.rate
        );
    }
    for p in &cfg.policies {
        let a = applied[p.class as usize];
        prop_assert!(
            a.rate >= p.min_rate.bytes_per_sec() && a.rate <= p.max_rate.bytes_per_sec(),
            "tick {}: policy {} rate {} outside bounds",
            tick,
            &p.name,
            a.rate
        );
        prop_assert!(
            a.ceil <= p.max_ceil.bytes_per_sec(),
            "tick {}: policy {} ceil {}",
            tick,
            &p.name,
            a.ceil
        );
    }
    let u = &t.classes[UNTOUCHED as usize];
    prop_assert_eq!(
        applied[UNTOUCHED as usize],
        Shaping {
            rate: u.rate.bytes_per_sec(),
            ceil: u.ceil.bytes_per_sec()
        }
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_at_every_tick(steps in proptest::collection::vec(step(), 1..120)) {
        let cfg = config();
        let mut e = Engine::new(&cfg);
        let mut twin = Engine::new(&cfg);
        let mut replay: Vec<Shaping> = cfg.trees[0]
            .classes
            .iter()
            .map(|c| Shaping { rate: c.rate.bytes_per_sec(), ceil: c.ceil.bytes_per_sec() })
            .collect();
        let mut now = 0;
        for (i, s) in steps.iter().enumerate() {
            now += s.dt * 1_000_000_000;
            let local = LocalTime { weekday: Weekday::from_index(s.day), minute_of_day: s.minute };
            let m = metrics(&e, s);
            let d = e.tick(now, local, &m);
            prop_assert_eq!(&d, &twin.tick(now, local, &m), "tick {}: not deterministic", i);
            for d in &d {
                if let Decision::ChangeClass { tree, class, change, old, new, .. } = d {
                    prop_assert_eq!(*tree, 0);
                    prop_assert_ne!(old, new, "tick {}: a change that changes nothing", i);
                    let r = &mut replay[*class as usize];
                    prop_assert_eq!(*r, *old, "tick {}: old values are not the applied ones", i);
                    r.rate = change.rate.unwrap_or(r.rate);
                    r.ceil = change.ceil.unwrap_or(r.ceil);
                    prop_assert_eq!(*r, *new);
                }
            }
            check(&cfg, &e, &replay, i)?;
        }
    }
}

/// The random runs above are only worth something if they reach every
/// mechanism: a long seeded run must see each of them, with the invariants
/// holding throughout.
#[test]
fn random_runs_reach_every_mechanism() {
    use rand::{Rng, SeedableRng};
    let cfg = config();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    let mut e = Engine::new(&cfg);
    let mut replay: Vec<Shaping> = cfg.trees[0]
        .classes
        .iter()
        .map(|c| Shaping {
            rate: c.rate.bytes_per_sec(),
            ceil: c.ceil.bytes_per_sec(),
        })
        .collect();
    let mut seen = std::collections::BTreeMap::<&str, u32>::new();
    let mut now = 0;
    for i in 0..3000 {
        // Slowly varying load, so rules stay open long enough to matter.
        let phase = (i / 40) % 4;
        let s = Step {
            dt: 1,
            day: (i / 700) % 7,
            minute: ((i * 7) % 1440) as u16,
            tx_mbit: [2, 50, 90, 30][phase] + rng.gen_range(0..5),
            util: (0..7)
                .map(|_| [10, 60, 120, 30][phase] + rng.gen_range(0..20))
                .collect(),
            drops: (0..7)
                .map(|_| if rng.gen_ratio(1, 200) { 50 } else { 0 })
                .collect(),
        };
        now += 1_000_000_000;
        let local = LocalTime {
            weekday: Weekday::from_index(s.day),
            minute_of_day: s.minute,
        };
        let m = metrics(&e, &s);
        for d in e.tick(now, local, &m) {
            match &d {
                Decision::ChangeClass {
                    class,
                    change,
                    new,
                    reason,
                    ..
                } => {
                    let r = &mut replay[*class as usize];
                    r.rate = change.rate.unwrap_or(r.rate);
                    r.ceil = change.ceil.unwrap_or(r.ceil);
                    assert_eq!(r, new);
                    for key in [
                        "scaled to fit",
                        "kept at",
                        "penalty",
                        "schedule",
                        "adjust",
                        "throttle",
                        "set",
                        "held within",
                        "back to the configured",
                    ] {
                        if reason.contains(key) {
                            *seen.entry(key).or_default() += 1;
                        }
                    }
                }
                Decision::Log { message, .. } if message.starts_with("refused") => {
                    *seen.entry("refused").or_default() += 1;
                }
                Decision::Violation { .. } => *seen.entry("violation").or_default() += 1,
                Decision::Resolved { .. } => *seen.entry("resolved").or_default() += 1,
                _ => {}
            }
        }
        check(&cfg, &e, &replay, i).unwrap();
    }
    for key in [
        "scaled to fit",
        "kept at",
        "penalty",
        "schedule",
        "adjust",
        "throttle",
        "set",
        "held within",
        "refused",
        "violation",
        "resolved",
    ] {
        assert!(
            seen.get(key).copied().unwrap_or(0) > 0,
            "never saw {key}: {seen:?}"
        );
    }
}
