//! Shared by the `run_*` tests: a three-namespace topology with weir in the
//! middle, traffic generators bounded in count and time, and shaper specs.
//!
//! ```text
//! ns A (198.18.0.1/24) if_a ══ if_in  [ns GW: weir, no IPs]  if_out ══ if_b (198.18.0.2/24) ns B
//! ```
//!
//! Everything lives in namespaces made here (cleaned up by `Drop`, also
//! when a test fails), on addresses from 198.18.0.0/15 only.

#![allow(dead_code)]

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use weir_dataplane::htb::{ClassSpec, HtbSpec};
use weir_dataplane::qdisc::{FifoLimit, QdiscParams};
use weir_dataplane::shaper::{MalformedPolicy, ShaperSpec};
use weir_xdp::datapath::{DataPath, RunError, RunSpec};

use weir_testkit::cmd::KillOnDrop;
use weir_testkit::frame;
use weir_testkit::netns::{self, Netns};

/// The tests here load the 2-core VM heavily (a flood plus weir's workers):
/// run them one at a time.
pub static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct Topo {
    pub a: Netns,
    pub gw: Netns,
    pub b: Netns,
    pub if_a: String,
    pub if_in: String,
    pub if_out: String,
    pub if_b: String,
    pub addr_a: Ipv4Addr,
    pub addr_b: Ipv4Addr,
}

impl Topo {
    /// Build A ══ GW ══ B; `queues` rx/tx queues on every veth end.
    pub fn new(tag: &str, queues: u32) -> io::Result<Topo> {
        let a = Netns::new(&format!("{tag}-a"))?;
        let gw = Netns::new(&format!("{tag}-g"))?;
        let b = Netns::new(&format!("{tag}-b"))?;
        let if_a = netns::ifname(tag, 'a');
        let if_in = netns::ifname(tag, 'i');
        let if_out = netns::ifname(tag, 'o');
        let if_b = netns::ifname(tag, 'b');
        for (ns1, i1, ns2, i2) in [(&a, &if_a, &gw, &if_in), (&gw, &if_out, &b, &if_b)] {
            netns::create_veth(ns1, i1, ns2, i2, Some(queues))?;
        }
        for (ns, i) in [(&a, &if_a), (&gw, &if_in), (&gw, &if_out), (&b, &if_b)] {
            // Frames must fit one UMEM frame: no TSO/GSO/GRO super-frames.
            // And no tx checksum offload: a veth hands a local socket's
            // frame on with the checksum left for "hardware" to fill in;
            // once it has been through an AF_XDP socket it is a plain frame
            // with a wrong checksum, and B drops it. Real NICs put full
            // checksums on the wire.
            ns.run(&[
                "ethtool", "-K", i, "tso", "off", "gso", "off", "gro", "off", "tx", "off",
            ])?;
            ns.run(&["ip", "link", "set", i, "up"])?;
        }
        let addr_a = Ipv4Addr::new(198, 18, 0, 1);
        let addr_b = Ipv4Addr::new(198, 18, 0, 2);
        a.run(&["ip", "addr", "add", &format!("{addr_a}/24"), "dev", &if_a])?;
        b.run(&["ip", "addr", "add", &format!("{addr_b}/24"), "dev", &if_b])?;
        Ok(Topo {
            a,
            gw,
            b,
            if_a,
            if_in,
            if_out,
            if_b,
            addr_a,
            addr_b,
        })
    }

    /// Start weir in the GW namespace (its workers inherit it).
    pub fn start(&self, spec: RunSpec) -> Result<DataPath, RunError> {
        self.gw
            .enter(move || DataPath::start(spec))
            .expect("enter GW namespace")
    }
}

/// One leaf, the root: `rate` bytes/s, pfifo of `limit` packets.
pub fn pfifo_root(rate: u64, limit: u32) -> ShaperSpec {
    ShaperSpec {
        htb: HtbSpec {
            classes: vec![ClassSpec {
                id: 0,
                parent: None,
                rate,
                ceil: rate,
                burst: 15_140,
                cburst: 15_140,
                prio: 0,
                quantum: 1514,
                qdisc: Some(QdiscParams::Fifo(FifoLimit::Packets(limit))),
            }],
            overhead: 0,
            mpu: 0,
            pool_capacity: 8192,
            seed: 1,
            spare_leaves: 0,
        },
        filters: vec![],
        default_class: 0,
        malformed: MalformedPolicy::Default,
        apps: weir_dataplane::app::AppsSpec::empty(),
        class_remark: Vec::new(),
        wash: false,
    }
}

/// ICMP echo from namespace `from` to `to`: how many of `count` requests
/// (200 ms apart) got a reply within `timeout` overall. A raw ICMP socket
/// made in Rust: no dependency on `ping`.
pub fn ping(from: &Netns, to: Ipv4Addr, count: u16, timeout: Duration) -> io::Result<u16> {
    from.enter(move || -> io::Result<u16> {
        // SAFETY: plain syscall with integer arguments.
        let fd = unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::IPPROTO_ICMP,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh socket nothing else owns.
        let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        let raw = std::os::fd::AsRawFd::as_raw_fd(&sock);
        let id: u16 = (std::process::id() & 0xffff) as u16;
        // SAFETY: sockaddr_in is plain data; all-zero is valid.
        let mut dst: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        dst.sin_family = libc::AF_INET as u16;
        dst.sin_addr.s_addr = u32::from(to).to_be();
        let deadline = Instant::now() + timeout;
        let mut replies = std::collections::HashSet::new();
        let mut sent = 0u16;
        let mut next_send = Instant::now();
        while Instant::now() < deadline && (replies.len() as u16) < count {
            if sent < count && Instant::now() >= next_send {
                let mut pkt = [0u8; 16];
                pkt[0] = 8;
                pkt[4..6].copy_from_slice(&id.to_be_bytes());
                pkt[6..8].copy_from_slice(&sent.to_be_bytes());
                pkt[8..16].copy_from_slice(b"weirping");
                let sum = frame::checksum(&pkt);
                pkt[2..4].copy_from_slice(&sum.to_be_bytes());
                // SAFETY: buffers valid for the lengths passed.
                let rc = unsafe {
                    libc::sendto(
                        raw,
                        pkt.as_ptr().cast(),
                        pkt.len(),
                        0,
                        (&dst as *const libc::sockaddr_in).cast(),
                        std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                    )
                };
                if rc < 0 {
                    return Err(io::Error::last_os_error());
                }
                sent += 1;
                next_send = Instant::now() + Duration::from_millis(200);
            }
            let mut pfd = libc::pollfd {
                fd: raw,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let n = unsafe { libc::poll(&mut pfd, 1, 50) };
            if n <= 0 {
                continue;
            }
            let mut buf = [0u8; 1500];
            // SAFETY: buffer valid for its length.
            let len =
                unsafe { libc::recv(raw, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
            if len < 28 {
                continue;
            }
            let ihl = usize::from(buf[0] & 0x0f) * 4;
            let icmp = &buf[ihl..len as usize];
            let src = Ipv4Addr::new(buf[12], buf[13], buf[14], buf[15]);
            if icmp.len() >= 8 && icmp[0] == 0 && src == to && icmp[4..6] == id.to_be_bytes() {
                replies.insert(u16::from_be_bytes([icmp[6], icmp[7]]));
            }
        }
        Ok(replies.len() as u16)
    })?
}

/// A paced UDP flood from `from` to `dst`, `payload` bytes per datagram,
/// at `bits_per_s` (of IP payload, like iperf3 -b) for `duration`, from
/// `flows` source sockets (round robin). Bounded: stops at the duration or
/// after `max_packets`. Returns datagrams sent.
pub fn udp_flood(
    from: &Netns,
    dst: SocketAddrV4,
    payload: usize,
    bits_per_s: u64,
    duration: Duration,
    flows: usize,
    max_packets: u64,
) -> io::Result<u64> {
    from.enter(move || -> io::Result<u64> {
        let socks: Vec<UdpSocket> = (0..flows.max(1))
            .map(|_| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)))
            .collect::<io::Result<_>>()?;
        let buf = vec![0x5au8; payload];
        let per_packet_ns = (payload as u64 * 8).saturating_mul(1_000_000_000) / bits_per_s.max(1);
        let start = Instant::now();
        let mut sent = 0u64;
        while start.elapsed() < duration && sent < max_packets {
            let due = Duration::from_nanos(sent.saturating_mul(per_packet_ns));
            let el = start.elapsed();
            if due > el {
                std::thread::sleep((due - el).min(Duration::from_millis(2)));
                continue;
            }
            // ENOBUFS/EAGAIN under load: the datagram is lost, keep pacing.
            let _ = socks[(sent as usize) % socks.len()].send_to(&buf, dst);
            sent += 1;
        }
        Ok(sent)
    })?
}

/// `iperf3 -s -1` in `ns` on `port`, bounded by `timeout` seconds.
pub fn iperf3_server(ns: &Netns, port: u16, timeout_s: u32) -> io::Result<KillOnDrop> {
    let child = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns.name(),
            "timeout",
            &timeout_s.to_string(),
            "iperf3",
            "-s",
            "-1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let server = KillOnDrop(child);
    netns::wait_listening(ns.name(), port, Duration::from_secs(5))?;
    Ok(server)
}

/// Run an iperf3 client in `ns` (bounded by `timeout`); returns its JSON.
pub fn iperf3_client(ns: &Netns, args: &[&str], timeout_s: u32) -> io::Result<String> {
    let mut v = vec![
        "timeout",
        &*Box::leak(timeout_s.to_string().into_boxed_str()),
        "iperf3",
        "-J",
    ];
    v.extend_from_slice(args);
    ns.run(&v)
}

/// A number at `"key": <n>` after the `section` marker in iperf3's JSON
/// (good enough for the end summary; no JSON dependency).
pub fn json_number(json: &str, section: &str, key: &str) -> Option<f64> {
    let at = json.find(section)?;
    let rest = &json[at..];
    let k = rest.find(&format!("\"{key}\""))?;
    let after = &rest[k + key.len() + 2..];
    let colon = after.find(':')?;
    let num: String = after[colon + 1..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == 'e' || *c == '-' || *c == '+')
        .collect();
    num.parse().ok()
}
