//! Leaves added and removed in place (`edit.rs`): a tree edited so serves
//! exactly as one built with the same classes, keeps every packet, and
//! refuses what it can't do without changing anything.

use super::tests::{cbr, class, drain, run, spec};
use super::*;
use crate::packet::Frame;
use proptest::prelude::*;
use std::collections::HashSet;

const MBIT: u64 = 1_000_000 / 8;

/// Root 1:1 (100 Mbit/s), inner 1:2 (60/100) and 1:3 (40/100), and two
/// pfifo leaves under each, 1:10 to 1:13. Indexes 0..=2 are the root and
/// the inner classes; the leaves follow.
fn base() -> Vec<ClassSpec> {
    let mut classes = vec![
        class(None, 100, 100, 0, false),
        class(Some(0), 60, 100, 0, false),
        class(Some(0), 40, 100, 1, false),
        class(Some(1), 20, 60, 0, true),
        class(Some(1), 10, 100, 1, true),
        class(Some(2), 15, 40, 0, true),
        class(Some(2), 10, 100, 2, true),
    ];
    for (c, id) in classes.iter_mut().zip([1u64, 2, 3, 0x10, 0x11, 0x12, 0x13]) {
        c.id = 1 << 32 | id;
    }
    classes
}

fn with_spare(classes: Vec<ClassSpec>, spare: u32) -> HtbSpec {
    let mut s = spec(classes);
    s.spare_leaves = spare;
    s
}

#[derive(Clone, Debug)]
enum Edit {
    /// A leaf under inner class 1 or 2.
    Add {
        under_b: bool,
        rate: u64,
        extra: u64,
        prio: u8,
    },
    /// The `pick`-th leaf (modulo how many there are), unless it is its
    /// parent's last.
    Remove { pick: usize },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<bool>(), 1u64..40, 0u64..60, 0u8..3).prop_map(|(under_b, rate, extra, prio)| {
            Edit::Add {
                under_b,
                rate,
                extra,
                prio,
            }
        }),
        (0usize..64).prop_map(|pick| Edit::Remove { pick }),
    ]
}

/// The model: the classes in index order, as `add_leaf` and `remove_leaf`
/// leave them (appended; the last moved into a removed one's index).
struct Model {
    classes: Vec<ClassSpec>,
    next_id: u64,
}

impl Model {
    fn leaves(&self) -> Vec<u32> {
        (0..self.classes.len() as u32)
            .filter(|&c| self.classes[c as usize].qdisc.is_some())
            .collect()
    }

    /// Apply `e` to `htb` and to the model; false when it was skipped.
    fn apply(&mut self, htb: &mut Htb, e: &Edit, now: u64, drops: &mut Drops) -> bool {
        match *e {
            Edit::Add {
                under_b,
                rate,
                extra,
                prio,
            } => {
                let mut c = class(Some(1 + u32::from(under_b)), rate, rate + extra, prio, true);
                c.id = 1 << 32 | self.next_id;
                self.next_id += 1;
                let q = Qdisc::new(c.qdisc.as_ref().unwrap(), 0);
                match htb.add_leaf(&c, q, now) {
                    Ok(i) => {
                        assert_eq!(i as usize, self.classes.len());
                        self.classes.push(c);
                        true
                    }
                    Err(InPlaceError::NoRoom) => false,
                    Err(e) => panic!("{e}"),
                }
            }
            Edit::Remove { pick } => {
                let leaves = self.leaves();
                let victim = leaves[pick % leaves.len()];
                let parent = self.classes[victim as usize].parent;
                let siblings = self.classes.iter().filter(|c| c.parent == parent).count();
                if siblings == 1 {
                    return false;
                }
                let moved = htb.remove_leaf(victim, drops).expect("a leaf");
                let last = self.classes.len() as u32 - 1;
                self.classes.swap_remove(victim as usize);
                let want = (victim != last).then_some(Moved {
                    from: last,
                    to: victim,
                });
                assert_eq!(moved, want);
                true
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(120))]

    /// Edited at time 0, the tree sends the same packets at the same times
    /// as a tree built from the resulting classes, and counts the same.
    #[test]
    fn an_edited_tree_serves_as_one_built_so(edits in proptest::collection::vec(edit(), 0..24)) {
        let mut htb = Htb::new(&with_spare(base(), 8), 0).unwrap();
        let mut model = Model { classes: base(), next_id: 0x20 };
        let mut drops = Drops::default();
        for e in &edits {
            model.apply(&mut htb, e, 0, &mut drops);
        }
        prop_assert!(drops.is_empty());
        let mut built = Htb::new(&spec(model.classes.clone()), 0).unwrap();
        prop_assert_eq!(htb.class_count(), built.class_count());
        // Every leaf offered 30 Mbit/s (more than any ceil): the excess is
        // shared by prio, quantum and id order, which is what moved.
        let sources = |m: &Model| m.leaves().into_iter().map(|l| cbr(l, 1000, 30)).collect::<Vec<_>>();
        let mut sent_edited = Vec::new();
        let mut sent_built = Vec::new();
        let a = run(&mut htb, &mut sources(&model), 200_000_000, |t, c, p| sent_edited.push((t, c, p.len)));
        let b = run(&mut built, &mut sources(&model), 200_000_000, |t, c, p| sent_built.push((t, c, p.len)));
        prop_assert_eq!(a.sent_bytes, b.sent_bytes);
        prop_assert!(sent_edited == sent_built, "the send sequences differ");
        for c in 0..htb.class_count() {
            prop_assert_eq!(htb.class_stats(c), built.class_stats(c), "class #{}", c);
        }
    }

    /// Edits between packets: every packet comes back once (sent, or
    /// dropped as Flushed with its leaf), and the backlog stays exact.
    #[test]
    fn edits_under_traffic_lose_and_duplicate_nothing(
        ops in proptest::collection::vec(prop_oneof![
            3 => (0usize..64, 60u32..1600).prop_map(|(leaf, len)| (0u8, leaf, len, None)),
            3 => Just((1u8, 0, 0, None)),
            2 => (0u64..3_000_000).prop_map(|dt| (2u8, 0, dt as u32, None)),
            2 => edit().prop_map(|e| (3u8, 0, 0, Some(e))),
        ], 1..300),
    ) {
        let mut htb = Htb::new(&with_spare(base(), 6), 0).unwrap();
        let mut model = Model { classes: base(), next_id: 0x20 };
        let mut drops = Drops::default();
        let mut now = 0u64;
        let mut addr = 0u64;
        let mut inside: HashSet<u64> = HashSet::new();
        for (kind, pick, n, e) in ops {
            match kind {
                0 => {
                    let leaves = model.leaves();
                    let leaf = leaves[pick % leaves.len()];
                    addr += 1;
                    htb.enqueue(leaf, Packet::new(Frame { addr, len: n }, 0), now, &mut drops);
                    inside.insert(addr);
                }
                1 => {
                    if let Some(p) = htb.dequeue(now, &mut drops) {
                        prop_assert!(inside.remove(&p.addr), "sent twice or never queued");
                    }
                }
                2 => now += u64::from(n),
                _ => {
                    model.apply(&mut htb, e.as_ref().unwrap(), now, &mut drops);
                }
            }
            for d in drops.drain() {
                prop_assert!(inside.remove(&d.packet.addr), "dropped twice or never queued");
            }
            prop_assert_eq!(htb.backlog().packets as usize, inside.len());
            let per_class: u32 = model.leaves().iter().map(|&l| htb.class_stats(l).backlog.packets).sum();
            prop_assert_eq!(per_class as usize, inside.len());
        }
        prop_assert!(drain(&mut htb, now, &mut drops, &mut inside), "a packet came back twice or from nowhere");
        prop_assert!(inside.is_empty());
    }
}

#[test]
fn what_cannot_be_done_in_place_is_refused_and_changes_nothing() {
    let mut htb = Htb::new(&with_spare(base(), 1), 0).unwrap();
    assert_eq!(htb.spare_leaves(), 1);
    let mut c = class(Some(1), 5, 10, 0, true);
    let q = || Qdisc::new(&QdiscParams::Fifo(FifoLimit::Packets(10)), 0);
    // Not above every leaf's id.
    c.id = 1 << 32 | 0x13;
    assert_eq!(
        htb.add_leaf(&c, q(), 0),
        Err(InPlaceError::OutOfOrder { id: c.id })
    );
    // Under a leaf, or a class that is not there.
    c.id = 1 << 32 | 0x20;
    for parent in [3, 99] {
        c.parent = Some(parent);
        assert_eq!(
            htb.add_leaf(&c, q(), 0),
            Err(InPlaceError::BadParent { parent })
        );
    }
    c.parent = Some(1);
    c.ceil = c.rate - 1;
    assert_eq!(
        htb.add_leaf(&c, q(), 0),
        Err(InPlaceError::Spec(SpecError::CeilBelowRate { class: 7 }))
    );
    c.ceil = c.rate;
    assert_eq!(htb.class_count(), 7);
    assert_eq!(htb.add_leaf(&c, q(), 0), Ok(7));
    c.id += 1;
    assert_eq!(htb.add_leaf(&c, q(), 0), Err(InPlaceError::NoRoom));
    let mut drops = Drops::default();
    // Inner classes and unknown ones are not removed.
    for class in [1, 8] {
        assert_eq!(
            htb.remove_leaf(class, &mut drops),
            Err(InPlaceError::NotLeaf { class })
        );
    }
    // A removed leaf's packets come back as Flushed; the last class takes
    // its index.
    for addr in 0..3 {
        htb.enqueue(4, Packet::new(Frame { addr, len: 100 }, 0), 0, &mut drops);
    }
    assert_eq!(
        htb.remove_leaf(4, &mut drops),
        Ok(Some(Moved { from: 7, to: 4 }))
    );
    assert_eq!(drops.len(), 3);
    assert!(drops.drain().all(|d| d.reason == DropReason::Flushed));
    assert_eq!(htb.backlog(), Backlog::default());
    assert_eq!(htb.class_count(), 7);
    // The removed leaf's entry is a hole, not room: none is left.
    assert_eq!(htb.spare_leaves(), 0);
    // A tree of one leaf keeps it.
    let mut one = Htb::new(&with_spare(vec![class(None, 10, 10, 0, true)], 4), 0).unwrap();
    assert_eq!(
        one.remove_leaf(0, &mut drops),
        Err(InPlaceError::NotLeaf { class: 0 })
    );
}

#[test]
fn a_feed_grows_past_64_children() {
    // 70 leaves under 1:2 (one bitmap word holds 64).
    let mut htb = Htb::new(&with_spare(base(), 80), 0).unwrap();
    for i in 0..70u64 {
        let mut c = class(Some(1), 1, 100, 0, true);
        c.id = 1 << 32 | (0x100 + i);
        let q = Qdisc::new(c.qdisc.as_ref().unwrap(), 0);
        htb.add_leaf(&c, q, 0).unwrap();
    }
    // All of them borrowing from 1:2 at once: each gets a share.
    let leaves: Vec<u32> = (7..77).collect();
    let mut sources: Vec<_> = leaves.iter().map(|&l| cbr(l, 1000, 2)).collect();
    let out = run(&mut htb, &mut sources, 1_000_000_000, |_, _, _| {});
    for &l in &leaves {
        let mbit = out.sent_bytes[l as usize] as f64 * 8.0 / 1e6;
        // 1:2 has 100 Mbit/s ceil; 70 × 2 = 140 offered: each about
        // 100/70 = 1.43, at least its 1 Mbit/s rate.
        assert!((1.0..2.0).contains(&mbit), "leaf #{l}: {mbit} Mbit/s");
    }
    let _ = MBIT;
}
