//! `/v1/orgs/{org}/keys…`: list, rotate and retire root-key versions.

use axum::Json;
use axum::extract::{Path, State};

use super::{ApiError, AppState, Caller};
use crate::api::{KeyBody, KeyList};

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

pub(super) async fn retire(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((org, version)): Path<(String, String)>,
) -> ApiResult<Json<KeyBody>> {
    let version: u32 = version
        .parse()
        .map_err(|_| ApiError::bad_request("a key version is a positive whole number"))?;
    let (org, key) = state.authority.retire_key(&who, &org, version).await?;
    Ok(Json(KeyBody::new(&key, &org)))
}
