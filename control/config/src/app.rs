//! Apps (seed section 2.2; issue 12): `[tree.NAME.apps]` (the tree's flow
//! table), `[[tree.NAME.app]]` (name, class, remark) and each app's
//! `[[tree.NAME.app.match]]` rules → `weir_dataplane::app`'s specs. The
//! class an app names is resolved by the tree, which knows the classes.
//!
//! Every rule is checked for what can never match (a Host rule on UDP, a
//! port on a portless protocol, a name and a behaviour in one rule), so a
//! rule that loads is one the engine can decide.

use weir_dataplane::app::spec::{
    DEFAULT_BULK_HOLD, DEFAULT_FLOWS, DEFAULT_IDLE_TIMEOUT, DEFAULT_INSPECT_PACKETS,
    DEFAULT_INSPECT_SLOTS, DEFAULT_MIN_PACKETS,
};
use weir_dataplane::app::{AppsSpec, Behaviour, Bulk, Glob, RuleSpec};
use weir_dataplane::remark::Remark;

use super::check;
use super::diag::{Ctx, Span};
use super::filter::{self, ip_proto_name, PORTED};
use super::raw::{sp, RawAppsTable, RawBulk, RawMatch, StrOrInt, S};
use super::units::{parse_duration, parse_int, Rate, RULE_DURATION};

/// A rule without `prio` gets tc's default filter preference (0xC000), as
/// a filter does: rules given a `prio` go before it.
pub const DEFAULT_RULE_PRIO: u16 = super::filter::DEFAULT_FILTER_PRIO;
/// Most flow table entries a tree may ask for: 2^24 entries is about 2 GB
/// at the core's 128 bytes a flow, which is past what one worker can
/// touch at line rate anyway; the table is allocated whole at start.
pub const MAX_FLOWS: u32 = 1 << 24;
/// Most reassembly buffers (about 2.3 KB each): 65,536 is ~150 MB.
pub const MAX_INSPECT_SLOTS: u32 = 1 << 16;
/// Most packets a name parser looks at: names come in the first flight
/// (a ClientHello is the fourth packet of a TCP connection), so more only
/// costs parsing.
pub const MAX_INSPECT_PACKETS: u32 = 64;
/// App names become metric labels: short, and from a safe alphabet.
pub const MAX_APP_NAME: usize = 64;

/// The protocol numbers the name parsers know.
const TCP: u8 = 6;
const UDP: u8 = 17;

const DURATION_EXPECTED: &str =
    "expected a duration with a unit, like \"500ms\", \"5s\", \"1min\" (units ms, s, min, h; at most a week)";

/// A duration of at least `min_ns`, its unit required.
fn duration(cx: &mut Ctx, v: &S<String>, what: &str, min_ns: u64) -> Option<u64> {
    let s = v.get_ref().trim();
    match parse_duration(s, &RULE_DURATION) {
        Ok(ns) if ns >= min_ns => Some(ns),
        Ok(_) => {
            cx.error(
                &sp(v),
                format!(
                    "`{what}` = \"{s}\" is too short; expected at least {}",
                    super::units::Time::from_ns(min_ns)
                ),
            );
            None
        }
        Err(e) => {
            cx.error(
                &sp(v),
                format!("`{what}` \"{s}\": {e}; {DURATION_EXPECTED}"),
            );
            None
        }
    }
}

fn int_u32(cx: &mut Ctx, v: &Option<S<i64>>, what: &str, lo: u32, hi: u32, dflt: u32) -> u32 {
    match v {
        None => dflt,
        Some(v) => {
            check::int_in(cx, v, what, i64::from(lo), i64::from(hi)).map_or(dflt, |n| n as u32)
        }
    }
}

/// `[tree.NAME.apps]`, defaults filled in (no apps or rules yet).
pub(crate) fn table(cx: &mut Ctx, raw: Option<&RawAppsTable>) -> AppsSpec {
    let mut spec = AppsSpec::empty();
    let Some(raw) = raw else { return spec };
    spec.flows = int_u32(cx, &raw.flows, "flows", 1, MAX_FLOWS, DEFAULT_FLOWS);
    spec.inspect_slots = int_u32(
        cx,
        &raw.inspect_slots,
        "inspect_slots",
        1,
        MAX_INSPECT_SLOTS,
        DEFAULT_INSPECT_SLOTS,
    );
    spec.inspect_packets = int_u32(
        cx,
        &raw.inspect_packets,
        "inspect_packets",
        1,
        MAX_INSPECT_PACKETS,
        DEFAULT_INSPECT_PACKETS,
    );
    if let Some(v) = &raw.idle_timeout {
        spec.idle_timeout =
            duration(cx, v, "idle_timeout", 1_000_000_000).unwrap_or(DEFAULT_IDLE_TIMEOUT);
    }
    if let Some(v) = &raw.bulk_window {
        spec.bulk_window = duration(cx, v, "bulk_window", 1_000_000).unwrap_or(spec.bulk_window);
    }
    spec
}

/// An app name: it becomes a metrics label and a `weir show` key.
pub(crate) fn name(cx: &mut Ctx, v: &S<String>) -> bool {
    let s = v.get_ref();
    let ok = !s.is_empty()
        && s.len() <= MAX_APP_NAME
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
    if !ok {
        cx.error(
            &sp(v),
            format!("bad app name {s:?}; expected 1..={MAX_APP_NAME} characters of A-Z a-z 0-9 _ . - (it becomes a metrics label), like \"voice\""),
        );
    }
    ok
}

/// `dscp` and `remark` of an app or a class: `Ok(None)` when neither is
/// given, `Err(())` when something was wrong (reported).
pub(crate) fn remark(
    cx: &mut Ctx,
    dscp: Option<&S<StrOrInt>>,
    how: Option<&S<String>>,
) -> Result<Option<Remark>, ()> {
    let mut ok = true;
    let if_unmarked = match how.map(|v| (v, v.get_ref().as_str())) {
        None | Some((_, "set")) => false,
        Some((_, "if-unmarked")) => true,
        Some((v, other)) => {
            ok = false;
            cx.error(
                &sp(v),
                format!("unknown `remark` \"{other}\"; expected \"set\" (always set the DSCP) or \"if-unmarked\" (only on frames that carry DSCP 0)"),
            );
            false
        }
    };
    let d = match dscp {
        Some(v) => match filter::dscp(cx, v) {
            Some(d) => Some(d),
            None => return Err(()),
        },
        None => {
            if let Some(v) = how {
                ok = false;
                cx.error(
                    &sp(v),
                    "`remark` says how to set a DSCP, but there is no `dscp`; expected `dscp` too (like dscp = \"EF\")",
                );
            }
            None
        }
    };
    if !ok {
        return Err(());
    }
    Ok(d.map(|d| {
        if if_unmarked {
            Remark::IfUnmarked(d.value())
        } else {
            Remark::Set(d.value())
        }
    }))
}

/// One entry of `ports`: a port or an inclusive range `"lo-hi"`.
fn port_range(cx: &mut Ctx, v: &S<StrOrInt>) -> Option<(u16, u16)> {
    let expected = "expected a port 0..=65535 or a range like \"10000-20000\"";
    let num = |s: &str| parse_int(s).and_then(|n| u16::try_from(n).ok());
    let r = match v.get_ref() {
        StrOrInt::Int(i) => u16::try_from(*i).ok().map(|p| (p, p)),
        StrOrInt::Str(s) => {
            match s.split_once('-') {
                Some((a, b)) => match (num(a), num(b)) {
                    (Some(lo), Some(hi)) if lo <= hi => Some((lo, hi)),
                    (Some(lo), Some(hi)) => {
                        cx.error(
                        &sp(v),
                        format!("`ports` range \"{s}\" is backwards ({lo} > {hi}); expected low-high"),
                    );
                        return None;
                    }
                    _ => None,
                },
                None => num(s).map(|p| (p, p)),
            }
        }
    };
    if r.is_none() {
        let shown = match v.get_ref() {
            StrOrInt::Int(i) => i.to_string(),
            StrOrInt::Str(s) => format!("\"{s}\""),
        };
        cx.error(&sp(v), format!("bad `ports` entry {shown}; {expected}"));
    }
    r
}

fn globs(cx: &mut Ctx, v: &S<Vec<S<String>>>, what: &str) -> Option<Vec<Glob>> {
    if v.get_ref().is_empty() {
        cx.error(
            &sp(v),
            format!("empty `{what}` list matches nothing; expected names like [\"*.example.com\"], or no `{what}`"),
        );
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    for g in v.get_ref() {
        match Glob::new(g.get_ref()) {
            Ok(glob) => out.push(glob),
            Err(e) => {
                ok = false;
                cx.error(
                    &sp(g),
                    format!("bad `{what}` pattern {:?}: {e}", g.get_ref()),
                );
            }
        }
    }
    ok.then_some(out)
}

/// `avg_size`: `"160-320"`, `">1000"`, `">=1000"`, `"<200"`, `"<=200"` (the
/// comparisons strict or not as written, as the seed writes them) or an
/// exact size; bytes, inclusive bounds.
fn avg_size(cx: &mut Ctx, v: &S<StrOrInt>) -> Option<(u32, u32)> {
    let expected = "expected bytes as a range \"160-320\", a bound \">1000\", \">=1000\", \"<200\", \"<=200\", or one size like 160";
    let num = |s: &str| parse_int(s).and_then(|n| u32::try_from(n).ok());
    let s = match v.get_ref() {
        StrOrInt::Int(i) => match u32::try_from(*i) {
            Ok(n) => return Some((n, n)),
            Err(_) => {
                cx.error(&sp(v), format!("bad `avg_size` {i}; {expected}"));
                return None;
            }
        },
        StrOrInt::Str(s) => s.trim(),
    };
    let empty = |cx: &mut Ctx| {
        cx.error(
            &sp(v),
            format!("`avg_size` \"{s}\" is an empty range: no average size is in it; {expected}"),
        );
        None
    };
    let parsed = if let Some(n) = s.strip_prefix(">=") {
        num(n).map(|n| (n, u32::MAX))
    } else if let Some(n) = s.strip_prefix("<=") {
        num(n).map(|n| (0, n))
    } else if let Some(n) = s.strip_prefix('>') {
        match num(n) {
            Some(u32::MAX) => return empty(cx),
            Some(n) => Some((n + 1, u32::MAX)),
            None => None,
        }
    } else if let Some(n) = s.strip_prefix('<') {
        match num(n) {
            Some(0) => return empty(cx),
            Some(n) => Some((0, n - 1)),
            None => None,
        }
    } else if let Some((a, b)) = s.split_once('-') {
        match (num(a), num(b)) {
            (Some(lo), Some(hi)) if lo <= hi => Some((lo, hi)),
            (Some(_), Some(_)) => return empty(cx),
            _ => None,
        }
    } else {
        num(s).map(|n| (n, n))
    };
    if parsed.is_none() {
        cx.error(&sp(v), format!("bad `avg_size` \"{s}\"; {expected}"));
    }
    parsed
}

/// ns² in one unit² of the variance's units.
const VARIANCE_UNITS: &[(&[&str], u128)] = &[
    (&["", "s2", "s²"], 1_000_000_000_000_000_000),
    (&["ms2", "ms²"], 1_000_000_000_000),
    (&["us2", "us²", "µs2", "µs²"], 1_000_000),
    (&["ns2", "ns²"], 1),
];

/// `iat_variance = "<0.1"`: the inter-arrival times' variance is below
/// this many seconds² (the seed's unit), or `ms2`/`us2`/`ns2` as written
/// (`"<4ms2"`); → ns², exactly (decimal arithmetic, truncated).
fn variance(cx: &mut Ctx, v: &S<String>) -> Option<u64> {
    let s = v.get_ref().trim();
    let bad = |cx: &mut Ctx, why: &str| {
        cx.error(
            &sp(v),
            format!("bad `iat_variance` \"{s}\": {why}; expected \"<V\" with V in seconds² as the seed writes it (\"<0.1\"), or with a unit s2, ms2, us2, ns2 (\"<4ms2\")"),
        );
        None
    };
    let Some(rest) = s.strip_prefix('<') else {
        return bad(cx, "it must start with '<' (the variance is below V)");
    };
    if rest.starts_with('=') {
        return bad(cx, "only '<' is supported");
    }
    let rest = rest.trim();
    let split = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (num, unit) = (&rest[..split], rest[split..].trim());
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
        return bad(cx, "no number");
    }
    let Some(&(_, per)) = VARIANCE_UNITS
        .iter()
        .find(|(names, _)| names.iter().any(|n| n.eq_ignore_ascii_case(unit)))
    else {
        return bad(cx, &format!("unknown unit \"{unit}\""));
    };
    // 18 fraction digits are ns² of s²; more only ask for less than 1 ns².
    if frac.len() > 18 || int.len() > 20 {
        return bad(cx, "too many digits");
    }
    let int_v: u128 = if int.is_empty() {
        0
    } else {
        match int.parse() {
            Ok(n) => n,
            Err(_) => return bad(cx, "no number"),
        }
    };
    let frac_v: u128 = if frac.is_empty() {
        0
    } else {
        match frac.parse() {
            Ok(n) => n,
            Err(_) => return bad(cx, "no number"),
        }
    };
    let den = 10u128.pow(frac.len() as u32);
    let ns2 = int_v
        .checked_mul(per)
        .and_then(|i| i.checked_add(frac_v * per / den));
    match ns2.and_then(|n| u64::try_from(n).ok()) {
        Some(0) => bad(
            cx,
            "no variance is below 0 ns² (a variance is never negative)",
        ),
        Some(n) => Some(n),
        None => bad(cx, "above 18.4 s² (2^64 ns²)"),
    }
}

fn bulk(cx: &mut Ctx, v: &S<RawBulk>, link: Option<Rate>) -> Option<Bulk> {
    let b = v.get_ref();
    let mut ok = true;
    let pps = match &b.pps {
        Some(p) => {
            let r = check::int_in(cx, p, "pps", 1, i64::from(u32::MAX)).map(|n| n as u32);
            ok &= r.is_some();
            r
        }
        None => None,
    };
    let bytes_per_sec = match &b.rate {
        Some(r) => match check::rate(cx, r, "rate", link) {
            Some(rate) if rate.bytes_per_sec() > 0 => Some(rate.bytes_per_sec()),
            Some(rate) => {
                ok = false;
                cx.error(
                    &sp(r),
                    format!("`rate` = {rate} is below 1 byte/s; expected at least 8bit"),
                );
                None
            }
            None => {
                ok = false;
                None
            }
        },
        None => None,
    };
    let hold = match &b.hold {
        Some(h) => {
            let r = duration(cx, h, "hold", 0);
            ok &= r.is_some();
            r.unwrap_or(DEFAULT_BULK_HOLD)
        }
        None => DEFAULT_BULK_HOLD,
    };
    if b.pps.is_none() && b.rate.is_none() {
        ok = false;
        cx.error(
            &sp(v),
            "`bulk` needs a trigger; expected `pps` (packets/s) and/or `rate` (like \"50mbit\"), e.g. bulk = { pps = 2000, hold = \"5s\" }",
        );
    }
    ok.then_some(Bulk {
        pps,
        bytes_per_sec,
        hold,
    })
}

fn proto_text(p: u8) -> String {
    ip_proto_name(p).map_or_else(|| p.to_string(), str::to_string)
}

/// Check one rule; returns its prio and its spec (`app` still 0). None if
/// anything was wrong (all of it reported).
pub(crate) fn rule(
    cx: &mut Ctx,
    span: &Span,
    m: &RawMatch,
    link: Option<Rate>,
) -> Option<(u16, RuleSpec)> {
    let errors_before = cx.errors.len();
    let prio = m
        .prio
        .as_ref()
        .and_then(|v| check::int_in(cx, v, "prio", 0, 65535))
        .map_or(DEFAULT_RULE_PRIO, |p| p as u16);
    let protocol = m
        .protocol
        .as_ref()
        .and_then(|v| filter::ip_proto(cx, v, "protocol"));
    let mut ports = Vec::new();
    if let Some(v) = &m.ports {
        if v.get_ref().is_empty() {
            cx.error(
                &sp(v),
                "empty `ports` list matches nothing; expected ports like [5060, \"10000-20000\"], or no `ports`",
            );
        }
        ports.extend(v.get_ref().iter().filter_map(|p| port_range(cx, p)));
    }
    let sni = m.sni.as_ref().and_then(|v| globs(cx, v, "sni"));
    let host = m.host.as_ref().and_then(|v| globs(cx, v, "host"));
    let avg = m.avg_size.as_ref().and_then(|v| avg_size(cx, v));
    let var = m.iat_variance.as_ref().and_then(|v| variance(cx, v));
    let bulk = m.bulk.as_ref().and_then(|v| bulk(cx, v, link));
    let long_lived = m
        .long_lived
        .as_ref()
        .and_then(|v| duration(cx, v, "long_lived", 1_000_000));
    let min_packets = match &m.min_packets {
        Some(v) => check::int_in(cx, v, "min_packets", 1, i64::from(u32::MAX)).map(|n| n as u32),
        None => Some(DEFAULT_MIN_PACKETS),
    };

    // What can never match.
    if let (Some(p), Some(v)) = (protocol, &m.ports) {
        if !PORTED.contains(&p) {
            cx.error(
                &sp(v),
                format!("`ports` with protocol {} can never match: that protocol has no ports; expected protocol tcp, udp, sctp or udplite", proto_text(p)),
            );
        }
    }
    if let (Some(p), Some(v)) = (protocol, &m.sni) {
        if p != TCP && p != UDP {
            cx.error(
                &sp(v),
                format!("`sni` with protocol {} can never match: server names are read from TLS over tcp and QUIC over udp; expected protocol tcp or udp, or no protocol", proto_text(p)),
            );
        }
    }
    if let (Some(p), Some(v)) = (protocol, &m.host) {
        if p != TCP {
            cx.error(
                &sp(v),
                format!("`host` with protocol {} can never match: the Host header is read from HTTP/1 over tcp; expected protocol tcp, or no protocol", proto_text(p)),
            );
        }
    }
    if let (Some(_), Some(h)) = (&m.sni, &m.host) {
        cx.error(
            &sp(h),
            "`host` and `sni` in one rule can never both match: a flow is either TLS/QUIC (a server name) or cleartext HTTP (a Host header); expected two rules of the app, one with each",
        );
    }
    let name_key = match (&m.sni, &m.host) {
        (Some(_), _) => Some("sni"),
        (None, Some(_)) => Some("host"),
        (None, None) => None,
    };
    let behaviour_keys: [(&str, Option<Span>); 7] = [
        ("avg_size", m.avg_size.as_ref().map(sp)),
        ("iat_variance", m.iat_variance.as_ref().map(sp)),
        ("regular", m.regular.as_ref().map(sp)),
        ("bursty", m.bursty.as_ref().map(sp)),
        ("bulk", m.bulk.as_ref().map(sp)),
        ("long_lived", m.long_lived.as_ref().map(sp)),
        ("min_packets", m.min_packets.as_ref().map(sp)),
    ];
    if let Some(name_key) = name_key {
        for (what, s) in &behaviour_keys {
            if let Some(s) = s {
                cx.error(
                    s,
                    format!("`{what}` can't be in a rule with `{name_key}`: a name rule is decided on the packet that carries the name, before the flow has any behaviour; expected another rule of the app for the behaviour"),
                );
            }
        }
    }
    let has_stats = m.avg_size.is_some()
        || m.iat_variance.is_some()
        || m.regular.is_some()
        || m.bursty.is_some();
    if let (Some(v), None, false) = (&m.min_packets, name_key, has_stats) {
        cx.warn(
            &sp(v),
            "`min_packets` has no effect here: it is when avg_size, iat_variance, regular and bursty are known, and the rule has none of them",
        );
    }
    let any = m.protocol.is_some()
        || m.ports.is_some()
        || name_key.is_some()
        || behaviour_keys[..6].iter().any(|(_, s)| s.is_some());
    if !any {
        cx.error(
            span,
            "this rule has no matcher, so it would match every flow; expected at least one of protocol, ports, sni, host, avg_size, iat_variance, regular, bursty, bulk, long_lived (to send every other flow to a class, make that class the tree's `default`)",
        );
    }
    if cx.errors.len() > errors_before {
        return None;
    }
    Some((
        prio,
        RuleSpec {
            app: 0,
            protocol,
            ports,
            sni: sni.unwrap_or_default(),
            host: host.unwrap_or_default(),
            behaviour: Behaviour {
                avg_size: avg,
                iat_variance_below: var,
                regular: m.regular.as_ref().map(|v| *v.get_ref()),
                bursty: m.bursty.as_ref().map(|v| *v.get_ref()),
                bulk,
                long_lived,
                min_packets: min_packets?,
            },
        },
    ))
}
