//! `/v1/orgs/{org}/audit`: the newest page of an org's log, or an older one by cursor.

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
    action: Option<String>,
    outcome: Option<String>,
    actor: Option<String>,
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
    let filter = AuditFilter {
        action: q.action,
        outcome,
        actor: q.actor.map(|a| a.to_ascii_lowercase()),
    };
    let page = state
        .authority
        .audit(
            &who,
            &org,
            q.limit.unwrap_or(100),
            q.before.as_deref(),
            filter,
        )
        .await?;
    Ok(Json(AuditList::from(&page)))
}
