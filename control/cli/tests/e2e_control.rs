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

use lab::{Host, Lab, Rate};

const SECS: u32 = 10;
/// When, after the client starts, the change is made.
const CHANGE_AT: f64 = 4.5;

/// A copy of config/lab.toml as it is (tc's default bursts and pfifo
/// depth), which the reload test can overwrite.
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

/// Runs one EF flow from `from` (A through weir, A2 through the kernel
/// twin) for SECS seconds, calling `at_change` CHANGE_AT seconds after the
/// client started; returns the frame rate at the receiver before and after
/// (whole one-second intervals, skipping the first second of each part).
fn ef_flow_with_change(lab: &mut Lab, from: Host, at_change: impl FnOnce(&mut Lab)) -> (f64, f64) {
    let limit = Duration::from_secs(u64::from(SECS) + 20);
    let server = lab.iperf3_server(from.other(), 5301, limit);
    let t0 = Instant::now();
    let t = SECS.to_string();
    let client = lab.iperf3_client(
        from,
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

/// The two rates of a run, as `lab::rate_test` judges them.
fn rates(cases: [(&str, f64); 2], (before, after): (f64, f64)) -> Vec<Rate> {
    eprintln!("before {before:.2} Mbit/s, after {after:.2} Mbit/s");
    vec![
        Rate::new(cases[0].0, "1:10", before, cases[0].1),
        Rate::new(cases[1].0, "1:10", after, cases[1].1),
    ]
}

const CHANGE_CASES: [(&str, f64); 2] = [
    ("1:10 alone, before (its ceil)", 60.0),
    ("1:10 alone, after ceil 30mbit", 30.0),
];

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "end-to-end: runs in release (scripts/test.sh)"
)]
fn class_change_halves_a_saturated_class_without_dropping_its_queue() {
    lab::require_root();
    let weir = || {
        let mut lab = Lab::up("cc");
        let cfg = config(&lab);
        lab.start_weir(&cfg);
        let mut answer = None;
        let measured = ef_flow_with_change(&mut lab, Host::A, |lab| {
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
        assert_eq!(report["accounting"]["umem_free_or_fill"], true);
        rates(CHANGE_CASES, measured)
    };
    // The same flow and the same change (`tc class change` at the same
    // moment) through kernel HTB.
    let kernel = || {
        let mut lab = Lab::up("cck");
        let cfg = config(&lab);
        lab.twin(&cfg);
        let measured = ef_flow_with_change(&mut lab, Host::A2, |lab| {
            lab.twin_class_change("up", "1:10", "15mbit", "30mbit");
        });
        rates(CHANGE_CASES, measured)
    };
    lab::rate_test("class change", weir, kernel);
}

const RELOAD_CASES: [(&str, f64); 2] = [
    ("1:10 alone, before the reload", 60.0),
    ("1:10 alone, after a refused reload", 60.0),
];

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "end-to-end: runs in release (scripts/test.sh)"
)]
fn invalid_reload_is_refused_and_the_old_config_keeps_shaping() {
    lab::require_root();
    let weir = || {
        let mut lab = Lab::up("rl");
        let cfg = config(&lab);
        lab.start_weir(&cfg);
        let good = std::fs::read_to_string(&cfg).expect("config");
        let mut answer = None;
        let measured = ef_flow_with_change(&mut lab, Host::A, |lab| {
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
        assert_eq!(lab::tree_of(&report, "up")["frames"]["balanced"], true);
        assert_eq!(report["accounting"]["umem_free_or_fill"], true);
        rates(RELOAD_CASES, measured)
    };
    // Kernel HTB with the same tree and nothing changed.
    let kernel = || {
        let mut lab = Lab::up("rlk");
        let cfg = config(&lab);
        lab.twin(&cfg);
        let measured = ef_flow_with_change(&mut lab, Host::A2, |_| {});
        rates(RELOAD_CASES, measured)
    };
    lab::rate_test("refused reload", weir, kernel);
}

/// GET /metrics from inside the gw namespace (weir serves loopback only),
/// with bash's /dev/tcp so the test needs no HTTP client.
fn scrape(lab: &Lab) -> String {
    let gw = lab.ns_gw();
    let script = "exec 3<>/dev/tcp/127.0.0.1/9469 && printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3";
    lab::run_ok(
        &["ip", "netns", "exec", &gw, "bash", "-c", script],
        Duration::from_secs(10),
    )
}

/// The value of the sample `name{labels}` in an exposition.
fn sample(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sample {name_and_labels} in:\n{text}"))
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "end-to-end: runs in release (scripts/test.sh)"
)]
fn metrics_agree_with_host_b_and_the_api_is_root_only() {
    lab::require_root();
    let _serial = lab::serialize();
    let mut lab = Lab::up("mt");
    let cfg = config(&lab);
    lab.start_weir(&cfg);
    // 20 Mbit/s of EF for 4 s: under 1:10's rate, so nothing is dropped
    // and every frame weir sends reaches B.
    let limit = Duration::from_secs(30);
    let server = lab.iperf3_server(Host::B, 5302, limit);
    let client = lab.iperf3_client(
        Host::A,
        5302,
        &["-u", "-b", "20M", "-l", "1472", "-t", "4", "--dscp", "EF"],
        limit,
    );
    let out = client.wait_with_output().expect("iperf3 client");
    assert!(out.status.success(), "iperf3 client failed");
    let report = server.finish();
    // Every datagram B's iperf3 received, summed over its intervals.
    let payload: f64 = report["intervals"]
        .as_array()
        .expect("iperf3 server intervals")
        .iter()
        .map(|i| i["sum"]["bytes"].as_f64().unwrap_or(0.0))
        .sum();
    let frames_at_b = payload / 1472.0 * 1514.0;
    // The tick publishes once a second: wait for one after the flow.
    thread::sleep(Duration::from_millis(2200));
    let text = scrape(&lab);
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    let sent = sample(
        &text,
        "weir_class_bytes_total{tree=\"up\",class=\"1:10\",name=\"high\"}",
    );
    let err = (sent - frames_at_b) / frames_at_b * 100.0;
    eprintln!("1:10 sent {sent} bytes, B received {frames_at_b:.0} frame bytes ({err:+.3} %)");
    assert!(
        err.abs() <= 1.0,
        "weir says {sent}, B got {frames_at_b:.0} ({err:+.2} %)"
    );
    assert!(
        text.contains("# TYPE weir_tree_sojourn_seconds histogram"),
        "{text}"
    );

    // The HTTP listener is read-only: anything but GET /metrics is a 404.
    let gw = lab.ns_gw();
    let post = lab::run_ok(
        &[
            "ip", "netns", "exec", &gw, "bash", "-c",
            "exec 3<>/dev/tcp/127.0.0.1/9469 && printf 'POST /class HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3",
        ],
        Duration::from_secs(10),
    );
    assert!(post.starts_with("HTTP/1.1 404"), "{post}");
    // Without a token even a well-formed API call is refused.
    let reload = http_post_api(&lab, None, r#"{"cmd":"reload"}"#);
    assert!(reload.starts_with("HTTP/1.1 403"), "{reload}");

    // The API socket is root's: `nobody` can't even connect.
    let sock = lab.path("weir.sock");
    let sock = sock.to_str().expect("UTF-8 path");
    let denied = lab::run_limited(
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            lab::weir_bin(),
            "show",
            "class",
            "--socket",
            sock,
        ],
        Duration::from_secs(10),
    );
    let err_text = String::from_utf8_lossy(&denied.stderr);
    assert_eq!(
        denied.status.code(),
        Some(1),
        "nobody got an answer: {err_text}"
    );
    assert!(err_text.contains("Permission denied"), "{err_text}");
    // Root can.
    let shown = weir_cli(&lab, &["show", "class"]);
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    assert!(String::from_utf8_lossy(&shown.stdout).contains("class htb 1:10"));
    let report = lab.stop_weir();
    assert_eq!(report["accounting"]["balanced"], true);
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "end-to-end: runs in release (scripts/test.sh)"
)]
fn reload_adding_and_removing_classes_drops_nothing_of_untouched_classes() {
    lab::require_root();
    let _serial = lab::serialize();
    let mut lab = Lab::up("rb");
    let cfg = config(&lab);
    lab.start_weir(&cfg);
    let good = std::fs::read_to_string(&cfg).expect("config");
    // The new file: tree up loses 1:20 (and its AF41 filter now points at a
    // new 1:40); 1:10, 1:30 and tree down are untouched.
    let start = good
        .find("[[tree.up.class]]\nid = \"1:20\"")
        .expect("1:20 of tree up");
    let end = start
        + good[start..]
            .find("[[tree.up.class]]\nid = \"1:30\"")
            .expect("1:30 after 1:20");
    let mut edited = format!("{}{}", &good[..start], &good[end..]);
    edited = edited.replacen("flowid = \"1:20\"", "flowid = \"1:40\"", 1);
    edited = edited.replacen(
        "[tree.down]",
        "[[tree.up.class]]\nid = \"1:40\"\nname = \"new\"\nparent = \"1:1\"\nrate = \"10mbit\"\nqdisc = { kind = \"pfifo\" }\n\n[tree.down]",
        1,
    );
    // 20 Mbit/s of EF: below 1:10's rate, so the flow itself drops nothing
    // and every loss would be the reload's.
    let limit = Duration::from_secs(30);
    let server = lab.iperf3_server(Host::B, 5303, limit);
    let client = lab.iperf3_client(
        Host::A,
        5303,
        &["-u", "-b", "20M", "-l", "1472", "-t", "6", "--dscp", "EF"],
        limit,
    );
    thread::sleep(Duration::from_secs(3));
    std::fs::write(&cfg, &edited).expect("write the new file");
    let answer = weir_cli(&lab, &["reload"]);
    let said = String::from_utf8_lossy(&answer.stdout).to_string();
    assert!(
        answer.status.success(),
        "reload failed: {}",
        String::from_utf8_lossy(&answer.stderr)
    );
    assert!(
        said.contains("changed in place: tree up: 1 leaf class(es) removed (1:20), 1 added (1:40)"),
        "{said}"
    );
    let out = client.wait_with_output().expect("iperf3 client");
    assert!(out.status.success(), "iperf3 client failed");
    let json = server.finish();
    let (mut received, mut lost) = (0u64, 0u64);
    for i in json["intervals"].as_array().expect("intervals") {
        received += i["sum"]["packets"].as_u64().unwrap_or(0);
        lost += i["sum"]["lost_packets"].as_u64().unwrap_or(0);
    }
    let stats = lab.weir().stats();
    let report = lab.stop_weir();
    eprintln!("{said}B received {received} datagrams, lost {lost}");
    assert!(received > 5_000, "the flow ran: {received}");
    assert_eq!(lost, 0, "datagrams of the untouched class 1:10 were lost");
    let up = lab::tree_of(&stats, "up");
    assert_eq!(
        lab::num(&up["frames"]["dropped_total"], "dropped_total"),
        0,
        "{up}"
    );
    assert_eq!(up["frames"]["balanced"], true);
    // 1:10 was not touched: its counters went on through the change (a
    // rebuilt tree would have started them from zero), so it counted
    // every datagram B got.
    let ten = lab::class(&stats, "up", "1:10");
    assert!(
        lab::num(&ten["packets"], "packets") >= received,
        "1:10 counted less than B received: {ten}"
    );
    // The changed tree has the new class and not the old one.
    let ids: Vec<&str> = up["classes"]
        .as_array()
        .expect("classes")
        .iter()
        .filter_map(|c| c["classid"].as_str())
        .collect();
    assert_eq!(ids, vec!["1:1", "1:10", "1:30", "1:40"], "{up}");
    assert_eq!(report["accounting"]["balanced"], true);
    assert_eq!(report["accounting"]["umem_free_or_fill"], true);
}

/// `POST /api` to weir's HTTP listener in the lab (bash's /dev/tcp: no
/// HTTP client needed), with an optional bearer token; the raw response.
fn http_post_api(lab: &Lab, token: Option<&str>, body: &str) -> String {
    let gw = lab.ns_gw();
    let auth = token.map_or(String::new(), |t| {
        format!("Authorization: Bearer {t}\\r\\n")
    });
    let script = format!(
        "exec 3<>/dev/tcp/127.0.0.1/9469 && printf 'POST /api HTTP/1.1\\r\\nHost: weir\\r\\n{auth}Content-Length: {}\\r\\n\\r\\n%s' \"$0\" >&3 && cat <&3",
        body.len()
    );
    lab::run_ok(
        &["ip", "netns", "exec", &gw, "bash", "-c", &script, body],
        Duration::from_secs(20),
    )
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "end-to-end: runs in release (scripts/test.sh)"
)]
fn http_api_changes_a_class_only_with_the_configured_token() {
    use std::os::unix::fs::PermissionsExt;
    lab::require_root();
    let _serial = lab::serialize();
    let mut lab = Lab::up("tok");
    let cfg = config(&lab);
    let token = "5f0c1b2a9e8d7c6b5a49382716050f1e";
    let token_file = lab.write("http.token", &format!("{token}\n"));
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600))
        .expect("chmod 600");
    lab.start_weir_with(
        &cfg,
        &["--http-token-file", token_file.to_str().expect("UTF-8")],
    );
    let change = r#"{"cmd":"class_change","tree":"up","class":"1:10","ceil":"40mbit"}"#;
    let wrong = http_post_api(&lab, Some("not-the-token-not-the-token"), change);
    assert!(wrong.starts_with("HTTP/1.1 401"), "{wrong}");
    let ceil = |lab: &mut Lab| {
        let stats = lab.weir().stats();
        lab::num(&lab::class(&stats, "up", "1:10")["ceil"], "ceil")
    };
    assert_eq!(
        ceil(&mut lab),
        60_000_000 / 8,
        "the wrong token changed nothing"
    );
    let ok = http_post_api(&lab, Some(token), change);
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok.contains("ceil 60Mbit → 40Mbit"), "{ok}");
    assert_eq!(ceil(&mut lab), 40_000_000 / 8);
    let bad = http_post_api(
        &lab,
        Some(token),
        r#"{"cmd":"class_change","class":"9:99","rate":"1mbit"}"#,
    );
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    let report = lab.stop_weir();
    assert_eq!(report["accounting"]["balanced"], true);
}

/// `action = "drop"` (tc's `action drop`): a filter of the upload tree
/// drops icmp from A to B and counts it, in the stats, `weir show filter`
/// and `/metrics`, frame accounting balanced.
#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "end-to-end: runs in release (scripts/test.sh)"
)]
fn a_drop_filter_drops_and_counts_what_it_matches() {
    lab::require_root();
    let _serial = lab::serialize();
    let mut lab = Lab::up("df");
    let text = std::fs::read_to_string(lab::repo_root().join("config/lab.toml"))
        .expect("config/lab.toml")
        .replacen(
            "[[tree.up.filter]]",
            "[[tree.up.filter]]\nprio = 1\naction = \"drop\"\nip_proto = \"icmp\"\ndst = \"198.18.0.2\"\n\n[[tree.up.filter]]",
            1,
        );
    let cfg = lab.write("drop.toml", &text);
    lab.start_weir(&cfg);
    let limit = Duration::from_secs(15);
    let ping = lab.output(
        Host::A,
        &["ping", "-c", "5", "-i", "0.2", "-W", "1", lab::ADDR_B],
        limit,
    );
    let said = String::from_utf8_lossy(&ping.stdout);
    assert!(said.contains("5 packets transmitted, 0 received"), "{said}");
    // B's echo requests go through the download tree, which has no drop
    // filter; A's replies are icmp to B on the upload tree: dropped too.
    let back = lab.output(
        Host::B,
        &["ping", "-c", "2", "-i", "0.2", "-W", "2", lab::ADDR_A],
        limit,
    );
    assert!(
        String::from_utf8_lossy(&back.stdout).contains("2 packets transmitted, 0 received"),
        "{}",
        String::from_utf8_lossy(&back.stdout)
    );
    let stats = lab.weir().stats();
    let up = lab::tree_of(&stats, "up");
    let filters = up["drop_filters"].as_array().expect("drop_filters");
    assert_eq!(filters.len(), 1, "{up}");
    assert_eq!(filters[0]["index"], 0, "{up}");
    assert_eq!(filters[0]["match"], "ip_proto 1 dst 198.18.0.2/32", "{up}");
    // 5 echo requests from A, 2 echo replies from A to B.
    let dropped = lab::num(&filters[0]["dropped"], "dropped");
    assert_eq!(dropped, 7, "{up}");
    assert_eq!(
        lab::num(&up["frames"]["dropped"]["filtered"], "filtered"),
        7,
        "{up}"
    );
    assert_eq!(up["frames"]["balanced"], true);
    let (code, out, err) = lab.cli(&["show", "filter"]);
    assert_eq!(code, 0, "weir show filter: {err}");
    assert!(out.contains("action drop (dropped 7 pkt)"), "{out}");
    let metrics = scrape(&lab);
    assert!(
        metrics.contains("weir_filter_dropped_total{tree=\"up\",filter=\"0\",pref=\"1\",match=\"ip_proto 1 dst 198.18.0.2/32\"} 7"),
        "{metrics}"
    );
    let report = lab.stop_weir();
    assert_eq!(report["accounting"]["balanced"], true);
    assert_eq!(report["accounting"]["umem_free_or_fill"], true);
}
