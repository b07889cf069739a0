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

use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;
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
    /// Written only by the receiver, after it popped (Release), read by the
    /// sender for snapshots (Acquire). Own cache line: the sender's pushes
    /// don't bounce it.
    pub popped: CachePadded<AtomicU64>,
}

impl Lane {
    pub fn new(capacity: usize) -> Lane {
        Lane {
            ring: ArrayQueue::new(capacity.max(1)),
            popped: CachePadded::new(AtomicU64::new(0)),
        }
    }
}

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
