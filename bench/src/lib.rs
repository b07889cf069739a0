//! Workloads shared by the criterion benches and by `bench/run.sh`.

use weir_dataplane::htb::{ClassSpec, Htb, HtbSpec};
use weir_dataplane::packet::{Drops, Frame, Packet};
use weir_dataplane::qdisc::{FqCodelParams, QdiscParams};

/// A flat tree of `leaves` fq_codel leaves under one root, every leaf
/// guaranteed an equal share and allowed the whole root. The root is fast
/// enough (1 Tbit/s) that the benchmark measures the scheduler, not the
/// shaping delay.
///
/// fq_codel leaves have `flows` flow queues each (Linux default 1024; at
/// 100,000 leaves that is 100 M flow queues, so the bench uses fewer).
pub fn flat_tree(leaves: u32, flows: u32) -> HtbSpec {
    let root_rate = 125_000_000_000u64; // 1 Tbit/s in bytes/s
    let leaf_rate = (root_rate / u64::from(leaves)).max(1);
    let mut classes = vec![ClassSpec {
        parent: None,
        rate: root_rate,
        ceil: root_rate,
        burst: 1_000_000,
        cburst: 1_000_000,
        prio: 0,
        quantum: 200_000,
        qdisc: None,
    }];
    for i in 0..leaves {
        classes.push(ClassSpec {
            parent: Some(0),
            rate: leaf_rate,
            ceil: root_rate,
            burst: 1_000_000,
            cburst: 1_000_000,
            prio: (i % 8) as u8,
            quantum: 1514,
            qdisc: Some(QdiscParams::FqCodel(FqCodelParams {
                flows,
                ..FqCodelParams::default()
            })),
        });
    }
    HtbSpec {
        classes,
        overhead: 0,
        mpu: 0,
        pool_capacity: leaves.saturating_mul(4).max(1 << 16),
        seed: 7,
    }
}

/// Steady state for the scheduler benchmark: every leaf holds `depth`
/// packets; each step enqueues one 64-byte packet to the next leaf in turn
/// (the worst case for caches: consecutive packets belong to different
/// classes) and dequeues one.
pub struct SchedLoad {
    pub htb: Htb,
    drops: Drops,
    leaves: u32,
    next_leaf: u32,
    now: u64,
    addr: u64,
}

impl SchedLoad {
    pub fn new(leaves: u32, flows: u32, depth: u32) -> SchedLoad {
        let spec = flat_tree(leaves, flows);
        let htb = Htb::new(&spec, 0).expect("bench tree is valid");
        let mut load = SchedLoad {
            htb,
            drops: Drops::with_capacity(1024),
            leaves,
            next_leaf: 0,
            now: 0,
            addr: 0,
        };
        for _ in 0..depth {
            for _ in 0..leaves {
                load.enqueue_next();
            }
        }
        load
    }

    fn enqueue_next(&mut self) {
        let class = 1 + self.next_leaf;
        self.next_leaf = (self.next_leaf + 1) % self.leaves;
        self.addr = self.addr.wrapping_add(1);
        // A few flows per class, so fq_codel has real work to do.
        let hash = (self.addr as u32 & 3).wrapping_mul(0x9e37_79b9) ^ class;
        let packet = Packet::new(Frame { addr: self.addr, len: 64 }, hash);
        self.htb.enqueue(class, packet, self.now, &mut self.drops);
    }

    /// One enqueue and one dequeue; virtual time advances by one 64-byte
    /// packet time at 100 Gbit/s (so CoDel sees sojourns far below target).
    #[inline]
    pub fn step(&mut self) -> Option<Packet> {
        self.now += 5;
        self.enqueue_next();
        let p = self.htb.dequeue(self.now, &mut self.drops);
        self.drops.clear();
        p
    }
}
