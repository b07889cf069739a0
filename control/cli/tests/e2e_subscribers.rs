//! Subscribers in the lab (issue 13): [`CIRCUITS`] circuits of a
//! ShapedDevices.csv, each with its own source address in 198.18.16.0/24,
//! shaped to their plans by the upload tree that `[subscribers]` compiled
//! them into (circuits matched by source address), and measured per
//! circuit at host B from a capture of what arrived.
//!
//! trafgen in A sends 1442-byte UDP frames from every circuit's address
//! in turn (one packet definition per circuit, which trafgen cycles
//! through), paced so that each circuit is offered more than the most
//! its plan allows ([`GAP_US`]). trafgen's pace is measured (A's port's
//! frame counter over the run): a circuit whose plan is above what it was
//! offered is promised what it was offered. tcpdump in B records the frames; each circuit's rate
//! is its frames in a 12 s window after the warm-up (104 frames at the
//! smallest plan, so one frame is 1 %). The plans' maxima cycle through
//! 100, 200 and 300 kbit/s, 48 Mbit/s in all under a 100 Mbit/s root, so
//! only the plans limit.
//!
//! `weir whois` then finds a circuit by its address, with its class and
//! counters in both directions, and `weir circuit add|change|del` change
//! circuits of the running weir (each checked with `weir whois`).
//!
//! As the other rate tests, a miss on a host whose hypervisor stole CPU
//! time is measured again, and judged against kernel HTB in the same
//! window (the twin, built from the same file by `weir tc`) when every
//! attempt was disturbed.
//!
//! Needs root and a release build (scripts/test.sh runs it):
//! `cargo test -p weir --release --test e2e_subscribers`.

mod lab;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use lab::{Capture, Host, Lab, Rate};

/// Circuits, one source address each: 198.18.16.1 and up.
const CIRCUITS: u32 = 240;
/// Each circuit's upload max, kbit/s, cycled (its min is half of it): 48
/// Mbit/s in all, so that trafgen offers every circuit more than its plan
/// even when its sleeps end late (it has offered 0.36 to 0.63 Mbit/s per
/// circuit here).
const PLANS_KBIT: [u64; 3] = [100, 200, 300];
/// Ethernet + IPv4 + UDP + 1400 bytes of payload: what HTB charges and
/// what B receives.
const FRAME: u64 = 14 + 20 + 8 + 1400;
/// Gap trafgen waits between frames: 1442 × 8 bits every 30 µs would be
/// 385 Mbit/s, 1.6 Mbit/s per circuit. trafgen adds its own time per frame
/// (a send and a sleep each), so a quarter to a half of that is offered.
const GAP_US: u64 = 30;
/// Seconds of traffic, and the window measured: from `WARMUP` seconds
/// after the first frame at B to `WINDOW_END`.
const SECS: f64 = 16.0;
const WARMUP: f64 = 3.0;
const WINDOW_END: f64 = 15.0;

fn plan_kbit(i: u32) -> u64 {
    PLANS_KBIT[i as usize % PLANS_KBIT.len()]
}

fn address(i: u32) -> [u8; 4] {
    [198, 18, 16, 1 + i as u8]
}

fn dotted(a: [u8; 4]) -> String {
    format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3])
}

fn devices_csv() -> String {
    let mut s = String::from("Circuit ID,Circuit Name,Device ID,Device Name,Parent Node,MAC,IPv4,IPv6,Download Min Mbps,Upload Min Mbps,Download Max Mbps,Upload Max Mbps,Comment\n");
    for i in 0..CIRCUITS {
        let max = plan_kbit(i) as f64 / 1000.0;
        let min = max / 2.0;
        s.push_str(&format!(
            "c{i},Subscriber {i},d{i},Router,,,{},,{min},{min},{max},{max},\n",
            dotted(address(i))
        ));
    }
    s
}

/// tc's defaults everywhere but `first_id`: the kernel twin is built from
/// this file by `weir tc`, and tc's minor ids stop at ffff.
fn config_text() -> String {
    let mut s = String::from(
        r#"
[[pair]]
name = "lab"
inside = "weir-in"
outside = "weir-out"
upload = "up"
download = "down"

[subscribers]
devices = "devices.csv"
download = "down"
upload = "up"
parent = "1:1"
first_id = "100"
"#,
    );
    for tree in ["up", "down"] {
        s.push_str(&format!(
            r#"
[tree.{tree}]
default = "1:ffff"

[[tree.{tree}.class]]
id = "1:1"
rate = "100mbit"

[[tree.{tree}.class]]
id = "1:ffff"
parent = "1:1"
rate = "1mbit"
ceil = "100mbit"
"#
        ));
    }
    s
}

/// One packet definition per circuit, trafgen cycles through them: UDP
/// from the circuit's address to B's discard port.
fn trafgen_config(b_mac: &str, b_addr: &str) -> String {
    let mut s = String::new();
    for i in 0..CIRCUITS {
        s.push_str(&format!(
            "{{\n  eth(da={b_mac}, sa={a}),\n  ipv4(saddr={src}, daddr={b_addr}, ttl=64),\n  udp(sport=40000, dport=9),\n  fill(0x00, 1400)\n}}\n",
            a = lab::MAC_A,
            src = dotted(address(i)),
        ));
    }
    s
}

/// Runs the circuits' traffic from `from` (A, or A2 for the kernel twin)
/// and returns each circuit's rate at the other end.
fn measure(lab: &Lab, from: Host, case: &str) -> Vec<Rate> {
    let to = from.other();
    let b_mac = match to {
        Host::B2 => "02:00:c6:12:01:02",
        _ => lab::MAC_B,
    };
    let cfg = lab.write("circuits.trafgen", &trafgen_config(b_mac, to.addr()));
    let frames = (SECS * 1e6 / GAP_US as f64) as u64;
    let capture = Capture::start(
        lab,
        to,
        "circuits.pcap",
        "in",
        "udp and dst port 9",
        u32::try_from(frames).expect("fits"),
        Duration::from_secs_f64(SECS + 30.0),
    );
    let gap = format!("{GAP_US}us");
    let sent_before = tx_packets(lab, from);
    let started = Instant::now();
    // trafgen is stopped after SECS if it has not sent its frames by then
    // (its sleeps end late on a busy host), and may give up early when the
    // veth pushes back: what arrived is what is counted.
    let _ = lab.trafgen_with(
        from,
        &cfg,
        frames,
        &["-t", &gap],
        Duration::from_secs_f64(SECS),
    );
    let secs = started.elapsed().as_secs_f64();
    // What each circuit was offered, on average (trafgen's pace depends on
    // how soon its sleeps end, so it is measured rather than assumed).
    let offered = (tx_packets(lab, from) - sent_before) as f64 * (FRAME * 8) as f64
        / secs
        / f64::from(CIRCUITS)
        / 1e6;
    lab::say(&format!(
        "{case}: {from:?} offered {offered:.3} Mbit/s per circuit on average ({secs:.1} s)"
    ));
    let got = capture.stop();
    assert!(!got.is_empty(), "{case}: nothing arrived at {to:?}");
    let t0 = got[0].ts;
    let mut per_src: HashMap<[u8; 4], u64> = HashMap::new();
    for p in &got {
        let t = p.ts - t0;
        if (WARMUP..WINDOW_END).contains(&t) {
            *per_src.entry(p.src).or_default() += 1;
        }
    }
    let window = WINDOW_END - WARMUP;
    (0..CIRCUITS)
        .map(|i| {
            let n = per_src.get(&address(i)).copied().unwrap_or(0);
            let mbit = (n * FRAME * 8) as f64 / window / 1e6;
            // HTB gives a class what it is offered, up to its ceil.
            let promised = (plan_kbit(i) as f64 / 1000.0).min(offered);
            Rate {
                case: case.to_string(),
                class: format!("c{i}"),
                achieved: mbit,
                promised,
                // The kernel comparison's points are of the plan itself.
                parent: plan_kbit(i) as f64 / 1000.0,
                pct: lab::RATE_PCT,
            }
        })
        .collect()
}

/// `weir circuit add|change|del` on the running weir, each checked with
/// `weir whois`; a circuit the files would refuse is refused.
fn circuit_changes(lab: &Lab) {
    let whois = |addr: &str| -> serde_json::Value {
        let (code, out, err) = lab.cli(&["whois", addr, "-j"]);
        assert_eq!(code, 0, "weir whois {addr}: {err}");
        serde_json::from_str(&out).expect("whois -j is JSON")
    };
    // What c1 (an untouched circuit) sent so far: an edit in place keeps
    // its counters (a rebuilt tree would start them from zero).
    let c1_sent = || {
        let who = whois("198.18.16.2");
        assert_eq!(who["circuit"]["id"], "c1", "{who}");
        lab::num(&who["upload"]["stats"]["packets"], "c1's upload packets")
    };
    let c1_before = c1_sent();
    assert!(c1_before > 0, "c1 sent nothing before the changes");
    let (code, out, err) = lab.cli(&[
        "circuit",
        "add",
        "c999",
        "--download",
        "1:2",
        "--upload",
        "1:2",
        "--ip",
        "198.18.17.1",
    ]);
    assert_eq!(code, 0, "weir circuit add: {err}");
    assert!(
        out.contains("circuit add c999")
            && out.contains("changed in place: tree down: 0 leaf class(es) removed, 1 added")
            && out.contains("changed in place: tree up: 0 leaf class(es) removed, 1 added"),
        "{out}"
    );
    let who = whois("198.18.17.1");
    assert_eq!(who["circuit"]["id"], "c999", "{who}");
    assert_eq!(who["upload"]["ceil"], 2_000_000 / 8, "{who}");
    // A plan changed in place.
    let (code, out, err) = lab.cli(&["circuit", "change", "c4", "--upload", "0.05:0.15"]);
    assert_eq!(code, 0, "weir circuit change: {err}");
    assert!(
        out.contains("2 class change(s) in place") || out.contains("1 class change(s) in place"),
        "{out}"
    );
    let who = whois("198.18.16.5");
    assert_eq!(who["upload"]["ceil"], 150_000 / 8, "{who}");
    assert_eq!(who["upload"]["rate"], 50_000 / 8, "{who}");
    // Removed: its address is no circuit's any more.
    let (code, out, err) = lab.cli(&["circuit", "del", "c5"]);
    assert_eq!(code, 0, "weir circuit del: {err}");
    assert!(
        out.contains("changed in place: tree up: 1 leaf class(es) removed"),
        "{out}"
    );
    assert!(c1_sent() >= c1_before, "c1's counters went back");
    let (code, _, err) = lab.cli(&["whois", "198.18.16.6"]);
    assert!(code != 0 && err.contains("no circuit holds"), "{err}");
    // An address another circuit has: refused, at the new row.
    let (code, _, err) = lab.cli(&[
        "circuit",
        "add",
        "c998",
        "--download",
        "1",
        "--upload",
        "1",
        "--ip",
        "198.18.16.7",
    ]);
    assert_ne!(code, 0, "a duplicate address is refused");
    assert!(err.contains("198.18.16.7"), "{err}");
    assert_eq!(whois("198.18.16.7")["circuit"]["id"], "c6");
}

/// Frames `host`'s lab port has sent so far.
fn tx_packets(lab: &Lab, host: Host) -> u64 {
    let stats = lab.link_stats(host, host.dev());
    lab::num(&stats["tx"]["packets"], "stats64.tx.packets")
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "end-to-end: runs in release (scripts/test.sh)"
)]
fn two_hundred_forty_circuits_get_their_plans() {
    lab::require_root();
    let files = |lab: &Lab| -> PathBuf {
        lab.write("devices.csv", &devices_csv());
        lab.write("weir.toml", &config_text())
    };
    let weir = || {
        let mut lab = Lab::up("sub");
        let cfg = files(&lab);
        lab.start_weir(&cfg);
        let rates = measure(&lab, Host::A, "240 circuits");
        // The circuits are classes of the upload tree, named by circuit
        // id, and counted what they sent.
        let stats = lab.weir().stats();
        let tree = lab::tree_of(&stats, "up");
        let classes = tree["classes"].as_array().expect("classes");
        let circuits: Vec<&serde_json::Value> = classes
            .iter()
            .filter(|c| c["name"].as_str().is_some_and(|n| n.starts_with('c')))
            .collect();
        assert_eq!(circuits.len() as u32, CIRCUITS, "one class per circuit");
        let idle = circuits
            .iter()
            .filter(|c| lab::num(&c["packets"], "packets") == 0)
            .count();
        assert_eq!(idle, 0, "every circuit's class sent packets");
        let unlisted = lab::class(&stats, "up", "1:ffff");
        assert!(
            lab::num(&unlisted["packets"], "packets") < 100,
            "frames of circuits went to the default class: {unlisted}"
        );
        // whois finds a circuit by an address of its device, with its
        // class and counters in both directions.
        let (code, out, err) = lab.cli(&["whois", "198.18.16.5", "-j"]);
        assert_eq!(code, 0, "weir whois: {err}");
        let who: serde_json::Value = serde_json::from_str(&out).expect("whois -j is JSON");
        assert_eq!(who["circuit"]["id"], "c4", "{who}");
        assert_eq!(who["circuit"]["prefix"], "198.18.16.5/32", "{who}");
        assert_eq!(who["upload"]["tree"], "up", "{who}");
        assert!(
            lab::num(&who["upload"]["stats"]["packets"], "packets") > 0,
            "{who}"
        );
        assert_eq!(who["download"]["tree"], "down", "{who}");
        let (code, _, err) = lab.cli(&["whois", "198.18.99.1"]);
        assert_ne!(code, 0, "an address of no circuit is an error");
        assert!(err.contains("no circuit holds 198.18.99.1"), "{err}");
        // The classes of one circuit, and the busiest ones.
        let (code, out, err) = lab.cli(&["show", "class", "--class", "c4", "-s"]);
        assert_eq!(code, 0, "weir show class --class: {err}");
        assert_eq!(
            out.matches("class htb ").count(),
            2,
            "c4 in each tree: {out}"
        );
        let (code, out, err) = lab.cli(&["show", "class", "--top", "3", "--tree", "up"]);
        assert_eq!(code, 0, "weir show class --top: {err}");
        assert_eq!(out.matches("class htb ").count(), 3, "{out}");
        circuit_changes(&lab);
        let report = lab.stop_weir();
        assert_eq!(report["accounting"]["balanced"], true);
        rates
    };
    let kernel = || {
        let mut lab = Lab::up("sub");
        let cfg = files(&lab);
        lab.twin(&cfg);
        measure(&lab, Host::A2, "240 circuits")
    };
    lab::rate_test("subscribers: 240 circuits", weir, kernel);
}
