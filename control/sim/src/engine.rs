//! The event loop: sources, TCP-like senders and the shaper in virtual time.
//!
//! Time jumps from event to event. An event is a source emission, a TCP
//! connection's feedback (ACK / loss notice) falling due, or the shaper's own
//! `next_deadline()`. At each event time the loop first enqueues everything
//! that arrives, then calls `dequeue(now)` until it says "not yet" — exactly
//! what the AF_XDP worker does on each wake-up — and then jumps.
//!
//! Per packet the loop allocates nothing: frames are built from per-flow
//! header templates into one buffer, the frame token (`Frame::addr`) carries
//! the flow index and a sequence number, and every per-class / per-source
//! counter is a preallocated slot. Growth only happens when a TCP
//! connection's feedback queue reaches a new high-water mark.

use std::cmp::Reverse;
use std::collections::binary_heap::PeekMut;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use weir_dataplane::htb::ClassStats;
use weir_dataplane::packet::{DropReason, Dropped, Frame, Packet};
use weir_dataplane::rate::RateCfg;
use weir_dataplane::shaper::{FrameCounters, Shaper, ShaperSpec};

use super::frame::{FrameBuf, FrameTemplate};
use super::report::{
    ClassReport, EngineReport, FrameReport, HtbClassReport, Report, Sojourn, SourceReport,
    TcpReport, Timeline, Volume,
};
use super::traffic::{Pace, Sizes, SourceKind, Traffic};
use super::SimError;

/// What the engine needs from the shaper. [`Shaper`] is the real one; unit
/// tests plug in a small model so the engine can be checked on its own.
pub(crate) trait Core {
    fn enqueue(&mut self, frame: Frame, bytes: &[u8], now: u64) -> Option<u32>;
    fn dequeue(&mut self, now: u64) -> Option<Packet>;
    fn next_deadline(&self) -> Option<u64>;
    fn take_drops(&mut self) -> std::vec::Drain<'_, Dropped>;
    fn counters(&self) -> FrameCounters;
    /// Packets queued anywhere in the tree.
    fn queued(&self) -> u64;
    fn class_stats(&self, class: u32) -> Option<ClassStats>;
}

impl Core for Shaper {
    #[inline]
    fn enqueue(&mut self, frame: Frame, bytes: &[u8], now: u64) -> Option<u32> {
        Shaper::enqueue(self, frame, bytes, now)
    }
    #[inline]
    fn dequeue(&mut self, now: u64) -> Option<Packet> {
        Shaper::dequeue(self, now)
    }
    #[inline]
    fn next_deadline(&self) -> Option<u64> {
        Shaper::next_deadline(self)
    }
    #[inline]
    fn take_drops(&mut self) -> std::vec::Drain<'_, Dropped> {
        Shaper::take_drops(self)
    }
    fn counters(&self) -> FrameCounters {
        Shaper::counters(self)
    }
    fn queued(&self) -> u64 {
        u64::from(self.htb().backlog().packets)
    }
    fn class_stats(&self, class: u32) -> Option<ClassStats> {
        (class < self.htb().class_count()).then(|| self.htb().class_stats(class))
    }
}

/// The run's parameters once options and the traffic file are merged.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RunParams {
    pub duration: u64,
    pub warmup: u64,
    pub seed: u64,
    /// Timeline bucket width, ns (0: no timeline).
    pub bucket_ns: u64,
}

/// Budget for timeline buckets over all classes (8 bytes each); a finer
/// bucket over many classes is coarsened to fit.
const TIMELINE_BUDGET: u64 = 16 << 20;

const NONE: u32 = u32::MAX;
/// Low bits of the frame token: per-flow sequence number; high bits: flow.
const SEQ_BITS: u32 = 40;
const SEQ_MASK: u64 = (1 << SEQ_BITS) - 1;
/// Event targets with this bit set are TCP connections, else sources.
const CONN_BIT: u32 = 1 << 31;
const N_REASONS: usize = DropReason::ALL.len();

#[derive(Clone, Copy, Debug, Default)]
struct Vol {
    packets: u64,
    bytes: u64,
}

impl Vol {
    #[inline]
    fn add(&mut self, bytes: u64) {
        self.packets += 1;
        self.bytes += bytes;
    }
    fn report(self) -> Volume {
        Volume {
            packets: self.packets,
            bytes: self.bytes,
        }
    }
}

/// Streaming token-bucket conformance: the smallest bucket (bytes) that
/// would have let every send through at `rate`. For all windows [t1, t2]:
/// bytes sent ≤ rate·(t2 − t1) + bucket. O(1) per send, exact.
#[derive(Clone, Copy, Debug)]
struct Conformance {
    /// Bytes/s.
    rate: i128,
    /// Bytes sent so far, ×1e9 (so that rate·ns is in the same unit).
    sent: i128,
    /// min over sends of (bytes sent before it − rate·t), same unit.
    min_base: i128,
    max_excess: i128,
}

impl Conformance {
    fn new(rate_bytes: u64) -> Conformance {
        Conformance {
            rate: i128::from(rate_bytes),
            sent: 0,
            min_base: i128::MAX,
            max_excess: 0,
        }
    }

    #[inline]
    fn on_send(&mut self, now: u64, bytes: u64) {
        let credit = self.rate * i128::from(now);
        self.min_base = self.min_base.min(self.sent - credit);
        self.sent += i128::from(bytes) * 1_000_000_000;
        self.max_excess = self.max_excess.max(self.sent - credit - self.min_base);
    }

    fn bucket_bytes(&self) -> u64 {
        ((self.max_excess + 999_999_999) / 1_000_000_000) as u64
    }
}

struct ClassAcc {
    parent: u32,
    offered: Vol,
    offered_win: u64,
    sent: Vol,
    sent_win: u64,
    dropped: Vol,
    drops: [u64; N_REASONS],
    marks: u64,
    max_len: u32,
    timeline: Vec<u64>,
    ceil: Conformance,
}

#[derive(Default)]
struct SourceAcc {
    offered: Vol,
    offered_win: u64,
    sent: Vol,
    sent_win: u64,
    payload_win: u64,
    dropped: Vol,
    drops: [u64; N_REASONS],
    marks: u64,
    /// Frames the shaper refused to classify (dropped as malformed).
    unclassified: u64,
}

#[derive(Default)]
struct Pairs {
    list: Vec<Pair>,
    index: HashMap<(u32, u32), u32>,
}

/// Sojourn samples of one (source, leaf class) pair: one record per packet
/// serves both the class's and the source's percentiles (merged at the end).
struct Pair {
    source: u32,
    class: u32,
    hist: Histogram<u64>,
}

enum SizePicker {
    Fixed(u32),
    Mix {
        sizes: Vec<u32>,
        /// Cumulative weights.
        cum: Vec<u32>,
    },
}

impl SizePicker {
    fn new(s: &Sizes) -> SizePicker {
        match s {
            Sizes::Fixed(v) => SizePicker::Fixed(*v),
            Sizes::Mix(m) => {
                let mut acc = 0u32;
                SizePicker::Mix {
                    sizes: m.iter().map(|&(s, _)| s).collect(),
                    cum: m
                        .iter()
                        .map(|&(_, w)| {
                            acc = acc.saturating_add(w);
                            acc
                        })
                        .collect(),
                }
            }
        }
    }

    #[inline]
    fn pick(&self, rng: &mut SmallRng) -> u32 {
        match self {
            SizePicker::Fixed(s) => *s,
            SizePicker::Mix { sizes, cum } => {
                let r = rng.gen_range(0..*cum.last().unwrap_or(&1));
                sizes[cum.partition_point(|&c| c <= r)]
            }
        }
    }
}

/// Open-loop emission times. Rates use a 32.32 fixed-point ns-per-byte over
/// the bytes sent since `origin`, so 64-byte packets at 10 Gbit/s (51.2 ns
/// apart) keep their exact long-run rate instead of drifting by the
/// truncation of each gap.
struct Pacer {
    pace: Pace,
    /// ns per byte, 32.32 fixed point (Pace::Rate).
    ns_per_byte_fp: u128,
    origin: u64,
    /// Bytes (rate) or packets (interval) since `origin`.
    cum: u64,
    onoff: Option<(u64, u64)>,
    /// Poisson clock, ns since start (f64: only the simulator's own
    /// inter-arrival sampling; the core never sees it).
    poisson: Option<f64>,
}

impl Pacer {
    fn new(kind: &SourceKind, start: u64) -> Pacer {
        let (pace, onoff, poisson) = match *kind {
            SourceKind::Cbr { pace } => (pace, None, None),
            SourceKind::OnOff { pace, on, off } => (pace, Some((on, off)), None),
            SourceKind::Poisson { pace } => (pace, None, Some(start as f64)),
            SourceKind::Tcp(_) => (Pace::Interval(1), None, None),
        };
        let ns_per_byte_fp = match pace {
            Pace::Rate(bps) => (8_000_000_000u128 << 32) / u128::from(bps.max(1)),
            Pace::Interval(_) => 0,
        };
        Pacer {
            pace,
            ns_per_byte_fp,
            origin: start,
            cum: 0,
            onoff,
            poisson,
        }
    }

    /// Time of the next emission after one of `size` bytes.
    #[inline]
    fn advance(&mut self, size: u32, rng: &mut SmallRng) -> u64 {
        if let Some(clock) = &mut self.poisson {
            let mean = match self.pace {
                Pace::Rate(_) => ((u128::from(size) * self.ns_per_byte_fp) >> 32) as f64,
                Pace::Interval(ns) => ns as f64,
            };
            // Inverse-CDF sampling; 1 - U keeps ln away from 0.
            let u: f64 = rng.gen();
            *clock += -(1.0 - u).ln() * mean;
            return *clock as u64;
        }
        let offset = match self.pace {
            Pace::Rate(_) => {
                self.cum += u64::from(size);
                ((u128::from(self.cum) * self.ns_per_byte_fp) >> 32) as u64
            }
            Pace::Interval(ns) => {
                self.cum += 1;
                self.cum.saturating_mul(ns)
            }
        };
        let mut t = self.origin.saturating_add(offset);
        if let Some((on, off)) = self.onoff {
            if t >= self.origin.saturating_add(on) {
                self.origin = self.origin.saturating_add(on + off);
                self.cum = 0;
                t = self.origin;
            }
        }
        t
    }
}

struct SourceRt {
    first_flow: u32,
    flows: u32,
    next_flow: u32,
    sizes: SizePicker,
    next_size: u32,
    rng: SmallRng,
    pacer: Pacer,
    /// First instant the source no longer sends (min of stop and duration).
    end: u64,
    acc: SourceAcc,
    is_tcp: bool,
}

struct FlowRt {
    tmpl: FrameTemplate,
    source: u32,
    /// Leaf class of its last enqueue (NONE: never classified). A flow's
    /// headers never change, so neither does its class.
    class: u32,
    /// TCP connection index, or NONE.
    conn: u32,
    /// Index in `State::pairs` for (source, class), or NONE.
    pair: u32,
    /// Next sequence number of an open-loop flow.
    seq: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FbKind {
    Ack,
    AckCe,
    Loss,
}

/// A congestion-control signal in flight back to the sender.
#[derive(Clone, Copy, Debug)]
struct Feedback {
    at: u64,
    seq: u64,
    kind: FbKind,
}

/// A Reno-style sender: window in packets, slow start, additive increase of
/// 1/cwnd per ACK, multiplicative decrease by half at most once per window of
/// data (NewReno's "recover" point), on a loss or an ECN echo, each learnt
/// one RTT after it happened. No retransmissions: a lost packet is lost
/// goodput. The sender is window-limited only: it sends whenever
/// inflight < cwnd.
struct Conn {
    flow: u32,
    source: u32,
    rtt: u64,
    ect: bool,
    start: u64,
    end: u64,
    cwnd: u32,
    ssthresh: u32,
    /// ACKs counted towards the next +1 in congestion avoidance.
    ca_acc: u32,
    max_cwnd: u32,
    next_seq: u64,
    /// Signals about packets sent before this sequence number belong to a
    /// window that already halved.
    recover: u64,
    inflight: u32,
    feedback: VecDeque<Feedback>,
    has_event: bool,
    reductions: u64,
    losses: u64,
    ce_echoes: u64,
}

impl Conn {
    #[inline]
    fn on_ack(&mut self, seq: u64, ce: bool) {
        self.inflight -= 1;
        if ce && self.ect {
            self.ce_echoes += 1;
            self.congestion(seq);
            return;
        }
        if self.cwnd < self.ssthresh {
            self.cwnd += 1;
        } else {
            self.ca_acc += 1;
            if self.ca_acc >= self.cwnd {
                self.ca_acc = 0;
                self.cwnd += 1;
            }
        }
        self.cwnd = self.cwnd.min(self.max_cwnd);
    }

    #[inline]
    fn on_loss(&mut self, seq: u64) {
        self.inflight -= 1;
        self.losses += 1;
        self.congestion(seq);
    }

    fn congestion(&mut self, seq: u64) {
        if seq < self.recover {
            return;
        }
        self.ssthresh = (self.cwnd / 2).max(2);
        self.cwnd = self.ssthresh;
        self.ca_acc = 0;
        self.recover = self.next_seq;
        self.reductions += 1;
    }
}

/// An event is one u128, `at << 64 | target`, in a min-heap. A target has
/// at most one event pending (a source its next emission, a connection its
/// next wake-up), so keys are unique and ties break by target: the order is
/// total and the run deterministic. `at` is the whole high word so reading
/// it is one aligned 8-byte load of what the last re-key stored (a struct
/// with split stores followed by a wide load, or a load straddling the two
/// words, stalled store forwarding: 14–19% of the loop).
type Event = Reverse<u128>;

#[inline]
fn event(at: u64, target: u32) -> Event {
    Reverse((u128::from(at) << 64) | u128::from(target))
}

#[inline]
fn event_at(e: &Event) -> u64 {
    (e.0 >> 64) as u64
}

#[inline]
fn event_target(e: &Event) -> u32 {
    e.0 as u32
}

struct State {
    p: RunParams,
    charge: RateCfg,
    classes: Vec<ClassAcc>,
    sources: Vec<SourceRt>,
    flows: Vec<FlowRt>,
    conns: Vec<Conn>,
    /// Events made while the loop holds the heap; moved in after each one.
    pending: Vec<Event>,
    buf: FrameBuf,
    sigfig: u8,
    pairs: Pairs,
    in_win: bool,
    bucket: usize,
    /// End of the current timeline bucket: the division happens once per
    /// bucket, not once per wake-up.
    bucket_end: u64,
    engine: EngineReport,
    emitted: u64,
    sent: u64,
    dropped: [u64; N_REASONS],
}

fn new_hist(sigfig: u8) -> Histogram<u64> {
    // Up to one hour of sojourn, ns resolution.
    Histogram::new_with_bounds(1, 3_600_000_000_000, sigfig).expect("static bounds are valid")
}

/// The pair slot for (source, class), made on first use (a flow's class is
/// fixed, so this runs once per flow).
fn pair_of(pairs: &mut Pairs, source: u32, class: u32, sigfig: u8) -> u32 {
    *pairs.index.entry((source, class)).or_insert_with(|| {
        pairs.list.push(Pair {
            source,
            class,
            hist: new_hist(sigfig),
        });
        (pairs.list.len() - 1) as u32
    })
}

fn seed_for(seed: u64, index: usize) -> u64 {
    // splitmix64 step: independent streams per source from one seed.
    let mut z = seed ^ (index as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl State {
    fn new(spec: &ShaperSpec, traffic: &Traffic, p: RunParams) -> State {
        let n = spec.htb.classes.len();
        let mut p = p;
        if p.bucket_ns > 0 {
            let buckets = p.duration.div_ceil(p.bucket_ns);
            let total = buckets.saturating_mul(n as u64);
            if total > TIMELINE_BUDGET {
                let factor = total.div_ceil(TIMELINE_BUDGET);
                p.bucket_ns = p.bucket_ns.saturating_mul(factor);
            }
        }
        let buckets = if p.bucket_ns > 0 {
            p.duration.div_ceil(p.bucket_ns) as usize
        } else {
            0
        };
        let classes = spec
            .htb
            .classes
            .iter()
            .map(|c| ClassAcc {
                parent: c.parent.unwrap_or(NONE),
                offered: Vol::default(),
                offered_win: 0,
                sent: Vol::default(),
                sent_win: 0,
                dropped: Vol::default(),
                drops: [0; N_REASONS],
                marks: 0,
                max_len: 0,
                timeline: vec![0; buckets],
                ceil: Conformance::new(c.ceil),
            })
            .collect();
        let sigfig = if n + traffic.sources.len() <= 512 {
            3
        } else {
            2
        };
        let mut st = State {
            p,
            charge: RateCfg::new(1, spec.htb.overhead, spec.htb.mpu),
            classes,
            sources: Vec::with_capacity(traffic.sources.len()),
            flows: Vec::new(),
            conns: Vec::new(),
            pending: Vec::new(),
            buf: FrameBuf::new(),
            sigfig,
            pairs: Pairs::default(),
            in_win: p.warmup == 0,
            bucket: 0,
            bucket_end: 0,
            engine: EngineReport::default(),
            emitted: 0,
            sent: 0,
            dropped: [0; N_REASONS],
        };
        for (si, s) in traffic.sources.iter().enumerate() {
            let mut rng = SmallRng::seed_from_u64(seed_for(p.seed, si));
            let sizes = SizePicker::new(&s.sizes);
            let next_size = sizes.pick(&mut rng);
            let end = s.stop.unwrap_or(u64::MAX).min(p.duration);
            let first_flow = st.flows.len() as u32;
            let is_tcp = matches!(s.kind, SourceKind::Tcp(_));
            for i in 0..s.flows {
                let h = s.vary.apply(&s.header, i);
                st.flows.push(FlowRt {
                    tmpl: FrameTemplate::new(&h, s.sizes.max()),
                    source: si as u32,
                    class: NONE,
                    conn: NONE,
                    pair: NONE,
                    seq: 0,
                });
            }
            if let SourceKind::Tcp(tcp) = s.kind {
                for i in 0..s.flows {
                    let jitter = rng.gen_range(0..tcp.rtt);
                    let c = st.conns.len() as u32;
                    let flow = first_flow + i;
                    st.flows[flow as usize].conn = c;
                    st.conns.push(Conn {
                        flow,
                        source: si as u32,
                        rtt: tcp.rtt,
                        ect: s.header.tos & 0x03 != 0,
                        start: s.start.saturating_add(jitter),
                        end,
                        cwnd: tcp.initial_cwnd.min(tcp.max_cwnd),
                        ssthresh: u32::MAX,
                        ca_acc: 0,
                        max_cwnd: tcp.max_cwnd,
                        next_seq: 0,
                        recover: 0,
                        inflight: 0,
                        feedback: VecDeque::new(),
                        has_event: true,
                        reductions: 0,
                        losses: 0,
                        ce_echoes: 0,
                    });
                    let start = st.conns[c as usize].start;
                    if start < end {
                        st.schedule(start, CONN_BIT | c);
                    } else {
                        st.conns[c as usize].has_event = false;
                    }
                }
            } else if s.start < end {
                st.schedule(s.start, si as u32);
            }
            st.sources.push(SourceRt {
                first_flow,
                flows: s.flows,
                next_flow: 0,
                sizes,
                next_size,
                rng,
                pacer: Pacer::new(&s.kind, s.start),
                end,
                acc: SourceAcc::default(),
                is_tcp,
            });
        }
        st
    }

    #[inline]
    fn schedule(&mut self, at: u64, target: u32) {
        self.pending.push(event(at, target));
    }

    /// Build flow `flow`'s frame of `size` bytes and offer it to the shaper.
    #[inline]
    fn send<C: Core>(&mut self, core: &mut C, flow: u32, size: u32, seq: u64, now: u64) {
        let f = &mut self.flows[flow as usize];
        f.tmpl.set_size(size);
        let addr = (u64::from(flow) << SEQ_BITS) | (seq & SEQ_MASK);
        let bytes = self.buf.frame(flow, &f.tmpl);
        let class = core.enqueue(Frame { addr, len: size }, bytes, now);
        self.emitted += 1;
        let charged = self.charge.wire_len(size);
        let src = &mut self.sources[f.source as usize].acc;
        src.offered.add(u64::from(size));
        if self.in_win {
            src.offered_win += u64::from(size);
        }
        match class {
            Some(c) => {
                if f.class != c {
                    f.class = c;
                    f.pair = pair_of(&mut self.pairs, f.source, c, self.sigfig);
                }
                let mut c = c;
                while c != NONE {
                    let acc = &mut self.classes[c as usize];
                    acc.offered.add(u64::from(size));
                    if self.in_win {
                        acc.offered_win += charged;
                    }
                    c = acc.parent;
                }
            }
            None => src.unclassified += 1,
        }
        self.drain_drops(core, now);
    }

    #[inline]
    fn drain_drops<C: Core>(&mut self, core: &mut C, now: u64) {
        for d in core.take_drops() {
            self.on_drop(d, now);
        }
    }

    fn on_drop(&mut self, d: Dropped, now: u64) {
        let flow = (d.packet.addr >> SEQ_BITS) as usize;
        let Some(f) = self.flows.get(flow) else {
            // Not one of ours: cannot happen, but never index out of range.
            return;
        };
        let r = d.reason.index();
        let len = u64::from(d.packet.len);
        self.dropped[r] += 1;
        let src = &mut self.sources[f.source as usize].acc;
        src.drops[r] += 1;
        src.dropped.add(len);
        let mut c = f.class;
        while c != NONE {
            let acc = &mut self.classes[c as usize];
            acc.drops[r] += 1;
            acc.dropped.add(len);
            c = acc.parent;
        }
        if f.conn != NONE {
            let conn = f.conn;
            let at = now.saturating_add(self.conns[conn as usize].rtt);
            self.feedback(conn, at, d.packet.addr & SEQ_MASK, FbKind::Loss);
        }
    }

    #[inline]
    fn feedback(&mut self, conn: u32, at: u64, seq: u64, kind: FbKind) {
        let c = &mut self.conns[conn as usize];
        c.feedback.push_back(Feedback { at, seq, kind });
        if !c.has_event {
            c.has_event = true;
            self.schedule(at, CONN_BIT | conn);
        }
    }

    #[inline]
    fn on_sent(&mut self, p: &Packet, now: u64) {
        self.sent += 1;
        let flow = (p.addr >> SEQ_BITS) as usize;
        let Some(f) = self.flows.get(flow) else {
            return;
        };
        let charged = self.charge.wire_len(p.len);
        let sojourn = now.saturating_sub(p.enqueued_at);
        let ce = p.marked_ce();
        let leaf = f.class;
        let mut c = leaf;
        while c != NONE {
            let acc = &mut self.classes[c as usize];
            acc.sent.add(u64::from(p.len));
            acc.max_len = acc.max_len.max(p.len);
            acc.ceil.on_send(now, charged);
            if let Some(b) = acc.timeline.get_mut(self.bucket) {
                *b += charged;
            }
            if self.in_win {
                acc.sent_win += charged;
            }
            acc.marks += u64::from(ce);
            c = acc.parent;
        }
        if self.in_win {
            if let Some(pair) = self.pairs.list.get_mut(f.pair as usize) {
                pair.hist.saturating_record(sojourn);
            }
        }
        let header = f.tmpl.header_len();
        let conn = f.conn;
        let src = &mut self.sources[f.source as usize].acc;
        src.sent.add(u64::from(p.len));
        src.marks += u64::from(ce);
        if self.in_win {
            src.sent_win += u64::from(p.len);
            src.payload_win += u64::from(p.len.saturating_sub(header));
        }
        if conn != NONE {
            let at = now.saturating_add(self.conns[conn as usize].rtt);
            let kind = if ce { FbKind::AckCe } else { FbKind::Ack };
            self.feedback(conn, at, p.addr & SEQ_MASK, kind);
        }
    }

    /// Source `s` emits its next packet at `now`; returns when it emits again.
    #[inline]
    fn emit<C: Core>(&mut self, core: &mut C, s: u32, now: u64) -> Option<u64> {
        let src = &mut self.sources[s as usize];
        let flow = src.first_flow + src.next_flow;
        src.next_flow += 1;
        if src.next_flow == src.flows {
            src.next_flow = 0;
        }
        let size = src.next_size;
        let f = &mut self.flows[flow as usize];
        let seq = f.seq;
        f.seq += 1;
        self.send(core, flow, size, seq, now);
        let src = &mut self.sources[s as usize];
        src.next_size = src.sizes.pick(&mut src.rng);
        let t = src.pacer.advance(size, &mut src.rng).max(now);
        (t < src.end).then_some(t)
    }

    /// Connection `c`'s feedback falls due (or it starts): react, then send
    /// what the window allows.
    fn wake_conn<C: Core>(&mut self, core: &mut C, c: u32, now: u64) {
        let conn = &mut self.conns[c as usize];
        conn.has_event = false;
        while let Some(fb) = conn.feedback.front().copied() {
            if fb.at > now {
                break;
            }
            conn.feedback.pop_front();
            match fb.kind {
                FbKind::Ack => conn.on_ack(fb.seq, false),
                FbKind::AckCe => conn.on_ack(fb.seq, true),
                FbKind::Loss => conn.on_loss(fb.seq),
            }
        }
        loop {
            let conn = &mut self.conns[c as usize];
            if now >= conn.end || conn.inflight >= conn.cwnd {
                break;
            }
            let seq = conn.next_seq;
            conn.next_seq += 1;
            conn.inflight += 1;
            let (flow, s) = (conn.flow, conn.source);
            let src = &mut self.sources[s as usize];
            let size = src.sizes.pick(&mut src.rng);
            self.send(core, flow, size, seq, now);
        }
        let conn = &mut self.conns[c as usize];
        if !conn.has_event {
            if let Some(at) = conn.feedback.front().map(|f| f.at) {
                conn.has_event = true;
                self.schedule(at, CONN_BIT | c);
            }
        }
    }

    #[inline]
    fn set_now(&mut self, now: u64) {
        self.in_win = now >= self.p.warmup;
        if self.p.bucket_ns > 0 && now >= self.bucket_end {
            let b = now / self.p.bucket_ns;
            self.bucket = b as usize;
            self.bucket_end = (b + 1).saturating_mul(self.p.bucket_ns);
        }
    }
}

/// Run `traffic` through `core` (built from `spec`) and report.
pub(crate) fn simulate<C: Core>(
    core: &mut C,
    tree: &str,
    spec: &ShaperSpec,
    labels: &[String],
    traffic: &Traffic,
    p: RunParams,
) -> Result<Report, SimError> {
    let mut st = State::new(spec, traffic, p);
    let p = st.p;
    let mut heap: BinaryHeap<Event> = st.pending.drain(..).collect();
    let mut now = 0u64;
    loop {
        let next_event = heap.peek().map(event_at);
        let deadline = core.next_deadline().map(|d| {
            // The last dequeue at `now` said "not yet": a deadline that is
            // not in the future would spin forever. Count it, step 1 ns.
            if d <= now && st.engine.wakeups > 0 {
                st.engine.stalls += 1;
                now + 1
            } else {
                d
            }
        });
        let t = match (next_event, deadline) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => break,
        };
        if t >= p.duration {
            break;
        }
        now = now.max(t);
        st.set_now(now);
        st.engine.wakeups += 1;
        while let Some(&ev) = heap.peek() {
            if event_at(&ev) > now {
                break;
            }
            st.engine.events += 1;
            let target = event_target(&ev);
            if target & CONN_BIT != 0 {
                heap.pop();
                st.wake_conn(core, target & !CONN_BIT, now);
            } else {
                let next = st.emit(core, target, now);
                // Nothing entered the heap meanwhile (new events wait in
                // `pending`): the top is still this source's event, so
                // re-key it in place — one sift instead of a pop and a push.
                if let Some(mut top) = heap.peek_mut() {
                    match next {
                        Some(t) => *top = event(t, target),
                        None => {
                            PeekMut::pop(top);
                        }
                    }
                }
            }
            if !st.pending.is_empty() {
                heap.extend(st.pending.drain(..));
            }
        }
        let mut any = false;
        while let Some(pkt) = core.dequeue(now) {
            any = true;
            st.on_sent(&pkt, now);
        }
        st.drain_drops(core, now);
        if !st.pending.is_empty() {
            heap.extend(st.pending.drain(..));
        }
        if !any {
            st.engine.idle_wakeups += 1;
        }
    }
    st.drain_drops(core, now);
    finish(core, st, tree, spec, labels, traffic)
}

fn sojourn(h: &Option<Histogram<u64>>) -> Option<Sojourn> {
    let h = h.as_ref()?;
    if h.is_empty() {
        return None;
    }
    Some(Sojourn {
        samples: h.len(),
        p50_ns: h.value_at_quantile(0.5),
        p99_ns: h.value_at_quantile(0.99),
        max_ns: h.max(),
        mean_ns: h.mean() as u64,
    })
}

fn drops_map(drops: &[u64; N_REASONS]) -> std::collections::BTreeMap<String, u64> {
    DropReason::ALL
        .iter()
        .filter(|r| drops[r.index()] > 0)
        .map(|r| (r.name().to_string(), drops[r.index()]))
        .collect()
}

fn bps(bytes: u64, ns: u64) -> u64 {
    if ns == 0 {
        return 0;
    }
    (u128::from(bytes) * 8 * 1_000_000_000 / u128::from(ns)) as u64
}

fn finish<C: Core>(
    core: &mut C,
    mut st: State,
    tree: &str,
    spec: &ShaperSpec,
    labels: &[String],
    traffic: &Traffic,
) -> Result<Report, SimError> {
    let p = st.p;
    let window = p.duration - p.warmup;
    let n = st.classes.len();
    // A class's sojourn merges its (source, leaf) pairs, then its subtree's;
    // a source's merges its pairs. Same bounds everywhere: `add` cannot fail.
    let mut class_hist: Vec<Option<Histogram<u64>>> = vec![None; n];
    let mut source_hist: Vec<Option<Histogram<u64>>> = vec![None; st.sources.len()];
    let merge = |into: &mut Option<Histogram<u64>>, h: &Histogram<u64>| match into {
        Some(x) => {
            let _ = x.add(h);
        }
        None => *into = Some(h.clone()),
    };
    for pair in &st.pairs.list {
        merge(&mut class_hist[pair.class as usize], &pair.hist);
        merge(&mut source_hist[pair.source as usize], &pair.hist);
    }
    for i in (0..n).rev() {
        let parent = st.classes[i].parent;
        if parent == NONE {
            continue;
        }
        if let Some(h) = class_hist[i].clone() {
            merge(&mut class_hist[parent as usize], &h);
        }
    }
    let label = |i: usize| labels.get(i).cloned().unwrap_or_else(|| format!("#{i}"));
    let class_accs = std::mem::take(&mut st.classes);
    let classes = class_accs
        .into_iter()
        .enumerate()
        .map(|(i, acc)| {
            let cs = &spec.htb.classes[i];
            ClassReport {
                index: i as u32,
                label: label(i),
                parent: cs.parent,
                leaf: cs.qdisc.is_some(),
                qdisc: cs.qdisc.map(|q| q.kind().to_string()),
                prio: cs.prio,
                rate_bps: cs.rate.saturating_mul(8),
                ceil_bps: cs.ceil.saturating_mul(8),
                burst: cs.burst,
                cburst: cs.cburst,
                offered: acc.offered.report(),
                sent: acc.sent.report(),
                dropped: acc.dropped.report(),
                offered_bps: bps(acc.offered_win, window),
                achieved_bps: bps(acc.sent_win, window),
                drops: drops_map(&acc.drops),
                ce_marks: acc.marks,
                sojourn: sojourn(&class_hist[i]),
                max_packet: acc.max_len,
                max_burst_at_ceil: acc.ceil.bucket_bytes(),
                htb: core.class_stats(i as u32).map(|s| HtbClassReport {
                    bytes: s.bytes,
                    packets: s.packets,
                    drops: s.drops,
                    overlimits: s.overlimits,
                    lends: s.lends,
                    borrows: s.borrows,
                    giants: s.giants,
                    backlog_packets: s.backlog.packets,
                }),
                timeline: Timeline {
                    bucket_ns: p.bucket_ns,
                    bytes: acc.timeline,
                },
            }
        })
        .collect();
    let mut sources = Vec::with_capacity(st.sources.len());
    for (si, (rt, s)) in st.sources.iter().zip(&traffic.sources).enumerate() {
        let acc = &rt.acc;
        let mut class_ids: Vec<u32> = st.flows
            [rt.first_flow as usize..(rt.first_flow + rt.flows) as usize]
            .iter()
            .filter(|f| f.class != NONE)
            .map(|f| f.class)
            .collect();
        class_ids.sort_unstable();
        class_ids.dedup();
        let tcp = rt.is_tcp.then(|| {
            let conns = st.conns.iter().filter(|c| c.source == si as u32);
            let mut r = TcpReport::default();
            for c in conns {
                r.connections += 1;
                r.window_reductions += c.reductions;
                r.losses += c.losses;
                r.ce_echoes += c.ce_echoes;
                r.final_cwnd_sum += u64::from(c.cwnd);
            }
            r
        });
        sources.push(SourceReport {
            name: s.name.clone(),
            kind: match s.kind {
                SourceKind::Cbr { .. } => "cbr",
                SourceKind::OnOff { .. } => "onoff",
                SourceKind::Poisson { .. } => "poisson",
                SourceKind::Tcp(_) => "tcp",
            }
            .to_string(),
            flows: s.flows,
            classes: class_ids.iter().map(|&c| label(c as usize)).collect(),
            offered: acc.offered.report(),
            sent: acc.sent.report(),
            dropped: acc.dropped.report(),
            offered_bps: bps(acc.offered_win, window),
            achieved_bps: bps(acc.sent_win, window),
            goodput_bps: rt.is_tcp.then(|| bps(acc.payload_win, window)),
            drops: drops_map(&acc.drops),
            ce_marks: acc.marks,
            unclassified: acc.unclassified,
            sojourn: sojourn(&source_hist[si]),
            tcp,
        });
    }
    let counters = core.counters();
    let queued = core.queued();
    let dropped_total: u64 = counters.dropped.iter().sum();
    let frames = FrameReport {
        received: counters.received,
        sent: counters.sent,
        dropped: drops_map(&counters.dropped),
        dropped_total,
        queued,
        balanced: counters.received == counters.sent + dropped_total + queued
            && st.emitted == counters.received
            && st.sent == counters.sent
            && st.dropped == counters.dropped,
    };
    if !frames.balanced {
        return Err(SimError::Accounting {
            received: counters.received,
            sent: counters.sent,
            dropped: dropped_total,
            queued,
            offered: st.emitted,
            seen_sent: st.sent,
            seen_dropped: st.dropped.iter().sum(),
        });
    }
    Ok(Report {
        tree: tree.to_string(),
        seed: p.seed,
        duration_ns: p.duration,
        warmup_ns: p.warmup,
        timeline_bucket_ns: p.bucket_ns,
        classes,
        sources,
        frames,
        engine: st.engine,
    })
}

#[cfg(test)]
mod tests;
