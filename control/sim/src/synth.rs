//! Synthetic Ethernet frames for the simulator: per-flow header templates
//! and the one buffer each simulated packet is built in.
//!
//! The shaper parses and classifies the real bytes, so every generated frame
//! is a well-formed Ethernet (optionally 802.1Q) / IPv4-or-IPv6 /
//! UDP-TCP-ICMP frame with the source's DSCP/ECN byte and 5-tuple. Each flow
//! keeps a header template; per packet the simulator copies at most
//! [`MAX_HEADER`] bytes into one reusable buffer whose payload stays zero, and
//! re-patches the length fields only when the packet size changes (IMIX).
//! The IPv4 header checksum is correct; L4 checksums are left zero (the core
//! never verifies them).

use std::net::IpAddr;

/// Ethernet + 802.1Q + IPv6 + TCP, the longest header we build.
pub const MAX_HEADER: usize = 14 + 4 + 40 + 20;

/// Largest frame the simulator builds: an IPv4 total length must fit 16 bits.
pub const MAX_FRAME: u32 = 14 + 4 + 65_535;

/// Transport protocol of a source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Udp,
    Tcp,
    Icmp,
}

impl Proto {
    /// IP protocol number (ICMPv6 is 58 on IPv6).
    fn number(self, v6: bool) -> u8 {
        match (self, v6) {
            (Proto::Udp, _) => 17,
            (Proto::Tcp, _) => 6,
            (Proto::Icmp, false) => 1,
            (Proto::Icmp, true) => 58,
        }
    }

    fn header_len(self) -> u32 {
        match self {
            Proto::Udp | Proto::Icmp => 8,
            Proto::Tcp => 20,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
            Proto::Icmp => "icmp",
        }
    }
}

/// What every frame of one flow carries. `src` and `dst` are of the same
/// family (checked when the traffic file is read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderSpec {
    pub proto: Proto,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    /// The whole TOS / traffic-class byte: DSCP << 2 | ECN.
    pub tos: u8,
    pub vlan: Option<u16>,
}

impl HeaderSpec {
    /// Bytes of headers before the payload: the smallest valid frame size.
    pub fn header_len(&self) -> u32 {
        let l2 = if self.vlan.is_some() { 18 } else { 14 };
        let l3 = if self.src.is_ipv6() { 40 } else { 20 };
        l2 + l3 + self.proto.header_len()
    }
}

/// One flow's frame header, patched to the current packet size.
#[derive(Clone, Debug)]
pub struct FrameTemplate {
    hdr: [u8; MAX_HEADER],
    hdr_len: u8,
    l3: u8,
    l4: u8,
    v6: bool,
    proto: Proto,
    size: u32,
}

impl FrameTemplate {
    /// Build the header of a `size`-byte frame (`size` must be at least
    /// `spec.header_len()` and at most [`MAX_FRAME`]).
    pub fn new(spec: &HeaderSpec, size: u32) -> FrameTemplate {
        let mut h = [0u8; MAX_HEADER];
        // Locally administered unicast MACs: the core does not look at them.
        h[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
        h[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
        let v6 = spec.src.is_ipv6();
        let ethertype: u16 = if v6 { 0x86dd } else { 0x0800 };
        let mut off = 12;
        if let Some(vid) = spec.vlan {
            h[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
            h[14..16].copy_from_slice(&(vid & 0x0fff).to_be_bytes());
            off = 16;
        }
        h[off..off + 2].copy_from_slice(&ethertype.to_be_bytes());
        let l3 = off + 2;
        let proto_no = spec.proto.number(v6);
        let l4 = match (spec.src, spec.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                h[l3] = 0x45;
                h[l3 + 1] = spec.tos;
                // Don't fragment; id 0.
                h[l3 + 6] = 0x40;
                h[l3 + 8] = 64;
                h[l3 + 9] = proto_no;
                h[l3 + 12..l3 + 16].copy_from_slice(&s.octets());
                h[l3 + 16..l3 + 20].copy_from_slice(&d.octets());
                l3 + 20
            }
            (s, d) => {
                let (s, d) = (to_v6(s), to_v6(d));
                let vtc: u32 = (6 << 28) | (u32::from(spec.tos) << 20);
                h[l3..l3 + 4].copy_from_slice(&vtc.to_be_bytes());
                h[l3 + 6] = proto_no;
                h[l3 + 7] = 64;
                h[l3 + 8..l3 + 24].copy_from_slice(&s.octets());
                h[l3 + 24..l3 + 40].copy_from_slice(&d.octets());
                l3 + 40
            }
        };
        match spec.proto {
            Proto::Udp => {
                h[l4..l4 + 2].copy_from_slice(&spec.sport.to_be_bytes());
                h[l4 + 2..l4 + 4].copy_from_slice(&spec.dport.to_be_bytes());
            }
            Proto::Tcp => {
                h[l4..l4 + 2].copy_from_slice(&spec.sport.to_be_bytes());
                h[l4 + 2..l4 + 4].copy_from_slice(&spec.dport.to_be_bytes());
                // Data offset 5 words; ACK|PSH, as a bulk sender's segments.
                h[l4 + 12] = 5 << 4;
                h[l4 + 13] = 0x18;
                h[l4 + 14..l4 + 16].copy_from_slice(&0xffffu16.to_be_bytes());
            }
            Proto::Icmp => {
                // Echo request; the identifier tells flows apart as ports do.
                h[l4] = if v6 { 128 } else { 8 };
                h[l4 + 4..l4 + 6].copy_from_slice(&spec.sport.to_be_bytes());
            }
        }
        let hdr_len = l4 as u32 + spec.proto.header_len();
        let mut t = FrameTemplate {
            hdr: h,
            hdr_len: hdr_len as u8,
            l3: l3 as u8,
            l4: l4 as u8,
            v6,
            proto: spec.proto,
            size: 0,
        };
        t.set_size(size);
        t
    }

    pub fn header_len(&self) -> u32 {
        u32::from(self.hdr_len)
    }

    pub fn size(&self) -> u32 {
        self.size
    }

    /// Patch the length fields (and the IPv4 checksum) for a `size`-byte
    /// frame.
    #[inline]
    pub fn set_size(&mut self, size: u32) {
        if size == self.size {
            return;
        }
        debug_assert!(size >= self.header_len() && size <= MAX_FRAME);
        self.size = size;
        let (l3, l4) = (usize::from(self.l3), usize::from(self.l4));
        let h = &mut self.hdr;
        if self.v6 {
            let payload = (size - l3 as u32 - 40) as u16;
            h[l3 + 4..l3 + 6].copy_from_slice(&payload.to_be_bytes());
        } else {
            let total = (size - l3 as u32) as u16;
            h[l3 + 2..l3 + 4].copy_from_slice(&total.to_be_bytes());
            h[l3 + 10] = 0;
            h[l3 + 11] = 0;
            let sum = ipv4_checksum(&h[l3..l3 + 20]);
            h[l3 + 10..l3 + 12].copy_from_slice(&sum.to_be_bytes());
        }
        if self.proto == Proto::Udp {
            let len = (size - l4 as u32) as u16;
            h[l4 + 4..l4 + 6].copy_from_slice(&len.to_be_bytes());
        }
    }

    /// The header bytes (the payload that follows is all zeros).
    #[inline]
    pub fn header(&self) -> &[u8] {
        &self.hdr[..usize::from(self.hdr_len)]
    }
}

fn to_v6(a: IpAddr) -> std::net::Ipv6Addr {
    match a {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks_exact(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A reusable frame buffer: header copied in front of a payload that is
/// zero except for the bytes [`FrameBuf::frame_with`] writes at its start.
#[derive(Debug)]
pub struct FrameBuf {
    buf: Vec<u8>,
    /// (flow, size) whose header the buffer holds now; skips the copy when a
    /// flow sends back to back.
    holds: Option<(u32, u32)>,
    /// Bytes the last payload wrote, zeroed before the next frame.
    dirty: std::ops::Range<usize>,
}

impl Default for FrameBuf {
    fn default() -> Self {
        FrameBuf::new()
    }
}

impl FrameBuf {
    pub fn new() -> FrameBuf {
        FrameBuf {
            buf: vec![0; MAX_FRAME as usize],
            holds: None,
            dirty: 0..0,
        }
    }

    /// The bytes of flow `flow`'s frame as `template` describes it, with a
    /// zero payload.
    #[inline]
    pub fn frame(&mut self, flow: u32, template: &FrameTemplate) -> &[u8] {
        self.frame_with(flow, template, &[])
    }

    /// The bytes of flow `flow`'s frame, its L4 payload starting with
    /// `payload` and zero after it. `payload` must fit the frame
    /// (`header_len + payload.len() <= size`); what does not fit is left
    /// out.
    #[inline]
    pub fn frame_with(&mut self, flow: u32, template: &FrameTemplate, payload: &[u8]) -> &[u8] {
        if !self.dirty.is_empty() {
            // After the header of the flow it was written for: zeroing it
            // leaves that header (which `holds` remembers) intact.
            self.buf[self.dirty.clone()].fill(0);
            self.dirty = 0..0;
        }
        let size = template.size();
        if self.holds != Some((flow, size)) {
            let h = template.header();
            self.buf[..h.len()].copy_from_slice(h);
            self.holds = Some((flow, size));
        }
        if !payload.is_empty() {
            let start = template.header().len();
            let end = (start + payload.len()).min(size as usize);
            self.buf[start..end].copy_from_slice(&payload[..end - start]);
            self.dirty = start..end;
        }
        &self.buf[..size as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

    fn spec(src: &str, dst: &str, proto: Proto, vlan: Option<u16>) -> HeaderSpec {
        HeaderSpec {
            proto,
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            sport: 5000,
            dport: 80,
            tos: 0xb8 | 0x02,
            vlan,
        }
    }

    #[test]
    fn ipv4_udp_parses_with_right_fields() {
        let s = spec("198.18.0.1", "198.18.0.2", Proto::Udp, None);
        let mut t = FrameTemplate::new(&s, 1500);
        let mut buf = FrameBuf::new();
        for size in [1500u32, 64, 42, 9000] {
            t.set_size(size);
            let bytes = buf.frame(0, &t).to_vec();
            assert_eq!(bytes.len(), size as usize);
            let p = SlicedPacket::from_ethernet(&bytes).unwrap();
            let Some(NetSlice::Ipv4(ip)) = p.net else {
                panic!("not ipv4")
            };
            let h = ip.header();
            assert_eq!(h.dcp().value(), 46);
            assert_eq!(h.ecn().value(), 2);
            assert_eq!(usize::from(h.total_len()), size as usize - 14);
            assert_eq!(h.to_header().calc_header_checksum(), h.header_checksum());
            let Some(TransportSlice::Udp(u)) = p.transport else {
                panic!("not udp")
            };
            assert_eq!((u.source_port(), u.destination_port()), (5000, 80));
            assert_eq!(usize::from(u.length()), size as usize - 34);
        }
    }

    #[test]
    fn ipv6_tcp_with_vlan_parses() {
        let s = spec("2001:db8::1", "2001:db8::2", Proto::Tcp, Some(42));
        let t = FrameTemplate::new(&s, 200);
        assert_eq!(t.header_len(), 18 + 40 + 20);
        let mut buf = FrameBuf::new();
        let bytes = buf.frame(3, &t).to_vec();
        let p = SlicedPacket::from_ethernet(&bytes).unwrap();
        let Some(etherparse::VlanSlice::SingleVlan(v)) = &p.vlan else {
            panic!("no vlan")
        };
        assert_eq!(v.vlan_identifier().value(), 42);
        let Some(NetSlice::Ipv6(ip)) = p.net else {
            panic!("not ipv6")
        };
        assert_eq!(ip.header().traffic_class(), 0xba);
        assert_eq!(usize::from(ip.header().payload_length()), 200 - 18 - 40);
        let Some(TransportSlice::Tcp(tcp)) = p.transport else {
            panic!("not tcp")
        };
        assert_eq!(tcp.destination_port(), 80);
    }

    #[test]
    fn icmp_echo() {
        let s = spec("198.18.0.1", "198.18.0.2", Proto::Icmp, None);
        let t = FrameTemplate::new(&s, 98);
        let mut buf = FrameBuf::new();
        let bytes = buf.frame(0, &t).to_vec();
        let p = SlicedPacket::from_ethernet(&bytes).unwrap();
        assert!(matches!(p.transport, Some(TransportSlice::Icmpv4(_))));
    }

    #[test]
    fn buffer_switches_between_flows() {
        let a = FrameTemplate::new(&spec("198.18.0.1", "198.18.0.2", Proto::Udp, None), 100);
        let mut sb = spec("198.18.0.1", "198.18.0.2", Proto::Udp, None);
        sb.sport = 6000;
        let b = FrameTemplate::new(&sb, 100);
        let mut buf = FrameBuf::new();
        assert_eq!(&buf.frame(0, &a)[34..36], &5000u16.to_be_bytes());
        assert_eq!(&buf.frame(1, &b)[34..36], &6000u16.to_be_bytes());
        assert_eq!(&buf.frame(0, &a)[34..36], &5000u16.to_be_bytes());
    }

    #[test]
    fn payload_bytes_are_written_once_then_zero_again() {
        let a = FrameTemplate::new(&spec("198.18.0.1", "198.18.0.2", Proto::Udp, None), 100);
        let b = FrameTemplate::new(
            &spec("2001:db8::1", "2001:db8::2", Proto::Tcp, Some(7)),
            100,
        );
        let mut buf = FrameBuf::new();
        let f = buf.frame_with(0, &a, b"hello").to_vec();
        assert_eq!(&f[42..47], b"hello");
        assert!(f[47..].iter().all(|&x| x == 0));
        // The same flow again, then another flow whose header is longer:
        // the old payload is gone, each header intact.
        let f = buf.frame(0, &a).to_vec();
        assert!(f[42..].iter().all(|&x| x == 0));
        assert_eq!(&f[34..36], &5000u16.to_be_bytes());
        buf.frame_with(0, &a, &[0xff; 58]);
        let f = buf.frame(1, &b).to_vec();
        assert_eq!(&f[..78], b.header());
        assert!(f[78..].iter().all(|&x| x == 0));
        // A payload longer than the frame is cut at its end.
        assert_eq!(buf.frame_with(0, &a, &[1; 200]).len(), 100);
    }
}
