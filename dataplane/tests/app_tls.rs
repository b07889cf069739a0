//! TLS ClientHello SNI (`app::tls`) on ClientHellos made by a real TLS
//! library (rustls), split at every byte across two segments, spread over
//! several records, and under random and truncated input (the no-panic
//! contract).

use std::sync::Arc;

use proptest::prelude::*;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore};
use weir_dataplane::app::tls::{client_hello_sni, handshake_sni, ClientHelloBuf, Hello, Malformed};

/// The first flight rustls sends to `name`: TLS records holding one
/// ClientHello.
fn rustls_client_hello(name: &str, sni: bool) -> Vec<u8> {
    // ring rather than aws-lc-rs (which needs cmake to build); rustls
    // deprecates ring's provider only for its lack of post-quantum key
    // exchange, which a ClientHello's SNI does not depend on.
    #[expect(
        deprecated,
        reason = "ring's provider: no post-quantum groups, not needed here"
    )]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth();
    config.enable_sni = sni;
    let server = ServerName::try_from(name.to_owned()).expect("a DNS name");
    let mut conn = ClientConnection::new(Arc::new(config), server).expect("client connection");
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).expect("write to a Vec");
    }
    out
}

fn video_hello() -> Vec<u8> {
    rustls_client_hello("video.test", true)
}

/// The same handshake message re-framed into records of at most `chunk`
/// payload bytes each.
fn reframe(records: &[u8], chunk: usize) -> Vec<u8> {
    let hs = &records[5..];
    assert_eq!(
        records.len(),
        5 + usize::from(u16::from_be_bytes([records[3], records[4]]))
    );
    let mut out = Vec::new();
    for part in hs.chunks(chunk) {
        out.extend_from_slice(&[22, 3, 1]);
        out.extend_from_slice(&(part.len() as u16).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

#[test]
fn rustls_client_hello_gives_its_sni() {
    let hello = video_hello();
    assert_eq!(hello[0], 22, "a handshake record");
    assert_eq!(hello[5], 1, "a ClientHello");
    assert_eq!(client_hello_sni(&hello), Hello::Sni("video.test"));
    assert_eq!(handshake_sni(&hello[5..]), Hello::Sni("video.test"));
    let mut buf = ClientHelloBuf::<2048>::new();
    assert_eq!(buf.push(&hello), Hello::Sni("video.test"));
    assert_eq!(buf.handshake(), &hello[5..]);
}

#[test]
fn client_hello_without_sni_is_no_sni() {
    let hello = rustls_client_hello("video.test", false);
    assert_eq!(client_hello_sni(&hello), Hello::NoSni);
    assert_eq!(ClientHelloBuf::<2048>::new().push(&hello), Hello::NoSni);
}

#[test]
fn prefix_says_how_long_the_whole_client_hello_is() {
    let hello = video_hello();
    for cut in 0..hello.len() {
        let expect = if cut < 9 { None } else { Some(hello.len()) };
        assert_eq!(
            client_hello_sni(&hello[..cut]),
            Hello::NeedMore { total: expect },
            "cut at {cut}"
        );
        let hs_expect = if cut < 9 { None } else { Some(hello.len() - 5) };
        let hs = &hello[5.min(cut)..cut];
        assert_eq!(
            handshake_sni(hs),
            Hello::NeedMore { total: hs_expect },
            "cut at {cut}"
        );
    }
}

#[test]
fn split_at_every_byte_across_two_segments() {
    let hello = video_hello();
    for split in 0..=hello.len() {
        let (a, b) = hello.split_at(split);
        let mut buf = ClientHelloBuf::<2048>::new();
        let first = buf.push(a);
        if split == hello.len() {
            assert_eq!(first, Hello::Sni("video.test"));
        } else {
            let total = if split < 9 {
                None
            } else {
                Some(hello.len() - 5)
            };
            assert_eq!(first, Hello::NeedMore { total }, "split at {split}");
        }
        assert_eq!(buf.push(b), Hello::Sni("video.test"), "split at {split}");
        // A final answer stays final.
        assert_eq!(buf.push(b"more"), Hello::Sni("video.test"));
    }
}

#[test]
fn client_hello_over_several_records_is_joined_by_the_buffer() {
    let hello = video_hello();
    for chunk in [1, 7, 100, 200] {
        let records = reframe(&hello, chunk);
        assert_eq!(client_hello_sni(&records), Hello::NeedMore { total: None });
        let mut buf = ClientHelloBuf::<2048>::new();
        assert_eq!(
            buf.push(&records),
            Hello::Sni("video.test"),
            "records of {chunk}"
        );
        // And split into 3-byte segments, so headers are cut too.
        let mut buf = ClientHelloBuf::<2048>::new();
        let mut last = Hello::NeedMore { total: None };
        for seg in records.chunks(3) {
            assert!(
                matches!(last, Hello::NeedMore { .. }),
                "{last:?} before the end"
            );
            last = buf.push(seg);
        }
        assert_eq!(
            last,
            Hello::Sni("video.test"),
            "records of {chunk} in 3-byte segments"
        );
    }
}

#[test]
fn client_hello_over_capacity_is_too_long() {
    let hello = video_hello();
    let hs_len = hello.len() - 5;
    let mut buf = ClientHelloBuf::<64>::new();
    assert_eq!(
        buf.push(&hello),
        Hello::TooLong {
            total: Some(hs_len)
        }
    );
    // Fed a byte at a time it is known as soon as the length is.
    let mut buf = ClientHelloBuf::<64>::new();
    for (i, b) in hello.iter().enumerate() {
        let v = buf.push(std::slice::from_ref(b));
        if i < 8 {
            assert_eq!(v, Hello::NeedMore { total: None }, "byte {i}");
        } else {
            assert_eq!(
                v,
                Hello::TooLong {
                    total: Some(hs_len)
                },
                "byte {i}"
            );
        }
    }
    // One byte short of fitting is too long; exactly fitting is fine.
    let mut exact = ClientHelloBuf::<512>::new();
    assert!(hs_len < 512, "rustls' hello is {hs_len} bytes");
    assert_eq!(exact.push(&hello), Hello::Sni("video.test"));
}

#[test]
fn other_streams_are_not_a_client_hello() {
    assert_eq!(
        client_hello_sni(b"GET / HTTP/1.1\r\n"),
        Hello::NotClientHello
    );
    assert_eq!(
        ClientHelloBuf::<2048>::new().push(b"G"),
        Hello::NotClientHello
    );
    // A ServerHello (handshake type 2) in a handshake record.
    let mut hello = video_hello();
    hello[5] = 2;
    assert_eq!(client_hello_sni(&hello), Hello::NotClientHello);
    // An application data record.
    hello[0] = 23;
    assert_eq!(client_hello_sni(&hello), Hello::NotClientHello);
    // A record header with version 2.x or a record over 2^14 bytes.
    assert_eq!(
        client_hello_sni(&[22, 2, 0, 0, 5]),
        Hello::Malformed(Malformed::Record)
    );
    assert_eq!(
        client_hello_sni(&[22, 3, 1, 0x40, 1]),
        Hello::Malformed(Malformed::Record)
    );
    assert_eq!(
        client_hello_sni(&[22, 3, 1, 0, 0]),
        Hello::Malformed(Malformed::Record)
    );
}

#[test]
fn a_name_that_is_not_a_hostname_is_malformed() {
    let hello = video_hello();
    let at = hello
        .windows(10)
        .position(|w| w == b"video.test")
        .expect("the name is in the hello");
    for bad in [b' ', b'/', 0, 0xc3, b'*'] {
        let mut h = hello.clone();
        h[at + 5] = bad;
        assert_eq!(
            client_hello_sni(&h),
            Hello::Malformed(Malformed::Hostname),
            "byte {bad:#x}"
        );
    }
    let mut h = hello.clone();
    h[at + 5] = b'-';
    assert_eq!(client_hello_sni(&h), Hello::Sni("video-test"));
    let mut h = hello;
    h[at] = b'.';
    assert_eq!(
        client_hello_sni(&h),
        Hello::Malformed(Malformed::Hostname),
        "empty label"
    );
}

#[test]
fn lengths_that_do_not_add_up_are_malformed() {
    let hello = video_hello();
    // The handshake message says one byte more than the record holds, and
    // the record is grown to match: the extensions no longer end with the
    // message.
    let mut h = hello.clone();
    h.push(0);
    let rec = u16::from_be_bytes([h[3], h[4]]) + 1;
    h[3..5].copy_from_slice(&rec.to_be_bytes());
    let body = u32::from_be_bytes([0, h[6], h[7], h[8]]) + 1;
    h[6..9].copy_from_slice(&body.to_be_bytes()[1..]);
    assert_eq!(
        client_hello_sni(&h),
        Hello::Malformed(Malformed::TrailingBytes)
    );
    // Session id over 32 bytes.
    let mut h = hello.clone();
    h[5 + 4 + 34] = 33;
    assert_eq!(client_hello_sni(&h), Hello::Malformed(Malformed::SessionId));
    // An odd cipher suite length.
    let mut h = hello;
    let sid = usize::from(h[5 + 4 + 34]);
    let at = 5 + 4 + 35 + sid;
    h[at + 1] |= 1;
    assert_eq!(
        client_hello_sni(&h),
        Hello::Malformed(Malformed::CipherSuites)
    );
}

/// What a parser may say about a prefix of a good ClientHello: wait, or
/// refuse — never a name and never "no name".
fn prefix_verdict_ok(h: Hello<'_>) -> bool {
    !matches!(h, Hello::Sni(_) | Hello::NoSni)
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = client_hello_sni(&bytes);
        let _ = handshake_sni(&bytes);
        let mut buf = ClientHelloBuf::<512>::new();
        let _ = buf.push(&bytes);
        let _ = buf.push(&bytes);
    }

    #[test]
    fn random_bytes_behind_a_handshake_header_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..600),
        fake_len in any::<u16>(),
    ) {
        let mut rec = vec![22, 3, 1];
        rec.extend_from_slice(&fake_len.to_be_bytes());
        rec.push(1);
        rec.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        rec.extend_from_slice(&body);
        if let Hello::Sni(name) = client_hello_sni(&rec) {
            prop_assert!(name.is_ascii() && !name.is_empty());
        }
        let _ = ClientHelloBuf::<256>::new().push(&rec);
    }

    #[test]
    fn truncations_wait_or_refuse(cut in 0usize..2000) {
        let hello = video_hello();
        let cut = cut % hello.len();
        prop_assert!(prefix_verdict_ok(client_hello_sni(&hello[..cut])));
        prop_assert!(prefix_verdict_ok(handshake_sni(&hello[5.min(cut)..cut])));
        prop_assert!(prefix_verdict_ok(ClientHelloBuf::<2048>::new().push(&hello[..cut])));
    }

    #[test]
    fn mutations_never_panic_and_never_invent_a_name(at in 0usize..2000, byte in any::<u8>()) {
        let mut hello = video_hello();
        let at = at % hello.len();
        hello[at] = byte;
        // A changed byte inside the name gives another valid name or a
        // Malformed; any name it gives is a hostname taken from the input.
        if let Hello::Sni(name) = client_hello_sni(&hello) {
            prop_assert_eq!(name.len(), "video.test".len());
            prop_assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));
        }
        let _ = ClientHelloBuf::<2048>::new().push(&hello);
    }
}

/// Feeds `stream` to a fresh buffer cut at `cut` and whole; both answers,
/// as comparable values.
fn whole_and_split(stream: &[u8], cut: usize) -> (String, String) {
    let cut = cut.min(stream.len());
    let mut whole = ClientHelloBuf::<512>::new();
    let w = format!("{:?}", whole.push(stream));
    let mut split = ClientHelloBuf::<512>::new();
    let _ = split.push(&stream[..cut]);
    let s = format!("{:?}", split.push(&stream[cut..]));
    (w, s)
}

proptest! {
    #[test]
    fn a_split_never_changes_the_answer_on_random_records(
        body in proptest::collection::vec(any::<u8>(), 0..400),
        cut in 0usize..420,
    ) {
        let mut rec = vec![22, 3, 1];
        rec.extend_from_slice(&(body.len() as u16).to_be_bytes());
        rec.extend_from_slice(&body);
        let (w, s) = whole_and_split(&rec, cut);
        prop_assert_eq!(w, s);
    }

    #[test]
    fn a_split_never_changes_the_answer_on_mutated_hellos(
        at in 0usize..2000,
        byte in any::<u8>(),
        cut in 0usize..2000,
        tail in proptest::collection::vec(any::<u8>(), 0..20),
    ) {
        let mut hello = video_hello();
        let at = at % hello.len();
        hello[at] = byte;
        hello.extend_from_slice(&tail);
        let (w, s) = whole_and_split(&hello, cut % hello.len());
        prop_assert_eq!(&w, &s);
        // The one-shot parse, when it names a host, names the same one.
        if let Hello::Sni(name) = client_hello_sni(&hello) {
            prop_assert_eq!(w, format!("{:?}", Hello::Sni(name)));
        }
    }
}

/// What a real TLS library's server makes of the hello `tls::client_hello`
/// builds: rustls' `Acceptor` reads it as a ClientHello and finds the name,
/// the ALPN list and the TLS 1.3 suites.
#[test]
fn rustls_accepts_our_client_hello() {
    for pad in [0, 1800] {
        let mut hello = Vec::new();
        weir_dataplane::app::tls::client_hello("video.test", pad, &mut hello).unwrap();
        let mut acceptor = rustls::server::Acceptor::default();
        let mut rd = hello.as_slice();
        while !rd.is_empty() {
            acceptor.read_tls(&mut rd).expect("read from a slice");
        }
        let accepted = acceptor
            .accept()
            .map_err(|(e, _)| e)
            .expect("a well-formed ClientHello")
            .expect("the whole ClientHello is there");
        let ch = accepted.client_hello();
        assert_eq!(ch.server_name(), Some("video.test"));
        let alpn: Vec<&[u8]> = ch.alpn().expect("alpn").collect();
        assert_eq!(alpn, [&b"h2"[..], b"http/1.1"]);
        assert!(ch
            .cipher_suites()
            .contains(&rustls::CipherSuite::TLS13_AES_128_GCM_SHA256));
    }
}

proptest! {
    /// The builder never panics: any name and padding either is refused or
    /// gives a ClientHello whose SNI our parsers read back, whole and in
    /// two segments.
    #[test]
    fn built_hellos_parse_back_or_are_refused(
        (valid, name) in prop_oneof![
            "[a-z0-9_-]{1,20}(\\.[a-zA-Z0-9_-]{1,20}){0,3}".prop_map(|n| (true, n)),
            "[a-z0-9._ -]{0,70}".prop_map(|n| (false, n)),
        ],
        pad in 0usize..20_000,
    ) {
        use weir_dataplane::app::tls::BuildError;
        let mut out = Vec::new();
        let built = weir_dataplane::app::tls::client_hello(&name, pad, &mut out);
        if valid {
            // A hostname is refused only for a padding past one record.
            prop_assert!(built.is_ok() || (built == Err(BuildError::TooLong) && pad > 16_000));
        }
        match built {
            Ok(()) => {
                prop_assert_eq!(client_hello_sni(&out), Hello::Sni(&name));
                prop_assert!(out.len() >= pad.min(16_384));
                let cut = out.len() / 2;
                let mut buf = ClientHelloBuf::<16_384>::new();
                let _ = buf.push(&out[..cut]);
                prop_assert_eq!(buf.push(&out[cut..]), Hello::Sni(&name));
            }
            Err(_) => prop_assert!(out.is_empty()),
        }
    }
}
