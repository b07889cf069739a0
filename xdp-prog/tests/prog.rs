//! The XDP program on real veth pairs in throwaway network namespaces:
//! fail-open passing, pass prefixes (also under a VLAN tag), redirect into
//! an AF_XDP socket, detach on drop, and the operator-facing errors.
//!
//! Needs root (CI runs as root); without it each test says SKIPPED.
//! Traffic stays between namespaces these tests create, on 198.18.0.0/15.
//! Every traffic loop is bounded in packets and in time.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::num::NonZeroU32;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use weir_testkit::frame;
use weir_testkit::netns::{self, VethPair};
use weir_xdp::prog::{rx_queue_count, PassPrefix, XdpError, XdpMode, XdpProgram};

/// Sends `count` UDP datagrams from `from` to `to` in `to_ns` and returns
/// how many reached a socket there (bounded: at most 3 s).
fn probe(from: &netns::Netns, to_ns: &netns::Netns, to: Ipv4Addr, count: u32) -> u32 {
    netns::udp_probe(from, to_ns, to, count, Duration::from_secs(3)).expect("udp probe")
}

fn attach_in(pair: &VethPair, mode: XdpMode, pass: &[PassPrefix]) -> Result<XdpProgram, XdpError> {
    pair.a
        .enter(|| XdpProgram::attach(&pair.if_a, mode, pass))
        .expect("enter netns")
}

/// `ip -d link show` of `ifname` in `ns`.
fn link_details(ns: &netns::Netns, ifname: &str) -> String {
    ns.run(&["ip", "-d", "link", "show", "dev", ifname])
        .expect("ip link show")
}

fn mac_of(ns: &netns::Netns, ifname: &str) -> String {
    let path = format!("/sys/class/net/{ifname}/address");
    // /sys must be read from inside the namespace: `cat` under `ip netns
    // exec` gets a sysfs mounted for that namespace.
    ns.run(&["cat", &path]).expect("read MAC").trim().to_owned()
}

#[test]
fn fails_open_without_socket_and_detaches_on_drop() {
    if !netns::require_root() {
        return;
    }
    let pair = VethPair::new("xpo").expect("veth pair");
    let prog = attach_in(&pair, XdpMode::Native, &[]).expect("attach native");
    assert_eq!(prog.ifname(), pair.if_a);
    assert!(prog.ifindex() > 0);

    let details = link_details(&pair.a, &pair.if_a);
    assert!(
        details.contains("prog/xdp"),
        "no XDP program shown:\n{details}"
    );
    assert!(
        !details.contains("xdpgeneric"),
        "native mode expected:\n{details}"
    );

    let before = prog.counters().expect("counters");
    assert_eq!(
        probe(&pair.b, &pair.a, pair.addr_a, 10),
        10,
        "traffic through an empty XSKMAP must reach the kernel (fail-open)"
    );
    let after = prog.counters().expect("counters");
    // 10 echo requests (ARP and IPv6 noise may add more), all passed.
    assert!(
        after.passed_no_socket >= before.passed_no_socket + 10,
        "passed_no_socket {before:?} -> {after:?}"
    );
    assert_eq!(after.redirected, 0);
    assert_eq!(after.passed_by_rule, 0);
    assert_eq!(after.dropped, 0);

    drop(prog);
    let details = link_details(&pair.a, &pair.if_a);
    assert!(
        !details.contains("prog/xdp"),
        "XDP program still attached after drop:\n{details}"
    );
    assert_eq!(
        probe(&pair.b, &pair.a, pair.addr_a, 3),
        3,
        "traffic after detach"
    );
}

#[test]
fn generic_mode_attaches_as_xdpgeneric() {
    if !netns::require_root() {
        return;
    }
    let pair = VethPair::new("xpg").expect("veth pair");
    let prog = attach_in(&pair, XdpMode::Generic, &[]).expect("attach generic");
    let details = link_details(&pair.a, &pair.if_a);
    assert!(
        details.contains("xdpgeneric"),
        "generic mode expected:\n{details}"
    );
    let before = prog.counters().expect("counters");
    assert_eq!(probe(&pair.b, &pair.a, pair.addr_a, 5), 5);
    let after = prog.counters().expect("counters");
    assert!(
        after.passed_no_socket >= before.passed_no_socket + 5,
        "{before:?} -> {after:?}"
    );
    drop(prog);
    assert!(!link_details(&pair.a, &pair.if_a).contains("prog/xdp"));
}

#[test]
fn pass_prefix_counts_passed_by_rule() {
    if !netns::require_root() {
        return;
    }
    let pair = VethPair::new("xpp").expect("veth pair");
    // A second address on a's end: the "management address".
    let mgmt = Ipv4Addr::new(198, 18, 0, 100);
    pair.a
        .run(&[
            "ip",
            "addr",
            "add",
            &format!("{mgmt}/32"),
            "dev",
            &pair.if_a,
        ])
        .expect("add mgmt address");
    pair.b
        .run(&[
            "ip",
            "route",
            "add",
            &format!("{mgmt}/32"),
            "dev",
            &pair.if_b,
        ])
        .expect("route to mgmt address");
    let pass = [
        PassPrefix {
            addr: IpAddr::V4(mgmt),
            len: 32,
        },
        // Host bits set on purpose: normalized to 198.19.10.0/30.
        PassPrefix {
            addr: IpAddr::V4(Ipv4Addr::new(198, 19, 10, 3)),
            len: 30,
        },
    ];
    let mut prog = attach_in(&pair, XdpMode::Native, &pass).expect("attach");
    assert_eq!(prog.pass_prefixes().len(), 2);

    let c0 = prog.counters().expect("counters");
    assert_eq!(probe(&pair.b, &pair.a, mgmt, 10), 10, "to the mgmt address");
    let c1 = prog.counters().expect("counters");
    assert_eq!(
        c1.passed_by_rule - c0.passed_by_rule,
        10,
        "{c0:?} -> {c1:?}"
    );

    // The other address is not in a pass prefix: counted as no-socket.
    assert_eq!(probe(&pair.b, &pair.a, pair.addr_a, 10), 10);
    let c3 = prog.counters().expect("counters");
    assert!(
        c3.passed_no_socket >= c1.passed_no_socket + 10,
        "{c1:?} -> {c3:?}"
    );
    assert_eq!(
        c3.passed_by_rule, c1.passed_by_rule,
        "non-matching counted as rule"
    );

    // Remove the mgmt prefix while attached: its traffic falls through.
    prog.set_pass_prefixes(&pass[1..])
        .expect("replace prefixes");
    assert_eq!(
        prog.pass_prefixes(),
        [PassPrefix {
            addr: IpAddr::V4(Ipv4Addr::new(198, 19, 10, 0)),
            len: 30
        }]
    );
    assert_eq!(probe(&pair.b, &pair.a, mgmt, 10), 10);
    let c4 = prog.counters().expect("counters");
    assert!(
        c4.passed_no_socket >= c3.passed_no_socket + 10,
        "{c3:?} -> {c4:?}"
    );
    assert_eq!(
        c4.passed_by_rule, c3.passed_by_rule,
        "removed prefix still matches"
    );
}

/// An Ethernet frame to `dst_mac` with the given VLAN tags (TPID, VID),
/// then `ethertype` and `payload`, from a locally administered source.
fn eth_frame(dst_mac: [u8; 6], tags: &[(u16, u16)], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let src = [0x02, 0, 0x5e, 0x12, 0x34, 0x56];
    [
        frame::eth_tagged(dst_mac, src, tags, ethertype),
        payload.to_vec(),
    ]
    .concat()
}

/// IPv4 + UDP to `dst:PROBE_PORT` with a valid header checksum.
fn ipv4_udp(dst: Ipv4Addr) -> Vec<u8> {
    let ip = frame::Ipv4 {
        frag: 0x4000, // DF
        src: [198, 18, 0, 2],
        dst: dst.octets(),
        ..frame::Ipv4::default()
    };
    ip.packet(&frame::udp(40000, netns::PROBE_PORT, b"weir-probe raw"))
}

/// IPv6 + UDP to `dst` (the kernel drops it after the program: only the
/// program's decision is tested).
fn ipv6_udp(dst: Ipv6Addr) -> Vec<u8> {
    let ip = frame::Ipv6 {
        src: Ipv4Addr::new(198, 18, 0, 2).to_ipv6_mapped().octets(),
        dst: dst.octets(),
        ..frame::Ipv6::default()
    };
    ip.packet(&frame::udp(40000, netns::PROBE_PORT, b"weir-probe raw"))
}

fn parse_mac(s: &str) -> [u8; 6] {
    let mut mac = [0u8; 6];
    let parts: Vec<u8> = s
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).expect("hex MAC"))
        .collect();
    mac.copy_from_slice(&parts);
    mac
}

#[test]
fn parser_sees_through_vlan_and_qinq_and_handles_odd_frames() {
    if !netns::require_root() {
        return;
    }
    const IPV4: u16 = 0x0800;
    const IPV6: u16 = 0x86dd;
    const Q: u16 = 0x8100;
    const AD: u16 = 0x88a8;
    let pair = VethPair::new("xpv").expect("veth pair");
    let mgmt = Ipv4Addr::new(198, 18, 0, 100);
    // IPv6 stays inside 198.18.0.0/15 too: the IPv4-mapped form.
    let mgmt6 = mgmt.to_ipv6_mapped();
    let pass = [
        PassPrefix {
            addr: IpAddr::V4(mgmt),
            len: 32,
        },
        PassPrefix {
            addr: IpAddr::V6(mgmt6),
            len: 128,
        },
    ];
    let prog = attach_in(&pair, XdpMode::Native, &pass).expect("attach");
    let mac_a = parse_mac(&mac_of(&pair.a, &pair.if_a));

    let matching = vec![
        eth_frame(mac_a, &[], IPV4, &ipv4_udp(mgmt)),
        eth_frame(mac_a, &[(Q, 10)], IPV4, &ipv4_udp(mgmt)),
        eth_frame(mac_a, &[(AD, 100), (Q, 10)], IPV4, &ipv4_udp(mgmt)),
        eth_frame(mac_a, &[], IPV6, &ipv6_udp(mgmt6)),
        eth_frame(mac_a, &[(Q, 10)], IPV6, &ipv6_udp(mgmt6)),
    ];
    let not_matching = vec![
        // Another destination, tagged.
        eth_frame(mac_a, &[(Q, 10)], IPV4, &ipv4_udp(pair.addr_a)),
        // Three tags: beyond what the program parses, so not matched.
        eth_frame(mac_a, &[(AD, 1), (Q, 2), (Q, 3)], IPV4, &ipv4_udp(mgmt)),
        // Truncated inside the tag, and inside the IPv4 header.
        eth_frame(mac_a, &[], Q, &[0x00]),
        eth_frame(mac_a, &[(Q, 10)], IPV4, &ipv4_udp(mgmt)[..12]),
        // Not IP at all.
        eth_frame(mac_a, &[], 0x88cc, &[0u8; 46]),
    ];
    let c0 = prog.counters().expect("counters");
    netns::send_raw_frames(&pair.b, &pair.if_b, &matching).expect("inject matching");
    netns::send_raw_frames(&pair.b, &pair.if_b, &not_matching).expect("inject others");
    // The veth delivers asynchronously (NAPI); wait, bounded, for the counts.
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut c1 = prog.counters().expect("counters");
    while c1.passed_no_socket < c0.passed_no_socket + not_matching.len() as u64
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
        c1 = prog.counters().expect("counters");
    }
    assert_eq!(
        c1.passed_by_rule - c0.passed_by_rule,
        matching.len() as u64,
        "{c0:?} -> {c1:?}"
    );
    // Others (plus any IPv6 noise from b's stack) take the socket path,
    // which is XDP_PASS with no socket registered.
    assert!(
        c1.passed_no_socket - c0.passed_no_socket >= not_matching.len() as u64,
        "{c0:?} -> {c1:?}"
    );
    assert_eq!(c1.dropped, 0);
}

/// AF_XDP socket on a's queue 0 (copy mode: veth has no zero-copy),
/// created with libxdp's program loading inhibited. Returns everything the
/// test needs to drive it.
struct Xsk {
    umem: xsk_rs::Umem,
    descs: Vec<xsk_rs::FrameDesc>,
    rx: xsk_rs::RxQueue,
    // Held so the socket and its fill ring stay alive.
    _tx: xsk_rs::TxQueue,
    _fq: xsk_rs::FillQueue,
    _cq: xsk_rs::CompQueue,
}

const XSK_FRAMES: u32 = 64;

fn make_xsk(ifname: &str) -> Xsk {
    use xsk_rs::config::{BindFlags, Interface, LibxdpFlags, SocketConfig, UmemConfig};

    let frames = NonZeroU32::new(XSK_FRAMES).expect("nonzero");
    let (umem, descs) =
        xsk_rs::Umem::new(UmemConfig::default(), frames, false).expect("create UMEM");
    let config = SocketConfig::builder()
        .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
        .bind_flags(BindFlags::XDP_COPY)
        .build();
    let iface: Interface = ifname.parse().expect("interface name");
    // SAFETY: the UMEM is not shared (this is its only socket), so the
    // shared-UMEM precondition of Socket::new does not apply; program
    // loading is inhibited anyway.
    let (tx, rx, rings) =
        unsafe { xsk_rs::Socket::new(config, &umem, &iface, 0) }.expect("create AF_XDP socket");
    let (mut fq, cq) = rings.expect("first socket on this UMEM gets the fill/comp rings");
    // SAFETY: every descriptor came from this UMEM and none is in use.
    let filled = unsafe { fq.produce(&descs) };
    assert_eq!(filled, descs.len(), "fill ring takes all frames");
    Xsk {
        umem,
        descs,
        rx,
        _tx: tx,
        _fq: fq,
        _cq: cq,
    }
}

/// Consumes from the rx ring until `want` frames or `timeout`; returns the
/// frames' bytes.
fn receive(xsk: &mut Xsk, want: usize, timeout: Duration) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut descs = xsk.descs.clone();
    while got.len() < want && Instant::now() < deadline {
        // SAFETY: `descs` are scratch descriptors of this UMEM; consume
        // overwrites them with what the kernel filled.
        let n = unsafe { xsk.rx.poll_and_consume(&mut descs, 100) }.expect("poll rx ring");
        for d in descs.iter().take(n) {
            // SAFETY: the descriptor came off this UMEM's rx ring, so the
            // kernel is done with the frame; it is not handed back to the
            // fill ring while this read runs (the test never refills).
            let data = unsafe { xsk.umem.data(d) };
            got.push(data.contents().to_vec());
        }
    }
    got
}

#[test]
fn redirects_to_registered_socket_then_passes_after_unregister() {
    if !netns::require_root() {
        return;
    }
    let pair = VethPair::new("xpr").expect("veth pair");
    // A static neighbour on b, so b sends IP straight away instead of ARP
    // requests (which would be redirected too and never answered).
    let mac_a = mac_of(&pair.a, &pair.if_a);
    pair.b
        .run(&[
            "ip",
            "neigh",
            "replace",
            &pair.addr_a.to_string(),
            "lladdr",
            &mac_a,
            "dev",
            &pair.if_b,
            "nud",
            "permanent",
        ])
        .expect("static neighbour");

    let (mut prog, mut xsk) = pair
        .a
        .enter(|| {
            let prog = XdpProgram::attach(&pair.if_a, XdpMode::Native, &[]).expect("attach");
            (prog, make_xsk(&pair.if_a))
        })
        .expect("enter netns");
    let fd = xsk.rx.fd().as_raw_fd();
    prog.register_socket(0, fd)
        .expect("register socket on queue 0");

    let c0 = prog.counters().expect("counters");
    // The datagrams go to the AF_XDP socket, not to a's stack.
    assert_eq!(
        probe(&pair.b, &pair.a, pair.addr_a, 8),
        0,
        "while redirected, nothing may reach a's stack"
    );
    let frames = receive(&mut xsk, 8, Duration::from_secs(5));
    let c1 = prog.counters().expect("counters");

    let port = netns::PROBE_PORT.to_be_bytes();
    let probes = frames
        .iter()
        .filter(|f| {
            // Ethernet + IPv4 without options + UDP to addr_a:PROBE_PORT.
            f.len() >= 52
                && f[12..14] == [0x08, 0x00]
                && f[14] == 0x45
                && f[23] == 17
                && f[30..34] == pair.addr_a.octets()
                && f[36..38] == port
                && f[42..].starts_with(b"weir-probe ")
        })
        .count();
    assert!(
        probes >= 8,
        "saw {probes} probes in {} frames on the socket",
        frames.len()
    );
    assert!(c1.redirected >= c0.redirected + 8, "{c0:?} -> {c1:?}");
    assert_eq!(c1.passed_no_socket, c0.passed_no_socket, "{c0:?} -> {c1:?}");

    prog.unregister_socket(0).expect("unregister");
    prog.unregister_socket(0)
        .expect("unregistering twice is fine");
    assert_eq!(
        probe(&pair.b, &pair.a, pair.addr_a, 5),
        5,
        "after unregister the kernel gets traffic again"
    );
    let c2 = prog.counters().expect("counters");
    assert!(
        c2.passed_no_socket >= c1.passed_no_socket + 5,
        "{c1:?} -> {c2:?}"
    );
    assert_eq!(c2.redirected, c1.redirected, "redirected after unregister");
    drop(xsk);
    drop(prog);
}

#[test]
fn errors_name_the_problem_and_the_fix() {
    // Needs no root: nothing is created.
    let name = format!("weirnx{}", std::process::id() % 100_000);
    match XdpProgram::attach(&name, XdpMode::Native, &[]) {
        Err(e @ XdpError::NoSuchInterface { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(&name), "{msg}");
        }
        other => panic!("expected NoSuchInterface, got {other:?}"),
    }
    assert!(matches!(
        rx_queue_count(&name),
        Err(XdpError::NoSuchInterface { .. })
    ));
    let bad = PassPrefix {
        addr: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)),
        len: 40,
    };
    assert!(matches!(
        XdpProgram::attach("lo", XdpMode::Generic, &[bad]),
        Err(XdpError::InvalidPrefix { .. })
    ));
}

#[test]
fn queue_counts_come_from_the_callers_namespace() {
    if !netns::require_root() {
        return;
    }
    let pair = VethPair::with_queues("xpq", Some(3)).expect("veth pair with 3 queues");
    let (veth, bridge) = pair
        .a
        .enter(|| {
            // A bridge has no ETHTOOL_GCHANNELS: this takes the netlink path.
            netns::run_cmd(&["ip", "link", "add", "wbr0", "type", "bridge"]).expect("add bridge");
            (rx_queue_count(&pair.if_a), rx_queue_count("wbr0"))
        })
        .expect("enter netns");
    assert_eq!(veth.expect("veth queues"), 3);
    assert_eq!(bridge.expect("bridge queues"), 1);
    // Not visible from this (the test's own) namespace.
    assert!(matches!(
        rx_queue_count(&pair.if_a),
        Err(XdpError::NoSuchInterface { .. })
    ));
}

#[test]
fn queue_out_of_range_and_bad_socket_are_refused() {
    if !netns::require_root() {
        return;
    }
    let pair = VethPair::with_queues("xpe", Some(2)).expect("veth pair");
    let mut prog = attach_in(&pair, XdpMode::Native, &[]).expect("attach");
    assert_eq!(prog.rx_queues(), 2);

    let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp socket");
    match prog.register_socket(2, udp.as_raw_fd()) {
        Err(
            e @ XdpError::QueueOutOfRange {
                queue: 2,
                rx_queues: 2,
                ..
            },
        ) => {
            assert!(e.to_string().contains("ethtool -L"), "{e}");
        }
        other => panic!("expected QueueOutOfRange, got {other:?}"),
    }
    assert!(matches!(
        prog.register_socket(1000, udp.as_raw_fd()),
        Err(XdpError::QueueBeyondMap { .. })
    ));
    assert!(matches!(
        prog.unregister_socket(2),
        Err(XdpError::QueueOutOfRange { .. })
    ));
    // Not an AF_XDP socket: the kernel refuses it, the message says why.
    match prog.register_socket(1, udp.as_raw_fd()) {
        Err(e @ XdpError::Map { .. }) => assert!(e.to_string().contains("AF_XDP"), "{e}"),
        other => panic!("expected a Map error, got {other:?}"),
    }
}

#[test]
fn second_attach_is_refused_with_a_hint() {
    if !netns::require_root() {
        return;
    }
    let pair = VethPair::new("xp2").expect("veth pair");
    let first = attach_in(&pair, XdpMode::Native, &[]).expect("first attach");
    for mode in [XdpMode::Native, XdpMode::Generic] {
        match attach_in(&pair, mode, &[]) {
            Err(e @ XdpError::Attach { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains("xdp off"), "hint missing: {msg}");
                assert!(msg.contains(&pair.if_a), "interface missing: {msg}");
                assert!(msg.contains("os error"), "errno missing: {msg}");
            }
            other => panic!("second attach ({mode}) should fail, got {other:?}"),
        }
    }
    // The first one is untouched.
    assert!(link_details(&pair.a, &pair.if_a).contains("prog/xdp"));
    assert_eq!(probe(&pair.b, &pair.a, pair.addr_a, 3), 3);
    assert!(first.counters().expect("counters").passed_no_socket >= 3);
}

#[test]
fn xdp_program_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<XdpProgram>();
}
