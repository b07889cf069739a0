//! How disturbed the host was: steal per CPU from /proc/stat (the same
//! measure as control/cli/tests/lab's `CpuTimes`). Steal is CPU time the
//! hypervisor gave to another guest while this VM wanted it; a burst of it
//! on the CPU that runs weir's worker costs a borrowing class the tokens
//! of the wait, and the kernel's hrtimer does not see it the same way.

use std::thread;
use std::time::{Duration, Instant};

/// Steal above this share of one CPU during an attempt lets a differing
/// tree run again (control/cli/tests/lab: on a quiet host steal stays near
/// 0.1 %; a rate that missed by 3.5 % had 2.6 % of one CPU stolen).
pub const STEAL_RETRY_PCT: f64 = 1.0;
/// weir's worker waking more than 1 ms late for a shaper deadline (its
/// own account, `wake_late` in its final report) more often than once in
/// this many wake-ups lets a differing tree run again. At SCHED_FIFO only
/// interrupts, softirq work and the hypervisor hold it back that long,
/// and a class whose bucket holds less than the wait loses the difference
/// (tc's default cburst of 1600 bytes is 213 µs at 60 Mbit/s). Measured
/// here: 4-19 such wake-ups in 56,000 on attempts that matched the kernel,
/// 58 in 54,000 on one that fell 1.4 points short under 2.2 % steal.
/// (Its largest lateness says nothing: 8-33 ms once per run, also on runs
/// that match to 0.1 point.)
pub const LATE_RETRY_ONE_IN: u64 = 5000;
/// Before another attempt, wait at most this long for a quiet host.
pub const QUIET_WAIT: Duration = Duration::from_secs(30);

/// Jiffies of all CPUs together (busy, all) and of each CPU (steal, all).
#[derive(Clone, Debug)]
pub struct CpuTimes {
    busy: u64,
    total: u64,
    per_cpu: Vec<(u64, u64)>,
}

impl CpuTimes {
    /// None where /proc/stat cannot be read (then nothing counts as
    /// disturbed, and a difference fails).
    pub fn now() -> Option<CpuTimes> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
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
            per_cpu,
        })
    }

    /// The largest share of one CPU's time stolen since `self`, in %.
    pub fn worst_steal_pct(&self, now: &CpuTimes) -> f64 {
        self.per_cpu
            .iter()
            .zip(&now.per_cpu)
            .map(|((s0, t0), (s1, t1))| {
                s1.saturating_sub(*s0) as f64 / t1.saturating_sub(*t0).max(1) as f64 * 100.0
            })
            .fold(0.0, f64::max)
    }

    /// Busy share of all CPUs since `self`, in %.
    pub fn busy_pct(&self, now: &CpuTimes) -> f64 {
        now.busy.saturating_sub(self.busy) as f64
            / now.total.saturating_sub(self.total).max(1) as f64
            * 100.0
    }
}

/// Why an attempt's rates cannot be judged alone, if they cannot: frames
/// the receiver itself lost, the hypervisor's steal (over the attempt,
/// worst CPU) or weir's worker waking late. None: a quiet host, where a
/// difference is a failure.
pub fn disturbed(
    steal_pct: f64,
    worker: &super::WorkerAccount,
    receiver_drops: u64,
) -> Option<String> {
    if receiver_drops > 0 {
        return Some(format!(
            "the receiver's own sockets lost {receiver_drops} frames (the measurement, not the path)"
        ));
    }
    if steal_pct > STEAL_RETRY_PCT {
        return Some(format!("the hypervisor stole {steal_pct:.1} % of a CPU"));
    }
    if worker.late_over_1ms * LATE_RETRY_ONE_IN > worker.wakeups {
        return Some(format!(
            "weir's worker woke more than 1 ms late {} times in {} wake-ups",
            worker.late_over_1ms, worker.wakeups
        ));
    }
    None
}

/// Waits until no CPU loses more than [`STEAL_RETRY_PCT`] % over two
/// seconds, at most [`QUIET_WAIT`]; returns the last window's worst steal.
pub fn wait_for_quiet() -> f64 {
    let give_up = Instant::now() + QUIET_WAIT;
    loop {
        let Some(a) = CpuTimes::now() else { return 0.0 };
        thread::sleep(Duration::from_secs(2));
        let Some(b) = CpuTimes::now() else { return 0.0 };
        let steal = a.worst_steal_pct(&b);
        if steal <= STEAL_RETRY_PCT || Instant::now() >= give_up {
            return steal;
        }
    }
}
