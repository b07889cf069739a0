//! The differential test of weir's HTB against the kernel's: the same tree
//! and the same traffic through kernel HTB (the lab's twin, built by
//! `weir tc`) and through `weir run` on the same kind of veth wires, the
//! two taking turns, and through `weir simulate`; each active class's
//! achieved rate compared in points of the root's rate.
//!
//! - [`tree`]: the trees (random from a seed, or hand-made), their configs
//!   and simulator traffic.
//! - [`host`]: steal, to tell a disturbed host from a real difference.
//! - [`tcp`]: bulk TCP flows (iperf3) through a path, for the trees whose
//!   traffic is TCP ([`tree::Proto::Tcp`]).
//! - [`sockdiag`]: the TCP counters (`tcp_info`) of another namespace's
//!   sockets, what [`tcp`] measures with.
//! - `measure`: the lab, a `weir run` on it, the UDP trials and
//!   `weir simulate` for one tree; `report`: the Markdown table.
//!
//! A tree passes when every active class of weir is within the tolerance
//! (1 point) of the kernel and of the simulator; a TCP tree within its
//! own tolerance ([`TCP_TOLERANCE_PTS`]) of the kernel alone (the
//! simulator's TCP sources are a model, not a stack). A tree that differs
//! while the hypervisor stole more than [`host::STEAL_RETRY_PCT`] % of a
//! CPU is measured again (after waiting for a quiet host), at most
//! `attempts` times in all; one that differs on a quiet host fails at
//! once, and one that differs on every attempt fails too, however
//! disturbed the host was. There is no third outcome.

pub mod host;
mod measure;
mod report;
pub mod sockdiag;
pub mod tcp;
pub mod tree;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;
use weir_xdp::prog::XdpMode;

use crate::traffic::spec::PathSpec;
use crate::traffic::testframe::SizeMix;
use crate::traffic::trial::{self, StreamSpec};
use host::CpuTimes;
use tcp::TcpPath;
use tree::{Proto, Tree, TreeSpec, FRAME_BYTES};
use weir_testkit::host::stolen_share;

use measure::*;
pub use report::markdown;

/// The pass tolerance of a TCP tree, points of the root's rate: the same
/// 1 point as UDP, set from how much the kernel differs from itself. TCP
/// is its own feedback loop (each flow's cubic sawtooth, the tail drops
/// when a 1000-packet pfifo leaf overflows, the host's scheduling of the
/// TCP endpoints), so single runs vary more than UDP's: on this 2-vCPU VM,
/// lab-tcp, 10 s windows, other jobs compiling throughout, single kernel
/// runs of 1:12 ranged over 49.63–49.87 Mbit/s in one command and 48.88–
/// 49.46 in one beside two busy loops; the kernel's medians of four
/// commands (quiet and busy) over 49.37–49.81, 0.44 points, the other
/// classes less; weir's medians were 0.02–0.20 points from the kernel's
/// of the same command (docs/performance.md, "Rate accuracy against the
/// kernel"). 1 point is over twice the kernel's own spread between
/// commands; a wider one would let a real difference through.
pub const TCP_TOLERANCE_PTS: f64 = 1.0;
/// How long every TCP flow runs before the window opens: slow start, and
/// HyStart's exit from it, are over by then (the sender's RTT has grown
/// to the depth of its class's queue).
pub const TCP_WARMUP: Duration = Duration::from_secs(4);
/// The default TCP window. Cubic fills a pfifo leaf of 1000 packets for
/// the first time 5–9 s after it starts (a full leaf is 0.4 s of queue at
/// 30 Mbit/s, 0.6 s at 20); the tail drop of ~50 packets and the recovery
/// from it cost the class up to 10 % of a 5 s window, or nothing when it
/// falls after the window, so 5 s windows of the kernel differed from
/// each other by up to 3 points. A 10 s window holds the first loss of
/// every flow of the lab tree's two faster classes on every run.
pub const TCP_WINDOW: Duration = Duration::from_secs(10);

/// The twin's host MACs (scripts/lab.sh).
const TWIN_MACS: &str = "smac=02:00:c6:12:01:01,dmac=02:00:c6:12:01:02";

#[derive(Clone, Debug)]
pub struct DiffSpec {
    pub trees: Vec<TreeSpec>,
    /// The weir binary: `weir run`, `weir simulate`, and `weir tc` (through
    /// lab.sh) for the kernel's tree.
    pub weir: PathBuf,
    /// scripts/lab.sh.
    pub lab_sh: PathBuf,
    /// The lab's namespace prefix (its own: never a lab made by hand).
    pub prefix: String,
    /// Where the configs, traffic files and weir logs go.
    pub dir: PathBuf,
    /// How long each trial sends.
    pub trial: Duration,
    /// How long a TCP trial measures, after [`TCP_WARMUP`].
    pub tcp_window: Duration,
    /// Trials per path and attempt, weir and kernel taking turns.
    pub repeat: u32,
    /// Attempts per tree in all (more than one only on a disturbed host).
    pub attempts: u32,
    /// Largest difference that passes, in points of the root's rate.
    pub tolerance_pts: f64,
    /// The same for TCP trees ([`TCP_TOLERANCE_PTS`]).
    pub tcp_tolerance_pts: f64,
    /// Simulated seconds (the first is warm-up).
    pub sim_s: u32,
}

/// One active leaf of one tree.
#[derive(Clone, Debug, Serialize)]
pub struct ClassRow {
    pub class: String,
    pub prio: u8,
    /// The explicit quantum; None: tc's default (rate / r2q, clamped).
    pub quantum: Option<u32>,
    pub rate_mbit: f64,
    pub ceil_mbit: f64,
    /// NaN for TCP (as much as TCP gets through).
    pub offered_mbit: f64,
    /// Medians over the runs, Mbit/s of frame bytes (FCS excluded). The
    /// simulator's is NaN for TCP (not run).
    pub kernel_mbit: f64,
    pub weir_mbit: f64,
    pub sim_mbit: f64,
    pub kernel_runs: Vec<f64>,
    pub weir_runs: Vec<f64>,
    /// TCP only, per run: segments the sender retransmitted in the window,
    /// and its smoothed RTT at the end of it (ms; how deep the class's
    /// queue stood).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kernel_retransmits: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub weir_retransmits: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kernel_rtt_ms: Vec<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub weir_rtt_ms: Vec<f64>,
    /// (weir − kernel) / root × 100.
    pub weir_kernel_pts: f64,
    /// (sim − weir) / root × 100.
    pub sim_weir_pts: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Attempt {
    /// Largest share of one CPU stolen by the hypervisor during the
    /// attempt, %.
    pub steal_pct: f64,
    /// Busy share of all CPUs, %.
    pub busy_pct: f64,
    pub max_weir_kernel_pts: f64,
    /// None for TCP (no simulator).
    pub max_sim_weir_pts: Option<f64>,
    /// weir's worker during the attempt (its final report).
    pub weir_worker: WorkerAccount,
    /// Frames the receiver's own sockets lost (ring full, fill ring
    /// empty), all runs of both paths: lost by the measurement, not the
    /// path.
    pub receiver_drops: u64,
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TreeReport {
    pub name: String,
    pub proto: Proto,
    /// The tolerance this tree was judged with, points.
    pub tolerance_pts: f64,
    pub classes: usize,
    pub leaves: usize,
    pub depth: u32,
    pub oversubscribed: usize,
    pub root_mbit: f64,
    pub active: usize,
    /// The last attempt's classes.
    pub rows: Vec<ClassRow>,
    pub attempts: Vec<Attempt>,
    pub pass: bool,
    pub verdict: String,
}

impl TreeReport {
    pub fn max_weir_kernel_pts(&self) -> f64 {
        self.rows
            .iter()
            .map(|r| r.weir_kernel_pts.abs())
            .fold(0.0, f64::max)
    }

    /// None for TCP, where the simulator is not run.
    pub fn max_sim_weir_pts(&self) -> Option<f64> {
        (self.proto == Proto::Udp).then(|| {
            self.rows
                .iter()
                // NaN (a class the simulator did not report) wins.
                .map(|r| r.sim_weir_pts.abs())
                .fold(0.0_f64, |m, x| {
                    if x.is_nan() || m.is_nan() {
                        f64::NAN
                    } else {
                        m.max(x)
                    }
                })
        })
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct DiffReport {
    pub weir: String,
    pub trial_s: f64,
    pub tcp_window_s: f64,
    pub repeat: u32,
    pub tolerance_pts: f64,
    pub trees: Vec<TreeReport>,
    pub passed: usize,
    pub failed: usize,
    pub took_s: f64,
}

/// Runs every tree; `progress` gets a line per step (stderr in the CLI).
pub fn run(s: &DiffSpec, progress: &mut dyn FnMut(&str)) -> Result<DiffReport, String> {
    let started = Instant::now();
    std::fs::create_dir_all(&s.dir).map_err(|e| format!("creating {}: {e}", s.dir.display()))?;
    let mut lab = Lab::new(s);
    let mut trees = Vec::new();
    for spec in &s.trees {
        let t = spec.tree();
        progress(&format!(
            "tree {}: {} classes, {} leaves, depth {}, {} active",
            t.name,
            t.classes.len(),
            t.leaves().len(),
            t.depth(),
            t.active.len()
        ));
        let r = run_tree(s, &mut lab, &t, progress);
        progress(&format!(
            "tree {}: {} — {}",
            t.name,
            if r.pass { "PASS" } else { "FAIL" },
            r.verdict
        ));
        trees.push(r);
    }
    drop(lab);
    let passed = trees.iter().filter(|t| t.pass).count();
    Ok(DiffReport {
        weir: s.weir.display().to_string(),
        trial_s: s.trial.as_secs_f64(),
        tcp_window_s: s.tcp_window.as_secs_f64(),
        repeat: s.repeat,
        tolerance_pts: s.tolerance_pts,
        failed: trees.len() - passed,
        passed,
        trees,
        took_s: started.elapsed().as_secs_f64(),
    })
}

fn run_tree(s: &DiffSpec, lab: &mut Lab, t: &Tree, progress: &mut dyn FnMut(&str)) -> TreeReport {
    let tolerance = match t.proto {
        Proto::Udp => s.tolerance_pts,
        Proto::Tcp => s.tcp_tolerance_pts,
    };
    let mut report = TreeReport {
        name: t.name.clone(),
        proto: t.proto,
        tolerance_pts: tolerance,
        classes: t.classes.len(),
        leaves: t.leaves().len(),
        depth: t.depth(),
        oversubscribed: t.oversubscribed(),
        root_mbit: t.root_bps() as f64 / 1e6,
        active: t.active.len(),
        rows: Vec::new(),
        attempts: Vec::new(),
        pass: false,
        verdict: String::new(),
    };
    let attempts = s.attempts.max(1);
    for n in 1..=attempts {
        let before = CpuTimes::now();
        let measured = measure(s, lab, t, progress);
        let after = CpuTimes::now();
        let (steal, busy) = match (&before, &after) {
            (Some(a), Some(b)) => (a.worst_steal_pct(b), a.busy_pct(b)),
            _ => (0.0, 0.0),
        };
        let mut attempt = Attempt {
            steal_pct: steal,
            busy_pct: busy,
            max_weir_kernel_pts: f64::NAN,
            max_sim_weir_pts: None,
            weir_worker: WorkerAccount::default(),
            receiver_drops: 0,
            error: None,
        };
        match measured {
            Err(e) => {
                attempt.error = Some(e.clone());
                report.attempts.push(attempt);
                report.verdict = format!("attempt {n}: {e}");
                return report;
            }
            Ok((rows, worker, receiver_drops)) => {
                report.rows = rows;
                attempt.weir_worker = worker;
                attempt.receiver_drops = receiver_drops;
                attempt.max_weir_kernel_pts = report.max_weir_kernel_pts();
                attempt.max_sim_weir_pts = report.max_sim_weir_pts();
                report.attempts.push(attempt);
            }
        }
        let last = &report.attempts[report.attempts.len() - 1];
        let disturbed = host::disturbed(steal, &last.weir_worker, last.receiver_drops);
        let quiet_host = format!(
            "steal {steal:.1} % of a CPU, weir's worker more than 1 ms late {} times in {} wake-ups, busy {busy:.0} %",
            last.weir_worker.late_over_1ms, last.weir_worker.wakeups
        );
        match judge(
            report.max_weir_kernel_pts(),
            report.max_sim_weir_pts(),
            tolerance,
            disturbed,
            n,
            attempts,
        ) {
            Judgement::Pass(v) => {
                report.pass = true;
                report.verdict = v;
                return report;
            }
            Judgement::Fail(v) => {
                // Every attempt was disturbed: the last one passes only if
                // the time the hypervisor took explains every difference.
                let explained = (n >= attempts && last.receiver_drops == 0)
                    .then(|| explained_by_steal(&report, tolerance, steal))
                    .flatten();
                if let Some(v) = explained {
                    report.pass = true;
                    report.verdict = format!("{v} (attempt {n})");
                    return report;
                }
                report.verdict = if v.ends_with("on a quiet host") {
                    format!("{v} ({quiet_host})")
                } else {
                    v
                };
                return report;
            }
            Judgement::Again(v) => progress(&format!("tree {}: {v}", t.name)),
        }
        let quiet = host::wait_for_quiet();
        progress(&format!("tree {}: steal now {quiet:.1} %", t.name));
    }
    report
}

/// Whether the stolen time explains every difference of an attempt that
/// the hypervisor disturbed (`steal_pct` of its busiest CPU; see
/// `weir_testkit::host::stolen_share`), and how, as a verdict. weir's worker is one thread, so a stolen CPU stops it; the
/// kernel's HTB also runs in the sender's context on the other CPU, and
/// loses less (docs/performance.md, "Under steal"). So: weir at most
/// `tolerance` points above the simulator (which nothing steals from),
/// and below it, or away from the kernel either way, by at most the
/// tolerance plus the stolen share of the class's rate. Only for UDP trees
/// (the simulator's bound); None when a class is outside.
pub fn explained_by_steal(report: &TreeReport, tolerance: f64, steal_pct: f64) -> Option<String> {
    if report.proto != Proto::Udp || report.rows.is_empty() {
        return None;
    }
    let root = report.root_mbit;
    let pts = |mbit: f64| mbit / root * 100.0;
    let round = |x: f64| (x * 100.0).round() / 100.0;
    let mut widest: f64 = 0.0;
    for r in &report.rows {
        let rate = pts(r.sim_mbit.max(r.kernel_mbit));
        let share = stolen_share(steal_pct, host::STEAL_RETRY_PCT, rate)?;
        let above_sim = pts(r.weir_mbit - r.sim_mbit);
        let below_sim = pts(r.sim_mbit - r.weir_mbit);
        let from_kernel = pts(r.weir_mbit - r.kernel_mbit).abs();
        let ok = round(above_sim) <= tolerance
            && round(below_sim) <= tolerance + share
            && round(from_kernel) <= tolerance + share;
        if !ok {
            return None;
        }
        widest = widest.max(share);
    }
    Some(format!(
        "every class within what the stolen time explains (steal {steal_pct:.1} % of a CPU, up to {widest:.2} points of a class's rate): weir never more than {tolerance:.2} above the simulator, at most {:.2} below it or from the kernel",
        tolerance + widest
    ))
}

/// What one attempt's numbers say.
#[derive(Clone, Debug, PartialEq)]
pub enum Judgement {
    Pass(String),
    Fail(String),
    /// Differs on a disturbed host with attempts left: measure again.
    Again(String),
}

/// Attempt `n` of `attempts` differs from the kernel by up to `wk` points
/// and from the simulator by up to `sw` (None: no simulator, TCP);
/// `disturbed` says why the host
/// could not be trusted, if it could not. Passes only within the
/// tolerance; a difference on a quiet host fails at once, one on a
/// disturbed host is measured again while attempts are left and fails on
/// the last. Differences are compared as printed (two decimals), so the
/// table and the verdict never disagree.
pub fn judge(
    wk: f64,
    sw: Option<f64>,
    tolerance: f64,
    disturbed: Option<String>,
    n: u32,
    attempts: u32,
) -> Judgement {
    let round = |x: f64| (x * 100.0).round() / 100.0;
    // NaN (a class the simulator did not report) never passes.
    if round(wk) <= tolerance && sw.is_none_or(|sw| round(sw) <= tolerance) {
        return Judgement::Pass(match sw {
            Some(sw) => format!(
                "every class within {wk:.2} points of the kernel and {sw:.2} of the simulator (attempt {n})"
            ),
            None => format!("every class within {wk:.2} points of the kernel (attempt {n})"),
        });
    }
    let what = match sw {
        Some(sw) => format!(
            "weir differs from the kernel by up to {wk:.2} points and from the simulator by up to {sw:.2} (tolerance {tolerance:.2})"
        ),
        None => format!(
            "weir differs from the kernel by up to {wk:.2} points (tolerance {tolerance:.2})"
        ),
    };
    match disturbed {
        None => Judgement::Fail(format!("{what}, attempt {n}, on a quiet host")),
        Some(why) if n >= attempts => Judgement::Fail(format!(
            "{what} on all {attempts} attempts, each on a disturbed host (the last: {why}): a difference that stays is a difference"
        )),
        Some(why) => Judgement::Again(format!(
            "{what} while {why}: waiting for a quiet host, then attempt {}",
            n + 1
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judge_passes_only_within_tolerance_and_never_on_disturbance_alone() {
        assert!(matches!(
            judge(0.4, Some(1.0), 1.0, None, 1, 3),
            Judgement::Pass(_)
        ));
        // 1.004 prints as 1.00: within.
        assert!(matches!(
            judge(1.004, Some(0.0), 1.0, None, 1, 3),
            Judgement::Pass(_)
        ));
        let quiet = judge(1.2, Some(0.1), 1.0, None, 1, 3);
        assert!(
            matches!(&quiet, Judgement::Fail(v) if v.ends_with("on a quiet host")),
            "{quiet:?}"
        );
        let busy = || Some("the hypervisor stole 2.0 % of a CPU".to_owned());
        assert!(matches!(
            judge(0.1, Some(1.5), 1.0, busy(), 1, 3),
            Judgement::Again(_)
        ));
        assert!(matches!(
            judge(0.1, Some(1.5), 1.0, busy(), 2, 3),
            Judgement::Again(_)
        ));
        let last = judge(0.1, Some(1.5), 1.0, busy(), 3, 3);
        assert!(
            matches!(&last, Judgement::Fail(v) if v.contains("on all 3 attempts")),
            "{last:?}"
        );
        // A class without a number fails, whatever the host did.
        assert!(matches!(
            judge(f64::NAN, Some(0.0), 1.0, None, 1, 3),
            Judgement::Fail(_)
        ));
        assert!(matches!(
            judge(0.0, Some(f64::NAN), 1.0, busy(), 3, 3),
            Judgement::Fail(_)
        ));
        // TCP: no simulator, the kernel alone decides.
        assert!(
            matches!(judge(0.9, None, 1.0, None, 1, 3), Judgement::Pass(v) if !v.contains("simulator"))
        );
        assert!(matches!(
            judge(1.3, None, 1.0, None, 1, 3),
            Judgement::Fail(_)
        ));
        assert!(matches!(
            judge(1.3, None, 1.0, busy(), 1, 3),
            Judgement::Again(_)
        ));
    }

    #[test]
    fn worker_account_counts_late_wake_ups_from_the_buckets() {
        let mut buckets = vec![0u64; 40];
        buckets[14] = 1000; // 8-16 µs
        buckets[21] = 3; // 1.05-2.1 ms
        buckets[25] = 1; // 16.8-33.6 ms
        let report = serde_json::json!({"type": "report", "workers": [{
            "tx_ring_full": 2,
            "wake_late": {"count": 1004, "p99_ns_at_most": 16383, "max_ns_at_most": 33554431, "buckets": buckets},
        }]});
        let a = WorkerAccount::of(&report);
        assert_eq!((a.wakeups, a.late_over_1ms, a.tx_ring_full), (1004, 4, 2));
        assert!((a.wake_late_max_us - 33554.431).abs() < 1e-6);
        assert!(host::disturbed(0.5, &a, 0).is_some(), "4 in 1004 is late");
        let quiet = WorkerAccount {
            wakeups: 50_000,
            late_over_1ms: 9,
            ..a
        };
        assert_eq!(host::disturbed(0.5, &quiet, 0), None);
        assert!(host::disturbed(0.5, &quiet, 3)
            .unwrap()
            .contains("receiver"));
        assert!(host::disturbed(1.5, &quiet, 0)
            .unwrap()
            .contains("stole 1.5 %"));
    }

    #[test]
    fn steal_explains_a_shortfall_never_an_excess() {
        let row = |kernel: f64, weir: f64, sim: f64| ClassRow {
            class: "1:13".into(),
            prio: 0,
            quantum: None,
            rate_mbit: 14.57,
            ceil_mbit: 27.16,
            offered_mbit: 31.2,
            kernel_mbit: kernel,
            weir_mbit: weir,
            sim_mbit: sim,
            kernel_runs: vec![],
            weir_runs: vec![],
            kernel_retransmits: vec![],
            weir_retransmits: vec![],
            kernel_rtt_ms: vec![],
            weir_rtt_ms: vec![],
            weir_kernel_pts: (weir - kernel) / 80.0 * 100.0,
            sim_weir_pts: (sim - weir) / 80.0 * 100.0,
        };
        let mut t = TreeReport {
            name: "seed 11".into(),
            proto: Proto::Udp,
            tolerance_pts: 1.0,
            classes: 4,
            leaves: 2,
            depth: 2,
            oversubscribed: 0,
            root_mbit: 80.0,
            active: 1,
            // CI, 2026-12-07: 1:13 (ceil 27.16) 22.94 through weir, 26.52
            // through the kernel, under 17.4 % steal.
            rows: vec![row(26.52, 22.94, 27.16)],
            attempts: vec![],
            pass: false,
            verdict: String::new(),
        };
        let v = explained_by_steal(&t, 1.0, 17.4).expect("explained");
        assert!(v.contains("steal 17.4 %"), "{v}");
        // The same shortfall under 5 % steal is not explained; nor is any
        // steal past the cap, nor one the quiet rule already judged.
        assert_eq!(explained_by_steal(&t, 1.0, 5.0), None);
        assert_eq!(explained_by_steal(&t, 1.0, 30.0), None);
        assert_eq!(explained_by_steal(&t, 1.0, 0.5), None);
        // Sending more than the ideal is never the hypervisor's doing.
        t.rows = vec![row(27.16, 28.2, 27.16)];
        assert_eq!(explained_by_steal(&t, 1.0, 17.4), None);
        t.rows = vec![row(f64::NAN, 27.0, 27.16)];
        assert_eq!(explained_by_steal(&t, 1.0, 17.4), None);
    }

    #[test]
    fn median_of_even_and_odd_runs() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
