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

#[test]
fn payloads_parse_and_carry_the_core_builders_bytes() {
    let t = Traffic::parse_str(
        r#"
[[source]]
name = "https"
kind = "tcp"
rtt = "20ms"
dport = 443
payload = { kind = "tls", sni = "video.test" }

[[source]]
name = "h3"
interval = "20ms"
size = 200
dport = 443
payload = { kind = "quic", sni = "video.test", version = 2 }

[[source]]
name = "web"
interval = "20ms"
proto = "tcp"
dport = 80
payload = { kind = "http", host = "www.test", path = "/index.html" }

[[source]]
name = "big-hello"
interval = "20ms"
proto = "tcp"
payload = { kind = "tls", sni = "pq.test", hello_size = 1800 }

[[source]]
name = "replay"
interval = "10ms"
proto = "tcp"
sequence = [128, 8192, 64, 4096]
"#,
        "t.toml",
    )
    .unwrap();
    let p = |i: usize| t.sources[i].payload.as_ref().unwrap();
    assert_eq!(
        p(0).kind,
        PayloadKind::Tls {
            sni: "video.test".into()
        }
    );
    let mut want = Vec::new();
    weir_dataplane::app::tls::client_hello("video.test", 0, &mut want).unwrap();
    assert_eq!(p(0).bytes, want);
    assert!(p(0).kind.is_stream());
    assert_eq!(
        p(1).kind,
        PayloadKind::Quic {
            sni: "video.test".into(),
            version: weir_dataplane::app::quic::VERSION_2
        }
    );
    assert_eq!(p(1).bytes.len(), 1200);
    assert!(!p(1).kind.is_stream());
    assert_eq!(
        p(2).kind,
        PayloadKind::Http {
            host: "www.test".into(),
            path: "/index.html".into()
        }
    );
    assert!(p(2)
        .bytes
        .starts_with(b"GET /index.html HTTP/1.1\r\nHost: www.test\r\n"));
    assert_eq!(p(3).bytes.len(), 5 + 1800);
    assert!(t.sources[4].payload.is_none());
    assert_eq!(t.sources[4].sizes, Sizes::Seq(vec![128, 8192, 64, 4096]));
    assert_eq!(t.sources[4].sizes.max(), 8192);
    assert_eq!(t.sources[4].sizes.min(), 64);
}

#[test]
fn bad_payloads_are_errors_at_the_value() {
    let src = |payload: &str, extra: &str| {
        format!("[[source]]\nname = \"s\"\ninterval = \"1s\"\n{extra}payload = {payload}\n")
    };
    // Each: (payload, other keys, line:col, message).
    let cases = [
        (
            r#"{ kind = "tls", sni = "video.test" }"#,
            "",
            "t.toml:4:20: source 's': payload: a tls payload needs proto = \"tcp\" (this source is udp)",
        ),
        (
            r#"{ kind = "quic", sni = "video.test" }"#,
            "proto = \"tcp\"\n",
            "t.toml:5:20: source 's': payload: a quic payload needs proto = \"udp\" (this source is tcp)",
        ),
        (
            r#"{ kind = "http", host = "a.test" }"#,
            "proto = \"icmp\"\n",
            "t.toml:5:20: source 's': payload: a http payload needs proto = \"tcp\" (this source is icmp)",
        ),
        (
            r#"{ kind = "ssh" }"#,
            "",
            "t.toml:4:20: source 's': payload: unknown kind 'ssh' (tls, quic, http)",
        ),
        (
            r#"{ kind = "tls" }"#,
            "proto = \"tcp\"\n",
            "t.toml:5:11: source 's': payload: a tls payload needs sni",
        ),
        (
            r#"{ kind = "tls", sni = "not a name" }"#,
            "proto = \"tcp\"\n",
            "t.toml:5:33: source 's': payload: sni 'not a name' is not a hostname (letters, digits, '-', '_' in dot-separated labels of 1 to 63 bytes)",
        ),
        (
            r#"{ kind = "tls", host = "a.test" }"#,
            "proto = \"tcp\"\n",
            "t.toml:5:11: source 's': payload: host/path only applies to kind http, not 'tls'",
        ),
        (
            r#"{ kind = "http", sni = "a.test" }"#,
            "proto = \"tcp\"\n",
            "t.toml:5:11: source 's': payload: sni only applies to kind tls or quic, not 'http'",
        ),
        (
            r#"{ kind = "http", host = "a.test:8080" }"#,
            "proto = \"tcp\"\n",
            "t.toml:5:35: source 's': payload: host 'a.test:8080' is not a hostname (letters, digits, '-', '_' in dot-separated labels; no port)",
        ),
        (
            r#"{ kind = "http", host = "a.test", path = "x y" }"#,
            "proto = \"tcp\"\n",
            "t.toml:5:52: source 's': payload: path 'x y' must start with '/' and hold only visible ASCII (no spaces)",
        ),
        (
            r#"{ kind = "quic", sni = "a.test", version = 3 }"#,
            "",
            "t.toml:4:54: source 's': payload: quic version must be 1 or 2, got 3",
        ),
        (
            r#"{ kind = "quic", sni = "a.test", hello_size = 20000 }"#,
            "",
            "t.toml:4:57: source 's': payload: hello_size must be within 0..=16000, got 20000",
        ),
        (
            r#"{ kind = "tls", sni = "a.test" }"#,
            "proto = \"tcp\"\nsize = 54\n",
            "t.toml:6:11: source 's': payload: the smallest frame (54 bytes) leaves no room after the 54-byte headers for the tls payload",
        ),
    ];
    let mut wrong = Vec::new();
    for (payload, extra, want) in cases {
        let e = error(&src(payload, extra));
        if e.to_string() != want {
            wrong.push(format!("{payload}\n  got  {e}\n  want {want}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Unknown keys inside the table are TOML errors with a position.
    let e = error(&src(r#"{ kind = "tls", name = "x" }"#, "proto = \"tcp\"\n"));
    assert!(e.message.contains("unknown field `name`"), "{e}");
    assert_eq!(e.line, 5, "{e}");
    let e = error(&src(r#"{ sni = "x.test" }"#, "proto = \"tcp\"\n"));
    assert!(e.message.contains("missing field `kind`"), "{e}");
}

#[test]
fn bad_sequences_are_errors() {
    let e = error("[[source]]\ninterval = \"1s\"\nsequence = []\n");
    assert_eq!(
        e.to_string(),
        "t.toml:3:12: source 'source1': sequence must not be empty"
    );
    let e = error("[[source]]\ninterval = \"1s\"\nsize = 100\nsequence = [100]\n");
    assert_eq!(
        e.to_string(),
        "t.toml:4:12: source 'source1': give one of size, sizes or sequence"
    );
    let e = error("[[source]]\ninterval = \"1s\"\nsequence = [100, 10]\n");
    assert!(
        e.to_string()
            .starts_with("t.toml:3:12: source 'source1': sequence: size must be within 42..="),
        "{e}"
    );
}
