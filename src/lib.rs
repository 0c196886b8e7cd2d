//! macvault: a token authority built on macaroons, and a secrets store that trusts
//! nothing but those tokens.

pub mod token;

/// The caveat vocabulary (crate `macvault-caveats`).
pub use macvault_caveats as caveats;
