//! `weir show flows`: the top flows of a tree's flow table, by rate or by
//! bytes. The table can hold a million flows, so the walk is never done in
//! one go: the worker that owns the tree walks [`SETS_PER_STEP`] sets per
//! loop iteration (between two batches of packets), keeps the best `top`
//! in a small heap, and answers when the last set is done. Snapshots never
//! walk the table.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crossbeam_channel::Sender;
use weir_dataplane::app::Apps;
use weir_dataplane::flow::{Decided, Flow, FlowKey, NONE};
use weir_dataplane::remark::Remark;

/// Sets (of 8 flows, 128 bytes each) looked at per worker loop iteration:
/// at most 64 KiB of flows, read in order (the prefetcher's best case), so
/// packets wait for one step of a walk at a time, never for a whole one.
/// (The step's time has not been measured on the release build yet: an
/// estimate is tens of µs.)
pub(crate) const SETS_PER_STEP: usize = 64;

/// The most flows one answer may hold.
pub const MAX_TOP: usize = 10_000;

/// What the flows are ranked by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowOrder {
    /// [`FlowRow::rate`], highest first.
    Rate,
    /// Bytes since the flow started, most first.
    Bytes,
}

/// What `weir show flows` asks a tree's worker for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowQuery {
    /// How many flows (1..=[`MAX_TOP`]).
    pub top: usize,
    /// Only flows of this app.
    pub app: Option<String>,
    pub by: FlowOrder,
}

/// One flow as `weir show flows` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowRow {
    pub key: FlowKey,
    /// Its app (name, class index, remark); None while it has none.
    pub app: Option<String>,
    pub class: Option<u32>,
    pub remark: Option<Remark>,
    pub decided: Decided,
    /// Both directions' packets as this tree saw them (its own direction:
    /// the other direction is counted by the other tree).
    pub packets: u64,
    pub bytes: u64,
    /// From its first packet to its last, ns.
    pub age_ns: u64,
    /// Since its last packet, ns.
    pub idle_ns: u64,
    pub avg_size: u32,
    /// Bytes per second: the rate of the flow's last closed bulk window
    /// (what a `bulk` rule measures), once one has closed; before that,
    /// bytes over its age (0 for a single packet).
    pub rate: u64,
}

impl FlowRow {
    fn of(f: &Flow, apps: &Apps, now: u64) -> FlowRow {
        let app = (f.app != NONE).then_some(f.app);
        FlowRow {
            key: f.key,
            app: app.and_then(|a| apps.apps().get(usize::from(a)).map(|s| s.name.clone())),
            class: app.and_then(|a| apps.class_of(a)),
            remark: app.and_then(|a| apps.remark_of(a)),
            decided: f.decided,
            packets: f.packets,
            bytes: f.bytes,
            age_ns: f.age(),
            idle_ns: now.saturating_sub(f.last_seen),
            avg_size: f.avg_size(),
            rate: rate(f),
        }
    }
}

/// [`FlowRow::rate`] of a flow.
pub fn rate(f: &Flow) -> u64 {
    match f.last_rate() {
        0 if f.age() == 0 => 0,
        0 => (u128::from(f.bytes) * 1_000_000_000 / u128::from(f.age())) as u64,
        bps => u64::from(bps),
    }
}

/// The answer: the best flows, best first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopFlows {
    pub tree: String,
    /// CLOCK_MONOTONIC ns when the walk ended.
    pub at_ns: u64,
    /// Flows the walk saw, and of those, the ones of the app asked for.
    pub walked: u64,
    pub matched: u64,
    /// Flows the table can hold.
    pub capacity: u64,
    pub flows: Vec<FlowRow>,
}

/// A flow in the heap: the lowest score on top, so the heap keeps the
/// best `top` by popping the worst.
struct Ranked {
    score: u64,
    /// Walk order, so equal scores compare (and the first seen wins).
    seq: u64,
    flow: Flow,
}

impl PartialEq for Ranked {
    fn eq(&self, o: &Ranked) -> bool {
        (self.score, self.seq) == (o.score, o.seq)
    }
}

impl Eq for Ranked {}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, o: &Ranked) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

impl Ord for Ranked {
    fn cmp(&self, o: &Ranked) -> Ordering {
        // Reversed: BinaryHeap is a max-heap, this makes its top the worst
        // (lowest score, then latest seen).
        o.score.cmp(&self.score).then(self.seq.cmp(&o.seq))
    }
}

/// A walk under way over one tree's table.
pub(crate) struct Walk {
    /// The worker's index of the tree.
    pub tree: usize,
    query: FlowQuery,
    next_set: usize,
    heap: BinaryHeap<Ranked>,
    walked: u64,
    matched: u64,
    /// None: the tree has no apps (any more, after a reload).
    reply: Sender<Option<TopFlows>>,
}

impl Walk {
    pub fn new(tree: usize, query: FlowQuery, reply: Sender<Option<TopFlows>>) -> Walk {
        let top = query.top.clamp(1, MAX_TOP);
        Walk {
            tree,
            query: FlowQuery { top, ..query },
            next_set: 0,
            heap: BinaryHeap::with_capacity(top + 1),
            walked: 0,
            matched: 0,
            reply,
        }
    }

    /// Walk the next [`SETS_PER_STEP`] sets of `apps`' table. True when
    /// the walk is over: the answer was sent (None when the tree has no
    /// apps: none at all, or none any more after a reload).
    pub fn step(&mut self, name: &str, apps: Option<&Apps>, now: u64) -> bool {
        self.step_sets(name, apps, now, SETS_PER_STEP)
    }

    fn step_sets(&mut self, name: &str, apps: Option<&Apps>, now: u64, sets: usize) -> bool {
        let Some(apps) = apps else {
            let _ = self.reply.send(None);
            return true;
        };
        // Resolved at every step: a reload may renumber the apps.
        let want = match &self.query.app {
            None => None,
            Some(a) => match apps.app_index(a) {
                Some(i) => Some(i),
                // The app is gone: nothing more can match.
                None => Some(NONE),
            },
        };
        let end = self.next_set.saturating_add(sets);
        for f in apps.flows_in(self.next_set..end) {
            self.walked += 1;
            if want.is_some_and(|w| w != f.app) {
                continue;
            }
            self.matched += 1;
            let score = match self.query.by {
                FlowOrder::Rate => rate(f),
                FlowOrder::Bytes => f.bytes,
            };
            let full = self.heap.len() >= self.query.top;
            if full && self.heap.peek().is_some_and(|w| w.score >= score) {
                continue;
            }
            self.heap.push(Ranked {
                score,
                seq: self.walked,
                flow: *f,
            });
            if self.heap.len() > self.query.top {
                self.heap.pop();
            }
        }
        self.next_set = end;
        if end < apps.sets() {
            return false;
        }
        let mut best = std::mem::take(&mut self.heap).into_sorted_vec();
        // into_sorted_vec is ascending by Ord, which is reversed: best
        // first already.
        let flows = best.drain(..).map(|r| FlowRow::of(&r.flow, apps, now));
        let _ = self.reply.send(Some(TopFlows {
            tree: name.to_owned(),
            at_ns: now,
            walked: self.walked,
            matched: self.matched,
            capacity: apps.capacity() as u64,
            flows: flows.collect(),
        }));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_dataplane::app::{AppSpec, AppsSpec, RuleSpec};
    use weir_dataplane::parse::parse_frame;
    use weir_testkit::frame;

    const MS: u64 = 1_000_000;

    /// Two apps by port: web (80) and db (3306).
    fn apps() -> Apps {
        let mut spec = AppsSpec::empty();
        spec.apps = vec![
            AppSpec {
                name: "web".into(),
                class: 1,
                remark: Some(Remark::Set(10)),
            },
            AppSpec {
                name: "db".into(),
                class: 2,
                remark: None,
            },
        ];
        spec.rules = vec![
            RuleSpec {
                app: 0,
                protocol: Some(6),
                ports: vec![(80, 80)],
                ..RuleSpec::default()
            },
            RuleSpec {
                app: 1,
                protocol: Some(6),
                ports: vec![(3306, 3306)],
                ..RuleSpec::default()
            },
        ];
        spec.flows = 4096;
        Apps::new(&spec).expect("builds")
    }

    /// `n` packets of `len` payload bytes from client port `sport` to
    /// server port `dport`, 1 ms apart from `start`.
    fn send(apps: &mut Apps, sport: u16, dport: u16, n: u64, len: usize, start: u64) {
        let ip = frame::Ipv4 {
            src: [198, 18, 0, 1],
            dst: [198, 18, 0, 2],
            protocol: 6,
            ..frame::Ipv4::default()
        };
        let l4 = [frame::tcp(sport, dport, 5), vec![0; len]].concat();
        let bytes = frame::ipv4_frame(&ip, &l4);
        let h = parse_frame(&bytes).expect("parses");
        for i in 0..n {
            apps.packet(&h, &bytes, start + i * MS);
        }
    }

    fn walk(apps: &Apps, query: FlowQuery, sets: usize) -> (TopFlows, usize) {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let mut w = Walk::new(0, query, tx);
        let mut steps = 1;
        while !w.step_sets("up", Some(apps), 100 * MS, sets) {
            steps += 1;
        }
        let top = rx.try_recv().expect("answered").expect("a tree with apps");
        (top, steps)
    }

    /// 30 flows of growing size: the walk in steps of one set answers once
    /// it has seen every set, with the best `top` best first, and the app
    /// filter keeps only that app's flows.
    #[test]
    fn the_walk_keeps_the_top_flows_in_order() {
        let mut a = apps();
        for i in 0..30u16 {
            let dport = if i % 3 == 0 { 3306 } else { 80 };
            send(&mut a, 40000 + i, dport, 2 + u64::from(i), 100, 0);
        }
        let q = FlowQuery {
            top: 5,
            app: None,
            by: FlowOrder::Bytes,
        };
        let (top, steps) = walk(&a, q.clone(), 1);
        assert_eq!(steps, a.sets(), "one set per step");
        assert_eq!((top.walked, top.matched), (30, 30));
        let sports: Vec<u16> = top.flows.iter().map(|f| f.key.lo_port).collect();
        assert_eq!(sports, [40029, 40028, 40027, 40026, 40025]);
        let f = &top.flows[0];
        assert_eq!(f.app.as_deref(), Some("web"));
        assert_eq!((f.class, f.remark), (Some(1), Some(Remark::Set(10))));
        assert_eq!(f.decided, Decided::Port);
        assert_eq!(f.packets, 31);
        assert_eq!(f.age_ns, 30 * MS);
        assert!(f.rate > 0 && f.bytes > 3100, "{f:?}");
        let db = &top.flows[2];
        assert_eq!(db.app.as_deref(), Some("db"));
        assert_eq!((db.class, db.remark), (Some(2), None));

        let (db, _) = walk(
            &a,
            FlowQuery {
                app: Some("db".into()),
                top: 100,
                ..q.clone()
            },
            a.sets(),
        );
        assert_eq!(db.matched, 10);
        assert_eq!(db.flows.len(), 10);
        assert!(db.flows.iter().all(|f| f.app.as_deref() == Some("db")));
        let (none, _) = walk(
            &a,
            FlowQuery {
                app: Some("video".into()),
                ..q
            },
            7,
        );
        assert_eq!((none.walked, none.matched, none.flows.len()), (30, 0, 0));
    }

    /// The bound that keeps the worker from stalling: a step reads at most
    /// SETS_PER_STEP sets, so a table of 8192 sets takes 128 steps
    /// however full it is, and the answer comes with the last.
    #[test]
    fn a_big_table_is_walked_in_bounded_steps() {
        let mut spec = AppsSpec::empty();
        spec.apps = apps().apps().to_vec();
        spec.rules = vec![RuleSpec {
            app: 0,
            protocol: Some(6),
            ports: vec![(80, 80)],
            ..RuleSpec::default()
        }];
        spec.flows = 65536;
        let mut a = Apps::new(&spec).expect("builds");
        assert_eq!(a.sets(), 8192);
        for i in 0..3000u16 {
            send(&mut a, 10000 + i, 80, 1, 100, 0);
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        let mut w = Walk::new(
            0,
            FlowQuery {
                top: 10,
                app: None,
                by: FlowOrder::Rate,
            },
            tx,
        );
        let mut steps = 0;
        let mut seen = 0;
        loop {
            steps += 1;
            let done = w.step("up", Some(&a), MS);
            assert!(
                w.walked - seen <= (SETS_PER_STEP * 8) as u64,
                "step {steps} read {} flows",
                w.walked - seen
            );
            seen = w.walked;
            if done {
                break;
            }
            assert!(rx.try_recv().is_err(), "no answer before the last set");
        }
        assert_eq!(steps, 8192 / SETS_PER_STEP);
        let top = rx.try_recv().expect("answered").expect("apps");
        assert_eq!((top.walked, top.flows.len()), (3000, 10));
    }

    /// By rate: a short fast flow beats a long slow one with more bytes.
    #[test]
    fn rate_ranks_by_bytes_over_age() {
        let mut a = apps();
        // 50 packets over 49 ms.
        send(&mut a, 40001, 80, 50, 1000, 0);
        // 10 packets over 9 ms, later.
        send(&mut a, 40002, 80, 10, 1400, 60 * MS);
        let (top, _) = walk(
            &a,
            FlowQuery {
                top: 2,
                app: None,
                by: FlowOrder::Rate,
            },
            1000,
        );
        assert_eq!(top.flows[0].key.lo_port, 40002);
        assert!(top.flows[0].rate > top.flows[1].rate);
        assert!(top.flows[0].bytes < top.flows[1].bytes);
        assert_eq!(top.flows[0].idle_ns, 100 * MS - 69 * MS);
    }

    /// A tree without apps (or one that lost them in a reload) ends the
    /// walk with None.
    #[test]
    fn a_tree_without_apps_ends_the_walk() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let mut w = Walk::new(
            0,
            FlowQuery {
                top: 0,
                app: None,
                by: FlowOrder::Rate,
            },
            tx,
        );
        assert_eq!(w.query.top, 1, "top 0 is clamped");
        assert!(w.step("up", None, 0));
        assert_eq!(rx.try_recv(), Ok(None));
    }
}
