//! macvault: a token authority built on macaroons, and a secrets store that trusts
//! nothing but those tokens.

// Tests may unwrap (STYLE.md); the non-test build is still linted.
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
pub mod http;
pub mod model;
#[cfg(feature = "server")]
pub mod secrets;
#[cfg(feature = "server")]
pub mod store;
pub mod token;

/// The caveat vocabulary (crate `macvault-caveats`).
pub use macvault_caveats as caveats;
