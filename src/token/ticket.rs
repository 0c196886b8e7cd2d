//! Third-party tickets (ARCHITECTURE §5): the identifier of a third-party caveat.
//!
//! A ticket is a versioned record. Its clear part names the third party's key (so the
//! discharger finds it without trial decryption), its location and the conditions (so
//! anyone can read them); its sealed part is the discharge root key, sealed with HPKE
//! (RFC 9180: X25519-HKDF-SHA256, HKDF-SHA256, ChaCha20-Poly1305, base mode) to the
//! third party's public key with the clear part as associated data. Adding a
//! third-party caveat needs only the public key; changing the conditions or learning
//! the root key needs the private one.
//!
//! Layout, version 1 (integers big-endian):
//! `01 | key id (8) | location length (u16) | location | condition count (u8) |
//! (length (u16) | canonical text)… | encapsulated key (32) | sealed root key (48)`.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable as _, Kem as _, OpModeR, OpModeS, Serializable as _};
use macvault_caveats::{Condition, Excerpt};
use sha2::Digest as _;
use zeroize::Zeroizing;

use super::crypto::{self, KEY_LEN};
use super::{Bundle, LIMITS, Macaroon, RootKey};

/// The ticket layout this build writes and reads.
pub const TICKET_VERSION: u8 = 1;
/// The prefix of a third party's public key in text form.
pub const PUBLIC_KEY_PREFIX: &str = "mv3pk_";
/// Longest location a ticket carries, in bytes.
pub const MAX_LOCATION: usize = 512;
/// Most conditions in one ticket.
pub const MAX_CONDITIONS: usize = 16;
/// Longest ticket in text form (base64url), in bytes.
pub const MAX_TICKET_TEXT: usize = 8 * 1024;

const INFO: &[u8] = b"macvault third-party ticket v1";
const KEY_ID_LEN: usize = 8;
const ENC_LEN: usize = 32;
const SEALED_LEN: usize = KEY_LEN + 16;

/// Why a ticket cannot be made, read or opened. Says nothing about the root key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// Not a ticket of a version this build knows.
    #[error("not a macvault ticket (unknown version or layout)")]
    Version,
    /// The bytes do not follow the layout.
    #[error("malformed ticket: {0}")]
    Malformed(&'static str),
    /// A condition in the clear part is not in the vocabulary.
    #[error("ticket condition {index} is not a known condition: {reason}")]
    Condition {
        /// 1-based.
        index: usize,
        /// The parse error, escaped.
        reason: String,
    },
    /// The location is empty, too long or not printable ASCII.
    #[error("a third-party location must be 1 to {MAX_LOCATION} printable ASCII bytes")]
    Location,
    /// More conditions than a ticket carries.
    #[error("a ticket carries at most {MAX_CONDITIONS} conditions")]
    TooManyConditions,
    /// Sealed to another key, or tampered with (clear or sealed part).
    #[error("the ticket does not open with this key (another key, or altered)")]
    Open,
    /// The operating system's random source failed.
    #[error("no randomness available")]
    Random,
}

/// The id of a third party's public key: the first 8 bytes of a SHA-256 over it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; KEY_ID_LEN]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl std::str::FromStr for KeyId {
    type Err = TicketError;
    /// 16 hex digits, as [`KeyId`]'s `Display` writes them.
    fn from_str(s: &str) -> Result<Self, TicketError> {
        let bad = TicketError::Malformed("a key id is 16 hex digits");
        // Hex digits only: from_str_radix alone would take a leading '+'.
        if s.len() != 2 * KEY_ID_LEN || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad);
        }
        let mut id = [0u8; KEY_ID_LEN];
        for (i, b) in id.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad.clone())?;
        }
        Ok(KeyId(id))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// A third party's public key: whoever holds it can seal tickets to the third party.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey([u8; KEY_LEN]);

impl PublicKey {
    /// The raw X25519 public key.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Its id, written in the clear part of every ticket sealed to it.
    pub fn key_id(&self) -> KeyId {
        let digest = sha2::Sha256::new()
            .chain_update(b"macvault third-party key id\0")
            .chain_update(self.0)
            .finalize();
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        KeyId(id)
    }

    /// `mv3pk_` + URL-safe base64 (no padding) of the key.
    pub fn to_text(&self) -> String {
        format!("{PUBLIC_KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(self.0))
    }

    /// Reads [`PublicKey::to_text`]'s form (surrounding whitespace ignored). Any
    /// 32 bytes are accepted here; a key that is not a curve point fails at sealing.
    pub fn from_text(text: &str) -> Result<Self, TicketError> {
        let b64 = text
            .trim()
            .strip_prefix(PUBLIC_KEY_PREFIX)
            .ok_or(TicketError::Malformed("a public key starts with mv3pk_"))?;
        let bytes = URL_SAFE_NO_PAD
            .decode(b64)
            .map_err(|_| TicketError::Malformed("a public key is base64url"))?;
        let bytes: [u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|_| TicketError::Malformed("a public key is 32 bytes"))?;
        Ok(Self(bytes))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.key_id())
    }
}

/// A third party's private key. Wiped on drop; never printed.
pub struct PrivateKey(Zeroizing<[u8; KEY_LEN]>);

impl PrivateKey {
    /// A fresh key pair from the operating system's random source.
    pub fn generate() -> Result<(PrivateKey, PublicKey), TicketError> {
        let ikm = Zeroizing::new(crypto::random::<KEY_LEN>().map_err(|_| TicketError::Random)?);
        let (sk, pk) = X25519HkdfSha256::derive_keypair(&*ikm);
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        bytes.copy_from_slice(&sk.to_bytes());
        Ok((PrivateKey(bytes), PublicKey(pk.to_bytes().into())))
    }

    /// Wraps stored key bytes.
    pub fn from_bytes(bytes: Zeroizing<[u8; KEY_LEN]>) -> Self {
        Self(bytes)
    }

    /// The key bytes, for wrapping under the master key.
    pub fn expose_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The matching public key.
    pub fn public_key(&self) -> Result<PublicKey, TicketError> {
        let sk = <X25519HkdfSha256 as hpke::Kem>::PrivateKey::from_bytes(&*self.0)
            .map_err(|_| TicketError::Open)?;
        let pk = X25519HkdfSha256::sk_to_pk(&sk);
        Ok(PublicKey(pk.to_bytes().into()))
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey").finish_non_exhaustive()
    }
}

/// A third-party caveat's identifier, decoded. Everything but the root key is public.
#[derive(Clone, PartialEq, Eq)]
pub struct Ticket {
    key_id: KeyId,
    location: String,
    conditions: Vec<Condition>,
    enc: [u8; ENC_LEN],
    sealed: [u8; SEALED_LEN],
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket")
            .field("key_id", &self.key_id)
            .field("location", &self.location)
            .field("conditions", &self.conditions)
            .finish_non_exhaustive()
    }
}

/// Checks a location: 1 to [`MAX_LOCATION`] bytes of printable ASCII, no spaces.
pub fn check_location(location: &str) -> Result<(), TicketError> {
    let ok = !location.is_empty()
        && location.len() <= MAX_LOCATION
        && location.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(TicketError::Location)
    }
}

impl Ticket {
    /// Seals `root_key` to `public` under the given clear part.
    pub fn seal(
        public: &PublicKey,
        location: &str,
        conditions: &[Condition],
        root_key: &RootKey,
    ) -> Result<Ticket, TicketError> {
        check_location(location)?;
        if conditions.len() > MAX_CONDITIONS {
            return Err(TicketError::TooManyConditions);
        }
        let mut ticket = Ticket {
            key_id: public.key_id(),
            location: location.to_owned(),
            conditions: conditions.to_vec(),
            enc: [0; ENC_LEN],
            sealed: [0; SEALED_LEN],
        };
        let pk = <X25519HkdfSha256 as hpke::Kem>::PublicKey::from_bytes(&public.0)
            .map_err(|_| TicketError::Malformed("not an X25519 public key"))?;
        let aad = ticket.clear_part();
        let (enc, sealed) =
            hpke::single_shot_seal::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256>(
                &OpModeS::Base,
                &pk,
                INFO,
                root_key.expose_bytes(),
                &aad,
            )
            .map_err(|_| TicketError::Malformed("not an X25519 public key"))?;
        ticket.enc.copy_from_slice(&enc.to_bytes());
        ticket.sealed = sealed
            .as_slice()
            .try_into()
            .map_err(|_| TicketError::Malformed("sealed part"))?;
        Ok(ticket)
    }

    /// Opens the sealed root key with the third party's private key. Fails on any
    /// change to the clear or the sealed part.
    pub fn open(&self, private: &PrivateKey) -> Result<RootKey, TicketError> {
        let sk = <X25519HkdfSha256 as hpke::Kem>::PrivateKey::from_bytes(&*private.0)
            .map_err(|_| TicketError::Open)?;
        let enc = <X25519HkdfSha256 as hpke::Kem>::EncappedKey::from_bytes(&self.enc)
            .map_err(|_| TicketError::Open)?;
        let opened = Zeroizing::new(
            hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256>(
                &OpModeR::Base,
                &sk,
                &enc,
                INFO,
                &self.sealed,
                &self.clear_part(),
            )
            .map_err(|_| TicketError::Open)?,
        );
        let key: [u8; KEY_LEN] = opened
            .as_slice()
            .try_into()
            .map_err(|_| TicketError::Open)?;
        Ok(RootKey::from_bytes(key))
    }

    /// The id of the key it is sealed to.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// Where its discharge is obtained.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// What the discharger must check.
    pub fn conditions(&self) -> &[Condition] {
        &self.conditions
    }

    fn clear_part(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.location.len() + 64 * self.conditions.len());
        out.push(TICKET_VERSION);
        out.extend_from_slice(&self.key_id.0);
        put_field(&mut out, self.location.as_bytes());
        out.push(u8::try_from(self.conditions.len()).unwrap_or(u8::MAX));
        for c in &self.conditions {
            put_field(&mut out, c.to_string().as_bytes());
        }
        out
    }

    /// The identifier bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.clear_part();
        out.extend_from_slice(&self.enc);
        out.extend_from_slice(&self.sealed);
        out
    }

    /// Reads a ticket as a discharge request carries it: base64url without padding
    /// (surrounding whitespace ignored), at most 8 KiB. Gives the raw bytes too (the
    /// caveat identifier a discharge must repeat).
    pub fn from_text(text: &str) -> Result<(Vec<u8>, Ticket), TicketError> {
        let text = text.trim();
        if text.len() > MAX_TICKET_TEXT {
            return Err(TicketError::Malformed("longer than 8 KiB"));
        }
        let raw = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| TicketError::Malformed("not base64url (without padding)"))?;
        let ticket = Ticket::decode(&raw)?;
        Ok((raw, ticket))
    }

    /// Writes [`Ticket::from_text`]'s form of encoded ticket bytes.
    pub fn text_of(raw: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Reads a ticket strictly: the version, every length, every condition in
    /// canonical text, and nothing after the sealed part.
    pub fn decode(bytes: &[u8]) -> Result<Ticket, TicketError> {
        let mut r = Reader(bytes);
        if r.take(1)? != [TICKET_VERSION] {
            return Err(TicketError::Version);
        }
        let key_id = KeyId(r.array()?);
        let location = std::str::from_utf8(r.field()?)
            .map_err(|_| TicketError::Location)?
            .to_owned();
        check_location(&location)?;
        let count = usize::from(r.take(1)?[0]);
        if count > MAX_CONDITIONS {
            return Err(TicketError::TooManyConditions);
        }
        let mut conditions = Vec::with_capacity(count);
        for index in 1..=count {
            let raw = r.field()?;
            let bad = |reason: String| TicketError::Condition { index, reason };
            let text = std::str::from_utf8(raw).map_err(|_| bad(Excerpt(raw).to_string()))?;
            let c = Condition::parse(text).map_err(|e| bad(e.to_string()))?;
            conditions.push(c);
        }
        let enc = r.array()?;
        let sealed = r.array()?;
        if !r.0.is_empty() {
            return Err(TicketError::Malformed("bytes after the sealed part"));
        }
        Ok(Ticket {
            key_id,
            location,
            conditions,
            enc,
            sealed,
        })
    }
}

fn put_field(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&bytes[..usize::from(len)]);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TicketError> {
        if self.0.len() < n {
            return Err(TicketError::Malformed("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], TicketError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn field(&mut self) -> Result<&'a [u8], TicketError> {
        let len = u16::from_be_bytes(self.array()?);
        self.take(usize::from(len))
    }
}

/// Why a third-party caveat could not be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddThirdPartyError {
    /// The token or the request was refused by the attenuation rules.
    #[error(transparent)]
    Attenuate(#[from] super::AttenuateError),
    /// The ticket could not be sealed.
    #[error(transparent)]
    Ticket(#[from] TicketError),
}

/// Appends a third-party caveat to the permission token of bundle `text`: a fresh
/// discharge root key, sealed in a ticket to `public` with `conditions`, and sealed
/// again under the token's signature as the caveat's verification id. Offline: only
/// the public key is needed. Only narrows what the token allows.
pub fn add_third_party(
    text: &str,
    location: &str,
    public: &PublicKey,
    conditions: &[Condition],
) -> Result<String, AddThirdPartyError> {
    use super::AttenuateError as E;
    let bytes = super::decode_text(text).map_err(E::from)?;
    let mut bundle = Bundle::parse(&bytes).map_err(E::from)?;
    if !bundle.discharges.is_empty() {
        return Err(E::HasDischarges(bundle.discharges.len()).into());
    }
    if bundle.token.caveats().len() >= LIMITS.max_caveats {
        return Err(E::TooManyCaveats(LIMITS.max_caveats).into());
    }
    let root_key = RootKey::generate().map_err(|_| TicketError::Random)?;
    let ticket = Ticket::seal(public, location, conditions, &root_key)?;
    bundle
        .token
        .add_third_party(
            location.as_bytes(),
            root_key.expose_bytes(),
            &ticket.encode(),
        )
        .map_err(|_| TicketError::Random)?;
    let out = bundle.to_text();
    if out.len() > LIMITS.max_text {
        return Err(E::TooLarge(LIMITS.max_text).into());
    }
    Ok(out)
}

/// Makes the discharge of a ticket, as a discharger does once it has opened the ticket
/// and checked its conditions: a macaroon under the ticket's root key, with the ticket
/// as identifier and `caveats` (at least an expiry) as its first-party caveats. Not yet
/// bound: [`bind_discharges`] binds it to the permission token it is presented with.
pub fn make_discharge(
    ticket: &[u8],
    location: &str,
    root_key: &RootKey,
    caveats: &[macvault_caveats::Caveat<'_>],
) -> Macaroon<'static> {
    let mut m = Macaroon::mint(root_key.expose_bytes(), ticket, Some(location.as_bytes()));
    for c in caveats {
        m.add_first_party(c.to_string().as_bytes());
    }
    m
}

/// Appends discharges (token texts of single, unbound macaroons) to bundle `text`,
/// binding each to its permission token, and returns the new bundle text.
pub fn bind_discharges(text: &str, discharges: &[String]) -> Result<String, super::DecodeError> {
    let bytes = super::decode_text(text)?;
    let mut bundle = Bundle::parse(&bytes)?.into_owned();
    if bundle.discharges.len() + discharges.len() > LIMITS.max_discharges {
        return Err(super::DecodeError::TooLarge(LIMITS.max_discharges));
    }
    for d in discharges {
        let dbytes = super::decode_text(d)?;
        let single = Bundle::parse(&dbytes)?;
        if !single.discharges.is_empty() {
            return Err(super::DecodeError::Text);
        }
        let mut m = single.token.into_owned();
        bundle.token.bind(&mut m);
        bundle.discharges.push(m);
    }
    Ok(bundle.to_text())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(t: &str) -> Condition {
        Condition::parse(t).unwrap()
    }

    #[test]
    fn key_ids_read_back_and_refuse_anything_else() {
        let (_, pk) = PrivateKey::generate().unwrap();
        let id = pk.key_id();
        assert_eq!(id.to_string().parse::<KeyId>(), Ok(id));
        assert_eq!(
            id.to_string().to_uppercase().parse::<KeyId>(),
            Ok(id),
            "hex digits in either case"
        );
        for bad in [
            "",
            "00",
            "+0+0+0+0+0+0+0+0",
            "0011223344556677aa",
            "001122334455667g",
        ] {
            assert!(bad.parse::<KeyId>().is_err(), "{bad}");
        }
    }

    fn sealed() -> (PrivateKey, PublicKey, RootKey, Ticket) {
        let (sk, pk) = PrivateKey::generate().unwrap();
        let root = RootKey::generate().unwrap();
        let conditions = [
            cond("claim repository_id = 123"),
            cond("claim ref = refs/heads/*"),
            cond("max-validity = 10m"),
        ];
        let t = Ticket::seal(&pk, "https://ci.example/3p", &conditions, &root).unwrap();
        (sk, pk, root, t)
    }

    #[test]
    fn round_trip_and_open() {
        let (sk, pk, root, t) = sealed();
        let bytes = t.encode();
        let back = Ticket::decode(&bytes).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.key_id(), pk.key_id());
        assert_eq!(back.location(), "https://ci.example/3p");
        assert_eq!(back.conditions()[1].to_string(), "claim ref = refs/heads/*");
        let opened = back.open(&sk).unwrap();
        assert_eq!(opened.expose_bytes(), root.expose_bytes());
        assert_eq!(sk.public_key().unwrap(), pk);
        assert_eq!(PublicKey::from_text(&pk.to_text()).unwrap(), pk);
        assert!(!format!("{sk:?}{t:?}").contains(&format!("{:?}", root.expose_bytes())));
    }

    #[test]
    fn tampering_anywhere_fails() {
        let (sk, _, _, t) = sealed();
        let bytes = t.encode();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            // Either it no longer decodes, or it decodes and does not open.
            if let Ok(changed) = Ticket::decode(&b) {
                assert_eq!(
                    changed.open(&sk).unwrap_err(),
                    TicketError::Open,
                    "byte {i}"
                );
            }
        }
        // A condition rewritten by someone without the private key.
        let mut widened = t.clone();
        widened.conditions[1] = cond("claim ref = refs/*");
        let again = Ticket::decode(&widened.encode()).unwrap();
        assert_eq!(again.open(&sk).unwrap_err(), TicketError::Open);
    }

    #[test]
    fn wrong_private_key_fails() {
        let (_, _, _, t) = sealed();
        let (other, _) = PrivateKey::generate().unwrap();
        assert_eq!(t.open(&other).unwrap_err(), TicketError::Open);
    }

    #[test]
    fn decoding_is_strict() {
        let (_, _, _, t) = sealed();
        let bytes = t.encode();
        let mut long = bytes.clone();
        long.push(0);
        assert!(Ticket::decode(&long).is_err());
        for n in 0..bytes.len() {
            assert!(Ticket::decode(&bytes[..n]).is_err(), "prefix {n}");
        }
        let mut v2 = bytes.clone();
        v2[0] = 2;
        assert_eq!(Ticket::decode(&v2).unwrap_err(), TicketError::Version);
        // An unknown condition fails closed, naming its index.
        let mut unknown = Vec::from([TICKET_VERSION]);
        unknown.extend_from_slice(&[0; 8]);
        put_field(&mut unknown, b"https://x");
        unknown.push(1);
        put_field(&mut unknown, b"claim repository ~ acme");
        unknown.extend_from_slice(&[0; ENC_LEN + SEALED_LEN]);
        assert!(matches!(
            Ticket::decode(&unknown).unwrap_err(),
            TicketError::Condition { index: 1, .. }
        ));
        assert_eq!(check_location(""), Err(TicketError::Location));
        assert_eq!(check_location("https://a b"), Err(TicketError::Location));
        assert!(check_location(&"a".repeat(MAX_LOCATION)).is_ok());
        assert!(check_location(&"a".repeat(MAX_LOCATION + 1)).is_err());
        let many = vec![cond("claim a = b"); MAX_CONDITIONS + 1];
        let (_, pk) = PrivateKey::generate().unwrap();
        let root = RootKey::generate().unwrap();
        assert_eq!(
            Ticket::seal(&pk, "https://x", &many, &root).unwrap_err(),
            TicketError::TooManyConditions
        );
        assert!(PublicKey::from_text("mv3pk_AAAA").is_err());
        assert!(PublicKey::from_text(&"x".repeat(40)).is_err());
    }
}
