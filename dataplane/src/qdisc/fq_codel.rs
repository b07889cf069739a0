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

use super::codel::{self, CodelParams, CodelQueue, CodelStats, CodelVars};
use super::sfq::{flow_bucket, splitmix64};
use super::{Backlog, FqCodelParams, FqCodelStats};
use crate::packet::{DropReason, Drops, Packet};
use crate::pool::{prefetch, PacketList, PacketPool};

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
    fat_index: &'a mut u32,
    backlog: &'a mut Backlog,
}

impl CodelQueue for FlowQueue<'_> {
    #[inline]
    fn pop(&mut self) -> Option<Packet> {
        let p = self.queue.pop_front(self.pool)?;
        *self.fat_index = rank(self.queue);
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

/// Field order is fixed (`repr(C)`): what locating a packet's flow needs
/// (the flow table, its backlog index, the perturbation) and the backlog
/// come first, in the qdisc's first cache line, so that a batched caller
/// can fetch that one line and then the flow; the rest of what every
/// enqueue and dequeue reads follows; the counters and limits only the
/// overlimit path reads come last.
#[derive(Debug)]
#[repr(C)]
pub struct FqCodel {
    flows: Box<[Flow]>,
    /// Per-flow backlog bytes (saturated to u32), kept apart from the flow
    /// table so the fattest-flow scan reads 4 bytes per flow (4 KiB for
    /// 1024 flows) instead of a cache line each. Exact counts are in the
    /// flows' queues; this only has to rank them.
    fat_index: Box<[u32]>,
    perturbation: u64,
    backlog: Backlog,
    new_flows: FlowList,
    old_flows: FlowList,
    quantum: i32,
    limit: u32,
    memory_limit: u64,
    new_flow_count: u64,
    cparams: CodelParams,
    cstats: CodelStats,
    drop_batch_size: u32,
    drop_overlimit: u64,
    drop_overmemory: u64,
}

impl FqCodel {
    pub fn new(p: &FqCodelParams, seed: u64) -> FqCodel {
        let nflows = p.flows.clamp(1, MAX_FLOWS);
        let mut s = seed;
        FqCodel {
            flows: vec![Flow::IDLE; nflows as usize].into_boxed_slice(),
            fat_index: vec![0; nflows as usize].into_boxed_slice(),
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
        self.fat_index[idx as usize] = rank(&flow.queue);
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
    /// Finding the flow scans the whole backlog index (4 bytes per flow):
    /// cheaper than keeping flows sorted on every packet, and amortised
    /// over the batch. Returns how many packets were dropped.
    #[inline(never)]
    fn drop_from_fattest(
        &mut self,
        pool: &mut PacketPool,
        drops: &mut Drops,
        why: DropReason,
    ) -> u32 {
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
            let mut queue = FlowQueue {
                queue: &mut flow.queue,
                pool,
                fat_index: &mut self.fat_index[idx as usize],
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
    /// hash touches beyond the qdisc itself: its flow and backlog-index
    /// entry. A hint only (see [`crate::pool::prefetch`]).
    #[inline]
    pub(crate) fn prefetch_enqueue(&self, hash: u32) {
        let idx = self.flow_of(hash) as usize;
        if let Some(flow) = self.flows.get(idx) {
            prefetch(flow);
        }
        if let Some(rank) = self.fat_index.get(idx) {
            prefetch(rank);
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

    #[test]
    fn flow_fits_a_cache_line() {
        assert!(std::mem::size_of::<Flow>() <= 64);
    }
}
