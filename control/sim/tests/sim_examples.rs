//! The shipped traffic examples run against the shipped configs as
//! `weir simulate` runs them (load both files, run, render), as a table and
//! as JSON.

use std::path::PathBuf;

use weir_sim::{units, Report, SimError, SimOptions, Traffic};

fn repo(path: &str) -> PathBuf {
    weir_testkit::fixture::repo_root().join(path)
}

/// Load `config` and `traffic` from the repository and run them for
/// `duration`.
fn simulate(config: &str, traffic: &str, duration: Option<&str>) -> Result<Report, SimError> {
    let loaded = weir_config::load(&repo(config)).unwrap_or_else(|d| panic!("{config}: {}", d[0]));
    let traffic = Traffic::load(&repo(traffic)).unwrap_or_else(|e| panic!("{e}"));
    let opts = SimOptions {
        duration: duration.map(|d| units::parse_duration(d).unwrap()),
        ..SimOptions::default()
    };
    weir_sim::run(&loaded.config, &traffic, &opts)
}

/// (config, traffic example, a class label the table must show)
const EXAMPLES: [(&str, &str, &str); 5] = [
    (
        "config/seed-1.2-htb.toml",
        "config/traffic/seed-1.2-default.toml",
        "1:30 (low)",
    ),
    (
        "config/seed-1.3-classify.toml",
        "config/traffic/seed-1.3-mix.toml",
        "1:12 (high-apps)",
    ),
    (
        "config/seed-2.1-dscp.toml",
        "config/traffic/seed-2.1-dscp.toml",
        "1:10 (voice)",
    ),
    (
        "config/lab.toml",
        "config/traffic/lab-up.toml",
        "1:20 (medium)",
    ),
    (
        "config/seed-2.2-apps.toml",
        "config/traffic/seed-2.2-apps.toml",
        "1:50 (backup)",
    ),
];

#[test]
fn examples_print_a_table() {
    for (cfg, traffic, label) in EXAMPLES {
        let text = simulate(cfg, traffic, Some("200ms"))
            .unwrap_or_else(|e| panic!("{traffic}: {e}"))
            .table()
            .to_string();
        assert!(text.contains(label), "{traffic}: no {label} in\n{text}");
        assert!(text.contains("(balanced)"), "{traffic}:\n{text}");
        assert!(text.contains("achieved"), "{traffic}:\n{text}");
    }
}

#[test]
fn examples_as_json() {
    let (cfg, traffic, _) = EXAMPLES[1];
    let report = simulate(cfg, traffic, Some("1500ms")).unwrap();
    let v = serde_json::to_value(&report).expect("a report serialises");
    assert_eq!(v["tree"], "eth0");
    assert_eq!(v["duration_ns"], 1_500_000_000u64);
    assert_eq!(v["frames"]["balanced"], true);
    let classes = v["classes"].as_array().unwrap();
    let web = v["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "web")
        .unwrap();
    assert_eq!(web["classes"][0], "1:12 (high-apps)");
    assert!(web["goodput_bps"].as_u64().unwrap() > 0);
    assert!(classes
        .iter()
        .any(|c| c["label"] == "1:11 (icmp)" && c["sent"]["packets"] == 15));
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let e = Traffic::load(&repo("config/traffic/no-such-file.toml")).unwrap_err();
    assert!(e.to_string().contains("no-such-file.toml"), "{e}");
    assert_eq!((e.line, e.col), (0, 0), "{e}");
    let e = units::parse_duration("10").unwrap_err();
    assert!(e.to_string().contains("needs a unit"), "{e}");
    // The traffic names a tree the config does not have.
    let e = simulate(
        "config/seed-1.2-htb.toml",
        "config/traffic/lab-up.toml",
        Some("100ms"),
    )
    .unwrap_err();
    assert!(
        matches!(&e, SimError::UnknownTree { name, known } if name == "up" && known == "eth0"),
        "{e}"
    );
    assert!(e.to_string().contains("no tree named 'up'"), "{e}");
}

/// The seed-2.2 traffic replays the seed's sample flows exactly (packet
/// counts, bytes, order of sizes given by `sequence`), and against
/// `config/seed-2.2-apps.toml` every source lands in the class its app
/// says: the seed's three sample flows as the seed intends (voice by the
/// RTP range, size and jitter; web from port 80; the database from 3306),
/// video by TLS SNI, QUIC SNI and HTTP Host on ports that alone would be
/// web, voice and video by behaviour, backup by port, and an unlisted bulk
/// flow by the bulk trigger.
#[test]
fn seed_2_2_traffic_replays_the_seed_sample_flows() {
    let report = simulate(
        "config/seed-2.2-apps.toml",
        "config/traffic/seed-2.2-apps.toml",
        Some("2s"),
    )
    .unwrap();
    assert!(report.frames.balanced);
    let source = |name: &str| {
        report
            .sources
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no source {name}"))
    };
    // (name, packets, bytes): [160] * 50; [1460, 1460, 800, 1200];
    // [128, 8192, 64, 4096].
    for (name, packets, bytes) in [
        ("seed-voice", 50, 50 * 160),
        ("seed-web", 4, 1460 + 1460 + 800 + 1200),
        ("seed-database", 4, 128 + 8192 + 64 + 4096),
    ] {
        let s = source(name);
        assert_eq!(
            (s.offered.packets, s.offered.bytes),
            (packets, bytes),
            "{name}"
        );
        assert_eq!(s.sent.packets, packets, "{name}: nothing dropped");
    }
    for name in [
        "tls-video",
        "quic-video",
        "http-video",
        "rtp-voice",
        "video-bursts",
        "backup-rsync",
        "backup-scp",
        "bulk-unlisted",
    ] {
        assert!(source(name).sent.packets > 0, "{name} sent nothing");
    }
    // RTP-like voice: 10 calls, a 214-byte frame every 20 ms each.
    let rtp = source("rtp-voice");
    assert_eq!(rtp.offered.packets, 10 * 50 * 2);
    assert_eq!(rtp.offered.bytes, rtp.offered.packets * 214);
    for (name, class) in [
        ("seed-voice", "1:10 (voice)"),
        ("seed-web", "1:40 (web)"),
        ("seed-database", "1:30 (database)"),
        ("tls-video", "1:20 (video)"),
        ("quic-video", "1:20 (video)"),
        ("http-video", "1:20 (video)"),
        ("rtp-voice", "1:10 (voice)"),
        ("video-bursts", "1:20 (video)"),
        ("backup-rsync", "1:50 (backup)"),
        ("backup-scp", "1:50 (backup)"),
        ("bulk-unlisted", "1:50 (backup)"),
    ] {
        let s = source(name);
        assert!(
            s.classes.iter().any(|c| c == class),
            "{name}: {:?}, not {class}",
            s.classes
        );
    }
    // The apps table: flows per app. Voice is the seed's flow and the 10
    // RTP calls; streaming the 4 TLS, 2 QUIC and 2 HTTP flows; the seed's
    // web and database flows one each; bulk the one unlisted flow.
    let app = |name: &str| {
        report
            .apps
            .iter()
            .find(|a| a.name == name)
            .unwrap_or_else(|| panic!("no app {name}: {:?}", report.apps))
    };
    for (name, flows) in [
        ("voice", 11),
        ("streaming", 8),
        ("video", 1),
        ("database", 1),
        ("web", 1),
        ("backup", 3),
        ("bulk", 1),
    ] {
        assert_eq!(app(name).flows, flows, "{name}");
    }
    assert!(report
        .table()
        .to_string()
        .contains("streaming  1:20 (video)"));
}
