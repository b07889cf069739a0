//! Hierarchical token bucket scheduler (Linux `sch_htb` semantics).
//! IMPLEMENTATION IN PROGRESS (owner: lead). The public API below is fixed.

use crate::packet::{Drops, Packet};
use crate::qdisc::{Backlog, QdiscParams, QdiscStats};

/// Deepest tree (levels of classes), as Linux's TC_HTB_MAXDEPTH.
pub const MAX_DEPTH: usize = 8;
/// Priorities 0..=7, as Linux's TC_HTB_NUMPRIO.
pub const NUM_PRIO: usize = 8;

/// One class of a compiled tree. Classes are given parents-first; `parent`
/// indexes an earlier class.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassSpec {
    pub parent: Option<u32>,
    /// Guaranteed rate, bytes/s.
    pub rate: u64,
    /// Ceiling, bytes/s (>= rate).
    pub ceil: u64,
    /// Rate bucket size, bytes.
    pub burst: u32,
    /// Ceil bucket size, bytes.
    pub cburst: u32,
    /// 0 (served first) ..= 7.
    pub prio: u8,
    /// DRR quantum, bytes (already defaulted from r2q by the config).
    pub quantum: u32,
    /// Leaf qdisc; `Some` exactly for classes without children.
    pub qdisc: Option<QdiscParams>,
}

/// A whole tree, ready to build.
#[derive(Clone, Debug, PartialEq)]
pub struct HtbSpec {
    pub classes: Vec<ClassSpec>,
    /// Link-layer accounting applied to every class: tc `overhead`.
    pub overhead: i32,
    /// tc `mpu`.
    pub mpu: u32,
    /// Most packets queued at once in the whole tree (UMEM frames).
    pub pool_capacity: u32,
    /// Seeds SFQ/FQ-CoDel perturbation and RED's RNG.
    pub seed: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpecError {
    Empty,
    BadParent { class: u32 },
    LeafWithoutQdisc { class: u32 },
    InnerWithQdisc { class: u32 },
    TooDeep { class: u32 },
    BadPrio { class: u32 },
    CeilBelowRate { class: u32 },
}

/// Class mode, as HTB names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    CanSend,
    MayBorrow,
    CantSend,
}

/// Per-class statistics as `tc -s class show` prints them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassStats {
    pub bytes: u64,
    pub packets: u64,
    pub drops: u64,
    pub overlimits: u64,
    pub backlog: Backlog,
    pub lends: u64,
    pub borrows: u64,
    pub giants: u64,
    /// Rate bucket level, ns of credit at `rate` (negative: in debt).
    pub tokens: i64,
    /// Ceil bucket level, ns of credit at `ceil`.
    pub ctokens: i64,
    pub mode: Mode,
}

pub struct Htb {}

impl Htb {
    pub fn new(_spec: &HtbSpec, _now: u64) -> Result<Htb, SpecError> {
        todo!()
    }
    /// Queue `packet` on leaf class `class`.
    pub fn enqueue(&mut self, _class: u32, _packet: Packet, _now: u64, _drops: &mut Drops) {
        todo!()
    }
    /// The next packet the tree allows at `now`, or None ("not yet").
    pub fn dequeue(&mut self, _now: u64, _drops: &mut Drops) -> Option<Packet> {
        todo!()
    }
    /// When to call `dequeue` next if it just said "not yet"; None when
    /// nothing is queued.
    pub fn next_deadline(&self) -> Option<u64> {
        todo!()
    }
    pub fn backlog(&self) -> Backlog {
        todo!()
    }
    pub fn class_count(&self) -> u32 {
        todo!()
    }
    pub fn class_stats(&self, _class: u32) -> ClassStats {
        todo!()
    }
    /// None for inner classes.
    pub fn qdisc_stats(&self, _class: u32) -> Option<QdiscStats> {
        todo!()
    }
    pub fn is_leaf(&self, _class: u32) -> bool {
        todo!()
    }
    /// Empty every queue into `drops` (reason Flushed).
    pub fn flush(&mut self, _drops: &mut Drops) {
        todo!()
    }
}
