//! HTTP/1.x Host (`app::http`): real request heads, the forms `Host` takes,
//! what is not HTTP, and random and truncated input (the no-panic
//! contract).

use proptest::prelude::*;
use weir_dataplane::app::http::{request_host, Malformed, Request, SCAN_LIMIT};

/// What curl 8 sends for `curl http://video.test:8080/index.html`.
const CURL: &[u8] = b"GET /index.html HTTP/1.1\r\nHost: video.test:8080\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n";

#[test]
fn curl_request_gives_its_host_without_the_port() {
    assert_eq!(request_host(CURL), Request::Host("video.test"));
}

#[test]
fn host_is_found_case_insensitively_after_other_headers() {
    let req = b"POST /api HTTP/1.1\r\nUser-Agent: x\r\nContent-Length: 3\r\nhOsT:\t Example.COM \r\n\r\nabc";
    assert_eq!(request_host(req), Request::Host("Example.COM"));
    let lf_only = b"GET / HTTP/1.0\nHOST: a.b\n\n";
    assert_eq!(request_host(lf_only), Request::Host("a.b"));
    let v6 = b"GET / HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n\r\n";
    assert_eq!(request_host(v6), Request::Host("2001:db8::1"));
    let trailing_dot = b"GET / HTTP/1.1\r\nHost: video.test.\r\n\r\n";
    assert_eq!(request_host(trailing_dot), Request::Host("video.test."));
}

#[test]
fn host_comes_before_the_end_of_the_head() {
    // Cookies push the blank line into a later segment: Host is known now.
    let mut req = b"GET / HTTP/1.1\r\nHost: video.test\r\nCookie: ".to_vec();
    req.extend(std::iter::repeat_n(b'x', 1000));
    assert_eq!(request_host(&req), Request::Host("video.test"));
}

#[test]
fn a_head_without_host_is_no_host() {
    assert_eq!(
        request_host(b"GET / HTTP/1.0\r\nAccept: */*\r\n\r\n"),
        Request::NoHost
    );
    assert_eq!(request_host(b"GET / HTTP/1.0\r\n\r\n"), Request::NoHost);
    // A header that merely ends in "host" is not Host.
    assert_eq!(
        request_host(b"GET / HTTP/1.1\r\nX-Forwarded-Host: a.b\r\n\r\n"),
        Request::NoHost
    );
}

#[test]
fn other_streams_are_not_http() {
    for s in [
        &b"\x16\x03\x01\x02\x00\x01"[..],
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"GET / HTTP/2.0\r\n\r\n",
        b"GET  / HTTP/1.1\r\n\r\n",
        b"GET /\r\n\r\n",
        b"G T / HTTP/1.1\r\n",
        b"\r\n",
        b"GETTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTT",
    ] {
        assert_eq!(
            request_host(s),
            Request::NotHttp,
            "{:?}",
            String::from_utf8_lossy(s)
        );
    }
}

#[test]
fn broken_heads_are_malformed() {
    assert_eq!(
        request_host(b"GET / HTTP/1.1\r\nno colon here\r\nHost: a.b\r\n\r\n"),
        Request::Malformed(Malformed::HeaderLine)
    );
    for bad in [
        &b"Host: a b\r\n"[..],
        b"Host: \r\n",
        b"Host: a.b:80x\r\n",
        b"Host: a.b:123456\r\n",
        b"Host: [zz::1]\r\n",
        b"Host: [::1\r\n",
        b"Host: a..b\r\n",
        b"Host: user@a.b\r\n",
    ] {
        let mut req = b"GET / HTTP/1.1\r\n".to_vec();
        req.extend_from_slice(bad);
        req.extend_from_slice(b"\r\n");
        assert_eq!(
            request_host(&req),
            Request::Malformed(Malformed::Host),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn every_prefix_waits_and_only_the_full_host_line_names_it() {
    let host_line_end = CURL
        .windows(12)
        .position(|w| w == b"\r\nUser-Agent")
        .unwrap()
        + 2;
    for cut in 0..=CURL.len() {
        let got = request_host(&CURL[..cut]);
        if cut < host_line_end {
            assert_eq!(got, Request::NeedMore, "cut at {cut}");
        } else {
            assert_eq!(got, Request::Host("video.test"), "cut at {cut}");
        }
    }
}

#[test]
fn only_the_first_scan_limit_bytes_are_read() {
    let mut req = b"GET / HTTP/1.1\r\n".to_vec();
    while req.len() < SCAN_LIMIT {
        req.extend_from_slice(b"X-Pad: yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\r\n");
    }
    let mut with_host = req.clone();
    with_host.extend_from_slice(b"Host: video.test\r\n\r\n");
    assert_eq!(request_host(&with_host), Request::TooLong);
    assert_eq!(request_host(&req[..SCAN_LIMIT]), Request::NeedMore);
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Request::Host(h) = request_host(&bytes) {
            prop_assert!(!h.is_empty() && h.is_ascii());
        }
    }

    #[test]
    fn random_headers_after_a_request_line_never_panic(
        lines in proptest::collection::vec("[ -~\t]{0,40}", 0..12),
        big in any::<bool>(),
    ) {
        let mut req = b"GET / HTTP/1.1\r\n".to_vec();
        for l in &lines {
            req.extend_from_slice(l.as_bytes());
            req.extend_from_slice(b"\r\n");
        }
        if big {
            req.resize(SCAN_LIMIT + 10, b'a');
        }
        if let Request::Host(h) = request_host(&req) {
            prop_assert!(!h.is_empty() && h.is_ascii());
        }
    }

    #[test]
    fn truncations_wait_or_refuse(cut in 0usize..200) {
        let cut = cut % CURL.len();
        let got = request_host(&CURL[..cut]);
        prop_assert!(matches!(got, Request::NeedMore | Request::Host("video.test")), "{:?}", got);
    }
}

proptest! {
    /// The builder never panics: any host and path either is refused or
    /// gives a request whose Host our parser reads back.
    #[test]
    fn built_requests_parse_back_or_are_refused(
        (valid, host, path) in prop_oneof![
            ("[a-z0-9_-]{1,20}(\\.[a-zA-Z0-9_-]{1,20}){0,3}", "/[!-~]{0,40}")
                .prop_map(|(h, p)| (true, h, p)),
            ("[a-zA-Z0-9.:_ -]{0,40}", "[ -~]{0,40}").prop_map(|(h, p)| (false, h, p)),
        ],
    ) {
        let mut out = Vec::new();
        let built = weir_dataplane::app::http::request(&host, &path, &mut out);
        prop_assert!(!valid || built.is_ok(), "{:?} {:?}", host, path);
        match built {
            Ok(()) => prop_assert_eq!(request_host(&out), Request::Host(&host)),
            Err(_) => prop_assert!(out.is_empty()),
        }
    }
}
