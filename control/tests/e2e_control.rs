//! End to end: changing a running weir (issue 4's "what must be shown").
//!
//! - `weir class change` halves a saturated class: the new rate holds at
//!   host B within ±3 % from the first full second after the change, and
//!   nothing queued at the change is dropped because of it (no `flushed`
//!   drop while running, frames balanced throughout).
//! - `weir reload` with an invalid file under load: refused with
//!   FILE:LINE:COL, and the running configuration keeps shaping at the
//!   same rate.
//!
//! One EF flow from A to B, offered 90 Mbit/s: alone, class 1:10 (rate 30,
//! ceil 60) borrows up to its ceil, 60 Mbit/s.

mod lab;

use std::process::Output;
use std::thread;
use std::time::{Duration, Instant};

use lab::{Host, Lab};

const SECS: u32 = 10;
/// When, after the client starts, the change is made.
const CHANGE_AT: f64 = 4.5;

/// The lab config with 1:10's queue deep enough for a steady UDP flow (see
/// e2e_shaping.rs for why 10 packets is too shallow to measure with).
fn config(lab: &Lab) -> std::path::PathBuf {
    let text =
        std::fs::read_to_string(lab::repo_root().join("config/lab.toml")).expect("config/lab.toml");
    lab.write("control.toml", &text)
}

fn weir_cli(lab: &Lab, args: &[&str]) -> Output {
    let sock = lab.path("weir.sock");
    let mut all = vec![lab::weir_bin()];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--socket", sock.to_str().expect("UTF-8 path")]);
    lab::run_limited(&all, Duration::from_secs(20))
}

/// Runs one EF flow A→B for SECS seconds, calling `at_change` CHANGE_AT
/// seconds after the client started; returns the frame rate at B before
/// and after (whole one-second intervals, skipping the first second of
/// each part).
fn ef_flow_with_change(lab: &mut Lab, at_change: impl FnOnce(&mut Lab)) -> (f64, f64) {
    let limit = Duration::from_secs(u64::from(SECS) + 20);
    let server = lab.iperf3_server(Host::B, 5301, limit);
    let t0 = Instant::now();
    let t = SECS.to_string();
    let client = lab.iperf3_client(
        Host::A,
        5301,
        &["-u", "-b", "90M", "-l", "1472", "-t", &t, "--dscp", "EF"],
        limit,
    );
    let wait = Duration::from_secs_f64(CHANGE_AT).saturating_sub(t0.elapsed());
    thread::sleep(wait);
    let changed = t0.elapsed().as_secs_f64();
    at_change(lab);
    let out = client.wait_with_output().expect("iperf3 client");
    assert!(
        out.status.success(),
        "iperf3 client failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let json = server.finish();
    let before = lab::window_frame_mbit(&json, 0.0, (1.0, changed)).expect("before the change");
    let after = lab::window_frame_mbit(&json, 0.0, (changed + 1.0, f64::from(SECS)))
        .expect("after the change");
    (before, after)
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "end-to-end: runs in release (scripts/test.sh)"
)]
fn class_change_halves_a_saturated_class_without_dropping_its_queue() {
    lab::require_root();
    let _serial = lab::serialize();
    let mut lab = Lab::up("cc");
    let cfg = config(&lab);
    lab.start_weir(&cfg);
    let mut answer = None;
    let (before, after) = ef_flow_with_change(&mut lab, |lab| {
        answer = Some(weir_cli(
            lab,
            &[
                "class", "change", "1:10", "--tree", "up", "rate", "15mbit", "ceil", "30mbit",
            ],
        ));
    });
    let answer = answer.expect("changed");
    assert!(
        answer.status.success(),
        "weir class change failed: {}",
        String::from_utf8_lossy(&answer.stderr)
    );
    let said = String::from_utf8_lossy(&answer.stdout);
    assert!(said.contains("ceil 60Mbit → 30Mbit"), "{said}");
    let stats = lab.weir().stats();
    let report = lab.stop_weir();
    eprintln!("before {before:.2} Mbit/s, after {after:.2} Mbit/s");
    lab::assert_near("1:10 alone, before (its ceil)", before, 60.0, 3.0);
    lab::assert_near("1:10 alone, after ceil 30mbit", after, 30.0, 3.0);
    // Nothing was flushed while weir ran: the change dropped no queued
    // packet (queue-limit drops of the overload go on as before).
    let frames = &lab::tree_of(&stats, "up")["frames"];
    assert_eq!(
        lab::num(&frames["dropped"]["flushed"], "flushed"),
        0,
        "{frames}"
    );
    assert_eq!(frames["balanced"], true, "{frames}");
    let class = lab::class(&stats, "up", "1:10");
    assert_eq!(lab::num(&class["ceil"], "ceil"), 30_000_000 / 8, "{class}");
    assert_eq!(lab::tree_of(&report, "up")["frames"]["balanced"], true);
    assert_eq!(report["accounting"]["umem_accounted"], true);
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "end-to-end: runs in release (scripts/test.sh)"
)]
fn invalid_reload_is_refused_and_the_old_config_keeps_shaping() {
    lab::require_root();
    let _serial = lab::serialize();
    let mut lab = Lab::up("rl");
    let cfg = config(&lab);
    lab.start_weir(&cfg);
    let good = std::fs::read_to_string(&cfg).expect("config");
    let mut answer = None;
    let (before, after) = ef_flow_with_change(&mut lab, |lab| {
        // A unit typo in 1:10's rate, on a line we can point at.
        let bad = good.replacen("rate = \"30mbit\"", "rate = \"30mbt\"", 1);
        std::fs::write(&cfg, bad).expect("write the bad file");
        answer = Some(weir_cli(lab, &["reload"]));
    });
    let answer = answer.expect("reloaded");
    let err = String::from_utf8_lossy(&answer.stderr);
    assert_eq!(answer.status.code(), Some(2), "expected a refusal: {err}");
    let line = good
        .lines()
        .position(|l| l.contains("rate = \"30mbit\""))
        .expect("1:10's rate line")
        + 1;
    let located = format!("{}:{line}:", cfg.display());
    assert!(err.contains(&located), "expected {located} in: {err}");
    let report = lab.stop_weir();
    eprintln!("before {before:.2} Mbit/s, after {after:.2} Mbit/s");
    lab::assert_near("1:10 alone, before the reload", before, 60.0, 3.0);
    lab::assert_near("1:10 alone, after a refused reload", after, 60.0, 3.0);
    assert_eq!(lab::tree_of(&report, "up")["frames"]["balanced"], true);
}
