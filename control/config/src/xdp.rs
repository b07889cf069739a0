//! `[xdp]`: how `weir run`'s AF_XDP workers drive the ports (cores, batch,
//! UMEM and ring sizes, busy poll, XDP attach mode, traffic passed to the
//! kernel). `[dataplane]`, its old name, is read the same way (one or the
//! other, not both). Every key has a
//! default that works on a veth lab and on a real NIC; nothing here changes
//! what is shaped, only how frames get in and out.

use weir_dataplane::classify::IpPrefix;
/// Pass prefixes per address family: the size of the XDP program's pass
/// table (`weir_xdp::prog::PASS_PREFIX_MAX`; a test in weir-daemon checks
/// the two agree). Written here so the config builds without the XDP crate.
pub const PASS_PREFIX_MAX: usize = 256;

use super::diag::Ctx;
use super::filter;
use super::raw::{sp, RawXdp, S};

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

/// The checked `[xdp]` section, defaults filled in.
///
/// Every rule `weir run`'s data path has for these values is checked here,
/// once, when the file is loaded (`weir check` and `weir run` load it the
/// same way), so an `XdpCfg` is always one the data path accepts
/// (`weir_xdp::datapath::RunSpec::validate`, which stays as a defensive check
/// and holds no rule of its own). The fields are private for that reason:
/// the only way to get one is [`build`] from a file, or the defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XdpCfg {
    cores: Vec<usize>,
    batch: u32,
    frame_size: u32,
    frames: u32,
    ring_size: u32,
    handover_ring: u32,
    busy_poll: bool,
    worker_nice: i32,
    worker_rtprio: u8,
    xdp_mode: XdpAttach,
    pass: Vec<IpPrefix>,
}

impl XdpCfg {
    /// Worker i runs on `cores[i % len]`; empty: workers are not pinned.
    pub fn cores(&self) -> &[usize] {
        &self.cores
    }
    /// Frames taken from an rx ring, or put on a tx ring, at once: at most
    /// half of `ring_size`.
    pub fn batch(&self) -> u32 {
        self.batch
    }
    /// 2048 or 4096 bytes.
    pub fn frame_size(&self) -> u32 {
        self.frame_size
    }
    /// UMEM frames each worker owns: at least 4 × `batch`.
    pub fn frames(&self) -> u32 {
        self.frames
    }
    /// Entries in each rx, tx, fill and completion ring (a power of two).
    pub fn ring_size(&self) -> u32 {
        self.ring_size
    }
    /// Entries in each worker-to-worker hand-over ring.
    pub fn handover_ring(&self) -> u32 {
        self.handover_ring
    }
    pub fn busy_poll(&self) -> bool {
        self.busy_poll
    }
    /// Nice value of the worker threads (when `worker_rtprio` is 0).
    pub fn worker_nice(&self) -> i32 {
        self.worker_nice
    }
    /// SCHED_FIFO priority of the worker threads, 1..=99; 0: the normal
    /// scheduler at `worker_nice`. Defaults to 0 with `busy_poll` (a
    /// spinning real-time thread never yields its core).
    pub fn worker_rtprio(&self) -> u8 {
        self.worker_rtprio
    }
    pub fn xdp_mode(&self) -> XdpAttach {
        self.xdp_mode
    }
    /// Destinations handed to the kernel instead of shaped (management):
    /// distinct, at most [`PASS_PREFIX_MAX`] per address family.
    pub fn pass(&self) -> &[IpPrefix] {
        &self.pass
    }
}

impl Default for XdpCfg {
    fn default() -> XdpCfg {
        XdpCfg {
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
pub(crate) fn check_workers(cx: &mut Ctx, raw: &RawXdp, cfg: &XdpCfg, workers: u32) {
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

pub(crate) fn build(cx: &mut Ctx, raw: &RawXdp) -> XdpCfg {
    let mut cfg = XdpCfg::default();
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
                // Written twice is the same prefix (host bits are refused,
                // so equal prefixes are equal values).
                if !cfg.pass.contains(&prefix) {
                    cfg.pass.push(prefix);
                }
            }
        }
        for (v6, family) in [(false, "IPv4"), (true, "IPv6")] {
            let count = cfg.pass.iter().filter(|p| p.v6 == v6).count();
            if count > PASS_PREFIX_MAX {
                cx.error(
                    &sp(pass),
                    format!("`pass` has {count} distinct {family} prefixes; expected at most {PASS_PREFIX_MAX} per address family (the XDP program's pass table holds {PASS_PREFIX_MAX}): use shorter prefixes that cover several"),
                );
                let mut kept = 0;
                cfg.pass.retain(|p| {
                    kept += usize::from(p.v6 == v6);
                    p.v6 != v6 || kept <= PASS_PREFIX_MAX
                });
            }
        }
    }
    check_sizes(cx, raw, &mut cfg);
    cfg
}

/// The rules between the ring and UMEM sizes, each checked on the values
/// as written and reported at the key that was given (the one a default
/// did not set). After an error the values are made to fit, so even the
/// `XdpCfg` of a refused file is one the data path would accept.
fn check_sizes(cx: &mut Ctx, raw: &RawXdp, cfg: &mut XdpCfg) {
    // A batch is read from an rx ring, or put on a tx ring, in one go;
    // the kernel works in the ring's other half meanwhile.
    let half = cfg.ring_size / 2;
    if cfg.batch > half {
        if let Some(v) = raw.batch.as_ref().or(raw.ring_size.as_ref()) {
            cx.error(
                &sp(v),
                format!(
                    "`batch` = {} is more than half of `ring_size` = {}; expected `batch` at most {half} (a batch is taken from or put on a ring in one go, and the kernel works in the other half meanwhile), or a larger `ring_size`",
                    cfg.batch, cfg.ring_size
                ),
            );
        }
    }
    // A quarter of a worker's frames wait in each of its two ports' fill
    // rings, at least a batch each; the rest hold the packets queued in
    // its trees and those on their way out.
    let least = 4 * cfg.batch;
    if cfg.frames < least {
        if let Some(v) = raw.frames.as_ref().or(raw.batch.as_ref()) {
            cx.error(
                &sp(v),
                format!(
                    "`frames` = {} is less than 4 × `batch` = {least}; expected `frames` at least {least} (a quarter of a worker's frames, at least a batch, waits in each of its two fill rings, and the rest holds what is queued and on its way out), or a smaller `batch`",
                    cfg.frames
                ),
            );
        }
    }
    cfg.batch = cfg.batch.min(half);
    cfg.frames = cfg.frames.max(4 * cfg.batch);
}
