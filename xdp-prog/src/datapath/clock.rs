//! The worker's clock: CLOCK_MONOTONIC in nanoseconds, read once per loop
//! iteration and passed into the shaping core (time is an argument); and
//! what makes the worker's thread wake on time (timer slack, SCHED_FIFO,
//! its core: [`Sched`]).

/// Nanoseconds since an arbitrary fixed point (boot), never going back.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always
    // exists on Linux, so the call cannot fail with these arguments.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    debug_assert_eq!(rc, 0);
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// Ask the kernel to wake this thread within 1 µs of a timer instead of the
/// default 50 µs slack: a shaped class is released by a timed `ppoll`, and
/// at 1 Gbit/s a full-size frame lasts 12 µs. Costs a few more wakeups'
/// precision, nothing when idle. Best effort: returns false if refused.
pub fn tighten_timer_slack() -> bool {
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and only
    // changes the calling thread's timer slack.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1_000 as libc::c_ulong, 0, 0, 0) == 0 }
}

/// Run the calling thread SCHED_FIFO at `prio` (1..=99), as `chrt -f`
/// would, with SCHED_RESET_ON_FORK so nothing it might spawn inherits it.
/// Needs CAP_SYS_NICE (or an RLIMIT_RTPRIO that allows `prio`) and, in a
/// cgroup with real-time group scheduling, an RT budget.
pub fn set_fifo(prio: u8) -> std::io::Result<()> {
    let param = libc::sched_param {
        sched_priority: libc::c_int::from(prio),
    };
    // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param
    // that outlives the call, which only reads it.
    let rc = unsafe {
        libc::sched_setscheduler(0, libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK, &param)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A `libc::timespec` for a relative timeout of `ns` nanoseconds.
pub fn timespec(ns: u64) -> libc::timespec {
    libc::timespec {
        tv_sec: (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    }
}

/// Where and how a worker's thread runs: the core it is pinned to, and
/// SCHED_FIFO or a nice value — asked for, and what the kernel granted.
pub(crate) struct Sched {
    pub core: Option<usize>,
    /// Spin instead of sleeping when idle.
    pub busy_poll: bool,
    /// Nice value for the thread (when `rtprio` is 0 or refused).
    nice: i32,
    /// The SCHED_FIFO priority asked for, and the one it runs at (0: the
    /// normal scheduler; also when the kernel refused).
    pub rtprio_asked: u8,
    pub rtprio: u8,
    /// The nice value in force: None under SCHED_FIFO (nice does not
    /// apply) or when setting it failed.
    pub nice_applied: Option<i32>,
}

impl Sched {
    pub fn new(core: Option<usize>, busy_poll: bool, nice: i32, rtprio: u8) -> Sched {
        Sched {
            core,
            busy_poll,
            nice,
            rtprio_asked: rtprio,
            rtprio,
            nice_applied: None,
        }
    }

    /// On the calling thread (worker `worker`'s, as it starts): pin it to
    /// its core, set its priority, tighten its timer slack. What the kernel
    /// refuses is warned about and recorded, never fatal.
    pub fn apply(&mut self, worker: usize) {
        if let Some(core) = self.core {
            if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                tracing::warn!(worker, core, "could not pin worker to core");
                self.core = None;
            }
        }
        self.set_priority(worker);
        if !tighten_timer_slack() {
            tracing::debug!(worker, "PR_SET_TIMERSLACK refused");
        }
    }

    /// As [`sched_name`] says it.
    pub fn name(&self) -> String {
        sched_name(self.rtprio_asked, self.rtprio, self.nice_applied)
    }

    /// SCHED_FIFO at `rtprio`, or the normal scheduler at `nice`; when the
    /// kernel refuses real-time, warn (with what to do) and fall back.
    fn set_priority(&mut self, worker: usize) {
        if self.rtprio > 0 && self.busy_poll && self.core.is_none() {
            // Config checking made sure every spinning real-time worker has
            // a core of its own; unpinned, it would spin on any core and
            // starve whatever runs there.
            tracing::warn!(
                worker,
                rtprio = self.rtprio,
                "busy-polling worker is not pinned, so it does not run SCHED_FIFO (it would starve whatever shares its core); it runs at the nice value"
            );
            self.rtprio = 0;
        }
        if self.rtprio > 0 {
            match set_fifo(self.rtprio) {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(
                        worker,
                        rtprio = self.rtprio,
                        nice = self.nice,
                        error = %e,
                        "could not run the worker SCHED_FIFO (needs CAP_SYS_NICE, and an RT budget in cpu.rt_runtime_us when the cgroup has one); it runs at the nice value instead and may wake late on a busy box"
                    );
                    self.rtprio = 0;
                }
            }
        }
        // Linux nice values are per thread (PRIO_PROCESS with a tid).
        // SAFETY: gettid has no preconditions; setpriority only reads its
        // integer arguments.
        let rc = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, self.nice)
        };
        if rc == 0 {
            self.nice_applied = Some(self.nice);
        } else {
            tracing::warn!(
                worker,
                nice = self.nice,
                error = %std::io::Error::last_os_error(),
                "could not set the worker's nice value (needs CAP_SYS_NICE for negative values)"
            );
        }
    }
}

/// How a worker is scheduled, as `chrt`/`ps` would say it: "fifo 10",
/// "nice -10", "nice -10 (fifo 10 refused)"; "nice 0 (not set)" when even
/// the nice value could not be set.
pub fn sched_name(rtprio_asked: u8, rtprio: u8, nice: Option<i32>) -> String {
    if rtprio > 0 {
        return format!("fifo {rtprio}");
    }
    let mut s = match nice {
        Some(n) => format!("nice {n}"),
        None => "nice 0 (not set)".to_string(),
    };
    if rtprio_asked > 0 {
        s.push_str(&format!(" (fifo {rtprio_asked} refused)"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_and_timespec_split() {
        let a = now_ns();
        let b = now_ns();
        assert!(b >= a);
        let ts = timespec(2_500_000_123);
        assert_eq!(ts.tv_sec, 2);
        assert_eq!(ts.tv_nsec, 500_000_123);
    }
}
