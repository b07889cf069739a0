//! Per-class, per-source and per-(source, class) accumulators the loop
//! updates on every send and drop: preallocated slots, O(1) per packet.

use std::collections::HashMap;

use hdrhistogram::Histogram;

use super::N_REASONS;
use crate::report::Volume;

#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Vol {
    pub(super) packets: u64,
    pub(super) bytes: u64,
}

impl Vol {
    #[inline]
    pub(super) fn add(&mut self, bytes: u64) {
        self.packets += 1;
        self.bytes += bytes;
    }
    pub(super) fn report(self) -> Volume {
        Volume {
            packets: self.packets,
            bytes: self.bytes,
        }
    }
}

/// Streaming token-bucket conformance: the smallest bucket (bytes) that
/// would have let every send through at `rate`. For all windows [t1, t2]:
/// bytes sent ≤ rate·(t2 − t1) + bucket. O(1) per send, exact.
#[derive(Clone, Copy, Debug)]
pub(super) struct Conformance {
    /// Bytes/s.
    rate: i128,
    /// Bytes sent so far, ×1e9 (so that rate·ns is in the same unit).
    sent: i128,
    /// min over sends of (bytes sent before it − rate·t), same unit.
    min_base: i128,
    max_excess: i128,
}

impl Conformance {
    pub(super) fn new(rate_bytes: u64) -> Conformance {
        Conformance {
            rate: i128::from(rate_bytes),
            sent: 0,
            min_base: i128::MAX,
            max_excess: 0,
        }
    }

    #[inline]
    pub(super) fn on_send(&mut self, now: u64, bytes: u64) {
        let credit = self.rate * i128::from(now);
        self.min_base = self.min_base.min(self.sent - credit);
        self.sent += i128::from(bytes) * 1_000_000_000;
        self.max_excess = self.max_excess.max(self.sent - credit - self.min_base);
    }

    pub(super) fn bucket_bytes(&self) -> u64 {
        ((self.max_excess + 999_999_999) / 1_000_000_000) as u64
    }
}

pub(super) struct ClassAcc {
    pub(super) parent: u32,
    pub(super) offered: Vol,
    pub(super) offered_win: u64,
    pub(super) sent: Vol,
    pub(super) sent_win: u64,
    pub(super) dropped: Vol,
    pub(super) drops: [u64; N_REASONS],
    pub(super) marks: u64,
    pub(super) max_len: u32,
    pub(super) timeline: Vec<u64>,
    pub(super) ceil: Conformance,
}

#[derive(Default)]
pub(super) struct SourceAcc {
    pub(super) offered: Vol,
    pub(super) offered_win: u64,
    pub(super) sent: Vol,
    pub(super) sent_win: u64,
    pub(super) payload_win: u64,
    pub(super) dropped: Vol,
    pub(super) drops: [u64; N_REASONS],
    pub(super) marks: u64,
    /// Frames the shaper refused to classify (dropped as malformed).
    pub(super) unclassified: u64,
}

#[derive(Default)]
pub(super) struct Pairs {
    pub(super) list: Vec<Pair>,
    pub(super) index: HashMap<(u32, u32), u32>,
}

/// Sojourn samples of one (source, leaf class) pair: one record per packet
/// serves both the class's and the source's percentiles (merged at the end).
pub(super) struct Pair {
    pub(super) source: u32,
    pub(super) class: u32,
    pub(super) hist: Histogram<u64>,
}

pub(super) fn new_hist(sigfig: u8) -> Histogram<u64> {
    // Up to one hour of sojourn, ns resolution.
    Histogram::new_with_bounds(1, 3_600_000_000_000, sigfig).expect("static bounds are valid")
}

/// The pair slot for (source, class), made on first use (a flow's class is
/// fixed, so this runs once per flow).
pub(super) fn pair_of(pairs: &mut Pairs, source: u32, class: u32, sigfig: u8) -> u32 {
    *pairs.index.entry((source, class)).or_insert_with(|| {
        pairs.list.push(Pair {
            source,
            class,
            hist: new_hist(sigfig),
        });
        (pairs.list.len() - 1) as u32
    })
}
