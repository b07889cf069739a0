//! Hand-built frames: each header is a function or a small struct of the
//! fields tests vary, so a test states what it sets and gets the rest
//! filled in consistently (lengths, the IPv4 header checksum).
//!
//! These are plain byte builders with no knowledge of weir's parser, so a
//! test of the parser checks it against bytes laid out here by hand, not
//! against itself. Nothing here validates: a test that wants a broken
//! header builds one (a wrong length, a short slice) on purpose.
//!
//! Addresses are from the RFC 2544 benchmarking range (198.18.0.0/15) and
//! the IPv6 documentation prefix (2001:db8::/32), MACs are locally
//! administered: as every weir test uses.

/// EtherTypes the tests use, by their IEEE names.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// 802.1Q VLAN tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// 802.1ad service tag (the outer tag of QinQ).
pub const ETHERTYPE_QINQ: u16 = 0x88a8;

/// IP protocol numbers.
pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;

/// The sending and receiving hosts' MACs (locally administered).
pub const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// Default IPv4 source and destination: 198.18.0.1 → 198.19.0.2.
pub const SRC4: [u8; 4] = [198, 18, 0, 1];
pub const DST4: [u8; 4] = [198, 19, 0, 2];
/// Default IPv6 source and destination: 2001:db8::1 → 2001:db8::2.
pub const SRC6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
pub const DST6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

/// The Internet checksum (RFC 1071) of `bytes`: the ones' complement of
/// the ones' complement sum of its 16-bit big-endian words, an odd last
/// byte padded with a zero. Stored in a header whose checksum field was
/// zero, it makes the header sum to 0xffff, so over a correct header
/// (checksum included) it is 0.
pub fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet header to `dst` from `src` announcing `ethertype`.
pub fn eth(dst: [u8; 6], src: [u8; 6], ethertype: u16) -> Vec<u8> {
    eth_tagged(dst, src, &[], ethertype)
}

/// An Ethernet header with VLAN `tags`, outermost first, each as (TPID,
/// TCI), then `ethertype`. The TCI is written as given: PCP and DEI bits
/// included, so a test can check that the parser masks them off.
pub fn eth_tagged(dst: [u8; 6], src: [u8; 6], tags: &[(u16, u16)], ethertype: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + 4 * tags.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    for &(tpid, tci) in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// An IPv4 header's fields. `Ipv4::default()` is UDP from [`SRC4`] to
/// [`DST4`], TTL 64, everything else zero.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipv4 {
    /// The TOS byte: DSCP << 2 | ECN.
    pub tos: u8,
    pub id: u16,
    /// Flags (DF 0x4000, MF 0x2000) and the fragment offset in 8-byte units.
    pub frag: u16,
    pub ttl: u8,
    pub protocol: u8,
    pub src: [u8; 4],
    pub dst: [u8; 4],
    /// Options, a multiple of 4 bytes long (the IHL counts words).
    pub options: Vec<u8>,
}

impl Default for Ipv4 {
    fn default() -> Ipv4 {
        Ipv4 {
            tos: 0,
            id: 0,
            frag: 0,
            ttl: 64,
            protocol: IPPROTO_UDP,
            src: SRC4,
            dst: DST4,
            options: Vec::new(),
        }
    }
}

impl Ipv4 {
    /// The header alone (20 bytes plus options) claiming `total_length`,
    /// version 4, the IHL of its options, and a correct checksum.
    pub fn header(&self, total_length: u16) -> Vec<u8> {
        let ihl = 5 + self.options.len() / 4;
        let mut h = vec![0x40 | ihl as u8, self.tos];
        h.extend_from_slice(&total_length.to_be_bytes());
        h.extend_from_slice(&self.id.to_be_bytes());
        h.extend_from_slice(&self.frag.to_be_bytes());
        h.extend_from_slice(&[self.ttl, self.protocol, 0, 0]);
        h.extend_from_slice(&self.src);
        h.extend_from_slice(&self.dst);
        h.extend_from_slice(&self.options);
        let sum = checksum(&h);
        h[10..12].copy_from_slice(&sum.to_be_bytes());
        h
    }

    /// The header with the total length of header and `payload`, then
    /// `payload`.
    pub fn packet(&self, payload: &[u8]) -> Vec<u8> {
        let total = 20 + self.options.len() + payload.len();
        let mut p = self.header(total as u16);
        p.extend_from_slice(payload);
        p
    }
}

/// An IPv6 header's fields. `Ipv6::default()` is UDP from [`SRC6`] to
/// [`DST6`], hop limit 64, traffic class and flow label zero.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipv6 {
    /// DSCP << 2 | ECN, as IPv4's TOS byte.
    pub traffic_class: u8,
    /// 20 bits.
    pub flow_label: u32,
    pub next_header: u8,
    pub hop_limit: u8,
    pub src: [u8; 16],
    pub dst: [u8; 16],
}

impl Default for Ipv6 {
    fn default() -> Ipv6 {
        Ipv6 {
            traffic_class: 0,
            flow_label: 0,
            next_header: IPPROTO_UDP,
            hop_limit: 64,
            src: SRC6,
            dst: DST6,
        }
    }
}

impl Ipv6 {
    /// The 40-byte header alone, claiming `payload_length`.
    pub fn header(&self, payload_length: u16) -> Vec<u8> {
        let word0 = 6 << 28 | u32::from(self.traffic_class) << 20 | self.flow_label & 0xf_ffff;
        let mut h = Vec::with_capacity(40);
        h.extend_from_slice(&word0.to_be_bytes());
        h.extend_from_slice(&payload_length.to_be_bytes());
        h.extend_from_slice(&[self.next_header, self.hop_limit]);
        h.extend_from_slice(&self.src);
        h.extend_from_slice(&self.dst);
        h
    }

    /// The header with the length of `payload`, then `payload`.
    pub fn packet(&self, payload: &[u8]) -> Vec<u8> {
        let mut p = self.header(payload.len() as u16);
        p.extend_from_slice(payload);
        p
    }
}

/// An 8-byte UDP header claiming `length` (header included), checksum
/// zero ("none", allowed over IPv4).
pub fn udp_header(sport: u16, dport: u16, length: u16) -> Vec<u8> {
    let mut u = Vec::with_capacity(8);
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&length.to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u
}

/// A UDP datagram: header with the right length, then `data`.
pub fn udp(sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let mut u = udp_header(sport, dport, (8 + data.len()) as u16);
    u.extend_from_slice(data);
    u
}

/// A TCP header of `data_offset` 32-bit words (at least the 5 of the fixed
/// part are written; the field says `data_offset` even when smaller, for
/// tests of a bad offset), no flags, everything else zero.
pub fn tcp(sport: u16, dport: u16, data_offset: u8) -> Vec<u8> {
    let mut t = vec![0u8; usize::from(data_offset.max(5)) * 4];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[12] = data_offset << 4;
    t
}

/// An Ethernet frame [`MAC_A`] → [`MAC_B`] carrying the IPv4 packet `ip`
/// with `l4` as its payload.
pub fn ipv4_frame(ip: &Ipv4, l4: &[u8]) -> Vec<u8> {
    let mut f = eth(MAC_B, MAC_A, ETHERTYPE_IPV4);
    f.extend_from_slice(&ip.packet(l4));
    f
}

/// An Ethernet frame [`MAC_A`] → [`MAC_B`] carrying the IPv6 packet `ip`
/// with `l4` as its payload.
pub fn ipv6_frame(ip: &Ipv6, l4: &[u8]) -> Vec<u8> {
    let mut f = eth(MAC_B, MAC_A, ETHERTYPE_IPV6);
    f.extend_from_slice(&ip.packet(l4));
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_matches_rfc1071_example() {
        // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&bytes), !0xddf2);
        // An odd byte is the high half of a last word.
        assert_eq!(checksum(&[0x12]), !0x1200);
    }

    #[test]
    fn a_correct_ipv4_header_sums_to_zero() {
        let ip = Ipv4 {
            options: vec![1; 8],
            ..Ipv4::default()
        };
        let p = ip.packet(&udp(1, 2, &[9; 3]));
        assert_eq!(p[0], 0x47);
        assert_eq!(u16::from_be_bytes([p[2], p[3]]), 28 + 8 + 3);
        assert_eq!(checksum(&p[..28]), 0);
        // A textbook header: 4500 003c 1c46 4000 4006 [b1e6] ac10 0a63
        // ac10 0a0c.
        let h = Ipv4 {
            id: 0x1c46,
            frag: 0x4000,
            protocol: IPPROTO_TCP,
            src: [172, 16, 10, 99],
            dst: [172, 16, 10, 12],
            ..Ipv4::default()
        }
        .header(0x3c);
        assert_eq!(u16::from_be_bytes([h[10], h[11]]), 0xb1e6);
    }

    #[test]
    fn ipv6_header_fields_land_where_rfc8200_puts_them() {
        let h = Ipv6 {
            traffic_class: 0xb9,
            flow_label: 0xabcde,
            next_header: IPPROTO_TCP,
            ..Ipv6::default()
        }
        .header(20);
        assert_eq!(h[..4], [0x6b, 0x9a, 0xbc, 0xde]);
        assert_eq!(h[4..8], [0, 20, 6, 64]);
        assert_eq!(h[8..24], SRC6);
        assert_eq!(h[24..40], DST6);
    }

    #[test]
    fn tags_come_before_the_ethertype() {
        let f = eth_tagged(MAC_B, MAC_A, &[(0x88a8, 5), (0x8100, 0xe00a)], 0x0800);
        assert_eq!(f[12..], [0x88, 0xa8, 0, 5, 0x81, 0, 0xe0, 0x0a, 0x08, 0]);
        assert_eq!(tcp(1, 2, 2).len(), 20);
        assert_eq!(tcp(1, 2, 2)[12], 0x20);
    }
}
