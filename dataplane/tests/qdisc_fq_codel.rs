//! FQ-CoDel driven directly in virtual time: control law, new-flow
//! priority, fattest-flow drops, limits and counters.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use weir_dataplane::packet::{flags, DropReason, Drops, Frame, Packet};
use weir_dataplane::pool::PacketPool;
use weir_dataplane::qdisc::{Backlog, FqCodel, FqCodelParams, FqCodelStats};

const MS: u64 = 1_000_000;
const US: u64 = 1_000;

fn pkt(addr: u64, hash: u32, len: u32) -> Packet {
    Packet::new(Frame { addr, len }, hash)
}

fn ect(mut p: Packet) -> Packet {
    p.flags |= flags::ECT;
    p
}

/// Flow hashes that land in distinct flow queues of `q`.
fn distinct_hashes(q: &FqCodel, n: usize) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::new();
    let mut h = 1u32;
    while out.len() < n {
        if out.iter().all(|&o| q.flow_of(o) != q.flow_of(h)) {
            out.push(h);
        }
        h = h.wrapping_mul(2_654_435_761).wrapping_add(12345);
    }
    out
}

fn count_reason(drops: &Drops, reason: DropReason) -> usize {
    drops
        .as_slice()
        .iter()
        .filter(|d| d.reason == reason)
        .count()
}

/// One bulk flow prefilled at t = 0, drained one packet per 100 µs.
/// Returns the times at which CoDel dropped or marked.
fn standing_queue(ect_packets: bool, ecn: bool) -> (Vec<u64>, FqCodel, Drops) {
    let params = FqCodelParams {
        ecn,
        ..FqCodelParams::default()
    };
    let mut q = FqCodel::new(&params, 7);
    let mut pool = PacketPool::new(20_000);
    let mut drops = Drops::default();
    for i in 0..10_000 {
        let p = pkt(i, 99, 125);
        q.enqueue(
            &mut pool,
            if ect_packets { ect(p) } else { p },
            0,
            &mut drops,
        );
    }
    assert!(drops.is_empty());
    let mut events = Vec::new();
    let mut t = 0;
    while t <= 800 * MS {
        let before = drops.len();
        let p = q.dequeue(&mut pool, t, &mut drops);
        for _ in before..drops.len() {
            events.push(t);
        }
        if p.is_some_and(|p| p.marked_ce()) {
            events.push(t);
        }
        t += 100 * US;
    }
    (events, q, drops)
}

#[test]
fn standing_queue_is_dropped_at_control_law_spacing() {
    let (times, q, drops) = standing_queue(false, true);
    // Above target (5 ms) from t = 5 ms; first drop one interval later,
    // then interval/sqrt(count) apart.
    let mut want = vec![105.1f64];
    let mut sched = 205.1f64;
    for count in 2..=8 {
        want.push(sched);
        sched += 100.0 / (count as f64).sqrt();
    }
    assert!(times.len() >= want.len());
    for (k, (&got, &w)) in times.iter().zip(&want).enumerate() {
        let got = got as f64 / MS as f64;
        assert!(
            got >= w - 0.11 && got <= w + 0.11,
            "drop {} at {got} ms, expected {w} ms",
            k + 1
        );
    }
    assert_eq!(count_reason(&drops, DropReason::Codel), times.len());
    assert_eq!(q.codel_drops(), times.len() as u64);
    assert_eq!(q.stats().ecn_mark, 0);
}

#[test]
fn ect_packets_are_marked_not_dropped() {
    let (dropped_at, _, _) = standing_queue(false, true);
    let (marked_at, q, drops) = standing_queue(true, true);
    assert!(drops.is_empty());
    assert_eq!(q.stats().ecn_mark, marked_at.len() as u64);
    assert!(marked_at.len() >= 8);
    assert_eq!(&dropped_at[..8], &marked_at[..8]);
    // With ecn off, ECT packets are dropped like any other.
    let (_, q, drops) = standing_queue(true, false);
    assert_eq!(q.stats().ecn_mark, 0);
    assert!(count_reason(&drops, DropReason::Codel) >= 8);
}

#[test]
fn sparse_flow_is_served_ahead_of_bulk() {
    let mut q = FqCodel::new(&FqCodelParams::default(), 3);
    let h = distinct_hashes(&q, 2);
    let (bulk, sparse) = (h[0], h[1]);
    let mut pool = PacketPool::new(4096);
    let mut drops = Drops::default();
    // 10 Mbit/s link: 1500 bytes every 1.2 ms. The bulk flow keeps 300
    // packets queued; the sparse flow sends 100 bytes every 10 ms.
    let tx = |len: u32| u64::from(len) * 8 * 1000 / 10; // ns at 10 Mbit/s
    let mut addr = 0;
    let mut t = 0;
    let mut next_sparse = 5 * MS;
    let mut sparse_sojourn = Vec::new();
    let mut bulk_sojourn = Vec::new();
    while t < 2000 * MS {
        while q.flow_backlog(q.flow_of(bulk)).packets < 300 {
            q.enqueue(&mut pool, pkt(addr, bulk, 1500), t, &mut drops);
            addr += 1;
        }
        if t >= next_sparse {
            q.enqueue(&mut pool, pkt(addr, sparse, 100), t, &mut drops);
            addr += 1;
            next_sparse += 10 * MS;
        }
        let p = q.dequeue(&mut pool, t, &mut drops).unwrap();
        if p.hash == sparse {
            sparse_sojourn.push(t - p.enqueued_at);
        } else {
            bulk_sojourn.push(t - p.enqueued_at);
        }
        t += tx(p.len);
    }
    assert!(sparse_sojourn.len() >= 190);
    // A sparse packet waits at most for the bulk packet being sent.
    let worst = *sparse_sojourn.iter().max().unwrap();
    assert!(worst <= tx(1500), "sparse sojourn {worst} ns");
    bulk_sojourn.sort_unstable();
    assert!(bulk_sojourn[bulk_sojourn.len() / 2] > 100 * MS);
    assert!(q.stats().new_flow_count >= 190);
}

#[test]
fn overlimit_drops_half_the_fattest_flow_from_its_head() {
    let params = FqCodelParams {
        limit: 100,
        ..FqCodelParams::default()
    };
    let mut q = FqCodel::new(&params, 11);
    let h = distinct_hashes(&q, 5);
    let mut pool = PacketPool::new(1000);
    let mut drops = Drops::default();
    for i in 0..80 {
        q.enqueue(&mut pool, pkt(i, h[0], 1000), 0, &mut drops);
    }
    let mut addr = 1000;
    for &thin in &h[1..] {
        for _ in 0..5 {
            q.enqueue(&mut pool, pkt(addr, thin, 1000), 0, &mut drops);
            addr += 1;
        }
    }
    assert!(drops.is_empty());
    assert_eq!(q.backlog().packets, 100);
    // One more packet (to a thin flow) goes over the limit: the fat flow
    // (80 000 bytes) loses packets from its head until 40 000 bytes are
    // gone: 40 packets, the oldest ones.
    q.enqueue(&mut pool, pkt(addr, h[1], 1000), 0, &mut drops);
    assert_eq!(drops.len(), 40);
    for (i, d) in drops.as_slice().iter().enumerate() {
        assert_eq!(d.reason, DropReason::FqCodelOverlimit);
        assert_eq!(d.packet.addr, i as u64);
    }
    let s = q.stats();
    assert_eq!(s.drop_overlimit, 40);
    assert_eq!(s.drop_overmemory, 0);
    assert_eq!(q.backlog().packets, 61);
    assert_eq!(q.flow_backlog(q.flow_of(h[0])).packets, 40);
    assert_eq!(q.flow_backlog(q.flow_of(h[1])).packets, 6);
    // The fat flow's head is now packet 40.
    let mut seen = Vec::new();
    while let Some(p) = q.dequeue(&mut pool, 1, &mut drops) {
        if p.hash == h[0] {
            seen.push(p.addr);
        }
    }
    assert_eq!(seen, (40..80).collect::<Vec<_>>());
}

#[test]
fn drop_batch_size_caps_one_overlimit_drop() {
    let params = FqCodelParams {
        limit: 50,
        drop_batch_size: 8,
        ..FqCodelParams::default()
    };
    let mut q = FqCodel::new(&params, 5);
    let mut pool = PacketPool::new(1000);
    let mut drops = Drops::default();
    for i in 0..51 {
        q.enqueue(&mut pool, pkt(i, 42, 500), 0, &mut drops);
    }
    assert_eq!(drops.len(), 8);
    assert_eq!(q.stats().drop_overlimit, 8);
    assert_eq!(q.backlog().packets, 43);
    assert!(drops.as_slice().iter().map(|d| d.packet.addr).eq(0..8));
}

#[test]
fn memory_limit_drops_count_as_overmemory_too() {
    let params = FqCodelParams {
        memory_limit: 20_000,
        ..FqCodelParams::default()
    };
    let mut q = FqCodel::new(&params, 9);
    let h = distinct_hashes(&q, 2);
    let mut pool = PacketPool::new(1000);
    let mut drops = Drops::default();
    for i in 0..15 {
        q.enqueue(&mut pool, pkt(i, h[0], 1000), 0, &mut drops);
    }
    for i in 15..20 {
        q.enqueue(&mut pool, pkt(i, h[1], 1000), 0, &mut drops);
    }
    assert!(drops.is_empty());
    assert_eq!(q.stats().memory_usage, 20_000);
    // 21 000 bytes > 20 000: half of the fat flow (15 000 bytes) goes.
    q.enqueue(&mut pool, pkt(20, h[1], 1000), 0, &mut drops);
    assert_eq!(drops.len(), 8);
    assert!(drops
        .as_slice()
        .iter()
        .all(|d| d.reason == DropReason::FqCodelOverMemory && d.packet.hash == h[0]));
    let s = q.stats();
    assert_eq!(s.drop_overmemory, 8);
    assert_eq!(s.drop_overlimit, 8);
    assert_eq!(s.memory_usage, 13_000);
    assert_eq!(q.backlog().bytes, 13_000);
}

#[test]
fn flow_lists_and_counters_are_exact() {
    let mut q = FqCodel::new(&FqCodelParams::default(), 1);
    let h = distinct_hashes(&q, 2);
    let (a, b) = (h[0], h[1]);
    let mut pool = PacketPool::new(100);
    let mut drops = Drops::default();
    let stats = |q: &FqCodel| {
        let s = q.stats();
        (s.new_flow_count, s.new_flows_len, s.old_flows_len)
    };
    for i in 0..3 {
        q.enqueue(&mut pool, pkt(i, a, 1000), 0, &mut drops);
    }
    assert_eq!(stats(&q), (1, 1, 0));
    // quantum 1514: two packets, then the deficit is spent and the flow
    // moves to old_flows with another quantum.
    assert_eq!(q.dequeue(&mut pool, 0, &mut drops).unwrap().addr, 0);
    assert_eq!(q.dequeue(&mut pool, 0, &mut drops).unwrap().addr, 1);
    assert_eq!(stats(&q), (1, 1, 0));
    assert_eq!(q.dequeue(&mut pool, 0, &mut drops).unwrap().addr, 2);
    assert_eq!(stats(&q), (1, 0, 1));
    // a is empty but still on old_flows; b arrives as a new flow and is
    // served first.
    q.enqueue(&mut pool, pkt(10, b, 200), 0, &mut drops);
    q.enqueue(&mut pool, pkt(3, a, 1000), 0, &mut drops);
    assert_eq!(stats(&q), (2, 1, 1));
    assert_eq!(q.dequeue(&mut pool, 0, &mut drops).unwrap().addr, 10);
    // b, emptied while new, goes to old_flows behind a; a is served.
    assert_eq!(q.dequeue(&mut pool, 0, &mut drops).unwrap().addr, 3);
    assert_eq!(stats(&q), (2, 0, 2));
    // Both old flows are empty: removed.
    assert!(q.dequeue(&mut pool, 0, &mut drops).is_none());
    assert_eq!(stats(&q), (2, 0, 0));
    // A flow that left the lists counts as new again.
    q.enqueue(&mut pool, pkt(4, a, 64), 0, &mut drops);
    assert_eq!(stats(&q), (3, 1, 0));
    let s: FqCodelStats = q.stats();
    assert_eq!(s.maxpacket, 1000);
    assert_eq!(s.memory_usage, 64);
    assert_eq!(
        q.backlog(),
        Backlog {
            packets: 1,
            bytes: 64
        }
    );
    assert!(drops.is_empty());
    q.flush(&mut pool, &mut drops);
    assert_eq!(drops.len(), 1);
    assert_eq!(drops.as_slice()[0].reason, DropReason::Flushed);
    assert_eq!(stats(&q), (3, 0, 0));
    assert_eq!(q.backlog(), Backlog::default());
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn drr_shares_bytes_not_packets() {
    let mut q = FqCodel::new(&FqCodelParams::default(), 2);
    let h = distinct_hashes(&q, 2);
    let mut pool = PacketPool::new(4000);
    let mut drops = Drops::default();
    let mut bytes = [0u64; 2];
    let mut addr = 0;
    // Both flows always backlogged, one with 1500-byte packets, one with
    // 300-byte packets; served with no time passing (no CoDel action).
    for _ in 0..20_000 {
        for (i, len) in [(0, 1500), (1, 300)] {
            while q.flow_backlog(q.flow_of(h[i])).packets < 20 {
                q.enqueue(&mut pool, pkt(addr, h[i], len), 0, &mut drops);
                addr += 1;
            }
        }
        let p = q.dequeue(&mut pool, 0, &mut drops).unwrap();
        bytes[usize::from(p.hash == h[1])] += u64::from(p.len);
    }
    let ratio = bytes[0] as f64 / bytes[1] as f64;
    assert!((ratio - 1.0).abs() < 0.01, "byte ratio {ratio}");
}

#[test]
fn pool_exhaustion_is_a_counted_drop() {
    let mut q = FqCodel::new(&FqCodelParams::default(), 2);
    let mut pool = PacketPool::new(3);
    let mut drops = Drops::default();
    for i in 0..5 {
        q.enqueue(&mut pool, pkt(i, i as u32, 100), 0, &mut drops);
    }
    assert_eq!(count_reason(&drops, DropReason::NoBuffer), 2);
    assert_eq!(q.backlog().packets, 3);
    assert_eq!(q.stats().new_flow_count, 3);
}

#[test]
fn degenerate_parameters_do_not_panic() {
    let mut pool = PacketPool::new(100);
    let mut drops = Drops::default();
    let params = FqCodelParams {
        limit: 0,
        flows: 0,
        quantum: 0,
        drop_batch_size: 0,
        target_ns: 0,
        interval_ns: 0,
        memory_limit: 0,
        ..FqCodelParams::default()
    };
    let mut q = FqCodel::new(&params, 0);
    for i in 0..10 {
        q.enqueue(&mut pool, pkt(i, i as u32, 100), i, &mut drops);
        assert!(q.dequeue(&mut pool, i, &mut drops).is_none());
    }
    assert_eq!(drops.len(), 10);
    assert_eq!(pool.in_use(), 0);
    // Zero-length frames still count against the packet limit.
    let params = FqCodelParams {
        limit: 2,
        ..FqCodelParams::default()
    };
    let mut q = FqCodel::new(&params, 0);
    for i in 0..5 {
        q.enqueue(&mut pool, pkt(i, 3, 0), 0, &mut drops);
        assert!(q.backlog().packets <= 2);
    }
}

// ---------------------------------------------------------------------------
// Responsive senders: a small AIMD ("TCP-like") model through a 100 Mbit/s
// bottleneck, to check that per-flow CoDel keeps the standing queue near
// target and that a sparse flow sees almost no queue.

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    /// The link finished sending and may dequeue the next packet.
    LinkFree,
    /// An ACK (or loss signal) for flow `f` reaches the sender.
    Ack {
        f: usize,
        ce: bool,
    },
    Loss {
        f: usize,
    },
    Ping,
}

struct Sender {
    cwnd: f64,
    ssthresh: f64,
    inflight: u32,
    last_cut: u64,
}

/// An ACK (or a loss signal) frees one packet of window and grows or
/// halves the window (at most one halving per two RTTs).
fn feedback(s: &mut Sender, t: u64, congested: bool) {
    const RTT: u64 = 20 * MS;
    s.inflight -= 1;
    if congested {
        if t.saturating_sub(s.last_cut) > RTT * 2 {
            s.cwnd = (s.cwnd / 2.0).max(2.0);
            s.ssthresh = s.cwnd;
            s.last_cut = t;
        }
    } else if s.cwnd < s.ssthresh {
        s.cwnd += 1.0;
    } else {
        s.cwnd += 1.0 / s.cwnd;
    }
}

/// Send while the window allows.
fn send(
    s: &mut Sender,
    hash: u32,
    t: u64,
    q: &mut FqCodel,
    pool: &mut PacketPool,
    drops: &mut Drops,
    addr: &mut u64,
) {
    while f64::from(s.inflight) < s.cwnd.floor() {
        q.enqueue(pool, pkt(*addr, hash, 1500), t, drops);
        *addr += 1;
        s.inflight += 1;
    }
}

#[test]
fn responsive_flows_keep_sojourn_near_target() {
    const RATE_BPS: u64 = 100_000_000;
    const RTT: u64 = 20 * MS;
    const FLOWS: usize = 4;
    let tx = |len: u32| u64::from(len) * 8 * 1_000_000_000 / RATE_BPS;
    let mut q = FqCodel::new(&FqCodelParams::default(), 17);
    let hashes = distinct_hashes(&q, FLOWS + 1);
    let ping_hash = hashes[FLOWS];
    let mut pool = PacketPool::new(20_000);
    let mut drops = Drops::default();
    let mut senders: Vec<Sender> = (0..FLOWS)
        .map(|_| Sender {
            cwnd: 2.0,
            ssthresh: 1e9,
            inflight: 0,
            last_cut: 0,
        })
        .collect();
    let mut events = BinaryHeap::new();
    let mut seq = 0u64;
    let mut push = |events: &mut BinaryHeap<_>, t: u64, ev: Ev| {
        seq += 1;
        events.push(Reverse((t, seq, ev)));
    };
    let mut addr = 0u64;
    let mut link_busy = false;
    let mut bulk_sojourn = Vec::new();
    let mut ping_sojourn = Vec::new();
    let warmup = 5_000 * MS;
    let end = 30_000 * MS;
    push(&mut events, 0, Ev::Ping);
    for (f, s) in senders.iter_mut().enumerate() {
        push(&mut events, f as u64 * MS, Ev::Ack { f, ce: false });
        s.inflight = 1; // the kick-off "ACK" releases it
    }
    while let Some(Reverse((t, _, ev))) = events.pop() {
        if t > end {
            break;
        }
        match ev {
            Ev::LinkFree => link_busy = false,
            Ev::Ping => {
                q.enqueue(&mut pool, pkt(addr, ping_hash, 64), t, &mut drops);
                addr += 1;
                push(&mut events, t + 20 * MS, Ev::Ping);
            }
            Ev::Ack { f, ce } => {
                let congested = ce;
                feedback(&mut senders[f], t, congested);
                send(
                    &mut senders[f],
                    hashes[f],
                    t,
                    &mut q,
                    &mut pool,
                    &mut drops,
                    &mut addr,
                );
            }
            Ev::Loss { f } => {
                feedback(&mut senders[f], t, true);
                send(
                    &mut senders[f],
                    hashes[f],
                    t,
                    &mut q,
                    &mut pool,
                    &mut drops,
                    &mut addr,
                );
            }
        }
        // Losses are noticed about one RTT later.
        for d in drops.drain() {
            if d.packet.hash != ping_hash {
                let f = hashes.iter().position(|&h| h == d.packet.hash).unwrap();
                push(&mut events, t + RTT, Ev::Loss { f });
            }
        }
        if !link_busy {
            if let Some(p) = q.dequeue(&mut pool, t, &mut drops) {
                link_busy = true;
                let done = t + tx(p.len);
                push(&mut events, done, Ev::LinkFree);
                let sojourn = t - p.enqueued_at;
                if p.hash == ping_hash {
                    if t > warmup {
                        ping_sojourn.push(sojourn);
                    }
                } else {
                    if t > warmup {
                        bulk_sojourn.push(sojourn);
                    }
                    let f = hashes.iter().position(|&h| h == p.hash).unwrap();
                    push(
                        &mut events,
                        done + RTT,
                        Ev::Ack {
                            f,
                            ce: p.marked_ce(),
                        },
                    );
                }
            }
            for d in drops.drain() {
                if d.packet.hash != ping_hash {
                    let f = hashes.iter().position(|&h| h == d.packet.hash).unwrap();
                    push(&mut events, t + RTT, Ev::Loss { f });
                }
            }
        }
    }
    bulk_sojourn.sort_unstable();
    ping_sojourn.sort_unstable();
    let median = bulk_sojourn[bulk_sojourn.len() / 2];
    let p99 = ping_sojourn[ping_sojourn.len() * 99 / 100];
    eprintln!(
        "bulk sojourn p10 {} p50 {} p90 {} us; ping p99 {} us; codel drops {}; stats {:?}; n {}",
        bulk_sojourn[bulk_sojourn.len() / 10] / US,
        median / US,
        bulk_sojourn[bulk_sojourn.len() * 9 / 10] / US,
        p99 / US,
        q.codel_drops(),
        q.stats(),
        bulk_sojourn.len()
    );
    // The link stays busy: at least 90% of its capacity carried bulk data.
    let capacity = (end - warmup) / tx(1500);
    assert!(
        bulk_sojourn.len() as u64 * 10 >= capacity * 9,
        "{} bulk packets of {capacity}",
        bulk_sojourn.len()
    );
    assert!(median <= 10 * MS, "median bulk sojourn {} us", median / US);
    assert!(p99 < MS, "p99 sparse sojourn {} us", p99 / US);
    assert!(q.codel_drops() > 0);
}
