//! The policy engine in virtual time: metric sequences in, decisions out,
//! one tick per second as `weir run`'s control thread calls it.

use weir_config::rules::{Metric, Severity, Weekday};
use weir_config::{parse_str, Config};
use weir_policy::{
    ClassMetrics, Decision, Engine, InterfaceMetrics, LocalTime, Metrics, Shaping, TreeMetrics,
};
use weir_testkit::fixture::config_path;

/// root 1:1 100mbit; web 1:20 30mbit ceil 80mbit; bulk 1:30 20mbit ceil
/// 100mbit. Tree `up` egresses on out0 with a 100mbit link.
const BASE: &str = concat!(
    r#"
[[pair]]
name = "p"
inside = "in0"
outside = "out0"
upload = "up"
"#,
    weir_testkit::tree_up_web_bulk!()
);

const ROOT: u32 = 0;
const WEB: u32 = 1;
const BULK: u32 = 2;
const S: u64 = 1_000_000_000;
const MON_NOON: LocalTime = LocalTime {
    weekday: Weekday::Mon,
    minute_of_day: 12 * 60,
};

fn mbit(n: u64) -> u64 {
    n * 1_000_000 / 8
}

fn config(rules: &str) -> Config {
    let text = format!("{BASE}\n{rules}");
    match parse_str(&text, "test.toml") {
        Ok(l) => l.config,
        Err(e) => panic!("{e:#?}"),
    }
}

/// A sample where the port sends `tx_mbit` and every class sends
/// `class_util` percent of the rate the engine last gave it.
fn sample(engine: &Engine, tx_mbit: u64, class_util: u64) -> Metrics {
    let classes = (0..3)
        .map(|c| {
            let s = engine.applied(0, c).unwrap();
            ClassMetrics {
                rate_bps: s.rate * 8 * class_util / 100,
                rate: s.rate,
                ceil: s.ceil,
                ..ClassMetrics::default()
            }
        })
        .collect();
    Metrics {
        interval_ns: S,
        trees: vec![TreeMetrics { classes }],
        interfaces: vec![InterfaceMetrics {
            name: "out0".into(),
            tx_bps: tx_mbit * 1_000_000,
            drops: 0,
        }],
    }
}

fn opened(d: &[Decision]) -> bool {
    d.iter().any(|d| matches!(d, Decision::Violation { .. }))
}

fn resolved(d: &[Decision]) -> bool {
    d.iter().any(|d| matches!(d, Decision::Resolved { .. }))
}

fn changes(d: &[Decision]) -> Vec<(u32, Shaping, Shaping, String)> {
    d.iter()
        .filter_map(|d| match d {
            Decision::ChangeClass {
                tree: 0,
                class,
                change,
                old,
                new,
                reason,
            } => {
                // The change carries exactly the fields that moved.
                assert_eq!(change.rate, (new.rate != old.rate).then_some(new.rate));
                assert_eq!(change.ceil, (new.ceil != old.ceil).then_some(new.ceil));
                Some((*class, *old, *new, reason.clone()))
            }
            _ => None,
        })
        .collect()
}

const HOT: &str = r#"
[[sla]]
name = "hot"
interface = "out0"
when = "utilization > 80% for 30s"
actions = [{ log = true }]
"#;

#[test]
fn opens_after_exactly_for_and_clears_after_the_same() {
    let mut e = Engine::new(&config(HOT));
    // Hot from t = 0: open at t = 30 s, not at 29 s.
    for t in 0..30 {
        let d = e.tick(t * S, MON_NOON, &sample(&e, 90, 50));
        assert!(!opened(&d), "opened at {t}s");
    }
    let d = e.tick(30 * S, MON_NOON, &sample(&e, 90, 50));
    assert!(opened(&d), "{d:#?}");
    assert!(e.is_open(0));
    assert_eq!(e.open_violations(), [("hot".to_string(), 30 * S)]);
    match &d[0] {
        Decision::Violation {
            rule,
            target,
            severity,
            metric,
            value,
            threshold,
            at_ns,
            ..
        } => {
            assert_eq!((rule.as_str(), target.as_str()), ("hot", "interface out0"));
            assert_eq!(
                (*severity, *metric),
                (Severity::Warning, Metric::Utilization)
            );
            assert_eq!((*value, *threshold, *at_ns), (90.0, 80.0, 30 * S));
        }
        d => panic!("{d:?}"),
    }
    // Cool from t = 31: still open at 60 s, resolved at 61 s.
    for t in 31..61 {
        let d = e.tick(t * S, MON_NOON, &sample(&e, 50, 50));
        assert!(!resolved(&d), "resolved at {t}s");
    }
    let d = e.tick(61 * S, MON_NOON, &sample(&e, 50, 50));
    match d.first() {
        Some(Decision::Resolved {
            opened_ns, at_ns, ..
        }) => assert_eq!((*opened_ns, *at_ns), (30 * S, 61 * S)),
        d => panic!("{d:?}"),
    }
    assert!(
        matches!(&d[1], Decision::Log { message, .. } if message.contains("resolved after 31s"))
    );
    assert!(!e.is_open(0));
    assert!(e.open_violations().is_empty());
}

#[test]
fn a_dip_or_a_missing_sample_restarts_the_run() {
    let mut e = Engine::new(&config(HOT));
    for t in 0..=20 {
        assert!(!opened(&e.tick(t * S, MON_NOON, &sample(&e, 90, 50))));
    }
    // One sample at exactly 80% (not above) breaks the run.
    assert!(!opened(&e.tick(21 * S, MON_NOON, &sample(&e, 80, 50))));
    for t in 22..52 {
        assert!(
            !opened(&e.tick(t * S, MON_NOON, &sample(&e, 90, 50))),
            "{t}"
        );
    }
    // No sample for out0 at 52 s: the run starts again at 53 s.
    let mut gap = sample(&e, 90, 50);
    gap.interfaces.clear();
    assert!(!opened(&e.tick(52 * S, MON_NOON, &gap)));
    for t in 53..83 {
        assert!(
            !opened(&e.tick(t * S, MON_NOON, &sample(&e, 90, 50))),
            "{t}"
        );
    }
    assert!(opened(&e.tick(83 * S, MON_NOON, &sample(&e, 90, 50))));
}

#[test]
fn without_for_a_rule_opens_and_resolves_on_one_sample() {
    let rule = r#"
[[sla]]
name = "fast"
interface = "out0"
when = "rate >= 50mbit"
actions = [{ log = true }]
"#;
    let mut e = Engine::new(&config(rule));
    assert!(!opened(&e.tick(0, MON_NOON, &sample(&e, 49, 0))));
    assert!(opened(&e.tick(S, MON_NOON, &sample(&e, 50, 0))));
    assert!(resolved(&e.tick(2 * S, MON_NOON, &sample(&e, 49, 0))));
}

#[test]
fn exec_substitutes_placeholders_without_a_shell() {
    let rule = r#"
[[sla]]
name = "web-drops"
tree = "up"
class = "web"
when = "drops > 100/s"
severity = "critical"
actions = [
  { exec = ["/usr/local/bin/alert", "{rule}", "{severity}", "{value}", "{threshold}", "{metric}", "{target}", "{tree}", "{class}", "{state}", "x={{value}} $HOME; rm -rf /", "{rule}-{state}"], on = "both" },
  { exec = ["/bin/page"] },
]
"#;
    let mut e = Engine::new(&config(rule));
    let mut m = sample(&e, 0, 0);
    // 250 drops over 2 s: 125/s.
    m.interval_ns = 2 * S;
    m.trees[0].classes[WEB as usize].drops = 250;
    let d = e.tick(0, MON_NOON, &m);
    let execs: Vec<&Vec<String>> = d
        .iter()
        .filter_map(|d| match d {
            Decision::Exec { rule, argv } => {
                assert_eq!(rule, "web-drops");
                Some(argv)
            }
            _ => None,
        })
        .collect();
    assert_eq!(execs.len(), 2, "{d:#?}");
    assert_eq!(
        execs[0],
        &[
            "/usr/local/bin/alert",
            "web-drops",
            "critical",
            "125",
            "100",
            "drops",
            "up 1:20 (web)",
            "up",
            "1:20",
            "open",
            "x={value} $HOME; rm -rf /",
            "web-drops-open",
        ]
    );
    assert_eq!(execs[1], &["/bin/page"]);
    // Resolving runs only the `on = "both"` hook; 1 drop in 3 s is 0.333/s.
    m.interval_ns = 3 * S;
    m.trees[0].classes[WEB as usize].drops = 1;
    let d = e.tick(S, MON_NOON, &m);
    let argv: Vec<&Vec<String>> = d
        .iter()
        .filter_map(|d| match d {
            Decision::Exec { argv, .. } => Some(argv),
            _ => None,
        })
        .collect();
    assert_eq!(argv.len(), 1);
    assert_eq!(argv[0][3], "0.333");
    assert_eq!(argv[0][9], "resolved");
}

#[test]
fn throttle_and_restore_exactly() {
    let rule = r#"
[[sla]]
name = "hot"
interface = "out0"
when = "utilization > 80% for 2s"
actions = [{ log = true }, { throttle = { tree = "up", class = "bulk", factor = 0.5 } }]
"#;
    let mut e = Engine::new(&config(rule));
    let before = e.applied(0, BULK).unwrap();
    assert_eq!(
        before,
        Shaping {
            rate: mbit(20),
            ceil: mbit(100)
        }
    );
    assert!(changes(&e.tick(0, MON_NOON, &sample(&e, 90, 50))).is_empty());
    assert!(changes(&e.tick(S, MON_NOON, &sample(&e, 90, 50))).is_empty());
    let d = e.tick(2 * S, MON_NOON, &sample(&e, 90, 50));
    // Violation, its log, then the change.
    assert!(matches!(d[0], Decision::Violation { .. }));
    assert!(matches!(d[1], Decision::Log { .. }));
    let c = changes(&d);
    assert_eq!(c.len(), 1, "{d:#?}");
    assert_eq!((c[0].0, c[0].1), (BULK, before));
    assert_eq!(
        c[0].2,
        Shaping {
            rate: mbit(10),
            ceil: mbit(50)
        }
    );
    assert!(c[0].3.contains("SLA hot: throttle x0.5"), "{}", c[0].3);
    // Nothing more while it holds.
    for t in 3..10 {
        assert!(changes(&e.tick(t * S, MON_NOON, &sample(&e, 90, 50))).is_empty());
    }
    for t in 10..12 {
        assert!(changes(&e.tick(t * S, MON_NOON, &sample(&e, 10, 50))).is_empty());
    }
    let d = e.tick(12 * S, MON_NOON, &sample(&e, 10, 50));
    assert!(resolved(&d));
    let c = changes(&d);
    assert_eq!(c.len(), 1);
    assert_eq!(
        (c[0].1, c[0].2),
        (
            Shaping {
                rate: mbit(10),
                ceil: mbit(50)
            },
            before
        )
    );
    assert_eq!(c[0].3, "back to the configured values");
    assert_eq!(e.applied(0, BULK), Some(before));
}

#[test]
fn without_restore_a_throttle_stays() {
    let rule = r#"
[[sla]]
name = "hot"
interface = "out0"
when = "utilization > 80%"
actions = [{ set = { tree = "up", class = "bulk", rate = "5mbit", ceil = "10mbit" } }]
restore = false
"#;
    let mut e = Engine::new(&config(rule));
    let c = changes(&e.tick(0, MON_NOON, &sample(&e, 90, 0)));
    assert_eq!(
        c[0].2,
        Shaping {
            rate: mbit(5),
            ceil: mbit(10)
        }
    );
    let d = e.tick(S, MON_NOON, &sample(&e, 10, 0));
    assert!(resolved(&d));
    assert!(changes(&d).is_empty());
    assert_eq!(
        e.applied(0, BULK),
        Some(Shaping {
            rate: mbit(5),
            ceil: mbit(10)
        })
    );
}

const BUSINESS: &str = r#"
[[policy]]
name = "web-hours"
tree = "up"
class = "web"
max_rate = "40mbit"
schedule = [{ days = "mon-fri", hours = "08:00-18:00", rate = "40mbit", ceil = "90mbit" }]
"#;

#[test]
fn schedule_boundaries() {
    let mut e = Engine::new(&config(BUSINESS));
    let at = |d: Weekday, h: u16, m: u16| LocalTime::new(d, h, m);
    let base = Shaping {
        rate: mbit(30),
        ceil: mbit(80),
    };
    let day = Shaping {
        rate: mbit(40),
        ceil: mbit(90),
    };
    let mut t = 0;
    let mut tick = |e: &mut Engine, l: LocalTime| {
        t += 1;
        let m = sample(e, 0, 50);
        changes(&e.tick(t * S, l, &m))
    };
    assert!(tick(&mut e, at(Weekday::Mon, 7, 59)).is_empty());
    let c = tick(&mut e, at(Weekday::Mon, 8, 0));
    assert_eq!((c[0].0, c[0].1, c[0].2), (WEB, base, day));
    assert!(
        c[0].3.contains("schedule mon-fri 08:00-18:00"),
        "{}",
        c[0].3
    );
    assert!(tick(&mut e, at(Weekday::Mon, 17, 59)).is_empty());
    let c = tick(&mut e, at(Weekday::Mon, 18, 0));
    assert_eq!((c[0].1, c[0].2), (day, base));
    // Friday is in, the weekend is out.
    assert_eq!(tick(&mut e, at(Weekday::Fri, 8, 0))[0].2, day);
    assert_eq!(tick(&mut e, at(Weekday::Sat, 8, 0))[0].2, base);
    assert!(tick(&mut e, at(Weekday::Sun, 12, 0)).is_empty());
    assert!(tick(&mut e, at(Weekday::Sat, 17, 59)).is_empty());
}

const ELASTIC: &str = r#"
[[policy]]
name = "elastic"
tree = "up"
class = "web"
min_rate = "20mbit"
max_rate = "40mbit"
adjust = { high = "90%", low = "30%", step = "5mbit", every = "10s" }
"#;

#[test]
fn adjust_steps_up_and_down_within_bounds() {
    let mut e = Engine::new(&config(ELASTIC));
    let mut log = Vec::new();
    // Busy: 100% of its rate. First sample at 0 s, steps at 10, 20 s; at
    // 30 s it is at max_rate and stays.
    for t in 0..=40 {
        for c in changes(&e.tick(t * S, MON_NOON, &sample(&e, 0, 100))) {
            log.push((t, c.1.rate, c.2.rate, c.3));
        }
    }
    let steps: Vec<(u64, u64, u64)> = log.iter().map(|x| (x.0, x.1, x.2)).collect();
    assert_eq!(steps, [(10, mbit(30), mbit(35)), (20, mbit(35), mbit(40))]);
    assert!(
        log[0]
            .3
            .contains("adjust 30Mbit -> 35Mbit (mean utilization 100% of rate above high 90%)"),
        "{}",
        log[0].3
    );
    // Between low and high: holds.
    for t in 41..=70 {
        assert!(changes(&e.tick(t * S, MON_NOON, &sample(&e, 0, 50))).is_empty());
    }
    // Idle: down a step every 10 s to min_rate, never below.
    let mut down = Vec::new();
    for t in 71..=200 {
        for c in changes(&e.tick(t * S, MON_NOON, &sample(&e, 0, 10))) {
            down.push((c.1.rate, c.2.rate));
        }
    }
    assert_eq!(
        down,
        [
            (mbit(40), mbit(35)),
            (mbit(35), mbit(30)),
            (mbit(30), mbit(25)),
            (mbit(25), mbit(20)),
        ]
    );
    // The ceil never moved.
    assert_eq!(e.applied(0, WEB).unwrap().ceil, mbit(80));
}

#[test]
fn adjust_uses_the_mean_of_the_interval() {
    let mut e = Engine::new(&config(ELASTIC));
    // Alternating 100% and 70%: mean 85%, below high.
    for t in 0..=30 {
        let u = if t % 2 == 0 { 100 } else { 70 };
        assert!(
            changes(&e.tick(t * S, MON_NOON, &sample(&e, 0, u))).is_empty(),
            "{t}"
        );
    }
}

#[test]
fn penalty_while_violated() {
    let rules = format!(
        "{HOT}\n{}",
        r#"
[[policy]]
name = "pen"
tree = "up"
class = "web"
penalty = { sla = "hot", factor = 0.5 }
"#
    );
    let mut e = Engine::new(&config(&rules));
    for t in 0..30 {
        assert!(changes(&e.tick(t * S, MON_NOON, &sample(&e, 90, 50))).is_empty());
    }
    let c = changes(&e.tick(30 * S, MON_NOON, &sample(&e, 90, 50)));
    assert_eq!(c.len(), 1);
    assert_eq!(
        c[0].2,
        Shaping {
            rate: mbit(30),
            ceil: mbit(40)
        }
    );
    assert!(
        c[0].3
            .contains("penalty ceil x0.5 while SLA hot is violated"),
        "{}",
        c[0].3
    );
    for t in 31..61 {
        assert!(changes(&e.tick(t * S, MON_NOON, &sample(&e, 10, 50))).is_empty());
    }
    let c = changes(&e.tick(61 * S, MON_NOON, &sample(&e, 10, 50)));
    assert_eq!(
        c[0].2,
        Shaping {
            rate: mbit(30),
            ceil: mbit(80)
        }
    );
}

#[test]
fn a_throttle_never_takes_a_class_below_its_min_rate() {
    let rules = r#"
[[policy]]
name = "floor"
tree = "up"
class = "web"
min_rate = "25mbit"

[[sla]]
name = "squeeze"
interface = "out0"
when = "rate > 1mbit"
actions = [{ throttle = { tree = "up", class = "web", factor = 0.1 } }]
"#;
    let mut e = Engine::new(&config(rules));
    let c = changes(&e.tick(0, MON_NOON, &sample(&e, 90, 50)));
    // rate 30 → 3mbit is held at 25mbit; ceil 80 → 8mbit is raised to the
    // rate.
    assert_eq!(
        c[0].2,
        Shaping {
            rate: mbit(25),
            ceil: mbit(25)
        }
    );
    assert!(
        c[0].3.contains("rate held within 25Mbit..=30Mbit"),
        "{}",
        c[0].3
    );
}

#[test]
fn children_are_kept_within_their_parent() {
    // web is set to 90mbit: with bulk's 20mbit that is 110 > 100. web has
    // no policy, so its floor is its configured 30mbit: it gets
    // 30 + 60 × (100 − 50) / (110 − 50) = 80mbit.
    let rules = r#"
[[sla]]
name = "boost"
interface = "out0"
when = "rate > 1mbit"
actions = [{ set = { tree = "up", class = "web", rate = "90mbit", ceil = "100mbit" } }]
"#;
    let mut e = Engine::new(&config(rules));
    let c = changes(&e.tick(0, MON_NOON, &sample(&e, 90, 50)));
    assert_eq!(c.len(), 1, "{c:#?}");
    assert_eq!(
        c[0].2,
        Shaping {
            rate: mbit(80),
            ceil: mbit(100)
        }
    );
    assert!(
        c[0].3.contains("scaled to fit parent 1:1's rate 100Mbit"),
        "{}",
        c[0].3
    );
}

#[test]
fn adjustable_children_share_the_cut_in_proportion() {
    // Both children grow to their max (web 30→70, bulk 20→60): 130 > 100.
    // Floors 20 + 10 = 30; room 70 of want-above-floor 100: web 20 + 50 ×
    // 0.7 = 55, bulk 10 + 50 × 0.7 = 45.
    let rules = r#"
[[policy]]
name = "w"
tree = "up"
class = "web"
min_rate = "20mbit"
max_rate = "70mbit"
adjust = { high = "50%", low = "10%", step = "40mbit", every = "1s" }

[[policy]]
name = "b"
tree = "up"
class = "bulk"
min_rate = "10mbit"
max_rate = "60mbit"
adjust = { high = "50%", low = "10%", step = "40mbit", every = "1s" }
"#;
    let mut e = Engine::new(&config(rules));
    e.tick(0, MON_NOON, &sample(&e, 0, 100));
    let c = changes(&e.tick(S, MON_NOON, &sample(&e, 0, 100)));
    let got: Vec<(u32, u64)> = c.iter().map(|c| (c.0, c.2.rate)).collect();
    assert_eq!(got, [(WEB, mbit(55)), (BULK, mbit(45))]);
    assert_eq!(
        e.applied(0, WEB).unwrap().rate + e.applied(0, BULK).unwrap().rate,
        mbit(100)
    );
}

#[test]
fn a_parent_cut_below_its_childrens_floors_is_refused() {
    let rules = r#"
[[sla]]
name = "crush"
interface = "out0"
when = "rate > 1mbit"
actions = [{ throttle = { tree = "up", class = "root", factor = 0.3 } }]
"#;
    let mut e = Engine::new(&config(rules));
    let d = e.tick(0, MON_NOON, &sample(&e, 90, 50));
    let c = changes(&d);
    // Children keep 30 + 20 = 50mbit: root's rate goes to 50, not 30; its
    // ceil is cut to 30 and raised back to the rate.
    assert_eq!(c.len(), 1, "{d:#?}");
    assert_eq!(
        (c[0].0, c[0].2),
        (
            ROOT,
            Shaping {
                rate: mbit(50),
                ceil: mbit(50)
            }
        )
    );
    assert!(d.iter().any(|d| matches!(d, Decision::Log { severity: Severity::Warning, message } if message.contains("refused to cut the rate of up 1:1 (root) to 30Mbit"))), "{d:#?}");
    // Said once, not every tick.
    let d = e.tick(S, MON_NOON, &sample(&e, 90, 50));
    assert!(d.is_empty(), "{d:#?}");
    // Lifted: back to 100mbit, and the refusal is over.
    let d = e.tick(2 * S, MON_NOON, &sample(&e, 0, 50));
    assert_eq!(
        changes(&d)[0].2,
        Shaping {
            rate: mbit(100),
            ceil: mbit(100)
        }
    );
    assert!(d.iter().any(|d| matches!(d, Decision::Log { message, .. } if message.contains("no longer has to be held up"))));
}

#[test]
fn stages_compose_in_order() {
    // Business hours (40/90), then the SLA set (ceil 60), then the
    // penalty (ceil × 0.5 = 30 < rate 40 → ceil 40).
    let rules = r#"
[[policy]]
name = "web-hours"
tree = "up"
class = "web"
max_rate = "40mbit"
schedule = [{ days = "mon-fri", hours = "08:00-18:00", rate = "40mbit", ceil = "90mbit" }]
penalty = { sla = "hot", factor = 0.5 }

[[sla]]
name = "hot"
interface = "out0"
when = "utilization > 80%"
actions = [{ set = { tree = "up", class = "web", ceil = "60mbit" } }]
"#;
    let mut e = Engine::new(&config(rules));
    let c = changes(&e.tick(0, MON_NOON, &sample(&e, 90, 50)));
    assert_eq!(
        c[0].2,
        Shaping {
            rate: mbit(40),
            ceil: mbit(40)
        }
    );
    assert_eq!(
        c[0].3,
        "policy web-hours: schedule mon-fri 08:00-18:00; SLA hot: set; policy web-hours: penalty ceil x0.5 while SLA hot is violated"
    );
    // Cool: back to the business-hours values, exactly.
    let c = changes(&e.tick(S, MON_NOON, &sample(&e, 10, 50)));
    assert_eq!(
        c[0].2,
        Shaping {
            rate: mbit(40),
            ceil: mbit(90)
        }
    );
}

#[test]
fn the_example_config_runs() {
    let cfg = weir_config::load(&config_path("policies.toml"))
        .unwrap()
        .config;
    let mut e = Engine::new(&cfg);
    let n = cfg.trees[0].classes.len() as u32;
    let mut all = Vec::new();
    for t in 0..120u64 {
        let classes = (0..n)
            .map(|c| {
                let s = e.applied(0, c).unwrap();
                ClassMetrics {
                    rate_bps: s.rate * 8,
                    rate: s.rate,
                    ceil: s.ceil,
                    ..ClassMetrics::default()
                }
            })
            .collect();
        let m = Metrics {
            interval_ns: S,
            trees: vec![TreeMetrics { classes }],
            interfaces: vec![InterfaceMetrics {
                name: "weir-out".into(),
                tx_bps: if t < 60 { 90_000_000 } else { 10_000_000 },
                drops: 0,
            }],
        };
        all.extend(e.tick(t * S, LocalTime::new(Weekday::Tue, 9, 0), &m));
    }
    assert!(all
        .iter()
        .any(|d| matches!(d, Decision::Violation { rule, .. } if rule == "uplink-hot")));
    assert!(all
        .iter()
        .any(|d| matches!(d, Decision::Resolved { rule, .. } if rule == "uplink-hot")));
    assert!(all
        .iter()
        .any(|d| matches!(d, Decision::Exec { argv, .. } if argv[5] == "open")));
    // Everything the throttle did is undone.
    assert_eq!(
        e.applied(0, 3),
        Some(Shaping {
            rate: mbit(20),
            ceil: mbit(100)
        })
    );
}

#[test]
fn adjust_does_not_wind_up_while_its_parent_holds_it_back() {
    // bulk is set to 80mbit while the port is busy: web (wanting more) is
    // scaled to fit the root. When bulk's set lifts, web must come back at
    // most one step above what it really had, not at a max_rate it
    // "earned" while squeezed.
    let rules = r#"
[[policy]]
name = "w"
tree = "up"
class = "web"
min_rate = "20mbit"
max_rate = "70mbit"
adjust = { high = "90%", low = "10%", step = "2mbit", every = "1s" }

[[sla]]
name = "bulk-boost"
interface = "out0"
when = "rate > 50mbit"
actions = [{ set = { tree = "up", class = "bulk", rate = "80mbit", ceil = "100mbit" } }]
"#;
    let mut e = Engine::new(&config(rules));
    for t in 0..30 {
        e.tick(t * S, MON_NOON, &sample(&e, 90, 100));
        let (w, b) = (
            e.applied(0, WEB).unwrap().rate,
            e.applied(0, BULK).unwrap().rate,
        );
        assert!(w + b <= mbit(100), "{t}: {w} + {b}");
    }
    let squeezed = e.applied(0, WEB).unwrap().rate;
    assert!(squeezed < mbit(70), "web was not held back: {squeezed}");
    // The set lifts; web is busy still.
    e.tick(30 * S, MON_NOON, &sample(&e, 10, 100));
    let after = e.applied(0, WEB).unwrap().rate;
    assert!(
        after <= squeezed + mbit(2),
        "wound up: {squeezed} -> {after}"
    );
}
