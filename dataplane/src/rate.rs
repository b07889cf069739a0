//! Rates and the byte-to-time conversion the token buckets run on.
//!
//! Tokens are time, as in Linux HTB: sending `len` bytes at `rate` costs
//! `len / rate` seconds of credit. The conversion is a 32.32 fixed-point
//! multiply (`ns_per_byte << 32`), so the per-packet path has no division and
//! no floating point.
//!
//! Linux keeps tokens in whole nanoseconds and truncates each packet's cost,
//! which undercharges by up to 1 ns a packet: at 10 Gbit/s with 64-byte
//! packets (51.2 ns each) a class runs 0.4 % over its rate and its ceil
//! bucket drifts without bound. weir's buckets count [`TICKS_PER_NS`]ths of
//! a nanosecond and round every packet's cost *up*, so a class is never
//! undercharged and overcharges by at most 1/1024 ns a packet (2·10⁻⁵ of
//! the rate at 10 Gbit/s, 64-byte packets).

/// log2 of [`TICKS_PER_NS`].
pub const TICK_SHIFT: u32 = 10;
/// Token-bucket time unit: 1/1024 ns. An i64 of ticks spans 104 days.
pub const TICKS_PER_NS: u64 = 1 << TICK_SHIFT;

/// A shaping rate with its link-layer accounting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateCfg {
    bytes_per_sec: u64,
    /// Nanoseconds per byte, 32.32 fixed point.
    ns_per_byte_fp: u64,
    /// Added to every packet's length before charging (may be negative,
    /// e.g. -14 to shape on IP length). tc's `overhead`.
    overhead: i32,
    /// Minimum charged size after overhead. tc's `mpu`.
    mpu: u32,
}

impl RateCfg {
    /// `bytes_per_sec` must be at least 1.
    pub fn new(bytes_per_sec: u64, overhead: i32, mpu: u32) -> RateCfg {
        let bytes_per_sec = bytes_per_sec.max(1);
        // Rounded up, like every cost: never undercharge.
        let ns_per_byte_fp = (1_000_000_000u128 << 32)
            .div_ceil(u128::from(bytes_per_sec))
            .min(u128::from(u64::MAX)) as u64;
        RateCfg {
            bytes_per_sec,
            ns_per_byte_fp,
            overhead,
            mpu,
        }
    }

    pub fn bytes_per_sec(&self) -> u64 {
        self.bytes_per_sec
    }

    pub fn bits_per_sec(&self) -> u64 {
        self.bytes_per_sec.saturating_mul(8)
    }

    pub fn overhead(&self) -> i32 {
        self.overhead
    }

    pub fn mpu(&self) -> u32 {
        self.mpu
    }

    /// Bytes charged for a packet of `len` bytes: `max(len + overhead, mpu)`.
    #[inline]
    pub fn wire_len(&self, len: u32) -> u64 {
        let l = (i64::from(len) + i64::from(self.overhead)).max(0) as u64;
        l.max(u64::from(self.mpu))
    }

    /// Transmission time of a `len`-byte packet at this rate, in ns.
    #[inline]
    pub fn time_ns(&self, len: u32) -> u64 {
        self.bytes_time_ns(self.wire_len(len))
    }

    /// Transmission time of a `len`-byte packet in ticks (1/1024 ns),
    /// rounded up: what a packet costs a token bucket.
    #[inline]
    pub fn time_ticks(&self, len: u32) -> u64 {
        let fp = u128::from(self.wire_len(len)) * u128::from(self.ns_per_byte_fp);
        let shift = 32 - TICK_SHIFT;
        (fp.div_ceil(1 << shift)).min(u128::from(u64::MAX >> 2)) as u64
    }

    /// Transmission time of `bytes` raw bytes in ticks, rounded down: what a
    /// bucket of `bytes` holds.
    #[inline]
    pub fn bytes_time_ticks(&self, bytes: u64) -> u64 {
        ((u128::from(bytes) * u128::from(self.ns_per_byte_fp)) >> (32 - TICK_SHIFT))
            .min(u128::from(u64::MAX >> 2)) as u64
    }

    /// Transmission time of `bytes` raw bytes (no overhead/mpu), in ns.
    #[inline]
    pub fn bytes_time_ns(&self, bytes: u64) -> u64 {
        ((u128::from(bytes) * u128::from(self.ns_per_byte_fp)) >> 32).min(u128::from(u64::MAX >> 2))
            as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_matches_exact_division() {
        for &bps in &[
            1u64,
            125_000,
            12_500_000,
            125_000_000,
            1_250_000_000,
            12_500_000_000_000,
        ] {
            let r = RateCfg::new(bps, 0, 0);
            for &len in &[1u32, 64, 1500, 9000, 65535] {
                let exact = u128::from(len) * 1_000_000_000 / u128::from(bps);
                let got = u128::from(r.time_ns(len));
                assert!(
                    exact.abs_diff(got) <= 1 + exact / 1_000_000_000,
                    "{bps} {len}"
                );
            }
        }
    }

    #[test]
    fn ticks_never_undercharge_and_stay_within_one_tick() {
        for &bps in &[
            1u64,
            125_000,
            46_875_000,
            375_000_000,
            1_250_000_000,
            12_500_000_000_000,
        ] {
            let r = RateCfg::new(bps, 0, 0);
            for &len in &[1u32, 64, 1500, 9000, 65535] {
                // Exact cost in ticks as a rational: len * 1e9 * 1024 / bps.
                let num = u128::from(len) * 1_000_000_000 * u128::from(TICKS_PER_NS);
                let exact_floor = num / u128::from(bps);
                let got = u128::from(r.time_ticks(len));
                assert!(got * u128::from(bps) >= num, "undercharged: {bps} {len}");
                assert!(
                    got <= exact_floor + 2,
                    "{bps} {len}: {got} vs {exact_floor}"
                );
            }
        }
    }

    #[test]
    fn overhead_and_mpu() {
        let r = RateCfg::new(1_000_000_000, 24, 84);
        assert_eq!(r.wire_len(40), 84);
        assert_eq!(r.wire_len(1500), 1524);
        let r = RateCfg::new(1_000_000_000, -14, 0);
        assert_eq!(r.wire_len(10), 0);
    }
}
