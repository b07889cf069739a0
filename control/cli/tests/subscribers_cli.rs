//! `weir subscribers check`, the built binary, on the shipped example
//! (config/subscribers/) and on files with mistakes: the summary of good
//! files, and FILE:LINE:COL diagnostics with exit 2 for bad ones.

use std::path::PathBuf;
use std::process::Command;

fn weir(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .output()
        .expect("weir runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn example(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../config/subscribers")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn the_shipped_example_checks_and_is_summarized_by_node() {
    let (devices, network) = (example("ShapedDevices.csv"), example("network.json"));
    let (code, out, err) = weir(&["subscribers", "check", &devices, "--network", &network]);
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty(), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].ends_with("ShapedDevices.csv: 5 circuit(s), 6 device(s), 7 IPv4 and 3 IPv6 address(es) or prefix(es)"),
        "{out}"
    );
    assert_eq!(
        &lines[1..],
        [
            "  (root): 1 circuit(s), plans' max 500Mbit down 500Mbit up",
            "    Site_1 (Site) down 1Gbit up 1Gbit: 0 circuit(s)",
            "      AP_A (AP) down 500Mbit up 500Mbit: 2 circuit(s), plans' max 200Mbit down 40Mbit up (0.40x and 0.08x its limits)",
            "      AP_B (AP) down 200Mbit up 100Mbit: 1 circuit(s), plans' max 250Mbit down 50Mbit up (1.25x and 0.50x its limits)",
            "    Site_2 (Site) down 500Mbit up 500Mbit: 0 circuit(s)",
            "      AP_C (AP) down 100Mbit up 50500Kbit: 1 circuit(s), plans' max 2500Kbit down 1500Kbit up (0.03x and 0.03x its limits)",
            "OK: 0 warning(s)",
        ],
        "{out}"
    );
}

#[test]
fn mistakes_are_reported_at_their_cells_and_exit_2() {
    let dir = std::env::temp_dir().join(format!("weir-subscribers-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let csv = dir.join("ShapedDevices.csv");
    std::fs::write(
        &csv,
        concat!(
            "Circuit ID,Circuit Name,Device ID,Device Name,Parent Node,MAC,IPv4,IPv6,Download Min Mbps,Upload Min Mbps,Download Max Mbps,Upload Max Mbps,Comment\n",
            "1,One,d1,D,AP_A,,198.18.0.1,,10,5,100,50,\n",
            "2,Two,d2,D,AP_Z,,198.18.0.1,,10,5,100,50,\n",
            "3,Three,d3,D,AP_A,,198.18.0.3,,100,5,10,50,\n",
        ),
    )
    .expect("write");
    let (code, out, err) = weir(&[
        "subscribers",
        "check",
        &csv.display().to_string(),
        "--network",
        &example("network.json"),
    ]);
    let file = csv.display().to_string();
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.is_empty(), "{out}");
    assert_eq!(
        err.lines().collect::<Vec<_>>(),
        [
            format!("{file}:3:18: `198.18.0.1` again (first at 2:18): an address belongs to one device"),
            format!("{file}:4:32: Download Min Mbps (100) is above Download Max Mbps (10): the guaranteed rate cannot exceed the most the circuit may use"),
            "2 error(s)".to_string(),
        ]
    );
    // The parent check runs once the rows are good.
    std::fs::write(
        &csv,
        concat!(
            "Circuit ID,Circuit Name,Device ID,Device Name,Parent Node,MAC,IPv4,IPv6,Download Min Mbps,Upload Min Mbps,Download Max Mbps,Upload Max Mbps,Comment\n",
            "2,Two,d2,D,AP_Z,,198.18.0.2,,10,5,100,50,\n",
        ),
    )
    .expect("write");
    let (code, _, err) = weir(&[
        "subscribers",
        "check",
        &file,
        "--network",
        &example("network.json"),
    ]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(
        err.lines().next(),
        Some(format!("{file}:2:12: circuit `2` hangs under `AP_Z`, which the network hierarchy does not have").as_str())
    );
    let (code, _, err) = weir(&[
        "subscribers",
        "check",
        &dir.join("missing.csv").display().to_string(),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("missing.csv:0:0: can't read the file:"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
