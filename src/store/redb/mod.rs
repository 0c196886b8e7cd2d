//! The embedded backend: one redb file in the data directory, one process.
//!
//! redb is blocking; [`Store`](super::Store) runs every body on the blocking pool. It
//! has one writer at a time, so a body never meets a serialization failure here; the
//! feed and its counter exist all the same, so that the authority has one code path.
//!
//! One file per job:
//!
//! - this file: the tables, opening the file, and a transaction's run;
//! - `schema.rs`: creating the tables and upgrading older files to them;
//! - `reads.rs`: each read ([`Read`]), over a read or a write transaction alike;
//! - `writes.rs`: each write ([`Tx`]).

mod reads;
mod schema;
mod writes;

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use redb::{Database, ReadableDatabase as _, TableDefinition};
use tokio::sync::Notify;

use super::{Committed, Ending, OpenError, Read, StoreError, Tx};
use reads::RedbRead;
use writes::RedbTx;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const ORGS: TableDefinition<&str, &[u8]> = TableDefinition::new("orgs");
const KEYS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("root_keys");
const TOKENS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("tokens");
const ORG_TOKENS: TableDefinition<(&str, &[u8]), ()> = TableDefinition::new("org_tokens");
const CHILDREN: TableDefinition<(&[u8], &[u8]), ()> = TableDefinition::new("token_children");
const LAST_USED: TableDefinition<&[u8], &[u8]> = TableDefinition::new("last_used");
const REVOCATIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("revocations");
const AUDIT: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("audit");
/// Schema 5: (org, seq) → (count, last time) of an event that happened more than once
/// (aggregated denials); an event without an entry happened once.
const AUDIT_COUNTS: TableDefinition<(&str, u64), (u64, u64)> = TableDefinition::new("audit_counts");
const FEED: TableDefinition<u64, &[u8]> = TableDefinition::new("feed");
/// Secrets: keys by org; heads, versions and counters by (org, app or "", name…).
const SECRET_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("secret_keys");
const SECRET_HEADS: TableDefinition<(&str, &str, &str), &[u8]> =
    TableDefinition::new("secret_heads");
const SECRET_VERSIONS: TableDefinition<(&str, &str, &str, u64), &[u8]> =
    TableDefinition::new("secret_versions");
const SECRET_COUNTERS: TableDefinition<(&str, &str), u64> = TableDefinition::new("secret_counters");
/// Schema 4: per scope, how many changes were blind writes (see `Read::secrets_blind_writes`).
const SECRET_BLIND_WRITES: TableDefinition<(&str, &str), u64> =
    TableDefinition::new("secret_blind_writes");
/// Leases: name → (holder, until).
const LEASES: TableDefinition<&str, (&str, u64)> = TableDefinition::new("leases");
/// Schema 3: (org, app or "", name) → nothing: a scope's allow-list of names that load code.
const ALLOWED_ENV: TableDefinition<(&str, &str, &str), &[u8]> = TableDefinition::new("allowed_env");
/// Third parties (schema 4) by (org, name); (location path, org, name) → nothing (several
/// may share a location); key id → (org, name); the tokens that need them by (org, name,
/// token id).
const THIRD_PARTIES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("third_parties");
const THIRD_PARTY_LOCATIONS: TableDefinition<(&str, &str, &str), &[u8]> =
    TableDefinition::new("third_party_locations");
const THIRD_PARTY_KEYS: TableDefinition<&[u8], (&str, &str)> =
    TableDefinition::new("third_party_keys");
const REQUIREMENTS: TableDefinition<(&str, &str, &[u8]), &[u8]> =
    TableDefinition::new("third_party_requirements");
/// Schema 4: apps by (org, name).
const APPS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("apps");
/// Schema 4: (issuer, jti) → the ID token's use for discharges.
const ID_TOKEN_USES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("id_token_uses");
/// Schema 5: OAuth clients by id (unique across orgs; an org's are few, so listing
/// them scans).
const OAUTH_CLIENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("oauth_clients");
/// Schema 6: OAuth grants by id (unique across orgs; listing an org's scans, as for
/// clients: grants are listed only by people).
const OAUTH_GRANTS: TableDefinition<&str, &[u8]> = TableDefinition::new("oauth_grants");
/// Schema 6: OAuth codes and refresh tokens by their SHA-256.
const OAUTH_KEYS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("oauth_keys");
/// Schema 6: the spent ones: SHA-256 → kept until (unix seconds).
const OAUTH_SPENT: TableDefinition<&[u8], u64> = TableDefinition::new("oauth_spent");
/// Sorts after every secret name (names are `[A-Za-z0-9_]`).
const NAME_END: &str = "~";

/// An org's own secrets are kept under the app "" (app names are never empty).
fn scope(app: Option<&str>) -> &str {
    app.unwrap_or("")
}

/// The page cache: small, so the server's memory stays small.
const CACHE_BYTES: usize = 8 * 1024 * 1024;
/// Sorts after every 16-byte id in a `(prefix, id)` range.
const ID_END: [u8; 17] = [0xff; 17];

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Internal(e.to_string())
            }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::TableError,
    redb::StorageError,
    redb::TransactionError,
    redb::CommitError
);

/// The embedded database.
pub struct RedbStore {
    db: Database,
    feed_signal: Arc<Notify>,
    extra_runs: AtomicU32,
    /// Writers at or in `begin_write` (which waits for the writer before): tests.
    #[cfg(test)]
    writers_waiting: std::sync::atomic::AtomicUsize,
}

impl RedbStore {
    /// Opens (creating with mode 0600, or upgrading) the database file at `path`.
    pub fn open(path: &Path) -> Result<Self, OpenError> {
        let shown = path.display().to_string();
        let open_err = |reason: String| OpenError::Open {
            what: shown.clone(),
            reason,
        };
        // redb creates its file with the umask; create it first, owner-only.
        if !path.exists() {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| open_err(e.to_string()))?;
        }
        let db = match Database::builder().set_cache_size(CACHE_BYTES).create(path) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(OpenError::InUse(shown));
            }
            Err(e) => return Err(open_err(e.to_string())),
        };
        let store = RedbStore {
            db,
            feed_signal: Arc::new(Notify::new()),
            extra_runs: AtomicU32::new(0),
            #[cfg(test)]
            writers_waiting: std::sync::atomic::AtomicUsize::new(0),
        };
        store.upgrade()?;
        Ok(store)
    }

    pub(super) fn feed_signal(&self) -> Arc<Notify> {
        self.feed_signal.clone()
    }

    #[cfg(test)]
    pub(super) fn inject_retries(&self, extra: u32) {
        self.extra_runs.store(extra, Ordering::SeqCst);
    }

    #[cfg(test)]
    pub(super) fn writers_waiting(&self) -> usize {
        self.writers_waiting.load(Ordering::SeqCst)
    }

    pub(super) fn write<T, E: From<StoreError>>(
        &self,
        body: &mut dyn FnMut(&mut dyn Tx) -> Result<T, E>,
        ending: Ending,
    ) -> Result<Committed<T>, E> {
        for _ in 0..self.extra_runs.load(Ordering::SeqCst) {
            let txn = self.db.begin_write().map_err(StoreError::from)?;
            let _ = body(&mut RedbTx::new(&txn));
            txn.abort().map_err(StoreError::from)?;
        }
        #[cfg(test)]
        self.writers_waiting.fetch_add(1, Ordering::SeqCst);
        let txn = self.db.begin_write().map_err(StoreError::from);
        #[cfg(test)]
        self.writers_waiting.fetch_sub(1, Ordering::SeqCst);
        let txn = txn?;
        let mut tx = RedbTx::new(&txn);
        let value = body(&mut tx)?;
        let changes = std::mem::take(&mut tx.changes);
        if ending == Ending::RollBack {
            txn.abort().map_err(StoreError::from)?;
            return Ok(Committed {
                value,
                changes: Vec::new(),
            });
        }
        txn.commit().map_err(StoreError::from)?;
        Ok(Committed { value, changes })
    }

    pub(super) fn read<T, E: From<StoreError>>(
        &self,
        body: impl FnOnce(&mut dyn Read) -> Result<T, E>,
    ) -> Result<T, E> {
        let txn = self.db.begin_read().map_err(StoreError::from)?;
        body(&mut RedbRead { txn: &txn })
    }
}
/// A u32 written as decimal text (the `schema` and `compat` meta values).
fn number(bytes: &[u8]) -> Result<u32, StoreError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| StoreError::Corrupt("schema version".into()))
}

fn u64_value(bytes: &[u8]) -> Result<u64, StoreError> {
    let arr: [u8; 8] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("counter".into()))?;
    Ok(u64::from_le_bytes(arr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{SCHEMA_COMPAT, SCHEMA_VERSION};

    #[test]
    fn the_file_is_created_owner_only_whatever_the_umask() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        drop(RedbStore::open(&path).unwrap());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_second_process_is_told_the_file_is_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        let _first = RedbStore::open(&path).unwrap();
        let e = RedbStore::open(&path).err().unwrap();
        assert!(matches!(e, OpenError::InUse(_)), "{e}");
    }

    #[test]
    fn a_newer_schema_is_refused_unless_compatible() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        let stamp = |schema: &str, compat: &str| {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut meta = txn.open_table(META).unwrap();
                meta.insert("schema", schema.as_bytes()).unwrap();
                meta.insert("compat", compat.as_bytes()).unwrap();
            }
            txn.commit().unwrap();
        };
        drop(RedbStore::open(&path).unwrap());
        // A newer build that only added things: still usable.
        let (next, after) = (SCHEMA_VERSION + 1, SCHEMA_VERSION + 2);
        stamp(&next.to_string(), &SCHEMA_COMPAT.to_string());
        assert!(RedbStore::open(&path).is_ok());
        // A newer build that changed rows: refused, naming both versions.
        stamp(&after.to_string(), &next.to_string());
        let e = RedbStore::open(&path).err().unwrap();
        assert!(
            matches!(e, OpenError::TooNew { found, compat } if found == after && compat == next),
            "{e}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("version {after}"))
                && msg.contains(&format!("version {SCHEMA_VERSION}")),
            "{msg}"
        );
        stamp("0", "0");
        assert!(matches!(
            RedbStore::open(&path).err().unwrap(),
            OpenError::TooOld { found: 0 }
        ));
    }
}
