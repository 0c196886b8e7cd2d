//! `/v1/orgs/{org}/oauth-clients…`: register, list, show and remove OAuth clients (org
//! tokens as minted only; a confidential client's secret is in the 201 answer, once).

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState, Caller};
use crate::api::{AddOAuthClientRequest, AddOAuthClientResponse, OAuthClientBody, OAuthClientList};
use crate::authority::NewOAuthClient;

type ApiResult<T> = Result<T, ApiError>;

pub(super) async fn add(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(org): Path<String>,
    json: Result<Json<AddOAuthClientRequest>, JsonRejection>,
) -> ApiResult<Response> {
    let req = json?.0;
    let new = NewOAuthClient {
        name: req.name,
        redirect_uris: req.redirect_uris,
        public: req.public,
        allow_reveal: req.allow_reveal,
    };
    let done = state.authority.add_oauth_client(&who, &org, &new).await?;
    let body = AddOAuthClientResponse {
        client: OAuthClientBody::from(&done.client),
        client_secret: done.secret.as_ref().map(|s| s.expose().to_owned()),
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub(super) async fn list(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(org): Path<String>,
) -> ApiResult<Json<OAuthClientList>> {
    let clients = state.authority.oauth_clients(&who, &org).await?;
    Ok(Json(OAuthClientList {
        clients: clients.iter().map(OAuthClientBody::from).collect(),
    }))
}

pub(super) async fn show(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<Json<OAuthClientBody>> {
    let client = state.authority.oauth_client(&who, &org, &id).await?;
    Ok(Json(OAuthClientBody::from(&client)))
}

pub(super) async fn remove(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<Json<OAuthClientBody>> {
    let client = state.authority.remove_oauth_client(&who, &org, &id).await?;
    Ok(Json(OAuthClientBody::from(&client)))
}
