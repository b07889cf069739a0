//! End-to-end fault test (issue 3): `kill -9` of weir under load fails open
//! through a kernel bridge, and a restarted weir shapes again.
//!
//! The lab is built with `lab.sh up --fail-open`: weir-in and weir-out are
//! also the ports of a bridge br0 in the gw namespace. weir's XDP program
//! redirects every frame to its AF_XDP sockets before the bridge's rx
//! handler runs, so while weir runs the bridge sees nothing; once weir is
//! gone its bpf_links close with the process, the program detaches, and
//! the bridge forwards, unshaped.
//!
//! One test, in three phases (class 1:10 of config/lab.toml: EF, rate 30,
//! ceil 60 Mbit/s, alone in the tree so it runs at its ceil):
//!
//! 1. weir runs over the bridge: a ping through it works, no frame reaches
//!    the bridge (it learns no host MAC, weir's XDP passes nothing for want
//!    of a socket), and a 150 Mbit/s EF flow is held to the ceil.
//! 2. `kill -9` mid-flow: both ports lose their XDP program within
//!    [`DETACH_LIMIT`]; a `ping -i 0.01` from A to B, running throughout,
//!    never misses more than [`MAX_GAP`]; the flow then arrives far above
//!    the ceil (the bridge does not shape) and the bridge has learnt A's
//!    and B's MACs (it forwarded).
//! 3. weir restarted: the same flow gets its ceil within ±3 % again, and
//!    again nothing reaches the bridge. That rate is judged by
//!    `lab::rate_test` (the whole test runs again on a disturbed host, and
//!    is compared with kernel HTB if the host never settles); every other
//!    check runs and must hold on every attempt.
//!
//! Needs root and a release build (scripts/test.sh runs it):
//! `cargo test -p weir --release --test e2e_fault`.

mod lab;

use std::process::Child;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lab::{Host, Lab, UdpFlow};
use serde_json::Value;

const T: Duration = Duration::from_secs(20);
const PORTS: [&str; 2] = ["weir-in", "weir-out"];

/// Class 1:10's ceil in config/lab.toml, Mbit/s of Ethernet frames.
const CEIL: f64 = 60.0;
/// Offered payload rate, well above the ceil: shaped, the class runs at
/// its ceil; through the bridge, it arrives at about this rate.
const OFFERED: u32 = 150;
/// Seconds of the flow that weir is killed in, and when in it.
const KILL_FLOW_SECS: u32 = 10;
const KILL_AT: Duration = Duration::from_millis(4500);
/// Seconds of the flow after the restart (as e2e_shaping: four or five
/// whole one-second intervals are measured).
const SHAPE_SECS: u32 = 7;

/// The issue: "traffic keeps flowing within one second".
const MAX_GAP: Duration = Duration::from_secs(1);
/// How soon after the kill neither port may have an XDP program. The
/// kernel releases the links as the process exits (50-110 ms after the
/// SIGKILL here, most of it the process's own teardown); the program must
/// be gone well within the second that traffic may stop.
const DETACH_LIMIT: Duration = Duration::from_secs(1);
/// The shaped rate after the restart: the issue's ±3 %.
const RESTART_PCT: f64 = 3.0;
/// Before the kill only the ceil is checked, with the same 3 %: above it
/// would mean frames also crossed the bridge. How close weir comes to the
/// ceil from below is e2e_shaping's (and phase 3's) business, and on a
/// 2-core VM shared with a build at the same nice level it fell 15-40 %
/// short for want of CPU.
const BEFORE_KILL_ABOVE_PCT: f64 = 3.0;
/// After the kill the flow must beat the ceil by this factor to count as
/// unshaped: about 2.5× is expected (150 Mbit/s offered), 1.25× leaves
/// room for a busy VM dropping some at the receiving socket.
const UNSHAPED_FACTOR: f64 = 1.25;

const EF: UdpFlow = UdpFlow {
    dscp: Some("EF"),
    port: 5702,
    mbit: OFFERED,
};

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "end-to-end: runs in release (scripts/test.sh)"
)]
fn kill9_fails_open_through_the_bridge_and_a_restart_shapes_again() {
    lab::require_root();
    let weir = || {
        let mut lab = Lab::up_with("fo", &["--fail-open"]);
        let cfg = lab::repo_root().join("config/lab.toml");

        // Phase 1: weir runs over the bridge.
        lab.start_weir(&cfg);
        let progs: Vec<u64> = PORTS
            .iter()
            .map(|d| {
                lab.xdp_prog(d)
                    .unwrap_or_else(|| panic!("weir is ready but {d} has no XDP program"))
            })
            .collect();
        // From here on the bridge must see nothing: forget what it may have
        // learnt before weir was ready, and make the hosts ARP through weir.
        flush_fdb(&lab);
        for host in [Host::A, Host::B] {
            lab.run(host, &["ip", "neigh", "flush", "all"], T);
        }
        let warm = lab.output(
            Host::A,
            &["ping", "-c", "3", "-i", "0.2", "-W", "2", lab::ADDR_B],
            T,
        );
        assert!(
            warm.status.success(),
            "ping A → B through weir over the bridge failed:\n{}",
            String::from_utf8_lossy(&warm.stdout)
        );

        // Phase 2: load, probe, kill -9.
        let server = lab.iperf3_server(Host::B, EF.port, T + T);
        let probe = start_probe(&lab, KILL_FLOW_SECS + 2);
        thread::sleep(Duration::from_millis(500));
        let t0 = Instant::now();
        let client = start_flow(&lab, Host::A, KILL_FLOW_SECS);
        sleep_until(t0 + KILL_AT - Duration::from_millis(500));
        let before = lab.weir().stats();
        assert_nothing_passed("before the kill", &before);
        assert!(
            lab::num(
                &lab::tree_of(&before, "up")["frames"]["received"],
                "up.frames.received"
            ) > 0,
            "weir's up tree received nothing before the kill"
        );
        assert_bridge_saw_nothing(&lab, "while weir ran");
        sleep_until(t0 + KILL_AT);
        let kill_wall = unix_now();
        let kill_rel = t0.elapsed().as_secs_f64();
        let killed = Instant::now();
        let status = lab.kill_weir();
        let reaped = killed.elapsed();
        let detached = wait_detached(&lab, killed, DETACH_LIMIT + Duration::from_secs(1));
        eprintln!(
            "kill -9 at {kill_rel:.2} s into the flow: reaped after {:.1} ms ({status}), XDP gone from both ports after {:.1} ms",
            reaped.as_secs_f64() * 1e3,
            detached.as_secs_f64() * 1e3
        );
        assert!(!status.success(), "weir exited with {status} after SIGKILL");
        assert!(
            detached <= DETACH_LIMIT,
            "XDP programs still attached {:.0} ms after kill -9 (limit {} ms)",
            detached.as_secs_f64() * 1e3,
            DETACH_LIMIT.as_millis()
        );

        let out = client.wait_with_output().expect("iperf3 client output");
        assert!(
            out.status.success(),
            "iperf3 client A → B across the kill failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
        );
        let json = server.finish();
        // Whole one-second intervals only (window_frame_mbit), on the client's
        // clock; 0.15 s of slack as in Lab::udp_flows. Before: from 1.15 s
        // (HTB's buckets start full) to the kill. After: from 0.5 s after the
        // kill (the interval holding the kill mixes both) to the end.
        let end = f64::from(KILL_FLOW_SECS) - 0.15;
        let shaped = lab::window_frame_mbit(&json, 0.0, (1.15, kill_rel))
            .unwrap_or_else(|e| panic!("before the kill: {e}\n{json}"));
        let unshaped = lab::window_frame_mbit(&json, 0.0, (kill_rel + 0.5, end))
            .unwrap_or_else(|e| panic!("after the kill: {e}\n{json}"));
        eprintln!("1:10 per second across the kill: {}", per_second(&json));
        let (replies, summary) = probe_replies(probe);
        let gaps = Gaps::of(&replies, kill_wall);
        eprintln!(
            "1:10 before the kill {shaped:.2} Mbit/s (ceil {CEIL}), after {unshaped:.2} Mbit/s; \
             probe: {summary}; longest gap {:.1} ms, gap across the kill {:.1} ms",
            gaps.longest * 1e3,
            gaps.across_kill * 1e3
        );
        assert!(
            shaped <= CEIL * (1.0 + BEFORE_KILL_ABOVE_PCT / 100.0),
            "1:10 before the kill (weir over the bridge): {shaped:.2} Mbit/s, above its ceil {CEIL} + {BEFORE_KILL_ABOVE_PCT} %"
        );
        assert!(
            gaps.longest < MAX_GAP.as_secs_f64(),
            "the probe A → B went {:.0} ms without a reply (limit {} ms); gap across the kill {:.0} ms",
            gaps.longest * 1e3,
            MAX_GAP.as_millis(),
            gaps.across_kill * 1e3
        );
        // The probe runs until about 7 s after the kill; its replies must go
        // on to at least the end of the flow.
        let flow_left = f64::from(KILL_FLOW_SECS) - KILL_AT.as_secs_f64();
        assert!(
            gaps.last_after_kill > flow_left,
            "the probe's replies stop {:.2} s after the kill, before the flow ended ({flow_left:.1} s): \
             traffic did not keep flowing",
            gaps.last_after_kill
        );
        assert!(
            unshaped > CEIL * UNSHAPED_FACTOR,
            "after the kill 1:10's flow arrived at {unshaped:.2} Mbit/s, not above {:.0}: still shaped?",
            CEIL * UNSHAPED_FACTOR
        );
        let learnt = fdb_learnt(&lab);
        for (mac, dev) in [(lab::MAC_A, "weir-in"), (lab::MAC_B, "weir-out")] {
            assert!(
                learnt.iter().any(|(m, d)| m == mac && d == dev),
                "after the kill the bridge has not learnt {mac} on {dev}, so it forwarded nothing: {learnt:?}"
            );
        }

        // Phase 3: restart, shape again.
        flush_fdb(&lab);
        lab.start_weir(&cfg);
        for (d, old) in PORTS.iter().zip(&progs) {
            let new = lab
                .xdp_prog(d)
                .unwrap_or_else(|| panic!("restarted weir is ready but {d} has no XDP program"));
            assert_ne!(new, *old, "{d}: the old XDP program is still attached");
        }
        let rates = shaped_flow(&lab, Host::A);
        let after = lab.weir().stats();
        assert_nothing_passed("after the restart", &after);
        assert_bridge_saw_nothing(&lab, "after the restart");
        let report = lab.stop_weir();
        let frames = &lab::tree_of(&report, "up")["frames"];
        assert!(
            lab::num(&frames["received"], "up.frames.received") > 0,
            "restarted weir's up tree received nothing: {frames}"
        );
        assert_eq!(frames["balanced"], true, "up tree frames: {frames}");
        // For a miss: drops at weir-in's socket or a worker that rarely slept
        // point at a CPU-starved weir (a busy VM), not at the shaper.
        let weir_in = report["interfaces"]
            .as_array()
            .and_then(|is| is.iter().find(|i| i["name"] == "weir-in"));
        eprintln!(
            "restarted weir: up frames {frames}; weir-in xsk {}; workers {}",
            weir_in.map_or(Value::Null, |i| i["xsk"].clone()),
            report["workers"]
                .as_array()
                .map(|ws| {
                    ws.iter()
                        .map(|w| {
                            format!(
                                "#{} sleeps {} empty_polls {} tx_ring_full {} fill_ring_starved {}",
                                w["index"],
                                w["sleeps"],
                                w["empty_polls"],
                                w["tx_ring_full"],
                                w["fill_ring_starved"]
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default()
        );
        assert_eq!(report["accounting"]["umem_free_or_fill"], true);
        rates
    };
    // The same flow through kernel HTB with the same tree.
    let kernel = || {
        let mut lab = Lab::up("fok");
        lab.twin(&lab::repo_root().join("config/lab.toml"));
        shaped_flow(&lab, Host::A2)
    };
    lab::rate_test("kill -9 and restart", weir, kernel);
}

/// Phase 3's measurement: the EF flow from `from` for [`SHAPE_SECS`],
/// 1:10's rate at the receiver against its ceil. Measured like the kill
/// phase rather than with `Lab::udp_flows`, for the per-second log line:
/// the client is spawned at 0 s.
fn shaped_flow(lab: &Lab, from: Host) -> Vec<lab::Rate> {
    let server = lab.iperf3_server(from.other(), EF.port, T + T);
    let client = start_flow(lab, from, SHAPE_SECS);
    let out = client.wait_with_output().expect("iperf3 client output");
    assert!(
        out.status.success(),
        "iperf3 client {from:?} → {:?} failed ({}): {}",
        from.other(),
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    let json = server.finish();
    eprintln!("1:10 per second ({from:?}): {}", per_second(&json));
    let achieved = lab::window_frame_mbit(&json, 0.0, (1.15, f64::from(SHAPE_SECS) - 0.15))
        .unwrap_or_else(|e| panic!("{from:?}: {e}\n{json}"));
    let mut rate = lab::Rate::new("1:10 after the restart", "1:10", achieved, CEIL);
    rate.pct = RESTART_PCT;
    vec![rate]
}

/// A ping from A to B every 10 ms asked (about 16 ms here: ping's timer
/// granularity), with a receive timestamp per reply (`-D`), running for
/// `secs`. That resolves the outage far below the 1 s limit, and 84-byte
/// packets in the default class 1:30 (idle but for them) are not held back
/// by the EF flood.
fn start_probe(lab: &Lab, secs: u32) -> Child {
    let w = secs.to_string();
    lab.spawn(
        Host::A,
        &["ping", "-D", "-n", "-i", "0.01", "-w", &w, lab::ADDR_B],
        Duration::from_secs(u64::from(secs) + 5),
    )
}

/// The probe's replies (wall-clock receive times, seconds since the epoch,
/// in the order received) and ping's summary line, for the log.
fn probe_replies(probe: Child) -> (Vec<f64>, String) {
    let out = probe.wait_with_output().expect("ping output");
    let text = String::from_utf8_lossy(&out.stdout);
    let replies: Vec<f64> = text
        .lines()
        .filter(|l| l.contains(" bytes from "))
        .filter_map(|l| l.strip_prefix('[')?.split(']').next()?.parse().ok())
        .collect();
    assert!(
        replies.len() > 100,
        "the probe got only {} replies ({}):\n{}",
        replies.len(),
        out.status,
        text.lines().rev().take(5).collect::<Vec<_>>().join("\n")
    );
    let summary = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or("no summary")
        .to_owned();
    (replies, summary)
}

/// What the probe saw, in seconds.
struct Gaps {
    /// Longest time between two consecutive replies.
    longest: f64,
    /// From the last reply before the kill to the first one after it.
    across_kill: f64,
    /// How long after the kill the last reply came.
    last_after_kill: f64,
}

impl Gaps {
    fn of(replies: &[f64], kill: f64) -> Gaps {
        let longest = replies.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
        let before = replies
            .iter()
            .copied()
            .filter(|&t| t <= kill)
            .fold(f64::NAN, f64::max);
        let after = replies
            .iter()
            .copied()
            .filter(|&t| t > kill)
            .fold(f64::NAN, f64::min);
        let last = replies.iter().copied().fold(f64::NAN, f64::max);
        Gaps {
            longest,
            // NaN (no reply on one side) fails every comparison below, so
            // such a run cannot pass by accident.
            across_kill: if before.is_nan() || after.is_nan() {
                f64::INFINITY
            } else {
                after - before
            },
            last_after_kill: last - kill,
        }
    }
}

/// The flow of the kill phase: iperf3 UDP, EF, [`OFFERED`] Mbit/s, from
/// `from` (A through weir, A2 through the kernel twin).
fn start_flow(lab: &Lab, from: Host, secs: u32) -> Child {
    let b = format!("{}M", EF.mbit);
    let t = secs.to_string();
    lab.iperf3_client(
        from,
        EF.port,
        &["-u", "-b", &b, "-l", "1472", "-t", &t, "--dscp", "EF"],
        Duration::from_secs(u64::from(secs) + 20),
    )
}

/// Polls both ports until neither has an XDP program; the time since
/// `killed` when that was seen. Panics `limit` after `killed`.
fn wait_detached(lab: &Lab, killed: Instant, limit: Duration) -> Duration {
    let deadline = killed + limit;
    loop {
        let attached: Vec<_> = PORTS.iter().filter(|d| lab.xdp_prog(d).is_some()).collect();
        if attached.is_empty() {
            return killed.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "XDP still attached to {attached:?} {:.1} s after kill -9",
            killed.elapsed().as_secs_f64()
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// Every frame weir's XDP program saw went to a socket: none was passed
/// up to the bridge for want of one (and it has no pass prefixes).
fn assert_nothing_passed(when: &str, stats: &Value) {
    let ifaces = stats["interfaces"].as_array().expect("interfaces in stats");
    for d in PORTS {
        let i = ifaces
            .iter()
            .find(|i| i["name"] == d)
            .unwrap_or_else(|| panic!("no interface {d} in the stats"));
        let x = &i["xdp"];
        assert_eq!(
            lab::num(&x["passed_no_socket"], "xdp.passed_no_socket"),
            0,
            "{when}: {d}'s XDP program passed frames to the bridge: {x}"
        );
    }
}

/// The bridge learns a source MAC from any frame it receives; no host MAC
/// in its table means no frame of A or B reached it.
fn assert_bridge_saw_nothing(lab: &Lab, when: &str) {
    let learnt = fdb_learnt(lab);
    assert!(
        !learnt
            .iter()
            .any(|(m, _)| m == lab::MAC_A || m == lab::MAC_B),
        "{when}: the bridge learnt host MACs, so frames bypassed weir: {learnt:?}"
    );
}

/// The bridge's learnt (not permanent) entries: (MAC, port).
fn fdb_learnt(lab: &Lab) -> Vec<(String, String)> {
    let gw = lab.ns_gw();
    lab::run_ok(&["bridge", "-n", &gw, "fdb", "show", "br", "br0"], T)
        .lines()
        .filter(|l| !l.contains("permanent"))
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let mac = w.next()?;
            (w.next()? == "dev").then_some(())?;
            Some((mac.to_owned(), w.next()?.to_owned()))
        })
        .collect()
}

fn flush_fdb(lab: &Lab) {
    let gw = lab.ns_gw();
    lab::run_ok(
        &[
            "ip",
            "-n",
            &gw,
            "link",
            "set",
            "dev",
            "br0",
            "type",
            "bridge",
            "fdb_flush",
        ],
        T,
    );
}

/// The receiver's one-second intervals, Mbit/s of frames, for the log.
fn per_second(json: &Value) -> String {
    json["intervals"]
        .as_array()
        .map(|is| {
            is.iter()
                .map(|i| {
                    let bps = i["sum"]["bits_per_second"].as_f64().unwrap_or(0.0);
                    format!("{:.1}", bps / 1e6 * lab::FRAME_PER_PAYLOAD)
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

fn sleep_until(when: Instant) {
    thread::sleep(when.saturating_duration_since(Instant::now()));
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}
