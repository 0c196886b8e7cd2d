//! Root keys: listing versions, rotating to a new one, retiring an old one.

use super::{Authority, KeyError, Principal};
use crate::audit::action;
use crate::caveats::{Action, Resource};
use crate::model::{AuditEvent, Change, Org, Outcome, RootKeyVersion};
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

    /// Retires a root-key version: every token minted under it stops verifying.
    pub async fn retire_key(
        &self,
        who: &Principal,
        org: &str,
        version: u32,
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
                if key.retired.is_none() {
                    key.retired = Some(now);
                    tx.put_key(&key)?;
                    tx.append_audit(&AuditEvent::new(
                        &name,
                        action::KEY_RETIRE,
                        actor,
                        Outcome::Ok,
                        format!("root key version {version} retired"),
                        now,
                    ))?;
                    tx.publish(
                        &Change::KeyRetired {
                            org: name.clone(),
                            version,
                        },
                        now,
                    )?;
                }
                Ok((rec, key))
            })
            .await?;
        self.apply_committed(&done.changes).await;
        Ok(done.value)
    }
}
