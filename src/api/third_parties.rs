//! Bodies of `/v1/orgs/{org}/third-parties` and of the published keys at a location.

use serde::{Deserialize, Serialize};

use crate::authority::{PublishedKey, RetiredKey, ThirdPartyDetail};
use crate::caveats::format_time;
use crate::model::{Jwks, Requirement, ThirdParty};

/// The HPKE suite tickets are sealed with (RFC 9180 names).
pub const SUITE: [&str; 3] = [
    "DHKEM(X25519, HKDF-SHA256)",
    "HKDF-SHA256",
    "ChaCha20Poly1305",
];

/// `POST /v1/orgs/{org}/third-parties`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddThirdPartyRequest {
    /// Its name in the org.
    pub name: String,
    /// `ci-oidc` (the only kind).
    pub kind: String,
    /// Where discharges are obtained: this server's URL and a path of its own.
    pub location: String,
    /// The OIDC issuer.
    pub issuer: String,
    /// The audience ID tokens must name.
    pub audience: String,
    /// The JWKS document itself (what `--jwks FILE` reads) …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<String>,
    /// … or an https URL to fetch it from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
}

/// A third party (never its private key).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThirdPartyBody {
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: String,
    /// Where discharges are obtained.
    pub location: String,
    /// The OIDC issuer.
    pub issuer: String,
    /// The audience.
    pub audience: String,
    /// The JWKS URL, or null when the document was given at registration.
    pub jwks_url: Option<String>,
    /// The id of the key new tickets are sealed to.
    pub key_id: String,
    /// That key, `mv3pk_…`.
    pub public_key: String,
    /// Every key it holds, oldest first; the last is the current one. Older keys keep
    /// opening the tickets sealed to them until retired.
    pub keys: Vec<ThirdPartyKeyBody>,
    /// When it was registered.
    pub created: String,
    /// The tokens known to need it (`show` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependents: Vec<DependentBody>,
}

/// One key of a third party.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThirdPartyKeyBody {
    /// 16 hex digits (named in the clear part of each ticket sealed to it).
    pub key_id: String,
    /// `mv3pk_…`.
    pub public_key: String,
    /// Whether new tickets are sealed to it.
    pub current: bool,
    /// When it was made.
    pub created: String,
    /// Live tokens known to hold tickets sealed to it (`show` only; 0 elsewhere).
    #[serde(default)]
    pub live_tokens: usize,
}

/// A ledger token that needs a third party.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DependentBody {
    /// 32 hex digits.
    pub token_id: String,
    /// The key its ticket is sealed to.
    pub key_id: String,
    /// Its ledger name, or null when it has left the ledger.
    pub name: Option<String>,
    /// Its status (`active`, …), or `gone`.
    pub status: String,
    /// The conditions of its third-party caveat.
    pub conditions: Vec<String>,
}

/// `GET /v1/orgs/{org}/third-parties`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThirdPartyList {
    /// By name.
    pub third_parties: Vec<ThirdPartyBody>,
}

/// `DELETE /v1/orgs/{org}/third-parties/{name}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveThirdPartyRequest {
    /// Remove it even though live tokens need it.
    #[serde(default)]
    pub force: bool,
}

/// `POST /v1/orgs/{org}/third-parties/{name}/keys/{key_id}/retire`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetireKeyRequest {
    /// Retire it even though live tokens hold tickets sealed to it.
    #[serde(default)]
    pub force: bool,
}

/// 200 answer of a key retirement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RetireKeyResponse {
    /// The key retired.
    pub key_id: String,
    /// Live tokens that stopped working (only with `force`).
    pub tokens_stopped: usize,
    /// The third party without it.
    pub third_party: ThirdPartyBody,
}

/// `GET {location}/.well-known/macvault/3p/keys/{key_id}`: what sealing a ticket needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublishedKeyBody {
    /// The third party's location (tickets name it).
    pub location: String,
    /// The key's id.
    pub key_id: String,
    /// The X25519 public key, `mv3pk_…`.
    pub public_key: String,
    /// Whether its third party seals new tickets to it (else it is an older key,
    /// still opening the tickets sealed to it: do not seal new ones to it).
    pub current: bool,
    /// When it was made.
    pub created: String,
    /// The audience the third party's ID tokens must name.
    pub audience: String,
    /// The HPKE KEM, KDF and AEAD.
    pub suite: Vec<String>,
}

/// `GET {location}/.well-known/macvault/3p/keys`: every key of every third party at the
/// location (several may share one), by third party, oldest key first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublishedKeySet {
    /// The keys.
    pub keys: Vec<PublishedKeyBody>,
}

/// A requirement as a token's detail shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RequirementBody {
    /// The third party's name.
    pub third_party: String,
    /// The conditions of the ticket.
    pub conditions: Vec<String>,
}

impl From<&Requirement> for RequirementBody {
    fn from(r: &Requirement) -> Self {
        RequirementBody {
            third_party: r.third_party.clone(),
            conditions: r.conditions.iter().map(ToString::to_string).collect(),
        }
    }
}

impl From<&ThirdParty> for ThirdPartyBody {
    fn from(tp: &ThirdParty) -> Self {
        let current = tp.current_key();
        ThirdPartyBody {
            name: tp.name.clone(),
            kind: tp.kind.name().to_owned(),
            location: tp.location.clone(),
            issuer: tp.issuer.clone(),
            audience: tp.audience.clone(),
            jwks_url: match &tp.jwks {
                Jwks::Url(u) => Some(u.clone()),
                Jwks::Document(_) => None,
            },
            key_id: current.map(|k| k.id.to_string()).unwrap_or_default(),
            public_key: current.map(|k| k.public.to_text()).unwrap_or_default(),
            keys: tp
                .keys
                .iter()
                .map(|k| ThirdPartyKeyBody {
                    key_id: k.id.to_string(),
                    public_key: k.public.to_text(),
                    current: current.is_some_and(|c| c.id == k.id),
                    created: format_time(k.created),
                    live_tokens: 0,
                })
                .collect(),
            created: format_time(tp.created),
            dependents: Vec::new(),
        }
    }
}

impl From<&ThirdPartyDetail> for ThirdPartyBody {
    fn from(d: &ThirdPartyDetail) -> Self {
        let mut body = ThirdPartyBody::from(&d.third_party);
        for (key, kb) in d.third_party.keys.iter().zip(&mut body.keys) {
            kb.live_tokens = d.live_on(key.id);
        }
        body.dependents = d
            .dependents
            .iter()
            .map(|(req, status)| DependentBody {
                token_id: req.token.to_string(),
                key_id: req.key.to_string(),
                name: status.as_ref().map(|(n, _)| n.clone()),
                status: status.as_ref().map_or("gone", |(_, s)| s.name()).to_owned(),
                conditions: req.conditions.iter().map(ToString::to_string).collect(),
            })
            .collect();
        body
    }
}

impl From<&PublishedKey> for PublishedKeyBody {
    fn from(k: &PublishedKey) -> Self {
        PublishedKeyBody {
            location: k.location.clone(),
            key_id: k.public.key_id().to_string(),
            public_key: k.public.to_text(),
            current: k.current,
            created: format_time(k.created),
            audience: k.audience.clone(),
            suite: SUITE.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

impl From<&RetiredKey> for RetireKeyResponse {
    fn from(r: &RetiredKey) -> Self {
        RetireKeyResponse {
            key_id: r.key.to_string(),
            tokens_stopped: r.stopped,
            third_party: (&r.third_party).into(),
        }
    }
}

/// `POST {location}/.well-known/macvault/3p`: a CI job's tickets and its ID token.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DischargeRequest {
    /// The third-party caveats' identifiers (tickets), base64url without padding.
    pub tickets: Vec<String>,
    /// The job's OIDC ID token (a JWT).
    pub oidc_token: String,
}

impl std::fmt::Debug for DischargeRequest {
    /// Never the ID token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DischargeRequest")
            .field("tickets", &self.tickets.len())
            .finish_non_exhaustive()
    }
}

/// 201 answer: one discharge per ticket, in their order (`mvt_…`, not yet bound).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DischargeResponse {
    /// The discharges.
    pub discharges: Vec<String>,
}
