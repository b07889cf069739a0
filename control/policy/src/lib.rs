//! weir-policy: the policy engine. SLA rules (`[[sla]]`) and allocation
//! policies (`[[policy]]`) turned into decisions, once a second, on `weir
//! run`'s control thread (weir-daemon). Nothing here touches the packet
//! path, reads a clock or does I/O, and nothing can fail: the caller passes
//! the monotonic time, the local wall-clock time and the metrics it read
//! from the data path's snapshot, and carries out what [`Engine::tick`]
//! returns (apply [`Decision::ChangeClass`] through the data path's
//! `change_class`, run [`Decision::Exec`] off-thread with a timeout, store
//! violations and adjustments in the history database, weir-history).
//! Depends on the core and weir-config only.
//!
//! - `sla`: each rule's value, its open/resolve state machine, its actions.
//! - `alloc`: the effective rate and ceil of every managed class.
//!
//! # One tick, in order
//!
//! 1. **SLA rules**, in file order. Each rule's value is read from the
//!    metrics; a rule *opens* when its comparison has held on every sample
//!    for its `for` duration (at `first + for`, not a sample earlier), and
//!    *resolves* when it has failed on every sample for the same duration
//!    (hysteresis). A tick without a sample for the target breaks a run.
//!    Opening emits [`Decision::Violation`] then the rule's `log` / `exec`
//!    actions in their written order; resolving emits
//!    [`Decision::Resolved`] then the actions that run on resolve.
//! 2. **Policies**, in file order: the schedule window in force is found
//!    (a change of window restarts the `adjust` state), then `adjust`
//!    accumulates the class's utilization of its rate and, every `every`,
//!    moves the rate one `step` up or down. `adjust` pauses while an SLA
//!    `throttle`/`set` or a penalty holds the class, so that lifting them
//!    restores exactly the values from before.
//! 3. **Effective values**, tree by tree, class by class (parents first).
//!    Each managed class's rate and ceil are a pure function of the
//!    current state, composed in this fixed order:
//!    configured → schedule window → adjust → SLA `throttle`/`set` (rules
//!    in file order) → penalty (ceil × factor) → the policy's bounds
//!    (`min_rate ..= max_rate`, ceil <= `max_ceil`) → ceil >= rate.
//!    Then every parent's children are kept within its rate: children
//!    above their floor (a policy's `min_rate`, else the lower of their
//!    configured and current rate) are scaled down in proportion to what
//!    they have above it; a parent whose children's floors alone exceed
//!    its new rate is refused that cut (kept at the floors' sum, and a
//!    [`Decision::Log`] says so). A [`Decision::ChangeClass`] with the old
//!    and new values is emitted only for classes whose result differs
//!    from what was last applied. Because the result is recomputed from
//!    the configured values every time, lifting a throttle or leaving a
//!    schedule window returns exactly the values from before.
//!
//! The engine assumes the caller applies every `ChangeClass` it emits: its
//! "last applied" values are what it emitted.

mod alloc;
mod sla;

use weir_dataplane::htb::ClassChange;

use weir_config::rules::{Metric, Severity, Unit, Weekday};
use weir_config::Config;

pub use sla::format_value;

/// Local wall-clock time of the box, for schedules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalTime {
    pub weekday: Weekday,
    /// 0 ..= 1439.
    pub minute_of_day: u16,
}

impl LocalTime {
    pub fn new(weekday: Weekday, hour: u16, minute: u16) -> LocalTime {
        LocalTime {
            weekday,
            minute_of_day: (hour * 60 + minute) % weir_config::rules::MINUTES_PER_DAY,
        }
    }
}

/// One class's sample, as the caller reads it from the data path
/// snapshot. Counters are deltas over [`Metrics::interval_ns`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassMetrics {
    /// Measured sending rate, bits/s.
    pub rate_bps: u64,
    /// The rate and ceil in force in the data path, bytes/s.
    pub rate: u64,
    pub ceil: u64,
    /// Packets dropped during the interval.
    pub drops: u64,
    /// Overlimit events during the interval.
    pub overlimits: u64,
    /// Queued at the end of the interval.
    pub backlog_packets: u32,
    pub backlog_bytes: u64,
}

/// One tree's samples, indexed like [`weir_config::Tree::classes`]. A
/// class past the end has no sample this tick.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TreeMetrics {
    pub classes: Vec<ClassMetrics>,
}

/// One port's sample.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InterfaceMetrics {
    pub name: String,
    /// Bits/s weir sent out of the port.
    pub tx_bps: u64,
    /// Packets dropped on the way out of the port during the interval.
    pub drops: u64,
}

/// Everything one tick looks at. Plain data the caller fills.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metrics {
    /// The time the counter deltas cover (usually about 1 s). 0: the
    /// per-second metrics (`drops`, `overlimits`) have no sample.
    pub interval_ns: u64,
    /// Indexed like [`Config::trees`].
    pub trees: Vec<TreeMetrics>,
    pub interfaces: Vec<InterfaceMetrics>,
}

impl Metrics {
    pub fn class(&self, tree: u32, class: u32) -> Option<&ClassMetrics> {
        self.trees.get(tree as usize)?.classes.get(class as usize)
    }
}

/// A class's shaping values, bytes/s (the data path's unit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Shaping {
    pub rate: u64,
    pub ceil: u64,
}

/// What the caller must do (or record) after a tick.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// An SLA rule opened: store it (with `at_ns`) in the history.
    Violation {
        rule: String,
        /// `interface weir-out` or `up 1:20 (web)`.
        target: String,
        severity: Severity,
        metric: Metric,
        unit: Unit,
        value: f64,
        threshold: f64,
        at_ns: u64,
    },
    /// An SLA rule resolved: mark its open violation resolved.
    Resolved {
        rule: String,
        target: String,
        severity: Severity,
        metric: Metric,
        unit: Unit,
        value: f64,
        threshold: f64,
        opened_ns: u64,
        at_ns: u64,
    },
    /// A line for the log.
    Log { severity: Severity, message: String },
    /// Run `argv[0]` with the rest as arguments, without a shell.
    Exec { rule: String, argv: Vec<String> },
    /// Apply `change` to the class (`DataPath::change_class`) and record
    /// the adjustment (old and new values, why).
    ChangeClass {
        tree: u32,
        class: u32,
        change: ClassChange,
        old: Shaping,
        new: Shaping,
        reason: String,
    },
}

/// The engine's whole state; see the module documentation for one tick.
#[derive(Clone, Debug)]
pub struct Engine {
    sla: sla::Rules,
    alloc: alloc::Alloc,
}

impl Engine {
    /// An engine for `config`, every class at its configured values and no
    /// rule open.
    pub fn new(config: &Config) -> Engine {
        Engine {
            sla: sla::Rules::new(config),
            alloc: alloc::Alloc::new(config),
        }
    }

    /// One evaluation: `now` is monotonic ns (never going back), `local`
    /// the local wall-clock time, `metrics` what the data path measured
    /// since the previous tick.
    pub fn tick(&mut self, now: u64, local: LocalTime, metrics: &Metrics) -> Vec<Decision> {
        let mut out = Vec::new();
        self.sla.tick(now, metrics, &mut out);
        self.alloc.tick(now, local, metrics, &self.sla, &mut out);
        out
    }

    /// The values the engine last emitted (or the configured ones) for a
    /// class; None for an unknown class.
    pub fn applied(&self, tree: u32, class: u32) -> Option<Shaping> {
        self.alloc.applied(tree, class)
    }

    /// The rules open now, with when they opened: on a reload (a new
    /// `Engine` for the new configuration, every class back at its
    /// configured values) the caller resolves these in the history, or they
    /// would stay open there forever.
    pub fn open_violations(&self) -> Vec<(String, u64)> {
        self.sla.open()
    }

    /// Whether SLA rule `rule` (an index into [`Config::sla`]) is open.
    pub fn is_open(&self, rule: u32) -> bool {
        self.sla.is_open(rule as usize)
    }
}
