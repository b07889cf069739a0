//! One worker: a pinned thread serving one rx queue of both interfaces of a
//! port pair, owning some of the pair's trees.
//!
//! Frame ownership. The pair's UMEM is split: worker k owns frames
//! `[k*F, (k+1)*F)` and only ever puts its own frames in its fill rings, so
//! everything it receives is its own. A frame is held by exactly one party
//! at a time — its owner's free list, the kernel (fill/rx, tx/completion
//! rings), a tree, a hand-over ring, or another worker — and the owner
//! counts where each of its frames is ([`FramePlaces`]). Frames that finish
//! (sent or dropped) at another worker come home over a return ring.
//!
//! One loop iteration: read the clock once; obey commands; reap
//! completions and returned frames; refill fill rings; read a batch from
//! each socket and enqueue it (or hand it to the tree's owner); take
//! handed-over frames; return dropped frames; dequeue what the trees allow
//! into the egress tx rings and kick them; if nothing happened, sleep in
//! `ppoll` until a socket, the doorbell or the next shaper deadline (at
//! most 10 ms).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use weir_dataplane::histogram::LogHistogram;
use weir_dataplane::htb::{ClassChange, SpecError};
use weir_dataplane::packet::{flags, Frame, Packet};
use weir_dataplane::parse::mark_ce;
use weir_dataplane::shaper::Shaper;
use xsk_rs::{FrameDesc, Umem};

use super::clock;
use super::handover::{Doorbell, Handover, Lane, ReturnRing};
use super::port::Port;
use super::stats::{FramePlaces, SocketStats, TreeSnapshot, WorkerCounters, WorkerSnapshot};

/// The longest a worker sleeps without looking at its command channel:
/// bounds how late a snapshot is answered when idle.
const MAX_SLEEP_NS: u64 = 10_000_000;
/// Sleep bound while a tree waits for tx ring room (POLLOUT should wake us
/// earlier; this guards against a driver that never signals it).
const TX_BLOCKED_SLEEP_NS: u64 = 1_000_000;
/// Shortest sleep when a tree says "now" but gave nothing: avoids spinning
/// on a deadline that can't be met.
const MIN_SLEEP_NS: u64 = 20_000;
/// How long `Flush` waits for frames on the tx rings to complete.
const DRAIN_NS: u64 = 100_000_000;

/// A request from the [`super::DataPath`] handle, answered at the worker's
/// next batch boundary.
pub(crate) enum Command {
    Snapshot(Sender<WorkerReport>),
    ChangeClass {
        tree: usize,
        class: u32,
        change: ClassChange,
        reply: Sender<Result<(), SpecError>>,
    },
    /// Swap a tree for one built from a new configuration (a reload that
    /// adds or removes classes): queued packets move to `map[old class]`
    /// (see `Shaper::migrate_into`), frames of dropped ones come back.
    ReplaceTree {
        tree: usize,
        shaper: Box<Shaper>,
        map: Vec<Option<u32>>,
        reply: Sender<()>,
    },
    /// Stop receiving (after one last pass over the rx rings).
    Quiesce(Sender<()>),
    /// Take every handed-over frame, record what is queued, flush the
    /// trees, wait (bounded) for tx completions. Sent once every worker has
    /// quiesced, so no more frames are handed over.
    Flush(Sender<Vec<(String, u64)>>),
    /// Take the last returned frames, report and exit.
    Finish(Sender<WorkerReport>),
}

/// A worker's answer to a snapshot: its own state, its trees', and the
/// kernel statistics of its sockets (by interface index).
pub(crate) struct WorkerReport {
    pub worker: WorkerSnapshot,
    pub trees: Vec<(usize, TreeSnapshot)>,
    pub sockets: Vec<(usize, SocketStats)>,
}

/// A tree this worker owns.
pub(crate) struct OwnedTree {
    pub name: String,
    /// Position in the data path's list of trees (configuration order).
    pub global: usize,
    pub pair: String,
    pub upload: bool,
    pub shaped: bool,
    pub shaper: Shaper,
    /// Index into `ports` of the egress socket.
    pub egress: usize,
}

/// Where frames received on one of the worker's sockets go.
pub(crate) enum Route {
    /// Into `trees[i]`.
    Local(usize),
    /// To the owner of the tree, pair-local worker `peer`, its tree `tree`.
    Remote { peer: usize, tree: u32 },
}

/// Everything a worker is built from (made by `DataPath::start`, moved
/// into the thread).
pub(crate) struct WorkerInit {
    pub index: usize,
    /// Pair-local index (= the queue it serves).
    pub local: usize,
    pub core: Option<usize>,
    pub pair: String,
    pub queue: u32,
    pub umem: Umem,
    pub frame_size: u32,
    pub frames_per_worker: u32,
    /// One descriptor per frame of the pair's UMEM, as `Umem::new` made
    /// them.
    pub descs: Vec<FrameDesc>,
    /// `[inside, outside]`.
    pub ports: Vec<Port>,
    pub trees: Vec<OwnedTree>,
    /// By ingress port: `[inside → upload, outside → download]`.
    pub routes: [Route; 2],
    /// Indexed by pair-local worker: lane from this worker to it.
    pub lanes_out: Vec<Option<Arc<Lane>>>,
    /// Lanes from other workers to this one.
    pub lanes_in: Vec<Arc<Lane>>,
    /// Indexed by pair-local worker: ring carrying its frames home.
    pub returns_out: Vec<Option<Arc<ReturnRing>>>,
    /// Rings bringing this worker's frames home.
    pub returns_in: Vec<Arc<ReturnRing>>,
    /// Indexed by pair-local worker.
    pub bells: Vec<Arc<Doorbell>>,
    pub commands: Receiver<Command>,
    pub batch: u32,
    pub busy_poll: bool,
    /// Nice value for this thread (when `rtprio` is 0 or refused).
    pub nice: i32,
    /// SCHED_FIFO priority for this thread; 0: the normal scheduler.
    pub rtprio: u8,
    pub ring_size: u32,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    Quiesced,
    Flushed,
}

/// Anomalies warned about once per worker (then only counted).
#[derive(Clone, Copy)]
enum Warn {
    TxError = 1,
    BadDesc = 2,
    HandoverFull = 4,
    FillStarved = 8,
    ReturnFull = 16,
}

pub(crate) struct Worker {
    index: usize,
    local: usize,
    core: Option<usize>,
    pair: String,
    queue: u32,
    umem: Umem,
    frame_size: u64,
    frames_per_worker: u32,
    /// First frame number this worker owns.
    first: u32,
    descs: Vec<FrameDesc>,
    free: Vec<u32>,
    ports: Vec<Port>,
    trees: Vec<OwnedTree>,
    routes: [Route; 2],
    lanes_out: Vec<Option<Arc<Lane>>>,
    lanes_in: Vec<Arc<Lane>>,
    returns_out: Vec<Option<Arc<ReturnRing>>>,
    returns_in: Vec<Arc<ReturnRing>>,
    bells: Vec<Arc<Doorbell>>,
    /// Per pair-local worker: it should be woken after this iteration.
    ring_bell: Vec<bool>,
    commands: Receiver<Command>,
    batch: usize,
    busy_poll: bool,
    nice: i32,
    /// The SCHED_FIFO priority asked for, and the one it runs at (0: the
    /// normal scheduler; also when the kernel refused).
    rtprio_asked: u8,
    rtprio: u8,
    /// The nice value in force: None under SCHED_FIFO (nice does not
    /// apply) or when setting it failed.
    nice_applied: Option<i32>,
    /// How late the worker woke for a shaper deadline: a class loses the
    /// tokens of any lateness beyond its burst, so this is what an
    /// operator reads when classes come out short.
    wake_late: LogHistogram,
    /// Own frames kept in each fill ring.
    fill_target: u32,
    state: State,
    counters: WorkerCounters,
    /// Own frames queued in own trees.
    queued_own: u64,
    /// Own frames between dequeue and completion at own sockets.
    tx_own: u64,
    /// Per pair-local worker: own frames pushed on the lane to it.
    pushed: Vec<u64>,
    /// Own frames that came back over return rings.
    returned: u64,
    /// Frames of other workers whose return ring was (impossibly) full;
    /// retried every iteration, never lost.
    stuck: Vec<u32>,
    warned: u32,
    // Scratch buffers, sized once: nothing is allocated per packet.
    rx_buf: Vec<FrameDesc>,
    comp_buf: Vec<FrameDesc>,
    fill_buf: Vec<FrameDesc>,
    tx_buf: Vec<FrameDesc>,
    out: Vec<Packet>,
    handed: Vec<Handover>,
    pollfds: Vec<libc::pollfd>,
}

impl Worker {
    pub fn new(init: WorkerInit) -> Worker {
        let f = init.frames_per_worker;
        let first = init.local as u32 * f;
        let batch = init.batch.max(1) as usize;
        // Keep a quarter of the share in each of the two fill rings (at
        // least a batch, at most the ring): the rest is for queues and tx.
        let fill_target = (f / 4).max(init.batch).min(init.ring_size);
        let peers = init.bells.len();
        let mut free: Vec<u32> = (first..first + f).rev().collect();
        free.shrink_to_fit();
        let mut w = Worker {
            index: init.index,
            local: init.local,
            core: init.core,
            pair: init.pair,
            queue: init.queue,
            umem: init.umem,
            frame_size: u64::from(init.frame_size),
            frames_per_worker: f,
            first,
            descs: init.descs,
            free,
            ports: init.ports,
            trees: init.trees,
            routes: init.routes,
            lanes_out: init.lanes_out,
            lanes_in: init.lanes_in,
            returns_out: init.returns_out,
            returns_in: init.returns_in,
            bells: init.bells,
            ring_bell: vec![false; peers],
            commands: init.commands,
            batch,
            busy_poll: init.busy_poll,
            nice: init.nice,
            rtprio_asked: init.rtprio,
            rtprio: init.rtprio,
            nice_applied: None,
            wake_late: LogHistogram::default(),
            fill_target,
            state: State::Running,
            counters: WorkerCounters::default(),
            queued_own: 0,
            tx_own: 0,
            pushed: vec![0; peers],
            returned: 0,
            stuck: Vec::new(),
            warned: 0,
            rx_buf: vec![FrameDesc::default(); batch],
            comp_buf: vec![FrameDesc::default(); batch.max(64)],
            fill_buf: Vec::with_capacity(fill_target as usize),
            tx_buf: Vec::with_capacity(batch),
            out: Vec::with_capacity(batch),
            handed: Vec::with_capacity(batch * 4),
            pollfds: Vec::with_capacity(8),
        };
        // Fill the rings before the sockets are registered in the XSKMAP,
        // so the first frames find room.
        w.refill();
        w
    }

    /// The thread body.
    pub fn run(mut self) {
        if let Some(core) = self.core {
            if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                tracing::warn!(worker = self.index, core, "could not pin worker to core");
                self.core = None;
            }
        }
        self.set_priority();
        if !clock::tighten_timer_slack() {
            tracing::debug!(worker = self.index, "PR_SET_TIMERSLACK refused");
        }
        tracing::info!(
            worker = self.index,
            core = ?self.core,
            sched = %sched_name(self.rtprio_asked, self.rtprio, self.nice_applied),
            pair = %self.pair,
            queue = self.queue,
            trees = ?self.trees.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
            "worker started"
        );
        loop {
            let now = clock::now_ns();
            match self.commands() {
                Ok(true) => {}
                Ok(false) => break,
                Err(()) => {
                    tracing::warn!(worker = self.index, "control handle gone; worker exits");
                    break;
                }
            }
            let mut work = self.reap();
            if self.state == State::Running {
                self.refill();
                work |= self.receive(now);
            }
            work |= self.take_handed(now);
            self.release_drops();
            if self.state != State::Flushed {
                work |= self.transmit(now);
            }
            self.ring_bells();
            if work {
                self.counters.batches += 1;
            } else {
                self.counters.empty_polls += 1;
                self.sleep(now);
            }
        }
        tracing::info!(worker = self.index, "worker stopped");
    }

    /// SCHED_FIFO at `rtprio`, or the normal scheduler at `nice`; when the
    /// kernel refuses real-time, warn (with what to do) and fall back.
    fn set_priority(&mut self) {
        if self.rtprio > 0 && self.busy_poll && self.core.is_none() {
            // Config checking made sure every spinning real-time worker has
            // a core of its own; unpinned, it would spin on any core and
            // starve whatever runs there.
            tracing::warn!(
                worker = self.index,
                rtprio = self.rtprio,
                "busy-polling worker is not pinned, so it does not run SCHED_FIFO (it would starve whatever shares its core); it runs at the nice value"
            );
            self.rtprio = 0;
        }
        if self.rtprio > 0 {
            match clock::set_fifo(self.rtprio) {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(
                        worker = self.index,
                        rtprio = self.rtprio,
                        nice = self.nice,
                        error = %e,
                        "could not run the worker SCHED_FIFO (needs CAP_SYS_NICE, and an RT budget in cpu.rt_runtime_us when the cgroup has one); it runs at the nice value instead and may wake late on a busy box"
                    );
                    self.rtprio = 0;
                }
            }
        }
        // Linux nice values are per thread (PRIO_PROCESS with a tid).
        // SAFETY: gettid has no preconditions; setpriority only reads its
        // integer arguments.
        let rc = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, self.nice)
        };
        if rc == 0 {
            self.nice_applied = Some(self.nice);
        } else {
            tracing::warn!(
                worker = self.index,
                nice = self.nice,
                error = %std::io::Error::last_os_error(),
                "could not set the worker's nice value (needs CAP_SYS_NICE for negative values)"
            );
        }
    }

    /// Obey pending commands. Ok(false): exit now; Err: the handle is gone.
    fn commands(&mut self) -> Result<bool, ()> {
        loop {
            let cmd = match self.commands.try_recv() {
                Ok(c) => c,
                Err(crossbeam_channel::TryRecvError::Empty) => return Ok(true),
                Err(crossbeam_channel::TryRecvError::Disconnected) => return Err(()),
            };
            let now = clock::now_ns();
            match cmd {
                Command::Snapshot(reply) => {
                    // A dropped receiver (caller timed out) is not our
                    // problem: ignore send errors.
                    let _ = reply.send(self.report());
                }
                Command::ChangeClass {
                    tree,
                    class,
                    change,
                    reply,
                } => {
                    let r = match self.trees.get_mut(tree) {
                        Some(t) => t.shaper.htb_mut().change_class(class, &change, now),
                        None => Err(SpecError::BadParent { class }),
                    };
                    let _ = reply.send(r);
                }
                Command::ReplaceTree {
                    tree,
                    shaper,
                    map,
                    reply,
                } => {
                    if let Some(t) = self.trees.get_mut(tree) {
                        let next = t.shaper.migrate_into(*shaper, &map, now);
                        t.shaper = next;
                        t.shaped = true;
                    }
                    self.release_drops();
                    let _ = reply.send(());
                }
                Command::Quiesce(reply) => {
                    if self.state == State::Running {
                        // The sockets are out of the XSKMAP already: take
                        // what the kernel delivered before, then stop.
                        self.reap();
                        self.refill();
                        self.receive(now);
                        self.ring_bells();
                        self.state = State::Quiesced;
                    }
                    let _ = reply.send(());
                }
                Command::Flush(reply) => {
                    let queued = self.flush(now);
                    let _ = reply.send(queued);
                }
                Command::Finish(reply) => {
                    self.reap();
                    let _ = reply.send(self.report());
                    return Ok(false);
                }
            }
        }
    }

    // ---- frames -----------------------------------------------------------

    #[inline]
    fn frame_no(&self, addr: u64) -> Option<u32> {
        let n = addr / self.frame_size;
        if (n as usize) < self.descs.len() {
            Some(n as u32)
        } else {
            None
        }
    }

    #[inline]
    fn owner(&self, n: u32) -> usize {
        (n / self.frames_per_worker) as usize
    }

    #[inline]
    fn is_own(&self, n: u32) -> bool {
        n.wrapping_sub(self.first) < self.frames_per_worker
    }

    /// A frame this worker is done with: to the free list if its own, home
    /// otherwise.
    #[inline]
    fn release(&mut self, n: u32) {
        if self.is_own(n) {
            self.free.push(n);
        } else {
            self.send_home(n);
        }
    }

    fn send_home(&mut self, n: u32) {
        let owner = self.owner(n);
        match self.returns_out.get(owner).and_then(Option::as_ref) {
            Some(ring) => {
                if ring.push(n).is_ok() {
                    self.counters.returns_out += 1;
                    self.ring_bell[owner] = true;
                } else {
                    self.warn_once(Warn::ReturnFull, "return ring full; frame kept for retry");
                    self.stuck.push(n);
                }
            }
            None => {
                // A frame of no worker of this pair: only a bad descriptor
                // can get here, and those are filtered on arrival.
                self.counters.bad_descs += 1;
            }
        }
    }

    fn warn_once(&mut self, kind: Warn, msg: &str) {
        if self.warned & kind as u32 == 0 {
            self.warned |= kind as u32;
            tracing::warn!(
                worker = self.index,
                "{msg} (counted from now on, not logged)"
            );
        }
    }

    /// Completions and returned frames. True if any came back.
    fn reap(&mut self) -> bool {
        let mut any = false;
        for p in 0..self.ports.len() {
            loop {
                let n = self.ports[p].completions(&mut self.comp_buf);
                if n == 0 {
                    break;
                }
                any = true;
                for i in 0..n {
                    let addr = self.comp_buf[i].addr() as u64;
                    match self.frame_no(addr) {
                        Some(f) => {
                            if self.is_own(f) {
                                self.tx_own -= 1;
                            }
                            self.release(f);
                        }
                        None => {
                            self.counters.bad_descs += 1;
                            self.warn_once(Warn::BadDesc, "completion outside the UMEM");
                        }
                    }
                }
                if n < self.comp_buf.len() {
                    break;
                }
            }
            // Completions made room: move what waited for it.
            if !self.ports[p].pending.is_empty() {
                self.ports[p].flush_pending();
            }
        }
        for r in 0..self.returns_in.len() {
            while let Some(f) = self.returns_in[r].pop() {
                self.free.push(f);
                self.returned += 1;
                self.counters.returns_in += 1;
                any = true;
            }
        }
        if !self.stuck.is_empty() {
            let stuck = std::mem::take(&mut self.stuck);
            for f in stuck {
                self.send_home(f);
            }
        }
        any
    }

    /// Top up both fill rings from the free list.
    fn refill(&mut self) {
        for p in 0..self.ports.len() {
            let port = &mut self.ports[p];
            let want = u64::from(self.fill_target).saturating_sub(port.in_fill);
            if want == 0 {
                continue;
            }
            let room = u64::from(port.fill_room(want as u32));
            let k = room.min(self.free.len() as u64) as usize;
            if k == 0 {
                if port.in_fill == 0 && self.free.is_empty() {
                    self.counters.fill_ring_starved += 1;
                    self.warn_once(
                        Warn::FillStarved,
                        "out of free frames: a fill ring is empty (frames are all queued \
                         or in flight; raise frames_per_worker or lower queue limits)",
                    );
                }
                continue;
            }
            self.fill_buf.clear();
            let start = self.free.len() - k;
            for &f in &self.free[start..] {
                self.fill_buf.push(self.descs[f as usize]);
            }
            // The ring takes a prefix of what it is given; the rest stays
            // free.
            let took = port.fill(&self.fill_buf);
            self.free.drain(start..start + took);
        }
    }

    /// Read a batch from each socket (while running).
    fn receive(&mut self, now: u64) -> bool {
        let mut any = false;
        for p in 0..self.ports.len() {
            let n = self.ports[p].receive(&mut self.rx_buf);
            if n == 0 {
                continue;
            }
            any = true;
            self.counters.rx_packets += n as u64;
            let mut good = 0;
            for i in 0..n {
                let d = self.rx_buf[i];
                self.counters.rx_bytes += d.lengths().data() as u64;
                match self.frame_no(d.addr() as u64) {
                    Some(f) if self.is_own(f) => {
                        self.descs[f as usize] = d;
                        self.rx_buf[good] = d;
                        good += 1;
                    }
                    _ => {
                        // Not a frame we gave the kernel: ignore it rather
                        // than corrupt someone else's frame.
                        self.counters.bad_descs += 1;
                        self.warn_once(Warn::BadDesc, "rx descriptor outside our frames");
                    }
                }
            }
            match self.routes[p] {
                Route::Local(t) => {
                    self.queued_own += good as u64;
                    let umem = &self.umem;
                    touch_headers(umem, &self.rx_buf[..good]);
                    let tree = &mut self.trees[t];
                    tree.shaper.enqueue_batch(
                        self.rx_buf[..good].iter().map(|d| {
                            // SAFETY: `d` came from our rx ring: the kernel
                            // wrote the frame and its length and has let go
                            // of it; this worker owns it exclusively now.
                            let bytes = unsafe { umem.data(d) }.contents();
                            (
                                Frame {
                                    addr: d.addr() as u64,
                                    len: bytes.len() as u32,
                                },
                                bytes,
                            )
                        }),
                        now,
                    );
                }
                Route::Remote { peer, tree } => {
                    for i in 0..good {
                        let d = self.rx_buf[i];
                        let pushed = match self.lanes_out.get(peer).and_then(Option::as_ref) {
                            Some(lane) => lane.ring.push(Handover { desc: d, tree }).is_ok(),
                            None => false,
                        };
                        if pushed {
                            self.pushed[peer] += 1;
                            self.counters.handover_out += 1;
                            self.ring_bell[peer] = true;
                        } else {
                            self.counters.handover_full_drops += 1;
                            self.warn_once(
                                Warn::HandoverFull,
                                "hand-over ring full; frame dropped (raise handover_ring)",
                            );
                            self.free.push((d.addr() as u64 / self.frame_size) as u32);
                        }
                    }
                }
            }
        }
        any
    }

    /// Frames other workers handed over for trees this one owns.
    fn take_handed(&mut self, now: u64) -> bool {
        let mut any = false;
        let cap = self.handed.capacity();
        for l in 0..self.lanes_in.len() {
            self.handed.clear();
            while self.handed.len() < cap {
                match self.lanes_in[l].ring.pop() {
                    Some(h) => self.handed.push(h),
                    None => break,
                }
            }
            if self.handed.is_empty() {
                continue;
            }
            any = true;
            let k = self.handed.len();
            // Published before any of these frames can be dropped and sent
            // home, so the owner never sees a return it can't place.
            self.lanes_in[l]
                .popped
                .fetch_add(k as u64, Ordering::Release);
            self.counters.handover_in += k as u64;
            for i in 0..k {
                let d = self.handed[i].desc;
                match self.frame_no(d.addr() as u64) {
                    Some(f) => self.descs[f as usize] = d,
                    None => {
                        self.counters.bad_descs += 1;
                        self.handed[i].tree = u32::MAX;
                    }
                }
            }
            for t in 0..self.trees.len() {
                let umem = &self.umem;
                let handed = &self.handed;
                let tree = &mut self.trees[t];
                if !handed.iter().any(|h| h.tree as usize == t) {
                    continue;
                }
                tree.shaper.enqueue_batch(
                    handed.iter().filter(|h| h.tree as usize == t).map(|h| {
                        // SAFETY: the sender received this frame and
                        // gave it up when it pushed it on the lane; it
                        // is ours alone until we release it.
                        let bytes = unsafe { umem.data(&h.desc) }.contents();
                        (
                            Frame {
                                addr: h.desc.addr() as u64,
                                len: bytes.len() as u32,
                            },
                            bytes,
                        )
                    }),
                    now,
                );
            }
            // A handed frame naming a tree we don't have (a bug) goes home
            // rather than getting lost.
            for i in 0..k {
                let h = self.handed[i];
                if h.tree as usize >= self.trees.len() {
                    if let Some(f) = self.frame_no(h.desc.addr() as u64) {
                        self.release(f);
                    }
                }
            }
        }
        any
    }

    /// Frames the trees dropped go back to the free list (or home).
    fn release_drops(&mut self) {
        for t in 0..self.trees.len() {
            // Collect first: `take_drops` borrows the tree.
            let mut dropped = std::mem::take(&mut self.out);
            dropped.clear();
            dropped.extend(self.trees[t].shaper.take_drops().map(|d| d.packet));
            for p in &dropped {
                if let Some(f) = self.frame_no(p.addr) {
                    if self.is_own(f) {
                        self.queued_own -= 1;
                    }
                    self.release(f);
                }
            }
            dropped.clear();
            self.out = dropped;
        }
    }

    /// Dequeue what each tree allows into its egress tx ring, then kick.
    fn transmit(&mut self, now: u64) -> bool {
        let mut any = false;
        let batch = self.batch as u32;
        for t in 0..self.trees.len() {
            let e = self.trees[t].egress;
            if self.trees[t].shaper.next_deadline().is_none() {
                continue;
            }
            let room = self.ports[e].tx_room(batch);
            if room == 0 {
                if self.trees[t]
                    .shaper
                    .next_deadline()
                    .is_some_and(|d| d <= now)
                {
                    self.counters.tx_ring_full += 1;
                }
                continue;
            }
            self.out.clear();
            let n = self.trees[t]
                .shaper
                .dequeue_batch(now, &mut self.out, room as usize);
            if n == 0 {
                continue;
            }
            any = true;
            self.tx_buf.clear();
            for i in 0..n {
                let p = self.out[i];
                let Some(f) = self.frame_no(p.addr) else {
                    self.counters.bad_descs += 1;
                    continue;
                };
                let mut d = self.descs[f as usize];
                if p.flags & flags::MARK_CE != 0 {
                    // SAFETY: the frame was dequeued from a tree this
                    // worker owns, so it holds the frame exclusively until
                    // it is put on the tx ring below.
                    let mut data = unsafe { self.umem.data_mut(&mut d) };
                    mark_ce(data.contents_mut(), p.l3_offset);
                }
                if self.is_own(f) {
                    self.queued_own -= 1;
                    self.tx_own += 1;
                }
                self.counters.tx_packets += 1;
                self.counters.tx_bytes += u64::from(p.len);
                self.tx_buf.push(d);
            }
            self.ports[e].send(&self.tx_buf);
        }
        for p in 0..self.ports.len() {
            let k = self.ports[p].kick();
            self.counters.tx_kicks += k.kicks;
            if k.errors > 0 {
                self.counters.tx_errors += k.errors;
                self.warn_once(Warn::TxError, "sendto on an AF_XDP socket failed");
            }
        }
        any
    }

    fn ring_bells(&mut self) {
        for k in 0..self.ring_bell.len() {
            if std::mem::take(&mut self.ring_bell[k]) {
                self.bells[k].ring_if_sleeping();
            }
        }
    }

    /// Nothing to do: sleep until a socket has frames (or tx room we wait
    /// for), a peer or the control thread rings, or the next shaper
    /// deadline; never longer than [`MAX_SLEEP_NS`].
    fn sleep(&mut self, now: u64) {
        if self.busy_poll {
            std::hint::spin_loop();
            return;
        }
        // The loop's `now` is as old as this iteration's work: a timeout
        // computed from it would oversleep every deadline by that much.
        let now = clock::now_ns().max(now);
        let mut timeout = MAX_SLEEP_NS;
        // When this sleep means to wake for a shaper deadline: the
        // deadline itself, or 20 µs from now when it is that close.
        let mut wake_at: Option<u64> = None;
        self.pollfds.clear();
        if self.state == State::Running {
            for p in &self.ports {
                self.pollfds.push(libc::pollfd {
                    fd: p.fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
        }
        if self.state != State::Flushed {
            for t in 0..self.trees.len() {
                let Some(deadline) = self.trees[t].shaper.next_deadline() else {
                    continue;
                };
                let e = self.trees[t].egress;
                let blocked = deadline <= now
                    && (self.ports[e].tx_room(1) == 0 || !self.ports[e].pending.is_empty());
                if blocked {
                    // Retry when completions make room, not on new rx.
                    let fd = self.ports[e].fd();
                    if !self
                        .pollfds
                        .iter()
                        .any(|p| p.fd == fd && p.events & libc::POLLOUT != 0)
                    {
                        self.pollfds.push(libc::pollfd {
                            fd,
                            events: libc::POLLOUT,
                            revents: 0,
                        });
                    }
                    timeout = timeout.min(TX_BLOCKED_SLEEP_NS);
                } else {
                    let wait = deadline.saturating_sub(now).max(MIN_SLEEP_NS);
                    timeout = timeout.min(wait);
                    wake_at = Some(wake_at.map_or(now + wait, |w| w.min(now + wait)));
                }
            }
        }
        // Frames on their way out complete soon; look again shortly so they
        // return to the free list (completions don't wake a poll).
        if self.ports.iter().any(|p| p.in_flight > 0) {
            timeout = timeout.min(TX_BLOCKED_SLEEP_NS);
        }
        let me = &self.bells[self.local];
        self.pollfds.push(libc::pollfd {
            fd: me.raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        me.going_to_sleep();
        let more = !self.commands.is_empty()
            || self.lanes_in.iter().any(|l| !l.ring.is_empty())
            || self.returns_in.iter().any(|r| !r.is_empty());
        if more {
            me.awake();
            return;
        }
        let ts = clock::timespec(timeout);
        // SAFETY: `pollfds` is a live array of initialised pollfd of the
        // given length; `ts` outlives the call; no signal mask is passed.
        let rc = unsafe {
            libc::ppoll(
                self.pollfds.as_mut_ptr(),
                self.pollfds.len() as libc::nfds_t,
                &ts,
                std::ptr::null(),
            )
        };
        if let Some(due) = wake_at {
            // Only a deadline that passed counts: a frame or a doorbell
            // may have woken us before it.
            let woke = clock::now_ns();
            if woke >= due {
                self.wake_late.record(woke - due);
            }
        }
        let me = &self.bells[self.local];
        me.awake();
        self.counters.sleeps += 1;
        if rc > 0 {
            self.counters.wakeups += 1;
            if self.pollfds.last().is_some_and(|p| p.revents != 0) {
                me.clear();
            }
        }
    }

    /// Stop: take what was handed over, record what is queued, flush the
    /// trees, and give the tx rings a bounded time to complete.
    fn flush(&mut self, now: u64) -> Vec<(String, u64)> {
        self.state = State::Flushed;
        self.take_handed(now);
        let queued = self
            .trees
            .iter()
            .map(|t| (t.name.clone(), t.shaper.counters().queued))
            .collect();
        for t in &mut self.trees {
            t.shaper.flush();
        }
        self.release_drops();
        let until = clock::now_ns() + DRAIN_NS;
        loop {
            for p in 0..self.ports.len() {
                self.ports[p].flush_pending();
                self.ports[p].kick();
            }
            self.reap();
            let busy = self
                .ports
                .iter()
                .any(|p| p.in_flight > 0 || !p.pending.is_empty());
            if !busy || clock::now_ns() >= until {
                break;
            }
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        self.ring_bells();
        queued
    }

    // ---- reports ----------------------------------------------------------

    fn places(&self) -> FramePlaces {
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
        FramePlaces {
            total: u64::from(self.frames_per_worker),
            free: self.free.len() as u64,
            fill: self.ports.iter().map(|p| p.in_fill).sum(),
            queued: self.queued_own,
            tx: self.tx_own,
            handover,
            lent: out.saturating_sub(handover),
        }
    }

    fn report(&self) -> WorkerReport {
        let worker = WorkerSnapshot {
            index: self.index,
            core: self.core,
            pair: self.pair.clone(),
            queue: self.queue,
            counters: self.counters,
            frames: self.places(),
            rtprio_asked: self.rtprio_asked,
            rtprio: self.rtprio,
            nice: self.nice_applied,
            wake_late: self.wake_late.clone(),
        };
        let trees = self
            .trees
            .iter()
            .map(|t| {
                let htb = t.shaper.htb();
                let n = htb.class_count();
                (
                    t.global,
                    TreeSnapshot {
                        name: t.name.clone(),
                        pair: t.pair.clone(),
                        upload: t.upload,
                        shaped: t.shaped,
                        worker: self.index,
                        frames: t.shaper.counters(),
                        classes: (0..n).map(|c| htb.class_stats(c)).collect(),
                        qdiscs: (0..n).map(|c| htb.qdisc_stats(c)).collect(),
                        sojourn: t.shaper.sojourn().clone(),
                    },
                )
            })
            .collect();
        let sockets = self.ports.iter().map(|p| (p.iface, p.stats())).collect();
        WorkerReport {
            worker,
            trees,
            sockets,
        }
    }
}

/// How a worker is scheduled, as `chrt`/`ps` would say it: "fifo 10",
/// "nice -10", "nice -10 (fifo 10 refused)"; "nice 0 (not set)" when even
/// the nice value could not be set.
pub fn sched_name(rtprio_asked: u8, rtprio: u8, nice: Option<i32>) -> String {
    if rtprio > 0 {
        return format!("fifo {rtprio}");
    }
    let mut s = match nice {
        Some(n) => format!("nice {n}"),
        None => "nice 0 (not set)".to_string(),
    };
    if rtprio_asked > 0 {
        s.push_str(&format!(" (fifo {rtprio_asked} refused)"));
    }
    s
}

/// Read the first byte of each received frame before the batch is parsed.
/// The kernel wrote these frames (on whichever CPU ran the rx softirq), so
/// the first touch of each is a cache miss; independent loads in a row let
/// the CPU overlap the misses, where the parser would take them one after
/// the other (`parse_frame` was the largest user-space cost of a worker
/// forwarding 64-byte frames: bench/run.sh's profile). The headers the
/// classifier reads (Ethernet, VLAN tags, IPv4/IPv6, ports) are in the
/// first cache line of the frame for the common cases.
fn touch_headers(umem: &Umem, descs: &[FrameDesc]) {
    let mut acc = 0u8;
    for d in descs {
        // SAFETY: the caller owns these frames (fresh off our rx ring, the
        // kernel has let go of them); reading them aliases no writer.
        acc ^= unsafe { umem.data(d) }
            .contents()
            .first()
            .copied()
            .unwrap_or(0);
    }
    std::hint::black_box(acc);
}
