//! `/v1/orgs/{org}/tokens` and `/v1/tokens/…`: mint, list, revoke.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::body::optional_json;
use super::{ApiError, AppState, Caller};
use crate::api::{
    MintRequest, MintResponse, RevokeRequest, RevokeResponse, RotateRequest, RotateResponse,
    ServiceRequest, TokenDetailBody, TokenList,
};
use crate::authority::{MintSpec, RevokeOptions, parse_conditions};
use crate::model::TokenKind;

type ApiResult<T> = Result<T, ApiError>;

pub(super) async fn mint(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(org): Path<String>,
    json: Result<Json<MintRequest>, JsonRejection>,
) -> ApiResult<Response> {
    let req = json?.0;
    let kind: TokenKind = req
        .kind
        .parse()
        .map_err(|e: crate::model::UnknownKind| ApiError::bad_request(e.to_string()))?;
    let mut spec = MintSpec::new(kind);
    spec.app = req.app;
    spec.name = req.name;
    spec.expiry_secs = req.expiry_secs;
    match req.require_ci {
        Some(name) => {
            let conditions = parse_conditions(&req.conditions)?;
            spec = spec.require(name, conditions);
        }
        None if !req.conditions.is_empty() => {
            return Err(ApiError::bad_request(
                "conditions belong to a third party: name it with require_ci",
            ));
        }
        None => {}
    }
    state
        .limits
        .mint(who.token_id())
        .map_err(|wait| ApiError::too_many(wait, "this token's mint quota is spent"))?;
    let minted = state.authority.mint(&who, &org, &spec).await?;
    Ok((StatusCode::CREATED, Json(MintResponse::from(&minted))).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    /// Dashboard sessions too.
    #[serde(default)]
    sessions: bool,
}

pub(super) async fn list(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(org): Path<String>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Json<TokenList>> {
    let sessions = query?.0.sessions;
    let views = state.authority.list_tokens(&who, &org, sessions).await?;
    Ok(Json(TokenList {
        tokens: views.iter().map(Into::into).collect(),
    }))
}

/// The optional body of a revocation.
/// A revocation of `id` (`None`: the presented token), or with `dry_run` its preview.
async fn revoke_or_preview(
    state: &AppState,
    who: &crate::authority::Principal,
    id: Option<&str>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<RevokeResponse>> {
    let req: RevokeRequest = optional_json(body)?;
    if req.dry_run {
        let (record, live) = state.authority.revoke_preview(who, id, req.orphan).await?;
        return Ok(Json(RevokeResponse::preview(&record, &live)));
    }
    let opts = RevokeOptions {
        orphan: req.orphan,
        delay_secs: 0,
    };
    let done = match id {
        Some(id) => state.authority.revoke(who, id, opts).await?,
        None => state.authority.revoke_self(who, opts).await?,
    };
    Ok(Json(RevokeResponse::from(&done)))
}

pub(super) async fn revoke(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<RevokeResponse>> {
    revoke_or_preview(&state, &who, Some(&id), body).await
}

pub(super) async fn rotate(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let req: RotateRequest = optional_json(body)?;
    let done = state
        .authority
        .rotate(&who, &id, req.overlap_secs, req.expiry_secs)
        .await?;
    Ok((StatusCode::CREATED, Json(RotateResponse::from(&done))).into_response())
}

pub(super) async fn show(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<TokenDetailBody>> {
    let detail = state.authority.show_token(&who, &id).await?;
    Ok(Json(TokenDetailBody::from(&detail)))
}

pub(super) async fn revoke_self(
    State(state): State<AppState>,
    Caller(who): Caller,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<RevokeResponse>> {
    revoke_or_preview(&state, &who, None, body).await
}

/// `POST /v1/tokens/service` `{"name": …}` (body optional): the presented discharged
/// bundle made a service token.
pub(super) async fn service(
    State(state): State<AppState>,
    Caller(who): Caller,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Response> {
    let req: ServiceRequest = super::body::optional_json(body)?;
    let minted = state
        .authority
        .mint_service(&who, req.name.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(MintResponse::from(&minted))).into_response())
}
