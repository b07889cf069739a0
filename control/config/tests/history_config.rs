//! `[history]`: defaults, every key, and each error at its FILE:LINE:COL.

use std::path::PathBuf;
use std::time::Duration;

use weir_config::{parse_str, HistoryCfg};

const BASE: &str = r#"
[tree.t]
default = "1:10"

[[tree.t.class]]
id = "1:10"
rate = "50mbit"
"#;

fn load(history: &str) -> Result<HistoryCfg, Vec<String>> {
    parse_str(&format!("{history}\n{BASE}"), "case.toml")
        .map(|l| l.config.history)
        .map_err(|e| e.iter().map(ToString::to_string).collect())
}

#[test]
fn defaults_and_every_key() {
    let d = load("").unwrap();
    assert_eq!(d, HistoryCfg::default());
    assert_eq!(d.path, Some(PathBuf::from("/var/lib/weir/history.db")));
    assert_eq!(d.keep_seconds, Duration::from_secs(6 * 3600));
    assert_eq!(d.keep_minutes, Duration::from_secs(30 * 86400));
    assert_eq!(d.max_size, None);
    let c = load(
        "[history]\npath = \"/srv/weir/h.db\"\nkeep_seconds = \"90min\"\nkeep_minutes = \"2w\"\nmax_size = \"512mb\"",
    )
    .unwrap();
    assert_eq!(
        c,
        HistoryCfg {
            path: Some(PathBuf::from("/srv/weir/h.db")),
            keep_seconds: Duration::from_secs(90 * 60),
            keep_minutes: Duration::from_secs(14 * 86400),
            max_size: Some(512 << 20),
        }
    );
    assert_eq!(load("[history]\npath = \"none\"").unwrap().path, None);
    assert_eq!(
        load("history = { keep_seconds = \"1h\" }")
            .unwrap()
            .keep_seconds,
        Duration::from_secs(3600)
    );
    // The boundaries themselves are fine.
    let b = load("[history]\nkeep_seconds = \"1min\"\nkeep_minutes = \"1min\"\nmax_size = \"1mb\"")
        .unwrap();
    assert_eq!(b.keep_seconds, Duration::from_secs(60));
    assert_eq!(b.max_size, Some(1 << 20));
    assert!(load("[history]\nkeep_seconds = \"30d\"\nkeep_minutes = \"3650d\"").is_ok());
}

#[test]
fn errors_point_at_the_value() {
    let cases: &[(&str, &str)] = &[
        (
            "[history]\npath = \"history.db\"",
            "case.toml:2:8: `path` = \"history.db\" is not an absolute file path",
        ),
        (
            "[history]\npath = \"/var/lib/weir/\"",
            "case.toml:2:8: `path`",
        ),
        (
            "[history]\nkeep_seconds = \"6\"",
            "case.toml:2:16: bad `keep_seconds`: \"6\" has no unit",
        ),
        (
            "[history]\nkeep_seconds = \"6 fortnights\"",
            "case.toml:2:16: bad `keep_seconds`: unknown unit",
        ),
        (
            "[history]\nkeep_seconds = \"59s\"",
            "case.toml:2:16: `keep_seconds` = \"59s\" is out of range; expected 1min ..= 30d",
        ),
        (
            "[history]\nkeep_seconds = \"31d\"",
            "case.toml:2:16: `keep_seconds` = \"31d\" is out of range",
        ),
        (
            "[history]\nkeep_minutes = \"3651d\"",
            "case.toml:2:16: `keep_minutes` = \"3651d\" is out of range; expected 1min ..= 3650d",
        ),
        (
            "[history]\nkeep_seconds = \"2h\"\nkeep_minutes = \"1h\"",
            "case.toml:3:16: `keep_minutes` (1h) is shorter than `keep_seconds` (2h)",
        ),
        (
            "[history]\nkeep_minutes = \"1h\"",
            "case.toml:2:16: `keep_minutes` (1h) is shorter than `keep_seconds` (6h)",
        ),
        (
            "[history]\nmax_size = \"1kb\"",
            "case.toml:2:12: `max_size` = 1024 bytes is too small; expected at least 1mb",
        ),
        (
            "[history]\nmax_size = \"lots\"",
            "case.toml:2:12: bad `max_size`",
        ),
        (
            "[history]\nmax_size = -5",
            "case.toml:2:12: bad `max_size`: -5 is negative",
        ),
        (
            "[history]\nkeep_second = \"1h\"",
            "case.toml:2:1: unknown field `keep_second`",
        ),
        ("[history]\npath = 5", "case.toml:2:8: invalid type"),
        (
            "history = 5",
            "case.toml:1:1: `history` must be a table; expected a [history] section",
        ),
    ];
    for (src, want) in cases {
        let errs = load(src).expect_err(src);
        assert!(
            errs.iter().any(|e| e.starts_with(want)),
            "{src:?}: expected {want:?}, got {errs:#?}"
        );
    }
}

#[test]
fn check_lists_history_with_the_other_top_level_keys() {
    let errs = load("[histroy]\npath = \"none\"").unwrap_err();
    assert!(errs.iter().any(|e| e.contains("[history]")), "{errs:#?}");
}
