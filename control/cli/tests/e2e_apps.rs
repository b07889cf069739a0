//! End-to-end apps (issue 12): flows classified by what they are, in both
//! directions, on the veth lab.
//!
//! One pair, the upload tree `up` and the download tree `down` carrying
//! the same apps (see [`config_text`]):
//!
//! - **TLS SNI, both directions**: a download from an `openssl s_server`
//!   in B asked for as `video.test` is the app `video`, class 1:20 (ceil
//!   20 Mbit/s under a 50 Mbit/s root whose default class may take all
//!   50). Only the upload tree sees the ClientHello; the download tree
//!   learns the decision from it. The download is shaped to 1:20's ceil
//!   (within `lab::RATE_PCT`, as the other rate tests), and 1:20 of both
//!   trees counted the flow's packets.
//! - **Bulk → CS1**: an iperf3 TCP flow on a port no rule lists becomes
//!   `bulk` within 2 s and leaves remarked CS1 (captured at B).
//! - **Voice → EF, low delay under bulk**: irtt's UDP port goes to the
//!   voice class 1:10 and is remarked EF (captured at both ends); while
//!   iperf3 TCP streams saturate the root, its packets take at most 1 ms
//!   through weir (99th percentile, by the kernel's timestamps at A's and
//!   B's ports) and irtt's median stays within 1 ms of idle, while the
//!   same irtt traffic on a port no app lists waits in the bulk queue.
//! - **Wash**: a tree with `wash = true` clears the DSCP of a frame sent
//!   as EF (ECN bits kept, IPv4 header checksum valid); the other tree
//!   (not washed) passes it as it came.
//!
//! Captures are tcpdump pcap files read back ([`lab::read_pcap`]), so the
//! DSCP and the checksum are checked on the bytes that arrived.
//!
//! Needs root and a release build (scripts/test.sh runs it):
//! `cargo test -p weir --release --test e2e_apps`.

mod lab;

use std::fs;
use std::path::PathBuf;
use std::process::Child;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use lab::{ip, read_pcap, terminate, Capture, Host, Lab, Packet, Rate};
use weir_testkit::host::{self, CpuTimes};

/// Bound of a short command (ip, ss, openssl req, ping).
const T: Duration = Duration::from_secs(20);

/// The root (1:1) of both trees, Mbit/s: low enough that one TCP flow
/// saturates it on this 2-vCPU lab.
const ROOT_MBIT: f64 = 50.0;
/// The video class's ceil, Mbit/s: well under the root and under the
/// default class's ceil (the root's), so a download shaped to it is one
/// that went to 1:20 and nowhere else.
const VIDEO_CEIL_MBIT: f64 = 20.0;

/// DSCP values as they sit in the IPv4 TOS byte (DSCP << 2).
const TOS_EF: u8 = 46 << 2;
const TOS_CS1: u8 = 8 << 2;

/// The lab's pair with both trees carrying the same classes and apps.
/// `down_default` is the download tree's default class: 1:30 for weir;
/// the kernel twin, which has no apps (`weir tc` cannot express them),
/// gets 1:20 so kernel HTB shapes the same download in the same class.
///
/// tc's defaults everywhere (bursts, pfifo leaves of 1000 packets) but
/// r2q 100, as config/lab.toml and for the same reason: rate/10 of the
/// 50 Mbit/s root is above the 200000-byte quantum clamp.
fn config_text(down_default: &str) -> String {
    let tree = |name: &str, default: &str| {
        format!(
            r#"
[tree.{name}]
default = "{default}"
link = "100mbit"
r2q = 100

[[tree.{name}.class]]
id = "1:1"
name = "root"
rate = "50mbit"
ceil = "50mbit"

# Voice: far more rate than irtt needs (69 kbit/s), the lowest prio value,
# so its packets never wait for tokens or behind another class.
[[tree.{name}.class]]
id = "1:10"
name = "voice"
parent = "1:1"
rate = "5mbit"
ceil = "50mbit"
prio = 1

[[tree.{name}.class]]
id = "1:20"
name = "video"
parent = "1:1"
rate = "10mbit"
ceil = "20mbit"
prio = 2

[[tree.{name}.class]]
id = "1:30"
name = "other"
parent = "1:1"
rate = "35mbit"
ceil = "50mbit"
prio = 3

[[tree.{name}.app]]
name = "voice"
class = "1:10"
dscp = "EF"

# irtt's default port.
[[tree.{name}.app.match]]
prio = 10
protocol = "udp"
ports = [2112]

[[tree.{name}.app]]
name = "video"
class = "1:20"

[[tree.{name}.app.match]]
prio = 20
sni = ["video.test"]

[[tree.{name}.app]]
name = "bulk"
class = "1:30"
dscp = "CS1"

# 1000 packets/s: iperf3's TCP flow sends about 4100 data packets/s at the
# 50 Mbit/s root (and the reverse direction about half as many ACKs),
# irtt 50/s. The video download is above it too, but its rule (prio 20)
# decides first and a decided flow is only moved by moving rules that come
# before its own.
[[tree.{name}.app.match]]
prio = 30
bulk = {{ pps = 1000 }}
"#
        )
    };
    format!(
        r#"[[pair]]
name = "lab"
inside = "weir-in"
outside = "weir-out"
upload = "up"
download = "down"
{}{}"#,
        tree("up", "1:30"),
        tree("down", down_default)
    )
}

/// The apps config, checked by `weir check` so a config error shows as
/// such rather than as weir not starting.
fn config(lab: &Lab, down_default: &str) -> PathBuf {
    let path = lab.write("apps.toml", &config_text(down_default));
    let shown = lab::run_ok(
        &[lab::weir_bin(), "check", path.to_str().expect("UTF-8 path")],
        T,
    );
    assert!(
        shown.contains("app video class 1:20"),
        "weir check does not show the apps:\n{shown}"
    );
    path
}

// ---------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------

/// Frame bytes `dev` of `host` received so far (veth counts whole
/// Ethernet frames, the bytes HTB charges).
fn rx_bytes(lab: &Lab, host: Host, dev: &str) -> u64 {
    lab::num(
        &lab.link_stats(host, dev)["rx"]["bytes"],
        "stats64.rx.bytes",
    )
}

/// Waits until something on `host` listens on UDP `port`.
fn wait_udp(lab: &Lab, host: Host, port: u16) {
    let filter = format!("sport = :{port}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = lab.run(host, &["ss", "-Hlun", &filter], T);
        if !out.trim().is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "nothing listens on UDP {port} on {host:?} after 5 s"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for a child bounded by its own timeout(1) and returns its output.
fn finish(child: Child, what: &str) -> std::process::Output {
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn packets_of(report: &Value, tree: &str, classid: &str) -> u64 {
    lab::num(
        &lab::class(report, tree, classid)["packets"],
        &format!("{tree} {classid} packets"),
    )
}

// ---------------------------------------------------------------------
// 1. TLS SNI, both directions
// ---------------------------------------------------------------------

/// Bytes of the file B serves: more than even the 50 Mbit/s root carries
/// in the download's whole `DOWNLOAD_SECS`, so the download is still
/// running when the window closes, also when it was not shaped to 1:20
/// (and the rate, not curl's exit, says what went wrong).
const FILE_BYTES: usize = 64 << 20;
/// How long the download runs (curl --max-time).
const DOWNLOAD_SECS: u64 = 10;
/// The measured window, seconds after curl starts: after the handshake
/// and TCP's ramp, before curl gives up.
const WINDOW: (f64, f64) = (2.0, 8.0);

/// Makes a self-signed certificate for video.test and the file to serve
/// in the lab's scratch directory.
fn tls_files(lab: &Lab) {
    let dir = lab.path("");
    let dir = dir.to_str().expect("UTF-8 path");
    lab::run_ok(
        &[
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=video.test",
            "-keyout",
            &format!("{dir}/key.pem"),
            "-out",
            &format!("{dir}/cert.pem"),
        ],
        T,
    );
    fs::write(lab.path("file"), vec![0u8; FILE_BYTES]).expect("write the served file");
}

/// Downloads https://video.test/file from `server` (B or B2) to the host
/// on the other side, and returns the frame rate that host's a0 received
/// over [`WINDOW`], Mbit/s.
fn tls_download(lab: &Lab, server: Host) -> f64 {
    tls_files(lab);
    let dir = lab.path("");
    let limit = Duration::from_secs(DOWNLOAD_SECS + 10);
    // s_server -WWW serves files from its working directory; one
    // connection, then it exits.
    let script = format!(
        "cd '{}' && exec openssl s_server -quiet -naccept 1 -WWW -accept {}:443 -cert cert.pem -key key.pem",
        dir.display(),
        server.addr()
    );
    // A loss-based congestion control for the download: this VM's
    // default is BBR, which paces at its estimate of the bottleneck and
    // drains the queue every 10 s (ProbeRTT), so the class would not stay
    // backlogged and the rate would measure BBR (a run came out 5 % short
    // on a quiet host). CUBIC fills the class's queue, as the UDP floods
    // of the other rate tests do, and HTB alone decides the rate. It is
    // set on the server's route to the client (a namespace may only make
    // the machine's allowed algorithms its default, and that list is the
    // machine's).
    let host_route = format!("{}/32", server.other().addr());
    lab.run(
        server,
        &[
            "ip",
            "route",
            "replace",
            &host_route,
            "dev",
            "b0",
            "src",
            server.addr(),
            "congctl",
            "cubic",
        ],
        T,
    );
    let mut srv = lab.spawn(server, &["sh", "-c", &script], limit);
    weir_testkit::netns::wait_listening(&lab.ns(server), 443, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("openssl s_server: {e}"));
    let client = server.other();
    let resolve = format!("video.test:443:{}", server.addr());
    let max_time = DOWNLOAD_SECS.to_string();
    let before = rx_bytes(lab, client, "a0");
    let t0 = Instant::now();
    let curl = lab.spawn(
        client,
        &[
            "curl",
            "-sS",
            "-k",
            "--max-time",
            &max_time,
            "--resolve",
            &resolve,
            "https://video.test/file",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_download}",
        ],
        limit,
    );
    thread::sleep(Duration::from_secs_f64(WINDOW.0));
    let (b0, t_0) = (rx_bytes(lab, client, "a0"), Instant::now());
    thread::sleep(Duration::from_secs_f64(WINDOW.1 - WINDOW.0) / 2);
    let sock = lab.run(server, &["ss", "-tinH", "sport = :443"], T);
    assert!(
        sock.contains(" cubic "),
        "the download is not using CUBIC: {sock}"
    );
    thread::sleep(Duration::from_secs_f64(WINDOW.1 - WINDOW.0) / 2);
    let (b1, t_1) = (rx_bytes(lab, client, "a0"), Instant::now());
    let out = finish(curl, "curl");
    let done = t0.elapsed().as_secs_f64();
    terminate(&mut srv);
    let text = String::from_utf8_lossy(&out.stdout);
    // 28: --max-time reached, which is the plan (the file outlasts it).
    assert!(
        out.status.code() == Some(28) && text.starts_with("200 "),
        "curl did not download until its --max-time ({}, after {done:.1} s): {text} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        b0 > before,
        "nothing arrived at {client:?} in the first {} s",
        WINDOW.0
    );
    (b1 - b0) as f64 * 8.0 / (t_1 - t_0).as_secs_f64() / 1e6
}

fn video_rate(achieved: f64) -> Vec<Rate> {
    vec![Rate {
        case: "B→A TLS video.test download".to_string(),
        class: "1:20".to_string(),
        achieved,
        promised: VIDEO_CEIL_MBIT,
        parent: ROOT_MBIT,
        pct: lab::RATE_PCT,
    }]
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "end-to-end: runs in release (scripts/test.sh)"
)]
fn tls_sni_classifies_both_directions_and_shapes_the_download_to_its_class() {
    lab::require_root();
    let weir = || {
        let mut lab = Lab::up("as");
        let cfg = config(&lab, "1:30");
        lab.start_weir(&cfg);
        let achieved = tls_download(&lab, Host::B);
        let report = lab.stop_weir();
        // The data went down through 1:20, learnt from the upload tree's
        // decision (the down tree never sees the ClientHello); the few
        // frames before it arrived (SYN-ACK, ServerHello) may be in the
        // default class. The upload direction (ClientHello, ACKs) is in
        // 1:20 of the up tree once the ClientHello decided it.
        let (down_video, down_other) = (
            packets_of(&report, "down", "1:20"),
            packets_of(&report, "down", "1:30"),
        );
        let (up_video, up_other) = (
            packets_of(&report, "up", "1:20"),
            packets_of(&report, "up", "1:30"),
        );
        lab::say(&format!(
            "TLS video.test: down 1:20 {down_video} packets, 1:30 {down_other}; up 1:20 {up_video}, 1:30 {up_other}"
        ));
        // 6 s of the window alone are ~10,000 full frames at 20 Mbit/s.
        assert!(
            down_video > 10_000 && down_other < 20,
            "the download was not in the down tree's 1:20: 1:20 {down_video} packets, 1:30 {down_other}"
        );
        // At least one ACK per two segments (delayed ACKs).
        assert!(
            up_video > down_video / 4 && up_other < 20,
            "the upload side of the download was not in the up tree's 1:20: 1:20 {up_video} packets, 1:30 {up_other}"
        );
        video_rate(achieved)
    };
    let kernel = || {
        let mut lab = Lab::up("ask");
        let cfg = config(&lab, "1:20");
        lab.twin(&cfg);
        video_rate(tls_download(&lab, Host::B2))
    };
    lab::rate_test("apps: TLS SNI video", weir, kernel);
}

// ---------------------------------------------------------------------
// 2. Bulk → CS1
// ---------------------------------------------------------------------

/// How long after its first packet a flow must be bulk: one bulk window
/// (1 s) to measure it, plus the window it started in.
const BULK_BY_SECS: f64 = 2.0;

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "end-to-end: runs in release (scripts/test.sh)"
)]
fn an_unlisted_tcp_flow_becomes_bulk_and_leaves_as_cs1() {
    lab::require_root();
    let _serial = lab::serialize();
    let mut lab = Lab::up("ab");
    let cfg = config(&lab, "1:30");
    lab.start_weir(&cfg);
    let secs = 6;
    let limit = Duration::from_secs(secs + 20);
    // At B only A's data segments: both of iperf3's connections go to
    // 5201 (control and data); the data one is the one with the most.
    let cap = Capture::start(
        &lab,
        Host::B,
        "bulk.pcap",
        "in",
        "tcp and dst port 5201",
        400_000,
        limit,
    );
    let server = lab.iperf3_server(Host::B, 5201, limit);
    let t = secs.to_string();
    let client = lab.iperf3_client(Host::A, 5201, &["-t", &t], limit);
    let out = finish(client, "iperf3 client");
    assert!(
        out.status.success(),
        "iperf3 client failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let _ = server.finish();
    let packets = cap.stop();
    let report = lab.stop_weir();

    let (a, b) = (ip(lab::ADDR_A), ip(lab::ADDR_B));
    let data: Vec<&Packet> = packets
        .iter()
        .filter(|p| p.proto == 6 && p.src == a && p.dst == b && p.dport == 5201 && p.payload > 0)
        .collect();
    let mut by_port = std::collections::BTreeMap::<u16, usize>::new();
    for p in &data {
        *by_port.entry(p.sport).or_default() += 1;
    }
    let (&port, _) = by_port
        .iter()
        .max_by_key(|(_, n)| **n)
        .unwrap_or_else(|| panic!("no data segments from A captured at B"));
    let flow: Vec<&&Packet> = data.iter().filter(|p| p.sport == port).collect();
    // The SYN is not in `data` (no payload): the flow's first packet.
    let first = packets
        .iter()
        .filter(|p| p.src == a && p.sport == port)
        .map(|p| p.ts)
        .fold(f64::INFINITY, f64::min);
    let late: Vec<&&&Packet> = flow
        .iter()
        .filter(|p| p.ts >= first + BULK_BY_SECS)
        .collect();
    let not_cs1: Vec<String> = late
        .iter()
        .filter(|p| p.tos >> 2 != TOS_CS1 >> 2)
        .take(5)
        .map(|p| format!("{:.3} s tos {:#04x}", p.ts - first, p.tos))
        .collect();
    let first_cs1 = flow
        .iter()
        .find(|p| p.tos >> 2 == TOS_CS1 >> 2)
        .map_or("never".to_string(), |p| format!("{:.3} s", p.ts - first));
    lab::say(&format!(
        "bulk: {} data segments of port {port} captured, {} of them {BULK_BY_SECS} s or more after its SYN; the first CS1 one at {first_cs1}",
        flow.len(),
        late.len(),
    ));
    // Over 4 s at up to 50 Mbit/s; tcpdump may miss some on a busy VM,
    // not most.
    assert!(
        late.len() > 2_000,
        "only {} data segments captured after {BULK_BY_SECS} s",
        late.len()
    );
    assert!(
        not_cs1.is_empty(),
        "data segments of the iperf3 flow more than {BULK_BY_SECS} s after its SYN are not CS1: {not_cs1:?} (of {})",
        late.len()
    );
    assert!(
        late.iter().all(|p| p.cksum_ok),
        "a remarked segment arrived with a bad IPv4 header checksum"
    );
    // The flow went to the bulk app's class (1:30, also the default) and
    // filled the root.
    assert!(packets_of(&report, "up", "1:30") >= flow.len() as u64);
}

// ---------------------------------------------------------------------
// 3. Voice → EF, low delay under bulk
// ---------------------------------------------------------------------

/// The voice flow's 99th percentile of time through weir under bulk, and
/// how much more irtt's median one-way delay may be than when idle.
///
/// Runs on this 2-vCPU VM put the voice p99 through weir at 0.12 ms (max
/// 0.18 ms) with the unlisted flow at 15 ms: weir's worker runs SCHED_FIFO,
/// so the busy host does not delay it, and the p99 of ~400 packets leaves
/// room for three that a burst of hypervisor steal might hold up. A CI
/// run had it at 1.17 ms (max 1.51 ms) in one attempt: a longer burst than
/// that is retried when the attempt shows the host held weir up.
const VOICE_MARGIN_NS: u64 = 1_000_000;

/// UDP ports of B's irtt server: the voice app's (irtt's default), and one
/// no app lists, whose flow stays in the default class with the bulk flow.
const VOICE_PORT: u16 = 2112;
const CONTROL_PORT: u16 = 2113;

/// Starts an irtt client on A towards B's server on `port`, `secs` long at
/// the rate of a voice call (a 172-byte packet every 20 ms, unmarked),
/// writing its JSON to the scratch file `name`.
fn irtt_start(lab: &Lab, port: u16, name: &str, secs: u32) -> Child {
    let path = lab.path(name);
    let d = format!("{secs}s");
    let server = format!("{}:{port}", lab::ADDR_B);
    lab.spawn(
        Host::A,
        &[
            "irtt",
            "client",
            "-i",
            "20ms",
            "-l",
            "172",
            "--dscp=0",
            "-d",
            &d,
            "-Q",
            "-o",
            path.to_str().expect("UTF-8 path"),
            &server,
        ],
        Duration::from_secs(u64::from(secs) + 15),
    )
}

/// Waits for an irtt client of [`irtt_start`] and returns its JSON.
fn irtt_finish(lab: &Lab, child: Child, name: &str) -> Value {
    let out = finish(child, "irtt client");
    assert!(
        out.status.success(),
        "irtt client ({name}) failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let path = lab.path(name);
    let text = fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("irtt wrote no {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("irtt's {name} is not JSON: {e}"))
}

/// The one-way delays A→B of an irtt run (A and B share the machine's
/// clock, so they are exact), sorted, ns; and how many packets were lost.
fn send_delays(run: &Value) -> (Vec<u64>, usize) {
    let trips = run["round_trips"]
        .as_array()
        .unwrap_or_else(|| panic!("no round_trips in irtt's output"));
    let mut d: Vec<u64> = trips
        .iter()
        .filter_map(|t| t["delay"]["send"].as_u64())
        .collect();
    d.sort_unstable();
    let lost = trips.len() - d.len();
    (d, lost)
}

/// How long the packets to B's UDP `port` took through weir, ns, sorted:
/// from leaving A's a0 (`sent`, captured there) to arriving at B's b0
/// (`arrived`), matched by IPv4 identification (irtt's client socket is
/// connected, so Linux numbers its packets one after another). These
/// timestamps are the kernel's as the frames pass each port, so unlike
/// irtt's own (taken in irtt, a process that waits for a CPU like any
/// other), they hold the time in weir and next to nothing else.
fn transits(sent: &[Packet], arrived: &[Packet], port: u16) -> Vec<u64> {
    let mut at_a = std::collections::HashMap::new();
    for p in sent.iter().filter(|p| p.proto == 17 && p.dport == port) {
        assert!(
            at_a.insert(p.id, p.ts).is_none(),
            "two packets to port {port} with IPv4 id {} at A: cannot match them",
            p.id
        );
    }
    let mut d: Vec<u64> = arrived
        .iter()
        .filter(|p| p.proto == 17 && p.dport == port)
        .filter_map(|p| at_a.get(&p.id).map(|t| ((p.ts - t) * 1e9).max(0.0) as u64))
        .collect();
    d.sort_unstable();
    d
}

/// The `q` quantile of sorted values (nearest rank).
fn quantile(sorted: &[u64], q: f64) -> u64 {
    assert!(!sorted.is_empty(), "no values");
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "end-to-end: runs in release (scripts/test.sh)"
)]
fn voice_is_marked_ef_and_keeps_its_delay_under_a_saturating_bulk_flow() {
    lab::require_root();
    let _serial = lab::serialize();
    for attempt in 1..=lab::HOST_ATTEMPTS {
        let start = CpuTimes::now();
        let run = voice_attempt();
        let steal = start.and_then(|s| s.worst_steal_pct_since());
        let late = worst_wake_late_ns(&run.report);
        let ms = |ns: u64| ns as f64 / 1e6;
        let host = format!(
            "steal {}, weir's worker woke up to {:.3} ms late for a deadline",
            steal.map_or("unknown".to_string(), |p| format!("{p:.1} % of a CPU")),
            ms(late)
        );
        let verdict = format!(
            "voice: attempt {attempt}: through weir under bulk, voice p99 {:.3} ms (allowed {:.1} ms), max {:.3} ms ({host})",
            ms(run.voice_p99),
            ms(VOICE_MARGIN_NS),
            ms(run.voice_max)
        );
        lab::say(&verdict);
        if run.misses.is_empty() {
            lab::say(&format!("voice: PASS on attempt {attempt}"));
            return;
        }
        // A miss (the voice delay, or bulk flows that did not fill the
        // queue it must skip) is measured again only when the host held
        // weir up: the hypervisor took a CPU, or the worker (SCHED_FIFO,
        // so no process here delays it) woke later than the whole margin.
        // A miss on a host that ran weir on time is weir's, and fails at
        // once.
        let disturbed = steal.is_some_and(|p| p > lab::STEAL_RETRY_PCT) || late > VOICE_MARGIN_NS;
        assert!(
            disturbed && attempt < lab::HOST_ATTEMPTS,
            "{}\n{verdict}{}\n{}",
            run.misses.join("\n"),
            if disturbed {
                "; every attempt was disturbed"
            } else {
                "; the host ran weir on time"
            },
            lab::wake_note(&run.report)
        );
        let quiet = host::wait_for_quiet_host(lab::STEAL_RETRY_PCT, Duration::from_secs(30));
        lab::say(&format!(
            "voice: attempt {attempt} missed on a disturbed host ({}); host steal now {}; running it again",
            run.misses.join("; "),
            quiet.map_or("unknown".to_string(), |q| format!("{q:.1} %"))
        ));
    }
}

/// What one attempt of the voice test measured through weir, ns, and
/// weir's report.
struct VoiceRun {
    /// What missed (empty: the attempt passed).
    misses: Vec<String>,
    voice_p99: u64,
    voice_max: u64,
    report: Value,
}

/// The largest deadline wake-up lateness of any worker in a `weir run`
/// report, ns (the upper bound of its histogram bucket).
fn worst_wake_late_ns(report: &Value) -> u64 {
    report["workers"]
        .as_array()
        .map(|ws| {
            ws.iter()
                .filter_map(|w| w["wake_late"]["max_ns_at_most"].as_u64())
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

/// One attempt: a lab, weir, the bulk flows and the two irtt flows; every
/// check but the voice transit p99, which the caller judges.
fn voice_attempt() -> VoiceRun {
    let mut lab = Lab::up("av");
    let cfg = config(&lab, "1:30");
    lab.start_weir(&cfg);
    let bind = format!("{0}:{VOICE_PORT},{0}:{CONTROL_PORT}", lab::ADDR_B);
    let mut irtt_server = lab.spawn(
        Host::B,
        &["irtt", "server", "-b", &bind],
        Duration::from_secs(90),
    );
    wait_udp(&lab, Host::B, VOICE_PORT);
    wait_udp(&lab, Host::B, CONTROL_PORT);

    let idle = irtt_finish(
        &lab,
        irtt_start(&lab, VOICE_PORT, "idle.json", 5),
        "idle.json",
    );

    let bulk_secs = 14;
    let limit = Duration::from_secs(bulk_secs + 20);
    let filter = format!("udp portrange {VOICE_PORT}-{CONTROL_PORT}");
    let at_b = Capture::start(&lab, Host::B, "voice-b.pcap", "in", &filter, 20_000, limit);
    let at_a = Capture::start(&lab, Host::A, "voice-a.pcap", "in", &filter, 20_000, limit);
    let out_a = Capture::start(
        &lab,
        Host::A,
        "voice-a-out.pcap",
        "out",
        &filter,
        20_000,
        limit,
    );
    let server = lab.iperf3_server(Host::B, 5201, limit);
    let t = bulk_secs.to_string();
    // Four streams: together they keep a standing queue of several ms in
    // the default class (one stream's window stays small on this path).
    let client = lab.iperf3_client(Host::A, 5201, &["-t", &t, "-P", "4"], limit);
    // Time for the bulk flows to fill the root and their class's queue.
    thread::sleep(Duration::from_secs(3));
    // The voice flow and, beside it, the same traffic on a port no app
    // lists: that one waits in the bulk flows' queue, and shows how much
    // a voice packet would have waited there.
    let voice = irtt_start(&lab, VOICE_PORT, "loaded.json", 8);
    let control = irtt_start(&lab, CONTROL_PORT, "control.json", 8);
    let loaded = irtt_finish(&lab, voice, "loaded.json");
    let control = irtt_finish(&lab, control, "control.json");
    let out = finish(client, "iperf3 client");
    let _ = server.finish();
    let bulk: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "iperf3 client printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    terminate(&mut irtt_server);
    let sent_a = out_a.stop();
    let from_b = at_b.stop();
    let from_a = at_a.stop();
    let report = lab.stop_weir();

    // The bulk flows saturated the root (goodput of 1448-byte segments in
    // 1514-byte frames).
    let goodput = bulk["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or_else(|| panic!("no sum_received in iperf3's report: {bulk}"))
        / 1e6;
    let (idle_d, idle_lost) = send_delays(&idle);
    let (loaded_d, loaded_lost) = send_delays(&loaded);
    let (control_d, control_lost) = send_delays(&control);
    let ms = |ns: u64| ns as f64 / 1e6;
    let stats = |d: &[u64], lost: usize| {
        format!(
            "median {:.3} ms p99 {:.3} ms ({lost} lost of {})",
            ms(quantile(d, 0.5)),
            ms(quantile(d, 0.99)),
            d.len() + lost
        )
    };
    lab::say(&format!(
        "voice: bulk {goodput:.1} Mbit/s goodput; irtt one-way delay A→B: idle {}; under bulk: voice {}, unlisted port {}",
        stats(&idle_d, idle_lost),
        stats(&loaded_d, loaded_lost),
        stats(&control_d, control_lost),
    ));
    // What the host can disturb is collected as misses for the caller to
    // judge (measure again on a disturbed host, fail on a quiet one); the
    // rest is asserted here.
    let mut misses = Vec::new();
    let full = ROOT_MBIT * 1448.0 / 1514.0;
    if goodput <= 0.9 * full {
        misses.push(format!(
            "the bulk flows did not saturate the {ROOT_MBIT} Mbit/s root: {goodput:.1} Mbit/s of goodput (full is {full:.1})"
        ));
    }
    // Through weir, by the kernel's timestamps at A's and B's ports.
    let voice_t = transits(&sent_a, &from_b, VOICE_PORT);
    let control_t = transits(&sent_a, &from_b, CONTROL_PORT);
    assert!(
        voice_t.len() >= 350 && control_t.len() >= 350,
        "only {} voice and {} unlisted packets matched between A's and B's captures",
        voice_t.len(),
        control_t.len()
    );
    let (voice_med, voice_p99) = (quantile(&voice_t, 0.5), quantile(&voice_t, 0.99));
    let control_med = quantile(&control_t, 0.5);
    lab::say(&format!(
        "voice: through weir under bulk: voice median {:.3} ms p99 {:.3} ms max {:.3} ms; unlisted port median {:.3} ms",
        ms(voice_med),
        ms(voice_p99),
        ms(voice_t[voice_t.len() - 1]),
        ms(control_med)
    ));
    // The same traffic beside the bulk flows waits in their queue: the
    // check below can tell a voice flow that skips it from one that does
    // not.
    if control_med <= 2 * VOICE_MARGIN_NS {
        misses.push(format!(
            "the unlisted flow beside the bulk flows took only {:.3} ms through weir: the bulk queue is too short to show voice skipping it",
            ms(control_med)
        ));
    }
    if voice_p99 > VOICE_MARGIN_NS {
        misses.push(format!(
            "voice waited under bulk: through weir p99 {:.3} ms (median {:.3} ms), allowed {:.1} ms",
            ms(voice_p99),
            ms(voice_med),
            ms(VOICE_MARGIN_NS)
        ));
    }
    // End to end, as irtt sees it: its median stays where it was idle.
    // Its tail is not judged: irtt takes its timestamps in its own
    // processes, which on this 2-vCPU VM wait for a CPU behind iperf3's
    // four streams and the kernel's softirq work (runs with weir's
    // transit p99 at 0.12 ms had irtt's p99 at 3.2 and 10.5 ms, and 1.5
    // and 2.3 ms idle).
    let (idle_med, loaded_med) = (quantile(&idle_d, 0.5), quantile(&loaded_d, 0.5));
    assert!(
        loaded_d.len() >= 350 && loaded_lost <= 4,
        "irtt under bulk: {} round trips, {loaded_lost} lost",
        loaded_d.len()
    );
    if loaded_med > idle_med + VOICE_MARGIN_NS {
        misses.push(format!(
            "voice waited under bulk: irtt's one-way delay median {:.3} ms (idle {:.3}); allowed {:.1} ms more",
            ms(loaded_med),
            ms(idle_med),
            ms(VOICE_MARGIN_NS)
        ));
    }

    // Both directions of the voice flow left weir as EF, the unlisted one
    // as it came (0), each with a valid IPv4 header checksum.
    let (a, b) = (ip(lab::ADDR_A), ip(lab::ADDR_B));
    for (what, got, src, dst) in [("A→B at B", &from_b, a, b), ("B→A at A", &from_a, b, a)] {
        for (port, tos, name) in [(VOICE_PORT, TOS_EF, "voice"), (CONTROL_PORT, 0, "unlisted")] {
            let flow: Vec<&Packet> = got
                .iter()
                .filter(|p| {
                    p.proto == 17
                        && p.src == src
                        && p.dst == dst
                        && (p.sport == port || p.dport == port)
                })
                .collect();
            let wrong: Vec<String> = flow
                .iter()
                .filter(|p| p.tos != tos || !p.cksum_ok)
                .take(5)
                .map(|p| format!("tos {:#04x} checksum ok {}", p.tos, p.cksum_ok))
                .collect();
            assert!(
                flow.len() >= 350,
                "irtt {name} {what}: only {} packets captured",
                flow.len()
            );
            assert!(
                wrong.is_empty(),
                "irtt {name} {what}: packets not tos {tos:#04x} with a valid checksum: {wrong:?} (of {})",
                flow.len()
            );
        }
    }
    // Both voice runs (idle and loaded, ~650 packets each way) in 1:10.
    for tree in ["up", "down"] {
        let voice = packets_of(&report, tree, "1:10");
        assert!(
            voice >= 600,
            "tree {tree}: 1:10 counted only {voice} packets of irtt's ~650"
        );
    }
    VoiceRun {
        misses,
        voice_p99,
        voice_max: voice_t[voice_t.len() - 1],
        report,
    }
}

// ---------------------------------------------------------------------
// 4. Wash
// ---------------------------------------------------------------------

/// The pair with `wash = true` on the upload tree only. r2q 100 as above
/// (rate/10 of 100 Mbit/s is above the quantum clamp).
const WASH_CONFIG: &str = r#"[[pair]]
name = "lab"
inside = "weir-in"
outside = "weir-out"
upload = "up"
download = "down"

[tree.up]
default = "1:10"
link = "100mbit"
r2q = 100
wash = true

[[tree.up.class]]
id = "1:1"
rate = "100mbit"

[[tree.up.class]]
id = "1:10"
parent = "1:1"
rate = "100mbit"

[tree.down]
default = "1:10"
link = "100mbit"
r2q = 100

[[tree.down.class]]
id = "1:1"
rate = "100mbit"

[[tree.down.class]]
id = "1:10"
parent = "1:1"
rate = "100mbit"
"#;

/// EF with ECT(0): the ECN bits must survive the wash.
const TOS_EF_ECT0: u8 = TOS_EF | 0b10;

/// Pings from `from` to the other host with TOS [`TOS_EF_ECT0`] and
/// returns the echo requests the other host received.
fn pings_marked_ef(lab: &Lab, from: Host, name: &str) -> Vec<Packet> {
    let to = from.other();
    let cap = Capture::start(
        lab,
        to,
        name,
        "in",
        "icmp[icmptype] == icmp-echo",
        100,
        Duration::from_secs(30),
    );
    let tos = format!("{TOS_EF_ECT0:#04x}");
    lab.run(
        from,
        &[
            "ping",
            "-n",
            "-c",
            "5",
            "-i",
            "0.2",
            "-W",
            "2",
            "-Q",
            &tos,
            to.addr(),
        ],
        T,
    );
    let src = ip(from.addr());
    cap.stop().into_iter().filter(|p| p.src == src).collect()
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "end-to-end: runs in release (scripts/test.sh)"
)]
fn a_washed_tree_clears_dscp_keeps_ecn_and_a_valid_checksum() {
    lab::require_root();
    let _serial = lab::serialize();
    let mut lab = Lab::up("aw");
    let cfg = lab.write("wash.toml", WASH_CONFIG);
    lab.start_weir(&cfg);
    let washed = pings_marked_ef(&lab, Host::A, "wash-b.pcap");
    let kept = pings_marked_ef(&lab, Host::B, "wash-a.pcap");
    let report = lab.stop_weir();
    let show = |ps: &[Packet]| {
        ps.iter()
            .map(|p| format!("tos {:#04x} checksum ok {}", p.tos, p.cksum_ok))
            .collect::<Vec<_>>()
    };
    lab::say(&format!(
        "wash: A→B (washed) {:?}; B→A (not washed) {:?}",
        show(&washed),
        show(&kept)
    ));
    // ping sent 5 each way, 200 ms apart, on an idle lab: all arrive.
    assert_eq!(washed.len(), 5, "A→B: {:?}", show(&washed));
    assert_eq!(kept.len(), 5, "B→A: {:?}", show(&kept));
    assert!(
        washed.iter().all(|p| p.tos == 0b10 && p.cksum_ok),
        "the washed tree did not clear DSCP to 0 keeping ECN ECT(0) with a valid checksum: {:?}",
        show(&washed)
    );
    assert!(
        kept.iter().all(|p| p.tos == TOS_EF_ECT0 && p.cksum_ok),
        "the tree without wash changed the TOS: {:?}",
        show(&kept)
    );
    assert_eq!(report["accounting"]["balanced"], true);
}

/// [`read_pcap`] itself: the checks above rely on it reading TOS and
/// telling a good IPv4 header checksum from a bad one. No root needed.
#[test]
fn read_pcap_reads_tos_and_checks_the_ipv4_header_checksum() {
    // An ICMP echo request 198.18.0.1 → 198.18.0.2, TOS 0xb8, as sent
    // (checksum 0xadc9, worked out by hand), then the same with TOS 0 and
    // the checksum left as it was (what a remark that forgot it sends).
    let frame = |tos: u8| {
        let mut f = vec![0u8; 14 + 20 + 8];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14..34].copy_from_slice(&[
            0x45, tos, 0x00, 0x54, 0x00, 0x00, 0x40, 0x00, 0x40, 0x01, 0xad, 0xc9, 198, 18, 0, 1,
            198, 18, 0, 2,
        ]);
        f
    };
    // The global header: magic (µs), version 2.4, zone, sigfigs,
    // snaplen, link type 1 (Ethernet); little-endian, as tcpdump writes
    // it on this machine.
    let mut pcap = Vec::new();
    pcap.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    pcap.extend_from_slice(&2u16.to_le_bytes());
    pcap.extend_from_slice(&4u16.to_le_bytes());
    for w in [0u32, 0, 65535, 1] {
        pcap.extend_from_slice(&w.to_le_bytes());
    }
    for (i, f) in [frame(TOS_EF), frame(0)].iter().enumerate() {
        for w in [1_000 + i as u32, 500_000, f.len() as u32, f.len() as u32] {
            pcap.extend_from_slice(&w.to_le_bytes());
        }
        pcap.extend_from_slice(f);
    }
    let path = std::env::temp_dir().join(format!("weir-e2e-apps-{}.pcap", std::process::id()));
    fs::write(&path, &pcap).expect("write the test pcap");
    let got = read_pcap(&path);
    let _ = fs::remove_file(&path);
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].tos, got[0].cksum_ok), (TOS_EF, true));
    assert_eq!((got[1].tos, got[1].cksum_ok), (0, false));
    assert_eq!(got[0].src, ip(lab::ADDR_A));
    assert_eq!(got[1].dst, ip(lab::ADDR_B));
    assert!((got[1].ts - 1_001.5).abs() < 1e-9);
}
