//! `[[sla]]` and `[[policy]]`: threshold rules with actions, and per-class
//! allocation policies (bounds, utilization-driven steps, active-hours
//! schedules, SLA penalties), checked into the typed values the policy
//! engine (the `weir-policy` crate) runs.
//!
//! Everything an engine decision depends on is resolved here, once: class
//! references become (tree, class) indexes, percentages become rates,
//! `when` expressions become a [`Condition`], exec arguments become
//! [`Template`]s whose placeholders are known to exist. A bad token inside
//! a string (`utilization >> 80%`, `{vaule}`, `mon-fry`) is reported at
//! its own column when the string is written without escapes.
//!
//! The parts: `types` (what the engine runs), `when` (conditions),
//! `template` (exec arguments), `schedule` (active hours), `build` (raw
//! entries → checked values); the small value parsers they share are here.

mod build;
mod schedule;
mod template;
mod types;
mod when;

pub(crate) use build::build;
pub use schedule::{Weekday, Window, MINUTES_PER_DAY};
pub use template::{Piece, Placeholder, Template};
pub use types::{Action, Adjust, Penalty, Phase, Policy, Severity, SlaRule, Target};
pub use when::{Condition, Metric, Op, Unit};

use crate::diag::{Ctx, Span};
use crate::raw::{sp, StrOrInt, S};
use crate::units::{parse_duration, DurationError, RULE_DURATION};
use crate::Tree;

/// A position inside a string value: the token's own bytes when the source
/// holds the string verbatim between quotes, else the whole value.
fn inner(src: &str, v: &S<String>, at: usize, len: usize) -> Span {
    let span = v.span();
    let raw = src.get(span.clone()).unwrap_or("");
    let value = v.get_ref();
    let verbatim = raw.len() == value.len() + 2
        && (raw.starts_with('"') || raw.starts_with('\''))
        && raw.get(1..raw.len() - 1) == Some(value.as_str());
    if verbatim && at + len <= value.len() {
        let start = span.start + 1 + at;
        Some(start..start + len.max(1))
    } else {
        Some(span)
    }
}

/// A plain decimal (`80`, `80.5`, `.5`): no signs, exponents, `inf`.
fn decimal(s: &str) -> Option<f64> {
    let digits = s.bytes().filter(u8::is_ascii_digit).count();
    let dots = s.bytes().filter(|&b| b == b'.').count();
    if digits == 0 || dots > 1 || digits + dots != s.len() {
        return None;
    }
    s.parse().ok()
}

/// Durations of rules: `30s`, `500ms`, `5min`/`5m`, `2h`. A unit is
/// required: a bare number is microseconds to tc and seconds to most
/// people.
fn duration(s: &str) -> Result<u64, RuleDurationError> {
    let s = s.trim();
    parse_duration(s, &RULE_DURATION).map_err(|e| {
        let input = s.to_string();
        match e {
            DurationError::NoNumber | DurationError::BadNumber => {
                RuleDurationError::NoNumber(input)
            }
            DurationError::NoUnit => RuleDurationError::NoUnit(input),
            DurationError::UnknownUnit(unit) => RuleDurationError::UnknownUnit { input, unit },
            DurationError::TooLong => RuleDurationError::TooLong(input),
        }
    })
}

/// Why a rule's duration did not parse, worded for a config diagnostic.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
enum RuleDurationError {
    #[error("duration \"{0}\" does not start with a number")]
    NoNumber(String),
    #[error("duration \"{0}\" has no unit; expected ms, s, min or h, like \"30s\"")]
    NoUnit(String),
    #[error(
        "unknown unit \"{unit}\" in duration \"{input}\"; expected ms, s, min or h, like \"30s\""
    )]
    UnknownUnit { input: String, unit: String },
    #[error("duration \"{0}\" is longer than a week")]
    TooLong(String),
}

/// `"90%"` → 90.0, within `0..=max`.
fn percent(cx: &mut Ctx, v: &S<StrOrInt>, what: &str, max: f64) -> Option<f64> {
    let p = match v.get_ref() {
        StrOrInt::Str(s) => s.trim().strip_suffix('%').and_then(|n| decimal(n.trim())),
        StrOrInt::Int(_) => None,
    };
    match p {
        Some(p) if p <= max => Some(p),
        _ => {
            cx.error(
                &sp(v),
                format!("bad `{what}`; expected a percentage 0%..={max}% like \"90%\""),
            );
            None
        }
    }
}

/// A factor in (0, 1].
fn factor(cx: &mut Ctx, v: &S<super::raw::Number>, what: &str) -> Option<f64> {
    let f = v.get_ref().0;
    if f > 0.0 && f <= 1.0 {
        Some(f)
    } else {
        cx.error(
            &sp(v),
            format!("`{what}` = {f} is out of range; expected a number in (0, 1], like 0.5 (it multiplies: 0.5 halves)"),
        );
        None
    }
}

fn list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<&str> = names.collect();
    if v.is_empty() {
        "(none defined)".to_string()
    } else {
        v.join(", ")
    }
}

fn find_tree(cx: &mut Ctx, trees: &[Tree], v: &S<String>) -> Option<u32> {
    let name = v.get_ref();
    match trees.iter().position(|t| &t.name == name) {
        Some(i) => Some(i as u32),
        None => {
            cx.error(
                &sp(v),
                format!(
                    "no tree named \"{name}\"; expected one of: {}",
                    list(trees.iter().map(|t| t.name.as_str()))
                ),
            );
            None
        }
    }
}

fn find_class(cx: &mut Ctx, trees: &[Tree], tree: u32, v: &S<String>) -> Option<u32> {
    let t = &trees[tree as usize];
    let s = v.get_ref();
    if let Some(i) = t.class_index(s) {
        return Some(i);
    }
    let msg = if s.matches(':').count() == 2 {
        format!("class \"{s}\" looks like TREE:CLASS; expected the tree and the class in their own keys: tree = \"{}\", class = \"{}\"", s.split(':').next().unwrap_or(""), s.split_once(':').map_or("", |x| x.1))
    } else {
        format!(
            "no class \"{s}\" in tree `{}`; expected a class id like \"1:10\" or a class name (classes: {}{})",
            t.name,
            (0..t.classes.len().min(12))
                .map(|i| t.label(i as u32))
                .collect::<Vec<_>>()
                .join(", "),
            if t.classes.len() > 12 { ", …" } else { "" }
        )
    };
    cx.error(&sp(v), msg);
    None
}

/// `tree` + `class` keys → (tree, class). `default` is the rule's own class
/// (used when both keys are absent; `class` alone reuses its tree).
fn class_ref(
    cx: &mut Ctx,
    trees: &[Tree],
    tree: &Option<S<String>>,
    class: &Option<S<String>>,
    default: Option<(u32, u32)>,
    at: &Span,
    what: &str,
) -> Option<(u32, u32)> {
    match (tree, class) {
        (None, None) => {
            if default.is_none() {
                cx.error(
                    at,
                    format!("`{what}` needs `tree` and `class` (this rule watches an interface, not a class); expected {what} = {{ tree = \"up\", class = \"1:30\", … }}"),
                );
            }
            default
        }
        (Some(t), None) => {
            cx.error(
                &sp(t),
                format!("`tree` without `class` in `{what}`; expected both, like tree = \"up\", class = \"1:30\""),
            );
            None
        }
        (None, Some(c)) => match default {
            Some((t, _)) => find_class(cx, trees, t, c).map(|c| (t, c)),
            None => {
                cx.error(
                    &sp(c),
                    format!("`class` without `tree` in `{what}`; expected both, like tree = \"up\", class = \"1:30\""),
                );
                None
            }
        },
        (Some(t), Some(c)) => {
            let t = find_tree(cx, trees, t)?;
            find_class(cx, trees, t, c).map(|c| (t, c))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_units() {
        assert_eq!(duration("30s"), Ok(30_000_000_000));
        assert_eq!(duration("1.5min"), Ok(90_000_000_000));
        assert_eq!(duration("250ms"), Ok(250_000_000));
        assert!(duration("30").is_err());
        assert!(duration("30y").is_err());
        assert!(duration("8d").is_err());
    }
}
