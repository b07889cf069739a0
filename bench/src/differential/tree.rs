//! The trees of the differential test and the traffic offered to them:
//! random trees from a seed (deterministic: the same seed gives the same
//! tree on every machine and every version, because the generator is
//! written here rather than taken from a crate whose streams may change),
//! a few trees made by hand, and how each is written as a weir config and
//! as a `weir simulate` traffic file.
//!
//! Everything here is pure: no I/O.

use std::fmt::Write;

use serde::Serialize;

/// Frame bytes HTB charges per test frame: a 1518-byte frame on the wire
/// without its FCS (the existing shaping tests' size).
pub const FRAME_BYTES: u64 = 1514;
/// The fastest root a random tree gets, bit/s: what this 2-vCPU VM
/// forwards comfortably through AF_XDP copy mode on veth (the shaping
/// tests' 100 Mbit/s root).
pub const MAX_ROOT_BPS: u64 = 100_000_000;

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and its output for a
/// seed is fixed by its definition.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; the modulo bias at these n is far below
    /// anything a test could see).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `pct` %.
    pub fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// One HTB class of a test tree. Rates in bit/s, sizes in bytes; `None`
/// leaves the key out of the config, so weir (and `weir tc` for the
/// kernel) use tc's default.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Class {
    /// The class minor (the id is `1:MINOR`, hex as tc prints it).
    pub minor: u32,
    pub parent: Option<usize>,
    pub rate_bps: u64,
    pub ceil_bps: u64,
    pub burst: Option<u32>,
    pub cburst: Option<u32>,
    pub prio: u8,
    pub quantum: Option<u32>,
    /// Leaves only: the DSCP a u32 filter maps to this class.
    pub dscp: Option<u8>,
}

impl Class {
    pub fn id(&self) -> String {
        format!("1:{:x}", self.minor)
    }
}

/// A tree and the leaves that get traffic.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Tree {
    /// `seed N` for a random tree, the name of a hand-made one.
    pub name: String,
    /// Classes parents-first; 0 is the root.
    pub classes: Vec<Class>,
    /// Indices of the leaves that are offered traffic (saturated).
    pub active: Vec<usize>,
    /// What the active leaves are offered.
    pub proto: Proto,
}

/// The traffic of a tree's active leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Proto {
    /// One UDP flow per leaf from weir-bench's own generator, at
    /// [`Tree::offered_bps`].
    Udp,
    /// One bulk TCP flow per leaf (iperf3), as fast as TCP gets it
    /// through.
    Tcp,
}

/// What a `--tree` argument names: a random tree, or a hand-made one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TreeSpec {
    Seed(u64),
    Named(&'static str),
}

/// The hand-made trees, with what each is for.
pub const NAMED: &[(&str, &str)] = &[
    (
        "quantum3",
        "100 Mbit/s root; three prio-0 leaves of 5 Mbit/s, ceil 100, quantum 1514 / 6056 / 15140, all saturated: the kernel splits the 85 Mbit/s they borrow in proportion to quantum",
    ),
    (
        "quantum2",
        "100 Mbit/s root; two prio-1 leaves of 10 Mbit/s, ceil 100, quantum 3028 / 12112, and a prio-0 leaf 20/40 with tc's default quantum, all saturated",
    ),
    (
        "lab",
        "config/lab.toml's tree (seed 1.2 scaled to 100 Mbit/s: 30/60 prio 1, 50/80 prio 2, 20/100 prio 3) with tc's defaults: no burst keys, pfifo 1000 leaves; all saturated",
    ),
    (
        "lab-30-idle",
        "the lab tree with 1:30 idle: its 20 Mbit/s go to the lowest prio value first, so 1:10 borrows them up to its ceil (50 / 50)",
    ),
    (
        "lab-only-20",
        "the lab tree with only 1:20 active: it borrows up to its ceil (80)",
    ),
    (
        "lab-tcp",
        "the lab tree, all three leaves saturated by one bulk TCP flow each (iperf3, cubic) instead of UDP",
    ),
];

impl std::str::FromStr for TreeSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<TreeSpec, String> {
        if let Some(n) = s.strip_prefix("seed:") {
            return n
                .parse()
                .map(TreeSpec::Seed)
                .map_err(|_| format!("{s:?}: expected seed:N with N a number"));
        }
        NAMED
            .iter()
            .find(|(name, _)| *name == s)
            .map(|(name, _)| TreeSpec::Named(name))
            .ok_or_else(|| {
                let names: Vec<&str> = NAMED.iter().map(|(n, _)| *n).collect();
                format!("{s:?}: expected seed:N or one of {}", names.join(", "))
            })
    }
}

impl TreeSpec {
    pub fn tree(&self) -> Tree {
        match self {
            TreeSpec::Seed(seed) => random(*seed),
            TreeSpec::Named(name) => named(name),
        }
    }
}

const MBIT: u64 = 1_000_000;

fn class(parent: Option<usize>, rate_mbit: u64, ceil_mbit: u64, prio: u8) -> Class {
    Class {
        minor: 0,
        parent,
        rate_bps: rate_mbit * MBIT,
        ceil_bps: ceil_mbit * MBIT,
        burst: None,
        cburst: None,
        prio,
        quantum: None,
        dscp: None,
    }
}

/// A hand-made tree (a name from [`NAMED`]).
fn named(name: &str) -> Tree {
    let root = class(None, 100, 100, 0);
    let mut classes = vec![root];
    match name {
        "quantum3" => {
            for q in [1514, 6056, 15140] {
                classes.push(Class {
                    quantum: Some(q),
                    ..class(Some(0), 5, 100, 0)
                });
            }
        }
        "quantum2" => {
            for q in [3028, 12112] {
                classes.push(Class {
                    quantum: Some(q),
                    ..class(Some(0), 10, 100, 1)
                });
            }
            classes.push(class(Some(0), 20, 40, 0));
        }
        _ => {
            // "lab" and its variants: config/lab.toml's upload tree with
            // tc's defaults.
            classes.push(class(Some(0), 30, 60, 1));
            classes.push(class(Some(0), 50, 80, 2));
            classes.push(class(Some(0), 20, 100, 3));
        }
    }
    let mut t = Tree {
        name: name.to_owned(),
        classes,
        active: Vec::new(),
        proto: if name == "lab-tcp" {
            Proto::Tcp
        } else {
            Proto::Udp
        },
    };
    number(&mut t);
    let leaves = t.leaves();
    t.active = match name {
        // The lab tree's leaves are 1:11 (prio 1), 1:12 (prio 2), 1:13
        // (prio 3), config/lab.toml's 1:10, 1:20 and 1:30.
        "lab-30-idle" => leaves[..2].to_vec(),
        "lab-only-20" => vec![leaves[1]],
        _ => leaves,
    };
    t
}

/// Minors in creation order (root 1:1, then 1:11, 1:12, …) and a distinct
/// DSCP per leaf.
fn number(t: &mut Tree) {
    let leaves = t.leaves();
    for (i, c) in t.classes.iter_mut().enumerate() {
        c.minor = if i == 0 { 1 } else { 0x10 + i as u32 };
    }
    for (k, &i) in leaves.iter().enumerate() {
        // 10, 12, … 28 for ten leaves: AF11..AF33-like values, none 0 (so
        // nothing of ours is "unmarked").
        t.classes[i].dscp = Some(10 + 2 * k as u8);
    }
}

/// A random tree: depth 1–3 below the root, 2–10 leaves; random rate,
/// ceil, prio and quantum, equal and unequal quantums in one prio;
/// parents oversubscribed by their children about a third of the time;
/// burst/cburst at tc's default or random; a random non-empty set of
/// active leaves.
pub fn random(seed: u64) -> Tree {
    let mut r = Rng::new(seed);
    let root_mbit = r.pick(&[40u64, 50, 60, 80, 100]);
    let depth = 1 + r.below(3) as u32;
    let leaves = 2 + r.below(9) as usize;
    let mut classes = vec![class(None, root_mbit, root_mbit, 0)];
    shape(&mut r, &mut classes, 0, leaves, depth);
    // Rates and ceils top-down (parents come before their children).
    for p in 0..classes.len() {
        let kids: Vec<usize> = (0..classes.len())
            .filter(|&i| classes[i].parent == Some(p))
            .collect();
        if kids.is_empty() {
            continue;
        }
        let (prate, pceil) = (classes[p].rate_bps, classes[p].ceil_bps);
        // Oversubscribed: the children are promised more than the parent
        // has (HTB gives each at most its share of what the parent gets).
        let fill = if r.chance(35) {
            1.1 + 0.5 * r.unit()
        } else {
            0.4 + 0.6 * r.unit()
        };
        let weights: Vec<u64> = kids.iter().map(|_| 1 + r.below(9)).collect();
        let sum: u64 = weights.iter().sum();
        for (&k, w) in kids.iter().zip(&weights) {
            // Whole kbit/s, at least 500 kbit/s (a class slower than that
            // gets a 1514-byte frame every 24 ms: few in a 2 s window).
            let rate =
                ((prate as f64 * fill * *w as f64 / sum as f64) as u64 / 1000 * 1000).max(500_000);
            let ceil = match r.below(100) {
                // No borrowing.
                0..=14 => rate,
                15..=54 => pceil,
                _ => rate + ((pceil.saturating_sub(rate)) as f64 * r.unit()) as u64 / 1000 * 1000,
            }
            .max(rate);
            classes[k].rate_bps = rate;
            classes[k].ceil_bps = ceil;
        }
    }
    let mut t = Tree {
        name: format!("seed {seed}"),
        classes,
        active: Vec::new(),
        proto: Proto::Udp,
    };
    number(&mut t);
    let leaf_idx = t.leaves();
    // Prios: few distinct values, so leaves share a prio more often than
    // not (where quantum matters).
    let prios = 1 + r.below(3);
    // Quantums: all tc's default (rate/r2q), all one explicit value, or a
    // random mix of explicit values and the default.
    const QUANTUMS: [u32; 7] = [1000, 1514, 3028, 4542, 6056, 9084, 15140];
    let mode = r.below(10);
    let same = r.pick(&QUANTUMS);
    for (i, c) in t.classes.iter_mut().enumerate() {
        c.burst = r.chance(50).then(|| 1600 + r.below(28_401) as u32);
        c.cburst = r.chance(50).then(|| 1600 + r.below(28_401) as u32);
        if !leaf_idx.contains(&i) {
            continue;
        }
        c.prio = r.below(prios) as u8;
        c.quantum = match mode {
            0..=1 => None,
            2..=3 => Some(same),
            _ => r.chance(80).then(|| r.pick(&QUANTUMS)),
        };
    }
    t.active = leaf_idx.iter().copied().filter(|_| r.chance(60)).collect();
    if t.active.is_empty() {
        t.active
            .push(leaf_idx[r.below(leaf_idx.len() as u64) as usize]);
    }
    t
}

/// `n` leaves below `parent`, at most `depth` levels down; at least one
/// inner class when `depth` > 1, so the depth asked is reached.
fn shape(r: &mut Rng, classes: &mut Vec<Class>, parent: usize, n: usize, depth: u32) {
    if depth <= 1 || n < 2 {
        for _ in 0..n {
            classes.push(class(Some(parent), 0, 0, 0));
        }
        return;
    }
    let mut groups = vec![2 + r.below(n as u64 - 1) as usize];
    let mut left = n - groups[0];
    while left > 0 {
        let g = 1 + r.below(left as u64) as usize;
        groups.push(g);
        left -= g;
    }
    for (k, g) in groups.into_iter().enumerate() {
        if g >= 2 && (k == 0 || r.chance(50)) {
            classes.push(class(Some(parent), 0, 0, 0));
            let me = classes.len() - 1;
            shape(r, classes, me, g, depth - 1);
        } else {
            for _ in 0..g {
                classes.push(class(Some(parent), 0, 0, 0));
            }
        }
    }
}

impl Tree {
    /// Indices of the leaves, in class order.
    pub fn leaves(&self) -> Vec<usize> {
        (0..self.classes.len())
            .filter(|&i| !self.classes.iter().any(|c| c.parent == Some(i)))
            .collect()
    }

    pub fn root_bps(&self) -> u64 {
        self.classes[0].rate_bps
    }

    /// Levels below the root of the deepest leaf.
    pub fn depth(&self) -> u32 {
        self.leaves()
            .into_iter()
            .map(|mut i| {
                let mut d = 0;
                while let Some(p) = self.classes[i].parent {
                    d += 1;
                    i = p;
                }
                d
            })
            .max()
            .unwrap_or(0)
    }

    /// The lowest ceil on the way from class `i` to the root: the most the
    /// class can ever get.
    pub fn reachable_bps(&self, mut i: usize) -> u64 {
        let mut m = u64::MAX;
        loop {
            let c = &self.classes[i];
            m = m.min(c.ceil_bps).min(if c.parent.is_none() {
                c.rate_bps
            } else {
                u64::MAX
            });
            match c.parent {
                Some(p) => i = p,
                None => return m,
            }
        }
    }

    /// What an active leaf is offered, bit/s of frame bytes: well above
    /// the most it can get, so it stays backlogged whatever the others do
    /// (15 % and at least 2 Mbit/s above).
    pub fn offered_bps(&self, leaf: usize) -> u64 {
        let most = self.reachable_bps(leaf);
        (most + most * 15 / 100).max(most + 2 * MBIT)
    }

    /// Parents whose children are promised more than the parent's rate.
    pub fn oversubscribed(&self) -> usize {
        (0..self.classes.len())
            .filter(|&p| {
                let kids: u64 = self
                    .classes
                    .iter()
                    .filter(|c| c.parent == Some(p))
                    .map(|c| c.rate_bps)
                    .sum();
                kids > self.classes[p].rate_bps
            })
            .count()
    }

    /// The weir config: one port pair (the lab's weir-in → weir-out), one
    /// tree `up`, a u32-style DSCP filter per leaf. Keys left out are tc's
    /// defaults (burst, cburst, quantum, pfifo 1000 leaves, r2q 10).
    pub fn config(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# weir-bench differential, tree {}: generated (bench/src/differential/tree.rs).",
            self.name
        );
        let _ = writeln!(
            s,
            "\n[[pair]]\nname = \"lab\"\ninside = \"weir-in\"\noutside = \"weir-out\"\nupload = \"up\"\n"
        );
        let default = self.leaves()[0];
        let _ = writeln!(
            s,
            "[tree.up]\ndefault = \"{}\"\n",
            self.classes[default].id()
        );
        for c in &self.classes {
            let _ = writeln!(s, "[[tree.up.class]]\nid = \"{}\"", c.id());
            if let Some(p) = c.parent {
                let _ = writeln!(s, "parent = \"{}\"", self.classes[p].id());
            }
            let _ = writeln!(
                s,
                "rate = \"{}kbit\"\nceil = \"{}kbit\"",
                c.rate_bps / 1000,
                c.ceil_bps / 1000
            );
            if let Some(b) = c.burst {
                let _ = writeln!(s, "burst = \"{b}b\"");
            }
            if let Some(b) = c.cburst {
                let _ = writeln!(s, "cburst = \"{b}b\"");
            }
            if c.prio != 0 {
                let _ = writeln!(s, "prio = {}", c.prio);
            }
            if let Some(q) = c.quantum {
                let _ = writeln!(s, "quantum = {q}");
            }
            let _ = writeln!(s);
        }
        for (k, i) in self.leaves().into_iter().enumerate() {
            let c = &self.classes[i];
            let _ = writeln!(
                s,
                "[[tree.up.filter]]\nprio = {}\nprotocol = \"ip\"\ndscp = {}\nflowid = \"{}\"\n",
                k + 1,
                c.dscp.unwrap_or(0),
                c.id()
            );
        }
        s
    }

    /// The `weir simulate` traffic: one CBR source of 1514-byte frames per
    /// active leaf, with its DSCP, at its offered rate; measured after a
    /// 1 s warm-up, like the real trials.
    pub fn traffic(&self, duration_s: u32) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# weir-bench differential, tree {}: generated.\nduration = \"{duration_s}s\"\nwarmup = \"1s\"\nseed = 1\ntree = \"up\"\n",
            self.name
        );
        for &i in &self.active {
            let c = &self.classes[i];
            let _ = writeln!(
                s,
                "[[source]]\nname = \"{}\"\nkind = \"cbr\"\nrate = \"{}bit\"\nsize = {FRAME_BYTES}\ndscp = {}\n",
                source_name(c),
                self.offered_bps(i),
                c.dscp.unwrap_or(0)
            );
        }
        s
    }
}

/// The simulator source of a leaf.
pub fn source_name(c: &Class) -> String {
    format!("leaf-{:x}", c.minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_trees_are_deterministic_and_within_bounds() {
        assert_eq!(random(7), random(7));
        assert_ne!(random(7), random(8));
        let mut depths = [0; 4];
        let mut oversubscribed = 0;
        let mut unequal_same_prio = 0;
        let mut equal_same_prio = 0;
        for seed in 0..300 {
            let t = random(seed);
            let leaves = t.leaves();
            assert!((2..=10).contains(&leaves.len()), "seed {seed}: {t:?}");
            let d = t.depth();
            assert!((1..=3).contains(&d), "seed {seed}: depth {d}");
            depths[d as usize] += 1;
            assert!(t.root_bps() <= MAX_ROOT_BPS);
            assert!(!t.active.is_empty());
            assert!(t.active.iter().all(|a| leaves.contains(a)));
            for c in &t.classes[1..] {
                let p = &t.classes[c.parent.unwrap()];
                assert!(c.rate_bps >= 500_000 && c.ceil_bps >= c.rate_bps, "{c:?}");
                assert!(
                    c.ceil_bps <= p.ceil_bps.max(c.rate_bps),
                    "{c:?} under {p:?}"
                );
            }
            if t.oversubscribed() > 0 {
                oversubscribed += 1;
            }
            for &a in &leaves {
                for &b in &leaves {
                    let (x, y) = (&t.classes[a], &t.classes[b]);
                    if a < b && x.prio == y.prio {
                        match (x.quantum, y.quantum) {
                            (Some(p), Some(q)) if p != q => unequal_same_prio += 1,
                            (Some(p), Some(q)) if p == q => equal_same_prio += 1,
                            _ => {}
                        }
                    }
                }
            }
            let dscps: Vec<u8> = leaves.iter().map(|&i| t.classes[i].dscp.unwrap()).collect();
            let mut sorted = dscps.clone();
            sorted.dedup();
            assert_eq!(sorted.len(), dscps.len());
        }
        assert!(depths[1..].iter().all(|&n| n > 30), "{depths:?}");
        assert!(oversubscribed > 50, "{oversubscribed}");
        assert!(unequal_same_prio > 50 && equal_same_prio > 50);
    }

    #[test]
    fn lab_variants_leave_the_right_classes_idle() {
        let minors = |name| {
            let t = TreeSpec::Named(name).tree();
            let active: Vec<u32> = t.active.iter().map(|&i| t.classes[i].minor).collect();
            (t.classes.len(), active)
        };
        assert_eq!(minors("lab"), (4, vec![0x11, 0x12, 0x13]));
        assert_eq!(minors("lab-30-idle"), (4, vec![0x11, 0x12]));
        assert_eq!(minors("lab-only-20"), (4, vec![0x12]));
        assert_eq!(minors("lab-tcp"), (4, vec![0x11, 0x12, 0x13]));
        assert_eq!(TreeSpec::Named("lab-tcp").tree().proto, Proto::Tcp);
        assert_eq!(
            TreeSpec::Named("lab-tcp").tree().classes,
            TreeSpec::Named("lab").tree().classes,
            "the same tree as the UDP case"
        );
        assert_eq!(TreeSpec::Named("lab").tree().proto, Proto::Udp);
        let t = TreeSpec::Named("lab-only-20").tree();
        assert_eq!(t.traffic(6).matches("[[source]]").count(), 1);
    }

    #[test]
    fn config_and_traffic_name_every_class_and_active_leaf() {
        let t = TreeSpec::Named("quantum3").tree();
        let cfg = t.config();
        assert!(cfg.contains("id = \"1:1\"\nrate = \"100000kbit\""), "{cfg}");
        assert!(cfg.contains("quantum = 15140"), "{cfg}");
        assert!(!cfg.contains("burst"), "tc's defaults: {cfg}");
        assert!(cfg.contains("dscp = 14\nflowid = \"1:13\""), "{cfg}");
        let tr = t.traffic(6);
        assert_eq!(tr.matches("[[source]]").count(), 3);
        // 5 Mbit/s leaves may reach the root's 100: offered 115.
        assert!(tr.contains("rate = \"115000000bit\""), "{tr}");
        assert_eq!("seed:12".parse(), Ok(TreeSpec::Seed(12)));
        assert!("quantum9"
            .parse::<TreeSpec>()
            .unwrap_err()
            .contains("quantum3"));
        assert!("seed:x".parse::<TreeSpec>().is_err());
    }
}
