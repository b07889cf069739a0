//! Filters: tc u32-style matches compiled into a structure that does not scan
//! every rule per packet.
//!
//! CONTRACT (fixed; the config layer builds these):
//! - `FilterSpec`s are given in evaluation order (sorted by tc `prio`, then
//!   by position in the file); the first that matches wins.
//! - `Classifier::classify` returns the `target` of the winning filter, or
//!   `None` when nothing matches (the caller then uses the tree's default).
//!
//! Semantics per field (all given fields must match):
//! - `l3`: `Any` matches every frame, non-IP included; `Ipv4` / `Ipv6` the
//!   parsed IP version; `EtherType(x)` the EtherType after the VLAN tags.
//! - `vlan`: the outer VLAN id; an untagged frame never matches.
//! - `src` / `dst`: the prefix's family must be the packet's (an IPv4 prefix
//!   never matches an IPv6 packet, even one carrying `::ffff:a.b.c.d`).
//! - `ip_proto`, `tos` (value, mask on the full TOS byte).
//! - `sport` / `dport`: only packets that carry ports (TCP, UDP, UDP-Lite,
//!   SCTP, not later fragments) can match; ICMP never does.
//! - Any IP field makes the filter IP-only: it never matches non-IP frames.
//!
//! # How it is compiled: tuple-space search
//!
//! Every filter becomes one or more exact-match entries `(shape, key)`: the
//! shape says which header bits matter (which fields, prefix lengths, TOS
//! and port masks) and which facts must be present (IP, VLAN tag, ports);
//! the key is the header bits under that mask. A port range becomes the few
//! aligned value/mask blocks that tile it (at most 30 for a 16-bit range);
//! sport × dport blocks are crossed. Entries of one shape form a group, a
//! hash table from key to the lowest filter order with that key.
//!
//! Classifying a packet packs its header facts into one key once, then for
//! each group: one mask (four ANDs), one hash, one probe. Groups are visited
//! in order of the best (lowest) filter order they hold, and the walk stops
//! as soon as no remaining group can beat the match already found. The cost
//! is therefore groups × one probe, independent of how many filters share a
//! shape: 10,000 per-subscriber `/32` dst filters are one group and one
//! probe. Filters whose port ranges would cross into more than
//! [`MAX_ENTRIES_PER_FILTER`] entries are kept in a plain list instead,
//! visited in the same order as one more group. Nothing is allocated per
//! packet.

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

mod table;

use crate::parse::{Headers, IpVersion};
use table::{Key, Table};

/// A filter whose port ranges cross into more exact-match entries than this
/// is checked by a plain comparison instead (see the module doc). A sport
/// range and a dport range of up to 11 blocks each still go to the tables;
/// two arbitrary ranges (up to 30 × 30 = 900 blocks) go to the list.
pub const MAX_ENTRIES_PER_FILTER: usize = 128;

/// Why a filter list could not be compiled. `filter` is the index in the
/// slice given to [`Classifier::new`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClassifyError {
    /// A VLAN id above 4095.
    VlanOutOfRange { filter: usize, vlan: u16 },
    /// A prefix longer than its family's address (32 or 128 bits).
    PrefixTooLong { filter: usize, len: u8, max: u8 },
    /// A port range whose `lo` is above its `hi`.
    EmptyPortRange { filter: usize, lo: u16, hi: u16 },
    /// `l3` is a non-IP EtherType but IP fields are set too.
    IpFieldsWithEtherType { filter: usize, ethertype: u16 },
    /// The filter asks for IPv4 and IPv6 at once (`l3` and the prefixes
    /// disagree), so it could never match.
    FamilyConflict { filter: usize },
    /// More filters than fit a 32-bit order.
    TooManyFilters { count: usize },
}

impl std::fmt::Display for ClassifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            ClassifyError::VlanOutOfRange { filter, vlan } => {
                write!(f, "filter {filter}: vlan {vlan} is above 4095")
            }
            ClassifyError::PrefixTooLong { filter, len, max } => {
                write!(f, "filter {filter}: prefix length {len} is above {max}")
            }
            ClassifyError::EmptyPortRange { filter, lo, hi } => {
                write!(f, "filter {filter}: port range {lo}-{hi} is empty")
            }
            ClassifyError::IpFieldsWithEtherType { filter, ethertype } => write!(
                f,
                "filter {filter}: ethertype {ethertype:#06x} cannot be combined with ip fields"
            ),
            ClassifyError::FamilyConflict { filter } => write!(
                f,
                "filter {filter}: mixes ipv4 and ipv6 (protocol and prefixes disagree), it can never match"
            ),
            ClassifyError::TooManyFilters { count } => {
                write!(f, "{count} filters do not fit a 32-bit filter order")
            }
        }
    }
}

impl std::error::Error for ClassifyError {}

/// Facts a group can require of a packet before its key means anything.
const HAS_IP: u8 = 1 << 0;
const HAS_VLAN: u8 = 1 << 1;
const HAS_PORTS: u8 = 1 << 2;

// Field positions in the packed words of `Key` (see `table::Key`).
const W0_ETHERTYPE: u32 = 48;
const W0_VLAN: u32 = 32;
const W0_SPORT: u32 = 16;
const W0_DPORT: u32 = 0;
const W1_VERSION: u32 = 16;
const W1_PROTO: u32 = 8;
const W1_TOS: u32 = 0;

/// One tuple-space group: every entry has the same `need` and `mask`.
#[derive(Clone, Debug)]
struct TupleGroup {
    need: u8,
    mask: Key,
    table: Table,
}

/// A port check that serves both kinds of [`PortMatch`]:
/// `port & mask == value && lo <= port <= hi`.
#[derive(Clone, Copy, Debug)]
struct PortCheck {
    value: u16,
    mask: u16,
    lo: u16,
    hi: u16,
}

impl PortCheck {
    fn new(m: PortMatch) -> PortCheck {
        match m {
            PortMatch::Range { lo, hi } => PortCheck {
                value: 0,
                mask: 0,
                lo,
                hi,
            },
            PortMatch::Masked { value, mask } => PortCheck {
                value: value & mask,
                mask,
                lo: 0,
                hi: u16::MAX,
            },
        }
    }

    #[inline]
    fn matches(&self, port: u16) -> bool {
        port & self.mask == self.value && (self.lo..=self.hi).contains(&port)
    }
}

/// A filter too wide to expand: checked field by field.
#[derive(Clone, Debug)]
struct ListedFilter {
    order: u32,
    need: u8,
    /// Everything but the ports, as in a tuple group.
    mask: Key,
    value: Key,
    sport: Option<PortCheck>,
    dport: Option<PortCheck>,
}

#[derive(Clone, Debug)]
enum Lookup {
    Tuple(TupleGroup),
    /// Sorted by order.
    List(Vec<ListedFilter>),
}

#[derive(Clone, Debug)]
struct Group {
    /// The lowest filter order in the group: no packet can match it with a
    /// better one, which is what lets the walk stop early.
    best: u32,
    lookup: Lookup,
}

/// Compiled filters. Build with [`Classifier::new`]; classify with
/// [`Classifier::classify`]. Immutable once built: a config change compiles
/// a new one and swaps it in.
#[derive(Clone, Default)]
pub struct Classifier {
    /// Sorted by `best`.
    groups: Vec<Group>,
    /// `targets[order]` is the target of filter `order`.
    targets: Vec<u32>,
}

/// A group being collected at compile time: (key, filter order) pairs in
/// ascending order.
struct PendingGroup {
    need: u8,
    mask: Key,
    entries: Vec<(Key, u32)>,
}

/// What compiling one filter gives, before grouping.
struct Compiled {
    need: u8,
    mask: Key,
    value: Key,
    /// (value, mask) alternatives for each port; `None` = port not matched.
    sport: Option<Vec<(u16, u16)>>,
    dport: Option<Vec<(u16, u16)>>,
}

impl Classifier {
    /// Compile `filters` (in evaluation order: the first that matches wins).
    /// Costs O(filters × expansion) time and memory, done off the data path.
    pub fn new(filters: &[FilterSpec]) -> Result<Classifier, ClassifyError> {
        if u32::try_from(filters.len()).is_err() || filters.len() == u32::MAX as usize {
            return Err(ClassifyError::TooManyFilters {
                count: filters.len(),
            });
        }
        // Shape → entries, in first-seen order so the build is deterministic.
        let mut shapes: std::collections::HashMap<(u8, Key), usize> = Default::default();
        let mut tuples: Vec<PendingGroup> = Vec::new();
        let mut listed: Vec<ListedFilter> = Vec::new();
        for (i, spec) in filters.iter().enumerate() {
            let order = i as u32;
            let c = compile(i, spec)?;
            let n_sport = c.sport.as_ref().map_or(1, Vec::len);
            let n_dport = c.dport.as_ref().map_or(1, Vec::len);
            if n_sport * n_dport > MAX_ENTRIES_PER_FILTER {
                listed.push(ListedFilter {
                    order,
                    need: c.need,
                    mask: c.mask,
                    value: c.value,
                    sport: spec.sport.map(PortCheck::new),
                    dport: spec.dport.map(PortCheck::new),
                });
                continue;
            }
            let any = [(0u16, 0u16)];
            let sports = c.sport.as_deref().unwrap_or(&any);
            let dports = c.dport.as_deref().unwrap_or(&any);
            for &(sv, sm) in sports {
                for &(dv, dm) in dports {
                    let port_mask = (u64::from(sm) << W0_SPORT) | (u64::from(dm) << W0_DPORT);
                    let port_value = (u64::from(sv) << W0_SPORT) | (u64::from(dv) << W0_DPORT);
                    let mask = Key {
                        w0: c.mask.w0 | port_mask,
                        ..c.mask
                    };
                    let key = Key {
                        w0: c.value.w0 | port_value,
                        ..c.value
                    };
                    let at = *shapes.entry((c.need, mask)).or_insert_with(|| {
                        tuples.push(PendingGroup {
                            need: c.need,
                            mask,
                            entries: Vec::new(),
                        });
                        tuples.len() - 1
                    });
                    if let Some(pending) = tuples.get_mut(at) {
                        pending.entries.push((key, order));
                    }
                }
            }
        }
        let mut groups: Vec<Group> = tuples
            .into_iter()
            .map(|p| Group {
                best: p.entries.iter().map(|&(_, o)| o).min().unwrap_or(u32::MAX),
                lookup: Lookup::Tuple(TupleGroup {
                    need: p.need,
                    mask: p.mask,
                    table: Table::build(&p.entries),
                }),
            })
            .collect();
        if let Some(first) = listed.first() {
            groups.push(Group {
                best: first.order,
                lookup: Lookup::List(listed),
            });
        }
        groups.sort_by_key(|g| g.best);
        Ok(Classifier {
            groups,
            targets: filters.iter().map(|f| f.target).collect(),
        })
    }

    /// The `target` of the first filter (in the order given to
    /// [`Classifier::new`]) that matches `h`, or `None`.
    ///
    /// Cost: one key build, then per visited group one mask, one hash and
    /// one probe (see the module doc). No allocation.
    pub fn classify(&self, h: &Headers) -> Option<u32> {
        let (present, key) = packet_key(h);
        let mut found = u32::MAX;
        for g in &self.groups {
            if g.best >= found {
                break;
            }
            let hit = match &g.lookup {
                Lookup::Tuple(t) => {
                    if t.need & !present != 0 {
                        continue;
                    }
                    t.table.get(&key.and(&t.mask))
                }
                Lookup::List(list) => list
                    .iter()
                    .take_while(|f| f.order < found)
                    .find(|f| listed_matches(f, present, &key))
                    .map(|f| f.order),
            };
            if let Some(order) = hit {
                found = found.min(order);
            }
        }
        self.targets.get(usize::try_from(found).ok()?).copied()
    }

    /// Number of filters compiled.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Number of groups a packet may have to probe (the per-packet cost
    /// bound), the plain list counting as one.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Number of filters too wide to expand, checked one by one.
    pub fn listed_count(&self) -> usize {
        self.groups
            .iter()
            .map(|g| match &g.lookup {
                Lookup::List(l) => l.len(),
                Lookup::Tuple(_) => 0,
            })
            .sum()
    }

    /// Number of exact-match entries over all groups (memory: about 64
    /// bytes each plus 16 bytes of slots).
    pub fn entry_count(&self) -> usize {
        self.groups
            .iter()
            .map(|g| match &g.lookup {
                Lookup::Tuple(t) => t.table.len(),
                Lookup::List(_) => 0,
            })
            .sum()
    }
}

/// A summary: the tables themselves can hold millions of entries.
impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("filters", &self.len())
            .field("groups", &self.group_count())
            .field("entries", &self.entry_count())
            .field("listed", &self.listed_count())
            .finish()
    }
}

/// The packet's facts packed like a filter key, unmasked, plus which facts
/// are present at all.
#[inline]
fn packet_key(h: &Headers) -> (u8, Key) {
    let mut present = 0;
    let mut w0 = u64::from(h.ethertype) << W0_ETHERTYPE;
    if let Some(vlan) = h.outer_vlan {
        present |= HAS_VLAN;
        w0 |= u64::from(vlan) << W0_VLAN;
    }
    let Some(ip) = h.ip else {
        return (
            present,
            Key {
                w0,
                ..Key::default()
            },
        );
    };
    present |= HAS_IP;
    if let Some((sport, dport)) = h.ports() {
        present |= HAS_PORTS;
        w0 |= (u64::from(sport) << W0_SPORT) | (u64::from(dport) << W0_DPORT);
    }
    let version: u64 = match ip.version {
        IpVersion::V4 => 4,
        IpVersion::V6 => 6,
    };
    let w1 = (version << W1_VERSION)
        | (u64::from(ip.protocol) << W1_PROTO)
        | (u64::from(ip.tos) << W1_TOS);
    (
        present,
        Key {
            src: ip.src,
            dst: ip.dst,
            w0,
            w1,
        },
    )
}

fn listed_matches(f: &ListedFilter, present: u8, key: &Key) -> bool {
    if f.need & !present != 0 || key.and(&f.mask) != f.value {
        return false;
    }
    let sport = (key.w0 >> W0_SPORT) as u16;
    let dport = (key.w0 >> W0_DPORT) as u16;
    let sport_ok = match f.sport {
        Some(p) => p.matches(sport),
        None => true,
    };
    let dport_ok = match f.dport {
        Some(p) => p.matches(dport),
        None => true,
    };
    sport_ok && dport_ok
}

/// Check one filter and turn it into mask/value form.
fn compile(filter: usize, spec: &FilterSpec) -> Result<Compiled, ClassifyError> {
    let mut need = 0u8;
    let mut mask = Key::default();
    let mut value = Key::default();
    // The IP version the filter requires, from `l3` and the prefixes.
    let mut version: Option<u64> = None;
    let mut require_version = |v: u64| -> Result<(), ClassifyError> {
        match version {
            Some(have) if have != v => Err(ClassifyError::FamilyConflict { filter }),
            _ => {
                version = Some(v);
                Ok(())
            }
        }
    };

    let has_ip_fields = spec.src.is_some()
        || spec.dst.is_some()
        || spec.ip_proto.is_some()
        || spec.tos.is_some()
        || spec.sport.is_some()
        || spec.dport.is_some();
    match spec.l3 {
        L3Match::Any => {}
        L3Match::Ipv4 => require_version(4)?,
        L3Match::Ipv6 => require_version(6)?,
        L3Match::EtherType(ethertype) => {
            if has_ip_fields {
                return Err(ClassifyError::IpFieldsWithEtherType { filter, ethertype });
            }
            mask.w0 |= 0xffff << W0_ETHERTYPE;
            value.w0 |= u64::from(ethertype) << W0_ETHERTYPE;
        }
    }
    if let Some(vlan) = spec.vlan {
        if vlan > 0x0fff {
            return Err(ClassifyError::VlanOutOfRange { filter, vlan });
        }
        need |= HAS_VLAN;
        mask.w0 |= 0x0fff << W0_VLAN;
        value.w0 |= u64::from(vlan) << W0_VLAN;
    }
    if let Some(p) = spec.src {
        let (v, m) = prefix_mask(filter, p)?;
        require_version(if p.v6 { 6 } else { 4 })?;
        mask.src = m;
        value.src = v;
    }
    if let Some(p) = spec.dst {
        let (v, m) = prefix_mask(filter, p)?;
        require_version(if p.v6 { 6 } else { 4 })?;
        mask.dst = m;
        value.dst = v;
    }
    if let Some(v) = version {
        need |= HAS_IP;
        mask.w1 |= 0xff << W1_VERSION;
        value.w1 |= v << W1_VERSION;
    }
    if let Some(p) = spec.ip_proto {
        mask.w1 |= 0xff << W1_PROTO;
        value.w1 |= u64::from(p) << W1_PROTO;
    }
    if let Some((v, m)) = spec.tos {
        mask.w1 |= u64::from(m) << W1_TOS;
        value.w1 |= u64::from(v & m) << W1_TOS;
    }
    if has_ip_fields {
        need |= HAS_IP;
    }
    let sport = spec.sport.map(|m| port_blocks(filter, m)).transpose()?;
    let dport = spec.dport.map(|m| port_blocks(filter, m)).transpose()?;
    if sport.is_some() || dport.is_some() {
        need |= HAS_PORTS;
    }
    Ok(Compiled {
        need,
        mask,
        value,
        sport,
        dport,
    })
}

/// (value, mask) of a prefix over the 128-bit address field. An IPv4 prefix
/// only covers the low 32 bits: the family check, not the `::ffff` bits,
/// decides the family, so an address given unmapped works too.
fn prefix_mask(filter: usize, p: IpPrefix) -> Result<(u128, u128), ClassifyError> {
    let max = if p.v6 { 128 } else { 32 };
    if p.len > max {
        return Err(ClassifyError::PrefixTooLong {
            filter,
            len: p.len,
            max,
        });
    }
    let mask = if p.len == 0 {
        0
    } else if p.v6 {
        u128::MAX << (128 - u32::from(p.len))
    } else {
        u128::from(u32::MAX << (32 - u32::from(p.len)))
    };
    Ok((p.addr & mask, mask))
}

/// The value/mask blocks whose union is exactly the ports `m` accepts.
fn port_blocks(filter: usize, m: PortMatch) -> Result<Vec<(u16, u16)>, ClassifyError> {
    match m {
        PortMatch::Masked { value, mask } => Ok(vec![(value & mask, mask)]),
        PortMatch::Range { lo, hi } if lo > hi => {
            Err(ClassifyError::EmptyPortRange { filter, lo, hi })
        }
        PortMatch::Range { lo, hi } => Ok(range_blocks(lo, hi)),
    }
}

/// Tile `lo..=hi` with aligned power-of-two blocks, largest first from the
/// left: at most 2 × 16 − 2 = 30 blocks for 16-bit ports.
fn range_blocks(lo: u16, hi: u16) -> Vec<(u16, u16)> {
    let (mut lo, hi) = (u32::from(lo), u32::from(hi));
    let mut out = Vec::new();
    while lo <= hi {
        // The largest block aligned at `lo` (lowest set bit; 0 is aligned to
        // everything), shrunk until it ends at or before `hi`.
        let mut size = if lo == 0 {
            1 << 16
        } else {
            lo & lo.wrapping_neg()
        };
        while lo + size - 1 > hi {
            size >>= 1;
        }
        out.push((lo as u16, (!(size - 1) & 0xffff) as u16));
        lo += size;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_blocks_tile_exactly() {
        for (lo, hi) in [
            (0u16, 65535u16),
            (0, 0),
            (65535, 65535),
            (1, 65534),
            (1024, 65535),
            (80, 80),
            (1000, 2000),
            (3, 17),
        ] {
            let blocks = range_blocks(lo, hi);
            assert!(blocks.len() <= 30, "{lo}-{hi}: {} blocks", blocks.len());
            for p in 0..=u16::MAX {
                let hits = blocks.iter().filter(|&&(v, m)| p & m == v).count();
                let want = usize::from((lo..=hi).contains(&p));
                assert_eq!(hits, want, "{lo}-{hi} port {p}");
            }
        }
        assert_eq!(range_blocks(1, 65534).len(), 30);
    }
}
