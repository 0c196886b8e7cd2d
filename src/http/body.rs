//! Request bodies: how large each route takes them (one table, [`limit_of`]), refused
//! 413 from a declared `Content-Length` before any of it is read, and bodies that may
//! be absent.

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use serde::de::DeserializeOwned;

use super::{ApiError, MAX_BODY};

/// The largest body the route `path` (as routed: `/v1/orgs/{org}/secrets`) takes for
/// `method`: secrets writes and third-party registrations take more than the rest.
pub(super) fn limit_of(path: Option<&str>, method: &Method) -> usize {
    let secrets_write =
        |p: &str| p == "/v1/orgs/{org}/secrets" || p == "/v1/orgs/{org}/apps/{app}/secrets";
    match path {
        Some(p) if method == Method::POST && secrets_write(p) => super::secrets::MAX_WRITE_BODY,
        Some("/v1/orgs/{org}/third-parties") if method == Method::POST => {
            super::third_parties::MAX_ADD_BODY
        }
        Some(p) if method == Method::POST && p.starts_with("/ui/") => super::ui::MAX_FORM,
        _ => MAX_BODY,
    }
}

/// The `Content-Length` a request declares, if it is a number.
pub(super) fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Most of a refused body read and thrown away so the client, which is likely still
/// sending it, reads the 413 instead of a reset connection.
const LINGER_BYTES: usize = 16 * 1024 * 1024;
/// The longest that takes.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// 413 for a body whose declared length is over the limit, answered at once; the
/// connection closes after it, and meanwhile what the client sends is discarded (at
/// most [`LINGER_BYTES`], for at most [`LINGER`]: a lingering close, as web servers
/// do), never held.
pub(super) fn too_large_now(body: Body) -> Response {
    tokio::spawn(async move {
        let mut discard = std::pin::pin!(http_body_util::Limited::new(body, LINGER_BYTES));
        let _ = tokio::time::timeout(LINGER, async {
            use http_body_util::BodyExt as _;
            while let Some(Ok(_)) = discard.frame().await {}
        })
        .await;
    });
    let mut res = ApiError::too_large().into_response();
    res.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    res
}

/// Middleware after routing: 413 at once for a declared length over the route's limit;
/// otherwise the body is cut off at that limit (413 when a body without a declared
/// length runs past it).
pub(super) async fn limit(req: Request, next: Next) -> Response {
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    let max = limit_of(path, req.method());
    if declared_length(req.headers()).is_some_and(|n| n > max as u64) {
        return too_large_now(req.into_body());
    }
    next.run(req.map(|b| Body::new(http_body_util::Limited::new(b, max))))
        .await
}

/// The JSON body, or `T::default()` when there is none.
pub(super) fn optional_json<T: DeserializeOwned + Default>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let bytes = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large()
        } else {
            ApiError::bad_request(r.body_text())
        }
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("failed to parse the request body: {e}")))
}
