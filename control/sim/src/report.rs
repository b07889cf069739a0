//! What a simulation run reports, and its table form.
//!
//! Everything is integers (bits/s, bytes, ns) so that a report compares
//! exactly (`==`) between runs: the determinism test relies on it.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::units::fmt_rate;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    pub tree: String,
    pub seed: u64,
    pub duration_ns: u64,
    /// Rates and sojourn percentiles cover [warmup, duration).
    pub warmup_ns: u64,
    /// Width of the per-class timeline buckets (0: none kept).
    pub timeline_bucket_ns: u64,
    pub classes: Vec<ClassReport>,
    pub sources: Vec<SourceReport>,
    /// Per app of the tree (none: the key is left out).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub apps: Vec<AppReport>,
    pub frames: FrameReport,
    pub engine: EngineReport,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Volume {
    pub packets: u64,
    /// Frame bytes (L2 header included, FCS excluded).
    pub bytes: u64,
}

/// One app over the whole run (its counters from the shaper's apps engine:
/// flows that got the app, and their packets and bytes as they entered the
/// tree, warm-up included).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AppReport {
    pub name: String,
    /// The class label.
    pub class: String,
    pub flows: u64,
    pub packets: u64,
    pub bytes: u64,
    pub drops: u64,
}

/// Time from enqueue to dequeue, over packets dequeued in the measured
/// window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Sojourn {
    pub samples: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
    pub mean_ns: u64,
}

/// One class (leaf or inner; an inner class aggregates its subtree).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClassReport {
    /// Index in the tree (the config's class order).
    pub index: u32,
    pub label: String,
    pub parent: Option<u32>,
    pub leaf: bool,
    /// Leaf qdisc kind (tc name).
    pub qdisc: Option<String>,
    pub prio: u8,
    pub rate_bps: u64,
    pub ceil_bps: u64,
    /// Bytes.
    pub burst: u32,
    pub cburst: u32,
    /// Whole run: what was classified to the class (or its subtree).
    pub offered: Volume,
    pub sent: Volume,
    pub dropped: Volume,
    /// Measured window, in bytes as HTB charges them (frame length plus the
    /// tree's overhead, at least mpu).
    pub offered_bps: u64,
    pub achieved_bps: u64,
    /// Drops by reason (snake_case names), whole run.
    pub drops: BTreeMap<String, u64>,
    pub ce_marks: u64,
    pub sojourn: Option<Sojourn>,
    /// Largest frame sent.
    pub max_packet: u32,
    /// Smallest token bucket (bytes, charged) at `ceil` that every send of
    /// the whole run conforms to: over any window W, bytes sent ≤ ceil·W +
    /// this. HTB promises at most cburst + one packet.
    pub max_burst_at_ceil: u64,
    /// The shaper's own counters for the class (`tc -s class show`).
    pub htb: Option<HtbClassReport>,
    /// Bytes (charged) sent per bucket, whole run. Not in the JSON output.
    #[serde(skip)]
    pub timeline: Timeline,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct HtbClassReport {
    pub bytes: u64,
    pub packets: u64,
    pub drops: u64,
    pub overlimits: u64,
    pub lends: u64,
    pub borrows: u64,
    pub giants: u64,
    pub backlog_packets: u32,
}

/// Bytes sent per fixed-width time bucket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Timeline {
    pub bucket_ns: u64,
    pub bytes: Vec<u64>,
}

impl Timeline {
    /// Most bytes sent in any run of consecutive buckets spanning `window_ns`
    /// (rounded down to whole buckets, at least one). Returns (bytes, the
    /// window actually used in ns).
    pub fn max_window_bytes(&self, window_ns: u64) -> (u64, u64) {
        if self.bucket_ns == 0 || self.bytes.is_empty() {
            return (0, 0);
        }
        let k = ((window_ns / self.bucket_ns).max(1) as usize).min(self.bytes.len());
        let mut sum: u64 = self.bytes[..k].iter().sum();
        let mut best = sum;
        for i in k..self.bytes.len() {
            sum = sum + self.bytes[i] - self.bytes[i - k];
            best = best.max(sum);
        }
        (best, k as u64 * self.bucket_ns)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SourceReport {
    pub name: String,
    pub kind: String,
    pub flows: u32,
    /// Labels of the classes its flows were classified to.
    pub classes: Vec<String>,
    pub offered: Volume,
    pub sent: Volume,
    pub dropped: Volume,
    /// Measured window, frame bytes.
    pub offered_bps: u64,
    pub achieved_bps: u64,
    /// tcp: L4 payload delivered in the measured window (lost packets are
    /// never retransmitted, so they are lost goodput).
    pub goodput_bps: Option<u64>,
    pub drops: BTreeMap<String, u64>,
    pub ce_marks: u64,
    /// Frames the shaper gave no class: dropped as malformed, or by a drop
    /// filter (`drops` says which).
    pub unclassified: u64,
    pub sojourn: Option<Sojourn>,
    pub tcp: Option<TcpReport>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TcpReport {
    pub connections: u32,
    /// Times a window was halved (once per window of data at most).
    pub window_reductions: u64,
    /// Loss notices received.
    pub losses: u64,
    /// ACKs that echoed a CE mark.
    pub ce_echoes: u64,
    /// Σ cwnd (packets) over the connections at the end of the run.
    pub final_cwnd_sum: u64,
}

/// Frame accounting of the shaper at the end of the run:
/// `received == sent + dropped_total + queued`, and it matches what the
/// simulator itself offered, saw sent and saw dropped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FrameReport {
    pub received: u64,
    pub sent: u64,
    pub dropped: BTreeMap<String, u64>,
    pub dropped_total: u64,
    pub queued: u64,
    pub balanced: bool,
}

/// How the event loop ran (deterministic, unlike wall time).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EngineReport {
    /// Source emissions and TCP wake-ups handled.
    pub events: u64,
    /// Distinct instants the loop stopped at.
    pub wakeups: u64,
    /// Wake-ups at which the shaper released nothing.
    pub idle_wakeups: u64,
    /// Times the shaper said "not yet" but gave a deadline not in the
    /// future (the loop then steps 1 ns). Should be 0.
    pub stalls: u64,
}

fn mbit(bps: u64) -> String {
    weir_config::units::fmt_mbit(bps, 3)
}

fn ms(ns: u64) -> String {
    weir_config::units::fmt_ms(ns, 3)
}

fn soj(s: &Option<Sojourn>) -> [String; 3] {
    match s {
        Some(s) => [ms(s.p50_ns), ms(s.p99_ns), ms(s.max_ns)],
        None => ["-".into(), "-".into(), "-".into()],
    }
}

fn write_rows(
    out: &mut fmt::Formatter<'_>,
    rows: &[Vec<String>],
    right_from: usize,
) -> fmt::Result {
    out.write_str(&weir_config::units::columns(rows, right_from))
}

impl Report {
    /// The human-readable form `weir simulate` prints: a table per class and
    /// per source, then the frame accounting. Rendering only, no I/O, so
    /// every front end (and the tests) show the same table; the JSON form is
    /// the report's own `Serialize`.
    pub fn table(&self) -> Table<'_> {
        Table(self)
    }
}

/// [`Report::table`]: formats as the table (`to_string()`, or `{}` straight
/// into a writer).
pub struct Table<'a>(&'a Report);

impl fmt::Display for Table<'_> {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        let report = self.0;
        writeln!(
            out,
            "tree {}: {:.3} s simulated (measured from {:.3} s), seed {}",
            report.tree,
            report.duration_ns as f64 / 1e9,
            report.warmup_ns as f64 / 1e9,
            report.seed
        )?;
        writeln!(out)?;
        let mut rows = vec![[
            "class", "qdisc", "rate", "ceil", "offered", "achieved", "drops", "marks", "p50",
            "p99", "max",
        ]
        .map(String::from)
        .to_vec()];
        rows.push(
            ["", "", "", "", "Mbit/s", "Mbit/s", "", "", "ms", "ms", "ms"]
                .map(String::from)
                .to_vec(),
        );
        for c in &report.classes {
            let depth = {
                let mut d = 0;
                let mut p = c.parent;
                while let Some(i) = p {
                    d += 1;
                    p = report.classes.get(i as usize).and_then(|x| x.parent);
                }
                d
            };
            let [p50, p99, max] = soj(&c.sojourn);
            rows.push(vec![
                format!("{}{}", "  ".repeat(depth), c.label),
                c.qdisc.clone().unwrap_or_default(),
                fmt_rate(c.rate_bps),
                fmt_rate(c.ceil_bps),
                mbit(c.offered_bps),
                mbit(c.achieved_bps),
                c.dropped.packets.to_string(),
                c.ce_marks.to_string(),
                p50,
                p99,
                max,
            ]);
        }
        write_rows(out, &rows, 2)?;
        writeln!(out)?;
        let mut rows = vec![[
            "source", "kind", "classes", "offered", "achieved", "goodput", "drops", "marks", "p50",
            "p99", "max",
        ]
        .map(String::from)
        .to_vec()];
        rows.push(
            [
                "", "", "", "Mbit/s", "Mbit/s", "Mbit/s", "", "", "ms", "ms", "ms",
            ]
            .map(String::from)
            .to_vec(),
        );
        for s in &report.sources {
            let [p50, p99, max] = soj(&s.sojourn);
            rows.push(vec![
                s.name.clone(),
                s.kind.clone(),
                if s.classes.is_empty() {
                    "-".into()
                } else {
                    s.classes.join(",")
                },
                mbit(s.offered_bps),
                mbit(s.achieved_bps),
                s.goodput_bps.map_or("-".into(), mbit),
                s.dropped.packets.to_string(),
                s.ce_marks.to_string(),
                p50,
                p99,
                max,
            ]);
        }
        write_rows(out, &rows, 3)?;
        writeln!(out)?;
        if !report.apps.is_empty() {
            let mut rows = vec![vec![
                "app".to_string(),
                "class".to_string(),
                "flows".to_string(),
                "packets".to_string(),
                "bytes".to_string(),
                "drops".to_string(),
            ]];
            for a in &report.apps {
                rows.push(vec![
                    a.name.clone(),
                    a.class.clone(),
                    a.flows.to_string(),
                    a.packets.to_string(),
                    a.bytes.to_string(),
                    a.drops.to_string(),
                ]);
            }
            write_rows(out, &rows, 2)?;
            writeln!(out)?;
        }
        let f = &report.frames;
        let reasons: Vec<String> = f.dropped.iter().map(|(k, v)| format!("{k} {v}")).collect();
        writeln!(
            out,
            "frames: received {} = sent {} + dropped {}{} + queued {} ({})",
            f.received,
            f.sent,
            f.dropped_total,
            if reasons.is_empty() {
                String::new()
            } else {
                format!(" ({})", reasons.join(", "))
            },
            f.queued,
            if f.balanced { "balanced" } else { "UNBALANCED" }
        )?;
        if report.engine.stalls > 0 {
            writeln!(
                out,
                "warning: the shaper gave {} deadlines that were not in the future",
                report.engine.stalls
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_slides_over_buckets() {
        let t = Timeline {
            bucket_ns: 1_000_000,
            bytes: vec![1, 5, 2, 9, 1, 0],
        };
        assert_eq!(t.max_window_bytes(1_000_000), (9, 1_000_000));
        assert_eq!(t.max_window_bytes(2_000_000), (11, 2_000_000));
        assert_eq!(t.max_window_bytes(2_500_000), (11, 2_000_000));
        assert_eq!(t.max_window_bytes(3_000_000), (16, 3_000_000));
        assert_eq!(t.max_window_bytes(100_000_000), (18, 6_000_000));
        assert_eq!(t.max_window_bytes(1), (9, 1_000_000));
        assert_eq!(Timeline::default().max_window_bytes(1), (0, 0));
    }
}
