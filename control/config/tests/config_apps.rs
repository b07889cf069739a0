//! Apps (`[tree.T.apps]`, `[[tree.T.app]]`, `[[tree.T.app.match]]`),
//! class remarks and `wash`: every key read right, every mistake reported
//! at its FILE:LINE:COL (an `@` in a case marks where), and the seed's
//! section 2.2 compiled to the rule order it means.

use weir_config::{self as config, parse_str, Diagnostic, Tree, DEFAULT_RULE_PRIO};
use weir_dataplane::app::spec::{
    DEFAULT_BULK_HOLD, DEFAULT_BULK_WINDOW, DEFAULT_FLOWS, DEFAULT_IDLE_TIMEOUT,
    DEFAULT_INSPECT_PACKETS, DEFAULT_INSPECT_SLOTS, DEFAULT_MIN_PACKETS,
};
use weir_dataplane::app::{Behaviour, Bulk, Glob};
use weir_dataplane::remark::Remark;
use weir_testkit::fixture::{config_path, marked};

/// Leaves 1:10 and 1:20 under the inner class 1:1.
const BASE: &str = r#"
[tree.t]
default = "1:20"

[[tree.t.class]]
id = "1:1"
rate = "10mbit"

[[tree.t.class]]
id = "1:10"
name = "voice"
parent = "1:1"
rate = "5mbit"

[[tree.t.class]]
id = "1:20"
parent = "1:1"
rate = "5mbit"
"#;

/// BASE plus one app going to 1:10 with one rule made of `rule`.
fn with_rule(rule: &str) -> String {
    format!(
        "{BASE}\n[[tree.t.app]]\nname = \"a\"\nclass = \"1:10\"\n\n[[tree.t.app.match]]\n{rule}\n"
    )
}

fn tree(text: &str) -> Tree {
    match parse_str(text, "case.toml") {
        Ok(l) => {
            assert!(
                l.warnings.is_empty(),
                "unexpected warnings: {:#?}",
                l.warnings
            );
            l.config.trees.into_iter().next().expect("one tree")
        }
        Err(e) => panic!("expected a valid config:\n{text}\n{e:#?}"),
    }
}

fn find(diags: &[Diagnostic], line: u32, col: u32, needle: &str) -> bool {
    diags.iter().any(|d| {
        d.line == line && d.col == col && d.message.contains(needle) && d.file == "case.toml"
    })
}

fn shown(diags: &[Diagnostic]) -> String {
    diags.iter().map(|d| format!("  {d}\n")).collect()
}

/// Runs every case and reports all that fail at once.
fn error_cases(cases: &[(&str, String, &str)]) {
    let mut failed = Vec::new();
    for (name, src, needle) in cases {
        let (text, line, col) = marked(src);
        match parse_str(&text, "case.toml") {
            Ok(_) => failed.push(format!("case `{name}`: no errors at all")),
            Err(e) if find(&e, line, col, needle) => {}
            Err(e) => failed.push(format!(
                "case `{name}`: no error at {line}:{col} containing {needle:?}; got:\n{}",
                shown(&e)
            )),
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

fn warning_cases(cases: &[(&str, String, &str)]) {
    let mut failed = Vec::new();
    for (name, src, needle) in cases {
        let (text, line, col) = marked(src);
        match parse_str(&text, "case.toml") {
            Err(e) => failed.push(format!("case `{name}`: errors:\n{}", shown(&e))),
            Ok(l) if find(&l.warnings, line, col, needle) => {}
            Ok(l) => failed.push(format!(
                "case `{name}`: no warning at {line}:{col} containing {needle:?}; got:\n{}",
                shown(&l.warnings)
            )),
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn no_apps_means_an_empty_spec() {
    let t = tree(BASE);
    assert!(t.apps.is_empty());
    assert!(!t.wash);
    assert!(t.classes.iter().all(|c| c.remark.is_none()));
    let spec = t.shaper_spec(0);
    assert!(spec.apps.is_empty());
    assert_eq!(spec.apps.flows, DEFAULT_FLOWS);
    assert!(spec.class_remark.is_empty());
    assert!(!spec.wash);
}

#[test]
fn table_keys_and_defaults() {
    let t = tree(&with_rule("ports = [22]"));
    let a = &t.apps.spec;
    assert_eq!(
        (
            a.flows,
            a.idle_timeout,
            a.inspect_slots,
            a.inspect_packets,
            a.bulk_window
        ),
        (
            DEFAULT_FLOWS,
            DEFAULT_IDLE_TIMEOUT,
            DEFAULT_INSPECT_SLOTS,
            DEFAULT_INSPECT_PACKETS,
            DEFAULT_BULK_WINDOW
        )
    );
    let text = format!(
        "{BASE}\n[tree.t.apps]\nflows = 1000\nidle_timeout = \"2min\"\ninspect_slots = 16\ninspect_packets = 4\nbulk_window = \"500ms\"\n\n[[tree.t.app]]\nname = \"a\"\nclass = \"1:10\"\nmatch = [{{ ports = [22] }}]\n"
    );
    let a = tree(&text).apps.spec;
    assert_eq!(
        (
            a.flows,
            a.idle_timeout,
            a.inspect_slots,
            a.inspect_packets,
            a.bulk_window
        ),
        (1000, 120_000_000_000, 16, 4, 500_000_000)
    );
    // An inline table works as well.
    let text = text.replace(
        "[tree.t.apps]\nflows = 1000\nidle_timeout = \"2min\"\ninspect_slots = 16\ninspect_packets = 4\nbulk_window = \"500ms\"\n",
        "",
    );
    let text = text.replace(
        "default = \"1:20\"",
        "default = \"1:20\"\napps = { flows = 7 }",
    );
    assert_eq!(tree(&text).apps.spec.flows, 7);
}

#[test]
fn app_keys() {
    let t = tree(&with_rule("ports = [22]"));
    let app = &t.apps.spec.apps[0];
    assert_eq!(app.name, "a");
    assert_eq!(t.classes[app.class as usize].id.to_string(), "1:10");
    assert_eq!(app.remark, None);
    // A class name works too; dscp by name or number; remark how.
    let cases = [
        ("dscp = \"EF\"", Some(Remark::Set(46))),
        ("dscp = 34", Some(Remark::Set(34))),
        ("dscp = \"cs1\"\nremark = \"set\"", Some(Remark::Set(8))),
        (
            "dscp = \"AF41\"\nremark = \"if-unmarked\"",
            Some(Remark::IfUnmarked(34)),
        ),
    ];
    for (keys, want) in cases {
        let text = format!("{BASE}\n[[tree.t.app]]\nname = \"x.y_z-1\"\nclass = \"voice\"\n{keys}\n\n[[tree.t.app.match]]\nports = [22]\n");
        let t = tree(&text);
        let app = &t.apps.spec.apps[0];
        assert_eq!(app.remark, want, "{keys}");
        assert_eq!(t.classes[app.class as usize].id.to_string(), "1:10");
    }
}

#[test]
fn rule_keys() {
    let rule = |keys: &str| {
        let t = tree(&with_rule(keys));
        assert_eq!(t.apps.spec.rules.len(), 1);
        (t.apps.prios[0], t.apps.spec.rules[0].clone())
    };
    let (prio, r) = rule("protocol = \"udp\"\nports = [5060, \"5061\", \"10000-20000\"]");
    assert_eq!(prio, DEFAULT_RULE_PRIO);
    assert_eq!(r.protocol, Some(17));
    assert_eq!(r.ports, vec![(5060, 5060), (5061, 5061), (10000, 20000)]);
    assert!(r.sni.is_empty() && r.host.is_empty());
    assert_eq!(
        r.behaviour,
        Behaviour {
            min_packets: DEFAULT_MIN_PACKETS,
            ..Behaviour::default()
        }
    );

    let (prio, r) = rule("prio = 3\nprotocol = 132\nports = [\"0x50\"]");
    assert_eq!((prio, r.protocol, r.ports), (3, Some(132), vec![(80, 80)]));

    let (_, r) = rule("sni = [\"*.googlevideo.com\", \"Video.Test\"]");
    assert_eq!(
        r.sni,
        vec![
            Glob::new("*.googlevideo.com").unwrap(),
            Glob::new("video.test").unwrap()
        ]
    );
    let (_, r) = rule("protocol = \"tcp\"\nhost = [\"video.test\"]");
    assert_eq!(r.host, vec![Glob::new("video.test").unwrap()]);
    assert_eq!(r.protocol, Some(6));
    let (_, r) = rule("protocol = \"udp\"\nsni = [\"quic.test\"]");
    assert_eq!(r.sni.len(), 1);

    let avg = |s: &str| rule(&format!("avg_size = {s}")).1.behaviour.avg_size;
    assert_eq!(avg("\"160-320\""), Some((160, 320)));
    assert_eq!(avg("\">1000\""), Some((1001, u32::MAX)));
    assert_eq!(avg("\">=1000\""), Some((1000, u32::MAX)));
    assert_eq!(avg("\"<200\""), Some((0, 199)));
    assert_eq!(avg("\"<=200\""), Some((0, 200)));
    assert_eq!(avg("160"), Some((160, 160)));
    assert_eq!(avg("\" 160 \""), Some((160, 160)));

    let var = |s: &str| {
        rule(&format!("iat_variance = \"{s}\""))
            .1
            .behaviour
            .iat_variance_below
    };
    assert_eq!(var("<0.1"), Some(100_000_000_000_000_000));
    assert_eq!(var("< 0.1s2"), Some(100_000_000_000_000_000));
    assert_eq!(var("<0.1s²"), Some(100_000_000_000_000_000));
    assert_eq!(var("<4ms2"), Some(4_000_000_000_000));
    assert_eq!(var("<2.5us2"), Some(2_500_000));
    assert_eq!(var("<7ns2"), Some(7));
    assert_eq!(var("<18"), Some(18_000_000_000_000_000_000));

    let b = rule("regular = true\nbursty = false\nmin_packets = 7")
        .1
        .behaviour;
    assert_eq!(
        (b.regular, b.bursty, b.min_packets),
        (Some(true), Some(false), 7)
    );

    let b = rule("bulk = { pps = 2000 }").1.behaviour;
    assert_eq!(
        b.bulk,
        Some(Bulk {
            pps: Some(2000),
            bytes_per_sec: None,
            hold: DEFAULT_BULK_HOLD
        })
    );
    let b = rule("bulk = { rate = \"50mbit\", hold = \"10s\" }")
        .1
        .behaviour;
    assert_eq!(
        b.bulk,
        Some(Bulk {
            pps: None,
            bytes_per_sec: Some(6_250_000),
            hold: 10_000_000_000
        })
    );
    // A standard sub-table works as well.
    let t = tree(&format!(
        "{}\n[tree.t.app.match.bulk]\npps = 10\nrate = 8000\nhold = \"0s\"\n",
        with_rule("prio = 1")
    ));
    assert_eq!(
        t.apps.spec.rules[0].behaviour.bulk,
        Some(Bulk {
            pps: Some(10),
            bytes_per_sec: Some(1000),
            hold: 0
        })
    );
    let b = rule("long_lived = \"60s\"").1.behaviour;
    assert_eq!(b.long_lived, Some(60_000_000_000));
}

#[test]
fn rules_go_by_prio_then_file_order() {
    let text = format!(
        "{BASE}
[[tree.t.app]]
name = \"a\"
class = \"1:10\"

[[tree.t.app.match]]
ports = [1]

[[tree.t.app.match]]
prio = 5
ports = [2]

[[tree.t.app]]
name = \"b\"
class = \"1:20\"

[[tree.t.app.match]]
prio = 5
ports = [3]

[[tree.t.app.match]]
prio = 1
ports = [4]

[[tree.t.app.match]]
ports = [5]
"
    );
    let t = tree(&text);
    let got: Vec<(u16, u16, u16)> = t
        .apps
        .spec
        .rules
        .iter()
        .zip(&t.apps.prios)
        .map(|(r, p)| (*p, r.app, r.ports[0].0))
        .collect();
    let d = DEFAULT_RULE_PRIO;
    assert_eq!(
        got,
        vec![(1, 1, 4), (5, 0, 2), (5, 1, 3), (d, 0, 1), (d, 1, 5)]
    );
    // Classes are indexes of the tree (parents first), as the shaper's.
    let spec = t.shaper_spec(0);
    assert_eq!(spec.apps, t.apps.spec);
    let class = |i: usize| t.classes[spec.apps.apps[i].class as usize].id.to_string();
    assert_eq!(
        (class(0), class(1)),
        ("1:10".to_string(), "1:20".to_string())
    );
}

#[test]
fn class_remark_and_wash() {
    let text = BASE
        .replace("default = \"1:20\"", "default = \"1:20\"\nwash = true")
        .replace(
            "name = \"voice\"",
            "name = \"voice\"\ndscp = \"EF\"\nremark = \"if-unmarked\"",
        );
    let t = tree(&text);
    assert!(t.wash);
    let spec = t.shaper_spec(0);
    assert!(spec.wash);
    let want: Vec<Option<Remark>> = t
        .classes
        .iter()
        .map(|c| (c.id.to_string() == "1:10").then_some(Remark::IfUnmarked(46)))
        .collect();
    assert_eq!(spec.class_remark, want);
    assert_eq!(spec.class_remark.len(), spec.htb.classes.len());
    // `weir check` shows them; without them its lines are as before.
    let shown = t.tree();
    assert!(shown.contains(" pool 65536 wash\n"), "{shown}");
    assert!(
        shown.contains(" cburst 1600b dscp EF if-unmarked\n"),
        "{shown}"
    );
    let plain = tree(BASE).tree();
    assert!(!plain.contains("wash") && !plain.contains("dscp") && !plain.contains("app"));
}

#[test]
fn error_table() {
    let app = |keys: &str| {
        format!("{BASE}\n[[tree.t.app]]\n{keys}\n\n[[tree.t.app.match]]\nports = [22]\n")
    };
    let r = with_rule;
    let cases: &[(&str, String, &str)] = &[
        // --- [tree.T.apps]
        (
            "unknown apps key",
            format!("{}[tree.t.apps]\n@flow = 5\n", r("ports = [1]")),
            "unknown field `flow`",
        ),
        (
            "flows 0",
            format!("{}[tree.t.apps]\nflows = @0\n", r("ports = [1]")),
            "`flows` = 0 is out of range; expected 1 ..= 16777216",
        ),
        (
            "flows too many",
            format!("{}[tree.t.apps]\nflows = @16777217\n", r("ports = [1]")),
            "`flows` = 16777217 is out of range",
        ),
        (
            "inspect_slots 0",
            format!("{}[tree.t.apps]\ninspect_slots = @0\n", r("ports = [1]")),
            "`inspect_slots` = 0 is out of range; expected 1 ..= 65536",
        ),
        (
            "inspect_packets too many",
            format!("{}[tree.t.apps]\ninspect_packets = @65\n", r("ports = [1]")),
            "`inspect_packets` = 65 is out of range; expected 1 ..= 64",
        ),
        (
            "idle_timeout without unit",
            format!("{}[tree.t.apps]\nidle_timeout = @\"60\"\n", r("ports = [1]")),
            "`idle_timeout` \"60\": no unit; expected a duration with a unit",
        ),
        (
            "idle_timeout too short",
            format!("{}[tree.t.apps]\nidle_timeout = @\"10ms\"\n", r("ports = [1]")),
            "`idle_timeout` = \"10ms\" is too short; expected at least 1s",
        ),
        (
            "bulk_window zero",
            format!("{}[tree.t.apps]\nbulk_window = @\"0s\"\n", r("ports = [1]")),
            "`bulk_window` = \"0s\" is too short; expected at least 1ms",
        ),
        (
            "bulk_window an integer",
            format!("{}[tree.t.apps]\nbulk_window = @1\n", r("ports = [1]")),
            "invalid type: integer `1`; expected a string",
        ),
        (
            "apps not a table",
            BASE.replace("default = \"1:20\"", "default = \"1:20\"\n@apps = 5"),
            "`apps` must be a table; expected a [tree.t.apps] section",
        ),
        (
            "app not an array",
            format!("{BASE}\n[tree.t.@app]\nname = \"a\"\n"),
            "`app` must be an array of tables; expected [[tree.t.app]] sections",
        ),
        // --- [[tree.T.app]]
        (
            "unknown app key",
            app("name = \"a\"\nclass = \"1:10\"\n@klass = 1"),
            "unknown field `klass`",
        ),
        (
            "app without class",
            format!("{BASE}\n@[[tree.t.app]]\nname = \"a\"\n\n[[tree.t.app.match]]\nports = [22]\n"),
            "missing key `class`",
        ),
        (
            "bad app name",
            app("name = @\"a b\"\nclass = \"1:10\""),
            "bad app name \"a b\"; expected 1..=64 characters of A-Z a-z 0-9 _ . -",
        ),
        (
            "empty app name",
            app("name = @\"\"\nclass = \"1:10\""),
            "bad app name \"\"",
        ),
        (
            "long app name",
            app(&format!("name = @\"{}\"\nclass = \"1:10\"", "x".repeat(65))),
            "bad app name",
        ),
        (
            "duplicate app name",
            format!(
                "{}\n[[tree.t.app]]\nname = @\"a\"\nclass = \"1:20\"\n\n[[tree.t.app.match]]\nports = [2]\n",
                r("ports = [1]")
            ),
            "duplicate app name \"a\" (first used on line 21)",
        ),
        (
            "unknown class",
            app("name = \"a\"\nclass = @\"1:99\""),
            "unknown class: no class 1:99 in tree `t`",
        ),
        (
            "unknown class name",
            app("name = \"a\"\nclass = @\"video\""),
            "unknown class: no class named \"video\"",
        ),
        (
            "inner class",
            app("name = \"a\"\nclass = @\"1:1\""),
            "app \"a\" goes to 1:1, which has children (an inner class); expected a leaf class",
        ),
        (
            "the qdisc",
            app("name = \"a\"\nclass = @\"1:\""),
            "`class` \"1:\" is the qdisc, not a class; expected a leaf class",
        ),
        (
            "bad dscp",
            app("name = \"a\"\nclass = \"1:10\"\ndscp = @\"AF44\""),
            "`dscp`: ",
        ),
        (
            "dscp out of range",
            app("name = \"a\"\nclass = \"1:10\"\ndscp = @64"),
            "DSCP 64 is out of range; expected 0..=63",
        ),
        (
            "unknown remark",
            app("name = \"a\"\nclass = \"1:10\"\ndscp = \"EF\"\nremark = @\"wash\""),
            "unknown `remark` \"wash\"; expected \"set\"",
        ),
        (
            "remark without dscp",
            app("name = \"a\"\nclass = \"1:10\"\nremark = @\"if-unmarked\""),
            "`remark` says how to set a DSCP, but there is no `dscp`",
        ),
        (
            "app without rules",
            format!("{BASE}\n@[[tree.t.app]]\nname = \"a\"\nclass = \"1:10\"\n"),
            "app \"a\" has no rules, so no flow would ever be it",
        ),
        (
            "match not an array",
            format!("{BASE}\n[[tree.t.app]]\nname = \"a\"\nclass = \"1:10\"\n@match = 5\n"),
            "`match` must be an array of tables; expected [[tree.t.app.match]] sections",
        ),
        // --- [[tree.T.app.match]]
        (
            "unknown rule key",
            r("ports = [1]\n@port = 2"),
            "unknown field `port`",
        ),
        (
            "rule with no matcher",
            format!("{BASE}\n[[tree.t.app]]\nname = \"a\"\nclass = \"1:10\"\n\n@[[tree.t.app.match]]\nprio = 1\n"),
            "this rule has no matcher, so it would match every flow; expected at least one of protocol, ports",
        ),
        (
            "prio out of range",
            r("prio = @70000\nports = [1]"),
            "`prio` = 70000 is out of range; expected 0 ..= 65535",
        ),
        (
            "unknown protocol",
            r("protocol = @\"tcpp\""),
            "unknown protocol; expected tcp, udp",
        ),
        (
            "protocol out of range",
            r("protocol = @256"),
            "unknown protocol",
        ),
        (
            "ports not a list",
            r("ports = @22"),
            "invalid type: integer `22`; expected a sequence",
        ),
        ("empty ports", r("ports = @[]"), "empty `ports` list matches nothing"),
        (
            "bad port",
            r("ports = [1, @70000]"),
            "bad `ports` entry 70000; expected a port 0..=65535 or a range",
        ),
        (
            "bad port string",
            r("ports = [@\"http\"]"),
            "bad `ports` entry \"http\"",
        ),
        (
            "masked port",
            r("ports = [@\"0x50/0xfff0\"]"),
            "bad `ports` entry \"0x50/0xfff0\"",
        ),
        (
            "backwards range",
            r("ports = [@\"20-10\"]"),
            "`ports` range \"20-10\" is backwards (20 > 10)",
        ),
        (
            "ports on icmp",
            r("protocol = \"icmp\"\nports = @[1]"),
            "`ports` with protocol icmp can never match: that protocol has no ports",
        ),
        ("empty sni", r("sni = @[]"), "empty `sni` list matches nothing"),
        (
            "bad sni glob",
            r("sni = [\"a.test\", @\"b c\"]"),
            "bad `sni` pattern \"b c\": ' ' at 1 cannot be in a name",
        ),
        (
            "empty sni glob",
            r("sni = [@\"\"]"),
            "bad `sni` pattern \"\": an empty name pattern matches nothing",
        ),
        (
            "non-ascii host",
            r("host = [@\"vidéo.test\"]"),
            "bad `host` pattern \"vidéo.test\"",
        ),
        (
            "sni over icmp",
            r("protocol = \"icmp\"\nsni = @[\"a.test\"]"),
            "`sni` with protocol icmp can never match: server names are read from TLS over tcp and QUIC over udp",
        ),
        (
            "host over udp",
            r("protocol = \"udp\"\nhost = @[\"a.test\"]"),
            "`host` with protocol udp can never match: the Host header is read from HTTP/1 over tcp",
        ),
        (
            "sni and host",
            r("sni = [\"a.test\"]\nhost = @[\"a.test\"]"),
            "`host` and `sni` in one rule can never both match",
        ),
        (
            "sni with avg_size",
            r("sni = [\"a.test\"]\navg_size = @\"<200\""),
            "`avg_size` can't be in a rule with `sni`: a name rule is decided on the packet that carries the name",
        ),
        (
            "host with bulk",
            r("host = [\"a.test\"]\nbulk = @{ pps = 5 }"),
            "`bulk` can't be in a rule with `host`",
        ),
        (
            "sni with long_lived",
            r("sni = [\"a.test\"]\nlong_lived = @\"5s\""),
            "`long_lived` can't be in a rule with `sni`",
        ),
        (
            "sni with min_packets",
            r("sni = [\"a.test\"]\nmin_packets = @3"),
            "`min_packets` can't be in a rule with `sni`",
        ),
        (
            "host with regular",
            r("host = [\"a.test\"]\nregular = @true"),
            "`regular` can't be in a rule with `host`",
        ),
        (
            "bad avg_size",
            r("avg_size = @\"big\""),
            "bad `avg_size` \"big\"; expected bytes as a range \"160-320\"",
        ),
        (
            "negative avg_size",
            r("avg_size = @-1"),
            "bad `avg_size` -1",
        ),
        (
            "empty avg_size range",
            r("avg_size = @\"320-160\""),
            "`avg_size` \"320-160\" is an empty range",
        ),
        (
            "avg_size below 0",
            r("avg_size = @\"<0\""),
            "`avg_size` \"<0\" is an empty range",
        ),
        (
            "avg_size above the largest",
            r("avg_size = @\">4294967295\""),
            "is an empty range",
        ),
        (
            "variance without <",
            r("iat_variance = @\"0.1\""),
            "bad `iat_variance` \"0.1\": it must start with '<'",
        ),
        (
            "variance <=",
            r("iat_variance = @\"<=0.1\""),
            "only '<' is supported",
        ),
        (
            "variance unit",
            r("iat_variance = @\"<0.1ms\""),
            "unknown unit \"ms\"",
        ),
        (
            "variance zero",
            r("iat_variance = @\"<0\""),
            "no variance is below 0 ns²",
        ),
        (
            "variance too large",
            r("iat_variance = @\"<19\""),
            "above 18.4 s²",
        ),
        (
            "variance no number",
            r("iat_variance = @\"<.\""),
            "no number",
        ),
        (
            "variance a float",
            r("iat_variance = @0.1"),
            "invalid type: floating point `0.1`; expected a string",
        ),
        (
            "regular not a bool",
            r("regular = @\"yes\""),
            "invalid type: string \"yes\"; expected a boolean",
        ),
        (
            "bulk without trigger",
            r("bulk = @{ hold = \"5s\" }"),
            "`bulk` needs a trigger; expected `pps` (packets/s) and/or `rate`",
        ),
        (
            "bulk unknown key",
            r("bulk = { @ppps = 5 }"),
            "unknown field `ppps`",
        ),
        (
            "bulk pps 0",
            r("bulk = { pps = @0 }"),
            "`pps` = 0 is out of range; expected 1 ..= 4294967295",
        ),
        (
            "bulk bad rate",
            r("bulk = { rate = @\"fast\" }"),
            "`rate`: ",
        ),
        (
            "bulk rate zero",
            r("bulk = { rate = @\"0bit\" }"),
            "`rate` = 0bit is below 1 byte/s",
        ),
        (
            "bulk hold without unit",
            r("bulk = { pps = 5, hold = @\"5\" }"),
            "`hold` \"5\": no unit",
        ),
        (
            "long_lived zero",
            r("long_lived = @\"0s\""),
            "`long_lived` = \"0s\" is too short; expected at least 1ms",
        ),
        (
            "long_lived unknown unit",
            r("long_lived = @\"5 fortnights\""),
            "`long_lived` \"5 fortnights\": unknown unit \"fortnights\"",
        ),
        (
            "min_packets 0",
            r("avg_size = 100\nmin_packets = @0"),
            "`min_packets` = 0 is out of range; expected 1 ..= 4294967295",
        ),
        // --- classes and wash
        (
            "class dscp on an inner class",
            BASE.replace("id = \"1:1\"\n", "id = \"1:1\"\ndscp = @\"EF\"\n"),
            "class 1:1 has children, so no frame leaves from it; expected `dscp` on leaf classes only",
        ),
        (
            "class remark on an inner class",
            BASE.replace("id = \"1:1\"\n", "id = \"1:1\"\nremark = @\"set\"\n"),
            "class 1:1 has children",
        ),
        (
            "class bad dscp",
            BASE.replace("name = \"voice\"", "name = \"voice\"\ndscp = @\"XX\""),
            "`dscp`: ",
        ),
        (
            "class remark without dscp",
            BASE.replace("name = \"voice\"", "name = \"voice\"\nremark = @\"set\""),
            "`remark` says how to set a DSCP, but there is no `dscp`",
        ),
        (
            "wash not a bool",
            BASE.replace("default = \"1:20\"", "default = \"1:20\"\nwash = @1"),
            "invalid type: integer `1`; expected a boolean",
        ),
    ];
    error_cases(cases);
}

#[test]
fn one_run_reports_every_bad_rule() {
    let text = format!(
        "{}\n[[tree.t.app.match]]\nports = [70000]\n\n[[tree.t.app.match]]\nbogus = 1\n",
        with_rule("avg_size = \"x\"")
    );
    let errs = parse_str(&text, "case.toml").unwrap_err();
    for needle in [
        "bad `avg_size`",
        "bad `ports` entry",
        "unknown field `bogus`",
    ] {
        assert!(
            errs.iter().any(|d| d.message.contains(needle)),
            "{needle}: {}",
            shown(&errs)
        );
    }
}

#[test]
fn warning_table() {
    let washed = BASE.replace("default = \"1:20\"", "default = \"1:20\"\nwash = true");
    let cases: &[(&str, String, &str)] = &[
        (
            "apps table without apps",
            format!("{BASE}\n@[tree.t.apps]\nflows = 10\n"),
            "[tree.t.apps] sizes a flow table, but the tree has no apps",
        ),
        (
            "min_packets without statistics",
            with_rule("ports = [1]\nmin_packets = @3"),
            "`min_packets` has no effect here",
        ),
        (
            "dscp filter in a washed tree",
            format!("{washed}\n[[tree.t.filter]]\nflowid = \"1:10\"\ndscp = @\"EF\"\n"),
            "this filter matches TOS 0xb8/0xfc, which can never match: tree `t` has `wash = true`",
        ),
        (
            "tos filter in a washed tree",
            format!("{washed}\n[[tree.t.filter]]\nflowid = \"1:10\"\ntos = @\"0x10/0x1c\"\n"),
            "this filter matches TOS 0x10/0x1c, which can never match",
        ),
    ];
    warning_cases(cases);
    // DSCP 0 (BE) does match in a washed tree: no warning.
    let t = parse_str(
        &format!("{washed}\n[[tree.t.filter]]\nflowid = \"1:10\"\ndscp = \"BE\"\n"),
        "case.toml",
    )
    .unwrap();
    assert!(t.warnings.is_empty(), "{}", shown(&t.warnings));
}

/// The seed's section 2.2, in the order its `classify_flow` evaluates it,
/// and the rules past it where they must go.
#[test]
fn seed_2_2_compiles_to_the_seed_s_order() {
    let loaded =
        config::load(&config_path("seed-2.2-apps.toml")).unwrap_or_else(|e| panic!("{e:#?}"));
    assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
    let trees = &loaded.config.trees;
    assert_eq!(trees.len(), 2);
    let t = &trees[0];
    assert_eq!(t.name, "eth0");
    // Both directions are shaped with the same apps.
    assert_eq!(trees[1].name, "eth1");
    assert_eq!(trees[1].apps, t.apps);
    assert_eq!(trees[1].classes, t.classes);
    let pair = &loaded.config.pairs[0];
    assert_eq!((pair.upload, pair.download), (Some(0), Some(1)));

    let a = &t.apps.spec;
    let apps: Vec<(&str, String, Option<Remark>)> = a
        .apps
        .iter()
        .map(|x| {
            (
                x.name.as_str(),
                t.classes[x.class as usize].id.to_string(),
                x.remark,
            )
        })
        .collect();
    let set = |d| Some(Remark::Set(d));
    assert_eq!(
        apps,
        vec![
            ("voice", "1:10".into(), set(46)),
            ("streaming", "1:20".into(), set(34)),
            ("video", "1:20".into(), set(34)),
            ("database", "1:30".into(), set(26)),
            ("web", "1:40".into(), set(0)),
            ("backup", "1:50".into(), set(8)),
            ("bulk", "1:50".into(), set(8)),
        ]
    );
    let name = |i: usize| a.apps[usize::from(a.rules[i].app)].name.as_str();
    let order: Vec<(u16, &str)> = (0..a.rules.len())
        .map(|i| (t.apps.prios[i], name(i)))
        .collect();
    assert_eq!(
        order,
        vec![
            (10, "voice"),     // ports 5060, 5061
            (20, "voice"),     // rtp_range + size + variance
            (30, "streaming"), // SNI (past the seed)
            (31, "streaming"), // HTTP Host (past the seed)
            (40, "video"),     // ports
            (50, "database"),  // ports
            (60, "web"),       // ports
            (70, "backup"),    // ports
            (80, "backup"),    // avg > 10000 and duration > 60 s
            (90, "voice"),     // avg < 200, regular
            (100, "video"),    // avg > 1000, bursty
            (110, "bulk"),     // qosify (past the seed)
        ]
    );
    let r = &a.rules;
    let ports = |i: usize| r[i].ports.clone();
    let one = |p: &[u16]| p.iter().map(|&p| (p, p)).collect::<Vec<_>>();
    assert_eq!(ports(0), one(&[5060, 5061]));
    assert_eq!(ports(1), vec![(10000, 20000)]);
    assert_eq!(ports(4), one(&[554, 8080, 1935]));
    assert_eq!(ports(5), one(&[3306, 5432, 1521, 1433]));
    assert_eq!(ports(6), one(&[80, 443, 8080, 8443]));
    assert_eq!(ports(7), one(&[873, 22]));
    // Port rules decide on the first packet, on any protocol, as the seed.
    for i in [0, 4, 5, 6, 7] {
        assert!(!r[i].waits(), "rule {i}");
        assert_eq!(r[i].protocol, None);
    }
    let rtp = r[1].behaviour;
    assert_eq!(rtp.avg_size, Some((160, 320)));
    assert_eq!(rtp.iat_variance_below, Some(100_000_000_000_000_000)); // 0.1 s²
    assert_eq!(rtp.min_packets, 12); // len(inter_arrival_times) > 10
    assert_eq!(r[2].sni.len(), 3);
    assert!(r[2].sni[0].matches(b"r3---sn-a.googlevideo.com"));
    assert!(r[2].sni[1].matches(b"video.test"));
    assert_eq!((r[3].protocol, r[3].host.len()), (Some(6), 2));
    let backup = r[8].behaviour;
    assert_eq!(
        (backup.avg_size, backup.long_lived, backup.min_packets),
        (Some((10001, u32::MAX)), Some(60_000_000_000), 1)
    );
    let voice = r[9].behaviour;
    assert_eq!(
        (voice.avg_size, voice.regular, voice.min_packets),
        (Some((0, 199)), Some(true), 7)
    );
    let video = r[10].behaviour;
    assert_eq!(
        (video.avg_size, video.bursty, video.min_packets),
        (Some((1001, u32::MAX)), Some(true), 11)
    );
    assert_eq!(
        r[11].behaviour.bulk,
        Some(Bulk {
            pps: Some(2000),
            bytes_per_sec: None,
            hold: 5_000_000_000
        })
    );
    assert_eq!(a.bulk_window, 1_000_000_000);
    // Unclassified flows (the default class, 1:40) are marked BE, as the
    // seed's 'default': '0'.
    let spec = t.shaper_spec(0);
    let web = t.class_index("1:40").unwrap() as usize;
    assert_eq!(spec.class_remark[web], Some(Remark::Set(0)));
    assert_eq!(spec.class_remark.iter().filter(|r| r.is_some()).count(), 1);
    assert_eq!(t.classes[t.default_class as usize].id.to_string(), "1:40");
    // Rates: the guarantees of the leaves fill the link, no more.
    let leaves: u64 = t
        .classes
        .iter()
        .filter(|c| c.is_leaf())
        .map(|c| c.rate.bits_per_sec())
        .sum();
    assert_eq!(leaves, 1_000_000_000);
}

#[test]
fn check_prints_the_apps_after_the_filters() {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = config::cli_check(&config_path("seed-2.2-apps.toml"), &mut out, &mut err);
    let out = String::from_utf8(out).unwrap();
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
    for line in [
        "  apps flows 65536 idle_timeout 60s inspect_slots 1024 inspect_packets 8 bulk_window 1s\n",
        "  app voice class 1:10 (voice) dscp EF\n",
        "  rule prio 20 app voice ports 10000-20000 avg_size 160-320 iat_variance <0.1s2 min_packets 12\n",
        "  rule prio 30 app streaming sni *.googlevideo.com,video.test,*.nflxvideo.net\n",
        "  rule prio 31 app streaming protocol tcp host video.test,*.googlevideo.com\n",
        "  rule prio 80 app backup avg_size >10000 long_lived 60s min_packets 1\n",
        "  rule prio 90 app voice avg_size <200 regular true min_packets 7\n",
        "  rule prio 110 app bulk bulk pps 2000 hold 5s\n",
        " cburst 1600b dscp BE\n",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    // A rule with everything a non-name rule can have prints it all.
    let t = tree(&with_rule(
        "prio = 2\nprotocol = \"udp\"\nports = [1, \"5-6\"]\navg_size = \"<=200\"\niat_variance = \"<4ms2\"\nregular = false\nbursty = true\nbulk = { pps = 3, rate = \"1mbit\", hold = \"1s\" }\nlong_lived = \"2s\"\nmin_packets = 4",
    ));
    assert!(
        t.tree().contains("  rule prio 2 app a protocol udp ports 1,5-6 avg_size <201 iat_variance <0.000004s2 regular false bursty true bulk pps 3 rate 1Mbit hold 1s long_lived 2s min_packets 4\n"),
        "{}",
        t.tree()
    );
}
