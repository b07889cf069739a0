//! End-to-end transparency: with `weir run` between the lab's two hosts
//! (config/lab.toml), the path behaves like a wire. ARP resolves (A learns
//! B's MAC and B learns A's: broadcast requests and unicast replies both
//! cross weir), ICMP echo works both ways, TCP (iperf3) carries data both
//! ways, and UDP at a low rate arrives with next to no loss both ways. The
//! final report shows both trees carried frames and every frame is
//! accounted for.
//!
//! Needs root and a release build (scripts/test.sh runs it):
//! `cargo test -p weir --release --test e2e_transparency`.

mod lab;

use std::time::Duration;

use lab::{Host, Lab};
use serde_json::Value;

const T: Duration = Duration::from_secs(20);

fn lab_with_weir(tag: &str) -> Lab {
    let mut lab = Lab::up(tag);
    lab.start_weir(&lab::repo_root().join("config/lab.toml"));
    lab
}

/// Checks the stop report of a transparency run: both directions carried
/// traffic, nothing was lost inside weir's accounting.
fn check_report(report: &Value) {
    for tree in ["up", "down"] {
        let f = &lab::tree_of(report, tree)["frames"];
        assert!(
            lab::num(&f["received"], "received") > 0,
            "tree {tree} received nothing: {f}"
        );
        assert_eq!(f["balanced"], true, "tree {tree}: {f}");
    }
    assert_eq!(
        report["accounting"]["umem_free_or_fill"], true,
        "{}",
        report["accounting"]
    );
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "end-to-end: runs in release (scripts/test.sh)"
)]
fn arp_and_icmp_both_ways() {
    lab::require_root();
    let _serial = lab::serialize();
    let mut lab = lab_with_weir("ar");
    for host in [Host::A, Host::B] {
        // Start from an empty neighbour table, so the MAC seen below can
        // only have come from an ARP exchange through weir.
        lab.run(host, &["ip", "neigh", "flush", "all"], T);
    }
    for from in [Host::A, Host::B] {
        let out = lab.output(
            from,
            &[
                "ping",
                "-c",
                "5",
                "-i",
                "0.2",
                "-W",
                "2",
                from.other().addr(),
            ],
            T,
        );
        assert!(
            out.status.success(),
            "ping {from:?} → {:?} through weir failed:\n{}",
            from.other(),
            String::from_utf8_lossy(&out.stdout)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(" 0% packet loss"), "ping {from:?}: {text}");
    }
    for (host, peer, mac) in [
        (Host::A, lab::ADDR_B, lab::MAC_B),
        (Host::B, lab::ADDR_A, lab::MAC_A),
    ] {
        let neigh = lab.run(host, &["ip", "neigh", "show", peer], T);
        assert!(
            neigh.contains(&format!("lladdr {mac}")),
            "{host:?} has not learnt {peer}'s MAC {mac} by ARP through weir: `{}`",
            neigh.trim()
        );
    }
    check_report(&lab.stop_weir());
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "end-to-end: runs in release (scripts/test.sh)"
)]
fn tcp_both_ways() {
    lab::require_root();
    let _serial = lab::serialize();
    let mut lab = lab_with_weir("tc");
    for (from, port) in [(Host::A, 5401), (Host::B, 5402)] {
        let server = lab.iperf3_server(from.other(), port, T);
        let client = lab.iperf3_client(from, port, &["-t", "2"], T);
        let out = client.wait_with_output().expect("iperf3 client output");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "iperf3 TCP {from:?} → {:?} failed: {text}",
            from.other()
        );
        let json: Value = serde_json::from_str(&text).expect("iperf3 -J output is JSON");
        let received = json["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .unwrap_or(0.0);
        let _ = server.finish();
        eprintln!(
            "TCP {from:?} → {:?}: {:.1} Mbit/s",
            from.other(),
            received / 1e6
        );
        // Unmarked TCP lands in 1:30 (20/100 Mbit/s): anything above a
        // megabit shows the connection works; the rate is e2e_shaping's job.
        assert!(
            received > 1e6,
            "TCP {from:?} → {:?} through weir: only {received} bit/s received",
            from.other()
        );
    }
    check_report(&lab.stop_weir());
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "end-to-end: runs in release (scripts/test.sh)"
)]
fn udp_both_ways() {
    lab::require_root();
    let _serial = lab::serialize();
    let mut lab = lab_with_weir("ud");
    for (from, port) in [(Host::A, 5501), (Host::B, 5502)] {
        let server = lab.iperf3_server(from.other(), port, T);
        // 10 Mbit/s, half of 1:30's guaranteed rate: nothing should queue
        // long enough to drop.
        let client =
            lab.iperf3_client(from, port, &["-u", "-b", "10M", "-l", "1200", "-t", "2"], T);
        let out = client.wait_with_output().expect("iperf3 client output");
        assert!(
            out.status.success(),
            "iperf3 UDP {from:?} → {:?} failed: {}",
            from.other(),
            String::from_utf8_lossy(&out.stdout)
        );
        let json = server.finish();
        let sum = &json["end"]["sum"];
        let packets = sum["packets"].as_u64().unwrap_or(0);
        let lost = sum["lost_percent"].as_f64().unwrap_or(100.0);
        eprintln!(
            "UDP {from:?} → {:?}: {packets} datagrams, {lost:.2} % lost",
            from.other()
        );
        assert!(
            packets > 1000,
            "UDP {from:?}: only {packets} datagrams arrived: {sum}"
        );
        assert!(
            lost < 1.0,
            "UDP {from:?}: {lost:.2} % lost at 10 Mbit/s: {sum}"
        );
    }
    check_report(&lab.stop_weir());
}
