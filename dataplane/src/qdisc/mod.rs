//! Leaf qdiscs: the queues that hang under HTB leaf classes.
//!
//! Each kind keeps its parameters, state and statistics apart (as Linux's
//! `codel.h` does) and all of them store packets in the tree's shared
//! [`PacketPool`] through [`PacketList`](crate::pool::PacketList)s, so no kind allocates per packet.
//!
//! Contract every kind honours:
//! - `enqueue` takes ownership of the packet; it is either queued or pushed
//!   to `drops` (with a reason). It may also drop *other* queued packets
//!   (FQ-CoDel's fattest-flow drop) — those go to `drops` too.
//! - `dequeue` returns the next packet to send, or `None` when empty. Packets
//!   an AQM drops on the way out go to `drops`. A packet to be CE-marked is
//!   returned with [`crate::packet::flags::MARK_CE`] set.
//! - `backlog()` is exact after every call.
//! - `flush` empties the queue into `drops` with [`DropReason::Flushed`].
//! - Nothing reads a clock; `now` is nanoseconds.

pub mod codel;
pub mod fifo;
pub mod fq_codel;
pub mod red;
pub mod sfq;

use crate::packet::{DropReason, Drops, Packet};
use crate::pool::{prefetch_range, Arena, PacketPool};

pub use fifo::Fifo;
pub use fq_codel::FqCodel;
pub use red::Red;
pub use sfq::Sfq;

/// Bytes and packets waiting in a queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backlog {
    pub packets: u32,
    pub bytes: u64,
}

/// pfifo / bfifo parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FifoLimit {
    /// pfifo: at most this many packets (tc default: txqueuelen, 1000).
    Packets(u32),
    /// bfifo: at most this many bytes.
    Bytes(u64),
}

/// SFQ parameters (tc-sfq(8); Linux defaults in [`SfqParams::default`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SfqParams {
    /// Re-seed the flow hash this often (ns); 0 = never (Linux default).
    pub perturb_ns: u64,
    /// Bytes a flow may send per round (default: 1514, the Ethernet MTU
    /// frame; Linux uses the device MTU).
    pub quantum: u32,
    /// Packets in the whole qdisc (default 127).
    pub limit: u32,
    /// Hash buckets, a power of two up to 65536 (default 1024).
    pub divisor: u32,
    /// Most flows active at once (default 128; at most 65535).
    pub flows: u32,
    /// Packets per flow (default 127).
    pub depth: u32,
}

impl Default for SfqParams {
    fn default() -> Self {
        SfqParams {
            perturb_ns: 0,
            quantum: 1514,
            limit: 127,
            divisor: 1024,
            flows: 128,
            depth: 127,
        }
    }
}

/// RED parameters as tc-red(8) reads them, already resolved (tc's defaults
/// applied by the config layer). Byte quantities are of the *average* queue
/// except `limit`, which bounds the real queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RedParams {
    /// Average queue (bytes) below which nothing is dropped.
    pub min: u32,
    /// Average queue (bytes) at and above which every packet is dropped
    /// (or marked), and at which the early probability reaches `probability`.
    pub max: u32,
    /// Hard limit on the real queue, bytes.
    pub limit: u32,
    /// Average packet size, bytes (sets the EWMA weight with `burst`, and
    /// the idle-time decay with `bandwidth`).
    pub avpkt: u32,
    /// Burst the average should tolerate, in packets of `avpkt` (sets the
    /// EWMA weight as tc's `tc_red_eval_ewma` does).
    pub burst: u32,
    /// Max early drop probability at `max`, as a fraction of 2^32
    /// (0.02 → 0.02 * 2^32).
    pub probability: u32,
    /// Mark ECT packets CE instead of dropping them.
    pub ecn: bool,
    /// With `ecn`: above `max`, drop even ECT packets.
    pub harddrop: bool,
    /// Adaptive RED: adjust `probability` every 500 ms to keep the average
    /// between min and max (Floyd's ARED), within 1%..50%.
    pub adaptive: bool,
    /// Link rate (bytes/s) used to age the average during idle periods
    /// (tc's `bandwidth`; default 10 Mbit/s, i.e. 1_250_000).
    pub bandwidth: u64,
}

/// FQ-CoDel parameters (tc-fq_codel(8), RFC 8290). Linux defaults in
/// [`FqCodelParams::default`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FqCodelParams {
    /// Packets in the whole qdisc (default 10240).
    pub limit: u32,
    /// Flow queues (default 1024).
    pub flows: u32,
    /// DRR quantum in bytes (default 1514).
    pub quantum: u32,
    /// CoDel target sojourn (default 5 ms).
    pub target_ns: u64,
    /// CoDel interval (default 100 ms).
    pub interval_ns: u64,
    /// Mark ECT packets CE instead of dropping them (default on).
    pub ecn: bool,
    /// Sojourn above which ECT packets are CE-marked right away (off by
    /// default). tc's `ce_threshold`.
    pub ce_threshold_ns: Option<u64>,
    /// Bytes of queued packets before dropping from the fattest flow
    /// (default 32 MiB). weir counts each packet's frame length.
    pub memory_limit: u64,
    /// Most packets dropped from the fattest flow in one go when over a
    /// limit (default 64).
    pub drop_batch_size: u32,
}

impl Default for FqCodelParams {
    fn default() -> Self {
        FqCodelParams {
            limit: 10240,
            flows: 1024,
            quantum: 1514,
            target_ns: 5_000_000,
            interval_ns: 100_000_000,
            ecn: true,
            ce_threshold_ns: None,
            memory_limit: 32 << 20,
            drop_batch_size: 64,
        }
    }
}

/// A leaf qdisc's kind and parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QdiscParams {
    Fifo(FifoLimit),
    Sfq(SfqParams),
    Red(RedParams),
    FqCodel(FqCodelParams),
}

impl QdiscParams {
    /// The tc name of the kind.
    pub fn kind(&self) -> &'static str {
        match self {
            QdiscParams::Fifo(FifoLimit::Packets(_)) => "pfifo",
            QdiscParams::Fifo(FifoLimit::Bytes(_)) => "bfifo",
            QdiscParams::Sfq(_) => "sfq",
            QdiscParams::Red(_) => "red",
            QdiscParams::FqCodel(_) => "fq_codel",
        }
    }
}

/// RED's own counters. Linux keeps the same five; `tc -s qdisc show`
/// prints them folded as [`RedStats::early`] (all RED drops), `pdrop`,
/// `other` and [`RedStats::marked`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RedStats {
    /// Probabilistic drops (average between min and max).
    pub prob_drop: u64,
    /// Forced drops (average at or above max, or harddrop).
    pub forced_drop: u64,
    /// Probabilistic CE marks.
    pub prob_mark: u64,
    /// Forced CE marks.
    pub forced_mark: u64,
    /// Drops because the real queue hit `limit`.
    pub pdrop: u64,
}

impl RedStats {
    /// tc's `early`: every drop RED decided (probabilistic + forced).
    pub fn early(&self) -> u64 {
        self.prob_drop + self.forced_drop
    }

    /// tc's `marked`: every CE mark (probabilistic + forced).
    pub fn marked(&self) -> u64 {
        self.prob_mark + self.forced_mark
    }

    /// tc's `other`: drops for other reasons (none in weir's RED).
    pub fn other(&self) -> u64 {
        0
    }

    /// The qdisc's overlimits: every early or forced decision, mark or drop,
    /// as Linux counts them.
    pub fn overlimits(&self) -> u64 {
        self.early() + self.marked()
    }
}

/// FQ-CoDel's own counters, as `tc -s qdisc show` prints them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FqCodelStats {
    pub maxpacket: u32,
    pub drop_overlimit: u64,
    pub new_flow_count: u64,
    pub ecn_mark: u64,
    pub new_flows_len: u32,
    pub old_flows_len: u32,
    pub ce_mark: u64,
    pub memory_usage: u64,
    pub drop_overmemory: u64,
}

/// Kind-specific statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KindStats {
    Fifo,
    Sfq,
    Red(RedStats),
    FqCodel(FqCodelStats),
}

/// Per-qdisc statistics, as `tc -s qdisc show` has them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QdiscStats {
    /// Bytes and packets dequeued (sent).
    pub bytes: u64,
    pub packets: u64,
    /// Packets dropped, whatever the reason.
    pub drops: u64,
    pub overlimits: u64,
    pub backlog: Backlog,
    pub kind: KindStats,
}

/// `repr(u8)`: the tag is one byte at the start and every kind's state
/// follows at a fixed offset, so the hot fields of a kind's state land in
/// known cache lines of an HTB leaf (see `FqCodel`'s field order).
#[derive(Debug)]
#[repr(u8)]
enum Kind {
    Fifo(Fifo),
    Sfq(Sfq),
    Red(Red),
    FqCodel(FqCodel),
}

/// A leaf qdisc of any kind. Enum dispatch: no vtable, no box per leaf.
///
/// `repr(C)`, counters first: an HTB leaf puts its DRR state and these
/// counters in one cache line, which a dequeue writes anyway, and the
/// kind's state starts on the next.
#[derive(Debug)]
#[repr(C)]
pub struct Qdisc {
    bytes: u64,
    packets: u64,
    drops: u64,
    kind: Kind,
}

impl Qdisc {
    /// `seed` seeds the kind's hash perturbation / RNG, so runs are
    /// reproducible when the caller wants them to be.
    pub fn new(params: &QdiscParams, seed: u64) -> Qdisc {
        Qdisc::new_in(params, seed, &mut Arena::heap())
    }

    /// [`Qdisc::new`] with the kind's large tables (FQ-CoDel's flows)
    /// carved from the tree's `arena`.
    pub(crate) fn new_in(params: &QdiscParams, seed: u64, arena: &mut Arena) -> Qdisc {
        let kind = match params {
            QdiscParams::Fifo(limit) => Kind::Fifo(Fifo::new(*limit)),
            QdiscParams::Sfq(p) => Kind::Sfq(Sfq::new(p, seed)),
            QdiscParams::Red(p) => Kind::Red(Red::new(p, seed)),
            QdiscParams::FqCodel(p) => Kind::FqCodel(FqCodel::new_in(p, seed, arena)),
        };
        Qdisc {
            kind,
            bytes: 0,
            packets: 0,
            drops: 0,
        }
    }

    /// Bytes of arena [`Qdisc::new_in`] takes for `params` (an upper bound).
    pub(crate) fn arena_bytes(params: &QdiscParams) -> usize {
        match params {
            QdiscParams::FqCodel(p) => FqCodel::arena_bytes(p),
            QdiscParams::Fifo(_) | QdiscParams::Sfq(_) | QdiscParams::Red(_) => 0,
        }
    }

    #[inline]
    pub fn enqueue(&mut self, pool: &mut PacketPool, packet: Packet, now: u64, drops: &mut Drops) {
        let before = drops.len();
        match &mut self.kind {
            Kind::Fifo(q) => q.enqueue(pool, packet, now, drops),
            Kind::Sfq(q) => q.enqueue(pool, packet, now, drops),
            Kind::Red(q) => q.enqueue(pool, packet, now, drops),
            Kind::FqCodel(q) => q.enqueue(pool, packet, now, drops),
        }
        // Only written when something was dropped: an enqueue then leaves
        // the counters' cache line alone.
        let dropped = drops.len() - before;
        if dropped != 0 {
            self.drops += dropped as u64;
        }
    }

    #[inline]
    pub fn dequeue(
        &mut self,
        pool: &mut PacketPool,
        now: u64,
        drops: &mut Drops,
    ) -> Option<Packet> {
        let before = drops.len();
        let packet = match &mut self.kind {
            Kind::Fifo(q) => q.dequeue(pool, now, drops),
            Kind::Sfq(q) => q.dequeue(pool, now, drops),
            Kind::Red(q) => q.dequeue(pool, now, drops),
            Kind::FqCodel(q) => q.dequeue(pool, now, drops),
        };
        self.drops += (drops.len() - before) as u64;
        if let Some(p) = &packet {
            self.bytes += u64::from(p.len);
            self.packets += 1;
        }
        packet
    }

    #[inline]
    pub fn backlog(&self) -> Backlog {
        match &self.kind {
            Kind::Fifo(q) => q.backlog(),
            Kind::Sfq(q) => q.backlog(),
            Kind::Red(q) => q.backlog(),
            Kind::FqCodel(q) => q.backlog(),
        }
    }

    /// Empty the queue into `drops` ([`DropReason::Flushed`]).
    pub fn flush(&mut self, pool: &mut PacketPool, drops: &mut Drops) {
        let before = drops.len();
        match &mut self.kind {
            Kind::Fifo(q) => q.flush(pool, drops),
            Kind::Sfq(q) => q.flush(pool, drops),
            Kind::Red(q) => q.flush(pool, drops),
            Kind::FqCodel(q) => q.flush(pool, drops),
        }
        self.drops += (drops.len() - before) as u64;
        debug_assert!(drops.as_slice()[before..]
            .iter()
            .all(|d| d.reason == DropReason::Flushed));
    }

    pub fn kind_name(&self) -> &'static str {
        match &self.kind {
            Kind::Fifo(q) => q.kind_name(),
            Kind::Sfq(_) => "sfq",
            Kind::Red(_) => "red",
            Kind::FqCodel(_) => "fq_codel",
        }
    }

    pub fn stats(&self) -> QdiscStats {
        let (overlimits, kind) = match &self.kind {
            Kind::Fifo(_) => (0, KindStats::Fifo),
            Kind::Sfq(_) => (0, KindStats::Sfq),
            Kind::Red(q) => {
                let s = q.stats();
                (s.overlimits(), KindStats::Red(s))
            }
            Kind::FqCodel(q) => (0, KindStats::FqCodel(q.stats())),
        };
        QdiscStats {
            bytes: self.bytes,
            packets: self.packets,
            drops: self.drops,
            overlimits,
            backlog: self.backlog(),
            kind,
        }
    }
}

/// Where the kind (its tag) starts in a [`Qdisc`].
const KIND_AT: usize = std::mem::offset_of!(Qdisc, kind);
/// Where FQ-CoDel's state starts: after the one-byte tag, at its alignment
/// (`Kind` is `repr(u8)`: each variant is laid out as a `repr(C)` struct
/// of the tag and the payload).
const FQ_CODEL_AT: usize = KIND_AT + std::mem::align_of::<FqCodel>();
/// End of what an FQ-CoDel enqueue / dequeue reads, from the qdisc's start.
const ENQUEUE_END: usize = FQ_CODEL_AT + fq_codel::ENQUEUE_STATE_END;
const DEQUEUE_END: usize = FQ_CODEL_AT + fq_codel::DEQUEUE_STATE_END;

/// Prefetch hooks for the batched HTB paths (`Htb::enqueue_batch` /
/// `dequeue_batch`): only FQ-CoDel has per-flow state worth warming.
impl Qdisc {
    /// Start loading the lines of this qdisc an enqueue reads: the kind tag
    /// and FQ-CoDel's state up to its enqueue-only fields (the span is
    /// FQ-CoDel's, the kind the batched paths are tuned for; for the other
    /// kinds it is a hint that covers most of their state). Computed from
    /// constants: reading the tag first would wait for the very miss the
    /// prefetch is meant to start.
    #[inline]
    pub(crate) fn prefetch_enqueue_state(&self) {
        let base = (self as *const Qdisc).cast::<u8>();
        prefetch_range(base.wrapping_add(KIND_AT), base.wrapping_add(ENQUEUE_END));
    }

    /// Start loading the lines of this qdisc a dequeue reads: the counters,
    /// the kind tag and FQ-CoDel's state up to `maxpacket` (as above).
    #[inline]
    pub(crate) fn prefetch_dequeue_state(&self) {
        let base = (self as *const Qdisc).cast::<u8>();
        prefetch_range(base, base.wrapping_add(DEQUEUE_END));
    }

    /// Offsets from the start of this qdisc of: its kind state (the tag),
    /// the end of what an enqueue reads, the end of what a dequeue reads
    /// (what the prefetches above cover).
    #[cfg(test)]
    pub(crate) fn hot_spans(&self) -> (usize, usize, usize) {
        let base = self as *const Qdisc as usize;
        let kind = std::ptr::addr_of!(self.kind) as usize - base;
        match &self.kind {
            Kind::FqCodel(q) => {
                let state = q as *const FqCodel as usize - base;
                assert_eq!(state, KIND_AT + std::mem::align_of::<FqCodel>());
                (
                    kind,
                    state + fq_codel::ENQUEUE_STATE_END,
                    state + fq_codel::DEQUEUE_STATE_END,
                )
            }
            _ => (
                kind,
                std::mem::size_of::<Qdisc>(),
                std::mem::size_of::<Qdisc>(),
            ),
        }
    }

    #[inline]
    pub(crate) fn prefetch_enqueue(&self, hash: u32) {
        if let Kind::FqCodel(q) = &self.kind {
            q.prefetch_enqueue(hash);
        }
    }

    #[inline]
    pub(crate) fn prefetch_dequeue_flow(&self) {
        if let Kind::FqCodel(q) = &self.kind {
            q.prefetch_dequeue_flow();
        }
    }

    #[inline]
    pub(crate) fn prefetch_dequeue_packet(&self, pool: &PacketPool) {
        if let Kind::FqCodel(q) = &self.kind {
            q.prefetch_dequeue_packet(pool);
        }
    }
}
