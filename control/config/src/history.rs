//! `[history]`: the history database of `weir run` (docs/history.md):
//! where it is, how long 1-second samples are kept before they are folded
//! into 1-minute rows, how long those are kept, and an optional cap on its
//! size. Every key has a default; `path = "none"` turns history off.

use std::path::PathBuf;
use std::time::Duration;

use super::diag::Ctx;
use super::raw::{sp, RawHistory, StrOrInt, S};
use super::units::{parse_duration, DurationError, Size, HISTORY_SPAN};

/// Where the history lives unless `[history] path` says otherwise.
pub const DEFAULT_PATH: &str = "/var/lib/weir/history.db";
/// 1-second rows are kept this long. About 60 bytes per class per second
/// on disk (measured; docs/history.md), so 6 h is ~1.3 MB per class.
pub const DEFAULT_KEEP_SECONDS: Duration = Duration::from_secs(6 * 3600);
/// 1-minute rows are kept this long: ~230 bytes per class per minute
/// (moments and quantile knots of two metrics), so 30 days is ~10 MB per
/// class.
pub const DEFAULT_KEEP_MINUTES: Duration = Duration::from_secs(30 * 86400);
/// Folding works on whole minutes, so 1-second rows must live at least one.
pub const MIN_KEEP_SECONDS: Duration = Duration::from_secs(60);
pub const MAX_KEEP_SECONDS: Duration = Duration::from_secs(30 * 86400);
pub const MAX_KEEP_MINUTES: Duration = Duration::from_secs(3650 * 86400);
/// Smallest `max_size` the file accepts: the schema and a few minutes of a
/// small tree.
pub const MIN_MAX_SIZE: u64 = 1 << 20;

/// The checked `[history]` section, defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryCfg {
    /// The database file; None: no history.
    pub path: Option<PathBuf>,
    /// 1-second rows older than this are folded into 1-minute rows.
    pub keep_seconds: Duration,
    /// 1-minute rows (and violations and adjustments) older than this are
    /// deleted.
    pub keep_minutes: Duration,
    /// Most bytes the database may take (SQLite's `max_page_count`); a
    /// write that needs more fails as on a full disk: reported, not fatal.
    /// None: as much as the disk has.
    pub max_size: Option<u64>,
}

impl Default for HistoryCfg {
    fn default() -> HistoryCfg {
        HistoryCfg {
            path: Some(PathBuf::from(DEFAULT_PATH)),
            keep_seconds: DEFAULT_KEEP_SECONDS,
            keep_minutes: DEFAULT_KEEP_MINUTES,
            max_size: None,
        }
    }
}

/// A span of time as operators write one: a number (decimals allowed) and
/// a unit — `s`, `min` (or `m`), `h`, `d`, `w` and their long forms. The
/// unit is required: a bare number is microseconds to tc and seconds to
/// most people.
pub fn parse_span(s: &str) -> Result<Duration, SpanError> {
    let t = s.trim();
    parse_duration(t, &HISTORY_SPAN)
        .map(Duration::from_millis)
        .map_err(|e| {
            let input = t.to_string();
            match e {
                DurationError::NoNumber | DurationError::BadNumber => SpanError::NoNumber(input),
                DurationError::NoUnit => SpanError::NoUnit(input),
                DurationError::UnknownUnit(unit) => SpanError::UnknownUnit { input, unit },
                DurationError::TooLong => SpanError::TooLong(input),
            }
        })
}

/// Why a span did not parse; `input` is the span as written, trimmed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpanError {
    #[error("\"{0}\" does not start with a number; expected a number and a unit, like \"6h\"")]
    NoNumber(String),
    #[error("\"{0}\" has no unit; expected s, min, h, d or w, like \"6h\"")]
    NoUnit(String),
    #[error("unknown unit \"{unit}\" in \"{input}\"; expected s, min, h, d or w, like \"6h\"")]
    UnknownUnit { input: String, unit: String },
    #[error("\"{0}\" is longer than a century")]
    TooLong(String),
}

/// `"6h"` → 6 hours, within `lo..=hi`.
fn span(
    cx: &mut Ctx,
    v: &Option<S<String>>,
    what: &str,
    lo: Duration,
    hi: Duration,
    default: Duration,
) -> Duration {
    let Some(v) = v else { return default };
    match parse_span(v.get_ref()) {
        Ok(d) if d >= lo && d <= hi => d,
        Ok(_) => {
            cx.error(
                &sp(v),
                format!(
                    "`{what}` = \"{}\" is out of range; expected {} ..= {}",
                    v.get_ref(),
                    show_span(lo),
                    show_span(hi)
                ),
            );
            default
        }
        Err(e) => {
            cx.error(&sp(v), format!("bad `{what}`: {e}"));
            default
        }
    }
}

/// The largest whole unit: `6h`, `30d`, `90s`.
pub fn show_span(d: Duration) -> String {
    let s = d.as_secs();
    if d.subsec_millis() != 0 {
        return format!("{}ms", d.as_millis());
    }
    for (unit, n) in [("w", 7 * 86400), ("d", 86400), ("h", 3600), ("min", 60)] {
        if s >= n && s.is_multiple_of(n) {
            return format!("{}{unit}", s / n);
        }
    }
    format!("{s}s")
}

pub(crate) fn build(cx: &mut Ctx, raw: &RawHistory) -> HistoryCfg {
    let mut cfg = HistoryCfg::default();
    if let Some(p) = &raw.path {
        let s = p.get_ref().as_str();
        if s == "none" {
            cfg.path = None;
        } else if !s.starts_with('/') || s.ends_with('/') {
            cx.error(
                &sp(p),
                format!("`path` = \"{s}\" is not an absolute file path; expected a path like \"{DEFAULT_PATH}\", or \"none\" for no history"),
            );
        } else {
            cfg.path = Some(PathBuf::from(s));
        }
    }
    cfg.keep_seconds = span(
        cx,
        &raw.keep_seconds,
        "keep_seconds",
        MIN_KEEP_SECONDS,
        MAX_KEEP_SECONDS,
        DEFAULT_KEEP_SECONDS,
    );
    cfg.keep_minutes = span(
        cx,
        &raw.keep_minutes,
        "keep_minutes",
        MIN_KEEP_SECONDS,
        MAX_KEEP_MINUTES,
        DEFAULT_KEEP_MINUTES,
    );
    if cfg.keep_minutes < cfg.keep_seconds {
        // Point at what the operator wrote: keep_minutes if given.
        let at = raw
            .keep_minutes
            .as_ref()
            .or(raw.keep_seconds.as_ref())
            .and_then(sp);
        cx.error(
            &at,
            format!(
                "`keep_minutes` ({}) is shorter than `keep_seconds` ({}); expected at least as long (minute rows are what 1-second rows become)",
                show_span(cfg.keep_minutes),
                show_span(cfg.keep_seconds)
            ),
        );
    }
    if let Some(v) = &raw.max_size {
        let parsed = match v.get_ref() {
            StrOrInt::Str(s) => s
                .parse::<Size>()
                .map(Size::bytes)
                .map_err(|e| e.to_string()),
            StrOrInt::Int(n) => u64::try_from(*n).map_err(|_| format!("{n} is negative")),
        };
        match parsed {
            Ok(n) if n >= MIN_MAX_SIZE => cfg.max_size = Some(n),
            Ok(n) => cx.error(
                &sp(v),
                format!("`max_size` = {n} bytes is too small; expected at least 1mb"),
            ),
            Err(e) => cx.error(
                &sp(v),
                format!("bad `max_size`: {e}; expected a size like \"1gb\""),
            ),
        }
    }
    cfg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_need_units() {
        assert_eq!(parse_span("6h"), Ok(Duration::from_secs(6 * 3600)));
        assert_eq!(parse_span("30d"), Ok(Duration::from_secs(30 * 86400)));
        assert_eq!(parse_span("1.5min"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_span(" 2 weeks "), Ok(Duration::from_secs(14 * 86400)));
        assert_eq!(parse_span("90s"), Ok(Duration::from_secs(90)));
        assert!(parse_span("6").unwrap_err().to_string().contains("no unit"));
        assert!(parse_span("h").unwrap_err().to_string().contains("number"));
        assert!(parse_span("1.2.3h")
            .unwrap_err()
            .to_string()
            .contains("number"));
        assert!(parse_span("5parsecs")
            .unwrap_err()
            .to_string()
            .contains("unknown unit"));
        assert!(parse_span("200000w")
            .unwrap_err()
            .to_string()
            .contains("century"));
    }

    #[test]
    fn spans_print_in_their_largest_unit() {
        assert_eq!(show_span(Duration::from_secs(6 * 3600)), "6h");
        assert_eq!(show_span(Duration::from_secs(30 * 86400)), "30d");
        assert_eq!(show_span(Duration::from_secs(14 * 86400)), "2w");
        assert_eq!(show_span(Duration::from_secs(90)), "90s");
        assert_eq!(show_span(Duration::from_secs(120)), "2min");
        assert_eq!(show_span(Duration::from_millis(1500)), "1500ms");
    }
}
