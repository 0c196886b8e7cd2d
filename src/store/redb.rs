//! The embedded backend: one redb file in the data directory, one process.
//!
//! redb is blocking; [`Store`](super::Store) runs every body on the blocking pool. It
//! has one writer at a time, so a body never meets a serialization failure here; the
//! feed and its counter exist all the same, so that the authority has one code path.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use redb::{
    Database, ReadTransaction, ReadableDatabase as _, ReadableTable, TableDefinition,
    WriteTransaction,
};
use tokio::sync::Notify;

use super::rows::{FeedRow, Stored};
use super::{
    Bumped, Committed, Compacted, DenyEntry, Ending, FeedHead, IdTokenUse, Lease, OpenError, Read,
    Recorded, SCHEMA_COMPAT, SCHEMA_VERSION, StoreError, Tx, VersionKey, legacy,
};
use crate::model::{
    App, AuditEvent, Change, FeedEntry, LastUsed, LedgerEntry, OAuthClient, OAuthGrant, OAuthKey,
    Org, Requirement, RootKeyVersion, SecretHead, SecretKeys, SecretVersion, ThirdParty, TokenId,
    TokenKind, TokenRecord,
};
use crate::token::KeyId;

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

/// Version 1's deny-list (token id → revocation time), replaced by `revocations`.
const REVOKED_V1: TableDefinition<&[u8], u64> = TableDefinition::new("revoked");

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

    /// Brings the schema to [`SCHEMA_VERSION`] in one transaction.
    fn upgrade(&self) -> Result<(), OpenError> {
        let txn = self.db.begin_write().map_err(StoreError::from)?;
        let found = {
            let meta = txn.open_table(META).map_err(StoreError::from)?;
            let schema = meta
                .get("schema")
                .map_err(StoreError::from)?
                .map(|v| number(v.value()))
                .transpose()?;
            let compat = meta
                .get("compat")
                .map_err(StoreError::from)?
                .map(|v| number(v.value()))
                .transpose()?;
            (schema, compat)
        };
        match found {
            (None, _) => create_tables(&txn)?,
            (Some(1), _) => {
                upgrade_v1(&txn)?;
                create_tables(&txn)?;
                register_apps(&txn)?;
            }
            // Tables are created again (idempotent): a store of this version may predate
            // some of them. 2 → 3 → 4 → 5 add tables (allow-lists of names that load
            // code; third parties, apps; counts of aggregated denials); to 4, every app
            // that secrets or tokens name is registered, once.
            (Some(v), _) if (2..4).contains(&v) => {
                create_tables(&txn)?;
                register_apps(&txn)?;
            }
            (Some(v), _) if (4..SCHEMA_VERSION).contains(&v) => create_tables(&txn)?,
            (Some(v), _) if v == SCHEMA_VERSION => create_tables(&txn)?,
            (Some(v), compat) if v > SCHEMA_VERSION => {
                let compat = compat.unwrap_or(v);
                if compat > SCHEMA_VERSION {
                    return Err(OpenError::TooNew { found: v, compat });
                }
                // Written by a newer build whose changes were additive: usable.
                return Ok(());
            }
            (Some(v), _) => return Err(OpenError::TooOld { found: v }),
        }
        txn.commit().map_err(StoreError::from)?;
        Ok(())
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

/// Creates every table of the current version (idempotent) and stamps the schema.
/// Versions 2 → 3 → 4 only add tables, so it is this too.
fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    let mut meta = txn.open_table(META)?;
    meta.insert("schema", SCHEMA_VERSION.to_string().as_bytes())?;
    meta.insert("compat", SCHEMA_COMPAT.to_string().as_bytes())?;
    for counter in ["feed_head", "feed_horizon"] {
        if meta.get(counter)?.is_none() {
            meta.insert(counter, 0u64.to_le_bytes().as_slice())?;
        }
    }
    drop(meta);
    txn.open_table(ORGS)?;
    txn.open_table(KEYS)?;
    txn.open_table(TOKENS)?;
    txn.open_table(ORG_TOKENS)?;
    txn.open_table(CHILDREN)?;
    txn.open_table(LAST_USED)?;
    txn.open_table(REVOCATIONS)?;
    txn.open_table(AUDIT)?;
    txn.open_table(AUDIT_COUNTS)?;
    txn.open_table(OAUTH_CLIENTS)?;
    txn.open_table(OAUTH_GRANTS)?;
    txn.open_table(OAUTH_KEYS)?;
    txn.open_table(OAUTH_SPENT)?;
    txn.open_table(FEED)?;
    txn.open_table(SECRET_KEYS)?;
    txn.open_table(SECRET_HEADS)?;
    txn.open_table(SECRET_VERSIONS)?;
    txn.open_table(SECRET_COUNTERS)?;
    txn.open_table(SECRET_BLIND_WRITES)?;
    txn.open_table(LEASES)?;
    txn.open_table(ALLOWED_ENV)?;
    txn.open_table(THIRD_PARTIES)?;
    txn.open_table(THIRD_PARTY_LOCATIONS)?;
    txn.open_table(THIRD_PARTY_KEYS)?;
    txn.open_table(ID_TOKEN_USES)?;
    txn.open_table(APPS)?;
    txn.open_table(REQUIREMENTS)?;
    Ok(())
}

/// Version 1 → 2: every row gets its version byte; last-used moves to its own table;
/// lineage parents are set (tokens the operator minted become roots); the deny-list
/// gains expiries. Runs inside the opening transaction, so it happens whole or not.
/// Schema 4 makes apps explicit: registers every app that a secret scope or a token of
/// an older store names, so they keep working.
fn register_apps(txn: &WriteTransaction) -> Result<(), StoreError> {
    let mut named: std::collections::BTreeSet<(String, String)> = Default::default();
    for row in txn.open_table(SECRET_COUNTERS)?.iter()? {
        let (k, _) = row?;
        let (org, app) = k.value();
        if !app.is_empty() {
            named.insert((org.to_owned(), app.to_owned()));
        }
    }
    for row in txn.open_table(TOKENS)?.iter()? {
        let (_, v) = row?;
        let rec = TokenRecord::decode(v.value())?;
        if let Some(app) = rec.app {
            named.insert((rec.org, app));
        }
    }
    let mut apps = txn.open_table(APPS)?;
    for (org, name) in named {
        if apps.get((org.as_str(), name.as_str()))?.is_none() {
            let app = App {
                org: org.clone(),
                name: name.clone(),
                created: 0,
                created_by: None,
            };
            apps.insert((org.as_str(), name.as_str()), app.encode()?.as_slice())?;
        }
    }
    Ok(())
}

fn upgrade_v1(txn: &WriteTransaction) -> Result<(), StoreError> {
    {
        let mut orgs = txn.open_table(ORGS)?;
        let rows: Vec<(String, Vec<u8>)> = orgs
            .iter()?
            .map(|r| r.map(|(k, v)| (k.value().to_owned(), v.value().to_vec())))
            .collect::<Result<_, _>>()?;
        for (name, v) in rows {
            orgs.insert(name.as_str(), legacy::org(&v)?.encode()?.as_slice())?;
        }
    }
    {
        let mut keys = txn.open_table(KEYS)?;
        let rows: Vec<((String, u32), Vec<u8>)> = keys
            .iter()?
            .map(|r| r.map(|(k, v)| ((k.value().0.to_owned(), k.value().1), v.value().to_vec())))
            .collect::<Result<_, _>>()?;
        for ((org, version), v) in rows {
            keys.insert(
                (org.as_str(), version),
                legacy::key(&org, &v)?.encode()?.as_slice(),
            )?;
        }
    }
    let tokens: Vec<(TokenRecord, Option<LastUsed>)> = {
        let t = txn.open_table(TOKENS)?;
        t.iter()?
            .map(|r| {
                let (_, v) = r?;
                legacy::token(v.value())
            })
            .collect::<Result<_, StoreError>>()?
    };
    let operators: std::collections::HashSet<TokenId> = tokens
        .iter()
        .filter(|(r, _)| r.kind == TokenKind::Operator)
        .map(|(r, _)| r.id)
        .collect();
    let expiry: std::collections::HashMap<TokenId, u64> =
        tokens.iter().map(|(r, _)| (r.id, r.expires)).collect();
    // Emptied first: `put_token` reads a row it replaces, and these are version 1.
    txn.open_table(TOKENS)?.retain(|_, _| false)?;
    {
        let mut tx = RedbTx::new(txn);
        for (mut rec, used) in tokens {
            if rec.creator.is_some_and(|c| operators.contains(&c)) {
                rec = rec.as_lineage_root();
            }
            tx.put_token(&rec)?;
            if let Some(used) = used {
                tx.record_use(&rec.id, &used)?;
            }
        }
    }
    {
        let old = txn.open_table(REVOKED_V1)?;
        let mut new = txn.open_table(REVOCATIONS)?;
        for row in old.iter()? {
            let (k, at) = row?;
            let id: [u8; 16] = k
                .value()
                .try_into()
                .map_err(|_| StoreError::Corrupt("version-1 revocation".into()))?;
            let entry = DenyEntry {
                effective: at.value(),
                expires: expiry.get(&TokenId(id)).copied().unwrap_or(u64::MAX),
            };
            new.insert(&id[..], entry.encode()?.as_slice())?;
        }
    }
    txn.delete_table(REVOKED_V1)?;
    {
        let mut audit = txn.open_table(AUDIT)?;
        let rows: Vec<((String, u64), Vec<u8>)> = audit
            .iter()?
            .map(|r| r.map(|(k, v)| ((k.value().0.to_owned(), k.value().1), v.value().to_vec())))
            .collect::<Result<_, _>>()?;
        for ((org, seq), v) in rows {
            audit.insert((org.as_str(), seq), legacy::audit(&v)?.encode()?.as_slice())?;
        }
    }
    Ok(())
}

struct RedbTx<'t> {
    txn: &'t WriteTransaction,
    changes: Vec<FeedEntry>,
}

impl<'t> RedbTx<'t> {
    fn new(txn: &'t WriteTransaction) -> Self {
        RedbTx {
            txn,
            changes: Vec::new(),
        }
    }

    fn counter(&self, name: &str) -> Result<u64, StoreError> {
        let meta = self.txn.open_table(META)?;
        let v = meta.get(name)?;
        v.map_or(Ok(0), |v| u64_value(v.value()))
    }

    fn set_counter(&self, name: &str, value: u64) -> Result<(), StoreError> {
        self.txn
            .open_table(META)?
            .insert(name, value.to_le_bytes().as_slice())?;
        Ok(())
    }
}

struct RedbRead<'t> {
    txn: &'t ReadTransaction,
}

fn decode_all<T: Stored>(
    rows: impl Iterator<Item = Result<Vec<u8>, redb::StorageError>>,
) -> Result<Vec<T>, StoreError> {
    rows.map(|r| T::decode(&r?)).collect()
}

/// Gives each event of an aggregate its count and last time.
fn with_counts(
    counts: &impl ReadableTable<(&'static str, u64), (u64, u64)>,
    events: Vec<AuditEvent>,
) -> Result<Vec<AuditEvent>, StoreError> {
    events
        .into_iter()
        .map(|e| {
            let found = counts.get((e.org.as_str(), e.seq))?.map(|v| v.value());
            Ok(match found {
                Some((count, last)) => e.times(count, last),
                None => e,
            })
        })
        .collect()
}

/// The read methods, over a read or a write transaction alike (their tables differ in
/// type but share `ReadableTable`).
macro_rules! impl_read {
    ($ty:ty) => {
        impl Read for $ty {
            fn org(&mut self, name: &str) -> Result<Option<Org>, StoreError> {
                let t = self.txn.open_table(ORGS)?;
                let v = t.get(name)?;
                v.map(|v| Org::decode(v.value())).transpose()
            }

            fn orgs(&mut self) -> Result<Vec<Org>, StoreError> {
                let t = self.txn.open_table(ORGS)?;
                decode_all(t.iter()?.map(|r| r.map(|(_, v)| v.value().to_vec())))
            }

            fn key(
                &mut self,
                org: &str,
                version: u32,
            ) -> Result<Option<RootKeyVersion>, StoreError> {
                let t = self.txn.open_table(KEYS)?;
                let v = t.get((org, version))?;
                v.map(|v| RootKeyVersion::decode(v.value())).transpose()
            }

            fn keys(&mut self, org: &str) -> Result<Vec<RootKeyVersion>, StoreError> {
                let t = self.txn.open_table(KEYS)?;
                let rows = t.range((org, 0)..=(org, u32::MAX))?;
                decode_all(rows.map(|r| r.map(|(_, v)| v.value().to_vec())))
            }

            fn all_keys(&mut self) -> Result<Vec<RootKeyVersion>, StoreError> {
                let t = self.txn.open_table(KEYS)?;
                decode_all(t.iter()?.map(|r| r.map(|(_, v)| v.value().to_vec())))
            }

            fn token(&mut self, id: &TokenId) -> Result<Option<TokenRecord>, StoreError> {
                let t = self.txn.open_table(TOKENS)?;
                let v = t.get(&id.0[..])?;
                v.map(|v| TokenRecord::decode(v.value())).transpose()
            }

            fn ledger(&mut self, org: &str) -> Result<Vec<LedgerEntry>, StoreError> {
                let index = self.txn.open_table(ORG_TOKENS)?;
                let tokens = self.txn.open_table(TOKENS)?;
                let used = self.txn.open_table(LAST_USED)?;
                let mut out = Vec::new();
                for row in index.range((org, &[][..])..(org, &ID_END[..]))? {
                    let (k, _) = row?;
                    let id = k.value().1;
                    let Some(v) = tokens.get(id)? else { continue };
                    let record = TokenRecord::decode(v.value())?;
                    let last_used = used
                        .get(id)?
                        .map(|v| LastUsed::decode(v.value()))
                        .transpose()?;
                    out.push(LedgerEntry { record, last_used });
                }
                out.sort_by_key(|e| (e.record.created, e.record.id));
                Ok(out)
            }

            fn children(&mut self, parent: &TokenId) -> Result<Vec<TokenId>, StoreError> {
                let t = self.txn.open_table(CHILDREN)?;
                let mut out = Vec::new();
                for row in t.range((&parent.0[..], &[][..])..(&parent.0[..], &ID_END[..]))? {
                    let (k, _) = row?;
                    let id: [u8; 16] = k
                        .value()
                        .1
                        .try_into()
                        .map_err(|_| StoreError::Corrupt("lineage index".into()))?;
                    out.push(TokenId(id));
                }
                Ok(out)
            }

            fn last_used(&mut self, id: &TokenId) -> Result<Option<LastUsed>, StoreError> {
                let t = self.txn.open_table(LAST_USED)?;
                let v = t.get(&id.0[..])?;
                v.map(|v| LastUsed::decode(v.value())).transpose()
            }

            fn revocations(&mut self) -> Result<Vec<(TokenId, DenyEntry)>, StoreError> {
                let t = self.txn.open_table(REVOCATIONS)?;
                let mut out = Vec::new();
                for row in t.iter()? {
                    let (k, v) = row?;
                    let id: [u8; 16] = k
                        .value()
                        .try_into()
                        .map_err(|_| StoreError::Corrupt("revocation".into()))?;
                    out.push((TokenId(id), DenyEntry::decode(v.value())?));
                }
                Ok(out)
            }

            fn audit_before(
                &mut self,
                org: &str,
                before: Option<u64>,
                limit: usize,
            ) -> Result<Vec<AuditEvent>, StoreError> {
                let t = self.txn.open_table(AUDIT)?;
                let end = before.unwrap_or(u64::MAX);
                let rows = t.range((org, 0)..(org, end))?.rev().take(limit);
                let events = decode_all(rows.map(|r| r.map(|(_, v)| v.value().to_vec())))?;
                let counts = self.txn.open_table(AUDIT_COUNTS)?;
                with_counts(&counts, events)
            }

            fn audit_after(
                &mut self,
                org: &str,
                after: u64,
                limit: usize,
            ) -> Result<Vec<AuditEvent>, StoreError> {
                let t = self.txn.open_table(AUDIT)?;
                let Some(start) = after.checked_add(1) else {
                    return Ok(Vec::new());
                };
                let rows = t.range((org, start)..=(org, u64::MAX))?.take(limit);
                let events = decode_all(rows.map(|r| r.map(|(_, v)| v.value().to_vec())))?;
                let counts = self.txn.open_table(AUDIT_COUNTS)?;
                with_counts(&counts, events)
            }

            fn feed_heads(&mut self) -> Result<Vec<FeedHead>, StoreError> {
                // One writer at a time: one stream, in commit order.
                let meta = self.txn.open_table(META)?;
                let get = |name: &str| -> Result<u64, StoreError> {
                    let v = meta.get(name)?;
                    v.map_or(Ok(0), |v| u64_value(v.value()))
                };
                Ok(vec![FeedHead {
                    stream: String::new(),
                    head: get("feed_head")?,
                    horizon: get("feed_horizon")?,
                }])
            }

            fn feed_after(
                &mut self,
                stream: &str,
                after: u64,
                limit: usize,
            ) -> Result<Vec<FeedEntry>, StoreError> {
                let t = self.txn.open_table(FEED)?;
                let Some(start) = after.checked_add(1).filter(|_| stream.is_empty()) else {
                    return Ok(Vec::new());
                };
                let mut out = Vec::new();
                for row in t.range(start..)?.take(limit) {
                    let (k, v) = row?;
                    let row = FeedRow::decode(v.value())?;
                    out.push(FeedEntry {
                        stream: String::new(),
                        seq: k.value(),
                        change: row.change.into(),
                    });
                }
                Ok(out)
            }

            fn master_check(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
                let meta = self.txn.open_table(META)?;
                let v = meta.get("master_check")?;
                Ok(v.map(|v| v.value().to_vec()))
            }

            fn secret_keys(&mut self, org: &str) -> Result<Option<SecretKeys>, StoreError> {
                let t = self.txn.open_table(SECRET_KEYS)?;
                let v = t.get(org)?;
                v.map(|v| SecretKeys::decode(v.value())).transpose()
            }

            fn secret_head(
                &mut self,
                org: &str,
                app: Option<&str>,
                name: &str,
            ) -> Result<Option<SecretHead>, StoreError> {
                let t = self.txn.open_table(SECRET_HEADS)?;
                let v = t.get((org, scope(app), name))?;
                v.map(|v| SecretHead::decode(v.value())).transpose()
            }

            fn secret_heads(
                &mut self,
                org: &str,
                app: Option<&str>,
            ) -> Result<Vec<SecretHead>, StoreError> {
                let t = self.txn.open_table(SECRET_HEADS)?;
                let s = scope(app);
                let rows = t.range((org, s, "")..(org, s, NAME_END))?;
                decode_all(rows.map(|r| r.map(|(_, v)| v.value().to_vec())))
            }

            fn secret_apps(&mut self, org: &str) -> Result<Vec<String>, StoreError> {
                let t = self.txn.open_table(SECRET_COUNTERS)?;
                let mut apps = Vec::new();
                for row in t.range((org, "")..=(org, NAME_END))? {
                    let (k, _) = row?;
                    let app = k.value().1;
                    if !app.is_empty() {
                        apps.push(app.to_owned());
                    }
                }
                Ok(apps)
            }

            fn count_secrets(&mut self, org: &str) -> Result<usize, StoreError> {
                let t = self.txn.open_table(SECRET_HEADS)?;
                let mut n = 0;
                for row in t.range((org, "", "")..=(org, NAME_END, NAME_END))? {
                    row?;
                    n += 1;
                }
                Ok(n)
            }

            fn secret_stored_bytes(
                &mut self,
                org: &str,
                app: Option<&str>,
            ) -> Result<u64, StoreError> {
                let t = self.txn.open_table(SECRET_VERSIONS)?;
                let s = scope(app);
                let mut bytes = 0u64;
                for row in t.range((org, s, "", 0)..=(org, s, NAME_END, u64::MAX))? {
                    let (_, v) = row?;
                    bytes += v.value().len() as u64;
                }
                Ok(bytes)
            }

            fn secret_version(
                &mut self,
                org: &str,
                app: Option<&str>,
                name: &str,
                version: u64,
            ) -> Result<Option<SecretVersion>, StoreError> {
                let t = self.txn.open_table(SECRET_VERSIONS)?;
                let v = t.get((org, scope(app), name, version))?;
                v.map(|v| SecretVersion::decode(v.value())).transpose()
            }

            fn secret_versions(
                &mut self,
                org: &str,
                app: Option<&str>,
                name: &str,
            ) -> Result<Vec<SecretVersion>, StoreError> {
                let t = self.txn.open_table(SECRET_VERSIONS)?;
                let s = scope(app);
                let rows = t.range((org, s, name, 0)..=(org, s, name, u64::MAX))?;
                decode_all(rows.map(|r| r.map(|(_, v)| v.value().to_vec())))
            }

            fn secrets_counter(&mut self, org: &str, app: Option<&str>) -> Result<u64, StoreError> {
                let t = self.txn.open_table(SECRET_COUNTERS)?;
                let v = t.get((org, scope(app)))?;
                Ok(v.map_or(0, |v| v.value()))
            }

            fn secrets_blind_writes(
                &mut self,
                org: &str,
                app: Option<&str>,
            ) -> Result<u64, StoreError> {
                let t = self.txn.open_table(SECRET_BLIND_WRITES)?;
                let v = t.get((org, scope(app)))?;
                Ok(v.map_or(0, |v| v.value()))
            }

            fn secret_current(
                &mut self,
                org: &str,
                app: Option<&str>,
            ) -> Result<Vec<(SecretHead, Option<SecretVersion>)>, StoreError> {
                let heads = self.secret_heads(org, app)?;
                let versions = self.txn.open_table(SECRET_VERSIONS)?;
                let mut out = Vec::with_capacity(heads.len());
                for head in heads.into_iter().filter(|h| !h.unset) {
                    let v = versions.get((org, scope(app), head.name.as_str(), head.version))?;
                    let v = v.map(|v| SecretVersion::decode(v.value())).transpose()?;
                    out.push((head, v));
                }
                Ok(out)
            }

            fn secret_versions_after(
                &mut self,
                org: &str,
                after: Option<&VersionKey>,
                limit: usize,
            ) -> Result<Vec<SecretVersion>, StoreError> {
                let t = self.txn.open_table(SECRET_VERSIONS)?;
                let end = (org, NAME_END, NAME_END, u64::MAX);
                let rows = match after {
                    Some(k) => {
                        let from = (org, scope(k.app.as_deref()), k.name.as_str(), k.version);
                        t.range::<(&str, &str, &str, u64)>((
                            std::ops::Bound::Excluded(from),
                            std::ops::Bound::Included(end),
                        ))?
                    }
                    None => t.range((org, "", "", 0)..=end)?,
                };
                decode_all(rows.take(limit).map(|r| r.map(|(_, v)| v.value().to_vec())))
            }

            fn lease(&mut self, name: &str) -> Result<Option<Lease>, StoreError> {
                let t = self.txn.open_table(LEASES)?;
                Ok(t.get(name)?.map(|v| {
                    let (holder, until) = v.value();
                    Lease {
                        holder: holder.to_owned(),
                        until,
                    }
                }))
            }

            fn allowed_env(
                &mut self,
                org: &str,
            ) -> Result<Vec<(Option<String>, String)>, StoreError> {
                let t = self.txn.open_table(ALLOWED_ENV)?;
                let mut out = Vec::new();
                for row in t.range((org, "", "")..=(org, NAME_END, NAME_END))? {
                    let (k, _) = row?;
                    let (_, app, name) = k.value();
                    let app = (!app.is_empty()).then(|| app.to_owned());
                    out.push((app, name.to_owned()));
                }
                Ok(out)
            }

            fn third_party(
                &mut self,
                org: &str,
                name: &str,
            ) -> Result<Option<ThirdParty>, StoreError> {
                let t = self.txn.open_table(THIRD_PARTIES)?;
                let v = t.get((org, name))?;
                v.map(|v| ThirdParty::decode(v.value())).transpose()
            }

            fn third_parties(&mut self, org: &str) -> Result<Vec<ThirdParty>, StoreError> {
                let t = self.txn.open_table(THIRD_PARTIES)?;
                let rows = t.range((org, "")..(org, NAME_END))?;
                decode_all(rows.map(|r| r.map(|(_, v)| v.value().to_vec())))
            }

            fn third_parties_at(&mut self, path: &str) -> Result<Vec<ThirdParty>, StoreError> {
                let at: Vec<(String, String)> = {
                    let t = self.txn.open_table(THIRD_PARTY_LOCATIONS)?;
                    let rows = t.range((path, "", "")..=(path, NAME_END, NAME_END))?;
                    rows.map(|r| {
                        r.map(|(k, _)| {
                            let (_, org, name) = k.value();
                            (org.to_owned(), name.to_owned())
                        })
                    })
                    .collect::<Result<_, _>>()?
                };
                let mut out = Vec::with_capacity(at.len());
                for (org, name) in at {
                    out.extend(self.third_party(&org, &name)?);
                }
                Ok(out)
            }

            fn third_party_by_key(&mut self, id: KeyId) -> Result<Option<ThirdParty>, StoreError> {
                let at = {
                    let t = self.txn.open_table(THIRD_PARTY_KEYS)?;
                    t.get(&id.0[..])?.map(|v| {
                        let (org, name) = v.value();
                        (org.to_owned(), name.to_owned())
                    })
                };
                match at {
                    Some((org, name)) => self.third_party(&org, &name),
                    None => Ok(None),
                }
            }

            fn requirements(
                &mut self,
                org: &str,
                third_party: &str,
            ) -> Result<Vec<Requirement>, StoreError> {
                let t = self.txn.open_table(REQUIREMENTS)?;
                let rows = t.range((org, third_party, &[][..])..(org, third_party, &ID_END[..]))?;
                decode_all(rows.map(|r| r.map(|(_, v)| v.value().to_vec())))
            }

            fn app(&mut self, org: &str, name: &str) -> Result<Option<App>, StoreError> {
                let t = self.txn.open_table(APPS)?;
                let v = t.get((org, name))?;
                v.map(|v| App::decode(v.value())).transpose()
            }

            fn apps(&mut self, org: &str) -> Result<Vec<App>, StoreError> {
                let t = self.txn.open_table(APPS)?;
                let rows = t.range((org, "")..(org, NAME_END))?;
                decode_all(rows.map(|r| r.map(|(_, v)| v.value().to_vec())))
            }

            fn oauth_client(&mut self, id: &str) -> Result<Option<OAuthClient>, StoreError> {
                let t = self.txn.open_table(OAUTH_CLIENTS)?;
                let v = t.get(id)?;
                v.map(|v| OAuthClient::decode(v.value())).transpose()
            }

            fn oauth_clients(&mut self, org: &str) -> Result<Vec<OAuthClient>, StoreError> {
                let t = self.txn.open_table(OAUTH_CLIENTS)?;
                let all: Vec<OAuthClient> =
                    decode_all(t.iter()?.map(|r| r.map(|(_, v)| v.value().to_vec())))?;
                Ok(all.into_iter().filter(|c| c.org == org).collect())
            }

            fn id_token_uses(&mut self) -> Result<Vec<IdTokenUse>, StoreError> {
                let t = self.txn.open_table(ID_TOKEN_USES)?;
                decode_all(t.iter()?.map(|r| r.map(|(_, v)| v.value().to_vec())))
            }

            fn oauth_grant(&mut self, id: &str) -> Result<Option<OAuthGrant>, StoreError> {
                let t = self.txn.open_table(OAUTH_GRANTS)?;
                let v = t.get(id)?;
                v.map(|v| OAuthGrant::decode(v.value())).transpose()
            }

            fn oauth_grants(&mut self, org: &str) -> Result<Vec<OAuthGrant>, StoreError> {
                let t = self.txn.open_table(OAUTH_GRANTS)?;
                let all: Vec<OAuthGrant> =
                    decode_all(t.iter()?.map(|r| r.map(|(_, v)| v.value().to_vec())))?;
                Ok(all.into_iter().filter(|g| g.org == org).collect())
            }

            fn oauth_key(&mut self, hash: &[u8; 32]) -> Result<Option<OAuthKey>, StoreError> {
                let t = self.txn.open_table(OAUTH_KEYS)?;
                let v = t.get(&hash[..])?;
                v.map(|v| OAuthKey::decode(v.value())).transpose()
            }

            fn oauth_keys(&mut self) -> Result<Vec<(OAuthKey, bool)>, StoreError> {
                let keys: Vec<OAuthKey> = {
                    let t = self.txn.open_table(OAUTH_KEYS)?;
                    decode_all(t.iter()?.map(|r| r.map(|(_, v)| v.value().to_vec())))?
                };
                let spent = self.txn.open_table(OAUTH_SPENT)?;
                keys.into_iter()
                    .map(|k| Ok((spent.get(&k.hash[..])?.is_some(), k)))
                    .map(|r: Result<_, StoreError>| r.map(|(s, k)| (k, s)))
                    .collect()
            }
        }
    };
}

impl_read!(RedbTx<'_>);
impl_read!(RedbRead<'_>);

/// A table of one number per secret scope (the change counters, the blind writes).
type ScopeNumbers = TableDefinition<'static, (&'static str, &'static str), u64>;

impl RedbTx<'_> {
    /// Adds one to a scope's number in `table`; the new value.
    fn bump_in(
        &mut self,
        table: ScopeNumbers,
        org: &str,
        app: Option<&str>,
    ) -> Result<u64, StoreError> {
        let mut t = self.txn.open_table(table)?;
        let next = t.get((org, scope(app)))?.map_or(0, |v| v.value()) + 1;
        t.insert((org, scope(app)), next)?;
        Ok(next)
    }

    /// Sets a scope's number in `table`.
    fn set_in(
        &mut self,
        table: ScopeNumbers,
        org: &str,
        app: Option<&str>,
        value: u64,
    ) -> Result<(), StoreError> {
        self.txn
            .open_table(table)?
            .insert((org, scope(app)), value)?;
        Ok(())
    }

    /// Removes OAuth grants past their end and codes and refresh tokens past their
    /// `until`: how many grants.
    fn compact_oauth(&mut self, now: u64) -> Result<usize, StoreError> {
        let mut t = self.txn.open_table(OAUTH_GRANTS)?;
        let mut gone = Vec::new();
        for row in t.iter()? {
            let (k, v) = row?;
            if OAuthGrant::decode(v.value())?.expires <= now {
                gone.push(k.value().to_owned());
            }
        }
        for id in &gone {
            t.remove(id.as_str())?;
        }
        let mut keys = self.txn.open_table(OAUTH_KEYS)?;
        let mut old = Vec::new();
        for row in keys.iter()? {
            let (k, v) = row?;
            if OAuthKey::decode(v.value())?.until <= now {
                old.push(k.value().to_vec());
            }
        }
        for hash in &old {
            keys.remove(hash.as_slice())?;
        }
        let mut spent = self.txn.open_table(OAUTH_SPENT)?;
        spent.retain(|_, until| until > now)?;
        Ok(gone.len())
    }
}

impl Tx for RedbTx<'_> {
    fn insert_org(&mut self, org: &Org) -> Result<(), StoreError> {
        if self.org(&org.name)?.is_some() {
            return Err(StoreError::Conflict("org"));
        }
        self.put_org(org)
    }

    fn put_org(&mut self, org: &Org) -> Result<(), StoreError> {
        self.txn
            .open_table(ORGS)?
            .insert(org.name.as_str(), org.encode()?.as_slice())?;
        Ok(())
    }

    fn put_key(&mut self, key: &RootKeyVersion) -> Result<(), StoreError> {
        self.txn
            .open_table(KEYS)?
            .insert((key.org.as_str(), key.version), key.encode()?.as_slice())?;
        Ok(())
    }

    fn put_token(&mut self, rec: &TokenRecord) -> Result<(), StoreError> {
        let old_parent = self.token(&rec.id)?.and_then(|old| old.parent);
        let mut children = self.txn.open_table(CHILDREN)?;
        if let Some(old) = old_parent.filter(|p| Some(*p) != rec.parent) {
            children.remove((&old.0[..], &rec.id.0[..]))?;
        }
        if let Some(parent) = rec.parent {
            children.insert((&parent.0[..], &rec.id.0[..]), ())?;
        }
        self.txn
            .open_table(TOKENS)?
            .insert(&rec.id.0[..], rec.encode()?.as_slice())?;
        self.txn
            .open_table(ORG_TOKENS)?
            .insert((rec.org.as_str(), &rec.id.0[..]), ())?;
        Ok(())
    }

    fn delete_token(&mut self, id: &TokenId) -> Result<(), StoreError> {
        let Some(old) = self.token(id)? else {
            return Ok(());
        };
        if let Some(parent) = old.parent {
            self.txn
                .open_table(CHILDREN)?
                .remove((&parent.0[..], &id.0[..]))?;
        }
        self.txn
            .open_table(ORG_TOKENS)?
            .remove((old.org.as_str(), &id.0[..]))?;
        self.txn.open_table(TOKENS)?.remove(&id.0[..])?;
        self.txn.open_table(LAST_USED)?.remove(&id.0[..])?;
        Ok(())
    }

    fn put_revocation(&mut self, id: &TokenId, entry: DenyEntry) -> Result<(), StoreError> {
        self.txn
            .open_table(REVOCATIONS)?
            .insert(&id.0[..], entry.encode()?.as_slice())?;
        Ok(())
    }

    fn record_use(&mut self, id: &TokenId, used: &LastUsed) -> Result<(), StoreError> {
        if self.last_used(id)?.is_some_and(|old| old.time > used.time) {
            return Ok(());
        }
        self.txn
            .open_table(LAST_USED)?
            .insert(&id.0[..], used.encode()?.as_slice())?;
        Ok(())
    }

    fn prune_audit(&mut self, before: u64) -> Result<usize, StoreError> {
        let orgs: Vec<String> = self.orgs()?.into_iter().map(|o| o.name).collect();
        let mut t = self.txn.open_table(AUDIT)?;
        let mut pruned = 0;
        for org in &orgs {
            let org = org.as_str();
            // Events are in the order they were written: old ones first.
            let mut old = Vec::new();
            let mut rows = t.range((org, 0)..=(org, u64::MAX))?.peekable();
            while let Some(row) = rows.next() {
                let (k, v) = row?;
                let newest = rows.peek().is_none();
                if newest || AuditEvent::decode(v.value())?.time >= before {
                    break;
                }
                old.push(k.value().1);
            }
            drop(rows);
            let mut counts = self.txn.open_table(AUDIT_COUNTS)?;
            for seq in old {
                t.remove((org, seq))?;
                counts.remove((org, seq))?;
                pruned += 1;
            }
        }
        Ok(pruned)
    }

    fn append_audit(&mut self, event: &AuditEvent) -> Result<(), StoreError> {
        self.append_audit_seq(event).map(drop)
    }

    fn append_audit_seq(&mut self, event: &AuditEvent) -> Result<u64, StoreError> {
        let mut t = self.txn.open_table(AUDIT)?;
        let org = event.org.as_str();
        let last = t
            .range((org, 0)..=(org, u64::MAX))?
            .next_back()
            .transpose()?;
        let mut event = event.clone();
        event.seq = last.map_or(1, |(k, _)| k.value().1 + 1);
        t.insert((org, event.seq), event.encode()?.as_slice())?;
        if event.count > 1 {
            self.txn
                .open_table(AUDIT_COUNTS)?
                .insert((org, event.seq), (event.count, event.last))?;
        }
        Ok(event.seq)
    }

    fn amend_audit(
        &mut self,
        org: &str,
        seq: u64,
        count: u64,
        last: u64,
    ) -> Result<(), StoreError> {
        if self.txn.open_table(AUDIT)?.get((org, seq))?.is_none() {
            return Ok(());
        }
        self.txn
            .open_table(AUDIT_COUNTS)?
            .insert((org, seq), (count, last))?;
        Ok(())
    }

    fn publish(&mut self, _org: &str, change: &Change, time: u64) -> Result<(), StoreError> {
        let seq = self.counter("feed_head")? + 1;
        self.set_counter("feed_head", seq)?;
        let row = FeedRow::new(change, time);
        self.txn
            .open_table(FEED)?
            .insert(seq, row.encode()?.as_slice())?;
        self.changes.push(FeedEntry {
            stream: String::new(),
            seq,
            change: change.clone(),
        });
        Ok(())
    }

    fn init_master_check(&mut self, check: &[u8]) -> Result<(), StoreError> {
        if self.master_check()?.is_some() {
            return Err(StoreError::Conflict("master key"));
        }
        self.txn.open_table(META)?.insert("master_check", check)?;
        Ok(())
    }

    fn put_secret_keys(&mut self, keys: &SecretKeys) -> Result<(), StoreError> {
        self.txn
            .open_table(SECRET_KEYS)?
            .insert(keys.org.as_str(), keys.encode()?.as_slice())?;
        Ok(())
    }

    fn put_secret_head(&mut self, head: &SecretHead) -> Result<(), StoreError> {
        let key = (
            head.org.as_str(),
            scope(head.app.as_deref()),
            head.name.as_str(),
        );
        self.txn
            .open_table(SECRET_HEADS)?
            .insert(key, head.encode()?.as_slice())?;
        // Every scope has a counter row, so the apps with secrets can be listed.
        let mut counters = self.txn.open_table(SECRET_COUNTERS)?;
        let counter = (head.org.as_str(), scope(head.app.as_deref()));
        if counters.get(counter)?.is_none() {
            counters.insert(counter, 0)?;
        }
        Ok(())
    }

    fn put_secret_version(&mut self, v: &SecretVersion) -> Result<(), StoreError> {
        let key = (
            v.org.as_str(),
            scope(v.app.as_deref()),
            v.name.as_str(),
            v.version,
        );
        self.txn
            .open_table(SECRET_VERSIONS)?
            .insert(key, v.encode()?.as_slice())?;
        Ok(())
    }

    fn delete_secret_version(
        &mut self,
        org: &str,
        app: Option<&str>,
        name: &str,
        version: u64,
    ) -> Result<(), StoreError> {
        self.txn
            .open_table(SECRET_VERSIONS)?
            .remove((org, scope(app), name, version))?;
        Ok(())
    }

    fn bump_secrets_counter(&mut self, org: &str, app: Option<&str>) -> Result<Bumped, StoreError> {
        let own = self.bump_in(SECRET_COUNTERS, org, app)?;
        let org = match app {
            Some(_) => self.secrets_counter(org, None)?,
            None => own,
        };
        Ok(Bumped { org, own })
    }

    fn set_secrets_counter(
        &mut self,
        org: &str,
        app: Option<&str>,
        value: u64,
    ) -> Result<(), StoreError> {
        self.set_in(SECRET_COUNTERS, org, app, value)
    }

    fn bump_secrets_blind_writes(
        &mut self,
        org: &str,
        app: Option<&str>,
    ) -> Result<u64, StoreError> {
        self.bump_in(SECRET_BLIND_WRITES, org, app)
    }

    fn set_secrets_blind_writes(
        &mut self,
        org: &str,
        app: Option<&str>,
        value: u64,
    ) -> Result<(), StoreError> {
        self.set_in(SECRET_BLIND_WRITES, org, app, value)
    }

    fn take_lease(
        &mut self,
        name: &str,
        holder: &str,
        now: u64,
        until: u64,
    ) -> Result<bool, StoreError> {
        let mut t = self.txn.open_table(LEASES)?;
        let free = match t.get(name)? {
            Some(v) => {
                let (by, ends) = v.value();
                by == holder || ends <= now
            }
            None => true,
        };
        if free {
            t.insert(name, (holder, until))?;
        }
        Ok(free)
    }

    fn set_allowed_env(
        &mut self,
        org: &str,
        app: Option<&str>,
        name: &str,
        allowed: bool,
    ) -> Result<(), StoreError> {
        let mut t = self.txn.open_table(ALLOWED_ENV)?;
        if allowed {
            t.insert((org, scope(app), name), [].as_slice())?;
        } else {
            t.remove((org, scope(app), name))?;
        }
        Ok(())
    }

    fn drop_lease(&mut self, name: &str, holder: &str) -> Result<(), StoreError> {
        let mut t = self.txn.open_table(LEASES)?;
        let mine = t.get(name)?.is_some_and(|v| v.value().0 == holder);
        if mine {
            t.remove(name)?;
        }
        Ok(())
    }

    fn insert_third_party(&mut self, tp: &ThirdParty) -> Result<(), StoreError> {
        if self.third_party(&tp.org, &tp.name)?.is_some() {
            return Err(StoreError::Conflict("third party"));
        }
        self.txn.open_table(THIRD_PARTY_LOCATIONS)?.insert(
            (tp.location_path(), tp.org.as_str(), tp.name.as_str()),
            &[][..],
        )?;
        self.put_third_party(tp)
    }

    fn put_third_party(&mut self, tp: &ThirdParty) -> Result<(), StoreError> {
        let before = self.third_party(&tp.org, &tp.name)?;
        let mut index = self.txn.open_table(THIRD_PARTY_KEYS)?;
        for old in before.iter().flat_map(|b| &b.keys) {
            index.remove(&old.id.0[..])?;
        }
        for key in &tp.keys {
            let held = index
                .insert(&key.id.0[..], (tp.org.as_str(), tp.name.as_str()))?
                .is_some();
            if held {
                return Err(StoreError::Conflict("third-party key"));
            }
        }
        drop(index);
        self.txn
            .open_table(THIRD_PARTIES)?
            .insert((tp.org.as_str(), tp.name.as_str()), tp.encode()?.as_slice())?;
        Ok(())
    }

    fn delete_third_party(&mut self, org: &str, name: &str) -> Result<(), StoreError> {
        let Some(tp) = self.third_party(org, name)? else {
            return Ok(());
        };
        self.txn
            .open_table(THIRD_PARTY_LOCATIONS)?
            .remove((tp.location_path(), org, name))?;
        let mut index = self.txn.open_table(THIRD_PARTY_KEYS)?;
        for key in &tp.keys {
            index.remove(&key.id.0[..])?;
        }
        drop(index);
        self.txn.open_table(THIRD_PARTIES)?.remove((org, name))?;
        let mut reqs = self.txn.open_table(REQUIREMENTS)?;
        reqs.retain_in((org, name, &[][..])..(org, name, &ID_END[..]), |_, _| false)?;
        Ok(())
    }

    fn insert_app(&mut self, app: &App) -> Result<(), StoreError> {
        let mut t = self.txn.open_table(APPS)?;
        let key = (app.org.as_str(), app.name.as_str());
        if t.get(key)?.is_some() {
            return Err(StoreError::Conflict("app"));
        }
        t.insert(key, app.encode()?.as_slice())?;
        Ok(())
    }

    fn delete_app(&mut self, org: &str, name: &str) -> Result<(), StoreError> {
        self.txn.open_table(APPS)?.remove((org, name))?;
        Ok(())
    }

    fn insert_oauth_client(&mut self, client: &OAuthClient) -> Result<(), StoreError> {
        let mut t = self.txn.open_table(OAUTH_CLIENTS)?;
        if t.get(client.id.as_str())?.is_some() {
            return Err(StoreError::Conflict("OAuth client"));
        }
        t.insert(client.id.as_str(), client.encode()?.as_slice())?;
        Ok(())
    }

    fn delete_oauth_client(&mut self, id: &str) -> Result<(), StoreError> {
        self.txn.open_table(OAUTH_CLIENTS)?.remove(id)?;
        Ok(())
    }

    fn put_oauth_grant(&mut self, grant: &OAuthGrant) -> Result<(), StoreError> {
        self.txn
            .open_table(OAUTH_GRANTS)?
            .insert(grant.id.as_str(), grant.encode()?.as_slice())?;
        Ok(())
    }

    fn put_oauth_key(&mut self, key: &OAuthKey) -> Result<(), StoreError> {
        self.txn
            .open_table(OAUTH_KEYS)?
            .insert(&key.hash[..], key.encode()?.as_slice())?;
        Ok(())
    }

    fn spend_oauth_key(&mut self, hash: &[u8; 32], until: u64) -> Result<bool, StoreError> {
        let mut t = self.txn.open_table(OAUTH_SPENT)?;
        if t.get(&hash[..])?.is_some() {
            return Ok(false);
        }
        t.insert(&hash[..], until)?;
        Ok(true)
    }

    fn record_id_token(&mut self, used: &IdTokenUse) -> Result<Recorded, StoreError> {
        let mut t = self.txn.open_table(ID_TOKEN_USES)?;
        let key = (used.issuer.as_str(), used.jti.as_str());
        let before = t
            .get(key)?
            .map(|v| IdTokenUse::decode(v.value()))
            .transpose()?;
        Ok(match before {
            Some(b) if b.tickets == used.tickets => Recorded::Again,
            Some(_) => Recorded::Other,
            None => {
                t.insert(key, used.encode()?.as_slice())?;
                Recorded::New
            }
        })
    }

    fn put_requirement(&mut self, req: &Requirement) -> Result<(), StoreError> {
        let key = (req.org.as_str(), req.third_party.as_str(), &req.token.0[..]);
        self.txn
            .open_table(REQUIREMENTS)?
            .insert(key, req.encode()?.as_slice())?;
        Ok(())
    }

    fn compact(&mut self, now: u64, feed_before: u64) -> Result<Compacted, StoreError> {
        let mut done = Compacted::default();
        {
            let mut t = self.txn.open_table(REVOCATIONS)?;
            let expired: Vec<Vec<u8>> = t
                .iter()?
                .filter_map(|r| match r {
                    Ok((k, v)) => match DenyEntry::decode(v.value()) {
                        Ok(e) if e.expires <= now => Some(Ok(k.value().to_vec())),
                        Ok(_) => None,
                        Err(e) => Some(Err(e)),
                    },
                    Err(e) => Some(Err(e.into())),
                })
                .collect::<Result<_, StoreError>>()?;
            for id in expired {
                t.remove(id.as_slice())?;
                done.revocations += 1;
            }
        }
        let mut horizon = self.counter("feed_horizon")?;
        {
            let mut t = self.txn.open_table(FEED)?;
            let mut gone = Vec::new();
            for row in t.iter()? {
                let (k, v) = row?;
                let row = FeedRow::decode(v.value())?;
                if row.time < feed_before {
                    horizon = horizon.max(k.value());
                    gone.push(k.value());
                } else if row.expires().is_some_and(|e| e <= now) {
                    gone.push(k.value());
                }
            }
            for seq in gone {
                t.remove(seq)?;
                done.feed += 1;
            }
        }
        self.set_counter("feed_horizon", horizon)?;
        {
            let mut t = self.txn.open_table(ID_TOKEN_USES)?;
            let mut gone: Vec<(String, String)> = Vec::new();
            for row in t.iter()? {
                let (_, v) = row?;
                let used = IdTokenUse::decode(v.value())?;
                if used.until <= now {
                    gone.push((used.issuer, used.jti));
                }
            }
            for (issuer, jti) in &gone {
                t.remove((issuer.as_str(), jti.as_str()))?;
            }
            done.id_token_uses = gone.len();
        }
        done.oauth = self.compact_oauth(now)?;
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
