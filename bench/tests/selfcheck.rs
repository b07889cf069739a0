//! The generator's self-check: weir-bench's sender straight into its
//! receiver over one veth pair (no device under test), at rates well below
//! what it can send. Nothing may be lost, reordered or duplicated, nothing
//! foreign may arrive, and the rate the receiver measures on its own clock
//! must be the configured one within 1 %, for 64-byte, 1518-byte, IMIX and
//! jumbo frames, one stream and several at once.
//!
//! Needs root (network namespaces, veth, XDP, AF_XDP) and runs in release
//! (scripts/test.sh): `cargo test -p weir-bench --release --test selfcheck`.

use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use weir_bench::traffic::spec::PathSpec;
use weir_bench::traffic::testframe::{SizeMix, JUMBO};
use weir_bench::traffic::trial::{self, StreamSpec, TrialResult};
use weir_xdp::prog::XdpMode;

/// One veth pair at a time: the tests share the machine's CPUs.
static SERIAL: Mutex<()> = Mutex::new(());

/// Two namespaces joined by a veth pair (a0 ↔ b0), removed on drop, even
/// when a test fails.
struct Pair {
    a: String,
    b: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("timeout")
        .arg("10")
        .arg("ip")
        .args(args)
        .output()
        .expect("running ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pair {
    fn up(tag: &str, mtu: u32) -> Pair {
        let pid = std::process::id();
        let p = Pair {
            a: format!("wbsc{tag}{pid}-a"),
            b: format!("wbsc{tag}{pid}-b"),
        };
        p.remove();
        let (x, y) = (format!("wbsc{tag}{pid}x"), format!("wbsc{tag}{pid}y"));
        ip(&["netns", "add", &p.a]);
        ip(&["netns", "add", &p.b]);
        ip(&["link", "add", &x, "type", "veth", "peer", "name", &y]);
        ip(&["link", "set", &x, "netns", &p.a]);
        ip(&["link", "set", &y, "netns", &p.b]);
        for (ns, from, to) in [(&p.a, &x, "a0"), (&p.b, &y, "b0")] {
            ip(&["-n", ns, "link", "set", from, "name", to]);
            ip(&["-n", ns, "link", "set", to, "mtu", &mtu.to_string()]);
            // No IPv6: no router solicitations or ND on the wire, so every
            // frame the receiver sees is the generator's.
            let _ = Command::new("ip")
                .args(["netns", "exec", ns, "sysctl", "-qw"])
                .arg(format!("net.ipv6.conf.{to}.disable_ipv6=1"))
                .status();
            ip(&["-n", ns, "link", "set", to, "up"]);
        }
        p
    }

    fn path(&self) -> PathSpec {
        format!("name=direct,tx={}/a0,rx={}/b0", self.a, self.b)
            .parse()
            .expect("a valid path")
    }

    fn remove(&self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        self.remove();
    }
}

fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "the generator self-check needs root (netns, veth, AF_XDP): run scripts/test.sh as root"
    );
}

fn run(pair: &Pair, streams: Vec<StreamSpec>, secs: u64) -> TrialResult {
    let spec = pair.path().trial(
        streams,
        Duration::from_secs(secs),
        Duration::from_millis(300),
        64,
        XdpMode::Native,
    );
    trial::run(&spec).expect("the trial runs")
}

fn stream(dscp: u8, mix: SizeMix, pps: f64) -> StreamSpec {
    StreamSpec {
        dscp,
        mix,
        rate_pps: Some(pps),
        flows: 8,
    }
}

/// Zero loss, no reordering or duplicates, nothing foreign, and each
/// stream's rate within 1 % of the configured one, both as sent and as
/// the receiver measured it.
fn check(r: &TrialResult) {
    assert_eq!(r.foreign, 0, "{r:#?}");
    assert_eq!(
        r.rx_socket.rx_dropped + r.rx_socket.rx_ring_full,
        0,
        "{r:#?}"
    );
    for s in &r.streams {
        let want = s.rate_pps.expect("paced streams");
        assert_eq!(s.lost, 0, "stream {}: {s:#?}", s.stream);
        assert_eq!((s.reordered, s.duplicates), (0, 0), "{s:#?}");
        for (what, got) in [("sent", s.sent_pps), ("measured", s.rx_span_pps)] {
            let err = (got - want).abs() / want;
            assert!(
                err < 0.01,
                "stream {} {what} rate {got:.1} pps vs configured {want:.1} ({:.3} %)",
                s.stream,
                err * 100.0
            );
        }
        assert!(
            s.latency_us.min > 0.0 && s.latency_us.p50 < 10_000.0,
            "{s:#?}"
        );
    }
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "needs root and a release build (scripts/test.sh)"
)]
fn one_stream_per_size_is_exact() {
    require_root();
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let pair = Pair::up("s", 1500);
    for (mix, pps) in [
        (SizeMix::Fixed(64), 50_000.0),
        (SizeMix::Fixed(1518), 20_000.0),
        (SizeMix::Imix, 30_000.0),
    ] {
        let r = run(&pair, vec![stream(0, mix.clone(), pps)], 2);
        check(&r);
        eprintln!(
            "{mix}: sent {} received {} at {:.1} pps (configured {pps}), p50 {:.1} µs",
            r.streams[0].sent,
            r.streams[0].received,
            r.streams[0].rx_span_pps,
            r.streams[0].latency_us.p50
        );
    }
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "needs root and a release build (scripts/test.sh)"
)]
fn several_streams_keep_their_own_rates() {
    require_root();
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let pair = Pair::up("m", 1500);
    let r = run(
        &pair,
        vec![
            stream(46, SizeMix::Fixed(64), 40_000.0),
            stream(34, SizeMix::Fixed(1518), 5_000.0),
            stream(0, SizeMix::Imix, 10_000.0),
            stream(8, SizeMix::Fixed(570), 1_000.0),
        ],
        2,
    );
    check(&r);
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "needs root and a release build (scripts/test.sh)"
)]
fn jumbo_frames_cross_a_raised_mtu() {
    require_root();
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let pair = Pair::up("j", (JUMBO - 18) as u32);
    let r = run(&pair, vec![stream(0, SizeMix::Fixed(JUMBO), 10_000.0)], 2);
    check(&r);
    assert_eq!(r.streams[0].size, JUMBO.to_string());
}
