//! `weir reload`'s help and man page say what a reload does with the
//! configuration: in-place class changes, rebuilt trees, and what needs a
//! restart (control/src/run/reload.rs). They once said that a file needing
//! a rebuild changed nothing, long after reload learned to rebuild.

use std::process::Command;

fn weir(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .output()
        .expect("run weir");
    assert!(out.status.success(), "weir {args:?}: {out:?}");
    String::from_utf8(out.stdout).expect("utf-8")
}

/// The words a reader needs, whatever the line breaks.
fn says_what_reload_does(text: &str) {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for needle in [
        "SIGHUP",
        "change in place",
        "is rebuilt",
        "only packets of removed classes are dropped",
        "A file with errors changes nothing",
        "`[xdp]`",
        "needs a restart",
    ] {
        assert!(flat.contains(needle), "no {needle:?} in:\n{text}");
    }
    assert!(
        !flat.contains("needs trees rebuilt, changes nothing"),
        "{text}"
    );
}

#[test]
fn reload_help_says_trees_are_rebuilt() {
    says_what_reload_does(&weir(&["reload", "--help"]));
    // The one-line summary (`weir --help`, the man page's NAME) stays short.
    let summary = weir(&["--help"]);
    let line = summary
        .lines()
        .find(|l| l.trim_start().starts_with("reload "))
        .expect("reload in the command list");
    assert!(line.len() < 100, "{line}");
}

#[test]
fn reload_man_page_says_trees_are_rebuilt() {
    let dir = std::env::temp_dir().join(format!("weir-man-{}", std::process::id()));
    weir(&["man", "--out", dir.to_str().expect("utf-8 path")]);
    let page = std::fs::read_to_string(dir.join("weir-reload.1")).expect("weir-reload.1");
    let _ = std::fs::remove_dir_all(&dir);
    // roff escapes '-' and quotes; undo the ones the needles contain.
    let text = page.replace("\\-", "-").replace("\\(aq", "'");
    says_what_reload_does(&text);
}
