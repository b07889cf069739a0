//! QUIC Initial SNI (`app::quic`) on the RFCs' own client Initials (RFC 9001
//! appendix A.2 for v1, RFC 9369 appendix A.2 for v2, byte for byte), on
//! ClientHellos spread over out-of-order CRYPTO frames and two Initial
//! packets (sealed with `quic::seal_initial`, which reproduces the RFC
//! packets exactly), and on random and truncated input (the no-panic contract).

use proptest::prelude::*;
use weir_dataplane::app::quic::{
    client_initial_keys, collect_crypto, initial_header, initial_sni, open_initial, seal_initial,
    CryptoBuf, QuicError, VERSION_1, VERSION_2,
};
use weir_dataplane::app::tls::Hello;

/// RFC 9001 appendix A: the client's Destination Connection ID.
const DCID: [u8; 8] = [0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];
/// RFC 9001 A.2 (the RFC text's hex; `tests/data/`).
const V1_PACKET: &str = include_str!("data/rfc9001-a2-client-initial.hex");
/// RFC 9369 A.2.
const V2_PACKET: &str = include_str!("data/rfc9369-a2-client-initial.hex");
/// The ClientHello both carry, in one CRYPTO frame at offset 0.
const CLIENT_HELLO: &str = include_str!("data/rfc9001-a2-client-hello.hex");

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    assert_eq!(digits.len() % 2, 0);
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

/// The RFCs' unprotected payload: one CRYPTO frame with the ClientHello,
/// then PADDING to 1162 bytes.
fn rfc_payload() -> Vec<u8> {
    let ch = hex(CLIENT_HELLO);
    let mut p = vec![0x06, 0x00, 0x40, 0xf1];
    p.extend_from_slice(&ch);
    p.resize(1162, 0);
    p
}

/// The crate's sealer with no SCID, as the RFC packets have.
fn seal(version: u32, dcid: &[u8], pn: u32, payload: &[u8]) -> Vec<u8> {
    seal_initial(version, dcid, &[], pn, payload).expect("a valid packet")
}

fn crypto_frame(offset: usize, data: &[u8]) -> Vec<u8> {
    let mut f = vec![0x06];
    f.extend_from_slice(&(0x8000_0000u32 | offset as u32).to_be_bytes());
    f.extend_from_slice(&(0x4000u16 | data.len() as u16).to_be_bytes());
    f.extend_from_slice(data);
    f
}

#[test]
fn rfc9001_client_initial_keys() {
    let k = client_initial_keys(VERSION_1, &DCID).unwrap();
    assert_eq!(k.key.to_vec(), hex("1f369613dd76d5467730efcbe3b1a22d"));
    assert_eq!(k.iv.to_vec(), hex("fa044b2f42a3fd3b46fb255c"));
    assert_eq!(k.hp.to_vec(), hex("9f50449e04a0e810283a1e9933adedd2"));
}

#[test]
fn rfc9369_client_initial_keys() {
    let k = client_initial_keys(VERSION_2, &DCID).unwrap();
    assert_eq!(k.key.to_vec(), hex("8b1a0bc121284290a29e0971b5cd045d"));
    assert_eq!(k.iv.to_vec(), hex("91f73e2351d8fa91660e909f"));
    assert_eq!(k.hp.to_vec(), hex("45b95e15235d6f45a6b19cbcb0294ba9"));
    assert_eq!(
        client_initial_keys(0xff00_001d, &DCID),
        None,
        "a draft version"
    );
}

#[test]
fn rfc_client_initials_give_example_com() {
    for (version, packet) in [(VERSION_1, V1_PACKET), (VERSION_2, V2_PACKET)] {
        let packet = hex(packet);
        assert_eq!(packet.len(), 1200);
        let h = initial_header(&packet).unwrap();
        assert_eq!(h.version, version);
        assert_eq!(h.dcid, DCID);
        assert!(h.scid.is_empty() && h.token.is_empty());
        assert_eq!((h.pn_offset, h.packet_len), (18, 1200));

        let mut scratch = [0u8; 1500];
        let opened = open_initial(&packet, &mut scratch).unwrap();
        assert_eq!(opened.packet_number, 2);
        assert_eq!(
            opened.payload,
            rfc_payload().as_slice(),
            "version {version:#x}"
        );

        let mut crypto = CryptoBuf::<4096>::new();
        let got = initial_sni(&packet, &mut scratch, &mut crypto).unwrap();
        assert_eq!(got, Hello::Sni("example.com"), "version {version:#x}");
        assert_eq!(crypto.contiguous(), hex(CLIENT_HELLO).as_slice());
    }
}

#[test]
fn the_sealer_reproduces_the_rfc_packets() {
    assert_eq!(seal(VERSION_1, &DCID, 2, &rfc_payload()), hex(V1_PACKET));
    assert_eq!(seal(VERSION_2, &DCID, 2, &rfc_payload()), hex(V2_PACKET));
}

#[test]
fn a_changed_byte_fails_the_tag() {
    let packet = hex(V1_PACKET);
    let mut scratch = [0u8; 1500];
    for at in [0usize, 7, 17, 18, 30, 600, 1199] {
        let mut p = packet.clone();
        p[at] ^= 0x10;
        let mut crypto = CryptoBuf::<4096>::new();
        let got = initial_sni(&p, &mut scratch, &mut crypto);
        assert!(got.is_err(), "byte {at}: {got:?}");
        assert!(crypto.contiguous().is_empty());
    }
}

#[test]
fn server_initial_and_other_packets_are_not_read() {
    // RFC 9001 A.3: the server's Initial (empty DCID; the client's keys do
    // not open it).
    let server = hex(concat!(
        "cf000000010008f067a5502a4262b5004075c0d95a482cd0991cd25b0aac406a",
        "5816b6394100f37a1c69797554780bb38cc5a99f5ede4cf73c3ec2493a1839b3",
        "dbcba3f6ea46c5b7684df3548e7ddeb9c3bf9c73cc3f3bded74b562bfb19fb84",
        "022f8ef4cdd93795d77d06edbb7aaf2f58891850abbdca3d20398c276456cbc4",
        "2158407dd074ee"
    ));
    let mut scratch = [0u8; 1500];
    let mut crypto = CryptoBuf::<4096>::new();
    assert_eq!(
        initial_sni(&server, &mut scratch, &mut crypto),
        Err(QuicError::Decrypt)
    );
    // A short header packet, a version negotiation, a Handshake packet.
    assert_eq!(
        initial_header(&[0x40, 1, 2, 3]),
        Err(QuicError::NotLongHeader)
    );
    assert_eq!(
        initial_header(&[0xc0, 0, 0, 0, 0, 0]),
        Err(QuicError::Version(0))
    );
    assert_eq!(
        initial_header(&[0xe0, 0, 0, 0, 1, 0]),
        Err(QuicError::NotInitial)
    );
    // v1's Initial type bits under v2 are 0-RTT... and v2's Initial type
    // under v1 is 0-RTT.
    assert_eq!(
        initial_header(&[0xd0, 0, 0, 0, 1, 0]),
        Err(QuicError::NotInitial)
    );
    // A DCID over 20 bytes.
    let mut long = vec![0xc0, 0, 0, 0, 1, 21];
    long.extend_from_slice(&[0; 40]);
    assert_eq!(initial_header(&long), Err(QuicError::Header));
    // A scratch smaller than the packet.
    let mut small = [0u8; 1000];
    assert_eq!(
        open_initial(&hex(V1_PACKET), &mut small),
        Err(QuicError::Scratch)
    );
}

#[test]
fn client_hello_over_two_initials_in_scattered_crypto_frames() {
    let ch = hex(CLIENT_HELLO);
    let n = ch.len();
    for version in [VERSION_1, VERSION_2] {
        // First Initial: the end, a PING, the start; second: the middle
        // (with an ACK frame and padding), as Chrome's scattering does.
        let mut p1 = crypto_frame(150, &ch[150..]);
        p1.push(0x01);
        p1.extend(crypto_frame(0, &ch[..60]));
        p1.resize(1100, 0);
        let mut p2 = vec![0x02, 0x00, 0x00, 0x00, 0x00];
        p2.extend(crypto_frame(60, &ch[60..150]));
        p2.extend(crypto_frame(0, &ch[..10])); // a retransmitted piece
        p2.resize(1100, 0);
        let d1 = seal(version, &DCID, 0, &p1);
        let d2 = seal(version, &DCID, 1, &p2);

        let mut scratch = [0u8; 1500];
        let mut crypto = CryptoBuf::<4096>::new();
        let first = initial_sni(&d1, &mut scratch, &mut crypto).unwrap();
        assert_eq!(first, Hello::NeedMore { total: Some(n) });
        assert_eq!(crypto.contiguous().len(), 60);
        let second = initial_sni(&d2, &mut scratch, &mut crypto).unwrap();
        assert_eq!(second, Hello::Sni("example.com"), "version {version:#x}");

        // The same two packets coalesced in one datagram, then zeros.
        let mut both = d1.clone();
        both.extend_from_slice(&d2);
        both.extend_from_slice(&[0; 30]);
        let mut scratch = [0u8; 1500];
        let mut crypto = CryptoBuf::<4096>::new();
        assert_eq!(
            initial_sni(&both, &mut scratch, &mut crypto).unwrap(),
            Hello::Sni("example.com")
        );
    }
}

#[test]
fn crypto_past_the_buffer_or_too_scattered_is_refused() {
    let mut small = CryptoBuf::<100>::new();
    assert_eq!(small.insert(90, &[0; 20]), Err(QuicError::CryptoTooLong));
    assert_eq!(
        small.insert(u64::MAX, &[0; 1]),
        Err(QuicError::CryptoTooLong)
    );
    let mut c = CryptoBuf::<4096>::new();
    for i in 0..32u64 {
        c.insert(10 + i * 2, &[1]).unwrap();
    }
    assert_eq!(c.insert(200, &[1]), Err(QuicError::CryptoGaps));
    // Filling the gaps joins everything.
    let mut c = CryptoBuf::<4096>::new();
    for i in (0..32u64).rev() {
        c.insert(i * 2 + 1, &[1]).unwrap();
        c.insert(i * 2, &[1]).unwrap();
    }
    assert_eq!(c.contiguous().len(), 64);
    // An unknown frame type (STREAM) cannot be in an Initial.
    assert_eq!(collect_crypto(&[0x08, 0, 0], &mut c), Err(QuicError::Frame));
}

proptest! {
    #[test]
    fn random_datagrams_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1400)) {
        let mut scratch = [0u8; 1500];
        let mut crypto = CryptoBuf::<4096>::new();
        let _ = initial_sni(&bytes, &mut scratch, &mut crypto);
        let _ = collect_crypto(&bytes, &mut crypto);
        let _ = initial_header(&bytes);
    }

    #[test]
    fn random_long_headers_never_panic(
        v2 in any::<bool>(),
        dcid_len in 0u8..24,
        rest in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let (first, version) = if v2 { (0xd3, VERSION_2) } else { (0xc3, VERSION_1) };
        let mut d = vec![first];
        d.extend_from_slice(&version.to_be_bytes());
        d.push(dcid_len);
        d.extend_from_slice(&rest);
        let mut scratch = [0u8; 1500];
        let mut crypto = CryptoBuf::<4096>::new();
        let _ = initial_sni(&d, &mut scratch, &mut crypto);
    }

    #[test]
    fn truncations_of_the_rfc_packets_are_errors(cut in 0usize..1200, v2 in any::<bool>()) {
        let packet = hex(if v2 { V2_PACKET } else { V1_PACKET });
        let mut scratch = [0u8; 1500];
        let mut crypto = CryptoBuf::<4096>::new();
        prop_assert!(initial_sni(&packet[..cut], &mut scratch, &mut crypto).is_err());
    }

    #[test]
    fn random_frames_in_a_valid_packet_never_panic(
        frames in proptest::collection::vec(any::<u8>(), 0..1100),
    ) {
        let d = seal(VERSION_1, &DCID, 0, &frames);
        let mut scratch = [0u8; 1500];
        let mut crypto = CryptoBuf::<2048>::new();
        let opened = open_initial(&d, &mut scratch).unwrap();
        prop_assert_eq!(opened.payload, frames.as_slice());
        let _ = initial_sni(&d, &mut scratch, &mut crypto);
    }

    #[test]
    fn crypto_pieces_in_any_order_join(
        cuts in proptest::collection::vec(1usize..240, 0..12),
        order in any::<u64>(),
    ) {
        let ch = hex(CLIENT_HELLO);
        let mut bounds: Vec<usize> = cuts;
        bounds.push(0);
        bounds.push(ch.len());
        bounds.sort_unstable();
        bounds.dedup();
        let mut pieces: Vec<(usize, usize)> = bounds.windows(2).map(|w| (w[0], w[1])).collect();
        // A deterministic shuffle from `order`.
        let mut s = order | 1;
        for i in (1..pieces.len()).rev() {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            pieces.swap(i, (s % (i as u64 + 1)) as usize);
        }
        let mut c = CryptoBuf::<4096>::new();
        for (i, &(a, b)) in pieces.iter().enumerate() {
            c.insert(a as u64, &ch[a..b]).unwrap();
            if i + 1 < pieces.len() {
                prop_assert!(c.contiguous().len() < ch.len());
            }
        }
        prop_assert_eq!(c.contiguous(), ch.as_slice());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The builder never panics: any DCID, name and padding either is
    /// refused or gives an Initial of at least 1200 bytes whose SNI our
    /// parser reads back.
    #[test]
    fn built_initials_parse_back_or_are_refused(
        v2 in any::<bool>(),
        dcid in proptest::collection::vec(any::<u8>(), 0..24),
        name in prop_oneof![
            "[a-z0-9-]{1,10}(\\.[a-z0-9-]{1,10}){0,2}",
            "[a-z0-9. -]{0,30}",
        ],
        pad in 0usize..3000,
    ) {
        use weir_dataplane::app::quic::{client_initial, InitialBuildError};
        use weir_dataplane::app::tls::{client_hello, BuildError};
        let version = if v2 { VERSION_2 } else { VERSION_1 };
        // The TLS builder says which names are hostnames.
        let name_ok = client_hello(&name, 0, &mut Vec::new()).is_ok();
        match client_initial(version, &dcid, &name, pad) {
            Ok(d) => {
                prop_assert!(name_ok && dcid.len() <= 20);
                prop_assert!(d.len() >= 1200);
                let mut scratch = vec![0u8; d.len()];
                let mut crypto = CryptoBuf::<4096>::new();
                prop_assert_eq!(
                    initial_sni(&d, &mut scratch, &mut crypto),
                    Ok(Hello::Sni(&name))
                );
            }
            Err(InitialBuildError::Hello(BuildError::Hostname)) => prop_assert!(!name_ok),
            Err(InitialBuildError::Seal(QuicError::Header)) => {
                prop_assert!(name_ok && dcid.len() > 20)
            }
            Err(e) => prop_assert!(false, "unexpected {:?}", e),
        }
    }
}
