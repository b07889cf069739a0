//! weir's configuration language: TOML → checked, typed [`Config`] → the
//! shaping core's specs (`weir-dataplane`'s [`ShaperSpec`]).
//!
//! Parse, don't validate: the TOML is read into plain serde structs that
//! only know TOML types (`raw`), then converted once into the types below,
//! with every rule checked and every problem reported at its file position
//! (`FILE:LINE:COL: what is wrong; expected …`, `diag`). Nothing downstream
//! re-checks: a [`Tree`] always compiles to a [`ShaperSpec`] the shaping
//! core accepts.
//!
//! Where each part of a file is read: `[[pair]]` here; `[tree.NAME]` in
//! `tree`, its leaf qdiscs in `qdisc`, its filters in `filter` and its apps
//! in `app`; `[xdp]`
//! (the AF_XDP workers; old name `[dataplane]`) in `xdp`; `[history]` in
//! `history`; `[[sla]]` and `[[policy]]` in `rules`. `check` holds the
//! single-value checks they share, `show` the summary `weir check` prints.
//!
//! Units and defaults are tc's (see `units` and `docs/config.md`): a config
//! translated line by line from a tc script shapes the same way. `units`
//! also holds the one duration parser and the one family of rate, size and
//! time printers that every weir command uses.

mod app;
mod check;
mod diag;
mod filter;
pub mod history;
mod qdisc;
mod raw;
pub mod rules;
mod show;
pub mod slices;
pub mod subscribers;
mod tree;
pub mod units;
pub mod xdp;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use weir_dataplane::app::AppsSpec;
use weir_dataplane::classify::FilterSpec;
use weir_dataplane::htb::{ClassSpec, HtbSpec};
use weir_dataplane::qdisc::QdiscParams;
use weir_dataplane::remark::Remark;
use weir_dataplane::shaper::{MalformedPolicy, ShaperSpec, FILTER_DROP};

pub use app::{DEFAULT_RULE_PRIO, MAX_APP_NAME, MAX_FLOWS, MAX_INSPECT_PACKETS, MAX_INSPECT_SLOTS};
pub use diag::Diagnostic;
pub use filter::{ip_proto_name, DEFAULT_FILTER_PRIO};
pub use history::HistoryCfg;
pub use qdisc::{BFIFO_DEFAULT_LIMIT, DEFAULT_LEAF, RED_DEFAULT_BANDWIDTH};
pub use rules::{Policy, SlaRule};
pub use tree::{
    default_burst, DEFAULT_POOL, DEFAULT_R2Q, HTB_MTU, PSCHED_HZ, QUANTUM_MAX, QUANTUM_MIN,
};
pub use units::{ClassId, Dscp, Rate, Size, Time, Tos, UnitError};
pub use xdp::{XdpAttach, XdpCfg};

use diag::{Ctx, Span};
use raw::sp;

/// A loaded configuration and the warnings it raised.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Diagnostic>,
    /// The text it was read from (a change of its subscribers is compiled
    /// from it again: [`parse_with`]).
    pub source: String,
}

/// The whole file.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// `[[pair]]` entries, in file order.
    pub pairs: Vec<Pair>,
    /// `[tree.NAME]` entries, in file order.
    pub trees: Vec<Tree>,
    /// `[xdp]` (or its old name `[dataplane]`), defaults filled in.
    pub xdp: XdpCfg,
    /// `[history]`, defaults filled in.
    pub history: HistoryCfg,
    /// `[[sla]]` rules, in file order (the policy engine evaluates them in
    /// this order).
    pub sla: Vec<SlaRule>,
    /// `[[policy]]` entries, in file order; at most one per class.
    pub policies: Vec<Policy>,
    /// `[subscribers]`: the circuits and nodes whose classes and filters
    /// are in `trees`, and where each went.
    pub subscribers: Option<subscribers::Subscribers>,
    /// `[slices]` and its `[[slice]]` entries: tenants' shares of a pair
    /// of trees, kept apart (`docs/slices.md`).
    pub slices: Option<slices::Slices>,
}

/// A bump-in-the-wire port pair: frames from `inside` go out of `outside`
/// shaped by the `upload` tree, and back through `download`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pair {
    pub name: String,
    pub inside: String,
    pub outside: String,
    /// Index into [`Config::trees`]: shapes inside → outside (egress on
    /// `outside`).
    pub upload: Option<u32>,
    /// Index into [`Config::trees`]: shapes outside → inside (egress on
    /// `inside`).
    pub download: Option<u32>,
    /// Rx queues of each port that weir serves: one worker per queue.
    pub queues: u32,
}

/// One HTB tree: `[tree.NAME]` with its classes and filters.
#[derive(Clone, Debug, PartialEq)]
pub struct Tree {
    pub name: String,
    /// What `N%` rates are a share of.
    pub link: Option<Rate>,
    /// Index into `classes`: the leaf unclassified traffic goes to.
    pub default_class: u32,
    /// Parents first: a class's `parent` is always an earlier index.
    pub classes: Vec<Class>,
    /// In evaluation order: tc `prio` ascending, then file order.
    pub filters: Vec<Filter>,
    pub r2q: u32,
    pub overhead: i32,
    pub mpu: u32,
    pub malformed: MalformedPolicy,
    /// Most packets queued in the tree at once.
    pub pool: u32,
    /// `wash = true`: frames through this tree lose their DSCP (filters
    /// see DSCP 0; a class's or app's remark sets one on the way out).
    pub wash: bool,
    /// `[tree.NAME.apps]` and the `[[tree.NAME.app]]` entries.
    pub apps: Apps,
}

/// A tree's apps, checked: what the engine gets, and each rule's `prio`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Apps {
    /// Apps in file order, their classes indexes into [`Tree::classes`]
    /// (leaves); rules in evaluation order: `prio` ascending, then file
    /// order (apps in file order, each app's rules in file order).
    pub spec: AppsSpec,
    /// The `prio` of `spec.rules[i]`.
    pub prios: Vec<u16>,
}

impl Apps {
    /// No apps, and the flow table's defaults.
    pub fn empty() -> Apps {
        Apps {
            spec: AppsSpec::empty(),
            prios: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.spec.apps.is_empty()
    }
}

/// One HTB class, every default resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Class {
    pub id: ClassId,
    pub name: Option<String>,
    /// Index into [`Tree::classes`]; None for a top-level class (a child of
    /// the qdisc).
    pub parent: Option<u32>,
    pub rate: Rate,
    pub ceil: Rate,
    /// Fits a u32.
    pub burst: Size,
    /// Fits a u32.
    pub cburst: Size,
    /// 0..=7.
    pub prio: u8,
    /// Fits a u32 (below 2^31).
    pub quantum: Size,
    /// `Some` exactly for leaves.
    pub qdisc: Option<QdiscParams>,
    /// `dscp` (and `remark`) of a leaf: the DSCP its frames leave with,
    /// unless their app has a remark of its own.
    pub remark: Option<Remark>,
}

impl Class {
    pub fn is_leaf(&self) -> bool {
        self.qdisc.is_some()
    }

    /// The core's view of the class (`parent` still an index of its tree).
    pub fn spec(&self) -> ClassSpec {
        ClassSpec {
            id: u64::from(self.id.major) << 32 | u64::from(self.id.minor),
            parent: self.parent,
            rate: self.rate.bytes_per_sec(),
            ceil: self.ceil.bytes_per_sec(),
            burst: u32::try_from(self.burst.bytes()).unwrap_or(u32::MAX),
            cburst: u32::try_from(self.cburst.bytes()).unwrap_or(u32::MAX),
            prio: self.prio,
            quantum: u32::try_from(self.quantum.bytes()).unwrap_or(u32::MAX),
            qdisc: self.qdisc,
        }
    }
}

/// Leaves a running tree of `leaves` leaves can take in place (a circuit
/// added by `weir circuit add` or a reload) before a change must rebuild
/// it: an eighth more, at least 16. Each spare costs a vacant class line
/// and leaf entry (about 0.4 KiB); a rebuild makes new room.
pub fn spare_leaves(leaves: u32) -> u32 {
    (leaves / 8).max(16)
}

/// One filter. `spec.target` is what the core does with its frames
/// ([`Filter::new`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Filter {
    /// tc `prio` (lower is tried first; ties keep file order).
    pub prio: u16,
    pub action: Action,
    pub spec: FilterSpec,
}

/// What a filter does with the frames it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// They go to this class (index into [`Tree::classes`], a leaf): tc's
    /// `flowid`.
    Class(u32),
    /// They are dropped and counted: tc's `action drop`.
    Drop,
}

impl Filter {
    /// A filter of a tree whose earlier filters (in evaluation order) have
    /// `drops` drop filters: the core's target is the class, or the drop
    /// filter's number (`weir_dataplane::shaper::FILTER_DROP`), and a drop
    /// filter counts itself in `drops`.
    pub fn new(prio: u16, action: Action, mut spec: FilterSpec, drops: &mut u32) -> Filter {
        spec.target = match action {
            Action::Class(c) => c,
            Action::Drop => {
                *drops += 1;
                FILTER_DROP | (*drops - 1)
            }
        };
        Filter { prio, action, spec }
    }

    /// The class its frames go to; None for a drop filter.
    pub fn class(&self) -> Option<u32> {
        match self.action {
            Action::Class(c) => Some(c),
            Action::Drop => None,
        }
    }
}

impl Config {
    /// The tree called `name`.
    pub fn tree(&self, name: &str) -> Option<&Tree> {
        self.trees.iter().find(|t| t.name == name)
    }
}

impl Tree {
    /// The tree with its classes in another order: class `i` of the result
    /// is class `order[i]` of this one (`order` a permutation of the
    /// indexes). Parents, filters, the default class and the apps follow
    /// their classes. Returns it and each old index's new one. What a tree
    /// changed in place looks like: the running tree numbers its classes so
    /// (`weir_dataplane::htb::edit_layout`), and this view must too.
    pub fn reorder(&self, order: &[u32]) -> (Tree, Vec<u32>) {
        let mut new_index = vec![0u32; self.classes.len()];
        for (i, &k) in order.iter().enumerate() {
            new_index[k as usize] = i as u32;
        }
        let mut t = self.clone();
        t.classes = order
            .iter()
            .map(|&k| {
                let mut c = self.classes[k as usize].clone();
                c.parent = c.parent.map(|p| new_index[p as usize]);
                c
            })
            .collect();
        for f in &mut t.filters {
            if let Action::Class(c) = &mut f.action {
                *c = new_index[*c as usize];
                f.spec.target = *c;
            }
        }
        t.default_class = new_index[self.default_class as usize];
        for a in &mut t.apps.spec.apps {
            a.class = new_index[a.class as usize];
        }
        (t, new_index)
    }

    /// The index of the class with this id (`"1:10"`) or name.
    pub fn class_index(&self, id_or_name: &str) -> Option<u32> {
        let pos = match id_or_name.parse::<ClassId>() {
            Ok(id) => self.classes.iter().position(|c| c.id == id),
            Err(_) => self
                .classes
                .iter()
                .position(|c| c.name.as_deref() == Some(id_or_name)),
        };
        pos.map(|p| p as u32)
    }

    /// `"1:10"`, or `"1:10 (voice)"` when the class has a name.
    pub fn label(&self, class: u32) -> String {
        match self.classes.get(class as usize) {
            Some(c) => match &c.name {
                Some(n) => format!("{} ({n})", c.id),
                None => c.id.to_string(),
            },
            None => format!("#{class}"),
        }
    }

    /// The dataplane's view of this tree. Class `i` of the spec is
    /// `classes[i]`; rates become bytes/s (tc truncates bits/8 the same
    /// way); filters are in evaluation order.
    pub fn shaper_spec(&self, seed: u64) -> ShaperSpec {
        let classes: Vec<ClassSpec> = self.classes.iter().map(Class::spec).collect();
        let leaves = classes.iter().filter(|c| c.qdisc.is_some()).count() as u32;
        ShaperSpec {
            htb: HtbSpec {
                classes,
                overhead: self.overhead,
                mpu: self.mpu,
                pool_capacity: self.pool,
                seed,
                spare_leaves: spare_leaves(leaves),
            },
            filters: self.filters.iter().map(|f| f.spec).collect(),
            default_class: self.default_class,
            malformed: self.malformed,
            apps: self.apps.spec.clone(),
            // Empty unless some class remarks: the core reads a short
            // vector as "no remark" for the classes past its end.
            class_remark: if self.classes.iter().any(|c| c.remark.is_some()) {
                self.classes.iter().map(|c| c.remark).collect()
            } else {
                Vec::new()
            },
            wash: self.wash,
        }
    }

    /// The tree as `weir check` prints it, tc-style: one line per class
    /// (indented under its parent), its leaf qdisc below it, then the
    /// filters in evaluation order.
    pub fn tree(&self) -> String {
        show::tree(self)
    }
}

/// Parse and check a whole configuration. `file` is only used in
/// diagnostics.
pub fn parse_str(text: &str, file: &str) -> Result<Loaded, Vec<Diagnostic>> {
    parse_with(text, file, None)
}

/// [`parse_str`] with the subscriber files' texts given (`weir circuit`
/// changes them in memory) instead of read from the files `[subscribers]`
/// names.
pub fn parse_with(
    text: &str,
    file: &str,
    given: Option<&subscribers::Given>,
) -> Result<Loaded, Vec<Diagnostic>> {
    let mut cx = Ctx::new(file, text);
    let config = raw::parse(&mut cx, text).and_then(|doc| build(&mut cx, &doc, given));
    diag::sort(&mut cx.errors);
    diag::sort(&mut cx.warnings);
    match config {
        Some(config) if cx.errors.is_empty() => Ok(Loaded {
            config,
            warnings: cx.warnings,
            source: text.to_string(),
        }),
        _ => {
            if cx.errors.is_empty() {
                // Every path that fails reports; this is a safety net.
                cx.error(&None, "configuration rejected");
            }
            Err(cx.errors)
        }
    }
}

/// [`parse_str`] on raw bytes (which must be UTF-8, as TOML requires).
pub fn parse_bytes(bytes: &[u8], file: &str) -> Result<Loaded, Vec<Diagnostic>> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse_str(text, file),
        Err(e) => {
            let good = &bytes[..e.valid_up_to()];
            // Safe to index: valid_up_to is a char boundary of valid UTF-8.
            let text = std::str::from_utf8(good).unwrap_or("");
            let cx = Ctx::new(file, text);
            Err(vec![cx.diagnostic(
                &Some(text.len()..text.len()),
                "the file is not UTF-8; expected UTF-8 text (TOML requires it)".to_string(),
            )])
        }
    }
}

/// Read and check a configuration file. An unreadable file is one
/// diagnostic at line 0.
pub fn load(path: &Path) -> Result<Loaded, Vec<Diagnostic>> {
    let file = path.display().to_string();
    match std::fs::read(path) {
        Ok(bytes) => parse_bytes(&bytes, &file),
        Err(e) => Err(vec![Diagnostic::unreadable(file, &e)]),
    }
}

/// `weir check FILE`: 0 when the file is good (every tree printed to `out`,
/// warnings to `err`), 2 on any error (one diagnostic per line on `err`).
pub fn cli_check(path: &Path, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    match load(path) {
        Ok(loaded) => {
            // Output errors (a closed pipe) don't change the verdict.
            let _ = write!(out, "{}", show::config(&loaded.config));
            for w in &loaded.warnings {
                let _ = writeln!(err, "{}", w.warning_line());
            }
            let c = &loaded.config;
            let _ = writeln!(
                out,
                "{}: OK: {} tree(s), {} class(es), {} filter(s), {} pair(s), {} warning(s)",
                path.display(),
                c.trees.len(),
                c.trees.iter().map(|t| t.classes.len()).sum::<usize>(),
                c.trees.iter().map(|t| t.filters.len()).sum::<usize>(),
                c.pairs.len(),
                loaded.warnings.len()
            );
            0
        }
        Err(diags) => {
            for d in &diags {
                let _ = writeln!(err, "{d}");
            }
            let _ = writeln!(err, "{}: {} error(s)", path.display(), diags.len());
            2
        }
    }
}

/// Linux's IFNAMSIZ less the terminating NUL.
const IFNAME_MAX: usize = 15;

fn check_ifname(cx: &mut Ctx, v: &raw::S<String>, what: &str) -> bool {
    let s = v.get_ref();
    let bad = s.is_empty()
        || s.len() > IFNAME_MAX
        || s == "."
        || s == ".."
        || s.chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if bad {
        cx.error(
            &sp(v),
            format!("bad interface name {s:?} for `{what}`; expected 1..={IFNAME_MAX} characters without '/', ':', spaces or control characters, like \"eth0\""),
        );
    }
    !bad
}

fn build(cx: &mut Ctx, doc: &raw::RawDoc, given: Option<&subscribers::Given>) -> Option<Config> {
    let errors_before = cx.errors.len();
    let mut trees = Vec::new();
    let mut tree_index: HashMap<&str, Option<u32>> = HashMap::new();
    for t in &doc.trees {
        let built = tree::build(cx, t);
        let idx = built.as_ref().map(|_| trees.len() as u32);
        tree_index.insert(t.name.as_str(), idx);
        trees.extend(built);
    }
    if doc.trees.is_empty() {
        cx.error(
            &None,
            "no trees; expected at least one [tree.NAME] section with classes",
        );
    }
    // Before the rules: an [[sla]] or [[policy]] may name a slice's or a
    // circuit's class. Slices before circuits, so circuits are the trees'
    // last classes: one removed in place moves only another circuit.
    let slices = slices::build(
        cx,
        doc.slices.as_ref(),
        &doc.slice_types,
        &doc.slice,
        &mut trees,
        &tree_index,
    );
    let subscribers = doc
        .subscribers
        .as_ref()
        .and_then(|(span, raw)| subscribers::build(cx, span, raw, &mut trees, &tree_index, given));

    let mut pairs = Vec::new();
    let mut pair_names: HashMap<&str, Span> = HashMap::new();
    let mut ifaces: HashMap<&str, (Span, &str)> = HashMap::new();
    let mut used: HashMap<String, (String, Span)> = HashMap::new();
    for (span, p) in &doc.pairs {
        let name = p.name.get_ref().as_str();
        if name.is_empty() {
            cx.error(
                &sp(&p.name),
                "empty pair name; expected a name like \"edge\"",
            );
        } else if let Some(first) = pair_names.get(name) {
            let line = cx.line_of(first);
            cx.error(
                &sp(&p.name),
                format!("duplicate pair name \"{name}\" (first used on line {line}); expected each name once"),
            );
        } else {
            pair_names.insert(name, sp(&p.name));
        }
        let inside_ok = check_ifname(cx, &p.inside, "inside");
        let outside_ok = check_ifname(cx, &p.outside, "outside");
        if inside_ok && outside_ok && p.inside.get_ref() == p.outside.get_ref() {
            cx.error(
                &sp(&p.outside),
                format!("`outside` is the same interface as `inside` (\"{}\"); expected two different ports", p.inside.get_ref()),
            );
        }
        for (ok, v) in [(inside_ok, &p.inside), (outside_ok, &p.outside)] {
            if !ok {
                continue;
            }
            let i = v.get_ref().as_str();
            if let Some((first, owner)) = ifaces.get(i) {
                if *owner != name {
                    let line = cx.line_of(first);
                    cx.error(
                        &sp(v),
                        format!("interface \"{i}\" already belongs to pair \"{owner}\" (line {line}); expected each interface in one pair"),
                    );
                }
            } else {
                ifaces.insert(i, (sp(v), name));
            }
        }
        let mut resolve = |cx: &mut Ctx, v: &Option<raw::S<String>>, dir: &str| -> Option<u32> {
            let v = v.as_ref()?;
            let t = v.get_ref().as_str();
            match tree_index.get(t) {
                None => {
                    cx.error(
                        &sp(v),
                        format!("pair \"{name}\" {dir} names tree \"{t}\", which is not defined; expected one of: {}", doc.trees.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ")),
                    );
                    None
                }
                Some(idx) => {
                    let what = format!("pair \"{name}\" {dir}");
                    if let Some((by, first)) = used.get(t) {
                        let line = cx.line_of(first);
                        cx.error(
                            &sp(v),
                            format!("tree \"{t}\" already shapes {by} (line {line}); expected a tree of its own for each direction (each is one queueing tree on one egress port)"),
                        );
                    } else {
                        used.insert(t.to_string(), (what, sp(v)));
                    }
                    *idx
                }
            }
        };
        let upload = resolve(cx, &p.upload, "upload");
        let download = resolve(cx, &p.download, "download");
        if p.upload.is_none() && p.download.is_none() {
            cx.error(
                span,
                format!("pair \"{name}\" shapes nothing; expected `upload` and/or `download` naming a tree"),
            );
        }
        let queues = match &p.queues {
            None => 1,
            Some(q) => match u32::try_from(*q.get_ref()) {
                Ok(n @ 1..=64) => n,
                _ => {
                    cx.error(
                        &sp(q),
                        format!("`queues` = {} is out of range; expected 1..=64 (one worker per rx queue)", q.get_ref()),
                    );
                    1
                }
            },
        };
        pairs.push(Pair {
            name: name.to_string(),
            inside: p.inside.get_ref().clone(),
            outside: p.outside.get_ref().clone(),
            upload,
            download,
            queues,
        });
    }
    // A direction without a tree is forwarded by one of weir's own, named
    // PAIR/upload or PAIR/download in stats, metrics and `weir show`; a
    // tree of the file by that name, shaping another direction, would make
    // two trees of one name (which `weir run` refuses).
    for p in &pairs {
        for (dir, tree) in [("upload", p.upload), ("download", p.download)] {
            if tree.is_some() {
                continue;
            }
            let unshaped = format!("{}/{dir}", p.name);
            if let Some((by, _)) = used.get(&unshaped) {
                let span = doc
                    .trees
                    .iter()
                    .find(|t| t.name == unshaped)
                    .and_then(|t| t.name_span.clone());
                cx.error(
                    &span,
                    format!("tree `{unshaped}` ({by}) has the name of pair \"{}\"'s {dir} direction, which no tree of the file shapes and weir forwards through a tree of its own by that name; expected another tree name, or a `{dir}` tree for pair \"{}\"", p.name, p.name),
                );
            }
        }
    }
    if !doc.pairs.is_empty() || doc.broken_pairs > 0 {
        for t in &doc.trees {
            if !used.contains_key(&t.name) && doc.broken_pairs == 0 {
                cx.warn(
                    &t.name_span,
                    format!("tree `{}` is not used by any pair", t.name),
                );
            }
        }
    }
    let xdp = match &doc.xdp {
        Some(raw) => {
            let cfg = xdp::build(cx, raw);
            let workers = pairs.iter().map(|p| p.queues).sum();
            xdp::check_workers(cx, raw, &cfg, workers);
            cfg
        }
        None => XdpCfg::default(),
    };
    let history = match &doc.history {
        Some(raw) => history::build(cx, raw),
        None => HistoryCfg::default(),
    };
    // Rules name trees, classes and interfaces: check them only against
    // a complete tree list, or every reference to a broken tree would be
    // reported again.
    let (sla, policies) = if trees.len() == doc.trees.len() && doc.broken_pairs == 0 {
        rules::build(cx, doc, &trees, &pairs)
    } else {
        (Vec::new(), Vec::new())
    };
    if cx.errors.len() > errors_before
        || trees.len() != doc.trees.len()
        || doc.broken_pairs > 0
        || doc.broken_xdp
        || doc.broken_history
        || doc.broken_rule_count > 0
        || doc.broken_subscribers
        || (doc.subscribers.is_some() && subscribers.is_none())
        || doc.broken_slices
        || (!doc.slice.is_empty() && slices.is_none())
    {
        return None;
    }
    Some(Config {
        pairs,
        trees,
        xdp,
        history,
        sla,
        policies,
        subscribers,
        slices,
    })
}
