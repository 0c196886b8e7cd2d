//! The identifier of a macvault root token: `mv1.` + URL-safe base64 of the postcard
//! encoding of {org, root-key version, 128-bit token id}. Printable ASCII, so every
//! macaroon library can display it.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

const PREFIX: &str = "mv1.";
/// Longest encoded payload: a 63-byte org name, a u32 and 16 bytes, with varints.
const MAX_PAYLOAD: usize = 96;

/// The 128-bit random handle of a token; attenuation never changes it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TokenId(pub [u8; 16]);

impl TokenId {
    /// A fresh random id.
    pub fn generate() -> Result<Self, getrandom::Error> {
        super::crypto::random().map(TokenId)
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One write of a stack buffer: this runs on every verify answer.
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 32];
        for (pair, b) in out.chunks_exact_mut(2).zip(self.0) {
            pair[0] = HEX[usize::from(b >> 4)];
            pair[1] = HEX[usize::from(b & 0xf)];
        }
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenId({self})")
    }
}

impl FromStr for TokenId {
    type Err = IdentifierError;

    /// 32 lowercase hex digits.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.as_bytes();
        if s.len() != 32 {
            return Err(IdentifierError::TokenId);
        }
        let mut out = [0u8; 16];
        for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
            *o = (hex_digit(pair[0])? << 4) | hex_digit(pair[1])?;
        }
        Ok(TokenId(out))
    }
}

fn hex_digit(c: u8) -> Result<u8, IdentifierError> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(IdentifierError::TokenId),
    }
}

/// Why bytes are not a macvault identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdentifierError {
    /// Not `mv1.` followed by base64 of a well-formed payload.
    #[error("token identifier is not a macvault identifier")]
    Format,
    /// The org name in the identifier is not a valid name.
    #[error("token identifier names an invalid org")]
    Org,
    /// Not 32 lowercase hex digits.
    #[error("a token id is 32 lowercase hex digits")]
    TokenId,
}

#[derive(Serialize, Deserialize)]
struct PayloadV1<'a> {
    org: &'a str,
    key_version: u32,
    token_id: [u8; 16],
}

/// What a root token's identifier says: which org, which root key, which token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenIdentifier {
    /// The org whose root key signed the token.
    pub org: String,
    /// The version of that org's root key.
    pub key_version: u32,
    /// The token's handle.
    pub token_id: TokenId,
}

impl TokenIdentifier {
    /// The printable identifier bytes.
    pub fn encode(&self) -> Result<String, IdentifierError> {
        if !macvault_caveats::is_valid_name(&self.org) {
            return Err(IdentifierError::Org);
        }
        let payload = PayloadV1 {
            org: &self.org,
            key_version: self.key_version,
            token_id: self.token_id.0,
        };
        let mut buf = [0u8; MAX_PAYLOAD];
        let used = postcard::to_slice(&payload, &mut buf).map_err(|_| IdentifierError::Format)?;
        let mut out = String::with_capacity(PREFIX.len() + MAX_PAYLOAD * 4 / 3 + 4);
        out.push_str(PREFIX);
        URL_SAFE_NO_PAD.encode_string(used, &mut out);
        Ok(out)
    }

    /// Parses identifier bytes strictly: no trailing bytes, and the payload must
    /// re-encode to the same bytes (postcard alone accepts overlong varints).
    pub fn decode(bytes: &[u8]) -> Result<Self, IdentifierError> {
        let b64 = bytes
            .strip_prefix(PREFIX.as_bytes())
            .ok_or(IdentifierError::Format)?;
        let mut buf = [0u8; MAX_PAYLOAD];
        if b64.len() > MAX_PAYLOAD * 4 / 3 + 2 {
            return Err(IdentifierError::Format);
        }
        let n = URL_SAFE_NO_PAD
            .decode_slice(b64, &mut buf)
            .map_err(|_| IdentifierError::Format)?;
        let raw = &buf[..n];
        let (payload, rest) =
            postcard::take_from_bytes::<PayloadV1<'_>>(raw).map_err(|_| IdentifierError::Format)?;
        if !rest.is_empty() {
            return Err(IdentifierError::Format);
        }
        let mut again = [0u8; MAX_PAYLOAD];
        let re = postcard::to_slice(&payload, &mut again).map_err(|_| IdentifierError::Format)?;
        if re != raw {
            return Err(IdentifierError::Format);
        }
        if !macvault_caveats::is_valid_name(payload.org) {
            return Err(IdentifierError::Org);
        }
        Ok(TokenIdentifier {
            org: payload.org.to_owned(),
            key_version: payload.key_version,
            token_id: TokenId(payload.token_id),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TokenIdentifier {
        TokenIdentifier {
            org: "acme".into(),
            key_version: 3,
            token_id: TokenId([0xab; 16]),
        }
    }

    #[test]
    fn round_trip_and_printable() {
        let text = sample().encode().unwrap();
        assert!(text.starts_with("mv1."));
        assert!(text.bytes().all(|b| b.is_ascii_graphic()));
        assert_eq!(TokenIdentifier::decode(text.as_bytes()).unwrap(), sample());
    }

    #[test]
    fn rejects_overlong_varint_and_trailing_bytes() {
        // org "a", key_version 1 written as an overlong varint 0x81 0x00.
        let mut raw = vec![1, b'a', 0x81, 0x00];
        raw.extend([0u8; 16]);
        let text = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(&raw));
        assert_eq!(
            TokenIdentifier::decode(text.as_bytes()),
            Err(IdentifierError::Format)
        );
        let mut raw = vec![1, b'a', 1];
        raw.extend([0u8; 17]);
        let text = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(&raw));
        assert_eq!(
            TokenIdentifier::decode(text.as_bytes()),
            Err(IdentifierError::Format)
        );
    }

    #[test]
    fn rejects_bad_org_and_prefix() {
        let mut id = sample();
        id.org = "Not Valid".into();
        assert_eq!(id.encode(), Err(IdentifierError::Org));
        assert_eq!(
            TokenIdentifier::decode(b"mv2.AAAA"),
            Err(IdentifierError::Format)
        );
        assert_eq!(
            TokenIdentifier::decode(b"we used our secret key"),
            Err(IdentifierError::Format)
        );
    }

    #[test]
    fn token_id_hex() {
        let id = TokenId([0x0f; 16]);
        assert_eq!(id.to_string(), "0f".repeat(16));
        assert_eq!(id.to_string().parse::<TokenId>().unwrap(), id);
        assert!("0F".repeat(16).parse::<TokenId>().is_err());
        assert!("0f".repeat(15).parse::<TokenId>().is_err());
    }
}
