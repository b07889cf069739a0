//! TCP crosses weir both ways, and after more than a million packets every
//! frame is accounted for: per tree, received equals sent plus dropped (by
//! reason) plus queued, and every UMEM frame is in exactly one place (root;
//! real veth in throwaway namespaces).

mod datapath_support;

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use datapath_support::{
    iperf3_client, iperf3_server, json_number, pfifo_root, serial, udp_flood, Topo,
};
use weir_testkit::netns;
use weir_xdp::datapath::{PairSpec, RunSpec, TreeSpec};

#[test]
fn tcp_both_ways_and_a_million_packets_balance() {
    if !netns::require_root() {
        return;
    }
    if netns::output(&["iperf3", "--version"]).is_err() {
        panic!("this test needs iperf3 (apt-get install iperf3)");
    }
    let _serial = serial();
    let topo = Topo::new("racc", 1).expect("topology");
    let mut pair = PairSpec::new("p", &topo.if_in, &topo.if_out);
    // 200 Mbit/s upload tree; download unshaped.
    pair.upload = Some(TreeSpec {
        name: "up".into(),
        shaper: pfifo_root(25_000_000, 1000),
    });
    let dp = topo
        .start(RunSpec {
            pairs: vec![pair],
            ..RunSpec::default()
        })
        .expect("start weir");
    let b = topo.addr_b.to_string();

    // TCP A→B, then B→A (-R), each bounded by `timeout`.
    for reverse in [false, true] {
        let _server = iperf3_server(&topo.b, 5201, 20).expect("iperf3 server");
        let mut args = vec!["-c", b.as_str(), "-p", "5201", "-t", "2"];
        if reverse {
            args.push("-R");
        }
        let json = iperf3_client(&topo.a, &args, 15).expect("iperf3 client");
        let bps = json_number(&json, "\"sum_received\"", "bits_per_second").unwrap_or(0.0);
        eprintln!(
            "TCP {}: {:.1} Mbit/s",
            if reverse { "B→A" } else { "A→B" },
            bps * 1e-6
        );
        assert!(
            bps > 1e6,
            "TCP {} did not flow: {json}",
            if reverse { "B→A" } else { "A→B" }
        );
    }

    // Small datagrams both ways until weir has taken a million frames
    // (bounded: 90 s at most).
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut total = 0;
    while total < 1_000_000 && Instant::now() < deadline {
        std::thread::scope(|s| {
            let up = s.spawn(|| {
                let dst = SocketAddrV4::new(topo.addr_b, 9);
                udp_flood(
                    &topo.a,
                    dst,
                    18,
                    u64::MAX / 2,
                    Duration::from_secs(3),
                    8,
                    400_000,
                )
            });
            let down = s.spawn(|| {
                let dst = SocketAddrV4::new(topo.addr_a, 9);
                udp_flood(
                    &topo.b,
                    dst,
                    18,
                    u64::MAX / 2,
                    Duration::from_secs(3),
                    8,
                    400_000,
                )
            });
            std::thread::sleep(Duration::from_millis(500));
            let mid = dp.snapshot().expect("snapshot");
            assert!(mid.consistent(), "{mid:#?}");
            up.join().unwrap().unwrap();
            down.join().unwrap().unwrap();
        });
        let snap = dp.snapshot().expect("snapshot");
        assert!(snap.consistent(), "{snap:#?}");
        total = snap.trees.iter().map(|t| t.frames.received).sum::<u64>();
        eprintln!("frames received so far: {total}");
    }
    assert!(total >= 1_000_000, "only {total} frames in 90 s");

    let report = dp.stop().expect("stop");
    let last = &report.last;
    eprintln!("queued at stop: {:?}", report.queued_at_stop);
    for t in &last.trees {
        eprintln!("{}: {:?}", t.name, t.frames);
        assert!(t.frames.balanced(), "{t:?}");
        assert_eq!(t.frames.queued, 0);
    }
    for w in &last.workers {
        eprintln!("worker {}: {:?} {:?}", w.index, w.frames, w.counters);
        assert!(w.frames.accounted(), "{w:?}");
        // After the stop every frame is back: nothing left on the way out
        // or with another worker, and the free list plus the fill rings
        // hold the whole share.
        let f = &w.frames;
        assert_eq!((f.tx, f.lent), (0, 0), "worker {}: {f:?}", w.index);
        assert_eq!(f.queued + f.handover, 0, "worker {}: {f:?}", w.index);
        assert_eq!(f.free + f.fill, f.total, "worker {}: {f:?}", w.index);
        assert!(f.free_or_fill(), "{f:?}");
        // Whatever the kernel gave weir reached a tree.
        assert_eq!(
            w.counters.rx_packets,
            last.trees.iter().map(|t| t.frames.received).sum::<u64>()
        );
    }
    for i in &last.interfaces {
        eprintln!("{}: {:?}", i.name, i);
    }
    assert!(report.balanced && report.umem_free_or_fill);
}
