//! weir forwards everything both ways, unshaped and shaped, and every frame
//! is accounted for (root; real veth in throwaway namespaces).

mod datapath_support;

use std::net::SocketAddrV4;
use std::time::Duration;

use datapath_support::{pfifo_root, ping, serial, Topo};
use weir_testkit::netns;
use weir_xdp::datapath::{PairSpec, RunError, RunSpec, TreeSpec};

#[test]
fn ping_and_udp_cross_weir_both_ways_and_frames_balance() {
    if !netns::require_root() {
        return;
    }
    let _serial = serial();
    let topo = Topo::new("rfwd", 1).expect("topology");
    let mut pair = PairSpec::new("p", &topo.if_in, &topo.if_out);
    // Upload shaped (a generous 100 Mbit/s pfifo), download unshaped.
    pair.upload = Some(TreeSpec {
        name: "up".into(),
        shaper: pfifo_root(12_500_000, 1000),
    });
    let spec = RunSpec {
        pairs: vec![pair],
        ..RunSpec::default()
    };
    let dp = topo.start(spec).expect("start weir");
    assert_eq!(dp.placement().len(), 1);
    assert_eq!(
        dp.placement()[0].trees,
        vec!["up".to_string(), "p/download".to_string()]
    );

    // ICMP both ways (ARP resolves through weir first).
    let got = ping(&topo.a, topo.addr_b, 5, Duration::from_secs(5)).expect("ping A→B");
    assert_eq!(got, 5, "ping A→B");
    let got = ping(&topo.b, topo.addr_a, 5, Duration::from_secs(5)).expect("ping B→A");
    assert_eq!(got, 5, "ping B→A");
    // UDP both ways.
    let got = netns::udp_probe(&topo.a, &topo.b, topo.addr_b, 50, Duration::from_secs(3)).unwrap();
    assert_eq!(got, 50, "UDP A→B");
    let got = netns::udp_probe(&topo.b, &topo.a, topo.addr_a, 50, Duration::from_secs(3)).unwrap();
    assert_eq!(got, 50, "UDP B→A");

    let snap = dp.snapshot().expect("snapshot");
    assert!(snap.consistent(), "{snap:#?}");
    let up = snap.tree("up").unwrap();
    let down = snap.tree("p/download").unwrap();
    assert!(up.shaped && !down.shaped);
    assert!(up.frames.sent >= 60, "{up:?}");
    assert!(down.frames.sent >= 60, "{down:?}");
    let w = &snap.workers[0];
    assert!(w.counters.rx_packets >= 120, "{w:?}");
    let inside = &snap.interfaces[0];
    assert!(inside.xdp.redirected > 0, "{inside:?}");

    // A short flood, then stop: everything balances after the flush.
    let dst = SocketAddrV4::new(topo.addr_b, 9);
    datapath_support::udp_flood(
        &topo.a,
        dst,
        1000,
        50_000_000,
        Duration::from_millis(500),
        4,
        100_000,
    )
    .unwrap();
    let report = dp.stop().expect("stop");
    assert!(report.balanced, "{report:#?}");
    assert!(report.umem_free_or_fill, "{report:#?}");
    for w in &report.last.workers {
        assert_eq!(w.frames.lent, 0, "{w:?}");
        assert_eq!(w.frames.handover, 0, "{w:?}");
        assert_eq!(w.frames.queued, 0, "{w:?}");
    }
    for t in &report.last.trees {
        assert_eq!(t.frames.queued, 0, "{t:?}");
    }
}

#[test]
fn start_errors_name_what_failed_and_undo_everything() {
    if !netns::require_root() {
        return;
    }
    let _serial = serial();
    let topo = Topo::new("rerr", 1).expect("topology");
    // Not a valid spec: refused before touching anything.
    let bad = RunSpec {
        pairs: vec![PairSpec::new("p", &topo.if_in, &topo.if_out)],
        frame_size: 3000,
        ..RunSpec::default()
    };
    assert!(matches!(topo.start(bad), Err(RunError::InvalidSpec { .. })));
    // A missing interface.
    let missing = RunSpec {
        pairs: vec![PairSpec::new("p", &topo.if_in, "nosuchif0")],
        ..RunSpec::default()
    };
    match topo.start(missing) {
        Err(e @ RunError::InterfaceMissing { .. }) => {
            assert!(e.to_string().contains("nosuchif0"), "{e}")
        }
        other => panic!("expected InterfaceMissing, got {:?}", other.err()),
    }
    // More queues than the veth has: the programs attached first are
    // detached again, so a correct start right after works.
    let mut pair = PairSpec::new("p", &topo.if_in, &topo.if_out);
    pair.queues = 2;
    let too_many = RunSpec {
        pairs: vec![pair],
        ..RunSpec::default()
    };
    match topo.start(too_many) {
        Err(
            e @ RunError::TooFewQueues {
                asked: 2, has: 1, ..
            },
        ) => {
            assert!(e.to_string().contains(&topo.if_in), "{e}")
        }
        other => panic!("expected TooFewQueues, got {:?}", other.err()),
    }
    let dp = topo
        .start(RunSpec {
            pairs: vec![PairSpec::new("p", &topo.if_in, &topo.if_out)],
            ..RunSpec::default()
        })
        .expect("start after failed starts");
    assert_eq!(
        ping(&topo.a, topo.addr_b, 2, Duration::from_secs(3)).unwrap(),
        2
    );
    // Stopping detaches: the interfaces forward nothing by themselves (no
    // bridge), and a new start can attach again.
    dp.stop().expect("stop");
    let dp = topo
        .start(RunSpec {
            pairs: vec![PairSpec::new("p", &topo.if_in, &topo.if_out)],
            ..RunSpec::default()
        })
        .expect("start after stop");
    drop(dp);
}
