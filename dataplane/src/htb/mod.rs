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
//!
//! Files: this one holds the types and the public calls; `build.rs` makes a
//! tree from its spec; `edit.rs` adds and removes leaves in place; `serve.rs` finds whose turn it is and dequeues a
//! row; `mode.rs` charges a sent packet and moves classes between rows,
//! feeds and the wait queue; `list.rs` is the id-ordered rows and feeds;
//! `wait.rs` the wait queue.

mod build;
mod edit;
pub use build::leaf_seed;
pub use edit::{edit_layout, InPlaceError, Moved};
mod list;
mod mode;
mod serve;
mod wait;

use crate::packet::{DropReason, Dropped, Drops, Packet};
use crate::pool::{prefetch, table_bytes, Arena, PacketPool, Table, NIL};
use crate::qdisc::{Backlog, FifoLimit, Qdisc, QdiscParams, QdiscStats};
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
    /// Leaves that can be added later without a rebuild
    /// ([`Htb::add_leaf`]): their table entries are made now, vacant.
    pub spare_leaves: u32,
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

/// A class's two buckets as of its last charge: what a rebuilt tree carries
/// over for a class it keeps ([`Htb::buckets`], [`Htb::carry_buckets`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buckets {
    tokens: i64,
    ctokens: i64,
    t_c: u64,
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
    /// tc class id (the rows' and feeds' order).
    id: u64,
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
    /// Packets refused for the pool's share rule before they reached the
    /// qdisc (see `Htb::enqueue`): the class's drops count them too.
    share_drops: u64,
}

impl Leaf {
    fn new(qdisc: Qdisc, quantum: i32) -> Leaf {
        Leaf {
            quantum,
            deficit: [0; MAX_DEPTH],
            qdisc,
            borrows: 0,
            share_drops: 0,
        }
    }

    /// The entry of a spare or removed leaf: never in a row or feed, and
    /// its qdisc (an empty pfifo of no packets) allocates nothing.
    fn vacant() -> Leaf {
        Leaf::new(Qdisc::new(&QdiscParams::Fifo(FifoLimit::Packets(0)), 0), 1)
    }
}

/// The hot line of a spare class entry.
const VACANT_HOT: Hot = Hot {
    tokens: 0,
    ctokens: 0,
    t_c: 0,
    buffer: 0,
    cbuffer: 0,
    rate_fp: 0,
    ceil_fp: 0,
    parent: NIL,
    level: 0,
    prio: 0,
    mode: Mode::CanSend,
    prio_activity: 0,
};

/// An inner class's feeds and counters.
#[derive(Clone, Copy, Debug)]
struct Inner {
    feeds: [Ring; NUM_PRIO],
    /// Where this class's children start in `Htb::children`.
    first_child: u32,
    /// How many entries of `Htb::children` are this class's: its children
    /// and the holes of removed ones (NIL), which keep the others' ranks.
    child_slots: u32,
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
    /// from its `first_child`: a feed's member with rank r. A removed
    /// child leaves NIL, never a member.
    children: Vec<u32>,
    /// Classes in use: indexes `0..classes` of the per-class tables; the
    /// entries past it are spare room for [`Htb::add_leaf`].
    classes: u32,
    /// Leaf entries in use, holes of removed leaves included: the next
    /// added leaf takes index (and row rank) `leaf_slots`.
    leaf_slots: u32,
    /// The highest id of any leaf the tree had: an added leaf must be
    /// above it to take the last rank of the level-0 rows.
    last_leaf_id: u64,
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

/// A class's place in the rings it can hang in.
#[derive(Clone, Copy, Debug)]
struct Ranks {
    /// Rank among the classes of its level, in id order (its rows).
    row: u32,
    /// Rank among its parent's children, in id order (the parent's feeds).
    feed: u32,
}

impl Htb {
    /// Queue `packet` on leaf class `class`. Packets that don't fit (or that
    /// the leaf's AQM evicts) go to `drops`. A class index that is out of
    /// range or not a leaf is a caller bug; the packet is dropped as
    /// `Flushed` rather than panicking.
    #[inline]
    pub fn enqueue(&mut self, class: u32, packet: Packet, now: u64, drops: &mut Drops) {
        self.enqueue_with(class, packet, now, drops, true);
    }

    /// [`Htb::enqueue`] without the pool's share rule: for packets that were
    /// queued already, moved from the tree this one replaces
    /// (`Shaper::migrate_into`), which the order of the move must not drop.
    pub fn requeue(&mut self, class: u32, packet: Packet, now: u64, drops: &mut Drops) {
        self.enqueue_with(class, packet, now, drops, false);
    }

    #[inline(always)]
    fn enqueue_with(
        &mut self,
        class: u32,
        packet: Packet,
        now: u64,
        drops: &mut Drops,
        share: bool,
    ) {
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
        let held = q.backlog().packets;
        let was_empty = held == 0;
        debug_assert_eq!(was_empty, self.hot[class as usize].prio_activity == 0);
        // Every leaf queues in one pool. A leaf may hold at most as many
        // packets as the pool has free, a dynamic threshold as switches
        // share a buffer (Choudhury and Hahne): one flooded leaf can take
        // half the pool, N of them a 1/(N+1) share each, and a leaf with a
        // short queue always finds room, so a flood toward one subscriber
        // cannot take the buffer of the others. Linux has no shared pool
        // (each qdisc has its own limit, bounded by memory); with the
        // default pool of 65,536 packets a leaf reaches half of it only
        // past every default limit (pfifo 1,000, fq_codel 10,240 packets).
        if share && held >= self.pool.capacity() - self.pool.in_use() {
            self.leaves[leaf].share_drops += 1;
            drops.push(packet, DropReason::BufferShare);
            return;
        }
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

    /// Classes in the tree: indexes `0..class_count()`.
    pub fn class_count(&self) -> u32 {
        self.classes
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
        assert!(class < self.classes, "class {class} out of range");
        let h = &self.hot[class as usize];
        let cold = &self.cold[class as usize];
        let s = self.slot[class as usize];
        let (bytes, packets, drops, backlog, lends, borrows) = if s & INNER == 0 {
            let leaf = &self.leaves[s as usize];
            let q = leaf.qdisc.stats();
            (
                q.bytes,
                q.packets,
                q.drops + leaf.share_drops,
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

    /// The tc id of class `class` (`major << 32 | minor`, as given in its
    /// spec). Panics if out of range, like slice indexing.
    pub fn class_id(&self, class: u32) -> u64 {
        assert!(class < self.classes, "class {class} out of range");
        self.cold[class as usize].id
    }

    /// Statistics of the leaf qdisc of `class`; None for inner classes.
    pub fn qdisc_stats(&self, class: u32) -> Option<QdiscStats> {
        let leaf = self.leaf_index(class)?;
        Some(self.leaves[leaf].qdisc.stats())
    }

    /// Empty every queue into `drops` (reason Flushed).
    pub fn flush(&mut self, drops: &mut Drops) {
        for leaf in 0..self.leaf_slots as usize {
            let class = self.leaf_class[leaf];
            if class != NIL {
                self.flush_leaf(class, leaf, drops);
            }
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

    /// Packets queued in class `class` (0 for an inner class).
    pub fn queued(&self, class: u32) -> u32 {
        self.leaf_index(class)
            .map_or(0, |leaf| self.leaves[leaf].qdisc.backlog().packets)
    }

    /// Class `class`'s buckets, or None when they are full at `now`: a new
    /// class of the same rates starts full, so there is nothing to carry.
    pub fn buckets(&self, class: u32, now: u64) -> Option<Buckets> {
        if class >= self.classes {
            return None;
        }
        let h = &self.hot[class as usize];
        let diff = credit(now, h.t_c);
        let full = h.tokens.saturating_add(diff) >= h.buffer
            && h.ctokens.saturating_add(diff) >= h.cbuffer;
        (!full).then_some(Buckets {
            tokens: h.tokens,
            ctokens: h.ctokens,
            t_c: h.t_c,
        })
    }

    /// Give class `class` the buckets of its namesake in the tree this one
    /// replaces (clamped to its own bucket sizes, which a change of burst
    /// may have made smaller), and the mode they mean at `now`, as
    /// [`Htb::change_class`] re-evaluates it. For a tree that holds no
    /// packets yet (`Shaper::migrate_into` carries buckets first). A class
    /// out of range is left alone.
    pub fn carry_buckets(&mut self, class: u32, b: Buckets, now: u64) {
        self.now = self.now.max(now);
        if class >= self.classes {
            return;
        }
        let h = &mut self.hot[class as usize];
        h.tokens = b.tokens.min(h.buffer);
        h.ctokens = b.ctokens.min(h.cbuffer);
        h.t_c = b.t_c;
        let (mode, wait) = class_mode(h, credit(now, h.t_c));
        // Carried before any packet reaches the tree, so the class hangs in
        // no row or feed yet, and arriving in CantSend is not an overlimit
        // of its own (`set_mode` would count one).
        debug_assert_eq!(h.prio_activity, 0, "buckets are carried into an idle class");
        h.mode = mode;
        self.wait.remove(class);
        if mode != Mode::CanSend {
            self.wait.push(class, now.saturating_add(wait));
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
        if class >= self.classes {
            return Err(SpecError::BadParent { class });
        }
        let (h, cold) = (&self.hot[class as usize], &self.cold[class as usize]);
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
        // Spare and vacated entries past `classes` are tagged INNER | NIL
        // (`build.rs`, `edit.rs`), so the slot alone says "not a leaf":
        // no second bound check on the packet path.
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
#[cfg(test)]
mod tests_edit;
