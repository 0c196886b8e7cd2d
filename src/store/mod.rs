//! The store seam: one backend-neutral interface over the embedded database (redb,
//! the default) and PostgreSQL (many nodes). The only place that talks to a database.
//!
//! # Shape
//! The interface is async, and a transaction is a *body*: a synchronous closure over a
//! typed handle ([`Tx`] to write, [`Read`] to read) that the backend may run more than
//! once. Why this shape:
//! - PostgreSQL runs every transaction SERIALIZABLE, and a serialization failure
//!   (40001) or deadlock (40P01) can only be answered by running the whole transaction
//!   again; so a body must be a function of its handle alone, with no effect on memory
//!   (the authority changes memory only after [`Store::write`] returns, from what the
//!   commit returned).
//! - A synchronous body keeps the transaction logic written once for both backends and
//!   free of async borrows. Bodies run on the blocking pool: redb is blocking anyway,
//!   and the PostgreSQL handle drives its async client from there
//!   (`Handle::block_on`), never from an async worker.
//! - One body serves every backend, so the conformance suite (`conformance.rs`) tests
//!   the rules once and each backend only has to implement the typed handle.

mod codec;
#[cfg(test)]
pub(crate) mod conformance;
mod legacy;
pub mod postgres;
pub mod redb;
mod rows;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;

use crate::model::{
    App, AuditEvent, Change, FeedEntry, LastUsed, LedgerEntry, OAuthClient, OAuthGrant, OAuthKey,
    Org, Requirement, RootKeyVersion, SecretHead, SecretKeys, SecretVersion, ThirdParty, TokenId,
    TokenRecord,
};
use crate::token::KeyId;

/// The schema this build writes.
pub const SCHEMA_VERSION: u32 = 7;
/// The oldest schema a database this build writes may still be used by: binaries that
/// know at least this version keep working during a rolling upgrade (see SCALING.md).
/// Version 4 adds a kind of change-feed entry (third parties), which older nodes cannot
/// read: they must be upgraded, not run beside version-4 nodes. Version 5 adds the
/// counts of aggregated denials and a kind of token (dashboard sessions) that older
/// nodes cannot read: they too must be upgraded, not run beside version-5 nodes.
/// Version 6 adds OAuth grants and a kind of token (`oauth`) that older nodes cannot
/// read: the same again. Version 7 numbers PostgreSQL's feed and audit log per org:
/// older nodes would follow the old counter and miss what new nodes write, so all
/// nodes stop before the first version-7 node starts (docs/SCALING.md).
pub const SCHEMA_COMPAT: u32 = 7;

/// Why a store operation failed. Backend-neutral: no driver error appears here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The thing to create exists already.
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The database cannot be reached or is overloaded; retrying later may work.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// A stored record does not decode.
    #[error("corrupt {0}")]
    Corrupt(String),
    /// Anything else the database refused (a bug, or an unexpected state).
    #[error("database error: {0}")]
    Internal(String),
}

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The database was written by a newer macvault whose changes this build cannot use.
    #[error(
        "the database has schema version {found} (usable by builds that know version {compat} \
         or later); this build knows version {SCHEMA_VERSION}: upgrade macvault"
    )]
    TooNew {
        /// Its version.
        found: u32,
        /// The oldest version that may use it.
        compat: u32,
    },
    /// The database's schema is older than anything this build can upgrade.
    #[error(
        "the database has schema version {found}, which this build cannot upgrade to version \
         {SCHEMA_VERSION}: upgrade through an intermediate release first"
    )]
    TooOld {
        /// Its version.
        found: u32,
    },
    /// Another process has the embedded database open.
    #[error("{0} is in use by another macvault process (stop it first)")]
    InUse(String),
    /// The file or server could not be opened.
    #[error("cannot open {what}: {reason}")]
    Open {
        /// The file or URL (without password).
        what: String,
        /// Why.
        reason: String,
    },
    /// The store failed while opening or upgrading.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A deny-list entry: from `effective` on, the token is refused; after `expires` the
/// token fails anyway and the entry can go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DenyEntry {
    /// When the revocation takes effect, unix seconds.
    pub effective: u64,
    /// When the token expires, unix seconds.
    pub expires: u64,
}

/// That an ID token (by issuer and `jti`) discharged a ticket set: each ID token
/// discharges one set, once (docs/THIRD_PARTIES.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdTokenUse {
    /// The token's `iss`.
    pub issuer: String,
    /// Its `jti`.
    pub jti: String,
    /// SHA-256 over the tickets it discharged, in order.
    pub tickets: [u8; 32],
    /// Kept until then (the token's `exp` plus leeway), unix seconds.
    pub until: u64,
}

/// What recording an ID token's use found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// First use: recorded.
    New,
    /// Used before for the same tickets: nothing written (a retry).
    Again,
    /// Used before for other tickets: nothing written, refuse.
    Other,
}

/// Where one stream of the change feed stands.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FeedHead {
    /// The stream (see [`FeedEntry::stream`]).
    pub stream: String,
    /// The last position written in it.
    pub head: u64,
    /// Its entries at or below this position may have been compacted away: a node
    /// whose position in the stream is below it must reload everything.
    pub horizon: u64,
}

/// What a compaction removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Compacted {
    /// Deny-list entries of tokens past their expiry.
    pub revocations: usize,
    /// Feed entries.
    pub feed: usize,
    /// Records of used ID tokens past their `until`.
    pub id_token_uses: usize,
    /// OAuth grants past their end, with their codes and refresh tokens.
    pub oauth: usize,
}

/// A read a transaction's body is about to make, named beforehand (see
/// [`Read::read_ahead`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ahead<'a> {
    /// [`Read::org`].
    Org(&'a str),
    /// [`Read::app`].
    App {
        /// Its org.
        org: &'a str,
        /// The app.
        app: &'a str,
    },
    /// [`Read::secret_keys`].
    SecretKeys(&'a str),
    /// [`Read::token`].
    Token(&'a TokenId),
    /// [`Read::secret_head`].
    SecretHead {
        /// Its org.
        org: &'a str,
        /// Its app (`None`: the org's own).
        app: Option<&'a str>,
        /// The secret.
        name: &'a str,
    },
    /// [`Read::secret_heads`].
    SecretHeads {
        /// The org.
        org: &'a str,
        /// The app (`None`: the org's own).
        app: Option<&'a str>,
    },
    /// [`Read::count_secrets`].
    SecretCount(&'a str),
    /// [`Read::secret_stored_bytes`].
    SecretStoredBytes {
        /// The org.
        org: &'a str,
        /// The app (`None`: the org's own).
        app: Option<&'a str>,
    },
}

/// Read access inside a transaction.
pub trait Read {
    /// Names reads the body makes next, before it writes anything, so that a backend
    /// may send them together: PostgreSQL sends them in one round trip (with whatever
    /// writes were put off) and answers each named read from it, once, if nothing was
    /// written or read in between (docs/SCALING.md, "Round trips"). Answers are the
    /// same with or without it; redb, with no round trips, ignores it.
    fn read_ahead(&mut self, reads: &[Ahead<'_>]) -> Result<(), StoreError> {
        let _ = reads;
        Ok(())
    }

    /// An org.
    fn org(&mut self, name: &str) -> Result<Option<Org>, StoreError>;
    /// Every org, by name.
    fn orgs(&mut self) -> Result<Vec<Org>, StoreError>;
    /// One root-key version.
    fn key(&mut self, org: &str, version: u32) -> Result<Option<RootKeyVersion>, StoreError>;
    /// An org's root-key versions, oldest first.
    fn keys(&mut self, org: &str) -> Result<Vec<RootKeyVersion>, StoreError>;
    /// Every root-key version of every org.
    fn all_keys(&mut self) -> Result<Vec<RootKeyVersion>, StoreError>;
    /// A ledger record.
    fn token(&mut self, id: &TokenId) -> Result<Option<TokenRecord>, StoreError>;
    /// An org's ledger with last uses, oldest first (by creation, then id).
    fn ledger(&mut self, org: &str) -> Result<Vec<LedgerEntry>, StoreError>;
    /// The tokens whose lineage parent is `parent`.
    fn children(&mut self, parent: &TokenId) -> Result<Vec<TokenId>, StoreError>;
    /// A token's last use.
    fn last_used(&mut self, id: &TokenId) -> Result<Option<LastUsed>, StoreError>;
    /// The whole deny-list.
    fn revocations(&mut self) -> Result<Vec<(TokenId, DenyEntry)>, StoreError>;
    /// Up to `limit` of an org's events with `seq < before` (all if `None`), newest first.
    fn audit_before(
        &mut self,
        org: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError>;
    /// Up to `limit` of an org's events with `seq > after`, oldest first.
    fn audit_after(
        &mut self,
        org: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError>;
    /// Where each stream of the change feed stands, by stream.
    fn feed_heads(&mut self) -> Result<Vec<FeedHead>, StoreError>;
    /// Up to `limit` entries of feed stream `stream` after position `after`, in order.
    fn feed_after(
        &mut self,
        stream: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<FeedEntry>, StoreError>;
    /// The master key's check value, once initialised.
    fn master_check(&mut self) -> Result<Option<Vec<u8>>, StoreError>;
    /// An org's secrets keys (wrapped).
    fn secret_keys(&mut self, org: &str) -> Result<Option<SecretKeys>, StoreError>;
    /// One secret of an org (`app: None`) or of one of its apps.
    fn secret_head(
        &mut self,
        org: &str,
        app: Option<&str>,
        name: &str,
    ) -> Result<Option<SecretHead>, StoreError>;
    /// Every secret of one scope (the org's own, or one app's), by name.
    fn secret_heads(&mut self, org: &str, app: Option<&str>)
    -> Result<Vec<SecretHead>, StoreError>;
    /// The apps of an org that have secrets of their own, by name.
    fn secret_apps(&mut self, org: &str) -> Result<Vec<String>, StoreError>;
    /// How many secrets (set or unset) an org keeps, in every scope.
    fn count_secrets(&mut self, org: &str) -> Result<usize, StoreError>;
    /// The bytes one scope's stored versions take (their rows, values sealed or
    /// destroyed, old versions and unset secrets included): what its history costs.
    fn secret_stored_bytes(&mut self, org: &str, app: Option<&str>) -> Result<u64, StoreError>;
    /// One version of a secret.
    fn secret_version(
        &mut self,
        org: &str,
        app: Option<&str>,
        name: &str,
        version: u64,
    ) -> Result<Option<SecretVersion>, StoreError>;
    /// Every version kept of a secret, oldest first.
    fn secret_versions(
        &mut self,
        org: &str,
        app: Option<&str>,
        name: &str,
    ) -> Result<Vec<SecretVersion>, StoreError>;
    /// A scope's change counter: an app's secrets version is the org's counter plus its own.
    fn secrets_counter(&mut self, org: &str, app: Option<&str>) -> Result<u64, StoreError>;
    /// How many of a scope's changes were written by tokens that could not reveal what
    /// they wrote (`run --watch` restarts for those whether or not the values differ).
    fn secrets_blind_writes(&mut self, org: &str, app: Option<&str>) -> Result<u64, StoreError>;
    /// The set secrets of one scope with their current versions (none for a destroyed
    /// one), by name: what a reveal opens, in one read.
    fn secret_current(
        &mut self,
        org: &str,
        app: Option<&str>,
    ) -> Result<Vec<(SecretHead, Option<SecretVersion>)>, StoreError>;
    /// Up to `limit` versions of an org's secrets, every scope, in (app, name, version)
    /// order (the org's own first), after `after`: a key rotation's way through them.
    fn secret_versions_after(
        &mut self,
        org: &str,
        after: Option<&VersionKey>,
        limit: usize,
    ) -> Result<Vec<SecretVersion>, StoreError>;
    /// Who holds lease `name`, until when.
    fn lease(&mut self, name: &str) -> Result<Option<Lease>, StoreError>;
    /// The names that load code an org token allowed deploy tokens to write, in every
    /// scope of `org`: (app, or `None` for the org's own; name), in order.
    fn allowed_env(&mut self, org: &str) -> Result<Vec<(Option<String>, String)>, StoreError>;
    /// A third party of an org.
    fn third_party(&mut self, org: &str, name: &str) -> Result<Option<ThirdParty>, StoreError>;
    /// An org's third parties, by name.
    fn third_parties(&mut self, org: &str) -> Result<Vec<ThirdParty>, StoreError>;
    /// The third parties (of every org) whose locations have this path (see
    /// [`ThirdParty::location_path`]), by org and name: several may share one.
    fn third_parties_at(&mut self, path: &str) -> Result<Vec<ThirdParty>, StoreError>;
    /// The third party (of any org) that holds the key pair `id`.
    fn third_party_by_key(&mut self, id: KeyId) -> Result<Option<ThirdParty>, StoreError>;
    /// The tokens that need a third party, by token id.
    fn requirements(
        &mut self,
        org: &str,
        third_party: &str,
    ) -> Result<Vec<Requirement>, StoreError>;
    /// Every record of a used ID token (for a store copy), by issuer and `jti`.
    fn id_token_uses(&mut self) -> Result<Vec<IdTokenUse>, StoreError>;
    /// An app of an org.
    fn app(&mut self, org: &str, name: &str) -> Result<Option<App>, StoreError>;
    /// An org's apps, by name.
    fn apps(&mut self, org: &str) -> Result<Vec<App>, StoreError>;
    /// An OAuth client, by its id (ids are unique across orgs).
    fn oauth_client(&mut self, id: &str) -> Result<Option<OAuthClient>, StoreError>;
    /// An org's OAuth clients, by id.
    fn oauth_clients(&mut self, org: &str) -> Result<Vec<OAuthClient>, StoreError>;
    /// An OAuth grant, by its id (unique across orgs).
    fn oauth_grant(&mut self, id: &str) -> Result<Option<OAuthGrant>, StoreError>;
    /// An org's OAuth grants, by id.
    fn oauth_grants(&mut self, org: &str) -> Result<Vec<OAuthGrant>, StoreError>;
    /// An OAuth code or refresh token, by its SHA-256.
    fn oauth_key(&mut self, hash: &[u8; 32]) -> Result<Option<OAuthKey>, StoreError>;
    /// Every OAuth code and refresh token, and whether it is spent (for a store copy),
    /// by hash.
    fn oauth_keys(&mut self) -> Result<Vec<(OAuthKey, bool)>, StoreError>;
}

/// Where a secret version sits in [`Read::secret_versions_after`]'s order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionKey {
    /// The app, or `None` for the org's own.
    pub app: Option<String>,
    /// The name.
    pub name: String,
    /// The version.
    pub version: u64,
}

impl VersionKey {
    /// The key of `v`.
    pub fn of(v: &SecretVersion) -> Self {
        VersionKey {
            app: v.app.clone(),
            name: v.name.clone(),
            version: v.version,
        }
    }
}

/// A named lease: one node at a time does a job (a key rotation's re-wrapping).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The node holding it.
    pub holder: String,
    /// Until when, unix seconds (then anyone may take it).
    pub until: u64,
}

/// Write access inside a transaction. Every method may be re-run on a fresh handle
/// (see the module documentation). A write whose answer is `()` may be sent with a
/// later statement of the transaction (PostgreSQL pipelines them, docs/SCALING.md,
/// "Round trips"), so its failure may come from a later call or from the commit; once
/// one statement has failed, every later call fails and the transaction cannot commit.
pub trait Tx: Read {
    /// Inserts a new org; `Conflict("org")` if it exists.
    fn insert_org(&mut self, org: &Org) -> Result<(), StoreError>;
    /// Writes an existing org.
    fn put_org(&mut self, org: &Org) -> Result<(), StoreError>;
    /// Writes a root-key version.
    fn put_key(&mut self, key: &RootKeyVersion) -> Result<(), StoreError>;
    /// Writes a ledger record (and keeps its org and lineage indexes).
    fn put_token(&mut self, rec: &TokenRecord) -> Result<(), StoreError>;
    /// Deletes a ledger record, its last use and its index entries (ledger retention).
    fn delete_token(&mut self, id: &TokenId) -> Result<(), StoreError>;
    /// Adds (or replaces) a deny-list entry.
    fn put_revocation(&mut self, id: &TokenId, entry: DenyEntry) -> Result<(), StoreError>;
    /// Records a use, keeping whichever of the stored and the given is later.
    fn record_use(&mut self, id: &TokenId, used: &LastUsed) -> Result<(), StoreError>;
    /// Appends an audit event, with its count and last time (its `seq` is assigned
    /// here). A backend may send it with the transaction's next statement.
    fn append_audit(&mut self, event: &AuditEvent) -> Result<(), StoreError>;
    /// Appends an audit event as `append_audit` does, and answers its `seq` (so it
    /// costs a round trip of its own).
    fn append_audit_seq(&mut self, event: &AuditEvent) -> Result<u64, StoreError>;
    /// Sets the count and last time of an org's event `seq` (an aggregate of denials
    /// that grew); nothing if retention pruned it.
    fn amend_audit(&mut self, org: &str, seq: u64, count: u64, last: u64)
    -> Result<(), StoreError>;
    /// Deletes the audit events written before `before`, except each org's newest (so an
    /// org's sequence never starts again and no cursor is reused); how many went.
    fn prune_audit(&mut self, before: u64) -> Result<usize, StoreError>;
    /// Appends a change, made in `org`, to the feed at the next position of its stream
    /// (in commit order; [`Committed::changes`] has it with its position). A backend
    /// may send it with the transaction's next statement.
    fn publish(&mut self, org: &str, change: &Change, time: u64) -> Result<(), StoreError>;
    /// Stores the master key's check value; `Conflict("master key")` if one exists.
    fn init_master_check(&mut self, check: &[u8]) -> Result<(), StoreError>;
    /// Drops deny-list and feed entries of tokens expired by `now`, and every feed entry
    /// written before `feed_before` (raising the horizon past them).
    fn compact(&mut self, now: u64, feed_before: u64) -> Result<Compacted, StoreError>;
    /// Writes an org's secrets keys.
    fn put_secret_keys(&mut self, keys: &SecretKeys) -> Result<(), StoreError>;
    /// Writes a secret's current state.
    fn put_secret_head(&mut self, head: &SecretHead) -> Result<(), StoreError>;
    /// Writes a version of a secret.
    fn put_secret_version(&mut self, version: &SecretVersion) -> Result<(), StoreError>;
    /// Deletes a version of a secret (the version cap).
    fn delete_secret_version(
        &mut self,
        org: &str,
        app: Option<&str>,
        name: &str,
        version: u64,
    ) -> Result<(), StoreError>;
    /// Adds one to a scope's change counter: its new value, with the org's counter (one
    /// statement on PostgreSQL).
    fn bump_secrets_counter(&mut self, org: &str, app: Option<&str>) -> Result<Bumped, StoreError>;
    /// Sets a scope's change counter (copying a store).
    fn set_secrets_counter(
        &mut self,
        org: &str,
        app: Option<&str>,
        value: u64,
    ) -> Result<(), StoreError>;
    /// Adds one to a scope's count of blind writes; the new value.
    fn bump_secrets_blind_writes(
        &mut self,
        org: &str,
        app: Option<&str>,
    ) -> Result<u64, StoreError>;
    /// Sets a scope's count of blind writes (copying a store).
    fn set_secrets_blind_writes(
        &mut self,
        org: &str,
        app: Option<&str>,
        value: u64,
    ) -> Result<(), StoreError>;
    /// Takes lease `name` for `holder` until `until` if it is free, expired at `now`, or
    /// already `holder`'s (renewing it); whether `holder` holds it now.
    fn take_lease(
        &mut self,
        name: &str,
        holder: &str,
        now: u64,
        until: u64,
    ) -> Result<bool, StoreError>;
    /// Gives lease `name` up, if `holder` holds it.
    fn drop_lease(&mut self, name: &str, holder: &str) -> Result<(), StoreError>;
    /// Adds `name` to (or, with `allowed` false, removes it from) a scope's allow-list
    /// of names that load code (schema 3).
    fn set_allowed_env(
        &mut self,
        org: &str,
        app: Option<&str>,
        name: &str,
        allowed: bool,
    ) -> Result<(), StoreError>;
    /// Registers a new third party; `Conflict("third party")` if the org has one of
    /// that name, `Conflict("third-party key")` if a key id is held by another.
    fn insert_third_party(&mut self, tp: &ThirdParty) -> Result<(), StoreError>;
    /// Writes an existing third party (same org, name and location), its key ids
    /// indexed anew (added and retired keys); `Conflict("third-party key")` as above.
    fn put_third_party(&mut self, tp: &ThirdParty) -> Result<(), StoreError>;
    /// Removes a third party and its requirements.
    fn delete_third_party(&mut self, org: &str, name: &str) -> Result<(), StoreError>;
    /// Records that a token needs a third party (replacing an earlier record).
    fn put_requirement(&mut self, req: &Requirement) -> Result<(), StoreError>;
    /// Creates an app; `Conflict("app")` if the org has one of that name.
    fn insert_app(&mut self, app: &App) -> Result<(), StoreError>;
    /// Registers an OAuth client; `Conflict("OAuth client")` if its id is taken.
    fn insert_oauth_client(&mut self, client: &OAuthClient) -> Result<(), StoreError>;
    /// Removes an OAuth client (nothing if there is none).
    fn delete_oauth_client(&mut self, id: &str) -> Result<(), StoreError>;
    /// Writes an OAuth grant (new or changed).
    fn put_oauth_grant(&mut self, grant: &OAuthGrant) -> Result<(), StoreError>;
    /// Records an OAuth code or refresh token by its hash.
    fn put_oauth_key(&mut self, key: &OAuthKey) -> Result<(), StoreError>;
    /// Spends the OAuth code or refresh token of SHA-256 `hash` by inserting it into
    /// the spent set unless it is there (kept until `until`): whether this call spent
    /// it. Of two transactions spending one, one commits `true` and the other sees it
    /// spent (or retries on a serialization failure and then sees it).
    fn spend_oauth_key(&mut self, hash: &[u8; 32], until: u64) -> Result<bool, StoreError>;
    /// Removes an app (its secrets and tokens are the caller's business).
    fn delete_app(&mut self, org: &str, name: &str) -> Result<(), StoreError>;
    /// Records an ID token's use unless one of the same issuer and `jti` is there (not
    /// yet pruned): then says whether it was for the same tickets.
    fn record_id_token(&mut self, used: &IdTokenUse) -> Result<Recorded, StoreError>;
}

/// How a write transaction ends once its body succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Commit it ([`Store::write`]).
    Commit,
    /// Roll it back ([`Store::rehearse`]).
    RollBack,
}

/// A scope's change counter just moved, and its org's (the same for the org's own
/// scope): an app's secrets version is `org + own`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bumped {
    /// The org's own counter.
    pub org: u64,
    /// The scope's counter, after the bump.
    pub own: u64,
}

/// What a write transaction returned, with the feed entries it committed.
#[derive(Debug)]
pub struct Committed<T> {
    /// The body's value.
    pub value: T,
    /// The changes it published, in order.
    pub changes: Vec<FeedEntry>,
}

/// Where a store lives: a data directory (redb) or a PostgreSQL URL.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    /// The embedded database file `macvault.redb` in this directory.
    Dir(std::path::PathBuf),
    /// A PostgreSQL connection URL.
    Postgres(String),
}

impl Location {
    /// `postgres://…` or `postgresql://…` is a database; anything else a directory.
    pub fn parse(s: &str) -> Location {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Location::Postgres(s.to_owned())
        } else {
            Location::Dir(s.into())
        }
    }
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Dir(d) => write!(f, "Dir({})", d.display()),
            Location::Postgres(url) => write!(f, "Postgres({})", postgres::redact_url(url)),
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Dir(d) => write!(f, "{}", d.display()),
            Location::Postgres(url) => f.write_str(&postgres::redact_url(url)),
        }
    }
}

/// The name of the embedded database file in a data directory.
pub const DB_FILE: &str = "macvault.redb";

#[derive(Clone)]
enum Backend {
    Redb(Arc<redb::RedbStore>),
    Postgres(Arc<postgres::PgStore>),
}

/// A handle on the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend_name())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating or upgrading) the embedded database in `dir`.
    pub async fn open_dir(dir: &Path) -> Result<Store, OpenError> {
        let path = dir.join(DB_FILE);
        let store = tokio::task::spawn_blocking(move || redb::RedbStore::open(&path))
            .await
            .map_err(|e| StoreError::Internal(format!("open task failed: {e}")))??;
        Ok(Store {
            backend: Backend::Redb(Arc::new(store)),
        })
    }

    /// Connects to PostgreSQL at `url`, creating or upgrading the schema.
    pub async fn connect(url: &str) -> Result<Store, OpenError> {
        let store = postgres::PgStore::connect(url).await?;
        Ok(Store {
            backend: Backend::Postgres(Arc::new(store)),
        })
    }

    /// Opens the store at `location`.
    pub async fn open(location: &Location) -> Result<Store, OpenError> {
        match location {
            Location::Dir(dir) => Store::open_dir(dir).await,
            Location::Postgres(url) => Store::connect(url).await,
        }
    }

    /// `redb` or `postgres`.
    pub fn backend_name(&self) -> &'static str {
        match &self.backend {
            Backend::Redb(_) => "redb",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Signalled when another node may have published to the feed (PostgreSQL's
    /// LISTEN/NOTIFY); polling stays the correctness path.
    pub fn feed_signal(&self) -> Arc<Notify> {
        match &self.backend {
            Backend::Redb(s) => s.feed_signal(),
            Backend::Postgres(s) => s.feed_signal(),
        }
    }

    /// Runs `body` in one write transaction and commits it; the body may run more than
    /// once (a retried serialization failure), and only the last run's effects commit.
    pub async fn write<T, E, F>(&self, body: F) -> Result<Committed<T>, E>
    where
        F: FnMut(&mut dyn Tx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.run_write(body, Ending::Commit).await
    }

    /// Runs `body` in one write transaction as [`Store::write`] would, then rolls it
    /// back whatever it returns: a dry run sees every check a write makes (conflicts,
    /// limits) and leaves nothing behind. Its value, and no changes.
    pub async fn rehearse<T, E, F>(&self, body: F) -> Result<T, E>
    where
        F: FnMut(&mut dyn Tx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.run_write(body, Ending::RollBack)
            .await
            .map(|done| done.value)
    }

    async fn run_write<T, E, F>(&self, mut body: F, ending: Ending) -> Result<Committed<T>, E>
    where
        F: FnMut(&mut dyn Tx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let backend = self.backend.clone();
        let task = tokio::task::spawn_blocking(move || match &backend {
            Backend::Redb(s) => s.write(&mut body, ending),
            Backend::Postgres(s) => s.write(&mut body, ending),
        });
        match task.await {
            Ok(r) => r,
            Err(e) => Err(StoreError::Internal(format!("write task failed: {e}")).into()),
        }
    }

    /// Runs `body` in one read transaction (a consistent snapshot).
    pub async fn read<T, E, F>(&self, body: F) -> Result<T, E>
    where
        F: FnOnce(&mut dyn Read) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let backend = self.backend.clone();
        let task = tokio::task::spawn_blocking(move || match &backend {
            Backend::Redb(s) => s.read(body),
            Backend::Postgres(s) => s.read(body),
        });
        match task.await {
            Ok(r) => r,
            Err(e) => Err(StoreError::Internal(format!("read task failed: {e}")).into()),
        }
    }

    /// Whether the store holds nothing yet (not initialised).
    pub async fn is_empty(&self) -> Result<bool, StoreError> {
        self.read(|r| Ok::<_, StoreError>(r.master_check()?.is_none() && r.orgs()?.is_empty()))
            .await
    }

    /// Every later write runs its body `extra` more times first, abandoning those runs:
    /// the conformance suite's proof that bodies are pure.
    #[cfg(test)]
    pub fn inject_retries(&self, extra: u32) {
        match &self.backend {
            Backend::Redb(s) => s.inject_retries(extra),
            Backend::Postgres(s) => s.inject_retries(extra),
        }
    }

    /// Round trips to the database so far (PostgreSQL; `None` on redb, which has none).
    #[cfg(test)]
    pub fn round_trips(&self) -> Option<u64> {
        match &self.backend {
            Backend::Redb(_) => None,
            Backend::Postgres(s) => Some(s.round_trips()),
        }
    }

    /// How many writers wait for the one before them to commit: on PostgreSQL, sessions
    /// waiting for a lock (any node's: a row another write holds); on redb, writers in
    /// `begin_write`. The conformance suite waits on it to build a late committer
    /// without sleeping.
    #[cfg(test)]
    pub async fn writers_waiting(&self) -> usize {
        match &self.backend {
            Backend::Redb(s) => s.writers_waiting(),
            Backend::Postgres(s) => s.writers_waiting().await,
        }
    }
}

/// Everything a store holds, for `store copy` (keys stay wrapped).
#[derive(Debug, Default)]
pub struct Dump {
    /// The master key's check value.
    pub master_check: Option<Vec<u8>>,
    /// Orgs.
    pub orgs: Vec<Org>,
    /// Root-key versions.
    pub keys: Vec<RootKeyVersion>,
    /// Ledger records with last uses.
    pub tokens: Vec<LedgerEntry>,
    /// The deny-list.
    pub revocations: Vec<(TokenId, DenyEntry)>,
    /// Audit events, per org oldest first.
    pub audit: Vec<AuditEvent>,
    /// Secrets keys (wrapped), per org.
    pub secret_keys: Vec<SecretKeys>,
    /// Secrets, every scope.
    pub secrets: Vec<SecretHead>,
    /// Secret versions (sealed).
    pub secret_versions: Vec<SecretVersion>,
    /// Secrets change counters: (org, app, value).
    pub secret_counters: Vec<(String, Option<String>, u64)>,
    /// Blind writes per scope: (org, app, value).
    pub secret_blind_writes: Vec<(String, Option<String>, u64)>,
    /// Allow-lists of names that load code: (org, app, name).
    pub allowed_env: Vec<(String, Option<String>, String)>,
    /// Third parties (private keys stay wrapped).
    pub third_parties: Vec<ThirdParty>,
    /// The tokens that need them.
    pub requirements: Vec<Requirement>,
    /// ID tokens used for discharges (so none is used again on the copy).
    pub id_token_uses: Vec<IdTokenUse>,
    /// Apps.
    pub apps: Vec<App>,
    /// OAuth clients (their secrets only as hashes).
    pub oauth_clients: Vec<OAuthClient>,
    /// OAuth grants.
    pub oauth_grants: Vec<OAuthGrant>,
    /// OAuth codes and refresh tokens (as hashes), and whether each is spent.
    pub oauth_keys: Vec<(OAuthKey, bool)>,
}

impl Dump {
    /// Reads everything in one snapshot.
    pub fn read(r: &mut dyn Read) -> Result<Dump, StoreError> {
        let mut dump = Dump {
            master_check: r.master_check()?,
            orgs: r.orgs()?,
            keys: r.all_keys()?,
            revocations: r.revocations()?,
            id_token_uses: r.id_token_uses()?,
            oauth_keys: r.oauth_keys()?,
            ..Dump::default()
        };
        for org in &dump.orgs {
            dump.tokens.extend(r.ledger(&org.name)?);
            dump.apps.extend(r.apps(&org.name)?);
            dump.oauth_clients.extend(r.oauth_clients(&org.name)?);
            dump.oauth_grants.extend(r.oauth_grants(&org.name)?);
            dump.secret_keys.extend(r.secret_keys(&org.name)?);
            for (app, name) in r.allowed_env(&org.name)? {
                dump.allowed_env.push((org.name.clone(), app, name));
            }
            let apps = r.secret_apps(&org.name)?;
            let scopes = std::iter::once(None).chain(apps.iter().map(|a| Some(a.as_str())));
            for app in scopes {
                dump.secret_counters.push((
                    org.name.clone(),
                    app.map(str::to_owned),
                    r.secrets_counter(&org.name, app)?,
                ));
                dump.secret_blind_writes.push((
                    org.name.clone(),
                    app.map(str::to_owned),
                    r.secrets_blind_writes(&org.name, app)?,
                ));
                for head in r.secret_heads(&org.name, app)? {
                    dump.secret_versions
                        .extend(r.secret_versions(&org.name, app, &head.name)?);
                    dump.secrets.push(head);
                }
            }
            for tp in r.third_parties(&org.name)? {
                dump.requirements
                    .extend(r.requirements(&org.name, &tp.name)?);
                dump.third_parties.push(tp);
            }
            let mut after = 0;
            loop {
                let page = r.audit_after(&org.name, after, 1000)?;
                let Some(last) = page.last() else { break };
                after = last.seq;
                dump.audit.extend(page);
            }
        }
        Ok(dump)
    }

    /// Writes everything into an empty store.
    pub fn write(&self, tx: &mut dyn Tx) -> Result<(), StoreError> {
        self.write_counting(tx, &AtomicU64::new(0))
    }

    /// How many records [`Dump::write`] writes.
    pub fn records(&self) -> u64 {
        let lens = [
            usize::from(self.master_check.is_some()),
            self.orgs.len(),
            self.apps.len(),
            self.oauth_clients.len(),
            self.oauth_grants.len(),
            self.oauth_keys.len(),
            self.keys.len(),
            self.tokens.len(),
            self.revocations.len(),
            self.audit.len(),
            self.secret_keys.len(),
            self.secrets.len(),
            self.secret_versions.len(),
            self.secret_counters.len(),
            self.secret_blind_writes.len(),
            self.allowed_env.len(),
            self.third_parties.len(),
            self.requirements.len(),
            self.id_token_uses.len(),
        ];
        lens.iter().map(|n| *n as u64).sum()
    }

    /// [`Dump::write`], counting in `written` the records written so far (from 0 each
    /// time the transaction body runs), for a progress display.
    pub fn write_counting(&self, tx: &mut dyn Tx, written: &AtomicU64) -> Result<(), StoreError> {
        written.store(0, Ordering::Relaxed);
        let one = || written.fetch_add(1, Ordering::Relaxed);
        if let Some(check) = &self.master_check {
            tx.init_master_check(check)?;
            one();
        }
        for org in &self.orgs {
            tx.insert_org(org)?;
            one();
        }
        for app in &self.apps {
            tx.insert_app(app)?;
            one();
        }
        for client in &self.oauth_clients {
            tx.insert_oauth_client(client)?;
            one();
        }
        for key in &self.keys {
            tx.put_key(key)?;
            one();
        }
        for entry in &self.tokens {
            tx.put_token(&entry.record)?;
            if let Some(used) = &entry.last_used {
                tx.record_use(&entry.record.id, used)?;
            }
            one();
        }
        for (id, entry) in &self.revocations {
            tx.put_revocation(id, *entry)?;
            one();
        }
        for event in &self.audit {
            tx.append_audit(event)?;
            one();
        }
        for keys in &self.secret_keys {
            tx.put_secret_keys(keys)?;
            one();
        }
        for head in &self.secrets {
            tx.put_secret_head(head)?;
            one();
        }
        for v in &self.secret_versions {
            tx.put_secret_version(v)?;
            one();
        }
        for (org, app, value) in &self.secret_counters {
            tx.set_secrets_counter(org, app.as_deref(), *value)?;
            one();
        }
        for (org, app, value) in &self.secret_blind_writes {
            tx.set_secrets_blind_writes(org, app.as_deref(), *value)?;
            one();
        }
        for (org, app, name) in &self.allowed_env {
            tx.set_allowed_env(org, app.as_deref(), name, true)?;
            one();
        }
        for tp in &self.third_parties {
            tx.insert_third_party(tp)?;
            one();
        }
        for req in &self.requirements {
            tx.put_requirement(req)?;
            one();
        }
        for used in &self.id_token_uses {
            tx.record_id_token(used)?;
            one();
        }
        for grant in &self.oauth_grants {
            tx.put_oauth_grant(grant)?;
            one();
        }
        for (key, spent) in &self.oauth_keys {
            tx.put_oauth_key(key)?;
            if *spent {
                tx.spend_oauth_key(&key.hash, key.until)?;
            }
            one();
        }
        Ok(())
    }

    /// Counts for people: orgs, keys, tokens, revocations, audit events.
    pub fn counts(&self) -> [(&'static str, usize); 7] {
        [
            ("orgs", self.orgs.len()),
            ("root-key versions", self.keys.len()),
            ("tokens", self.tokens.len()),
            ("revocations", self.revocations.len()),
            ("audit events", self.audit.len()),
            ("secret versions", self.secret_versions.len()),
            ("third parties", self.third_parties.len()),
        ]
    }
}
