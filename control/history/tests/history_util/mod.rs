//! Helpers of the history tests: scratch directories, generated samples.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use weir_history::{ClassSample, History, HistoryCfg, IfaceSample, Record};

/// A minute boundary (2023-11-14T22:14:00Z) the tests start from.
pub const T0: i64 = 1_700_000_040_000;
pub const MINUTE: i64 = 60_000;

/// A directory removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "weir-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn cfg(path: &Path) -> HistoryCfg {
    HistoryCfg {
        path: Some(path.to_path_buf()),
        ..HistoryCfg::default()
    }
}

/// A deterministic, uneven series: what class `k` measured at second `i`.
pub fn rate_at(k: usize, i: i64) -> u64 {
    let x = (i as u64)
        .wrapping_mul(2_654_435_761)
        .wrapping_add(k as u64 * 97)
        % 1000;
    // 10..30 Mbit/s, with a burst every 37 s.
    let burst = if i % 37 == 0 { 50_000_000 } else { 0 };
    10_000_000 + x * 20_000 + burst
}

pub fn class_sample(k: usize, i: i64) -> ClassSample {
    let rate_bps = rate_at(k, i);
    let ceil = 10_000_000; // bytes/s = 80 Mbit/s
    ClassSample {
        tree: "up".into(),
        class: format!("1:{}", 10 + k),
        name: Some(format!("c{k}")),
        bytes: rate_bps / 8,
        packets: rate_bps / 8 / 1000,
        drops: (i % 5 == 0) as u64,
        overlimits: (i % 3) as u64,
        backlog_bytes: (i % 7) as u64 * 1500,
        backlog_packets: (i % 7) as u32,
        rate_bps,
        rate: 2_500_000,
        ceil,
        utilization: rate_bps as f64 * 100.0 / (ceil as f64 * 8.0),
    }
}

pub fn iface_sample(i: i64, with_link: bool) -> IfaceSample {
    IfaceSample {
        name: "weir-out".into(),
        rx_bytes: 1000 + i as u64,
        tx_bytes: 2000 + i as u64,
        rx_packets: 10,
        tx_packets: 20,
        rx_errors: 0,
        tx_errors: (i % 11 == 0) as u64,
        rx_drops: 0,
        tx_drops: 1,
        rate_in_bps: 8 * (1000 + i as u64),
        rate_out_bps: 8 * (2000 + i as u64),
        utilization: with_link.then_some((i % 100) as f64),
    }
}

/// The sample of second `i` (at T0 + i s) of `classes` classes and one
/// interface.
pub fn sample(classes: usize, i: i64) -> Record {
    Record::Sample {
        at_unix_ms: T0 + i * 1000,
        interval_ms: 1000,
        classes: (0..classes).map(|k| class_sample(k, i)).collect(),
        interfaces: vec![iface_sample(i, true)],
    }
}

/// Queue a record, waiting while the queue is full (tests that pace
/// themselves; it counts each refusal as dropped).
pub fn push(h: &History, rec: Record) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !h.record(rec.clone()) {
        assert!(Instant::now() < deadline, "the history writer is stuck");
        std::thread::sleep(Duration::from_millis(1));
    }
}

pub fn flush(h: &History) {
    assert!(h.flush(Duration::from_secs(60)), "flush timed out");
}

pub fn close_enough(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1e-9)
}
