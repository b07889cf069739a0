//! ns per parse for the first-packet parsers (`weir_dataplane::app`): what
//! a flow costs once, on its first packet(s), before its app is decided.
//!
//! - `tls_sni`: the SNI of RFC 9001 appendix A's ClientHello (241 bytes,
//!   `example.com`) in one TLS record, parsed in place.
//! - `tls_sni_two_segments`: the same cut in two, through `ClientHelloBuf`
//!   (copy, then parse twice).
//! - `http_host`: the Host of a curl-like 90-byte request head.
//! - `quic_keys`: the client Initial keys from the DCID alone (HKDF).
//! - `quic_sni`: RFC 9001 appendix A.2's 1200-byte client Initial: keys,
//!   header protection, AES-128-GCM, CRYPTO frames, ClientHello.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use weir_dataplane::app::http::request_host;
use weir_dataplane::app::quic::{client_initial_keys, initial_sni, CryptoBuf, VERSION_1};
use weir_dataplane::app::tls::{client_hello_sni, ClientHelloBuf, Hello};

const CLIENT_HELLO: &str = include_str!("../../dataplane/tests/data/rfc9001-a2-client-hello.hex");
const V1_PACKET: &str = include_str!("../../dataplane/tests/data/rfc9001-a2-client-initial.hex");
const DCID: [u8; 8] = [0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).expect("ascii"), 16).expect("hex"))
        .collect()
}

fn bench_app(c: &mut Criterion) {
    let hs = hex(CLIENT_HELLO);
    let mut record = vec![22, 3, 1];
    record.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    record.extend_from_slice(&hs);
    assert_eq!(client_hello_sni(&record), Hello::Sni("example.com"));
    let packet = hex(V1_PACKET);
    let request = b"GET /index.html HTTP/1.1\r\nHost: video.test:8080\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n";

    let mut g = c.benchmark_group("app");
    g.throughput(Throughput::Elements(1));
    g.bench_function("tls_sni", |b| {
        b.iter(|| matches!(client_hello_sni(black_box(&record)), Hello::Sni(_)))
    });
    let (a, rest) = record.split_at(100);
    let mut buf = ClientHelloBuf::<2048>::new();
    g.bench_function("tls_sni_two_segments", |b| {
        b.iter(|| {
            buf.clear();
            let _ = buf.push(black_box(a));
            matches!(buf.push(black_box(rest)), Hello::Sni(_))
        })
    });
    g.bench_function("http_host", |b| b.iter(|| request_host(black_box(request))));
    g.bench_function("quic_keys", |b| {
        b.iter(|| client_initial_keys(VERSION_1, black_box(&DCID)))
    });
    let mut scratch = [0u8; 1500];
    let mut crypto = CryptoBuf::<4096>::new();
    g.bench_function("quic_sni", |b| {
        b.iter(|| {
            crypto.clear();
            matches!(
                initial_sni(black_box(&packet), &mut scratch, &mut crypto),
                Ok(Hello::Sni(_))
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench_app);
criterion_main!(benches);
