//! The stats object of a running weir, typed: one value that `weir run
//! --json` prints (stats lines and the final report, `--report FILE`), the
//! operator API's `stats` answer carries, the metrics endpoint encodes and
//! `weir top` shows. A field renamed here is renamed for all of them, and a
//! reader that gets something else fails to decode instead of reading 0.
//!
//! Key names are tc's where tc has one (`bytes`, `packets`, `drops`,
//! `overlimits`, `backlog`, `qlen`, `lended`, `borrowed`, `tokens`,
//! `ctokens`); rates are bytes per second as in `tc -j`, plus `rate_est` in
//! bits per second measured between two dumps. The schema is documented in
//! docs/operations.md.
//!
//! Fields are declared in the order a reader looks for them; the JSON
//! lists every object's keys sorted, as it always has (serde_json's map),
//! so [`Stats::to_json`] goes through a [`serde_json::Value`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One stats dump or the final report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    #[serde(rename = "type")]
    pub kind: StatsKind,
    /// CLOCK_MONOTONIC ns of the snapshot.
    pub at_ns: u64,
    pub trees: Vec<TreeStats>,
    pub workers: Vec<WorkerStats>,
    pub interfaces: Vec<InterfaceStats>,
    pub accounting: Accounting,
    /// The report only: per tree, frames still queued when the stop came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_at_stop: Option<BTreeMap<String, u64>>,
    /// What the control thread knows besides the data path; in the API's
    /// and the metrics' stats, not in `--json` lines.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub control: Option<ControlStats>,
}

/// Which dump: `"stats"` (periodic, SIGUSR1, the API) or `"report"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatsKind {
    Stats,
    Report,
}

/// The SLA rules open now and the history database's health.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ControlStats {
    pub sla_open: Vec<SlaOpen>,
    /// None (null) when no history database is open.
    pub history: Option<HistoryHealth>,
}

/// An SLA rule whose condition holds now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaOpen {
    pub rule: String,
    pub since_ns: u64,
}

/// The history writer's counters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryHealth {
    pub written: u64,
    pub dropped: u64,
    pub write_errors: u64,
    pub last_error: Option<String>,
    pub db_bytes: u64,
}

/// One tree (one direction of a pair).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TreeStats {
    pub name: String,
    pub pair: String,
    pub direction: Direction,
    pub worker: usize,
    /// The worker's core; None when unpinned.
    pub core: Option<usize>,
    pub frames: FrameStats,
    /// How long sent packets waited in the tree.
    pub sojourn: Histogram,
    pub classes: Vec<ClassStats>,
    /// The tree's apps (`[[tree.T.app]]`); absent for a tree without
    /// apps, so the stats of such trees are as they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apps: Option<AppsStats>,
    /// The tree's drop filters (`action = "drop"`), in evaluation order,
    /// and what each dropped; absent for a tree without them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drop_filters: Vec<DropFilterStats>,
}

/// One drop filter of a tree (`action = "drop"`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropFilterStats {
    /// Its place among the tree's filters, in evaluation order (0 first).
    pub index: u32,
    /// tc `prio` (`pref` in `tc filter show`).
    pub pref: u16,
    /// What it matches, as `weir show filter` writes it.
    #[serde(rename = "match")]
    pub matches: String,
    /// Frames it dropped.
    pub dropped: u64,
}

/// A tree's apps: per app, and the engine and flow table behind them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppsStats {
    /// In configuration order.
    pub apps: Vec<AppStats>,
    pub table: FlowTableStats,
    pub engine: AppEngineStats,
}

/// One app: its configuration and counters since the tree was built.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppStats {
    pub name: String,
    /// The classid of its class; null when the configuration in force does
    /// not know the tree.
    pub class: Option<String>,
    /// Its class's name, if it has one.
    pub class_name: Option<String>,
    /// `ef`, `cs1 if-unmarked`, `wash`, or null: what its packets' DSCP
    /// becomes on the way out.
    pub remark: Option<String>,
    /// Flows that got the app (a flow moved away and back counts twice).
    pub flows: u64,
    /// Its flows' packets and bytes as they entered the tree.
    pub packets: u64,
    pub bytes: u64,
    /// Its packets the tree dropped.
    pub drops: u64,
}

/// The tree's flow table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowTableStats {
    /// Flows in the table now, and how many it can hold.
    pub live: u64,
    pub capacity: u64,
    /// Packets of a flow the table held.
    pub hits: u64,
    /// Flows started.
    pub inserted: u64,
    /// Flows removed after the idle timeout.
    pub expired: u64,
    /// Flows whose way a new flow took: idle past the timeout, or live
    /// (the table is too small for the load).
    pub evicted_idle: u64,
    pub evicted_pressure: u64,
}

/// The apps engine's own counters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppEngineStats {
    /// Decisions by how they were made: `port`, `tls-sni`, `quic-sni`,
    /// `http-host`, `behaviour`, `peer` (learned from the other
    /// direction), `none` (no rule matched); every one listed.
    pub decided: BTreeMap<String, u64>,
    /// Packets of flows without an app (undecided or decided as none).
    pub unmatched_packets: u64,
    /// Flows a bulk or long-lived rule moved, and moved back.
    pub moved: u64,
    pub returned: u64,
    /// Decisions of the other direction applied, and ignored (no app of
    /// that name here, or a better decision of its own).
    pub learned: u64,
    pub learn_ignored: u64,
    /// Server names read (TLS, QUIC, HTTP).
    pub names: u64,
    /// First flights that found every reassembly slot taken (the flow was
    /// decided without its name).
    pub inspect_full: u64,
}

/// `weir show flows`: the top flows of one tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeFlows {
    pub tree: String,
    /// `rate` or `bytes`.
    pub by: String,
    /// Flows in the table when walked, those of the app asked for, and
    /// how many it can hold.
    pub walked: u64,
    pub matched: u64,
    pub capacity: u64,
    /// Best first.
    pub flows: Vec<FlowStats>,
}

/// One flow: its endpoints in a fixed order (the lower address first),
/// so both directions of a connection are one flow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowStats {
    /// `tcp`, `udp`, or the IP protocol number.
    pub protocol: String,
    pub src: String,
    pub sport: u16,
    pub dst: String,
    pub dport: u16,
    /// Null while the flow has no app.
    pub app: Option<String>,
    pub class: Option<String>,
    pub class_name: Option<String>,
    pub remark: Option<String>,
    /// How its app was decided (`undecided`, `port`, `tls-sni`, …).
    pub how: String,
    /// Bytes per second: the rate of the flow's last closed bulk window
    /// once one has closed, before that bytes over its age.
    pub rate: u64,
    /// This tree's direction of the flow.
    pub packets: u64,
    pub bytes: u64,
    pub age_ns: u64,
    pub idle_ns: u64,
    pub avg_size: u32,
}

/// `"upload"`: inside → outside; `"download"`: outside → inside.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Upload,
    Download,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::Upload => "upload",
            Direction::Download => "download",
        }
    }
}

/// A tree's frame counters: `received == sent + dropped_total + queued`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameStats {
    pub received: u64,
    pub sent: u64,
    /// By drop reason (`queue_limit`, `flushed`, …), every reason listed.
    pub dropped: BTreeMap<String, u64>,
    pub dropped_total: u64,
    pub queued: u64,
    pub malformed_seen: u64,
    pub balanced: bool,
}

/// A log2 histogram of durations: totals, quantiles as the upper bound of
/// their bucket, and the buckets (bucket i: up to 2^i - 1 ns). A quantile
/// is null when the histogram is empty or the quantile falls in the
/// open-ended last bucket (u64::MAX does not survive a JSON reader's
/// doubles).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    pub count: u64,
    pub sum_ns: u64,
    pub p50_ns_at_most: Option<u64>,
    pub p99_ns_at_most: Option<u64>,
    pub max_ns_at_most: Option<u64>,
    pub buckets: Vec<u64>,
}

/// One HTB class: its configuration (null when the configuration in force
/// does not know the tree) and its counters, as `tc -s class show`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassStats {
    pub classid: Option<String>,
    pub name: Option<String>,
    pub parent: Option<String>,
    pub leaf: bool,
    /// Bytes per second.
    pub rate: Option<u64>,
    pub ceil: Option<u64>,
    pub prio: Option<u8>,
    pub bytes: u64,
    pub packets: u64,
    pub drops: u64,
    pub overlimits: u64,
    /// Bytes queued.
    pub backlog: u64,
    /// Packets queued.
    pub qlen: u32,
    pub lended: u64,
    pub borrowed: u64,
    pub giants: u64,
    /// Rate bucket level, ns of credit (negative: in debt).
    pub tokens: i64,
    /// Ceil bucket level, ns of credit.
    pub ctokens: i64,
    /// Measured since the previous dump, bits and packets per second; null
    /// in the first one.
    pub rate_est: Option<u64>,
    pub pps_est: Option<u64>,
    /// The leaf's qdisc; null for inner classes.
    pub qdisc: Option<QdiscStats>,
}

/// A leaf qdisc's counters, as `tc -s qdisc show`, plus its kind's own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QdiscStats {
    /// `pfifo`, `sfq`, `red`, `fq_codel`, …; absent when the configuration
    /// in force does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub bytes: u64,
    pub packets: u64,
    pub drops: u64,
    pub overlimits: u64,
    pub backlog: u64,
    pub qlen: u32,
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub red: Option<RedStats>,
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub fq_codel: Option<FqCodelStats>,
}

/// RED's counters, with tc's folded `early` and `marked`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedStats {
    pub early: u64,
    pub marked: u64,
    pub pdrop: u64,
    pub prob_drop: u64,
    pub forced_drop: u64,
    pub prob_mark: u64,
    pub forced_mark: u64,
}

/// FQ-CoDel's counters, with tc's JSON names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FqCodelStats {
    pub maxpacket: u32,
    pub drop_overlimit: u64,
    pub new_flow_count: u64,
    pub ecn_mark: u64,
    pub new_flows_len: u32,
    pub old_flows_len: u32,
    pub ce_mark: u64,
    pub memory_used: u64,
    pub drop_overmemory: u64,
}

/// One worker thread.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerStats {
    pub index: usize,
    pub core: Option<usize>,
    pub pair: String,
    pub queue: u32,
    /// The trees it owns.
    pub trees: Vec<String>,
    /// `fifo 10`, `nice -5`, `nice 0 (not set)`, …
    pub sched: String,
    pub rtprio: u8,
    pub rtprio_asked: u8,
    pub nice: Option<i32>,
    /// How late it woke for shaper deadlines.
    pub wake_late: Histogram,
    #[serde(flatten)]
    pub counters: WorkerCounters,
    pub frames: WorkerFrames,
}

/// A worker's loop counters, monotonic since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerCounters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub batches: u64,
    pub empty_polls: u64,
    pub sleeps: u64,
    pub wakeups: u64,
    pub tx_ring_full: u64,
    pub tx_kicks: u64,
    pub fill_ring_starved: u64,
    pub handover_out: u64,
    pub handover_in: u64,
    pub handover_full_drops: u64,
    pub returns_out: u64,
    pub returns_in: u64,
    pub tx_errors: u64,
    pub bad_descs: u64,
    /// Frames whose DSCP a remark (per app, per class, or a wash)
    /// changed on the way out.
    pub remarked: u64,
    /// Decisions about flows sent to the other direction's worker,
    /// received from it, and lost to a full ring.
    pub decisions_out: u64,
    pub decisions_in: u64,
    pub decisions_lost: u64,
}

/// Where a worker's UMEM frames are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerFrames {
    pub total: u64,
    pub free: u64,
    pub fill: u64,
    pub queued: u64,
    pub tx: u64,
    pub handover: u64,
    pub lent: u64,
    /// The places add up to `total`.
    pub accounted: bool,
}

impl WorkerFrames {
    /// Frames not free: in rings, queues or hand-over.
    pub fn in_flight(&self) -> u64 {
        self.total.saturating_sub(self.free)
    }
}

/// One port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceStats {
    pub name: String,
    pub kernel: KernelCounters,
    pub xdp: XdpCounters,
    pub xsk: XskCounters,
}

/// The kernel's counters of the interface (/sys/class/net/…/statistics);
/// a counter the kernel did not give is left out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelCounters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rx_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rx_packets: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_packets: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rx_errors: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_errors: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rx_dropped: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_dropped: Option<u64>,
}

impl KernelCounters {
    /// Every counter with its /sys file name, in the order the metrics
    /// list them.
    pub fn fields(&self) -> [(&'static str, Option<u64>); 8] {
        [
            ("rx_bytes", self.rx_bytes),
            ("tx_bytes", self.tx_bytes),
            ("rx_packets", self.rx_packets),
            ("tx_packets", self.tx_packets),
            ("rx_errors", self.rx_errors),
            ("tx_errors", self.tx_errors),
            ("rx_dropped", self.rx_dropped),
            ("tx_dropped", self.tx_dropped),
        ]
    }

    /// The counter whose /sys file is `name`.
    pub fn slot(&mut self, name: &str) -> Option<&mut Option<u64>> {
        Some(match name {
            "rx_bytes" => &mut self.rx_bytes,
            "tx_bytes" => &mut self.tx_bytes,
            "rx_packets" => &mut self.rx_packets,
            "tx_packets" => &mut self.tx_packets,
            "rx_errors" => &mut self.rx_errors,
            "tx_errors" => &mut self.tx_errors,
            "rx_dropped" => &mut self.rx_dropped,
            "tx_dropped" => &mut self.tx_dropped,
            _ => return None,
        })
    }
}

/// The XDP program's counters on the interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct XdpCounters {
    pub redirected: u64,
    pub passed_no_socket: u64,
    pub passed_by_rule: u64,
    pub dropped: u64,
}

/// The kernel's statistics of the interface's AF_XDP sockets, summed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct XskCounters {
    pub rx_dropped: u64,
    pub rx_invalid_descs: u64,
    pub rx_ring_full: u64,
    pub rx_fill_ring_empty_descs: u64,
    pub tx_invalid_descs: u64,
    pub tx_ring_empty_descs: u64,
}

/// Frame totals over all trees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accounting {
    pub received: u64,
    pub sent: u64,
    pub dropped: u64,
    pub queued: u64,
    /// Every tree balances (in the report: as the stop found them).
    pub balanced: bool,
    /// Stats: every worker's frame places add up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub umem_accounted: Option<bool>,
    /// The report: every UMEM frame came back, free or in a fill ring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub umem_free_or_fill: Option<bool>,
    /// The report: UMEM frames that did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub umem_away: Option<u64>,
}

impl Stats {
    /// The JSON value, keys sorted in every object.
    pub fn to_json(&self) -> serde_json::Value {
        // Plain structs, string-keyed maps and numbers: nothing here can
        // fail to encode; were it to, the reader is told instead of getting
        // a half object.
        serde_json::to_value(self).unwrap_or_else(
            |e| serde_json::json!({ "type": "error", "error": format!("unencodable stats: {e}") }),
        )
    }

    /// The tree named `name`.
    pub fn tree(&self, name: &str) -> Option<&TreeStats> {
        self.trees.iter().find(|t| t.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `fields` and `slot` name the same eight counters, each once: what
    /// the daemon reads from /sys lands where the metrics look.
    #[test]
    fn kernel_counters_name_every_field_once() {
        let mut k = KernelCounters::default();
        for (i, (name, _)) in KernelCounters::default().fields().iter().enumerate() {
            *k.slot(name).expect("a counter") = Some(i as u64 + 1);
        }
        let got: Vec<Option<u64>> = k.fields().iter().map(|(_, v)| *v).collect();
        assert_eq!(got, (1..=8).map(Some).collect::<Vec<_>>());
        assert!(k.slot("rx_frobs").is_none());
    }

    /// Keys come out sorted in every object, flattened ones included.
    #[test]
    fn json_keys_are_sorted() {
        let q = QdiscStats {
            kind: Some("red".into()),
            bytes: 1,
            packets: 2,
            drops: 3,
            overlimits: 4,
            backlog: 5,
            qlen: 6,
            red: Some(RedStats {
                early: 7,
                marked: 8,
                pdrop: 9,
                prob_drop: 10,
                forced_drop: 11,
                prob_mark: 12,
                forced_mark: 13,
            }),
            fq_codel: None,
        };
        let v = serde_json::to_value(&q).expect("encodes");
        let keys: Vec<&String> = v.as_object().expect("an object").keys().collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert_eq!(keys.len(), 14, "{v}");
        let back: QdiscStats = serde_json::from_value(v).expect("decodes");
        assert_eq!(back, q);
    }
}
