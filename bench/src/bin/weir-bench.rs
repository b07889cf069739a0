//! weir-bench: an AF_XDP traffic generator and receiver, and the RFC
//! 2544-style comparison of several paths built on it.
//!
//!   weir-bench trial   --path SPEC --stream SPEC [--stream SPEC …] [--duration-ms N] [--json]
//!   weir-bench compare --path SPEC … [--baseline SPEC] [--sizes 64,1518] [--json FILE] [--md FILE]
//!   weir-bench shaping --scenario NAME --path SPEC … --stream SPEC … --expect-mbit X,Y,… [--json FILE] [--md FILE]
//!   weir-bench differential [--trees N] [--seed S] [--tree seed:N|quantum3|quantum2|lab|lab-30-idle|lab-only-20|lab-tcp …] [--json FILE] [--md FILE]
//!
//! Needs root (AF_XDP sockets, XDP programs, network namespaces). See
//! docs/performance.md for the lab this runs in (bench/run.sh).

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use weir_bench::differential::{self, tree::TreeSpec, DiffSpec};
use weir_bench::traffic::compare::{self, CompareSpec};
use weir_bench::traffic::shaping::{self, ShapingSpec};
use weir_bench::traffic::spec::{parse_stream, PathSpec};
use weir_bench::traffic::testframe::SizeMix;
use weir_bench::traffic::trial::{self, StreamSpec};
use weir_xdp::prog::XdpMode;

#[derive(Parser)]
#[command(
    name = "weir-bench",
    version,
    about = "AF_XDP traffic generator and RFC 2544-style harness for weir"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args)]
struct Common {
    /// Frames put on the tx ring at once.
    #[arg(long, default_value_t = 64)]
    batch: u32,
    /// How weir's XDP program is attached on the receiving interface:
    /// native or generic.
    #[arg(long, default_value = "native", value_parser = parse_mode)]
    rx_mode: XdpMode,
    /// How long the receiver listens after the sender stops (ms).
    #[arg(long, default_value_t = 300)]
    drain_ms: u64,
}

#[derive(Subcommand)]
enum Cmd {
    /// Send streams over one path for a while and report what arrived.
    Trial {
        /// name=N,tx=[NS/]DEV,rx=[NS/]DEV[,smac=..,dmac=..,sip=..,dip=..]
        #[arg(long, value_parser = parse_path)]
        path: PathSpec,
        /// [dscp=N][,size=64|1518|imix|jumbo][,rate=PPS|NNNmbit|flat][,flows=N]
        #[arg(long = "stream", value_parser = parse_stream, required = true)]
        streams: Vec<StreamSpec>,
        #[arg(long, default_value_t = 2000)]
        duration_ms: u64,
        /// Print the result as JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        common: Common,
    },
    /// NDR/PDR search, latency and CPU cost of several paths, interleaved.
    Compare {
        /// A path to measure (repeat; measured in the order given).
        #[arg(long = "path", value_parser = parse_path, required = true)]
        paths: Vec<PathSpec>,
        /// The generator straight into the receiver, for the CPU baseline.
        #[arg(long, value_parser = parse_path)]
        baseline: Option<PathSpec>,
        /// The path the others are compared with (its name).
        #[arg(long)]
        reference: Option<String>,
        /// Frame sizes (FCS included), comma-separated; imix and jumbo too.
        #[arg(long, default_value = "64,1518", value_delimiter = ',')]
        sizes: Vec<SizeMix>,
        #[arg(long, default_value_t = 1000)]
        trial_ms: u64,
        /// Stop a search when within this fraction.
        #[arg(long, default_value_t = 0.02)]
        resolution: f64,
        #[arg(long, default_value_t = 7)]
        max_steps: u32,
        /// Run a search trial that lost too much this many times more; the
        /// best run counts (machine noise, applied to every path alike).
        #[arg(long, default_value_t = 1)]
        retries: u32,
        #[arg(long, default_value_t = 16)]
        flows: u32,
        #[arg(long, default_value_t = 0)]
        dscp: u8,
        /// Write the report as JSON here.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
        /// Write the markdown tables here (stdout if not given).
        #[arg(long)]
        md: Option<std::path::PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Offer the same streams to shaped paths in turn and compare each
    /// stream's delivered rate with HTB's promise.
    Shaping {
        /// A name for the case (saturated, one-idle, …).
        #[arg(long)]
        scenario: String,
        #[arg(long = "path", value_parser = parse_path, required = true)]
        paths: Vec<PathSpec>,
        #[arg(long = "stream", value_parser = parse_stream, required = true)]
        streams: Vec<StreamSpec>,
        /// HTB's promise per stream, Mbit/s of frame bytes without FCS, in
        /// stream order.
        #[arg(long, value_delimiter = ',', required = true)]
        expect_mbit: Vec<f64>,
        #[arg(long, default_value_t = 5000)]
        trial_ms: u64,
        /// Runs per path, the paths taking turns; the median run counts.
        #[arg(long, default_value_t = 3)]
        repeat: u32,
        #[arg(long)]
        json: Option<std::path::PathBuf>,
        #[arg(long)]
        md: Option<std::path::PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Random HTB trees (and hand-made ones) through kernel HTB, `weir run`
    /// and `weir simulate` with the same traffic; per class the difference
    /// in points of the root's rate. Exits 1 when a tree differs by more
    /// than the tolerance.
    Differential {
        /// Random trees from seeds S, S+1, … S+N-1.
        #[arg(long, default_value_t = 0)]
        trees: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// A tree to add: seed:N, or a hand-made one: quantum3 (three
        /// same-prio borrowing leaves, quantums 1514/6056/15140), quantum2,
        /// lab (config/lab.toml's tree with tc's defaults), lab-30-idle,
        /// lab-only-20, lab-tcp (the lab tree with one bulk TCP flow per
        /// class, iperf3). Repeatable.
        #[arg(long = "tree")]
        named: Vec<TreeSpec>,
        /// The weir binary (default: $WEIR_BIN, then weir next to this
        /// program, as cargo builds them).
        #[arg(long)]
        weir: Option<std::path::PathBuf>,
        /// scripts/lab.sh (default: the checkout this program was built in).
        #[arg(long)]
        lab: Option<std::path::PathBuf>,
        #[arg(long, default_value = "wdf-")]
        prefix: String,
        /// Where configs, traffic and weir logs go (kept).
        #[arg(long, default_value = "/tmp/weir-differential")]
        dir: std::path::PathBuf,
        #[arg(long, default_value_t = 3000)]
        trial_ms: u64,
        /// How long a TCP tree's trial measures (after 4 s of warm-up; 10 s
        /// by default: see differential::TCP_WINDOW).
        #[arg(long, default_value_t = differential::TCP_WINDOW.as_millis() as u64)]
        tcp_window_ms: u64,
        /// Trials per path and attempt, weir and kernel taking turns; the
        /// median counts (3: one run that weir's worker spent partly
        /// stalled does not decide a class).
        #[arg(long, default_value_t = 3)]
        repeat: u32,
        /// Attempts per tree (another one only after a disturbed one).
        #[arg(long, default_value_t = 4)]
        attempts: u32,
        /// Points of the root's rate.
        #[arg(long, default_value_t = 1.0)]
        tolerance: f64,
        /// The same for TCP trees (lab-tcp): TCP's own dynamics vary more
        /// from run to run than a UDP flow of fixed rate.
        #[arg(long, default_value_t = differential::TCP_TOLERANCE_PTS)]
        tcp_tolerance: f64,
        #[arg(long)]
        json: Option<std::path::PathBuf>,
        #[arg(long)]
        md: Option<std::path::PathBuf>,
    },
}

/// The weir binary: `--weir`, else $WEIR_BIN, else `weir` next to this
/// program (cargo puts both in target/<profile>/).
fn weir_binary(arg: Option<std::path::PathBuf>) -> std::path::PathBuf {
    arg.or_else(|| std::env::var_os("WEIR_BIN").map(Into::into))
        .or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|p| p.parent().map(|d| d.join("weir")))
        })
        .unwrap_or_else(|| "weir".into())
}

/// Write `json` and `md` where asked (markdown to stdout when no file).
fn write_outputs<T: serde::Serialize>(
    report: &T,
    text: &str,
    json: Option<std::path::PathBuf>,
    md: Option<std::path::PathBuf>,
) -> ExitCode {
    if let Some(f) = json {
        let body = serde_json::to_string_pretty(report).unwrap_or_default();
        if let Err(e) = std::fs::write(&f, body) {
            eprintln!("weir-bench: writing {}: {e}", f.display());
            return ExitCode::FAILURE;
        }
    }
    match md {
        Some(f) => {
            if let Err(e) = std::fs::write(&f, text) {
                eprintln!("weir-bench: writing {}: {e}", f.display());
                return ExitCode::FAILURE;
            }
        }
        None => print!("{text}"),
    }
    ExitCode::SUCCESS
}

fn parse_path(s: &str) -> Result<PathSpec, String> {
    s.parse()
}

fn parse_mode(s: &str) -> Result<XdpMode, String> {
    match s {
        "native" => Ok(XdpMode::Native),
        "generic" => Ok(XdpMode::Generic),
        _ => Err(format!("{s:?}: expected native or generic")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Trial {
            path,
            streams,
            duration_ms,
            json,
            common,
        } => {
            let spec = path.trial(
                streams,
                Duration::from_millis(duration_ms),
                Duration::from_millis(common.drain_ms),
                common.batch,
                common.rx_mode,
            );
            match trial::run(&spec) {
                Ok(r) => {
                    if json {
                        println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
                    } else {
                        print_trial(&r);
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("weir-bench: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Compare {
            paths,
            baseline,
            reference,
            sizes,
            trial_ms,
            resolution,
            max_steps,
            retries,
            flows,
            dscp,
            json,
            md,
            common,
        } => {
            if dscp > 63 {
                eprintln!("weir-bench: --dscp {dscp}: expected 0..=63");
                return ExitCode::from(2);
            }
            let spec = CompareSpec {
                paths,
                baseline,
                sizes,
                trial: Duration::from_millis(trial_ms),
                drain: Duration::from_millis(common.drain_ms),
                resolution,
                max_steps,
                retries,
                flows,
                dscp,
                batch: common.batch,
                rx_mode: common.rx_mode,
            };
            let report = compare::run(&spec);
            let text = compare::markdown(&report, reference.as_deref());
            write_outputs(&report, &text, json, md)
        }
        Cmd::Shaping {
            scenario,
            paths,
            streams,
            expect_mbit,
            trial_ms,
            repeat,
            json,
            md,
            common,
        } => {
            if expect_mbit.len() != streams.len() {
                eprintln!(
                    "weir-bench: --expect-mbit has {} value(s) for {} stream(s); give one per stream",
                    expect_mbit.len(),
                    streams.len()
                );
                return ExitCode::from(2);
            }
            let spec = ShapingSpec {
                scenario,
                paths,
                streams,
                expect_mbit,
                trial: Duration::from_millis(trial_ms),
                repeat,
                drain: Duration::from_millis(common.drain_ms),
                batch: common.batch,
                rx_mode: common.rx_mode,
            };
            let report = shaping::run(&spec);
            let text = shaping::markdown(&report);
            write_outputs(&report, &text, json, md)
        }
        Cmd::Differential {
            trees,
            seed,
            named,
            weir,
            lab,
            prefix,
            dir,
            trial_ms,
            tcp_window_ms,
            repeat,
            attempts,
            tolerance,
            tcp_tolerance,
            json,
            md,
        } => {
            let mut specs: Vec<TreeSpec> = (0..trees)
                .map(|k| TreeSpec::Seed(seed.wrapping_add(k)))
                .collect();
            specs.extend(named);
            if specs.is_empty() {
                eprintln!("weir-bench: differential: no trees (give --trees N and/or --tree …)");
                return ExitCode::from(2);
            }
            let weir = weir_binary(weir);
            if !weir.is_file() {
                eprintln!(
                    "weir-bench: differential: no weir binary at {} (cargo build --release -p weir --bin weir, or --weir / $WEIR_BIN)",
                    weir.display()
                );
                return ExitCode::from(2);
            }
            let spec = DiffSpec {
                trees: specs,
                weir,
                lab_sh: lab.unwrap_or_else(|| {
                    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/lab.sh")
                }),
                prefix,
                dir,
                trial: Duration::from_millis(trial_ms),
                tcp_window: Duration::from_millis(tcp_window_ms),
                repeat,
                attempts,
                tolerance_pts: tolerance,
                tcp_tolerance_pts: tcp_tolerance,
                sim_s: 6,
            };
            match differential::run(&spec, &mut |l| eprintln!("weir-bench: {l}")) {
                Ok(report) => {
                    let text = differential::markdown(&report);
                    let rc = write_outputs(&report, &text, json, md);
                    if report.failed > 0 {
                        ExitCode::FAILURE
                    } else {
                        rc
                    }
                }
                Err(e) => {
                    eprintln!("weir-bench: differential: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn print_trial(r: &trial::TrialResult) {
    println!(
        "{} → {}: {:.2} s, foreign {}, receiver socket drops {}/{}/{}, sender late max {:.0} µs, cpu tx {:.2} s rx {:.2} s machine {:.2} s (steal {:.2} s)",
        r.tx,
        r.rx,
        r.duration_s,
        r.foreign,
        r.rx_socket.rx_dropped,
        r.rx_socket.rx_ring_full,
        r.rx_socket.fill_ring_empty,
        r.tx_late_max_us,
        r.tx_cpu_s,
        r.rx_cpu_s,
        r.machine_busy_s,
        r.machine_steal_s
    );
    println!(
        "{:>6} {:>5} {:>6} {:>12} {:>10} {:>10} {:>8} {:>12} {:>12} {:>12} {:>8} {:>9} {:>9} {:>9}",
        "stream",
        "dscp",
        "size",
        "rate pps",
        "sent",
        "received",
        "loss %",
        "sent pps",
        "recv pps",
        "span pps",
        "L2 Gb/s",
        "p50 µs",
        "p99 µs",
        "max µs"
    );
    for s in &r.streams {
        println!(
            "{:>6} {:>5} {:>6} {:>12} {:>10} {:>10} {:>8.4} {:>12.0} {:>12.0} {:>12.0} {:>8.3} {:>9.1} {:>9.1} {:>9.1}",
            s.stream,
            s.dscp,
            s.size,
            s.rate_pps.map_or("flat".into(), |r| format!("{r:.0}")),
            s.sent,
            s.received,
            s.loss * 100.0,
            s.sent_pps,
            s.received_pps,
            s.rx_span_pps,
            s.l2_gbps,
            s.latency_us.p50,
            s.latency_us.p99,
            s.latency_us.max
        );
    }
}
