//! The JSON bodies of the HTTP API (docs/API.md), shared by the server and the CLI client.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::caveats::{AccessSpec, Caveat, Denial, Timestamp};
use crate::token::{TokenId, Verified};

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
}

/// Error bodies: `{"error": {...}}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
    /// Present on 403.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denial: Option<DenialBody>,
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
}

/// `PATCH /v1/orgs/{org}`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrgRequest {
    /// New maximum expiry (null: none). Required, so that `{}` changes nothing by accident.
    #[serde(deserialize_with = "Option::deserialize")]
    pub max_expiry_secs: Option<u64>,
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
}

/// 201 answer of a mint.
#[derive(Serialize, Deserialize)]
pub struct MintResponse {
    /// The new token (shown once).
    pub token: String,
    /// Its ledger record.
    pub record: TokenRecordBody,
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
    /// When it expires.
    pub expires: String,
    /// First 12 hex digits of SHA-256 over the minted text.
    pub fingerprint: String,
    /// When it was revoked.
    pub revoked: Option<String>,
    /// Its last use.
    pub last_used: Option<LastUsedBody>,
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
    /// Where the request came from.
    pub source_ip: Option<String>,
    /// `ok` or `denied`.
    pub outcome: String,
    /// Details (never a token, key or secret).
    pub detail: String,
}

/// `GET /v1/orgs/{org}/audit`.
#[derive(Debug, Serialize, Deserialize)]
pub struct AuditList {
    /// Events, oldest first.
    pub events: Vec<AuditEventBody>,
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

impl std::fmt::Debug for MintResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintResponse")
            .field("token", &REDACTED)
            .field("record", &self.record)
            .finish()
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
