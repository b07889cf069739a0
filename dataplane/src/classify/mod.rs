//! Filters: tc u32-style matches compiled into a structure that does not scan
//! every rule per packet.
//!
//! CONTRACT (fixed; the config layer builds these):
//! - `FilterSpec`s are given in evaluation order (sorted by tc `prio`, then
//!   by position in the file); the first that matches wins.
//! - `Classifier::classify` returns the `target` of the winning filter, or
//!   `None` when nothing matches (the caller then uses the tree's default).

/// A match on an L4 port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortMatch {
    /// `lo <= port <= hi` (a single port is `lo == hi`).
    Range { lo: u16, hi: u16 },
    /// `port & mask == value & mask` (tc u32 `match ip sport V M`).
    Masked { value: u16, mask: u16 },
}

/// An IP prefix. IPv4 addresses are kept as IPv4-mapped IPv6
/// (`::ffff:a.b.c.d`, the low 32 bits) so one 128-bit field serves both;
/// `len` counts bits of the *original* family (0..=32 for IPv4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpPrefix {
    pub v6: bool,
    pub addr: u128,
    pub len: u8,
}

/// Which network protocol a filter applies to (tc's `protocol ip|ipv6|all`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum L3Match {
    #[default]
    Any,
    Ipv4,
    Ipv6,
    /// A non-IP EtherType, e.g. 0x0806 for ARP (no IP fields may be set).
    EtherType(u16),
}

/// One filter: all the given fields must match (logical AND); `None` means
/// "any".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilterSpec {
    pub l3: L3Match,
    /// Outer VLAN id (0..=4095).
    pub vlan: Option<u16>,
    pub src: Option<IpPrefix>,
    pub dst: Option<IpPrefix>,
    /// IP protocol / IPv6 next header after extension headers (6 TCP, 17 UDP,
    /// 1 ICMP, 58 ICMPv6).
    pub ip_proto: Option<u8>,
    /// `(value, mask)` on the full TOS / traffic-class byte, as tc u32
    /// `match ip tos 0xb8 0xfc`. A DSCP match `EF` is `(46 << 2, 0xfc)`.
    pub tos: Option<(u8, u8)>,
    pub sport: Option<PortMatch>,
    pub dport: Option<PortMatch>,
    /// What the filter classifies into (an HTB leaf index chosen by the
    /// caller).
    pub target: u32,
}

#[cfg(any())]
mod placeholder {}

/// PLACEHOLDER — being written (owner: classifier helper). Linear scan until
/// the compiled structure lands.
#[derive(Debug, Default)]
pub struct Classifier {
    filters: Vec<FilterSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClassifyError {}

impl Classifier {
    pub fn new(filters: &[FilterSpec]) -> Result<Classifier, ClassifyError> {
        Ok(Classifier {
            filters: filters.to_vec(),
        })
    }

    pub fn classify(&self, _h: &crate::parse::Headers) -> Option<u32> {
        self.filters.first().map(|f| f.target)
    }
}
