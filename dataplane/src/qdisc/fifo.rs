//! pfifo and bfifo: tail-drop FIFOs bounded in packets or bytes.

use super::{Backlog, FifoLimit};
use crate::packet::{DropReason, Drops, Packet};
use crate::pool::{PacketList, PacketPool};

#[derive(Debug)]
pub struct Fifo {
    limit: FifoLimit,
    queue: PacketList,
}

impl Fifo {
    pub fn new(limit: FifoLimit) -> Fifo {
        Fifo {
            limit,
            queue: PacketList::new(),
        }
    }

    pub fn kind_name(&self) -> &'static str {
        match self.limit {
            FifoLimit::Packets(_) => "pfifo",
            FifoLimit::Bytes(_) => "bfifo",
        }
    }

    pub fn enqueue(
        &mut self,
        pool: &mut PacketPool,
        mut packet: Packet,
        now: u64,
        drops: &mut Drops,
    ) {
        let fits = match self.limit {
            FifoLimit::Packets(n) => self.queue.len() < n,
            FifoLimit::Bytes(b) => self.queue.bytes() + u64::from(packet.len) <= b,
        };
        if !fits {
            drops.push(packet, DropReason::QueueLimit);
            return;
        }
        packet.enqueued_at = now;
        if let Err(p) = self.queue.push_back(pool, packet) {
            drops.push(p, DropReason::NoBuffer);
        }
    }

    pub fn dequeue(
        &mut self,
        pool: &mut PacketPool,
        _now: u64,
        _drops: &mut Drops,
    ) -> Option<Packet> {
        self.queue.pop_front(pool)
    }

    pub fn backlog(&self) -> Backlog {
        Backlog {
            packets: self.queue.len(),
            bytes: self.queue.bytes(),
        }
    }

    pub fn flush(&mut self, pool: &mut PacketPool, drops: &mut Drops) {
        while let Some(p) = self.queue.pop_front(pool) {
            drops.push(p, DropReason::Flushed);
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
    fn pfifo_tail_drops_at_limit() {
        let mut pool = PacketPool::new(16);
        let mut drops = Drops::default();
        let mut q = Fifo::new(FifoLimit::Packets(2));
        for i in 0..3 {
            q.enqueue(&mut pool, pkt(i, 100), 7, &mut drops);
        }
        assert_eq!(drops.len(), 1);
        assert_eq!(drops.as_slice()[0].packet.addr, 2);
        assert_eq!(drops.as_slice()[0].reason, DropReason::QueueLimit);
        let p = q.dequeue(&mut pool, 9, &mut drops).unwrap();
        assert_eq!((p.addr, p.enqueued_at), (0, 7));
        assert_eq!(
            q.backlog(),
            Backlog {
                packets: 1,
                bytes: 100
            }
        );
    }

    #[test]
    fn bfifo_counts_bytes() {
        let mut pool = PacketPool::new(16);
        let mut drops = Drops::default();
        let mut q = Fifo::new(FifoLimit::Bytes(250));
        q.enqueue(&mut pool, pkt(0, 100), 0, &mut drops);
        q.enqueue(&mut pool, pkt(1, 100), 0, &mut drops);
        q.enqueue(&mut pool, pkt(2, 100), 0, &mut drops);
        q.enqueue(&mut pool, pkt(3, 50), 0, &mut drops);
        assert_eq!(
            q.backlog(),
            Backlog {
                packets: 3,
                bytes: 250
            }
        );
        assert_eq!(drops.len(), 1);
    }
}
