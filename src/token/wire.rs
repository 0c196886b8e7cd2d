//! The libmacaroons wire formats: v2 binary (what macvault speaks) and v1 (read and
//! written for interoperability). Decoding is strict and bounded.

use std::borrow::Cow;

use super::Macaroon;
use super::crypto::KEY_LEN;
use super::{CaveatPacket, Limits};

/// Why bytes are not a macaroon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended in the middle of a macaroon.
    #[error("token is truncated")]
    Truncated,
    /// The version byte is not one this decoder reads.
    #[error("unsupported token format version {0}")]
    Version(u8),
    /// A field type that the format does not define, or a field out of order.
    #[error("unexpected field type {0}")]
    FieldType(u64),
    /// A varint is not in its shortest form, or is too large.
    #[error("malformed length or field type")]
    Varint,
    /// A field is larger than allowed.
    #[error("a field is larger than {0} bytes")]
    FieldTooLarge(usize),
    /// A required field is empty or missing.
    #[error("missing or empty {0}")]
    Missing(&'static str),
    /// The signature is not 32 bytes.
    #[error("signature must be 32 bytes")]
    SignatureLength,
    /// More caveats than allowed.
    #[error("more than {0} caveats")]
    TooManyCaveats(usize),
    /// More macaroons in a bundle than allowed.
    #[error("more than {0} discharges")]
    TooManyDischarges(usize),
    /// Bytes follow the end of the token.
    #[error("unexpected bytes after the token")]
    TrailingBytes,
    /// The token text is larger than allowed.
    #[error("token is larger than {0} bytes")]
    TooLarge(usize),
    /// The token text lacks the `mvt_` prefix or is not URL-safe base64 without padding.
    #[error("token text is not of the form mvt_<base64url>")]
    Text,
    /// A v1 packet header is malformed.
    #[error("malformed v1 packet")]
    Packet,
}

const EOS: u64 = 0;
const LOCATION: u64 = 1;
const IDENTIFIER: u64 = 2;
const VID: u64 = 4;
const SIGNATURE: u64 = 6;

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, DecodeError> {
        let b = *self.buf.get(self.pos).ok_or(DecodeError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    fn peek(&self) -> Result<u8, DecodeError> {
        self.buf
            .get(self.pos)
            .copied()
            .ok_or(DecodeError::Truncated)
    }

    /// An unsigned LEB128 varint of at most 4 bytes, in its shortest form.
    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for i in 0..4 {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                if i > 0 && b == 0 {
                    return Err(DecodeError::Varint);
                }
                return Ok(value);
            }
        }
        Err(DecodeError::Varint)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Truncated)?;
        let out = self.buf.get(self.pos..end).ok_or(DecodeError::Truncated)?;
        self.pos = end;
        Ok(out)
    }

    /// A field of the expected type, or `None` (consuming nothing) if the next field
    /// has a larger type number. A smaller one is out of order.
    fn field(&mut self, ty: u64, max: usize) -> Result<Option<&'a [u8]>, DecodeError> {
        let start = self.pos;
        let found = self.varint()?;
        if found != ty {
            check_known(found)?;
            self.pos = start;
            // A later field (or the end of the section) means this optional one is absent.
            return if found == EOS || found > ty {
                Ok(None)
            } else {
                Err(DecodeError::FieldType(found))
            };
        }
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| DecodeError::Varint)?;
        if len > max {
            return Err(DecodeError::FieldTooLarge(max));
        }
        self.take(len).map(Some)
    }

    fn eos(&mut self) -> Result<(), DecodeError> {
        match self.varint()? {
            EOS => Ok(()),
            other => Err(DecodeError::FieldType(other)),
        }
    }
}

fn check_known(ty: u64) -> Result<(), DecodeError> {
    match ty {
        EOS | LOCATION | IDENTIFIER | VID | SIGNATURE => Ok(()),
        other => Err(DecodeError::FieldType(other)),
    }
}

fn non_empty_location(loc: Option<&[u8]>) -> Option<Cow<'_, [u8]>> {
    // pymacaroons writes an empty location field; it means the same as none.
    loc.filter(|l| !l.is_empty()).map(Cow::Borrowed)
}

/// Decodes one v2 macaroon from the front of `buf`; returns it and the bytes used.
pub fn decode_v2<'a>(buf: &'a [u8], limits: &Limits) -> Result<(Macaroon<'a>, usize), DecodeError> {
    let mut r = Reader { buf, pos: 0 };
    let version = r.byte()?;
    if version != 2 {
        return Err(DecodeError::Version(version));
    }
    let max = limits.max_field;
    let location = r.field(LOCATION, max)?;
    let identifier = r
        .field(IDENTIFIER, max)?
        .ok_or(DecodeError::Missing("identifier"))?;
    r.eos()?;
    let mut caveats = Vec::new();
    loop {
        if r.peek()? == 0 {
            r.pos += 1;
            break;
        }
        if caveats.len() == limits.max_caveats {
            return Err(DecodeError::TooManyCaveats(limits.max_caveats));
        }
        let loc = r.field(LOCATION, max)?;
        let id = r
            .field(IDENTIFIER, max)?
            .ok_or(DecodeError::Missing("caveat identifier"))?;
        let vid = r.field(VID, max)?;
        if vid.is_some_and(<[u8]>::is_empty) {
            return Err(DecodeError::Missing("verification id"));
        }
        r.eos()?;
        caveats.push(CaveatPacket {
            id: Cow::Borrowed(id),
            vid: vid.map(Cow::Borrowed),
            location: non_empty_location(loc),
        });
    }
    let sig = r
        .field(SIGNATURE, KEY_LEN)?
        .ok_or(DecodeError::Missing("signature"))?;
    let signature: [u8; KEY_LEN] = sig.try_into().map_err(|_| DecodeError::SignatureLength)?;
    let m = Macaroon {
        location: non_empty_location(location),
        identifier: Cow::Borrowed(identifier),
        caveats,
        signature,
    };
    Ok((m, r.pos))
}

fn put_varint(out: &mut Vec<u8>, mut v: usize) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_field(out: &mut Vec<u8>, ty: u8, data: &[u8]) {
    out.push(ty);
    put_varint(out, data.len());
    out.extend_from_slice(data);
}

/// Appends the canonical v2 encoding (an empty location is omitted).
pub fn encode_v2(m: &Macaroon<'_>, out: &mut Vec<u8>) {
    out.push(2);
    if let Some(loc) = &m.location {
        put_field(out, LOCATION as u8, loc);
    }
    put_field(out, IDENTIFIER as u8, &m.identifier);
    out.push(0);
    for c in &m.caveats {
        if let Some(loc) = &c.location {
            put_field(out, LOCATION as u8, loc);
        }
        put_field(out, IDENTIFIER as u8, &c.id);
        if let Some(vid) = &c.vid {
            put_field(out, VID as u8, vid);
        }
        out.push(0);
    }
    out.push(0);
    put_field(out, SIGNATURE as u8, &m.signature);
}

/// Longest v1 packet: its length is written as 4 hex digits.
const MAX_PACKET: usize = 0xffff;

fn put_packet(out: &mut Vec<u8>, key: &str, value: &[u8]) -> Result<(), DecodeError> {
    let len = 4 + key.len() + 1 + value.len() + 1;
    if len > MAX_PACKET {
        return Err(DecodeError::FieldTooLarge(MAX_PACKET - 4 - key.len() - 2));
    }
    out.extend_from_slice(format!("{len:04x}").as_bytes());
    out.extend_from_slice(key.as_bytes());
    out.push(b' ');
    out.extend_from_slice(value);
    out.push(b'\n');
    Ok(())
}

/// The v1 encoding: the binary packet stream (libmacaroons base64-encodes it). Fails
/// if a field does not fit a v1 packet (64 KiB).
pub fn encode_v1(m: &Macaroon<'_>) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    put_packet(
        &mut out,
        "location",
        m.location.as_deref().unwrap_or_default(),
    )?;
    put_packet(&mut out, "identifier", &m.identifier)?;
    for c in &m.caveats {
        put_packet(&mut out, "cid", &c.id)?;
        if let Some(vid) = &c.vid {
            put_packet(&mut out, "vid", vid)?;
        }
        if let Some(loc) = &c.location {
            put_packet(&mut out, "cl", loc)?;
        }
    }
    put_packet(&mut out, "signature", &m.signature)?;
    Ok(out)
}

struct Packets<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Packets<'a> {
    fn peek_key(&self) -> Option<&'a [u8]> {
        let body = self.buf.get(self.pos + 4..)?;
        let sp = body.iter().position(|&b| b == b' ')?;
        Some(&body[..sp])
    }

    fn next(&mut self, key: &str, max: usize) -> Result<&'a [u8], DecodeError> {
        let header = self
            .buf
            .get(self.pos..self.pos + 4)
            .ok_or(DecodeError::Truncated)?;
        if !header
            .iter()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(DecodeError::Packet);
        }
        let hex = std::str::from_utf8(header).map_err(|_| DecodeError::Packet)?;
        let len = usize::from_str_radix(hex, 16).map_err(|_| DecodeError::Packet)?;
        let packet = self
            .buf
            .get(self.pos..self.pos + len)
            .ok_or(DecodeError::Truncated)?;
        let body = packet.get(4..len.checked_sub(1).ok_or(DecodeError::Packet)?);
        let body = body.ok_or(DecodeError::Packet)?;
        if packet.last() != Some(&b'\n') {
            return Err(DecodeError::Packet);
        }
        let value = body
            .strip_prefix(key.as_bytes())
            .and_then(|rest| rest.strip_prefix(b" "))
            .ok_or(DecodeError::Packet)?;
        if value.len() > max {
            return Err(DecodeError::FieldTooLarge(max));
        }
        self.pos += len;
        Ok(value)
    }
}

/// Decodes a v1 packet stream (already base64-decoded); it must be exactly one macaroon.
pub fn decode_v1<'a>(buf: &'a [u8], limits: &Limits) -> Result<Macaroon<'a>, DecodeError> {
    let max = limits.max_field;
    let mut p = Packets { buf, pos: 0 };
    let location = p.next("location", max)?;
    let identifier = p.next("identifier", max)?;
    let mut caveats = Vec::new();
    while p.peek_key() == Some(b"cid") {
        if caveats.len() == limits.max_caveats {
            return Err(DecodeError::TooManyCaveats(limits.max_caveats));
        }
        let id = p.next("cid", max)?;
        let vid = if p.peek_key() == Some(b"vid") {
            Some(p.next("vid", max)?)
        } else {
            None
        };
        if vid.is_some_and(<[u8]>::is_empty) {
            return Err(DecodeError::Missing("verification id"));
        }
        let loc = if p.peek_key() == Some(b"cl") {
            Some(p.next("cl", max)?)
        } else {
            None
        };
        caveats.push(CaveatPacket {
            id: Cow::Borrowed(id),
            vid: vid.map(Cow::Borrowed),
            location: non_empty_location(loc),
        });
    }
    let sig = p.next("signature", KEY_LEN)?;
    let signature: [u8; KEY_LEN] = sig.try_into().map_err(|_| DecodeError::SignatureLength)?;
    if p.pos != buf.len() {
        return Err(DecodeError::TrailingBytes);
    }
    Ok(Macaroon {
        location: non_empty_location(Some(location)),
        identifier: Cow::Borrowed(identifier),
        caveats,
        signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::LIMITS;

    fn sample() -> Vec<u8> {
        let mut m = Macaroon::mint(&[1; 32], b"id", Some(b"loc"));
        m.add_first_party(b"org = acme");
        m.add_third_party_with_nonce(b"ci", &[2; 32], b"ticket", &[3; 24]);
        m.to_v2()
    }

    #[test]
    fn every_truncation_is_rejected() {
        let bytes = sample();
        for n in 0..bytes.len() {
            assert!(Macaroon::from_v2(&bytes[..n]).is_err(), "prefix {n}");
        }
        assert!(Macaroon::from_v2(&bytes).is_ok());
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut bytes = sample();
        bytes.push(0);
        assert_eq!(
            Macaroon::from_v2(&bytes).err(),
            Some(DecodeError::TrailingBytes)
        );
    }

    #[test]
    fn unknown_and_out_of_order_fields_are_rejected() {
        // version, identifier "i", then an unknown field type 3 before EOS.
        let bytes = [2, 2, 1, b'i', 3, 0, 0, 0, 6, 32];
        assert_eq!(
            Macaroon::from_v2(&bytes).err(),
            Some(DecodeError::FieldType(3))
        );
        // location after identifier.
        let bytes = [2, 2, 1, b'i', 1, 1, b'l', 0];
        assert_eq!(
            Macaroon::from_v2(&bytes).err(),
            Some(DecodeError::FieldType(1))
        );
        // v1 is not v2.
        assert_eq!(
            Macaroon::from_v2(b"0010location x\n").err(),
            Some(DecodeError::Version(b'0'))
        );
    }

    #[test]
    fn overlong_varints_are_rejected() {
        // identifier length 1 written as 0x81 0x00.
        let bytes = [2, 2, 0x81, 0x00, b'i', 0, 0, 6, 32];
        assert_eq!(Macaroon::from_v2(&bytes).err(), Some(DecodeError::Varint));
    }

    #[test]
    fn oversized_fields_and_caveat_counts_are_rejected() {
        let big = vec![b'a'; LIMITS.max_field + 1];
        let m = Macaroon::mint(&[1; 32], &big, None);
        assert_eq!(
            Macaroon::from_v2(&m.to_v2()).err(),
            Some(DecodeError::FieldTooLarge(LIMITS.max_field))
        );
        let mut m = Macaroon::mint(&[1; 32], b"id", None);
        for _ in 0..=LIMITS.max_caveats {
            m.add_first_party(b"c");
        }
        assert_eq!(
            Macaroon::from_v2(&m.to_v2()).err(),
            Some(DecodeError::TooManyCaveats(LIMITS.max_caveats))
        );
        let mut sig = sample();
        let n = sig.len();
        sig[n - 33] = 31; // signature length 31
        sig.pop();
        assert_eq!(
            Macaroon::from_v2(&sig).err(),
            Some(DecodeError::SignatureLength)
        );
    }

    #[test]
    fn v1_limits_and_empty_vid() {
        let m = Macaroon::mint(&[1; 32], &vec![b'a'; 0x10000], None);
        assert!(
            m.to_v1().is_err(),
            "a field over a v1 packet must not encode"
        );
        let mut v1 = Vec::new();
        for (k, v) in [
            ("location", &b""[..]),
            ("identifier", b"id"),
            ("cid", b"c"),
            ("vid", b""),
            ("signature", &[0u8; 32]),
        ] {
            put_packet(&mut v1, k, v).unwrap();
        }
        assert_eq!(
            Macaroon::from_v1(&v1).err(),
            Some(DecodeError::Missing("verification id"))
        );
    }

    #[test]
    fn v1_rejects_garbage() {
        let bytes = sample();
        let v1 = Macaroon::from_v2(&bytes).unwrap().to_v1().unwrap();
        for n in 0..v1.len() {
            assert!(Macaroon::from_v1(&v1[..n]).is_err(), "prefix {n}");
        }
        let mut upper = v1.clone();
        upper[0..4].copy_from_slice(b"001A");
        assert!(Macaroon::from_v1(&upper).is_err());
        let mut trailing = v1;
        trailing.push(b'\n');
        assert!(Macaroon::from_v1(&trailing).is_err());
    }
}
