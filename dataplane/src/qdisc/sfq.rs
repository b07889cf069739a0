//! SFQ, Stochastic Fairness Queueing (McKenney 1990; Linux `sch_sfq.c`).
//!
//! Packets are hashed (flow hash mixed with a per-instance perturbation)
//! into `divisor` buckets; each busy bucket owns one of `flows` slots, a
//! FIFO of at most `depth` packets. Busy slots are served round robin with
//! a byte deficit: a slot sends while its allotment is positive and gets
//! another `quantum` when its turn comes round again (deficit round robin,
//! Shreedhar & Varghese). A slot that just became busy joins the end of the
//! round, so new flows cannot starve old ones.
//!
//! Limits, as Linux applies them (`sfq_enqueue`, `sfq_drop`; tc's default
//! tail drop, weir has no `headdrop`):
//! - a packet for a slot already holding `depth` packets is dropped;
//! - a packet for a new flow when every slot is busy is dropped;
//! - otherwise the packet is queued, and when the qdisc then holds more
//!   than `limit` packets one packet goes: the tail of the longest slot
//!   (the packet just offered when its own flow is, or ties for, the
//!   longest: it was the last to reach that length), or, when every slot
//!   holds one packet, the packet of the slot next in the round, which
//!   leaves the round (the offered packet's new flow, at the end of the
//!   round, stays). With the defaults (limit 127, 128 flows, which an
//!   explicit `limit` would cap) 128 one-packet flows are possible for an
//!   instant, so a 128th flow arriving when 127 hold one packet each
//!   displaces the oldest instead of being refused.
//!
//! `perturb_ns` re-seeds the hash every period; the packets queued at that
//! moment are re-hashed into their new slots in order, so no flow is
//! reordered (Linux's `sfq_rehash`). The period is driven by the `now` of
//! enqueue/dequeue calls, not by a timer.
//!
//! The longest slot is found in O(1) as Linux does: every slot sits on a
//! doubly linked list of the slots with the same length (`dep[len]`), and
//! `cur_depth` is the greatest non-empty length.

use super::{Backlog, SfqParams};
use crate::packet::{DropReason, Drops, Packet};
use crate::pool::{PacketList, PacketPool};

/// Most packets per slot (Linux's `SFQ_MAX_DEPTH`).
pub const MAX_DEPTH: u32 = 127;
/// Most slots (Linux's `SFQ_MAX_FLOWS`).
pub const MAX_FLOWS: u32 = 0x10000 - MAX_DEPTH - 1;
/// Most hash buckets.
pub const MAX_DIVISOR: u32 = 65536;
/// Quantum used when none is given: an Ethernet MTU frame.
pub const DEFAULT_QUANTUM: u32 = 1514;

/// `ht` entry of a bucket that owns no slot.
const NO_SLOT: u16 = u16::MAX;
/// "No slot" in `tail` and ring links.
const NIL: u32 = u32::MAX;

/// One step of SplitMix64: turns a seed into well-mixed 64-bit values.
pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Bucket in `0..buckets` for a flow hash under a perturbation: two
/// multiply-xorshift rounds (no SipHash on the packet path), then a
/// multiply-shift range reduction, which needs no power-of-two `buckets`.
#[inline]
pub(crate) fn flow_bucket(hash: u32, perturbation: u64, buckets: u32) -> u32 {
    let mut x = (u64::from(hash) ^ perturbation).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 32;
    ((u64::from(x as u32) * u64::from(buckets)) >> 32) as u32
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    queue: PacketList,
    /// Next busy slot in the round (a ring through `tail`).
    next: u32,
    /// Bytes this slot may still send in the current round.
    allot: i32,
    /// The bucket that owns this slot while it is busy.
    bucket: u32,
}

/// Links of the per-length slot lists. Nodes `0..flows` are slots, node
/// `flows + d` is the head of the list of slots holding `d` packets.
#[derive(Clone, Copy, Debug)]
struct Link {
    next: u32,
    prev: u32,
}

#[derive(Debug)]
pub struct Sfq {
    /// Bucket → slot, or [`NO_SLOT`].
    ht: Box<[u16]>,
    slots: Box<[Slot]>,
    dep: Box<[Link]>,
    /// Length of the longest slot.
    cur_depth: u32,
    /// Last slot of the round; the slot being served is `slots[tail].next`.
    tail: u32,
    backlog: Backlog,
    limit: u32,
    depth: u32,
    quantum: i32,
    perturb_ns: u64,
    next_perturb: Option<u64>,
    perturbation: u64,
    rng: u64,
}

/// A packet's destination inside SFQ, found before it is queued.
#[derive(Clone, Copy, Debug)]
struct Place {
    bucket: u32,
    slot: u32,
    is_new: bool,
    /// The slot's length before this packet.
    qlen: u32,
}

impl Sfq {
    pub fn new(p: &SfqParams, seed: u64) -> Sfq {
        // Zero means "default" for these, as tc sends them.
        let depth = if p.depth == 0 {
            MAX_DEPTH
        } else {
            p.depth.min(MAX_DEPTH)
        };
        let divisor = if p.divisor == 0 {
            1024
        } else {
            p.divisor.min(MAX_DIVISOR)
        };
        let flows = if p.flows == 0 {
            128
        } else {
            p.flows.min(MAX_FLOWS)
        };
        let flows = flows.min(divisor);
        // Linux caps `flows` at an explicit `limit` (sfq_change); the
        // default limit (127) leaves the default 128 flows alone. The
        // config applies that rule (it knows whether the limit was given),
        // so `flows` is taken as it comes: one more slot than `limit` is
        // what lets a new flow displace the oldest one-packet flow.
        let limit = p.limit.min(depth * flows);
        let quantum = if p.quantum == 0 {
            DEFAULT_QUANTUM
        } else {
            p.quantum
        };
        let mut rng = seed;
        let perturbation = splitmix64(&mut rng);
        let empty = Slot {
            queue: PacketList::new(),
            next: NIL,
            allot: 0,
            bucket: 0,
        };
        let nil = Link {
            next: NIL,
            prev: NIL,
        };
        let mut q = Sfq {
            ht: vec![NO_SLOT; divisor as usize].into_boxed_slice(),
            slots: vec![empty; flows as usize].into_boxed_slice(),
            dep: vec![nil; (flows + depth + 1) as usize].into_boxed_slice(),
            cur_depth: 0,
            tail: NIL,
            backlog: Backlog::default(),
            limit,
            depth,
            quantum: quantum.min(i32::MAX as u32) as i32,
            perturb_ns: p.perturb_ns,
            next_perturb: None,
            perturbation,
            rng,
        };
        q.reset_slots();
        q
    }

    /// Which bucket a flow hash maps to under the current perturbation.
    pub fn bucket_of(&self, hash: u32) -> u32 {
        flow_bucket(hash, self.perturbation, self.ht.len() as u32)
    }

    /// Busy slots (flows with packets queued).
    pub fn active_flows(&self) -> u32 {
        self.slots.iter().filter(|s| !s.queue.is_empty()).count() as u32
    }

    pub fn enqueue(
        &mut self,
        pool: &mut PacketPool,
        mut packet: Packet,
        now: u64,
        drops: &mut Drops,
    ) {
        self.maybe_perturb(pool, now, drops);
        packet.enqueued_at = now;
        let Some(place) = self.place(packet.hash) else {
            drops.push(packet, DropReason::QueueLimit);
            return;
        };
        let qlen = place.qlen;
        // Over the limit, Linux adds the packet, then drops the tail of the
        // longest slot: the head of `dep[cur_depth]`, where the slot that
        // reached that length last sits. When this packet's slot reaches
        // (or ties) the greatest length of two or more, that tail is the
        // packet itself: drop it before queueing, which ends the same and
        // saves rotating the slot's queue.
        let over = self.backlog.packets >= self.limit;
        if over && qlen >= 1 && qlen + 1 >= self.cur_depth {
            drops.push(packet, DropReason::QueueLimit);
            return;
        }
        if let Err(p) = self.append(pool, place, packet) {
            drops.push(p, DropReason::NoBuffer);
            return;
        }
        if over {
            self.drop_for_limit(pool, drops);
        }
    }

    /// One packet too many (Linux's `sfq_drop`): the tail of a longest
    /// slot, or, when every slot holds one packet (no slot is longer than
    /// another), the packet of the slot next in the round.
    fn drop_for_limit(&mut self, pool: &mut PacketPool, drops: &mut Drops) {
        if self.cur_depth > 1 {
            let victim = self.dep[self.dep_head(self.cur_depth)].next;
            self.drop_tail(pool, victim, drops);
            return;
        }
        if self.tail == NIL {
            return;
        }
        let a = self.slots[self.tail as usize].next;
        let Some(p) = self.slots[a as usize].queue.pop_front(pool) else {
            return;
        };
        self.backlog.packets -= 1;
        self.backlog.bytes -= u64::from(p.len);
        self.relink(a, 1);
        self.leave_round(a);
        drops.push(p, DropReason::QueueLimit);
    }

    pub fn dequeue(
        &mut self,
        pool: &mut PacketPool,
        now: u64,
        drops: &mut Drops,
    ) -> Option<Packet> {
        self.maybe_perturb(pool, now, drops);
        loop {
            if self.tail == NIL {
                return None;
            }
            let a = self.slots[self.tail as usize].next;
            let slot = &mut self.slots[a as usize];
            if slot.allot <= 0 {
                // Turn over: next round's allotment, next slot.
                slot.allot = slot.allot.saturating_add(self.quantum);
                self.tail = a;
                continue;
            }
            let qlen = slot.queue.len();
            let packet = slot.queue.pop_front(pool);
            if let Some(p) = &packet {
                slot.allot = slot.allot.saturating_sub(p.len.min(i32::MAX as u32) as i32);
                self.backlog.packets -= 1;
                self.backlog.bytes -= u64::from(p.len);
                self.relink(a, qlen);
            }
            if self.slots[a as usize].queue.is_empty() {
                self.leave_round(a);
            }
            if packet.is_some() {
                return packet;
            }
        }
    }

    pub fn backlog(&self) -> Backlog {
        self.backlog
    }

    pub fn flush(&mut self, pool: &mut PacketPool, drops: &mut Drops) {
        for slot in self.slots.iter_mut() {
            while let Some(p) = slot.queue.pop_front(pool) {
                drops.push(p, DropReason::Flushed);
            }
        }
        self.backlog = Backlog::default();
        self.reset_slots();
    }

    /// Empty every slot's bookkeeping: no bucket owns a slot, every slot is
    /// on the length-0 (free) list, nothing is in the round. Queues must
    /// already be empty.
    fn reset_slots(&mut self) {
        self.ht.fill(NO_SLOT);
        let flows = self.slots.len() as u32;
        for d in 0..=self.depth {
            let h = flows + d;
            self.dep[h as usize] = Link { next: h, prev: h };
        }
        for x in 0..flows {
            let slot = &mut self.slots[x as usize];
            slot.next = NIL;
            slot.allot = 0;
            self.link(x);
        }
        self.cur_depth = 0;
        self.tail = NIL;
    }

    #[inline]
    fn dep_head(&self, depth: u32) -> usize {
        (self.slots.len() as u32 + depth) as usize
    }

    /// A slot holding no packets, if any.
    /// Where a packet of flow `hash` goes: its bucket's slot, or a free one
    /// for a new flow. None when no slot is free or the slot is `depth` deep.
    fn place(&self, hash: u32) -> Option<Place> {
        let bucket = self.bucket_of(hash);
        let (slot, is_new) = match self.ht[bucket as usize] {
            NO_SLOT => (self.free_slot()?, true),
            x => (u32::from(x), false),
        };
        let qlen = self.slots[slot as usize].queue.len();
        (qlen < self.depth).then_some(Place {
            bucket,
            slot,
            is_new,
            qlen,
        })
    }

    /// Queue `packet` at `place` (from [`Sfq::place`]), claiming the slot
    /// for a new flow; gives the packet back when the pool is exhausted.
    fn append(
        &mut self,
        pool: &mut PacketPool,
        place: Place,
        packet: Packet,
    ) -> Result<(), Packet> {
        let Place {
            bucket,
            slot: x,
            is_new,
            qlen,
        } = place;
        let len = packet.len;
        self.slots[x as usize].queue.push_back(pool, packet)?;
        if is_new {
            self.ht[bucket as usize] = x as u16;
            self.slots[x as usize].bucket = bucket;
            self.join_round(x);
        }
        self.relink(x, qlen);
        self.backlog.packets += 1;
        self.backlog.bytes += u64::from(len);
        Ok(())
    }

    fn free_slot(&self) -> Option<u32> {
        let x = self.dep[self.dep_head(0)].next;
        ((x as usize) < self.slots.len()).then_some(x)
    }

    /// Put slot `x` at the front of the list for its current length.
    fn link(&mut self, x: u32) {
        let h = self.dep_head(self.slots[x as usize].queue.len());
        let n = self.dep[h].next;
        self.dep[x as usize] = Link {
            next: n,
            prev: h as u32,
        };
        self.dep[h].next = x;
        self.dep[n as usize].prev = x;
    }

    /// Move slot `x`, which held `old` packets, to the list for its current
    /// length, keeping `cur_depth` the greatest non-empty length.
    fn relink(&mut self, x: u32, old: u32) {
        let Link { next, prev } = self.dep[x as usize];
        self.dep[prev as usize].next = next;
        self.dep[next as usize].prev = prev;
        let new = self.slots[x as usize].queue.len();
        if new > self.cur_depth {
            self.cur_depth = new;
        } else if new < old && next == prev && self.cur_depth == old {
            // x was the only slot that long.
            self.cur_depth = new;
        }
        self.link(x);
    }

    /// Slot `x` just became busy: it joins the end of the round with a
    /// fresh allotment.
    fn join_round(&mut self, x: u32) {
        if self.tail == NIL {
            self.slots[x as usize].next = x;
        } else {
            let t = self.tail as usize;
            self.slots[x as usize].next = self.slots[t].next;
            self.slots[t].next = x;
        }
        self.tail = x;
        self.slots[x as usize].allot = self.quantum;
    }

    /// Slot `a` (the one after `tail`) went empty: out of the round, and
    /// its bucket no longer owns it.
    fn leave_round(&mut self, a: u32) {
        let slot = self.slots[a as usize];
        self.ht[slot.bucket as usize] = NO_SLOT;
        if slot.next == a {
            self.tail = NIL;
        } else {
            self.slots[self.tail as usize].next = slot.next;
        }
    }

    /// Drop the packet at the tail of slot `y`, which holds at least two.
    /// `PacketList` is singly linked, so the packets before the tail are
    /// rotated to the back first: at most `depth - 1` (126) moves within
    /// the pool, only when the qdisc is over its limit and the offered
    /// packet's flow is not the longest.
    fn drop_tail(&mut self, pool: &mut PacketPool, y: u32, drops: &mut Drops) {
        let queue = &mut self.slots[y as usize].queue;
        let qlen = queue.len();
        if qlen < 2 {
            return;
        }
        for _ in 0..qlen - 1 {
            if let Some(p) = queue.pop_front(pool) {
                // The pop just freed a pool slot, so this cannot fail.
                if let Err(p) = queue.push_back(pool, p) {
                    drops.push(p, DropReason::NoBuffer);
                }
            }
        }
        if let Some(p) = queue.pop_front(pool) {
            self.backlog.packets -= 1;
            self.backlog.bytes -= u64::from(p.len);
            drops.push(p, DropReason::QueueLimit);
        }
        // Any NoBuffer drop above also shortened the queue.
        let lost = qlen - 1 - self.slots[y as usize].queue.len();
        if lost > 0 {
            self.backlog.packets -= lost;
            self.backlog.bytes = self.bytes_in_slots();
        }
        self.relink(y, qlen);
    }

    fn bytes_in_slots(&self) -> u64 {
        self.slots.iter().map(|s| s.queue.bytes()).sum()
    }

    fn maybe_perturb(&mut self, pool: &mut PacketPool, now: u64, drops: &mut Drops) {
        if self.perturb_ns == 0 {
            return;
        }
        match self.next_perturb {
            None => self.next_perturb = Some(now.saturating_add(self.perturb_ns)),
            Some(t) if now >= t => {
                self.perturbation = splitmix64(&mut self.rng);
                self.next_perturb = Some(now.saturating_add(self.perturb_ns));
                if self.tail != NIL {
                    self.rehash(pool, drops);
                }
            }
            Some(_) => {}
        }
    }

    /// Re-bucket every queued packet under the new perturbation without
    /// reordering any flow: take the packets out slot by slot in round
    /// order, then queue them again. Counters are untouched except for
    /// packets that no longer fit (two old slots merged past `depth`, or
    /// more buckets busy than slots), which are dropped as Linux does.
    fn rehash(&mut self, pool: &mut PacketPool, drops: &mut Drops) {
        let mut all = PacketList::new();
        let start = self.slots[self.tail as usize].next;
        let mut x = start;
        loop {
            let slot = &mut self.slots[x as usize];
            while let Some(p) = slot.queue.pop_front(pool) {
                if let Err(p) = all.push_back(pool, p) {
                    drops.push(p, DropReason::NoBuffer);
                }
            }
            x = slot.next;
            if x == start || x == NIL {
                break;
            }
        }
        self.reset_slots();
        self.backlog = Backlog::default();
        while let Some(p) = all.pop_front(pool) {
            let Some(place) = self.place(p.hash) else {
                drops.push(p, DropReason::QueueLimit);
                continue;
            };
            if let Err(p) = self.append(pool, place, p) {
                drops.push(p, DropReason::NoBuffer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_the_range() {
        let mut seen = vec![false; 1024];
        for h in 0..100_000u32 {
            seen[flow_bucket(h.wrapping_mul(2_654_435_761), 42, 1024) as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
        assert!((0..1000).all(|h| flow_bucket(h, 7, 3) < 3));
    }
}
