//! End to end: SLA rules and allocation policies acting on a running weir
//! (issue 4's "what must be shown").
//!
//! - An SLA rule on class 1:10's drops opens under overload, its throttle
//!   halves the class at host B, the violation and both adjustments are in
//!   the history database, and when the overload stops the rule resolves
//!   and the class is back at its configured rate and ceil.
//! - A policy's business-hours window (local time injected with the hidden
//!   `--clock-file`) raises a busy class's ceil, clamped to its declared
//!   bound, and leaving the window returns it.
//!
//! One EF flow from A to B, offered 90 Mbit/s: alone, class 1:10 (rate 30,
//! ceil 60, tc's default burst and pfifo of 1000 packets) gets its ceil,
//! 60 Mbit/s, and drops the rest.

mod lab;

use std::path::PathBuf;
use std::process::Child;
use std::thread;
use std::time::{Duration, Instant};

use lab::{Host, Iperf3Server, Lab, Rate};
use serde_json::Value;

const MBIT: u64 = 1_000_000 / 8;

fn config(lab: &Lab, extra: &str) -> PathBuf {
    let text =
        std::fs::read_to_string(lab::repo_root().join("config/lab.toml")).expect("config/lab.toml");
    let cfg = lab.write("policy.toml", &format!("{text}\n{extra}"));
    let check = lab::run_limited(
        &[lab::weir_bin(), "check", cfg.to_str().expect("UTF-8")],
        Duration::from_secs(20),
    );
    assert!(
        check.status.success(),
        "the test's config is not valid: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    cfg
}

/// An EF flow at 90 Mbit/s for `secs` seconds from `from` (A through
/// weir, A2 through the kernel twin).
fn ef_flow(lab: &Lab, from: Host, port: u16, secs: u32) -> (Iperf3Server, Child) {
    let limit = Duration::from_secs(u64::from(secs) + 20);
    let server = lab.iperf3_server(from.other(), port, limit);
    let t = secs.to_string();
    let client = lab.iperf3_client(
        from,
        port,
        &["-u", "-b", "90M", "-l", "1472", "-t", &t, "--dscp", "EF"],
        limit,
    );
    (server, client)
}

fn finish(server: Iperf3Server, client: Child) -> Value {
    let out = client.wait_with_output().expect("iperf3 client");
    assert!(
        out.status.success(),
        "iperf3 client failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    server.finish()
}

/// 1:10's (rate, ceil) in bytes/s, from a stats dump.
fn shaping(lab: &mut Lab) -> (u64, u64) {
    let stats = lab.weir().stats();
    let c = lab::class(&stats, "up", "1:10");
    (lab::num(&c["rate"], "rate"), lab::num(&c["ceil"], "ceil"))
}

/// Polls 1:10's shaping until it is `want` or `limit` passes; returns the
/// last seen.
fn wait_for_shaping(lab: &mut Lab, want: (u64, u64), limit: Duration) -> (u64, u64) {
    let deadline = Instant::now() + limit;
    loop {
        let now = shaping(lab);
        if now == want || Instant::now() > deadline {
            return now;
        }
        thread::sleep(Duration::from_millis(250));
    }
}

fn history(lab: &Lab, args: &[&str]) -> Value {
    let db = lab.path("history.db");
    let mut all = vec![
        lab::weir_bin(),
        "history",
        "--db",
        db.to_str().expect("UTF-8"),
    ];
    all.extend_from_slice(args);
    all.push("-j");
    let out = lab::run_limited(&all, Duration::from_secs(20));
    assert!(
        out.status.success(),
        "weir history {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "weir history {args:?} -j is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

const SLA_SECS: u32 = 12;
/// The rule needs 4 s of drops seen on 1 s ticks, so weir throttles 5-6 s
/// into the flow; the kernel twin gets the same change (`tc class change`)
/// at 5 s. Both are measured in the same windows, which start after it.
const SLA_THROTTLE_AT: f64 = 5.0;

/// The SLA test's two rates from the receiver's report: before the rule
/// can open (the class at its ceil) and from 7 s on (throttled to half).
/// iperf3's intervals end a few ms after the whole second: windows reach
/// 0.1 s past it.
fn sla_rates(json: &Value) -> Vec<Rate> {
    let early = lab::window_frame_mbit(json, 0.0, (0.9, 3.1)).expect("seconds 1 to 3");
    let throttled =
        lab::window_frame_mbit(json, 0.0, (6.9, f64::from(SLA_SECS) + 0.2)).expect("throttled");
    eprintln!("early {early:.2} Mbit/s, throttled {throttled:.2} Mbit/s");
    vec![
        Rate::new("1:10 before the rule opens (its ceil)", "1:10", early, 60.0),
        Rate::new("1:10 throttled by 0.5 (ceil 30)", "1:10", throttled, 30.0),
    ]
}

const SLA: &str = r#"
    [[sla]]
    name = "high-drops"
    tree = "up"
    class = "1:10"
    when = "drops > 200/s for 4s"
    severity = "warning"
    actions = [{ log = true }, { throttle = { tree = "up", class = "1:10", factor = 0.5 } }]
    restore = true
    "#;

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "end-to-end: runs in release (scripts/test.sh)"
)]
fn sla_rule_throttles_is_recorded_and_restores() {
    lab::require_root();
    let weir = || {
        let mut lab = Lab::up("sla");
        let cfg = config(&lab, SLA);
        lab.start_weir(&cfg);
        let t0 = Instant::now();
        let (server, client) = ef_flow(&lab, Host::A, 5311, SLA_SECS);
        let json = finish(server, client);
        let stopped = t0.elapsed();
        let during = shaping(&mut lab);
        // The overload is over: no drops for 4 s resolves the rule and the
        // class goes back to what the file says.
        let restored = wait_for_shaping(&mut lab, (30 * MBIT, 60 * MBIT), Duration::from_secs(8));
        let settled = t0.elapsed();
        let report = lab.stop_weir();
        eprintln!(
            "during {during:?}, restored {restored:?} after {:.1}s",
            (settled - stopped).as_secs_f64()
        );
        assert_eq!(during, (15 * MBIT, 30 * MBIT), "throttled rate and ceil");
        assert_eq!(restored, (30 * MBIT, 60 * MBIT), "restored rate and ceil");
        assert_eq!(lab::tree_of(&report, "up")["frames"]["balanced"], true);
        assert_eq!(report["accounting"]["umem_free_or_fill"], true);

        let v = history(&lab, &["--violations"]);
        let rows = v["violations"].as_array().expect("violations array");
        assert_eq!(rows.len(), 1, "one violation: {v}");
        let row = &rows[0];
        assert_eq!(row["rule"], "high-drops", "{row}");
        assert_eq!(row["severity"], "warning", "{row}");
        assert!(row["value"].as_f64().expect("value") > 200.0, "{row}");
        assert!(!row["resolved_unix_ms"].is_null(), "resolved: {row}");
        let a = history(&lab, &["--adjustments"]);
        let rows = a["adjustments"].as_array().expect("adjustments array");
        assert_eq!(rows.len(), 2, "throttle and restore: {a}");
        assert_eq!(rows[0]["class"], "1:10");
        assert_eq!(rows[0]["old_ceil"], 60 * MBIT, "{a}");
        assert_eq!(rows[0]["new_ceil"], 30 * MBIT, "{a}");
        assert_eq!(rows[1]["new_ceil"], 60 * MBIT, "{a}");
        assert_eq!(rows[1]["new_rate"], 30 * MBIT, "{a}");
        sla_rates(&json)
    };
    // Kernel HTB has no SLA rules: the twin gets the throttle the rule
    // makes (rate 15, ceil 30) by hand, before the measured window.
    let kernel = || {
        let mut lab = Lab::up("slak");
        let cfg = config(&lab, SLA);
        lab.twin(&cfg);
        let t0 = Instant::now();
        let (server, client) = ef_flow(&lab, Host::A2, 5311, SLA_SECS);
        thread::sleep(Duration::from_secs_f64(SLA_THROTTLE_AT).saturating_sub(t0.elapsed()));
        lab.twin_class_change("up", "1:10", "15mbit", "30mbit");
        sla_rates(&finish(server, client))
    };
    lab::rate_test("SLA rule", weir, kernel);
}

const POLICY: &str = r#"
    [[policy]]
    name = "high-business-hours"
    tree = "up"
    class = "1:10"
    min_rate = "30mbit"
    max_rate = "30mbit"
    max_ceil = "90mbit"
    schedule = [{ days = "mon-fri", hours = "08:00-18:00", ceil = "80mbit" }]
    "#;
const HOURS_SECS: u32 = 13;
/// When, after the flow starts, the clock enters and leaves the window.
const HOURS_OPEN_AT: Duration = Duration::from_secs(4);
const HOURS_CLOSE_AT: Duration = Duration::from_secs(9);

/// The business-hours test's three rates, given when the window opened
/// and closed (seconds after the flow started). A clock change takes
/// effect on the next 1 s tick; iperf3's intervals end a few ms after the
/// whole second, so windows reach 0.1 s past it.
fn hours_rates(json: &Value, opened: f64, closed: f64) -> Vec<Rate> {
    let before = lab::window_frame_mbit(json, 0.0, (0.9, opened + 0.1)).expect("before");
    let inside =
        lab::window_frame_mbit(json, 0.0, (opened + 1.5, closed + 0.1)).expect("inside the window");
    let after = lab::window_frame_mbit(json, 0.0, (closed + 1.5, f64::from(HOURS_SECS) + 0.2))
        .expect("after");
    eprintln!("before {before:.2}, business hours {inside:.2}, after {after:.2} Mbit/s");
    vec![
        Rate::new("1:10 before 08:00 (ceil 60)", "1:10", before, 60.0),
        Rate::new("1:10 in business hours (ceil 80)", "1:10", inside, 80.0),
        Rate::new("1:10 after 18:00 (ceil 60)", "1:10", after, 60.0),
    ]
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "end-to-end: runs in release (scripts/test.sh)"
)]
fn business_hours_raise_a_busy_class_within_its_bounds_and_return_it() {
    lab::require_root();
    let weir = || {
        let mut lab = Lab::up("pol");
        // The window raises the ceil to 80mbit, within the policy's 90mbit bound.
        let cfg = config(&lab, POLICY);
        let clock = lab.write("clock", "mon 07:59\n");
        lab.start_weir_with(&cfg, &["--clock-file", clock.to_str().expect("UTF-8")]);
        assert_eq!(shaping(&mut lab), (30 * MBIT, 60 * MBIT), "before 08:00");
        let t0 = Instant::now();
        let (server, client) = ef_flow(&lab, Host::A, 5312, HOURS_SECS);
        thread::sleep(HOURS_OPEN_AT.saturating_sub(t0.elapsed()));
        let opened = t0.elapsed().as_secs_f64();
        std::fs::write(&clock, "mon 08:00\n").expect("clock");
        let inside = wait_for_shaping(&mut lab, (30 * MBIT, 80 * MBIT), Duration::from_secs(3));
        thread::sleep(HOURS_CLOSE_AT.saturating_sub(t0.elapsed()));
        let closed = t0.elapsed().as_secs_f64();
        std::fs::write(&clock, "mon 18:00\n").expect("clock");
        let after = wait_for_shaping(&mut lab, (30 * MBIT, 60 * MBIT), Duration::from_secs(3));
        let json = finish(server, client);
        let report = lab.stop_weir();
        assert_eq!(
            inside,
            (30 * MBIT, 80 * MBIT),
            "ceil raised to the window's 80mbit"
        );
        assert_eq!(after, (30 * MBIT, 60 * MBIT), "ceil back after 18:00");
        assert_eq!(lab::tree_of(&report, "up")["frames"]["balanced"], true);
        assert_eq!(report["accounting"]["umem_free_or_fill"], true);

        let a = history(&lab, &["--adjustments"]);
        let rows = a["adjustments"].as_array().expect("adjustments array");
        assert_eq!(rows.len(), 2, "into and out of the window: {a}");
        assert_eq!(rows[0]["new_ceil"], 80 * MBIT, "{a}");
        assert_eq!(rows[1]["new_ceil"], 60 * MBIT, "{a}");
        hours_rates(&json, opened, closed)
    };
    // Kernel HTB has no policies: the twin gets the window's ceil changes
    // by hand at the same moments.
    let kernel = || {
        let mut lab = Lab::up("polk");
        let cfg = config(&lab, POLICY);
        lab.twin(&cfg);
        let t0 = Instant::now();
        let (server, client) = ef_flow(&lab, Host::A2, 5312, HOURS_SECS);
        thread::sleep(HOURS_OPEN_AT.saturating_sub(t0.elapsed()));
        let opened = t0.elapsed().as_secs_f64();
        lab.twin_class_change("up", "1:10", "30mbit", "80mbit");
        thread::sleep(HOURS_CLOSE_AT.saturating_sub(t0.elapsed()));
        let closed = t0.elapsed().as_secs_f64();
        lab.twin_class_change("up", "1:10", "30mbit", "60mbit");
        hours_rates(&finish(server, client), opened, closed)
    };
    lab::rate_test("business hours", weir, kernel);
}
