//! The Audit page: the org's log, newest first, filtered by action, outcome and token,
//! paged back through the cursors of the API.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::page::{Frame, When, render};
use super::{Signed, UiError};
use crate::authority::AuditFilter;
use crate::http::AppState;
use crate::model::Outcome;

#[derive(Deserialize, Default)]
pub(super) struct AuditQuery {
    #[serde(default)]
    action: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    token: String,
    /// `2026-12-01` or `2026-12-01T10:00` (UTC), or empty.
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    before: Option<String>,
}

/// A date or date and time from the filter form (UTC): `2026-12-01`, `2026-12-01T10:00`
/// or a whole RFC 3339 time; the end of the day or minute for `until`.
fn form_time(text: &str, end: bool) -> Result<Option<u64>, UiError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let (full, extra) = match text.len() {
        10 => (format!("{text}T00:00:00Z"), 86_399),
        16 => (format!("{text}:00Z"), 59),
        _ => (text.to_owned(), 0),
    };
    let t = crate::caveats::parse_time(&full).map_err(|_| {
        UiError::status(
            axum::http::StatusCode::BAD_REQUEST,
            format!("“{text}” is not a date like 2026-12-01 or 2026-12-01T10:00 (UTC)."),
        )
    })?;
    Ok(Some(if end { t + extra } else { t }))
}

struct EventRow {
    when: When,
    action: String,
    outcome: &'static str,
    actor: String,
    actor_id: String,
    source_ip: String,
    detail: String,
    count: u64,
    last: Option<When>,
}

#[derive(Template)]
#[template(path = "ui/audit.html")]
struct AuditPage<'a> {
    frame: Option<&'a Frame>,
    events: Vec<EventRow>,
    q: AuditQuery,
    actions: &'static [&'static str],
    older: Option<String>,
}

const ACTIONS: &[&str] = &[
    "org.create",
    "org.update",
    "app.create",
    "app.delete",
    "token.mint",
    "token.revoke",
    "token.rotate",
    "key.rotate",
    "key.retire",
    "secret.set",
    "secret.unset",
    "secret.rollback",
    "secret.destroy",
    "secret.reveal",
    "secret.key_rotate",
    "secret.allow_env",
    "third_party.add",
    "third_party.remove",
    "third_party.rotate_key",
    "third_party.retire_key",
    "third_party.discharge",
    "request.denied",
    "oauth_client.add",
    "oauth_client.remove",
    "oauth.grant",
    "oauth.grant_revoke",
];

/// One page of the org's log (100 events), newest first.
pub(super) async fn list(
    State(state): State<AppState>,
    signed: Signed,
    Query(q): Query<AuditQuery>,
) -> Result<Response, UiError> {
    let outcome = match q.outcome.as_str() {
        "ok" => Some(Outcome::Ok),
        "denied" => Some(Outcome::Denied),
        _ => None,
    };
    let token = q.token.trim().to_ascii_lowercase();
    let filter = AuditFilter {
        action: Some(q.action.clone()).filter(|a| !a.is_empty()),
        outcome,
        actor: Some(token).filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_hexdigit())),
        since: form_time(&q.since, false)?,
        until: form_time(&q.until, true)?,
    };
    let org = signed.who.org().to_owned();
    let page = state
        .authority
        .audit(&signed.who, &org, 100, q.before.as_deref(), filter)
        .await?;
    let now = state.authority.now();
    let events = page
        .events
        .iter()
        .rev()
        .map(|e| EventRow {
            when: When::at(e.time, now),
            action: e.action.clone(),
            outcome: e.outcome.name(),
            actor: e
                .actor
                .and_then(|a| page.names.get(&a).cloned())
                .unwrap_or_default(),
            actor_id: e.actor.map(|a| a.to_string()).unwrap_or_default(),
            source_ip: e.source_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            detail: e.detail.clone(),
            count: e.count,
            last: (e.count > 1).then(|| When::at(e.last, now)),
        })
        .collect();
    let frame = Frame::of(&signed, "audit");
    Ok(render(&AuditPage {
        frame: Some(&frame),
        events,
        older: page.older.clone(),
        q,
        actions: ACTIONS,
    }))
}
