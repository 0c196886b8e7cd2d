//! Creating the tables of the current schema, and upgrading older files to it.

use redb::{ReadableTable, TableDefinition, WriteTransaction};

use crate::model::{App, LastUsed, TokenId, TokenKind, TokenRecord};
use crate::store::rows::Stored;
use crate::store::{DenyEntry, OpenError, SCHEMA_COMPAT, SCHEMA_VERSION, StoreError, Tx, legacy};

use super::writes::RedbTx;
use super::{
    ALLOWED_ENV, APPS, AUDIT, AUDIT_COUNTS, CHILDREN, FEED, ID_TOKEN_USES, KEYS, LAST_USED, LEASES,
    META, OAUTH_CLIENTS, OAUTH_GRANTS, OAUTH_KEYS, OAUTH_SPENT, ORG_TOKENS, ORGS, REQUIREMENTS,
    REVOCATIONS, RedbStore, SECRET_BLIND_WRITES, SECRET_COUNTERS, SECRET_HEADS, SECRET_KEYS,
    SECRET_VERSIONS, THIRD_PARTIES, THIRD_PARTY_KEYS, THIRD_PARTY_LOCATIONS, TOKENS, number,
};

/// Version 1's deny-list (token id → revocation time), replaced by `revocations`.
const REVOKED_V1: TableDefinition<&[u8], u64> = TableDefinition::new("revoked");

impl RedbStore {
    /// Brings the schema to [`SCHEMA_VERSION`] in one transaction.
    pub(super) fn upgrade(&self) -> Result<(), OpenError> {
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
