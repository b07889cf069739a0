//! The shared packet pool: one slab of packet slots for a whole HTB tree, and
//! intrusive FIFO lists over it.
//!
//! Every leaf queue (and every flow inside SFQ / FQ-CoDel) is a
//! [`PacketList`]: a head index, a tail index and two counters, 24 bytes. The
//! packets themselves live in one `Vec` sized once for the most frames that
//! can be in flight (the UMEM frame count), so queues never allocate and a
//! tree with 100,000 leaves and 1,024 flows per leaf costs 24 bytes per empty
//! flow instead of a preallocated ring each.

use crate::packet::Packet;

/// Index meaning "no slot".
pub const NIL: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Slot {
    packet: Packet,
    next: u32,
}

/// A fixed-capacity slab of packet slots with a free list.
#[derive(Debug)]
pub struct PacketPool {
    slots: Vec<Slot>,
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
        let slots = (0..capacity)
            .map(|i| Slot {
                packet: EMPTY_PACKET,
                next: if i + 1 < capacity { i + 1 } else { NIL },
            })
            .collect();
        PacketPool {
            slots,
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

    fn alloc(&mut self, packet: Packet) -> Option<u32> {
        let idx = self.free_head;
        if idx == NIL {
            return None;
        }
        let slot = &mut self.slots[idx as usize];
        self.free_head = slot.next;
        slot.packet = packet;
        slot.next = NIL;
        self.in_use += 1;
        Some(idx)
    }

    fn release(&mut self, idx: u32) -> Packet {
        let slot = &mut self.slots[idx as usize];
        let packet = slot.packet;
        slot.next = self.free_head;
        self.free_head = idx;
        self.in_use -= 1;
        packet
    }
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
    pub fn push_back(&mut self, pool: &mut PacketPool, packet: Packet) -> Result<(), Packet> {
        let Some(idx) = pool.alloc(packet) else {
            return Err(packet);
        };
        if self.tail == NIL {
            self.head = idx;
        } else {
            pool.slots[self.tail as usize].next = idx;
        }
        self.tail = idx;
        self.len += 1;
        self.bytes += u64::from(packet.len);
        Ok(())
    }

    pub fn pop_front(&mut self, pool: &mut PacketPool) -> Option<Packet> {
        let idx = self.head;
        if idx == NIL {
            return None;
        }
        self.head = pool.slots[idx as usize].next;
        if self.head == NIL {
            self.tail = NIL;
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
            let slot = &pool.slots[idx as usize];
            f(&slot.packet);
            idx = slot.next;
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
