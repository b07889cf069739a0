//! The frame parser's no-panic contract: any bytes, any length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_dataplane::parse::{mark_ce, parse_frame};

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = parse_frame(data) {
        let _ = h.flow_hash();
        let _ = h.packet_flags();
        // Marking must keep the frame parseable to the same headers but the
        // ECN bits.
        let mut copy = data.to_vec();
        if mark_ce(&mut copy, h.l3_offset) {
            let again = parse_frame(&copy).expect("a marked frame still parses");
            assert_eq!(again.l3_offset, h.l3_offset);
        }
    }
    // Arbitrary offsets too.
    let mut copy = data.to_vec();
    let _ = mark_ce(&mut copy, data.len() as u16);
});
