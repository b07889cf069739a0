//! Leaf qdiscs: `qdisc = { kind = "...", ... }` → `QdiscParams`, with the
//! defaults and range rules of tc and Linux.

use weir_dataplane::qdisc::{FifoLimit, FqCodelParams, QdiscParams, RedParams, SfqParams};

use super::check;
use super::diag::{Ctx, Span};
use super::raw::{sp, RawQdisc, S};
use super::units::{Rate, Size, Time};

/// The leaf qdisc a class gets when it names none: tc's default pfifo with
/// the interface's txqueuelen (1000) packets.
pub const DEFAULT_LEAF: QdiscParams = QdiscParams::Fifo(FifoLimit::Packets(1000));

/// bfifo's default limit: 1000 full Ethernet frames (tc: txqueuelen * MTU).
pub const BFIFO_DEFAULT_LIMIT: u64 = 1000 * 1514;

/// RED's default `bandwidth` (tc-red prints "RED: set bandwidth to 10Mbit").
pub const RED_DEFAULT_BANDWIDTH: Rate = Rate::from_bits_per_sec(10_000_000);

/// Linux SFQ limits (`sch_sfq.c`).
const SFQ_MAX_DEPTH: u64 = 127;
const SFQ_MAX_FLOWS: u64 = 0x10000 - SFQ_MAX_DEPTH - 1;

const KINDS: &str = "pfifo, bfifo, sfq, red or fq_codel";

/// Keys present in the table, with their spans, for the per-kind check.
fn present(q: &RawQdisc) -> Vec<(&'static str, Span)> {
    fn p<T>(v: &Option<S<T>>) -> Option<Span> {
        v.as_ref().map(sp)
    }
    let all = [
        ("limit", p(&q.limit)),
        ("perturb", p(&q.perturb)),
        ("quantum", p(&q.quantum)),
        ("divisor", p(&q.divisor)),
        ("flows", p(&q.flows)),
        ("depth", p(&q.depth)),
        ("min", p(&q.min)),
        ("max", p(&q.max)),
        ("avpkt", p(&q.avpkt)),
        ("burst", p(&q.burst)),
        ("probability", p(&q.probability)),
        ("ecn", p(&q.ecn)),
        ("harddrop", p(&q.harddrop)),
        ("adaptive", p(&q.adaptive)),
        ("bandwidth", p(&q.bandwidth)),
        ("target", p(&q.target)),
        ("interval", p(&q.interval)),
        ("ce_threshold", p(&q.ce_threshold)),
        ("memory_limit", p(&q.memory_limit)),
        ("drop_batch_size", p(&q.drop_batch_size)),
    ];
    all.into_iter()
        .filter_map(|(k, s)| s.map(|s| (k, s)))
        .collect()
}

/// Resolve a leaf qdisc. `link` is the tree's link rate (RED `bandwidth`
/// may be a percentage of it). Errors are reported; None if any.
pub(crate) fn resolve(cx: &mut Ctx, q: &S<RawQdisc>, link: Option<Rate>) -> Option<QdiscParams> {
    let span = sp(q);
    let q = q.get_ref();
    let kind = q.kind.get_ref().as_str();
    let allowed: &[&str] = match kind {
        "pfifo" | "bfifo" => &["limit"],
        "sfq" => &["limit", "perturb", "quantum", "divisor", "flows", "depth"],
        "red" => &[
            "limit",
            "min",
            "max",
            "avpkt",
            "burst",
            "probability",
            "ecn",
            "harddrop",
            "adaptive",
            "bandwidth",
        ],
        "fq_codel" => &[
            "limit",
            "flows",
            "quantum",
            "target",
            "interval",
            "ecn",
            "ce_threshold",
            "memory_limit",
            "drop_batch_size",
        ],
        other => {
            cx.error(
                &sp(&q.kind),
                format!("unknown qdisc kind \"{other}\"; expected {KINDS}"),
            );
            return None;
        }
    };
    let mut stray = false;
    for (key, s) in present(q) {
        if !allowed.contains(&key) {
            stray = true;
            cx.error(
                &s,
                format!(
                    "`{key}` is not a {kind} parameter; expected only: {}",
                    allowed.join(", ")
                ),
            );
        }
    }
    let params = match kind {
        "pfifo" => pfifo(cx, q),
        "bfifo" => bfifo(cx, q),
        "sfq" => sfq(cx, q),
        "red" => red(cx, q, &span, link),
        _ => fq_codel(cx, q),
    };
    if stray {
        return None;
    }
    params
}

fn pfifo(cx: &mut Ctx, q: &RawQdisc) -> Option<QdiscParams> {
    let limit = match &q.limit {
        Some(v) => check::count_in(cx, v, "limit", 1, u64::from(u32::MAX))? as u32,
        None => 1000,
    };
    Some(QdiscParams::Fifo(FifoLimit::Packets(limit)))
}

fn bfifo(cx: &mut Ctx, q: &RawQdisc) -> Option<QdiscParams> {
    let limit = match &q.limit {
        Some(v) => check::size_in(cx, v, "limit", 1, u64::MAX)?,
        None => BFIFO_DEFAULT_LIMIT,
    };
    Some(QdiscParams::Fifo(FifoLimit::Bytes(limit)))
}

/// Run every check, keep going after a failure, and give `None` if any
/// failed (so one run reports all bad keys of a qdisc).
macro_rules! opt {
    ($ok:ident, $e:expr) => {
        match $e {
            Some(v) => Some(v),
            None => {
                $ok = false;
                None
            }
        }
    };
}

fn sfq(cx: &mut Ctx, q: &RawQdisc) -> Option<QdiscParams> {
    let d = SfqParams::default();
    let mut ok = true;
    let perturb = q
        .perturb
        .as_ref()
        .and_then(|v| opt!(ok, check::time_secs(cx, v, "perturb")));
    // Linux keeps the per-round allotment in a short: quantum/8 < 32768.
    let quantum = q
        .quantum
        .as_ref()
        .and_then(|v| opt!(ok, check::size_in(cx, v, "quantum", 1, 262_136)));
    // tc: "Illegal limit, must be > 1".
    let limit = q
        .limit
        .as_ref()
        .and_then(|v| opt!(ok, check::count_in(cx, v, "limit", 2, u64::from(u32::MAX))));
    let divisor = q.divisor.as_ref().and_then(|v| {
        let n = opt!(ok, check::int_in(cx, v, "divisor", 1, 65536))?;
        if !(n as u64).is_power_of_two() {
            ok = false;
            cx.error(
                &sp(v),
                format!("`divisor` = {n} is not a power of two; expected 1, 2, 4, … 65536 (Linux sch_sfq)"),
            );
            return None;
        }
        Some(n as u64)
    });
    let flows = q.flows.as_ref().and_then(|v| {
        opt!(ok, check::int_in(cx, v, "flows", 1, SFQ_MAX_FLOWS as i64)).map(|n| n as u64)
    });
    let depth = q.depth.as_ref().and_then(|v| {
        opt!(ok, check::int_in(cx, v, "depth", 1, SFQ_MAX_DEPTH as i64)).map(|n| n as u64)
    });
    if !ok {
        return None;
    }
    let divisor = divisor.unwrap_or(u64::from(d.divisor));
    let depth = depth.unwrap_or(u64::from(d.depth));
    // Linux: more flows than hash buckets can never be active at once.
    let mut flows_v = flows.unwrap_or(u64::from(d.flows));
    if flows_v > divisor {
        if let Some(v) = &q.flows {
            cx.warn(
                &sp(v),
                format!("sfq `flows` {flows_v} is above `divisor` {divisor}; only {divisor} can be active (Linux reduces it too)"),
            );
        }
        flows_v = divisor;
    }
    let mut limit_v = limit.unwrap_or(u64::from(d.limit));
    if limit_v > depth * flows_v {
        if let Some(v) = &q.limit {
            cx.warn(
                &sp(v),
                format!(
                    "sfq `limit` {limit_v} is above depth x flows = {}; Linux reduces it to that, and so does weir",
                    depth * flows_v
                ),
            );
        }
        limit_v = depth * flows_v;
    }
    // Linux: an explicit limit also caps the flows (the default limit, 127,
    // leaves the default 128 flows alone).
    if limit.is_some() {
        flows_v = flows_v.min(limit_v);
    }
    Some(QdiscParams::Sfq(SfqParams {
        perturb_ns: perturb.map_or(d.perturb_ns, Time::ns),
        quantum: quantum.map_or(d.quantum, |q| q as u32),
        limit: limit_v as u32,
        divisor: divisor as u32,
        flows: flows_v as u32,
        depth: depth as u32,
    }))
}

/// Where to report about an optional key: at its value, or at the qdisc
/// table when the value was defaulted.
fn place<T>(v: &Option<S<T>>, table: &Span) -> Span {
    v.as_ref().map_or_else(|| table.clone(), sp)
}

fn red(cx: &mut Ctx, q: &RawQdisc, span: &Span, link: Option<Rate>) -> Option<QdiscParams> {
    let mut ok = true;
    let max32 = u64::from(u32::MAX);
    let limit = q
        .limit
        .as_ref()
        .and_then(|v| opt!(ok, check::size_in(cx, v, "limit", 1, max32)));
    let min = q
        .min
        .as_ref()
        .and_then(|v| opt!(ok, check::size_in(cx, v, "min", 0, max32)));
    let max = q
        .max
        .as_ref()
        .and_then(|v| opt!(ok, check::size_in(cx, v, "max", 1, max32)));
    let avpkt = q
        .avpkt
        .as_ref()
        .and_then(|v| opt!(ok, check::size_in(cx, v, "avpkt", 1, max32)));
    let burst = q
        .burst
        .as_ref()
        .and_then(|v| opt!(ok, check::int_in(cx, v, "burst", 1, i64::from(u32::MAX))))
        .map(|b| b as u64);
    let probability = match &q.probability {
        Some(v) => {
            let p = v.get_ref().0;
            if p.is_finite() && p > 0.0 && p <= 1.0 {
                p
            } else {
                ok = false;
                cx.error(
                    &sp(v),
                    format!("`probability` = {p} is out of range; expected 0 < probability <= 1 (e.g. 0.02 for 2%)"),
                );
                0.02
            }
        }
        None => 0.02,
    };
    let bandwidth = q
        .bandwidth
        .as_ref()
        .and_then(|v| opt!(ok, check::shaping_rate(cx, v, "bandwidth", link)));
    if q.avpkt.is_none() {
        ok = false;
        cx.error(
            span,
            "red needs `avpkt` (the average packet size, bytes), as tc does; expected e.g. avpkt = 1000",
        );
    }
    if q.limit.is_none() && q.min.is_none() && q.max.is_none() {
        ok = false;
        cx.error(
            span,
            "red needs at least one of `limit`, `min`, `max` to size its thresholds; expected e.g. min = 10000, max = 30000",
        );
    }
    if !ok {
        return None;
    }
    let avpkt = avpkt?;
    // tc-red's defaults (Sally Floyd's recommendations): max = 3 min or
    // limit / 4, min = max / 3, burst = (2 min + max) / (3 avpkt).
    let max = max.unwrap_or_else(|| match (min, limit) {
        (Some(m), _) => m.saturating_mul(3),
        (None, Some(l)) => l / 4,
        (None, None) => 0,
    });
    let min = min.unwrap_or(max / 3);
    if min >= max {
        let at = if q.min.is_some() {
            place(&q.min, span)
        } else {
            place(&q.max, span)
        };
        cx.error(
            &at,
            format!(
                "red `min` {} is not below `max` {}; expected min < max",
                Size::from_bytes(min),
                Size::from_bytes(max)
            ),
        );
        return None;
    }
    if max > max32 {
        cx.error(
            &place(&q.min, span),
            format!("red `max` (3 x min = {max}) does not fit 32 bits; expected a smaller min or an explicit max"),
        );
        return None;
    }
    let burst = burst.unwrap_or((2 * min + max) / (3 * avpkt));
    // weir's own default: tc refuses a RED without `limit`; four times
    // `max` leaves room for bursts above the average.
    let limit = match limit {
        Some(l) => l,
        None => {
            if max.saturating_mul(4) > max32 {
                cx.error(
                    span,
                    "red without `limit` defaults it to 4 x max, which does not fit 32 bits; expected an explicit limit",
                );
                return None;
            }
            4 * max
        }
    };
    if limit < max {
        cx.warn(
            &place(&q.limit, span),
            format!(
                "red `limit` {} is below `max` {}: the queue fills before RED reaches max probability",
                Size::from_bytes(limit),
                Size::from_bytes(max)
            ),
        );
    }
    // tc_red_eval_ewma: the average must be able to rise from 0 to `min`
    // within `burst` back-to-back packets of `avpkt`. The same function sets
    // RED's weight in the dataplane, so the check and the queue agree.
    if burst * avpkt < min {
        cx.error(
            &place(&q.burst, span),
            format!(
                "red `burst` {burst} is too small for min {} / avpkt {}; expected at least {} (tc_red_eval_ewma)",
                Size::from_bytes(min),
                Size::from_bytes(avpkt),
                1 + min / avpkt
            ),
        );
        return None;
    }
    let wlog = match (u32::try_from(min), u32::try_from(avpkt)) {
        (Ok(min), Ok(avpkt)) => u32::try_from(burst)
            .ok()
            .and_then(|burst| weir_dataplane::qdisc::red::ewma_log(min, burst, avpkt)),
        _ => None,
    };
    match wlog {
        None => {
            cx.error(
                &place(&q.burst, span),
                format!("red `burst` {burst} is too large: no EWMA weight fits (tc_red_eval_ewma); expected a smaller burst"),
            );
            return None;
        }
        Some(l) if l >= 10 => cx.warn(
            &place(&q.burst, span),
            format!(
                "red `burst` {burst} seems too large (EWMA weight 2^-{l}): the average reacts slowly; tc warns the same"
            ),
        ),
        Some(_) => {}
    }
    // tc_red_eval_P: probability / (max - min) must be representable as
    // 2^-Plog with Plog < 32.
    let mut p = probability / (max - min) as f64;
    if !(0..32).any(|_| {
        let over = p > 1.0;
        p *= 2.0;
        over
    }) {
        cx.error(
            &place(&q.probability, span),
            format!(
                "red `probability` {probability} is too small for max - min = {} bytes (tc_red_eval_P); expected a larger probability or a narrower min..max",
                max - min
            ),
        );
        return None;
    }
    let probability_fp = (probability * 4_294_967_296.0).min(f64::from(u32::MAX)) as u32;
    let flag = |b: &Option<S<bool>>| b.as_ref().is_some_and(|v| *v.get_ref());
    Some(QdiscParams::Red(RedParams {
        min: min as u32,
        max: max as u32,
        limit: limit as u32,
        avpkt: avpkt as u32,
        burst: u32::try_from(burst).unwrap_or(u32::MAX),
        probability: probability_fp,
        ecn: flag(&q.ecn),
        harddrop: flag(&q.harddrop),
        adaptive: flag(&q.adaptive),
        bandwidth: bandwidth.unwrap_or(RED_DEFAULT_BANDWIDTH).bytes_per_sec(),
    }))
}

fn fq_codel(cx: &mut Ctx, q: &RawQdisc) -> Option<QdiscParams> {
    let d = FqCodelParams::default();
    let mut ok = true;
    let max_us = u64::from(u32::MAX) * 1000;
    let limit = q
        .limit
        .as_ref()
        .and_then(|v| opt!(ok, check::count_in(cx, v, "limit", 1, u64::from(u32::MAX))));
    let flows = q
        .flows
        .as_ref()
        .and_then(|v| opt!(ok, check::int_in(cx, v, "flows", 1, 65536)));
    // Linux raises a quantum below 256 to 256 and refuses one above 1 MiB.
    let quantum = q
        .quantum
        .as_ref()
        .and_then(|v| opt!(ok, check::size_in(cx, v, "quantum", 256, 1 << 20)));
    let mut time_in = |v: &Option<S<super::raw::StrOrInt>>, what: &str, lo: u64| {
        v.as_ref().and_then(|v| {
            let t = opt!(ok, check::time(cx, v, what))?;
            if t.ns() < lo || t.ns() > max_us {
                ok = false;
                cx.error(
                    &sp(v),
                    format!(
                        "`{what}` = {t} is out of range; expected {} ..= {} (tc sends microseconds in 32 bits)",
                        Time::from_ns(lo),
                        Time::from_ns(max_us)
                    ),
                );
                return None;
            }
            Some(t)
        })
    };
    let target = time_in(&q.target, "target", 1);
    let interval = time_in(&q.interval, "interval", 1);
    let ce_threshold = time_in(&q.ce_threshold, "ce_threshold", 0);
    // Linux caps memory_limit at 2^31 bytes.
    let memory_limit = q
        .memory_limit
        .as_ref()
        .and_then(|v| opt!(ok, check::size_in(cx, v, "memory_limit", 1, 1 << 31)));
    let drop_batch = q
        .drop_batch_size
        .as_ref()
        .and_then(|v| opt!(ok, check::int_in(cx, v, "drop_batch_size", 1, 65536)));
    if !ok {
        return None;
    }
    let p = FqCodelParams {
        limit: limit.map_or(d.limit, |v| v as u32),
        flows: flows.map_or(d.flows, |v| v as u32),
        quantum: quantum.map_or(d.quantum, |v| v as u32),
        target_ns: target.map_or(d.target_ns, Time::ns),
        interval_ns: interval.map_or(d.interval_ns, Time::ns),
        ecn: q.ecn.as_ref().map_or(d.ecn, |v| *v.get_ref()),
        ce_threshold_ns: ce_threshold.map(Time::ns).or(d.ce_threshold_ns),
        memory_limit: memory_limit.unwrap_or(d.memory_limit),
        drop_batch_size: drop_batch.map_or(d.drop_batch_size, |v| v as u32),
    };
    if p.target_ns >= p.interval_ns {
        let at = q
            .target
            .as_ref()
            .or(q.interval.as_ref())
            .map(sp)
            .unwrap_or_else(|| sp(&q.kind));
        cx.warn(
            &at,
            format!(
                "fq_codel `target` {} is not below `interval` {}; CoDel expects target to be 5-10% of interval",
                Time::from_ns(p.target_ns),
                Time::from_ns(p.interval_ns)
            ),
        );
    }
    Some(QdiscParams::FqCodel(p))
}
