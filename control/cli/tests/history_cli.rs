//! `weir history`, the built binary, on generated databases: statistics
//! that agree with Python's `statistics` module, minute rows said to be
//! approximate, filters, violations and adjustments, JSON, and what it
//! says (and exits with) on bad input.

#[path = "../../history/tests/history_util/mod.rs"]
mod history_util;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use history_util::*;
use serde_json::Value;
use weir_history::{ClassSample, History, HistoryCfg, Record};

/// Python: x = [12.5e6, 13.1e6, 11.9e6, 12.8e6, 30e6, 0, 12.2e6]
const RATES: [u64; 7] = [
    12_500_000, 13_100_000, 11_900_000, 12_800_000, 30_000_000, 0, 12_200_000,
];
/// statistics.mean(x), .stdev(x), .median(x),
/// .quantiles(x, n=20, method="inclusive")[18]
const PY_RATE: [f64; 4] = [
    13214285.714285715,
    8754318.662128722,
    12500000.0,
    24930000.0,
];
/// The same of [v * 100 / 80e6 for v in x] (utilization of an 80 Mbit/s
/// ceil).
const PY_UTIL: [f64; 4] = [16.517857142857142, 10.942898327660904, 15.625, 31.1625];

/// --since/--until around T0 + 0..=10 min.
const SINCE: &str = "2023-11-14T22:14:00Z";
const UNTIL: &str = "2023-11-14T22:24:00Z";

fn weir(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .output()
        .expect("run weir");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn history(db: &Path, more: &[&str]) -> (i32, String, String) {
    let mut args = vec!["history", "--db", db.to_str().unwrap()];
    args.extend_from_slice(more);
    weir(&args)
}

fn json(db: &Path, more: &[&str]) -> Value {
    let mut args = vec!["-j"];
    args.extend_from_slice(more);
    let (code, out, err) = history(db, &args);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn py_class(i: usize) -> ClassSample {
    let rate_bps = RATES[i];
    ClassSample {
        tree: "up".into(),
        class: "1:30".into(),
        name: Some("py".into()),
        bytes: rate_bps / 8,
        packets: 10,
        drops: 1,
        overlimits: 2,
        backlog_bytes: 0,
        backlog_packets: 0,
        rate_bps,
        rate: 5_000_000,
        ceil: 10_000_000,
        utilization: rate_bps as f64 * 100.0 / 80e6,
    }
}

/// 600 s of two classes and an interface (the older 8 minutes folded),
/// the seven samples of the `py` class, violations and an adjustment.
fn generate(path: &Path) {
    let cfg = HistoryCfg {
        keep_seconds: Duration::from_secs(120),
        ..cfg(path)
    };
    let h = History::open(&cfg, T0).unwrap();
    for i in 1..=600 {
        let mut rec = sample(2, i);
        if let Record::Sample { classes, .. } = &mut rec {
            if (1..=7).contains(&i) {
                classes.push(py_class(i as usize - 1));
            }
        }
        push(&h, rec);
    }
    let violation = |rule: &str, at: i64| Record::Violation {
        at_unix_ms: at,
        rule: rule.into(),
        target: "up 1:10 (c0)".into(),
        severity: "critical".into(),
        metric: "drops".into(),
        unit: "/s".into(),
        value: 150.0,
        threshold: 100.0,
    };
    push(&h, violation("drops-high", T0 + 100_000));
    push(
        &h,
        Record::Resolved {
            at_unix_ms: T0 + 400_000,
            rule: "drops-high".into(),
            value: 3.0,
        },
    );
    push(&h, violation("still-bad", T0 + 500_000));
    push(
        &h,
        Record::Adjustment {
            at_unix_ms: T0 + 100_000,
            tree: "up".into(),
            class: "1:10".into(),
            name: Some("c0".into()),
            old_rate: 3_750_000,
            old_ceil: 7_500_000,
            new_rate: 1_875_000,
            new_ceil: 3_750_000,
            reason: "SLA drops-high: throttle × 0.5".into(),
        },
    );
    flush(&h);
    assert_eq!(h.stats().write_errors, 0);
    h.close();
}

fn close(a: &Value, b: f64) -> bool {
    let a = a.as_f64().unwrap();
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

#[test]
fn statistics_agree_with_pythons_and_minute_rows_are_flagged() {
    let dir = Scratch::new("hist-cli");
    let db = dir.path("history.db");
    generate(&db);

    let v = json(&db, &["--since", SINCE, "--until", UNTIL]);
    assert_eq!(v["from"], SINCE);
    assert_eq!(v["until"], UNTIL);
    assert_eq!(v["db"], db.to_str().unwrap());
    let classes = v["classes"].as_array().unwrap();
    assert_eq!(classes.len(), 3);
    let py = classes.iter().find(|c| c["name"] == "py").unwrap();
    assert_eq!(py["class"], "1:30");
    assert_eq!(py["coverage"]["samples"], 7);
    // Folded: its minute is older than keep_seconds; the moments are
    // exact all the same.
    assert_eq!(py["coverage"]["minute_rows"], 1);
    let r = &py["rate_bps"];
    assert!(close(&r["avg"], PY_RATE[0]), "{r}");
    assert!(close(&r["stddev"], PY_RATE[1]), "{r}");
    assert_eq!(r["min"], 0.0);
    assert_eq!(r["max"], 30e6);
    assert_eq!(r["approximate"], true);
    let u = &py["utilization"];
    assert!(close(&u["avg"], PY_UTIL[0]), "{u}");
    assert!(close(&u["stddev"], PY_UTIL[1]), "{u}");
    assert_eq!(py["bytes"], RATES.iter().sum::<u64>() / 8);
    assert_eq!(py["drops"], 7);
    assert_eq!(
        (py["rate"].as_u64(), py["ceil"].as_u64()),
        (Some(5_000_000), Some(10_000_000))
    );
    // Median and p95 from 1-second rows: reopen with a longer
    // keep_seconds would not unfold them, so check them on a database
    // where they are still 1-second rows.
    let dir2 = Scratch::new("hist-cli-py");
    let db2 = dir2.path("history.db");
    let h = History::open(&cfg(&db2), T0).unwrap();
    for i in 0..7 {
        push(
            &h,
            Record::Sample {
                at_unix_ms: T0 + 1000 * (i as i64 + 1),
                interval_ms: 1000,
                classes: vec![py_class(i)],
                interfaces: vec![],
            },
        );
    }
    h.close();
    let v = json(&db2, &["--since", SINCE, "--until", UNTIL]);
    let py = &v["classes"][0];
    let r = &py["rate_bps"];
    assert_eq!(r["approximate"], false);
    assert_eq!(r["count"], 7);
    for (k, want) in ["avg", "stddev", "median", "p95"].iter().zip(PY_RATE) {
        assert!(close(&r[k], want), "{k}: {r}");
    }
    for (k, want) in ["avg", "stddev", "median", "p95"].iter().zip(PY_UTIL) {
        assert!(
            close(&py["utilization"][k], want),
            "{k}: {}",
            py["utilization"]
        );
    }
    assert_eq!(v["interfaces"], serde_json::json!([]));
    let (code, text, _) = history(&db2, &["--since", SINCE, "--until", UNTIL]);
    assert_eq!(code, 0);
    assert!(
        text.contains(
            "class up 1:30 (py): 7 sample(s), 2023-11-14 22:14:01 .. 2023-11-14 22:14:07"
        ),
        "{text}"
    );
    // avg 13.214Mbit … p95 24.93Mbit, in tc units.
    let rate_line = text.lines().find(|l| l.starts_with(" rate ")).unwrap();
    let cells: Vec<&str> = rate_line.split_whitespace().collect();
    assert_eq!(
        cells,
        [
            "rate",
            "13.214Mbit",
            "0bit",
            "30Mbit",
            "12.5Mbit",
            "8.754Mbit",
            "24.93Mbit"
        ],
        "{text}"
    );
    assert!(
        text.contains(" Sent 11562500 bytes 70 pkt (dropped 7, overlimits 14)"),
        "{text}"
    );
    assert!(
        text.contains("in force at the end: rate 40Mbit ceil 80Mbit"),
        "{text}"
    );
    assert!(!text.contains("approximate"), "{text}");

    // Text over the folded database says so.
    let (code, text, _) = history(&db, &["--since", SINCE, "--until", UNTIL]);
    assert_eq!(code, 0);
    assert!(
        text.contains("class up 1:10 (c0): 600 sample(s) (121 1-second, 479 in 8 1-minute row(s): median and p95 approximate)"),
        "{text}"
    );
    assert!(text.contains("interface weir-out: 600 sample(s)"), "{text}");
    assert!(text.contains(" rate out "), "{text}");
    assert!(text.contains(" TX "), "{text}");
}

#[test]
fn filters_violations_and_adjustments() {
    let dir = Scratch::new("hist-cli-filters");
    let db = dir.path("history.db");
    generate(&db);
    let range = ["--since", SINCE, "--until", UNTIL];
    let names = |more: &[&str]| -> (Vec<String>, usize) {
        let mut a = range.to_vec();
        a.extend_from_slice(more);
        let v = json(&db, &a);
        (
            v["classes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["class"].as_str().unwrap().to_string())
                .collect(),
            v["interfaces"].as_array().unwrap().len(),
        )
    };
    assert_eq!(names(&["--class", "c1"]), (vec!["1:11".to_string()], 0));
    assert_eq!(names(&["--class", "1:30"]), (vec!["1:30".to_string()], 0));
    assert_eq!(names(&["--tree", "up"]).0.len(), 3);
    assert_eq!(names(&["--interface", "weir-out"]), (vec![], 1));
    let (code, text, _) = history(&db, &[&range[..], &["--tree", "down"]].concat());
    assert_eq!(code, 0);
    assert!(
        text.contains("no samples for tree down in this range"),
        "{text}"
    );

    // Violations: table and JSON.
    let (code, text, err) = history(&db, &[&range[..], &["--violations"]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(text.contains("SLA violations: 2"), "{text}");
    let row = text.lines().find(|l| l.starts_with("drops-high")).unwrap();
    for cell in [
        "up 1:10 (c0)",
        "critical",
        "drops 150/s",
        "100/s",
        "2023-11-14 22:15:40",
        "2023-11-14 22:20:40",
        "5min",
        "cleared",
    ] {
        assert!(row.contains(cell), "{cell} in {row}");
    }
    let row = text.lines().find(|l| l.starts_with("still-bad")).unwrap();
    assert!(row.contains(" open ") && row.contains("so far"), "{row}");
    assert!(!text.contains("class up"), "{text}");
    let v = json(&db, &[&range[..], &["--violations"]].concat());
    assert!(v.get("classes").is_none());
    let x = &v["violations"][0];
    assert_eq!(x["rule"], "drops-high");
    assert_eq!(x["opened"], "2023-11-14T22:15:40Z");
    assert_eq!(x["resolved"], "2023-11-14T22:20:40Z");
    assert_eq!(x["duration_ms"], 300_000);
    assert_eq!(x["open"], false);
    assert_eq!(x["resolved_value"], 3.0);
    assert_eq!(x["resolution"], "cleared");
    assert_eq!(v["violations"][1]["open"], true);
    assert_eq!(v["violations"][1]["resolved"], Value::Null);

    // Adjustments.
    let (code, text, _) = history(&db, &[&range[..], &["--adjustments"]].concat());
    assert_eq!(code, 0);
    let row = text.lines().find(|l| l.contains("1:10 (c0)")).unwrap();
    assert!(row.contains("30Mbit → 15Mbit"), "{row}");
    assert!(row.contains("60Mbit → 30Mbit"), "{row}");
    assert!(row.contains("SLA drops-high: throttle × 0.5"), "{row}");
    let v = json(
        &db,
        &[&range[..], &["--adjustments", "--class", "c0"]].concat(),
    );
    assert_eq!(v["adjustments"][0]["new_rate"], 1_875_000);
    assert_eq!(v["adjustments"][0]["at"], "2023-11-14T22:15:40Z");
    let v = json(
        &db,
        &[&range[..], &["--adjustments", "--class", "c1"]].concat(),
    );
    assert_eq!(v["adjustments"], serde_json::json!([]));
}

#[test]
fn the_default_range_is_the_last_hour_and_empty_is_not_an_error() {
    let dir = Scratch::new("hist-cli-now");
    let db = dir.path("history.db");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let h = History::open(&cfg(&db), now).unwrap();
    for i in 0..5 {
        push(
            &h,
            Record::Sample {
                at_unix_ms: now - 600_000 + i * 1000,
                interval_ms: 1000,
                classes: vec![class_sample(0, i)],
                interfaces: vec![],
            },
        );
    }
    h.close();
    let v = json(&db, &[]);
    assert_eq!(v["classes"][0]["coverage"]["samples"], 5);
    let v = json(&db, &["--since", "5min"]);
    assert_eq!(v["classes"], serde_json::json!([]));
    let (code, text, _) = history(&db, &["--since", "2h", "--until", "1h"]);
    assert_eq!(code, 0);
    assert!(text.contains("no samples in this range"), "{text}");
    let (code, text, _) = history(&db, &["--violations"]);
    assert_eq!(code, 0);
    assert!(text.contains("no SLA violations in this range"), "{text}");
}

#[test]
fn a_configuration_names_the_database() {
    let dir = Scratch::new("hist-cli-config");
    let db = dir.path("history.db");
    generate(&db);
    let base =
        "[tree.up]\ndefault = \"1:10\"\n[[tree.up.class]]\nid = \"1:10\"\nrate = \"10mbit\"\n";
    let good = dir.path("good.toml");
    std::fs::write(
        &good,
        format!(
            "[history]\npath = \"{}\"\nkeep_seconds = \"2h\"\n{base}",
            db.display()
        ),
    )
    .unwrap();
    let (code, text, err) = weir(&[
        "history",
        "-c",
        good.to_str().unwrap(),
        "--since",
        SINCE,
        "--until",
        UNTIL,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(text.contains("class up 1:10 (c0)"), "{text}");
    let off = dir.path("off.toml");
    std::fs::write(&off, format!("[history]\npath = \"none\"\n{base}")).unwrap();
    let (code, _, err) = weir(&["history", "-c", off.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("history is off"), "{err}");
    let bad = dir.path("bad.toml");
    std::fs::write(&bad, format!("[history]\nkeep_seconds = \"6\"\n{base}")).unwrap();
    let (code, _, err) = weir(&["history", "-c", bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("bad.toml:2:16: bad `keep_seconds`"), "{err}");
}

#[test]
fn bad_input_says_what_is_wrong() {
    let dir = Scratch::new("hist-cli-bad");
    let db = dir.path("history.db");
    generate(&db);
    let (code, _, err) = history(&dir.path("missing.db"), &[]);
    assert_eq!(code, 1);
    assert!(err.contains("missing.db: no such file"), "{err}");
    let garbage = dir.path("garbage.db");
    std::fs::write(
        &garbage,
        "this is not a database, just some text long enough\n".repeat(200),
    )
    .unwrap();
    let (code, _, err) = history(&garbage, &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("garbage.db") && err.contains("not an SQLite database"),
        "{err}"
    );
    let (code, _, err) = history(&dir.0, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("is a directory"), "{err}");
    for (args, says) in [
        (vec!["--since", "yesterday"], "bad --since \"yesterday\""),
        (vec!["--since", "10"], "no unit"),
        (vec!["--until", "2023-02-30T00:00:00Z"], "bad --until"),
        (vec!["--since", "1h", "--until", "2h"], "is after --until"),
        (vec!["--bogus"], "unexpected argument"),
    ] {
        let (code, _, err) = history(&db, &args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let (code, _, err) = weir(&["history", "-c", "x.toml", "--db", "y.db"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot be used with"), "{err}");
}

/// Per-app rows: shown after the classes and interfaces, alone with
/// `--app`, in the JSON's `apps` (absent from a history without apps).
#[test]
fn apps_are_shown_and_filtered() {
    let dir = Scratch::new("hist-cli-apps");
    let db = dir.path("history.db");
    let h = History::open(&cfg(&db), T0).unwrap();
    for i in 1..=7 {
        push(&h, sample(1, i));
        push(
            &h,
            Record::Apps {
                at_unix_ms: T0 + i * 1000,
                interval_ms: 1000,
                apps: vec![weir_history::AppSample {
                    tree: "up".into(),
                    app: "voice".into(),
                    class: Some("1:10".into()),
                    flows: 1,
                    bytes: RATES[i as usize - 1] / 8,
                    packets: 10,
                    drops: (i == 3) as u64,
                    rate_bps: RATES[i as usize - 1],
                }],
            },
        );
    }
    flush(&h);
    h.close();
    let (code, text, err) = history(&db, &["--since", SINCE, "--until", UNTIL]);
    assert_eq!(code, 0, "{err}");
    assert!(text.contains("class up 1:10 (c0)"), "{text}");
    assert!(
        text.contains("app up voice (class 1:10): 7 sample(s)"),
        "{text}"
    );
    assert!(
        text.contains(" Sent 11562500 bytes 70 pkt (dropped 1) flows 7"),
        "{text}"
    );
    let v = json(&db, &["--since", SINCE, "--until", UNTIL, "--app", "voice"]);
    assert_eq!(v["classes"], serde_json::json!([]), "{v}");
    let a = &v["apps"][0];
    assert_eq!(
        (a["tree"].as_str(), a["app"].as_str()),
        (Some("up"), Some("voice"))
    );
    assert!(close(&a["rate_bps"]["avg"], PY_RATE[0]), "{a}");
    assert!(close(&a["rate_bps"]["median"], PY_RATE[2]), "{a}");
    assert_eq!(a["flows"], 7);
    let (code, text, _) = history(&db, &["--since", SINCE, "--until", UNTIL, "--app", "video"]);
    assert_eq!(code, 0);
    assert!(
        text.contains("no samples for app video in this range"),
        "{text}"
    );
    let (code, _, err) = history(&db, &["--app", "voice", "--class", "1:10"]);
    assert_eq!(code, 2, "--app and --class do not go together: {err}");
}
