//! One trial: a sender thread transmits paced streams from one interface
//! over AF_XDP, a receiver thread takes them off another interface (weir's
//! XDP program redirects everything on it to the receiver's sockets), and
//! the two reports are joined into a [`TrialResult`].
//!
//! Either end may be in a network namespace (`/run/netns/NAME`, as `ip
//! netns` makes them): each thread enters its own before it opens anything,
//! so one process drives a lab's host A and host B. Both ends read the same
//! CLOCK_MONOTONIC, so the send time in each frame gives one-way latency.
//!
//! Sockets are opened for each trial and closed after it, so a trial
//! leaves nothing attached.

use std::fs::File;
use std::io;
use std::num::NonZeroU32;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use serde::Serialize;
use weir_xdp::datapath::{now_ns, Port, PortError};
use weir_xdp::prog::{rx_queue_count, XdpError, XdpMode, XdpProgram};
use xsk_rs::config::{FrameSize, QueueSize, UmemConfig};
use xsk_rs::{FrameDesc, Umem};

use super::pace::StreamPacer;
use super::rx::{LatencyUs, Receiver};
use super::testframe::{l1_bits, Addresses, SizeMix, Template};

/// UMEM frames are 4096 bytes: room for the jumbo template.
const FRAME_SIZE: u32 = 4096;
/// Frames of the sender's UMEM, and of the receiver's per rx queue.
const FRAMES: u32 = 8192;
/// Ring sizes (tx, rx, fill, completion).
const RING: u32 = 4096;
/// The steady-state rate leaves out the first second of a stream.
const STEADY_SKIP_NS: u64 = 1_000_000_000;
/// How long a thread may take to open its sockets.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Below this much time to the next due frame, the sender spins instead
/// of sleeping (with a 1 µs timer slack a sleep still overshoots by a few
/// µs to tens of µs on a busy VM). Not more: on a 2-core machine a
/// spinning sender takes CPU from the path under test.
const SPIN_NS: u64 = 30_000;
/// The sender sends in bursts of what falls due in this time (at most a
/// batch): see [`StreamPacer::due_gathered`].
const GATHER_NS: u64 = 100_000;
/// The receiver, while frames flow, reads its rings this often instead of
/// sleeping in poll(): a thread blocked in poll() is woken for every few
/// frames, and on a 2-core machine those wake-ups cost the path under
/// test CPU. 4096-frame rings hold far more than this at any rate veth
/// reaches.
const RX_NAP: Duration = Duration::from_micros(50);
/// After this long without a frame the receiver sleeps in poll() again.
const RX_IDLE_NS: u64 = 2_000_000;

/// An interface, optionally inside a named network namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub netns: Option<String>,
    pub dev: String,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.netns {
            Some(ns) => write!(f, "{ns}:{}", self.dev),
            None => f.write_str(&self.dev),
        }
    }
}

/// One stream: frames of one DSCP and size mix at one rate.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamSpec {
    pub dscp: u8,
    pub mix: SizeMix,
    /// Frames per second; None = as fast as the sender can.
    pub rate_pps: Option<f64>,
    /// Distinct flows (UDP source ports) the stream cycles through.
    pub flows: u32,
}

#[derive(Clone, Debug)]
pub struct TrialSpec {
    pub tx: Endpoint,
    pub rx: Endpoint,
    pub addr: Addresses,
    pub streams: Vec<StreamSpec>,
    /// How long the sender sends.
    pub duration: Duration,
    /// How long the receiver keeps listening after the sender stopped (for
    /// frames still queued in the path, e.g. behind a shaper).
    pub drain: Duration,
    /// Most frames put on the tx ring at once.
    pub batch: u32,
    /// How weir's XDP program is attached on the receiving interface.
    pub rx_mode: XdpMode,
}

#[derive(Debug, thiserror::Error)]
pub enum TrialError {
    #[error(
        "entering network namespace {ns:?}: {source} (does /run/netns/{ns} exist? `ip netns list`)"
    )]
    Netns { ns: String, source: io::Error },
    #[error("{end}: {source}")]
    Xdp {
        end: Endpoint,
        source: Box<XdpError>,
    },
    #[error("{end} queue {queue}: {source}")]
    Socket {
        end: Endpoint,
        queue: u32,
        source: PortError,
    },
    #[error("allocating a UMEM of {frames} frames: {reason}")]
    Umem { frames: u32, reason: String },
    #[error("{0} did not get ready within 10 s")]
    NotReady(&'static str),
    #[error("the {0} thread panicked")]
    Panicked(&'static str),
    #[error("a trial needs at least one stream and at most 65535")]
    Streams,
}

/// What the sender did, per stream.
#[derive(Clone, Debug, Default)]
struct TxReport {
    sent: Vec<u64>,
    sent_bytes: Vec<u64>,
    start_ns: u64,
    end_ns: u64,
    late_max_ns: u64,
    /// Times the sender found no free frame (all in flight).
    starved: u64,
    kicks: u64,
    kick_errors: u64,
    cpu_ns: u64,
}

/// What the receiver saw.
struct RxReport {
    rx: Receiver,
    socket: SocketDrops,
    cpu_ns: u64,
}

/// Drops the kernel counted on the receiver's sockets: frames the path
/// delivered that the receiver itself failed to take. Non-zero means the
/// receiver, not the path under test, lost them.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct SocketDrops {
    pub rx_dropped: u64,
    pub rx_ring_full: u64,
    pub fill_ring_empty: u64,
}

/// One stream's result.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct StreamResult {
    pub stream: u16,
    pub dscp: u8,
    pub size: String,
    /// The configured rate (None: flat out).
    pub rate_pps: Option<f64>,
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    /// lost / sent (0 when nothing was sent).
    pub loss: f64,
    pub reordered: u64,
    pub duplicates: u64,
    /// sent / send time.
    pub sent_pps: f64,
    /// received / send time.
    pub received_pps: f64,
    /// (received − 1) / (last arrival − first arrival): the rate the
    /// receiver measured on its own clock.
    pub rx_span_pps: f64,
    /// The receiver's rate over the steady part of the stream (from 1 s
    /// after the first arrival to the last whole 100 ms slot), if the
    /// trial was long enough: what a shaped class delivers once its start
    /// burst is through.
    pub steady_pps: Option<f64>,
    /// The receiver's rate over the trial's common window: from 1 s after
    /// the sender started to the moment it stopped (whole 100 ms slots of
    /// the stream inside it). Every stream is offered during all of it, so
    /// saturated classes are all backlogged at once: the steady state of
    /// the whole tree, measured over the same time for every class.
    pub window_pps: Option<f64>,
    /// L2 Gbit/s received (FCS included) and the same at L1 (+20 bytes of
    /// preamble and gap per frame), over the send time.
    pub l2_gbps: f64,
    pub l1_gbps: f64,
    pub latency_us: LatencyUs,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TrialResult {
    pub tx: String,
    pub rx: String,
    pub duration_s: f64,
    pub streams: Vec<StreamResult>,
    /// Received frames that were not this trial's.
    pub foreign: u64,
    pub rx_socket: SocketDrops,
    pub tx_late_max_us: f64,
    pub tx_starved: u64,
    pub tx_kick_errors: u64,
    /// CPU time of the sender and receiver threads.
    pub tx_cpu_s: f64,
    pub rx_cpu_s: f64,
    /// Busy CPU time of the whole machine (all cores, /proc/stat, without
    /// steal) from the start of sending to the end of the drain.
    pub machine_busy_s: f64,
    /// CPU time the hypervisor gave to others while we wanted it (steal),
    /// over the same time: how noisy the VM was during this trial.
    pub machine_steal_s: f64,
}

impl TrialResult {
    /// Totals over all streams: (sent, received).
    pub fn totals(&self) -> (u64, u64) {
        self.streams
            .iter()
            .fold((0, 0), |(s, r), x| (s + x.sent, r + x.received))
    }

    /// Lost / sent over all streams.
    pub fn loss(&self) -> f64 {
        let (s, r) = self.totals();
        if s == 0 {
            0.0
        } else {
            s.saturating_sub(r) as f64 / s as f64
        }
    }

    pub fn received_pps(&self) -> f64 {
        self.streams.iter().map(|s| s.received_pps).sum()
    }

    pub fn sent_pps(&self) -> f64 {
        self.streams.iter().map(|s| s.sent_pps).sum()
    }
}

/// Run one trial: open the receiver, then the sender, send for
/// `duration`, drain, close both.
pub fn run(spec: &TrialSpec) -> Result<TrialResult, TrialError> {
    if spec.streams.is_empty() || spec.streams.len() > usize::from(u16::MAX) {
        return Err(TrialError::Streams);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = mpsc::channel::<&'static str>();

    let rx_spec = spec.clone();
    let rx_stop = Arc::clone(&stop);
    let rx_ready = ready_tx.clone();
    let receiver = thread::Builder::new()
        .name("bench-rx".into())
        .spawn(move || receive(&rx_spec, &rx_ready, &rx_stop))
        .map_err(|e| TrialError::Umem {
            frames: 0,
            reason: format!("spawning the receiver: {e}"),
        })?;
    if ready_rx.recv_timeout(READY_TIMEOUT).is_err() {
        stop.store(true, Ordering::Relaxed);
        return Err(join_err(receiver, "receiver").unwrap_or(TrialError::NotReady("receiver")));
    }

    let (go_tx, go_rx) = mpsc::channel::<u64>();
    let tx_spec = spec.clone();
    let tx_ready = ready_tx;
    let sender = thread::Builder::new()
        .name("bench-tx".into())
        .spawn(move || transmit(&tx_spec, &tx_ready, &go_rx))
        .map_err(|e| TrialError::Umem {
            frames: 0,
            reason: format!("spawning the sender: {e}"),
        })?;
    if ready_rx.recv_timeout(READY_TIMEOUT).is_err() {
        stop.store(true, Ordering::Relaxed);
        drop(go_tx);
        let err = join_err(sender, "sender").unwrap_or(TrialError::NotReady("sender"));
        let _ = receiver.join();
        return Err(err);
    }

    let cpu0 = machine_cpu_ns();
    // Start a little ahead, so both threads are past their set-up.
    let _ = go_tx.send(now_ns() + 1_000_000);
    let tx = sender
        .join()
        .map_err(|_| TrialError::Panicked("sender"))
        .and_then(|r| r);
    stop.store(true, Ordering::Relaxed);
    let rx = receiver
        .join()
        .map_err(|_| TrialError::Panicked("receiver"))
        .and_then(|r| r);
    let cpu1 = machine_cpu_ns();
    let (tx, rx) = (tx?, rx?);
    let used = (cpu1.0.saturating_sub(cpu0.0), cpu1.1.saturating_sub(cpu0.1));
    Ok(assemble(spec, &tx, &rx, used))
}

fn join_err<T>(
    h: thread::JoinHandle<Result<T, TrialError>>,
    what: &'static str,
) -> Option<TrialError> {
    match h.join() {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(e),
        Err(_) => Some(TrialError::Panicked(what)),
    }
}

fn assemble(spec: &TrialSpec, tx: &TxReport, rx: &RxReport, cpu: (u64, u64)) -> TrialResult {
    let (busy_ns, steal_ns) = cpu;
    let secs = (tx.end_ns.saturating_sub(tx.start_ns)).max(1) as f64 / 1e9;
    let streams = spec
        .streams
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let r = &rx.rx.streams[i];
            let sent = tx.sent.get(i).copied().unwrap_or(0);
            let lost = sent.saturating_sub(r.received);
            let span = r.first_ns.map_or(0, |f| r.last_ns.saturating_sub(f)).max(1) as f64 / 1e9;
            let l1_bytes_extra = r.received * (l1_bits(0) / 8);
            StreamResult {
                stream: i as u16,
                dscp: s.dscp,
                size: s.mix.to_string(),
                rate_pps: s.rate_pps,
                sent,
                received: r.received,
                lost,
                loss: if sent == 0 {
                    0.0
                } else {
                    lost as f64 / sent as f64
                },
                reordered: r.reordered,
                duplicates: r.duplicates,
                sent_pps: sent as f64 / secs,
                received_pps: r.received as f64 / secs,
                rx_span_pps: r.received.saturating_sub(1) as f64 / span,
                steady_pps: r.steady_pps(STEADY_SKIP_NS),
                window_pps: r.window_pps(tx.start_ns + STEADY_SKIP_NS, tx.end_ns),
                l2_gbps: (r.bytes * 8) as f64 / secs / 1e9,
                l1_gbps: ((r.bytes + l1_bytes_extra) * 8) as f64 / secs / 1e9,
                latency_us: LatencyUs::of(&r.latency),
            }
        })
        .collect();
    TrialResult {
        tx: spec.tx.to_string(),
        rx: spec.rx.to_string(),
        duration_s: secs,
        streams,
        foreign: rx.rx.foreign,
        rx_socket: rx.socket,
        tx_late_max_us: tx.late_max_ns as f64 / 1e3,
        tx_starved: tx.starved,
        tx_kick_errors: tx.kick_errors,
        tx_cpu_s: tx.cpu_ns as f64 / 1e9,
        rx_cpu_s: rx.cpu_ns as f64 / 1e9,
        machine_busy_s: busy_ns as f64 / 1e9,
        machine_steal_s: steal_ns as f64 / 1e9,
    }
}

/// Move the calling thread into network namespace `ns` (`/run/netns/ns`).
/// Only this thread moves: the rest of the process stays where it is.
pub fn enter_netns(ns: &str) -> Result<(), TrialError> {
    let err = |source| TrialError::Netns {
        ns: ns.to_owned(),
        source,
    };
    let f = File::open(format!("/run/netns/{ns}")).map_err(err)?;
    // SAFETY: setns with a valid namespace fd and CLONE_NEWNET changes
    // only the calling thread's network namespace; no memory is involved.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(err(io::Error::last_os_error()));
    }
    Ok(())
}

fn make_umem(frames: u32) -> Result<(Umem, Vec<FrameDesc>), TrialError> {
    let err = |reason: String| TrialError::Umem { frames, reason };
    let ring = QueueSize::new(RING).map_err(|e| err(e.to_string()))?;
    let config = UmemConfig::builder()
        .frame_size(FrameSize::new(FRAME_SIZE).map_err(|e| err(e.to_string()))?)
        .fill_queue_size(ring)
        .comp_queue_size(ring)
        .frame_headroom(0)
        .build()
        .map_err(|e| err(e.to_string()))?;
    let n = NonZeroU32::new(frames).ok_or_else(|| err("no frames".into()))?;
    Umem::new(config, n, false).map_err(|e| err(e.to_string()))
}

/// How long to retry binding a socket to a queue the previous trial's
/// socket still holds: the kernel releases a closed AF_XDP socket's
/// binding asynchronously, and a bind in the meantime fails with EBUSY.
const BIND_RETRY: Duration = Duration::from_secs(3);

fn open_port(umem: &Umem, end: &Endpoint, queue: u32) -> Result<Port, TrialError> {
    let ring = QueueSize::new(RING).map_err(|e| TrialError::Umem {
        frames: 0,
        reason: e.to_string(),
    })?;
    let give_up = now_ns() + BIND_RETRY.as_nanos() as u64;
    loop {
        match Port::open(umem, 0, &end.dev, queue, ring) {
            Ok(p) => return Ok(p),
            Err(PortError::Create {
                errno: Some(libc::EBUSY),
                ..
            }) if now_ns() < give_up => thread::sleep(Duration::from_millis(20)),
            Err(source) => {
                return Err(TrialError::Socket {
                    end: end.clone(),
                    queue,
                    source,
                })
            }
        }
    }
}

/// CPU time of the calling thread.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id exists on
    // Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// (busy, steal) time of all CPUs since boot, from /proc/stat, in ns:
/// busy = user + nice + system + irq + softirq (idle, iowait and steal left
/// out); steal = time the hypervisor ran someone else. (0, 0) if
/// unreadable.
pub fn machine_cpu_ns() -> (u64, u64) {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return (0, 0);
    };
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return (0, 0);
    };
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if f.len() < 7 {
        return (0, 0);
    }
    // user nice system idle iowait irq softirq [steal guest guest_nice]
    let busy = f[0] + f[1] + f[2] + f[5] + f[6];
    let steal = f.get(7).copied().unwrap_or(0);
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let ns = 1_000_000_000 / hz;
    (busy * ns, steal * ns)
}

fn transmit(
    spec: &TrialSpec,
    ready: &mpsc::Sender<&'static str>,
    go: &mpsc::Receiver<u64>,
) -> Result<TxReport, TrialError> {
    if let Some(ns) = &spec.tx.netns {
        enter_netns(ns)?;
    }
    let (umem, mut free) = make_umem(FRAMES)?;
    let mut port = open_port(&umem, &spec.tx, 0)?;
    let templates: Vec<Template> = spec
        .streams
        .iter()
        .enumerate()
        .map(|(i, s)| Template::new(&spec.addr, i as u16, s.dscp, &s.mix, s.flows))
        .collect();
    weir_xdp::datapath::tighten_timer_slack();
    let _ = ready.send("sender");
    let Ok(start) = go.recv() else {
        return Ok(TxReport::default());
    };
    let cpu0 = thread_cpu_ns();
    let n = spec.streams.len();
    let mut pacers: Vec<StreamPacer> = spec
        .streams
        .iter()
        .map(|s| StreamPacer::new(s.rate_pps, start))
        .collect();
    let mut rep = TxReport {
        sent: vec![0; n],
        sent_bytes: vec![0; n],
        ..TxReport::default()
    };
    let batch = spec.batch.clamp(1, RING / 2) as usize;
    let mut out: Vec<FrameDesc> = Vec::with_capacity(batch);
    let mut comp = vec![FrameDesc::default(); RING as usize];
    let end = start + spec.duration.as_nanos() as u64;
    let mut turn = 0usize;
    while now_ns() < start {
        std::hint::spin_loop();
    }
    loop {
        let now = now_ns();
        if now >= end {
            break;
        }
        let c = port.completions(&mut comp);
        free.extend_from_slice(&comp[..c]);
        out.clear();
        let ring_room = port.tx_room(batch as u32) as usize;
        // Streams take turns at being first, so a flat-out stream does not
        // starve the others of frames.
        for k in 0..n {
            let i = (turn + k) % n;
            let room = (ring_room - out.len()).min(free.len()) as u64;
            if room == 0 {
                break;
            }
            let due = pacers[i].due_gathered(now, room, GATHER_NS);
            for _ in 0..due {
                let Some(mut d) = free.pop() else { break };
                let seq = rep.sent[i] as u32;
                let size = spec.streams[i].mix.size(rep.sent[i]);
                let len = size - super::testframe::FCS;
                // SAFETY: `d` came from the free list, so neither the
                // kernel nor another ring holds it; we own it until it is
                // put on the tx ring below.
                let mut data = unsafe { umem.data_mut(&mut d) };
                data.cursor().set_pos(len);
                let _ = templates[i].write(data.contents_mut(), size, seq, now);
                out.push(d);
                rep.sent[i] += 1;
                rep.sent_bytes[i] += size as u64;
                pacers[i].sent(1);
            }
        }
        turn = turn.wrapping_add(1);
        if !out.is_empty() {
            port.send(&out);
        }
        if port.tx_unsent() > 0 {
            let k = port.kick();
            rep.kicks += k.kicks;
            rep.kick_errors += k.errors;
        }
        if free.is_empty() {
            rep.starved += 1;
            continue;
        }
        if out.is_empty() {
            let next = pacers
                .iter()
                .map(|p| p.next_send_ns(batch as u64, GATHER_NS))
                .min()
                .unwrap_or(end);
            let wait = next.min(end).saturating_sub(now_ns());
            if wait > SPIN_NS {
                thread::sleep(Duration::from_nanos(wait - SPIN_NS / 2));
            } else {
                std::hint::spin_loop();
            }
        }
    }
    rep.end_ns = now_ns();
    rep.start_ns = start;
    // Push out what is still on the ring, bounded in time.
    let flush_end = now_ns() + 200_000_000;
    while port.tx_unsent() > 0 && now_ns() < flush_end {
        let k = port.kick();
        rep.kicks += k.kicks;
        rep.kick_errors += k.errors;
        let _ = port.completions(&mut comp);
    }
    rep.late_max_ns = pacers
        .iter()
        .map(StreamPacer::late_max_ns)
        .max()
        .unwrap_or(0);
    rep.cpu_ns = thread_cpu_ns().saturating_sub(cpu0);
    Ok(rep)
}

fn receive(
    spec: &TrialSpec,
    ready: &mpsc::Sender<&'static str>,
    stop: &AtomicBool,
) -> Result<RxReport, TrialError> {
    let end = &spec.rx;
    if let Some(ns) = &end.netns {
        enter_netns(ns)?;
    }
    let xdp_err = |source| TrialError::Xdp {
        end: end.clone(),
        source: Box::new(source),
    };
    let queues = rx_queue_count(&end.dev).map_err(xdp_err)?;
    let mut prog = XdpProgram::attach(&end.dev, spec.rx_mode, &[]).map_err(xdp_err)?;
    let (umem, descs) = make_umem(FRAMES * queues)?;
    let mut ports = Vec::with_capacity(queues as usize);
    let mut spare: Vec<Vec<FrameDesc>> = Vec::with_capacity(queues as usize);
    for (q, share) in (0..queues).zip(descs.chunks(FRAMES as usize)) {
        let mut port = open_port(&umem, end, q)?;
        // The fill ring takes a batch only whole: give it what fits.
        let room = port.fill_room(RING) as usize;
        let took = port.fill(&share[..room.min(share.len())]);
        spare.push(share[took..].to_vec());
        prog.register_socket(q, port.fd()).map_err(xdp_err)?;
        ports.push(port);
    }
    weir_xdp::datapath::tighten_timer_slack();
    let _ = ready.send("receiver");
    let cpu0 = thread_cpu_ns();
    let mut rx = Receiver::new(spec.streams.len());
    let mut buf = vec![FrameDesc::default(); 256];
    let mut pfds: Vec<libc::pollfd> = ports
        .iter()
        .map(|p| libc::pollfd {
            fd: p.fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let drain_ns = spec.drain.as_nanos() as u64;
    let mut stopped_at: Option<u64> = None;
    let mut last_rx = 0u64;
    loop {
        let mut got = 0;
        for (p, port) in ports.iter_mut().enumerate() {
            let n = port.receive(&mut buf);
            if n == 0 {
                continue;
            }
            got += n;
            let now = now_ns();
            for d in &buf[..n] {
                // SAFETY: the frame came off our rx ring: the kernel has
                // finished writing it and gives it to us until we put it
                // back on the fill ring below.
                let data = unsafe { umem.data(d) };
                rx.record(data.contents(), now);
            }
            spare[p].extend_from_slice(&buf[..n]);
            let room = port.fill_room(RING) as usize;
            let took = port.fill(&spare[p][..room.min(spare[p].len())]);
            spare[p].drain(..took);
        }
        let now = now_ns();
        if got > 0 {
            last_rx = now;
            if got < buf.len() {
                thread::sleep(RX_NAP);
            }
            continue;
        }
        if stop.load(Ordering::Relaxed) {
            let t = *stopped_at.get_or_insert(now);
            if now.saturating_sub(t) >= drain_ns {
                break;
            }
        }
        if now.saturating_sub(last_rx) < RX_IDLE_NS {
            thread::sleep(RX_NAP);
            continue;
        }
        // SAFETY: `pfds` is a valid array of pollfds for the duration of
        // the call; a 1 ms timeout bounds the wait.
        unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, 1) };
    }
    let cpu_ns = thread_cpu_ns().saturating_sub(cpu0);
    let mut socket = SocketDrops::default();
    for (q, port) in ports.iter().enumerate() {
        let s = port.stats();
        socket.rx_dropped += s.rx_dropped;
        socket.rx_ring_full += s.rx_ring_full;
        socket.fill_ring_empty += s.rx_fill_ring_empty_descs;
        let _ = prog.unregister_socket(q as u32);
    }
    drop(ports);
    drop(prog);
    Ok(RxReport { rx, socket, cpu_ns })
}
