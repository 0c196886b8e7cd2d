//! Reading the ledger: an org's tokens with their last use and status.

use super::{Authority, Principal, RevokeError};
use crate::caveats::{Action, Resource};
use crate::model::{TokenStatus, TokenView};

impl Authority {
    /// The ledger of an org, oldest first, revoked and expired tokens included.
    pub async fn list_tokens(
        &self,
        who: &Principal,
        org: &str,
    ) -> Result<Vec<TokenView>, RevokeError> {
        let access = self.access(who, org, None, Resource::Tokens, Action::Read);
        self.require(who, &access).map_err(RevokeError::Denied)?;
        let name = org.to_owned();
        let entries = self.store.read(move |r| r.ledger(&name)).await?;
        let now = self.clock.now();
        Ok(entries
            .into_iter()
            .map(|entry| {
                let retired = self
                    .keyring
                    .is_retired(&entry.record.org, entry.record.key_version);
                TokenView {
                    status: TokenStatus::of(&entry.record, now, retired),
                    entry,
                }
            })
            .collect())
    }
}
