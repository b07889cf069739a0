//! FQ-CoDel (RFC 8290, Linux `sch_fq_codel.c`): flows hashed into `flows`
//! queues, each a FIFO managed by its own CoDel state, served by deficit
//! round robin with priority for flows that have just become active.
//!
//! - A packet goes to flow `hash(5-tuple, perturbation) % flows`. A flow
//!   that was idle joins the tail of `new_flows` with `deficit = quantum`.
//! - Dequeue serves `new_flows` first, then `old_flows`. A flow whose
//!   deficit is spent gets another quantum and moves to the tail of
//!   `old_flows`. A flow found empty is moved from `new_flows` to the tail
//!   of `old_flows` when that list is not empty (so a flow cannot keep its
//!   priority by sending one packet per round), otherwise it is removed.
//! - CoDel runs per flow at dequeue; its "more than one mtu queued" check
//!   looks at the whole qdisc's backlog, as Linux does.
//! - Over `limit` packets or `memory_limit` bytes, enqueue drops from the
//!   head of the fattest flow (by bytes) until half its backlog is gone or
//!   `drop_batch_size` packets were dropped.
//!
//! Flow lists are intrusive (an index per flow), the flow table is
//! allocated once in [`FqCodel::new`]: nothing is allocated per packet.
//! Memory: 64 bytes per flow plus 4 bytes of backlog index, 68 KiB for the
//! default 1024 flows (Linux's flow is 64 bytes too).
//!
//! The backlog index (Linux's `backlogs[]`, which it updates on every
//! packet) is brought up to date only when it is read, on overlimit: a
//! packet just marks its flow's group of the index stale, in a word of the
//! qdisc's first cache line. With many qdiscs (100,000 classes) the index
//! is never in cache, and writing it cost a cache miss per packet.

use super::codel::{self, CodelParams, CodelQueue, CodelStats, CodelVars};
use super::sfq::{flow_bucket, splitmix64};
use super::{Backlog, FqCodelParams, FqCodelStats};
use crate::packet::{DropReason, Drops, Packet};
use crate::pool::{prefetch, table_bytes, Arena, PacketList, PacketPool, Table};

/// `Flow::next` of a flow on no list.
const UNLINKED: u32 = u32::MAX;
/// `Flow::next` of the last flow of a list.
const LAST: u32 = u32::MAX - 1;
/// Linux's floor on the DRR quantum.
const MIN_QUANTUM: u32 = 256;
/// Linux's bounds on the number of flows.
const MAX_FLOWS: u32 = 65536;

/// One flow queue. 64 bytes: queue 24, CoDel state 32, deficit, link.
#[derive(Clone, Copy, Debug)]
struct Flow {
    queue: PacketList,
    cvars: CodelVars,
    /// Bytes this flow may still send in the current round.
    deficit: i32,
    /// Next flow on the list this flow is on, [`LAST`], or [`UNLINKED`].
    next: u32,
}

impl Flow {
    const IDLE: Flow = Flow {
        queue: PacketList::new(),
        cvars: CodelVars::new(),
        deficit: 0,
        next: UNLINKED,
    };
}

/// A FIFO of flow indices threaded through `Flow::next`.
#[derive(Clone, Copy, Debug)]
struct FlowList {
    head: u32,
    tail: u32,
    len: u32,
}

impl FlowList {
    const EMPTY: FlowList = FlowList {
        head: LAST,
        tail: LAST,
        len: 0,
    };

    fn front(&self) -> Option<u32> {
        (self.len > 0).then_some(self.head)
    }

    fn push_back(&mut self, flows: &mut [Flow], idx: u32) {
        flows[idx as usize].next = LAST;
        if self.len == 0 {
            self.head = idx;
        } else {
            flows[self.tail as usize].next = idx;
        }
        self.tail = idx;
        self.len += 1;
    }

    /// Unlink the head flow (leaving it marked [`UNLINKED`]).
    fn pop_front(&mut self, flows: &mut [Flow]) -> Option<u32> {
        let idx = self.front()?;
        let flow = &mut flows[idx as usize];
        self.head = flow.next;
        flow.next = UNLINKED;
        self.len -= 1;
        if self.len == 0 {
            self.head = LAST;
            self.tail = LAST;
        }
        Some(idx)
    }
}

/// A flow seen through CoDel's eyes: popping keeps the flow's and the
/// qdisc's counters exact; the mtu check sees the qdisc-wide backlog.
struct FlowQueue<'a> {
    queue: &'a mut PacketList,
    pool: &'a mut PacketPool,
    backlog: &'a mut Backlog,
}

impl CodelQueue for FlowQueue<'_> {
    #[inline]
    fn pop(&mut self) -> Option<Packet> {
        let p = self.queue.pop_front(self.pool)?;
        self.backlog.packets -= 1;
        self.backlog.bytes -= u64::from(p.len);
        Some(p)
    }

    #[inline]
    fn backlog_bytes(&self) -> u64 {
        self.backlog.bytes
    }
}

/// A flow's weight in the fattest-flow scan: its bytes, saturated to u32,
/// and at least 1 while it holds packets (so zero-length frames can never
/// make a busy flow look empty).
#[inline]
fn rank(queue: &PacketList) -> u32 {
    let bytes = queue.bytes().max(u64::from(!queue.is_empty()));
    bytes.min(u64::from(u32::MAX)) as u32
}

/// Field order is fixed (`repr(C)`) so that, in an HTB leaf, what each
/// operation reads sits in as few cache lines as possible (with 100,000
/// classes none of them is in cache, and each line is a miss):
/// - what both enqueue and dequeue read — the flow table, the backlog, the
///   stale bits, the quantum — first, in the line after the leaf's DRR
///   state and counters (the qdisc's kind tag shares it);
/// - then the flow lists and what only enqueue reads (perturbation,
///   limits, `new_flow_count`): an enqueue reads two lines of the leaf;
/// - then what only dequeue reads: CoDel's parameters and, first of its
///   counters, `maxpacket` (written only when it grows, so the line stays
///   clean): a dequeue reads the leaf's first four lines;
/// - last what only the overlimit path reads.
///
/// `ENQUEUE_STATE_END` and `DEQUEUE_STATE_END` mark the ends for the
/// batched paths' prefetches; a test in `htb` checks the lines.
#[derive(Debug)]
#[repr(C)]
pub struct FqCodel {
    flows: Table<Flow>,
    backlog: Backlog,
    /// Bit g set: `fat_index` entries of flows `g << group_shift ..` may be
    /// out of date (those flows were enqueued to or served since the last
    /// refresh).
    stale: u64,
    /// log2 of the flows per `stale` bit: 64 bits cover the table.
    group_shift: u32,
    quantum: i32,
    new_flows: FlowList,
    old_flows: FlowList,
    limit: u32,
    drop_batch_size: u32,
    perturbation: u64,
    memory_limit: u64,
    new_flow_count: u64,
    cparams: CodelParams,
    cstats: CodelStats,
    drop_overlimit: u64,
    drop_overmemory: u64,
    /// Per-flow backlog bytes (saturated to u32; see [`rank`]), kept apart
    /// from the flow table so that the fattest-flow scan reads 4 bytes per
    /// flow (4 KiB for 1024 flows), as Linux's `backlogs[]`, instead of a
    /// cache line each. Exact only for the groups not marked `stale`.
    fat_index: Table<u32>,
}

/// Bytes from the start of an [`FqCodel`] that [`FqCodel::enqueue`] reads
/// (it reads from the start up to `new_flow_count`; see the field order).
/// Constants, so that a prefetch can cover them without reading anything.
pub(crate) const ENQUEUE_STATE_END: usize =
    std::mem::offset_of!(FqCodel, new_flow_count) + std::mem::size_of::<u64>();

/// Bytes from the start of an [`FqCodel`] that [`FqCodel::dequeue`] reads
/// on its common path: up to `maxpacket`, the first of CoDel's counters
/// (`repr(C)`); the rest is read only when CoDel drops or marks.
pub(crate) const DEQUEUE_STATE_END: usize =
    std::mem::offset_of!(FqCodel, cstats) + std::mem::size_of::<u32>();

impl FqCodel {
    pub fn new(p: &FqCodelParams, seed: u64) -> FqCodel {
        FqCodel::new_in(p, seed, &mut Arena::heap())
    }

    /// [`FqCodel::new`] with the flow table carved from `arena`.
    pub(crate) fn new_in(p: &FqCodelParams, seed: u64, arena: &mut Arena) -> FqCodel {
        let nflows = p.flows.clamp(1, MAX_FLOWS) as usize;
        let mut s = seed;
        FqCodel {
            flows: Table::from_fn(arena, nflows, |_| Flow::IDLE),
            fat_index: Table::from_fn(arena, nflows, |_| 0),
            stale: 0,
            group_shift: nflows.div_ceil(64).next_power_of_two().trailing_zeros(),
            new_flows: FlowList::EMPTY,
            old_flows: FlowList::EMPTY,
            backlog: Backlog::default(),
            limit: p.limit,
            memory_limit: p.memory_limit,
            quantum: p.quantum.clamp(MIN_QUANTUM, i32::MAX as u32) as i32,
            drop_batch_size: p.drop_batch_size.max(1),
            cparams: CodelParams {
                target: p.target_ns,
                interval: p.interval_ns,
                mtu: codel::DEFAULT_MTU,
                ecn: p.ecn,
                ce_threshold: p.ce_threshold_ns,
            },
            cstats: CodelStats::default(),
            perturbation: splitmix64(&mut s),
            drop_overlimit: 0,
            drop_overmemory: 0,
            new_flow_count: 0,
        }
    }

    /// Bytes of arena [`FqCodel::new_in`] takes with these parameters.
    pub(crate) fn arena_bytes(p: &FqCodelParams) -> usize {
        let nflows = p.flows.clamp(1, MAX_FLOWS) as usize;
        table_bytes::<Flow>(nflows) + table_bytes::<u32>(nflows)
    }

    /// Which flow queue a packet with this flow hash goes to.
    pub fn flow_of(&self, hash: u32) -> u32 {
        flow_bucket(hash, self.perturbation, self.flows.len() as u32)
    }

    #[inline]
    pub fn enqueue(&mut self, pool: &mut PacketPool, packet: Packet, now: u64, drops: &mut Drops) {
        let idx = self.flow_of(packet.hash);
        let len = packet.len;
        let flow = &mut self.flows[idx as usize];
        if let Err(p) = flow.queue.push_back_at(pool, packet, now) {
            drops.push(p, DropReason::NoBuffer);
            return;
        }
        self.stale |= 1 << (idx >> self.group_shift);
        self.backlog.packets += 1;
        self.backlog.bytes += u64::from(len);
        if flow.next == UNLINKED {
            flow.deficit = self.quantum;
            self.new_flows.push_back(&mut self.flows, idx);
            self.new_flow_count += 1;
        }
        // weir counts frame bytes where Linux counts skb truesize.
        let memory_limited = self.backlog.bytes > self.memory_limit;
        if self.backlog.packets <= self.limit && !memory_limited {
            return;
        }
        let reason = if memory_limited {
            DropReason::FqCodelOverMemory
        } else {
            DropReason::FqCodelOverlimit
        };
        let dropped = self.drop_from_fattest(pool, drops, reason);
        self.drop_overlimit += u64::from(dropped);
        if memory_limited {
            self.drop_overmemory += u64::from(dropped);
        }
    }

    /// Drop from the head of the flow with the most bytes queued until half
    /// of its backlog is gone or `drop_batch_size` packets were dropped.
    /// Finding the flow scans the whole backlog index (4 bytes per flow),
    /// lowest index first, and the first of equal flows wins, as Linux's
    /// `fq_codel_drop`: cheaper than keeping flows sorted on every packet,
    /// and amortised over the batch. Returns how many packets were dropped.
    #[inline(never)]
    fn drop_from_fattest(
        &mut self,
        pool: &mut PacketPool,
        drops: &mut Drops,
        why: DropReason,
    ) -> u32 {
        self.refresh_index();
        let mut fattest = 0;
        let mut most = 0;
        for (i, &b) in self.fat_index.iter().enumerate() {
            if b > most {
                most = b;
                fattest = i;
            }
        }
        let threshold = u64::from(most / 2);
        let flow = &mut self.flows[fattest];
        let mut dropped = 0;
        let mut bytes = 0u64;
        while dropped < self.drop_batch_size {
            let Some(p) = flow.queue.pop_front(pool) else {
                break;
            };
            bytes += u64::from(p.len);
            dropped += 1;
            drops.push(p, why);
            if bytes >= threshold {
                break;
            }
        }
        // Tell this flow's CoDel to signal harder too.
        flow.cvars.add_count(dropped);
        self.fat_index[fattest] = rank(&flow.queue);
        self.backlog.packets -= dropped;
        self.backlog.bytes -= bytes;
        dropped
    }

    /// Bring the stale groups of `fat_index` up to date from the flows.
    /// Between two overlimits only the flows that packets went to or came
    /// from are re-read; under a flood that triggers overlimit every few
    /// packets, that is a few flows, not the table.
    fn refresh_index(&mut self) {
        let n = self.flows.len();
        let mut stale = std::mem::take(&mut self.stale);
        while stale != 0 {
            let group = stale.trailing_zeros() as usize;
            stale &= stale - 1;
            let start = (group << self.group_shift).min(n);
            let end = ((group + 1) << self.group_shift).min(n);
            for (rank_of, flow) in self.fat_index[start..end]
                .iter_mut()
                .zip(&self.flows[start..end])
            {
                *rank_of = rank(&flow.queue);
            }
        }
    }

    #[inline]
    pub fn dequeue(
        &mut self,
        pool: &mut PacketPool,
        now: u64,
        drops: &mut Drops,
    ) -> Option<Packet> {
        loop {
            let (from_new, idx) = match self.new_flows.front() {
                Some(i) => (true, i),
                None => (false, self.old_flows.front()?),
            };
            let flow = &mut self.flows[idx as usize];
            if flow.deficit <= 0 {
                flow.deficit += self.quantum;
                self.move_head_to_old(from_new);
                continue;
            }
            self.stale |= 1 << (idx >> self.group_shift);
            let mut queue = FlowQueue {
                queue: &mut flow.queue,
                pool,
                backlog: &mut self.backlog,
            };
            let packet = codel::dequeue(
                &mut queue,
                &mut flow.cvars,
                &self.cparams,
                &mut self.cstats,
                now,
                drops,
            );
            match packet {
                Some(p) => {
                    flow.deficit -= p.len.min(i32::MAX as u32) as i32;
                    return Some(p);
                }
                None => {
                    // Empty. A new flow goes through old_flows once more
                    // (so it cannot stay "new" forever by sending one packet
                    // per round); an old one leaves the lists.
                    if from_new && self.old_flows.len > 0 {
                        self.move_head_to_old(true);
                    } else if from_new {
                        self.new_flows.pop_front(&mut self.flows);
                    } else {
                        self.old_flows.pop_front(&mut self.flows);
                    }
                }
            }
        }
    }

    fn move_head_to_old(&mut self, from_new: bool) {
        let list = if from_new {
            &mut self.new_flows
        } else {
            &mut self.old_flows
        };
        if let Some(idx) = list.pop_front(&mut self.flows) {
            self.old_flows.push_back(&mut self.flows, idx);
        }
    }

    pub fn backlog(&self) -> Backlog {
        self.backlog
    }

    /// Start loading what [`FqCodel::enqueue`] of a packet with this flow
    /// hash touches beyond the qdisc itself: its flow. A hint only (see
    /// [`crate::pool::prefetch`]).
    #[inline]
    pub(crate) fn prefetch_enqueue(&self, hash: u32) {
        let idx = self.flow_of(hash) as usize;
        if let Some(flow) = self.flows.get(idx) {
            prefetch(flow);
        }
    }

    /// The flow [`FqCodel::dequeue`] looks at first.
    #[inline]
    fn next_flow(&self) -> Option<&Flow> {
        let idx = self.new_flows.front().or(self.old_flows.front())?;
        self.flows.get(idx as usize)
    }

    /// Start loading the flow the next dequeue serves first.
    #[inline]
    pub(crate) fn prefetch_dequeue_flow(&self) {
        if let Some(flow) = self.next_flow() {
            prefetch(flow);
        }
    }

    /// Start loading that flow's head packet (after
    /// [`FqCodel::prefetch_dequeue_flow`] had time to bring the flow in).
    #[inline]
    pub(crate) fn prefetch_dequeue_packet(&self, pool: &PacketPool) {
        if let Some(flow) = self.next_flow() {
            pool.prefetch_head(&flow.queue);
        }
    }

    pub fn flush(&mut self, pool: &mut PacketPool, drops: &mut Drops) {
        for flow in self.flows.iter_mut() {
            while let Some(p) = flow.queue.pop_front(pool) {
                drops.push(p, DropReason::Flushed);
            }
            *flow = Flow::IDLE;
        }
        self.fat_index.fill(0);
        self.stale = 0;
        self.new_flows = FlowList::EMPTY;
        self.old_flows = FlowList::EMPTY;
        self.backlog = Backlog::default();
    }

    pub fn stats(&self) -> FqCodelStats {
        FqCodelStats {
            maxpacket: self.cstats.maxpacket,
            drop_overlimit: self.drop_overlimit,
            new_flow_count: self.new_flow_count,
            ecn_mark: self.cstats.ecn_mark,
            new_flows_len: self.new_flows.len,
            old_flows_len: self.old_flows.len,
            ce_mark: self.cstats.ce_mark,
            memory_usage: self.backlog.bytes,
            drop_overmemory: self.drop_overmemory,
        }
    }

    /// Packets CoDel dropped at dequeue (not in tc's fq_codel xstats, which
    /// fold them into the qdisc's drops; kept for telemetry and tests).
    pub fn codel_drops(&self) -> u64 {
        self.cstats.drop_count
    }

    /// Packets and bytes queued in one flow queue.
    pub fn flow_backlog(&self, flow: u32) -> Backlog {
        self.flows
            .get(flow as usize)
            .map(|f| Backlog {
                packets: f.queue.len(),
                bytes: f.queue.bytes(),
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::Frame;
    use proptest::prelude::*;

    #[test]
    fn flow_fits_a_cache_line() {
        assert!(std::mem::size_of::<Flow>() <= 64);
    }

    fn pkt(addr: u64, hash: u32, len: u32) -> Packet {
        Packet::new(Frame { addr, len }, hash)
    }

    /// A hash for each flow index in `flows`, found by trying hashes.
    fn hashes_for(q: &FqCodel, flows: &[u32]) -> Vec<u32> {
        flows
            .iter()
            .map(|&f| (0u32..).find(|&h| q.flow_of(h) == f).unwrap())
            .collect()
    }

    #[test]
    fn overlimit_drops_from_the_flow_that_is_fattest_now() {
        // 1024 flows: 16 flows share a stale bit. Flows 3 and 5 share a
        // group, 700 is in another.
        let params = FqCodelParams {
            limit: 30,
            drop_batch_size: 4,
            ..FqCodelParams::default()
        };
        let mut q = FqCodel::new(&params, 1);
        let h = hashes_for(&q, &[3, 5, 700, 900]);
        let mut pool = PacketPool::new(100);
        let mut drops = Drops::default();
        let mut addr = 0;
        let mut put = |q: &mut FqCodel, pool: &mut PacketPool, drops: &mut Drops, f: usize| {
            addr += 1;
            q.enqueue(pool, pkt(addr, h[f], 100), 0, drops);
        };
        // Flow 3: 12 packets, flow 5: 10, flow 700: 8 (30, the limit).
        for _ in 0..12 {
            put(&mut q, &mut pool, &mut drops, 0);
        }
        for _ in 0..10 {
            put(&mut q, &mut pool, &mut drops, 1);
        }
        for _ in 0..8 {
            put(&mut q, &mut pool, &mut drops, 2);
        }
        assert!(drops.is_empty());
        // Serve flow 3 (new, first in line) down to 6: it is no longer the
        // fattest, though its index entry was last written at 12 packets.
        for _ in 0..6 {
            let p = q.dequeue(&mut pool, 0, &mut drops).unwrap();
            assert_eq!(p.hash, h[0]);
        }
        for _ in 0..6 {
            put(&mut q, &mut pool, &mut drops, 2);
        }
        // 30 packets: 6 / 10 / 14. One more to flow 3 is over the limit:
        // flow 700 (14 packets, 1400 bytes) loses from its head until 700
        // bytes are gone, capped at drop_batch_size = 4.
        put(&mut q, &mut pool, &mut drops, 0);
        assert_eq!(drops.len(), 4);
        assert!(drops
            .as_slice()
            .iter()
            .all(|d| d.packet.hash == h[2] && d.reason == DropReason::FqCodelOverlimit));
        assert_eq!(q.stats().drop_overlimit, 4);
        assert_eq!(q.flow_backlog(700).packets, 10);
        assert_eq!(q.flow_backlog(3).packets, 7);
        // 27 packets. Flows 5 and 700 hold 10 each: with 4 more packets of
        // flow 900 (over the limit at the last), the tie goes against the
        // lower index, flow 5, which loses 4 (the batch; half is 5).
        for _ in 0..3 {
            put(&mut q, &mut pool, &mut drops, 3);
        }
        drops.clear();
        put(&mut q, &mut pool, &mut drops, 3);
        assert_eq!(drops.len(), 4);
        assert!(drops.as_slice().iter().all(|d| d.packet.hash == h[1]));
        assert_eq!(q.stats().drop_overlimit, 8);
        assert_eq!(q.backlog().packets, 27);
        assert_eq!(q.flow_backlog(5).packets, 6);
    }

    proptest! {
        /// Whatever the mix of enqueues and dequeues, an overlimit drop
        /// takes from the flow a full scan of the flows names, exactly as
        /// many packets as Linux's loop would (half its bytes, at most
        /// drop_batch_size, at least one), from its head.
        #[test]
        fn overlimit_victim_matches_a_full_scan(
            flows in prop_oneof![Just(1u32), Just(7), Just(64), Just(100), Just(1024)],
            batch in 1u32..6,
            ops in proptest::collection::vec((0u8..4, 0u32..12, 1u32..1600), 1..400),
        ) {
            let params = FqCodelParams {
                limit: 40,
                flows,
                drop_batch_size: batch,
                ..FqCodelParams::default()
            };
            let mut q = FqCodel::new(&params, 3);
            let mut pool = PacketPool::new(1000);
            let mut drops = Drops::default();
            let mut addr = 0;
            for (op, flow, len) in ops {
                if op == 0 {
                    q.dequeue(&mut pool, 0, &mut drops);
                    continue;
                }
                addr += 1;
                let hash = flow.wrapping_mul(0x9e37_79b9);
                let own = q.flow_of(hash);
                // The flows as the drop will see them: with the new packet.
                let mut ranks: Vec<(u64, u32)> = (0..flows)
                    .map(|f| {
                        let b = q.flow_backlog(f);
                        (b.bytes, b.packets)
                    })
                    .collect();
                ranks[own as usize].0 += u64::from(len);
                ranks[own as usize].1 += 1;
                let mut victim = 0;
                let mut most = 0;
                for (f, &(bytes, packets)) in ranks.iter().enumerate() {
                    let r = bytes.max(u64::from(packets > 0));
                    if r > most {
                        most = r;
                        victim = f as u32;
                    }
                }
                let over = q.backlog().packets + 1 > params.limit;
                drops.clear();
                q.enqueue(&mut pool, pkt(addr, hash, len), 0, &mut drops);
                if !over {
                    prop_assert!(drops.is_empty());
                    continue;
                }
                let d = drops.as_slice();
                let n = d.len();
                prop_assert!(n >= 1 && n as u32 <= batch);
                prop_assert!(d.iter().all(|d| q.flow_of(d.packet.hash) == victim));
                // Linux's do-while: stop after the batch, once half of the
                // flow's bytes are gone, or when it is empty.
                let threshold = most / 2;
                let gone: u64 = d.iter().map(|d| u64::from(d.packet.len)).sum();
                let before_last = gone - u64::from(d[n - 1].packet.len);
                prop_assert!(n as u32 == batch || gone >= threshold || n as u32 == ranks[victim as usize].1);
                prop_assert!(n == 1 || before_last < threshold);
                prop_assert_eq!(q.flow_backlog(victim).packets, ranks[victim as usize].1 - n as u32);
            }
        }
    }
}
