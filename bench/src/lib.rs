//! Workloads shared by the criterion benches and by `bench/run.sh`, the
//! traffic generator behind `weir-bench` ([`traffic`]), and the
//! differential test of weir's HTB against the kernel's ([`differential`]).

pub mod differential;
pub mod traffic;

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
    flat_tree_prios(leaves, flows, 8)
}

/// [`flat_tree`] with the leaves' prios cycling through `0..prios` (8 in
/// the main workload; 1 puts every leaf in one DRR round).
pub fn flat_tree_prios(leaves: u32, flows: u32, prios: u8) -> HtbSpec {
    let root_rate = 125_000_000_000u64; // 1 Tbit/s in bytes/s
    let leaf_rate = (root_rate / u64::from(leaves)).max(1);
    let mut classes = vec![ClassSpec {
        id: 1 << 32,
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
            id: 1 << 32 | u64::from(i + 1),
            parent: Some(0),
            rate: leaf_rate,
            ceil: root_rate,
            burst: 1_000_000,
            cburst: 1_000_000,
            prio: (i % u32::from(prios.clamp(1, 8))) as u8,
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
        spare_leaves: 0,
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
    /// Packets per arrival burst (one flow of one class), 1 in the main
    /// workload; see [`SchedLoad::with_bursts`].
    burst: u32,
    left_in_burst: u32,
    burst_class: u32,
    burst_hash: u32,
    /// Reused by [`SchedLoad::step_batch`]: nothing is allocated per step.
    batch_in: Vec<(u32, Packet)>,
    batch_out: Vec<Packet>,
}

impl SchedLoad {
    pub fn new(leaves: u32, flows: u32, depth: u32) -> SchedLoad {
        SchedLoad::with_prios(leaves, flows, depth, 8)
    }

    /// [`SchedLoad::new`] over [`flat_tree_prios`].
    pub fn with_prios(leaves: u32, flows: u32, depth: u32, prios: u8) -> SchedLoad {
        let spec = flat_tree_prios(leaves, flows, prios);
        let htb = Htb::new(&spec, 0).expect("bench tree is valid");
        let mut load = SchedLoad {
            htb,
            drops: Drops::with_capacity(1024),
            leaves,
            next_leaf: 0,
            now: 0,
            addr: 0,
            burst: 1,
            left_in_burst: 0,
            burst_class: 0,
            burst_hash: 0,
            batch_in: Vec::new(),
            batch_out: Vec::new(),
        };
        for _ in 0..depth {
            for _ in 0..leaves {
                load.enqueue_next();
            }
        }
        load
    }

    /// A second, more realistic workload next to the worst case: arrivals
    /// come in bursts of `burst` packets of one flow of one class (a TCP
    /// window, a GRO batch), the classes still in turn. The tree is filled
    /// as in [`SchedLoad::new`].
    pub fn with_bursts(leaves: u32, flows: u32, depth: u32, burst: u32) -> SchedLoad {
        let mut load = SchedLoad::new(leaves, flows, depth);
        load.burst = burst.max(1);
        load
    }

    fn enqueue_next(&mut self) {
        let (class, packet) = self.next_packet();
        self.htb.enqueue(class, packet, self.now, &mut self.drops);
    }

    /// The next arrival: one 64-byte packet for the next leaf in turn (or,
    /// with bursts, for the current burst's flow until it is over).
    #[inline]
    fn next_packet(&mut self) -> (u32, Packet) {
        self.addr = self.addr.wrapping_add(1);
        if self.left_in_burst == 0 {
            self.burst_class = 1 + self.next_leaf;
            self.next_leaf += 1;
            if self.next_leaf == self.leaves {
                self.next_leaf = 0;
            }
            // A few flows per class, so fq_codel has real work to do.
            self.burst_hash = (self.addr as u32 & 3).wrapping_mul(0x9e37_79b9) ^ self.burst_class;
            self.left_in_burst = self.burst;
        }
        self.left_in_burst -= 1;
        let (class, hash) = (self.burst_class, self.burst_hash);
        (
            class,
            Packet::new(
                Frame {
                    addr: self.addr,
                    len: 64,
                },
                hash,
            ),
        )
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

    /// The same traffic through the batched API, as the AF_XDP worker
    /// drives it: `batch` arrivals (the next `batch` leaves in turn) in one
    /// [`Htb::enqueue_batch`], then one [`Htb::dequeue_batch`] of up to
    /// `batch`; time advances by `batch` packet times. Returns how many
    /// packets were sent.
    #[inline]
    pub fn step_batch(&mut self, batch: usize) -> usize {
        self.now += 5 * batch as u64;
        self.batch_in.clear();
        for _ in 0..batch {
            let item = self.next_packet();
            self.batch_in.push(item);
        }
        self.htb
            .enqueue_batch(&self.batch_in, self.now, &mut self.drops);
        self.batch_out.clear();
        let sent = self
            .htb
            .dequeue_batch(self.now, &mut self.batch_out, batch, &mut self.drops);
        self.drops.clear();
        sent
    }
}

/// Anonymous memory of this process on transparent huge pages, KiB
/// (`AnonHugePages` of `/proc/self/smaps_rollup`); None where the kernel
/// doesn't say. The scheduler bench prints it next to
/// [`Htb::huge_pages`] so a run shows whether the big trees got 2 MiB pages.
pub fn anon_huge_pages_kib() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/smaps_rollup").ok()?;
    let line = text.lines().find(|l| l.starts_with("AnonHugePages:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
