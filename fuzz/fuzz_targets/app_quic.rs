//! The QUIC Initial parser never panics on any bytes: the header, header
//! protection and decryption path on the datagram as given, and the frame
//! walk and CRYPTO reassembly on the same bytes as if they had decrypted to
//! them (random bytes almost never pass the AEAD tag, so the frame walk is
//! fuzzed directly).
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_dataplane::app::quic::{collect_crypto, initial_sni, CryptoBuf};
use weir_dataplane::app::tls::handshake_sni;

fuzz_target!(|data: &[u8]| {
    let mut scratch = [0u8; 1500];
    let mut crypto = CryptoBuf::<4096>::new();
    let _ = initial_sni(data, &mut scratch, &mut crypto);
    let mut crypto = CryptoBuf::<4096>::new();
    if collect_crypto(data, &mut crypto).is_ok() {
        assert!(crypto.contiguous().len() <= 4096);
        let _ = handshake_sni(crypto.contiguous());
    }
});
