//! The text form: `mvt_` + URL-safe base64 (no padding) of one or more v2 macaroons
//! laid end to end. The first is the permission token; the rest are its discharges.
//! A single token is a bundle without discharges.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use zeroize::Zeroizing;

use super::wire::{self, DecodeError};
use super::{LIMITS, Limits, Macaroon};

/// The prefix of every macvault token text; it lets secret scanners find leaks.
pub const TEXT_PREFIX: &str = "mvt_";

/// A permission token and its discharges, parsed but not verified.
#[derive(Debug)]
pub struct Bundle<'a> {
    /// The token whose identifier names the org and root key.
    pub token: Macaroon<'a>,
    /// Discharges for its third-party caveats, bound to it. Each third-party caveat
    /// takes the first unused discharge with its identifier, in bundle order.
    pub discharges: Vec<Macaroon<'a>>,
}

/// Checks the size, then base64-decodes a token text. The bytes are wiped when
/// dropped: they are the credential.
///
/// The canonical form is `mvt_` + URL-safe base64 without padding. What other macaroon
/// libraries write is accepted too: `=` padding (the `macaroon` crate, pymacaroons),
/// the standard alphabet, and, for a libmacaroons v2 macaroon, no `mvt_` prefix.
/// [`normalize_text`] gives the canonical form (what fingerprints are taken of).
pub fn decode_text(text: &str) -> Result<Zeroizing<Vec<u8>>, DecodeError> {
    decode_text_with(text, &LIMITS)
}

fn decode_text_with(text: &str, limits: &Limits) -> Result<Zeroizing<Vec<u8>>, DecodeError> {
    if text.len() > limits.max_text {
        return Err(DecodeError::TooLarge(limits.max_text));
    }
    let (prefixed, b64) = match text.strip_prefix(TEXT_PREFIX) {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let unpadded = b64.trim_end_matches('=');
    if b64.len() - unpadded.len() > 2 {
        return Err(DecodeError::Text);
    }
    let mut out = Zeroizing::new(Vec::with_capacity(unpadded.len() / 4 * 3 + 3));
    let decoded = if unpadded.bytes().any(|b| b == b'+' || b == b'/') {
        STANDARD_NO_PAD.decode_vec(unpadded, &mut out)
    } else {
        URL_SAFE_NO_PAD.decode_vec(unpadded, &mut out)
    };
    decoded.map_err(|_| DecodeError::Text)?;
    // Without our prefix, only what starts like a libmacaroons v2 macaroon.
    if !prefixed && out.first() != Some(&2) {
        return Err(DecodeError::Text);
    }
    Ok(out)
}

/// The canonical text of a token given in any form [`decode_text`] accepts.
pub fn normalize_text(text: &str) -> Result<std::borrow::Cow<'_, str>, DecodeError> {
    let canonical = text
        .strip_prefix(TEXT_PREFIX)
        .is_some_and(|b64| !b64.bytes().any(|b| matches!(b, b'=' | b'+' | b'/')));
    let bytes = decode_text(text)?;
    if canonical {
        Ok(std::borrow::Cow::Borrowed(text))
    } else {
        Ok(std::borrow::Cow::Owned(encode_text(&bytes)))
    }
}

/// `mvt_` + URL-safe base64 of the given bytes.
pub fn encode_text(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(TEXT_PREFIX.len() + bytes.len().div_ceil(3) * 4);
    out.push_str(TEXT_PREFIX);
    URL_SAFE_NO_PAD.encode_string(bytes, &mut out);
    out
}

impl<'a> Bundle<'a> {
    /// Parses the decoded bytes of a token text: one permission token, then discharges.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let limits = &LIMITS;
        if bytes.len() > limits.max_text {
            return Err(DecodeError::TooLarge(limits.max_text));
        }
        let (token, mut pos) = wire::decode_v2(bytes, limits)?;
        let mut discharges = Vec::new();
        while pos < bytes.len() {
            if discharges.len() == limits.max_discharges {
                return Err(DecodeError::TooManyDischarges(limits.max_discharges));
            }
            let (d, used) = wire::decode_v2(&bytes[pos..], limits)?;
            discharges.push(d);
            pos += used;
        }
        Ok(Bundle { token, discharges })
    }

    /// A bundle of one token and no discharges.
    pub fn single(token: Macaroon<'a>) -> Self {
        Bundle {
            token,
            discharges: Vec::new(),
        }
    }

    /// The v2 bytes of the whole bundle.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::new());
        wire::encode_v2(&self.token, &mut out);
        for d in &self.discharges {
            wire::encode_v2(d, &mut out);
        }
        out
    }

    /// The text form, `mvt_…`.
    pub fn to_text(&self) -> String {
        encode_text(&self.to_bytes())
    }

    /// Detaches the bundle from the buffer it was parsed from.
    pub fn into_owned(self) -> Bundle<'static> {
        Bundle {
            token: self.token.into_owned(),
            discharges: self
                .discharges
                .into_iter()
                .map(Macaroon::into_owned)
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_rejects_bad_forms() {
        assert_eq!(decode_text("abc").err(), Some(DecodeError::Text));
        assert_eq!(decode_text("mvt_AA===").err(), Some(DecodeError::Text));
        assert_eq!(decode_text("mvt_A+").err(), Some(DecodeError::Text));
        assert_eq!(decode_text("mvt_A=A").err(), Some(DecodeError::Text));
        // Without the prefix, only a v2 macaroon (first byte 2).
        assert_eq!(decode_text("AAAA").err(), Some(DecodeError::Text));
        let big = format!("mvt_{}", "A".repeat(LIMITS.max_text));
        assert_eq!(
            decode_text(&big).err(),
            Some(DecodeError::TooLarge(LIMITS.max_text))
        );
    }

    #[test]
    fn bundle_round_trip_keeps_order() {
        let mut t = Macaroon::mint(&[1; 32], b"perm", None);
        t.add_third_party_with_nonce(b"ci", &[2; 32], b"ticket", &[0; 24]);
        let mut d = Macaroon::mint(&[2; 32], b"ticket", Some(b"ci"));
        t.bind(&mut d);
        let b = Bundle {
            token: t,
            discharges: vec![d],
        };
        let text = b.to_text();
        let bytes = decode_text(&text).unwrap();
        let back = Bundle::parse(&bytes).unwrap();
        assert_eq!(back.token.identifier(), b"perm");
        assert_eq!(back.discharges.len(), 1);
        assert_eq!(back.discharges[0].identifier(), b"ticket");
        assert_eq!(back.to_text(), text);
    }

    #[test]
    fn other_libraries_forms_are_accepted_and_normalised() {
        let text = Bundle::single(Macaroon::mint(&[1; 32], b"perm-id", None)).to_text();
        let b64 = text.strip_prefix(TEXT_PREFIX).unwrap();
        let padded = format!("{b64}{}", "=".repeat((4 - b64.len() % 4) % 4));
        let standard = b64.replace('-', "+").replace('_', "/");
        for form in [
            text.clone(),
            format!("mvt_{padded}"),
            padded.clone(),
            b64.to_owned(),
            standard,
        ] {
            assert_eq!(
                *decode_text(&form).unwrap(),
                *decode_text(&text).unwrap(),
                "{form}"
            );
            assert_eq!(normalize_text(&form).unwrap(), text, "{form}");
        }
        assert!(matches!(
            normalize_text(&text).unwrap(),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn too_many_discharges() {
        let t = Macaroon::mint(&[1; 32], b"perm", None);
        let mut bytes = t.to_v2();
        for _ in 0..=LIMITS.max_discharges {
            bytes.extend(Macaroon::mint(&[2; 32], b"d", None).to_v2());
        }
        assert_eq!(
            Bundle::parse(&bytes).err(),
            Some(DecodeError::TooManyDischarges(LIMITS.max_discharges))
        );
    }
}
