//! Append-only audit events: who did what to which org, from where, with what outcome.
//! Events never carry a token, a key or a secret value: actors are token ids.

use std::net::IpAddr;

use crate::store::{AuditRecord, Outcome};
use crate::token::TokenId;

/// Audited actions (stable strings; the API shows them).
pub mod action {
    /// An org was created.
    pub const ORG_CREATE: &str = "org.create";
    /// An org's settings changed.
    pub const ORG_UPDATE: &str = "org.update";
    /// A token was minted.
    pub const TOKEN_MINT: &str = "token.mint";
    /// A token was revoked.
    pub const TOKEN_REVOKE: &str = "token.revoke";
    /// A root key was rotated.
    pub const KEY_ROTATE: &str = "key.rotate";
    /// A root key was retired.
    pub const KEY_RETIRE: &str = "key.retire";
    /// A caveat denied a request.
    pub const REQUEST_DENIED: &str = "request.denied";
}

/// Who acted and from where.
#[derive(Debug, Clone, Copy, Default)]
pub struct Actor {
    /// The acting token's id.
    pub token: Option<TokenId>,
    /// The client address.
    pub ip: Option<IpAddr>,
}

/// A new event (its sequence number is assigned when appended).
pub fn event(
    org: &str,
    action: &str,
    actor: Actor,
    outcome: Outcome,
    detail: String,
    time: u64,
) -> AuditRecord {
    AuditRecord {
        seq: 0,
        time,
        org: org.to_owned(),
        action: action.to_owned(),
        actor: actor.token,
        source_ip: actor.ip,
        outcome,
        detail,
    }
}
