//! `weir history`: statistics per class, interface and app over a time range
//! (avg, min, max, median, stddev, p95 of rate and utilization, and the
//! counters' totals), the SLA violations, or the policy adjustments, from
//! the history database — read-only, while `weir run` writes it. Exit
//! codes: 0 (also when nothing is in range: it says so), 1 the database
//! can't be read, 2 bad usage (a bad `--since`, a configuration with
//! errors).

use std::io::Write;
use std::path::PathBuf;

use serde_json::{json, Value};

use weir_config::history::{parse_span, DEFAULT_PATH};
use weir_config::units::{fmt_duration, fmt_rate_decimal as fmt_rate};
use weir_config::Rate;
use weir_history::stats::Summary;
use weir_history::time::{parse_rfc3339, rfc3339, short};
use weir_history::{
    AppStats, ClassStats, Coverage, IfaceStats, Query, QueryResult, Reader, Select,
};

/// `weir history`'s options.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct HistoryArgs {
    /// Read the database this configuration's `[history] path` names.
    #[arg(short, long, conflicts_with = "db")]
    pub config: Option<PathBuf>,
    /// The database file (default: /var/lib/weir/history.db).
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Only the classes of this tree.
    #[arg(long)]
    pub tree: Option<String>,
    /// Only this class: an id (1:10) or a name.
    #[arg(long)]
    pub class: Option<String>,
    /// Only this interface.
    #[arg(long)]
    pub interface: Option<String>,
    /// Only this app (trees with `[[tree.T.app]]`; with --tree, of that
    /// tree). Apps are shown with the classes and interfaces when no
    /// --class or --interface is given.
    #[arg(long, conflicts_with_all = ["class", "interface"])]
    pub app: Option<String>,
    /// Start of the range: a span back from now (30min, 1h, 7d) or an
    /// RFC 3339 time (2025-03-01T12:00:00Z).
    #[arg(long, default_value = "1h")]
    pub since: String,
    /// End of the range, the same way (default: now).
    #[arg(long)]
    pub until: Option<String>,
    /// JSON (schema in docs/history.md).
    #[arg(short = 'j', long)]
    pub json: bool,
    /// The SLA violations open during the range, instead of statistics.
    #[arg(long)]
    pub violations: bool,
    /// The policy engine's rate/ceil changes in the range, instead of
    /// statistics.
    #[arg(long)]
    pub adjustments: bool,
}

/// `--since` / `--until`: a span back from `now`, or an RFC 3339 time.
pub fn parse_when(s: &str, now_unix_ms: i64) -> Result<i64, String> {
    let t = s.trim();
    let looks_like_date = t.len() >= 10 && t.as_bytes()[4] == b'-';
    if looks_like_date {
        return parse_rfc3339(t).map_err(|e| e.to_string());
    }
    match parse_span(t) {
        Ok(d) => Ok(now_unix_ms.saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))),
        Err(e) => Err(format!(
            "{e} (a span back from now like 1h, 30min, 7d, or an RFC 3339 time like 2025-03-01T12:00:00Z)"
        )),
    }
}

/// Run `weir history`; `now_unix_ms` is what `--since 1h` counts back
/// from.
pub fn cli_history(
    args: &HistoryArgs,
    now_unix_ms: i64,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let path = match (&args.config, &args.db) {
        (Some(c), _) => match weir_config::load(c) {
            Err(diags) => {
                for d in &diags {
                    let _ = writeln!(err, "{d}");
                }
                let _ = writeln!(err, "{}: {} error(s)", c.display(), diags.len());
                return 2;
            }
            Ok(l) => match l.config.history.path {
                Some(p) => p,
                None => {
                    let _ = writeln!(
                        err,
                        "weir history: history is off in {} ([history] path = \"none\"); use --db PATH to read a database",
                        c.display()
                    );
                    return 1;
                }
            },
        },
        (None, Some(db)) => db.clone(),
        (None, None) => PathBuf::from(DEFAULT_PATH),
    };
    let from = match parse_when(&args.since, now_unix_ms) {
        Ok(t) => t,
        Err(e) => {
            let _ = writeln!(err, "weir history: bad --since \"{}\": {e}", args.since);
            return 2;
        }
    };
    let until = match &args.until {
        None => now_unix_ms,
        Some(s) => match parse_when(s, now_unix_ms) {
            Ok(t) => t,
            Err(e) => {
                let _ = writeln!(err, "weir history: bad --until \"{s}\": {e}");
                return 2;
            }
        },
    };
    if from > until {
        let _ = writeln!(
            err,
            "weir history: --since ({}) is after --until ({}); expected an earlier start",
            rfc3339(from),
            rfc3339(until)
        );
        return 2;
    }
    let reader = match Reader::open(&path) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(err, "weir history: {e}");
            return 1;
        }
    };
    let q = Query {
        from_unix_ms: from,
        until_unix_ms: until,
        tree: args.tree.clone(),
        class: args.class.clone(),
        interface: args.interface.clone(),
        app: args.app.clone(),
        select: Select {
            stats: !(args.violations || args.adjustments),
            violations: args.violations,
            adjustments: args.adjustments,
        },
    };
    let res = match reader.query(&q) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(err, "weir history: {e}");
            return 1;
        }
    };
    let db = path.display().to_string();
    let r = if args.json {
        let text =
            serde_json::to_string_pretty(&to_json(&db, &q, &res, now_unix_ms)).unwrap_or_default();
        writeln!(out, "{text}")
    } else {
        out.write_all(text(&db, &q, &res, now_unix_ms).as_bytes())
    };
    // A closed pipe (`| head`) is not an error of ours.
    let _ = r;
    0
}

fn pct(x: f64) -> String {
    format!("{x:.2}")
}

/// A violation's value or threshold with its unit.
fn with_unit(x: f64, unit: &str) -> String {
    if unit == "bit/s" {
        return fmt_rate(x);
    }
    let n = format!("{x:.3}");
    let n = n.trim_end_matches('0').trim_end_matches('.');
    format!("{n}{unit}")
}

fn bytes_rate(bytes_per_sec: u64) -> String {
    Rate::from_bits_per_sec(bytes_per_sec.saturating_mul(8)).to_string()
}

fn coverage_text(c: &Coverage) -> String {
    let mut s = format!("{} sample(s)", c.samples);
    if c.minute_rows > 0 {
        s.push_str(&format!(
            " ({} 1-second, {} in {} 1-minute row(s): median and p95 approximate)",
            c.second_rows, c.minute_samples, c.minute_rows
        ));
    }
    s.push_str(&format!(
        ", {} .. {}",
        short(c.first_unix_ms),
        short(c.last_unix_ms)
    ));
    s
}

const HEAD: &str =
    "               avg          min          max       median       stddev          p95\n";

fn stat_line(label: &str, s: &Option<Summary>, f: fn(f64) -> String) -> String {
    match s {
        None => format!(" {label:<8} n/a\n"),
        Some(s) => {
            let sd = s.stddev.map_or_else(|| "-".to_string(), f);
            format!(
                " {label:<8}{:>12} {:>12} {:>12} {:>12} {:>12} {:>12}\n",
                f(s.avg),
                f(s.min),
                f(s.max),
                f(s.median),
                sd,
                f(s.p95)
            )
        }
    }
}

fn class_text(c: &ClassStats) -> String {
    let label = match &c.name {
        Some(n) => format!("{} ({n})", c.class),
        None => c.class.clone(),
    };
    let mut s = format!("class {} {label}: {}\n", c.tree, coverage_text(&c.coverage));
    s.push_str(HEAD);
    s.push_str(&stat_line("rate", &c.rate_bps, fmt_rate));
    s.push_str(&stat_line("util %", &c.utilization, pct));
    s.push_str(&format!(
        " Sent {} bytes {} pkt (dropped {}, overlimits {}) backlog at most {}b {}p\n",
        c.bytes, c.packets, c.drops, c.overlimits, c.backlog_bytes_max, c.backlog_packets_max
    ));
    s.push_str(&format!(
        " in force at the end: rate {} ceil {}\n",
        bytes_rate(c.rate),
        bytes_rate(c.ceil)
    ));
    s
}

fn app_text(a: &AppStats) -> String {
    let class = a
        .class
        .as_deref()
        .map(|c| format!(" (class {c})"))
        .unwrap_or_default();
    let mut s = format!(
        "app {} {}{class}: {}\n",
        a.tree,
        a.app,
        coverage_text(&a.coverage)
    );
    s.push_str(HEAD);
    s.push_str(&stat_line("rate", &a.rate_bps, fmt_rate));
    s.push_str(&format!(
        " Sent {} bytes {} pkt (dropped {}) flows {}\n",
        a.bytes, a.packets, a.drops, a.flows
    ));
    s
}

fn iface_text(i: &IfaceStats) -> String {
    let mut s = format!("interface {}: {}\n", i.name, coverage_text(&i.coverage));
    s.push_str(HEAD);
    s.push_str(&stat_line("rate in", &i.rate_in_bps, fmt_rate));
    s.push_str(&stat_line("rate out", &i.rate_out_bps, fmt_rate));
    if i.utilization.is_some() {
        s.push_str(&stat_line("util %", &i.utilization, pct));
    } else {
        s.push_str(" util %   n/a (the tree sending out of it has no link)\n");
    }
    s.push_str(&format!(
        " RX {} bytes {} pkt (errors {}, dropped {})\n TX {} bytes {} pkt (errors {}, dropped {})\n",
        i.rx_bytes, i.rx_packets, i.rx_errors, i.rx_drops, i.tx_bytes, i.tx_packets, i.tx_errors, i.tx_drops
    ));
    s
}

/// Rows of cells as left-aligned columns.
fn table(rows: &[Vec<String>]) -> String {
    weir_config::units::columns(rows, usize::MAX)
}

/// The text output.
pub fn text(db: &str, q: &Query, r: &QueryResult, now_unix_ms: i64) -> String {
    let range = format!(
        "{} .. {} UTC",
        short(q.from_unix_ms),
        short(q.until_unix_ms)
    );
    let mut s = format!("history {db}: {range}\n");
    if q.select.stats {
        if r.classes.is_empty() && r.interfaces.is_empty() && r.apps.is_empty() {
            let what = match (&q.tree, &q.class, &q.interface) {
                _ if q.app.is_some() => format!(" for app {}", q.app.as_deref().unwrap_or("")),
                (_, Some(c), _) => format!(" for class {c}"),
                (Some(t), None, _) => format!(" for tree {t}"),
                (None, None, Some(i)) => format!(" for interface {i}"),
                _ => String::new(),
            };
            s.push_str(&format!("no samples{what} in this range\n"));
        }
        for c in &r.classes {
            s.push('\n');
            s.push_str(&class_text(c));
        }
        for i in &r.interfaces {
            s.push('\n');
            s.push_str(&iface_text(i));
        }
        for a in &r.apps {
            s.push('\n');
            s.push_str(&app_text(a));
        }
    }
    if q.select.violations {
        s.push('\n');
        if r.violations.is_empty() {
            s.push_str("no SLA violations in this range\n");
        } else {
            let mut rows = vec![[
                "rule",
                "target",
                "severity",
                "value",
                "threshold",
                "opened",
                "resolved",
                "duration",
                "resolution",
            ]
            .map(String::from)
            .to_vec()];
            for v in &r.violations {
                let end = v.resolved_unix_ms.unwrap_or(now_unix_ms);
                rows.push(vec![
                    v.rule.clone(),
                    v.target.clone(),
                    v.severity.clone(),
                    format!("{} {}", v.metric, with_unit(v.value, &v.unit)),
                    with_unit(v.threshold, &v.unit),
                    short(v.opened_unix_ms),
                    v.resolved_unix_ms.map_or_else(|| "open".to_string(), short),
                    fmt_duration(end - v.opened_unix_ms)
                        + if v.resolved_unix_ms.is_none() {
                            " so far"
                        } else {
                            ""
                        },
                    v.resolution.clone().unwrap_or_default(),
                ]);
            }
            s.push_str(&format!("SLA violations: {}\n", r.violations.len()));
            s.push_str(&table(&rows));
        }
    }
    if q.select.adjustments {
        s.push('\n');
        if r.adjustments.is_empty() {
            s.push_str("no adjustments in this range\n");
        } else {
            let mut rows = vec![["time", "tree", "class", "rate", "ceil", "reason"]
                .map(String::from)
                .to_vec()];
            for a in &r.adjustments {
                let class = match &a.name {
                    Some(n) => format!("{} ({n})", a.class),
                    None => a.class.clone(),
                };
                rows.push(vec![
                    short(a.at_unix_ms),
                    a.tree.clone(),
                    class,
                    format!("{} → {}", bytes_rate(a.old_rate), bytes_rate(a.new_rate)),
                    format!("{} → {}", bytes_rate(a.old_ceil), bytes_rate(a.new_ceil)),
                    a.reason.clone(),
                ]);
            }
            s.push_str(&format!("adjustments: {}\n", r.adjustments.len()));
            s.push_str(&table(&rows));
        }
    }
    s
}

fn summary_json(s: &Option<Summary>) -> Value {
    match s {
        None => Value::Null,
        Some(s) => json!({
            "count": s.count,
            "avg": s.avg,
            "min": s.min,
            "max": s.max,
            "median": s.median,
            "stddev": s.stddev,
            "p95": s.p95,
            "approximate": s.approximate,
        }),
    }
}

fn coverage_json(c: &Coverage) -> Value {
    json!({
        "samples": c.samples,
        "second_rows": c.second_rows,
        "minute_rows": c.minute_rows,
        "minute_samples": c.minute_samples,
        "first_unix_ms": c.first_unix_ms,
        "last_unix_ms": c.last_unix_ms,
    })
}

/// The JSON output (docs/history.md).
pub fn to_json(db: &str, q: &Query, r: &QueryResult, now_unix_ms: i64) -> Value {
    let mut v = json!({
        "db": db,
        "from_unix_ms": q.from_unix_ms,
        "until_unix_ms": q.until_unix_ms,
        "from": rfc3339(q.from_unix_ms),
        "until": rfc3339(q.until_unix_ms),
    });
    if q.select.stats {
        v["classes"] = r
            .classes
            .iter()
            .map(|c| {
                json!({
                    "tree": c.tree,
                    "class": c.class,
                    "name": c.name,
                    "coverage": coverage_json(&c.coverage),
                    "rate_bps": summary_json(&c.rate_bps),
                    "utilization": summary_json(&c.utilization),
                    "bytes": c.bytes,
                    "packets": c.packets,
                    "drops": c.drops,
                    "overlimits": c.overlimits,
                    "backlog_bytes_max": c.backlog_bytes_max,
                    "backlog_packets_max": c.backlog_packets_max,
                    "rate": c.rate,
                    "ceil": c.ceil,
                })
            })
            .collect();
        v["interfaces"] = r
            .interfaces
            .iter()
            .map(|i| {
                json!({
                    "name": i.name,
                    "coverage": coverage_json(&i.coverage),
                    "rate_in_bps": summary_json(&i.rate_in_bps),
                    "rate_out_bps": summary_json(&i.rate_out_bps),
                    "utilization": summary_json(&i.utilization),
                    "rx_bytes": i.rx_bytes,
                    "tx_bytes": i.tx_bytes,
                    "rx_packets": i.rx_packets,
                    "tx_packets": i.tx_packets,
                    "rx_errors": i.rx_errors,
                    "tx_errors": i.tx_errors,
                    "rx_drops": i.rx_drops,
                    "tx_drops": i.tx_drops,
                })
            })
            .collect();
        // Only when there are apps (or one was asked for): the JSON of a
        // history without apps is as it was.
        if !r.apps.is_empty() || q.app.is_some() {
            v["apps"] = r
                .apps
                .iter()
                .map(|a| {
                    json!({
                        "tree": a.tree,
                        "app": a.app,
                        "class": a.class,
                        "coverage": coverage_json(&a.coverage),
                        "rate_bps": summary_json(&a.rate_bps),
                        "flows": a.flows,
                        "bytes": a.bytes,
                        "packets": a.packets,
                        "drops": a.drops,
                    })
                })
                .collect();
        }
    }
    if q.select.violations {
        v["violations"] = r
            .violations
            .iter()
            .map(|x| {
                json!({
                    "rule": x.rule,
                    "target": x.target,
                    "severity": x.severity,
                    "metric": x.metric,
                    "unit": x.unit,
                    "value": x.value,
                    "threshold": x.threshold,
                    "opened_unix_ms": x.opened_unix_ms,
                    "opened": rfc3339(x.opened_unix_ms),
                    "resolved_unix_ms": x.resolved_unix_ms,
                    "resolved": x.resolved_unix_ms.map(rfc3339),
                    "duration_ms": x.resolved_unix_ms.unwrap_or(now_unix_ms) - x.opened_unix_ms,
                    "open": x.resolved_unix_ms.is_none(),
                    "resolved_value": x.resolved_value,
                    "resolution": x.resolution,
                })
            })
            .collect();
    }
    if q.select.adjustments {
        v["adjustments"] = r
            .adjustments
            .iter()
            .map(|a| {
                json!({
                    "at_unix_ms": a.at_unix_ms,
                    "at": rfc3339(a.at_unix_ms),
                    "tree": a.tree,
                    "class": a.class,
                    "name": a.name,
                    "old_rate": a.old_rate,
                    "old_ceil": a.old_ceil,
                    "new_rate": a.new_rate,
                    "new_ceil": a.new_ceil,
                    "reason": a.reason,
                })
            })
            .collect();
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_is_a_span_back_or_a_time() {
        let now = 1_700_000_000_000;
        assert_eq!(parse_when("1h", now), Ok(now - 3_600_000));
        assert_eq!(parse_when("30min", now), Ok(now - 1_800_000));
        assert_eq!(parse_when("2023-11-14T22:13:20Z", now), Ok(now));
        assert!(parse_when("yesterday", now)
            .unwrap_err()
            .contains("RFC 3339"));
        assert!(parse_when("2023-11-14", now).is_ok());
        assert!(parse_when("2023-99-14T00:00:00Z", now).is_err());
        assert!(parse_when("10", now).unwrap_err().contains("no unit"));
    }
}
