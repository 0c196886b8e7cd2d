//! `POST /v1/verify`, served beside the router rather than through it.
//!
//! This is the endpoint other services call on every request they authorize, so it
//! is the one whose cost is measured (`benches/load.sh`). Going through the router
//! costs a route lookup, four layers of boxed futures, a cloned header map and a timer
//! per request; here the same guarantees are kept directly:
//! - body limit: [`MAX_BODY`], answered 413 as the router's limit does;
//! - timeout: `serve --request-timeout` on reading the body, the only part that waits
//!   on the client; the timer is armed only if the body was not already complete;
//! - panics: the synchronous part runs under `catch_unwind` and answers 500, as the
//!   router's `CatchPanicLayer` does;
//! - errors: the same JSON error answers ([`ApiError`]).

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::task::Poll;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};

use super::auth::client_ref;
use super::metrics::{Decision, Metrics};
use super::{ApiError, AppState, MAX_BODY};
use crate::api::{VerifyAnswer, VerifyRequest};
use crate::authority::{AuthError, Authority, Classify as _, ClientRef};
use crate::limits::Charged;
use crate::token::{FailureClass, TokenId};

/// The path this module answers.
pub(super) const PATH: &str = "/v1/verify";

/// Answers any request for [`PATH`]: POST is verified, other methods get 405.
pub(super) async fn serve(
    state: AppState,
    peer: SocketAddr,
    timeout: Duration,
    req: Request,
) -> Response {
    // Only when metrics are on: reading the clock is most of their cost here.
    let started = state.metrics.as_ref().map(|_| Instant::now());
    let (response, decision) = respond(&state, peer, timeout, req).await;
    if let (Some(metrics), Some(started)) = (&state.metrics, started) {
        metrics.verify_answered(started, response.status(), decision);
    }
    tracing::debug!(status = %response.status(), "POST /v1/verify");
    response
}

/// The answer, and what was decided if the request got as far as a decision.
async fn respond(
    state: &AppState,
    peer: SocketAddr,
    timeout: Duration,
    req: Request,
) -> (Response, Option<Decision>) {
    if req.method() != Method::POST {
        let mut res = super::health::method_not_allowed().await.into_response();
        res.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return (res, None);
    }
    let (parts, body) = req.into_parts();
    if super::body::declared_length(&parts.headers).is_some_and(|n| n > MAX_BODY as u64) {
        return (super::body::too_large_now(body), None);
    }
    let bytes = match read_body(body, timeout).await {
        Ok(b) => b,
        Err(e) => return (e.into_response(), None),
    };
    let run = || {
        std::panic::catch_unwind(AssertUnwindSafe(|| {
            answer(state, peer, &parts.headers, &bytes)
        }))
    };
    let mut answer = run();
    if matches!(answer, Ok((_, Err(Refused::UnknownKey))))
        && state.authority.refresh_for_unknown_key().await
    {
        // A key version this node has not followed yet (just rotated on another node).
        answer = run();
    }
    let (decision, answer) = match answer {
        Ok((decision, answer)) => (decision, Ok(answer)),
        Err(panic) => (None, Err(panic)),
    };
    let response = match answer {
        Ok(Ok(json)) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Ok(Err(Refused::UnknownKey)) => {
            let client = client_ref(Some(peer), &parts.headers, &state.proxies);
            match state.limits.charge_failure(Charged::address(client.ip)) {
                Ok(()) => ApiError::unauthenticated(FailureClass::UnknownKey).into_response(),
                Err(wait) => ApiError::rate_limited(wait).into_response(),
            }
        }
        Ok(Err(Refused::Other(e))) => e.into_response(),
        Err(panic) => super::health::panic_response(panic),
    };
    (response, decision)
}

/// Why the synchronous part gave no 200.
enum Refused {
    /// `unknown_key`: worth one refresh and another try.
    UnknownKey,
    /// Anything else.
    Other(ApiError),
}

/// The synchronous part: check the content type, then [`verify_body`] and charge a
/// failure; with what was decided, if anything was.
fn answer(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: &[u8],
) -> (Option<Decision>, Result<Vec<u8>, Refused>) {
    if !is_json(headers) {
        let e = ApiError::bad_request("expected a request with Content-Type: application/json");
        return (None, Err(Refused::Other(e)));
    }
    let client = client_ref(Some(peer), headers, &state.proxies);
    let decided = verify_and_charge(&state.authority, body, client);
    (decision_of(&decided), charge(state, client, decided))
}

/// What a verification decided (`None`: it never got to a decision).
fn decision_of(decided: &Result<(Vec<u8>, Option<TokenId>), VerifyFailure>) -> Option<Decision> {
    match decided {
        Ok((_, None)) => Some(Decision::Allowed),
        Ok((_, Some(_))) => Some(Decision::Denied),
        Err(VerifyFailure::Refused(e)) => Some(Decision::of_refusal(e)),
        Err(VerifyFailure::BadRequest(_) | VerifyFailure::Internal) => None,
    }
}

/// Charges a failed verification (see `crate::limits`): the answer, or a 429.
fn charge(
    state: &AppState,
    client: ClientRef<'_>,
    decided: Result<(Vec<u8>, Option<TokenId>), VerifyFailure>,
) -> Result<Vec<u8>, Refused> {
    let limited = |key| {
        state.limits.charge_failure(key).map_err(|wait| {
            Refused::Other(match key {
                Charged::Token(_) => {
                    ApiError::too_many(wait, "too many denied requests for this token")
                }
                Charged::Address(_) => ApiError::rate_limited(wait),
            })
        })
    };
    match decided {
        Err(VerifyFailure::Refused(AuthError::Unauthenticated(FailureClass::UnknownKey))) => {
            Err(Refused::UnknownKey)
        }
        // A token that does not authenticate: charged to the address that sent it.
        Err(VerifyFailure::Refused(e @ AuthError::Unauthenticated(_))) => {
            limited(Charged::address(client.ip))?;
            Err(Refused::Other(e.into()))
        }
        Err(e) => Err(Refused::Other(e.into())),
        // Authentic, but its caveats deny: charged to the token.
        Ok((json, Some(denied))) => {
            limited(Charged::Token(denied))?;
            Ok(json)
        }
        Ok((json, None)) => Ok(json),
    }
}

/// Why [`verify_body`] gave no answer.
#[derive(Debug)]
pub enum VerifyFailure {
    /// The body is not a verify request.
    BadRequest(String),
    /// The token does not authenticate, or the node is stale.
    Refused(AuthError),
    /// Serializing the answer failed (a bug).
    Internal,
}

impl From<VerifyFailure> for ApiError {
    fn from(f: VerifyFailure) -> Self {
        match f {
            VerifyFailure::BadRequest(m) => ApiError::bad_request(m),
            VerifyFailure::Refused(e) => e.into(),
            VerifyFailure::Internal => ApiError::internal(),
        }
    }
}

/// The endpoint's own work on a JSON body: parse, verify, decide, serialize the 200
/// answer ([`crate::api::VerifyResponse`]). Public for `benches/endpoint.rs`.
pub fn verify_body(
    authority: &Authority,
    body: &[u8],
    client: ClientRef<'_>,
) -> Result<Vec<u8>, VerifyFailure> {
    verify_and_charge(authority, body, client).map(|(json, _)| json)
}

/// [`verify_body`] counted as the server counts a `/v1/verify` when `metrics` are on
/// (its latency, its decision, its status): for `benches/endpoint.rs`, which measures
/// what metrics add to the fast path.
pub fn verify_body_metered(
    authority: &Authority,
    body: &[u8],
    client: ClientRef<'_>,
    metrics: Option<&Metrics>,
) -> Result<Vec<u8>, VerifyFailure> {
    let Some(metrics) = metrics else {
        return verify_body(authority, body, client);
    };
    let started = Instant::now();
    let decided = verify_and_charge(authority, body, client);
    let status = match &decided {
        Ok(_) => StatusCode::OK,
        Err(VerifyFailure::BadRequest(_)) => StatusCode::BAD_REQUEST,
        Err(VerifyFailure::Refused(e)) => super::error::status_of(e.class()),
        Err(VerifyFailure::Internal) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    metrics.verify_answered(started, status, decision_of(&decided));
    decided.map(|(json, _)| json)
}

/// [`verify_body`], with the id of the token when its caveats denied the access (a
/// failure charged to that token, not to the address relaying it: `crate::limits`).
fn verify_and_charge(
    authority: &Authority,
    body: &[u8],
    client: ClientRef<'_>,
) -> Result<(Vec<u8>, Option<TokenId>), VerifyFailure> {
    // Parsed by hand rather than with `Json`, so the token borrows from the body.
    let req: VerifyRequest<'_> = serde_json::from_slice(body)
        .map_err(|e| VerifyFailure::BadRequest(format!("failed to parse the request body: {e}")))?;
    let (json, denied) = authority
        .decide(
            &req.token,
            req.access.as_ref(),
            req.source_ip,
            client,
            |verified, denial| {
                let denied = denial.is_some().then(|| verified.token_id());
                (
                    serde_json::to_vec(&VerifyAnswer::new(verified, denial)),
                    denied,
                )
            },
        )
        .map_err(VerifyFailure::Refused)?;
    // Plain data into a Vec: cannot fail, but if it did it would be ours, not the caller's.
    Ok((json.map_err(|_| VerifyFailure::Internal)?, denied))
}

/// What the log says (at debug level) when a verify body did not come whole with its
/// headers and the server waits for the rest.
pub const BODY_PENDING: &str = "verify: waiting for the rest of the body";

/// The whole body, at most [`MAX_BODY`] bytes, within `timeout`.
async fn read_body(body: Body, timeout: Duration) -> Result<axum::body::Bytes, ApiError> {
    let mut collect = std::pin::pin!(Limited::new(body, MAX_BODY).collect());
    // Almost always the body came with the headers: no timer for that case.
    let first = std::future::poll_fn(|cx| Poll::Ready(collect.as_mut().poll(cx))).await;
    let collected = match first {
        Poll::Ready(r) => r,
        Poll::Pending => {
            // What tests wait on to know the server holds part of a body.
            tracing::debug!("{BODY_PENDING}");
            tokio::time::timeout(timeout, collect)
                .await
                .map_err(|_| ApiError::timeout())?
        }
    };
    match collected {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(ApiError::too_large()),
        Err(_) => Err(ApiError::bad_request("failed to read the request body")),
    }
}

/// `application/json` or `application/…+json` (any case), as axum's `Json` extractor
/// accepts; compared in place, without lowering a copy.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct.split(';').next().unwrap_or_default().trim();
    let Some((kind, sub)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (sub.eq_ignore_ascii_case("json")
            || sub
                .len()
                .checked_sub("+json".len())
                .and_then(|at| sub.get(at..))
                .is_some_and(|end| end.eq_ignore_ascii_case("+json")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        let ct = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(v));
            is_json(&h)
        };
        for yes in [
            "application/json",
            "Application/JSON; charset=utf-8",
            " application/json ",
            "application/merge-patch+json",
            "application/+JSON",
        ] {
            assert!(ct(yes), "{yes}");
        }
        for no in [
            "text/plain",
            "application/jsonx",
            "json",
            "text/json",
            "application/x+jso",
            "",
        ] {
            assert!(!ct(no), "{no}");
        }
        assert!(!is_json(&HeaderMap::new()));
    }
}
