//! The history never holds up its caller and never stops weir: a stuck
//! writer makes `record` drop (and count), a full database or disk loses
//! records (counted, reported) until there is room again, and then the
//! writer goes on by itself.

mod history_util;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use history_util::*;
use rusqlite::Connection;
use weir_history::{History, HistoryCfg, Record, QUEUE};

#[test]
fn record_never_blocks_when_the_writer_is_stuck() {
    let dir = Scratch::new("hist-stuck");
    let path = dir.path("history.db");
    let h = History::open(&cfg(&path), T0).unwrap();
    assert!(h.record(sample(4, 0)));
    flush(&h);
    // Another process takes the write lock and keeps it.
    let other = Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    const CALLS: usize = 2000;
    let mut accepted = 0;
    let mut slowest = Duration::ZERO;
    let started = Instant::now();
    for i in 1..=CALLS {
        let rec = sample(4, i as i64);
        let t = Instant::now();
        if h.record(rec) {
            accepted += 1;
        }
        slowest = slowest.max(t.elapsed());
    }
    let took = started.elapsed();
    let st = h.stats();
    // The queue took what it holds (plus what the writer had taken off it
    // before it got stuck), the rest was refused at once.
    assert!(accepted <= QUEUE + 2, "accepted {accepted}");
    assert_eq!(st.dropped as usize, CALLS - accepted);
    // Generous bounds for a loaded 2-core CI machine: a blocking call
    // would wait for the writer's 2 s busy timeout.
    assert!(
        slowest < Duration::from_millis(200),
        "slowest call {slowest:?}"
    );
    assert!(took < Duration::from_secs(2), "{CALLS} calls took {took:?}");
    // Let go: everything accepted is stored.
    other.execute_batch("COMMIT").unwrap();
    drop(other);
    flush(&h);
    let st = h.stats();
    assert_eq!(st.write_errors, 0, "{:?}", st.last_error);
    assert_eq!(st.written as usize, 1 + accepted);
    h.close();
}

#[test]
fn a_lock_held_too_long_is_a_counted_error_and_the_writer_goes_on() {
    let dir = Scratch::new("hist-locked");
    let path = dir.path("history.db");
    let h = History::open(&cfg(&path), T0).unwrap();
    let other = Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    assert!(h.record(sample(1, 1)));
    // The writer gives up after its busy timeout (2 s).
    let deadline = Instant::now() + Duration::from_secs(20);
    while h.stats().write_errors == 0 {
        assert!(Instant::now() < deadline, "no error reported");
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = h.stats();
    assert!(
        st.last_error.as_deref().unwrap().contains("locked"),
        "{:?}",
        st.last_error
    );
    other.execute_batch("ROLLBACK").unwrap();
    assert!(h.record(sample(1, 2)));
    flush(&h);
    assert_eq!(h.stats().written, 1);
    h.close();
}

/// Enough samples to fill a small database: 20 classes each.
fn big(i: i64) -> Record {
    sample(20, i)
}

#[test]
fn a_full_database_is_reported_and_retention_makes_room() {
    let dir = Scratch::new("hist-full");
    let path = dir.path("history.db");
    // 160 KiB: the schema and a few dozen samples of 20 classes.
    let cfg = HistoryCfg {
        max_size: Some(160 * 1024),
        keep_seconds: Duration::from_secs(60),
        keep_minutes: Duration::from_secs(600),
        ..cfg(&path)
    };
    let h = History::open(&cfg, T0).unwrap();
    for i in 0..100 {
        push(&h, big(i));
    }
    flush(&h);
    let st = h.stats();
    assert!(st.write_errors > 0, "{st:?}");
    assert!(st.written > 10, "{st:?}");
    assert_eq!(st.written + st.write_errors, 100, "{st:?}");
    let err = st.last_error.clone().unwrap();
    assert!(err.contains("disk full"), "{err}");
    // The time it happened is in the message.
    assert!(err.starts_with("2023-11-14T22:"), "{err}");

    // Two minutes on: the rows that fit are folded into minute rows,
    // which frees their pages (the failure brings the pass forward), and
    // new samples fit again.
    push(&h, big(200));
    flush(&h);
    let before = h.stats();
    for i in 201..206 {
        push(&h, big(i));
        flush(&h);
    }
    let after = h.stats();
    assert_eq!(after.written, before.written + 5, "{after:?}");
    assert_eq!(after.write_errors, before.write_errors, "{after:?}");
    h.close();
    let n: i64 = Connection::open(&path)
        .unwrap()
        .query_row("SELECT count(*) FROM class_min", [], |r| r.get(0))
        .unwrap();
    assert!(n > 0);
}

/// A tmpfs of `size` mounted on a scratch directory, unmounted on drop.
struct Tmpfs {
    dir: PathBuf,
    _scratch: Scratch,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let scratch = Scratch::new("hist-tmpfs");
        let dir = scratch.path("mnt");
        std::fs::create_dir(&dir).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "weir-test"])
            .arg(&dir)
            .status()
            .expect("run mount");
        assert!(
            st.success(),
            "mount -t tmpfs failed (root without CAP_SYS_ADMIN?)"
        );
        Tmpfs {
            dir,
            _scratch: scratch,
        }
    }

    fn path(&self, f: &str) -> PathBuf {
        self.dir.join(f)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

/// Fill the file system `p` is on; the filler file is what to delete.
fn fill(p: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(p).unwrap();
    let chunk = vec![0u8; 4096];
    while f.write_all(&chunk).and_then(|()| f.flush()).is_ok() {}
    let _ = f.sync_all();
}

#[test]
fn a_full_disk_is_reported_not_fatal_and_the_writer_recovers() {
    if !weir_testkit::root_or_skip("it mounts a small tmpfs") {
        return;
    }
    let fs = Tmpfs::mount("2m");
    let path = fs.path("history.db");
    let h = History::open(&cfg(&path), T0).unwrap();
    for i in 0..5 {
        push(&h, big(i));
    }
    flush(&h);
    assert_eq!(h.stats().write_errors, 0);
    let filler = fs.path("filler");
    fill(&filler);
    for i in 5..200 {
        push(&h, big(i));
    }
    flush(&h);
    let st = h.stats();
    assert!(st.write_errors > 0, "{st:?}");
    assert!(
        st.last_error.as_deref().unwrap().contains("disk full"),
        "{st:?}"
    );
    // Room again: the writer goes on by itself.
    std::fs::remove_file(&filler).unwrap();
    let before = h.stats();
    for i in 200..210 {
        push(&h, big(i));
    }
    flush(&h);
    let after = h.stats();
    assert_eq!(after.written, before.written + 10, "{after:?}");
    assert_eq!(after.write_errors, before.write_errors, "{after:?}");
    h.close();
}
