//! The end-to-end test harness: a veth lab (`scripts/lab.sh`) with a real
//! `weir run` between its hosts, and the traffic tools that drive it.
//!
//! ```text
//! netns <P>a: a0 198.18.0.1 ── weir-in [<P>gw: weir run] weir-out ── b0 198.18.0.2 :netns <P>b
//! ```
//!
//! Each [`Lab`] has its own namespace prefix (`wt<tag><pid>-`), so a test
//! never meets a hand-made lab or another test binary's. Everything it
//! starts is bounded in time (`timeout(1)` around every tool, a deadline on
//! every wait) and in count, and sends only inside those namespaces, on
//! 198.18.0.0/15. `Drop` stops weir and runs `lab.sh down`, which also ends
//! whatever still runs in the namespaces, so a failed assertion cleans up
//! as it unwinds; labs left by a killed test process (SIGKILL skips `Drop`)
//! are swept by the next `Lab::up` once their process is gone.
//!
//! The tests need root and a release build: `scripts/test.sh` runs them;
//! by hand, `cargo test -p weir --release --test e2e_shaping`.
//!
//! This file has the lab itself; `weir.rs` the `weir run` process and its
//! reports, `iperf.rs` the iperf3 flows, `capture.rs` tcpdump captures
//! read back from pcap, `rate.rs` how rate tests end.
//! What is not particular to this lab (namespaces, bounded commands,
//! waiting for a listener, host steal readings) is in weir-testkit.

// Each e2e test binary includes this module and uses a different part of it.
#![allow(dead_code)]

mod capture;
mod iperf;
mod rate;
mod weir;

// The harness's whole interface, as `lab::…`; each test binary uses part.
#[allow(unused_imports)]
pub use capture::{ip, read_pcap, terminate, Capture, Packet};
#[allow(unused_imports)]
pub use iperf::{window_frame_mbit, Iperf3Server, UdpFlow, STAGGER};
#[allow(unused_imports)]
pub use rate::{
    compare_with_kernel, host_note, rate_test, say, Rate, HOST_ATTEMPTS, LAB_PARENT_MBIT, RATE_PCT,
    STEAL_RETRY_PCT, TWIN_NOW_ENV, TWIN_POINTS, TWIN_ROUNDS,
};
#[allow(unused_imports)]
pub use weir::{class, num, tree_of, wake_note, Weir};

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use weir_testkit::cmd;
use weir_testkit::host::CpuTimes;

/// The lab's fixed addresses and MACs (scripts/lab.sh sets them).
pub const ADDR_A: &str = "198.18.0.1";
pub const ADDR_B: &str = "198.18.0.2";
pub const MAC_A: &str = "02:00:c6:12:00:01";
pub const MAC_B: &str = "02:00:c6:12:00:02";

/// Bytes on the wire per byte of iperf3 UDP payload with `-l 1472`: the
/// 1514-byte frame (14 Ethernet + 20 IPv4 + 8 UDP + 1472) is what HTB
/// charges; iperf3 counts only the payload.
pub const FRAME_PER_PAYLOAD: f64 = 1514.0 / 1472.0;

/// Namespaces of labs made by this harness start with this.
const PREFIX_HEAD: &str = "wt";

/// The VM has two cores: one lab at a time per test binary (cargo runs
/// the binaries one after another).
static SERIAL: Mutex<()> = Mutex::new(());

/// Takes the lab lock for the whole test; a test that panicked while
/// holding it does not stop the others.
pub fn serialize() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Panics with a clear message unless running as root: these tests make
/// network namespaces, veth pairs and XDP programs, and CI runs them as
/// root, so not being root is a setup error rather than a reason to skip.
pub fn require_root() {
    assert!(
        weir_testkit::is_root(),
        "the end-to-end tests need root (network namespaces, veth, AF_XDP): run scripts/test.sh as root, \
         or `sudo -E cargo test -p weir --release --test <name>`"
    );
}

/// Where the repository is (scripts/, config/).
pub use weir_testkit::fixture::repo_root;

pub fn weir_bin() -> &'static str {
    env!("CARGO_BIN_EXE_weir")
}

/// Runs `args` to completion under `timeout(1)` (SIGTERM at `limit`,
/// SIGKILL 2 s later) and returns its output whatever the exit status.
pub fn run_limited(args: &[&str], limit: Duration) -> Output {
    cmd::run_limited(args, limit).unwrap_or_else(|e| panic!("{e}"))
}

/// Like [`run_limited`], panicking with the command's stderr when it fails.
pub fn run_ok(args: &[&str], limit: Duration) -> String {
    cmd::checked(args, run_limited(args, limit)).unwrap_or_else(|e| panic!("{e}"))
}

/// The kernel twin's hosts (`lab.sh up --twin`): the same path through a
/// kernel bridge with the config's HTB trees made by `weir tc`.
pub const ADDR_A2: &str = "198.18.1.1";
pub const ADDR_B2: &str = "198.18.1.2";

/// Which host of the lab: A and B around weir, A2 and B2 around the
/// kernel twin ([`Lab::twin`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host {
    A,
    B,
    A2,
    B2,
}

impl Host {
    pub fn addr(self) -> &'static str {
        match self {
            Host::A => ADDR_A,
            Host::B => ADDR_B,
            Host::A2 => ADDR_A2,
            Host::B2 => ADDR_B2,
        }
    }

    pub fn other(self) -> Host {
        match self {
            Host::A => Host::B,
            Host::B => Host::A,
            Host::A2 => Host::B2,
            Host::B2 => Host::A2,
        }
    }

    /// Its lab port, in its namespace.
    pub fn dev(self) -> &'static str {
        match self {
            Host::A | Host::A2 => "a0",
            Host::B | Host::B2 => "b0",
        }
    }

    /// The same end of the kernel twin.
    pub fn twin(self) -> Host {
        match self {
            Host::A | Host::A2 => Host::A2,
            Host::B | Host::B2 => Host::B2,
        }
    }

    /// The tree that shapes what this host sends: A's traffic goes up
    /// (weir-in → weir-out, or k-in → k-out), B's down.
    pub fn tree(self) -> &'static str {
        match self {
            Host::A | Host::A2 => "up",
            Host::B | Host::B2 => "down",
        }
    }
}

/// One lab, up from [`Lab::up`] until dropped.
pub struct Lab {
    prefix: String,
    /// Scratch files of this lab (configs, reports, logs).
    dir: PathBuf,
    weir: Option<Weir>,
    /// The `lab.sh up` options it was made with (repeated by [`Lab::twin`]).
    options: Vec<String>,
    /// The config the kernel twin's trees came from, once it is up.
    twin_config: Option<PathBuf>,
}

impl Lab {
    /// Brings up a lab named after `tag` (a few letters, e.g. "tr").
    pub fn up(tag: &str) -> Lab {
        Lab::up_with(tag, &[])
    }

    /// [`Lab::up`] with more `lab.sh up` options (e.g. `--fail-open`).
    pub fn up_with(tag: &str, options: &[&str]) -> Lab {
        sweep_stale_labs();
        let prefix = format!("{PREFIX_HEAD}{tag}{}-", std::process::id());
        let dir = std::env::temp_dir().join(format!("weir-e2e-{prefix}"));
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        // From here on Drop removes whatever lab.sh made, even if `up` fails
        // halfway.
        let lab = Lab {
            prefix,
            dir,
            weir: None,
            options: options.iter().map(|o| o.to_string()).collect(),
            twin_config: None,
        };
        *rate::LAB_START.lock().unwrap_or_else(|e| e.into_inner()) = CpuTimes::now();
        let mut action = vec!["up"];
        action.extend_from_slice(options);
        lab.lab_sh(&action);
        lab
    }

    fn lab_sh(&self, action: &[&str]) -> String {
        let script = repo_root().join("scripts/lab.sh");
        let script = script.to_str().expect("repository path is UTF-8");
        let mut args = vec![script];
        args.extend_from_slice(action);
        args.extend_from_slice(&["--prefix", &self.prefix, "--weir", weir_bin()]);
        run_ok(&args, Duration::from_secs(60))
    }

    /// Also builds the kernel twin, with the HTB trees of `config` (`weir
    /// tc`; sfq and red leaves become pfifo of the same depth there), so
    /// the same flows can run from A2 to B2 through kernel HTB.
    pub fn twin(&mut self, config: &Path) {
        let cfg = config.to_str().expect("scratch path is UTF-8");
        let mut action = vec!["up", "--twin", "--config", cfg];
        action.extend(self.options.iter().map(String::as_str));
        self.lab_sh(&action);
        self.twin_config = Some(config.to_path_buf());
    }

    /// `tc class change` of one class of the kernel twin's `tree` (up on
    /// k-out, down on k-in) to a new rate and ceil, as `weir class change`
    /// does it: the other parameters as `weir tc` made them, and tc's
    /// default burst and cburst for the new rate and ceil.
    pub fn twin_class_change(&self, tree: &str, classid: &str, rate: &str, ceil: &str) {
        let config = self
            .twin_config
            .as_ref()
            .expect("the twin is up (Lab::twin)");
        let dev = match tree {
            "up" => "k-out",
            "down" => "k-in",
            other => panic!("the twin has no tree {other}"),
        };
        let script = run_ok(
            &[
                weir_bin(),
                "tc",
                "-c",
                config.to_str().expect("UTF-8 path"),
                "--tree",
                tree,
                "--dev",
                dev,
                "--leaf-fallback",
                "pfifo",
            ],
            Duration::from_secs(10),
        );
        let needle = format!(" classid {classid} ");
        let line = script
            .lines()
            .find(|l| l.starts_with("class add ") && l.contains(&needle))
            .unwrap_or_else(|| panic!("no class {classid} in weir tc's script:\n{script}"));
        let mut words = line.split_whitespace().skip(2); // "class add"
        let mut args: Vec<String> = vec!["class".into(), "change".into()];
        while let Some(w) = words.next() {
            match w {
                "rate" | "ceil" | "burst" | "cburst" => {
                    words.next();
                }
                _ => args.push(w.to_string()),
            }
        }
        args.extend(["rate", rate, "ceil", ceil].map(String::from));
        let ns = format!("{}br", self.prefix);
        let mut all = vec!["tc", "-n", ns.as_str()];
        all.extend(args.iter().map(String::as_str));
        run_ok(&all, Duration::from_secs(10));
    }

    pub fn ns(&self, host: Host) -> String {
        match host {
            Host::A => format!("{}a", self.prefix),
            Host::B => format!("{}b", self.prefix),
            Host::A2 => format!("{}a2", self.prefix),
            Host::B2 => format!("{}b2", self.prefix),
        }
    }

    pub fn ns_gw(&self) -> String {
        format!("{}gw", self.prefix)
    }

    /// A scratch file path of this lab.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Writes a scratch file (a config variant, a trafgen script).
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        fs::write(&p, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", p.display()));
        p
    }

    fn exec_args<'a>(&'a self, ns: &'a str, args: &[&'a str]) -> Vec<&'a str> {
        cmd::in_netns(ns, args)
    }

    /// Runs `args` on `host`, bounded by `limit`; output whatever the status.
    pub fn output(&self, host: Host, args: &[&str], limit: Duration) -> Output {
        let ns = self.ns(host);
        run_limited(&self.exec_args(&ns, args), limit)
    }

    /// Runs `args` on `host`, bounded by `limit`; panics when it fails.
    pub fn run(&self, host: Host, args: &[&str], limit: Duration) -> String {
        let ns = self.ns(host);
        run_ok(&self.exec_args(&ns, args), limit)
    }

    /// Starts `args` on `host` in the background under `timeout(1)` (SIGTERM
    /// at `limit`, SIGKILL 2 s later), stdout and stderr piped.
    pub fn spawn(&self, host: Host, args: &[&str], limit: Duration) -> Child {
        let ns = self.ns(host);
        let secs = format!("{:.1}", limit.as_secs_f64());
        Command::new("ip")
            .args(["netns", "exec", &ns, "timeout", "-k", "2", &secs])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{}` in {ns}: {e}", args.join(" ")))
    }

    /// The `stats64` counters of `dev` in `host`'s namespace, as `ip -s -j
    /// link show` gives them (`rx`/`tx` `bytes`, `packets`, `dropped`, …).
    pub fn link_stats(&self, host: Host, dev: &str) -> Value {
        let text = self.run(
            host,
            &["ip", "-s", "-j", "link", "show", "dev", dev],
            Duration::from_secs(20),
        );
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("ip -j link show {dev} is not JSON ({e}): {text}"));
        v[0]["stats64"].clone()
    }

    /// Runs `weir ARGS --socket <this lab's API socket>` (show, whois, …)
    /// against the lab's `weir run`: its exit code, stdout and stderr.
    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let sock = self.path("weir.sock");
        let mut all = vec![weir_bin()];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--socket", sock.to_str().expect("UTF-8 path")]);
        let out = run_limited(&all, Duration::from_secs(20));
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The id of the XDP program attached to `dev` of the gw namespace, if
    /// any (`ip -j link` has an "xdp" object only while one is attached).
    pub fn xdp_prog(&self, dev: &str) -> Option<u64> {
        let gw = self.ns_gw();
        let text = run_ok(
            &["ip", "-n", &gw, "-j", "-d", "link", "show", "dev", dev],
            Duration::from_secs(5),
        );
        let links: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!("`ip -j link show dev {dev}` in {gw} is not JSON ({e}): {text}")
        });
        let xdp = links.get(0).and_then(|l| l.get("xdp"))?;
        // 0 stands for "attached, id not shown": still attached.
        Some(xdp["prog"]["id"].as_u64().unwrap_or(0))
    }

    /// Starts `weir run -c config` in the gw namespace and waits for `ready`.
    pub fn start_weir(&mut self, config: &Path) -> &mut Weir {
        self.start_weir_with(config, &[])
    }

    /// [`Lab::start_weir`] with more `weir run` arguments.
    pub fn start_weir_with(&mut self, config: &Path, extra: &[&str]) -> &mut Weir {
        assert!(self.weir.is_none(), "weir is already running in this lab");
        let weir = Weir::start(self, config, extra);
        self.weir.insert(weir)
    }

    pub fn weir(&mut self) -> &mut Weir {
        self.weir.as_mut().expect("weir is running (start_weir)")
    }

    /// SIGKILLs weir (no report, no clean detach: the kernel closes its
    /// bpf_links and sockets as the process dies), reaps it and returns its
    /// exit status. The lab has no weir afterwards; `start_weir` again.
    pub fn kill_weir(&mut self) -> ExitStatus {
        self.weir
            .take()
            .expect("weir is running (start_weir)")
            .kill9()
    }

    /// Stops weir (SIGTERM) and returns its final report.
    pub fn stop_weir(&mut self) -> Value {
        self.weir
            .take()
            .expect("weir is running (start_weir)")
            .stop()
    }

    /// Sends `count` frames of `config` (a trafgen script) out of `host`'s
    /// a0/b0 with trafgen, one process, at most `limit` long; panics if
    /// trafgen fails.
    pub fn trafgen(&self, host: Host, config: &Path, count: u64, limit: Duration) -> String {
        self.try_trafgen(host, config, count, limit)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Lab::trafgen`], returning trafgen's failure instead of panicking.
    /// trafgen gives up when the device pushes back ("Flushing TX_RING
    /// failed: Resource temporarily unavailable": the veth's queue to a
    /// busy peer was full) after sending part of its frames; a caller that
    /// counts what arrived rather than what was asked can go on.
    pub fn try_trafgen(
        &self,
        host: Host,
        config: &Path,
        count: u64,
        limit: Duration,
    ) -> Result<String, String> {
        self.trafgen_with(host, config, count, &[], limit)
    }

    /// [`Lab::try_trafgen`] with more trafgen options (`extra`, e.g. a gap
    /// between frames: `["-t", "20us"]`).
    pub fn trafgen_with(
        &self,
        host: Host,
        config: &Path,
        count: u64,
        extra: &[&str],
        limit: Duration,
    ) -> Result<String, String> {
        let dev = host.dev();
        let n = count.to_string();
        let cfg = config.to_str().expect("scratch path is UTF-8");
        // -P 1: one sender process (the VM has two cores and weir needs
        // one). --no-sock-mem: leave the machine-wide socket memory sysctls alone
        // (trafgen raises them by default; they are not per namespace).
        let ns = self.ns(host);
        let mut tool = vec![
            "trafgen",
            "-P",
            "1",
            "--no-sock-mem",
            "-q",
            "-o",
            dev,
            "-i",
            cfg,
            "-n",
            &n,
        ];
        tool.extend_from_slice(extra);
        let args = self.exec_args(&ns, &tool);
        cmd::checked(&args, run_limited(&args, limit)).map_err(|e| e.to_string())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(w) = self.weir.take() {
            // Already unwinding or about to report: the report no longer
            // matters, only that weir stops and detaches.
            w.kill();
        }
        let script = repo_root().join("scripts/lab.sh");
        let out = run_limited(
            &[
                script.to_str().unwrap_or("scripts/lab.sh"),
                "down",
                "--prefix",
                &self.prefix,
            ],
            Duration::from_secs(30),
        );
        if !out.status.success() {
            eprintln!(
                "lab.sh down --prefix {} failed: {}",
                self.prefix,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Removes labs whose test process is gone (killed before its `Drop` ran):
/// namespaces `wt<tag><pid>-…` with no live `<pid>`.
fn sweep_stale_labs() {
    let Ok(entries) = fs::read_dir("/run/netns") else {
        return;
    };
    let mut stale = std::collections::BTreeSet::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(PREFIX_HEAD) else {
            continue;
        };
        let Some((head, _)) = rest.split_once('-') else {
            continue;
        };
        let digits: String = head.chars().skip_while(|c| !c.is_ascii_digit()).collect();
        let Ok(pid) = digits.parse::<u32>() else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            stale.insert(format!("{PREFIX_HEAD}{head}-"));
        }
    }
    let script = repo_root().join("scripts/lab.sh");
    for prefix in stale {
        eprintln!("removing stale lab {prefix} (its test process is gone)");
        let _ = run_limited(
            &[
                script.to_str().unwrap_or("scripts/lab.sh"),
                "down",
                "--prefix",
                &prefix,
            ],
            Duration::from_secs(30),
        );
    }
}
