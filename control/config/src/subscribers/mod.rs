//! Subscribers from the files ISPs already keep (issue 13): LibreQoS's
//! `ShapedDevices.csv` (the circuits and their devices, `devices`) and
//! `network.json` (the sites and access points they hang under, each with
//! its own limits, `network`), read into checked types with every problem
//! at its `FILE:LINE:COL`.

mod devices;
mod json;
mod network;

pub use devices::{
    read_shaped_devices, Circuit, Device, Leaf, Plan, Prefix4, Prefix6, ShapedDevices, Sqm,
    COLUMNS, SQM_COLUMN,
};
pub use network::{read_network, Network, Node};

use crate::Diagnostic;

/// The circuits whose parent node the hierarchy does not have, as errors
/// at their `Parent Node` cells of `file` (the CSV).
pub fn unknown_parents(file: &str, circuits: &[Circuit], network: &Network) -> Vec<Diagnostic> {
    circuits
        .iter()
        .filter_map(|c| {
            let parent = c.parent.as_deref()?;
            if network.find(parent).is_some() {
                return None;
            }
            Some(Diagnostic {
                file: file.to_string(),
                line: c.parent_at.0,
                col: c.parent_at.1,
                message: format!(
                    "circuit `{}` hangs under `{parent}`, which the network hierarchy does not have{}",
                    c.id,
                    match network.nodes.len() {
                        0 => " (it is empty: leave Parent Node empty for a flat network)".to_string(),
                        _ => String::new(),
                    }
                ),
            })
        })
        .collect()
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
                        let _ = unknown_parents("p.csv", &d.circuits, &n);
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
        assert!(unknown_parents("p.csv", &d.circuits, &n).is_empty());
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
        let e: Vec<String> = unknown_parents("s.csv", &devices.circuits, &network)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            e,
            ["s.csv:3:12: circuit `2` hangs under `AP_X`, which the network hierarchy does not have"]
        );
        let flat = read_network("n.json", "{}").expect("flat");
        let e = unknown_parents("s.csv", &devices.circuits, &flat);
        assert_eq!(e.len(), 2);
        assert!(e[0]
            .message
            .ends_with("(it is empty: leave Parent Node empty for a flat network)"));
    }
}
