//! End to end: seeing apps on a running weir (issue 12, "Seeing it").
//!
//! config/lab.toml plus one app on the upload tree, chosen by port (UDP
//! 5311, class 1:30, remarked CS1). A UDP flow from A to B on that port
//! then shows in `weir show apps` (its counters), in `weir show flows`
//! (the flow, its app, class, remark and how it was decided), in the
//! metrics (`weir_app_*` labelled by tree and app) and in the history
//! (`weir history --app`); an unknown app is an error, and the download
//! tree, which has no apps, is in none of them.

mod lab;

use std::time::Duration;

use lab::{Host, Lab};
use serde_json::Value;

const APP: &str = r#"
[[tree.up.app]]
name = "bulk5311"
class = "1:30"
dscp = "CS1"

[[tree.up.app.match]]
protocol = "udp"
ports = [5311]
"#;

fn weir_cli(lab: &Lab, args: &[&str]) -> (i32, String, String) {
    lab.cli(args)
}

fn scrape(lab: &Lab) -> String {
    let gw = lab.ns_gw();
    let script = "exec 3<>/dev/tcp/127.0.0.1/9469 && printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3";
    lab::run_ok(
        &["ip", "netns", "exec", &gw, "bash", "-c", script],
        Duration::from_secs(10),
    )
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "end-to-end: runs in release (scripts/test.sh)"
)]
fn apps_and_flows_are_shown_counted_and_recorded() {
    lab::require_root();
    let _serial = lab::serialize();
    let mut lab = Lab::up("as");
    let text =
        std::fs::read_to_string(lab::repo_root().join("config/lab.toml")).expect("config/lab.toml");
    let cfg = lab.write("apps.toml", &format!("{text}\n{APP}"));
    let check = lab::run_limited(
        &[lab::weir_bin(), "check", cfg.to_str().expect("UTF-8")],
        Duration::from_secs(20),
    );
    assert!(
        check.status.success(),
        "the test's config is not valid: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    lab.start_weir(&cfg);

    // 5 Mbit/s of UDP for 3 s: well under 1:30's rate, nothing dropped.
    let limit = Duration::from_secs(30);
    let server = lab.iperf3_server(Host::B, 5311, limit);
    let client = lab.iperf3_client(
        Host::A,
        5311,
        &["-u", "-b", "5M", "-l", "1000", "-t", "3"],
        limit,
    );
    let out = client.wait_with_output().expect("iperf3 client");
    assert!(out.status.success(), "iperf3 client failed");
    let _ = server.finish();
    // A tick publishes the metrics and writes the history once a second.
    std::thread::sleep(Duration::from_millis(2200));

    let (code, apps, err) = weir_cli(&lab, &["show", "apps"]);
    assert_eq!(code, 0, "{err}");
    assert!(apps.contains("tree up apps 1\n"), "{apps}");
    assert!(
        apps.contains("app bulk5311 class 1:30 (low) remark cs1\n"),
        "{apps}"
    );
    assert!(!apps.contains("tree down"), "down has no apps: {apps}");
    let (code, j, err) = weir_cli(&lab, &["show", "apps", "-j"]);
    assert_eq!(code, 0, "{err}");
    let j: Value = serde_json::from_str(&j).expect("JSON");
    let app = &j[0]["apps"][0];
    assert_eq!(j[0]["tree"], "up", "{j}");
    assert_eq!(app["flows"], 1, "one UDP flow on 5311: {j}");
    // 3 s at 5 Mbit/s of 1000-byte datagrams: about 1875 packets.
    let packets = app["packets"].as_u64().expect("packets");
    assert!((1500..=2300).contains(&packets), "{j}");
    assert_eq!(j[0]["engine"]["decided"]["port"], 1, "{j}");
    assert!(j[0]["table"]["live"].as_u64().expect("live") >= 2, "{j}");

    let (code, flows, err) = weir_cli(&lab, &["show", "flows", "--tree", "up", "-j"]);
    assert_eq!(code, 0, "{err}");
    let flows: Value = serde_json::from_str(&flows).expect("JSON");
    let list = flows[0]["flows"].as_array().expect("flows");
    let udp = list
        .iter()
        .find(|f| f["protocol"] == "udp" && (f["dport"] == 5311 || f["sport"] == 5311))
        .unwrap_or_else(|| panic!("no UDP flow on 5311: {flows}"));
    assert_eq!(udp["app"], "bulk5311", "{udp}");
    assert_eq!(udp["class"], "1:30");
    assert_eq!(udp["remark"], "cs1");
    assert_eq!(udp["how"], "port");
    assert_eq!(udp["packets"].as_u64(), Some(packets), "{udp}");
    // The iperf3 control connection (TCP 5311) is no app's.
    assert!(
        list.iter()
            .any(|f| f["protocol"] == "tcp" && f["app"].is_null() && f["how"] == "none"),
        "{flows}"
    );
    let (code, text, err) = weir_cli(&lab, &["show", "flows", "--app", "bulk5311"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        text.contains("app bulk5311 class 1:30 (low) remark cs1 how port"),
        "{text}"
    );
    let (code, _, err) = weir_cli(&lab, &["show", "flows", "--app", "nosuch"]);
    assert_eq!(code, 2, "an unknown app is refused");
    assert!(err.contains("no app named nosuch; apps: bulk5311"), "{err}");
    let (code, _, err) = weir_cli(&lab, &["show", "flows", "--tree", "down"]);
    assert_eq!(code, 2);
    assert!(err.contains("tree down has no apps"), "{err}");

    let metrics = scrape(&lab);
    let line = format!("weir_app_packets_total{{tree=\"up\",app=\"bulk5311\"}} {packets}");
    assert!(
        metrics.lines().any(|l| l == line),
        "no {line} in:\n{metrics}"
    );
    assert!(metrics.contains("weir_flow_table_capacity{tree=\"up\"} 65536"));
    assert!(!metrics.contains("weir_flow_table_flows{tree=\"down\"}"));
    // CS1 on the way out: every frame of the flow was remarked (by the
    // worker of the upload tree; the other worker's count is added).
    let remarked: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("weir_worker_remarked_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(
        remarked >= packets as f64,
        "remarked {remarked} of {packets}"
    );
    eprintln!("{apps}{text}");

    let report = lab.stop_weir();
    assert_eq!(report["accounting"]["balanced"], true);
    let db = lab.path("history.db");
    let hist = lab::run_limited(
        &[
            lab::weir_bin(),
            "history",
            "--db",
            db.to_str().expect("UTF-8"),
            "--app",
            "bulk5311",
            "-j",
        ],
        Duration::from_secs(20),
    );
    assert!(
        hist.status.success(),
        "{}",
        String::from_utf8_lossy(&hist.stderr)
    );
    let h: Value = serde_json::from_slice(&hist.stdout).expect("JSON");
    let recorded = h["apps"][0]["packets"].as_u64().expect("packets");
    // The history starts at the second tick: at most the first second's
    // packets are before it.
    assert!(recorded > 0 && recorded <= packets, "{h}");
    assert_eq!(h["apps"][0]["class"], "1:30", "{h}");
}
