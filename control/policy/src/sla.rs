//! SLA rules: reading each rule's value from the metrics, the open/resolve
//! state machine with its hysteresis, and the `log` / `exec` actions.

use weir_config::rules::{Action, Metric, Placeholder, SlaRule, Target, Unit};
use weir_config::Config;

use super::{Decision, Metrics};

/// One rule and where it stands.
#[derive(Clone, Debug)]
struct Rule {
    cfg: SlaRule,
    /// `interface weir-out` / `up 1:20 (web)`.
    label: String,
    tree_name: String,
    class_id: String,
    /// Since when it has been open.
    open: Option<u64>,
    /// First sample of the current run on the other side of the threshold
    /// (holding while closed, failing while open).
    run: Option<u64>,
    /// Its `throttle`/`set` stay in force after resolving (`restore =
    /// false`).
    latched: bool,
    /// The last value read, for the Resolved record.
    last: f64,
}

#[derive(Clone, Debug)]
pub(super) struct Rules {
    rules: Vec<Rule>,
}

impl Rules {
    pub(super) fn new(config: &Config) -> Rules {
        let rules = config
            .sla
            .iter()
            .map(|r| {
                let (label, tree_name, class_id) = match &r.target {
                    Target::Interface { name, .. } => {
                        (format!("interface {name}"), String::new(), String::new())
                    }
                    Target::Class { tree, class } => {
                        let t = &config.trees[*tree as usize];
                        (
                            format!("{} {}", t.name, t.label(*class)),
                            t.name.clone(),
                            t.classes[*class as usize].id.to_string(),
                        )
                    }
                };
                Rule {
                    cfg: r.clone(),
                    label,
                    tree_name,
                    class_id,
                    open: None,
                    run: None,
                    latched: false,
                    last: 0.0,
                }
            })
            .collect();
        Rules { rules }
    }

    pub(super) fn name(&self, rule: usize) -> &str {
        self.rules.get(rule).map_or("", |r| r.cfg.name.as_str())
    }

    pub(super) fn open(&self) -> Vec<(String, u64)> {
        self.rules
            .iter()
            .filter_map(|r| Some((r.cfg.name.clone(), r.open?)))
            .collect()
    }

    pub(super) fn is_open(&self, rule: usize) -> bool {
        self.rules.get(rule).is_some_and(|r| r.open.is_some())
    }

    /// Throttle/set actions in force (rule open, or latched), rules in file
    /// order: `(rule name, action)`.
    pub(super) fn in_force(&self) -> impl Iterator<Item = (&str, &Action)> {
        self.rules
            .iter()
            .filter(|r| r.open.is_some() || r.latched)
            .flat_map(|r| r.cfg.actions.iter().map(move |a| (r.cfg.name.as_str(), a)))
            .filter(|(_, a)| matches!(a, Action::Throttle { .. } | Action::Set { .. }))
    }

    pub(super) fn tick(&mut self, now: u64, m: &Metrics, out: &mut Vec<Decision>) {
        for r in &mut self.rules {
            let Some(value) = value(&r.cfg, m) else {
                r.run = None;
                continue;
            };
            r.last = value;
            let c = &r.cfg.condition;
            let holds = c.op.holds(value, c.threshold);
            // On the far side of the threshold from where the rule stands?
            let crossing = holds == r.open.is_none();
            if !crossing {
                r.run = None;
                continue;
            }
            let since = *r.run.get_or_insert(now);
            if now.saturating_sub(since) < c.for_ns {
                continue;
            }
            r.run = None;
            let (metric, unit, threshold) = (c.metric, c.unit, c.threshold);
            match r.open {
                None => {
                    r.open = Some(now);
                    r.latched = false;
                    out.push(Decision::Violation {
                        rule: r.cfg.name.clone(),
                        target: r.label.clone(),
                        severity: r.cfg.severity,
                        metric,
                        unit,
                        value,
                        threshold,
                        at_ns: now,
                    });
                    actions(r, value, true, now, out);
                }
                Some(opened) => {
                    out.push(Decision::Resolved {
                        rule: r.cfg.name.clone(),
                        target: r.label.clone(),
                        severity: r.cfg.severity,
                        metric,
                        unit,
                        value,
                        threshold,
                        opened_ns: opened,
                        at_ns: now,
                    });
                    // The hooks still see when it opened.
                    actions(r, value, false, now, out);
                    r.open = None;
                    r.latched = !r.cfg.restore;
                }
            }
        }
    }
}

/// The rule's metric now, in its threshold's unit; None without a sample.
fn value(r: &SlaRule, m: &Metrics) -> Option<f64> {
    let c = &r.condition;
    let secs = m.interval_ns as f64 / 1e9;
    let per_sec = |n: u64| (m.interval_ns > 0).then(|| n as f64 / secs);
    match &r.target {
        Target::Interface { name, link, .. } => {
            let i = m.interfaces.iter().find(|i| &i.name == name)?;
            match c.metric {
                Metric::Utilization => {
                    let link = (*link)?.bits_per_sec();
                    (link > 0).then(|| i.tx_bps as f64 * 100.0 / link as f64)
                }
                Metric::Rate => Some(i.tx_bps as f64),
                Metric::Drops => per_sec(i.drops),
                // Refused at load.
                Metric::Overlimits | Metric::Backlog => None,
            }
        }
        Target::Class { tree, class } => {
            let s = m.class(*tree, *class)?;
            match c.metric {
                Metric::Utilization => {
                    (s.ceil > 0).then(|| s.rate_bps as f64 * 100.0 / (s.ceil as f64 * 8.0))
                }
                Metric::Rate => Some(s.rate_bps as f64),
                Metric::Drops => per_sec(s.drops),
                Metric::Overlimits => per_sec(s.overlimits),
                Metric::Backlog => Some(match c.unit {
                    Unit::Packets => f64::from(s.backlog_packets),
                    _ => s.backlog_bytes as f64,
                }),
            }
        }
    }
}

/// A number for people and scripts: integers bare, others with up to three
/// decimals (`85.333`, `0.5`).
pub fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{v:.0}");
    }
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn describe(r: &Rule, value: f64) -> String {
    let c = &r.cfg.condition;
    format!(
        "{} of {} is {}{} ({})",
        c.metric,
        r.label,
        format_value(value),
        c.unit.suffix(),
        c.text
    )
}

/// The `log` and `exec` actions of a rule that just opened (`open`) or
/// resolved.
fn actions(r: &Rule, value: f64, open: bool, now: u64, out: &mut Vec<Decision>) {
    for a in &r.cfg.actions {
        match a {
            Action::Log { on } if (open && on.on_open()) || (!open && on.on_resolve()) => {
                let message = if open {
                    format!(
                        "SLA {} ({}) violated: {}",
                        r.cfg.name,
                        r.cfg.severity,
                        describe(r, value)
                    )
                } else {
                    let since = r.open.unwrap_or(now);
                    format!(
                        "SLA {} ({}) resolved after {}s: {}",
                        r.cfg.name,
                        r.cfg.severity,
                        format_value((now.saturating_sub(since)) as f64 / 1e9),
                        describe(r, value)
                    )
                };
                out.push(Decision::Log {
                    severity: r.cfg.severity,
                    message,
                });
            }
            Action::Exec { argv, on } if (open && on.on_open()) || (!open && on.on_resolve()) => {
                let c = &r.cfg.condition;
                let argv = argv
                    .iter()
                    .map(|t| {
                        t.render(|p| match p {
                            Placeholder::Rule => r.cfg.name.clone(),
                            Placeholder::Severity => r.cfg.severity.to_string(),
                            Placeholder::Value => format_value(value),
                            Placeholder::Threshold => format_value(c.threshold),
                            Placeholder::Metric => c.metric.to_string(),
                            Placeholder::Target => r.label.clone(),
                            Placeholder::State => {
                                if open { "open" } else { "resolved" }.to_string()
                            }
                            Placeholder::Tree => r.tree_name.clone(),
                            Placeholder::Class => r.class_id.clone(),
                            Placeholder::Interface => match &r.cfg.target {
                                Target::Interface { name, .. } => name.clone(),
                                Target::Class { .. } => String::new(),
                            },
                        })
                    })
                    .collect();
                out.push(Decision::Exec {
                    rule: r.cfg.name.clone(),
                    argv,
                });
            }
            _ => {}
        }
    }
}
