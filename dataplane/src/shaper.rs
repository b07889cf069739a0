//! One direction's decision pipeline: parse → classify → HTB, with frame
//! accounting.
//!
//! The worker (or the simulator) owns one `Shaper` per direction and is the
//! only one to touch it: no locks. It hands in each received frame with its
//! bytes, pulls packets out with `dequeue(now)` until "not yet", sleeps until
//! `next_deadline()`, and returns the frames of `take_drops()` to its fill
//! ring. Counters prove that every frame is somewhere:
//! `received == sent + dropped + queued` after every call.

use arrayvec::ArrayVec;

use crate::app::{Apps, AppsError, AppsSpec, Decision, Located};
use crate::classify::{Classifier, ClassifyError, FilterSpec};
use crate::flow::NONE;
use crate::histogram::{LogHistogram, LOG_BUCKETS};
use crate::htb::{edit_layout, leaf_seed, ClassSpec, Htb, HtbSpec, InPlaceError, SpecError};
use crate::packet::{flags, DropReason, Dropped, Drops, Frame, Packet};
use crate::parse::{parse_frame, Headers, ParseError};
use crate::pool::NIL;
use crate::qdisc::Qdisc;
use crate::remark::Remark;

/// What to do with frames the parser rejects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MalformedPolicy {
    /// Send them through the default class (transparent bump-in-the-wire).
    #[default]
    Default,
    /// Drop them, counted as [`DropReason::Malformed`].
    Drop,
}

/// A filter target with this bit set is not a class: the filter's action
/// is `drop` (tc's `action drop`), and the other bits number the tree's
/// drop filters (0, 1, …), whose drops are counted one by one
/// ([`Shaper::filter_drops`]).
pub const FILTER_DROP: u32 = 1 << 31;

/// Everything needed to build a shaper for one direction.
#[derive(Clone, Debug)]
pub struct ShaperSpec {
    pub htb: HtbSpec,
    /// Evaluation order; targets are class indexes into `htb.classes`
    /// (leaves only), or [`FILTER_DROP`] | n for the tree's n-th drop
    /// filter.
    pub filters: Vec<FilterSpec>,
    /// Leaf class index for unclassified traffic.
    pub default_class: u32,
    pub malformed: MalformedPolicy,
    /// Apps: rules that give a flow an app, its class and its remark
    /// (empty: none, and no flow table is kept).
    pub apps: AppsSpec,
    /// A DSCP remark per class, indexed like `htb.classes` (shorter or
    /// empty: no remark for the classes past its end). An app's own remark
    /// comes first.
    pub class_remark: Vec<Option<Remark>>,
    /// Do not trust the DSCP of frames entering this tree: filters see
    /// DSCP 0, and every frame leaves with DSCP 0 unless a remark sets one.
    pub wash: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShaperError {
    Htb(SpecError),
    Classifier(ClassifyError),
    DefaultNotLeaf { class: u32 },
    FilterTargetNotLeaf { filter: usize, class: u32 },
    Apps(AppsError),
    AppClassNotLeaf { app: String, class: u32 },
}

impl std::fmt::Display for ShaperError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShaperError::Htb(e) => write!(f, "{e}"),
            ShaperError::Classifier(e) => write!(f, "filters: {e:?}"),
            ShaperError::DefaultNotLeaf { class } => {
                write!(f, "default class #{class} is not a leaf class")
            }
            ShaperError::FilterTargetNotLeaf { filter, class } => {
                write!(
                    f,
                    "filter #{filter} targets class #{class}, which is not a leaf class"
                )
            }
            ShaperError::Apps(e) => write!(f, "apps: {e}"),
            ShaperError::AppClassNotLeaf { app, class } => {
                write!(
                    f,
                    "app {app} goes to class #{class}, which is not a leaf class"
                )
            }
        }
    }
}

impl std::error::Error for ShaperError {}

/// Frame accounting: `received == sent + dropped (all reasons) + queued`
/// holds after every call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameCounters {
    pub received: u64,
    pub sent: u64,
    /// Indexed by [`DropReason::index`].
    pub dropped: [u64; DropReason::ALL.len()],
    /// Frames the parser rejected (dropped or sent to the default class,
    /// by policy).
    pub malformed_seen: u64,
    /// Frames currently queued in the tree.
    pub queued: u64,
}

impl FrameCounters {
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }

    /// The conservation law every test and the worker can check.
    pub fn balanced(&self) -> bool {
        self.received == self.sent + self.dropped_total() + self.queued
    }
}

/// A tree changed in place ([`Shaper::edit`]): leaves removed and added,
/// and the filters and remarks of the tree as it will be. Built off the
/// packet path by [`TreeEdit::new`].
pub struct TreeEdit {
    /// Leaves to remove, by index in the running tree.
    remove: Vec<u32>,
    /// Leaves to add, in index order, each with its queue; parents are
    /// indexes of the tree after the removals.
    add: Vec<(ClassSpec, Qdisc)>,
    classifier: Classifier,
    class_remark: Vec<u8>,
    /// How many drop filters the new filters have.
    drop_filters: usize,
}

impl TreeEdit {
    /// The edit that turns a running tree into `after`, the tree as it will
    /// be: its classes in the order [`edit_layout`] gives for removing
    /// `remove` (indexes in the running tree) and appending `added` leaves
    /// (`after`'s last classes), its filters and remarks for that order.
    pub fn new(after: &ShaperSpec, remove: Vec<u32>, added: u32) -> Result<TreeEdit, ShaperError> {
        let classes = &after.htb.classes;
        let first = classes.len().saturating_sub(added as usize);
        let mut add = Vec::new();
        for (i, c) in classes.iter().enumerate().skip(first) {
            let Some(q) = &c.qdisc else {
                return Err(ShaperError::Htb(SpecError::InnerWithQdisc {
                    class: i as u32,
                }));
            };
            add.push((
                c.clone(),
                Qdisc::new(q, leaf_seed(after.htb.seed, i as u32)),
            ));
        }
        for (i, f) in after.filters.iter().enumerate() {
            let drop = f.target & FILTER_DROP != 0;
            if !drop
                && classes
                    .get(f.target as usize)
                    .is_none_or(|c| c.qdisc.is_none())
            {
                return Err(ShaperError::FilterTargetNotLeaf {
                    filter: i,
                    class: f.target,
                });
            }
        }
        Ok(TreeEdit {
            remove,
            add,
            classifier: Classifier::new(&after.filters).map_err(ShaperError::Classifier)?,
            class_remark: remark_codes(&after.class_remark, classes.len() as u32),
            drop_filters: drop_filters(&after.filters),
        })
    }
}

/// What a shaper had before [`Shaper::edit`], for the caller to free.
pub struct Superseded {
    pub classifier: Classifier,
    pub class_remark: Vec<u8>,
}

/// How many drop filters `filters` have (the highest number, plus one).
fn drop_filters(filters: &[FilterSpec]) -> usize {
    filters
        .iter()
        .filter(|f| f.target & FILTER_DROP != 0)
        .map(|f| (f.target & !FILTER_DROP) as usize + 1)
        .max()
        .unwrap_or(0)
}

/// [`ShaperSpec::class_remark`] as the codes the packet path reads, one
/// per class.
fn remark_codes(remarks: &[Option<Remark>], classes: u32) -> Vec<u8> {
    (0..classes)
        .map(|c| {
            remarks
                .get(c as usize)
                .copied()
                .flatten()
                .map_or(0, |r| r.code())
        })
        .collect()
}

/// Frames of a batch whose flow-table lines are requested together.
pub const APPS_CHUNK: usize = 32;

/// How many frames ahead of its use a flow's lines are asked for.
const FLOW_AHEAD: usize = 8;

/// A frame parsed for a batch, with its flow's place in the table.
#[derive(Clone, Copy)]
struct Parsed<'a> {
    frame: Frame,
    bytes: &'a [u8],
    headers: Result<Headers, ParseError>,
    located: Option<Located>,
    /// The filters' class, when a batch computed it ahead.
    filtered: Option<u32>,
}

/// Buckets of the [`Sojourn`] histogram.
pub const SOJOURN_BUCKETS: usize = LOG_BUCKETS;

/// How long sent packets waited in the tree (enqueue to dequeue).
pub type Sojourn = LogHistogram;

pub struct Shaper {
    classifier: Classifier,
    htb: Htb,
    drops: Drops,
    default_class: u32,
    malformed: MalformedPolicy,
    counters: FrameCounters,
    sojourn: Sojourn,
    /// None when the tree has no apps: no flow table is kept.
    apps: Option<Apps>,
    /// [`ShaperSpec::class_remark`] as codes, one per class.
    class_remark: Vec<u8>,
    wash: bool,
    /// Frames each drop filter dropped ([`FILTER_DROP`]).
    filter_drops: Vec<u64>,
    /// Reused by [`Shaper::enqueue_batch`]: classified packets of one batch.
    batch: Vec<(u32, Packet)>,
}

impl Shaper {
    pub fn new(spec: &ShaperSpec, now: u64) -> Result<Shaper, ShaperError> {
        let htb = Htb::new(&spec.htb, now).map_err(ShaperError::Htb)?;
        if !htb.is_leaf(spec.default_class) {
            return Err(ShaperError::DefaultNotLeaf {
                class: spec.default_class,
            });
        }
        for (i, f) in spec.filters.iter().enumerate() {
            if f.target & FILTER_DROP == 0 && !htb.is_leaf(f.target) {
                return Err(ShaperError::FilterTargetNotLeaf {
                    filter: i,
                    class: f.target,
                });
            }
        }
        let classifier = Classifier::new(&spec.filters).map_err(ShaperError::Classifier)?;
        for app in &spec.apps.apps {
            if !htb.is_leaf(app.class) {
                return Err(ShaperError::AppClassNotLeaf {
                    app: app.name.clone(),
                    class: app.class,
                });
            }
        }
        let apps = if spec.apps.is_empty() {
            None
        } else {
            Some(Apps::new(&spec.apps).map_err(ShaperError::Apps)?)
        };
        let class_remark = remark_codes(&spec.class_remark, htb.class_count());
        Ok(Shaper {
            classifier,
            htb,
            drops: Drops::with_capacity(256),
            default_class: spec.default_class,
            malformed: spec.malformed,
            counters: FrameCounters::default(),
            sojourn: Sojourn::default(),
            apps,
            class_remark,
            wash: spec.wash,
            filter_drops: vec![0; drop_filters(&spec.filters)],
            batch: Vec::new(),
        })
    }

    /// Take a received frame: `bytes` are its contents (read only; the core
    /// keeps only the handle). Returns the leaf class it was queued to, or
    /// None when it was dropped: malformed, or by a drop filter.
    pub fn enqueue(&mut self, frame: Frame, bytes: &[u8], now: u64) -> Option<u32> {
        self.counters.received += 1;
        let (class, packet) = self.classify(frame, bytes, now)?;
        let before = self.drops.len();
        self.htb.enqueue(class, packet, now, &mut self.drops);
        self.count_new_drops(before);
        Some(class)
    }

    /// Take a batch of received frames, each with its bytes: exactly what
    /// calling [`Shaper::enqueue`] for each frame in order does (same
    /// classes, drops and counters), but the tree is fed through
    /// [`Htb::enqueue_batch`], which prefetches the lines of later packets
    /// while earlier ones are queued. Only the order of `take_drops` may
    /// differ (malformed frames of the batch come first). For the worker's
    /// rx batches; the scratch vector is kept, so steady state allocates
    /// nothing.
    pub fn enqueue_batch<'a, I>(&mut self, frames: I, now: u64)
    where
        I: IntoIterator<Item = (Frame, &'a [u8])>,
    {
        let mut batch = std::mem::take(&mut self.batch);
        batch.clear();
        if self.apps.is_some() {
            self.classify_apps_batch(frames, now, &mut batch);
        } else {
            for (frame, bytes) in frames {
                self.counters.received += 1;
                if let Some(item) = self.classify(frame, bytes, now) {
                    batch.push(item);
                }
            }
        }
        let before = self.drops.len();
        self.htb.enqueue_batch(&batch, now, &mut self.drops);
        self.count_new_drops(before);
        self.batch = batch;
    }

    /// Up to `max` packets the tree allows at `now`, appended to `out`;
    /// returns how many. Exactly what calling [`Shaper::dequeue`] until it
    /// returns None or `max` packets were taken does, through
    /// [`Htb::dequeue_batch`]. Every packet with
    /// [`crate::packet::flags::MARK_CE`] must be CE-marked before it goes
    /// on the wire, as for `dequeue`.
    pub fn dequeue_batch(&mut self, now: u64, out: &mut Vec<Packet>, max: usize) -> usize {
        let before = self.drops.len();
        let first = out.len();
        let n = self.htb.dequeue_batch(now, out, max, &mut self.drops);
        self.count_new_drops(before);
        self.counters.sent += n as u64;
        for p in &out[first..] {
            self.sojourn.record(now.saturating_sub(p.enqueued_at));
        }
        n
    }

    /// [`Shaper::classify`] for a batch of a tree with apps, pipelined as
    /// [`Htb::enqueue_batch`] is: up to [`APPS_CHUNK`] frames are parsed,
    /// filtered and their flows' tags requested first; then each frame's
    /// flow lines are requested [`FLOW_AHEAD`] frames before the engine
    /// sees it, so the flow-table misses of a chunk overlap instead of
    /// following each other. Same results as one frame at a time.
    fn classify_apps_batch<'a, I>(&mut self, frames: I, now: u64, batch: &mut Vec<(u32, Packet)>)
    where
        I: IntoIterator<Item = (Frame, &'a [u8])>,
    {
        let mut frames = frames.into_iter().peekable();
        // Filled by push, not initialised first: a chunk is 5.6 kB.
        let mut chunk: ArrayVec<Parsed<'a>, APPS_CHUNK> = ArrayVec::new();
        while frames.peek().is_some() {
            chunk.clear();
            for (frame, bytes) in frames.by_ref().take(APPS_CHUNK) {
                let headers = parse_frame(bytes);
                let located = self.locate(&headers);
                if let (Some(l), Some(apps)) = (located, self.apps.as_ref()) {
                    apps.prefetch(l);
                }
                // The filters too: work that needs no table line, done
                // while the tags asked for above arrive.
                let filtered = headers.as_ref().ok().map(|h| self.filter_class(h));
                chunk.push(Parsed {
                    frame,
                    bytes,
                    headers,
                    located,
                    filtered,
                });
            }
            // The flows' lines are asked for a few frames ahead of their
            // use, not all at once: asked for the whole chunk in a row,
            // 64 lines were requested faster than the core keeps misses in
            // flight, and the profile showed frames waiting on their flow's
            // line (asked 8 ahead, 100,000 flows cost ~19 ns less per
            // frame; 4 or 12 ahead made no difference).
            for p in chunk.iter().take(FLOW_AHEAD) {
                self.prefetch_flow(p);
            }
            for i in 0..chunk.len() {
                if let Some(ahead) = chunk.get(i + FLOW_AHEAD) {
                    self.prefetch_flow(ahead);
                }
                self.counters.received += 1;
                if let Some(item) = self.classify_parsed(&chunk[i], now) {
                    batch.push(item);
                }
            }
        }
    }

    /// Ask for the lines of a parsed frame's flow (its tags have arrived).
    #[inline]
    fn prefetch_flow(&self, p: &Parsed<'_>) {
        if let (Some(l), Some(apps)) = (p.located, self.apps.as_ref()) {
            apps.prefetch_flow(l);
        }
    }

    /// Parse and classify one frame for a batch: the leaf class and the
    /// packet, or None when it was dropped as malformed (already counted
    /// and in `drops`). `received` is counted by the caller.
    ///
    /// Order: the filters (or the default) give a class; the apps engine,
    /// when the tree has apps, overrides it for a flow whose app is known.
    /// The remark is the app's, else the class's, else a wash.
    #[inline(always)]
    fn classify(&mut self, frame: Frame, bytes: &[u8], now: u64) -> Option<(u32, Packet)> {
        let headers = parse_frame(bytes);
        let located = self.locate(&headers);
        self.classify_parsed(
            &Parsed {
                frame,
                bytes,
                headers,
                located,
                filtered: None,
            },
            now,
        )
    }

    /// Where a parsed frame's flow lives in the apps' table (None: no apps,
    /// not parsed, or not a flow).
    #[inline]
    fn locate(&self, headers: &Result<Headers, ParseError>) -> Option<Located> {
        match (headers, self.apps.as_ref()) {
            (Ok(h), Some(apps)) => apps.locate(h),
            _ => None,
        }
    }

    /// The filters' class for parsed headers (or the default), seeing DSCP
    /// 0 in a washed tree.
    #[inline]
    fn filter_class(&self, h: &Headers) -> u32 {
        if self.wash {
            // An untrusted side: filters see no DSCP (ECN stays).
            let mut h = *h;
            if let Some(ip) = h.ip.as_mut() {
                ip.tos &= 0x03;
            }
            return self.classifier.classify(&h).unwrap_or(self.default_class);
        }
        self.classifier.classify(h).unwrap_or(self.default_class)
    }

    #[inline(always)]
    fn classify_parsed(&mut self, p: &Parsed<'_>, now: u64) -> Option<(u32, Packet)> {
        let &Parsed {
            frame,
            bytes,
            ref headers,
            located,
            filtered,
        } = p;
        let Ok(h) = headers else {
            self.counters.malformed_seen += 1;
            if self.malformed == MalformedPolicy::Drop {
                self.drops
                    .push(Packet::new(frame, 0), DropReason::Malformed);
                self.count_new_drops(self.drops.len() - 1);
                return None;
            }
            let remark = self.remark_for(self.default_class, 0, 0);
            return Some((
                self.default_class,
                Packet {
                    remark,
                    ..Packet::new(frame, 0)
                },
            ));
        };
        let flags = h.packet_flags();
        let mut class = filtered.unwrap_or_else(|| self.filter_class(h));
        if class & FILTER_DROP != 0 {
            // A drop filter: the frame goes no further (no flow, no app),
            // as tc's `action drop` ends classification.
            if let Some(n) = self.filter_drops.get_mut((class & !FILTER_DROP) as usize) {
                *n += 1;
            }
            self.drops.push(Packet::new(frame, 0), DropReason::Filtered);
            self.count_new_drops(self.drops.len() - 1);
            return None;
        }
        let (mut app, mut remark) = (NONE, 0);
        if let Some(apps) = self.apps.as_mut() {
            let a = apps.packet_at(h, bytes, located, now);
            if let Some(c) = apps.class_of(a) {
                class = c;
                app = a;
                remark = apps.remark_of(a).map_or(0, |r| r.code());
            }
        }
        // The packet is built once, from values in registers: filled in
        // field by field, its narrow stores were then read back as wide
        // loads when it was returned, which the CPU cannot forward (a
        // stall per packet the profile showed).
        let packet = Packet {
            hash: h.flow_hash(),
            l3_offset: h.l3_offset,
            flags,
            remark: self.remark_for(class, remark, flags),
            app,
            ..Packet::new(frame, 0)
        };
        Some((class, packet))
    }

    /// The remark code a packet of `class` leaves with: the app's
    /// (`remark`, 0 for none), else the class's; in a washed tree, every
    /// IP packet's is at least a wash.
    #[inline]
    fn remark_for(&self, class: u32, remark: u8, flags: u8) -> u8 {
        let remark = if remark == 0 {
            self.class_remark.get(class as usize).copied().unwrap_or(0)
        } else {
            remark
        };
        if !self.wash || flags & (flags::IPV4 | flags::IPV6) == 0 {
            return remark;
        }
        // Washed first, every frame is unmarked: "if unmarked" is "set".
        match Remark::from_code(remark) {
            None => Remark::Wash.code(),
            Some(Remark::IfUnmarked(d)) => Remark::Set(d).code(),
            Some(r) => r.code(),
        }
    }

    /// The next packet to transmit at `now`, or None ("not yet" or empty).
    /// A packet with [`crate::packet::flags::MARK_CE`] set must be CE-marked
    /// ([`crate::parse::mark_ce`]) before it goes on the wire.
    pub fn dequeue(&mut self, now: u64) -> Option<Packet> {
        let before = self.drops.len();
        let packet = self.htb.dequeue(now, &mut self.drops);
        self.count_new_drops(before);
        if let Some(p) = &packet {
            self.counters.sent += 1;
            self.sojourn.record(now.saturating_sub(p.enqueued_at));
        }
        packet
    }

    /// When to call `dequeue` next; None when nothing is queued.
    pub fn next_deadline(&self) -> Option<u64> {
        self.htb.next_deadline()
    }

    /// Packets dropped since the last call; their frames go back to the
    /// fill ring.
    pub fn take_drops(&mut self) -> std::vec::Drain<'_, Dropped> {
        self.drops.drain()
    }

    /// Hand everything over to `next`, a shaper built for a new
    /// configuration of this tree, and return it (a reload that adds or
    /// removes classes). `map[c]` is class `c`'s index in `next`, None when
    /// it is gone. Every class kept keeps its buckets (tokens and ctokens
    /// go on from where they were, so a rebuild for another class's sake
    /// changes nothing of its shaping), and every queued packet of leaf `c`
    /// is queued again in `next`'s leaf `map[c]`, in its old queue order,
    /// or dropped as `Flushed` when `map[c]` is None or not a leaf of
    /// `next`; drops not yet taken move along. The frame counters carry
    /// over, so `received == sent + dropped + queued` keeps holding across
    /// the swap; class and qdisc statistics start from zero, as a new tc
    /// class's do, and so does the leaves' AQM state (CoDel's, the flow
    /// queues'). Re-queued packets count their sojourn from `now`.
    pub fn migrate_into(&mut self, mut next: Shaper, map: &[Option<u32>], now: u64) -> Shaper {
        // `next` is fresh: nothing in its drops yet. Everything the move
        // drops lands there and is counted once, below.
        next.drops.clear();
        let mut moved = Drops::with_capacity(256);
        // First every kept class's buckets, so the packets moved below
        // activate their classes in the modes those buckets mean. A class
        // whose buckets are full is as a new one starts: nothing to carry,
        // and a tree of idle subscribers is a quick pass.
        for class in 0..self.htb.class_count() {
            if let (Some(Some(to)), Some(b)) =
                (map.get(class as usize), self.htb.buckets(class, now))
            {
                next.htb.carry_buckets(*to, b, now);
            }
        }
        for class in 0..self.htb.class_count() {
            if self.htb.queued(class) == 0 {
                continue;
            }
            moved.clear();
            self.htb.flush_class(class, &mut moved);
            let target = map
                .get(class as usize)
                .copied()
                .flatten()
                .filter(|&c| next.htb.is_leaf(c));
            for d in moved.drain() {
                match target {
                    Some(c) => next.htb.requeue(c, d.packet, now, &mut next.drops),
                    None => next.drops.push(d.packet, DropReason::Flushed),
                }
            }
        }
        let mut counters = self.counters;
        for d in next.drops.as_slice() {
            counters.dropped[d.reason.index()] += 1;
        }
        // Drops of this shaper the caller has not taken yet were counted
        // when they happened; they move along so their frames come back.
        for d in self.drops.drain() {
            next.drops.push(d.packet, d.reason);
        }
        counters.queued = u64::from(next.htb.backlog().packets);
        next.counters = counters;
        next.sojourn = self.sojourn.clone();
        self.counters.queued = 0;
        if let (Some(new), Some(old)) = (next.apps.as_mut(), self.apps.as_ref()) {
            new.adopt(old, now);
        }
        next
    }

    /// Change the tree in place (`TreeEdit`): remove its leaves
    /// `edit.remove`, add `edit.add`, and take the edit's filters and
    /// remarks. Nothing else changes: every other class keeps its queue,
    /// buckets, AQM state and counters, and the frame accounting goes on.
    /// The removed leaves' packets are dropped as `Flushed` (in
    /// `take_drops`). Everything is checked before anything is done: on an
    /// error the shaper is as it was, and the caller rebuilds the tree
    /// instead. Returns what the shaper had before (filters, remarks), to
    /// be freed off the packet path.
    pub fn edit(&mut self, edit: TreeEdit, now: u64) -> Result<Superseded, InPlaceError> {
        let TreeEdit {
            mut remove,
            add,
            classifier,
            class_remark,
            drop_filters,
        } = edit;
        remove.sort_unstable_by(|a, b| b.cmp(a));
        remove.dedup();
        self.check_edit(&remove, &add)?;
        let before = self.drops.len();
        for &r in &remove {
            if let Some(moved) = self.htb.remove_leaf(r, &mut self.drops)? {
                if self.default_class == moved.from {
                    self.default_class = moved.to;
                }
            }
        }
        for (spec, qdisc) in add {
            self.htb.add_leaf(&spec, qdisc, now)?;
        }
        self.count_new_drops(before);
        // Drop filters are numbered in order: the counters of the ones
        // that stay in place go on.
        self.filter_drops.resize(drop_filters, 0);
        Ok(Superseded {
            classifier: std::mem::replace(&mut self.classifier, classifier),
            class_remark: std::mem::replace(&mut self.class_remark, class_remark),
        })
    }

    /// What [`Shaper::edit`] checks before it changes anything. `remove`
    /// is sorted highest first, without repeats.
    fn check_edit(&self, remove: &[u32], add: &[(ClassSpec, Qdisc)]) -> Result<(), InPlaceError> {
        // The default class stays: unclassified traffic needs it.
        for &r in remove {
            if r == self.default_class {
                return Err(InPlaceError::NotLeaf { class: r });
            }
            self.htb.check_remove(r)?;
        }
        if self.htb.spare_leaves() < add.len() as u32 {
            return Err(InPlaceError::NoRoom);
        }
        // The parents are indexes of the tree after the removals: the
        // classes the removals move sit where the removed ones were.
        let layout = edit_layout(self.htb.class_count(), remove, 0);
        let mut last_id = 0;
        for (spec, _) in add {
            let parent = spec.parent.unwrap_or(NIL);
            let Some(Some(was)) = layout.get(parent as usize) else {
                return Err(InPlaceError::BadParent { parent });
            };
            if spec.id <= last_id {
                return Err(InPlaceError::OutOfOrder { id: spec.id });
            }
            last_id = spec.id;
            self.htb.check_add(spec, *was, remove)?;
        }
        Ok(())
    }

    /// Frames each drop filter dropped, by drop filter number
    /// ([`FILTER_DROP`]).
    pub fn filter_drops(&self) -> &[u64] {
        &self.filter_drops
    }

    /// How long the packets sent so far waited in the tree.
    pub fn sojourn(&self) -> &Sojourn {
        &self.sojourn
    }

    pub fn counters(&self) -> FrameCounters {
        self.counters
    }

    pub fn htb(&self) -> &Htb {
        &self.htb
    }

    /// For runtime changes (`weir class change`).
    pub fn htb_mut(&mut self) -> &mut Htb {
        &mut self.htb
    }

    /// Empty every queue (shutdown): everything queued comes back through
    /// `take_drops` as [`DropReason::Flushed`].
    pub fn flush(&mut self) {
        let before = self.drops.len();
        self.htb.flush(&mut self.drops);
        self.count_new_drops(before);
    }

    /// Count drops pushed since index `from`, and refresh `queued` from the
    /// tree's backlog.
    fn count_new_drops(&mut self, from: usize) {
        self.counters.queued = u64::from(self.htb.backlog().packets);
        for d in &self.drops.as_slice()[from..] {
            self.counters.dropped[d.reason.index()] += 1;
            if let Some(apps) = self.apps.as_mut() {
                apps.count_drop(d.packet.app);
            }
        }
    }

    /// The tree's apps engine, when it has apps.
    pub fn apps(&self) -> Option<&Apps> {
        self.apps.as_ref()
    }

    /// Decisions about flows made since the last call, for the shaper of
    /// the other direction ([`Shaper::learn`]).
    pub fn take_decisions(&mut self, out: &mut Vec<Decision>) {
        if let Some(apps) = self.apps.as_mut() {
            out.extend(apps.take_decisions());
        }
    }

    /// What the other direction's shaper decided about a flow.
    pub fn learn(&mut self, d: Decision, now: u64) {
        if let Some(apps) = self.apps.as_mut() {
            apps.learn(d, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::htb::ClassSpec;
    use crate::qdisc::{FifoLimit, QdiscParams};
    use weir_testkit::frame;

    fn spec(malformed: MalformedPolicy) -> ShaperSpec {
        let leaf = |parent| ClassSpec {
            id: 0,
            parent,
            rate: 125_000,
            ceil: 125_000,
            burst: 1600,
            cburst: 1600,
            prio: 0,
            quantum: 1500,
            qdisc: Some(QdiscParams::Fifo(FifoLimit::Packets(2))),
        };
        ShaperSpec {
            htb: HtbSpec {
                classes: vec![leaf(None)],
                overhead: 0,
                mpu: 0,
                pool_capacity: 64,
                seed: 0,
                spare_leaves: 0,
            },
            filters: vec![],
            default_class: 0,
            malformed,
            apps: AppsSpec::empty(),
            class_remark: Vec::new(),
            wash: false,
        }
    }

    fn eth_arp() -> Vec<u8> {
        let mut f = frame::eth(frame::MAC_B, frame::MAC_A, frame::ETHERTYPE_ARP);
        f.resize(60, 0);
        f
    }

    /// `spec` with a root and two fifo leaves of depth `limit`, `default`
    /// the leaf unclassified frames go to.
    fn two_leaves(limit: u32, default: u32) -> ShaperSpec {
        let mut sp = spec(MalformedPolicy::Default);
        let mut leaf = sp.htb.classes[0].clone();
        leaf.qdisc = Some(QdiscParams::Fifo(FifoLimit::Packets(limit)));
        leaf.parent = Some(0);
        let mut root = sp.htb.classes[0].clone();
        root.qdisc = None;
        sp.htb.classes = vec![root, leaf.clone(), leaf];
        sp.default_class = default;
        sp
    }

    /// Root 1:1, default leaf 1:10, and one leaf per address of `dsts`
    /// (1:11 up) with a filter on that destination; `spare` leaves of room.
    fn subscribers(dsts: &[[u8; 4]], spare: u32) -> ShaperSpec {
        let mut sp = two_leaves(100, 1);
        sp.htb.classes.truncate(2);
        sp.htb.classes[0].id = 1 << 32 | 1;
        sp.htb.classes[1].id = 1 << 32 | 0x10;
        sp.htb.spare_leaves = spare;
        for (i, d) in dsts.iter().enumerate() {
            add_subscriber(&mut sp, 0x11 + i as u64, *d);
        }
        sp
    }

    fn add_subscriber(sp: &mut ShaperSpec, minor: u64, dst: [u8; 4]) {
        let mut leaf = sp.htb.classes[1].clone();
        leaf.id = 1 << 32 | minor;
        sp.htb.classes.push(leaf);
        sp.filters.push(FilterSpec {
            dst: Some(crate::classify::IpPrefix {
                v6: false,
                addr: 0xffff_0000_0000 | u128::from(u32::from_be_bytes(dst)),
                len: 32,
            }),
            target: sp.htb.classes.len() as u32 - 1,
            ..FilterSpec::default()
        });
    }

    fn to(dst: [u8; 4]) -> Vec<u8> {
        let ip = frame::Ipv4 {
            dst,
            ..frame::Ipv4::default()
        };
        frame::ipv4_frame(&ip, &frame::udp(1, 2, &[0; 100]))
    }

    #[test]
    fn an_edit_changes_only_the_leaves_it_names() {
        let (a, b, c) = ([198, 18, 0, 1], [198, 18, 0, 2], [198, 18, 0, 3]);
        let mut sh = Shaper::new(&subscribers(&[a, b], 4), 0).unwrap();
        let mut addr = 0;
        let mut send = |sh: &mut Shaper, dst: [u8; 4], n: u64| {
            for _ in 0..n {
                addr += 1;
                sh.enqueue(Frame { addr, len: 142 }, &to(dst), 0);
            }
        };
        // a's leaf (#2) and b's (#3) each send one (in turn) and hold four.
        send(&mut sh, a, 5);
        send(&mut sh, b, 5);
        let mut out = Vec::new();
        let sent = sh.dequeue_batch(0, &mut out, 2);
        assert_eq!(sent, 2);
        let a_before = sh.htb().class_stats(2);
        assert_eq!((a_before.packets, a_before.backlog.packets), (1, 4));
        // Remove b, add c: b's index (3) is the last, so nothing moves and c
        // takes index 3.
        let mut after = subscribers(&[a], 4);
        add_subscriber(&mut after, 0x13, c);
        let edit = TreeEdit::new(&after, vec![3], 1).unwrap();
        let old = sh.edit(edit, 1).unwrap();
        assert_eq!(old.class_remark.len(), 4);
        // b's four packets came back as flushed; a's leaf is as it was.
        let flushed: Vec<_> = sh.take_drops().collect();
        assert_eq!(flushed.len(), 4);
        assert!(flushed.iter().all(|d| d.reason == DropReason::Flushed));
        assert_eq!(sh.htb().class_stats(2), a_before);
        assert!(sh.counters().balanced(), "{:?}", sh.counters());
        assert_eq!(sh.counters().queued, 4);
        // c's frames go to its new leaf; b's now to the default.
        assert_eq!(
            sh.enqueue(
                Frame {
                    addr: 100,
                    len: 142
                },
                &to(c),
                1
            ),
            Some(3)
        );
        assert_eq!(
            sh.enqueue(
                Frame {
                    addr: 101,
                    len: 142
                },
                &to(b),
                1
            ),
            Some(1)
        );
        assert_eq!(
            sh.enqueue(
                Frame {
                    addr: 102,
                    len: 142
                },
                &to(a),
                1
            ),
            Some(2)
        );
        // An edit that can't be made changes nothing: the default class
        // stays, and so does everything else.
        let counters = sh.counters();
        let edit = TreeEdit::new(&after, vec![1, 2], 1).unwrap();
        assert_eq!(
            sh.edit(edit, 2).err(),
            Some(InPlaceError::NotLeaf { class: 1 })
        );
        assert_eq!(sh.counters(), counters);
        assert_eq!(sh.htb().class_stats(2).backlog.packets, 5);
        assert_eq!(
            sh.enqueue(
                Frame {
                    addr: 103,
                    len: 142
                },
                &to(c),
                2
            ),
            Some(3)
        );
    }

    #[test]
    fn a_drop_filter_drops_and_counts_what_it_matches() {
        let (a, b, c) = ([198, 18, 0, 1], [198, 18, 0, 2], [198, 18, 0, 3]);
        let mut sp = subscribers(&[a], 0);
        // Drop filter 1 (b), then filter 0 (c): numbered by the caller.
        for (n, d) in [(1, b), (0, c)] {
            sp.filters.insert(
                0,
                FilterSpec {
                    dst: Some(crate::classify::IpPrefix {
                        v6: false,
                        addr: 0xffff_0000_0000 | u128::from(u32::from_be_bytes(d)),
                        len: 32,
                    }),
                    target: FILTER_DROP | n,
                    ..FilterSpec::default()
                },
            );
        }
        let mut sh = Shaper::new(&sp, 0).unwrap();
        assert_eq!(sh.filter_drops(), [0, 0]);
        let mut out = Vec::new();
        for (addr, dst) in [a, b, b, c, a].into_iter().enumerate() {
            out.push(sh.enqueue(
                Frame {
                    addr: addr as u64,
                    len: 142,
                },
                &to(dst),
                0,
            ));
        }
        assert_eq!(out, [Some(2), None, None, None, Some(2)]);
        assert_eq!(sh.filter_drops(), [1, 2]);
        let dropped: Vec<_> = sh.take_drops().map(|d| (d.packet.addr, d.reason)).collect();
        assert_eq!(dropped, [1, 2, 3].map(|a| (a, DropReason::Filtered)),);
        let counters = sh.counters();
        assert_eq!(counters.dropped[DropReason::Filtered.index()], 3);
        assert!(counters.balanced(), "{counters:?}");
        // The batched path drops the same way.
        let frames = [to(b), to(a)];
        sh.enqueue_batch(
            frames.iter().enumerate().map(|(i, f)| {
                (
                    Frame {
                        addr: 10 + i as u64,
                        len: 142,
                    },
                    f.as_slice(),
                )
            }),
            0,
        );
        assert_eq!(sh.filter_drops(), [1, 3]);
        assert!(sh.counters().balanced());
    }

    #[test]
    fn a_removal_moves_the_last_leaf_into_the_hole() {
        let (a, b, c) = ([198, 18, 0, 1], [198, 18, 0, 2], [198, 18, 0, 3]);
        let mut sh = Shaper::new(&subscribers(&[a, b, c], 4), 0).unwrap();
        sh.enqueue(Frame { addr: 1, len: 142 }, &to(c), 0);
        // Remove a (#2): c (#4, the last) takes #2, as `edit_layout` says.
        assert_eq!(
            edit_layout(5, &[2], 0),
            vec![Some(0), Some(1), Some(4), Some(3)]
        );
        let mut after = subscribers(&[], 4);
        add_subscriber(&mut after, 0x13, c);
        add_subscriber(&mut after, 0x12, b);
        sh.edit(TreeEdit::new(&after, vec![2], 0).unwrap(), 1)
            .unwrap();
        assert_eq!(sh.htb().class_count(), 4);
        assert_eq!(
            sh.htb().class_stats(2).backlog.packets,
            1,
            "c's packet moved with it"
        );
        assert_eq!(sh.enqueue(Frame { addr: 2, len: 142 }, &to(c), 1), Some(2));
        assert_eq!(sh.enqueue(Frame { addr: 3, len: 142 }, &to(b), 1), Some(3));
        assert_eq!(sh.enqueue(Frame { addr: 4, len: 142 }, &to(a), 1), Some(1));
    }

    #[test]
    fn migration_carries_the_buckets_of_kept_classes() {
        let arp = eth_arp();
        let mut old = Shaper::new(&two_leaves(10, 1), 0).unwrap();
        for i in 0..4 {
            old.enqueue(Frame { addr: i, len: 60 }, &arp, 0);
        }
        let sent = (0..4).filter_map(|_| old.dequeue(0)).count();
        assert_eq!(sent, 4);
        // Leaf 1 and the root it charged are below full; leaf 2 is idle.
        let leaf = old.htb().buckets(1, 10).expect("leaf 1 spent tokens");
        let root = old.htb().buckets(0, 10).expect("the root was charged");
        assert_eq!(old.htb().buckets(2, 10), None);
        let next = Shaper::new(&two_leaves(10, 1), 0).unwrap();
        assert_eq!(next.htb().buckets(1, 10), None, "a new class starts full");
        let new = old.migrate_into(next, &[Some(0), Some(1), Some(2)], 10);
        assert_eq!(new.htb().buckets(1, 10), Some(leaf));
        assert_eq!(new.htb().buckets(0, 10), Some(root));
        assert_eq!(new.htb().buckets(2, 10), None);
    }

    #[test]
    fn migration_keeps_queues_of_kept_classes_and_the_accounting() {
        let arp = eth_arp();
        // Old tree: 4 frames queued in leaf 1. A second shaper, with 3 in
        // leaf 2, shows what happens to a class that is gone.
        let mut old = Shaper::new(&two_leaves(10, 1), 0).unwrap();
        for i in 0..4 {
            old.enqueue(Frame { addr: i, len: 60 }, &arp, 0);
        }
        let mut other = Shaper::new(&two_leaves(10, 2), 0).unwrap();
        for i in 0..3 {
            other.enqueue(
                Frame {
                    addr: 100 + i,
                    len: 60,
                },
                &arp,
                0,
            );
        }
        // One drop not taken yet in `old`.
        old.drops.push(
            Packet::new(Frame { addr: 50, len: 60 }, 0),
            DropReason::QueueLimit,
        );
        old.counters.received += 1;
        old.counters.dropped[DropReason::QueueLimit.index()] += 1;
        assert!(old.counters().balanced());

        // New tree keeps leaf 1 (now at index 2, depth 3) and drops leaf 2.
        let next = Shaper::new(&two_leaves(3, 2), 0).unwrap();
        let new = old.migrate_into(next, &[None, Some(2), None], 10);
        let c = new.counters();
        assert!(c.balanced(), "{c:?}");
        assert_eq!(c.received, 5);
        assert_eq!(c.queued, 3, "the 4 of leaf 1 moved into a 3-deep queue");
        assert_eq!(
            c.dropped[DropReason::QueueLimit.index()],
            2,
            "the pending one and the overflow"
        );
        assert_eq!(new.htb().class_stats(2).backlog.packets, 3);
        let mut new = new;
        let dropped: Vec<u64> = new.take_drops().map(|d| d.packet.frame().addr).collect();
        assert_eq!(dropped.len(), 2);
        assert!(dropped.contains(&50), "{dropped:?}");
        // Queue order is kept: frames 0, 1, 2 come out first.
        let out: Vec<u64> = (0..3)
            .filter_map(|_| new.dequeue(1_000_000_000))
            .map(|p| p.frame().addr)
            .collect();
        assert_eq!(out, vec![0, 1, 2]);

        // Unmapped classes: their packets are Flushed and counted.
        let next = Shaper::new(&two_leaves(10, 1), 0).unwrap();
        let gone = other.migrate_into(next, &[None, None, None], 5);
        let c = gone.counters();
        assert!(c.balanced(), "{c:?}");
        assert_eq!((c.queued, c.dropped[DropReason::Flushed.index()]), (0, 3));
    }

    #[test]
    fn accounting_balances_through_tail_drops_and_malformed() {
        let mut s = Shaper::new(&spec(MalformedPolicy::Drop), 0).unwrap();
        let arp = eth_arp();
        for i in 0..5 {
            s.enqueue(Frame { addr: i, len: 60 }, &arp, 0);
            assert!(s.counters().balanced());
        }
        assert_eq!(s.enqueue(Frame { addr: 9, len: 3 }, &[1, 2, 3], 0), None);
        let c = s.counters();
        assert!(c.balanced(), "{c:?}");
        assert_eq!(c.dropped[DropReason::QueueLimit.index()], 3);
        assert_eq!(c.dropped[DropReason::Malformed.index()], 1);
        assert_eq!(c.queued, 2);
        assert!(s.dequeue(0).is_some());
        s.flush();
        let c = s.counters();
        assert!(c.balanced(), "{c:?}");
        assert_eq!(c.queued, 0);
        assert_eq!(s.take_drops().count(), 5);
    }

    /// A UDP/IPv4 frame from source port `sport` (so batches mix flows).
    fn eth_udp(sport: u16) -> Vec<u8> {
        let ip = frame::Ipv4 {
            dst: [198, 18, 0, 2],
            ..frame::Ipv4::default()
        };
        frame::ipv4_frame(&ip, &frame::udp(sport, 9, &[0; 18]))
    }

    #[test]
    fn batches_behave_like_one_call_per_packet() {
        for policy in [MalformedPolicy::Drop, MalformedPolicy::Default] {
            let mut sp = spec(policy);
            sp.htb.classes[0].qdisc = Some(QdiscParams::Fifo(FifoLimit::Packets(5)));
            let mut one = Shaper::new(&sp, 0).unwrap();
            let mut many = Shaper::new(&sp, 0).unwrap();
            let frames: Vec<Vec<u8>> = (0..9)
                .map(|i| {
                    if i % 4 == 3 {
                        vec![0u8; 5]
                    } else {
                        eth_udp(1000 + i)
                    }
                })
                .collect();
            let handles: Vec<Frame> = frames
                .iter()
                .enumerate()
                .map(|(i, f)| Frame {
                    addr: i as u64 * 4096,
                    len: f.len() as u32,
                })
                .collect();
            for (h, f) in handles.iter().zip(&frames) {
                one.enqueue(*h, f, 10);
            }
            many.enqueue_batch(
                handles.iter().copied().zip(frames.iter().map(|f| &f[..])),
                10,
            );
            assert_eq!(one.counters(), many.counters());
            assert!(many.counters().balanced());
            let mut a: Vec<_> = one.take_drops().collect();
            let mut b: Vec<_> = many.take_drops().collect();
            a.sort_by_key(|d| d.packet.addr);
            b.sort_by_key(|d| d.packet.addr);
            assert_eq!(a, b);

            // Dequeue at a time when the bucket allows a few packets: the
            // batch takes exactly what single calls take, in order.
            let mut singles = Vec::new();
            let now = 30_000_000;
            while singles.len() < 3 {
                match one.dequeue(now) {
                    Some(p) => singles.push(p),
                    None => break,
                }
            }
            let mut batch = Vec::new();
            let n = many.dequeue_batch(now, &mut batch, 3);
            assert_eq!(n, batch.len());
            assert_eq!(singles, batch);
            assert_eq!(one.counters(), many.counters());
            assert!(many.counters().balanced());
        }
    }

    #[test]
    fn malformed_goes_to_default_when_asked() {
        let mut s = Shaper::new(&spec(MalformedPolicy::Default), 0).unwrap();
        assert_eq!(s.enqueue(Frame { addr: 1, len: 3 }, &[0; 3], 0), Some(0));
        assert_eq!(s.counters().malformed_seen, 1);
        assert_eq!(s.dequeue(0).map(|p| p.addr), Some(1));
    }

    #[test]
    fn bad_default_or_filter_target_is_refused() {
        let mut sp = spec(MalformedPolicy::Default);
        sp.default_class = 3;
        assert!(matches!(
            Shaper::new(&sp, 0),
            Err(ShaperError::DefaultNotLeaf { .. })
        ));
        let mut sp = spec(MalformedPolicy::Default);
        sp.filters.push(FilterSpec {
            target: 7,
            ..FilterSpec::default()
        });
        assert!(matches!(
            Shaper::new(&sp, 0),
            Err(ShaperError::FilterTargetNotLeaf { .. })
        ));
    }

    fn udp_with_tos(sport: u16, dport: u16, tos: u8) -> Vec<u8> {
        let ip = frame::Ipv4 {
            tos,
            dst: [198, 18, 0, 2],
            ..frame::Ipv4::default()
        };
        frame::ipv4_frame(&ip, &frame::udp(sport, dport, &[0; 18]))
    }

    /// Leaf 1 is the default, leaf 2 the app's class. An app's flows go
    /// to its class with its remark; other flows get their class's remark;
    /// a washed tree's filters see DSCP 0 and its frames leave with it.
    #[test]
    fn apps_override_the_class_and_remarks_follow_app_class_and_wash() {
        use crate::app::{AppSpec, RuleSpec};
        let mut sp = two_leaves(10, 1);
        sp.apps.apps = vec![AppSpec {
            name: "voice".into(),
            class: 2,
            remark: Some(Remark::Set(46)),
        }];
        sp.apps.rules = vec![RuleSpec {
            app: 0,
            protocol: Some(17),
            ports: vec![(5060, 5061)],
            ..RuleSpec::default()
        }];
        sp.class_remark = vec![None, Some(Remark::IfUnmarked(10))];
        // A filter on EF to leaf 2: with wash, it never matches.
        sp.filters = vec![FilterSpec {
            tos: Some((46 << 2, 0xfc)),
            target: 2,
            ..FilterSpec::default()
        }];
        let mut s = Shaper::new(&sp, 0).unwrap();
        assert_eq!(
            s.enqueue(Frame { addr: 1, len: 60 }, &udp_with_tos(5060, 9, 0), 0),
            Some(2)
        );
        assert_eq!(
            s.enqueue(Frame { addr: 2, len: 60 }, &udp_with_tos(7, 9, 0), 0),
            Some(1)
        );
        // Unwashed, the EF filter takes a marked frame to leaf 2 (no app,
        // leaf 2 has no remark).
        assert_eq!(
            s.enqueue(Frame { addr: 3, len: 60 }, &udp_with_tos(8, 9, 46 << 2), 0),
            Some(2)
        );
        let mut out = Vec::new();
        s.dequeue_batch(1_000_000_000, &mut out, 10);
        let remarks: Vec<(u64, Option<Remark>, u16)> =
            out.iter().map(|p| (p.addr, p.remark(), p.app)).collect();
        assert!(
            remarks.contains(&(1, Some(Remark::Set(46)), 0)),
            "{remarks:?}"
        );
        assert!(remarks.contains(&(2, Some(Remark::IfUnmarked(10)), crate::flow::NONE)));
        assert!(remarks.contains(&(3, None, crate::flow::NONE)));
        assert_eq!(s.apps().unwrap().counters()[0].packets, 1);

        sp.wash = true;
        let mut s = Shaper::new(&sp, 0).unwrap();
        assert_eq!(
            s.enqueue(Frame { addr: 3, len: 60 }, &udp_with_tos(8, 9, 46 << 2), 0),
            Some(1)
        );
        assert_eq!(
            s.enqueue(
                Frame { addr: 4, len: 60 },
                &udp_with_tos(5060, 9, 46 << 2),
                0
            ),
            Some(2)
        );
        let mut out = Vec::new();
        s.dequeue_batch(1_000_000_000, &mut out, 10);
        let remarks: Vec<(u64, Option<Remark>)> =
            out.iter().map(|p| (p.addr, p.remark())).collect();
        // Washed, the frame counts as unmarked: leaf 1's "if unmarked"
        // sets its DSCP.
        assert!(remarks.contains(&(3, Some(Remark::Set(10)))), "{remarks:?}");
        assert!(remarks.contains(&(4, Some(Remark::Set(46)))));
    }

    #[test]
    fn a_packet_is_32_bytes() {
        assert_eq!(std::mem::size_of::<Packet>(), 32);
    }

    /// A reload keeps what the apps engine decided.
    #[test]
    fn migration_keeps_the_flows_apps() {
        use crate::app::{AppSpec, RuleSpec};
        let mut sp = two_leaves(10, 1);
        sp.apps.apps = vec![AppSpec {
            name: "voice".into(),
            class: 2,
            remark: None,
        }];
        sp.apps.rules = vec![RuleSpec {
            app: 0,
            ports: vec![(5060, 5060)],
            ..RuleSpec::default()
        }];
        let mut old = Shaper::new(&sp, 0).unwrap();
        old.enqueue(Frame { addr: 1, len: 60 }, &udp_with_tos(5060, 9, 0), 0);
        let new = old.migrate_into(Shaper::new(&sp, 0).unwrap(), &[None, Some(1), Some(2)], 10);
        let flows: Vec<_> = new
            .apps()
            .unwrap()
            .flows()
            .map(|f| (f.app, f.packets))
            .collect();
        assert_eq!(flows, vec![(0, 1)]);
    }

    /// With apps, a batch (located, prefetched and filtered ahead in
    /// chunks) gives exactly what one call per frame gives: classes, apps,
    /// remarks and counters, over more frames than one chunk.
    #[test]
    fn batches_with_apps_behave_like_one_call_per_packet() {
        use crate::app::{AppSpec, RuleSpec};
        let mut sp = two_leaves(100, 1);
        sp.apps.apps = vec![AppSpec {
            name: "voice".into(),
            class: 2,
            remark: Some(Remark::Set(46)),
        }];
        sp.apps.rules = vec![RuleSpec {
            app: 0,
            ports: vec![(5060, 5061)],
            ..RuleSpec::default()
        }];
        sp.class_remark = vec![None, Some(Remark::Set(10))];
        let frames: Vec<Vec<u8>> = (0..90u16)
            .map(|i| match i % 5 {
                0 => udp_with_tos(5060, 9, 0),
                1 => udp_with_tos(7 + i, 5061, 46 << 2),
                2 => vec![0u8; 5],
                _ => udp_with_tos(1000 + i, 9, 0),
            })
            .collect();
        let mut one = Shaper::new(&sp, 0).unwrap();
        let mut many = Shaper::new(&sp, 0).unwrap();
        for (i, f) in frames.iter().enumerate() {
            one.enqueue(
                Frame {
                    addr: i as u64,
                    len: f.len() as u32,
                },
                f,
                0,
            );
        }
        many.enqueue_batch(
            frames.iter().enumerate().map(|(i, f)| {
                (
                    Frame {
                        addr: i as u64,
                        len: f.len() as u32,
                    },
                    f.as_slice(),
                )
            }),
            0,
        );
        assert_eq!(one.counters(), many.counters());
        assert_eq!(
            one.apps().unwrap().counters(),
            many.apps().unwrap().counters()
        );
        let drain = |s: &mut Shaper| {
            let mut out = Vec::new();
            s.dequeue_batch(1_000_000_000, &mut out, 1000);
            let mut v: Vec<(u64, u16, u8)> =
                out.iter().map(|p| (p.addr, p.app, p.remark)).collect();
            v.sort();
            v
        };
        assert_eq!(drain(&mut one), drain(&mut many));
    }
}
