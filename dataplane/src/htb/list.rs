//! Round-robin rings of active classes: the rows (CanSend classes per level
//! and prio) and the feeds (borrowing children of an inner class per prio).
//!
//! A class is in at most one ring per prio at a time — its level's row when
//! it can send, its parent's feed when it borrows, none when it can't send —
//! so one pair of links per (class, prio) serves every ring.
//!
//! Each ring remembers where the round started (`first`) and where the
//! round-robin pointer is (`cur`). Advancing past the last member wraps to
//! `first` and tells the caller, which then advances the ring one level up:
//! every leaf of a subtree gets its turn before the next subtree does, as
//! Linux's `htb_lookup_leaf` arranges with its per-level pointers.
//!
//! Storage: a leaf only ever hangs in rings of its own prio (a leaf changing
//! prio leaves its rings first), so it has a single pair of links, 8 bytes,
//! found by its leaf index; an inner class has a pair per prio. 100,000
//! leaves take 800 KB of links instead of a 64-byte line each, and the ring
//! neighbours an activation touches are mostly in cache.

use super::{INNER, NUM_PRIO};
use crate::pool::NIL;

#[derive(Clone, Copy, Debug)]
pub(super) struct Ring {
    pub(super) first: u32,
    pub(super) cur: u32,
}

impl Ring {
    pub(super) const EMPTY: Ring = Ring {
        first: NIL,
        cur: NIL,
    };

    pub(super) fn is_empty(&self) -> bool {
        self.first == NIL
    }
}

#[derive(Clone, Copy, Debug)]
struct Link {
    prev: u32,
    next: u32,
}

const UNLINKED: Link = Link {
    prev: NIL,
    next: NIL,
};

/// Links of every class, for every prio it can hang in. Classes are found
/// through the tree's slot table (`Htb::slot`): a leaf's slot is its leaf
/// index, an inner class's is `INNER | inner index`.
#[derive(Debug)]
pub(super) struct Links {
    /// The leaves' pairs, then `NUM_PRIO` pairs per inner class.
    pairs: Vec<Link>,
    inner_base: usize,
}

impl Links {
    pub(super) fn new(leaves: usize, inners: usize) -> Links {
        Links {
            pairs: vec![UNLINKED; leaves + inners * NUM_PRIO],
            inner_base: leaves,
        }
    }

    #[inline]
    fn at(&self, slot: &[u32], c: u32, prio: usize) -> usize {
        let s = slot[c as usize];
        if s & INNER == 0 {
            s as usize
        } else {
            self.inner_base + (s & !INNER) as usize * NUM_PRIO + prio
        }
    }

    /// Append `c` at the end of the round (just before `first`).
    pub(super) fn insert(&mut self, slot: &[u32], ring: &mut Ring, c: u32, prio: usize) {
        let at = self.at(slot, c, prio);
        if ring.is_empty() {
            self.pairs[at] = Link { prev: c, next: c };
            ring.first = c;
            ring.cur = c;
            return;
        }
        let first = ring.first;
        let first_at = self.at(slot, first, prio);
        let last = self.pairs[first_at].prev;
        let last_at = self.at(slot, last, prio);
        self.pairs[at] = Link {
            prev: last,
            next: first,
        };
        self.pairs[last_at].next = c;
        self.pairs[first_at].prev = c;
    }

    pub(super) fn remove(&mut self, slot: &[u32], ring: &mut Ring, c: u32, prio: usize) {
        let at = self.at(slot, c, prio);
        let Link { prev, next } = self.pairs[at];
        debug_assert!(next != NIL, "removing a class that is not linked");
        self.pairs[at] = UNLINKED;
        if next == c {
            *ring = Ring::EMPTY;
            return;
        }
        let prev_at = self.at(slot, prev, prio);
        self.pairs[prev_at].next = next;
        let next_at = self.at(slot, next, prio);
        self.pairs[next_at].prev = prev;
        if ring.first == c {
            ring.first = next;
        }
        if ring.cur == c {
            ring.cur = next;
        }
    }

    /// Move the round-robin pointer on; true when it wrapped to `first`.
    pub(super) fn advance(&self, slot: &[u32], ring: &mut Ring, prio: usize) -> bool {
        if ring.is_empty() {
            return false;
        }
        ring.cur = self.next(slot, ring.cur, prio);
        ring.cur == ring.first
    }

    /// The class after `c` in its ring of `prio`.
    #[inline]
    pub(super) fn next(&self, slot: &[u32], c: u32, prio: usize) -> u32 {
        self.pairs[self.at(slot, c, prio)].next
    }
}
