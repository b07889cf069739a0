//! The AF_XDP data path: one shared UMEM per port pair, one AF_XDP socket
//! per (interface, queue), one pinned worker thread per (pair, queue)
//! driving the shaping core, SPSC hand-over rings between the workers of a
//! pair, and the [`DataPath`] handle the control thread uses. (The shaping
//! core it drives is the `weir-dataplane` crate; the `[xdp]` table of
//! weir's configuration sizes this data path.)
//!
//! ```text
//! pair "edge", 2 queues:           UMEM (2 × F frames, shared)
//!   worker 0 (queue 0): inside:0, outside:0   owns frames [0, F)   owns "up" tree
//!   worker 1 (queue 1): inside:1, outside:1   owns frames [F, 2F)  owns "down" tree
//!   a frame received by worker 1 on inside:1 (upload) is handed to
//!   worker 0 over a lane, shaped there, sent on outside:0, and comes home
//!   to worker 1 over a return ring when the kernel completes it.
//! ```
//!
//! Placement rule: for a pair with Q queues, the upload tree is owned by the
//! worker of queue 0 and the download tree by the worker of queue 1 % Q, so
//! with two queues the two directions run on different cores.
//! [`DataPath::placement`] shows it.

mod clock;
mod flows;
mod handover;
mod port;
mod spec;
mod stats;
mod worker;

use std::ffi::CString;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use weir_dataplane::htb::{ClassChange, ClassSpec, HtbSpec, InPlaceError, SpecError};
use weir_dataplane::qdisc::{FifoLimit, QdiscParams};
use weir_dataplane::shaper::{MalformedPolicy, Shaper, ShaperError, ShaperSpec, TreeEdit};
use xsk_rs::config::{FrameSize, QueueSize, UmemConfig};
use xsk_rs::Umem;

use crate::prog::{XdpError, XdpMode, XdpProgram};

pub use clock::{now_ns, sched_name, tighten_timer_slack};
pub use flows::{rate as flow_rate, FlowOrder, FlowQuery, FlowRow, TopFlows, MAX_TOP};
pub use port::{Kick, Port, PortError};
pub use spec::{PairSpec, RunSpec, TreeSpec};
pub use stats::{
    AppSnapshot, AppsSnapshot, FramePlaces, InterfaceSnapshot, ShutdownReport, Snapshot,
    SocketStats, TreeSnapshot, WorkerCounters, WorkerPlacement, WorkerSnapshot,
};

use handover::{Doorbell, Lane, ReturnRing};
use spec::unshaped_name;
use worker::{Command, OwnedTree, Route, Worker, WorkerInit, WorkerReport};

/// How long the handle waits for a worker to answer a command. Workers
/// look at their commands at least every 10 ms, even when idle; this only
/// fires when one is stuck.
const REPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// How long [`DataPath::top_flows`] waits: a walk of a million flows takes
/// 16,384 steps of the worker's loop, one between two batches (the
/// worker does not sleep while a walk is under way).
pub const FLOWS_TIMEOUT: Duration = Duration::from_secs(5);

/// Rate of the tree that forwards a direction configured without one: 100
/// Gbit/s, i.e. no limit this box can reach.
const UNSHAPED_RATE: u64 = 12_500_000_000;

/// Why the data path could not start or answer. Each names what failed
/// (interface, queue, worker, tree), the errno when there is one, and what
/// to do about it.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("invalid run spec: {what}")]
    InvalidSpec { what: String },
    #[error("interface {ifname} does not exist (in this network namespace); check `ip link`")]
    InterfaceMissing { ifname: String },
    #[error(
        "interface {ifname} has {has} rx queue(s) but {asked} were asked for; lower `queues` or \
         raise the channels (`ethtool -L {ifname} combined {asked}`)"
    )]
    TooFewQueues {
        ifname: String,
        asked: u32,
        has: u32,
    },
    #[error("attaching the XDP program to {ifname} failed: {source}; {hint}")]
    Attach {
        ifname: String,
        hint: &'static str,
        #[source]
        source: XdpError,
    },
    #[error(
        "pair {pair}: allocating the UMEM ({frames} frames of {frame_size} bytes) failed: \
         {reason}{errno}; lower frames_per_worker or raise RLIMIT_MEMLOCK",
        errno = errno.map(|e| format!(" (errno {e})")).unwrap_or_default()
    )]
    Umem {
        pair: String,
        frames: u64,
        frame_size: u32,
        reason: String,
        errno: Option<i32>,
    },
    #[error(
        "{ifname} queue {queue}: creating the AF_XDP socket failed: {reason}{errno_text}; {hint}",
        errno_text = errno.map(|e| format!(" (errno {e})")).unwrap_or_default()
    )]
    Socket {
        ifname: String,
        queue: u32,
        reason: String,
        errno: Option<i32>,
        hint: &'static str,
    },
    #[error(
        "{ifname} queue {queue}: registering the AF_XDP socket in the XSKMAP failed: {source}"
    )]
    Register {
        ifname: String,
        queue: u32,
        #[source]
        source: XdpError,
    },
    #[error("{ifname}: reading the XDP counters failed: {source}")]
    Counters {
        ifname: String,
        #[source]
        source: XdpError,
    },
    #[error("tree {tree}: {source}")]
    Shaper {
        tree: String,
        #[source]
        source: ShaperError,
    },
    #[error(
        "creating an eventfd for worker {worker} failed: {source}; raise the open-files limit"
    )]
    Eventfd {
        worker: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("spawning worker {worker} failed: {source}")]
    Spawn {
        worker: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("worker {worker} did not answer {what} within {REPLY_TIMEOUT:?}")]
    WorkerTimeout { worker: usize, what: &'static str },
    #[error("worker {worker} is gone (its thread ended); restart the data path")]
    WorkerGone { worker: usize },
    #[error("no tree named {tree}")]
    UnknownTree { tree: String },
    #[error("tree {tree} has no apps: no flows are kept")]
    NoApps { tree: String },
    #[error("tree {tree}: not changed in place: {source}")]
    EditTree {
        tree: String,
        #[source]
        source: InPlaceError,
    },
    #[error("tree {tree}: changing class #{class} failed: {source}")]
    ChangeClass {
        tree: String,
        class: u32,
        #[source]
        source: SpecError,
    },
}

struct WorkerHandle {
    commands: Sender<Command>,
    bell: Arc<Doorbell>,
    thread: Option<JoinHandle<()>>,
}

struct TreeRef {
    name: String,
    worker: usize,
    /// Index among the trees its worker owns.
    local: usize,
}

/// The running data path. Dropping it stops the workers and detaches the
/// programs too, but without a report; call [`DataPath::stop`].
pub struct DataPath {
    placement: Vec<WorkerPlacement>,
    workers: Vec<WorkerHandle>,
    /// By interface index (pairs' inside, outside, in order).
    interfaces: Vec<String>,
    programs: Vec<XdpProgram>,
    /// (interface index, queue) of every socket in an XSKMAP.
    registered: Vec<(usize, u32)>,
    /// Configuration order: per pair, upload then download.
    trees: Vec<TreeRef>,
    stopped: bool,
}

impl DataPath {
    /// Attach the XDP programs, build the UMEMs and sockets, register the
    /// sockets and spawn the workers. On any error everything done so far
    /// is undone (sockets unregistered and closed, programs detached,
    /// workers stopped).
    pub fn start(spec: RunSpec) -> Result<DataPath, RunError> {
        spec.validate()?;
        let mut interfaces = Vec::new();
        for p in &spec.pairs {
            interfaces.push(p.inside.clone());
            interfaces.push(p.outside.clone());
        }
        for ifname in &interfaces {
            check_interface(ifname)?;
        }
        let mut dp = DataPath {
            placement: Vec::new(),
            workers: Vec::new(),
            interfaces: interfaces.clone(),
            programs: Vec::new(),
            registered: Vec::new(),
            trees: Vec::new(),
            stopped: false,
        };
        for ifname in &interfaces {
            let prog = XdpProgram::attach(ifname, spec.xdp_mode, &spec.pass).map_err(|source| {
                RunError::Attach {
                    ifname: ifname.clone(),
                    hint: match spec.xdp_mode {
                        XdpMode::Native => {
                            "run as root; if the driver has no native XDP, use xdp_mode generic"
                        }
                        XdpMode::Generic => "run as root (CAP_BPF, CAP_NET_ADMIN)",
                    },
                    source,
                }
            })?;
            dp.programs.push(prog);
        }
        // Every worker binds its queue on both interfaces of its pair.
        for (i, prog) in dp.programs.iter().enumerate() {
            let asked = spec.pairs[i / 2].queues;
            if prog.rx_queues() < asked {
                return Err(RunError::TooFewQueues {
                    ifname: dp.interfaces[i].clone(),
                    asked,
                    has: prog.rx_queues(),
                });
            }
        }
        // Workers are built completely (sockets, trees, filled fill rings)
        // before any socket is registered, and registered before any thread
        // starts: a failure at any step leaves nothing running.
        let mut workers: Vec<Worker> = Vec::new();
        let mut inits = Vec::new();
        let mut global_worker = 0usize;
        for (pi, pair) in spec.pairs.iter().enumerate() {
            let pair_inits = build_pair(&spec, pi, pair, global_worker, &mut dp)?;
            global_worker += pair_inits.len();
            inits.extend(pair_inits);
        }
        for (init, commands_tx, bell) in inits {
            let regs: Vec<(usize, u32, i32)> = init
                .ports
                .iter()
                .map(|p| (p.iface, p.queue, p.fd()))
                .collect();
            dp.placement.push(WorkerPlacement {
                index: init.index,
                core: init.core,
                pair: init.pair.clone(),
                queue: init.queue,
                trees: init.trees.iter().map(|t| t.name.clone()).collect(),
            });
            dp.workers.push(WorkerHandle {
                commands: commands_tx,
                bell,
                thread: None,
            });
            workers.push(Worker::new(init));
            for (iface, queue, fd) in regs {
                dp.programs[iface]
                    .register_socket(queue, fd)
                    .map_err(|source| RunError::Register {
                        ifname: dp.interfaces[iface].clone(),
                        queue,
                        source,
                    })?;
                dp.registered.push((iface, queue));
                tracing::info!(
                    ifname = %dp.interfaces[iface],
                    queue,
                    "AF_XDP socket registered"
                );
            }
        }
        for (i, w) in workers.into_iter().enumerate() {
            let thread = std::thread::Builder::new()
                .name(format!("weir-w{i}"))
                .spawn(move || w.run())
                .map_err(|source| RunError::Spawn { worker: i, source })?;
            dp.workers[i].thread = Some(thread);
        }
        for p in &dp.placement {
            tracing::info!(
                worker = p.index,
                core = ?p.core,
                pair = %p.pair,
                queue = p.queue,
                trees = ?p.trees,
                "placement"
            );
        }
        Ok(dp)
    }

    /// Which worker runs on which core and owns which trees.
    pub fn placement(&self) -> &[WorkerPlacement] {
        &self.placement
    }

    /// Every worker's state, taken by the worker itself at its next batch
    /// boundary (within ~10 ms even when idle).
    pub fn snapshot(&self) -> Result<Snapshot, RunError> {
        let reports = self.ask_all("a snapshot", Command::Snapshot)?;
        self.assemble(reports)
    }

    /// Replace tree `tree` by one built from `spec` (a reload that adds or
    /// removes classes, changes leaves or filters). The new shaper is built
    /// here, off the packet path; the owning worker swaps it in at a batch
    /// boundary, moving the queue of every old leaf `c` to new class
    /// `map[c]` (None: the class is gone, its packets are dropped as
    /// `flushed`), and every class kept keeps its buckets. Frame
    /// accounting carries over; class statistics of the tree start again
    /// from zero. Returns how long the swap held the worker; the old tree
    /// is freed here, not on the worker.
    pub fn replace_tree(
        &self,
        tree: &str,
        spec: &ShaperSpec,
        map: Vec<Option<u32>>,
    ) -> Result<Duration, RunError> {
        let t = self.tree_ref(tree)?;
        let shaper = Shaper::new(spec, now_ns()).map_err(|source| RunError::Shaper {
            tree: tree.to_owned(),
            source,
        })?;
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.send(
            t.worker,
            Command::ReplaceTree {
                tree: t.local,
                shaper: Box::new(shaper),
                map,
                reply,
            },
        )?;
        let replaced = wait(t.worker, "a tree replacement", &answer)?;
        drop(replaced.old);
        Ok(replaced.took)
    }

    /// Change tree `tree` in place (`Shaper::edit`): the leaves the edit
    /// removes lose their queues (as `flushed`), the ones it adds start
    /// empty, and every other class keeps its queue, buckets, AQM state and
    /// counters. Returns how long it held the worker. An edit the tree
    /// can't take (no spare room, an added id out of order, …) changes
    /// nothing and says why ([`RunError::EditTree`]): rebuild the tree
    /// instead ([`DataPath::replace_tree`]).
    pub fn edit_tree(&self, tree: &str, edit: TreeEdit) -> Result<Duration, RunError> {
        let t = self.tree_ref(tree)?;
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.send(
            t.worker,
            Command::EditTree {
                tree: t.local,
                edit: Box::new(edit),
                reply,
            },
        )?;
        let edited = wait(t.worker, "a tree edit", &answer)?;
        match edited.result {
            // What the tree had before is freed here, not on the worker.
            Ok(superseded) => {
                drop(superseded);
                Ok(edited.took)
            }
            Err(worker::EditError::Refused(source)) => Err(RunError::EditTree {
                tree: tree.to_owned(),
                source,
            }),
            Err(worker::EditError::NoTree) => Err(RunError::UnknownTree {
                tree: tree.to_owned(),
            }),
        }
    }

    /// The tree called `tree`.
    fn tree_ref(&self, tree: &str) -> Result<&TreeRef, RunError> {
        self.trees
            .iter()
            .find(|t| t.name == tree)
            .ok_or_else(|| RunError::UnknownTree {
                tree: tree.to_owned(),
            })
    }

    /// Change a class's rate, ceil, burst, cburst, prio or quantum. Applied
    /// by the tree's owner at a batch boundary; nothing queued is dropped.
    pub fn change_class(
        &self,
        tree: &str,
        class: u32,
        change: ClassChange,
    ) -> Result<(), RunError> {
        let t = self.tree_ref(tree)?;
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.send(
            t.worker,
            Command::ChangeClass {
                tree: t.local,
                class,
                change,
                reply,
            },
        )?;
        wait(t.worker, "a class change", &answer)?.map_err(|source| RunError::ChangeClass {
            tree: tree.to_owned(),
            class,
            source,
        })
    }

    /// The top flows of tree `tree` (see `flows.rs`): its worker walks its
    /// flow table a few sets per loop iteration and answers when done, so
    /// packets are never held up by the walk. Waits up to
    /// [`FLOWS_TIMEOUT`].
    pub fn top_flows(&self, tree: &str, query: FlowQuery) -> Result<TopFlows, RunError> {
        let t = self.tree_ref(tree)?;
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.send(
            t.worker,
            Command::TopFlows {
                tree: t.local,
                query,
                reply,
            },
        )?;
        let top = answer.recv_timeout(FLOWS_TIMEOUT).map_err(|e| match e {
            crossbeam_channel::RecvTimeoutError::Timeout => RunError::WorkerTimeout {
                worker: t.worker,
                what: "the top flows",
            },
            crossbeam_channel::RecvTimeoutError::Disconnected => {
                RunError::WorkerGone { worker: t.worker }
            }
        })?;
        top.ok_or_else(|| RunError::NoApps {
            tree: tree.to_owned(),
        })
    }

    /// Stop: unregister the sockets (new frames go to the kernel), let every
    /// worker take what was already received, record what is queued per
    /// tree, flush it (counted as `Flushed`), wait (bounded) for tx
    /// completions, take a last snapshot, close the sockets, detach the
    /// programs.
    pub fn stop(mut self) -> Result<ShutdownReport, RunError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<ShutdownReport, RunError> {
        self.stopped = true;
        let mut first_err: Option<RunError> = None;
        for (iface, queue) in std::mem::take(&mut self.registered) {
            if let Err(source) = self.programs[iface].unregister_socket(queue) {
                let e = RunError::Register {
                    ifname: self.interfaces[iface].clone(),
                    queue,
                    source,
                };
                tracing::warn!(error = %e, "unregistering a socket failed");
                first_err.get_or_insert(e);
            }
        }
        let mut keep = |r: Result<(), RunError>| {
            if let Err(e) = r {
                first_err.get_or_insert(e);
            }
        };
        keep(self.ask_all("quiesce", Command::Quiesce).map(drop));
        let mut queued_at_stop: Vec<(String, u64)> = Vec::new();
        match self.ask_all("flush", Command::Flush) {
            Ok(lists) => {
                let mut all: Vec<(String, u64)> = lists.into_iter().flatten().collect();
                // Configuration order, as in snapshots.
                for t in &self.trees {
                    if let Some(i) = all.iter().position(|(n, _)| *n == t.name) {
                        queued_at_stop.push(all.swap_remove(i));
                    }
                }
            }
            Err(e) => keep(Err(e)),
        }
        let reports = self.ask_all("finish", Command::Finish);
        for (i, w) in self.workers.iter_mut().enumerate() {
            if let Some(t) = w.thread.take() {
                if reports.is_ok() {
                    if t.join().is_err() {
                        tracing::warn!(worker = i, "worker thread panicked");
                        first_err.get_or_insert(RunError::WorkerGone { worker: i });
                    }
                } else {
                    // A worker that did not answer can't be joined safely:
                    // leave it; it exits when it sees the handle gone.
                    drop(t);
                }
            }
        }
        let last = match reports {
            Ok(r) => self.assemble(r),
            Err(e) => Err(e),
        };
        self.programs.clear();
        tracing::info!(interfaces = ?self.interfaces, "XDP programs detached");
        let last = match (last, first_err) {
            (Ok(last), None) => last,
            (Err(e), _) | (Ok(_), Some(e)) => return Err(e),
        };
        Ok(ShutdownReport {
            umem_free_or_fill: last.workers.iter().all(|w| w.frames.free_or_fill()),
            balanced: last.trees.iter().all(|t| t.frames.balanced()),
            queued_at_stop,
            last,
        })
    }

    fn send(&self, worker: usize, cmd: Command) -> Result<(), RunError> {
        let w = self
            .workers
            .get(worker)
            .ok_or(RunError::WorkerGone { worker })?;
        w.commands
            .send(cmd)
            .map_err(|_| RunError::WorkerGone { worker })?;
        w.bell.ring();
        Ok(())
    }

    /// Send every worker a command made by `make` (given the reply
    /// channel), then collect the answers in worker order.
    fn ask_all<T>(
        &self,
        what: &'static str,
        make: impl Fn(Sender<T>) -> Command,
    ) -> Result<Vec<T>, RunError> {
        let mut waiting = Vec::with_capacity(self.workers.len());
        for i in 0..self.workers.len() {
            let (reply, answer) = crossbeam_channel::bounded(1);
            self.send(i, make(reply))?;
            waiting.push(answer);
        }
        waiting
            .iter()
            .enumerate()
            .map(|(i, answer)| wait(i, what, answer))
            .collect()
    }

    fn assemble(&self, reports: Vec<WorkerReport>) -> Result<Snapshot, RunError> {
        let mut trees: Vec<Option<TreeSnapshot>> = vec![None; self.trees.len()];
        let mut sockets = vec![SocketStats::default(); self.interfaces.len()];
        let mut workers = Vec::with_capacity(reports.len());
        for r in reports {
            for (global, t) in r.trees {
                if let Some(slot) = trees.get_mut(global) {
                    *slot = Some(t);
                }
            }
            for (iface, s) in r.sockets {
                if let Some(sum) = sockets.get_mut(iface) {
                    sum.add(&s);
                }
            }
            workers.push(r.worker);
        }
        let mut interfaces = Vec::with_capacity(self.interfaces.len());
        for (i, name) in self.interfaces.iter().enumerate() {
            let xdp = match self.programs.get(i) {
                Some(p) => p.counters().map_err(|source| RunError::Counters {
                    ifname: name.clone(),
                    source,
                })?,
                None => Default::default(),
            };
            interfaces.push(InterfaceSnapshot {
                name: name.clone(),
                xdp,
                sockets: sockets[i],
            });
        }
        Ok(Snapshot {
            at_ns: now_ns(),
            trees: trees.into_iter().flatten().collect(),
            workers,
            interfaces,
        })
    }
}

impl Drop for DataPath {
    fn drop(&mut self) {
        if !self.stopped {
            if let Err(e) = self.shutdown() {
                tracing::warn!(error = %e, "stopping the data path on drop");
            }
        }
    }
}

fn wait<T>(worker: usize, what: &'static str, answer: &Receiver<T>) -> Result<T, RunError> {
    answer.recv_timeout(REPLY_TIMEOUT).map_err(|e| match e {
        crossbeam_channel::RecvTimeoutError::Timeout => RunError::WorkerTimeout { worker, what },
        crossbeam_channel::RecvTimeoutError::Disconnected => RunError::WorkerGone { worker },
    })
}

fn invalid(what: impl Into<String>) -> RunError {
    RunError::InvalidSpec { what: what.into() }
}

/// The tree of a direction configured without one: one FIFO class at
/// [`UNSHAPED_RATE`], as long as every frame of the pair.
fn unshaped_spec(frames: u32) -> ShaperSpec {
    ShaperSpec {
        htb: HtbSpec {
            classes: vec![ClassSpec {
                id: 0x1_0000_0001,
                parent: None,
                rate: UNSHAPED_RATE,
                ceil: UNSHAPED_RATE,
                burst: 1 << 20,
                cburst: 1 << 20,
                prio: 0,
                quantum: 1514,
                qdisc: Some(QdiscParams::Fifo(FifoLimit::Packets(frames))),
            }],
            overhead: 0,
            mpu: 0,
            pool_capacity: frames,
            seed: 0,
            spare_leaves: 0,
        },
        filters: Vec::new(),
        default_class: 0,
        malformed: MalformedPolicy::Default,
        apps: weir_dataplane::app::AppsSpec::empty(),
        class_remark: Vec::new(),
        wash: false,
    }
}

fn check_interface(ifname: &str) -> Result<(), RunError> {
    let missing = || RunError::InterfaceMissing {
        ifname: ifname.to_owned(),
    };
    let c = CString::new(ifname).map_err(|_| missing())?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        return Err(missing());
    }
    Ok(())
}

/// What a socket error most likely means.
fn socket_hint(errno: Option<i32>) -> &'static str {
    match errno {
        Some(libc::EBUSY) => {
            "another AF_XDP socket is bound to this queue (is another weir running?)"
        }
        Some(libc::EINVAL) => "the queue may not exist on this interface (check `ethtool -l`)",
        Some(libc::EPERM) | Some(libc::EACCES) => "run as root (CAP_NET_RAW, CAP_BPF)",
        Some(libc::ENOMEM) | Some(libc::ENOBUFS) => {
            "lower ring_size / frames_per_worker or raise RLIMIT_MEMLOCK"
        }
        Some(libc::EOPNOTSUPP) => "the driver does not support AF_XDP here; try xdp_mode generic",
        _ => "check that the interface is up and the XDP program attached",
    }
}

/// Build the UMEM, sockets, rings and trees of one pair; the workers'
/// inits with their command channels and doorbells, in queue order.
#[allow(clippy::type_complexity)]
fn build_pair(
    spec: &RunSpec,
    pi: usize,
    pair: &PairSpec,
    first_worker: usize,
    dp: &mut DataPath,
) -> Result<Vec<(WorkerInit, Sender<Command>, Arc<Doorbell>)>, RunError> {
    let q_count = pair.queues as usize;
    let f = spec.frames_per_worker;
    let total = pair.queues * f;
    let (inside_if, outside_if) = (2 * pi, 2 * pi + 1);
    let umem_err = |reason: String, errno: Option<i32>| RunError::Umem {
        pair: pair.name.clone(),
        frames: u64::from(total),
        frame_size: spec.frame_size,
        reason,
        errno,
    };
    let ring = QueueSize::new(spec.ring_size).map_err(|e| invalid(format!("ring_size: {e}")))?;
    let frame_size =
        FrameSize::new(spec.frame_size).map_err(|e| invalid(format!("frame_size: {e}")))?;
    let config = UmemConfig::builder()
        .frame_size(frame_size)
        .fill_queue_size(ring)
        .comp_queue_size(ring)
        .frame_headroom(0)
        .build()
        .map_err(|e| invalid(format!("UMEM config: {e}")))?;
    let frames = NonZeroU32::new(total).ok_or_else(|| invalid("no UMEM frames"))?;
    let (umem, descs) = Umem::new(config, frames, false).map_err(|e| {
        let errno = std::error::Error::source(&e)
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .and_then(std::io::Error::raw_os_error);
        umem_err(e.to_string(), errno)
    })?;

    // Lanes and return rings between every ordered pair of this pair's
    // workers (frames never cross pairs: each pair has its own UMEM).
    let mut lanes: Vec<Vec<Option<Arc<Lane>>>> = vec![vec![None; q_count]; q_count];
    let mut returns: Vec<Vec<Option<Arc<ReturnRing>>>> = vec![vec![None; q_count]; q_count];
    for a in 0..q_count {
        for b in 0..q_count {
            if a != b {
                lanes[a][b] = Some(Arc::new(Lane::new(spec.handover_ring as usize)));
                // Frames of b held at a: at most b's whole share.
                returns[a][b] = Some(Arc::new(ReturnRing::new(f as usize)));
            }
        }
    }
    let mut bells = Vec::with_capacity(q_count);
    for k in 0..q_count {
        bells.push(Arc::new(Doorbell::new().map_err(|source| {
            RunError::Eventfd {
                worker: first_worker + k,
                source,
            }
        })?));
    }

    // Trees: upload owned by queue 0, download by queue 1 % Q.
    let now = now_ns();
    let owners = [0usize, 1 % q_count];
    let mut owned: Vec<Vec<OwnedTree>> = (0..q_count).map(|_| Vec::new()).collect();
    let mut route_to: [(usize, u32); 2] = [(0, 0); 2];
    for (dir, (tree, upload)) in [(&pair.upload, true), (&pair.download, false)]
        .into_iter()
        .enumerate()
    {
        let (name, shaper_spec, shaped) = match tree {
            Some(t) => (t.name.clone(), t.shaper.clone(), true),
            None => (
                unshaped_name(&pair.name, if upload { "upload" } else { "download" }),
                unshaped_spec(total),
                false,
            ),
        };
        let shaper = Shaper::new(&shaper_spec, now).map_err(|source| RunError::Shaper {
            tree: name.clone(),
            source,
        })?;
        let owner = owners[dir];
        route_to[dir] = (owner, owned[owner].len() as u32);
        dp.trees.push(TreeRef {
            name: name.clone(),
            worker: first_worker + owner,
            local: owned[owner].len(),
        });
        owned[owner].push(OwnedTree {
            name,
            global: dp.trees.len() - 1,
            pair: pair.name.clone(),
            upload,
            shaped,
            shaper,
            // Upload leaves by the outside port (index 1), download by the
            // inside port (index 0).
            egress: if upload { 1 } else { 0 },
        });
    }

    let mut out = Vec::with_capacity(q_count);
    for (k, trees) in owned.into_iter().enumerate() {
        let queue = k as u32;
        let mut ports = Vec::with_capacity(2);
        for (iface, ifname) in [(inside_if, &pair.inside), (outside_if, &pair.outside)] {
            let port = Port::open(&umem, iface, ifname, queue, ring).map_err(|e| match e {
                PortError::BadName => invalid(format!("{ifname:?} is not an interface name")),
                PortError::SharedContext => RunError::Socket {
                    ifname: ifname.clone(),
                    queue,
                    reason: "this UMEM already has a socket on this queue".to_owned(),
                    errno: None,
                    hint: "each (interface, queue) may appear once",
                },
                PortError::Create { reason, errno } => RunError::Socket {
                    ifname: ifname.clone(),
                    queue,
                    reason,
                    errno,
                    hint: socket_hint(errno),
                },
            })?;
            ports.push(port);
        }
        let route = |dir: usize| {
            let (owner, tree) = route_to[dir];
            if owner == k {
                Route::Local(tree as usize)
            } else {
                Route::Remote { peer: owner, tree }
            }
        };
        let index = first_worker + k;
        let (commands_tx, commands) = crossbeam_channel::unbounded();
        let init = WorkerInit {
            index,
            local: k,
            core: if spec.cores.is_empty() {
                None
            } else {
                Some(spec.cores[index % spec.cores.len()])
            },
            pair: pair.name.clone(),
            queue,
            umem: umem.clone(),
            frame_size: spec.frame_size,
            frames_per_worker: f,
            descs: descs.clone(),
            ports,
            trees,
            routes: [route(0), route(1)],
            lanes_out: lanes[k].clone(),
            lanes_in: (0..q_count).filter_map(|a| lanes[a][k].clone()).collect(),
            returns_out: returns[k].clone(),
            returns_in: (0..q_count).filter_map(|a| returns[a][k].clone()).collect(),
            bells: bells.clone(),
            commands,
            batch: spec.batch,
            busy_poll: spec.busy_poll,
            nice: spec.worker_nice,
            rtprio: spec.worker_rtprio,
            ring_size: spec.ring_size,
        };
        out.push((init, commands_tx, bells[k].clone()));
    }
    Ok(out)
}
