//! The bearer extractor: `Authorization: Bearer mvt_…` to a [`Principal`].

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

use super::{ApiError, AppState, TrustedProxies};
use crate::authority::{Client, ClientRef, Principal};

/// An authenticated caller (not yet authorized for anything: each operation checks).
#[derive(Debug)]
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let client = client_of(parts, &state.proxies);
        let text = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer)
            .ok_or_else(ApiError::missing_token)?;
        let principal = state.authority.authenticate(text, client).await?;
        Ok(Caller(principal))
    }
}

/// Who is calling, as far as the request's connection and headers tell.
pub(super) fn client_of(parts: &Parts, proxies: &TrustedProxies) -> Client {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let seen = client_ref(peer, &parts.headers, proxies);
    Client {
        ip: seen.ip,
        user_agent: seen.user_agent.map(str::to_owned),
    }
}

/// Who is calling, as far as the connection and headers tell, borrowed from them.
pub(super) fn client_ref<'h>(
    peer: Option<SocketAddr>,
    headers: &'h HeaderMap,
    proxies: &TrustedProxies,
) -> ClientRef<'h> {
    ClientRef {
        ip: peer.and_then(|p| proxies.client_ip(p.ip(), headers)),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
    }
}

/// The credentials of `Bearer <token>`; the scheme name is case-insensitive (RFC 9110).
fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::bearer;

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer("Bearer mvt_x"), Some("mvt_x"));
        assert_eq!(bearer("bearer mvt_x "), Some("mvt_x"));
        assert_eq!(bearer("BEARER  mvt_x"), Some("mvt_x"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("mvt_x"), None);
    }
}
