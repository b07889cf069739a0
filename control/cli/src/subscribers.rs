//! `weir subscribers`: the subscriber files ISPs keep (LibreQoS's
//! ShapedDevices.csv and network.json).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::exit;

#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// Validate a ShapedDevices.csv (and its network.json) and summarize
    /// it: circuits, devices and addresses, and per node of the hierarchy
    /// its limits, the circuits under it and how far their plans
    /// oversubscribe it. Exit 0 when valid, 2 with FILE:LINE:COL
    /// diagnostics otherwise.
    Check {
        /// LibreQoS's ShapedDevices.csv: one row per device, rows with the
        /// same Circuit ID are one circuit.
        devices: PathBuf,
        /// LibreQoS's network.json: the sites and access points circuits
        /// hang under (`Parent Node`), each with its own limits. Without
        /// it, every circuit must hang under the root (Parent Node empty)
        /// for the check to pass.
        #[arg(long)]
        network: Option<PathBuf>,
    },
}

pub fn main(cmd: Cmd) -> ExitCode {
    match cmd {
        Cmd::Check { devices, network } => exit(weir_config::subscribers::cli_check(
            &devices,
            network.as_deref(),
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        )),
    }
}
