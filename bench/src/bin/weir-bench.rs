//! weir-bench: an AF_XDP traffic generator and receiver, and the RFC
//! 2544-style comparison of several paths built on it.
//!
//!   weir-bench trial   --path SPEC --stream SPEC [--stream SPEC …] [--duration-ms N] [--json]
//!   weir-bench compare --path SPEC … [--baseline SPEC] [--sizes 64,1518] [--json FILE] [--md FILE]
//!   weir-bench shaping --scenario NAME --path SPEC … --stream SPEC … --expect-mbit X,Y,… [--json FILE] [--md FILE]
//!
//! Needs root (AF_XDP sockets, XDP programs, network namespaces). See
//! docs/performance.md for the lab this runs in (bench/run.sh).

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use weir_bench::traffic::compare::{self, CompareSpec};
use weir_bench::traffic::frame::SizeMix;
use weir_bench::traffic::shaping::{self, ShapingSpec};
use weir_bench::traffic::spec::{parse_stream, PathSpec};
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
