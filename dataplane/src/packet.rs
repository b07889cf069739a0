//! Frame handles and the per-packet metadata the scheduler carries.

/// A frame handle: where the bytes live (an AF_XDP UMEM address, or any
/// caller-chosen token in the simulator) and how long the frame is on the
/// wire (L2 header included, FCS excluded, as `skb->len` counts it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Frame {
    pub addr: u64,
    pub len: u32,
}

/// Bit flags in [`Packet::flags`].
pub mod flags {
    /// The IP header says ECN-capable transport (ECT(0) or ECT(1)).
    pub const ECT: u8 = 1 << 0;
    /// The packet arrived already marked CE.
    pub const CE: u8 = 1 << 1;
    /// An AQM decided to mark this packet CE instead of dropping it. The core
    /// never writes frame memory; whoever owns the bytes applies the mark
    /// (see [`crate::parse::mark_ce`]) before transmitting.
    pub const MARK_CE: u8 = 1 << 2;
    /// The network header is IPv4 (at [`super::Packet::l3_offset`]).
    pub const IPV4: u8 = 1 << 3;
    /// The network header is IPv6 (at [`super::Packet::l3_offset`]).
    pub const IPV6: u8 = 1 << 4;
}

/// What the scheduler and the leaf queues know about one queued frame.
///
/// 32 bytes, `Copy`: queues move these by value through the shared
/// [`crate::pool::PacketPool`]; nothing per packet is allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    /// UMEM address (or simulator token) of the frame.
    pub addr: u64,
    /// Frame length in bytes as received.
    pub len: u32,
    /// Unseeded flow hash of the 5-tuple (0 for non-IP). SFQ and FQ-CoDel mix
    /// in their own perturbation before bucketing.
    pub hash: u32,
    /// When the packet entered its leaf queue (ns); set by the queue. The
    /// sojourn time at dequeue is `now - enqueued_at`.
    pub enqueued_at: u64,
    /// Offset of the IP header in the frame (valid when IPV4/IPV6 is set).
    pub l3_offset: u16,
    /// [`flags`] bits.
    pub flags: u8,
    /// What to do to its DSCP on the way out: a
    /// [`crate::remark::Remark::code`], 0 for nothing.
    pub remark: u8,
    /// The app of its flow ([`crate::flow::NONE`]: none).
    pub app: u16,
}

impl Packet {
    pub fn new(frame: Frame, hash: u32) -> Packet {
        Packet {
            addr: frame.addr,
            len: frame.len,
            hash,
            enqueued_at: 0,
            l3_offset: 0,
            flags: 0,
            remark: 0,
            app: crate::flow::NONE,
        }
    }

    /// The remark to apply before it goes on the wire, if any.
    pub fn remark(&self) -> Option<crate::remark::Remark> {
        crate::remark::Remark::from_code(self.remark)
    }

    pub fn frame(&self) -> Frame {
        Frame {
            addr: self.addr,
            len: self.len,
        }
    }

    /// ECN-capable: an AQM may mark it instead of dropping it.
    pub fn is_ect(&self) -> bool {
        self.flags & flags::ECT != 0
    }

    /// Ask the owner of the bytes to set CE. Returns false (and changes
    /// nothing) when the packet is not ECN-capable, so the AQM must drop.
    pub fn set_ce(&mut self) -> bool {
        if self.flags & (flags::ECT | flags::CE) == 0 {
            return false;
        }
        self.flags |= flags::MARK_CE;
        true
    }

    pub fn marked_ce(&self) -> bool {
        self.flags & flags::MARK_CE != 0
    }
}

/// Why a frame was dropped. Every handle the core is given comes back once,
/// either sent or with one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// The frame could not be parsed and the tree's policy is to drop it.
    Malformed,
    /// The shared packet pool had no free slot (more frames in flight than
    /// the pool was sized for).
    NoBuffer,
    /// Tail drop: the leaf queue's packet or byte limit was reached.
    QueueLimit,
    /// RED dropped it early (average queue between min and max).
    RedEarly,
    /// RED dropped it because the average queue was above max (or, with
    /// harddrop, the packet was ECT but dropping was forced).
    RedForced,
    /// CoDel dropped it at dequeue (sojourn above target for an interval).
    Codel,
    /// FQ-CoDel dropped it from the fattest flow because the qdisc hit its
    /// packet limit.
    FqCodelOverlimit,
    /// FQ-CoDel dropped it from the fattest flow because the qdisc hit its
    /// memory limit.
    FqCodelOverMemory,
    /// Its class was removed or rebuilt by a configuration change, or the
    /// shaper was torn down.
    Flushed,
    /// Its leaf already held as many packets as the tree's shared pool had
    /// free: its share of the pool (see `Htb::enqueue`).
    BufferShare,
    /// A filter whose action is `drop` matched it (tc's `action drop`):
    /// a deny rule or a slice's isolation. Counted per filter too.
    Filtered,
}

impl DropReason {
    pub const ALL: [DropReason; 11] = [
        DropReason::Malformed,
        DropReason::NoBuffer,
        DropReason::QueueLimit,
        DropReason::RedEarly,
        DropReason::RedForced,
        DropReason::Codel,
        DropReason::FqCodelOverlimit,
        DropReason::FqCodelOverMemory,
        DropReason::Flushed,
        DropReason::BufferShare,
        DropReason::Filtered,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    /// Stable snake_case name for logs, JSON and metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::NoBuffer => "no_buffer",
            DropReason::QueueLimit => "queue_limit",
            DropReason::RedEarly => "red_early",
            DropReason::RedForced => "red_forced",
            DropReason::Codel => "codel",
            DropReason::FqCodelOverlimit => "fq_codel_overlimit",
            DropReason::FqCodelOverMemory => "fq_codel_overmemory",
            DropReason::Flushed => "flushed",
            DropReason::BufferShare => "buffer_share",
            DropReason::Filtered => "filtered",
        }
    }
}

/// One dropped packet, returned to the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dropped {
    pub packet: Packet,
    pub reason: DropReason,
}

/// Where queues put the packets they drop. The caller drains it after each
/// call (or batch) and returns the frames to the fill ring. Its capacity is
/// reserved up front and reused, so steady-state drops allocate nothing.
#[derive(Debug, Default)]
pub struct Drops {
    list: Vec<Dropped>,
}

impl Drops {
    pub fn with_capacity(n: usize) -> Drops {
        Drops {
            list: Vec::with_capacity(n),
        }
    }

    pub fn push(&mut self, packet: Packet, reason: DropReason) {
        self.list.push(Dropped { packet, reason });
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn as_slice(&self) -> &[Dropped] {
        &self.list
    }

    /// Hand out and forget everything collected so far, keeping capacity.
    pub fn drain(&mut self) -> std::vec::Drain<'_, Dropped> {
        self.list.drain(..)
    }

    pub fn clear(&mut self) {
        self.list.clear();
    }
}
