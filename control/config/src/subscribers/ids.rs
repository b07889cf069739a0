//! Class ids that stay with their circuit across reloads.
//!
//! A freshly loaded file numbers the nodes' and circuits' classes by their
//! position (`compile`). A reload compares trees by class id, so a circuit
//! removed from the middle of the CSV would shift every later circuit onto
//! its neighbour's id, and their queues and buckets with it. Before a
//! reload is planned, [`keep_ids`] gives every node and circuit that the
//! running configuration has the id it has there, and new ones ids no
//! class of the tree uses or used.

use std::collections::{HashMap, HashSet};

use crate::units::ClassId;
use crate::Config;

/// A subscriber class of the new tree (its index) and the minor it had in
/// the running one, if it was there.
type Wanted = (usize, Option<u32>);

/// Renumber the subscriber classes of `new` (a configuration just loaded)
/// so that every node and circuit the running `old` has keeps its class
/// id, in both directions; new ones take minors above every id their tree
/// has now or had in `old` (never a removed one's). Nothing else changes:
/// filters and parents point at classes by index, not by id.
pub fn keep_ids(old: &Config, new: &mut Config) {
    let (Some(os), Some(ns)) = (&old.subscribers, &new.subscribers) else {
        return;
    };
    let pairs = [(&os.download, &ns.download), (&os.upload, &ns.upload)];
    let mut plans: Vec<(u32, Vec<Wanted>, HashSet<u32>)> = Vec::new();
    for (op, np) in pairs {
        let (Some(op), Some(np)) = (op, np) else {
            continue;
        };
        let old_tree = &old.trees[op.tree as usize];
        // The old id of each node and circuit, by name (names are unique
        // in a tree: `compile` refuses a name taken twice).
        let mut by_name: HashMap<&str, u32> = HashMap::new();
        let minor = |k: u32| old_tree.classes[k as usize].id.minor;
        for (n, &k) in os.nodes.nodes.iter().zip(&op.nodes) {
            by_name.insert(n.name.as_str(), minor(k));
        }
        for (c, &k) in os.circuits.iter().zip(&op.circuits) {
            by_name.insert(c.id.as_str(), minor(k));
        }
        let wanted = ns
            .nodes
            .nodes
            .iter()
            .map(|n| n.name.as_str())
            .zip(&np.nodes)
            .chain(ns.circuits.iter().map(|c| c.id.as_str()).zip(&np.circuits))
            .map(|(name, &k)| (k as usize, by_name.get(name).copied()))
            .collect();
        // A new circuit must not take the id of one just removed: the
        // reload would move the removed one's queue into it.
        let old_minors = old_tree.classes.iter().map(|c| c.id.minor).collect();
        plans.push((np.tree, wanted, old_minors));
    }
    for (tree, wanted, old_minors) in plans {
        let t = &mut new.trees[tree as usize];
        let ours: HashSet<usize> = wanted.iter().map(|(k, _)| *k).collect();
        // Minors the tree's own classes use; then the kept ones, unless a
        // class of the file has taken one since (that node or circuit gets
        // a new id, as a new one does).
        let mut taken: HashSet<u32> = t
            .classes
            .iter()
            .enumerate()
            .filter(|(k, _)| !ours.contains(k))
            .map(|(_, c)| c.id.minor)
            .collect();
        let wanted: Vec<Wanted> = wanted
            .into_iter()
            .map(|(k, m)| (k, m.filter(|m| taken.insert(*m))))
            .collect();
        taken.extend(old_minors);
        let mut next = taken
            .iter()
            .copied()
            .chain(t.classes.iter().map(|c| c.id.minor))
            .max()
            .unwrap_or(0);
        let major = t.classes.first().map_or(1, |c| c.id.major);
        for (k, kept) in wanted {
            let m = match kept {
                Some(m) => m,
                None => {
                    next = next.saturating_add(1);
                    while taken.contains(&next) && next < u32::MAX {
                        next += 1;
                    }
                    taken.insert(next);
                    next
                }
            };
            t.classes[k].id = ClassId::new(major, m);
        }
    }
}
