//! SFQ driven directly in virtual time: fairness between greedy flows,
//! perturbation without loss or reordering, depth and limit drops (which
//! packet Linux's sfq_enqueue / sfq_drop give up in each case).

use std::collections::HashMap;

use weir_dataplane::packet::{DropReason, Drops, Frame, Packet};
use weir_dataplane::pool::PacketPool;
use weir_dataplane::qdisc::{Backlog, Sfq, SfqParams};

const MS: u64 = 1_000_000;
const US: u64 = 1_000;

fn pkt(addr: u64, hash: u32, len: u32) -> Packet {
    Packet::new(Frame { addr, len }, hash)
}

/// Seeded xorshift for test traffic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Flow hashes that land in distinct buckets of `q`.
fn distinct_hashes(q: &Sfq, n: usize) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::new();
    let mut h = 7u32;
    while out.len() < n {
        if out.iter().all(|&o| q.bucket_of(o) != q.bucket_of(h)) {
            out.push(h);
        }
        h = h.wrapping_mul(2_654_435_761).wrapping_add(99);
    }
    out
}

struct Source {
    hash: u32,
    len: u32,
    /// Mean gap between packets, ns.
    gap: u64,
    next: u64,
}

/// Offer traffic from `sources` (jittered arrivals) to `q` in front of a
/// link of `rate` bytes/s for `duration`; count bytes sent per source
/// after `warmup`.
fn run(q: &mut Sfq, sources: &mut [Source], rate: u64, warmup: u64, duration: u64) -> Vec<u64> {
    let mut pool = PacketPool::new(4096);
    let mut drops = Drops::default();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut sent = vec![0u64; sources.len()];
    let mut link_free = 0u64;
    let mut addr = 0;
    loop {
        let (i, t_arr) = sources
            .iter()
            .enumerate()
            .map(|(i, s)| (i, s.next))
            .min_by_key(|&(_, t)| t)
            .unwrap();
        let t = t_arr.min(link_free);
        if t > duration {
            break;
        }
        if t_arr <= link_free {
            let s = &mut sources[i];
            q.enqueue(&mut pool, pkt(addr, s.hash, s.len), t_arr, &mut drops);
            addr += 1;
            s.next = t_arr + s.gap / 2 + rng.below(s.gap);
            if link_free < t_arr {
                link_free = t_arr;
            }
        } else {
            match q.dequeue(&mut pool, link_free, &mut drops) {
                Some(p) => {
                    if link_free >= warmup {
                        let i = sources.iter().position(|s| s.hash == p.hash).unwrap();
                        sent[i] += u64::from(p.len);
                    }
                    link_free += u64::from(p.len) * 1_000_000_000 / rate;
                }
                // Idle: wait for the next arrival.
                None => link_free = t_arr,
            }
        }
        drops.clear();
    }
    sent
}

fn jain(x: &[f64]) -> f64 {
    let sum: f64 = x.iter().sum();
    let sq: f64 = x.iter().map(|v| v * v).sum();
    sum * sum / (x.len() as f64 * sq)
}

#[test]
fn eight_greedy_flows_share_bytes_fairly() {
    let mut q = Sfq::new(&SfqParams::default(), 1);
    let rate = 12_500_000; // 100 Mbit/s
    let lens = [1500, 1000, 576, 1500, 64, 300, 1200, 800];
    let hashes = distinct_hashes(&q, lens.len());
    // Each flow alone would fill the link.
    let mut sources: Vec<Source> = hashes
        .iter()
        .zip(lens)
        .map(|(&hash, len)| Source {
            hash,
            len,
            gap: u64::from(len) * 1_000_000_000 / rate,
            next: 0,
        })
        .collect();
    let sent = run(&mut q, &mut sources, rate, 100 * MS, 2000 * MS);
    let x: Vec<f64> = sent.iter().map(|&b| b as f64).collect();
    let j = jain(&x);
    assert!(j >= 0.99, "Jain index {j}, bytes {sent:?}");
    let total: u64 = sent.iter().sum();
    let capacity = rate * 19 / 10; // 1.9 s measured
    assert!(
        total as f64 >= capacity as f64 * 0.99,
        "{total} of {capacity}"
    );
}

#[test]
fn a_flow_offering_ten_times_more_gets_only_its_fair_share() {
    let rate = 12_500_000;
    let gap = |share: f64| (1500.0 * 1e9 / (rate as f64 * share)) as u64;
    // (light flows' offered share each, the heavy flow's share is 10x,
    //  max-min fair share of the heavy flow)
    for (light, heavy_fair) in [(0.3, 0.2), (0.1, 0.6)] {
        let mut q = Sfq::new(&SfqParams::default(), 2);
        let hashes = distinct_hashes(&q, 5);
        let mut sources: Vec<Source> = hashes
            .iter()
            .enumerate()
            .map(|(i, &hash)| Source {
                hash,
                len: 1500,
                gap: gap(if i == 0 { light * 10.0 } else { light }),
                next: 0,
            })
            .collect();
        let sent = run(&mut q, &mut sources, rate, 100 * MS, 3100 * MS);
        let share: Vec<f64> = sent
            .iter()
            .map(|&b| b as f64 / (rate as f64 * 3.0))
            .collect();
        assert!(
            share[0] <= heavy_fair * 1.03,
            "heavy flow got {} of the link (fair {heavy_fair}), shares {share:?}",
            share[0]
        );
        let light_fair = light.min((1.0 - heavy_fair) / 4.0).min(0.2);
        for &s in &share[1..] {
            assert!(
                s >= light_fair * 0.97,
                "light flow got {s} (fair {light_fair}), shares {share:?}"
            );
        }
    }
}

#[test]
fn round_robin_by_quantum_and_new_flows_join_the_end() {
    let mut q = Sfq::new(&SfqParams::default(), 3);
    let h = distinct_hashes(&q, 3);
    let mut pool = PacketPool::new(100);
    let mut drops = Drops::default();
    for i in 0..6 {
        q.enqueue(&mut pool, pkt(i, h[0], 1000), 0, &mut drops);
    }
    for i in 10..16 {
        q.enqueue(&mut pool, pkt(i, h[1], 1000), 0, &mut drops);
    }
    // quantum 1514: two 1000-byte packets per turn (the second overdraws).
    let mut order = Vec::new();
    for _ in 0..4 {
        order.push(q.dequeue(&mut pool, 0, &mut drops).unwrap().addr);
    }
    assert_eq!(order, [0, 1, 10, 11]);
    // Flow 1 has overdrawn its allotment, but (as in Linux) the round only
    // moves past it at the next dequeue, so the end of the round, where a
    // new flow joins, is still right after flow 0.
    q.enqueue(&mut pool, pkt(20, h[2], 1000), 0, &mut drops);
    for _ in 0..5 {
        order.push(q.dequeue(&mut pool, 0, &mut drops).unwrap().addr);
    }
    // Flow 0 got 1028 bytes of allotment (-486 + 1514): 2 packets again,
    // then the new flow, then flow 1's next turn.
    assert_eq!(&order[4..], [2, 3, 20, 12, 13]);
    assert!(drops.is_empty());
}

#[test]
fn depth_limits_one_flow_by_tail_drop() {
    let params = SfqParams {
        depth: 5,
        ..SfqParams::default()
    };
    let mut q = Sfq::new(&params, 4);
    let mut pool = PacketPool::new(100);
    let mut drops = Drops::default();
    for i in 0..10 {
        q.enqueue(&mut pool, pkt(i, 77, 100), 0, &mut drops);
    }
    assert_eq!(
        q.backlog(),
        Backlog {
            packets: 5,
            bytes: 500
        }
    );
    let dropped: Vec<u64> = drops.as_slice().iter().map(|d| d.packet.addr).collect();
    assert_eq!(dropped, [5, 6, 7, 8, 9]);
    assert!(drops
        .as_slice()
        .iter()
        .all(|d| d.reason == DropReason::QueueLimit));
}

#[test]
fn over_limit_drops_the_tail_of_the_longest_flow() {
    let params = SfqParams {
        limit: 10,
        ..SfqParams::default()
    };
    let mut q = Sfq::new(&params, 5);
    let h = distinct_hashes(&q, 2);
    let (a, b) = (h[0], h[1]);
    let mut pool = PacketPool::new(100);
    let mut drops = Drops::default();
    for i in 0..8 {
        q.enqueue(&mut pool, pkt(i, a, 100), 0, &mut drops);
    }
    for i in 100..102 {
        q.enqueue(&mut pool, pkt(i, b, 200), 0, &mut drops);
    }
    assert!(drops.is_empty());
    // Full. B's packet is queued; A (the longest) loses its tail.
    q.enqueue(&mut pool, pkt(102, b, 200), 0, &mut drops);
    assert_eq!(drops.len(), 1);
    assert_eq!(drops.as_slice()[0].packet.addr, 7);
    assert_eq!(drops.as_slice()[0].reason, DropReason::QueueLimit);
    assert_eq!(
        q.backlog(),
        Backlog {
            packets: 10,
            bytes: 7 * 100 + 3 * 200
        }
    );
    // A is still the longest: its own new packet is the tail to drop.
    q.enqueue(&mut pool, pkt(8, a, 100), 0, &mut drops);
    assert_eq!(drops.len(), 2);
    assert_eq!(drops.as_slice()[1].packet.addr, 8);
    let mut out = Vec::new();
    while let Some(p) = q.dequeue(&mut pool, 0, &mut drops) {
        out.push(p.addr);
    }
    out.sort_unstable();
    assert_eq!(out, [0, 1, 2, 3, 4, 5, 6, 100, 101, 102]);
    assert_eq!(pool.in_use(), 0);
}

/// Drain `q`, returning the packets' addrs in the order they leave.
fn drain(q: &mut Sfq, pool: &mut PacketPool, drops: &mut Drops) -> Vec<u64> {
    let mut out = Vec::new();
    while let Some(p) = q.dequeue(pool, 0, drops) {
        out.push(p.addr);
    }
    out
}

#[test]
fn a_tie_for_longest_drops_the_offered_packet() {
    // Linux's sfq_drop takes the head of dep[cur_depth], where sfq_link
    // puts the slot that reached that length last: the offered packet's.
    let params = SfqParams {
        limit: 5,
        ..SfqParams::default()
    };
    let mut q = Sfq::new(&params, 11);
    let h = distinct_hashes(&q, 2);
    let (a, b) = (h[0], h[1]);
    let mut pool = PacketPool::new(100);
    let mut drops = Drops::default();
    for i in 0..3 {
        q.enqueue(&mut pool, pkt(i, a, 100), 0, &mut drops);
    }
    for i in 10..12 {
        q.enqueue(&mut pool, pkt(i, b, 100), 0, &mut drops);
    }
    assert!(drops.is_empty());
    // B reaches 3, tying A, one packet over the limit: B's new tail goes.
    q.enqueue(&mut pool, pkt(12, b, 100), 0, &mut drops);
    let dropped: Vec<u64> = drops.as_slice().iter().map(|d| d.packet.addr).collect();
    assert_eq!(dropped, [12]);
    assert_eq!(drops.as_slice()[0].reason, DropReason::QueueLimit);
    let mut out = drain(&mut q, &mut pool, &mut drops);
    out.sort_unstable();
    assert_eq!(out, [0, 1, 2, 10, 11]);
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn default_sfq_has_128_flows_and_a_new_flow_displaces_the_oldest_single() {
    // tc's defaults: limit 127, flows 128 (Linux caps flows at the limit
    // only when a limit is given). With 127 one-packet flows queued (the
    // limit), a 128th flow still finds a free slot; the queue is then one
    // over, every slot holds one packet, and Linux's sfq_drop ("all the
    // slots have length 1") drops the packet of the slot next in the round
    // (the oldest flow) and takes that slot out of the round. The offered
    // packet stays.
    let mut q = Sfq::new(&SfqParams::default(), 12);
    let h = distinct_hashes(&q, 129);
    let mut pool = PacketPool::new(1000);
    let mut drops = Drops::default();
    for (i, &hash) in h.iter().take(127).enumerate() {
        q.enqueue(&mut pool, pkt(i as u64, hash, 100), 0, &mut drops);
    }
    assert!(drops.is_empty());
    assert_eq!(q.active_flows(), 127);
    assert_eq!(q.backlog().packets, 127);

    q.enqueue(&mut pool, pkt(127, h[127], 100), 0, &mut drops);
    let dropped: Vec<(u64, DropReason)> = drops
        .as_slice()
        .iter()
        .map(|d| (d.packet.addr, d.reason))
        .collect();
    assert_eq!(dropped, [(0, DropReason::QueueLimit)]);
    assert_eq!(
        q.backlog(),
        Backlog {
            packets: 127,
            bytes: 12_700
        }
    );
    assert_eq!(q.active_flows(), 127);

    // Again: flow 0 comes back into the freed slot, flow 1 (now next in
    // the round) makes room; flow 128 then does the same to flow 2.
    q.enqueue(&mut pool, pkt(1000, h[0], 100), 0, &mut drops);
    q.enqueue(&mut pool, pkt(128, h[128], 100), 0, &mut drops);
    let dropped: Vec<u64> = drops.as_slice().iter().map(|d| d.packet.addr).collect();
    assert_eq!(dropped, [0, 1, 2]);
    assert_eq!(q.active_flows(), 127);

    // The round: flows 3..=127 in arrival order, then the newcomers.
    let out = drain(&mut q, &mut pool, &mut drops);
    let mut expected: Vec<u64> = (3..=127).collect();
    expected.extend([1000, 128]);
    assert_eq!(out, expected);
    assert_eq!(drops.len(), 3);
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn every_slot_at_one_and_an_old_flow_sends_again() {
    // 127 one-packet flows at the limit; a second packet of one of them
    // makes that flow the longest (2), and its tail, the offered packet,
    // is what goes.
    let mut q = Sfq::new(&SfqParams::default(), 13);
    let h = distinct_hashes(&q, 127);
    let mut pool = PacketPool::new(1000);
    let mut drops = Drops::default();
    for (i, &hash) in h.iter().enumerate() {
        q.enqueue(&mut pool, pkt(i as u64, hash, 100), 0, &mut drops);
    }
    q.enqueue(&mut pool, pkt(500, h[40], 100), 0, &mut drops);
    let dropped: Vec<u64> = drops.as_slice().iter().map(|d| d.packet.addr).collect();
    assert_eq!(dropped, [500]);
    let out = drain(&mut q, &mut pool, &mut drops);
    assert_eq!(out, (0..127).collect::<Vec<u64>>());
}

#[test]
fn limit_below_flows_keeps_working_at_the_edges() {
    // flows above limit (as the core may be given them): never more than
    // `limit` packets, every drop one packet, nothing lost from the pool.
    let params = SfqParams {
        limit: 2,
        flows: 8,
        ..SfqParams::default()
    };
    let mut q = Sfq::new(&params, 14);
    let h = distinct_hashes(&q, 8);
    let mut pool = PacketPool::new(100);
    let mut drops = Drops::default();
    for (i, &hash) in h.iter().enumerate() {
        q.enqueue(&mut pool, pkt(i as u64, hash, 100), 0, &mut drops);
        assert!(q.backlog().packets <= 2);
    }
    // Each newcomer pushed out the oldest: the last two flows remain.
    let dropped: Vec<u64> = drops.as_slice().iter().map(|d| d.packet.addr).collect();
    assert_eq!(dropped, [0, 1, 2, 3, 4, 5]);
    assert_eq!(drain(&mut q, &mut pool, &mut drops), [6, 7]);
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn new_flow_is_dropped_when_every_slot_is_busy() {
    let params = SfqParams {
        flows: 2,
        ..SfqParams::default()
    };
    let mut q = Sfq::new(&params, 6);
    let h = distinct_hashes(&q, 3);
    let mut pool = PacketPool::new(100);
    let mut drops = Drops::default();
    q.enqueue(&mut pool, pkt(0, h[0], 100), 0, &mut drops);
    q.enqueue(&mut pool, pkt(1, h[1], 100), 0, &mut drops);
    q.enqueue(&mut pool, pkt(2, h[2], 100), 0, &mut drops);
    assert_eq!(drops.len(), 1);
    assert_eq!(drops.as_slice()[0].packet.addr, 2);
    assert_eq!(q.active_flows(), 2);
    q.dequeue(&mut pool, 0, &mut drops).unwrap();
    // A slot is free again.
    q.enqueue(&mut pool, pkt(3, h[2], 100), 0, &mut drops);
    assert_eq!(drops.len(), 1);
    assert_eq!(q.active_flows(), 2);
}

#[test]
fn perturbation_rehashes_without_loss_duplication_or_reordering() {
    let params = SfqParams {
        perturb_ns: MS,
        ..SfqParams::default()
    };
    let mut q = Sfq::new(&params, 7);
    let mut pool = PacketPool::new(1000);
    let mut drops = Drops::default();
    let mut rng = Rng(99);
    let hashes: Vec<u32> = (0..40)
        .map(|i| 0x9e37_79b9u32.wrapping_mul(i + 1))
        .collect();
    let probe = hashes[0];
    let mut buckets_seen = std::collections::HashSet::new();
    let mut next_seq: HashMap<u32, u64> = HashMap::new();
    let mut last_out: HashMap<u32, u64> = HashMap::new();
    let mut offered = 0u64;
    let mut out = Vec::new();
    let mut t = 0;
    for _ in 0..20_000 {
        t += 50 * US + rng.below(50 * US);
        if q.backlog().packets < 100 && rng.below(2) == 0 {
            for _ in 0..1 + rng.below(4) {
                let h = hashes[rng.below(40) as usize];
                let seq = next_seq.entry(h).or_insert(0);
                // addr = flow index << 32 | sequence number in the flow.
                let addr = (u64::from(h) << 32) | *seq;
                *seq += 1;
                q.enqueue(
                    &mut pool,
                    pkt(addr, h, 100 + (*seq % 7) as u32 * 200),
                    t,
                    &mut drops,
                );
                offered += 1;
            }
        } else {
            for _ in 0..1 + rng.below(4) {
                if let Some(p) = q.dequeue(&mut pool, t, &mut drops) {
                    let seq = p.addr & 0xffff_ffff;
                    if let Some(&prev) = last_out.get(&p.hash) {
                        assert!(
                            seq > prev,
                            "flow {:#x} reordered: {seq} after {prev}",
                            p.hash
                        );
                    }
                    last_out.insert(p.hash, seq);
                    out.push(p.addr);
                }
            }
        }
        buckets_seen.insert(q.bucket_of(probe));
    }
    assert!(drops.is_empty(), "{} drops", drops.len());
    while let Some(p) = q.dequeue(&mut pool, t, &mut drops) {
        out.push(p.addr);
    }
    assert!(drops.is_empty());
    assert_eq!(out.len() as u64, offered);
    out.sort_unstable();
    out.dedup();
    assert_eq!(out.len() as u64, offered, "a packet came out twice");
    assert_eq!(pool.in_use(), 0);
    // The hash really was re-seeded, many times.
    assert!(buckets_seen.len() > 100, "{} buckets", buckets_seen.len());
}

#[test]
fn flush_drops_everything_and_resets() {
    let mut q = Sfq::new(&SfqParams::default(), 8);
    let mut pool = PacketPool::new(100);
    let mut drops = Drops::default();
    for i in 0..30 {
        q.enqueue(&mut pool, pkt(i, i as u32 % 5, 100), 0, &mut drops);
    }
    q.flush(&mut pool, &mut drops);
    assert_eq!(drops.len(), 30);
    assert!(drops
        .as_slice()
        .iter()
        .all(|d| d.reason == DropReason::Flushed));
    assert_eq!(q.backlog(), Backlog::default());
    assert_eq!(q.active_flows(), 0);
    assert!(q.dequeue(&mut pool, 0, &mut drops).is_none());
    q.enqueue(&mut pool, pkt(99, 1, 100), 0, &mut drops);
    assert_eq!(q.dequeue(&mut pool, 0, &mut drops).unwrap().addr, 99);
}

#[test]
fn degenerate_parameters_do_not_panic() {
    let mut pool = PacketPool::new(100);
    let mut drops = Drops::default();
    for params in [
        SfqParams {
            limit: 0,
            ..SfqParams::default()
        },
        SfqParams {
            limit: 1,
            depth: 0,
            flows: 0,
            divisor: 0,
            quantum: 0,
            perturb_ns: 1,
        },
        SfqParams {
            divisor: 3,
            flows: 100_000,
            depth: 1000,
            limit: u32::MAX,
            quantum: u32::MAX,
            perturb_ns: u64::MAX,
        },
    ] {
        let mut q = Sfq::new(&params, 0);
        for i in 0..50 {
            q.enqueue(&mut pool, pkt(i, i as u32, 1 + i as u32), i, &mut drops);
            if i % 3 == 0 {
                q.dequeue(&mut pool, i, &mut drops);
            }
        }
        q.flush(&mut pool, &mut drops);
        assert_eq!(pool.in_use(), 0);
    }
}
