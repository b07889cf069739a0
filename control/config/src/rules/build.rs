//! Building: raw `[[sla]]` and `[[policy]]` entries → [`SlaRule`] and
//! [`Policy`], with every reference resolved and every cross-entry rule
//! checked (unique names, one policy per class, floors that fit, trees the
//! engine manages not overbooked).

use std::collections::HashMap;

use super::schedule::{coverage, days, first_common, fmt_clock, hours};
use super::template::template;
use super::when::{parse_when, TargetKind};
use super::*;
use crate::check;
use crate::diag::{Ctx, Span};
use crate::raw::{sp, RawAction, RawDoc, RawPolicy, RawSla, S};
use crate::units::Rate;
use crate::{Pair, Tree};

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
