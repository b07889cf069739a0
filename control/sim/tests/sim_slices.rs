//! Network slices (docs/slices.md) in virtual time through the real
//! shaper: two slices that saturate the link each get their guarantee,
//! traffic from one slice to the other is dropped by its isolation filter
//! and counted, and a security-5 slice takes only ICMP and SSH.

mod sim_util;

use sim_util::*;

/// A 100 Mbit/s download tree: a URLLC slice of 30 and an mIoT slice of
/// 60 (both with ceil = bandwidth, their types' default), the file's own
/// default class 10: the guarantees fill the link.
const CONFIG: &str = r#"
[tree.down]
default = "1:99"

[[tree.down.class]]
id = "1:1"
rate = "100mbit"

[[tree.down.class]]
id = "1:99"
parent = "1:1"
rate = "10mbit"

[slices]
download = "down"

[[slice]]
name = "control"
type = "URLLC"
prefixes = ["198.18.100.0/24"]
bandwidth = "30mbit"

[[slice]]
name = "sensors"
type = "mIoT"
prefixes = ["198.18.101.0/24"]
bandwidth = "60mbit"
"#;

#[test]
fn two_slices_get_their_guarantees_and_stay_apart() {
    let c = config(CONFIG);
    // 1500-byte frames: ICMP (which the URLLC slice's security 5 lets
    // through) above its 30, UDP above the mIoT slice's 60; then UDP to
    // the URLLC slice (denied), and from the mIoT slice to the URLLC one
    // (kept apart: isolation 3).
    let traffic = r#"
duration = "4s"
warmup = "1s"
seed = 1

[[source]]
name = "to-control"
kind = "cbr"
rate = "40mbit"
size = 1500
proto = "icmp"
dst = "198.18.100.5"

[[source]]
name = "to-sensors"
kind = "cbr"
rate = "80mbit"
size = 1500
dst = "198.18.101.5"

[[source]]
name = "udp-to-control"
kind = "cbr"
rate = "1mbit"
size = 500
dst = "198.18.100.6"

[[source]]
name = "sensors-to-control"
kind = "cbr"
rate = "1mbit"
size = 500
src = "198.18.101.7"
dst = "198.18.100.7"
"#;
    let r = run(&c, traffic);
    assert_near(class(&r, "1:200").achieved_bps, 30_000_000, 0.01, "control");
    assert_near(class(&r, "1:201").achieved_bps, 60_000_000, 0.01, "sensors");
    for name in ["udp-to-control", "sensors-to-control"] {
        let s = source(&r, name);
        assert!(s.offered.packets > 500, "{name}: {:?}", s.offered);
        assert_eq!(s.sent.packets, 0, "{name} got through");
        assert_eq!(
            s.drops.get("filtered").copied(),
            Some(s.offered.packets),
            "{name}: {:?}",
            s.drops
        );
    }
    assert_eq!(
        r.frames.dropped.get("filtered").copied(),
        Some(
            source(&r, "udp-to-control").offered.packets
                + source(&r, "sensors-to-control").offered.packets
        )
    );
}
