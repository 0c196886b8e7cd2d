//! The reads ([`Read`]) of the embedded backend, over a read or a write transaction
//! alike.

use redb::{ReadTransaction, ReadableTable};

use crate::model::{
    App, AuditEvent, FeedEntry, LastUsed, LedgerEntry, OAuthClient, OAuthGrant, OAuthKey, Org,
    Requirement, RootKeyVersion, SecretHead, SecretKeys, SecretVersion, ThirdParty, TokenId,
    TokenRecord,
};
use crate::store::rows::{FeedRow, Stored};
use crate::store::{DenyEntry, FeedHead, IdTokenUse, Lease, Read, StoreError, VersionKey};
use crate::token::KeyId;

use super::writes::RedbTx;
use super::{
    ALLOWED_ENV, APPS, AUDIT, AUDIT_COUNTS, CHILDREN, FEED, ID_END, ID_TOKEN_USES, KEYS, LAST_USED,
    LEASES, META, NAME_END, OAUTH_CLIENTS, OAUTH_GRANTS, OAUTH_KEYS, OAUTH_SPENT, ORG_TOKENS, ORGS,
    REQUIREMENTS, REVOCATIONS, SECRET_BLIND_WRITES, SECRET_COUNTERS, SECRET_HEADS, SECRET_KEYS,
    SECRET_VERSIONS, THIRD_PARTIES, THIRD_PARTY_KEYS, THIRD_PARTY_LOCATIONS, TOKENS, scope,
    u64_value,
};

/// A read transaction's reads.
pub(super) struct RedbRead<'t> {
    pub(super) txn: &'t ReadTransaction,
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
