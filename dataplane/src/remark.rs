//! DSCP remarking and washing on the way out (seed section 2.2; issue 12's
//! item 4): set the DSCP of a frame's IPv4 TOS byte or IPv6 traffic class
//! in place, keep its ECN bits, and fix the IPv4 header checksum
//! incrementally (RFC 1624), as [`crate::parse::mark_ce`] does for CE.
//!
//! The two compose in either order: each changes only its own bits of the
//! same byte (DSCP the upper six, CE the lower two) and folds only its own
//! change into the checksum, so a frame that is remarked and CE-marked
//! leaves with both and a valid checksum.
//!
//! Like the parser, every input returns a value and nothing panics: a frame
//! too short for the header at `l3_offset`, or one that is not IPv4/IPv6
//! there, is [`Remarked::NotIp`] and is left as it was.

use crate::parse::{ipv4_header_mut, ipv6_header_mut, set_ipv4_tos};

/// What to do with a frame's DSCP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Remark {
    /// Set it (0..=63; higher bits are ignored).
    Set(u8),
    /// Set it only when the frame carries none (DSCP 0, best effort): trust
    /// a sender's own marking, mark the rest.
    IfUnmarked(u8),
    /// Clear it (DSCP 0): the trust boundary of an untrusted side.
    Wash,
}

impl Remark {
    /// One byte for a queued packet ([`crate::packet::Packet::remark`]):
    /// 0 is no remark.
    pub fn code(self) -> u8 {
        match self {
            Remark::Set(d) => 1 + (d & 0x3f),
            Remark::IfUnmarked(d) => 65 + (d & 0x3f),
            Remark::Wash => 255,
        }
    }

    /// The remark of a [`Remark::code`], None for 0 (and codes no remark
    /// makes).
    pub fn from_code(code: u8) -> Option<Remark> {
        match code {
            1..=64 => Some(Remark::Set(code - 1)),
            65..=128 => Some(Remark::IfUnmarked(code - 65)),
            255 => Some(Remark::Wash),
            _ => None,
        }
    }
}

/// What [`remark_dscp`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Remarked {
    /// The DSCP changed.
    Changed,
    /// The frame already had the DSCP asked for, or had one of its own and
    /// the remark was [`Remark::IfUnmarked`].
    Unchanged,
    /// No IPv4/IPv6 header at `l3_offset`: nothing to remark.
    NotIp,
}

/// Apply `remark` to the IP header at `l3_offset`: the parser's
/// `l3_offset` of an IP frame, past any VLAN tags. Like
/// [`crate::parse::mark_ce`], it trusts that offset (it only checks that a
/// whole header with an IPv4/IPv6 version nibble is there), so it is for
/// frames the parser read as IP.
pub fn remark_dscp(frame: &mut [u8], l3_offset: u16, remark: Remark) -> Remarked {
    let l3 = usize::from(l3_offset);
    match frame.get(l3).map(|b| b >> 4) {
        Some(4) => remark_ipv4(frame, l3, remark),
        Some(6) => remark_ipv6(frame, l3, remark),
        _ => Remarked::NotIp,
    }
}

/// The DSCP `remark` leaves on a frame that has `current`, or None when it
/// leaves it alone.
fn target(current: u8, remark: Remark) -> Option<u8> {
    let want = match remark {
        Remark::Set(d) => d & 0x3f,
        Remark::IfUnmarked(_) if current != 0 => return None,
        Remark::IfUnmarked(d) => d & 0x3f,
        Remark::Wash => 0,
    };
    (want != current).then_some(want)
}

fn remark_ipv4(frame: &mut [u8], l3: usize, remark: Remark) -> Remarked {
    let Some(h) = ipv4_header_mut(frame, l3) else {
        return Remarked::NotIp;
    };
    let tos = h[1];
    let Some(dscp) = target(tos >> 2, remark) else {
        return Remarked::Unchanged;
    };
    set_ipv4_tos(h, dscp << 2 | (tos & 0x03));
    Remarked::Changed
}

fn remark_ipv6(frame: &mut [u8], l3: usize, remark: Remark) -> Remarked {
    let Some(h) = ipv6_header_mut(frame, l3) else {
        return Remarked::NotIp;
    };
    // The traffic class straddles bytes 0 and 1: its upper four DSCP bits
    // are byte 0's low nibble, its lower two DSCP bits and the two ECN bits
    // byte 1's high nibble. No checksum covers it.
    let current = (h[0] & 0x0f) << 2 | h[1] >> 6;
    let Some(dscp) = target(current, remark) else {
        return Remarked::Unchanged;
    };
    h[0] = (h[0] & 0xf0) | dscp >> 2;
    h[1] = (h[1] & 0x3f) | (dscp & 0x03) << 6;
    Remarked::Changed
}

#[cfg(test)]
mod tests {
    #[test]
    fn codes_round_trip() {
        for d in 0..64 {
            for r in [Remark::Set(d), Remark::IfUnmarked(d), Remark::Wash] {
                assert_eq!(Remark::from_code(r.code()), Some(r));
                assert_ne!(r.code(), 0);
            }
        }
        assert_eq!(Remark::from_code(0), None);
    }

    use super::*;
    use crate::parse::{mark_ce, parse_frame};
    use proptest::prelude::*;
    use weir_testkit::frame;

    fn v4(tos: u8) -> Vec<u8> {
        let ip = frame::Ipv4 {
            tos,
            ..frame::Ipv4::default()
        };
        frame::ipv4_frame(&ip, &frame::udp(1234, 80, b"payload"))
    }

    fn v6(traffic_class: u8) -> Vec<u8> {
        let ip = frame::Ipv6 {
            traffic_class,
            ..frame::Ipv6::default()
        };
        frame::ipv6_frame(&ip, &frame::udp(1234, 80, b"payload"))
    }

    const L3: u16 = 14;

    /// The IPv4 header's checksum, recomputed from scratch, is valid.
    fn v4_checksum_ok(f: &[u8]) -> bool {
        frame::checksum(&f[14..34]) == 0
    }

    fn v4_tos(f: &[u8]) -> u8 {
        f[15]
    }

    fn v6_tc(f: &[u8]) -> u8 {
        (f[14] & 0x0f) << 4 | f[15] >> 4
    }

    #[test]
    fn set_keeps_ecn_and_the_checksum() {
        // AF41 (34) on an ECT(0) frame, then EF (46) on top.
        let mut f = v4(0x02);
        assert_eq!(remark_dscp(&mut f, L3, Remark::Set(34)), Remarked::Changed);
        assert_eq!(v4_tos(&f), 34 << 2 | 0x02);
        assert!(v4_checksum_ok(&f));
        assert_eq!(remark_dscp(&mut f, L3, Remark::Set(46)), Remarked::Changed);
        assert_eq!(v4_tos(&f), 46 << 2 | 0x02);
        assert!(v4_checksum_ok(&f));
        assert_eq!(
            remark_dscp(&mut f, L3, Remark::Set(46)),
            Remarked::Unchanged
        );
        // The parser still reads the frame, with the new DSCP.
        assert!(parse_frame(&f).is_ok());
    }

    #[test]
    fn if_unmarked_trusts_a_senders_marking() {
        let mut marked = v4(26 << 2); // AF31 from the sender
        assert_eq!(
            remark_dscp(&mut marked, L3, Remark::IfUnmarked(8)),
            Remarked::Unchanged
        );
        assert_eq!(v4_tos(&marked), 26 << 2);
        let mut plain = v4(0x01); // best effort, ECT(1)
        assert_eq!(
            remark_dscp(&mut plain, L3, Remark::IfUnmarked(8)),
            Remarked::Changed
        );
        assert_eq!(v4_tos(&plain), 8 << 2 | 0x01);
        assert!(v4_checksum_ok(&plain));
    }

    #[test]
    fn wash_clears_dscp_only() {
        let mut f = v4(46 << 2 | 0x03);
        assert_eq!(remark_dscp(&mut f, L3, Remark::Wash), Remarked::Changed);
        assert_eq!(v4_tos(&f), 0x03);
        assert!(v4_checksum_ok(&f));
        let mut g = v6(46 << 2 | 0x01);
        assert_eq!(remark_dscp(&mut g, L3, Remark::Wash), Remarked::Changed);
        assert_eq!(v6_tc(&g), 0x01);
        // The version nibble and the flow label are untouched.
        assert_eq!(g[14] >> 4, 6);
        assert_eq!(g[15] & 0x0f, v6(0)[15] & 0x0f);
    }

    #[test]
    fn ipv6_traffic_class_across_its_two_bytes() {
        let mut f = v6(0x02);
        assert_eq!(remark_dscp(&mut f, L3, Remark::Set(46)), Remarked::Changed);
        assert_eq!(v6_tc(&f), 46 << 2 | 0x02);
        assert_eq!(
            remark_dscp(&mut f, L3, Remark::Set(46)),
            Remarked::Unchanged
        );
    }

    #[test]
    fn not_ip_is_left_alone() {
        // An ARP request: hardware type 1, so no IP version nibble at 14.
        let mut arp = frame::eth([0xff; 6], [2, 0, 0, 0, 0, 1], 0x0806);
        arp.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        arp.extend_from_slice(&[0; 20]);
        let mut a = arp.clone();
        assert_eq!(remark_dscp(&mut a, L3, Remark::Set(46)), Remarked::NotIp);
        assert_eq!(a, arp);
        let mut short = v4(0)[..20].to_vec();
        assert_eq!(remark_dscp(&mut short, L3, Remark::Wash), Remarked::NotIp);
        assert_eq!(remark_dscp(&mut [], 0, Remark::Wash), Remarked::NotIp);
        assert_eq!(
            remark_dscp(&mut v4(4), u16::MAX, Remark::Wash),
            Remarked::NotIp
        );
    }

    proptest! {
        /// Remark and CE marking compose in either order: both fields end
        /// as asked, the checksum is valid, nothing else changes.
        #[test]
        fn remark_and_ce_compose(tos in any::<u8>(), dscp in 0u8..64, ce_first in any::<bool>()) {
            let mut f = v4(tos);
            let before = f.clone();
            if ce_first {
                mark_ce(&mut f, L3);
                remark_dscp(&mut f, L3, Remark::Set(dscp));
            } else {
                remark_dscp(&mut f, L3, Remark::Set(dscp));
                mark_ce(&mut f, L3);
            }
            prop_assert!(v4_checksum_ok(&f));
            prop_assert_eq!(v4_tos(&f) >> 2, dscp);
            // ECN: CE when it was ECN-capable, else as it was.
            let ecn = tos & 0x03;
            prop_assert_eq!(v4_tos(&f) & 0x03, if ecn == 0 { 0 } else { 0x03 });
            for (i, (a, b)) in before.iter().zip(&f).enumerate() {
                if i != 15 && i != 24 && i != 25 {
                    prop_assert_eq!(a, b, "byte {} changed", i);
                }
            }
        }

        /// Any bytes at any offset: a value, never a panic, and a frame
        /// that is not IP is left as it was.
        #[test]
        fn any_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..80),
                                 l3 in 0u16..90, dscp in any::<u8>()) {
            let before = bytes.clone();
            let r = remark_dscp(&mut bytes, l3, Remark::Set(dscp));
            if r != Remarked::Changed {
                prop_assert_eq!(bytes, before);
            }
        }
    }
}
