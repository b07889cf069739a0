//! The engine against a model shaper: one FIFO draining at a fixed rate,
//! optionally CE-marking ECT packets whose sojourn exceeds a threshold. This
//! checks sources, the TCP model and the accounting without the real HTB.

use super::*;
use crate::traffic::Traffic;
use weir_dataplane::htb::{ClassSpec, HtbSpec};
use weir_dataplane::packet::flags;
use weir_dataplane::pool::{PacketList, PacketPool};
use weir_dataplane::qdisc::{FifoLimit, QdiscParams};
use weir_dataplane::shaper::MalformedPolicy;

struct Link {
    rate: RateCfg,
    limit: u32,
    pool: PacketPool,
    queue: PacketList,
    free_at: u64,
    mark_above: Option<u64>,
    drops: Vec<Dropped>,
    counters: FrameCounters,
}

impl Link {
    fn new(bits_per_sec: u64, limit: u32, mark_above: Option<u64>) -> Link {
        Link {
            rate: RateCfg::new(bits_per_sec / 8, 0, 0),
            limit,
            pool: PacketPool::new(limit),
            queue: PacketList::new(),
            free_at: 0,
            mark_above,
            drops: Vec::new(),
            counters: FrameCounters::default(),
        }
    }
}

impl Core for Link {
    fn enqueue(&mut self, frame: Frame, bytes: &[u8], now: u64) -> Option<u32> {
        self.counters.received += 1;
        let mut p = Packet::new(frame, 0);
        p.enqueued_at = now;
        // IPv4 without VLAN: TOS at byte 15.
        if bytes[12..14] == [0x08, 0x00] && bytes[15] & 3 != 0 {
            p.flags |= flags::ECT;
        }
        if self.queue.len() >= self.limit {
            self.counters.dropped[DropReason::QueueLimit.index()] += 1;
            self.drops.push(Dropped {
                packet: p,
                reason: DropReason::QueueLimit,
            });
        } else {
            self.queue.push_back(&mut self.pool, p).unwrap();
        }
        Some(1)
    }

    fn dequeue(&mut self, now: u64) -> Option<Packet> {
        if self.queue.is_empty() || now < self.free_at {
            return None;
        }
        let mut p = self.queue.pop_front(&mut self.pool)?;
        self.free_at = self.free_at.max(now) + self.rate.time_ns(p.len);
        if let Some(th) = self.mark_above {
            if now - p.enqueued_at > th {
                p.set_ce();
            }
        }
        self.counters.sent += 1;
        Some(p)
    }

    fn next_deadline(&self) -> Option<u64> {
        (!self.queue.is_empty()).then_some(self.free_at)
    }

    fn take_drops(&mut self) -> std::vec::Drain<'_, Dropped> {
        self.drops.drain(..)
    }

    fn counters(&self) -> FrameCounters {
        self.counters
    }

    fn queued(&self) -> u64 {
        u64::from(self.queue.len())
    }

    fn class_stats(&self, _class: u32) -> Option<ClassStats> {
        None
    }
}

/// Root 0 and leaf 1, both at `bits_per_sec` (only labels and the ceil used
/// for the conformance check matter to the engine).
fn spec(bits_per_sec: u64) -> ShaperSpec {
    let class = |parent, qdisc| ClassSpec {
        id: 0,
        parent,
        rate: bits_per_sec / 8,
        ceil: bits_per_sec / 8,
        burst: 1600,
        cburst: 1600,
        prio: 0,
        quantum: 1514,
        qdisc,
    };
    ShaperSpec {
        htb: HtbSpec {
            classes: vec![
                class(None, None),
                class(Some(0), Some(QdiscParams::Fifo(FifoLimit::Packets(1000)))),
            ],
            overhead: 0,
            mpu: 0,
            pool_capacity: 10_000,
            seed: 1,
            spare_leaves: 0,
        },
        filters: Vec::new(),
        default_class: 1,
        malformed: MalformedPolicy::Default,
        apps: weir_dataplane::app::AppsSpec::empty(),
        class_remark: Vec::new(),
        wash: false,
    }
}

fn run(link: &mut Link, bits_per_sec: u64, traffic: &str) -> Report {
    let t = Traffic::parse_str(traffic, "test.toml").unwrap();
    let p = RunParams {
        duration: t.duration,
        warmup: t.warmup,
        seed: t.seed,
        bucket_ns: 1_000_000,
    };
    let labels = vec!["1:1".to_string(), "1:10".to_string()];
    simulate(link, "test", &spec(bits_per_sec), &labels, &t, p).unwrap()
}

fn within(got: u64, want: u64, tolerance: f64) -> bool {
    (got as f64 - want as f64).abs() <= want as f64 * tolerance
}

#[test]
fn cbr_below_the_link_passes_untouched() {
    let mut link = Link::new(100_000_000, 1000, None);
    let r = run(
        &mut link,
        100_000_000,
        "duration = \"1s\"\n[[source]]\nrate = \"10mbit\"\nsize = 1000\n",
    );
    let s = &r.sources[0];
    assert_eq!(s.offered.packets, 1250);
    assert_eq!(s.sent.packets, 1250);
    assert_eq!(s.achieved_bps, 10_000_000);
    assert_eq!(s.classes, vec!["1:10".to_string()]);
    let leaf = &r.classes[1];
    assert_eq!(leaf.achieved_bps, 10_000_000);
    assert_eq!(leaf.sojourn.unwrap().max_ns, 0);
    assert_eq!(r.classes[0].sent, leaf.sent);
    assert!(r.frames.balanced);
    assert_eq!(leaf.timeline.bytes.iter().sum::<u64>(), 1_250_000);
    assert_eq!(leaf.timeline.max_window_bytes(1_000_000).0, 2000);
}

#[test]
fn cbr_above_the_link_gets_the_link_rate() {
    let mut link = Link::new(10_000_000, 100, None);
    let r = run(
        &mut link,
        10_000_000,
        "duration = \"2s\"\n[[source]]\nrate = \"20mbit\"\nsize = 1500\n",
    );
    let leaf = &r.classes[1];
    assert!(
        within(leaf.achieved_bps, 10_000_000, 0.002),
        "{}",
        leaf.achieved_bps
    );
    assert!(
        within(leaf.offered_bps, 20_000_000, 0.002),
        "{}",
        leaf.offered_bps
    );
    assert!(leaf.drops["queue_limit"] > 1000);
    // A FIFO at the link rate never bursts beyond one packet.
    assert!(leaf.max_burst_at_ceil <= 1500, "{}", leaf.max_burst_at_ceil);
    // 100 packets of 1500 bytes at 10 Mbit/s: 120 ms of queue.
    let soj = leaf.sojourn.unwrap();
    assert!(within(soj.p50_ns, 120_000_000, 0.02), "{soj:?}");
    assert_eq!(
        r.frames.received,
        r.frames.sent + r.frames.dropped_total + r.frames.queued
    );
}

#[test]
fn fast_small_packets_keep_the_exact_rate() {
    // 64-byte packets at 1 Gbit/s are 512 ns apart; at 3 Gbit/s 170.67 ns:
    // the fixed-point emission clock must not drift.
    let mut link = Link::new(100_000_000_000, 1000, None);
    let r = run(
        &mut link,
        100_000_000_000,
        "duration = \"10ms\"\n[[source]]\nrate = \"3gbit\"\nsize = 64\n",
    );
    let s = &r.sources[0];
    assert_eq!(s.offered.bytes, 3_750_000 - 3_750_000 % 64 + 64);
    assert!(
        within(s.achieved_bps, 3_000_000_000, 0.0001),
        "{}",
        s.achieved_bps
    );
}

#[test]
fn interval_onoff_poisson_and_imix_pace_as_asked() {
    let mut link = Link::new(1_000_000_000, 10_000, None);
    let r = run(
        &mut link,
        1_000_000_000,
        r#"
duration = "10s"
[[source]]
name = "sparse"
interval = "10ms"
size = 100
[[source]]
name = "onoff"
kind = "onoff"
rate = "10mbit"
on = "1s"
off = "3s"
size = 1000
[[source]]
name = "poisson"
kind = "poisson"
rate = "10mbit"
size = 1000
[[source]]
name = "imix"
rate = "10mbit"
sizes = [[64, 7], [570, 4], [1518, 1]]
start = "1s"
stop = "6s"
"#,
    );
    let by = |n: &str| r.sources.iter().find(|s| s.name == n).unwrap();
    assert_eq!(by("sparse").sent.packets, 1000);
    // On during [0,1) [4,5) [8,9): 3 s of 10 Mbit/s.
    assert_eq!(by("onoff").offered.bytes, 3 * 1_250_000);
    let p = by("poisson");
    assert!(within(p.offered_bps, 10_000_000, 0.02), "{}", p.offered_bps);
    let m = by("imix");
    // 5 s at 10 Mbit/s; mean IMIX size (7*64+4*570+1518)/12 = 353.8.
    assert!(
        within(m.offered.bytes, 6_250_000, 0.001),
        "{}",
        m.offered.bytes
    );
    let mean = m.offered.bytes / m.offered.packets;
    assert!((340..=368).contains(&mean), "{mean}");
    assert!(r.frames.balanced);
}

#[test]
fn tcp_fills_the_bottleneck_and_backs_off_on_loss() {
    let mut link = Link::new(10_000_000, 100, None);
    let r = run(
        &mut link,
        10_000_000,
        r#"
duration = "10s"
warmup = "2s"
[[source]]
name = "bulk"
kind = "tcp"
rtt = "20ms"
count = 4
"#,
    );
    let s = &r.sources[0];
    let tcp = s.tcp.unwrap();
    assert_eq!(tcp.connections, 4);
    assert!(s.achieved_bps > 9_500_000, "{}", s.achieved_bps);
    assert!(tcp.losses > 0 && tcp.window_reductions > 0, "{tcp:?}");
    assert_eq!(tcp.ce_echoes, 0);
    // Goodput is payload: 1500-byte frames carry 1446 bytes of it.
    let goodput = s.goodput_bps.unwrap();
    assert!(
        within(goodput, s.achieved_bps * 1446 / 1500, 0.001),
        "{goodput}"
    );
    // Reno keeps a tail-drop FIFO mostly full: ~120 ms when full.
    let soj = s.sojourn.unwrap();
    assert!(soj.p50_ns > 40_000_000, "{soj:?}");
    assert!(r.frames.balanced);
}

#[test]
fn tcp_with_ecn_reacts_to_marks_without_loss() {
    let mut link = Link::new(10_000_000, 1000, Some(5_000_000));
    let r = run(
        &mut link,
        10_000_000,
        r#"
duration = "10s"
warmup = "2s"
[[source]]
kind = "tcp"
rtt = "20ms"
count = 4
ecn = "ect0"
"#,
    );
    let s = &r.sources[0];
    let tcp = s.tcp.unwrap();
    assert_eq!(s.dropped.packets, 0);
    // Marks of the last RTT are not echoed before the run ends.
    assert!(
        tcp.ce_echoes > 0 && tcp.ce_echoes <= s.ce_marks,
        "{tcp:?} {}",
        s.ce_marks
    );
    assert!(tcp.window_reductions > 10, "{tcp:?}");
    assert!(s.achieved_bps > 9_000_000, "{}", s.achieved_bps);
    // Marking above 5 ms keeps the queue near it.
    let soj = s.sojourn.unwrap();
    assert!(soj.p50_ns < 15_000_000, "{soj:?}");
}

#[test]
fn tcp_without_ecn_ignores_nothing_and_gets_no_marks() {
    let mut link = Link::new(10_000_000, 1000, Some(5_000_000));
    let r = run(
        &mut link,
        10_000_000,
        "duration = \"3s\"\n[[source]]\nkind = \"tcp\"\nrtt = \"20ms\"\n",
    );
    assert_eq!(r.sources[0].ce_marks, 0);
}

#[test]
fn tcp_stops_sending_at_stop() {
    let mut link = Link::new(10_000_000, 1000, None);
    let r = run(
        &mut link,
        10_000_000,
        "duration = \"3s\"\n[[source]]\nkind = \"tcp\"\nrtt = \"10ms\"\nstop = \"1s\"\n",
    );
    let s = &r.sources[0];
    // Whatever was queued at stop drains; nothing is left at the end.
    assert_eq!(r.frames.queued, 0);
    assert_eq!(s.sent.packets + s.dropped.packets, s.offered.packets);
    // The FIFO holds at most 1000 packets (1.2 s at 10 Mbit/s) at stop.
    let tl = &r.classes[1].timeline;
    assert_eq!(tl.bytes[2250..].iter().sum::<u64>(), 0);
    assert!(tl.bytes[..1000].iter().sum::<u64>() > 1_000_000);
}

#[test]
fn same_seed_same_report_other_seed_other_report() {
    let text = r#"
duration = "2s"
seed = 5
[[source]]
kind = "poisson"
rate = "12mbit"
sizes = [[64, 7], [570, 4], [1518, 1]]
flows = 3
[[source]]
kind = "tcp"
rtt = "15ms"
count = 2
ecn = "ect0"
"#;
    let a = run(
        &mut Link::new(10_000_000, 50, Some(5_000_000)),
        10_000_000,
        text,
    );
    let b = run(
        &mut Link::new(10_000_000, 50, Some(5_000_000)),
        10_000_000,
        text,
    );
    assert_eq!(a, b);
    let other = text.replace("seed = 5", "seed = 6");
    let c = run(
        &mut Link::new(10_000_000, 50, Some(5_000_000)),
        10_000_000,
        &other,
    );
    assert_ne!(a.sources, c.sources);
}

#[test]
fn conformance_measures_the_burst() {
    let mut c = Conformance::new(1000);
    // 3000 bytes at t=0, then 1000 bytes/s exactly.
    c.on_send(0, 3000);
    for i in 1..10u64 {
        c.on_send(i * 1_000_000_000, 1000);
    }
    assert_eq!(c.bucket_bytes(), 3000);
    // A second burst after a long idle period needs no bigger bucket...
    c.on_send(100_000_000_000, 3000);
    assert_eq!(c.bucket_bytes(), 3000);
    // ...but sending faster than the rate for a while does.
    for i in 0..5u64 {
        c.on_send(100_000_000_000 + i * 500_000_000, 1000);
    }
    assert_eq!(c.bucket_bytes(), 3000 + 5000 - 2000);
}

#[test]
#[cfg_attr(debug_assertions, ignore = "heavy: run in release by scripts/test.sh")]
fn ten_gbit_of_small_packets_for_ten_seconds() {
    // 195 M packets through the model link: the simulator's own per-packet
    // cost must stay small (the real shaper adds its own).
    let started = std::time::Instant::now();
    let mut link = Link::new(10_000_000_000, 1000, None);
    let r = run(
        &mut link,
        10_000_000_000,
        "duration = \"10s\"\n[[source]]\nrate = \"10gbit\"\nsize = 64\n",
    );
    let s = &r.sources[0];
    assert!(s.sent.packets > 195_000_000, "{}", s.sent.packets);
    assert!(
        within(s.achieved_bps, 10_000_000_000, 0.0001),
        "{}",
        s.achieved_bps
    );
    eprintln!("195 M packets in {:?}", started.elapsed());
}

/// The real shaper behind a tap that keeps the bytes of each flow's first
/// frames as the engine hands them over: the seam that shows what a
/// classifier in the shaper reads, without changing the shaper.
struct Tap {
    shaper: Shaper,
    /// (flow, seq, frame bytes) of every frame with seq < `keep`.
    seen: Vec<(u32, u64, Vec<u8>)>,
    keep: u64,
}

impl Core for Tap {
    fn enqueue(&mut self, frame: Frame, bytes: &[u8], now: u64) -> Option<u32> {
        let (flow, seq) = ((frame.addr >> SEQ_BITS) as u32, frame.addr & SEQ_MASK);
        assert_eq!(
            frame.len as usize,
            bytes.len(),
            "Frame::len is the bytes' length"
        );
        if seq < self.keep {
            self.seen.push((flow, seq, bytes.to_vec()));
        }
        self.shaper.enqueue(frame, bytes, now)
    }
    fn dequeue(&mut self, now: u64) -> Option<Packet> {
        self.shaper.dequeue(now)
    }
    fn next_deadline(&self) -> Option<u64> {
        self.shaper.next_deadline()
    }
    fn take_drops(&mut self) -> std::vec::Drain<'_, Dropped> {
        self.shaper.take_drops()
    }
    fn counters(&self) -> FrameCounters {
        self.shaper.counters()
    }
    fn queued(&self) -> u64 {
        Core::queued(&self.shaper)
    }
    fn class_stats(&self, class: u32) -> Option<ClassStats> {
        Core::class_stats(&self.shaper, class)
    }
}

/// Runs `traffic` through the real shaper (the two-class tree of `spec`,
/// 100 Mbit/s) and returns, per flow, its first `keep` frames in order.
fn tap(traffic: &str, keep: u64) -> (Report, Vec<Vec<Vec<u8>>>) {
    let t = Traffic::parse_str(traffic, "test.toml").unwrap();
    let spec = spec(100_000_000);
    let mut tap = Tap {
        shaper: Shaper::new(&spec, 0).unwrap(),
        seen: Vec::new(),
        keep,
    };
    let p = RunParams {
        duration: t.duration,
        warmup: 0,
        seed: t.seed,
        bucket_ns: 0,
    };
    let labels = vec!["1:1".to_string(), "1:10".to_string()];
    let r = simulate(&mut tap, "test", &spec, &labels, &t, p).unwrap();
    let flows = t.sources.iter().map(|s| s.flows as usize).sum();
    let mut per_flow = vec![Vec::new(); flows];
    for (flow, seq, bytes) in tap.seen {
        assert_eq!(seq as usize, per_flow[flow as usize].len(), "in order");
        per_flow[flow as usize].push(bytes);
    }
    (r, per_flow)
}

/// The L4 payload of an Ethernet/IPv4 or IPv6 TCP or UDP frame.
fn l4_payload(frame: &[u8]) -> &[u8] {
    use etherparse::{SlicedPacket, TransportSlice};
    let p = SlicedPacket::from_ethernet(frame).expect("a well-formed frame");
    match p.transport {
        Some(TransportSlice::Tcp(t)) => t.payload(),
        Some(TransportSlice::Udp(u)) => u.payload(),
        other => panic!("not TCP or UDP: {other:?}"),
    }
}

#[test]
fn tls_flows_start_with_a_client_hello_the_parser_reads() {
    use weir_dataplane::app::tls::{client_hello_sni, Hello};
    let (r, flows) = tap(
        "duration = \"200ms\"\n[[source]]\nkind = \"tcp\"\nrtt = \"10ms\"\ncount = 3\n\
         dport = 443\npayload = { kind = \"tls\", sni = \"video.test\" }\n",
        3,
    );
    assert!(r.frames.balanced);
    assert_eq!(flows.len(), 3);
    for frames in &flows {
        assert_eq!(frames.len(), 3);
        for f in frames {
            assert_eq!(f.len(), 1500, "frames keep their size");
        }
        let first = l4_payload(&frames[0]);
        assert_eq!(first.len(), 1500 - 54);
        assert_eq!(client_hello_sni(first), Hello::Sni("video.test"));
        let hello_len = 5 + usize::from(u16::from_be_bytes([first[3], first[4]]));
        assert!(first[hello_len..].iter().all(|&b| b == 0), "zeros after it");
        // Later segments carry no hello bytes.
        for f in &frames[1..] {
            assert!(l4_payload(f).iter().all(|&b| b == 0));
        }
    }
}

#[test]
fn a_hello_longer_than_a_segment_is_cut_over_segments() {
    use weir_dataplane::app::tls::{client_hello_sni, ClientHelloBuf, Hello};
    let (_, flows) = tap(
        "duration = \"100ms\"\n[[source]]\ninterval = \"1ms\"\nproto = \"tcp\"\nsize = 1000\n\
         flows = 2\npayload = { kind = \"tls\", sni = \"pq.test\", hello_size = 1800 }\n",
        3,
    );
    for frames in &flows {
        assert!(frames.iter().all(|f| f.len() == 1000));
        let (a, b, c) = (
            l4_payload(&frames[0]),
            l4_payload(&frames[1]),
            l4_payload(&frames[2]),
        );
        assert_eq!(client_hello_sni(a), Hello::NeedMore { total: Some(1805) });
        let mut buf = ClientHelloBuf::<2048>::new();
        assert_eq!(buf.push(a), Hello::NeedMore { total: Some(1800) });
        assert_eq!(buf.push(b), Hello::Sni("pq.test"));
        // 1805 record bytes over 946-byte segments: 946 + 859, then zeros.
        assert!(b[859..].iter().all(|&x| x == 0));
        assert!(c.iter().all(|&x| x == 0));
    }
}

#[test]
fn quic_flows_start_with_an_initial_and_the_frame_grows_to_hold_it() {
    use weir_dataplane::app::quic::{initial_sni, CryptoBuf};
    use weir_dataplane::app::tls::Hello;
    let (r, flows) = tap(
        "duration = \"100ms\"\n[[source]]\ninterval = \"10ms\"\nsize = 200\ndport = 443\n\
         payload = { kind = \"quic\", sni = \"video.test\" }\n",
        3,
    );
    let frames = &flows[0];
    assert_eq!(
        frames[0].len(),
        42 + 1200,
        "grown to hold the 1200-byte Initial"
    );
    let mut scratch = [0u8; 1500];
    let mut crypto = CryptoBuf::<4096>::new();
    assert_eq!(
        initial_sni(l4_payload(&frames[0]), &mut scratch, &mut crypto),
        Ok(Hello::Sni("video.test"))
    );
    for f in &frames[1..] {
        assert_eq!(f.len(), 200);
        assert!(l4_payload(f).iter().all(|&b| b == 0));
    }
    // The grown frame is what the source offered: 1242 + 9 × 200 bytes.
    assert_eq!(r.sources[0].offered.bytes, 1242 + 9 * 200);
}

#[test]
fn http_flows_start_with_a_request_the_parser_reads() {
    use weir_dataplane::app::http::{request_host, Request};
    let (_, flows) = tap(
        "duration = \"30ms\"\n[[source]]\ninterval = \"10ms\"\nproto = \"tcp\"\nsport = 80\n\
         size = 300\nsrc = \"2001:2::1\"\n\
         payload = { kind = \"http\", host = \"www.test\" }\n",
        2,
    );
    let frames = &flows[0];
    assert_eq!(frames[0].len(), 300);
    assert_eq!(
        request_host(l4_payload(&frames[0])),
        Request::Host("www.test")
    );
    assert!(l4_payload(&frames[1]).iter().all(|&b| b == 0));
}

#[test]
fn a_sequence_replays_sizes_in_order_per_flow() {
    let (_, flows) = tap(
        "duration = \"1s\"\n[[source]]\ninterval = \"10ms\"\nproto = \"tcp\"\nflows = 2\n\
         sequence = [128, 8192, 64, 4096]\nstop = \"80ms\"\n",
        10,
    );
    // Two flows take turns: each sends 4 packets in 80 ms, in order.
    for frames in &flows {
        let sizes: Vec<usize> = frames.iter().map(Vec::len).collect();
        assert_eq!(sizes, [128, 8192, 64, 4096]);
    }
}
