//! End-to-end shaping on veth: the lab tree (seed section 1.2 scaled to a
//! 100 Mbit/s root: 1:10 30/60 prio 1, 1:20 50/80 prio 2, 1:30 20/100
//! prio 3; DSCP EF → 1:10, AF41 → 1:20, the rest → 1:30) shaping real UDP
//! traffic between two network namespaces. Each class gets what HTB
//! promises, within ±3 %, measured at the receiving host:
//!
//! - all three saturated: each class its rate, 30 / 50 / 20 (both
//!   directions);
//! - 1:30 idle: its 20 Mbit/s goes to the lowest prio value first, so
//!   1:10 (prio 1) borrows all of it up to its ceil: 50 / 50;
//! - only 1:20 active: it borrows up to its ceil, 80.
//!
//! The tree is config/lab.toml as it is, with tc's defaults where the
//! seed leaves a value open: no `burst`/`cburst` (1600 bytes at these
//! rates) and 1000-packet pfifo leaves; `config()` checks that it stays so.
//!
//! Every flow offers 90 Mbit/s of payload (92.6 Mbit/s of frames), above
//! each ceil that matters, so a class is always backlogged and HTB alone
//! decides its rate. Rates are of Ethernet frames (1514 bytes for a
//! 1472-byte payload), which is what HTB charges; see `lab::FRAME_PER_PAYLOAD`.
//!
//! weir's worker runs SCHED_FIFO (the default `worker_rtprio`), so busy
//! processes on the box do not delay its wake-ups: with tc's default
//! bursts and two `yes` loops beside the test, every class stayed within
//! 0.2 % on its first attempt (docs/lab.md has the table); at nice -10
//! (and 15 kB bursts) the borrowing class was 5-10 % short. What FIFO cannot help is the
//! hypervisor stopping the VM (steal): a case that misses while a CPU
//! loses more than `lab::STEAL_RETRY_PCT` % to steal waits for a quiet
//! host and runs again, and if every attempt is disturbed, the same flows
//! run through kernel HTB (the lab's twin) and weir in turn and weir may
//! be no more than 1 point of the parent's rate worse than the kernel
//! (see `lab::rate_test`). Every attempt checks the frame accounting and
//! the worker's scheduling whatever the rates did.
//!
//! Needs root and a release build (scripts/test.sh runs it):
//! `cargo test -p weir --release --test e2e_shaping`.

mod lab;

use lab::{Host, Lab, Rate, UdpFlow};

/// Seconds of traffic per flow. The flows start `lab::STAGGER` apart and
/// the first second after the last start is not measured, which leaves
/// four or five whole seconds with every flow running.
const SECS: u32 = 7;
/// Offered payload rate per flow, Mbit/s.
const OFFERED: u32 = 90;

const EF: UdpFlow = UdpFlow {
    dscp: Some("EF"),
    port: 5301,
    mbit: OFFERED,
};
const AF41: UdpFlow = UdpFlow {
    dscp: Some("AF41"),
    port: 5302,
    mbit: OFFERED,
};
const UNMARKED: UdpFlow = UdpFlow {
    dscp: None,
    port: 5303,
    mbit: OFFERED,
};

/// config/lab.toml as it is, after checking that it still uses tc's
/// defaults where the seed leaves a value open (what an operator writes):
/// no `burst`/`cburst`, so every class gets tc's default of rate/10⁹ +
/// 1600 bytes (1600 bytes at these rates), and pfifo leaves without a
/// `limit`, so they hold tc's 1000 packets. This test is what shows that
/// those defaults are enough on a real path.
fn config() -> std::path::PathBuf {
    let path = lab::repo_root().join("config/lab.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let doc: toml::Table = text
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let trees = doc
        .get("tree")
        .and_then(toml::Value::as_table)
        .expect("config/lab.toml has [tree.*]");
    let mut classes = 0;
    for (name, tree) in trees {
        let list = tree
            .get("class")
            .and_then(toml::Value::as_array)
            .expect("every tree has [[tree.NAME.class]]");
        for class in list.iter().filter_map(toml::Value::as_table) {
            classes += 1;
            for key in ["burst", "cburst"] {
                assert!(
                    !class.contains_key(key),
                    "config/lab.toml tree {name}: a class sets `{key}`; the e2e tests run tc's defaults: {class:?}"
                );
            }
            if let Some(q) = class.get("qdisc").and_then(toml::Value::as_table) {
                if q.get("kind").and_then(toml::Value::as_str) == Some("pfifo") {
                    assert!(
                        q.get("limit").is_none(),
                        "config/lab.toml tree {name}: a pfifo sets `limit`; the e2e tests run tc's default: {q:?}"
                    );
                }
            }
        }
    }
    assert_eq!(
        classes, 8,
        "config/lab.toml changed: expected two trees of 4 classes; update this test"
    );
    // `weir check` shows the bursts as tc would: 1600 bytes everywhere.
    let shown = lab::run_ok(
        &[lab::weir_bin(), "check", path.to_str().expect("UTF-8 path")],
        std::time::Duration::from_secs(10),
    );
    let defaults = shown
        .lines()
        .filter(|l| l.contains("burst 1600b cburst 1600b"))
        .count();
    assert_eq!(
        defaults, classes,
        "not every class shows tc's default burst:\n{shown}"
    );
    path
}

/// The rates of one run of `flows`, as [`lab::Rate`]s of case `name`.
fn rates_of(name: &str, flows: &[(UdpFlow, &str, f64)], achieved: &[f64]) -> Vec<Rate> {
    flows
        .iter()
        .zip(achieved)
        .map(|((_, class, promised), got)| Rate::new(name, class, *got, *promised))
        .collect()
}

/// Runs one case: `flows` from `from`, each compared with its promise by
/// `lab::rate_test` (re-run on a disturbed host, compared with kernel HTB
/// if the host never settles). Flows start in the order given, the
/// unmarked one last (see `Lab::udp_flows` for why).
fn case(name: &str, from: Host, flows: &[(UdpFlow, &str, f64)]) {
    lab::require_root();
    let specs: Vec<UdpFlow> = flows.iter().map(|f| f.0).collect();
    let weir = || {
        let mut lab = Lab::up("sh");
        let cfg = config();
        lab.start_weir(&cfg);
        let achieved = lab.udp_flows(from, &specs, SECS);
        let report = lab.stop_weir();
        lab::say(&lab::wake_note(&report));

        // The worker runs real-time (the default `worker_rtprio`), which is
        // what keeps its wake-ups on time when the box is busy.
        for w in report["workers"].as_array().expect("workers in the report") {
            assert_eq!(
                w["sched"], "fifo 10",
                "worker not SCHED_FIFO 10 (see weir's warning in its log): {w}"
            );
            // Shaped classes wait for tokens, so the worker slept until
            // deadlines and says how late it woke for them.
            assert!(
                lab::num(&w["wake_late"]["count"], "wake_late.count") > 0,
                "no deadline wake-ups recorded while shaping: {w}"
            );
        }

        // Frame accounting must hold after any run, also with drops.
        let tree = from.tree();
        let frames = &lab::tree_of(&report, tree)["frames"];
        assert_eq!(
            frames["balanced"], true,
            "tree {tree} frames unbalanced: {frames}"
        );
        assert_eq!(
            report["accounting"]["umem_free_or_fill"], true,
            "UMEM frames not all back after the stop: {}",
            report["accounting"]
        );
        rates_of(name, flows, &achieved)
    };
    let kernel = || {
        let mut lab = Lab::up("shk");
        let cfg = config();
        lab.twin(&cfg);
        let achieved = lab.udp_flows(from.twin(), &specs, SECS);
        rates_of(name, flows, &achieved)
    };
    lab::rate_test(name, weir, kernel);
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "end-to-end: runs in release (scripts/test.sh)"
)]
fn upload_all_saturated_get_their_rates() {
    case(
        "A→B all saturated",
        Host::A,
        &[
            (EF, "1:10", 30.0),
            (AF41, "1:20", 50.0),
            (UNMARKED, "1:30", 20.0),
        ],
    );
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "end-to-end: runs in release (scripts/test.sh)"
)]
fn upload_low_idle_excess_goes_to_prio_1() {
    case(
        "A→B 1:30 idle",
        Host::A,
        &[(EF, "1:10", 50.0), (AF41, "1:20", 50.0)],
    );
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "end-to-end: runs in release (scripts/test.sh)"
)]
fn upload_only_medium_borrows_to_ceil() {
    case("A→B only 1:20", Host::A, &[(AF41, "1:20", 80.0)]);
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "end-to-end: runs in release (scripts/test.sh)"
)]
fn download_all_saturated_get_their_rates() {
    case(
        "B→A all saturated",
        Host::B,
        &[
            (EF, "1:10", 30.0),
            (AF41, "1:20", 50.0),
            (UNMARKED, "1:30", 20.0),
        ],
    );
}

/// The kernel comparison that judges a rate test on a host that never
/// settles (`lab::rate_test`) fails when weir's median error is more than
/// one point of the parent's rate larger than the kernel's, and not
/// otherwise. Pure arithmetic on made-up rates: runs anywhere, also in
/// debug.
#[test]
fn kernel_comparison_fails_when_weir_is_more_than_a_point_worse() {
    let run = |got: &[f64]| -> Vec<Rate> {
        got.iter()
            .zip(["1:10", "1:20"])
            .map(|(g, class)| Rate::new("case", class, *g, 30.0))
            .collect()
    };
    // 1:10: weir 2.0 short, kernel 0.5 short: 1.5 points worse. 1:20:
    // both 0.2 short.
    let weir_short = [run(&[28.0, 29.8]), run(&[28.0, 29.8]), run(&[28.0, 29.8])];
    let kernel_close = [run(&[29.5, 29.8]), run(&[29.5, 29.8]), run(&[29.5, 29.8])];
    let (table, worse) = lab::compare_with_kernel(&weir_short, &kernel_close, 0.5);
    assert_eq!(worse.len(), 1, "{table}");
    assert!(
        worse[0].contains("1:10") && worse[0].contains("WORSE"),
        "{table}"
    );
    // The same while the hypervisor took 5 % of a CPU: a shortfall of up
    // to 5 % of the promise (1.5 points of 1:10's 30 under 100) is what a
    // shaper loses while it is not scheduled; 1.5 worse passes. 30 %
    // steal explains nothing (the attempt says nothing), nor does 1 %.
    let (table, worse) = lab::compare_with_kernel(&weir_short, &kernel_close, 5.0);
    assert!(worse.is_empty(), "{table}");
    assert!(table.contains("stolen at 5.0 % steal"), "{table}");
    for steal in [1.0, 30.0] {
        let (table, worse) = lab::compare_with_kernel(&weir_short, &kernel_close, steal);
        assert_eq!(worse.len(), 1, "{steal}: {table}");
    }
    // One weir run 5 points short (a burst of steal), the other two 0.8
    // worse than the kernel's median: the median passes.
    let (table, worse) = lab::compare_with_kernel(
        &[run(&[25.0, 30.0]), run(&[28.7, 30.0]), run(&[28.7, 30.0])],
        &[run(&[29.5, 30.0]), run(&[29.5, 30.0]), run(&[29.9, 30.0])],
        0.5,
    );
    assert!(worse.is_empty(), "{table}");
    // Two of three weir runs 2 points short: the median fails.
    let (table, worse) = lab::compare_with_kernel(
        &[run(&[28.0, 30.0]), run(&[30.0, 30.0]), run(&[28.0, 30.0])],
        &[run(&[30.0, 30.0]), run(&[30.0, 30.0]), run(&[30.0, 30.0])],
        0.5,
    );
    assert_eq!(worse.len(), 1, "{table}");
    // Errors count both ways: 2 points over the promise is as bad as 2
    // under, and steal never explains an excess; weir better than the
    // kernel passes however far off both are.
    for steal in [0.5, 10.0] {
        let (table, worse) =
            lab::compare_with_kernel(&[run(&[32.0, 26.0])], &[run(&[30.0, 25.0])], steal);
        assert_eq!(worse.len(), 1, "{table}");
        assert!(worse[0].contains("1:10"), "{table}");
    }
}
