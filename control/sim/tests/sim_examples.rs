//! The shipped traffic examples run against the shipped configs through
//! `weir simulate`'s entry point, as a table and as JSON.

use std::path::PathBuf;

use weir_sim::cli_simulate;

fn repo(path: &str) -> PathBuf {
    weir_testkit::fixture::repo_root().join(path)
}

/// (config, traffic example, a class label the table must show)
const EXAMPLES: [(&str, &str, &str); 4] = [
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
];

#[test]
fn examples_print_a_table() {
    for (cfg, traffic, label) in EXAMPLES {
        let mut out = Vec::new();
        cli_simulate(&repo(cfg), &repo(traffic), Some("200ms"), false, &mut out)
            .unwrap_or_else(|e| panic!("{traffic}: {e:#}"));
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(label), "{traffic}: no {label} in\n{text}");
        assert!(text.contains("(balanced)"), "{traffic}:\n{text}");
        assert!(text.contains("achieved"), "{traffic}:\n{text}");
    }
}

#[test]
fn examples_as_json() {
    let (cfg, traffic, _) = EXAMPLES[1];
    let mut out = Vec::new();
    cli_simulate(&repo(cfg), &repo(traffic), Some("1500ms"), true, &mut out).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
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
    let mut out = Vec::new();
    let e = cli_simulate(
        &repo("config/seed-1.2-htb.toml"),
        &repo("config/traffic/no-such-file.toml"),
        None,
        false,
        &mut out,
    )
    .unwrap_err();
    assert!(e.to_string().contains("no-such-file.toml"), "{e:#}");
    let e = cli_simulate(
        &repo("config/seed-1.2-htb.toml"),
        &repo("config/traffic/seed-1.2-default.toml"),
        Some("10"),
        false,
        &mut out,
    )
    .unwrap_err();
    assert!(e.to_string().contains("--duration"), "{e:#}");
    // The traffic names a tree the config does not have.
    let e = cli_simulate(
        &repo("config/seed-1.2-htb.toml"),
        &repo("config/traffic/lab-up.toml"),
        Some("100ms"),
        false,
        &mut out,
    )
    .unwrap_err();
    assert!(format!("{e:#}").contains("no tree named 'up'"), "{e:#}");
}
