//! The shared packet pool: one slab of packet slots for a whole HTB tree, and
//! intrusive FIFO lists over it.
//!
//! Every leaf queue (and every flow inside SFQ / FQ-CoDel) is a
//! [`PacketList`]: a head index, a tail index and two counters, 24 bytes. The
//! packets themselves live in one `Vec` sized once for the most frames that
//! can be in flight (the UMEM frame count), so queues never allocate and a
//! tree with 100,000 leaves and 1,024 flows per leaf costs 24 bytes per empty
//! flow instead of a preallocated ring each.
//!
//! Layout, for the cache: a packet is 32 bytes and its slot is 32-byte
//! aligned, so a cold packet costs one cache line, never two; the list links
//! are kept apart in a dense `u32` array (4 bytes a slot, 1.6 MB for 400k
//! slots), so linking a packet behind a flow's tail writes to that array
//! instead of dirtying the tail packet's line, and walking the free list
//! stays in cache.

use crate::packet::Packet;

/// Index meaning "no slot".
pub const NIL: u32 = u32::MAX;

/// One packet, aligned so that it never straddles two cache lines.
#[derive(Clone, Copy, Debug)]
#[repr(align(32))]
struct Slot {
    packet: Packet,
}

/// A fixed-capacity slab of packet slots with a free list.
#[derive(Debug)]
pub struct PacketPool {
    slots: Vec<Slot>,
    /// Next slot of the list (queue or free list) each slot is on.
    next: Vec<u32>,
    free_head: u32,
    in_use: u32,
}

const EMPTY_PACKET: Packet = Packet {
    addr: 0,
    len: 0,
    hash: 0,
    enqueued_at: 0,
    l3_offset: 0,
    flags: 0,
};

impl PacketPool {
    /// A pool that can hold `capacity` packets at once (at most `u32::MAX - 1`).
    pub fn new(capacity: u32) -> PacketPool {
        let capacity = capacity.min(NIL - 1);
        let slots = vec![
            Slot {
                packet: EMPTY_PACKET
            };
            capacity as usize
        ];
        let next = (0..capacity)
            .map(|i| if i + 1 < capacity { i + 1 } else { NIL })
            .collect();
        PacketPool {
            slots,
            next,
            free_head: if capacity > 0 { 0 } else { NIL },
            in_use: 0,
        }
    }

    pub fn capacity(&self) -> u32 {
        self.slots.len() as u32
    }

    /// Packets currently held by some list.
    pub fn in_use(&self) -> u32 {
        self.in_use
    }

    #[inline]
    fn alloc(&mut self, packet: Packet) -> Option<u32> {
        let idx = self.free_head;
        let next = self.next.get_mut(idx as usize)?;
        self.free_head = *next;
        *next = NIL;
        self.slots[idx as usize].packet = packet;
        self.in_use += 1;
        Some(idx)
    }

    #[inline]
    fn release(&mut self, idx: u32) -> Packet {
        let packet = self.slots[idx as usize].packet;
        self.next[idx as usize] = self.free_head;
        self.free_head = idx;
        self.in_use -= 1;
        packet
    }

    /// Ask the CPU to start loading the packet at the head of `list` (see
    /// [`prefetch`]). Batched paths call this a few packets ahead.
    #[inline]
    pub(crate) fn prefetch_head(&self, list: &PacketList) {
        if let Some(slot) = self.slots.get(list.head as usize) {
            prefetch(slot);
        }
    }
}

/// Start loading the cache line holding `*r` without waiting for it: a hint
/// to the CPU, with no effect on what the program computes. The batched
/// scheduler paths issue these for a whole batch before touching any of it,
/// so the cache misses of the batch overlap instead of following each other.
#[inline(always)]
pub(crate) fn prefetch<T>(r: &T) {
    prefetch_addr((r as *const T).cast::<u8>());
}

/// [`prefetch`] by address, for the lines of a large struct after its first.
/// Any address is fine: nothing is read through it. A no-op on other
/// architectures than x86_64.
#[inline(always)]
pub(crate) fn prefetch_addr(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch only hints the cache: it never faults, whatever
        // the address, and reads nothing into the program. SSE, which it
        // needs, is part of the x86_64 baseline.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>()) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// An intrusive FIFO of packets stored in a [`PacketPool`].
///
/// A list must only ever be used with the pool it was filled from; every
/// list in one HTB tree shares the tree's pool.
#[derive(Clone, Copy, Debug)]
pub struct PacketList {
    head: u32,
    tail: u32,
    len: u32,
    bytes: u64,
}

impl Default for PacketList {
    fn default() -> Self {
        PacketList::new()
    }
}

impl PacketList {
    pub const fn new() -> PacketList {
        PacketList {
            head: NIL,
            tail: NIL,
            len: 0,
            bytes: 0,
        }
    }

    pub fn len(&self) -> u32 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sum of `Packet::len` of the packets in the list.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Append; gives the packet back when the pool is exhausted.
    #[inline]
    pub fn push_back(&mut self, pool: &mut PacketPool, packet: Packet) -> Result<(), Packet> {
        let enqueued_at = packet.enqueued_at;
        self.push_back_at(pool, packet, enqueued_at)
    }

    /// [`PacketList::push_back`] with `enqueued_at` set on the way in. The
    /// stamp is written into the slot rather than into a copy of the packet
    /// first: a narrow store into a packet that is then copied whole makes
    /// the CPU wait for the store to land (a store-forwarding stall, ~5% of
    /// an enqueue).
    #[inline]
    pub(crate) fn push_back_at(
        &mut self,
        pool: &mut PacketPool,
        packet: Packet,
        enqueued_at: u64,
    ) -> Result<(), Packet> {
        let Some(idx) = pool.alloc(packet) else {
            return Err(Packet {
                enqueued_at,
                ..packet
            });
        };
        pool.slots[idx as usize].packet.enqueued_at = enqueued_at;
        if self.tail == NIL {
            self.head = idx;
        } else {
            pool.next[self.tail as usize] = idx;
        }
        self.tail = idx;
        self.len += 1;
        self.bytes += u64::from(packet.len);
        Ok(())
    }

    #[inline]
    pub fn pop_front(&mut self, pool: &mut PacketPool) -> Option<Packet> {
        let idx = self.head;
        if idx == NIL {
            return None;
        }
        self.head = pool.next[idx as usize];
        if self.head == NIL {
            self.tail = NIL;
        } else {
            // The next packet of this queue is the next one it gives out,
            // often soon (a flow served for a quantum, a batch): start
            // loading it now rather than chase the list one miss at a time.
            prefetch(&pool.slots[self.head as usize]);
            prefetch(&pool.next[self.head as usize]);
        }
        let packet = pool.release(idx);
        self.len -= 1;
        self.bytes -= u64::from(packet.len);
        Some(packet)
    }

    pub fn front<'p>(&self, pool: &'p PacketPool) -> Option<&'p Packet> {
        if self.head == NIL {
            return None;
        }
        Some(&pool.slots[self.head as usize].packet)
    }

    /// Mutable access to the head packet (e.g. to set a CE mark in place).
    pub fn front_mut<'p>(&self, pool: &'p mut PacketPool) -> Option<&'p mut Packet> {
        if self.head == NIL {
            return None;
        }
        Some(&mut pool.slots[self.head as usize].packet)
    }

    /// Visit every packet front to back (used by SFQ's rehash on perturbation
    /// and by tests; not on the per-packet path).
    pub fn for_each(&self, pool: &PacketPool, mut f: impl FnMut(&Packet)) {
        let mut idx = self.head;
        while idx != NIL {
            f(&pool.slots[idx as usize].packet);
            idx = pool.next[idx as usize];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::Frame;

    fn pkt(addr: u64, len: u32) -> Packet {
        Packet::new(Frame { addr, len }, 0)
    }

    #[test]
    fn fifo_order_and_counters() {
        let mut pool = PacketPool::new(4);
        let mut a = PacketList::new();
        let mut b = PacketList::new();
        a.push_back(&mut pool, pkt(1, 100)).unwrap();
        b.push_back(&mut pool, pkt(2, 200)).unwrap();
        a.push_back(&mut pool, pkt(3, 300)).unwrap();
        assert_eq!((a.len(), a.bytes()), (2, 400));
        assert_eq!(pool.in_use(), 3);
        assert_eq!(a.front(&pool).unwrap().addr, 1);
        assert_eq!(a.pop_front(&mut pool).unwrap().addr, 1);
        assert_eq!(a.pop_front(&mut pool).unwrap().addr, 3);
        assert!(a.pop_front(&mut pool).is_none());
        assert_eq!(b.pop_front(&mut pool).unwrap().addr, 2);
        assert_eq!(pool.in_use(), 0);
    }

    #[test]
    fn a_packet_slot_is_half_a_cache_line() {
        assert_eq!(std::mem::size_of::<Slot>(), 32);
        assert_eq!(std::mem::align_of::<Slot>(), 32);
    }

    #[test]
    fn exhausted_pool_gives_the_packet_back() {
        let mut pool = PacketPool::new(1);
        let mut a = PacketList::new();
        a.push_back(&mut pool, pkt(1, 1)).unwrap();
        assert_eq!(a.push_back(&mut pool, pkt(2, 1)).unwrap_err().addr, 2);
        a.pop_front(&mut pool).unwrap();
        a.push_back(&mut pool, pkt(3, 1)).unwrap();
        assert_eq!(a.front(&pool).unwrap().addr, 3);
    }
}
