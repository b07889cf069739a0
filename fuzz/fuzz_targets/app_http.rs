//! The HTTP/1 Host parser never panics on any bytes, and any host it gives
//! is a non-empty ASCII slice of the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_dataplane::app::http::{request_host, Request};

fuzz_target!(|data: &[u8]| {
    if let Request::Host(host) = request_host(data) {
        assert!(!host.is_empty() && host.is_ascii());
    }
});
