//! `/v1/orgs…`: create an org, show and change its settings.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;

use super::body::optional_json;
use super::{ApiError, AppState, Caller};
use crate::api::{
    CreateOrgRequest, CreateOrgResponse, IssueOrgTokenRequest, MintResponse, OrgBody, OrgList,
    UpdateOrgRequest,
};
use crate::authority::OrgChange;

type ApiResult<T> = Result<T, ApiError>;

pub(super) async fn create(
    State(state): State<AppState>,
    Caller(who): Caller,
    json: Result<Json<CreateOrgRequest>, JsonRejection>,
) -> ApiResult<Response> {
    let req = json?.0;
    let minted = state
        .authority
        .create_org(&who, &req.name, req.expiry_secs)
        .await?;
    Ok((StatusCode::CREATED, Json(CreateOrgResponse::from(&minted))).into_response())
}

pub(super) async fn list(
    State(state): State<AppState>,
    Caller(who): Caller,
) -> ApiResult<Json<OrgList>> {
    let orgs = state.authority.list_orgs(&who).await?;
    Ok(Json(OrgList {
        orgs: orgs.iter().map(OrgBody::from).collect(),
    }))
}

pub(super) async fn issue_token(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(org): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let req: IssueOrgTokenRequest = optional_json(body)?;
    let minted = state
        .authority
        .issue_org_token(&who, &org, req.expiry_secs)
        .await?;
    Ok((StatusCode::CREATED, Json(MintResponse::from(&minted))).into_response())
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
    if req.max_expiry_secs.is_none() && req.ledger_retention_secs.is_none() {
        return Err(ApiError::bad_request(
            "nothing to change: give max_expiry_secs or ledger_retention_secs (null removes it)",
        ));
    }
    let change = OrgChange {
        max_expiry_secs: req.max_expiry_secs,
        ledger_retention_secs: req.ledger_retention_secs,
    };
    let rec = state.authority.update_org(&who, &org, change).await?;
    Ok(Json(OrgBody::from(&rec)))
}
