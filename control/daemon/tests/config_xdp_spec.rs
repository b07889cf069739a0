//! `weir check` and `weir run` agree on `[xdp]` (and on the pair and
//! tree names the data path sees): every file the configuration accepts
//! gives a run spec that the data path's own check,
//! `weir_xdp::datapath::RunSpec::validate` (the first thing `DataPath::start`
//! does), accepts too. And where each value is within its key's own range,
//! the two agree both ways: the configuration refuses no combination the
//! data path would run.
//!
//! The refused combinations themselves, each at its FILE:LINE:COL, are in
//! config_errors.rs (`dataplane_and_pair_errors`).

use proptest::prelude::*;
use weir_config::parse_str;
use weir_daemon::run_spec;

#[derive(Clone, Debug)]
struct Case {
    batch: i64,
    ring_size: i64,
    frames: i64,
    frame_size: i64,
    handover_ring: i64,
    busy_poll: bool,
    cores: Vec<i64>,
    /// Distinct IPv4 and IPv6 pass prefixes, and how many are written
    /// twice.
    pass_v4: usize,
    pass_v6: usize,
    pass_repeats: usize,
    queues: i64,
    inside: String,
    tree: String,
}

impl Case {
    fn toml(&self) -> String {
        let mut pass: Vec<String> = (0..self.pass_v4)
            .map(|i| format!("\"198.18.{}.{}/32\"", i / 256, i % 256))
            .chain((0..self.pass_v6).map(|i| format!("\"2001:db8::{i:x}/128\"")))
            .collect();
        let repeats: Vec<String> = pass.iter().take(self.pass_repeats).cloned().collect();
        pass.extend(repeats);
        let cores: Vec<String> = self.cores.iter().map(i64::to_string).collect();
        format!(
            "[xdp]\nbatch = {}\nring_size = {}\nframes = {}\nframe_size = {}\nhandover_ring = {}\nbusy_poll = {}\ncores = [{}]\npass = [{}]\n\n\
             [[pair]]\nname = \"p\"\ninside = {:?}\noutside = \"b0\"\nupload = {:?}\nqueues = {}\n\n\
             [tree.{:?}]\ndefault = \"1:1\"\n[[tree.{:?}.class]]\nid = \"1:1\"\nrate = \"10mbit\"\n",
            self.batch,
            self.ring_size,
            self.frames,
            self.frame_size,
            self.handover_ring,
            self.busy_poll,
            cores.join(", "),
            pass.join(", "),
            self.inside,
            self.tree,
            self.queues,
            self.tree,
            self.tree,
        )
    }

    /// Every value within its own key's range (docs/config.md), so only
    /// the rules between values decide.
    fn each_key_in_range(&self) -> bool {
        let pow2 = |n: i64| n > 0 && (n as u64).is_power_of_two();
        (1..=1024).contains(&self.batch)
            && pow2(self.ring_size)
            && (64..=16384).contains(&self.ring_size)
            && (64..=1 << 20).contains(&self.frames)
            && [2048, 4096].contains(&self.frame_size)
            && (64..=1 << 20).contains(&self.handover_ring)
            && (1..=64).contains(&self.queues)
            && self.inside == "a0"
            && self.tree == "up"
    }
}

/// A file near the edges of every rule, with up to three keys set to
/// anything (out of range, not a power of two, odd names...).
fn case() -> impl Strategy<Value = Case> {
    let wild = prop_oneof![
        prop_oneof![1i64..=1100, Just(0), Just(-1)].prop_map(|v| ("batch", v)),
        prop_oneof![(4u32..=16).prop_map(|e| 1i64 << e), 1i64..=70_000]
            .prop_map(|v| ("ring_size", v)),
        prop_oneof![0i64..=5000, 0i64..=(1 << 21)].prop_map(|v| ("frames", v)),
        prop::sample::select(vec![1024i64, 3000, 8192]).prop_map(|v| ("frame_size", v)),
        prop_oneof![0i64..=200, 0i64..=(1 << 21)].prop_map(|v| ("handover_ring", v)),
        any::<bool>().prop_map(|v| ("busy_poll", i64::from(v))),
        (0i64..8).prop_map(|v| ("core", v)),
        prop_oneof![Just(0i64), Just(65), 1i64..=3].prop_map(|v| ("queues", v)),
        (0i64..5).prop_map(|v| ("inside", v)),
        (0i64..3).prop_map(|v| ("tree", v)),
    ];
    (in_range_case(), prop::collection::vec(wild, 0..=3)).prop_map(|(mut c, wild)| {
        for (key, v) in wild {
            match key {
                "batch" => c.batch = v,
                "ring_size" => c.ring_size = v,
                "frames" => c.frames = v,
                "frame_size" => c.frame_size = v,
                "handover_ring" => c.handover_ring = v,
                "busy_poll" => c.busy_poll = v != 0,
                "core" => c.cores.push(v),
                "queues" => c.queues = v,
                "inside" => {
                    c.inside = ["a\u{0}", "a 0", "a/0", "abcdefghijklmnop", ""][v as usize].into()
                }
                _ => c.tree = ["p/download", "p/upload", "p"][v as usize].into(),
            }
        }
        c
    })
}

/// Every value within its own key's range, near the boundaries of the
/// rules between them.
fn in_range_case() -> impl Strategy<Value = Case> {
    (
        (6u32..=14).prop_map(|e| 1i64 << e),
        prop_oneof![1i64..=40, 1i64..=1024, 8000i64..=8200],
        prop::sample::select(vec![2048i64, 4096]),
        prop_oneof![64i64..=300, 64i64..=(1 << 20)],
        prop_oneof![0usize..4, 250usize..=260],
        prop_oneof![0usize..4, 254usize..=258],
        0usize..3,
        1i64..=4,
        -8i64..=8,
    )
        .prop_map(
            |(
                ring_size,
                b,
                frame_size,
                handover_ring,
                pass_v4,
                pass_v6,
                pass_repeats,
                queues,
                d,
            )| {
                // Batches around half the ring (b past 8000: half the
                // ring plus b - 8100), frames around four batches.
                let batch = if b >= 8000 {
                    (ring_size / 2 + b - 8100).clamp(1, 1024)
                } else {
                    b
                };
                let frames = (4 * batch + d).clamp(64, 1 << 20);
                Case {
                    batch,
                    ring_size,
                    frames,
                    frame_size,
                    handover_ring,
                    busy_poll: false,
                    cores: Vec::new(),
                    pass_v4,
                    pass_v6,
                    pass_repeats,
                    queues,
                    inside: "a0".into(),
                    tree: "up".into(),
                }
            },
        )
}

/// The file's pass list as the data path would get it written raw:
/// duplicates included.
fn pass_as_written(c: &Case) -> Vec<weir_xdp::prog::PassPrefix> {
    let mut pass: Vec<weir_xdp::prog::PassPrefix> = (0..c.pass_v4)
        .map(|i| weir_xdp::prog::PassPrefix {
            addr: std::net::Ipv4Addr::new(198, 18, (i / 256) as u8, (i % 256) as u8).into(),
            len: 32,
        })
        .chain((0..c.pass_v6).map(|i| weir_xdp::prog::PassPrefix {
            addr: std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i as u16).into(),
            len: 128,
        }))
        .collect();
    let repeats: Vec<_> = pass.iter().take(c.pass_repeats).copied().collect();
    pass.extend(repeats);
    pass
}

/// What each side says about `c`: (config accepted, run spec accepted).
fn verdicts(c: &Case) -> (Result<(), String>, Option<Result<(), String>>) {
    match parse_str(&c.toml(), "case.toml") {
        Err(diags) => (
            Err(diags
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n")),
            None,
        ),
        Ok(l) => {
            let spec = run_spec(&l.config, 1);
            (Ok(()), Some(spec.validate().map_err(|e| e.to_string())))
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    #[test]
    fn run_accepts_what_check_accepts(c in case()) {
        let (config, run) = verdicts(&c);
        if config.is_ok() {
            let run = run.expect("a spec for an accepted config");
            prop_assert!(run.is_ok(), "weir check accepts, weir run refuses: {run:?}\n{}", c.toml());
        }
    }

    #[test]
    fn within_key_ranges_check_refuses_only_what_run_refuses(c in in_range_case()) {
        prop_assert!(c.each_key_in_range(), "{:?}", c);
        let (config, _) = verdicts(&c);
        // The same values straight into the data path's spec, past the
        // configuration: the pass list as written (duplicates and all).
        let mut spec = weir_xdp::datapath::RunSpec {
            batch: c.batch as u32,
            ring_size: c.ring_size as u32,
            frames_per_worker: c.frames as u32,
            frame_size: c.frame_size as u32,
            handover_ring: c.handover_ring as u32,
            busy_poll: c.busy_poll,
            cores: c.cores.iter().map(|&n| n as usize).collect(),
            ..weir_xdp::datapath::RunSpec::default()
        };
        let mut pair = weir_xdp::datapath::PairSpec::new("p", "a0", "b0");
        pair.queues = c.queues as u32;
        spec.pairs.push(pair);
        spec.pass = pass_as_written(&c);
        let run = spec.validate();
        prop_assert_eq!(
            config.is_ok(),
            run.is_ok(),
            "config: {:?}\nrun: {:?}\n{}",
            config,
            run,
            c.toml()
        );
    }
}

/// The boundaries, exhaustively: every ring size, the batch at and one
/// past half of it, the frames at and one below four batches.
#[test]
fn boundaries_agree() {
    let mut checked = 0;
    for e in 6..=14 {
        let ring_size = 1i64 << e;
        for batch in [1, ring_size / 2, ring_size / 2 + 1, 1024] {
            for frames in [4 * batch - 1, 4 * batch, 64, 1 << 20] {
                let c = Case {
                    batch,
                    ring_size,
                    frames,
                    frame_size: 2048,
                    handover_ring: 64,
                    busy_poll: false,
                    cores: Vec::new(),
                    pass_v4: 0,
                    pass_v6: 0,
                    pass_repeats: 0,
                    queues: 1,
                    inside: "a0".into(),
                    tree: "up".into(),
                };
                let (config, run) = verdicts(&c);
                let fits =
                    batch <= 1024 && batch <= ring_size / 2 && frames >= 4 * batch && frames >= 64;
                assert_eq!(config.is_ok(), fits, "{config:?}\n{}", c.toml());
                if let Some(run) = run {
                    assert!(run.is_ok(), "{run:?}\n{}", c.toml());
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 9 * 4 * 4);
}

/// The properties above are not vacuous: the strategies give many files
/// the configuration accepts and many it refuses, and in range, many the
/// data path refuses too.
#[test]
fn strategies_reach_both_verdicts() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..2000 {
        let c = case().new_tree(&mut runner).expect("a case").current();
        match verdicts(&c) {
            (Ok(()), Some(Ok(()))) => accepted += 1,
            (Ok(()), Some(Err(e))) => panic!("check accepts, run refuses: {e}\n{}", c.toml()),
            _ => refused += 1,
        }
    }
    assert!(
        accepted >= 100 && refused >= 100,
        "{accepted} accepted, {refused} refused"
    );
    let (mut both_ok, mut both_refuse) = (0, 0);
    for _ in 0..2000 {
        let c = in_range_case()
            .new_tree(&mut runner)
            .expect("a case")
            .current();
        match verdicts(&c) {
            (Ok(()), _) => both_ok += 1,
            (Err(_), _) => both_refuse += 1,
        }
    }
    println!(
        "wide: {accepted} accepted, {refused} refused; in range: {both_ok} accepted, {both_refuse} refused"
    );
    assert!(
        both_ok >= 100 && both_refuse >= 100,
        "{both_ok} accepted, {both_refuse} refused"
    );
}

/// The config crate states the XDP program's pass-table size without
/// depending on the XDP crate (so it builds without libbpf); this is where
/// the two meet.
#[test]
fn the_configs_pass_limit_is_the_xdp_programs() {
    assert_eq!(
        weir_config::xdp::PASS_PREFIX_MAX,
        weir_xdp::prog::PASS_PREFIX_MAX
    );
}
