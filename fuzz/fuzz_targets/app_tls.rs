//! The TLS ClientHello parsers never panic on any bytes; the bounded
//! reassembly buffer gives the same answer whether the stream comes whole
//! or cut in two (where the first byte says); and when the one-shot parse
//! names a host, the buffer names the same one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_dataplane::app::tls::{client_hello_sni, handshake_sni, ClientHelloBuf, Hello};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let _ = handshake_sni(stream);
    let one = client_hello_sni(stream);
    let mut whole = ClientHelloBuf::<2048>::new();
    let w = whole.push(stream);
    let cut = usize::from(cut).min(stream.len());
    let (a, b) = stream.split_at(cut);
    let mut split = ClientHelloBuf::<2048>::new();
    let _ = split.push(a);
    let s = split.push(b);
    assert_eq!(w, s, "cutting the stream at {cut} changed the answer");
    if let Hello::Sni(name) = one {
        assert_eq!(w, Hello::Sni(name), "the buffer names another host");
    }
});
