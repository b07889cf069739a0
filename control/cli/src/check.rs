//! `weir check`: validate a configuration and print its trees.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::exit;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The TOML configuration.
    file: PathBuf,
}

pub fn main(args: Args) -> ExitCode {
    check(&args.file)
}

/// Also `weir run --check-config`.
pub fn check(file: &Path) -> ExitCode {
    exit(weir_config::cli_check(
        file,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    ))
}
