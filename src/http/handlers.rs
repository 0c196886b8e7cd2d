//! Handlers: extract, call the authority (off the async threads when it touches the
//! disk), map the answer.

use std::any::Any;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{ApiError, AppState, Caller};
use crate::api::{
    AuditEventBody, AuditList, CreateOrgRequest, CreateOrgResponse, KeyBody, KeyList, LastUsedBody,
    MintRequest, MintResponse, OrgBody, TokenList, TokenRecordBody, UpdateOrgRequest,
};
use crate::authority::{AuthorityError, MintSpec};
use crate::caveats::format_time;
use crate::store::{AuditRecord, KeyRecord, OrgRecord, Outcome, TokenRecord};
use crate::token::TokenId;

type ApiResult<T> = Result<T, ApiError>;

/// Runs a blocking authority call on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AuthorityError> + Send + 'static,
) -> ApiResult<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(e) => {
            tracing::error!(error = %e, "blocking task failed");
            Err(ApiError::internal())
        }
    }
}

fn body<T>(json: Result<Json<T>, JsonRejection>) -> ApiResult<T> {
    Ok(json?.0)
}

pub(super) async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

pub(super) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

pub(super) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
    )
}

pub(super) fn panic_response(_: Box<dyn Any + Send + 'static>) -> Response {
    tracing::error!("a handler panicked");
    ApiError::internal().into_response()
}

pub(super) async fn create_org(
    State(state): State<AppState>,
    caller: Caller,
    json: Result<Json<CreateOrgRequest>, JsonRejection>,
) -> ApiResult<Response> {
    let req = body(json)?;
    let minted =
        blocking(move || state.create_org(&caller.token, &req.name, &caller.client)).await?;
    let answer = CreateOrgResponse {
        org: minted.record.org.clone(),
        token: minted.token.expose().to_owned(),
        token_id: minted.record.id.to_string(),
        expires: format_time(minted.record.expires),
    };
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

pub(super) async fn get_org(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> ApiResult<Json<OrgBody>> {
    let rec = blocking(move || state.get_org(&caller.token, &org, &caller.client)).await?;
    Ok(Json(org_body(&rec)))
}

pub(super) async fn update_org(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    json: Result<Json<UpdateOrgRequest>, JsonRejection>,
) -> ApiResult<Json<OrgBody>> {
    let req = body(json)?;
    let rec = blocking(move || {
        state.set_max_expiry(&caller.token, &org, req.max_expiry_secs, &caller.client)
    })
    .await?;
    Ok(Json(org_body(&rec)))
}

pub(super) async fn mint(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    json: Result<Json<MintRequest>, JsonRejection>,
) -> ApiResult<Response> {
    let req = body(json)?;
    let spec = MintSpec {
        preset: req.kind.parse()?,
        app: req.app,
        name: req.name,
        expiry_secs: req.expiry_secs,
    };
    let minted = blocking(move || state.mint(&caller.token, &org, &spec, &caller.client)).await?;
    let answer = MintResponse {
        token: minted.token.expose().to_owned(),
        record: token_body(&minted.record),
    };
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

pub(super) async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> ApiResult<Json<TokenList>> {
    let recs = blocking(move || state.list_tokens(&caller.token, &org, &caller.client)).await?;
    Ok(Json(TokenList {
        tokens: recs.iter().map(token_body).collect(),
    }))
}

pub(super) async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<TokenRecordBody>> {
    let id: TokenId = id
        .parse()
        .map_err(|e: crate::token::IdentifierError| ApiError::bad_request(e.to_string()))?;
    let rec = blocking(move || state.revoke(&caller.token, &id, &caller.client)).await?;
    Ok(Json(token_body(&rec)))
}

pub(super) async fn revoke_self(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<TokenRecordBody>> {
    let rec = blocking(move || state.revoke_self(&caller.token, &caller.client)).await?;
    Ok(Json(token_body(&rec)))
}

pub(super) async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> ApiResult<Json<KeyList>> {
    let (org, keys) =
        blocking(move || state.list_keys(&caller.token, &org, &caller.client)).await?;
    Ok(Json(KeyList {
        keys: keys.iter().map(|k| key_body(&org, k)).collect(),
    }))
}

pub(super) async fn rotate_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> ApiResult<Json<KeyBody>> {
    let (org, key) =
        blocking(move || state.rotate_key(&caller.token, &org, &caller.client)).await?;
    Ok(Json(key_body(&org, &key)))
}

pub(super) async fn retire_key(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, version)): Path<(String, String)>,
) -> ApiResult<Json<KeyBody>> {
    let version: u32 = version
        .parse()
        .map_err(|_| ApiError::bad_request("a key version is a positive whole number"))?;
    let (org, key) =
        blocking(move || state.retire_key(&caller.token, &org, version, &caller.client)).await?;
    Ok(Json(key_body(&org, &key)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditQuery {
    limit: Option<usize>,
}

pub(super) async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> ApiResult<Json<AuditList>> {
    let limit = query?.0.limit.unwrap_or(100);
    let events = blocking(move || state.audit(&caller.token, &org, limit, &caller.client)).await?;
    Ok(Json(AuditList {
        events: events.iter().map(audit_body).collect(),
    }))
}

fn org_body(rec: &OrgRecord) -> OrgBody {
    OrgBody {
        name: rec.name.clone(),
        created: format_time(rec.created),
        current_key_version: rec.current_key,
        max_expiry_secs: rec.max_expiry_secs,
    }
}

fn key_body(org: &OrgRecord, k: &KeyRecord) -> KeyBody {
    KeyBody {
        version: k.version,
        created: format_time(k.created),
        retired: k.retired.map(format_time),
        current: k.version == org.current_key,
    }
}

fn token_body(r: &TokenRecord) -> TokenRecordBody {
    TokenRecordBody {
        id: r.id.to_string(),
        org: r.org.clone(),
        name: r.name.clone(),
        kind: r.kind.name().to_owned(),
        app: r.app.clone(),
        caveats: r.caveats.clone(),
        key_version: r.key_version,
        created: format_time(r.created),
        creator: r.creator.map(|c| c.to_string()),
        expires: format_time(r.expires),
        fingerprint: r.fingerprint.clone(),
        revoked: r.revoked.map(format_time),
        last_used: r.last_used.as_ref().map(|u| LastUsedBody {
            time: format_time(u.time),
            ip: u.ip.map(|ip| ip.to_string()),
            user_agent: u.user_agent.clone(),
        }),
    }
}

fn audit_body(e: &AuditRecord) -> AuditEventBody {
    AuditEventBody {
        seq: e.seq,
        time: format_time(e.time),
        org: e.org.clone(),
        action: e.action.clone(),
        actor: e.actor.map(|a| a.to_string()),
        source_ip: e.source_ip.map(|ip| ip.to_string()),
        outcome: match e.outcome {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
        }
        .to_owned(),
        detail: e.detail.clone(),
    }
}
