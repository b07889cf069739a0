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
//! - leaves added and removed (subscribers coming and going) and filters
//!   changed, and otherwise only rates: the tree is **changed in place**
//!   (`DataPath::edit_tree`, `weir_dataplane::htb` `edit.rs`): the removed
//!   leaves' packets are dropped as `flushed`, the new ones start empty,
//!   and every other class keeps its queue, tokens, AQM state and
//!   counters; it holds the worker for microseconds. A new leaf must sit
//!   under a class that stays, with an id above every leaf's and its
//!   siblings' (new circuits get such ids: `keep_ids`), and the running
//!   tree must have spare room (`weir_config::spare_leaves`); else, or
//!   when the running tree refuses, the tree is rebuilt;
//! - anything else in a tree (inner classes added or removed, a leaf's
//!   qdisc changed, apps, wash or a class's DSCP remark, default class,
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

use weir_dataplane::htb::{edit_layout, ClassChange};

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

/// A tree changed in place (`DataPath::edit_tree`): leaves removed and
/// added (subscribers coming and going), its filters taken from the file;
/// every other class keeps its queue, tokens, AQM state and counters.
#[derive(Clone, Debug, PartialEq)]
pub struct Edit {
    pub tree: String,
    pub tree_index: usize,
    /// The running tree's indexes of the leaves removed.
    pub remove: Vec<u32>,
    /// How many leaves are added: the edited tree's last classes.
    pub added: u32,
    /// The file's tree numbered as the edited tree will be
    /// (`weir_dataplane::htb::edit_layout`).
    pub after: Tree,
    /// Each class of the file's tree: its index in `after`.
    pub new_index: Vec<u32>,
    /// Rate changes of the classes kept, by index in `after`, applied
    /// after the edit.
    pub steps: Vec<Step>,
    /// Ids of the classes removed and added.
    pub removed_ids: Vec<String>,
    pub added_ids: Vec<String>,
    /// What to do instead if the running tree can't take the edit (its
    /// spare entries are used up, or it had a leaf with a higher id).
    pub fallback: Rebuild,
}

/// What a reload would do.
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    /// Class changes to apply in place (tree then class order), trees to
    /// change in place and trees to rebuild; all maybe empty.
    Apply {
        steps: Vec<Step>,
        edits: Vec<Edit>,
        rebuilds: Vec<Rebuild>,
    },
    /// What keeps the new file from being applied to the running trees.
    NeedsRestart(Vec<String>),
}

fn rebuild(ti: usize, old: &Tree, new: &Tree, why: String) -> Rebuild {
    let mut dropped = Vec::new();
    // By id, once: a tree of subscribers has tens of thousands of classes.
    let by_id = index_by_id(new);
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

/// The edit that makes the running `old` into `new` in place, or why there
/// is none: only leaves come and go (under classes that stay, with ids
/// above every leaf's), the classes that stay keep their place in the
/// hierarchy, names, leaf qdiscs and remarks, and only filters and rates
/// change besides.
fn in_place(ti: usize, old: &Tree, new: &Tree, why: &str) -> Result<Edit, String> {
    let keys = |t: &Tree| {
        (
            t.r2q,
            t.overhead,
            t.mpu,
            t.malformed,
            t.pool,
            t.link,
            t.wash,
        )
    };
    if keys(old) != keys(new) {
        return Err("a tree-level key changed".into());
    }
    let old_by_id: HashMap<ClassId, u32> = index_by_id(old);
    let new_by_id: HashMap<ClassId, u32> = index_by_id(new);
    let mut remove = Vec::new();
    let mut removed_ids = Vec::new();
    for (k, c) in old.classes.iter().enumerate() {
        if !new_by_id.contains_key(&c.id) {
            if !c.is_leaf() {
                return Err(format!("inner class {} was removed", c.id));
            }
            remove.push(k as u32);
            removed_ids.push(c.id.to_string());
        }
    }
    let last_leaf = old
        .classes
        .iter()
        .filter(|c| c.is_leaf())
        .map(|c| c.id)
        .max();
    let mut added: Vec<u32> = Vec::new();
    for (k, c) in new.classes.iter().enumerate() {
        if old_by_id.contains_key(&c.id) {
            continue;
        }
        let parent_id = c.parent.map(|p| new.classes[p as usize].id);
        let kept_parent = parent_id.and_then(|p| old_by_id.get(&p));
        if !c.is_leaf() || kept_parent.is_none() {
            return Err(format!(
                "class {} is new and not a leaf under a class that stays",
                c.id
            ));
        }
        // It takes the last rank among the leaves and its siblings.
        let siblings_above = old.classes.iter().any(|s| {
            s.parent == kept_parent.copied() && s.id > c.id && new_by_id.contains_key(&s.id)
        });
        if last_leaf.is_some_and(|l| c.id <= l) || siblings_above {
            return Err(format!(
                "new class {} has an id below a leaf's or a sibling's",
                c.id
            ));
        }
        added.push(k as u32);
    }
    added.sort_by_key(|&k| new.classes[k as usize].id);
    let layout = edit_layout(old.classes.len() as u32, &remove, added.len() as u32);
    let mut fresh = added.iter();
    let order: Vec<u32> = layout
        .iter()
        .map(|slot| match slot {
            Some(k) => new_by_id[&old.classes[*k as usize].id],
            None => *fresh.next().expect("one added class per empty slot"),
        })
        .collect();
    let (after, new_index) = new.reorder(&order);
    let id_of = |t: &Tree, p: Option<u32>| p.map(|p| t.classes[p as usize].id);
    let mut steps = Vec::new();
    for (i, (slot, n)) in layout.iter().zip(&after.classes).enumerate() {
        if n.parent.is_some_and(|p| p as usize >= i) {
            return Err(format!("class {} would come before its parent", n.id));
        }
        let Some(k) = slot else { continue };
        let o = &old.classes[*k as usize];
        if id_of(old, o.parent) != id_of(&after, n.parent) {
            return Err(format!("class {} moved in the hierarchy", n.id));
        }
        if o.name != n.name || o.qdisc != n.qdisc || o.remark != n.remark {
            return Err(format!(
                "class {}: its name, leaf qdisc or dscp remark changed",
                n.id
            ));
        }
        let change = change_of(o, n);
        if change != ClassChange::default() {
            steps.push(Step {
                tree: old.name.clone(),
                tree_index: ti,
                class: i as u32,
                change,
                summary: summary(&after, i, o, n),
            });
        }
    }
    if old.classes[old.default_class as usize].id != after.classes[after.default_class as usize].id
    {
        return Err("its default class changed".into());
    }
    if old.apps != after.apps {
        return Err("its apps changed".into());
    }
    let added_ids = added
        .iter()
        .map(|&k| new.classes[k as usize].id.to_string())
        .collect();
    Ok(Edit {
        tree: old.name.clone(),
        tree_index: ti,
        remove,
        added: added.len() as u32,
        after,
        new_index,
        steps,
        removed_ids,
        added_ids,
        fallback: rebuild(ti, old, new, why.to_string()),
    })
}

fn index_by_id(t: &Tree) -> HashMap<ClassId, u32> {
    t.classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id, i as u32))
        .collect()
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
    let mut edits = Vec::new();
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
            match in_place(ti, o, n, &why) {
                Ok(edit) => edits.push(edit),
                Err(not) => rebuilds.push(rebuild(ti, o, n, format!("{why}; not in place: {not}"))),
            }
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
        Plan::Apply {
            steps,
            edits,
            rebuilds,
        }
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
                edits: vec![],
                rebuilds: vec![]
            }
        );
    }

    #[test]
    fn rates_are_incremental() {
        let old = cfg(&lab_text());
        // Only the first "30mbit" (tree up, 1:10) changes.
        let new = cfg(&lab_text().replacen("rate = \"30mbit\"", "rate = \"15mbit\"", 1));
        let Plan::Apply {
            steps,
            edits,
            rebuilds,
        } = plan(&old, &new)
        else {
            panic!("expected incremental");
        };
        assert!(
            rebuilds.is_empty() && edits.is_empty(),
            "{rebuilds:?} {edits:?}"
        );
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
    }

    /// The lab file with 1:20 of the up tree (and its filter's target)
    /// replaced by a new leaf `id` under 1:1.
    fn lab_with_20_replaced_by(id: &str) -> String {
        let text = lab_text();
        let start = text
            .find("[[tree.up.class]]\nid = \"1:20\"")
            .expect("1:20 of up");
        let end = start
            + text[start..]
                .find("[[tree.up.class]]\nid = \"1:30\"")
                .expect("1:30 after it");
        let mut edited = format!("{}{}", &text[..start], &text[end..]);
        edited = edited.replacen("flowid = \"1:20\"", &format!("flowid = \"{id}\""), 1);
        edited.replacen(
            "[tree.down]",
            &format!("[[tree.up.class]]\nid = \"{id}\"\nparent = \"1:1\"\nrate = \"10mbit\"\nqdisc = {{ kind = \"pfifo\" }}\n\n[tree.down]"),
            1,
        )
    }

    #[test]
    fn leaves_coming_and_going_change_the_tree_in_place() {
        let old = cfg(&lab_text());
        // Remove 1:20, add 1:40: 1:30 (the last) takes 1:20's index, 1:40
        // is appended.
        let Plan::Apply {
            edits, rebuilds, ..
        } = plan(&old, &cfg(&lab_with_20_replaced_by("1:40")))
        else {
            panic!("expected an edit");
        };
        assert!(rebuilds.is_empty(), "{rebuilds:?}");
        let e = &edits[0];
        assert_eq!(e.tree, "up");
        assert_eq!((e.remove.clone(), e.added), (vec![2], 1));
        assert_eq!(
            (e.removed_ids.clone(), e.added_ids.clone()),
            (vec!["1:20".to_string()], vec!["1:40".to_string()])
        );
        let ids: Vec<String> = e.after.classes.iter().map(|c| c.id.to_string()).collect();
        assert_eq!(ids, ["1:1", "1:10", "1:30", "1:40"]);
        // The file has 1:1, 1:10, 1:30, 1:40 in that order too.
        assert_eq!(e.new_index, vec![0, 1, 2, 3]);
        // The filter that went to 1:20 goes to 1:40, by its new index.
        assert!(e
            .after
            .filters
            .iter()
            .any(|f| f.class() == Some(3) && f.spec.target == 3));
        // Its fallback maps the old classes by id.
        assert_eq!(e.fallback.map, vec![Some(0), Some(1), None, Some(2)]);
        // The running tree takes it: the edit built from the plan as
        // `Control::apply` builds it.
        use weir_dataplane::shaper::{Shaper, TreeEdit};
        let ti = e.tree_index;
        let mut running = Shaper::new(&old.trees[ti].shaper_spec(1), 0).expect("builds");
        let edit =
            TreeEdit::new(&e.after.shaper_spec(2), e.remove.clone(), e.added).expect("an edit");
        running.edit(edit, 1).expect("taken in place");
        assert_eq!(running.htb().class_count() as usize, e.after.classes.len());
        for (i, c) in e.after.classes.iter().enumerate() {
            let i = i as u32;
            assert_eq!(running.htb().is_leaf(i), c.is_leaf(), "{}", c.id);
        }
        // Filters alone: an edit that adds and removes nothing.
        let text = lab_text().replacen("dscp = \"EF\"", "dscp = \"CS5\"", 1);
        let Plan::Apply {
            edits, rebuilds, ..
        } = plan(&old, &cfg(&text))
        else {
            panic!("expected an edit");
        };
        assert!(rebuilds.is_empty(), "{rebuilds:?}");
        assert_eq!((edits[0].remove.len(), edits[0].added), (0, 0));
    }

    #[test]
    fn a_new_leaf_below_the_others_ids_rebuilds_the_tree() {
        let old = cfg(&lab_text());
        let Plan::Apply {
            edits, rebuilds, ..
        } = plan(&old, &cfg(&lab_with_20_replaced_by("1:15")))
        else {
            panic!("expected a rebuild");
        };
        assert!(edits.is_empty(), "{edits:?}");
        let r = &rebuilds[0];
        assert_eq!(r.tree, "up");
        assert!(
            r.why
                .contains("not in place: new class 1:15 has an id below"),
            "{}",
            r.why
        );
        // 1:1 kept at 0 (inner: buckets only), 1:10 at 1, 1:20 gone, 1:30
        // now at 2 (1:15 comes after it in the file).
        assert_eq!(r.map, vec![Some(0), Some(1), None, Some(2)]);
        assert_eq!(r.dropped, vec!["1:20".to_string()]);
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
