//! Parsers for the first packets of a flow: the name a client asks for,
//! read before the flow's app is decided (issue 12, item 3).
//!
//! - [`tls`](crate::app::tls): the SNI of a TLS ClientHello, from a TCP stream's first bytes
//!   (one segment, or several joined in a bounded [`tls::ClientHelloBuf`](crate::app::tls::ClientHelloBuf)),
//!   or from a bare handshake message (what QUIC carries).
//! - [`http`](crate::app::http): the `Host` header of an HTTP/1.x request's
//!   first segment.
//! - [`quic`](crate::app::quic): QUIC v1 and v2 Initial packets: keys from
//!   the Destination Connection ID (RFC 9001 section 5.2), header protection
//!   removed, payload decrypted into a caller's scratch buffer, CRYPTO frames
//!   joined in a caller's reassembly buffer, then the handshake parser.
//!
//! They run only until a flow is decided, never on every packet; they
//! allocate nothing (a caller lends a buffer where one is needed) and return
//! a borrowed name, never a copy.
//!
//! # No-panic contract
//!
//! As in [`crate::parse`]: for every input — any length, any content,
//! truncated or random — every function here returns a value without
//! panicking and without arithmetic overflow. Reads go through `Reader`,
//! which bounds-checks with `get`; lengths taken from the input are added
//! with `checked_add`; there is no `unwrap`, no slice indexing by a runtime
//! value and no `unsafe`. Property tests (`dataplane/tests/app_*.rs`) hold them
//! to it.

pub mod engine;
pub mod glob;
pub mod http;
pub mod quic;
pub mod spec;
pub mod tls;

pub use engine::{app_id, AppCounters, Apps, AppsError, Decision, EngineCounters, Located};
pub use glob::{Glob, GlobError};
pub use spec::{AppSpec, AppsSpec, Behaviour, Bulk, RuleSpec};

/// A bounds-checked cursor over input bytes: every read either returns the
/// bytes asked for and moves on, or returns `None` and leaves the cursor
/// where it was.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(b: &'a [u8]) -> Self {
        Reader { rest: b }
    }

    /// Bytes not read yet.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.rest
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = self.rest.split_at_checked(n)?;
        self.rest = tail;
        Some(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.bytes(N)?.try_into().ok()
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[b]| b)
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    pub(crate) fn u24(&mut self) -> Option<u32> {
        self.array::<3>()
            .map(|[a, b, c]| u32::from_be_bytes([0, a, b, c]))
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }

    /// A QUIC variable-length integer (RFC 9000 section 16): the top two
    /// bits of the first byte give its length, 1, 2, 4 or 8 bytes.
    pub(crate) fn varint(&mut self) -> Option<u64> {
        let first = *self.rest.first()?;
        let len = 1usize << (first >> 6);
        let raw = self.bytes(len)?;
        let mut v = u64::from(first & 0x3f);
        for b in raw.iter().skip(1) {
            v = (v << 8) | u64::from(*b);
        }
        Some(v)
    }
}

/// Whether `name` is an ASCII hostname as a classifier may match it:
/// 1 to 253 bytes of dot-separated labels of 1 to 63 letters, digits,
/// hyphens or underscores (seen in real names though not in RFC 1123), one
/// trailing dot allowed. Case is kept: matchers compare case-insensitively.
pub(crate) fn is_hostname(name: &[u8]) -> bool {
    let name = name.strip_suffix(b".").unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return false;
    }
    name.split(|&b| b == b'.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}
