//! The dashboard (`/ui`; docs/DESIGN.md, "Dashboard"): pages rendered on the server
//! from askama templates (`templates/ui/`, checked at compile time, escaped by
//! default) and one stylesheet, with no script. Every page is the API's own call,
//! authorized by the caveats of a dashboard session: a token minted at sign-in as a
//! child of the token pasted in, kept in an HttpOnly, SameSite=Lax cookie.
//!
//! - [`guard`] runs before any handler: security headers on every answer; on a POST,
//!   the browser's own word that it is same-origin, then the session and its
//!   anti-forgery token (a form field bound to the session), before anything else.
//! - [`Signed`] is a signed-in page's session; without one, a page sends the browser
//!   to sign in and back (to a relative `/ui` or `/oauth` path only).

mod audit;
mod consent;
mod page;
mod secrets;
mod sessions;
mod third_parties;
mod tokens;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use super::AppState;
use crate::authority::Principal;

pub(super) use page::UiError;

/// The session cookie's name.
pub const COOKIE: &str = "macvault_session";
/// Every dashboard page's content security policy (docs/DESIGN.md, "Dashboard").
const CSP: &str = "default-src 'self'; frame-ancestors 'none'; form-action 'self'";

/// [`CSP`] whose forms may also go to `origin` (the consent page's answer goes on to the
/// client's redirect URI).
pub(super) fn csp_with_form_action(origin: &str) -> String {
    format!("{CSP} {origin}")
}
/// The form field that carries the anti-forgery token.
const CSRF_FIELD: &str = "csrf";
/// Largest form a dashboard POST takes (a secret's value is the largest field).
pub(super) const MAX_FORM: usize = crate::secrets::limits::MAX_VALUE + 16 * 1024;

/// The dashboard's routes.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/tokens") }))
        .route("/ui/", get(|| async { Redirect::to("/ui/tokens") }))
        .route("/ui/static/ui.css", get(page::stylesheet))
        .route(
            "/ui/sign-in",
            get(sessions::sign_in_form).post(sessions::sign_in),
        )
        .route("/ui/sign-out", post(sessions::sign_out))
        .route("/ui/sessions", get(sessions::list))
        .route("/ui/sessions/end-others", post(sessions::end_others))
        .route("/ui/sessions/{id}/end", post(sessions::end_one))
        .route("/ui/tokens", get(tokens::list))
        .route("/ui/tokens/new", get(tokens::new_form).post(tokens::mint))
        .route("/ui/tokens/{id}", get(tokens::show))
        .route(
            "/ui/tokens/{id}/revoke",
            get(tokens::revoke_preview).post(tokens::revoke),
        )
        .route("/ui/tokens/{id}/rotate", post(tokens::rotate))
        .route("/ui/audit", get(audit::list))
        .route(
            "/ui/third-parties",
            get(third_parties::list).post(third_parties::add),
        )
        .route(
            "/ui/third-parties/{name}/remove",
            post(third_parties::remove),
        )
        .route("/ui/apps", get(secrets::apps))
        // The authorization endpoint answers people (with pages, under the guard's
        // headers) and sends them on to the consent page.
        .route("/oauth/authorize", get(crate::http::oauth::authorize))
        .route("/ui/consent", get(consent::form).post(consent::decide))
        .route("/ui/oauth-grants", get(consent::grants))
        .route("/ui/oauth-grants/{id}/revoke", post(consent::revoke_grant))
        .route("/ui/compare", post(secrets::compare))
        .route(
            "/ui/secrets",
            get(secrets::org_secrets).post(secrets::set_org),
        )
        .route("/ui/secrets/{name}", get(secrets::org_secret))
        .route("/ui/secrets/{name}/unset", post(secrets::unset_org))
        .route("/ui/secrets/{name}/rollback", post(secrets::rollback_org))
        .route(
            "/ui/apps/{app}/secrets",
            get(secrets::app_secrets).post(secrets::set_app),
        )
        .route("/ui/apps/{app}/secrets/{name}", get(secrets::app_secret))
        .route(
            "/ui/apps/{app}/secrets/{name}/unset",
            post(secrets::unset_app),
        )
        .route(
            "/ui/apps/{app}/secrets/{name}/rollback",
            post(secrets::rollback_app),
        )
}

/// A signed-in page's session: the principal of the session token in the cookie, and
/// the anti-forgery token its forms carry.
pub(super) struct Signed {
    pub who: Principal,
    pub csrf: String,
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        // A POST was authenticated by the guard already.
        let guarded = parts.extensions.remove::<GuardedSession>();
        if let Some(who) = guarded.and_then(|g| g.0.lock().ok()?.take()) {
            return Ok(signed(state, who));
        }
        match session_of(parts, state).await {
            Some(who) => Ok(signed(state, who)),
            None => Err(to_sign_in(&parts.uri)),
        }
    }
}

impl Signed {
    /// Whether the session's caveats allow `action` on `resource` (of `app`) in its
    /// org, from where it is: to show a control (the call decides again when used).
    pub(super) fn may(
        &self,
        state: &AppState,
        resource: crate::caveats::Resource,
        app: Option<&str>,
        action: crate::caveats::Action,
    ) -> bool {
        let a = &state.authority;
        a.allows(
            &self.who,
            &a.access(&self.who, self.who.org(), app, resource, action),
        )
    }
}

fn signed(state: &AppState, who: Principal) -> Signed {
    let csrf = state.authority.csrf_token(who.token_id());
    Signed { who, csrf }
}

/// The session a POST was authenticated with, handed from the guard to [`Signed`]
/// (a principal is not `Clone`: it moves out once).
#[derive(Clone)]
struct GuardedSession(std::sync::Arc<std::sync::Mutex<Option<Principal>>>);

/// The principal of the cookie's session token, if it authenticates and is a session.
async fn session_of(parts: &Parts, state: &AppState) -> Option<Principal> {
    let token = cookie(&parts.headers, COOKIE)?;
    let client = super::auth::client_of(parts, &state.proxies);
    let who = state.authority.authenticate(token, client).await.ok()?;
    state.authority.is_session(&who).await.then_some(who)
}

/// The browser to the sign-in page, and back to `uri` afterwards.
fn to_sign_in(uri: &axum::http::Uri) -> Response {
    let back = uri.path_and_query().map_or("/ui", |p| p.as_str());
    let next: String = url_encode(back);
    Redirect::to(&format!("/ui/sign-in?next={next}")).into_response()
}

/// A cookie's value from the request's `Cookie` headers.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// Where a browser may be sent after signing in: a relative `/ui…` or `/oauth…` path,
/// never an address given in the request (`//evil.example`, `/ui\\evil`, …).
pub(super) fn safe_return(next: Option<&str>) -> &str {
    let Some(next) = next else { return "/ui" };
    let allowed = ["/ui", "/oauth"].iter().any(|p| {
        next == *p || next.starts_with(&format!("{p}/")) || next.starts_with(&format!("{p}?"))
    });
    let plain = next.bytes().all(|b| b.is_ascii_graphic() && b != b'\\');
    if allowed && plain { next } else { "/ui" }
}

/// Percent-encodes everything but unreserved characters (a query value).
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Runs before every dashboard handler. Every answer gets the security headers. A POST
/// must not come from another site (the browser's `Origin` and `Sec-Fetch-Site` say
/// so; clients that send neither are not browsers, so not a forgery's victims); and
/// but for signing in it needs the session and its anti-forgery token, checked here,
/// before anything else.
pub(super) async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let is_static = req.uri().path().starts_with("/ui/static/");
    let mut res = if req.method() == Method::POST {
        match check_post(&state, req).await {
            Ok(req) => next.run(req).await,
            Err(refused) => refused,
        }
    } else {
        next.run(req).await
    };
    let h = res.headers_mut();
    // A page may widen `form-action` for its own form (the consent page's answer goes
    // on to the client's redirect URI); every other page gets this one.
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(CSP));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !is_static {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// A POST allowed through the guard (its body read, checked and put back), or the
/// answer that refuses it.
async fn check_post(state: &AppState, req: Request) -> Result<Request, Response> {
    if !same_origin(state, req.headers()) {
        return Err(UiError::status(
            StatusCode::FORBIDDEN,
            "This form was sent from another site.",
        )
        .into_response());
    }
    if req.uri().path() == "/ui/sign-in" {
        return Ok(req);
    }
    let (mut parts, body) = req.into_parts();
    let Some(who) = session_of(&parts, state).await else {
        return Err(UiError::status(
            StatusCode::UNAUTHORIZED,
            "You are signed out: sign in again, then send the form again.",
        )
        .into_response());
    };
    let bytes = axum::body::to_bytes(body, MAX_FORM).await.map_err(|_| {
        UiError::status(StatusCode::PAYLOAD_TOO_LARGE, "This form is too large.").into_response()
    })?;
    let given = form_field(&bytes, CSRF_FIELD);
    if !given.is_some_and(|g| state.authority.csrf_ok(who.token_id(), &g)) {
        return Err(UiError::status(
            StatusCode::FORBIDDEN,
            "This form is stale or was not made by this dashboard: reload the page and send it again.",
        )
        .into_response());
    }
    let handed = std::sync::Arc::new(std::sync::Mutex::new(Some(who)));
    parts.extensions.insert(GuardedSession(handed));
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// One field of an `application/x-www-form-urlencoded` body, decoded.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// Whether the browser says the request comes from this dashboard's own origin (or
/// says nothing: not a browser). `Sec-Fetch-Site` decides where it is sent; else the
/// `Origin`, unless it is `null` (what a browser sends from a page whose referrer
/// policy is `no-referrer`, as the dashboard's are), where the anti-forgery token and
/// the SameSite cookie remain.
fn same_origin(state: &AppState, headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        return site == "same-origin" || site == "none";
    }
    let Some(origin) = text("origin").filter(|o| *o != "null") else {
        return true;
    };
    match &state.public_url {
        Some(public) => origin.eq_ignore_ascii_case(public.trim_end_matches('/')),
        None => text("host").is_some_and(|host| {
            let scheme = if state.tls { "https" } else { "http" };
            origin.eq_ignore_ascii_case(&format!("{scheme}://{host}"))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_relative_dashboard_and_oauth_paths_are_returned_to() {
        for ok in [
            "/ui",
            "/ui/tokens?kind=deploy",
            "/oauth/authorize?x=1",
            "/ui/",
        ] {
            assert_eq!(safe_return(Some(ok)), ok);
        }
        for bad in [
            "https://evil.example/ui",
            "//evil.example/ui",
            "/ui\\evil",
            "/uix",
            "/v1/orgs",
            "/ui/\u{0}",
            "/ui/ x",
            "",
        ] {
            assert_eq!(safe_return(Some(bad)), "/ui", "{bad:?}");
        }
        assert_eq!(safe_return(None), "/ui");
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; macvault_session=mvt_x; b=2"),
        );
        assert_eq!(cookie(&h, COOKIE), Some("mvt_x"));
        assert_eq!(cookie(&h, "c"), None);
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("macvault_session="),
        );
        assert_eq!(cookie(&h, COOKIE), None);
    }

    #[test]
    fn form_fields_are_decoded() {
        assert_eq!(
            form_field(b"a=1&csrf=x%2By", "csrf").as_deref(),
            Some("x+y")
        );
        assert_eq!(form_field(b"a=1", "csrf"), None);
    }
}
