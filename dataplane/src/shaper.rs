//! One direction's decision pipeline: parse → classify → HTB, with frame
//! accounting. IMPLEMENTATION IN PROGRESS (owner: lead); API fixed.

use crate::classify::{Classifier, FilterSpec};
use crate::htb::{Htb, HtbSpec, SpecError};
use crate::packet::{DropReason, Dropped, Frame, Packet};

/// What to do with frames the parser rejects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MalformedPolicy {
    /// Send them through the default class (transparent bump-in-the-wire).
    #[default]
    Default,
    /// Drop them, counted as [`DropReason::Malformed`].
    Drop,
}

/// Everything needed to build a shaper for one direction.
#[derive(Clone, Debug)]
pub struct ShaperSpec {
    pub htb: HtbSpec,
    /// Evaluation order; targets are class indexes into `htb.classes`
    /// (leaves only).
    pub filters: Vec<FilterSpec>,
    /// Leaf class index for unclassified traffic.
    pub default_class: u32,
    pub malformed: MalformedPolicy,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShaperError {
    Htb(SpecError),
    DefaultNotLeaf { class: u32 },
    FilterTargetNotLeaf { filter: usize, class: u32 },
}

/// Frame accounting: `received == sent + dropped (all reasons) + queued`
/// holds after every call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameCounters {
    pub received: u64,
    pub sent: u64,
    pub dropped: [u64; DropReason::ALL.len()],
    pub malformed_seen: u64,
}

pub struct Shaper {
    _c: Classifier,
    _h: Option<Htb>,
}

impl Shaper {
    pub fn new(_spec: &ShaperSpec, _now: u64) -> Result<Shaper, ShaperError> {
        todo!()
    }
    /// Take a received frame: `bytes` are its contents (read-only).
    /// Returns the leaf class index it was classified to (None: dropped as
    /// malformed).
    pub fn enqueue(&mut self, _frame: Frame, _bytes: &[u8], _now: u64) -> Option<u32> {
        todo!()
    }
    pub fn dequeue(&mut self, _now: u64) -> Option<Packet> {
        todo!()
    }
    pub fn next_deadline(&self) -> Option<u64> {
        todo!()
    }
    /// Packets dropped since the last call.
    pub fn take_drops(&mut self) -> std::vec::Drain<'_, Dropped> {
        todo!()
    }
    pub fn counters(&self) -> FrameCounters {
        todo!()
    }
    pub fn htb(&self) -> &Htb {
        todo!()
    }
}
