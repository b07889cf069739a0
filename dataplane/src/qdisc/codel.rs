//! CoDel, the Controlled-Delay AQM (Nichols & Jacobson; RFC 8289), written
//! once over any FIFO so that FQ-CoDel's per-flow queues share it.
//!
//! As Linux's `include/net/codel.h` does, parameters ([`CodelParams`]),
//! per-queue state ([`CodelVars`]) and counters ([`CodelStats`]) are kept
//! apart: FQ-CoDel holds one `CodelVars` per flow and one params/stats pair
//! for the whole qdisc. The queue itself is reached through [`CodelQueue`].
//!
//! The algorithm, as Linux runs it:
//! - at dequeue, a packet whose sojourn time is at or above `target` (and
//!   the queue holds more than one `mtu` behind it) starts a clock; if the
//!   sojourn stays above target for a whole `interval`, CoDel enters the
//!   *dropping* state and drops (or ECN-marks) one packet;
//! - while dropping, the next drop is due at `drop_next`, advanced by the
//!   control law `interval / sqrt(count)` after each drop, so the drop rate
//!   grows with the square root of the drops so far;
//! - it leaves the dropping state as soon as a packet's sojourn is below
//!   target (or the queue holds at most one mtu);
//! - re-entering soon after leaving (within 16 intervals) resumes from the
//!   drop rate that controlled the queue last time (`count - lastcount`)
//!   instead of starting over at 1.
//!
//! Time is plain `u64` nanoseconds (Linux uses a wrapping 1024 ns clock).
//! No floating point: `1/sqrt(count)` is a Q0.32 fixed-point value kept in
//! [`CodelVars`] and refined by one Newton step per drop, as Linux does;
//! for the first [`INV_SQRT_CACHE`] counts an exact table is used instead
//! (as Linux's `sch_cake` does), because a single Newton step from
//! `count = 1` gives `1/2` for `count = 2` instead of `1/sqrt(2)` — a 30%
//! error in the second drop spacing, exactly when it matters most.

use crate::packet::{DropReason, Drops, Packet};

/// The frame size CoDel compares the backlog against before it drops
/// (Linux uses the device's `psched_mtu`: MTU plus link-layer header).
pub const DEFAULT_MTU: u32 = 1514;

/// Most packets one [`dequeue`] call drops. How many drops are due depends
/// on how long the queue went unserved and on its backlog, both outside
/// CoDel's control; past this many the schedule is resynchronised to `now`
/// so one call's work stays bounded.
pub const MAX_DROPS_PER_DEQUEUE: u32 = 256;

/// Counts up to this use an exact `1/sqrt(count)` from a table; above it a
/// single Newton step per drop is accurate enough (the relative change
/// between consecutive counts is small).
pub const INV_SQRT_CACHE: usize = 16;

/// Q0.32 `1/sqrt(n)` for n in 0..=INV_SQRT_CACHE (n = 0 and 1 → ~1.0).
const INV_SQRT_TABLE: [u32; INV_SQRT_CACHE + 1] = inv_sqrt_table();

const fn isqrt_u128(n: u128) -> u128 {
    // Bit-by-bit integer square root: floor(sqrt(n)).
    let mut rem = n;
    let mut root: u128 = 0;
    let mut bit: u128 = 1 << 126;
    while bit > n {
        bit >>= 2;
    }
    while bit != 0 {
        if rem >= root + bit {
            rem -= root + bit;
            root = (root >> 1) + bit;
        } else {
            root >>= 1;
        }
        bit >>= 2;
    }
    root
}

const fn inv_sqrt_table() -> [u32; INV_SQRT_CACHE + 1] {
    let mut t = [u32::MAX; INV_SQRT_CACHE + 1];
    let mut n = 2;
    while n <= INV_SQRT_CACHE {
        // 2^32 / sqrt(n) == sqrt(2^64 / n)
        t[n] = isqrt_u128((1u128 << 64) / n as u128) as u32;
        n += 1;
    }
    t
}

/// CoDel parameters (shared by every queue of one qdisc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodelParams {
    /// Acceptable standing sojourn time, ns (default 5 ms).
    pub target: u64,
    /// Width of the moving window over which the sojourn must stay above
    /// target before dropping starts, ns (default 100 ms; roughly a
    /// worst-case RTT).
    pub interval: u64,
    /// Never drop while the backlog (after taking the packet out) is at
    /// most this many bytes: a queue holding one packet is not a standing
    /// queue, whatever its sojourn.
    pub mtu: u32,
    /// Mark ECT packets CE instead of dropping them.
    pub ecn: bool,
    /// CE-mark ECT packets whose sojourn exceeds this, regardless of the
    /// dropping state (tc's `ce_threshold`, for DCTCP-style senders).
    pub ce_threshold: Option<u64>,
}

impl Default for CodelParams {
    /// Linux's `codel_params_init`: 5 ms / 100 ms, no ECN, no ce_threshold.
    fn default() -> Self {
        CodelParams {
            target: 5_000_000,
            interval: 100_000_000,
            mtu: DEFAULT_MTU,
            ecn: false,
            ce_threshold: None,
        }
    }
}

/// Per-queue CoDel state (one per FQ-CoDel flow). 32 bytes, so that a
/// FQ-CoDel flow (queue + state + deficit + link) fits one 64-byte line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CodelVars {
    /// Drops (and marks) since entering the dropping state, plus any
    /// carried over from the previous dropping episode.
    count: u32,
    /// `count` when the dropping state was last entered.
    lastcount: u32,
    /// Q0.32 approximation of `1/sqrt(count)`.
    rec_inv_sqrt: u32,
    dropping: bool,
    /// When the sojourn has been (or will have been) above target for a
    /// whole interval; 0 while it is below target.
    first_above_time: u64,
    /// When the next drop is due (or, after leaving the dropping state,
    /// when the last one was scheduled).
    drop_next: u64,
}

impl CodelVars {
    pub const fn new() -> CodelVars {
        CodelVars {
            count: 0,
            lastcount: 0,
            rec_inv_sqrt: 0,
            dropping: false,
            first_above_time: 0,
            drop_next: 0,
        }
    }

    /// Drops (and marks) of the current or last dropping episode.
    pub fn count(&self) -> u32 {
        self.count
    }

    pub fn dropping(&self) -> bool {
        self.dropping
    }

    /// When the next drop is due while dropping, ns.
    pub fn drop_next(&self) -> u64 {
        self.drop_next
    }

    /// Add drops made outside CoDel (FQ-CoDel's overlimit drops from this
    /// flow) so the control law signals harder, as Linux does.
    pub fn add_count(&mut self, n: u32) {
        self.count = self.count.wrapping_add(n);
    }

    /// Refresh `rec_inv_sqrt` for the current `count`: exact for small
    /// counts, otherwise one Newton-Raphson step from the cached value,
    /// `x' = x * (3 - count * x^2) / 2`, which converges quadratically as
    /// count moves on by one per drop. When count jumped (FQ-CoDel's
    /// overlimit drops add to it; re-entering the dropping state sets it
    /// to `count - lastcount`) the cached value may be far off, and Newton's
    /// step diverges from above `sqrt(3 / count)` (it would reach 0, a
    /// fixed point: every packet dropped); then it is recomputed exactly.
    fn update_inv_sqrt(&mut self) {
        if (self.count as usize) <= INV_SQRT_CACHE {
            self.rec_inv_sqrt = INV_SQRT_TABLE[self.count as usize];
            return;
        }
        let x = u64::from(self.rec_inv_sqrt);
        let x2 = (x * x) >> 32; // Q0.32
                                // count * x^2 = (x / true value)^2, in Q0.32.
        let err = u128::from(self.count) * u128::from(x2);
        if !((1u128 << 30)..=(2u128 << 32)).contains(&err) {
            self.rec_inv_sqrt = exact_inv_sqrt(self.count);
            return;
        }
        let three = 3u128 << 32;
        // err < 3.0 here, so this does not underflow; val is Q2.32.
        let val = three - err;
        let next = (val * u128::from(x)) >> 33;
        self.rec_inv_sqrt = next.min(u128::from(u32::MAX)) as u32;
    }
}

/// Q0.32 `1/sqrt(count)` by integer square root (~64 steps; only when the
/// cached value cannot be refined).
fn exact_inv_sqrt(count: u32) -> u32 {
    if count <= 1 {
        return u32::MAX;
    }
    isqrt_u128((1u128 << 64) / u128::from(count)) as u32
}

/// CoDel counters, one set per qdisc. `maxpacket`, which every dequeue
/// updates, comes first (`repr(C)`) so a user can place it in a cache line
/// it reads anyway (FQ-CoDel does); the others change only on a drop or
/// mark.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct CodelStats {
    /// Largest packet seen at dequeue, bytes.
    pub maxpacket: u32,
    /// Packets CoDel dropped.
    pub drop_count: u64,
    /// Packets CE-marked instead of dropped.
    pub ecn_mark: u64,
    /// Packets CE-marked because their sojourn exceeded `ce_threshold`.
    pub ce_mark: u64,
}

/// The FIFO CoDel manages. Implemented by each user over its own storage
/// (a FQ-CoDel flow, a plain [`crate::pool::PacketList`] in tests).
pub trait CodelQueue {
    /// Take the head packet out, updating the owner's backlog counters.
    fn pop(&mut self) -> Option<Packet>;
    /// Bytes compared against [`CodelParams::mtu`]: what is still queued
    /// after the pop. FQ-CoDel passes the whole qdisc's backlog, as Linux.
    fn backlog_bytes(&self) -> u64;
}

/// `t + interval / sqrt(count)`, with `inv` = Q0.32 `1/sqrt(count)`.
#[inline]
fn control_law(t: u64, interval: u64, inv: u32) -> u64 {
    if inv == u32::MAX {
        // count = 1: exactly one interval (Q0.32 cannot hold 1.0).
        return t.saturating_add(interval);
    }
    let step = (u128::from(interval) * u128::from(inv)) >> 32;
    t.saturating_add(step as u64)
}

/// Does this packet's sojourn say the queue is standing above target for
/// an interval? Updates `ldelay` (the packet's sojourn), `first_above_time`
/// and `maxpacket`.
#[inline]
fn should_drop(
    packet: Option<&Packet>,
    backlog: u64,
    vars: &mut CodelVars,
    params: &CodelParams,
    stats: &mut CodelStats,
    now: u64,
    ldelay: &mut u64,
) -> bool {
    let Some(packet) = packet else {
        vars.first_above_time = 0;
        return false;
    };
    *ldelay = now.saturating_sub(packet.enqueued_at);
    // A store only when it grows: FQ-CoDel keeps this counter in a line
    // its dequeue otherwise only reads.
    if packet.len > stats.maxpacket {
        stats.maxpacket = packet.len;
    }
    if *ldelay < params.target || backlog <= u64::from(params.mtu) {
        // Went (or stayed) below: it must stay above for a whole interval
        // again before we drop.
        vars.first_above_time = 0;
        return false;
    }
    if vars.first_above_time == 0 {
        // Just went above. 0 means "below", so never store it.
        vars.first_above_time = now.saturating_add(params.interval).max(1);
        return false;
    }
    now > vars.first_above_time
}

/// Dequeue through CoDel: returns the packet to send (possibly CE-marked)
/// or `None` when the queue is (or has been drained) empty. Packets CoDel
/// drops go to `drops` with [`DropReason::Codel`].
///
/// Inlined into its callers for the common case — a packet and no drop
/// decision to make — the rest is out of line (`dequeue_slow`).
#[inline]
pub fn dequeue<Q: CodelQueue>(
    queue: &mut Q,
    vars: &mut CodelVars,
    params: &CodelParams,
    stats: &mut CodelStats,
    now: u64,
    drops: &mut Drops,
) -> Option<Packet> {
    let Some(first) = queue.pop() else {
        vars.dropping = false;
        return None;
    };
    let mut ldelay = 0;
    let drop = should_drop(
        Some(&first),
        queue.backlog_bytes(),
        vars,
        params,
        stats,
        now,
        &mut ldelay,
    );
    if !drop && !vars.dropping {
        return Some(ce_threshold(first, ldelay, params, stats));
    }
    dequeue_slow(queue, vars, params, stats, now, drops, first, drop, ldelay)
}

/// [`dequeue`] once `first` is out and [`should_drop`] has spoken, when
/// CoDel is dropping or is about to start.
#[cold]
#[inline(never)]
#[allow(clippy::too_many_arguments)] // dequeue's own arguments, plus its state so far
fn dequeue_slow<Q: CodelQueue>(
    queue: &mut Q,
    vars: &mut CodelVars,
    params: &CodelParams,
    stats: &mut CodelStats,
    now: u64,
    drops: &mut Drops,
    first: Packet,
    drop: bool,
    mut ldelay: u64,
) -> Option<Packet> {
    let mut packet = Some(first);
    if vars.dropping {
        if !drop {
            // Sojourn back below target: leave the dropping state.
            vars.dropping = false;
        } else if now >= vars.drop_next {
            // One or more drops are due. A large backlog (or a long time
            // unserved) may make several due at once, hence the loop.
            let mut dropped = 0;
            while vars.dropping && now >= vars.drop_next {
                if dropped == MAX_DROPS_PER_DEQUEUE {
                    vars.drop_next = control_law(now, params.interval, vars.rec_inv_sqrt);
                    break;
                }
                let Some(mut p) = packet.take() else {
                    break;
                };
                vars.count = vars.count.wrapping_add(1);
                vars.update_inv_sqrt();
                if params.ecn && p.set_ce() {
                    stats.ecn_mark += 1;
                    vars.drop_next =
                        control_law(vars.drop_next, params.interval, vars.rec_inv_sqrt);
                    packet = Some(p);
                    break;
                }
                drops.push(p, DropReason::Codel);
                stats.drop_count += 1;
                dropped += 1;
                packet = queue.pop();
                if should_drop(
                    packet.as_ref(),
                    queue.backlog_bytes(),
                    vars,
                    params,
                    stats,
                    now,
                    &mut ldelay,
                ) {
                    vars.drop_next =
                        control_law(vars.drop_next, params.interval, vars.rec_inv_sqrt);
                } else {
                    vars.dropping = false;
                }
            }
        }
    } else if drop {
        if let Some(mut p) = packet.take() {
            if params.ecn && p.set_ce() {
                stats.ecn_mark += 1;
                packet = Some(p);
            } else {
                drops.push(p, DropReason::Codel);
                stats.drop_count += 1;
                packet = queue.pop();
                // Only to refresh ldelay / first_above_time for the new
                // head; the dropping state is entered regardless.
                should_drop(
                    packet.as_ref(),
                    queue.backlog_bytes(),
                    vars,
                    params,
                    stats,
                    now,
                    &mut ldelay,
                );
            }
        }
        vars.dropping = true;
        // If we went above target soon after we last left the dropping
        // state, the drop rate that controlled the queue then is a good
        // place to start now.
        let delta = vars.count.wrapping_sub(vars.lastcount);
        let recent =
            now < vars.drop_next || now - vars.drop_next < params.interval.saturating_mul(16);
        if delta > 1 && recent {
            vars.count = delta;
            vars.update_inv_sqrt();
        } else {
            vars.count = 1;
            vars.rec_inv_sqrt = u32::MAX;
        }
        vars.lastcount = vars.count;
        vars.drop_next = control_law(now, params.interval, vars.rec_inv_sqrt);
    }
    Some(ce_threshold(packet?, ldelay, params, stats))
}

/// tc's `ce_threshold`: CE-mark an ECT packet whose sojourn exceeded it,
/// whatever the dropping state.
#[inline]
fn ce_threshold(
    mut packet: Packet,
    ldelay: u64,
    params: &CodelParams,
    stats: &mut CodelStats,
) -> Packet {
    if let Some(ce) = params.ce_threshold {
        if ldelay > ce && packet.set_ce() {
            stats.ce_mark += 1;
        }
    }
    packet
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_exact_inverse_sqrt() {
        for (n, &inv) in INV_SQRT_TABLE.iter().enumerate().skip(2) {
            let want = (1u64 << 32) as f64 / (n as f64).sqrt();
            let got = inv as f64;
            assert!((want - got).abs() <= 1.0, "n={n} want={want} got={got}");
        }
        assert_eq!(INV_SQRT_TABLE[1], u32::MAX);
    }

    #[test]
    fn newton_tracks_inverse_sqrt_beyond_the_table() {
        let mut v = CodelVars::new();
        for c in 1..=5000u32 {
            v.count = c;
            v.update_inv_sqrt();
            let want = 1.0 / (c as f64).sqrt();
            let got = v.rec_inv_sqrt as f64 / (1u64 << 32) as f64;
            assert!(
                (want - got).abs() / want < 0.002,
                "count {c}: want {want} got {got}"
            );
        }
    }

    #[test]
    fn jumps_in_count_are_recomputed_not_diverged() {
        let mut v = CodelVars::new();
        for (from, to) in [(1u32, 65u32), (1, 1000), (10_000, 20), (17, 100_000)] {
            v.count = from;
            v.rec_inv_sqrt = exact_inv_sqrt(from);
            v.count = to;
            v.update_inv_sqrt();
            let want = 1.0 / (to as f64).sqrt();
            let got = v.rec_inv_sqrt as f64 / (1u64 << 32) as f64;
            assert!(
                (want - got).abs() / want < 0.001,
                "{from}->{to}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn vars_stay_small() {
        assert!(std::mem::size_of::<CodelVars>() <= 32);
    }

    #[test]
    fn control_law_spacing() {
        let i = 100_000_000;
        assert_eq!(control_law(0, i, u32::MAX), i);
        let half = control_law(0, i, INV_SQRT_TABLE[4]);
        assert!(half.abs_diff(i / 2) <= 1);
    }
}
