//! The traffic file: what the simulator offers to the shaper.
//!
//! TOML is deserialised into plain structs that keep the position of each
//! value (`toml::Spanned`), then converted once into the typed [`Traffic`];
//! every error names the file, line and column of the value at fault. The
//! format is documented in `docs/simulator.md`.

use std::net::IpAddr;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::frame::{HeaderSpec, Proto, MAX_FRAME};
use super::units::{parse_duration, parse_rate};

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
}

impl Sizes {
    pub fn max(&self) -> u32 {
        match self {
            Sizes::Fixed(s) => *s,
            Sizes::Mix(m) => m.iter().map(|&(s, _)| s).max().unwrap_or(0),
        }
    }

    pub fn min(&self) -> u32 {
        match self {
            Sizes::Fixed(s) => *s,
            Sizes::Mix(m) => m.iter().map(|&(s, _)| s).min().unwrap_or(0),
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

type Span = Option<std::ops::Range<usize>>;
type CheckResult<T> = Result<T, (Span, String)>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTraffic {
    duration: Option<Spanned<String>>,
    warmup: Option<Spanned<String>>,
    seed: Option<u64>,
    tree: Option<String>,
    #[serde(default, rename = "source")]
    sources: Vec<Spanned<RawSource>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    name: Option<Spanned<String>>,
    kind: Option<Spanned<String>>,
    rate: Option<Spanned<toml::Value>>,
    interval: Option<Spanned<String>>,
    size: Option<Spanned<i64>>,
    sizes: Option<Spanned<Vec<(i64, i64)>>>,
    dscp: Option<Spanned<toml::Value>>,
    tos: Option<Spanned<i64>>,
    ecn: Option<Spanned<String>>,
    proto: Option<Spanned<String>>,
    src: Option<Spanned<String>>,
    dst: Option<Spanned<String>>,
    sport: Option<Spanned<i64>>,
    dport: Option<Spanned<i64>>,
    vlan: Option<Spanned<i64>>,
    flows: Option<Spanned<i64>>,
    count: Option<Spanned<i64>>,
    vary: Option<Spanned<String>>,
    start: Option<Spanned<String>>,
    stop: Option<Spanned<String>>,
    on: Option<Spanned<String>>,
    off: Option<Spanned<String>>,
    rtt: Option<Spanned<String>>,
    initial_cwnd: Option<Spanned<i64>>,
    max_cwnd: Option<Spanned<i64>>,
}

fn at<T>(v: &Spanned<T>) -> Span {
    Some(v.span())
}

fn duration_of(v: &Spanned<String>, what: &str) -> CheckResult<u64> {
    parse_duration(v.get_ref()).map_err(|e| (at(v), format!("{what}: {e}")))
}

fn int_in<T: TryFrom<i64>>(v: &Spanned<i64>, what: &str, lo: i64, hi: i64) -> CheckResult<T> {
    let x = *v.get_ref();
    if x < lo || x > hi {
        return Err((at(v), format!("{what} must be within {lo}..={hi}, got {x}")));
    }
    T::try_from(x).map_err(|_| (at(v), format!("{what} out of range")))
}

impl RawTraffic {
    fn check(self) -> CheckResult<Traffic> {
        let duration = match &self.duration {
            Some(d) => duration_of(d, "duration")?,
            None => 10_000_000_000,
        };
        if duration == 0 {
            return Err((
                self.duration.as_ref().and_then(at),
                "duration must be above zero".into(),
            ));
        }
        let warmup = match &self.warmup {
            Some(w) => duration_of(w, "warmup")?,
            None => 0,
        };
        let mut sources = Vec::with_capacity(self.sources.len());
        let mut total_flows: u64 = 0;
        for (i, s) in self.sources.into_iter().enumerate() {
            let span = at(&s);
            let src = s.into_inner().check(i, span.clone())?;
            if sources.iter().any(|o: &Source| o.name == src.name) {
                return Err((span, format!("two sources are named '{}'", src.name)));
            }
            total_flows += u64::from(src.flows);
            if total_flows > u64::from(MAX_FLOWS) {
                return Err((span, format!("more than {MAX_FLOWS} flows in all")));
            }
            sources.push(src);
        }
        Ok(Traffic {
            duration,
            warmup,
            seed: self.seed.unwrap_or(1),
            tree: self.tree,
            sources,
        })
    }
}

fn dscp_value(v: &Spanned<toml::Value>) -> CheckResult<u8> {
    let bad = || {
        (
            at(v),
            "dscp must be 0..=63 or a name (EF, VA, AF11..AF43, CS0..CS7, BE/DF, LE)".to_string(),
        )
    };
    match v.get_ref() {
        toml::Value::Integer(n) if (0..=63).contains(n) => Ok(*n as u8),
        toml::Value::String(s) => dscp_by_name(s).ok_or_else(bad),
        _ => Err(bad()),
    }
}

/// DSCP code points by their RFC names.
pub fn dscp_by_name(name: &str) -> Option<u8> {
    let n = name.trim().to_ascii_uppercase();
    match n.as_str() {
        "EF" => return Some(46),
        "VA" | "VOICE-ADMIT" => return Some(44),
        "BE" | "DF" | "DEFAULT" => return Some(0),
        "LE" => return Some(1),
        _ => {}
    }
    let b = n.as_bytes();
    if let (Some(rest), true) = (n.strip_prefix("CS"), b.len() == 3) {
        let x: u8 = rest.parse().ok()?;
        return (x <= 7).then_some(x << 3);
    }
    if let (Some(rest), true) = (n.strip_prefix("AF"), b.len() == 4) {
        let class = rest.as_bytes()[0].wrapping_sub(b'0');
        let drop = rest.as_bytes()[1].wrapping_sub(b'0');
        if (1..=4).contains(&class) && (1..=3).contains(&drop) {
            return Some(class * 8 + drop * 2);
        }
    }
    None
}

fn addr_value(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u128::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v),
    }
}

fn addr_max(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(_) => u128::from(u32::MAX),
        IpAddr::V6(_) => u128::MAX,
    }
}

fn parse_addr(v: &Spanned<String>, what: &str) -> CheckResult<IpAddr> {
    v.get_ref().trim().parse().map_err(|_| {
        (
            at(v),
            format!("{what}: '{}' is not an IP address", v.get_ref()),
        )
    })
}

impl RawSource {
    fn check(self, index: usize, span: Span) -> CheckResult<Source> {
        let name = match &self.name {
            Some(n) if n.get_ref().trim().is_empty() => {
                return Err((at(n), "name must not be empty".into()))
            }
            Some(n) => n.get_ref().clone(),
            None => format!("source{}", index + 1),
        };
        let ctx = |msg: String| format!("source '{name}': {msg}");
        let kind_name = self.kind.as_ref().map_or("cbr", |k| k.get_ref().as_str());
        let kind_span = self.kind.as_ref().and_then(at).or(span.clone());
        let is_tcp = kind_name == "tcp";

        let pace = || -> CheckResult<Pace> {
            match (&self.rate, &self.interval) {
                (Some(r), None) => {
                    let bps = match r.get_ref() {
                        toml::Value::String(s) => {
                            parse_rate(s).map_err(|e| (at(r), ctx(format!("rate: {e}"))))?
                        }
                        toml::Value::Integer(n) if *n > 0 => *n as u64,
                        _ => return Err((at(r), ctx("rate must be like \"10mbit\"".into()))),
                    };
                    Ok(Pace::Rate(bps))
                }
                (None, Some(i)) => {
                    let ns = duration_of(i, "interval").map_err(|(s, m)| (s, ctx(m)))?;
                    if ns == 0 {
                        return Err((at(i), ctx("interval must be above zero".into())));
                    }
                    Ok(Pace::Interval(ns))
                }
                (Some(r), Some(_)) => {
                    Err((at(r), ctx("give either rate or interval, not both".into())))
                }
                (None, None) => Err((
                    span.clone(),
                    ctx(format!("a {kind_name} source needs rate (or interval)")),
                )),
            }
        };
        let need = |v: &Option<Spanned<String>>, what: &str| -> CheckResult<u64> {
            match v {
                Some(v) => duration_of(v, what).map_err(|(s, m)| (s, ctx(m))),
                None => Err((
                    span.clone(),
                    ctx(format!("a {kind_name} source needs {what}")),
                )),
            }
        };
        let forbid = |present: bool, what: &str, kinds: &str| -> CheckResult<()> {
            if present {
                Err((
                    span.clone(),
                    ctx(format!("{what} only applies to {kinds} sources")),
                ))
            } else {
                Ok(())
            }
        };
        forbid(
            !matches!(kind_name, "onoff") && (self.on.is_some() || self.off.is_some()),
            "on/off",
            "onoff",
        )?;
        forbid(
            !is_tcp
                && (self.rtt.is_some() || self.initial_cwnd.is_some() || self.max_cwnd.is_some()),
            "rtt/initial_cwnd/max_cwnd",
            "tcp",
        )?;
        let kind = match kind_name {
            "cbr" => SourceKind::Cbr { pace: pace()? },
            "poisson" => SourceKind::Poisson { pace: pace()? },
            "onoff" => {
                let pace = pace()?;
                let on = need(&self.on, "on")?;
                let off = need(&self.off, "off")?;
                if on == 0 {
                    return Err((
                        self.on.as_ref().and_then(at),
                        ctx("on must be above zero".into()),
                    ));
                }
                SourceKind::OnOff { pace, on, off }
            }
            "tcp" => {
                if self.rate.is_some() || self.interval.is_some() {
                    return Err((
                        span.clone(),
                        ctx("a tcp source is window-limited: rate/interval do not apply (shape it with the config)".into()),
                    ));
                }
                let rtt = need(&self.rtt, "rtt")?;
                if rtt == 0 {
                    return Err((
                        self.rtt.as_ref().and_then(at),
                        ctx("rtt must be above zero".into()),
                    ));
                }
                let initial_cwnd = match &self.initial_cwnd {
                    Some(v) => {
                        int_in(v, "initial_cwnd", 1, 1 << 20).map_err(|(s, m)| (s, ctx(m)))?
                    }
                    None => 10,
                };
                let max_cwnd = match &self.max_cwnd {
                    Some(v) => int_in(v, "max_cwnd", 2, 1 << 24).map_err(|(s, m)| (s, ctx(m)))?,
                    None => 10_000,
                };
                SourceKind::Tcp(TcpParams {
                    rtt,
                    initial_cwnd,
                    max_cwnd,
                })
            }
            other => {
                return Err((
                    kind_span,
                    ctx(format!("unknown kind '{other}' (cbr, onoff, poisson, tcp)")),
                ))
            }
        };

        let proto = match &self.proto {
            None if is_tcp => Proto::Tcp,
            None => Proto::Udp,
            Some(p) => match p.get_ref().to_ascii_lowercase().as_str() {
                "udp" => Proto::Udp,
                "tcp" => Proto::Tcp,
                "icmp" | "icmpv6" => Proto::Icmp,
                other => {
                    return Err((
                        at(p),
                        ctx(format!("unknown proto '{other}' (udp, tcp, icmp)")),
                    ))
                }
            },
        };
        let src = match &self.src {
            Some(a) => parse_addr(a, "src").map_err(|(s, m)| (s, ctx(m)))?,
            None => IpAddr::from([198, 18, 0, 1]),
        };
        let dst = match &self.dst {
            Some(a) => parse_addr(a, "dst").map_err(|(s, m)| (s, ctx(m)))?,
            None if src.is_ipv6() => "2001:2::2".parse().expect("literal"),
            None => IpAddr::from([198, 18, 0, 2]),
        };
        if src.is_ipv6() != dst.is_ipv6() {
            return Err((
                self.dst.as_ref().and_then(at).or(span.clone()),
                ctx("src and dst must both be IPv4 or both IPv6".into()),
            ));
        }
        let flows: u32 = match (&self.flows, &self.count) {
            (Some(_), Some(c)) => {
                return Err((
                    at(c),
                    ctx("give flows or count, not both (they mean the same)".into()),
                ))
            }
            (Some(v), None) | (None, Some(v)) => {
                int_in(v, "flows", 1, i64::from(MAX_FLOWS)).map_err(|(s, m)| (s, ctx(m)))?
            }
            (None, None) => 1,
        };
        let sport: u16 = match &self.sport {
            Some(v) => int_in(v, "sport", 0, 65535).map_err(|(s, m)| (s, ctx(m)))?,
            None => 10_000u16.wrapping_add(((index as u32 % 50) * 1000) as u16),
        };
        let dport: u16 = match &self.dport {
            Some(v) => int_in(v, "dport", 0, 65535).map_err(|(s, m)| (s, ctx(m)))?,
            None => 5001,
        };
        let vary = match &self.vary {
            None => Vary::Sport,
            Some(v) => match v.get_ref().as_str() {
                "sport" => Vary::Sport,
                "dport" => Vary::Dport,
                "src" => Vary::Src,
                "dst" => Vary::Dst,
                other => {
                    return Err((
                        at(v),
                        ctx(format!("unknown vary '{other}' (sport, dport, src, dst)")),
                    ))
                }
            },
        };
        let last = u128::from(flows - 1);
        let (what, first, max, key) = match vary {
            Vary::Sport => (
                "sport",
                u128::from(sport),
                65535,
                self.sport.as_ref().and_then(at),
            ),
            Vary::Dport => (
                "dport",
                u128::from(dport),
                65535,
                self.dport.as_ref().and_then(at),
            ),
            Vary::Src => (
                "src",
                addr_value(src),
                addr_max(src),
                self.src.as_ref().and_then(at),
            ),
            Vary::Dst => (
                "dst",
                addr_value(dst),
                addr_max(dst),
                self.dst.as_ref().and_then(at),
            ),
        };
        if first.saturating_add(last) > max {
            return Err((
                key.or(span.clone()),
                ctx(format!(
                    "{what} of the first flow + {flows} flows runs past the largest {what}"
                )),
            ));
        }
        let vlan: Option<u16> = match &self.vlan {
            Some(v) => Some(int_in(v, "vlan", 0, 4095).map_err(|(s, m)| (s, ctx(m)))?),
            None => None,
        };
        let mut tos: u8 = match (&self.dscp, &self.tos) {
            (Some(d), None) => dscp_value(d).map_err(|(s, m)| (s, ctx(m)))? << 2,
            (None, Some(t)) => int_in(t, "tos", 0, 255).map_err(|(s, m)| (s, ctx(m)))?,
            (None, None) => 0,
            (Some(d), Some(_)) => return Err((at(d), ctx("give dscp or tos, not both".into()))),
        };
        if let Some(e) = &self.ecn {
            let bits = match e.get_ref().to_ascii_lowercase().as_str() {
                "not-ect" | "none" | "off" => 0,
                "ect1" | "ect(1)" => 1,
                "ect0" | "ect(0)" | "ect" => 2,
                "ce" => 3,
                other => {
                    return Err((
                        at(e),
                        ctx(format!("unknown ecn '{other}' (not-ect, ect0, ect1, ce)")),
                    ))
                }
            };
            tos = (tos & 0xfc) | bits;
        }
        let header = HeaderSpec {
            proto,
            src,
            dst,
            sport,
            dport,
            tos,
            vlan,
        };
        let min = header.header_len();
        let size_ok = |v: &Spanned<i64>, what: &str| -> CheckResult<u32> {
            int_in(v, what, i64::from(min), i64::from(MAX_FRAME)).map_err(|(s, m)| {
                (
                    s,
                    ctx(format!(
                        "{m} (smallest frame for these headers: {min} bytes)"
                    )),
                )
            })
        };
        let sizes = match (&self.size, &self.sizes) {
            (Some(s), None) => Sizes::Fixed(size_ok(s, "size")?),
            (None, None) => Sizes::Fixed(1500.max(min)),
            (None, Some(list)) => {
                if list.get_ref().is_empty() {
                    return Err((at(list), ctx("sizes must not be empty".into())));
                }
                let mut mix = Vec::with_capacity(list.get_ref().len());
                for &(size, weight) in list.get_ref() {
                    let sp = Spanned::new(list.span(), size);
                    let s = size_ok(&sp, "sizes: size")?;
                    if !(1..=1_000_000).contains(&weight) {
                        return Err((
                            at(list),
                            ctx(format!("sizes: weight {weight} must be within 1..=1000000")),
                        ));
                    }
                    mix.push((s, weight as u32));
                }
                Sizes::Mix(mix)
            }
            (Some(s), Some(_)) => return Err((at(s), ctx("give size or sizes, not both".into()))),
        };
        let start = match &self.start {
            Some(v) => duration_of(v, "start").map_err(|(s, m)| (s, ctx(m)))?,
            None => 0,
        };
        let stop = match &self.stop {
            Some(v) => Some(duration_of(v, "stop").map_err(|(s, m)| (s, ctx(m)))?),
            None => None,
        };
        if let Some(stop) = stop {
            if stop <= start {
                return Err((
                    self.stop.as_ref().and_then(at),
                    ctx("stop must be after start".into()),
                ));
            }
        }
        Ok(Source {
            name,
            kind,
            sizes,
            header,
            flows,
            vary,
            start,
            stop,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_example_parses() {
        let t = Traffic::parse_str(
            r#"
duration = "5s"
warmup = "1s"
seed = 7
tree = "up"

[[source]]
name = "voice"
kind = "cbr"
rate = "10mbit"
size = 200
dscp = "EF"
src = "198.18.0.1"
dst = "198.18.0.2"
sport = 5000
dport = 80
flows = 4
start = "0s"
stop = "4s"

[[source]]
name = "imix"
kind = "onoff"
rate = "100mbit"
sizes = [[64, 7], [570, 4], [1518, 1]]
on = "1s"
off = "500ms"
tos = 0x28
ecn = "ect1"
vlan = 10

[[source]]
name = "bulk"
kind = "tcp"
rtt = "20ms"
count = 4
ecn = "ect0"

[[source]]
kind = "poisson"
interval = "10ms"
size = 100
proto = "icmp"
src = "2001:2::1"
"#,
            "t.toml",
        )
        .unwrap();
        assert_eq!(t.duration, 5_000_000_000);
        assert_eq!(t.warmup, 1_000_000_000);
        assert_eq!(t.seed, 7);
        assert_eq!(t.tree.as_deref(), Some("up"));
        assert_eq!(t.sources.len(), 4);
        let v = &t.sources[0];
        assert_eq!(
            v.kind,
            SourceKind::Cbr {
                pace: Pace::Rate(10_000_000)
            }
        );
        assert_eq!(v.header.tos, 46 << 2);
        assert_eq!(v.flows, 4);
        assert_eq!(v.stop, Some(4_000_000_000));
        let m = &t.sources[1];
        assert_eq!(m.sizes, Sizes::Mix(vec![(64, 7), (570, 4), (1518, 1)]));
        assert_eq!(m.header.tos, 0x29);
        assert_eq!(m.header.vlan, Some(10));
        assert!(matches!(
            m.kind,
            SourceKind::OnOff {
                on: 1_000_000_000,
                off: 500_000_000,
                ..
            }
        ));
        let b = &t.sources[2];
        assert_eq!(b.header.proto, Proto::Tcp);
        assert_eq!(b.header.tos, 2);
        assert_eq!(b.flows, 4);
        assert_eq!(
            b.kind,
            SourceKind::Tcp(TcpParams {
                rtt: 20_000_000,
                initial_cwnd: 10,
                max_cwnd: 10_000
            })
        );
        let p = &t.sources[3];
        assert_eq!(p.name, "source4");
        assert!(p.header.dst.is_ipv6());
        assert_eq!(
            p.kind,
            SourceKind::Poisson {
                pace: Pace::Interval(10_000_000)
            }
        );
    }

    #[test]
    fn defaults() {
        let t = Traffic::parse_str("[[source]]\nrate = \"1mbit\"\n", "t").unwrap();
        assert_eq!(t.duration, 10_000_000_000);
        assert_eq!((t.seed, t.warmup), (1, 0));
        assert_eq!(t.sources[0].sizes, Sizes::Fixed(1500));
        assert_eq!(t.sources[0].header.proto, Proto::Udp);
    }

    fn error(text: &str) -> TrafficError {
        Traffic::parse_str(text, "t.toml").unwrap_err()
    }

    #[test]
    fn errors_point_at_the_value() {
        let e = error("duration = \"10s\"\n[[source]]\nrate = \"10mbt\"\n");
        assert_eq!((e.line, e.col), (3, 8), "{e}");
        assert!(
            e.to_string()
                .starts_with("t.toml:3:8: source 'source1': rate:"),
            "{e}"
        );

        let e = error("duration = \"10\"\n");
        assert_eq!(e.line, 1);
        assert!(e.message.contains("needs a unit"), "{e}");

        let e = error("[[source]]\nrate = \"1mbit\"\nsize = 20\n");
        assert_eq!(e.line, 3);
        assert!(e.message.contains("42 bytes"), "{e}");

        let e = error("[[source]]\nrate = \"1mbit\"\nbogus = 1\n");
        assert!(e.message.contains("bogus"), "{e}");
        assert_eq!(e.line, 3, "{e}");

        assert!(error("[[source]]\nkind = \"tcp\"\n")
            .message
            .contains("rtt"));
        assert!(
            error("[[source]]\nkind = \"tcp\"\nrtt = \"1ms\"\nrate = \"1mbit\"\n")
                .message
                .contains("window-limited")
        );
        assert!(error("[[source]]\n").message.contains("needs rate"));
        assert!(error("[[source]]\nrate = \"1mbit\"\ndscp = \"AF5\"\n")
            .message
            .contains("dscp"));
        assert!(
            error("[[source]]\nrate = \"1mbit\"\nsrc = \"::1\"\ndst = \"198.18.0.2\"\n")
                .message
                .contains("both")
        );
        assert!(
            error("[[source]]\nrate = \"1mbit\"\nsport = 65535\nflows = 2\n")
                .message
                .contains("runs past the largest sport")
        );
        assert!(error(
            "[[source]]\nrate = \"1mbit\"\ndport = 65535\nflows = 2\nvary = \"dport\"\n"
        )
        .message
        .contains("dport"));
        assert!(error(
            "[[source]]\nrate = \"1mbit\"\nsrc = \"255.255.255.255\"\nflows = 2\nvary = \"src\"\n"
        )
        .message
        .contains("src"));
        assert!(error("[[source]]\nrate = \"1mbit\"\nvary = \"ttl\"\n")
            .message
            .contains("unknown vary"));
        assert!(
            error("[[source]]\nrate = \"1mbit\"\nstart = \"2s\"\nstop = \"1s\"\n")
                .message
                .contains("after start")
        );
        assert!(error(
            "[[source]]\nrate = \"1mbit\"\n[[source]]\nname = \"source1\"\nrate = \"1mbit\"\n"
        )
        .message
        .contains("two sources"));
        assert!(
            error("[[source]]\nkind = \"onoff\"\nrate = \"1mbit\"\non = \"1s\"\n")
                .message
                .contains("needs off")
        );
        assert!(error("[[source]]\nkind = \"burst\"\nrate = \"1mbit\"\n")
            .message
            .contains("unknown kind"));
    }

    #[test]
    fn flows_vary_the_chosen_field() {
        let t = Traffic::parse_str(
            "[[source]]\nrate = \"1mbit\"\nsport = 80\ndport = 40000\nflows = 3\nvary = \"dport\"\n\
             [[source]]\nrate = \"1mbit\"\nsrc = \"198.18.0.255\"\nflows = 2\nvary = \"src\"\n",
            "t",
        )
        .unwrap();
        let s = &t.sources[0];
        let h = s.vary.apply(&s.header, 2);
        assert_eq!((h.sport, h.dport), (80, 40002));
        let s = &t.sources[1];
        assert_eq!(
            s.vary.apply(&s.header, 1).src,
            "198.18.1.0".parse::<IpAddr>().unwrap()
        );
        assert_eq!(s.vary.apply(&s.header, 0), s.header);
    }

    #[test]
    fn dscp_names() {
        assert_eq!(dscp_by_name("EF"), Some(46));
        assert_eq!(dscp_by_name("af41"), Some(34));
        assert_eq!(dscp_by_name("AF42"), Some(36));
        assert_eq!(dscp_by_name("AF31"), Some(26));
        assert_eq!(dscp_by_name("CS1"), Some(8));
        assert_eq!(dscp_by_name("CS7"), Some(56));
        assert_eq!(dscp_by_name("BE"), Some(0));
        assert_eq!(dscp_by_name("CS8"), None);
        assert_eq!(dscp_by_name("AF44"), None);
    }
}
