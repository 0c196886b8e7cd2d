//! Signing in and out, and the Sessions panel: a sign-in mints a session from the
//! pasted token (never stored) into a cookie; the panel lists the sessions of the same
//! token, ends one, or ends all the others.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::page::{Frame, When, render, render_with};
use super::{COOKIE, Signed, UiError, safe_return, session_of};
use crate::authority::SESSION_LIFETIME;
use crate::http::AppState;
use crate::token::TokenId;

#[derive(Template)]
#[template(path = "ui/sign_in.html")]
struct SignInPage<'a> {
    frame: Option<&'a Frame>,
    next: &'a str,
    error: Option<&'a str>,
}

#[derive(Deserialize)]
pub(super) struct NextQuery {
    next: Option<String>,
}

pub(super) async fn sign_in_form(
    State(state): State<AppState>,
    Query(q): Query<NextQuery>,
    req: axum::http::request::Parts,
) -> Response {
    let next = safe_return(q.next.as_deref());
    if session_of(&req, &state).await.is_some() {
        return Redirect::to(next).into_response();
    }
    render(&SignInPage {
        frame: None,
        next,
        error: None,
    })
}

#[derive(Deserialize)]
pub(super) struct SignInForm {
    token: String,
    next: Option<String>,
}

/// Signs in with the pasted token: a session in a cookie, then back to `next`. A token
/// that does not authenticate is a 401 (counted by the failure limiter like any).
pub(super) async fn sign_in(
    State(state): State<AppState>,
    parts: axum::http::request::Parts,
    Form(form): Form<SignInForm>,
) -> Response {
    let next = safe_return(form.next.as_deref()).to_owned();
    let client = crate::http::auth::client_of(&parts, &state.proxies);
    let refused = |status: StatusCode, why: &str| {
        let page = SignInPage {
            frame: None,
            next: &next,
            error: Some(why),
        };
        render_with(status, &page)
    };
    let pasted = form.token.trim();
    let who = match state.authority.authenticate(pasted, client).await {
        Ok(who) => who,
        Err(e) => {
            let why = format!("This token was not accepted: {e}.");
            return refused(StatusCode::UNAUTHORIZED, &why);
        }
    };
    let session = match state.authority.sign_in(&who, SESSION_LIFETIME).await {
        Ok(s) => s,
        Err(e) => {
            let e = UiError::from(e);
            return refused(e.status_code(), &e.message);
        }
    };
    let lives = session
        .record
        .expires
        .saturating_sub(session.record.created);
    let mut res = Redirect::to(&next).into_response();
    set_cookie(&mut res, &state, session.token.expose(), lives);
    res
}

/// Sets (or with `max_age` 0, clears) the session cookie: HttpOnly, SameSite=Lax (a
/// top-level navigation from another site arrives signed in; nothing changes state on
/// a GET), Path=/, Secure when the dashboard is reached over HTTPS.
fn set_cookie(res: &mut Response, state: &AppState, value: &str, max_age: u64) {
    let secure = state.tls
        || state
            .public_url
            .as_deref()
            .is_some_and(|u| u.to_ascii_lowercase().starts_with("https://"));
    let secure = if secure { "; Secure" } else { "" };
    let cookie =
        format!("{COOKIE}={value}; HttpOnly; SameSite=Lax; Path=/; Max-Age={max_age}{secure}");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// Ends this session.
pub(super) async fn sign_out(State(state): State<AppState>, signed: Signed) -> Response {
    if let Err(e) = state.authority.sign_out(&signed.who, None).await {
        return UiError::from(e).into_response();
    }
    signed_out(&state)
}

/// Back to the sign-in page, the cookie cleared.
pub(super) fn signed_out(state: &AppState) -> Response {
    let mut res = Redirect::to("/ui/sign-in").into_response();
    set_cookie(&mut res, state, "", 0);
    res
}

struct SessionRow {
    id: String,
    this: bool,
    created: When,
    expires: When,
    last_used: Option<When>,
    ip: String,
    user_agent: String,
}

#[derive(Template)]
#[template(path = "ui/sessions.html")]
struct SessionsPage<'a> {
    frame: Option<&'a Frame>,
    sessions: Vec<SessionRow>,
}

/// The sessions of the token this one was signed in with.
pub(super) async fn list(
    State(state): State<AppState>,
    signed: Signed,
) -> Result<Response, UiError> {
    let entries = state.authority.sessions(&signed.who).await?;
    let now = state.authority.now();
    let sessions = entries
        .iter()
        .map(|e| {
            let used = e.last_used.as_ref();
            SessionRow {
                id: e.record.id.to_string(),
                this: e.record.id == signed.who.token_id(),
                created: When::at(e.record.created, now),
                expires: When::at(e.record.expires, now),
                last_used: used.map(|u| When::at(u.time, now)),
                ip: used
                    .and_then(|u| u.ip)
                    .map_or_else(|| "-".into(), |ip| ip.to_string()),
                user_agent: used
                    .and_then(|u| u.user_agent.clone())
                    .unwrap_or_else(|| "-".into()),
            }
        })
        .collect();
    let frame = Frame::of(&signed, "sessions");
    Ok(render(&SessionsPage {
        frame: Some(&frame),
        sessions,
    }))
}

/// Ends one session of the same token (this one: signs out).
pub(super) async fn end_one(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let id: TokenId = id
        .parse()
        .map_err(|_| UiError::status(StatusCode::NOT_FOUND, "no such session"))?;
    state.authority.sign_out(&signed.who, Some(id)).await?;
    if id == signed.who.token_id() {
        return Ok(signed_out(&state));
    }
    Ok(Redirect::to("/ui/sessions").into_response())
}

/// Ends every other session of the same token.
pub(super) async fn end_others(
    State(state): State<AppState>,
    signed: Signed,
) -> Result<Response, UiError> {
    state.authority.sign_out_others(&signed.who).await?;
    Ok(Redirect::to("/ui/sessions").into_response())
}
