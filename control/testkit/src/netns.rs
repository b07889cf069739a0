//! Throwaway network namespaces and veth pairs for root tests.
//!
//! Every test builds its own world: uniquely named namespaces (the test
//! process id and a counter are in every name, so tests running in parallel
//! and other engineers' test binaries never collide), veth pairs whose ends
//! live only inside those namespaces, and addresses from 198.18.0.0/15
//! (RFC 2544 benchmarking range) only. Nothing is sent outside them.
//!
//! Cleanup is by `Drop`, so it also runs while a failed assertion unwinds:
//! deleting a namespace destroys the veth ends in it. Namespaces left behind
//! by a test process that was killed (SIGKILL skips `Drop`) are swept the
//! next time any test here creates a namespace, if their owner pid is gone.
//!
//! Usage from a test:
//! ```ignore
//! use weir_testkit::netns;
//! if !netns::require_root() { return; }
//! let pair = netns::VethPair::new("prog").unwrap();
//! let prog = pair.a.enter(|| XdpProgram::attach(&pair.if_a, XdpMode::Native, &[])).unwrap();
//! let got = netns::udp_probe(&pair.b, &pair.a, pair.addr_a, 10, Duration::from_secs(3)).unwrap();
//! ```
//!
//! Test traffic is made here in Rust (UDP sockets opened inside the
//! namespaces), not with ping or other tools a bare machine may lack.
//! Nothing here needs weir itself: what attaches weir to these namespaces
//! stays with the tests of the crate that has it.

use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Output;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Every namespace this helper creates is named `NS_PREFIX<tag>-<pid>-<n>`.
const NS_PREFIX: &str = "weirt-";
const NETNS_DIR: &str = "/run/netns";

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn next_id() -> u32 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// True when the tests that need namespaces can run (root); see
/// [`crate::root_or_skip`].
pub fn require_root() -> bool {
    crate::root_or_skip("network namespaces, veth, XDP")
}

pub use crate::cmd::{output, run_cmd};

/// A network namespace that exists as long as this value does.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a fresh namespace `weirt-<tag>-<pid>-<n>` with `lo` up.
    pub fn new(tag: &str) -> io::Result<Netns> {
        sweep_stale();
        let name = format!("{NS_PREFIX}{tag}-{}-{}", std::process::id(), next_id());
        run_cmd(&["ip", "netns", "add", &name])?;
        // From here on Drop deletes it, even if bringing lo up fails.
        let ns = Netns { name };
        ns.run(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `args` inside the namespace (`ip netns exec`) and returns its
    /// stdout; a non-zero exit is an error with the stderr.
    pub fn run(&self, args: &[&str]) -> io::Result<String> {
        run_cmd(&self.exec_args(args))
    }

    /// Like [`Netns::run`] but returns the raw output whatever the status.
    pub fn output(&self, args: &[&str]) -> io::Result<Output> {
        output(&self.exec_args(args))
    }

    fn exec_args<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        crate::cmd::in_netns(&self.name, args)
    }

    /// Runs `f` on a new thread that has joined this namespace (`setns`),
    /// waits for it and returns its result. A panic in `f` is re-raised
    /// here. Only the network namespace changes: `/sys` still shows the
    /// namespace it was mounted in, so code under test must not rely on
    /// `/sys/class/net` for interfaces of this namespace.
    ///
    /// Sockets, XDP links and other fds made in `f` stay bound to this
    /// namespace after the thread ends, and may be returned and used from
    /// any thread.
    pub fn enter<F, R>(&self, f: F) -> io::Result<R>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        let file = self.open()?;
        thread::scope(|s| {
            let handle = s.spawn(move || -> io::Result<R> {
                join_netns(&file)?;
                Ok(f())
            });
            match handle.join() {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// Spawns a long-lived thread inside this namespace (for example a
    /// worker loop). The caller joins it; the namespace must outlive it.
    pub fn spawn<F, R>(&self, f: F) -> io::Result<thread::JoinHandle<io::Result<R>>>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let file = self.open()?;
        Ok(thread::spawn(move || {
            join_netns(&file)?;
            Ok(f())
        }))
    }

    fn open(&self) -> io::Result<File> {
        let path = format!("{NETNS_DIR}/{}", self.name);
        File::open(&path).map_err(|e| io::Error::new(e.kind(), format!("open {path}: {e}")))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace destroys the interfaces in it (a veth end
        // takes its peer with it). Nothing useful to do on failure but say so.
        if let Err(e) = run_cmd(&["ip", "netns", "del", &self.name]) {
            eprintln!("netns cleanup: {e}");
        }
    }
}

fn join_netns(file: &File) -> io::Result<()> {
    // SAFETY: the fd is a valid open namespace file for the duration of the
    // call (borrowed from `file`); setns only changes this thread's network
    // namespace, which is private to the thread the helper spawned.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("setns(CLONE_NEWNET): {e}"),
        ));
    }
    Ok(())
}

/// Deletes namespaces named by this helper whose creating process is gone
/// (a test run that was killed before its `Drop`s ran). Namespaces of
/// live processes, including other test binaries running now, are kept.
fn sweep_stale() {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(NS_PREFIX) else {
            continue;
        };
        // rest = "<tag>-<pid>-<n>"; the tag may itself contain '-'.
        let mut parts = rest.rsplitn(3, '-');
        let (Some(_n), Some(pid), Some(_tag)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            // Best effort: a concurrent sweeper may have removed it already.
            let _ = output(&["ip", "netns", "del", &name]);
        }
    }
}

/// A unique interface name (≤ 15 bytes, the kernel's IFNAMSIZ - 1):
/// up to 4 bytes of `tag`, the pid, a counter, and `side`.
pub fn ifname(tag: &str, side: char) -> String {
    let tag: String = tag
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(4)
        .collect();
    let name = format!("{tag}{}{}{side}", std::process::id(), next_id() % 1000);
    debug_assert!(name.len() <= 15, "interface name {name} too long");
    name
}

/// Creates a veth pair with end `if_a` in `ns_a` and `if_b` in `ns_b`
/// (created directly there, never in the caller's namespace) and sets both
/// up. The pair goes away with either namespace.
pub fn add_veth(ns_a: &Netns, if_a: &str, ns_b: &Netns, if_b: &str) -> io::Result<()> {
    create_veth(ns_a, if_a, ns_b, if_b, None)?;
    ns_a.run(&["ip", "link", "set", if_a, "up"])?;
    ns_b.run(&["ip", "link", "set", if_b, "up"])?;
    Ok(())
}

/// Like [`add_veth`] with `queues` rx and tx queues per end (veth's
/// `numrxqueues`/`numtxqueues`; `None` is the kernel default), and both
/// ends left down, for settings that come before `up` (offloads).
pub fn create_veth(
    ns_a: &Netns,
    if_a: &str,
    ns_b: &Netns,
    if_b: &str,
    queues: Option<u32>,
) -> io::Result<()> {
    let q = queues.map(|q| q.to_string());
    let queue_args: Vec<&str> = match &q {
        Some(q) => vec!["numrxqueues", q, "numtxqueues", q],
        None => Vec::new(),
    };
    let mut args = vec!["ip", "link", "add", if_a, "netns", ns_a.name()];
    args.extend_from_slice(&queue_args);
    args.extend_from_slice(&["type", "veth", "peer", "name", if_b, "netns", ns_b.name()]);
    args.extend_from_slice(&queue_args);
    run_cmd(&args)?;
    Ok(())
}

/// Two fresh namespaces joined by a veth pair, addressed
/// 198.18.0.1/24 (`a`) and 198.18.0.2/24 (`b`), both ends up.
#[derive(Debug)]
pub struct VethPair {
    pub a: Netns,
    pub b: Netns,
    pub if_a: String,
    pub if_b: String,
    pub addr_a: Ipv4Addr,
    pub addr_b: Ipv4Addr,
}

impl VethPair {
    pub fn new(tag: &str) -> io::Result<VethPair> {
        Self::with_queues(tag, None)
    }

    /// Like [`VethPair::new`], with `queues` rx and tx queues per end
    /// (veth's `numrxqueues`/`numtxqueues`); `None` is the kernel default.
    pub fn with_queues(tag: &str, queues: Option<u32>) -> io::Result<VethPair> {
        let a = Netns::new(&format!("{tag}-a"))?;
        let b = Netns::new(&format!("{tag}-b"))?;
        let if_a = ifname(tag, 'a');
        let if_b = ifname(tag, 'b');
        create_veth(&a, &if_a, &b, &if_b, queues)?;
        a.run(&["ip", "link", "set", &if_a, "up"])?;
        b.run(&["ip", "link", "set", &if_b, "up"])?;
        let addr_a = Ipv4Addr::new(198, 18, 0, 1);
        let addr_b = Ipv4Addr::new(198, 18, 0, 2);
        a.run(&["ip", "addr", "add", &format!("{addr_a}/24"), "dev", &if_a])?;
        b.run(&["ip", "addr", "add", &format!("{addr_b}/24"), "dev", &if_b])?;
        Ok(VethPair {
            a,
            b,
            if_a,
            if_b,
            addr_a,
            addr_b,
        })
    }
}

/// UDP port the probes use. Fixed: every namespace here is private.
pub const PROBE_PORT: u16 = 9_000;

/// Sends `count` UDP datagrams from namespace `from` to `to:PROBE_PORT`
/// in namespace `to_ns`, where a socket bound to that address receives
/// them. Returns how many arrived before `timeout` (at most `count`).
/// Payloads are "weir-probe <i>"; datagrams are paced 1 ms apart so a
/// pending ARP resolution does not overflow the neighbour queue.
pub fn udp_probe(
    from: &Netns,
    to_ns: &Netns,
    to: Ipv4Addr,
    count: u32,
    timeout: Duration,
) -> io::Result<u32> {
    let dst = SocketAddrV4::new(to, PROBE_PORT);
    let rx = to_ns.enter(|| UdpSocket::bind(dst))??;
    udp_send(from, dst, count)?;
    let deadline = Instant::now() + timeout;
    let mut got = 0;
    let mut buf = [0u8; 64];
    while got < count {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        rx.set_read_timeout(Some(left))?;
        match rx.recv(&mut buf) {
            Ok(n) if buf[..n].starts_with(b"weir-probe ") => got += 1,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                break
            }
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Sends `count` UDP datagrams ("weir-probe <i>") from namespace `from`
/// to `dst`, 1 ms apart, without waiting for anything.
pub fn udp_send(from: &Netns, dst: SocketAddrV4, count: u32) -> io::Result<()> {
    from.enter(|| -> io::Result<()> {
        let tx = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        for i in 0..count {
            tx.send_to(format!("weir-probe {i}").as_bytes(), dst)?;
            thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    })?
}

/// Sends each of `frames` as-is (a whole Ethernet frame, headers included)
/// out of `ifname` in namespace `ns`, through an AF_PACKET socket. For
/// frames the kernel's own stack would never build: VLAN stacks, odd
/// ethertypes, truncated headers. They reach only the veth peer.
pub fn send_raw_frames(ns: &Netns, ifname: &str, frames: &[Vec<u8>]) -> io::Result<()> {
    let ifname = std::ffi::CString::new(ifname)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in interface name"))?;
    ns.enter(|| -> io::Result<()> {
        // SAFETY: `ifname` is a valid NUL-terminated string for the call.
        let ifindex = unsafe { libc::if_nametoindex(ifname.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::last_os_error());
        }
        // Protocol 0: a send-only socket that receives nothing.
        // SAFETY: plain syscall with integer arguments.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh socket that nothing else owns.
        let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = ifindex as i32;
        for frame in frames {
            // SAFETY: `frame` and `addr` are valid for the lengths passed
            // and outlive the call; the kernel copies the frame.
            let rc = unsafe {
                libc::sendto(
                    sock.as_raw_fd(),
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&addr as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            if rc < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    })?
}

/// Waits until something listens on TCP `port` in namespace `ns` (a
/// namespace name, as `ip netns` knows it), checking every 50 ms with
/// `ss`, at most `timeout`. A server is waited for rather than slept for:
/// a client that connects too early fails, and a busy 2-core VM can take
/// long to exec one.
pub fn wait_listening(ns: &str, port: u16, timeout: Duration) -> io::Result<()> {
    let filter = format!("sport = :{port}");
    let deadline = Instant::now() + timeout;
    loop {
        let out = crate::cmd::run_limited(
            &crate::cmd::in_netns(ns, &["ss", "-Hltn", &filter]),
            Duration::from_secs(3),
        )?;
        if !String::from_utf8_lossy(&out.stdout).trim().is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("nothing listens on TCP port {port} in {ns} after {timeout:?}"),
            ));
        }
        thread::sleep(Duration::from_millis(50));
    }
}
