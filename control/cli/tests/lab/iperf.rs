//! iperf3 in the lab: one-off servers, clients, UDP flows measured at the
//! receiver over the window in which all of them ran.

use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use weir_testkit::netns;

use super::{Host, Lab, FRAME_PER_PAYLOAD};

impl Lab {
    /// Starts a one-off iperf3 server on `host` port `port` that exits
    /// after one test or at `limit`, and waits until it listens.
    pub fn iperf3_server(&self, host: Host, port: u16, limit: Duration) -> Iperf3Server {
        let ns = self.ns(host);
        let secs = format!("{:.0}", limit.as_secs_f64().ceil());
        let port_s = port.to_string();
        let child = Command::new("ip")
            .args(["netns", "exec", &ns, "timeout", "-k", "2", &secs])
            .args(["iperf3", "-s", "-1", "-J", "-B", host.addr(), "-p", &port_s])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start iperf3 -s in {ns}: {e}"));
        let server = Iperf3Server { child: Some(child) };
        netns::wait_listening(&ns, port, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("iperf3 server: {e}"));
        server
    }

    /// Starts an iperf3 client on `from` towards the other host; `extra`
    /// are its test options (`-u -b 90M -t 6 ...`). `-J` is added.
    pub fn iperf3_client(&self, from: Host, port: u16, extra: &[&str], limit: Duration) -> Child {
        let ns = self.ns(from);
        let secs = format!("{:.0}", limit.as_secs_f64().ceil());
        let port_s = port.to_string();
        Command::new("ip")
            .args(["netns", "exec", &ns, "timeout", "-k", "2", &secs])
            .args(["iperf3", "-J", "-c", from.other().addr(), "-p", &port_s])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start iperf3 -c in {ns}: {e}"))
    }

    /// Offers UDP flows from `from` to the other host and returns what each
    /// achieved at the receiver over the time all of them were running, in
    /// Mbit/s of Ethernet frames (see [`window_frame_mbit`]).
    ///
    /// The clients start [`STAGGER`] apart in the order given, and the
    /// caller puts the unmarked flow last. Each client's TCP control
    /// connection and UDP start datagram are unmarked, so they travel in
    /// the default class; once an unmarked flood saturates that class its
    /// queue drops most arrivals, and a later client would lose its SYN and
    /// start a second or more late (or never), measuring a different case.
    pub fn udp_flows(&self, from: Host, flows: &[UdpFlow], secs: u32) -> Vec<f64> {
        let limit = Duration::from_secs(u64::from(secs) + 20);
        let servers: Vec<_> = flows
            .iter()
            .map(|f| self.iperf3_server(from.other(), f.port, limit))
            .collect();
        let t = secs.to_string();
        let t0 = Instant::now();
        let mut starts = Vec::new();
        let mut clients = Vec::new();
        for (i, f) in flows.iter().enumerate() {
            if i > 0 {
                thread::sleep(STAGGER);
            }
            let bitrate = format!("{}M", f.mbit);
            let mut extra = vec!["-u", "-b", &bitrate, "-l", "1472", "-t", &t];
            if let Some(d) = f.dscp {
                extra.extend_from_slice(&["--dscp", d]);
            }
            starts.push(t0.elapsed().as_secs_f64());
            clients.push(self.iperf3_client(from, f.port, &extra, limit));
        }
        for (c, f) in clients.into_iter().zip(flows) {
            let out = c.wait_with_output().expect("iperf3 client output");
            assert!(
                out.status.success(),
                "iperf3 client {from:?} port {} failed ({}): {}",
                f.port,
                out.status,
                String::from_utf8_lossy(&out.stdout)
            );
        }
        // All flows run from the last start to the first end; leave out
        // the first second after the last start (HTB's buckets start full
        // and the newest flow is still ramping) and a margin for the few
        // ms between spawning a client and its first datagram.
        let last_start = starts.iter().copied().fold(0.0, f64::max);
        let first_end = starts.iter().copied().fold(f64::INFINITY, f64::min) + f64::from(secs);
        let window = (last_start + 1.0 + WINDOW_SLACK, first_end - WINDOW_SLACK);
        servers
            .into_iter()
            .zip(flows.iter().zip(starts))
            .map(|(s, (f, start))| {
                let json = s.finish();
                window_frame_mbit(&json, start, window)
                    .unwrap_or_else(|e| panic!("iperf3 server port {}: {e}\n{json}", f.port))
            })
            .collect()
    }
}

/// One UDP flow of [`Lab::udp_flows`].
#[derive(Clone, Copy, Debug)]
pub struct UdpFlow {
    /// iperf3's `--dscp` (e.g. "EF", "AF41"), or unmarked.
    pub dscp: Option<&'static str>,
    pub port: u16,
    /// Offered payload rate, Mbit/s.
    pub mbit: u32,
}

/// A running one-off iperf3 server; killed on drop if not finished.
pub struct Iperf3Server {
    child: Option<Child>,
}

impl Iperf3Server {
    /// Waits for the server to exit (it does after one test) and returns
    /// its JSON report.
    pub fn finish(mut self) -> Value {
        let child = self.child.take().expect("not finished twice");
        let out = child.wait_with_output().expect("iperf3 server output");
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!(
                "iperf3 server ({}) printed no JSON ({e}):\n{text}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }
}

impl Drop for Iperf3Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Time between starting two clients of [`Lab::udp_flows`]: enough for
/// one client to set up its test before the next one's flood begins.
pub const STAGGER: Duration = Duration::from_millis(250);

/// Margin, in seconds, for when a server's intervals really begin (it
/// starts counting when the client's test starts, a few ms after the
/// client was spawned).
const WINDOW_SLACK: f64 = 0.15;

/// The rate an iperf3 *server* (the receiver) saw during `window` (seconds
/// on the caller's clock, on which the client was started at `start`), in
/// Mbit/s of Ethernet frames: the mean over its one-second intervals that
/// lie wholly inside the window, payload bits scaled to frame bits.
pub fn window_frame_mbit(json: &Value, start: f64, window: (f64, f64)) -> Result<f64, String> {
    if let Some(e) = json.get("error").and_then(Value::as_str) {
        return Err(format!("iperf3 error: {e}"));
    }
    let intervals = json["intervals"]
        .as_array()
        .ok_or("no \"intervals\" in the iperf3 report")?;
    let (mut bytes, mut secs) = (0.0, 0.0);
    for i in intervals {
        let s = &i["sum"];
        let (Some(from), Some(to), Some(b)) =
            (s["start"].as_f64(), s["end"].as_f64(), s["bytes"].as_f64())
        else {
            return Err(format!("interval without start/end/bytes: {s}"));
        };
        if to - from < 0.9 || start + from < window.0 || start + to > window.1 {
            continue;
        }
        bytes += b;
        secs += to - from;
    }
    if secs < 1.9 {
        return Err(format!(
            "fewer than two one-second intervals inside the window {:.2}..{:.2} s (client started at {start:.2} s)",
            window.0, window.1
        ));
    }
    Ok(bytes * 8.0 / secs / 1e6 * FRAME_PER_PAYLOAD)
}
