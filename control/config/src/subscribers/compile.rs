//! `[subscribers]`: the circuits of a ShapedDevices.csv, under the nodes of
//! its network.json, compiled into classes and filters of the trees that
//! shape each direction.
//!
//! In each direction's tree:
//!
//! - every node of the hierarchy becomes an inner class under its parent
//!   node (the top nodes under the table's `parent` class, or at the top of
//!   the tree): ceil the node's limit, rate the smaller of that limit and
//!   the sum of its children's rates (so siblings lend and borrow in
//!   proportion to what they guarantee);
//! - every circuit becomes a leaf class under its node: rate its plan's
//!   min, ceil its max, burst, cburst and quantum tc's defaults for those
//!   rates, and the leaf queue of the `[subscribers.leaf]` template or of
//!   the circuit's `sqm` cell;
//! - every address or prefix of its devices becomes a filter to it: the
//!   destination address in the download tree, the source address in the
//!   upload tree. The filters are ordered longest prefix first, so a packet
//!   goes to the circuit of the longest prefix that holds it; the
//!   classifier's tuple-space groups make that one hash probe per distinct
//!   prefix length, whatever the number of circuits.
//!
//! Class ids are `MAJOR:first_minor + n` (hexadecimal, from `10000` by
//! default, above the 16 bits a tc script can use), the nodes first in the
//! hierarchy's order, then the circuits in the file's order; a class's name
//! is its node's name or its circuit's id.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use weir_dataplane::classify::{FilterSpec, IpPrefix, L3Match};
use weir_dataplane::htb::MAX_DEPTH;
use weir_dataplane::qdisc::{FqCodelParams, QdiscParams};

use super::{read_network, read_shaped_devices, unknown_parents, Circuit, Leaf, Network};
use crate::diag::{Ctx, Span};
use crate::raw::{sp, RawSubscribers};
use crate::tree::{default_burst, default_quantum, inner_parent};
use crate::units::{ClassId, Rate, Size};
use crate::{qdisc, Action, Class, Filter, Tree, DEFAULT_FILTER_PRIO};

/// The first minor id of the generated classes: 0x10000, just above the
/// 16-bit minors a tc script can write, so no translated class collides.
pub const DEFAULT_FIRST_MINOR: u32 = 0x1_0000;

/// fq_codel's flow queues in a circuit's leaf when the template does not
/// say: 64, not tc's 1024. A circuit is one household or business, whose
/// concurrent bulk flows rarely reach tens, and a leaf's flow table is
/// allocated when the tree is built: 1024 queues are 68 KiB per circuit and
/// direction (1.4 GB for 10,000 circuits), 64 are 4.3 KiB.
pub const DEFAULT_LEAF_FLOWS: u32 = 64;

/// The texts of the subscriber files, given instead of read (`weir
/// circuit` changes the circuits in memory and compiles them again).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Given {
    /// A ShapedDevices.csv.
    pub devices: String,
    /// The network.json, when `[subscribers]` names one.
    pub network: Option<String>,
}

/// The subscribers of a configuration: what the files held and where each
/// node and circuit went in each direction's tree.
#[derive(Clone, Debug, PartialEq)]
pub struct Subscribers {
    /// The ShapedDevices.csv, as opened (relative paths are read from the
    /// configuration file's directory).
    pub devices: PathBuf,
    /// The network.json, when one is given.
    pub network: Option<PathBuf>,
    pub circuits: Vec<Circuit>,
    /// The hierarchy (empty: every circuit under `parent`).
    pub nodes: Network,
    /// The network.json as read, to compile changed circuits against.
    pub network_text: Option<String>,
    /// `circuit_metrics = true`: /metrics has a series per circuit class
    /// (about 22 per circuit and direction); off, only the nodes' and the
    /// file's own classes.
    pub circuit_metrics: bool,
    pub download: Option<Placement>,
    pub upload: Option<Placement>,
}

/// Where the subscribers went in one direction's tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Index into [`crate::Config::trees`].
    pub tree: u32,
    /// The class (index into the tree's classes) of each node of
    /// [`Subscribers::nodes`], in its order.
    pub nodes: Vec<u32>,
    /// The class of each circuit of [`Subscribers::circuits`].
    pub circuits: Vec<u32>,
}

impl Subscribers {
    /// For each of the `classes` classes of tree `tree`: whether it is a
    /// circuit's. (A tree changed in place keeps circuits in no order.)
    pub fn circuit_classes(&self, tree: u32, classes: usize) -> Vec<bool> {
        let mut mask = vec![false; classes];
        for p in [&self.download, &self.upload].into_iter().flatten() {
            if p.tree == tree {
                for &c in &p.circuits {
                    if let Some(m) = mask.get_mut(c as usize) {
                        *m = true;
                    }
                }
            }
        }
        mask
    }

    /// The placement of the direction whose tree is `tree`.
    pub fn placement(&self, tree: u32) -> Option<&Placement> {
        [&self.download, &self.upload]
            .into_iter()
            .flatten()
            .find(|p| p.tree == tree)
    }
}

impl Placement {
    /// The classes renumbered: `new_index[k]` is class `k`'s new index
    /// (`Tree::reorder`).
    pub fn renumber(&mut self, new_index: &[u32]) {
        for k in self.nodes.iter_mut().chain(self.circuits.iter_mut()) {
            *k = new_index[*k as usize];
        }
    }
}

/// The two directions: which address of a packet names its subscriber.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Way {
    /// Toward the subscriber: the destination address.
    Download,
    /// From the subscriber: the source address.
    Upload,
}

impl Way {
    fn key(self) -> &'static str {
        match self {
            Way::Download => "download",
            Way::Upload => "upload",
        }
    }
}

/// Read the files `[subscribers]` names and add their classes and filters
/// to the trees. None when something was wrong (every problem reported,
/// the CSV's and JSON's at their own `FILE:LINE:COL`).
pub(crate) fn build(
    cx: &mut Ctx,
    span: &Span,
    raw: &RawSubscribers,
    trees: &mut [Tree],
    tree_index: &HashMap<&str, Option<u32>>,
    given: Option<&Given>,
) -> Option<Subscribers> {
    let errors_before = cx.errors.len();
    // Relative paths are the configuration's neighbours, wherever weir
    // was started from.
    let dir = Path::new(cx.file()).parent().unwrap_or(Path::new(""));
    let path_of = |v: &crate::raw::S<String>| dir.join(v.get_ref());
    let devices_path = path_of(&raw.devices);
    let network_path = raw.network.as_ref().map(path_of);

    let read = |cx: &mut Ctx, v: &crate::raw::S<String>, path: &Path, what: &str| {
        std::fs::read_to_string(path)
            .map_err(|e| {
                cx.error(
                    &sp(v),
                    format!(
                        "cannot read {what} `{}`: {e}; expected a readable file (a relative path is read from the configuration file's directory)",
                        path.display()
                    ),
                )
            })
            .ok()
    };
    let (devices_text, network_text) = match given {
        Some(g) => (Some(g.devices.clone()), g.network.clone()),
        None => (
            read(cx, &raw.devices, &devices_path, "`devices`"),
            match (&raw.network, &network_path) {
                (Some(v), Some(p)) => read(cx, v, p, "`network`"),
                _ => None,
            },
        ),
    };
    let kept_network_text = network_text.clone();
    // Given texts are the files as changed in memory: their line numbers
    // are not the file's.
    let devices_file = match given {
        Some(_) => format!("{} (as changed by weir circuit)", devices_path.display()),
        None => devices_path.display().to_string(),
    };
    let shaped = devices_text.and_then(|t| {
        read_shaped_devices(&devices_file, &t)
            .map_err(|e| cx.errors.extend(e))
            .ok()
    });
    let network = match (&network_path, network_text) {
        (Some(p), Some(t)) => read_network(&p.display().to_string(), &t)
            .map_err(|e| cx.errors.extend(e))
            .ok(),
        (Some(_), None) => None,
        (None, _) => Some(Network::default()),
    };
    if let Some(s) = &shaped {
        cx.warnings.extend(s.warnings.iter().cloned());
    }
    if let Some(n) = &network {
        cx.warnings.extend(n.warnings.iter().cloned());
    }
    if let (Some(s), Some(n)) = (&shaped, &network) {
        let given = network_path.is_some().then_some(n);
        cx.errors
            .extend(unknown_parents(&devices_file, &s.circuits, given));
    }

    // The trees, one per direction.
    let mut ways = Vec::new();
    for (way, v) in [(Way::Download, &raw.download), (Way::Upload, &raw.upload)] {
        let Some(v) = v else { continue };
        let name = v.get_ref().as_str();
        match tree_index.get(name) {
            None => cx.error(
                &sp(v),
                format!(
                    "[subscribers] `{}` names tree `{name}`, which is not defined; expected one of: {}",
                    way.key(),
                    trees.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ")
                ),
            ),
            // A tree with errors of its own, already reported.
            Some(None) => {}
            Some(Some(t)) => ways.push((way, *t, v)),
        }
    }
    if raw.download.is_none() && raw.upload.is_none() {
        cx.error(
            span,
            "[subscribers] shapes nothing; expected `download` and/or `upload` naming the tree of that direction",
        );
    }
    if let [(_, a, _), (_, b, v)] = ways[..] {
        if a == b {
            cx.error(
                &sp(v),
                "[subscribers] `upload` names the same tree as `download`; expected a tree per direction (each matches the subscriber's address on its own side: destination on download, source on upload)",
            );
        }
    }

    let first_minor = match &raw.first_id {
        None => DEFAULT_FIRST_MINOR,
        Some(v) => match parse_minor(v.get_ref()) {
            Some(m) if m > 0 => m,
            _ => {
                cx.error(
                    &sp(v),
                    format!("`first_id` = \"{}\" is not a class minor; expected a hexadecimal minor id above 0, like \"10000\" (tc's hexadecimal, as in 1:10000)", v.get_ref()),
                );
                DEFAULT_FIRST_MINOR
            }
        },
    };
    let prio = match &raw.prio {
        None => DEFAULT_FILTER_PRIO,
        Some(v) => match u16::try_from(*v.get_ref()) {
            Ok(p) if p > 0 => p,
            _ => {
                cx.error(
                    &sp(v),
                    format!(
                        "`prio` = {} is out of range; expected 1..=65535 (tc filter prio)",
                        v.get_ref()
                    ),
                );
                DEFAULT_FILTER_PRIO
            }
        },
    };
    let template = match &raw.leaf {
        None => Some(QdiscParams::FqCodel(default_fq_codel())),
        Some(q) => qdisc::resolve(cx, q, None),
    };

    let (Some(shaped), Some(nodes), Some(template)) = (shaped, network, template) else {
        return None;
    };
    if cx.errors.len() > errors_before {
        return None;
    }
    let leaves = Leaves::new(template);
    let mut placements = (None, None);
    for (way, t, v) in ways {
        let tree = &mut trees[t as usize];
        let Some(placed) = place(
            cx,
            raw,
            v,
            tree,
            way,
            &shaped.circuits,
            &nodes,
            first_minor,
            prio,
            &leaves,
        ) else {
            continue;
        };
        let placed = Placement {
            tree: t,
            nodes: placed.0,
            circuits: placed.1,
        };
        match way {
            Way::Download => placements.0 = Some(placed),
            Way::Upload => placements.1 = Some(placed),
        }
    }
    if leaves.cake.get() > 0 {
        cx.warn(
            span,
            format!(
                "{} circuit(s) ask for cake in their `sqm` cell; weir has no cake, and gives them fq_codel (the template's, or tc's defaults with {DEFAULT_LEAF_FLOWS} flows)",
                leaves.cake.get()
            ),
        );
    }
    if cx.errors.len() > errors_before {
        return None;
    }
    Some(Subscribers {
        devices: devices_path,
        network: network_path,
        circuits: shaped.circuits,
        nodes,
        network_text: kept_network_text,
        circuit_metrics: raw.circuit_metrics.as_ref().is_some_and(|v| *v.get_ref()),
        download: placements.0,
        upload: placements.1,
    })
}

/// A hexadecimal minor id as tc reads one (`10000`, `0x10000`), or
/// `MAJOR:MINOR` (its minor).
fn parse_minor(s: &str) -> Option<u32> {
    let t = s.trim();
    let minor = t.rsplit_once(':').map_or(t, |(_, m)| m);
    crate::units::parse_hex_part(t, minor).ok()
}

/// fq_codel with tc's defaults but [`DEFAULT_LEAF_FLOWS`] flow queues.
fn default_fq_codel() -> FqCodelParams {
    FqCodelParams {
        flows: DEFAULT_LEAF_FLOWS,
        ..FqCodelParams::default()
    }
}

/// The leaf queues a circuit can get: the template, or what its `sqm`
/// cell names.
struct Leaves {
    template: QdiscParams,
    fq_codel: QdiscParams,
    /// Circuits (per direction) that asked for cake.
    cake: std::cell::Cell<usize>,
}

impl Leaves {
    fn new(template: QdiscParams) -> Leaves {
        let fq_codel = match template {
            QdiscParams::FqCodel(_) => template,
            _ => QdiscParams::FqCodel(default_fq_codel()),
        };
        Leaves {
            template,
            fq_codel,
            cake: std::cell::Cell::new(0),
        }
    }

    fn of(&self, sqm: Option<Leaf>) -> QdiscParams {
        match sqm {
            None => self.template,
            Some(Leaf::FqCodel) => self.fq_codel,
            Some(Leaf::Cake) => {
                self.cake.set(self.cake.get() + 1);
                self.fq_codel
            }
            Some(Leaf::None) => qdisc::DEFAULT_LEAF,
        }
    }
}

/// Add the nodes' and circuits' classes and the circuits' filters to one
/// direction's tree: the class index of each node and of each circuit, or
/// None when something was wrong (reported).
#[allow(clippy::too_many_arguments)]
fn place(
    cx: &mut Ctx,
    raw: &RawSubscribers,
    tree_key: &crate::raw::S<String>,
    tree: &mut Tree,
    way: Way,
    circuits: &[Circuit],
    network: &Network,
    first_minor: u32,
    prio: u16,
    leaves: &Leaves,
) -> Option<(Vec<u32>, Vec<u32>)> {
    let parent = match &raw.parent {
        None => None,
        Some(v) => Some(inner_parent(
            cx,
            v,
            tree,
            "subscribers",
            "circuits",
            " (give it a child class for the traffic of no circuit, and make that the tree's `default`)",
        )?),
    };
    let count = network.nodes.len() + circuits.len();
    let Some(last_minor) = u32::try_from(count)
        .ok()
        .and_then(|n| first_minor.checked_add(n))
    else {
        cx.error(
            &sp(tree_key),
            format!("{count} nodes and circuits from minor {first_minor:x} run past the 32-bit minor ids of tree `{}`; expected a smaller `first_id`", tree.name),
        );
        return None;
    };
    let major = tree.classes.first().map_or(1, |c| c.id.major);
    if let Some(c) = tree
        .classes
        .iter()
        .find(|c| (first_minor..last_minor).contains(&c.id.minor))
    {
        cx.error(
            &sp(tree_key),
            format!("class {} of tree `{}` is in the ids the subscribers take ({} to {}); expected another `first_id` in [subscribers], or that class's id moved", c.id, tree.name, ClassId::new(major, first_minor), ClassId::new(major, last_minor - 1)),
        );
        return None;
    }
    let mut names: HashSet<&str> = tree
        .classes
        .iter()
        .filter_map(|c| c.name.as_deref())
        .collect();
    for name in network
        .nodes
        .iter()
        .map(|n| n.name.as_str())
        .chain(circuits.iter().map(|c| c.id.as_str()))
    {
        if !names.insert(name) {
            cx.error(
                &sp(tree_key),
                format!("the name `{name}` is taken twice in tree `{}` (by a class, node or circuit id); expected the classes' names, the nodes' names and the circuit ids all different, as they name classes", tree.name),
            );
            return None;
        }
    }

    let plan = |c: &Circuit| match way {
        Way::Download => c.download,
        Way::Upload => c.upload,
    };
    let limit = |i: usize| match way {
        Way::Download => network.nodes[i].download,
        Way::Upload => network.nodes[i].upload,
    };
    // Which node each circuit hangs under; every name resolves
    // (unknown_parents has run).
    let node_of: Vec<Option<usize>> = circuits
        .iter()
        .map(|c| c.parent.as_deref().and_then(|p| network.index(p)))
        .collect();
    // A node's rate: its limit, or less when its children guarantee less;
    // children come after their parents, so a backward pass sums them.
    let mut below = vec![0u64; network.nodes.len()];
    let mut has_children = vec![false; network.nodes.len()];
    for (c, n) in circuits.iter().zip(&node_of) {
        if let Some(n) = *n {
            below[n] = below[n].saturating_add(plan(c).min.bits_per_sec());
            has_children[n] = true;
        }
    }
    let mut node_rate = vec![Rate::from_bits_per_sec(0); network.nodes.len()];
    let mut oversubscribed: Vec<(usize, u64)> = Vec::new();
    for i in (0..network.nodes.len()).rev() {
        let ceil = limit(i);
        if below[i] > ceil.bits_per_sec() {
            oversubscribed.push((i, below[i]));
        }
        let rate = if below[i] == 0 {
            ceil
        } else {
            Rate::from_bits_per_sec(below[i].min(ceil.bits_per_sec()))
        };
        node_rate[i] = rate;
        if let Some(p) = network.nodes[i].parent {
            below[p] = below[p].saturating_add(rate.bits_per_sec());
            has_children[p] = true;
        }
    }
    if let Some(&(first, sum)) = oversubscribed.last() {
        cx.warn(
            &sp(tree_key),
            format!(
                "tree `{}`: under {} node(s) the children's guaranteed rates add up to more than the node's limit (first: `{}`, {} under {}); HTB lets a class send at its rate without asking its parent, so such a node's limit holds only while its children use less",
                tree.name,
                oversubscribed.len(),
                network.nodes[first].name,
                Rate::from_bits_per_sec(sum),
                limit(first)
            ),
        );
    }

    // The core's trees are at most MAX_DEPTH levels deep: the parent's
    // depth, the hierarchy's, and the circuits' own level.
    let depth_of = |mut k: Option<u32>| {
        let mut d = 0;
        while let Some(i) = k {
            d += 1;
            k = tree.classes[i as usize].parent;
        }
        d
    };
    let mut node_depth = vec![0usize; network.nodes.len()];
    for (i, n) in network.nodes.iter().enumerate() {
        node_depth[i] = n.parent.map_or(depth_of(parent), |p| node_depth[p]) + 1;
    }
    let deepest = node_depth.iter().copied().max().unwrap_or(depth_of(parent)) + 1;
    if deepest > MAX_DEPTH {
        cx.error(
            &sp(tree_key),
            format!("the circuits of tree `{}` would be {deepest} levels deep (its parent class's depth, the network hierarchy's, and their own), more than HTB's {MAX_DEPTH}; expected a flatter network.json or a `parent` nearer the top", tree.name),
        );
        return None;
    }
    let base = tree.classes.len() as u32;
    let node_class = |i: usize| base + i as u32;
    let r2q = tree.r2q;
    let class = |id: u32, name: &str, parent: Option<u32>, rate: Rate, ceil: Rate, qdisc| Class {
        id: ClassId::new(major, id),
        name: Some(name.to_string()),
        parent,
        rate,
        ceil,
        burst: Size::from_bytes(default_burst(rate).min(u64::from(u32::MAX))),
        cburst: Size::from_bytes(default_burst(ceil).min(u64::from(u32::MAX))),
        prio: 0,
        // tc's quantum, clamped as Linux clamps it; not warned about per
        // circuit (most plans are above r2q × 200,000 bytes/s).
        quantum: Size::from_bytes(default_quantum(rate, r2q).1),
        qdisc,
        remark: None,
    };
    for (i, n) in network.nodes.iter().enumerate() {
        let up = n.parent.map(node_class).or(parent);
        let qdisc = (!has_children[i]).then_some(leaves.template);
        tree.classes.push(class(
            first_minor + i as u32,
            &n.name,
            up,
            node_rate[i],
            limit(i),
            qdisc,
        ));
    }
    let circuit_base = tree.classes.len() as u32;
    let mut filters = Vec::new();
    for (j, c) in circuits.iter().enumerate() {
        let up = node_of[j].map(node_class).or(parent);
        let p = plan(c);
        let sqm = match way {
            Way::Download => c.sqm.download,
            Way::Upload => c.sqm.upload,
        };
        let minor = first_minor + (network.nodes.len() + j) as u32;
        tree.classes
            .push(class(minor, &c.id, up, p.min, p.max, Some(leaves.of(sqm))));
        let flowid = circuit_base + j as u32;
        for d in &c.devices {
            let v4 = d.ipv4.iter().map(|p| IpPrefix {
                v6: false,
                addr: 0xffff_0000_0000 | u128::from(u32::from(p.addr)),
                len: p.len,
            });
            let v6 = d.ipv6.iter().map(|p| IpPrefix {
                v6: true,
                addr: u128::from(p.addr),
                len: p.len,
            });
            for prefix in v4.chain(v6) {
                let (src, dst) = match way {
                    Way::Download => (None, Some(prefix)),
                    Way::Upload => (Some(prefix), None),
                };
                let spec = FilterSpec {
                    l3: if prefix.v6 {
                        L3Match::Ipv6
                    } else {
                        L3Match::Ipv4
                    },
                    src,
                    dst,
                    target: flowid,
                    ..FilterSpec::default()
                };
                filters.push(Filter {
                    prio,
                    action: Action::Class(flowid),
                    spec,
                });
            }
        }
    }
    // Longest prefix first (stable: file order among equals), then merged
    // by prio after the file's own filters of the same prio.
    filters.sort_by_key(|f| std::cmp::Reverse(f.spec.src.or(f.spec.dst).map_or(0, |p| p.len)));
    tree.filters.extend(filters);
    tree.filters.sort_by_key(|f| f.prio);
    let nodes = (0..network.nodes.len()).map(node_class).collect();
    let circuits = (0..circuits.len() as u32)
        .map(|j| circuit_base + j)
        .collect();
    Some((nodes, circuits))
}
