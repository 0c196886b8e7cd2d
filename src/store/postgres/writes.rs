//! The SQL of each write ([`Tx`]) on PostgreSQL.

use super::super::rows::{FeedRow, Stored};
use super::super::{Bumped, Compacted, DenyEntry, IdTokenUse, Read, Recorded, StoreError, Tx};
use tokio_postgres::types::ToSql;

use super::tx::{Param, PgTx, param, scope};
use super::{int, uint};
use crate::model::{
    App, AuditEvent, Change, FeedEntry, LastUsed, OAuthClient, OAuthGrant, OAuthKey, Org,
    Requirement, RootKeyVersion, SecretHead, SecretKeys, SecretVersion, ThirdParty, TokenId,
    TokenRecord,
};

/// An audit event's insert: numbered per org by the org's counter row, like the feed,
/// so an org's events are in commit order and a follow (`seq > last`) never skips a
/// late commit.
const AUDIT_INSERT: &str = "WITH head AS (INSERT INTO macvault_audit_heads (org, seq) \
     VALUES ($1, 1) ON CONFLICT (org) DO UPDATE SET seq = macvault_audit_heads.seq + 1 \
     RETURNING seq) \
     INSERT INTO macvault_audit (org, id, time, action, outcome, actor, row, count, last_time) \
     SELECT $1, seq, $2, $3, $4, $5, $6, $7, $8 FROM head RETURNING id";

impl PgTx<'_> {
    /// `AUDIT_INSERT`'s parameters for `event` (having taken the org's place first).
    fn audit_params(&mut self, event: &AuditEvent) -> Result<Vec<Param>, StoreError> {
        let (count, last) = if event.count > 1 {
            (Some(int(event.count)), Some(int(event.last)))
        } else {
            (None, None)
        };
        self.claim(&event.org)?;
        Ok(vec![
            param(event.org.clone()),
            param(int(event.time)),
            param(event.action.clone()),
            param(event.outcome.name()),
            param(event.actor.map(|a| a.0.to_vec())),
            param(event.encode()?),
            param(count),
            param(last),
        ])
    }
}

impl Tx for PgTx<'_> {
    fn insert_org(&mut self, org: &Org) -> Result<(), StoreError> {
        self.claim(&org.name)?;
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
        self.claim(&org.name)?;
        self.later(
            "INSERT INTO macvault_orgs (name, created, row) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET created = excluded.created, row = excluded.row",
            vec![
                param(org.name.clone()),
                param(int(org.created)),
                param(org.encode()?),
            ],
        );
        Ok(())
    }

    fn put_key(&mut self, key: &RootKeyVersion) -> Result<(), StoreError> {
        self.claim(&key.org)?;
        self.later(
            "INSERT INTO macvault_root_keys (org, version, created, retired, row) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (org, version) DO UPDATE SET \
             created = excluded.created, retired = excluded.retired, row = excluded.row",
            vec![
                param(key.org.clone()),
                param(i64::from(key.version)),
                param(int(key.created)),
                param(key.retired.map(int)),
                param(key.encode()?),
            ],
        );
        Ok(())
    }

    fn put_token(&mut self, rec: &TokenRecord) -> Result<(), StoreError> {
        self.claim(&rec.org)?;
        self.later(
            "INSERT INTO macvault_tokens (id, org, kind, app, creator, parent, key_version, \
             created, expires, revoked_effective, row) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (id) DO UPDATE SET \
             org = excluded.org, kind = excluded.kind, app = excluded.app, \
             creator = excluded.creator, parent = excluded.parent, \
             key_version = excluded.key_version, created = excluded.created, \
             expires = excluded.expires, revoked_effective = excluded.revoked_effective, \
             row = excluded.row",
            vec![
                param(rec.id.0.to_vec()),
                param(rec.org.clone()),
                param(rec.kind.name()),
                param(rec.app.clone()),
                param(rec.creator.map(|c| c.0.to_vec())),
                param(rec.parent.map(|p| p.0.to_vec())),
                param(i64::from(rec.key_version)),
                param(int(rec.created)),
                param(int(rec.expires)),
                param(rec.revoked.map(|r| int(r.effective))),
                param(rec.encode()?),
            ],
        );
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
        self.later(
            "INSERT INTO macvault_revocations (token_id, effective, expires) VALUES ($1, $2, $3) \
             ON CONFLICT (token_id) DO UPDATE SET effective = excluded.effective, \
             expires = excluded.expires",
            vec![
                param(id.0.to_vec()),
                param(int(entry.effective)),
                param(int(entry.expires)),
            ],
        );
        Ok(())
    }

    fn record_use(&mut self, id: &TokenId, used: &LastUsed) -> Result<(), StoreError> {
        // Each node writes its own uses; the later one wins, and nothing else is touched.
        self.later(
            "INSERT INTO macvault_last_used (token_id, time, row) VALUES ($1, $2, $3) \
             ON CONFLICT (token_id) DO UPDATE SET time = excluded.time, row = excluded.row \
             WHERE macvault_last_used.time <= excluded.time",
            vec![
                param(id.0.to_vec()),
                param(int(used.time)),
                param(used.encode()?),
            ],
        );
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

    fn append_audit(&mut self, event: &AuditEvent) -> Result<(), StoreError> {
        let params = self.audit_params(event)?;
        self.later(AUDIT_INSERT, params);
        Ok(())
    }

    fn append_audit_seq(&mut self, event: &AuditEvent) -> Result<u64, StoreError> {
        let params = self.audit_params(event)?;
        let refs: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect();
        let rows = self.query(AUDIT_INSERT, &refs)?;
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
        self.later(
            "UPDATE macvault_audit SET count = $3, last_time = $4 WHERE org = $1 AND id = $2",
            vec![
                param(org.to_owned()),
                param(int(seq)),
                param(int(count)),
                param(int(last)),
            ],
        );
        Ok(())
    }

    fn publish(&mut self, org: &str, change: &Change, time: u64) -> Result<(), StoreError> {
        // A counter row per org, not a sequence: sequences hand out numbers in call
        // order, not commit order, and a reader of `seq > last` would skip a late commit
        // for ever. Every publisher in an org updates its org's row, so the org's commits
        // are ordered by it; writers of other orgs touch other rows and never wait
        // (docs/SCALING.md, "The change feed"). One statement takes the next number and
        // writes the entry, sent with the next round trip (COMMIT at the latest).
        self.claim(org)?;
        let row = FeedRow::new(change, time);
        let params = vec![
            param(org.to_owned()),
            param(int(time)),
            param(row.kind()),
            param(row.expires().map(int)),
            param(row.encode()?),
        ];
        self.later_feed_entry(
            "WITH head AS (INSERT INTO macvault_feed_streams (stream, seq) VALUES ($1, 1) \
             ON CONFLICT (stream) DO UPDATE SET seq = macvault_feed_streams.seq + 1 \
             RETURNING seq) \
             INSERT INTO macvault_feed (stream, seq, time, kind, expires, row) \
             SELECT $1, seq, $2, $3, $4, $5 FROM head RETURNING seq",
            params,
            FeedEntry {
                stream: org.to_owned(),
                seq: 0,
                change: change.clone(),
            },
        );
        Ok(())
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
        self.claim(&keys.org)?;
        self.later(
            "INSERT INTO macvault_secret_keys (org, row) VALUES ($1, $2) \
             ON CONFLICT (org) DO UPDATE SET row = excluded.row",
            vec![param(keys.org.clone()), param(keys.encode()?)],
        );
        Ok(())
    }

    fn put_secret_head(&mut self, head: &SecretHead) -> Result<(), StoreError> {
        self.claim(&head.org)?;
        let app = scope(head.app.as_deref());
        // With it, in the same statement, the scope's counter row: every scope has one,
        // so the apps with secrets can be listed.
        self.later(
            "WITH counter AS (INSERT INTO macvault_secret_counters (org, app, value) \
             VALUES ($1, $2, 0) ON CONFLICT (org, app) DO NOTHING) \
             INSERT INTO macvault_secret_heads (org, app, name, version, unset, updated, row) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (org, app, name) DO UPDATE SET \
             version = excluded.version, unset = excluded.unset, updated = excluded.updated, \
             row = excluded.row",
            vec![
                param(head.org.clone()),
                param(app.to_owned()),
                param(head.name.clone()),
                param(int(head.version)),
                param(head.unset),
                param(int(head.updated)),
                param(head.encode()?),
            ],
        );
        Ok(())
    }

    fn put_secret_version(&mut self, v: &SecretVersion) -> Result<(), StoreError> {
        self.claim(&v.org)?;
        self.later(
            "INSERT INTO macvault_secret_versions (org, app, name, version, created, row) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (org, app, name, version) DO UPDATE \
             SET created = excluded.created, row = excluded.row",
            vec![
                param(v.org.clone()),
                param(scope(v.app.as_deref()).to_owned()),
                param(v.name.clone()),
                param(int(v.version)),
                param(int(v.created)),
                param(v.encode()?),
            ],
        );
        Ok(())
    }

    fn delete_secret_version(
        &mut self,
        org: &str,
        app: Option<&str>,
        name: &str,
        version: u64,
    ) -> Result<(), StoreError> {
        self.later(
            "DELETE FROM macvault_secret_versions \
             WHERE org = $1 AND app = $2 AND name = $3 AND version = $4",
            vec![
                param(org.to_owned()),
                param(scope(app).to_owned()),
                param(name.to_owned()),
                param(int(version)),
            ],
        );
        Ok(())
    }

    fn bump_secrets_counter(&mut self, org: &str, app: Option<&str>) -> Result<Bumped, StoreError> {
        self.claim(org)?;
        // The org's counter in the same statement. Its subquery sees the table as
        // before the bump, so the org's own scope answers the bumped value instead.
        let rows = self.query(
            "WITH own AS (INSERT INTO macvault_secret_counters (org, app, value) \
             VALUES ($1, $2, 1) ON CONFLICT (org, app) DO UPDATE \
             SET value = macvault_secret_counters.value + 1 RETURNING value) \
             SELECT own.value, CASE WHEN $2 = '' THEN own.value ELSE COALESCE((SELECT c.value \
             FROM macvault_secret_counters c WHERE c.org = $1 AND c.app = ''), 0) END FROM own",
            &[&org, &scope(app)],
        )?;
        let row = rows
            .first()
            .ok_or_else(|| StoreError::Internal("a counter bump answered nothing".into()))?;
        let (own, org): (i64, i64) = (
            row.try_get(0).map_err(|e| self.fail(e))?,
            row.try_get(1).map_err(|e| self.fail(e))?,
        );
        Ok(Bumped {
            org: uint(org),
            own: uint(own),
        })
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
        self.claim(org)?;
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
        self.claim(&tp.org)?;
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
        self.claim(&tp.org)?;
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
        self.claim(&app.org)?;
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
        self.claim(org)?;
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
        // Each stream's horizon rises past what goes; horizons live apart from the
        // streams' heads, so compacting takes no row a writer updates.
        self.execute(
            "INSERT INTO macvault_feed_horizons (stream, horizon) \
             SELECT stream, max(seq) FROM macvault_feed WHERE time < $1 GROUP BY stream \
             ON CONFLICT (stream) DO UPDATE \
             SET horizon = GREATEST(macvault_feed_horizons.horizon, EXCLUDED.horizon)",
            &[&before],
        )?;
        let feed = self.execute(
            "DELETE FROM macvault_feed WHERE time < $1 OR expires <= $2",
            &[&before, &now],
        )?;
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
