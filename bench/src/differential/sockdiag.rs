//! The TCP sockets of another network namespace, read through a
//! NETLINK_SOCK_DIAG socket opened in it (what `ss -ti` reads, without
//! starting a process): each established IPv4 connection's ports and the
//! counters of its `tcp_info`.
//!
//! In-process because of the clock: a sample taken by running `ss`
//! carries the time it took to start and to end the process, which on a
//! loaded 2-vCPU VM (two busy loops beside compiling jobs) was long
//! enough to make a 10 s window 1 % short and a class's rate 1 % high.
//! Here a dump is one send and a few receives; [`DiagSocket::established`]
//! says how long it took, and the caller takes the middle.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::thread;
use std::time::Instant;

/// linux/sock_diag.h: the request type of an inet_diag_req_v2 dump.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// linux/netlink.h.
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 0x2;
const NLMSG_DONE: u16 = 0x3;
/// linux/inet_diag.h: the attribute that carries struct tcp_info.
const INET_DIAG_INFO: u16 = 2;
/// include/net/tcp_states.h.
const TCP_ESTABLISHED: u32 = 1;
/// sizeof(struct nlmsghdr), sizeof(struct inet_diag_msg).
const NLMSG_HDR: usize = 16;
const INET_DIAG_MSG: usize = 72;
/// Offsets in struct tcp_info (linux/tcp.h; the layout only grows at its
/// end, so these hold on every kernel that has bytes_sent, 4.19 on).
const TI_SND_MSS: usize = 16;
const TI_PMTU: usize = 60;
const TI_RTT_US: usize = 68;
const TI_TOTAL_RETRANS: usize = 100;
const TI_BYTES_ACKED: usize = 120;
const TI_BYTES_RECEIVED: usize = 128;
const TI_DATA_SEGS_IN: usize = 152;
const TI_DATA_SEGS_OUT: usize = 156;
const TI_BYTES_SENT: usize = 200;
const TI_MIN_LEN: usize = TI_BYTES_SENT + 8;

/// One established connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpSock {
    pub sport: u16,
    pub dport: u16,
    pub bytes_received: u64,
    /// Segments with data that arrived, in order or not, retransmitted or
    /// not (RFC 4898 tcpEStatsPerfDataSegsIn).
    pub data_segs_in: u32,
    /// Segments with data sent, and their payload bytes, retransmissions
    /// included (tcpEStatsPerfDataSegsOut, tcpEStatsPerfHCDataOctetsOut).
    pub data_segs_out: u32,
    pub bytes_sent: u64,
    pub bytes_acked: u64,
    pub total_retrans: u32,
    /// Smoothed RTT, µs.
    pub rtt_us: u32,
    pub snd_mss: u32,
    pub pmtu: u32,
}

/// A sock_diag socket that lives in one namespace.
pub struct DiagSocket {
    fd: OwnedFd,
    ns: String,
}

impl DiagSocket {
    /// Opens the socket inside `/run/netns/<ns>`. setns(CLONE_NEWNET)
    /// moves only the calling thread, so a thread of its own does it; the
    /// socket stays in that namespace for its life, whichever thread uses
    /// it.
    pub fn open(ns: &str) -> Result<DiagSocket, String> {
        let path = format!("/run/netns/{ns}");
        let file = File::open(&path).map_err(|e| format!("opening {path}: {e}"))?;
        let fd = thread::scope(|s| {
            s.spawn(|| -> Result<OwnedFd, String> {
                // SAFETY: setns(2) on an fd we hold open; it changes this
                // short-lived thread's namespace only.
                if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(format!(
                        "setns({path}): {}",
                        std::io::Error::last_os_error()
                    ));
                }
                // SAFETY: socket(2) with constant arguments; the fd it
                // returns is checked and then owned by the OwnedFd alone.
                let raw = unsafe {
                    libc::socket(
                        libc::AF_NETLINK,
                        libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                        4, // NETLINK_SOCK_DIAG
                    )
                };
                if raw < 0 {
                    return Err(format!(
                        "sock_diag socket in {ns}: {}",
                        std::io::Error::last_os_error()
                    ));
                }
                // SAFETY: raw is a fresh, valid fd nobody else owns.
                Ok(unsafe { OwnedFd::from_raw_fd(raw) })
            })
            .join()
            .map_err(|_| format!("the thread that entered {ns} panicked"))?
        })?;
        Ok(DiagSocket {
            fd,
            ns: ns.to_owned(),
        })
    }

    /// Every established IPv4 TCP connection of the namespace, and the
    /// instants just before the request and just after the dump ended.
    pub fn established(&self) -> Result<(Vec<TcpSock>, Instant, Instant), String> {
        let mut req = [0u8; NLMSG_HDR + 56];
        let len = req.len() as u32;
        req[0..4].copy_from_slice(&len.to_ne_bytes());
        req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        req[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        // inet_diag_req_v2: family, protocol, ext (1 << (INET_DIAG_INFO
        // - 1): tcp_info), pad, states; the socket id stays zero (all).
        req[NLMSG_HDR] = libc::AF_INET as u8;
        req[NLMSG_HDR + 1] = libc::IPPROTO_TCP as u8;
        req[NLMSG_HDR + 2] = 1 << (INET_DIAG_INFO - 1);
        req[NLMSG_HDR + 4..NLMSG_HDR + 8].copy_from_slice(&(1u32 << TCP_ESTABLISHED).to_ne_bytes());
        let before = Instant::now();
        // SAFETY: send(2) of a buffer we own, with its length; the kernel
        // is the netlink socket's default peer.
        let sent = unsafe { libc::send(self.fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
        if sent != req.len() as isize {
            return Err(format!(
                "sock_diag request in {}: {}",
                self.ns,
                std::io::Error::last_os_error()
            ));
        }
        let mut socks = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: recv(2) into a buffer we own, at most its length.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(format!(
                    "sock_diag dump in {}: {}",
                    self.ns,
                    std::io::Error::last_os_error()
                ));
            }
            if parse_dump(&buf[..n as usize], &mut socks)
                .map_err(|e| format!("sock_diag dump in {}: {e}", self.ns))?
            {
                return Ok((socks, before, Instant::now()));
            }
        }
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_ne_bytes(x)
}

/// The netlink messages of one datagram; true once NLMSG_DONE came.
fn parse_dump(mut b: &[u8], out: &mut Vec<TcpSock>) -> Result<bool, String> {
    while b.len() >= NLMSG_HDR {
        let len = u32_at(b, 0) as usize;
        if len < NLMSG_HDR || len > b.len() {
            return Err(format!("a message of {len} bytes in {} left", b.len()));
        }
        let msg = &b[NLMSG_HDR..len];
        match u16_at(b, 4) {
            NLMSG_DONE => return Ok(true),
            NLMSG_ERROR => {
                let errno = if msg.len() >= 4 {
                    -(u32_at(msg, 0) as i32)
                } else {
                    0
                };
                return Err(format!(
                    "the kernel answered {}",
                    std::io::Error::from_raw_os_error(errno)
                ));
            }
            SOCK_DIAG_BY_FAMILY if msg.len() >= INET_DIAG_MSG => {
                // inet_diag_msg: family, state, timer, retrans, then the
                // id: sport and dport in network order.
                let mut s = TcpSock {
                    sport: u16::from_be_bytes([msg[4], msg[5]]),
                    dport: u16::from_be_bytes([msg[6], msg[7]]),
                    ..TcpSock::default()
                };
                let mut attrs = &msg[INET_DIAG_MSG..];
                while attrs.len() >= 4 {
                    let alen = usize::from(u16_at(attrs, 0));
                    if alen < 4 || alen > attrs.len() {
                        break;
                    }
                    let info = &attrs[4..alen];
                    if u16_at(attrs, 2) == INET_DIAG_INFO && info.len() >= TI_MIN_LEN {
                        s.snd_mss = u32_at(info, TI_SND_MSS);
                        s.pmtu = u32_at(info, TI_PMTU);
                        s.rtt_us = u32_at(info, TI_RTT_US);
                        s.total_retrans = u32_at(info, TI_TOTAL_RETRANS);
                        s.bytes_acked = u64_at(info, TI_BYTES_ACKED);
                        s.bytes_received = u64_at(info, TI_BYTES_RECEIVED);
                        s.data_segs_in = u32_at(info, TI_DATA_SEGS_IN);
                        s.data_segs_out = u32_at(info, TI_DATA_SEGS_OUT);
                        s.bytes_sent = u64_at(info, TI_BYTES_SENT);
                    }
                    // Attributes are padded to 4 bytes.
                    attrs = &attrs[((alen + 3) & !3).min(attrs.len())..];
                }
                out.push(s);
            }
            _ => {}
        }
        // Messages are padded to 4 bytes.
        b = &b[((len + 3) & !3).min(b.len())..];
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One SOCK_DIAG_BY_FAMILY message with a tcp_info attribute, as the
    /// kernel lays it out.
    fn message(sport: u16, dport: u16, received: u64, retrans: u32) -> Vec<u8> {
        let mut info = vec![0u8; 232];
        info[TI_SND_MSS..TI_SND_MSS + 4].copy_from_slice(&1448u32.to_ne_bytes());
        info[TI_PMTU..TI_PMTU + 4].copy_from_slice(&1500u32.to_ne_bytes());
        info[TI_RTT_US..TI_RTT_US + 4].copy_from_slice(&403_000u32.to_ne_bytes());
        info[TI_TOTAL_RETRANS..TI_TOTAL_RETRANS + 4].copy_from_slice(&retrans.to_ne_bytes());
        info[TI_BYTES_RECEIVED..TI_BYTES_RECEIVED + 8].copy_from_slice(&received.to_ne_bytes());
        info[TI_DATA_SEGS_IN..TI_DATA_SEGS_IN + 4].copy_from_slice(&(retrans + 1000).to_ne_bytes());
        info[TI_DATA_SEGS_OUT..TI_DATA_SEGS_OUT + 4].copy_from_slice(&(retrans + 7).to_ne_bytes());
        info[TI_BYTES_SENT..TI_BYTES_SENT + 8].copy_from_slice(&(received + 3).to_ne_bytes());
        let mut m = vec![0u8; NLMSG_HDR + INET_DIAG_MSG];
        m[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        m[NLMSG_HDR + 4..NLMSG_HDR + 6].copy_from_slice(&sport.to_be_bytes());
        m[NLMSG_HDR + 6..NLMSG_HDR + 8].copy_from_slice(&dport.to_be_bytes());
        // An attribute the parser skips, 5 bytes long (padded to 8).
        m.extend_from_slice(&5u16.to_ne_bytes());
        m.extend_from_slice(&1u16.to_ne_bytes());
        m.extend_from_slice(&[7, 0, 0, 0]);
        m.extend_from_slice(&((4 + info.len()) as u16).to_ne_bytes());
        m.extend_from_slice(&INET_DIAG_INFO.to_ne_bytes());
        m.extend_from_slice(&info);
        let len = m.len() as u32;
        m[0..4].copy_from_slice(&len.to_ne_bytes());
        m
    }

    #[test]
    fn dump_messages_give_ports_and_tcp_info() {
        let mut dgram = message(5201, 40000, 5_000_000_000, 0);
        dgram.extend(message(40002, 5202, 0, 57));
        let mut out = Vec::new();
        assert_eq!(parse_dump(&dgram, &mut out), Ok(false), "no DONE yet");
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].sport, out[0].dport), (5201, 40000));
        assert_eq!(out[0].bytes_received, 5_000_000_000);
        assert_eq!(
            (out[0].snd_mss, out[0].pmtu, out[0].rtt_us),
            (1448, 1500, 403_000)
        );
        assert_eq!((out[1].dport, out[1].total_retrans), (5202, 57));
        assert_eq!((out[0].data_segs_in, out[1].data_segs_in), (1000, 1057));
        assert_eq!((out[1].data_segs_out, out[1].bytes_sent), (64, 3));
        let mut done = vec![0u8; 20];
        done[0..4].copy_from_slice(&20u32.to_ne_bytes());
        done[4..6].copy_from_slice(&NLMSG_DONE.to_ne_bytes());
        assert_eq!(parse_dump(&done, &mut out), Ok(true));
        let mut err = done.clone();
        err[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        err[16..20].copy_from_slice(&(-(libc::EPERM)).to_ne_bytes());
        assert!(parse_dump(&err, &mut out)
            .unwrap_err()
            .contains("not permitted"));
        // A length that runs past the datagram is an error, not a panic.
        let mut bad = done;
        bad[0..4].copy_from_slice(&400u32.to_ne_bytes());
        assert!(parse_dump(&bad, &mut out).is_err());
    }
}
