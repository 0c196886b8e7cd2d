//! The stored form of each record (schema version 2; third parties: version 4), apart from the domain types in
//! `model/`, so that a change to a domain type cannot silently change what is on disk:
//! every row type here is frozen once released, and a new layout is a new version with
//! its conversion (see `legacy.rs` for version 1).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::codec;
use super::{DenyEntry, StoreError};
use crate::caveats::Condition;
use crate::model::{
    AuditEvent, Change, Jwks, LastUsed, Org, Outcome, Requirement, Revocation, RootKeyVersion,
    Sealed, SecretHead, SecretKeys, SecretVersion, ThirdParty, ThirdPartyKey, ThirdPartyKind,
    TokenId, TokenKind, TokenRecord,
};
use crate::token::{KeyId, PublicKey};

#[derive(Serialize, Deserialize)]
pub struct OrgRow {
    name: String,
    created: u64,
    current_key: u32,
    max_expiry_secs: Option<u64>,
    ledger_retention_secs: Option<u64>,
}

#[derive(Serialize, Deserialize)]
pub struct KeyRow {
    org: String,
    version: u32,
    wrapped: Vec<u8>,
    created: u64,
    retired: Option<u64>,
}

/// Append-only: new kinds at the end.
#[derive(Clone, Copy, Serialize, Deserialize)]
pub enum KindRow {
    Org,
    Deploy,
    Readonly,
    Runtime,
    Operator,
    /// Schema 5.
    Session,
    /// Schema 6.
    OAuth,
}

#[derive(Serialize, Deserialize)]
pub struct TokenRow {
    id: [u8; 16],
    org: String,
    name: String,
    kind: KindRow,
    app: Option<String>,
    caveats: Vec<String>,
    key_version: u32,
    created: u64,
    creator: Option<[u8; 16]>,
    parent: Option<[u8; 16]>,
    expires: u64,
    fingerprint: String,
    /// (decided, effective)
    revoked: Option<(u64, u64)>,
}

#[derive(Serialize, Deserialize)]
pub struct LastUsedRow {
    time: u64,
    ip: Option<IpAddr>,
    user_agent: Option<String>,
}

#[derive(Serialize, Deserialize)]
pub struct RevocationRow {
    effective: u64,
    expires: u64,
}

/// Append-only.
#[derive(Clone, Copy, Serialize, Deserialize)]
pub enum OutcomeRow {
    Ok,
    Denied,
}

#[derive(Serialize, Deserialize)]
pub struct AuditRow {
    seq: u64,
    time: u64,
    org: String,
    action: String,
    actor: Option<[u8; 16]>,
    source_ip: Option<IpAddr>,
    outcome: OutcomeRow,
    detail: String,
}

#[derive(Serialize, Deserialize)]
pub struct SealedRow {
    key_id: u32,
    wrapped_key: Vec<u8>,
    ciphertext: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
pub struct SecretVersionRow {
    org: String,
    app: Option<String>,
    name: String,
    version: u64,
    created: u64,
    created_by: Option<[u8; 16]>,
    rollback_of: Option<u64>,
    digest: [u8; 32],
    sealed: Option<SealedRow>,
}

#[derive(Serialize, Deserialize)]
pub struct SecretHeadRow {
    org: String,
    app: Option<String>,
    name: String,
    version: u64,
    last_version: u64,
    oldest: u64,
    unset: bool,
    expires: Option<u64>,
    description: Option<String>,
    updated: u64,
    digest: [u8; 32],
    size: u32,
}

#[derive(Serialize, Deserialize)]
pub struct SecretKeysRow {
    org: String,
    current: u32,
    keys: Vec<(u32, Vec<u8>, u64)>,
    digest_key: Vec<u8>,
}

/// Append-only: new kinds at the end.
#[derive(Serialize, Deserialize)]
pub enum ChangeRow {
    OrgCreated {
        org: String,
    },
    KeyAdded {
        org: String,
        version: u32,
    },
    KeyRetired {
        org: String,
        version: u32,
    },
    Revoked {
        token: [u8; 16],
        effective: u64,
        expires: u64,
    },
    SecretsChanged {
        org: String,
        app: Option<String>,
    },
    SecretKeysChanged {
        org: String,
    },
    /// Schema 4.
    ThirdPartyChanged {
        org: String,
        name: String,
    },
}

/// Schema 4. Append-only.
#[derive(Serialize, Deserialize)]
pub enum ThirdPartyKindRow {
    CiOidc,
}

/// Schema 4. Append-only.
#[derive(Serialize, Deserialize)]
pub enum JwksRow {
    Document(String),
    Url(String),
}

/// Schema 4.
#[derive(Serialize, Deserialize)]
pub struct ThirdPartyKeyRow {
    id: [u8; 8],
    public: [u8; 32],
    wrapped: Vec<u8>,
    created: u64,
}

/// Schema 4.
#[derive(Serialize, Deserialize)]
pub struct ThirdPartyRow {
    org: String,
    name: String,
    kind: ThirdPartyKindRow,
    location: String,
    issuer: String,
    audience: String,
    jwks: JwksRow,
    keys: Vec<ThirdPartyKeyRow>,
    created: u64,
    created_by: Option<[u8; 16]>,
}

/// Schema 4: an app.
#[derive(Serialize, Deserialize)]
pub struct AppRow {
    org: String,
    name: String,
    created: u64,
    created_by: Option<[u8; 16]>,
}

impl Stored for crate::model::App {
    type Row = AppRow;
    const WHAT: &'static str = "app";
    fn to_row(&self) -> AppRow {
        AppRow {
            org: self.org.clone(),
            name: self.name.clone(),
            created: self.created,
            created_by: self.created_by.map(|t| t.0),
        }
    }
    fn from_row(r: AppRow) -> Result<Self, StoreError> {
        Ok(crate::model::App {
            org: r.org,
            name: r.name,
            created: r.created,
            created_by: r.created_by.map(TokenId),
        })
    }
}

/// Schema 5: an OAuth client.
#[derive(Serialize, Deserialize)]
pub struct OAuthClientRow {
    org: String,
    id: String,
    name: String,
    redirect_uris: Vec<String>,
    secret_hash: Option<[u8; 32]>,
    allow_reveal: bool,
    created: u64,
    created_by: Option<[u8; 16]>,
}

impl Stored for crate::model::OAuthClient {
    type Row = OAuthClientRow;
    const WHAT: &'static str = "OAuth client";
    fn to_row(&self) -> OAuthClientRow {
        OAuthClientRow {
            org: self.org.clone(),
            id: self.id.clone(),
            name: self.name.clone(),
            redirect_uris: self.redirect_uris.clone(),
            secret_hash: self.secret_hash,
            allow_reveal: self.allow_reveal,
            created: self.created,
            created_by: self.created_by.map(|t| t.0),
        }
    }
    fn from_row(r: OAuthClientRow) -> Result<Self, StoreError> {
        Ok(crate::model::OAuthClient {
            org: r.org,
            id: r.id,
            name: r.name,
            redirect_uris: r.redirect_uris,
            secret_hash: r.secret_hash,
            allow_reveal: r.allow_reveal,
            created: r.created,
            created_by: r.created_by.map(TokenId),
        })
    }
}

/// Schema 6: an OAuth grant.
#[derive(Serialize, Deserialize)]
pub struct OAuthGrantRow {
    id: String,
    org: String,
    client: String,
    client_name: String,
    parent: [u8; 16],
    app: Option<String>,
    scopes: Vec<String>,
    caveats: Vec<String>,
    created: u64,
    expires: u64,
    redirect_uri: String,
    challenge: [u8; 32],
    code_expires: u64,
    tokens: Vec<([u8; 16], u64)>,
    last_used: Option<u64>,
    revoked: Option<u64>,
}

impl Stored for crate::model::OAuthGrant {
    type Row = OAuthGrantRow;
    const WHAT: &'static str = "OAuth grant";
    fn to_row(&self) -> OAuthGrantRow {
        OAuthGrantRow {
            id: self.id.clone(),
            org: self.org.clone(),
            client: self.client.clone(),
            client_name: self.client_name.clone(),
            parent: self.parent.0,
            app: self.app.clone(),
            scopes: self.scopes.clone(),
            caveats: self.caveats.clone(),
            created: self.created,
            expires: self.expires,
            redirect_uri: self.redirect_uri.clone(),
            challenge: self.challenge,
            code_expires: self.code_expires,
            tokens: self.tokens.iter().map(|(t, e)| (t.0, *e)).collect(),
            last_used: self.last_used,
            revoked: self.revoked,
        }
    }
    fn from_row(r: OAuthGrantRow) -> Result<Self, StoreError> {
        Ok(crate::model::OAuthGrant {
            id: r.id,
            org: r.org,
            client: r.client,
            client_name: r.client_name,
            parent: TokenId(r.parent),
            app: r.app,
            scopes: r.scopes,
            caveats: r.caveats,
            created: r.created,
            expires: r.expires,
            redirect_uri: r.redirect_uri,
            challenge: r.challenge,
            code_expires: r.code_expires,
            tokens: r.tokens.into_iter().map(|(t, e)| (TokenId(t), e)).collect(),
            last_used: r.last_used,
            revoked: r.revoked,
        })
    }
}

/// Schema 6: what an OAuth code or refresh token is for. Append-only.
#[derive(Clone, Copy, Serialize, Deserialize)]
pub enum OAuthKeyKindRow {
    Code,
    Refresh,
}

/// Schema 6: an OAuth code or refresh token, by its hash.
#[derive(Serialize, Deserialize)]
pub struct OAuthKeyRow {
    hash: [u8; 32],
    grant: String,
    kind: OAuthKeyKindRow,
    until: u64,
}

impl Stored for crate::model::OAuthKey {
    type Row = OAuthKeyRow;
    const WHAT: &'static str = "OAuth key";
    fn to_row(&self) -> OAuthKeyRow {
        use crate::model::OAuthKeyKind;
        OAuthKeyRow {
            hash: self.hash,
            grant: self.grant.clone(),
            kind: match self.kind {
                OAuthKeyKind::Code => OAuthKeyKindRow::Code,
                OAuthKeyKind::Refresh => OAuthKeyKindRow::Refresh,
            },
            until: self.until,
        }
    }
    fn from_row(r: OAuthKeyRow) -> Result<Self, StoreError> {
        use crate::model::OAuthKeyKind;
        Ok(crate::model::OAuthKey {
            hash: r.hash,
            grant: r.grant,
            kind: match r.kind {
                OAuthKeyKindRow::Code => OAuthKeyKind::Code,
                OAuthKeyKindRow::Refresh => OAuthKeyKind::Refresh,
            },
            until: r.until,
        })
    }
}

/// Schema 4: an ID token used for discharges.
#[derive(Serialize, Deserialize)]
pub struct IdTokenUseRow {
    issuer: String,
    jti: String,
    tickets: [u8; 32],
    until: u64,
}

impl Stored for super::IdTokenUse {
    type Row = IdTokenUseRow;
    const WHAT: &'static str = "ID token use";
    fn to_row(&self) -> IdTokenUseRow {
        IdTokenUseRow {
            issuer: self.issuer.clone(),
            jti: self.jti.clone(),
            tickets: self.tickets,
            until: self.until,
        }
    }
    fn from_row(r: IdTokenUseRow) -> Result<Self, StoreError> {
        Ok(super::IdTokenUse {
            issuer: r.issuer,
            jti: r.jti,
            tickets: r.tickets,
            until: r.until,
        })
    }
}

/// Schema 4: conditions in their canonical text.
#[derive(Serialize, Deserialize)]
pub struct RequirementRow {
    org: String,
    third_party: String,
    token: [u8; 16],
    /// The id of the third-party key its ticket is sealed to.
    key: [u8; 8],
    conditions: Vec<String>,
    added: u64,
}

#[derive(Serialize, Deserialize)]
pub struct FeedRow {
    /// When it was published, unix seconds.
    pub time: u64,
    pub change: ChangeRow,
}

/// A domain record and its row.
pub trait Stored: Sized {
    /// The row type.
    type Row: Serialize + for<'de> Deserialize<'de>;
    /// Names the record in errors.
    const WHAT: &'static str;
    /// Domain → row.
    fn to_row(&self) -> Self::Row;
    /// Row → domain.
    fn from_row(row: Self::Row) -> Result<Self, StoreError>;

    /// The stored bytes.
    fn encode(&self) -> Result<Vec<u8>, StoreError> {
        codec::encode(&self.to_row())
    }

    /// From stored bytes.
    fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        Self::from_row(codec::decode(bytes, Self::WHAT)?)
    }
}

impl Stored for Org {
    type Row = OrgRow;
    const WHAT: &'static str = "org";
    fn to_row(&self) -> OrgRow {
        OrgRow {
            name: self.name.clone(),
            created: self.created,
            current_key: self.current_key,
            max_expiry_secs: self.max_expiry_secs,
            ledger_retention_secs: self.ledger_retention_secs,
        }
    }
    fn from_row(r: OrgRow) -> Result<Self, StoreError> {
        let mut org = Org::new(r.name, r.created);
        org.current_key = r.current_key;
        org.max_expiry_secs = r.max_expiry_secs;
        org.ledger_retention_secs = r.ledger_retention_secs;
        Ok(org)
    }
}

impl Stored for RootKeyVersion {
    type Row = KeyRow;
    const WHAT: &'static str = "root key";
    fn to_row(&self) -> KeyRow {
        KeyRow {
            org: self.org.clone(),
            version: self.version,
            wrapped: self.wrapped.clone(),
            created: self.created,
            retired: self.retired,
        }
    }
    fn from_row(r: KeyRow) -> Result<Self, StoreError> {
        let mut key = RootKeyVersion::new(r.org, r.version, r.wrapped, r.created);
        key.retired = r.retired;
        Ok(key)
    }
}

impl From<TokenKind> for KindRow {
    fn from(k: TokenKind) -> Self {
        match k {
            TokenKind::Org => KindRow::Org,
            TokenKind::Deploy => KindRow::Deploy,
            TokenKind::Readonly => KindRow::Readonly,
            TokenKind::Runtime => KindRow::Runtime,
            TokenKind::Operator => KindRow::Operator,
            TokenKind::Session => KindRow::Session,
            TokenKind::OAuth => KindRow::OAuth,
        }
    }
}

impl From<KindRow> for TokenKind {
    fn from(k: KindRow) -> Self {
        match k {
            KindRow::Org => TokenKind::Org,
            KindRow::Deploy => TokenKind::Deploy,
            KindRow::Readonly => TokenKind::Readonly,
            KindRow::Runtime => TokenKind::Runtime,
            KindRow::Operator => TokenKind::Operator,
            KindRow::Session => TokenKind::Session,
            KindRow::OAuth => TokenKind::OAuth,
        }
    }
}

impl Stored for TokenRecord {
    type Row = TokenRow;
    const WHAT: &'static str = "token";
    fn to_row(&self) -> TokenRow {
        TokenRow {
            id: self.id.0,
            org: self.org.clone(),
            name: self.name.clone(),
            kind: self.kind.into(),
            app: self.app.clone(),
            caveats: self.caveats.clone(),
            key_version: self.key_version,
            created: self.created,
            creator: self.creator.map(|c| c.0),
            parent: self.parent.map(|p| p.0),
            expires: self.expires,
            fingerprint: self.fingerprint.clone(),
            revoked: self.revoked.map(|r| (r.at, r.effective)),
        }
    }
    fn from_row(r: TokenRow) -> Result<Self, StoreError> {
        let mut rec = TokenRecord::new(
            TokenId(r.id),
            &r.org,
            &r.name,
            r.kind.into(),
            r.app.as_deref(),
            r.caveats,
            r.key_version,
            r.created,
            r.creator.map(TokenId),
            r.expires,
            r.fingerprint,
        );
        rec.parent = r.parent.map(TokenId);
        rec.revoked = r
            .revoked
            .map(|(at, effective)| Revocation { at, effective });
        Ok(rec)
    }
}

impl Stored for LastUsed {
    type Row = LastUsedRow;
    const WHAT: &'static str = "last-used";
    fn to_row(&self) -> LastUsedRow {
        LastUsedRow {
            time: self.time,
            ip: self.ip,
            user_agent: self.user_agent.clone(),
        }
    }
    fn from_row(r: LastUsedRow) -> Result<Self, StoreError> {
        Ok(LastUsed {
            time: r.time,
            ip: r.ip,
            user_agent: r.user_agent,
        })
    }
}

impl Stored for DenyEntry {
    type Row = RevocationRow;
    const WHAT: &'static str = "revocation";
    fn to_row(&self) -> RevocationRow {
        RevocationRow {
            effective: self.effective,
            expires: self.expires,
        }
    }
    fn from_row(r: RevocationRow) -> Result<Self, StoreError> {
        Ok(DenyEntry {
            effective: r.effective,
            expires: r.expires,
        })
    }
}

impl From<Outcome> for OutcomeRow {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Ok => OutcomeRow::Ok,
            Outcome::Denied => OutcomeRow::Denied,
        }
    }
}

impl From<OutcomeRow> for Outcome {
    fn from(o: OutcomeRow) -> Self {
        match o {
            OutcomeRow::Ok => Outcome::Ok,
            OutcomeRow::Denied => Outcome::Denied,
        }
    }
}

impl Stored for AuditEvent {
    type Row = AuditRow;
    const WHAT: &'static str = "audit";
    fn to_row(&self) -> AuditRow {
        AuditRow {
            seq: self.seq,
            time: self.time,
            org: self.org.clone(),
            action: self.action.clone(),
            actor: self.actor.map(|a| a.0),
            source_ip: self.source_ip,
            outcome: self.outcome.into(),
            detail: self.detail.clone(),
        }
    }
    fn from_row(r: AuditRow) -> Result<Self, StoreError> {
        let actor = crate::model::Actor {
            token: r.actor.map(TokenId),
            ip: r.source_ip,
        };
        let mut e = AuditEvent::new(&r.org, &r.action, actor, r.outcome.into(), r.detail, r.time);
        e.seq = r.seq;
        Ok(e)
    }
}

impl From<&Change> for ChangeRow {
    fn from(c: &Change) -> Self {
        match c {
            Change::OrgCreated { org } => ChangeRow::OrgCreated { org: org.clone() },
            Change::KeyAdded { org, version } => ChangeRow::KeyAdded {
                org: org.clone(),
                version: *version,
            },
            Change::KeyRetired { org, version } => ChangeRow::KeyRetired {
                org: org.clone(),
                version: *version,
            },
            Change::Revoked {
                token,
                effective,
                expires,
            } => ChangeRow::Revoked {
                token: token.0,
                effective: *effective,
                expires: *expires,
            },
            Change::SecretsChanged { org, app } => ChangeRow::SecretsChanged {
                org: org.clone(),
                app: app.clone(),
            },
            Change::SecretKeysChanged { org } => ChangeRow::SecretKeysChanged { org: org.clone() },
            Change::ThirdPartyChanged { org, name } => ChangeRow::ThirdPartyChanged {
                org: org.clone(),
                name: name.clone(),
            },
        }
    }
}

impl From<ChangeRow> for Change {
    fn from(c: ChangeRow) -> Self {
        match c {
            ChangeRow::OrgCreated { org } => Change::OrgCreated { org },
            ChangeRow::KeyAdded { org, version } => Change::KeyAdded { org, version },
            ChangeRow::KeyRetired { org, version } => Change::KeyRetired { org, version },
            ChangeRow::Revoked {
                token,
                effective,
                expires,
            } => Change::Revoked {
                token: TokenId(token),
                effective,
                expires,
            },
            ChangeRow::SecretsChanged { org, app } => Change::SecretsChanged { org, app },
            ChangeRow::SecretKeysChanged { org } => Change::SecretKeysChanged { org },
            ChangeRow::ThirdPartyChanged { org, name } => Change::ThirdPartyChanged { org, name },
        }
    }
}

impl Stored for SecretVersion {
    type Row = SecretVersionRow;
    const WHAT: &'static str = "secret version";
    fn to_row(&self) -> SecretVersionRow {
        SecretVersionRow {
            org: self.org.clone(),
            app: self.app.clone(),
            name: self.name.clone(),
            version: self.version,
            created: self.created,
            created_by: self.created_by.map(|t| t.0),
            rollback_of: self.rollback_of,
            digest: self.digest,
            sealed: self.sealed.as_ref().map(|s| SealedRow {
                key_id: s.key_id,
                wrapped_key: s.wrapped_key.clone(),
                ciphertext: s.ciphertext.clone(),
            }),
        }
    }
    fn from_row(r: SecretVersionRow) -> Result<Self, StoreError> {
        let sealed = r.sealed.map(|s| Sealed {
            key_id: s.key_id,
            wrapped_key: s.wrapped_key,
            ciphertext: s.ciphertext,
        });
        let mut v = SecretVersion::new(
            &r.org,
            r.app.as_deref(),
            &r.name,
            r.version,
            r.created,
            r.created_by.map(TokenId),
            r.digest,
            Sealed {
                key_id: 0,
                wrapped_key: Vec::new(),
                ciphertext: Vec::new(),
            },
        );
        v.sealed = sealed;
        v.rollback_of = r.rollback_of;
        Ok(v)
    }
}

impl Stored for SecretHead {
    type Row = SecretHeadRow;
    const WHAT: &'static str = "secret";
    fn to_row(&self) -> SecretHeadRow {
        SecretHeadRow {
            org: self.org.clone(),
            app: self.app.clone(),
            name: self.name.clone(),
            version: self.version,
            last_version: self.last_version,
            oldest: self.oldest,
            unset: self.unset,
            expires: self.expires,
            description: self.description.clone(),
            updated: self.updated,
            digest: self.digest,
            size: self.size,
        }
    }
    fn from_row(r: SecretHeadRow) -> Result<Self, StoreError> {
        let mut h = SecretHead::new(&r.org, r.app.as_deref(), &r.name);
        h.version = r.version;
        h.last_version = r.last_version;
        h.oldest = r.oldest;
        h.unset = r.unset;
        h.expires = r.expires;
        h.description = r.description;
        h.updated = r.updated;
        h.digest = r.digest;
        h.size = r.size;
        Ok(h)
    }
}

impl Stored for SecretKeys {
    type Row = SecretKeysRow;
    const WHAT: &'static str = "secrets keys";
    fn to_row(&self) -> SecretKeysRow {
        SecretKeysRow {
            org: self.org.clone(),
            current: self.current,
            keys: self.keys.clone(),
            digest_key: self.digest_key.clone(),
        }
    }
    fn from_row(r: SecretKeysRow) -> Result<Self, StoreError> {
        let mut k = SecretKeys::new(&r.org, Vec::new(), r.digest_key, 0);
        k.current = r.current;
        k.keys = r.keys;
        Ok(k)
    }
}

impl Stored for ThirdParty {
    type Row = ThirdPartyRow;
    const WHAT: &'static str = "third party";
    fn to_row(&self) -> ThirdPartyRow {
        ThirdPartyRow {
            org: self.org.clone(),
            name: self.name.clone(),
            kind: match self.kind {
                ThirdPartyKind::CiOidc => ThirdPartyKindRow::CiOidc,
            },
            location: self.location.clone(),
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            jwks: match &self.jwks {
                Jwks::Document(d) => JwksRow::Document(d.clone()),
                Jwks::Url(u) => JwksRow::Url(u.clone()),
            },
            keys: self
                .keys
                .iter()
                .map(|k| ThirdPartyKeyRow {
                    id: k.id.0,
                    public: *k.public.as_bytes(),
                    wrapped: k.wrapped.clone(),
                    created: k.created,
                })
                .collect(),
            created: self.created,
            created_by: self.created_by.map(|t| t.0),
        }
    }
    fn from_row(r: ThirdPartyRow) -> Result<Self, StoreError> {
        let keys = r
            .keys
            .into_iter()
            .map(|k| {
                let public = PublicKey::from_bytes(k.public);
                if public.key_id() != KeyId(k.id) {
                    return Err(StoreError::Corrupt("third-party key id".into()));
                }
                Ok(ThirdPartyKey {
                    id: KeyId(k.id),
                    public,
                    wrapped: k.wrapped,
                    created: k.created,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let Some(first) = keys.first().cloned() else {
            return Err(StoreError::Corrupt("third party without a key".into()));
        };
        let kind = match r.kind {
            ThirdPartyKindRow::CiOidc => ThirdPartyKind::CiOidc,
        };
        let jwks = match r.jwks {
            JwksRow::Document(d) => Jwks::Document(d),
            JwksRow::Url(u) => Jwks::Url(u),
        };
        let mut tp = ThirdParty::new(
            r.org,
            r.name,
            kind,
            r.location,
            r.issuer,
            r.audience,
            jwks,
            first,
            r.created,
            r.created_by.map(TokenId),
        );
        tp.keys = keys;
        Ok(tp)
    }
}

impl Stored for Requirement {
    type Row = RequirementRow;
    const WHAT: &'static str = "third-party requirement";
    fn to_row(&self) -> RequirementRow {
        RequirementRow {
            org: self.org.clone(),
            third_party: self.third_party.clone(),
            token: self.token.0,
            key: self.key.0,
            conditions: self.conditions.iter().map(ToString::to_string).collect(),
            added: self.added,
        }
    }
    fn from_row(r: RequirementRow) -> Result<Self, StoreError> {
        let conditions = r
            .conditions
            .iter()
            .map(|c| Condition::parse(c))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| StoreError::Corrupt("third-party condition".into()))?;
        Ok(Requirement {
            org: r.org,
            third_party: r.third_party,
            token: TokenId(r.token),
            key: KeyId(r.key),
            conditions,
            added: r.added,
        })
    }
}

impl FeedRow {
    /// The row of `change` published at `time`.
    pub fn new(change: &Change, time: u64) -> Self {
        FeedRow {
            time,
            change: change.into(),
        }
    }

    /// When the entry stops mattering (a revocation of a token that has expired).
    pub fn expires(&self) -> Option<u64> {
        match &self.change {
            ChangeRow::Revoked { expires, .. } => Some(*expires),
            _ => None,
        }
    }

    /// A short stable name of the change's kind (a column in PostgreSQL).
    pub fn kind(&self) -> &'static str {
        match &self.change {
            ChangeRow::OrgCreated { .. } => "org_created",
            ChangeRow::KeyAdded { .. } => "key_added",
            ChangeRow::KeyRetired { .. } => "key_retired",
            ChangeRow::Revoked { .. } => "revoked",
            ChangeRow::SecretsChanged { .. } => "secrets_changed",
            ChangeRow::SecretKeysChanged { .. } => "secret_keys_changed",
            ChangeRow::ThirdPartyChanged { .. } => "third_party_changed",
        }
    }

    /// Stored bytes.
    pub fn encode(&self) -> Result<Vec<u8>, StoreError> {
        codec::encode(self)
    }

    /// From stored bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        codec::decode(bytes, "feed")
    }
}
