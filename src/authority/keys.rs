//! Root keys: listing versions, rotating to a new one, retiring an old one.

use super::{Authority, KeyError, Principal};
use crate::audit::action;
use crate::caveats::Excerpt;
use crate::caveats::{Action, Resource};
use crate::model::{AuditEvent, Change, Org, Outcome, RootKeyVersion, TokenKind, TokenRecord};
use crate::token::RootKey;

impl Authority {
    /// An org's root-key versions (never the keys).
    pub async fn list_keys(
        &self,
        who: &Principal,
        org: &str,
    ) -> Result<(Org, Vec<RootKeyVersion>), KeyError> {
        let access = self.access(who, org, None, Resource::Keys, Action::Read);
        self.require(who, &access).map_err(KeyError::Denied)?;
        let name = org.to_owned();
        self.store
            .read(move |r| {
                let org = r.org(&name)?.ok_or(KeyError::OrgNotFound)?;
                Ok((org, r.keys(&name)?))
            })
            .await
    }

    /// Adds a root-key version and makes it the one used for minting; older versions
    /// keep verifying.
    pub async fn rotate_key(
        &self,
        who: &Principal,
        org: &str,
    ) -> Result<(Org, RootKeyVersion), KeyError> {
        let access = self.access(who, org, None, Resource::Keys, Action::Control);
        self.require(who, &access).map_err(KeyError::Denied)?;
        let now = self.clock.now();
        let key =
            std::sync::Arc::new(RootKey::generate().map_err(|_| super::MasterKeyError::Random)?);
        let (master, k, actor, name) = (
            self.master.clone(),
            key.clone(),
            who.actor(),
            org.to_owned(),
        );
        let done = self
            .store
            .write(move |tx| {
                let mut rec = tx.org(&name)?.ok_or(KeyError::OrgNotFound)?;
                let version = tx
                    .keys(&name)?
                    .last()
                    .map_or(0, |k| k.version)
                    .checked_add(1)
                    .ok_or(KeyError::Exhausted)?;
                let key_rec =
                    RootKeyVersion::new(&name, version, master.wrap(&name, version, &k)?, now);
                rec.current_key = version;
                tx.put_key(&key_rec)?;
                tx.put_org(&rec)?;
                tx.append_audit(&AuditEvent::new(
                    &name,
                    action::KEY_ROTATE,
                    actor,
                    Outcome::Ok,
                    format!("root key version {version} is now current"),
                    now,
                ))?;
                tx.publish(
                    &name,
                    &Change::KeyAdded {
                        org: name.clone(),
                        version,
                    },
                    now,
                )?;
                Ok::<_, KeyError>((rec, key_rec))
            })
            .await?;
        let (rec, key_rec) = done.value;
        self.applied(|| self.keyring.insert(&rec.name, key_rec.version, &key))
            .await;
        Ok((rec, key_rec))
    }

    /// What retiring `version` would stop: the live tokens minted under it.
    pub async fn retire_preview(
        &self,
        who: &Principal,
        org: &str,
        version: u32,
    ) -> Result<RetirePreview, KeyError> {
        let access = self.access(who, org, None, Resource::Keys, Action::Read);
        self.require(who, &access).map_err(KeyError::Denied)?;
        let (name, now) = (org.to_owned(), self.clock.now());
        self.store
            .read(move |r| {
                let org = r.org(&name)?.ok_or(KeyError::OrgNotFound)?;
                let key = r.key(&name, version)?.ok_or(KeyError::VersionNotFound)?;
                let keys = r.keys(&name)?;
                let ledger: Vec<TokenRecord> =
                    r.ledger(&name)?.into_iter().map(|e| e.record).collect();
                let live = live_under(&ledger, &keys, version, now)
                    .into_iter()
                    .cloned()
                    .collect();
                Ok(RetirePreview { org, key, live })
            })
            .await
    }

    /// Retires a root-key version: every token minted under it stops verifying (those
    /// minted from them under other versions live on: retirement is not revocation). If
    /// live tokens would stop, `confirm` must say so; it never stops the caller's own
    /// token, nor the org's last live org token.
    pub async fn retire_key(
        &self,
        who: &Principal,
        org: &str,
        version: u32,
        confirm: bool,
    ) -> Result<(Org, RootKeyVersion), KeyError> {
        let access = self.access(who, org, None, Resource::Keys, Action::Control);
        self.require(who, &access).map_err(KeyError::Denied)?;
        // Retiring the version the caller's own token hangs on would lock the caller out
        // (for the operator, out of the whole server): it must hold a newer token first.
        if who.org() == org && who.key_version() == version {
            return Err(KeyError::RetireOwn(version));
        }
        let now = self.clock.now();
        let (actor, name) = (who.actor(), org.to_owned());
        let done = self
            .store
            .write(move |tx| {
                let rec = tx.org(&name)?.ok_or(KeyError::OrgNotFound)?;
                let mut key = tx.key(&name, version)?.ok_or(KeyError::VersionNotFound)?;
                if version == rec.current_key {
                    return Err(KeyError::RetireCurrent(version));
                }
                if key.retired.is_some() {
                    return Ok((rec, key));
                }
                let keys = tx.keys(&name)?;
                let ledger: Vec<TokenRecord> =
                    tx.ledger(&name)?.into_iter().map(|e| e.record).collect();
                let doomed = live_under(&ledger, &keys, version, now);
                if let Some(last) = doomed.iter().find(|t| t.kind == TokenKind::Org) {
                    let others = keys
                        .iter()
                        .filter(|k| k.version != version)
                        .flat_map(|k| live_under(&ledger, &keys, k.version, now))
                        .filter(|t| t.kind == TokenKind::Org)
                        .count();
                    if others == 0 {
                        return Err(KeyError::LastOrgToken {
                            version,
                            name: Excerpt(last.name.as_bytes()).to_string(),
                        });
                    }
                }
                if !confirm && !doomed.is_empty() {
                    let names: Vec<String> = doomed
                        .iter()
                        .take(5)
                        .map(|t| format!("\"{}\"", Excerpt(t.name.as_bytes())))
                        .collect();
                    let more = doomed.len().saturating_sub(5);
                    let names = if more > 0 {
                        format!("{} and {more} more", names.join(", "))
                    } else {
                        names.join(", ")
                    };
                    return Err(KeyError::NeedsConfirmation {
                        version,
                        count: doomed.len(),
                        names,
                    });
                }
                key.retired = Some(now);
                tx.put_key(&key)?;
                tx.append_audit(&AuditEvent::new(
                    &name,
                    action::KEY_RETIRE,
                    actor,
                    Outcome::Ok,
                    format!(
                        "root key version {version} retired; {} live token(s) minted under it stopped",
                        doomed.len()
                    ),
                    now,
                ))?;
                tx.publish(&name, &Change::KeyRetired { org: name.clone(), version }, now)?;
                Ok((rec, key))
            })
            .await?;
        self.apply_committed(&done.changes).await;
        Ok(done.value)
    }
}

/// What retiring a version would stop.
#[derive(Debug, Clone)]
pub struct RetirePreview {
    /// The org.
    pub org: Org,
    /// The version.
    pub key: RootKeyVersion,
    /// The live tokens minted under it.
    pub live: Vec<TokenRecord>,
}

/// The live tokens minted under `version` (not revoked, not expired), if that version is
/// itself live.
fn live_under<'a>(
    ledger: &'a [TokenRecord],
    keys: &[RootKeyVersion],
    version: u32,
    now: u64,
) -> Vec<&'a TokenRecord> {
    if keys
        .iter()
        .any(|k| k.version == version && k.retired.is_some())
    {
        return Vec::new();
    }
    ledger
        .iter()
        .filter(|t| t.key_version == version && t.expires > now && !t.is_revoked_at(now))
        .collect()
}
