//! The checked rule types the policy engine runs: `[[sla]]` rules with
//! their targets and actions, and `[[policy]]` entries with their bounds,
//! steps and penalties. The `when` condition, exec templates and schedule
//! windows live with their parsers (`when`, `template`, `schedule`).

use std::fmt;

use super::{Condition, Template, Weekday, Window};
use crate::units::Rate;

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
