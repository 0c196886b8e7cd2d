//! `/v1/orgs/{org}/audit`: the newest page of an org's log, or an older one by cursor.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use serde::Deserialize;

use super::{ApiError, AppState, Caller};
use crate::api::AuditList;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditQuery {
    limit: Option<usize>,
    before: Option<String>,
}

pub(super) async fn list(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(org): Path<String>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<AuditList>, ApiError> {
    let q = query?.0;
    let page = state
        .authority
        .audit(&who, &org, q.limit.unwrap_or(100), q.before.as_deref())
        .await?;
    Ok(Json(AuditList::from(&page)))
}
