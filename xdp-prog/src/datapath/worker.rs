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
//! most 10 ms). [`Worker::run`] is that loop; each step is one method.
//!
//! The worker's state is grouped by concern: [`Frames`] (its UMEM share
//! and where its frames are), [`Peers`] (lanes, return rings, doorbells),
//! [`Sched`] (core and priority), [`Stats`] (counters) and [`Scratch`]
//! (buffers sized once). One file, about 1,000 lines: every step moves
//! frames between the places [`FramePlaces`] counts, and the accounting is
//! checked by reading the steps side by side.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use weir_dataplane::app::Decision;
use weir_dataplane::histogram::LogHistogram;
use weir_dataplane::htb::{ClassChange, InPlaceError, SpecError};
use weir_dataplane::packet::{flags, Frame, Packet};
use weir_dataplane::parse::mark_ce;
use weir_dataplane::remark::{remark_dscp, Remarked};
use weir_dataplane::shaper::{Shaper, Superseded, TreeEdit};
use xsk_rs::{FrameDesc, Umem};

use super::clock::{self, Sched};
use super::flows::{FlowQuery, TopFlows, Walk};
use super::handover::{Doorbell, Handover, Home, Lane, Peers, ReturnRing};
use super::port::Port;
use super::stats::{
    AppsSnapshot, FramePlaces, SocketStats, TreeSnapshot, WorkerCounters, WorkerSnapshot,
};

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

/// What a worker answers to [`Command::ReplaceTree`]: the tree it
/// replaced (None: no such tree), and how long the swap held the worker.
pub(crate) struct Replaced {
    pub old: Option<Box<Shaper>>,
    pub took: Duration,
}

/// What a worker answers to [`Command::EditTree`].
pub(crate) struct Edited {
    /// What the tree had before, or why the edit was refused (nothing
    /// changed).
    pub result: Result<Box<Superseded>, EditError>,
    pub took: Duration,
}

/// Why [`Command::EditTree`] changed nothing.
#[derive(Debug)]
pub(crate) enum EditError {
    NoTree,
    Refused(InPlaceError),
}

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
        reply: Sender<Replaced>,
    },
    /// Change a tree in place (`Shaper::edit`): leaves removed and added,
    /// new filters. Answers what the tree had before, to be freed by the
    /// caller, and how long the edit held the worker.
    EditTree {
        tree: usize,
        edit: Box<TreeEdit>,
        reply: Sender<Edited>,
    },
    /// The top flows of tree `tree`'s flow table: walked a few sets per
    /// loop iteration (`flows.rs`), answered when done (None: the tree has
    /// no apps).
    TopFlows {
        tree: usize,
        query: FlowQuery,
        reply: Sender<Option<TopFlows>>,
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

/// One worker's state, in the groups the module docs list; the fields left
/// outside them say who it is, what it is told, and which ports and trees
/// it drives.
pub(crate) struct Worker {
    /// 0-based over all pairs.
    index: usize,
    pair: String,
    queue: u32,
    commands: Receiver<Command>,
    state: State,
    /// Frames read from an rx ring, or dequeued towards a tx ring, at once.
    batch: usize,
    /// `[inside, outside]`.
    ports: Vec<Port>,
    trees: Vec<OwnedTree>,
    /// By ingress port: `[inside → upload, outside → download]`.
    routes: [Route; 2],
    frames: Frames,
    peers: Peers,
    sched: Sched,
    stats: Stats,
    scratch: Scratch,
    /// `weir show flows` walks under way.
    walks: Vec<Walk>,
}

/// The worker's share of its pair's UMEM, and where each of its frames is
/// (what [`FramePlaces`] reports, with [`Peers::lent`]).
struct Frames {
    umem: Umem,
    /// Bytes per frame: a frame's number is its address divided by this.
    size: u64,
    /// Frames each worker of the pair owns.
    per_worker: u32,
    /// First frame number this worker owns.
    first: u32,
    /// One descriptor per frame of the pair's UMEM; a received frame's
    /// length is kept in it until the frame is sent.
    descs: Vec<FrameDesc>,
    /// Own frames that no one holds.
    free: Vec<u32>,
    /// Own frames kept in each fill ring.
    fill_target: u32,
    /// Own frames queued in own trees.
    queued: u64,
    /// Own frames between dequeue and completion at own sockets.
    tx: u64,
}

impl Frames {
    /// The number of the frame at `addr`, if it is in the UMEM.
    #[inline]
    fn number(&self, addr: u64) -> Option<u32> {
        let n = addr / self.size;
        if (n as usize) < self.descs.len() {
            Some(n as u32)
        } else {
            None
        }
    }

    /// Pair-local index of the worker that owns frame `n`.
    #[inline]
    fn owner(&self, n: u32) -> usize {
        (n / self.per_worker) as usize
    }

    #[inline]
    fn is_own(&self, n: u32) -> bool {
        n.wrapping_sub(self.first) < self.per_worker
    }
}

/// What the worker counts: its counters, how late it woke, and which
/// anomalies it has warned about already (a bit per [`Warn`]).
#[derive(Default)]
struct Stats {
    counters: WorkerCounters,
    /// How late the worker woke for a shaper deadline: a class loses the
    /// tokens of any lateness beyond its burst, so this is what an
    /// operator reads when classes come out short.
    wake_late: LogHistogram,
    warned: u32,
}

/// Buffers sized once, at start: nothing is allocated per packet.
struct Scratch {
    rx: Vec<FrameDesc>,
    completions: Vec<FrameDesc>,
    fill: Vec<FrameDesc>,
    tx: Vec<FrameDesc>,
    /// Packets dequeued for tx, or dropped.
    packets: Vec<Packet>,
    handed: Vec<Handover>,
    pollfds: Vec<libc::pollfd>,
    /// Decisions about flows a tree made in this batch.
    decisions: Vec<Decision>,
}

/// What [`Worker::commands`] tells the loop.
enum Next {
    Run,
    /// `Finish` was answered.
    Exit,
    /// The handle is gone: no one will ever ask for anything again.
    Orphaned,
}

impl Worker {
    pub fn new(init: WorkerInit) -> Worker {
        let f = init.frames_per_worker;
        let first = init.local as u32 * f;
        let batch = init.batch.max(1) as usize;
        // Keep a quarter of the share in each of the two fill rings (at
        // least a batch, at most the ring): the rest is for queues and tx.
        let fill_target = (f / 4).max(init.batch).min(init.ring_size);
        let mut free: Vec<u32> = (first..first + f).rev().collect();
        free.shrink_to_fit();
        let mut w = Worker {
            index: init.index,
            pair: init.pair,
            queue: init.queue,
            commands: init.commands,
            state: State::Running,
            batch,
            ports: init.ports,
            trees: init.trees,
            routes: init.routes,
            frames: Frames {
                umem: init.umem,
                size: u64::from(init.frame_size),
                per_worker: f,
                first,
                descs: init.descs,
                free,
                fill_target,
                queued: 0,
                tx: 0,
            },
            peers: Peers::new(
                init.local,
                init.lanes_out,
                init.lanes_in,
                init.returns_out,
                init.returns_in,
                init.bells,
            ),
            sched: Sched::new(init.core, init.busy_poll, init.nice, init.rtprio),
            stats: Stats::default(),
            scratch: Scratch {
                rx: vec![FrameDesc::default(); batch],
                completions: vec![FrameDesc::default(); batch.max(64)],
                fill: Vec::with_capacity(fill_target as usize),
                tx: Vec::with_capacity(batch),
                packets: Vec::with_capacity(batch),
                handed: Vec::with_capacity(batch * 4),
                pollfds: Vec::with_capacity(8),
                decisions: Vec::with_capacity(batch * 4),
            },
            walks: Vec::new(),
        };
        // Fill the rings before the sockets are registered in the XSKMAP,
        // so the first frames find room.
        w.refill();
        w
    }

    /// The thread body: one iteration per batch, until `Finish`.
    pub fn run(mut self) {
        self.sched.apply(self.index);
        tracing::info!(
            worker = self.index,
            core = ?self.sched.core,
            sched = %self.sched.name(),
            pair = %self.pair,
            queue = self.queue,
            trees = ?self.trees.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
            "worker started"
        );
        loop {
            let now = clock::now_ns();
            match self.commands() {
                Next::Run => {}
                Next::Exit => break,
                Next::Orphaned => {
                    tracing::warn!(worker = self.index, "control handle gone; worker exits");
                    break;
                }
            }
            let mut work = self.reap();
            self.learn_decisions(now);
            if self.state == State::Running {
                self.refill();
                work |= self.receive(now);
            }
            work |= self.take_handed(now);
            work |= self.walk_flows(now);
            self.release_drops();
            if self.state != State::Flushed {
                work |= self.transmit(now);
            }
            self.peers.ring_bells();
            if work {
                self.stats.counters.batches += 1;
            } else {
                self.stats.counters.empty_polls += 1;
                self.sleep(now);
            }
        }
        tracing::info!(worker = self.index, "worker stopped");
    }

    /// Obey pending commands.
    fn commands(&mut self) -> Next {
        loop {
            let cmd = match self.commands.try_recv() {
                Ok(c) => c,
                Err(crossbeam_channel::TryRecvError::Empty) => return Next::Run,
                Err(crossbeam_channel::TryRecvError::Disconnected) => return Next::Orphaned,
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
                    let started = Instant::now();
                    let old = self.trees.get_mut(tree).map(|t| {
                        let next = t.shaper.migrate_into(*shaper, &map, now);
                        t.shaped = true;
                        Box::new(std::mem::replace(&mut t.shaper, next))
                    });
                    self.release_drops();
                    // The old tree goes back to be freed off the packet
                    // path: unmapping the tables of 100,000 classes takes
                    // milliseconds.
                    let _ = reply.send(Replaced {
                        old,
                        took: started.elapsed(),
                    });
                }
                Command::EditTree { tree, edit, reply } => {
                    let started = Instant::now();
                    let result = match self.trees.get_mut(tree) {
                        Some(t) => t
                            .shaper
                            .edit(*edit, now)
                            .map(Box::new)
                            .map_err(EditError::Refused),
                        None => Err(EditError::NoTree),
                    };
                    // The removed leaves' frames go back to the fill ring.
                    self.release_drops();
                    let _ = reply.send(Edited {
                        result,
                        took: started.elapsed(),
                    });
                }
                Command::TopFlows { tree, query, reply } => {
                    // The first step answers None for a tree without apps.
                    self.walks.push(Walk::new(tree, query, reply));
                }
                Command::Quiesce(reply) => {
                    self.walks.clear();
                    if self.state == State::Running {
                        // The sockets are out of the XSKMAP already: take
                        // what the kernel delivered before, then stop.
                        self.reap();
                        self.refill();
                        self.receive(now);
                        self.peers.ring_bells();
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
                    return Next::Exit;
                }
            }
        }
    }

    // ---- the loop's steps -------------------------------------------------

    /// Completions and returned frames. True if any came back.
    fn reap(&mut self) -> bool {
        let mut any = false;
        for p in 0..self.ports.len() {
            loop {
                let n = self.ports[p].completions(&mut self.scratch.completions);
                if n == 0 {
                    break;
                }
                any = true;
                for i in 0..n {
                    let addr = self.scratch.completions[i].addr() as u64;
                    match self.frames.number(addr) {
                        Some(f) => {
                            if self.frames.is_own(f) {
                                self.frames.tx -= 1;
                            }
                            self.release(f);
                        }
                        None => {
                            self.stats.counters.bad_descs += 1;
                            self.warn_once(Warn::BadDesc, "completion outside the UMEM");
                        }
                    }
                }
                if n < self.scratch.completions.len() {
                    break;
                }
            }
            // Completions made room: move what waited for it.
            if !self.ports[p].pending.is_empty() {
                self.ports[p].flush_pending();
            }
        }
        let back = self.peers.take_returned(&mut self.frames.free);
        self.stats.counters.returns_in += back;
        any |= back > 0;
        for f in self.peers.take_stuck() {
            self.send_home(f);
        }
        any
    }

    /// Top up both fill rings from the free list.
    fn refill(&mut self) {
        for p in 0..self.ports.len() {
            let port = &mut self.ports[p];
            let want = u64::from(self.frames.fill_target).saturating_sub(port.in_fill);
            if want == 0 {
                continue;
            }
            let room = u64::from(port.fill_room(want as u32));
            let k = room.min(self.frames.free.len() as u64) as usize;
            if k == 0 {
                if port.in_fill == 0 && self.frames.free.is_empty() {
                    self.stats.counters.fill_ring_starved += 1;
                    self.warn_once(
                        Warn::FillStarved,
                        "out of free frames: a fill ring is empty (frames are all queued \
                         or in flight; raise frames_per_worker or lower queue limits)",
                    );
                }
                continue;
            }
            let fill = &mut self.scratch.fill;
            fill.clear();
            let start = self.frames.free.len() - k;
            for &f in &self.frames.free[start..] {
                fill.push(self.frames.descs[f as usize]);
            }
            // The ring takes a prefix of what it is given; the rest stays
            // free.
            let took = port.fill(fill);
            self.frames.free.drain(start..start + took);
        }
    }

    /// Read a batch from each socket (while running): into the tree if this
    /// worker owns it, else over the lane to its owner.
    fn receive(&mut self, now: u64) -> bool {
        let mut any = false;
        for p in 0..self.ports.len() {
            let n = self.ports[p].receive(&mut self.scratch.rx);
            if n == 0 {
                continue;
            }
            any = true;
            let good = self.keep_own_rx(n);
            let rx = &self.scratch.rx[..good];
            match self.routes[p] {
                Route::Local(t) => {
                    self.frames.queued += good as u64;
                    let umem = &self.frames.umem;
                    // SAFETY: these frames came off our rx ring: the kernel
                    // wrote them and their lengths and let go of them; this
                    // worker holds them alone until a tree gives them back.
                    unsafe {
                        touch_headers(umem, rx);
                        self.trees[t].enqueue_held(umem, rx.iter(), now);
                    }
                    self.route_decisions(t, now);
                }
                Route::Remote { peer, tree } => {
                    for i in 0..good {
                        let desc = self.scratch.rx[i];
                        if self.peers.hand_over(peer, Handover { desc, tree }) {
                            self.stats.counters.handover_out += 1;
                        } else {
                            self.stats.counters.handover_full_drops += 1;
                            self.warn_once(
                                Warn::HandoverFull,
                                "hand-over ring full; frame dropped (raise handover_ring)",
                            );
                            self.frames
                                .free
                                .push((desc.addr() as u64 / self.frames.size) as u32);
                        }
                    }
                }
            }
        }
        any
    }

    /// Count the first `n` descriptors of `scratch.rx` as received, record
    /// each frame's length, and keep at the front the ones that are this
    /// worker's frames: how many.
    fn keep_own_rx(&mut self, n: usize) -> usize {
        self.stats.counters.rx_packets += n as u64;
        let mut good = 0;
        for i in 0..n {
            let d = self.scratch.rx[i];
            self.stats.counters.rx_bytes += d.lengths().data() as u64;
            match self.frames.number(d.addr() as u64) {
                Some(f) if self.frames.is_own(f) => {
                    self.frames.descs[f as usize] = d;
                    self.scratch.rx[good] = d;
                    good += 1;
                }
                _ => {
                    // Not a frame we gave the kernel: ignore it rather
                    // than corrupt someone else's frame.
                    self.stats.counters.bad_descs += 1;
                    self.warn_once(Warn::BadDesc, "rx descriptor outside our frames");
                }
            }
        }
        good
    }

    /// Frames other workers handed over for trees this one owns.
    fn take_handed(&mut self, now: u64) -> bool {
        let mut any = false;
        for l in 0..self.peers.lanes_in.len() {
            let k = self.peers.take_lane(l, &mut self.scratch.handed);
            if k == 0 {
                continue;
            }
            any = true;
            self.stats.counters.handover_in += k as u64;
            for i in 0..k {
                let d = self.scratch.handed[i].desc;
                match self.frames.number(d.addr() as u64) {
                    Some(f) => self.frames.descs[f as usize] = d,
                    None => {
                        self.stats.counters.bad_descs += 1;
                        self.scratch.handed[i].tree = u32::MAX;
                    }
                }
            }
            let handed = &self.scratch.handed;
            for (t, tree) in self.trees.iter_mut().enumerate() {
                if !handed.iter().any(|h| h.tree as usize == t) {
                    continue;
                }
                let mine = handed.iter().filter(|h| h.tree as usize == t);
                // SAFETY: the sender received these frames and gave them up
                // when it pushed them on the lane; this worker holds them
                // alone until it releases them.
                unsafe { tree.enqueue_held(&self.frames.umem, mine.map(|h| &h.desc), now) };
            }
            for t in 0..self.trees.len() {
                self.route_decisions(t, now);
            }
            // A handed frame naming a tree we don't have (a bug) goes home
            // rather than getting lost.
            for i in 0..k {
                let h = self.scratch.handed[i];
                if h.tree as usize >= self.trees.len() {
                    if let Some(f) = self.frames.number(h.desc.addr() as u64) {
                        self.release(f);
                    }
                }
            }
        }
        any
    }

    /// Send what tree `t` decided about flows to the tree of the other
    /// direction: learned here when this worker owns it, else put on the
    /// lane to its owner.
    fn route_decisions(&mut self, t: usize, now: u64) {
        let mut decisions = std::mem::take(&mut self.scratch.decisions);
        decisions.clear();
        self.trees[t].shaper.take_decisions(&mut decisions);
        if !decisions.is_empty() {
            // Frames received on the inside port go to the upload tree:
            // the download tree is where the outside port's frames go.
            let other = if self.trees[t].upload { 1 } else { 0 };
            for &d in &decisions {
                match self.routes[other] {
                    Route::Local(o) => self.trees[o].shaper.learn(d, now),
                    Route::Remote { peer, tree } => {
                        if self.peers.send_decision(peer, tree, d) {
                            self.stats.counters.decisions_out += 1;
                        } else {
                            self.stats.counters.decisions_lost += 1;
                        }
                    }
                }
            }
        }
        self.scratch.decisions = decisions;
    }

    /// Decisions other workers' trees sent to this worker's trees.
    fn learn_decisions(&mut self, now: u64) {
        let trees = &mut self.trees;
        let mut bad = 0;
        let n = self
            .peers
            .take_decisions(|tree, d| match trees.get_mut(tree as usize) {
                Some(t) => t.shaper.learn(d, now),
                None => bad += 1,
            });
        self.stats.counters.decisions_in += n as u64 - bad;
        self.stats.counters.bad_descs += bad;
    }

    /// Frames the trees dropped go back to the free list (or home).
    fn release_drops(&mut self) {
        for t in 0..self.trees.len() {
            // Collect first: `take_drops` borrows the tree.
            let mut dropped = std::mem::take(&mut self.scratch.packets);
            dropped.clear();
            dropped.extend(self.trees[t].shaper.take_drops().map(|d| d.packet));
            for p in &dropped {
                if let Some(f) = self.frames.number(p.addr) {
                    if self.frames.is_own(f) {
                        self.frames.queued -= 1;
                    }
                    self.release(f);
                }
            }
            dropped.clear();
            self.scratch.packets = dropped;
        }
    }

    /// Dequeue what each tree allows into its egress tx ring, then kick.
    fn transmit(&mut self, now: u64) -> bool {
        let mut any = false;
        for t in 0..self.trees.len() {
            any |= self.transmit_tree(t, now);
        }
        for p in 0..self.ports.len() {
            let k = self.ports[p].kick();
            self.stats.counters.tx_kicks += k.kicks;
            if k.errors > 0 {
                self.stats.counters.tx_errors += k.errors;
                self.warn_once(Warn::TxError, "sendto on an AF_XDP socket failed");
            }
        }
        any
    }

    /// Dequeue what tree `t` allows, as much as its tx ring has room for.
    fn transmit_tree(&mut self, t: usize, now: u64) -> bool {
        let e = self.trees[t].egress;
        let Some(deadline) = self.trees[t].shaper.next_deadline() else {
            return false;
        };
        let room = self.ports[e].tx_room(self.batch as u32);
        if room == 0 {
            if deadline <= now {
                self.stats.counters.tx_ring_full += 1;
            }
            return false;
        }
        let out = &mut self.scratch.packets;
        out.clear();
        let n = self.trees[t].shaper.dequeue_batch(now, out, room as usize);
        if n == 0 {
            return false;
        }
        self.scratch.tx.clear();
        for i in 0..n {
            let p = self.scratch.packets[i];
            let Some(f) = self.frames.number(p.addr) else {
                self.stats.counters.bad_descs += 1;
                continue;
            };
            let mut d = self.frames.descs[f as usize];
            if p.flags & flags::MARK_CE != 0 || p.remark != 0 {
                // SAFETY: the frame was dequeued from a tree this worker
                // owns, so it holds the frame exclusively until it is put
                // on the tx ring below.
                let mut data = unsafe { self.frames.umem.data_mut(&mut d) };
                if p.flags & flags::MARK_CE != 0 {
                    mark_ce(data.contents_mut(), p.l3_offset);
                }
                // Both fold only their own change into the IPv4 checksum,
                // in either order.
                if let Some(r) = p.remark() {
                    if remark_dscp(data.contents_mut(), p.l3_offset, r) == Remarked::Changed {
                        self.stats.counters.remarked += 1;
                    }
                }
            }
            if self.frames.is_own(f) {
                self.frames.queued -= 1;
                self.frames.tx += 1;
            }
            self.stats.counters.tx_packets += 1;
            self.stats.counters.tx_bytes += u64::from(p.len);
            self.scratch.tx.push(d);
        }
        self.ports[e].send(&self.scratch.tx);
        true
    }

    /// Nothing to do: sleep until a socket has frames (or tx room we wait
    /// for), a peer or the control thread rings, or the next shaper
    /// deadline; never longer than [`MAX_SLEEP_NS`].
    fn sleep(&mut self, now: u64) {
        if self.sched.busy_poll {
            std::hint::spin_loop();
            return;
        }
        // The loop's `now` is as old as this iteration's work: a timeout
        // computed from it would oversleep every deadline by that much.
        let now = clock::now_ns().max(now);
        let (timeout, wake_at) = self.poll_set(now);
        let me = self.peers.my_bell();
        self.scratch.pollfds.push(libc::pollfd {
            fd: me.raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        me.going_to_sleep();
        if !self.commands.is_empty() || self.peers.has_work() {
            me.awake();
            return;
        }
        let ts = clock::timespec(timeout);
        let pollfds = &mut self.scratch.pollfds;
        // SAFETY: `pollfds` is a live array of initialised pollfd of the
        // given length; `ts` outlives the call; no signal mask is passed.
        let rc = unsafe {
            libc::ppoll(
                pollfds.as_mut_ptr(),
                pollfds.len() as libc::nfds_t,
                &ts,
                std::ptr::null(),
            )
        };
        if let Some(due) = wake_at {
            // Only a deadline that passed counts: a frame or a doorbell
            // may have woken us before it.
            let woke = clock::now_ns();
            if woke >= due {
                self.stats.wake_late.record(woke - due);
            }
        }
        let me = self.peers.my_bell();
        me.awake();
        self.stats.counters.sleeps += 1;
        if rc > 0 {
            self.stats.counters.wakeups += 1;
            if self.scratch.pollfds.last().is_some_and(|p| p.revents != 0) {
                me.clear();
            }
        }
    }

    /// The sockets and events a sleep waits for (into `scratch.pollfds`),
    /// how long it may last, and when it means to wake for a shaper
    /// deadline: the deadline itself, or [`MIN_SLEEP_NS`] from now when it
    /// is that close.
    fn poll_set(&mut self, now: u64) -> (u64, Option<u64>) {
        let mut timeout = MAX_SLEEP_NS;
        let mut wake_at: Option<u64> = None;
        let pollfds = &mut self.scratch.pollfds;
        pollfds.clear();
        if self.state == State::Running {
            for p in &self.ports {
                pollfds.push(libc::pollfd {
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
                    if !pollfds
                        .iter()
                        .any(|p| p.fd == fd && p.events & libc::POLLOUT != 0)
                    {
                        pollfds.push(libc::pollfd {
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
        (timeout, wake_at)
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
            std::thread::sleep(Duration::from_micros(200));
        }
        self.peers.ring_bells();
        queued
    }

    // ---- frames -----------------------------------------------------------

    /// A frame this worker is done with: to the free list if its own, home
    /// otherwise.
    #[inline]
    fn release(&mut self, n: u32) {
        if self.frames.is_own(n) {
            self.frames.free.push(n);
        } else {
            self.send_home(n);
        }
    }

    fn send_home(&mut self, n: u32) {
        match self.peers.send_home(self.frames.owner(n), n) {
            Home::Sent => self.stats.counters.returns_out += 1,
            Home::Stuck => {
                self.warn_once(Warn::ReturnFull, "return ring full; frame kept for retry")
            }
            // Only a bad descriptor can get here, and those are filtered
            // on arrival.
            Home::NoOwner => self.stats.counters.bad_descs += 1,
        }
    }

    fn warn_once(&mut self, kind: Warn, msg: &str) {
        if self.stats.warned & kind as u32 == 0 {
            self.stats.warned |= kind as u32;
            tracing::warn!(
                worker = self.index,
                "{msg} (counted from now on, not logged)"
            );
        }
    }

    // ---- reports ----------------------------------------------------------

    fn places(&self) -> FramePlaces {
        let (handover, lent) = self.peers.lent();
        FramePlaces {
            total: u64::from(self.frames.per_worker),
            free: self.frames.free.len() as u64,
            fill: self.ports.iter().map(|p| p.in_fill).sum(),
            queued: self.frames.queued,
            tx: self.frames.tx,
            handover,
            lent,
        }
    }

    /// One step of each `weir show flows` walk; true while any is under
    /// way, so the worker does not sleep until they are done.
    fn walk_flows(&mut self, now: u64) -> bool {
        let trees = &self.trees;
        self.walks.retain_mut(|w| match trees.get(w.tree) {
            Some(t) => !w.step(&t.name, t.shaper.apps(), now),
            None => false,
        });
        !self.walks.is_empty()
    }

    fn report(&self) -> WorkerReport {
        let worker = WorkerSnapshot {
            index: self.index,
            core: self.sched.core,
            pair: self.pair.clone(),
            queue: self.queue,
            counters: self.stats.counters,
            frames: self.places(),
            rtprio_asked: self.sched.rtprio_asked,
            rtprio: self.sched.rtprio,
            nice: self.sched.nice_applied,
            wake_late: self.stats.wake_late.clone(),
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
                        ids: (0..n).map(|c| htb.class_id(c)).collect(),
                        qdiscs: (0..n).map(|c| htb.qdisc_stats(c)).collect(),
                        sojourn: t.shaper.sojourn().clone(),
                        apps: t.shaper.apps().map(AppsSnapshot::of),
                        filter_drops: t.shaper.filter_drops().to_vec(),
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

impl OwnedTree {
    /// Enqueue frames into the tree, each read in place in the UMEM, with
    /// its handle. The one place a received frame's bytes are handed to
    /// the core, for frames off an rx ring and frames off a lane alike.
    ///
    /// # Safety
    ///
    /// Every descriptor names a frame of `umem` that this worker holds
    /// exclusively (no kernel ring, peer or tree has it) and keeps until
    /// the tree gives it back.
    unsafe fn enqueue_held<'a>(
        &mut self,
        umem: &Umem,
        descs: impl Iterator<Item = &'a FrameDesc>,
        now: u64,
    ) {
        self.shaper.enqueue_batch(
            descs.map(|d| {
                // SAFETY: the caller holds this frame exclusively (this
                // function's contract): reading it aliases no writer.
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
}

/// Read the first byte of each received frame before the batch is parsed.
/// The kernel wrote these frames (on whichever CPU ran the rx softirq), so
/// the first touch of each is a cache miss; independent loads in a row let
/// the CPU overlap the misses, where the parser would take them one after
/// the other (`parse_frame` was the largest user-space cost of a worker
/// forwarding 64-byte frames: bench/run.sh's profile). The headers the
/// classifier reads (Ethernet, VLAN tags, IPv4/IPv6, ports) are in the
/// first cache line of the frame for the common cases.
///
/// # Safety
///
/// The caller holds these frames (fresh off its rx ring, the kernel has let
/// go of them), so no one writes them while they are read.
unsafe fn touch_headers(umem: &Umem, descs: &[FrameDesc]) {
    let mut acc = 0u8;
    for d in descs {
        // SAFETY: the caller holds these frames (this function's contract).
        acc ^= unsafe { umem.data(d) }
            .contents()
            .first()
            .copied()
            .unwrap_or(0);
    }
    std::hint::black_box(acc);
}
