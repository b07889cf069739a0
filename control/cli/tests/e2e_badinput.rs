//! End-to-end bad input: malformed and truncated frames injected at weir's
//! port with trafgen (host A → B) are forwarded or dropped by the tree's
//! `malformed` policy and counted, and weir keeps running.
//!
//! For each kind of bad frame (a runt, IPv4 and IPv6 headers cut short or
//! inconsistent, cut L4 headers, VLAN tags with nothing after them,
//! unknown ethertypes, garbage) a known number of frames is sent, slowly
//! enough that no queue builds, and the counters on every hop are compared
//! as deltas: what A's kernel put on the wire (a0 tx), what weir's XDP
//! program redirected on weir-in, what the tree `up` received, sent,
//! dropped (by reason) and saw as malformed, and what reached B (b0 rx).
//! Then a fast mix of every kind, then normal traffic (ping and a UDP
//! flow), and the stop report must balance.
//!
//! The lab turns IPv6 off in its namespaces and the test sets permanent
//! neighbour entries (no ARP), so nothing else talks on the wire while no
//! test traffic runs (trafgen writes to packet sockets, and B's kernel
//! answers none of these frames): the deltas are exact.
//!
//! Needs root and a release build (scripts/test.sh runs it):
//! `cargo test -p weir --release --test e2e_badinput`.

mod lab;

use std::fmt::Write as _;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use lab::{num, Host, Lab};
use weir_testkit::frame;

const T: Duration = Duration::from_secs(30);

/// Frames per kind in the slow, per-kind phase.
const PER_KIND: u64 = 1000;
/// trafgen's gap between two frames of that phase: ~30k frames/s of at
/// most 74 bytes, well under the default class's 20 Mbit/s, so nothing
/// queues and RED drops nothing: every difference is the policy's.
const GAP: &str = "20us";
/// Frames of each kind in the fast mixed phase (trafgen's TX ring, no
/// gap, the kinds round robin).
const FLOOD_PER_KIND: u64 = 4000;

/// What weir's parser makes of a kind of frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Shorter than an Ethernet header: A's kernel refuses to send it
    /// (packet sockets check `dev->min_header_len`, 14 for Ethernet), so it
    /// never reaches weir. Sent anyway to prove that.
    Refused,
    /// Parses (a non-IP frame): forwarded whatever the policy.
    Valid,
    /// The parser rejects it: `malformed_seen`, then forwarded through the
    /// default class (policy "default") or dropped as `malformed`.
    Malformed,
    /// Random bytes: some frames parse, some do not.
    Either,
}

struct Kind {
    name: &'static str,
    /// The frame's bytes.
    bytes: Vec<u8>,
    /// Random bytes (trafgen `drnd`, new for every frame) after `bytes`.
    random: usize,
    expect: Expect,
}

fn mac(s: &str) -> [u8; 6] {
    let mut m = [0u8; 6];
    for (b, part) in m.iter_mut().zip(s.split(':')) {
        *b = u8::from_str_radix(part, 16).expect("hex MAC");
    }
    m
}

fn ip4(s: &str) -> [u8; 4] {
    s.parse::<std::net::Ipv4Addr>().expect("IPv4").octets()
}

/// Destination B, source A, then `ethertype`.
fn eth(ethertype: u16) -> Vec<u8> {
    frame::eth(mac(lab::MAC_B), mac(lab::MAC_A), ethertype)
}

/// A 20-byte IPv4 header A → B with the given first byte (version, IHL),
/// total length and protocol, and a correct checksum over these 20 bytes,
/// so each kind has exactly the one defect it is named after.
fn ipv4(ver_ihl: u8, total_length: u16, protocol: u8) -> Vec<u8> {
    let ip = frame::Ipv4 {
        id: 0x1234,
        protocol,
        src: ip4(lab::ADDR_A),
        dst: ip4(lab::ADDR_B),
        ..frame::Ipv4::default()
    };
    let mut h = ip.header(total_length);
    h[0] = ver_ihl;
    h[10..12].fill(0);
    let sum = frame::checksum(&h);
    h[10..12].copy_from_slice(&sum.to_be_bytes());
    h
}

/// A 40-byte IPv6 header 2001:db8::1 → 2001:db8::2 (documentation
/// addresses; IPv6 is off in the lab, nothing routes them).
fn ipv6(payload_length: u16, next: u8) -> Vec<u8> {
    let ip = frame::Ipv6 {
        next_header: next,
        ..frame::Ipv6::default()
    };
    ip.header(payload_length)
}

/// 8 bytes of UDP header, length `len`, to the discard port.
fn udp(len: u16) -> Vec<u8> {
    frame::udp_header(1024, 9, len)
}

/// Fixed pseudo-random bytes (xorshift), the same in every run.
fn garbage(n: usize, mut seed: u32) -> Vec<u8> {
    (0..n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            (seed >> 24) as u8
        })
        .collect()
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn kinds() -> Vec<Kind> {
    let k = |name, bytes, expect| Kind {
        name,
        bytes,
        random: 0,
        expect,
    };
    let udp_ipv4 = || cat(&[&ipv4(0x45, 28, 17), &udp(8)]);
    vec![
        // 11 bytes: not even a whole Ethernet header.
        k("runt-11-bytes", eth(0x0800)[..11].to_vec(), Expect::Refused),
        // Exactly an Ethernet header saying IPv4, nothing after it.
        k("ipv4-ethernet-header-only", eth(0x0800), Expect::Malformed),
        k(
            "ipv4-cut-mid-header",
            cat(&[&eth(0x0800), &udp_ipv4()[..10]]),
            Expect::Malformed,
        ),
        k(
            "ipv4-version-6-in-ipv4",
            cat(&[&eth(0x0800), &ipv4(0x65, 28, 17), &udp(8)]),
            Expect::Malformed,
        ),
        k(
            "ipv4-ihl-3",
            cat(&[&eth(0x0800), &ipv4(0x43, 28, 17), &udp(8)]),
            Expect::Malformed,
        ),
        // IHL 15 (a 60-byte header) and total length 60, but the frame
        // ends 28 bytes into the packet.
        k(
            "ipv4-ihl-15-past-frame",
            cat(&[&eth(0x0800), &ipv4(0x4f, 60, 17), &udp(8)]),
            Expect::Malformed,
        ),
        k(
            "ipv4-total-length-past-frame",
            cat(&[&eth(0x0800), &ipv4(0x45, 1500, 17), &udp(1480), &[0; 18]]),
            Expect::Malformed,
        ),
        k(
            "ipv4-total-length-below-header",
            cat(&[&eth(0x0800), &ipv4(0x45, 12, 17), &udp(8)]),
            Expect::Malformed,
        ),
        k(
            "ipv4-udp-header-cut",
            cat(&[&eth(0x0800), &ipv4(0x45, 24, 17), &udp(8)[..4]]),
            Expect::Malformed,
        ),
        k(
            "ipv4-tcp-header-cut",
            cat(&[
                &eth(0x0800),
                &ipv4(0x45, 30, 6),
                &[0x04, 0x00, 0x00, 0x09],
                &[0; 6],
            ]),
            Expect::Malformed,
        ),
        // A whole 20-byte TCP header whose data offset says 2 words.
        k(
            "ipv4-tcp-data-offset-2",
            cat(&[
                &eth(0x0800),
                &ipv4(0x45, 40, 6),
                &[0x04, 0x00, 0x00, 0x09, 0, 0, 0, 1, 0, 0, 0, 0, 0x20, 0x02],
                &[0xff, 0xff, 0, 0, 0, 0],
            ]),
            Expect::Malformed,
        ),
        k(
            "ipv4-icmp-header-cut",
            cat(&[&eth(0x0800), &ipv4(0x45, 24, 1), &[8, 0, 0, 0]]),
            Expect::Malformed,
        ),
        k(
            "ipv6-cut-mid-header",
            cat(&[&eth(0x86dd), &ipv6(8, 17)[..30]]),
            Expect::Malformed,
        ),
        k(
            "ipv6-payload-length-past-frame",
            cat(&[&eth(0x86dd), &ipv6(1000, 17), &udp(1000)]),
            Expect::Malformed,
        ),
        // Hop-by-hop (8 bytes) → destination options claiming 32 bytes,
        // of which 8 are there: the chain runs past the end.
        k(
            "ipv6-extension-chain-past-end",
            cat(&[
                &eth(0x86dd),
                &ipv6(16, 0),
                &[60, 0, 1, 4, 0, 0, 0, 0],
                &[59, 3, 1, 4, 0, 0, 0, 0],
            ]),
            Expect::Malformed,
        ),
        // Nine destination-options headers: one more than the parser walks.
        k(
            "ipv6-nine-extension-headers",
            {
                let mut f = cat(&[&eth(0x86dd), &ipv6(72, 60)]);
                for i in 0..9 {
                    f.extend_from_slice(&[if i < 8 { 60 } else { 59 }, 0, 1, 4, 0, 0, 0, 0]);
                }
                f
            },
            Expect::Malformed,
        ),
        k("vlan-tag-only", eth(0x8100), Expect::Malformed),
        k(
            "vlan-tag-half",
            cat(&[&eth(0x8100), &[0x00, 0x0a]]),
            Expect::Malformed,
        ),
        k(
            "qinq-inner-tag-cut",
            cat(&[&eth(0x88a8), &[0x00, 0x05, 0x81, 0x00], &[0x00, 0x0a]]),
            Expect::Malformed,
        ),
        k(
            "qinq-ipv4-cut",
            cat(&[
                &eth(0x88a8),
                &[0x00, 0x05, 0x81, 0x00, 0x00, 0x0a, 0x08, 0x00],
                &udp_ipv4()[..8],
            ]),
            Expect::Malformed,
        ),
        // A third tag is not parsed: a non-IP frame with ethertype 0x8100.
        k(
            "triple-vlan",
            cat(&[
                &eth(0x88a8),
                &[
                    0x00, 0x05, 0x81, 0x00, 0x00, 0x0a, 0x81, 0x00, 0x00, 0x0b, 0x08, 0x00,
                ],
                &udp_ipv4(),
            ]),
            Expect::Valid,
        ),
        k(
            "unknown-ethertype",
            cat(&[&eth(0x88b5), &[0x5a; 46]]),
            Expect::Valid,
        ),
        k("unknown-ethertype-empty", eth(0x88b6), Expect::Valid),
        // Fixed garbage after an IPv6 ethertype; its first nibble is not 6.
        k(
            "garbage-after-ipv6-type",
            {
                let mut g = garbage(46, 0x5eed_0001);
                g[0] = 0xf0 | (g[0] & 0x0f);
                cat(&[&eth(0x86dd), &g])
            },
            Expect::Malformed,
        ),
        Kind {
            name: "random-after-ipv4-type",
            bytes: eth(0x0800),
            random: 46,
            expect: Expect::Either,
        },
    ]
}

/// One trafgen packet block: `{ 0x.., ..., drnd(N) }`.
fn trafgen_packet(k: &Kind) -> String {
    let mut s = String::from("{ ");
    for (i, b) in k.bytes.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        let _ = write!(s, "0x{b:02x}");
    }
    if k.random > 0 {
        let _ = write!(s, ", drnd({})", k.random);
    }
    s.push_str(" }\n");
    s
}

/// The counters of every hop that the test compares, at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    /// Frames A's kernel put on the wire.
    a0_tx: u64,
    /// weir-in's XDP program: redirected to weir, and passed to the
    /// gateway's kernel (no socket, by rule, or its `dropped`).
    redirected: u64,
    passed: u64,
    /// Frames the kernel lost after the redirect (socket rx_dropped +
    /// rx_ring_full).
    xsk_lost: u64,
    /// Tree `up`.
    received: u64,
    sent: u64,
    dropped_malformed: u64,
    /// Drops for every other reason.
    dropped_other: u64,
    queued: u64,
    malformed_seen: u64,
    /// Tree `down` received (B → A: should stay still).
    down_received: u64,
    /// Frames that reached B.
    b0_rx: u64,
}

impl Counts {
    fn take(lab: &mut Lab) -> Counts {
        let stats = lab.weir().stats();
        assert_eq!(
            stats["accounting"]["balanced"], true,
            "{}",
            stats["accounting"]
        );
        let up = &lab::tree_of(&stats, "up")["frames"];
        let down = &lab::tree_of(&stats, "down")["frames"];
        let weir_in = stats["interfaces"]
            .as_array()
            .and_then(|is| is.iter().find(|i| i["name"] == "weir-in"))
            .unwrap_or_else(|| panic!("no weir-in in the stats' interfaces: {stats}"));
        let xdp = &weir_in["xdp"];
        let xsk = &weir_in["xsk"];
        let dropped_total = num(&up["dropped_total"], "dropped_total");
        let dropped_malformed = num(&up["dropped"]["malformed"], "dropped.malformed");
        Counts {
            a0_tx: num(&lab.link_stats(Host::A, "a0")["tx"]["packets"], "a0 tx"),
            redirected: num(&xdp["redirected"], "xdp.redirected"),
            passed: num(&xdp["passed_no_socket"], "xdp.passed_no_socket")
                + num(&xdp["passed_by_rule"], "xdp.passed_by_rule")
                + num(&xdp["dropped"], "xdp.dropped"),
            xsk_lost: num(&xsk["rx_dropped"], "xsk.rx_dropped")
                + num(&xsk["rx_ring_full"], "xsk.rx_ring_full"),
            received: num(&up["received"], "received"),
            sent: num(&up["sent"], "sent"),
            dropped_malformed,
            dropped_other: dropped_total - dropped_malformed,
            queued: num(&up["queued"], "queued"),
            malformed_seen: num(&up["malformed_seen"], "malformed_seen"),
            down_received: num(&down["received"], "down received"),
            b0_rx: num(&lab.link_stats(Host::B, "b0")["rx"]["packets"], "b0 rx"),
        }
    }

    /// `self - before`, field by field (every counter only grows).
    fn since(&self, before: &Counts) -> Counts {
        let d = |a: u64, b: u64| {
            a.checked_sub(b)
                .unwrap_or_else(|| panic!("a counter went backwards: {before:?} → {self:?}"))
        };
        Counts {
            a0_tx: d(self.a0_tx, before.a0_tx),
            redirected: d(self.redirected, before.redirected),
            passed: d(self.passed, before.passed),
            xsk_lost: d(self.xsk_lost, before.xsk_lost),
            received: d(self.received, before.received),
            sent: d(self.sent, before.sent),
            dropped_malformed: d(self.dropped_malformed, before.dropped_malformed),
            dropped_other: d(self.dropped_other, before.dropped_other),
            // A gauge, not a counter: the current value.
            queued: self.queued,
            malformed_seen: d(self.malformed_seen, before.malformed_seen),
            down_received: d(self.down_received, before.down_received),
            b0_rx: d(self.b0_rx, before.b0_rx),
        }
    }

    /// Everything that reached weir has left it (sent or dropped) and
    /// everything sent has reached B.
    fn settled(&self) -> bool {
        self.queued == 0
            && self.redirected == self.received + self.xsk_lost
            && self.b0_rx == self.sent
    }
}

/// Deltas since `before`, once they settle (at most 5 s).
fn settle(lab: &mut Lab, before: &Counts, expect_frames: bool) -> Counts {
    let deadline = Instant::now() + Duration::from_secs(5);
    // A frame sent last is through weir within a millisecond or two; the
    // short wait also lets a refused kind show that nothing came.
    thread::sleep(Duration::from_millis(if expect_frames { 20 } else { 300 }));
    loop {
        let d = Counts::take(lab).since(before);
        if (d.settled() && (!expect_frames || d.redirected >= d.a0_tx)) || Instant::now() > deadline
        {
            return d;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Policy {
    /// config/lab.toml as it is: malformed frames go to the default class.
    Default,
    /// config/lab.toml with `malformed = "drop"` in both trees.
    Drop,
}

/// Sends `count` frames of `cfg` from A, `GAP` apart.
fn send_slow(lab: &Lab, cfg: &Path, count: u64) {
    // -t: a gap, so frames go one sendto(2) at a time (the harness's
    // trafgen is otherwise the lab's: one process, socket sysctls left
    // alone).
    lab.trafgen_with(Host::A, cfg, count, &["-t", GAP], T)
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Checks one kind's deltas; returns a line for the log.
fn check_kind(k: &Kind, policy: Policy, d: &Counts) -> String {
    let what = format!("{} ({:?}, policy {policy:?}): {d:?}", k.name, k.expect);
    if k.expect == Expect::Refused {
        assert_eq!(
            *d,
            Counts::default(),
            "{what}: a frame shorter than an Ethernet header went on the wire"
        );
        return format!(
            "{:<32} refused by A's kernel: nothing sent, nothing seen",
            k.name
        );
    }
    // The whole count left A and went through weir's XDP program into its
    // socket; at this rate the kernel loses none after the redirect.
    assert_eq!(d.a0_tx, PER_KIND, "{what}: a0 did not send every frame");
    assert_eq!(
        d.redirected, PER_KIND,
        "{what}: XDP redirected another count"
    );
    assert_eq!(
        d.passed, 0,
        "{what}: XDP passed frames to the gateway's kernel"
    );
    assert_eq!(d.xsk_lost, 0, "{what}: the AF_XDP socket lost frames");
    assert_eq!(
        d.received, PER_KIND,
        "{what}: tree up received another count"
    );
    // Every received frame is sent or dropped (nothing stays queued), and
    // only the malformed policy drops.
    assert_eq!(d.queued, 0, "{what}: frames still queued after 5 s");
    assert_eq!(
        d.dropped_other, 0,
        "{what}: dropped for another reason than malformed"
    );
    assert_eq!(
        d.received,
        d.sent + d.dropped_malformed,
        "{what}: received != sent + dropped"
    );
    match k.expect {
        Expect::Valid => assert_eq!(
            d.malformed_seen, 0,
            "{what}: a valid frame seen as malformed"
        ),
        Expect::Malformed => assert_eq!(
            d.malformed_seen, PER_KIND,
            "{what}: the parser did not reject every frame"
        ),
        Expect::Either | Expect::Refused => {}
    }
    let dropped_expected = match policy {
        Policy::Default => 0,
        Policy::Drop => d.malformed_seen,
    };
    assert_eq!(
        d.dropped_malformed, dropped_expected,
        "{what}: drops by reason `malformed` do not follow the policy"
    );
    // Everything weir sent reached B, and B's kernel answered none of it.
    assert_eq!(
        d.b0_rx, d.sent,
        "{what}: b0 received another count than weir sent"
    );
    assert_eq!(d.down_received, 0, "{what}: traffic came back from B");
    format!(
        "{:<32} sent {} received {} malformed {} → forwarded to B {} dropped(malformed) {}",
        k.name, d.a0_tx, d.received, d.malformed_seen, d.b0_rx, d.dropped_malformed
    )
}

/// The config for `policy`: config/lab.toml, or a copy with
/// `malformed = "drop"` in both trees.
fn config(lab: &Lab, policy: Policy) -> std::path::PathBuf {
    let path = lab::repo_root().join("config/lab.toml");
    match policy {
        Policy::Default => path,
        Policy::Drop => {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let text = text
                .replace("[tree.up]\n", "[tree.up]\nmalformed = \"drop\"\n")
                .replace("[tree.down]\n", "[tree.down]\nmalformed = \"drop\"\n");
            assert_eq!(
                text.matches("malformed = \"drop\"").count(),
                2,
                "config/lab.toml no longer has [tree.up] and [tree.down] sections"
            );
            lab.write("lab-malformed-drop.toml", &text)
        }
    }
}

fn ping_a_to_b(lab: &Lab) {
    let out = lab.output(
        Host::A,
        &["ping", "-c", "5", "-i", "0.2", "-W", "2", lab::ADDR_B],
        T,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(" 0% packet loss"),
        "ping A → B through weir failed:\n{text}"
    );
}

fn run(policy: Policy, tag: &str) {
    lab::require_root();
    let _serial = lab::serialize();
    let mut lab = Lab::up(tag);
    let cfg = config(&lab, policy);
    lab.start_weir(&cfg);
    // Permanent neighbour entries: no ARP request or unicast probe (which
    // the kernel sends a few seconds after a STALE entry is used) crosses
    // the wire while the counters are compared.
    for (host, peer, mac, dev) in [
        (Host::A, lab::ADDR_B, lab::MAC_B, "a0"),
        (Host::B, lab::ADDR_A, lab::MAC_A, "b0"),
    ] {
        lab.run(
            host,
            &[
                "ip",
                "neigh",
                "replace",
                peer,
                "lladdr",
                mac,
                "dev",
                dev,
                "nud",
                "permanent",
            ],
            T,
        );
    }
    // The path works before the bad input.
    ping_a_to_b(&lab);

    let kinds = kinds();
    let mut malformed_sent = 0;
    let mut before = Counts::take(&mut lab);
    for k in &kinds {
        let cfg = lab.write(&format!("{}.trafgen", k.name), &trafgen_packet(k));
        send_slow(&lab, &cfg, PER_KIND);
        let d = settle(&mut lab, &before, k.expect != Expect::Refused);
        eprintln!("{}", check_kind(k, policy, &d));
        malformed_sent += d.malformed_seen;
        before = Counts::take(&mut lab);
    }

    // All kinds that reach weir, mixed round robin, as fast as trafgen's
    // TX ring goes: here the default class's RED queue drops too, and the
    // AF_XDP socket loses frames when weir's rx ring is full (a few to ten
    // percent on a two-core VM), but each is counted somewhere.
    let mixed: Vec<&Kind> = kinds
        .iter()
        .filter(|k| k.expect != Expect::Refused)
        .collect();
    let flood = FLOOD_PER_KIND * mixed.len() as u64;
    let count = |e: Expect| FLOOD_PER_KIND * mixed.iter().filter(|k| k.expect == e).count() as u64;
    let (bad, either) = (count(Expect::Malformed), count(Expect::Either));
    let text: String = mixed.iter().map(|k| trafgen_packet(k)).collect();
    let cfg_mixed = lab.write("mixed.trafgen", &text);
    lab.trafgen(Host::A, &cfg_mixed, flood, Duration::from_secs(60));
    let d = settle(&mut lab, &before, true);
    eprintln!("mixed, {flood} frames: {d:?}");
    let stats = lab.weir().stats();
    let weir_in = stats["interfaces"]
        .as_array()
        .and_then(|is| is.iter().find(|i| i["name"] == "weir-in"))
        .map(|i| i["xsk"].clone());
    eprintln!(
        "  tree up drops so far {}; weir-in socket {}",
        lab::tree_of(&stats, "up")["frames"]["dropped"],
        weir_in.unwrap_or_default()
    );
    assert_eq!(d.a0_tx, flood, "mixed: a0 did not send every frame: {d:?}");
    assert_eq!(
        d.passed, 0,
        "mixed: XDP passed frames to the gateway's kernel: {d:?}"
    );
    assert_eq!(
        d.redirected, d.a0_tx,
        "mixed: weir-in's XDP program redirected another count than a0 sent: {d:?}"
    );
    assert_eq!(
        d.redirected,
        d.received + d.xsk_lost,
        "mixed: redirected != received by tree up + lost by the socket: {d:?}"
    );
    assert_eq!(d.queued, 0, "mixed: frames still queued after 5 s: {d:?}");
    assert_eq!(
        d.received,
        d.sent + d.dropped_malformed + d.dropped_other,
        "mixed: received != sent + dropped: {d:?}"
    );
    assert_eq!(
        d.b0_rx, d.sent,
        "mixed: b0 received another count than weir sent: {d:?}"
    );
    assert_eq!(d.down_received, 0, "mixed: traffic came back from B: {d:?}");
    // Frames the socket lost never reached the parser.
    assert!(
        d.malformed_seen + d.xsk_lost >= bad && d.malformed_seen <= bad + either,
        "mixed: {} frames seen as malformed, expected {bad} to {}: {d:?}",
        d.malformed_seen,
        bad + either
    );
    match policy {
        Policy::Default => assert_eq!(d.dropped_malformed, 0, "mixed: {d:?}"),
        Policy::Drop => assert_eq!(
            d.dropped_malformed, d.malformed_seen,
            "mixed: not every malformed frame was dropped: {d:?}"
        ),
    }
    malformed_sent += d.malformed_seen;

    // weir is still there and still answers, and normal traffic still
    // crosses it.
    let stats = lab.weir().stats();
    assert_eq!(stats["type"], "stats");
    ping_a_to_b(&lab);
    let server = lab.iperf3_server(Host::B, 5601, T);
    let client = lab.iperf3_client(
        Host::A,
        5601,
        &["-u", "-b", "10M", "-l", "1200", "-t", "2"],
        T,
    );
    let out = client.wait_with_output().expect("iperf3 client output");
    assert!(
        out.status.success(),
        "iperf3 UDP A → B after the bad input failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let json = server.finish();
    let sum = &json["end"]["sum"];
    let packets = sum["packets"].as_u64().unwrap_or(0);
    let lost = sum["lost_percent"].as_f64().unwrap_or(100.0);
    eprintln!("UDP A → B after the bad input: {packets} datagrams, {lost:.2} % lost");
    assert!(
        packets > 1000,
        "UDP A → B: only {packets} datagrams arrived: {sum}"
    );
    assert!(
        lost < 1.0,
        "UDP A → B: {lost:.2} % lost at 10 Mbit/s: {sum}"
    );

    let report = lab.stop_weir();
    for tree in ["up", "down"] {
        let f = &lab::tree_of(&report, tree)["frames"];
        assert!(
            num(&f["received"], "received") > 0,
            "tree {tree} received nothing: {f}"
        );
        assert_eq!(f["balanced"], true, "tree {tree}: {f}");
    }
    assert_eq!(
        report["accounting"]["balanced"], true,
        "{}",
        report["accounting"]
    );
    assert_eq!(
        report["accounting"]["umem_free_or_fill"], true,
        "{}",
        report["accounting"]
    );
    let up = &lab::tree_of(&report, "up")["frames"];
    let seen = num(&up["malformed_seen"], "malformed_seen");
    let dropped = num(&up["dropped"]["malformed"], "dropped.malformed");
    eprintln!("report, tree up: {up}");
    // The ping and iperf3 frames are all well formed.
    assert_eq!(seen, malformed_sent, "report: malformed_seen of tree up");
    match policy {
        Policy::Default => assert_eq!(dropped, 0, "report: {up}"),
        Policy::Drop => assert_eq!(dropped, seen, "report: {up}"),
    }
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "end-to-end: runs in release (scripts/test.sh)"
)]
fn malformed_frames_forwarded_by_default_policy() {
    run(Policy::Default, "bd");
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "end-to-end: runs in release (scripts/test.sh)"
)]
fn malformed_frames_dropped_by_drop_policy() {
    run(Policy::Drop, "bx");
}
