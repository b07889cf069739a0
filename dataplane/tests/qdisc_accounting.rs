//! Every packet is accounted for exactly once, whatever the sequence of
//! enqueue / dequeue / time jumps / flushes, for every leaf qdisc kind:
//! queued + sent + dropped == offered, backlog is exactly what is inside,
//! counters agree with the drops handed back, no packet comes out twice.

use std::collections::HashMap;

use proptest::prelude::*;
use weir_dataplane::packet::{flags, DropReason, Drops, Frame, Packet};
use weir_dataplane::pool::PacketPool;
use weir_dataplane::qdisc::{
    FifoLimit, FqCodel, FqCodelParams, KindStats, Qdisc, QdiscParams, RedParams, SfqParams,
};

const US: u64 = 1_000;

#[derive(Clone, Debug)]
enum Op {
    Enqueue { flow: u8, len: u16, ect: bool },
    Dequeue,
    Advance(u32),
    Flush,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        // More offered than sent, so queues fill and every limit is hit.
        120 => (0u8..12, 40u16..1600, any::<bool>())
            .prop_map(|(flow, len, ect)| Op::Enqueue { flow, len, ect }),
        70 => Just(Op::Dequeue),
        30 => (0u32..30_000).prop_map(Op::Advance),
        8 => (0u32..3_000_000).prop_map(Op::Advance),
        1 => Just(Op::Flush),
    ]
}

fn configs() -> Vec<QdiscParams> {
    vec![
        QdiscParams::Fifo(FifoLimit::Packets(10)),
        QdiscParams::Fifo(FifoLimit::Bytes(5000)),
        QdiscParams::Sfq(SfqParams::default()),
        QdiscParams::Sfq(SfqParams {
            perturb_ns: 2_000 * US,
            quantum: 300,
            limit: 20,
            divisor: 16,
            flows: 4,
            depth: 6,
        }),
        QdiscParams::Red(RedParams {
            min: 2000,
            max: 6000,
            limit: 10_000,
            avpkt: 500,
            burst: 5,
            probability: u32::MAX / 2,
            ecn: true,
            harddrop: false,
            adaptive: true,
            bandwidth: 1_000_000,
        }),
        QdiscParams::Red(RedParams {
            min: 1000,
            max: 3000,
            limit: 8000,
            avpkt: 1000,
            burst: 3,
            probability: u32::MAX / 10,
            ecn: true,
            harddrop: true,
            adaptive: false,
            bandwidth: 125_000,
        }),
        QdiscParams::FqCodel(FqCodelParams {
            limit: 30,
            flows: 8,
            quantum: 300,
            target_ns: 1_000 * US,
            interval_ns: 10_000 * US,
            ecn: true,
            ce_threshold_ns: Some(500 * US),
            memory_limit: 20_000,
            drop_batch_size: 4,
        }),
        QdiscParams::FqCodel(FqCodelParams {
            target_ns: 100 * US,
            interval_ns: 2_000 * US,
            ecn: false,
            ..FqCodelParams::default()
        }),
    ]
}

fn allowed(params: &QdiscParams, reason: DropReason) -> bool {
    use DropReason::*;
    matches!(
        (params, reason),
        (_, NoBuffer | QueueLimit | Flushed)
            | (QdiscParams::Red(_), RedEarly | RedForced)
            | (
                QdiscParams::FqCodel(_),
                Codel | FqCodelOverlimit | FqCodelOverMemory
            )
    )
}

/// Take the drops handed back: each must be a packet still inside, with a
/// reason this kind may give.
fn settle(
    params: &QdiscParams,
    inside: &mut HashMap<u64, (u32, bool)>,
    drops: &mut Drops,
    by_reason: &mut [u64],
) {
    for d in drops.drain() {
        assert!(
            inside.remove(&d.packet.addr).is_some(),
            "{}: dropped packet {} not inside (twice?)",
            params.kind(),
            d.packet.addr
        );
        assert!(
            allowed(params, d.reason),
            "{}: drop reason {:?}",
            params.kind(),
            d.reason
        );
        by_reason[d.reason.index()] += 1;
    }
}

/// Runs `ops` against one qdisc and checks the invariants after each step.
fn check(params: &QdiscParams, ops: &[Op], pool_size: u32, seed: u64) {
    let mut q = Qdisc::new(params, seed);
    let mut pool = PacketPool::new(pool_size);
    let mut drops = Drops::default();
    // addr → (len, ect) of every packet inside the qdisc.
    let mut inside: HashMap<u64, (u32, bool)> = HashMap::new();
    let mut offered = 0u64;
    let mut sent = 0u64;
    let mut by_reason = [0u64; DropReason::ALL.len()];
    let mut now = 0u64;
    for op in ops {
        match *op {
            Op::Enqueue { flow, len, ect } => {
                let mut p = Packet::new(
                    Frame {
                        addr: offered,
                        len: u32::from(len),
                    },
                    u32::from(flow).wrapping_mul(0x9e37_79b9),
                );
                if ect {
                    p.flags |= flags::ECT;
                }
                inside.insert(offered, (u32::from(len), ect));
                offered += 1;
                q.enqueue(&mut pool, p, now, &mut drops);
            }
            Op::Dequeue => {
                if let Some(p) = q.dequeue(&mut pool, now, &mut drops) {
                    let (len, ect) = inside.remove(&p.addr).unwrap_or_else(|| {
                        panic!("{}: packet {} out twice", params.kind(), p.addr)
                    });
                    assert_eq!(len, p.len);
                    assert!(p.enqueued_at <= now);
                    if p.marked_ce() {
                        assert!(ect, "{}: marked a not-ECT packet", params.kind());
                    }
                    sent += 1;
                } else {
                    // An empty answer is only allowed when the drops
                    // emptied it or it was empty.
                    settle(params, &mut inside, &mut drops, &mut by_reason);
                    assert!(
                        inside.is_empty(),
                        "{}: None with {} inside",
                        params.kind(),
                        inside.len()
                    );
                }
            }
            Op::Advance(us) => now += u64::from(us) * US,
            Op::Flush => q.flush(&mut pool, &mut drops),
        }
        settle(params, &mut inside, &mut drops, &mut by_reason);
        let b = q.backlog();
        assert_eq!(
            b.packets as usize,
            inside.len(),
            "{}: backlog packets",
            params.kind()
        );
        let bytes: u64 = inside.values().map(|&(l, _)| u64::from(l)).sum();
        assert_eq!(b.bytes, bytes, "{}: backlog bytes", params.kind());
        assert_eq!(pool.in_use() as usize, inside.len());
        let s = q.stats();
        assert_eq!(s.packets, sent);
        assert_eq!(s.drops, by_reason.iter().sum::<u64>());
        assert_eq!(s.backlog, b);
        assert_eq!(offered, inside.len() as u64 + sent + s.drops);
        match s.kind {
            KindStats::Red(r) => {
                assert_eq!(r.prob_drop, by_reason[DropReason::RedEarly.index()]);
                assert_eq!(r.forced_drop, by_reason[DropReason::RedForced.index()]);
                assert_eq!(r.pdrop, by_reason[DropReason::QueueLimit.index()]);
            }
            KindStats::FqCodel(f) => {
                let over = by_reason[DropReason::FqCodelOverlimit.index()];
                let mem = by_reason[DropReason::FqCodelOverMemory.index()];
                assert_eq!(f.drop_overlimit, over + mem);
                assert_eq!(f.drop_overmemory, mem);
                assert_eq!(f.memory_usage, b.bytes);
                assert!(f.new_flows_len + f.old_flows_len <= 1024);
            }
            KindStats::Fifo | KindStats::Sfq => {}
        }
    }
    q.flush(&mut pool, &mut drops);
    settle(params, &mut inside, &mut drops, &mut by_reason);
    assert!(inside.is_empty());
    assert_eq!(pool.in_use(), 0);
    assert_eq!(q.backlog().packets, 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_packet_is_accounted_once(
        ops in prop::collection::vec(op(), 0..400),
        pool_size in 8u32..80,
        seed in any::<u64>(),
    ) {
        for params in configs() {
            check(&params, &ops, pool_size, seed);
        }
    }

    /// FQ-CoDel's per-flow view agrees with the qdisc-wide one.
    #[test]
    fn fq_codel_flow_backlogs_sum_to_the_total(
        ops in prop::collection::vec(op(), 0..400),
        seed in any::<u64>(),
    ) {
        let params = FqCodelParams {
            limit: 40,
            flows: 16,
            quantum: 256,
            target_ns: 500 * US,
            interval_ns: 5_000 * US,
            memory_limit: 30_000,
            drop_batch_size: 3,
            ..FqCodelParams::default()
        };
        let mut q = FqCodel::new(&params, seed);
        let mut pool = PacketPool::new(1000);
        let mut drops = Drops::default();
        let mut now = 0;
        let mut addr = 0;
        for op in &ops {
            match *op {
                Op::Enqueue { flow, len, ect } => {
                    let mut p = Packet::new(Frame { addr, len: u32::from(len) }, u32::from(flow));
                    if ect {
                        p.flags |= flags::ECT;
                    }
                    addr += 1;
                    q.enqueue(&mut pool, p, now, &mut drops);
                }
                Op::Dequeue => {
                    q.dequeue(&mut pool, now, &mut drops);
                }
                Op::Advance(us) => now += u64::from(us) * US,
                Op::Flush => q.flush(&mut pool, &mut drops),
            }
            let (mut packets, mut bytes) = (0, 0);
            for f in 0..16 {
                let b = q.flow_backlog(f);
                packets += b.packets;
                bytes += b.bytes;
            }
            prop_assert_eq!(q.backlog().packets, packets);
            prop_assert_eq!(q.backlog().bytes, bytes);
            let s = q.stats();
            prop_assert!(s.new_flows_len + s.old_flows_len <= 16);
            prop_assert!(q.backlog().packets <= 40);
        }
    }
}
