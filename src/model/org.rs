//! An org and its settings.

/// An org: the unit that owns root keys, tokens and (later) secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Org {
    /// Its name, `[a-z0-9][a-z0-9-]{0,62}`.
    pub name: String,
    /// Unix seconds.
    pub created: u64,
    /// The root-key version used for minting.
    pub current_key: u32,
    /// Longest lifetime of a token minted in it, seconds.
    pub max_expiry_secs: Option<u64>,
    /// How long the ledger keeps a token's record after it expired or was revoked,
    /// seconds (`None`: for ever).
    pub ledger_retention_secs: Option<u64>,
}

impl Org {
    /// A new org whose first root key is version 1, with no maximum expiry.
    pub fn new(name: impl Into<String>, created: u64) -> Self {
        Org {
            name: name.into(),
            created,
            current_key: 1,
            max_expiry_secs: None,
            ledger_retention_secs: None,
        }
    }
}
