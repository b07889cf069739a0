//! `weir run`: shape traffic between the configured port pairs (the
//! control side is the weir-daemon crate).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::exit;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The TOML configuration.
    #[arg(short, long)]
    config: PathBuf,
    /// Print per-class counters this often (e.g. 1s, 500ms).
    #[arg(long, value_parser = crate::parse_interval)]
    stats_interval: Option<Duration>,
    /// Stats dumps and the final report as one JSON line each.
    #[arg(long)]
    json: bool,
    /// Also write the final report (JSON) to this file.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Logs (stderr) as JSON lines instead of text.
    #[arg(long)]
    log_json: bool,
    /// Only check the configuration (as `weir check`) and exit: 0 good,
    /// 2 errors. For `ExecStartPre=` and deployment scripts.
    #[arg(long)]
    check_config: bool,
    /// The operator API's unix socket (mode 0600).
    #[arg(long, default_value = weir_api::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Run without the operator API.
    #[arg(long, conflicts_with = "socket")]
    no_api: bool,
    /// Serve Prometheus/OpenMetrics on this address (GET /metrics);
    /// `none` to not serve them.
    #[arg(long, default_value = weir_daemon::metrics::DEFAULT_ADDR, value_parser = parse_metrics_addr)]
    metrics: MetricsAddr,
    /// Allow mutating API calls over HTTP (`POST /api` with
    /// `Authorization: Bearer TOKEN`) with the token in this file (mode
    /// 0600, first line). Without it the HTTP listener is read-only.
    #[arg(long)]
    http_token_file: Option<PathBuf>,
    /// The history database (overrides `[history] path`); `none` to
    /// keep no history.
    #[arg(long)]
    history: Option<PathBuf>,
    /// Lab testing: read the local time that `[[policy]]` schedules
    /// see from this file (`mon 08:00`, re-read every second) instead
    /// of the system clock.
    #[arg(long, hide = true)]
    clock_file: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug)]
struct MetricsAddr(Option<std::net::SocketAddr>);

fn parse_metrics_addr(s: &str) -> Result<MetricsAddr, String> {
    if s == "none" {
        return Ok(MetricsAddr(None));
    }
    s.parse()
        .map(|a| MetricsAddr(Some(a)))
        .map_err(|_| format!("bad address \"{s}\"; expected IP:PORT like 127.0.0.1:9469, or none"))
}

fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WEIR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal, never in files or CI logs.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

pub fn main(args: Args) -> ExitCode {
    if args.check_config {
        return crate::check::check(&args.config);
    }
    init_logs(args.log_json);
    let opts = weir_daemon::RunOptions {
        config: args.config,
        stats_interval: args.stats_interval,
        json: args.json,
        report: args.report,
        socket: (!args.no_api).then_some(args.socket),
        metrics: args.metrics.0,
        history: args.history,
        clock_file: args.clock_file,
        http_token_file: args.http_token_file,
    };
    // Unlocked handles: the workers log to stderr while this thread waits,
    // so holding its lock here would stall them.
    exit(weir_daemon::cli_run(
        &opts,
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    ))
}
