//! Leaves added and removed in place: what a subscriber's arrival or
//! departure changes in a running tree, without building it again, so no
//! other class loses its queue, tokens, AQM state or counters, and the
//! worker spends microseconds on it instead of moving every queued packet.
//!
//! The rows and feeds keep their members in class id order (`list.rs`), so
//! where a leaf hangs depends on its id. An added leaf takes the next class
//! index, the next leaf entry and the last rank of the level-0 rows and of
//! its parent's feeds, and nothing else moves; so its id must be above the
//! id of every leaf the tree has had and of every child of its parent
//! (`weir_config::subscribers::keep_ids` gives new circuits such ids). The
//! tree is built with room for `HtbSpec::spare_leaves` of them, and a feed
//! that outgrows its bitmap gets a bigger one.
//!
//! A removed leaf's queue goes to the caller's drops (`Flushed`), its leaf
//! entry and its place among its parent's children become holes (never a
//! member again, so nobody else's rank changes), and the last class index
//! moves into its index ([`Moved`]), so indexes stay `0..class_count()`;
//! the caller renumbers that one class in its filters and names.
//!
//! What can't be done in place is refused ([`InPlaceError`]) and changes
//! nothing; the caller rebuilds the tree instead.

use super::*;

/// Why a leaf can't be added or removed in place. Nothing was changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InPlaceError {
    /// The spare entries the tree was built with are used up.
    NoRoom,
    /// The new leaf's id is not above every leaf's id and every id of its
    /// parent's children: it would not be last in the rows' id order.
    OutOfOrder {
        id: u64,
    },
    /// The new leaf's parent is not an inner class of the tree.
    BadParent {
        parent: u32,
    },
    /// Not a leaf of the tree, or the tree's only class.
    NotLeaf {
        class: u32,
    },
    Spec(SpecError),
}

impl std::fmt::Display for InPlaceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InPlaceError::NoRoom => write!(f, "the tree's spare leaf entries are used up"),
            InPlaceError::OutOfOrder { id } => write!(
                f,
                "class id {id:#x} is not above every leaf's and its siblings' ids"
            ),
            InPlaceError::BadParent { parent } => {
                write!(f, "class #{parent} is not an inner class of the tree")
            }
            InPlaceError::NotLeaf { class } => {
                write!(f, "class #{class} is not a leaf that can be removed")
            }
            InPlaceError::Spec(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for InPlaceError {}

/// A removal moved class `from` (the last index) to index `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Moved {
    pub from: u32,
    pub to: u32,
}

/// Where a tree of `count` classes puts them when leaves `remove` (indexes,
/// any order) are removed in place, highest index first, and `added` new
/// leaves are appended: for each index of the edited tree, the index the
/// class had before (None: one of the added). What the control thread
/// computes to number its view of the tree as the worker's will be.
pub fn edit_layout(count: u32, remove: &[u32], added: u32) -> Vec<Option<u32>> {
    let mut layout: Vec<Option<u32>> = (0..count).map(Some).collect();
    let mut remove = remove.to_vec();
    remove.sort_unstable_by(|a, b| b.cmp(a));
    remove.dedup();
    for r in remove {
        if (r as usize) < layout.len() {
            layout.swap_remove(r as usize);
        }
    }
    layout.extend((0..added).map(|_| None));
    layout
}

impl Htb {
    /// How many more leaves [`Htb::add_leaf`] can add.
    pub fn spare_leaves(&self) -> u32 {
        let classes = self.hot.len() as u32 - self.classes;
        let leaves = self.leaves.len() as u32 - self.leaf_slots;
        classes.min(leaves)
    }

    /// Add leaf class `spec` (its `parent` an index of this tree; its
    /// `qdisc` ignored: `qdisc` is the queue, built by the caller off the
    /// packet path) at `now`, with full buckets as a new tc class has.
    /// Returns its index, `class_count()` before the call.
    pub fn add_leaf(
        &mut self,
        spec: &ClassSpec,
        qdisc: Qdisc,
        now: u64,
    ) -> Result<u32, InPlaceError> {
        let class = self.classes;
        self.check_add(spec, spec.parent.unwrap_or(NIL), &[])?;
        if self.spare_leaves() == 0 {
            return Err(InPlaceError::NoRoom);
        }
        let parent = spec.parent.unwrap_or(NIL);
        let inner = (self.slot[parent as usize] & !INNER) as usize;
        let Inner {
            first_child,
            child_slots,
            ..
        } = self.inners[inner];
        let run = first_child as usize..(first_child + child_slots) as usize;
        self.now = self.now.max(now);
        // The parent's feeds: the new child takes the last rank.
        let feed_rank = child_slots;
        if feed_rank >= self.inners[inner].feeds[0].size() {
            let size = (feed_rank + 1).next_multiple_of(64).max(feed_rank * 2);
            for p in 0..NUM_PRIO {
                let old = self.inners[inner].feeds[p];
                self.inners[inner].feeds[p] = self.rings.grown(&old, size);
            }
        }
        self.children.insert(run.end, class);
        for (k, other) in self.inners.iter_mut().enumerate() {
            if k != inner && other.first_child as usize >= run.end {
                other.first_child += 1;
            }
        }
        self.inners[inner].child_slots += 1;
        // The leaf: the next entry, the last rank of the level-0 rows.
        let leaf = self.leaf_slots;
        debug_assert_eq!(self.row_class[0].len(), leaf as usize);
        self.leaf_slots += 1;
        self.last_leaf_id = spec.id;
        let quantum = spec.quantum.clamp(1, i32::MAX as u32) as i32;
        self.leaves[leaf as usize] = Leaf::new(qdisc, quantum);
        self.leaf_class[leaf as usize] = class;
        self.row_class[0].push(class);
        self.ranks.push(Ranks {
            row: leaf,
            feed: feed_rank,
        });
        let (hot, cold) = class_lines(spec, 0, self.link.overhead(), self.link.mpu(), now);
        self.hot[class as usize] = hot;
        self.slot[class as usize] = leaf;
        self.cold.push(cold);
        self.classes += 1;
        Ok(class)
    }

    /// Whether [`Htb::add_leaf`] would take `spec` under class `parent`
    /// (an index of this tree as it is, which may differ from
    /// `spec.parent` when the caller checks an edit ahead of removals),
    /// leaving out the classes in `leaving` (removed before it is added).
    /// Room is not checked.
    pub fn check_add(
        &self,
        spec: &ClassSpec,
        parent: u32,
        leaving: &[u32],
    ) -> Result<(), InPlaceError> {
        if parent >= self.classes || self.slot[parent as usize] & INNER == 0 {
            return Err(InPlaceError::BadParent { parent });
        }
        check_rates(spec, self.classes).map_err(InPlaceError::Spec)?;
        let inner = &self.inners[(self.slot[parent as usize] & !INNER) as usize];
        let run = inner.first_child as usize..(inner.first_child + inner.child_slots) as usize;
        let sibling_above = self.children[run]
            .iter()
            .any(|&c| c != NIL && !leaving.contains(&c) && self.cold[c as usize].id >= spec.id);
        if spec.id <= self.last_leaf_id || sibling_above {
            return Err(InPlaceError::OutOfOrder { id: spec.id });
        }
        Ok(())
    }

    /// Whether [`Htb::remove_leaf`] would remove `class`: a leaf with a
    /// parent (a top-level leaf is refused: its tree may be that leaf).
    pub fn check_remove(&self, class: u32) -> Result<(), InPlaceError> {
        match self.leaf_index(class) {
            Some(_) if self.hot[class as usize].parent != NIL => Ok(()),
            _ => Err(InPlaceError::NotLeaf { class }),
        }
    }

    /// Remove leaf class `class`: its queued packets go to `drops` as
    /// `Flushed`, and the last class takes its index (returned, unless
    /// `class` was the last).
    pub fn remove_leaf(
        &mut self,
        class: u32,
        drops: &mut Drops,
    ) -> Result<Option<Moved>, InPlaceError> {
        self.check_remove(class)?;
        let Some(leaf) = self.leaf_index(class) else {
            return Err(InPlaceError::NotLeaf { class });
        };
        let parent = self.hot[class as usize].parent;
        self.flush_leaf(class, leaf, drops);
        self.wait.remove(class);
        let ranks = self.ranks[class as usize];
        let inner = (self.slot[parent as usize] & !INNER) as usize;
        self.children[(self.inners[inner].first_child + ranks.feed) as usize] = NIL;
        self.row_class[0][ranks.row as usize] = NIL;
        self.leaf_class[leaf] = NIL;
        // Its qdisc is dropped here: an added leaf's heap tables are freed,
        // a built one's stay in the arena until the tree goes.
        self.leaves[leaf] = Leaf::vacant();
        let last = self.classes - 1;
        let moved = (class != last).then(|| {
            self.renumber(last, class);
            Moved {
                from: last,
                to: class,
            }
        });
        self.cold.swap_remove(class as usize);
        self.ranks.swap_remove(class as usize);
        self.hot[last as usize] = VACANT_HOT;
        self.slot[last as usize] = INNER | NIL;
        self.classes -= 1;
        Ok(moved)
    }

    /// Give class `from` index `to` in every table that names a class by
    /// index (the per-class tables themselves are moved by the caller).
    fn renumber(&mut self, from: u32, to: u32) {
        let s = self.slot[from as usize];
        if s & INNER == 0 {
            self.leaf_class[s as usize] = to;
        } else {
            let inner = self.inners[(s & !INNER) as usize];
            let run = inner.first_child..inner.first_child + inner.child_slots;
            for i in run {
                let c = self.children[i as usize];
                if c != NIL {
                    self.hot[c as usize].parent = to;
                }
            }
        }
        let h = self.hot[from as usize];
        let ranks = self.ranks[from as usize];
        self.row_class[usize::from(h.level)][ranks.row as usize] = to;
        if h.parent != NIL {
            let p = (self.slot[h.parent as usize] & !INNER) as usize;
            self.children[(self.inners[p].first_child + ranks.feed) as usize] = to;
        }
        if let Some(key) = self.wait.key_of(from) {
            self.wait.remove(from);
            self.wait.push(to, key);
        }
        self.hot[to as usize] = h;
        self.slot[to as usize] = s;
    }
}

/// The rate checks `Htb::new` makes of every class.
pub(super) fn check_rates(c: &ClassSpec, class: u32) -> Result<(), SpecError> {
    if usize::from(c.prio) >= NUM_PRIO {
        return Err(SpecError::BadPrio { class });
    }
    if c.rate == 0 {
        return Err(SpecError::ZeroRate { class });
    }
    if c.ceil < c.rate {
        return Err(SpecError::CeilBelowRate { class });
    }
    Ok(())
}

/// A new class's hot line (full buckets at `now`, can send, idle) and
/// cold fields.
pub(super) fn class_lines(
    c: &ClassSpec,
    level: u8,
    overhead: i32,
    mpu: u32,
    now: u64,
) -> (Hot, Cold) {
    let rate = RateCfg::new(c.rate, overhead, mpu);
    let ceil = RateCfg::new(c.ceil, overhead, mpu);
    let buffer = ticks_i64(rate.bytes_time_ticks(u64::from(c.burst)));
    let cbuffer = ticks_i64(ceil.bytes_time_ticks(u64::from(c.cburst)));
    let hot = Hot {
        tokens: buffer,
        ctokens: cbuffer,
        t_c: now,
        buffer,
        cbuffer,
        rate_fp: fixed_point(&rate),
        ceil_fp: fixed_point(&ceil),
        parent: c.parent.unwrap_or(NIL),
        level,
        prio: c.prio,
        mode: Mode::CanSend,
        prio_activity: 0,
    };
    let cold = Cold {
        id: c.id,
        rate,
        ceil,
        burst_bytes: c.burst,
        cburst_bytes: c.cburst,
        overlimits: 0,
    };
    (hot, cold)
}
