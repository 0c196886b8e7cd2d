//! OAuth clients (docs/OAUTH.md): integrations registered in an org, to which people
//! grant narrowed macaroons by consent instead of pasting tokens.

use crate::token::TokenId;

/// An integration registered in an org.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClient {
    /// The org.
    pub org: String,
    /// Its `client_id` (`mvc_` and 32 hex digits), unique across orgs.
    pub id: String,
    /// Its name, shown to people on the consent page.
    pub name: String,
    /// Where codes may be sent: each compared exactly, but that a loopback `http`
    /// address may use any port (RFC 8252).
    pub redirect_uris: Vec<String>,
    /// SHA-256 of its secret, for a confidential client; `None` for a public one
    /// (which must use PKCE, as every client must).
    pub secret_hash: Option<[u8; 32]>,
    /// Whether it may ask for `reveal` (nothing maps to it otherwise).
    pub allow_reveal: bool,
    /// Unix seconds.
    pub created: u64,
    /// The token that registered it.
    pub created_by: Option<TokenId>,
}

impl OAuthClient {
    /// A public client has no secret.
    pub fn is_public(&self) -> bool {
        self.secret_hash.is_none()
    }
}
