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

use std::collections::HashMap;
use std::fmt;

use super::check;
use super::diag::{Ctx, Span};
use super::raw::{sp, RawAction, RawDoc, RawPolicy, RawSla, StrOrInt, S};
use super::units::{Rate, Size};
use super::{Pair, Tree};

/// How bad a violated SLA rule is; passed to `exec` hooks and stored with
/// the violation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What an SLA rule watches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A pair's port. `tree` is the tree whose egress is this port (the
    /// pair's `upload` for `outside`, `download` for `inside`), `link` its
    /// link rate: what the port's utilization is a share of.
    Interface {
        name: String,
        tree: Option<u32>,
        link: Option<Rate>,
    },
    /// One class: indexes into [`super::Config::trees`] and that tree's
    /// classes.
    Class { tree: u32, class: u32 },
}

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

/// A value substituted into an `exec` argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Placeholder {
    /// The rule's name.
    Rule,
    Severity,
    /// The measured value, a plain number in the metric's unit.
    Value,
    Threshold,
    Metric,
    /// `interface weir-out` or `up 1:10 (web)`.
    Target,
    /// `open` or `resolved`.
    State,
    /// The tree's name (class rules only).
    Tree,
    /// The class id (class rules only).
    Class,
    /// The interface name (interface rules only).
    Interface,
}

const PLACEHOLDERS: &[(&str, Placeholder)] = &[
    ("rule", Placeholder::Rule),
    ("severity", Placeholder::Severity),
    ("value", Placeholder::Value),
    ("threshold", Placeholder::Threshold),
    ("metric", Placeholder::Metric),
    ("target", Placeholder::Target),
    ("state", Placeholder::State),
    ("tree", Placeholder::Tree),
    ("class", Placeholder::Class),
    ("interface", Placeholder::Interface),
];

/// One piece of an `exec` argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Var(Placeholder),
}

/// An `exec` argument: text with `{placeholder}`s (`{{` and `}}` are
/// literal braces).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template(pub Vec<Piece>);

impl Template {
    /// The argument with each placeholder replaced by `value(p)`.
    pub fn render(&self, mut value: impl FnMut(Placeholder) -> String) -> String {
        let mut s = String::new();
        for p in &self.0 {
            match p {
                Piece::Text(t) => s.push_str(t),
                Piece::Var(v) => s.push_str(&value(*v)),
            }
        }
        s
    }
}

/// When an `exec` (or `log`) action runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// When the rule opens (the default for `exec`).
    Open,
    /// When it resolves.
    Resolve,
    /// Both (the default for `log`).
    Both,
}

impl Phase {
    pub fn on_open(self) -> bool {
        matches!(self, Phase::Open | Phase::Both)
    }
    pub fn on_resolve(self) -> bool {
        matches!(self, Phase::Resolve | Phase::Both)
    }
}

/// What an SLA rule does.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// A log line at the rule's severity.
    Log { on: Phase },
    /// Run `argv` without a shell (the caller runs it off the control
    /// thread, with a timeout). `argv[0]` has no placeholders.
    Exec { argv: Vec<Template>, on: Phase },
    /// Multiply the class's rate and ceil by `factor` (0 < factor <= 1)
    /// while the rule is open.
    Throttle { tree: u32, class: u32, factor: f64 },
    /// Replace the class's rate and/or ceil while the rule is open.
    Set {
        tree: u32,
        class: u32,
        rate: Option<Rate>,
        ceil: Option<Rate>,
    },
}

/// A checked `[[sla]]` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct SlaRule {
    pub name: String,
    pub target: Target,
    pub condition: Condition,
    pub severity: Severity,
    pub actions: Vec<Action>,
    /// Undo `throttle`/`set` when the rule resolves (default). When false
    /// they stay in force until the configuration is reloaded.
    pub restore: bool,
}

/// Days of the week, Monday first, as the engine's local time gives them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

const DAY_NAMES: [(&str, &str); 7] = [
    ("mon", "monday"),
    ("tue", "tuesday"),
    ("wed", "wednesday"),
    ("thu", "thursday"),
    ("fri", "friday"),
    ("sat", "saturday"),
    ("sun", "sunday"),
];

impl Weekday {
    pub const ALL: [Weekday; 7] = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];

    /// 0 for Monday … 6 for Sunday.
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn from_index(i: usize) -> Weekday {
        Weekday::ALL[i % 7]
    }

    pub fn previous(self) -> Weekday {
        Weekday::from_index(self.index() + 6)
    }

    pub fn name(self) -> &'static str {
        DAY_NAMES[self.index()].0
    }
}

pub const MINUTES_PER_DAY: u16 = 24 * 60;

/// One active-hours window of a policy: on `days`, from `start` (minute
/// of the day, inclusive) to `end` (exclusive). `end <= start` crosses
/// midnight: the window belongs to the day it starts on.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    /// Bit `d` set: the window starts on weekday `d` (Monday = 0).
    pub days: u8,
    pub start: u16,
    pub end: u16,
    pub rate: Option<Rate>,
    pub ceil: Option<Rate>,
    /// `mon-fri 08:00-18:00`, for messages.
    pub text: String,
}

impl Window {
    fn starts_on(&self, d: Weekday) -> bool {
        self.days & (1 << d.index()) != 0
    }

    /// Whether local time `(day, minute)` is inside the window.
    pub fn contains(&self, day: Weekday, minute: u16) -> bool {
        if self.start < self.end {
            self.starts_on(day) && (self.start..self.end).contains(&minute)
        } else {
            (self.starts_on(day) && minute >= self.start)
                || (self.starts_on(day.previous()) && minute < self.end)
        }
    }
}

/// `adjust`: every `every_ns`, the class's mean utilization of its rate
/// over the interval moves the rate one `step` up (above `high`) or down
/// (below `low`), within the policy's bounds.
#[derive(Clone, Debug, PartialEq)]
pub struct Adjust {
    /// Percent of the class's current rate.
    pub high: f64,
    pub low: f64,
    pub step: Rate,
    pub every_ns: u64,
}

/// `penalty`: while SLA rule `sla` is open, the class's ceil × `factor`.
#[derive(Clone, Debug, PartialEq)]
pub struct Penalty {
    /// Index into [`super::Config::sla`].
    pub sla: u32,
    pub factor: f64,
}

/// A checked `[[policy]]` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub name: String,
    pub tree: u32,
    pub class: u32,
    /// The guarantee never goes below this (default: the class's rate).
    pub min_rate: Rate,
    /// …nor above this (default: the class's rate).
    pub max_rate: Rate,
    /// The ceil never goes above this (default: the largest of the class's
    /// ceil, `max_rate` and the schedule's ceils).
    pub max_ceil: Rate,
    pub adjust: Option<Adjust>,
    /// Never overlapping.
    pub schedule: Vec<Window>,
    pub penalty: Option<Penalty>,
}

impl Policy {
    /// The schedule window in force at local time `(day, minute)`.
    pub fn window_at(&self, day: Weekday, minute: u16) -> Option<usize> {
        self.schedule.iter().position(|w| w.contains(day, minute))
    }
}

// ---------------------------------------------------------------------------
// Helpers

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
fn duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = (&s[..split], s[split..].trim());
    let Some(n) = decimal(num) else {
        return Err(format!("duration \"{s}\" does not start with a number"));
    };
    let scale: f64 = match unit.to_ascii_lowercase().as_str() {
        "ms" | "msec" | "msecs" => 1e6,
        "s" | "sec" | "secs" | "second" | "seconds" => 1e9,
        "m" | "min" | "mins" | "minute" | "minutes" => 60e9,
        "h" | "hour" | "hours" => 3600e9,
        "" => {
            return Err(format!(
                "duration \"{s}\" has no unit; expected ms, s, min or h, like \"30s\""
            ))
        }
        other => {
            return Err(format!(
            "unknown unit \"{other}\" in duration \"{s}\"; expected ms, s, min or h, like \"30s\""
        ))
        }
    };
    let ns = (n * scale).round();
    // A week is more than any rule means; it also keeps ns in a u64.
    if ns > 7.0 * 86400e9 {
        return Err(format!("duration \"{s}\" is longer than a week"));
    }
    Ok(ns as u64)
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

// ---------------------------------------------------------------------------
// `when` expressions

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
struct TargetKind {
    interface: bool,
    leaf: bool,
}

fn parse_when(cx: &mut Ctx, src: &str, v: &S<String>, target: &TargetKind) -> Option<Condition> {
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

// ---------------------------------------------------------------------------
// Exec templates

fn template(
    cx: &mut Ctx,
    src: &str,
    v: &S<String>,
    target: &TargetKind,
    program: bool,
) -> Option<Template> {
    let s = v.get_ref().as_str();
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = s.char_indices().peekable();
    while let Some((i, c)) = rest.next() {
        match c {
            '{' if rest.peek().map(|x| x.1) == Some('{') => {
                rest.next();
                text.push('{');
            }
            '}' if rest.peek().map(|x| x.1) == Some('}') => {
                rest.next();
                text.push('}');
            }
            '}' => {
                cx.error(
                    &inner(src, v, i, 1),
                    "lone `}` in an exec argument; expected `}}` for a literal brace",
                );
                return None;
            }
            '{' => {
                let Some(close) = s[i..].find('}') else {
                    cx.error(
                        &inner(src, v, i, s.len() - i),
                        "unclosed `{` in an exec argument; expected a placeholder like {rule}, or `{{` for a literal brace",
                    );
                    return None;
                };
                let name = &s[i + 1..i + close];
                let span = inner(src, v, i, close + 1);
                let Some(&(_, p)) = PLACEHOLDERS.iter().find(|(n, _)| *n == name) else {
                    cx.error(
                        &span,
                        format!(
                            "unknown placeholder `{{{name}}}`; expected one of {}",
                            PLACEHOLDERS
                                .iter()
                                .map(|(n, _)| format!("{{{n}}}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    );
                    return None;
                };
                if program {
                    cx.error(
                        &span,
                        "a placeholder in the program (the first exec argument); expected a fixed program path, with placeholders in the arguments after it",
                    );
                    return None;
                }
                let bad = match p {
                    Placeholder::Tree | Placeholder::Class => target.interface,
                    Placeholder::Interface => !target.interface,
                    _ => false,
                };
                if bad {
                    cx.error(
                        &span,
                        format!("`{{{name}}}` is not known for this rule ({}); expected {{target}}, or a rule that watches {}", if target.interface { "it watches an interface" } else { "it watches a class" }, if target.interface { "a class" } else { "an interface" }),
                    );
                    return None;
                }
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::Var(p));
                for _ in 0..close {
                    rest.next();
                }
            }
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Some(Template(pieces))
}

// ---------------------------------------------------------------------------
// Schedules

fn day_index(s: &str) -> Option<usize> {
    let s = s.to_ascii_lowercase();
    DAY_NAMES.iter().position(|(a, b)| *a == s || *b == s)
}

/// `mon-fri`, `sat,sun`, `mon,wed-fri`, `fri-mon` (wraps), `*`/`daily`.
fn days(cx: &mut Ctx, src: &str, v: &S<String>) -> Option<u8> {
    let s = v.get_ref().as_str();
    let t = s.trim().to_ascii_lowercase();
    if matches!(t.as_str(), "*" | "daily" | "all" | "every day") {
        return Some(0x7f);
    }
    let mut mask = 0u8;
    let mut at = 0;
    for part in s.split(',') {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let mut one = |x: &str, off: usize| -> Option<usize> {
            let r = day_index(x.trim());
            if r.is_none() {
                let lead = x.len() - x.trim_start().len();
                cx.error(
                    &inner(src, v, off + lead, x.trim().len()),
                    format!("unknown day \"{}\"; expected mon, tue, wed, thu, fri, sat, sun, ranges like mon-fri, lists like sat,sun, or \"daily\"", x.trim()),
                );
            }
            r
        };
        let a = one(lo, at)?;
        let b = one(hi, at + lo.len() + usize::from(part.len() != lo.len()))?;
        let mut d = a;
        loop {
            mask |= 1 << d;
            if d == b {
                break;
            }
            d = (d + 1) % 7;
        }
        at += part.len() + 1;
    }
    Some(mask)
}

fn clock(s: &str) -> Option<u16> {
    let (h, m) = s.trim().split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return None;
    }
    Some(h * 60 + m)
}

fn fmt_clock(m: u16) -> String {
    format!("{:02}:{:02}", m / 60, m % 60)
}

/// `08:00-18:00` (end exclusive; `22:00-06:00` crosses midnight; `24:00`
/// ends a day).
fn hours(cx: &mut Ctx, src: &str, v: &S<String>) -> Option<(u16, u16)> {
    let s = v.get_ref().as_str();
    let r = s
        .split_once('-')
        .and_then(|(a, b)| Some((clock(a)?, clock(b)?)));
    match r {
        Some((a, b)) if a < MINUTES_PER_DAY && a != b => Some((a, b % MINUTES_PER_DAY)),
        Some((a, b)) if a == b => {
            cx.error(
                &sp(v),
                format!("hours \"{s}\" start and end at the same time; expected a window like \"08:00-18:00\" (\"00:00-24:00\" for the whole day)"),
            );
            None
        }
        _ => {
            cx.error(
                &inner(src, v, 0, s.len()),
                format!("bad hours \"{s}\"; expected HH:MM-HH:MM in 24-hour local time, like \"08:00-18:00\" (end excluded; 24:00 ends the day)"),
            );
            None
        }
    }
}

const WEEK_MINUTES: usize = 7 * MINUTES_PER_DAY as usize;

/// The minutes of the week a window covers, as a bitmap.
fn coverage(w: &Window) -> Vec<u64> {
    let mut bits = vec![0u64; WEEK_MINUTES.div_ceil(64)];
    for d in Weekday::ALL {
        if !w.starts_on(d) {
            continue;
        }
        let len = if w.start < w.end {
            usize::from(w.end - w.start)
        } else {
            usize::from(MINUTES_PER_DAY - w.start + w.end)
        };
        let base = d.index() * usize::from(MINUTES_PER_DAY) + usize::from(w.start);
        for k in 0..len {
            let m = (base + k) % WEEK_MINUTES;
            bits[m / 64] |= 1 << (m % 64);
        }
    }
    bits
}

fn first_common(a: &[u64], b: &[u64]) -> Option<usize> {
    a.iter()
        .zip(b)
        .enumerate()
        .find(|(_, (x, y))| *x & *y != 0)
        .map(|(i, (x, y))| i * 64 + (x & y).trailing_zeros() as usize)
}

// ---------------------------------------------------------------------------
// Building

/// What rules refer to: the built trees and pairs, and the source text
/// (for pointing inside strings).
struct Refs<'a> {
    trees: &'a [Tree],
    pairs: &'a [Pair],
    src: &'a str,
}

pub(crate) fn build(
    cx: &mut Ctx,
    doc: &RawDoc,
    trees: &[Tree],
    pairs: &[Pair],
) -> (Vec<SlaRule>, Vec<Policy>) {
    let k = Refs {
        trees,
        pairs,
        src: &doc.source,
    };
    // Trees whose rates the engine may change, with where that is first
    // said (for the overbooking check).
    let mut managed: Vec<(u32, Span)> = Vec::new();
    let mut sla = Vec::new();
    let mut sla_names: HashMap<String, (Span, Option<usize>)> = HashMap::new();
    for (span, r) in &doc.sla {
        let name = r.name.get_ref().clone();
        let first = sla_names.get(&name).map(|x| x.0.clone());
        if name.trim().is_empty() {
            cx.error(
                &sp(&r.name),
                "empty rule name; expected a name like \"uplink-hot\"",
            );
        } else if let Some(first) = first {
            let line = cx.line_of(&first);
            cx.error(
                &sp(&r.name),
                format!("duplicate SLA rule name \"{name}\" (first used on line {line}); expected each name once"),
            );
        }
        let built = sla_rule(cx, &k, span, r, &mut managed);
        sla_names
            .entry(name)
            .or_insert((sp(&r.name), built.as_ref().map(|_| sla.len())));
        sla.extend(built);
    }
    let mut policies = Vec::new();
    let mut policy_names: HashMap<&str, Span> = HashMap::new();
    let mut policy_classes: HashMap<(u32, u32), (String, Span)> = HashMap::new();
    for (_, p) in &doc.policies {
        let name = p.name.get_ref().as_str();
        if name.trim().is_empty() {
            cx.error(
                &sp(&p.name),
                "empty policy name; expected a name like \"web-elastic\"",
            );
        } else if let Some(first) = policy_names.get(name) {
            let line = cx.line_of(first);
            cx.error(
                &sp(&p.name),
                format!("duplicate policy name \"{name}\" (first used on line {line}); expected each name once"),
            );
        } else {
            policy_names.insert(name, sp(&p.name));
        }
        let Some(built) = policy(cx, &k, p, &sla_names, &doc.broken_rules.names) else {
            continue;
        };
        let key = (built.tree, built.class);
        if let Some((other, first)) = policy_classes.get(&key) {
            let line = cx.line_of(first);
            cx.error(
                &sp(&p.class),
                format!("class {} of tree `{}` already has policy \"{other}\" (line {line}); expected one policy per class (put the schedule, adjust and penalty in one)", trees[built.tree as usize].label(built.class), trees[built.tree as usize].name),
            );
            continue;
        }
        policy_classes.insert(key, (name.to_string(), sp(&p.class)));
        managed.push((built.tree, sp(&p.tree)));
        policies.push(built);
    }
    check_floors(cx, trees, &policies, &doc.policies);
    check_overbooked(cx, trees, &managed);
    (sla, policies)
}

fn sla_rule(
    cx: &mut Ctx,
    k: &Refs,
    span: &Span,
    r: &RawSla,
    managed: &mut Vec<(u32, Span)>,
) -> Option<SlaRule> {
    let errors = cx.errors.len();
    let target = match (&r.interface, &r.tree, &r.class) {
        (Some(i), None, None) => interface_target(cx, k, i),
        (Some(i), _, _) => {
            cx.error(
                &sp(i),
                "both `interface` and `tree`/`class`; expected one target: interface = \"…\", or tree = \"…\" with class = \"…\"",
            );
            None
        }
        (None, t, c) => {
            if t.is_none() && c.is_none() {
                cx.error(
                    span,
                    format!("SLA rule \"{}\" watches nothing; expected interface = \"…\", or tree = \"…\" with class = \"…\"", r.name.get_ref()),
                );
                None
            } else {
                class_ref(cx, k.trees, t, c, None, span, "sla")
                    .map(|(tree, class)| Target::Class { tree, class })
            }
        }
    };
    let kind = match &target {
        Some(Target::Interface { .. }) => TargetKind {
            interface: true,
            leaf: false,
        },
        Some(Target::Class { tree, class }) => TargetKind {
            interface: false,
            leaf: k.trees[*tree as usize].classes[*class as usize].is_leaf(),
        },
        None => TargetKind {
            interface: false,
            leaf: true,
        },
    };
    let condition = target
        .as_ref()
        .and_then(|_| parse_when(cx, k.src, &r.when, &kind));
    if let (Some(c), Some(Target::Interface { name, tree, link })) = (&condition, &target) {
        if c.metric == Metric::Utilization && link.is_none() {
            let why = match tree {
                Some(t) => format!(
                    "its egress tree `{}` has no `link`",
                    k.trees[*t as usize].name
                ),
                None => "no tree shapes traffic out of it".to_string(),
            };
            cx.error(
                &sp(&r.when),
                format!("utilization of interface \"{name}\" is a share of its link rate, but {why}; expected `link = \"…\"` in that tree, or a `rate` threshold"),
            );
        }
    }
    let severity = match &r.severity {
        None => Severity::Warning,
        Some(s) => match s.get_ref().to_ascii_lowercase().as_str() {
            "info" => Severity::Info,
            "warning" | "warn" => Severity::Warning,
            "critical" | "crit" => Severity::Critical,
            other => {
                cx.error(
                    &sp(s),
                    format!("unknown severity \"{other}\"; expected \"info\", \"warning\" or \"critical\""),
                );
                Severity::Warning
            }
        },
    };
    let own = match &target {
        Some(Target::Class { tree, class }) => Some((*tree, *class)),
        _ => None,
    };
    let mut actions = Vec::new();
    match &r.actions {
        None => cx.warn(
            span,
            format!("SLA rule \"{}\" has no `actions`: violations are only recorded; expected e.g. actions = [{{ log = true }}]", r.name.get_ref()),
        ),
        Some(list) => {
            for a in list.get_ref() {
                if let Some(x) = action(cx, k, a, own, &kind, managed) {
                    actions.push(x);
                }
            }
        }
    }
    if let Some(rs) = &r.restore {
        let changes = actions
            .iter()
            .any(|a| matches!(a, Action::Throttle { .. } | Action::Set { .. }));
        if !changes {
            cx.warn(
                &sp(rs),
                "`restore` has no effect: the rule neither throttles nor sets a class",
            );
        }
    }
    if cx.errors.len() > errors {
        return None;
    }
    Some(SlaRule {
        name: r.name.get_ref().clone(),
        target: target?,
        condition: condition?,
        severity,
        actions,
        restore: match &r.restore {
            Some(b) => *b.get_ref(),
            None => true,
        },
    })
}

fn interface_target(cx: &mut Ctx, k: &Refs, v: &S<String>) -> Option<Target> {
    let name = v.get_ref();
    for p in k.pairs {
        let tree = if &p.outside == name {
            p.upload
        } else if &p.inside == name {
            p.download
        } else {
            continue;
        };
        return Some(Target::Interface {
            name: name.clone(),
            tree,
            link: tree.and_then(|t| k.trees[t as usize].link),
        });
    }
    cx.error(
        &sp(v),
        format!(
            "interface \"{name}\" is not a port of any [[pair]]; expected one of: {}",
            list(
                k.pairs
                    .iter()
                    .flat_map(|p| [p.inside.as_str(), p.outside.as_str()])
            )
        ),
    );
    None
}

fn action(
    cx: &mut Ctx,
    k: &Refs,
    a: &S<RawAction>,
    own: Option<(u32, u32)>,
    kind: &TargetKind,
    managed: &mut Vec<(u32, Span)>,
) -> Option<Action> {
    let r = a.get_ref();
    let at = sp(a);
    let n = usize::from(r.log.is_some())
        + usize::from(r.exec.is_some())
        + usize::from(r.throttle.is_some())
        + usize::from(r.set.is_some());
    if n != 1 {
        cx.error(
            &at,
            format!("{} in one action; expected exactly one of `log`, `exec`, `throttle`, `set` per {{ … }}", if n == 0 { "no action" } else { "several actions" }),
        );
        return None;
    }
    let on = match &r.on {
        None => None,
        Some(o) if r.log.is_none() && r.exec.is_none() => {
            cx.error(
                &sp(o),
                "`on` only applies to `log` and `exec`; expected it next to one of them (throttle and set hold while the rule is open)",
            );
            return None;
        }
        Some(o) => match o.get_ref().as_str() {
            "open" => Some(Phase::Open),
            "resolve" | "resolved" => Some(Phase::Resolve),
            "both" => Some(Phase::Both),
            other => {
                cx.error(
                    &sp(o),
                    format!("unknown `on` \"{other}\"; expected \"open\", \"resolve\" or \"both\""),
                );
                return None;
            }
        },
    };
    if let Some(l) = &r.log {
        if !*l.get_ref() {
            cx.warn(
                &sp(l),
                "`log = false` does nothing; expected `log = true` or no log action",
            );
        }
        return l.get_ref().then_some(Action::Log {
            on: on.unwrap_or(Phase::Both),
        });
    }
    if let Some(e) = &r.exec {
        let args = e.get_ref();
        let Some(program) = args.first() else {
            cx.error(
                &sp(e),
                "empty `exec`; expected a program and its arguments, like [\"/usr/local/bin/alert\", \"{rule}\"]",
            );
            return None;
        };
        if program.get_ref().is_empty() {
            cx.error(
                &sp(program),
                "empty program name in `exec`; expected a path like \"/usr/local/bin/alert\"",
            );
            return None;
        }
        if !program.get_ref().starts_with('/') {
            cx.warn(
                &sp(program),
                format!("exec program \"{}\" is looked up in weir's PATH (which a service manager sets); an absolute path is safer", program.get_ref()),
            );
        }
        let mut argv = Vec::new();
        let mut ok = true;
        for (i, arg) in args.iter().enumerate() {
            match template(cx, k.src, arg, kind, i == 0) {
                Some(t) => argv.push(t),
                None => ok = false,
            }
        }
        return ok.then_some(Action::Exec {
            argv,
            on: on.unwrap_or(Phase::Open),
        });
    }
    if let Some(t) = &r.throttle {
        let tr = t.get_ref();
        let target = class_ref(cx, k.trees, &tr.tree, &tr.class, own, &sp(t), "throttle");
        let f = factor(cx, &tr.factor, "factor");
        let (tree, class) = target?;
        managed.push((tree, sp(t)));
        return Some(Action::Throttle {
            tree,
            class,
            factor: f?,
        });
    }
    let s = r.set.as_ref()?;
    let sr = s.get_ref();
    let (tree, class) = class_ref(cx, k.trees, &sr.tree, &sr.class, own, &sp(s), "set")?;
    let link = k.trees[tree as usize].link;
    let rate = sr
        .rate
        .as_ref()
        .map(|v| check::shaping_rate(cx, v, "rate", link));
    let ceil = sr
        .ceil
        .as_ref()
        .map(|v| check::shaping_rate(cx, v, "ceil", link));
    if rate.is_none() && ceil.is_none() {
        cx.error(
            &sp(s),
            "`set` changes nothing; expected `rate` and/or `ceil`",
        );
        return None;
    }
    let (rate, ceil) = (
        rate.map_or(Some(None), |r| r.map(Some))?,
        ceil.map_or(Some(None), |c| c.map(Some))?,
    );
    let c = &k.trees[tree as usize].classes[class as usize];
    let (er, ec) = (rate.unwrap_or(c.rate), ceil.unwrap_or(c.ceil));
    if ec < er {
        let at = sr.ceil.as_ref().or(sr.rate.as_ref()).map_or(sp(s), sp);
        cx.error(
            &at,
            format!("`set` would make ceil {ec} less than rate {er} (missing values are the class's configured ones); expected ceil >= rate"),
        );
        return None;
    }
    managed.push((tree, sp(s)));
    Some(Action::Set {
        tree,
        class,
        rate,
        ceil,
    })
}

fn policy(
    cx: &mut Ctx,
    k: &Refs,
    p: &RawPolicy,
    sla_names: &HashMap<String, (Span, Option<usize>)>,
    broken: &[String],
) -> Option<Policy> {
    let errors = cx.errors.len();
    let tree = find_tree(cx, k.trees, &p.tree)?;
    let class = find_class(cx, k.trees, tree, &p.class)?;
    let t = &k.trees[tree as usize];
    let c = &t.classes[class as usize];
    let rate_of = |cx: &mut Ctx, v: &Option<S<StrOrInt>>, what: &str| {
        v.as_ref()
            .and_then(|v| check::shaping_rate(cx, v, what, t.link))
    };
    let min_rate = rate_of(cx, &p.min_rate, "min_rate").unwrap_or(c.rate);
    let max_rate = rate_of(cx, &p.max_rate, "max_rate").unwrap_or(c.rate);
    if let Some(v) = &p.min_rate {
        if min_rate > c.rate {
            cx.error(
                &sp(v),
                format!("`min_rate` {min_rate} is above the class's configured rate {}; expected at most {} (the configured rate is where the class starts)", c.rate, c.rate),
            );
        }
    }
    if let Some(v) = &p.max_rate {
        if max_rate < min_rate {
            cx.error(
                &sp(v),
                format!("`max_rate` {max_rate} is below `min_rate` {min_rate}; expected min_rate <= max_rate"),
            );
        } else if max_rate < c.rate {
            cx.error(
                &sp(v),
                format!("`max_rate` {max_rate} is below the class's configured rate {}; expected at least {}", c.rate, c.rate),
            );
        }
    }
    let mut schedule: Vec<Window> = Vec::new();
    let mut covered: Vec<(Vec<u64>, Span)> = Vec::new();
    if let Some(list) = &p.schedule {
        for w in list.get_ref() {
            let wr = w.get_ref();
            let d = days(cx, k.src, &wr.days);
            let h = hours(cx, k.src, &wr.hours);
            let rate = rate_of(cx, &wr.rate, "rate");
            let ceil = rate_of(cx, &wr.ceil, "ceil");
            if wr.rate.is_none() && wr.ceil.is_none() {
                cx.error(
                    &sp(w),
                    "schedule window changes nothing; expected `rate` and/or `ceil`",
                );
                continue;
            }
            let (Some(d), Some((start, end))) = (d, h) else {
                continue;
            };
            if let (Some(r), Some(v)) = (rate, &wr.rate) {
                if r < min_rate || r > max_rate {
                    cx.error(
                        &sp(v),
                        format!("schedule rate {r} is outside the policy's bounds; expected {min_rate} ..= {max_rate} (min_rate ..= max_rate)"),
                    );
                }
            }
            let er = rate.unwrap_or(c.rate);
            if let (Some(ce), Some(v)) = (ceil, &wr.ceil) {
                if ce < er {
                    cx.error(
                        &sp(v),
                        format!("schedule ceil {ce} is below the window's rate {er}; expected ceil >= rate"),
                    );
                }
            }
            let win = Window {
                days: d,
                start,
                end,
                rate,
                ceil,
                text: format!("{} {}", wr.days.get_ref().trim(), wr.hours.get_ref().trim()),
            };
            let cov = coverage(&win);
            if let Some((m, first)) = covered
                .iter()
                .find_map(|(o, s)| first_common(o, &cov).map(|m| (m, s)))
            {
                let line = cx.line_of(first);
                let day = Weekday::from_index(m / usize::from(MINUTES_PER_DAY));
                let minute = (m % usize::from(MINUTES_PER_DAY)) as u16;
                cx.error(
                    &sp(&wr.hours),
                    format!("schedule window \"{}\" overlaps the window on line {line} (both cover {} {}); expected windows that don't overlap", win.text, day.name(), fmt_clock(minute)),
                );
                continue;
            }
            covered.push((cov, sp(w)));
            schedule.push(win);
        }
    }
    let max_ceil = match &p.max_ceil {
        Some(v) => {
            let m = check::shaping_rate(cx, v, "max_ceil", t.link);
            if let Some(m) = m {
                if m < max_rate {
                    cx.error(
                        &sp(v),
                        format!("`max_ceil` {m} is below `max_rate` {max_rate}; expected max_ceil >= max_rate (ceil is never below rate)"),
                    );
                } else if m < c.ceil {
                    cx.error(
                        &sp(v),
                        format!("`max_ceil` {m} is below the class's configured ceil {}; expected at least {}", c.ceil, c.ceil),
                    );
                }
                for (w, raw) in schedule
                    .iter()
                    .zip(p.schedule.iter().flat_map(|l| l.get_ref()))
                {
                    if let (Some(ce), Some(rv)) = (w.ceil, &raw.get_ref().ceil) {
                        if ce > m {
                            cx.error(
                                &sp(rv),
                                format!("schedule ceil {ce} is above `max_ceil` {m}; expected at most {m}"),
                            );
                        }
                    }
                }
            }
            m.unwrap_or(c.ceil)
        }
        None => schedule
            .iter()
            .filter_map(|w| w.ceil)
            .chain([c.ceil, max_rate])
            .max()
            .unwrap_or(c.ceil),
    };
    let adjust = p.adjust.as_ref().and_then(|a| {
        let ar = a.get_ref();
        let high = percent(cx, &ar.high, "high", 1000.0);
        let low = percent(cx, &ar.low, "low", 1000.0);
        if let (Some(h), Some(l)) = (high, low) {
            if l >= h {
                cx.error(
                    &sp(&ar.low),
                    format!("`low` {l}% is not below `high` {h}%; expected low < high (the rate holds between them)"),
                );
            }
        }
        // `step = "10%"` is of the configured rate: a fixed step, the same
        // up and down.
        let step = check::shaping_rate(cx, &ar.step, "step", Some(c.rate));
        let every_ns = match &ar.every {
            None => 10_000_000_000,
            Some(e) => match duration(e.get_ref()) {
                Ok(ns) if ns >= 1_000_000_000 => ns,
                Ok(_) => {
                    cx.error(&sp(e), "`every` is below 1s; expected at least 1s (the engine runs once a second)");
                    return None;
                }
                Err(msg) => {
                    cx.error(&sp(e), format!("`every`: {msg}"));
                    return None;
                }
            },
        };
        if min_rate == max_rate {
            cx.warn(
                &sp(a),
                format!("`adjust` can't move the rate: min_rate = max_rate = {min_rate}; expected max_rate above min_rate"),
            );
        }
        Some(Adjust {
            high: high?,
            low: low?,
            step: step?,
            every_ns,
        })
    });
    let penalty = p.penalty.as_ref().and_then(|q| {
        let qr = q.get_ref();
        let f = factor(cx, &qr.factor, "factor");
        let name = qr.sla.get_ref();
        let idx = match sla_names.get(name) {
            Some((_, Some(i))) => Some(*i as u32),
            // The rule itself is wrong and reported; don't pile on.
            Some((_, None)) => None,
            None if broken.contains(name) => None,
            None => {
                // Sorted: a HashMap's order would change the message from
                // run to run.
                let mut names: Vec<&str> = sla_names.keys().map(String::as_str).collect();
                names.sort_unstable();
                cx.error(
                    &sp(&qr.sla),
                    format!(
                        "no SLA rule named \"{name}\"; expected one of: {}",
                        list(names.into_iter())
                    ),
                );
                None
            }
        };
        Some(Penalty {
            sla: idx?,
            factor: f?,
        })
    });
    if cx.errors.len() > errors {
        return None;
    }
    Some(Policy {
        name: p.name.get_ref().clone(),
        tree,
        class,
        min_rate,
        max_rate,
        max_ceil,
        adjust,
        schedule,
        penalty,
    })
}

/// An inner class's `min_rate` must hold its children's own floors (their
/// policies' `min_rate`, or their configured rate): the engine never takes a
/// child below its floor, so it could not honour the parent's.
fn check_floors(cx: &mut Ctx, trees: &[Tree], policies: &[Policy], raw: &[(Span, RawPolicy)]) {
    for p in policies {
        let t = &trees[p.tree as usize];
        let floor: u64 = t
            .classes
            .iter()
            .enumerate()
            .filter(|(_, c)| c.parent == Some(p.class))
            .map(|(i, c)| {
                policies
                    .iter()
                    .find(|q| q.tree == p.tree && q.class == i as u32)
                    .map_or(c.rate, |q| q.min_rate)
                    .bits_per_sec()
            })
            .sum();
        if floor > p.min_rate.bits_per_sec() {
            let at = raw
                .iter()
                .find(|(_, r)| r.name.get_ref() == &p.name)
                .and_then(|(_, r)| r.min_rate.as_ref().map_or(sp(&r.class), sp));
            cx.error(
                &at,
                format!("policy \"{}\": `min_rate` {} of class {} is below what its children keep at least ({} together: their min_rate, or their rate); expected at least that", p.name, p.min_rate, t.label(p.class), Rate::from_bits_per_sec(floor)),
            );
        }
    }
}

/// The engine keeps every parent's children within its rate; a tree it
/// manages must start that way, or its first tick would change classes no
/// rule names.
fn check_overbooked(cx: &mut Ctx, trees: &[Tree], managed: &[(u32, Span)]) {
    let mut seen = Vec::new();
    for (tree, at) in managed {
        if seen.contains(tree) {
            continue;
        }
        seen.push(*tree);
        let t = &trees[*tree as usize];
        for (i, c) in t.classes.iter().enumerate() {
            let sum: u64 = t
                .classes
                .iter()
                .filter(|k| k.parent == Some(i as u32))
                .map(|k| k.rate.bits_per_sec())
                .sum();
            if sum > c.rate.bits_per_sec() {
                cx.error(
                    at,
                    format!("tree `{}` is managed by policies or SLA actions, but the children of class {} are guaranteed {} together, more than its rate {}; expected children's rates to fit their parent (the engine keeps them within it)", t.name, t.label(i as u32), Rate::from_bits_per_sec(sum), c.rate),
                );
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cross_midnight_on_their_start_day() {
        let w = Window {
            days: 1 << Weekday::Fri.index(),
            start: 22 * 60,
            end: 6 * 60,
            rate: None,
            ceil: None,
            text: String::new(),
        };
        assert!(w.contains(Weekday::Fri, 22 * 60));
        assert!(w.contains(Weekday::Sat, 5 * 60 + 59));
        assert!(!w.contains(Weekday::Sat, 6 * 60));
        assert!(!w.contains(Weekday::Fri, 5 * 60));
        assert!(!w.contains(Weekday::Thu, 23 * 60));
    }

    #[test]
    fn durations_need_units() {
        assert_eq!(duration("30s"), Ok(30_000_000_000));
        assert_eq!(duration("1.5min"), Ok(90_000_000_000));
        assert_eq!(duration("250ms"), Ok(250_000_000));
        assert!(duration("30").is_err());
        assert!(duration("30y").is_err());
        assert!(duration("8d").is_err());
    }

    #[test]
    fn tokens_split_operators() {
        let t: Vec<&str> = tokens("util>=80% for 30s").iter().map(|t| t.text).collect();
        assert_eq!(t, ["util", ">=", "80%", "for", "30s"]);
    }
}
