//! `[subscribers]`: circuits from a ShapedDevices.csv and nodes from a
//! network.json compiled into both directions' trees, packets found by
//! longest prefix, and every mistake reported where it is.

use std::path::{Path, PathBuf};

use weir_config::subscribers::{Synth, DEFAULT_FIRST_MINOR};
use weir_config::{self as config, ClassId, Rate, Tree};
use weir_dataplane::classify::Classifier;
use weir_dataplane::parse::parse_frame;
use weir_dataplane::qdisc::QdiscParams;
use weir_testkit::fixture::config_path;
use weir_testkit::frame::{ipv4_frame, ipv6_frame, udp, Ipv4, Ipv6};

const HEADER: &str = "Circuit ID,Circuit Name,Device ID,Device Name,Parent Node,MAC,IPv4,IPv6,Download Min Mbps,Upload Min Mbps,Download Max Mbps,Upload Max Mbps,Comment,sqm\n";

/// Two trees over a link class 1:1 with a default leaf 1:ffff, and a
/// `[subscribers]` table with `extra` lines, in a directory of its own
/// with `csv` (and `json`, when given) beside it.
struct Case {
    dir: PathBuf,
}

impl Case {
    fn new(name: &str, csv: &str, json: Option<&str>, extra: &str) -> Case {
        let dir = std::env::temp_dir().join(format!(
            "weir-config-subscribers-{name}-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("make the directory");
        std::fs::write(dir.join("devices.csv"), format!("{HEADER}{csv}")).expect("write");
        let network = match json {
            Some(j) => {
                std::fs::write(dir.join("network.json"), j).expect("write");
                "network = \"network.json\"\n"
            }
            None => "",
        };
        // The trees, unless the case names its own.
        let trees = if extra.contains("download =") {
            ""
        } else {
            "download = \"down\"\nupload = \"up\"\n"
        };
        let mut text =
            format!("[subscribers]\ndevices = \"devices.csv\"\n{network}{trees}{extra}\n");
        for tree in ["down", "up"] {
            text.push_str(&format!(
                "[tree.{tree}]\ndefault = \"1:ffff\"\n\
                 [[tree.{tree}.class]]\nid = \"1:1\"\nname = \"link\"\nrate = \"1gbit\"\n\
                 [[tree.{tree}.class]]\nid = \"1:ffff\"\nparent = \"1:1\"\nrate = \"10mbit\"\nceil = \"100mbit\"\n\
                 [[tree.{tree}.class]]\nid = \"1:5\"\nname = \"voip\"\nparent = \"1:1\"\nrate = \"1mbit\"\n\
                 [[tree.{tree}.filter]]\nprio = 1\nprotocol = \"ip\"\nip_proto = \"udp\"\ndport = 5060\nflowid = \"1:5\"\n"
            ));
        }
        std::fs::write(dir.join("weir.toml"), text).expect("write");
        Case { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.join("weir.toml")
    }

    fn load(&self) -> config::Config {
        match config::load(&self.path()) {
            Ok(l) => l.config,
            Err(e) => panic!(
                "refused: {:#?}",
                e.iter().map(ToString::to_string).collect::<Vec<_>>()
            ),
        }
    }

    /// The diagnostics of a configuration that must be refused.
    fn errors(&self) -> Vec<String> {
        match config::load(&self.path()) {
            Ok(_) => panic!("accepted, but it has a mistake"),
            Err(e) => e.iter().map(ToString::to_string).collect(),
        }
    }
}

impl Drop for Case {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn class<'t>(tree: &'t Tree, name: &str) -> &'t config::Class {
    let i = tree
        .class_index(name)
        .unwrap_or_else(|| panic!("no class {name}"));
    &tree.classes[i as usize]
}

fn mbit(n: u64) -> Rate {
    Rate::from_bits_per_sec(n * 1_000_000)
}

#[test]
fn the_example_hangs_circuits_under_their_nodes_in_both_trees() {
    let c = config::load(&config_path("subscribers.toml"))
        .expect("the example loads")
        .config;
    let s = c.subscribers.as_ref().expect("[subscribers]");
    assert_eq!(s.circuits.len(), 5);
    assert_eq!(s.nodes.nodes.len(), 5);
    let down = c.tree("down").expect("tree down");
    let up = c.tree("up").expect("tree up");
    let placed = s
        .placement(s.download.as_ref().expect("download").tree)
        .expect("placed");
    assert_eq!(placed.circuits.len(), 5);

    // A circuit: rate its min, ceil its max, under its AP, fq_codel leaf.
    let c1004 = class(down, "1004");
    assert_eq!(c1004.id, ClassId::new(1, DEFAULT_FIRST_MINOR + 5 + 3));
    assert_eq!(c1004.rate, Rate::from_bits_per_sec(500_000));
    assert_eq!(c1004.ceil, Rate::from_bits_per_sec(2_500_000));
    assert_eq!(
        down.label(c1004.parent.expect("a parent")),
        "1:10004 (AP_C)"
    );
    assert!(matches!(c1004.qdisc, Some(QdiscParams::FqCodel(p)) if p.flows == 64));
    let u1004 = class(up, "1004");
    assert_eq!(
        (u1004.rate, u1004.ceil),
        (
            Rate::from_bits_per_sec(250_000),
            Rate::from_bits_per_sec(1_500_000)
        )
    );

    // A node: ceil its limit, rate what its children guarantee (capped by
    // the limit), inner.
    let site1 = class(down, "Site_1");
    assert_eq!(site1.ceil, mbit(1000));
    assert_eq!(site1.rate, mbit(10 + 10 + 25));
    assert!(!site1.is_leaf());
    assert_eq!(down.label(site1.parent.expect("under 1:1")), "1:1 (link)");
    // A circuit with no Parent Node hangs under `parent`.
    assert_eq!(
        down.label(class(down, "1005").parent.expect("a parent")),
        "1:1 (link)"
    );
    // Parents first, as the core needs.
    for (i, c) in down.classes.iter().enumerate() {
        assert!(c.parent.is_none_or(|p| (p as usize) < i), "{i}");
    }
}

#[test]
fn packets_find_their_circuit_by_the_longest_prefix() {
    let case = Case::new(
        "lpm",
        concat!(
            "net,Net,d1,D,,,198.18.5.0/24,2001:2:0:5::/64,1,1,10,10,,\n",
            "host,Host,d2,D,,,198.18.5.7,2001:2:0:5::7/128,2,2,20,20,,\n",
            "wide,Wide,d3,D,,,198.18.0.0/16,,3,3,30,30,,\n",
        ),
        None,
        "parent = \"link\"",
    );
    let c = case.load();
    for (tree, by_src) in [("down", false), ("up", true)] {
        let t = c.tree(tree).expect("the tree");
        let specs: Vec<_> = t.filters.iter().map(|f| f.spec).collect();
        let classifier = Classifier::new(&specs).expect("the filters compile");
        let outside = [198, 19, 0, 1];
        let v4 = |subscriber: [u8; 4], dport: u16| {
            let (src, dst) = if by_src {
                (subscriber, outside)
            } else {
                (outside, subscriber)
            };
            let ip = Ipv4 {
                src,
                dst,
                ..Ipv4::default()
            };
            ipv4_frame(&ip, &udp(40000, dport, &[0; 16]))
        };
        let v6 = |last: u8| {
            let mut subscriber = [0x20, 0x01, 0, 2, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0];
            subscriber[15] = last;
            let outside = [0x20, 0x01, 0, 2, 0, 0, 0, 0xff, 0, 0, 0, 0, 0, 0, 0, 1];
            let (src, dst) = if by_src {
                (subscriber, outside)
            } else {
                (outside, subscriber)
            };
            let ip = Ipv6 {
                src,
                dst,
                ..Ipv6::default()
            };
            ipv6_frame(&ip, &udp(40000, 443, &[0; 16]))
        };
        let to = |frame: Vec<u8>| {
            let h = parse_frame(&frame).expect("parses");
            classifier.classify(&h).map(|i| t.label(i))
        };
        let label = |name: &str| Some(t.label(t.class_index(name).expect("class")));
        assert_eq!(
            to(v4([198, 18, 5, 7], 443)),
            label("host"),
            "{tree}: the /32"
        );
        assert_eq!(
            to(v4([198, 18, 5, 8], 443)),
            label("net"),
            "{tree}: the /24"
        );
        assert_eq!(
            to(v4([198, 18, 6, 1], 443)),
            label("wide"),
            "{tree}: the /16"
        );
        assert_eq!(to(v4([198, 19, 6, 1], 443)), None, "{tree}: no circuit");
        assert_eq!(to(v6(7)), label("host"), "{tree}: the /128");
        assert_eq!(to(v6(8)), label("net"), "{tree}: the /64");
        // The file's own filter at a lower prio is asked first.
        assert_eq!(
            to(v4([198, 18, 5, 7], 5060)),
            label("voip"),
            "{tree}: prio 1 first"
        );
    }
}

#[test]
fn sqm_cells_and_the_leaf_template_choose_each_circuits_queue() {
    let case = Case::new(
        "sqm",
        concat!(
            "a,A,d1,D,,,198.18.5.1,,1,1,10,10,,\n",
            "b,B,d2,D,,,198.18.5.2,,1,1,10,10,,none/cake\n",
            "c,C,d3,D,,,198.18.5.3,,1,1,10,10,,fq_codel\n",
        ),
        None,
        "parent = \"1:1\"\n[subscribers.leaf]\nkind = \"sfq\"\nperturb = 10",
    );
    let loaded = config::load(&case.path()).expect("loads");
    let down = loaded.config.tree("down").expect("down");
    let up = loaded.config.tree("up").expect("up");
    assert!(matches!(class(down, "a").qdisc, Some(QdiscParams::Sfq(_))));
    assert!(matches!(class(down, "b").qdisc, Some(QdiscParams::Fifo(_))));
    assert!(matches!(
        class(up, "b").qdisc,
        Some(QdiscParams::FqCodel(_))
    ));
    assert!(matches!(class(up, "c").qdisc, Some(QdiscParams::FqCodel(p)) if p.flows == 64));
    let w: Vec<String> = loaded.warnings.iter().map(|w| w.warning_line()).collect();
    assert!(
        w.iter().any(|w| w.contains("1 circuit(s) ask for cake")),
        "{w:?}"
    );
}

/// Seven nested nodes N1 > … > N7: with `parent` 1:1 at depth 1, a circuit
/// under N7 is at depth 9.
fn deep_json() -> String {
    let mut s = String::new();
    for n in (1..=7).rev() {
        let children = if s.is_empty() {
            String::new()
        } else {
            format!(", \"children\": {{{s}}}")
        };
        s = format!(
            "\"N{n}\": {{\"downloadBandwidthMbps\": 9, \"uploadBandwidthMbps\": 9{children}}}"
        );
    }
    format!("{{{s}}}")
}

#[test]
fn mistakes_are_reported_where_they_are() {
    let deep = deep_json();
    let good = "a,A,d1,D,AP,,198.18.5.1,,1,1,10,10,,\n";
    let net = r#"{"AP": {"downloadBandwidthMbps": 100, "uploadBandwidthMbps": 100}}"#;
    let cases: &[(&str, &str, Option<&str>, &str, &str)] = &[
        (
            "tree",
            good,
            Some(net),
            "parent = \"1:1\"\ndownload = \"nope\"",
            "`download` names tree `nope`, which is not defined",
        ),
        (
            "leafparent",
            good,
            Some(net),
            "parent = \"1:ffff\"",
            "is a leaf; expected an inner class",
        ),
        (
            "noparent",
            good,
            Some(net),
            "parent = \"1:77\"",
            "`parent` = \"1:77\" is not a class of tree `down`",
        ),
        (
            "ids",
            good,
            Some(net),
            "parent = \"1:1\"\nfirst_id = \"fffe\"",
            "class 1:ffff of tree `down` is in the ids the subscribers take",
        ),
        (
            "badid",
            good,
            Some(net),
            "first_id = \"zz\"",
            "is not a class minor",
        ),
        (
            "name",
            "link,A,d1,D,,,198.18.5.1,,1,1,10,10,,\n",
            None,
            "",
            "the name `link` is taken twice",
        ),
        (
            "minmax",
            "a,A,d1,D,,,198.18.5.1,,20,1,10,10,,\n",
            None,
            "",
            "devices.csv:2:24: Download Min Mbps (20) is above Download Max Mbps (10)",
        ),
        (
            "orphan",
            good,
            None,
            "",
            "devices.csv:2:10: circuit `a` hangs under `AP`, but no network hierarchy was given",
        ),
        (
            "key",
            good,
            Some(net),
            "colour = \"blue\"",
            "unknown field `colour`",
        ),
        (
            "leafkind",
            good,
            Some(net),
            "[subscribers.leaf]\nkind = \"cake\"",
            "unknown qdisc kind \"cake\"",
        ),
        (
            "prio",
            good,
            Some(net),
            "prio = 0",
            "`prio` = 0 is out of range",
        ),
        (
            "tiny",
            "a,A,d1,D,,,198.18.5.1,,0.000005,1,10,10,,\n",
            None,
            "",
            "is below 1 byte/s",
        ),
        (
            "deep",
            "a,A,d1,D,N7,,198.18.5.1,,1,1,10,10,,\n",
            Some(deep.as_str()),
            "parent = \"1:1\"",
            "would be 9 levels deep",
        ),
    ];
    for (name, csv, json, extra, want) in cases {
        let case = Case::new(name, csv, *json, extra);
        println!("case {name}");
        let e = case.errors();
        assert!(
            e.iter().any(|e| e.contains(want)),
            "{name}: want {want:?} in {e:#?}"
        );
    }

    // An unreadable file is an error at its `devices` value in the TOML.
    let case = Case::new("unreadable", good, Some(net), "");
    std::fs::remove_file(case.dir.join("devices.csv")).expect("remove");
    let e = case.errors();
    let toml = case.path().display().to_string();
    assert!(
        e.iter()
            .any(|e| e.starts_with(&format!("{toml}:2:11: cannot read `devices`"))),
        "{e:#?}"
    );
}

/// A reload compares trees by class id: a circuit keeps its id when
/// circuits before it are removed, and a new one takes an id no class had.
#[test]
fn circuits_keep_their_class_ids_across_a_reload() {
    let first = Case::new(
        "ids1",
        concat!(
            "a,A,d1,D,,,198.18.5.1,,1,1,10,10,,\n",
            "b,B,d2,D,,,198.18.5.2,,1,1,10,10,,\n",
            "c,C,d3,D,,,198.18.5.3,,1,1,10,10,,\n",
        ),
        None,
        "parent = \"1:1\"",
    );
    let old = first.load();
    let second = Case::new(
        "ids2",
        concat!(
            "a,A,d1,D,,,198.18.5.1,,1,1,10,10,,\n",
            "c,C,d3,D,,,198.18.5.3,,1,1,10,10,,\n",
            "n,N,d4,D,,,198.18.5.4,,1,1,10,10,,\n",
        ),
        None,
        "parent = \"1:1\"",
    );
    let mut new = second.load();
    let id =
        |c: &config::Config, tree: &str, name: &str| class(c.tree(tree).expect("tree"), name).id;
    // As loaded, ids follow the file: c took b's.
    assert_eq!(id(&new, "down", "c"), id(&old, "down", "b"));
    config::subscribers::keep_ids(&old, &mut new);
    for tree in ["down", "up"] {
        assert_eq!(id(&new, tree, "a"), id(&old, tree, "a"));
        assert_eq!(id(&new, tree, "c"), id(&old, tree, "c"));
        let fresh = id(&new, tree, "n");
        assert!(
            old.tree(tree)
                .expect("tree")
                .classes
                .iter()
                .all(|k| k.id != fresh),
            "{tree}: {fresh} is new"
        );
        // Filters still point at the same classes (by index).
        let t = new.tree(tree).expect("tree");
        let c = t.class_index("c").expect("c");
        assert!(t.filters.iter().any(|f| f.class() == Some(c)));
    }
}

#[test]
fn ten_thousand_generated_circuits_load_and_build() {
    let dir = std::env::temp_dir().join(format!(
        "weir-config-subscribers-10k-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("make the directory");
    let g = Synth::new(10_000, 200);
    std::fs::write(dir.join("ShapedDevices.csv"), g.devices_csv()).expect("write");
    std::fs::write(dir.join("network.json"), g.network_json()).expect("write");
    let example = std::fs::read_to_string(config_path("subscribers.toml")).expect("the example");
    std::fs::write(dir.join("weir.toml"), example.replace("subscribers/", "")).expect("write");
    let loaded = config::load(&dir.join("weir.toml"));
    let _ = std::fs::remove_dir_all(&dir);
    let c = loaded.expect("loads").config;
    let s = c.subscribers.as_ref().expect("[subscribers]");
    assert_eq!(s.circuits.len(), 10_000);
    for p in [&s.download, &s.upload] {
        let p = p.as_ref().expect("both directions");
        let t = &c.trees[p.tree as usize];
        // 2 classes of the file, 20 sites, 200 APs, 10,000 circuits.
        assert_eq!(t.classes.len(), 2 + 220 + 10_000);
        assert_eq!(t.filters.len(), 20_000);
        for (j, &k) in p.circuits.iter().enumerate() {
            assert_eq!(
                t.classes[k as usize].name.as_deref(),
                Some(s.circuits[j].id.as_str())
            );
        }
        let shaper = weir_dataplane::shaper::Shaper::new(&t.shaper_spec(1), 0);
        assert!(shaper.is_ok(), "{}: {:?}", t.name, shaper.err());
    }
    assert!(Path::new(&s.devices).ends_with("ShapedDevices.csv"));
}

mod ids_over_changes {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{HashMap, HashSet};

    /// A ShapedDevices.csv of the circuits `ids` (circuit n at 198.18.6.n).
    fn csv(ids: &[u8]) -> String {
        let mut s = HEADER.to_string();
        for n in ids {
            s.push_str(&format!("k{n},K,d{n},D,,,198.18.6.{n},,1,1,10,10,,\n"));
        }
        s
    }

    const TOML: &str = "[subscribers]\ndevices = \"d.csv\"\ndownload = \"down\"\nupload = \"up\"\nparent = \"1:1\"\n\
        [tree.down]\ndefault = \"1:ffff\"\n[[tree.down.class]]\nid = \"1:1\"\nrate = \"1gbit\"\n[[tree.down.class]]\nid = \"1:ffff\"\nparent = \"1:1\"\nrate = \"1mbit\"\n\
        [tree.up]\ndefault = \"1:ffff\"\n[[tree.up.class]]\nid = \"1:1\"\nrate = \"1gbit\"\n[[tree.up.class]]\nid = \"1:ffff\"\nparent = \"1:1\"\nrate = \"1mbit\"\n";

    fn compile(ids: &[u8]) -> config::Config {
        let given = config::subscribers::Given {
            devices: csv(ids),
            network: None,
        };
        config::parse_with(TOML, "w.toml", Some(&given))
            .unwrap_or_else(|e| panic!("{e:?}"))
            .config
    }

    fn ids_of(c: &config::Config, tree: &str) -> HashMap<String, ClassId> {
        let t = c.tree(tree).expect("tree");
        t.classes
            .iter()
            .filter_map(|k| k.name.clone().map(|n| (n, k.id)))
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Any sequence of files (circuits added, removed, reordered):
        /// after `keep_ids`, a circuit that stays keeps its class id, a new
        /// one takes an id that no class of the running tree has, and no
        /// two classes of a tree share an id.
        #[test]
        fn circuits_keep_their_ids_through_any_sequence_of_files(
            files in proptest::collection::vec(proptest::collection::btree_set(1u8..60, 0..12), 1..8),
            shuffle in any::<u64>(),
        ) {
            let mut running = compile(&[]);
            for (step, set) in files.iter().enumerate() {
                let mut order: Vec<u8> = set.iter().copied().collect();
                // Reordered in the file, as an operator's export may be.
                let r = order.len().max(1);
                order.rotate_left((shuffle as usize + step) % r);
                let mut new = compile(&order);
                config::subscribers::keep_ids(&running, &mut new);
                for tree in ["down", "up"] {
                    let before = ids_of(&running, tree);
                    let after = ids_of(&new, tree);
                    let all_before: HashSet<ClassId> =
                        running.tree(tree).expect("tree").classes.iter().map(|k| k.id).collect();
                    for (name, id) in &after {
                        match before.get(name) {
                            Some(old) => prop_assert_eq!(old, id, "{} moved", name),
                            None => prop_assert!(!all_before.contains(id), "{} took a used id {}", name, id),
                        }
                    }
                    let t = new.tree(tree).expect("tree");
                    let unique: HashSet<ClassId> = t.classes.iter().map(|k| k.id).collect();
                    prop_assert_eq!(unique.len(), t.classes.len());
                    prop_assert!(weir_dataplane::shaper::Shaper::new(&t.shaper_spec(1), 0).is_ok());
                }
                running = new;
            }
        }
    }
}
