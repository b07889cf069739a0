//! `[[sla]]` and `[[policy]]`: every kind of error and warning at the right
//! FILE:LINE:COL (an `@` in a case marks the spot and is removed before
//! parsing), and the typed values a good file turns into.

use weir_config::rules::{
    Action, Metric, Op, Phase, Piece, Placeholder, Severity, Target, Unit, Weekday,
};
use weir_config::{parse_str, Diagnostic, Rate};
use weir_testkit::fixture::{config_path, marked};

/// A pair whose `out0` egress is tree `up` (with a link); `down` has none.
const BASE: &str = concat!(
    r#"
[[pair]]
name = "p"
inside = "in0"
outside = "out0"
upload = "up"
download = "down"
"#,
    weir_testkit::tree_up_web_bulk!(),
    r#"
[tree.down]
default = "1:10"
r2q = 100

[[tree.down.class]]
id = "1:10"
rate = "50mbit"
"#
);

fn find(diags: &[Diagnostic], line: u32, col: u32, needle: &str) -> bool {
    diags
        .iter()
        .any(|d| d.line == line && d.col == col && d.message.contains(needle))
}

fn show(d: &[Diagnostic]) -> String {
    d.iter().map(|d| format!("  {d}\n")).collect()
}

fn sla(body: &str) -> String {
    format!("{BASE}\n[[sla]]\nname = \"r\"\n{body}\n")
}

fn policy(body: &str) -> String {
    format!("{BASE}\n[[policy]]\nname = \"p\"\ntree = \"up\"\n{body}\n")
}

#[test]
fn base_is_valid() {
    let l = parse_str(BASE, "case.toml").unwrap();
    assert!(l.warnings.is_empty(), "{}", show(&l.warnings));
    assert!(l.config.sla.is_empty() && l.config.policies.is_empty());
}

#[test]
fn error_table() {
    let log = "actions = [{ log = true }]";
    let cases: Vec<(&str, String, &str)> = vec![
        // --- targets ---------------------------------------------------
        ("unknown tree", sla(&format!("tree = @\"nope\"\nclass = \"1:20\"\nwhen = \"rate > 1mbit\"\n{log}")), "no tree named \"nope\""),
        ("unknown class", sla(&format!("tree = \"up\"\nclass = @\"1:99\"\nwhen = \"rate > 1mbit\"\n{log}")), "no class \"1:99\" in tree `up`"),
        ("tree:class in one key", sla(&format!("tree = \"up\"\nclass = @\"up:1:20\"\nwhen = \"rate > 1mbit\"\n{log}")), "looks like TREE:CLASS"),
        ("class without tree", sla(&format!("class = @\"1:20\"\nwhen = \"rate > 1mbit\"\n{log}")), "`class` without `tree`"),
        ("tree without class", sla(&format!("tree = @\"up\"\nwhen = \"rate > 1mbit\"\n{log}")), "`tree` without `class`"),
        ("unknown interface", sla(&format!("interface = @\"eth9\"\nwhen = \"rate > 1mbit\"\n{log}")), "not a port of any [[pair]]; expected one of: in0, out0"),
        ("two targets", sla(&format!("interface = @\"out0\"\ntree = \"up\"\nclass = \"1:20\"\nwhen = \"rate > 1mbit\"\n{log}")), "both `interface` and `tree`/`class`"),
        ("no target", format!("{BASE}\n@[[sla]]\nname = \"r\"\nwhen = \"rate > 1mbit\"\n{log}\n"), "watches nothing"),
        // --- when ------------------------------------------------------
        ("unknown metric", sla(&format!("interface = \"out0\"\nwhen = \"@latency > 5\"\n{log}")), "unknown metric `latency`"),
        ("bad operator", sla(&format!("interface = \"out0\"\nwhen = \"utilization @=> 80%\"\n{log}")), "bad comparison `=>`"),
        ("equality is not offered", sla(&format!("interface = \"out0\"\nwhen = \"rate @== 0\"\n{log}")), "expected one of >, >=, <, <="),
        ("missing operator", sla(&format!("interface = \"out0\"\nwhen = \"utilization@\"\n{log}")), "missing comparison after `utilization`"),
        ("missing threshold", sla(&format!("interface = \"out0\"\nwhen = \"rate >@\"\n{log}")), "missing threshold"),
        ("utilization without %", sla(&format!("interface = \"out0\"\nwhen = \"utilization > @80 for 30s\"\n{log}")), "expected a percentage like 80%"),
        ("rate as a percentage", sla(&format!("interface = \"out0\"\nwhen = \"rate > @80%\"\n{log}")), "is a percentage"),
        ("bad rate unit", sla(&format!("interface = \"out0\"\nwhen = \"rate > @10mbitz\"\n{log}")), "unknown unit \"mbitz\""),
        ("backlog without unit", sla(&format!("tree = \"up\"\nclass = \"web\"\nwhen = \"backlog > @500\"\n{log}")), "has no unit"),
        ("duration without unit", sla(&format!("interface = \"out0\"\nwhen = \"utilization > 80% for @30\"\n{log}")), "has no unit"),
        ("duration bad unit", sla(&format!("interface = \"out0\"\nwhen = \"utilization > 80% for @30y\"\n{log}")), "unknown unit \"y\""),
        ("missing duration", sla(&format!("interface = \"out0\"\nwhen = \"utilization > 80% for@\"\n{log}")), "missing duration after `for`"),
        ("junk after threshold", sla(&format!("interface = \"out0\"\nwhen = \"rate > 10mbit @please\"\n{log}")), "unexpected `please` after the threshold"),
        ("junk after duration", sla(&format!("interface = \"out0\"\nwhen = \"rate > 10mbit for 5s @now\"\n{log}")), "unexpected `now` after the duration"),
        ("empty when", sla(&format!("interface = \"out0\"\nwhen = @\"  \"\n{log}")), "empty `when`"),
        ("backlog of an interface", sla(&format!("interface = \"out0\"\nwhen = \"@backlog > 5packets\"\n{log}")), "an interface has no `backlog`"),
        ("drops of an inner class", sla(&format!("tree = \"up\"\nclass = \"root\"\nwhen = \"@drops > 5\"\n{log}")), "of an inner class is always 0"),
        ("utilization without link", sla(&format!("interface = \"in0\"\nwhen = @\"utilization > 50%\"\n{log}")), "its egress tree `down` has no `link`"),
        // --- severity, actions ------------------------------------------
        ("unknown severity", sla(&format!("interface = \"out0\"\nwhen = \"rate > 1mbit\"\nseverity = @\"major\"\n{log}")), "unknown severity \"major\""),
        ("two actions in one table", sla("interface = \"out0\"\nwhen = \"rate > 1mbit\"\nactions = [@{ log = true, exec = [\"/bin/true\"] }]"), "several actions in one action"),
        ("empty action", sla("interface = \"out0\"\nwhen = \"rate > 1mbit\"\nactions = [@{ }]"), "no action in one action"),
        ("unknown action key", sla("interface = \"out0\"\nwhen = \"rate > 1mbit\"\nactions = [{ @mail = \"x\" }]"), "unknown field `mail`"),
        ("on with throttle", sla("tree = \"up\"\nclass = \"bulk\"\nwhen = \"rate > 1mbit\"\nactions = [{ throttle = { factor = 0.5 }, on = @\"open\" }]"), "`on` only applies to `log` and `exec`"),
        ("bad on", sla("interface = \"out0\"\nwhen = \"rate > 1mbit\"\nactions = [{ log = true, on = @\"later\" }]"), "unknown `on` \"later\""),
        ("empty exec", sla("interface = \"out0\"\nwhen = \"rate > 1mbit\"\nactions = [{ exec = @[] }]"), "empty `exec`"),
        ("unknown placeholder", sla("interface = \"out0\"\nwhen = \"rate > 1mbit\"\nactions = [{ exec = [\"/bin/alert\", \"v=@{vaule}\"] }]"), "unknown placeholder `{vaule}`"),
        ("unclosed placeholder", sla("interface = \"out0\"\nwhen = \"rate > 1mbit\"\nactions = [{ exec = [\"/bin/alert\", \"@{rule\"] }]"), "unclosed `{`"),
        ("lone closing brace", sla("interface = \"out0\"\nwhen = \"rate > 1mbit\"\nactions = [{ exec = [\"/bin/alert\", \"a@}\"] }]"), "lone `}`"),
        ("placeholder in the program", sla("interface = \"out0\"\nwhen = \"rate > 1mbit\"\nactions = [{ exec = [\"/bin/@{rule}\"] }]"), "a placeholder in the program"),
        ("class placeholder on an interface rule", sla("interface = \"out0\"\nwhen = \"rate > 1mbit\"\nactions = [{ exec = [\"/bin/alert\", \"@{class}\"] }]"), "`{class}` is not known for this rule"),
        ("interface placeholder on a class rule", sla("tree = \"up\"\nclass = \"web\"\nwhen = \"rate > 1mbit\"\nactions = [{ exec = [\"/bin/alert\", \"@{interface}\"] }]"), "`{interface}` is not known"),
        ("factor above 1", sla("tree = \"up\"\nclass = \"bulk\"\nwhen = \"rate > 1mbit\"\nactions = [{ throttle = { factor = @1.5 } }]"), "`factor` = 1.5 is out of range; expected a number in (0, 1]"),
        ("factor zero", sla("tree = \"up\"\nclass = \"bulk\"\nwhen = \"rate > 1mbit\"\nactions = [{ throttle = { factor = @0 } }]"), "out of range"),
        ("throttle on an interface rule without a class", sla("interface = \"out0\"\nwhen = \"rate > 1mbit\"\nactions = [{ throttle = @{ factor = 0.5 } }]"), "`throttle` needs `tree` and `class`"),
        ("throttle of an unknown class", sla("interface = \"out0\"\nwhen = \"rate > 1mbit\"\nactions = [{ throttle = { tree = \"up\", class = @\"1:77\", factor = 0.5 } }]"), "no class \"1:77\""),
        ("set nothing", sla("tree = \"up\"\nclass = \"bulk\"\nwhen = \"rate > 1mbit\"\nactions = [{ set = @{ } }]"), "`set` changes nothing"),
        ("set ceil below rate", sla("tree = \"up\"\nclass = \"bulk\"\nwhen = \"rate > 1mbit\"\nactions = [{ set = { ceil = @\"10mbit\" } }]"), "ceil 10Mbit less than rate 20Mbit"),
        ("set bad rate", sla("tree = \"up\"\nclass = \"bulk\"\nwhen = \"rate > 1mbit\"\nactions = [{ set = { rate = @\"fast\" } }]"), "`rate`: rate \"fast\" does not start with a number"),
        ("duplicate rule name", format!("{}\n[[sla]]\nname = @\"r\"\ninterface = \"out0\"\nwhen = \"rate > 1mbit\"\n", sla("interface = \"out0\"\nwhen = \"rate > 1mbit\"")), "duplicate SLA rule name \"r\""),
        ("unknown sla key", sla(&format!("interface = \"out0\"\nwhen = \"rate > 1mbit\"\n@treshold = 5\n{log}")), "unknown field `treshold`"),
        ("sla not an array", format!("@sla = 5\n{BASE}"), "`sla` must be an array of tables"),
        // --- policies ---------------------------------------------------
        ("policy unknown class", policy("class = @\"nope\""), "no class \"nope\" in tree `up`"),
        ("min above the configured rate", policy("class = \"web\"\nmin_rate = @\"40mbit\"\nmax_rate = \"60mbit\""), "`min_rate` 40Mbit is above the class's configured rate 30Mbit"),
        ("max below min", policy("class = \"web\"\nmin_rate = \"20mbit\"\nmax_rate = @\"10mbit\""), "`max_rate` 10Mbit is below `min_rate` 20Mbit"),
        ("max below the configured rate", policy("class = \"web\"\nmin_rate = \"20mbit\"\nmax_rate = @\"25mbit\""), "below the class's configured rate 30Mbit"),
        ("max_ceil below max_rate", policy("class = \"web\"\nmax_rate = \"60mbit\"\nmax_ceil = @\"50mbit\""), "`max_ceil` 50Mbit is below `max_rate` 60Mbit"),
        ("max_ceil below the configured ceil", policy("class = \"web\"\nmax_ceil = @\"70mbit\""), "below the class's configured ceil 80Mbit"),
        ("percent bounds of the link", policy("class = \"web\"\nmax_rate = @\"120%\""), "not between 0% and 100%"),
        ("adjust low above high", policy("class = \"web\"\nmax_rate = \"60mbit\"\nadjust = { high = \"50%\", low = @\"60%\", step = \"1mbit\" }"), "`low` 60% is not below `high` 50%"),
        ("adjust high not a percentage", policy("class = \"web\"\nmax_rate = \"60mbit\"\nadjust = { high = @0.9, low = \"10%\", step = \"1mbit\" }"), "invalid type"),
        ("adjust every too short", policy("class = \"web\"\nmax_rate = \"60mbit\"\nadjust = { high = \"90%\", low = \"10%\", step = \"1mbit\", every = @\"500ms\" }"), "`every` is below 1s"),
        ("adjust step zero", policy("class = \"web\"\nmax_rate = \"60mbit\"\nadjust = { high = \"90%\", low = \"10%\", step = @\"0%\" }"), "below 1 byte/s"),
        ("overlapping windows", policy("class = \"web\"\nmax_rate = \"60mbit\"\nschedule = [\n  { days = \"mon-fri\", hours = \"08:00-18:00\", rate = \"40mbit\" },\n  { days = \"fri\", hours = @\"17:00-19:00\", rate = \"50mbit\" },\n]"), "overlaps the window on line"),
        ("overlap across midnight", policy("class = \"web\"\nmax_rate = \"60mbit\"\nschedule = [\n  { days = \"sun\", hours = \"22:00-06:00\", rate = \"40mbit\" },\n  { days = \"mon\", hours = @\"05:00-07:00\", rate = \"50mbit\" },\n]"), "(both cover mon 05:00)"),
        ("bad day", policy("class = \"web\"\nschedule = [{ days = \"mon-@fry\", hours = \"08:00-18:00\", ceil = \"90mbit\" }]"), "unknown day \"fry\""),
        ("bad hours", policy("class = \"web\"\nschedule = [{ days = \"mon\", hours = \"@8-18\", ceil = \"90mbit\" }]"), "bad hours \"8-18\""),
        ("empty hours", policy("class = \"web\"\nschedule = [{ days = \"mon\", hours = @\"08:00-08:00\", ceil = \"90mbit\" }]"), "start and end at the same time"),
        ("window changes nothing", policy("class = \"web\"\nschedule = [@{ days = \"mon\", hours = \"08:00-09:00\" }]"), "changes nothing"),
        ("window rate out of bounds", policy("class = \"web\"\nmax_rate = \"60mbit\"\nschedule = [{ days = \"mon\", hours = \"08:00-09:00\", rate = @\"70mbit\" }]"), "outside the policy's bounds"),
        ("window ceil below its rate", policy("class = \"web\"\nmax_rate = \"60mbit\"\nschedule = [{ days = \"mon\", hours = \"08:00-09:00\", rate = \"50mbit\", ceil = @\"40mbit\" }]"), "below the window's rate"),
        ("window ceil above max_ceil", policy("class = \"web\"\nmax_ceil = \"80mbit\"\nschedule = [{ days = \"mon\", hours = \"08:00-09:00\", ceil = @\"90mbit\" }]"), "above `max_ceil` 80Mbit"),
        ("penalty of an unknown rule", policy("class = \"web\"\npenalty = { sla = @\"hot\", factor = 0.8 }"), "no SLA rule named \"hot\""),
        ("penalty factor", format!("{}\n[[sla]]\nname = \"hot\"\ninterface = \"out0\"\nwhen = \"rate > 1mbit\"\n", policy("class = \"web\"\npenalty = { sla = \"hot\", factor = @-1 }")), "out of range"),
        ("two policies on a class", format!("{}\n[[policy]]\nname = \"q\"\ntree = \"up\"\nclass = @\"1:20\"\n", policy("class = \"web\"")), "already has policy \"p\""),
        ("duplicate policy name", format!("{}\n[[policy]]\nname = @\"p\"\ntree = \"up\"\nclass = \"bulk\"\n", policy("class = \"web\"")), "duplicate policy name \"p\""),
        ("inner min below its children", policy("class = \"root\"\nmin_rate = @\"40mbit\""), "is below what its children keep at least (50Mbit together"),
        ("standard-table adjust keeps its spans", format!("{BASE}\n[[policy]]\nname = \"p\"\ntree = \"up\"\nclass = \"web\"\nmax_rate = \"60mbit\"\n\n[policy.adjust]\nhigh = \"90%\"\nlow = @\"95%\"\nstep = \"1mbit\"\n"), "is not below `high`"),
        ("array-of-tables schedule keeps its spans", format!("{BASE}\n[[policy]]\nname = \"p\"\ntree = \"up\"\nclass = \"web\"\n\n[[policy.schedule]]\ndays = \"mon\"\nhours = \"08:00-09:00\"\nceil = @\"1furlong\"\n"), "unknown unit"),
    ];
    let mut failures = Vec::new();
    for (name, src, needle) in &cases {
        let (text, line, col) = marked(src);
        match parse_str(&text, "case.toml") {
            Ok(_) => failures.push(format!("case `{name}`: no errors at all")),
            Err(e) if find(&e, line, col, needle) => {}
            Err(e) => failures.push(format!(
                "case `{name}`: no error at {line}:{col} containing {needle:?}; got:\n{}",
                show(&e)
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn overbooked_managed_tree_is_refused() {
    // 1:20 + 1:30 guarantee 60mbit under a 50mbit root: fine for tc (a
    // warning), not for a tree the engine manages.
    let src = BASE.replace("rate = \"100mbit\"", "rate = \"40mbit\"");
    let text = format!("{src}\n[[policy]]\nname = \"p\"\ntree = \"up\"\nclass = \"web\"\n");
    let e = parse_str(&text, "case.toml").unwrap_err();
    assert!(
        e.iter().any(|d| d
            .message
            .contains("are guaranteed 50Mbit together, more than its rate 40Mbit")),
        "{}",
        show(&e)
    );
    // Alert-only rules don't manage the tree.
    let text = format!("{src}\n[[sla]]\nname = \"r\"\ninterface = \"out0\"\nwhen = \"rate > 1mbit\"\nactions = [{{ log = true }}]\n");
    assert!(parse_str(&text, "case.toml").is_ok());
}

#[test]
fn warning_table() {
    let cases: Vec<(&str, String, &str)> = vec![
        ("no actions", format!("{BASE}\n@[[sla]]\nname = \"r\"\ninterface = \"out0\"\nwhen = \"rate > 1mbit\"\n"), "has no `actions`"),
        ("relative program", sla("interface = \"out0\"\nwhen = \"rate > 1mbit\"\nactions = [{ exec = [@\"alert\"] }]"), "looked up in weir's PATH"),
        ("restore without changes", sla("interface = \"out0\"\nwhen = \"rate > 1mbit\"\nactions = [{ log = true }]\nrestore = @false"), "`restore` has no effect"),
        ("log = false", sla("interface = \"out0\"\nwhen = \"rate > 1mbit\"\nactions = [{ log = @false }]"), "does nothing"),
        ("adjust that can't move", policy("class = \"web\"\nadjust = @{ high = \"90%\", low = \"10%\", step = \"1mbit\" }"), "can't move the rate"),
    ];
    for (name, src, needle) in &cases {
        let (text, line, col) = marked(src);
        let w = match parse_str(&text, "case.toml") {
            Ok(l) => l.warnings,
            Err(e) => panic!("case `{name}`: expected a valid config, got:\n{}", show(&e)),
        };
        assert!(
            find(&w, line, col, needle),
            "case `{name}`: no warning at {line}:{col} containing {needle:?}; got:\n{}",
            show(&w)
        );
    }
}

#[test]
fn the_example_turns_into_typed_rules() {
    let l = weir_config::load(&config_path("policies.toml")).unwrap();
    assert!(l.warnings.is_empty(), "{}", show(&l.warnings));
    let c = &l.config;
    assert_eq!(c.sla.len(), 4);
    let hot = &c.sla[0];
    assert_eq!(hot.name, "uplink-hot");
    assert_eq!(hot.severity, Severity::Warning);
    assert!(hot.restore);
    match &hot.target {
        Target::Interface { name, tree, link } => {
            assert_eq!(name, "weir-out");
            assert_eq!(*tree, Some(0));
            assert_eq!(*link, Some(Rate::from_bits_per_sec(100_000_000)));
        }
        t => panic!("{t:?}"),
    }
    let w = &hot.condition;
    assert_eq!(
        (w.metric, w.op, w.threshold, w.unit),
        (Metric::Utilization, Op::Gt, 80.0, Unit::Percent)
    );
    assert_eq!(w.for_ns, 30_000_000_000);
    assert_eq!(hot.actions[0], Action::Log { on: Phase::Both });
    match &hot.actions[1] {
        Action::Exec { argv, on } => {
            assert_eq!(*on, Phase::Both);
            assert_eq!(
                argv[0].0,
                vec![Piece::Text("/usr/local/bin/weir-alert".into())]
            );
            assert_eq!(argv[1].0, vec![Piece::Var(Placeholder::Rule)]);
        }
        a => panic!("{a:?}"),
    }
    let bulk = c.trees[0].class_index("bulk").unwrap();
    assert_eq!(
        hot.actions[2],
        Action::Throttle {
            tree: 0,
            class: bulk,
            factor: 0.5
        }
    );
    let drops = &c.sla[2].condition;
    assert_eq!(
        (drops.metric, drops.threshold, drops.unit),
        (Metric::Drops, 10.0, Unit::PerSec)
    );
    let q = &c.sla[3].condition;
    assert_eq!(
        (q.metric, q.threshold, q.unit),
        (Metric::Backlog, 500.0, Unit::Packets)
    );

    let p = &c.policies[0];
    assert_eq!(p.class, c.trees[0].class_index("1:20").unwrap());
    assert_eq!(p.min_rate, Rate::from_bits_per_sec(20_000_000));
    assert_eq!(p.max_rate, Rate::from_bits_per_sec(60_000_000));
    let a = p.adjust.as_ref().unwrap();
    // 10% of the configured 30mbit.
    assert_eq!(a.step, Rate::from_bits_per_sec(3_000_000));
    assert_eq!((a.high, a.low, a.every_ns), (90.0, 30.0, 10_000_000_000));
    assert_eq!(p.schedule.len(), 2);
    assert_eq!(p.window_at(Weekday::Mon, 8 * 60), Some(0));
    assert_eq!(p.window_at(Weekday::Sat, 8 * 60), None);
    assert_eq!(p.window_at(Weekday::Sun, 21 * 60 + 59), Some(1));
    assert_eq!(
        p.penalty.as_ref().map(|q| (q.sla, q.factor)),
        Some((0, 0.8))
    );
}

#[test]
fn expressions_read_the_way_people_write_them() {
    for (when, metric, threshold, unit, for_ns) in [
        (
            "utilization>=80.5%",
            Metric::Utilization,
            80.5,
            Unit::Percent,
            0,
        ),
        (
            "util > 80 % for 1.5min",
            Metric::Utilization,
            80.0,
            Unit::Percent,
            90_000_000_000,
        ),
        (
            "rate < 5mbit for 2 s",
            Metric::Rate,
            5e6,
            Unit::BitsPerSec,
            2_000_000_000,
        ),
        ("drops > 100", Metric::Drops, 100.0, Unit::PerSec, 0),
        (
            "overlimits > 50/s for 1h",
            Metric::Overlimits,
            50.0,
            Unit::PerSec,
            3_600_000_000_000,
        ),
        (
            "backlog > 500 packets",
            Metric::Backlog,
            500.0,
            Unit::Packets,
            0,
        ),
        ("backlog >= 64kb", Metric::Backlog, 65536.0, Unit::Bytes, 0),
    ] {
        let text = sla(&format!(
            "tree = \"up\"\nclass = \"web\"\nwhen = \"{when}\"\nactions = [{{ log = true }}]"
        ));
        let l = parse_str(&text, "case.toml").unwrap_or_else(|e| panic!("{when}: {}", show(&e)));
        let c = &l.config.sla[0].condition;
        assert_eq!(
            (c.metric, c.threshold, c.unit, c.for_ns),
            (metric, threshold, unit, for_ns),
            "{when}"
        );
    }
}

#[test]
fn a_pointer_into_an_escaped_string_falls_back_to_the_value() {
    // `\u0020` makes the source differ from the value: the column of the
    // bad token can't be trusted, so the value itself is pointed at.
    let text =
        sla("interface = \"out0\"\nwhen = \"rate\\u0020> 5mbit junk\"\nactions = [{ log = true }]");
    let e = parse_str(&text, "case.toml").unwrap_err();
    let line = text[..text.find("when").unwrap()].matches('\n').count() as u32 + 1;
    assert!(find(&e, line, 8, "unexpected `junk`"), "{}", show(&e));
}
