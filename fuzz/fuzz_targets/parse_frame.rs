//! The frame parser's no-panic contract: any bytes, any length; and the
//! in-place rewrites of a parsed frame (CE marking, DSCP remarking) keep it
//! parseable to the same headers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_dataplane::parse::{mark_ce, parse_frame};
use weir_dataplane::remark::{remark_dscp, Remark};

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
        // Remarking too, with a DSCP taken from the input.
        let dscp = data.first().copied().unwrap_or(0);
        for remark in [Remark::Set(dscp), Remark::IfUnmarked(dscp), Remark::Wash] {
            let mut copy = data.to_vec();
            remark_dscp(&mut copy, h.l3_offset, remark);
            let again = parse_frame(&copy).expect("a remarked frame still parses");
            assert_eq!(again.l3_offset, h.l3_offset);
        }
    }
    // Arbitrary offsets too.
    let mut copy = data.to_vec();
    let _ = mark_ce(&mut copy, data.len() as u16);
    let _ = remark_dscp(&mut copy, data.len() as u16, Remark::Wash);
});
