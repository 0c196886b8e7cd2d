//! Why a secrets operation failed: one variant each, one class each.

use crate::authority::{Classify, ErrorClass, MasterKeyError};
use crate::caveats::{Denial, format_span};
use crate::store::StoreError;

use super::limits::{
    MAX_APP_TOTAL, MAX_DESCRIPTION, MAX_NAME, MAX_ORG_SECRETS, MAX_PER_WRITE, MAX_VALUE,
};

/// Why a secrets operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// A caveat denies it.
    #[error(transparent)]
    Denied(Denial),
    /// A name that changes how programs load or run code, written by a token that could
    /// not reveal every value of the scope.
    #[error(
        "{name} changes how programs load or run code, so writing it is as strong as reading \
         every value of {scope}: only a token that may reveal the whole scope (reveal on an \
         unfiltered listing) may write it"
    )]
    LoadsCode {
        /// The name.
        name: String,
        /// The scope, as `app web of org acme`.
        scope: String,
    },
    /// Changing an allow-list of names that load code takes an org token as minted.
    #[error(
        "only an org token as minted (not an attenuated copy) may change which names that \
         load code deploy tokens may write"
    )]
    OrgTokenOnly,
    /// An allow-list holds only names that load code.
    #[error("{0} does not load code: any token that may write it may set it, no allowing needed")]
    NotCodeName(String),
    /// Not an environment-variable name.
    #[error(
        "invalid secret name \"{0}\": use an environment variable name, [A-Za-z_][A-Za-z0-9_]*, \
         at most {MAX_NAME} bytes"
    )]
    InvalidName(String),
    /// An org or app name that is not one.
    #[error(transparent)]
    InvalidScope(crate::authority::NameError),
    /// A value over the limit.
    #[error("the value of {name} is {size} bytes; a value is at most {MAX_VALUE} bytes")]
    ValueTooLarge {
        /// The secret.
        name: String,
        /// Its size.
        size: usize,
    },
    /// A value with a NUL byte (an environment cannot hold it).
    #[error("the value of {0} contains a NUL byte, which no environment variable can hold")]
    ValueHasNul(String),
    /// A description that is too long or has control characters.
    #[error("a description is at most {MAX_DESCRIPTION} printable characters")]
    BadDescription,
    /// An expiry of zero or past what can be said.
    #[error(
        "a secret's expiry is a positive duration (at most {})",
        format_span(crate::caveats::MAX_TIME)
    )]
    BadExpiry,
    /// Nothing to write, a name twice, or too many at once.
    #[error("a write sets or unsets 1 to {MAX_PER_WRITE} secrets, each once ({0})")]
    BadWrite(&'static str),
    /// The org would keep more secrets than allowed.
    #[error("an org keeps at most {MAX_ORG_SECRETS} secrets; this write would make {0}")]
    TooMany(usize),
    /// An app's resolved secrets would not fit an environment. (No total is told: to
    /// a token that may not reveal, it would give away value lengths.)
    #[error(
        "the secrets of {app} would not fit an environment: an app's resolved secrets are at \
         most {MAX_APP_TOTAL} bytes"
    )]
    AppTooLarge {
        /// Which app: `app web`, or every app without secrets of its own.
        app: String,
    },
    /// A scope's own cap (see `limits`): named, without totals.
    #[error("{scope} keeps at most {limit}")]
    ScopeFull {
        /// The scope, as `app web of org acme`.
        scope: String,
        /// The limit, in words.
        limit: &'static str,
    },
    /// No such org.
    #[error("no such org")]
    OrgNotFound,
    /// The org has no such app (apps exist explicitly).
    #[error("{0}")]
    NoSuchApp(crate::authority::NoSuchApp),
    /// Creating the app on a first write was refused.
    #[error(transparent)]
    App(Box<crate::authority::AppError>),
    /// The org has no secrets yet, so no secrets key either.
    #[error("the org has no secrets yet, so no secrets key to rotate or show")]
    NoSecretsKey,
    /// No such secret.
    #[error("no such secret: {0}")]
    NotFound(String),
    /// No such version of the secret.
    #[error("{name} has no version {version} (or it is no longer kept)")]
    VersionNotFound {
        /// The secret.
        name: String,
        /// The version asked for.
        version: u64,
    },
    /// The version's value was destroyed.
    #[error("version {version} of {name} was destroyed: its value is gone")]
    Destroyed {
        /// The secret.
        name: String,
        /// The version.
        version: u64,
    },
    /// Check-and-set: the secret is not at the expected version.
    #[error("{name} is at version {current}, not {expected}")]
    VersionConflict {
        /// The secret.
        name: String,
        /// Its version now (0: not set).
        current: u64,
        /// What the caller expected.
        expected: u64,
    },
    /// A stored value or key does not open: tampered with, or moved to another record.
    #[error(
        "{0}: the stored ciphertext does not open here (tampered with, or moved from another record)"
    )]
    Corrupt(String),
    /// The org's secrets keys changed meanwhile (a rotation); the caller retries.
    #[error("the org's secrets keys changed during the write; try again")]
    KeysChanged,
    /// The node is shutting down: a long poll ends early; the caller asks again
    /// (another node, or this one once it is back).
    #[error("this node is shutting down; ask again")]
    Draining,
    /// The token stopped authenticating while the request waited (revoked, expired,
    /// its key retired), or the node went stale.
    #[error(transparent)]
    Auth(crate::authority::AuthError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No randomness, or a key does not unwrap with the master key.
    #[error(transparent)]
    Crypto(#[from] MasterKeyError),
}

impl Classify for SecretError {
    fn class(&self) -> ErrorClass {
        match self {
            SecretError::Denied(_) | SecretError::LoadsCode { .. } | SecretError::OrgTokenOnly => {
                ErrorClass::Denied
            }
            SecretError::InvalidName(_)
            | SecretError::InvalidScope(_)
            | SecretError::ValueTooLarge { .. }
            | SecretError::ValueHasNul(_)
            | SecretError::BadDescription
            | SecretError::BadExpiry
            | SecretError::BadWrite(_)
            | SecretError::TooMany(_)
            | SecretError::AppTooLarge { .. }
            | SecretError::ScopeFull { .. }
            | SecretError::NotCodeName(_) => ErrorClass::BadRequest,
            SecretError::OrgNotFound
            | SecretError::NoSuchApp(_)
            | SecretError::NoSecretsKey
            | SecretError::NotFound(_)
            | SecretError::VersionNotFound { .. } => ErrorClass::NotFound,
            SecretError::Destroyed { .. } | SecretError::VersionConflict { .. } => {
                ErrorClass::Conflict
            }
            SecretError::KeysChanged | SecretError::Draining => ErrorClass::Unavailable,
            SecretError::Corrupt(_) => ErrorClass::Internal,
            SecretError::Auth(e) => e.class(),
            SecretError::App(e) => e.class(),
            SecretError::Store(e) => e.class(),
            SecretError::Crypto(e) => e.class(),
        }
    }
    fn code(&self) -> &'static str {
        match self {
            SecretError::VersionConflict { .. } => "version_conflict",
            SecretError::Destroyed { .. } => "destroyed",
            SecretError::Auth(e) => e.code(),
            SecretError::App(e) => e.code(),
            SecretError::NoSuchApp(_) => "no_such_app",
            SecretError::Draining => "draining",
            other => other.class().code(),
        }
    }
    fn denial(&self) -> Option<&Denial> {
        match self {
            SecretError::Denied(d) => Some(d),
            SecretError::App(e) => e.denial(),
            _ => None,
        }
    }
    fn version_conflict(&self) -> Option<(&str, u64, u64)> {
        match self {
            SecretError::VersionConflict {
                name,
                current,
                expected,
            } => Some((name, *current, *expected)),
            _ => None,
        }
    }
}
