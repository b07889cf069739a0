//! `[xdp]` and its old name `[dataplane]`: one section read the same way
//! under either name, and a clear error when a file gives both.

use weir_config::{parse_str, Diagnostic, Loaded};

/// Every `[xdp]` key with a value other than its default, a pair that
/// gives it workers, and a tree: the body of the section under test.
const BODY: &str = r#"cores = [1, 0]
batch = 32
frame_size = 2048
frames = 8192
ring_size = 4096
handover_ring = 1024
busy_poll = true
worker_rtprio = 20
worker_nice = -5
xdp_mode = "generic"
pass = ["198.18.255.1/32", "2001:db8::1"]
"#;

/// A pair that gives `[xdp]` workers, and the smallest tree.
fn rest() -> String {
    let pair =
        "\n[[pair]]\nname = \"p\"\ninside = \"a0\"\noutside = \"b0\"\nupload = \"t\"\nqueues = 2\n";
    format!("{pair}{}", weir_testkit::fixture::TREE_T)
}

fn load(text: &str) -> Loaded {
    parse_str(text, "case.toml").unwrap_or_else(|e| panic!("{text}\n{e:?}"))
}

fn errors(text: &str) -> Vec<Diagnostic> {
    match parse_str(text, "case.toml") {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e,
    }
}

#[test]
fn the_old_name_parses_the_same() {
    let new = load(&format!("[xdp]\n{BODY}{}", rest()));
    let old = load(&format!("[dataplane]\n{BODY}{}", rest()));
    assert_eq!(new.config, old.config);
    assert_eq!(new.warnings, old.warnings);
    // And the values are the ones written, not both defaults.
    let d = &new.config.xdp;
    assert_eq!(d.cores(), [1, 0]);
    assert_eq!((d.batch(), d.frames(), d.handover_ring()), (32, 8192, 1024));
    assert_eq!((d.worker_rtprio(), d.worker_nice()), (20, -5));
    assert_eq!(d.pass().len(), 2);
    assert_ne!(d, &load(&rest()).config.xdp);
    // Inline tables too.
    let inline = load(&format!("dataplane = {{ batch = 32 }}\n{}", rest()));
    assert_eq!(inline.config.xdp.batch(), 32);
}

#[test]
fn errors_read_the_same_under_either_name() {
    for (name, col) in [("xdp", 1), ("dataplane", 1)] {
        let e = errors(&format!("[{name}]\nbatchh = 4\n{}", rest()));
        assert_eq!((e[0].line, e[0].col), (2, col), "{e:?}");
        assert!(e[0].message.contains("batchh"), "{e:?}");
        let e = errors(&format!("{name} = 5\n{}", rest()));
        assert_eq!(
            e[0].message,
            format!("`{name}` must be a table; expected a [{name}] section")
        );
    }
}

#[test]
fn both_names_in_one_file_is_an_error_at_the_second() {
    for (first, second) in [("xdp", "dataplane"), ("dataplane", "xdp")] {
        let text = format!(
            "[{first}]\nbatch = 32\n\n[{second}]\nbatch = 16\n{}",
            rest()
        );
        let e = errors(&text);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!((e[0].line, e[0].col), (4, 2), "{e:?}");
        assert_eq!(
            e[0].message,
            format!("[{second}] given as well as [{first}]: they are one section ([dataplane] is the old name of [xdp]); expected only [xdp]")
        );
    }
}

#[test]
fn unknown_top_level_keys_name_the_new_table() {
    let e = errors(&format!("[xpd]\nbatch = 32\n{}", rest()));
    assert!(
        e[0].message.contains("expected [[pair]], [xdp], [history]"),
        "{e:?}"
    );
}
