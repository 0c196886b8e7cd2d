//! What every dashboard page shares: the frame (the org, the sections, signing out),
//! the error page, the stylesheet, and how times read.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::Signed;
use crate::authority::{Classify, ErrorClass};
use crate::model::spans::relative;

/// The frame of a signed-in page: which section is open, the org, the session's
/// anti-forgery token for the sign-out form.
pub(super) struct Frame {
    pub org: String,
    pub csrf: String,
    pub section: &'static str,
}

impl Frame {
    pub(super) fn of(signed: &Signed, section: &'static str) -> Frame {
        Frame {
            org: signed.who.org().to_owned(),
            csrf: signed.csrf.clone(),
            section,
        }
    }
}

/// A page as an answer (a template that does not render is a bug: 500, said plainly).
pub(super) fn render(page: &impl Template) -> Response {
    render_with(StatusCode::OK, page)
}

/// The status of a form's page shown again: 400 with the reason it was refused.
pub(super) fn status_with(error: &Option<String>) -> StatusCode {
    if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    }
}

/// [`render`] with another status.
pub(super) fn render_with(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a dashboard page did not render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "ui/error.html")]
struct ErrorPage<'a> {
    frame: Option<&'a Frame>,
    status: u16,
    title: &'a str,
    message: &'a str,
}

/// A refusal or failure, shown as a page with its status (the message never carries a
/// token, key or value: errors never do).
#[derive(Debug)]
pub(crate) struct UiError {
    status: StatusCode,
    pub(super) message: String,
}

impl UiError {
    pub(crate) fn status(status: StatusCode, message: impl Into<String>) -> Self {
        UiError {
            status,
            message: message.into(),
        }
    }

    pub(super) fn status_code(&self) -> StatusCode {
        self.status
    }
}

impl<E: Classify> From<E> for UiError {
    fn from(e: E) -> Self {
        // The API's own mapping of error classes to statuses.
        let status = crate::http::error::status_of(e.class());
        let message = match e.class() {
            ErrorClass::Internal => "Something went wrong on the server; it is in its log.".into(),
            _ => e.to_string(),
        };
        UiError { status, message }
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let title = match self.status {
            StatusCode::UNAUTHORIZED => "Not signed in",
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::BAD_REQUEST => "Cannot do that",
            StatusCode::CONFLICT => "In the way",
            StatusCode::SERVICE_UNAVAILABLE => "Try again shortly",
            _ => "Something went wrong",
        };
        let page = ErrorPage {
            frame: None,
            status: self.status.as_u16(),
            title,
            message: &self.message,
        };
        render_with(self.status, &page)
    }
}

/// The stylesheet (the only asset: no script, no fonts, nothing from elsewhere).
pub(super) async fn stylesheet() -> Response {
    let mut res = include_str!("../../../assets/ui.css").into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    res
}

/// `in 29d`, `5m ago`, for people; and the exact time for a tooltip.
pub(super) struct When {
    pub relative: String,
    pub exact: String,
}

impl When {
    pub(super) fn at(t: u64, now: u64) -> When {
        When {
            relative: relative(t, now),
            exact: crate::caveats::format_time(t),
        }
    }
}
