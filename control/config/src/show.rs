//! The printout `weir check` shows: tc's `class show` / `qdisc show` /
//! `filter show` look, one tree at a time.

use std::fmt::Write;

use weir_dataplane::app::RuleSpec;
use weir_dataplane::classify::{IpPrefix, L3Match, PortMatch};
use weir_dataplane::qdisc::{FifoLimit, QdiscParams};
use weir_dataplane::remark::Remark;
use weir_dataplane::shaper::MalformedPolicy;

use super::filter::ip_proto_name;
use super::units::{Dscp, Rate, Size, Time};
use super::{Action, Config, Filter, Tree};

pub(crate) fn config(c: &Config) -> String {
    let mut s = String::new();
    for p in &c.pairs {
        let name = |t: Option<u32>| {
            t.and_then(|i| c.trees.get(i as usize))
                .map_or_else(|| "-".to_string(), |t| t.name.clone())
        };
        let _ = writeln!(
            s,
            "pair {}: inside {} outside {} upload {} download {} queues {}",
            p.name,
            p.inside,
            p.outside,
            name(p.upload),
            name(p.download),
            p.queues
        );
    }
    let d = &c.xdp;
    if !c.pairs.is_empty() {
        let cores = if d.cores().is_empty() {
            "unpinned".to_string()
        } else {
            d.cores()
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        let _ = writeln!(
            s,
            "dataplane: cores {cores} batch {} frame_size {} frames {} ring_size {} handover_ring {} busy_poll {} worker_rtprio {} worker_nice {} xdp_mode {} pass {}",
            d.batch(),
            d.frame_size(),
            d.frames(),
            d.ring_size(),
            d.handover_ring(),
            d.busy_poll(),
            d.worker_rtprio(),
            d.worker_nice(),
            d.xdp_mode().name(),
            d.pass().len()
        );
    }
    if let Some(sub) = &c.subscribers {
        let tree = |p: &Option<crate::subscribers::Placement>| {
            p.as_ref()
                .and_then(|p| c.trees.get(p.tree as usize))
                .map_or_else(|| "-".to_string(), |t| t.name.clone())
        };
        let _ = writeln!(
            s,
            "subscribers: {} circuit(s) from {}, {} node(s) from {}; download {} upload {}",
            sub.circuits.len(),
            sub.devices.display(),
            sub.nodes.nodes.len(),
            sub.network
                .as_ref()
                .map_or_else(|| "-".to_string(), |p| p.display().to_string()),
            tree(&sub.download),
            tree(&sub.upload),
        );
    }
    for t in &c.trees {
        if !s.is_empty() {
            s.push('\n');
        }
        s.push_str(&tree(t));
    }
    s
}

pub(crate) fn tree(t: &Tree) -> String {
    let mut s = String::new();
    let _ = write!(s, "tree {}: qdisc htb", t.name);
    if let Some(c) = t.classes.first() {
        let _ = write!(s, " {:x}:", c.id.major);
    }
    let _ = write!(s, " default {} r2q {}", t.label(t.default_class), t.r2q);
    if let Some(l) = t.link {
        let _ = write!(s, " link {l}");
    }
    if t.overhead != 0 {
        let _ = write!(s, " overhead {}", t.overhead);
    }
    if t.mpu != 0 {
        let _ = write!(s, " mpu {}", t.mpu);
    }
    let _ = write!(
        s,
        " malformed {} pool {}",
        match t.malformed {
            MalformedPolicy::Default => "default",
            MalformedPolicy::Drop => "drop",
        },
        t.pool
    );
    s.push_str(if t.wash { " wash\n" } else { "\n" });
    // Depth-first from the top-level classes, children in index order.
    let n = t.classes.len();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut roots = Vec::new();
    for (i, c) in t.classes.iter().enumerate() {
        match c.parent {
            Some(p) => children[p as usize].push(i),
            None => roots.push(i),
        }
    }
    let mut stack: Vec<(usize, usize)> = roots.iter().rev().map(|&r| (r, 1)).collect();
    while let Some((i, depth)) = stack.pop() {
        class_line(&mut s, t, i, depth);
        stack.extend(children[i].iter().rev().map(|&k| (k, depth + 1)));
    }
    for f in &t.filters {
        filter_line(&mut s, t, f);
    }
    if !t.apps.is_empty() {
        apps(&mut s, t);
    }
    s
}

/// ` dscp EF`, ` dscp AF41 if-unmarked`.
fn remark(s: &mut String, r: &Option<Remark>) {
    let (d, how) = match *r {
        Some(Remark::Set(d)) => (d, ""),
        Some(Remark::IfUnmarked(d)) => (d, " if-unmarked"),
        Some(Remark::Wash) => (0, " wash"),
        None => return,
    };
    let d = Dscp::new(d).map_or_else(|| d.to_string(), |d| d.to_string());
    let _ = write!(s, " dscp {d}{how}");
}

/// A variance in ns² as exact decimal seconds² (`0.1s2`).
fn variance(ns2: u64) -> String {
    const S2: u64 = 1_000_000_000_000_000_000;
    let (int, frac) = (ns2 / S2, ns2 % S2);
    if frac == 0 {
        return format!("{int}s2");
    }
    let f = format!("{frac:018}");
    format!("{int}.{}s2", f.trim_end_matches('0'))
}

fn avg_size((lo, hi): (u32, u32)) -> String {
    match (lo, hi) {
        (lo, hi) if lo == hi => lo.to_string(),
        (lo, u32::MAX) if lo > 0 => format!(">{}", lo - 1),
        (0, hi) if hi < u32::MAX => format!("<{}", hi + 1),
        (lo, hi) => format!("{lo}-{hi}"),
    }
}

fn apps(s: &mut String, t: &Tree) {
    let a = &t.apps.spec;
    let _ = writeln!(
        s,
        "  apps flows {} idle_timeout {} inspect_slots {} inspect_packets {} bulk_window {}",
        a.flows,
        Time::from_ns(a.idle_timeout),
        a.inspect_slots,
        a.inspect_packets,
        Time::from_ns(a.bulk_window)
    );
    for app in &a.apps {
        let _ = write!(s, "  app {} class {}", app.name, t.label(app.class));
        remark(s, &app.remark);
        s.push('\n');
    }
    for (r, prio) in a.rules.iter().zip(&t.apps.prios) {
        rule_line(s, t, *prio, r);
    }
}

fn rule_line(s: &mut String, t: &Tree, prio: u16, r: &RuleSpec) {
    let name = t
        .apps
        .spec
        .apps
        .get(usize::from(r.app))
        .map_or("?", |a| a.name.as_str());
    let _ = write!(s, "  rule prio {prio} app {name}");
    if let Some(p) = r.protocol {
        match ip_proto_name(p) {
            Some(n) => {
                let _ = write!(s, " protocol {n}");
            }
            None => {
                let _ = write!(s, " protocol {p}");
            }
        }
    }
    let list = |v: Vec<String>| v.join(",");
    if !r.ports.is_empty() {
        let ports = r
            .ports
            .iter()
            .map(|&(lo, hi)| port(&PortMatch::Range { lo, hi }))
            .collect();
        let _ = write!(s, " ports {}", list(ports));
    }
    if !r.sni.is_empty() {
        let _ = write!(
            s,
            " sni {}",
            list(r.sni.iter().map(|g| g.as_str().to_string()).collect())
        );
    }
    if !r.host.is_empty() {
        let _ = write!(
            s,
            " host {}",
            list(r.host.iter().map(|g| g.as_str().to_string()).collect())
        );
    }
    let b = &r.behaviour;
    if let Some(a) = b.avg_size {
        let _ = write!(s, " avg_size {}", avg_size(a));
    }
    if let Some(v) = b.iat_variance_below {
        let _ = write!(s, " iat_variance <{}", variance(v));
    }
    if let Some(v) = b.regular {
        let _ = write!(s, " regular {v}");
    }
    if let Some(v) = b.bursty {
        let _ = write!(s, " bursty {v}");
    }
    if let Some(bulk) = b.bulk {
        s.push_str(" bulk");
        if let Some(p) = bulk.pps {
            let _ = write!(s, " pps {p}");
        }
        if let Some(r) = bulk.bytes_per_sec {
            let _ = write!(s, " rate {}", Rate::from_bits_per_sec(r.saturating_mul(8)));
        }
        let _ = write!(s, " hold {}", Time::from_ns(bulk.hold));
    }
    if let Some(l) = b.long_lived {
        let _ = write!(s, " long_lived {}", Time::from_ns(l));
    }
    let stats = b.avg_size.is_some()
        || b.iat_variance_below.is_some()
        || b.regular.is_some()
        || b.bursty.is_some();
    if stats {
        let _ = write!(s, " min_packets {}", b.min_packets);
    }
    s.push('\n');
}

fn class_line(s: &mut String, t: &Tree, i: usize, depth: usize) {
    let c = &t.classes[i];
    let pad = "  ".repeat(depth);
    let _ = write!(s, "{pad}class htb {}", t.label(i as u32));
    match c.parent {
        Some(p) => {
            let _ = write!(s, " parent {}", t.classes[p as usize].id);
        }
        None => s.push_str(" root"),
    }
    // As tc: prio and quantum only matter (and print) for leaves.
    if c.is_leaf() {
        let _ = write!(s, " prio {} quantum {}", c.prio, c.quantum.bytes());
    }
    let _ = write!(
        s,
        " rate {} ceil {} burst {} cburst {}",
        c.rate, c.ceil, c.burst, c.cburst
    );
    remark(s, &c.remark);
    s.push('\n');
    if let Some(q) = &c.qdisc {
        let _ = writeln!(s, "{pad}  qdisc {}", qdisc(q));
    }
}

/// A probability as a short decimal (0.1, not 0.099999999976).
fn prob(fp: u32) -> String {
    let p = f64::from(fp) / 4_294_967_296.0;
    let t = format!("{p:.6}");
    let t = t.trim_end_matches('0').trim_end_matches('.');
    if t.is_empty() {
        "0".to_string()
    } else {
        t.to_string()
    }
}

pub(crate) fn qdisc(q: &QdiscParams) -> String {
    let mut s = String::from(q.kind());
    match q {
        QdiscParams::Fifo(FifoLimit::Packets(n)) => {
            let _ = write!(s, " limit {n}p");
        }
        QdiscParams::Fifo(FifoLimit::Bytes(b)) => {
            let _ = write!(s, " limit {}", Size::from_bytes(*b));
        }
        QdiscParams::Sfq(p) => {
            let _ = write!(
                s,
                " limit {}p quantum {} depth {} flows {} divisor {}",
                p.limit,
                Size::from_bytes(u64::from(p.quantum)),
                p.depth,
                p.flows,
                p.divisor
            );
            if p.perturb_ns != 0 {
                let _ = write!(s, " perturb {}", Time::from_ns(p.perturb_ns));
            }
        }
        QdiscParams::Red(p) => {
            let b = |v: u32| Size::from_bytes(u64::from(v));
            let _ = write!(
                s,
                " limit {} min {} max {} avpkt {} burst {} probability {} bandwidth {}",
                b(p.limit),
                b(p.min),
                b(p.max),
                b(p.avpkt),
                p.burst,
                prob(p.probability),
                Rate::from_bits_per_sec(p.bandwidth.saturating_mul(8))
            );
            for (on, name) in [
                (p.ecn, "ecn"),
                (p.harddrop, "harddrop"),
                (p.adaptive, "adaptive"),
            ] {
                if on {
                    let _ = write!(s, " {name}");
                }
            }
        }
        QdiscParams::FqCodel(p) => {
            let _ = write!(
                s,
                " limit {}p flows {} quantum {} target {} interval {} memory_limit {} drop_batch {}",
                p.limit,
                p.flows,
                p.quantum,
                Time::from_ns(p.target_ns),
                Time::from_ns(p.interval_ns),
                Size::from_bytes(p.memory_limit),
                p.drop_batch_size
            );
            if let Some(ce) = p.ce_threshold_ns {
                let _ = write!(s, " ce_threshold {}", Time::from_ns(ce));
            }
            s.push_str(if p.ecn { " ecn" } else { " noecn" });
        }
    }
    s
}

fn prefix(p: &IpPrefix) -> String {
    if p.v6 {
        format!("{}/{}", std::net::Ipv6Addr::from(p.addr), p.len)
    } else {
        format!("{}/{}", std::net::Ipv4Addr::from(p.addr as u32), p.len)
    }
}

fn port(p: &PortMatch) -> String {
    match *p {
        PortMatch::Range { lo, hi } if lo == hi => lo.to_string(),
        PortMatch::Range { lo, hi } => format!("{lo}-{hi}"),
        PortMatch::Masked { value, mask } => format!("{value:#06x}/{mask:#06x}"),
    }
}

fn filter_line(s: &mut String, t: &Tree, f: &Filter) {
    let m = &f.spec;
    let _ = write!(s, "  filter prio {} protocol ", f.prio);
    match m.l3 {
        L3Match::Any => s.push_str("all"),
        L3Match::Ipv4 => s.push_str("ip"),
        L3Match::Ipv6 => s.push_str("ipv6"),
        L3Match::EtherType(0x0806) => s.push_str("arp"),
        L3Match::EtherType(e) => {
            let _ = write!(s, "{e:#06x}");
        }
    }
    if let Some(v) = m.vlan {
        let _ = write!(s, " vlan {v}");
    }
    if let Some(p) = m.ip_proto {
        match ip_proto_name(p) {
            Some(n) => {
                let _ = write!(s, " ip_proto {n}");
            }
            None => {
                let _ = write!(s, " ip_proto {p}");
            }
        }
    }
    if let Some(p) = &m.src {
        let _ = write!(s, " src {}", prefix(p));
    }
    if let Some(p) = &m.dst {
        let _ = write!(s, " dst {}", prefix(p));
    }
    if let Some(p) = &m.sport {
        let _ = write!(s, " sport {}", port(p));
    }
    if let Some(p) = &m.dport {
        let _ = write!(s, " dport {}", port(p));
    }
    if let Some((v, mask)) = m.tos {
        let _ = write!(s, " tos {v:#04x}/{mask:#04x}");
        if mask == 0xfc {
            if let Some(d) = Dscp::new(v >> 2) {
                let _ = write!(s, " (dscp {d})");
            }
        }
    }
    match f.action {
        Action::Class(c) => {
            let _ = writeln!(s, " flowid {}", t.label(c));
        }
        Action::Drop => {
            let _ = writeln!(s, " action drop");
        }
    }
}
