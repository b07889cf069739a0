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

use super::NUM_PRIO;
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
pub(super) struct Link {
    prev: u32,
    next: u32,
}

/// Links of every class, for every prio.
#[derive(Debug)]
pub(super) struct Links {
    links: Vec<[Link; NUM_PRIO]>,
}

impl Links {
    pub(super) fn new(classes: usize) -> Links {
        Links {
            links: vec![
                [Link {
                    prev: NIL,
                    next: NIL
                }; NUM_PRIO];
                classes
            ],
        }
    }

    /// Append `c` at the end of the round (just before `first`).
    pub(super) fn insert(&mut self, ring: &mut Ring, c: u32, prio: usize) {
        if ring.is_empty() {
            self.links[c as usize][prio] = Link { prev: c, next: c };
            ring.first = c;
            ring.cur = c;
            return;
        }
        let first = ring.first;
        let last = self.links[first as usize][prio].prev;
        self.links[c as usize][prio] = Link {
            prev: last,
            next: first,
        };
        self.links[last as usize][prio].next = c;
        self.links[first as usize][prio].prev = c;
    }

    pub(super) fn remove(&mut self, ring: &mut Ring, c: u32, prio: usize) {
        let Link { prev, next } = self.links[c as usize][prio];
        debug_assert!(next != NIL, "removing a class that is not linked");
        self.links[c as usize][prio] = Link {
            prev: NIL,
            next: NIL,
        };
        if next == c {
            *ring = Ring::EMPTY;
            return;
        }
        self.links[prev as usize][prio].next = next;
        self.links[next as usize][prio].prev = prev;
        if ring.first == c {
            ring.first = next;
        }
        if ring.cur == c {
            ring.cur = next;
        }
    }

    /// Move the round-robin pointer on; true when it wrapped to `first`.
    pub(super) fn advance(&self, ring: &mut Ring, prio: usize) -> bool {
        if ring.is_empty() {
            return false;
        }
        ring.cur = self.links[ring.cur as usize][prio].next;
        ring.cur == ring.first
    }

    #[cfg(test)]
    pub(super) fn members(&self, ring: &Ring, prio: usize) -> Vec<u32> {
        let mut out = vec![];
        if ring.is_empty() {
            return out;
        }
        let mut c = ring.first;
        loop {
            out.push(c);
            c = self.links[c as usize][prio].next;
            if c == ring.first {
                return out;
            }
        }
    }

    #[cfg(test)]
    pub(super) fn is_linked(&self, c: u32, prio: usize) -> bool {
        self.links[c as usize][prio].next != NIL
    }
}
