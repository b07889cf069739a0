//! weir-sim: the virtual-time simulator behind `weir simulate`.
//!
//! It runs the real decision core — [`weir_dataplane::shaper::Shaper`]:
//! parse → classify → HTB → leaf qdiscs — built from a config tree, fed with
//! generated frames (open-loop CBR / on-off / Poisson sources and
//! window-based TCP-like senders), on a virtual clock that jumps to the next
//! event. Operators use it to preview a policy; the test suite uses it to
//! prove shaping semantics (rates, borrowing, ceilings, AQM delay) exactly
//! and fast. See `docs/simulator.md`.
//!
//! It returns a value and prints nothing: [`run`] gives a [`Report`], whose
//! table form is [`Report::table`] and whose JSON form is its `Serialize`;
//! the `weir` binary (`control/cli/src/simulate.rs`) reads the files and
//! prints. Depends on the core and weir-config only (no libbpf, no SQLite).
//!
//! - `traffic`: the traffic file, from TOML to the checked [`Traffic`].
//! - `synth`: the Ethernet frames sources send, built from header templates.
//! - `engine`: the event loop, its sources and TCP senders, the accounting.
//! - `report`: the [`Report`] and its table.
//! - `units`: the traffic file's rate and duration parsers.

mod engine;
mod report;
pub mod synth;
pub mod traffic;
pub mod units;

use weir_dataplane::shaper::{Shaper, ShaperError, ShaperSpec};

use weir_config::Config;

pub use report::{
    AppReport, ClassReport, EngineReport, FrameReport, HtbClassReport, Report, Sojourn,
    SourceReport, Table, TcpReport, Timeline, Volume,
};
pub use traffic::{
    Pace, Payload, PayloadKind, Sizes, Source, SourceKind, TcpParams, Traffic, TrafficError, Vary,
};

/// Overrides of what the traffic file says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimOptions {
    /// Run length, ns.
    pub duration: Option<u64>,
    /// Start of the measured window, ns. When only `duration` is given and
    /// the traffic file's warmup does not fit in it, the run measures from 0.
    pub warmup: Option<u64>,
    pub seed: Option<u64>,
    /// Config tree to drive.
    pub tree: Option<String>,
    /// Per-class timeline bucket width, ns (None: 1 ms; Some(0): keep no
    /// timeline). Coarsened automatically when classes × buckets would
    /// exceed 16 M buckets.
    pub timeline_bucket: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("the config has no tree named '{name}' (trees: {known})")]
    UnknownTree { name: String, known: String },
    #[error("the config has no tree to simulate")]
    NoTree,
    #[error("cannot build the shaper: {0:?}")]
    Shaper(ShaperError),
    #[error("warmup ({warmup_ns} ns) must be shorter than the run ({duration_ns} ns)")]
    Window { warmup_ns: u64, duration_ns: u64 },
    #[error(
        "frame accounting does not balance: shaper received {received}, sent {sent}, \
         dropped {dropped}, queued {queued}; the simulator offered {offered}, saw {seen_sent} \
         sent and {seen_dropped} dropped"
    )]
    Accounting {
        received: u64,
        sent: u64,
        dropped: u64,
        queued: u64,
        offered: u64,
        seen_sent: u64,
        seen_dropped: u64,
    },
}

fn params(traffic: &Traffic, opts: &SimOptions) -> Result<engine::RunParams, SimError> {
    let duration = opts.duration.unwrap_or(traffic.duration);
    let mut warmup = opts.warmup.unwrap_or(traffic.warmup);
    if opts.duration.is_some() && opts.warmup.is_none() && warmup >= duration {
        // A shortened run (`--duration`) measures from the start rather than
        // failing on the file's warm-up; the report says where it measured.
        warmup = 0;
    }
    if warmup >= duration {
        return Err(SimError::Window {
            warmup_ns: warmup,
            duration_ns: duration,
        });
    }
    Ok(engine::RunParams {
        duration,
        warmup,
        seed: opts.seed.unwrap_or(traffic.seed),
        bucket_ns: opts.timeline_bucket.unwrap_or(1_000_000),
    })
}

/// The seed a run uses (the option, else the traffic file's): the config
/// layer seeds the tree's SFQ / FQ-CoDel / RED with it.
pub fn run_seed(traffic: &Traffic, opts: &SimOptions) -> u64 {
    opts.seed.unwrap_or(traffic.seed)
}

/// Simulate `traffic` through a shaper built from `spec`. `labels[i]` names
/// class `i` in the report; `tree` names the tree.
pub fn run_spec(
    tree: &str,
    spec: &ShaperSpec,
    labels: &[String],
    traffic: &Traffic,
    opts: &SimOptions,
) -> Result<Report, SimError> {
    let p = params(traffic, opts)?;
    let mut shaper = Shaper::new(spec, 0).map_err(SimError::Shaper)?;
    engine::simulate(&mut shaper, tree, spec, labels, traffic, p)
}

/// Simulate `traffic` through the config's tree (the option's, else the
/// traffic file's `tree`, else the first one), seeded with the run's seed.
pub fn run(config: &Config, traffic: &Traffic, opts: &SimOptions) -> Result<Report, SimError> {
    let tree = match opts.tree.as_deref().or(traffic.tree.as_deref()) {
        Some(name) => config.tree(name).ok_or_else(|| SimError::UnknownTree {
            name: name.to_string(),
            known: config
                .trees
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })?,
        None => config.trees.first().ok_or(SimError::NoTree)?,
    };
    let spec = tree.shaper_spec(run_seed(traffic, opts));
    let labels: Vec<String> = (0..tree.classes.len() as u32)
        .map(|i| tree.label(i))
        .collect();
    run_spec(&tree.name, &spec, &labels, traffic, opts)
}
