//! The writer thread: owns the SQLite connection, stores records as they
//! come, and does the retention work (fold 1-second rows into minute rows,
//! delete what is older than `keep_minutes`) in short transactions while
//! the queue is empty, so a sample never waits behind a long one.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam_channel::{Receiver, TryRecvError};
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, ErrorCode, Transaction, TransactionBehavior};

use super::schema::{self, Layout, MinRow, SecRow, APP, CLASS, IFACE};
use super::stats::Folded;
use super::{time, AppSample, ClassSample, HistoryCfg, IfaceSample, Msg, Record, Shared};

const MINUTE: i64 = 60_000;
/// Minutes of one target's 1-second rows a fold step takes: about 3600
/// rows read, deleted and turned into 60, a few milliseconds.
const FOLD_MINUTES: i64 = 60;
/// Rows an expiry step deletes at most.
const EXPIRE_ROWS: i64 = 10_000;
/// While records keep coming, a retention step runs after this many of
/// them, so a writer that is always behind still keeps the database in
/// shape.
const RECORDS_PER_STEP: u32 = 8;
/// On a full disk a retention pass runs at once, at most this often.
const FORCED_PASS_MS: i64 = 10_000;
const FULL: &str = "disk full";
/// A kind of write error is logged at most this often (recorded time).
const LOG_EVERY_MS: i64 = 60_000;

fn floor_minute(t: i64) -> i64 {
    t - t.rem_euclid(MINUTE)
}

/// SQLite integers are i64; counters beyond that are clamped.
fn int(x: u64) -> i64 {
    i64::try_from(x).unwrap_or(i64::MAX)
}

/// NaN and infinities would be stored as NULL; a percentage that is not a
/// number is 0 here.
fn finite(x: f64) -> f64 {
    if x.is_finite() {
        x
    } else {
        0.0
    }
}

/// One piece of a retention pass. The cut-off times are computed when the
/// step runs, from the newest recorded time: a pass that waited behind a
/// busy queue does not work with stale ones.
#[derive(Clone, Copy)]
enum Step {
    Fold {
        layout: &'static Layout,
        target: i64,
    },
    Expire {
        layout: &'static Layout,
        target: i64,
    },
    ExpireEvents,
}

/// A kind of target's SQL, built once.
struct LayoutSql {
    insert_sec: String,
    first_sec: String,
    select_sec: String,
    delete_sec: String,
    select_min: String,
    insert_min: String,
    expire_min: String,
}

impl LayoutSql {
    fn new(l: &Layout) -> LayoutSql {
        let (sec, min) = (l.sec, l.min);
        let sec_cols = l.sec_columns();
        let min_cols = l.min_columns();
        LayoutSql {
            insert_sec: format!(
                "INSERT OR REPLACE INTO {sec} (target, {sec_cols}) VALUES ({})",
                schema::placeholders(l.sec_width() + 1)
            ),
            first_sec: format!("SELECT min(t) FROM {sec} WHERE target = ?1"),
            select_sec: format!(
                "SELECT {sec_cols} FROM {sec} WHERE target = ?1 AND t < ?2 ORDER BY t"
            ),
            delete_sec: format!("DELETE FROM {sec} WHERE target = ?1 AND t < ?2"),
            select_min: format!("SELECT {min_cols} FROM {min} WHERE target = ?1 AND t = ?2"),
            insert_min: format!(
                "INSERT OR REPLACE INTO {min} (target, {min_cols}) VALUES ({})",
                schema::placeholders(l.min_width() + 1)
            ),
            expire_min: format!(
                "DELETE FROM {min} WHERE target = ?1 AND t IN \
                 (SELECT t FROM {min} WHERE target = ?1 AND t < ?2 ORDER BY t LIMIT ?3)"
            ),
        }
    }
}

/// Target ids by tree, then class id or interface name, with the label
/// last stored.
type Targets = HashMap<String, HashMap<String, (i64, Option<String>)>>;

pub(super) struct Writer {
    conn: Connection,
    path: PathBuf,
    keep_seconds_ms: i64,
    keep_minutes_ms: i64,
    shared: Arc<Shared>,
    /// [classes, interfaces, apps].
    targets: [Targets; 3],
    class_sql: LayoutSql,
    iface_sql: LayoutSql,
    app_sql: LayoutSql,
    /// The newest time recorded so far: the writer's only clock.
    now: i64,
    /// When (recorded time) the next retention pass is due.
    next_pass: i64,
    /// A pass fell due while the previous one was still under way.
    pass_due: bool,
    work: VecDeque<Step>,
    /// Records stored since the last retention step.
    since_step: u32,
    /// When a full disk last brought a pass forward.
    last_forced: i64,
    /// When each kind of error was last logged.
    logged: HashMap<&'static str, i64>,
}

impl Writer {
    pub(super) fn new(
        conn: Connection,
        path: PathBuf,
        cfg: &HistoryCfg,
        shared: Arc<Shared>,
        now: i64,
    ) -> Writer {
        let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Writer {
            conn,
            path,
            keep_seconds_ms: ms(cfg.keep_seconds),
            keep_minutes_ms: ms(cfg.keep_minutes),
            shared,
            targets: [Targets::new(), Targets::new(), Targets::new()],
            class_sql: LayoutSql::new(&CLASS),
            iface_sql: LayoutSql::new(&IFACE),
            app_sql: LayoutSql::new(&APP),
            now,
            // A pass first: what an earlier run left behind.
            next_pass: now,
            pass_due: false,
            work: VecDeque::new(),
            since_step: 0,
            last_forced: i64::MIN,
            logged: HashMap::new(),
        }
    }

    /// Store records until told to close or the queue is disconnected;
    /// retention steps run whenever the queue is empty.
    pub(super) fn run(mut self, rx: &Receiver<Msg>) {
        self.maybe_plan();
        loop {
            let msg = if self.work.is_empty() {
                match rx.recv() {
                    Ok(m) => m,
                    Err(_) => break,
                }
            } else {
                match rx.try_recv() {
                    Ok(m) => m,
                    Err(TryRecvError::Empty) => {
                        self.step();
                        continue;
                    }
                    Err(TryRecvError::Disconnected) => break,
                }
            };
            match msg {
                Msg::Record(r) => {
                    self.write(&r);
                    self.since_step = self.since_step.saturating_add(1);
                    if self.since_step >= RECORDS_PER_STEP && !self.work.is_empty() {
                        self.step();
                    }
                }
                Msg::Flush(ack) => {
                    // A whole pass as of now, whatever was under way.
                    self.pass_due = true;
                    self.maybe_plan();
                    while !self.work.is_empty() {
                        self.step();
                    }
                    let _ = ack.send(());
                }
                Msg::Close => break,
            }
        }
        // Fold what the WAL holds into the database file, so a reader
        // without write access to the directory finds everything there.
        let _ = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
        self.update_bytes();
    }

    fn write(&mut self, rec: &Record) {
        let at = rec.at_unix_ms();
        let (what, r) = match rec {
            Record::Sample {
                at_unix_ms,
                interval_ms,
                classes,
                interfaces,
            } => (
                "storing a sample",
                self.sample(*at_unix_ms, *interval_ms, classes, interfaces),
            ),
            Record::Apps {
                at_unix_ms,
                interval_ms,
                apps,
            } => (
                "storing a sample of apps",
                self.apps(*at_unix_ms, *interval_ms, apps),
            ),
            Record::Violation {
                at_unix_ms,
                rule,
                target,
                severity,
                metric,
                unit,
                value,
                threshold,
            } => (
                "storing a violation",
                self.conn
                    .prepare_cached(
                        "INSERT INTO violation (rule, target, severity, metric, unit, value, \
                         threshold, opened) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    )
                    .and_then(|mut st| {
                        st.execute(params![
                            rule,
                            target,
                            severity,
                            metric,
                            unit,
                            finite(*value),
                            finite(*threshold),
                            at_unix_ms
                        ])
                    })
                    .map(drop),
            ),
            Record::Resolved {
                at_unix_ms,
                rule,
                value,
            } => (
                "resolving a violation",
                self.conn
                    .prepare_cached(
                        "UPDATE violation SET resolved = max(opened, ?2), resolved_value = ?3, \
                         resolution = 'cleared' WHERE id = (SELECT id FROM violation \
                         WHERE rule = ?1 AND resolved IS NULL ORDER BY opened DESC, id DESC LIMIT 1)",
                    )
                    .and_then(|mut st| st.execute(params![rule, at_unix_ms, finite(*value)]))
                    .map(|n| {
                        if n == 0 {
                            tracing::debug!("history: {rule} resolved, but none of its violations is open");
                        }
                    }),
            ),
            Record::ResolveAll { at_unix_ms, why } => (
                "closing open violations",
                self.conn
                    .prepare_cached(
                        "UPDATE violation SET resolved = max(opened, ?1), resolution = ?2 \
                         WHERE resolved IS NULL",
                    )
                    .and_then(|mut st| st.execute(params![at_unix_ms, why]))
                    .map(drop),
            ),
            Record::Adjustment {
                at_unix_ms,
                tree,
                class,
                name,
                old_rate,
                old_ceil,
                new_rate,
                new_ceil,
                reason,
            } => (
                "storing an adjustment",
                self.conn
                    .prepare_cached(
                        "INSERT INTO adjustment (t, tree, class, name, old_rate, old_ceil, \
                         new_rate, new_ceil, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    )
                    .and_then(|mut st| {
                        st.execute(params![
                            at_unix_ms,
                            tree,
                            class,
                            name,
                            int(*old_rate),
                            int(*old_ceil),
                            int(*new_rate),
                            int(*new_ceil),
                            reason
                        ])
                    })
                    .map(drop),
            ),
        };
        self.now = self.now.max(at);
        match r {
            Ok(()) => {
                self.shared.written.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => self.failed(what, at, &e),
        }
        self.update_bytes();
        self.maybe_plan();
    }

    /// One transaction for the whole sample.
    fn sample(
        &mut self,
        at: i64,
        interval_ms: u32,
        classes: &[ClassSample],
        interfaces: &[IfaceSample],
    ) -> rusqlite::Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let [class_ids, iface_ids, _] = &mut self.targets;
        {
            let mut st = tx.prepare_cached(&self.class_sql.insert_sec)?;
            for c in classes {
                let id = target_id(
                    &tx,
                    class_ids,
                    "class",
                    &c.tree,
                    &c.class,
                    c.name.as_deref(),
                )?;
                st.execute(params![
                    id,
                    at,
                    interval_ms,
                    int(c.bytes),
                    int(c.packets),
                    int(c.drops),
                    int(c.overlimits),
                    int(c.backlog_bytes),
                    c.backlog_packets,
                    int(c.rate),
                    int(c.ceil),
                    int(c.rate_bps),
                    finite(c.utilization),
                ])?;
            }
        }
        {
            let mut st = tx.prepare_cached(&self.iface_sql.insert_sec)?;
            for i in interfaces {
                let id = target_id(&tx, iface_ids, "interface", "", &i.name, None)?;
                st.execute(params![
                    id,
                    at,
                    interval_ms,
                    int(i.rx_bytes),
                    int(i.tx_bytes),
                    int(i.rx_packets),
                    int(i.tx_packets),
                    int(i.rx_errors),
                    int(i.tx_errors),
                    int(i.rx_drops),
                    int(i.tx_drops),
                    int(i.rate_in_bps),
                    int(i.rate_out_bps),
                    i.utilization.filter(|u| u.is_finite()),
                ])?;
            }
        }
        tx.commit()
    }

    /// One transaction for the apps' sample.
    fn apps(&mut self, at: i64, interval_ms: u32, apps: &[AppSample]) -> rusqlite::Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let [_, _, app_ids] = &mut self.targets;
        {
            let mut st = tx.prepare_cached(&self.app_sql.insert_sec)?;
            for a in apps {
                let id = target_id(&tx, app_ids, "app", &a.tree, &a.app, a.class.as_deref())?;
                st.execute(params![
                    id,
                    at,
                    interval_ms,
                    int(a.flows),
                    int(a.bytes),
                    int(a.packets),
                    int(a.drops),
                    int(a.rate_bps),
                ])?;
            }
        }
        tx.commit()
    }

    /// Plan a retention pass when one is due and none is under way.
    fn maybe_plan(&mut self) {
        if self.now >= self.next_pass {
            self.next_pass = self.now + MINUTE;
            self.pass_due = true;
        }
        if !self.pass_due || !self.work.is_empty() {
            return;
        }
        self.pass_due = false;
        let ids = |conn: &Connection, kind: &str| -> rusqlite::Result<Vec<i64>> {
            let mut st =
                conn.prepare_cached("SELECT id FROM target WHERE kind = ?1 ORDER BY id")?;
            let rows = st.query_map([kind], |r| r.get(0))?;
            rows.collect()
        };
        for layout in [&CLASS, &IFACE, &APP] {
            match ids(&self.conn, layout.kind) {
                Ok(ids) => {
                    for target in ids {
                        self.work.push_back(Step::Fold { layout, target });
                        self.work.push_back(Step::Expire { layout, target });
                    }
                }
                Err(e) => self.failed("planning retention", self.now, &e),
            }
        }
        self.work.push_back(Step::ExpireEvents);
    }

    /// One retention step, one transaction.
    fn step(&mut self) {
        self.since_step = 0;
        let Some(step) = self.work.pop_front() else {
            return;
        };
        // Whole minutes only: a minute is folded once all of it is older
        // than keep_seconds.
        let fold_before = floor_minute(self.now.saturating_sub(self.keep_seconds_ms));
        let expire_before = self.now.saturating_sub(self.keep_minutes_ms);
        let r = match step {
            Step::Fold { layout, target } => self.fold(layout, target, fold_before),
            Step::Expire { layout, target } => self.expire(layout, target, expire_before),
            Step::ExpireEvents => self.expire_events(expire_before),
        };
        match r {
            Ok(true) => self.work.push_front(step),
            Ok(false) => {}
            Err(e) => {
                // The rest of the pass waits for the next one.
                self.work.clear();
                self.failed("retention", self.now, &e);
            }
        }
        self.update_bytes();
        if self.work.is_empty() {
            self.maybe_plan();
        }
    }

    fn sql(&self, layout: &Layout) -> &LayoutSql {
        match layout.kind {
            k if k == CLASS.kind => &self.class_sql,
            k if k == APP.kind => &self.app_sql,
            _ => &self.iface_sql,
        }
    }

    /// Fold up to [`FOLD_MINUTES`] whole minutes of one target's 1-second
    /// rows older than `before` (a minute boundary) into minute rows.
    /// Deletes first, so the pages it frees hold the minute rows: it works
    /// on a full database too. True when there may be more to fold.
    fn fold(&mut self, layout: &Layout, target: i64, before: i64) -> rusqlite::Result<bool> {
        // Fields apart: the transaction borrows the connection mutably.
        let sql = match layout.kind {
            k if k == CLASS.kind => &self.class_sql,
            k if k == APP.kind => &self.app_sql,
            _ => &self.iface_sql,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let first: Option<i64> = tx
            .prepare_cached(&sql.first_sec)?
            .query_row([target], |r| r.get(0))?;
        let Some(first) = first.filter(|&f| f < before) else {
            return Ok(false);
        };
        let end = (floor_minute(first) + FOLD_MINUTES * MINUTE).min(before);
        let rows: Vec<SecRow> = {
            let mut st = tx.prepare_cached(&sql.select_sec)?;
            let it = st.query_map(params![target, end], |r| layout.read_sec(r))?;
            it.collect::<rusqlite::Result<_>>()?
        };
        tx.prepare_cached(&sql.delete_sec)?
            .execute(params![target, end])?;
        for minute in rows.chunk_by(|a, b| floor_minute(a.t) == floor_minute(b.t)) {
            let t = floor_minute(minute[0].t);
            let old = {
                let mut st = tx.prepare_cached(&sql.select_min)?;
                let mut q = st.query(params![target, t])?;
                match q.next()? {
                    Some(r) => Some(layout.read_min(r)?),
                    None => None,
                }
            };
            let row = fold_minute(layout, t, minute, old.as_ref());
            tx.prepare_cached(&sql.insert_min)?
                .execute(params_from_iter(layout.min_values(target, &row)))?;
        }
        tx.commit()?;
        Ok(end < before)
    }

    /// Delete up to [`EXPIRE_ROWS`] of one target's minute rows older than
    /// `before`. True when there may be more.
    fn expire(&mut self, layout: &Layout, target: i64, before: i64) -> rusqlite::Result<bool> {
        let n = self
            .conn
            .prepare_cached(&self.sql(layout).expire_min)?
            .execute(params![target, before, EXPIRE_ROWS])?;
        Ok(n as i64 == EXPIRE_ROWS)
    }

    /// Delete resolved violations and adjustments older than `before`, up
    /// to [`EXPIRE_ROWS`] of each. True when there may be more.
    fn expire_events(&mut self, before: i64) -> rusqlite::Result<bool> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let v = tx
            .prepare_cached(
                "DELETE FROM violation WHERE id IN (SELECT id FROM violation \
                 WHERE resolved IS NOT NULL AND resolved < ?1 LIMIT ?2)",
            )?
            .execute(params![before, EXPIRE_ROWS])?;
        let a = tx
            .prepare_cached(
                "DELETE FROM adjustment WHERE id IN (SELECT id FROM adjustment \
                 WHERE t < ?1 LIMIT ?2)",
            )?
            .execute(params![before, EXPIRE_ROWS])?;
        tx.commit()?;
        Ok(v as i64 == EXPIRE_ROWS || a as i64 == EXPIRE_ROWS)
    }

    fn failed(&mut self, what: &str, at: i64, e: &rusqlite::Error) {
        // Ids handed out in a transaction that rolled back are not real.
        self.targets = [Targets::new(), Targets::new(), Targets::new()];
        self.shared.write_errors.fetch_add(1, Ordering::Relaxed);
        let (kind, advice) = classify(e);
        if kind == FULL && at.saturating_sub(self.last_forced) >= FORCED_PASS_MS {
            // Retention is what makes room: run a pass now rather than
            // at the next minute.
            self.last_forced = at;
            self.pass_due = true;
        }
        *self
            .shared
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner()) =
            Some(format!("{}: {kind}: {what}: {e}", time::rfc3339(at)));
        let due = match self.logged.get(kind) {
            None => true,
            Some(&last) => at - last >= LOG_EVERY_MS || at < last,
        };
        if due {
            self.logged.insert(kind, at);
            tracing::warn!(
                path = %self.path.display(),
                "history: {what} failed ({kind}): {e}; {advice} (weir keeps shaping; logged at most once a minute)"
            );
        }
    }

    fn update_bytes(&self) {
        self.shared
            .db_bytes
            .store(schema::disk_bytes(&self.path), Ordering::Relaxed);
    }
}

/// What kind of failure, and what the operator can do.
fn classify(e: &rusqlite::Error) -> (&'static str, &'static str) {
    match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => (
            FULL,
            "records are lost until there is room: free disk space, raise [history] max_size, or shorten keep_seconds",
        ),
        Some(ErrorCode::ReadOnly) => (
            "read-only",
            "records are lost until the database is writable again",
        ),
        Some(ErrorCode::SystemIoFailure) => (
            "I/O error",
            "records are lost while it lasts: check the disk (dmesg)",
        ),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => (
            "locked",
            "another process holds the database's write lock; records are lost while it does",
        ),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => (
            "corrupt",
            "stop weir, move the database away (keep it for `sqlite3 .recover`) and start again",
        ),
        _ => ("error", "records are lost while it lasts"),
    }
}

/// The id of a class or interface, added to `target` the first time (and
/// its label updated when it changes).
fn target_id(
    tx: &Transaction,
    cache: &mut Targets,
    kind: &str,
    tree: &str,
    name: &str,
    label: Option<&str>,
) -> rusqlite::Result<i64> {
    if let Some((id, l)) = cache.get(tree).and_then(|t| t.get(name)) {
        if l.as_deref() == label {
            return Ok(*id);
        }
    }
    let id: i64 = tx
        .prepare_cached(
            "INSERT INTO target (kind, tree, name, label) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (kind, tree, name) DO UPDATE SET label = excluded.label RETURNING id",
        )?
        .query_row(params![kind, tree, name, label], |r| r.get(0))?;
    cache
        .entry(tree.to_string())
        .or_default()
        .insert(name.to_string(), (id, label.map(str::to_string)));
    Ok(id)
}

/// One minute's 1-second rows (sorted by time) as a minute row, merged
/// into the minute row already there (samples that arrived late).
pub(super) fn fold_minute(
    layout: &Layout,
    t: i64,
    rows: &[SecRow],
    old: Option<&MinRow>,
) -> MinRow {
    let n_sums = layout.sums.len();
    let n_maxes = layout.maxes.len();
    let width = n_sums + n_maxes + layout.lasts.len();
    let mut ints = old.map_or_else(|| vec![0; width], |o| o.ints.clone());
    for r in rows {
        for (i, v) in r.ints.iter().enumerate() {
            if i < n_sums {
                ints[i] = ints[i].saturating_add(*v);
            } else if i < n_sums + n_maxes {
                ints[i] = ints[i].max(*v);
            } else {
                ints[i] = *v;
            }
        }
    }
    let metrics = (0..layout.metrics.len())
        .map(|m| {
            let xs: Vec<f64> = rows.iter().filter_map(|r| r.metrics[m]).collect();
            match old.and_then(|o| o.metrics[m]) {
                Some(f) => Some(f.merge_raw(&xs)),
                None => Folded::of(&xs),
            }
        })
        .collect();
    MinRow {
        t,
        n: old.map_or(0, |o| o.n) + rows.len() as i64,
        ints,
        metrics,
    }
}

/// Values for a minute row's insert, in [`Layout::min_columns`] order.
impl Layout {
    pub(super) fn min_values(&self, target: i64, row: &MinRow) -> Vec<Value> {
        let mut v = Vec::with_capacity(self.min_width() + 1);
        v.push(Value::Integer(target));
        v.push(Value::Integer(row.t));
        v.push(Value::Integer(row.n));
        v.extend(row.ints.iter().map(|&x| Value::Integer(x)));
        for m in &row.metrics {
            match m {
                None => {
                    v.push(Value::Integer(0));
                    v.extend(std::iter::repeat_n(Value::Null, 8));
                }
                Some(f) => {
                    v.push(Value::Integer(int(f.moments.n)));
                    v.push(Value::Real(f.moments.mean));
                    v.push(Value::Real(f.moments.m2));
                    v.push(Value::Real(f.moments.min));
                    v.push(Value::Real(f.moments.max));
                    v.extend(f.knots.0[1..5].iter().map(|&k| Value::Real(k)));
                }
            }
        }
        v
    }
}
