//! Apps: the names an org's app-scoped secrets and tokens may use. An app exists only
//! once created (docs/API.md), so a typo is refused instead of starting a new scope.

use crate::token::TokenId;

/// An app of an org.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    /// The org.
    pub org: String,
    /// Its name.
    pub name: String,
    /// Unix seconds (0: registered by the upgrade that made apps explicit).
    pub created: u64,
    /// The token that created it (`None`: registered by that upgrade).
    pub created_by: Option<TokenId>,
}
