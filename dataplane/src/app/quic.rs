//! The SNI of a QUIC v1 (RFC 9000/9001) or v2 (RFC 9369) client Initial.
//!
//! A client's Initial packets are encrypted, but with keys anyone can
//! derive from the packet's Destination Connection ID (RFC 9001 section
//! 5.2): HKDF-SHA256 with the version's salt, then "client in" and the
//! version's key, iv and hp labels. So a middlebox can read the ClientHello:
//! remove header protection (AES-128 of a 16-byte sample of the ciphertext
//! masks the first byte and the packet number), decrypt the payload with
//! AES-128-GCM (nonce = iv XOR packet number, the header as associated data,
//! so a forged or cut packet fails the tag and is never parsed), and join
//! the CRYPTO frames. Chrome scatters the ClientHello over several CRYPTO
//! frames out of order, and a post-quantum key share makes it longer than
//! one packet: [`CryptoBuf`] joins them by offset, across packets.
//!
//! Nothing allocates: the payload is decrypted in a scratch buffer the
//! caller lends (the frame bytes are only read), the ClientHello is joined
//! in a [`CryptoBuf`] the caller owns per flow. Cost: one key derivation
//! (five HMAC-SHA256), one AES block and one AES-GCM pass over ~1200 bytes
//! per Initial packet, and only until the flow is decided.

use aes::cipher::{BlockCipherEncrypt, KeyInit};
use aes_gcm::{AeadInOut, Aes128Gcm};
use hkdf::Hkdf;
use sha2::Sha256;

use super::tls::{client_hello_handshake, handshake_sni, BuildError, Hello, HelloSpec};
use super::Reader;

/// QUIC version 1 (RFC 9000).
pub const VERSION_1: u32 = 0x0000_0001;
/// QUIC version 2 (RFC 9369).
pub const VERSION_2: u32 = 0x6b33_43cf;

/// RFC 9001 section 5.2.
const SALT_V1: [u8; 20] = [
    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad,
    0xcc, 0xbb, 0x7f, 0x0a,
];
/// RFC 9369 section 3.3.1.
const SALT_V2: [u8; 20] = [
    0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb,
    0xf9, 0xbd, 0x2e, 0xd9,
];
/// The longest connection ID a v1/v2 packet may carry (RFC 9000 section 17.2).
const MAX_CID: usize = 20;
const TAG: usize = 16;
const SAMPLE: usize = 16;
/// Header protection samples 4 bytes past the packet number's start,
/// whatever its real length (RFC 9001 section 5.4.2).
const SAMPLE_OFFSET: usize = 4;
/// Out-of-order CRYPTO ranges a [`CryptoBuf`] keeps apart before giving up.
/// Chrome's chaos protection cuts a ClientHello into a handful of frames.
pub const MAX_CRYPTO_GAPS: usize = 32;

/// Why an Initial gave no ClientHello bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuicError {
    /// A short header packet, or too short for a long header.
    NotLongHeader,
    /// A long header of a version with no known Initial salt (a version
    /// negotiation packet is version 0).
    Version(u32),
    /// A long header packet of another type (0-RTT, Handshake, Retry).
    NotInitial,
    /// A connection ID over 20 bytes, or lengths that run past the datagram.
    Header,
    /// Too short to take the header protection sample, or to hold the
    /// AEAD tag.
    Short,
    /// The scratch buffer is smaller than the packet.
    Scratch,
    /// The AEAD tag does not verify: not the client's Initial for this
    /// DCID (a server Initial, a forged or damaged packet).
    Decrypt,
    /// A frame that cannot be in an Initial, or cut short.
    Frame,
    /// CRYPTO data past the [`CryptoBuf`]'s capacity.
    CryptoTooLong,
    /// More out-of-order CRYPTO ranges than [`MAX_CRYPTO_GAPS`].
    CryptoGaps,
}

/// A client's Initial packet keys (RFC 9001 section 5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InitialKeys {
    pub key: [u8; 16],
    pub iv: [u8; 12],
    pub hp: [u8; 16],
}

/// The client Initial keys for `version` and the client's first
/// Destination Connection ID; `None` for a version without a known salt.
pub fn client_initial_keys(version: u32, dcid: &[u8]) -> Option<InitialKeys> {
    let (salt, labels): (&[u8], [&[u8]; 3]) = match version {
        VERSION_1 => (&SALT_V1, [b"quic key", b"quic iv", b"quic hp"]),
        VERSION_2 => (&SALT_V2, [b"quicv2 key", b"quicv2 iv", b"quicv2 hp"]),
        _ => return None,
    };
    let initial = Hkdf::<Sha256>::new(Some(salt), dcid);
    let mut client = [0u8; 32];
    expand_label(&initial, b"client in", &mut client)?;
    let client = Hkdf::<Sha256>::from_prk(&client).ok()?;
    let [key_label, iv_label, hp_label] = labels;
    let mut keys = InitialKeys {
        key: [0; 16],
        iv: [0; 12],
        hp: [0; 16],
    };
    expand_label(&client, key_label, &mut keys.key)?;
    expand_label(&client, iv_label, &mut keys.iv)?;
    expand_label(&client, hp_label, &mut keys.hp)?;
    Some(keys)
}

/// TLS 1.3's HKDF-Expand-Label with an empty context (RFC 8446 section
/// 7.1), the info built on the stack.
fn expand_label(hkdf: &Hkdf<Sha256>, label: &[u8], out: &mut [u8]) -> Option<()> {
    const PREFIX: &[u8] = b"tls13 ";
    let mut info = [0u8; 2 + 1 + 32 + 1];
    let len = u16::try_from(out.len()).ok()?;
    let label_len = PREFIX.len().checked_add(label.len())?;
    let end = 3usize.checked_add(label_len)?;
    info.get_mut(..2)?.copy_from_slice(&len.to_be_bytes());
    *info.get_mut(2)? = u8::try_from(label_len).ok()?;
    info.get_mut(3..3 + PREFIX.len())?.copy_from_slice(PREFIX);
    info.get_mut(3 + PREFIX.len()..end)?.copy_from_slice(label);
    // The context's length byte, zero, is already there.
    hkdf.expand(info.get(..end.checked_add(1)?)?, out).ok()
}

/// The long header of an Initial, read without decrypting anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InitialHeader<'a> {
    pub version: u32,
    pub dcid: &'a [u8],
    pub scid: &'a [u8],
    pub token: &'a [u8],
    /// Where the (protected) packet number starts.
    pub pn_offset: usize,
    /// The packet's whole length: the header plus its Length field.
    /// Coalesced packets after it start here.
    pub packet_len: usize,
}

/// Reads an Initial's long header (RFC 9000 section 17.2.2).
pub fn initial_header(datagram: &[u8]) -> Result<InitialHeader<'_>, QuicError> {
    let mut r = Reader::new(datagram);
    let first = r.u8().ok_or(QuicError::NotLongHeader)?;
    if first & 0x80 == 0 {
        return Err(QuicError::NotLongHeader);
    }
    let version = r.u32().ok_or(QuicError::NotLongHeader)?;
    // Initial is type 0 in v1 and 1 in v2 (RFC 9369 section 3.2).
    let initial_type = match version {
        VERSION_1 => 0,
        VERSION_2 => 1,
        other => return Err(QuicError::Version(other)),
    };
    if (first >> 4) & 0x03 != initial_type {
        return Err(QuicError::NotInitial);
    }
    let dcid_len = usize::from(r.u8().ok_or(QuicError::Header)?);
    if dcid_len > MAX_CID {
        return Err(QuicError::Header);
    }
    let dcid = r.bytes(dcid_len).ok_or(QuicError::Header)?;
    let scid_len = usize::from(r.u8().ok_or(QuicError::Header)?);
    if scid_len > MAX_CID {
        return Err(QuicError::Header);
    }
    let scid = r.bytes(scid_len).ok_or(QuicError::Header)?;
    let token_len =
        usize::try_from(r.varint().ok_or(QuicError::Header)?).map_err(|_| QuicError::Header)?;
    let token = r.bytes(token_len).ok_or(QuicError::Header)?;
    let length =
        usize::try_from(r.varint().ok_or(QuicError::Header)?).map_err(|_| QuicError::Header)?;
    let pn_offset = datagram.len().saturating_sub(r.rest().len());
    let packet_len = pn_offset.checked_add(length).ok_or(QuicError::Header)?;
    if packet_len > datagram.len() {
        return Err(QuicError::Header);
    }
    Ok(InitialHeader {
        version,
        dcid,
        scid,
        token,
        pn_offset,
        packet_len,
    })
}

/// A decrypted Initial: its header and its plaintext frames (in the
/// caller's scratch).
#[derive(Debug, PartialEq, Eq)]
pub struct Opened<'a, 's> {
    pub header: InitialHeader<'a>,
    pub packet_number: u64,
    pub payload: &'s [u8],
}

/// Removes header protection from the first Initial in `datagram` and
/// decrypts it into `scratch`, which must hold the whole packet (1200 to
/// 1500 bytes; the packet's bytes are copied there and never written in
/// place).
pub fn open_initial<'a, 's>(
    datagram: &'a [u8],
    scratch: &'s mut [u8],
) -> Result<Opened<'a, 's>, QuicError> {
    let header = initial_header(datagram)?;
    let keys = client_initial_keys(header.version, header.dcid)
        .ok_or(QuicError::Version(header.version))?;
    let packet = datagram.get(..header.packet_len).ok_or(QuicError::Header)?;
    let sample_at = header
        .pn_offset
        .checked_add(SAMPLE_OFFSET)
        .ok_or(QuicError::Short)?;
    let sample: [u8; SAMPLE] = packet
        .get(sample_at..sample_at.saturating_add(SAMPLE))
        .and_then(|s| s.try_into().ok())
        .ok_or(QuicError::Short)?;
    let mut mask = aes::Block::from(sample);
    aes::Aes128::new(&keys.hp.into()).encrypt_block(&mut mask);

    let buf = scratch
        .get_mut(..header.packet_len)
        .ok_or(QuicError::Scratch)?;
    buf.copy_from_slice(packet);
    let first = buf.first_mut().ok_or(QuicError::Short)?;
    // Long headers protect the low four bits of the first byte.
    *first ^= mask.first().copied().unwrap_or(0) & 0x0f;
    let pn_len = usize::from(*first & 0x03) + 1;
    let pn_end = header
        .pn_offset
        .checked_add(pn_len)
        .ok_or(QuicError::Short)?;
    let mut truncated_pn = 0u64;
    let pn_bytes = buf
        .get_mut(header.pn_offset..pn_end)
        .ok_or(QuicError::Short)?;
    for (b, m) in pn_bytes.iter_mut().zip(mask.iter().skip(1)) {
        *b ^= m;
        truncated_pn = (truncated_pn << 8) | u64::from(*b);
    }
    // A client's first Initials are its first packets: with nothing
    // received yet, the expected number is 0 and the truncated number is
    // the full one (RFC 9000 appendix A.3).
    let packet_number = truncated_pn;

    let mut nonce = keys.iv;
    for (n, p) in nonce
        .iter_mut()
        .rev()
        .zip(packet_number.to_be_bytes().iter().rev())
    {
        *n ^= p;
    }
    let tag_at = header
        .packet_len
        .checked_sub(TAG)
        .filter(|&t| t >= pn_end)
        .ok_or(QuicError::Short)?;
    let (aad, rest) = buf.split_at_mut_checked(pn_end).ok_or(QuicError::Short)?;
    let (ciphertext, tag) = rest
        .split_at_mut_checked(tag_at.saturating_sub(pn_end))
        .ok_or(QuicError::Short)?;
    let tag: [u8; TAG] = (&*tag).try_into().map_err(|_| QuicError::Short)?;
    Aes128Gcm::new(&keys.key.into())
        .decrypt_inout_detached(&nonce.into(), aad, ciphertext.into(), &tag.into())
        .map_err(|_| QuicError::Decrypt)?;
    Ok(Opened {
        header,
        packet_number,
        payload: ciphertext,
    })
}

/// A ClientHello joined from CRYPTO frames by their offsets, in `N` bytes
/// the caller owns per flow. 4096 holds today's post-quantum ClientHellos
/// (~1.8 kB) with room to spare.
#[derive(Clone, Debug)]
pub struct CryptoBuf<const N: usize> {
    data: [u8; N],
    /// Bytes 0..prefix have arrived.
    prefix: usize,
    /// Ranges [start, end) that arrived past a gap, not yet joined.
    gaps: [(usize, usize); MAX_CRYPTO_GAPS],
    ngaps: usize,
}

impl<const N: usize> Default for CryptoBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> CryptoBuf<N> {
    pub const fn new() -> Self {
        CryptoBuf {
            data: [0; N],
            prefix: 0,
            gaps: [(0, 0); MAX_CRYPTO_GAPS],
            ngaps: 0,
        }
    }

    /// Empty again, for the next flow.
    pub fn clear(&mut self) {
        self.prefix = 0;
        self.ngaps = 0;
    }

    /// The contiguous handshake bytes from offset 0.
    pub fn contiguous(&self) -> &[u8] {
        self.data.get(..self.prefix).unwrap_or(&[])
    }

    /// Puts a CRYPTO frame's `data` at `offset`. Retransmitted bytes are
    /// written again (same bytes); a range past a gap waits in the gap list.
    pub fn insert(&mut self, offset: u64, data: &[u8]) -> Result<(), QuicError> {
        let start = usize::try_from(offset).map_err(|_| QuicError::CryptoTooLong)?;
        let end = start
            .checked_add(data.len())
            .filter(|&e| e <= N)
            .ok_or(QuicError::CryptoTooLong)?;
        if data.is_empty() || end <= self.prefix {
            return Ok(());
        }
        self.data
            .get_mut(start..end)
            .ok_or(QuicError::CryptoTooLong)?
            .copy_from_slice(data);
        if start <= self.prefix {
            self.prefix = end;
        } else if let Some(g) = self
            .gaps
            .get_mut(..self.ngaps)
            .and_then(|gaps| gaps.iter_mut().find(|g| start <= g.1 && g.0 <= end))
        {
            // Touches a waiting range: widen it rather than take a slot, so
            // a ClientHello cut in many pieces in reverse order fits.
            *g = (g.0.min(start), g.1.max(end));
        } else {
            let slot = self.gaps.get_mut(self.ngaps).ok_or(QuicError::CryptoGaps)?;
            *slot = (start, end);
            self.ngaps = self.ngaps.saturating_add(1);
        }
        self.join();
        Ok(())
    }

    /// Moves every waiting range that now touches the prefix into it.
    fn join(&mut self) {
        let mut changed = true;
        while changed {
            changed = false;
            let mut i = 0;
            while i < self.ngaps {
                let Some(&(start, end)) = self.gaps.get(i) else {
                    break;
                };
                if start <= self.prefix {
                    self.prefix = self.prefix.max(end);
                    self.ngaps = self.ngaps.saturating_sub(1);
                    // Swap-remove: order does not matter.
                    self.gaps.swap(i, self.ngaps);
                    changed = true;
                } else {
                    i = i.saturating_add(1);
                }
            }
        }
    }
}

/// Walks an Initial's plaintext frames (RFC 9000 section 12.4: PADDING,
/// PING, ACK, CRYPTO and CONNECTION_CLOSE may be in an Initial) and puts
/// the CRYPTO data in `crypto`.
pub fn collect_crypto<const N: usize>(
    payload: &[u8],
    crypto: &mut CryptoBuf<N>,
) -> Result<(), QuicError> {
    let mut r = Reader::new(payload);
    while !r.is_empty() {
        let ty = r.varint().ok_or(QuicError::Frame)?;
        match ty {
            // PADDING, PING
            0x00 | 0x01 => {}
            // ACK, ACK with ECN counts
            0x02 | 0x03 => {
                r.varint().ok_or(QuicError::Frame)?; // largest acknowledged
                r.varint().ok_or(QuicError::Frame)?; // delay
                let ranges = r.varint().ok_or(QuicError::Frame)?;
                r.varint().ok_or(QuicError::Frame)?; // first range
                                                     // Each range is at least two bytes, so a huge count ends
                                                     // at the payload's end.
                let mut left = ranges;
                while left > 0 {
                    r.varint().ok_or(QuicError::Frame)?; // gap
                    r.varint().ok_or(QuicError::Frame)?; // range length
                    left -= 1;
                }
                if ty == 0x03 {
                    for _ in 0..3 {
                        r.varint().ok_or(QuicError::Frame)?;
                    }
                }
            }
            // CRYPTO
            0x06 => {
                let offset = r.varint().ok_or(QuicError::Frame)?;
                let len = usize::try_from(r.varint().ok_or(QuicError::Frame)?)
                    .map_err(|_| QuicError::Frame)?;
                let data = r.bytes(len).ok_or(QuicError::Frame)?;
                crypto.insert(offset, data)?;
            }
            // CONNECTION_CLOSE: the client gives up; nothing more to read.
            0x1c => return Ok(()),
            _ => return Err(QuicError::Frame),
        }
    }
    Ok(())
}

/// The SNI from a client's Initial datagram: every Initial in it
/// (coalesced packets are walked; others after them are skipped) is
/// decrypted in `scratch` and its CRYPTO frames joined in `crypto`, then
/// the ClientHello so far is parsed. [`Hello::NeedMore`] means the
/// ClientHello goes on in the next Initial datagram: call again with it and
/// the same `crypto`.
pub fn initial_sni<'c, const N: usize>(
    datagram: &[u8],
    scratch: &mut [u8],
    crypto: &'c mut CryptoBuf<N>,
) -> Result<Hello<'c>, QuicError> {
    let first = open_initial(datagram, scratch)?;
    let mut rest = datagram.get(first.header.packet_len..).unwrap_or(&[]);
    collect_crypto(first.payload, crypto)?;
    // Coalesced packets: more Initials are read; a 0-RTT or Handshake
    // packet, or the zeros that pad a datagram to 1200 bytes, end the walk.
    while let Ok(opened) = open_initial(rest, scratch) {
        rest = rest.get(opened.header.packet_len..).unwrap_or(&[]);
        collect_crypto(opened.payload, crypto)?;
    }
    Ok(handshake_sni(crypto.contiguous()))
}

/// The smallest UDP payload of a datagram carrying a client Initial
/// (RFC 9000 section 14.1).
pub const MIN_INITIAL_DATAGRAM: usize = 1200;

/// Protects a client Initial (RFC 9001 section 5): a long header with the
/// given connection IDs, no token, a 2-byte Length and a 4-byte packet
/// number, the payload sealed with AES-128-GCM under the keys from `dcid`,
/// then header protection. The reverse of [`open_initial`], written apart
/// from it; it reproduces RFC 9001's and RFC 9369's appendix A.2 packets
/// byte for byte. The payload is the caller's frames, padding included.
///
/// Errors: a version without a known salt ([`QuicError::Version`]), a
/// connection ID over 20 bytes or a payload over what a 2-byte Length
/// holds ([`QuicError::Header`]).
pub fn seal_initial(
    version: u32,
    dcid: &[u8],
    scid: &[u8],
    pn: u32,
    payload: &[u8],
) -> Result<Vec<u8>, QuicError> {
    let keys = client_initial_keys(version, dcid).ok_or(QuicError::Version(version))?;
    let initial_type: u8 = if version == VERSION_2 { 1 } else { 0 };
    let dcid_len = u8::try_from(dcid.len())
        .ok()
        .filter(|&l| usize::from(l) <= MAX_CID)
        .ok_or(QuicError::Header)?;
    let scid_len = u8::try_from(scid.len())
        .ok()
        .filter(|&l| usize::from(l) <= MAX_CID)
        .ok_or(QuicError::Header)?;
    // Length: packet number, payload and tag, as a 2-byte varint (< 2^14).
    let length = payload
        .len()
        .checked_add(4 + TAG)
        .and_then(|l| u16::try_from(l).ok())
        .filter(|&l| l < 0x4000)
        .ok_or(QuicError::Header)?;
    let mut p = Vec::with_capacity(usize::from(length).saturating_add(64));
    // Long header, fixed bit, the Initial type, a 4-byte packet number.
    p.push(0xc0 | (initial_type << 4) | 0x03);
    p.extend_from_slice(&version.to_be_bytes());
    p.push(dcid_len);
    p.extend_from_slice(dcid);
    p.push(scid_len);
    p.extend_from_slice(scid);
    p.push(0); // token length
    p.extend_from_slice(&(0x4000 | length).to_be_bytes());
    let pn_offset = p.len();
    p.extend_from_slice(&pn.to_be_bytes());
    let mut nonce = keys.iv;
    for (n, b) in nonce.iter_mut().rev().zip(pn.to_be_bytes().iter().rev()) {
        *n ^= b;
    }
    let mut body = payload.to_vec();
    let tag = Aes128Gcm::new(&keys.key.into())
        .encrypt_inout_detached(&nonce.into(), &p, body.as_mut_slice().into())
        .map_err(|_| QuicError::Header)?;
    p.extend_from_slice(&body);
    p.extend_from_slice(&tag);
    let sample_at = pn_offset.saturating_add(SAMPLE_OFFSET);
    let sample: [u8; SAMPLE] = p
        .get(sample_at..sample_at.saturating_add(SAMPLE))
        .and_then(|s| s.try_into().ok())
        .ok_or(QuicError::Short)?;
    let mut mask = aes::Block::from(sample);
    aes::Aes128::new(&keys.hp.into()).encrypt_block(&mut mask);
    if let Some(first) = p.first_mut() {
        *first ^= mask.first().copied().unwrap_or(0) & 0x0f;
    }
    let pn_bytes = p
        .get_mut(pn_offset..pn_offset.saturating_add(4))
        .ok_or(QuicError::Short)?;
    for (b, m) in pn_bytes.iter_mut().zip(mask.iter().skip(1)) {
        *b ^= m;
    }
    Ok(p)
}

/// Why [`client_initial`] made nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitialBuildError {
    /// The ClientHello could not be built.
    Hello(BuildError),
    /// The packet could not be sealed.
    Seal(QuicError),
}

/// A client's first Initial datagram asking for `sni`, as a QUIC client
/// sends it: packet number 0, an 8-byte SCID, one CRYPTO frame at offset 0
/// holding a TLS 1.3 ClientHello (ALPN `h3`, QUIC transport parameters;
/// padded to `pad_to` handshake bytes when that is more, see
/// [`HelloSpec::pad_to`]), then PADDING frames so the datagram is at least
/// [`MIN_INITIAL_DATAGRAM`] bytes (RFC 9000 section 14.1). A ClientHello
/// too long for that stays in the one packet, which grows past 1200.
/// [`initial_sni`] gives `sni` back.
///
/// The SCID and the ClientHello's filler bytes are derived from `dcid` and
/// `sni`, so the same arguments give the same datagram. For the simulator
/// and tests.
pub fn client_initial(
    version: u32,
    dcid: &[u8],
    sni: &str,
    pad_to: usize,
) -> Result<Vec<u8>, InitialBuildError> {
    // initial_max_data 1 MiB, initial_max_streams_bidi 100,
    // initial_source_connection_id (the SCID).
    let scid: [u8; 8] = {
        let mut s = [0u8; 8];
        for (i, b) in dcid.iter().enumerate() {
            if let Some(x) = s.get_mut(i % 8) {
                *x = x.rotate_left(3) ^ b ^ 0x5a;
            }
        }
        s
    };
    let mut params = vec![0x04, 0x04, 0x80, 0x10, 0x00, 0x00, 0x08, 0x02, 0x40, 0x64];
    params.extend_from_slice(&[0x0f, 8]);
    params.extend_from_slice(&scid);
    let mut hello = Vec::with_capacity(512);
    client_hello_handshake(
        &HelloSpec {
            sni,
            alpn: &["h3"],
            quic_params: Some(&params),
            pad_to,
        },
        &mut hello,
    )
    .map_err(InitialBuildError::Hello)?;
    // CRYPTO, offset 0, a 2-byte length (the hello is under 2^14 bytes).
    let len = u16::try_from(hello.len())
        .ok()
        .filter(|&l| l < 0x4000)
        .ok_or(InitialBuildError::Seal(QuicError::CryptoTooLong))?;
    let mut frames = Vec::with_capacity(MIN_INITIAL_DATAGRAM);
    frames.extend_from_slice(&[0x06, 0x00]);
    frames.extend_from_slice(&(0x4000 | len).to_be_bytes());
    frames.extend_from_slice(&hello);
    // Header: first byte, version, two CID lengths and the CIDs, token
    // length, 2-byte Length, 4-byte packet number; then the tag.
    let overhead = 1 + 4 + 1 + dcid.len() + 1 + scid.len() + 1 + 2 + 4 + TAG;
    let want = MIN_INITIAL_DATAGRAM.saturating_sub(overhead);
    if frames.len() < want {
        frames.resize(want, 0); // PADDING frames are zero bytes
    }
    seal_initial(version, dcid, &scid, 0, &frames).map_err(InitialBuildError::Seal)
}

#[cfg(test)]
mod build_tests {
    use super::*;

    #[test]
    fn client_initial_gives_its_name_back() {
        for version in [VERSION_1, VERSION_2] {
            for (dcid, pad) in [
                (&[1u8, 2, 3, 4, 5, 6, 7, 8][..], 0),
                (&[9u8; 20][..], 0),
                (&[][..], 0),
                (&[7u8; 8][..], 1500),
            ] {
                let d = client_initial(version, dcid, "video.test", pad).unwrap();
                if pad == 0 {
                    assert_eq!(d.len(), MIN_INITIAL_DATAGRAM, "padded to exactly 1200");
                } else {
                    assert!(d.len() > 1500, "a hello of 1500 bytes grows the packet");
                }
                let h = initial_header(&d).unwrap();
                assert_eq!((h.version, h.dcid, h.packet_len), (version, dcid, d.len()));
                assert_eq!(h.scid.len(), 8);
                let mut scratch = [0u8; 4096];
                let mut crypto = CryptoBuf::<4096>::new();
                assert_eq!(
                    initial_sni(&d, &mut scratch, &mut crypto),
                    Ok(Hello::Sni("video.test"))
                );
            }
        }
    }

    #[test]
    fn client_initial_errors() {
        assert_eq!(
            client_initial(VERSION_1, &[1; 8], "no such name", 0),
            Err(InitialBuildError::Hello(BuildError::Hostname))
        );
        assert_eq!(
            client_initial(VERSION_1, &[1; 21], "a.test", 0),
            Err(InitialBuildError::Seal(QuicError::Header))
        );
        assert_eq!(
            client_initial(0xff00_001d, &[1; 8], "a.test", 0),
            Err(InitialBuildError::Seal(QuicError::Version(0xff00_001d)))
        );
        assert_eq!(
            client_initial(VERSION_1, &[1; 8], "a.test", 17_000),
            Err(InitialBuildError::Seal(QuicError::CryptoTooLong))
        );
        assert_eq!(
            seal_initial(VERSION_1, &[1; 8], &[], 0, &[0; 16_400]).err(),
            Some(QuicError::Header)
        );
    }
}
