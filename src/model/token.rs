//! The ledger's records of minted tokens: never the token itself.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::token::TokenId;

/// The kind a token was minted as. The presets (`org`, `deploy`, `readonly`,
/// `runtime`) can be minted through the API; `operator` only by the authority itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// Manages one org: tokens, keys, apps, secrets (including reveal).
    Org,
    /// CI/CD for one app: every action on it but `reveal`.
    Deploy,
    /// Looks, never changes or reveals.
    Readonly,
    /// What a running app uses to read its secrets.
    Runtime,
    /// Administers the authority (org `system`).
    Operator,
    /// A dashboard session: minted at sign-in as a child of the token pasted in, with
    /// its caveats, for 12 hours at most.
    Session,
    /// Issued to an OAuth client by a person's consent (docs/OAUTH.md): a child of the
    /// token the person signed in with, narrowed to the approved scopes, for an hour.
    OAuth,
}

impl TokenKind {
    /// The kinds a token can be minted as through the API.
    pub const PRESETS: [TokenKind; 4] = [
        TokenKind::Org,
        TokenKind::Deploy,
        TokenKind::Readonly,
        TokenKind::Runtime,
    ];

    /// The lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            TokenKind::Org => "org",
            TokenKind::Deploy => "deploy",
            TokenKind::Readonly => "readonly",
            TokenKind::Runtime => "runtime",
            TokenKind::Operator => "operator",
            TokenKind::Session => "session",
            TokenKind::OAuth => "oauth",
        }
    }

    /// Whether this kind is scoped to one app (and so needs one at minting).
    pub fn needs_app(self) -> bool {
        matches!(self, TokenKind::Deploy | TokenKind::Runtime)
    }
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a mintable kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown token kind \"{0}\": use org, deploy, readonly or runtime")]
pub struct UnknownKind(pub String);

impl FromStr for TokenKind {
    type Err = UnknownKind;

    /// One of the mintable kinds (never `operator`).
    fn from_str(s: &str) -> Result<Self, UnknownKind> {
        TokenKind::PRESETS
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| UnknownKind(macvault_caveats::Excerpt(s.as_bytes()).to_string()))
    }
}

/// A revocation: when it was decided and when it takes effect (later for a rotation
/// with overlap).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revocation {
    /// When it was decided, unix seconds.
    pub at: u64,
    /// When it takes effect, unix seconds (`>= at`).
    pub effective: u64,
}

/// The ledger's record of a minted token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenRecord {
    /// Its id.
    pub id: TokenId,
    /// Its org.
    pub org: String,
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: TokenKind,
    /// Its app (deploy and runtime).
    pub app: Option<String>,
    /// Its caveats as minted, canonical text.
    pub caveats: Vec<String>,
    /// The root-key version it was minted under.
    pub key_version: u32,
    /// Unix seconds.
    pub created: u64,
    /// The token that minted it (kept for the record; never changes).
    pub creator: Option<TokenId>,
    /// Its parent in the lineage tree: revoking the parent revokes it. `None` for a
    /// lineage root (the operator token, and org tokens the operator issued).
    pub parent: Option<TokenId>,
    /// Unix seconds.
    pub expires: u64,
    /// First 12 hex digits of SHA-256 over the minted text.
    pub fingerprint: String,
    /// Its revocation, if any.
    pub revoked: Option<Revocation>,
}

impl TokenRecord {
    /// A new, unrevoked record whose lineage parent is its creator.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: TokenId,
        org: &str,
        name: &str,
        kind: TokenKind,
        app: Option<&str>,
        caveats: Vec<String>,
        key_version: u32,
        created: u64,
        creator: Option<TokenId>,
        expires: u64,
        fingerprint: String,
    ) -> Self {
        TokenRecord {
            id,
            org: org.to_owned(),
            name: name.to_owned(),
            kind,
            app: app.map(str::to_owned),
            caveats,
            key_version,
            created,
            creator,
            parent: creator,
            expires,
            fingerprint,
            revoked: None,
        }
    }

    /// The same record as a lineage root (`parent = None`).
    pub fn as_lineage_root(mut self) -> Self {
        self.parent = None;
        self
    }

    /// Whether a revocation of it is in effect at `now`.
    pub fn is_revoked_at(&self, now: u64) -> bool {
        self.revoked.is_some_and(|r| r.effective <= now)
    }
}

/// When, from where and with what a token was last used (kept per node, merged by
/// keeping the latest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastUsed {
    /// Unix seconds.
    pub time: u64,
    /// The client address.
    pub ip: Option<IpAddr>,
    /// The client's User-Agent (truncated).
    pub user_agent: Option<String>,
}

/// A ledger record with its last use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    /// The record.
    pub record: TokenRecord,
    /// Its last use, if any.
    pub last_used: Option<LastUsed>,
}

/// What state a token is in, as a listing shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenStatus {
    /// Valid.
    Active,
    /// Past its expiry.
    Expired,
    /// Revoked (in effect).
    Revoked,
    /// Minted under a retired root-key version.
    KeyRetired,
}

impl TokenStatus {
    /// A stable lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            TokenStatus::Active => "active",
            TokenStatus::Expired => "expired",
            TokenStatus::Revoked => "revoked",
            TokenStatus::KeyRetired => "key_retired",
        }
    }
}

/// A ledger entry as a listing shows it: with its status now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenView {
    /// The record and its last use.
    pub entry: LedgerEntry,
    /// Its status.
    pub status: TokenStatus,
}

impl TokenStatus {
    /// The status of `rec` at `now`, given whether its key version was retired.
    pub fn of(rec: &TokenRecord, now: u64, key_retired: bool) -> TokenStatus {
        if rec.is_revoked_at(now) {
            TokenStatus::Revoked
        } else if key_retired {
            TokenStatus::KeyRetired
        } else if rec.expires <= now {
            TokenStatus::Expired
        } else {
            TokenStatus::Active
        }
    }
}
