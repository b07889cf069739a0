//! `weir`: the operator's command.
//!
//! Subcommands today: `check` (validate a configuration and print the tree)
//! and `simulate` (run the real shaping core in virtual time). The AF_XDP
//! data path (`weir run`) and the operator API arrive with their issues.

use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    match cli.command {
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
