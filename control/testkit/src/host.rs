//! How disturbed the host was, from /proc/stat: a rate test on a shared VM
//! that misses says how much CPU time the hypervisor took meanwhile
//! (steal: time it ran someone else while this VM wanted the CPU). A burst
//! of steal on the CPU that runs weir's worker costs a class the tokens of
//! the wait; averaged over all CPUs it would look half as large, so the
//! worst single CPU is what counts.

use std::thread;
use std::time::{Duration, Instant};

/// Jiffies from /proc/stat: busy (user, nice, system, irq, softirq) and
/// all, of all CPUs together, and each CPU's steal and all.
#[derive(Clone, Debug)]
pub struct CpuTimes {
    busy: u64,
    total: u64,
    steal: u64,
    /// Per CPU: (steal, all).
    per_cpu: Vec<(u64, u64)>,
}

impl CpuTimes {
    /// None where /proc/stat cannot be read.
    pub fn now() -> Option<CpuTimes> {
        CpuTimes::parse(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    fn parse(stat: &str) -> Option<CpuTimes> {
        // cpu user nice system idle iowait irq softirq steal ...
        let fields = |line: &str| -> Option<Vec<u64>> {
            let f: Vec<u64> = line
                .split_whitespace()
                .skip(1)
                .take(8)
                .map(|x| x.parse().unwrap_or(0))
                .collect();
            (f.len() == 8).then_some(f)
        };
        let mut lines = stat.lines();
        let all = fields(lines.next()?)?;
        let per_cpu = lines
            .take_while(|l| l.starts_with("cpu"))
            .filter_map(fields)
            .map(|f| (f[7], f.iter().sum()))
            .collect();
        Some(CpuTimes {
            busy: all[0] + all[1] + all[2] + all[5] + all[6],
            total: all.iter().sum(),
            steal: all[7],
            per_cpu,
        })
    }

    /// "steal 1.2 % of all CPUs (2.0 % on the CPU that lost most), busy
    /// 45.6 %" from `self` to `now`.
    pub fn summary(&self, now: &CpuTimes) -> String {
        let total = now.total.saturating_sub(self.total).max(1) as f64;
        let pct = |a: u64, b: u64| a.saturating_sub(b) as f64 / total * 100.0;
        format!(
            "steal {:.1} % of all CPUs ({:.1} % on the CPU that lost most), busy {:.1} %",
            pct(now.steal, self.steal),
            self.worst_steal_pct(now),
            pct(now.busy, self.busy)
        )
    }

    /// The largest share of one CPU's time stolen between `self` and
    /// `now`, in %.
    pub fn worst_steal_pct(&self, now: &CpuTimes) -> f64 {
        self.per_cpu
            .iter()
            .zip(&now.per_cpu)
            .map(|((s0, t0), (s1, t1))| {
                s1.saturating_sub(*s0) as f64 / t1.saturating_sub(*t0).max(1) as f64 * 100.0
            })
            .fold(0.0, f64::max)
    }

    /// [`Self::worst_steal_pct`] up to now.
    pub fn worst_steal_pct_since(&self) -> Option<f64> {
        Some(self.worst_steal_pct(&CpuTimes::now()?))
    }
}

/// Waits until no CPU loses more than `max_steal_pct` % to steal over two
/// seconds, at most `max_wait`; returns the last window's worst steal
/// (None without /proc/stat).
pub fn wait_for_quiet_host(max_steal_pct: f64, max_wait: Duration) -> Option<f64> {
    let until = Instant::now() + max_wait;
    loop {
        let start = CpuTimes::now()?;
        thread::sleep(Duration::from_secs(2));
        let pct = start.worst_steal_pct_since()?;
        if pct <= max_steal_pct || Instant::now() >= until {
            return Some(pct);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_cpu_steal_is_not_averaged_away() {
        let before = CpuTimes::parse(
            "cpu  100 0 100 700 0 0 0 0 0 0\ncpu0 50 0 50 350 0 0 0 0 0 0\ncpu1 50 0 50 350 0 0 0 0 0 0\nintr 1\n",
        )
        .unwrap();
        // 100 jiffies more on each CPU; cpu1 lost 10 of them to steal.
        let after = CpuTimes::parse(
            "cpu  150 0 150 790 0 0 0 10 0 0\ncpu0 75 0 75 400 0 0 0 0 0 0\ncpu1 75 0 75 390 0 0 0 10 0 0\n",
        )
        .unwrap();
        assert_eq!(before.worst_steal_pct(&after), 10.0);
        assert_eq!(
            before.summary(&after),
            "steal 5.0 % of all CPUs (10.0 % on the CPU that lost most), busy 50.0 %"
        );
    }
}
