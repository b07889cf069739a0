//! The server name (SNI, RFC 6066 section 3) of a TLS ClientHello.
//!
//! Three ways in:
//! - [`client_hello_sni`]: the first bytes of a TCP stream (TLS records),
//!   zero-copy. Enough when the ClientHello is in the first segment, as it
//!   is for most clients.
//! - [`ClientHelloBuf`]: a bounded reassembly buffer for a ClientHello that
//!   spans TCP segments (post-quantum key shares make it ~1.8 kB, more than
//!   one 1460-byte segment) or TLS records. The caller appends each segment's
//!   payload in stream order; the buffer strips the record headers and
//!   parses again.
//! - [`handshake_sni`]: a bare handshake message with no record header, as
//!   QUIC carries it in CRYPTO frames.
//!
//! The whole ClientHello must be there and well-formed before a name is
//! given: a prefix of a ClientHello is [`Hello::NeedMore`], never a guess,
//! so a cut or forged hello cannot steer a flow with a half-read name.

use super::{is_hostname, Reader};

/// TLS record content type of handshake messages.
const CONTENT_HANDSHAKE: u8 = 22;
/// Handshake message type of a ClientHello.
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
/// Extension type of server_name (RFC 6066).
const EXT_SERVER_NAME: u16 = 0;
/// NameType host_name inside server_name.
const NAME_HOST: u8 = 0;
const RECORD_HEADER: usize = 5;
const HANDSHAKE_HEADER: usize = 4;
/// The largest plaintext record (RFC 8446 section 5.1: 2^14).
const MAX_RECORD: usize = 1 << 14;

/// What the bytes given say about a ClientHello.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hello<'a> {
    /// A complete, well-formed ClientHello naming this host (borrowed from
    /// the input; ASCII, validated as a hostname, case as sent).
    Sni(&'a str),
    /// A complete, well-formed ClientHello with no host_name in it.
    NoSni,
    /// A ClientHello so far, cut short. `total` is how many bytes the whole
    /// ClientHello takes, counted in the input's own framing (records
    /// included for [`client_hello_sni`], handshake bytes for
    /// [`handshake_sni`] and [`ClientHelloBuf`]); `None` while the header
    /// that says it is itself cut, or (for [`client_hello_sni`] only) when
    /// the ClientHello goes on in a further record, which only
    /// [`ClientHelloBuf`] joins.
    NeedMore { total: Option<usize> },
    /// Not a TLS handshake record, or a handshake message other than a
    /// ClientHello.
    NotClientHello,
    /// A ClientHello (or its record) whose structure is broken.
    Malformed(Malformed),
    /// [`ClientHelloBuf`] only: the ClientHello is longer than the buffer's
    /// capacity (`total` handshake bytes, when known). The caller counts it
    /// and decides the flow without a name.
    TooLong { total: Option<usize> },
}

/// Which part of a ClientHello is broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// A record header with a version other than 3.x, or a length of zero or
    /// over 2^14.
    Record,
    /// A record after the first that is not a handshake record.
    RecordType,
    /// The fixed part (version, random) or the session id.
    SessionId,
    /// The cipher suite list: empty, odd or past the end.
    CipherSuites,
    /// The compression method list: empty or past the end.
    Compression,
    /// The extension block or one extension's length past its end.
    Extensions,
    /// The server_name extension's lists do not add up.
    ServerName,
    /// A host_name that is not an ASCII hostname.
    Hostname,
    /// Bytes after the extensions, inside the ClientHello's length.
    TrailingBytes,
}

/// The SNI of a ClientHello at the start of a TCP stream: `stream` is the
/// client's first bytes (one or more segments' payloads, in order).
///
/// Reads only the first record: a ClientHello that continues in a second
/// record is `NeedMore { total: None }`, and [`ClientHelloBuf`] is the way
/// to join it. Bytes after the ClientHello are not looked at.
pub fn client_hello_sni(stream: &[u8]) -> Hello<'_> {
    let mut r = Reader::new(stream);
    let Some([content, major, minor_and_len @ ..]) = r.array::<RECORD_HEADER>() else {
        return record_prefix(stream);
    };
    if content != CONTENT_HANDSHAKE {
        return Hello::NotClientHello;
    }
    let [_, len_hi, len_lo] = minor_and_len;
    let len = usize::from(u16::from_be_bytes([len_hi, len_lo]));
    if major != 3 || len == 0 || len > MAX_RECORD {
        return Hello::Malformed(Malformed::Record);
    }
    let have = r.rest();
    let in_record = have.get(..len).unwrap_or(have);
    match handshake_sni(in_record) {
        Hello::NeedMore { total: Some(total) } if total > len => {
            // The message is longer than its record: the rest is in later
            // records, whose headers are not known yet.
            Hello::NeedMore { total: None }
        }
        Hello::NeedMore { total } => Hello::NeedMore {
            total: total.and_then(|t| t.checked_add(RECORD_HEADER)),
        },
        other => other,
    }
}

/// What the first bytes of a stream shorter than a record header say.
fn record_prefix(stream: &[u8]) -> Hello<'_> {
    match stream {
        [] | [CONTENT_HANDSHAKE] | [CONTENT_HANDSHAKE, 3, ..] => Hello::NeedMore { total: None },
        [CONTENT_HANDSHAKE, _, ..] => Hello::Malformed(Malformed::Record),
        _ => Hello::NotClientHello,
    }
}

/// The whole handshake message's length (header included), if its header
/// is there.
fn handshake_len(hs: &[u8]) -> Option<usize> {
    let mut r = Reader::new(hs);
    r.u8()?;
    let body = usize::try_from(r.u24()?).ok()?;
    body.checked_add(HANDSHAKE_HEADER)
}

/// The SNI of a bare handshake message (type, 24-bit length, body), as
/// QUIC's CRYPTO frames carry it. Bytes after the message are not looked at.
pub fn handshake_sni(hs: &[u8]) -> Hello<'_> {
    match hs.first() {
        None => return Hello::NeedMore { total: None },
        Some(&HANDSHAKE_CLIENT_HELLO) => {}
        Some(_) => return Hello::NotClientHello,
    }
    let Some(total) = handshake_len(hs) else {
        return Hello::NeedMore { total: None };
    };
    match hs.get(HANDSHAKE_HEADER..total) {
        Some(body) => match client_hello_body(body) {
            Ok(Some(name)) => Hello::Sni(name),
            Ok(None) => Hello::NoSni,
            Err(m) => Hello::Malformed(m),
        },
        None => Hello::NeedMore { total: Some(total) },
    }
}

/// Walks a complete ClientHello body (RFC 8446 section 4.1.2; the same
/// layout since TLS 1.0) to its server_name extension.
fn client_hello_body(body: &[u8]) -> Result<Option<&str>, Malformed> {
    let mut r = Reader::new(body);
    // legacy_version, random
    r.bytes(2 + 32).ok_or(Malformed::SessionId)?;
    let sid = r.u8().ok_or(Malformed::SessionId)?;
    if sid > 32 {
        return Err(Malformed::SessionId);
    }
    r.bytes(usize::from(sid)).ok_or(Malformed::SessionId)?;
    let suites = usize::from(r.u16().ok_or(Malformed::CipherSuites)?);
    if suites == 0 || suites % 2 != 0 {
        return Err(Malformed::CipherSuites);
    }
    r.bytes(suites).ok_or(Malformed::CipherSuites)?;
    let methods = usize::from(r.u8().ok_or(Malformed::Compression)?);
    if methods == 0 {
        return Err(Malformed::Compression);
    }
    r.bytes(methods).ok_or(Malformed::Compression)?;
    if r.is_empty() {
        // A ClientHello without extensions (SSL 3.0, old TLS 1.0 clients).
        return Ok(None);
    }
    let ext_len = usize::from(r.u16().ok_or(Malformed::Extensions)?);
    let mut exts = Reader::new(r.bytes(ext_len).ok_or(Malformed::Extensions)?);
    if !r.is_empty() {
        return Err(Malformed::TrailingBytes);
    }
    let mut name = None;
    while !exts.is_empty() {
        let ty = exts.u16().ok_or(Malformed::Extensions)?;
        let len = usize::from(exts.u16().ok_or(Malformed::Extensions)?);
        let data = exts.bytes(len).ok_or(Malformed::Extensions)?;
        // The first server_name counts; walking on checks that the rest of
        // the block is well-formed too.
        if ty == EXT_SERVER_NAME && name.is_none() {
            name = Some(server_name(data)?);
        }
    }
    Ok(name.flatten())
}

/// The first host_name of a server_name extension's ServerNameList.
fn server_name(data: &[u8]) -> Result<Option<&str>, Malformed> {
    let mut r = Reader::new(data);
    let list_len = usize::from(r.u16().ok_or(Malformed::ServerName)?);
    let mut list = Reader::new(r.bytes(list_len).ok_or(Malformed::ServerName)?);
    if !r.is_empty() {
        return Err(Malformed::ServerName);
    }
    let mut host = None;
    while !list.is_empty() {
        let ty = list.u8().ok_or(Malformed::ServerName)?;
        let len = usize::from(list.u16().ok_or(Malformed::ServerName)?);
        let name = list.bytes(len).ok_or(Malformed::ServerName)?;
        if ty == NAME_HOST && host.is_none() {
            if !is_hostname(name) {
                return Err(Malformed::Hostname);
            }
            host = std::str::from_utf8(name).ok();
        }
    }
    Ok(host)
}

/// Where the record layer is in the stream a [`ClientHelloBuf`] is fed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RecordState {
    /// Collecting a record header: this many of its 5 bytes seen.
    Header {
        have: u8,
        bytes: [u8; RECORD_HEADER],
    },
    /// Inside a record's payload: this many bytes of it still to come.
    Payload { left: u16 },
    /// A verdict that more bytes cannot change.
    Done,
}

/// A ClientHello reassembled from TCP segments, in a fixed `N` bytes.
///
/// [`ClientHelloBuf::push`] takes the next segment's payload (in stream
/// order: the caller drops retransmissions and holds back nothing), strips
/// TLS record headers, keeps the handshake bytes and parses them again. A
/// ClientHello longer than `N` handshake bytes is [`Hello::TooLong`] as soon
/// as its header says so. Nothing allocates: a flow table keeps a pool of
/// these, sized once. 2048 holds today's post-quantum ClientHellos.
#[derive(Clone, Debug)]
pub struct ClientHelloBuf<const N: usize> {
    hs: [u8; N],
    len: usize,
    state: RecordState,
    /// The verdict once it is final (`Done`).
    last: Option<Verdict>,
}

/// A final verdict a [`ClientHelloBuf`] keeps without borrowing itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    NotClientHello,
    Malformed(Malformed),
    TooLong(Option<usize>),
}

impl<const N: usize> Default for ClientHelloBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> ClientHelloBuf<N> {
    pub const fn new() -> Self {
        ClientHelloBuf {
            hs: [0; N],
            len: 0,
            state: RecordState::Header {
                have: 0,
                bytes: [0; RECORD_HEADER],
            },
            last: None,
        }
    }

    /// Empty again, for the next flow.
    pub fn clear(&mut self) {
        self.len = 0;
        self.state = RecordState::Header {
            have: 0,
            bytes: [0; RECORD_HEADER],
        };
        self.last = None;
    }

    /// The handshake bytes held so far (record headers stripped).
    pub fn handshake(&self) -> &[u8] {
        self.hs.get(..self.len).unwrap_or(&[])
    }

    /// Appends the next segment's payload and says what the stream holds
    /// now. Once the answer is final (anything but `NeedMore`), further
    /// pushes change nothing and return it again.
    pub fn push(&mut self, segment: &[u8]) -> Hello<'_> {
        if let Some(v) = self.last {
            return v.hello();
        }
        if self.state == RecordState::Done {
            return handshake_sni(self.handshake());
        }
        let taken = self.take(segment);
        // Borrows only `hs`, so the verdict can be stored in `state` and
        // `last` beside it.
        let hello = handshake_sni(self.hs.get(..self.len).unwrap_or(&[]));
        if let Err(v) = taken {
            // The verdict reached earliest in the stream stands, so that
            // where the segments are cut never changes it: a complete
            // ClientHello's (bytes after it are not looked at, as in
            // `client_hello_sni`), or "too long", known from the handshake
            // header before any later record's error.
            let v = match hello {
                Hello::NeedMore { total: Some(t) } if t > N => Verdict::TooLong(Some(t)),
                _ => v,
            };
            if matches!(hello, Hello::NeedMore { .. }) {
                self.state = RecordState::Done;
                self.last = Some(v);
                return v.hello();
            }
        }
        let verdict = match hello {
            Hello::NotClientHello => Verdict::NotClientHello,
            Hello::Malformed(m) => Verdict::Malformed(m),
            Hello::NeedMore { total: Some(t) } if t > N => Verdict::TooLong(Some(t)),
            Hello::NeedMore { .. } if self.len >= N => Verdict::TooLong(None),
            Hello::Sni(_) | Hello::NoSni => {
                self.state = RecordState::Done;
                return hello;
            }
            _ => return hello,
        };
        self.state = RecordState::Done;
        self.last = Some(verdict);
        verdict.hello()
    }

    /// Runs the record layer over `segment`, appending payload bytes.
    fn take(&mut self, mut segment: &[u8]) -> Result<(), Verdict> {
        while !segment.is_empty() {
            match self.state {
                RecordState::Done => return Ok(()),
                RecordState::Header { have, mut bytes } => {
                    let at = usize::from(have);
                    let want = RECORD_HEADER.saturating_sub(at);
                    let (head, tail) = segment
                        .split_at_checked(want.min(segment.len()))
                        .unwrap_or((segment, &[]));
                    if let Some(dst) = bytes.get_mut(at..at.saturating_add(head.len())) {
                        dst.copy_from_slice(head);
                    }
                    segment = tail;
                    let have = at.saturating_add(head.len());
                    if have < RECORD_HEADER {
                        self.state = RecordState::Header {
                            have: u8::try_from(have).unwrap_or(u8::MAX),
                            bytes,
                        };
                        // Check what there is so far, so a stream that is
                        // not TLS is known from its first byte.
                        return match record_prefix(bytes.get(..have).unwrap_or(&[])) {
                            Hello::NotClientHello if self.len == 0 => Err(Verdict::NotClientHello),
                            Hello::NotClientHello => Err(Verdict::Malformed(Malformed::RecordType)),
                            Hello::Malformed(m) => Err(Verdict::Malformed(m)),
                            _ => Ok(()),
                        };
                    }
                    let [content, major, _, hi, lo] = bytes;
                    let left = u16::from_be_bytes([hi, lo]);
                    if content != CONTENT_HANDSHAKE {
                        return Err(if self.len == 0 {
                            Verdict::NotClientHello
                        } else {
                            Verdict::Malformed(Malformed::RecordType)
                        });
                    }
                    if major != 3 || left == 0 || usize::from(left) > MAX_RECORD {
                        return Err(Verdict::Malformed(Malformed::Record));
                    }
                    self.state = RecordState::Payload { left };
                }
                RecordState::Payload { left } => {
                    let n = usize::from(left).min(segment.len());
                    let (head, tail) = segment.split_at_checked(n).unwrap_or((segment, &[]));
                    // Copy what fits, so a ClientHello over the capacity is
                    // still known by the length in its header.
                    let room = N.saturating_sub(self.len).min(n);
                    let end = self.len.saturating_add(room);
                    if let (Some(dst), Some(src)) =
                        (self.hs.get_mut(self.len..end), head.get(..room))
                    {
                        dst.copy_from_slice(src);
                    }
                    self.len = end;
                    if room < n {
                        return Err(Verdict::TooLong(handshake_len(self.handshake())));
                    }
                    segment = tail;
                    let left = left.saturating_sub(u16::try_from(n).unwrap_or(u16::MAX));
                    self.state = if left == 0 {
                        RecordState::Header {
                            have: 0,
                            bytes: [0; RECORD_HEADER],
                        }
                    } else {
                        RecordState::Payload { left }
                    };
                }
            }
        }
        Ok(())
    }
}

impl Verdict {
    fn hello(self) -> Hello<'static> {
        match self {
            Verdict::NotClientHello => Hello::NotClientHello,
            Verdict::Malformed(m) => Hello::Malformed(m),
            Verdict::TooLong(total) => Hello::TooLong { total },
        }
    }
}

/// Why [`client_hello`] made nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildError {
    /// The name is not an ASCII hostname as [`client_hello_sni`] accepts it.
    Hostname,
    /// The ClientHello (with its padding) would not fit one record (2^14
    /// bytes), or an ALPN protocol name is empty or over 255 bytes.
    TooLong,
}

/// What goes in a ClientHello [`client_hello_handshake`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HelloSpec<'a> {
    /// The server_name.
    pub sni: &'a str,
    /// ALPN protocols (RFC 7301), in preference order; none: no extension.
    pub alpn: &'a [&'a str],
    /// QUIC transport parameters (RFC 9000 section 18), raw, for a
    /// ClientHello carried in QUIC; `None` over TCP.
    pub quic_params: Option<&'a [u8]>,
    /// The handshake message is padded (RFC 7685 padding extension) to at
    /// least this many bytes; 0: no padding. Today's post-quantum hellos are
    /// ~1.8 kB, more than one TCP segment.
    pub pad_to: usize,
}

/// Handshake bytes of a ClientHello that ends at the padding extension's
/// header: the extension needs 4 bytes of its own.
const PAD_EXT_HEADER: usize = 4;

/// Writes a TLS 1.3 ClientHello record (RFC 8446 section 4.1.2) for `sni`:
/// record header, handshake header, the TLS 1.3 cipher suites, and the
/// extensions a real client sends (server_name, supported_groups,
/// signature_algorithms, ALPN `h2`/`http/1.1`, supported_versions,
/// psk_key_exchange_modes, an X25519 key_share), padded to `pad_to`
/// handshake bytes when that is more. [`client_hello_sni`] gives `sni`
/// back.
///
/// For the simulator and tests, not for talking to servers: the random, the
/// session id and the key share are bytes derived from the name, so the
/// same name gives the same hello (runs are reproducible), and no key
/// behind the share exists.
pub fn client_hello(sni: &str, pad_to: usize, out: &mut Vec<u8>) -> Result<(), BuildError> {
    let mut hs = Vec::with_capacity(512.max(pad_to));
    client_hello_handshake(
        &HelloSpec {
            sni,
            alpn: &["h2", "http/1.1"],
            quic_params: None,
            pad_to,
        },
        &mut hs,
    )?;
    let len = u16::try_from(hs.len())
        .ok()
        .filter(|&l| usize::from(l) <= MAX_RECORD)
        .ok_or(BuildError::TooLong)?;
    // Record version 3.1, as clients send in a first ClientHello (RFC 8446
    // section 5.1).
    out.extend_from_slice(&[CONTENT_HANDSHAKE, 3, 1]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&hs);
    Ok(())
}

/// Writes a bare ClientHello handshake message (type, 24-bit length, body),
/// as QUIC's CRYPTO frames carry it. [`handshake_sni`] gives `spec.sni`
/// back. See [`client_hello`] for what is in it.
pub fn client_hello_handshake(spec: &HelloSpec<'_>, out: &mut Vec<u8>) -> Result<(), BuildError> {
    if !is_hostname(spec.sni.as_bytes()) {
        return Err(BuildError::Hostname);
    }
    let sni = spec.sni.as_bytes();
    // Filler bytes from the name (FNV-1a, then xorshift): deterministic,
    // different per name, and not all zero as no real client's are.
    let mut state = sni.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let mut filler = |n: usize, out: &mut Vec<u8>| {
        for _ in 0..n {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            out.push(state.to_be_bytes()[0]);
        }
    };

    let mut body = Vec::with_capacity(512);
    body.extend_from_slice(&[3, 3]); // legacy_version TLS 1.2
    filler(32, &mut body); // random
    body.push(32); // legacy_session_id (middlebox compatibility mode)
    filler(32, &mut body);
    // TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384,
    // TLS_CHACHA20_POLY1305_SHA256.
    body.extend_from_slice(&[0, 6, 0x13, 0x01, 0x13, 0x02, 0x13, 0x03]);
    body.extend_from_slice(&[1, 0]); // compression: null only

    let mut exts = Vec::with_capacity(256);
    let name_len = u16::try_from(sni.len()).map_err(|_| BuildError::Hostname)?;
    let mut server_name = Vec::with_capacity(sni.len().saturating_add(5));
    server_name.extend_from_slice(&name_len.saturating_add(3).to_be_bytes());
    server_name.push(NAME_HOST);
    server_name.extend_from_slice(&name_len.to_be_bytes());
    server_name.extend_from_slice(sni);
    extension(&mut exts, EXT_SERVER_NAME, &server_name)?;
    // supported_groups: x25519, secp256r1, secp384r1.
    extension(&mut exts, 10, &[0, 6, 0, 0x1d, 0, 0x17, 0, 0x18])?;
    // signature_algorithms: ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256,
    // rsa_pkcs1_sha256, ed25519, ecdsa_secp384r1_sha384, rsa_pss_rsae_sha384.
    extension(&mut exts, 13, &[0, 12, 4, 3, 8, 4, 4, 1, 8, 7, 5, 3, 8, 5])?;
    if !spec.alpn.is_empty() {
        let mut list = Vec::with_capacity(32);
        for p in spec.alpn {
            let len = u8::try_from(p.len())
                .ok()
                .filter(|&l| l > 0)
                .ok_or(BuildError::TooLong)?;
            list.push(len);
            list.extend_from_slice(p.as_bytes());
        }
        let list_len = u16::try_from(list.len()).map_err(|_| BuildError::TooLong)?;
        let mut alpn = list_len.to_be_bytes().to_vec();
        alpn.extend_from_slice(&list);
        extension(&mut exts, 16, &alpn)?;
    }
    // supported_versions: TLS 1.3 only.
    extension(&mut exts, 43, &[2, 3, 4])?;
    // psk_key_exchange_modes: psk_dhe_ke.
    extension(&mut exts, 45, &[1, 1])?;
    // key_share: one X25519 share of 32 bytes.
    let mut share = vec![0, 36, 0, 0x1d, 0, 32];
    filler(32, &mut share);
    extension(&mut exts, 51, &share)?;
    if let Some(params) = spec.quic_params {
        extension(&mut exts, 0x39, params)?;
    }
    // The message so far: header, body, extensions' length, extensions.
    let unpadded = HANDSHAKE_HEADER
        .saturating_add(body.len())
        .saturating_add(2)
        .saturating_add(exts.len());
    if spec.pad_to > unpadded {
        let pad = spec
            .pad_to
            .saturating_sub(unpadded)
            .saturating_sub(PAD_EXT_HEADER);
        extension(&mut exts, 21, &vec![0; pad])?;
    }
    let exts_len = u16::try_from(exts.len()).map_err(|_| BuildError::TooLong)?;
    body.extend_from_slice(&exts_len.to_be_bytes());
    body.extend_from_slice(&exts);
    let body_len = u32::try_from(body.len())
        .ok()
        .filter(|&l| l < 1 << 24)
        .ok_or(BuildError::TooLong)?;
    out.push(HANDSHAKE_CLIENT_HELLO);
    out.extend_from_slice(body_len.to_be_bytes().get(1..).unwrap_or(&[]));
    out.extend_from_slice(&body);
    Ok(())
}

/// Appends one extension: type, 16-bit length, data.
fn extension(exts: &mut Vec<u8>, ty: u16, data: &[u8]) -> Result<(), BuildError> {
    let len = u16::try_from(data.len()).map_err(|_| BuildError::TooLong)?;
    exts.extend_from_slice(&ty.to_be_bytes());
    exts.extend_from_slice(&len.to_be_bytes());
    exts.extend_from_slice(data);
    Ok(())
}

#[cfg(test)]
mod build_tests {
    use super::*;

    #[test]
    fn client_hello_gives_its_name_back() {
        for name in ["video.test", "a", "www.example.com.", "x-1.y_2.test"] {
            let mut out = Vec::new();
            client_hello(name, 0, &mut out).unwrap();
            assert_eq!(client_hello_sni(&out), Hello::Sni(name));
            // One record holding exactly the handshake message.
            assert_eq!(&out[..3], &[22, 3, 1]);
            let len = usize::from(u16::from_be_bytes([out[3], out[4]]));
            assert_eq!(len + 5, out.len());
            assert_eq!(handshake_sni(&out[5..]), Hello::Sni(name));
        }
    }

    #[test]
    fn padded_client_hello_spans_segments_and_joins() {
        let mut out = Vec::new();
        client_hello("video.test", 1800, &mut out).unwrap();
        assert_eq!(out.len(), 5 + 1800);
        // Cut as a 1460-byte MSS would: the first segment is not enough,
        // the buffer joins both.
        assert_eq!(
            client_hello_sni(&out[..1460]),
            Hello::NeedMore {
                total: Some(out.len())
            }
        );
        let mut buf = ClientHelloBuf::<2048>::new();
        assert_eq!(
            buf.push(&out[..1460]),
            Hello::NeedMore { total: Some(1800) }
        );
        assert_eq!(buf.push(&out[1460..]), Hello::Sni("video.test"));
        // A pad below the natural size changes nothing.
        let (mut small, mut plain) = (Vec::new(), Vec::new());
        client_hello("video.test", 10, &mut small).unwrap();
        client_hello("video.test", 0, &mut plain).unwrap();
        assert_eq!(small, plain);
    }

    #[test]
    fn same_name_same_bytes_other_name_other_bytes() {
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        client_hello("a.test", 0, &mut a).unwrap();
        client_hello("a.test", 0, &mut b).unwrap();
        client_hello("b.test", 0, &mut c).unwrap();
        assert_eq!(a, b);
        // Same length, different random.
        assert_eq!(a.len(), c.len());
        assert_ne!(a[11..43], c[11..43]);
    }

    #[test]
    fn bad_names_and_sizes_are_errors() {
        let mut out = Vec::new();
        for bad in ["", "a b", "ex..ample", "é.test", &"a".repeat(64)] {
            assert_eq!(
                client_hello(bad, 0, &mut out),
                Err(BuildError::Hostname),
                "{bad:?}"
            );
        }
        assert_eq!(
            client_hello("big.test", 20_000, &mut out),
            Err(BuildError::TooLong)
        );
        assert!(out.is_empty(), "nothing written on error");
        let spec = HelloSpec {
            sni: "a.test",
            alpn: &[""],
            quic_params: None,
            pad_to: 0,
        };
        assert_eq!(
            client_hello_handshake(&spec, &mut out),
            Err(BuildError::TooLong)
        );
    }
}
