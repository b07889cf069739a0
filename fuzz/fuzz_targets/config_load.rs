//! The config loader never panics on any bytes; a config it accepts always
//! builds a shaper.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_dataplane::shaper::Shaper;

fuzz_target!(|data: &[u8]| {
    if let Ok(loaded) = weir_config::parse_bytes(data, "fuzz.toml") {
        for tree in &loaded.config.trees {
            let _ = tree.tree();
            // Keep the pool small so huge `pool` values don't make the
            // fuzzer spend its time allocating.
            let mut spec = tree.shaper_spec(1);
            spec.htb.pool_capacity = spec.htb.pool_capacity.min(1024);
            // The same for the apps' flow table and reassembly buffers.
            spec.apps.flows = spec.apps.flows.min(1024);
            spec.apps.inspect_slots = spec.apps.inspect_slots.min(64);
            Shaper::new(&spec, 0).expect("a checked config must compile");
        }
    }
});
