//! What a sent packet does to the buckets, and what the buckets do to a
//! class's place: the charge (Linux `htb_charge_class`), the wait queue's
//! events (`htb_do_events`) and the moves between rows, feeds and the wait
//! queue (`htb_change_class_mode`, `htb_activate_prios`,
//! `htb_deactivate_prios`).

use super::*;

impl Htb {
    /// Charge `len` bytes sent by `leaf` (class `class`), served at `level`,
    /// to every ancestor (Linux `htb_charge_class`).
    #[inline]
    pub(super) fn charge(&mut self, class: u32, leaf: usize, level: usize, len: u32, now: u64) {
        let wire = self.link.wire_len(len);
        // A leaf is level 0: served at another level, it borrowed (its
        // lends are counted by difference, see `Leaf`).
        if level != 0 {
            self.leaves[leaf].borrows += 1;
        }
        let mut class = class;
        loop {
            let c = &mut self.hot[class as usize];
            let diff = credit(now, c.t_c);
            let c_level = usize::from(c.level);
            if c_level >= level {
                let toks = (c.tokens + diff).min(c.buffer) - time_ticks(c.rate_fp, wire);
                c.tokens = toks.max(1 - MBUFFER);
            } else {
                // Served through an ancestor: the class keeps the credit it
                // earned but isn't charged at its own rate.
                c.tokens += diff;
            }
            let ctoks = (c.ctokens + diff).min(c.cbuffer) - time_ticks(c.ceil_fp, wire);
            c.ctokens = ctoks.max(1 - MBUFFER);
            c.t_c = now;
            let old = c.mode;
            let (mode, wait) = class_mode(c, 0);
            let parent = c.parent;
            if mode != old {
                self.set_mode(class, mode);
                if old != Mode::CanSend {
                    self.wait.remove(class);
                }
                if mode != Mode::CanSend {
                    self.wait.push(class, now.saturating_add(wait));
                }
            }
            if c_level > 0 {
                let inner = &mut self.inners[(self.slot[class as usize] & !INNER) as usize];
                inner.bytes += u64::from(len);
                inner.packets += 1;
                if c_level == level {
                    inner.lends += 1;
                } else if c_level < level {
                    inner.borrows += 1;
                }
            }
            if parent == NIL {
                return;
            }
            class = parent;
        }
    }

    /// Let every class whose wait ended by `now` re-evaluate its mode (Linux
    /// `htb_do_events`, all levels at once: a mode change only moves the
    /// class itself, so processing levels together decides the same).
    pub(super) fn do_events(&mut self, now: u64) {
        while let Some((key, class)) = self.wait.peek() {
            if key > now {
                break;
            }
            self.wait.remove(class);
            let c = &self.hot[class as usize];
            let diff = credit(now, c.t_c);
            let (mode, wait) = class_mode(c, diff);
            self.set_mode(class, mode);
            if mode != Mode::CanSend {
                self.wait.push(class, now.saturating_add(wait));
            }
        }
    }

    /// Linux `htb_change_class_mode` after the mode is computed.
    pub(super) fn set_mode(&mut self, class: u32, mode: Mode) {
        let c = &mut self.hot[class as usize];
        let old = c.mode;
        if mode == old {
            return;
        }
        if mode == Mode::CantSend {
            self.cold[class as usize].overlimits += 1;
            self.overlimits += 1;
        }
        if c.prio_activity != 0 {
            if old != Mode::CantSend {
                self.deactivate_prios(class);
            }
            self.hot[class as usize].mode = mode;
            if mode != Mode::CantSend {
                self.activate_prios(class);
            }
        } else {
            c.mode = mode;
        }
    }

    /// A leaf got backlog: hang it where its mode says. A leaf that can
    /// send (the common case) goes straight into its row, as
    /// [`Htb::activate_prios`] would put it.
    #[inline]
    pub(super) fn activate(&mut self, leaf: u32) {
        let c = &mut self.hot[leaf as usize];
        let prio = usize::from(c.prio);
        c.prio_activity = 1 << prio;
        if c.mode != Mode::CanSend {
            self.activate_prios(leaf);
            return;
        }
        // A leaf's rank in its row is its leaf index.
        let rank = self.slot[leaf as usize];
        self.rings.add(&mut self.rows[0][prio], rank);
        self.row_mask |= 1 << prio;
    }

    /// A leaf ran empty: undo [`Htb::activate`].
    #[inline]
    pub(super) fn deactivate(&mut self, leaf: u32) {
        let c = &self.hot[leaf as usize];
        let mask = c.prio_activity;
        if c.mode != Mode::CanSend || mask == 0 {
            self.deactivate_prios(leaf);
        } else {
            // A leaf is active in its own prio only.
            let prio = mask.trailing_zeros() as usize;
            let row = &mut self.rows[0][prio];
            self.rings.remove_from_row(row, self.slot[leaf as usize]);
            if row.is_empty() {
                self.row_mask &= !(1 << prio);
            }
        }
        self.hot[leaf as usize].prio_activity = 0;
    }

    /// Hang `class` (for each prio it is active in) where its mode says:
    /// in its parent's feed while borrowing — activating the parent for
    /// prios new to it, and so on up — and in its row when it can send.
    pub(super) fn activate_prios(&mut self, class: u32) {
        let mut class = class;
        let mut mask = self.hot[class as usize].prio_activity;
        loop {
            let c = &self.hot[class as usize];
            let parent = c.parent;
            if c.mode != Mode::MayBorrow || parent == NIL || mask == 0 {
                break;
            }
            let inner = (self.slot[parent as usize] & !INNER) as usize;
            let rank = self.ranks[class as usize].feed;
            let mut new_to_parent = 0u8;
            for prio in bits(mask) {
                let feed = &mut self.inners[inner].feeds[prio];
                if feed.is_empty() {
                    new_to_parent |= 1 << prio;
                }
                self.rings.add(feed, rank);
            }
            self.hot[parent as usize].prio_activity |= new_to_parent;
            class = parent;
            mask = new_to_parent;
        }
        let c = &self.hot[class as usize];
        if c.mode == Mode::CanSend && mask != 0 {
            let level = usize::from(c.level);
            let rank = self.ranks[class as usize].row;
            for prio in bits(mask) {
                self.rings.add(&mut self.rows[level][prio], rank);
                self.row_mask |= 1 << (level * NUM_PRIO + prio);
            }
        }
    }

    /// Undo [`Htb::activate_prios`].
    pub(super) fn deactivate_prios(&mut self, class: u32) {
        let mut class = class;
        let mut mask = self.hot[class as usize].prio_activity;
        loop {
            let c = &self.hot[class as usize];
            let parent = c.parent;
            if c.mode != Mode::MayBorrow || parent == NIL || mask == 0 {
                break;
            }
            let inner = (self.slot[parent as usize] & !INNER) as usize;
            let rank = self.ranks[class as usize].feed;
            let mut emptied = 0u8;
            for prio in bits(mask) {
                let feed = &mut self.inners[inner].feeds[prio];
                self.rings.remove_from_feed(feed, rank);
                if feed.is_empty() {
                    emptied |= 1 << prio;
                }
            }
            self.hot[parent as usize].prio_activity &= !emptied;
            class = parent;
            mask = emptied;
        }
        let c = &self.hot[class as usize];
        if c.mode == Mode::CanSend && mask != 0 {
            let level = usize::from(c.level);
            let rank = self.ranks[class as usize].row;
            for prio in bits(mask) {
                let row = &mut self.rows[level][prio];
                self.rings.remove_from_row(row, rank);
                if row.is_empty() {
                    self.row_mask &= !(1 << (level * NUM_PRIO + prio));
                }
            }
        }
    }
}
