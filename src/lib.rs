//! macvault: a token authority built on macaroons, and a secrets store that trusts
//! nothing but those tokens.

// Tests may unwrap (STYLE.md); the non-test build is still linted.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod api;
pub mod audit;
pub mod authority;
pub mod cli;
pub mod http;
pub mod store;
pub mod token;

/// The caveat vocabulary (crate `macvault-caveats`).
pub use macvault_caveats as caveats;
