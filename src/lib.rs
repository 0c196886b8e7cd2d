//! macvault: a token authority built on macaroons, and a secrets store that trusts
//! nothing but those tokens.
//!
//! A map of the crate, each layer using only those before it (docs/DESIGN.md):
//!
//! - [`caveats`] (crate `macvault-caveats`): the caveat vocabulary and its evaluation.
//! - [`token`]: macaroons — the HMAC chain, wire formats, bundles, discharges.
//! - [`model`]: the domain records the store keeps and the API answers from.
//! - `store`: one interface over redb and PostgreSQL, migrations, the conformance suite.
//! - `authority`: orgs, keys, minting, lineage and revocation, the change feed,
//!   dashboard sessions, the OAuth provider's clients, scopes and grants, and
//!   `authenticate`, the only way to a `Principal`.
//! - `secrets`: the secrets store (versions, envelope encryption, reveal).
//! - `audit`: audit event names and labels.
//! - `oidc`: checking a CI job's OIDC ID token; `discharge`: the built-in CI discharger
//!   (JWKS, the discharge request, one use per ID token).
//! - `limits`: rate limits on failures and quotas on costly calls, per node.
//! - `api`: the HTTP request and answer bodies; `http`: the server (its Prometheus
//!   metrics, `http::metrics`, the dashboard under `/ui`, `http/ui`, and the OAuth
//!   endpoints, `http/oauth.rs`); `cli`: the
//!   command line (and `macvault run`).
//!
//! Everything but the first three needs the `server` feature (on by default).

// Tests may unwrap (docs/STYLE.md); the non-test build is still linted.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

#[cfg(feature = "server")]
pub mod api;
#[cfg(feature = "server")]
pub mod audit;
#[cfg(feature = "server")]
pub mod authority;
#[cfg(feature = "server")]
pub mod cli;
#[cfg(feature = "server")]
pub mod discharge;
#[cfg(feature = "server")]
pub mod http;
#[cfg(feature = "server")]
pub mod limits;
pub mod model;
#[cfg(feature = "oidc")]
pub mod oidc;
#[cfg(feature = "server")]
pub mod secrets;
#[cfg(feature = "server")]
pub mod store;
pub mod token;

/// The caveat vocabulary (crate `macvault-caveats`).
pub use macvault_caveats as caveats;
