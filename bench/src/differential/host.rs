//! How disturbed the host was: steal per CPU from /proc/stat
//! (`weir_testkit::host`, the lab tests' measure too). Steal is CPU time the
//! hypervisor gave to another guest while this VM wanted it; a burst of it
//! on the CPU that runs weir's worker costs a borrowing class the tokens
//! of the wait, and the kernel's hrtimer does not see it the same way.

use std::time::Duration;

use weir_testkit::host::wait_for_quiet_host;
pub use weir_testkit::host::CpuTimes;

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
pub const QUIET_WAIT: Duration = Duration::from_secs(60);

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

/// Waits until no CPU loses more than [`STEAL_RETRY_PCT`] % while every
/// CPU is busy (an idle CPU shows no steal; `weir_testkit::host`), at most
/// [`QUIET_WAIT`]; returns the last probe's worst steal.
pub fn wait_for_quiet() -> f64 {
    wait_for_quiet_host(STEAL_RETRY_PCT, QUIET_WAIT).unwrap_or(0.0)
}
