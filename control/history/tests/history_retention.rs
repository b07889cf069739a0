//! Retention with injected times: 1-second rows older than keep_seconds
//! are folded into minute rows, statistics over a range that spans both
//! equal the direct computation, late samples merge into their minute,
//! and everything older than keep_minutes goes.

mod history_util;

use std::time::Duration;

use history_util::*;
use rusqlite::Connection;
use weir_history::stats::summarize;
use weir_history::{History, HistoryCfg, Query, Reader, Record, Select};

const STATS: Select = Select {
    stats: true,
    violations: false,
    adjustments: false,
};

fn count(path: &std::path::Path, sql: &str) -> i64 {
    Connection::open(path)
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

fn short_cfg(path: &std::path::Path) -> HistoryCfg {
    HistoryCfg {
        keep_seconds: Duration::from_secs(120),
        keep_minutes: Duration::from_secs(3600),
        ..cfg(path)
    }
}

#[test]
fn folded_rows_give_the_same_statistics_as_raw_ones() {
    let dir = Scratch::new("hist-fold");
    let path = dir.path("history.db");
    const CLASSES: usize = 2;
    const SECONDS: i64 = 600;
    let h = History::open(&short_cfg(&path), T0).unwrap();
    for i in 1..=SECONDS {
        push(&h, sample(CLASSES, i));
    }
    flush(&h);
    assert_eq!(h.stats().write_errors, 0);
    h.close();

    // Now (recorded) is T0 + 600 s; 1-second rows before the minute of
    // T0 + 480 s are folded: seconds 1..=479 in 8 minute rows.
    let per_class = |sql: &str| count(&path, sql) / CLASSES as i64;
    assert_eq!(per_class("SELECT count(*) FROM class_min"), 8);
    assert_eq!(per_class("SELECT count(*) FROM class_sec"), 121);
    assert_eq!(count(&path, "SELECT count(*) FROM iface_min"), 8);
    assert_eq!(count(&path, "SELECT min(t) FROM class_sec"), T0 + 480_000);
    assert_eq!(count(&path, "SELECT sum(n) FROM class_min") / 2, 479);

    let q = Query {
        from_unix_ms: T0,
        until_unix_ms: T0 + SECONDS * 1000,
        select: STATS,
        ..Query::default()
    };
    let r = Reader::open(&path).unwrap().query(&q).unwrap();
    assert_eq!(r.classes.len(), CLASSES);
    for (k, c) in r.classes.iter().enumerate() {
        let raw: Vec<f64> = (1..=SECONDS).map(|i| rate_at(k, i) as f64).collect();
        let direct = summarize(&raw, &[]).unwrap();
        let got = c.rate_bps.unwrap();
        assert_eq!(c.coverage.samples, SECONDS as u64);
        assert_eq!(
            (
                c.coverage.second_rows,
                c.coverage.minute_rows,
                c.coverage.minute_samples
            ),
            (121, 8, 479)
        );
        assert_eq!(got.count, direct.count);
        assert!(got.approximate);
        assert!(
            close_enough(got.avg, direct.avg, 1e-12),
            "{got:?} {direct:?}"
        );
        assert_eq!((got.min, got.max), (direct.min, direct.max));
        assert!(
            close_enough(got.stddev.unwrap(), direct.stddev.unwrap(), 1e-9),
            "{got:?} {direct:?}"
        );
        // Median and p95 from knots: near, not exact (within 3 % of the
        // range of the data).
        let span = direct.max - direct.min;
        assert!(
            (got.median - direct.median).abs() < 0.03 * span,
            "{got:?} {direct:?}"
        );
        assert!(
            (got.p95 - direct.p95).abs() < 0.03 * span,
            "{got:?} {direct:?}"
        );
        // Counters: exact sums.
        let bytes: u64 = (1..=SECONDS).map(|i| class_sample(k, i).bytes).sum();
        let drops: u64 = (1..=SECONDS).map(|i| class_sample(k, i).drops).sum();
        let over: u64 = (1..=SECONDS).map(|i| class_sample(k, i).overlimits).sum();
        assert_eq!((c.bytes, c.drops, c.overlimits), (bytes, drops, over));
        assert_eq!(c.backlog_packets_max, 6);
        assert_eq!((c.rate, c.ceil), (2_500_000, 10_000_000));
        // Utilization is the same series scaled.
        let u = c.utilization.unwrap();
        assert!(close_enough(u.avg, direct.avg * 100.0 / 80e6, 1e-12));
    }
    let i = &r.interfaces[0];
    assert_eq!(i.coverage.samples, SECONDS as u64);
    assert_eq!(
        i.tx_bytes,
        (1..=SECONDS).map(|s| 2000 + s as u64).sum::<u64>()
    );
    let out: Vec<f64> = (1..=SECONDS).map(|s| 8.0 * (2000 + s) as f64).collect();
    let direct = summarize(&out, &[]).unwrap();
    let got = i.rate_out_bps.unwrap();
    assert!(close_enough(got.avg, direct.avg, 1e-12));
    assert!(close_enough(
        got.stddev.unwrap(),
        direct.stddev.unwrap(),
        1e-9
    ));

    // Only the 1-second part: exact, not approximate.
    let q2 = Query {
        from_unix_ms: T0 + 480_000,
        ..q.clone()
    };
    let r = Reader::open(&path).unwrap().query(&q2).unwrap();
    let raw: Vec<f64> = (480..=SECONDS).map(|i| rate_at(0, i) as f64).collect();
    let direct = summarize(&raw, &[]).unwrap();
    let got = r.classes[0].rate_bps.unwrap();
    assert!(!got.approximate);
    assert_eq!(got.median, direct.median);
    assert_eq!(got.p95, direct.p95);

    // Filters: one class by name, one by id, the interface alone.
    let only = |class: Option<&str>, iface: Option<&str>| {
        let q = Query {
            class: class.map(String::from),
            interface: iface.map(String::from),
            ..q.clone()
        };
        let r = Reader::open(&path).unwrap().query(&q).unwrap();
        (r.classes.len(), r.interfaces.len())
    };
    assert_eq!(only(Some("c1"), None), (1, 0));
    assert_eq!(only(Some("1:10"), None), (1, 0));
    assert_eq!(only(None, Some("weir-out")), (0, 1));
    assert_eq!(only(Some("nope"), None), (0, 0));
}

#[test]
fn late_samples_merge_into_their_minute() {
    let dir = Scratch::new("hist-late");
    let path = dir.path("history.db");
    let h = History::open(&short_cfg(&path), T0).unwrap();
    for i in 0..300 {
        push(&h, sample(1, i));
    }
    flush(&h);
    // Minute 0 (seconds 0..59) is folded. A sample for second 30.5
    // arrives late (the clock stepped back).
    assert_eq!(
        count(&path, "SELECT n FROM class_min WHERE t = 1700000040000"),
        60
    );
    let late = Record::Sample {
        at_unix_ms: T0 + 30_500,
        interval_ms: 500,
        classes: vec![class_sample(0, 1000)],
        interfaces: vec![],
    };
    push(&h, late);
    // And time goes on, so the next pass runs.
    push(&h, sample(1, 400));
    flush(&h);
    h.close();
    assert_eq!(
        count(&path, "SELECT n FROM class_min WHERE t = 1700000040000"),
        61
    );
    assert_eq!(
        count(
            &path,
            "SELECT interval_ms FROM class_min WHERE t = 1700000040000"
        ),
        60_500
    );
    let q = Query {
        from_unix_ms: T0,
        until_unix_ms: T0 + 60_000 - 1,
        select: STATS,
        ..Query::default()
    };
    let r = Reader::open(&path).unwrap().query(&q).unwrap();
    let mut raw: Vec<f64> = (0..60).map(|i| rate_at(0, i) as f64).collect();
    raw.push(rate_at(0, 1000) as f64);
    let direct = summarize(&raw, &[]).unwrap();
    let got = r.classes[0].rate_bps.unwrap();
    assert_eq!(got.count, 61);
    assert!(close_enough(got.avg, direct.avg, 1e-12));
    assert!(close_enough(
        got.stddev.unwrap(),
        direct.stddev.unwrap(),
        1e-9
    ));
}

#[test]
fn rows_older_than_keep_minutes_go() {
    let dir = Scratch::new("hist-expire");
    let path = dir.path("history.db");
    let h = History::open(&short_cfg(&path), T0).unwrap();
    for i in 0..300 {
        push(&h, sample(1, i));
    }
    push(
        &h,
        Record::Violation {
            at_unix_ms: T0,
            rule: "old".into(),
            target: "interface weir-out".into(),
            severity: "info".into(),
            metric: "drops".into(),
            unit: "/s".into(),
            value: 5.0,
            threshold: 1.0,
        },
    );
    push(
        &h,
        Record::Violation {
            at_unix_ms: T0 + 1000,
            rule: "still-open".into(),
            target: "interface weir-out".into(),
            severity: "info".into(),
            metric: "drops".into(),
            unit: "/s".into(),
            value: 5.0,
            threshold: 1.0,
        },
    );
    push(
        &h,
        Record::Resolved {
            at_unix_ms: T0 + 2000,
            rule: "old".into(),
            value: 0.0,
        },
    );
    push(
        &h,
        Record::Adjustment {
            at_unix_ms: T0 + 3000,
            tree: "up".into(),
            class: "1:10".into(),
            name: None,
            old_rate: 1,
            old_ceil: 2,
            new_rate: 3,
            new_ceil: 4,
            reason: "test".into(),
        },
    );
    flush(&h);
    assert!(count(&path, "SELECT count(*) FROM class_min") > 0);
    // Two hours later: everything from back then is past keep_minutes
    // (1 h), except the violation that is still open.
    push(&h, sample(1, 7200));
    flush(&h);
    h.close();
    assert_eq!(count(&path, "SELECT count(*) FROM class_min"), 0);
    assert_eq!(count(&path, "SELECT count(*) FROM iface_min"), 0);
    assert_eq!(count(&path, "SELECT count(*) FROM class_sec"), 1);
    assert_eq!(count(&path, "SELECT count(*) FROM adjustment"), 0);
    assert_eq!(count(&path, "SELECT count(*) FROM violation"), 1);
    assert_eq!(
        count(
            &path,
            "SELECT count(*) FROM violation WHERE rule = 'still-open'"
        ),
        1
    );
}

#[test]
fn a_long_gap_folds_in_bounded_steps() {
    // Three hours of samples of a weir that was then stopped; the next
    // start (three hours on) folds the first two, an hour per step.
    let dir = Scratch::new("hist-gap");
    let path = dir.path("history.db");
    let cfg = HistoryCfg {
        keep_seconds: Duration::from_secs(4 * 3600),
        keep_minutes: Duration::from_secs(24 * 3600),
        ..cfg(&path)
    };
    let h = History::open(&cfg, T0).unwrap();
    for i in 0..3 * 3600 {
        push(
            &h,
            Record::Sample {
                at_unix_ms: T0 + i * 1000,
                interval_ms: 1000,
                classes: vec![class_sample(0, i)],
                interfaces: vec![],
            },
        );
    }
    h.close();
    assert_eq!(count(&path, "SELECT count(*) FROM class_min"), 0);
    let now = T0 + 6 * 3600 * 1000;
    let h = History::open(&cfg, now).unwrap();
    flush(&h);
    h.close();
    // Before now - 4 h = T0 + 2 h: 120 minutes folded.
    assert_eq!(count(&path, "SELECT count(*) FROM class_min"), 120);
    assert_eq!(count(&path, "SELECT count(*) FROM class_sec"), 3600);
    let q = Query {
        from_unix_ms: T0,
        until_unix_ms: now,
        select: STATS,
        ..Query::default()
    };
    let r = Reader::open(&path).unwrap().query(&q).unwrap();
    let raw: Vec<f64> = (0..3 * 3600).map(|i| rate_at(0, i) as f64).collect();
    let direct = summarize(&raw, &[]).unwrap();
    let got = r.classes[0].rate_bps.unwrap();
    assert_eq!(got.count, 3 * 3600);
    assert!(close_enough(got.avg, direct.avg, 1e-12));
    assert!(close_enough(
        got.stddev.unwrap(),
        direct.stddev.unwrap(),
        1e-9
    ));
}
