//! The Third parties page: the org's dischargers (CI OIDC issuers), registered with the
//! URL of the issuer's keys, and removed (refused while live tokens need one, unless
//! forced: the page says which).

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::page::{Frame, When, render_with};
use super::{Signed, UiError};
use crate::authority::NewThirdParty;
use crate::caveats::{Action, Resource};
use crate::http::AppState;
use crate::model::{Jwks, ThirdPartyKind};

struct Row {
    name: String,
    kind: &'static str,
    location: String,
    issuer: String,
    audience: String,
    keys: String,
    created: When,
}

#[derive(Template)]
#[template(path = "ui/third_parties.html")]
struct Page<'a> {
    frame: Option<&'a Frame>,
    rows: Vec<Row>,
    can_add: bool,
    can_remove: bool,
    error: Option<String>,
}

/// The org's third parties.
pub(super) async fn list(
    State(state): State<AppState>,
    signed: Signed,
) -> Result<Response, UiError> {
    page(&state, &signed, None).await
}

async fn page(
    state: &AppState,
    signed: &Signed,
    error: Option<String>,
) -> Result<Response, UiError> {
    let org = signed.who.org().to_owned();
    let now = state.authority.now();
    let rows = state
        .authority
        .third_parties(&signed.who, &org)
        .await?
        .into_iter()
        .map(|tp| Row {
            kind: tp.kind.name(),
            keys: tp
                .keys
                .iter()
                .map(|k| k.id.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            created: When::at(tp.created, now),
            name: tp.name,
            location: tp.location,
            issuer: tp.issuer,
            audience: tp.audience,
        })
        .collect();
    let frame = Frame::of(signed, "third-parties");
    let status = super::page::status_with(&error);
    Ok(render_with(
        status,
        &Page {
            frame: Some(&frame),
            rows,
            can_add: signed.may(state, Resource::ThirdParties, None, Action::Create),
            can_remove: signed.may(state, Resource::ThirdParties, None, Action::Delete),
            error,
        },
    ))
}

#[derive(Deserialize)]
pub(super) struct AddForm {
    name: String,
    location: String,
    issuer: String,
    audience: String,
    jwks_url: String,
}

/// Registers a CI OIDC third party whose issuer's keys are fetched from `jwks_url`.
pub(super) async fn add(
    State(state): State<AppState>,
    signed: Signed,
    Form(form): Form<AddForm>,
) -> Result<Response, UiError> {
    let new = NewThirdParty::new(
        form.name.trim(),
        ThirdPartyKind::CiOidc,
        form.location.trim(),
        form.issuer.trim(),
        form.audience.trim(),
        Jwks::Url(form.jwks_url.trim().to_owned()),
    );
    let org = signed.who.org().to_owned();
    match state
        .authority
        .add_third_party(&signed.who, &org, &new)
        .await
    {
        Ok(_) => Ok(Redirect::to("/ui/third-parties").into_response()),
        Err(e) => {
            let e = UiError::from(e);
            if matches!(
                e.status_code(),
                StatusCode::BAD_REQUEST | StatusCode::CONFLICT
            ) {
                return page(&state, &signed, Some(e.message)).await;
            }
            Err(e)
        }
    }
}

#[derive(Deserialize)]
pub(super) struct RemoveForm {
    #[serde(default)]
    force: Option<String>,
}

/// Removes a third party (with `force`, even while live tokens need it).
pub(super) async fn remove(
    State(state): State<AppState>,
    signed: Signed,
    Path(name): Path<String>,
    Form(form): Form<RemoveForm>,
) -> Result<Response, UiError> {
    let org = signed.who.org().to_owned();
    let force = form.force.is_some();
    match state
        .authority
        .remove_third_party(&signed.who, &org, &name, force)
        .await
    {
        Ok(_) => Ok(Redirect::to("/ui/third-parties").into_response()),
        Err(e) => {
            let e = UiError::from(e);
            if e.status_code() == StatusCode::CONFLICT {
                return page(&state, &signed, Some(e.message)).await;
            }
            Err(e)
        }
    }
}
