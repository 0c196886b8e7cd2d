//! The JSON bodies of the HTTP API (docs/API.md), shared by the server and the CLI
//! client. Answers are built from the domain records (`model/`) by `From` impls here.

mod apps;
mod secrets;
mod third_parties;

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::authority::{
    AuditPage, Minted, Readiness, RetirePreview, Revoked, Rotated, TokenDetail,
};
use crate::caveats::{AccessSpec, Caveat, Denial, Timestamp, format_time};
use crate::model::{AuditEvent, LastUsed, Org, RootKeyVersion, TokenRecord, TokenView};
use crate::token::{TokenId, Verified};

pub use apps::{AppBody, AppList, CreateAppRequest, DeleteAppRequest, DeletedAppBody};
pub use secrets::{
    AllowedEnvBody, DestroyRequest, DestroyResponse, ExpiringBody, HistoryBody, KeyStatusBody,
    RevealAnswer, RevealResponse, RollbackRequest, SecretBody, SecretList, SecretsVersionBody,
    SetBody, UnsetBody, VersionBody, WithheldBody, WithheldScope, WriteSecretsRequest,
    WriteSecretsResponse, WrittenBody,
};
pub use third_parties::{
    AddThirdPartyRequest, DependentBody, DischargeRequest, DischargeResponse, PublishedKeyBody,
    PublishedKeySet, RemoveThirdPartyRequest, RequirementBody, RetireKeyRequest, RetireKeyResponse,
    SUITE, ThirdPartyBody, ThirdPartyKeyBody, ThirdPartyList,
};

/// `POST /v1/verify`. The token borrows from the request body where it can.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest<'a> {
    /// The bundle text, `mvt_…`.
    #[serde(borrow)]
    pub token: std::borrow::Cow<'a, str>,
    /// The access to decide; without it only the token itself is checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<AccessSpec>,
    /// The address the request being decided came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<IpAddr>,
}

/// Which caveat denied, and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DenialBody {
    /// 1-based position among the effective caveats (0: the identifier's org).
    pub index: usize,
    /// The caveat's canonical text.
    pub caveat: String,
    /// Why it denies.
    pub reason: String,
}

impl From<Denial> for DenialBody {
    fn from(d: Denial) -> Self {
        DenialBody {
            index: d.index,
            caveat: d.caveat,
            reason: d.reason,
        }
    }
}

/// 200 answer of `POST /v1/verify`.
#[derive(Debug, Serialize, Deserialize)]
pub struct VerifyResponse {
    /// Whether every caveat allows the access (true when no access was given).
    pub allowed: bool,
    /// The token's id (32 hex digits).
    pub token_id: String,
    /// Its org.
    pub org: String,
    /// The root-key version that signed it.
    pub key_version: u32,
    /// The effective expiry, if any.
    pub expires: Option<String>,
    /// Every effective caveat, canonical text, in order.
    pub caveats: Vec<String>,
    /// Present when denied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denial: Option<DenialBody>,
    /// The token's `secret =` patterns, one list per caveat, when it has any: a
    /// secret's name is allowed when every list has a pattern that matches it (`*` at
    /// the end matches any rest). Absent: every name. A relying service filters with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<Vec<Vec<String>>>,
}

/// Error bodies: `{"error": {...}}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
    /// Present on 403.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denial: Option<DenialBody>,
    /// Present on a 409 `version_conflict`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<ConflictBody>,
}

/// A failed check-and-set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConflictBody {
    /// The secret.
    pub name: String,
    /// Its version now (0: not set).
    pub current_version: u64,
    /// The version the request expected.
    pub expected_version: u64,
}

/// A stable code and a human message.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable snake_case code.
    pub code: String,
    /// For people.
    pub message: String,
}

/// `POST /v1/orgs`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOrgRequest {
    /// The new org's name.
    pub name: String,
    /// Lifetime of its first org token, seconds (default 90 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_secs: Option<u64>,
}

/// `POST /v1/orgs/{org}/org-token` (the operator): a fresh org token for the org.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueOrgTokenRequest {
    /// Its lifetime, seconds (default 90 days, cut to the org's maximum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_secs: Option<u64>,
}

/// `GET /v1/orgs` (the operator).
#[derive(Debug, Serialize, Deserialize)]
pub struct OrgList {
    /// Every org, by name.
    pub orgs: Vec<OrgBody>,
}

/// `POST /v1/tokens/{id}/rotate`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// How long the old token keeps working beside the new one, seconds (default 0).
    #[serde(default)]
    pub overlap_secs: u64,
    /// The new token's lifetime, seconds (default: the old one's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_secs: Option<u64>,
}

/// The answer of a rotation.
#[derive(Serialize, Deserialize)]
pub struct RotateResponse {
    /// The new token (shown once).
    pub token: String,
    /// Its ledger record.
    pub record: TokenRecordBody,
    /// The old token's record (revoked from `old_ends` on).
    pub replaced: TokenRecordBody,
    /// When the old token and every attenuated copy of it stop working.
    pub old_ends: String,
    /// How many tokens minted by the old one moved under the new one.
    pub moved_children: usize,
}

/// `POST /v1/orgs/{org}/keys/{version}/retire` (the body is optional).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetireRequest {
    /// Go ahead even though live tokens minted under the version stop working.
    #[serde(default)]
    pub confirm: bool,
}

/// `GET /v1/orgs/{org}/keys/{version}`: a version and what retiring it would stop.
#[derive(Debug, Serialize, Deserialize)]
pub struct KeyDetail {
    /// The version.
    pub key: KeyBody,
    /// The live tokens minted under it.
    pub live_tokens: Vec<TokenRecordBody>,
}

/// 201 answer of `POST /v1/orgs`.
#[derive(Serialize, Deserialize)]
pub struct CreateOrgResponse {
    /// The org's name.
    pub org: String,
    /// An `org` token for it.
    pub token: String,
    /// That token's id.
    pub token_id: String,
    /// When it expires.
    pub expires: String,
}

/// An org's settings.
#[derive(Debug, Serialize, Deserialize)]
pub struct OrgBody {
    /// Its name.
    pub name: String,
    /// When it was created.
    pub created: String,
    /// The root-key version used for minting.
    pub current_key_version: u32,
    /// The longest expiry a token minted in it may have.
    pub max_expiry_secs: Option<u64>,
    /// How long expired and revoked tokens stay in its ledger (null: for ever).
    #[serde(default)]
    pub ledger_retention_secs: Option<u64>,
}

/// `PATCH /v1/orgs/{org}`: each field present is set (`null` removes it); at least one.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrgRequest {
    /// The longest lifetime of a token minted in the org, seconds.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_expiry_secs: Option<Option<u64>>,
    /// How long expired and revoked tokens stay in the ledger, seconds.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub ledger_retention_secs: Option<Option<u64>>,
}

/// A field that is present (`Some`), perhaps as `null` (`Some(None)`).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// `POST /v1/orgs/{org}/tokens`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MintRequest {
    /// `org`, `deploy`, `readonly` or `runtime`.
    pub kind: String,
    /// The app, for deploy and runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// A name for the ledger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Lifetime in seconds (default 90 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_secs: Option<u64>,
    /// A registered third party (of kind ci-oidc) whose discharge the token needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_ci: Option<String>,
    /// The conditions of its ticket (`claim repository_id = 123`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<String>,
}

/// `POST /v1/tokens/service`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceRequest {
    /// Its ledger name (default: the permission token's, with `-service`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// 201 answer of a mint.
#[derive(Serialize, Deserialize)]
pub struct MintResponse {
    /// The new token (shown once).
    pub token: String,
    /// Its ledger record.
    pub record: TokenRecordBody,
}

/// `POST /v1/orgs/{org}/oauth-clients`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddOAuthClientRequest {
    /// Its name, shown on the consent page.
    pub name: String,
    /// Where codes may be sent: https, or http to 127.0.0.1 or `[::1]` (any port).
    pub redirect_uris: Vec<String>,
    /// A public client (no secret; PKCE only).
    #[serde(default)]
    pub public: bool,
    /// It may ask for `reveal`.
    #[serde(default)]
    pub allow_reveal: bool,
}

/// An OAuth client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OAuthClientBody {
    /// Its `client_id`.
    pub client_id: String,
    /// The org.
    pub org: String,
    /// Its name.
    pub name: String,
    /// Where codes may be sent.
    pub redirect_uris: Vec<String>,
    /// Whether it is public (has no secret).
    pub public: bool,
    /// Whether it may ask for `reveal`.
    pub allow_reveal: bool,
    /// When it was registered.
    pub created: String,
}

impl From<&crate::model::OAuthClient> for OAuthClientBody {
    fn from(c: &crate::model::OAuthClient) -> Self {
        OAuthClientBody {
            client_id: c.id.clone(),
            org: c.org.clone(),
            name: c.name.clone(),
            redirect_uris: c.redirect_uris.clone(),
            public: c.is_public(),
            allow_reveal: c.allow_reveal,
            created: format_time(c.created),
        }
    }
}

/// 201 answer of `POST /v1/orgs/{org}/oauth-clients`.
#[derive(Serialize, Deserialize)]
pub struct AddOAuthClientResponse {
    /// The client.
    #[serde(flatten)]
    pub client: OAuthClientBody,
    /// A confidential client's secret (shown once; stored only as a hash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

impl std::fmt::Debug for AddOAuthClientResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddOAuthClientResponse")
            .field("client", &self.client)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| REDACTED),
            )
            .finish()
    }
}

/// An OAuth grant: what a person approved for a client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OAuthGrantBody {
    /// Its id (`mvg_…`).
    pub id: String,
    /// The client's `client_id`.
    pub client_id: String,
    /// The client's name.
    pub client_name: String,
    /// The approved scopes.
    pub scopes: Vec<String>,
    /// The token the person signed in with (the access tokens' parent).
    pub signed_in_token: String,
    /// When it was made.
    pub created: String,
    /// When it ends (the client must ask for consent again after).
    pub expires: String,
    /// The last code redemption, refresh or request with one of its access tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<String>,
    /// When it was revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<String>,
    /// Whether it still works.
    pub live: bool,
}

impl OAuthGrantBody {
    /// The body of `grant`, last used at `last_used`, `live` or not.
    pub fn new(grant: &crate::model::OAuthGrant, last_used: Option<u64>, live: bool) -> Self {
        OAuthGrantBody {
            id: grant.id.clone(),
            client_id: grant.client.clone(),
            client_name: grant.client_name.clone(),
            scopes: grant.scopes.clone(),
            signed_in_token: grant.parent.to_string(),
            created: format_time(grant.created),
            expires: format_time(grant.expires),
            last_used: last_used.map(format_time),
            revoked: grant.revoked.map(format_time),
            live,
        }
    }
}

/// `GET /v1/orgs/{org}/oauth-grants`.
#[derive(Debug, Serialize, Deserialize)]
pub struct OAuthGrantList {
    /// The grants the caller may revoke, newest first.
    pub grants: Vec<OAuthGrantBody>,
}

/// `GET /v1/orgs/{org}/oauth-clients`.
#[derive(Debug, Serialize, Deserialize)]
pub struct OAuthClientList {
    /// The org's clients.
    pub clients: Vec<OAuthClientBody>,
}

/// `POST /v1/tokens/{id}/revoke` and `/v1/tokens/self/revoke` (the body is optional).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// Revoke only this token; the tokens minted from it live on.
    #[serde(default)]
    pub orphan: bool,
    /// Change nothing: answer what the revocation would take with it.
    #[serde(default)]
    pub dry_run: bool,
}

/// The answer of a revocation: the token's record, and what went with it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RevokeResponse {
    /// The revoked token.
    #[serde(flatten)]
    pub record: TokenRecordBody,
    /// How many tokens minted from it (transitively) were revoked with it.
    pub revoked_descendants: usize,
    /// It was revoked already: nothing changed.
    pub already_revoked: bool,
    /// Only for a dry run: the live tokens minted from it (transitively) that would go
    /// with it, nearest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub would_revoke: Option<Vec<TokenRecordBody>>,
}

/// When, from where and with what a token was last used.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LastUsedBody {
    /// When.
    pub time: String,
    /// From which address.
    pub ip: Option<String>,
    /// With which user agent.
    pub user_agent: Option<String>,
}

/// A ledger record: everything about a token except the token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRecordBody {
    /// 32 hex digits.
    pub id: String,
    /// Its org.
    pub org: String,
    /// Its name.
    pub name: String,
    /// Its preset.
    pub kind: String,
    /// The app of a deploy or runtime token.
    pub app: Option<String>,
    /// Its caveats at minting.
    pub caveats: Vec<String>,
    /// The root-key version that signed it.
    pub key_version: u32,
    /// When it was minted.
    pub created: String,
    /// The id of the token that minted it.
    pub creator: Option<String>,
    /// Its parent in the lineage (revoking the parent revokes it); null for a root.
    #[serde(default)]
    pub parent: Option<String>,
    /// When it expires.
    pub expires: String,
    /// First 12 hex digits of SHA-256 over the minted text.
    pub fingerprint: String,
    /// When its revocation takes (or took) effect.
    pub revoked: Option<String>,
    /// `active`, `expired`, `revoked` or `key_retired`.
    #[serde(default)]
    pub status: String,
    /// Its last use.
    pub last_used: Option<LastUsedBody>,
}

/// `GET /v1/tokens/{id}`: one token and its place in the lineage.
#[derive(Debug, Serialize, Deserialize)]
pub struct TokenDetailBody {
    /// The token.
    pub record: TokenRecordBody,
    /// Its ancestors, its parent first.
    pub ancestors: Vec<TokenRecordBody>,
    /// The tokens it minted.
    pub children: Vec<TokenRecordBody>,
    /// The third parties whose discharges it needs, with their conditions.
    #[serde(default)]
    pub third_parties: Vec<RequirementBody>,
}

impl From<&TokenDetail> for TokenDetailBody {
    fn from(d: &TokenDetail) -> Self {
        TokenDetailBody {
            record: (&d.token).into(),
            ancestors: d.ancestors.iter().map(Into::into).collect(),
            children: d.children.iter().map(Into::into).collect(),
            third_parties: d.requirements.iter().map(Into::into).collect(),
        }
    }
}

/// `GET /v1/orgs/{org}/tokens`.
#[derive(Debug, Serialize, Deserialize)]
pub struct TokenList {
    /// The org's tokens, oldest first.
    pub tokens: Vec<TokenRecordBody>,
}

/// A root-key version (never the key).
#[derive(Debug, Serialize, Deserialize)]
pub struct KeyBody {
    /// Its version.
    pub version: u32,
    /// When it was made.
    pub created: String,
    /// When it was retired.
    pub retired: Option<String>,
    /// Whether it is used for minting.
    pub current: bool,
}

/// `GET /v1/orgs/{org}/keys`.
#[derive(Debug, Serialize, Deserialize)]
pub struct KeyList {
    /// Every version, oldest first.
    pub keys: Vec<KeyBody>,
}

/// One audit event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEventBody {
    /// Position in the org's log.
    pub seq: u64,
    /// When.
    pub time: String,
    /// Which org.
    pub org: String,
    /// What happened, e.g. `token.mint`.
    pub action: String,
    /// The acting token's id.
    pub actor: Option<String>,
    /// The acting token's name in the ledger (chosen by whoever minted it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_name: Option<String>,
    /// Where the request came from.
    pub source_ip: Option<String>,
    /// `ok` or `denied`.
    pub outcome: String,
    /// Details (never a token, key or secret).
    pub detail: String,
    /// How many times it happened (denials by one token, of one kind, in one window
    /// are one event); `time` and `detail` are the first's.
    #[serde(default = "one")]
    pub count: u64,
    /// When the last of them happened, if it happened more than once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_time: Option<String>,
}

fn one() -> u64 {
    1
}

/// `GET /v1/orgs/{org}/audit`.
#[derive(Debug, Serialize, Deserialize)]
pub struct AuditList {
    /// Events, oldest first.
    pub events: Vec<AuditEventBody>,
    /// Pass as `before` to read the page of older events; absent on the oldest page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub older: Option<String>,
    /// On the newest page and on a follow's answer: pass as `after` to wait for newer
    /// events (`audit --follow`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newer: Option<String>,
}

/// `GET /v1/ready`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReadyBody {
    /// `ready`, `stale`, `unavailable` or `draining` (shutting down: send no more).
    pub status: String,
    /// `redb` or `postgres`.
    pub backend: String,
    /// The last change-feed position applied.
    pub feed_position: u64,
    /// Seconds since the node last caught up with the feed.
    pub lag_secs: f64,
    /// Last-used times waiting for the background writer.
    pub queued_uses: usize,
    /// Audit events waiting for the background writer.
    pub queued_events: usize,
    /// Last-used times and events dropped so far because the queue was full.
    pub dropped: u64,
}

/// Serializes a value through its `Display`, straight into the output (no `String`).
pub struct DisplayStr<T>(pub T);

impl<T: std::fmt::Display> Serialize for DisplayStr<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// Serializes a slice as a list of `Display` strings.
pub struct DisplayList<'a, T>(pub &'a [T]);

impl<T: std::fmt::Display> Serialize for DisplayList<'_, T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(DisplayStr))
    }
}

/// The 200 answer of `POST /v1/verify` as the server writes it: the JSON of
/// [`VerifyResponse`], serialized from borrowed parts because it is the hot path.
#[derive(Serialize)]
pub struct VerifyAnswer<'a> {
    /// See [`VerifyResponse::allowed`].
    pub allowed: bool,
    /// See [`VerifyResponse::token_id`].
    pub token_id: DisplayStr<TokenId>,
    /// See [`VerifyResponse::org`].
    pub org: &'a str,
    /// See [`VerifyResponse::key_version`].
    pub key_version: u32,
    /// See [`VerifyResponse::expires`].
    pub expires: Option<DisplayStr<Timestamp>>,
    /// See [`VerifyResponse::caveats`].
    pub caveats: DisplayList<'a, Caveat<'a>>,
    /// See [`VerifyResponse::denial`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub denial: Option<DenialBody>,
    /// See [`VerifyResponse::secrets`].
    #[serde(skip_serializing_if = "SecretPatternLists::is_empty")]
    pub secrets: SecretPatternLists<'a>,
}

/// The `secret =` caveats among a token's, serialized as one list of patterns each.
pub struct SecretPatternLists<'a>(pub &'a [Caveat<'a>]);

impl SecretPatternLists<'_> {
    fn lists(&self) -> impl Iterator<Item = &crate::caveats::SecretPatterns<'_>> {
        self.0.iter().filter_map(|c| match c {
            Caveat::Secrets(p) => Some(p),
            _ => None,
        })
    }

    /// No `secret =` caveat: every name.
    pub fn is_empty(&self) -> bool {
        self.lists().next().is_none()
    }
}

impl Serialize for SecretPatternLists<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct List<'p>(&'p crate::caveats::SecretPatterns<'p>);
        impl Serialize for List<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.0.iter())
            }
        }
        s.collect_seq(self.lists().map(List))
    }
}

impl<'a> VerifyAnswer<'a> {
    /// The answer for a verified token and the denial of the access, if any.
    pub fn new(verified: &'a Verified<'a>, denial: Option<Denial>) -> Self {
        VerifyAnswer {
            allowed: denial.is_none(),
            token_id: DisplayStr(verified.token_id()),
            org: verified.org(),
            key_version: verified.key_version(),
            expires: verified.expires().map(|t| DisplayStr(Timestamp(t))),
            caveats: DisplayList(verified.caveats()),
            denial: denial.map(DenialBody::from),
            secrets: SecretPatternLists(verified.caveats()),
        }
    }
}

/// `Debug` for the bodies that carry a token: every field but the token.
const REDACTED: &str = "<redacted>";

impl std::fmt::Debug for VerifyRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyRequest")
            .field("token", &REDACTED)
            .field("access", &self.access)
            .field("source_ip", &self.source_ip)
            .finish()
    }
}

impl std::fmt::Debug for CreateOrgResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateOrgResponse")
            .field("org", &self.org)
            .field("token", &REDACTED)
            .field("token_id", &self.token_id)
            .field("expires", &self.expires)
            .finish()
    }
}

impl std::fmt::Debug for RotateResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotateResponse")
            .field("token", &REDACTED)
            .field("record", &self.record)
            .field("old_ends", &self.old_ends)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for MintResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintResponse")
            .field("token", &REDACTED)
            .field("record", &self.record)
            .finish()
    }
}

impl From<&Org> for OrgBody {
    fn from(o: &Org) -> Self {
        OrgBody {
            name: o.name.clone(),
            created: format_time(o.created),
            current_key_version: o.current_key,
            max_expiry_secs: o.max_expiry_secs,
            ledger_retention_secs: o.ledger_retention_secs,
        }
    }
}

impl KeyBody {
    /// A key version of `org`.
    pub fn new(k: &RootKeyVersion, org: &Org) -> Self {
        KeyBody {
            version: k.version,
            created: format_time(k.created),
            retired: k.retired.map(format_time),
            current: k.version == org.current_key,
        }
    }
}

impl From<&LastUsed> for LastUsedBody {
    fn from(u: &LastUsed) -> Self {
        LastUsedBody {
            time: format_time(u.time),
            ip: u.ip.map(|ip| ip.to_string()),
            user_agent: u.user_agent.clone(),
        }
    }
}

impl TokenRecordBody {
    pub(crate) fn new(r: &TokenRecord, status: &str, last_used: Option<&LastUsed>) -> Self {
        TokenRecordBody {
            id: r.id.to_string(),
            org: r.org.clone(),
            name: r.name.clone(),
            kind: r.kind.name().to_owned(),
            app: r.app.clone(),
            caveats: r.caveats.clone(),
            key_version: r.key_version,
            created: format_time(r.created),
            creator: r.creator.map(|c| c.to_string()),
            parent: r.parent.map(|p| p.to_string()),
            expires: format_time(r.expires),
            fingerprint: r.fingerprint.clone(),
            revoked: r.revoked.map(|rv| format_time(rv.effective)),
            status: status.to_owned(),
            last_used: last_used.map(LastUsedBody::from),
        }
    }
}

impl From<&TokenView> for TokenRecordBody {
    fn from(v: &TokenView) -> Self {
        TokenRecordBody::new(&v.entry.record, v.status.name(), v.entry.last_used.as_ref())
    }
}

impl From<&Minted> for MintResponse {
    fn from(m: &Minted) -> Self {
        MintResponse {
            token: m.token.expose().to_owned(),
            record: TokenRecordBody::new(&m.record, "active", None),
        }
    }
}

impl From<&Minted> for CreateOrgResponse {
    fn from(m: &Minted) -> Self {
        CreateOrgResponse {
            org: m.record.org.clone(),
            token: m.token.expose().to_owned(),
            token_id: m.record.id.to_string(),
            expires: format_time(m.record.expires),
        }
    }
}

impl From<&Rotated> for RotateResponse {
    fn from(r: &Rotated) -> Self {
        RotateResponse {
            token: r.minted.token.expose().to_owned(),
            record: TokenRecordBody::new(&r.minted.record, "active", None),
            replaced: TokenRecordBody::new(&r.replaced, "active", None),
            old_ends: format_time(r.ends),
            moved_children: r.moved,
        }
    }
}

impl From<&RetirePreview> for KeyDetail {
    fn from(p: &RetirePreview) -> Self {
        KeyDetail {
            key: KeyBody::new(&p.key, &p.org),
            live_tokens: p
                .live
                .iter()
                .map(|t| TokenRecordBody::new(t, "active", None))
                .collect(),
        }
    }
}

impl From<&Revoked> for RevokeResponse {
    fn from(r: &Revoked) -> Self {
        RevokeResponse {
            record: TokenRecordBody::new(&r.record, "revoked", None),
            revoked_descendants: r.descendants,
            already_revoked: r.already,
            would_revoke: None,
        }
    }
}

impl RevokeResponse {
    /// A dry run's answer: the token and what its revocation would take with it.
    pub fn preview(record: &TokenRecord, live: &[TokenRecord]) -> Self {
        let status = if record.revoked.is_some() {
            "revoked"
        } else {
            "active"
        };
        RevokeResponse {
            record: TokenRecordBody::new(record, status, None),
            revoked_descendants: 0,
            already_revoked: record.revoked.is_some(),
            would_revoke: Some(
                live.iter()
                    .map(|t| TokenRecordBody::new(t, "active", None))
                    .collect(),
            ),
        }
    }
}

impl AuditEventBody {
    fn new(e: &AuditEvent, actor_name: Option<&String>) -> Self {
        AuditEventBody {
            seq: e.seq,
            time: format_time(e.time),
            org: e.org.clone(),
            action: e.action.clone(),
            actor: e.actor.map(|a| a.to_string()),
            actor_name: actor_name.cloned(),
            source_ip: e.source_ip.map(|ip| ip.to_string()),
            outcome: e.outcome.name().to_owned(),
            detail: e.detail.clone(),
            count: e.count,
            last_time: (e.count > 1).then(|| format_time(e.last)),
        }
    }
}

impl From<&AuditPage> for AuditList {
    fn from(p: &AuditPage) -> Self {
        AuditList {
            events: p
                .events
                .iter()
                .map(|e| AuditEventBody::new(e, e.actor.and_then(|a| p.names.get(&a))))
                .collect(),
            older: p.older.clone(),
            newer: p.newer.clone(),
        }
    }
}

impl From<&Readiness> for ReadyBody {
    fn from(r: &Readiness) -> Self {
        let status = match (r.ready, r.draining, r.store_ok) {
            (true, _, _) => "ready",
            (false, true, _) => "draining",
            (false, false, false) => "unavailable",
            (false, false, true) => "stale",
        };
        ReadyBody {
            status: status.to_owned(),
            backend: r.backend.to_owned(),
            feed_position: r.position,
            lag_secs: (r.lag.as_secs_f64() * 10.0).round() / 10.0,
            queued_uses: r.queued.0,
            queued_events: r.queued.1,
            dropped: r.dropped.0 + r.dropped.1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_token() {
        let secret = "mvt_SECRETSECRET";
        let body = format!(r#"{{"token":"{secret}"}}"#);
        let req: VerifyRequest<'_> = serde_json::from_str(&body).unwrap();
        let org = CreateOrgResponse {
            org: "acme".into(),
            token: secret.into(),
            token_id: "00".into(),
            expires: "2027-01-01T00:00:00Z".into(),
        };
        for shown in [format!("{req:?}"), format!("{org:?}")] {
            assert!(
                !shown.contains(secret) && shown.contains(REDACTED),
                "{shown}"
            );
        }
    }
}
