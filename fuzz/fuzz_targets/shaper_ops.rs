//! Operation sequences through the whole pipeline (parse → classify → HTB →
//! leaf qdiscs of every kind): arbitrary frames, dequeues, time steps and
//! class changes. After every operation the frame accounting must balance,
//! and every handle must come back at most once.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use std::collections::HashSet;
use weir_dataplane::htb::ClassChange;
use weir_dataplane::packet::Frame;
use weir_dataplane::shaper::Shaper;

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

#[derive(Arbitrary, Debug)]
enum Op {
    Frame(Vec<u8>),
    Dequeue,
    Advance(u32),
    Change { class: u8, rate_kbit: u32, extra_kbit: u32 },
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
            Op::Frame(bytes) => {
                addr += 1;
                let len = bytes.len().clamp(1, 9000) as u32;
                shaper.enqueue(Frame { addr, len }, &bytes, now);
                inside.insert(addr);
            }
            Op::Dequeue => {
                if let Some(p) = shaper.dequeue(now) {
                    assert!(inside.remove(&p.addr), "sent a frame twice");
                }
            }
            Op::Advance(dt) => now += u64::from(dt),
            Op::Change { class, rate_kbit, extra_kbit } => {
                let class = u32::from(class) % shaper.htb().class_count();
                let rate = u64::from(rate_kbit.max(1)) * 125;
                let change = ClassChange {
                    rate: Some(rate),
                    ceil: Some(rate + u64::from(extra_kbit) * 125),
                    ..ClassChange::default()
                };
                shaper.htb_mut().change_class(class, &change, now).expect("valid change");
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
