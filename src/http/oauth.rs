//! The OAuth 2.0 provider's endpoints (docs/OAUTH.md): metadata (RFC 8414), the
//! authorization endpoint, which checks a request and sends the browser on to the
//! consent page (`ui::consent`), the token endpoint (RFC 6749 §3.2, RFC 7636) and
//! revocation (RFC 7009); and `/v1/orgs/{org}/oauth-grants`, where people list and
//! revoke what they granted.
//!
//! The token and revocation endpoints speak the RFCs' own error bodies
//! (`{"error", "error_description"}`), with the status of the error's class.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::json;

use super::ui::UiError;
use super::{ApiError, AppState, Caller};
use crate::api::{OAuthGrantBody, OAuthGrantList};
use crate::authority::{
    AuthorizeError, AuthorizeParams, Classify as _, ClientCredentials, Scope, TokenError,
    TokenRequest,
};

/// This server's issuer: `serve --public-url`, else the scheme and `Host` the request
/// came with.
pub(super) fn issuer(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_graphic() && b != b'/' && b != b'\\')
        })
        .unwrap_or("localhost");
    let scheme = if state.tls { "https" } else { "http" };
    format!("{scheme}://{host}")
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414).
pub(super) async fn metadata(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let issuer = issuer(&state, &headers);
    let scopes = [
        Scope::SecretsRead,
        Scope::SecretsWrite,
        Scope::SecretsReveal,
        Scope::TokensRead,
        Scope::AuditRead,
    ]
    .map(|s| s.text());
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/oauth/authorize"),
        "token_endpoint": format!("{issuer}/oauth/token"),
        "revocation_endpoint": format!("{issuer}/oauth/revoke"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "scopes_supported": scopes,
        "service_documentation": format!("{issuer}/ui"),
    }))
    .into_response()
}

/// The parameters of an authorization request's query: each at most once.
pub(super) fn authorize_params(query: Option<&str>) -> Result<AuthorizeParams, UiError> {
    let bad = || {
        UiError::status(
            StatusCode::BAD_REQUEST,
            "This authorization request is malformed (a parameter given twice, or not \
             URL-encoded). Go back to the application and try again.",
        )
    };
    serde_urlencoded::from_str(query.unwrap_or("")).map_err(|_| bad())
}

/// What to answer to an authorization request that cannot go on: a page for the person
/// when the client or its redirect URI cannot be trusted, else the client's redirect
/// URI with the error.
pub(super) fn refuse_authorization(e: AuthorizeError) -> Response {
    match e {
        AuthorizeError::Show(why) => UiError::status(
            StatusCode::BAD_REQUEST,
            format!("This application's request cannot be trusted: {why}. Nothing was granted."),
        )
        .into_response(),
        AuthorizeError::Redirect { to, .. } => Redirect::to(&to).into_response(),
        AuthorizeError::Store(e) => UiError::from(e).into_response(),
    }
}

/// `GET /oauth/authorize`: a good request goes on to the consent page, with the same
/// parameters.
pub(super) async fn authorize(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Response {
    let params = match authorize_params(query.as_deref()) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    match state.authority.check_authorization(&params).await {
        Ok(_) => {
            Redirect::to(&format!("/ui/consent?{}", query.unwrap_or_default())).into_response()
        }
        Err(e) => refuse_authorization(e),
    }
}

/// A form body's fields, each at most once (RFC 6749 §3.2).
fn form(body: &[u8]) -> Result<Vec<(String, String)>, TokenError> {
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|_| TokenError::InvalidRequest("the body is not a form"))?;
    for (i, (k, _)) in fields.iter().enumerate() {
        if fields[..i].iter().any(|(k2, _)| k2 == k) {
            return Err(TokenError::InvalidRequest("a parameter is given twice"));
        }
    }
    Ok(fields)
}

fn field<'f>(fields: &'f [(String, String)], name: &str) -> Option<&'f str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The client's credentials: HTTP Basic (each half form-encoded, RFC 6749 §2.3.1) or
/// `client_id` (and `client_secret`) in the body, not both.
fn credentials(
    headers: &HeaderMap,
    fields: &[(String, String)],
) -> Result<ClientCredentials, TokenError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "));
    let (body_id, body_secret) = (field(fields, "client_id"), field(fields, "client_secret"));
    let Some(basic) = basic else {
        let id = body_id.ok_or(TokenError::InvalidClient)?;
        return Ok(ClientCredentials {
            id: id.to_owned(),
            secret: body_secret.map(str::to_owned),
        });
    };
    if body_secret.is_some() {
        return Err(TokenError::InvalidRequest(
            "use one way of client authentication, not two",
        ));
    }
    let decoded = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.decode(basic.trim())
    };
    let text = decoded
        .ok()
        .and_then(|d| String::from_utf8(d).ok())
        .ok_or(TokenError::InvalidClient)?;
    let (id, secret) = text.split_once(':').ok_or(TokenError::InvalidClient)?;
    let decode = |s: &str| -> Result<String, TokenError> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(&format!("v={s}")).map_err(|_| TokenError::InvalidClient)?;
        Ok(pairs.into_iter().next().map(|(_, v)| v).unwrap_or_default())
    };
    let id = decode(id)?;
    if body_id.is_some_and(|b| b != id) {
        return Err(TokenError::InvalidRequest(
            "client_id differs from the Basic credentials",
        ));
    }
    Ok(ClientCredentials {
        id,
        secret: Some(decode(secret)?),
    })
}

/// An RFC 6749 §5.2 error answer.
fn token_error(e: &TokenError, basic: bool) -> Response {
    let status = super::error::status_of(e.class());
    let description = match e.class() {
        crate::authority::ErrorClass::Internal => {
            tracing::error!(error = %e, "the OAuth token endpoint failed");
            "internal error".to_owned()
        }
        _ => e.to_string(),
    };
    let mut res = (
        status,
        Json(json!({"error": e.code(), "error_description": description})),
    )
        .into_response();
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::UNAUTHORIZED && basic {
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"macvault\""),
        );
    }
    res
}

/// `POST /oauth/token`: `authorization_code` (with PKCE) or `refresh_token`.
pub(super) async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let basic = headers.contains_key(header::AUTHORIZATION);
    let answer = async {
        let fields = form(&body)?;
        let creds = credentials(&headers, &fields)?;
        let owned = |name: &str| field(&fields, name).map(str::to_owned);
        let req = match field(&fields, "grant_type") {
            Some("authorization_code") => TokenRequest::Code {
                code: owned("code").ok_or(TokenError::InvalidRequest("code is required"))?,
                redirect_uri: owned("redirect_uri"),
                verifier: owned("code_verifier"),
            },
            Some("refresh_token") => TokenRequest::Refresh {
                token: owned("refresh_token")
                    .ok_or(TokenError::InvalidRequest("refresh_token is required"))?,
            },
            Some(_) => return Err(TokenError::UnsupportedGrantType),
            None => return Err(TokenError::InvalidRequest("grant_type is required")),
        };
        state.authority.oauth_token(&creds, req).await
    };
    match answer.await {
        Ok(issued) => {
            let mut res = Json(json!({
                "access_token": issued.access_token.expose(),
                "token_type": "Bearer",
                "expires_in": issued.expires_in,
                "refresh_token": issued.refresh_token.expose(),
                "scope": issued.scope,
            }))
            .into_response();
            let h = res.headers_mut();
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            res
        }
        Err(e) => token_error(&e, basic),
    }
}

/// `POST /oauth/revoke` (RFC 7009): 200 whether or not the token was known.
pub(super) async fn revoke(State(state): State<AppState>, parts: Parts, body: Bytes) -> Response {
    let basic = parts.headers.contains_key(header::AUTHORIZATION);
    let from = super::auth::client_of(&parts, &state.proxies);
    let answer = async {
        let fields = form(&body)?;
        let creds = credentials(&parts.headers, &fields)?;
        let token =
            field(&fields, "token").ok_or(TokenError::InvalidRequest("token is required"))?;
        state.authority.oauth_revoke(&creds, token, from).await
    };
    match answer.await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => token_error(&e, basic),
    }
}

/// `GET /v1/orgs/{org}/oauth-grants`.
pub(super) async fn grants(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(org): Path<String>,
) -> Result<Json<OAuthGrantList>, ApiError> {
    let grants = state.authority.oauth_grants(&who, &org).await?;
    Ok(Json(OAuthGrantList {
        grants: grants
            .iter()
            .map(|g| OAuthGrantBody::new(&g.grant, g.last_used, g.live))
            .collect(),
    }))
}

/// `POST /v1/orgs/{org}/oauth-grants/{id}/revoke`.
pub(super) async fn revoke_grant(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((org, id)): Path<(String, String)>,
) -> Result<Json<OAuthGrantBody>, ApiError> {
    let grant = state.authority.revoke_oauth_grant(&who, &org, &id).await?;
    Ok(Json(OAuthGrantBody::new(&grant, grant.last_used, false)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(id: &str, secret: &str) -> HeaderMap {
        use base64::Engine as _;
        let text = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {text}")).unwrap(),
        );
        h
    }

    #[test]
    fn client_credentials_come_from_basic_or_the_body_not_both() {
        let body = form(b"grant_type=x&client_id=mvc_1&client_secret=s%2B1").unwrap();
        let c = credentials(&HeaderMap::new(), &body).unwrap();
        assert_eq!((c.id.as_str(), c.secret.as_deref()), ("mvc_1", Some("s+1")));
        let c = credentials(&basic("mvc_1", "s%2B1"), &form(b"grant_type=x").unwrap()).unwrap();
        assert_eq!((c.id.as_str(), c.secret.as_deref()), ("mvc_1", Some("s+1")));
        let both = credentials(&basic("mvc_1", "s"), &body).unwrap_err();
        assert_eq!(both.code(), "invalid_request");
        let none = credentials(&HeaderMap::new(), &form(b"grant_type=x").unwrap()).unwrap_err();
        assert_eq!(none.code(), "invalid_client");
        let twice = form(b"code=a&code=b").unwrap_err();
        assert_eq!(twice.code(), "invalid_request");
    }
}
