//! CoDel's control law, driven directly over a plain FIFO in virtual time.

use weir_dataplane::packet::{flags, DropReason, Drops, Frame, Packet};
use weir_dataplane::pool::{PacketList, PacketPool};
use weir_dataplane::qdisc::codel::{self, CodelParams, CodelQueue, CodelStats, CodelVars};

const MS: u64 = 1_000_000;
const US: u64 = 1_000;

struct Fifo<'a> {
    list: &'a mut PacketList,
    pool: &'a mut PacketPool,
}

impl CodelQueue for Fifo<'_> {
    fn pop(&mut self) -> Option<Packet> {
        self.list.pop_front(self.pool)
    }
    fn backlog_bytes(&self) -> u64 {
        self.list.bytes()
    }
}

struct Harness {
    pool: PacketPool,
    list: PacketList,
    vars: CodelVars,
    params: CodelParams,
    stats: CodelStats,
    drops: Drops,
    next_addr: u64,
}

impl Harness {
    fn new(params: CodelParams) -> Harness {
        Harness {
            pool: PacketPool::new(200_000),
            list: PacketList::new(),
            vars: CodelVars::new(),
            params,
            stats: CodelStats::default(),
            drops: Drops::default(),
            next_addr: 0,
        }
    }

    fn push(&mut self, len: u32, enqueued_at: u64, ect: bool) {
        let mut p = Packet::new(
            Frame {
                addr: self.next_addr,
                len,
            },
            0,
        );
        self.next_addr += 1;
        p.enqueued_at = enqueued_at;
        if ect {
            p.flags |= flags::ECT;
        }
        self.list.push_back(&mut self.pool, p).unwrap();
    }

    fn dequeue(&mut self, now: u64) -> Option<Packet> {
        let mut q = Fifo {
            list: &mut self.list,
            pool: &mut self.pool,
        };
        codel::dequeue(
            &mut q,
            &mut self.vars,
            &self.params,
            &mut self.stats,
            now,
            &mut self.drops,
        )
    }
}

/// Expected drop (or mark) times: the first when the sojourn has been
/// above target for an interval, then at the scheduled `drop_next`, which
/// advances by `interval / sqrt(count)` from the previous schedule (not
/// from the tick the drop actually happened on), rounded up to the tick.
fn expected_schedule(first: u64, interval: u64, tick: u64, n: usize) -> Vec<u64> {
    let mut out = vec![first];
    let mut sched = first as f64 + interval as f64;
    for count in 2..=n {
        let t = (sched / tick as f64).ceil() as u64 * tick;
        out.push(t);
        sched += interval as f64 / (count as f64).sqrt();
    }
    out
}

/// A queue prefilled at t = 0 and drained one packet per tick: the sojourn
/// grows past target at 5 ms and stays there.
fn standing_queue(ecn_packets: bool, ecn: bool) -> (Vec<u64>, Harness) {
    let params = CodelParams {
        ecn,
        ..CodelParams::default()
    };
    let mut h = Harness::new(params);
    for _ in 0..50_000 {
        h.push(125, 0, ecn_packets);
    }
    let tick = 100 * US;
    let mut events = Vec::new();
    let mut t = 0;
    while t <= 1200 * MS {
        let before = h.drops.len();
        let p = h.dequeue(t);
        for _ in before..h.drops.len() {
            events.push(t);
        }
        if let Some(p) = p {
            if p.marked_ce() {
                events.push(t);
            }
        }
        t += tick;
    }
    (events, h)
}

#[test]
fn drops_follow_the_control_law() {
    let (drops, h) = standing_queue(false, false);
    // Sojourn reaches 5 ms at t = 5 ms; above target for a whole interval
    // after 105 ms; the first tick strictly after that drops.
    let tick = 100 * US;
    let want = expected_schedule(105 * MS + tick, 100 * MS, tick, 12);
    assert!(drops.len() >= want.len(), "{drops:?}");
    for (k, (&got, &w)) in drops.iter().zip(&want).enumerate() {
        assert!(
            got.abs_diff(w) <= tick,
            "drop {} at {got} ns, expected {w} ns (all: {drops:?})",
            k + 1
        );
    }
    // First gaps: interval, interval/sqrt(2), interval/sqrt(3).
    let gap = |i: usize| (drops[i + 1] - drops[i]) as f64 / MS as f64;
    assert!((gap(0) - 100.0).abs() <= 0.2);
    assert!((gap(1) - 70.71).abs() <= 0.2);
    assert!((gap(2) - 57.74).abs() <= 0.2);
    assert!((gap(3) - 50.0).abs() <= 0.2);
    assert_eq!(h.stats.drop_count, drops.len() as u64);
    assert!(h
        .drops
        .as_slice()
        .iter()
        .all(|d| d.reason == DropReason::Codel));
    assert_eq!(h.stats.ecn_mark, 0);
    assert!(h.vars.dropping());
}

#[test]
fn ecn_marks_instead_of_dropping_at_the_same_spacing() {
    let (dropped, _) = standing_queue(false, false);
    let (marked, h) = standing_queue(true, true);
    assert!(
        h.drops.is_empty(),
        "ECT packets must be marked, not dropped"
    );
    assert_eq!(h.stats.drop_count, 0);
    assert_eq!(h.stats.ecn_mark, marked.len() as u64);
    // Marking does not remove the next packet, so the two runs see the same
    // sojourns at the same ticks and signal at the same times.
    for (a, b) in dropped.iter().zip(&marked).take(12) {
        assert_eq!(a, b);
    }
}

#[test]
fn ecn_on_still_drops_non_ect_packets() {
    let (drops, h) = standing_queue(false, true);
    assert!(drops.len() > 10);
    assert_eq!(h.stats.ecn_mark, 0);
    assert_eq!(h.stats.drop_count, drops.len() as u64);
}

#[test]
fn no_drop_while_backlog_is_at_most_one_mtu() {
    let mut h = Harness::new(CodelParams::default());
    for i in 0..100u64 {
        // One very old 1500-byte packet at a time: sojourn is huge, but it
        // is not a standing queue.
        h.push(1500, 0, false);
        let p = h.dequeue(1000 * MS + i * 200 * MS);
        assert!(p.is_some());
    }
    assert!(h.drops.is_empty());
    assert!(!h.vars.dropping());
    assert_eq!(h.stats.maxpacket, 1500);
}

#[test]
fn leaves_dropping_below_target_and_resumes_the_old_rate() {
    let mut h = Harness::new(CodelParams::default());
    let tick = 100 * US;
    let mut t = 0;
    // A standing queue: every packet has been waiting 20 ms.
    let run = |h: &mut Harness, until: u64, t: &mut u64, sojourn: u64| {
        while *t < until {
            while h.list.len() < 100 {
                h.push(125, t.saturating_sub(sojourn), false);
            }
            h.dequeue(*t);
            *t += tick;
        }
    };
    run(&mut h, 600 * MS, &mut t, 20 * MS);
    assert!(h.vars.dropping());
    let count = h.vars.count();
    assert!(count >= 6, "count {count}");
    let dropped = h.stats.drop_count;
    // The queue empties; fresh packets (1 ms sojourn) leave the dropping
    // state.
    while h.list.pop_front(&mut h.pool).is_some() {}
    h.push(125, t - MS, false);
    h.push(125, t - MS, false);
    h.dequeue(t);
    assert!(!h.vars.dropping());
    // Standing again well within 16 intervals: after one interval above
    // target CoDel re-enters with count - lastcount (lastcount was 1).
    while h.list.pop_front(&mut h.pool).is_some() {}
    let resume = t + 50 * MS;
    t = resume;
    while !h.vars.dropping() && t < resume + 300 * MS {
        while h.list.len() < 100 {
            h.push(125, t.saturating_sub(20 * MS), false);
        }
        h.dequeue(t);
        t += tick;
    }
    assert!(h.vars.dropping());
    assert_eq!(h.vars.count(), count - 1);
    assert!(h.stats.drop_count > dropped);
}

#[test]
fn restarts_at_count_one_after_a_long_calm() {
    let mut h = Harness::new(CodelParams::default());
    let tick = 100 * US;
    let mut t = 0;
    while t < 600 * MS {
        while h.list.len() < 100 {
            h.push(125, t.saturating_sub(20 * MS), false);
        }
        h.dequeue(t);
        t += tick;
    }
    assert!(h.vars.count() > 2);
    while h.list.pop_front(&mut h.pool).is_some() {}
    // 3 s of calm (> 16 intervals after the last scheduled drop).
    t += 3000 * MS;
    h.push(125, t, false);
    h.push(125, t, false);
    h.dequeue(t);
    assert!(!h.vars.dropping());
    while h.list.pop_front(&mut h.pool).is_some() {}
    let start = t;
    while !h.vars.dropping() && t < start + 300 * MS {
        while h.list.len() < 100 {
            h.push(125, t.saturating_sub(20 * MS), false);
        }
        h.dequeue(t);
        t += tick;
    }
    assert!(h.vars.dropping());
    assert_eq!(h.vars.count(), 1);
}

#[test]
fn ce_threshold_marks_ect_packets_above_it() {
    let params = CodelParams {
        ce_threshold: Some(MS),
        ..CodelParams::default()
    };
    let mut h = Harness::new(params);
    let now = 10 * MS;
    // Sojourn 2 ms: below target (no AQM action) but above ce_threshold.
    for i in 0..10 {
        h.push(1000, now - 2 * MS, i % 2 == 0);
    }
    // Sojourn 0.5 ms: below the threshold.
    h.push(1000, now - MS / 2, true);
    let mut marked = 0;
    let mut got = 0;
    while let Some(p) = h.dequeue(now) {
        got += 1;
        if p.marked_ce() {
            marked += 1;
            assert!(p.is_ect());
        }
    }
    assert_eq!(got, 11);
    assert_eq!(marked, 5);
    assert_eq!(h.stats.ce_mark, 5);
    assert!(h.drops.is_empty());
}

#[test]
fn empty_queue_leaves_dropping_state() {
    let (_, mut h) = standing_queue(false, false);
    assert!(h.vars.dropping());
    while h.list.pop_front(&mut h.pool).is_some() {}
    assert!(h.dequeue(2000 * MS).is_none());
    assert!(!h.vars.dropping());
}

#[test]
fn drops_per_call_are_bounded() {
    let mut h = Harness::new(CodelParams::default());
    for _ in 0..10_000 {
        h.push(125, 0, false);
    }
    // Enter the dropping state...
    let mut t = 0;
    while !h.vars.dropping() {
        h.dequeue(t);
        t += MS;
    }
    // ...then go unserved for an hour: thousands of drops are "due".
    let before = h.drops.len();
    assert!(h.dequeue(t + 3_600_000 * MS).is_some());
    let n = h.drops.len() - before;
    assert!(n <= codel::MAX_DROPS_PER_DEQUEUE as usize, "{n} drops");
    assert!(n > 0);
}
