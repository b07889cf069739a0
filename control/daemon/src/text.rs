//! The text form of `weir run`'s output: placement lines, per-class
//! counters laid out as `tc -s class show` lays them out (one block per
//! class, under a line per tree), and the final report.

use std::fmt::Write as _;

use weir_dataplane::packet::DropReason;
use weir_xdp::run::{ShutdownReport, Snapshot, WorkerPlacement};

use weir_api::ShowWhat;

use super::json::rate_est;
use weir_config::units::fmt_rate_est as human_rate;
use weir_config::Config;

/// "worker 0 core 1: pair lab queue 0, trees up, down".
pub(super) fn placement(p: &WorkerPlacement) -> String {
    let core = p
        .core
        .map_or_else(|| "unpinned".to_string(), |c| format!("core {c}"));
    let trees = if p.trees.is_empty() {
        "no trees (receives and hands over)".to_string()
    } else {
        format!("trees {}", p.trees.join(", "))
    };
    format!(
        "worker {} {core}: pair {} queue {}, {trees}",
        p.index, p.pair, p.queue
    )
}

/// One stats dump.
pub(super) fn snapshot(config: &Config, snap: &Snapshot, prev: Option<&Snapshot>) -> String {
    let mut s = String::new();
    for (ti, t) in snap.trees.iter().enumerate() {
        let f = &t.frames;
        let _ = writeln!(
            s,
            "tree {} (pair {}, {}, worker {}): received {} sent {} dropped {} queued {}",
            t.name,
            t.pair,
            if t.upload { "upload" } else { "download" },
            t.worker,
            f.received,
            f.sent,
            f.dropped_total(),
            f.queued
        );
        let tree = config.tree(&t.name);
        for (i, st) in t.classes.iter().enumerate() {
            let Some(c) = tree.and_then(|tr| tr.classes.get(i)) else {
                continue;
            };
            let parent = c
                .parent
                .and_then(|p| tree.and_then(|tr| tr.classes.get(p as usize)))
                .map_or_else(|| "root".to_string(), |p| format!("parent {}", p.id));
            let name = c
                .name
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "class htb {}{name} {parent} prio {} rate {} ceil {} burst {} cburst {}",
                c.id, c.prio, c.rate, c.ceil, c.burst, c.cburst
            );
            let _ = writeln!(
                s,
                " Sent {} bytes {} pkt (dropped {}, overlimits {} requeues 0)",
                st.bytes, st.packets, st.drops, st.overlimits
            );
            let (bits, pps) = rate_est(snap, prev, ti, i).unwrap_or((0, 0));
            let _ = writeln!(
                s,
                " rate {} {pps}pps backlog {}b {}p requeues 0",
                human_rate(bits),
                st.backlog.bytes,
                st.backlog.packets
            );
            let _ = writeln!(
                s,
                " lended: {} borrowed: {} giants: {}",
                st.lends, st.borrows, st.giants
            );
            let _ = writeln!(s, " tokens: {} ctokens: {}", st.tokens, st.ctokens);
            if let Some(Some(q)) = t.qdiscs.get(i) {
                let kind = c.qdisc.as_ref().map_or("?", |q| q.kind());
                let _ = writeln!(
                    s,
                    " qdisc {kind}: Sent {} bytes {} pkt (dropped {}, overlimits {}) backlog {}b {}p",
                    q.bytes, q.packets, q.drops, q.overlimits, q.backlog.bytes, q.backlog.packets
                );
            }
            s.push('\n');
        }
    }
    for w in &snap.workers {
        let _ = writeln!(s, "{}", super::json::worker_line(w));
    }
    for i in &snap.interfaces {
        let _ = writeln!(s, "{}", super::json::interface_line(i));
    }
    s
}

/// The final report.
pub(super) fn report(config: &Config, report: &ShutdownReport) -> String {
    let mut s = String::from("weir stopped\n");
    for (tree, n) in &report.queued_at_stop {
        let _ = writeln!(
            s,
            "tree {tree}: {n} packet(s) still queued at stop (flushed)"
        );
    }
    s.push_str(&snapshot(config, &report.last, None));
    let mut dropped = [0u64; DropReason::ALL.len()];
    let (mut rx, mut tx, mut q) = (0, 0, 0);
    for t in &report.last.trees {
        rx += t.frames.received;
        tx += t.frames.sent;
        q += t.frames.queued;
        for (d, n) in dropped.iter_mut().zip(t.frames.dropped) {
            *d += n;
        }
    }
    let by_reason: Vec<String> = DropReason::ALL
        .iter()
        .filter(|r| dropped[r.index()] > 0)
        .map(|r| format!("{} {}", r.name(), dropped[r.index()]))
        .collect();
    let _ = writeln!(
        s,
        "accounting: received {rx} = sent {tx} + dropped {} ({}) + queued {q}: {}; {}",
        dropped.iter().sum::<u64>(),
        if by_reason.is_empty() {
            "none".to_string()
        } else {
            by_reason.join(", ")
        },
        if report.balanced {
            "balanced"
        } else {
            "NOT BALANCED"
        },
        umem_text(report)
    );
    s
}

/// "UMEM frames: all 8192 free or in a fill ring", or how many are not
/// and where they are.
fn umem_text(report: &ShutdownReport) -> String {
    let ws = &report.last.workers;
    let sum =
        |f: fn(&weir_xdp::run::FramePlaces) -> u64| ws.iter().map(|w| f(&w.frames)).sum::<u64>();
    let total = sum(|f| f.total);
    if report.umem_free_or_fill {
        return format!("UMEM frames: all {total} free or in a fill ring");
    }
    format!(
        "UMEM frames: {} of {total} NOT BACK (free {} + fill {}; tx {}, lent {}, queued {}, handover {})",
        super::json::umem_away(&report.last),
        sum(|f| f.free),
        sum(|f| f.fill),
        sum(|f| f.tx),
        sum(|f| f.lent),
        sum(|f| f.queued),
        sum(|f| f.handover)
    )
}

/// `weir show` as text: tc's layout (see `tcshow.rs`).
pub(super) fn show(
    config: &Config,
    snap: &Snapshot,
    prev: Option<&Snapshot>,
    what: ShowWhat,
    stats: bool,
) -> String {
    match what {
        ShowWhat::Class => super::tcshow::class_text(config, snap, prev, stats),
        ShowWhat::Qdisc => super::tcshow::qdisc_text(config, snap, stats),
        ShowWhat::Filter => super::tcshow::filter_text(config, snap),
    }
}

/// `weir show -j`: tc's JSON key names.
pub(super) fn show_json(
    config: &Config,
    snap: &Snapshot,
    prev: Option<&Snapshot>,
    what: ShowWhat,
    stats: bool,
) -> serde_json::Value {
    match what {
        ShowWhat::Class => super::tcshow::class_json(config, snap, prev, stats),
        ShowWhat::Qdisc => super::tcshow::qdisc_json(config, snap, stats),
        ShowWhat::Filter => super::tcshow::filter_json(config, snap),
    }
}

#[cfg(test)]
mod tests {
    use weir_xdp::run::{FramePlaces, WorkerSnapshot};

    use super::*;

    /// A report whose only worker ended with `frames` (no trees: the UMEM
    /// check is what is looked at).
    fn report_with(frames: FramePlaces) -> (Config, ShutdownReport) {
        let text = include_str!("../../../config/lab.toml");
        let config = weir_config::parse_str(text, "lab.toml")
            .expect("config/lab.toml loads")
            .config;
        let worker = WorkerSnapshot {
            index: 0,
            core: None,
            pair: "lab".into(),
            queue: 0,
            counters: Default::default(),
            frames,
            rtprio_asked: 10,
            rtprio: 10,
            nice: None,
            wake_late: Default::default(),
        };
        let last = Snapshot {
            at_ns: 0,
            trees: Vec::new(),
            workers: vec![worker],
            interfaces: Vec::new(),
        };
        let report = ShutdownReport {
            queued_at_stop: Vec::new(),
            umem_free_or_fill: last.workers.iter().all(|w| w.frames.free_or_fill()),
            balanced: true,
            last,
        };
        (config, report)
    }

    const HOME: FramePlaces = FramePlaces {
        total: 4096,
        free: 2048,
        fill: 2048,
        queued: 0,
        tx: 0,
        handover: 0,
        lent: 0,
    };

    #[test]
    fn the_report_says_when_every_frame_is_back() {
        let (config, r) = report_with(HOME);
        let text = report(&config, &r);
        assert!(
            text.contains("UMEM frames: all 4096 free or in a fill ring"),
            "{text}"
        );
        let v = super::super::json::report_json(&config, &r, None);
        assert_eq!(v["accounting"]["umem_free_or_fill"], true, "{v}");
        assert_eq!(v["accounting"]["umem_away"], 0, "{v}");
    }

    /// A frame left in a tx ring after the stop: the places still add up,
    /// and the report must still say that a frame is missing.
    #[test]
    fn the_report_says_when_a_frame_is_not_back() {
        let f = FramePlaces {
            free: 2047,
            tx: 1,
            ..HOME
        };
        assert!(f.accounted());
        let (config, r) = report_with(f);
        assert!(!r.umem_free_or_fill);
        let text = report(&config, &r);
        assert!(
            text.contains("UMEM frames: 1 of 4096 NOT BACK (free 2047 + fill 2048; tx 1, lent 0"),
            "{text}"
        );
        let v = super::super::json::report_json(&config, &r, None);
        assert_eq!(v["accounting"]["umem_free_or_fill"], false, "{v}");
        assert_eq!(v["accounting"]["umem_away"], 1, "{v}");
        assert!(v["accounting"].get("umem_accounted").is_none(), "{v}");
    }
}
