//! The text form of `weir run`'s output: placement lines, per-class
//! counters laid out as `tc -s class show` lays them out (one block per
//! class, under a line per tree), and the final report.

use std::fmt::Write as _;

use weir_dataplane::histogram::{LogHistogram, LOG_BUCKETS};
use weir_dataplane::packet::DropReason;
use weir_xdp::datapath::{
    sched_name, InterfaceSnapshot, ShutdownReport, Snapshot, WorkerPlacement, WorkerSnapshot,
};

use weir_api::{ShowWhat, Stats};

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
        let _ = writeln!(s, "{}", worker_line(w));
    }
    for i in &snap.interfaces {
        let _ = writeln!(s, "{}", interface_line(i));
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
    let total = super::json::total_frames(&report.last);
    let (rx, tx, q, dropped) = (total.received, total.sent, total.queued, total.dropped);
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
    let sum = |f: fn(&weir_xdp::datapath::FramePlaces) -> u64| {
        ws.iter().map(|w| f(&w.frames)).sum::<u64>()
    };
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
    snap: &Stats,
    what: ShowWhat,
    stats: bool,
    select: &super::tcshow::Select,
) -> String {
    match what {
        ShowWhat::Class => super::tcshow::class_text(config, snap, stats, select),
        ShowWhat::Qdisc => super::tcshow::qdisc_text(config, snap, stats),
        ShowWhat::Filter => super::tcshow::filter_text(config, snap),
        ShowWhat::Apps => super::apps::apps_text(snap),
    }
}

/// `weir show -j`: tc's JSON key names.
pub(super) fn show_json(
    config: &Config,
    snap: &Stats,
    what: ShowWhat,
    stats: bool,
    select: &super::tcshow::Select,
) -> serde_json::Value {
    match what {
        ShowWhat::Class => super::tcshow::class_json(config, snap, stats, select),
        ShowWhat::Qdisc => super::tcshow::qdisc_json(config, snap, stats),
        ShowWhat::Filter => super::tcshow::filter_json(config, snap),
        ShowWhat::Apps => super::apps::apps_json(snap),
    }
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
fn worker_line(w: &WorkerSnapshot) -> String {
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
fn interface_line(i: &InterfaceSnapshot) -> String {
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
mod tests {
    use weir_api::snapshot::StatsKind;
    use weir_xdp::datapath::{FramePlaces, WorkerSnapshot};

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
        let v = super::super::json::report(&config, &r, None).to_json();
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
        let v = super::super::json::report(&config, &r, None).to_json();
        assert_eq!(v["accounting"]["umem_free_or_fill"], false, "{v}");
        assert_eq!(v["accounting"]["umem_away"], 1, "{v}");
        assert!(v["accounting"].get("umem_accounted").is_none(), "{v}");
    }

    /// `weir show` in every form for the JSON tests' sample snapshot (the
    /// second one, with rates), kept from before it read the typed stats.
    #[test]
    fn show_is_byte_identical_to_the_recorded_one() {
        let (config, first) = crate::json::tests::sample(1);
        let (_, second) = crate::json::tests::sample(3);
        let snap = crate::json::stats(&config, &second, Some(&first), StatsKind::Stats);
        let mut got = String::new();
        for what in [ShowWhat::Class, ShowWhat::Qdisc, ShowWhat::Filter] {
            for stats in [false, true] {
                got += &format!("== {what:?} stats={stats}\n");
                got += &show(&config, &snap, what, stats, &Default::default());
                let v = show_json(&config, &snap, what, stats, &Default::default());
                got += &serde_json::to_string_pretty(&v).expect("encodes");
                got += "\n";
            }
        }
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/show.txt");
        if std::env::var_os("WEIR_RECORD_GOLDEN").is_some() {
            std::fs::write(path, &got).expect("write golden");
        }
        let want = std::fs::read_to_string(path).expect("golden file");
        assert!(got == want, "weir show changed:\n{got}");
    }

    /// Apps do not leak into `weir show class|qdisc|filter`: with apps on
    /// two trees the output is the recorded one, byte for byte.
    #[test]
    fn show_of_classes_is_unchanged_by_apps() {
        let (config, first) = crate::json::tests::sample(1);
        let (_, plain) = crate::json::tests::sample(3);
        let (_, with_apps) = crate::json::tests::sample_apps(3);
        let a = crate::json::stats(&config, &plain, Some(&first), StatsKind::Stats);
        let b = crate::json::stats(&config, &with_apps, Some(&first), StatsKind::Stats);
        for what in [ShowWhat::Class, ShowWhat::Qdisc, ShowWhat::Filter] {
            for stats in [false, true] {
                assert_eq!(
                    show(&config, &a, what, stats, &Default::default()),
                    show(&config, &b, what, stats, &Default::default())
                );
                assert_eq!(
                    show_json(&config, &a, what, stats, &Default::default()),
                    show_json(&config, &b, what, stats, &Default::default())
                );
            }
        }
        let text = snapshot(&config, &plain, Some(&first));
        assert_eq!(text, snapshot(&config, &with_apps, Some(&first)));
    }

    /// Two flows of tree `up` as a worker answers them: a voice flow over
    /// IPv4 decided by port, an IPv6 flow with no app yet.
    fn sample_flows() -> weir_xdp::datapath::TopFlows {
        use weir_dataplane::flow::{Decided, FlowKey};
        use weir_dataplane::remark::Remark;
        use weir_xdp::datapath::{FlowRow, TopFlows};
        let v4 = |a: u32| 0xffff_0000_0000u128 | u128::from(a);
        let (voice, _) = FlowKey::new((v4(0xc612_0001), 12000), (v4(0xc612_0102), 12001), 17);
        let (web, _) = FlowKey::new(
            (0x2001_0db8 << 96 | 1, 443),
            (0x2001_0db8 << 96 | 2, 50000),
            6,
        );
        TopFlows {
            tree: "up".into(),
            at_ns: 5_000_000_000,
            walked: 12,
            matched: 12,
            capacity: 65536,
            flows: vec![
                FlowRow {
                    key: voice,
                    app: Some("voice".into()),
                    class: Some(1),
                    remark: Some(Remark::Set(46)),
                    decided: Decided::Port,
                    packets: 500,
                    bytes: 101_000,
                    age_ns: 4_990_000_000,
                    idle_ns: 3_000_000,
                    avg_size: 202,
                    rate: 20_200,
                },
                FlowRow {
                    key: web,
                    app: None,
                    class: None,
                    remark: None,
                    decided: Decided::Undecided,
                    packets: 2,
                    bytes: 140,
                    age_ns: 0,
                    idle_ns: 1_500_000_000,
                    avg_size: 70,
                    rate: 0,
                },
            ],
        }
    }

    /// `weir show apps` and `weir show flows`, text and JSON, for the
    /// apps sample and [`sample_flows`].
    #[test]
    fn show_apps_and_flows_are_byte_identical_to_the_recorded_ones() {
        let (config, snap) = crate::json::tests::sample_apps(1);
        let stats = crate::json::stats(&config, &snap, None, StatsKind::Stats);
        let mut got = String::from("== apps\n");
        got += &show(&config, &stats, ShowWhat::Apps, false, &Default::default());
        got += &serde_json::to_string_pretty(&show_json(
            &config,
            &stats,
            ShowWhat::Apps,
            false,
            &Default::default(),
        ))
        .expect("encodes");
        got += "\n== flows\n";
        let flows = [crate::apps::tree_flows(
            config.tree("up"),
            &sample_flows(),
            weir_api::FlowsBy::Rate,
        )];
        got += &crate::apps::flows_text(&flows);
        got += &serde_json::to_string_pretty(&flows).expect("encodes");
        got += "\n";
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/show-apps.txt");
        if std::env::var_os("WEIR_RECORD_GOLDEN").is_some() {
            std::fs::write(path, &got).expect("write golden");
        }
        let want = std::fs::read_to_string(path).expect("golden file");
        assert!(got == want, "weir show apps/flows changed:\n{got}");
        // What the golden file must say, so recording it cannot hide a
        // wrong value.
        for line in [
            "tree up apps 3",
            "app voice class 1:10 (high) remark ef",
            " Sent 16000 bytes 100 pkt (dropped 1) flows 1",
            "app bulk class 1:30 (low) remark cs1 if-unmarked",
            "tree ghost apps 1",
            "app voice class ? remark ef",
            "flows 12 capacity 65536 inserted 40 expired 28 evicted idle 3 pressure 9 hits 1200",
            "decided port 11 tls-sni 21 quic-sni 31 http-host 41 behaviour 51 peer 61 none 71",
            "tree up flows 12 matched 12 capacity 65536 top 2 by rate",
            "flow udp 198.18.0.1:12000 198.18.1.2:12001 app voice class 1:10 (high) remark ef how port",
            " rate 161600bit Sent 101000 bytes 500 pkt age 5s idle 3ms avg 202b",
            "flow tcp [2001:db8::1]:443 [2001:db8::2]:50000 app none how undecided",
        ] {
            assert!(got.lines().any(|l| l == line), "no {line:?} in:\n{got}");
        }
        assert!(
            !got.contains("tree down"),
            "a tree without apps is left out"
        );
    }
}
