//! Rotating an org's secrets key without downtime. `rotate_key` makes a new key current
//! at once (new values are sealed under it); the data keys of older versions are then
//! re-wrapped in the background, page by page, by whichever node holds the org's
//! rotation lease. Every record names its key, so all stay readable throughout. Once a
//! full pass finds nothing under an old key, the old keys are deleted: a copy of the
//! database taken before then no longer opens with the keys that remain, but one taken
//! earlier and kept with its old wrapped keys does — rotation protects against a leaked
//! secrets key from now on, not against a leaked value (rotate that at its source).

use std::sync::Arc;
use std::time::Duration;

use super::{OrgKeys, Place, SecretError, Secrets};
use crate::audit::action;
use crate::authority::Principal;
use crate::caveats::{Action, Resource};
use crate::model::{AuditEvent, Change, Outcome, SecretKeys, SecretVersion};
use crate::store::{StoreError, Tx, VersionKey};

/// How long a rotation lease lasts unless renewed (each page renews it).
const LEASE_SECS: u64 = 30;
/// How often the worker looks for rotations to finish (a rotation here wakes it at once).
const LOOK_EVERY: Duration = Duration::from_secs(5);

/// Where an org's secrets keys stand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStatus {
    /// The key new values are sealed under.
    pub current: u32,
    /// Every key still kept (the current one and those still being rotated out).
    pub keys: Vec<u32>,
}

impl KeyStatus {
    fn of(keys: &SecretKeys) -> Self {
        KeyStatus {
            current: keys.current,
            keys: keys.keys.iter().map(|k| k.0).collect(),
        }
    }

    /// Old keys remain: re-wrapping is under way.
    pub fn rotating(&self) -> bool {
        self.keys.len() > 1
    }
}

fn lease_name(org: &str) -> String {
    format!("secrets-rotation:{org}")
}

impl Secrets {
    fn require_keys_access(
        &self,
        who: &Principal,
        org: &str,
        action: Action,
    ) -> Result<(), SecretError> {
        crate::authority::check_scope(org, None).map_err(SecretError::InvalidScope)?;
        let access = self
            .authority
            .access(who, org, None, Resource::Secrets, action);
        self.authority
            .require_about(who, &access, || {
                format!("manage the secrets key of org {org}")
            })
            .map_err(SecretError::Denied)
    }

    /// Where the org's secrets keys stand. Needs `read` on the org's secrets.
    pub async fn key_status(&self, who: &Principal, org: &str) -> Result<KeyStatus, SecretError> {
        self.require_keys_access(who, org, Action::Read)?;
        let name = org.to_owned();
        let keys = self
            .authority
            .store()
            .read(move |r| {
                super::require_org(r, &name)?;
                Ok::<_, SecretError>(r.secret_keys(&name)?)
            })
            .await?;
        keys.as_ref()
            .map(KeyStatus::of)
            .ok_or(SecretError::NoSecretsKey)
    }

    /// Makes a fresh secrets key current for the org; older versions are re-wrapped
    /// under it in the background, after which the old keys are deleted. Needs
    /// `control` on the org's secrets.
    pub async fn rotate_key(&self, who: &Principal, org: &str) -> Result<KeyStatus, SecretError> {
        self.require_keys_access(who, org, Action::Control)?;
        let now = self.authority.now();
        let fresh = super::seal::random_key()?;
        let (org_name, actor) = (org.to_owned(), who.actor());
        let master = Arc::clone(self.authority.master());
        let done = self
            .authority
            .store()
            .write(move |tx| {
                super::require_org(tx, &org_name)?;
                let mut keys = tx
                    .secret_keys(&org_name)?
                    .ok_or(SecretError::NoSecretsKey)?;
                let id = keys.keys.iter().map(|k| k.0).max().unwrap_or(0) + 1;
                let wrapped =
                    master.seal_key(&super::seal::secrets_key_aad(&org_name, id), &fresh)?;
                keys.keys.push((id, wrapped, now));
                keys.current = id;
                tx.put_secret_keys(&keys)?;
                tx.publish(
                    &org_name,
                    &Change::SecretKeysChanged {
                        org: org_name.clone(),
                    },
                    now,
                )?;
                tx.append_audit(&AuditEvent::new(
                    &org_name,
                    action::SECRET_KEY_ROTATE,
                    actor,
                    Outcome::Ok,
                    format!("secrets key k{id} is current; older data keys are being re-wrapped"),
                    now,
                ))?;
                Ok::<_, SecretError>(KeyStatus::of(&keys))
            })
            .await?;
        let status = self.announced(done);
        self.keys.write().remove(org);
        self.kick.notify_one();
        Ok(status)
    }

    /// Finishes the rotations under way, on this node and others' (one node at a time
    /// per org, by lease), until stopped: at start (a restart resumes), when this node
    /// rotates, and every few seconds.
    pub fn start(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                if let Err(e) = me.rewrap_all().await {
                    tracing::warn!(error = %e, "secrets key rotation: will try again");
                }
                let _ = tokio::time::timeout(LOOK_EVERY, me.kick.notified()).await;
            }
        })
    }

    async fn rewrap_all(&self) -> Result<(), SecretError> {
        let rotating: Vec<String> = self
            .authority
            .store()
            .read(|r| {
                let mut out = Vec::new();
                for org in r.orgs()? {
                    if r.secret_keys(&org.name)?.is_some_and(|k| k.keys.len() > 1) {
                        out.push(org.name);
                    }
                }
                Ok::<_, StoreError>(out)
            })
            .await?;
        for org in rotating {
            self.rewrap(&org).await?;
        }
        Ok(())
    }

    /// Re-wraps the org's older data keys page by page while this node holds the
    /// lease; deletes the old keys after a pass that found none left.
    async fn rewrap(&self, org: &str) -> Result<(), SecretError> {
        let mut after: Option<VersionKey> = None;
        let mut moved_this_pass = 0usize;
        loop {
            let keys = self.write_keys(org).await?;
            let current = keys.cached.stored.current;
            let (name, from) = (org.to_owned(), after.clone());
            let batch = self.options.rewrap_batch;
            let page = self
                .authority
                .store()
                .read(move |r| r.secret_versions_after(&name, from.as_ref(), batch))
                .await?;
            let Some(last) = page.last() else {
                if moved_this_pass == 0 {
                    return self.retire_old_keys(org, current).await;
                }
                // Another pass, to find what a crash or a race left behind.
                (after, moved_this_pass) = (None, 0);
                continue;
            };
            after = Some(VersionKey::of(last));
            let stale: Vec<SecretVersion> = page
                .into_iter()
                .filter(|v| v.sealed.as_ref().is_some_and(|s| s.key_id != current))
                .collect();
            let (holder, now) = (self.holder.clone(), self.authority.now());
            let lease = lease_name(org);
            let count = stale.len();
            let held = self
                .write_with_keys(org, move |tx, keys| {
                    if !tx.take_lease(&lease, &holder, now, now + LEASE_SECS)? {
                        return Ok(false);
                    }
                    let opened = keys.ensure(tx)?;
                    for v in &stale {
                        rewrap_one(tx, opened, v)?;
                    }
                    Ok(true)
                })
                .await?;
            if !held {
                // Another node is at it.
                return Ok(());
            }
            moved_this_pass += count;
            if !self.options.rewrap_pause.is_zero() {
                tokio::time::sleep(self.options.rewrap_pause).await;
            }
        }
    }

    async fn retire_old_keys(&self, org: &str, current: u32) -> Result<(), SecretError> {
        let (name, holder, now) = (org.to_owned(), self.holder.clone(), self.authority.now());
        let done = self
            .authority
            .store()
            .write(move |tx| {
                let lease = lease_name(&name);
                if !tx.take_lease(&lease, &holder, now, now + LEASE_SECS)? {
                    return Ok(false);
                }
                let Some(mut keys) = tx.secret_keys(&name)? else {
                    return Ok(false);
                };
                if keys.current != current {
                    // Rotated again meanwhile: the next pass sees to it.
                    return Ok(false);
                }
                let gone: Vec<String> = keys
                    .keys
                    .iter()
                    .filter(|k| k.0 != current)
                    .map(|k| format!("k{}", k.0))
                    .collect();
                keys.keys.retain(|k| k.0 == current);
                tx.put_secret_keys(&keys)?;
                tx.drop_lease(&lease, &holder)?;
                tx.publish(&name, &Change::SecretKeysChanged { org: name.clone() }, now)?;
                tx.append_audit(&AuditEvent::new(
                    &name,
                    action::SECRET_KEY_ROTATE,
                    crate::model::Actor::default(),
                    Outcome::Ok,
                    format!(
                        "every data key is under secrets key k{current}; deleted {}",
                        gone.join(", ")
                    ),
                    now,
                ))?;
                Ok::<_, SecretError>(true)
            })
            .await?;
        self.announced(done);
        self.keys.write().remove(org);
        Ok(())
    }
}

/// Re-wraps one version under the current key, if it is still as read (a destroy or
/// the version cap may have come first).
fn rewrap_one(tx: &mut dyn Tx, keys: &OrgKeys, seen: &SecretVersion) -> Result<(), SecretError> {
    let Some(mut v) =
        tx.secret_version(&seen.org, seen.app.as_deref(), &seen.name, seen.version)?
    else {
        return Ok(());
    };
    let Some(sealed) = v.sealed.as_ref().filter(|s| s.key_id != keys.current) else {
        return Ok(());
    };
    let place = Place {
        org: &seen.org,
        app: seen.app.as_deref(),
        name: &seen.name,
        version: seen.version,
    };
    v.sealed = Some(keys.rewrap(place, sealed, keys.current)?);
    tx.put_secret_version(&v)?;
    Ok(())
}
