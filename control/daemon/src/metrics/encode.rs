//! The OpenMetrics families of one [`Stats`], in the order a scrape lists
//! them: classes, leaf qdiscs, trees, apps (trees with apps only),
//! workers, interfaces, then what the control thread adds (open SLA rules,
//! the history's health).

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use weir_api::snapshot::{
    AppStats, AppsStats, ClassStats, ControlStats, Histogram, InterfaceStats, KernelCounters,
    QdiscStats, Stats, TreeStats, WorkerStats,
};
use weir_dataplane::histogram::LogHistogram;

type Labels = Vec<(&'static str, String)>;
type Result = std::result::Result<(), std::fmt::Error>;

/// Every family of `stats`.
pub(super) fn stats(enc: &mut DescriptorEncoder, stats: &Stats) -> Result {
    let classes = labelled_classes(stats);
    class_families(enc, &classes)?;
    qdisc_families(enc, &classes)?;
    tree_families(enc, &stats.trees)?;
    drop_filter_families(enc, &stats.trees)?;
    app_families(enc, &stats.trees)?;
    worker_families(enc, &stats.workers)?;
    interface_families(enc, &stats.interfaces)?;
    if let Some(control) = &stats.control {
        control_families(enc, control)?;
    }
    Ok(())
}

/// Encode one metric family: `series` are (labels, value) pairs; none, no
/// family.
fn family<M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: Vec<(Labels, M)>,
) -> Result {
    let Some(first) = series.first() else {
        return Ok(());
    };
    let mut m = enc.encode_descriptor(name, help, None, first.1.metric_type())?;
    for (labels, metric) in &series {
        metric.encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

fn counters(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: Vec<(Labels, u64)>,
) -> Result {
    let series = series.into_iter().map(|(l, v)| (l, ConstCounter::new(v)));
    family(enc, name, help, series.collect())
}

fn gauges(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: Vec<(Labels, i64)>,
) -> Result {
    let series = series.into_iter().map(|(l, v)| (l, ConstGauge::new(v)));
    family(enc, name, help, series.collect())
}

/// Log2 histograms of ns (bucket i holds times up to 2^i - 1 ns, see
/// `LogHistogram`) as one Prometheus histogram family in seconds.
fn log_histograms(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: Vec<(Labels, &Histogram)>,
) -> Result {
    if series.is_empty() {
        return Ok(());
    }
    let mut hist = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, h) in &series {
        // Per-bucket counts: the encoder accumulates them, and writes
        // `+Inf` for an upper bound of f64::MAX.
        let buckets: Vec<(f64, u64)> = h
            .buckets
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let upper = LogHistogram::upper_ns(i);
                let le = if upper == u64::MAX {
                    f64::MAX
                } else {
                    upper as f64 / 1e9
                };
                (le, n)
            })
            .collect();
        hist.encode_family(labels)?.encode_histogram::<NoLabelSet>(
            h.sum_ns as f64 / 1e9,
            h.count,
            &buckets,
            None,
        )?;
    }
    Ok(())
}

/// (labels, class) for every class of every tree.
fn labelled_classes(stats: &Stats) -> Vec<(Labels, &ClassStats)> {
    let text = |s: &Option<String>| s.clone().unwrap_or_default();
    let mut out = Vec::new();
    for t in &stats.trees {
        for c in &t.classes {
            let labels = vec![
                ("tree", t.name.clone()),
                ("class", text(&c.classid)),
                ("name", text(&c.name)),
            ];
            out.push((labels, c));
        }
    }
    out
}

type ClassCounter = (&'static str, &'static str, fn(&ClassStats) -> u64);
type ClassGauge = (&'static str, &'static str, fn(&ClassStats) -> i64);

const CLASS_COUNTERS: [ClassCounter; 6] = [
    ("bytes", "Bytes sent by the class (tc: Sent bytes).", |c| {
        c.bytes
    }),
    ("packets", "Packets sent by the class.", |c| c.packets),
    ("drops", "Packets the class dropped.", |c| c.drops),
    (
        "overlimits",
        "Times the class was over its limits when asked to send.",
        |c| c.overlimits,
    ),
    (
        "lended",
        "Packets the class sent with its own tokens (tc: lended).",
        |c| c.lended,
    ),
    (
        "borrowed",
        "Packets the class sent with tokens borrowed from an ancestor.",
        |c| c.borrowed,
    ),
];

/// Configuration a class's tree is unknown for (null in the JSON) reads 0,
/// as a scrape has always shown it.
const CLASS_GAUGES: [ClassGauge; 7] = [
    ("backlog_bytes", "Bytes queued in the class.", |c| {
        c.backlog as i64
    }),
    ("backlog_packets", "Packets queued in the class.", |c| {
        i64::from(c.qlen)
    }),
    (
        "tokens_ns",
        "Rate bucket level, ns of credit (negative: in debt).",
        |c| c.tokens,
    ),
    ("ctokens_ns", "Ceil bucket level, ns of credit.", |c| {
        c.ctokens
    }),
    ("rate_bits_per_second", "Configured guaranteed rate.", |c| {
        c.rate.unwrap_or(0) as i64 * 8
    }),
    ("ceil_bits_per_second", "Configured ceiling.", |c| {
        c.ceil.unwrap_or(0) as i64 * 8
    }),
    (
        "rate_estimate_bits_per_second",
        "Measured rate over the last second.",
        |c| c.rate_est.unwrap_or(0) as i64,
    ),
];

fn class_families(enc: &mut DescriptorEncoder, classes: &[(Labels, &ClassStats)]) -> Result {
    for (key, help, value) in CLASS_COUNTERS {
        let series = classes.iter().map(|(l, c)| (l.clone(), value(c)));
        counters(enc, &format!("weir_class_{key}"), help, series.collect())?;
    }
    for (key, help, value) in CLASS_GAUGES {
        let series = classes.iter().map(|(l, c)| (l.clone(), value(c)));
        gauges(enc, &format!("weir_class_{key}"), help, series.collect())?;
    }
    Ok(())
}

type QdiscCounter = (&'static str, &'static str, fn(&QdiscStats) -> Option<u64>);

/// Leaf qdisc counters; a kind's own are there for leaves of that kind.
const QDISC_COUNTERS: [QdiscCounter; 9] = [
    ("bytes", "Bytes the leaf qdisc dequeued.", |q| Some(q.bytes)),
    ("packets", "Packets the leaf qdisc dequeued.", |q| {
        Some(q.packets)
    }),
    ("drops", "Packets the leaf qdisc dropped.", |q| {
        Some(q.drops)
    }),
    ("overlimits", "Leaf qdisc overlimits.", |q| {
        Some(q.overlimits)
    }),
    (
        "ecn_marks",
        "fq_codel: packets CE-marked instead of dropped.",
        |q| q.fq_codel.map(|f| f.ecn_mark),
    ),
    ("new_flows", "fq_codel: flows that became active.", |q| {
        q.fq_codel.map(|f| f.new_flow_count)
    }),
    (
        "drop_overlimit",
        "fq_codel: drops because the qdisc was full.",
        |q| q.fq_codel.map(|f| f.drop_overlimit),
    ),
    ("red_early", "red: early drops and marks.", |q| {
        q.red.map(|r| r.early)
    }),
    ("red_marked", "red: packets marked.", |q| {
        q.red.map(|r| r.marked)
    }),
];

fn qdisc_families(enc: &mut DescriptorEncoder, classes: &[(Labels, &ClassStats)]) -> Result {
    let leaves: Vec<(Labels, &QdiscStats)> = classes
        .iter()
        .filter_map(|(l, c)| {
            let q = c.qdisc.as_ref()?;
            let mut l = l.clone();
            l.push(("kind", q.kind.clone().unwrap_or_default()));
            Some((l, q))
        })
        .collect();
    for (key, help, value) in QDISC_COUNTERS {
        let series = leaves
            .iter()
            .filter_map(|(l, q)| Some((l.clone(), value(q)?)));
        counters(enc, &format!("weir_qdisc_{key}"), help, series.collect())?;
    }
    let backlog = leaves.iter().map(|(l, q)| (l.clone(), q.backlog as i64));
    gauges(
        enc,
        "weir_qdisc_backlog_bytes",
        "Bytes queued in the leaf qdisc.",
        backlog.collect(),
    )
}

fn tree_families(enc: &mut DescriptorEncoder, trees: &[TreeStats]) -> Result {
    let label = |t: &TreeStats| {
        vec![
            ("tree", t.name.clone()),
            ("direction", t.direction.name().to_string()),
        ]
    };
    let each = |f: fn(&TreeStats) -> u64| trees.iter().map(|t| (label(t), f(t))).collect();
    counters(
        enc,
        "weir_tree_frames_received",
        "Frames given to the tree.",
        each(|t| t.frames.received),
    )?;
    counters(
        enc,
        "weir_tree_frames_sent",
        "Frames the tree sent.",
        each(|t| t.frames.sent),
    )?;
    let mut dropped = Vec::new();
    for t in trees {
        for (reason, &n) in &t.frames.dropped {
            let mut l = label(t);
            l.push(("reason", reason.clone()));
            dropped.push((l, n));
        }
    }
    counters(
        enc,
        "weir_tree_frames_dropped",
        "Frames the tree dropped, by reason.",
        dropped,
    )?;
    gauges(
        enc,
        "weir_tree_frames_queued",
        "Frames queued in the tree.",
        trees
            .iter()
            .map(|t| (label(t), t.frames.queued as i64))
            .collect(),
    )?;
    log_histograms(
        enc,
        "weir_tree_sojourn_seconds",
        "Time sent packets waited in the tree (enqueue to dequeue).",
        trees.iter().map(|t| (label(t), &t.sojourn)).collect(),
    )
}

type AppCounter = (&'static str, &'static str, fn(&AppStats) -> u64);

const APP_COUNTERS: [AppCounter; 4] = [
    (
        "flows",
        "Flows that got the app (a flow moved away and back counts twice).",
        |a| a.flows,
    ),
    (
        "packets",
        "Packets of the app's flows as they entered the tree.",
        |a| a.packets,
    ),
    (
        "bytes",
        "Bytes of the app's flows as they entered the tree.",
        |a| a.bytes,
    ),
    ("drops", "Packets of the app the tree dropped.", |a| a.drops),
];

type AppsCounter = (&'static str, &'static str, fn(&AppsStats) -> u64);

const FLOW_TABLE_COUNTERS: [AppsCounter; 3] = [
    ("hits", "Packets of a flow the table held.", |a| {
        a.table.hits
    }),
    ("inserted", "Flows the table started.", |a| a.table.inserted),
    ("expired", "Flows removed after the idle timeout.", |a| {
        a.table.expired
    }),
];

const APPS_ENGINE_COUNTERS: [AppsCounter; 7] = [
    (
        "unmatched_packets",
        "Packets of flows without an app (undecided, or no rule matched).",
        |a| a.engine.unmatched_packets,
    ),
    (
        "moved",
        "Flows a bulk or long-lived rule moved to its app.",
        |a| a.engine.moved,
    ),
    (
        "returned",
        "Flows moved back when a bulk or long-lived rule stopped holding.",
        |a| a.engine.returned,
    ),
    (
        "learned",
        "Decisions of the other direction's tree applied.",
        |a| a.engine.learned,
    ),
    (
        "learn_ignored",
        "Decisions of the other direction's tree ignored (no such app here, or a better own one).",
        |a| a.engine.learn_ignored,
    ),
    (
        "names",
        "Server names read (TLS SNI, QUIC SNI, HTTP Host).",
        |a| a.engine.names,
    ),
    (
        "inspect_full",
        "First flights that found every reassembly slot taken (decided without the name).",
        |a| a.engine.inspect_full,
    ),
];

/// Per app (labels tree and app: configured names only, so the series are
/// bounded by the configuration), then per tree its flow table and engine.
/// `weir_filter_dropped_total{tree, filter, pref, match}`: what each drop
/// filter (`action = "drop"`) dropped; trees without them have none.
fn drop_filter_families(enc: &mut DescriptorEncoder, trees: &[TreeStats]) -> Result {
    let series = trees
        .iter()
        .flat_map(|t| {
            t.drop_filters.iter().map(|f| {
                let labels: Labels = vec![
                    ("tree", t.name.clone()),
                    ("filter", f.index.to_string()),
                    ("pref", f.pref.to_string()),
                    ("match", f.matches.clone()),
                ];
                (labels, f.dropped)
            })
        })
        .collect();
    counters(
        enc,
        "weir_filter_dropped",
        "Frames a drop filter (action = \"drop\") dropped; `filter` is its place among the tree's filters in evaluation order.",
        series,
    )
}

fn app_families(enc: &mut DescriptorEncoder, trees: &[TreeStats]) -> Result {
    let with_apps: Vec<(&TreeStats, &AppsStats)> = trees
        .iter()
        .filter_map(|t| Some((t, t.apps.as_ref()?)))
        .collect();
    let tree = |t: &TreeStats| vec![("tree", t.name.clone())];
    for (key, help, value) in APP_COUNTERS {
        let mut series = Vec::new();
        for (t, a) in &with_apps {
            for app in &a.apps {
                let mut l = tree(t);
                l.push(("app", app.name.clone()));
                series.push((l, value(app)));
            }
        }
        counters(enc, &format!("weir_app_{key}"), help, series)?;
    }
    gauges(
        enc,
        "weir_flow_table_flows",
        "Flows in the tree's flow table now.",
        with_apps
            .iter()
            .map(|(t, a)| (tree(t), a.table.live as i64))
            .collect(),
    )?;
    gauges(
        enc,
        "weir_flow_table_capacity",
        "Flows the tree's flow table can hold.",
        with_apps
            .iter()
            .map(|(t, a)| (tree(t), a.table.capacity as i64))
            .collect(),
    )?;
    for (key, help, value) in FLOW_TABLE_COUNTERS {
        let series = with_apps.iter().map(|(t, a)| (tree(t), value(a)));
        counters(
            enc,
            &format!("weir_flow_table_{key}"),
            help,
            series.collect(),
        )?;
    }
    let mut evicted = Vec::new();
    for (t, a) in &with_apps {
        for (reason, n) in [
            ("idle", a.table.evicted_idle),
            ("pressure", a.table.evicted_pressure),
        ] {
            let mut l = tree(t);
            l.push(("reason", reason.to_string()));
            evicted.push((l, n));
        }
    }
    counters(
        enc,
        "weir_flow_table_evicted",
        "Flows whose way a new flow took: idle past the timeout, or live (pressure: the table is too small).",
        evicted,
    )?;
    let mut decided = Vec::new();
    for (t, a) in &with_apps {
        for (how, &n) in &a.engine.decided {
            let mut l = tree(t);
            l.push(("how", how.clone()));
            decided.push((l, n));
        }
    }
    counters(
        enc,
        "weir_apps_decisions",
        "Flows decided, by how (port, tls-sni, quic-sni, http-host, behaviour, peer, none).",
        decided,
    )?;
    for (key, help, value) in APPS_ENGINE_COUNTERS {
        let series = with_apps.iter().map(|(t, a)| (tree(t), value(a)));
        counters(enc, &format!("weir_apps_{key}"), help, series.collect())?;
    }
    Ok(())
}

type WorkerCounter = (&'static str, &'static str, fn(&WorkerStats) -> u64);

const WORKER_COUNTERS: [WorkerCounter; 12] = [
    ("rx_packets", "Frames the worker received.", |w| {
        w.counters.rx_packets
    }),
    ("tx_packets", "Frames the worker transmitted.", |w| {
        w.counters.tx_packets
    }),
    ("batches", "Loop iterations that moved frames.", |w| {
        w.counters.batches
    }),
    (
        "empty_polls",
        "Loop iterations that found nothing to do.",
        |w| w.counters.empty_polls,
    ),
    (
        "tx_ring_full",
        "Times a tx ring was full (retried on completion).",
        |w| w.counters.tx_ring_full,
    ),
    (
        "fill_ring_starved",
        "Times a fill ring could not be refilled: no free frame.",
        |w| w.counters.fill_ring_starved,
    ),
    ("handover_out", "Frames handed to another worker.", |w| {
        w.counters.handover_out
    }),
    (
        "handover_full_drops",
        "Frames dropped because a hand-over ring was full.",
        |w| w.counters.handover_full_drops,
    ),
    (
        "remarked",
        "Frames whose DSCP a remark (per app, per class, or a wash) changed on the way out.",
        |w| w.counters.remarked,
    ),
    (
        "decisions_out",
        "Flow decisions sent to the worker of the other direction's tree.",
        |w| w.counters.decisions_out,
    ),
    (
        "decisions_in",
        "Flow decisions received from the worker of the other direction's tree.",
        |w| w.counters.decisions_in,
    ),
    (
        "decisions_lost",
        "Flow decisions lost because the decision ring was full.",
        |w| w.counters.decisions_lost,
    ),
];

fn worker_families(enc: &mut DescriptorEncoder, workers: &[WorkerStats]) -> Result {
    let label = |w: &WorkerStats| vec![("worker", w.index.to_string()), ("pair", w.pair.clone())];
    for (key, help, value) in WORKER_COUNTERS {
        let series = workers.iter().map(|w| (label(w), value(w)));
        counters(enc, &format!("weir_worker_{key}"), help, series.collect())?;
    }
    log_histograms(
        enc,
        "weir_worker_wake_late_seconds",
        "How late the worker woke for a shaper deadline; a class loses the tokens of lateness beyond its burst.",
        workers.iter().map(|w| (label(w), &w.wake_late)).collect(),
    )?;
    gauges(
        enc,
        "weir_worker_rtprio",
        "SCHED_FIFO priority the worker runs at (0: the normal scheduler).",
        workers
            .iter()
            .map(|w| (label(w), i64::from(w.rtprio)))
            .collect(),
    )?;
    gauges(
        enc,
        "weir_worker_frames_in_flight",
        "UMEM frames of the worker that are not free (in rings, queues or hand-over).",
        workers
            .iter()
            .map(|w| (label(w), w.frames.in_flight() as i64))
            .collect(),
    )
}

/// Help of the kernel's interface counters, by /sys name.
fn kernel_help(key: &str) -> &'static str {
    match key {
        "rx_bytes" => "Bytes the interface received (kernel counter).",
        "tx_bytes" => "Bytes the interface transmitted (kernel counter).",
        "rx_packets" => "Packets the interface received (kernel counter).",
        "tx_packets" => "Packets the interface transmitted (kernel counter).",
        "rx_errors" => "Receive errors (kernel counter).",
        "tx_errors" => "Transmit errors (kernel counter).",
        "rx_dropped" => "Receive drops (kernel counter).",
        _ => "Transmit drops (kernel counter).",
    }
}

type XdpCounter = (&'static str, &'static str, fn(&InterfaceStats) -> u64);

const XDP_COUNTERS: [XdpCounter; 3] = [
    (
        "redirected",
        "Frames the XDP program redirected to weir.",
        |x| x.xdp.redirected,
    ),
    (
        "passed_no_socket",
        "Frames passed to the kernel: no weir socket on the queue.",
        |x| x.xdp.passed_no_socket,
    ),
    (
        "passed_by_rule",
        "Frames passed to the kernel by a pass prefix.",
        |x| x.xdp.passed_by_rule,
    ),
];

fn interface_families(enc: &mut DescriptorEncoder, ifaces: &[InterfaceStats]) -> Result {
    let label = |x: &InterfaceStats| vec![("interface", x.name.clone())];
    let names = KernelCounters::default().fields().map(|(name, _)| name);
    for (k, key) in names.into_iter().enumerate() {
        let series = ifaces
            .iter()
            .filter_map(|x| Some((label(x), x.kernel.fields()[k].1?)));
        counters(
            enc,
            &format!("weir_interface_{key}"),
            kernel_help(key),
            series.collect(),
        )?;
    }
    for (key, help, value) in XDP_COUNTERS {
        let series = ifaces.iter().map(|x| (label(x), value(x)));
        counters(enc, &format!("weir_xdp_{key}"), help, series.collect())?;
    }
    counters(
        enc,
        "weir_xsk_rx_dropped",
        "Frames the kernel dropped on the way into a weir socket (ring full, no fill frame).",
        ifaces
            .iter()
            .map(|x| {
                let s = &x.xsk;
                (
                    label(x),
                    s.rx_dropped + s.rx_ring_full + s.rx_fill_ring_empty_descs,
                )
            })
            .collect(),
    )
}

fn control_families(enc: &mut DescriptorEncoder, control: &ControlStats) -> Result {
    gauges(
        enc,
        "weir_sla_open",
        "SLA rules whose condition holds now (1 per open rule).",
        control
            .sla_open
            .iter()
            .map(|r| (vec![("rule", r.rule.clone())], 1))
            .collect(),
    )?;
    let Some(h) = &control.history else {
        return Ok(());
    };
    let one = |n: u64| vec![(Vec::new(), n)];
    counters(
        enc,
        "weir_history_records_written",
        "Records the history database stored.",
        one(h.written),
    )?;
    counters(
        enc,
        "weir_history_records_dropped",
        "Records lost because the history writer was behind.",
        one(h.dropped),
    )?;
    counters(
        enc,
        "weir_history_write_errors",
        "Failed history writes (full disk, I/O error); see the log.",
        one(h.write_errors),
    )?;
    gauges(
        enc,
        "weir_history_db_bytes",
        "Size of the history database on disk.",
        vec![(Vec::new(), h.db_bytes as i64)],
    )
}
