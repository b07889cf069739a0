//! Config fixtures: where the shipped example configs are, the `@` marker
//! of diagnostics tests, and TOML that several crates' tests share.

use std::path::{Path, PathBuf};

/// The repository's root (scripts/, config/), found from this crate's
/// own place in it, so it is right for every crate that uses the kit.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The smallest valid tree: `t`, root 1:1 of 100mbit over its default
/// leaf 1:10 of 50mbit (tc's defaults otherwise). Tests add to it.
pub const TREE_T: &str = r#"
[tree.t]
default = "1:10"

[[tree.t.class]]
id = "1:1"
rate = "100mbit"

[[tree.t.class]]
id = "1:10"
parent = "1:1"
rate = "50mbit"
"#;

/// A shipped config, `config/<name>` (e.g. "lab.toml").
pub fn config_path(name: &str) -> PathBuf {
    repo_root().join("config").join(name)
}

/// Strips the `@` a test case puts just before the key or value a
/// diagnostic must point at; returns the text and the marker's 1-based
/// (line, column), the column in characters as diagnostics count it.
///
/// Panics if `src` has no `@`: a case without one would check nothing.
pub fn marked(src: &str) -> (String, u32, u32) {
    let at = src.find('@').expect("case has an @ marker");
    let before = &src[..at];
    let line = before.matches('\n').count() as u32 + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() as u32 + 1;
    let mut text = src.to_string();
    text.remove(at);
    (text, line, col)
}

/// Tree `up` as the SLA and policy tests use it: root 1:1 100mbit; web
/// 1:20 30mbit ceil 80mbit; bulk 1:30 20mbit ceil 100mbit (the default);
/// a 100mbit link. A macro, not a const, so that a test can make its own
/// file around it as a const with `concat!` (a `[[pair]]` before it, more
/// trees after it).
#[macro_export]
macro_rules! tree_up_web_bulk {
    () => {
        r#"
[tree.up]
link = "100mbit"
default = "1:30"
r2q = 100

[[tree.up.class]]
id = "1:1"
name = "root"
rate = "100mbit"

[[tree.up.class]]
id = "1:20"
name = "web"
parent = "1:1"
rate = "30mbit"
ceil = "80mbit"

[[tree.up.class]]
id = "1:30"
name = "bulk"
parent = "1:1"
rate = "20mbit"
ceil = "100mbit"
"#
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_is_removed_and_located() {
        let (text, line, col) = marked("a = 1\nb = @\"x\"\n");
        assert_eq!(text, "a = 1\nb = \"x\"\n");
        assert_eq!((line, col), (2, 5));
        let (_, line, col) = marked("@a = 1");
        assert_eq!((line, col), (1, 1));
    }

    #[test]
    fn shipped_configs_are_found() {
        assert!(config_path("lab.toml").is_file());
        assert!(repo_root().join("scripts/lab.sh").is_file());
    }
}
