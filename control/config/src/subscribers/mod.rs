//! Subscribers from the files ISPs already keep (issue 13): LibreQoS's
//! `ShapedDevices.csv` (the circuits and their devices, `devices`) and
//! `network.json` (the sites and access points they hang under, each with
//! its own limits, `network`), read into checked types with every problem
//! at its `FILE:LINE:COL`, and compiled into the classes and filters of
//! the trees a `[subscribers]` table names (`compile`).

mod compile;
mod devices;
mod ids;
mod json;
mod network;
mod synth;

pub(crate) use compile::build;
pub use compile::{Given, Placement, Subscribers, DEFAULT_FIRST_MINOR, DEFAULT_LEAF_FLOWS};
pub use devices::{
    csv_row, read_shaped_devices, write_shaped_devices, Circuit, Device, Leaf, Plan, Prefix4,
    Prefix6, ShapedDevices, Sqm, COLUMNS, SQM_COLUMN,
};
pub use ids::keep_ids;
pub use network::{read_network, Network, Node};
pub use synth::{Synth, TIERS};

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use crate::units::Rate;
use crate::Diagnostic;

/// The circuits whose parent node the hierarchy does not have, as errors
/// at their `Parent Node` cells of `file` (the CSV). `network` None: no
/// hierarchy was given, so every circuit must hang under the root.
pub fn unknown_parents(
    file: &str,
    circuits: &[Circuit],
    network: Option<&Network>,
) -> Vec<Diagnostic> {
    circuits
        .iter()
        .filter_map(|c| {
            let parent = c.parent.as_deref()?;
            let why = match network {
                Some(n) if n.find(parent).is_some() => return None,
                Some(n) if n.nodes.is_empty() => {
                    "which the network hierarchy does not have (it is empty: leave Parent Node empty for a flat network)"
                }
                Some(_) => "which the network hierarchy does not have",
                None => "but no network hierarchy was given (leave Parent Node empty for a flat network, or give its network.json)",
            };
            Some(Diagnostic {
                file: file.to_string(),
                line: c.parent_at.0,
                col: c.parent_at.1,
                message: format!("circuit `{}` hangs under `{parent}`, {why}", c.id),
            })
        })
        .collect()
}

/// `weir subscribers check DEVICES [--network NETWORK]`: 0 when both
/// files are good (a summary on `out`: circuits, devices and addresses;
/// per node of the hierarchy its limits, the circuits directly under it
/// and how far their plans oversubscribe it; warnings on `err`), 2 on any
/// error (one diagnostic per line on `err`).
pub fn cli_check(
    devices: &Path,
    network: Option<&Path>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let read = |path: &Path| {
        std::fs::read_to_string(path)
            .map_err(|e| vec![Diagnostic::unreadable(path.display().to_string(), &e)])
    };
    let devices_file = devices.display().to_string();
    let shaped = read(devices).and_then(|t| read_shaped_devices(&devices_file, &t));
    let hierarchy =
        network.map(|p| read(p).and_then(|t| read_network(&p.display().to_string(), &t)));
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    match &shaped {
        Ok(s) => warnings.extend(s.warnings.iter().cloned()),
        Err(e) => errors.extend(e.iter().cloned()),
    }
    match &hierarchy {
        Some(Ok(n)) => warnings.extend(n.warnings.iter().cloned()),
        Some(Err(e)) => errors.extend(e.iter().cloned()),
        None => {}
    }
    match (&shaped, &hierarchy) {
        (Ok(s), Some(Ok(n))) => errors.extend(unknown_parents(&devices_file, &s.circuits, Some(n))),
        (Ok(s), None) => errors.extend(unknown_parents(&devices_file, &s.circuits, None)),
        _ => {}
    }
    for w in &warnings {
        let _ = writeln!(err, "{}", w.warning_line());
    }
    if !errors.is_empty() {
        for d in &errors {
            let _ = writeln!(err, "{d}");
        }
        let _ = writeln!(err, "{} error(s)", errors.len());
        return 2;
    }
    let Ok(shaped) = shaped else {
        return 2;
    };
    let network = match hierarchy {
        Some(Ok(n)) => n,
        _ => Network::default(),
    };
    let _ = write!(
        out,
        "{}",
        summary(&devices_file, &shaped.circuits, &network)
    );
    let _ = writeln!(out, "OK: {} warning(s)", warnings.len());
    0
}

/// What `weir subscribers check` prints for files that are good.
fn summary(file: &str, circuits: &[Circuit], network: &Network) -> String {
    let devices: usize = circuits.iter().map(|c| c.devices.len()).sum();
    let v4: usize = circuits
        .iter()
        .flat_map(|c| &c.devices)
        .map(|d| d.ipv4.len())
        .sum();
    let v6: usize = circuits
        .iter()
        .flat_map(|c| &c.devices)
        .map(|d| d.ipv6.len())
        .sum();
    let mut s = format!(
        "{file}: {} circuit(s), {devices} device(s), {v4} IPv4 and {v6} IPv6 address(es) or prefix(es)\n",
        circuits.len()
    );
    // Per node: the circuits directly under it and the sums of their plans.
    let mut under: HashMap<Option<&str>, (usize, u64, u64)> = HashMap::new();
    for c in circuits {
        let e = under.entry(c.parent.as_deref()).or_default();
        e.0 += 1;
        e.1 += c.download.max.bits_per_sec();
        e.2 += c.upload.max.bits_per_sec();
    }
    let line = |s: &mut String,
                indent: usize,
                name: &str,
                limits: Option<(Rate, Rate)>,
                n: Option<&(usize, u64, u64)>| {
        let (count, down, up) = n.copied().unwrap_or_default();
        s.push_str(&format!("{:indent$}{name}", ""));
        if let Some((d, u)) = limits {
            s.push_str(&format!(" down {d} up {u}"));
        }
        s.push_str(&format!(": {count} circuit(s)"));
        if count > 0 {
            s.push_str(&format!(
                ", plans' max {} down {} up",
                Rate::from_bits_per_sec(down),
                Rate::from_bits_per_sec(up)
            ));
            if let Some((d, u)) = limits {
                // How many times over the plans add up to the node's limit.
                let ratio = |sum: u64, limit: Rate| sum as f64 / limit.bits_per_sec().max(1) as f64;
                s.push_str(&format!(
                    " ({:.2}x and {:.2}x its limits)",
                    ratio(down, d),
                    ratio(up, u)
                ));
            }
        }
        s.push('\n');
    };
    line(&mut s, 2, "(root)", None, under.get(&None));
    let mut stack: Vec<(usize, usize)> = network.roots().map(|i| (i, 4)).collect();
    stack.reverse();
    while let Some((i, indent)) = stack.pop() {
        let n = &network.nodes[i];
        let name = match &n.kind {
            Some(k) => format!("{} ({k})", n.name),
            None => n.name.clone(),
        };
        line(
            &mut s,
            indent,
            &name,
            Some((n.download, n.upload)),
            under.get(&Some(n.name.as_str())),
        );
        stack.extend(n.children.iter().rev().map(|&c| (c, indent + 2)));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CSV: &str = concat!(
        "Circuit ID,Circuit Name,Device ID,Device Name,Parent Node,MAC,IPv4,IPv6,Download Min Mbps,Upload Min Mbps,Download Max Mbps,Upload Max Mbps,Comment,sqm\n",
        "1,\"One, Inc\",d1,D,AP_A,00:1b:21:3a:4f:5c,\"198.18.0.1, 198.18.1.0/24\",2001:db8::/48,1.5,1,10,10,\"a \"\"b\"\"\",cake/\n",
        "1,\"One, Inc\",d2,D,AP_A,,198.18.0.2,,1.5,1,10,10,,cake/\n",
    );
    const JSON: &str = r#"{"AP_A": {"downloadBandwidthMbps": 100.5, "uploadBandwidthMbps": 100, "type": "AP", "children": {"B": {"downloadBandwidthMbps": 1, "uploadBandwidthMbps": 1}}}}"#;

    proptest! {
        /// Bad input of any kind is refused with diagnostics, never a
        /// panic: arbitrary text, and the sample files with a few
        /// characters of their grammar spliced in anywhere.
        #[test]
        fn any_text_is_read_or_refused(text in "\\PC{0,300}") {
            let _ = read_shaped_devices("p.csv", &text);
            let _ = read_network("p.json", &text);
        }

        #[test]
        fn spliced_files_are_read_or_refused(
            at in 0usize..400,
            cut in 0usize..6,
            insert in "[,\"\\\\\n\r{}:\\[\\] a-z0-9./#-]{0,8}",
        ) {
            for (sample, json) in [(CSV, false), (JSON, true)] {
                let at = at.min(sample.len());
                let end = (at + cut).min(sample.len());
                let (Some(head), Some(tail)) = (sample.get(..at), sample.get(end..)) else {
                    continue;
                };
                let text = format!("{head}{insert}{tail}");
                if json {
                    if let Ok(n) = read_network("p.json", &text) {
                        let d = read_shaped_devices("p.csv", CSV).expect("the sample reads");
                        let _ = unknown_parents("p.csv", &d.circuits, Some(&n));
                    }
                } else {
                    let _ = read_shaped_devices("p.csv", &text);
                }
            }
        }
    }

    #[test]
    fn the_samples_read() {
        let d = read_shaped_devices("p.csv", CSV).expect("reads");
        assert_eq!(d.circuits.len(), 1);
        assert_eq!(d.circuits[0].devices.len(), 2);
        assert_eq!(d.circuits[0].devices[0].comment, "a \"b\"");
        let n = read_network("p.json", JSON).expect("reads");
        assert!(unknown_parents("p.csv", &d.circuits, Some(&n)).is_empty());
    }

    #[test]
    fn circuits_under_unknown_nodes_are_errors_at_their_parent_cells() {
        let csv = concat!(
            "Circuit ID,Circuit Name,Device ID,Device Name,Parent Node,MAC,IPv4,IPv6,Download Min Mbps,Upload Min Mbps,Download Max Mbps,Upload Max Mbps,Comment\n",
            "1,One,d1,D,AP_A,,198.18.0.1,,1,1,10,10,\n",
            "2,Two,d2,D,AP_X,,198.18.0.2,,1,1,10,10,\n",
            "3,Three,d3,D,,,198.18.0.3,,1,1,10,10,\n",
        );
        let devices = read_shaped_devices("s.csv", csv).expect("reads");
        let network = read_network(
            "n.json",
            r#"{"AP_A": {"downloadBandwidthMbps": 100, "uploadBandwidthMbps": 100}}"#,
        )
        .expect("reads");
        let e: Vec<String> = unknown_parents("s.csv", &devices.circuits, Some(&network))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            e,
            ["s.csv:3:12: circuit `2` hangs under `AP_X`, which the network hierarchy does not have"]
        );
        let flat = read_network("n.json", "{}").expect("flat");
        let e = unknown_parents("s.csv", &devices.circuits, Some(&flat));
        assert_eq!(e.len(), 2);
        assert!(e[0]
            .message
            .ends_with("(it is empty: leave Parent Node empty for a flat network)"));
        let e = unknown_parents("s.csv", &devices.circuits, None);
        assert_eq!(e.len(), 2);
        assert!(
            e[1].message.contains("but no network hierarchy was given"),
            "{}",
            e[1]
        );
    }
}
