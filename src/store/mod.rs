//! The redb schema and typed access to it: the only place that opens tables. Records
//! are postcard, decoded strictly (no trailing bytes; re-encoding gives the same bytes).

use std::net::IpAddr;
use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::token::TokenId;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const ORGS: TableDefinition<&str, &[u8]> = TableDefinition::new("orgs");
const KEYS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("root_keys");
const TOKENS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("tokens");
const ORG_TOKENS: TableDefinition<(&str, &[u8]), ()> = TableDefinition::new("org_tokens");
const REVOKED: TableDefinition<&[u8], u64> = TableDefinition::new("revoked");
const AUDIT: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("audit");

/// The schema version written on creation.
const SCHEMA_VERSION: &[u8] = b"1";

/// The page cache: small, so the server's memory stays small.
const CACHE_BYTES: usize = 8 * 1024 * 1024;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("database error: {0}")]
    Db(#[from] redb::Error),
    /// A record does not decode.
    #[error("corrupt {0} record")]
    Corrupt(&'static str),
    /// The thing to create exists already.
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The database was written by a build with another schema.
    #[error("the database has schema version {0}; this build reads version 1 only")]
    Schema(String),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// An org and its settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgRecord {
    /// Its name.
    pub name: String,
    /// Unix seconds.
    pub created: u64,
    /// The root-key version used for minting.
    pub current_key: u32,
    /// Longest lifetime of a token minted in it, seconds.
    pub max_expiry_secs: Option<u64>,
}

/// A root key, wrapped by the master key (never stored in the clear).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Its version.
    pub version: u32,
    /// nonce || XChaCha20-Poly1305 ciphertext, AAD = org and version.
    pub wrapped: Vec<u8>,
    /// Unix seconds.
    pub created: u64,
    /// When it was retired, unix seconds.
    pub retired: Option<u64>,
}

impl std::fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRecord")
            .field("version", &self.version)
            .field("created", &self.created)
            .field("retired", &self.retired)
            .finish_non_exhaustive()
    }
}

/// The preset a token was minted as. Append-only: new kinds go at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenKind {
    /// Manages one org.
    Org,
    /// CI/CD for one app.
    Deploy,
    /// Looks, never changes or reveals.
    Readonly,
    /// Reads one app's secrets at boot.
    Runtime,
    /// Creates orgs.
    Operator,
}

impl TokenKind {
    /// The lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            TokenKind::Org => "org",
            TokenKind::Deploy => "deploy",
            TokenKind::Readonly => "readonly",
            TokenKind::Runtime => "runtime",
            TokenKind::Operator => "operator",
        }
    }
}

/// When, from where and with what a token was last used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastUsed {
    /// Unix seconds.
    pub time: u64,
    /// The client address.
    pub ip: Option<IpAddr>,
    /// The client's User-Agent (truncated).
    pub user_agent: Option<String>,
}

/// The ledger's record of a minted token: never the token itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Its id.
    pub id: TokenId,
    /// Its org.
    pub org: String,
    /// Its name.
    pub name: String,
    /// Its preset.
    pub kind: TokenKind,
    /// Its app (deploy and runtime).
    pub app: Option<String>,
    /// Its caveats as minted, canonical text.
    pub caveats: Vec<String>,
    /// The root-key version it was minted under.
    pub key_version: u32,
    /// Unix seconds.
    pub created: u64,
    /// The id of the token that minted it.
    pub creator: Option<TokenId>,
    /// Unix seconds.
    pub expires: u64,
    /// First 12 hex digits of SHA-256 over the minted text.
    pub fingerprint: String,
    /// Unix seconds.
    pub revoked: Option<u64>,
    /// Its last use.
    pub last_used: Option<LastUsed>,
}

/// Whether an audited action succeeded. Append-only enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// It happened.
    Ok,
    /// A caveat denied it.
    Denied,
}

/// One audit event. Never holds a token, key or secret value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the org's log (assigned on append).
    pub seq: u64,
    /// Unix seconds.
    pub time: u64,
    /// The org.
    pub org: String,
    /// What happened, e.g. `token.mint`.
    pub action: String,
    /// The acting token.
    pub actor: Option<TokenId>,
    /// The client address.
    pub source_ip: Option<IpAddr>,
    /// Whether it happened.
    pub outcome: Outcome,
    /// Details for people.
    pub detail: String,
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    postcard::to_allocvec(value).map_err(|_| StoreError::Corrupt("unencodable"))
}

fn decode<T: Serialize + DeserializeOwned>(
    bytes: &[u8],
    what: &'static str,
) -> Result<T, StoreError> {
    let (value, rest) =
        postcard::take_from_bytes::<T>(bytes).map_err(|_| StoreError::Corrupt(what))?;
    if !rest.is_empty() || encode(&value)? != bytes {
        return Err(StoreError::Corrupt(what));
    }
    Ok(value)
}

/// The embedded database.
pub struct Store {
    db: Database,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

/// A write transaction with typed access; committed by [`Store::write`].
pub struct Writer<'s> {
    txn: redb::WriteTransaction,
    _store: std::marker::PhantomData<&'s Store>,
}

impl Store {
    /// Opens (creating if needed) the database file.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)?;
        let store = Store { db };
        store.write(|w| {
            // Create every table, so that readers never meet a missing one.
            let mut meta = w.txn.open_table(META)?;
            let schema = meta.get("schema")?.map(|v| v.value().to_vec());
            match schema {
                None => {
                    meta.insert("schema", SCHEMA_VERSION)?;
                }
                Some(v) if v == SCHEMA_VERSION => {}
                // Another layout: refuse rather than misread it.
                Some(v) => return Err(StoreError::Schema(String::from_utf8_lossy(&v).into())),
            }
            drop(meta);
            w.txn.open_table(ORGS)?;
            w.txn.open_table(KEYS)?;
            w.txn.open_table(TOKENS)?;
            w.txn.open_table(ORG_TOKENS)?;
            w.txn.open_table(REVOKED)?;
            w.txn.open_table(AUDIT)?;
            Ok::<_, StoreError>(())
        })?;
        Ok(store)
    }

    /// Runs `f` in one write transaction: committed if it returns `Ok`, else abandoned.
    pub fn write<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut Writer<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let txn = self.db.begin_write().map_err(StoreError::from)?;
        let mut w = Writer {
            txn,
            _store: std::marker::PhantomData,
        };
        let out = f(&mut w)?;
        w.txn.commit().map_err(StoreError::from)?;
        Ok(out)
    }

    fn read_txn(&self) -> Result<redb::ReadTransaction, StoreError> {
        Ok(self.db.begin_read()?)
    }

    /// An org.
    pub fn org(&self, name: &str) -> Result<Option<OrgRecord>, StoreError> {
        let t = self.read_txn()?.open_table(ORGS)?;
        t.get(name)?.map(|v| decode(v.value(), "org")).transpose()
    }

    /// Every root key of every org (to load the in-memory cache).
    pub fn all_keys(&self) -> Result<Vec<(String, KeyRecord)>, StoreError> {
        let t = self.read_txn()?.open_table(KEYS)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (k, v) = row?;
            out.push((k.value().0.to_owned(), decode(v.value(), "key")?));
        }
        Ok(out)
    }

    /// The root keys of one org, oldest first.
    pub fn keys(&self, org: &str) -> Result<Vec<KeyRecord>, StoreError> {
        let t = self.read_txn()?.open_table(KEYS)?;
        let mut out = Vec::new();
        for row in t.range((org, 0)..=(org, u32::MAX))? {
            out.push(decode(row?.1.value(), "key")?);
        }
        Ok(out)
    }

    /// A ledger record.
    pub fn token(&self, id: &TokenId) -> Result<Option<TokenRecord>, StoreError> {
        let t = self.read_txn()?.open_table(TOKENS)?;
        t.get(&id.0[..])?
            .map(|v| decode(v.value(), "token"))
            .transpose()
    }

    /// The ledger of one org, oldest first.
    pub fn tokens(&self, org: &str) -> Result<Vec<TokenRecord>, StoreError> {
        let txn = self.read_txn()?;
        let index = txn.open_table(ORG_TOKENS)?;
        let tokens = txn.open_table(TOKENS)?;
        let mut out = Vec::new();
        let end = [0xffu8; 17];
        for row in index.range((org, &[][..])..(org, &end[..]))? {
            let (k, _) = row?;
            let (_, id) = k.value();
            if let Some(v) = tokens.get(id)? {
                out.push(decode::<TokenRecord>(v.value(), "token")?);
            }
        }
        out.sort_by_key(|r| (r.created, r.id));
        Ok(out)
    }

    /// Every revoked token id (to load the in-memory deny-list).
    pub fn revoked(&self) -> Result<Vec<TokenId>, StoreError> {
        let t = self.read_txn()?.open_table(REVOKED)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (k, _) = row?;
            let id: [u8; 16] = k
                .value()
                .try_into()
                .map_err(|_| StoreError::Corrupt("revocation"))?;
            out.push(TokenId(id));
        }
        Ok(out)
    }

    /// The last `limit` audit events of an org, oldest first.
    pub fn audit(&self, org: &str, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        let t = self.read_txn()?.open_table(AUDIT)?;
        let mut out = Vec::new();
        for row in t.range((org, 0)..=(org, u64::MAX))?.rev().take(limit) {
            out.push(decode(row?.1.value(), "audit")?);
        }
        out.reverse();
        Ok(out)
    }
}

impl Writer<'_> {
    /// An org, read inside this transaction.
    pub fn org(&self, name: &str) -> Result<Option<OrgRecord>, StoreError> {
        let t = self.txn.open_table(ORGS)?;
        let v = t.get(name)?;
        v.map(|v| decode(v.value(), "org")).transpose()
    }

    /// Inserts a new org; `Conflict` if it exists.
    pub fn create_org(&mut self, org: &OrgRecord) -> Result<(), StoreError> {
        if self.org(&org.name)?.is_some() {
            return Err(StoreError::Conflict("org"));
        }
        self.put_org(org)
    }

    /// Writes an org's record.
    pub fn put_org(&mut self, org: &OrgRecord) -> Result<(), StoreError> {
        self.txn
            .open_table(ORGS)?
            .insert(org.name.as_str(), encode(org)?.as_slice())?;
        Ok(())
    }

    /// A root key, read inside this transaction.
    pub fn key(&self, org: &str, version: u32) -> Result<Option<KeyRecord>, StoreError> {
        let t = self.txn.open_table(KEYS)?;
        let v = t.get((org, version))?;
        v.map(|v| decode(v.value(), "key")).transpose()
    }

    /// The highest key version of an org.
    pub fn last_key_version(&self, org: &str) -> Result<Option<u32>, StoreError> {
        let t = self.txn.open_table(KEYS)?;
        let last = t
            .range((org, 0)..=(org, u32::MAX))?
            .next_back()
            .transpose()?;
        Ok(last.map(|(k, _)| k.value().1))
    }

    /// Writes a root key's record.
    pub fn put_key(&mut self, org: &str, key: &KeyRecord) -> Result<(), StoreError> {
        self.txn
            .open_table(KEYS)?
            .insert((org, key.version), encode(key)?.as_slice())?;
        Ok(())
    }

    /// A ledger record, read inside this transaction.
    pub fn token(&self, id: &TokenId) -> Result<Option<TokenRecord>, StoreError> {
        let t = self.txn.open_table(TOKENS)?;
        let v = t.get(&id.0[..])?;
        v.map(|v| decode(v.value(), "token")).transpose()
    }

    /// Writes a ledger record (and its org index entry).
    pub fn put_token(&mut self, rec: &TokenRecord) -> Result<(), StoreError> {
        self.txn
            .open_table(TOKENS)?
            .insert(&rec.id.0[..], encode(rec)?.as_slice())?;
        self.txn
            .open_table(ORG_TOKENS)?
            .insert((rec.org.as_str(), &rec.id.0[..]), ())?;
        Ok(())
    }

    /// Adds a token id to the persistent deny-list.
    pub fn put_revoked(&mut self, id: &TokenId, time: u64) -> Result<(), StoreError> {
        self.txn.open_table(REVOKED)?.insert(&id.0[..], time)?;
        Ok(())
    }

    /// Appends an audit event, assigning its sequence number.
    pub fn append_audit(&mut self, mut event: AuditRecord) -> Result<(), StoreError> {
        let mut t = self.txn.open_table(AUDIT)?;
        let org = event.org.clone();
        let last = t
            .range((org.as_str(), 0)..=(org.as_str(), u64::MAX))?
            .next_back()
            .transpose()?;
        event.seq = last.map_or(1, |(k, _)| k.value().1 + 1);
        t.insert((org.as_str(), event.seq), encode(&event)?.as_slice())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        let store = Store::open(&path).unwrap();
        store
            .write(|w| {
                w.txn.open_table(META)?.insert("schema", b"2".as_slice())?;
                Ok::<_, StoreError>(())
            })
            .unwrap();
        drop(store);
        let e = Store::open(&path).err().unwrap();
        assert!(matches!(&e, StoreError::Schema(v) if v == "2"), "{e}");
        // The version this build writes opens again.
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(&dir.path().join("db.redb")).unwrap());
        Store::open(&dir.path().join("db.redb")).unwrap();
    }

    fn token(id: u8, org: &str, created: u64) -> TokenRecord {
        TokenRecord {
            id: TokenId([id; 16]),
            org: org.into(),
            name: "t".into(),
            kind: TokenKind::Deploy,
            app: Some("web".into()),
            caveats: vec!["org = acme".into()],
            key_version: 1,
            created,
            creator: None,
            expires: created + 10,
            fingerprint: "abc".into(),
            revoked: None,
            last_used: None,
        }
    }

    #[test]
    fn records_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        {
            let s = Store::open(&path).unwrap();
            s.write(|w| {
                w.create_org(&OrgRecord {
                    name: "acme".into(),
                    created: 1,
                    current_key: 1,
                    max_expiry_secs: None,
                })?;
                w.put_token(&token(2, "acme", 5))?;
                w.put_token(&token(1, "acme", 3))?;
                w.put_token(&token(3, "beta", 4))?;
                w.put_revoked(&TokenId([2; 16]), 9)?;
                for _ in 0..3 {
                    w.append_audit(AuditRecord {
                        seq: 0,
                        time: 1,
                        org: "acme".into(),
                        action: "token.mint".into(),
                        actor: None,
                        source_ip: None,
                        outcome: Outcome::Ok,
                        detail: String::new(),
                    })?;
                }
                Ok::<_, StoreError>(())
            })
            .unwrap();
        }
        let s = Store::open(&path).unwrap();
        assert_eq!(s.org("acme").unwrap().unwrap().current_key, 1);
        let ids: Vec<_> = s
            .tokens("acme")
            .unwrap()
            .iter()
            .map(|r| r.id.0[0])
            .collect();
        assert_eq!(ids, [1, 2]);
        assert_eq!(s.revoked().unwrap(), [TokenId([2; 16])]);
        let seqs: Vec<_> = s.audit("acme", 2).unwrap().iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [2, 3]);
        let dup = s.write(|w| {
            w.create_org(&OrgRecord {
                name: "acme".into(),
                created: 2,
                current_key: 1,
                max_expiry_secs: None,
            })
        });
        assert!(matches!(dup, Err(StoreError::Conflict("org"))));
    }

    #[test]
    fn strict_decoding() {
        let rec = OrgRecord {
            name: "acme".into(),
            created: 1,
            current_key: 1,
            max_expiry_secs: None,
        };
        let mut bytes = encode(&rec).unwrap();
        assert_eq!(decode::<OrgRecord>(&bytes, "org").unwrap(), rec);
        bytes.push(0);
        assert!(decode::<OrgRecord>(&bytes, "org").is_err());
        // `created` = 1 as an overlong varint.
        let overlong = [4, b'a', b'c', b'm', b'e', 0x81, 0x00, 1, 0];
        assert!(decode::<OrgRecord>(&overlong, "org").is_err());
    }
}
