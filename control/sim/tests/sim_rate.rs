//! A single class shapes to its rate, exactly and at every time scale, from
//! 1 Mbit/s to 10 Gbit/s, with small and large packets.

mod sim_util;

use sim_util::*;

/// A one-class tree (the class is its own root) at `rate`, offered 5% more
/// than that in `size`-byte frames for 10 s.
fn single_class(rate: &str, rate_bps: u64, size: u32) {
    let cfg = config(&format!(
        r#"
[tree.t]
default = "1:1"

[[tree.t.class]]
id = "1:1"
rate = "{rate}"
ceil = "{rate}"
qdisc = {{ kind = "pfifo", limit = 1000 }}
"#
    ));
    let offered = rate_bps + rate_bps / 20;
    let r = run(
        &cfg,
        &format!("duration = \"10s\"\n[[source]]\nrate = {offered}\nsize = {size}\n"),
    );
    let c = class(&r, "1:1");
    // The first packet leaves at t = 0: one packet more than the rate.
    let one_packet = f64::from(size) * 8.0 / (offered as f64 * 10.0);
    assert_near(c.offered_bps, offered, one_packet + 0.0001, "offered");
    assert_near(c.achieved_bps, rate_bps, 0.005, "achieved");
    assert!(c.sent.packets < c.offered.packets);
    // Over every window W (exactly, and over 1 ms .. 10 s of the timeline):
    // bytes <= ceil * W + cburst + one max packet.
    assert_never_above_ceil(&r, "1:1");
}

#[test]
fn one_mbit_1500_bytes() {
    single_class("1mbit", 1_000_000, 1500);
}

#[test]
fn one_mbit_64_bytes() {
    single_class("1mbit", 1_000_000, 64);
}

#[test]
#[cfg_attr(debug_assertions, ignore = "heavy: run in release by scripts/test.sh")]
fn hundred_mbit_1500_bytes() {
    single_class("100mbit", 100_000_000, 1500);
}

#[test]
#[cfg_attr(debug_assertions, ignore = "heavy: run in release by scripts/test.sh")]
fn hundred_mbit_64_bytes() {
    single_class("100mbit", 100_000_000, 64);
}

#[test]
#[cfg_attr(debug_assertions, ignore = "heavy: run in release by scripts/test.sh")]
fn ten_gbit_1500_bytes() {
    single_class("10gbit", 10_000_000_000, 1500);
}

#[test]
#[cfg_attr(debug_assertions, ignore = "heavy: run in release by scripts/test.sh")]
fn ten_gbit_64_bytes() {
    // 195 M packets sent (205 M offered) in 10 s of virtual time.
    single_class("10gbit", 10_000_000_000, 64);
}
