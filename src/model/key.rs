//! One version of an org's root key, as stored: wrapped, never in the clear.

/// A root-key version. The key itself is only ever held wrapped by the master key.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RootKeyVersion {
    /// The org.
    pub org: String,
    /// The version (from 1).
    pub version: u32,
    /// `nonce || XChaCha20-Poly1305(key)`, AAD = org and version.
    pub wrapped: Vec<u8>,
    /// Unix seconds.
    pub created: u64,
    /// When it was retired, unix seconds.
    pub retired: Option<u64>,
}

impl RootKeyVersion {
    /// A live version.
    pub fn new(org: impl Into<String>, version: u32, wrapped: Vec<u8>, created: u64) -> Self {
        RootKeyVersion {
            org: org.into(),
            version,
            wrapped,
            created,
            retired: None,
        }
    }
}

impl std::fmt::Debug for RootKeyVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootKeyVersion")
            .field("org", &self.org)
            .field("version", &self.version)
            .field("created", &self.created)
            .field("retired", &self.retired)
            .finish_non_exhaustive()
    }
}
