//! Prometheus / OpenMetrics endpoint of `weir run`.
//!
//! The control thread publishes the stats object of its once-a-second tick
//! (`run/json.rs`'s schema) here; a scrape encodes the latest one with
//! `prometheus-client`. So a scrape never asks the workers anything and
//! costs the data path nothing, and every number in one scrape comes from
//! one consistent snapshot.
//!
//! Names follow node_exporter's qdisc collector style: `weir_class_*` per
//! HTB class (labels `tree`, `class`, `name`), `weir_qdisc_*` per leaf
//! qdisc (plus `kind`), `weir_tree_*` per tree, `weir_interface_*` per port
//! (kernel counters from /sys plus the XDP program's), `weir_worker_*` per
//! worker. Counters get `_total` from the encoder. The list is in
//! docs/metrics.md.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use serde_json::Value;
use weir_dataplane::histogram::LogHistogram;

/// Where metrics are served unless told otherwise: loopback only.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9469";

/// The latest published stats, shared with the HTTP thread.
#[derive(Clone, Debug, Default)]
pub struct Published(Arc<Mutex<Option<Value>>>);

impl Published {
    pub fn set(&self, stats: Value) {
        if let Ok(mut g) = self.0.lock() {
            *g = Some(stats);
        }
    }

    fn get(&self) -> Option<Value> {
        self.0.lock().ok().and_then(|g| g.clone())
    }
}

#[derive(Debug)]
struct StatsCollector(Published);

type Labels = Vec<(&'static str, String)>;

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn i(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or("").to_string()
}

/// Encode one metric family: `series` are (labels, value) pairs.
fn family<M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: Vec<(Labels, M)>,
) -> Result<(), std::fmt::Error> {
    let Some(first) = series.first() else {
        return Ok(());
    };
    let mut m = enc.encode_descriptor(name, help, None, first.1.metric_type())?;
    for (labels, metric) in &series {
        metric.encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

fn counters(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: Vec<(Labels, u64)>,
) -> Result<(), std::fmt::Error> {
    family(
        enc,
        name,
        help,
        series
            .into_iter()
            .map(|(l, v)| (l, ConstCounter::new(v)))
            .collect(),
    )
}

fn gauges(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: Vec<(Labels, i64)>,
) -> Result<(), std::fmt::Error> {
    family(
        enc,
        name,
        help,
        series
            .into_iter()
            .map(|(l, v)| (l, ConstGauge::new(v)))
            .collect(),
    )
}

/// Log2 histograms of ns (bucket i holds times up to 2^i - 1 ns, see
/// `LogHistogram`) as one Prometheus histogram family in seconds; series
/// without buckets are left out.
fn log_histograms(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: Vec<(Labels, &Value)>,
) -> Result<(), std::fmt::Error> {
    let series: Vec<(Labels, &Value, &Vec<Value>)> = series
        .into_iter()
        .filter_map(|(l, h)| h["buckets"].as_array().map(|b| (l, h, b)))
        .collect();
    if series.is_empty() {
        return Ok(());
    }
    let mut hist = enc.encode_descriptor(
        name,
        help,
        None,
        prometheus_client::metrics::MetricType::Histogram,
    )?;
    for (labels, h, counts) in &series {
        // Per-bucket counts: the encoder accumulates them, and writes
        // `+Inf` for an upper bound of f64::MAX.
        let buckets: Vec<(f64, u64)> = counts
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let upper = LogHistogram::upper_ns(i);
                let le = if upper == u64::MAX {
                    f64::MAX
                } else {
                    upper as f64 / 1e9
                };
                (le, u(n))
            })
            .collect();
        hist.encode_family(labels)?
            .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                u(&h["sum_ns"]) as f64 / 1e9,
                u(&h["count"]),
                &buckets,
                None,
            )?;
    }
    Ok(())
}

/// (labels, class object) for every class of every tree.
fn classes(stats: &Value) -> Vec<(Labels, &Value)> {
    let mut out = Vec::new();
    for t in stats["trees"].as_array().into_iter().flatten() {
        for c in t["classes"].as_array().into_iter().flatten() {
            out.push((
                vec![
                    ("tree", s(&t["name"])),
                    ("class", s(&c["classid"])),
                    ("name", s(&c["name"])),
                ],
                c,
            ));
        }
    }
    out
}

impl Collector for StatsCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(stats) = self.0.get() else {
            return Ok(());
        };
        let cls = classes(&stats);
        let class_counter = |key: &str| -> Vec<(Labels, u64)> {
            cls.iter().map(|(l, c)| (l.clone(), u(&c[key]))).collect()
        };
        let class_gauge = |key: &str, scale: i64| -> Vec<(Labels, i64)> {
            cls.iter()
                .map(|(l, c)| (l.clone(), i(&c[key]) * scale))
                .collect()
        };
        counters(
            &mut enc,
            "weir_class_bytes",
            "Bytes sent by the class (tc: Sent bytes).",
            class_counter("bytes"),
        )?;
        counters(
            &mut enc,
            "weir_class_packets",
            "Packets sent by the class.",
            class_counter("packets"),
        )?;
        counters(
            &mut enc,
            "weir_class_drops",
            "Packets the class dropped.",
            class_counter("drops"),
        )?;
        counters(
            &mut enc,
            "weir_class_overlimits",
            "Times the class was over its limits when asked to send.",
            class_counter("overlimits"),
        )?;
        counters(
            &mut enc,
            "weir_class_lended",
            "Packets the class sent with its own tokens (tc: lended).",
            class_counter("lended"),
        )?;
        counters(
            &mut enc,
            "weir_class_borrowed",
            "Packets the class sent with tokens borrowed from an ancestor.",
            class_counter("borrowed"),
        )?;
        gauges(
            &mut enc,
            "weir_class_backlog_bytes",
            "Bytes queued in the class.",
            class_gauge("backlog", 1),
        )?;
        gauges(
            &mut enc,
            "weir_class_backlog_packets",
            "Packets queued in the class.",
            class_gauge("qlen", 1),
        )?;
        gauges(
            &mut enc,
            "weir_class_tokens_ns",
            "Rate bucket level, ns of credit (negative: in debt).",
            class_gauge("tokens", 1),
        )?;
        gauges(
            &mut enc,
            "weir_class_ctokens_ns",
            "Ceil bucket level, ns of credit.",
            class_gauge("ctokens", 1),
        )?;
        gauges(
            &mut enc,
            "weir_class_rate_bits_per_second",
            "Configured guaranteed rate.",
            class_gauge("rate", 8),
        )?;
        gauges(
            &mut enc,
            "weir_class_ceil_bits_per_second",
            "Configured ceiling.",
            class_gauge("ceil", 8),
        )?;
        gauges(
            &mut enc,
            "weir_class_rate_estimate_bits_per_second",
            "Measured rate over the last second.",
            class_gauge("rate_est", 1),
        )?;

        let leaves: Vec<(Labels, &Value)> = cls
            .iter()
            .filter(|(_, c)| c["qdisc"].is_object())
            .map(|(l, c)| {
                let mut l = l.clone();
                l.push(("kind", s(&c["qdisc"]["kind"])));
                (l, &c["qdisc"])
            })
            .collect();
        let leaf_counter = |key: &str| -> Vec<(Labels, u64)> {
            leaves
                .iter()
                .filter(|(_, q)| !q[key].is_null())
                .map(|(l, q)| (l.clone(), u(&q[key])))
                .collect()
        };
        counters(
            &mut enc,
            "weir_qdisc_bytes",
            "Bytes the leaf qdisc dequeued.",
            leaf_counter("bytes"),
        )?;
        counters(
            &mut enc,
            "weir_qdisc_packets",
            "Packets the leaf qdisc dequeued.",
            leaf_counter("packets"),
        )?;
        counters(
            &mut enc,
            "weir_qdisc_drops",
            "Packets the leaf qdisc dropped.",
            leaf_counter("drops"),
        )?;
        counters(
            &mut enc,
            "weir_qdisc_overlimits",
            "Leaf qdisc overlimits.",
            leaf_counter("overlimits"),
        )?;
        counters(
            &mut enc,
            "weir_qdisc_ecn_marks",
            "fq_codel: packets CE-marked instead of dropped.",
            leaf_counter("ecn_mark"),
        )?;
        counters(
            &mut enc,
            "weir_qdisc_new_flows",
            "fq_codel: flows that became active.",
            leaf_counter("new_flow_count"),
        )?;
        counters(
            &mut enc,
            "weir_qdisc_drop_overlimit",
            "fq_codel: drops because the qdisc was full.",
            leaf_counter("drop_overlimit"),
        )?;
        counters(
            &mut enc,
            "weir_qdisc_red_early",
            "red: early drops and marks.",
            leaf_counter("early"),
        )?;
        counters(
            &mut enc,
            "weir_qdisc_red_marked",
            "red: packets marked.",
            leaf_counter("marked"),
        )?;
        gauges(
            &mut enc,
            "weir_qdisc_backlog_bytes",
            "Bytes queued in the leaf qdisc.",
            leaves
                .iter()
                .map(|(l, q)| (l.clone(), i(&q["backlog"])))
                .collect(),
        )?;

        let trees: Vec<&Value> = stats["trees"].as_array().into_iter().flatten().collect();
        let tree_label =
            |t: &Value| vec![("tree", s(&t["name"])), ("direction", s(&t["direction"]))];
        counters(
            &mut enc,
            "weir_tree_frames_received",
            "Frames given to the tree.",
            trees
                .iter()
                .map(|t| (tree_label(t), u(&t["frames"]["received"])))
                .collect(),
        )?;
        counters(
            &mut enc,
            "weir_tree_frames_sent",
            "Frames the tree sent.",
            trees
                .iter()
                .map(|t| (tree_label(t), u(&t["frames"]["sent"])))
                .collect(),
        )?;
        let mut dropped = Vec::new();
        for t in &trees {
            if let Some(reasons) = t["frames"]["dropped"].as_object() {
                for (reason, n) in reasons {
                    let mut l = tree_label(t);
                    l.push(("reason", reason.clone()));
                    dropped.push((l, u(n)));
                }
            }
        }
        counters(
            &mut enc,
            "weir_tree_frames_dropped",
            "Frames the tree dropped, by reason.",
            dropped,
        )?;
        gauges(
            &mut enc,
            "weir_tree_frames_queued",
            "Frames queued in the tree.",
            trees
                .iter()
                .map(|t| (tree_label(t), i(&t["frames"]["queued"])))
                .collect(),
        )?;

        log_histograms(
            &mut enc,
            "weir_tree_sojourn_seconds",
            "Time sent packets waited in the tree (enqueue to dequeue).",
            trees
                .iter()
                .map(|t| (tree_label(t), &t["sojourn"]))
                .collect(),
        )?;

        let workers: Vec<&Value> = stats["workers"].as_array().into_iter().flatten().collect();
        let wl = |w: &Value| {
            vec![
                ("worker", u(&w["index"]).to_string()),
                ("pair", s(&w["pair"])),
            ]
        };
        for (key, help) in [
            ("rx_packets", "Frames the worker received."),
            ("tx_packets", "Frames the worker transmitted."),
            ("batches", "Loop iterations that moved frames."),
            ("empty_polls", "Loop iterations that found nothing to do."),
            (
                "tx_ring_full",
                "Times a tx ring was full (retried on completion).",
            ),
            (
                "fill_ring_starved",
                "Times a fill ring could not be refilled: no free frame.",
            ),
            ("handover_out", "Frames handed to another worker."),
            (
                "handover_full_drops",
                "Frames dropped because a hand-over ring was full.",
            ),
        ] {
            counters(
                &mut enc,
                &format!("weir_worker_{key}"),
                help,
                workers.iter().map(|w| (wl(w), u(&w[key]))).collect(),
            )?;
        }
        log_histograms(
            &mut enc,
            "weir_worker_wake_late_seconds",
            "How late the worker woke for a shaper deadline; a class loses the tokens of lateness beyond its burst.",
            workers
                .iter()
                .map(|w| (wl(w), &w["wake_late"]))
                .collect(),
        )?;
        gauges(
            &mut enc,
            "weir_worker_rtprio",
            "SCHED_FIFO priority the worker runs at (0: the normal scheduler).",
            workers.iter().map(|w| (wl(w), i(&w["rtprio"]))).collect(),
        )?;
        gauges(
            &mut enc,
            "weir_worker_frames_in_flight",
            "UMEM frames of the worker that are not free (in rings, queues or hand-over).",
            workers
                .iter()
                .map(|w| {
                    let f = &w["frames"];
                    (
                        wl(w),
                        (u(&f["total"]) - u(&f["free"]).min(u(&f["total"]))) as i64,
                    )
                })
                .collect(),
        )?;

        let ifaces: Vec<&Value> = stats["interfaces"]
            .as_array()
            .into_iter()
            .flatten()
            .collect();
        let il = |x: &Value| vec![("interface", s(&x["name"]))];
        for (key, help) in [
            ("rx_bytes", "Bytes the interface received (kernel counter)."),
            (
                "tx_bytes",
                "Bytes the interface transmitted (kernel counter).",
            ),
            (
                "rx_packets",
                "Packets the interface received (kernel counter).",
            ),
            (
                "tx_packets",
                "Packets the interface transmitted (kernel counter).",
            ),
            ("rx_errors", "Receive errors (kernel counter)."),
            ("tx_errors", "Transmit errors (kernel counter)."),
            ("rx_dropped", "Receive drops (kernel counter)."),
            ("tx_dropped", "Transmit drops (kernel counter)."),
        ] {
            counters(
                &mut enc,
                &format!("weir_interface_{key}"),
                help,
                ifaces
                    .iter()
                    .filter(|x| !x["kernel"][key].is_null())
                    .map(|x| (il(x), u(&x["kernel"][key])))
                    .collect(),
            )?;
        }
        for (key, help) in [
            ("redirected", "Frames the XDP program redirected to weir."),
            (
                "passed_no_socket",
                "Frames passed to the kernel: no weir socket on the queue.",
            ),
            (
                "passed_by_rule",
                "Frames passed to the kernel by a pass prefix.",
            ),
        ] {
            counters(
                &mut enc,
                &format!("weir_xdp_{key}"),
                help,
                ifaces.iter().map(|x| (il(x), u(&x["xdp"][key]))).collect(),
            )?;
        }
        counters(
            &mut enc,
            "weir_xsk_rx_dropped",
            "Frames the kernel dropped on the way into a weir socket (ring full, no fill frame).",
            ifaces
                .iter()
                .map(|x| {
                    (
                        il(x),
                        u(&x["xsk"]["rx_dropped"])
                            + u(&x["xsk"]["rx_ring_full"])
                            + u(&x["xsk"]["rx_fill_ring_empty_descs"]),
                    )
                })
                .collect(),
        )?;
        gauges(
            &mut enc,
            "weir_sla_open",
            "SLA rules whose condition holds now (1 per open rule).",
            stats["sla_open"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| (vec![("rule", s(&r["rule"]))], 1))
                .collect(),
        )?;
        let h = &stats["history"];
        if !h.is_null() {
            let one = |key: &str| vec![(Vec::new(), u(&h[key]))];
            counters(
                &mut enc,
                "weir_history_records_written",
                "Records the history database stored.",
                one("written"),
            )?;
            counters(
                &mut enc,
                "weir_history_records_dropped",
                "Records lost because the history writer was behind.",
                one("dropped"),
            )?;
            counters(
                &mut enc,
                "weir_history_write_errors",
                "Failed history writes (full disk, I/O error); see the log.",
                one("write_errors"),
            )?;
            gauges(
                &mut enc,
                "weir_history_db_bytes",
                "Size of the history database on disk.",
                vec![(Vec::new(), i(&h["db_bytes"]))],
            )?;
        }
        Ok(())
    }
}

/// The kernel's counters of an interface, from /sys (the network namespace
/// of the process: `ip netns exec` mounts its own /sys). Missing files are
/// left out.
pub fn interface_kernel_stats(ifname: &str) -> Value {
    let mut m = serde_json::Map::new();
    for key in [
        "rx_bytes",
        "tx_bytes",
        "rx_packets",
        "tx_packets",
        "rx_errors",
        "tx_errors",
        "rx_dropped",
        "tx_dropped",
    ] {
        let path = format!("/sys/class/net/{ifname}/statistics/{key}");
        if let Some(n) = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
        {
            m.insert(key.to_string(), Value::from(n));
        }
    }
    Value::Object(m)
}

/// The scrape text for `stats` (also used by tests).
pub fn render(published: &Published) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(StatsCollector(published.clone())));
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
        out.clear();
    }
    out
}

#[derive(Debug, thiserror::Error)]
#[error(
    "can't serve metrics on {addr}: {source}; pick another --metrics address, or --metrics none"
)]
pub struct ServeError {
    addr: String,
    source: std::io::Error,
}

/// Mutating calls over HTTP: off unless the operator configures a token
/// (`weir run --http-token-file`). Then `POST /api` with `Authorization:
/// Bearer TOKEN` takes the same JSON request as the unix socket.
pub struct HttpApi {
    pub token: String,
    pub forward: Box<dyn Fn(weir_api::Pending) -> bool + Send + Sync>,
}

/// The shortest token accepted: guessing one must not be practical.
pub const MIN_TOKEN_LEN: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("can't read the HTTP token file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the HTTP token file {path} can be read by group or others (mode {mode:o}); expected mode 0600 or 0400 (chmod 600 {path})")]
    Mode { path: String, mode: u32 },
    #[error("the HTTP token in {path} is {len} characters; expected at least {MIN_TOKEN_LEN} (e.g. `openssl rand -hex 32 > {path}`)")]
    Short { path: String, len: usize },
}

/// Read the token: the file's first line, trimmed. The file must be
/// private, as any secret.
pub fn read_token(path: &std::path::Path) -> Result<String, TokenError> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|source| TokenError::Read {
        path: shown.clone(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(TokenError::Mode { path: shown, mode });
    }
    let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
        path: shown.clone(),
        source,
    })?;
    let token = text.lines().next().unwrap_or("").trim().to_string();
    if token.len() < MIN_TOKEN_LEN {
        return Err(TokenError::Short {
            path: shown,
            len: token.len(),
        });
    }
    Ok(token)
}

/// Serve `GET /metrics` (and, with `api`, `POST /api`) on `addr` from a
/// thread of its own.
pub fn serve(
    addr: SocketAddr,
    published: Published,
    api: Option<HttpApi>,
) -> Result<SocketAddr, ServeError> {
    let listener = TcpListener::bind(addr).map_err(|source| ServeError {
        addr: addr.to_string(),
        source,
    })?;
    let bound = listener.local_addr().unwrap_or(addr);
    std::thread::Builder::new()
        .name("weir-metrics".into())
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                answer(conn, &published, api.as_ref());
            }
        })
        .map_err(|source| ServeError {
            addr: addr.to_string(),
            source,
        })?;
    Ok(bound)
}

/// Compare without an early exit, so the time taken says nothing about how
/// much of a guess was right.
fn same_token(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

/// One HTTP/1.1 request, one response, connection closed. Requests are
/// read from the one listener thread, so a slow client is bounded by the
/// 5 s timeouts.
fn answer(mut conn: TcpStream, published: &Published, api: Option<&HttpApi>) {
    use std::io::Read;
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = conn.set_write_timeout(Some(Duration::from_secs(5)));
    let mut request_line = String::new();
    let mut authorization = None;
    let mut content_length = 0usize;
    let mut body = Vec::new();
    {
        let mut reader = BufReader::new(&conn);
        if reader.read_line(&mut request_line).is_err() {
            return;
        }
        let mut line = String::new();
        for _ in 0..100 {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) if line == "\r\n" || line == "\n" => break,
                Ok(_) => {
                    if let Some((name, value)) = line.split_once(':') {
                        let value = value.trim().to_string();
                        match name.trim().to_ascii_lowercase().as_str() {
                            "authorization" => authorization = Some(value),
                            "content-length" => {
                                content_length = value.parse().unwrap_or(usize::MAX)
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        let mut parts = request_line.split_whitespace();
        if parts.next() == Some("POST") && content_length <= weir_api::MAX_REQUEST {
            body.resize(content_length, 0);
            if reader.read_exact(&mut body).is_err() {
                body.clear();
            }
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let text = |status: &'static str, msg: &str| (status, "text/plain", msg.to_string());
    let (status, ctype, body) = match (method, path) {
        ("GET", p) if p == "/metrics" || p.starts_with("/metrics?") => (
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            render(published),
        ),
        ("POST", "/api") => match api {
            None => text(
                "403 Forbidden",
                "mutating calls over HTTP are off; use the unix socket (weir class change …), or start weir run with --http-token-file\n",
            ),
            Some(api) => {
                let given = authorization
                    .as_deref()
                    .and_then(|a| a.strip_prefix("Bearer "))
                    .map(str::trim);
                if !given.is_some_and(|g| same_token(g, &api.token)) {
                    text(
                        "401 Unauthorized",
                        "expected the header `Authorization: Bearer TOKEN` with the token of --http-token-file\n",
                    )
                } else if content_length > weir_api::MAX_REQUEST {
                    text("413 Payload Too Large", "a request is one JSON object of at most 64 KiB\n")
                } else {
                    let body = String::from_utf8_lossy(&body);
                    let response = weir_api::dispatch(&body, &*api.forward);
                    let status = if response.ok { "200 OK" } else { "400 Bad Request" };
                    let json = serde_json::to_string(&response).unwrap_or_else(|_| {
                        r#"{"ok":false,"error":"unencodable response"}"#.to_string()
                    });
                    (status, "application/json", json + "\n")
                }
            }
        },
        _ => text(
            "404 Not Found",
            "weir serves GET /metrics (and POST /api when a token is configured)\n",
        ),
    };
    let auth = if status.starts_with("401") {
        "WWW-Authenticate: Bearer realm=\"weir\"\r\n"
    } else {
        ""
    };
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{auth}Connection: close\r\n\r\n{body}",
        body.len()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_classes_leaves_trees_workers_interfaces() {
        let p = Published::default();
        let mut sojourn = vec![0u64; weir_dataplane::shaper::SOJOURN_BUCKETS];
        sojourn[3] = 1; // 5 ns
        sojourn[23] = 1; // 5 ms
        assert_eq!(
            render(&p).trim(),
            "# EOF",
            "nothing published yet: an empty exposition"
        );
        p.set(serde_json::json!({
            "trees": [{"name": "up", "direction": "upload",
                "frames": {"received": 10, "sent": 7, "queued": 1, "dropped": {"queue_limit": 2}},
                "sojourn": {"count": 2, "sum_ns": 5_000_005, "buckets": sojourn},
                "classes": [{"classid": "1:10", "name": "high", "bytes": 1500, "packets": 1, "drops": 2,
                    "overlimits": 3, "lended": 1, "borrowed": 0, "backlog": 100, "qlen": 1, "tokens": -5,
                    "ctokens": 7, "rate": 125, "ceil": 250, "rate_est": 1000,
                    "qdisc": {"kind": "fq_codel", "bytes": 1500, "packets": 1, "drops": 2, "overlimits": 0,
                              "backlog": 100, "ecn_mark": 4, "new_flow_count": 1, "drop_overlimit": 0}}]}],
            "workers": [{"index": 0, "pair": "lab", "rx_packets": 10, "tx_packets": 7, "frames": {"total": 64, "free": 60},
                "rtprio": 10, "wake_late": {"count": 1, "sum_ns": 5_000_000, "buckets": sojourn}}],
            "interfaces": [{"name": "weir-in", "kernel": {"rx_bytes": 42}, "xdp": {"redirected": 10}, "xsk": {"rx_dropped": 1}}],
        }));
        let text = render(&p);
        for needle in [
            "weir_class_bytes_total{tree=\"up\",class=\"1:10\",name=\"high\"} 1500",
            "weir_class_tokens_ns{tree=\"up\",class=\"1:10\",name=\"high\"} -5",
            "weir_class_rate_bits_per_second{tree=\"up\",class=\"1:10\",name=\"high\"} 1000",
            "weir_qdisc_ecn_marks_total{tree=\"up\",class=\"1:10\",name=\"high\",kind=\"fq_codel\"} 4",
            "weir_tree_frames_dropped_total{tree=\"up\",direction=\"upload\",reason=\"queue_limit\"} 2",
            "weir_worker_frames_in_flight{worker=\"0\",pair=\"lab\"} 4",
            "weir_interface_rx_bytes_total{interface=\"weir-in\"} 42",
            "weir_xdp_redirected_total{interface=\"weir-in\"} 10",
            "# TYPE weir_class_backlog_bytes gauge",
            "# TYPE weir_tree_sojourn_seconds histogram",
            "weir_tree_sojourn_seconds_count{tree=\"up\",direction=\"upload\"} 2",
            "weir_tree_sojourn_seconds_bucket{le=\"+Inf\",tree=\"up\",direction=\"upload\"} 2",
            "weir_worker_rtprio{worker=\"0\",pair=\"lab\"} 10",
            "# TYPE weir_worker_wake_late_seconds histogram",
            "weir_worker_wake_late_seconds_sum{worker=\"0\",pair=\"lab\"} 0.005",
        ] {
            assert!(text.contains(needle), "missing {needle}:\n{text}");
        }
    }

    #[test]
    fn serves_metrics_and_404s_the_rest() {
        use std::io::Read;
        let p = Published::default();
        p.set(serde_json::json!({"trees": [], "workers": [], "interfaces": []}));
        let addr = serve("127.0.0.1:0".parse().expect("addr"), p, None).expect("bind");
        let get = |path: &str| {
            let mut c = TcpStream::connect(addr).expect("connect");
            write!(c, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
            let mut s = String::new();
            c.read_to_string(&mut s).expect("read");
            s
        };
        let ok = get("/metrics");
        assert!(ok.starts_with("HTTP/1.1 200 OK"), "{ok}");
        assert!(ok.contains("application/openmetrics-text"), "{ok}");
        assert!(get("/").starts_with("HTTP/1.1 404"));
    }

    fn post(addr: SocketAddr, auth: Option<&str>, body: &str) -> String {
        use std::io::Read;
        let mut c = TcpStream::connect(addr).expect("connect");
        let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
        write!(
            c,
            "POST /api HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("write");
        let mut s = String::new();
        c.read_to_string(&mut s).expect("read");
        s
    }

    #[test]
    fn mutating_calls_need_a_configured_token() {
        let reload = r#"{"cmd":"reload"}"#;
        // No token configured: refused whatever the client sends.
        let addr = serve(
            "127.0.0.1:0".parse().expect("addr"),
            Published::default(),
            None,
        )
        .expect("bind");
        let r = post(addr, Some("Bearer whatever-whatever-1"), reload);
        assert!(r.starts_with("HTTP/1.1 403"), "{r}");

        // With a token: only the right one gets through to the control
        // thread, which here answers every request with its cmd.
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let api = HttpApi {
            token: "0123456789abcdef-token".into(),
            forward: Box::new(move |p: weir_api::Pending| {
                log.lock().expect("lock").push(p.request.clone());
                let _ = p.reply.send(weir_api::Response::text("reloaded\n".into()));
                true
            }),
        };
        let addr = serve(
            "127.0.0.1:0".parse().expect("addr"),
            Published::default(),
            Some(api),
        )
        .expect("bind");
        for auth in [
            None,
            Some("Bearer wrong-wrong-wrong-wrong"),
            Some("Basic abc"),
            Some("Bearer 0123456789abcdef-toke"),
        ] {
            let r = post(addr, auth, reload);
            assert!(r.starts_with("HTTP/1.1 401"), "{auth:?}: {r}");
            assert!(r.contains("WWW-Authenticate: Bearer"), "{r}");
        }
        assert!(
            seen.lock().expect("lock").is_empty(),
            "nothing forwarded yet"
        );
        let r = post(addr, Some("Bearer 0123456789abcdef-token"), reload);
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(r.contains(r#""text":"reloaded\n""#), "{r}");
        let r = post(addr, Some("Bearer 0123456789abcdef-token"), "{not json");
        assert!(r.starts_with("HTTP/1.1 400"), "{r}");
        assert!(r.contains("bad request"), "{r}");
        assert_eq!(seen.lock().expect("lock").len(), 1, "only the good request");
        // GET /metrics stays open without a token.
        let mut c = TcpStream::connect(addr).expect("connect");
        write!(c, "GET /metrics HTTP/1.1\r\n\r\n").expect("write");
        let mut s = String::new();
        std::io::Read::read_to_string(&mut c, &mut s).expect("read");
        assert!(s.starts_with("HTTP/1.1 200"), "{s}");
    }

    #[test]
    fn token_files_must_be_private_and_long() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("weir-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let f = dir.join("token");
        std::fs::write(&f, "0123456789abcdef-token\n").expect("write");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(read_token(&f), Err(TokenError::Mode { .. })));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(read_token(&f).expect("token"), "0123456789abcdef-token");
        std::fs::write(&f, "short\n").expect("write");
        assert!(matches!(read_token(&f), Err(TokenError::Short { .. })));
        assert!(matches!(
            read_token(&dir.join("missing")),
            Err(TokenError::Read { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
