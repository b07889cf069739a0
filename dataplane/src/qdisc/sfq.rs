//! PLACEHOLDER — being written (owner: qdisc helper). Replace whole file.
use super::{Backlog, SfqParams};
use crate::packet::{DropReason, Drops, Packet};
use crate::pool::{PacketList, PacketPool};

#[derive(Debug)]
pub struct Sfq {
    q: PacketList,
}

impl Sfq {
    pub fn new(_p: &SfqParams, _seed: u64) -> Sfq {
        Sfq {
            q: PacketList::new(),
        }
    }
    pub fn enqueue(
        &mut self,
        pool: &mut PacketPool,
        mut packet: Packet,
        now: u64,
        drops: &mut Drops,
    ) {
        packet.enqueued_at = now;
        if let Err(p) = self.q.push_back(pool, packet) {
            drops.push(p, DropReason::NoBuffer);
        }
    }
    pub fn dequeue(
        &mut self,
        pool: &mut PacketPool,
        _now: u64,
        _drops: &mut Drops,
    ) -> Option<Packet> {
        self.q.pop_front(pool)
    }
    pub fn backlog(&self) -> Backlog {
        Backlog {
            packets: self.q.len(),
            bytes: self.q.bytes(),
        }
    }
    pub fn flush(&mut self, pool: &mut PacketPool, drops: &mut Drops) {
        while let Some(p) = self.q.pop_front(pool) {
            drops.push(p, DropReason::Flushed);
        }
    }
    #[allow(dead_code)]
    pub fn stats(&self) -> super::RedStats {
        Default::default()
    }
}
