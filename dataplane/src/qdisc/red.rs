//! RED, Random Early Detection (Floyd & Jacobson 1993; Linux `sch_red.c`
//! and `include/net/red.h`), with Adaptive RED (Floyd, Gummadi & Shenker
//! 2001) as an option.
//!
//! At each enqueue the average queue (bytes) is updated as an EWMA of the
//! real backlog with weight `2^-wlog`, where `wlog` comes from min, burst
//! and avpkt exactly as tc's `tc_red_eval_ewma` derives it. Then:
//! - average below `min`: queue the packet;
//! - between `min` and `max`: drop (or, with `ecn`, mark an ECT packet)
//!   with probability `p_b = probability * (avg - min) / (max - min)`,
//!   spaced out by Linux's `qcount` rule: the chance grows with the number
//!   of packets since the last mark, `count * p_b`, so marks come roughly
//!   uniformly every 1..1/p_b packets (about `2 p_b / (1 + p_b)` of
//!   packets at a steady average), instead of in clusters;
//! - at or above `max`: drop every packet (or mark, with `ecn` and without
//!   `harddrop`);
//! - the real queue is a byte FIFO bounded by `limit` (tail drop).
//!
//! After an idle period the average is aged as if `idle * bandwidth /
//! avpkt` empty packets had arrived: `avg *= (1 - W)^m`, computed exactly
//! in fixed point by repeated squaring (tc approximates the same with its
//! Scell_log/Stab table).
//!
//! With `adaptive`, every 500 ms (driven by `now`) `probability` is raised
//! by min(1%, p/4) when the average is above `min + 0.6 (max - min)`, or
//! multiplied by 0.9 when below `min + 0.4 (max - min)`, within 1%..50%.
//!
//! No floating point per packet: the average is a `u64` scaled by
//! `2^wlog`, the probability a fraction of 2^32, the random numbers a
//! seeded xorshift.

use super::{Backlog, RedParams, RedStats};
use crate::packet::{DropReason, Drops, Packet};
use crate::pool::{PacketList, PacketPool};

/// Adaptive RED's adjustment period.
pub const ADAPT_PERIOD_NS: u64 = 500_000_000;
/// 1% as a fraction of 2^32 (rounded as Linux's `RED_ONE_PERCENT`).
const ONE_PERCENT: u32 = (((1u64 << 32) + 50) / 100) as u32;
const MAX_P_MIN: u32 = ONE_PERCENT;
const MAX_P_MAX: u32 = 50 * ONE_PERCENT;
/// EWMA weight used when `ewma_log` finds none (the config layer should
/// have rejected such parameters, as tc does): W = 1/512, Floyd's 0.002.
const FALLBACK_WLOG: u8 = 9;
/// Most adaptive steps run in one call after a long gap: from 50% the
/// decrease reaches the 1% floor in 38 steps.
const MAX_ADAPT_STEPS: u32 = 64;

/// The EWMA weight exponent tc derives for `min`, `burst` (packets) and
/// `avpkt` (tc's `tc_red_eval_ewma`): the smallest `wlog` in 1..32 for
/// which a burst of `burst` back-to-back packets of `avpkt` bytes arriving
/// at an empty queue still leaves the average below `min`:
/// `burst + 1 - min/avpkt <= (1 - (1 - W)^burst) / W` with `W = 2^-wlog`.
/// `None` when there is none (burst too small or too large for min; tc
/// refuses such parameters). Runs once at configuration time.
pub fn ewma_log(min: u32, burst: u32, avpkt: u32) -> Option<u8> {
    if avpkt == 0 || burst == 0 {
        return None;
    }
    let a = f64::from(burst) + 1.0 - f64::from(min) / f64::from(avpkt);
    if a < 1.0 {
        return None;
    }
    let mut w = 0.5f64;
    for wlog in 1..32u8 {
        let tolerated = (1.0 - (1.0 - w).powi(burst.min(i32::MAX as u32) as i32)) / w;
        if a <= tolerated {
            return Some(wlog);
        }
        w /= 2.0;
    }
    None
}

/// Small, seeded, non-cryptographic RNG (xorshift64*).
#[derive(Clone, Copy, Debug)]
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        // Any seed, including 0, must give a non-zero state.
        XorShift((seed ^ 0x2545_F491_4F6C_DD1D) | 1)
    }

    fn next_u32(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32
    }
}

/// What RED decides for one arriving packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Pass,
    Early,
    Forced,
}

#[derive(Debug)]
pub struct Red {
    queue: PacketList,
    limit: u64,
    ecn: bool,
    harddrop: bool,
    adaptive: bool,
    wlog: u8,
    /// Thresholds scaled by 2^wlog like `qavg`.
    min_scaled: u64,
    max_scaled: u64,
    /// max - min, at least 1.
    delta: u64,
    /// Current max probability, fraction of 2^32 (adapted with `adaptive`).
    max_p: u32,
    /// Adaptive RED's target band for the average, bytes.
    target_min: u64,
    target_max: u64,
    /// Q1.63 `1 - 2^-wlog`, the per-empty-packet decay while idle.
    keep_q63: u64,
    /// Link rate and average packet size for idle aging.
    bandwidth: u64,
    avpkt: u64,
    /// Average queue, bytes scaled by 2^wlog.
    qavg: u64,
    /// Packets since the last early mark; -1 while below min (Linux).
    qcount: i64,
    /// Random threshold for the current early-mark cycle.
    q_r: u32,
    /// Start of the current idle period (queue empty since).
    idle_since: Option<u64>,
    next_adapt: Option<u64>,
    rng: XorShift,
    stats: RedStats,
}

impl Red {
    pub fn new(p: &RedParams, seed: u64) -> Red {
        let wlog = ewma_log(p.min, p.burst, p.avpkt).unwrap_or(FALLBACK_WLOG);
        let min = u64::from(p.min);
        let max = u64::from(p.max);
        let delta = max.saturating_sub(min).max(1);
        Red {
            queue: PacketList::new(),
            limit: u64::from(p.limit),
            ecn: p.ecn,
            harddrop: p.harddrop,
            adaptive: p.adaptive,
            wlog,
            min_scaled: min << wlog,
            max_scaled: max << wlog,
            delta,
            max_p: p.probability,
            target_min: min + 2 * (delta / 5),
            target_max: min + 3 * (delta / 5),
            keep_q63: (1u64 << 63) - (1u64 << (63 - u32::from(wlog))),
            bandwidth: p.bandwidth,
            avpkt: u64::from(p.avpkt.max(1)),
            qavg: 0,
            qcount: -1,
            q_r: 0,
            idle_since: None,
            next_adapt: None,
            rng: XorShift::new(seed),
            stats: RedStats::default(),
        }
    }

    /// The EWMA weight exponent in use (tc's `ewma` / Wlog).
    pub fn wlog(&self) -> u8 {
        self.wlog
    }

    /// Current average queue, bytes.
    pub fn average(&self) -> u64 {
        self.qavg >> self.wlog
    }

    /// Current max probability (at `max`), fraction of 2^32; moves with
    /// `adaptive`.
    pub fn max_probability(&self) -> u32 {
        self.max_p
    }

    pub fn enqueue(
        &mut self,
        pool: &mut PacketPool,
        mut packet: Packet,
        now: u64,
        drops: &mut Drops,
    ) {
        self.maybe_adapt(now);
        self.qavg = match self.idle_since.take() {
            Some(since) => self.aged_average(now.saturating_sub(since)),
            // qavg = qavg * (1 - W) + backlog * W, scaled by 2^wlog.
            None => self.qavg - (self.qavg >> self.wlog) + self.queue.bytes(),
        };
        match self.admit(&mut packet) {
            Ok(()) => {
                packet.enqueued_at = now;
                if let Err(p) = self.queue.push_back(pool, packet) {
                    drops.push(p, DropReason::NoBuffer);
                }
            }
            Err(reason) => drops.push(packet, reason),
        }
        if self.queue.is_empty() {
            // A packet dropped at an empty queue leaves the link idle.
            self.idle_since = Some(now);
        }
    }

    /// RED's verdict for one arriving packet (marking it if so decided),
    /// then the real queue's byte limit.
    fn admit(&mut self, packet: &mut Packet) -> Result<(), DropReason> {
        match self.action() {
            Action::Pass => {}
            Action::Early => {
                if self.ecn && packet.set_ce() {
                    self.stats.prob_mark += 1;
                } else {
                    self.stats.prob_drop += 1;
                    return Err(DropReason::RedEarly);
                }
            }
            Action::Forced => {
                if self.ecn && !self.harddrop && packet.set_ce() {
                    self.stats.forced_mark += 1;
                } else {
                    self.stats.forced_drop += 1;
                    return Err(DropReason::RedForced);
                }
            }
        }
        if self.queue.bytes() + u64::from(packet.len) > self.limit {
            self.stats.pdrop += 1;
            return Err(DropReason::QueueLimit);
        }
        Ok(())
    }

    pub fn dequeue(
        &mut self,
        pool: &mut PacketPool,
        now: u64,
        _drops: &mut Drops,
    ) -> Option<Packet> {
        self.maybe_adapt(now);
        let packet = self.queue.pop_front(pool);
        // The link goes idle when the queue empties (Linux notices at the
        // next dequeue that finds nothing; the same instant when the
        // parent keeps polling).
        if self.queue.is_empty() && self.idle_since.is_none() {
            self.idle_since = Some(now);
        }
        packet
    }

    pub fn backlog(&self) -> Backlog {
        Backlog {
            packets: self.queue.len(),
            bytes: self.queue.bytes(),
        }
    }

    /// Empty the queue; the average restarts from zero (Linux's
    /// `red_restart`).
    pub fn flush(&mut self, pool: &mut PacketPool, drops: &mut Drops) {
        while let Some(p) = self.queue.pop_front(pool) {
            drops.push(p, DropReason::Flushed);
        }
        self.qavg = 0;
        self.qcount = -1;
        self.idle_since = None;
    }

    pub fn stats(&self) -> RedStats {
        self.stats
    }

    /// Linux's `red_action`: where the average stands, and for the band
    /// between min and max, the count-spaced random decision.
    fn action(&mut self) -> Action {
        if self.qavg < self.min_scaled {
            self.qcount = -1;
            return Action::Pass;
        }
        if self.qavg >= self.max_scaled {
            self.qcount = -1;
            return Action::Forced;
        }
        self.qcount += 1;
        if self.qcount == 0 {
            // Just crossed min: draw the threshold for this cycle.
            self.q_r = self.rng.next_u32();
            return Action::Pass;
        }
        // Mark when count * p_b >= R, R uniform in [0, 1):
        //   count * (avg - min) * max_p / (delta * 2^32) >= q_r / 2^32
        let excess = (self.qavg - self.min_scaled) >> self.wlog;
        let lhs = self.qcount as u128 * u128::from(excess) * u128::from(self.max_p);
        let rhs = u128::from(self.q_r) * u128::from(self.delta);
        if lhs >= rhs {
            self.qcount = 0;
            self.q_r = self.rng.next_u32();
            return Action::Early;
        }
        Action::Pass
    }

    /// The average after `idle_ns` of empty queue: as if `m = idle_ns *
    /// bandwidth / avpkt` empty packets had arrived, `qavg * (1 - W)^m`.
    /// Exponentiation by squaring in Q1.63: at most 64 squarings, once per
    /// idle period.
    fn aged_average(&self, idle_ns: u64) -> u64 {
        let m = u128::from(idle_ns) * u128::from(self.bandwidth)
            / (u128::from(self.avpkt) * 1_000_000_000);
        let mut m = m.min(u128::from(u64::MAX)) as u64;
        let one = 1u128 << 63;
        let mut factor = one;
        let mut base = u128::from(self.keep_q63);
        while m > 0 && factor > 0 {
            if m & 1 == 1 {
                factor = (factor * base) >> 63;
            }
            base = (base * base) >> 63;
            m >>= 1;
        }
        ((u128::from(self.qavg) * factor) >> 63) as u64
    }

    /// Adaptive RED: run every adaptation period that has come due.
    fn maybe_adapt(&mut self, now: u64) {
        if !self.adaptive {
            return;
        }
        let Some(mut due) = self.next_adapt else {
            self.next_adapt = Some(now.saturating_add(ADAPT_PERIOD_NS));
            return;
        };
        let mut steps = 0;
        while now >= due && steps < MAX_ADAPT_STEPS {
            let avg = match self.idle_since {
                Some(since) => self.aged_average(due.saturating_sub(since)),
                None => self.qavg,
            } >> self.wlog;
            if avg > self.target_max && self.max_p <= MAX_P_MAX {
                self.max_p += (self.max_p / 4).min(ONE_PERCENT);
            } else if avg < self.target_min && self.max_p >= MAX_P_MIN {
                self.max_p = self.max_p / 10 * 9;
            }
            due = due.saturating_add(ADAPT_PERIOD_NS);
            steps += 1;
        }
        if now >= due {
            // A long gap: the remaining steps would only repeat the last.
            due = now.saturating_add(ADAPT_PERIOD_NS);
        }
        self.next_adapt = Some(due);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ewma_log_matches_tc() {
        // tc-red(8) example: min 30000 avpkt 1000 burst 55 → ewma 5.
        assert_eq!(ewma_log(30000, 55, 1000), Some(5));
        // The seed's `min 10000 max 30000 avpkt 1000 burst 20`.
        let w = ewma_log(10000, 20, 1000).unwrap();
        let burst_ok = |w: u8| {
            let ww = 1.0 / f64::from(1u32 << w);
            21.0 - 10.0 <= (1.0 - (1.0 - ww).powi(20)) / ww
        };
        assert!(burst_ok(w) && !burst_ok(w - 1));
        assert_eq!(ewma_log(30000, 10, 1000), None);
        assert_eq!(ewma_log(30000, 0, 1000), None);
    }

    #[test]
    fn one_percent_is_linux_rounding() {
        assert_eq!(ONE_PERCENT, 42_949_673);
    }

    #[test]
    fn idle_aging_is_exponential() {
        let p = RedParams {
            min: 10_000,
            max: 30_000,
            limit: 100_000,
            avpkt: 1000,
            burst: 20,
            probability: 0,
            ecn: false,
            harddrop: false,
            adaptive: false,
            bandwidth: 1_000_000, // 1000 packets/s of avpkt
        };
        let mut r = Red::new(&p, 1);
        r.qavg = 20_000u64 << r.wlog;
        let w = 1.0 / f64::from(1u32 << r.wlog);
        // 10 ms idle = 10 empty packets.
        let got = (r.aged_average(10_000_000) >> r.wlog) as f64;
        let want = 20_000.0 * (1.0 - w).powi(10);
        assert!((got - want).abs() <= 2.0, "got {got} want {want}");
        assert_eq!(r.aged_average(3_600_000_000_000), 0);
        assert_eq!(r.aged_average(0), r.qavg);
    }
}
