//! The SQL of each read ([`Read`]) on PostgreSQL.

use super::super::rows::{FeedRow, Stored};
use tokio_postgres::Row;

use super::super::{Ahead, DenyEntry, FeedHead, IdTokenUse, Lease, Read, StoreError, VersionKey};
use super::tx::{Param, PgTx, limit, param, scope, token_id};
use super::{int, uint};
use crate::model::{
    App, AuditEvent, FeedEntry, LastUsed, LedgerEntry, OAuthClient, OAuthGrant, OAuthKey, Org,
    Requirement, RootKeyVersion, SecretHead, SecretKeys, SecretVersion, ThirdParty, TokenId,
    TokenRecord,
};
use crate::token::KeyId;

/// The SQL and parameters of a read that may be read ahead (one source for both ways).
fn ahead_sql(a: &Ahead<'_>) -> (&'static str, Vec<Param>) {
    let s = |v: &str| param(v.to_owned());
    match *a {
        Ahead::Org(name) => (
            "SELECT row FROM macvault_orgs WHERE name = $1",
            vec![s(name)],
        ),
        Ahead::App { org, app } => (
            "SELECT row FROM macvault_apps WHERE org = $1 AND name = $2",
            vec![s(org), s(app)],
        ),
        Ahead::Token(id) => (
            "SELECT row FROM macvault_tokens WHERE id = $1",
            vec![param(id.0.to_vec())],
        ),
        Ahead::SecretKeys(org) => (
            "SELECT row FROM macvault_secret_keys WHERE org = $1",
            vec![s(org)],
        ),
        Ahead::SecretHead { org, app, name } => (
            "SELECT row FROM macvault_secret_heads WHERE org = $1 AND app = $2 AND name = $3",
            vec![s(org), s(scope(app)), s(name)],
        ),
        Ahead::SecretHeads { org, app } => (
            "SELECT row FROM macvault_secret_heads WHERE org = $1 AND app = $2 ORDER BY name",
            vec![s(org), s(scope(app))],
        ),
        Ahead::SecretCount(org) => (
            "SELECT count(*) FROM macvault_secret_heads WHERE org = $1",
            vec![s(org)],
        ),
        Ahead::SecretStoredBytes { org, app } => (
            "SELECT COALESCE(sum(octet_length(row)), 0)::BIGINT FROM macvault_secret_versions \
             WHERE org = $1 AND app = $2",
            vec![s(org), s(scope(app))],
        ),
    }
}

impl PgTx<'_> {
    /// The rows of a read that may have been read ahead.
    fn ahead(&mut self, a: Ahead<'_>) -> Result<Vec<Row>, StoreError> {
        let (sql, params) = ahead_sql(&a);
        self.read(sql, params)
    }

    fn ahead_one<T: Stored>(&mut self, a: Ahead<'_>) -> Result<Option<T>, StoreError> {
        let rows = self.ahead(a)?;
        Ok(self.decoded(rows)?.into_iter().next())
    }
}

impl Read for PgTx<'_> {
    fn read_ahead(&mut self, reads: &[Ahead<'_>]) -> Result<(), StoreError> {
        self.read_ahead_sql(reads.iter().map(ahead_sql).collect())
    }

    fn org(&mut self, name: &str) -> Result<Option<Org>, StoreError> {
        self.ahead_one(Ahead::Org(name))
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
        self.ahead_one(Ahead::Token(id))
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

    fn feed_heads(&mut self) -> Result<Vec<FeedHead>, StoreError> {
        let rows = self.query(
            "SELECT s.stream, s.seq, COALESCE(h.horizon, 0) FROM macvault_feed_streams s \
             LEFT JOIN macvault_feed_horizons h ON h.stream = s.stream ORDER BY s.stream",
            &[],
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let stream: String = r.try_get(0).map_err(|e| self.fail(e))?;
            let head: i64 = r.try_get(1).map_err(|e| self.fail(e))?;
            let horizon: i64 = r.try_get(2).map_err(|e| self.fail(e))?;
            out.push(FeedHead {
                stream,
                head: uint(head),
                horizon: uint(horizon),
            });
        }
        Ok(out)
    }

    fn feed_after(
        &mut self,
        stream: &str,
        after: u64,
        n: usize,
    ) -> Result<Vec<FeedEntry>, StoreError> {
        let rows = self.query(
            "SELECT seq, row FROM macvault_feed WHERE stream = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3",
            &[&stream, &int(after), &limit(n)],
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let seq: i64 = r.try_get(0).map_err(|e| self.fail(e))?;
            let row = FeedRow::decode(r.try_get(1).map_err(|e| self.fail(e))?)?;
            out.push(FeedEntry {
                stream: stream.to_owned(),
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
        self.ahead_one(Ahead::SecretKeys(org))
    }

    fn secret_head(
        &mut self,
        org: &str,
        app: Option<&str>,
        name: &str,
    ) -> Result<Option<SecretHead>, StoreError> {
        self.ahead_one(Ahead::SecretHead { org, app, name })
    }

    fn secret_heads(
        &mut self,
        org: &str,
        app: Option<&str>,
    ) -> Result<Vec<SecretHead>, StoreError> {
        let rows = self.ahead(Ahead::SecretHeads { org, app })?;
        self.decoded(rows)
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
        let rows = self.ahead(Ahead::SecretCount(org))?;
        let n: i64 = match rows.first() {
            Some(r) => r.try_get(0).map_err(|e| self.fail(e))?,
            None => 0,
        };
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    fn secret_stored_bytes(&mut self, org: &str, app: Option<&str>) -> Result<u64, StoreError> {
        let rows = self.ahead(Ahead::SecretStoredBytes { org, app })?;
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
        self.ahead_one(Ahead::App { org, app: name })
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
