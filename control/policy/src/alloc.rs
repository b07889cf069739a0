//! Effective rates and ceils: schedules, `adjust`, SLA throttles and sets,
//! penalties and the policies' bounds composed per class, then every
//! parent's children kept within its rate (see the crate documentation,
//! lib.rs, for the order).
//!
//! Cost: a tree is recomputed only on ticks where some managed class's
//! wanted values changed; then it is two passes over all its classes with
//! five u64 scratch vectors (at 100k classes, a few ms once in a while;
//! nothing is allocated per tick once the scratch has grown).

use std::collections::HashMap;

use weir_dataplane::htb::ClassChange;

use weir_config::rules::{Action, Policy};
use weir_config::{ClassId, Config, Rate};

use super::sla::{format_value, Rules};
use super::{Decision, LocalTime, Metrics, Shaping};

/// A policy and its moving parts.
#[derive(Clone, Debug)]
struct PolicyState {
    cfg: Policy,
    /// Index into `cfg.schedule` of the window in force.
    window: Option<usize>,
    /// The rate `adjust` has moved the class to (bytes/s); None: not moved
    /// since the last window change.
    level: Option<u64>,
    /// Why `level` is what it is, for ChangeClass reasons.
    note: String,
    /// Utilization samples (percent of the rate in force) since the last
    /// step.
    acc: f64,
    samples: u32,
    /// When the next step is due.
    next: Option<u64>,
}

impl PolicyState {
    fn restart(&mut self) {
        self.acc = 0.0;
        self.samples = 0;
        self.next = None;
    }
}

/// One tree's configured and applied values and scratch space.
#[derive(Clone, Debug)]
struct TreeState {
    name: String,
    ids: Vec<ClassId>,
    names: Vec<Option<String>>,
    parent: Vec<Option<u32>>,
    base: Vec<Shaping>,
    applied: Vec<Shaping>,
    /// Classes a policy or an SLA throttle/set names, ascending.
    managed: Vec<u32>,
    /// What the managed classes wanted on the last recomputation.
    wanted: Vec<Shaping>,
    computed: bool,
    /// Classes kept above the rate they were given because their children
    /// needed it: class → the rate they were given.
    refused: HashMap<u32, u64>,
    rate: Vec<u64>,
    ceil: Vec<u64>,
    floor: Vec<u64>,
    need: Vec<u64>,
    sum: Vec<u64>,
}

impl TreeState {
    fn label(&self, class: u32) -> String {
        let i = class as usize;
        match &self.names[i] {
            Some(n) => format!("{} {} ({n})", self.name, self.ids[i]),
            None => format!("{} {}", self.name, self.ids[i]),
        }
    }
}

#[derive(Clone, Debug)]
pub(super) struct Alloc {
    trees: Vec<TreeState>,
    policies: Vec<PolicyState>,
    policy_of: HashMap<(u32, u32), usize>,
}

fn bytes(r: Rate) -> u64 {
    r.bytes_per_sec().max(1)
}

fn scaled(v: u64, f: f64) -> u64 {
    // Rates are far below 2^53 bytes/s, where f64 is exact enough.
    ((v as f64 * f) as u64).max(1)
}

impl Alloc {
    pub(super) fn new(config: &Config) -> Alloc {
        let mut trees: Vec<TreeState> = config
            .trees
            .iter()
            .map(|t| {
                let base: Vec<Shaping> = t
                    .classes
                    .iter()
                    .map(|c| Shaping {
                        rate: c.rate.bytes_per_sec(),
                        ceil: c.ceil.bytes_per_sec(),
                    })
                    .collect();
                TreeState {
                    name: t.name.clone(),
                    ids: t.classes.iter().map(|c| c.id).collect(),
                    names: t.classes.iter().map(|c| c.name.clone()).collect(),
                    parent: t.classes.iter().map(|c| c.parent).collect(),
                    applied: base.clone(),
                    base,
                    managed: Vec::new(),
                    wanted: Vec::new(),
                    computed: false,
                    refused: HashMap::new(),
                    rate: Vec::new(),
                    ceil: Vec::new(),
                    floor: Vec::new(),
                    need: Vec::new(),
                    sum: Vec::new(),
                }
            })
            .collect();
        let mut policy_of = HashMap::new();
        for (i, p) in config.policies.iter().enumerate() {
            policy_of.insert((p.tree, p.class), i);
            trees[p.tree as usize].managed.push(p.class);
        }
        for r in &config.sla {
            for a in &r.actions {
                if let Action::Throttle { tree, class, .. } | Action::Set { tree, class, .. } = a {
                    trees[*tree as usize].managed.push(*class);
                }
            }
        }
        for t in &mut trees {
            t.managed.sort_unstable();
            t.managed.dedup();
        }
        Alloc {
            trees,
            policies: config
                .policies
                .iter()
                .map(|p| PolicyState {
                    cfg: p.clone(),
                    window: None,
                    level: None,
                    note: String::new(),
                    acc: 0.0,
                    samples: 0,
                    next: None,
                })
                .collect(),
            policy_of,
        }
    }

    pub(super) fn applied(&self, tree: u32, class: u32) -> Option<Shaping> {
        self.trees
            .get(tree as usize)?
            .applied
            .get(class as usize)
            .copied()
    }

    pub(super) fn tick(
        &mut self,
        now: u64,
        local: LocalTime,
        m: &Metrics,
        sla: &Rules,
        out: &mut Vec<Decision>,
    ) {
        let in_force: Vec<(&str, &Action)> = sla.in_force().collect();
        for p in &mut self.policies {
            step_policy(
                p,
                &self.trees[p.cfg.tree as usize],
                now,
                local,
                m,
                sla,
                &in_force,
            );
        }
        for ti in 0..self.trees.len() {
            if self.trees[ti].managed.is_empty() {
                continue;
            }
            self.recompute(ti as u32, sla, &in_force, out);
        }
    }

    /// What a managed class wants before its tree is balanced, and why.
    fn wanted(
        &self,
        tree: u32,
        class: u32,
        sla: &Rules,
        in_force: &[(&str, &Action)],
        why: Option<&mut Vec<String>>,
    ) -> Shaping {
        let mut notes = Vec::new();
        let b = self.trees[tree as usize].base[class as usize];
        let (mut rate, mut ceil) = (b.rate, b.ceil);
        let policy = self
            .policy_of
            .get(&(tree, class))
            .map(|&i| &self.policies[i]);
        if let Some(p) = policy {
            if let Some(w) = p.window.map(|w| &p.cfg.schedule[w]) {
                rate = w.rate.map_or(rate, bytes);
                ceil = w.ceil.map_or(ceil, bytes);
                notes.push(format!("policy {}: schedule {}", p.cfg.name, w.text));
            }
            if let Some(l) = p.level {
                rate = l;
                notes.push(format!("policy {}: {}", p.cfg.name, p.note));
            }
        }
        for (name, a) in in_force {
            match a {
                Action::Throttle {
                    tree: t,
                    class: c,
                    factor,
                } if (*t, *c) == (tree, class) => {
                    rate = scaled(rate, *factor);
                    ceil = scaled(ceil, *factor);
                    notes.push(format!("SLA {name}: throttle x{factor}"));
                }
                Action::Set {
                    tree: t,
                    class: c,
                    rate: r,
                    ceil: cl,
                } if (*t, *c) == (tree, class) => {
                    rate = r.map_or(rate, bytes);
                    ceil = cl.map_or(ceil, bytes);
                    notes.push(format!("SLA {name}: set"));
                }
                _ => {}
            }
        }
        if let Some(p) = policy {
            if let Some(q) = &p.cfg.penalty {
                if sla.is_open(q.sla as usize) {
                    ceil = scaled(ceil, q.factor);
                    notes.push(format!(
                        "policy {}: penalty ceil x{} while SLA {} is violated",
                        p.cfg.name,
                        q.factor,
                        sla.name(q.sla as usize)
                    ));
                }
            }
            let (lo, hi) = (bytes(p.cfg.min_rate), bytes(p.cfg.max_rate));
            let clamped = rate.clamp(lo, hi.max(lo));
            if clamped != rate {
                notes.push(format!(
                    "policy {}: rate held within {}..={}",
                    p.cfg.name, p.cfg.min_rate, p.cfg.max_rate
                ));
            }
            rate = clamped;
            ceil = ceil.min(bytes(p.cfg.max_ceil));
        }
        rate = rate.max(1);
        ceil = ceil.max(rate);
        if let Some(why) = why {
            why.extend(notes);
        }
        Shaping { rate, ceil }
    }

    fn recompute(
        &mut self,
        tree: u32,
        sla: &Rules,
        in_force: &[(&str, &Action)],
        out: &mut Vec<Decision>,
    ) {
        let t = &self.trees[tree as usize];
        let wanted: Vec<Shaping> = t
            .managed
            .iter()
            .map(|&c| self.wanted(tree, c, sla, in_force, None))
            .collect();
        if t.computed && wanted == t.wanted {
            return;
        }
        let managed = t.managed.clone();
        let mut floors = Vec::with_capacity(managed.len());
        for (&c, w) in managed.iter().zip(&wanted) {
            let base = t.base[c as usize].rate;
            let floor = match self.policy_of.get(&(tree, c)) {
                Some(&p) => bytes(self.policies[p].cfg.min_rate).min(w.rate),
                None => w.rate.min(base),
            };
            floors.push(floor);
        }
        let t = &mut self.trees[tree as usize];
        t.computed = true;
        t.wanted.clone_from(&wanted);
        let n = t.base.len();
        t.rate.clear();
        t.rate.extend(t.base.iter().map(|s| s.rate));
        t.ceil.clear();
        t.ceil.extend(t.base.iter().map(|s| s.ceil));
        t.floor.clone_from(&t.rate);
        for ((&c, w), f) in managed.iter().zip(&wanted).zip(&floors) {
            t.rate[c as usize] = w.rate;
            t.ceil[c as usize] = w.ceil;
            t.floor[c as usize] = *f;
        }
        // Bottom-up (children have higher indexes than their parent): what
        // each class's children keep at least, and what they want.
        t.need.clear();
        t.need.resize(n, 0);
        t.sum.clear();
        t.sum.resize(n, 0);
        let mut refused: Vec<(u32, u64)> = Vec::new();
        for c in (0..n).rev() {
            if t.need[c] > t.rate[c] {
                refused.push((c as u32, t.rate[c]));
                t.rate[c] = t.need[c];
                t.ceil[c] = t.ceil[c].max(t.rate[c]);
            }
            // From here on `floor` is the least this class can be given.
            t.floor[c] = t.floor[c].max(t.need[c]);
            if let Some(p) = t.parent[c] {
                t.need[p as usize] = t.need[p as usize].saturating_add(t.floor[c]);
                t.sum[p as usize] = t.sum[p as usize].saturating_add(t.rate[c]);
            }
        }
        // Top-down: children wanting more than their parent's (final) rate
        // give up their share above their floor, in proportion to it.
        let mut kept_within: Vec<Option<u32>> = vec![None; 0];
        for c in 0..n {
            let Some(p) = t.parent[c] else { continue };
            let p = p as usize;
            let (avail, want, hold) = (t.rate[p], t.sum[p], t.need[p]);
            if want <= avail {
                continue;
            }
            let room = u128::from(avail.saturating_sub(hold));
            let spread = u128::from(want - hold);
            let excess = u128::from(t.rate[c] - t.floor[c]);
            // excess * room / spread <= excess: fits a u64.
            let give = (excess * room / spread.max(1)) as u64;
            let new = t.floor[c] + give;
            if new != t.rate[c] {
                if kept_within.is_empty() {
                    kept_within.resize(n, None);
                }
                kept_within[c] = Some(p as u32);
                t.rate[c] = new;
            }
        }
        // Refusals: log when one starts or its numbers change, and when it
        // ends.
        for &(c, asked) in &refused {
            let held = t.rate[c as usize];
            if t.refused.get(&c) != Some(&asked) {
                out.push(Decision::Log {
                    severity: weir_config::rules::Severity::Warning,
                    message: format!(
                        "refused to cut the rate of {} to {}: its children keep at least {} (their min_rate, or their rate); kept at {}",
                        t.label(c),
                        show(asked),
                        show(held),
                        show(held)
                    ),
                });
            }
        }
        let was: Vec<u32> = t.refused.keys().copied().collect();
        for c in was {
            if !refused.iter().any(|r| r.0 == c) {
                out.push(Decision::Log {
                    severity: weir_config::rules::Severity::Info,
                    message: format!(
                        "{}: its rate no longer has to be held up for its children",
                        t.label(c)
                    ),
                });
            }
        }
        t.refused = refused.iter().copied().collect();
        let mut changes = Vec::new();
        for c in 0..n {
            let new = Shaping {
                rate: t.rate[c],
                ceil: t.ceil[c].max(t.rate[c]),
            };
            let old = t.applied[c];
            if new == old {
                continue;
            }
            t.applied[c] = new;
            changes.push((c as u32, old, new));
        }
        for (c, old, new) in changes {
            let mut why = Vec::new();
            if managed.binary_search(&c).is_ok() {
                self.wanted(tree, c, sla, in_force, Some(&mut why));
            }
            let t = &self.trees[tree as usize];
            if let Some(&asked) = t.refused.get(&c) {
                why.push(format!(
                    "rate kept at {} instead of {} for its children",
                    show(new.rate),
                    show(asked)
                ));
            }
            if let Some(Some(p)) = kept_within.get(c as usize) {
                why.push(format!(
                    "scaled to fit parent {}'s rate {}",
                    t.ids[*p as usize],
                    show(t.rate[*p as usize])
                ));
            }
            if why.is_empty() {
                why.push("back to the configured values".to_string());
            }
            out.push(Decision::ChangeClass {
                tree,
                class: c,
                change: ClassChange {
                    rate: (new.rate != old.rate).then_some(new.rate),
                    ceil: (new.ceil != old.ceil).then_some(new.ceil),
                    ..ClassChange::default()
                },
                old,
                new,
                reason: why.join("; "),
            });
        }
    }
}

/// A bytes/s value as a tc rate.
fn show(bytes_per_sec: u64) -> String {
    Rate::from_bits_per_sec(bytes_per_sec.saturating_mul(8)).to_string()
}

/// Phase 2 of a tick for one policy: its schedule window and `adjust`.
fn step_policy(
    p: &mut PolicyState,
    t: &TreeState,
    now: u64,
    local: LocalTime,
    m: &Metrics,
    sla: &Rules,
    in_force: &[(&str, &Action)],
) {
    let w = p.cfg.window_at(local.weekday, local.minute_of_day);
    if w != p.window {
        // A new period starts from its own values, not from what adjust
        // learnt in the previous one.
        p.window = w;
        p.level = None;
        p.restart();
    }
    let Some(adj) = p.cfg.adjust.clone() else {
        return;
    };
    let key = (p.cfg.tree, p.cfg.class);
    let throttled = in_force.iter().any(|(_, a)| match a {
        Action::Throttle { tree, class, .. } | Action::Set { tree, class, .. } => {
            (*tree, *class) == key
        }
        _ => false,
    });
    let penalised = p
        .cfg
        .penalty
        .as_ref()
        .is_some_and(|q| sla.is_open(q.sla as usize));
    if throttled || penalised {
        p.restart();
        return;
    }
    let Some(s) = m.class(key.0, key.1) else {
        return;
    };
    if s.rate == 0 {
        return;
    }
    p.acc += s.rate_bps as f64 * 100.0 / (s.rate as f64 * 8.0);
    p.samples += 1;
    let due = *p.next.get_or_insert(now.saturating_add(adj.every_ns));
    if now < due {
        return;
    }
    let mean = p.acc / f64::from(p.samples);
    p.restart();
    p.next = Some(now.saturating_add(adj.every_ns));
    let pre = match p.window.map(|w| &p.cfg.schedule[w]) {
        Some(w) => w.rate.map_or(t.base[key.1 as usize].rate, bytes),
        None => t.base[key.1 as usize].rate,
    };
    let (lo, hi) = (bytes(p.cfg.min_rate), bytes(p.cfg.max_rate));
    // Step from what the class really has when its parent holds it below
    // what adjust asked for: otherwise a class squeezed by its siblings
    // would keep "earning" steps it can't use and jump to max_rate the
    // moment they go quiet.
    let cur = p
        .level
        .unwrap_or(pre)
        .min(t.applied[key.1 as usize].rate)
        .max(lo);
    let step = bytes(adj.step);
    let (new, dir, bound) = if mean > adj.high {
        (cur.saturating_add(step).min(hi), "above high", adj.high)
    } else if mean < adj.low {
        (cur.saturating_sub(step).max(lo), "below low", adj.low)
    } else {
        return;
    };
    if new != cur {
        p.level = Some(new);
        p.note = format!(
            "adjust {} -> {} (mean utilization {}% of rate {dir} {}%)",
            show(cur),
            show(new),
            format_value(mean),
            format_value(bound)
        );
    }
}
