//! Network slices (seed section 4, `docs/slices.md`): `[slices]` says
//! which trees they go in, each `[[slice]]` is a tenant's share of them,
//! `[[slice_type]]` adds types to the seed's eMBB, URLLC and mIoT.
//!
//! A slice becomes, in each of its trees, a leaf class under `[slices]`
//! `parent`: `rate` its guaranteed `bandwidth`, `ceil` the most it may
//! borrow, `prio` from its latency target, and a leaf whose AQM follows
//! the target (fq_codel's target half the slice's `max_latency`, its
//! interval twenty times that: eMBB's 10 ms gives CoDel's own 5 ms / 100
//! ms). Its traffic is what its prefixes send (upload tree: source) or
//! receive (download tree: destination), and what its VLAN carries.
//! Isolation and a high security level become drop filters (tc's `action
//! drop`), each counted: traffic between two slices kept apart, and for
//! security 4 and 5 everything of the slice but ICMP and SSH (the seed's
//! default-deny chain).

use std::collections::HashMap;

use weir_dataplane::classify::{FilterSpec, IpPrefix, L3Match, PortMatch};
use weir_dataplane::qdisc::{FqCodelParams, QdiscParams, SfqParams};

use crate::check;
use crate::diag::{Ctx, Span};
use crate::filter;
use crate::raw::{sp, RawSlice, RawSliceType, RawSlices, S};
use crate::tree::{default_burst, default_quantum, inner_parent};
use crate::units::{ClassId, Rate, Size, Time};
use crate::{Action, Class, Filter, Tree};

/// The first slice class's minor when `[slices]` gives no `first_id`
/// (hexadecimal, as tc writes it: 1:200).
const DEFAULT_FIRST_MINOR: u32 = 0x200;
/// The slices' filters come first unless `[slices]` says otherwise:
/// isolation at `prio`, the high-security permits at `prio + 1`, their
/// deny at `prio + 2`, membership at `prio + 3`.
const DEFAULT_PRIO: u16 = 1;

/// The compiled `[slices]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Slices {
    pub slices: Vec<Slice>,
    /// Where they went, per direction.
    pub download: Option<SlicePlacement>,
    pub upload: Option<SlicePlacement>,
}

/// One slice, with its type's defaults filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct Slice {
    pub name: String,
    pub tenant: Option<String>,
    /// eMBB, URLLC, mIoT or a `[[slice_type]]` name.
    pub kind: String,
    pub vlan: Option<u16>,
    pub prefixes: Vec<IpPrefix>,
    /// Guaranteed: the class's rate.
    pub bandwidth: Rate,
    /// The most it may borrow: the class's ceil.
    pub ceil: Rate,
    pub max_latency: Time,
    pub max_jitter: Time,
    /// Percent of offered packets that must get through.
    pub min_reliability: f64,
    /// 1..=5.
    pub security: u8,
    /// 1..=3.
    pub isolation: u8,
    /// Slices it may exchange traffic with despite isolation.
    pub allow: Vec<String>,
    pub prio: u8,
    /// Its classes' leaf: its type's, with the AQM of its latency target.
    pub leaf: QdiscParams,
}

/// Where the slices went in one direction's tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlicePlacement {
    /// Index into [`crate::Config::trees`].
    pub tree: u32,
    /// The class of each slice, in [`Slices::slices`] order.
    pub classes: Vec<u32>,
}

impl SlicePlacement {
    /// The classes renumbered: `new_index[k]` is class `k`'s new index
    /// (`Tree::reorder`, a tree changed in place).
    pub fn renumber(&mut self, new_index: &[u32]) {
        for k in &mut self.classes {
            *k = new_index[*k as usize];
        }
    }
}

/// A slice type: defaults for its slices and how its leaf queues.
#[derive(Clone, Debug)]
struct Type {
    prio: Option<u8>,
    ceil_factor: f64,
    leaf: LeafKind,
    max_latency: Time,
    max_jitter: Time,
    min_reliability: f64,
    security: u8,
    isolation: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LeafKind {
    /// fq_codel, its target and interval from the slice's `max_latency`.
    FqCodel,
    /// sfq, perturbed every 10 s (many small flows: the seed's mIoT).
    Sfq,
    /// pfifo, tc's default depth.
    Pfifo,
}

const MS: u64 = 1_000_000;

/// The seed's three types (its `SliceRequirements` examples give the
/// defaults; its tc setup the ceil factors and leaves).
fn builtin() -> Vec<(&'static str, Type)> {
    vec![
        (
            "eMBB",
            Type {
                prio: None,
                ceil_factor: 1.5,
                leaf: LeafKind::FqCodel,
                max_latency: Time::from_ns(10 * MS),
                max_jitter: Time::from_ns(5 * MS),
                min_reliability: 99.9,
                security: 3,
                isolation: 2,
            },
        ),
        (
            "URLLC",
            Type {
                prio: None,
                ceil_factor: 1.0,
                leaf: LeafKind::FqCodel,
                max_latency: Time::from_ns(MS),
                max_jitter: Time::from_ns(MS / 10),
                min_reliability: 99.999,
                security: 5,
                isolation: 3,
            },
        ),
        (
            "mIoT",
            Type {
                prio: None,
                ceil_factor: 1.0,
                leaf: LeafKind::Sfq,
                max_latency: Time::from_ns(100 * MS),
                max_jitter: Time::from_ns(50 * MS),
                min_reliability: 99.0,
                security: 2,
                isolation: 1,
            },
        ),
    ]
}

/// A slice's prio from its latency target: 1 up to 5 ms, 2 up to 50 ms,
/// else 3 (the seed's URLLC, eMBB and mIoT; 0 is left to the file's own
/// classes, such as network control).
fn prio_for(max_latency: Time) -> u8 {
    match max_latency.ns() {
        l if l <= 5 * MS => 1,
        l if l <= 50 * MS => 2,
        _ => 3,
    }
}

/// The leaf of a slice of `kind` and latency target `max_latency`.
fn leaf(kind: LeafKind, max_latency: Time) -> QdiscParams {
    match kind {
        LeafKind::FqCodel => {
            // CoDel keeps a standing queue at its target and reacts over
            // an interval of about a round trip; target 5-10 % of the
            // interval. Half the latency budget for the queue, twenty
            // times that to react.
            let target = (max_latency.ns() / 2).max(100_000);
            QdiscParams::FqCodel(FqCodelParams {
                target_ns: target,
                interval_ns: target * 20,
                ..FqCodelParams::default()
            })
        }
        LeafKind::Sfq => QdiscParams::Sfq(SfqParams {
            perturb_ns: 10_000 * MS,
            ..SfqParams::default()
        }),
        LeafKind::Pfifo => crate::qdisc::DEFAULT_LEAF,
    }
}

/// Check `[slices]`, `[[slice_type]]` and `[[slice]]` and add the slices'
/// classes and filters to their trees. None when there are no slices or
/// something was wrong (reported).
pub(crate) fn build(
    cx: &mut Ctx,
    table: Option<&(Span, RawSlices)>,
    raw_types: &[(Span, RawSliceType)],
    raw_slices: &[(Span, RawSlice)],
    trees: &mut [Tree],
    tree_index: &HashMap<&str, Option<u32>>,
) -> Option<Slices> {
    if raw_slices.is_empty() && raw_types.is_empty() && table.is_none() {
        return None;
    }
    let errors_before = cx.errors.len();
    let types = types(cx, raw_types);
    let mut slices = Vec::new();
    let mut names: HashMap<String, Span> = HashMap::new();
    for (span, r) in raw_slices {
        let name = r.name.get_ref().trim().to_string();
        if name.is_empty() || name.contains(':') {
            cx.error(&sp(&r.name), format!("slice name \"{name}\" is empty or has a `:`; expected a name such as \"video_streaming\" (it names the slice's classes)"));
        } else if let Some(first) = names.get(&name) {
            let line = cx.line_of(first);
            cx.error(&sp(&r.name), format!("slice \"{name}\" is defined twice (first on line {line}); expected each name once"));
        } else {
            names.insert(name.clone(), sp(&r.name));
        }
        if let Some(s) = slice(cx, span, r, &name, &types) {
            slices.push(s);
        }
    }
    for (s, (_, r)) in slices.iter().zip(raw_slices) {
        for a in r.allow.iter().flat_map(|v| v.get_ref()) {
            if a.get_ref() == &s.name || !names.contains_key(a.get_ref().as_str()) {
                cx.error(&sp(a), format!("`allow` names \"{}\", which is not another slice; expected the name of a [[slice]]", a.get_ref()));
            }
        }
    }
    let Some((table_span, table)) = table else {
        if !raw_slices.is_empty() {
            cx.error(
                &raw_slices[0].0,
                "[[slice]] without a [slices] table; expected [slices] with `download` and/or `upload`: the trees the slices go in",
            );
        }
        return None;
    };
    if table.download.is_none() && table.upload.is_none() {
        cx.error(
            table_span,
            "[slices] has neither `download` nor `upload`; expected the tree of at least one direction",
        );
    }
    let first_minor = match &table.first_id {
        None => DEFAULT_FIRST_MINOR,
        Some(v) => match crate::units::parse_hex_part(v.get_ref(), v.get_ref().trim()) {
            Ok(m) if m > 0 => m,
            _ => {
                cx.error(&sp(v), format!("`first_id` = \"{}\" is not a class minor; expected a hexadecimal minor id above 0, like \"200\" (tc's hexadecimal, as in 1:200)", v.get_ref()));
                DEFAULT_FIRST_MINOR
            }
        },
    };
    let prio = match &table.prio {
        None => DEFAULT_PRIO,
        Some(v) => match check::int_in(cx, v, "prio", 0, i64::from(u16::MAX) - 3) {
            Some(p) => p as u16,
            None => DEFAULT_PRIO,
        },
    };
    if cx.errors.len() > errors_before {
        return None;
    }
    let mut place_in = |key: &Option<S<String>>, download: bool| -> Option<SlicePlacement> {
        let key = key.as_ref()?;
        let Some(Some(ti)) = tree_index.get(key.get_ref().as_str()).copied() else {
            cx.error(&sp(key), format!("[slices] names tree `{}`, which is not a [tree.NAME] of this file; expected one of its trees", key.get_ref()));
            return None;
        };
        let tree = &mut trees[ti as usize];
        let classes = place(cx, table, tree, &slices, first_minor, prio, download)?;
        Some(SlicePlacement { tree: ti, classes })
    };
    let download = place_in(&table.download, true);
    let upload = place_in(&table.upload, false);
    (cx.errors.len() == errors_before).then_some(Slices {
        slices,
        download,
        upload,
    })
}

/// The built-in types and the file's `[[slice_type]]`s, by name.
fn types(cx: &mut Ctx, raw: &[(Span, RawSliceType)]) -> HashMap<String, Type> {
    let mut out: HashMap<String, Type> = builtin()
        .into_iter()
        .map(|(n, t)| (n.to_string(), t))
        .collect();
    for (_, r) in raw {
        let name = r.name.get_ref().trim().to_string();
        if out.contains_key(&name) {
            cx.error(&sp(&r.name), format!("slice type \"{name}\" is defined already (eMBB, URLLC and mIoT are built in); expected a new name"));
            continue;
        }
        // A custom type's defaults are eMBB's (the seed's middle ground).
        let builtin = builtin();
        let base = &builtin[0].1;
        let prio = r
            .prio
            .as_ref()
            .and_then(|v| check::int_in(cx, v, "prio", 0, 7))
            .map(|p| p as u8);
        let ceil_factor = match &r.ceil_factor {
            None => 1.0,
            Some(v) if *v.get_ref() >= 1.0 && v.get_ref().is_finite() => *v.get_ref(),
            Some(v) => {
                cx.error(&sp(v), format!("`ceil_factor` = {} is below 1; expected the slice's ceil over its bandwidth, 1 or more", v.get_ref()));
                1.0
            }
        };
        let leaf = match r.leaf.as_ref().map(|v| (v, v.get_ref().as_str())) {
            None | Some((_, "fq_codel")) => LeafKind::FqCodel,
            Some((_, "sfq")) => LeafKind::Sfq,
            Some((_, "pfifo")) => LeafKind::Pfifo,
            Some((v, other)) => {
                cx.error(&sp(v), format!("`leaf` = \"{other}\"; expected \"fq_codel\" (its AQM follows the slice's latency), \"sfq\" or \"pfifo\""));
                LeafKind::FqCodel
            }
        };
        let t = Type {
            prio,
            ceil_factor,
            leaf,
            max_latency: time_or(cx, &r.max_latency, "max_latency", base.max_latency),
            max_jitter: time_or(cx, &r.max_jitter, "max_jitter", base.max_jitter),
            min_reliability: reliability_or(cx, &r.min_reliability, base.min_reliability),
            security: level_or(cx, &r.security, "security", 5, base.security),
            isolation: level_or(cx, &r.isolation, "isolation", 3, base.isolation),
        };
        out.insert(name, t);
    }
    out
}

fn time_or(cx: &mut Ctx, v: &Option<S<crate::raw::StrOrInt>>, what: &str, default: Time) -> Time {
    v.as_ref()
        .and_then(|v| check::time(cx, v, what))
        .unwrap_or(default)
}

fn reliability_or(cx: &mut Ctx, v: &Option<S<f64>>, default: f64) -> f64 {
    match v {
        None => default,
        Some(v) if (0.0..=100.0).contains(v.get_ref()) => *v.get_ref(),
        Some(v) => {
            cx.error(
                &sp(v),
                format!(
                    "`min_reliability` = {} is not a percentage; expected 0 to 100, like 99.999",
                    v.get_ref()
                ),
            );
            default
        }
    }
}

fn level_or(cx: &mut Ctx, v: &Option<S<i64>>, what: &str, max: i64, default: u8) -> u8 {
    v.as_ref()
        .and_then(|v| check::int_in(cx, v, what, 1, max))
        .map_or(default, |l| l as u8)
}

/// One `[[slice]]`, checked, its type's defaults filled in.
fn slice(
    cx: &mut Ctx,
    span: &Span,
    r: &RawSlice,
    name: &str,
    types: &HashMap<String, Type>,
) -> Option<Slice> {
    let errors_before = cx.errors.len();
    let kind = r.kind.get_ref().trim();
    let Some(t) = types.get(kind) else {
        let mut known: Vec<&str> = types.keys().map(String::as_str).collect();
        known.sort_unstable();
        cx.error(
            &sp(&r.kind),
            format!(
                "unknown slice type \"{kind}\"; expected one of {} (or a [[slice_type]])",
                known.join(", ")
            ),
        );
        return None;
    };
    let vlan = r
        .vlan
        .as_ref()
        .and_then(|v| check::int_in(cx, v, "vlan", 1, 4094))
        .map(|v| v as u16);
    let prefixes: Vec<IpPrefix> = r
        .prefixes
        .iter()
        .flat_map(|v| v.get_ref())
        .filter_map(|p| filter::prefix(cx, p, "prefixes"))
        .collect();
    if vlan.is_none() && r.prefixes.as_ref().is_none_or(|p| p.get_ref().is_empty()) {
        cx.error(span, format!("slice \"{name}\" has neither `vlan` nor `prefixes`; expected what belongs to it: a VLAN id, prefixes, or both"));
    }
    let bandwidth = check::shaping_rate(cx, &r.bandwidth, "bandwidth", None);
    let ceil = match (&r.ceil, bandwidth) {
        (Some(v), Some(b)) => check::shaping_rate(cx, v, "ceil", None).filter(|c| {
            let ok = c.bytes_per_sec() >= b.bytes_per_sec();
            if !ok {
                cx.error(&sp(v), format!("`ceil` {c} is below the slice's `bandwidth` {b}; expected at least its guarantee"));
            }
            ok
        }),
        (None, Some(b)) => Some(Rate::from_bits_per_sec(
            (b.bits_per_sec() as f64 * t.ceil_factor) as u64,
        )),
        _ => None,
    };
    let max_latency = time_or(cx, &r.max_latency, "max_latency", t.max_latency);
    let s = Slice {
        name: name.to_string(),
        tenant: r.tenant.as_ref().map(|v| v.get_ref().clone()),
        kind: kind.to_string(),
        vlan,
        prefixes,
        bandwidth: bandwidth?,
        ceil: ceil?,
        max_latency,
        max_jitter: time_or(cx, &r.max_jitter, "max_jitter", t.max_jitter),
        min_reliability: reliability_or(cx, &r.min_reliability, t.min_reliability),
        security: level_or(cx, &r.security, "security", 5, t.security),
        isolation: level_or(cx, &r.isolation, "isolation", 3, t.isolation),
        allow: r
            .allow
            .iter()
            .flat_map(|v| v.get_ref())
            .map(|a| a.get_ref().clone())
            .collect(),
        prio: t.prio.unwrap_or_else(|| prio_for(max_latency)),
        leaf: leaf(t.leaf, max_latency),
    };
    (cx.errors.len() == errors_before).then_some(s)
}

/// Whether traffic between `a` and `b` is dropped: either kept apart
/// (isolation 2, unless one of them allows the other; isolation 3, unless
/// both do).
fn kept_apart(a: &Slice, b: &Slice) -> bool {
    let a_allows = a.allow.contains(&b.name);
    let b_allows = b.allow.contains(&a.name);
    let level = a.isolation.max(b.isolation);
    match level {
        3 => !(a_allows && b_allows),
        2 => !(a_allows || b_allows),
        _ => false,
    }
}

/// Add the slices' classes and filters to `tree`: the class of each slice.
fn place(
    cx: &mut Ctx,
    table: &RawSlices,
    tree: &mut Tree,
    slices: &[Slice],
    first_minor: u32,
    prio: u16,
    download: bool,
) -> Option<Vec<u32>> {
    let parent = match &table.parent {
        Some(v) => Some(inner_parent(cx, v, tree, "slices", "slices", "")?),
        // The tree's top class, when it has children.
        None => tree
            .classes
            .iter()
            .position(|c| c.parent.is_none() && !c.is_leaf())
            .map(|p| p as u32),
    };
    let major = tree.classes.first().map_or(1, |c| c.id.major);
    let base = tree.classes.len() as u32;
    for (i, s) in slices.iter().enumerate() {
        let id = ClassId::new(major, first_minor + i as u32);
        if let Some(c) = tree
            .classes
            .iter()
            .find(|c| c.id == id || c.name.as_deref() == Some(&s.name))
        {
            cx.error(&None, format!("slice \"{}\" would be class {id} of tree `{}`, which has a class {} already; expected another [slices] `first_id` or slice name", s.name, tree.name, c.id));
            return None;
        }
        tree.classes.push(Class {
            id,
            name: Some(s.name.clone()),
            parent,
            rate: s.bandwidth,
            ceil: s.ceil,
            burst: Size::from_bytes(default_burst(s.bandwidth)),
            cburst: Size::from_bytes(default_burst(s.ceil)),
            prio: s.prio,
            quantum: Size::from_bytes(default_quantum(s.bandwidth, tree.r2q).1),
            qdisc: Some(s.leaf),
            remark: None,
        });
    }
    if let Some(p) = parent {
        let guaranteed: u64 = slices.iter().map(|s| s.bandwidth.bits_per_sec()).sum();
        let rate = tree.classes[p as usize].rate;
        if guaranteed > rate.bits_per_sec() {
            cx.warn(&None, format!("the slices' guarantees add up to {}, more than the rate {rate} of their parent {} in tree `{}`: HTB can't give them all at once", Rate::from_bits_per_sec(guaranteed), tree.label(p), tree.name));
        }
    }
    // Which end of a packet names the slice in this direction.
    let own = |p: IpPrefix, spec: &mut FilterSpec| {
        if download {
            spec.dst = Some(p);
        } else {
            spec.src = Some(p);
        }
    };
    let l3 = |p: &IpPrefix| if p.v6 { L3Match::Ipv6 } else { L3Match::Ipv4 };
    let mut filters = Vec::new();
    // Isolation: for every pair kept apart, what one's prefixes send to
    // the other's, both ways.
    for a in slices {
        for b in slices
            .iter()
            .filter(|b| b.name != a.name && kept_apart(a, b))
        {
            for pa in &a.prefixes {
                for pb in b.prefixes.iter().filter(|pb| pb.v6 == pa.v6) {
                    let spec = FilterSpec {
                        l3: l3(pa),
                        src: Some(*pa),
                        dst: Some(*pb),
                        ..FilterSpec::default()
                    };
                    filters.push((prio, Action::Drop, spec));
                }
            }
        }
    }
    for (i, s) in slices.iter().enumerate() {
        let class = base + i as u32;
        // Security 4 and 5: ICMP and SSH, nothing else (the seed's chain).
        if s.security >= 4 {
            for p in &s.prefixes {
                let icmp = if p.v6 { 58 } else { 1 };
                let mut permits = vec![FilterSpec {
                    l3: l3(p),
                    ip_proto: Some(icmp),
                    ..FilterSpec::default()
                }];
                for ssh in [
                    FilterSpec {
                        sport: Some(PortMatch::Range { lo: 22, hi: 22 }),
                        ..FilterSpec::default()
                    },
                    FilterSpec {
                        dport: Some(PortMatch::Range { lo: 22, hi: 22 }),
                        ..FilterSpec::default()
                    },
                ] {
                    permits.push(FilterSpec {
                        l3: l3(p),
                        ip_proto: Some(6),
                        ..ssh
                    });
                }
                for mut spec in permits {
                    own(*p, &mut spec);
                    filters.push((prio + 1, Action::Class(class), spec));
                }
                let mut deny = FilterSpec {
                    l3: l3(p),
                    ..FilterSpec::default()
                };
                own(*p, &mut deny);
                filters.push((prio + 2, Action::Drop, deny));
            }
        }
        for p in &s.prefixes {
            let mut spec = FilterSpec {
                l3: l3(p),
                ..FilterSpec::default()
            };
            own(*p, &mut spec);
            filters.push((prio + 3, Action::Class(class), spec));
        }
        if let Some(v) = s.vlan {
            let spec = FilterSpec {
                vlan: Some(v),
                ..FilterSpec::default()
            };
            filters.push((prio + 3, Action::Class(class), spec));
        }
    }
    // Merged by prio after the file's own filters of the same prio, drop
    // filters numbered again in evaluation order.
    let mut all: Vec<(u16, Action, FilterSpec)> = tree
        .filters
        .drain(..)
        .map(|f| (f.prio, f.action, f.spec))
        .collect();
    all.extend(filters);
    all.sort_by_key(|(p, _, _)| *p);
    let mut drops = 0;
    tree.filters = all
        .into_iter()
        .map(|(p, action, spec)| Filter::new(p, action, spec, &mut drops))
        .collect();
    Some((0..slices.len() as u32).map(|i| base + i).collect())
}
