//! The apps engine (`app::Apps`) on the seed's section 2.2 classifier: its
//! three sample flows, each rule of its table, then what goes past the seed
//! (TLS and QUIC SNI, HTTP Host, bulk with a hold), both directions of a
//! connection sharing one decision, and a full flow table.

use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore};
use weir_dataplane::app::{AppSpec, Apps, AppsSpec, Behaviour, Bulk, Glob, RuleSpec};
use weir_dataplane::flow::{Decided, FlowKey, NONE};
use weir_dataplane::parse::parse_frame;
use weir_dataplane::remark::Remark;
use weir_testkit::frame;

const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;

// App indexes, in the seed's table order; the class index is the same.
const VOICE: u16 = 0;
const VIDEO: u16 = 1;
const DATABASE: u16 = 2;
const WEB: u16 = 3;
const BACKUP: u16 = 4;

fn ports(list: &[u16]) -> Vec<(u16, u16)> {
    list.iter().map(|&p| (p, p)).collect()
}

fn rule(app: u16, ports: Vec<(u16, u16)>, behaviour: Behaviour) -> RuleSpec {
    RuleSpec {
        app,
        ports,
        behaviour,
        ..RuleSpec::default()
    }
}

/// The seed's `classification_rules` and `classify_flow`, in its order:
/// the port rules of each app (with voice's RTP range, which also checks
/// size and jitter), then the behavioural rules. Past the seed: a video SNI
/// rule first, and a bulk rule (qosify's) last.
fn seed_spec() -> AppsSpec {
    let app = |name: &str, class: u32, dscp: u8| AppSpec {
        name: name.into(),
        class,
        remark: Some(Remark::Set(dscp)),
    };
    let mut spec = AppsSpec::empty();
    spec.apps = vec![
        app("voice", 0, 46),
        app("video", 1, 34),
        app("database", 2, 26),
        app("web", 3, 0),
        app("backup", 4, 8),
    ];
    let globs = |g: &[&str]| g.iter().map(|p| Glob::new(p).unwrap()).collect::<Vec<_>>();
    spec.rules = vec![
        // On the web's ports only: a name rule makes the flows it could
        // match wait for their first payload.
        RuleSpec {
            app: VIDEO,
            ports: ports(&[80, 443]),
            sni: globs(&["*.googlevideo.com", "video.test"]),
            host: globs(&["video.test"]),
            ..RuleSpec::default()
        },
        rule(VOICE, ports(&[5060, 5061]), Behaviour::default()),
        rule(
            VOICE,
            vec![(10000, 20000)],
            Behaviour {
                avg_size: Some((160, 320)),
                // 0.1 s², in ns².
                iat_variance_below: Some(100_000_000_000_000_000),
                // More than ten inter-arrival times.
                min_packets: 12,
                ..Behaviour::default()
            },
        ),
        rule(VIDEO, ports(&[554, 8080, 1935]), Behaviour::default()),
        rule(
            DATABASE,
            ports(&[3306, 5432, 1521, 1433]),
            Behaviour::default(),
        ),
        rule(WEB, ports(&[80, 443, 8080, 8443]), Behaviour::default()),
        rule(BACKUP, ports(&[873, 22]), Behaviour::default()),
        rule(
            BACKUP,
            vec![],
            Behaviour {
                avg_size: Some((10001, u32::MAX)),
                long_lived: Some(60 * S),
                ..Behaviour::default()
            },
        ),
        rule(
            VOICE,
            vec![],
            Behaviour {
                avg_size: Some((0, 199)),
                regular: Some(true),
                min_packets: 7,
                ..Behaviour::default()
            },
        ),
        rule(
            VIDEO,
            vec![],
            Behaviour {
                avg_size: Some((1001, u32::MAX)),
                bursty: Some(true),
                min_packets: 11,
                ..Behaviour::default()
            },
        ),
        rule(
            BACKUP,
            vec![],
            Behaviour {
                bulk: Some(Bulk {
                    pps: Some(2000),
                    bytes_per_sec: None,
                    hold: 5 * S,
                }),
                ..Behaviour::default()
            },
        ),
    ];
    spec
}

/// A frame of `payload` bytes of protocol `proto` between two endpoints.
fn frame(proto: u8, src: ([u8; 4], u16), dst: ([u8; 4], u16), payload: &[u8]) -> Vec<u8> {
    tcp_frame(proto, src, dst, 0, payload)
}

fn tcp_frame(
    proto: u8,
    src: ([u8; 4], u16),
    dst: ([u8; 4], u16),
    seq: u32,
    payload: &[u8],
) -> Vec<u8> {
    let ip = frame::Ipv4 {
        protocol: proto,
        src: src.0,
        dst: dst.0,
        ..frame::Ipv4::default()
    };
    let l4 = if proto == 6 {
        let mut t = frame::tcp(src.1, dst.1, 5);
        t[4..8].copy_from_slice(&seq.to_be_bytes());
        t.extend_from_slice(payload);
        t
    } else {
        frame::udp(src.1, dst.1, payload)
    };
    frame::ipv4_frame(&ip, &l4)
}

fn feed(apps: &mut Apps, bytes: &[u8], now: u64) -> u16 {
    let h = parse_frame(bytes).expect("the test's frames parse");
    apps.packet(&h, bytes, now)
}

fn key_of(bytes: &[u8]) -> FlowKey {
    FlowKey::of(&parse_frame(bytes).unwrap()).unwrap().0
}

fn decided(apps: &Apps, key: &FlowKey) -> (u16, Decided) {
    let f = apps
        .flows()
        .find(|f| f.key == *key)
        .expect("the flow is held");
    (f.app, f.decided)
}

const A: [u8; 4] = [198, 18, 0, 1];
const B: [u8; 4] = [198, 19, 0, 1];

/// The seed's `sample_flows`, as it replays them (a packet every 10 ms):
/// voice over UDP 12000 → 12001 with 160-byte packets, web from port 80,
/// the database from 3306. (Its addresses are mapped into 198.18.0.0/15.)
#[test]
fn the_seeds_sample_flows() {
    let mut apps = Apps::new(&seed_spec()).unwrap();
    let voice = frame(17, (A, 12000), (B, 12001), &[0; 160]);
    let mut got = Vec::new();
    for i in 0..50 {
        got.push(feed(&mut apps, &voice, i * 10 * MS));
    }
    // The RTP-range rule wants more than ten gaps: undecided before.
    assert!(got[..11].iter().all(|&a| a == NONE), "{got:?}");
    assert!(got[11..].iter().all(|&a| a == VOICE), "{got:?}");
    assert_eq!(decided(&apps, &key_of(&voice)), (VOICE, Decided::Behaviour));

    for (i, size) in [1460, 1460, 800, 1200].into_iter().enumerate() {
        let web = frame(6, (A, 80), (B, 54321), &vec![0; size - 40]);
        assert_eq!(feed(&mut apps, &web, 600 * MS + i as u64 * 10 * MS), WEB);
    }
    for (i, size) in [128, 1460, 64, 1460].into_iter().enumerate() {
        let db = frame(6, (A, 3306), (B, 45678), &vec![0; size]);
        assert_eq!(
            feed(&mut apps, &db, 700 * MS + i as u64 * 10 * MS),
            DATABASE
        );
    }
    let web = key_of(&frame(6, (A, 80), (B, 54321), &[]));
    assert_eq!(decided(&apps, &web), (WEB, Decided::Port));
}

/// Each port rule of the seed's table, either endpoint, in its order (8080
/// is video's before it is web's).
#[test]
fn each_port_rule_of_the_seeds_table() {
    let mut apps = Apps::new(&seed_spec()).unwrap();
    let cases = [
        (5060, VOICE),
        (5061, VOICE),
        (554, VIDEO),
        (8080, VIDEO),
        (1935, VIDEO),
        (3306, DATABASE),
        (5432, DATABASE),
        (1521, DATABASE),
        (1433, DATABASE),
        (80, WEB),
        (443, WEB),
        (8443, WEB),
        (873, BACKUP),
        (22, BACKUP),
    ];
    for (i, (port, app)) in cases.into_iter().enumerate() {
        // TCP with no payload yet (a SYN): ports decide at once, except
        // 443 and 80, which wait for a name the SNI/Host rule may match.
        let client = 40000 + i as u16;
        let syn = frame(6, (A, client), (B, port), &[]);
        let first = feed(&mut apps, &syn, 0);
        let data = frame(6, (B, port), (A, client), b"\x00\x01payload");
        let then = feed(&mut apps, &data, MS);
        if port == 443 || port == 80 {
            assert_eq!(first, NONE, "port {port} waits for a name");
        } else {
            assert_eq!(first, app, "port {port}");
        }
        assert_eq!(then, app, "port {port}");
    }
}

/// The behavioural rules: small regular packets are voice, bursty large
/// ones video, and huge packets that last a minute backup.
#[test]
fn the_seeds_behavioural_rules() {
    let mut apps = Apps::new(&seed_spec()).unwrap();
    // 100-byte frames every 20 ms on ports no rule lists.
    let small = frame(17, (A, 30000), (B, 30001), &[0; 58]);
    let got: Vec<u16> = (0..10)
        .map(|i| feed(&mut apps, &small, i * 20 * MS))
        .collect();
    assert_eq!(got[5], NONE, "fewer than seven packets: unknown");
    assert_eq!(got[6], VOICE, "{got:?}");

    // Bursts of four 1400-byte frames 2 ms apart, every 150 ms.
    let big = frame(6, (A, 30002), (B, 30003), &[0; 1346]);
    let mut last = NONE;
    for i in 0..40u64 {
        last = feed(&mut apps, &big, (i / 4) * 150 * MS + (i % 4) * 2 * MS);
    }
    assert_eq!(last, VIDEO);

    // 12,000-byte jumbo frames every second: backup after a minute (a
    // moving rule: until then the flow has no app).
    let jumbo = frame(17, (A, 30004), (B, 30005), &vec![0; 12000]);
    let mut got = Vec::new();
    for i in 0..=61 {
        got.push(feed(&mut apps, &jumbo, i * S));
    }
    assert_eq!(got[30], NONE);
    assert_eq!(got[61], BACKUP);
    assert_eq!(decided(&apps, &key_of(&jumbo)).1, Decided::Behaviour);
}

/// The first flight rustls sends to `name`.
fn rustls_hello(name: &str) -> Vec<u8> {
    #[expect(
        deprecated,
        reason = "ring's provider: no post-quantum groups, not needed here"
    )]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth();
    let server = ServerName::try_from(name.to_owned()).unwrap();
    let mut conn = ClientConnection::new(Arc::new(config), server).unwrap();
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    out
}

/// A TLS connection to `video.test` on 443: the SYN and SYN-ACK wait for
/// the name, the ClientHello decides video (not web, which 443 alone would
/// give), and the other direction learns it before the server answers.
#[test]
fn tls_sni_decides_and_the_other_direction_learns_it() {
    let mut up = Apps::new(&seed_spec()).unwrap();
    let mut down = Apps::new(&seed_spec()).unwrap();

    let c = (A, 40000);
    let s = (B, 443);
    assert_eq!(feed(&mut up, &tcp_frame(6, c, s, 1000, &[]), 0), NONE);
    assert_eq!(feed(&mut down, &tcp_frame(6, s, c, 5000, &[]), MS), NONE);
    let hello = rustls_hello("video.test");
    assert_eq!(
        feed(&mut up, &tcp_frame(6, c, s, 1001, &hello), 2 * MS),
        VIDEO
    );
    let decisions: Vec<_> = up.take_decisions().collect();
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0].how, Decided::TlsSni);
    for d in decisions {
        down.learn(d, 2 * MS);
    }
    // The server's ServerHello and data: video from their first byte.
    let server_hello = [22, 3, 3, 0, 4, 2, 0, 0, 0];
    assert_eq!(
        feed(&mut down, &tcp_frame(6, s, c, 5001, &server_hello), 3 * MS),
        VIDEO
    );
    assert_eq!(
        decided(&down, &key_of(&tcp_frame(6, s, c, 0, &[]))),
        (VIDEO, Decided::Peer)
    );
    assert_eq!(up.engine_counters().names, 1);
    assert_eq!(down.engine_counters().learned, 1);
}

/// A late decision still wins where it ranks better: the download side
/// gave up on a name (it saw the server's bytes first) and decided web by
/// port; the SNI decision arrives and replaces it.
#[test]
fn a_better_ranked_learned_decision_replaces_a_local_one() {
    let mut up = Apps::new(&seed_spec()).unwrap();
    let mut down = Apps::new(&seed_spec()).unwrap();
    let c = (A, 40001);
    let s = (B, 443);
    assert_eq!(
        feed(&mut down, &tcp_frame(6, s, c, 1, b"SSH-2.0-banner\r\n"), 0),
        WEB
    );
    feed(
        &mut up,
        &tcp_frame(6, c, s, 1, &rustls_hello("r1.googlevideo.com")),
        MS,
    );
    for d in up.take_decisions().collect::<Vec<_>>() {
        down.learn(d, MS);
    }
    assert_eq!(
        feed(&mut down, &tcp_frame(6, s, c, 17, &[0; 100]), 2 * MS),
        VIDEO
    );
}

/// A ClientHello split over two segments is joined in a reassembly slot;
/// a retransmission of the first segment is skipped.
#[test]
fn a_split_client_hello_is_joined() {
    let mut apps = Apps::new(&seed_spec()).unwrap();
    let hello = rustls_hello("video.test");
    let (a, b) = hello.split_at(100);
    let c = (A, 40002);
    let s = (B, 443);
    assert_eq!(feed(&mut apps, &tcp_frame(6, c, s, 10, a), 0), NONE);
    assert_eq!(feed(&mut apps, &tcp_frame(6, c, s, 10, a), MS), NONE);
    assert_eq!(feed(&mut apps, &tcp_frame(6, c, s, 110, b), 2 * MS), VIDEO);
    assert_eq!(
        decided(&apps, &key_of(&tcp_frame(6, c, s, 0, &[]))).1,
        Decided::TlsSni
    );
}

/// HTTP/1 Host, and a name no rule lists falls to the port rule.
#[test]
fn http_host_and_unlisted_names() {
    let mut apps = Apps::new(&seed_spec()).unwrap();
    let req = b"GET / HTTP/1.1\r\nHost: Video.Test:80\r\nAccept: */*\r\n\r\n";
    assert_eq!(
        feed(&mut apps, &frame(6, (A, 40003), (B, 80), req), 0),
        VIDEO
    );
    let other = b"GET / HTTP/1.1\r\nHost: example.org\r\n\r\n";
    assert_eq!(
        feed(&mut apps, &frame(6, (A, 40004), (B, 80), other), 0),
        WEB
    );
    let hello = rustls_hello("example.org");
    assert_eq!(
        feed(&mut apps, &frame(6, (A, 40005), (B, 443), &hello), 0),
        WEB
    );
    assert_eq!(apps.counters()[VIDEO as usize].flows, 1);
    assert_eq!(apps.counters()[WEB as usize].flows, 2);
}

/// A QUIC v1 client Initial (RFC 9001 appendix A.2, for example.com) on UDP
/// 443: decided by its SNI.
#[test]
fn quic_initial_sni() {
    let mut spec = seed_spec();
    spec.rules[0].sni.push(Glob::new("example.com").unwrap());
    let mut apps = Apps::new(&spec).unwrap();
    let initial = rfc9001_client_initial();
    let f = frame(17, (A, 50000), (B, 443), &initial);
    assert_eq!(feed(&mut apps, &f, 0), VIDEO);
    assert_eq!(decided(&apps, &key_of(&f)).1, Decided::QuicSni);
}

/// RFC 9001 appendix A.2's protected client Initial (the RFC text's hex).
fn rfc9001_client_initial() -> Vec<u8> {
    let digits: Vec<u8> = include_str!("data/rfc9001-a2-client-initial.hex")
        .bytes()
        .filter(u8::is_ascii_hexdigit)
        .collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

/// qosify's bulk detection: an unlisted flow above 2,000 packets/s is bulk
/// after its first one-second window, and goes back to none once it has
/// been calm for the hold (5 s).
#[test]
fn bulk_moves_a_flow_and_the_hold_brings_it_back() {
    let mut apps = Apps::new(&seed_spec()).unwrap();
    let f = frame(6, (A, 40006), (B, 5201), &[0; 1400]);
    let mut now = 0;
    let mut first_bulk = None;
    // 4,000 packets/s for 3 s.
    while now < 3 * S {
        if feed(&mut apps, &f, now) == BACKUP && first_bulk.is_none() {
            first_bulk = Some(now);
        }
        now += 250_000;
    }
    let at = first_bulk.expect("became bulk");
    // The first window closes after 953 ticks of 2^20 ns (0.9993 s).
    assert!((S - 2 * MS..=S + 2 * MS).contains(&at), "bulk at {at}");
    // Then 10 packets/s: still bulk within the hold, none after it.
    let calm = now;
    let mut last = BACKUP;
    while now < calm + 4 * S {
        last = feed(&mut apps, &f, now);
        now += 100 * MS;
    }
    assert_eq!(last, BACKUP);
    while now < calm + 8 * S {
        last = feed(&mut apps, &f, now);
        now += 100 * MS;
    }
    assert_eq!(last, NONE);
    let e = apps.engine_counters();
    assert_eq!((e.moved, e.returned), (1, 1));
}

/// A full table evicts, counts it, and every packet still gets an answer.
#[test]
fn a_full_table_evicts_and_counts() {
    let mut spec = seed_spec();
    spec.flows = 64;
    let mut apps = Apps::new(&spec).unwrap();
    for i in 0..10_000u32 {
        // Client ports no rule lists (the seed's match either endpoint).
        let f = frame(6, (A, 30000 + (i % 30000) as u16), (B, 3306), &[0; 10]);
        assert_eq!(feed(&mut apps, &f, u64::from(i) * 1000), DATABASE);
    }
    let c = apps.flow_counters();
    assert!(c.live <= 64);
    assert!(c.evicted_pressure > 9000, "{c:?}");
    assert_eq!(
        c.inserted,
        c.live + c.expired + c.evicted_idle + c.evicted_pressure
    );
}
