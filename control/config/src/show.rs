//! The printout `weir check` shows: tc's `class show` / `qdisc show` /
//! `filter show` look, one tree at a time.

use std::fmt::Write;

use weir_dataplane::classify::{IpPrefix, L3Match, PortMatch};
use weir_dataplane::qdisc::{FifoLimit, QdiscParams};
use weir_dataplane::shaper::MalformedPolicy;

use super::filter::ip_proto_name;
use super::units::{Dscp, Rate, Size, Time};
use super::{Config, Filter, Tree};

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
    let _ = writeln!(
        s,
        " malformed {} pool {}",
        match t.malformed {
            MalformedPolicy::Default => "default",
            MalformedPolicy::Drop => "drop",
        },
        t.pool
    );
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
    s
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
    let _ = writeln!(
        s,
        " rate {} ceil {} burst {} cburst {}",
        c.rate, c.ceil, c.burst, c.cburst
    );
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
    let _ = writeln!(s, " flowid {}", t.label(f.flowid));
}
