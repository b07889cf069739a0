//! The subscriber readers never panic on any text: a ShapedDevices.csv or
//! a network.json is read or refused with diagnostics, and the parent
//! check runs on whatever both gave.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_config::subscribers::{read_network, read_shaped_devices, unknown_parents};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The same text as both files: the fuzzer finds either's grammar.
    let devices = read_shaped_devices("fuzz.csv", text);
    let network = read_network("fuzz.json", text);
    if let (Ok(d), Ok(n)) = (devices, network) {
        let _ = unknown_parents("fuzz.csv", &d.circuits, Some(&n));
        let _ = unknown_parents("fuzz.csv", &d.circuits, None);
    }
});
