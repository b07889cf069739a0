//! Who is served next: the rows' and feeds' turns (Linux
//! `htb_lookup_leaf`, `htb_next_rb_node`), one row's dequeue
//! (`htb_dequeue_tree`) and the prefetch of the classes next in line.

use super::*;

impl Htb {
    /// Prefetch for the classes next in line to give `packets` packets: the
    /// non-empty rows' classes in serving order, each from its round-robin
    /// pointer on and down the feeds' pointers to a leaf. Pipelined like
    /// [`Htb::enqueue_batch`]: class and leaf lines, then (which needs the
    /// leaf's first line) the qdisc's next flow — counting the leaf's
    /// backlog, to stop once the classes seen hold enough packets — then
    /// (which needs the flow) that flow's head packet. Nothing is changed:
    /// a class that turns out not to be served only cost a wasted prefetch.
    pub(super) fn prefetch_turns(&self, packets: usize) {
        let mut next = [0u32; PREFETCH_TURNS];
        let mut count = 0;
        let mut mask = self.row_mask;
        'rows: while mask != 0 {
            let bit = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            let (level, prio) = (bit / NUM_PRIO, bit % NUM_PRIO);
            let row = &self.rows[level][prio];
            let start = self.rings.peek(row);
            let mut r = start;
            while r != NIL {
                if count == PREFETCH_TURNS {
                    break 'rows;
                }
                let leaf = if level == 0 {
                    Some(r as usize)
                } else {
                    self.peek_leaf(self.row_class[level][r as usize], prio)
                };
                let Some(leaf) = leaf else {
                    break;
                };
                next[count] = leaf as u32;
                count += 1;
                r = self.rings.after(row, r);
                if r == NIL {
                    r = self.rings.first(row);
                }
                if r == start {
                    break;
                }
            }
        }
        let mut next = &next[..count];
        let mut seen = 0;
        for i in 0..next.len() + 2 * AHEAD {
            if let Some(&leaf) = next.get(i) {
                prefetch(&self.hot[self.leaf_class[leaf as usize] as usize]);
                // The leaf's first line (DRR state) and the qdisc's lines a
                // dequeue reads, which start in it.
                let l = &self.leaves[leaf as usize];
                prefetch(l);
                l.qdisc.prefetch_dequeue_state();
            }
            if let Some(&leaf) = i.checked_sub(AHEAD).and_then(|j| next.get(j)) {
                let q = &self.leaves[leaf as usize].qdisc;
                q.prefetch_dequeue_flow();
                seen += q.backlog().packets as usize;
                if seen >= packets {
                    // Enough: no more new classes, finish the ones started.
                    next = &next[..(i - AHEAD + 1).min(next.len())];
                }
            }
            if let Some(&leaf) = i.checked_sub(2 * AHEAD).and_then(|j| next.get(j)) {
                self.leaves[leaf as usize]
                    .qdisc
                    .prefetch_dequeue_packet(&self.pool);
            }
        }
    }

    /// Serve one packet from the classes hanging in `rows[level][prio]`
    /// (Linux `htb_dequeue_tree`).
    #[inline]
    pub(super) fn dequeue_row(
        &mut self,
        level: usize,
        prio: usize,
        now: u64,
        drops: &mut Drops,
    ) -> Option<Packet> {
        let mut start = self.lookup(level, prio)?;
        let mut leaf = start;
        // Each failed attempt deactivates or skips one leaf, so the loop
        // ends; the bound is a guard against a broken invariant.
        for _ in 0..=self.leaves.len() {
            let class = self.leaf_class[leaf];
            let before_drops = drops.len();
            let l = &mut self.leaves[leaf];
            #[cfg(debug_assertions)]
            let before = l.qdisc.backlog();
            let packet = l.qdisc.dequeue(&mut self.pool, now, drops);
            let dropped = &drops.as_slice()[before_drops..];
            if !dropped.is_empty() {
                forget(&mut self.backlog, dropped);
            }
            let empty = l.qdisc.backlog().packets == 0;
            #[cfg(debug_assertions)]
            check_backlog(before, l.qdisc.backlog(), None, packet.as_ref(), dropped);
            if let Some(p) = packet {
                self.backlog.packets -= 1;
                self.backlog.bytes -= u64::from(p.len);
                let deficit = &mut l.deficit[level];
                *deficit -= p.len as i32;
                if *deficit < 0 {
                    *deficit += l.quantum;
                    self.next_turn(class, level, prio);
                }
                if empty {
                    self.deactivate(class);
                }
                self.charge(class, leaf, level, p.len, now);
                return Some(p);
            }
            // The AQM dropped what it had, or a non-work-conserving leaf
            // said "not yet": move on to the next class, and stop when the
            // round came back to where it started.
            if empty {
                self.deactivate(class);
                if self.row_mask & (1 << (level * NUM_PRIO + prio)) == 0 {
                    return None;
                }
                let next = self.lookup(level, prio)?;
                if leaf == start {
                    start = next;
                }
                leaf = next;
            } else {
                self.next_turn(class, level, prio);
                leaf = self.lookup(level, prio)?;
                if leaf == start {
                    return None;
                }
            }
        }
        debug_assert!(false, "dequeue_row made no progress");
        None
    }

    /// The leaf whose turn it is in `rows[level][prio]` (Linux
    /// `htb_lookup_leaf`): from the row's pointer down the feeds'
    /// pointers. A pointer that its member took with it when it left a feed
    /// resumes at that member or the next one above; one past the end of
    /// its ring starts again from the first member, and the ring one level
    /// up moves on, so every leaf of a subtree has its turn before the next
    /// subtree has one.
    #[inline]
    pub(super) fn lookup(&mut self, level: usize, prio: usize) -> Option<usize> {
        // The common case, a leaf that can send with the row's turn: no
        // walk. A row's pointer past its end starts again at the first
        // member; a row has no ring above it to move on and never a
        // remembered rank (only feeds keep one), so this is the walk's
        // first step, done here.
        let row = &mut self.rows[level][prio];
        if row.ptr == NIL {
            row.ptr = self.rings.first(row);
        }
        let ptr = row.ptr;
        if ptr == NIL {
            debug_assert!(false, "lookup in an empty row");
            return None;
        }
        if level == 0 {
            return Some(ptr as usize);
        }
        let s = self.slot[self.row_class[level][ptr as usize] as usize];
        if s & INNER == 0 {
            return Some(s as usize);
        }
        self.lookup_walk(level, prio)
    }

    /// [`Htb::lookup`] through the feeds, or after the row's pointer ran
    /// past its end.
    pub(super) fn lookup_walk(&mut self, level: usize, prio: usize) -> Option<usize> {
        // The classes whose feeds the walk is in; NIL is the row.
        let mut stack = [NIL; MAX_DEPTH];
        let mut depth = 0;
        let mut owner = NIL;
        // A walk descends at most MAX_DEPTH times between two rewinds and
        // rewinds at most once per ring on its way up; the bound guards
        // against a broken invariant.
        for _ in 0..4 * MAX_DEPTH * MAX_DEPTH {
            let ring = if owner == NIL {
                &mut self.rows[level][prio]
            } else {
                &mut self.inners[(self.slot[owner as usize] & !INNER) as usize].feeds[prio]
            };
            if ring.ptr == NIL && ring.hint != NIL {
                ring.ptr = self.rings.at_or_above(ring, ring.hint);
            }
            ring.hint = NIL;
            if ring.ptr == NIL {
                ring.ptr = self.rings.first(ring);
                if ring.ptr == NIL {
                    debug_assert!(false, "an active row or feed is empty");
                    return None;
                }
                if depth > 0 {
                    depth -= 1;
                    owner = stack[depth];
                    let up = if owner == NIL {
                        &mut self.rows[level][prio]
                    } else {
                        &mut self.inners[(self.slot[owner as usize] & !INNER) as usize].feeds[prio]
                    };
                    self.rings.step(up);
                }
                continue;
            }
            let rank = ring.ptr;
            let class = if owner == NIL {
                self.row_class[level][rank as usize]
            } else {
                let inner = &self.inners[(self.slot[owner as usize] & !INNER) as usize];
                self.children[(inner.first_child + rank) as usize]
            };
            let s = self.slot[class as usize];
            if s & INNER == 0 {
                return Some(s as usize);
            }
            stack[depth] = owner;
            depth += 1;
            owner = class;
        }
        debug_assert!(false, "lookup made no progress");
        None
    }

    /// The leaf the walk from class `c` down the feeds would reach now,
    /// changing nothing (for prefetching).
    #[inline]
    pub(super) fn peek_leaf(&self, mut c: u32, prio: usize) -> Option<usize> {
        loop {
            let s = *self.slot.get(c as usize)?;
            if s & INNER == 0 {
                return Some(s as usize);
            }
            let inner = &self.inners[(s & !INNER) as usize];
            let r = self.rings.peek(&inner.feeds[prio]);
            if r == NIL {
                return None;
            }
            c = self.children[(inner.first_child + r) as usize];
        }
    }

    /// The leaf spent its quantum (Linux `htb_dequeue_tree`): the turn in
    /// the ring it was served from passes on — its parent's feed when it
    /// borrowed, else its row. Rings further up move on when a lookup runs
    /// past the end of this one.
    #[inline]
    pub(super) fn next_turn(&mut self, leaf: u32, level: usize, prio: usize) {
        let ring = if level == 0 {
            &mut self.rows[0][prio]
        } else {
            let parent = self.hot[leaf as usize].parent;
            &mut self.inners[(self.slot[parent as usize] & !INNER) as usize].feeds[prio]
        };
        self.rings.step(ring);
    }
}
