//! `/v1/orgs/{org}/audit`: the newest page of an org's log, an older one by cursor
//! (`before`), or a follow (`after`): a long poll for newer events, exempt from
//! `--request-timeout` (it has its own cap, [`crate::authority::FOLLOW_CAP`]).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use serde::Deserialize;

use super::{ApiError, AppState, Caller};
use crate::api::AuditList;
use crate::authority::AuditFilter;
use crate::model::Outcome;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditQuery {
    limit: Option<usize>,
    before: Option<String>,
    after: Option<String>,
    action: Option<String>,
    outcome: Option<String>,
    actor: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

pub(super) async fn list(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(org): Path<String>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<AuditList>, ApiError> {
    let q = query?.0;
    let outcome = match q.outcome.as_deref() {
        None => None,
        Some("ok") => Some(Outcome::Ok),
        Some("denied") => Some(Outcome::Denied),
        Some(_) => return Err(ApiError::bad_request("outcome is ok or denied")),
    };
    if q.actor
        .as_deref()
        .is_some_and(|a| a.is_empty() || !a.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(ApiError::bad_request(
            "actor is a token id or a prefix of one (hex)",
        ));
    }
    let time = |t: Option<String>, name: &str| {
        t.map(|t| {
            crate::caveats::parse_time(&t).map_err(|_| {
                ApiError::bad_request(format!("{name} is a time like 2026-12-01T00:00:00Z"))
            })
        })
        .transpose()
    };
    let filter = AuditFilter {
        action: q.action,
        outcome,
        actor: q.actor.map(|a| a.to_ascii_lowercase()),
        since: time(q.since, "since")?,
        until: time(q.until, "until")?,
    };
    let limit = q.limit.unwrap_or(100);
    let page = match (q.before, q.after) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "before (older events) and after (a follow) exclude each other",
            ));
        }
        (before, None) => {
            let before = before.as_deref();
            state
                .authority
                .audit(&who, &org, limit, before, filter)
                .await?
        }
        (None, Some(after)) => {
            let authority = &state.authority;
            authority
                .follow_audit(&who, &org, limit, &after, filter)
                .await?
        }
    };
    Ok(Json(AuditList::from(&page)))
}

/// Whether a request is a follow of the audit log (a long poll).
pub(super) fn is_follow(path: &str, query: Option<&str>) -> bool {
    path.ends_with("/audit")
        && query.is_some_and(|q| q.split('&').any(|kv| kv.starts_with("after=")))
}
