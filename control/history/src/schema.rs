//! The database: schema, migrations (`PRAGMA user_version`), and opening
//! it for the writer or for `weir history`.
//!
//! Samples are stored per *target* (a class of a tree, an interface, or
//! an app of a tree),
//! named once in `target` and referred to by its id, so a 1-second row
//! holds numbers only. Sample tables are `WITHOUT ROWID` with the primary
//! key (target, t): the rows of one target are stored in time order, so a
//! range read or a fold is one b-tree walk, and there is no second index
//! to keep. Times are unix milliseconds, UTC.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::stats::{Folded, Knots, Moments};
use super::HistoryError;

/// `PRAGMA application_id`: "weir". Tells weir's databases from others.
pub const APPLICATION_ID: i32 = 0x7765_6972;
/// The schema this build writes and reads.
pub const SCHEMA_VERSION: i32 = 2;

/// Schema version 1. Never edit a released version: add a migration.
const V1: &str = "
CREATE TABLE target (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('class', 'interface')),
    tree TEXT NOT NULL,              -- '' for interfaces
    name TEXT NOT NULL,              -- class id ('1:20') or interface name
    label TEXT,                      -- the class's name, as last seen
    UNIQUE (kind, tree, name)
);

-- One row per class per sample (about one a second). Counters are what
-- happened during the interval that ends at t; backlog is at t.
CREATE TABLE class_sec (
    target INTEGER NOT NULL REFERENCES target (id),
    t INTEGER NOT NULL,
    interval_ms INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    packets INTEGER NOT NULL,
    drops INTEGER NOT NULL,
    overlimits INTEGER NOT NULL,
    backlog_bytes INTEGER NOT NULL,
    backlog_packets INTEGER NOT NULL,
    rate INTEGER NOT NULL,           -- in force, bytes/s
    ceil INTEGER NOT NULL,           -- in force, bytes/s
    rate_bps INTEGER NOT NULL,       -- measured, bits/s
    utilization REAL NOT NULL,       -- percent of ceil
    PRIMARY KEY (target, t)
) WITHOUT ROWID;

-- 1-second rows older than keep_seconds, folded per minute (t: the
-- minute's start). Counters are sums, backlog the largest, rate and ceil
-- the last in force; each metric M keeps M_n samples, their mean and M2
-- (sum of squared deviations from the mean: stddev recombines exactly),
-- min, max and the quartiles and p95 (median and p95 of longer spans are
-- estimated from these).
CREATE TABLE class_min (
    target INTEGER NOT NULL REFERENCES target (id),
    t INTEGER NOT NULL,
    n INTEGER NOT NULL,
    interval_ms INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    packets INTEGER NOT NULL,
    drops INTEGER NOT NULL,
    overlimits INTEGER NOT NULL,
    backlog_bytes INTEGER NOT NULL,
    backlog_packets INTEGER NOT NULL,
    rate INTEGER NOT NULL,
    ceil INTEGER NOT NULL,
    rate_bps_n INTEGER NOT NULL, rate_bps_mean REAL, rate_bps_m2 REAL,
    rate_bps_min REAL, rate_bps_max REAL, rate_bps_p25 REAL, rate_bps_p50 REAL,
    rate_bps_p75 REAL, rate_bps_p95 REAL,
    utilization_n INTEGER NOT NULL, utilization_mean REAL, utilization_m2 REAL,
    utilization_min REAL, utilization_max REAL, utilization_p25 REAL,
    utilization_p50 REAL, utilization_p75 REAL, utilization_p95 REAL,
    PRIMARY KEY (target, t)
) WITHOUT ROWID;

CREATE TABLE iface_sec (
    target INTEGER NOT NULL REFERENCES target (id),
    t INTEGER NOT NULL,
    interval_ms INTEGER NOT NULL,
    rx_bytes INTEGER NOT NULL,
    tx_bytes INTEGER NOT NULL,
    rx_packets INTEGER NOT NULL,
    tx_packets INTEGER NOT NULL,
    rx_errors INTEGER NOT NULL,
    tx_errors INTEGER NOT NULL,
    rx_drops INTEGER NOT NULL,
    tx_drops INTEGER NOT NULL,
    rate_in_bps INTEGER NOT NULL,
    rate_out_bps INTEGER NOT NULL,
    utilization REAL,                -- percent of the tree's link; NULL: no link
    PRIMARY KEY (target, t)
) WITHOUT ROWID;

CREATE TABLE iface_min (
    target INTEGER NOT NULL REFERENCES target (id),
    t INTEGER NOT NULL,
    n INTEGER NOT NULL,
    interval_ms INTEGER NOT NULL,
    rx_bytes INTEGER NOT NULL,
    tx_bytes INTEGER NOT NULL,
    rx_packets INTEGER NOT NULL,
    tx_packets INTEGER NOT NULL,
    rx_errors INTEGER NOT NULL,
    tx_errors INTEGER NOT NULL,
    rx_drops INTEGER NOT NULL,
    tx_drops INTEGER NOT NULL,
    rate_in_bps_n INTEGER NOT NULL, rate_in_bps_mean REAL, rate_in_bps_m2 REAL,
    rate_in_bps_min REAL, rate_in_bps_max REAL, rate_in_bps_p25 REAL,
    rate_in_bps_p50 REAL, rate_in_bps_p75 REAL, rate_in_bps_p95 REAL,
    rate_out_bps_n INTEGER NOT NULL, rate_out_bps_mean REAL, rate_out_bps_m2 REAL,
    rate_out_bps_min REAL, rate_out_bps_max REAL, rate_out_bps_p25 REAL,
    rate_out_bps_p50 REAL, rate_out_bps_p75 REAL, rate_out_bps_p95 REAL,
    utilization_n INTEGER NOT NULL, utilization_mean REAL, utilization_m2 REAL,
    utilization_min REAL, utilization_max REAL, utilization_p25 REAL,
    utilization_p50 REAL, utilization_p75 REAL, utilization_p95 REAL,
    PRIMARY KEY (target, t)
) WITHOUT ROWID;

-- SLA violations: opened when a rule's condition has held long enough,
-- resolved when it clears (resolution 'cleared'), when the configuration
-- is reloaded or weir stops (the reason given), or at the next start
-- after a crash ('weir restarted').
CREATE TABLE violation (
    id INTEGER PRIMARY KEY,
    rule TEXT NOT NULL,
    target TEXT NOT NULL,
    severity TEXT NOT NULL,
    metric TEXT NOT NULL,
    unit TEXT NOT NULL,
    value REAL NOT NULL,             -- when opened
    threshold REAL NOT NULL,
    opened INTEGER NOT NULL,
    resolved INTEGER,                -- NULL while open
    resolved_value REAL,
    resolution TEXT
);
CREATE INDEX violation_opened ON violation (opened);
CREATE INDEX violation_open ON violation (rule, opened) WHERE resolved IS NULL;

-- Every rate/ceil change the policy engine made (bytes/s).
CREATE TABLE adjustment (
    id INTEGER PRIMARY KEY,
    t INTEGER NOT NULL,
    tree TEXT NOT NULL,
    class TEXT NOT NULL,
    name TEXT,
    old_rate INTEGER NOT NULL,
    old_ceil INTEGER NOT NULL,
    new_rate INTEGER NOT NULL,
    new_ceil INTEGER NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX adjustment_t ON adjustment (t);
";

/// Schema version 2: per-app rows. `target` is rebuilt to let its kind be
/// 'app' (SQLite can't change a CHECK in place; ids are kept, so the
/// sample tables' references hold), and the app tables are added.
const V2: &str = "
CREATE TABLE target_v2 (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('class', 'interface', 'app')),
    tree TEXT NOT NULL,              -- '' for interfaces
    name TEXT NOT NULL,              -- class id ('1:20'), interface or app name
    label TEXT,                      -- the class's name, or the app's class id, as last seen
    UNIQUE (kind, tree, name)
);
INSERT INTO target_v2 (id, kind, tree, name, label)
    SELECT id, kind, tree, name, label FROM target;
DROP TABLE target;
ALTER TABLE target_v2 RENAME TO target;

-- One row per app per sample: its flows' traffic as it entered the tree
-- (flows: flows that got the app during the interval).
CREATE TABLE app_sec (
    target INTEGER NOT NULL REFERENCES target (id),
    t INTEGER NOT NULL,
    interval_ms INTEGER NOT NULL,
    flows INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    packets INTEGER NOT NULL,
    drops INTEGER NOT NULL,
    rate_bps INTEGER NOT NULL,       -- bits/s over the interval
    PRIMARY KEY (target, t)
) WITHOUT ROWID;

CREATE TABLE app_min (
    target INTEGER NOT NULL REFERENCES target (id),
    t INTEGER NOT NULL,
    n INTEGER NOT NULL,
    interval_ms INTEGER NOT NULL,
    flows INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    packets INTEGER NOT NULL,
    drops INTEGER NOT NULL,
    rate_bps_n INTEGER NOT NULL, rate_bps_mean REAL, rate_bps_m2 REAL,
    rate_bps_min REAL, rate_bps_max REAL, rate_bps_p25 REAL, rate_bps_p50 REAL,
    rate_bps_p75 REAL, rate_bps_p95 REAL,
    PRIMARY KEY (target, t)
) WITHOUT ROWID;
";

/// Migrations: entry i takes user_version i to i + 1.
const MIGRATIONS: &[&str] = &[V1, V2];

/// One kind of target's sample tables, for the code that writes, folds
/// and reads them generically. Must match the DDL above (a test checks).
pub(crate) struct Layout {
    pub kind: &'static str,
    pub sec: &'static str,
    pub min: &'static str,
    /// Counters: summed into a minute row. The first is `interval_ms`.
    pub sums: &'static [&'static str],
    /// Levels at the sample's end: a minute row keeps the largest.
    pub maxes: &'static [&'static str],
    /// Settings in force: a minute row keeps the last.
    pub lasts: &'static [&'static str],
    /// Measurements summarised per minute (moments and knots).
    pub metrics: &'static [&'static str],
}

pub(crate) const CLASS: Layout = Layout {
    kind: "class",
    sec: "class_sec",
    min: "class_min",
    sums: &["interval_ms", "bytes", "packets", "drops", "overlimits"],
    maxes: &["backlog_bytes", "backlog_packets"],
    lasts: &["rate", "ceil"],
    metrics: &["rate_bps", "utilization"],
};

pub(crate) const APP: Layout = Layout {
    kind: "app",
    sec: "app_sec",
    min: "app_min",
    sums: &["interval_ms", "flows", "bytes", "packets", "drops"],
    maxes: &[],
    lasts: &[],
    metrics: &["rate_bps"],
};

pub(crate) const IFACE: Layout = Layout {
    kind: "interface",
    sec: "iface_sec",
    min: "iface_min",
    sums: &[
        "interval_ms",
        "rx_bytes",
        "tx_bytes",
        "rx_packets",
        "tx_packets",
        "rx_errors",
        "tx_errors",
        "rx_drops",
        "tx_drops",
    ],
    maxes: &[],
    lasts: &[],
    metrics: &["rate_in_bps", "rate_out_bps", "utilization"],
};

/// The suffixes of a metric's columns in a minute row, in order.
pub(crate) const METRIC_SUFFIXES: [&str; 9] =
    ["n", "mean", "m2", "min", "max", "p25", "p50", "p75", "p95"];

impl Layout {
    /// The integer columns of a 1-second row: sums, maxes, lasts.
    pub fn ints(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.sums
            .iter()
            .chain(self.maxes)
            .chain(self.lasts)
            .copied()
    }

    /// `t, interval_ms, …, rate_bps, utilization`.
    pub fn sec_columns(&self) -> String {
        let mut cols = vec!["t"];
        cols.extend(self.ints());
        cols.extend(self.metrics);
        cols.join(", ")
    }

    /// `t, n, interval_ms, …, rate_bps_n, rate_bps_mean, …`.
    pub fn min_columns(&self) -> String {
        let mut cols: Vec<String> = vec!["t".into(), "n".into()];
        cols.extend(self.ints().map(String::from));
        for m in self.metrics {
            cols.extend(METRIC_SUFFIXES.iter().map(|s| format!("{m}_{s}")));
        }
        cols.join(", ")
    }

    pub fn sec_width(&self) -> usize {
        1 + self.ints().count() + self.metrics.len()
    }

    pub fn min_width(&self) -> usize {
        2 + self.ints().count() + self.metrics.len() * METRIC_SUFFIXES.len()
    }
}

/// A 1-second row as the generic code sees it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SecRow {
    pub t: i64,
    /// [`Layout::ints`] order.
    pub ints: Vec<i64>,
    /// [`Layout::metrics`] order; None: not measured (an interface's
    /// utilization without a link).
    pub metrics: Vec<Option<f64>>,
}

/// A minute row as the generic code sees it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct MinRow {
    /// The minute's start.
    pub t: i64,
    /// 1-second rows folded into it.
    pub n: i64,
    /// [`Layout::ints`] order: sums, maxes, lasts.
    pub ints: Vec<i64>,
    /// [`Layout::metrics`] order; None: no sample had it.
    pub metrics: Vec<Option<Folded>>,
}

impl Layout {
    /// A row selected as [`Layout::sec_columns`].
    pub fn read_sec(&self, r: &rusqlite::Row) -> rusqlite::Result<SecRow> {
        let n_ints = self.ints().count();
        let ints = (0..n_ints)
            .map(|i| r.get(1 + i))
            .collect::<rusqlite::Result<_>>()?;
        let metrics = (0..self.metrics.len())
            .map(|i| r.get(1 + n_ints + i))
            .collect::<rusqlite::Result<_>>()?;
        Ok(SecRow {
            t: r.get(0)?,
            ints,
            metrics,
        })
    }

    /// A row selected as [`Layout::min_columns`].
    pub fn read_min(&self, r: &rusqlite::Row) -> rusqlite::Result<MinRow> {
        let n_ints = self.ints().count();
        let ints = (0..n_ints)
            .map(|i| r.get(2 + i))
            .collect::<rusqlite::Result<_>>()?;
        let mut metrics = Vec::with_capacity(self.metrics.len());
        for m in 0..self.metrics.len() {
            let at = 2 + n_ints + m * METRIC_SUFFIXES.len();
            let n: i64 = r.get(at)?;
            let mut v = [0.0; 8];
            let mut complete = n > 0;
            for (k, slot) in v.iter_mut().enumerate() {
                match r.get::<_, Option<f64>>(at + 1 + k)? {
                    Some(x) => *slot = x,
                    None => complete = false,
                }
            }
            let [mean, m2, min, max, p25, p50, p75, p95] = v;
            metrics.push(complete.then_some(Folded {
                moments: Moments {
                    n: n as u64,
                    mean,
                    m2,
                    min,
                    max,
                },
                knots: Knots([min, p25, p50, p75, p95, max]),
            }));
        }
        Ok(MinRow {
            t: r.get(0)?,
            n: r.get(1)?,
            ints,
            metrics,
        })
    }
}

/// `?1, ?2, …, ?n`.
pub(crate) fn placeholders(n: usize) -> String {
    (1..=n)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn open_error(path: &Path, e: rusqlite::Error) -> HistoryError {
    let code = e.sqlite_error_code();
    let hint = match code {
        Some(ErrorCode::NotADatabase) => {
            "it is not an SQLite database (or it is corrupt): move it away and weir starts a new one"
        }
        Some(ErrorCode::DatabaseCorrupt) => {
            "the database is corrupt: move it away (keep it for `sqlite3 .recover`) and weir starts a new one"
        }
        Some(ErrorCode::CannotOpen) | Some(ErrorCode::PermissionDenied) => {
            "check that the file and its directory exist and are readable and writable by weir"
        }
        Some(ErrorCode::ReadOnly) => {
            "the file or its file system is read-only: make it writable or set [history] path elsewhere"
        }
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => {
            "another process holds it locked (a second weir?): stop it, or give this one another [history] path"
        }
        Some(ErrorCode::DiskFull) => "the disk is full: free some space",
        _ => "set [history] path to another file, or path = \"none\" to run without history",
    };
    HistoryError::Open {
        path: path.to_path_buf(),
        source: e,
        hint,
    }
}

/// How long a connection waits for a lock another one holds. The writer
/// is off the packet path, so waiting costs queue space, never packets;
/// `weir history` waits for a checkpoint rather than failing.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(2);

/// Open (creating) the database for the writer: WAL, schema migrated,
/// size capped at `max_size`.
pub(crate) fn open_rw(path: &Path, max_size: Option<u64>) -> Result<Connection, HistoryError> {
    if path.is_dir() {
        return Err(HistoryError::IsDirectory {
            path: path.to_path_buf(),
        });
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| HistoryError::CreateDir {
            dir: dir.to_path_buf(),
            source,
        })?;
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| open_error(path, e))?;
    let setup = || -> rusqlite::Result<()> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // WAL: `weir history` reads while this writes; NORMAL sync: a
        // power cut may lose the last seconds, never the database.
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), "history: journal_mode is {mode}, not WAL (file system without shared memory?); readers may wait for the writer");
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        Ok(())
    };
    setup().map_err(|e| open_error(path, e))?;
    migrate(&conn, path)?;
    if let Some(max) = max_size {
        let page: i64 = conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .map_err(|e| open_error(path, e))?;
        let pages = (max / page.max(512) as u64).max(1);
        conn.pragma_update(
            None,
            "max_page_count",
            i64::try_from(pages).unwrap_or(i64::MAX),
        )
        .map_err(|e| open_error(path, e))?;
    }
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Bring the schema to [`SCHEMA_VERSION`], one migration per transaction.
fn migrate(conn: &Connection, path: &Path) -> Result<(), HistoryError> {
    let err = |e| open_error(path, e);
    let version: i32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(err)?;
    let app: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(err)?;
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
        .map_err(err)?;
    if app != APPLICATION_ID && (tables > 0 || version != 0) {
        return Err(HistoryError::NotWeir {
            path: path.to_path_buf(),
        });
    }
    if version > SCHEMA_VERSION {
        return Err(HistoryError::NewerSchema {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    // A migration may rebuild a table others refer to (V2's `target`):
    // SQLite wants foreign keys off for that, and can only switch them
    // outside a transaction. Each migration checks them before it commits.
    if (version as usize) < MIGRATIONS.len() {
        conn.pragma_update(None, "foreign_keys", "OFF")
            .map_err(err)?;
    }
    for (v, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let run = || -> rusqlite::Result<()> {
            conn.execute_batch("BEGIN IMMEDIATE")?;
            let r = conn.execute_batch(sql).and_then(|()| {
                let broken: i64 =
                    conn.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                        r.get(0)
                    })?;
                if broken > 0 {
                    return Err(rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY),
                        Some(format!(
                            "migration to schema {} left {broken} dangling reference(s)",
                            v + 1
                        )),
                    ));
                }
                conn.pragma_update(None, "application_id", APPLICATION_ID)?;
                conn.pragma_update(None, "user_version", v as i32 + 1)
            });
            match r {
                Ok(()) => conn.execute_batch("COMMIT"),
                Err(e) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    Err(e)
                }
            }
        };
        run().map_err(err)?;
    }
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(err)?;
    Ok(())
}

/// Open an existing database read-only, for `weir history`; works while
/// `weir run` writes it.
pub(crate) fn open_ro(path: &Path) -> Result<Connection, HistoryError> {
    if !path.exists() {
        return Err(HistoryError::Missing {
            path: path.to_path_buf(),
        });
    }
    if path.is_dir() {
        return Err(HistoryError::IsDirectory {
            path: path.to_path_buf(),
        });
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| open_error(path, e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| open_error(path, e))?;
    let err = |e| open_error(path, e);
    let version: i32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(err)?;
    let app: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(err)?;
    if app != APPLICATION_ID || version == 0 {
        return Err(HistoryError::NotWeir {
            path: path.to_path_buf(),
        });
    }
    if version > SCHEMA_VERSION {
        return Err(HistoryError::NewerSchema {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(conn)
}

/// Bytes the database takes on disk: the file and its WAL.
pub(crate) fn disk_bytes(path: &Path) -> u64 {
    let mut wal = PathBuf::from(path);
    wal.as_mut_os_string().push("-wal");
    [path, wal.as_path()]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(conn: &Connection, table: &str) -> Vec<String> {
        let mut st = conn
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .unwrap();
        let rows = st.query_map([], |r| r.get::<_, String>(0)).unwrap();
        rows.map(Result::unwrap).collect()
    }

    /// A database of schema 1 with a class sample: opening it migrates to
    /// the current schema, the sample stays joined to its target (same
    /// ids), and `target` now takes apps.
    #[test]
    fn a_version_1_database_migrates_with_its_rows() {
        let path =
            std::env::temp_dir().join(format!("weir-hist-migrate-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&path);
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(V1).unwrap();
            conn.pragma_update(None, "application_id", APPLICATION_ID)
                .unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute_batch(
                "INSERT INTO target (id, kind, tree, name, label) VALUES (7, 'class', 'up', '1:10', 'voice');
                 INSERT INTO class_sec VALUES (7, 1000, 1000, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10.0);",
            )
            .unwrap();
        }
        let conn = open_rw(&path, None).unwrap();
        let get = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(get("PRAGMA user_version"), i64::from(SCHEMA_VERSION));
        assert_eq!(get("PRAGMA foreign_keys"), 1, "back on after the migration");
        assert_eq!(
            get(
                "SELECT s.bytes FROM class_sec s JOIN target t ON t.id = s.target \
                 WHERE t.kind = 'class' AND t.name = '1:10' AND t.label = 'voice'"
            ),
            1
        );
        assert_eq!(get("SELECT count(*) FROM pragma_foreign_key_check"), 0);
        conn.execute(
            "INSERT INTO target (kind, tree, name) VALUES ('app', 'up', 'voice')",
            [],
        )
        .unwrap();
        assert!(conn
            .execute(
                "INSERT INTO target (kind, tree, name) VALUES ('flow', 'up', 'x')",
                [],
            )
            .is_err());
        // A sample row of a target that does not exist is refused: the
        // rebuilt table is the one the sample tables refer to.
        assert!(conn
            .execute(
                "INSERT INTO app_sec VALUES (999, 1000, 1000, 0, 0, 0, 0, 0)",
                [],
            )
            .is_err());
        drop(conn);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn layouts_match_the_tables() {
        let conn = Connection::open_in_memory().unwrap();
        for v in MIGRATIONS {
            conn.execute_batch(v).unwrap();
        }
        for l in [&CLASS, &IFACE, &APP] {
            let sec = columns(&conn, l.sec);
            let want: Vec<String> = std::iter::once("target".to_string())
                .chain(l.sec_columns().split(", ").map(String::from))
                .collect();
            assert_eq!(sec, want, "{}", l.sec);
            assert_eq!(sec.len(), l.sec_width() + 1);
            let min = columns(&conn, l.min);
            let want: Vec<String> = std::iter::once("target".to_string())
                .chain(l.min_columns().split(", ").map(String::from))
                .collect();
            assert_eq!(min, want, "{}", l.min);
            assert_eq!(min.len(), l.min_width() + 1);
        }
    }
}
