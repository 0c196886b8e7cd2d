//! The Tokens pages: the org's ledger with filters, one token with its lineage, minting
//! a preset (the one answer that shows a token, once), revoking after the same preview
//! as the CLI, and rotating. Write controls show only where the session's caveats allow
//! them; the authority refuses the write anyway.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::page::{Frame, When, render};
use super::{Signed, UiError};
use crate::authority::{MintSpec, RevokeOptions};
use crate::caveats::{Action, Resource};
use crate::http::AppState;
use crate::model::{TokenKind, TokenStatus, TokenView};

/// Under this, an expiry is shown as a warning.
const SOON: u64 = 7 * 86_400;

/// One token as a row.
pub(super) struct Row {
    id: String,
    short_id: String,
    name: String,
    kind: &'static str,
    app: String,
    status: &'static str,
    fingerprint: String,
    created: When,
    expires: When,
    expires_soon: bool,
    last_used: Option<When>,
    last_ip: String,
    last_agent: String,
}

impl Row {
    fn of(v: &TokenView, now: u64) -> Row {
        let r = &v.entry.record;
        let used = v.entry.last_used.as_ref();
        Row {
            id: r.id.to_string(),
            short_id: r.id.to_string()[..12].to_owned(),
            name: r.name.clone(),
            kind: r.kind.name(),
            app: r.app.clone().unwrap_or_default(),
            status: v.status.name(),
            fingerprint: r.fingerprint.clone(),
            created: When::at(r.created, now),
            expires: When::at(r.expires, now),
            expires_soon: v.status == TokenStatus::Active && r.expires.saturating_sub(now) < SOON,
            last_used: used.map(|u| When::at(u.time, now)),
            last_ip: used
                .and_then(|u| u.ip)
                .map_or_else(String::new, |ip| ip.to_string()),
            last_agent: used.and_then(|u| u.user_agent.clone()).unwrap_or_default(),
        }
    }
}

#[derive(Deserialize, Default)]
pub(super) struct Filters {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    app: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    find: String,
}

#[derive(Template)]
#[template(path = "ui/tokens.html")]
struct ListPage<'a> {
    frame: Option<&'a Frame>,
    rows: Vec<Row>,
    total: usize,
    filters: Filters,
    kinds: &'static [&'static str],
    statuses: &'static [&'static str],
    can_mint: bool,
}

const KINDS: &[&str] = &["org", "deploy", "readonly", "runtime", "operator"];
const STATUSES: &[&str] = &["active", "expired", "revoked", "key_retired"];

/// The org's tokens (sessions left out), newest first, filtered by kind, app, status,
/// and a name, id or fingerprint fragment.
pub(super) async fn list(
    State(state): State<AppState>,
    signed: Signed,
    Query(filters): Query<Filters>,
) -> Result<Response, UiError> {
    let org = signed.who.org().to_owned();
    let views = state
        .authority
        .list_tokens(&signed.who, &org, false)
        .await?;
    let now = state.authority.now();
    let find = filters.find.trim().to_ascii_lowercase();
    let keep = |v: &&TokenView| {
        let r = &v.entry.record;
        (filters.kind.is_empty() || r.kind.name() == filters.kind)
            && (filters.app.is_empty() || r.app.as_deref() == Some(filters.app.as_str()))
            && (filters.status.is_empty() || v.status.name() == filters.status)
            && (find.is_empty()
                || r.name.to_ascii_lowercase().contains(&find)
                || r.id.to_string().starts_with(&find)
                || r.fingerprint.contains(&find))
    };
    let mut rows: Vec<Row> = views.iter().filter(keep).map(|v| Row::of(v, now)).collect();
    rows.reverse();
    let can_mint = signed.may(&state, Resource::Tokens, None, Action::Create);
    let frame = Frame::of(&signed, "tokens");
    Ok(render(&ListPage {
        frame: Some(&frame),
        total: views.len(),
        rows,
        filters,
        kinds: KINDS,
        statuses: STATUSES,
        can_mint,
    }))
}

#[derive(Template)]
#[template(path = "ui/token.html")]
struct TokenPage<'a> {
    frame: Option<&'a Frame>,
    token: Row,
    caveats: Vec<String>,
    ancestors: Vec<Row>,
    children: Vec<Row>,
    can_revoke: bool,
    can_rotate: bool,
}

/// One token: what it is, its caveats, its lineage, and what may be done to it.
pub(super) async fn show(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let detail = state.authority.show_token(&signed.who, &id).await?;
    let now = state.authority.now();
    let live = detail.token.status == TokenStatus::Active;
    let can_revoke = live && signed.may(&state, Resource::Tokens, None, Action::Delete);
    let can_rotate = can_revoke
        && signed.may(&state, Resource::Tokens, None, Action::Create)
        && !matches!(
            detail.token.entry.record.kind,
            TokenKind::Operator | TokenKind::Session
        );
    let frame = Frame::of(&signed, "tokens");
    Ok(render(&TokenPage {
        frame: Some(&frame),
        caveats: detail.token.entry.record.caveats.clone(),
        token: Row::of(&detail.token, now),
        ancestors: detail.ancestors.iter().map(|v| Row::of(v, now)).collect(),
        children: detail.children.iter().map(|v| Row::of(v, now)).collect(),
        can_revoke,
        can_rotate,
    }))
}

#[derive(Template)]
#[template(path = "ui/token_new.html")]
struct NewPage<'a> {
    frame: Option<&'a Frame>,
    apps: Vec<String>,
    error: Option<String>,
}

/// The form to mint a preset.
pub(super) async fn new_form(
    State(state): State<AppState>,
    signed: Signed,
) -> Result<Response, UiError> {
    new_page(&state, &signed, None).await
}

async fn new_page(
    state: &AppState,
    signed: &Signed,
    error: Option<String>,
) -> Result<Response, UiError> {
    let org = signed.who.org().to_owned();
    let apps = state
        .authority
        .apps(&signed.who, &org)
        .await
        .map(|apps| apps.into_iter().map(|a| a.app.name).collect())
        .unwrap_or_default();
    let frame = Frame::of(signed, "tokens");
    let status = super::page::status_with(&error);
    Ok(super::page::render_with(
        status,
        &NewPage {
            frame: Some(&frame),
            apps,
            error,
        },
    ))
}

#[derive(Deserialize)]
pub(super) struct MintForm {
    kind: String,
    #[serde(default)]
    app: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    expiry: String,
}

#[derive(Template)]
#[template(path = "ui/token_once.html")]
struct OncePage<'a> {
    frame: Option<&'a Frame>,
    title: &'a str,
    token: &'a str,
    record: Row,
}

/// Mints a preset, and shows the token once (this answer is never stored, linked or
/// shown again).
pub(super) async fn mint(
    State(state): State<AppState>,
    signed: Signed,
    Form(form): Form<MintForm>,
) -> Result<Response, UiError> {
    let kind: TokenKind = match form.kind.parse() {
        Ok(k) => k,
        Err(_) => return new_page(&state, &signed, Some("Choose a kind of token.".into())).await,
    };
    let expiry_secs = match form.expiry.trim() {
        "" => None,
        text => match humantime::parse_duration(text) {
            Ok(d) if d.as_secs() > 0 => Some(d.as_secs()),
            _ => {
                let why = format!("“{text}” is not a duration like 30d or 12h.");
                return new_page(&state, &signed, Some(why)).await;
            }
        },
    };
    let spec = MintSpec {
        kind,
        app: Some(form.app.trim().to_owned()).filter(|a| !a.is_empty()),
        name: Some(form.name.trim().to_owned()).filter(|n| !n.is_empty()),
        expiry_secs,
        require: None,
    };
    let org = signed.who.org().to_owned();
    let minted = match state.authority.mint(&signed.who, &org, &spec).await {
        Ok(m) => m,
        Err(e) => {
            let e = UiError::from(e);
            if e.status_code() == StatusCode::BAD_REQUEST {
                return new_page(&state, &signed, Some(e.message)).await;
            }
            return Err(e);
        }
    };
    let now = state.authority.now();
    let view = TokenView {
        status: TokenStatus::Active,
        entry: crate::model::LedgerEntry {
            record: minted.record.clone(),
            last_used: None,
        },
    };
    let frame = Frame::of(&signed, "tokens");
    Ok(render(&OncePage {
        frame: Some(&frame),
        title: "Token minted",
        token: minted.token.expose(),
        record: Row::of(&view, now),
    }))
}

#[derive(Template)]
#[template(path = "ui/revoke.html")]
struct RevokePage<'a> {
    frame: Option<&'a Frame>,
    token: Row,
    orphan: bool,
    descendants: Vec<Row>,
}

#[derive(Deserialize, Default)]
pub(super) struct RevokeQuery {
    #[serde(default)]
    orphan: bool,
}

/// What revoking a token would take with it (the CLI's preview), and the confirmation.
pub(super) async fn revoke_preview(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    Query(q): Query<RevokeQuery>,
) -> Result<Response, UiError> {
    let (record, live) = state
        .authority
        .revoke_preview(&signed.who, Some(&id), q.orphan)
        .await?;
    let now = state.authority.now();
    let row = |r: &crate::model::TokenRecord| {
        let view = TokenView {
            status: TokenStatus::Active,
            entry: crate::model::LedgerEntry {
                record: r.clone(),
                last_used: None,
            },
        };
        Row::of(&view, now)
    };
    let frame = Frame::of(&signed, "tokens");
    Ok(render(&RevokePage {
        frame: Some(&frame),
        token: row(&record),
        orphan: q.orphan,
        descendants: live.iter().map(row).collect(),
    }))
}

#[derive(Deserialize)]
pub(super) struct RevokeForm {
    #[serde(default)]
    orphan: Option<String>,
}

/// Revokes a token (and, unless orphaning, what it minted).
pub(super) async fn revoke(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    Form(form): Form<RevokeForm>,
) -> Result<Response, UiError> {
    let opts = RevokeOptions {
        orphan: form.orphan.is_some(),
        delay_secs: 0,
    };
    let done = state.authority.revoke(&signed.who, &id, opts).await?;
    // Revoking the token this session came from ends the session too.
    if state.authority.recheck(&signed.who).is_err() {
        return Ok(super::sessions::signed_out(&state));
    }
    Ok(Redirect::to(&format!("/ui/tokens/{}", done.record.id)).into_response())
}

#[derive(Deserialize)]
pub(super) struct RotateForm {
    #[serde(default)]
    overlap: String,
}

/// Rotates a token: its replacement is shown once; the old one ends after the overlap.
pub(super) async fn rotate(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    Form(form): Form<RotateForm>,
) -> Result<Response, UiError> {
    let overlap = match form.overlap.trim() {
        "" => 0,
        text => humantime::parse_duration(text)
            .map_err(|_| {
                UiError::status(
                    StatusCode::BAD_REQUEST,
                    format!("“{text}” is not a duration like 10m or 1h."),
                )
            })?
            .as_secs(),
    };
    let rotated = state
        .authority
        .rotate(&signed.who, &id, overlap, None)
        .await?;
    let now = state.authority.now();
    let view = TokenView {
        status: TokenStatus::Active,
        entry: crate::model::LedgerEntry {
            record: rotated.minted.record.clone(),
            last_used: None,
        },
    };
    let frame = Frame::of(&signed, "tokens");
    Ok(render(&OncePage {
        frame: Some(&frame),
        title: "Token rotated",
        token: rotated.minted.token.expose(),
        record: Row::of(&view, now),
    }))
}
