//! Rate control: how many frames are due at a given time. Time is an
//! argument, so the pacing is tested without a clock.
//!
//! The pacer keeps an exact schedule (frame `n` is due at `start + n /
//! rate`) and never forgets what is owed: when the sending thread is late
//! (descheduled on a busy machine), the frames owed go out as soon as it
//! runs again, at most a batch per call, so the average rate over the trial
//! is the configured one. How late it ever was is recorded, so a report
//! can say when the offered load was bursty instead of steady.

/// Frames due for one stream sent at a fixed rate.
#[derive(Clone, Debug)]
pub struct StreamPacer {
    start_ns: u64,
    /// Frames per second; `None` = as fast as the ring takes them.
    rate_pps: Option<f64>,
    sent: u64,
    /// Worst lateness seen: how long the oldest owed frame had been due.
    late_max_ns: u64,
}

impl StreamPacer {
    /// A pacer whose first frame is due at `start_ns`. A rate of `None`
    /// (or not above zero) means flat out.
    pub fn new(rate_pps: Option<f64>, start_ns: u64) -> StreamPacer {
        StreamPacer {
            start_ns,
            rate_pps: rate_pps.filter(|r| r.is_finite() && *r > 0.0),
            sent: 0,
            late_max_ns: 0,
        }
    }

    /// Frames due at `now_ns` that have not been sent, at most `max`.
    pub fn due(&mut self, now_ns: u64, max: u64) -> u64 {
        let Some(rate) = self.rate_pps else {
            return max;
        };
        if now_ns < self.start_ns {
            return 0;
        }
        let elapsed = (now_ns - self.start_ns) as f64;
        // Frames due by now: the one at `start` plus one per 1/rate since.
        let target = (elapsed * rate / 1e9).floor() as u64 + 1;
        let owed = target.saturating_sub(self.sent);
        if owed > 0 {
            let late = now_ns.saturating_sub(self.due_at(self.sent));
            self.late_max_ns = self.late_max_ns.max(late);
        }
        owed.min(max)
    }

    /// Like [`StreamPacer::due`], but holds frames back until a small burst is
    /// due: as many as fall due in `gather_ns` (1..=`max`), or until the
    /// oldest owed frame has waited `gather_ns`. One wake-up then sends a
    /// burst instead of one frame: on a 2-core machine a sender that wakes
    /// per frame takes the CPU the path under test needs. The long-run
    /// rate is unchanged.
    pub fn due_gathered(&mut self, now_ns: u64, max: u64, gather_ns: u64) -> u64 {
        let owed = self.due(now_ns, max);
        if owed == 0 || owed >= self.burst(max, gather_ns) {
            return owed;
        }
        if now_ns.saturating_sub(self.due_at(self.sent)) >= gather_ns {
            owed
        } else {
            0
        }
    }

    /// When [`StreamPacer::due_gathered`] will next hand out frames.
    pub fn next_send_ns(&self, max: u64, gather_ns: u64) -> u64 {
        let by_burst = self.due_at(self.sent + self.burst(max, gather_ns) - 1);
        by_burst.min(self.due_at(self.sent) + gather_ns)
    }

    /// Frames falling due in `gather_ns`, 1..=max.
    fn burst(&self, max: u64, gather_ns: u64) -> u64 {
        match self.rate_pps {
            Some(rate) => ((rate * gather_ns as f64 / 1e9) as u64).clamp(1, max.max(1)),
            None => 1,
        }
    }

    /// Count `n` frames as sent.
    pub fn sent(&mut self, n: u64) {
        self.sent += n;
    }

    /// When the next unsent frame is due (now or in the past if owed);
    /// `start` for flat out.
    pub fn next_due_ns(&self) -> u64 {
        self.due_at(self.sent)
    }

    fn due_at(&self, n: u64) -> u64 {
        match self.rate_pps {
            Some(rate) => self.start_ns + (n as f64 * 1e9 / rate) as u64,
            None => self.start_ns,
        }
    }

    pub fn total_sent(&self) -> u64 {
        self.sent
    }

    pub fn late_max_ns(&self) -> u64 {
        self.late_max_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_count_over_a_period() {
        // 1 Mpps for 1 s, polled every 7 µs: exactly 1,000,000 frames due
        // by the last nanosecond before t = 1 s (frame 0 at t = 0).
        let mut p = StreamPacer::new(Some(1e6), 1_000);
        let mut t = 1_000;
        while t < 1_000 + 1_000_000_000 {
            let n = p.due(t, 64);
            p.sent(n);
            t += 7_000;
        }
        let n = p.due(1_000 + 999_999_999, u64::MAX);
        p.sent(n);
        assert_eq!(p.total_sent(), 1_000_000);
        assert!(p.late_max_ns() < 7_000 * 64);
    }

    #[test]
    fn catches_up_after_a_stall_in_batches() {
        let mut p = StreamPacer::new(Some(1e6), 0);
        assert_eq!(p.due(0, 64), 1);
        p.sent(1);
        // 1 ms stall: 1000 frames owed, handed out at most 64 at a time.
        assert_eq!(p.due(1_000_000, 64), 64);
        p.sent(64);
        assert_eq!(p.due(1_000_000, 10_000), 1001 - 65);
        assert_eq!(p.late_max_ns(), 1_000_000 - 1_000);
    }

    #[test]
    fn nothing_before_start_and_next_due() {
        let mut p = StreamPacer::new(Some(1000.0), 5_000);
        assert_eq!(p.due(4_999, 10), 0);
        assert_eq!(p.next_due_ns(), 5_000);
        let n = p.due(5_000, 10);
        p.sent(n);
        assert_eq!(p.next_due_ns(), 5_000 + 1_000_000);
    }

    #[test]
    fn gathers_bursts_without_changing_the_rate() {
        // 1 Mpps, gather 50 µs: sends come in bursts of 50 frames, and the
        // total over 10 ms is still 10,000.
        let mut p = StreamPacer::new(Some(1e6), 0);
        let mut t = 0;
        let mut sends = 0;
        while t < 10_000_000 {
            let n = p.due_gathered(t, 64, 50_000);
            if n > 0 {
                assert!(n >= 50 || t < 50_000, "burst of {n} at {t}");
                sends += 1;
                p.sent(n);
            }
            t = t.max(p.next_send_ns(64, 50_000)).max(t + 1);
        }
        let n = p.due(9_999_999, u64::MAX);
        assert!(n <= 50, "{n} owed at the end");
        assert!((9_950..=10_000).contains(&(p.total_sent() + n)));
        assert!(sends <= 202, "{sends} sends");
        // A slow stream still sends each frame on time.
        let mut q = StreamPacer::new(Some(1000.0), 0);
        assert_eq!(q.due_gathered(0, 64, 50_000), 1);
        q.sent(1);
        assert_eq!(q.next_send_ns(64, 50_000), 1_000_000);
    }

    #[test]
    fn flat_out_always_due() {
        let mut p = StreamPacer::new(None, 0);
        assert_eq!(p.due(0, 32), 32);
        assert_eq!(StreamPacer::new(Some(0.0), 0).due(10, 5), 5);
        assert_eq!(StreamPacer::new(Some(f64::NAN), 0).due(10, 5), 5);
    }
}
