//! Bulk TCP through one path of the lab: one iperf3 flow per active class,
//! client in the sender's namespace, server in the receiver's, each flow
//! marked with the DSCP that the tree's u32 filter maps to its class.
//!
//! What a class got is read from the receiver's own socket, not from
//! iperf3's report: `ss -ti` in the receiver's namespace gives each
//! connection's `bytes_received` (tcpi_bytes_received: payload the
//! receiver took in order), sampled for all flows at once at the start
//! and at the end of the window, on this program's clock. iperf3's
//! per-interval numbers count from when each server saw its own test
//! start, which drifts from flow to flow by the time a client's control
//! connection takes to get through a class that another flow already
//! fills (its SYN waits behind up to 1000 packets of a pfifo leaf, or is
//! dropped and sent again a second later), so they have no common window.
//! The sender's `ss -ti` gives each flow's retransmissions and smoothed
//! RTT over the same window (how deep the class's queue stood).

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

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
    /// the unit of the UDP cases: payload × (pmtu + 14) / mss, every
    /// segment of a bulk flow being a full one (the lab turns TSO, GSO and
    /// GRO off, so the wire carries MTU-sized frames).
    pub mbit: f64,
    /// Payload Mbit/s (what iperf3 calls the bitrate).
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
        let rx = sample(&path.rx_ns, &ports, Side::Receiver)?;
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
    // Receiver first, then sender, at both ends of the window: the same
    // order, so what the sender's sample costs is the same at both ends.
    let rx0 = sample(&path.rx_ns, &ports, Side::Receiver)?;
    let t0 = Instant::now();
    let tx0 = sample(&path.tx_ns, &ports, Side::Sender)?;
    thread::sleep(window.saturating_sub(t0.elapsed()));
    let rx1 = sample(&path.rx_ns, &ports, Side::Receiver)?;
    let secs = t0.elapsed().as_secs_f64();
    let tx1 = sample(&path.tx_ns, &ports, Side::Sender)?;
    // A client that ended inside the window makes its class's number a
    // fraction of the window's: never a result.
    clients.check_running(&ports, "inside the window")?;
    clients.stop();
    servers.stop();
    ports
        .iter()
        .enumerate()
        .map(|(k, port)| {
            let bytes = rx1[k].bytes.checked_sub(rx0[k].bytes).ok_or_else(|| {
                format!(
                    "{}: port {port}: bytes_received went back from {} to {}",
                    path.name, rx0[k].bytes, rx1[k].bytes
                )
            })?;
            let (mss, pmtu) = (tx1[k].mss, tx1[k].pmtu);
            if mss == 0 || pmtu <= mss {
                return Err(format!(
                    "{}: port {port}: the sender reports mss {mss}, pmtu {pmtu}",
                    path.name
                ));
            }
            let goodput = bytes as f64 * 8.0 / secs / 1e6;
            Ok(TcpFlow {
                mbit: goodput * f64::from(pmtu + 14) / f64::from(mss),
                goodput_mbit: goodput,
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
    retrans: u64,
    /// Of the socket that carries the data (the most bytes acked).
    rtt_ms: f64,
    mss: u32,
    pmtu: u32,
    acked: u64,
}

fn sample(ns: &str, ports: &[u16], side: Side) -> Result<Vec<Sample>, String> {
    let out = ss(ns, &["-HtinO", "state", "established"])?;
    Ok(parse_ss(&out, ports, side))
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

/// The port after the last ':' of an `addr:port` column.
fn port_of(col: &str) -> Option<u16> {
    col.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
}

/// `ss -H` lines: [State] Recv-Q Send-Q Local Peer …; with a state filter
/// there is no State column.
fn local_port(line: &str) -> Option<u16> {
    let cols: Vec<&str> = line.split_whitespace().collect();
    // -l prints the state (LISTEN) first; a state filter does not.
    let at = usize::from(cols.first().is_some_and(|c| c.parse::<u64>().is_err()));
    cols.get(at + 2).and_then(|c| port_of(c))
}

/// Per port of `ports`, the counters of `ss -HtinO state established`.
fn parse_ss(out: &str, ports: &[u16], side: Side) -> Vec<Sample> {
    let mut samples = vec![Sample::default(); ports.len()];
    for line in out.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let port = match side {
            Side::Receiver => cols.get(2),
            Side::Sender => cols.get(3),
        }
        .and_then(|c| port_of(c));
        let Some(k) = port.and_then(|p| ports.iter().position(|&q| q == p)) else {
            continue;
        };
        let field = |name: &str| {
            cols.iter()
                .find_map(|c| c.strip_prefix(name).and_then(|v| v.strip_prefix(':')))
        };
        let num = |name: &str| field(name).and_then(|v| v.parse::<u64>().ok());
        let s = &mut samples[k];
        s.bytes += num("bytes_received").unwrap_or(0);
        // retrans:<unacked retransmitted>/<total retransmitted>
        s.retrans += field("retrans")
            .and_then(|v| v.split_once('/'))
            .and_then(|(_, total)| total.parse::<u64>().ok())
            .unwrap_or(0);
        let acked = num("bytes_acked").unwrap_or(0);
        if acked >= s.acked {
            s.acked = acked;
            // rtt:<srtt>/<rttvar>, ms
            s.rtt_ms = field("rtt")
                .and_then(|v| v.split_once('/'))
                .and_then(|(srtt, _)| srtt.parse().ok())
                .unwrap_or(f64::NAN);
            s.mss = num("mss").unwrap_or(0) as u32;
            s.pmtu = num("pmtu").unwrap_or(0) as u32;
        }
    }
    samples
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ss_lines_give_each_flow_its_counters() {
        // ss -HtinO state established, receiver side (iperf3's control
        // connection and data connection on port 5201, one on 5202).
        let rx = "0 0 198.18.0.2:5201 198.18.0.1:40000 cubic wscale:7,7 rto:204 rtt:0.1/0.05 mss:1448 pmtu:1500 rcvmss:536 bytes_received:194 bytes_acked:4\n\
                  0 0 198.18.0.2:5201 198.18.0.1:40002 cubic wscale:7,7 rto:204 rtt:0.1/0.05 mss:1448 pmtu:1500 rcvmss:1448 bytes_received:1000000 bytes_acked:1\n\
                  0 0 198.18.0.2:5202 198.18.0.1:40004 cubic bytes_received:5000\n\
                  0 0 198.18.0.2:22 198.18.0.1:40006 cubic bytes_received:99\n";
        let s = parse_ss(rx, &[5201, 5202, 5203], Side::Receiver);
        assert_eq!(
            s.iter().map(|x| x.bytes).collect::<Vec<_>>(),
            [1_000_194, 5000, 0]
        );
        let tx = "0 0 198.18.0.1:40000 198.18.0.2:5201 cubic rtt:0.2/0.1 mss:1448 pmtu:1500 bytes_acked:195 bytes_received:4\n\
                  0 0 198.18.0.1:40002 198.18.0.2:5201 cubic rtt:412.5/3.1 mss:1448 pmtu:1500 bytes_acked:99000000 retrans:2/57 bytes_received:0\n";
        let s = parse_ss(tx, &[5201], Side::Sender);
        assert_eq!((s[0].retrans, s[0].mss, s[0].pmtu), (57, 1448, 1500));
        assert_eq!(s[0].rtt_ms, 412.5, "the data connection's RTT");
        // ss -Hltn prints the state first.
        assert_eq!(
            local_port("LISTEN 0 5 198.18.0.2:5203 0.0.0.0:*"),
            Some(5203)
        );
        assert_eq!(local_port("0 0 198.18.0.2:5201 198.18.0.1:1"), Some(5201));
    }
}
