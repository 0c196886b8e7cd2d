//! Secrets: values kept per org (shared by its apps) or per app, versioned, sealed
//! (envelope encryption: `secrets/`), listed by keyed digest, never stored in the clear.

use crate::token::TokenId;

/// A value sealed for one version of one secret: the value under a fresh data key, the
/// data key under the org's secrets key `key_id`; both bound by associated data to
/// (purpose, org, app, name, version, key id).
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The org secrets key that wraps the data key.
    pub key_id: u32,
    /// `nonce || XChaCha20-Poly1305(data key)`.
    pub wrapped_key: Vec<u8>,
    /// `nonce || XChaCha20-Poly1305(value)`.
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

/// One version of a secret: immutable once written, but its sealed value can be
/// destroyed (purged) for good.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SecretVersion {
    /// The org.
    pub org: String,
    /// The app, or `None` for an org secret.
    pub app: Option<String>,
    /// The name.
    pub name: String,
    /// The version, from 1.
    pub version: u64,
    /// When it was written, unix seconds.
    pub created: u64,
    /// The token that wrote it.
    pub created_by: Option<TokenId>,
    /// The version whose value it copies (a rollback).
    pub rollback_of: Option<u64>,
    /// The keyed digest of (app, name, value), shown in listings.
    pub digest: [u8; 32],
    /// The value, sealed; `None` once destroyed.
    pub sealed: Option<Sealed>,
}

/// The current state of one secret: what listings show.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SecretHead {
    /// The org.
    pub org: String,
    /// The app, or `None` for an org secret.
    pub app: Option<String>,
    /// The name.
    pub name: String,
    /// The current version (0 while unset with no version kept).
    pub version: u64,
    /// The highest version ever written (numbering continues after an unset).
    pub last_version: u64,
    /// The oldest version still kept (0 before the first): versions
    /// `oldest..=last_version` are kept, older ones were dropped by the version cap.
    pub oldest: u64,
    /// Unset: history remains, nothing resolves.
    pub unset: bool,
    /// When it stops resolving, unix seconds.
    pub expires: Option<u64>,
    /// For people.
    pub description: Option<String>,
    /// When it last changed, unix seconds.
    pub updated: u64,
    /// The digest of the current version.
    pub digest: [u8; 32],
    /// The current value's length in bytes (for the limits, without opening it).
    pub size: u32,
}

impl SecretHead {
    /// A secret about to get its first version.
    pub fn new(org: &str, app: Option<&str>, name: &str) -> Self {
        SecretHead {
            org: org.to_owned(),
            app: app.map(str::to_owned),
            name: name.to_owned(),
            version: 0,
            last_version: 0,
            oldest: 0,
            unset: true,
            expires: None,
            description: None,
            updated: 0,
            digest: [0; 32],
            size: 0,
        }
    }

    /// Whether it resolves at `now`: set and not expired.
    pub fn is_live(&self, now: u64) -> bool {
        !self.unset && self.version > 0 && self.expires.is_none_or(|e| now < e)
    }
}

impl SecretVersion {
    /// A new version.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        org: &str,
        app: Option<&str>,
        name: &str,
        version: u64,
        created: u64,
        created_by: Option<TokenId>,
        digest: [u8; 32],
        sealed: Sealed,
    ) -> Self {
        SecretVersion {
            org: org.to_owned(),
            app: app.map(str::to_owned),
            name: name.to_owned(),
            version,
            created,
            created_by,
            rollback_of: None,
            digest,
            sealed: Some(sealed),
        }
    }
}

/// An org's secrets keys, each wrapped by the master key: the keys that wrap data keys
/// (one current; more during a rotation) and the key of listing digests.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SecretKeys {
    /// The org.
    pub org: String,
    /// The key new data keys are wrapped under.
    pub current: u32,
    /// Every key still in use: (id, wrapped, created).
    pub keys: Vec<(u32, Vec<u8>, u64)>,
    /// The digest key, wrapped.
    pub digest_key: Vec<u8>,
}

impl SecretKeys {
    /// An org's first secrets keys.
    pub fn new(org: &str, wrapped: Vec<u8>, digest_key: Vec<u8>, created: u64) -> Self {
        SecretKeys {
            org: org.to_owned(),
            current: 1,
            keys: vec![(1, wrapped, created)],
            digest_key,
        }
    }
}

impl std::fmt::Debug for SecretKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKeys")
            .field("org", &self.org)
            .field("current", &self.current)
            .field("keys", &self.keys.iter().map(|k| k.0).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}
