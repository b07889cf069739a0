//! The traffic file: what the simulator offers to the shaper.
//!
//! TOML is deserialised into plain structs that keep the position of each
//! value (`toml::Spanned`), then converted once into the typed [`Traffic`]
//! (`check.rs`); every error names the file, line and column of the value at
//! fault. The format is documented in `docs/simulator.md`.

mod check;
#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::path::Path;

use super::synth::HeaderSpec;

pub use check::dscp_by_name;
use check::RawTraffic;

/// Most flows over all sources: the flow index shares the 64-bit frame token
/// with a 40-bit sequence number.
pub const MAX_FLOWS: u32 = 1 << 24;

/// A checked traffic description. Times are nanoseconds from the start of
/// the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Traffic {
    /// How long to run (default 10 s).
    pub duration: u64,
    /// Statistics (rates, sojourn percentiles) ignore what happens before
    /// this (default 0).
    pub warmup: u64,
    pub seed: u64,
    /// Name of the config tree to drive (None: the first).
    pub tree: Option<String>,
    pub sources: Vec<Source>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub name: String,
    pub kind: SourceKind,
    pub sizes: Sizes,
    /// Header of the first flow; flow `i` adds `i` to the field `vary`
    /// names.
    pub header: HeaderSpec,
    /// Parallel flows (tcp: connections).
    pub flows: u32,
    pub vary: Vary,
    pub start: u64,
    /// None: until the end of the run.
    pub stop: Option<u64>,
    /// What the first packets of each flow carry (None: zeros).
    pub payload: Option<Payload>,
}

/// The application bytes at the start of each flow of a source, built once
/// when the traffic file is read (by the core's own builders, and checked
/// by its parsers): what a classifier reads to tell apps apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload {
    pub kind: PayloadKind,
    /// The L4 payload bytes: a TLS record, an HTTP request head, or a
    /// whole QUIC Initial datagram.
    pub bytes: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PayloadKind {
    /// A TLS 1.3 ClientHello record, over TCP.
    Tls { sni: String },
    /// A QUIC client Initial (version 1 or 2), over UDP.
    Quic { sni: String, version: u32 },
    /// An HTTP/1.1 GET request head, over TCP.
    Http { host: String, path: String },
}

impl PayloadKind {
    /// A TCP byte stream, cut at segment boundaries as a sender cuts it
    /// (true), or one datagram that must arrive whole (false).
    pub fn is_stream(&self) -> bool {
        !matches!(self, PayloadKind::Quic { .. })
    }

    pub fn name(&self) -> &'static str {
        match self {
            PayloadKind::Tls { .. } => "tls",
            PayloadKind::Quic { .. } => "quic",
            PayloadKind::Http { .. } => "http",
        }
    }
}

/// Which header field tells a source's flows apart: flow `i` carries the
/// first flow's value + `i`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Vary {
    /// Source port (the ICMP echo identifier for ICMP).
    #[default]
    Sport,
    Dport,
    /// Source address (many hosts behind one port, e.g. subscribers).
    Src,
    Dst,
}

impl Vary {
    /// The header of flow `i` (the range was checked when the file was
    /// read).
    pub fn apply(self, h: &HeaderSpec, i: u32) -> HeaderSpec {
        let mut h = *h;
        let add = |a: IpAddr| match a {
            IpAddr::V4(v) => IpAddr::from(std::net::Ipv4Addr::from(u32::from(v).wrapping_add(i))),
            IpAddr::V6(v) => IpAddr::from(std::net::Ipv6Addr::from(
                u128::from(v).wrapping_add(u128::from(i)),
            )),
        };
        match self {
            Vary::Sport => h.sport = h.sport.wrapping_add(i as u16),
            Vary::Dport => h.dport = h.dport.wrapping_add(i as u16),
            Vary::Src => h.src = add(h.src),
            Vary::Dst => h.dst = add(h.dst),
        }
        h
    }
}

/// How an open-loop source spaces its packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pace {
    /// Offered bits/s (frame bytes, as the shaper counts them).
    Rate(u64),
    /// One packet every this many ns.
    Interval(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// Constant bit rate, flows served round robin.
    Cbr { pace: Pace },
    /// CBR during `on`, silent during `off`, repeating from `start`.
    OnOff { pace: Pace, on: u64, off: u64 },
    /// Exponential inter-arrival times with the given mean pace.
    Poisson { pace: Pace },
    /// Responsive Reno-style senders (see `engine` for the model).
    Tcp(TcpParams),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpParams {
    /// Base round-trip time (ns) of the path, queueing excluded.
    pub rtt: u64,
    /// Congestion window at start, packets (default 10, RFC 6928).
    pub initial_cwnd: u32,
    /// Receive-window cap on cwnd, packets (default 10000).
    pub max_cwnd: u32,
}

/// Frame sizes (bytes as the shaper counts them: L2 header included, FCS
/// excluded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sizes {
    Fixed(u32),
    /// (size, weight): each packet picks a size with probability
    /// weight / Σ weights.
    Mix(Vec<(u32, u32)>),
    /// Each flow sends these sizes in this order, then again from the
    /// first (a replay of a recorded flow).
    Seq(Vec<u32>),
}

impl Sizes {
    pub fn max(&self) -> u32 {
        match self {
            Sizes::Fixed(s) => *s,
            Sizes::Mix(m) => m.iter().map(|&(s, _)| s).max().unwrap_or(0),
            Sizes::Seq(v) => v.iter().copied().max().unwrap_or(0),
        }
    }

    pub fn min(&self) -> u32 {
        match self {
            Sizes::Fixed(s) => *s,
            Sizes::Mix(m) => m.iter().map(|&(s, _)| s).min().unwrap_or(0),
            Sizes::Seq(v) => v.iter().copied().min().unwrap_or(0),
        }
    }
}

/// A traffic file that could not be read or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{col}: {message}")]
pub struct TrafficError {
    pub file: String,
    /// 1-based; 0 when the error has no position (e.g. unreadable file).
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl Traffic {
    /// Read and check a traffic file.
    pub fn load(path: &Path) -> Result<Traffic, TrafficError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| TrafficError {
            file: file.clone(),
            line: 0,
            col: 0,
            message: format!("cannot read: {e}"),
        })?;
        Traffic::parse_str(&text, &file)
    }

    /// Parse traffic TOML; `file` is only used in error messages.
    pub fn parse_str(text: &str, file: &str) -> Result<Traffic, TrafficError> {
        let err = |span: Option<std::ops::Range<usize>>, message: String| {
            let (line, col) = span.map_or((0, 0), |s| line_col(text, s.start));
            TrafficError {
                file: file.to_string(),
                line,
                col,
                message,
            }
        };
        let raw: RawTraffic =
            toml::from_str(text).map_err(|e| err(e.span(), e.message().to_string()))?;
        raw.check().map_err(|(span, msg)| err(span, msg))
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, col)
}
