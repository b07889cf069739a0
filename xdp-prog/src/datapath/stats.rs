//! What the data path reports: snapshots taken by each worker at a batch
//! boundary (so they are consistent with its shapers), gathered by the
//! [`super::DataPath`] handle, and the report of a stop.

use weir_dataplane::app::{AppCounters, AppSpec, Apps, EngineCounters};
use weir_dataplane::flow::FlowCounters;
use weir_dataplane::histogram::LogHistogram;
use weir_dataplane::htb::ClassStats;
use weir_dataplane::qdisc::QdiscStats;
use weir_dataplane::shaper::FrameCounters;

use crate::prog::XdpCounters;

/// Which worker runs where and which trees it owns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerPlacement {
    /// Worker index, 0-based over all pairs.
    pub index: usize,
    /// The core it is pinned to, if any (and if pinning succeeded).
    pub core: Option<usize>,
    pub pair: String,
    /// The rx queue it serves on both interfaces of its pair.
    pub queue: u32,
    /// Names of the trees it owns (shapes); frames of other directions it
    /// receives are handed over to their owners.
    pub trees: Vec<String>,
}

/// Where a worker's share of the UMEM is, frame by frame. Counted by the
/// worker that owns the frames; exact at the moment of its snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FramePlaces {
    /// Frames this worker owns (`frames_per_worker`).
    pub total: u64,
    /// On its free list.
    pub free: u64,
    /// Given to the kernel: in a fill ring, or received into an rx ring and
    /// not yet read.
    pub fill: u64,
    /// Queued in a tree this worker owns.
    pub queued: u64,
    /// On their way out of this worker's sockets: waiting for tx ring room,
    /// in a tx ring or in a completion ring.
    pub tx: u64,
    /// In a hand-over ring, not yet taken by the owner of their tree.
    pub handover: u64,
    /// Held by another worker (queued in its tree, on its way out, or on
    /// the way back here).
    pub lent: u64,
}

impl FramePlaces {
    /// The places add up to the worker's share. Every move of a frame
    /// takes it from one counter and adds it to another, so this holds by
    /// construction while weir runs; it catches bookkeeping bugs, not a
    /// frame that never came back (that one still counts as `tx` or
    /// `lent`). [`FramePlaces::free_or_fill`] is the check after a stop.
    pub fn accounted(&self) -> bool {
        self.free + self.fill + self.queued + self.tx + self.handover + self.lent == self.total
    }

    /// After a stop (trees flushed, tx rings drained, returns taken):
    /// every frame of the share is back with its owner, on its free list
    /// or given to the kernel in a fill ring, and none is still queued,
    /// on its way out, in a hand-over ring or held by another worker.
    /// `free` is the length of the free list itself, so a frame that the
    /// kernel never completed or a peer never returned makes `free + fill`
    /// fall short of `total` and this false.
    pub fn free_or_fill(&self) -> bool {
        self.tx == 0
            && self.lent == 0
            && self.queued == 0
            && self.handover == 0
            && self.free + self.fill == self.total
    }

    /// Frames of the share that are neither free nor in a fill ring.
    pub fn away(&self) -> u64 {
        self.total.saturating_sub(self.free + self.fill)
    }
}

/// Counters of one worker (monotonic since start, written only by it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerCounters {
    /// Frames read from the rx rings of both sockets.
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// Frames put on the tx rings of both sockets.
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Loop iterations that did some work.
    pub batches: u64,
    /// Loop iterations that found nothing to do.
    pub empty_polls: u64,
    /// Times the worker went to sleep in `ppoll`.
    pub sleeps: u64,
    /// Sleeps that ended because an fd became ready (not by timeout).
    pub wakeups: u64,
    /// Times a tree had packets to send but the egress tx ring was full;
    /// the worker then waited for completions (POLLOUT), not for new rx.
    pub tx_ring_full: u64,
    /// `sendto` kicks issued to make the kernel transmit (copy mode).
    pub tx_kicks: u64,
    /// Loop iterations where a socket's fill ring was empty and no free
    /// frame was left to refill it: rx possible but no frame to receive
    /// into (the kernel counts the frames it had to drop as
    /// `rx_fill_ring_empty_descs`).
    pub fill_ring_starved: u64,
    /// Frames handed to the worker that owns their tree.
    pub handover_out: u64,
    /// Frames received from other workers for a tree this one owns.
    pub handover_in: u64,
    /// Frames dropped because the hand-over ring to the owner was full.
    pub handover_full_drops: u64,
    /// Frames of other workers sent back to them after tx or a drop.
    pub returns_out: u64,
    /// Own frames that came back from other workers.
    pub returns_in: u64,
    /// `sendto` kicks that failed with an unexpected error.
    pub tx_errors: u64,
    /// Descriptors from an rx or completion ring that point outside the
    /// UMEM (a kernel/driver bug; the descriptor is ignored).
    pub bad_descs: u64,
    /// Frames whose DSCP a remark (per app, per class, or a wash) changed
    /// on the way out.
    pub remarked: u64,
    /// Decisions about flows sent to the worker of the other direction's
    /// tree, received from it, and lost to a full ring.
    pub decisions_out: u64,
    pub decisions_in: u64,
    pub decisions_lost: u64,
}

/// One worker at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerSnapshot {
    pub index: usize,
    pub core: Option<usize>,
    pub pair: String,
    pub queue: u32,
    pub counters: WorkerCounters,
    pub frames: FramePlaces,
    /// SCHED_FIFO priority asked for (`worker_rtprio`), and the one the
    /// worker runs at: 0 is the normal scheduler (asked for, or refused).
    pub rtprio_asked: u8,
    pub rtprio: u8,
    /// Nice value in force: None under SCHED_FIFO, or if it could not be
    /// set.
    pub nice: Option<i32>,
    /// How late it woke for shaper deadlines (ns after the deadline).
    pub wake_late: LogHistogram,
}

/// One tree (one direction of a pair) at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct TreeSnapshot {
    pub name: String,
    pub pair: String,
    /// inside → outside (egress on the outside interface).
    pub upload: bool,
    /// False for a direction configured without a tree: forwarded as one
    /// FIFO, unlimited but for frames, still counted.
    pub shaped: bool,
    /// The worker that owns it.
    pub worker: usize,
    /// `received == sent + dropped + queued` (`frames.balanced()`).
    pub frames: FrameCounters,
    /// Index = class index of the tree's `ShaperSpec`.
    pub classes: Vec<ClassStats>,
    /// Each class's tc id (`major << 32 | minor`): a tree changed in place
    /// moves its last class into a removed one's index, so the same index
    /// in two snapshots can be two classes.
    pub ids: Vec<u64>,
    /// Index = class index; `None` for inner classes.
    pub qdiscs: Vec<Option<QdiscStats>>,
    /// How long sent packets waited in the tree.
    pub sojourn: weir_dataplane::shaper::Sojourn,
    /// The tree's apps; None when it has none (no flow table is kept).
    pub apps: Option<AppsSnapshot>,
    /// Frames each drop filter dropped, by its number
    /// (`weir_dataplane::shaper::FILTER_DROP`).
    pub filter_drops: Vec<u64>,
}

/// One app of a tree: what it is and what it counted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppSnapshot {
    /// Name, class (a class index of the tree) and remark.
    pub spec: AppSpec,
    pub counters: AppCounters,
}

/// A tree's apps engine at one moment: counters only (a copy per app and
/// three small structs), never a walk of the flow table, so it is taken
/// with every snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppsSnapshot {
    /// In configuration order.
    pub apps: Vec<AppSnapshot>,
    pub engine: EngineCounters,
    /// The flow table's counters (`live` is its flows now).
    pub table: FlowCounters,
    /// Flows the table can hold.
    pub capacity: u64,
}

impl AppsSnapshot {
    pub(crate) fn of(apps: &Apps) -> AppsSnapshot {
        AppsSnapshot {
            apps: apps
                .apps()
                .iter()
                .zip(apps.counters())
                .map(|(spec, counters)| AppSnapshot {
                    spec: spec.clone(),
                    counters: *counters,
                })
                .collect(),
            engine: apps.engine_counters(),
            table: apps.flow_counters(),
            capacity: apps.capacity() as u64,
        }
    }
}

/// Kernel-side statistics of AF_XDP sockets (`XDP_STATISTICS`), summed over
/// the sockets of an interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketStats {
    /// Dropped for other reasons than the ones below (e.g. frame too big).
    pub rx_dropped: u64,
    pub rx_invalid_descs: u64,
    /// The rx ring was full: weir did not read fast enough.
    pub rx_ring_full: u64,
    /// No frame in the fill ring when one arrived.
    pub rx_fill_ring_empty_descs: u64,
    pub tx_invalid_descs: u64,
    pub tx_ring_empty_descs: u64,
}

impl SocketStats {
    pub(crate) fn add(&mut self, o: &SocketStats) {
        self.rx_dropped += o.rx_dropped;
        self.rx_invalid_descs += o.rx_invalid_descs;
        self.rx_ring_full += o.rx_ring_full;
        self.rx_fill_ring_empty_descs += o.rx_fill_ring_empty_descs;
        self.tx_invalid_descs += o.tx_invalid_descs;
        self.tx_ring_empty_descs += o.tx_ring_empty_descs;
    }
}

/// One interface at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceSnapshot {
    pub name: String,
    /// The XDP program's counters on this interface.
    pub xdp: XdpCounters,
    /// Kernel statistics of its AF_XDP sockets, summed over queues.
    pub sockets: SocketStats,
}

/// The whole data path at one moment (each worker answered at its next
/// batch boundary, so `at_ns` is approximate to a few ms).
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// CLOCK_MONOTONIC ns when the last worker answered.
    pub at_ns: u64,
    /// In configuration order: per pair, upload then download.
    pub trees: Vec<TreeSnapshot>,
    pub workers: Vec<WorkerSnapshot>,
    pub interfaces: Vec<InterfaceSnapshot>,
}

impl Snapshot {
    pub fn tree(&self, name: &str) -> Option<&TreeSnapshot> {
        self.trees.iter().find(|t| t.name == name)
    }

    /// Every tree balances and every worker's frames are accounted for.
    pub fn consistent(&self) -> bool {
        self.trees.iter().all(|t| t.frames.balanced())
            && self.workers.iter().all(|w| w.frames.accounted())
    }
}

/// What [`super::DataPath::stop`] found.
#[derive(Clone, Debug, PartialEq)]
pub struct ShutdownReport {
    /// Per tree, frames still queued when the workers stopped receiving
    /// (they were then flushed, counted as `DropReason::Flushed`).
    pub queued_at_stop: Vec<(String, u64)>,
    /// Taken after the flush, just before the sockets closed.
    pub last: Snapshot,
    /// Every worker's `FramePlaces::free_or_fill()` in `last`: every UMEM
    /// frame came back after the flush.
    pub umem_free_or_fill: bool,
    /// Every tree's `FrameCounters::balanced()` in `last`.
    pub balanced: bool,
}

#[cfg(test)]
mod tests {
    use super::FramePlaces;

    /// A worker's share after a clean stop: half free, half in the fill
    /// rings.
    fn home() -> FramePlaces {
        FramePlaces {
            total: 4096,
            free: 2048,
            fill: 2048,
            ..FramePlaces::default()
        }
    }

    #[test]
    fn every_frame_back_passes() {
        let f = home();
        assert!(f.accounted());
        assert!(f.free_or_fill());
        assert_eq!(f.away(), 0);
    }

    /// One frame never completed at a socket: the counters still add up
    /// (it counts as `tx`), so `accounted` cannot see it; the check after
    /// the stop must.
    #[test]
    fn a_frame_left_in_tx_fails() {
        let f = FramePlaces {
            free: 2047,
            tx: 1,
            ..home()
        };
        assert!(f.accounted(), "the sum holds: {f:?}");
        assert!(!f.free_or_fill(), "{f:?}");
        assert_eq!(f.away(), 1);
    }

    /// A frame lent to another worker and never returned.
    #[test]
    fn a_frame_still_lent_fails() {
        let f = FramePlaces {
            free: 2047,
            lent: 1,
            ..home()
        };
        assert!(f.accounted());
        assert!(!f.free_or_fill(), "{f:?}");
    }

    /// A frame gone from every place (e.g. dropped without being freed):
    /// free + fill falls short of the share even with nothing in flight.
    #[test]
    fn a_frame_missing_from_every_place_fails() {
        let f = FramePlaces {
            free: 2047,
            ..home()
        };
        assert!(!f.accounted());
        assert!(!f.free_or_fill(), "{f:?}");
        assert_eq!(f.away(), 1);
    }

    /// Still queued or in a hand-over ring after a stop is a flush that
    /// did not happen.
    #[test]
    fn queued_or_handed_over_after_stop_fails() {
        for f in [
            FramePlaces {
                free: 2047,
                queued: 1,
                ..home()
            },
            FramePlaces {
                free: 2047,
                handover: 1,
                ..home()
            },
        ] {
            assert!(f.accounted());
            assert!(!f.free_or_fill(), "{f:?}");
        }
    }
}
