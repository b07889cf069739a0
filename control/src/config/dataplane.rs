//! `[dataplane]`: how `weir run` drives the ports (cores, batch, UMEM and
//! ring sizes, XDP mode, traffic passed to the kernel). Every key has a
//! default that works on a veth lab and on a real NIC; nothing here changes
//! what is shaped, only how frames get in and out.

use weir_dataplane::classify::IpPrefix;

use super::diag::Ctx;
use super::filter;
use super::raw::{sp, RawDataplane, S};

/// Frames in one worker's part of the UMEM (64 MiB at 4 KiB frames).
/// A quarter of them (up to a ring's worth) wait in each fill ring, so a
/// worker may be off its CPU for 4096 frames' time (13 ms at 300 kpps)
/// before the kernel finds the fill ring empty and drops: on a busy
/// 2-core box, 4096 frames (3 ms) were not enough (weir-bench, bench/run.sh).
pub const DEFAULT_FRAMES: u32 = 16384;
pub const DEFAULT_FRAME_SIZE: u32 = 4096;
/// Entries of every ring: the fill ring's share above needs 4096.
pub const DEFAULT_RING_SIZE: u32 = 4096;
pub const DEFAULT_BATCH: u32 = 64;
pub const DEFAULT_HANDOVER_RING: u32 = 4096;
/// Nice value of workers that do not run at a real-time priority (see
/// [`DEFAULT_WORKER_RTPRIO`]).
pub const DEFAULT_WORKER_NICE: i32 = -10;
/// Workers that sleep between deadlines run SCHED_FIFO at priority 10, as
/// `chrt -f 10` would: a worker that wakes late loses its classes' tokens
/// beyond their bursts, and at nice -10 two busy processes on a 2-core box
/// delayed its wake-ups enough to cost a borrowing class 5-10 % of its rate
/// (e2e_shaping with two `yes` loops; at FIFO 10: every class within 1 %,
/// most within 0.1 %). Kernel HTB gets the same from running in softirq.
/// 10 keeps workers below threaded interrupt handlers (FIFO 50). Softirq,
/// ksoftirqd and threaded-NAPI kthreads are normal threads, though: a
/// worker that never sleeps under sustained load delays them on its CPU
/// (only RT throttling, 95 % by default, leaves room), so NIC interrupts
/// belong on other cores than the workers'.
pub const DEFAULT_WORKER_RTPRIO: u8 = 10;

/// How the XDP program is attached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum XdpAttach {
    /// Driver mode (veth and most NIC drivers have it).
    #[default]
    Native,
    /// Generic (skb) mode: any interface, slower.
    Generic,
}

impl XdpAttach {
    pub fn name(self) -> &'static str {
        match self {
            XdpAttach::Native => "native",
            XdpAttach::Generic => "generic",
        }
    }
}

/// The checked `[dataplane]` section, defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataplaneCfg {
    /// Worker i runs on `cores[i % len]`; empty: workers are not pinned.
    pub cores: Vec<usize>,
    pub batch: u32,
    /// 2048 or 4096 bytes.
    pub frame_size: u32,
    /// UMEM frames each worker owns.
    pub frames: u32,
    /// Entries in each rx, tx, fill and completion ring (a power of two).
    pub ring_size: u32,
    /// Entries in each worker-to-worker hand-over ring.
    pub handover_ring: u32,
    pub busy_poll: bool,
    /// Nice value of the worker threads (when `worker_rtprio` is 0).
    pub worker_nice: i32,
    /// SCHED_FIFO priority of the worker threads, 1..=99; 0: the normal
    /// scheduler at `worker_nice`. Defaults to 0 with `busy_poll` (a
    /// spinning real-time thread never yields its core).
    pub worker_rtprio: u8,
    pub xdp_mode: XdpAttach,
    /// Destinations handed to the kernel instead of shaped (management).
    pub pass: Vec<IpPrefix>,
}

impl Default for DataplaneCfg {
    fn default() -> DataplaneCfg {
        DataplaneCfg {
            cores: Vec::new(),
            batch: DEFAULT_BATCH,
            frame_size: DEFAULT_FRAME_SIZE,
            frames: DEFAULT_FRAMES,
            ring_size: DEFAULT_RING_SIZE,
            handover_ring: DEFAULT_HANDOVER_RING,
            busy_poll: false,
            worker_nice: DEFAULT_WORKER_NICE,
            worker_rtprio: DEFAULT_WORKER_RTPRIO,
            xdp_mode: XdpAttach::Native,
            pass: Vec::new(),
        }
    }
}

fn int(cx: &mut Ctx, v: &Option<S<i64>>, what: &str, lo: i64, hi: i64, default: u32) -> u32 {
    match v {
        None => default,
        Some(v) => {
            let n = *v.get_ref();
            if (lo..=hi).contains(&n) {
                n as u32
            } else {
                cx.error(
                    &sp(v),
                    format!("`{what}` = {n} is out of range; expected {lo}..={hi}"),
                );
                default
            }
        }
    }
}

fn power_of_two(
    cx: &mut Ctx,
    v: &Option<S<i64>>,
    what: &str,
    lo: u32,
    hi: u32,
    default: u32,
) -> u32 {
    let n = int(cx, v, what, i64::from(lo), i64::from(hi), default);
    if !n.is_power_of_two() {
        if let Some(v) = v {
            cx.error(
                &sp(v),
                format!(
                    "`{what}` = {n} is not a power of two; expected one of {lo}, {}, …, {hi}",
                    lo * 2
                ),
            );
        }
        return default;
    }
    n
}

/// A spinning (`busy_poll`) real-time worker never gives its CPU back, so
/// two on one core starve each other (and unpinned, one can take any
/// core): with both, every worker needs a core of its own. `workers` is
/// the pairs' queues together (one worker per queue).
pub(crate) fn check_workers(cx: &mut Ctx, raw: &RawDataplane, cfg: &DataplaneCfg, workers: u32) {
    if !cfg.busy_poll || cfg.worker_rtprio == 0 || workers == 0 {
        return;
    }
    let mut distinct = cfg.cores.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() >= workers as usize {
        return;
    }
    let Some(v) = &raw.worker_rtprio else {
        return;
    };
    cx.error(
        &sp(v),
        format!(
            "`worker_rtprio` = {} with `busy_poll = true` needs a core of its own for every worker: {workers} worker(s) (the pairs' queues), {} distinct core(s) in `cores`; a spinning real-time worker never gives its CPU back, so two on one core starve each other. List more cores, or set `worker_rtprio = 0`",
            cfg.worker_rtprio,
            distinct.len()
        ),
    );
}

pub(crate) fn build(cx: &mut Ctx, raw: &RawDataplane) -> DataplaneCfg {
    let mut cfg = DataplaneCfg::default();
    if let Some(cores) = &raw.cores {
        for c in cores.get_ref() {
            match usize::try_from(*c.get_ref()) {
                Ok(n) if n < 4096 => cfg.cores.push(n),
                _ => cx.error(
                    &sp(c),
                    format!("bad core {}; expected a CPU number 0..4095", c.get_ref()),
                ),
            }
        }
    }
    cfg.batch = int(cx, &raw.batch, "batch", 1, 1024, DEFAULT_BATCH);
    cfg.frame_size = match &raw.frame_size {
        None => DEFAULT_FRAME_SIZE,
        Some(v) => match *v.get_ref() {
            2048 => 2048,
            4096 => 4096,
            n => {
                cx.error(
                    &sp(v),
                    format!("`frame_size` = {n} is not supported; expected 2048 or 4096 (AF_XDP aligned frames)"),
                );
                DEFAULT_FRAME_SIZE
            }
        },
    };
    cfg.frames = int(cx, &raw.frames, "frames", 64, 1 << 20, DEFAULT_FRAMES);
    cfg.ring_size = power_of_two(
        cx,
        &raw.ring_size,
        "ring_size",
        64,
        16384,
        DEFAULT_RING_SIZE,
    );
    cfg.handover_ring = int(
        cx,
        &raw.handover_ring,
        "handover_ring",
        64,
        1 << 20,
        DEFAULT_HANDOVER_RING,
    );
    cfg.busy_poll = raw.busy_poll.as_ref().is_some_and(|b| *b.get_ref());
    if let Some(v) = &raw.worker_nice {
        let n = *v.get_ref();
        if (-20..=19).contains(&n) {
            cfg.worker_nice = n as i32;
        } else {
            cx.error(
                &sp(v),
                format!("`worker_nice` = {n} is out of range; expected -20..=19"),
            );
        }
    }
    cfg.worker_rtprio = match &raw.worker_rtprio {
        None if cfg.busy_poll => 0,
        None => DEFAULT_WORKER_RTPRIO,
        Some(v) => {
            let n = *v.get_ref();
            if !(0..=99).contains(&n) {
                cx.error(
                    &sp(v),
                    format!("`worker_rtprio` = {n} is out of range; expected 0 (normal scheduling at `worker_nice`) or 1..=99 (SCHED_FIFO)"),
                );
                0
            } else {
                n as u8
            }
        }
    };
    if let Some(m) = &raw.xdp_mode {
        match m.get_ref().as_str() {
            "native" | "drv" => cfg.xdp_mode = XdpAttach::Native,
            "generic" | "skb" => cfg.xdp_mode = XdpAttach::Generic,
            other => cx.error(
                &sp(m),
                format!("unknown `xdp_mode` \"{other}\"; expected \"native\" or \"generic\""),
            ),
        }
    }
    if let Some(pass) = &raw.pass {
        for p in pass.get_ref() {
            if let Some(prefix) = filter::prefix(cx, p, "pass") {
                cfg.pass.push(prefix);
            }
        }
    }
    cfg
}
