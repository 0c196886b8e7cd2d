//! The rows of schema version 1 (the first release: plain postcard, no row version
//! byte, last-used inside the token record, a per-org audit sequence), kept only to
//! upgrade a version-1 database. Frozen: never change these.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::StoreError;
use super::codec::strict;
use crate::model::{
    Actor, AuditEvent, LastUsed, Org, Outcome, Revocation, RootKeyVersion, TokenId, TokenKind,
    TokenRecord,
};

#[derive(Serialize, Deserialize)]
struct OrgV1 {
    name: String,
    created: u64,
    current_key: u32,
    max_expiry_secs: Option<u64>,
}

#[derive(Serialize, Deserialize)]
struct KeyV1 {
    version: u32,
    wrapped: Vec<u8>,
    created: u64,
    retired: Option<u64>,
}

#[derive(Clone, Copy, Serialize, Deserialize)]
enum KindV1 {
    Org,
    Deploy,
    Readonly,
    Runtime,
    Operator,
}

#[derive(Serialize, Deserialize)]
struct LastUsedV1 {
    time: u64,
    ip: Option<IpAddr>,
    user_agent: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct TokenV1 {
    id: [u8; 16],
    org: String,
    name: String,
    kind: KindV1,
    app: Option<String>,
    caveats: Vec<String>,
    key_version: u32,
    created: u64,
    creator: Option<[u8; 16]>,
    expires: u64,
    fingerprint: String,
    revoked: Option<u64>,
    last_used: Option<LastUsedV1>,
}

#[derive(Clone, Copy, Serialize, Deserialize)]
enum OutcomeV1 {
    Ok,
    Denied,
}

#[derive(Serialize, Deserialize)]
struct AuditV1 {
    seq: u64,
    time: u64,
    org: String,
    action: String,
    actor: Option<[u8; 16]>,
    source_ip: Option<IpAddr>,
    outcome: OutcomeV1,
    detail: String,
}

/// A version-1 org.
pub fn org(bytes: &[u8]) -> Result<Org, StoreError> {
    let r: OrgV1 = strict(bytes, "version-1 org")?;
    let mut org = Org::new(r.name, r.created);
    org.current_key = r.current_key;
    org.max_expiry_secs = r.max_expiry_secs;
    Ok(org)
}

/// A version-1 root key of `org`.
pub fn key(org: &str, bytes: &[u8]) -> Result<RootKeyVersion, StoreError> {
    let r: KeyV1 = strict(bytes, "version-1 root key")?;
    let mut key = RootKeyVersion::new(org, r.version, r.wrapped, r.created);
    key.retired = r.retired;
    Ok(key)
}

/// A version-1 token record and its last use. Its lineage parent is its creator; the
/// caller makes tokens minted by the operator lineage roots.
pub fn token(bytes: &[u8]) -> Result<(TokenRecord, Option<LastUsed>), StoreError> {
    let r: TokenV1 = strict(bytes, "version-1 token")?;
    let kind = match r.kind {
        KindV1::Org => TokenKind::Org,
        KindV1::Deploy => TokenKind::Deploy,
        KindV1::Readonly => TokenKind::Readonly,
        KindV1::Runtime => TokenKind::Runtime,
        KindV1::Operator => TokenKind::Operator,
    };
    let mut rec = TokenRecord::new(
        TokenId(r.id),
        &r.org,
        &r.name,
        kind,
        r.app.as_deref(),
        r.caveats,
        r.key_version,
        r.created,
        r.creator.map(TokenId),
        r.expires,
        r.fingerprint,
    );
    rec.revoked = r.revoked.map(|at| Revocation { at, effective: at });
    let used = r.last_used.map(|u| LastUsed {
        time: u.time,
        ip: u.ip,
        user_agent: u.user_agent,
    });
    Ok((rec, used))
}

/// A version-1 audit event (its per-org sequence number is kept).
pub fn audit(bytes: &[u8]) -> Result<AuditEvent, StoreError> {
    let r: AuditV1 = strict(bytes, "version-1 audit")?;
    let outcome = match r.outcome {
        OutcomeV1::Ok => Outcome::Ok,
        OutcomeV1::Denied => Outcome::Denied,
    };
    let actor = Actor {
        token: r.actor.map(TokenId),
        ip: r.source_ip,
    };
    let mut e = AuditEvent::new(&r.org, &r.action, actor, outcome, r.detail, r.time);
    e.seq = r.seq;
    Ok(e)
}
