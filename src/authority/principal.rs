//! [`Principal`]: the proof that a request carries a verified, unrevoked token.
//!
//! Only [`Authority::authenticate`](super::Authority::authenticate) builds one: its
//! chain verified under a live key, it is not on the deny-list, and the node's view of
//! keys and revocations is fresh enough. Every authority operation takes a
//! `&Principal`; the token core's [`verify`](crate::token::verify) stays public for
//! offline use, but its output ([`Verified`]) is accepted nowhere in the authority.
//!
//! No public path yields a `Principal` without the deny-list. Neither a struct literal
//! nor a constructor is reachable from outside:
//!
//! ```compile_fail,E0451
//! use macvault::authority::{Client, Principal};
//! fn forge(token: macvault::token::Verified<'static>) -> Principal {
//!     Principal { token, client: Client::default() }
//! }
//! ```
//!
//! ```compile_fail,E0624
//! use macvault::authority::{Client, Principal};
//! fn forge(token: macvault::token::Verified<'static>) -> Principal {
//!     Principal::new(token, Client::default())
//! }
//! ```
//!
//! while reading one is (the same imports compile):
//!
//! ```
//! use macvault::authority::{Client, Principal};
//! fn id(p: &Principal) -> String { p.token_id().to_string() }
//! fn token(v: macvault::token::Verified<'static>) -> u32 { v.key_version() }
//! let _ = Client::default();
//! ```

use crate::caveats::{Access, Caveat, Denial};
use crate::model::Actor;
use crate::token::{TokenId, Verified};

use super::Client;

/// An authenticated caller: a verified, unrevoked token and where it came from. Not
/// yet authorized for anything: each operation checks its access.
#[derive(Debug)]
pub struct Principal {
    token: Verified<'static>,
    client: Client,
}

impl Principal {
    pub(super) fn new(token: Verified<'static>, client: Client) -> Self {
        Principal { token, client }
    }

    /// The token's id (the same for every attenuation of it).
    pub fn token_id(&self) -> TokenId {
        self.token.token_id()
    }

    /// The org whose key signed it.
    pub fn org(&self) -> &str {
        self.token.org()
    }

    /// The root-key version that signed it.
    pub fn key_version(&self) -> u32 {
        self.token.key_version()
    }

    /// Its effective expiry, unix seconds.
    pub fn expires(&self) -> Option<u64> {
        self.token.expires()
    }

    /// Every effective first-party caveat, in order.
    pub fn caveats(&self) -> &[Caveat<'static>] {
        self.token.caveats()
    }

    /// How many third-party caveats it carried (each discharged).
    pub fn third_party_caveats(&self) -> usize {
        self.token.third_party_caveats()
    }

    /// The verified token (its own caveats, its discharges', its tickets).
    pub(crate) fn verified(&self) -> &Verified<'static> {
        &self.token
    }

    /// Where the request came from.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The audit actor.
    pub(crate) fn actor(&self) -> Actor {
        Actor {
            token: Some(self.token_id()),
            ip: self.client.ip,
        }
    }

    /// Whether every caveat allows `access` (no audit; see `Authority::require`).
    pub(super) fn check(&self, access: &Access<'_>) -> Result<(), Denial> {
        self.token.check(access)
    }
}
