//! Filter matches: `[[tree.X.filter]]` → `FilterSpec` (the target class is
//! resolved by the tree, which knows the classes).

use std::net::IpAddr;

use weir_dataplane::classify::{FilterSpec, IpPrefix, L3Match, PortMatch};

use super::check;
use super::diag::Ctx;
use super::raw::{sp, RawFilter, RawTos, StrOrInt, S};
use super::units::{parse_int, Dscp, Tos};

/// tc gives a filter added without `prio` the preference 0xC000 (49152).
pub const DEFAULT_FILTER_PRIO: u16 = 0xC000;

const IP_PROTOS: &[(&str, u8)] = &[
    ("icmp", 1),
    ("igmp", 2),
    ("ipip", 4),
    ("tcp", 6),
    ("udp", 17),
    ("ipv6", 41),
    ("gre", 47),
    ("esp", 50),
    ("ah", 51),
    ("icmpv6", 58),
    ("ipv6-icmp", 58),
    ("ospf", 89),
    ("sctp", 132),
    ("udplite", 136),
];

/// Protocols whose header starts with 16-bit source and destination ports.
pub(crate) const PORTED: &[u8] = &[6, 17, 132, 136];

/// The name of an IP protocol number, for printing.
pub fn ip_proto_name(p: u8) -> Option<&'static str> {
    IP_PROTOS.iter().find(|(_, v)| *v == p).map(|(n, _)| *n)
}

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_ARP: u16 = 0x0806;

fn protocol(cx: &mut Ctx, v: &S<StrOrInt>) -> Option<L3Match> {
    let expected = "expected ip, ipv6, all, arp or an EtherType number like 0x0806";
    let n = match v.get_ref() {
        StrOrInt::Str(s) => match s.to_ascii_lowercase().as_str() {
            "ip" | "ipv4" => return Some(L3Match::Ipv4),
            "ipv6" => return Some(L3Match::Ipv6),
            "all" | "any" => return Some(L3Match::Any),
            "arp" => return Some(L3Match::EtherType(ETH_P_ARP)),
            other => match parse_int(other) {
                Some(n) => n,
                None => {
                    cx.error(&sp(v), format!("unknown protocol \"{s}\"; {expected}"));
                    return None;
                }
            },
        },
        StrOrInt::Int(i) => u64::try_from(*i).unwrap_or(u64::MAX),
    };
    match u16::try_from(n) {
        Ok(ETH_P_IP) => Some(L3Match::Ipv4),
        Ok(ETH_P_IPV6) => Some(L3Match::Ipv6),
        Ok(e) if e >= 0x0600 => Some(L3Match::EtherType(e)),
        _ => {
            cx.error(
                &sp(v),
                format!("protocol {n:#x} is not an EtherType (they start at 0x0600); {expected}"),
            );
            None
        }
    }
}

/// An IP protocol by name or number; `what` is the key (`ip_proto` of a
/// filter, `protocol` of an app rule).
pub(crate) fn ip_proto(cx: &mut Ctx, v: &S<StrOrInt>, what: &str) -> Option<u8> {
    let n = match v.get_ref() {
        StrOrInt::Str(s) => {
            let l = s.to_ascii_lowercase();
            if let Some((_, p)) = IP_PROTOS.iter().find(|(n, _)| *n == l) {
                return Some(*p);
            }
            parse_int(s)
        }
        StrOrInt::Int(i) => u64::try_from(*i).ok(),
    };
    match n.and_then(|n| u8::try_from(n).ok()) {
        Some(p) => Some(p),
        None => {
            cx.error(
                &sp(v),
                format!("unknown {what}; expected tcp, udp, icmp, icmpv6, sctp, gre, esp, ah, … or a number 0..=255"),
            );
            None
        }
    }
}

fn port(cx: &mut Ctx, v: &S<StrOrInt>, what: &str) -> Option<PortMatch> {
    let expected =
        "expected a port 0..=65535, a range \"1024-2048\", or value/mask \"0x50/0xfff0\" (tc u32)";
    let num = |s: &str| parse_int(s).and_then(|n| u16::try_from(n).ok());
    let m = match v.get_ref() {
        StrOrInt::Int(i) => u16::try_from(*i)
            .ok()
            .map(|p| PortMatch::Range { lo: p, hi: p }),
        StrOrInt::Str(s) => {
            if let Some((a, b)) = s.split_once('-') {
                match (num(a), num(b)) {
                    (Some(lo), Some(hi)) if lo <= hi => Some(PortMatch::Range { lo, hi }),
                    (Some(lo), Some(hi)) => {
                        cx.error(
                            &sp(v),
                            format!("`{what}` range \"{s}\" is backwards ({lo} > {hi}); expected low-high"),
                        );
                        return None;
                    }
                    _ => None,
                }
            } else if let Some((a, b)) = s.split_once('/') {
                match (num(a), num(b)) {
                    (Some(value), Some(mask)) => Some(PortMatch::Masked { value, mask }),
                    _ => None,
                }
            } else {
                num(s).map(|p| PortMatch::Range { lo: p, hi: p })
            }
        }
    };
    if m.is_none() {
        let shown = match v.get_ref() {
            StrOrInt::Int(i) => i.to_string(),
            StrOrInt::Str(s) => format!("\"{s}\""),
        };
        cx.error(&sp(v), format!("bad `{what}` {shown}; {expected}"));
    }
    m
}

/// An IP prefix; host bits beyond the length are cleared with a warning.
pub(crate) fn prefix(cx: &mut Ctx, v: &S<String>, what: &str) -> Option<IpPrefix> {
    let s = v.get_ref().trim();
    let bad = |cx: &mut Ctx, why: &str| {
        cx.error(
            &sp(v),
            format!("bad `{what}` \"{s}\": {why}; expected an IPv4 or IPv6 prefix like \"198.18.0.0/15\" or \"2001:db8::/32\""),
        );
        None
    };
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let Ok(ip) = addr.parse::<IpAddr>() else {
        return bad(cx, "not an IP address");
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        None => max,
        Some(l) => match l.parse::<u8>() {
            Ok(n) if n <= max => n,
            _ => return bad(cx, &format!("prefix length must be 0..={max}")),
        },
    };
    let (v6, bits, width) = match ip {
        IpAddr::V4(a) => (false, u128::from(u32::from(a)), 32),
        IpAddr::V6(a) => (true, u128::from(a), 128),
    };
    let host_mask = if len == 0 {
        if width == 128 {
            u128::MAX
        } else {
            (1u128 << width) - 1
        }
    } else {
        (1u128 << (width - u32::from(len))) - 1
    };
    let net = bits & !host_mask;
    if net != bits {
        let shown = match ip {
            IpAddr::V4(_) => std::net::Ipv4Addr::from(net as u32).to_string(),
            IpAddr::V6(_) => std::net::Ipv6Addr::from(net).to_string(),
        };
        cx.warn(
            &sp(v),
            format!("`{what}` \"{s}\" has host bits set; it matches {shown}/{len}"),
        );
    }
    let addr = if v6 { net } else { 0xffff_0000_0000 | net };
    Some(IpPrefix { v6, addr, len })
}

fn tos(cx: &mut Ctx, v: &S<RawTos>) -> Option<Tos> {
    let byte = |cx: &mut Ctx, n: i64, what: &str| match u8::try_from(n) {
        Ok(b) => Some(b),
        Err(_) => {
            cx.error(
                &sp(v),
                format!("`tos` {what} {n} is out of range; expected 0..=255 (0x00..=0xff)"),
            );
            None
        }
    };
    let t = match v.get_ref() {
        RawTos::Str(s) => match s.parse::<Tos>() {
            Ok(t) => t,
            Err(e) => {
                cx.error(&sp(v), format!("`tos`: {e}"));
                return None;
            }
        },
        RawTos::Int(n) => Tos {
            value: byte(cx, *n, "value")?,
            mask: 0xff,
        },
        RawTos::Table { value, mask } => Tos {
            value: byte(cx, *value, "value")?,
            mask: match mask {
                Some(m) => byte(cx, *m, "mask")?,
                None => 0xff,
            },
        },
    };
    if t.value & !t.mask != 0 {
        cx.warn(
            &sp(v),
            format!(
                "`tos` value 0x{:02x} has bits outside mask 0x{:02x}; they are ignored",
                t.value, t.mask
            ),
        );
    }
    Some(t)
}

/// A DSCP code point by name or number (filters' match, apps' and
/// classes' remark).
pub(crate) fn dscp(cx: &mut Ctx, v: &S<StrOrInt>) -> Option<Dscp> {
    let r = match v.get_ref() {
        StrOrInt::Str(s) => s.parse::<Dscp>().map_err(|e| e.to_string()),
        StrOrInt::Int(i) => u8::try_from(*i).ok().and_then(Dscp::new).ok_or_else(|| {
            format!("DSCP {i} is out of range; expected 0..=63 or a name like EF, AF41, CS1")
        }),
    };
    match r {
        Ok(d) => Some(d),
        Err(e) => {
            cx.error(&sp(v), format!("`dscp`: {e}"));
            None
        }
    }
}

/// Check everything but `flowid`; returns the tc prio and the match (its
/// `target` still 0). None if anything was wrong (all of it reported).
pub(crate) fn check(cx: &mut Ctx, f: &RawFilter) -> Option<(u16, FilterSpec)> {
    let mut ok = true;
    macro_rules! get {
        ($e:expr) => {
            match $e {
                Some(Some(v)) => Some(v),
                Some(None) => {
                    ok = false;
                    None
                }
                None => None,
            }
        };
    }
    let prio = get!(f
        .prio
        .as_ref()
        .map(|v| check::int_in(cx, v, "prio", 0, 65535)))
    .map_or(DEFAULT_FILTER_PRIO, |p| p as u16);
    let l3 = get!(f.protocol.as_ref().map(|v| protocol(cx, v))).unwrap_or_default();
    let ip_proto = get!(f.ip_proto.as_ref().map(|v| ip_proto(cx, v, "ip_proto")));
    let sport = get!(f.sport.as_ref().map(|v| port(cx, v, "sport")));
    let dport = get!(f.dport.as_ref().map(|v| port(cx, v, "dport")));
    let src = get!(f.src.as_ref().map(|v| prefix(cx, v, "src")));
    let dst = get!(f.dst.as_ref().map(|v| prefix(cx, v, "dst")));
    let dscp = get!(f.dscp.as_ref().map(|v| dscp(cx, v)));
    let tos = get!(f.tos.as_ref().map(|v| tos(cx, v)));
    let vlan = get!(f
        .vlan
        .as_ref()
        .map(|v| check::int_in(cx, v, "vlan", 0, 4095)))
    .map(|v| v as u16);

    if let (Some(_), Some(t)) = (&f.dscp, &f.tos) {
        ok = false;
        cx.error(
            &sp(t),
            "`dscp` and `tos` both match the TOS byte; expected only one of them",
        );
    }
    // Ports only exist in a few protocols; a filter asking for both a
    // portless protocol and a port could never match.
    if let Some(p) = ip_proto {
        if !PORTED.contains(&p) {
            for (what, v) in [("sport", &f.sport), ("dport", &f.dport)] {
                if let Some(v) = v {
                    ok = false;
                    cx.error(
                        &sp(v),
                        format!(
                            "`{what}` with ip_proto {} can never match: that protocol has no ports; expected ip_proto tcp, udp, sctp or udplite",
                            ip_proto_name(p).map_or_else(|| p.to_string(), str::to_string)
                        ),
                    );
                }
            }
        }
    }
    // The network family must agree between protocol, src and dst.
    let family = |p: &Option<IpPrefix>| p.map(|p| p.v6);
    let mut want_v6: Option<(bool, &str)> = match l3 {
        L3Match::Ipv4 => Some((false, "protocol ip")),
        L3Match::Ipv6 => Some((true, "protocol ipv6")),
        _ => None,
    };
    for (what, p, raw) in [("src", &src, &f.src), ("dst", &dst, &f.dst)] {
        let (Some(v6), Some(raw)) = (family(p), raw) else {
            continue;
        };
        match want_v6 {
            Some((w, by)) if w != v6 => {
                ok = false;
                cx.error(
                    &sp(raw),
                    format!(
                        "`{what}` is an {} prefix but the filter already asks for {by}; it could never match",
                        if v6 { "IPv6" } else { "IPv4" }
                    ),
                );
            }
            Some(_) => {}
            None => {
                want_v6 = Some((v6, if v6 { "an IPv6 `src`" } else { "an IPv4 `src`" }));
            }
        }
    }
    if let L3Match::EtherType(e) = l3 {
        let ip_keys = [
            ("ip_proto", f.ip_proto.as_ref().map(sp)),
            ("sport", f.sport.as_ref().map(sp)),
            ("dport", f.dport.as_ref().map(sp)),
            ("src", f.src.as_ref().map(sp)),
            ("dst", f.dst.as_ref().map(sp)),
            ("dscp", f.dscp.as_ref().map(sp)),
            ("tos", f.tos.as_ref().map(sp)),
        ];
        for (what, s) in ip_keys {
            if let Some(s) = s {
                ok = false;
                cx.error(
                    &s,
                    format!("`{what}` is an IP field, but the filter's protocol is EtherType {e:#06x}; expected protocol ip, ipv6 or all"),
                );
            }
        }
    }
    if !ok {
        return None;
    }
    let tos = tos.or(dscp.map(Dscp::tos));
    Some((
        prio,
        FilterSpec {
            l3,
            vlan,
            src,
            dst,
            ip_proto,
            tos: tos.map(|t| (t.value, t.mask)),
            sport,
            dport,
            target: 0,
        },
    ))
}
