//! `/v1/orgs/{org}/keys…`: list, rotate and retire root-key versions.

use axum::Json;
use axum::extract::{Path, State};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;

use super::body::optional_json;
use super::{ApiError, AppState, Caller};
use crate::api::{KeyBody, KeyDetail, KeyList, RetireRequest};

type ApiResult<T> = Result<T, ApiError>;

pub(super) async fn list(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(org): Path<String>,
) -> ApiResult<Json<KeyList>> {
    let (org, keys) = state.authority.list_keys(&who, &org).await?;
    Ok(Json(KeyList {
        keys: keys.iter().map(|k| KeyBody::new(k, &org)).collect(),
    }))
}

pub(super) async fn rotate(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(org): Path<String>,
) -> ApiResult<Json<KeyBody>> {
    let (org, key) = state.authority.rotate_key(&who, &org).await?;
    Ok(Json(KeyBody::new(&key, &org)))
}

fn version(text: &str) -> ApiResult<u32> {
    text.parse()
        .map_err(|_| ApiError::bad_request("a key version is a positive whole number"))
}

pub(super) async fn show(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((org, v)): Path<(String, String)>,
) -> ApiResult<Json<KeyDetail>> {
    let preview = state
        .authority
        .retire_preview(&who, &org, version(&v)?)
        .await?;
    Ok(Json(KeyDetail::from(&preview)))
}

pub(super) async fn retire(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((org, v)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<KeyBody>> {
    let req: RetireRequest = optional_json(body)?;
    let (org, key) = state
        .authority
        .retire_key(&who, &org, version(&v)?, req.confirm)
        .await?;
    Ok(Json(KeyBody::new(&key, &org)))
}
