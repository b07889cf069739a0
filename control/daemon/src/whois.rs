//! `weir whois ADDRESS`: which circuit of `[subscribers]` holds an address
//! (its device's longest prefix that contains it, as the trees' filters
//! choose), and the circuit's class in each direction: its rates and its
//! counters now.

use std::net::IpAddr;

use serde_json::json;
use weir_api::snapshot::{ClassStats, TreeStats};
use weir_api::Response;
use weir_config::subscribers::{Device, Placement, Subscribers};
use weir_config::units::{sprint_rate, sprint_size};
use weir_config::Config;

/// The circuit and device holding `addr`, and the prefix that does
/// (`198.18.1.0/24`): the longest, as the filters match.
pub(crate) fn find(subs: &Subscribers, addr: IpAddr) -> Option<(usize, &Device, String)> {
    let mut best: Option<(u8, usize, &Device, String)> = None;
    for (j, c) in subs.circuits.iter().enumerate() {
        for d in &c.devices {
            let held = match addr {
                IpAddr::V4(a) => d
                    .ipv4
                    .iter()
                    .filter(|p| {
                        holds(
                            u128::from(u32::from(p.addr)),
                            p.len,
                            u128::from(u32::from(a)),
                            32,
                        )
                    })
                    .map(|p| (p.len, format!("{}/{}", p.addr, p.len)))
                    .max_by_key(|(len, _)| *len),
                IpAddr::V6(a) => d
                    .ipv6
                    .iter()
                    .filter(|p| holds(u128::from(p.addr), p.len, u128::from(a), 128))
                    .map(|p| (p.len, format!("{}/{}", p.addr, p.len)))
                    .max_by_key(|(len, _)| *len),
            };
            if let Some((len, text)) = held {
                if best.as_ref().is_none_or(|b| len > b.0) {
                    best = Some((len, j, d, text));
                }
            }
        }
    }
    best.map(|(_, j, d, text)| (j, d, text))
}

/// Whether the prefix `net/len` of a `bits`-bit family holds `addr`.
fn holds(net: u128, len: u8, addr: u128, bits: u32) -> bool {
    let len = u32::from(len).min(bits);
    if len == 0 {
        return true;
    }
    let shift = bits - len;
    (net >> shift) == (addr >> shift)
}

/// The answer: text for people, JSON with `as_json`; an error when the
/// address is not one, there are no subscribers, or no circuit holds it.
pub(crate) fn answer(
    config: &Config,
    stats: &[TreeStats],
    address: &str,
    as_json: bool,
) -> Response {
    let Ok(addr) = address.trim().parse::<IpAddr>() else {
        return Response::error(format!(
            "`{address}` is not an IP address; expected one like 198.18.1.1 or 2001:db8::1"
        ));
    };
    let Some(subs) = &config.subscribers else {
        return Response::error(
            "the configuration has no [subscribers]: whois finds the circuit that holds an address",
        );
    };
    let Some((j, device, prefix)) = find(subs, addr) else {
        return Response::error(format!(
            "no circuit holds {addr}: its traffic goes where the trees' own filters, or their default classes, send it"
        ));
    };
    let circuit = &subs.circuits[j];
    let ways = [("download", &subs.download), ("upload", &subs.upload)];
    // The placement is built with the trees and renumbered with them; one
    // out of step is a bug to report, not a reason to stop weir.
    let in_step = |p: &Placement| {
        config
            .trees
            .get(p.tree as usize)
            .zip(p.circuits.get(j))
            .is_some_and(|(t, &k)| (k as usize) < t.classes.len())
    };
    if ways
        .iter()
        .any(|(_, p)| p.as_ref().is_some_and(|p| !in_step(p)))
    {
        return Response::error(format!(
            "circuit {} has no class in the running trees (its placement is out of step with them): weir reload places it again",
            circuit.id
        ));
    }
    if as_json {
        let mut v = json!({
            "address": addr.to_string(),
            "circuit": {
                "id": circuit.id,
                "name": circuit.name,
                "parent": circuit.parent,
                "device": device.id,
                "device_name": device.name,
                "prefix": prefix,
            },
        });
        for (way, placed) in ways {
            if let Some(p) = placed {
                v[way] = direction_json(config, stats, p, j);
            }
        }
        return Response::json(v);
    }
    let mut s = format!(
        "{addr}: circuit {} \"{}\" under {}, device {} \"{}\" ({prefix})\n",
        circuit.id,
        circuit.name,
        circuit.parent.as_deref().unwrap_or("(root)"),
        device.id,
        device.name,
    );
    for (way, placed) in ways {
        if let Some(p) = placed {
            s.push_str(&direction_text(config, stats, way, p, j));
        }
    }
    Response::text(s)
}

/// The class of circuit `j` in placement `p`'s tree, and its live counters
/// (by class id, in case the stats are of another configuration).
fn class_of<'a>(
    config: &'a Config,
    stats: &'a [TreeStats],
    p: &Placement,
    j: usize,
) -> (String, &'a weir_config::Class, Option<&'a ClassStats>) {
    let tree = &config.trees[p.tree as usize];
    let class = &tree.classes[p.circuits[j] as usize];
    let id = class.id.to_string();
    let live = stats.iter().find(|t| t.name == tree.name).and_then(|t| {
        t.classes
            .iter()
            .find(|c| c.classid.as_deref() == Some(id.as_str()))
    });
    (tree.name.clone(), class, live)
}

fn direction_text(
    config: &Config,
    stats: &[TreeStats],
    way: &str,
    p: &Placement,
    j: usize,
) -> String {
    let (tree, class, live) = class_of(config, stats, p, j);
    let parent = class
        .parent
        .map(|i| config.trees[p.tree as usize].label(i))
        .unwrap_or_else(|| "root".to_string());
    let mut s = format!(
        "  {way}: tree {tree} class {} parent {parent} rate {} ceil {}",
        class.id, class.rate, class.ceil
    );
    match live {
        Some(c) => {
            s.push_str(&format!(
                "\n    Sent {} bytes {} pkt (dropped {}, overlimits {}) backlog {} {}p",
                c.bytes,
                c.packets,
                c.drops,
                c.overlimits,
                sprint_size(c.backlog),
                c.qlen
            ));
            if let Some(r) = c.rate_est {
                s.push_str(&format!(", now {}", sprint_rate(r)));
            }
            s.push('\n');
        }
        None => s.push_str("\n    (no counters: the tree is not running)\n"),
    }
    s
}

fn direction_json(
    config: &Config,
    stats: &[TreeStats],
    p: &Placement,
    j: usize,
) -> serde_json::Value {
    let (tree, class, live) = class_of(config, stats, p, j);
    json!({
        "tree": tree,
        "classid": class.id.to_string(),
        "rate": class.rate.bytes_per_sec(),
        "ceil": class.ceil.bytes_per_sec(),
        "stats": live,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Config {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/subscribers.toml");
        weir_config::load(std::path::Path::new(path))
            .expect("the example loads")
            .config
    }

    #[test]
    fn the_longest_prefix_names_the_circuit() {
        let c = example();
        let subs = c.subscribers.as_ref().expect("[subscribers]");
        let id = |a: &str| {
            find(subs, a.parse().expect("address"))
                .map(|(j, _, p)| (subs.circuits[j].id.clone(), p))
        };
        assert_eq!(
            id("198.18.2.5"),
            Some(("1004".into(), "198.18.2.0/29".into()))
        );
        assert_eq!(
            id("198.18.1.4"),
            Some(("1003".into(), "198.18.1.4/32".into()))
        );
        assert_eq!(
            id("2001:2:0:1001::9"),
            Some(("1001".into(), "2001:2:0:1001::/64".into()))
        );
        assert_eq!(id("198.18.9.9"), None);
    }

    #[test]
    fn the_answer_gives_both_directions() {
        let c = example();
        let r = answer(&c, &[], "198.18.2.5", false);
        let text = r.text.expect("an answer");
        assert!(
            text.starts_with("198.18.2.5: circuit 1004 \"Farm road 7\" under AP_C"),
            "{text}"
        );
        assert!(text.contains("download: tree down class 1:10008 parent 1:10004 (AP_C) rate 500Kbit ceil 2500Kbit"), "{text}");
        assert!(text.contains("upload: tree up class 1:10008"), "{text}");
        let j = answer(&c, &[], "198.18.2.5", true).json.expect("json");
        assert_eq!(j["circuit"]["id"], "1004");
        assert_eq!(j["download"]["classid"], "1:10008");
        assert_eq!(j["upload"]["rate"], 250_000 / 8);
        for bad in ["198.18.9.9", "nonsense"] {
            let r = answer(&c, &[], bad, false);
            assert!(!r.ok && r.error.is_some(), "{bad}");
        }
    }

    #[test]
    fn a_placement_out_of_step_is_an_error_not_a_panic() {
        let mut c = example();
        let subs = c.subscribers.as_mut().expect("subscribers");
        for k in &mut subs.upload.as_mut().expect("upload").circuits {
            *k = 99_999;
        }
        for as_json in [false, true] {
            let r = answer(&c, &[], "198.18.2.5", as_json);
            let e = r.error.expect("an error");
            assert!(
                e.contains("circuit 1004 has no class in the running trees"),
                "{e}"
            );
        }
    }

    #[test]
    fn prefixes_hold_what_they_cover() {
        let v4 = |a: [u8; 4]| u128::from(u32::from_be_bytes(a));
        assert!(holds(v4([198, 18, 1, 0]), 24, v4([198, 18, 1, 77]), 32));
        assert!(!holds(v4([198, 18, 1, 0]), 24, v4([198, 18, 2, 1]), 32));
        assert!(holds(v4([198, 18, 1, 7]), 32, v4([198, 18, 1, 7]), 32));
        assert!(holds(0, 0, v4([1, 2, 3, 4]), 32));
        let v6 = |s: &str| u128::from(s.parse::<std::net::Ipv6Addr>().expect("v6"));
        assert!(holds(v6("2001:2:0:5::"), 64, v6("2001:2:0:5::7"), 128));
        assert!(!holds(v6("2001:2:0:5::"), 64, v6("2001:2:0:6::7"), 128));
    }
}
