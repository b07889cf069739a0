//! A pfifo tree with a 10 Mbit/s root shapes a 50 Mbit/s UDP flood to
//! 10 Mbit/s, frame accounting holds during the run, and `change_class`
//! halving the rate takes effect without dropping what is queued (root;
//! real veth in throwaway namespaces).

mod datapath_support;

use std::net::SocketAddrV4;
use std::time::Duration;

use datapath_support::{pfifo_root, serial, udp_flood, Topo};
use weir_dataplane::htb::ClassChange;
use weir_dataplane::packet::DropReason;
use weir_testkit::netns;
use weir_xdp::datapath::{DataPath, PairSpec, RunSpec, Snapshot, TreeSpec};

/// Bytes/s sent by class 0 of `tree` between two snapshots.
fn rate(a: &Snapshot, b: &Snapshot, tree: &str) -> f64 {
    let ba = a.tree(tree).unwrap().classes[0].bytes;
    let bb = b.tree(tree).unwrap().classes[0].bytes;
    (bb - ba) as f64 * 1e9 / (b.at_ns - a.at_ns) as f64
}

fn measure(dp: &DataPath, tree: &str, warmup: Duration, span: Duration) -> (f64, Snapshot) {
    std::thread::sleep(warmup);
    let s1 = dp.snapshot().expect("snapshot");
    assert!(s1.consistent(), "{s1:#?}");
    std::thread::sleep(span);
    let s2 = dp.snapshot().expect("snapshot");
    assert!(s2.consistent(), "{s2:#?}");
    (rate(&s1, &s2, tree), s2)
}

#[test]
fn pfifo_root_shapes_udp_flood_and_change_class_halves_it() {
    if !netns::require_root() {
        return;
    }
    let _serial = serial();
    let topo = Topo::new("rshp", 1).expect("topology");
    let mut pair = PairSpec::new("p", &topo.if_in, &topo.if_out);
    pair.upload = Some(TreeSpec {
        name: "up".into(),
        // 10 Mbit/s.
        shaper: pfifo_root(1_250_000, 1000),
    });
    let dp = topo
        .start(RunSpec {
            pairs: vec![pair],
            ..RunSpec::default()
        })
        .expect("start weir");
    // Resolve ARP before the flood.
    assert!(datapath_support::ping(&topo.a, topo.addr_b, 1, Duration::from_secs(3)).unwrap() == 1);

    let dst = SocketAddrV4::new(topo.addr_b, 5201);
    let (r10, r5, mid) = std::thread::scope(|s| {
        let flood = s.spawn(|| {
            // 50 Mbit/s of 1472-byte datagrams for 7 s (≈ 30,000 packets).
            udp_flood(
                &topo.a,
                dst,
                1472,
                50_000_000,
                Duration::from_secs(7),
                1,
                40_000,
            )
        });
        let (r10, mid) = measure(
            &dp,
            "up",
            Duration::from_millis(700),
            Duration::from_secs(2),
        );
        let before = mid.tree("up").unwrap().frames;
        dp.change_class(
            "up",
            0,
            ClassChange {
                rate: Some(625_000),
                ceil: Some(625_000),
                ..ClassChange::default()
            },
        )
        .expect("change_class");
        let (r5, after) = measure(
            &dp,
            "up",
            Duration::from_millis(500),
            Duration::from_secs(2),
        );
        let after = after.tree("up").unwrap().frames;
        // The change dropped nothing that was queued.
        assert_eq!(
            after.dropped[DropReason::Flushed.index()],
            before.dropped[DropReason::Flushed.index()]
        );
        let sent = flood.join().unwrap().unwrap();
        assert!(sent > 20_000, "flood sent only {sent}");
        (r10, r5, mid)
    });
    let up = mid.tree("up").unwrap();
    eprintln!(
        "10 Mbit/s class: {:.3} Mbit/s; after change to 5 Mbit/s: {:.3} Mbit/s; drops {:?}",
        r10 * 8e-6,
        r5 * 8e-6,
        up.frames.dropped
    );
    assert!(
        (r10 - 1_250_000.0).abs() < 0.05 * 1_250_000.0,
        "rate {r10} B/s, want 1.25e6 ±5 %"
    );
    assert!(
        (r5 - 625_000.0).abs() < 0.05 * 625_000.0,
        "rate {r5} B/s, want 6.25e5 ±5 %"
    );
    // The flood is 5× the rate: the pfifo overflowed, counted.
    assert!(up.frames.dropped[DropReason::QueueLimit.index()] > 0);

    let report = dp.stop().expect("stop");
    assert!(report.balanced && report.umem_free_or_fill, "{report:#?}");
}
