//! `weir show class|qdisc|filter [-s] [-j]`: the running tree as `tc`
//! shows a kernel HTB tree, so that tools and people who read tc output
//! read weir's unchanged.
//!
//! Text follows iproute2's layout for the same fields, trailing spaces
//! included (checked against `tc -s class show` / `tc -s qdisc show` on
//! this project's kernel for the tree `weir tc` builds from the same
//! config):
//!
//! ```text
//! class htb 1:10 parent 1:1 leaf 100: prio 1 rate 30Mbit ceil 60Mbit burst 15000b cburst 15000b
//!  Sent 12113452 bytes 8001 pkt (dropped 120, overlimits 3321 requeues 0)
//!  rate 29998Kbit 2477pps backlog 0b 0p requeues 0
//!  lended: 7990 borrowed: 11 giants: 0
//!  tokens: 2000 ctokens: 2000
//! ```
//!
//! - rates as tc's `sprint_rate` (decimal units, `1600Mbit`, `29998Kbit`),
//!   sizes as `sprint_size` (`1600b`, `15Kb`);
//! - `tokens`/`ctokens` in the kernel's units, 64 ns ticks;
//! - leaf qdisc handles `100:`, `101:`, … in class order, as `weir tc`
//!   numbers them for a kernel twin;
//! - the ` rate … pps` part is the one tc prints for a class with a rate
//!   estimator: weir always has one (the last second).
//!
//! Differences, on purpose: classes come in configuration order (the
//! kernel's is its hash order); `tc filter show` prints u32 internals that
//! have no meaning here, so filters are shown as one line each in tc's
//! `filter parent 1: protocol ip pref N … flowid X` shape with weir's own
//! match words. JSON (`-j`) uses tc's key names; see docs/operations.md.

use std::fmt::Write as _;

use serde_json::{json, Value};
use weir_api::snapshot::{QdiscStats, TreeStats};
use weir_api::Stats;
use weir_dataplane::classify::{FilterSpec, L3Match, PortMatch};
use weir_dataplane::qdisc::{FifoLimit, QdiscParams};

/// iproute2's printers, shared with every tc-exact output.
pub use weir_config::units::{sprint_rate, sprint_size, sprint_time};
use weir_config::{Config, Tree};

/// Kernel tokens are in psched ticks of 64 ns.
const PSCHED_SHIFT: u32 = 6;

fn ticks(ns: i64) -> i64 {
    ns >> PSCHED_SHIFT
}

/// The qdisc handle `weir tc` gives leaf number `n` (0-based, class order).
/// Which classes `weir show class` lists: every class, or a class and
/// the classes under it (`--class`), or the busiest N (`--top`); with
/// 100,000 subscriber classes the whole list is rarely what is wanted.
#[derive(Clone, Debug, Default)]
pub struct Select {
    pub class: Option<String>,
    pub top: Option<usize>,
}

impl Select {
    /// The indexes to list of `tree` (whose live stats are `t`), in tree
    /// order, or busiest first with `top`.
    fn classes(&self, tree: &Tree, t: &weir_api::snapshot::TreeStats) -> Vec<usize> {
        let mut keep: Vec<usize> = match &self.class {
            None => (0..tree.classes.len()).collect(),
            Some(name) => match tree.class_index(name) {
                None => Vec::new(),
                Some(root) => {
                    // Parents come first, so one pass finds the subtree.
                    let mut inside = vec![false; tree.classes.len()];
                    inside[root as usize] = true;
                    for (i, c) in tree.classes.iter().enumerate() {
                        if let Some(p) = c.parent {
                            if inside[p as usize] {
                                inside[i] = true;
                            }
                        }
                    }
                    (0..tree.classes.len()).filter(|&i| inside[i]).collect()
                }
            },
        };
        if let Some(n) = self.top {
            let rate = |i: usize| t.classes.get(i).and_then(|c| c.rate_est).unwrap_or(0);
            // Busiest first; ties in tree order (a stable sort).
            keep.sort_by_key(|&i| std::cmp::Reverse(rate(i)));
            keep.truncate(n);
        }
        keep
    }

    /// Whether `class` names a class of some tree of `config`.
    pub fn known(&self, config: &Config) -> bool {
        self.class
            .as_deref()
            .is_none_or(|c| config.trees.iter().any(|t| t.class_index(c).is_some()))
    }
}

fn leaf_handles(tree: &Tree) -> Vec<Option<u32>> {
    let major = tree.classes.first().map_or(1, |c| c.id.major);
    let mut next = major.max(0xff) + 1;
    tree.classes
        .iter()
        .map(|c| {
            c.qdisc.as_ref().map(|_| {
                next += 1;
                next - 1
            })
        })
        .collect()
}

fn parent_of(tree: &Tree, i: usize) -> String {
    match tree.classes[i].parent {
        Some(p) => format!("parent {}", tree.classes[p as usize].id),
        None => "root".to_string(),
    }
}

/// `tc [-s] class show` for every tree in `snap`.
pub fn class_text(config: &Config, snap: &Stats, stats: bool, select: &Select) -> String {
    let mut s = String::new();
    for t in &snap.trees {
        let Some(tree) = config.tree(&t.name) else {
            continue;
        };
        let handles = leaf_handles(tree);
        for i in select.classes(tree, t) {
            let c = &tree.classes[i];
            let leaf = handles[i]
                .map(|h| format!(" leaf {h:x}:"))
                .unwrap_or_default();
            // tc prints prio for leaves (inner classes don't schedule).
            let prio = if c.is_leaf() {
                format!(" prio {}", c.prio)
            } else {
                String::new()
            };
            let _ = writeln!(
                s,
                "class htb {} {}{leaf}{prio} rate {} ceil {} burst {} cburst {} ",
                c.id,
                parent_of(tree, i),
                sprint_rate(c.rate.bits_per_sec()),
                sprint_rate(c.ceil.bits_per_sec()),
                sprint_size(c.burst.bytes()),
                sprint_size(c.cburst.bytes()),
            );
            if !stats {
                continue;
            }
            let Some(st) = t.classes.get(i) else { continue };
            let _ = writeln!(
                s,
                " Sent {} bytes {} pkt (dropped {}, overlimits {} requeues 0) ",
                st.bytes, st.packets, st.drops, st.overlimits
            );
            let (bits, pps) = (st.rate_est.unwrap_or(0), st.pps_est.unwrap_or(0));
            let _ = writeln!(
                s,
                " rate {} {pps}pps backlog {}b {}p requeues 0",
                sprint_rate(bits),
                st.backlog,
                st.qlen
            );
            let _ = writeln!(
                s,
                " lended: {} borrowed: {} giants: {}",
                st.lended, st.borrowed, st.giants
            );
            let _ = writeln!(
                s,
                " tokens: {} ctokens: {}",
                ticks(st.tokens),
                ticks(st.ctokens)
            );
            s.push('\n');
        }
    }
    s
}

fn qdisc_options(q: &QdiscParams) -> String {
    match q {
        QdiscParams::Fifo(FifoLimit::Packets(n)) => format!("limit {n}p"),
        QdiscParams::Fifo(FifoLimit::Bytes(n)) => format!("limit {}", sprint_size(*n)),
        QdiscParams::Sfq(p) => format!(
            "limit {}p quantum {} depth {} divisor {} perturb {}sec ",
            p.limit,
            sprint_size(u64::from(p.quantum)),
            p.depth,
            p.divisor,
            p.perturb_ns / 1_000_000_000
        ),
        QdiscParams::Red(p) => {
            let mut s = format!(
                "limit {} min {} max {} ",
                sprint_size(u64::from(p.limit)),
                sprint_size(u64::from(p.min)),
                sprint_size(u64::from(p.max))
            );
            for (on, w) in [
                (p.ecn, "ecn "),
                (p.harddrop, "harddrop "),
                (p.adaptive, "adaptive "),
            ] {
                if on {
                    s.push_str(w);
                }
            }
            s
        }
        QdiscParams::FqCodel(p) => format!(
            "limit {}p flows {} quantum {} target {} interval {} memory_limit {} {}drop_batch {} ",
            p.limit,
            p.flows,
            p.quantum,
            sprint_time(p.target_ns),
            sprint_time(p.interval_ns),
            sprint_size(p.memory_limit),
            if p.ecn { "ecn " } else { "" },
            p.drop_batch_size
        ),
    }
}

fn stats_lines(
    s: &mut String,
    bytes: u64,
    packets: u64,
    drops: u64,
    overlimits: u64,
    backlog: (u64, u32),
) {
    let _ = writeln!(
        s,
        " Sent {bytes} bytes {packets} pkt (dropped {drops}, overlimits {overlimits} requeues 0) "
    );
    let _ = writeln!(s, " backlog {}b {}p requeues 0", backlog.0, backlog.1);
}

fn kind_lines(s: &mut String, q: &QdiscStats) {
    if let Some(r) = q.red {
        // tc's `other`: drops for other reasons, none in weir's RED.
        let _ = writeln!(
            s,
            "  marked {} early {} pdrop {} other 0",
            r.marked, r.early, r.pdrop
        );
    }
    if let Some(f) = q.fq_codel {
        let _ = writeln!(
            s,
            "  maxpacket {} drop_overlimit {} new_flow_count {} ecn_mark {}",
            f.maxpacket, f.drop_overlimit, f.new_flow_count, f.ecn_mark
        );
        let _ = writeln!(
            s,
            "  new_flows_len {} old_flows_len {}",
            f.new_flows_len, f.old_flows_len
        );
    }
}

/// The leaf qdisc of class `i`, when it has one.
fn leaf_qdisc(t: &TreeStats, i: usize) -> Option<&QdiscStats> {
    t.classes.get(i)?.qdisc.as_ref()
}

fn root_totals(t: &TreeStats) -> (u64, u64, u64, u64) {
    let sent: (u64, u64) = t
        .classes
        .iter()
        .filter_map(|c| c.qdisc.as_ref())
        .fold((0, 0), |(b, p), q| (b + q.bytes, p + q.packets));
    let overlimits = t.classes.iter().map(|c| c.overlimits).sum();
    (sent.0, sent.1, t.frames.dropped_total, overlimits)
}

/// `tc [-s] qdisc show` for every tree in `snap`.
pub fn qdisc_text(config: &Config, snap: &Stats, stats: bool) -> String {
    let mut s = String::new();
    for t in &snap.trees {
        let Some(tree) = config.tree(&t.name) else {
            continue;
        };
        let major = tree.classes.first().map_or(1, |c| c.id.major);
        let default = tree
            .classes
            .get(tree.default_class as usize)
            .map_or(0, |c| c.id.minor);
        let _ = writeln!(
            s,
            "qdisc htb {major:x}: root refcnt 2 r2q {} default {default:#x} direct_packets_stat 0 direct_qlen 1000",
            tree.r2q
        );
        if stats {
            let (bytes, packets, drops, overlimits) = root_totals(t);
            let backlog: (u64, u32) = t
                .classes
                .iter()
                .zip(&tree.classes)
                .filter(|(_, c)| c.is_leaf())
                .fold((0, 0), |(b, p), (st, _)| (b + st.backlog, p + st.qlen));
            stats_lines(&mut s, bytes, packets, drops, overlimits, backlog);
        }
        let handles = leaf_handles(tree);
        for (i, c) in tree.classes.iter().enumerate() {
            let (Some(q), Some(h)) = (&c.qdisc, handles[i]) else {
                continue;
            };
            let _ = writeln!(
                s,
                "qdisc {} {h:x}: parent {} {}",
                q.kind(),
                c.id,
                qdisc_options(q)
            );
            if let (true, Some(st)) = (stats, leaf_qdisc(t, i)) {
                stats_lines(
                    &mut s,
                    st.bytes,
                    st.packets,
                    st.drops,
                    st.overlimits,
                    (st.backlog, st.qlen),
                );
                kind_lines(&mut s, st);
            }
        }
    }
    s
}

fn port_words(what: &str, m: &PortMatch) -> String {
    match m {
        PortMatch::Range { lo, hi } if lo == hi => format!(" {what} {lo}"),
        PortMatch::Range { lo, hi } => format!(" {what} {lo}-{hi}"),
        PortMatch::Masked { value, mask } => format!(" {what} {value:#06x}/{mask:#06x}"),
    }
}

pub(crate) fn match_words(f: &FilterSpec) -> String {
    let mut m = String::new();
    if let Some(v) = f.vlan {
        let _ = write!(m, " vlan {v}");
    }
    if let Some((v, mask)) = f.tos {
        let _ = write!(m, " tos {v:#04x}/{mask:#04x}");
    }
    if let Some(p) = f.ip_proto {
        let _ = write!(m, " ip_proto {p}");
    }
    for (what, p) in [("src", &f.src), ("dst", &f.dst)] {
        if let Some(p) = p {
            let addr = if p.v6 {
                std::net::Ipv6Addr::from(p.addr).to_string()
            } else {
                std::net::Ipv4Addr::from(p.addr as u32).to_string()
            };
            let _ = write!(m, " {what} {addr}/{}", p.len);
        }
    }
    if let Some(p) = &f.sport {
        m.push_str(&port_words("sport", p));
    }
    if let Some(p) = &f.dport {
        m.push_str(&port_words("dport", p));
    }
    if m.is_empty() {
        m.push_str(" all");
    }
    m
}

/// `tc filter show`, weir style (see the module doc).
pub fn filter_text(config: &Config, snap: &Stats) -> String {
    let mut s = String::new();
    for t in &snap.trees {
        let Some(tree) = config.tree(&t.name) else {
            continue;
        };
        let major = tree.classes.first().map_or(1, |c| c.id.major);
        for (index, f) in tree.filters.iter().enumerate() {
            let proto = match f.spec.l3 {
                L3Match::Ipv4 => "ip".to_string(),
                L3Match::Ipv6 => "ipv6".to_string(),
                L3Match::Any => "all".to_string(),
                L3Match::EtherType(e) => format!("{e:#06x}"),
            };
            // A drop filter says what it dropped, as tc's gact action does.
            let target = match f.class() {
                Some(c) => format!("flowid {}", tree.classes[c as usize].id),
                None => {
                    let dropped = t
                        .drop_filters
                        .iter()
                        .find(|d| d.index as usize == index)
                        .map_or(0, |d| d.dropped);
                    format!("action drop (dropped {dropped} pkt)")
                }
            };
            let _ = writeln!(
                s,
                "filter parent {major:x}: protocol {proto} pref {} weir{} {target}",
                f.prio,
                match_words(&f.spec),
            );
        }
    }
    s
}

/// `-j`: classes as tc's JSON would name them.
pub fn class_json(config: &Config, snap: &Stats, stats: bool, select: &Select) -> Value {
    let mut out = Vec::new();
    for t in &snap.trees {
        let Some(tree) = config.tree(&t.name) else {
            continue;
        };
        let handles = leaf_handles(tree);
        for i in select.classes(tree, t) {
            let c = &tree.classes[i];
            let mut v = json!({
                "class": "htb",
                "handle": c.id.to_string(),
                "weir_tree": t.name,
                "rate": c.rate.bytes_per_sec(),
                "ceil": c.ceil.bytes_per_sec(),
                "burst": c.burst.bytes(),
                "cburst": c.cburst.bytes(),
            });
            match c.parent {
                Some(p) => v["parent"] = json!(tree.classes[p as usize].id.to_string()),
                None => v["root"] = json!(true),
            }
            if let Some(h) = handles[i] {
                v["leaf"] = json!(format!("{h:x}:"));
                v["prio"] = json!(c.prio);
            }
            if let Some(n) = &c.name {
                v["weir_name"] = json!(n);
            }
            if let (true, Some(st)) = (stats, t.classes.get(i)) {
                let (bits, pps) = (st.rate_est.unwrap_or(0), st.pps_est.unwrap_or(0));
                v["stats"] = json!({
                    "bytes": st.bytes, "packets": st.packets, "drops": st.drops,
                    "overlimits": st.overlimits, "requeues": 0,
                    "backlog": st.backlog, "qlen": st.qlen,
                    "rate": bits / 8, "pps": pps,
                });
                v["xstats"] = json!({
                    "lended": st.lended, "borrowed": st.borrowed, "giants": st.giants,
                    "tokens": ticks(st.tokens), "ctokens": ticks(st.ctokens),
                });
            }
            out.push(v);
        }
    }
    Value::Array(out)
}

/// `-j` for qdiscs: tc's qdisc JSON layout.
pub fn qdisc_json(config: &Config, snap: &Stats, stats: bool) -> Value {
    let mut out = Vec::new();
    for t in &snap.trees {
        let Some(tree) = config.tree(&t.name) else {
            continue;
        };
        let major = tree.classes.first().map_or(1, |c| c.id.major);
        let default = tree
            .classes
            .get(tree.default_class as usize)
            .map_or(0, |c| c.id.minor);
        let mut root = json!({
            "kind": "htb", "handle": format!("{major:x}:"), "root": true, "refcnt": 2,
            "weir_tree": t.name,
            "options": {"r2q": tree.r2q, "default": format!("{default:#x}"),
                        "direct_packets_stat": 0, "direct_qlen": 1000},
        });
        if stats {
            let (bytes, packets, drops, overlimits) = root_totals(t);
            let m = root.as_object_mut().expect("object");
            for (k, v) in [
                ("bytes", bytes),
                ("packets", packets),
                ("drops", drops),
                ("overlimits", overlimits),
                ("requeues", 0),
                (
                    "backlog",
                    t.classes
                        .iter()
                        .zip(&tree.classes)
                        .filter(|(_, c)| c.is_leaf())
                        .map(|(s, _)| s.backlog)
                        .sum(),
                ),
                ("qlen", t.frames.queued),
            ] {
                m.insert(k.into(), json!(v));
            }
        }
        out.push(root);
        let handles = leaf_handles(tree);
        for (i, c) in tree.classes.iter().enumerate() {
            let (Some(q), Some(h)) = (&c.qdisc, handles[i]) else {
                continue;
            };
            let mut v = json!({
                "kind": q.kind(), "handle": format!("{h:x}:"), "parent": c.id.to_string(),
                "weir_tree": t.name,
                "options": options_json(q),
            });
            if let (true, Some(st)) = (stats, leaf_qdisc(t, i)) {
                let m = v.as_object_mut().expect("object");
                m.insert("bytes".into(), json!(st.bytes));
                m.insert("packets".into(), json!(st.packets));
                m.insert("drops".into(), json!(st.drops));
                m.insert("overlimits".into(), json!(st.overlimits));
                m.insert("requeues".into(), json!(0));
                m.insert("backlog".into(), json!(st.backlog));
                m.insert("qlen".into(), json!(st.qlen));
                if let Some(r) = st.red {
                    m.insert("marked".into(), json!(r.marked));
                    m.insert("early".into(), json!(r.early));
                    m.insert("pdrop".into(), json!(r.pdrop));
                    // Drops for other reasons: none in weir's RED.
                    m.insert("other".into(), json!(0));
                }
                if let Some(f) = st.fq_codel {
                    for (k, n) in [
                        ("maxpacket", u64::from(f.maxpacket)),
                        ("drop_overlimit", f.drop_overlimit),
                        ("new_flow_count", f.new_flow_count),
                        ("ecn_mark", f.ecn_mark),
                        ("new_flows_len", u64::from(f.new_flows_len)),
                        ("old_flows_len", u64::from(f.old_flows_len)),
                    ] {
                        m.insert(k.into(), json!(n));
                    }
                }
            }
            out.push(v);
        }
    }
    Value::Array(out)
}

fn options_json(q: &QdiscParams) -> Value {
    match q {
        QdiscParams::Fifo(FifoLimit::Packets(n)) => json!({"limit": n}),
        QdiscParams::Fifo(FifoLimit::Bytes(n)) => json!({"limit": n}),
        QdiscParams::Sfq(p) => json!({"limit": p.limit, "quantum": p.quantum, "depth": p.depth,
            "divisor": p.divisor, "perturb": p.perturb_ns / 1_000_000_000}),
        QdiscParams::Red(p) => json!({"limit": p.limit, "min": p.min, "max": p.max,
            "ecn": p.ecn, "harddrop": p.harddrop, "adaptive": p.adaptive}),
        QdiscParams::FqCodel(p) => json!({"limit": p.limit, "flows": p.flows, "quantum": p.quantum,
            "target": p.target_ns / 1000, "interval": p.interval_ns / 1000,
            "memory_limit": p.memory_limit, "ecn": p.ecn, "drop_batch": p.drop_batch_size}),
    }
}

/// `-j` for filters.
pub fn filter_json(config: &Config, snap: &Stats) -> Value {
    let mut out = Vec::new();
    for t in &snap.trees {
        let Some(tree) = config.tree(&t.name) else {
            continue;
        };
        for (index, f) in tree.filters.iter().enumerate() {
            let mut v = json!({
                "parent": format!("{:x}:", tree.classes.first().map_or(1, |c| c.id.major)),
                "pref": f.prio,
                "kind": "weir",
                "weir_tree": t.name,
                "match": match_words(&f.spec).trim(),
                "flowid": f.class().map(|c| tree.classes[c as usize].id.to_string()),
                "action": if f.class().is_some() { "classify" } else { "drop" },
            });
            if let Some(d) = t.drop_filters.iter().find(|d| d.index as usize == index) {
                v["dropped"] = json!(d.dropped);
            }
            out.push(v);
        }
    }
    Value::Array(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// lab.toml's up tree (1:1 over 1:10, 1:20, 1:30) and recorded stats of
    /// it, with rate estimates set per class.
    fn lab() -> (Config, weir_api::snapshot::TreeStats) {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/lab.toml");
        let config = weir_config::load(std::path::Path::new(path))
            .expect("lab.toml")
            .config;
        let line = include_str!("../tests/data/stats-lines.json")
            .lines()
            .next()
            .expect("a line");
        let stats: Stats = serde_json::from_str(line).expect("stats");
        let mut t = stats
            .trees
            .into_iter()
            .find(|t| t.name == "up")
            .expect("up");
        for (c, bits) in t.classes.iter_mut().zip([90, 10, 50, 30]) {
            c.rate_est = Some(bits);
        }
        (config, t)
    }

    #[test]
    fn a_subtree_or_the_busiest_classes() {
        let (config, t) = lab();
        let tree = config.tree("up").expect("up");
        let all = Select::default();
        assert_eq!(all.classes(tree, &t), vec![0, 1, 2, 3]);
        let high = Select {
            class: Some("high".into()),
            top: None,
        };
        assert_eq!(high.classes(tree, &t), vec![1]);
        let root = Select {
            class: Some("1:1".into()),
            top: Some(2),
        };
        assert_eq!(root.classes(tree, &t), vec![0, 2], "busiest first");
        let none = Select {
            class: Some("nope".into()),
            top: None,
        };
        assert!(none.classes(tree, &t).is_empty());
        assert!(!none.known(&config));
        assert!(high.known(&config));
    }
}
