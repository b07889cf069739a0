//! `weir tc`: the kernel tc script that builds the same tree (the
//! translation is the weir-tc crate).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
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
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Fallback {
    None,
    Pfifo,
}

pub fn main(args: Args) -> ExitCode {
    let fallback = match args.leaf_fallback {
        Fallback::None => weir_tc::LeafFallback::None,
        Fallback::Pfifo => weir_tc::LeafFallback::Pfifo,
    };
    match weir_tc::cli_tc(&args.config, &args.tree, &args.dev, fallback) {
        Ok(script) => {
            let _ = std::io::stdout().lock().write_all(script.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr().lock(), "weir tc: {e}");
            ExitCode::from(2)
        }
    }
}
