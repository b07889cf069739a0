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

mod account;
mod finish;
mod source;
mod tcp;
#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::binary_heap::PeekMut;
use std::collections::{BinaryHeap, VecDeque};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use weir_dataplane::app::Apps;
use weir_dataplane::htb::ClassStats;
use weir_dataplane::packet::{DropReason, Dropped, Frame, Packet};
use weir_dataplane::rate::RateCfg;
use weir_dataplane::shaper::{FrameCounters, Shaper, ShaperSpec};

use super::report::{EngineReport, Report};
use super::synth::{FrameBuf, FrameTemplate};
use super::traffic::{SourceKind, Traffic};
use super::SimError;
use account::{pair_of, ClassAcc, Conformance, Pairs, SourceAcc, Vol};
use source::{seed_for, EmissionClock, FlowRt, SizePicker, SourceRt};
use tcp::{Conn, FbKind, Feedback};

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
    /// The tree's apps engine, when it has apps.
    fn apps(&self) -> Option<&Apps> {
        None
    }
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
    fn apps(&self) -> Option<&Apps> {
        Shaper::apps(self)
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
            let next_size = sizes.pick(&mut rng, 0);
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
                    payload_sent: 0,
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
                clock: EmissionClock::new(&s.kind, s.start),
                end,
                acc: SourceAcc::default(),
                is_tcp,
                payload: s.payload.as_ref().map_or(Vec::new(), |p| p.bytes.clone()),
                payload_stream: s.payload.as_ref().is_some_and(|p| p.kind.is_stream()),
            });
        }
        st
    }

    #[inline]
    fn schedule(&mut self, at: u64, target: u32) {
        self.pending.push(event(at, target));
    }

    /// Build flow `flow`'s frame of `size` bytes and offer it to the shaper;
    /// returns the frame's size, which a QUIC Initial longer than `size`
    /// grows.
    #[inline]
    fn send<C: Core>(&mut self, core: &mut C, flow: u32, size: u32, seq: u64, now: u64) -> u32 {
        let f = &mut self.flows[flow as usize];
        let payload = &self.sources[f.source as usize].payload;
        let mut size = size;
        let mut chunk: &[u8] = &[];
        if let Some(rest) = payload
            .get(f.payload_sent as usize..)
            .filter(|r| !r.is_empty())
        {
            let header = f.tmpl.header_len();
            if self.sources[f.source as usize].payload_stream {
                // A TCP sender cuts its stream at the segment size: this
                // frame carries what fits after its headers (the sizes were
                // checked to leave room).
                let room = size.saturating_sub(header) as usize;
                chunk = &rest[..room.min(rest.len())];
            } else {
                // A datagram arrives whole: the frame grows to hold it.
                chunk = rest;
                size = size.max(header + rest.len() as u32);
            }
            f.payload_sent += chunk.len() as u32;
        }
        f.tmpl.set_size(size);
        let addr = (u64::from(flow) << SEQ_BITS) | (seq & SEQ_MASK);
        let bytes = self.buf.frame_with(flow, &f.tmpl, chunk);
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
        size
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
        let f = &mut self.flows[flow as usize];
        let seq = f.seq;
        f.seq += 1;
        let size = match &src.sizes {
            SizePicker::Seq(_) => src.sizes.pick(&mut src.rng, seq),
            _ => src.next_size,
        };
        let size = self.send(core, flow, size, seq, now);
        let src = &mut self.sources[s as usize];
        src.next_size = src.sizes.pick(&mut src.rng, 0);
        let t = src.clock.advance(size, &mut src.rng).max(now);
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
            let size = src.sizes.pick(&mut src.rng, seq);
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
    finish::finish(core, st, tree, spec, labels, traffic)
}
