//! The worker's clock: CLOCK_MONOTONIC in nanoseconds, read once per loop
//! iteration and passed into the shaping core (time is an argument); and
//! what makes the worker's thread wake on time (timer slack, SCHED_FIFO).

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
