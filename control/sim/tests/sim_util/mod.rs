//! Helpers shared by the `sim_*` tests: build a config and a traffic file
//! from inline TOML, run them, find classes, check ceilings.

#![allow(dead_code)]

use weir_config::{self as config, Config};
pub use weir_sim::{self as sim, ClassReport, Report, SimOptions, SourceReport, Traffic};

pub fn config(text: &str) -> Config {
    match config::parse_str(text, "test-config.toml") {
        Ok(loaded) => loaded.config,
        Err(diags) => {
            let lines: Vec<String> = diags.iter().map(ToString::to_string).collect();
            panic!("config rejected:\n{}", lines.join("\n"))
        }
    }
}

pub fn seed_config(file: &str) -> String {
    let path = weir_testkit::fixture::config_path(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn traffic(text: &str) -> Traffic {
    Traffic::parse_str(text, "test-traffic.toml").unwrap_or_else(|e| panic!("{e}"))
}

pub fn run(config: &Config, traffic_text: &str) -> Report {
    run_with(config, traffic_text, &SimOptions::default())
}

pub fn run_with(config: &Config, traffic_text: &str, opts: &SimOptions) -> Report {
    let t = traffic(traffic_text);
    let r = sim::run(config, &t, opts).unwrap_or_else(|e| panic!("{e}"));
    assert!(r.frames.balanced, "{:?}", r.frames);
    assert_eq!(r.engine.stalls, 0, "the shaper gave deadlines in the past");
    r
}

/// The class whose label is `id` or starts with "`id` (".
pub fn class<'a>(r: &'a Report, id: &str) -> &'a ClassReport {
    r.classes
        .iter()
        .find(|c| c.label == id || c.label.starts_with(&format!("{id} (")))
        .unwrap_or_else(|| panic!("no class {id} in the report"))
}

pub fn source<'a>(r: &'a Report, name: &str) -> &'a SourceReport {
    r.sources
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no source {name} in the report"))
}

pub fn mbit(bps: u64) -> f64 {
    bps as f64 / 1e6
}

/// `got` within ±`tolerance` (a fraction) of `want`.
pub fn assert_near(got: u64, want: u64, tolerance: f64, what: &str) {
    let err = (got as f64 - want as f64) / want as f64;
    assert!(
        err.abs() <= tolerance,
        "{what}: {:.3} Mbit/s, want {:.3} Mbit/s ±{:.2}% (off by {:+.3}%)",
        mbit(got),
        mbit(want),
        tolerance * 100.0,
        err * 100.0
    );
}

/// Bytes beyond ceil·W that HTB lets class `i` send in a window W.
///
/// A leaf checks its own ctokens before every packet it sends, so it may
/// exceed ceil·W only by its cburst plus one packet of overshoot. An inner
/// class is not consulted when a descendant sends on its own tokens (or
/// borrows from a class below it): those sends are bounded by the
/// children's rates (which sum to at most the parent's rate ≤ its ceil)
/// plus each child's burst and one packet — recursively.
pub fn ceil_allowance(r: &Report, i: u32) -> u64 {
    let c = &r.classes[i as usize];
    let own = u64::from(c.cburst) + u64::from(c.max_packet);
    own + children_rate_allowance(r, i)
}

fn children_rate_allowance(r: &Report, i: u32) -> u64 {
    r.classes
        .iter()
        .filter(|c| c.parent == Some(i))
        .map(|c| u64::from(c.burst) + u64::from(c.max_packet) + children_rate_allowance(r, c.index))
        .sum()
}

/// The class never sent faster than its ceil beyond what HTB allows
/// ([`ceil_allowance`]): exactly, over every window (the streaming
/// token-bucket check), and over the timeline for windows from 1 ms to the
/// whole run.
pub fn assert_never_above_ceil(r: &Report, id: &str) {
    let c = class(r, id);
    let allowance = ceil_allowance(r, c.index);
    assert!(
        c.max_burst_at_ceil <= allowance,
        "class {}: its sends needed a {} byte bucket at ceil {} bit/s; HTB allows {} \
         (cburst {} + max packet {} + children's bursts); achieved {} bit/s",
        c.label,
        c.max_burst_at_ceil,
        c.ceil_bps,
        allowance,
        c.cburst,
        c.max_packet,
        c.achieved_bps,
    );
    for window_ms in [1u64, 2, 5, 10, 50, 100, 1000, 10_000] {
        let (bytes, w) = c.timeline.max_window_bytes(window_ms * 1_000_000);
        if w == 0 {
            continue;
        }
        let limit = u128::from(c.ceil_bps) * u128::from(w) / 8_000_000_000 + u128::from(allowance);
        assert!(
            u128::from(bytes) <= limit,
            "class {}: {bytes} bytes in {w} ns, ceil allows {limit}",
            c.label
        );
    }
}
