//! The failure limiter on the router (`crate::limits`): a 401 or 403 — and any 4xx of
//! the discharge endpoint — is charged to the client's address after it happens; an
//! address whose budget is spent gets 429 with `Retry-After` instead. Answers that are
//! not failures pass untouched and charge nothing. (`/v1/verify` charges in
//! `verify.rs`, which can tell a bad token from a denying one.)

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};

use super::auth::client_ref;
use super::{ApiError, AppState};
use crate::discharge::DISCHARGE_PATH;
use crate::limits::Charged;

/// Whether a request is to the discharge endpoint.
fn is_discharge(method: &Method, path: &str) -> bool {
    method == Method::POST && path.ends_with(DISCHARGE_PATH)
}

/// Whether `status` answers a request that failed in a way worth charging.
fn charged(discharge: bool, status: StatusCode) -> bool {
    status == StatusCode::UNAUTHORIZED
        || status == StatusCode::FORBIDDEN
        || (discharge && status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS)
}

/// Middleware: runs the request, then charges its failure (see the module doc).
pub(super) async fn charge_failures(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let ip = client_ref(peer, req.headers(), &state.proxies).ip;
    let discharge = is_discharge(req.method(), req.uri().path());
    let response = next.run(req).await;
    if !charged(discharge, response.status()) {
        return response;
    }
    match state.limits.charge_failure(Charged::address(ip)) {
        Ok(()) => response,
        Err(wait) => ApiError::rate_limited(wait).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_charged_and_nothing_else() {
        let get = Method::GET;
        let post = Method::POST;
        let d = "/gha/.well-known/macvault/3p";
        let charged_for = |m: &Method, path: &str, status| charged(is_discharge(m, path), status);
        assert!(charged_for(&get, "/v1/orgs/acme", StatusCode::UNAUTHORIZED));
        assert!(charged_for(
            &post,
            "/v1/orgs/acme/tokens",
            StatusCode::FORBIDDEN
        ));
        assert!(!charged_for(&get, "/v1/orgs/acme", StatusCode::OK));
        assert!(!charged_for(&get, "/v1/orgs/acme", StatusCode::NOT_FOUND));
        assert!(!charged_for(
            &post,
            "/v1/orgs/acme/tokens",
            StatusCode::BAD_REQUEST
        ));
        assert!(charged_for(&post, d, StatusCode::BAD_REQUEST));
        assert!(charged_for(&post, d, StatusCode::CONFLICT));
        assert!(!charged_for(&post, d, StatusCode::TOO_MANY_REQUESTS));
        assert!(!charged_for(&post, d, StatusCode::CREATED));
    }
}
