//! The traffic file's raw TOML form (values with their spans) and its one
//! conversion into the checked [`Traffic`]: every rule a source must follow
//! lives here, and each violation carries the span of the value at fault.

use std::net::IpAddr;

use serde::Deserialize;
use toml::Spanned;

use weir_dataplane::app::{http, quic, tls};

use super::{
    Pace, Payload, PayloadKind, Sizes, Source, SourceKind, TcpParams, Traffic, Vary, MAX_FLOWS,
};
use crate::synth::{HeaderSpec, Proto, MAX_FRAME};
use crate::units::{parse_duration, parse_rate};

type Span = Option<std::ops::Range<usize>>;
type CheckResult<T> = Result<T, (Span, String)>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTraffic {
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
    sequence: Option<Spanned<Vec<i64>>>,
    payload: Option<Spanned<RawPayload>>,
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

/// `payload = { kind = "tls", sni = "video.test" }` and its siblings.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPayload {
    kind: Spanned<String>,
    sni: Option<Spanned<String>>,
    host: Option<Spanned<String>>,
    path: Option<Spanned<String>>,
    version: Option<Spanned<i64>>,
    hello_size: Option<Spanned<i64>>,
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
    pub(super) fn check(self) -> CheckResult<Traffic> {
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
        let sizes = match (&self.sequence, sizes) {
            (None, sizes) => sizes,
            (Some(seq), _) if self.size.is_some() || self.sizes.is_some() => {
                return Err((at(seq), ctx("give one of size, sizes or sequence".into())))
            }
            (Some(seq), _) => {
                if seq.get_ref().is_empty() {
                    return Err((at(seq), ctx("sequence must not be empty".into())));
                }
                let mut v = Vec::with_capacity(seq.get_ref().len());
                for &size in seq.get_ref() {
                    v.push(size_ok(&Spanned::new(seq.span(), size), "sequence: size")?);
                }
                Sizes::Seq(v)
            }
        };
        let payload = match &self.payload {
            None => None,
            Some(p) => Some(
                p.get_ref()
                    .check(at(p), &name, &header, &sizes)
                    .map_err(|(s, m)| (s, ctx(m)))?,
            ),
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
            payload,
        })
    }
}

impl RawPayload {
    /// Builds the bytes with the core's builders, checks the source's
    /// protocol and sizes fit them, and parses them back with the core's
    /// parsers: a payload the shaper could not read is refused here.
    fn check(
        &self,
        span: Span,
        source: &str,
        header: &HeaderSpec,
        sizes: &Sizes,
    ) -> CheckResult<Payload> {
        let kind = self.kind.get_ref().as_str();
        let only = |present: bool, key: &str, kinds: &str| -> CheckResult<()> {
            if present {
                Err((
                    span.clone(),
                    format!("payload: {key} only applies to kind {kinds}, not '{kind}'"),
                ))
            } else {
                Ok(())
            }
        };
        let need = |v: &Option<Spanned<String>>, key: &str| -> CheckResult<String> {
            v.as_ref().map(|v| v.get_ref().clone()).ok_or_else(|| {
                (
                    span.clone(),
                    format!("payload: a {kind} payload needs {key}"),
                )
            })
        };
        let hello_size = match &self.hello_size {
            Some(v) => int_in(v, "payload: hello_size", 0, 16_000)?,
            None => 0usize,
        };
        let name_span = |v: &Option<Spanned<String>>| v.as_ref().and_then(at).or(span.clone());
        let (kind, bytes) = match kind {
            "tls" | "quic" => {
                only(
                    self.host.is_some() || self.path.is_some(),
                    "host/path",
                    "http",
                )?;
                let sni = need(&self.sni, "sni")?;
                if kind == "tls" {
                    only(self.version.is_some(), "version", "quic")?;
                    let mut bytes = Vec::new();
                    tls::client_hello(&sni, hello_size, &mut bytes)
                        .map_err(|e| (name_span(&self.sni), tls_error(e, &sni, hello_size)))?;
                    if tls::client_hello_sni(&bytes) != tls::Hello::Sni(&sni) {
                        return Err((
                            name_span(&self.sni),
                            format!("payload: the ClientHello for '{sni}' does not parse back"),
                        ));
                    }
                    (PayloadKind::Tls { sni }, bytes)
                } else {
                    let version = match &self.version {
                        None => quic::VERSION_1,
                        Some(v) => match v.get_ref() {
                            1 => quic::VERSION_1,
                            2 => quic::VERSION_2,
                            n => {
                                return Err((
                                    at(v),
                                    format!("payload: quic version must be 1 or 2, got {n}"),
                                ))
                            }
                        },
                    };
                    let dcid = dcid_for(source);
                    let bytes = quic::client_initial(version, &dcid, &sni, hello_size).map_err(
                        |e| match e {
                            quic::InitialBuildError::Hello(e) => {
                                (name_span(&self.sni), tls_error(e, &sni, hello_size))
                            }
                            quic::InitialBuildError::Seal(e) => (
                                self.hello_size.as_ref().and_then(at).or(span.clone()),
                                format!("payload: cannot seal the Initial ({e:?}): hello_size too large for one packet"),
                            ),
                        },
                    )?;
                    let mut scratch = vec![0u8; bytes.len()];
                    let mut crypto = quic::CryptoBuf::<16384>::new();
                    if quic::initial_sni(&bytes, &mut scratch, &mut crypto)
                        != Ok(tls::Hello::Sni(&sni))
                    {
                        return Err((
                            name_span(&self.sni),
                            format!("payload: the QUIC Initial for '{sni}' does not parse back"),
                        ));
                    }
                    (PayloadKind::Quic { sni, version }, bytes)
                }
            }
            "http" => {
                only(self.sni.is_some(), "sni", "tls or quic")?;
                only(self.version.is_some(), "version", "quic")?;
                only(self.hello_size.is_some(), "hello_size", "tls or quic")?;
                let host = need(&self.host, "host")?;
                let path = self
                    .path
                    .as_ref()
                    .map_or_else(|| "/".to_string(), |p| p.get_ref().clone());
                let mut bytes = Vec::new();
                http::request(&host, &path, &mut bytes).map_err(|e| match e {
                    http::BuildError::Host => (
                        name_span(&self.host),
                        format!("payload: host '{host}' is not a hostname (letters, digits, '-', '_' in dot-separated labels; no port)"),
                    ),
                    http::BuildError::Path => (
                        name_span(&self.path),
                        format!("payload: path '{path}' must start with '/' and hold only visible ASCII (no spaces)"),
                    ),
                })?;
                if http::request_host(&bytes) != http::Request::Host(&host) {
                    return Err((
                        name_span(&self.host),
                        format!("payload: the request for '{host}' does not parse back"),
                    ));
                }
                (PayloadKind::Http { host, path }, bytes)
            }
            other => {
                return Err((
                    at(&self.kind),
                    format!("payload: unknown kind '{other}' (tls, quic, http)"),
                ))
            }
        };
        let want = if kind.is_stream() {
            Proto::Tcp
        } else {
            Proto::Udp
        };
        if header.proto != want {
            return Err((
                at(&self.kind),
                format!(
                    "payload: a {} payload needs proto = \"{}\" (this source is {})",
                    kind.name(),
                    want.name(),
                    header.proto.name()
                ),
            ));
        }
        if kind.is_stream() && sizes.min() <= header.header_len() {
            return Err((
                span.clone(),
                format!(
                    "payload: the smallest frame ({} bytes) leaves no room after the {}-byte headers for the {} payload",
                    sizes.min(),
                    header.header_len(),
                    kind.name()
                ),
            ));
        }
        let grown = u64::from(header.header_len()) + bytes.len() as u64;
        if grown > u64::from(MAX_FRAME) {
            return Err((
                span,
                format!("payload: {grown} bytes of frame is over the largest frame, {MAX_FRAME}"),
            ));
        }
        Ok(Payload { kind, bytes })
    }
}

fn tls_error(e: tls::BuildError, sni: &str, hello_size: usize) -> String {
    match e {
        tls::BuildError::Hostname => format!(
            "payload: sni '{sni}' is not a hostname (letters, digits, '-', '_' in dot-separated labels of 1 to 63 bytes)"
        ),
        tls::BuildError::TooLong => {
            format!("payload: a ClientHello of hello_size {hello_size} does not fit one TLS record")
        }
    }
}

/// The QUIC Destination Connection ID of a source's flows: 8 bytes from
/// its name (FNV-1a), so a run is reproducible and two sources differ.
fn dcid_for(source: &str) -> [u8; 8] {
    source
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
        .to_be_bytes()
}
