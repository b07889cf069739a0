//! The rows (CanSend classes per level and prio) and feeds (borrowing
//! children of an inner class per prio) of HTB, kept as Linux keeps them.
//!
//! Linux holds each row and feed in an rbtree ordered by class id, with a
//! pointer to the class whose turn it is (`htb_prio.ptr`). The order and
//! the pointer's rules decide which class is served next, and with them how
//! borrowers share a lender's excess, so weir keeps the same ones:
//!
//! - Members are in class id order, whenever they joined. A class that
//!   leaves and comes back takes its old place, not the end of the round
//!   (an end-of-round ring gives it a second turn in the same round).
//! - The pointer moves on to the next member above it when the member
//!   whose turn it is spends its quantum (`htb_next_rb_node`); past the
//!   last member it is empty, and the next lookup starts again from the
//!   first and moves the ring one level up on (`htb_lookup_leaf`).
//! - A class that leaves a row while it has the turn hands it to the next
//!   member (`htb_remove_class_from_row`). A class that leaves a feed while
//!   it has the turn keeps it: the feed remembers its id (`last_ptr_id`),
//!   and the next lookup resumes at that class if it is back, else at the
//!   next one above it (`htb_deactivate_prios`, `htb_id_find_next_upper`).
//!   A borrower flips between its parent's feed and its own row each time
//!   its own rate earns it a packet; without this rule every flip would cut
//!   its turn short and give the others extra rounds, and the excess would
//!   no longer follow the quantums.
//!
//! A ring's members are ranks: a row of level L ranks the classes of level
//! L by id, a feed ranks its inner class's children by id (the tree
//! compiles both tables once). Each ring is a bitmap over its ranks with
//! summary words above it, 64 ranks a word, so joining, leaving and "the
//! next member at or above r" cost one word per summary level: one for a
//! ring of up to 64 classes, three for up to 262,144.

use crate::pool::NIL;

/// One row or feed: its members (a bitmap in [`Rings`]) and Linux's
/// pointer and remembered id.
#[derive(Clone, Copy, Debug)]
pub(super) struct Ring {
    /// The rank whose turn it is, or NIL: past the last member, or its
    /// member left a feed (then `hint` says where to resume).
    pub(super) ptr: u32,
    /// Rank of the member that left the feed while it had the turn (Linux
    /// `last_ptr_id`); NIL when there is none.
    pub(super) hint: u32,
    count: u32,
    /// First word of this ring's bitmap in [`Rings::words`].
    base: u32,
    /// Ranks this ring can hold.
    size: u32,
}

impl Ring {
    /// A placeholder until the tree gives the ring its bitmap.
    pub(super) const UNSET: Ring = Ring {
        ptr: NIL,
        hint: NIL,
        count: 0,
        base: 0,
        size: 0,
    };

    pub(super) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Ranks this ring can hold: `0..size()`.
    pub(super) fn size(&self) -> u32 {
        self.size
    }
}

/// Deepest summary: 64^6 ranks is more than a tree can have classes.
const MAX_LEVELS: usize = 6;

/// The bitmaps of every ring of a tree, in one allocation.
#[derive(Debug, Default)]
pub(super) struct Rings {
    words: Vec<u64>,
}

/// Where each summary level of a ring's bitmap starts (relative to its
/// base) and how many words it has; level 0 holds one bit per rank, the
/// last level is one word.
#[derive(Clone, Copy)]
struct Shape {
    offset: [u32; MAX_LEVELS],
    words: [u32; MAX_LEVELS],
    levels: usize,
}

impl Shape {
    #[inline]
    fn of(size: u32) -> Shape {
        let mut s = Shape {
            offset: [0; MAX_LEVELS],
            words: [0; MAX_LEVELS],
            levels: 0,
        };
        let mut bits = size.max(1);
        let mut offset = 0;
        loop {
            let words = bits.div_ceil(64);
            s.offset[s.levels] = offset;
            s.words[s.levels] = words;
            s.levels += 1;
            offset += words;
            if words == 1 {
                return s;
            }
            bits = words;
        }
    }

    fn total(&self) -> u32 {
        self.offset[self.levels - 1] + 1
    }
}

impl Rings {
    /// A new empty ring for ranks `0..size`.
    pub(super) fn ring(&mut self, size: u32) -> Ring {
        let base = self.words.len() as u32;
        let total = Shape::of(size).total();
        self.words.resize(self.words.len() + total as usize, 0);
        Ring {
            ptr: NIL,
            hint: NIL,
            count: 0,
            base,
            size,
        }
    }

    /// `ring` with room for ranks `0..size` (at least its old size): the
    /// same members, pointer and remembered rank, in new words at the end
    /// (the old words stay unused until the tree is rebuilt).
    pub(super) fn grown(&mut self, ring: &Ring, size: u32) -> Ring {
        let mut bigger = self.ring(size.max(ring.size));
        let mut r = self.first(ring);
        while r != NIL {
            self.add(&mut bigger, r);
            r = self.after(ring, r);
        }
        bigger.ptr = ring.ptr;
        bigger.hint = ring.hint;
        bigger
    }

    /// A class joins (Linux `htb_add_to_id_tree`): the pointer stays.
    #[inline]
    pub(super) fn add(&mut self, ring: &mut Ring, rank: u32) {
        debug_assert!(rank < ring.size);
        ring.count += 1;
        // Level 0 starts at the ring's base; the summary above it only
        // changes when a word goes from empty to not (never in a ring of
        // up to 64: most feeds, and rows of small trees).
        let w = &mut self.words[ring.base as usize + (rank / 64) as usize];
        let was = *w;
        debug_assert!(was & (1 << (rank % 64)) == 0, "joining twice");
        *w |= 1 << (rank % 64);
        if was != 0 || ring.size <= 64 {
            return;
        }
        let shape = Shape::of(ring.size);
        let mut i = (rank / 64) as usize;
        for level in 1..shape.levels {
            let w = &mut self.words[(ring.base + shape.offset[level]) as usize + i / 64];
            let was = *w;
            *w |= 1 << (i % 64);
            if was != 0 {
                break;
            }
            i /= 64;
        }
    }

    #[inline]
    fn clear(&mut self, ring: &mut Ring, rank: u32) {
        ring.count -= 1;
        let w = &mut self.words[ring.base as usize + (rank / 64) as usize];
        debug_assert!(*w & (1 << (rank % 64)) != 0, "leaving twice");
        *w &= !(1 << (rank % 64));
        if *w != 0 || ring.size <= 64 {
            return;
        }
        let shape = Shape::of(ring.size);
        let mut i = (rank / 64) as usize;
        for level in 1..shape.levels {
            let w = &mut self.words[(ring.base + shape.offset[level]) as usize + i / 64];
            *w &= !(1 << (i % 64));
            if *w != 0 {
                break;
            }
            i /= 64;
        }
    }

    /// A class leaves a row (Linux `htb_remove_class_from_row`): if it had
    /// the turn, the next member above it has it now.
    #[inline]
    pub(super) fn remove_from_row(&mut self, ring: &mut Ring, rank: u32) {
        if ring.ptr == rank {
            ring.ptr = self.after(ring, rank);
        }
        self.clear(ring, rank);
    }

    /// A class leaves a feed (Linux `htb_deactivate_prios`): if it had the
    /// turn, the feed forgets the pointer and remembers the rank.
    #[inline]
    pub(super) fn remove_from_feed(&mut self, ring: &mut Ring, rank: u32) {
        if ring.ptr == rank {
            ring.hint = rank;
            ring.ptr = NIL;
        }
        self.clear(ring, rank);
    }

    /// The member whose turn it is spent its quantum (Linux
    /// `htb_next_rb_node`): the next member above it, or NIL past the end.
    #[inline]
    pub(super) fn step(&self, ring: &mut Ring) {
        if ring.ptr != NIL {
            ring.ptr = self.after(ring, ring.ptr);
        }
    }

    /// Lowest member, or NIL.
    #[inline]
    pub(super) fn first(&self, ring: &Ring) -> u32 {
        self.at_or_above(ring, 0)
    }

    /// Lowest member above `rank`, or NIL.
    #[inline]
    pub(super) fn after(&self, ring: &Ring, rank: u32) -> u32 {
        self.at_or_above(ring, rank + 1)
    }

    /// Lowest member at or above `rank` (Linux `htb_id_find_next_upper`),
    /// or NIL.
    #[inline]
    pub(super) fn at_or_above(&self, ring: &Ring, rank: u32) -> u32 {
        if ring.count == 0 || rank >= ring.size {
            return NIL;
        }
        // Level 0 starts at the ring's base: most answers are in the word
        // that holds `rank` (all of them in a ring of up to 64), and only a
        // miss there climbs the summary.
        let word = (rank / 64) as usize;
        let above = self.words[ring.base as usize + word] & (!0u64 << (rank % 64));
        if above != 0 {
            return word as u32 * 64 + above.trailing_zeros();
        }
        if ring.size <= 64 {
            return NIL;
        }
        self.at_or_above_wide(ring, rank)
    }

    /// [`Rings::at_or_above`] for a ring with summary levels.
    fn at_or_above_wide(&self, ring: &Ring, rank: u32) -> u32 {
        let shape = Shape::of(ring.size);
        let words = |level: usize| {
            let start = (ring.base + shape.offset[level]) as usize;
            &self.words[start..start + shape.words[level] as usize]
        };
        // Climb until a word has a member at or above the position, then
        // descend through the lowest members.
        let mut i = rank as usize;
        let mut level = 0;
        let found = loop {
            let ws = words(level);
            if let Some(&w) = ws.get(i / 64) {
                let above = w & (!0u64 << (i % 64));
                if above != 0 {
                    break (i / 64) * 64 + above.trailing_zeros() as usize;
                }
            }
            if level + 1 == shape.levels {
                return NIL;
            }
            i = i / 64 + 1;
            level += 1;
        };
        let mut i = found;
        while level > 0 {
            level -= 1;
            i = i * 64 + words(level)[i].trailing_zeros() as usize;
        }
        i as u32
    }

    /// Where the next lookup will find the turn, without changing the
    /// ring: the pointer, else where the remembered rank resumes, else the
    /// first member. For prefetching only.
    pub(super) fn peek(&self, ring: &Ring) -> u32 {
        if ring.ptr != NIL {
            return ring.ptr;
        }
        if ring.hint != NIL {
            let r = self.at_or_above(ring, ring.hint);
            if r != NIL {
                return r;
            }
        }
        self.first(ring)
    }

    /// The ring's members, lowest first (tests).
    #[cfg(test)]
    pub(super) fn members(&self, ring: &Ring) -> Vec<u32> {
        let mut out = Vec::new();
        let mut r = self.first(ring);
        while r != NIL {
            out.push(r);
            r = self.after(ring, r);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn shapes() {
        assert_eq!(Shape::of(1).levels, 1);
        assert_eq!(Shape::of(64).levels, 1);
        assert_eq!(Shape::of(65).levels, 2);
        assert_eq!(Shape::of(65).total(), 3);
        assert_eq!(Shape::of(4096).levels, 2);
        assert_eq!(Shape::of(4097).levels, 3);
        assert_eq!(Shape::of(u32::MAX).levels, 6);
    }

    #[test]
    fn the_pointer_follows_linux_rules() {
        let mut rings = Rings::default();
        let mut row = rings.ring(10);
        let mut feed = rings.ring(10);
        for r in [2, 5, 7] {
            rings.add(&mut row, r);
            rings.add(&mut feed, r);
        }
        row.ptr = 5;
        feed.ptr = 5;
        // Leaving a row hands the turn on; leaving a feed remembers it.
        rings.remove_from_row(&mut row, 5);
        assert_eq!((row.ptr, row.hint), (7, NIL));
        rings.remove_from_feed(&mut feed, 5);
        assert_eq!((feed.ptr, feed.hint), (NIL, 5));
        assert_eq!(rings.peek(&feed), 7);
        rings.add(&mut feed, 5);
        assert_eq!(rings.peek(&feed), 5);
        // Stepping past the last member empties the pointer.
        rings.step(&mut row);
        assert_eq!(row.ptr, NIL);
        assert_eq!(rings.peek(&row), 2);
    }

    proptest! {
        #[test]
        fn a_ring_is_the_set_it_was_told(
            size in prop_oneof![1u32..=64, 65u32..20_000],
            ops in proptest::collection::vec((any::<bool>(), any::<u32>()), 0..300),
        ) {
            let mut rings = Rings::default();
            // A neighbour on each side catches writes outside the ring.
            let mut before = rings.ring(70);
            let mut ring = rings.ring(size);
            let mut after = rings.ring(70);
            rings.add(&mut before, 69);
            rings.add(&mut after, 0);
            let mut model = BTreeSet::new();
            for (join, r) in ops {
                let r = r % size;
                if join && model.insert(r) {
                    rings.add(&mut ring, r);
                } else if !join && model.remove(&r) {
                    rings.remove_from_row(&mut ring, r);
                }
                let probe = r.wrapping_mul(7) % size;
                let want = model.range(probe..).next().copied().unwrap_or(NIL);
                prop_assert_eq!(rings.at_or_above(&ring, probe), want);
            }
            prop_assert_eq!(rings.members(&ring), model.iter().copied().collect::<Vec<_>>());
            prop_assert_eq!(ring.is_empty(), model.is_empty());
            let grown = rings.grown(&ring, size * 2 + 1);
            prop_assert_eq!(rings.members(&grown), rings.members(&ring));
            prop_assert_eq!((grown.ptr, grown.hint, grown.size()), (ring.ptr, ring.hint, size * 2 + 1));
            prop_assert_eq!(rings.members(&before), vec![69]);
            prop_assert_eq!(rings.members(&after), vec![0]);
        }
    }
}
