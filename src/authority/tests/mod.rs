//! The authority's rules, exercised in-process: one fixture, chapters by subject.

mod audit;
mod lifecycle;
mod oauth;
mod oauth_flow;
mod purity;
mod rules;
mod sessions;
mod third_parties;
pub(crate) mod upgrade;

use std::sync::Arc;

use super::*;
use crate::model::TokenKind;

/// A fresh embedded authority in a temp dir, and its operator token.
pub(super) async fn open() -> (tempfile::TempDir, Arc<Authority>, String) {
    let dir = tempfile::tempdir().unwrap();
    let opened = Authority::open(dir.path()).await.unwrap();
    let path = opened
        .operator_token
        .clone()
        .expect("first start writes the operator token");
    let op = std::fs::read_to_string(path).unwrap().trim().to_owned();
    (dir, opened.authority, op)
}

/// An authority on a fresh PostgreSQL database with the org `acme` and its apps, and
/// acme's org token (`None` without a test database).
pub(crate) async fn on_postgres(
    dir: &std::path::Path,
) -> Option<(crate::store::conformance::TestDb, Arc<Authority>, String)> {
    let db = crate::store::conformance::TestDb::create().await?;
    let setup = Setup {
        store: crate::store::Location::Postgres(db.url.clone()),
        ..Setup::dir(dir)
    };
    let opened = Authority::open_with(&setup).await.unwrap();
    let op = std::fs::read_to_string(opened.operator_token.unwrap()).unwrap();
    let a = opened.authority;
    let org = org_token(&a, op.trim(), "acme").await;
    Some((db, a, org))
}

/// `text` authenticated (test setup: must succeed).
pub(super) async fn who(a: &Authority, text: &str) -> Principal {
    a.authenticate(text, Client::default()).await.unwrap()
}

/// The class a token is refused with.
pub(super) async fn refused(a: &Authority, text: &str) -> crate::token::FailureClass {
    match a.authenticate(text, Client::default()).await {
        Err(AuthError::Unauthenticated(class)) => class,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

pub(super) fn spec(kind: TokenKind, app: Option<&str>, expiry_secs: Option<u64>) -> MintSpec {
    let mut s = MintSpec::new(kind);
    s.app = app.map(str::to_owned);
    s.expiry_secs = expiry_secs;
    s
}

/// Mints a preset in `acme` with the token `by` (test setup: must succeed).
pub(super) async fn mint_by(
    a: &Authority,
    by: &str,
    kind: TokenKind,
    app: Option<&str>,
    expiry: Option<u64>,
) -> Minted {
    a.mint(&who(a, by).await, "acme", &spec(kind, app, expiry))
        .await
        .unwrap()
}

/// Creates org `name` with the apps the tests use (`web`, `api`); its org token.
pub(super) async fn org_token(a: &Authority, op: &str, name: &str) -> String {
    let token = a
        .create_org(&who(a, op).await, name, None)
        .await
        .unwrap()
        .token
        .expose()
        .to_owned();
    let org = who(a, &token).await;
    for app in ["web", "api"] {
        a.create_app(&org, name, app).await.unwrap();
    }
    token
}
