//! The history database (docs/history.md): an embedded SQLite file that
//! holds a sample per class, per interface and per app about every
//! second, folded
//! into 1-minute rows after `keep_seconds` and deleted after
//! `keep_minutes`, plus the SLA violations (opened, resolved, why) and
//! every rate/ceil adjustment the policy engine made.
//!
//! The control thread hands [`Record`]s to [`History::record`], which only
//! puts them on a bounded queue (`try_send`: it never waits). A writer
//! thread owns the SQLite connection and does all the I/O: one transaction
//! per sample, maintenance in short transactions when the queue is empty.
//! A full disk, an I/O error or a read-only file loses the records it hits
//! — counted in [`HistoryStats`], logged at most once a minute per kind —
//! and the writer tries again with the next one. Nothing here reads a
//! clock: times come with the records (unix ms), and "once a minute" means
//! a minute of recorded time.
//!
//! `weir history` (the `weir` binary) reads the same file read-only, while
//! `weir run` writes it (WAL).

mod query;
mod schema;
pub mod stats;
pub mod time;
mod writer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};

pub use query::{
    AdjustmentRow, AppStats, ClassStats, Coverage, IfaceStats, Query, QueryResult, Reader, Select,
    ViolationRow,
};
pub use schema::{APPLICATION_ID, SCHEMA_VERSION};
pub use weir_config::HistoryCfg;

/// Records the queue holds while the writer is busy: four minutes of
/// one-a-second samples (a slow disk, a checkpoint, a reader holding the
/// lock), a few hundred kilobytes for a few hundred classes.
pub const QUEUE: usize = 256;
/// How long [`History::close`] waits for the writer to store what is
/// queued.
pub const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// One class's sample over `interval_ms`.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassSample {
    pub tree: String,
    /// `"1:20"`.
    pub class: String,
    pub name: Option<String>,
    /// Deltas over the interval.
    pub bytes: u64,
    pub packets: u64,
    pub drops: u64,
    pub overlimits: u64,
    /// At the end of the interval.
    pub backlog_bytes: u64,
    pub backlog_packets: u32,
    /// Measured, bits/s.
    pub rate_bps: u64,
    /// In force, bytes/s.
    pub rate: u64,
    pub ceil: u64,
    /// Percent of ceil.
    pub utilization: f64,
}

/// One interface's sample over `interval_ms`.
#[derive(Clone, Debug, PartialEq)]
pub struct IfaceSample {
    pub name: String,
    /// Deltas over the interval.
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_drops: u64,
    pub tx_drops: u64,
    /// bits/s.
    pub rate_in_bps: u64,
    pub rate_out_bps: u64,
    /// Percent of the tree's link, when it has one.
    pub utilization: Option<f64>,
}

/// One app's sample over `interval_ms`: its flows' traffic as it entered
/// its tree.
#[derive(Clone, Debug, PartialEq)]
pub struct AppSample {
    pub tree: String,
    /// The app's configured name.
    pub app: String,
    /// Its class id (`"1:20"`), when the configuration knows the tree.
    pub class: Option<String>,
    /// Deltas over the interval.
    pub flows: u64,
    pub bytes: u64,
    pub packets: u64,
    pub drops: u64,
    /// bits/s over the interval.
    pub rate_bps: u64,
}

/// What the control thread stores.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// Every class and interface over the interval ending at `at_unix_ms`.
    Sample {
        at_unix_ms: i64,
        interval_ms: u32,
        classes: Vec<ClassSample>,
        interfaces: Vec<IfaceSample>,
    },
    /// Every app of every tree with apps over the interval ending at
    /// `at_unix_ms` (a record of its own, so samples without apps are
    /// stored as they always were).
    Apps {
        at_unix_ms: i64,
        interval_ms: u32,
        apps: Vec<AppSample>,
    },
    /// An SLA rule opened.
    Violation {
        at_unix_ms: i64,
        rule: String,
        target: String,
        severity: String,
        metric: String,
        unit: String,
        value: f64,
        threshold: f64,
    },
    /// That rule's latest open violation is resolved (its condition
    /// cleared).
    Resolved {
        at_unix_ms: i64,
        rule: String,
        value: f64,
    },
    /// Every open violation is closed, with `why` as its resolution
    /// (reload, stop).
    ResolveAll { at_unix_ms: i64, why: String },
    /// The policy engine changed a class (bytes/s).
    Adjustment {
        at_unix_ms: i64,
        tree: String,
        /// `"1:20"`.
        class: String,
        name: Option<String>,
        old_rate: u64,
        old_ceil: u64,
        new_rate: u64,
        new_ceil: u64,
        reason: String,
    },
}

impl Record {
    pub fn at_unix_ms(&self) -> i64 {
        match self {
            Record::Sample { at_unix_ms, .. }
            | Record::Apps { at_unix_ms, .. }
            | Record::Violation { at_unix_ms, .. }
            | Record::Resolved { at_unix_ms, .. }
            | Record::ResolveAll { at_unix_ms, .. }
            | Record::Adjustment { at_unix_ms, .. } => *at_unix_ms,
        }
    }
}

/// How the history is doing, for the stats JSON and the metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistoryStats {
    /// Records stored.
    pub written: u64,
    /// Records lost because the queue was full (the writer was behind).
    pub dropped: u64,
    /// Records lost, and maintenance steps failed, on a write error (full
    /// disk, I/O error, read-only file, lock held too long).
    pub write_errors: u64,
    /// The latest write error: `TIME: KIND: MESSAGE`.
    pub last_error: Option<String>,
    /// Bytes on disk: the database and its WAL.
    pub db_bytes: u64,
}

/// Why the database can't be opened; each says what the operator can do.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("history is off ([history] path = \"none\"); nothing to open")]
    Off,
    #[error("history database {}: can't create its directory {}: {source}; create it, or set [history] path elsewhere", .dir.join("…").display(), .dir.display())]
    CreateDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("history database {}: is a directory; expected a file: set [history] path to a file in it", .path.display())]
    IsDirectory { path: PathBuf },
    #[error("history database {}: {source}; {hint}", .path.display())]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
        hint: &'static str,
    },
    #[error("history database {}: an SQLite file of another program, not weir's; expected a weir history database: set [history] path to a new file", .path.display())]
    NotWeir { path: PathBuf },
    #[error("history database {}: schema version {found}, written by a newer weir (this one reads up to {supported}); use that weir, or move the file away", .path.display())]
    NewerSchema {
        path: PathBuf,
        found: i32,
        supported: i32,
    },
    #[error("history database {}: no such file; is history on ([history] path, `weir run --history`) and has weir run with it?", .path.display())]
    Missing { path: PathBuf },
    #[error("history database {}: {source}", .path.display())]
    Query {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("history: can't start the writer thread: {0}")]
    Spawn(std::io::Error),
}

/// What the writer publishes for [`History::stats`].
#[derive(Debug, Default)]
struct Shared {
    written: AtomicU64,
    dropped: AtomicU64,
    write_errors: AtomicU64,
    db_bytes: AtomicU64,
    last_error: Mutex<Option<String>>,
}

enum Msg {
    Record(Record),
    /// Finish the retention work under way, then answer.
    Flush(Sender<()>),
    Close,
}

/// The history database, as the control thread holds it: a queue to the
/// writer thread, which owns the SQLite connection.
pub struct History {
    tx: Sender<Msg>,
    shared: Arc<Shared>,
    /// Signalled (or dropped) when the writer is done.
    done: Receiver<()>,
    thread: Option<JoinHandle<()>>,
    path: PathBuf,
}

impl History {
    /// Create or open the database at `cfg.path` (parent directories
    /// created, WAL, schema created or migrated), close the violations a
    /// previous run left open with "weir restarted" at `now_unix_ms`, and
    /// start the writer thread.
    pub fn open(cfg: &HistoryCfg, now_unix_ms: i64) -> Result<History, HistoryError> {
        let path = cfg.path.clone().ok_or(HistoryError::Off)?;
        let conn = schema::open_rw(&path, cfg.max_size)?;
        let restarted = conn
            .execute(
                "UPDATE violation SET resolved = max(opened, ?1), resolution = 'weir restarted' \
                 WHERE resolved IS NULL",
                [now_unix_ms],
            )
            .map_err(|source| HistoryError::Query {
                path: path.clone(),
                source,
            })?;
        if restarted > 0 {
            tracing::info!(
                path = %path.display(),
                "history: {restarted} violation(s) a previous run left open closed as \"weir restarted\""
            );
        }
        let shared = Arc::new(Shared::default());
        shared
            .db_bytes
            .store(schema::disk_bytes(&path), Ordering::Relaxed);
        let (tx, rx) = bounded(QUEUE);
        let (done_tx, done) = bounded(1);
        let w = writer::Writer::new(conn, path.clone(), cfg, shared.clone(), now_unix_ms);
        let thread = std::thread::Builder::new()
            .name("weir-history".into())
            .spawn(move || {
                w.run(&rx);
                let _ = done_tx.send(());
            })
            .map_err(HistoryError::Spawn)?;
        Ok(History {
            tx,
            shared,
            done,
            thread: Some(thread),
            path,
        })
    }

    /// Queue a record for the writer. Never blocks: false (and counted as
    /// dropped) when the queue is full or the writer is gone.
    pub fn record(&self, rec: Record) -> bool {
        match self.tx.try_send(Msg::Record(rec)) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    pub fn stats(&self) -> HistoryStats {
        let s = &self.shared;
        HistoryStats {
            written: s.written.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            write_errors: s.write_errors.load(Ordering::Relaxed),
            last_error: s
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            db_bytes: s.db_bytes.load(Ordering::Relaxed),
        }
    }

    /// Wait until everything queued before this call is stored and the
    /// retention work due is done; true when it was within `timeout`.
    /// Blocks: for tests and tools, not for the control thread's tick.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let (ack, done) = bounded(1);
        self.tx.send_deadline(Msg::Flush(ack), deadline).is_ok()
            && done.recv_deadline(deadline).is_ok()
    }

    /// The database file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Store what is queued and stop the writer, waiting at most
    /// [`CLOSE_WAIT`]; a writer still busy then (a hung disk) is left to
    /// finish on its own and the rest of its queue is lost. (Dropping a
    /// `History` without closing it also lets the writer store what is
    /// queued, without waiting for it.)
    pub fn close(mut self) {
        self.close_within(CLOSE_WAIT);
    }

    fn close_within(&mut self, wait: Duration) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        // A deadline, not two waits: close is bounded by `wait` in all.
        let deadline = std::time::Instant::now() + wait;
        let sent = self.tx.send_deadline(Msg::Close, deadline).is_ok();
        if sent && self.done.recv_deadline(deadline).is_ok() {
            let _ = thread.join();
            return;
        }
        if thread.is_finished() {
            let _ = thread.join();
            return;
        }
        tracing::warn!(
            path = %self.path.display(),
            "history: the writer did not finish within {}s; what it still had queued is lost",
            wait.as_secs()
        );
    }
}
