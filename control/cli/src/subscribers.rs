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
    /// Write a generated ShapedDevices.csv and network.json into DIR, for
    /// trying weir at scale: one device per circuit with IPv4 addresses
    /// from 198.18.0.1 up and an IPv6 /64 each, plans cycling through four
    /// tiers, access points ten to a site. Point a [subscribers] table at
    /// the files.
    Generate {
        /// Circuits to generate (at most 131,071 stay in 198.18.0.0/15).
        #[arg(long, default_value_t = 10_000)]
        circuits: u32,
        /// Access points the circuits are spread over (0: all under the
        /// root, and an empty network.json).
        #[arg(long, default_value_t = 200)]
        aps: u32,
        /// The directory to write ShapedDevices.csv and network.json into
        /// (made if missing).
        dir: PathBuf,
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
        Cmd::Generate { circuits, aps, dir } => {
            let g = weir_config::subscribers::Synth::new(circuits, aps);
            let write = || -> std::io::Result<()> {
                std::fs::create_dir_all(&dir)?;
                std::fs::write(dir.join("ShapedDevices.csv"), g.devices_csv())?;
                std::fs::write(dir.join("network.json"), g.network_json())
            };
            match write() {
                Ok(()) => {
                    println!(
                        "{}: ShapedDevices.csv ({circuits} circuits) and network.json ({aps} access points)",
                        dir.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("weir subscribers generate: {}: {e}", dir.display());
                    exit(1)
                }
            }
        }
    }
}
