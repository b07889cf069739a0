//! Hierarchical token bucket scheduler with Linux `sch_htb` semantics.
//!
//! The facts it reproduces (see `docs/architecture.md` for the picture):
//! - Every class has two buckets, kept as time credit: `tokens` at `rate`
//!   (capped at `burst`) and `ctokens` at `ceil` (capped at `cburst`). The
//!   unit is 1/1024 ns and every charge is rounded up
//!   ([`crate::rate::RateCfg::time_ticks`]): Linux's whole-nanosecond
//!   truncation would let a 10 Gbit/s class of 64-byte packets run 0.4 %
//!   over its rate. Its mode is `CanSend` while tokens ≥ 0, `MayBorrow` while
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
//!   classes take turns by deficit round robin with their `quantum`, in
//!   class id order with Linux's pointer rules (`list.rs`), so borrowers of
//!   one prio share a lender's excess in proportion to their quantums.
//! - A sent packet charges the ceil bucket of every class from the leaf up
//!   to the root, and the rate bucket of the lender it was served through
//!   and of every class above it (Linux `htb_charge_class`: `cl->level >=
//!   level`); the classes below the lender, the leaf among them, are not
//!   charged at their rate (they only keep the credit they earned) and
//!   count a borrow, the lender a lend. Only this charge and the wait-queue
//!   deadlines change modes.
//!
//! Per packet this does no allocation and no floating point: rings and the
//! wait queue are index-based and sized when the tree is built, and the
//! byte→time conversion is fixed point ([`crate::rate::RateCfg`]).
//!
//! Memory layout (see `docs/performance.md`, "Scheduler"): with 100,000
//! classes nothing is in cache, so what one packet touches is packed. The
//! buckets, mode and tree links of a class are one 64-byte line (`Hot`); the
//! leaf's qdisc, DRR state and per-packet counters sit side by side
//! (`Leaf`); a dense 4-byte-per-class slot table says leaf or inner and where
//! its state is, so the leaf's lines can be fetched without first loading
//! the class; rates as configured, bucket sizes in bytes and rare counters
//! live apart (`Cold`). [`Htb::enqueue_batch`] and [`Htb::dequeue_batch`]
//! prefetch the lines a batch will touch a few packets ahead of touching
//! them, so the cache misses of a batch overlap. A big tree's per-packet
//! tables (classes, leaves, packet pool, FQ-CoDel flows) are carved from
//! one arena (`pool::Arena`) on 2 MiB pages, so its cache misses are not
//! also TLB misses.

mod list;
mod wait;

use crate::packet::{DropReason, Dropped, Drops, Packet};
use crate::pool::{prefetch, table_bytes, Arena, PacketPool, Table, NIL};
use crate::qdisc::{Backlog, Qdisc, QdiscParams, QdiscStats};
use crate::rate::{RateCfg, TICKS_PER_NS, TICK_SHIFT};
use list::{Ring, Rings};
use wait::WaitQueue;

/// Deepest tree (levels of classes), as Linux's TC_HTB_MAXDEPTH.
pub const MAX_DEPTH: usize = 8;
/// Priorities 0..=7, as Linux's TC_HTB_NUMPRIO.
pub const NUM_PRIO: usize = 8;

/// How far a bucket may go into debt, and the most idle time credited at
/// once: one minute, as Linux's `mbuffer`.
const MBUFFER_NS: i64 = 60_000_000_000;
/// [`MBUFFER_NS`] in ticks.
const MBUFFER: i64 = MBUFFER_NS << TICK_SHIFT;

/// One class of a compiled tree. Classes are given parents-first; `parent`
/// indexes an earlier class.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassSpec {
    /// tc class id, `major << 32 | minor`. Rows and feeds are kept in this
    /// order, as Linux keeps them in classid order, and the order decides
    /// who is served next (see `list.rs`).
    pub id: u64,
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
            SpecError::TooManyClasses => write!(f, "more classes than 2^31 - 1"),
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

/// Tag of an inner class in [`Htb::slot`]; the other bits index `inners`.
/// A leaf's slot is its index in `leaves`.
const INNER: u32 = 1 << 31;

/// What every packet reads and writes of each class on its path: the
/// buckets, the mode and the tree links. 64 bytes, one cache line.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Hot {
    tokens: i64,
    ctokens: i64,
    /// When the buckets were last brought up to date.
    t_c: u64,
    /// Bucket sizes in ns of credit.
    buffer: i64,
    cbuffer: i64,
    /// ns per byte at `rate` / `ceil`, 32.32 fixed point (as [`RateCfg`]).
    rate_fp: u64,
    ceil_fp: u64,
    parent: u32,
    level: u8,
    prio: u8,
    mode: Mode,
    /// Bit p set: this class (or, for an inner class, some descendant) has
    /// backlog at prio p and hangs in a row or feed for it.
    prio_activity: u8,
}

/// What a packet never touches (or only on a mode change).
#[derive(Clone, Copy, Debug)]
struct Cold {
    rate: RateCfg,
    ceil: RateCfg,
    burst_bytes: u32,
    cburst_bytes: u32,
    overlimits: u64,
}

/// A leaf class's queue and the per-packet state that goes with it, side by
/// side so a dequeue finds them in neighbouring lines. The leaf's bytes,
/// packets and drops are its qdisc's (every packet the class sends or drops
/// goes through it), so they are not counted twice; nor are its lends: a
/// leaf sends each packet either on its own tokens (a lend, at level 0) or
/// borrowed, so lends = packets - borrows, and the common case writes no
/// counter line of its own.
///
/// Field order is fixed: the DRR state comes first and the qdisc's
/// counters (its first fields) fill the rest of the leaf's first cache
/// line, which every dequeue of the leaf writes; the qdisc's kind state
/// starts on the second line.
#[derive(Debug)]
#[repr(C, align(64))]
struct Leaf {
    quantum: i32,
    /// DRR deficit, one per level the leaf can be served at (Linux keeps
    /// them apart so being served through different lenders doesn't mix
    /// rounds).
    deficit: [i32; MAX_DEPTH],
    qdisc: Qdisc,
    borrows: u64,
}

/// An inner class's feeds and counters.
#[derive(Clone, Copy, Debug)]
struct Inner {
    feeds: [Ring; NUM_PRIO],
    /// Where this class's children start in `Htb::children`.
    first_child: u32,
    bytes: u64,
    packets: u64,
    lends: u64,
    borrows: u64,
}

/// The scheduler for one tree. Owned by exactly one worker.
#[derive(Debug)]
pub struct Htb {
    hot: Table<Hot>,
    /// Per class: leaf index, or [`INNER`] | inner index. 4 bytes a class,
    /// so it stays in cache when the classes don't.
    slot: Table<u32>,
    cold: Vec<Cold>,
    leaves: Table<Leaf>,
    /// Class index of each leaf.
    leaf_class: Table<u32>,
    inners: Vec<Inner>,
    rows: [[Ring; NUM_PRIO]; MAX_DEPTH],
    /// The bitmaps of every row and feed.
    rings: Rings,
    /// Per class: its rank in its level's rows and in its parent's feeds.
    ranks: Vec<Ranks>,
    /// Per level, the classes of that level in id order: a row's member
    /// with rank r is `row_class[level][r]`.
    row_class: [Vec<u32>; MAX_DEPTH],
    /// Every inner class's children in id order, one run per inner class
    /// from its `first_child`: a feed's member with rank r.
    children: Vec<u32>,
    /// Bit `level * 8 + prio`: `rows[level][prio]` is not empty. Lowest set
    /// bit first is exactly HTB's order: levels from 0 up, prios from 0 up.
    row_mask: u64,
    wait: WaitQueue,
    pool: PacketPool,
    backlog: Backlog,
    /// The tree's link-layer accounting (tc `overhead`, `mpu`), the same for
    /// every class: the wire length of a packet is computed once per charge.
    link: RateCfg,
    /// Latest `now` seen, for `next_deadline` when something can send now.
    now: u64,
    overlimits: u64,
    /// The per-packet tables (`hot`, `slot`, `leaves`, `leaf_class`, the
    /// pool, FQ-CoDel flow tables) are in a mapping the kernel accepted
    /// `MADV_HUGEPAGE` for (see `pool::Arena`).
    huge_pages: bool,
}

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
        let mut has_children = vec![false; n];
        let mut depth = vec![0usize; n];
        // Everything a packet touches goes in one arena (on huge pages when
        // the tree is big enough for it to matter): add up what it holds.
        let mut leaf_count = 0;
        let mut arena_bytes = PacketPool::arena_bytes(spec.pool_capacity)
            + table_bytes::<Hot>(n)
            + table_bytes::<u32>(n);
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
        // Leaves are counted by qdisc here; a spec that gives an inner class
        // a qdisc or a leaf none is refused below, so this only sizes.
        arena_bytes += table_bytes::<Leaf>(leaf_count) + table_bytes::<u32>(leaf_count);
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
        let mut hot = Vec::with_capacity(n);
        let mut cold = Vec::with_capacity(n);
        let mut slot = Vec::with_capacity(n);
        let mut leaves = Vec::with_capacity(leaf_count);
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
                let seed = spec.seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                slot.push(leaf_index[i]);
                leaves.push((
                    leaf_index[i],
                    Leaf {
                        qdisc: Qdisc::new_in(q, seed, &mut arena),
                        quantum,
                        deficit: [0; MAX_DEPTH],
                        borrows: 0,
                    },
                ));
                0
            };
            let rate = RateCfg::new(c.rate, spec.overhead, spec.mpu);
            let ceil = RateCfg::new(c.ceil, spec.overhead, spec.mpu);
            let buffer = ticks_i64(rate.bytes_time_ticks(u64::from(c.burst)));
            let cbuffer = ticks_i64(ceil.bytes_time_ticks(u64::from(c.cburst)));
            hot.push(Hot {
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
            });
            cold.push(Cold {
                rate,
                ceil,
                burst_bytes: c.burst,
                cburst_bytes: c.cburst,
                overlimits: 0,
            });
        }
        let pool = PacketPool::new_in(spec.pool_capacity, &mut arena);
        let order = Order::new(spec, &hot, &slot, &mut inners);
        leaves.sort_unstable_by_key(|&(leaf, _)| leaf);
        let leaves: Vec<Leaf> = leaves.into_iter().map(|(_, l)| l).collect();
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
            row_mask: 0,
            wait: WaitQueue::new(n),
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

    /// Queue `packet` on leaf class `class`. Packets that don't fit (or that
    /// the leaf's AQM evicts) go to `drops`. A class index that is out of
    /// range or not a leaf is a caller bug; the packet is dropped as
    /// `Flushed` rather than panicking.
    #[inline]
    pub fn enqueue(&mut self, class: u32, packet: Packet, now: u64, drops: &mut Drops) {
        self.now = self.now.max(now);
        let Some(leaf) = self.leaf_index(class) else {
            debug_assert!(false, "enqueue on class {class} which is not a leaf");
            drops.push(packet, DropReason::Flushed);
            return;
        };
        let before_drops = drops.len();
        let q = &mut self.leaves[leaf].qdisc;
        // A leaf is active (hangs in a row or feed) exactly while its qdisc
        // holds packets, so the qdisc's backlog, which the enqueue reads
        // anyway, says whether this packet activates it: the class's own
        // line is only needed then (with 100,000 classes it is a miss).
        let was_empty = q.backlog().packets == 0;
        debug_assert_eq!(was_empty, self.hot[class as usize].prio_activity == 0);
        #[cfg(debug_assertions)]
        let before = q.backlog();
        q.enqueue(&mut self.pool, packet, now, drops);
        // The qdisc now holds what it held, plus the packet, minus what it
        // dropped (the packet itself or others of its own): the tree's
        // backlog follows without asking the qdisc before and after.
        self.backlog.packets += 1;
        self.backlog.bytes += u64::from(packet.len);
        let dropped = &drops.as_slice()[before_drops..];
        if !dropped.is_empty() {
            forget(&mut self.backlog, dropped);
        }
        let q = &self.leaves[leaf].qdisc;
        #[cfg(debug_assertions)]
        check_backlog(before, q.backlog(), Some(&packet), None, dropped);
        if was_empty && q.backlog().packets > 0 {
            self.activate(class);
        }
    }

    /// Queue a batch of packets, each on its leaf class: exactly what calling
    /// [`Htb::enqueue`] for each item in order does, but the cache lines each
    /// item touches (class, qdisc, flow) are prefetched a few items ahead,
    /// so their misses overlap instead of following each other. For the
    /// worker's rx batches; any length works.
    pub fn enqueue_batch(&mut self, items: &[(u32, Packet)], now: u64, drops: &mut Drops) {
        // A software pipeline: while item j is enqueued, item j + AHEAD has
        // its flow prefetched (which reads its qdisc's lines, fetched AHEAD
        // items earlier) and, if its leaf is empty so the enqueue will
        // activate it, its class line; item j + 2 * AHEAD its qdisc lines. A steady trickle keeps the CPU's miss buffers busy without
        // overflowing them; prefetching the whole batch in one burst fills
        // them and then stalls on the prefetches themselves (measured: 140
        // against 105 ns a packet for the enqueue half at 100,000 classes).
        let n = items.len();
        for i in 0..n + 2 * AHEAD {
            if let Some(&(class, _)) = items.get(i) {
                if let Some(leaf) = self.leaf_index(class) {
                    self.leaves[leaf].qdisc.prefetch_enqueue_state();
                }
            }
            if let Some(&(class, packet)) = i.checked_sub(AHEAD).and_then(|j| items.get(j)) {
                if let Some(leaf) = self.leaf_index(class) {
                    let q = &self.leaves[leaf].qdisc;
                    q.prefetch_enqueue(packet.hash);
                    if q.backlog().packets == 0 {
                        prefetch(&self.hot[class as usize]);
                    }
                }
            }
            if let Some(&(class, packet)) = i.checked_sub(2 * AHEAD).and_then(|j| items.get(j)) {
                self.enqueue(class, packet, now, drops);
            }
        }
    }

    /// The next packet the tree allows at `now`, or None: nothing queued, or
    /// nothing may be sent before [`Htb::next_deadline`].
    #[inline]
    pub fn dequeue(&mut self, now: u64, drops: &mut Drops) -> Option<Packet> {
        self.now = self.now.max(now);
        let now = self.now;
        if self.backlog.packets == 0 {
            return None;
        }
        if self.wait.peek().is_some_and(|(key, _)| key <= now) {
            self.do_events(now);
        }
        // A failed row only ever empties rows (it deactivates or skips
        // leaves, it charges nothing), so walking a snapshot of the mask
        // tries the same rows in the same order as re-reading it would.
        let mut mask = self.row_mask;
        while mask != 0 {
            let bit = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            if let Some(p) = self.dequeue_row(bit / NUM_PRIO, bit % NUM_PRIO, now, drops) {
                return Some(p);
            }
        }
        None
    }

    /// Up to `max` packets the tree allows at `now`, appended to `out`;
    /// returns how many. Exactly what calling [`Htb::dequeue`] until it
    /// returns None or `max` packets were taken does, but the classes next
    /// in turn, their qdiscs' next flows and those flows' head packets are
    /// prefetched first. For the worker's tx batches; reserve `out`'s
    /// capacity once and nothing is allocated.
    pub fn dequeue_batch(
        &mut self,
        now: u64,
        out: &mut Vec<Packet>,
        max: usize,
        drops: &mut Drops,
    ) -> usize {
        if max == 0 {
            return 0;
        }
        self.prefetch_turns(max);
        let mut n = 0;
        while n < max {
            let Some(p) = self.dequeue(now, drops) else {
                break;
            };
            out.push(p);
            n += 1;
        }
        n
    }

    /// When to call `dequeue` next after it returned None; `None` when
    /// nothing is queued. May be in the past (call `dequeue` right away).
    pub fn next_deadline(&self) -> Option<u64> {
        if self.backlog.packets == 0 {
            return None;
        }
        if self.row_mask != 0 {
            return Some(self.now);
        }
        let next = self.wait.peek().map(|(key, _)| key);
        debug_assert!(next.is_some(), "backlog but no row and no waiting class");
        next
    }

    pub fn backlog(&self) -> Backlog {
        self.backlog
    }

    /// Whether the tree's per-packet tables sit in a mapping the kernel
    /// accepted `MADV_HUGEPAGE` for. Small trees (under 8 MiB of tables)
    /// stay on the ordinary heap and say false; so does a kernel without
    /// transparent huge pages. Whether huge pages were actually found is
    /// the kernel's to say (`AnonHugePages` in `/proc/<pid>/smaps`).
    pub fn huge_pages(&self) -> bool {
        self.huge_pages
    }

    pub fn class_count(&self) -> u32 {
        self.hot.len() as u32
    }

    pub fn is_leaf(&self, class: u32) -> bool {
        self.leaf_index(class).is_some()
    }

    /// Total overlimits of the tree (qdisc-level counter).
    pub fn overlimits(&self) -> u64 {
        self.overlimits
    }

    /// Statistics of class `class` (index in the spec). Panics if out of
    /// range, like slice indexing.
    pub fn class_stats(&self, class: u32) -> ClassStats {
        let h = &self.hot[class as usize];
        let cold = &self.cold[class as usize];
        let s = self.slot[class as usize];
        let (bytes, packets, drops, backlog, lends, borrows) = if s & INNER == 0 {
            let leaf = &self.leaves[s as usize];
            let q = leaf.qdisc.stats();
            (
                q.bytes,
                q.packets,
                q.drops,
                q.backlog,
                q.packets - leaf.borrows,
                leaf.borrows,
            )
        } else {
            let inner = &self.inners[(s & !INNER) as usize];
            (
                inner.bytes,
                inner.packets,
                0,
                Backlog::default(),
                inner.lends,
                inner.borrows,
            )
        };
        ClassStats {
            bytes,
            packets,
            drops,
            overlimits: cold.overlimits,
            backlog,
            lends,
            borrows,
            giants: 0,
            tokens: h.tokens >> TICK_SHIFT,
            ctokens: h.ctokens >> TICK_SHIFT,
            mode: h.mode,
        }
    }

    /// Statistics of the leaf qdisc of `class`; None for inner classes.
    pub fn qdisc_stats(&self, class: u32) -> Option<QdiscStats> {
        let leaf = self.leaf_index(class)?;
        Some(self.leaves[leaf].qdisc.stats())
    }

    /// Empty every queue into `drops` (reason Flushed).
    pub fn flush(&mut self, drops: &mut Drops) {
        for leaf in 0..self.leaves.len() {
            let class = self.leaf_class[leaf];
            self.flush_leaf(class, leaf, drops);
        }
    }

    /// Take every packet queued in leaf `class` out of the tree, in its
    /// qdisc's order, into `out` (as `Flushed` entries the caller may
    /// re-queue elsewhere: a configuration change moving a class's queue to
    /// a rebuilt tree). Nothing for an inner or unknown class.
    pub fn flush_class(&mut self, class: u32, out: &mut Drops) {
        if let Some(leaf) = self.leaf_index(class) {
            self.flush_leaf(class, leaf, out);
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
        let (Some(h), Some(cold)) = (self.hot.get(class as usize), self.cold.get(class as usize))
        else {
            return Err(SpecError::BadParent { class });
        };
        let rate = change.rate.unwrap_or(cold.rate.bytes_per_sec());
        let ceil = change.ceil.unwrap_or(cold.ceil.bytes_per_sec());
        let prio = change.prio.unwrap_or(h.prio);
        if rate == 0 {
            return Err(SpecError::ZeroRate { class });
        }
        if ceil < rate {
            return Err(SpecError::CeilBelowRate { class });
        }
        if usize::from(prio) >= NUM_PRIO {
            return Err(SpecError::BadPrio { class });
        }
        let leaf = self.leaf_index(class);
        // A leaf changing prio must leave the rings of its old prio first.
        let active_leaf = leaf.is_some() && h.prio_activity != 0;
        let prio_changed = prio != h.prio;
        if active_leaf && prio_changed {
            self.deactivate(class);
        }
        let cold = &mut self.cold[class as usize];
        let (overhead, mpu) = (cold.rate.overhead(), cold.rate.mpu());
        cold.rate = RateCfg::new(rate, overhead, mpu);
        cold.ceil = RateCfg::new(ceil, overhead, mpu);
        cold.burst_bytes = change.burst.unwrap_or(cold.burst_bytes);
        cold.cburst_bytes = change.cburst.unwrap_or(cold.cburst_bytes);
        let h = &mut self.hot[class as usize];
        h.rate_fp = fixed_point(&cold.rate);
        h.ceil_fp = fixed_point(&cold.ceil);
        h.buffer = ticks_i64(cold.rate.bytes_time_ticks(u64::from(cold.burst_bytes)));
        h.cbuffer = ticks_i64(cold.ceil.bytes_time_ticks(u64::from(cold.cburst_bytes)));
        h.tokens = h.tokens.min(h.buffer);
        h.ctokens = h.ctokens.min(h.cbuffer);
        h.prio = prio;
        // Only leaves run DRR; an inner class's quantum has no effect.
        if let (Some(q), Some(leaf)) = (change.quantum, leaf) {
            self.leaves[leaf].quantum = q.clamp(1, i32::MAX as u32) as i32;
        }
        if active_leaf && prio_changed {
            self.activate(class);
        }
        // Re-evaluate the mode with the credit earned since the last charge.
        let h = &self.hot[class as usize];
        let diff = credit(now, h.t_c);
        let (mode, wait) = class_mode(h, diff);
        self.set_mode(class, mode);
        self.wait.remove(class);
        if mode != Mode::CanSend {
            self.wait.push(class, now.saturating_add(wait));
        }
        Ok(())
    }

    // ---- internals -------------------------------------------------------

    #[inline]
    fn leaf_index(&self, class: u32) -> Option<usize> {
        match self.slot.get(class as usize) {
            Some(&s) if s & INNER == 0 => Some(s as usize),
            _ => None,
        }
    }

    fn flush_leaf(&mut self, class: u32, leaf: usize, drops: &mut Drops) {
        let before_drops = drops.len();
        self.leaves[leaf].qdisc.flush(&mut self.pool, drops);
        forget(&mut self.backlog, &drops.as_slice()[before_drops..]);
        debug_assert_eq!(self.leaves[leaf].qdisc.backlog(), Backlog::default());
        if self.hot[class as usize].prio_activity != 0 {
            self.deactivate(class);
        }
    }

    /// Prefetch for the classes next in line to give `packets` packets: the
    /// non-empty rows' classes in serving order, each from its round-robin
    /// pointer on and down the feeds' pointers to a leaf. Pipelined like
    /// [`Htb::enqueue_batch`]: class and leaf lines, then (which needs the
    /// leaf's first line) the qdisc's next flow — counting the leaf's
    /// backlog, to stop once the classes seen hold enough packets — then
    /// (which needs the flow) that flow's head packet. Nothing is changed:
    /// a class that turns out not to be served only cost a wasted prefetch.
    fn prefetch_turns(&self, packets: usize) {
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
    fn dequeue_row(
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
    fn lookup(&mut self, level: usize, prio: usize) -> Option<usize> {
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
    fn lookup_walk(&mut self, level: usize, prio: usize) -> Option<usize> {
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
    fn peek_leaf(&self, mut c: u32, prio: usize) -> Option<usize> {
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
    fn next_turn(&mut self, leaf: u32, level: usize, prio: usize) {
        let ring = if level == 0 {
            &mut self.rows[0][prio]
        } else {
            let parent = self.hot[leaf as usize].parent;
            &mut self.inners[(self.slot[parent as usize] & !INNER) as usize].feeds[prio]
        };
        self.rings.step(ring);
    }

    /// Charge `len` bytes sent by `leaf` (class `class`), served at `level`,
    /// to every ancestor (Linux `htb_charge_class`).
    #[inline]
    fn charge(&mut self, class: u32, leaf: usize, level: usize, len: u32, now: u64) {
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
    fn do_events(&mut self, now: u64) {
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
    fn set_mode(&mut self, class: u32, mode: Mode) {
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
    fn activate(&mut self, leaf: u32) {
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
    fn deactivate(&mut self, leaf: u32) {
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
    fn activate_prios(&mut self, class: u32) {
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
    fn deactivate_prios(&mut self, class: u32) {
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

/// A class's place in the rings it can hang in.
#[derive(Clone, Copy, Debug)]
struct Ranks {
    /// Rank among the classes of its level, in id order (its rows).
    row: u32,
    /// Rank among its parent's children, in id order (the parent's feeds).
    feed: u32,
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
    /// every inner class its feeds.
    fn new(spec: &HtbSpec, hot: &[Hot], slot: &[u32], inners: &mut [Inner]) -> Order {
        let n = hot.len();
        // Class index breaks ties, so a spec with repeated ids (tests,
        // benches) still has one order.
        let by_id = |a: &u32, b: &u32| {
            let key = |c: &u32| (spec.classes[*c as usize].id, *c);
            key(a).cmp(&key(b))
        };
        let mut ranks = vec![Ranks { row: 0, feed: 0 }; n];
        let mut row_class: [Vec<u32>; MAX_DEPTH] = Default::default();
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
        let mut children = Vec::with_capacity(n);
        for (inner, mut list) in inners.iter_mut().zip(kids) {
            list.sort_by(by_id);
            inner.first_child = children.len() as u32;
            for (rank, &c) in list.iter().enumerate() {
                ranks[c as usize].feed = rank as u32;
            }
            let size = list.len() as u32;
            inner.feeds = std::array::from_fn(|_| rings.ring(size));
            children.extend(list);
        }
        let rows = std::array::from_fn(|level| {
            let size = row_class[level].len() as u32;
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

/// Items between the stages of the batched paths' prefetch pipelines: far
/// enough for a line to arrive while the items in between are worked on,
/// near enough not to flood the miss buffers (4 to 8 measure the same; 16
/// is slower).
const AHEAD: usize = 4;

/// How many classes ahead [`Htb::dequeue_batch`] prefetches.
const PREFETCH_TURNS: usize = 32;

/// Take dropped packets out of the tree's backlog.
#[inline]
fn forget(backlog: &mut Backlog, dropped: &[Dropped]) {
    for d in dropped {
        backlog.packets -= 1;
        backlog.bytes -= u64::from(d.packet.len);
    }
}

/// The qdisc contract the tree's backlog accounting relies on: a qdisc's
/// backlog changes by the packet put in, minus the packet taken out, minus
/// what it dropped.
#[cfg(debug_assertions)]
fn check_backlog(
    before: Backlog,
    after: Backlog,
    added: Option<&Packet>,
    taken: Option<&Packet>,
    dropped: &[Dropped],
) {
    let mut want = before;
    if let Some(p) = added {
        want.packets += 1;
        want.bytes += u64::from(p.len);
    }
    for p in taken.into_iter().chain(dropped.iter().map(|d| &d.packet)) {
        want.packets -= 1;
        want.bytes -= u64::from(p.len);
    }
    assert_eq!(after, want, "qdisc backlog out of step with its drops");
}

/// Linux `htb_class_mode`: the mode the buckets give after `diff` ticks more
/// credit, and how many ns (rounded up) until that mode may improve.
#[inline]
fn class_mode(c: &Hot, diff: i64) -> (Mode, u64) {
    let ctoks = c.ctokens + diff;
    if ctoks < 0 {
        return (Mode::CantSend, ticks_to_ns_ceil(-ctoks));
    }
    let toks = c.tokens + diff;
    if toks >= 0 {
        return (Mode::CanSend, 0);
    }
    (Mode::MayBorrow, ticks_to_ns_ceil(-toks))
}

/// Credit (ticks) earned between the last charge `t_c` and `now`, capped
/// at one minute as Linux's `mbuffer`.
#[inline]
fn credit(now: u64, t_c: u64) -> i64 {
    (now.saturating_sub(t_c) as i64).min(MBUFFER_NS) << TICK_SHIFT
}

#[inline]
fn ticks_to_ns_ceil(ticks: i64) -> u64 {
    (ticks as u64).div_ceil(TICKS_PER_NS)
}

/// `rate`'s ns per byte in 32.32 fixed point. `bytes_time_ns(2^32)` is that
/// value exactly: it is below the 2^62 cap for every rate ≥ 1 byte/s.
fn fixed_point(rate: &RateCfg) -> u64 {
    rate.bytes_time_ns(1 << 32)
}

/// [`RateCfg::time_ticks`] of `bytes` wire bytes from the fixed-point value
/// kept in the hot line (one multiply, rounded up; checked against
/// `RateCfg` in the tests).
#[inline]
fn time_ticks(fp: u64, bytes: u64) -> i64 {
    (u128::from(bytes) * u128::from(fp))
        .div_ceil(1 << (32 - TICK_SHIFT))
        .min(TICKS_CAP as u128) as i64
}

/// Largest bucket level or charge, ticks: a quarter of i64 so sums of a few
/// never overflow.
const TICKS_CAP: u64 = i64::MAX as u64 / 4;

fn ticks_i64(ticks: u64) -> i64 {
    ticks.min(TICKS_CAP) as i64
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
