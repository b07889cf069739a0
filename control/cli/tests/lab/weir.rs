//! The `weir run --json` process of a lab, and reading its reports.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{run_ok, weir_bin, Lab};

/// A running `weir run --json` in the lab's gw namespace.
pub struct Weir {
    child: Child,
    /// stdout lines, read by a thread so weir never blocks on a full pipe.
    lines: Receiver<String>,
    stderr_path: PathBuf,
    report_path: PathBuf,
    /// Everything on stdout before `ready` (the placement).
    pub placement: Vec<String>,
}

impl Weir {
    pub(super) fn start(lab: &Lab, config: &Path, extra: &[&str]) -> Weir {
        let stderr_path = lab.path("weir.stderr");
        let report_path = lab.path("weir-report.json");
        let _ = fs::remove_file(&report_path);
        let stderr = fs::File::create(&stderr_path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", stderr_path.display()));
        let gw = lab.ns_gw();
        let mut child = Command::new("ip")
            .args(["netns", "exec", &gw, weir_bin(), "run", "--json", "-c"])
            .arg(config)
            .arg("--report")
            .arg(&report_path)
            // Its own API socket: the default one may belong to a weir
            // running on this machine for real.
            .arg("--socket")
            .arg(lab.path("weir.sock"))
            // Its own history: never the machine's /var/lib/weir.
            .arg("--history")
            .arg(lab.path("history.db"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start weir run in {gw}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut weir = Weir {
            child,
            lines: rx,
            stderr_path,
            report_path,
            placement: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match weir.next_line(deadline) {
                Ok(l) if l == "ready" => return weir,
                Ok(l) => weir.placement.push(l),
                Err(e) => {
                    let msg = format!("weir run -c {} did not get ready: {e}", config.display());
                    weir.fail(&msg);
                }
            }
        }
    }

    fn next_line(&mut self, deadline: Instant) -> Result<String, String> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(l) => Ok(l),
            Err(RecvTimeoutError::Timeout) => Err("timed out waiting for its stdout".into()),
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.wait().map(|s| s.to_string()).unwrap_or_default();
                Err(format!("it exited ({status})"))
            }
        }
    }

    /// Kills weir and panics with `msg` and the tail of its log.
    fn fail(&mut self, msg: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!(
            "{msg}\n--- weir stderr (last lines) ---\n{}",
            self.log_tail()
        );
    }

    pub fn log_tail(&self) -> String {
        let log = fs::read_to_string(&self.stderr_path).unwrap_or_default();
        let lines: Vec<_> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.id().to_string();
        run_ok(&["kill", sig, &pid], Duration::from_secs(5));
    }

    /// Asks for a stats dump (SIGUSR1) and returns it.
    pub fn stats(&mut self) -> Value {
        self.signal("-USR1");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let line = match self.next_line(deadline) {
                Ok(l) => l,
                Err(e) => self.fail(&format!("no stats after SIGUSR1: {e}")),
            };
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if v["type"] == "stats" {
                    return v;
                }
            }
        }
    }

    /// SIGTERM, wait for the exit, check it is 0 and that the report on
    /// stdout and the one in the --report file agree; returns the report.
    pub(super) fn stop(mut self) -> Value {
        self.signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        let report = loop {
            let line = match self.next_line(deadline) {
                Ok(l) => l,
                Err(e) => self.fail(&format!("no report after SIGTERM: {e}")),
            };
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if v["type"] == "report" {
                    break v;
                }
            }
        };
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait for weir") {
                break s;
            }
            if Instant::now() > deadline {
                self.fail("weir printed its report but did not exit within 20 s of SIGTERM");
            }
            thread::sleep(Duration::from_millis(20));
        };
        if !status.success() {
            self.fail(&format!(
                "weir run exited with {status} after SIGTERM; expected 0"
            ));
        }
        let file = fs::read_to_string(&self.report_path)
            .unwrap_or_else(|e| panic!("--report {}: {e}", self.report_path.display()));
        let from_file: Value = serde_json::from_str(&file)
            .unwrap_or_else(|e| panic!("--report {} is not JSON: {e}", self.report_path.display()));
        assert_eq!(
            from_file, report,
            "the --report file differs from the report on stdout"
        );
        report
    }

    /// SIGKILL and reap, within 5 s. `ip netns exec` execs weir in place,
    /// so the child is weir itself.
    pub(super) fn kill9(mut self) -> ExitStatus {
        if let Err(e) = self.child.kill() {
            panic!("cannot SIGKILL weir (pid {}): {e}", self.child.id());
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
                Ok(None) => panic!(
                    "weir (pid {}) still not reaped 5 s after SIGKILL",
                    self.child.id()
                ),
                Err(e) => panic!("cannot wait for weir (pid {}): {e}", self.child.id()),
            }
        }
    }

    pub(super) fn kill(mut self) {
        // SIGTERM first so the XDP programs are detached the normal way;
        // the namespace going away would remove them anyway.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One class of a tree in a stats dump or report.
pub fn class<'a>(dump: &'a Value, tree: &str, classid: &str) -> &'a Value {
    let t = tree_of(dump, tree);
    t["classes"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["classid"] == classid))
        .unwrap_or_else(|| panic!("no class {classid} in tree {tree}"))
}

pub fn tree_of<'a>(dump: &'a Value, tree: &str) -> &'a Value {
    dump["trees"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["name"] == tree))
        .unwrap_or_else(|| panic!("no tree {tree} in {dump}"))
}

/// A JSON number as u64, panicking with its path when absent.
pub fn num(v: &Value, what: &str) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("{what}: expected a number, got {v}"))
}

/// One line per worker of a `weir run` report or stats dump: how it was
/// scheduled and how late it woke for shaper deadlines.
pub fn wake_note(report: &Value) -> String {
    let Some(workers) = report["workers"].as_array() else {
        return "no workers in the report".to_string();
    };
    let ms = |v: &Value| {
        v.as_u64()
            .map_or("-".to_string(), |n| format!("{:.3} ms", n as f64 / 1e6))
    };
    workers
        .iter()
        .map(|w| {
            let h = &w["wake_late"];
            format!(
                "worker {} ({}): {} deadline wake-ups, p99 ≤ {} late, max ≤ {}",
                w["index"],
                w["sched"].as_str().unwrap_or("?"),
                h["count"],
                ms(&h["p99_ns_at_most"]),
                ms(&h["max_ns_at_most"])
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
