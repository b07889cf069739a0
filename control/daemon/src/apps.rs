//! Apps in the stats and in `weir show apps` / `weir show flows`: the
//! typed form of a tree's [`AppsSnapshot`] and of a worker's
//! [`TopFlows`], and their text, laid out like the rest of `weir show`
//! (tc-style words, one block per app or flow, a leading space on the
//! counter lines).
//!
//! ```text
//! tree up apps 2
//! app voice class 1:10 (voice) remark ef
//!  Sent 16000 bytes 100 pkt (dropped 0) flows 1
//! …
//! flows 12 capacity 65536 inserted 40 expired 28 evicted idle 0 pressure 0 hits 1200
//! decided port 3 tls-sni 1 quic-sni 0 http-host 0 behaviour 2 peer 4 none 5
//!  moved 1 returned 0 learned 4 learn_ignored 0 names 1 inspect_full 0 unmatched 33pkt
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv6Addr;

use serde_json::Value;
use weir_api::snapshot::{
    AppEngineStats, AppStats, AppsStats, FlowStats, FlowTableStats, TreeFlows,
};
use weir_api::{FlowsBy, Stats};
use weir_config::units::{sprint_rate, sprint_size, sprint_time};
use weir_config::Tree;
use weir_dataplane::flow::{Decided, FlowKey};
use weir_dataplane::remark::Remark;
use weir_xdp::datapath::{AppsSnapshot, FlowRow, TopFlows};

/// Every way a decision is made, in the order the stats list them
/// ([`Decided::Undecided`] is not a decision).
pub(crate) const DECIDED: [Decided; 7] = [
    Decided::Port,
    Decided::TlsSni,
    Decided::QuicSni,
    Decided::HttpHost,
    Decided::Behaviour,
    Decided::Peer,
    Decided::Nothing,
];

/// A DSCP as the config and `tc` name it: `ef`, `va`, `af41`, `cs1`, or
/// the number.
pub(crate) fn dscp_name(d: u8) -> String {
    match d {
        46 => "ef".into(),
        44 => "va".into(),
        0 => "cs0".into(),
        d if d % 8 == 0 && d <= 56 => format!("cs{}", d / 8),
        d if (10..=38).contains(&d) && d % 2 == 0 && (d % 8 != 0) => {
            format!("af{}{}", d / 8, (d % 8) / 2)
        }
        d => d.to_string(),
    }
}

/// `ef`, `cs1 if-unmarked`, `wash`.
pub(crate) fn remark_name(r: Remark) -> String {
    match r {
        Remark::Set(d) => dscp_name(d),
        Remark::IfUnmarked(d) => format!("{} if-unmarked", dscp_name(d)),
        Remark::Wash => "wash".into(),
    }
}

/// The classid and name of class index `class` of `cfg`.
fn class_of(cfg: Option<&Tree>, class: u32) -> (Option<String>, Option<String>) {
    let c = cfg.and_then(|t| t.classes.get(class as usize));
    (c.map(|c| c.id.to_string()), c.and_then(|c| c.name.clone()))
}

/// A tree's apps, typed.
pub(crate) fn apps_stats(cfg: Option<&Tree>, a: &AppsSnapshot) -> AppsStats {
    let e = &a.engine;
    let t = &a.table;
    AppsStats {
        apps: a
            .apps
            .iter()
            .map(|app| {
                let (class, class_name) = class_of(cfg, app.spec.class);
                let c = &app.counters;
                AppStats {
                    name: app.spec.name.clone(),
                    class,
                    class_name,
                    remark: app.spec.remark.map(remark_name),
                    flows: c.flows,
                    packets: c.packets,
                    bytes: c.bytes,
                    drops: c.drops,
                }
            })
            .collect(),
        table: FlowTableStats {
            live: t.live,
            capacity: a.capacity,
            hits: t.hits,
            inserted: t.inserted,
            expired: t.expired,
            evicted_idle: t.evicted_idle,
            evicted_pressure: t.evicted_pressure,
        },
        engine: AppEngineStats {
            decided: DECIDED
                .iter()
                .map(|&d| {
                    let n = e.decided.get(d as usize).copied().unwrap_or(0);
                    (d.name().to_string(), n)
                })
                .collect::<BTreeMap<_, _>>(),
            unmatched_packets: e.unmatched_packets,
            moved: e.moved,
            returned: e.returned,
            learned: e.learned,
            learn_ignored: e.learn_ignored,
            names: e.names,
            inspect_full: e.inspect_full,
        },
    }
}

/// An address as the parser keeps it (IPv4 mapped into IPv6's space).
fn addr(a: u128) -> String {
    let v6 = Ipv6Addr::from(a);
    match v6.to_ipv4_mapped() {
        Some(v4) => v4.to_string(),
        None => v6.to_string(),
    }
}

fn protocol(p: u8) -> String {
    match p {
        6 => "tcp".into(),
        17 => "udp".into(),
        1 => "icmp".into(),
        58 => "ipv6-icmp".into(),
        132 => "sctp".into(),
        p => p.to_string(),
    }
}

fn flow_stats(cfg: Option<&Tree>, f: &FlowRow) -> FlowStats {
    let k: &FlowKey = &f.key;
    let (class, class_name) = match f.class {
        Some(c) => class_of(cfg, c),
        None => (None, None),
    };
    FlowStats {
        protocol: protocol(k.protocol),
        src: addr(k.lo_addr()),
        sport: k.lo_port,
        dst: addr(k.hi_addr()),
        dport: k.hi_port,
        app: f.app.clone(),
        class,
        class_name,
        remark: f.remark.map(remark_name),
        how: f.decided.name().to_string(),
        rate: f.rate,
        packets: f.packets,
        bytes: f.bytes,
        age_ns: f.age_ns,
        idle_ns: f.idle_ns,
        avg_size: f.avg_size,
    }
}

/// A worker's top flows, typed.
pub(crate) fn tree_flows(cfg: Option<&Tree>, top: &TopFlows, by: FlowsBy) -> TreeFlows {
    TreeFlows {
        tree: top.tree.clone(),
        by: by.name().to_string(),
        walked: top.walked,
        matched: top.matched,
        capacity: top.capacity,
        flows: top.flows.iter().map(|f| flow_stats(cfg, f)).collect(),
    }
}

/// "class 1:10 (voice)", "class ?" when the configuration does not know
/// the tree.
fn class_words(class: &Option<String>, name: &Option<String>) -> String {
    let name = name
        .as_deref()
        .map(|n| format!(" ({n})"))
        .unwrap_or_default();
    format!("class {}{name}", class.as_deref().unwrap_or("?"))
}

/// `weir show apps`: every tree in `snap` with apps (trees without are
/// left out).
pub(crate) fn apps_text(snap: &Stats) -> String {
    let mut s = String::new();
    for t in &snap.trees {
        let Some(a) = &t.apps else { continue };
        let _ = writeln!(s, "tree {} apps {}", t.name, a.apps.len());
        for app in &a.apps {
            let _ = writeln!(
                s,
                "app {} {} remark {}",
                app.name,
                class_words(&app.class, &app.class_name),
                app.remark.as_deref().unwrap_or("none")
            );
            let _ = writeln!(
                s,
                " Sent {} bytes {} pkt (dropped {}) flows {}",
                app.bytes, app.packets, app.drops, app.flows
            );
        }
        let tb = &a.table;
        let _ = writeln!(
            s,
            "flows {} capacity {} inserted {} expired {} evicted idle {} pressure {} hits {}",
            tb.live,
            tb.capacity,
            tb.inserted,
            tb.expired,
            tb.evicted_idle,
            tb.evicted_pressure,
            tb.hits
        );
        let e = &a.engine;
        let decided: Vec<String> = DECIDED
            .iter()
            .map(|d| format!("{} {}", d.name(), e.decided.get(d.name()).unwrap_or(&0)))
            .collect();
        let _ = writeln!(s, "decided {}", decided.join(" "));
        let _ = writeln!(
            s,
            " moved {} returned {} learned {} learn_ignored {} names {} inspect_full {} unmatched {}pkt",
            e.moved,
            e.returned,
            e.learned,
            e.learn_ignored,
            e.names,
            e.inspect_full,
            e.unmatched_packets
        );
        s.push('\n');
    }
    s
}

/// `weir show apps -j`: per tree with apps, its name and [`AppsStats`].
pub(crate) fn apps_json(snap: &Stats) -> Value {
    Value::Array(
        snap.trees
            .iter()
            .filter_map(|t| {
                let a = t.apps.as_ref()?;
                let mut v = serde_json::to_value(a).ok()?;
                v["tree"] = Value::String(t.name.clone());
                Some(v)
            })
            .collect(),
    )
}

/// `weir show flows`: per tree, a header line and two lines a flow.
pub(crate) fn flows_text(trees: &[TreeFlows]) -> String {
    let mut s = String::new();
    for t in trees {
        let _ = writeln!(
            s,
            "tree {} flows {} matched {} capacity {} top {} by {}",
            t.tree,
            t.walked,
            t.matched,
            t.capacity,
            t.flows.len(),
            t.by
        );
        for f in &t.flows {
            let app = match &f.app {
                Some(a) => format!(
                    "app {a} {} remark {}",
                    class_words(&f.class, &f.class_name),
                    f.remark.as_deref().unwrap_or("none")
                ),
                None => "app none".to_string(),
            };
            let _ = writeln!(
                s,
                "flow {} {}:{} {}:{} {app} how {}",
                f.protocol,
                bracket(&f.src),
                f.sport,
                bracket(&f.dst),
                f.dport,
                f.how
            );
            let _ = writeln!(
                s,
                " rate {} Sent {} bytes {} pkt age {} idle {} avg {}",
                sprint_rate(f.rate.saturating_mul(8)),
                f.bytes,
                f.packets,
                sprint_time(f.age_ns),
                sprint_time(f.idle_ns),
                sprint_size(u64::from(f.avg_size))
            );
        }
        s.push('\n');
    }
    s
}

/// IPv6 addresses in brackets before a port.
fn bracket(a: &str) -> String {
    if a.contains(':') {
        format!("[{a}]")
    } else {
        a.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dscp_and_remark_names() {
        let names: Vec<String> = [
            0, 8, 10, 12, 14, 18, 26, 34, 36, 38, 40, 44, 46, 48, 56, 5, 63,
        ]
        .iter()
        .map(|&d| dscp_name(d))
        .collect();
        assert_eq!(
            names,
            [
                "cs0", "cs1", "af11", "af12", "af13", "af21", "af31", "af41", "af42", "af43",
                "cs5", "va", "ef", "cs6", "cs7", "5", "63"
            ]
        );
        assert_eq!(remark_name(Remark::Set(46)), "ef");
        assert_eq!(remark_name(Remark::IfUnmarked(8)), "cs1 if-unmarked");
        assert_eq!(remark_name(Remark::Wash), "wash");
    }

    #[test]
    fn addresses_and_protocols() {
        assert_eq!(addr(0xffff_c612_0001), "198.18.0.1");
        assert_eq!(addr(1), "::1");
        assert_eq!(bracket(&addr(1)), "[::1]");
        assert_eq!(protocol(6), "tcp");
        assert_eq!(protocol(47), "47");
    }
}
