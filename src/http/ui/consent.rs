//! The OAuth consent page and "Authorized applications" (docs/OAUTH.md): a person
//! signed in to the dashboard sees which client asks for what, in plain words, may
//! narrow it (fewer scopes or apps, read-only, a shorter grant), and approves or
//! refuses; and later lists and revokes what they granted.

use askama::Template;
use axum::Form;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::page::{Frame, When, render_with};
use super::{Signed, UiError};
use crate::authority::{Authorization, AuthorizeParams, GRANT_LIFETIME};
use crate::http::AppState;
use crate::http::oauth::{authorize_params, refuse_authorization};

/// The grant lengths a person may choose, seconds and words.
const LIFETIMES: [(u64, &str); 4] = [
    (3600, "1 hour"),
    (86400, "1 day"),
    (7 * 86400, "7 days"),
    (GRANT_LIFETIME, "30 days"),
];

struct Asked {
    text: String,
    words: String,
}

#[derive(Template)]
#[template(path = "ui/consent.html")]
struct Page<'a> {
    frame: Option<&'a Frame>,
    client: String,
    org: String,
    redirect_uri: String,
    asked: Vec<Asked>,
    writes: bool,
    lifetimes: Vec<(u64, &'static str)>,
    until: Option<When>,
    params: Vec<(&'static str, String)>,
    error: Option<String>,
}

/// The origin codes go to, if it is plain enough to name in a CSP source list.
fn origin_of(uri: &str) -> Option<String> {
    let (scheme, rest) = uri.split_once("://")?;
    let host = rest.split(['/', '?']).next()?;
    let plain = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
    };
    (plain(scheme) && plain(host)).then(|| format!("{scheme}://{host}"))
}

/// The consent page (or its form again with `error`), whose form may go on to the
/// client's redirect URI.
async fn page(
    state: &AppState,
    signed: &Signed,
    auth: &Authorization,
    error: Option<String>,
) -> Response {
    let now = state.authority.now();
    let limit = match state.authority.grant_limit(&signed.who).await {
        Ok(limit) => limit,
        Err(e) => return UiError::from(e).into_response(),
    };
    let frame = Frame::of(signed, "consent");
    let params = [
        ("response_type", Some("code".to_owned())),
        ("client_id", Some(auth.client.id.clone())),
        ("redirect_uri", Some(auth.redirect_uri.clone())),
        ("scope", Some(auth.scopes.text())),
        ("state", auth.state.clone()),
        ("code_challenge", Some(base64_url(&auth.challenge))),
        ("code_challenge_method", Some("S256".to_owned())),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k, v?)))
    .collect();
    let status = super::page::status_with(&error);
    let mut res = render_with(
        status,
        &Page {
            frame: Some(&frame),
            client: auth.client.name.clone(),
            org: auth.client.org.clone(),
            redirect_uri: auth.redirect_uri.clone(),
            asked: auth
                .scopes
                .iter()
                .map(|s| Asked {
                    text: s.text(),
                    words: s.words(),
                })
                .collect(),
            writes: auth
                .scopes
                .iter()
                .any(|s| *s == crate::authority::Scope::SecretsWrite),
            lifetimes: LIFETIMES.to_vec(),
            until: limit.map(|t| When::at(t, now)),
            params,
            error,
        },
    );
    if let Some(origin) = origin_of(&auth.redirect_uri)
        && let Ok(v) = HeaderValue::from_str(&super::csp_with_form_action(&origin))
    {
        res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    res
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A checked request whose client is of the session's org, or the answer that ends it.
async fn checked(
    state: &AppState,
    signed: &Signed,
    params: &AuthorizeParams,
) -> Result<Authorization, Response> {
    let auth = state
        .authority
        .check_authorization(params)
        .await
        .map_err(refuse_authorization)?;
    if auth.client.org != signed.who.org() {
        let to = auth.redirect_with(&[
            ("error", "unauthorized_client"),
            (
                "error_description",
                "the client belongs to another org than the signed-in token",
            ),
        ]);
        return Err(Redirect::to(&to).into_response());
    }
    Ok(auth)
}

/// `GET /ui/consent?…` (the authorization request's parameters).
pub(super) async fn form(
    State(state): State<AppState>,
    signed: Signed,
    RawQuery(query): RawQuery,
) -> Response {
    let params = match authorize_params(query.as_deref()) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    match checked(&state, &signed, &params).await {
        Ok(auth) => page(&state, &signed, &auth, None).await,
        Err(answer) => answer,
    }
}

/// `POST /ui/consent`: approve (with what the person kept) or deny.
pub(super) async fn decide(
    State(state): State<AppState>,
    signed: Signed,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let one = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let params = AuthorizeParams {
        response_type: one("response_type"),
        client_id: one("client_id"),
        redirect_uri: one("redirect_uri"),
        scope: one("scope"),
        state: one("state"),
        code_challenge: one("code_challenge"),
        code_challenge_method: one("code_challenge_method"),
    };
    let auth = match checked(&state, &signed, &params).await {
        Ok(auth) => auth,
        Err(answer) => return answer,
    };
    if one("decision").as_deref() != Some("approve") {
        let to = auth.redirect_with(&[
            ("error", "access_denied"),
            ("error_description", "the person refused"),
        ]);
        return Redirect::to(&to).into_response();
    }
    let kept: Vec<String> = fields
        .iter()
        .filter(|(k, _)| k == "keep")
        .map(|(_, v)| v.clone())
        .collect();
    let read_only = one("read_only").is_some();
    let lifetime = one("lifetime")
        .and_then(|l| l.parse::<u64>().ok())
        .unwrap_or(GRANT_LIFETIME);
    let scopes = match auth.scopes.narrowed(&kept, read_only) {
        Ok(s) => s,
        Err(e) => return page(&state, &signed, &auth, Some(e.to_string())).await,
    };
    match state
        .authority
        .approve_authorization(&signed.who, &auth, &scopes, lifetime)
        .await
    {
        Ok(code) => Redirect::to(&auth.redirect_with(&[("code", code.expose())])).into_response(),
        Err(e) => UiError::from(e).into_response(),
    }
}

struct GrantRow {
    id: String,
    client: String,
    scopes: String,
    created: When,
    last_used: Option<When>,
    ends: When,
    live: bool,
}

#[derive(Template)]
#[template(path = "ui/grants.html")]
struct GrantsPage<'a> {
    frame: Option<&'a Frame>,
    rows: Vec<GrantRow>,
}

/// `GET /ui/oauth-grants`: "Authorized applications".
pub(super) async fn grants(
    State(state): State<AppState>,
    signed: Signed,
) -> Result<Response, UiError> {
    let org = signed.who.org().to_owned();
    let now = state.authority.now();
    let rows = state
        .authority
        .oauth_grants(&signed.who, &org)
        .await?
        .into_iter()
        .map(|g| GrantRow {
            id: g.grant.id.clone(),
            client: g.grant.client_name.clone(),
            scopes: g.grant.scopes.join(" "),
            created: When::at(g.grant.created, now),
            last_used: g.last_used.map(|t| When::at(t, now)),
            ends: When::at(g.grant.expires, now),
            live: g.live,
        })
        .collect();
    let frame = Frame::of(&signed, "oauth-grants");
    Ok(render_with(
        StatusCode::OK,
        &GrantsPage {
            frame: Some(&frame),
            rows,
        },
    ))
}

/// `POST /ui/oauth-grants/{id}/revoke`.
pub(super) async fn revoke_grant(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let org = signed.who.org().to_owned();
    state
        .authority
        .revoke_oauth_grant(&signed.who, &org, &id)
        .await?;
    Ok(Redirect::to("/ui/oauth-grants").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_origins_widen_the_form_action() {
        assert_eq!(
            origin_of("http://127.0.0.1:5123/cb?x=1").as_deref(),
            Some("http://127.0.0.1:5123")
        );
        assert_eq!(
            origin_of("https://ci.example/cb").as_deref(),
            Some("https://ci.example")
        );
        assert_eq!(origin_of("https://a;b.example/cb"), None);
        assert_eq!(origin_of("https://a'b/cb"), None);
    }
}
