//! The traffic file's raw TOML form (values with their spans) and its one
//! conversion into the checked [`Traffic`]: every rule a source must follow
//! lives here, and each violation carries the span of the value at fault.

use std::net::IpAddr;

use serde::Deserialize;
use toml::Spanned;

use super::{Pace, Sizes, Source, SourceKind, TcpParams, Traffic, Vary, MAX_FLOWS};
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
