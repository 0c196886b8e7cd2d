//! `/v1/orgs/{org}/secrets…` and `/v1/orgs/{org}/apps/{app}/secrets…`: one handler per
//! operation serves both scopes (the app is absent from the path of the org's own).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse as _, Response};
use serde::Deserialize;

use super::body::optional_json;
use super::{ApiError, AppState, Caller};
use crate::api::{
    AllowedEnvBody, DestroyRequest, DestroyResponse, HistoryBody, KeyStatusBody, RevealAnswer,
    RollbackRequest, SecretBody, SecretList, WithheldBody, WithheldScope, WriteSecretsRequest,
    WriteSecretsResponse,
};
use crate::secrets::{DestroyTarget, Scope};

type ApiResult<T> = Result<T, ApiError>;

/// Largest body of a secrets write (values are up to 64 KiB, an app's up to 1 MiB).
pub const MAX_WRITE_BODY: usize = 2 * 1024 * 1024;

/// The scope in the path.
#[derive(Deserialize)]
pub(super) struct ScopePath {
    org: String,
    #[serde(default)]
    app: Option<String>,
}

impl ScopePath {
    fn scope(&self) -> Scope<'_> {
        scope(&self.org, &self.app)
    }
}

fn scope<'a>(org: &'a str, app: &'a Option<String>) -> Scope<'a> {
    Scope {
        org,
        app: app.as_deref(),
    }
}

/// The scope and secret in the path.
#[derive(Deserialize)]
pub(super) struct SecretPath {
    org: String,
    #[serde(default)]
    app: Option<String>,
    name: String,
}

impl SecretPath {
    fn scope(&self) -> Scope<'_> {
        scope(&self.org, &self.app)
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RevealQuery {
    /// Wait (long poll) until the app's secrets version reaches this.
    #[serde(default)]
    min_version: Option<u64>,
}

/// Whether a request is a long poll (exempt from `--request-timeout`: it has its own
/// cap, [`crate::secrets::LONG_POLL_CAP`]).
pub(super) fn is_long_poll(path: &str, query: Option<&str>) -> bool {
    path.ends_with("/secrets/reveal")
        && query.is_some_and(|q| q.split('&').any(|kv| kv.starts_with("min_version=")))
}

pub(super) async fn reveal(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(path): Path<ScopePath>,
    query: Result<Query<RevealQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let min = query?.0.min_version;
    state
        .limits
        .reveal(who.token_id())
        .map_err(|wait| ApiError::too_many(wait, "this token's reveal quota is spent"))?;
    let revealed = state.secrets.reveal(&who, path.scope(), min).await?;
    Ok(Json(RevealAnswer::from(&revealed)).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    /// For an app: what it sees (its own over the org's).
    #[serde(default)]
    resolved: bool,
}

pub(super) async fn write(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(path): Path<ScopePath>,
    json: Result<Json<WriteSecretsRequest>, JsonRejection>,
) -> ApiResult<Json<WriteSecretsResponse>> {
    let req = json?.0;
    let done = state.secrets.write(&who, path.scope(), req.into()).await?;
    Ok(Json((&done).into()))
}

pub(super) async fn list(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(path): Path<ScopePath>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Json<SecretList>> {
    let resolved = query?.0.resolved;
    let listing = state.secrets.list(&who, path.scope(), resolved).await?;
    Ok(Json((&listing).into()))
}

pub(super) async fn show(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(path): Path<SecretPath>,
) -> ApiResult<Json<SecretBody>> {
    let shown = state.secrets.get(&who, path.scope(), &path.name).await?;
    Ok(Json(SecretBody::new(
        &shown.head,
        shown.digest.as_ref(),
        state.authority.now(),
    )))
}

pub(super) async fn history(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(path): Path<SecretPath>,
) -> ApiResult<Json<HistoryBody>> {
    let (head, versions) = state
        .secrets
        .history(&who, path.scope(), &path.name)
        .await?;
    Ok(Json(HistoryBody {
        secret: SecretBody::new(&head.head, head.digest.as_ref(), state.authority.now()),
        versions: versions.iter().map(Into::into).collect(),
    }))
}

pub(super) async fn rollback(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(path): Path<SecretPath>,
    json: Result<Json<RollbackRequest>, JsonRejection>,
) -> ApiResult<Json<WriteSecretsResponse>> {
    let req = json?.0;
    let done = state
        .secrets
        .rollback(&who, path.scope(), &path.name, req.version)
        .await?;
    Ok(Json((&done).into()))
}

pub(super) async fn destroy(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(path): Path<SecretPath>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<DestroyResponse>> {
    let req: DestroyRequest = optional_json(body)?;
    let target = match (req.version, req.all) {
        (Some(v), false) => DestroyTarget::Version(v),
        (None, true) => DestroyTarget::All,
        _ => {
            return Err(ApiError::bad_request(
                "say which values to destroy: {\"version\": N} or {\"all\": true}",
            ));
        }
    };
    let done = state
        .secrets
        .destroy(&who, path.scope(), &path.name, target)
        .await?;
    Ok(Json((&done).into()))
}

#[derive(Deserialize)]
pub(super) struct OrgPath {
    org: String,
}

pub(super) async fn allowed_env(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(path): Path<ScopePath>,
) -> ApiResult<Json<AllowedEnvBody>> {
    let names = state.secrets.list_allowed_env(&who, path.scope()).await?;
    Ok(Json(AllowedEnvBody { names }))
}

pub(super) async fn allow_env(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(path): Path<ScopePath>,
    json: Result<Json<AllowedEnvBody>, JsonRejection>,
) -> ApiResult<Json<AllowedEnvBody>> {
    change_allowed_env(&state, &who, &path, json?.0, true).await
}

pub(super) async fn disallow_env(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(path): Path<ScopePath>,
    json: Result<Json<AllowedEnvBody>, JsonRejection>,
) -> ApiResult<Json<AllowedEnvBody>> {
    change_allowed_env(&state, &who, &path, json?.0, false).await
}

async fn change_allowed_env(
    state: &AppState,
    who: &crate::authority::Principal,
    path: &ScopePath,
    body: AllowedEnvBody,
    allowed: bool,
) -> ApiResult<Json<AllowedEnvBody>> {
    let names = state
        .secrets
        .set_allowed_env(who, path.scope(), &body.names, allowed)
        .await?;
    Ok(Json(AllowedEnvBody { names }))
}

pub(super) async fn withheld(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(path): Path<OrgPath>,
) -> ApiResult<Json<WithheldBody>> {
    let scopes = state.secrets.loading_code(&who, &path.org).await?;
    Ok(Json(WithheldBody {
        scopes: scopes
            .into_iter()
            .map(|(app, names)| WithheldScope { app, names })
            .collect(),
    }))
}

pub(super) async fn key_status(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(path): Path<OrgPath>,
) -> ApiResult<Json<KeyStatusBody>> {
    let status = state.secrets.key_status(&who, &path.org).await?;
    Ok(Json((&status).into()))
}

pub(super) async fn rotate_key(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(path): Path<OrgPath>,
) -> ApiResult<Json<KeyStatusBody>> {
    let status = state.secrets.rotate_key(&who, &path.org).await?;
    Ok(Json((&status).into()))
}
