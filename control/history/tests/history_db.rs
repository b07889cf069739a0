//! The history database: schema, a sample's round trip, violations
//! (opened, resolved, closed on reload/stop, "weir restarted" after a
//! crash), adjustments, and the typed errors of a path that can't be
//! opened.

mod history_util;

use history_util::*;
use rusqlite::Connection;
use weir_history::{
    History, HistoryError, Query, Reader, Record, Select, APPLICATION_ID, SCHEMA_VERSION,
};

fn all(select: Select) -> Query {
    Query {
        from_unix_ms: T0 - 3_600_000,
        until_unix_ms: T0 + 3_600_000,
        select,
        ..Query::default()
    }
}

const STATS: Select = Select {
    stats: true,
    violations: false,
    adjustments: false,
};

#[test]
fn creates_the_schema_and_round_trips_a_sample() {
    let dir = Scratch::new("hist-roundtrip");
    // Parent directories are created.
    let path = dir.path("a/b/history.db");
    let h = History::open(&cfg(&path), T0).unwrap();
    assert!(h.record(sample(3, 1)));
    assert!(h.record(sample(3, 2)));
    flush(&h);
    let st = h.stats();
    assert_eq!((st.written, st.dropped, st.write_errors), (2, 0, 0));
    assert_eq!(st.last_error, None);
    assert!(st.db_bytes > 0);
    h.close();

    let conn = Connection::open(&path).unwrap();
    let get = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(get("PRAGMA user_version"), i64::from(SCHEMA_VERSION));
    assert_eq!(get("PRAGMA application_id"), i64::from(APPLICATION_ID));
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(get("SELECT count(*) FROM target WHERE kind = 'class'"), 3);
    assert_eq!(
        get("SELECT count(*) FROM target WHERE kind = 'interface'"),
        1
    );
    assert_eq!(get("SELECT count(*) FROM class_sec"), 6);
    assert_eq!(get("SELECT count(*) FROM iface_sec"), 2);
    let c = class_sample(1, 2);
    let row: (i64, i64, i64, i64, i64, f64, String) = conn
        .query_row(
            "SELECT s.interval_ms, s.bytes, s.drops, s.rate_bps, s.ceil, s.utilization, t.label \
             FROM class_sec s JOIN target t ON t.id = s.target \
             WHERE t.name = '1:11' AND s.t = ?1",
            [T0 + 2000],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            },
        )
        .unwrap();
    assert_eq!(
        row,
        (
            1000,
            c.bytes as i64,
            c.drops as i64,
            c.rate_bps as i64,
            c.ceil as i64,
            c.utilization,
            "c1".to_string()
        )
    );
    drop(conn);

    // Reopening keeps what is there; the reader sees it.
    let h = History::open(&cfg(&path), T0 + 3000).unwrap();
    assert!(h.record(sample(3, 3)));
    h.close();
    let r = Reader::open(&path).unwrap().query(&all(STATS)).unwrap();
    assert_eq!(r.classes.len(), 3);
    assert_eq!(r.classes[1].class, "1:11");
    assert_eq!(r.classes[1].name.as_deref(), Some("c1"));
    assert_eq!(r.classes[1].coverage.samples, 3);
    assert_eq!(
        r.classes[1].bytes,
        (1..=3).map(|i| class_sample(1, i).bytes).sum::<u64>()
    );
    assert_eq!(r.interfaces.len(), 1);
    assert_eq!(r.interfaces[0].tx_drops, 3);
}

#[test]
fn violations_open_resolve_and_close() {
    let dir = Scratch::new("hist-violations");
    let path = dir.path("history.db");
    let h = History::open(&cfg(&path), T0).unwrap();
    let open = |rule: &str, at: i64, value: f64| Record::Violation {
        at_unix_ms: at,
        rule: rule.into(),
        target: "interface weir-out".into(),
        severity: "warning".into(),
        metric: "utilization".into(),
        unit: "%".into(),
        value,
        threshold: 80.0,
    };
    assert!(h.record(open("hot", T0 + 1000, 85.0)));
    assert!(h.record(open("drops", T0 + 2000, 120.0)));
    assert!(h.record(Record::Resolved {
        at_unix_ms: T0 + 31_000,
        rule: "hot".into(),
        value: 60.0,
    }));
    // A resolve with nothing open is not an error.
    assert!(h.record(Record::Resolved {
        at_unix_ms: T0 + 32_000,
        rule: "hot".into(),
        value: 50.0,
    }));
    assert!(h.record(open("hot", T0 + 40_000, 90.0)));
    assert!(h.record(Record::ResolveAll {
        at_unix_ms: T0 + 50_000,
        why: "configuration reloaded".into(),
    }));
    assert!(h.record(open("drops", T0 + 60_000, 300.0)));
    assert!(h.record(Record::Adjustment {
        at_unix_ms: T0 + 61_000,
        tree: "up".into(),
        class: "1:20".into(),
        name: Some("web".into()),
        old_rate: 3_750_000,
        old_ceil: 7_500_000,
        new_rate: 1_875_000,
        new_ceil: 3_750_000,
        reason: "SLA hot: throttle × 0.5".into(),
    }));
    flush(&h);
    assert_eq!(h.stats().written, 8);
    assert_eq!(h.stats().write_errors, 0);
    // A crash: the writer goes away without closing anything.
    drop(h);

    let h = History::open(&cfg(&path), T0 + 100_000).unwrap();
    h.close();
    let q = all(Select {
        stats: false,
        violations: true,
        adjustments: true,
    });
    let r = Reader::open(&path).unwrap().query(&q).unwrap();
    let v: Vec<_> = r
        .violations
        .iter()
        .map(|v| {
            (
                v.rule.as_str(),
                v.value,
                v.opened_unix_ms - T0,
                v.resolved_unix_ms.map(|t| t - T0),
                v.resolved_value,
                v.resolution.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        v,
        [
            ("hot", 85.0, 1000, Some(31_000), Some(60.0), Some("cleared")),
            (
                "drops",
                120.0,
                2000,
                Some(50_000),
                None,
                Some("configuration reloaded")
            ),
            (
                "hot",
                90.0,
                40_000,
                Some(50_000),
                None,
                Some("configuration reloaded")
            ),
            (
                "drops",
                300.0,
                60_000,
                Some(100_000),
                None,
                Some("weir restarted")
            ),
        ]
    );
    assert_eq!(r.violations[0].target, "interface weir-out");
    assert_eq!(r.violations[0].threshold, 80.0);
    assert_eq!(r.adjustments.len(), 1);
    let a = &r.adjustments[0];
    assert_eq!(
        (
            a.at_unix_ms - T0,
            a.class.as_str(),
            a.name.as_deref(),
            a.old_rate,
            a.new_ceil
        ),
        (61_000, "1:20", Some("web"), 3_750_000, 3_750_000)
    );
    assert_eq!(a.reason, "SLA hot: throttle × 0.5");

    // Only what overlaps the range: [T0 + 55 s, T0 + 70 s].
    let q = Query {
        from_unix_ms: T0 + 55_000,
        until_unix_ms: T0 + 70_000,
        ..q
    };
    let r = Reader::open(&path).unwrap().query(&q).unwrap();
    assert_eq!(r.violations.len(), 1);
    assert_eq!(r.adjustments.len(), 1);
}

#[test]
fn paths_that_cannot_be_opened_are_typed_errors() {
    let dir = Scratch::new("hist-open");
    // A directory.
    let e = History::open(&cfg(&dir.0), T0).err().unwrap();
    assert!(matches!(e, HistoryError::IsDirectory { .. }), "{e}");
    assert!(e.to_string().contains(&dir.0.display().to_string()));
    // Garbage.
    let garbage = dir.path("garbage.db");
    std::fs::write(&garbage, vec![0x5a; 8192]).unwrap();
    let e = History::open(&cfg(&garbage), T0).err().unwrap();
    assert!(matches!(e, HistoryError::Open { .. }), "{e}");
    assert!(
        e.to_string().contains("not an SQLite database") && e.to_string().contains("move it away"),
        "{e}"
    );
    // Another program's SQLite file.
    let other = dir.path("other.db");
    Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE notes (x TEXT)")
        .unwrap();
    let e = History::open(&cfg(&other), T0).err().unwrap();
    assert!(matches!(e, HistoryError::NotWeir { .. }), "{e}");
    // A newer weir's database.
    let newer = dir.path("newer.db");
    History::open(&cfg(&newer), T0).unwrap().close();
    Connection::open(&newer)
        .unwrap()
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    let e = History::open(&cfg(&newer), T0).err().unwrap();
    assert!(matches!(e, HistoryError::NewerSchema { .. }), "{e}");
    assert!(Reader::open(&newer).is_err());
    // A parent that is a file.
    let file = dir.path("file");
    std::fs::write(&file, "x").unwrap();
    let e = History::open(&cfg(&file.join("history.db")), T0)
        .err()
        .unwrap();
    assert!(matches!(e, HistoryError::CreateDir { .. }), "{e}");
    // No path: history is off.
    let off = weir_history::HistoryCfg {
        path: None,
        ..cfg(&file)
    };
    assert!(matches!(History::open(&off, T0), Err(HistoryError::Off)));
    // The reader: missing file, garbage.
    let e = Reader::open(&dir.path("missing.db")).err().unwrap();
    assert!(matches!(e, HistoryError::Missing { .. }), "{e}");
    assert!(Reader::open(&garbage).is_err());
    assert!(matches!(
        Reader::open(&other),
        Err(HistoryError::NotWeir { .. })
    ));
}

#[test]
fn the_reader_reads_while_the_writer_writes() {
    let dir = Scratch::new("hist-concurrent");
    let path = dir.path("history.db");
    let h = History::open(&cfg(&path), T0).unwrap();
    assert!(h.record(sample(1, 1)));
    flush(&h);
    let reader = Reader::open(&path).unwrap();
    let r = reader.query(&all(STATS)).unwrap();
    assert_eq!(r.classes[0].coverage.samples, 1);
    assert!(h.record(sample(1, 2)));
    flush(&h);
    let r = reader.query(&all(STATS)).unwrap();
    assert_eq!(r.classes[0].coverage.samples, 2);
    h.close();
    // And after the writer is gone (its WAL checkpointed).
    let r = Reader::open(&path).unwrap().query(&all(STATS)).unwrap();
    assert_eq!(r.classes[0].coverage.samples, 2);
}

#[test]
fn a_renamed_class_keeps_its_rows_under_its_new_name() {
    let dir = Scratch::new("hist-rename");
    let path = dir.path("history.db");
    let h = History::open(&cfg(&path), T0).unwrap();
    assert!(h.record(sample(1, 1)));
    let mut renamed = sample(1, 2);
    if let Record::Sample { classes, .. } = &mut renamed {
        classes[0].name = Some("bulk".into());
    }
    assert!(h.record(renamed));
    h.close();
    let r = Reader::open(&path).unwrap().query(&all(STATS)).unwrap();
    assert_eq!(r.classes.len(), 1);
    assert_eq!(r.classes[0].name.as_deref(), Some("bulk"));
    assert_eq!(r.classes[0].coverage.samples, 2);
    let q = Query {
        class: Some("bulk".into()),
        ..all(STATS)
    };
    assert_eq!(
        Reader::open(&path)
            .unwrap()
            .query(&q)
            .unwrap()
            .classes
            .len(),
        1
    );
}
