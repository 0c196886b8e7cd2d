//! `/v1/orgs/{org}/third-parties…` (register, list, show, remove, rotate a key, retire
//! one) and `{location}/.well-known/macvault/3p/keys[/{key id}]`, the public keys anyone
//! may fetch.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::body::optional_json;
use super::{ApiError, AppState, Caller};
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request};

use crate::api::{
    AddThirdPartyRequest, DischargeRequest, DischargeResponse, PublishedKeyBody, PublishedKeySet,
    RemoveThirdPartyRequest, RetireKeyRequest, RetireKeyResponse, ThirdPartyBody, ThirdPartyList,
};
use crate::authority::{KEYS_PATH, NewThirdParty};
use crate::discharge::DISCHARGE_PATH;
use crate::model::{Jwks, ThirdPartyKind};
use crate::token::KeyId;

type ApiResult<T> = Result<T, ApiError>;

/// Largest registration body: a JWKS document (escaped in JSON) and the rest.
pub(super) const MAX_ADD_BODY: usize = 4 * crate::authority::MAX_JWKS;

pub(super) async fn add(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(org): Path<String>,
    json: Result<Json<AddThirdPartyRequest>, JsonRejection>,
) -> ApiResult<Response> {
    let req = json?.0;
    let kind: ThirdPartyKind = req.kind.parse().map_err(ApiError::bad_request)?;
    let jwks = match (req.jwks, req.jwks_url) {
        (Some(doc), None) => Jwks::Document(doc),
        (None, Some(url)) => Jwks::Url(url),
        _ => {
            return Err(ApiError::bad_request(
                "give the issuer's keys as exactly one of jwks (the document) or jwks_url",
            ));
        }
    };
    let new = NewThirdParty::new(req.name, kind, req.location, req.issuer, req.audience, jwks);
    let tp = state.authority.add_third_party(&who, &org, &new).await?;
    Ok((StatusCode::CREATED, Json(ThirdPartyBody::from(&tp))).into_response())
}

pub(super) async fn list(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(org): Path<String>,
) -> ApiResult<Json<ThirdPartyList>> {
    let tps = state.authority.third_parties(&who, &org).await?;
    Ok(Json(ThirdPartyList {
        third_parties: tps.iter().map(Into::into).collect(),
    }))
}

pub(super) async fn show(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((org, name)): Path<(String, String)>,
) -> ApiResult<Json<ThirdPartyBody>> {
    let detail = state.authority.third_party(&who, &org, &name).await?;
    Ok(Json(ThirdPartyBody::from(&detail)))
}

pub(super) async fn remove(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((org, name)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<ThirdPartyBody>> {
    let req: RemoveThirdPartyRequest = optional_json(body)?;
    let tp = state
        .authority
        .remove_third_party(&who, &org, &name, req.force)
        .await?;
    Ok(Json(ThirdPartyBody::from(&tp)))
}

pub(super) async fn rotate_key(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((org, name)): Path<(String, String)>,
) -> ApiResult<Json<ThirdPartyBody>> {
    let tp = state
        .authority
        .rotate_third_party_key(&who, &org, &name)
        .await?;
    Ok(Json(ThirdPartyBody::from(&tp)))
}

pub(super) async fn retire_key(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((org, name, key_id)): Path<(String, String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<RetireKeyResponse>> {
    let req: RetireKeyRequest = optional_json(body)?;
    let id = parse_key_id(&key_id)?;
    let retired = state
        .authority
        .retire_third_party_key(&who, &org, &name, id, req.force)
        .await?;
    Ok(Json(RetireKeyResponse::from(&retired)))
}

/// `POST {location}/.well-known/macvault/3p`: unauthenticated, so limited per client
/// address before anything else is done.
async fn discharge(
    state: &AppState,
    location: &str,
    parts: &axum::http::request::Parts,
    body: axum::body::Body,
) -> ApiResult<Response> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let client = super::auth::client_ref(peer, &parts.headers, &state.proxies);
    state
        .discharger
        .admit(client.ip)
        .map_err(ApiError::rate_limited)?;
    let bytes = axum::body::to_bytes(body, super::MAX_BODY)
        .await
        .map_err(|_| ApiError::too_large())?;
    let req: DischargeRequest = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(format!(
            "expected {{\"tickets\": [\"…\"], \"oidc_token\": \"…\"}}: {}",
            crate::caveats::Excerpt(e.to_string().as_bytes())
        ))
    })?;
    let discharges = state
        .discharger
        .discharge(location, &req.tickets, &req.oidc_token, client.ip)
        .await?;
    Ok((StatusCode::CREATED, Json(DischargeResponse { discharges })).into_response())
}

fn parse_key_id(text: &str) -> ApiResult<KeyId> {
    text.parse()
        .map_err(|e: crate::token::TicketError| ApiError::bad_request(e.to_string()))
}

/// What a path under a location asks for.
enum Published<'p> {
    /// `{location}/.well-known/macvault/3p/keys`.
    Set(&'p str),
    /// `{location}/.well-known/macvault/3p/keys/{key id}`.
    One(&'p str, &'p str),
}

/// Whether `path` asks for keys a location publishes (the fallback serves it).
pub(super) fn is_published_keys(path: &str) -> bool {
    published(path).is_some()
}

fn published(path: &str) -> Option<Published<'_>> {
    if let Some(location) = path.strip_suffix(KEYS_PATH) {
        return Some(Published::Set(location));
    }
    let (rest, kid) = path.rsplit_once('/')?;
    let location = rest.strip_suffix(KEYS_PATH)?;
    Some(Published::One(location, kid))
}

/// Every path no route matched: discharges asked of a location
/// ([`DISCHARGE_PATH`]), the public keys published under it ([`KEYS_PATH`], the set, or
/// one by key id), else 404.
pub(super) async fn fallback(State(state): State<AppState>, req: Request) -> ApiResult<Response> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    if let Some(location) = path.strip_suffix(DISCHARGE_PATH) {
        if parts.method != Method::POST {
            return Err(super::health::method_not_allowed().await);
        }
        return discharge(&state, location, &parts, body).await;
    }
    let Some(asked) = published(path) else {
        return Err(super::health::not_found().await);
    };
    if parts.method != Method::GET {
        return Err(super::health::method_not_allowed().await);
    }
    match asked {
        Published::Set(location) => {
            let keys = state.authority.published_keys(location).await?;
            if keys.is_empty() {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "no third party is registered at this location",
                ));
            }
            let set = PublishedKeySet {
                keys: keys.iter().map(PublishedKeyBody::from).collect(),
            };
            Ok(Json(set).into_response())
        }
        Published::One(location, kid) => {
            let id = parse_key_id(kid)?;
            let key = state.authority.published_key(location, id).await?;
            Ok(Json(PublishedKeyBody::from(&key)).into_response())
        }
    }
}
