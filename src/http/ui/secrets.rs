//! The Apps and Secrets pages: the org's apps; each scope's secrets (an app's with the
//! org's that show through) with version, update, expiry, description and where the
//! value comes from; one secret's history and rollback; set (the value typed into a
//! password field, never shown back) and unset; and, for a session that may reveal
//! both, which names differ between two apps — compared by the server on the values,
//! each side audited as a reveal (digests are keyed by app, so they cannot be compared
//! across apps). No value is ever put into a page.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::page::{Frame, When, render, render_with};
use super::{Signed, UiError};
use crate::caveats::{Action, Resource};
use crate::http::AppState;
use crate::secrets::{Scope, SetSecret, UnsetSecret, Write};

/// Under this, an expiry is shown as a warning.
const SOON: u64 = 7 * 86_400;

struct AppRow {
    name: String,
    secrets: usize,
    tokens: usize,
    version: u64,
}

#[derive(Template)]
#[template(path = "ui/apps.html")]
struct AppsPage<'a> {
    frame: Option<&'a Frame>,
    apps: Vec<AppRow>,
    can_compare: bool,
}

/// The org's apps.
pub(super) async fn apps(
    State(state): State<AppState>,
    signed: Signed,
) -> Result<Response, UiError> {
    let org = signed.who.org().to_owned();
    let apps: Vec<AppRow> = state
        .authority
        .apps(&signed.who, &org)
        .await?
        .into_iter()
        .map(|a| AppRow {
            name: a.app.name,
            secrets: a.secrets,
            tokens: a.tokens.len(),
            version: a.version,
        })
        .collect();
    let can_compare =
        apps.len() >= 2 && signed.may(&state, Resource::Secrets, None, Action::Reveal);
    let frame = Frame::of(&signed, "apps");
    Ok(render(&AppsPage {
        frame: Some(&frame),
        apps,
        can_compare,
    }))
}

struct SecretRow {
    name: String,
    version: u64,
    updated: When,
    expires: Option<When>,
    expires_soon: bool,
    expired: bool,
    description: String,
    from_org: bool,
}

#[derive(Template)]
#[template(path = "ui/secrets.html")]
struct SecretsPage<'a> {
    frame: Option<&'a Frame>,
    /// The app, or empty for the org's own.
    app: &'a str,
    base: String,
    rows: Vec<SecretRow>,
    version: u64,
    can_write: bool,
    error: Option<String>,
}

/// Where a scope's pages live.
fn base_of(app: Option<&str>) -> String {
    match app {
        Some(app) => format!("/ui/apps/{app}/secrets"),
        None => "/ui/secrets".into(),
    }
}

/// The org's own secrets.
pub(super) async fn org_secrets(
    State(state): State<AppState>,
    signed: Signed,
) -> Result<Response, UiError> {
    scope_page(&state, &signed, None, None).await
}

/// An app's secrets, with the org's that show through.
pub(super) async fn app_secrets(
    State(state): State<AppState>,
    signed: Signed,
    Path(app): Path<String>,
) -> Result<Response, UiError> {
    scope_page(&state, &signed, Some(&app), None).await
}

async fn scope_page(
    state: &AppState,
    signed: &Signed,
    app: Option<&str>,
    error: Option<String>,
) -> Result<Response, UiError> {
    let org = signed.who.org().to_owned();
    let scope = Scope { org: &org, app };
    let listing = state
        .secrets
        .list(&signed.who, scope, app.is_some())
        .await?;
    let now = state.authority.now();
    let rows = listing
        .secrets
        .iter()
        .map(|l| {
            let h = &l.head;
            SecretRow {
                name: h.name.clone(),
                version: h.version,
                updated: When::at(h.updated, now),
                expires: h.expires.map(|t| When::at(t, now)),
                expires_soon: h.expires.is_some_and(|t| t > now && t - now < SOON),
                expired: l.expired,
                description: h.description.clone().unwrap_or_default(),
                from_org: app.is_some() && h.app.is_none(),
            }
        })
        .collect();
    let frame = Frame::of(signed, "apps");
    let status = super::page::status_with(&error);
    Ok(render_with(
        status,
        &SecretsPage {
            frame: Some(&frame),
            app: app.unwrap_or(""),
            base: base_of(app),
            rows,
            version: listing.version,
            can_write: signed.may(state, Resource::Secrets, app, Action::Write),
            error,
        },
    ))
}

#[derive(Deserialize)]
pub(super) struct SetForm {
    name: String,
    value: String,
    #[serde(default)]
    description: String,
}

/// Sets one secret of the org's own scope.
pub(super) async fn set_org(
    State(state): State<AppState>,
    signed: Signed,
    Form(form): Form<SetForm>,
) -> Result<Response, UiError> {
    set(&state, &signed, None, form).await
}

/// Sets one secret of an app.
pub(super) async fn set_app(
    State(state): State<AppState>,
    signed: Signed,
    Path(app): Path<String>,
    Form(form): Form<SetForm>,
) -> Result<Response, UiError> {
    set(&state, &signed, Some(&app), form).await
}

async fn set(
    state: &AppState,
    signed: &Signed,
    app: Option<&str>,
    form: SetForm,
) -> Result<Response, UiError> {
    let value = Zeroizing::new(form.value.into_bytes());
    let description = Some(form.description.trim().to_owned()).filter(|d| !d.is_empty());
    let write = Write {
        set: vec![SetSecret {
            name: form.name.trim().to_owned(),
            value,
            description,
            expires_secs: None,
            if_version: None,
        }],
        unset: Vec::new(),
        dry_run: false,
        create_app: false,
    };
    written(state, signed, app, write).await
}

/// Writes, then back to the scope's page; a refusal of the input is shown on it.
async fn written(
    state: &AppState,
    signed: &Signed,
    app: Option<&str>,
    write: Write,
) -> Result<Response, UiError> {
    let org = signed.who.org().to_owned();
    let scope = Scope { org: &org, app };
    match state.secrets.write(&signed.who, scope, write).await {
        Ok(_) => Ok(Redirect::to(&base_of(app)).into_response()),
        Err(e) => {
            let e = UiError::from(e);
            if e.status_code() == StatusCode::BAD_REQUEST {
                return scope_page(state, signed, app, Some(e.message)).await;
            }
            Err(e)
        }
    }
}

/// Unsets one secret of the org's own scope (its history stays).
pub(super) async fn unset_org(
    State(state): State<AppState>,
    signed: Signed,
    Path(name): Path<String>,
) -> Result<Response, UiError> {
    unset(&state, &signed, None, name).await
}

/// Unsets one secret of an app.
pub(super) async fn unset_app(
    State(state): State<AppState>,
    signed: Signed,
    Path((app, name)): Path<(String, String)>,
) -> Result<Response, UiError> {
    unset(&state, &signed, Some(&app), name).await
}

async fn unset(
    state: &AppState,
    signed: &Signed,
    app: Option<&str>,
    name: String,
) -> Result<Response, UiError> {
    let write = Write {
        set: Vec::new(),
        unset: vec![UnsetSecret {
            name,
            if_version: None,
        }],
        dry_run: false,
        create_app: false,
    };
    written(state, signed, app, write).await
}

struct VersionRow {
    version: u64,
    created: When,
    by: String,
    rollback_of: Option<u64>,
    destroyed: bool,
    current: bool,
}

#[derive(Template)]
#[template(path = "ui/secret.html")]
struct SecretPage<'a> {
    frame: Option<&'a Frame>,
    app: &'a str,
    base: String,
    name: &'a str,
    description: String,
    unset: bool,
    versions: Vec<VersionRow>,
    can_write: bool,
}

/// One secret of the org's own scope: its history.
pub(super) async fn org_secret(
    State(state): State<AppState>,
    signed: Signed,
    Path(name): Path<String>,
) -> Result<Response, UiError> {
    secret_page(&state, &signed, None, &name).await
}

/// One secret of an app: its history.
pub(super) async fn app_secret(
    State(state): State<AppState>,
    signed: Signed,
    Path((app, name)): Path<(String, String)>,
) -> Result<Response, UiError> {
    secret_page(&state, &signed, Some(&app), &name).await
}

async fn secret_page(
    state: &AppState,
    signed: &Signed,
    app: Option<&str>,
    name: &str,
) -> Result<Response, UiError> {
    let org = signed.who.org().to_owned();
    let scope = Scope { org: &org, app };
    let (shown, entries) = state.secrets.history(&signed.who, scope, name).await?;
    let now = state.authority.now();
    let versions = entries
        .iter()
        .map(|e| VersionRow {
            version: e.version,
            created: When::at(e.created, now),
            by: e
                .created_by_name
                .clone()
                .or_else(|| e.created_by.map(|id| id.to_string()[..12].to_owned()))
                .unwrap_or_default(),
            rollback_of: e.rollback_of,
            destroyed: e.destroyed,
            current: e.current,
        })
        .collect();
    let frame = Frame::of(signed, "apps");
    Ok(render(&SecretPage {
        frame: Some(&frame),
        app: app.unwrap_or(""),
        base: base_of(app),
        name,
        description: shown.head.description.clone().unwrap_or_default(),
        unset: shown.head.unset,
        versions,
        can_write: signed.may(state, Resource::Secrets, app, Action::Write),
    }))
}

#[derive(Deserialize)]
pub(super) struct RollbackForm {
    to: u64,
}

/// Writes an old version of an org secret again, as a new version.
pub(super) async fn rollback_org(
    State(state): State<AppState>,
    signed: Signed,
    Path(name): Path<String>,
    Form(form): Form<RollbackForm>,
) -> Result<Response, UiError> {
    rollback(&state, &signed, None, &name, form.to).await
}

/// Writes an old version of an app's secret again, as a new version.
pub(super) async fn rollback_app(
    State(state): State<AppState>,
    signed: Signed,
    Path((app, name)): Path<(String, String)>,
    Form(form): Form<RollbackForm>,
) -> Result<Response, UiError> {
    rollback(&state, &signed, Some(&app), &name, form.to).await
}

async fn rollback(
    state: &AppState,
    signed: &Signed,
    app: Option<&str>,
    name: &str,
    to: u64,
) -> Result<Response, UiError> {
    let org = signed.who.org().to_owned();
    let scope = Scope { org: &org, app };
    state.secrets.rollback(&signed.who, scope, name, to).await?;
    Ok(Redirect::to(&format!("{}/{name}", base_of(app))).into_response())
}

#[derive(Deserialize)]
pub(super) struct CompareForm {
    a: String,
    b: String,
}

#[derive(Template)]
#[template(path = "ui/compare.html")]
struct ComparePage<'a> {
    frame: Option<&'a Frame>,
    a: &'a str,
    b: &'a str,
    only_a: Vec<String>,
    only_b: Vec<String>,
    differ: Vec<String>,
    same: Vec<String>,
}

/// Which names differ between two apps as each resolves them (its own over the org's):
/// the server reveals both (each audited as a reveal, and counted by the reveal quota)
/// and compares the values; the page shows names only.
pub(super) async fn compare(
    State(state): State<AppState>,
    signed: Signed,
    Form(form): Form<CompareForm>,
) -> Result<Response, UiError> {
    use subtle::ConstantTimeEq as _;
    let org = signed.who.org().to_owned();
    let mut sides = Vec::with_capacity(2);
    for app in [&form.a, &form.b] {
        state.limits.reveal(signed.who.token_id()).map_err(|_| {
            UiError::status(
                StatusCode::TOO_MANY_REQUESTS,
                "This session's reveal quota is spent; try again later.",
            )
        })?;
        let scope = Scope {
            org: &org,
            app: Some(app),
        };
        sides.push(state.secrets.reveal(&signed.who, scope, None).await?);
    }
    let (a, b) = (&sides[0], &sides[1]);
    let values_b: std::collections::BTreeMap<&str, &str> = b.values().collect();
    let (mut only_a, mut differ, mut same) = (Vec::new(), Vec::new(), Vec::new());
    for (name, value) in a.values() {
        match values_b.get(name) {
            None => only_a.push(name.to_owned()),
            Some(other) if bool::from(value.as_bytes().ct_eq(other.as_bytes())) => {
                same.push(name.to_owned());
            }
            Some(_) => differ.push(name.to_owned()),
        }
    }
    let in_a: std::collections::BTreeSet<&str> = a.values().map(|(n, _)| n).collect();
    let only_b = values_b
        .keys()
        .filter(|n| !in_a.contains(*n))
        .map(|n| (*n).to_owned())
        .collect();
    let frame = Frame::of(&signed, "apps");
    Ok(render(&ComparePage {
        frame: Some(&frame),
        a: &form.a,
        b: &form.b,
        only_a,
        only_b,
        differ,
        same,
    }))
}
