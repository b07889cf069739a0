//! The statistics `weir history` prints, as pure functions: no database,
//! no clock, so the arithmetic is tested against hand-computed values.
//!
//! - **avg, min, max, stddev** are exact whatever mix of 1-second and
//!   1-minute rows a range covers: a minute row keeps its samples' count,
//!   mean and M2 (the sum of squared deviations from that mean), and rows
//!   are combined with Chan, Golub and LeVeque's pairwise update. (Sums of
//!   squares would lose everything to cancellation: a 1 Gbit/s class
//!   varying by a few bit/s has Σx² ≈ 6·10¹⁹ per minute, where a double
//!   holds 16 digits.) stddev is the *sample* standard deviation (n − 1,
//!   as Python's `statistics.stdev`), undefined below two samples.
//! - **median and p95** use one quantile definition throughout: linear
//!   interpolation between the closest ranks, h = (n − 1)·p (Hyndman and
//!   Fan's type 7; numpy's default, Excel's PERCENTILE.INC, Python's
//!   `statistics.quantiles(method="inclusive")`), so the median is Python's
//!   `statistics.median`. They are exact over 1-second rows. A minute row
//!   keeps only six points of its samples' distribution ([`Knots`]); its
//!   samples are re-created from them (piecewise linear between the knots),
//!   so over minute rows median and p95 are approximations, and
//!   [`Summary::approximate`] says so.

/// Count, mean, M2, min and max of some samples: everything avg, stddev,
/// min and max need, and what combines exactly.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Moments {
    pub n: u64,
    pub mean: f64,
    /// Σ (x − mean)².
    pub m2: f64,
    pub min: f64,
    pub max: f64,
}

impl Default for Moments {
    fn default() -> Moments {
        Moments {
            n: 0,
            mean: 0.0,
            m2: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }
}

impl Moments {
    /// Welford's update, one sample at a time.
    pub fn push(&mut self, x: f64) {
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
        self.min = self.min.min(x);
        self.max = self.max.max(x);
    }

    pub fn of(xs: &[f64]) -> Moments {
        let mut m = Moments::default();
        for &x in xs {
            m.push(x);
        }
        m
    }

    /// The moments of both sets of samples together (Chan et al.).
    pub fn merge(&self, o: &Moments) -> Moments {
        if o.n == 0 {
            return *self;
        }
        if self.n == 0 {
            return *o;
        }
        let n = self.n + o.n;
        let (na, nb, nt) = (self.n as f64, o.n as f64, n as f64);
        let d = o.mean - self.mean;
        Moments {
            n,
            mean: self.mean + d * nb / nt,
            m2: self.m2 + o.m2 + d * d * na * nb / nt,
            min: self.min.min(o.min),
            max: self.max.max(o.max),
        }
    }

    /// Sample standard deviation (n − 1); None below two samples.
    pub fn stddev(&self) -> Option<f64> {
        (self.n >= 2).then(|| (self.m2.max(0.0) / (self.n - 1) as f64).sqrt())
    }
}

/// The type-7 quantile of sorted samples: h = (n − 1)·p, interpolated
/// linearly between the samples on either side. None when empty.
pub fn quantile(sorted: &[f64], p: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let h = last as f64 * p.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(last);
    Some(sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo]))
}

/// Like [`quantile`] on unsorted samples, without sorting them all:
/// partial selection (O(n)) of the two ranks it needs. Reorders `xs`.
pub fn quantile_unsorted(xs: &mut [f64], p: f64) -> Option<f64> {
    let last = xs.len().checked_sub(1)?;
    let h = last as f64 * p.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let (_, &mut a, rest) = xs.select_nth_unstable_by(lo, f64::total_cmp);
    if lo == last {
        return Some(a);
    }
    // The next rank is the smallest of what lies above.
    let b = rest.iter().copied().fold(f64::INFINITY, f64::min);
    Some(a + (h - lo as f64) * (b - a))
}

/// Where a minute row's knots sit in its samples' distribution.
pub const KNOT_P: [f64; 6] = [0.0, 0.25, 0.5, 0.75, 0.95, 1.0];

/// Six type-7 quantiles of one minute's samples (min, p25, median, p75,
/// p95, max): what a minute row keeps of their distribution.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Knots(pub [f64; 6]);

impl Knots {
    /// None when there are no samples.
    pub fn of(xs: &[f64]) -> Option<Knots> {
        let mut s = xs.to_vec();
        s.sort_unstable_by(f64::total_cmp);
        let mut k = [0.0; 6];
        for (k, p) in k.iter_mut().zip(KNOT_P) {
            *k = quantile(&s, p)?;
        }
        Some(Knots(k))
    }

    /// The inverse distribution function the knots describe: piecewise
    /// linear between them, `q` in 0..=1.
    pub fn at(&self, q: f64) -> f64 {
        let q = q.clamp(0.0, 1.0);
        let i = KNOT_P.windows(2).position(|w| q <= w[1]).unwrap_or(4);
        let (p0, p1) = (KNOT_P[i], KNOT_P[i + 1]);
        let (x0, x1) = (self.0[i], self.0[i + 1]);
        // At a knot, the knot itself: x0 + 1·(x1 − x0) need not be x1.
        let w = (q - p0) / (p1 - p0);
        if w >= 1.0 {
            x1
        } else if w <= 0.0 {
            x0
        } else {
            x0 + w * (x1 - x0)
        }
    }

    /// `n` samples re-created from the knots: the i-th smallest at
    /// q = i / (n − 1), where a type-7 quantile puts it, so min and max
    /// come back exactly.
    pub fn expand(&self, n: u64, out: &mut Vec<f64>) {
        match n {
            0 => {}
            1 => out.push(self.0[2]),
            _ => out.extend((0..n).map(|i| self.at(i as f64 / (n - 1) as f64))),
        }
    }
}

/// A minute row's view of one metric.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Folded {
    pub moments: Moments,
    pub knots: Knots,
}

impl Folded {
    /// Fold samples (None when there are none).
    pub fn of(xs: &[f64]) -> Option<Folded> {
        Some(Folded {
            moments: Moments::of(xs),
            knots: Knots::of(xs)?,
        })
    }

    /// Both sets together: moments exactly, knots from the re-created
    /// samples of `self` and the raw samples `xs`.
    pub fn merge_raw(&self, xs: &[f64]) -> Folded {
        let mut all = Vec::with_capacity(self.moments.n as usize + xs.len());
        self.knots.expand(self.moments.n, &mut all);
        all.extend_from_slice(xs);
        Folded {
            moments: self.moments.merge(&Moments::of(xs)),
            knots: Knots::of(&all).unwrap_or(self.knots),
        }
    }
}

/// What `weir history` prints for one metric.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub avg: f64,
    pub min: f64,
    pub max: f64,
    pub median: f64,
    /// Sample standard deviation; None below two samples.
    pub stddev: Option<f64>,
    pub p95: f64,
    /// Median and p95 came partly from minute rows' knots.
    pub approximate: bool,
}

/// Summarise 1-second samples and minute rows together. None when there
/// is nothing.
pub fn summarize(exact: &[f64], minutes: &[Folded]) -> Option<Summary> {
    let mut m = Moments::of(exact);
    let mut all = exact.to_vec();
    for f in minutes {
        m = m.merge(&f.moments);
        f.knots.expand(f.moments.n, &mut all);
    }
    if m.n == 0 {
        return None;
    }
    let median = quantile_unsorted(&mut all, 0.5)?;
    let p95 = quantile_unsorted(&mut all, 0.95)?;
    Some(Summary {
        count: m.n,
        avg: m.mean,
        min: m.min,
        max: m.max,
        median,
        stddev: m.stddev(),
        p95,
        approximate: minutes.iter().any(|f| f.moments.n > 0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn matches_pythons_statistics_module() {
        // statistics.mean([2,4,4,4,5,5,7,9]) == 5
        // statistics.stdev(...) == 2.138089935299395 (sqrt(32/7))
        // statistics.median(...) == 4.5
        // statistics.quantiles(..., n=20, method="inclusive")[18] == 8.3
        //   h = 7 * 0.95 = 6.65 → x[6] + 0.65 * (x[7] - x[6]) = 7 + 1.3
        let xs = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        let s = summarize(&xs, &[]).unwrap();
        assert_eq!(s.count, 8);
        assert!(close(s.avg, 5.0));
        assert!(close(s.stddev.unwrap(), (32.0f64 / 7.0).sqrt()));
        assert!(close(s.stddev.unwrap(), 2.138089935299395));
        assert_eq!((s.min, s.max), (2.0, 9.0));
        assert!(close(s.median, 4.5));
        assert!(close(s.p95, 8.3));
        assert!(!s.approximate);
    }

    #[test]
    fn odd_counts_and_one_sample() {
        // median([3, 1, 2]) == 2; stdev == 1.0; p95: h = 1.9 → 2 + 0.9
        let s = summarize(&[3.0, 1.0, 2.0], &[]).unwrap();
        assert!(close(s.median, 2.0));
        assert!(close(s.stddev.unwrap(), 1.0));
        assert!(close(s.p95, 2.9));
        let s = summarize(&[7.5], &[]).unwrap();
        assert_eq!(
            (s.avg, s.min, s.max, s.median, s.p95),
            (7.5, 7.5, 7.5, 7.5, 7.5)
        );
        assert_eq!(s.stddev, None);
        assert_eq!(summarize(&[], &[]), None);
    }

    #[test]
    fn quantiles_by_hand() {
        let s = [10.0, 20.0, 30.0, 40.0, 50.0];
        assert_eq!(quantile(&s, 0.0), Some(10.0));
        assert_eq!(quantile(&s, 1.0), Some(50.0));
        assert_eq!(quantile(&s, 0.5), Some(30.0));
        // h = 4 * 0.95 = 3.8 → 40 + 0.8 * 10
        assert!(close(quantile(&s, 0.95).unwrap(), 48.0));
        // h = 4 * 0.25 = 1 → 20
        assert_eq!(quantile(&s, 0.25), Some(20.0));
        assert_eq!(quantile(&[], 0.5), None);
        let mut u = [50.0, 10.0, 40.0, 30.0, 20.0];
        assert!(close(quantile_unsorted(&mut u, 0.95).unwrap(), 48.0));
        assert_eq!(quantile_unsorted(&mut u, 1.0), Some(50.0));
    }

    #[test]
    fn merged_moments_equal_direct_ones() {
        let a = [1.0, 2.0, 3.0, 4.0];
        let b = [10.0, 20.0];
        let all = [1.0, 2.0, 3.0, 4.0, 10.0, 20.0];
        let m = Moments::of(&a).merge(&Moments::of(&b));
        let d = Moments::of(&all);
        assert_eq!(m.n, 6);
        assert!(close(m.mean, 40.0 / 6.0));
        assert!(close(m.m2, d.m2));
        assert_eq!((m.min, m.max), (1.0, 20.0));
        assert_eq!(Moments::default().merge(&m), m);
        assert_eq!(m.merge(&Moments::default()), m);
    }

    #[test]
    fn large_values_keep_their_spread() {
        // 1 Gbit/s ± 1 bit/s: sums of squares would say 0 or garbage.
        let xs: Vec<f64> = (0..60).map(|i| 1e9 + f64::from(i % 2)).collect();
        let f = Folded::of(&xs).unwrap();
        let s = summarize(&[], &[f, f]).unwrap();
        let direct = summarize(&[xs.clone(), xs].concat(), &[]).unwrap();
        assert!(close(s.stddev.unwrap(), direct.stddev.unwrap()));
        assert!(close(direct.stddev.unwrap(), (30.0f64 / 119.0).sqrt()));
    }

    #[test]
    fn knots_recreate_min_max_and_evenly_spread_samples() {
        let xs: Vec<f64> = (0..=60).map(f64::from).collect();
        let k = Knots::of(&xs).unwrap();
        assert_eq!(k.0, [0.0, 15.0, 30.0, 45.0, 57.0, 60.0]);
        let mut back = Vec::new();
        k.expand(61, &mut back);
        for (a, b) in back.iter().zip(&xs) {
            assert!(close(*a, *b), "{a} vs {b}");
        }
        let s = summarize(&[], &[Folded::of(&xs).unwrap()]).unwrap();
        assert!(s.approximate);
        assert!(close(s.median, 30.0));
        assert!(close(s.p95, 57.0));
        let mut one = Vec::new();
        Knots([5.0; 6]).expand(1, &mut one);
        assert_eq!(one, [5.0]);
    }

    #[test]
    fn merging_raw_samples_into_a_folded_minute() {
        let f = Folded::of(&[1.0, 2.0, 3.0]).unwrap();
        let g = f.merge_raw(&[4.0, 5.0]);
        let d = Moments::of(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(g.moments.n, 5);
        assert!(close(g.moments.mean, 3.0));
        assert!(close(g.moments.m2, d.m2));
        assert_eq!(g.knots.0[0], 1.0);
        assert_eq!(g.knots.0[5], 5.0);
    }
}
