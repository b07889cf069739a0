//! One AF_XDP socket: an (interface, queue) bound on a pair's shared UMEM,
//! with its own rx, tx, fill and completion rings.
//!
//! Public so that weir's traffic generator (`weir-bench`) drives its
//! sockets through the same code as the workers.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, RawFd};

use xsk_rs::config::{BindFlags, Interface, LibxdpFlags, QueueSize, SocketConfig};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

use super::stats::SocketStats;

/// Why a socket could not be made, before it becomes a `RunError` that
/// names the interface and queue.
#[derive(Debug)]
pub enum PortError {
    BadName,
    Create {
        reason: String,
        errno: Option<i32>,
    },
    /// The UMEM already had fill/completion rings for this (interface,
    /// queue): two sockets on one queue.
    SharedContext,
}

impl std::fmt::Display for PortError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortError::BadName => write!(f, "not an interface name"),
            PortError::Create { reason, errno } => match errno {
                Some(e) => write!(
                    f,
                    "creating the AF_XDP socket failed: {reason} ({})",
                    io::Error::from_raw_os_error(*e)
                ),
                None => write!(f, "creating the AF_XDP socket failed: {reason}"),
            },
            PortError::SharedContext => {
                write!(f, "the UMEM already has rings for this interface and queue")
            }
        }
    }
}

impl std::error::Error for PortError {}

/// What [`Port::kick`] found.
#[derive(Clone, Copy, Debug, Default)]
pub struct Kick {
    pub kicks: u64,
    pub errors: u64,
}

pub struct Port {
    /// Index of the interface in the data path's interface list.
    pub iface: usize,
    pub ifname: String,
    pub queue: u32,
    rx: RxQueue,
    tx: TxQueue,
    fill: FillQueue,
    comp: CompQueue,
    fd: RawFd,
    ring_size: u32,
    /// Dequeued frames the tx ring had no room for; produced first next
    /// time. Normally empty: dequeues are bounded by the ring's room.
    pub pending: VecDeque<FrameDesc>,
    /// Own frames in the fill ring or the rx ring (given to the kernel).
    pub in_fill: u64,
    /// Frames (of any worker) produced on the tx ring and not yet
    /// completed.
    pub in_flight: u64,
}

impl Port {
    /// Bind a socket on `ifname`:`queue` over `umem`, with need_wakeup, and
    /// without libxdp's own XDP program (ours is attached by `XdpProgram`
    /// and told about the socket with `register_socket`).
    pub fn open(
        umem: &Umem,
        iface: usize,
        ifname: &str,
        queue: u32,
        ring_size: QueueSize,
    ) -> Result<Port, PortError> {
        let name: Interface = ifname.parse().map_err(|_| PortError::BadName)?;
        let config = SocketConfig::builder()
            .rx_queue_size(ring_size)
            .tx_queue_size(ring_size)
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .bind_flags(BindFlags::XDP_USE_NEED_WAKEUP)
            .build();
        // SAFETY: the UMEM outlives the socket (every queue holds a clone
        // of it), and the frames given to this socket's rings are only ever
        // frames of that UMEM, each owned by exactly one party at a time
        // (see `worker.rs`).
        let (tx, rx, rings) = unsafe { Socket::new(config, umem, &name, queue) }.map_err(|e| {
            let errno = std::error::Error::source(&e)
                .and_then(|s| s.downcast_ref::<io::Error>())
                .and_then(io::Error::raw_os_error);
            PortError::Create {
                reason: e.to_string(),
                errno,
            }
        })?;
        let (fill, comp) = rings.ok_or(PortError::SharedContext)?;
        let fd = rx.fd().as_raw_fd();
        Ok(Port {
            iface,
            ifname: ifname.to_owned(),
            queue,
            rx,
            tx,
            fill,
            comp,
            fd,
            ring_size: ring_size.get(),
            pending: VecDeque::new(),
            in_fill: 0,
            in_flight: 0,
        })
    }

    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// Read up to `buf.len()` received descriptors.
    pub fn receive(&mut self, buf: &mut [FrameDesc]) -> usize {
        // SAFETY: the descriptors written are frames of our UMEM that the
        // kernel has finished with; the caller takes ownership of them.
        let n = unsafe { self.rx.consume(buf) };
        self.in_fill = self.in_fill.saturating_sub(n as u64);
        n
    }

    /// Give frames to the kernel to receive into; returns how many the
    /// fill ring took (from the front of `descs`).
    pub fn fill(&mut self, descs: &[FrameDesc]) -> usize {
        // SAFETY: the caller owns these frames and hands them to the
        // kernel; it won't touch them until they come back on the rx ring.
        let n = unsafe { self.fill.produce(descs) };
        self.in_fill += n as u64;
        if n > 0 && self.fill.needs_wakeup() {
            // Zero-copy drivers may want a poke to look at the fill ring;
            // copy mode (veth) never sets the flag. A zero-timeout poll.
            let _ = self.fill.wakeup(self.rx.fd_mut(), 0);
        }
        n
    }

    /// Room left in the fill ring, at most `max`.
    pub fn fill_room(&mut self, max: u32) -> u32 {
        self.fill.nb_free(max).min(max)
    }

    /// Read up to `buf.len()` completed descriptors.
    pub fn completions(&mut self, buf: &mut [FrameDesc]) -> usize {
        // SAFETY: completed frames are back under our control; the caller
        // takes ownership of them.
        let n = unsafe { self.comp.consume(buf) };
        self.in_flight = self.in_flight.saturating_sub(n as u64);
        n
    }

    /// How many descriptors the tx ring can take now, after what is
    /// pending, at most `max`.
    pub fn tx_room(&mut self, max: u32) -> u32 {
        if !self.pending.is_empty() {
            return 0;
        }
        self.tx.nb_free(max).min(max)
    }

    /// Put `descs` on the tx ring; what does not fit waits in `pending`.
    pub fn send(&mut self, descs: &[FrameDesc]) {
        self.flush_pending();
        if !self.pending.is_empty() {
            self.pending.extend(descs.iter().copied());
            return;
        }
        // SAFETY: the caller gives up these frames (ours or lent to us) to
        // the kernel until they come back on the completion ring.
        let n = unsafe { self.tx.produce(descs) };
        self.in_flight += n as u64;
        self.pending.extend(descs[n..].iter().copied());
    }

    /// Move what waits in `pending` onto the tx ring, as far as it fits.
    pub fn flush_pending(&mut self) {
        while !self.pending.is_empty() {
            let (front, _) = self.pending.as_slices();
            let len = front.len();
            // SAFETY: as in `send`.
            let n = unsafe { self.tx.produce(front) };
            self.in_flight += n as u64;
            self.pending.drain(..n);
            if n < len || n == 0 {
                break;
            }
        }
    }

    /// Descriptors on the tx ring the kernel has not taken yet.
    pub fn tx_unsent(&mut self) -> u32 {
        self.ring_size.saturating_sub(self.tx.nb_free_exact())
    }

    /// Make the kernel transmit what is on the tx ring. In copy mode (veth)
    /// each `sendto` sends at most a small budget of frames (32 on current
    /// kernels) and returns EAGAIN, so kick until the ring is empty or a
    /// kick made no progress (completion ring full, device busy); the
    /// number of kicks is bounded by the ring size.
    pub fn kick(&mut self) -> Kick {
        let mut k = Kick::default();
        let mut unsent = self.tx_unsent();
        let max_kicks = self.ring_size / 16 + 2;
        while unsent > 0 && k.kicks < u64::from(max_kicks) {
            if !self.tx.needs_wakeup() {
                // The driver consumes the ring on its own (zero copy).
                break;
            }
            k.kicks += 1;
            if self.tx.wakeup().is_err() {
                k.errors += 1;
                break;
            }
            let now_unsent = self.tx_unsent();
            if now_unsent >= unsent {
                break;
            }
            unsent = now_unsent;
        }
        k
    }

    /// Kernel statistics of this socket (zeros if the kernel refuses).
    pub fn stats(&self) -> SocketStats {
        match self.rx.fd().xdp_statistics() {
            Ok(s) => SocketStats {
                rx_dropped: s.rx_dropped(),
                rx_invalid_descs: s.rx_invalid_descs(),
                rx_ring_full: s.rx_ring_full(),
                rx_fill_ring_empty_descs: s.rx_fill_ring_empty_descs(),
                tx_invalid_descs: s.tx_invalid_descs(),
                tx_ring_empty_descs: s.tx_ring_empty_descs(),
            },
            Err(e) => {
                tracing::warn!(
                    ifname = %self.ifname,
                    queue = self.queue,
                    error = %e,
                    "reading XDP_STATISTICS failed"
                );
                SocketStats::default()
            }
        }
    }
}
