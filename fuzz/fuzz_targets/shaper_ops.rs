//! Operation sequences through the whole pipeline (parse → classify → HTB →
//! leaf qdiscs of every kind): arbitrary frames, well-formed IPv4 and IPv6
//! frames, dequeues, time steps and class changes. After every operation the frame accounting must balance,
//! and every handle must come back at most once.
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
            Op::Dequeue => {
                if let Some(p) = shaper.dequeue(now) {
                    assert!(inside.remove(&p.addr), "sent a frame twice");
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
        for d in shaper.take_drops() {
            assert!(inside.remove(&d.packet.addr), "dropped a frame twice");
        }
        let c = shaper.counters();
        assert!(c.balanced(), "{c:?}");
        assert_eq!(c.queued as usize, inside.len());
    }
});
