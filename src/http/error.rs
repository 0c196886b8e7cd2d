//! Errors as HTTP answers: `{"error": {"code", "message"}}` with the right status.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::api::{DenialBody, ErrorBody, ErrorDetail};
use crate::authority::AuthorityError;
use crate::token::FailureClass;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    denial: Option<DenialBody>,
}

impl ApiError {
    /// An error with a status, stable code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            denial: None,
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

    /// 413 for a body over [`super::MAX_BODY`].
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
}

impl From<AuthorityError> for ApiError {
    fn from(e: AuthorityError) -> Self {
        match e {
            AuthorityError::Unauthenticated(class) => ApiError::unauthenticated(class),
            AuthorityError::Denied(d) => ApiError {
                status: StatusCode::FORBIDDEN,
                code: "denied",
                message: d.to_string(),
                denial: Some(d.into()),
            },
            AuthorityError::BadRequest(m) => ApiError::bad_request(m),
            AuthorityError::NotFound(what) => Self::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no such {what}"),
            ),
            AuthorityError::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
            other => {
                // These messages hold no token, key or secret: only store and I/O failures.
                tracing::error!(error = %other, "internal error");
                Self::internal()
            }
        }
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
        };
        (self.status, Json(body)).into_response()
    }
}
