//! The SQL of each store operation: a transaction's reads ([`Read`]) and writes
//! ([`Tx`]) on PostgreSQL, statement by statement, each driven with `Handle::block_on`
//! on the blocking pool. A serialization failure marks the body for another run.

use tokio::runtime::Handle;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::super::rows::{FeedRow, Stored};
use super::super::{
    Compacted, DenyEntry, FeedHead, IdTokenUse, Lease, Read, Recorded, StoreError, Tx, VersionKey,
};
use super::{int, pg_err, retryable, uint};
use crate::model::{
    App, AuditEvent, Change, FeedEntry, LastUsed, LedgerEntry, OAuthClient, OAuthGrant, OAuthKey,
    Org, Requirement, RootKeyVersion, SecretHead, SecretKeys, SecretVersion, ThirdParty, TokenId,
    TokenRecord,
};
use crate::token::KeyId;

pub(super) struct PgTx<'r> {
    txn: &'r deadpool_postgres::ClientWrapper,
    h: &'r Handle,
    pub(super) changes: Vec<FeedEntry>,
    /// A statement failed with a serialization failure: re-run the body.
    pub(super) retry: bool,
}

impl<'r> PgTx<'r> {
    pub(super) fn new(txn: &'r deadpool_postgres::ClientWrapper, h: &'r Handle) -> Self {
        PgTx {
            txn,
            h,
            changes: Vec::new(),
            retry: false,
        }
    }

    fn fail(&mut self, e: tokio_postgres::Error) -> StoreError {
        if retryable(&e) {
            self.retry = true;
        }
        pg_err(e)
    }

    fn query(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, StoreError> {
        let txn = self.txn;
        let r = self.h.block_on(async {
            let st = txn.prepare_cached(sql).await?;
            txn.query(&st, params).await
        });
        r.map_err(|e| self.fail(e))
    }

    fn execute(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        let txn = self.txn;
        let r = self.h.block_on(async {
            let st = txn.prepare_cached(sql).await?;
            txn.execute(&st, params).await
        });
        r.map_err(|e| self.fail(e))
    }

    /// A scope's number in `table` (`macvault_secret_counters` or
    /// `macvault_secret_blind_writes`: `org`, `app`, `value`), 0 when it has none.
    fn scope_number(
        &mut self,
        table: &str,
        org: &str,
        app: Option<&str>,
    ) -> Result<u64, StoreError> {
        let sql = format!("SELECT value FROM {table} WHERE org = $1 AND app = $2");
        let rows = self.query(&sql, &[&org, &scope(app)])?;
        match rows.first() {
            Some(r) => Ok(uint(r.try_get(0).map_err(|e| self.fail(e))?)),
            None => Ok(0),
        }
    }

    /// Adds one to a scope's number in `table`; the new value.
    fn bump_scope_number(
        &mut self,
        table: &str,
        org: &str,
        app: Option<&str>,
    ) -> Result<u64, StoreError> {
        let sql = format!(
            "INSERT INTO {table} (org, app, value) VALUES ($1, $2, 1) \
             ON CONFLICT (org, app) DO UPDATE SET value = {table}.value + 1 RETURNING value"
        );
        let rows = self.query(&sql, &[&org, &scope(app)])?;
        match rows.first() {
            Some(r) => Ok(uint(r.try_get(0).map_err(|e| self.fail(e))?)),
            None => Err(StoreError::Internal(format!(
                "no value returned by {table}"
            ))),
        }
    }

    /// Sets a scope's number in `table`.
    fn set_scope_number(
        &mut self,
        table: &str,
        org: &str,
        app: Option<&str>,
        value: u64,
    ) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO {table} (org, app, value) VALUES ($1, $2, $3) \
             ON CONFLICT (org, app) DO UPDATE SET value = excluded.value"
        );
        self.execute(&sql, &[&org, &scope(app), &int(value)])?;
        Ok(())
    }

    fn rows<T: Stored>(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<T>, StoreError> {
        self.query(sql, params)?
            .iter()
            .map(|r| T::decode(r.try_get::<_, &[u8]>(0).map_err(|e| self.fail(e))?))
            .collect()
    }

    fn one<T: Stored>(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<T>, StoreError> {
        Ok(self.rows(sql, params)?.into_iter().next())
    }

    /// Indexes a third party's key ids anew: those it no longer holds go, and a key
    /// id another third party holds is a conflict.
    fn index_third_party_keys(&mut self, tp: &ThirdParty) -> Result<(), StoreError> {
        self.execute(
            "DELETE FROM macvault_third_party_keys WHERE org = $1 AND name = $2",
            &[&tp.org, &tp.name],
        )?;
        for key in &tp.keys {
            let added = self.execute(
                "INSERT INTO macvault_third_party_keys (kid, org, name) VALUES ($1, $2, $3) \
                 ON CONFLICT (kid) DO NOTHING",
                &[&&key.id.0[..], &tp.org, &tp.name],
            )?;
            if added == 0 {
                return Err(StoreError::Conflict("third-party key"));
            }
        }
        Ok(())
    }

    fn audit_rows(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = self.query(sql, params)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: i64 = r.try_get(0).map_err(|e| self.fail(e))?;
            let mut event = AuditEvent::decode(r.try_get(1).map_err(|e| self.fail(e))?)?;
            event.seq = uint(id);
            let count: Option<i64> = r.try_get(2).map_err(|e| self.fail(e))?;
            let last: Option<i64> = r.try_get(3).map_err(|e| self.fail(e))?;
            if let (Some(count), Some(last)) = (count, last) {
                event = event.times(uint(count), uint(last));
            }
            out.push(event);
        }
        Ok(out)
    }
}

/// An org's own secrets are kept under the app '' (app names are never empty).
fn scope(app: Option<&str>) -> &str {
    app.unwrap_or("")
}

fn token_id(bytes: &[u8]) -> Result<TokenId, StoreError> {
    let id: [u8; 16] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("token id".into()))?;
    Ok(TokenId(id))
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Read for PgTx<'_> {
    fn org(&mut self, name: &str) -> Result<Option<Org>, StoreError> {
        self.one("SELECT row FROM macvault_orgs WHERE name = $1", &[&name])
    }

    fn orgs(&mut self) -> Result<Vec<Org>, StoreError> {
        self.rows("SELECT row FROM macvault_orgs ORDER BY name", &[])
    }

    fn key(&mut self, org: &str, version: u32) -> Result<Option<RootKeyVersion>, StoreError> {
        self.one(
            "SELECT row FROM macvault_root_keys WHERE org = $1 AND version = $2",
            &[&org, &i64::from(version)],
        )
    }

    fn keys(&mut self, org: &str) -> Result<Vec<RootKeyVersion>, StoreError> {
        self.rows(
            "SELECT row FROM macvault_root_keys WHERE org = $1 ORDER BY version",
            &[&org],
        )
    }

    fn all_keys(&mut self) -> Result<Vec<RootKeyVersion>, StoreError> {
        self.rows(
            "SELECT row FROM macvault_root_keys ORDER BY org, version",
            &[],
        )
    }

    fn token(&mut self, id: &TokenId) -> Result<Option<TokenRecord>, StoreError> {
        self.one(
            "SELECT row FROM macvault_tokens WHERE id = $1",
            &[&&id.0[..]],
        )
    }

    fn ledger(&mut self, org: &str) -> Result<Vec<LedgerEntry>, StoreError> {
        let rows = self.query(
            "SELECT t.row, u.row FROM macvault_tokens t \
             LEFT JOIN macvault_last_used u ON u.token_id = t.id \
             WHERE t.org = $1 ORDER BY t.created, t.id",
            &[&org],
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let record = TokenRecord::decode(r.try_get(0).map_err(|e| self.fail(e))?)?;
            let used: Option<&[u8]> = r.try_get(1).map_err(|e| self.fail(e))?;
            let last_used = used.map(LastUsed::decode).transpose()?;
            out.push(LedgerEntry { record, last_used });
        }
        Ok(out)
    }

    fn children(&mut self, parent: &TokenId) -> Result<Vec<TokenId>, StoreError> {
        let rows = self.query(
            "SELECT id FROM macvault_tokens WHERE parent = $1 ORDER BY id",
            &[&&parent.0[..]],
        )?;
        rows.iter()
            .map(|r| token_id(r.try_get(0).map_err(|e| self.fail(e))?))
            .collect()
    }

    fn last_used(&mut self, id: &TokenId) -> Result<Option<LastUsed>, StoreError> {
        self.one(
            "SELECT row FROM macvault_last_used WHERE token_id = $1",
            &[&&id.0[..]],
        )
    }

    fn revocations(&mut self) -> Result<Vec<(TokenId, DenyEntry)>, StoreError> {
        let rows = self.query(
            "SELECT token_id, effective, expires FROM macvault_revocations",
            &[],
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let id = token_id(r.try_get(0).map_err(|e| self.fail(e))?)?;
            let effective: i64 = r.try_get(1).map_err(|e| self.fail(e))?;
            let expires: i64 = r.try_get(2).map_err(|e| self.fail(e))?;
            out.push((
                id,
                DenyEntry {
                    effective: uint(effective),
                    expires: uint(expires),
                },
            ));
        }
        Ok(out)
    }

    fn audit_before(
        &mut self,
        org: &str,
        before: Option<u64>,
        n: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let before = int(before.unwrap_or(u64::MAX));
        self.audit_rows(
            "SELECT id, row, count, last_time FROM macvault_audit WHERE org = $1 AND id < $2 \
             ORDER BY id DESC LIMIT $3",
            &[&org, &before, &limit(n)],
        )
    }

    fn audit_after(
        &mut self,
        org: &str,
        after: u64,
        n: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        self.audit_rows(
            "SELECT id, row, count, last_time FROM macvault_audit WHERE org = $1 AND id > $2 \
             ORDER BY id LIMIT $3",
            &[&org, &int(after), &limit(n)],
        )
    }

    fn feed_head(&mut self) -> Result<FeedHead, StoreError> {
        let rows = self.query(
            "SELECT seq, horizon FROM macvault_feed_head WHERE id = 1",
            &[],
        )?;
        let Some(r) = rows.first() else {
            return Err(StoreError::Corrupt("feed head".into()));
        };
        let head: i64 = r.try_get(0).map_err(|e| self.fail(e))?;
        let horizon: i64 = r.try_get(1).map_err(|e| self.fail(e))?;
        Ok(FeedHead {
            head: uint(head),
            horizon: uint(horizon),
        })
    }

    fn feed_after(&mut self, after: u64, n: usize) -> Result<Vec<FeedEntry>, StoreError> {
        let rows = self.query(
            "SELECT seq, row FROM macvault_feed WHERE seq > $1 ORDER BY seq LIMIT $2",
            &[&int(after), &limit(n)],
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let seq: i64 = r.try_get(0).map_err(|e| self.fail(e))?;
            let row = FeedRow::decode(r.try_get(1).map_err(|e| self.fail(e))?)?;
            out.push(FeedEntry {
                seq: uint(seq),
                change: row.change.into(),
            });
        }
        Ok(out)
    }

    fn master_check(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        let rows = self.query(
            "SELECT value FROM macvault_meta WHERE key = 'master_check'",
            &[],
        )?;
        rows.first()
            .map(|r| r.try_get::<_, Vec<u8>>(0).map_err(|e| self.fail(e)))
            .transpose()
    }

    fn secret_keys(&mut self, org: &str) -> Result<Option<SecretKeys>, StoreError> {
        self.one(
            "SELECT row FROM macvault_secret_keys WHERE org = $1",
            &[&org],
        )
    }

    fn secret_head(
        &mut self,
        org: &str,
        app: Option<&str>,
        name: &str,
    ) -> Result<Option<SecretHead>, StoreError> {
        self.one(
            "SELECT row FROM macvault_secret_heads WHERE org = $1 AND app = $2 AND name = $3",
            &[&org, &scope(app), &name],
        )
    }

    fn secret_heads(
        &mut self,
        org: &str,
        app: Option<&str>,
    ) -> Result<Vec<SecretHead>, StoreError> {
        self.rows(
            "SELECT row FROM macvault_secret_heads WHERE org = $1 AND app = $2 ORDER BY name",
            &[&org, &scope(app)],
        )
    }

    fn secret_apps(&mut self, org: &str) -> Result<Vec<String>, StoreError> {
        let rows = self.query(
            "SELECT app FROM macvault_secret_counters WHERE org = $1 AND app <> '' ORDER BY app",
            &[&org],
        )?;
        rows.iter()
            .map(|r| r.try_get::<_, String>(0).map_err(|e| self.fail(e)))
            .collect()
    }

    fn count_secrets(&mut self, org: &str) -> Result<usize, StoreError> {
        let rows = self.query(
            "SELECT count(*) FROM macvault_secret_heads WHERE org = $1",
            &[&org],
        )?;
        let n: i64 = match rows.first() {
            Some(r) => r.try_get(0).map_err(|e| self.fail(e))?,
            None => 0,
        };
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    fn secret_stored_bytes(&mut self, org: &str, app: Option<&str>) -> Result<u64, StoreError> {
        let rows = self.query(
            "SELECT COALESCE(sum(octet_length(row)), 0)::BIGINT FROM macvault_secret_versions \
             WHERE org = $1 AND app = $2",
            &[&org, &scope(app)],
        )?;
        let n: i64 = match rows.first() {
            Some(r) => r.try_get(0).map_err(|e| self.fail(e))?,
            None => 0,
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn secret_version(
        &mut self,
        org: &str,
        app: Option<&str>,
        name: &str,
        version: u64,
    ) -> Result<Option<SecretVersion>, StoreError> {
        self.one(
            "SELECT row FROM macvault_secret_versions \
             WHERE org = $1 AND app = $2 AND name = $3 AND version = $4",
            &[&org, &scope(app), &name, &int(version)],
        )
    }

    fn secret_versions(
        &mut self,
        org: &str,
        app: Option<&str>,
        name: &str,
    ) -> Result<Vec<SecretVersion>, StoreError> {
        self.rows(
            "SELECT row FROM macvault_secret_versions \
             WHERE org = $1 AND app = $2 AND name = $3 ORDER BY version",
            &[&org, &scope(app), &name],
        )
    }

    fn secret_current(
        &mut self,
        org: &str,
        app: Option<&str>,
    ) -> Result<Vec<(SecretHead, Option<SecretVersion>)>, StoreError> {
        let rows = self.query(
            "SELECT h.row, v.row FROM macvault_secret_heads h LEFT JOIN macvault_secret_versions v \
             ON v.org = h.org AND v.app = h.app AND v.name = h.name AND v.version = h.version \
             WHERE h.org = $1 AND h.app = $2 AND NOT h.unset ORDER BY h.name COLLATE \"C\"",
            &[&org, &scope(app)],
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let head: &[u8] = r.try_get(0).map_err(|e| self.fail(e))?;
            let version: Option<&[u8]> = r.try_get(1).map_err(|e| self.fail(e))?;
            out.push((
                SecretHead::decode(head)?,
                version.map(SecretVersion::decode).transpose()?,
            ));
        }
        Ok(out)
    }

    fn secret_versions_after(
        &mut self,
        org: &str,
        after: Option<&VersionKey>,
        limit: usize,
    ) -> Result<Vec<SecretVersion>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        match after {
            Some(k) => self.rows(
                "SELECT row FROM macvault_secret_versions WHERE org = $1 \
                 AND (app COLLATE \"C\", name COLLATE \"C\", version) > ($2, $3, $4) \
                 ORDER BY app COLLATE \"C\", name COLLATE \"C\", version LIMIT $5",
                &[
                    &org,
                    &scope(k.app.as_deref()),
                    &k.name,
                    &int(k.version),
                    &limit,
                ],
            ),
            None => self.rows(
                "SELECT row FROM macvault_secret_versions WHERE org = $1 \
                 ORDER BY app COLLATE \"C\", name COLLATE \"C\", version LIMIT $2",
                &[&org, &limit],
            ),
        }
    }

    fn allowed_env(&mut self, org: &str) -> Result<Vec<(Option<String>, String)>, StoreError> {
        let rows = self.query(
            "SELECT app, name FROM macvault_allowed_env WHERE org = $1 ORDER BY app, name",
            &[&org],
        )?;
        rows.iter()
            .map(|r| {
                let app: String = r.try_get(0).map_err(|e| self.fail(e))?;
                let name: String = r.try_get(1).map_err(|e| self.fail(e))?;
                Ok(((!app.is_empty()).then_some(app), name))
            })
            .collect()
    }

    fn lease(&mut self, name: &str) -> Result<Option<Lease>, StoreError> {
        let rows = self.query(
            "SELECT holder, until FROM macvault_leases WHERE name = $1",
            &[&name],
        )?;
        match rows.first() {
            Some(r) => Ok(Some(Lease {
                holder: r.try_get(0).map_err(|e| self.fail(e))?,
                until: uint(r.try_get(1).map_err(|e| self.fail(e))?),
            })),
            None => Ok(None),
        }
    }

    fn third_party(&mut self, org: &str, name: &str) -> Result<Option<ThirdParty>, StoreError> {
        self.one(
            "SELECT row FROM macvault_third_parties WHERE org = $1 AND name = $2",
            &[&org, &name],
        )
    }

    fn third_parties(&mut self, org: &str) -> Result<Vec<ThirdParty>, StoreError> {
        self.rows(
            "SELECT row FROM macvault_third_parties WHERE org = $1 ORDER BY name",
            &[&org],
        )
    }

    fn third_parties_at(&mut self, path: &str) -> Result<Vec<ThirdParty>, StoreError> {
        self.rows(
            "SELECT row FROM macvault_third_parties WHERE location_path = $1 ORDER BY org, name",
            &[&path],
        )
    }

    fn third_party_by_key(&mut self, id: KeyId) -> Result<Option<ThirdParty>, StoreError> {
        self.one(
            "SELECT t.row FROM macvault_third_parties t JOIN macvault_third_party_keys k \
             ON k.org = t.org AND k.name = t.name WHERE k.kid = $1",
            &[&&id.0[..]],
        )
    }

    fn requirements(
        &mut self,
        org: &str,
        third_party: &str,
    ) -> Result<Vec<Requirement>, StoreError> {
        self.rows(
            "SELECT row FROM macvault_third_party_requirements \
             WHERE org = $1 AND third_party = $2 ORDER BY token_id",
            &[&org, &third_party],
        )
    }

    fn app(&mut self, org: &str, name: &str) -> Result<Option<App>, StoreError> {
        self.one(
            "SELECT row FROM macvault_apps WHERE org = $1 AND name = $2",
            &[&org, &name],
        )
    }

    fn apps(&mut self, org: &str) -> Result<Vec<App>, StoreError> {
        self.rows(
            "SELECT row FROM macvault_apps WHERE org = $1 ORDER BY name",
            &[&org],
        )
    }

    fn oauth_client(&mut self, id: &str) -> Result<Option<OAuthClient>, StoreError> {
        self.one(
            "SELECT row FROM macvault_oauth_clients WHERE id = $1",
            &[&id],
        )
    }

    fn oauth_clients(&mut self, org: &str) -> Result<Vec<OAuthClient>, StoreError> {
        self.rows(
            "SELECT row FROM macvault_oauth_clients WHERE org = $1 ORDER BY id",
            &[&org],
        )
    }

    fn id_token_uses(&mut self) -> Result<Vec<IdTokenUse>, StoreError> {
        self.rows(
            "SELECT row FROM macvault_id_token_uses ORDER BY issuer, jti",
            &[],
        )
    }

    fn oauth_grant(&mut self, id: &str) -> Result<Option<OAuthGrant>, StoreError> {
        self.one(
            "SELECT row FROM macvault_oauth_grants WHERE id = $1",
            &[&id],
        )
    }

    fn oauth_grants(&mut self, org: &str) -> Result<Vec<OAuthGrant>, StoreError> {
        self.rows(
            "SELECT row FROM macvault_oauth_grants WHERE org = $1 ORDER BY id",
            &[&org],
        )
    }

    fn oauth_key(&mut self, hash: &[u8; 32]) -> Result<Option<OAuthKey>, StoreError> {
        self.one(
            "SELECT row FROM macvault_oauth_keys WHERE hash = $1",
            &[&&hash[..]],
        )
    }

    fn oauth_keys(&mut self) -> Result<Vec<(OAuthKey, bool)>, StoreError> {
        let keys: Vec<OAuthKey> =
            self.rows("SELECT row FROM macvault_oauth_keys ORDER BY hash", &[])?;
        let spent = self.query("SELECT hash FROM macvault_oauth_spent", &[])?;
        let mut set = std::collections::HashSet::new();
        for row in spent {
            let hash: Vec<u8> = row.try_get(0).map_err(|e| self.fail(e))?;
            set.insert(hash);
        }
        Ok(keys
            .into_iter()
            .map(|k| {
                let spent = set.contains(&k.hash[..]);
                (k, spent)
            })
            .collect())
    }

    fn secrets_counter(&mut self, org: &str, app: Option<&str>) -> Result<u64, StoreError> {
        self.scope_number("macvault_secret_counters", org, app)
    }

    fn secrets_blind_writes(&mut self, org: &str, app: Option<&str>) -> Result<u64, StoreError> {
        self.scope_number("macvault_secret_blind_writes", org, app)
    }
}

impl Tx for PgTx<'_> {
    fn insert_org(&mut self, org: &Org) -> Result<(), StoreError> {
        let n = self.execute(
            "INSERT INTO macvault_orgs (name, created, row) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
            &[&org.name, &int(org.created), &org.encode()?],
        )?;
        if n == 0 {
            return Err(StoreError::Conflict("org"));
        }
        Ok(())
    }

    fn put_org(&mut self, org: &Org) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO macvault_orgs (name, created, row) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET created = excluded.created, row = excluded.row",
            &[&org.name, &int(org.created), &org.encode()?],
        )?;
        Ok(())
    }

    fn put_key(&mut self, key: &RootKeyVersion) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO macvault_root_keys (org, version, created, retired, row) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (org, version) DO UPDATE SET \
             created = excluded.created, retired = excluded.retired, row = excluded.row",
            &[
                &key.org,
                &i64::from(key.version),
                &int(key.created),
                &key.retired.map(int),
                &key.encode()?,
            ],
        )?;
        Ok(())
    }

    fn put_token(&mut self, rec: &TokenRecord) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO macvault_tokens (id, org, kind, app, creator, parent, key_version, \
             created, expires, revoked_effective, row) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (id) DO UPDATE SET \
             org = excluded.org, kind = excluded.kind, app = excluded.app, \
             creator = excluded.creator, parent = excluded.parent, \
             key_version = excluded.key_version, created = excluded.created, \
             expires = excluded.expires, revoked_effective = excluded.revoked_effective, \
             row = excluded.row",
            &[
                &&rec.id.0[..],
                &rec.org,
                &rec.kind.name(),
                &rec.app,
                &rec.creator.as_ref().map(|c| &c.0[..]),
                &rec.parent.as_ref().map(|p| &p.0[..]),
                &i64::from(rec.key_version),
                &int(rec.created),
                &int(rec.expires),
                &rec.revoked.map(|r| int(r.effective)),
                &rec.encode()?,
            ],
        )?;
        Ok(())
    }

    fn delete_token(&mut self, id: &TokenId) -> Result<(), StoreError> {
        self.execute(
            "DELETE FROM macvault_last_used WHERE token_id = $1",
            &[&&id.0[..]],
        )?;
        self.execute("DELETE FROM macvault_tokens WHERE id = $1", &[&&id.0[..]])?;
        Ok(())
    }

    fn put_revocation(&mut self, id: &TokenId, entry: DenyEntry) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO macvault_revocations (token_id, effective, expires) VALUES ($1, $2, $3) \
             ON CONFLICT (token_id) DO UPDATE SET effective = excluded.effective, \
             expires = excluded.expires",
            &[&&id.0[..], &int(entry.effective), &int(entry.expires)],
        )?;
        Ok(())
    }

    fn record_use(&mut self, id: &TokenId, used: &LastUsed) -> Result<(), StoreError> {
        // Each node writes its own uses; the later one wins, and nothing else is touched.
        self.execute(
            "INSERT INTO macvault_last_used (token_id, time, row) VALUES ($1, $2, $3) \
             ON CONFLICT (token_id) DO UPDATE SET time = excluded.time, row = excluded.row \
             WHERE macvault_last_used.time <= excluded.time",
            &[&&id.0[..], &int(used.time), &used.encode()?],
        )?;
        Ok(())
    }

    fn prune_audit(&mut self, before: u64) -> Result<usize, StoreError> {
        let n = self.execute(
            "DELETE FROM macvault_audit a WHERE a.time < $1 \
             AND a.id < (SELECT max(b.id) FROM macvault_audit b WHERE b.org = a.org)",
            &[&int(before)],
        )?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    fn append_audit(&mut self, event: &AuditEvent) -> Result<u64, StoreError> {
        let (count, last) = if event.count > 1 {
            (Some(int(event.count)), Some(int(event.last)))
        } else {
            (None, None)
        };
        let rows = self.query(
            "INSERT INTO macvault_audit (org, time, action, outcome, actor, row, count, last_time) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            &[
                &event.org,
                &int(event.time),
                &event.action,
                &event.outcome.name(),
                &event.actor.as_ref().map(|a| &a.0[..]),
                &event.encode()?,
                &count,
                &last,
            ],
        )?;
        let id: i64 = rows
            .first()
            .ok_or_else(|| StoreError::Internal("an audit insert answered no id".into()))?
            .try_get(0)
            .map_err(|e| self.fail(e))?;
        Ok(uint(id))
    }

    fn amend_audit(
        &mut self,
        org: &str,
        seq: u64,
        count: u64,
        last: u64,
    ) -> Result<(), StoreError> {
        self.execute(
            "UPDATE macvault_audit SET count = $3, last_time = $4 WHERE org = $1 AND id = $2",
            &[&org, &int(seq), &int(count), &int(last)],
        )?;
        Ok(())
    }

    fn publish(&mut self, change: &Change, time: u64) -> Result<u64, StoreError> {
        // A counter row, not a sequence: sequences hand out numbers in call order, not
        // commit order, and a reader of `seq > last` would skip a late commit for ever.
        // Every publisher updates this one row, so commits are ordered by it.
        // One statement, one round trip: take the next number and write the entry.
        let row = FeedRow::new(change, time);
        let rows = self.query(
            "WITH head AS (UPDATE macvault_feed_head SET seq = seq + 1 WHERE id = 1 RETURNING seq) \
             INSERT INTO macvault_feed (seq, time, kind, expires, row) \
             SELECT seq, $1, $2, $3, $4 FROM head RETURNING seq",
            &[
                &int(time),
                &row.kind(),
                &row.expires().map(int),
                &row.encode()?,
            ],
        )?;
        let seq: i64 = rows
            .first()
            .ok_or_else(|| StoreError::Corrupt("feed head".into()))?
            .try_get(0)
            .map_err(|e| self.fail(e))?;
        let seq = uint(seq);
        self.changes.push(FeedEntry {
            seq,
            change: change.clone(),
        });
        Ok(seq)
    }

    fn init_master_check(&mut self, check: &[u8]) -> Result<(), StoreError> {
        let n = self.execute(
            "INSERT INTO macvault_meta (key, value) VALUES ('master_check', $1) \
             ON CONFLICT (key) DO NOTHING",
            &[&check],
        )?;
        if n == 0 {
            return Err(StoreError::Conflict("master key"));
        }
        Ok(())
    }

    fn put_secret_keys(&mut self, keys: &SecretKeys) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO macvault_secret_keys (org, row) VALUES ($1, $2) \
             ON CONFLICT (org) DO UPDATE SET row = excluded.row",
            &[&keys.org, &keys.encode()?],
        )?;
        Ok(())
    }

    fn put_secret_head(&mut self, head: &SecretHead) -> Result<(), StoreError> {
        let app = scope(head.app.as_deref());
        // With it, in the same statement, the scope's counter row: every scope has one,
        // so the apps with secrets can be listed.
        self.execute(
            "WITH counter AS (INSERT INTO macvault_secret_counters (org, app, value) \
             VALUES ($1, $2, 0) ON CONFLICT (org, app) DO NOTHING) \
             INSERT INTO macvault_secret_heads (org, app, name, version, unset, updated, row) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (org, app, name) DO UPDATE SET \
             version = excluded.version, unset = excluded.unset, updated = excluded.updated, \
             row = excluded.row",
            &[
                &head.org,
                &app,
                &head.name,
                &int(head.version),
                &head.unset,
                &int(head.updated),
                &head.encode()?,
            ],
        )?;
        Ok(())
    }

    fn put_secret_version(&mut self, v: &SecretVersion) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO macvault_secret_versions (org, app, name, version, created, row) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (org, app, name, version) DO UPDATE \
             SET created = excluded.created, row = excluded.row",
            &[
                &v.org,
                &scope(v.app.as_deref()),
                &v.name,
                &int(v.version),
                &int(v.created),
                &v.encode()?,
            ],
        )?;
        Ok(())
    }

    fn delete_secret_version(
        &mut self,
        org: &str,
        app: Option<&str>,
        name: &str,
        version: u64,
    ) -> Result<(), StoreError> {
        self.execute(
            "DELETE FROM macvault_secret_versions \
             WHERE org = $1 AND app = $2 AND name = $3 AND version = $4",
            &[&org, &scope(app), &name, &int(version)],
        )?;
        Ok(())
    }

    fn bump_secrets_counter(&mut self, org: &str, app: Option<&str>) -> Result<u64, StoreError> {
        self.bump_scope_number("macvault_secret_counters", org, app)
    }

    fn take_lease(
        &mut self,
        name: &str,
        holder: &str,
        now: u64,
        until: u64,
    ) -> Result<bool, StoreError> {
        let n = self.execute(
            "INSERT INTO macvault_leases (name, holder, until) VALUES ($1, $2, $4) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until \
             WHERE macvault_leases.holder = $2 OR macvault_leases.until <= $3",
            &[&name, &holder, &int(now), &int(until)],
        )?;
        Ok(n == 1)
    }

    fn set_allowed_env(
        &mut self,
        org: &str,
        app: Option<&str>,
        name: &str,
        allowed: bool,
    ) -> Result<(), StoreError> {
        let sql = if allowed {
            "INSERT INTO macvault_allowed_env (org, app, name) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING"
        } else {
            "DELETE FROM macvault_allowed_env WHERE org = $1 AND app = $2 AND name = $3"
        };
        self.execute(sql, &[&org, &scope(app), &name])?;
        Ok(())
    }

    fn drop_lease(&mut self, name: &str, holder: &str) -> Result<(), StoreError> {
        self.execute(
            "DELETE FROM macvault_leases WHERE name = $1 AND holder = $2",
            &[&name, &holder],
        )?;
        Ok(())
    }

    fn insert_third_party(&mut self, tp: &ThirdParty) -> Result<(), StoreError> {
        if self.third_party(&tp.org, &tp.name)?.is_some() {
            return Err(StoreError::Conflict("third party"));
        }
        self.execute(
            "INSERT INTO macvault_third_parties (org, name, location_path, kind, created, row) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &tp.org,
                &tp.name,
                &tp.location_path(),
                &tp.kind.name(),
                &int(tp.created),
                &tp.encode()?,
            ],
        )?;
        self.index_third_party_keys(tp)
    }

    fn put_third_party(&mut self, tp: &ThirdParty) -> Result<(), StoreError> {
        self.execute(
            "UPDATE macvault_third_parties SET row = $3 WHERE org = $1 AND name = $2",
            &[&tp.org, &tp.name, &tp.encode()?],
        )?;
        self.index_third_party_keys(tp)
    }

    fn delete_third_party(&mut self, org: &str, name: &str) -> Result<(), StoreError> {
        self.execute(
            "DELETE FROM macvault_third_party_keys WHERE org = $1 AND name = $2",
            &[&org, &name],
        )?;
        self.execute(
            "DELETE FROM macvault_third_party_requirements WHERE org = $1 AND third_party = $2",
            &[&org, &name],
        )?;
        self.execute(
            "DELETE FROM macvault_third_parties WHERE org = $1 AND name = $2",
            &[&org, &name],
        )?;
        Ok(())
    }

    fn insert_app(&mut self, app: &App) -> Result<(), StoreError> {
        let added = self.execute(
            "INSERT INTO macvault_apps (org, name, row) VALUES ($1, $2, $3) \
             ON CONFLICT (org, name) DO NOTHING",
            &[&app.org, &app.name, &app.encode()?],
        )?;
        if added == 0 {
            return Err(StoreError::Conflict("app"));
        }
        Ok(())
    }

    fn delete_app(&mut self, org: &str, name: &str) -> Result<(), StoreError> {
        self.execute(
            "DELETE FROM macvault_apps WHERE org = $1 AND name = $2",
            &[&org, &name],
        )?;
        Ok(())
    }

    fn insert_oauth_client(&mut self, client: &OAuthClient) -> Result<(), StoreError> {
        let added = self.execute(
            "INSERT INTO macvault_oauth_clients (id, org, row) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO NOTHING",
            &[&client.id, &client.org, &client.encode()?],
        )?;
        if added == 0 {
            return Err(StoreError::Conflict("OAuth client"));
        }
        Ok(())
    }

    fn delete_oauth_client(&mut self, id: &str) -> Result<(), StoreError> {
        self.execute("DELETE FROM macvault_oauth_clients WHERE id = $1", &[&id])?;
        Ok(())
    }

    fn put_oauth_grant(&mut self, grant: &OAuthGrant) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO macvault_oauth_grants (id, org, expires, row) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET expires = EXCLUDED.expires, row = EXCLUDED.row",
            &[&grant.id, &grant.org, &int(grant.expires), &grant.encode()?],
        )?;
        Ok(())
    }

    fn put_oauth_key(&mut self, key: &OAuthKey) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO macvault_oauth_keys (hash, until, row) VALUES ($1, $2, $3) \
             ON CONFLICT (hash) DO UPDATE SET until = EXCLUDED.until, row = EXCLUDED.row",
            &[&&key.hash[..], &int(key.until), &key.encode()?],
        )?;
        Ok(())
    }

    fn spend_oauth_key(&mut self, hash: &[u8; 32], until: u64) -> Result<bool, StoreError> {
        // Insert-if-absent: of two concurrent spends, one inserts; the other waits for
        // it and finds the row (or retries on a serialization failure and then does).
        let added = self.execute(
            "INSERT INTO macvault_oauth_spent (hash, until) VALUES ($1, $2) \
             ON CONFLICT (hash) DO NOTHING",
            &[&&hash[..], &int(until)],
        )?;
        Ok(added == 1)
    }

    fn record_id_token(&mut self, used: &IdTokenUse) -> Result<Recorded, StoreError> {
        // Insert-if-absent: of two concurrent first uses, one inserts and the other
        // waits for it and then finds its row (or retries on a serialization failure).
        let added = self.execute(
            "INSERT INTO macvault_id_token_uses (issuer, jti, until, row) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (issuer, jti) DO NOTHING",
            &[&used.issuer, &used.jti, &int(used.until), &used.encode()?],
        )?;
        if added == 1 {
            return Ok(Recorded::New);
        }
        let before: Option<IdTokenUse> = self.one(
            "SELECT row FROM macvault_id_token_uses WHERE issuer = $1 AND jti = $2",
            &[&used.issuer, &used.jti],
        )?;
        match before {
            Some(b) if b.tickets == used.tickets => Ok(Recorded::Again),
            Some(_) => Ok(Recorded::Other),
            None => Err(StoreError::Corrupt("an ID token use vanished".into())),
        }
    }

    fn put_requirement(&mut self, req: &Requirement) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO macvault_third_party_requirements \
             (org, third_party, token_id, added, row) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (org, third_party, token_id) DO UPDATE SET added = excluded.added, \
             row = excluded.row",
            &[
                &req.org,
                &req.third_party,
                &&req.token.0[..],
                &int(req.added),
                &req.encode()?,
            ],
        )?;
        Ok(())
    }

    fn set_secrets_counter(
        &mut self,
        org: &str,
        app: Option<&str>,
        value: u64,
    ) -> Result<(), StoreError> {
        self.set_scope_number("macvault_secret_counters", org, app, value)
    }

    fn bump_secrets_blind_writes(
        &mut self,
        org: &str,
        app: Option<&str>,
    ) -> Result<u64, StoreError> {
        self.bump_scope_number("macvault_secret_blind_writes", org, app)
    }

    fn set_secrets_blind_writes(
        &mut self,
        org: &str,
        app: Option<&str>,
        value: u64,
    ) -> Result<(), StoreError> {
        self.set_scope_number("macvault_secret_blind_writes", org, app, value)
    }

    fn compact(&mut self, now: u64, feed_before: u64) -> Result<Compacted, StoreError> {
        let now = int(now);
        let before = int(feed_before);
        let revocations = self.execute(
            "DELETE FROM macvault_revocations WHERE expires <= $1",
            &[&now],
        )?;
        let rows = self.query(
            "SELECT max(seq) FROM macvault_feed WHERE time < $1",
            &[&before],
        )?;
        let dropped: Option<i64> = match rows.first() {
            Some(r) => r.try_get(0).map_err(|e| self.fail(e))?,
            None => None,
        };
        let feed = self.execute(
            "DELETE FROM macvault_feed WHERE time < $1 OR expires <= $2",
            &[&before, &now],
        )?;
        if let Some(seq) = dropped {
            let head = self.feed_head()?;
            if uint(seq) > head.horizon {
                self.execute(
                    "UPDATE macvault_feed_head SET horizon = $1 WHERE id = 1",
                    &[&seq],
                )?;
            }
        }
        let uses = self.execute(
            "DELETE FROM macvault_id_token_uses WHERE until <= $1",
            &[&now],
        )?;
        let grants = self.execute(
            "DELETE FROM macvault_oauth_grants WHERE expires <= $1",
            &[&now],
        )?;
        self.execute("DELETE FROM macvault_oauth_keys WHERE until <= $1", &[&now])?;
        self.execute(
            "DELETE FROM macvault_oauth_spent WHERE until <= $1",
            &[&now],
        )?;
        Ok(Compacted {
            revocations: usize::try_from(revocations).unwrap_or(usize::MAX),
            feed: usize::try_from(feed).unwrap_or(usize::MAX),
            id_token_uses: usize::try_from(uses).unwrap_or(usize::MAX),
            oauth: usize::try_from(grants).unwrap_or(usize::MAX),
        })
    }
}
