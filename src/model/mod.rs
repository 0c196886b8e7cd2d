//! The domain records: what the store keeps and what API answers are built from. No I/O.
//!
//! These are not storage rows: `store/` has its own versioned row types and converts.
//! Records that will grow are `#[non_exhaustive]` and built with constructors.

mod app;
mod audit;
mod change;
mod key;
mod oauth;
mod org;
mod secret;
pub mod spans;
mod third_party;
mod token;

pub use app::App;
pub use audit::{Actor, AuditEvent, Outcome};
pub use change::{Change, FeedEntry};
pub use key::RootKeyVersion;
pub use oauth::{OAuthClient, OAuthGrant, OAuthKey, OAuthKeyKind};
pub use org::Org;
pub use secret::{Sealed, SecretHead, SecretKeys, SecretVersion};
pub use third_party::{
    Jwks, Requirement, ThirdParty, ThirdPartyKey, ThirdPartyKind, location_path,
};
pub use token::{
    LastUsed, LedgerEntry, Revocation, TokenKind, TokenRecord, TokenStatus, TokenView, UnknownKind,
};

/// A token's id (re-exported from the token core, where identifiers are defined).
pub use crate::token::TokenId;
