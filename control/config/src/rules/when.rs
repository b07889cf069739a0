//! The `when` language: `METRIC OP THRESHOLD [for DURATION]`, tokenized
//! and checked into a [`Condition`] whose threshold is already in the
//! metric's unit. A bad token is reported at its own column.

use std::fmt;

use super::{decimal, duration, inner};
use crate::diag::{Ctx, Span};
use crate::raw::{sp, S};
use crate::units::{Rate, Size};

/// The measured quantity a [`Condition`] compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Percent: a class's measured rate over the ceil in force; an
    /// interface's sent rate over its tree's `link`.
    Utilization,
    /// Bits per second sent.
    Rate,
    /// Packets dropped per second.
    Drops,
    /// Overlimit events (a class hitting its ceil) per second.
    Overlimits,
    /// Queued now, in packets or bytes (see [`Unit`]).
    Backlog,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::Utilization => "utilization",
            Metric::Rate => "rate",
            Metric::Drops => "drops",
            Metric::Overlimits => "overlimits",
            Metric::Backlog => "backlog",
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The unit of a threshold and of the values compared with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unit {
    Percent,
    BitsPerSec,
    PerSec,
    Packets,
    Bytes,
}

impl Unit {
    /// The suffix used when a value is printed for a person.
    pub fn suffix(self) -> &'static str {
        match self {
            Unit::Percent => "%",
            Unit::BitsPerSec => "bit/s",
            Unit::PerSec => "/s",
            Unit::Packets => " packets",
            Unit::Bytes => " bytes",
        }
    }
}

/// A comparison operator of a `when` expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
        }
    }

    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Gt => value > threshold,
            Op::Ge => value >= threshold,
            Op::Lt => value < threshold,
            Op::Le => value <= threshold,
        }
    }
}

/// `METRIC OP THRESHOLD [for DURATION]`, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    pub metric: Metric,
    pub op: Op,
    /// In `unit`.
    pub threshold: f64,
    pub unit: Unit,
    /// How long the comparison must hold before the rule opens, and fail
    /// before it resolves (hysteresis); 0: at the first sample.
    pub for_ns: u64,
    /// The expression as written, for messages.
    pub text: String,
}

struct Tok<'a> {
    text: &'a str,
    at: usize,
}

/// Words, numbers-with-units and operator runs (`<`, `>=`, `==`), split at
/// spaces and at operator characters so `utilization>80%` reads the same.
fn tokens(s: &str) -> Vec<Tok<'_>> {
    let is_op = |c: char| matches!(c, '<' | '>' | '=' | '!');
    let mut out = Vec::new();
    let mut it = s.char_indices().peekable();
    while let Some(&(i, c)) = it.peek() {
        if c.is_whitespace() {
            it.next();
            continue;
        }
        let op = is_op(c);
        let mut end = i;
        while let Some(&(j, d)) = it.peek() {
            if d.is_whitespace() || is_op(d) != op {
                break;
            }
            end = j + d.len_utf8();
            it.next();
        }
        out.push(Tok {
            text: &s[i..end],
            at: i,
        });
    }
    out
}

const WHEN_FORM: &str = "METRIC OP THRESHOLD [for DURATION], like \"utilization > 80% for 30s\"";

/// What a rule's target can measure.
pub(super) struct TargetKind {
    pub(super) interface: bool,
    pub(super) leaf: bool,
}

pub(super) fn parse_when(
    cx: &mut Ctx,
    src: &str,
    v: &S<String>,
    target: &TargetKind,
) -> Option<Condition> {
    let s = v.get_ref().as_str();
    let toks = tokens(s);
    let at = |t: &Tok| inner(src, v, t.at, t.text.len());
    let end = inner(src, v, s.len(), 0);
    let Some(m) = toks.first() else {
        cx.error(&sp(v), format!("empty `when`; expected {WHEN_FORM}"));
        return None;
    };
    let metric = match m.text.to_ascii_lowercase().as_str() {
        "utilization" | "utilisation" | "util" => Metric::Utilization,
        "rate" => Metric::Rate,
        "drops" => Metric::Drops,
        "overlimits" => Metric::Overlimits,
        "backlog" => Metric::Backlog,
        other => {
            cx.error(
                &at(m),
                format!("unknown metric `{other}`; expected utilization, rate, drops, overlimits or backlog ({WHEN_FORM})"),
            );
            return None;
        }
    };
    if target.interface && matches!(metric, Metric::Overlimits | Metric::Backlog) {
        cx.error(
            &at(m),
            format!("an interface has no `{metric}`; expected utilization, rate or drops (or watch a class: tree = \"…\", class = \"…\")"),
        );
        return None;
    }
    if !target.interface && !target.leaf && matches!(metric, Metric::Drops | Metric::Backlog) {
        cx.error(
            &at(m),
            format!("`{metric}` of an inner class is always 0 (only leaves queue and drop); expected a leaf class, or utilization, rate or overlimits"),
        );
        return None;
    }
    let Some(o) = toks.get(1) else {
        cx.error(
            &end,
            format!(
                "missing comparison after `{}`; expected one of >, >=, <, <= ({WHEN_FORM})",
                m.text
            ),
        );
        return None;
    };
    let op = match o.text {
        ">" => Op::Gt,
        ">=" => Op::Ge,
        "<" => Op::Lt,
        "<=" => Op::Le,
        other => {
            cx.error(
                &at(o),
                format!("bad comparison `{other}`; expected one of >, >=, <, <= ({WHEN_FORM})"),
            );
            return None;
        }
    };
    let Some(t) = toks.get(2) else {
        cx.error(
            &end,
            format!("missing threshold after `{}`; expected {WHEN_FORM}", o.text),
        );
        return None;
    };
    // A unit may stand apart from its number: `500 packets`, `80 %`.
    let mut next = 3;
    let mut th = t.text.to_string();
    let th_at = t.at;
    if decimal(t.text).is_some() {
        if let Some(u) = toks.get(3).filter(|u| !u.text.eq_ignore_ascii_case("for")) {
            th = format!("{}{}", t.text, u.text);
            next = 4;
        }
    }
    let th_len = toks
        .get(next - 1)
        .map_or(t.text.len(), |u| u.at + u.text.len() - t.at);
    let th_span = inner(src, v, th_at, th_len);
    let (threshold, unit) = threshold(cx, metric, &th, &th_span)?;
    let mut for_ns = 0;
    if let Some(f) = toks.get(next) {
        if !f.text.eq_ignore_ascii_case("for") {
            cx.error(
                &at(f),
                format!("unexpected `{}` after the threshold; expected `for DURATION` or nothing ({WHEN_FORM})", f.text),
            );
            return None;
        }
        // `for 30 s`: join a detached unit as for thresholds.
        let rest: Vec<&Tok> = toks[next + 1..].iter().collect();
        let Some(d) = rest.first() else {
            cx.error(
                &end,
                "missing duration after `for`; expected a duration like \"30s\"",
            );
            return None;
        };
        let (text, used) = match rest.get(1) {
            Some(u) if decimal(d.text).is_some() => (format!("{}{}", d.text, u.text), 2),
            _ => (d.text.to_string(), 1),
        };
        let d_span = inner(
            src,
            v,
            d.at,
            rest[used - 1].at + rest[used - 1].text.len() - d.at,
        );
        match duration(&text) {
            Ok(ns) => for_ns = ns,
            Err(e) => {
                cx.error(&d_span, format!("bad duration after `for`: {e}"));
                return None;
            }
        }
        if let Some(x) = rest.get(used) {
            cx.error(
                &at(x),
                format!(
                    "unexpected `{}` after the duration; expected nothing more ({WHEN_FORM})",
                    x.text
                ),
            );
            return None;
        }
    }
    Some(Condition {
        metric,
        op,
        threshold,
        unit,
        for_ns,
        text: s.trim().to_string(),
    })
}

fn threshold(cx: &mut Ctx, metric: Metric, s: &str, span: &Span) -> Option<(f64, Unit)> {
    let lower = s.to_ascii_lowercase();
    let r = match metric {
        Metric::Utilization => match lower.strip_suffix('%').and_then(|n| decimal(n.trim())) {
            Some(p) if p <= 1000.0 => Ok((p, Unit::Percent)),
            Some(_) => Err(
                "utilization above 1000% never happens; expected a percentage like 80%".to_string(),
            ),
            None => Err(format!(
                "bad utilization threshold `{s}`; expected a percentage like 80%"
            )),
        },
        Metric::Rate => {
            if lower.ends_with('%') {
                Err(format!("rate threshold `{s}` is a percentage; expected a rate like 50mbit, or `utilization > {s}`"))
            } else {
                s.parse::<Rate>()
                    .map(|r| (r.bits_per_sec() as f64, Unit::BitsPerSec))
                    .map_err(|e| e.to_string())
            }
        }
        Metric::Drops | Metric::Overlimits => {
            let n = lower.strip_suffix("/s").unwrap_or(&lower);
            match decimal(n) {
                Some(n) => Ok((n, Unit::PerSec)),
                None => Err(format!(
                    "bad {metric} threshold `{s}`; expected a number per second, like 100 or 100/s"
                )),
            }
        }
        Metric::Backlog => {
            let split = lower
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(lower.len());
            let (num, unit) = lower.split_at(split);
            match (decimal(num), unit) {
                (Some(n), "p" | "pkt" | "pkts" | "packet" | "packets") if n.fract() == 0.0 => {
                    Ok((n, Unit::Packets))
                }
                (Some(_), "") => Err(format!("backlog threshold `{s}` has no unit; expected packets (500packets) or a size (64kb)")),
                _ => s
                    .parse::<Size>()
                    .map(|b| (b.bytes() as f64, Unit::Bytes))
                    .map_err(|e| format!("{e}; or packets, like 500packets")),
            }
        }
    };
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            cx.error(span, e);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_split_operators() {
        let t: Vec<&str> = tokens("util>=80% for 30s").iter().map(|t| t.text).collect();
        assert_eq!(t, ["util", ">=", "80%", "for", "30s"]);
    }
}
