//! `/v1/orgs/{org}/apps…`: create, list, show and delete apps.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::body::optional_json;
use super::{ApiError, AppState, Caller};
use crate::api::{AppBody, AppList, CreateAppRequest, DeleteAppRequest, DeletedAppBody};

type ApiResult<T> = Result<T, ApiError>;

pub(super) async fn create(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(org): Path<String>,
    json: Result<Json<CreateAppRequest>, JsonRejection>,
) -> ApiResult<Response> {
    let req = json?.0;
    state.authority.create_app(&who, &org, &req.name).await?;
    let detail = state.authority.app(&who, &org, &req.name).await?;
    Ok((StatusCode::CREATED, Json(AppBody::new(&detail, false))).into_response())
}

pub(super) async fn list(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(org): Path<String>,
) -> ApiResult<Json<AppList>> {
    let apps = state.authority.apps(&who, &org).await?;
    Ok(Json(AppList {
        apps: apps.iter().map(|d| AppBody::new(d, false)).collect(),
    }))
}

pub(super) async fn show(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((org, app)): Path<(String, String)>,
) -> ApiResult<Json<AppBody>> {
    let detail = state.authority.app(&who, &org, &app).await?;
    Ok(Json(AppBody::new(&detail, true)))
}

pub(super) async fn delete(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((org, app)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<DeletedAppBody>> {
    let req: DeleteAppRequest = optional_json(body)?;
    let done = state
        .authority
        .delete_app(&who, &org, &app, req.force, req.dry_run)
        .await?;
    Ok(Json(DeletedAppBody::new(&done, req.dry_run)))
}
