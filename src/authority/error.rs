//! One error enum per operation, under the umbrella [`Error`]. Each variant has one
//! [`ErrorClass`] (which the HTTP layer maps to one status) and one stable code.

use crate::caveats::{Denial, format_span, format_time};
use crate::model::TokenKind;
use crate::store::{OpenError, StoreError};
use crate::token::{FailureClass, KeyId};

pub use super::master::MasterKeyError;

/// What kind of failure an error is, as a client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The request is malformed or asks for something impossible (400).
    BadRequest,
    /// The presented token does not authenticate (401).
    Unauthenticated,
    /// A caveat denies it (403).
    Denied,
    /// No such thing (404).
    NotFound,
    /// It conflicts with what exists (409).
    Conflict,
    /// The node cannot answer safely now; retry later (503).
    Unavailable,
    /// A bug or a broken store (500).
    Internal,
}

impl ErrorClass {
    /// The class's own stable code, used unless a variant has a finer one.
    pub fn code(self) -> &'static str {
        match self {
            ErrorClass::BadRequest => "bad_request",
            ErrorClass::Unauthenticated => "unauthenticated",
            ErrorClass::Denied => "denied",
            ErrorClass::NotFound => "not_found",
            ErrorClass::Conflict => "conflict",
            ErrorClass::Unavailable => "unavailable",
            ErrorClass::Internal => "internal",
        }
    }
}

/// How an error reads to a client.
pub trait Classify: std::fmt::Display {
    /// Its class.
    fn class(&self) -> ErrorClass;
    /// A stable snake_case code.
    fn code(&self) -> &'static str {
        self.class().code()
    }
    /// The denying caveat, for 403s.
    fn denial(&self) -> Option<&Denial> {
        None
    }
    /// For a failed check-and-set: the secret, its version now and the one expected.
    fn version_conflict(&self) -> Option<(&str, u64, u64)> {
        None
    }
}

impl Classify for StoreError {
    fn class(&self) -> ErrorClass {
        match self {
            StoreError::Conflict(_) => ErrorClass::Conflict,
            StoreError::Unavailable(_) => ErrorClass::Unavailable,
            StoreError::Corrupt(_) | StoreError::Internal(_) => ErrorClass::Internal,
        }
    }
}

impl Classify for MasterKeyError {
    fn class(&self) -> ErrorClass {
        ErrorClass::Internal
    }
}

/// An invalid org or app name (echoed escaped and cut).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid {what} name \"{shown}\": use 1 to 63 of a-z, 0-9 and '-', starting with a letter or digit"
)]
pub struct NameError {
    /// `org` or `app`.
    pub what: &'static str,
    /// The name, escaped and cut.
    pub shown: String,
}

/// Why `authenticate` (or `/v1/verify`) refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The token does not authenticate; only the class is told.
    #[error("token not accepted: {}", .0.code().replace('_', " "))]
    Unauthenticated(FailureClass),
    /// A third-party caveat has no discharge in the bundle: where to get one is told
    /// (the holder can read it in the token anyway).
    #[error(
        "token not accepted: missing discharge: the third-party caveat of {location} has no \
         discharge in the bundle (get one from there and bind it to the token)"
    )]
    MissingDischarge {
        /// The caveat's location, escaped and cut.
        location: String,
    },
    /// This node has not caught up with the change feed for too long to trust its
    /// deny-list and keys.
    #[error(
        "this node has not caught up with revocations and keys for {lag_secs} s \
         (more than --max-staleness); try another node or retry shortly"
    )]
    Stale {
        /// How far behind it is.
        lag_secs: u64,
    },
}

impl Classify for AuthError {
    fn class(&self) -> ErrorClass {
        match self {
            AuthError::Unauthenticated(_) | AuthError::MissingDischarge { .. } => {
                ErrorClass::Unauthenticated
            }
            AuthError::Stale { .. } => ErrorClass::Unavailable,
        }
    }
    fn code(&self) -> &'static str {
        match self {
            AuthError::Unauthenticated(c) => c.code(),
            AuthError::MissingDischarge { .. } => FailureClass::MissingDischarge.code(),
            AuthError::Stale { .. } => "stale",
        }
    }
}

/// Why an org operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OrgError {
    /// A caveat denies it.
    #[error(transparent)]
    Denied(Denial),
    /// The name is not a valid org name.
    #[error(transparent)]
    InvalidName(NameError),
    /// The name belongs to the authority itself.
    #[error("org {0} is reserved")]
    Reserved(&'static str),
    /// An org of that name exists.
    #[error("org {0} already exists")]
    Exists(String),
    /// No such org.
    #[error("no such org")]
    NotFound,
    /// A maximum expiry or retention of zero.
    #[error("a maximum expiry or a ledger retention must be positive")]
    ZeroMaxExpiry,
    /// An expiry past what a token can say.
    #[error("expiry {} is too far away", format_span(*.0))]
    TooFar(u64),
    /// The org token to issue cannot be minted as asked.
    #[error(transparent)]
    Mint(#[from] MintError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No randomness or a key does not unwrap.
    #[error(transparent)]
    Crypto(#[from] MasterKeyError),
}

impl Classify for OrgError {
    fn class(&self) -> ErrorClass {
        match self {
            OrgError::Denied(_) => ErrorClass::Denied,
            OrgError::InvalidName(_) | OrgError::ZeroMaxExpiry | OrgError::TooFar(_) => {
                ErrorClass::BadRequest
            }
            OrgError::Reserved(_) | OrgError::Exists(_) => ErrorClass::Conflict,
            OrgError::NotFound => ErrorClass::NotFound,
            OrgError::Mint(e) => e.class(),
            OrgError::Store(e) => e.class(),
            OrgError::Crypto(e) => e.class(),
        }
    }
    fn code(&self) -> &'static str {
        match self {
            OrgError::Mint(e) => e.code(),
            other => other.class().code(),
        }
    }
    fn denial(&self) -> Option<&Denial> {
        match self {
            OrgError::Denied(d) => Some(d),
            OrgError::Mint(e) => e.denial(),
            _ => None,
        }
    }
}

/// Why a mint failed.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// A caveat denies it, or the minter lacks a right it would grant.
    #[error(transparent)]
    Denied(Denial),
    /// The third party the token must require is unknown, or a condition is not one.
    #[error(transparent)]
    ThirdParty(Box<ThirdPartyError>),
    /// The org or app name is invalid.
    #[error(transparent)]
    InvalidName(NameError),
    /// The token name is empty, too long, or has control or invisible characters.
    #[error(
        "a token name is 1 to {max} printable characters, without control, invisible or \
         bidirectional-control characters"
    )]
    BadTokenName {
        /// The longest name.
        max: usize,
    },
    /// Deploy and runtime tokens need an app.
    #[error("a {0} token needs an app")]
    AppRequired(TokenKind),
    /// Org and readonly tokens are for the whole org.
    #[error("a {0} token is for the whole org; attenuate it to narrow it to an app")]
    AppNotAllowed(TokenKind),
    /// Operator tokens and sessions are not minted as presets.
    #[error("a {0} token is not minted as a preset")]
    NotAPreset(TokenKind),
    /// An expiry of zero.
    #[error("expiry must be positive")]
    ZeroExpiry,
    /// Longer than the org allows.
    #[error(
        "expiry {} exceeds the org's maximum of {}",
        format_span(*.ttl),
        format_span(*.max)
    )]
    OverOrgMaximum {
        /// Asked.
        ttl: u64,
        /// Allowed.
        max: u64,
    },
    /// Past what a token can say.
    #[error("expiry {} is too far away", format_span(*.0))]
    TooFar(u64),
    /// Later than the minting token's own expiry.
    #[error(
        "expiry {} is later than the presenting token's own expiry ({})",
        format_time(*.expires),
        format_time(*.limit)
    )]
    AfterMinter {
        /// Asked.
        expires: u64,
        /// The minter's expiry.
        limit: u64,
    },
    /// No such org.
    #[error("no such org")]
    OrgNotFound,
    /// The org has no app of that name (apps exist explicitly).
    #[error("{0}")]
    NoSuchApp(super::NoSuchApp),
    /// The org has no live key to mint with.
    #[error("org {0} has no live root key")]
    NoLiveKey(String),
    /// The minting token was revoked while the mint was under way (or on another node),
    /// or is being rotated out (its revocation takes effect at the end of an overlap).
    #[error(
        "the token making this request has been revoked, or is being rotated out: \
         mint with its replacement"
    )]
    MinterRevoked,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No randomness or a key does not unwrap.
    #[error(transparent)]
    Crypto(#[from] MasterKeyError),
}

impl Classify for MintError {
    fn class(&self) -> ErrorClass {
        match self {
            MintError::Denied(_) => ErrorClass::Denied,
            MintError::InvalidName(_)
            | MintError::BadTokenName { .. }
            | MintError::AppRequired(_)
            | MintError::AppNotAllowed(_)
            | MintError::NotAPreset(_)
            | MintError::ZeroExpiry
            | MintError::OverOrgMaximum { .. }
            | MintError::TooFar(_)
            | MintError::AfterMinter { .. } => ErrorClass::BadRequest,
            MintError::OrgNotFound | MintError::NoSuchApp(_) => ErrorClass::NotFound,
            MintError::NoLiveKey(_) => ErrorClass::Conflict,
            MintError::MinterRevoked => ErrorClass::Unauthenticated,
            MintError::Store(e) => e.class(),
            MintError::Crypto(e) => e.class(),
            MintError::ThirdParty(e) => e.class(),
        }
    }
    fn code(&self) -> &'static str {
        match self {
            MintError::MinterRevoked => FailureClass::Revoked.code(),
            MintError::NoSuchApp(_) => "no_such_app",
            other => other.class().code(),
        }
    }
    fn denial(&self) -> Option<&Denial> {
        match self {
            MintError::Denied(d) => Some(d),
            _ => None,
        }
    }
}

/// Why a token id (or id prefix) named nothing usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Not 8 to 32 lowercase hex digits.
    #[error("a token id is 8 to 32 lowercase hex digits (a prefix of the id `tokens list` shows)")]
    Bad,
    /// No token of the caller's org has it.
    #[error("no such token")]
    NotFound,
    /// More than one token of the caller's org starts with it.
    #[error("the id prefix is ambiguous: {0}; give more digits")]
    Ambiguous(String),
}

impl Classify for IdError {
    fn class(&self) -> ErrorClass {
        match self {
            IdError::Bad => ErrorClass::BadRequest,
            IdError::NotFound => ErrorClass::NotFound,
            IdError::Ambiguous(_) => ErrorClass::Conflict,
        }
    }
    fn code(&self) -> &'static str {
        match self {
            IdError::Ambiguous(_) => "ambiguous",
            other => other.class().code(),
        }
    }
}

/// Why reading the ledger failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// A caveat denies it.
    #[error(transparent)]
    Denied(Denial),
    /// The id names nothing usable.
    #[error(transparent)]
    Id(#[from] IdError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Classify for LedgerError {
    fn class(&self) -> ErrorClass {
        match self {
            LedgerError::Denied(_) => ErrorClass::Denied,
            LedgerError::Id(e) => e.class(),
            LedgerError::Store(e) => e.class(),
        }
    }
    fn code(&self) -> &'static str {
        match self {
            LedgerError::Id(e) => e.code(),
            other => other.class().code(),
        }
    }
    fn denial(&self) -> Option<&Denial> {
        match self {
            LedgerError::Denied(d) => Some(d),
            _ => None,
        }
    }
}

/// Revoking (or rotating) follows lineage as well as caveats: a token may revoke itself
/// as minted and the tokens minted from it, an org token any token of its org, the
/// operator the org tokens it issued; never a parent or a sibling (docs/API.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "a token may revoke or rotate only itself (as minted) and the tokens minted from it; \
     an org token, any token of its org"
)]
pub struct OutsideLineage;

/// Why a revocation failed.
#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    /// A caveat denies it.
    #[error(transparent)]
    Denied(Denial),
    /// The token is not the caller's to revoke (not itself as minted, not minted from it).
    #[error(transparent)]
    Lineage(OutsideLineage),
    /// No such token (or not within the caller's reach).
    #[error("no such token")]
    NotFound,
    /// The id names nothing usable.
    #[error(transparent)]
    Id(#[from] IdError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Classify for RevokeError {
    fn class(&self) -> ErrorClass {
        match self {
            RevokeError::Denied(_) | RevokeError::Lineage(_) => ErrorClass::Denied,
            RevokeError::NotFound => ErrorClass::NotFound,
            RevokeError::Id(e) => e.class(),
            RevokeError::Store(e) => e.class(),
        }
    }
    fn code(&self) -> &'static str {
        match self {
            RevokeError::Id(e) => e.code(),
            other => other.class().code(),
        }
    }
    fn denial(&self) -> Option<&Denial> {
        match self {
            RevokeError::Denied(d) => Some(d),
            _ => None,
        }
    }
}

/// Why a root-key operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A caveat denies it.
    #[error(transparent)]
    Denied(Denial),
    /// No such org.
    #[error("no such org")]
    OrgNotFound,
    /// No such key version.
    #[error("no such key version")]
    VersionNotFound,
    /// The current version cannot be retired.
    #[error("version {0} is the current key: rotate first")]
    RetireCurrent(u32),
    /// Retiring the caller's own version would lock the caller out.
    #[error(
        "the token making this request was minted under key version {0}; \
         retire it with a token minted under the current version"
    )]
    RetireOwn(u32),
    /// Every version number is used.
    #[error("no key versions left")]
    Exhausted,
    /// Live tokens would stop working and the caller did not confirm.
    #[error(
        "retiring version {version} stops {count} live token(s) minted under it ({names}); \
         confirm to go ahead (`keys retire {version} --yes`)"
    )]
    NeedsConfirmation {
        /// The version.
        version: u32,
        /// How many live tokens were minted under it.
        count: usize,
        /// Their names (the first few), escaped.
        names: String,
    },
    /// It would kill the org's last live org token.
    #[error(
        "retiring version {version} would stop the org's last live org token (\"{name}\"): \
         mint an org token under the current version first (or have the operator issue one: \
         `macvault orgs token ORG`)"
    )]
    LastOrgToken {
        /// The version.
        version: u32,
        /// The token's name, escaped.
        name: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No randomness or a key does not unwrap.
    #[error(transparent)]
    Crypto(#[from] MasterKeyError),
}

impl Classify for KeyError {
    fn class(&self) -> ErrorClass {
        match self {
            KeyError::Denied(_) => ErrorClass::Denied,
            KeyError::OrgNotFound | KeyError::VersionNotFound => ErrorClass::NotFound,
            KeyError::RetireCurrent(_)
            | KeyError::RetireOwn(_)
            | KeyError::Exhausted
            | KeyError::NeedsConfirmation { .. }
            | KeyError::LastOrgToken { .. } => ErrorClass::Conflict,
            KeyError::Store(e) => e.class(),
            KeyError::Crypto(e) => e.class(),
        }
    }
    fn code(&self) -> &'static str {
        match self {
            KeyError::NeedsConfirmation { .. } => "confirmation_required",
            other => other.class().code(),
        }
    }
    fn denial(&self) -> Option<&Denial> {
        match self {
            KeyError::Denied(d) => Some(d),
            _ => None,
        }
    }
}

/// Why a rotation failed.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// A caveat denies it (revoking needs `delete`, the replacement `create`, and the
    /// caller must hold every right the replacement grants).
    #[error(transparent)]
    Denied(Denial),
    /// The token is not the caller's to rotate (the rule of revoking).
    #[error(transparent)]
    Lineage(OutsideLineage),
    /// No such token (or not within the caller's reach).
    #[error("no such token")]
    NotFound,
    /// A token may not rotate itself: a thief could swap its owner's token for a fresh one.
    #[error("a token cannot rotate itself: present another token allowed to manage it")]
    OwnToken,
    /// It is revoked (or being rotated out) already.
    #[error("the token is revoked already (or being rotated out)")]
    Revoked,
    /// The operator token is replaced offline.
    #[error("the operator token is replaced offline: `macvault operator-token`")]
    Operator,
    /// The id names nothing usable.
    #[error(transparent)]
    Id(#[from] IdError),
    /// The replacement cannot be minted as asked.
    #[error(transparent)]
    Mint(#[from] MintError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Classify for RotateError {
    fn class(&self) -> ErrorClass {
        match self {
            RotateError::Denied(_) | RotateError::Lineage(_) => ErrorClass::Denied,
            RotateError::NotFound => ErrorClass::NotFound,
            RotateError::OwnToken | RotateError::Operator => ErrorClass::BadRequest,
            RotateError::Revoked => ErrorClass::Conflict,
            RotateError::Id(e) => e.class(),
            RotateError::Mint(e) => e.class(),
            RotateError::Store(e) => e.class(),
        }
    }
    fn code(&self) -> &'static str {
        match self {
            RotateError::Mint(e) => e.code(),
            RotateError::Id(e) => e.code(),
            other => other.class().code(),
        }
    }
    fn denial(&self) -> Option<&Denial> {
        match self {
            RotateError::Denied(d) => Some(d),
            RotateError::Mint(e) => e.denial(),
            _ => None,
        }
    }
}

/// Why reading the audit log failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A caveat denies it.
    #[error(transparent)]
    Denied(Denial),
    /// The cursor is not one this server gave out.
    #[error("not an audit cursor (use the `older` or `newer` value of a previous page)")]
    BadCursor,
    /// The token stopped authenticating while a follow waited (revoked, expired, its
    /// key retired), or the node went stale.
    #[error(transparent)]
    Auth(AuthError),
    /// The node is shutting down: a follow ends early; the caller asks again.
    #[error("this node is shutting down; ask again")]
    Draining,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Classify for AuditError {
    fn class(&self) -> ErrorClass {
        match self {
            AuditError::Denied(_) => ErrorClass::Denied,
            AuditError::BadCursor => ErrorClass::BadRequest,
            AuditError::Auth(e) => e.class(),
            AuditError::Draining => ErrorClass::Unavailable,
            AuditError::Store(e) => e.class(),
        }
    }
    fn code(&self) -> &'static str {
        match self {
            AuditError::Auth(e) => e.code(),
            AuditError::Draining => "draining",
            other => other.class().code(),
        }
    }
    fn denial(&self) -> Option<&Denial> {
        match self {
            AuditError::Denied(d) => Some(d),
            _ => None,
        }
    }
}

/// Why the authority could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The master key file is unusable.
    #[error(transparent)]
    Master(#[from] MasterKeyError),
    /// The store could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The database was initialised with another master key.
    #[error(
        "the database was initialised with a different master key than {0}; \
         use the master key file of the node that initialised it"
    )]
    MasterMismatch(String),
    /// The database has not been initialised and this node may not do it.
    #[error("the database is not initialised: run `macvault init --database …` first")]
    NotInitialised,
    /// A command that may not create a store found none where it looked (a typo in
    /// `--data-dir`?); nothing was created.
    #[error(
        "there is no macvault store here: {0} does not exist (a typo in --data-dir? \
         `macvault serve` or `macvault init` creates one); nothing was created"
    )]
    NothingThere(String),
    /// A file or directory others could read or change.
    #[error(transparent)]
    UnsafeMode(#[from] super::files::UnsafeMode),
    /// A file or directory could not be made.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// Founding the system org failed.
    #[error(transparent)]
    Org(#[from] OrgError),
    /// Minting the operator token failed.
    #[error(transparent)]
    Mint(#[from] MintError),
    /// Revoking the previous operator token failed.
    #[error(transparent)]
    Revoke(#[from] RevokeError),
}

/// Any authority error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// See [`AuthError`].
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// See [`OrgError`].
    #[error(transparent)]
    Org(#[from] OrgError),
    /// See [`MintError`].
    #[error(transparent)]
    Mint(#[from] MintError),
    /// See [`RevokeError`].
    #[error(transparent)]
    Revoke(#[from] RevokeError),
    /// See [`RotateError`].
    #[error(transparent)]
    Rotate(#[from] RotateError),
    /// See [`LedgerError`].
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// See [`KeyError`].
    #[error(transparent)]
    Key(#[from] KeyError),
    /// See [`AuditError`].
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// See [`StartError`].
    #[error(transparent)]
    Start(#[from] StartError),
}

/// Why a third-party operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ThirdPartyError {
    /// A caveat denies it.
    #[error(transparent)]
    Denied(Denial),
    /// A name is not acceptable.
    #[error(transparent)]
    InvalidName(NameError),
    /// A field of the registration (or a condition) is not acceptable.
    #[error("{what} {why}")]
    BadField {
        /// Which field.
        what: &'static str,
        /// What is wrong.
        why: String,
    },
    /// No such org.
    #[error("org not found")]
    OrgNotFound,
    /// No such third party.
    #[error("third party not found")]
    NotFound,
    /// The org has a third party of that name.
    #[error("the org already has a third party of that name")]
    Exists,
    /// Live tokens need it.
    #[error(
        "{count} live token(s) need this third party ({names}); revoke them first, or remove \
         it anyway with --force (they can then never be discharged)"
    )]
    InUse {
        /// How many.
        count: usize,
        /// The first few names, escaped.
        names: String,
    },
    /// The third party has no key of that id (retired, or another third party's).
    #[error("the third party has no key with that id (retired, or another third party's)")]
    UnknownKey,
    /// The key to retire is the one new tickets are sealed to.
    #[error("key {0} seals the third party's new tickets: rotate-key first, then retire it")]
    CurrentKey(KeyId),
    /// Live tokens hold tickets sealed to the key.
    #[error(
        "{count} live token(s) hold tickets sealed to this key ({names}); rotate or revoke \
         them first, or retire it anyway with --force (they then stop working)"
    )]
    KeyInUse {
        /// How many.
        count: usize,
        /// The first few names, escaped.
        names: String,
    },
    /// No randomness.
    #[error("no randomness from the operating system")]
    Random,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A key does not unwrap.
    #[error(transparent)]
    Crypto(#[from] MasterKeyError),
}

impl Classify for ThirdPartyError {
    fn class(&self) -> ErrorClass {
        match self {
            ThirdPartyError::Denied(_) => ErrorClass::Denied,
            ThirdPartyError::InvalidName(_) | ThirdPartyError::BadField { .. } => {
                ErrorClass::BadRequest
            }
            ThirdPartyError::OrgNotFound
            | ThirdPartyError::NotFound
            | ThirdPartyError::UnknownKey => ErrorClass::NotFound,
            ThirdPartyError::Exists
            | ThirdPartyError::InUse { .. }
            | ThirdPartyError::KeyInUse { .. }
            | ThirdPartyError::CurrentKey(_) => ErrorClass::Conflict,
            ThirdPartyError::Random => ErrorClass::Internal,
            ThirdPartyError::Store(e) => e.class(),
            ThirdPartyError::Crypto(e) => e.class(),
        }
    }
    fn code(&self) -> &'static str {
        match self {
            ThirdPartyError::InUse { .. } | ThirdPartyError::KeyInUse { .. } => "in_use",
            other => other.class().code(),
        }
    }
    fn denial(&self) -> Option<&Denial> {
        match self {
            ThirdPartyError::Denied(d) => Some(d),
            _ => None,
        }
    }
}
