//! The macvault caveat vocabulary: caveats, the [`Access`] they judge, their canonical text
//! form (what goes into tokens) and JSON form (caveat files, the API), and evaluation.
//!
//! ```
//! use macvault_caveats::{Access, Action, Caveat, Resource, evaluate};
//!
//! let caveat = Caveat::parse("app = api:r,web:rw").unwrap();
//! assert_eq!(caveat.to_string(), "app = api:r,web:rw");
//! let access = Access {
//!     org: "acme",
//!     app: Some("api"),
//!     resource: Resource::Secrets,
//!     action: Action::Write,
//!     secret: macvault_caveats::SecretTarget::None,
//!     now: 0,
//!     source_ip: None,
//! };
//! let denial = evaluate([&b"org = acme"[..], b"app = api:r,web:rw"], &access).unwrap_err();
//! assert_eq!(denial.to_string(), r#"caveat 2 (app = api:r,web:rw) does not allow write on app "api""#);
//! ```

// Tests may unwrap (docs/STYLE.md); the non-test build of this crate is still linted.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod access;
mod action;
mod caveat;
mod condition;
mod error;
mod eval;
mod implies;
mod json;
mod net;
mod time;

pub use access::{Access, AccessSpec, SecretTarget};
pub use action::{Action, ActionSet, Resource, ResourceSet};
pub use caveat::{
    AppActions, Caveat, MAX_ITEMS, MAX_NETWORKS, MAX_TEXT, Name, Networks, SecretPatterns,
    ValidityWindow, is_valid_name, is_valid_secret_name, pattern_matches,
};
pub use condition::{Condition, ConditionFailure, Judgement, judge, parse_conditions, parse_span};
pub use error::{Excerpt, ParseError, Reason, is_invisible};
pub use eval::{Denial, evaluate};
pub use net::IpNet;
pub use time::{MAX_TIME, Timestamp, format_span, format_time, parse_time};
