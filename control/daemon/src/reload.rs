//! `weir reload` / SIGHUP: from the running configuration and a newly
//! loaded file to what must change.
//!
//! The new file is parsed and checked completely before anything is
//! touched (a file with errors changes nothing and the errors come back
//! with FILE:LINE:COL). Then each tree is compared with its running self:
//!
//! - the same classes (ids, names, parents, order, leaf qdiscs), filters,
//!   default class and tree keys, differing only in rate / ceil / burst /
//!   cburst / prio / quantum: applied **incrementally**, one class change
//!   per class, each at a batch boundary of the owning worker, nothing
//!   queued dropped;
//! - anything else in a tree (classes added or removed, a leaf's qdisc
//!   changed, filters, apps, wash or a class's DSCP remark, default class,
//!   tree keys): the tree is **rebuilt**:
//!   a new shaper is compiled off the packet path and the owning worker
//!   swaps it in at a batch boundary, moving the queue of every leaf that
//!   still exists (same class id, still a leaf) into its new self; only
//!   the packets of removed classes are dropped (as `flushed`). Class
//!   statistics of a rebuilt tree start from zero, as a new tc class's do.
//! - ports (`[[pair]]`), `[xdp]`, or the set of trees changed: that
//!   needs new sockets and workers, so the reload is refused as a whole,
//!   saying why, and the running configuration keeps shaping; restart weir
//!   to apply it.

use weir_dataplane::htb::ClassChange;

use std::collections::HashMap;

use weir_config::{Class, ClassId, Config, Tree};

/// One class change of an incremental reload.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub tree: String,
    pub tree_index: usize,
    pub class: u32,
    pub change: ClassChange,
    pub summary: String,
}

/// A tree to rebuild.
#[derive(Clone, Debug, PartialEq)]
pub struct Rebuild {
    pub tree: String,
    /// Index into both configs' `trees`.
    pub tree_index: usize,
    /// Why it can't be changed in place.
    pub why: String,
    /// Old class index → new class index of the class with the same id
    /// (its buckets carry over; its packets too, if both are leaves).
    pub map: Vec<Option<u32>>,
    /// Old leaves whose queues are dropped (their class is gone or is no
    /// longer a leaf), by id.
    pub dropped: Vec<String>,
}

/// What a reload would do.
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    /// Class changes to apply in place (tree then class order) and trees
    /// to rebuild; both maybe empty.
    Apply {
        steps: Vec<Step>,
        rebuilds: Vec<Rebuild>,
    },
    /// What keeps the new file from being applied to the running trees.
    NeedsRestart(Vec<String>),
}

fn rebuild(ti: usize, old: &Tree, new: &Tree, why: String) -> Rebuild {
    let mut dropped = Vec::new();
    // By id, once: a tree of subscribers has tens of thousands of classes.
    let by_id: HashMap<ClassId, u32> = new
        .classes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id, i as u32))
        .collect();
    let map = old
        .classes
        .iter()
        .map(|c| {
            let kept = by_id.get(&c.id).copied();
            let still_leaf = kept.is_some_and(|k| new.classes[k as usize].is_leaf());
            if c.is_leaf() && !still_leaf {
                dropped.push(c.id.to_string());
            }
            kept
        })
        .collect();
    Rebuild {
        tree: old.name.clone(),
        tree_index: ti,
        why,
        map,
        dropped,
    }
}

fn change_of(old: &Class, new: &Class) -> ClassChange {
    let b = |s: weir_config::Size| u32::try_from(s.bytes()).unwrap_or(u32::MAX);
    ClassChange {
        rate: (new.rate != old.rate).then(|| new.rate.bytes_per_sec()),
        ceil: (new.ceil != old.ceil).then(|| new.ceil.bytes_per_sec()),
        burst: (new.burst != old.burst).then(|| b(new.burst)),
        cburst: (new.cburst != old.cburst).then(|| b(new.cburst)),
        prio: (new.prio != old.prio).then_some(new.prio),
        quantum: (new.quantum != old.quantum).then(|| b(new.quantum)),
    }
}

fn summary(tree: &Tree, i: usize, old: &Class, new: &Class) -> String {
    let mut parts = Vec::new();
    let mut diff = |name: &str, a: String, b: String| {
        if a != b {
            parts.push(format!("{name} {a} → {b}"));
        }
    };
    diff("rate", old.rate.to_string(), new.rate.to_string());
    diff("ceil", old.ceil.to_string(), new.ceil.to_string());
    diff("burst", old.burst.to_string(), new.burst.to_string());
    diff("cburst", old.cburst.to_string(), new.cburst.to_string());
    diff("prio", old.prio.to_string(), new.prio.to_string());
    diff("quantum", old.quantum.to_string(), new.quantum.to_string());
    format!(
        "tree {}: class {}: {}",
        tree.name,
        tree.label(i as u32),
        parts.join(", ")
    )
}

/// Why `new` can't be applied to `old` in place; None when it can.
fn structural_difference(old: &Tree, new: &Tree) -> Option<String> {
    if old.classes.len() != new.classes.len() {
        return Some(format!(
            "{} classes instead of {} (classes added or removed)",
            new.classes.len(),
            old.classes.len()
        ));
    }
    for (o, n) in old.classes.iter().zip(&new.classes) {
        if o.id != n.id || o.parent != n.parent {
            return Some(format!(
                "class {} moved, was renumbered or the classes were reordered",
                n.id
            ));
        }
        if o.name != n.name {
            return Some(format!("class {} was renamed", n.id));
        }
        if o.qdisc != n.qdisc {
            return Some(format!("class {}: its leaf qdisc changed", n.id));
        }
        if o.remark != n.remark {
            return Some(format!("class {}: its dscp remark changed", n.id));
        }
    }
    if old.filters != new.filters {
        return Some("its filters changed".into());
    }
    // The apps engine is built with the tree; the rebuild carries its flows
    // and their decisions over (`Shaper::migrate_into`).
    if old.apps != new.apps {
        return Some("its apps changed".into());
    }
    if old.wash != new.wash {
        return Some("wash changed".into());
    }
    if old.default_class != new.default_class {
        return Some("its default class changed".into());
    }
    if (
        old.r2q,
        old.overhead,
        old.mpu,
        old.malformed,
        old.pool,
        old.link,
    ) != (
        new.r2q,
        new.overhead,
        new.mpu,
        new.malformed,
        new.pool,
        new.link,
    ) {
        return Some("a tree-level key (link, r2q, overhead, mpu, malformed, pool) changed".into());
    }
    None
}

/// Compare the running `old` with the newly loaded `new`.
pub fn plan(old: &Config, new: &Config) -> Plan {
    let mut blockers = Vec::new();
    if old.pairs != new.pairs {
        blockers.push("the [[pair]] entries changed (ports, trees or queues)".to_string());
    }
    if old.xdp != new.xdp {
        blockers.push("[xdp] changed".to_string());
    }
    let mut steps = Vec::new();
    let mut rebuilds = Vec::new();
    for (ti, o) in old.trees.iter().enumerate() {
        let Some(n) = new.tree(&o.name) else {
            blockers.push(format!("tree {} was removed", o.name));
            continue;
        };
        if new.trees.iter().position(|t| t.name == o.name) != Some(ti) {
            blockers.push(format!(
                "tree {} moved in the file (trees were reordered)",
                o.name
            ));
            continue;
        }
        if let Some(why) = structural_difference(o, n) {
            rebuilds.push(rebuild(ti, o, n, why));
            continue;
        }
        for (ci, (oc, nc)) in o.classes.iter().zip(&n.classes).enumerate() {
            let change = change_of(oc, nc);
            if change != ClassChange::default() {
                steps.push(Step {
                    tree: o.name.clone(),
                    tree_index: ti,
                    class: ci as u32,
                    change,
                    summary: summary(o, ci, oc, nc),
                });
            }
        }
    }
    for n in &new.trees {
        if old.tree(&n.name).is_none() {
            blockers.push(format!("tree {} is new", n.name));
        }
    }
    if blockers.is_empty() {
        Plan::Apply { steps, rebuilds }
    } else {
        Plan::NeedsRestart(blockers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_config::parse_str;

    fn lab_text() -> String {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/lab.toml");
        std::fs::read_to_string(path).expect("lab.toml")
    }

    fn cfg(text: &str) -> Config {
        parse_str(text, "t.toml").expect("valid").config
    }

    #[test]
    fn same_file_changes_nothing() {
        let c = cfg(&lab_text());
        assert_eq!(
            plan(&c, &c),
            Plan::Apply {
                steps: vec![],
                rebuilds: vec![]
            }
        );
    }

    #[test]
    fn rates_are_incremental() {
        let old = cfg(&lab_text());
        // Only the first "30mbit" (tree up, 1:10) changes.
        let new = cfg(&lab_text().replacen("rate = \"30mbit\"", "rate = \"15mbit\"", 1));
        let Plan::Apply { steps, rebuilds } = plan(&old, &new) else {
            panic!("expected incremental");
        };
        assert!(rebuilds.is_empty(), "{rebuilds:?}");
        assert_eq!(steps.len(), 1, "{steps:?}");
        assert_eq!((steps[0].tree.as_str(), steps[0].class), ("up", 1));
        assert_eq!(steps[0].change.rate, Some(1_875_000));
        assert!(
            steps[0].summary.contains("rate 30Mbit → 15Mbit"),
            "{}",
            steps[0].summary
        );
    }

    #[test]
    fn structure_changes_rebuild_the_tree_keeping_kept_leaves() {
        let old = cfg(&lab_text());
        let cases = [
            (
                lab_text().replacen("kind = \"pfifo\" }", "kind = \"pfifo\", limit = 20 }", 1),
                "leaf qdisc changed",
            ),
            (
                lab_text().replacen("dscp = \"EF\"", "dscp = \"CS5\"", 1),
                "filters changed",
            ),
            (
                lab_text().replacen("name = \"high\"", "name = \"hi\"", 1),
                "renamed",
            ),
            (
                lab_text().replacen(
                    "[tree.down]",
                    "[[tree.up.app]]\nname = \"voice\"\nclass = \"1:10\"\n[[tree.up.app.match]]\nports = [5060]\n\n[tree.down]",
                    1,
                ),
                "apps changed",
            ),
            (
                lab_text().replacen("r2q = 100", "r2q = 100\nwash = true", 1),
                "wash changed",
            ),
            (
                lab_text().replacen(
                    "qdisc = { kind = \"pfifo\" }",
                    "dscp = \"CS1\"\nqdisc = { kind = \"pfifo\" }",
                    1,
                ),
                "dscp remark changed",
            ),
        ];
        for (text, needle) in cases {
            match plan(&old, &cfg(&text)) {
                Plan::Apply { rebuilds, .. } => {
                    assert_eq!(rebuilds.len(), 1, "{needle}: {rebuilds:?}");
                    let r = &rebuilds[0];
                    assert!(r.why.contains(needle), "{needle}: {}", r.why);
                    assert_eq!(r.map, vec![Some(0), Some(1), Some(2), Some(3)], "{needle}");
                    assert!(r.dropped.is_empty());
                }
                other => panic!("{needle}: expected a rebuild, got {other:?}"),
            }
        }
        // Remove 1:20 from the up tree (and its filter), add 1:40.
        let text = lab_text();
        let start = text
            .find("[[tree.up.class]]\nid = \"1:20\"")
            .expect("1:20 of up");
        let end = start
            + text[start..]
                .find("[[tree.up.class]]\nid = \"1:30\"")
                .expect("1:30 after it");
        let mut edited = format!("{}{}", &text[..start], &text[end..]);
        edited = edited.replacen("flowid = \"1:20\"", "flowid = \"1:40\"", 1);
        edited = edited.replacen(
            "[tree.down]",
            "[[tree.up.class]]\nid = \"1:40\"\nparent = \"1:1\"\nrate = \"10mbit\"\nqdisc = { kind = \"pfifo\" }\n\n[tree.down]",
            1,
        );
        match plan(&old, &cfg(&edited)) {
            Plan::Apply { rebuilds, .. } => {
                let r = &rebuilds[0];
                assert_eq!(r.tree, "up");
                // 1:1 kept at 0 (inner: buckets only), 1:10 at 1, 1:20
                // gone, 1:30 now at 2.
                assert_eq!(r.map, vec![Some(0), Some(1), None, Some(2)]);
                assert_eq!(r.dropped, vec!["1:20".to_string()]);
            }
            other => panic!("expected a rebuild, got {other:?}"),
        }
    }

    #[test]
    fn port_and_xdp_changes_need_a_restart_and_say_why() {
        let old = cfg(&lab_text());
        let cases = [
            (
                lab_text().replacen("inside = \"weir-in\"", "inside = \"eth9\"", 1),
                "[[pair]]",
            ),
            (format!("[xdp]\nbatch = 32\n{}", lab_text()), "[xdp]"),
        ];
        for (text, needle) in cases {
            match plan(&old, &cfg(&text)) {
                Plan::NeedsRestart(why) => {
                    assert!(why.iter().any(|w| w.contains(needle)), "{needle}: {why:?}")
                }
                other => panic!("{needle}: expected a refusal, got {other:?}"),
            }
        }
    }
}
