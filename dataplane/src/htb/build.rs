//! Building a tree from its spec: the tables, the arena they are carved
//! from, and the class-id order of the rows and feeds.

use super::*;

impl Htb {
    /// Build a tree at time `now`; every bucket starts full, as a new tc
    /// class does.
    pub fn new(spec: &HtbSpec, now: u64) -> Result<Htb, SpecError> {
        let n = spec.classes.len();
        if n == 0 {
            return Err(SpecError::Empty);
        }
        // Slots carry a tag bit, so the class count must stay below it.
        if n >= INNER as usize {
            return Err(SpecError::TooManyClasses);
        }
        let spare = spec.spare_leaves as usize;
        if n.saturating_add(spare) >= INNER as usize {
            return Err(SpecError::TooManyClasses);
        }
        let mut has_children = vec![false; n];
        let mut depth = vec![0usize; n];
        // Everything a packet touches goes in one arena (on huge pages when
        // the tree is big enough for it to matter): add up what it holds.
        // The spare leaves' entries are made too (vacant); an added leaf's
        // qdisc comes from the heap (`Htb::add_leaf`).
        let mut leaf_count = 0;
        let mut arena_bytes = PacketPool::arena_bytes(spec.pool_capacity)
            + table_bytes::<Hot>(n + spare)
            + table_bytes::<u32>(n + spare);
        for (i, c) in spec.classes.iter().enumerate() {
            let class = i as u32;
            if let Some(p) = c.parent {
                if p as usize >= i {
                    return Err(SpecError::BadParent { class });
                }
                has_children[p as usize] = true;
                depth[i] = depth[p as usize] + 1;
            }
            if let Some(q) = &c.qdisc {
                leaf_count += 1;
                arena_bytes += Qdisc::arena_bytes(q);
            }
            edit::check_rates(c, class)?;
        }
        // Leaves are counted by qdisc here; a spec that gives an inner class
        // a qdisc or a leaf none is refused below, so this only sizes.
        arena_bytes +=
            table_bytes::<Leaf>(leaf_count + spare) + table_bytes::<u32>(leaf_count + spare);
        let mut arena = Arena::with_capacity(arena_bytes);
        // Leaves are numbered in class id order. The level-0 rows hold
        // leaves only, so a leaf's index is its rank in them (`list.rs`):
        // a row's member is the leaf itself, found with no table between.
        let mut leaf_class: Vec<u32> = (0..n as u32)
            .filter(|&c| !has_children[c as usize])
            .collect();
        leaf_class.sort_by_key(|&c| (spec.classes[c as usize].id, c));
        let mut leaf_index = vec![NIL; n];
        for (leaf, &c) in leaf_class.iter().enumerate() {
            leaf_index[c as usize] = leaf as u32;
        }
        let mut hot = Vec::with_capacity(n + spare);
        let mut cold = Vec::with_capacity(n + spare);
        let mut slot = Vec::with_capacity(n + spare);
        let mut leaves = Vec::with_capacity(leaf_count + spare);
        let mut inners = Vec::new();
        for (i, c) in spec.classes.iter().enumerate() {
            let class = i as u32;
            let quantum = c.quantum.clamp(1, i32::MAX as u32) as i32;
            let level = if has_children[i] {
                if c.qdisc.is_some() {
                    return Err(SpecError::InnerWithQdisc { class });
                }
                // An inner class must sit above level 0, which is the leaves'.
                if depth[i] + 2 > MAX_DEPTH {
                    return Err(SpecError::TooDeep { class });
                }
                slot.push(INNER | inners.len() as u32);
                inners.push(Inner {
                    // Sized below, once every child is known.
                    feeds: [Ring::UNSET; NUM_PRIO],
                    first_child: 0,
                    child_slots: 0,
                    bytes: 0,
                    packets: 0,
                    lends: 0,
                    borrows: 0,
                });
                (MAX_DEPTH - 1 - depth[i]) as u8
            } else {
                let Some(q) = &c.qdisc else {
                    return Err(SpecError::LeafWithoutQdisc { class });
                };
                if depth[i] + 1 > MAX_DEPTH {
                    return Err(SpecError::TooDeep { class });
                }
                slot.push(leaf_index[i]);
                leaves.push((
                    leaf_index[i],
                    Leaf::new(
                        Qdisc::new_in(q, leaf_seed(spec.seed, class), &mut arena),
                        quantum,
                    ),
                ));
                0
            };
            let (h, cl) = edit::class_lines(c, level, spec.overhead, spec.mpu, now);
            hot.push(h);
            cold.push(cl);
        }
        let pool = PacketPool::new_in(spec.pool_capacity, &mut arena);
        let order = Order::new(spec, &hot, &slot, &mut inners, spare);
        leaves.sort_unstable_by_key(|&(leaf, _)| leaf);
        let mut leaves: Vec<Leaf> = leaves.into_iter().map(|(_, l)| l).collect();
        let last_leaf_id = leaf_class
            .last()
            .map_or(0, |&c| spec.classes[c as usize].id);
        hot.resize(n + spare, VACANT_HOT);
        slot.resize(n + spare, INNER | NIL);
        leaves.extend((0..spare).map(|_| Leaf::vacant()));
        leaf_class.resize(leaf_count + spare, NIL);
        let hot = Table::from_vec(&mut arena, hot);
        let slot = Table::from_vec(&mut arena, slot);
        let leaves = Table::from_vec(&mut arena, leaves);
        let leaf_class = Table::from_vec(&mut arena, leaf_class);
        debug_assert_eq!(arena.spilled(), 0, "arena sized too small");
        Ok(Htb {
            rows: order.rows,
            rings: order.rings,
            ranks: order.ranks,
            row_class: order.row_class,
            children: order.children,
            classes: n as u32,
            leaf_slots: leaf_count as u32,
            last_leaf_id,
            row_mask: 0,
            wait: WaitQueue::new(n + spare),
            pool,
            backlog: Backlog::default(),
            link: RateCfg::new(1, spec.overhead, spec.mpu),
            now,
            overlimits: 0,
            huge_pages: arena.huge_pages(),
            hot,
            slot,
            cold,
            leaves,
            leaf_class,
            inners,
        })
    }
}

/// The seed of class `class`'s qdisc in a tree seeded `tree_seed`
/// (`HtbSpec::seed`): each leaf perturbs its hash differently.
pub fn leaf_seed(tree_seed: u64, class: u32) -> u64 {
    tree_seed ^ u64::from(class).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// The id order of a tree's rows and feeds, and their empty rings.
struct Order {
    rings: Rings,
    rows: [[Ring; NUM_PRIO]; MAX_DEPTH],
    ranks: Vec<Ranks>,
    row_class: [Vec<u32>; MAX_DEPTH],
    children: Vec<u32>,
}

impl Order {
    /// `hot` and `slot` as built so far (levels and parents known); gives
    /// every inner class its feeds. The level-0 rows have room for `spare`
    /// more leaves; feeds have room up to the next multiple of 64 children
    /// (the same bitmap words), and grow past it (`Htb::add_leaf`).
    fn new(spec: &HtbSpec, hot: &[Hot], slot: &[u32], inners: &mut [Inner], spare: usize) -> Order {
        let n = hot.len();
        // Class index breaks ties, so a spec with repeated ids (tests,
        // benches) still has one order.
        let by_id = |a: &u32, b: &u32| {
            let key = |c: &u32| (spec.classes[*c as usize].id, *c);
            key(a).cmp(&key(b))
        };
        let mut ranks = Vec::with_capacity(n + spare);
        ranks.resize(n, Ranks { row: 0, feed: 0 });
        let mut row_class: [Vec<u32>; MAX_DEPTH] = Default::default();
        row_class[0].reserve(spare);
        for (i, h) in hot.iter().enumerate() {
            row_class[usize::from(h.level)].push(i as u32);
        }
        for classes in row_class.iter_mut() {
            classes.sort_by(by_id);
            for (rank, &c) in classes.iter().enumerate() {
                ranks[c as usize].row = rank as u32;
            }
        }
        // `Htb::new` numbers the leaves in the same order.
        debug_assert!(row_class[0]
            .iter()
            .enumerate()
            .all(|(rank, &c)| slot[c as usize] == rank as u32));
        let mut kids: Vec<Vec<u32>> = vec![Vec::new(); inners.len()];
        for (i, h) in hot.iter().enumerate() {
            if h.parent != NIL {
                kids[(slot[h.parent as usize] & !INNER) as usize].push(i as u32);
            }
        }
        let mut rings = Rings::default();
        let mut children = Vec::with_capacity(n + spare);
        for (inner, mut list) in inners.iter_mut().zip(kids) {
            list.sort_by(by_id);
            inner.first_child = children.len() as u32;
            inner.child_slots = list.len() as u32;
            for (rank, &c) in list.iter().enumerate() {
                ranks[c as usize].feed = rank as u32;
            }
            let size = (list.len() as u32).next_multiple_of(64);
            inner.feeds = std::array::from_fn(|_| rings.ring(size));
            children.extend(list);
        }
        let rows = std::array::from_fn(|level| {
            let mut size = row_class[level].len() as u32;
            if level == 0 {
                size += spare as u32;
            }
            std::array::from_fn(|_| rings.ring(size))
        });
        Order {
            rings,
            rows,
            ranks,
            row_class,
            children,
        }
    }
}
