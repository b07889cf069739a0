//! Bulk TCP through one path of the lab: one iperf3 flow per active class,
//! client in the sender's namespace, server in the receiver's, each flow
//! marked with the DSCP that the tree's u32 filter maps to its class.
//!
//! What a class got is read from the receiver's own socket, not from
//! iperf3's report: the receiver namespace's `tcp_info` of each
//! connection (what `ss -ti` shows, read in-process: [`super::sockdiag`])
//! gives `data_segs_in`, the data segments that reached the receiver,
//! sampled for all flows at once at the start and at the end of the
//! window, on this program's clock. Segments, not `bytes_received`: the
//! payload taken in order lags what the shaper let through by whatever
//! waits out of order behind a lost segment (up to a window of 1000
//! segments after a tail drop, 1.5 MB: 1.2 Mbit/s of a 10 s window), and
//! a segment is what HTB charged: its payload (the mean of what the
//! sender sent in the window, `bytes_sent` over `data_segs_out`) plus the
//! headers of an MTU-sized frame. iperf3's per-interval numbers count
//! from when each server saw its own test start, which drifts from flow
//! to flow by the time a client's control connection takes to get
//! through a class that another flow already fills (its SYN waits behind
//! up to 1000 packets of a pfifo leaf, or is dropped and sent again a
//! second later), so they have no common window. The sender's `tcp_info`
//! gives each flow's retransmissions and smoothed RTT over the same
//! window (how deep the class's queue stood).

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::sockdiag::{DiagSocket, TcpSock};

/// The congestion control of every flow. Linux's default; this VM's own
/// default is bbr (`net.ipv4.tcp_congestion_control`), which paces at the
/// bottleneck's rate and keeps a class's queue short, where cubic fills a
/// pfifo leaf to its 1000 packets and backs off by 30 % on a drop: the
/// harder case for a shaper's queue and the one most hosts run.
pub const CONGESTION_CONTROL: &str = "cubic";
/// iperf3's first port; flow k uses FIRST_PORT + k.
pub const FIRST_PORT: u16 = 5201;
/// How long a flow may take to reach the window: process start, control
/// connection (whose SYN may be dropped once: 1 s), data connection.
const STARTUP: Duration = Duration::from_secs(8);
/// Bytes a flow must have delivered before it counts as started.
const STARTED_BYTES: u64 = 64 * 1024;
/// A window-edge sample counts only if its dump took at most this long
/// (its instant is the middle, so it is off by at most half of it: 0.05 %
/// of a 10 s window); a slower one (the thread was preempted) is taken
/// again, at most [`SAMPLE_TRIES`] times. Beside two busy loops and
/// compiling jobs, 100 dumps in a row at normal priority all took longer
/// (up to 35 ms), so the edges are taken at SCHED_FIFO ([`Fifo`]).
const SAMPLE_SPREAD: Duration = Duration::from_millis(5);
const SAMPLE_TRIES: u32 = 100;

/// One path's hosts, as scripts/lab.sh names them.
#[derive(Clone, Debug)]
pub struct TcpPath {
    pub name: String,
    /// The sender's and the receiver's namespaces.
    pub tx_ns: String,
    pub rx_ns: String,
    /// The receiver's address.
    pub dst: String,
}

/// What one flow did over the window.
#[derive(Clone, Debug, PartialEq)]
pub struct TcpFlow {
    /// Mbit/s of frame bytes (Ethernet header included, FCS excluded),
    /// the unit of the UDP cases: data segments × (their mean payload +
    /// pmtu + 14 − mss) bytes (the lab turns TSO, GSO and GRO off, so every
    /// segment is one frame of at most the MTU).
    pub mbit: f64,
    /// The mean payload of a data segment the sender sent in the window
    /// (mss when all are full).
    pub segment_payload: f64,
    /// Payload the receiver took in order, Mbit/s (what iperf3 calls the
    /// bitrate; see the module's comment for why it is not the rate).
    pub goodput_mbit: f64,
    /// Segments the sender retransmitted in the window.
    pub retransmits: u64,
    /// The sender's smoothed RTT at the end of the window, ms.
    pub rtt_ms: f64,
}

/// Runs one flow per DSCP of `dscps` through `path`: waits until every
/// flow delivers, lets them run `warmup`, then measures `window`.
pub fn run(
    path: &TcpPath,
    dscps: &[u8],
    warmup: Duration,
    window: Duration,
) -> Result<Vec<TcpFlow>, String> {
    let ports: Vec<u16> = (0..dscps.len() as u16).map(|k| FIRST_PORT + k).collect();
    let rx_diag = DiagSocket::open(&path.rx_ns)?;
    let tx_diag = DiagSocket::open(&path.tx_ns)?;
    // The clients end when told (after the window), or at this bound.
    let client_secs = (STARTUP + warmup + window).as_secs() + 5;
    let limit = format!("{}", client_secs + 10);
    let mut servers = Procs::default();
    for &port in &ports {
        servers.0.push(spawn(
            &path.rx_ns,
            &[
                "timeout",
                "-k",
                "2",
                &limit,
                "iperf3",
                "-s",
                "-1",
                "-B",
                &path.dst,
                "-p",
                &port.to_string(),
            ],
            false,
        )?);
    }
    wait_listening(path, &ports)?;
    let mut clients = Procs::default();
    for (&port, &dscp) in ports.iter().zip(dscps) {
        clients.0.push(spawn(
            &path.tx_ns,
            &[
                "timeout",
                "-k",
                "2",
                &limit,
                "iperf3",
                "-c",
                &path.dst,
                "-p",
                &port.to_string(),
                "-t",
                &client_secs.to_string(),
                "-C",
                CONGESTION_CONTROL,
                "--dscp",
                &dscp.to_string(),
                // No periodic reports: the output is read once, at the end.
                "-i",
                "0",
                "-J",
            ],
            true,
        )?);
    }
    let deadline = Instant::now() + STARTUP;
    loop {
        let (rx, _) = sample(&rx_diag, &ports, Side::Receiver)?;
        if rx.iter().all(|s| s.bytes >= STARTED_BYTES) {
            break;
        }
        clients.check_running(&ports, "before it delivered")?;
        if Instant::now() >= deadline {
            let got: Vec<String> = ports
                .iter()
                .zip(&rx)
                .map(|(p, s)| format!("port {p}: {} bytes", s.bytes))
                .collect();
            return Err(format!(
                "{}: not every TCP flow delivered within {} s ({})",
                path.name,
                STARTUP.as_secs(),
                got.join(", ")
            ));
        }
        thread::sleep(Duration::from_millis(50));
    }
    thread::sleep(warmup);
    let (rx0, t0) = sample_edge(&rx_diag, &ports)?;
    let (tx0, _) = sample(&tx_diag, &ports, Side::Sender)?;
    thread::sleep(window.saturating_sub(t0.elapsed()));
    let (rx1, t1) = sample_edge(&rx_diag, &ports)?;
    let secs = t1.duration_since(t0).as_secs_f64();
    let (tx1, _) = sample(&tx_diag, &ports, Side::Sender)?;
    // A client that ended inside the window makes its class's number a
    // fraction of the window's: never a result.
    clients.check_running(&ports, "inside the window")?;
    clients.stop();
    servers.stop();
    ports
        .iter()
        .enumerate()
        .map(|(k, port)| {
            let went_back = |what: &str, a: u64, b: u64| {
                format!("{}: port {port}: {what} went back from {a} to {b}", path.name)
            };
            let bytes = rx1[k]
                .bytes
                .checked_sub(rx0[k].bytes)
                .ok_or_else(|| went_back("bytes_received", rx0[k].bytes, rx1[k].bytes))?;
            let segs = rx1[k]
                .segs
                .checked_sub(rx0[k].segs)
                .ok_or_else(|| went_back("data_segs_in", rx0[k].segs, rx1[k].segs))?;
            let (mss, pmtu) = (tx1[k].mss, tx1[k].pmtu);
            if mss == 0 || pmtu <= mss {
                return Err(format!(
                    "{}: port {port}: the sender reports mss {mss}, pmtu {pmtu}",
                    path.name
                ));
            }
            let sent = tx1[k].sent.saturating_sub(tx0[k].sent);
            let segs_out = tx1[k].segs_out.saturating_sub(tx0[k].segs_out);
            let payload = sent as f64 / segs_out.max(1) as f64;
            if segs_out == 0 || payload > f64::from(mss) {
                return Err(format!(
                    "{}: port {port}: the sender sent {sent} bytes in {segs_out} data segments in the window, mss {mss}",
                    path.name
                ));
            }
            let frame = payload + f64::from(pmtu + 14 - mss);
            Ok(TcpFlow {
                mbit: segs as f64 * frame * 8.0 / secs / 1e6,
                segment_payload: payload,
                goodput_mbit: bytes as f64 * 8.0 / secs / 1e6,
                retransmits: tx1[k].retrans.saturating_sub(tx0[k].retrans),
                rtt_ms: tx1[k].rtt_ms,
            })
        })
        .collect()
}

/// Children stopped on drop (an error half way): SIGTERM first, so that
/// timeout(1) hands it on (a SIGKILL would kill timeout alone and leave
/// iperf3 holding its port for the next trial), then SIGKILL and reap.
#[derive(Default)]
struct Procs(Vec<Child>);

impl Procs {
    fn check_running(&mut self, ports: &[u16], when: &str) -> Result<(), String> {
        for (c, port) in self.0.iter_mut().zip(ports) {
            if let Ok(Some(st)) = c.try_wait() {
                let mut out = String::new();
                if let Some(o) = c.stdout.as_mut() {
                    let _ = o.read_to_string(&mut out);
                }
                let error = serde_json::from_str::<serde_json::Value>(&out)
                    .ok()
                    .and_then(|v| v["error"].as_str().map(str::to_owned))
                    .unwrap_or(out);
                return Err(format!(
                    "iperf3 client to port {port} ended {when} ({st}): {}",
                    error.trim()
                ));
            }
        }
        Ok(())
    }

    /// SIGTERM (timeout(1) hands it on to iperf3, whose client tells its
    /// server to end the test), then at most 5 s for all to exit.
    fn stop(&mut self) {
        for c in &mut self.0 {
            if matches!(c.try_wait(), Ok(None)) {
                // SAFETY: kill(2) on our own child's pid, which try_wait
                // just found not yet reaped, so it cannot name another
                // process.
                unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for c in &mut self.0 {
            while Instant::now() < deadline {
                if !matches!(c.try_wait(), Ok(None)) {
                    break;
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        self.stop();
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn(ns: &str, args: &[&str], stdout: bool) -> Result<Child, String> {
    Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .stdin(Stdio::null())
        .stdout(if stdout {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting {} in {ns}: {e}", args.join(" ")))
}

/// Waits (at most 5 s) until a server listens on every port.
fn wait_listening(path: &TcpPath, ports: &[u16]) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = ss(&path.rx_ns, &["-Hltn"])?;
        let listening = ports
            .iter()
            .all(|p| out.lines().any(|l| local_port(l) == Some(*p)));
        if listening {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{}: iperf3 servers on ports {ports:?} in {} do not all listen after 5 s",
                path.name, path.rx_ns
            ));
        }
        thread::sleep(Duration::from_millis(50));
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    /// The server's sockets: local port = the flow's port.
    Receiver,
    /// The client's sockets: remote port = the flow's port.
    Sender,
}

/// One flow's counters, summed over its sockets (iperf3's control
/// connection to the same port carries a few hundred bytes at the start
/// and the end; nothing in the window).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Sample {
    bytes: u64,
    segs: u64,
    /// Sender: data segments and payload bytes sent.
    segs_out: u64,
    sent: u64,
    retrans: u64,
    /// Of the socket that carries the data (the most bytes acked).
    rtt_ms: f64,
    mss: u32,
    pmtu: u32,
    acked: u64,
}

/// Per port, the namespace's counters now, and the middle of the dump.
fn sample(diag: &DiagSocket, ports: &[u16], side: Side) -> Result<(Vec<Sample>, Instant), String> {
    let (socks, before, after) = diag.established()?;
    Ok((per_port(&socks, ports, side), before + (after - before) / 2))
}

/// [`sample`] of the receiver for a window's edge: retaken until one dump
/// took at most [`SAMPLE_SPREAD`].
fn sample_edge(diag: &DiagSocket, ports: &[u16]) -> Result<(Vec<Sample>, Instant), String> {
    let _fifo = Fifo::enter();
    let mut slowest = Duration::ZERO;
    for _ in 0..SAMPLE_TRIES {
        let (socks, before, after) = diag.established()?;
        if after - before <= SAMPLE_SPREAD {
            return Ok((
                per_port(&socks, ports, Side::Receiver),
                before + (after - before) / 2,
            ));
        }
        slowest = slowest.max(after - before);
    }
    Err(format!(
        "no dump of the receiver's sockets within {} ms in {SAMPLE_TRIES} tries (up to {} ms)",
        SAMPLE_SPREAD.as_millis(),
        slowest.as_millis()
    ))
}

/// The calling thread at SCHED_FIFO priority 1 while this lives (above
/// every ordinary task, below weir's worker and the kernel's threads), so
/// that a dump of a few sockets is not preempted half way; the old policy
/// comes back on drop. Without the privilege the thread stays as it was
/// and the samples are retaken as usual.
struct Fifo(Option<(libc::c_int, libc::sched_param)>);

impl Fifo {
    fn enter() -> Fifo {
        let mut policy = 0;
        let mut old = libc::sched_param { sched_priority: 0 };
        // SAFETY: pthread_self() is this thread; both out-pointers point
        // to locals that outlive the call.
        if unsafe { libc::pthread_getschedparam(libc::pthread_self(), &mut policy, &mut old) } != 0
        {
            return Fifo(None);
        }
        let fifo = libc::sched_param { sched_priority: 1 };
        // SAFETY: as above; the parameter is a local.
        let set =
            unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &fifo) };
        Fifo((set == 0).then_some((policy, old)))
    }
}

impl Drop for Fifo {
    fn drop(&mut self) {
        if let Some((policy, old)) = self.0 {
            // SAFETY: this thread again, with the parameter it had.
            unsafe { libc::pthread_setschedparam(libc::pthread_self(), policy, &old) };
        }
    }
}

fn per_port(socks: &[TcpSock], ports: &[u16], side: Side) -> Vec<Sample> {
    let mut samples = vec![Sample::default(); ports.len()];
    for t in socks {
        let port = match side {
            Side::Receiver => t.sport,
            Side::Sender => t.dport,
        };
        let Some(k) = ports.iter().position(|&p| p == port) else {
            continue;
        };
        let s = &mut samples[k];
        s.bytes += t.bytes_received;
        s.segs += u64::from(t.data_segs_in);
        s.segs_out += u64::from(t.data_segs_out);
        s.sent += t.bytes_sent;
        s.retrans += u64::from(t.total_retrans);
        if t.bytes_acked >= s.acked {
            s.acked = t.bytes_acked;
            s.rtt_ms = f64::from(t.rtt_us) / 1e3;
            s.mss = t.snd_mss;
            s.pmtu = t.pmtu;
        }
    }
    samples
}

fn ss(ns: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "ss"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ss in {ns}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ss {} in {ns} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The local port of an `ss -Hltn` line (State Recv-Q Send-Q Local Peer).
fn local_port(line: &str) -> Option<u16> {
    line.split_whitespace()
        .nth(3)
        .and_then(|c| c.rsplit_once(':'))
        .and_then(|(_, p)| p.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_are_summed_per_flow_port() {
        let sock = |sport, dport, received, acked, retrans, rtt_us| TcpSock {
            sport,
            dport,
            bytes_received: received,
            data_segs_in: (received / 1448) as u32,
            data_segs_out: 3,
            bytes_sent: 4000,
            bytes_acked: acked,
            total_retrans: retrans,
            rtt_us,
            snd_mss: 1448,
            pmtu: 1500,
        };
        // Receiver: iperf3's control and data connections on 5201, one on
        // 5202, and one that is none of ours.
        let rx = [
            sock(5201, 40000, 194, 4, 0, 100),
            sock(5201, 40002, 1_000_000, 1, 0, 100),
            sock(5202, 40004, 5000, 1, 0, 100),
            sock(22, 40006, 99, 1, 0, 100),
        ];
        let s = per_port(&rx, &[5201, 5202, 5203], Side::Receiver);
        assert_eq!(
            s.iter().map(|x| x.bytes).collect::<Vec<_>>(),
            [1_000_194, 5000, 0]
        );
        assert_eq!(s[0].segs, 690, "0 + 690 data segments");
        let tx = [
            sock(40000, 5201, 4, 195, 0, 200),
            sock(40002, 5201, 0, 99_000_000, 57, 412_500),
        ];
        let s = per_port(&tx, &[5201], Side::Sender);
        assert_eq!((s[0].retrans, s[0].mss, s[0].pmtu), (57, 1448, 1500));
        assert_eq!((s[0].segs_out, s[0].sent), (6, 8000));
        assert_eq!(s[0].rtt_ms, 412.5, "the data connection's RTT");
        assert_eq!(
            local_port("LISTEN 0 5 198.18.0.2:5203 0.0.0.0:*"),
            Some(5203)
        );
    }
}
