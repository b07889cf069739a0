//! The parser's no-panic contract on arbitrary input: any bytes, any length,
//! and bytes steered towards the deep paths (IP EtherTypes, VLAN tags,
//! plausible version nibbles, extension header chains) so the random search
//! does not stop at the Ethernet header.

use proptest::prelude::*;
use weir_dataplane::parse::{mark_ce, parse_frame, Headers};

/// Everything a successful parse promises, whatever the input was.
fn check_invariants(frame: &[u8], h: &Headers) -> Result<(), TestCaseError> {
    prop_assert!(usize::from(h.l3_offset) <= frame.len());
    prop_assert!(h.outer_vlan.unwrap_or(0) < 4096);
    prop_assert!(h.inner_vlan.unwrap_or(0) < 4096);
    prop_assert!(h.inner_vlan.is_none() || h.outer_vlan.is_some());
    if let Some(ip) = h.ip {
        prop_assert!(ip.l4_offset >= h.l3_offset);
        prop_assert!(usize::from(ip.l4_offset) <= frame.len());
        prop_assert!(matches!(h.ethertype, 0x0800 | 0x86dd));
    } else {
        prop_assert_eq!(h.flow_hash(), 0);
        prop_assert_eq!(h.packet_flags(), 0);
    }
    Ok(())
}

/// Frames whose first bytes are steered to interesting values.
fn steered() -> impl Strategy<Value = Vec<u8>> {
    let ethertypes = prop_oneof![
        Just(0x0800u16),
        Just(0x86dd),
        Just(0x8100),
        Just(0x88a8),
        Just(0x9100),
        any::<u16>(),
    ];
    (
        proptest::collection::vec(any::<u8>(), 0..160),
        ethertypes.clone(),
        ethertypes,
        prop_oneof![
            Just(0x45u8),
            Just(0x4f),
            Just(0x60),
            Just(0x40),
            any::<u8>()
        ],
        prop_oneof![
            Just(0u8),
            Just(6),
            Just(17),
            Just(43),
            Just(44),
            Just(51),
            Just(60),
            any::<u8>()
        ],
    )
        .prop_map(|(mut f, et, inner_et, vbyte, next)| {
            let put = |f: &mut Vec<u8>, at: usize, b: &[u8]| {
                for (i, &x) in b.iter().enumerate() {
                    if let Some(slot) = f.get_mut(at + i) {
                        *slot = x;
                    }
                }
            };
            put(&mut f, 12, &et.to_be_bytes());
            let l3 = if matches!(et, 0x8100 | 0x88a8 | 0x9100) {
                put(&mut f, 16, &inner_et.to_be_bytes());
                18
            } else {
                14
            };
            put(&mut f, l3, &[vbyte]);
            if vbyte >> 4 == 6 {
                put(&mut f, l3 + 6, &[next]);
            } else {
                put(&mut f, l3 + 9, &[next]);
            }
            f
        })
}

/// Fewer cases in debug builds (run by developers) than in the release run
/// of the suite, where each case costs microseconds.
const fn cases(debug: u32, release: u32) -> u32 {
    if cfg!(debug_assertions) {
        debug
    } else {
        release
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(2_000, 50_000)))]

    #[test]
    fn arbitrary_bytes_never_panic(frame in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(h) = parse_frame(&frame) {
            check_invariants(&frame, &h)?;
        }
    }

    #[test]
    fn steered_bytes_never_panic(frame in steered()) {
        if let Ok(h) = parse_frame(&frame) {
            check_invariants(&frame, &h)?;
        }
    }

    #[test]
    fn mark_ce_never_panics(mut frame in steered(), l3 in any::<u16>()) {
        let before = frame.clone();
        let marked = mark_ce(&mut frame, l3);
        if !marked {
            prop_assert_eq!(frame, before);
        } else {
            // Only the ECN bits (and the IPv4 checksum) may change.
            let changed = frame.iter().zip(&before).filter(|(a, b)| a != b).count();
            prop_assert!(changed <= 3);
        }
    }
}

#[test]
fn every_short_length_of_zeroes_and_ones() {
    for len in 0..200 {
        for fill in [0x00u8, 0xff, 0x45, 0x60] {
            let mut frame = vec![fill; len];
            let _ = parse_frame(&frame);
            for l3 in [0u16, 14, 18, 22, u16::MAX] {
                let _ = mark_ce(&mut frame, l3);
            }
        }
    }
}
