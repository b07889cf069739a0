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

use super::spec::PathSpec;
use super::testframe::FCS;
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

impl StreamAccuracy {
    /// The lowest and highest run, Mbit/s.
    pub fn range_mbit(&self) -> (f64, f64) {
        let lo = self.runs_mbit.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = self
            .runs_mbit
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        (lo, hi)
    }
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
            let (lo, hi) = s.range_mbit();
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
    if let [first, second] = r.paths.as_slice() {
        if let Some(v) = verdict(first, second) {
            let _ = writeln!(md, "{v}\n");
        }
    }
    md
}

/// Sets the first path's per-stream error against the second's (weir
/// against the kernel): in how many streams it is no larger, and where it
/// is larger, by how much next to the two paths' run-to-run spread. None
/// when either path failed or their streams differ.
pub fn verdict(a: &PathAccuracy, b: &PathAccuracy) -> Option<String> {
    if a.error.is_some()
        || b.error.is_some()
        || a.streams.len() != b.streams.len()
        || a.streams
            .iter()
            .zip(&b.streams)
            .any(|(x, y)| x.dscp != y.dscp)
    {
        return None;
    }
    let spread = |s: &StreamAccuracy| {
        let (lo, hi) = s.range_mbit();
        (hi - lo) / s.expected_mbit * 100.0
    };
    let mut ok = 0;
    let mut worse = Vec::new();
    for (x, y) in a.streams.iter().zip(&b.streams) {
        // Errors are compared as the table prints them (0.01 points): a
        // difference below that is a frame or two in a multi-second run.
        let round = |e: f64| (e.abs() * 100.0).round() / 100.0;
        let (ex, ey) = (round(x.error_pct), round(y.error_pct));
        if ex <= ey {
            ok += 1;
        } else {
            worse.push(format!(
                "DSCP {} by {:.2} points ({} runs spread {:.2} points, {} {:.2})",
                x.dscp,
                ex - ey,
                a.name,
                spread(x),
                b.name,
                spread(y)
            ));
        }
    }
    let n = a.streams.len();
    let within = a
        .streams
        .iter()
        .chain(&b.streams)
        .all(|s| s.error_pct.abs() <= 1.0);
    let mut v = format!(
        "{}'s |error| is no larger than {}'s in {ok} of {n} stream(s); every stream's median of both is {} ±1 %.",
        a.name,
        b.name,
        if within { "within" } else { "NOT within" }
    );
    if !worse.is_empty() {
        let _ = write!(v, " Larger: {}.", worse.join("; "));
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(dscp: u8, runs: &[f64], expected: f64) -> StreamAccuracy {
        let mut sorted = runs.to_vec();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        StreamAccuracy {
            dscp,
            size: "1518".into(),
            offered_mbit: expected * 1.2,
            expected_mbit: expected,
            achieved_mbit: median,
            runs_mbit: runs.to_vec(),
            error_pct: (median - expected) / expected * 100.0,
            loss: 0.1,
        }
    }

    fn path(name: &str, streams: Vec<StreamAccuracy>) -> PathAccuracy {
        PathAccuracy {
            name: name.into(),
            streams,
            max_abs_error_pct: 0.0,
            error: None,
        }
    }

    #[test]
    fn verdict_counts_streams_and_names_the_larger_ones() {
        let weir = path(
            "weir",
            vec![
                stream(34, &[79.7, 79.96, 80.0], 80.0),
                stream(0, &[20.0, 20.0, 20.0], 20.0),
            ],
        );
        let kernel = path(
            "kernel",
            vec![
                stream(34, &[79.9, 79.99, 80.0], 80.0),
                stream(0, &[20.0, 20.0, 19.99], 20.0),
            ],
        );
        let v = verdict(&weir, &kernel).expect("comparable");
        assert!(
            v.starts_with("weir's |error| is no larger than kernel's in 1 of 2"),
            "{v}"
        );
        assert!(v.contains("within ±1 %"), "{v}");
        assert!(v.contains("DSCP 34 by 0.04 points"), "{v}");
        assert!(v.contains("weir runs spread 0.37 points"), "{v}");
        // Equal to the report's precision counts as no larger.
        let same = verdict(&kernel, &kernel).expect("comparable");
        assert!(same.contains("in 2 of 2"), "{same}");
        let failed = PathAccuracy {
            error: Some("no frames".into()),
            ..path("weir", Vec::new())
        };
        assert!(verdict(&failed, &kernel).is_none());
    }
}
