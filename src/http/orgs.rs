//! `/v1/orgs…`: create an org, show and change its settings.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState, Caller};
use crate::api::{CreateOrgRequest, CreateOrgResponse, OrgBody, UpdateOrgRequest};

type ApiResult<T> = Result<T, ApiError>;

pub(super) async fn create(
    State(state): State<AppState>,
    Caller(who): Caller,
    json: Result<Json<CreateOrgRequest>, JsonRejection>,
) -> ApiResult<Response> {
    let req = json?.0;
    let minted = state.authority.create_org(&who, &req.name).await?;
    Ok((StatusCode::CREATED, Json(CreateOrgResponse::from(&minted))).into_response())
}

pub(super) async fn show(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(org): Path<String>,
) -> ApiResult<Json<OrgBody>> {
    let rec = state.authority.get_org(&who, &org).await?;
    Ok(Json(OrgBody::from(&rec)))
}

pub(super) async fn update(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(org): Path<String>,
    json: Result<Json<UpdateOrgRequest>, JsonRejection>,
) -> ApiResult<Json<OrgBody>> {
    let req = json?.0;
    let rec = state
        .authority
        .set_max_expiry(&who, &org, req.max_expiry_secs)
        .await?;
    Ok(Json(OrgBody::from(&rec)))
}
