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

mod client;
mod history;
mod simulate;

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
    },
    /// Show the running classes, leaf qdiscs or filters, as `tc class show`
    /// / `tc qdisc show` / `tc filter show` would (asks a running `weir run`).
    Show {
        /// class, qdisc or filter.
        #[arg(value_enum)]
        what: ShowArg,
        /// With statistics (tc's -s).
        #[arg(short = 's', long)]
        stats: bool,
        /// JSON (tc's -j).
        #[arg(short = 'j', long)]
        json: bool,
        /// Only this tree.
        #[arg(long)]
        tree: Option<String>,
        /// The API socket of the `weir run` to ask.
        #[arg(long, default_value = weir_api::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Change a running class, tc style: `weir class change 1:10 rate 10mbit
    /// ceil 20mbit`. Nothing queued is dropped.
    Class {
        #[command(subcommand)]
        cmd: ClassCmd,
    },
    /// Read the configuration file again and apply it (SIGHUP does the same)
    ///
    /// Rates, ceilings, bursts, prios and quanta change in place, class by
    /// class, nothing queued dropped. A tree whose classes, leaf qdiscs,
    /// filters, default class or tree keys changed is rebuilt and swapped in
    /// between two batches: queues of classes that are still leaves move
    /// over, only packets of removed classes are dropped (`flushed`), and
    /// the tree's class counters start from zero. A file with errors changes
    /// nothing; so does one that changes `[[pair]]`, `[dataplane]` or the set
    /// of trees (that needs a restart). Prints every change and rebuild, or
    /// why nothing was applied.
    Reload {
        /// The API socket of the `weir run` to ask.
        #[arg(long, default_value = weir_api::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// A live view of every class: rate, share of ceil, drops, backlog.
    Top {
        /// Refresh period.
        #[arg(long, value_parser = parse_interval, default_value = "1s")]
        interval: Duration,
        /// Stop after this many refreshes (default: until Ctrl-C).
        #[arg(long)]
        count: Option<u64>,
        /// The API socket of the `weir run` to ask.
        #[arg(long, default_value = weir_api::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Statistics from the history database: per class and interface
    /// avg/min/max/median/stddev/p95 of rate and utilization over a range,
    /// or the SLA violations (--violations), or the policy adjustments
    /// (--adjustments). Reads the database while `weir run` writes it.
    History(history::HistoryArgs),
    /// Write man pages (roff) for weir and every subcommand into DIR.
    Man {
        /// Output directory (created if missing).
        #[arg(long, default_value = "target/man")]
        out: PathBuf,
    },
    /// Print the kernel tc commands (a `tc -batch` script) that build the
    /// same HTB tree on DEV, for a kernel twin of weir's path
    ///
    /// What the kernel cannot express (VLAN filters, class minors above
    /// ffff) is an error. A negative tree `overhead`, which tc refuses as
    /// htb's `overhead` (an unsigned 16-bit value), is translated: it goes
    /// on the root qdisc's size table (`stab overhead N`), with a comment
    /// in the script.
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

#[derive(Subcommand, Debug)]
enum ClassCmd {
    /// CLASSID then any of: rate R, ceil C, burst B, cburst B, prio P,
    /// quantum Q (tc units).
    Change {
        /// Class id (1:10) or name.
        classid: String,
        /// The tree, when the class id is in more than one.
        #[arg(long)]
        tree: Option<String>,
        /// Parameters as tc takes them: `rate 10mbit ceil 20mbit …`.
        #[arg(num_args = 1..)]
        params: Vec<String>,
        /// The API socket of the `weir run` to ask.
        #[arg(long, default_value = weir_api::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum ShowArg {
    Class,
    Qdisc,
    Filter,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Fallback {
    None,
    Pfifo,
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    let t = weir_config::Time::parse_default_secs(s).map_err(|e| e.to_string())?;
    let d = Duration::from_nanos(t.ns());
    if d < Duration::from_millis(10) {
        return Err(format!("{s} is too short; expected at least 10ms"));
    }
    Ok(d)
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

/// weir.1 and one page per subcommand (weir-run.1, …), from the clap
/// definitions, so the pages never disagree with `--help`.
fn write_man_pages(dir: &std::path::Path) -> std::io::Result<usize> {
    use clap::CommandFactory;
    std::fs::create_dir_all(dir)?;
    let cmd = Cli::command();
    let mut pages = vec![("weir".to_string(), cmd.clone())];
    for sub in cmd.get_subcommands() {
        let name = format!("weir-{}", sub.get_name());
        pages.push((name.clone(), sub.clone().name(name)));
    }
    for (name, page) in &pages {
        let mut roff = Vec::new();
        clap_mangen::Man::new(page.clone()).render(&mut roff)?;
        std::fs::write(dir.join(format!("{name}.1")), roff)?;
    }
    Ok(pages.len())
}

fn exit(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
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
            socket,
            no_api,
            metrics,
            check_config,
            history,
            clock_file,
            http_token_file,
        } => {
            if check_config {
                return exit(weir_config::cli_check(
                    &config,
                    &mut stdout.lock(),
                    &mut stderr.lock(),
                ));
            }
            init_logs(log_json);
            let opts = weir_daemon::RunOptions {
                config,
                stats_interval,
                json,
                report,
                socket: (!no_api).then_some(socket),
                metrics: metrics.0,
                history,
                clock_file,
                http_token_file,
            };
            // Unlocked handles: the workers log to stderr while this thread waits,
            // so holding its lock here would stall them.
            let code = weir_daemon::cli_run(&opts, &mut std::io::stdout(), &mut std::io::stderr());
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
        Command::History(args) => {
            // The one clock read: what `--since 1h` counts back from.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            exit(history::cli_history(
                &args,
                now,
                &mut stdout.lock(),
                &mut stderr.lock(),
            ))
        }
        Command::Man { out } => match write_man_pages(&out) {
            Ok(n) => {
                let _ = writeln!(stdout.lock(), "{n} man page(s) in {}", out.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                let _ = writeln!(stderr.lock(), "weir man: {}: {e}", out.display());
                ExitCode::from(1)
            }
        },
        Command::Show {
            what,
            stats,
            json,
            tree,
            socket,
        } => {
            let what = match what {
                ShowArg::Class => weir_api::ShowWhat::Class,
                ShowArg::Qdisc => weir_api::ShowWhat::Qdisc,
                ShowArg::Filter => weir_api::ShowWhat::Filter,
            };
            let req = weir_api::Request::Show {
                what,
                stats,
                json,
                tree,
            };
            exit(client::ask(
                &socket,
                &req,
                &mut stdout.lock(),
                &mut stderr.lock(),
            ))
        }
        Command::Class {
            cmd:
                ClassCmd::Change {
                    classid,
                    tree,
                    params,
                    socket,
                },
        } => {
            let code = match client::class_change_request(&classid, tree, &params) {
                Ok(req) => client::ask(&socket, &req, &mut stdout.lock(), &mut stderr.lock()),
                Err(e) => {
                    let _ = writeln!(stderr.lock(), "weir class change: {e}");
                    2
                }
            };
            exit(code)
        }
        Command::Reload { socket } => exit(client::ask(
            &socket,
            &weir_api::Request::Reload,
            &mut stdout.lock(),
            &mut stderr.lock(),
        )),
        Command::Top {
            interval,
            count,
            socket,
        } => exit(client::top(
            &socket,
            interval,
            count,
            &mut stdout.lock(),
            &mut stderr.lock(),
        )),
        Command::Tc {
            config,
            tree,
            dev,
            leaf_fallback,
        } => {
            let fallback = match leaf_fallback {
                Fallback::None => weir_tc::LeafFallback::None,
                Fallback::Pfifo => weir_tc::LeafFallback::Pfifo,
            };
            match weir_tc::cli_tc(&config, &tree, &dev, fallback) {
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
            let code = weir_config::cli_check(&file, &mut stdout.lock(), &mut stderr.lock());
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
        Command::Simulate {
            config,
            traffic,
            duration,
            json,
        } => simulate::run(
            &simulate::Args {
                config: &config,
                traffic: &traffic,
                duration: duration.as_deref(),
                json,
            },
            &mut stdout.lock(),
            &mut stderr.lock(),
        ),
    }
}
