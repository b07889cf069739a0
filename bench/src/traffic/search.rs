//! RFC 2544 §26.1-style throughput search: the highest offered rate whose
//! trial loses at most a given share of frames (0 for NDR, the "no drop
//! rate"; 0.005 for PDR, the "partial drop rate" at 0.5 %).
//!
//! The first trial offers the upper bound (what the generator can send);
//! if that passes, it is the answer. Otherwise a binary search runs between
//! the best passing rate and the lowest failing one until they are within
//! `resolution` of each other or the step budget is spent. The search is a
//! state machine fed with trial results, so several searches (one per path
//! under test) can be interleaved trial by trial.

use serde::Serialize;

#[derive(Clone, Debug)]
pub struct Search {
    max_loss: f64,
    /// Relative width at which the search stops (0.02 = within 2 %).
    resolution: f64,
    steps_left: u32,
    /// Best rate that passed (and what was received at it).
    pass: Option<Passed>,
    /// Lowest rate that failed.
    fail: Option<f64>,
    upper: f64,
}

/// A trial that passed.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct Passed {
    /// The rate the trial was asked for.
    pub offered_pps: f64,
    /// The rate the sender achieved (below `offered_pps` when the path
    /// pushed back on the sender).
    pub sent_pps: f64,
    pub received_pps: f64,
    pub loss: f64,
}

/// One trial's outcome as the search needs it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Outcome {
    pub offered_pps: f64,
    pub sent_pps: f64,
    pub received_pps: f64,
    /// Lost / sent, 0..=1.
    pub loss: f64,
}

impl Search {
    /// `upper`: the highest rate worth offering (pps), e.g. what the
    /// generator achieved flat out on a direct link.
    pub fn new(upper: f64, max_loss: f64, resolution: f64, max_steps: u32) -> Search {
        Search {
            max_loss,
            resolution,
            steps_left: max_steps,
            pass: None,
            fail: None,
            upper,
        }
    }

    /// The rate of the next trial, or None when the search is over.
    pub fn next_rate(&self) -> Option<f64> {
        if self.steps_left == 0 || self.upper.is_nan() || self.upper <= 0.0 {
            return None;
        }
        match (self.pass, self.fail) {
            (None, None) => Some(self.upper),
            (Some(_), None) => None,
            (pass, Some(fail)) => {
                let lo = pass.map_or(0.0, |p| p.offered_pps);
                if (fail - lo) <= self.resolution * fail {
                    None
                } else {
                    Some((lo + fail) / 2.0)
                }
            }
        }
    }

    /// Feed the result of the trial run at `next_rate()`.
    pub fn record(&mut self, o: Outcome) {
        self.steps_left = self.steps_left.saturating_sub(1);
        if o.loss <= self.max_loss {
            if !matches!(self.pass, Some(p) if p.offered_pps >= o.offered_pps) {
                self.pass = Some(Passed {
                    offered_pps: o.offered_pps,
                    sent_pps: o.sent_pps,
                    received_pps: o.received_pps,
                    loss: o.loss,
                });
            }
        } else if !matches!(self.fail, Some(f) if f <= o.offered_pps) {
            self.fail = Some(o.offered_pps);
        }
    }

    /// The best passing trial so far (the answer once `next_rate` is None).
    pub fn result(&self) -> Option<Passed> {
        self.pass
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path that loses nothing up to `cap` pps and drops the excess.
    fn run(search: &mut Search, cap: f64) -> u32 {
        let mut trials = 0;
        while let Some(r) = search.next_rate() {
            let got = r.min(cap);
            search.record(Outcome {
                offered_pps: r,
                sent_pps: r,
                received_pps: got,
                loss: (r - got) / r,
            });
            trials += 1;
            assert!(trials < 100);
        }
        trials
    }

    #[test]
    fn finds_the_capacity_within_resolution() {
        let mut s = Search::new(1_000_000.0, 0.0, 0.01, 20);
        run(&mut s, 370_000.0);
        let r = s.result().unwrap();
        assert!(
            r.offered_pps <= 370_000.0 && r.offered_pps > 370_000.0 * 0.98,
            "{r:?}"
        );
    }

    #[test]
    fn pdr_allows_its_loss() {
        let mut s = Search::new(1_000_000.0, 0.005, 0.001, 30);
        run(&mut s, 500_000.0);
        let r = s.result().unwrap();
        assert!(
            r.offered_pps > 500_000.0 && r.offered_pps <= 500_000.0 / 0.995 + 1.0,
            "{r:?}"
        );
    }

    #[test]
    fn upper_bound_passing_ends_at_once() {
        let mut s = Search::new(1000.0, 0.0, 0.01, 10);
        assert_eq!(run(&mut s, 5000.0), 1);
        assert_eq!(s.result().unwrap().offered_pps, 1000.0);
    }

    #[test]
    fn step_budget_bounds_the_search() {
        let mut s = Search::new(1e9, 0.0, 1e-9, 5);
        assert_eq!(run(&mut s, 1.0), 5);
        // Nothing passed within 5 halvings of 1e9: no result, said so.
        assert_eq!(s.result(), None);
        assert!(s.next_rate().is_none());
    }
}
