//! Per-app rows: stored per (tree, app) beside the class rows, folded and
//! read like them, filtered by tree and app, and absent from a history
//! without apps.

mod history_util;

use std::time::Duration;

use history_util::*;
use rusqlite::Connection;
use weir_history::{AppSample, History, HistoryCfg, Query, Reader, Record, Select};

const STATS: Select = Select {
    stats: true,
    violations: false,
    adjustments: false,
};

/// App `k` of tree `tree` at second `i`: an uneven rate, a few flows.
fn app_sample(tree: &str, k: u64, i: i64) -> AppSample {
    let bytes = 100_000 * (k + 1) + (i as u64 % 13) * 1000;
    AppSample {
        tree: tree.into(),
        app: ["voice", "video"][k as usize].into(),
        class: Some(format!("1:{}", 10 * (k + 1))),
        flows: (i % 4 == 0) as u64,
        bytes,
        packets: bytes / 500,
        drops: (i % 9 == 0) as u64 * k,
        rate_bps: bytes * 8,
    }
}

fn apps_record(i: i64) -> Record {
    Record::Apps {
        at_unix_ms: T0 + i * 1000,
        interval_ms: 1000,
        apps: vec![
            app_sample("up", 0, i),
            app_sample("up", 1, i),
            app_sample("down", 0, i),
        ],
    }
}

fn query(app: Option<&str>, tree: Option<&str>) -> Query {
    Query {
        from_unix_ms: T0 - 3_600_000,
        until_unix_ms: T0 + 3_600_000,
        tree: tree.map(String::from),
        app: app.map(String::from),
        select: STATS,
        ..Query::default()
    }
}

/// 300 seconds of app samples with 1-second rows kept 120 s: most are
/// folded into minute rows, and the totals and mean rate over the whole
/// range are still exact.
#[test]
fn app_rows_are_stored_folded_and_read_back() {
    let dir = Scratch::new("hist-apps");
    let path = dir.path("history.db");
    let cfg = HistoryCfg {
        keep_seconds: Duration::from_secs(120),
        keep_minutes: Duration::from_secs(3600),
        ..cfg(&path)
    };
    let h = History::open(&cfg, T0).unwrap();
    for i in 0..300 {
        push(&h, sample(1, i));
        push(&h, apps_record(i));
    }
    flush(&h);
    assert_eq!(h.stats().write_errors, 0, "{:?}", h.stats().last_error);
    h.close();

    let conn = Connection::open(&path).unwrap();
    let get = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(get("SELECT count(*) FROM target WHERE kind = 'app'"), 3);
    assert!(get("SELECT count(*) FROM app_min") > 0, "folded");
    assert!(get("SELECT count(*) FROM app_sec") < 900, "folded");
    drop(conn);

    let r = Reader::open(&path).unwrap();
    let all = r.query(&query(None, None)).unwrap();
    assert_eq!(all.apps.len(), 3);
    assert_eq!(all.classes.len(), 1, "classes are still there");
    assert_eq!(all.interfaces.len(), 1);
    let want = |tree: &str, k: u64| {
        let s: Vec<AppSample> = (0..300).map(|i| app_sample(tree, k, i)).collect();
        let sum = |f: fn(&AppSample) -> u64| s.iter().map(f).sum::<u64>();
        let mean = s.iter().map(|a| a.rate_bps as f64).sum::<f64>() / s.len() as f64;
        (
            sum(|a| a.bytes),
            sum(|a| a.packets),
            sum(|a| a.flows),
            sum(|a| a.drops),
            mean,
        )
    };
    for a in &all.apps {
        let k = u64::from(a.app == "video");
        let (bytes, packets, flows, drops, mean) = want(&a.tree, k);
        assert_eq!(
            (a.bytes, a.packets, a.flows, a.drops),
            (bytes, packets, flows, drops),
            "{a:?}"
        );
        assert_eq!(a.coverage.samples, 300);
        assert!(a.coverage.minute_rows > 0);
        let rate = a.rate_bps.as_ref().expect("a rate");
        assert!(close_enough(rate.avg, mean, 1e-9), "{rate:?} vs {mean}");
        assert_eq!(a.class.as_deref(), Some(["1:10", "1:20"][k as usize]));
    }

    let voice = r.query(&query(Some("voice"), None)).unwrap();
    assert_eq!(voice.apps.len(), 2, "voice of both trees");
    assert!(voice.classes.is_empty() && voice.interfaces.is_empty());
    let up_voice = r.query(&query(Some("voice"), Some("up"))).unwrap();
    assert_eq!(up_voice.apps.len(), 1);
    assert_eq!(up_voice.apps[0].tree, "up");
    let none = r.query(&query(Some("games"), None)).unwrap();
    assert!(none.apps.is_empty());
    let class_only = r
        .query(&Query {
            class: Some("1:10".into()),
            ..query(None, None)
        })
        .unwrap();
    assert!(class_only.apps.is_empty(), "--class asks for classes only");
}

/// A history written without apps reads no apps.
#[test]
fn a_history_without_apps_has_no_app_rows() {
    let dir = Scratch::new("hist-noapps");
    let path = dir.path("history.db");
    let h = History::open(&cfg(&path), T0).unwrap();
    push(&h, sample(2, 1));
    flush(&h);
    h.close();
    let r = Reader::open(&path)
        .unwrap()
        .query(&query(None, None))
        .unwrap();
    assert!(r.apps.is_empty());
    assert_eq!(r.classes.len(), 2);
}
