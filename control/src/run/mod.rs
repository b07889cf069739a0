//! `weir run`: the control thread of a running shaper.
//!
//! It loads and checks the configuration, compiles each tree, starts the
//! AF_XDP data path (`weir_xdp::run::Dataplane`: XDP programs, UMEMs,
//! sockets, pinned workers), says what runs where, and then only waits:
//! for SIGUSR1 or the stats period (print per-class counters), and for
//! SIGINT / SIGTERM (stop the workers, report what was still queued and
//! prove every frame is accounted for). Nothing here touches a packet.
//!
//! Output contract (tests and scripts rely on it): stdout gets the
//! placement, then a line that is exactly `ready`, then stats dumps and the
//! final report (with `--json` each dump is one JSON line, see `json.rs`);
//! logs go to stderr. Exit 0 after a clean stop, 2 on configuration errors,
//! 1 when the data path cannot start.

mod json;
mod text;

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use weir_dataplane::classify::IpPrefix;
use weir_xdp::prog::{PassPrefix, XdpMode};
use weir_xdp::run::{Dataplane, PairSpec, RunSpec, Snapshot, TreeSpec};

use crate::config::{self, Config, XdpAttach};

pub use json::{report_json, snapshot_json};

/// What `weir run` was asked to do.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub config: PathBuf,
    /// Print stats this often (besides on SIGUSR1).
    pub stats_interval: Option<Duration>,
    /// Stats and report as one JSON line each.
    pub json: bool,
    /// Also write the final report (JSON) here.
    pub report: Option<PathBuf>,
}

/// The data path's spec for a checked configuration: one [`PairSpec`] per
/// `[[pair]]`, each direction's tree compiled with `seed` (SFQ / FQ-CoDel
/// hash seeds).
pub fn run_spec(config: &Config, seed: u64) -> RunSpec {
    let tree = |i: Option<u32>, salt: u64| {
        i.and_then(|i| config.trees.get(i as usize))
            .map(|t| TreeSpec {
                name: t.name.clone(),
                shaper: t.shaper_spec(seed ^ salt),
            })
    };
    let pairs = config
        .pairs
        .iter()
        .enumerate()
        .map(|(n, p)| PairSpec {
            name: p.name.clone(),
            inside: p.inside.clone(),
            outside: p.outside.clone(),
            queues: p.queues,
            upload: tree(p.upload, 2 * n as u64 + 1),
            download: tree(p.download, 2 * n as u64 + 2),
        })
        .collect();
    let d = &config.dataplane;
    RunSpec {
        pairs,
        cores: d.cores.clone(),
        batch: d.batch,
        frame_size: d.frame_size,
        frames_per_worker: d.frames,
        ring_size: d.ring_size,
        handover_ring: d.handover_ring,
        busy_poll: d.busy_poll,
        xdp_mode: match d.xdp_mode {
            XdpAttach::Native => XdpMode::Native,
            XdpAttach::Generic => XdpMode::Generic,
        },
        pass: d.pass.iter().map(pass_prefix).collect(),
    }
}

fn pass_prefix(p: &IpPrefix) -> PassPrefix {
    let addr = if p.v6 {
        IpAddr::V6(Ipv6Addr::from(p.addr))
    } else {
        IpAddr::V4(Ipv4Addr::from(p.addr as u32))
    };
    PassPrefix { addr, len: p.len }
}

/// What the control thread waits for.
enum Event {
    Stats,
    Stop(&'static str),
    Reload,
}

fn signal_events(tx: mpsc::Sender<Event>) -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGUSR1, SIGHUP])?;
    std::thread::Builder::new()
        .name("weir-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                let ev = match sig {
                    SIGUSR1 => Event::Stats,
                    SIGHUP => Event::Reload,
                    SIGINT => Event::Stop("SIGINT"),
                    _ => Event::Stop("SIGTERM"),
                };
                if tx.send(ev).is_err() {
                    return;
                }
            }
        })?;
    Ok(())
}

/// Rate estimates need the previous dump.
struct Printer {
    json: bool,
    previous: Option<Snapshot>,
}

impl Printer {
    fn stats(&mut self, config: &Config, snap: Snapshot, out: &mut dyn Write) {
        let text = if self.json {
            snapshot_json(config, &snap, self.previous.as_ref(), "stats").to_string() + "\n"
        } else {
            text::snapshot(config, &snap, self.previous.as_ref())
        };
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
        self.previous = Some(snap);
    }
}

/// `weir run`: returns the exit code.
pub fn cli_run(opts: &RunOptions, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let loaded = match config::load(&opts.config) {
        Ok(l) => l,
        Err(diags) => {
            for d in &diags {
                let _ = writeln!(err, "{d}");
            }
            let _ = writeln!(err, "{}: {} error(s)", opts.config.display(), diags.len());
            return 2;
        }
    };
    for w in &loaded.warnings {
        tracing::warn!("{}:{}:{}: {}", w.file, w.line, w.col, w.message);
    }
    let config = loaded.config;
    if config.pairs.is_empty() {
        let _ = writeln!(
            err,
            "{}: no [[pair]]: nothing to run; expected at least one port pair (see docs/config.md)",
            opts.config.display()
        );
        return 2;
    }
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0x5eed, |d| d.as_nanos() as u64);
    let spec = run_spec(&config, seed);

    // Signals first: a SIGTERM during start-up must not kill the process
    // with XDP programs half attached (the links would go with it, but the
    // report would not be written).
    let (tx, rx) = mpsc::channel();
    if let Err(e) = signal_events(tx) {
        let _ = writeln!(err, "weir run: can't install signal handlers: {e}");
        return 1;
    }
    let dataplane = match Dataplane::start(spec) {
        Ok(d) => d,
        Err(e) => {
            let _ = writeln!(err, "weir run: {e}");
            return 1;
        }
    };
    for p in dataplane.placement() {
        let line = text::placement(p);
        tracing::info!("{line}");
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out, "ready");
    let _ = out.flush();
    tracing::info!(config = %opts.config.display(), "ready");

    let mut printer = Printer {
        json: opts.json,
        previous: None,
    };
    let period = opts.stats_interval;
    let reason = loop {
        let ev = match period {
            Some(p) => match rx.recv_timeout(p) {
                Ok(ev) => ev,
                Err(mpsc::RecvTimeoutError::Timeout) => Event::Stats,
                Err(mpsc::RecvTimeoutError::Disconnected) => Event::Stop("signal thread ended"),
            },
            None => rx.recv().unwrap_or(Event::Stop("signal thread ended")),
        };
        match ev {
            Event::Stats => match dataplane.snapshot() {
                Ok(s) => printer.stats(&config, s, out),
                Err(e) => tracing::error!("stats: {e}"),
            },
            Event::Reload => tracing::warn!(
                "SIGHUP: this version cannot reload a running configuration; restart weir to apply a new file (it keeps running the old one)"
            ),
            Event::Stop(why) => break why,
        }
    };
    tracing::info!("{reason}: stopping");
    let report = match dataplane.stop() {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(err, "weir run: stopping: {e}");
            return 1;
        }
    };
    let report_value = report_json(&config, &report, printer.previous.as_ref());
    if opts.json {
        let _ = writeln!(out, "{report_value}");
    } else {
        let _ = write!(out, "{}", text::report(&config, &report));
    }
    let _ = out.flush();
    if let Some(path) = &opts.report {
        if let Err(e) = write_report(path, &report_value) {
            let _ = writeln!(
                err,
                "weir run: can't write the report to {}: {e}",
                path.display()
            );
            return 1;
        }
    }
    if !report.balanced || !report.umem_accounted {
        tracing::error!(
            balanced = report.balanced,
            umem_accounted = report.umem_accounted,
            "frame accounting does not add up; the report has the numbers"
        );
    }
    0
}

fn write_report(path: &Path, value: &serde_json::Value) -> std::io::Result<()> {
    let mut text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
    text.push('\n');
    std::fs::write(path, text)
}
