//! In-place frame parsing: the facts the classifier and the queues need,
//! read straight out of the received bytes (no copy, no allocation).
//!
//! What is understood:
//! - Ethernet II with up to two VLAN tags (TPID 0x8100, 0x88a8 or 0x9100 at
//!   either position; a third tag is left unparsed and the frame is non-IP).
//! - IPv4 with options. The total length bounds everything after it, so
//!   Ethernet padding after a short packet is never read as L4.
//! - IPv6 with up to [`MAX_IPV6_EXTENSION_HEADERS`] extension headers
//!   (hop-by-hop, routing, fragment, destination options, AH); the walk stops
//!   at ESP, no-next-header or anything unknown, which becomes the protocol.
//! - TCP, UDP, UDP-Lite and SCTP ports; ICMP and ICMPv6 type and code.
//! - Fragments: the first fragment carries the L4 header and its ports are
//!   read; later fragments have none ([`Fragment::Later`], [`L4::None`]).
//!
//! Non-IP frames (ARP, LLDP, ...) parse fine with [`Headers::ip`] `None`: a
//! bump-in-the-wire forwards them too. A frame shorter than an Ethernet
//! header, or whose IP or L4 header is cut short or inconsistent, is an
//! error; the shaper routes it by its malformed-frame policy. Checksums are
//! not verified (the end hosts do that; a shaper only reads).
//!
//! # No-panic contract
//!
//! For every input — any length, any content — [`parse_frame`] and
//! [`mark_ce`] return without panicking and without arithmetic overflow.
//! Every read goes through [`array`], which bounds-checks with `get` and
//! hands back a fixed-size array, so the constant indexes used afterwards
//! are checked by the compiler; offsets taken from the frame are combined
//! with `checked_add`. There is no `unwrap`, no slice indexing by a runtime
//! value and no `unsafe` in this module. `tests/parse_fuzz.rs` holds it to
//! that with arbitrary bytes and mutated valid frames.

use crate::packet::flags;

/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// 802.1Q VLAN tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// 802.1ad service tag (QinQ outer tag).
pub const ETHERTYPE_QINQ: u16 = 0x88a8;
/// Pre-standard QinQ outer tag still sent by some switches.
pub const ETHERTYPE_QINQ_OLD: u16 = 0x9100;

/// IP protocol numbers the parser looks into.
pub mod proto {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const IPV6_HOP_BY_HOP: u8 = 0;
    pub const IPV6_ROUTING: u8 = 43;
    pub const IPV6_FRAGMENT: u8 = 44;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    pub const IPV6_NO_NEXT_HEADER: u8 = 59;
    pub const IPV6_DEST_OPTIONS: u8 = 60;
    pub const SCTP: u8 = 132;
    pub const UDP_LITE: u8 = 136;
}

/// How many IPv6 extension headers are walked before the frame is refused.
/// Real traffic carries at most three or four; the bound keeps the cost of a
/// hostile chain of tiny headers small and fixed.
pub const MAX_IPV6_EXTENSION_HEADERS: usize = 8;

const ETH_HLEN: usize = 14;
const VLAN_HLEN: usize = 4;
pub(crate) const IPV4_MIN_HLEN: usize = 20;
const IPV6_HLEN: usize = 40;
const TCP_MIN_HLEN: usize = 20;
const UDP_HLEN: usize = 8;
const SCTP_MIN_HLEN: usize = 12;
/// Type, code, checksum and the 4-byte rest of header every ICMP message has.
const ICMP_MIN_HLEN: usize = 8;

/// Facts the classifier and the queues need from one frame.
///
/// `Copy` and 64 bytes (one cache line): it lives on the worker's stack for
/// one frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Headers {
    /// VLAN id (12 bits) of the outer tag, if the frame is tagged.
    pub outer_vlan: Option<u16>,
    /// VLAN id of the inner tag of a double-tagged (QinQ) frame.
    pub inner_vlan: Option<u16>,
    /// EtherType after the VLAN tags.
    pub ethertype: u16,
    /// Offset of the network header in the frame (after the VLAN tags).
    pub l3_offset: u16,
    /// The IP header facts; `None` for non-IP frames.
    pub ip: Option<IpHeader>,
}

/// IP version of a parsed packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpVersion {
    V4,
    V6,
}

/// Where a packet sits in a fragmented datagram.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Fragment {
    /// Not a fragment (an IPv6 "atomic" fragment, offset 0 and no more
    /// fragments, counts as not fragmented).
    #[default]
    None,
    /// Offset 0, more fragments follow: it carries the L4 header.
    First,
    /// Offset > 0: no L4 header, only the protocol is known.
    Later,
}

/// The transport facts of a packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum L4 {
    /// No transport header was read: a later fragment, or a protocol without
    /// ports (ESP, GRE, ...).
    #[default]
    None,
    /// TCP, UDP, UDP-Lite or SCTP.
    Ports { sport: u16, dport: u16 },
    /// ICMP or ICMPv6.
    Icmp { icmp_type: u8, code: u8 },
}

/// IP header facts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpHeader {
    /// Source address. IPv4 is stored IPv4-mapped (`::ffff:a.b.c.d`), as
    /// [`crate::classify::IpPrefix`] stores it, so prefixes compare directly.
    pub src: u128,
    /// Destination address, stored like `src`.
    pub dst: u128,
    pub version: IpVersion,
    /// The full TOS / traffic-class byte: DSCP << 2 | ECN.
    pub tos: u8,
    /// IPv4 protocol, or the IPv6 next header after the extension headers
    /// (the fragment header's next header for a later fragment).
    pub protocol: u8,
    pub fragment: Fragment,
    pub l4: L4,
    /// Offset of the transport header in the frame (the first byte after
    /// the IP header and its extension headers).
    pub l4_offset: u16,
}

/// Which header a [`ParseError::Truncated`] frame ran out in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HeaderKind {
    Ethernet,
    Vlan,
    Ipv4,
    /// The IPv4 total length runs past the end of the frame.
    Ipv4Payload,
    Ipv6,
    /// The IPv6 payload length runs past the end of the frame.
    Ipv6Payload,
    Ipv6Extension,
    Tcp,
    Udp,
    Sctp,
    Icmp,
}

impl HeaderKind {
    pub fn name(self) -> &'static str {
        match self {
            HeaderKind::Ethernet => "ethernet header",
            HeaderKind::Vlan => "vlan tag",
            HeaderKind::Ipv4 => "ipv4 header",
            HeaderKind::Ipv4Payload => "ipv4 payload",
            HeaderKind::Ipv6 => "ipv6 header",
            HeaderKind::Ipv6Payload => "ipv6 payload",
            HeaderKind::Ipv6Extension => "ipv6 extension header",
            HeaderKind::Tcp => "tcp header",
            HeaderKind::Udp => "udp header",
            HeaderKind::Sctp => "sctp header",
            HeaderKind::Icmp => "icmp header",
        }
    }
}

/// Why a frame could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParseError {
    /// The frame ends inside `what`.
    Truncated { what: HeaderKind },
    /// The EtherType says IPv4 (IPv6) but the version nibble is not 4 (6).
    BadIpVersion { found: u8 },
    /// IPv4 header length below 5 words.
    BadIhl { ihl: u8 },
    /// IPv4 total length shorter than the IPv4 header.
    BadTotalLength { total_length: u16 },
    /// More than [`MAX_IPV6_EXTENSION_HEADERS`] IPv6 extension headers.
    TooManyExtensionHeaders,
    /// TCP data offset below 5 words.
    BadTcpDataOffset { data_offset: u8 },
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            ParseError::Truncated { what } => write!(f, "frame ends inside the {}", what.name()),
            ParseError::BadIpVersion { found } => {
                write!(f, "ip version {found} does not match the ethertype")
            }
            ParseError::BadIhl { ihl } => write!(f, "ipv4 header length {ihl} is below 5"),
            ParseError::BadTotalLength { total_length } => {
                write!(
                    f,
                    "ipv4 total length {total_length} is below the header length"
                )
            }
            ParseError::TooManyExtensionHeaders => write!(
                f,
                "more than {MAX_IPV6_EXTENSION_HEADERS} ipv6 extension headers"
            ),
            ParseError::BadTcpDataOffset { data_offset } => {
                write!(f, "tcp data offset {data_offset} is below 5")
            }
        }
    }
}

impl std::error::Error for ParseError {}

/// `N` bytes of `b` starting at `at`, or `None` if they are not all there.
/// The one place this module touches frame bytes: everything else indexes
/// the returned array with constants, which the compiler checks.
#[inline(always)]
fn array<const N: usize>(b: &[u8], at: usize) -> Option<&[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

#[inline(always)]
fn need<const N: usize>(b: &[u8], at: usize, what: HeaderKind) -> Result<&[u8; N], ParseError> {
    array(b, at).ok_or(ParseError::Truncated { what })
}

#[inline(always)]
fn be16(b: [u8; 2]) -> u16 {
    u16::from_be_bytes(b)
}

/// Offsets in a frame fit in u16 (IP lengths are 16-bit); a hostile frame
/// longer than that saturates rather than wraps.
#[inline(always)]
fn off16(at: usize) -> u16 {
    u16::try_from(at).unwrap_or(u16::MAX)
}

#[inline(always)]
fn is_vlan_tpid(ethertype: u16) -> bool {
    matches!(
        ethertype,
        ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD
    )
}

/// Parse one Ethernet frame in place. See the module doc for what is
/// understood and for the no-panic contract.
pub fn parse_frame(frame: &[u8]) -> Result<Headers, ParseError> {
    let eth: &[u8; ETH_HLEN] = need(frame, 0, HeaderKind::Ethernet)?;
    let mut ethertype = be16([eth[12], eth[13]]);
    let mut at = ETH_HLEN;
    let mut outer_vlan = None;
    let mut inner_vlan = None;
    if is_vlan_tpid(ethertype) {
        let tag: &[u8; VLAN_HLEN] = need(frame, at, HeaderKind::Vlan)?;
        outer_vlan = Some(be16([tag[0], tag[1]]) & 0x0fff);
        ethertype = be16([tag[2], tag[3]]);
        at += VLAN_HLEN;
        if is_vlan_tpid(ethertype) {
            let tag: &[u8; VLAN_HLEN] = need(frame, at, HeaderKind::Vlan)?;
            inner_vlan = Some(be16([tag[0], tag[1]]) & 0x0fff);
            ethertype = be16([tag[2], tag[3]]);
            at += VLAN_HLEN;
        }
    }
    let ip = match ethertype {
        ETHERTYPE_IPV4 => Some(parse_ipv4(frame, at)?),
        ETHERTYPE_IPV6 => Some(parse_ipv6(frame, at)?),
        _ => None,
    };
    Ok(Headers {
        outer_vlan,
        inner_vlan,
        ethertype,
        l3_offset: off16(at),
        ip,
    })
}

#[inline(always)]
fn ipv4_mapped(addr: [u8; 4]) -> u128 {
    0xffff_0000_0000 | u128::from(u32::from_be_bytes(addr))
}

fn parse_ipv4(frame: &[u8], l3: usize) -> Result<IpHeader, ParseError> {
    let h: &[u8; IPV4_MIN_HLEN] = need(frame, l3, HeaderKind::Ipv4)?;
    let version = h[0] >> 4;
    if version != 4 {
        return Err(ParseError::BadIpVersion { found: version });
    }
    let ihl = h[0] & 0x0f;
    if ihl < 5 {
        return Err(ParseError::BadIhl { ihl });
    }
    let header_len = usize::from(ihl) * 4;
    let total_length = be16([h[2], h[3]]);
    if usize::from(total_length) < header_len {
        return Err(ParseError::BadTotalLength { total_length });
    }
    // Anything after `end` is Ethernet padding (or garbage): never read it.
    let end = l3
        .checked_add(usize::from(total_length))
        .filter(|&end| end <= frame.len())
        .ok_or(ParseError::Truncated {
            what: HeaderKind::Ipv4Payload,
        })?;
    // `header_len <= total_length` and `end <= frame.len()`, so the options
    // are inside the frame.
    let l4_at = l3 + header_len;
    let frag = be16([h[6], h[7]]);
    let fragment = if frag & 0x1fff != 0 {
        Fragment::Later
    } else if frag & 0x2000 != 0 {
        Fragment::First
    } else {
        Fragment::None
    };
    let protocol = h[9];
    let l4 = match frame.get(l4_at..end) {
        Some(payload) if fragment != Fragment::Later => parse_l4(payload, protocol)?,
        _ => L4::None,
    };
    Ok(IpHeader {
        src: ipv4_mapped([h[12], h[13], h[14], h[15]]),
        dst: ipv4_mapped([h[16], h[17], h[18], h[19]]),
        version: IpVersion::V4,
        tos: h[1],
        protocol,
        fragment,
        l4,
        l4_offset: off16(l4_at),
    })
}

fn parse_ipv6(frame: &[u8], l3: usize) -> Result<IpHeader, ParseError> {
    let h: &[u8; IPV6_HLEN] = need(frame, l3, HeaderKind::Ipv6)?;
    let version = h[0] >> 4;
    if version != 6 {
        return Err(ParseError::BadIpVersion { found: version });
    }
    let tos = (h[0] << 4) | (h[1] >> 4);
    // A payload length of 0 would mean a jumbogram, which no Ethernet frame
    // can carry: it is taken literally (an empty payload).
    let payload_length = usize::from(be16([h[4], h[5]]));
    let mut next = h[6];
    let src: &[u8; 16] = need(h, 8, HeaderKind::Ipv6)?;
    let dst: &[u8; 16] = need(h, 24, HeaderKind::Ipv6)?;
    let mut at = l3 + IPV6_HLEN;
    let end = at
        .checked_add(payload_length)
        .filter(|&end| end <= frame.len())
        .ok_or(ParseError::Truncated {
            what: HeaderKind::Ipv6Payload,
        })?;
    // Everything below reads only inside the payload, never the padding.
    let packet = frame.get(..end).unwrap_or_default();
    let mut fragment = Fragment::None;
    let mut walked = 0;
    loop {
        let len = match next {
            proto::IPV6_HOP_BY_HOP | proto::IPV6_ROUTING | proto::IPV6_DEST_OPTIONS => {
                let e: &[u8; 2] = need(packet, at, HeaderKind::Ipv6Extension)?;
                (usize::from(e[1]) + 1) * 8
            }
            proto::AH => {
                let e: &[u8; 2] = need(packet, at, HeaderKind::Ipv6Extension)?;
                (usize::from(e[1]) + 2) * 4
            }
            proto::IPV6_FRAGMENT => {
                let e: &[u8; 8] = need(packet, at, HeaderKind::Ipv6Extension)?;
                let frag = be16([e[2], e[3]]);
                if frag >> 3 != 0 {
                    // The rest is the middle of a datagram: only the next
                    // header of the fragmentable part is known.
                    fragment = Fragment::Later;
                } else if frag & 1 != 0 {
                    fragment = Fragment::First;
                }
                8
            }
            _ => break,
        };
        if walked == MAX_IPV6_EXTENSION_HEADERS {
            return Err(ParseError::TooManyExtensionHeaders);
        }
        walked += 1;
        // The header must be whole: its first bytes are in `packet` and `at`
        // plus at most 2 KiB cannot overflow, but check anyway.
        let after = at
            .checked_add(len)
            .filter(|&after| after <= packet.len())
            .ok_or(ParseError::Truncated {
                what: HeaderKind::Ipv6Extension,
            })?;
        let e: &[u8; 1] = need(packet, at, HeaderKind::Ipv6Extension)?;
        next = e[0];
        at = after;
        if fragment == Fragment::Later {
            break;
        }
    }
    let l4 = match packet.get(at..) {
        Some(payload) if fragment != Fragment::Later => parse_l4(payload, next)?,
        _ => L4::None,
    };
    Ok(IpHeader {
        src: u128::from_be_bytes(*src),
        dst: u128::from_be_bytes(*dst),
        version: IpVersion::V6,
        tos,
        protocol: next,
        fragment,
        l4,
        l4_offset: off16(at),
    })
}

/// Transport facts from `payload`, which starts at the transport header and
/// ends where the IP packet ends.
fn parse_l4(payload: &[u8], protocol: u8) -> Result<L4, ParseError> {
    match protocol {
        proto::TCP => {
            let t: &[u8; TCP_MIN_HLEN] = need(payload, 0, HeaderKind::Tcp)?;
            let data_offset = t[12] >> 4;
            if data_offset < 5 {
                return Err(ParseError::BadTcpDataOffset { data_offset });
            }
            if usize::from(data_offset) * 4 > payload.len() {
                return Err(ParseError::Truncated {
                    what: HeaderKind::Tcp,
                });
            }
            Ok(ports(t))
        }
        proto::UDP | proto::UDP_LITE => {
            let u: &[u8; UDP_HLEN] = need(payload, 0, HeaderKind::Udp)?;
            Ok(ports(u))
        }
        proto::SCTP => {
            let s: &[u8; SCTP_MIN_HLEN] = need(payload, 0, HeaderKind::Sctp)?;
            Ok(ports(s))
        }
        proto::ICMP | proto::ICMPV6 => {
            let i: &[u8; ICMP_MIN_HLEN] = need(payload, 0, HeaderKind::Icmp)?;
            Ok(L4::Icmp {
                icmp_type: i[0],
                code: i[1],
            })
        }
        _ => Ok(L4::None),
    }
}

#[inline(always)]
fn ports<const N: usize>(h: &[u8; N]) -> L4 {
    // Every caller passes N >= 8; `array` cannot fail then.
    match array::<4>(h, 0) {
        Some(p) => L4::Ports {
            sport: be16([p[0], p[1]]),
            dport: be16([p[2], p[3]]),
        },
        None => L4::None,
    }
}

impl Headers {
    /// The IP header facts, if this is an IP packet.
    pub fn ip(&self) -> Option<&IpHeader> {
        self.ip.as_ref()
    }

    /// `(sport, dport)` when the packet carries a TCP, UDP, UDP-Lite or SCTP
    /// header (not for later fragments, ICMP or other protocols).
    pub fn ports(&self) -> Option<(u16, u16)> {
        match self.ip?.l4 {
            L4::Ports { sport, dport } => Some((sport, dport)),
            _ => None,
        }
    }

    pub fn sport(&self) -> Option<u16> {
        self.ports().map(|(s, _)| s)
    }

    pub fn dport(&self) -> Option<u16> {
        self.ports().map(|(_, d)| d)
    }

    /// `(type, code)` of an ICMP or ICMPv6 message.
    pub fn icmp(&self) -> Option<(u8, u8)> {
        match self.ip?.l4 {
            L4::Icmp { icmp_type, code } => Some((icmp_type, code)),
            _ => None,
        }
    }

    /// Unseeded hash of (src, dst, protocol, sport, dport); 0 for non-IP.
    ///
    /// A few multiplies, no SipHash: SFQ and FQ-CoDel mix in their own
    /// perturbation before bucketing, which is what defends against chosen
    /// collisions. Ports are left out of every fragment (first ones too), so
    /// all pieces of one datagram hash alike and stay in order in one flow
    /// queue — Linux's flow dissector does the same by default.
    pub fn flow_hash(&self) -> u32 {
        let Some(ip) = self.ip else {
            return 0;
        };
        let (sport, dport) = match (ip.fragment, ip.l4) {
            (Fragment::None, L4::Ports { sport, dport }) => (sport, dport),
            _ => (0, 0),
        };
        let l4 = (u64::from(ip.protocol) << 32) | (u64::from(sport) << 16) | u64::from(dport);
        let a = fold_mul(
            (ip.src as u64) ^ 0x243f_6a88_85a3_08d3,
            ((ip.src >> 64) as u64) ^ 0x1319_8a2e_0370_7344,
        );
        let b = fold_mul(
            (ip.dst as u64) ^ 0xa409_3822_299f_31d0,
            ((ip.dst >> 64) as u64) ^ 0x082e_fa98_ec4e_6c89,
        );
        let h = fold_mul(a ^ l4 ^ 0x4528_21e6_38d0_1377, b ^ 0xbe54_66cf_34e9_0c6c);
        (h ^ (h >> 32)) as u32
    }

    /// [`crate::packet::flags`] bits: IPV4 / IPV6 from the version, ECT or CE
    /// from the ECN field.
    pub fn packet_flags(&self) -> u8 {
        let Some(ip) = self.ip else {
            return 0;
        };
        let family = match ip.version {
            IpVersion::V4 => flags::IPV4,
            IpVersion::V6 => flags::IPV6,
        };
        let ecn = match ip.tos & 0x03 {
            0 => 0,
            3 => flags::CE,
            _ => flags::ECT,
        };
        family | ecn
    }
}

/// 64x64→128 multiply folded back to 64 bits (the wyhash / folded-multiply
/// mixer): every input bit reaches every output bit in one multiply.
#[inline(always)]
fn fold_mul(a: u64, b: u64) -> u64 {
    let m = u128::from(a) * u128::from(b);
    (m as u64) ^ ((m >> 64) as u64)
}

/// Set ECN to CE (0b11) in the IP header at `l3_offset`: the IPv4 TOS byte,
/// with the header checksum fixed incrementally (RFC 1624), or the IPv6
/// traffic class.
///
/// Returns true if the packet now carries CE (it was ECT(0)/ECT(1), or was
/// already CE: nothing to change then). Returns false and changes nothing
/// when there is no IPv4/IPv6 header at `l3_offset` or it is not
/// ECN-capable; the AQM must drop such a packet instead. Never panics (see
/// the module doc).
pub fn mark_ce(frame: &mut [u8], l3_offset: u16) -> bool {
    let l3 = usize::from(l3_offset);
    let Some(&first) = frame.get(l3) else {
        return false;
    };
    match first >> 4 {
        4 => mark_ce_ipv4(frame, l3),
        6 => mark_ce_ipv6(frame, l3),
        _ => false,
    }
}

fn mark_ce_ipv4(frame: &mut [u8], l3: usize) -> bool {
    let Some(h) = ipv4_header_mut(frame, l3) else {
        return false;
    };
    let tos = h[1];
    match tos & 0x03 {
        0 => false,
        3 => true,
        _ => {
            set_ipv4_tos(h, tos | 0x03);
            true
        }
    }
}

/// The fixed part of the IPv4 header at `l3`, if the frame holds it whole
/// and its IHL is valid.
pub(crate) fn ipv4_header_mut(frame: &mut [u8], l3: usize) -> Option<&mut [u8; IPV4_MIN_HLEN]> {
    let h = l3
        .checked_add(IPV4_MIN_HLEN)
        .and_then(|end| frame.get_mut(l3..end))
        .and_then(|h| <&mut [u8; IPV4_MIN_HLEN]>::try_from(h).ok())?;
    (h[0] & 0x0f >= 5).then_some(h)
}

/// The IPv6 header at `l3`, if the frame holds it whole.
pub(crate) fn ipv6_header_mut(frame: &mut [u8], l3: usize) -> Option<&mut [u8; IPV6_HLEN]> {
    l3.checked_add(IPV6_HLEN)
        .and_then(|end| frame.get_mut(l3..end))
        .and_then(|h| <&mut [u8; IPV6_HLEN]>::try_from(h).ok())
}

/// Write `new_tos` into an IPv4 header, fixing its checksum incrementally
/// (RFC 1624): TOS is the low byte of the header's first 16-bit word.
pub(crate) fn set_ipv4_tos(h: &mut [u8; IPV4_MIN_HLEN], new_tos: u8) {
    let check = be16([h[10], h[11]]);
    let check = checksum_replace(check, be16([h[0], h[1]]), be16([h[0], new_tos]));
    h[1] = new_tos;
    [h[10], h[11]] = check.to_be_bytes();
}

fn mark_ce_ipv6(frame: &mut [u8], l3: usize) -> bool {
    let Some(h) = ipv6_header_mut(frame, l3) else {
        return false;
    };
    // The traffic class straddles bytes 0 and 1; ECN is its low two bits,
    // bits 5..4 of byte 1.
    match (h[1] >> 4) & 0x03 {
        0 => false,
        3 => true,
        _ => {
            h[1] |= 0x30;
            true
        }
    }
}

/// RFC 1624 eqn. 3: `HC' = ~(~HC + ~m + m')` in one's complement, for one
/// 16-bit word changing from `old` to `new`.
#[inline]
fn checksum_replace(check: u16, old: u16, new: u16) -> u16 {
    let mut sum = u32::from(!check) + u32::from(!old) + u32::from(new);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_testkit::frame;

    fn udp4(tos: u8) -> Vec<u8> {
        let ip = frame::Ipv4 {
            tos,
            ..frame::Ipv4::default()
        };
        frame::ipv4_frame(&ip, &frame::udp(1234, 80, &[]))
    }

    #[test]
    fn udp_ipv4_fields() {
        let h = parse_frame(&udp4(0xb9)).expect("valid frame");
        let ip = h.ip.expect("ip");
        assert_eq!(ip.src, 0xffff_c612_0001);
        assert_eq!(ip.dst, 0xffff_c613_0002);
        assert_eq!(ip.tos, 0xb9);
        assert_eq!(h.ports(), Some((1234, 80)));
        assert_eq!(h.l3_offset, 14);
        assert_eq!(h.packet_flags(), flags::IPV4 | flags::ECT);
    }

    #[test]
    fn headers_fit_a_cache_line() {
        assert!(std::mem::size_of::<Headers>() <= 64);
    }

    #[test]
    fn checksum_replace_matches_rfc1624_example() {
        // RFC 1624 section 4: HC = 0xdd2f, m = 0x5555 -> m' = 0x3285,
        // HC' = 0x0000.
        assert_eq!(checksum_replace(0xdd2f, 0x5555, 0x3285), 0x0000);
    }
}
