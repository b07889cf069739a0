//! `weir`: the operator's command.
//!
//! Subcommands: `run` (shape real traffic between port pairs over AF_XDP),
//! `check` (validate a configuration and print the tree), `simulate` (run
//! the real shaping core in virtual time) and `tc` (the equivalent kernel
//! tc script, for side-by-side comparisons).

use clap::{Parser, Subcommand};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "weir",
    version,
    about = "Userspace AF_XDP packet shaper: HTB with exact Linux semantics"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Shape traffic: attach to the configured port pairs and forward
    /// between them through the HTB trees. Prints where each tree runs,
    /// then `ready`; per-class counters on SIGUSR1 and every
    /// --stats-interval; the final report on SIGINT/SIGTERM.
    Run {
        /// The TOML configuration.
        #[arg(short, long)]
        config: PathBuf,
        /// Print per-class counters this often (e.g. 1s, 500ms).
        #[arg(long, value_parser = parse_interval)]
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
    },
    /// Print the kernel tc commands (a `tc -batch` script) that build the
    /// same HTB tree on DEV, for a kernel twin of weir's path.
    Tc {
        /// The TOML configuration.
        #[arg(short, long)]
        config: PathBuf,
        /// The tree to translate.
        #[arg(long)]
        tree: String,
        /// The interface the kernel qdisc goes on.
        #[arg(long)]
        dev: String,
        /// Replace leaf kinds the kernel may lack (sfq, red, fq_codel) by a
        /// pfifo of the same depth.
        #[arg(long, value_enum, default_value = "none")]
        leaf_fallback: Fallback,
    },
    /// Validate a configuration file and print its trees. Exit 0 when valid,
    /// 2 with FILE:LINE:COL diagnostics otherwise.
    Check {
        /// The TOML configuration.
        file: PathBuf,
    },
    /// Run the shaping core in virtual time on generated traffic and print
    /// what each class achieves (offered, achieved, drops, marks, sojourn).
    Simulate {
        /// The TOML configuration.
        config: PathBuf,
        /// The traffic description (TOML).
        #[arg(long)]
        traffic: PathBuf,
        /// Virtual duration, e.g. 10s (overrides the traffic file).
        #[arg(long)]
        duration: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Fallback {
    None,
    Pfifo,
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    let t = weir_control::config::Time::parse_default_secs(s).map_err(|e| e.to_string())?;
    let d = Duration::from_nanos(t.ns());
    if d < Duration::from_millis(10) {
        return Err(format!("{s} is too short; expected at least 10ms"));
    }
    Ok(d)
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    match cli.command {
        Command::Run {
            config,
            stats_interval,
            json,
            report,
            log_json,
        } => {
            init_logs(log_json);
            let opts = weir_control::run::RunOptions {
                config,
                stats_interval,
                json,
                report,
            };
            // Unlocked handles: the workers log to stderr while this thread waits,
            // so holding its lock here would stall them.
            let code =
                weir_control::run::cli_run(&opts, &mut std::io::stdout(), &mut std::io::stderr());
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
        Command::Tc {
            config,
            tree,
            dev,
            leaf_fallback,
        } => {
            let fallback = match leaf_fallback {
                Fallback::None => weir_control::tc::LeafFallback::None,
                Fallback::Pfifo => weir_control::tc::LeafFallback::Pfifo,
            };
            match weir_control::tc::cli_tc(&config, &tree, &dev, fallback) {
                Ok(script) => {
                    let _ = stdout.lock().write_all(script.as_bytes());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    let _ = writeln!(stderr.lock(), "weir tc: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Check { file } => {
            let code =
                weir_control::config::cli_check(&file, &mut stdout.lock(), &mut stderr.lock());
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
        Command::Simulate {
            config,
            traffic,
            duration,
            json,
        } => {
            let mut out = stdout.lock();
            match weir_control::sim::cli_simulate(
                &config,
                &traffic,
                duration.as_deref(),
                json,
                &mut out,
            ) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    let _ = out.flush();
                    let _ = writeln!(stderr.lock(), "weir simulate: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
    }
}
