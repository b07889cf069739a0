//! RFC 2544-style throughput and latency of several paths, measured side by
//! side: for each frame size, every step of the run is done on each path in
//! turn (a b c d a b c d …), so minutes of machine noise (another tenant, a
//! compile on the other core) land on all of them alike.
//!
//! Per frame size and path:
//! 1. a flat-out trial: the most the generator offers on that path, the
//!    upper bound of the searches;
//! 2. NDR (no loss) and PDR (loss ≤ 0.5 %) by binary search
//!    ([`Search`]);
//! 3. latency at 10 %, 50 % and 90 % of the PDR rate;
//! 4. CPU cost: every path at one common rate (90 % of the lowest PDR, so
//!    every path carries it), machine busy time per received frame, minus
//!    the same on the baseline path (generator straight into the receiver)
//!    at the same rate: what forwarding a frame costs the machine, wherever
//!    that work runs (a weir worker, a softirq, ksoftirqd).

use std::time::Duration;

use serde::Serialize;

use super::rx::LatencyUs;
use super::search::{Outcome, Passed, Search};
use super::spec::PathSpec;
use super::testframe::SizeMix;
use super::trial::{self, StreamSpec, TrialError, TrialResult, TrialSpec};
use weir_xdp::prog::XdpMode;

/// The PDR's loss allowance: 0.5 %.
pub const PDR_LOSS: f64 = 0.005;
/// Where latency is measured, as fractions of the PDR rate.
pub const LATENCY_POINTS: [f64; 3] = [0.1, 0.5, 0.9];

#[derive(Clone, Debug)]
pub struct CompareSpec {
    pub paths: Vec<PathSpec>,
    /// The path with no device under test (generator → receiver over one
    /// veth pair); its CPU cost is subtracted. Not searched.
    pub baseline: Option<PathSpec>,
    pub sizes: Vec<SizeMix>,
    pub trial: Duration,
    pub drain: Duration,
    /// Relative resolution of the searches.
    pub resolution: f64,
    pub max_steps: u32,
    /// A search trial that loses more than its search allows is run again
    /// this many times, and the best of the runs counts: one descheduled
    /// moment of a shared VM should not end a search. Every path gets the
    /// same.
    pub retries: u32,
    pub flows: u32,
    pub dscp: u8,
    pub batch: u32,
    pub rx_mode: XdpMode,
}

#[derive(Clone, Debug, Serialize)]
pub struct LatencyPoint {
    pub fraction: f64,
    pub offered_pps: f64,
    pub received_pps: f64,
    pub loss: f64,
    pub latency_us: LatencyUs,
}

#[derive(Clone, Debug, Serialize)]
pub struct CpuPoint {
    pub offered_pps: f64,
    pub received_pps: f64,
    pub loss: f64,
    /// Machine busy time (all cores) per received frame.
    pub machine_ns_per_frame: f64,
    /// The same minus the baseline's at the same rate: the cost of
    /// forwarding one frame through the path.
    pub forwarding_ns_per_frame: Option<f64>,
    /// Steal time during the trial (s, all CPUs): the VM's noise.
    pub steal_s: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct PathReport {
    pub name: String,
    /// What the generator offered flat out on this path (pps), and what
    /// came out.
    pub flat_offered_pps: f64,
    pub flat_received_pps: f64,
    pub ndr: Option<Passed>,
    pub pdr: Option<Passed>,
    pub trials: u32,
    /// Search trials run again after a loss (see `CompareSpec::retries`).
    pub retried: u32,
    pub latency: Vec<LatencyPoint>,
    pub cpu: Option<CpuPoint>,
    /// Errors of trials on this path (a path that cannot run is reported,
    /// not fatal to the others).
    pub errors: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SizeReport {
    pub size: String,
    /// Mean frame size, FCS included (for L1/L2 rates).
    pub mean_bytes: f64,
    pub paths: Vec<PathReport>,
    pub baseline: Option<CpuPoint>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CompareReport {
    pub trial_s: f64,
    pub resolution: f64,
    pub max_steps: u32,
    pub retries: u32,
    pub flows: u32,
    pub sizes: Vec<SizeReport>,
}

/// Progress lines go to stderr: a run takes minutes.
fn say(msg: &str) {
    eprintln!("weir-bench: {msg}");
}

fn trial_spec(c: &CompareSpec, path: &PathSpec, mix: &SizeMix, rate: Option<f64>) -> TrialSpec {
    let stream = StreamSpec {
        dscp: c.dscp,
        mix: mix.clone(),
        rate_pps: rate,
        flows: c.flows,
    };
    path.trial(vec![stream], c.trial, c.drain, c.batch, c.rx_mode)
}

fn outcome(r: &TrialResult, offered: f64) -> Outcome {
    Outcome {
        offered_pps: offered,
        sent_pps: r.sent_pps(),
        received_pps: r.received_pps(),
        loss: r.loss(),
    }
}

fn run_one(
    c: &CompareSpec,
    path: &PathSpec,
    mix: &SizeMix,
    rate: Option<f64>,
    what: &str,
) -> Result<TrialResult, TrialError> {
    let r = trial::run(&trial_spec(c, path, mix, rate));
    match &r {
        Ok(t) => say(&format!(
            "{size} {name} {what}: offered {o:.0} pps, received {rx:.0} pps, loss {l:.4}%{warn}",
            size = mix,
            name = path.name,
            o = t.sent_pps(),
            rx = t.received_pps(),
            l = t.loss() * 100.0,
            warn = if t.rx_socket.rx_ring_full + t.rx_socket.rx_dropped > 0 {
                " (receiver dropped some: its socket overflowed)"
            } else {
                ""
            }
        )),
        Err(e) => say(&format!("{mix} {} {what}: {e}", path.name)),
    }
    r
}

/// Run the whole comparison.
pub fn run(c: &CompareSpec) -> CompareReport {
    let sizes = c.sizes.iter().map(|mix| run_size(c, mix)).collect();
    CompareReport {
        trial_s: c.trial.as_secs_f64(),
        resolution: c.resolution,
        max_steps: c.max_steps,
        retries: c.retries,
        flows: c.flows,
        sizes,
    }
}

fn run_size(c: &CompareSpec, mix: &SizeMix) -> SizeReport {
    let mut reps: Vec<PathReport> = c
        .paths
        .iter()
        .map(|p| PathReport {
            name: p.name.clone(),
            flat_offered_pps: 0.0,
            flat_received_pps: 0.0,
            ndr: None,
            pdr: None,
            trials: 0,
            retried: 0,
            latency: Vec::new(),
            cpu: None,
            errors: Vec::new(),
        })
        .collect();

    // 1. Flat out, each path in turn.
    for (p, rep) in c.paths.iter().zip(reps.iter_mut()) {
        rep.trials += 1;
        match run_one(c, p, mix, None, "flat out") {
            Ok(t) => {
                rep.flat_offered_pps = t.sent_pps();
                rep.flat_received_pps = t.received_pps();
            }
            Err(e) => rep.errors.push(e.to_string()),
        }
    }

    // 2. NDR and PDR searches, one step of each path per round. The first
    // trial of both is the flat-out rate, already run: seed them with it
    // (a flat-out trial that lost nothing is the answer).
    let mut searches: Vec<[Search; 2]> = reps
        .iter()
        .map(|r| {
            let upper = r.flat_offered_pps;
            [
                Search::new(upper, 0.0, c.resolution, c.max_steps),
                Search::new(upper, PDR_LOSS, c.resolution, c.max_steps),
            ]
        })
        .collect();
    for (s, r) in searches.iter_mut().zip(&reps) {
        if r.flat_offered_pps > 0.0 {
            let loss = 1.0 - (r.flat_received_pps / r.flat_offered_pps).min(1.0);
            for x in s.iter_mut() {
                x.record(Outcome {
                    offered_pps: r.flat_offered_pps,
                    sent_pps: r.flat_offered_pps,
                    received_pps: r.flat_received_pps,
                    loss,
                });
            }
        }
    }
    loop {
        let mut any = false;
        for (i, p) in c.paths.iter().enumerate() {
            for k in 0..2 {
                let Some(rate) = searches[i][k].next_rate() else {
                    continue;
                };
                any = true;
                reps[i].trials += 1;
                let what = if k == 0 { "NDR step" } else { "PDR step" };
                let allowed = if k == 0 { 0.0 } else { PDR_LOSS };
                let mut result = run_one(c, p, mix, Some(rate), what);
                for _ in 0..c.retries {
                    let Ok(first) = &result else { break };
                    if first.loss() <= allowed {
                        break;
                    }
                    reps[i].trials += 1;
                    reps[i].retried += 1;
                    if let Ok(again) = run_one(c, p, mix, Some(rate), "retry") {
                        if again.loss() < first.loss() {
                            result = Ok(again);
                        }
                    }
                }
                match result {
                    Ok(t) => {
                        let o = outcome(&t, rate);
                        searches[i][k].record(o);
                        // The other search may want the same rate.
                        let other = 1 - k;
                        if searches[i][other]
                            .next_rate()
                            .is_some_and(|r| (r - rate).abs() <= 1e-6 * rate)
                        {
                            searches[i][other].record(o);
                        }
                    }
                    Err(e) => {
                        reps[i].errors.push(e.to_string());
                        // A failing path: end its searches.
                        searches[i] =
                            [Search::new(0.0, 0.0, 1.0, 0), Search::new(0.0, 0.0, 1.0, 0)];
                    }
                }
            }
        }
        if !any {
            break;
        }
    }
    for (rep, s) in reps.iter_mut().zip(&searches) {
        rep.ndr = s[0].result();
        rep.pdr = s[1].result();
    }

    // 3. Latency at fractions of each path's PDR.
    for &f in &LATENCY_POINTS {
        for (p, rep) in c.paths.iter().zip(reps.iter_mut()) {
            let Some(pdr) = rep.pdr else { continue };
            let rate = pdr.offered_pps * f;
            rep.trials += 1;
            match run_one(
                c,
                p,
                mix,
                Some(rate),
                &format!("latency at {:.0}% PDR", f * 100.0),
            ) {
                Ok(t) => {
                    let s = &t.streams[0];
                    rep.latency.push(LatencyPoint {
                        fraction: f,
                        offered_pps: rate,
                        received_pps: t.received_pps(),
                        loss: t.loss(),
                        latency_us: s.latency_us,
                    });
                }
                Err(e) => rep.errors.push(e.to_string()),
            }
        }
    }

    // 4. CPU per frame at one common rate.
    let common = reps
        .iter()
        .filter_map(|r| r.pdr.map(|p| p.offered_pps))
        .fold(f64::INFINITY, f64::min)
        * 0.9;
    let mut baseline = None;
    if common.is_finite() && common > 0.0 {
        let cpu = |t: &TrialResult, rate: f64| CpuPoint {
            offered_pps: rate,
            received_pps: t.received_pps(),
            loss: t.loss(),
            machine_ns_per_frame: t.machine_busy_s * 1e9 / (t.totals().1.max(1) as f64),
            forwarding_ns_per_frame: None,
            steal_s: t.machine_steal_s,
        };
        if let Some(b) = &c.baseline {
            if let Ok(t) = run_one(c, b, mix, Some(common), "CPU (baseline)") {
                baseline = Some(cpu(&t, common));
            }
        }
        for (p, rep) in c.paths.iter().zip(reps.iter_mut()) {
            rep.trials += 1;
            match run_one(c, p, mix, Some(common), "CPU") {
                Ok(t) => {
                    let mut point = cpu(&t, common);
                    point.forwarding_ns_per_frame = baseline
                        .as_ref()
                        .map(|b: &CpuPoint| point.machine_ns_per_frame - b.machine_ns_per_frame);
                    rep.cpu = Some(point);
                }
                Err(e) => rep.errors.push(e.to_string()),
            }
        }
    }
    SizeReport {
        size: mix.to_string(),
        mean_bytes: mix.mean(),
        paths: reps,
        baseline,
    }
}

/// L2 and L1 Gbit/s of `pps` frames of mean size `mean_bytes` (FCS
/// included).
pub fn gbps(pps: f64, mean_bytes: f64) -> (f64, f64) {
    let l2 = pps * mean_bytes * 8.0 / 1e9;
    let l1 = pps * (mean_bytes + 20.0) * 8.0 / 1e9;
    (l2, l1)
}

/// The report as markdown: per frame size a throughput table (NDR and PDR,
/// offered vs received, L1/L2 rates, ratio against `reference`), a CPU
/// table and a latency table.
pub fn markdown(r: &CompareReport, reference: Option<&str>) -> String {
    use std::fmt::Write;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Trials of {:.1} s; searches stop within {:.1} % or after {} steps; a search trial that loses \
         too much is run {} more time(s) and the better run counts; {} flow(s) per stream; \
         PDR allows {:.1} % loss.\n",
        r.trial_s,
        r.resolution * 100.0,
        r.max_steps,
        r.retries,
        r.flows,
        PDR_LOSS * 100.0
    );
    let _ = writeln!(
        md,
        "*Sent* is what the sender achieved; † marks a trial where it stayed more than 1 % below the rate asked for: the path pushed back on the sender (on the kernel paths the forwarding runs inside the sender's own send call, so what it can send *is* the path's capacity).\n"
    );
    let offered = |n: &Passed| {
        let mark = if n.sent_pps < 0.99 * n.offered_pps {
            " †"
        } else {
            ""
        };
        format!("{:.0}{mark}", n.sent_pps)
    };
    for s in &r.sizes {
        let refp = reference.and_then(|n| s.paths.iter().find(|p| p.name == n));
        let ratio = |x: Option<f64>, pick: fn(&PathReport) -> Option<f64>| -> String {
            match (x, refp.and_then(pick)) {
                (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
                _ => "–".into(),
            }
        };
        let _ = writeln!(
            md,
            "#### {} -byte frames (mean {:.1} B)\n",
            s.size, s.mean_bytes
        );
        let _ = writeln!(
            md,
            "| path | NDR sent pps | NDR received pps | NDR L2 Gbit/s | NDR L1 Gbit/s | NDR vs {r} | PDR sent pps | PDR received pps | PDR loss | PDR vs {r} | flat-out sent → received pps | trials (retries) |",
            r = reference.unwrap_or("ref")
        );
        let _ = writeln!(md, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
        for p in &s.paths {
            let (l2, l1) = p
                .ndr
                .map_or((0.0, 0.0), |n| gbps(n.received_pps, s.mean_bytes));
            let _ =
                writeln!(
                md,
                "| {} | {} | {} | {:.3} | {:.3} | {} | {} | {} | {} | {} | {:.0} → {:.0} | {} ({}) |",
                p.name,
                p.ndr.map_or("–".into(), |n| offered(&n)),
                p.ndr.map_or("–".into(), |n| format!("{:.0}", n.received_pps)),
                l2,
                l1,
                ratio(p.ndr.map(|n| n.received_pps), |q| q.ndr.map(|n| n.received_pps)),
                p.pdr.map_or("–".into(), |n| offered(&n)),
                p.pdr.map_or("–".into(), |n| format!("{:.0}", n.received_pps)),
                p.pdr.map_or("–".into(), |n| format!("{:.3} %", n.loss * 100.0)),
                ratio(p.pdr.map(|n| n.received_pps), |q| q.pdr.map(|n| n.received_pps)),
                p.flat_offered_pps,
                p.flat_received_pps,
                p.trials,
                p.retried,
            );
        }
        let _ = writeln!(md);
        let _ = writeln!(
            md,
            "CPU per forwarded frame at one common rate (90 % of the lowest PDR): machine busy time (all cores, /proc/stat) per received frame; *forwarding* subtracts the baseline path (generator straight into the receiver) at the same rate{}.\n",
            s.baseline.as_ref().map_or(String::new(), |b| format!(
                ": {:.0} ns per frame at {:.0} pps",
                b.machine_ns_per_frame, b.offered_pps
            ))
        );
        let _ = writeln!(
            md,
            "| path | rate pps | received pps | machine ns/frame | forwarding ns/frame | forwarding vs {} | steal during the trial |",
            reference.unwrap_or("ref")
        );
        let _ = writeln!(md, "|---|--:|--:|--:|--:|--:|--:|");
        for p in &s.paths {
            let Some(c) = &p.cpu else {
                let _ = writeln!(md, "| {} | – | – | – | – | – | – |", p.name);
                continue;
            };
            let _ = writeln!(
                md,
                "| {} | {:.0} | {:.0} | {:.0} | {} | {} | {:.2} s |",
                p.name,
                c.offered_pps,
                c.received_pps,
                c.machine_ns_per_frame,
                c.forwarding_ns_per_frame
                    .map_or("–".into(), |f| format!("{f:.0}")),
                ratio(c.forwarding_ns_per_frame, |q| q
                    .cpu
                    .as_ref()
                    .and_then(|c| c.forwarding_ns_per_frame)),
                c.steal_s,
            );
        }
        let _ = writeln!(md);
        let _ = writeln!(
            md,
            "One-way latency (generator → receiver, µs) at 10 / 50 / 90 % of each path's PDR:\n"
        );
        let _ = writeln!(
            md,
            "| path | load | offered pps | loss | min | p50 | p99 | p99.9 | max |"
        );
        let _ = writeln!(md, "|---|--:|--:|--:|--:|--:|--:|--:|--:|");
        for p in &s.paths {
            for l in &p.latency {
                let u = l.latency_us;
                let _ = writeln!(
                    md,
                    "| {} | {:.0} % | {:.0} | {:.3} % | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
                    p.name,
                    l.fraction * 100.0,
                    l.offered_pps,
                    l.loss * 100.0,
                    u.min,
                    u.p50,
                    u.p99,
                    u.p999,
                    u.max
                );
            }
        }
        for p in s.paths.iter().filter(|p| !p.errors.is_empty()) {
            let _ = writeln!(md, "\nErrors on {}: {}", p.name, p.errors.join("; "));
        }
        let _ = writeln!(md);
    }
    md
}
