//! The built-in CI discharger (docs/THIRD_PARTIES.md): `POST
//! {location}/.well-known/macvault/3p` with a job's tickets and its OIDC ID token
//! answers with one discharge per ticket, all or nothing.
//!
//! - `crate::oidc`: checking the ID token (issuer first, pinned algorithm, signature,
//!   audience, times, `jti`).
//! - `jwks`: the issuers' keys, fetched from allowed URLs, cached, single flight.
//! - here: the request — tickets to third parties, conditions against claims, the one
//!   use of each ID token recorded with the audit events before anything is returned.

pub mod jwks;

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sha2::Digest as _;

use self::jwks::{JwksCache, JwksError, JwksOptions};
use crate::audit::action;
use crate::authority::{Authority, Classify, ErrorClass};
use crate::caveats::{Caveat, Condition, Excerpt, judge};
use crate::model::{Actor, AuditEvent, Outcome, ThirdParty, ThirdPartyKind, location_path};
use crate::oidc::{self, Claims, OidcError};
use crate::store::{IdTokenUse, Recorded, StoreError};
use crate::token::{Bundle, Ticket, make_discharge};

/// Most tickets in one request.
pub const MAX_TICKETS: usize = 16;
/// No discharge lives longer than this, in seconds.
pub const MAX_DISCHARGE: u64 = 600;
/// The path under a location where discharges are asked for.
pub const DISCHARGE_PATH: &str = "/.well-known/macvault/3p";
/// Events a condition must name before a job they trigger is discharged: they run with
/// the base repository's identity for code it does not control.
const DANGEROUS_EVENTS: [&str; 2] = ["pull_request_target", "workflow_run"];

/// How the discharger runs.
#[derive(Debug, Clone)]
pub struct DischargeOptions {
    /// Where JWKS may be fetched from.
    pub jwks: JwksOptions,
    /// Requests per minute per client address (an IPv6 /64 counts as one).
    pub per_minute: NonZeroU32,
}

impl Default for DischargeOptions {
    fn default() -> Self {
        DischargeOptions {
            jwks: JwksOptions::default(),
            per_minute: NonZeroU32::new(60).unwrap_or(NonZeroU32::MIN),
        }
    }
}

/// Why no discharges were made. Never holds the ID token.
#[derive(Debug, thiserror::Error)]
pub enum DischargeError {
    /// The body is not a discharge request.
    #[error("{0}")]
    BadRequest(String),
    /// A ticket cannot be read.
    #[error("ticket {index}: {why}")]
    Ticket {
        /// 1-based.
        index: usize,
        /// What is wrong.
        why: String,
    },
    /// No third party holds the key a ticket is sealed to, here.
    #[error(
        "ticket {0}: no third party at this location holds its key (retired, removed, or another location's)"
    )]
    UnknownThirdParty(usize),
    /// The ID token does not pass.
    #[error("ticket {index}: {error}")]
    IdToken {
        /// 1-based.
        index: usize,
        /// Which check failed.
        error: OidcError,
    },
    /// The issuer's keys are not to be had.
    #[error("ticket {index}: {error}")]
    Keys {
        /// 1-based.
        index: usize,
        /// Why.
        error: JwksError,
    },
    /// A condition (or a built-in rule) is not met.
    #[error("ticket {index}: {why}")]
    Condition {
        /// 1-based.
        index: usize,
        /// Which condition and what was found, escaped.
        why: String,
    },
    /// The ID token discharged other tickets before.
    #[error(
        "this ID token was already used for other tickets: each ID token discharges one set of \
         tickets (ask for them all in one request)"
    )]
    Used,
    /// The store failed (nothing was returned).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A ticket did not open with its third party's key, or a key did not unwrap.
    #[error("ticket {0}: it does not open with its third party's key")]
    Open(usize),
}

impl Classify for DischargeError {
    fn class(&self) -> ErrorClass {
        match self {
            DischargeError::BadRequest(_)
            | DischargeError::Ticket { .. }
            | DischargeError::Open(_) => ErrorClass::BadRequest,
            DischargeError::UnknownThirdParty(_) => ErrorClass::NotFound,
            DischargeError::IdToken { .. } => ErrorClass::Unauthenticated,
            DischargeError::Keys { error, .. } => match error {
                JwksError::UnknownKid(_) => ErrorClass::Unauthenticated,
                JwksError::NotAllowed => ErrorClass::Denied,
                JwksError::Unavailable => ErrorClass::Unavailable,
            },
            DischargeError::Condition { .. } => ErrorClass::Denied,
            DischargeError::Used => ErrorClass::Conflict,
            DischargeError::Store(e) => e.class(),
        }
    }
    fn code(&self) -> &'static str {
        match self {
            DischargeError::Ticket { .. } | DischargeError::Open(_) => "bad_ticket",
            DischargeError::UnknownThirdParty(_) => "unknown_third_party",
            DischargeError::IdToken { .. } => "invalid_id_token",
            DischargeError::Keys { error, .. } => match error {
                JwksError::UnknownKid(_) => "invalid_id_token",
                JwksError::NotAllowed => "jwks_not_allowed",
                JwksError::Unavailable => "jwks_unavailable",
            },
            DischargeError::Condition { .. } => "condition_not_met",
            DischargeError::Used => "id_token_used",
            other => other.class().code(),
        }
    }
}

/// One ticket of a request, decoded, with its third party.
struct Asked {
    raw: Vec<u8>,
    ticket: Ticket,
    third_party: ThirdParty,
}

/// The discharger.
pub struct Discharger {
    authority: Arc<Authority>,
    jwks: JwksCache,
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    /// Requests refused by `limiter` (read by `/metrics`).
    refused: std::sync::atomic::AtomicU64,
}

impl Discharger {
    /// A discharger over `authority`'s third parties.
    pub fn new(authority: Arc<Authority>, opts: DischargeOptions) -> Self {
        Discharger {
            authority,
            jwks: JwksCache::new(opts.jwks),
            limiter: RateLimiter::keyed(Quota::per_minute(opts.per_minute)),
            refused: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Requests [`Discharger::admit`] refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The JWKS cache (its fetch count, for tests).
    pub fn jwks(&self) -> &JwksCache {
        &self.jwks
    }

    /// Charges one request to `ip`'s budget: `Err(seconds)` to wait when it is spent.
    pub fn admit(&self, ip: Option<IpAddr>) -> Result<(), u64> {
        let key = crate::limits::address_key(ip);
        self.limiter.check_key(&key).map_err(|not_until| {
            self.refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            wait.as_secs().max(1)
        })
    }

    /// Forgets the budgets of addresses not seen lately (call now and then).
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
    }

    /// Answers a discharge request made to the location path `path` from `ip`: one
    /// discharge per ticket, in their order, or the first refusal (audited in the
    /// third party's org, without the ID token).
    pub async fn discharge(
        &self,
        path: &str,
        tickets: &[String],
        id_token: &str,
        ip: Option<IpAddr>,
    ) -> Result<Vec<String>, DischargeError> {
        let asked = self.read_tickets(path, tickets).await?;
        let now = self.authority.now();
        let actor = Actor { token: None, ip };
        match self.decide(&asked, id_token, now).await {
            Ok(made) => self.record(&asked, made, actor, now).await,
            Err((index, claims, e)) => {
                let tp = &asked[index - 1].third_party;
                let detail = || {
                    format!(
                        "discharge refused for third party \"{}\": {e}{}",
                        tp.name,
                        claims.as_ref().map_or(String::new(), identity)
                    )
                };
                let at = (tp.org.as_str(), tp.name.as_str());
                self.authority
                    .queue_refused_discharge(at, ip, index, e.code(), detail);
                Err(e)
            }
        }
    }

    async fn read_tickets(
        &self,
        path: &str,
        tickets: &[String],
    ) -> Result<Vec<Asked>, DischargeError> {
        if tickets.is_empty() || tickets.len() > MAX_TICKETS {
            return Err(DischargeError::BadRequest(format!(
                "give 1 to {MAX_TICKETS} tickets"
            )));
        }
        let mut asked = Vec::with_capacity(tickets.len());
        for (i, text) in tickets.iter().enumerate() {
            let index = i + 1;
            let bad = |why: &str| DischargeError::Ticket {
                index,
                why: why.to_owned(),
            };
            let (raw, ticket) = Ticket::from_text(text).map_err(|e| bad(&e.to_string()))?;
            let tp = self
                .authority
                .third_party_by_key(ticket.key_id())
                .await?
                .filter(|tp| tp.location_path() == path && location_path(ticket.location()) == path)
                .ok_or(DischargeError::UnknownThirdParty(index))?;
            if tp.kind != ThirdPartyKind::CiOidc {
                return Err(DischargeError::UnknownThirdParty(index));
            }
            asked.push(Asked {
                raw,
                ticket,
                third_party: tp,
            });
        }
        Ok(asked)
    }

    /// Checks the ID token for each ticket's third party and each ticket's conditions;
    /// makes the discharges. On refusal: the ticket's number, the claims if the token
    /// was verified, and why.
    async fn decide(
        &self,
        asked: &[Asked],
        id_token: &str,
        now: u64,
    ) -> Result<(Claims, Vec<String>), (usize, Option<Claims>, DischargeError)> {
        let mut verified: Option<Claims> = None;
        let mut made = Vec::with_capacity(asked.len());
        for (i, a) in asked.iter().enumerate() {
            let index = i + 1;
            let claims = self
                .verify(&a.third_party, id_token, now)
                .await
                .map_err(|e| (index, None, e.at(index)))?;
            let refuse = |why: String| {
                (
                    index,
                    Some(claims.clone()),
                    DischargeError::Condition { index, why },
                )
            };
            // One ID token answers for every ticket: the same identity throughout.
            if let Some(first) = &verified
                && (first.issuer != claims.issuer || first.jti != claims.jti)
            {
                return Err(refuse(
                    "the tickets' third parties disagree on the ID token".into(),
                ));
            }
            let conditions = a.ticket.conditions();
            let judged =
                judge(conditions, &|name| claims.text(name)).map_err(|f| refuse(f.to_string()))?;
            if let Some(event) = claims.text("event_name")
                && DANGEROUS_EVENTS.contains(&event.as_str())
            {
                let named = conditions.iter().any(|c| {
                    matches!(c, Condition::ClaimEquals { name, value } if name == "event_name" && *value == event)
                });
                if !named {
                    return Err(refuse(format!(
                        "jobs triggered by {event} are refused unless a condition names it \
                         (claim event_name = {event})"
                    )));
                }
            }
            if let Some(age) = judged.max_age
                && now.saturating_sub(claims.iat) > age
            {
                return Err(refuse(format!(
                    "the ID token was issued {}s ago, more than its max-age = {}",
                    now.saturating_sub(claims.iat),
                    crate::caveats::format_span(age)
                )));
            }
            let mut until = now.saturating_add(MAX_DISCHARGE).min(claims.exp);
            if let Some(v) = judged.max_validity {
                until = until.min(now.saturating_add(v));
            }
            let key = self
                .authority
                .third_party_private_key(&a.third_party, a.ticket.key_id())
                .map_err(|_| (index, None, DischargeError::Open(index)))?;
            let root = a
                .ticket
                .open(&key)
                .map_err(|_| (index, None, DischargeError::Open(index)))?;
            let d = make_discharge(
                &a.raw,
                a.ticket.location(),
                &root,
                &[Caveat::expires(until)],
            );
            made.push(Bundle::single(d).to_text());
            verified = Some(claims);
        }
        match verified {
            Some(c) => Ok((c, made)),
            None => Err((1, None, DischargeError::BadRequest("no tickets".into()))),
        }
    }

    async fn verify(
        &self,
        tp: &ThirdParty,
        id_token: &str,
        now: u64,
    ) -> Result<Claims, DischargeError> {
        let err = |error| DischargeError::IdToken { index: 0, error };
        let seen = oidc::peek(id_token).map_err(err)?;
        // The issuer first: a token of an unregistered issuer costs no key lookup.
        match &seen.issuer {
            Some(iss) if *iss == tp.issuer => {}
            Some(iss) => {
                return Err(err(OidcError::Issuer(Excerpt(iss.as_bytes()).to_string())));
            }
            None => return Err(err(OidcError::Missing("iss"))),
        }
        let kid = seen.kid.ok_or(err(OidcError::NoKid))?;
        let key = self
            .jwks
            .key(&tp.jwks, &kid, now)
            .await
            .map_err(|error| DischargeError::Keys { index: 0, error })?;
        oidc::verify(id_token, &kid, &key, &tp.issuer, &tp.audience, now).map_err(err)
    }

    /// Records the ID token's use with the discharges' audit events, then answers.
    async fn record(
        &self,
        asked: &[Asked],
        (claims, made): (Claims, Vec<String>),
        actor: Actor,
        now: u64,
    ) -> Result<Vec<String>, DischargeError> {
        let mut hash = sha2::Sha256::new();
        for a in asked {
            hash.update((a.raw.len() as u64).to_be_bytes());
            hash.update(&a.raw);
        }
        let used = IdTokenUse {
            issuer: claims.issuer.clone(),
            jti: claims.jti.clone(),
            tickets: hash.finalize().into(),
            until: claims.exp.saturating_add(oidc::LEEWAY + 60),
        };
        let events = asked
            .iter()
            .enumerate()
            .map(|(i, a)| {
                AuditEvent::new(
                    &a.third_party.org,
                    action::THIRD_PARTY_DISCHARGE,
                    actor,
                    Outcome::Ok,
                    format!(
                        "third party \"{}\" discharged ticket {} of {} (key {}){}",
                        a.third_party.name,
                        i + 1,
                        asked.len(),
                        a.ticket.key_id(),
                        identity(&claims)
                    ),
                    now,
                )
            })
            .collect();
        match self.authority.record_discharges(used, events).await? {
            Recorded::New | Recorded::Again => Ok(made),
            Recorded::Other => Err(DischargeError::Used),
        }
    }
}

impl DischargeError {
    /// The same error, numbered for ticket `index`.
    fn at(self, index: usize) -> Self {
        match self {
            DischargeError::IdToken { error, .. } => DischargeError::IdToken { index, error },
            DischargeError::Keys { error, .. } => DischargeError::Keys { index, error },
            other => other,
        }
    }
}

/// `; issuer …, jti …, repository … (id …), ref …, sha …, run …, workflow_ref …`: who the
/// job was, for the audit log (escaped, cut short; never the ID token).
fn identity(c: &Claims) -> String {
    let mut out = format!(
        "; issuer {}, jti {}",
        Excerpt(c.issuer.as_bytes()),
        c.shown("jti")
    );
    let project = if c.text("repository").is_some() {
        ("repository", "repository_id")
    } else {
        ("project_path", "project_id")
    };
    out.push_str(&format!(
        ", {} {} (id {}), ref {}, sha {}",
        project.0,
        c.shown(project.0),
        c.shown(project.1),
        c.shown("ref"),
        c.shown("sha"),
    ));
    for name in [
        "run_id",
        "pipeline_id",
        "workflow_ref",
        "job_workflow_ref",
        "event_name",
    ] {
        if c.text(name).is_some() {
            out.push_str(&format!(", {name} {}", c.shown(name)));
        }
    }
    out
}
