//! The read side: what `weir history` asks the database, as plain values
//! (the CLI formats them). Reads 1-second rows where they still exist and
//! minute rows for the older part of a range, and combines them with the
//! arithmetic in [`super::stats`].

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection};

use super::schema::{self, Layout, MinRow, SecRow, APP, CLASS, IFACE};
use super::stats::{summarize, Folded, Summary};
use super::HistoryError;

const MINUTE: i64 = 60_000;

/// Which parts of the history to read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Select {
    /// Per class and interface statistics.
    pub stats: bool,
    pub violations: bool,
    pub adjustments: bool,
}

/// A question for [`Reader::query`]. Times are unix ms, both ends
/// included.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    pub from_unix_ms: i64,
    pub until_unix_ms: i64,
    /// Only classes of this tree.
    pub tree: Option<String>,
    /// Only this class: id (`1:10`) or name.
    pub class: Option<String>,
    /// Only this interface.
    pub interface: Option<String>,
    /// Only this app (of every tree, or of `tree`).
    pub app: Option<String>,
    pub select: Select,
}

/// How much of a target's range the rows cover.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Samples in all: 1-second rows plus the samples folded into minute
    /// rows.
    pub samples: u64,
    pub second_rows: u64,
    pub minute_rows: u64,
    /// Samples folded into those minute rows.
    pub minute_samples: u64,
    /// The earliest row's time (a minute row's is its minute's start).
    pub first_unix_ms: i64,
    /// The latest row's time (a minute row's is its minute's last
    /// millisecond).
    pub last_unix_ms: i64,
}

/// One class over the range.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassStats {
    pub tree: String,
    pub class: String,
    pub name: Option<String>,
    pub coverage: Coverage,
    /// Measured rate, bits/s.
    pub rate_bps: Option<Summary>,
    /// Percent of ceil.
    pub utilization: Option<Summary>,
    pub bytes: u64,
    pub packets: u64,
    pub drops: u64,
    pub overlimits: u64,
    pub backlog_bytes_max: u64,
    pub backlog_packets_max: u64,
    /// Rate and ceil in force at the latest row, bytes/s.
    pub rate: u64,
    pub ceil: u64,
}

/// One app over the range.
#[derive(Clone, Debug, PartialEq)]
pub struct AppStats {
    pub tree: String,
    pub app: String,
    /// Its class id at the latest sample, when known.
    pub class: Option<String>,
    pub coverage: Coverage,
    /// bits/s.
    pub rate_bps: Option<Summary>,
    pub flows: u64,
    pub bytes: u64,
    pub packets: u64,
    pub drops: u64,
}

/// One interface over the range.
#[derive(Clone, Debug, PartialEq)]
pub struct IfaceStats {
    pub name: String,
    pub coverage: Coverage,
    pub rate_in_bps: Option<Summary>,
    pub rate_out_bps: Option<Summary>,
    /// Percent of the tree's link; None when it has none.
    pub utilization: Option<Summary>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_drops: u64,
    pub tx_drops: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ViolationRow {
    pub rule: String,
    pub target: String,
    pub severity: String,
    pub metric: String,
    pub unit: String,
    /// When it opened.
    pub value: f64,
    pub threshold: f64,
    pub opened_unix_ms: i64,
    /// None while open.
    pub resolved_unix_ms: Option<i64>,
    pub resolved_value: Option<f64>,
    /// `cleared`, or why it was closed (`configuration reloaded`, `weir
    /// stopped`, `weir restarted`); None while open.
    pub resolution: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AdjustmentRow {
    pub at_unix_ms: i64,
    pub tree: String,
    pub class: String,
    pub name: Option<String>,
    /// bytes/s.
    pub old_rate: u64,
    pub old_ceil: u64,
    pub new_rate: u64,
    pub new_ceil: u64,
    pub reason: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueryResult {
    pub classes: Vec<ClassStats>,
    pub interfaces: Vec<IfaceStats>,
    /// Empty unless some tree has apps.
    pub apps: Vec<AppStats>,
    pub violations: Vec<ViolationRow>,
    pub adjustments: Vec<AdjustmentRow>,
}

/// A read-only connection to a history database.
pub struct Reader {
    conn: Connection,
    path: PathBuf,
}

/// One target's rows over the range, combined.
struct Combined {
    coverage: Coverage,
    /// [`Layout::ints`] order: sums, maxes, lasts (of the latest row).
    ints: Vec<i64>,
    metrics: Vec<Option<Summary>>,
}

/// (id, tree, class id or interface name, label).
type TargetRow = (i64, String, String, Option<String>);

fn u(x: i64) -> u64 {
    u64::try_from(x).unwrap_or(0)
}

impl Reader {
    /// Open an existing database read-only (it may be in use by `weir
    /// run`).
    pub fn open(path: &Path) -> Result<Reader, HistoryError> {
        Ok(Reader {
            conn: schema::open_ro(path)?,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, source: rusqlite::Error) -> HistoryError {
        HistoryError::Query {
            path: self.path.clone(),
            source,
        }
    }

    /// Answer `q` from one consistent snapshot of the database.
    pub fn query(&self, q: &Query) -> Result<QueryResult, HistoryError> {
        // One read transaction: a fold committed meanwhile can't make a
        // sample count twice or not at all.
        self.conn.execute_batch("BEGIN").map_err(|e| self.err(e))?;
        let r = self.query_in(q).map_err(|e| self.err(e));
        let _ = self.conn.execute_batch("COMMIT");
        r
    }

    fn query_in(&self, q: &Query) -> rusqlite::Result<QueryResult> {
        let mut out = QueryResult::default();
        if q.select.stats {
            let want_classes =
                q.app.is_none() && (q.class.is_some() || q.tree.is_some() || q.interface.is_none());
            let want_ifaces = q.app.is_none()
                && (q.interface.is_some() || (q.class.is_none() && q.tree.is_none()));
            let want_apps = q.app.is_some() || (q.class.is_none() && q.interface.is_none());
            if want_apps {
                for (id, tree, app, class) in self.targets("app")? {
                    let tree_ok = q.tree.as_ref().is_none_or(|t| *t == tree);
                    if !tree_ok || q.app.as_ref().is_some_and(|a| *a != app) {
                        continue;
                    }
                    let Some(c) = self.combine(&APP, id, q)? else {
                        continue;
                    };
                    out.apps.push(AppStats {
                        tree,
                        app,
                        class,
                        coverage: c.coverage,
                        rate_bps: c.metrics[0],
                        flows: u(c.ints[1]),
                        bytes: u(c.ints[2]),
                        packets: u(c.ints[3]),
                        drops: u(c.ints[4]),
                    });
                }
            }
            if want_classes {
                for (id, tree, class, name) in self.targets("class")? {
                    let tree_ok = q.tree.as_ref().is_none_or(|t| *t == tree);
                    let class_ok = q
                        .class
                        .as_ref()
                        .is_none_or(|c| *c == class || Some(c) == name.as_ref());
                    if !(tree_ok && class_ok) {
                        continue;
                    }
                    let Some(c) = self.combine(&CLASS, id, q)? else {
                        continue;
                    };
                    out.classes.push(ClassStats {
                        tree,
                        class,
                        name,
                        coverage: c.coverage,
                        rate_bps: c.metrics[0],
                        utilization: c.metrics[1],
                        bytes: u(c.ints[1]),
                        packets: u(c.ints[2]),
                        drops: u(c.ints[3]),
                        overlimits: u(c.ints[4]),
                        backlog_bytes_max: u(c.ints[5]),
                        backlog_packets_max: u(c.ints[6]),
                        rate: u(c.ints[7]),
                        ceil: u(c.ints[8]),
                    });
                }
            }
            if want_ifaces {
                for (id, _, name, _) in self.targets("interface")? {
                    if q.interface.as_ref().is_some_and(|i| *i != name) {
                        continue;
                    }
                    let Some(c) = self.combine(&IFACE, id, q)? else {
                        continue;
                    };
                    out.interfaces.push(IfaceStats {
                        name,
                        coverage: c.coverage,
                        rate_in_bps: c.metrics[0],
                        rate_out_bps: c.metrics[1],
                        utilization: c.metrics[2],
                        rx_bytes: u(c.ints[1]),
                        tx_bytes: u(c.ints[2]),
                        rx_packets: u(c.ints[3]),
                        tx_packets: u(c.ints[4]),
                        rx_errors: u(c.ints[5]),
                        tx_errors: u(c.ints[6]),
                        rx_drops: u(c.ints[7]),
                        tx_drops: u(c.ints[8]),
                    });
                }
            }
        }
        if q.select.violations {
            out.violations = self.violations(q)?;
        }
        if q.select.adjustments {
            out.adjustments = self.adjustments(q)?;
        }
        Ok(out)
    }

    /// Every target of a kind, first seen first.
    fn targets(&self, kind: &str) -> rusqlite::Result<Vec<TargetRow>> {
        let mut st = self
            .conn
            .prepare("SELECT id, tree, name, label FROM target WHERE kind = ?1 ORDER BY id")?;
        let rows = st.query_map([kind], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        rows.collect()
    }

    /// One target's 1-second rows in the range and the minute rows that
    /// overlap it, combined; None when there are none.
    fn combine(&self, l: &Layout, target: i64, q: &Query) -> rusqlite::Result<Option<Combined>> {
        let secs: Vec<SecRow> = {
            let mut st = self.conn.prepare_cached(&format!(
                "SELECT {} FROM {} WHERE target = ?1 AND t >= ?2 AND t <= ?3 ORDER BY t",
                l.sec_columns(),
                l.sec
            ))?;
            let rows = st.query_map(params![target, q.from_unix_ms, q.until_unix_ms], |r| {
                l.read_sec(r)
            })?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mins: Vec<MinRow> = {
            let mut st = self.conn.prepare_cached(&format!(
                "SELECT {} FROM {} WHERE target = ?1 AND t > ?2 AND t <= ?3 ORDER BY t",
                l.min_columns(),
                l.min
            ))?;
            let rows = st.query_map(
                params![
                    target,
                    q.from_unix_ms.saturating_sub(MINUTE),
                    q.until_unix_ms
                ],
                |r| l.read_min(r),
            )?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        Ok(combine(l, &secs, &mins))
    }

    fn violations(&self, q: &Query) -> rusqlite::Result<Vec<ViolationRow>> {
        let mut st = self.conn.prepare(
            "SELECT rule, target, severity, metric, unit, value, threshold, opened, resolved, \
             resolved_value, resolution FROM violation \
             WHERE opened <= ?2 AND (resolved IS NULL OR resolved >= ?1) ORDER BY opened, id",
        )?;
        let rows = st.query_map(params![q.from_unix_ms, q.until_unix_ms], |r| {
            Ok(ViolationRow {
                rule: r.get(0)?,
                target: r.get(1)?,
                severity: r.get(2)?,
                metric: r.get(3)?,
                unit: r.get(4)?,
                value: r.get(5)?,
                threshold: r.get(6)?,
                opened_unix_ms: r.get(7)?,
                resolved_unix_ms: r.get(8)?,
                resolved_value: r.get(9)?,
                resolution: r.get(10)?,
            })
        })?;
        rows.collect()
    }

    fn adjustments(&self, q: &Query) -> rusqlite::Result<Vec<AdjustmentRow>> {
        let mut st = self.conn.prepare(
            "SELECT t, tree, class, name, old_rate, old_ceil, new_rate, new_ceil, reason \
             FROM adjustment WHERE t >= ?1 AND t <= ?2 ORDER BY t, id",
        )?;
        let rows = st.query_map(params![q.from_unix_ms, q.until_unix_ms], |r| {
            Ok(AdjustmentRow {
                at_unix_ms: r.get(0)?,
                tree: r.get(1)?,
                class: r.get(2)?,
                name: r.get(3)?,
                old_rate: u(r.get(4)?),
                old_ceil: u(r.get(5)?),
                new_rate: u(r.get(6)?),
                new_ceil: u(r.get(7)?),
                reason: r.get(8)?,
            })
        })?;
        let all: Vec<AdjustmentRow> = rows.collect::<rusqlite::Result<_>>()?;
        Ok(all
            .into_iter()
            .filter(|a| q.tree.as_ref().is_none_or(|t| *t == a.tree))
            .filter(|a| {
                q.class
                    .as_ref()
                    .is_none_or(|c| *c == a.class || Some(c) == a.name.as_ref())
            })
            .collect())
    }
}

/// 1-second rows and minute rows of one target (each sorted by time, not
/// overlapping: folding deletes what it folds) as one set of numbers.
fn combine(l: &Layout, secs: &[SecRow], mins: &[MinRow]) -> Option<Combined> {
    if secs.is_empty() && mins.is_empty() {
        return None;
    }
    let (n_sums, n_maxes) = (l.sums.len(), l.maxes.len());
    let width = n_sums + n_maxes + l.lasts.len();
    let mut ints = vec![0i64; width];
    let all_ints = secs
        .iter()
        .map(|r| &r.ints)
        .chain(mins.iter().map(|r| &r.ints));
    for row in all_ints {
        for (i, v) in row.iter().enumerate().take(n_sums + n_maxes) {
            if i < n_sums {
                ints[i] = ints[i].saturating_add(*v);
            } else {
                ints[i] = ints[i].max(*v);
            }
        }
    }
    // Settings of the latest row: a minute row stands for its minute.
    let last_sec = secs.last().map(|r| (r.t, &r.ints));
    let last_min = mins.last().map(|r| (r.t + MINUTE - 1, &r.ints));
    let latest = match (last_sec, last_min) {
        (Some(a), Some(b)) => Some(if a.0 >= b.0 { a } else { b }),
        (a, b) => a.or(b),
    };
    if let Some((_, row)) = latest {
        ints[n_sums + n_maxes..].copy_from_slice(&row[n_sums + n_maxes..]);
    }
    let metrics = (0..l.metrics.len())
        .map(|m| {
            let exact: Vec<f64> = secs.iter().filter_map(|r| r.metrics[m]).collect();
            let folded: Vec<Folded> = mins.iter().filter_map(|r| r.metrics[m]).collect();
            summarize(&exact, &folded)
        })
        .collect();
    let minute_samples: i64 = mins.iter().map(|r| r.n).sum();
    let first = [secs.first().map(|r| r.t), mins.first().map(|r| r.t)]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(0);
    let last = [
        secs.last().map(|r| r.t),
        mins.last().map(|r| r.t + MINUTE - 1),
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(0);
    Some(Combined {
        coverage: Coverage {
            samples: secs.len() as u64 + u(minute_samples),
            second_rows: secs.len() as u64,
            minute_rows: mins.len() as u64,
            minute_samples: u(minute_samples),
            first_unix_ms: first,
            last_unix_ms: last,
        },
        ints,
        metrics,
    })
}
