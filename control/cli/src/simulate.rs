//! `weir simulate CONFIG --traffic TRAFFIC [--duration D] [--json]`: read
//! the two files, run the simulator ([`weir_sim::run`], which returns a
//! report and prints nothing) and print the report as a table per class and
//! per source, or as JSON.
//!
//! Config warnings go to stderr so that `--json` output stays JSON. Every
//! failure is one `weir simulate: …` message on stderr and exit code 2.

use std::fmt::Display;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use weir_sim::{SimOptions, Traffic};

#[derive(clap::Args, Debug)]
pub struct Cmd {
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
}

pub fn main(cmd: Cmd) -> ExitCode {
    run(
        &Args {
            config: &cmd.config,
            traffic: &cmd.traffic,
            duration: cmd.duration.as_deref(),
            json: cmd.json,
        },
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    )
}

/// What the subcommand's arguments say.
pub struct Args<'a> {
    pub config: &'a Path,
    pub traffic: &'a Path,
    /// `--duration`, as the user wrote it.
    pub duration: Option<&'a str>,
    pub json: bool,
}

/// Run the subcommand: the report on `out`, warnings and errors on `err`.
pub fn run(args: &Args<'_>, out: &mut dyn Write, err: &mut dyn Write) -> ExitCode {
    match simulate(args, out, err) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            // Whatever part of the report was written comes before the error.
            let _ = out.flush();
            let _ = writeln!(err, "weir simulate: {message}");
            ExitCode::from(2)
        }
    }
}

/// The steps in order; an error is the message to print.
fn simulate(args: &Args<'_>, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), String> {
    let loaded = weir_config::load(args.config).map_err(|diags| join_lines(&diags))?;
    for w in &loaded.warnings {
        // A warning that cannot be written must not stop the run.
        let _ = writeln!(err, "warning: {w}");
    }
    let traffic = Traffic::load(args.traffic).map_err(|e| e.to_string())?;
    let opts = SimOptions {
        duration: args
            .duration
            .map(weir_sim::units::parse_duration)
            .transpose()
            .map_err(|e| format!("--duration: {e}"))?,
        ..SimOptions::default()
    };
    let report = weir_sim::run(&loaded.config, &traffic, &opts).map_err(|e| {
        format!(
            "simulating {} with {}: {e}",
            args.config.display(),
            args.traffic.display()
        )
    })?;
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &report).map_err(|e| e.to_string())?;
        writeln!(out).map_err(|e| e.to_string())
    } else {
        write!(out, "{}", report.table()).map_err(|e| e.to_string())
    }
}

fn join_lines<T: Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn repo(path: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(path)
    }

    /// (stdout, stderr, exit code) of one run.
    fn simulate(
        config: &str,
        traffic: &str,
        duration: Option<&str>,
        json: bool,
    ) -> (String, String, ExitCode) {
        let (config, traffic) = (repo(config), repo(traffic));
        let args = Args {
            config: &config,
            traffic: &traffic,
            duration,
            json,
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(&args, &mut out, &mut err);
        (
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
            code,
        )
    }

    #[test]
    fn prints_the_table_and_warnings_apart() {
        let (out, err, code) = simulate(
            "config/seed-1.2-htb.toml",
            "config/traffic/seed-1.2-default.toml",
            Some("200ms"),
            false,
        );
        assert_eq!(code, ExitCode::SUCCESS, "{err}");
        assert!(out.starts_with("tree eth0: 0.200 s simulated"), "{out}");
        assert!(out.contains("1:30 (low)"), "{out}");
        assert!(out.contains("(balanced)"), "{out}");
        // The shipped config's quantum warnings go to stderr only.
        assert!(err.lines().all(|l| l.starts_with("warning: ")), "{err}");
        assert!(err.contains("quantum"), "{err}");
        assert!(!out.contains("warning"), "{out}");
    }

    #[test]
    fn json_is_the_whole_report_and_nothing_else() {
        let (out, _, code) = simulate(
            "config/seed-1.3-classify.toml",
            "config/traffic/seed-1.3-mix.toml",
            Some("200ms"),
            true,
        );
        assert_eq!(code, ExitCode::SUCCESS);
        assert!(out.ends_with("}\n"), "{out}");
        let v: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
        assert_eq!(v["duration_ns"], 200_000_000u64);
        assert_eq!(v["frames"]["balanced"], true);
    }

    #[test]
    fn each_failure_is_one_message_and_code_2() {
        let cases = [
            (
                "config/seed-1.2-htb.toml",
                "config/traffic/no-such-file.toml",
                None,
                "weir simulate: ",
                "config/traffic/no-such-file.toml:0:0: cannot read: ",
            ),
            (
                "config/no-such-config.toml",
                "config/traffic/seed-1.2-default.toml",
                None,
                "weir simulate: ",
                "config/no-such-config.toml:0:0: can't read the file: ",
            ),
            (
                "config/seed-1.2-htb.toml",
                "config/traffic/seed-1.2-default.toml",
                Some("10"),
                "weir simulate: --duration: '10': ",
                "a duration needs a unit",
            ),
            (
                "config/seed-1.2-htb.toml",
                "config/traffic/lab-up.toml",
                Some("100ms"),
                "weir simulate: simulating ",
                "config/traffic/lab-up.toml: the config has no tree named 'up' (trees: eth0)\n",
            ),
        ];
        for (config, traffic, duration, start, part) in cases {
            let (out, err, code) = simulate(config, traffic, duration, false);
            assert_eq!(code, ExitCode::from(2), "{config} {traffic}: {err}");
            assert_eq!(out, "", "{config} {traffic}");
            let last = err.lines().last().unwrap_or_default();
            assert!(last.starts_with(start), "{config} {traffic}: {err}");
            assert!(err.contains(part), "{config} {traffic}: {err}");
            assert_eq!(
                err.lines().filter(|l| !l.starts_with("warning: ")).count(),
                1,
                "{err}"
            );
        }
    }
}
