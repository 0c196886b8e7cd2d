//! Errors as HTTP answers: `{"error": {"code", "message"}}`, the status from the
//! error's class (one per variant, see `authority::error`).

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::api::{ConflictBody, DenialBody, ErrorBody, ErrorDetail};
use crate::authority::{Classify, ErrorClass};
use crate::token::FailureClass;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    denial: Option<DenialBody>,
    conflict: Option<Box<ConflictBody>>,
    retry_after: Option<u32>,
}

/// The status of each class.
pub fn status_of(class: ErrorClass) -> StatusCode {
    match class {
        ErrorClass::BadRequest => StatusCode::BAD_REQUEST,
        ErrorClass::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorClass::Denied => StatusCode::FORBIDDEN,
        ErrorClass::NotFound => StatusCode::NOT_FOUND,
        ErrorClass::Conflict => StatusCode::CONFLICT,
        ErrorClass::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorClass::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl ApiError {
    /// An error with a status, stable code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            denial: None,
            conflict: None,
            retry_after: None,
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 500, saying nothing of why (the cause is logged where it is known).
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }

    /// 401 with only the failure class.
    pub fn unauthenticated(class: FailureClass) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            class.code(),
            format!("token not accepted: {}", class.code().replace('_', " ")),
        )
    }

    /// 429, to come back after `secs`.
    pub fn rate_limited(secs: u64) -> Self {
        Self::too_many(secs, "too many requests from this address")
    }

    /// 429: `what` is spent for now; `Retry-After` says when to ask again.
    pub fn too_many(secs: u64, what: &str) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("{what}: retry in {secs}s"),
        );
        e.retry_after = Some(u32::try_from(secs).unwrap_or(u32::MAX));
        e
    }

    /// 413 for a body over the limit.
    pub fn too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "request body is too large",
        )
    }

    /// 408 for a request that took longer than `serve --request-timeout`.
    pub fn timeout() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            "the request took too long",
        )
    }

    /// 401 for a request without a usable `Authorization: Bearer` header.
    pub fn missing_token() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "missing_token",
            "send the token as `Authorization: Bearer mvt_…`",
        )
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl<E: Classify> From<E> for ApiError {
    fn from(e: E) -> Self {
        let class = e.class();
        if class == ErrorClass::Internal {
            // These messages hold no token, key or secret: only store and I/O failures.
            tracing::error!(error = %e, "internal error");
            return ApiError::internal();
        }
        let mut out = ApiError::new(status_of(class), e.code(), e.to_string());
        out.denial = e.denial().cloned().map(DenialBody::from);
        out.conflict = e.version_conflict().map(|(name, current, expected)| {
            Box::new(ConflictBody {
                name: name.to_owned(),
                current_version: current,
                expected_version: expected,
            })
        });
        if class == ErrorClass::Unavailable {
            tracing::warn!(error = %e, "answering 503");
            out.retry_after = Some(1);
        }
        out
    }
}

impl From<JsonRejection> for ApiError {
    /// 413 for a body over the limit, else 400 with the extractor's explanation.
    fn from(r: JsonRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return Self::too_large();
        }
        ApiError::bad_request(r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::bad_request(r.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
            denial: self.denial,
            conflict: self.conflict.map(|c| *c),
        };
        let mut res = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}
