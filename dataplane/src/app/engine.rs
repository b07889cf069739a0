//! The apps engine: gives each flow an app, per packet, in the worker
//! (issue 12). `docs/apps.md` is the operator's view; this is how it works.
//!
//! # Per packet
//!
//! 1. The flow table counts the packet ([`FlowTable::packet`]): size,
//!    timing, bulk window. One lookup, no allocation.
//! 2. A **decided** flow keeps its app. Only the *moving* rules (those with
//!    a `bulk` or `long_lived` matcher, whose signals need time) that come
//!    before the flow's deciding rule are checked, and one that holds moves
//!    the flow; when it stops holding, the flow goes back to the rule that
//!    had decided it. This is the one case where a flow changes class
//!    mid-flight.
//! 3. An **undecided** flow: the name parsers look at its payload while
//!    they may still find a name (the first `inspect_packets` packets), then
//!    the rules are asked in order. Each answers yes, no, or wait (a
//!    matcher whose signal is not known yet: a name not seen yet, fewer
//!    packets than `min_packets`). The first yes decides, provided no rule
//!    before it waits: a rule waiting for a name keeps a later port rule
//!    from deciding on the SYN. When every rule has said no, the flow is
//!    decided as none of them ([`Decided::Nothing`]) and stays where the
//!    filters put it.
//!
//! # Both directions
//!
//! A connection's two directions are shaped by different trees, often on
//! different workers, and only one of them sees the name (the client's
//! ClientHello, or request). Every decision (and every move) is queued as a
//! [`Decision`] for the other direction; the worker carries it over the
//! hand-over lanes and the other tree's engine [`Apps::learn`]s it. The
//! trees' apps are matched by name: a decision carries a hash of its app's
//! name ([`app_id`]), so the trees need not list their apps in the same
//! order and either can be reloaded alone. A learned
//! decision takes the rank of the app's first rule in the receiving tree,
//! and replaces a decision of its own only when that rank is better, so the
//! two directions agree whichever packet arrives first.

use crate::flow::{
    ns_to_ticks, Decided, Ends, Flow, FlowCounters, FlowKey, FlowTable, Rates, Slot, NONE,
};
use crate::parse::{Fragment, Headers, L4};
use crate::remark::Remark;

use super::http::{self, Request};
use super::quic::{self, CryptoBuf};
use super::spec::{AppSpec, AppsSpec, Behaviour, RuleSpec};
use super::tls::{self, ClientHelloBuf, Hello};

/// `Flow::inspect` bits: the parsers that may still find a name.
const MAY_TLS: u8 = 1;
const MAY_HTTP: u8 = 2;
const MAY_QUIC: u8 = 4;
const MAY_ANY: u8 = MAY_TLS | MAY_HTTP | MAY_QUIC;
/// Which parser found the flow's name.
const NAMED_TLS: u8 = 0x10;
const NAMED_QUIC: u8 = 0x20;
const NAMED_HTTP: u8 = 0x40;

/// A ClientHello of up to this many handshake bytes is reassembled: today's
/// post-quantum hellos take about 1,800.
const TLS_FLIGHT: usize = 2048;
/// CRYPTO bytes of a QUIC client's first flight.
const QUIC_FLIGHT: usize = 4096;
/// Decrypted Initial payloads are written here (jumbo frames included).
const SCRATCH: usize = 9216;
/// [`Flow::base`] of a flow a moving rule took from none: it goes back to
/// none.
const NO_RULE: u16 = NONE - 1;
/// One set of the flow table is swept for idle flows every `SWEEP_EVERY`
/// packets: a set costs a tag line and the first line of each flow held,
/// so this is under 0.15 misses a packet. Sweeping is not what keeps the
/// table usable (a new flow takes an idle way where it lands); it returns
/// reassembly slots and keeps `live` honest, so slow is fine: 65,536 flows
/// are swept in 524,288 packets.
const SWEEP_EVERY: u64 = 64;

/// What one direction's engine decided about a flow, for the other
/// direction's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub key: FlowKey,
    /// The app's [`app_id`], or 0 (the flow went back to none).
    pub app: u64,
    pub how: Decided,
}

/// An app's identity between trees: FNV-1a of its name, never 0. Two
/// names with one id (a 64-bit collision) would be taken for one app.
pub fn app_id(name: &str) -> u64 {
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    h.max(1)
}

/// Where a packet's flow lives in the table (its two sets and tag), found
/// before the table is touched (for batches). The endpoints are read from
/// the headers again when the table is: they cost less to read twice than
/// to carry through a batch's stages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Located {
    slot: Slot,
}

/// Per app, since the engine was built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AppCounters {
    /// Flows that got the app (a flow moved there and back counts each
    /// time it arrives).
    pub flows: u64,
    /// Packets and bytes of its flows, as they entered the tree.
    pub packets: u64,
    pub bytes: u64,
    /// Its packets the tree dropped.
    pub drops: u64,
}

/// The engine's own counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineCounters {
    /// Packets of flows with no app yet (undecided, or decided as none).
    pub unmatched_packets: u64,
    /// Decisions, by how they were made ([`Decided`] as index).
    pub decided: [u64; 8],
    /// Flows a moving rule (bulk, long-lived) moved, and moved back.
    pub moved: u64,
    pub returned: u64,
    /// Decisions of the other direction applied, and ignored (no app of
    /// that name here, or a better decision of our own).
    pub learned: u64,
    pub learn_ignored: u64,
    /// Server names read (TLS, QUIC, HTTP).
    pub names: u64,
    /// First flights that needed reassembly when every slot was taken: the
    /// flow was decided without its name.
    pub inspect_full: u64,
}

/// A reassembly slot.
#[expect(
    clippy::large_enum_variant,
    reason = "the slots are allocated once at build; boxing a flight would allocate per flow"
)]
enum Flight {
    Free,
    Tls {
        buf: ClientHelloBuf<TLS_FLIGHT>,
        /// TCP sequence number the next segment must start at; anything
        /// else (a retransmission, a segment out of order) is skipped.
        next_seq: u32,
    },
    Quic(CryptoBuf<QUIC_FLIGHT>),
}

/// A rule, ready to answer.
struct Rule {
    spec: RuleSpec,
    /// Has a `bulk` or `long_lived` matcher: it can move decided flows.
    moving: bool,
    /// Has `sni` or `host`: it answers once the name is known.
    named: bool,
    /// How a flow it decides was decided (for a named rule, the parser
    /// that read the name says).
    how: Decided,
}

/// One tree's apps: the flow table and the rules, owned by the tree's
/// worker.
pub struct Apps {
    apps: Vec<AppSpec>,
    rules: Vec<Rule>,
    /// Indexes of the moving rules, in order.
    moving: Vec<u16>,
    /// Per app, the index of its first rule (the rank a learned decision
    /// takes).
    first_rule: Vec<u16>,
    /// Per app, its [`app_id`].
    ids: Vec<u64>,
    table: FlowTable,
    inspect_packets: u64,
    flights: Vec<Flight>,
    free: Vec<u16>,
    scratch: Box<[u8]>,
    /// Used when no slot is free: one Initial's CRYPTO frames.
    spare: Box<CryptoBuf<QUIC_FLIGHT>>,
    counters: Vec<AppCounters>,
    engine: EngineCounters,
    decisions: Vec<Decision>,
    since_sweep: u64,
}

/// A rule's answer for a flow now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    Yes,
    No,
    Wait,
}

/// Why an apps spec cannot be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppsError {
    /// A rule names an app that does not exist.
    NoSuchApp { rule: usize, app: u16 },
    /// More apps or rules than a flow's u16 fields can name.
    TooMany { apps: usize, rules: usize },
    /// A rule with a name matcher also has behaviour matchers.
    NameWithBehaviour { rule: usize },
    /// A rule with no matcher at all.
    Empty { rule: usize },
    /// An empty or inverted range.
    BadRange { rule: usize },
    /// `bulk_window` is 0.
    NoWindow,
}

impl std::fmt::Display for AppsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppsError::NoSuchApp { rule, app } => write!(f, "rule {rule}: no app #{app}"),
            AppsError::TooMany { apps, rules } => write!(
                f,
                "{apps} apps and {rules} rules: at most {} of each",
                NO_RULE - 1
            ),
            AppsError::NameWithBehaviour { rule } => write!(
                f,
                "rule {rule}: a name matcher (sni, host) cannot be combined with behaviour matchers"
            ),
            AppsError::Empty { rule } => write!(f, "rule {rule} has no matcher"),
            AppsError::BadRange { rule } => write!(f, "rule {rule}: an empty range"),
            AppsError::NoWindow => write!(f, "the bulk window must be longer than 0"),
        }
    }
}

impl std::error::Error for AppsError {}

impl Apps {
    /// Build the engine: the flow table and the reassembly slots are
    /// allocated here, once.
    pub fn new(spec: &AppsSpec) -> Result<Apps, AppsError> {
        let (apps, rules) = (spec.apps.len(), spec.rules.len());
        if apps >= usize::from(NO_RULE) || rules >= usize::from(NO_RULE) {
            return Err(AppsError::TooMany { apps, rules });
        }
        if spec.bulk_window == 0 {
            return Err(AppsError::NoWindow);
        }
        let mut compiled = Vec::with_capacity(rules);
        for (i, r) in spec.rules.iter().enumerate() {
            if usize::from(r.app) >= apps {
                return Err(AppsError::NoSuchApp {
                    rule: i,
                    app: r.app,
                });
            }
            let named = !r.sni.is_empty() || !r.host.is_empty();
            let b = &r.behaviour;
            if named && b.is_some() {
                return Err(AppsError::NameWithBehaviour { rule: i });
            }
            if !named && !b.is_some() && r.protocol.is_none() && r.ports.is_empty() {
                return Err(AppsError::Empty { rule: i });
            }
            let bad_range = r.ports.iter().any(|&(lo, hi)| lo > hi)
                || b.avg_size.is_some_and(|(lo, hi)| lo > hi);
            if bad_range {
                return Err(AppsError::BadRange { rule: i });
            }
            compiled.push(Rule {
                spec: r.clone(),
                moving: b.bulk.is_some() || b.long_lived.is_some(),
                named,
                how: if b.is_some() {
                    Decided::Behaviour
                } else {
                    Decided::Port
                },
            });
        }
        let moving = (0..rules as u16)
            .filter(|&i| compiled[usize::from(i)].moving)
            .collect();
        let first_rule = (0..apps as u16)
            .map(|a| {
                compiled
                    .iter()
                    .position(|r| r.spec.app == a)
                    .map_or(NONE, |p| p as u16)
            })
            .collect();
        let slots = spec.inspect_slots.min(u32::from(NONE)) as usize;
        Ok(Apps {
            apps: spec.apps.clone(),
            rules: compiled,
            moving,
            first_rule,
            ids: spec.apps.iter().map(|a| app_id(&a.name)).collect(),
            table: FlowTable::new(spec.flows as usize, spec.idle_timeout)
                .with_window(spec.bulk_window),
            inspect_packets: u64::from(spec.inspect_packets),
            flights: (0..slots).map(|_| Flight::Free).collect(),
            free: (0..slots as u16).rev().collect(),
            scratch: vec![0; SCRATCH].into_boxed_slice(),
            spare: Box::new(CryptoBuf::new()),
            counters: vec![AppCounters::default(); apps],
            engine: EngineCounters::default(),
            decisions: Vec::with_capacity(256),
            since_sweep: 0,
        })
    }

    pub fn apps(&self) -> &[AppSpec] {
        &self.apps
    }

    /// The app called `name`.
    pub fn app_index(&self, name: &str) -> Option<u16> {
        self.apps
            .iter()
            .position(|a| a.name == name)
            .map(|p| p as u16)
    }

    pub fn counters(&self) -> &[AppCounters] {
        &self.counters
    }

    pub fn engine_counters(&self) -> EngineCounters {
        self.engine
    }

    pub fn flow_counters(&self) -> FlowCounters {
        self.table.counters()
    }

    /// The table's flows, for `weir show flows` (a whole-table walk: for
    /// the control path's snapshots, not per packet).
    pub fn flows(&self) -> impl Iterator<Item = &Flow> {
        self.table.iter()
    }

    /// Flows the table can hold.
    pub fn capacity(&self) -> usize {
        self.table.capacity()
    }

    /// Sets of the flow table, for [`Apps::flows_in`].
    pub fn sets(&self) -> usize {
        self.table.sets()
    }

    /// The flows of table sets `sets` (clamped): a walk of the whole table
    /// in bounded steps, so the worker never stalls on one.
    pub fn flows_in(&self, sets: std::ops::Range<usize>) -> impl Iterator<Item = &Flow> {
        self.table.iter_sets(sets)
    }

    /// The class of app `app` (a leaf index).
    pub fn class_of(&self, app: u16) -> Option<u32> {
        self.apps.get(usize::from(app)).map(|a| a.class)
    }

    /// The remark of app `app`.
    pub fn remark_of(&self, app: u16) -> Option<Remark> {
        self.apps.get(usize::from(app)).and_then(|a| a.remark)
    }

    /// Decisions made since the last call, for the other direction.
    pub fn take_decisions(&mut self) -> std::vec::Drain<'_, Decision> {
        self.decisions.drain(..)
    }

    /// Count a drop of a packet of `app`.
    pub fn count_drop(&mut self, app: u16) {
        if let Some(c) = self.counters.get_mut(usize::from(app)) {
            c.drops += 1;
        }
    }

    /// One packet: its parsed headers and bytes at `now`. Returns the app
    /// of its flow, or [`NONE`].
    pub fn packet(&mut self, h: &Headers, bytes: &[u8], now: u64) -> u16 {
        let located = self.locate(h);
        self.packet_at(h, bytes, located, now)
    }

    /// Where a packet's flow lives in the table (None: not a flow, e.g.
    /// ARP): the first stage of a batched lookup.
    #[inline]
    pub fn locate(&self, h: &Headers) -> Option<Located> {
        let ends = Ends::of(h)?;
        Some(Located {
            slot: self.table.locate(&ends),
        })
    }

    /// Second stage: request the lines of the located flow's sets' tags.
    #[inline]
    pub fn prefetch(&self, l: Located) {
        self.table.prefetch(l.slot);
    }

    /// Third stage, once the tags have arrived: request the flow's lines.
    #[inline]
    pub fn prefetch_flow(&self, l: Located) {
        self.table.prefetch_flow(l.slot);
    }

    /// [`Apps::packet`] with the flow located ([`Apps::locate`]).
    #[inline]
    pub fn packet_at(
        &mut self,
        h: &Headers,
        bytes: &[u8],
        located: Option<Located>,
        now: u64,
    ) -> u16 {
        self.since_sweep += 1;
        if self.since_sweep >= SWEEP_EVERY {
            self.since_sweep = 0;
            self.sweep(now);
        }
        let (Some(Located { slot }), Some(ends)) = (located, Ends::of(h)) else {
            self.engine.unmatched_packets += 1;
            return NONE;
        };
        let len = bytes.len() as u32;
        let Apps {
            table,
            flights,
            free,
            ..
        } = self;
        let seen = table.packet_of(slot, &ends, len, now);
        if let Some((old, _)) = seen.evicted {
            release(flights, free, old.slot);
        }
        let is_new = seen.new;
        let closed = seen.window;
        let flow: *mut Flow = seen.flow;
        // SAFETY: `flow` points into `self.table.flows`, which is allocated
        // once and never resized; nothing below touches the table (only
        // the rules, the slots and the counters, other fields of `self`),
        // so the flow stays valid and unaliased for this call.
        let flow = unsafe { &mut *flow };
        if is_new {
            flow.inspect = match h.ip.map(|ip| ip.protocol) {
                Some(6) => MAY_TLS | MAY_HTTP,
                Some(17) => MAY_QUIC,
                _ => 0,
            };
        }
        if let Some(rates) = closed {
            self.bulk_window(flow, rates);
        }
        let app = match flow.decided {
            Decided::Undecided => self.undecided(flow, h, bytes),
            _ => {
                self.recheck_moving(flow);
                flow.app
            }
        };
        match self.counters.get_mut(usize::from(app)) {
            Some(c) => {
                c.packets += 1;
                c.bytes += u64::from(len);
            }
            None => self.engine.unmatched_packets += 1,
        }
        app
    }

    /// A bulk window closed: the first bulk rule whose trigger its rates
    /// reach makes the flow bulk (by that rule) for the rule's hold from
    /// now; none reached, an earlier verdict runs out its hold.
    fn bulk_window(&self, flow: &mut Flow, r: Rates) {
        for &i in &self.moving {
            let Some(b) = self.rules[usize::from(i)].spec.behaviour.bulk else {
                continue;
            };
            let over = b.pps.is_some_and(|t| r.pps >= t)
                || b.bytes_per_sec.is_some_and(|t| u64::from(r.bps) >= t);
            if over {
                flow.bulk_rule = i;
                flow.bulk_until = r.at.saturating_add(ns_to_ticks(b.hold));
                return;
            }
        }
    }

    /// A flow without a decision: look for its name, then ask the rules.
    fn undecided(&mut self, flow: &mut Flow, h: &Headers, bytes: &[u8]) -> u16 {
        if flow.inspect & MAY_ANY != 0 {
            self.inspect(flow, h, bytes);
        }
        for i in 0..self.rules.len() {
            match self.answer(i, flow) {
                Answer::Yes => {
                    let how = self.how(i, flow);
                    self.decide(flow, i as u16, how);
                    if self.rules[i].moving {
                        // Decided by a moving rule outright: when it stops
                        // holding, the flow has no app.
                        flow.base = NO_RULE;
                    }
                    return flow.app;
                }
                Answer::No => {}
                Answer::Wait => return NONE,
            }
        }
        flow.decided = Decided::Nothing;
        flow.rule = NONE;
        flow.app = NONE;
        self.stop_inspecting(flow);
        self.engine.decided[Decided::Nothing as usize] += 1;
        NONE
    }

    /// How rule `i` decided `flow`.
    fn how(&self, i: usize, flow: &Flow) -> Decided {
        if !self.rules[i].named {
            return self.rules[i].how;
        }
        if flow.inspect & NAMED_TLS != 0 {
            Decided::TlsSni
        } else if flow.inspect & NAMED_QUIC != 0 {
            Decided::QuicSni
        } else {
            Decided::HttpHost
        }
    }

    /// Give `flow` rule `rule`'s app, and tell the other direction.
    fn decide(&mut self, flow: &mut Flow, rule: u16, how: Decided) {
        let app = self.rules[usize::from(rule)].spec.app;
        self.stop_inspecting(flow);
        self.engine.decided[how as usize] += 1;
        self.assign(flow, rule, app, how);
    }

    /// Put `flow` in `app` by `rule`, count the app's flow and queue the
    /// decision for the other direction.
    fn assign(&mut self, flow: &mut Flow, rule: u16, app: u16, how: Decided) {
        flow.rule = rule;
        flow.app = app;
        flow.decided = how;
        if let Some(c) = self.counters.get_mut(usize::from(app)) {
            c.flows += 1;
        }
        self.decisions.push(Decision {
            key: flow.key,
            app: self.ids.get(usize::from(app)).copied().unwrap_or(0),
            how,
        });
    }

    /// A decided flow: has the moving rule that holds it stopped holding
    /// (move it back), or does a moving rule ranked before its own hold
    /// now (move it)?
    #[inline]
    fn recheck_moving(&mut self, flow: &mut Flow) {
        if self.moving.is_empty() {
            return;
        }
        if flow.base != NONE {
            if self.answer(usize::from(flow.rule), flow) != Answer::Yes {
                self.move_back(flow);
            }
            return;
        }
        for k in 0..self.moving.len() {
            let i = self.moving[k];
            if i >= flow.rule {
                break;
            }
            if self.answer(usize::from(i), flow) == Answer::Yes {
                let from = if flow.decided == Decided::Nothing {
                    NO_RULE
                } else {
                    flow.rule
                };
                self.decide(flow, i, Decided::Behaviour);
                flow.base = from;
                self.engine.moved += 1;
                return;
            }
        }
    }

    /// The moving rule that holds `flow` no longer does: back to the rule
    /// that had decided it (or to none).
    fn move_back(&mut self, flow: &mut Flow) {
        let base = flow.base;
        flow.base = NONE;
        self.engine.returned += 1;
        let (rule, app, how) = match self.rules.get(usize::from(base)) {
            Some(r) => (base, r.spec.app, self.how(usize::from(base), flow)),
            None => (NONE, NONE, Decided::Nothing),
        };
        self.assign(flow, rule, app, how);
    }

    /// Rule `i`'s answer for `flow` now.
    #[inline]
    fn answer(&self, i: usize, flow: &Flow) -> Answer {
        let r = &self.rules[i];
        let s = &r.spec;
        if !protocol_and_ports(s, &flow.key) {
            return Answer::No;
        }
        if r.named {
            return if flow.inspect & MAY_ANY != 0 {
                Answer::Wait
            } else if flow.rule == i as u16 {
                Answer::Yes
            } else {
                Answer::No
            };
        }
        behaviour(i as u16, &s.behaviour, flow)
    }

    /// Run the name parsers on `flow`'s packet; when one finds a name,
    /// note the first named rule it satisfies.
    fn inspect(&mut self, flow: &mut Flow, h: &Headers, bytes: &[u8]) {
        if flow.packets > self.inspect_packets {
            self.stop_inspecting(flow);
            return;
        }
        let Some((payload, seq)) = payload(h, bytes) else {
            return;
        };
        if payload.is_empty() {
            return;
        }
        let Apps {
            flights,
            free,
            scratch,
            spare,
            rules,
            engine,
            ..
        } = self;
        let found: Option<(u8, &str)> = if flow.key.protocol == 6 {
            tcp_name(flow, flights, free, payload, seq, engine)
        } else {
            quic_name(flow, flights, free, scratch, spare, payload)
        };
        let Some((kind, name)) = found else {
            if flow.inspect & MAY_ANY == 0 {
                let slot = flow.slot;
                flow.slot = NONE;
                release(flights, free, slot);
            }
            return;
        };
        engine.names += 1;
        flow.rule = first_named(rules, flow, kind, name.as_bytes());
        let slot = flow.slot;
        flow.slot = NONE;
        flow.inspect = kind;
        release(flights, free, slot);
    }

    /// No more names to look for: the slot goes back.
    fn stop_inspecting(&mut self, flow: &mut Flow) {
        flow.inspect &= !MAY_ANY;
        let slot = flow.slot;
        flow.slot = NONE;
        release(&mut self.flights, &mut self.free, slot);
    }

    /// What the other direction decided about a flow.
    pub fn learn(&mut self, d: Decision, now: u64) {
        let ours = match self.ids.iter().position(|&id| id == d.app) {
            Some(a) => a as u16,
            None if d.app == 0 => NONE,
            None => {
                // An app the other tree has and this one has not.
                self.engine.learn_ignored += 1;
                return;
            }
        };
        let rank = self
            .first_rule
            .get(usize::from(ours))
            .copied()
            .unwrap_or(NONE);
        let Apps {
            table,
            flights,
            free,
            ..
        } = self;
        let seen = table.entry(d.key, now);
        if let Some((old, _)) = seen.evicted {
            release(flights, free, old.slot);
        }
        let flow: *mut Flow = seen.flow;
        // SAFETY: as in `packet`: the table's storage never moves, and
        // only other fields of `self` are touched below.
        let flow = unsafe { &mut *flow };
        let take = match flow.decided {
            Decided::Undecided | Decided::Nothing | Decided::Peer => true,
            _ => rank < flow.rule,
        };
        if !take {
            self.engine.learn_ignored += 1;
            return;
        }
        self.engine.learned += 1;
        if ours != NONE && flow.app != ours {
            self.counters[usize::from(ours)].flows += 1;
        }
        flow.app = ours;
        flow.rule = rank;
        flow.base = NONE;
        flow.decided = if ours == NONE {
            Decided::Nothing
        } else {
            Decided::Peer
        };
        self.stop_inspecting(flow);
    }

    /// Take over the flows of `old`, the engine of this tree before a
    /// reload, so a reload does not forget what was decided: apps are
    /// matched by name (a flow of an app that is gone has none), a decided
    /// flow ranks as its app's first rule, and first flights under
    /// inspection start over. One pass over `old`'s table.
    pub fn adopt(&mut self, old: &Apps, now: u64) {
        for f in old.table.iter() {
            let app = old
                .apps
                .get(usize::from(f.app))
                .and_then(|a| self.app_index(&a.name))
                .unwrap_or(NONE);
            let mut copy = *f;
            copy.app = app;
            copy.base = NONE;
            copy.slot = NONE;
            copy.inspect &= !MAY_ANY;
            match (f.decided, app) {
                (Decided::Undecided, _) => copy.rule = NONE,
                (_, NONE) => {
                    copy.rule = NONE;
                    copy.decided = Decided::Nothing;
                }
                _ => copy.rule = self.first_rule[usize::from(app)],
            }
            if let Some(gone) = self.table.adopt(&copy, now) {
                release(&mut self.flights, &mut self.free, gone.slot);
            }
        }
    }

    /// Forget flows idle past the timeout, a few sets at a time.
    fn sweep(&mut self, now: u64) {
        let Apps {
            table,
            flights,
            free,
            ..
        } = self;
        table.expire(now, 1, |f| release(flights, free, f.slot));
    }
}

/// The statistics-based answer of a behaviour matcher.
fn behaviour(rule: u16, b: &Behaviour, flow: &Flow) -> Answer {
    let mut wait = false;
    let known = flow.packets >= u64::from(b.min_packets);
    let mut check = |ok: Option<bool>| -> bool {
        match ok {
            Some(true) => true,
            Some(false) => false,
            None => {
                wait = true;
                true
            }
        }
    };
    if let Some((lo, hi)) = b.avg_size {
        if !check(known.then(|| (lo..=hi).contains(&flow.avg_size()))) {
            return Answer::No;
        }
    }
    if let Some(max) = b.iat_variance_below {
        if !check(known.then(|| flow.iat_var_ns2() < max)) {
            return Answer::No;
        }
    }
    if let Some(want) = b.regular {
        let got = if known { flow.regular() } else { None };
        if !check(got.map(|r| r == want)) {
            return Answer::No;
        }
    }
    if let Some(want) = b.bursty {
        let got = if known { flow.bursty() } else { None };
        if !check(got.map(|r| r == want)) {
            return Answer::No;
        }
    }
    // Signals that take time never wait: they say no until they hold, and
    // a rule with them moves flows when they do.
    // Bulk: this rule's trigger was reached at a window's close within
    // its hold (`Apps::bulk_window`).
    if b.bulk.is_some() {
        let bulk = flow.bulk_rule == rule && flow.ticks_at(flow.last_seen) < flow.bulk_until;
        if !bulk {
            return Answer::No;
        }
    }
    if let Some(min) = b.long_lived {
        if flow.age() < min {
            return Answer::No;
        }
    }
    if wait {
        Answer::Wait
    } else {
        Answer::Yes
    }
}

/// The first named rule that `name` (found by parser `kind`) satisfies,
/// with its protocol and ports; [`NONE`] if none does.
fn first_named(rules: &[Rule], flow: &Flow, kind: u8, name: &[u8]) -> u16 {
    let sni = kind & (NAMED_TLS | NAMED_QUIC) != 0;
    rules
        .iter()
        .position(|r| {
            let s = &r.spec;
            let globs = if sni { &s.sni } else { &s.host };
            r.named && protocol_and_ports(s, &flow.key) && globs.iter().any(|g| g.matches(name))
        })
        .map_or(NONE, |p| p as u16)
}

/// Whether a rule's protocol and ports (either endpoint's) allow `key`.
#[inline]
fn protocol_and_ports(s: &RuleSpec, key: &FlowKey) -> bool {
    let hit = |p: u16| s.ports.iter().any(|&(lo, hi)| (lo..=hi).contains(&p));
    s.protocol.is_none_or(|p| p == key.protocol)
        && (s.ports.is_empty() || hit(key.lo_port) || hit(key.hi_port))
}

/// A TCP segment's payload: TLS (reassembled in a slot when the hello is
/// split) and HTTP.
fn tcp_name<'s>(
    flow: &mut Flow,
    flights: &'s mut [Flight],
    free: &mut Vec<u16>,
    payload: &'s [u8],
    seq: u32,
    engine: &mut EngineCounters,
) -> Option<(u8, &'s str)> {
    let held = matches!(
        flights.get(usize::from(flow.slot)),
        Some(Flight::Tls { .. })
    );
    if held {
        let Some(Flight::Tls { buf, next_seq }) = flights.get_mut(usize::from(flow.slot)) else {
            return None;
        };
        if seq != *next_seq {
            return None;
        }
        *next_seq = seq.wrapping_add(payload.len() as u32);
        return match buf.push(payload) {
            Hello::Sni(n) => Some((NAMED_TLS, n)),
            Hello::NeedMore { .. } => None,
            _ => {
                flow.inspect &= !MAY_TLS;
                None
            }
        };
    }
    if flow.inspect & MAY_HTTP != 0 {
        match http::request_host(payload) {
            Request::Host(n) => return Some((NAMED_HTTP, n)),
            // A request whose Host is in a later segment: not followed.
            _ => flow.inspect &= !MAY_HTTP,
        }
    }
    if flow.inspect & MAY_TLS != 0 {
        match tls::client_hello_sni(payload) {
            Hello::Sni(n) => return Some((NAMED_TLS, n)),
            Hello::NeedMore { .. } => match free.pop() {
                Some(slot) => {
                    let mut buf = ClientHelloBuf::new();
                    let _ = buf.push(payload);
                    flights[usize::from(slot)] = Flight::Tls {
                        buf,
                        next_seq: seq.wrapping_add(payload.len() as u32),
                    };
                    flow.slot = slot;
                }
                None => {
                    engine.inspect_full += 1;
                    flow.inspect &= !MAY_TLS;
                }
            },
            _ => flow.inspect &= !MAY_TLS,
        }
    }
    None
}

/// A UDP datagram: a QUIC client Initial (its CRYPTO frames joined in a
/// slot when the hello spans Initials).
fn quic_name<'s>(
    flow: &mut Flow,
    flights: &'s mut [Flight],
    free: &mut Vec<u16>,
    scratch: &mut [u8],
    spare: &'s mut CryptoBuf<QUIC_FLIGHT>,
    payload: &[u8],
) -> Option<(u8, &'s str)> {
    if flow.inspect & MAY_QUIC == 0 {
        return None;
    }
    if quic::initial_header(payload).is_err() {
        flow.inspect &= !MAY_QUIC;
        return None;
    }
    if flow.slot == NONE {
        if let Some(slot) = free.pop() {
            flights[usize::from(slot)] = Flight::Quic(CryptoBuf::new());
            flow.slot = slot;
        }
    }
    let crypto = match flights.get_mut(usize::from(flow.slot)) {
        Some(Flight::Quic(buf)) => buf,
        _ => {
            spare.clear();
            spare
        }
    };
    match quic::initial_sni(payload, scratch, crypto) {
        Ok(Hello::Sni(n)) => Some((NAMED_QUIC, n)),
        Ok(Hello::NeedMore { .. }) => None,
        // A server's Initial, or a damaged one: the next may be the
        // client's (the flow's first datagram may come from either side).
        Err(quic::QuicError::Decrypt) => None,
        _ => {
            flow.inspect &= !MAY_QUIC;
            None
        }
    }
}

/// Return a reassembly slot to the free list.
fn release(flights: &mut [Flight], free: &mut Vec<u16>, slot: u16) {
    if let Some(f) = flights.get_mut(usize::from(slot)) {
        if !matches!(f, Flight::Free) {
            *f = Flight::Free;
            free.push(slot);
        }
    }
}

/// The L4 payload of a frame the parser read, and the TCP sequence number
/// (0 for UDP); None for fragments and frames without ports.
fn payload<'b>(h: &Headers, bytes: &'b [u8]) -> Option<(&'b [u8], u32)> {
    let ip = h.ip?;
    if ip.fragment != Fragment::None || !matches!(ip.l4, L4::Ports { .. }) {
        return None;
    }
    let l3 = usize::from(h.l3_offset);
    let l4 = usize::from(ip.l4_offset);
    // The IP header says where the packet ends: a short frame is padded.
    let end = match bytes.get(l3).map(|b| b >> 4) {
        Some(4) => {
            l3 + usize::from(u16::from_be_bytes([
                *bytes.get(l3 + 2)?,
                *bytes.get(l3 + 3)?,
            ]))
        }
        Some(6) => {
            l3 + 40
                + usize::from(u16::from_be_bytes([
                    *bytes.get(l3 + 4)?,
                    *bytes.get(l3 + 5)?,
                ]))
        }
        _ => return None,
    };
    let (start, seq) = match ip.protocol {
        6 => {
            let off = usize::from(bytes.get(l4 + 12)? >> 4) * 4;
            let seq = u32::from_be_bytes(bytes.get(l4 + 4..l4 + 8)?.try_into().ok()?);
            (l4 + off, seq)
        }
        17 => (l4 + 8, 0),
        _ => return None,
    };
    Some((bytes.get(start..end.min(bytes.len()))?, seq))
}
