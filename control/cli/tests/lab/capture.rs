//! Packet captures in the lab: tcpdump writes what a host's port receives
//! into a pcap file, read back here, so tests check the bytes that
//! arrived (DSCP, checksums, who sent them).

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::{Host, Lab};

/// One IPv4 frame of a capture.
#[derive(Clone, Debug)]
pub struct Packet {
    /// Seconds (capture clock).
    pub ts: f64,
    pub tos: u8,
    /// The IPv4 identification: tells the packets of one flow apart.
    pub id: u16,
    pub proto: u8,
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub sport: u16,
    pub dport: u16,
    /// Bytes after the TCP or UDP header (0 for other protocols).
    pub payload: usize,
    /// The IPv4 header checksum verifies.
    pub cksum_ok: bool,
}

/// A dotted quad as its four bytes.
pub fn ip(addr: &str) -> [u8; 4] {
    let v: Vec<u8> = addr
        .split('.')
        .map(|o| o.parse().expect("dotted quad"))
        .collect();
    v.try_into().expect("four octets")
}

/// The IPv4 frames of a classic pcap file with Ethernet link type (what
/// `tcpdump -w` writes); other frames are left out.
pub fn read_pcap(path: &Path) -> Vec<Packet> {
    let b = fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert!(b.len() >= 24, "{}: no pcap header", path.display());
    let (be, nanos) = match b[..4] {
        [0xd4, 0xc3, 0xb2, 0xa1] => (false, false),
        [0x4d, 0x3c, 0xb2, 0xa1] => (false, true),
        [0xa1, 0xb2, 0xc3, 0xd4] => (true, false),
        [0xa1, 0xb2, 0x3c, 0x4d] => (true, true),
        _ => panic!("{}: not a pcap file", path.display()),
    };
    let u32_at = |i: usize| {
        let w = [b[i], b[i + 1], b[i + 2], b[i + 3]];
        if be {
            u32::from_be_bytes(w)
        } else {
            u32::from_le_bytes(w)
        }
    };
    assert_eq!(
        u32_at(20),
        1,
        "{}: link type is not Ethernet",
        path.display()
    );
    let be16 = |f: &[u8], i: usize| u16::from_be_bytes([f[i], f[i + 1]]);
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= b.len() {
        let secs = f64::from(u32_at(at));
        let frac = f64::from(u32_at(at + 4)) / if nanos { 1e9 } else { 1e6 };
        let incl = u32_at(at + 8) as usize;
        let f = &b[(at + 16).min(b.len())..(at + 16 + incl).min(b.len())];
        at += 16 + incl;
        if f.len() < 34 || be16(f, 12) != 0x0800 || f[14] >> 4 != 4 {
            continue;
        }
        let ihl = usize::from(f[14] & 0x0f) * 4;
        if ihl < 20 || f.len() < 14 + ihl {
            continue;
        }
        let header = &f[14..14 + ihl];
        let sum: u32 = header
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum();
        let folded = (sum & 0xffff) + (sum >> 16);
        let folded = (folded & 0xffff) + (folded >> 16);
        let total = usize::from(be16(f, 16));
        let proto = f[23];
        let l4 = 14 + ihl;
        let (mut sport, mut dport, mut payload) = (0, 0, 0);
        if (proto == 6 || proto == 17) && f.len() >= l4 + 4 {
            sport = be16(f, l4);
            dport = be16(f, l4 + 2);
            let l4_header = if proto == 6 {
                f.get(l4 + 12).map_or(20, |d| usize::from(d >> 4) * 4)
            } else {
                8
            };
            payload = total.saturating_sub(ihl + l4_header);
        }
        out.push(Packet {
            ts: secs + frac,
            tos: f[15],
            id: be16(f, 18),
            proto,
            src: [f[26], f[27], f[28], f[29]],
            dst: [f[30], f[31], f[32], f[33]],
            sport,
            dport,
            payload,
            cksum_ok: folded == 0xffff,
        });
    }
    out
}

/// A tcpdump writing what `host`'s port receives into a pcap file.
pub struct Capture {
    child: Child,
    path: PathBuf,
}

impl Capture {
    /// Starts tcpdump on `host`'s lab port, frames in direction `dir`
    /// (`in`: received, `out`: sent) that match the BPF `filter`, at most
    /// `packets` packets and `limit` long, and waits until it listens.
    /// 128 bytes of each frame are enough for every header read here.
    pub fn start(
        lab: &Lab,
        host: Host,
        name: &str,
        dir: &str,
        filter: &str,
        packets: u32,
        limit: Duration,
    ) -> Capture {
        let dev = host.dev();
        let path = lab.path(name);
        let count = packets.to_string();
        let mut child = lab.spawn(
            host,
            &[
                "tcpdump",
                "-i",
                dev,
                "-n",
                "-U",
                // Each packet to tcpdump as it arrives: without this the
                // kernel hands them over in blocks, and the packets of
                // the last block are lost when tcpdump is stopped.
                "--immediate-mode",
                // Keep root: the scratch directory is root's.
                "-Z",
                "root",
                "-Q",
                dir,
                // Nanosecond timestamps: transit times through weir are
                // tenths of a millisecond.
                "--time-stamp-precision",
                "nano",
                "-s",
                "128",
                "-c",
                &count,
                "-w",
                path.to_str().expect("UTF-8 path"),
                filter,
            ],
            limit,
        );
        // tcpdump says "listening on …" on stderr once its socket is
        // bound; read it from a thread so a silent tcpdump cannot hang us.
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) if l.contains("listening on") => break,
                Ok(l) => seen.push(l),
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("tcpdump on {host:?} {dev} did not start listening ({e}): {seen:?}");
                }
            }
        }
        Capture { child, path }
    }

    /// Stops tcpdump (SIGTERM to timeout(1), which passes it on; tcpdump
    /// then closes its file) and returns the IPv4 frames it captured.
    pub fn stop(mut self) -> Vec<Packet> {
        // The last packets may still be on their way through tcpdump.
        thread::sleep(Duration::from_millis(300));
        terminate(&mut self.child);
        read_pcap(&self.path)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Ends a process started by `Lab::spawn`: SIGTERM to its timeout(1),
/// which passes it on, then SIGKILL if it is still there after 10 s.
pub fn terminate(child: &mut Child) {
    let pid = child.id().to_string();
    let _ = super::run_limited(&["kill", "-TERM", &pid], Duration::from_secs(5));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
        }
    }
}
