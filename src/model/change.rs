//! The change feed: what every node must apply to the state it keeps in memory.

use crate::token::TokenId;

/// One change other nodes must apply. Stored append-only: new kinds go at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// An org was created (with root key version 1).
    OrgCreated {
        /// The org.
        org: String,
    },
    /// A root-key version was added.
    KeyAdded {
        /// The org.
        org: String,
        /// The new version.
        version: u32,
    },
    /// A root-key version was retired: tokens minted under it no longer verify.
    KeyRetired {
        /// The org.
        org: String,
        /// The retired version.
        version: u32,
    },
    /// A token was revoked, taking effect at `effective` (unix seconds).
    Revoked {
        /// The token.
        token: TokenId,
        /// When the revocation takes effect.
        effective: u64,
        /// When the token expires anyway (after which the entry can go).
        expires: u64,
    },
    /// Secrets of an org (`app: None`) or of one app changed: the secrets versions moved.
    SecretsChanged {
        /// The org.
        org: String,
        /// The app, or `None` for the org's own secrets (every app's version moves).
        app: Option<String>,
    },
    /// An org's secrets keys changed (a rotation): cached keys must be read again.
    SecretKeysChanged {
        /// The org.
        org: String,
    },
    /// A third party of an org was added, changed (a key rotation) or removed.
    ThirdPartyChanged {
        /// The org.
        org: String,
        /// Its name.
        name: String,
    },
}

/// A change at its position in the feed: in a stream (docs/SCALING.md, "The change
/// feed"), where positions increase in commit order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEntry {
    /// Its stream: on PostgreSQL the org whose write published it (`""` for entries
    /// written before schema 7); on redb always `""`, the one stream.
    pub stream: String,
    /// Its position in the stream: increasing in commit order.
    pub seq: u64,
    /// The change.
    pub change: Change,
}
