//! Operation sequences through the whole pipeline (parse → classify → apps →
//! HTB → leaf qdiscs of every kind): arbitrary frames, well-formed IPv4 and
//! IPv6 frames, TLS ClientHellos split over two segments, dequeues, time
//! steps and class changes, with a second shaper as the other direction
//! that the decisions about flows go to and come from. After every
//! operation the frame accounting must balance, every handle must come
//! back at most once, and a packet with an app is in its app's class. The
//! flow table is tiny (16 flows, 2 reassembly slots) so eviction and full
//! slots happen.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use std::collections::HashSet;
use weir_dataplane::htb::ClassChange;
use weir_dataplane::packet::Frame;
use weir_dataplane::shaper::Shaper;
use weir_testkit::frame::{self, Ipv4, Ipv6, IPPROTO_TCP, IPPROTO_UDP};

/// A tree with every leaf kind and filters on ports, DSCP and protocol.
const CONFIG: &str = r#"
[tree.t]
default = "1:40"
[[tree.t.class]]
id = "1:1"
rate = "100mbit"
[[tree.t.class]]
id = "1:10"
parent = "1:1"
rate = "10mbit"
ceil = "50mbit"
prio = 1
qdisc = { kind = "pfifo", limit = 8 }
[[tree.t.class]]
id = "1:20"
parent = "1:1"
rate = "20mbit"
ceil = "80mbit"
prio = 2
qdisc = { kind = "sfq", perturb = 1, limit = 16 }
[[tree.t.class]]
id = "1:30"
parent = "1:1"
rate = "20mbit"
ceil = "100mbit"
prio = 3
qdisc = { kind = "red", min = 3000, max = 9000, avpkt = 1000, burst = 5, limit = 20000, ecn = true }
[[tree.t.class]]
id = "1:40"
parent = "1:1"
rate = "5mbit"
ceil = "100mbit"
prio = 7
qdisc = { kind = "fq_codel", limit = 32, flows = 8 }
[[tree.t.filter]]
prio = 1
dscp = "EF"
flowid = "1:10"
[[tree.t.filter]]
prio = 2
ip_proto = "udp"
dport = "1000-2000"
flowid = "1:20"
[[tree.t.filter]]
prio = 3
ip_proto = "tcp"
flowid = "1:30"
[tree.t.apps]
flows = 16
inspect_slots = 2
inspect_packets = 4
bulk_window = "1ms"
[[tree.t.app]]
name = "video"
class = "1:20"
dscp = "AF41"
[[tree.t.app.match]]
prio = 1
ports = [443]
sni = ["*.video.test"]
[[tree.t.app]]
name = "voice"
class = "1:10"
dscp = "EF"
remark = "if-unmarked"
[[tree.t.app.match]]
prio = 2
protocol = "udp"
ports = ["5000-5100"]
[[tree.t.app.match]]
prio = 3
avg_size = "<200"
regular = true
min_packets = 3
[[tree.t.app]]
name = "bulk"
class = "1:40"
dscp = "CS1"
[[tree.t.app.match]]
prio = 4
bulk = { pps = 1000, hold = "2ms" }
"#;

/// The frame of [`Op::Ip`].
fn ip_frame(v6: bool, tos: u8, tcp: bool, sport: u16, dport: u16, payload: u16) -> Vec<u8> {
    let data = vec![0u8; usize::from(payload % 1500)];
    let (protocol, l4) = if tcp {
        (IPPROTO_TCP, [frame::tcp(sport, dport, 5), data].concat())
    } else {
        (IPPROTO_UDP, frame::udp(sport, dport, &data))
    };
    if v6 {
        let ip = Ipv6 {
            traffic_class: tos,
            next_header: protocol,
            ..Ipv6::default()
        };
        frame::ipv6_frame(&ip, &l4)
    } else {
        let ip = Ipv4 {
            tos,
            protocol,
            ..Ipv4::default()
        };
        frame::ipv4_frame(&ip, &l4)
    }
}

/// Offers `bytes` as frame number `addr + 1`.
fn offer(shaper: &mut Shaper, addr: &mut u64, inside: &mut HashSet<u64>, bytes: &[u8], now: u64) {
    *addr += 1;
    let len = bytes.len().clamp(1, 9000) as u32;
    shaper.enqueue(Frame { addr: *addr, len }, bytes, now);
    inside.insert(*addr);
}

#[derive(Arbitrary, Debug)]
enum Op {
    Frame(Vec<u8>),
    /// A well-formed frame: arbitrary bytes seldom parse as IP with
    /// consistent lengths, so without these the filters (DSCP, UDP ports,
    /// TCP) and the leaves behind them would see little traffic.
    Ip {
        v6: bool,
        tos: u8,
        tcp: bool,
        sport: u16,
        dport: u16,
        payload: u16,
    },
    /// A TLS ClientHello for `n.video.test` (or another name) from
    /// `sport` to 443, cut in two TCP segments at `cut`.
    Hello {
        sport: u16,
        video: bool,
        cut: u16,
    },
    /// A frame through the other direction's shaper.
    Peer(Vec<u8>),
    Dequeue,
    Advance(u32),
    Change {
        class: u8,
        rate_kbit: u32,
        extra_kbit: u32,
    },
}

fuzz_target!(|ops: Vec<Op>| {
    let loaded = weir_config::parse_str(CONFIG, "fuzz.toml").expect("fuzz config is valid");
    let tree = &loaded.config.trees[0];
    let mut shaper = Shaper::new(&tree.shaper_spec(3), 0).expect("builds");
    let mut peer = Shaper::new(&tree.shaper_spec(4), 0).expect("builds");
    let mut decisions = Vec::new();
    let mut peer_addr = 1u64 << 40;
    let mut peer_inside = HashSet::new();
    let mut now = 0u64;
    let mut addr = 0u64;
    let mut inside = HashSet::new();
    for op in ops {
        match op {
            Op::Frame(bytes) => offer(&mut shaper, &mut addr, &mut inside, &bytes, now),
            Op::Ip {
                v6,
                tos,
                tcp,
                sport,
                dport,
                payload,
            } => {
                let bytes = ip_frame(v6, tos, tcp, sport, dport, payload);
                offer(&mut shaper, &mut addr, &mut inside, &bytes, now);
            }
            Op::Hello { sport, video, cut } => {
                let mut hello = Vec::new();
                let name = if video { "a.video.test" } else { "example.org" };
                weir_dataplane::app::tls::client_hello(name, 0, &mut hello).expect("a valid name");
                let cut = usize::from(cut) % (hello.len() + 1);
                let mut seq = 1u32;
                for part in [&hello[..cut], &hello[cut..]] {
                    let mut tcp = frame::tcp(sport, 443, 5);
                    tcp[4..8].copy_from_slice(&seq.to_be_bytes());
                    tcp.extend_from_slice(part);
                    seq = seq.wrapping_add(part.len() as u32);
                    let ip = Ipv4 {
                        protocol: IPPROTO_TCP,
                        ..Ipv4::default()
                    };
                    let bytes = frame::ipv4_frame(&ip, &tcp);
                    offer(&mut shaper, &mut addr, &mut inside, &bytes, now);
                }
            }
            Op::Peer(bytes) => {
                offer(&mut peer, &mut peer_addr, &mut peer_inside, &bytes, now);
                for d in peer.take_drops() {
                    assert!(peer_inside.remove(&d.packet.addr), "peer dropped a frame twice");
                }
            }
            Op::Dequeue => {
                if let Some(p) = shaper.dequeue(now) {
                    assert!(inside.remove(&p.addr), "sent a frame twice");
                    if let Some(apps) = shaper.apps() {
                        if let Some(class) = apps.class_of(p.app) {
                            let leaf = shaper.htb().class_count();
                            assert!(class < leaf, "app class {class} out of the tree");
                        }
                    }
                }
            }
            Op::Advance(dt) => now += u64::from(dt),
            Op::Change {
                class,
                rate_kbit,
                extra_kbit,
            } => {
                let class = u32::from(class) % shaper.htb().class_count();
                let rate = u64::from(rate_kbit.max(1)) * 125;
                let change = ClassChange {
                    rate: Some(rate),
                    ceil: Some(rate + u64::from(extra_kbit) * 125),
                    ..ClassChange::default()
                };
                shaper
                    .htb_mut()
                    .change_class(class, &change, now)
                    .expect("valid change");
            }
        }
        // Decisions cross over, both ways, as the worker carries them.
        decisions.clear();
        shaper.take_decisions(&mut decisions);
        for &d in &decisions {
            peer.learn(d, now);
        }
        decisions.clear();
        peer.take_decisions(&mut decisions);
        for &d in &decisions {
            shaper.learn(d, now);
        }
        for d in shaper.take_drops() {
            assert!(inside.remove(&d.packet.addr), "dropped a frame twice");
        }
        let c = shaper.counters();
        assert!(c.balanced(), "{c:?}");
        assert_eq!(c.queued as usize, inside.len());
    }
});
