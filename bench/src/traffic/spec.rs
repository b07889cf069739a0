//! Command-line specs of paths and streams, parsed into typed values with
//! errors that say what was expected.
//!
//! A path: `name=c,tx=NS/DEV,rx=NS/DEV[,smac=MAC][,dmac=MAC][,sip=IP][,dip=IP]`
//! (`DEV` alone for the current namespace; the addresses default to the
//! lab's host A → host B). A stream: `[dscp=N][,size=64|1518|imix|jumbo]
//! [,rate=PPS|NNNmbit|NNNgbit|flat][,flows=N]` (defaults: DSCP 0, 64 bytes,
//! flat out, 1 flow); a `mbit`/`gbit` rate is L2 bits per second, FCS
//! included, turned into frames per second with the mix's mean size.

use std::net::Ipv4Addr;

use super::testframe::{parse_mac, Addresses, SizeMix, MAX_FLOWS};
use super::trial::{Endpoint, StreamSpec, TrialSpec};
use std::time::Duration;
use weir_xdp::prog::XdpMode;

/// The lab's host A and B (scripts/lab.sh).
pub const LAB_A_MAC: [u8; 6] = [0x02, 0x00, 0xc6, 0x12, 0x00, 0x01];
pub const LAB_B_MAC: [u8; 6] = [0x02, 0x00, 0xc6, 0x12, 0x00, 0x02];
pub const LAB_A_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const LAB_B_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

/// A path under test: where frames go in and where they come out.
#[derive(Clone, Debug, PartialEq)]
pub struct PathSpec {
    pub name: String,
    pub tx: Endpoint,
    pub rx: Endpoint,
    pub addr: Addresses,
}

impl PathSpec {
    /// A trial of `streams` over this path.
    pub fn trial(
        &self,
        streams: Vec<StreamSpec>,
        duration: Duration,
        drain: Duration,
        batch: u32,
        rx_mode: XdpMode,
    ) -> TrialSpec {
        TrialSpec {
            tx: self.tx.clone(),
            rx: self.rx.clone(),
            addr: self.addr,
            streams,
            duration,
            drain,
            batch,
            rx_mode,
        }
    }
}

fn endpoint(v: &str) -> Result<Endpoint, String> {
    let (ns, dev) = match v.split_once('/') {
        Some((ns, dev)) => (Some(ns.to_owned()), dev),
        None => (None, v),
    };
    if dev.is_empty() || dev.len() > 15 || ns.as_deref() == Some("") {
        return Err(format!(
            "{v:?}: expected DEV or NETNS/DEV (an interface name of 1..=15 bytes)"
        ));
    }
    Ok(Endpoint {
        netns: ns,
        dev: dev.to_owned(),
    })
}

fn pairs(s: &str) -> Result<Vec<(&str, &str)>, String> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.split_once('=')
                .ok_or_else(|| format!("{p:?}: expected key=value"))
        })
        .collect()
}

impl std::str::FromStr for PathSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<PathSpec, String> {
        let (mut name, mut tx, mut rx) = (None, None, None);
        let mut addr = Addresses {
            src_mac: LAB_A_MAC,
            dst_mac: LAB_B_MAC,
            src_ip: LAB_A_IP,
            dst_ip: LAB_B_IP,
        };
        for (k, v) in pairs(s)? {
            let mac = |v: &str| {
                parse_mac(v).ok_or_else(|| format!("{k}={v}: expected a MAC aa:bb:cc:dd:ee:ff"))
            };
            let ip = |v: &str| {
                v.parse::<Ipv4Addr>()
                    .map_err(|_| format!("{k}={v}: expected an IPv4 address"))
            };
            match k {
                "name" => name = Some(v.to_owned()),
                "tx" => tx = Some(endpoint(v)?),
                "rx" => rx = Some(endpoint(v)?),
                "smac" => addr.src_mac = mac(v)?,
                "dmac" => addr.dst_mac = mac(v)?,
                "sip" => addr.src_ip = ip(v)?,
                "dip" => addr.dst_ip = ip(v)?,
                _ => {
                    return Err(format!(
                        "path: unknown key {k:?} (expected name, tx, rx, smac, dmac, sip, dip)"
                    ))
                }
            }
        }
        let need = |what: &str| format!("path {s:?}: {what}= is required");
        Ok(PathSpec {
            name: name.ok_or_else(|| need("name"))?,
            tx: tx.ok_or_else(|| need("tx"))?,
            rx: rx.ok_or_else(|| need("rx"))?,
            addr,
        })
    }
}

/// Parse a stream spec (see the module docs).
pub fn parse_stream(s: &str) -> Result<StreamSpec, String> {
    let mut spec = StreamSpec {
        dscp: 0,
        mix: SizeMix::Fixed(64),
        rate_pps: None,
        flows: 1,
    };
    let mut rate: Option<&str> = None;
    for (k, v) in pairs(s)? {
        match k {
            "dscp" => {
                spec.dscp = v
                    .parse()
                    .ok()
                    .filter(|d| *d < 64)
                    .ok_or_else(|| format!("dscp={v}: expected 0..=63"))?
            }
            "size" => spec.mix = v.parse().map_err(|e| format!("{e}"))?,
            "rate" => rate = Some(v),
            "flows" => {
                spec.flows = v
                    .parse()
                    .ok()
                    .filter(|f| (1..=MAX_FLOWS).contains(f))
                    .ok_or_else(|| format!("flows={v}: expected 1..={MAX_FLOWS}"))?
            }
            _ => {
                return Err(format!(
                    "stream: unknown key {k:?} (expected dscp, size, rate, flows)"
                ))
            }
        }
    }
    if let Some(r) = rate {
        spec.rate_pps = parse_rate(r, spec.mix.mean())?;
    }
    Ok(spec)
}

/// `flat`, a frame rate (`250000`, `1.5e6`), or L2 bits per second
/// (`100mbit`, `1.2gbit`, `500kbit`).
fn parse_rate(v: &str, mean_frame: f64) -> Result<Option<f64>, String> {
    if v == "flat" {
        return Ok(None);
    }
    let bad = || format!("rate={v}: expected flat, frames per second, or NNNkbit/mbit/gbit");
    let (num, per_bit) = if let Some(n) = v.strip_suffix("gbit") {
        (n, 1e9)
    } else if let Some(n) = v.strip_suffix("mbit") {
        (n, 1e6)
    } else if let Some(n) = v.strip_suffix("kbit") {
        (n, 1e3)
    } else {
        (v, 0.0)
    };
    let x: f64 = num.parse().map_err(|_| bad())?;
    if !(x.is_finite() && x > 0.0) {
        return Err(bad());
    }
    Ok(Some(if per_bit > 0.0 {
        x * per_bit / (mean_frame * 8.0)
    } else {
        x
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_with_lab_defaults() {
        let p: PathSpec = "name=c,tx=wba-a/a0,rx=wba-b/b0".parse().unwrap();
        assert_eq!(p.tx.netns.as_deref(), Some("wba-a"));
        assert_eq!(p.rx.dev, "b0");
        assert_eq!(p.addr.dst_mac, LAB_B_MAC);
        let p: PathSpec = "name=d,tx=x0,rx=y0,dmac=02:00:00:00:00:09,dip=198.18.1.2"
            .parse()
            .unwrap();
        assert_eq!(p.tx.netns, None);
        assert_eq!(p.addr.dst_ip, Ipv4Addr::new(198, 18, 1, 2));
        assert!("name=c,tx=a0"
            .parse::<PathSpec>()
            .unwrap_err()
            .contains("rx="));
        assert!("name=c,tx=a0,rx=b0,x=1"
            .parse::<PathSpec>()
            .unwrap_err()
            .contains("unknown key"));
        assert!("name=c,tx=/a0,rx=b0".parse::<PathSpec>().is_err());
        assert!("name=c,tx=a0,rx=b0,smac=zz"
            .parse::<PathSpec>()
            .unwrap_err()
            .contains("MAC"));
    }

    #[test]
    fn streams_parse_rates_in_frames_or_bits() {
        let s = parse_stream("dscp=46,size=1518,rate=100mbit,flows=8").unwrap();
        assert_eq!(s.dscp, 46);
        assert!((s.rate_pps.unwrap() - 100e6 / (1518.0 * 8.0)).abs() < 1e-6);
        assert_eq!(
            parse_stream("rate=250000").unwrap().rate_pps,
            Some(250000.0)
        );
        assert_eq!(parse_stream("").unwrap().rate_pps, None);
        assert!(parse_stream("dscp=64").unwrap_err().contains("0..=63"));
        assert!(parse_stream("rate=-1").is_err());
        assert!(parse_stream("rate=fast").unwrap_err().contains("flat"));
        assert!(parse_stream("flows=0").is_err());
        assert!(parse_stream("size=10").unwrap_err().contains("64..="));
    }
}
