//! Two rx queues, two workers: the two directions of a pair are owned by
//! different workers, frames that arrive on the other worker's queue are
//! handed over, and every frame is still accounted for (root; real
//! 2-queue veth in throwaway namespaces).

mod datapath_support;

use std::net::SocketAddrV4;
use std::time::Duration;

use datapath_support::{pfifo_root, serial, udp_flood, Topo};
use weir_testkit::netns;
use weir_xdp::datapath::{PairSpec, RunSpec, TreeSpec};

#[test]
fn two_queues_split_directions_and_hand_over() {
    if !netns::require_root() {
        return;
    }
    let _serial = serial();
    let topo = Topo::new("rmq", 2).expect("topology");
    let mut pair = PairSpec::new("p", &topo.if_in, &topo.if_out);
    pair.queues = 2;
    pair.upload = Some(TreeSpec {
        name: "up".into(),
        shaper: pfifo_root(12_500_000, 1000),
    });
    pair.download = Some(TreeSpec {
        name: "down".into(),
        shaper: pfifo_root(12_500_000, 1000),
    });
    let dp = topo
        .start(RunSpec {
            pairs: vec![pair],
            cores: vec![0, 1],
            ..RunSpec::default()
        })
        .expect("start weir");
    let placement = dp.placement();
    assert_eq!(placement.len(), 2);
    assert_eq!((placement[0].queue, placement[0].core), (0, Some(0)));
    assert_eq!((placement[1].queue, placement[1].core), (1, Some(1)));
    assert_eq!(placement[0].trees, vec!["up".to_string()]);
    assert_eq!(placement[1].trees, vec!["down".to_string()]);

    assert_eq!(
        datapath_support::ping(&topo.a, topo.addr_b, 3, Duration::from_secs(5)).unwrap(),
        3
    );
    assert_eq!(
        datapath_support::ping(&topo.b, topo.addr_a, 3, Duration::from_secs(5)).unwrap(),
        3
    );

    // Many flows each way: the senders' veths spread them over both
    // queues by flow hash, so each worker receives frames of the direction
    // it does not own.
    std::thread::scope(|s| {
        let up = s.spawn(|| {
            let dst = SocketAddrV4::new(topo.addr_b, 9);
            udp_flood(
                &topo.a,
                dst,
                500,
                20_000_000,
                Duration::from_secs(2),
                32,
                20_000,
            )
        });
        let down = s.spawn(|| {
            let dst = SocketAddrV4::new(topo.addr_a, 9);
            udp_flood(
                &topo.b,
                dst,
                500,
                20_000_000,
                Duration::from_secs(2),
                32,
                20_000,
            )
        });
        std::thread::sleep(Duration::from_secs(1));
        let mid = dp.snapshot().expect("snapshot");
        assert!(mid.consistent(), "{mid:#?}");
        up.join().unwrap().unwrap();
        down.join().unwrap().unwrap();
    });
    std::thread::sleep(Duration::from_millis(200));
    let snap = dp.snapshot().expect("snapshot");
    assert!(snap.consistent(), "{snap:#?}");
    let (w0, w1) = (&snap.workers[0], &snap.workers[1]);
    eprintln!("worker 0: {:?}\nworker 1: {:?}", w0.counters, w1.counters);
    assert!(w0.counters.rx_packets > 0 && w1.counters.rx_packets > 0);
    let out = w0.counters.handover_out + w1.counters.handover_out;
    let inn = w0.counters.handover_in + w1.counters.handover_in;
    assert!(out > 0, "no frame was handed over");
    assert_eq!(
        out,
        inn + snap.workers.iter().map(|w| w.frames.handover).sum::<u64>()
    );
    assert_eq!(snap.tree("up").unwrap().worker, 0);
    assert_eq!(snap.tree("down").unwrap().worker, 1);
    for t in &snap.trees {
        assert!(t.frames.received > 1000, "{t:?}");
    }

    let report = dp.stop().expect("stop");
    assert!(report.balanced && report.umem_free_or_fill, "{report:#?}");
    for w in &report.last.workers {
        assert_eq!((w.frames.lent, w.frames.handover), (0, 0), "{w:?}");
    }
}
