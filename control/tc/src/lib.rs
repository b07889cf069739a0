//! weir-tc: the kernel `tc` script equivalent to one of weir's trees, as
//! `weir tc` prints it ([`cli_tc`] loads the config; [`script`] translates
//! one tree). Returns the script as a string and prints nothing; depends on
//! the core and weir-config only.
//!
//! For side-by-side runs (the lab's twin path, the benchmark's kernel HTB
//! baseline) the kernel must shape with the same settings weir does: the
//! same rate, ceil, burst, cburst, prio and quantum in bytes (weir's
//! defaults already resolved, so neither side guesses), the same leaf
//! kinds and the same filters. The output is a `tc -batch` script (no
//! leading `tc`, `#` comments), e.g.
//!
//! ```text
//! weir tc -c config/lab.toml --tree up --dev k-out | tc -batch -
//! ```
//!
//! What the kernel cannot say is reported, never silently changed: a class
//! minor above 0xffff, or a VLAN match (u32 cannot see the tag on most
//! drivers) is an error; a leaf kind whose module the kernel lacks can be
//! replaced by a pfifo of the same depth with `--leaf-fallback pfifo`, and
//! each replacement is a comment in the script. A negative `overhead`,
//! which htb's own option cannot carry (tc reads it as a u16), is
//! translated to the root qdisc's size table (`stab overhead N`), with a
//! comment saying so and what differs.

use std::fmt::Write as _;

use thiserror::Error;
use weir_dataplane::classify::{FilterSpec, IpPrefix, L3Match, PortMatch};
use weir_dataplane::qdisc::{FifoLimit, QdiscParams};
use weir_dataplane::remark::Remark;

use weir_config::{ClassId, Diagnostic, Dscp, Tree};

/// What to do with leaf kinds the target kernel may not have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LeafFallback {
    /// Emit every leaf as configured.
    #[default]
    None,
    /// Emit sfq / red / fq_codel leaves as a pfifo of the same depth.
    Pfifo,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TcError {
    #[error("class {id}: the kernel's class minor is 16 bits; expected a minor of at most ffff (weir allows 32 bits, tc does not)")]
    MinorTooLarge { id: ClassId },
    #[error("class {id}: the kernel's major is 16 bits; expected a major of at most ffff")]
    MajorTooLarge { id: ClassId },
    #[error("tree has classes under more than one major ({a:x}: and {b:x}:); a kernel HTB qdisc has one handle")]
    MixedMajors { a: u32, b: u32 },
    #[error("filter {index} matches a VLAN id, which kernel u32 cannot express portably; expected a tree without VLAN filters for the kernel twin")]
    VlanFilter { index: usize },
    #[error("filter {index} matches EtherType {ethertype:#06x}; kernel u32 here only takes ip/ipv6 filters")]
    EtherTypeFilter { index: usize, ethertype: u16 },
}

/// Why `weir tc` could not produce a script. The messages are what the
/// command prints after `weir tc: `.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CliTcError {
    /// The config did not load: one line per diagnostic.
    #[error("{}", lines(.0))]
    Config(Vec<Diagnostic>),
    #[error("{path}: no tree \"{tree}\"; expected one of: {known}")]
    NoTree {
        path: String,
        tree: String,
        /// The config's tree names, comma-separated.
        known: String,
    },
    #[error("{path}: tree {tree}: {source}")]
    Tree {
        path: String,
        tree: String,
        source: TcError,
    },
}

fn lines(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// `weir tc`: load `path` and translate its tree `tree`.
pub fn cli_tc(
    path: &std::path::Path,
    tree: &str,
    dev: &str,
    fallback: LeafFallback,
) -> Result<String, CliTcError> {
    let loaded = weir_config::load(path).map_err(CliTcError::Config)?;
    let c = &loaded.config;
    let t = c.tree(tree).ok_or_else(|| CliTcError::NoTree {
        path: path.display().to_string(),
        tree: tree.to_string(),
        known: c
            .trees
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    })?;
    script(t, dev, fallback).map_err(|source| CliTcError::Tree {
        path: path.display().to_string(),
        tree: tree.to_string(),
        source,
    })
}

/// What weir does that tc can't say, one comment line each: washing,
/// DSCP remarks and apps (a flow table deciding by ports of either end,
/// server names and behaviour; u32 sees one packet at a time). The script
/// still shapes; those flows go where its filters or default send them.
fn not_in_tc(out: &mut String, tree: &Tree) {
    if tree.wash {
        let _ = writeln!(
            out,
            "# wash: not expressed in tc (weir clears the DSCP of frames entering this tree)"
        );
    }
    for c in &tree.classes {
        if let Some(r) = c.remark {
            let _ = writeln!(
                out,
                "# class {}: DSCP remark {} not expressed in tc",
                c.id,
                remark_text(r)
            );
        }
    }
    let goes = if tree.filters.is_empty() {
        let default = tree
            .classes
            .get(tree.default_class as usize)
            .map_or_else(|| "?".to_string(), |c| c.id.to_string());
        format!("to the default class {default}")
    } else {
        "where the filters above send them, else to the default class".to_string()
    };
    for a in &tree.apps.spec.apps {
        let class = tree
            .classes
            .get(a.class as usize)
            .map_or_else(|| "?".to_string(), |c| c.id.to_string());
        let remark = a
            .remark
            .map_or_else(String::new, |r| format!(", DSCP {}", remark_text(r)));
        let _ = writeln!(
            out,
            "# app {} (class {class}{remark}): apps can't be expressed in tc; its flows go {goes}",
            a.name
        );
    }
}

fn remark_text(r: Remark) -> String {
    let name = |d: u8| Dscp::new(d).map_or_else(|| d.to_string(), |d| d.to_string());
    match r {
        Remark::Set(d) => name(d),
        Remark::IfUnmarked(d) => format!("{} if unmarked", name(d)),
        Remark::Wash => "wash".to_string(),
    }
}

/// The tc script for `tree` on `dev`.
pub fn script(tree: &Tree, dev: &str, fallback: LeafFallback) -> Result<String, TcError> {
    let mut major = None;
    for c in &tree.classes {
        if c.id.major > 0xffff {
            return Err(TcError::MajorTooLarge { id: c.id });
        }
        if c.id.minor > 0xffff {
            return Err(TcError::MinorTooLarge { id: c.id });
        }
        match major {
            None => major = Some(c.id.major),
            Some(m) if m != c.id.major => {
                return Err(TcError::MixedMajors {
                    a: m,
                    b: c.id.major,
                })
            }
            Some(_) => {}
        }
    }
    let major = major.unwrap_or(1);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# weir tree \"{}\" as kernel HTB on {dev} (generated by `weir tc`)",
        tree.name
    );
    let default_minor = tree
        .classes
        .get(tree.default_class as usize)
        .map_or(0, |c| c.id.minor);
    // tc reads htb's `overhead` as a u16 (iproute2 q_htb.c, get_u16), so
    // `overhead -14` is refused. A negative overhead is translated to the
    // root qdisc's size table instead, whose overhead is signed (tc-stab,
    // `stab overhead -14`): every packet's length is then len + overhead
    // (at least 1, the kernel's __qdisc_calculate_pkt_len) before htb
    // charges it, as weir charges max(len + overhead, 0), then `mpu`.
    let stab = if tree.overhead < 0 {
        let _ = writeln!(
            out,
            "# overhead {o}: tc's htb overhead is unsigned, so the root size table (stab overhead {o}) carries it; unlike weir's, the kernel's leaves and byte counters also see the shortened lengths",
            o = tree.overhead
        );
        format!(" stab overhead {}", tree.overhead)
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "qdisc replace dev {dev} root handle {major:x}:{stab} htb default {default_minor:x} r2q {}",
        tree.r2q
    );
    let mut linklayer = String::new();
    if tree.overhead > 0 {
        let _ = write!(linklayer, " overhead {}", tree.overhead);
    }
    if tree.mpu != 0 {
        let _ = write!(linklayer, " mpu {}", tree.mpu);
    }
    for c in &tree.classes {
        let parent = match c.parent {
            Some(p) => tree.classes[p as usize].id.to_string(),
            None => format!("{major:x}:"),
        };
        let _ = writeln!(
            out,
            "class add dev {dev} parent {parent} classid {} htb rate {}bit ceil {}bit burst {}b cburst {}b prio {} quantum {}{linklayer}",
            c.id,
            c.rate.bits_per_sec(),
            c.ceil.bits_per_sec(),
            c.burst.bytes(),
            c.cburst.bytes(),
            c.prio,
            c.quantum.bytes(),
        );
    }
    // Leaf handles: one per leaf, numbered after the tree's own major so
    // they never collide with it.
    let mut handle = major.max(0xff) + 1;
    for c in &tree.classes {
        let Some(q) = &c.qdisc else { continue };
        let _ = write!(out, "{}", leaf(dev, &c.id.to_string(), handle, q, fallback));
        handle += 1;
    }
    for (index, f) in tree.filters.iter().enumerate() {
        // tc's u32 takes `action drop` where a filter has no class (the
        // gact action; `modprobe act_gact` on a kernel without it).
        let target = match f.class() {
            Some(c) => format!("flowid {}", tree.classes[c as usize].id),
            None => "action drop".to_string(),
        };
        filter(&mut out, dev, major, f.prio, index, &f.spec, &target)?;
    }
    not_in_tc(&mut out, tree);
    Ok(out)
}

fn leaf(dev: &str, parent: &str, handle: u32, q: &QdiscParams, fallback: LeafFallback) -> String {
    let head = format!("qdisc add dev {dev} parent {parent} handle {handle:x}:");
    let pfifo = |limit: u32, kind: &str| {
        format!("# {parent}: {kind} replaced by pfifo limit {limit} (--leaf-fallback pfifo)\n{head} pfifo limit {limit}\n")
    };
    match q {
        QdiscParams::Fifo(FifoLimit::Packets(n)) => format!("{head} pfifo limit {n}\n"),
        QdiscParams::Fifo(FifoLimit::Bytes(n)) => format!("{head} bfifo limit {n}b\n"),
        QdiscParams::Sfq(p) => match fallback {
            LeafFallback::Pfifo => pfifo(p.limit, "sfq"),
            LeafFallback::None => {
                // Linux caps `flows` at any `limit` it is sent (sfq_change).
                // More flows than the limit only comes from tc's default
                // limit (127, the config applies the same cap to a limit
                // it was given), so that limit is left for the kernel to
                // default, or its 128 flows would become 127.
                let limit = if p.flows > p.limit {
                    String::new()
                } else {
                    format!(" limit {}", p.limit)
                };
                format!(
                    "{head} sfq perturb {} quantum {}b{limit} divisor {} flows {} depth {}\n",
                    p.perturb_ns / 1_000_000_000,
                    p.quantum,
                    p.divisor,
                    p.flows,
                    p.depth
                )
            }
        },
        QdiscParams::Red(p) => match fallback {
            LeafFallback::Pfifo => pfifo((p.limit / p.avpkt.max(1)).max(1), "red"),
            LeafFallback::None => {
                let probability = f64::from(p.probability) / 4_294_967_296.0;
                let mut s = format!(
                    "{head} red limit {}b min {}b max {}b avpkt {}b burst {} probability {probability} bandwidth {}bit",
                    p.limit,
                    p.min,
                    p.max,
                    p.avpkt,
                    p.burst,
                    p.bandwidth * 8
                );
                for (on, word) in [(p.ecn, "ecn"), (p.harddrop, "harddrop"), (p.adaptive, "adaptive")] {
                    if on {
                        s.push(' ');
                        s.push_str(word);
                    }
                }
                s.push('\n');
                s
            }
        },
        QdiscParams::FqCodel(p) => match fallback {
            LeafFallback::Pfifo => pfifo(p.limit, "fq_codel"),
            LeafFallback::None => format!(
                "{head} fq_codel limit {} flows {} quantum {} target {}us interval {}us memory_limit {} drop_batch {} {}\n",
                p.limit,
                p.flows,
                p.quantum,
                p.target_ns / 1000,
                p.interval_ns / 1000,
                p.memory_limit,
                p.drop_batch_size,
                if p.ecn { "ecn" } else { "noecn" }
            ),
        },
    }
}

/// Aligned (value, mask) blocks that tile a port range, as the classifier
/// itself compiles ranges.
fn port_blocks(m: PortMatch) -> Vec<(u16, u16)> {
    match m {
        PortMatch::Masked { value, mask } => vec![(value & mask, mask)],
        PortMatch::Range { lo, hi } => {
            let mut out = Vec::new();
            let (mut lo, hi) = (u32::from(lo), u32::from(hi));
            while lo <= hi {
                // The largest aligned block starting at lo that stays in range.
                let mut size = if lo == 0 {
                    1 << 16
                } else {
                    1u32 << lo.trailing_zeros()
                };
                while lo + size - 1 > hi {
                    size >>= 1;
                }
                out.push((lo as u16, (0x1_0000 - size) as u16));
                lo += size;
            }
            out
        }
    }
}

fn prefix_text(p: &IpPrefix) -> String {
    if p.v6 {
        format!("{}/{}", std::net::Ipv6Addr::from(p.addr), p.len)
    } else {
        format!("{}/{}", std::net::Ipv4Addr::from(p.addr as u32), p.len)
    }
}

fn filter(
    out: &mut String,
    dev: &str,
    major: u32,
    prio: u16,
    index: usize,
    f: &FilterSpec,
    target: &str,
) -> Result<(), TcError> {
    if f.vlan.is_some() {
        return Err(TcError::VlanFilter { index });
    }
    let families: &[bool] = match f.l3 {
        L3Match::EtherType(ethertype) => return Err(TcError::EtherTypeFilter { index, ethertype }),
        L3Match::Ipv4 => &[false],
        L3Match::Ipv6 => &[true],
        L3Match::Any => match (f.src.or(f.dst)).map(|p| p.v6) {
            Some(v6) if v6 => &[true],
            Some(_) => &[false],
            None => &[false, true],
        },
    };
    let no_ip_fields = f.src.is_none()
        && f.dst.is_none()
        && f.ip_proto.is_none()
        && f.tos.is_none()
        && f.sport.is_none()
        && f.dport.is_none();
    if f.l3 == L3Match::Any && no_ip_fields {
        // Matches everything, non-IP included.
        let _ = writeln!(
            out,
            "filter add dev {dev} parent {major:x}: protocol all prio {prio} u32 match u32 0 0 {target}"
        );
        return Ok(());
    }
    let sports = f.sport.map_or(vec![None], |m| {
        port_blocks(m).into_iter().map(Some).collect()
    });
    let dports = f.dport.map_or(vec![None], |m| {
        port_blocks(m).into_iter().map(Some).collect()
    });
    for &v6 in families {
        let (proto, ip) = if v6 { ("ipv6", "ip6") } else { ("ip", "ip") };
        for sp in &sports {
            for dp in &dports {
                let mut m = String::new();
                if let Some((v, mask)) = f.tos {
                    let field = if v6 { "priority" } else { "tos" };
                    let _ = write!(m, " match {ip} {field} {v:#04x} {mask:#04x}");
                }
                if let Some(p) = f.ip_proto {
                    let _ = write!(m, " match {ip} protocol {p} 0xff");
                }
                if let Some(p) = &f.src {
                    let _ = write!(m, " match {ip} src {}", prefix_text(p));
                }
                if let Some(p) = &f.dst {
                    let _ = write!(m, " match {ip} dst {}", prefix_text(p));
                }
                if let Some((v, mask)) = sp {
                    let _ = write!(m, " match {ip} sport {v} {mask:#06x}");
                }
                if let Some((v, mask)) = dp {
                    let _ = write!(m, " match {ip} dport {v} {mask:#06x}");
                }
                let _ = writeln!(
                    out,
                    "filter add dev {dev} parent {major:x}: protocol {proto} prio {prio} u32{m} {target}"
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(path: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(path)
    }

    /// `weir tc` prints these after `weir tc: `; the words are the command's.
    #[test]
    fn cli_errors_name_the_file_and_tree() {
        let cfg = repo("config/lab.toml");
        let e = cli_tc(&cfg, "nope", "eth0", LeafFallback::None).unwrap_err();
        assert!(
            matches!(&e, CliTcError::NoTree { tree, .. } if tree == "nope"),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            format!(
                "{}: no tree \"nope\"; expected one of: up, down",
                cfg.display()
            )
        );
        let missing = repo("config/no-such-file.toml");
        let e = cli_tc(&missing, "up", "eth0", LeafFallback::None).unwrap_err();
        assert!(matches!(&e, CliTcError::Config(d) if d.len() == 1), "{e:?}");
        assert!(
            e.to_string()
                .starts_with(&format!("{}:0:0: can't read the file: ", missing.display())),
            "{e}"
        );
        assert!(cli_tc(&cfg, "up", "eth0", LeafFallback::None).is_ok());
    }

    #[test]
    fn port_ranges_tile_exactly() {
        for (lo, hi) in [
            (0u16, 65535u16),
            (1024, 2047),
            (1000, 1999),
            (5, 5),
            (0, 0),
            (65535, 65535),
            (3, 65534),
        ] {
            let blocks = port_blocks(PortMatch::Range { lo, hi });
            let mut covered = 0u32;
            for port in 0..=u16::MAX {
                let hits = blocks.iter().filter(|(v, m)| port & m == *v).count();
                let inside = (lo..=hi).contains(&port);
                assert_eq!(
                    hits,
                    usize::from(inside),
                    "port {port} in {lo}-{hi}: {blocks:?}"
                );
                covered += hits as u32;
            }
            assert_eq!(covered, u32::from(hi - lo) + 1);
        }
    }

    fn tree_with(keys: &str) -> Tree {
        let text = format!(
            "[tree.t]\ndefault = \"1:10\"\n{keys}\n[[tree.t.class]]\nid = \"1:1\"\nrate = \"100mbit\"\n\n[[tree.t.class]]\nid = \"1:10\"\nparent = \"1:1\"\nrate = \"50mbit\"\n"
        );
        let loaded = weir_config::parse_str(&text, "t.toml").expect("valid");
        loaded.config.trees[0].clone()
    }

    #[test]
    fn negative_overhead_goes_to_the_size_table() {
        let s = script(
            &tree_with("overhead = -14\nmpu = 64"),
            "k0",
            LeafFallback::None,
        )
        .expect("expressible");
        assert!(
            s.contains(
                "\nqdisc replace dev k0 root handle 1: stab overhead -14 htb default 10 r2q 10\n"
            ),
            "{s}"
        );
        // htb's own overhead (a u16 for tc) is not used; mpu still is.
        let classes: Vec<&str> = s.lines().filter(|l| l.starts_with("class add")).collect();
        assert_eq!(classes.len(), 2, "{s}");
        for l in &classes {
            assert!(!l.contains("overhead"), "{l}");
            assert!(l.ends_with(" mpu 64"), "{l}");
        }
        // The script says what it did and why.
        assert!(
            s.lines()
                .any(|l| l.starts_with("# overhead -14: tc's htb overhead is unsigned")),
            "{s}"
        );
        // No value tc would refuse: every number after `overhead` that tc
        // reads as a u16 is non-negative.
        for l in s.lines().filter(|l| !l.starts_with('#')) {
            let words: Vec<&str> = l.split_whitespace().collect();
            for w in words.windows(2) {
                if w[0] == "overhead" && !l.contains("stab overhead") {
                    assert!(w[1].parse::<u16>().is_ok(), "{l}");
                }
            }
        }
    }

    #[test]
    fn sfq_flows_survive_the_kernel_s_limit_rule() {
        let leaf = |q: &str| {
            let text = format!(
                "[tree.t]\ndefault = \"1:10\"\n[[tree.t.class]]\nid = \"1:1\"\nrate = \"100mbit\"\n\n[[tree.t.class]]\nid = \"1:10\"\nparent = \"1:1\"\nrate = \"50mbit\"\nqdisc = {{ kind = \"sfq\"{q} }}\n"
            );
            let loaded = weir_config::parse_str(&text, "t.toml").expect("valid");
            let s = script(&loaded.config.trees[0], "k0", LeafFallback::None).expect("ok");
            s.lines()
                .find(|l| l.contains(" sfq "))
                .expect("an sfq line")
                .split(" sfq ")
                .nth(1)
                .expect("options")
                .to_owned()
        };
        // Defaults: tc's own (no limit sent: Linux keeps 128 flows).
        assert_eq!(
            leaf(""),
            "perturb 0 quantum 1514b divisor 1024 flows 128 depth 127"
        );
        // An explicit limit caps flows in weir and in Linux alike.
        assert_eq!(
            leaf(", limit = 50"),
            "perturb 0 quantum 1514b limit 50 divisor 1024 flows 50 depth 127"
        );
        assert_eq!(
            leaf(", limit = 127"),
            "perturb 0 quantum 1514b limit 127 divisor 1024 flows 127 depth 127"
        );
        assert_eq!(
            leaf(", limit = 1000, flows = 64, depth = 10, divisor = 256"),
            "perturb 0 quantum 1514b limit 640 divisor 256 flows 64 depth 10"
        );
    }

    #[test]
    fn positive_and_zero_overhead_stay_on_the_classes() {
        let s = script(&tree_with("overhead = 24"), "k0", LeafFallback::None).expect("ok");
        assert!(!s.contains("stab"), "{s}");
        assert!(
            s.contains("\nqdisc replace dev k0 root handle 1: htb default 10 r2q 10\n"),
            "{s}"
        );
        let classes: Vec<&str> = s.lines().filter(|l| l.starts_with("class add")).collect();
        assert!(classes.iter().all(|l| l.ends_with(" overhead 24")), "{s}");
        let s = script(&tree_with(""), "k0", LeafFallback::None).expect("ok");
        assert!(!s.contains("overhead") && !s.contains("stab"), "{s}");
    }

    #[test]
    fn apps_remarks_and_wash_are_comments() {
        let base = "[tree.t]\ndefault = \"1:10\"\n[[tree.t.class]]\nid = \"1:1\"\nrate = \"100mbit\"\n\n[[tree.t.class]]\nid = \"1:10\"\nparent = \"1:1\"\nrate = \"50mbit\"\n";
        let plain = script(&tree_with(""), "k0", LeafFallback::None).expect("ok");
        assert!(!plain.contains("\n# "), "{plain}");
        let text = base
            .replace("default = \"1:10\"", "default = \"1:10\"\nwash = true")
            .replace("rate = \"50mbit\"", "rate = \"50mbit\"\ndscp = \"CS1\"\nremark = \"if-unmarked\"")
            + "\n[[tree.t.app]]\nname = \"voice\"\nclass = \"1:10\"\ndscp = \"EF\"\n[[tree.t.app.match]]\nports = [5060]\n\n[[tree.t.app]]\nname = \"web\"\nclass = \"1:10\"\n[[tree.t.app.match]]\nports = [80]\n";
        let loaded = weir_config::parse_str(&text, "t.toml").expect("valid");
        let s = script(&loaded.config.trees[0], "k0", LeafFallback::None).expect("ok");
        // Everything else is as without them.
        assert_eq!(
            s.lines()
                .filter(|l| !l.starts_with("# "))
                .collect::<Vec<_>>(),
            plain
                .lines()
                .filter(|l| !l.starts_with("# "))
                .collect::<Vec<_>>()
        );
        let comments: Vec<&str> = s.lines().filter(|l| l.starts_with("# ")).skip(1).collect();
        assert_eq!(
            comments,
            vec![
                "# wash: not expressed in tc (weir clears the DSCP of frames entering this tree)",
                "# class 1:10: DSCP remark CS1 if unmarked not expressed in tc",
                "# app voice (class 1:10, DSCP EF): apps can't be expressed in tc; its flows go to the default class 1:10",
                "# app web (class 1:10): apps can't be expressed in tc; its flows go to the default class 1:10",
            ]
        );
    }

    #[test]
    fn a_drop_filter_is_tcs_action_drop() {
        let text = include_str!("../../../config/lab.toml").replacen(
            "[[tree.up.filter]]",
            "[[tree.up.filter]]\nprio = 1\naction = \"drop\"\nsrc = \"198.18.9.0/24\"\n\n[[tree.up.filter]]",
            1,
        );
        let loaded = weir_config::parse_str(&text, "lab.toml").expect("valid");
        let tree = loaded.config.tree("up").expect("tree up");
        let s = script(tree, "k-out", LeafFallback::Pfifo).expect("expressible");
        assert!(
            s.contains("protocol ip prio 1 u32 match ip src 198.18.9.0/24 action drop\n"),
            "{s}"
        );
    }

    #[test]
    fn lab_tree_script() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/lab.toml");
        let loaded = weir_config::load(std::path::Path::new(path)).expect("lab.toml loads");
        let tree = loaded.config.tree("up").expect("tree up");
        let s = script(tree, "k-out", LeafFallback::Pfifo).expect("expressible");
        assert!(
            s.contains("qdisc replace dev k-out root handle 1: htb default 30 r2q 100"),
            "{s}"
        );
        assert!(
            s.contains("classid 1:10 htb rate 30000000bit ceil 60000000bit"),
            "{s}"
        );
        assert!(s.contains("parent 1:10 handle 100: pfifo limit 10"), "{s}");
        assert!(s.contains("sfq replaced by pfifo"), "{s}");
        assert!(s.contains("match ip tos 0xb8 0xfc flowid 1:10"), "{s}");
        assert!(
            s.lines()
                .all(|l| !l.starts_with("qdisc") || !l.contains(" sfq ")),
            "{s}"
        );
        let plain = script(tree, "k-out", LeafFallback::None).expect("expressible");
        assert!(plain.contains(" sfq perturb 10"), "{plain}");
        // lab.toml's sfq leaves take tc's limit and flows: the limit is
        // left out (an explicit one would cap the kernel's flows at 127).
        assert!(
            plain
                .lines()
                .filter(|l| l.contains(" sfq "))
                .all(|l| !l.contains(" limit ") && l.ends_with(" divisor 1024 flows 128 depth 127")),
            "{plain}"
        );
        assert!(
            plain.contains(" red limit 120000b min 10000b max 30000b"),
            "{plain}"
        );
    }
}
