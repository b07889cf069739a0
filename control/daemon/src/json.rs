//! The JSON form of stats dumps and of the final report (`weir run --json`,
//! `--report FILE`). Key names are tc's where tc has one (`bytes`,
//! `packets`, `drops`, `overlimits`, `backlog`, `qlen`, `lended`,
//! `borrowed`, `tokens`, `ctokens`); rates are bytes per second as in
//! `tc -j`, plus `rate_est` in bits per second measured between two dumps.
//! The schema is documented in docs/operations.md.

use serde_json::{json, Map, Value};
use weir_dataplane::packet::DropReason;
use weir_dataplane::qdisc::{KindStats, QdiscStats};
use weir_dataplane::shaper::{FrameCounters, LogHistogram, LOG_BUCKETS};
use weir_xdp::run::{
    sched_name, InterfaceSnapshot, ShutdownReport, Snapshot, TreeSnapshot, WorkerSnapshot,
};

use weir_config::{Config, Tree};

/// Bits and packets per second of class `class` between `prev` and `snap`,
/// when both have the tree.
pub(super) fn rate_est(
    snap: &Snapshot,
    prev: Option<&Snapshot>,
    tree: usize,
    class: usize,
) -> Option<(u64, u64)> {
    let prev = prev?;
    let now = snap.trees.get(tree)?;
    let before = prev.trees.iter().find(|t| t.name == now.name)?;
    let dt = snap.at_ns.checked_sub(prev.at_ns).filter(|&d| d > 0)?;
    let (a, b) = (now.classes.get(class)?, before.classes.get(class)?);
    let per_sec = |n: u64| (u128::from(n) * 1_000_000_000 / u128::from(dt)) as u64;
    Some((
        per_sec(a.bytes.checked_sub(b.bytes)?) * 8,
        per_sec(a.packets.checked_sub(b.packets)?),
    ))
}

pub(super) fn frames_json(f: &FrameCounters) -> Value {
    let mut dropped = Map::new();
    for r in DropReason::ALL {
        dropped.insert(r.name().to_string(), json!(f.dropped[r.index()]));
    }
    json!({
        "received": f.received,
        "sent": f.sent,
        "dropped": dropped,
        "dropped_total": f.dropped_total(),
        "queued": f.queued,
        "malformed_seen": f.malformed_seen,
        "balanced": f.balanced(),
    })
}

fn qdisc_json(q: &QdiscStats) -> Value {
    let mut v = json!({
        "bytes": q.bytes,
        "packets": q.packets,
        "drops": q.drops,
        "overlimits": q.overlimits,
        "backlog": q.backlog.bytes,
        "qlen": q.backlog.packets,
    });
    let kind = match q.kind {
        KindStats::Fifo => json!({}),
        KindStats::Sfq => json!({}),
        KindStats::Red(r) => json!({
            "early": r.early(),
            "marked": r.marked(),
            "pdrop": r.pdrop,
            "prob_drop": r.prob_drop,
            "forced_drop": r.forced_drop,
            "prob_mark": r.prob_mark,
            "forced_mark": r.forced_mark,
        }),
        KindStats::FqCodel(f) => json!({
            "maxpacket": f.maxpacket,
            "drop_overlimit": f.drop_overlimit,
            "new_flow_count": f.new_flow_count,
            "ecn_mark": f.ecn_mark,
            "new_flows_len": f.new_flows_len,
            "old_flows_len": f.old_flows_len,
            "ce_mark": f.ce_mark,
            "memory_used": f.memory_usage,
            "drop_overmemory": f.drop_overmemory,
        }),
    };
    if let (Value::Object(base), Value::Object(extra)) = (&mut v, kind) {
        base.extend(extra);
    }
    v
}

fn tree_json(
    cfg: Option<&Tree>,
    t: &TreeSnapshot,
    index: usize,
    snap: &Snapshot,
    prev: Option<&Snapshot>,
) -> Value {
    let classes: Vec<Value> = t
        .classes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let c = cfg.and_then(|tree| tree.classes.get(i));
            let parent = c
                .and_then(|c| c.parent)
                .and_then(|p| cfg.and_then(|tree| tree.classes.get(p as usize)))
                .map(|p| p.id.to_string());
            let mut v = json!({
                "classid": c.map(|c| c.id.to_string()),
                "name": c.and_then(|c| c.name.clone()),
                "parent": parent,
                "leaf": c.is_some_and(|c| c.is_leaf()),
                "rate": c.map(|c| c.rate.bytes_per_sec()),
                "ceil": c.map(|c| c.ceil.bytes_per_sec()),
                "prio": c.map(|c| c.prio),
                "bytes": s.bytes,
                "packets": s.packets,
                "drops": s.drops,
                "overlimits": s.overlimits,
                "backlog": s.backlog.bytes,
                "qlen": s.backlog.packets,
                "lended": s.lends,
                "borrowed": s.borrows,
                "giants": s.giants,
                "tokens": s.tokens,
                "ctokens": s.ctokens,
                "rate_est": rate_est(snap, prev, index, i).map(|(bits, _)| bits),
                "pps_est": rate_est(snap, prev, index, i).map(|(_, pps)| pps),
                "qdisc": Value::Null,
            });
            if let Some(q) = t.qdiscs.get(i).and_then(|q| q.as_ref()) {
                let mut qv = qdisc_json(q);
                if let (Value::Object(m), Some(kind)) =
                    (&mut qv, c.and_then(|c| c.qdisc.as_ref()).map(|q| q.kind()))
                {
                    m.insert("kind".into(), json!(kind));
                }
                v["qdisc"] = qv;
            }
            v
        })
        .collect();
    let core = snap.workers.get(t.worker).and_then(|w| w.core);
    json!({
        "name": t.name,
        "pair": t.pair,
        "direction": if t.upload { "upload" } else { "download" },
        "worker": t.worker,
        "core": core,
        "frames": frames_json(&t.frames),
        "sojourn": log_histogram_json(&t.sojourn),
        "classes": classes,
    })
}

/// A quantile bound for JSON: null when empty or in the open-ended last
/// bucket (u64::MAX does not survive a JSON reader's doubles).
fn finite(ns: Option<u64>) -> Option<u64> {
    ns.filter(|&n| n != u64::MAX)
}

/// A log2 histogram of durations: totals, quantiles as the upper bound of
/// their bucket, and the buckets (bucket i: up to 2^i - 1 ns).
fn log_histogram_json(h: &LogHistogram) -> Value {
    json!({
        "count": h.count,
        "sum_ns": h.sum_ns,
        "p50_ns_at_most": finite(h.quantile_upper_ns(0.5)),
        "p99_ns_at_most": finite(h.quantile_upper_ns(0.99)),
        "max_ns_at_most": finite(h.quantile_upper_ns(1.0)),
        "buckets": h.buckets.to_vec(),
    })
}

fn accounting(snap: &Snapshot) -> Value {
    let mut total = FrameCounters::default();
    for t in &snap.trees {
        total.received += t.frames.received;
        total.sent += t.frames.sent;
        for (d, s) in total.dropped.iter_mut().zip(t.frames.dropped) {
            *d += s;
        }
        total.queued += t.frames.queued;
    }
    let umem_accounted = snap.workers.iter().all(|w| w.frames.accounted());
    json!({
        "received": total.received,
        "sent": total.sent,
        "dropped": total.dropped_total(),
        "queued": total.queued,
        "balanced": total.balanced() && snap.trees.iter().all(|t| t.frames.balanced()),
        "umem_accounted": umem_accounted,
    })
}

/// One stats dump (`kind` is "stats" or "report").
pub fn snapshot_json(
    config: &Config,
    snap: &Snapshot,
    prev: Option<&Snapshot>,
    kind: &str,
) -> Value {
    let trees: Vec<Value> = snap
        .trees
        .iter()
        .enumerate()
        .map(|(i, t)| tree_json(config.tree(&t.name), t, i, snap, prev))
        .collect();
    json!({
        "type": kind,
        "at_ns": snap.at_ns,
        "trees": trees,
        "workers": snap.workers.iter().map(|w| worker_json(w, snap)).collect::<Vec<_>>(),
        "interfaces": snap.interfaces.iter().map(interface_json).collect::<Vec<_>>(),
        "accounting": accounting(snap),
    })
}

/// The final report: the last snapshot (after the flush) plus what was
/// still queued when the stop came.
pub fn report_json(config: &Config, report: &ShutdownReport, prev: Option<&Snapshot>) -> Value {
    let mut v = snapshot_json(config, &report.last, prev, "report");
    let mut queued = Map::new();
    for (tree, n) in &report.queued_at_stop {
        queued.insert(tree.clone(), json!(n));
    }
    v["queued_at_stop"] = Value::Object(queued);
    v["accounting"]["balanced"] = json!(report.balanced);
    // After a stop the question is no longer whether the counters add up
    // (they do by construction) but whether every frame came back.
    if let Some(acc) = v["accounting"].as_object_mut() {
        acc.remove("umem_accounted");
    }
    v["accounting"]["umem_free_or_fill"] = json!(report.umem_free_or_fill);
    v["accounting"]["umem_away"] = json!(umem_away(&report.last));
    v
}

/// UMEM frames of all workers that are neither free nor in a fill ring.
pub(super) fn umem_away(snap: &Snapshot) -> u64 {
    snap.workers.iter().map(|w| w.frames.away()).sum()
}

pub(super) fn worker_json(w: &WorkerSnapshot, snap: &Snapshot) -> Value {
    let c = &w.counters;
    let f = &w.frames;
    let trees: Vec<&str> = snap
        .trees
        .iter()
        .filter(|t| t.worker == w.index)
        .map(|t| t.name.as_str())
        .collect();
    json!({
        "index": w.index,
        "core": w.core,
        "pair": w.pair,
        "queue": w.queue,
        "trees": trees,
        "sched": sched_name(w.rtprio_asked, w.rtprio, w.nice),
        "rtprio": w.rtprio,
        "rtprio_asked": w.rtprio_asked,
        "nice": w.nice,
        "wake_late": log_histogram_json(&w.wake_late),
        "rx_packets": c.rx_packets,
        "rx_bytes": c.rx_bytes,
        "tx_packets": c.tx_packets,
        "tx_bytes": c.tx_bytes,
        "batches": c.batches,
        "empty_polls": c.empty_polls,
        "sleeps": c.sleeps,
        "wakeups": c.wakeups,
        "tx_ring_full": c.tx_ring_full,
        "tx_kicks": c.tx_kicks,
        "fill_ring_starved": c.fill_ring_starved,
        "handover_out": c.handover_out,
        "handover_in": c.handover_in,
        "handover_full_drops": c.handover_full_drops,
        "returns_out": c.returns_out,
        "returns_in": c.returns_in,
        "tx_errors": c.tx_errors,
        "bad_descs": c.bad_descs,
        "frames": {
            "total": f.total,
            "free": f.free,
            "fill": f.fill,
            "queued": f.queued,
            "tx": f.tx,
            "handover": f.handover,
            "lent": f.lent,
            "accounted": f.accounted(),
        },
    })
}

pub(super) fn interface_json(i: &InterfaceSnapshot) -> Value {
    let x = &i.xdp;
    let s = &i.sockets;
    json!({
        "name": i.name,
        "kernel": crate::metrics::interface_kernel_stats(&i.name),
        "xdp": {
            "redirected": x.redirected,
            "passed_no_socket": x.passed_no_socket,
            "passed_by_rule": x.passed_by_rule,
            "dropped": x.dropped,
        },
        "xsk": {
            "rx_dropped": s.rx_dropped,
            "rx_invalid_descs": s.rx_invalid_descs,
            "rx_ring_full": s.rx_ring_full,
            "rx_fill_ring_empty_descs": s.rx_fill_ring_empty_descs,
            "tx_invalid_descs": s.tx_invalid_descs,
            "tx_ring_empty_descs": s.tx_ring_empty_descs,
        },
    })
}

/// "woke for 1234 deadlines, p99 ≤ 66 µs late, max ≤ 2.1 ms".
fn late_text(h: &LogHistogram) -> String {
    if h.count == 0 {
        return "no deadline wake-ups".to_string();
    }
    format!(
        "woke for {} deadlines, p99 ≤ {} late, max ≤ {}",
        h.count,
        bound_text(h.quantile_upper_ns(0.99)),
        bound_text(h.quantile_upper_ns(1.0))
    )
}

/// A bucket's upper bound for people: "900 ns", "66 µs", "2.1 ms"; the
/// last bucket has none ("> 275 s").
fn bound_text(ns: Option<u64>) -> String {
    match ns {
        None => "-".to_string(),
        Some(u64::MAX) => format!(
            "> {:.0} s",
            LogHistogram::upper_ns(LOG_BUCKETS - 2) as f64 / 1e9
        ),
        Some(n) if n < 1_000 => format!("{n} ns"),
        Some(n) if n < 1_000_000 => format!("{:.0} µs", n as f64 / 1e3),
        Some(n) => format!("{:.1} ms", n as f64 / 1e6),
    }
}

/// One text line per worker.
pub(super) fn worker_line(w: &WorkerSnapshot) -> String {
    let c = &w.counters;
    let f = &w.frames;
    let core = w
        .core
        .map_or_else(|| "unpinned".to_string(), |c| format!("core {c}"));
    format!(
        "worker {} ({core}, {}, pair {} queue {}): rx {} pkt {} bytes, tx {} pkt {} bytes, batches {}, empty polls {}, tx ring full {}, fill starved {}, handover out {} in {} full-drops {}, tx errors {}, {}; frames {}: free {} fill {} queued {} tx {} handover {} lent {} ({})",
        w.index,
        sched_name(w.rtprio_asked, w.rtprio, w.nice),
        w.pair,
        w.queue,
        c.rx_packets,
        c.rx_bytes,
        c.tx_packets,
        c.tx_bytes,
        c.batches,
        c.empty_polls,
        c.tx_ring_full,
        c.fill_ring_starved,
        c.handover_out,
        c.handover_in,
        c.handover_full_drops,
        c.tx_errors,
        late_text(&w.wake_late),
        f.total,
        f.free,
        f.fill,
        f.queued,
        f.tx,
        f.handover,
        f.lent,
        if f.accounted() { "all accounted for" } else { "NOT accounted for" }
    )
}

/// One text line per interface.
pub(super) fn interface_line(i: &InterfaceSnapshot) -> String {
    let x = &i.xdp;
    let s = &i.sockets;
    format!(
        "interface {}: xdp redirected {} passed {} (no socket) {} (pass rule) dropped {}; sockets rx_dropped {} rx_ring_full {} fill_empty {} tx_invalid {}",
        i.name,
        x.redirected,
        x.passed_no_socket,
        x.passed_by_rule,
        x.dropped,
        s.rx_dropped,
        s.rx_ring_full,
        s.rx_fill_ring_empty_descs,
        s.tx_invalid_descs
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use weir_dataplane::htb::{ClassStats, Mode};
    use weir_dataplane::qdisc::{Backlog, FqCodelStats, RedStats};
    use weir_xdp::prog::XdpCounters;
    use weir_xdp::run::{FramePlaces, SocketStats, WorkerCounters};

    use super::*;

    /// A snapshot of config/lab.toml's two trees with every counter
    /// distinct, every qdisc kind's statistics, a tree the configuration
    /// does not know (its class fields are null), histograms with values
    /// and an empty one, and a worker with its nice value unset; `n`
    /// scales the counters so two of them give rates.
    pub(crate) fn sample(n: u64) -> (Config, Snapshot) {
        let text = include_str!("../../../config/lab.toml");
        let config = weir_config::parse_str(text, "lab.toml")
            .expect("config/lab.toml loads")
            .config;
        let mut sojourn = LogHistogram::default();
        for ns in [5, 900, 66_000, 2_100_000, 1 << 40] {
            sojourn.record(ns * n);
        }
        let trees = ["up", "down", "ghost"]
            .iter()
            .enumerate()
            .map(|(ti, name)| {
                let classes = config.tree(if *name == "ghost" { "up" } else { name });
                let classes = classes.map_or(2, |t| t.classes.len());
                let k = 1000 * (ti as u64 + 1) * n;
                let stats = (0..classes)
                    .map(|i| {
                        let i = i as u64;
                        ClassStats {
                            bytes: k + 1500 * i,
                            packets: k / 100 + i,
                            drops: 3 * i * n,
                            overlimits: 5 * i,
                            backlog: Backlog {
                                packets: i as u32,
                                bytes: 1500 * i,
                            },
                            lends: 7 * i,
                            borrows: 11 * i,
                            giants: i / 2,
                            tokens: -(i as i64) * 1000,
                            ctokens: i as i64 * 2000,
                            mode: Mode::CanSend,
                        }
                    })
                    .collect::<Vec<_>>();
                let qdiscs = (0..classes)
                    .map(|i| {
                        let kind = match i % 4 {
                            0 => return None,
                            1 => KindStats::Fifo,
                            2 => KindStats::FqCodel(FqCodelStats {
                                maxpacket: 1514,
                                drop_overlimit: 2,
                                new_flow_count: 3 * n,
                                ecn_mark: 4,
                                new_flows_len: 1,
                                old_flows_len: 2,
                                ce_mark: 5,
                                memory_usage: 6000,
                                drop_overmemory: 7,
                            }),
                            _ => KindStats::Red(RedStats {
                                prob_drop: 1,
                                forced_drop: 2,
                                prob_mark: 3,
                                forced_mark: 4,
                                pdrop: 5 * n,
                            }),
                        };
                        let i = i as u64;
                        Some(QdiscStats {
                            bytes: k + 1500 * i,
                            packets: k / 100 + i,
                            drops: 3 * i,
                            overlimits: i,
                            backlog: Backlog {
                                packets: i as u32,
                                bytes: 1500 * i,
                            },
                            kind,
                        })
                    })
                    .collect();
                let mut frames = FrameCounters {
                    received: 100 * n + ti as u64,
                    sent: 90 * n,
                    malformed_seen: 1,
                    queued: 4,
                    ..FrameCounters::default()
                };
                frames.dropped[0] = 10 * n + ti as u64 - 4;
                TreeSnapshot {
                    name: name.to_string(),
                    pair: "lab".into(),
                    upload: ti != 1,
                    shaped: true,
                    worker: ti.min(1),
                    frames,
                    classes: stats,
                    qdiscs,
                    sojourn: if ti == 2 {
                        LogHistogram::default()
                    } else {
                        sojourn.clone()
                    },
                }
            })
            .collect();
        let workers = (0..2)
            .map(|w| WorkerSnapshot {
                index: w,
                core: if w == 0 { Some(3) } else { None },
                pair: "lab".into(),
                queue: w as u32,
                counters: WorkerCounters {
                    rx_packets: 1 + n,
                    rx_bytes: 2 + n,
                    tx_packets: 3 + n,
                    tx_bytes: 4 + n,
                    batches: 5,
                    empty_polls: 6,
                    sleeps: 7,
                    wakeups: 8,
                    tx_ring_full: 9,
                    tx_kicks: 10,
                    fill_ring_starved: 11,
                    handover_out: 12,
                    handover_in: 13,
                    handover_full_drops: 14,
                    returns_out: 15,
                    returns_in: 16,
                    tx_errors: 17,
                    bad_descs: 18,
                },
                frames: FramePlaces {
                    total: 4096,
                    free: 2000 - w as u64,
                    fill: 2048,
                    queued: 20,
                    tx: 10 + w as u64,
                    handover: 10,
                    lent: 8,
                },
                rtprio_asked: 10,
                rtprio: if w == 0 { 10 } else { 0 },
                nice: if w == 0 { None } else { Some(-5) },
                wake_late: sojourn.clone(),
            })
            .collect();
        let interfaces = ["weir-golden-in", "weir-golden-out"]
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let i = i as u64;
                InterfaceSnapshot {
                    name: name.to_string(),
                    xdp: XdpCounters {
                        redirected: 100 * n + i,
                        passed_no_socket: 1 + i,
                        passed_by_rule: 2 + i,
                        dropped: 0,
                    },
                    sockets: SocketStats {
                        rx_dropped: 1 + i,
                        rx_invalid_descs: 2,
                        rx_ring_full: 3,
                        rx_fill_ring_empty_descs: 4,
                        tx_invalid_descs: 5,
                        tx_ring_empty_descs: 6,
                    },
                }
            })
            .collect();
        let snap = Snapshot {
            at_ns: 1_000_000_000 * n,
            trees,
            workers,
            interfaces,
        };
        (config, snap)
    }

    /// The JSON lines of `weir run --json` for [`sample`]: a first stats
    /// line (no rates yet), a second one (rates), the final report.
    pub(crate) fn golden_lines() -> String {
        let (config, first) = sample(1);
        let (_, second) = sample(3);
        let report = ShutdownReport {
            queued_at_stop: vec![("up".into(), 4), ("down".into(), 0)],
            last: second.clone(),
            umem_free_or_fill: false,
            balanced: true,
        };
        [
            snapshot_json(&config, &first, None, "stats").to_string(),
            snapshot_json(&config, &second, Some(&first), "stats").to_string(),
            report_json(&config, &report, Some(&first)).to_string(),
            serde_json::to_string_pretty(&report_json(&config, &report, None)).expect("encodes"),
        ]
        .join("\n")
            + "\n"
    }

    /// The bytes `weir run --json` and `--report` write, kept from before
    /// the typed snapshot: scripts read these lines, so key order and
    /// values must not move.
    #[test]
    fn json_lines_are_byte_identical_to_the_recorded_ones() {
        let got = golden_lines();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/stats-lines.json");
        if std::env::var_os("WEIR_RECORD_GOLDEN").is_some() {
            std::fs::write(path, &got).expect("write golden");
        }
        let want = std::fs::read_to_string(path).expect("golden file");
        assert!(got == want, "JSON lines changed:\n{got}");
    }

    /// The metrics exposition of the second stats line of [`sample`] with
    /// the control thread's annotations (an open SLA rule, the history's
    /// health), kept from before the typed snapshot.
    #[test]
    fn metrics_are_byte_identical_to_the_recorded_ones() {
        let (config, first) = sample(1);
        let (_, second) = sample(3);
        let mut v = snapshot_json(&config, &second, Some(&first), "stats");
        v["sla_open"] = serde_json::json!([{"rule": "voice-late", "since_ns": 5}]);
        v["history"] = serde_json::json!({"written": 10, "dropped": 1, "write_errors": 2,
            "last_error": "disk full", "db_bytes": 4096});
        let p = crate::metrics::Published::default();
        p.set(v);
        let got = crate::metrics::render(&p);
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/metrics.txt");
        if std::env::var_os("WEIR_RECORD_GOLDEN").is_some() {
            std::fs::write(path, &got).expect("write golden");
        }
        let want = std::fs::read_to_string(path).expect("golden file");
        assert!(got == want, "metrics changed:\n{got}");
    }
}
