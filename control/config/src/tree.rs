//! One `[tree.NAME]`: its own keys, its classes and its filters, checked
//! against each other and turned into a [`Tree`].

use std::collections::HashMap;

use weir_dataplane::htb::MAX_DEPTH;
use weir_dataplane::shaper::MalformedPolicy;

use weir_dataplane::app::AppSpec;
use weir_dataplane::remark::Remark;

use super::app;
use super::check;
use super::diag::{Ctx, Span};
use super::filter;
use super::qdisc;
use super::raw::{sp, RawClass, RawTreeEntry, StrOrInt, S};
use super::units::{ClassId, Rate, Size};
use super::{Action, Apps, Class, Filter, Tree};

/// tc's `r2q` default.
pub const DEFAULT_R2Q: u32 = 10;
/// Most packets queued in one tree, by default.
pub const DEFAULT_POOL: u32 = 65536;
const MAX_POOL: i64 = 1 << 24;
/// tc's `mtu` default for HTB classes: the burst floor.
pub const HTB_MTU: u64 = 1600;
/// `get_hz()` with the kernel's high-resolution psched clock
/// (`/proc/net/psched` ends in 3b9aca00).
pub const PSCHED_HZ: u64 = 1_000_000_000;
/// Linux HTB clamps a quantum computed from r2q into this range.
pub const QUANTUM_MIN: u64 = 1000;
pub const QUANTUM_MAX: u64 = 200_000;

/// The class a `[section]` `parent` = `v` names in `tree`, under which its
/// `what` hang: None (reported at `v`) when it is no class of the tree, or
/// a leaf (`leaf_hint` follows "expected an inner class").
pub(crate) fn inner_parent(
    cx: &mut Ctx,
    v: &S<String>,
    tree: &Tree,
    section: &str,
    what: &str,
    leaf_hint: &str,
) -> Option<u32> {
    let Some(p) = tree.class_index(v.get_ref()) else {
        cx.error(
            &sp(v),
            format!("[{section}] `parent` = \"{}\" is not a class of tree `{}`; expected the id or name of the class the {what} hang under", v.get_ref(), tree.name),
        );
        return None;
    };
    if tree.classes[p as usize].is_leaf() {
        cx.error(
            &sp(v),
            format!("[{section}] `parent` {} of tree `{}` is a leaf; expected an inner class{leaf_hint}", tree.label(p), tree.name),
        );
        return None;
    }
    Some(p)
}

/// tc's default `burst`/`cburst` for a rate: `rate / get_hz() + mtu`
/// bytes (`tc/q_htb.c`). The kernel then stores it as time in 64 ns
/// ticks, which rounds it down by a few bytes; weir keeps bytes.
pub fn default_burst(rate: Rate) -> u64 {
    rate.bytes_per_sec() / PSCHED_HZ + HTB_MTU
}

/// tc's quantum for a class without one: `rate / r2q` bytes, and that
/// clamped to what Linux HTB accepts.
pub(crate) fn default_quantum(rate: Rate, r2q: u32) -> (u64, u64) {
    let q = rate.bytes_per_sec() / u64::from(r2q);
    (q, q.clamp(QUANTUM_MIN, QUANTUM_MAX))
}

/// What a reference to a class (`parent`, `default`, `flowid`) found.
enum Ref {
    Class(usize),
    /// `MAJOR:` — the qdisc itself.
    Qdisc,
    /// A class whose entry failed to parse (already reported).
    Broken,
    Unknown(String),
}

struct Lookup<'a> {
    major: Option<u32>,
    ids: HashMap<ClassId, usize>,
    names: HashMap<&'a str, usize>,
    broken_ids: Vec<ClassId>,
    broken_names: Vec<&'a str>,
    tree: &'a str,
}

impl Lookup<'_> {
    fn find(&self, s: &str) -> Ref {
        if let Ok(id) = s.parse::<ClassId>() {
            if id.minor == 0 {
                return match self.major {
                    Some(m) if m != id.major => Ref::Unknown(format!(
                        "\"{s}\" is not this tree's qdisc ({}); expected a class of tree `{}`",
                        ClassId::new(m, 0),
                        self.tree
                    )),
                    _ => Ref::Qdisc,
                };
            }
            if let Some(&i) = self.ids.get(&id) {
                return Ref::Class(i);
            }
            if self.broken_ids.contains(&id) {
                return Ref::Broken;
            }
            return Ref::Unknown(format!(
                "no class {id} in tree `{}`; expected the id or name of one of its classes",
                self.tree
            ));
        }
        if let Some(&i) = self.names.get(s) {
            return Ref::Class(i);
        }
        if self.broken_names.contains(&s) {
            return Ref::Broken;
        }
        Ref::Unknown(format!(
            "no class named \"{s}\" in tree `{}`; expected a class id like \"1:10\" or the name of one of its classes",
            self.tree
        ))
    }
}

/// Values of one class, each None when it was wrong (and reported).
struct Values {
    rate: Option<Rate>,
    ceil: Option<Rate>,
    burst: Option<u64>,
    cburst: Option<u64>,
    prio: Option<u8>,
    quantum: Option<u64>,
    qdisc: Option<weir_dataplane::qdisc::QdiscParams>,
    remark: Option<Option<Remark>>,
}

pub(crate) fn build(cx: &mut Ctx, raw: &RawTreeEntry) -> Option<Tree> {
    let errors_before = cx.errors.len();
    let name = raw.name.as_str();

    // --- the tree's own keys -------------------------------------------
    let mut link = None;
    let mut r2q = DEFAULT_R2Q;
    let mut overhead = 0i32;
    let mut mpu = 0u32;
    let mut malformed = MalformedPolicy::Default;
    let mut pool = DEFAULT_POOL;
    let mut wash = false;
    if let Some(t) = &raw.tree {
        if let Some(v) = &t.wash {
            wash = *v.get_ref();
        }
        if let Some(v) = &t.link {
            if matches!(v.get_ref(), StrOrInt::Str(s) if s.trim().ends_with('%')) {
                cx.error(
                    &sp(v),
                    "`link` can't be a percentage (it is what percentages are of); expected a rate like \"1gbit\"",
                );
            } else {
                link = check::shaping_rate(cx, v, "link", None);
            }
        }
        if let Some(v) = &t.r2q {
            r2q = check::int_in(cx, v, "r2q", 1, i64::from(u32::MAX)).map_or(r2q, |v| v as u32);
        }
        if let Some(v) = &t.overhead {
            overhead = check::int_in(cx, v, "overhead", -65535, 65535).map_or(0, |v| v as i32);
        }
        if let Some(v) = &t.mpu {
            mpu = check::int_in(cx, v, "mpu", 0, 65535).map_or(0, |v| v as u32);
        }
        if let Some(v) = &t.malformed {
            match v.get_ref().as_str() {
                "default" => malformed = MalformedPolicy::Default,
                "drop" => malformed = MalformedPolicy::Drop,
                other => cx.error(
                    &sp(v),
                    format!("unknown `malformed` policy \"{other}\"; expected \"default\" (send through the default class) or \"drop\""),
                ),
            }
        }
        if let Some(v) = &t.pool {
            pool = check::int_in(cx, v, "pool", 1, MAX_POOL).map_or(pool, |v| v as u32);
        }
    }
    // If the tree's own keys did not parse, its link is unknown: don't let
    // that cascade into "N% without a link" on every class.
    let class_link = if raw.tree.is_none() {
        Some(Rate::from_bits_per_sec(u64::MAX))
    } else {
        link
    };

    let classes = &raw.classes;
    let n = classes.len();
    if n == 0 && raw.broken.ids.is_empty() && !raw.had_errors {
        cx.error(
            &raw.span,
            format!("tree `{name}` has no classes; expected [[tree.{name}.class]] entries"),
        );
        return None;
    }

    // --- ids and names ---------------------------------------------------
    let mut lookup = Lookup {
        major: None,
        ids: HashMap::new(),
        names: HashMap::new(),
        broken_ids: raw
            .broken
            .ids
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect(),
        broken_names: raw.broken.names.iter().map(String::as_str).collect(),
        tree: name,
    };
    let mut ids: Vec<Option<ClassId>> = Vec::with_capacity(n);
    for (_, c) in classes {
        let id = match c.id.get_ref().parse::<ClassId>() {
            Err(e) => {
                cx.error(&sp(&c.id), format!("`id`: {e}"));
                None
            }
            Ok(id) if id.minor == 0 => {
                cx.error(
                    &sp(&c.id),
                    format!("class id {id} is the qdisc handle, not a class; expected a minor id above 0, like \"{:x}:1\"", id.major),
                );
                None
            }
            Ok(id) => match lookup.major {
                Some(m) if m != id.major => {
                    cx.error(
                        &sp(&c.id),
                        format!(
                            "class {id} has major {:x}, but this tree's classes use major {m:x}; expected {m:x}:{:x} (one qdisc handle per tree, as tc)",
                            id.major, id.minor
                        ),
                    );
                    None
                }
                _ => {
                    lookup.major = Some(id.major);
                    Some(id)
                }
            },
        };
        ids.push(id);
    }
    for (i, (_, c)) in classes.iter().enumerate() {
        if let Some(id) = ids[i] {
            if let Some(&first) = lookup.ids.get(&id) {
                let line = cx.line_of(&sp(&classes[first].1.id));
                cx.error(
                    &sp(&c.id),
                    format!("duplicate class id {id} (first defined on line {line}); expected each id once per tree"),
                );
            } else {
                lookup.ids.insert(id, i);
            }
        }
        if let Some(nm) = &c.name {
            let s = nm.get_ref().as_str();
            if s.trim().is_empty() || s.contains(':') {
                cx.error(
                    &sp(nm),
                    format!("bad class name \"{s}\"; expected a non-empty name without ':' (so it can't be mistaken for a class id), like \"voice\""),
                );
            } else if let Some(&first) = lookup.names.get(s) {
                let line = cx.line_of(&classes[first].1.name.as_ref().and_then(sp));
                cx.error(
                    &sp(nm),
                    format!("duplicate class name \"{s}\" (first used on line {line}); expected each name once per tree"),
                );
            } else {
                lookup.names.insert(s, i);
            }
        }
    }

    // --- parents: resolve, break cycles, measure depth -----------------
    let mut parent: Vec<Option<usize>> = vec![None; n];
    for (i, (_, c)) in classes.iter().enumerate() {
        let Some(p) = &c.parent else { continue };
        match lookup.find(p.get_ref()) {
            Ref::Class(j) if j == i => cx.error(
                &sp(p),
                format!("class {} is its own parent; expected another class, or no parent for a top-level class", label(c, ids[i])),
            ),
            Ref::Class(j) => parent[i] = Some(j),
            Ref::Qdisc | Ref::Broken => {}
            Ref::Unknown(msg) => cx.error(&sp(p), format!("unknown parent: {msg}")),
        }
    }
    let mut state = vec![0u8; n]; // 0 new, 1 on the current path, 2 done
    for start in 0..n {
        let mut path = Vec::new();
        let mut cur = start;
        loop {
            match state[cur] {
                2 => break,
                1 => {
                    let at = path.iter().position(|&x| x == cur).unwrap_or(0);
                    let cycle: Vec<String> = path[at..]
                        .iter()
                        .chain(std::iter::once(&cur))
                        .map(|&k| label(&classes[k].1, ids[k]))
                        .collect();
                    let last = *path.last().unwrap_or(&cur);
                    cx.error(
                        &classes[last].1.parent.as_ref().and_then(sp),
                        format!("parent cycle: {}; expected a tree (every chain of parents must end at a top-level class)", cycle_text(&cycle)),
                    );
                    parent[last] = None;
                    break;
                }
                _ => {}
            }
            state[cur] = 1;
            path.push(cur);
            match parent[cur] {
                Some(p) => cur = p,
                None => break,
            }
        }
        for k in path {
            state[k] = 2;
        }
    }
    let mut depth = vec![0usize; n];
    for i in 0..n {
        // No cycles are left, so walking up terminates.
        let mut chain = vec![i];
        let mut cur = i;
        while depth[cur] == 0 {
            match parent[cur] {
                Some(p) => {
                    chain.push(p);
                    cur = p;
                }
                None => {
                    depth[cur] = 1;
                    break;
                }
            }
        }
        for w in chain.windows(2).rev() {
            if depth[w[0]] == 0 {
                depth[w[0]] = depth[w[1]] + 1;
            }
        }
    }
    for i in 0..n {
        if depth[i] > MAX_DEPTH && parent[i].is_some_and(|p| depth[p] <= MAX_DEPTH) {
            let c = &classes[i].1;
            cx.error(
                &c.parent.as_ref().map_or_else(|| sp(&c.id), sp),
                format!(
                    "class {} would be level {} of the tree; expected at most {MAX_DEPTH} levels (HTB's TC_HTB_MAXDEPTH)",
                    label(c, ids[i]),
                    depth[i]
                ),
            );
        }
    }
    let mut kids: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, p) in parent.iter().enumerate() {
        if let Some(p) = p {
            kids[*p].push(i);
        }
    }
    let has_children: Vec<bool> = kids.iter().map(|k| !k.is_empty()).collect();

    // --- each class's values -------------------------------------------
    let values: Vec<Values> = classes
        .iter()
        .enumerate()
        .map(|(i, (_, c))| class_values(cx, c, ids[i], has_children[i], class_link, r2q))
        .collect();

    // --- advice the kernel would not give ------------------------------
    for (i, (_, c)) in classes.iter().enumerate() {
        if has_children[i] {
            let rates: Option<Vec<u64>> = kids[i]
                .iter()
                .map(|&k| values[k].rate.map(Rate::bits_per_sec))
                .collect();
            if let (Some(rates), Some(rate)) = (rates, values[i].rate) {
                let sum: u128 = rates.iter().map(|&r| u128::from(r)).sum();
                if sum > u128::from(rate.bits_per_sec()) {
                    let shown = u64::try_from(sum).map_or_else(
                        |_| format!("{sum}bit"),
                        |s| Rate::from_bits_per_sec(s).to_string(),
                    );
                    cx.warn(
                        &sp(&c.rate),
                        format!(
                            "the children of {} are guaranteed {shown} together, more than its rate {rate}; HTB can't give all of them their rate at once",
                            label(c, ids[i])
                        ),
                    );
                }
            }
        }
        if let (Some(p), Some(ceil)) = (parent[i], values[i].ceil) {
            if let Some(pceil) = values[p].ceil {
                if ceil > pceil {
                    cx.warn(
                        &c.ceil.as_ref().map_or_else(|| sp(&c.rate), sp),
                        format!(
                            "ceil {ceil} of {} is above its parent {}'s ceil {pceil}; the parent's ceil is the real limit",
                            label(c, ids[i]),
                            label(&classes[p].1, ids[p])
                        ),
                    );
                }
            }
        }
    }

    // --- default class -------------------------------------------------
    let mut default_class = None;
    if let Some(t) = &raw.tree {
        let d = &t.default;
        match lookup.find(d.get_ref()) {
            Ref::Class(i) if has_children[i] => cx.error(
                &sp(d),
                format!(
                    "default class {} has children; expected a leaf class (only leaves queue packets)",
                    label(&classes[i].1, ids[i])
                ),
            ),
            Ref::Class(i) => default_class = Some(i),
            Ref::Qdisc => cx.error(
                &sp(d),
                format!("default \"{}\" is the qdisc, not a class; expected a leaf class like \"1:30\"", d.get_ref()),
            ),
            Ref::Broken => {}
            Ref::Unknown(msg) => cx.error(&sp(d), format!("unknown default class: {msg}")),
        }
    }

    // --- filters -------------------------------------------------------
    let mut filters = Vec::with_capacity(raw.filters.len());
    for (span, f) in &raw.filters {
        let checked = filter::check(cx, f);
        // Washing happens before classification (the trust boundary is
        // where frames enter), so a filter of a washed tree sees DSCP 0.
        if let (true, Some((_, spec))) = (wash, &checked) {
            if let Some((v, m)) = spec.tos.filter(|(v, m)| v & m != 0) {
                let at = f
                    .dscp
                    .as_ref()
                    .map_or_else(|| f.tos.as_ref().and_then(sp), sp);
                cx.warn(
                    &at,
                    format!(
                        "this filter matches TOS {v:#04x}/{m:#04x}, which can never match: tree `{name}` has `wash = true`, so its filters see DSCP 0; expected no DSCP match in a washed tree (match on the DSCP before the trust boundary, or don't wash)"
                    ),
                );
            }
        }
        let target = match (&f.flowid, &f.action) {
            (Some(_), Some(action)) => {
                cx.error(
                    &sp(action),
                    "a filter has a flowid (its frames go to that class) or `action = \"drop\"`, not both; expected one of them".to_string(),
                );
                None
            }
            (None, Some(action)) if action.get_ref() == "drop" => Some(Action::Drop),
            (None, Some(action)) => {
                cx.error(
                    &sp(action),
                    format!(
                        "unknown filter action \"{}\"; expected \"drop\" (or a flowid instead of an action)",
                        action.get_ref()
                    ),
                );
                None
            }
            (None, None) => {
                cx.error(
                    span,
                    "a filter needs a flowid (the leaf class its frames go to) or `action = \"drop\"`; expected one of them".to_string(),
                );
                None
            }
            (Some(flowid), None) => match lookup.find(flowid.get_ref()) {
                Ref::Class(i) if has_children[i] => {
                    cx.error(
                        &sp(flowid),
                        format!(
                            "filter targets {}, which has children (an inner class); expected a leaf class. tc would accept it, find no queue there and fall back to the default class",
                            label(&classes[i].1, ids[i])
                        ),
                    );
                    None
                }
                Ref::Class(i) => Some(Action::Class(i as u32)),
                Ref::Qdisc => {
                    cx.error(
                        &sp(flowid),
                        format!(
                            "flowid \"{}\" is the qdisc, not a class; expected a leaf class",
                            flowid.get_ref()
                        ),
                    );
                    None
                }
                Ref::Broken => None,
                Ref::Unknown(msg) => {
                    cx.error(&sp(flowid), format!("unknown flowid: {msg}"));
                    None
                }
            },
        };
        if let (Some((prio, spec)), Some(t)) = (checked, target) {
            filters.push((prio, t, spec));
        }
    }

    // --- apps ----------------------------------------------------------
    let mut apps_spec = app::table(cx, raw.apps_table.as_ref().map(|(_, t)| t));
    if let (Some((span, _)), true, false) = (&raw.apps_table, raw.apps.is_empty(), raw.had_errors) {
        cx.warn(
            span,
            format!("[tree.{name}.apps] sizes a flow table, but the tree has no apps, so there is none; expected [[tree.{name}.app]] entries, or no [tree.{name}.apps]"),
        );
    }
    let mut app_names: HashMap<&str, Span> = HashMap::new();
    // (name, class before reordering, remark); (prio, app, rule).
    let mut apps: Vec<(String, usize, Option<Remark>)> = Vec::new();
    let mut rules = Vec::new();
    for e in &raw.apps {
        let a = &e.app;
        let app_name = a.name.get_ref().as_str();
        if app::name(cx, &a.name) {
            if let Some(first) = app_names.get(app_name) {
                let line = cx.line_of(first);
                cx.error(
                    &sp(&a.name),
                    format!("duplicate app name \"{app_name}\" (first used on line {line}); expected each name once per tree (give one app several [[tree.{name}.app.match]] rules instead)"),
                );
            } else {
                app_names.insert(app_name, sp(&a.name));
            }
        }
        let class = match lookup.find(a.class.get_ref()) {
            Ref::Class(i) if has_children[i] => {
                cx.error(
                    &sp(&a.class),
                    format!(
                        "app \"{app_name}\" goes to {}, which has children (an inner class); expected a leaf class (only leaves queue packets)",
                        label(&classes[i].1, ids[i])
                    ),
                );
                None
            }
            Ref::Class(i) => Some(i),
            Ref::Qdisc => {
                cx.error(
                    &sp(&a.class),
                    format!(
                        "`class` \"{}\" is the qdisc, not a class; expected a leaf class",
                        a.class.get_ref()
                    ),
                );
                None
            }
            Ref::Broken => None,
            Ref::Unknown(msg) => {
                cx.error(&sp(&a.class), format!("unknown class: {msg}"));
                None
            }
        };
        let remark = app::remark(cx, a.dscp.as_ref(), a.remark.as_ref());
        if e.rules.is_empty() && !e.broken_rules {
            cx.error(
                &e.span,
                format!("app \"{app_name}\" has no rules, so no flow would ever be it; expected at least one [[tree.{name}.app.match]] after its [[tree.{name}.app]]"),
            );
        }
        if apps.len() > usize::from(u16::MAX) {
            cx.error(
                &e.span,
                format!(
                    "more than {} apps in tree `{name}`; expected at most that many",
                    u32::from(u16::MAX) + 1
                ),
            );
        }
        let index = apps.len();
        for (span, m) in &e.rules {
            if let Some((prio, spec)) = app::rule(cx, span, m, link) {
                rules.push((prio, index, spec));
            }
        }
        // Placeholders after an error are never used: the tree fails.
        apps.push((
            app_name.to_string(),
            class.unwrap_or(0),
            remark.unwrap_or(None),
        ));
    }

    if cx.errors.len() > errors_before || raw.had_errors || raw.tree.is_none() {
        return None;
    }
    let default_class = default_class?;

    // --- parents-first order, keeping file order where it already is ---
    let mut order = Vec::with_capacity(n);
    let mut placed = vec![false; n];
    for i in 0..n {
        let mut chain = Vec::new();
        let mut cur = Some(i);
        while let Some(c) = cur {
            if placed[c] {
                break;
            }
            chain.push(c);
            cur = parent[c];
        }
        for &c in chain.iter().rev() {
            placed[c] = true;
            order.push(c);
        }
    }
    let mut new_index = vec![0u32; n];
    for (new, &old) in order.iter().enumerate() {
        new_index[old] = new as u32;
    }
    let mut out = Vec::with_capacity(n);
    for &old in &order {
        let c = &classes[old].1;
        let v = &values[old];
        out.push(Class {
            id: ids[old]?,
            name: c.name.as_ref().map(|s| s.get_ref().clone()),
            parent: parent[old].map(|p| new_index[p]),
            rate: v.rate?,
            ceil: v.ceil?,
            burst: Size::from_bytes(v.burst?),
            cburst: Size::from_bytes(v.cburst?),
            prio: v.prio?,
            quantum: Size::from_bytes(v.quantum?),
            qdisc: if has_children[old] {
                None
            } else {
                Some(v.qdisc?)
            },
            remark: v.remark?,
        });
    }
    // Evaluation order: tc prio, then file order (a stable sort).
    filters.sort_by_key(|(prio, _, _)| *prio);
    let mut drops = 0;
    let filters = filters
        .into_iter()
        .map(|(prio, action, spec)| {
            let action = match action {
                Action::Class(t) => Action::Class(new_index[t as usize]),
                Action::Drop => Action::Drop,
            };
            Filter::new(prio, action, spec, &mut drops)
        })
        .collect();
    // Rules too: prio, then file order.
    rules.sort_by_key(|(prio, _, _)| *prio);
    apps_spec.apps = apps
        .into_iter()
        .map(|(name, class, remark)| AppSpec {
            name,
            class: new_index[class],
            remark,
        })
        .collect();
    let prios = rules.iter().map(|(prio, _, _)| *prio).collect();
    apps_spec.rules = rules
        .into_iter()
        .map(|(_, app, mut spec)| {
            // At most u16::MAX + 1 apps (checked above).
            spec.app = app as u16;
            spec
        })
        .collect();
    Some(Tree {
        name: name.to_string(),
        link,
        default_class: new_index[default_class],
        classes: out,
        filters,
        r2q,
        overhead,
        mpu,
        malformed,
        pool,
        wash,
        apps: Apps {
            spec: apps_spec,
            prios,
        },
    })
}

/// "1:10 (voice)" from the raw entry, for messages.
/// Hops of a parent cycle shown at each end of a long one.
const CYCLE_ENDS: usize = 4;

/// `a → b → … → a`, every hop when the cycle is short; a long one (a
/// generated config can close a loop through thousands of classes) keeps
/// its first and last [`CYCLE_ENDS`] hops and says how many it leaves out,
/// so the diagnostic stays one readable line that still names the classes
/// at both ends of the loop.
fn cycle_text(hops: &[String]) -> String {
    // `hops` repeats its first class at the end; the cycle is one shorter.
    let classes = hops.len().saturating_sub(1);
    if hops.len() <= 2 * CYCLE_ENDS + 1 {
        return hops.join(" → ");
    }
    let left_out = hops.len() - 2 * CYCLE_ENDS;
    format!(
        "{} → … {left_out} more … → {} ({classes} classes)",
        hops[..CYCLE_ENDS].join(" → "),
        hops[hops.len() - CYCLE_ENDS..].join(" → ")
    )
}

fn label(c: &RawClass, id: Option<ClassId>) -> String {
    let id = id.map_or_else(|| c.id.get_ref().clone(), |i| i.to_string());
    match &c.name {
        Some(n) => format!("{id} ({})", n.get_ref()),
        None => id,
    }
}

fn class_values(
    cx: &mut Ctx,
    c: &RawClass,
    id: Option<ClassId>,
    inner: bool,
    link: Option<Rate>,
    r2q: u32,
) -> Values {
    let max32 = u64::from(u32::MAX);
    let rate = check::shaping_rate(cx, &c.rate, "rate", link);
    let ceil = match &c.ceil {
        Some(v) => check::shaping_rate(cx, v, "ceil", link),
        None => rate,
    };
    if let (Some(r), Some(cl), Some(v)) = (rate, ceil, &c.ceil) {
        if cl < r {
            cx.error(
                &sp(v),
                format!("ceil {cl} of class {} is below its rate {r}; expected ceil >= rate (or no ceil: it defaults to rate)", label(c, id)),
            );
        }
    }
    let burst_of = |cx: &mut Ctx, v: &Option<S<StrOrInt>>, what: &str, r: Option<Rate>| match v {
        Some(v) => check::size_in(cx, v, what, 1, max32),
        None => r.map(|r| default_burst(r).min(max32)),
    };
    let burst = burst_of(cx, &c.burst, "burst", rate);
    let cburst = burst_of(cx, &c.cburst, "cburst", ceil);
    let prio = match &c.prio {
        Some(v) => check::int_in(cx, v, "prio", 0, 7).map(|p| p as u8),
        None => Some(0),
    };
    let quantum = match &c.quantum {
        Some(v) => check::size_in(cx, v, "quantum", 1, i32::MAX as u64),
        None => rate.map(|r| {
            let (q, clamped) = default_quantum(r, r2q);
            // Linux computes (and complains about) quanta of leaves only:
            // inner classes don't run DRR.
            if clamped != q && !inner {
                cx.warn(
                    &sp(&c.rate),
                    format!(
                        "class {}: quantum = rate {r} / r2q {r2q} = {q} bytes is {} than {}; Linux HTB clamps it to {clamped}, and so does weir (set `quantum` on the class or `r2q` on the tree to choose)",
                        label(c, id),
                        if q < QUANTUM_MIN { "smaller" } else { "bigger" },
                        if q < QUANTUM_MIN { QUANTUM_MIN } else { QUANTUM_MAX },
                    ),
                );
            }
            clamped
        }),
    };
    let qdisc = match (&c.qdisc, inner) {
        (Some(q), true) => {
            cx.error(
                &sp(q),
                format!(
                    "class {} has children, so it can't have a qdisc; expected `qdisc` on leaf classes only (tc replaces an inner class's qdisc)",
                    label(c, id)
                ),
            );
            None
        }
        (Some(q), false) => qdisc::resolve(cx, q, link),
        (None, _) => Some(qdisc::DEFAULT_LEAF),
    };
    let remark = match (&c.dscp, &c.remark, inner) {
        (None, None, _) => Some(None),
        (d, r, true) => {
            let at = d.as_ref().map_or_else(|| r.as_ref().and_then(sp), sp);
            cx.error(
                &at,
                format!(
                    "class {} has children, so no frame leaves from it; expected `dscp` on leaf classes only",
                    label(c, id)
                ),
            );
            None
        }
        (d, r, false) => app::remark(cx, d.as_ref(), r.as_ref()).ok(),
    };
    Values {
        rate,
        ceil,
        burst,
        cburst,
        prio,
        quantum,
        qdisc,
        remark,
    }
}
