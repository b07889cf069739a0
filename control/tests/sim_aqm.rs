//! Leaf AQM under responsive traffic: FQ-CoDel keeps the standing queue
//! near its 5 ms target (marking ECN-capable flows, dropping the others)
//! where a 1000-packet pfifo lets Reno fill it; and a sparse flow beside
//! bulk flows is served almost at once.

mod sim_util;

use sim_util::*;

/// One 10 Mbit/s class with the given leaf qdisc.
fn ten_mbit(qdisc: &str) -> weir_control::config::Config {
    config(&format!(
        r#"
[tree.t]
default = "1:1"

[[tree.t.class]]
id = "1:1"
rate = "10mbit"
ceil = "10mbit"
qdisc = {qdisc}
"#
    ))
}

/// Four Reno-like connections (20 ms base RTT) saturating the class,
/// measured after a 2 s convergence period; optionally a sparse flow (one
/// 100-byte packet every 10 ms) beside them.
fn bulk(ecn: &str, sparse: bool) -> String {
    let mut t = format!(
        r#"
duration = "12s"
warmup = "2s"
seed = 3

[[source]]
name = "bulk"
kind = "tcp"
rtt = "20ms"
count = 4
size = 1500
ecn = "{ecn}"
"#
    );
    if sparse {
        t.push_str(
            r#"
[[source]]
name = "sparse"
interval = "10ms"
size = 100
"#,
        );
    }
    t
}

const FQ_CODEL: &str = r#"{ kind = "fq_codel" }"#;
const PFIFO_1000: &str = r#"{ kind = "pfifo", limit = 1000 }"#;

/// Serialisation time of one 1500-byte frame at 10 Mbit/s: what a packet
/// arriving while the shaper waits to release the next bulk packet may
/// have to wait, whatever the queue discipline.
const ONE_FRAME_AT_10_MBIT_NS: u64 = 1500 * 8 * 100;

#[test]
#[cfg_attr(debug_assertions, ignore = "heavy: run in release by scripts/test.sh")]
fn fq_codel_marks_ecn_flows_and_keeps_the_queue_short() {
    let r = run(&ten_mbit(FQ_CODEL), &bulk("ect0", false));
    let c = class(&r, "1:1");
    let s = source(&r, "bulk");
    assert!(c.ce_marks > 0, "ECT flows must be marked");
    assert!(
        c.dropped.packets * 1000 <= c.sent.packets,
        "{} drops for {} sent: ECN flows should (almost) never be dropped; by reason {:?}",
        c.dropped.packets,
        c.sent.packets,
        c.drops
    );
    assert!(s.tcp.unwrap().window_reductions > 0);
    assert!(
        c.achieved_bps >= 9_000_000,
        "link underused: {}",
        c.achieved_bps
    );
    let soj = c.sojourn.expect("packets were sent");
    assert!(
        soj.p50_ns <= 10_000_000,
        "median sojourn {:.3} ms, want <= 10 ms",
        soj.p50_ns as f64 / 1e6
    );
}

#[test]
#[cfg_attr(debug_assertions, ignore = "heavy: run in release by scripts/test.sh")]
fn fq_codel_drops_non_ecn_flows_and_keeps_the_queue_short() {
    let r = run(&ten_mbit(FQ_CODEL), &bulk("not-ect", false));
    let c = class(&r, "1:1");
    assert_eq!(c.ce_marks, 0, "not-ECT packets cannot be marked");
    assert!(
        c.drops.get("codel").copied().unwrap_or(0) > 0,
        "CoDel must drop: {:?}",
        c.drops
    );
    assert!(
        c.achieved_bps >= 9_000_000,
        "link underused: {}",
        c.achieved_bps
    );
    let soj = c.sojourn.expect("packets were sent");
    assert!(
        soj.p50_ns <= 10_000_000,
        "median sojourn {:.3} ms, want <= 10 ms",
        soj.p50_ns as f64 / 1e6
    );
}

#[test]
#[cfg_attr(debug_assertions, ignore = "heavy: run in release by scripts/test.sh")]
fn pfifo_lets_reno_build_a_standing_queue() {
    for ecn in ["ect0", "not-ect"] {
        let r = run(&ten_mbit(PFIFO_1000), &bulk(ecn, false));
        let c = class(&r, "1:1");
        let soj = c.sojourn.expect("packets were sent");
        assert!(
            soj.p50_ns >= 100_000_000,
            "{ecn}: median sojourn {:.3} ms, want >= 100 ms",
            soj.p50_ns as f64 / 1e6
        );
        assert_eq!(c.ce_marks, 0);
        assert!(c.drops.get("queue_limit").copied().unwrap_or(0) > 0);
    }
}

#[test]
#[cfg_attr(debug_assertions, ignore = "heavy: run in release by scripts/test.sh")]
fn fq_codel_serves_a_sparse_flow_at_once() {
    // Its packets skip the bulk flows' queues (FQ-CoDel's new-flow list).
    // NOTE: at 10 Mbit/s a 1500-byte bulk frame takes 1.2 ms, and a sparse
    // packet that arrives just after one was released waits for the
    // shaper's next slot (up to that 1.2 ms), and up to two frames when its
    // flow is still on the old-flow list (FQ-CoDel removes an emptied flow
    // only when the round reaches it: ~2 frames per bulk flow x 4 flows ~
    // 9.6 ms, close to the 10 ms interval). The 1 ms bound is the one asked
    // for; both variants are measured before asserting, so a failure shows
    // both.
    let mut p99 = Vec::new();
    for ecn in ["ect0", "not-ect"] {
        let r = run(&ten_mbit(FQ_CODEL), &bulk(ecn, true));
        let sparse = source(&r, "sparse");
        assert_eq!(sparse.dropped.packets, 0);
        let soj = sparse.sojourn.expect("sparse packets were sent");
        assert!(
            soj.p50_ns < 1_000_000,
            "{ecn}: sparse median sojourn {:.3} ms, want < 1 ms",
            soj.p50_ns as f64 / 1e6
        );
        p99.push(format!(
            "{ecn}: p99 {:.3} ms (max {:.3} ms)",
            soj.p99_ns as f64 / 1e6,
            soj.max_ns as f64 / 1e6
        ));
        assert_eq!(sparse.ce_marks, 0);
        if soj.p99_ns >= 1_000_000 {
            p99.push("^ not < 1 ms".to_string());
        }
    }
    assert!(
        !p99.iter().any(|l| l.starts_with('^')),
        "sparse flow sojourn, want p99 < 1 ms (one 1500-byte frame at 10 Mbit/s alone takes \
         {:.1} ms):\n{}",
        ONE_FRAME_AT_10_MBIT_NS as f64 / 1e6,
        p99.join("\n")
    );
}

#[test]
#[cfg_attr(debug_assertions, ignore = "heavy: run in release by scripts/test.sh")]
fn pfifo_makes_the_sparse_flow_wait_behind_the_bulk() {
    let r = run(&ten_mbit(PFIFO_1000), &bulk("not-ect", true));
    let soj = source(&r, "sparse")
        .sojourn
        .expect("sparse packets were sent");
    assert!(soj.p50_ns >= 100_000_000, "{soj:?}");
}
