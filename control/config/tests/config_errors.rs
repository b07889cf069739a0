//! Every kind of config error and warning, each at the right FILE:LINE:COL.
//!
//! Each case is a small TOML file with `@` just before the key or value the
//! diagnostic must point at; the marker is removed before parsing and its
//! position is the expected line and column.
//!
//! One file (about 840 lines) on purpose: it is two tables of cases, one per
//! diagnostic, that share the `@` marker helpers below; the length is the
//! TOML of the cases, and a reader looks up an error's test by its message.

use weir_config::{parse_str, Diagnostic};
use weir_testkit::fixture::marked;

/// A minimal valid tree, for cases that only add to it.
const BASE: &str = weir_testkit::fixture::TREE_T;

fn errors(text: &str) -> Vec<Diagnostic> {
    match parse_str(text, "case.toml") {
        Ok(l) => panic!("expected errors, got a config:\n{text}\n{:#?}", l.config),
        Err(e) => e,
    }
}

fn warnings(text: &str) -> Vec<Diagnostic> {
    match parse_str(text, "case.toml") {
        Ok(l) => l.warnings,
        Err(e) => panic!("expected a valid config:\n{text}\n{e:#?}"),
    }
}

fn find(diags: &[Diagnostic], line: u32, col: u32, needle: &str) -> bool {
    diags.iter().any(|d| {
        d.line == line && d.col == col && d.message.contains(needle) && d.file == "case.toml"
    })
}

fn check_error(name: &str, src: &str, needle: &str) -> Result<(), String> {
    let (text, line, col) = marked(src);
    let errs = match parse_str(&text, "case.toml") {
        Ok(_) => return Err(format!("case `{name}`: no errors at all")),
        Err(e) => e,
    };
    if find(&errs, line, col, needle) {
        return Ok(());
    }
    Err(format!(
        "case `{name}`: no error at {line}:{col} containing {needle:?}; got:\n{}",
        errs.iter().map(|d| format!("  {d}\n")).collect::<String>()
    ))
}

fn expect_error(name: &str, src: &str, needle: &str) {
    if let Err(e) = check_error(name, src, needle) {
        panic!("{e}");
    }
}

fn expect_warning(name: &str, src: &str, needle: &str) {
    let (text, line, col) = marked(src);
    let w = warnings(&text);
    assert!(
        find(&w, line, col, needle),
        "case `{name}`: no warning at {line}:{col} containing {needle:?}; got:\n{}",
        w.iter().map(|d| format!("  {d}\n")).collect::<String>()
    );
}

#[test]
fn base_is_valid() {
    let l = parse_str(BASE, "case.toml").unwrap();
    assert_eq!(l.config.trees.len(), 1);
}

#[test]
fn error_table() {
    let cases: &[(&str, String, &str)] = &[
        (
            "toml syntax",
            format!("{BASE}\n[[tree.t.class]]\nid = \"1:20@\nrate = 5\n"),
            "TOML syntax",
        ),
        ("unknown top-level key", format!("@trees = 1\n{BASE}"), "unknown top-level key `trees`"),
        (
            "unknown key in a tree",
            BASE.replace("default = \"1:10\"", "default = \"1:10\"\n@r2qq = 5"),
            "unknown field `r2qq`",
        ),
        (
            "unknown key in a class",
            format!("{BASE}@bogus = 1\n"),
            "unknown field `bogus`",
        ),
        (
            "unknown key in a qdisc",
            format!("{BASE}qdisc = {{ kind = \"pfifo\", @limitt = 5 }}\n"),
            "unknown field `limitt`",
        ),
        (
            "unknown key in a filter",
            format!("{BASE}\n[[tree.t.filter]]\nflowid = \"1:10\"\n@sports = 80\n"),
            "unknown field `sports`",
        ),
        (
            "unknown key in a pair",
            format!("[[pair]]\nname = \"p\"\ninside = \"a\"\noutside = \"b\"\nupload = \"t\"\n@uplaod = \"t\"\n{BASE}"),
            "unknown field `uplaod`",
        ),
        (
            "missing required key",
            format!("{BASE}\n@[[tree.t.class]]\nid = \"1:20\"\nparent = \"1:1\"\n"),
            "missing key `rate`",
        ),
        (
            "missing default",
            "@[tree.t]\n[[tree.t.class]]\nid = \"1:1\"\nrate = 5000\n".to_string(),
            "missing key `default`",
        ),
        (
            "bad unit",
            BASE.replace("rate = \"50mbit\"", "rate = @\"50mbits\""),
            "unknown unit \"mbits\"",
        ),
        (
            "bad number",
            BASE.replace("rate = \"50mbit\"", "rate = @\"fast\""),
            "does not start with a number",
        ),
        (
            "type error",
            BASE.replace("rate = \"50mbit\"", "rate = @true"),
            "invalid type: boolean",
        ),
        (
            "negative integer rate",
            BASE.replace("rate = \"50mbit\"", "rate = @-5"),
            "out of range",
        ),
        (
            "rate below a byte per second",
            BASE.replace("rate = \"50mbit\"", "rate = @\"7bit\""),
            "below 1 byte/s",
        ),
        (
            "percent without link",
            BASE.replace("rate = \"50mbit\"", "rate = @\"50%\""),
            "no link rate",
        ),
        (
            "percent above 100",
            BASE.replace("default = \"1:10\"", "default = \"1:10\"\nlink = \"1gbit\"")
                .replace("rate = \"50mbit\"", "rate = @\"150%\""),
            "not between 0% and 100%",
        ),
        (
            "link as a percentage",
            BASE.replace("default = \"1:10\"", "default = \"1:10\"\nlink = @\"50%\""),
            "`link` can't be a percentage",
        ),
        (
            "bad class id",
            BASE.replace("id = \"1:10\"", "id = @\"1:1g\""),
            "not a hex digit",
        ),
        (
            "class id without colon",
            BASE.replace("id = \"1:10\"", "id = @\"10\""),
            "has no ':'",
        ),
        (
            "class id is the qdisc",
            BASE.replace("id = \"1:10\"", "id = @\"1:\""),
            "qdisc handle",
        ),
        (
            "class id with another major",
            BASE.replace("id = \"1:10\"", "id = @\"2:10\""),
            "this tree's classes use major 1",
        ),
        (
            "duplicate class id",
            format!("{BASE}\n[[tree.t.class]]\nid = @\"1:10\"\nparent = \"1:1\"\nrate = 5000\n"),
            "duplicate class id 1:10 (first defined on line 10)",
        ),
        (
            "duplicate class name",
            format!(
                "{}\n[[tree.t.class]]\nid = \"1:20\"\nname = @\"a\"\nparent = \"1:1\"\nrate = 5000\n",
                BASE.replace("id = \"1:10\"", "id = \"1:10\"\nname = \"a\"")
            ),
            "duplicate class name \"a\"",
        ),
        (
            "name that looks like an id",
            BASE.replace("id = \"1:10\"", "id = \"1:10\"\nname = @\"1:20\""),
            "bad class name",
        ),
        (
            "unknown parent id",
            BASE.replace("parent = \"1:1\"", "parent = @\"1:5\""),
            "unknown parent: no class 1:5",
        ),
        (
            "unknown parent name",
            BASE.replace("parent = \"1:1\"", "parent = @\"nobody\""),
            "no class named \"nobody\"",
        ),
        (
            "own parent",
            BASE.replace("parent = \"1:1\"", "parent = @\"1:10\""),
            "is its own parent",
        ),
        (
            "parent cycle",
            format!(
                "{BASE}\n[[tree.t.class]]\nid = \"1:20\"\nparent = \"1:30\"\nrate = 5000\n\n[[tree.t.class]]\nid = \"1:30\"\nparent = @\"1:20\"\nrate = 5000\n"
            ),
            "parent cycle: 1:20 → 1:30 → 1:20",
        ),
        (
            "ceil below rate",
            BASE.replace("rate = \"50mbit\"", "rate = \"50mbit\"\nceil = @\"40mbit\""),
            "ceil 40Mbit of class 1:10 is below its rate 50Mbit",
        ),
        (
            "prio above 7",
            BASE.replace("rate = \"50mbit\"", "rate = \"50mbit\"\nprio = @8"),
            "`prio` = 8 is out of range; expected 0 ..= 7",
        ),
        (
            "burst too big for 32 bits",
            BASE.replace("rate = \"50mbit\"", "rate = \"50mbit\"\nburst = @\"5gb\""),
            "`burst` = 5120Mb is out of range",
        ),
        (
            "default class unknown",
            BASE.replace("default = \"1:10\"", "default = @\"1:30\""),
            "unknown default class: no class 1:30",
        ),
        (
            "default class is inner",
            BASE.replace("default = \"1:10\"", "default = @\"1:1\""),
            "has children; expected a leaf class",
        ),
        (
            "default is the qdisc",
            BASE.replace("default = \"1:10\"", "default = @\"1:\""),
            "is the qdisc, not a class",
        ),
        (
            "qdisc on an inner class",
            BASE.replace("rate = \"100mbit\"", "rate = \"100mbit\"\nqdisc = @{ kind = \"pfifo\" }"),
            "has children, so it can't have a qdisc",
        ),
        (
            "unknown qdisc kind",
            format!("{BASE}qdisc = {{ kind = @\"codel\" }}\n"),
            "unknown qdisc kind \"codel\"",
        ),
        (
            "parameter of another kind",
            format!("{BASE}qdisc = {{ kind = \"pfifo\", perturb = @10 }}\n"),
            "`perturb` is not a pfifo parameter",
        ),
        (
            "pfifo limit 0",
            format!("{BASE}qdisc = {{ kind = \"pfifo\", limit = @0 }}\n"),
            "`limit` = 0 is out of range",
        ),
        (
            "sfq divisor not a power of two",
            format!("{BASE}qdisc = {{ kind = \"sfq\", divisor = @1000 }}\n"),
            "not a power of two",
        ),
        (
            "sfq depth above 127",
            format!("{BASE}qdisc = {{ kind = \"sfq\", depth = @128 }}\n"),
            "`depth` = 128 is out of range; expected 1 ..= 127",
        ),
        (
            "sfq limit 1",
            format!("{BASE}qdisc = {{ kind = \"sfq\", limit = @1 }}\n"),
            "`limit` = 1 is out of range",
        ),
        (
            "sfq bad perturb",
            format!("{BASE}qdisc = {{ kind = \"sfq\", perturb = @\"10min\" }}\n"),
            "unknown unit \"min\"",
        ),
        (
            "red probability above 1",
            format!("{BASE}qdisc = {{ kind = \"red\", min = 1000, max = 3000, avpkt = 100, probability = @2.0 }}\n"),
            "`probability` = 2 is out of range",
        ),
        (
            "red min not below max",
            format!("{BASE}qdisc = {{ kind = \"red\", min = @3000, max = 3000, avpkt = 100 }}\n"),
            "red `min` 3000b is not below `max` 3000b",
        ),
        (
            "red without avpkt",
            format!("{BASE}qdisc = @{{ kind = \"red\", min = 1000, max = 3000 }}\n"),
            "red needs `avpkt`",
        ),
        (
            "red burst too small",
            format!("{BASE}qdisc = {{ kind = \"red\", min = 10000, max = 30000, avpkt = 1000, burst = @5 }}\n"),
            "red `burst` 5 is too small",
        ),
        (
            "fq_codel flows 0",
            format!("{BASE}qdisc = {{ kind = \"fq_codel\", flows = @0 }}\n"),
            "`flows` = 0 is out of range; expected 1 ..= 65536",
        ),
        (
            "fq_codel quantum below 256",
            format!("{BASE}qdisc = {{ kind = \"fq_codel\", quantum = @100 }}\n"),
            "`quantum` = 100b is out of range",
        ),
        (
            "fq_codel target zero",
            format!("{BASE}qdisc = {{ kind = \"fq_codel\", target = @\"0ms\" }}\n"),
            "`target` = 0ns is out of range",
        ),
        (
            "filter to an inner class",
            format!("{BASE}\n[[tree.t.filter]]\nflowid = @\"1:1\"\n"),
            "which has children (an inner class); expected a leaf class",
        ),
        (
            "filter to an unknown class",
            format!("{BASE}\n[[tree.t.filter]]\nflowid = @\"1:99\"\n"),
            "unknown flowid: no class 1:99",
        ),
        (
            "filter with a flowid and an action",
            format!("{BASE}\n[[tree.t.filter]]\nflowid = \"1:10\"\naction = @\"drop\"\n"),
            "a filter has a flowid (its frames go to that class) or `action = \"drop\"`, not both",
        ),
        (
            "filter with an unknown action",
            format!("{BASE}\n[[tree.t.filter]]\naction = @\"reject\"\n"),
            "unknown filter action \"reject\"; expected \"drop\"",
        ),
        (
            "filter with neither a flowid nor an action",
            format!("{BASE}\n@[[tree.t.filter]]\ndport = 53\n"),
            "a filter needs a flowid (the leaf class its frames go to) or `action = \"drop\"`",
        ),
        (
            "filter with dscp and tos",
            format!("{BASE}\n[[tree.t.filter]]\nflowid = \"1:10\"\ndscp = \"EF\"\ntos = @\"0xb8/0xfc\"\n"),
            "`dscp` and `tos` both",
        ),
        (
            "filter with an unknown dscp",
            format!("{BASE}\n[[tree.t.filter]]\nflowid = \"1:10\"\ndscp = @\"AF44\"\n"),
            "unknown DSCP \"AF44\"",
        ),
        (
            "filter with a backwards port range",
            format!("{BASE}\n[[tree.t.filter]]\nflowid = \"1:10\"\ndport = @\"2048-1024\"\n"),
            "is backwards",
        ),
        (
            "filter with a port above 65535",
            format!("{BASE}\n[[tree.t.filter]]\nflowid = \"1:10\"\nsport = @70000\n"),
            "bad `sport` 70000",
        ),
        (
            "filter with ports on icmp",
            format!("{BASE}\n[[tree.t.filter]]\nflowid = \"1:10\"\nip_proto = \"icmp\"\nsport = @80\n"),
            "that protocol has no ports",
        ),
        (
            "filter with a bad prefix",
            format!("{BASE}\n[[tree.t.filter]]\nflowid = \"1:10\"\nsrc = @\"10.0.0.0/33\"\n"),
            "prefix length must be 0..=32",
        ),
        (
            "filter with a family clash",
            format!("{BASE}\n[[tree.t.filter]]\nflowid = \"1:10\"\nprotocol = \"ip\"\ndst = @\"2001:db8::/32\"\n"),
            "IPv6 prefix but the filter already asks for protocol ip",
        ),
        (
            "filter with IP fields on ARP",
            format!("{BASE}\n[[tree.t.filter]]\nflowid = \"1:10\"\nprotocol = \"arp\"\nip_proto = @\"tcp\"\n"),
            "is an IP field",
        ),
        (
            "filter with an unknown protocol",
            format!("{BASE}\n[[tree.t.filter]]\nflowid = \"1:10\"\nprotocol = @\"ipx\"\n"),
            "unknown protocol \"ipx\"",
        ),
        (
            "filter with a vlan above 4095",
            format!("{BASE}\n[[tree.t.filter]]\nflowid = \"1:10\"\nvlan = @4096\n"),
            "`vlan` = 4096 is out of range",
        ),
        (
            "r2q zero",
            BASE.replace("default = \"1:10\"", "default = \"1:10\"\nr2q = @0"),
            "`r2q` = 0 is out of range",
        ),
        (
            "unknown malformed policy",
            BASE.replace("default = \"1:10\"", "default = \"1:10\"\nmalformed = @\"pass\""),
            "unknown `malformed` policy",
        ),
        (
            "pair naming an unknown tree",
            format!("[[pair]]\nname = \"p\"\ninside = \"a\"\noutside = \"b\"\nupload = @\"up\"\n{BASE}"),
            "names tree \"up\", which is not defined; expected one of: t",
        ),
        (
            "pair with one interface twice",
            format!("[[pair]]\nname = \"p\"\ninside = \"a\"\noutside = @\"a\"\nupload = \"t\"\n{BASE}"),
            "same interface as `inside`",
        ),
        (
            "pair with a bad interface name",
            format!("[[pair]]\nname = \"p\"\ninside = @\"a very long name\"\noutside = \"b\"\nupload = \"t\"\n{BASE}"),
            "bad interface name",
        ),
        (
            "pair shaping nothing",
            format!("@[[pair]]\nname = \"p\"\ninside = \"a\"\noutside = \"b\"\n{BASE}"),
            "shapes nothing",
        ),
        (
            "tree used by two pairs",
            format!("[[pair]]\nname = \"p\"\ninside = \"a\"\noutside = \"b\"\nupload = \"t\"\n[[pair]]\nname = \"q\"\ninside = \"c\"\noutside = \"d\"\nupload = @\"t\"\n{BASE}"),
            "tree \"t\" already shapes pair \"p\" upload",
        ),
        (
            "interface in two pairs",
            format!("[[pair]]\nname = \"p\"\ninside = \"a\"\noutside = \"b\"\n[[pair]]\nname = \"q\"\ninside = @\"a\"\noutside = \"d\"\nupload = \"t\"\n{BASE}"),
            "already belongs to pair \"p\"",
        ),
        (
            "error in a qdisc sub-table",
            format!("{BASE}\n@[tree.t.class.qdisc]\nlimit = 5\n"),
            "missing key `kind`",
        ),
        (
            "bad value in a qdisc sub-table",
            format!("{BASE}\n[tree.t.class.qdisc]\nkind = \"pfifo\"\nlimit = @-1\n"),
            "`limit` = -1 is out of range",
        ),
        (
            "bad value in a tos sub-table",
            format!("{BASE}\n[[tree.t.filter]]\nflowid = \"1:10\"\n@[tree.t.filter.tos]\nvalue = 300\n"),
            "`tos` value 300 is out of range",
        ),
        (
            "a table where a value belongs",
            format!("{BASE}\n[[tree.t.class]]\nid = \"1:20\"\n[tree.t.class.rate]\n@x = 1\n"),
            "a table is not allowed here",
        ),
        ("no trees", "@".to_string(), "no trees"),
        (
            "tree without classes",
            "@[tree.t]\ndefault = \"1:1\"\n".to_string(),
            "has no classes",
        ),
    ];
    let failed: Vec<String> = cases
        .iter()
        .filter_map(|(name, src, needle)| check_error(name, src, needle).err())
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn too_deep() {
    // Eight levels are allowed; the ninth class is reported at its parent.
    let mut src = String::from("[tree.t]\ndefault = \"1:9\"\n");
    for i in 1..=9 {
        src.push_str(&format!(
            "\n[[tree.t.class]]\nid = \"1:{i}\"\nrate = 8000\n"
        ));
        if i > 1 {
            let marker = if i == 9 { "@" } else { "" };
            src.push_str(&format!("parent = {marker}\"1:{}\"\n", i - 1));
        }
    }
    expect_error(
        "too deep",
        &src,
        "would be level 9 of the tree; expected at most 8 levels",
    );

    let eight: String = src
        .split("\n[[tree.t.class]]\nid = \"1:9\"")
        .next()
        .unwrap()
        .replace("default = \"1:9\"", "default = \"1:8\"");
    assert!(
        parse_str(&eight, "case.toml").is_ok(),
        "eight levels are fine"
    );
}

#[test]
fn a_long_parent_cycle_is_one_short_line() {
    // 1:1 → 1:2 → … → 1:2000 → 1:1, and a leaf outside the loop as the
    // default. Listing every hop printed a 20 kB line.
    let n = 2000;
    let mut src = String::from(
        "[tree.t]\ndefault = \"1:9999\"\n\n[[tree.t.class]]\nid = \"1:9999\"\nrate = 8000\n",
    );
    for i in 1..=n {
        let parent = if i == n { 1 } else { i + 1 };
        let marker = if i == n { "@" } else { "" };
        src.push_str(&format!(
            "\n[[tree.t.class]]\nid = \"1:{i}\"\nparent = {marker}\"1:{parent}\"\nrate = 8000\n"
        ));
    }
    let (text, line, col) = marked(&src);
    let errs = errors(&text);
    let cycle: Vec<&Diagnostic> = errs
        .iter()
        .filter(|d| d.message.contains("parent cycle"))
        .collect();
    assert_eq!(cycle.len(), 1, "{cycle:#?}");
    let d = cycle[0];
    // At the parent that closes the loop.
    assert_eq!((d.line, d.col), (line, col), "{d}");
    let printed = d.to_string();
    assert!(printed.len() < 300, "{} bytes: {printed}", printed.len());
    // Both ends of the loop are named, and how much was left out.
    assert!(
        d.message
            .starts_with("parent cycle: 1:1 → 1:2 → 1:3 → 1:4 → … 1993 more … → "),
        "{printed}"
    );
    assert!(
        d.message
            .contains("→ 1:1998 → 1:1999 → 1:2000 → 1:1 (2000 classes);"),
        "{printed}"
    );
    // A short cycle still lists every hop (the error table checks the
    // exact text of a 2-class one).
    let short = format!(
        "{BASE}\n[[tree.t.class]]\nid = \"1:20\"\nparent = \"1:23\"\nrate = 5000\n\n[[tree.t.class]]\nid = \"1:21\"\nparent = \"1:20\"\nrate = 5000\n\n[[tree.t.class]]\nid = \"1:22\"\nparent = \"1:21\"\nrate = 5000\n\n[[tree.t.class]]\nid = \"1:23\"\nparent = \"1:22\"\nrate = 5000\n"
    );
    assert!(
        errors(&short).iter().any(|d| d
            .message
            .contains("parent cycle: 1:20 → 1:23 → 1:22 → 1:21 → 1:20;")),
        "{:#?}",
        errors(&short)
    );
}

#[test]
fn many_errors_in_one_run() {
    let src = format!(
        "{BASE}bogus = 1\n\n[[tree.t.class]]\nid = \"1:20\"\nparent = \"1:1\"\nrate = \"5 parsecs\"\n\n[[tree.t.filter]]\nflowid = \"1:99\"\n"
    );
    let errs = errors(&src);
    assert!(
        errs.iter()
            .any(|d| d.message.contains("unknown field `bogus`")),
        "{errs:#?}"
    );
    assert!(
        errs.iter().any(|d| d.message.contains("unknown unit")),
        "{errs:#?}"
    );
    assert!(
        errs.iter().any(|d| d.message.contains("no class 1:99")),
        "{errs:#?}"
    );
    // Sorted by position.
    let pos: Vec<(u32, u32)> = errs.iter().map(|d| (d.line, d.col)).collect();
    let mut sorted = pos.clone();
    sorted.sort();
    assert_eq!(pos, sorted);
}

#[test]
fn a_broken_class_does_not_cascade() {
    // 1:10 fails to parse (unknown key); the filter and default that name
    // it must not add "unknown class" errors.
    let src = format!("{BASE}bogus = 1\n\n[[tree.t.filter]]\nflowid = \"1:10\"\n");
    let errs = errors(&src);
    assert_eq!(errs.len(), 1, "{errs:#?}");
}

#[test]
fn messages_read_file_line_col_what_expected() {
    let (text, line, col) = marked(&BASE.replace("rate = \"50mbit\"", "rate = @\"50mbits\""));
    let errs = errors(&text);
    let d = &errs[0];
    let shown = d.to_string();
    assert!(
        shown.starts_with(&format!("case.toml:{line}:{col}: ")),
        "{shown}"
    );
    assert!(shown.contains("; expected"), "{shown}");
}

#[test]
fn warning_table() {
    let cases: &[(&str, String, &str)] = &[
        (
            "children above the parent's rate",
            format!(
                "{}\n[[tree.t.class]]\nid = \"1:20\"\nparent = \"1:1\"\nrate = \"60mbit\"\n",
                BASE.replace("rate = \"100mbit\"", "rate = @\"100mbit\"")
            ),
            "the children of 1:1 are guaranteed 110Mbit together, more than its rate 100Mbit",
        ),
        (
            "ceil above the parent's ceil",
            BASE.replace("rate = \"50mbit\"", "rate = \"50mbit\"\nceil = @\"200mbit\""),
            "ceil 200Mbit of 1:10 is above its parent 1:1's ceil 100Mbit",
        ),
        (
            "quantum clamped up",
            BASE.replace("rate = \"50mbit\"", "rate = @\"64kbit\""),
            "= 800 bytes is smaller than 1000; Linux HTB clamps it to 1000",
        ),
        (
            "quantum clamped down",
            BASE.replace("rate = \"100mbit\"", "rate = \"1gbit\"")
                .replace("rate = \"50mbit\"", "rate = @\"500mbit\""),
            "bigger than 200000; Linux HTB clamps it to 200000",
        ),
        (
            "unused tree",
            format!(
                "[[pair]]\nname = \"p\"\ninside = \"a\"\noutside = \"b\"\nupload = \"t\"\n{BASE}\n[tree.@u]\ndefault = \"1:1\"\n[[tree.u.class]]\nid = \"1:1\"\nrate = 8000\n"
            ),
            "tree `u` is not used by any pair",
        ),
        (
            "host bits in a prefix",
            format!("{BASE}\n[[tree.t.filter]]\nflowid = \"1:10\"\nsrc = @\"10.1.2.3/8\"\n"),
            "it matches 10.0.0.0/8",
        ),
        (
            "sfq flows above divisor",
            format!("{BASE}qdisc = {{ kind = \"sfq\", divisor = 64, flows = @100 }}\n"),
            "above `divisor` 64",
        ),
        (
            "fq_codel target above interval",
            format!("{BASE}qdisc = {{ kind = \"fq_codel\", target = @\"200ms\" }}\n"),
            "not below `interval`",
        ),
    ];
    for (name, src, needle) in cases {
        expect_warning(name, src, needle);
    }
    // An explicit quantum is the operator's choice: no warning.
    let w = warnings(&BASE.replace("rate = \"50mbit\"", "rate = \"64kbit\"\nquantum = 1514"));
    assert!(w.is_empty(), "{w:#?}");
}

#[test]
fn xdp_and_pair_errors() {
    let pair = "[[pair]]\nname = \"p\"\ninside = \"a0\"\noutside = \"b0\"\nupload = \"t\"\n";
    let cases: &[(&str, String, &str)] = &[
        (
            "unknown xdp key",
            format!("[xdp]\n@batchh = 4\n{BASE}"),
            "unknown field `batchh`",
        ),
        (
            "batch out of range",
            format!("[xdp]\nbatch = @0\n{BASE}"),
            "`batch` = 0 is out of range",
        ),
        (
            "frame size",
            format!("[xdp]\nframe_size = @3000\n{BASE}"),
            "expected 2048 or 4096",
        ),
        (
            "ring size not a power of two",
            format!("[xdp]\nring_size = @1000\n{BASE}"),
            "not a power of two",
        ),
        (
            "xdp mode",
            format!("[xdp]\nxdp_mode = @\"turbo\"\n{BASE}"),
            "unknown `xdp_mode` \"turbo\"",
        ),
        (
            "pass prefix",
            format!("[xdp]\npass = [@\"198.18.0.300/32\"]\n{BASE}"),
            "bad `pass`",
        ),
        (
            "core",
            format!("[xdp]\ncores = [0, @-1]\n{BASE}"),
            "bad core -1",
        ),
        (
            "rtprio range",
            format!("[xdp]\nworker_rtprio = @100\n{BASE}"),
            "`worker_rtprio` = 100 is out of range",
        ),
        (
            "rtprio with unpinned busy poll",
            format!("[xdp]\nbusy_poll = true\nworker_rtprio = @5\n{}{BASE}", pair),
            "1 worker(s) (the pairs' queues), 0 distinct core(s)",
        ),
        (
            "rtprio with busy poll, two workers on one core",
            format!("[xdp]\nbusy_poll = true\ncores = [1, 1]\nworker_rtprio = @5\n{}queues = 2\n{BASE}", pair),
            "2 worker(s) (the pairs' queues), 1 distinct core(s)",
        ),
        (
            "xdp not a table",
            format!("@xdp = 5\n{BASE}"),
            "`xdp` must be a table",
        ),
        (
            "queues",
            format!("{}queues = @0\n{BASE}", pair),
            "`queues` = 0 is out of range",
        ),
        // Every combination `weir run`'s data path refuses
        // (weir_xdp::datapath::RunSpec::validate) is refused here, at the key.
        (
            "batch more than half the ring",
            format!("[xdp]\nring_size = 128\nbatch = @65\n{BASE}"),
            "`batch` = 65 is more than half of `ring_size` = 128; expected `batch` at most 64",
        ),
        (
            "the default batch in too small a ring",
            format!("[xdp]\nring_size = @64\n{BASE}"),
            "`batch` = 64 is more than half of `ring_size` = 64; expected `batch` at most 32",
        ),
        (
            "frames fewer than four batches",
            format!("[xdp]\nbatch = 100\nframes = @399\n{BASE}"),
            "`frames` = 399 is less than 4 × `batch` = 400; expected `frames` at least 400",
        ),
        (
            "frames fewer than four default batches",
            format!("[xdp]\nframes = @255\n{BASE}"),
            "`frames` = 255 is less than 4 × `batch` = 256",
        ),
        (
            "more pass prefixes than the XDP program holds",
            format!(
                "[xdp]\npass = @[{}]\n{BASE}",
                (0..257)
                    .map(|i| format!("\"198.18.{}.{}/32\"", i / 256, i % 256))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "`pass` has 257 distinct IPv4 prefixes; expected at most 256 per address family",
        ),
        (
            "interface name with a NUL",
            "[[pair]]\nname = \"p\"\ninside = @\"a\\u0000\"\noutside = \"b0\"\nupload = \"t\"\n"
                .to_string()
                + BASE,
            "bad interface name \"a\\0\" for `inside`",
        ),
        (
            "tree named like a pair's unshaped direction",
            "[[pair]]\nname = \"p\"\ninside = \"a0\"\noutside = \"b0\"\nupload = \"p/download\"\n\n[tree.@\"p/download\"]\ndefault = \"1:1\"\n[[tree.\"p/download\".class]]\nid = \"1:1\"\nrate = 8000\n"
                .to_string(),
            "tree `p/download` (pair \"p\" upload) has the name of pair \"p\"'s download direction",
        ),
    ];
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(name, src, needle)| check_error(name, src, needle).err())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn xdp_defaults_and_values() {
    use weir_config::XdpAttach;
    let l = parse_str(BASE, "case.toml").unwrap();
    let d = &l.config.xdp;
    assert_eq!(
        (d.batch(), d.frame_size(), d.frames(), d.ring_size()),
        (64, 4096, 16384, 4096)
    );
    assert!(d.cores().is_empty() && d.pass().is_empty() && !d.busy_poll());
    assert_eq!((d.worker_rtprio(), d.worker_nice()), (10, -10));
    let text = format!(
        "[xdp]\ncores = [1, 0]\nbatch = 32\nframe_size = 2048\nframes = 8192\nring_size = 4096\nhandover_ring = 1024\nbusy_poll = true\nxdp_mode = \"generic\"\npass = [\"198.18.255.1/32\", \"2001:db8::1\"]\n\n[[pair]]\nname = \"p\"\ninside = \"a0\"\noutside = \"b0\"\nupload = \"t\"\nqueues = 2\n{BASE}"
    );
    let l = parse_str(&text, "case.toml").unwrap();
    let d = &l.config.xdp;
    assert_eq!(d.cores(), [1, 0]);
    assert_eq!(
        (
            d.batch(),
            d.frame_size(),
            d.frames(),
            d.ring_size(),
            d.handover_ring()
        ),
        (32, 2048, 8192, 4096, 1024)
    );
    assert!(d.busy_poll());
    // A spinning worker is not real-time unless asked for (and pinned).
    assert_eq!(d.worker_rtprio(), 0);
    let pinned = text.replace(
        "busy_poll = true\n",
        "busy_poll = true\nworker_rtprio = 40\n",
    );
    let l2 = parse_str(&pinned, "case.toml").unwrap();
    assert_eq!(l2.config.xdp.worker_rtprio(), 40);
    assert_eq!(d.xdp_mode(), XdpAttach::Generic);
    assert_eq!(d.pass().len(), 2);
    assert_eq!((d.pass()[0].len, d.pass()[1].len), (32, 128));
    assert_eq!(l.config.pairs[0].queues, 2);

    // The edges of each combination are accepted: batch at half the ring,
    // frames at four batches, 256 pass prefixes per family (a prefix
    // written twice counts once).
    let edges = format!(
        "[xdp]\nring_size = 64\nbatch = 32\nframes = 128\npass = [{}, \"198.18.0.0/32\"]\n{BASE}",
        (0..256)
            .map(|i| format!("\"198.18.{}.{}/32\"", i / 256, i % 256))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let l = parse_str(&edges, "case.toml").unwrap();
    let d = &l.config.xdp;
    assert_eq!((d.ring_size(), d.batch(), d.frames()), (64, 32, 128));
    assert_eq!(d.pass().len(), 256);
    // A tree named like a direction that has a tree of its own is fine.
    let named = "[[pair]]\nname = \"p\"\ninside = \"a0\"\noutside = \"b0\"\nupload = \"p/upload\"\n\n[tree.\"p/upload\"]\ndefault = \"1:1\"\n[[tree.\"p/upload\".class]]\nid = \"1:1\"\nrate = 8000\n";
    parse_str(named, "case.toml").unwrap();
}
