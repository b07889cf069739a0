//! Properties of the statistics fold: however samples are split into
//! folded minutes and 1-second rows, count, avg, min, max and stddev equal
//! the direct computation; median and p95 stay within the data; the
//! selection quantile equals the sorted one.

use proptest::prelude::*;
use weir_history::stats::{quantile, quantile_unsorted, summarize, Folded, Moments};

/// Rates as they come: mostly near a level, some zeros and bursts, up to
/// 100 Gbit/s.
fn samples() -> impl Strategy<Value = Vec<f64>> {
    (0.0f64..1e11, 0.0f64..1e7).prop_flat_map(|(level, spread)| {
        prop::collection::vec(
            prop_oneof![
                8 => (-1.0f64..1.0).prop_map(move |d| (level + d * spread).max(0.0)),
                1 => Just(0.0),
                1 => 0.0f64..1e11,
            ],
            1..400,
        )
    })
}

fn near(a: f64, b: f64, scale: f64) -> bool {
    (a - b).abs() <= 1e-9 * scale.max(1.0)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn any_split_gives_the_direct_moments(
        xs in samples(),
        cuts in prop::collection::vec(1usize..90, 0..12),
        exact_tail in 0usize..100,
    ) {
        // The last `exact_tail` samples stay 1-second rows; the rest is
        // folded in chunks of the given sizes.
        let tail = exact_tail.min(xs.len());
        let (head, exact) = xs.split_at(xs.len() - tail);
        let mut folded = Vec::new();
        let mut rest = head;
        let mut sizes = cuts.iter().cycle();
        while !rest.is_empty() {
            let n = (*sizes.next().unwrap_or(&60)).min(rest.len());
            let (chunk, r) = rest.split_at(n);
            folded.push(Folded::of(chunk).unwrap());
            rest = r;
        }
        let got = summarize(exact, &folded).unwrap();
        let direct = summarize(&xs, &[]).unwrap();
        let scale = xs.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        prop_assert_eq!(got.count, xs.len() as u64);
        prop_assert!(near(got.avg, direct.avg, scale), "{got:?} {direct:?}");
        prop_assert_eq!(got.min, direct.min);
        prop_assert_eq!(got.max, direct.max);
        match (got.stddev, direct.stddev) {
            (Some(a), Some(b)) => prop_assert!(near(a, b, scale * 1e-2) || near(a, b, b * 1e3), "{a} {b}"),
            (a, b) => prop_assert_eq!(a, b),
        }
        prop_assert!(got.median >= direct.min && got.median <= direct.max);
        prop_assert!(got.p95 >= direct.min && got.p95 <= direct.max);
        prop_assert_eq!(got.approximate, !folded.is_empty());
        if folded.is_empty() {
            prop_assert_eq!(got.median, direct.median);
            prop_assert_eq!(got.p95, direct.p95);
        }
    }

    #[test]
    fn merging_is_order_independent(a in samples(), b in samples()) {
        let ab = Moments::of(&a).merge(&Moments::of(&b));
        let ba = Moments::of(&b).merge(&Moments::of(&a));
        let all = Moments::of(&[a.clone(), b.clone()].concat());
        let scale = all.max.abs().max(all.min.abs());
        for m in [ab, ba] {
            prop_assert_eq!(m.n, all.n);
            prop_assert!(near(m.mean, all.mean, scale));
            prop_assert!(near(m.m2.sqrt(), all.m2.sqrt(), scale * 1e-2) || near(m.m2, all.m2, all.m2 * 1e3));
        }
        let f = Folded::of(&a).unwrap().merge_raw(&b);
        prop_assert_eq!(f.moments.n, all.n);
        prop_assert_eq!(f.knots.0[0], all.min);
        prop_assert_eq!(f.knots.0[5], all.max);
    }

    #[test]
    fn selection_quantiles_equal_sorted_ones(mut xs in samples(), p in 0.0f64..=1.0) {
        let mut sorted = xs.clone();
        sorted.sort_by(f64::total_cmp);
        let want = quantile(&sorted, p).unwrap();
        prop_assert_eq!(quantile_unsorted(&mut xs, p).unwrap(), want);
        prop_assert!(want >= sorted[0] && want <= sorted[sorted.len() - 1]);
    }
}
