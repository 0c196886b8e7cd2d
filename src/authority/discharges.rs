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

    /// Counts a refused discharge in the audit log of the third party's org (`tp`: org
    /// and name), aggregated with its other refusals of the same ticket position and
    /// `kind` (a fixed code) in one window: the requests need no token, so they must
    /// not be able to bury the log either (`detail`: made for the first of a window).
    pub fn queue_refused_discharge(
        &self,
        tp: (&str, &str),
        ip: Option<std::net::IpAddr>,
        ticket: usize,
        kind: &'static str,
        detail: impl FnOnce() -> String,
    ) {
        let now = self.clock.now();
        self.usage
            .refuse_discharge(tp, ip, ticket, kind, detail, now);
    }
}
