//! The macaroon core: the HMAC chain, the libmacaroons wire formats, third-party
//! caveats and discharges, bundles in text form, and verification.
//!
//! Parsing and verification are separate steps: [`Bundle::parse`] gives an unverified
//! [`Bundle`]; only [`verify`] turns it into a [`Verified`] token.

mod attenuate;
mod bundle;
mod crypto;
mod ident;
mod ticket;
mod verify;
mod wire;

use std::borrow::Cow;
use std::fmt;

use zeroize::{Zeroize, Zeroizing};

pub use attenuate::{
    AttenuateError, Discharge, InspectError, InspectedCaveat, Inspection, ThirdParty, attenuate,
    inspect,
};
pub use bundle::{Bundle, TEXT_PREFIX, decode_text, encode_text, normalize_text};
pub use crypto::{KEY_LEN, NONCE_LEN, VID_LEN, derive_key};
pub use ident::{IdentifierError, TokenId, TokenIdentifier};
pub use ticket::{
    AddThirdPartyError, KeyId, MAX_CONDITIONS, MAX_LOCATION, PUBLIC_KEY_PREFIX, PrivateKey,
    PublicKey, TICKET_VERSION, Ticket, TicketError, add_third_party, bind_discharges,
    check_location, make_discharge,
};
pub use verify::{
    ChainError, FailureClass, KeyResolver, Verified, VerifyError, verify, verify_chain,
};
pub use wire::DecodeError;

/// A short fingerprint of a token text: the first 12 hex digits of its SHA-256. The
/// ledger keeps it to re-identify a minted token; it cannot be turned back into one.
pub fn fingerprint(text: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(text.as_bytes());
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// Bounds checked before (and while) decoding anything.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest accepted token text (a whole bundle), in bytes.
    pub max_text: usize,
    /// Largest single field (identifier, caveat, location, vid), in bytes.
    pub max_field: usize,
    /// Most caveats in one macaroon.
    pub max_caveats: usize,
    /// Most discharges in a bundle.
    pub max_discharges: usize,
    /// Deepest nesting of third-party caveats (a discharge needing a discharge, …).
    pub max_depth: usize,
}

/// The limits macvault applies everywhere.
pub const LIMITS: Limits = Limits {
    max_text: 16 * 1024,
    max_field: 4096,
    max_caveats: 64,
    max_discharges: 16,
    max_depth: 4,
};

/// A 32-byte root key (or third-party caveat key). Wiped on drop; never printed.
pub struct RootKey(Zeroizing<[u8; KEY_LEN]>);

impl RootKey {
    /// Wraps key bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<Self, getrandom::Error> {
        crypto::random().map(Self::from_bytes)
    }

    /// The key bytes, for wrapping or for HMAC.
    pub fn expose_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for RootKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RootKey").finish_non_exhaustive()
    }
}

/// One caveat as it travels: a first-party predicate (no `vid`) or a third-party
/// caveat (identifier, sealed verification id and the discharger's location).
#[derive(PartialEq, Eq)]
pub struct CaveatPacket<'a> {
    /// The predicate (first party) or the caveat identifier (third party).
    pub id: Cow<'a, [u8]>,
    /// The sealed caveat key; present only on third-party caveats.
    pub vid: Option<Cow<'a, [u8]>>,
    /// Where to get the discharge; third-party caveats only.
    pub location: Option<Cow<'a, [u8]>>,
}

impl CaveatPacket<'_> {
    /// Whether this is a third-party caveat.
    pub fn is_third_party(&self) -> bool {
        self.vid.is_some()
    }

    fn into_owned(self) -> CaveatPacket<'static> {
        CaveatPacket {
            id: Cow::Owned(self.id.into_owned()),
            vid: self.vid.map(|v| Cow::Owned(v.into_owned())),
            location: self.location.map(|l| Cow::Owned(l.into_owned())),
        }
    }
}

impl fmt::Debug for CaveatPacket<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The predicate is public (any holder can read it); the vid is opaque.
        f.debug_struct("CaveatPacket")
            .field("id", &String::from_utf8_lossy(&self.id))
            .field("third_party", &self.vid.is_some())
            .finish_non_exhaustive()
    }
}

/// A macaroon: identifier, caveats and the chained signature. Holding one is holding
/// the bearer credential, so it is neither `Clone` nor printable with its signature.
pub struct Macaroon<'a> {
    location: Option<Cow<'a, [u8]>>,
    identifier: Cow<'a, [u8]>,
    caveats: Vec<CaveatPacket<'a>>,
    signature: [u8; KEY_LEN],
}

impl Drop for Macaroon<'_> {
    fn drop(&mut self) {
        self.signature.zeroize();
    }
}

impl fmt::Debug for Macaroon<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Macaroon")
            .field("identifier", &String::from_utf8_lossy(&self.identifier))
            .field("caveats", &self.caveats)
            .finish_non_exhaustive()
    }
}

impl Macaroon<'static> {
    /// Mints a macaroon: `sig0 = HMAC(root_key, identifier)`.
    pub fn mint(root_key: &[u8; KEY_LEN], identifier: &[u8], location: Option<&[u8]>) -> Self {
        Macaroon {
            location: location
                .filter(|l| !l.is_empty())
                .map(|l| Cow::Owned(l.to_vec())),
            identifier: Cow::Owned(identifier.to_vec()),
            caveats: Vec::new(),
            signature: crypto::hmac(root_key, identifier),
        }
    }
}

impl<'a> Macaroon<'a> {
    /// Appends a first-party caveat: `sig = HMAC(sig, predicate)`.
    pub fn add_first_party(&mut self, predicate: &[u8]) {
        self.signature = crypto::hmac(&self.signature, predicate);
        self.caveats.push(CaveatPacket {
            id: Cow::Owned(predicate.to_vec()),
            vid: None,
            location: None,
        });
    }

    /// Appends a third-party caveat with a random nonce; `caveat_key` is the root key
    /// the discharger will mint the discharge with.
    pub fn add_third_party(
        &mut self,
        location: &[u8],
        caveat_key: &[u8; KEY_LEN],
        id: &[u8],
    ) -> Result<(), getrandom::Error> {
        let nonce = crypto::random::<NONCE_LEN>()?;
        self.add_third_party_with_nonce(location, caveat_key, id, &nonce);
        Ok(())
    }

    /// Appends a third-party caveat sealed with the given nonce. The nonce must never
    /// repeat under the same signature; use [`Macaroon::add_third_party`] unless you
    /// are reproducing a test vector.
    pub fn add_third_party_with_nonce(
        &mut self,
        location: &[u8],
        caveat_key: &[u8; KEY_LEN],
        id: &[u8],
        nonce: &[u8; NONCE_LEN],
    ) {
        let vid = crypto::seal_vid(&self.signature, caveat_key, nonce);
        self.signature = crypto::hash2(&self.signature, &vid, id);
        self.caveats.push(CaveatPacket {
            id: Cow::Owned(id.to_vec()),
            vid: Some(Cow::Owned(vid.to_vec())),
            location: Some(location)
                .filter(|l| !l.is_empty())
                .map(|l| Cow::Owned(l.to_vec())),
        });
    }

    /// Binds a discharge to this (permission) macaroon, as a client does before a request.
    pub fn bind(&self, discharge: &mut Macaroon<'_>) {
        discharge.signature = crypto::bind(&self.signature, &discharge.signature);
    }

    /// The identifier.
    pub fn identifier(&self) -> &[u8] {
        &self.identifier
    }

    /// The location hint, if any (not covered by the signature).
    pub fn location(&self) -> Option<&[u8]> {
        self.location.as_deref()
    }

    /// The caveats, in order.
    pub fn caveats(&self) -> &[CaveatPacket<'a>] {
        &self.caveats
    }

    /// The signature: whoever has it (with the rest) holds the token.
    pub fn expose_signature(&self) -> &[u8; KEY_LEN] {
        &self.signature
    }

    /// The canonical libmacaroons v2 binary form.
    pub fn to_v2(&self) -> Vec<u8> {
        let mut out = Vec::new();
        wire::encode_v2(self, &mut out);
        out
    }

    /// The libmacaroons v1 packet stream (before libmacaroons' base64); fails if a
    /// field is too large for a v1 packet.
    pub fn to_v1(&self) -> Result<Vec<u8>, DecodeError> {
        wire::encode_v1(self)
    }

    /// Decodes exactly one v2 macaroon.
    pub fn from_v2(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        if bytes.len() > LIMITS.max_text {
            return Err(DecodeError::TooLarge(LIMITS.max_text));
        }
        let (m, used) = wire::decode_v2(bytes, &LIMITS)?;
        if used != bytes.len() {
            return Err(DecodeError::TrailingBytes);
        }
        Ok(m)
    }

    /// Decodes a v1 packet stream.
    pub fn from_v1(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        if bytes.len() > LIMITS.max_text {
            return Err(DecodeError::TooLarge(LIMITS.max_text));
        }
        wire::decode_v1(bytes, &LIMITS)
    }

    /// Detaches the macaroon from the buffer it was decoded from.
    pub fn into_owned(mut self) -> Macaroon<'static> {
        Macaroon {
            location: self.location.take().map(|l| Cow::Owned(l.into_owned())),
            identifier: Cow::Owned(std::mem::take(&mut self.identifier).into_owned()),
            caveats: std::mem::take(&mut self.caveats)
                .into_iter()
                .map(CaveatPacket::into_owned)
                .collect(),
            signature: self.signature,
        }
    }
}
