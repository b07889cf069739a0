//! `weir`: the operator's command. This file holds the command line's
//! shape; each subcommand's options and what it does are in its module:
//!
//! - `run` ([`run`]): shape traffic between port pairs over AF_XDP;
//! - `check` ([`check`]): validate a configuration and print its trees;
//! - `simulate`: run the real shaping core in virtual time;
//! - `tc` ([`tc`]): the equivalent kernel tc script;
//! - `show`, `class change`, `reload`, `whois`, `top` ([`remote`]): ask a running
//!   `weir run` over its API socket;
//! - `history` ([`history`]): statistics from the history database;
//! - `man` ([`man`]): the man pages.

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use std::time::Duration;

mod check;
mod client;
mod history;
mod man;
mod remote;
mod run;
mod simulate;
mod subscribers;
mod tc;

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
    Run(run::Args),
    /// Show the running classes, leaf qdiscs or filters, as `tc class show`
    /// / `tc qdisc show` / `tc filter show` would, or the apps and the top
    /// flows of trees with apps (asks a running `weir run`).
    Show(remote::ShowArgs),
    /// Change a running class, tc style: `weir class change 1:10 rate 10mbit
    /// ceil 20mbit`. Nothing queued is dropped.
    Class {
        #[command(subcommand)]
        cmd: remote::ClassCmd,
    },
    /// Read the configuration file again and apply it (SIGHUP does the same)
    ///
    /// Rates, ceilings, bursts, prios and quanta change in place, class by
    /// class, nothing queued dropped. Leaves added or removed (subscribers)
    /// and filters change their tree in place too: only packets of removed
    /// classes are dropped (`flushed`), every other class keeps its queue,
    /// tokens and counters. A tree whose inner classes, leaf qdiscs, apps,
    /// default class or tree keys changed (or with no spare room) is rebuilt
    /// and swapped in between two batches: queues of classes that are still
    /// leaves move over, and the tree's class counters start from zero. A file with errors changes
    /// nothing; so does one that changes `[[pair]]`, `[xdp]` or the set
    /// of trees (that needs a restart). Prints every change and rebuild, or
    /// why nothing was applied.
    Reload(remote::ReloadArgs),
    /// Which subscriber circuit holds an address (from the [subscribers]
    /// files), and its class, rates and counters in each direction (asks a
    /// running `weir run`).
    Whois(remote::WhoisArgs),
    /// Add, change or remove one circuit of [subscribers] in the running
    /// weir (its files are not written: a reload reads them again).
    /// Changed plans apply in place; an added or removed circuit rebuilds
    /// its trees, every other class keeping its queue and tokens.
    Circuit {
        #[command(subcommand)]
        cmd: remote::CircuitCmd,
    },
    /// A live view of every class: rate, share of ceil, drops, backlog.
    Top(remote::TopArgs),
    /// Statistics from the history database: per class and interface
    /// avg/min/max/median/stddev/p95 of rate and utilization over a range,
    /// or the SLA violations (--violations), or the policy adjustments
    /// (--adjustments). Reads the database while `weir run` writes it.
    History(history::HistoryArgs),
    /// Write man pages (roff) for weir and every subcommand into DIR.
    Man(man::Args),
    /// Print the kernel tc commands (a `tc -batch` script) that build the
    /// same HTB tree on DEV, for a kernel twin of weir's path
    ///
    /// What the kernel cannot express (VLAN filters, class minors above
    /// ffff) is an error. A negative tree `overhead`, which tc refuses as
    /// htb's `overhead` (an unsigned 16-bit value), is translated: it goes
    /// on the root qdisc's size table (`stab overhead N`), with a comment
    /// in the script.
    Tc(tc::Args),
    /// Validate a configuration file and print its trees. Exit 0 when valid,
    /// 2 with FILE:LINE:COL diagnostics otherwise.
    Check(check::Args),
    /// The subscriber files ISPs keep: `weir subscribers check
    /// ShapedDevices.csv --network network.json`.
    Subscribers {
        #[command(subcommand)]
        cmd: subscribers::Cmd,
    },
    /// Run the shaping core in virtual time on generated traffic and print
    /// what each class achieves (offered, achieved, drops, marks, sojourn).
    Simulate(simulate::Cmd),
}

/// Also used by `run --stats-interval` and `top --interval`.
fn parse_interval(s: &str) -> Result<Duration, String> {
    let t = weir_config::Time::parse_default_secs(s).map_err(|e| e.to_string())?;
    let d = Duration::from_nanos(t.ns());
    if d < Duration::from_millis(10) {
        return Err(format!("{s} is too short; expected at least 10ms"));
    }
    Ok(d)
}

fn exit(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run(args) => run::main(args),
        Command::Show(args) => remote::show(args),
        Command::Class { cmd } => remote::class(cmd),
        Command::Reload(args) => remote::reload(args),
        Command::Whois(args) => remote::whois(args),
        Command::Circuit { cmd } => remote::circuit(cmd),
        Command::Top(args) => remote::top(args),
        Command::History(args) => {
            // The one clock read: what `--since 1h` counts back from.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            exit(history::cli_history(
                &args,
                now,
                &mut std::io::stdout().lock(),
                &mut std::io::stderr().lock(),
            ))
        }
        Command::Man(args) => man::main(args),
        Command::Tc(args) => tc::main(args),
        Command::Check(args) => check::main(args),
        Command::Simulate(cmd) => simulate::main(cmd),
        Command::Subscribers { cmd } => subscribers::main(cmd),
    }
}
