//! LibreQoS's `network.json`: the sites and access points circuits hang
//! under, each with its own download and upload limit.
//!
//! The file is one object whose members are the top-level nodes; a node is
//! an object with `downloadBandwidthMbps`, `uploadBandwidthMbps` (Mbps,
//! decimals allowed), an optional `type` (`Site`, `AP`, …; kept for
//! display) and optional `children`, an object of nodes in the same
//! shape. `{}` is a flat network: every circuit hangs under the root.
//! Node names are unique across the whole file, because a circuit names
//! its parent by name alone.

use std::collections::HashMap;
use std::ops::Range;

use super::json::{self, Json, Spanned};
use crate::diag::{self, Ctx, Span};
use crate::units::Rate;
use crate::Diagnostic;

/// The members of a node weir reads.
const DOWNLOAD: &str = "downloadBandwidthMbps";
const UPLOAD: &str = "uploadBandwidthMbps";
const TYPE: &str = "type";
const CHILDREN: &str = "children";

/// A site, access point or other node of the hierarchy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    /// Its `type`, as written (None when the file gives none).
    pub kind: Option<String>,
    /// Its limits: the ceil of its class in each direction.
    pub download: Rate,
    pub upload: Rate,
    /// Its parent's index in [`Network::nodes`]; None at the top.
    pub parent: Option<usize>,
    /// Its children's indexes, in file order.
    pub children: Vec<usize>,
    /// Where its name is in the file (line, column).
    pub at: (u32, u32),
}

/// The hierarchy: every node, parents before their children (depth first,
/// in file order).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Network {
    pub nodes: Vec<Node>,
    by_name: HashMap<String, usize>,
    pub warnings: Vec<Diagnostic>,
}

impl Network {
    /// The node named `name`.
    pub fn find(&self, name: &str) -> Option<&Node> {
        self.index(name).map(|i| &self.nodes[i])
    }

    /// The index of the node named `name` in [`Network::nodes`].
    pub fn index(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The top-level nodes' indexes.
    pub fn roots(&self) -> impl Iterator<Item = usize> + '_ {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.parent.is_none())
            .map(|(i, _)| i)
    }
}

/// Read a network.json (`file` names it in diagnostics). Every error is
/// reported, sorted by position.
pub fn read_network(file: &str, text: &str) -> Result<Network, Vec<Diagnostic>> {
    // JSON has no byte order mark, but editors on some systems write one.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut cx = Ctx::new(file, text);
    let mut network = Network::default();
    match json::parse(text) {
        Err(e) => cx.error(&Some(e.at..e.at), format!("not JSON: {}", e.message)),
        Ok(Spanned {
            value: Json::Object(members),
            ..
        }) => {
            let mut first: HashMap<String, Span> = HashMap::new();
            for (name, node) in &members {
                add(&mut cx, &mut network, &mut first, None, name, node);
            }
        }
        Ok(v) => cx.error(
            &Some(v.at.clone()),
            format!(
                "the file is {}: a network.json is an object of nodes by name (`{{}}` for a flat network)",
                v.value.kind()
            ),
        ),
    }
    if !cx.errors.is_empty() {
        let mut errors = std::mem::take(&mut cx.errors);
        diag::sort(&mut errors);
        return Err(errors);
    }
    let mut warnings = std::mem::take(&mut cx.warnings);
    diag::sort(&mut warnings);
    network.warnings = warnings;
    Ok(network)
}

/// Add the node `name` (and its subtree) under `parent`.
fn add(
    cx: &mut Ctx<'_>,
    network: &mut Network,
    first: &mut HashMap<String, Span>,
    parent: Option<usize>,
    name: &Spanned<String>,
    node: &Spanned<Json>,
) {
    let key_at = Some(name.at.clone());
    if let Some(earlier) = first.insert(name.value.clone(), key_at.clone()) {
        let line = cx.line_of(&earlier);
        cx.error(
            &key_at,
            format!(
                "node `{}` again (first on line {line}): circuits name their parent node by name, so names are unique in the whole file",
                name.value
            ),
        );
        return;
    }
    let Json::Object(members) = &node.value else {
        cx.error(
            &Some(node.at.clone()),
            format!(
                "node `{}` is {}: a node is an object with {DOWNLOAD} and {UPLOAD}",
                name.value,
                node.value.kind()
            ),
        );
        return;
    };
    let member = |key: &str| members.iter().find(|(k, _)| k.value == key).map(|(_, v)| v);
    for (key, _) in members {
        let k = key.value.as_str();
        if members.iter().filter(|(o, _)| o.value == k).count() > 1 {
            cx.error(
                &Some(key.at.clone()),
                format!("`{k}` is given twice in node `{}`", name.value),
            );
        } else if ![DOWNLOAD, UPLOAD, TYPE, CHILDREN].contains(&k) {
            cx.warn(
                &Some(key.at.clone()),
                format!(
                    "`{k}` in node `{}` is not one weir reads: ignored",
                    name.value
                ),
            );
        }
    }
    let download = mbps(cx, &name.value, DOWNLOAD, member(DOWNLOAD), &key_at);
    let upload = mbps(cx, &name.value, UPLOAD, member(UPLOAD), &key_at);
    let kind = match member(TYPE).map(|v| &v.value) {
        None => None,
        Some(Json::String(s)) => Some(s.clone()),
        Some(other) => {
            let at = member(TYPE).map(|v| v.at.clone());
            cx.error(
                &at,
                format!(
                    "`type` of node `{}` is {}: expected a string such as \"Site\" or \"AP\"",
                    name.value,
                    other.kind()
                ),
            );
            None
        }
    };
    // A node with a bad limit is still added (at 0) and its children
    // read, so one run reports every error; any error fails the read.
    let (download, upload) = (download.unwrap_or_default(), upload.unwrap_or_default());
    let at = cx.diagnostic(&key_at, String::new());
    let index = network.nodes.len();
    if let Some(p) = parent {
        let above = &network.nodes[p];
        for (what, mine, theirs) in [
            ("download", download, above.download),
            ("upload", upload, above.upload),
        ] {
            if mine > theirs {
                cx.warn(
                    &key_at,
                    format!(
                        "node `{}` may use {} {what}, more than `{}` above it ({}): it will never get more than {}",
                        name.value, mine, above.name, theirs, theirs
                    ),
                );
            }
        }
        network.nodes[p].children.push(index);
    }
    network.nodes.push(Node {
        name: name.value.clone(),
        kind,
        download,
        upload,
        parent,
        children: Vec::new(),
        at: (at.line, at.col),
    });
    network.by_name.insert(name.value.clone(), index);
    match member(CHILDREN) {
        None => {}
        Some(Spanned {
            value: Json::Object(children),
            ..
        }) => {
            for (child, node) in children {
                add(cx, network, first, Some(index), child, node);
            }
        }
        Some(v) => cx.error(
            &Some(v.at.clone()),
            format!(
                "`children` of node `{}` is {}: expected an object of nodes by name",
                name.value,
                v.value.kind()
            ),
        ),
    }
}

/// A limit in Mbps: a positive number, decimals allowed.
fn mbps(
    cx: &mut Ctx<'_>,
    node: &str,
    key: &str,
    value: Option<&Spanned<Json>>,
    node_at: &Span,
) -> Option<Rate> {
    let Some(value) = value else {
        cx.error(
            node_at,
            format!("node `{node}` has no `{key}`: every node has a download and an upload limit"),
        );
        return None;
    };
    let at: Span = Some(Range::clone(&value.at));
    let Json::Number(n) = &value.value else {
        cx.error(
            &at,
            format!(
                "`{key}` of node `{node}` is {}: expected a number of Mbps",
                value.value.kind()
            ),
        );
        return None;
    };
    match Rate::parse(&format!("{n}mbit"), None) {
        Ok(r) if r.bits_per_sec() > 0 => Some(r),
        Ok(_) => {
            cx.error(
                &at,
                format!("`{key}` of node `{node}` is 0: nothing under it could send"),
            );
            None
        }
        Err(_) => {
            cx.error(
                &at,
                format!("`{key}` of node `{node}` is `{n}`: expected a positive number of Mbps in digits, as 1000 or 2.5"),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// LibreQoS's example hierarchy, in its shape.
    const EXAMPLE: &str = r#"{
	"Site_1": {
		"downloadBandwidthMbps": 1000,
		"uploadBandwidthMbps": 1000,
		"type": "Site",
		"children": {
			"AP_A": {"downloadBandwidthMbps": 500, "uploadBandwidthMbps": 500, "type": "AP"},
			"Site_3": {
				"downloadBandwidthMbps": 500, "uploadBandwidthMbps": 500, "type": "Site",
				"children": {
					"AP_9": {"downloadBandwidthMbps": 120.5, "uploadBandwidthMbps": 120, "type": "AP"}
				}
			}
		}
	},
	"Site_2": {"downloadBandwidthMbps": 500, "uploadBandwidthMbps": 500, "type": "Site"}
}"#;

    #[test]
    fn nodes_come_out_parents_first_with_their_limits() {
        let n = read_network("network.json", EXAMPLE).expect("reads");
        assert!(n.warnings.is_empty(), "{:?}", n.warnings);
        let names: Vec<&str> = n.nodes.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(names, ["Site_1", "AP_A", "Site_3", "AP_9", "Site_2"]);
        assert_eq!(n.roots().collect::<Vec<_>>(), [0, 4]);
        let ap9 = n.find("AP_9").expect("AP_9");
        assert_eq!(ap9.download, Rate::from_bits_per_sec(120_500_000));
        assert_eq!(ap9.upload, Rate::from_bits_per_sec(120_000_000));
        assert_eq!(ap9.kind.as_deref(), Some("AP"));
        assert_eq!(ap9.parent, n.index("Site_3"));
        assert_eq!(n.nodes[0].children, [1, 2]);
        assert_eq!(ap9.at, (11, 6));
        assert!(n.find("nowhere").is_none());
        let flat = read_network("network.json", "{}\n").expect("flat");
        assert!(flat.nodes.is_empty());
    }

    #[test]
    fn errors_and_warnings_point_at_their_keys() {
        let text = r#"{
  "A": {"downloadBandwidthMbps": 100, "uploadBandwidthMbps": "fast", "children": {
    "B": {"downloadBandwidthMbps": 200, "uploadBandwidthMbps": 10, "lat": 1},
    "A": {"downloadBandwidthMbps": 1, "uploadBandwidthMbps": 1}
  }},
  "C": {"uploadBandwidthMbps": 0},
  "D": [],
  "E": {"downloadBandwidthMbps": 1e3, "uploadBandwidthMbps": 1, "children": []}
}"#;
        let e = read_network("n.json", text).expect_err("bad");
        let e: Vec<String> = e.iter().map(ToString::to_string).collect();
        assert_eq!(
            e,
            [
                "n.json:2:62: `uploadBandwidthMbps` of node `A` is a string: expected a number of Mbps",
                "n.json:4:5: node `A` again (first on line 2): circuits name their parent node by name, so names are unique in the whole file",
                "n.json:6:3: node `C` has no `downloadBandwidthMbps`: every node has a download and an upload limit",
                "n.json:6:32: `uploadBandwidthMbps` of node `C` is 0: nothing under it could send",
                "n.json:7:8: node `D` is an array: a node is an object with downloadBandwidthMbps and uploadBandwidthMbps",
                "n.json:8:34: `downloadBandwidthMbps` of node `E` is `1e3`: expected a positive number of Mbps in digits, as 1000 or 2.5",
                "n.json:8:77: `children` of node `E` is an array: expected an object of nodes by name",
            ]
        );
        let text = r#"{"A": {"downloadBandwidthMbps": 100, "uploadBandwidthMbps": 100, "children": {
  "B": {"downloadBandwidthMbps": 200, "uploadBandwidthMbps": 10, "lat": 1}}}}"#;
        let n = read_network("n.json", text).expect("warnings only");
        let w: Vec<String> = n.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            w,
            [
                "n.json:2:3: node `B` may use 200Mbit download, more than `A` above it (100Mbit): it will never get more than 100Mbit",
                "n.json:2:66: `lat` in node `B` is not one weir reads: ignored",
            ]
        );
    }

    #[test]
    fn the_file_must_be_an_object_of_json() {
        let e = read_network("n.json", "[]").expect_err("array");
        assert_eq!(e[0].to_string(), "n.json:1:1: the file is an array: a network.json is an object of nodes by name (`{}` for a flat network)");
        let e = read_network("n.json", "{\n  \"A\": {,}\n}").expect_err("syntax");
        assert_eq!(
            e[0].to_string(),
            "n.json:2:9: not JSON: expected a key in double quotes"
        );
    }
}
