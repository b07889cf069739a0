//! The log2 histogram of durations that the shaper keeps for how long
//! packets waited ([`crate::shaper::Sojourn`]) and the AF_XDP worker keeps
//! for how late it woke; the outputs (text, JSON, Prometheus) read both
//! through this one type.

/// Buckets of a [`LogHistogram`]: bucket `i` counts times below 2^i ns
/// (bucket 0: 0 ns); the last one takes everything from 2^38 ns (≈ 275 s)
/// up.
pub const LOG_BUCKETS: usize = 40;

/// Durations as a log2 histogram: one add and one leading-zero count per
/// sample, no floating point, and exact enough for p50/p99 to a factor of
/// two. Used for how long packets waited in a tree
/// ([`crate::shaper::Sojourn`]) and for how late a worker woke for a
/// shaper deadline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogHistogram {
    pub buckets: [u64; LOG_BUCKETS],
    pub count: u64,
    pub sum_ns: u64,
}

impl Default for LogHistogram {
    fn default() -> LogHistogram {
        LogHistogram {
            buckets: [0; LOG_BUCKETS],
            count: 0,
            sum_ns: 0,
        }
    }
}

impl LogHistogram {
    /// The bucket of a duration of `ns`.
    pub fn bucket(ns: u64) -> usize {
        ((u64::BITS - ns.leading_zeros()) as usize).min(LOG_BUCKETS - 1)
    }

    /// Upper bound of bucket `i` in ns (`u64::MAX` for the last).
    pub fn upper_ns(i: usize) -> u64 {
        if i + 1 >= LOG_BUCKETS {
            u64::MAX
        } else {
            (1u64 << i).saturating_sub(1)
        }
    }

    pub fn record(&mut self, ns: u64) {
        self.buckets[Self::bucket(ns)] += 1;
        self.count += 1;
        self.sum_ns = self.sum_ns.saturating_add(ns);
    }

    /// The upper bound of the bucket holding the `q`-th quantile (0..=1);
    /// None when empty.
    pub fn quantile_upper_ns(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = (self.count as f64 * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        self.buckets.iter().enumerate().find_map(|(i, n)| {
            seen += n;
            (seen >= rank).then(|| Self::upper_ns(i))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_powers_of_two() {
        assert_eq!(LogHistogram::bucket(0), 0);
        assert_eq!(LogHistogram::bucket(1), 1);
        assert_eq!(LogHistogram::bucket(1023), 10);
        assert_eq!(LogHistogram::bucket(1024), 11);
        assert_eq!(LogHistogram::bucket(u64::MAX), LOG_BUCKETS - 1);
        for ns in [0u64, 1, 2, 3, 999, 1 << 20, (1 << 30) + 5] {
            let b = LogHistogram::bucket(ns);
            assert!(ns <= LogHistogram::upper_ns(b), "{ns} in bucket {b}");
            if b > 0 {
                assert!(
                    ns > LogHistogram::upper_ns(b - 1),
                    "{ns} above bucket {}",
                    b - 1
                );
            }
        }
        let mut s = LogHistogram::default();
        s.record(5);
        s.record(5_000_000);
        assert_eq!((s.count, s.sum_ns), (2, 5_000_005));
        assert_eq!(s.buckets.iter().sum::<u64>(), 2);
    }

    #[test]
    fn quantiles_and_tails_are_bucket_bounds() {
        let mut h = LogHistogram::default();
        assert_eq!(h.quantile_upper_ns(0.5), None);
        for _ in 0..98 {
            h.record(700); // bucket 10: 512..=1023
        }
        h.record(3_000_000); // bucket 22
        h.record(3_000_000);
        assert_eq!(h.quantile_upper_ns(0.5), Some(1023));
        assert_eq!(h.quantile_upper_ns(0.99), Some((1 << 22) - 1));
    }
}
