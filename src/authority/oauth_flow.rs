//! The OAuth 2.0 authorization-code flow with PKCE (docs/OAUTH.md): checking an
//! authorization request, a person's consent (a grant and its code), and the token
//! endpoint (code redemption and refresh rotation). What happens to grants afterwards
//! (listing, revocation by people and by the client) is in `oauth_grants.rs`.
//!
//! Codes and refresh tokens are 32 random bytes, stored only as their SHA-256 and
//! spent by insert-if-absent in the same transaction that mints what they give: of two
//! redemptions one wins, and the loser finds the code spent, which revokes the grant
//! (a code or refresh token presented twice has leaked). Access tokens are `oauth`
//! macaroons minted under the token the person signed in with, with its caveats, the
//! approved scopes' and an hour's expiry.

use sha2::Digest as _;
use subtle::ConstantTimeEq as _;

use super::mint::NewToken;
use super::oauth::redirect_matches;
use super::oauth_scopes::{ScopeError, Scopes};
use super::{
    Authority, Classify, ErrorClass, MintError, Principal, RevokeError, RevokeOptions, Secret,
};
use crate::audit::{action, mint_detail};
use crate::caveats::{Caveat, Excerpt};
use crate::model::{
    Actor, AuditEvent, OAuthClient, OAuthGrant, OAuthKey, OAuthKeyKind, Outcome, TokenKind,
};
use crate::store::StoreError;

/// How long a code may be redeemed, seconds.
pub const CODE_LIFETIME: u64 = 60;
/// How long an access token lives (never past its grant), seconds.
pub const ACCESS_LIFETIME: u64 = 3600;
/// How long a grant lasts unless the person chooses less (never past the token they
/// signed in with), seconds.
pub const GRANT_LIFETIME: u64 = 30 * 86400;
/// Longest `state` carried back.
pub const MAX_STATE: usize = 512;
/// Most live access tokens one grant keeps: a refresh beyond them revokes the oldest,
/// so that a client refreshing in a loop neither piles up live tokens nor grows its
/// grant's record without bound.
pub const MAX_LIVE_TOKENS: usize = 8;

/// The parameters of an authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3).
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
pub struct AuthorizeParams {
    /// Must be `code`.
    pub response_type: Option<String>,
    /// The client.
    pub client_id: Option<String>,
    /// Where to send the code; may be left out by a client with one registered.
    pub redirect_uri: Option<String>,
    /// Space-separated scopes.
    pub scope: Option<String>,
    /// Carried back unchanged.
    pub state: Option<String>,
    /// BASE64URL(SHA-256(verifier)).
    pub code_challenge: Option<String>,
    /// Must be `S256`.
    pub code_challenge_method: Option<String>,
}

/// A checked authorization request.
#[derive(Debug, Clone)]
pub struct Authorization {
    /// The client.
    pub client: OAuthClient,
    /// Where the answer goes.
    pub redirect_uri: String,
    /// What it asks for.
    pub scopes: Scopes,
    /// The PKCE challenge.
    pub challenge: [u8; 32],
    /// The client's state, if any.
    pub state: Option<String>,
}

impl Authorization {
    /// The redirect URI with `params` added to its query.
    pub fn redirect_with(&self, params: &[(&str, &str)]) -> String {
        with_query(&self.redirect_uri, params, self.state.as_deref())
    }
}

/// `uri` with `params` (and `state`) appended to its query, form-encoded.
fn with_query(uri: &str, params: &[(&str, &str)], state: Option<&str>) -> String {
    let mut pairs: Vec<(&str, &str)> = params.to_vec();
    if let Some(state) = state {
        pairs.push(("state", state));
    }
    // Encoding pairs of strings cannot fail.
    let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{query}")
}

/// Why an authorization request is refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthorizeError {
    /// The client or redirect URI cannot be trusted: shown to the person, never
    /// redirected to (RFC 6749 §4.1.2.1).
    #[error("{0}")]
    Show(String),
    /// Sent back to the client's redirect URI with its RFC error code.
    #[error("{description}")]
    Redirect {
        /// The redirect URI with the error in its query.
        to: String,
        /// The RFC 6749 error code.
        error: &'static str,
        /// What is wrong.
        description: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Classify for AuthorizeError {
    fn class(&self) -> ErrorClass {
        match self {
            AuthorizeError::Show(_) | AuthorizeError::Redirect { .. } => ErrorClass::BadRequest,
            AuthorizeError::Store(e) => e.class(),
        }
    }
}

/// Why a consent could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    /// Only a dashboard session consents.
    #[error("only a dashboard session can approve an OAuth client")]
    NotASession,
    /// The client belongs to another org than the signed-in token.
    #[error("this client belongs to another org")]
    OtherOrg,
    /// The narrowed scopes cannot be granted.
    #[error(transparent)]
    Scope(#[from] ScopeError),
    /// The signed-in token is revoked or expired.
    #[error("the token you signed in with is revoked or expired")]
    SignedInTokenEnded,
    /// No randomness.
    #[error("no randomness for a code")]
    Random,
    /// Minting failed.
    #[error(transparent)]
    Mint(#[from] MintError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Classify for ConsentError {
    fn class(&self) -> ErrorClass {
        match self {
            ConsentError::NotASession
            | ConsentError::OtherOrg
            | ConsentError::SignedInTokenEnded => ErrorClass::Denied,
            ConsentError::Scope(_) => ErrorClass::BadRequest,
            ConsentError::Random => ErrorClass::Internal,
            ConsentError::Mint(e) => e.class(),
            ConsentError::Store(e) => e.class(),
        }
    }
}

/// A client's credentials at the token and revocation endpoints.
#[derive(Clone)]
pub struct ClientCredentials {
    /// Its `client_id`.
    pub id: String,
    /// Its secret (confidential clients).
    pub secret: Option<String>,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("id", &self.id)
            .field("secret", &self.secret.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

/// What the token endpoint is asked.
pub enum TokenRequest {
    /// `grant_type=authorization_code`.
    Code {
        /// The code.
        code: String,
        /// The redirect URI of the authorization request.
        redirect_uri: Option<String>,
        /// The PKCE verifier.
        verifier: Option<String>,
    },
    /// `grant_type=refresh_token`.
    Refresh {
        /// The refresh token.
        token: String,
    },
}

/// What the token endpoint gives.
#[derive(Debug)]
pub struct Issued {
    /// The access token (`mvt_…`).
    pub access_token: Secret,
    /// Its lifetime, seconds.
    pub expires_in: u64,
    /// The refresh token, to be used once.
    pub refresh_token: Secret,
    /// The granted scopes.
    pub scope: String,
}

/// Why the token or revocation endpoint refused (RFC 6749 §5.2).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Unknown client, wrong or missing secret, or a secret for a public client.
    #[error("client authentication failed")]
    InvalidClient,
    /// A parameter is missing or malformed.
    #[error("{0}")]
    InvalidRequest(&'static str),
    /// The grant type is not one this server issues.
    #[error("grant_type must be authorization_code or refresh_token")]
    UnsupportedGrantType,
    /// The code or refresh token is unknown, expired, spent, another client's, or its
    /// redirect URI or verifier does not match.
    #[error("{0}")]
    InvalidGrant(&'static str),
    /// No randomness.
    #[error("no randomness for a refresh token")]
    Random,
    /// Minting failed.
    #[error(transparent)]
    Mint(#[from] MintError),
    /// Revoking failed.
    #[error(transparent)]
    Revoke(#[from] RevokeError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl TokenError {
    /// The RFC 6749 error code.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::InvalidClient => "invalid_client",
            TokenError::InvalidRequest(_) => "invalid_request",
            TokenError::UnsupportedGrantType => "unsupported_grant_type",
            TokenError::InvalidGrant(_) => "invalid_grant",
            TokenError::Mint(MintError::MinterRevoked) => "invalid_grant",
            TokenError::Random
            | TokenError::Mint(_)
            | TokenError::Revoke(_)
            | TokenError::Store(_) => match self.class() {
                ErrorClass::Unavailable => "temporarily_unavailable",
                _ => "server_error",
            },
        }
    }
}

impl Classify for TokenError {
    fn class(&self) -> ErrorClass {
        match self {
            TokenError::InvalidClient => ErrorClass::Unauthenticated,
            TokenError::InvalidRequest(_)
            | TokenError::UnsupportedGrantType
            | TokenError::InvalidGrant(_)
            | TokenError::Mint(MintError::MinterRevoked) => ErrorClass::BadRequest,
            TokenError::Random => ErrorClass::Internal,
            TokenError::Mint(e) => e.class(),
            TokenError::Revoke(e) => e.class(),
            TokenError::Store(e) => e.class(),
        }
    }
}

/// How a code redemption or refresh ended.
enum Issue {
    /// Tokens issued.
    Issued(Issued),
    /// The code or refresh token was spent already: the grant must be revoked.
    Reused,
}

/// 32 random bytes, base64url, after `prefix`.
fn random_text(prefix: &str) -> Option<String> {
    use base64::Engine as _;
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).ok()?;
    Some(format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    ))
}

/// SHA-256 of a code or refresh token.
pub(super) fn hash(text: &str) -> [u8; 32] {
    sha2::Sha256::digest(text.as_bytes()).into()
}

/// Whether `v` is a PKCE verifier: 43 to 128 unreserved characters (RFC 7636 §4.1).
fn is_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

impl Authority {
    /// Checks an authorization request: first the client and redirect URI (a fault
    /// there is shown, never redirected to), then everything else (a fault there goes
    /// back to the client with its RFC error and the unchanged `state`).
    pub async fn check_authorization(
        &self,
        p: &AuthorizeParams,
    ) -> Result<Authorization, AuthorizeError> {
        let show = |why: &str| Err(AuthorizeError::Show(why.to_owned()));
        let Some(id) = p.client_id.clone().filter(|id| id.len() <= 64) else {
            return show("this request names no client (client_id)");
        };
        let Some(client) = self.store.read(move |r| r.oauth_client(&id)).await? else {
            return show("no OAuth client has this client_id");
        };
        let redirect_uri = match &p.redirect_uri {
            Some(uri) if redirect_matches(&client, uri) => uri.clone(),
            Some(_) => return show("this redirect_uri is not one the client registered"),
            None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
            None => return show("this request names no redirect_uri"),
        };
        let state = p.state.clone().filter(|s| s.len() <= MAX_STATE);
        let refuse = |error: &'static str, description: String| {
            let to = with_query(
                &redirect_uri,
                &[("error", error), ("error_description", &description)],
                state.as_deref(),
            );
            Err(AuthorizeError::Redirect {
                to,
                error,
                description,
            })
        };
        if p.state.as_ref().is_some_and(|s| s.len() > MAX_STATE) {
            return refuse(
                "invalid_request",
                format!("state is longer than {MAX_STATE} bytes"),
            );
        }
        if p.response_type.as_deref() != Some("code") {
            return refuse(
                "unsupported_response_type",
                "response_type must be code".into(),
            );
        }
        let Some(challenge) = &p.code_challenge else {
            return refuse(
                "invalid_request",
                "PKCE is required: send code_challenge with code_challenge_method=S256".into(),
            );
        };
        if p.code_challenge_method.as_deref() != Some("S256") {
            return refuse(
                "invalid_request",
                "code_challenge_method must be S256 (plain is refused)".into(),
            );
        }
        let decoded = {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(challenge)
        };
        let Some(challenge) = decoded.ok().and_then(|d| <[u8; 32]>::try_from(d).ok()) else {
            return refuse(
                "invalid_request",
                "code_challenge must be the base64url SHA-256 of the verifier".into(),
            );
        };
        let scopes = match Scopes::parse(p.scope.as_deref().unwrap_or(""), client.allow_reveal) {
            Ok(s) => s,
            Err(e) => return refuse("invalid_scope", e.to_string()),
        };
        Ok(Authorization {
            client,
            redirect_uri,
            scopes,
            challenge,
            state,
        })
    }

    /// Records a person's consent through dashboard session `who`: a grant of `scopes`
    /// (what they kept of the request) for `lifetime` seconds (never past the token
    /// they signed in with), and its code; the code.
    pub async fn approve_authorization(
        &self,
        who: &Principal,
        auth: &Authorization,
        scopes: &Scopes,
        lifetime: u64,
    ) -> Result<Secret, ConsentError> {
        if self.session_of(who).await?.is_none() {
            return Err(ConsentError::NotASession);
        }
        if auth.client.org != who.org() {
            return Err(ConsentError::OtherOrg);
        }
        if !scopes.is_within(&auth.scopes) {
            return Err(ConsentError::Scope(ScopeError::Widened));
        }
        let minter = self.minter_of(who).await?;
        let parent = self
            .read_token(&minter.id)
            .await?
            .ok_or(ConsentError::SignedInTokenEnded)?;
        let now = self.clock.now();
        let mut expires = now.saturating_add(lifetime.clamp(60, GRANT_LIFETIME));
        if let Some(limit) = minter.expires {
            expires = expires.min(limit);
        }
        if expires <= now || parent.is_revoked_at(now) || parent.expires <= now {
            return Err(ConsentError::SignedInTokenEnded);
        }
        let mut caveats: Vec<String> = minter.held.iter().map(ToString::to_string).collect();
        caveats.extend(scopes.caveats()?.iter().map(ToString::to_string));
        let code = random_text("mvo_").ok_or(ConsentError::Random)?;
        let id: String = random_text("")
            .ok_or(ConsentError::Random)?
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(32)
            .collect();
        let grant = OAuthGrant {
            id: format!("mvg_{id}"),
            org: auth.client.org.clone(),
            client: auth.client.id.clone(),
            client_name: auth.client.name.clone(),
            parent: minter.id,
            app: parent.app.clone(),
            scopes: scopes.iter().map(|s| s.text()).collect(),
            caveats,
            created: now,
            expires,
            redirect_uri: auth.redirect_uri.clone(),
            challenge: auth.challenge,
            code_expires: now + CODE_LIFETIME,
            tokens: Vec::new(),
            last_used: None,
            revoked: None,
        };
        let key = OAuthKey {
            hash: hash(&code),
            grant: grant.id.clone(),
            kind: OAuthKeyKind::Code,
            until: expires,
        };
        let event = AuditEvent::new(
            &grant.org,
            action::OAUTH_GRANT,
            who.actor(),
            Outcome::Ok,
            format!(
                "OAuth client \"{}\" ({}) granted {} ({}) until {}",
                Excerpt(grant.client_name.as_bytes()),
                grant.client,
                scopes.text(),
                grant.id,
                crate::caveats::format_time(expires)
            ),
            now,
        );
        let parent_id = minter.id;
        self.store
            .write(move |tx| {
                if tx.token(&parent_id)?.is_none_or(|p| p.revoked.is_some()) {
                    return Err(ConsentError::SignedInTokenEnded);
                }
                tx.put_oauth_grant(&grant)?;
                tx.put_oauth_key(&key)?;
                tx.append_audit(&event)?;
                Ok(())
            })
            .await?;
        Ok(Secret::new(code))
    }

    /// When the token that session `who` was signed in with ends (what a grant may not
    /// outlive), if it ends.
    pub async fn grant_limit(&self, who: &Principal) -> Result<Option<u64>, StoreError> {
        Ok(self.minter_of(who).await?.expires)
    }

    /// The client that `creds` authenticate.
    pub(super) async fn oauth_client_of(
        &self,
        creds: &ClientCredentials,
    ) -> Result<OAuthClient, TokenError> {
        let id = creds.id.clone();
        if id.is_empty() || id.len() > 64 {
            return Err(TokenError::InvalidClient);
        }
        let client = self
            .store
            .read(move |r| r.oauth_client(&id))
            .await?
            .ok_or(TokenError::InvalidClient)?;
        match (&client.secret_hash, &creds.secret) {
            (None, None) => Ok(client),
            (Some(want), Some(given)) if bool::from(hash(given).ct_eq(want)) => Ok(client),
            _ => Err(TokenError::InvalidClient),
        }
    }

    /// The token endpoint: redeems a code or rotates a refresh token for the client
    /// that `creds` authenticate.
    pub async fn oauth_token(
        &self,
        creds: &ClientCredentials,
        req: TokenRequest,
    ) -> Result<Issued, TokenError> {
        let client = self.oauth_client_of(creds).await?;
        let now = self.clock.now();
        let (presented, kind) = match &req {
            TokenRequest::Code { code, .. } => (code.as_str(), OAuthKeyKind::Code),
            TokenRequest::Refresh { token } => (token.as_str(), OAuthKeyKind::Refresh),
        };
        let what = match kind {
            OAuthKeyKind::Code => "unknown code",
            OAuthKeyKind::Refresh => "unknown refresh token",
        };
        let h = hash(presented);
        let grant = self
            .grant_of(h, kind, &client)
            .await?
            .ok_or(TokenError::InvalidGrant(what))?;
        if let TokenRequest::Code {
            redirect_uri,
            verifier,
            ..
        } = &req
        {
            if now >= grant.code_expires {
                return Err(TokenError::InvalidGrant("the code has expired"));
            }
            let repeated = match redirect_uri {
                Some(uri) => *uri == grant.redirect_uri,
                None => client.redirect_uris.len() == 1,
            };
            if !repeated {
                return Err(TokenError::InvalidGrant(
                    "redirect_uri differs from the authorization request's",
                ));
            }
            let verifier = verifier.as_deref().ok_or(TokenError::InvalidRequest(
                "code_verifier is required (PKCE)",
            ))?;
            if !is_verifier(verifier) {
                return Err(TokenError::InvalidRequest(
                    "code_verifier must be 43 to 128 unreserved characters",
                ));
            }
            if !bool::from(hash(verifier).ct_eq(&grant.challenge)) {
                return Err(TokenError::InvalidGrant(
                    "code_verifier does not match the code_challenge",
                ));
            }
        }
        if !grant.is_live_at(now) {
            return Err(TokenError::InvalidGrant("the grant has ended"));
        }
        match self.issue(&grant, h).await? {
            Issue::Issued(issued) => Ok(issued),
            Issue::Reused => {
                let why = match kind {
                    OAuthKeyKind::Code => "code used twice",
                    OAuthKeyKind::Refresh => "refresh token used twice",
                };
                self.end_grant(&grant.id, Actor::default(), why).await?;
                Err(TokenError::InvalidGrant(match kind {
                    OAuthKeyKind::Code => "the code was used already: what it gave is revoked",
                    OAuthKeyKind::Refresh => {
                        "the refresh token was used already: the grant is revoked"
                    }
                }))
            }
        }
    }

    /// Spends the code or refresh token `spent` and, if it was not spent before, mints
    /// an access token and a new refresh token under `grant`, in one transaction.
    async fn issue(&self, grant: &OAuthGrant, spent: [u8; 32]) -> Result<Issue, TokenError> {
        let org = self
            .read_org(&grant.org)
            .await?
            .ok_or(MintError::OrgNotFound)?;
        let now = self.clock.now();
        let expires = now.saturating_add(ACCESS_LIFETIME).min(grant.expires);
        let mut caveats = Vec::with_capacity(grant.caveats.len() + 1);
        for text in &grant.caveats {
            let caveat = Caveat::parse(text)
                .map_err(|_| StoreError::Corrupt("an OAuth grant's caveats".into()))?;
            caveats.push(caveat.into_owned());
        }
        caveats.push(Caveat::expires(expires));
        let key = self.minting_key(&org).await?;
        let minted = self
            .build_token(
                &key,
                &NewToken {
                    org: &org.name,
                    key_version: org.current_key,
                    kind: TokenKind::OAuth,
                    app: grant.app.as_deref(),
                    name: &grant.client_name,
                    caveats: &caveats,
                    creator: Some(grant.parent),
                    now,
                    expires,
                    third_party: None,
                },
            )
            .map_err(MintError::from)?;
        let refresh = random_text("mvr_").ok_or(TokenError::Random)?;
        let refresh_key = OAuthKey {
            hash: hash(&refresh),
            grant: grant.id.clone(),
            kind: OAuthKeyKind::Refresh,
            until: grant.expires,
        };
        let event = AuditEvent::new(
            &grant.org,
            action::TOKEN_MINT,
            Actor::default(),
            Outcome::Ok,
            format!(
                "{} (issued to OAuth client {} by grant {})",
                mint_detail(&minted.record),
                grant.client,
                grant.id
            ),
            now,
        );
        let (record, id, until) = (minted.record.clone(), grant.id.clone(), grant.expires);
        let done = self
            .store
            .write(move |tx| {
                if !tx.spend_oauth_key(&spent, until)? {
                    return Ok(false);
                }
                let mut grant = tx
                    .oauth_grant(&id)?
                    .filter(|g| g.is_live_at(now))
                    .ok_or(TokenError::InvalidGrant("the grant has ended"))?;
                // As for any mint: a revocation committed meanwhile leaves no child.
                if tx.token(&grant.parent)?.is_none_or(|p| p.revoked.is_some()) {
                    return Err(MintError::MinterRevoked.into());
                }
                tx.put_token(&record)?;
                grant.tokens.retain(|(_, e)| *e > now);
                while grant.tokens.len() >= MAX_LIVE_TOKENS {
                    let (oldest, _) = grant.tokens.remove(0);
                    super::revoke::revoke_one(
                        tx,
                        &oldest,
                        RevokeOptions::default(),
                        now,
                        Actor::default(),
                    )?;
                }
                grant.tokens.push((record.id, record.expires));
                grant.last_used = Some(now);
                tx.put_oauth_grant(&grant)?;
                tx.put_oauth_key(&refresh_key)?;
                tx.append_audit(&event)?;
                Ok::<_, TokenError>(true)
            })
            .await?;
        self.apply_committed(&done.changes).await;
        if !done.value {
            return Ok(Issue::Reused);
        }
        Ok(Issue::Issued(Issued {
            access_token: minted.token,
            expires_in: expires.saturating_sub(now),
            refresh_token: Secret::new(refresh),
            scope: grant.scopes.join(" "),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verifier_is_43_to_128_unreserved_characters() {
        assert!(is_verifier(&"a".repeat(43)));
        assert!(is_verifier(&"A-._~9".repeat(20)));
        assert!(!is_verifier(&"a".repeat(42)));
        assert!(!is_verifier(&"a".repeat(129)));
        assert!(!is_verifier(&format!("{}+", "a".repeat(43))));
    }

    #[test]
    fn answers_are_added_to_the_redirect_query() {
        assert_eq!(
            with_query("https://a.example/cb", &[("code", "x y")], Some("s&t")),
            "https://a.example/cb?code=x+y&state=s%26t"
        );
        assert_eq!(
            with_query(
                "https://a.example/cb?k=1",
                &[("error", "access_denied")],
                None
            ),
            "https://a.example/cb?k=1&error=access_denied"
        );
    }
}
