//! Shaping accuracy: the same streams offered to several shaped paths (weir
//! and the kernel's HTB with the same tree), one path after the other,
//! and each stream's delivered rate set against what HTB promises it.
//!
//! Each path runs `repeat` times, the paths taking turns (weir, kernel,
//! weir, kernel, …), and each stream's median run is reported with the
//! spread of all runs: a shared VM that takes a worker's CPU away for a
//! moment costs that run tokens, and the median keeps one such moment from
//! deciding the result, for every path alike.
//!
//! The delivered rate is measured the way HTB counts, frame bytes without
//! the FCS, on the receiver's own clock, over the steady part of each
//! stream: from 1 s after its first arrival (a class starts with its burst
//! at line rate, which is HTB working, not its long-run rate) to the last
//! whole 100 ms slot, which includes the queue that drains after the
//! sender stops at the shaped rate. A trial too short for that falls back
//! to first-to-last arrival.

use std::fmt::Write;
use std::time::Duration;

use serde::Serialize;
use weir_xdp::prog::XdpMode;

use super::frame::FCS;
use super::spec::PathSpec;
use super::trial::{self, StreamSpec};

#[derive(Clone, Debug)]
pub struct ShapingSpec {
    pub scenario: String,
    pub paths: Vec<PathSpec>,
    pub streams: Vec<StreamSpec>,
    /// What HTB promises each stream, Mbit/s of frame bytes (FCS excluded).
    pub expect_mbit: Vec<f64>,
    pub trial: Duration,
    pub repeat: u32,
    pub drain: Duration,
    pub batch: u32,
    pub rx_mode: XdpMode,
}

#[derive(Clone, Debug, Serialize)]
pub struct StreamAccuracy {
    pub dscp: u8,
    pub size: String,
    pub offered_mbit: f64,
    pub expected_mbit: f64,
    /// The median run's delivered rate.
    pub achieved_mbit: f64,
    /// Every run's, in run order.
    pub runs_mbit: Vec<f64>,
    /// (achieved − expected) / expected, in percent.
    pub error_pct: f64,
    pub loss: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct PathAccuracy {
    pub name: String,
    pub streams: Vec<StreamAccuracy>,
    /// Largest |error| over the streams, percent.
    pub max_abs_error_pct: f64,
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ShapingReport {
    pub scenario: String,
    pub trial_s: f64,
    pub repeat: u32,
    pub paths: Vec<PathAccuracy>,
}

pub fn run(s: &ShapingSpec) -> ShapingReport {
    let repeat = s.repeat.max(1);
    // runs[path][run] = per-stream (achieved Mbit/s, offered Mbit/s, loss)
    let mut runs: Vec<Vec<Vec<(f64, f64, f64)>>> = vec![Vec::new(); s.paths.len()];
    let mut errors: Vec<Option<String>> = vec![None; s.paths.len()];
    for _ in 0..repeat {
        for (i, p) in s.paths.iter().enumerate() {
            if errors[i].is_some() {
                continue;
            }
            let spec = p.trial(s.streams.clone(), s.trial, s.drain, s.batch, s.rx_mode);
            match trial::run(&spec) {
                Ok(t) => {
                    let row: Vec<(f64, f64, f64)> = t
                        .streams
                        .iter()
                        .zip(&s.streams)
                        .map(|(r, st)| {
                            let bits = (st.mix.mean() - FCS as f64) * 8.0;
                            let pps = r.steady_pps.unwrap_or(r.rx_span_pps);
                            (pps * bits / 1e6, r.sent_pps * bits / 1e6, r.loss)
                        })
                        .collect();
                    eprintln!(
                        "weir-bench: shaping {} on {}: {}",
                        s.scenario,
                        p.name,
                        row.iter()
                            .zip(&s.streams)
                            .zip(&s.expect_mbit)
                            .map(|((x, st), e)| format!(
                                "dscp {} {:.2}/{:.2} Mbit",
                                st.dscp, x.0, e
                            ))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    runs[i].push(row);
                }
                Err(e) => errors[i] = Some(e.to_string()),
            }
        }
    }
    let paths = s
        .paths
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let streams: Vec<StreamAccuracy> = s
                .streams
                .iter()
                .enumerate()
                .map(|(k, st)| {
                    let all: Vec<(f64, f64, f64)> = runs[i].iter().map(|r| r[k]).collect();
                    let mut sorted = all.clone();
                    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
                    let mid = sorted.get(sorted.len() / 2).copied().unwrap_or_default();
                    let expected = s.expect_mbit[k];
                    StreamAccuracy {
                        dscp: st.dscp,
                        size: st.mix.to_string(),
                        offered_mbit: mid.1,
                        expected_mbit: expected,
                        achieved_mbit: mid.0,
                        runs_mbit: all.iter().map(|x| x.0).collect(),
                        error_pct: if expected > 0.0 {
                            (mid.0 - expected) / expected * 100.0
                        } else {
                            0.0
                        },
                        loss: mid.2,
                    }
                })
                .collect();
            let max = streams
                .iter()
                .map(|x| x.error_pct.abs())
                .fold(0.0, f64::max);
            PathAccuracy {
                name: p.name.clone(),
                streams: if runs[i].is_empty() {
                    Vec::new()
                } else {
                    streams
                },
                max_abs_error_pct: if runs[i].is_empty() { f64::NAN } else { max },
                error: errors[i].clone(),
            }
        })
        .collect();
    ShapingReport {
        scenario: s.scenario.clone(),
        trial_s: s.trial.as_secs_f64(),
        repeat,
        paths,
    }
}

/// One markdown table: a row per (path, stream).
pub fn markdown(r: &ShapingReport) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Scenario **{}** ({:.0} s per run, {} runs per path taking turns; the median run, and the spread of all):\n",
        r.scenario, r.trial_s, r.repeat
    );
    let _ = writeln!(
        md,
        "| path | DSCP | frame | offered Mbit/s | HTB promise Mbit/s | achieved Mbit/s (median) | error | runs: min – max | loss |"
    );
    let _ = writeln!(md, "|---|--:|--:|--:|--:|--:|--:|--:|--:|");
    for p in &r.paths {
        if let Some(e) = &p.error {
            let _ = writeln!(md, "| {} | – | – | – | – | – | {e} | – | – |", p.name);
            continue;
        }
        for s in &p.streams {
            let lo = s.runs_mbit.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = s
                .runs_mbit
                .iter()
                .copied()
                .fold(f64::NEG_INFINITY, f64::max);
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {:+.2} % | {:.2} – {:.2} | {:.2} % |",
                p.name,
                s.dscp,
                s.size,
                s.offered_mbit,
                s.expected_mbit,
                s.achieved_mbit,
                s.error_pct,
                lo,
                hi,
                s.loss * 100.0
            );
        }
    }
    let _ = writeln!(md);
    md
}
