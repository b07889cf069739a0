//! Open-loop sources at run time: frame sizes drawn from the mix, emission
//! times from the pace, and the per-flow state the loop keeps.

use rand::rngs::SmallRng;
use rand::Rng;

use super::account::SourceAcc;
use crate::synth::FrameTemplate;
use crate::traffic::{Pace, Sizes, SourceKind};

pub(super) enum SizePicker {
    Fixed(u32),
    /// Per flow, in order: the flow's packet number picks the size.
    Seq(Vec<u32>),
    Mix {
        sizes: Vec<u32>,
        /// Cumulative weights.
        cum: Vec<u32>,
    },
}

impl SizePicker {
    pub(super) fn new(s: &Sizes) -> SizePicker {
        match s {
            Sizes::Fixed(v) => SizePicker::Fixed(*v),
            Sizes::Seq(v) => SizePicker::Seq(v.clone()),
            Sizes::Mix(m) => {
                let mut acc = 0u32;
                SizePicker::Mix {
                    sizes: m.iter().map(|&(s, _)| s).collect(),
                    cum: m
                        .iter()
                        .map(|&(_, w)| {
                            acc = acc.saturating_add(w);
                            acc
                        })
                        .collect(),
                }
            }
        }
    }

    /// The size of a flow's packet number `seq` (a sequence) or of the
    /// next packet (a fixed size or a mix, which draws from `rng`).
    #[inline]
    pub(super) fn pick(&self, rng: &mut SmallRng, seq: u64) -> u32 {
        match self {
            SizePicker::Fixed(s) => *s,
            SizePicker::Seq(v) => {
                // Never empty (checked when the file was read).
                let i = seq % (v.len().max(1) as u64);
                v.get(i as usize).copied().unwrap_or(0)
            }
            SizePicker::Mix { sizes, cum } => {
                let r = rng.gen_range(0..*cum.last().unwrap_or(&1));
                sizes[cum.partition_point(|&c| c <= r)]
            }
        }
    }
}

/// Open-loop emission times. Rates use a 32.32 fixed-point ns-per-byte over
/// the bytes sent since `origin`, so 64-byte packets at 10 Gbit/s (51.2 ns
/// apart) keep their exact long-run rate instead of drifting by the
/// truncation of each gap.
pub(super) struct EmissionClock {
    pace: Pace,
    /// ns per byte, 32.32 fixed point (Pace::Rate).
    ns_per_byte_fp: u128,
    origin: u64,
    /// Bytes (rate) or packets (interval) since `origin`.
    cum: u64,
    onoff: Option<(u64, u64)>,
    /// Poisson clock, ns since start (f64: only the simulator's own
    /// inter-arrival sampling; the core never sees it).
    poisson: Option<f64>,
}

impl EmissionClock {
    pub(super) fn new(kind: &SourceKind, start: u64) -> EmissionClock {
        let (pace, onoff, poisson) = match *kind {
            SourceKind::Cbr { pace } => (pace, None, None),
            SourceKind::OnOff { pace, on, off } => (pace, Some((on, off)), None),
            SourceKind::Poisson { pace } => (pace, None, Some(start as f64)),
            SourceKind::Tcp(_) => (Pace::Interval(1), None, None),
        };
        let ns_per_byte_fp = match pace {
            Pace::Rate(bps) => (8_000_000_000u128 << 32) / u128::from(bps.max(1)),
            Pace::Interval(_) => 0,
        };
        EmissionClock {
            pace,
            ns_per_byte_fp,
            origin: start,
            cum: 0,
            onoff,
            poisson,
        }
    }

    /// Time of the next emission after one of `size` bytes.
    #[inline]
    pub(super) fn advance(&mut self, size: u32, rng: &mut SmallRng) -> u64 {
        if let Some(clock) = &mut self.poisson {
            let mean = match self.pace {
                Pace::Rate(_) => ((u128::from(size) * self.ns_per_byte_fp) >> 32) as f64,
                Pace::Interval(ns) => ns as f64,
            };
            // Inverse-CDF sampling; 1 - U keeps ln away from 0.
            let u: f64 = rng.gen();
            *clock += -(1.0 - u).ln() * mean;
            return *clock as u64;
        }
        let offset = match self.pace {
            Pace::Rate(_) => {
                self.cum += u64::from(size);
                ((u128::from(self.cum) * self.ns_per_byte_fp) >> 32) as u64
            }
            Pace::Interval(ns) => {
                self.cum += 1;
                self.cum.saturating_mul(ns)
            }
        };
        let mut t = self.origin.saturating_add(offset);
        if let Some((on, off)) = self.onoff {
            if t >= self.origin.saturating_add(on) {
                self.origin = self.origin.saturating_add(on + off);
                self.cum = 0;
                t = self.origin;
            }
        }
        t
    }
}

pub(super) struct SourceRt {
    pub(super) first_flow: u32,
    pub(super) flows: u32,
    pub(super) next_flow: u32,
    pub(super) sizes: SizePicker,
    pub(super) next_size: u32,
    pub(super) rng: SmallRng,
    pub(super) clock: EmissionClock,
    /// First instant the source no longer sends (min of stop and duration).
    pub(super) end: u64,
    pub(super) acc: SourceAcc,
    pub(super) is_tcp: bool,
    /// The bytes each flow starts with (empty: none), and whether they are
    /// a TCP stream cut over segments or one datagram.
    pub(super) payload: Vec<u8>,
    pub(super) payload_stream: bool,
}

pub(super) struct FlowRt {
    pub(super) tmpl: FrameTemplate,
    pub(super) source: u32,
    /// Leaf class of its last enqueue (NONE: never classified). A flow's
    /// headers never change, so neither does its class.
    pub(super) class: u32,
    /// TCP connection index, or NONE.
    pub(super) conn: u32,
    /// Index in `State::pairs` for (source, class), or NONE.
    pub(super) pair: u32,
    /// Next sequence number of an open-loop flow.
    pub(super) seq: u64,
    /// Bytes of the source's payload this flow has sent.
    pub(super) payload_sent: u32,
}

pub(super) fn seed_for(seed: u64, index: usize) -> u64 {
    // splitmix64 step: independent streams per source from one seed.
    let mut z = seed ^ (index as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
