//! Audit events: who did what in which org, from where, with what outcome. Events never
//! carry a token, a key or a secret value: actors are token ids.

use std::net::IpAddr;

use crate::token::TokenId;

/// Whether an audited action happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It happened.
    Ok,
    /// A caveat denied it.
    Denied,
}

impl Outcome {
    /// `ok` or `denied`.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
        }
    }
}

/// Who acted and from where.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Actor {
    /// The acting token's id.
    pub token: Option<TokenId>,
    /// The client address.
    pub ip: Option<IpAddr>,
}

/// One audit event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditEvent {
    /// Position in the org's log, increasing (assigned by the store on append).
    pub seq: u64,
    /// Unix seconds.
    pub time: u64,
    /// The org.
    pub org: String,
    /// What happened, e.g. `token.mint` (see [`crate::audit::action`]).
    pub action: String,
    /// The acting token.
    pub actor: Option<TokenId>,
    /// The client address.
    pub source_ip: Option<IpAddr>,
    /// Whether it happened.
    pub outcome: Outcome,
    /// Details for people (escaped where they echo input).
    pub detail: String,
    /// How many times it happened: 1, or more for denials aggregated over a window
    /// (docs/DESIGN.md, "Audit"): the first of them is `time` and `detail`.
    pub count: u64,
    /// Unix seconds of the last of them (`time` when `count` is 1).
    pub last: u64,
}

impl AuditEvent {
    /// A new event; its sequence number is assigned when it is appended.
    pub fn new(
        org: &str,
        action: &str,
        actor: Actor,
        outcome: Outcome,
        detail: String,
        time: u64,
    ) -> Self {
        AuditEvent {
            seq: 0,
            time,
            org: org.to_owned(),
            action: action.to_owned(),
            actor: actor.token,
            source_ip: actor.ip,
            outcome,
            detail,
            count: 1,
            last: time,
        }
    }

    /// The same event, `count` times from `time` to `last` (an aggregate of denials).
    pub fn times(mut self, count: u64, last: u64) -> Self {
        self.count = count.max(1);
        self.last = last.max(self.time);
        self
    }
}
