//! Hierarchical token bucket scheduler with Linux `sch_htb` semantics.
//!
//! The facts it reproduces (see `docs/architecture.md` for the picture):
//! - Every class has two buckets, kept as nanoseconds of credit: `tokens`
//!   at `rate` (capped at `burst`) and `ctokens` at `ceil` (capped at
//!   `cburst`). Its mode is `CanSend` while tokens ≥ 0, `MayBorrow` while
//!   tokens < 0 ≤ ctokens, `CantSend` while ctokens < 0.
//! - A `CanSend` class hangs in the *row* of its level for each prio it has
//!   backlog in; a `MayBorrow` class hangs in its parent's *feed*; a
//!   `CantSend` class hangs nowhere and waits in the wait queue. Leaves are
//!   level 0; an inner class at depth d is level `MAX_DEPTH - 1 - d`, so a
//!   lender closer to the leaves is tried before one further up.
//! - Dequeue looks at levels from 0 up and, within a level, prios from 0 up
//!   (find-first-set over a per-level bitmap): a leaf with its own tokens is
//!   always served before a borrower, and among borrowers of one lender the
//!   lower prio value is offered the excess first. Within one (level, prio)
//!   classes take turns by deficit round robin with their `quantum`.
//! - A sent packet charges both buckets of every class from the leaf up to
//!   the lender it was served through, and the ceil bucket of every class
//!   up to the root; classes below the lender count a borrow, the lender a
//!   lend. Only this charge and the wait-queue deadlines change modes.
//!
//! Per packet this does no allocation and no floating point: rings and the
//! wait queue are index-based and sized when the tree is built, and the
//! byte→time conversion is fixed point ([`crate::rate::RateCfg`]).

mod list;
mod wait;

use crate::packet::{Drops, Packet};
use crate::pool::{PacketPool, NIL};
use crate::qdisc::{Backlog, Qdisc, QdiscParams, QdiscStats};
use crate::rate::RateCfg;
use list::{Links, Ring};
use wait::WaitQueue;

/// Deepest tree (levels of classes), as Linux's TC_HTB_MAXDEPTH.
pub const MAX_DEPTH: usize = 8;
/// Priorities 0..=7, as Linux's TC_HTB_NUMPRIO.
pub const NUM_PRIO: usize = 8;

/// How far a bucket may go into debt, and the most idle time credited at
/// once: one minute, as Linux's `mbuffer`.
const MBUFFER_NS: i64 = 60_000_000_000;

/// One class of a compiled tree. Classes are given parents-first; `parent`
/// indexes an earlier class.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassSpec {
    pub parent: Option<u32>,
    /// Guaranteed rate, bytes/s.
    pub rate: u64,
    /// Ceiling, bytes/s (>= rate).
    pub ceil: u64,
    /// Rate bucket size, bytes.
    pub burst: u32,
    /// Ceil bucket size, bytes.
    pub cburst: u32,
    /// 0 (served first) ..= 7.
    pub prio: u8,
    /// DRR quantum, bytes (already defaulted from r2q by the config).
    pub quantum: u32,
    /// Leaf qdisc; `Some` exactly for classes without children.
    pub qdisc: Option<QdiscParams>,
}

/// A whole tree, ready to build.
#[derive(Clone, Debug, PartialEq)]
pub struct HtbSpec {
    pub classes: Vec<ClassSpec>,
    /// Link-layer accounting applied to every class: tc `overhead`.
    pub overhead: i32,
    /// tc `mpu`.
    pub mpu: u32,
    /// Most packets queued at once in the whole tree (UMEM frames).
    pub pool_capacity: u32,
    /// Seeds SFQ/FQ-CoDel perturbation and RED's RNG.
    pub seed: u64,
}

/// Why a spec can't be built. The config layer checks all of these with
/// file positions first; this is the core refusing to run on a bad tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpecError {
    Empty,
    TooManyClasses,
    BadParent { class: u32 },
    LeafWithoutQdisc { class: u32 },
    InnerWithQdisc { class: u32 },
    TooDeep { class: u32 },
    BadPrio { class: u32 },
    CeilBelowRate { class: u32 },
    ZeroRate { class: u32 },
}

impl std::fmt::Display for SpecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpecError::Empty => write!(f, "the tree has no classes"),
            SpecError::TooManyClasses => write!(f, "more classes than 2^32 - 2"),
            SpecError::BadParent { class } => {
                write!(f, "class #{class}: parent must be an earlier class")
            }
            SpecError::LeafWithoutQdisc { class } => {
                write!(f, "class #{class}: leaf without a qdisc")
            }
            SpecError::InnerWithQdisc { class } => {
                write!(
                    f,
                    "class #{class}: a class with children can't have a qdisc"
                )
            }
            SpecError::TooDeep { class } => {
                write!(
                    f,
                    "class #{class}: the tree is deeper than {MAX_DEPTH} levels"
                )
            }
            SpecError::BadPrio { class } => write!(f, "class #{class}: prio must be 0..=7"),
            SpecError::CeilBelowRate { class } => write!(f, "class #{class}: ceil below rate"),
            SpecError::ZeroRate { class } => write!(f, "class #{class}: rate must be positive"),
        }
    }
}

impl std::error::Error for SpecError {}

/// Class mode, as HTB names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    CanSend,
    MayBorrow,
    CantSend,
}

/// Per-class statistics as `tc -s class show` prints them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassStats {
    pub bytes: u64,
    pub packets: u64,
    pub drops: u64,
    pub overlimits: u64,
    pub backlog: Backlog,
    pub lends: u64,
    pub borrows: u64,
    pub giants: u64,
    /// Rate bucket level, ns of credit at `rate` (negative: in debt).
    pub tokens: i64,
    /// Ceil bucket level, ns of credit at `ceil`.
    pub ctokens: i64,
    pub mode: Mode,
}

/// New shaping parameters for one class (`weir class change`); `None`
/// keeps the current value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassChange {
    pub rate: Option<u64>,
    pub ceil: Option<u64>,
    pub burst: Option<u32>,
    pub cburst: Option<u32>,
    pub prio: Option<u8>,
    pub quantum: Option<u32>,
}

#[derive(Debug)]
struct Class {
    parent: u32,
    level: u8,
    prio: u8,
    mode: Mode,
    /// Bit p set: this class (or, for an inner class, some descendant) has
    /// backlog at prio p and hangs in a row or feed for it.
    prio_activity: u8,
    /// Index into `Htb::qdiscs`, NIL for inner classes.
    leaf: u32,
    rate: RateCfg,
    ceil: RateCfg,
    /// Bucket sizes in ns of credit.
    buffer: i64,
    cbuffer: i64,
    tokens: i64,
    ctokens: i64,
    /// When the buckets were last brought up to date.
    t_c: u64,
    quantum: i32,
    /// DRR deficit, one per level the leaf can be served at (Linux keeps
    /// them apart so being served through different lenders doesn't mix
    /// rounds).
    deficit: [i32; MAX_DEPTH],
    burst_bytes: u32,
    cburst_bytes: u32,
    // Counters (tc -s class show).
    bytes: u64,
    packets: u64,
    drops: u64,
    overlimits: u64,
    lends: u64,
    borrows: u64,
}

/// The scheduler for one tree. Owned by exactly one worker.
#[derive(Debug)]
pub struct Htb {
    classes: Vec<Class>,
    qdiscs: Vec<Qdisc>,
    /// Class index of each leaf qdisc.
    leaf_class: Vec<u32>,
    /// Feeds of each class (empty for leaves).
    feeds: Vec<[Ring; NUM_PRIO]>,
    rows: [[Ring; NUM_PRIO]; MAX_DEPTH],
    /// Bit p of `row_mask[level]`: `rows[level][p]` is not empty.
    row_mask: [u8; MAX_DEPTH],
    links: Links,
    wait: WaitQueue,
    pool: PacketPool,
    backlog: Backlog,
    /// Latest `now` seen, for `next_deadline` when something can send now.
    now: u64,
    overlimits: u64,
}

impl Htb {
    /// Build a tree at time `now`; every bucket starts full, as a new tc
    /// class does.
    pub fn new(spec: &HtbSpec, now: u64) -> Result<Htb, SpecError> {
        let n = spec.classes.len();
        if n == 0 {
            return Err(SpecError::Empty);
        }
        if n >= NIL as usize {
            return Err(SpecError::TooManyClasses);
        }
        let mut has_children = vec![false; n];
        let mut depth = vec![0usize; n];
        for (i, c) in spec.classes.iter().enumerate() {
            let class = i as u32;
            if let Some(p) = c.parent {
                if p as usize >= i {
                    return Err(SpecError::BadParent { class });
                }
                has_children[p as usize] = true;
                depth[i] = depth[p as usize] + 1;
            }
            if usize::from(c.prio) >= NUM_PRIO {
                return Err(SpecError::BadPrio { class });
            }
            if c.rate == 0 {
                return Err(SpecError::ZeroRate { class });
            }
            if c.ceil < c.rate {
                return Err(SpecError::CeilBelowRate { class });
            }
        }
        let mut classes = Vec::with_capacity(n);
        let mut qdiscs = Vec::new();
        let mut leaf_class = Vec::new();
        for (i, c) in spec.classes.iter().enumerate() {
            let class = i as u32;
            let (level, leaf) = if has_children[i] {
                if c.qdisc.is_some() {
                    return Err(SpecError::InnerWithQdisc { class });
                }
                // An inner class must sit above level 0, which is the leaves'.
                if depth[i] + 2 > MAX_DEPTH {
                    return Err(SpecError::TooDeep { class });
                }
                ((MAX_DEPTH - 1 - depth[i]) as u8, NIL)
            } else {
                let Some(q) = &c.qdisc else {
                    return Err(SpecError::LeafWithoutQdisc { class });
                };
                if depth[i] + 1 > MAX_DEPTH {
                    return Err(SpecError::TooDeep { class });
                }
                let seed = spec.seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                qdiscs.push(Qdisc::new(q, seed));
                leaf_class.push(class);
                (0, (qdiscs.len() - 1) as u32)
            };
            let rate = RateCfg::new(c.rate, spec.overhead, spec.mpu);
            let ceil = RateCfg::new(c.ceil, spec.overhead, spec.mpu);
            let buffer = ns_i64(rate.bytes_time_ns(u64::from(c.burst)));
            let cbuffer = ns_i64(ceil.bytes_time_ns(u64::from(c.cburst)));
            classes.push(Class {
                parent: c.parent.unwrap_or(NIL),
                level,
                prio: c.prio,
                mode: Mode::CanSend,
                prio_activity: 0,
                leaf,
                rate,
                ceil,
                buffer,
                cbuffer,
                tokens: buffer,
                ctokens: cbuffer,
                t_c: now,
                quantum: c.quantum.clamp(1, i32::MAX as u32) as i32,
                deficit: [0; MAX_DEPTH],
                burst_bytes: c.burst,
                cburst_bytes: c.cburst,
                bytes: 0,
                packets: 0,
                drops: 0,
                overlimits: 0,
                lends: 0,
                borrows: 0,
            });
        }
        Ok(Htb {
            feeds: vec![[Ring::EMPTY; NUM_PRIO]; n],
            rows: [[Ring::EMPTY; NUM_PRIO]; MAX_DEPTH],
            row_mask: [0; MAX_DEPTH],
            links: Links::new(n),
            wait: WaitQueue::new(n),
            pool: PacketPool::new(spec.pool_capacity),
            backlog: Backlog::default(),
            now,
            overlimits: 0,
            classes,
            qdiscs,
            leaf_class,
        })
    }

    /// Queue `packet` on leaf class `class`. Packets that don't fit (or that
    /// the leaf's AQM evicts) go to `drops`. A class index that is out of
    /// range or not a leaf is a caller bug; the packet is dropped as
    /// `Flushed` rather than panicking.
    pub fn enqueue(&mut self, class: u32, packet: Packet, now: u64, drops: &mut Drops) {
        self.now = self.now.max(now);
        let leaf = match self.classes.get(class as usize) {
            Some(c) if c.leaf != NIL => c.leaf as usize,
            _ => {
                debug_assert!(false, "enqueue on class {class} which is not a leaf");
                drops.push(packet, crate::packet::DropReason::Flushed);
                return;
            }
        };
        let before_drops = drops.len();
        let q = &mut self.qdiscs[leaf];
        let before = q.backlog();
        q.enqueue(&mut self.pool, packet, now, drops);
        let after = q.backlog();
        self.adjust_backlog(before, after);
        let c = &mut self.classes[class as usize];
        c.drops += (drops.len() - before_drops) as u64;
        if after.packets > 0 && c.prio_activity == 0 {
            self.activate(class);
        }
    }

    /// The next packet the tree allows at `now`, or None: nothing queued, or
    /// nothing may be sent before [`Htb::next_deadline`].
    pub fn dequeue(&mut self, now: u64, drops: &mut Drops) -> Option<Packet> {
        self.now = self.now.max(now);
        let now = self.now;
        if self.backlog.packets == 0 {
            return None;
        }
        self.do_events(now);
        for level in 0..MAX_DEPTH {
            let mut mask = self.row_mask[level];
            while mask != 0 {
                let prio = mask.trailing_zeros() as usize;
                mask &= mask - 1;
                if let Some(p) = self.dequeue_row(level, prio, now, drops) {
                    return Some(p);
                }
            }
        }
        None
    }

    /// When to call `dequeue` next after it returned None; `None` when
    /// nothing is queued. May be in the past (call `dequeue` right away).
    pub fn next_deadline(&self) -> Option<u64> {
        if self.backlog.packets == 0 {
            return None;
        }
        if self.row_mask.iter().any(|&m| m != 0) {
            return Some(self.now);
        }
        let next = self.wait.peek().map(|(key, _)| key);
        debug_assert!(next.is_some(), "backlog but no row and no waiting class");
        next
    }

    pub fn backlog(&self) -> Backlog {
        self.backlog
    }

    pub fn class_count(&self) -> u32 {
        self.classes.len() as u32
    }

    pub fn is_leaf(&self, class: u32) -> bool {
        self.classes
            .get(class as usize)
            .is_some_and(|c| c.leaf != NIL)
    }

    /// Total overlimits of the tree (qdisc-level counter).
    pub fn overlimits(&self) -> u64 {
        self.overlimits
    }

    /// Statistics of class `class` (index in the spec). Panics if out of
    /// range, like slice indexing.
    pub fn class_stats(&self, class: u32) -> ClassStats {
        let c = &self.classes[class as usize];
        let backlog = if c.leaf != NIL {
            self.qdiscs[c.leaf as usize].backlog()
        } else {
            Backlog::default()
        };
        ClassStats {
            bytes: c.bytes,
            packets: c.packets,
            drops: c.drops,
            overlimits: c.overlimits,
            backlog,
            lends: c.lends,
            borrows: c.borrows,
            giants: 0,
            tokens: c.tokens,
            ctokens: c.ctokens,
            mode: c.mode,
        }
    }

    /// Statistics of the leaf qdisc of `class`; None for inner classes.
    pub fn qdisc_stats(&self, class: u32) -> Option<QdiscStats> {
        let c = self.classes.get(class as usize)?;
        (c.leaf != NIL).then(|| self.qdiscs[c.leaf as usize].stats())
    }

    /// Empty every queue into `drops` (reason Flushed).
    pub fn flush(&mut self, drops: &mut Drops) {
        for leaf in 0..self.qdiscs.len() {
            let class = self.leaf_class[leaf];
            self.flush_leaf(class, drops);
        }
    }

    /// Change a class's shaping parameters in place (`tc class change`).
    /// Queued packets stay queued; the buckets keep their credit (clipped to
    /// the new bucket sizes) so the new rate takes effect from the next
    /// charge.
    pub fn change_class(
        &mut self,
        class: u32,
        change: &ClassChange,
        now: u64,
    ) -> Result<(), SpecError> {
        self.now = self.now.max(now);
        let Some(c) = self.classes.get(class as usize) else {
            return Err(SpecError::BadParent { class });
        };
        let rate = change.rate.unwrap_or(c.rate.bytes_per_sec());
        let ceil = change.ceil.unwrap_or(c.ceil.bytes_per_sec());
        let prio = change.prio.unwrap_or(c.prio);
        if rate == 0 {
            return Err(SpecError::ZeroRate { class });
        }
        if ceil < rate {
            return Err(SpecError::CeilBelowRate { class });
        }
        if usize::from(prio) >= NUM_PRIO {
            return Err(SpecError::BadPrio { class });
        }
        // A leaf changing prio must leave the rings of its old prio first.
        let active_leaf = c.leaf != NIL && c.prio_activity != 0;
        if active_leaf && prio != c.prio {
            self.deactivate(class);
        }
        let c = &mut self.classes[class as usize];
        let (overhead, mpu) = (c.rate.overhead(), c.rate.mpu());
        c.rate = RateCfg::new(rate, overhead, mpu);
        c.ceil = RateCfg::new(ceil, overhead, mpu);
        c.burst_bytes = change.burst.unwrap_or(c.burst_bytes);
        c.cburst_bytes = change.cburst.unwrap_or(c.cburst_bytes);
        c.buffer = ns_i64(c.rate.bytes_time_ns(u64::from(c.burst_bytes)));
        c.cbuffer = ns_i64(c.ceil.bytes_time_ns(u64::from(c.cburst_bytes)));
        c.tokens = c.tokens.min(c.buffer);
        c.ctokens = c.ctokens.min(c.cbuffer);
        if let Some(q) = change.quantum {
            c.quantum = q.clamp(1, i32::MAX as u32) as i32;
        }
        let prio_changed = prio != c.prio;
        c.prio = prio;
        if active_leaf && prio_changed {
            self.activate(class);
        }
        // Re-evaluate the mode with the credit earned since the last charge.
        let c = &self.classes[class as usize];
        let diff = (now.saturating_sub(c.t_c) as i64).min(MBUFFER_NS);
        let (mode, wait) = class_mode(c, diff);
        self.set_mode(class, mode);
        self.wait.remove(class);
        if mode != Mode::CanSend {
            self.wait.push(class, now.saturating_add(wait));
        }
        Ok(())
    }

    // ---- internals -------------------------------------------------------

    fn adjust_backlog(&mut self, before: Backlog, after: Backlog) {
        self.backlog.packets = self.backlog.packets - before.packets + after.packets;
        self.backlog.bytes = self.backlog.bytes - before.bytes + after.bytes;
    }

    fn flush_leaf(&mut self, class: u32, drops: &mut Drops) {
        let leaf = self.classes[class as usize].leaf as usize;
        let before_drops = drops.len();
        let before = self.qdiscs[leaf].backlog();
        self.qdiscs[leaf].flush(&mut self.pool, drops);
        let after = self.qdiscs[leaf].backlog();
        self.adjust_backlog(before, after);
        self.classes[class as usize].drops += (drops.len() - before_drops) as u64;
        if self.classes[class as usize].prio_activity != 0 {
            self.deactivate(class);
        }
    }

    /// Serve one packet from the classes hanging in `rows[level][prio]`.
    fn dequeue_row(
        &mut self,
        level: usize,
        prio: usize,
        now: u64,
        drops: &mut Drops,
    ) -> Option<Packet> {
        // Each failed attempt deactivates or skips one leaf, so the loop
        // ends; the bound is a guard against a broken invariant.
        for _ in 0..=self.qdiscs.len() {
            let class = self.lookup_leaf(level, prio)?;
            let leaf = self.classes[class as usize].leaf as usize;
            let before_drops = drops.len();
            let q = &mut self.qdiscs[leaf];
            let before = q.backlog();
            let packet = q.dequeue(&mut self.pool, now, drops);
            let after = q.backlog();
            self.adjust_backlog(before, after);
            let c = &mut self.classes[class as usize];
            c.drops += (drops.len() - before_drops) as u64;
            match packet {
                Some(p) => {
                    c.bytes += u64::from(p.len);
                    c.packets += 1;
                    c.deficit[level] -= p.len as i32;
                    if c.deficit[level] < 0 {
                        c.deficit[level] += c.quantum;
                        self.advance(class, level, prio);
                    }
                    if after.packets == 0 {
                        self.deactivate(class);
                    }
                    self.charge(class, level, p.len, now);
                    return Some(p);
                }
                None => {
                    // The AQM dropped what it had, or a non-work-conserving
                    // leaf said "not yet": move on to the next class.
                    if after.packets == 0 {
                        self.deactivate(class);
                    } else {
                        self.advance(class, level, prio);
                    }
                }
            }
        }
        debug_assert!(false, "dequeue_row made no progress");
        None
    }

    /// Walk from the row's current class down the feeds' current classes to
    /// a leaf.
    fn lookup_leaf(&self, level: usize, prio: usize) -> Option<u32> {
        let mut c = self.rows[level][prio].cur;
        if c == crate::pool::NIL {
            return None;
        }
        while self.classes[c as usize].leaf == NIL {
            c = self.feeds[c as usize][prio].cur;
            debug_assert!(c != NIL, "active inner class with an empty feed");
            if c == NIL {
                return None;
            }
        }
        Some(c)
    }

    /// The leaf used up its quantum: its turn passes to the next class of
    /// its ring; when that ring wraps, the ring above moves on too.
    fn advance(&mut self, leaf: u32, level: usize, prio: usize) {
        if level == 0 {
            self.links.advance(&mut self.rows[0][prio], prio);
            return;
        }
        let mut c = leaf;
        loop {
            let p = self.classes[c as usize].parent;
            if p == NIL {
                return;
            }
            let wrapped = self.links.advance(&mut self.feeds[p as usize][prio], prio);
            if !wrapped {
                return;
            }
            if usize::from(self.classes[p as usize].level) == level {
                self.links.advance(&mut self.rows[level][prio], prio);
                return;
            }
            c = p;
        }
    }

    /// Charge `len` bytes sent by `leaf`, served at `level`, to every
    /// ancestor (Linux `htb_charge_class`).
    fn charge(&mut self, leaf: u32, level: usize, len: u32, now: u64) {
        let mut class = leaf;
        while class != NIL {
            let c = &mut self.classes[class as usize];
            let diff = (now.saturating_sub(c.t_c) as i64).min(MBUFFER_NS);
            if usize::from(c.level) >= level {
                if usize::from(c.level) == level {
                    c.lends += 1;
                }
                let toks = (c.tokens + diff).min(c.buffer) - ns_i64(c.rate.time_ns(len));
                c.tokens = toks.max(1 - MBUFFER_NS);
            } else {
                // Served through an ancestor: the class keeps the credit it
                // earned but isn't charged at its own rate.
                c.borrows += 1;
                c.tokens += diff;
            }
            let ctoks = (c.ctokens + diff).min(c.cbuffer) - ns_i64(c.ceil.time_ns(len));
            c.ctokens = ctoks.max(1 - MBUFFER_NS);
            c.t_c = now;
            if c.leaf == NIL {
                c.bytes += u64::from(len);
                c.packets += 1;
            }
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
            class = parent;
        }
    }

    /// Let every class whose wait ended by `now` re-evaluate its mode (Linux
    /// `htb_do_events`, all levels at once: a mode change only moves the
    /// class itself, so processing levels together decides the same).
    fn do_events(&mut self, now: u64) {
        while let Some((key, class)) = self.wait.peek() {
            if key > now {
                break;
            }
            self.wait.remove(class);
            let c = &self.classes[class as usize];
            let diff = (now.saturating_sub(c.t_c) as i64).min(MBUFFER_NS);
            let (mode, wait) = class_mode(c, diff);
            self.set_mode(class, mode);
            if mode != Mode::CanSend {
                self.wait.push(class, now.saturating_add(wait));
            }
        }
    }

    /// Linux `htb_change_class_mode` after the mode is computed.
    fn set_mode(&mut self, class: u32, mode: Mode) {
        let c = &mut self.classes[class as usize];
        let old = c.mode;
        if mode == old {
            return;
        }
        if mode == Mode::CantSend {
            c.overlimits += 1;
            self.overlimits += 1;
        }
        if c.prio_activity != 0 {
            if old != Mode::CantSend {
                self.deactivate_prios(class);
            }
            self.classes[class as usize].mode = mode;
            if mode != Mode::CantSend {
                self.activate_prios(class);
            }
        } else {
            c.mode = mode;
        }
    }

    fn activate(&mut self, leaf: u32) {
        let c = &mut self.classes[leaf as usize];
        c.prio_activity = 1 << c.prio;
        self.activate_prios(leaf);
    }

    fn deactivate(&mut self, leaf: u32) {
        self.deactivate_prios(leaf);
        self.classes[leaf as usize].prio_activity = 0;
    }

    /// Hang `class` (for each prio it is active in) where its mode says:
    /// in its parent's feed while borrowing — activating the parent for
    /// prios new to it, and so on up — and in its row when it can send.
    fn activate_prios(&mut self, class: u32) {
        let mut class = class;
        let mut mask = self.classes[class as usize].prio_activity;
        loop {
            let c = &self.classes[class as usize];
            let parent = c.parent;
            if c.mode != Mode::MayBorrow || parent == NIL || mask == 0 {
                break;
            }
            let mut new_to_parent = 0u8;
            for prio in bits(mask) {
                let feed = &mut self.feeds[parent as usize][prio];
                if feed.is_empty() {
                    new_to_parent |= 1 << prio;
                }
                self.links.insert(feed, class, prio);
            }
            self.classes[parent as usize].prio_activity |= new_to_parent;
            class = parent;
            mask = new_to_parent;
        }
        if self.classes[class as usize].mode == Mode::CanSend && mask != 0 {
            let level = usize::from(self.classes[class as usize].level);
            for prio in bits(mask) {
                self.links.insert(&mut self.rows[level][prio], class, prio);
                self.row_mask[level] |= 1 << prio;
            }
        }
    }

    /// Undo [`Htb::activate_prios`].
    fn deactivate_prios(&mut self, class: u32) {
        let mut class = class;
        let mut mask = self.classes[class as usize].prio_activity;
        loop {
            let c = &self.classes[class as usize];
            let parent = c.parent;
            if c.mode != Mode::MayBorrow || parent == NIL || mask == 0 {
                break;
            }
            let mut emptied = 0u8;
            for prio in bits(mask) {
                let feed = &mut self.feeds[parent as usize][prio];
                self.links.remove(feed, class, prio);
                if feed.is_empty() {
                    emptied |= 1 << prio;
                }
            }
            self.classes[parent as usize].prio_activity &= !emptied;
            class = parent;
            mask = emptied;
        }
        if self.classes[class as usize].mode == Mode::CanSend && mask != 0 {
            let level = usize::from(self.classes[class as usize].level);
            for prio in bits(mask) {
                let row = &mut self.rows[level][prio];
                self.links.remove(row, class, prio);
                if row.is_empty() {
                    self.row_mask[level] &= !(1 << prio);
                }
            }
        }
    }
}

/// Linux `htb_class_mode`: the mode the buckets give after `diff` ns more
/// credit, and how long until that mode may improve.
fn class_mode(c: &Class, diff: i64) -> (Mode, u64) {
    let ctoks = c.ctokens + diff;
    if ctoks < 0 {
        return (Mode::CantSend, (-ctoks) as u64);
    }
    let toks = c.tokens + diff;
    if toks >= 0 {
        return (Mode::CanSend, 0);
    }
    (Mode::MayBorrow, (-toks) as u64)
}

fn ns_i64(ns: u64) -> i64 {
    ns.min(i64::MAX as u64 / 4) as i64
}

/// Indexes of the set bits of `mask`, lowest first.
fn bits(mask: u8) -> impl Iterator<Item = usize> {
    let mut m = mask;
    std::iter::from_fn(move || {
        if m == 0 {
            return None;
        }
        let b = m.trailing_zeros() as usize;
        m &= m - 1;
        Some(b)
    })
}

#[cfg(test)]
mod tests;
