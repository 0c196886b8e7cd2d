//! What the built-in discharger (`crate::discharge`) needs of the authority: the third
//! party a ticket is sealed to, and one transaction that records an ID token's use with
//! the audit events of its discharges (docs/THIRD_PARTIES.md).

use super::Authority;
use crate::model::{AuditEvent, ThirdParty};
use crate::store::{IdTokenUse, Recorded, StoreError};
use crate::token::KeyId;

impl Authority {
    /// The third party (of any org) that holds key `id`.
    pub async fn third_party_by_key(&self, id: KeyId) -> Result<Option<ThirdParty>, StoreError> {
        self.store.read(move |r| r.third_party_by_key(id)).await
    }

    /// Records `used` and, unless the ID token discharged other tickets before, the
    /// discharges' audit events, in one transaction: nothing is returned to the client
    /// unless this commits. On [`Recorded::Other`] nothing is written.
    pub async fn record_discharges(
        &self,
        used: IdTokenUse,
        events: Vec<AuditEvent>,
    ) -> Result<Recorded, StoreError> {
        let committed = self
            .store
            .write(move |tx| {
                let recorded = tx.record_id_token(&used)?;
                if recorded != Recorded::Other {
                    for e in &events {
                        tx.append_audit(e)?;
                    }
                }
                Ok::<_, StoreError>(recorded)
            })
            .await?;
        Ok(committed.value)
    }

    /// Appends one audit event on its own (a refused discharge).
    pub async fn append_audit(&self, event: AuditEvent) -> Result<(), StoreError> {
        self.store.write(move |tx| tx.append_audit(&event)).await?;
        Ok(())
    }
}
