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

/// What a person approved for an OAuth client (schema 6): the caveats its access tokens
/// carry, under which token they are minted, and until when the client may refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthGrant {
    /// `mvg_` and 32 hex digits.
    pub id: String,
    /// The org (the client's, and the signed-in token's).
    pub org: String,
    /// The client's id.
    pub client: String,
    /// The client's name when the grant was made (kept for the record and the ledger).
    pub client_name: String,
    /// The token the person signed in with: the access tokens' lineage parent, so
    /// revoking it ends the grant and signing out of the dashboard does not.
    pub parent: TokenId,
    /// The parent's app, recorded on the access tokens.
    pub app: Option<String>,
    /// The approved scopes, canonical (docs/OAUTH.md, "Scopes").
    pub scopes: Vec<String>,
    /// The access tokens' caveats but their expiry, canonical text: what the signed-in
    /// token held, then what the approved scopes map to.
    pub caveats: Vec<String>,
    /// Unix seconds.
    pub created: u64,
    /// When the grant ends (no refresh after it): the person's choice, never past the
    /// signed-in token.
    pub expires: u64,
    /// The redirect URI of the authorization request, which the code's redemption must
    /// repeat.
    pub redirect_uri: String,
    /// The PKCE challenge: SHA-256 of the code verifier.
    pub challenge: [u8; 32],
    /// When the code stops being redeemable, unix seconds.
    pub code_expires: u64,
    /// The access tokens issued under it that may still be live, with their expiries,
    /// oldest first (expired ones are dropped at the next issue).
    pub tokens: Vec<(TokenId, u64)>,
    /// The last code redemption or refresh, unix seconds.
    pub last_used: Option<u64>,
    /// When it was revoked (by a person, by the client, or for a reused code or
    /// refresh token).
    pub revoked: Option<u64>,
}

impl OAuthGrant {
    /// Whether the client may still redeem or refresh it at `now` (its parent's
    /// revocation is checked when minting).
    pub fn is_live_at(&self, now: u64) -> bool {
        self.revoked.is_none() && now < self.expires
    }
}

/// What a one-time OAuth credential is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthKeyKind {
    /// An authorization code (60 s).
    Code,
    /// A refresh token (until its grant ends; spent by its one use).
    Refresh,
}

/// A code or refresh token, known only by its SHA-256 (schema 6). It is spent by
/// inserting its hash into the spent set, so of two redemptions one wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthKey {
    /// SHA-256 of the code or refresh token.
    pub hash: [u8; 32],
    /// Its grant.
    pub grant: String,
    /// What it is.
    pub kind: OAuthKeyKind,
    /// Kept until then (its grant's end), unix seconds.
    pub until: u64,
}
