//! Moving frames between the workers of one port pair.
//!
//! A frame received by a worker that does not own the frame's tree goes to
//! the owner over a [`Lane`] (one per ordered worker pair, single producer,
//! single consumer). A frame that ends its life (sent or dropped) at a
//! worker other than the one whose UMEM share it belongs to goes home over
//! a return ring. Both are crossbeam `ArrayQueue`s: bounded, lock-free, no
//! allocation after creation. A [`Doorbell`] (eventfd) wakes a receiver
//! that may be asleep in `ppoll`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;
use weir_dataplane::app::Decision;
use xsk_rs::FrameDesc;

/// One frame handed to the owner of its tree.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Handover {
    /// The descriptor as received (address and length in the shared UMEM).
    pub desc: FrameDesc,
    /// Index of the tree among the trees the receiving worker owns.
    pub tree: u32,
}

/// Worker → worker hand-over ring, with the count of frames the receiver
/// has taken off it. The sender keeps its own count of frames pushed, so
/// `pushed - popped` is exactly what sits in the ring (the owner's
/// `FramePlaces::handover`) and the rest of what it lent is held by the
/// receiver (`FramePlaces::lent`), without either side reading the other's
/// private state.
pub(crate) struct Lane {
    pub ring: ArrayQueue<Handover>,
    /// What the sender's trees decided about flows, for the receiver's
    /// tree of the other direction (the tree's index at the receiver, and
    /// the decision): see `weir_dataplane::app`. A full ring loses the
    /// message (counted); the other direction then decides on its own.
    pub decisions: ArrayQueue<(u32, Decision)>,
    /// Written only by the receiver, after it popped (Release), read by the
    /// sender for snapshots (Acquire). Own cache line: the sender's pushes
    /// don't bounce it.
    pub popped: CachePadded<AtomicU64>,
}

impl Lane {
    pub fn new(capacity: usize) -> Lane {
        Lane {
            ring: ArrayQueue::new(capacity.max(1)),
            decisions: ArrayQueue::new(DECISION_RING),
            popped: CachePadded::new(AtomicU64::new(0)),
        }
    }
}

/// Decisions in flight between two workers: a burst of new flows at
/// line rate (one decision per flow) fits.
pub(crate) const DECISION_RING: usize = 4096;

/// Frame numbers going back to the worker that owns them. Sized to the
/// owner's whole share of the UMEM, so a push can never find it full.
pub(crate) type ReturnRing = ArrayQueue<u32>;

/// Wakes a worker sleeping in `ppoll`: an eventfd in its poll set, and a
/// flag the worker raises just before sleeping so that senders write the
/// eventfd (a syscall) only when it can matter.
pub(crate) struct Doorbell {
    fd: OwnedFd,
    sleeping: CachePadded<AtomicBool>,
}

impl Doorbell {
    pub fn new() -> io::Result<Doorbell> {
        // SAFETY: eventfd takes no pointers; the flags are valid.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Doorbell {
            // SAFETY: `fd` was just returned by eventfd and is owned by no
            // one else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            sleeping: CachePadded::new(AtomicBool::new(false)),
        })
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Sender side, after publishing work (a push or a command): wake the
    /// receiver if it is (about to be) asleep. The SeqCst fence pairs with
    /// the one in [`Doorbell::going_to_sleep`]: either the receiver sees the
    /// new work when it re-checks, or this sees its flag and rings.
    pub fn ring_if_sleeping(&self) {
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::Relaxed) {
            self.ring();
        }
    }

    /// Always wake the receiver (control commands: rare, must not be late).
    pub fn ring(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our eventfd. A failure
        // can only be EAGAIN (counter saturated: the receiver will wake
        // anyway), so it is ignored.
        unsafe {
            libc::write(
                self.fd.as_raw_fd(),
                (&one as *const u64).cast::<libc::c_void>(),
                std::mem::size_of::<u64>(),
            )
        };
    }

    /// Receiver side: raise the flag, then re-check every source of work
    /// before actually sleeping.
    pub fn going_to_sleep(&self) {
        self.sleeping.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    pub fn awake(&self) {
        self.sleeping.store(false, Ordering::Relaxed);
    }

    /// Reset the eventfd counter after a wakeup.
    pub fn clear(&self) {
        let mut value: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live u64 from our non-blocking
        // eventfd; EAGAIN (nothing to clear) is fine.
        unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&mut value as *mut u64).cast::<libc::c_void>(),
                std::mem::size_of::<u64>(),
            )
        };
    }
}

/// A worker's side of the other workers of its pair: the lanes it hands
/// frames over on and takes them from, the rings its frames come home on
/// and the ones it sends theirs home on, their doorbells, and its count of
/// the frames it lent them.
pub(crate) struct Peers {
    /// This worker's pair-local index (the queue it serves).
    pub me: usize,
    /// Indexed by pair-local worker: the lane to it (None for `me`).
    pub lanes_out: Vec<Option<Arc<Lane>>>,
    /// Lanes from the other workers to this one.
    pub lanes_in: Vec<Arc<Lane>>,
    /// Indexed by pair-local worker: the ring carrying its frames home.
    pub returns_out: Vec<Option<Arc<ReturnRing>>>,
    /// Rings bringing this worker's frames home.
    pub returns_in: Vec<Arc<ReturnRing>>,
    /// Indexed by pair-local worker (`bells[me]` is this worker's).
    pub bells: Vec<Arc<Doorbell>>,
    /// Per pair-local worker: wake it after this iteration (one eventfd
    /// write per batch, not per frame).
    ring_bell: Vec<bool>,
    /// Per pair-local worker: own frames pushed on the lane to it.
    pushed: Vec<u64>,
    /// Own frames that came back over return rings.
    returned: u64,
    /// Frames of other workers whose return ring was (impossibly) full;
    /// retried every iteration, never lost.
    stuck: Vec<u32>,
}

/// What became of a frame sent home ([`Peers::send_home`]).
pub(crate) enum Home {
    Sent,
    /// Its return ring was full: kept for a retry ([`Peers::take_stuck`]).
    Stuck,
    /// No worker of this pair owns it (a bad descriptor).
    NoOwner,
}

impl Peers {
    pub fn new(
        me: usize,
        lanes_out: Vec<Option<Arc<Lane>>>,
        lanes_in: Vec<Arc<Lane>>,
        returns_out: Vec<Option<Arc<ReturnRing>>>,
        returns_in: Vec<Arc<ReturnRing>>,
        bells: Vec<Arc<Doorbell>>,
    ) -> Peers {
        let n = bells.len();
        Peers {
            me,
            lanes_out,
            lanes_in,
            returns_out,
            returns_in,
            bells,
            ring_bell: vec![false; n],
            pushed: vec![0; n],
            returned: 0,
            stuck: Vec::new(),
        }
    }

    /// This worker's own doorbell.
    pub fn my_bell(&self) -> &Doorbell {
        &self.bells[self.me]
    }

    /// Push a frame on the lane to `peer`, the owner of its tree. False if
    /// the lane is full (or there is none): the caller still has the frame.
    pub fn hand_over(&mut self, peer: usize, h: Handover) -> bool {
        let pushed = match self.lanes_out.get(peer).and_then(Option::as_ref) {
            Some(lane) => lane.ring.push(h).is_ok(),
            None => false,
        };
        if pushed {
            self.pushed[peer] += 1;
            self.ring_bell[peer] = true;
        }
        pushed
    }

    /// Send a decision to `peer`'s tree `tree`. False if the ring is full
    /// (or there is no lane). No bell: the peer reads decisions before its
    /// next frames, and it wakes for those.
    pub fn send_decision(&mut self, peer: usize, tree: u32, d: Decision) -> bool {
        match self.lanes_out.get(peer).and_then(Option::as_ref) {
            Some(lane) => lane.decisions.push((tree, d)).is_ok(),
            None => false,
        }
    }

    /// Every decision waiting on the lanes in, each with its tree.
    pub fn take_decisions(&self, mut each: impl FnMut(u32, Decision)) -> usize {
        let mut n = 0;
        for lane in &self.lanes_in {
            while let Some((tree, d)) = lane.decisions.pop() {
                each(tree, d);
                n += 1;
            }
        }
        n
    }

    /// Take up to `into.capacity()` frames off lane `l` into `into`, and
    /// publish how many were taken before any of them can be dropped and
    /// sent home, so the owner never sees a return it can't place.
    pub fn take_lane(&self, l: usize, into: &mut Vec<Handover>) -> usize {
        into.clear();
        let lane = &self.lanes_in[l];
        while into.len() < into.capacity() {
            match lane.ring.pop() {
                Some(h) => into.push(h),
                None => break,
            }
        }
        if !into.is_empty() {
            lane.popped.fetch_add(into.len() as u64, Ordering::Release);
        }
        into.len()
    }

    /// Frame `n`, of pair-local worker `owner`, goes home.
    pub fn send_home(&mut self, owner: usize, n: u32) -> Home {
        match self.returns_out.get(owner).and_then(Option::as_ref) {
            Some(ring) => {
                if ring.push(n).is_ok() {
                    self.ring_bell[owner] = true;
                    Home::Sent
                } else {
                    self.stuck.push(n);
                    Home::Stuck
                }
            }
            None => Home::NoOwner,
        }
    }

    /// The frames that found their return ring full, to send home again.
    pub fn take_stuck(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.stuck)
    }

    /// Own frames that came home, onto `free`; how many.
    pub fn take_returned(&mut self, free: &mut Vec<u32>) -> u64 {
        let mut k = 0;
        for ring in &self.returns_in {
            while let Some(f) = ring.pop() {
                free.push(f);
                k += 1;
            }
        }
        self.returned += k;
        k
    }

    /// Whether a lane or return ring has something for this worker.
    pub fn has_work(&self) -> bool {
        self.lanes_in.iter().any(|l| !l.ring.is_empty())
            || self.returns_in.iter().any(|r| !r.is_empty())
    }

    /// Wake the peers this iteration gave work to.
    pub fn ring_bells(&mut self) {
        for k in 0..self.ring_bell.len() {
            if std::mem::take(&mut self.ring_bell[k]) {
                self.bells[k].ring_if_sleeping();
            }
        }
    }

    /// Where the frames this worker lent are: `(handover, lent)` of
    /// [`super::stats::FramePlaces`] — still in a lane, or taken by the
    /// peer and not back yet.
    pub fn lent(&self) -> (u64, u64) {
        let mut handover = 0;
        let mut pushed = 0;
        for (k, lane) in self.lanes_out.iter().enumerate() {
            if let Some(lane) = lane {
                let popped = lane.popped.load(Ordering::Acquire);
                handover += self.pushed[k].saturating_sub(popped);
                pushed += self.pushed[k];
            }
        }
        let out = pushed.saturating_sub(self.returned);
        (handover, out.saturating_sub(handover))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doorbell_wakes_poll_and_clears() {
        let bell = Doorbell::new().unwrap();
        let mut pfd = libc::pollfd {
            fd: bell.raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, zero timeout.
        assert_eq!(unsafe { libc::poll(&mut pfd, 1, 0) }, 0);
        bell.ring_if_sleeping();
        // SAFETY: as above.
        assert_eq!(unsafe { libc::poll(&mut pfd, 1, 0) }, 0, "not sleeping");
        bell.going_to_sleep();
        bell.ring_if_sleeping();
        // SAFETY: as above.
        assert_eq!(unsafe { libc::poll(&mut pfd, 1, 0) }, 1);
        bell.awake();
        bell.clear();
        // SAFETY: as above.
        assert_eq!(unsafe { libc::poll(&mut pfd, 1, 0) }, 0);
    }
}
