//! Test frames: Ethernet + IPv4 + UDP with a DSCP, a flow number in the UDP
//! source port, and a 16-byte probe in the payload (stream, sequence number,
//! send time) that the receiver reads back.
//!
//! Sizes are L2 frame sizes *with* the 4-byte FCS, as RFC 2544 and traffic
//! generators state them: a "64-byte frame" is 60 bytes handed to the NIC
//! (or the AF_XDP ring) plus the FCS the NIC adds. On the wire each frame
//! also costs 20 bytes of preamble, start delimiter and inter-frame gap;
//! [`l1_bits`] counts them for L1 rates.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// Ethernet FCS, added by the NIC: part of the frame size, not of the
/// bytes we write.
pub const FCS: usize = 4;
/// Preamble (7) + start delimiter (1) + inter-frame gap (12).
pub const L1_OVERHEAD: usize = 20;
/// Smallest Ethernet frame, FCS included.
pub const MIN_FRAME: usize = 64;
/// Ethernet (14) + IPv4 without options (20) + UDP (8).
pub const HEADERS: usize = 42;
/// The probe written after the UDP header: magic, stream, sequence number,
/// send time.
pub const PROBE_LEN: usize = 16;
/// "we" in ASCII: marks our frames, so the receiver counts anything else it
/// sees (ARP, IPv6 ND, a stray frame) as foreign instead of as a stream.
pub const MAGIC: u16 = 0x7765;
/// First UDP source port; flow `i` uses `FLOW_PORT_BASE + i`.
pub const FLOW_PORT_BASE: u16 = 1024;
/// Most flows one stream can have (distinct UDP source ports).
pub const MAX_FLOWS: u32 = 60_000;
/// UDP destination port of stream `s`: `STREAM_PORT_BASE + s`.
pub const STREAM_PORT_BASE: u16 = 7000;

/// The frame sizes a stream sends (FCS included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SizeMix {
    /// Every frame this size.
    Fixed(usize),
    /// The simple IMIX: 7 × 64, 4 × 570, 1 × 1518, interleaved so that a
    /// short run of frames already has the mix (average 353.8 bytes).
    Imix,
}

/// The IMIX cycle, in send order (spread out rather than 7 small frames in
/// a row, so that any window of a few frames is close to the mix).
const IMIX_CYCLE: [usize; 12] = [64, 570, 64, 64, 570, 64, 1518, 64, 570, 64, 64, 570];

impl SizeMix {
    /// Size of the `n`-th frame of the stream.
    pub fn size(&self, n: u64) -> usize {
        match self {
            SizeMix::Fixed(s) => *s,
            SizeMix::Imix => IMIX_CYCLE[(n % IMIX_CYCLE.len() as u64) as usize],
        }
    }

    /// The distinct sizes, smallest first.
    pub fn sizes(&self) -> Vec<usize> {
        match self {
            SizeMix::Fixed(s) => vec![*s],
            SizeMix::Imix => vec![64, 570, 1518],
        }
    }

    /// Average frame size over a long run (FCS included).
    pub fn mean(&self) -> f64 {
        match self {
            SizeMix::Fixed(s) => *s as f64,
            SizeMix::Imix => IMIX_CYCLE.iter().sum::<usize>() as f64 / IMIX_CYCLE.len() as f64,
        }
    }
}

impl fmt::Display for SizeMix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SizeMix::Fixed(s) => write!(f, "{s}"),
            SizeMix::Imix => write!(f, "imix"),
        }
    }
}

/// Largest frame a 4096-byte UMEM frame holds as one buffer (AF_XDP
/// without multi-buffer): 4096 minus the kernel's 256-byte headroom in
/// copy mode, plus the FCS the NIC adds.
pub const MAX_FRAME: usize = 3840;
/// The "jumbo" template: the largest frame a veth with a single-buffer XDP
/// program takes (its MTU limit is a page minus XDP headroom and skb
/// overhead, about 3.5 KB). True 9000-byte jumbos need multi-buffer XDP and
/// AF_XDP, which neither weir's program nor xsk-rs 0.11 does. The path's
/// MTU must be at least `JUMBO - 18` (lab.sh up --mtu).
pub const JUMBO: usize = 3500;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SizeError(String);

impl fmt::Display for SizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SizeError {}

impl FromStr for SizeMix {
    type Err = SizeError;

    /// `64`, `1518`, … (bytes, FCS included), `imix` or `jumbo`.
    fn from_str(s: &str) -> Result<SizeMix, SizeError> {
        match s {
            "imix" => return Ok(SizeMix::Imix),
            "jumbo" => return Ok(SizeMix::Fixed(JUMBO)),
            _ => {}
        }
        let n: usize = s.parse().map_err(|_| {
            SizeError(format!(
                "frame size {s:?}: expected bytes (64..={MAX_FRAME}), `imix` or `jumbo`"
            ))
        })?;
        if !(MIN_FRAME..=MAX_FRAME).contains(&n) {
            return Err(SizeError(format!(
                "frame size {n}: must be {MIN_FRAME}..={MAX_FRAME} bytes (FCS included)"
            )));
        }
        Ok(SizeMix::Fixed(n))
    }
}

/// Bits one frame of `size` bytes (FCS included) takes on the wire at L1.
pub fn l1_bits(size: usize) -> u64 {
    ((size + L1_OVERHEAD) * 8) as u64
}

/// Addresses of a path's two ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Addresses {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
}

/// The probe the receiver reads from a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    pub stream: u16,
    pub seq: u32,
    pub sent_ns: u64,
}

/// Pre-built frames of one stream, one per size; [`Template::write`] copies
/// one into a buffer and stamps the flow, sequence number and send time.
#[derive(Clone, Debug)]
pub struct Template {
    flows: u32,
    /// (size with FCS, bytes without FCS, all headers filled in).
    frames: Vec<(usize, Vec<u8>)>,
}

impl Template {
    /// `flows` must be 1..=[`MAX_FLOWS`]; `dscp` 0..=63.
    pub fn new(addr: &Addresses, stream: u16, dscp: u8, mix: &SizeMix, flows: u32) -> Template {
        let flows = flows.clamp(1, MAX_FLOWS);
        let frames = mix
            .sizes()
            .into_iter()
            .map(|size| (size, build(addr, stream, dscp & 0x3f, size)))
            .collect();
        Template { flows, frames }
    }

    /// Write frame `seq` of the stream (size `size`, one of the mix's) into
    /// `out`, returning its length (FCS excluded), or None if `out` is too
    /// small or the size is not one of the template's.
    pub fn write(&self, out: &mut [u8], size: usize, seq: u32, sent_ns: u64) -> Option<usize> {
        let (_, bytes) = self.frames.iter().find(|(s, _)| *s == size)?;
        let dst = out.get_mut(..bytes.len())?;
        dst.copy_from_slice(bytes);
        // Flow: the UDP source port. The UDP checksum is 0 ("none", legal
        // in IPv4), so changing the port needs no checksum update.
        let port = FLOW_PORT_BASE + (seq % self.flows) as u16;
        dst[34..36].copy_from_slice(&port.to_be_bytes());
        dst[HEADERS + 4..HEADERS + 8].copy_from_slice(&seq.to_be_bytes());
        dst[HEADERS + 8..HEADERS + 16].copy_from_slice(&sent_ns.to_be_bytes());
        Some(bytes.len())
    }
}

/// One frame of `size` bytes (FCS included) with every header filled in
/// and the probe's magic and stream; flow, sequence and time come later.
fn build(addr: &Addresses, stream: u16, dscp: u8, size: usize) -> Vec<u8> {
    let len = size.max(MIN_FRAME) - FCS;
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&addr.dst_mac);
    f[6..12].copy_from_slice(&addr.src_mac);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip_len = (len - 14) as u16;
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[1] = dscp << 2;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    // Identification 0, don't fragment, TTL 64, UDP.
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&addr.src_ip.octets());
    ip[16..20].copy_from_slice(&addr.dst_ip.octets());
    let sum = ipv4_checksum(ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let udp_len = ip_len - 20;
    f[34..36].copy_from_slice(&FLOW_PORT_BASE.to_be_bytes());
    f[36..38].copy_from_slice(&(STREAM_PORT_BASE + stream).to_be_bytes());
    f[38..40].copy_from_slice(&udp_len.to_be_bytes());
    f[HEADERS..HEADERS + 2].copy_from_slice(&MAGIC.to_be_bytes());
    f[HEADERS + 2..HEADERS + 4].copy_from_slice(&stream.to_be_bytes());
    f
}

/// The ones' complement sum of a 20-byte IPv4 header whose checksum field
/// is zero.
fn ipv4_checksum(h: &[u8]) -> u16 {
    let mut sum: u32 = h
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Read the probe of one of our frames; None for anything else (too
/// short, not IPv4/UDP, IP options, no magic).
pub fn parse(frame: &[u8]) -> Option<Probe> {
    if frame.len() < HEADERS + PROBE_LEN {
        return None;
    }
    if frame[12..14] != [0x08, 0x00] || frame[14] != 0x45 || frame[23] != 17 {
        return None;
    }
    let p = &frame[HEADERS..HEADERS + PROBE_LEN];
    if u16::from_be_bytes([p[0], p[1]]) != MAGIC {
        return None;
    }
    Some(Probe {
        stream: u16::from_be_bytes([p[2], p[3]]),
        seq: u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
        sent_ns: u64::from_be_bytes([p[8], p[9], p[10], p[11], p[12], p[13], p[14], p[15]]),
    })
}

/// Parse a MAC address `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> Addresses {
        Addresses {
            src_mac: [2, 0, 0xc6, 0x12, 0, 1],
            dst_mac: [2, 0, 0xc6, 0x12, 0, 2],
            src_ip: Ipv4Addr::new(198, 18, 0, 1),
            dst_ip: Ipv4Addr::new(198, 18, 0, 2),
        }
    }

    #[test]
    fn frames_parse_back_with_their_probe() {
        for mix in [SizeMix::Fixed(64), SizeMix::Fixed(1518), SizeMix::Imix] {
            let t = Template::new(&addr(), 3, 46, &mix, 100);
            let mut buf = vec![0u8; 4096];
            for n in 0..24u64 {
                let size = mix.size(n);
                let len = t.write(&mut buf, size, n as u32 + 7, 1234 + n).unwrap();
                assert_eq!(len, size - FCS);
                let p = parse(&buf[..len]).unwrap();
                assert_eq!((p.stream, p.seq, p.sent_ns), (3, n as u32 + 7, 1234 + n));
                // DSCP 46 (EF) in the TOS byte; the port carries the flow.
                assert_eq!(buf[15], 46 << 2);
                let port = u16::from_be_bytes([buf[34], buf[35]]);
                assert_eq!(port, FLOW_PORT_BASE + ((n as u32 + 7) % 100) as u16);
            }
        }
    }

    #[test]
    fn ip_header_checksums_to_zero() {
        let t = Template::new(&addr(), 0, 10, &SizeMix::Fixed(570), 1);
        let mut buf = vec![0u8; 2048];
        let len = t.write(&mut buf, 570, 1, 2).unwrap();
        // A correct header sums (with its checksum) to 0xffff.
        let mut sum: u32 = buf[14..34]
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        assert_eq!(sum, 0xffff);
        assert_eq!(u16::from_be_bytes([buf[16], buf[17]]) as usize, len - 14);
        assert_eq!(u16::from_be_bytes([buf[38], buf[39]]) as usize, len - 34);
    }

    #[test]
    fn imix_mean_and_sizes() {
        let m = SizeMix::Imix;
        assert!((m.mean() - (7.0 * 64.0 + 4.0 * 570.0 + 1518.0) / 12.0).abs() < 1e-9);
        let mut counts = [0; 3];
        for n in 0..1200 {
            let i = m.sizes().iter().position(|s| *s == m.size(n)).unwrap();
            counts[i] += 1;
        }
        assert_eq!(counts, [700, 400, 100]);
    }

    #[test]
    fn sizes_parse_with_clear_errors() {
        assert_eq!("64".parse::<SizeMix>().unwrap(), SizeMix::Fixed(64));
        assert_eq!("imix".parse::<SizeMix>().unwrap(), SizeMix::Imix);
        assert_eq!("jumbo".parse::<SizeMix>().unwrap(), SizeMix::Fixed(JUMBO));
        assert!("63".parse::<SizeMix>().unwrap_err().0.contains("64..="));
        assert!("big".parse::<SizeMix>().unwrap_err().0.contains("imix"));
    }

    #[test]
    fn foreign_frames_are_not_probes() {
        assert_eq!(parse(&[0u8; 10]), None);
        let t = Template::new(&addr(), 0, 0, &SizeMix::Fixed(64), 1);
        let mut buf = vec![0u8; 64];
        let len = t.write(&mut buf, 64, 0, 0).unwrap();
        buf[HEADERS] ^= 0xff;
        assert_eq!(parse(&buf[..len]), None);
        assert_eq!(t.write(&mut buf, 128, 0, 0), None);
    }

    #[test]
    fn macs_parse() {
        assert_eq!(
            parse_mac("02:00:c6:12:00:01"),
            Some([2, 0, 0xc6, 0x12, 0, 1])
        );
        assert_eq!(parse_mac("02:00:c6:12:00"), None);
        assert_eq!(parse_mac("02:00:c6:12:00:01:02"), None);
        assert_eq!(parse_mac("02:00:c6:12:00:zz"), None);
    }
}
