//! How disturbed the host was, from /proc/stat: a rate test on a shared VM
//! that misses says how much CPU time the hypervisor took meanwhile
//! (steal: time it ran someone else while this VM wanted the CPU). A burst
//! of steal on the CPU that runs weir's worker costs a class the tokens of
//! the wait; averaged over all CPUs it would look half as large, so the
//! worst single CPU is what counts.
//!
//! Steal only accrues while a virtual CPU wants to run: an idle VM reads
//! near 0 % on a host that takes 12-17 % from it as soon as it is busy
//! (seen in CI on 2026-12-07: 0.5 % idle between attempts of the
//! differential test, 11.5-17.5 % during them). So [`wait_for_quiet_host`]
//! keeps every CPU busy while it measures.

use std::sync::atomic::{AtomicBool, Ordering};
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

    /// Busy share of all CPUs from `self` to `now`, in %.
    pub fn busy_pct(&self, now: &CpuTimes) -> f64 {
        now.busy.saturating_sub(self.busy) as f64
            / now.total.saturating_sub(self.total).max(1) as f64
            * 100.0
    }
}

/// Steal (% of the CPU that lost most) above which no shortfall is taken
/// as explained by it: the attempt says nothing.
pub const STEAL_EXPLAINS_AT_MOST_PCT: f64 = 25.0;

/// How much of `rate` a shaper can lose while the hypervisor takes
/// `steal_pct` % of a CPU: that share of it. A shaper that is not scheduled
/// sends nothing, and the tokens of a wait longer than its burst are lost
/// (HTB caps them at the burst, in the kernel as in weir), so a class can
/// fall short by up to the stolen share of its rate, and never gain by it.
/// None on a host quiet enough to judge (`steal_pct` ≤ `quiet_pct`) or too
/// disturbed to (above [`STEAL_EXPLAINS_AT_MOST_PCT`]). Rate tests use it
/// only after every attempt was disturbed, to judge a shortfall against
/// the kernel's or the simulator's.
pub fn stolen_share(steal_pct: f64, quiet_pct: f64, rate: f64) -> Option<f64> {
    (steal_pct > quiet_pct && steal_pct <= STEAL_EXPLAINS_AT_MOST_PCT)
        .then(|| steal_pct / 100.0 * rate)
}

/// How long one probe of [`wait_for_quiet_host`] keeps the CPUs busy.
const PROBE: Duration = Duration::from_secs(2);
/// The pause between probes that found steal: the probe itself is load,
/// and the host's other guests come and go over tens of seconds.
const PROBE_GAP: Duration = Duration::from_secs(6);

/// Waits until no CPU loses more than `max_steal_pct` % to steal over a
/// probe of two seconds in which every CPU spins (an idle CPU shows no
/// steal, see the module's comment), at most `max_wait`; returns the last
/// probe's worst steal (None without /proc/stat).
pub fn wait_for_quiet_host(max_steal_pct: f64, max_wait: Duration) -> Option<f64> {
    let until = Instant::now() + max_wait;
    loop {
        let pct = steal_under_load(PROBE)?;
        if pct <= max_steal_pct || Instant::now() + PROBE_GAP >= until {
            return Some(pct);
        }
        thread::sleep(PROBE_GAP);
    }
}

/// The worst CPU's steal, in %, over `window` with one spinning thread
/// per CPU.
pub fn steal_under_load(window: Duration) -> Option<f64> {
    let cpus = thread::available_parallelism().map_or(1, |n| n.get());
    let stop = AtomicBool::new(false);
    let start = CpuTimes::now()?;
    let end = thread::scope(|s| {
        for _ in 0..cpus {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            });
        }
        thread::sleep(window);
        let end = CpuTimes::now();
        stop.store(true, Ordering::Relaxed);
        end
    })?;
    Some(start.worst_steal_pct(&end))
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
        assert_eq!(before.busy_pct(&after), 50.0);
    }

    #[test]
    fn a_probe_spins_for_its_window_and_reads_a_share() {
        let cpu_time = || {
            // SAFETY: rusage is plain C data, valid all zero, and
            // getrusage only writes into the struct it is given.
            let (rc, u) = unsafe {
                let mut u: libc::rusage = std::mem::zeroed();
                (libc::getrusage(libc::RUSAGE_SELF, &mut u), u)
            };
            assert_eq!(rc, 0, "getrusage");
            let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
            Duration::from_micros(us(u.ru_utime) + us(u.ru_stime))
        };
        let before = cpu_time();
        let pct = steal_under_load(Duration::from_millis(400)).expect("/proc/stat");
        let spun = cpu_time() - before;
        assert!((0.0..=100.0).contains(&pct), "{pct}");
        // At least one spinner ran for most of the window (a loaded host
        // may give the others less).
        assert!(spun >= Duration::from_millis(200), "spun {spun:?}");
    }
}
