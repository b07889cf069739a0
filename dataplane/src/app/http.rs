//! The `Host` header of an HTTP/1.x request (RFC 9112), read from the first
//! bytes a client sends.
//!
//! The request line is checked for shape (`METHOD SP target SP HTTP/1.x`)
//! so that a stream which is not HTTP is told apart early; then header
//! lines are walked until `Host` or the blank line that ends them. The
//! answer comes as soon as the `Host` line is complete: browsers send it
//! first, and a request whose cookies push the end of the headers into a
//! later segment is still decided on its first one. Only the first
//! [`SCAN_LIMIT`] bytes are looked at, so a hostile header block costs a
//! bounded scan.

use super::is_hostname;

/// How many bytes of a request are looked at. Real request heads put `Host`
/// in the first few hundred bytes; past this the request is
/// [`Request::TooLong`].
pub const SCAN_LIMIT: usize = 4096;
/// The longest method token accepted (the registered ones are at most 17
/// bytes: `VERSION-CONTROL`, `BASELINE-CONTROL`, `MKWORKSPACE`...).
const MAX_METHOD: usize = 24;

/// What the first bytes of a stream say about an HTTP/1.x request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// The `Host` header's host, port stripped, borrowed from the input
    /// (ASCII hostname, or the inside of an IPv6 literal's brackets; case as
    /// sent).
    Host(&'a str),
    /// A complete request head without `Host` (HTTP/1.0 allows that).
    NoHost,
    /// A request so far: neither `Host` nor the end of the head is in the
    /// bytes given.
    NeedMore,
    /// The first bytes are not an HTTP/1.x request line.
    NotHttp,
    /// A request whose head is broken where it was read.
    Malformed(Malformed),
    /// [`SCAN_LIMIT`] bytes read and neither `Host` nor the end of the head
    /// found.
    TooLong,
}

/// What is broken in a request head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// A header line without a `:` after a token name.
    HeaderLine,
    /// A `Host` value that is not `host[:port]`.
    Host,
}

/// The `Host` of the HTTP/1.x request at the start of `stream`.
pub fn request_host(stream: &[u8]) -> Request<'_> {
    let limited = stream.len() > SCAN_LIMIT;
    let head = stream.get(..SCAN_LIMIT).unwrap_or(stream);
    let more = if limited {
        Request::TooLong
    } else {
        Request::NeedMore
    };
    let mut lines = Lines { rest: head };
    let Some(line) = lines.next() else {
        return if request_line_prefix(head) {
            more
        } else {
            Request::NotHttp
        };
    };
    if !request_line(line) {
        return Request::NotHttp;
    }
    for line in lines {
        if line.is_empty() {
            return Request::NoHost;
        }
        if matches!(line.first(), Some(b' ' | b'\t')) {
            // obs-fold: a continuation of the line before, which was not
            // Host (that returned).
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Request::Malformed(Malformed::HeaderLine);
        };
        let (name, value) = line.split_at(colon);
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Request::Malformed(Malformed::HeaderLine);
        }
        if name.eq_ignore_ascii_case(b"host") {
            return match host(value.get(1..).unwrap_or(&[])) {
                Some(h) => Request::Host(h),
                None => Request::Malformed(Malformed::Host),
            };
        }
    }
    more
}

/// Complete lines (ended by LF, an optional CR before it removed); the
/// bytes after the last LF are an incomplete line and are not returned.
struct Lines<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let lf = self.rest.iter().position(|&b| b == b'\n')?;
        let (line, rest) = self.rest.split_at(lf);
        self.rest = rest.get(1..).unwrap_or(&[]);
        Some(line.strip_suffix(b"\r").unwrap_or(line))
    }
}

/// `METHOD SP request-target SP HTTP/1.x`.
fn request_line(line: &[u8]) -> bool {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    method_token(method)
        && !target.is_empty()
        && target.iter().all(|&b| b.is_ascii_graphic())
        && matches!(version, [b'H', b'T', b'T', b'P', b'/', b'1', b'.', d] if d.is_ascii_digit())
}

/// Whether an incomplete first line could still become a request line: a
/// method token so far, or a token and a space and more.
fn request_line_prefix(b: &[u8]) -> bool {
    match b.iter().position(|&c| c == b' ') {
        None => b.len() <= MAX_METHOD && b.iter().all(|&c| is_tchar(c)),
        Some(sp) => method_token(b.get(..sp).unwrap_or(&[])),
    }
}

fn method_token(m: &[u8]) -> bool {
    !m.is_empty() && m.len() <= MAX_METHOD && m.iter().all(|&b| is_tchar(b))
}

/// RFC 9110 section 5.6.2 tchar.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `host[:port]` with optional whitespace around it; the host is a hostname
/// or a bracketed IPv6 literal, returned without brackets.
fn host(value: &[u8]) -> Option<&str> {
    let v = trim_ows(value);
    let (name, port) = if let Some(rest) = v.strip_prefix(b"[") {
        let close = rest.iter().position(|&b| b == b']')?;
        let (lit, after) = rest.split_at(close);
        let after = after.get(1..).unwrap_or(&[]);
        let ok = !lit.is_empty()
            && lit
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        if !ok {
            return None;
        }
        (lit, after)
    } else {
        match v.iter().position(|&b| b == b':') {
            Some(c) => {
                let (n, p) = v.split_at(c);
                if !is_hostname(n) {
                    return None;
                }
                (n, p)
            }
            None => {
                if !is_hostname(v) {
                    return None;
                }
                (v, &[][..])
            }
        }
    };
    match port {
        [] => {}
        [b':', digits @ ..] if digits.len() <= 5 && digits.iter().all(u8::is_ascii_digit) => {}
        _ => return None,
    }
    std::str::from_utf8(name).ok()
}

fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// Why [`request`] made nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildError {
    /// The host is not an ASCII hostname as [`request_host`] accepts it.
    Host,
    /// The path does not start with `/` or holds a byte other than visible
    /// ASCII (no spaces, no control characters).
    Path,
}

/// Writes the head of an HTTP/1.1 `GET` request for `path` on `host`, as a
/// browser or curl sends it: request line, `Host` first, a `User-Agent`, an
/// `Accept`, and the blank line. [`request_host`] gives `host` back. For the
/// simulator and tests.
pub fn request(host: &str, path: &str, out: &mut Vec<u8>) -> Result<(), BuildError> {
    if !is_hostname(host.as_bytes()) {
        return Err(BuildError::Host);
    }
    if !path.starts_with('/') || !path.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(BuildError::Path);
    }
    for part in [
        "GET ",
        path,
        " HTTP/1.1\r\nHost: ",
        host,
        "\r\nUser-Agent: weir-sim\r\nAccept: */*\r\n\r\n",
    ] {
        out.extend_from_slice(part.as_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod build_tests {
    use super::*;

    #[test]
    fn request_gives_its_host_back() {
        for (host, path) in [("video.test", "/"), ("a", "/x?y=1&z=%20")] {
            let mut out = Vec::new();
            request(host, path, &mut out).unwrap();
            assert_eq!(request_host(&out), Request::Host(host));
            assert!(out.starts_with(format!("GET {path} HTTP/1.1\r\n").as_bytes()));
            assert!(out.ends_with(b"\r\n\r\n"));
        }
    }

    #[test]
    fn bad_hosts_and_paths_are_errors() {
        let mut out = Vec::new();
        for host in ["", "a b", "a:80", "é"] {
            assert_eq!(
                request(host, "/", &mut out),
                Err(BuildError::Host),
                "{host:?}"
            );
        }
        for path in ["", "x", "/a b", "/\r\nX: y"] {
            assert_eq!(
                request("a.test", path, &mut out),
                Err(BuildError::Path),
                "{path:?}"
            );
        }
        assert!(out.is_empty());
    }
}
