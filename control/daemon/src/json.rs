//! The typed stats ([`weir_api::Stats`]) of a data path snapshot: what
//! `weir run --json` prints (stats lines, the final report, `--report
//! FILE`), the API's `stats` answer and the metrics endpoint's source, plus
//! the text lines of workers and interfaces. The schema is documented in
//! docs/operations.md.

use std::collections::BTreeMap;

use weir_api::snapshot::{
    Accounting, ClassStats, ControlStats, Direction, DropFilterStats, FqCodelStats, FrameStats,
    Histogram, InterfaceStats, KernelCounters, QdiscStats, RedStats, Stats, StatsKind, TreeStats,
    WorkerCounters, WorkerFrames, WorkerStats, XdpCounters, XskCounters,
};
use weir_dataplane::histogram::LogHistogram;
use weir_dataplane::packet::DropReason;
use weir_dataplane::qdisc::KindStats;
use weir_dataplane::shaper::FrameCounters;
use weir_xdp::datapath::{
    sched_name, InterfaceSnapshot, ShutdownReport, Snapshot, TreeSnapshot, WorkerSnapshot,
};

use weir_config::{Config, Tree};

/// Bits and packets per second of class `class` between `prev` and `snap`,
/// when both have the tree and the class at that index (a tree changed in
/// place in between may have moved another class there: no estimate for
/// that interval).
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
    if now.ids.get(class) != before.ids.get(class) {
        return None;
    }
    let (a, b) = (now.classes.get(class)?, before.classes.get(class)?);
    let per_sec = |n: u64| (u128::from(n) * 1_000_000_000 / u128::from(dt)) as u64;
    Some((
        per_sec(a.bytes.checked_sub(b.bytes)?) * 8,
        per_sec(a.packets.checked_sub(b.packets)?),
    ))
}

/// One stats dump of the data path (the control thread adds
/// [`ControlStats`] where it has them).
pub fn stats(config: &Config, snap: &Snapshot, prev: Option<&Snapshot>, kind: StatsKind) -> Stats {
    Stats {
        kind,
        at_ns: snap.at_ns,
        trees: snap
            .trees
            .iter()
            .enumerate()
            .map(|(i, t)| tree_stats(config.tree(&t.name), t, i, snap, prev))
            .collect(),
        workers: snap.workers.iter().map(|w| worker_stats(w, snap)).collect(),
        interfaces: snap.interfaces.iter().map(interface_stats).collect(),
        accounting: accounting(snap),
        queued_at_stop: None,
        control: None,
    }
}

/// The final report: the last snapshot (after the flush) plus what was
/// still queued when the stop came.
pub fn report(config: &Config, report: &ShutdownReport, prev: Option<&Snapshot>) -> Stats {
    let mut s = stats(config, &report.last, prev, StatsKind::Report);
    s.queued_at_stop = Some(report.queued_at_stop.iter().cloned().collect());
    // After a stop the question is no longer whether the counters add up
    // (they do by construction) but whether every frame came back.
    s.accounting.balanced = report.balanced;
    s.accounting.umem_accounted = None;
    s.accounting.umem_free_or_fill = Some(report.umem_free_or_fill);
    s.accounting.umem_away = Some(umem_away(&report.last));
    s
}

/// With the SLA rules open now and the history's health.
pub fn with_control(mut stats: Stats, control: ControlStats) -> Stats {
    stats.control = Some(control);
    stats
}

/// The rates and ceils in force after the policy engine changed some
/// (it changes nothing else of a class): the stats it read were taken
/// before.
pub fn with_rates_of(mut stats: Stats, config: &Config) -> Stats {
    for t in &mut stats.trees {
        let Some(tree) = config.tree(&t.name) else {
            continue;
        };
        for (s, c) in t.classes.iter_mut().zip(&tree.classes) {
            s.rate = Some(c.rate.bytes_per_sec());
            s.ceil = Some(c.ceil.bytes_per_sec());
        }
    }
    stats
}

fn frame_stats(f: &FrameCounters) -> FrameStats {
    FrameStats {
        received: f.received,
        sent: f.sent,
        dropped: DropReason::ALL
            .iter()
            .map(|r| (r.name().to_string(), f.dropped[r.index()]))
            .collect::<BTreeMap<_, _>>(),
        dropped_total: f.dropped_total(),
        queued: f.queued,
        malformed_seen: f.malformed_seen,
        balanced: f.balanced(),
    }
}

fn qdisc_stats(q: &weir_dataplane::qdisc::QdiscStats, kind: Option<&str>) -> QdiscStats {
    let (red, fq_codel) = match q.kind {
        KindStats::Fifo | KindStats::Sfq => (None, None),
        KindStats::Red(r) => (
            Some(RedStats {
                early: r.early(),
                marked: r.marked(),
                pdrop: r.pdrop,
                prob_drop: r.prob_drop,
                forced_drop: r.forced_drop,
                prob_mark: r.prob_mark,
                forced_mark: r.forced_mark,
            }),
            None,
        ),
        KindStats::FqCodel(f) => (
            None,
            Some(FqCodelStats {
                maxpacket: f.maxpacket,
                drop_overlimit: f.drop_overlimit,
                new_flow_count: f.new_flow_count,
                ecn_mark: f.ecn_mark,
                new_flows_len: f.new_flows_len,
                old_flows_len: f.old_flows_len,
                ce_mark: f.ce_mark,
                memory_used: f.memory_usage,
                drop_overmemory: f.drop_overmemory,
            }),
        ),
    };
    QdiscStats {
        kind: kind.map(str::to_string),
        bytes: q.bytes,
        packets: q.packets,
        drops: q.drops,
        overlimits: q.overlimits,
        backlog: q.backlog.bytes,
        qlen: q.backlog.packets,
        red,
        fq_codel,
    }
}

fn class_stats(
    cfg: Option<&Tree>,
    t: &TreeSnapshot,
    i: usize,
    rate: Option<(u64, u64)>,
) -> Option<ClassStats> {
    let s = t.classes.get(i)?;
    let c = cfg.and_then(|tree| tree.classes.get(i));
    let parent = c
        .and_then(|c| c.parent)
        .and_then(|p| cfg.and_then(|tree| tree.classes.get(p as usize)))
        .map(|p| p.id.to_string());
    let qdisc = t.qdiscs.get(i).and_then(|q| q.as_ref()).map(|q| {
        let kind = c.and_then(|c| c.qdisc.as_ref()).map(|q| q.kind());
        qdisc_stats(q, kind)
    });
    Some(ClassStats {
        classid: c.map(|c| c.id.to_string()),
        name: c.and_then(|c| c.name.clone()),
        parent,
        leaf: c.is_some_and(|c| c.is_leaf()),
        rate: c.map(|c| c.rate.bytes_per_sec()),
        ceil: c.map(|c| c.ceil.bytes_per_sec()),
        prio: c.map(|c| c.prio),
        bytes: s.bytes,
        packets: s.packets,
        drops: s.drops,
        overlimits: s.overlimits,
        backlog: s.backlog.bytes,
        qlen: s.backlog.packets,
        lended: s.lends,
        borrowed: s.borrows,
        giants: s.giants,
        tokens: s.tokens,
        ctokens: s.ctokens,
        rate_est: rate.map(|(bits, _)| bits),
        pps_est: rate.map(|(_, pps)| pps),
        qdisc,
    })
}

fn tree_stats(
    cfg: Option<&Tree>,
    t: &TreeSnapshot,
    index: usize,
    snap: &Snapshot,
    prev: Option<&Snapshot>,
) -> TreeStats {
    TreeStats {
        name: t.name.clone(),
        pair: t.pair.clone(),
        direction: if t.upload {
            Direction::Upload
        } else {
            Direction::Download
        },
        worker: t.worker,
        core: snap.workers.get(t.worker).and_then(|w| w.core),
        frames: frame_stats(&t.frames),
        sojourn: histogram(&t.sojourn),
        classes: (0..t.classes.len())
            .filter_map(|i| class_stats(cfg, t, i, rate_est(snap, prev, index, i)))
            .collect(),
        apps: t.apps.as_ref().map(|a| super::apps::apps_stats(cfg, a)),
        drop_filters: drop_filter_stats(cfg, t),
    }
}

/// The drop filters of the tree's configuration with what each dropped
/// (numbered in evaluation order, as the core counts them).
fn drop_filter_stats(cfg: Option<&Tree>, t: &TreeSnapshot) -> Vec<DropFilterStats> {
    let Some(cfg) = cfg else { return Vec::new() };
    cfg.filters
        .iter()
        .enumerate()
        .filter(|(_, f)| f.class().is_none())
        .zip(&t.filter_drops)
        .map(|((index, f), &dropped)| DropFilterStats {
            index: index as u32,
            pref: f.prio,
            matches: super::tcshow::match_words(&f.spec).trim().to_string(),
            dropped,
        })
        .collect()
}

/// A quantile bound for JSON: None when empty or in the open-ended last
/// bucket (u64::MAX does not survive a JSON reader's doubles).
fn finite(ns: Option<u64>) -> Option<u64> {
    ns.filter(|&n| n != u64::MAX)
}

fn histogram(h: &LogHistogram) -> Histogram {
    Histogram {
        count: h.count,
        sum_ns: h.sum_ns,
        p50_ns_at_most: finite(h.quantile_upper_ns(0.5)),
        p99_ns_at_most: finite(h.quantile_upper_ns(0.99)),
        max_ns_at_most: finite(h.quantile_upper_ns(1.0)),
        buckets: h.buckets.to_vec(),
    }
}

/// The frame counters of all trees added up (`malformed_seen` aside: it
/// counts frames also counted elsewhere).
pub(super) fn total_frames(snap: &Snapshot) -> FrameCounters {
    let mut total = FrameCounters::default();
    for t in &snap.trees {
        total.received += t.frames.received;
        total.sent += t.frames.sent;
        for (d, s) in total.dropped.iter_mut().zip(t.frames.dropped) {
            *d += s;
        }
        total.queued += t.frames.queued;
    }
    total
}

fn accounting(snap: &Snapshot) -> Accounting {
    let total = total_frames(snap);
    Accounting {
        received: total.received,
        sent: total.sent,
        dropped: total.dropped_total(),
        queued: total.queued,
        balanced: total.balanced() && snap.trees.iter().all(|t| t.frames.balanced()),
        umem_accounted: Some(snap.workers.iter().all(|w| w.frames.accounted())),
        umem_free_or_fill: None,
        umem_away: None,
    }
}

/// UMEM frames of all workers that are neither free nor in a fill ring.
pub(super) fn umem_away(snap: &Snapshot) -> u64 {
    snap.workers.iter().map(|w| w.frames.away()).sum()
}

fn worker_stats(w: &WorkerSnapshot, snap: &Snapshot) -> WorkerStats {
    let c = &w.counters;
    let f = &w.frames;
    WorkerStats {
        index: w.index,
        core: w.core,
        pair: w.pair.clone(),
        queue: w.queue,
        trees: snap
            .trees
            .iter()
            .filter(|t| t.worker == w.index)
            .map(|t| t.name.clone())
            .collect(),
        sched: sched_name(w.rtprio_asked, w.rtprio, w.nice),
        rtprio: w.rtprio,
        rtprio_asked: w.rtprio_asked,
        nice: w.nice,
        wake_late: histogram(&w.wake_late),
        counters: WorkerCounters {
            rx_packets: c.rx_packets,
            rx_bytes: c.rx_bytes,
            tx_packets: c.tx_packets,
            tx_bytes: c.tx_bytes,
            batches: c.batches,
            empty_polls: c.empty_polls,
            sleeps: c.sleeps,
            wakeups: c.wakeups,
            tx_ring_full: c.tx_ring_full,
            tx_kicks: c.tx_kicks,
            fill_ring_starved: c.fill_ring_starved,
            handover_out: c.handover_out,
            handover_in: c.handover_in,
            handover_full_drops: c.handover_full_drops,
            returns_out: c.returns_out,
            returns_in: c.returns_in,
            tx_errors: c.tx_errors,
            bad_descs: c.bad_descs,
            remarked: c.remarked,
            decisions_out: c.decisions_out,
            decisions_in: c.decisions_in,
            decisions_lost: c.decisions_lost,
        },
        frames: WorkerFrames {
            total: f.total,
            free: f.free,
            fill: f.fill,
            queued: f.queued,
            tx: f.tx,
            handover: f.handover,
            lent: f.lent,
            accounted: f.accounted(),
        },
    }
}

fn interface_stats(i: &InterfaceSnapshot) -> InterfaceStats {
    let x = &i.xdp;
    let s = &i.sockets;
    InterfaceStats {
        name: i.name.clone(),
        kernel: kernel_counters(&i.name),
        xdp: XdpCounters {
            redirected: x.redirected,
            passed_no_socket: x.passed_no_socket,
            passed_by_rule: x.passed_by_rule,
            dropped: x.dropped,
        },
        xsk: XskCounters {
            rx_dropped: s.rx_dropped,
            rx_invalid_descs: s.rx_invalid_descs,
            rx_ring_full: s.rx_ring_full,
            rx_fill_ring_empty_descs: s.rx_fill_ring_empty_descs,
            tx_invalid_descs: s.tx_invalid_descs,
            tx_ring_empty_descs: s.tx_ring_empty_descs,
        },
    }
}

/// The kernel's counters of an interface, from /sys (the network namespace
/// of the process: `ip netns exec` mounts its own /sys). Missing files are
/// left out.
pub(crate) fn kernel_counters(ifname: &str) -> KernelCounters {
    let mut k = KernelCounters::default();
    for (key, _) in KernelCounters::default().fields() {
        let path = format!("/sys/class/net/{ifname}/statistics/{key}");
        let value = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok());
        if let Some(slot) = k.slot(key) {
            *slot = value;
        }
    }
    k
}

#[cfg(test)]
pub(crate) mod tests {
    use weir_dataplane::htb::{ClassStats, Mode};
    use weir_dataplane::qdisc::{Backlog, FqCodelStats, QdiscStats, RedStats};
    use weir_dataplane::shaper::FrameCounters;
    use weir_xdp::datapath::TreeSnapshot;
    use weir_xdp::datapath::{FramePlaces, SocketStats, WorkerCounters};
    use weir_xdp::prog::XdpCounters;

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
                    ids: (0..stats.len() as u64).collect(),
                    classes: stats,
                    qdiscs,
                    sojourn: if ti == 2 {
                        LogHistogram::default()
                    } else {
                        sojourn.clone()
                    },
                    apps: None,
                    filter_drops: Vec::new(),
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
                    remarked: 19,
                    decisions_out: 20,
                    decisions_in: 21,
                    decisions_lost: 22,
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

    /// [`sample`] with apps on tree `up` (voice in 1:10 remarked EF, bulk
    /// in 1:30 remarked CS1 if unmarked, an app with no traffic) and on
    /// `ghost` (a tree the configuration does not know: classes unknown);
    /// `down` has none. Every counter distinct.
    pub(crate) fn sample_apps(n: u64) -> (Config, Snapshot) {
        use weir_dataplane::app::{AppCounters, AppSpec, EngineCounters};
        use weir_dataplane::flow::FlowCounters;
        use weir_dataplane::remark::Remark;
        use weir_xdp::datapath::{AppSnapshot, AppsSnapshot};
        let (config, mut snap) = sample(n);
        let app = |name: &str, class: u32, remark: Option<Remark>, k: u64| AppSnapshot {
            spec: AppSpec {
                name: name.into(),
                class,
                remark,
            },
            counters: AppCounters {
                flows: k * n,
                packets: 100 * k * n,
                bytes: 16_000 * k * n,
                drops: k,
            },
        };
        let mut decided = [0; 8];
        for (i, d) in decided.iter_mut().enumerate() {
            *d = 10 * i as u64 + n;
        }
        let apps = AppsSnapshot {
            apps: vec![
                app("voice", 1, Some(Remark::Set(46)), 1),
                app("bulk", 3, Some(Remark::IfUnmarked(8)), 2),
                app("idle", 2, None, 0),
            ],
            engine: EngineCounters {
                unmatched_packets: 33 * n,
                decided,
                moved: 2,
                returned: 1,
                learned: 4,
                learn_ignored: 5,
                names: 6,
                inspect_full: 7,
            },
            table: FlowCounters {
                live: 12,
                hits: 1200 * n,
                inserted: 40 * n,
                expired: 28,
                evicted_idle: 3,
                evicted_pressure: 9,
            },
            capacity: 65536,
        };
        snap.trees[0].apps = Some(apps.clone());
        let mut ghost = apps;
        ghost.apps.truncate(1);
        snap.trees[2].apps = Some(ghost);
        (config, snap)
    }

    /// The stats of `sample(n)`, without rates.
    pub(crate) fn sample_stats(n: u64) -> Stats {
        let (config, snap) = sample(n);
        stats(&config, &snap, None, StatsKind::Stats)
    }

    /// The JSON lines of `weir run --json` for [`sample`]: a first stats
    /// line (no rates yet), a second one (rates), the final report.
    pub(crate) fn golden_lines() -> String {
        let (config, first) = sample(1);
        let (_, second) = sample(3);
        let shutdown = ShutdownReport {
            queued_at_stop: vec![("up".into(), 4), ("down".into(), 0)],
            last: second.clone(),
            umem_free_or_fill: false,
            balanced: true,
        };
        [
            stats(&config, &first, None, StatsKind::Stats)
                .to_json()
                .to_string(),
            stats(&config, &second, Some(&first), StatsKind::Stats)
                .to_json()
                .to_string(),
            report(&config, &shutdown, Some(&first))
                .to_json()
                .to_string(),
            serde_json::to_string_pretty(&report(&config, &shutdown, None).to_json())
                .expect("encodes"),
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

    /// What `weir top` and scripts read back is what was written: every
    /// line decodes into the typed stats and encodes to the same bytes,
    /// with and without the control thread's part.
    #[test]
    fn json_lines_decode_to_the_same_stats() {
        let lines = golden_lines();
        for line in lines.lines().take(3) {
            let stats: Stats = serde_json::from_str(line).expect("decodes");
            assert_eq!(stats.to_json().to_string(), line);
        }
        let open = ControlStats {
            sla_open: vec![weir_api::snapshot::SlaOpen {
                rule: "voice-late".into(),
                since_ns: 5,
            }],
            history: None,
        };
        let s = with_control(sample_stats(1), open);
        let v = s.to_json();
        assert!(
            v["history"].is_null() && v["sla_open"][0]["rule"] == "voice-late",
            "{v}"
        );
        assert_eq!(serde_json::from_value::<Stats>(v).expect("decodes"), s);
        let mut v = sample_stats(1).to_json();
        v["trees"][0]["classes"][0]
            .as_object_mut()
            .expect("a class")
            .remove("bytes");
        assert!(
            serde_json::from_value::<Stats>(v).is_err(),
            "a missing counter is an error, not 0"
        );
    }

    /// Apps come out typed under their tree (classes by classid, remarks
    /// by name, every way of deciding listed), trees without apps have no
    /// `apps` key, and the JSON decodes back to the same stats.
    #[test]
    fn apps_are_in_the_stats_of_their_tree_only() {
        let (config, snap) = sample_apps(1);
        let s = stats(&config, &snap, None, StatsKind::Stats);
        let v = s.to_json();
        let up = &v["trees"][0]["apps"];
        assert_eq!(up["apps"][0]["name"], "voice", "{up}");
        assert_eq!(up["apps"][0]["class"], "1:10");
        assert_eq!(up["apps"][0]["class_name"], "high");
        assert_eq!(up["apps"][0]["remark"], "ef");
        assert_eq!(up["apps"][0]["bytes"], 16_000);
        assert_eq!(up["apps"][1]["remark"], "cs1 if-unmarked");
        assert_eq!(up["apps"][1]["class"], "1:30");
        assert_eq!(up["apps"][1]["drops"], 2);
        assert!(up["apps"][2]["remark"].is_null());
        assert_eq!(up["table"]["live"], 12);
        assert_eq!(up["table"]["capacity"], 65536);
        assert_eq!(up["table"]["evicted_pressure"], 9);
        // Decided's index order: port is 1, peer 6, none 7.
        assert_eq!(up["engine"]["decided"]["port"], 11);
        assert_eq!(up["engine"]["decided"]["peer"], 61);
        assert_eq!(up["engine"]["decided"]["none"], 71);
        assert_eq!(
            up["engine"]["decided"].as_object().map(|o| o.len()),
            Some(7)
        );
        assert!(up["engine"]["decided"].get("undecided").is_none());
        assert_eq!(up["engine"]["inspect_full"], 7);
        assert!(v["trees"][1].get("apps").is_none(), "down has no apps");
        let ghost = &v["trees"][2]["apps"]["apps"][0];
        assert!(ghost["class"].is_null() && ghost["class_name"].is_null());
        let back: Stats = serde_json::from_value(v).expect("decodes");
        assert_eq!(back, s);
        let mut v = s.to_json();
        v["trees"][0]["apps"]["apps"][0]
            .as_object_mut()
            .expect("an app")
            .remove("drops");
        assert!(
            serde_json::from_value::<Stats>(v).is_err(),
            "a missing app counter is an error, not 0"
        );
    }

    /// The per-app, flow table and engine families: labelled by tree and
    /// the configured app names only, absent for trees without apps.
    #[test]
    fn apps_metrics_are_labelled_by_tree_and_app() {
        let (config, snap) = sample_apps(2);
        let p = crate::metrics::Published::default();
        p.set(std::sync::Arc::new(stats(
            &config,
            &snap,
            None,
            StatsKind::Stats,
        )));
        let got = crate::metrics::render(&p);
        for line in [
            "weir_app_bytes_total{tree=\"up\",app=\"voice\"} 32000",
            "weir_app_packets_total{tree=\"up\",app=\"bulk\"} 400",
            "weir_app_flows_total{tree=\"up\",app=\"idle\"} 0",
            "weir_app_drops_total{tree=\"ghost\",app=\"voice\"} 1",
            "weir_flow_table_flows{tree=\"up\"} 12",
            "weir_flow_table_capacity{tree=\"up\"} 65536",
            "weir_flow_table_inserted_total{tree=\"up\"} 80",
            "weir_flow_table_evicted_total{tree=\"up\",reason=\"pressure\"} 9",
            "weir_apps_decisions_total{tree=\"up\",how=\"tls-sni\"} 22",
            "weir_apps_unmatched_packets_total{tree=\"up\"} 66",
            "weir_apps_learn_ignored_total{tree=\"ghost\"} 5",
            "weir_worker_remarked_total{worker=\"0\",pair=\"lab\"} 19",
            "weir_worker_decisions_lost_total{worker=\"1\",pair=\"lab\"} 22",
        ] {
            assert!(got.lines().any(|l| l == line), "no {line} in:\n{got}");
        }
        assert!(!got.contains("tree=\"down\",app="), "{got}");
        assert!(
            !got.contains("weir_flow_table_flows{tree=\"down\"}"),
            "{got}"
        );
        // Every app family is in docs/metrics.md under its full name.
        let doc = include_str!("../../../docs/metrics.md");
        let families = got
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .filter(|n| {
                ["weir_app_", "weir_flow_table_", "weir_apps_"]
                    .iter()
                    .any(|p| n.starts_with(p))
                    || n.starts_with("weir_worker_remarked")
                    || n.starts_with("weir_worker_decisions")
            })
            .collect::<Vec<_>>();
        assert_eq!(families.len(), 4 + 2 + 3 + 1 + 1 + 7 + 4, "{families:?}");
        for f in families {
            assert!(doc.contains(&format!("`{f}")), "docs/metrics.md lacks {f}");
        }
    }

    /// A policy that moved a class between the snapshot and publishing:
    /// the published stats say the rate and ceil in force.
    #[test]
    fn published_rates_follow_a_policy_change() {
        let (mut config, snap) = sample(1);
        let before = stats(&config, &snap, None, StatsKind::Stats);
        let up = config.trees.iter_mut().find(|t| t.name == "up");
        let class = &mut up.expect("tree up").classes[1];
        class.rate = weir_config::Rate::from_bits_per_sec(8_000);
        class.ceil = weir_config::Rate::from_bits_per_sec(16_000);
        let after = with_rates_of(before.clone(), &config);
        let c = &after.trees[0].classes[1];
        assert_eq!((c.rate, c.ceil), (Some(1_000), Some(2_000)));
        let mut unchanged = after.clone();
        unchanged.trees[0].classes[1] = before.trees[0].classes[1].clone();
        assert_eq!(unchanged, before, "nothing else moved");
    }

    /// The metrics exposition of the second stats line of [`sample`] with
    /// the control thread's annotations (an open SLA rule, the history's
    /// health), kept from before the typed snapshot.
    #[test]
    fn metrics_are_byte_identical_to_the_recorded_ones() {
        let (config, first) = sample(1);
        let (_, second) = sample(3);
        let control = ControlStats {
            sla_open: vec![weir_api::snapshot::SlaOpen {
                rule: "voice-late".into(),
                since_ns: 5,
            }],
            history: Some(weir_api::snapshot::HistoryHealth {
                written: 10,
                dropped: 1,
                write_errors: 2,
                last_error: Some("disk full".into()),
                db_bytes: 4096,
            }),
        };
        let p = crate::metrics::Published::default();
        p.set(std::sync::Arc::new(with_control(
            stats(&config, &second, Some(&first), StatsKind::Stats),
            control,
        )));
        let got = crate::metrics::render(&p);
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/metrics.txt");
        if std::env::var_os("WEIR_RECORD_GOLDEN").is_some() {
            std::fs::write(path, &got).expect("write golden");
        }
        let want = std::fs::read_to_string(path).expect("golden file");
        assert!(got == want, "metrics changed:\n{got}");
    }
}
