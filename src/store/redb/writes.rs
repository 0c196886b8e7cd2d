//! The writes ([`Tx`]) of the embedded backend.

use redb::{ReadableTable, TableDefinition, WriteTransaction};

use crate::model::{
    App, AuditEvent, Change, FeedEntry, LastUsed, OAuthClient, OAuthGrant, OAuthKey, Org,
    Requirement, RootKeyVersion, SecretHead, SecretKeys, SecretVersion, ThirdParty, TokenId,
    TokenRecord,
};
use crate::store::rows::{FeedRow, Stored};
use crate::store::{Bumped, Compacted, DenyEntry, IdTokenUse, Read, Recorded, StoreError, Tx};

use super::{
    ALLOWED_ENV, APPS, AUDIT, AUDIT_COUNTS, CHILDREN, FEED, ID_END, ID_TOKEN_USES, KEYS, LAST_USED,
    LEASES, META, OAUTH_CLIENTS, OAUTH_GRANTS, OAUTH_KEYS, OAUTH_SPENT, ORG_TOKENS, ORGS,
    REQUIREMENTS, REVOCATIONS, SECRET_BLIND_WRITES, SECRET_COUNTERS, SECRET_HEADS, SECRET_KEYS,
    SECRET_VERSIONS, THIRD_PARTIES, THIRD_PARTY_KEYS, THIRD_PARTY_LOCATIONS, TOKENS, scope,
    u64_value,
};

/// A write transaction's writes (and reads), with the feed entries it wrote.
pub(super) struct RedbTx<'t> {
    pub(super) txn: &'t WriteTransaction,
    pub(super) changes: Vec<FeedEntry>,
}

impl<'t> RedbTx<'t> {
    pub(super) fn new(txn: &'t WriteTransaction) -> Self {
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
