//! The traffic file's parsing and its errors, from TOML text.

use super::*;
use crate::synth::Proto;

#[test]
fn full_example_parses() {
    let t = Traffic::parse_str(
        r#"
duration = "5s"
warmup = "1s"
seed = 7
tree = "up"

[[source]]
name = "voice"
kind = "cbr"
rate = "10mbit"
size = 200
dscp = "EF"
src = "198.18.0.1"
dst = "198.18.0.2"
sport = 5000
dport = 80
flows = 4
start = "0s"
stop = "4s"

[[source]]
name = "imix"
kind = "onoff"
rate = "100mbit"
sizes = [[64, 7], [570, 4], [1518, 1]]
on = "1s"
off = "500ms"
tos = 0x28
ecn = "ect1"
vlan = 10

[[source]]
name = "bulk"
kind = "tcp"
rtt = "20ms"
count = 4
ecn = "ect0"

[[source]]
kind = "poisson"
interval = "10ms"
size = 100
proto = "icmp"
src = "2001:2::1"
"#,
        "t.toml",
    )
    .unwrap();
    assert_eq!(t.duration, 5_000_000_000);
    assert_eq!(t.warmup, 1_000_000_000);
    assert_eq!(t.seed, 7);
    assert_eq!(t.tree.as_deref(), Some("up"));
    assert_eq!(t.sources.len(), 4);
    let v = &t.sources[0];
    assert_eq!(
        v.kind,
        SourceKind::Cbr {
            pace: Pace::Rate(10_000_000)
        }
    );
    assert_eq!(v.header.tos, 46 << 2);
    assert_eq!(v.flows, 4);
    assert_eq!(v.stop, Some(4_000_000_000));
    let m = &t.sources[1];
    assert_eq!(m.sizes, Sizes::Mix(vec![(64, 7), (570, 4), (1518, 1)]));
    assert_eq!(m.header.tos, 0x29);
    assert_eq!(m.header.vlan, Some(10));
    assert!(matches!(
        m.kind,
        SourceKind::OnOff {
            on: 1_000_000_000,
            off: 500_000_000,
            ..
        }
    ));
    let b = &t.sources[2];
    assert_eq!(b.header.proto, Proto::Tcp);
    assert_eq!(b.header.tos, 2);
    assert_eq!(b.flows, 4);
    assert_eq!(
        b.kind,
        SourceKind::Tcp(TcpParams {
            rtt: 20_000_000,
            initial_cwnd: 10,
            max_cwnd: 10_000
        })
    );
    let p = &t.sources[3];
    assert_eq!(p.name, "source4");
    assert!(p.header.dst.is_ipv6());
    assert_eq!(
        p.kind,
        SourceKind::Poisson {
            pace: Pace::Interval(10_000_000)
        }
    );
}

#[test]
fn defaults() {
    let t = Traffic::parse_str("[[source]]\nrate = \"1mbit\"\n", "t").unwrap();
    assert_eq!(t.duration, 10_000_000_000);
    assert_eq!((t.seed, t.warmup), (1, 0));
    assert_eq!(t.sources[0].sizes, Sizes::Fixed(1500));
    assert_eq!(t.sources[0].header.proto, Proto::Udp);
}

fn error(text: &str) -> TrafficError {
    Traffic::parse_str(text, "t.toml").unwrap_err()
}

#[test]
fn errors_point_at_the_value() {
    let e = error("duration = \"10s\"\n[[source]]\nrate = \"10mbt\"\n");
    assert_eq!((e.line, e.col), (3, 8), "{e}");
    assert!(
        e.to_string()
            .starts_with("t.toml:3:8: source 'source1': rate:"),
        "{e}"
    );

    let e = error("duration = \"10\"\n");
    assert_eq!(e.line, 1);
    assert!(e.message.contains("needs a unit"), "{e}");

    let e = error("[[source]]\nrate = \"1mbit\"\nsize = 20\n");
    assert_eq!(e.line, 3);
    assert!(e.message.contains("42 bytes"), "{e}");

    let e = error("[[source]]\nrate = \"1mbit\"\nbogus = 1\n");
    assert!(e.message.contains("bogus"), "{e}");
    assert_eq!(e.line, 3, "{e}");

    assert!(error("[[source]]\nkind = \"tcp\"\n")
        .message
        .contains("rtt"));
    assert!(
        error("[[source]]\nkind = \"tcp\"\nrtt = \"1ms\"\nrate = \"1mbit\"\n")
            .message
            .contains("window-limited")
    );
    assert!(error("[[source]]\n").message.contains("needs rate"));
    assert!(error("[[source]]\nrate = \"1mbit\"\ndscp = \"AF5\"\n")
        .message
        .contains("dscp"));
    assert!(
        error("[[source]]\nrate = \"1mbit\"\nsrc = \"::1\"\ndst = \"198.18.0.2\"\n")
            .message
            .contains("both")
    );
    assert!(
        error("[[source]]\nrate = \"1mbit\"\nsport = 65535\nflows = 2\n")
            .message
            .contains("runs past the largest sport")
    );
    assert!(
        error("[[source]]\nrate = \"1mbit\"\ndport = 65535\nflows = 2\nvary = \"dport\"\n")
            .message
            .contains("dport")
    );
    assert!(error(
        "[[source]]\nrate = \"1mbit\"\nsrc = \"255.255.255.255\"\nflows = 2\nvary = \"src\"\n"
    )
    .message
    .contains("src"));
    assert!(error("[[source]]\nrate = \"1mbit\"\nvary = \"ttl\"\n")
        .message
        .contains("unknown vary"));
    assert!(
        error("[[source]]\nrate = \"1mbit\"\nstart = \"2s\"\nstop = \"1s\"\n")
            .message
            .contains("after start")
    );
    assert!(error(
        "[[source]]\nrate = \"1mbit\"\n[[source]]\nname = \"source1\"\nrate = \"1mbit\"\n"
    )
    .message
    .contains("two sources"));
    assert!(
        error("[[source]]\nkind = \"onoff\"\nrate = \"1mbit\"\non = \"1s\"\n")
            .message
            .contains("needs off")
    );
    assert!(error("[[source]]\nkind = \"burst\"\nrate = \"1mbit\"\n")
        .message
        .contains("unknown kind"));
}

#[test]
fn flows_vary_the_chosen_field() {
    let t = Traffic::parse_str(
        "[[source]]\nrate = \"1mbit\"\nsport = 80\ndport = 40000\nflows = 3\nvary = \"dport\"\n\
         [[source]]\nrate = \"1mbit\"\nsrc = \"198.18.0.255\"\nflows = 2\nvary = \"src\"\n",
        "t",
    )
    .unwrap();
    let s = &t.sources[0];
    let h = s.vary.apply(&s.header, 2);
    assert_eq!((h.sport, h.dport), (80, 40002));
    let s = &t.sources[1];
    assert_eq!(
        s.vary.apply(&s.header, 1).src,
        "198.18.1.0".parse::<IpAddr>().unwrap()
    );
    assert_eq!(s.vary.apply(&s.header, 0), s.header);
}

#[test]
fn dscp_names() {
    assert_eq!(dscp_by_name("EF"), Some(46));
    assert_eq!(dscp_by_name("af41"), Some(34));
    assert_eq!(dscp_by_name("AF42"), Some(36));
    assert_eq!(dscp_by_name("AF31"), Some(26));
    assert_eq!(dscp_by_name("CS1"), Some(8));
    assert_eq!(dscp_by_name("CS7"), Some(56));
    assert_eq!(dscp_by_name("BE"), Some(0));
    assert_eq!(dscp_by_name("CS8"), None);
    assert_eq!(dscp_by_name("AF44"), None);
}
