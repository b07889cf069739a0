//! What the data path is asked to run ([`RunSpec`]: port pairs, their
//! trees, sizes, scheduling) and the checks made on it before anything is
//! attached or allocated.

use std::collections::HashSet;

use weir_dataplane::shaper::ShaperSpec;

use super::{invalid, RunError};
use crate::prog::{PassPrefix, XdpMode};

/// Everything the data path needs to start.
#[derive(Clone, Debug)]
pub struct RunSpec {
    pub pairs: Vec<PairSpec>,
    /// Worker i is pinned to `cores[i % cores.len()]`; empty: not pinned.
    pub cores: Vec<usize>,
    /// Frames read from an rx ring, or dequeued towards a tx ring, at once.
    pub batch: u32,
    /// UMEM frame size: 2048 or 4096 bytes (256 of it is XDP headroom).
    pub frame_size: u32,
    /// UMEM frames each worker owns (its share of its pair's UMEM).
    pub frames_per_worker: u32,
    /// Entries of each rx, tx, fill and completion ring; a power of two.
    pub ring_size: u32,
    /// Entries of each worker → worker hand-over ring.
    pub handover_ring: u32,
    /// Spin instead of sleeping when idle (lowest latency, one busy core
    /// per worker).
    pub busy_poll: bool,
    /// Nice value of the worker threads (-20..=19) when `worker_rtprio` is
    /// 0.
    pub worker_nice: i32,
    /// SCHED_FIFO priority of the worker threads (1..=99), or 0 for the
    /// normal scheduler. Real-time by default: a worker that wakes late
    /// loses its classes' tokens beyond their bursts, so it must run as
    /// soon as a deadline is due, whatever else the box is doing. If the
    /// kernel refuses (no CAP_SYS_NICE, a container without an RT budget)
    /// the worker warns and runs at `worker_nice`.
    pub worker_rtprio: u8,
    pub xdp_mode: XdpMode,
    /// Destinations handed to the kernel instead of forwarded.
    pub pass: Vec<PassPrefix>,
}

impl RunSpec {
    /// Whether the data path can start with this spec, before anything is
    /// attached or allocated ([`super::DataPath::start`] calls it first).
    /// weir's configuration (`weir_config`) refuses every spec
    /// this refuses, at the offending key, so `weir check` and `weir run`
    /// agree; this stays as the data path's own defence for other callers,
    /// and must not hold a rule the configuration lacks (a property test
    /// in control/daemon/tests/config_xdp_spec.rs checks the two against each
    /// other).
    pub fn validate(&self) -> Result<(), RunError> {
        validate(self)
    }
}

impl Default for RunSpec {
    fn default() -> RunSpec {
        RunSpec {
            pairs: Vec::new(),
            cores: Vec::new(),
            batch: 64,
            frame_size: 4096,
            frames_per_worker: 16384,
            ring_size: 4096,
            handover_ring: 4096,
            busy_poll: false,
            worker_nice: -10,
            worker_rtprio: 10,
            xdp_mode: XdpMode::default(),
            pass: Vec::new(),
        }
    }
}

/// Two interfaces forwarded to each other (a bump in the wire).
#[derive(Clone, Debug)]
pub struct PairSpec {
    pub name: String,
    pub inside: String,
    pub outside: String,
    /// Rx queues served on each interface, one worker each (default 1).
    pub queues: u32,
    /// inside → outside, shaped on egress to `outside`.
    pub upload: Option<TreeSpec>,
    /// outside → inside, shaped on egress to `inside`.
    pub download: Option<TreeSpec>,
}

impl PairSpec {
    /// A pair with one queue and no trees (forwards unshaped both ways).
    pub fn new(name: &str, inside: &str, outside: &str) -> PairSpec {
        PairSpec {
            name: name.to_owned(),
            inside: inside.to_owned(),
            outside: outside.to_owned(),
            queues: 1,
            upload: None,
            download: None,
        }
    }
}

/// A named shaping tree for one direction of a pair.
#[derive(Clone, Debug)]
pub struct TreeSpec {
    pub name: String,
    pub shaper: ShaperSpec,
}

fn validate(spec: &RunSpec) -> Result<(), RunError> {
    if spec.pairs.is_empty() {
        return Err(invalid("no port pair"));
    }
    if spec.frame_size != 2048 && spec.frame_size != 4096 {
        return Err(invalid(format!(
            "frame_size {} (must be 2048 or 4096)",
            spec.frame_size
        )));
    }
    if !spec.ring_size.is_power_of_two() || !(64..=65536).contains(&spec.ring_size) {
        return Err(invalid(format!(
            "ring_size {} (must be a power of two, 64..=65536)",
            spec.ring_size
        )));
    }
    if spec.batch == 0 || spec.batch > spec.ring_size / 2 {
        return Err(invalid(format!(
            "batch {} (must be 1..={}, half the ring)",
            spec.batch,
            spec.ring_size / 2
        )));
    }
    if spec.frames_per_worker < 4 * spec.batch {
        return Err(invalid(format!(
            "frames_per_worker {} (must be at least 4 × batch = {})",
            spec.frames_per_worker,
            4 * spec.batch
        )));
    }
    if spec.handover_ring == 0 {
        return Err(invalid("handover_ring 0 (must be at least 1)"));
    }
    // The XDP program's pass tables; checked again when it is attached.
    crate::prog::normalize_prefixes(&spec.pass).map_err(|e| invalid(e.to_string()))?;
    let mut pair_names = HashSet::new();
    let mut ifnames = HashSet::new();
    let mut tree_names = HashSet::new();
    for p in &spec.pairs {
        if !pair_names.insert(p.name.as_str()) {
            return Err(invalid(format!("two pairs named {:?}", p.name)));
        }
        if p.queues == 0 || p.queues > 1024 {
            return Err(invalid(format!(
                "pair {}: queues {} (must be 1..=1024)",
                p.name, p.queues
            )));
        }
        let frames = u64::from(p.queues) * u64::from(spec.frames_per_worker);
        if frames > u64::from(u32::MAX) / 2 {
            return Err(invalid(format!(
                "pair {}: {frames} UMEM frames is too many",
                p.name
            )));
        }
        for ifname in [&p.inside, &p.outside] {
            if ifname.is_empty() || ifname.len() > 15 || ifname.contains(['/', '\0', ' ']) {
                return Err(invalid(format!(
                    "pair {}: {ifname:?} is not an interface name",
                    p.name
                )));
            }
            if !ifnames.insert(ifname.as_str()) {
                return Err(invalid(format!(
                    "interface {ifname} is used twice (each interface belongs to one pair, once)"
                )));
            }
        }
        for (dir, t) in [("upload", &p.upload), ("download", &p.download)] {
            let name = match t {
                Some(t) => t.name.clone(),
                None => unshaped_name(&p.name, dir),
            };
            if !tree_names.insert(name.clone()) {
                return Err(invalid(format!("two trees named {name:?}")));
            }
        }
    }
    Ok(())
}

pub(super) fn unshaped_name(pair: &str, dir: &str) -> String {
    format!("{pair}/{dir}")
}
