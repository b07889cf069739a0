//! Transparent forwarding: frames that are not plain IP (an unknown
//! ethertype, VLAN-tagged, a truncated IPv4 header) cross weir like
//! everything else, shaped by the default class and counted (root; real
//! veth in throwaway namespaces).

mod datapath_support;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use datapath_support::{pfifo_root, serial, Topo};
use weir_testkit::frame::eth;
use weir_testkit::netns;
use weir_xdp::datapath::{PairSpec, RunSpec, TreeSpec};

const MARK: &[u8] = b"weir-raw-";

fn frame(ethertype: u16, body: &[u8], n: u8) -> Vec<u8> {
    let broadcast = [0xff; 6];
    let mut f = eth(broadcast, [0x02, 0x00, 0x5e, 0x10, 0x00, 0x01], ethertype);
    f.extend_from_slice(body);
    f.extend_from_slice(MARK);
    f.push(b'0' + n);
    f.resize(f.len().max(60), 0);
    f
}

/// Frames carrying [`MARK`] seen on `ifname` in `ns` within `timeout`,
/// by their mark digit. Starts capturing before `send` runs.
fn capture_while(
    ns: &netns::Netns,
    ifname: &str,
    timeout: Duration,
    send: impl FnOnce(),
) -> Vec<u8> {
    let ifname = std::ffi::CString::new(ifname).unwrap();
    let sock = ns
        .enter(|| -> std::io::Result<OwnedFd> {
            let proto = (libc::ETH_P_ALL as u16).to_be() as i32;
            // SAFETY: plain syscall with integer arguments.
            let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, proto) };
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // SAFETY: `fd` is fresh and owned by nothing else.
            let sock = unsafe { OwnedFd::from_raw_fd(fd) };
            // SAFETY: valid NUL-terminated string.
            let ifindex = unsafe { libc::if_nametoindex(ifname.as_ptr()) };
            // SAFETY: sockaddr_ll is plain data; zero is valid.
            let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_protocol = proto as u16;
            addr.sll_ifindex = ifindex as i32;
            // SAFETY: `addr` is valid for its size.
            let rc = unsafe {
                libc::bind(
                    sock.as_raw_fd(),
                    (&addr as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            if rc < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(sock)
        })
        .unwrap()
        .unwrap();
    send();
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        let mut pfd = libc::pollfd {
            fd: sock.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, 50) } <= 0 {
            continue;
        }
        let mut buf = [0u8; 2048];
        // SAFETY: buffer valid for its length.
        let n = unsafe {
            libc::recv(
                sock.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n <= 0 {
            continue;
        }
        let b = &buf[..n as usize];
        if let Some(i) = b.windows(MARK.len()).position(|w| w == MARK) {
            if let Some(&d) = b.get(i + MARK.len()) {
                if !seen.contains(&d) {
                    seen.push(d);
                }
            }
        }
    }
    seen.sort_unstable();
    seen
}

#[test]
fn non_ip_vlan_and_truncated_frames_are_forwarded() {
    if !netns::require_root() {
        return;
    }
    let _serial = serial();
    let topo = Topo::new("rtr", 1).expect("topology");
    let mut pair = PairSpec::new("p", &topo.if_in, &topo.if_out);
    pair.upload = Some(TreeSpec {
        name: "up".into(),
        shaper: pfifo_root(12_500_000, 1000),
    });
    let dp = topo
        .start(RunSpec {
            pairs: vec![pair],
            ..RunSpec::default()
        })
        .expect("start weir");
    let frames = vec![
        // Local experimental ethertype: not IP at all.
        frame(0x88b5, b"", 0),
        // 802.1Q VLAN 10 around a (junk) IPv4 payload.
        frame(0x8100, &[0x00, 0x0a, 0x08, 0x00, 0x45, 0x00], 1),
        // IPv4 ethertype, header truncated / garbage.
        frame(0x0800, &[0x4f, 0xff, 0x00], 2),
        // QinQ: two tags.
        frame(0x88a8, &[0x00, 0x05, 0x81, 0x00, 0x00, 0x0a, 0x88, 0xb5], 3),
    ];
    let seen = capture_while(&topo.b, &topo.if_b, Duration::from_secs(2), || {
        netns::send_raw_frames(&topo.a, &topo.if_a, &frames).expect("send raw frames");
    });
    assert_eq!(seen, b"0123".to_vec(), "frames that crossed weir");
    let snap = dp.snapshot().unwrap();
    let up = snap.tree("up").unwrap();
    assert!(up.frames.received >= 4 && up.frames.sent >= 4, "{up:?}");
    assert!(up.frames.malformed_seen >= 1, "{up:?}");
    let report = dp.stop().unwrap();
    assert!(report.balanced && report.umem_free_or_fill, "{report:#?}");
}
