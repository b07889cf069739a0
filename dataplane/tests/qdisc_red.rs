//! RED driven directly: the drop/mark curve at held average queue levels,
//! ECN and harddrop, the hard limit, idle aging and Adaptive RED.

use weir_dataplane::packet::{flags, DropReason, Drops, Frame, Packet};
use weir_dataplane::pool::PacketPool;
use weir_dataplane::qdisc::red::{self, Red};
use weir_dataplane::qdisc::{RedParams, RedStats};

const MS: u64 = 1_000_000;

fn frac(p: f64) -> u32 {
    (p * 4_294_967_296.0) as u32
}

fn params() -> RedParams {
    RedParams {
        min: 20_000,
        max: 60_000,
        limit: 200_000,
        avpkt: 1000,
        burst: 30,
        probability: frac(0.1),
        ecn: false,
        harddrop: false,
        adaptive: false,
        bandwidth: 1_250_000,
    }
}

/// Outcome counts of packets offered while the queue is held at a level.
#[derive(Debug, Default)]
struct Outcome {
    offered: u64,
    early: u64,
    forced: u64,
    pdrop: u64,
    marked: u64,
}

struct Harness {
    red: Red,
    pool: PacketPool,
    drops: Drops,
    addr: u64,
    now: u64,
    /// Virtual time per offered packet.
    step: u64,
}

impl Harness {
    fn new(p: RedParams) -> Harness {
        Harness {
            red: Red::new(&p, 42),
            pool: PacketPool::new(1000),
            drops: Drops::default(),
            addr: 0,
            now: 0,
            step: 1000,
        }
    }

    /// Offer one 1000-byte packet; true if it was queued.
    fn offer(&mut self, ect: bool) -> bool {
        let mut p = Packet::new(
            Frame {
                addr: self.addr,
                len: 1000,
            },
            1,
        );
        if ect {
            p.flags |= flags::ECT;
        }
        self.addr += 1;
        self.now += self.step;
        let before = self.red.backlog().packets;
        self.red
            .enqueue(&mut self.pool, p, self.now, &mut self.drops);
        self.red.backlog().packets > before
    }

    /// Keep the real queue at `level` bytes: every queued packet is matched
    /// by one sent, so the average converges to `level` exactly.
    /// Above max, RED itself stops the queue from growing (unless it marks):
    /// the queue is then held wherever filling stalled, still above max.
    fn hold(&mut self, level: u64, n: u64, ect: bool) -> Outcome {
        let mut refused = 0;
        while self.red.backlog().bytes < level && refused < 1000 {
            if self.offer(ect) {
                refused = 0;
            } else {
                refused += 1;
            }
        }
        while self.red.backlog().bytes > level {
            self.red.dequeue(&mut self.pool, self.now, &mut self.drops);
        }
        // Let the average settle (W is 1/16 here: 2000 packets is plenty).
        self.exchange(2000, ect);
        self.drops.clear();
        let s0 = self.red.stats();
        let mut out = Outcome {
            offered: n,
            ..Outcome::default()
        };
        self.exchange(n, ect);
        for d in self.drops.drain() {
            match d.reason {
                DropReason::RedEarly => out.early += 1,
                DropReason::RedForced => out.forced += 1,
                DropReason::QueueLimit => out.pdrop += 1,
                r => panic!("unexpected drop reason {r:?}"),
            }
        }
        let s = self.red.stats();
        out.marked = s.marked() - s0.marked();
        assert_eq!(s.prob_drop - s0.prob_drop, out.early);
        assert_eq!(s.forced_drop - s0.forced_drop, out.forced);
        assert_eq!(s.early() - s0.early(), out.early + out.forced);
        assert_eq!(s.pdrop - s0.pdrop, out.pdrop);
        out
    }
}

impl Harness {
    /// Offer `n` packets, sending one for each one queued.
    fn exchange(&mut self, n: u64, ect: bool) {
        for _ in 0..n {
            if self.offer(ect) {
                self.red
                    .dequeue(&mut self.pool, self.now, &mut self.drops)
                    .unwrap();
            }
        }
    }
}

/// The fraction of packets RED's count-spaced rule signals at a steady
/// early probability `pb`: after each signal the next comes at the first
/// packet n with `n * pb >= U`, U uniform in [0, 1), so the gap G has
/// P(G > n) = 1 - n pb and E[G] = 1 + sum_{n>=1} max(0, 1 - n pb).
fn count_spaced_fraction(pb: f64) -> f64 {
    let mut eg = 1.0;
    let mut n = 1.0;
    while n * pb < 1.0 {
        eg += 1.0 - n * pb;
        n += 1.0;
    }
    1.0 / eg
}

#[test]
fn early_drop_fraction_follows_the_configured_curve() {
    let p = params();
    let mut h = Harness::new(p);
    let n = 200_000;
    // Below min: nothing.
    let below = h.hold(10_000, n, false);
    assert_eq!(below.early + below.forced, 0);
    for level in [30_000u64, 40_000, 50_000, 59_000] {
        let o = h.hold(level, n, false);
        let pb = 0.1 * (level - 20_000) as f64 / 40_000.0;
        let want = count_spaced_fraction(pb);
        let got = o.early as f64 / o.offered as f64;
        assert!(
            (got - want).abs() <= want * 0.04,
            "avg {level}: early fraction {got}, expected {want} (p_b {pb})"
        );
        // The spacing roughly doubles the per-packet rate over p_b.
        assert!(got > 1.5 * pb && got < 2.0 * pb + 0.01);
        assert_eq!(o.forced, 0);
        assert_eq!(h.red.average(), level);
    }
    // At and above max: every packet.
    for level in [60_000u64, 90_000] {
        let o = h.hold(level, 10_000, false);
        assert_eq!(o.forced, o.offered, "avg {level}");
        assert_eq!(o.early, 0);
    }
}

#[test]
fn ecn_marks_ect_packets_instead_of_dropping() {
    let p = RedParams {
        ecn: true,
        ..params()
    };
    let mut h = Harness::new(p);
    let n = 200_000;
    let level = 40_000;
    let o = h.hold(level, n, true);
    assert_eq!(o.early + o.forced + o.pdrop, 0);
    let want = count_spaced_fraction(0.05);
    let got = o.marked as f64 / n as f64;
    assert!(
        (got - want).abs() <= want * 0.04,
        "mark fraction {got} vs {want}"
    );
    // Above max without harddrop: every ECT packet is marked, none dropped.
    let o = h.hold(80_000, 10_000, true);
    assert_eq!(o.marked, o.offered);
    assert_eq!(o.forced, 0);
    // Not-ECT packets are still dropped, early and forced.
    let o = h.hold(80_000, 1000, false);
    assert_eq!(o.forced, o.offered);
    let o = h.hold(level, n, false);
    assert!(o.early > 0 && o.marked == 0);
}

#[test]
fn marked_packets_carry_the_mark() {
    let p = RedParams {
        ecn: true,
        ..params()
    };
    let mut h = Harness::new(p);
    h.hold(80_000, 10_000, true);
    // Everything now in the queue was admitted above max, hence marked.
    let mut marked = 0;
    while let Some(p) = h.red.dequeue(&mut h.pool, h.now, &mut h.drops) {
        assert!(p.marked_ce());
        marked += 1;
    }
    assert_eq!(marked, 80);
}

#[test]
fn harddrop_drops_ect_packets_above_max() {
    let p = RedParams {
        ecn: true,
        harddrop: true,
        ..params()
    };
    let mut h = Harness::new(p);
    let o = h.hold(80_000, 10_000, true);
    assert_eq!(o.forced, o.offered);
    assert_eq!(o.marked, 0);
    // Between min and max, ECT packets are still marked.
    let o = h.hold(40_000, 50_000, true);
    assert!(o.marked > 0);
    assert_eq!(o.early + o.forced, 0);
}

#[test]
fn real_queue_is_bounded_by_limit() {
    let p = RedParams {
        limit: 5_500,
        ..params()
    };
    let mut h = Harness::new(p);
    let mut queued = 0;
    for _ in 0..10 {
        queued += u32::from(h.offer(false));
    }
    assert_eq!(queued, 5);
    assert_eq!(h.red.backlog().bytes, 5000);
    assert_eq!(h.drops.len(), 5);
    assert!(h
        .drops
        .as_slice()
        .iter()
        .all(|d| d.reason == DropReason::QueueLimit));
    assert_eq!(
        h.red.stats(),
        RedStats {
            pdrop: 5,
            ..RedStats::default()
        }
    );
}

#[test]
fn idle_time_ages_the_average() {
    // ECT traffic (marked, not dropped) fills the queue past max.
    let p = RedParams {
        ecn: true,
        ..params()
    };
    let mut h = Harness::new(p);
    h.hold(80_000, 20_000, true);
    assert_eq!(h.red.average(), 80_000);
    while h.red.dequeue(&mut h.pool, h.now, &mut h.drops).is_some() {}
    let w = 1.0 / f64::from(1u32 << h.red.wlog());
    // 1 ms idle at 1250 avpkt-packets/s = 1.25 → 1 empty packet: still
    // above max, the next packet is dropped.
    h.now += MS;
    h.step = 0;
    assert!(!h.offer(false));
    let expect = 80_000.0 * (1.0 - w);
    let got = h.red.average() as f64;
    assert!((got - expect).abs() <= 2.0, "{got} vs {expect}");
    // The queue is still empty, so the link is idle again from that
    // packet on; 2 s later (2500 packets) the average is below min and the
    // packet passes.
    h.now += 2000 * MS;
    assert!(h.offer(false));
    let expect = got * (1.0 - w).powi(2500);
    let avg = h.red.average() as f64;
    assert!(
        (avg - expect).abs() <= expect * 0.01 + 2.0,
        "{avg} vs {expect}"
    );
    assert!(avg < 20_000.0);
}

#[test]
fn adaptive_red_moves_max_probability_every_500ms() {
    let p = RedParams {
        adaptive: true,
        probability: frac(0.02),
        ..params()
    };
    let mut h = Harness::new(p);
    h.step = MS; // one packet per ms: 500 packets per adaptation period
                 // Average well above target_max (min + 0.6 (max - min) = 44 000).
    h.hold(55_000, 5_000, false);
    // ~10 periods: max_p += min(1%, max_p/4) each.
    let mut want = 0.02f64;
    // The first period starts at the first call (now = 1 ms).
    let periods = (h.now - MS) / (500 * MS);
    for _ in 0..periods {
        want += (want / 4.0).min(0.01);
    }
    let got = f64::from(h.red.max_probability()) / 4_294_967_296.0;
    assert!(
        (got - want).abs() <= 0.001,
        "max_p {got}, expected about {want} after {periods} periods"
    );
    assert!(got > 0.06);
    // Held there for long, it stops at about 50%.
    h.hold(55_000, 60_000, false);
    let high = f64::from(h.red.max_probability()) / 4_294_967_296.0;
    assert!((0.5..=0.51).contains(&high), "max_p {high}");
    // Below target_min (36 000): multiplied by 0.9 per period down to ~1%.
    h.hold(25_000, 60_000, false);
    let low = f64::from(h.red.max_probability()) / 4_294_967_296.0;
    assert!((0.0089..0.01).contains(&low), "max_p {low}");
}

#[test]
fn wlog_is_tcs() {
    let h = Harness::new(params());
    assert_eq!(Some(h.red.wlog()), red::ewma_log(20_000, 30, 1000));
    // burst 30, min/avpkt 20: W = 1/16 tolerates the burst, 1/8 does not.
    assert_eq!(h.red.wlog(), 4);
}

#[test]
fn flush_and_degenerate_parameters() {
    for p in [
        params(),
        RedParams {
            min: 0,
            max: 0,
            limit: 0,
            avpkt: 0,
            burst: 0,
            probability: u32::MAX,
            ecn: true,
            harddrop: true,
            adaptive: true,
            bandwidth: 0,
        },
        RedParams {
            min: u32::MAX,
            max: 1,
            limit: u32::MAX,
            avpkt: 1,
            burst: u32::MAX,
            probability: 0,
            ecn: false,
            harddrop: false,
            adaptive: true,
            bandwidth: u64::MAX,
        },
    ] {
        let mut h = Harness::new(p);
        for i in 0..300 {
            h.offer(i % 2 == 0);
            if i % 3 == 0 {
                h.red.dequeue(&mut h.pool, h.now, &mut h.drops);
            }
            h.now += i * 10 * MS;
        }
        let queued = h.red.backlog().packets;
        let mut drops = Drops::default();
        h.red.flush(&mut h.pool, &mut drops);
        assert_eq!(drops.len() as u32, queued);
        assert_eq!(h.pool.in_use(), 0);
        assert_eq!(h.red.average(), 0);
    }
}
