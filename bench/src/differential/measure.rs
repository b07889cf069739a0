//! Measuring one tree: the lab (scripts/lab.sh with its kernel twin), a
//! `weir run` on it, the UDP trials through both paths taking turns, and
//! `weir simulate`; what [`super::run_tree`] judges.

use super::*;

/// One attempt at a tree: the simulator, then weir and the kernel taking
/// turns; per active leaf the medians.
///
/// A TCP tree skips the simulator: its `tcp` sources are a Reno model
/// for AQM studies (no retransmission, no delayed ACKs, a fixed base
/// RTT), not the kernel's cubic, so what it gets says nothing about
/// weir's HTB; the kernel twin is the oracle there.
pub(super) fn measure(
    s: &DiffSpec,
    lab: &mut Lab,
    t: &Tree,
    progress: &mut dyn FnMut(&str),
) -> Result<(Vec<ClassRow>, WorkerAccount, u64), String> {
    let slug = t.name.replace(' ', "-");
    let config = s.dir.join(format!("{slug}.toml"));
    write(&config, &t.config())?;
    let sim = match t.proto {
        Proto::Udp => {
            let traffic = s.dir.join(format!("{slug}-traffic.toml"));
            write(&traffic, &t.traffic(s.sim_s))?;
            simulate(&s.weir, &config, &traffic)?
        }
        Proto::Tcp => BTreeMap::new(),
    };
    lab.up(&config)?;
    let p = &s.prefix;
    let paths = match t.proto {
        Proto::Udp => [
            Path2::Udp(format!("name=weir,tx={p}a/a0,rx={p}b/b0").parse()?),
            Path2::Udp(format!("name=kernel,tx={p}a2/a0,rx={p}b2/b0,{TWIN_MACS}").parse()?),
        ],
        // scripts/lab.sh's hosts: A 198.18.0.1 → B 198.18.0.2 through
        // weir, A2 198.18.1.1 → B2 198.18.1.2 through the twin's bridge.
        Proto::Tcp => [
            Path2::Tcp(TcpPath {
                name: "weir".into(),
                tx_ns: format!("{p}a"),
                rx_ns: format!("{p}b"),
                dst: "198.18.0.2".into(),
            }),
            Path2::Tcp(TcpPath {
                name: "kernel".into(),
                tx_ns: format!("{p}a2"),
                rx_ns: format!("{p}b2"),
                dst: "198.18.1.2".into(),
            }),
        ],
    };
    let streams: Vec<StreamSpec> = t
        .active
        .iter()
        .map(|&i| StreamSpec {
            dscp: t.classes[i].dscp.unwrap_or(0),
            mix: SizeMix::Fixed((FRAME_BYTES + 4) as usize),
            rate_pps: Some(t.offered_bps(i) as f64 / (FRAME_BYTES * 8) as f64),
            flows: 1,
        })
        .collect();
    let weir = WeirRun::start(s, lab, &config, &slug)?;
    let mut runs: [Vec<Run>; 2] = [Vec::new(), Vec::new()];
    let mut receiver_drops = 0;
    for rep in 0..s.repeat.max(1) {
        for (k, path) in paths.iter().enumerate() {
            let run = match path {
                Path2::Udp(path) => udp_run(s, t, path, &streams)?,
                Path2::Tcp(path) => {
                    let dscps: Vec<u8> = t
                        .active
                        .iter()
                        .map(|&i| t.classes[i].dscp.unwrap_or(0))
                        .collect();
                    let flows = tcp::run(path, &dscps, TCP_WARMUP, s.tcp_window)?;
                    Run {
                        mbit: flows.iter().map(|f| f.mbit).collect(),
                        retransmits: flows.iter().map(|f| f.retransmits).collect(),
                        rtt_ms: flows.iter().map(|f| f.rtt_ms).collect(),
                        receiver_drops: 0,
                        note: format!(
                            " (in-order payload Mbit/s {}; payload per segment {})",
                            flows
                                .iter()
                                .map(|f| format!("{:.2}", f.goodput_mbit))
                                .collect::<Vec<_>>()
                                .join(" / "),
                            flows
                                .iter()
                                .map(|f| format!("{:.0}", f.segment_payload))
                                .collect::<Vec<_>>()
                                .join(" / ")
                        ),
                    }
                }
            };
            receiver_drops += run.receiver_drops;
            let per_class = |f: &dyn Fn(usize) -> String| {
                t.active
                    .iter()
                    .enumerate()
                    .map(|(j, &i)| format!("{} {}", t.classes[i].id(), f(j)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let tcp = if run.retransmits.is_empty() {
                String::new()
            } else {
                format!(
                    "; retransmits {}; sender RTT ms {}",
                    per_class(&|j| run.retransmits[j].to_string()),
                    per_class(&|j| format!("{:.0}", run.rtt_ms[j]))
                )
            };
            progress(&format!(
                "  {} run {}: {}{}{tcp}",
                path.name(),
                rep + 1,
                per_class(&|j| format!("{:.2}", run.mbit[j])),
                run.note,
            ));
            runs[k].push(run);
        }
    }
    let worker = weir.stop()?;
    let root = t.root_bps() as f64 / 1e6;
    let rows = t
        .active
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            let c = &t.classes[i];
            let weir_runs: Vec<f64> = runs[0].iter().map(|r| r.mbit[k]).collect();
            let kernel_runs: Vec<f64> = runs[1].iter().map(|r| r.mbit[k]).collect();
            let (w, kern) = (median(&weir_runs), median(&kernel_runs));
            let sim = sim.get(&tree::source_name(c)).copied().unwrap_or(f64::NAN);
            ClassRow {
                class: c.id(),
                prio: c.prio,
                quantum: c.quantum,
                rate_mbit: c.rate_bps as f64 / 1e6,
                ceil_mbit: c.ceil_bps as f64 / 1e6,
                offered_mbit: match t.proto {
                    Proto::Udp => t.offered_bps(i) as f64 / 1e6,
                    Proto::Tcp => f64::NAN,
                },
                kernel_mbit: kern,
                weir_mbit: w,
                sim_mbit: sim,
                kernel_runs,
                weir_runs,
                kernel_retransmits: runs[1]
                    .iter()
                    .filter_map(|r| r.retransmits.get(k).copied())
                    .collect(),
                weir_retransmits: runs[0]
                    .iter()
                    .filter_map(|r| r.retransmits.get(k).copied())
                    .collect(),
                kernel_rtt_ms: runs[1]
                    .iter()
                    .filter_map(|r| r.rtt_ms.get(k).copied())
                    .collect(),
                weir_rtt_ms: runs[0]
                    .iter()
                    .filter_map(|r| r.rtt_ms.get(k).copied())
                    .collect(),
                weir_kernel_pts: (w - kern) / root * 100.0,
                sim_weir_pts: (sim - w) / root * 100.0,
            }
        })
        .collect();
    Ok((rows, worker, receiver_drops))
}

/// A path of the lab as the traffic of a tree needs it.
pub(super) enum Path2 {
    Udp(PathSpec),
    Tcp(TcpPath),
}

impl Path2 {
    fn name(&self) -> &str {
        match self {
            Path2::Udp(p) => &p.name,
            Path2::Tcp(p) => &p.name,
        }
    }
}

/// One run of one path: per active class (in `Tree::active` order) the
/// Mbit/s of frame bytes; TCP's retransmits and RTT (empty for UDP).
pub(super) struct Run {
    mbit: Vec<f64>,
    retransmits: Vec<u64>,
    rtt_ms: Vec<f64>,
    /// Frames the receiver's own sockets lost (UDP).
    receiver_drops: u64,
    /// What the progress line adds.
    note: String,
}

/// One trial of weir-bench's UDP generator.
pub(super) fn udp_run(
    s: &DiffSpec,
    t: &Tree,
    path: &PathSpec,
    streams: &[StreamSpec],
) -> Result<Run, String> {
    let spec = path.trial(
        streams.to_vec(),
        s.trial,
        Duration::from_millis(300),
        64,
        XdpMode::Native,
    );
    let r = trial::run(&spec).map_err(|e| format!("{} trial: {e}", path.name))?;
    let drops = r.rx_socket.rx_dropped + r.rx_socket.rx_ring_full + r.rx_socket.fill_ring_empty;
    let mut mbit = Vec::new();
    for (st, &i) in r.streams.iter().zip(&t.active) {
        let pps = st.window_pps.ok_or_else(|| {
            format!(
                "{} trial: class {} received too little to measure ({} frames)",
                path.name,
                t.classes[i].id(),
                st.received
            )
        })?;
        mbit.push(pps * (FRAME_BYTES * 8) as f64 / 1e6);
    }
    Ok(Run {
        mbit,
        retransmits: Vec::new(),
        rtt_ms: Vec::new(),
        receiver_drops: drops,
        note: format!(
            " (receiver drops {drops}, sender late up to {:.1} ms)",
            r.tx_late_max_us / 1e3
        ),
    })
}

pub(super) fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

pub(super) fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Runs `cmd` with a time limit (through timeout(1), so a hung tool
/// cannot hang the test); its stdout, or an error with its stderr.
pub(super) fn output(cmd: &mut Command, what: &str, limit: Duration) -> Result<String, String> {
    let mut c = Command::new("timeout");
    c.arg(format!("{}", limit.as_secs().max(1)))
        .arg(cmd.get_program())
        .args(cmd.get_args());
    let out = c
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `weir simulate --json`: each source's achieved rate, Mbit/s.
pub(super) fn simulate(
    weir: &Path,
    config: &Path,
    traffic: &Path,
) -> Result<BTreeMap<String, f64>, String> {
    let what = format!(
        "{} simulate {} --traffic {}",
        weir.display(),
        config.display(),
        traffic.display()
    );
    let text = output(
        Command::new(weir)
            .arg("simulate")
            .arg(config)
            .arg("--traffic")
            .arg(traffic)
            .arg("--json"),
        &what,
        Duration::from_secs(120),
    )?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{what}: its JSON: {e}"))?;
    let sources = v["sources"]
        .as_array()
        .ok_or_else(|| format!("{what}: no sources in its report"))?;
    sources
        .iter()
        .map(|src| {
            let name = src["name"].as_str().unwrap_or_default().to_owned();
            let bps = src["achieved_bps"]
                .as_u64()
                .ok_or_else(|| format!("{what}: source {name} without achieved_bps"))?;
            Ok((name, bps as f64 / 1e6))
        })
        .collect()
}

/// The lab: the weir path and the kernel twin, under the spec's prefix;
/// brought up on the first tree, its kernel trees rebuilt for each tree,
/// taken down on drop.
pub(super) struct Lab {
    sh: PathBuf,
    weir: PathBuf,
    prefix: String,
    built: bool,
}

impl Lab {
    pub(super) fn new(s: &DiffSpec) -> Lab {
        let lab = Lab {
            sh: s.lab_sh.clone(),
            weir: s.weir.clone(),
            prefix: s.prefix.clone(),
            built: false,
        };
        // A lab of this prefix left by a killed run.
        lab.down();
        lab
    }

    /// `lab.sh up --twin` with this config: builds what is missing and
    /// rebuilds the twin's kernel trees from `weir tc`.
    fn up(&mut self, config: &Path) -> Result<(), String> {
        self.built = true;
        output(
            Command::new(&self.sh)
                .args(["up", "--twin", "--prefix", &self.prefix, "--config"])
                .arg(config)
                .args(["--up-tree", "up", "--down-tree", "up", "--weir"])
                .arg(&self.weir),
            &format!("lab.sh up --twin --config {}", config.display()),
            Duration::from_secs(60),
        )
        .map(drop)
    }

    fn down(&self) {
        let _ = output(
            Command::new(&self.sh).args(["down", "--prefix", &self.prefix]),
            "lab.sh down",
            Duration::from_secs(60),
        );
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.built {
            self.down();
        }
    }
}

/// What weir's final report says about its worker while it shaped (the
/// lab has one queue, so one worker; the worst over workers otherwise).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct WorkerAccount {
    /// How late the worker woke for shaper deadlines, upper bounds of the
    /// histogram bucket, µs: p99 and the largest.
    pub wake_late_p99_us: f64,
    pub wake_late_max_us: f64,
    /// Wake-ups for a deadline, and those more than 1.05 ms (2^20 ns)
    /// late.
    pub wakeups: u64,
    pub late_over_1ms: u64,
    /// Times its tx ring was full (frames waited in weir).
    pub tx_ring_full: u64,
}

impl WorkerAccount {
    pub(super) fn of(report: &serde_json::Value) -> WorkerAccount {
        let mut a = WorkerAccount::default();
        for w in report["workers"].as_array().into_iter().flatten() {
            let us = |k: &str| w["wake_late"][k].as_f64().unwrap_or(f64::INFINITY) / 1e3;
            a.wake_late_p99_us = a.wake_late_p99_us.max(us("p99_ns_at_most"));
            a.wake_late_max_us = a.wake_late_max_us.max(us("max_ns_at_most"));
            a.tx_ring_full += w["tx_ring_full"].as_u64().unwrap_or(0);
            a.wakeups += w["wake_late"]["count"].as_u64().unwrap_or(0);
            // Bucket i holds [2^(i-1), 2^i) ns (dataplane LogHistogram).
            a.late_over_1ms += w["wake_late"]["buckets"]
                .as_array()
                .map_or(0, |b| b.iter().skip(21).filter_map(|x| x.as_u64()).sum());
        }
        a
    }
}

/// `weir run` in the lab's gw namespace; killed on drop if not stopped.
pub(super) struct WeirRun {
    child: Option<Child>,
    lines: Receiver<String>,
    log: PathBuf,
}

impl WeirRun {
    fn start(s: &DiffSpec, lab: &Lab, config: &Path, slug: &str) -> Result<WeirRun, String> {
        let log = s.dir.join(format!("{slug}-weir.log"));
        let stderr =
            std::fs::File::create(&log).map_err(|e| format!("creating {}: {e}", log.display()))?;
        let mut child = Command::new("ip")
            .args(["netns", "exec", &format!("{}gw", lab.prefix)])
            .arg(&s.weir)
            .args(["run", "--json", "-c"])
            .arg(config)
            // Its own API socket and no history: never the machine's.
            .arg("--socket")
            .arg(s.dir.join("weir.sock"))
            .args(["--history", "none"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("starting {} run: {e}", s.weir.display()))?;
        let stdout = child.stdout.take().ok_or("weir run: no stdout pipe")?;
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let w = WeirRun {
            child: Some(child),
            lines: rx,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match w.lines.recv_timeout(left) {
                Ok(l) if l == "ready" => return Ok(w),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "weir run -c {} not ready within 20 s: {}",
                        config.display(),
                        w.log_tail()
                    ))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!(
                        "weir run -c {} exited before ready: {}",
                        config.display(),
                        w.log_tail()
                    ))
                }
            }
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(10)..].join(" | ")
    }

    /// SIGTERM, its final report, and a clean exit within 20 s.
    fn stop(mut self) -> Result<WorkerAccount, String> {
        let Some(mut child) = self.child.take() else {
            return Err("weir run: already stopped".into());
        };
        // SAFETY: kill(2) on our own child's pid, which we have not
        // reaped yet, so it cannot name another process.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut account = None;
        while account.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = self.lines.recv_timeout(left) else {
                break;
            };
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                if v["type"] == "report" {
                    account = Some(WorkerAccount::of(&v));
                    let _ = std::fs::write(self.log.with_extension("report.json"), &line);
                }
            }
        }
        loop {
            match child.try_wait() {
                Ok(Some(st)) if st.success() => {
                    return account.ok_or_else(|| {
                        format!(
                            "weir run exited without a final report: {}",
                            self.log_tail()
                        )
                    })
                }
                Ok(Some(st)) => {
                    return Err(format!("weir run exited with {st}: {}", self.log_tail()))
                }
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "weir run did not exit within 20 s of SIGTERM: {}",
                        self.log_tail()
                    ));
                }
            }
        }
    }
}

impl Drop for WeirRun {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
