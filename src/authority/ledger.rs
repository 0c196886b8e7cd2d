//! Reading the ledger: an org's tokens with their last use and status, one token with
//! its lineage, and token ids given as prefixes.

use super::{Authority, IdError, LedgerError, Principal};
use crate::caveats::{Action, Resource};
use crate::model::{LedgerEntry, TokenKind, TokenRecord, TokenStatus, TokenView};
use crate::store::StoreError;
use crate::token::TokenId;

/// Shortest id prefix accepted.
pub const MIN_PREFIX: usize = 8;

/// One token with its place in the lineage.
#[derive(Debug, Clone)]
pub struct TokenDetail {
    /// The token.
    pub token: TokenView,
    /// Its ancestors, its parent first.
    pub ancestors: Vec<TokenView>,
    /// The tokens it minted (its lineage children).
    pub children: Vec<TokenView>,
    /// The third parties whose discharges it needs.
    pub requirements: Vec<crate::model::Requirement>,
}

impl Authority {
    /// The ledger of an org, oldest first, revoked and expired tokens included;
    /// dashboard sessions only `with_sessions` (they would crowd the list).
    pub async fn list_tokens(
        &self,
        who: &Principal,
        org: &str,
        with_sessions: bool,
    ) -> Result<Vec<TokenView>, LedgerError> {
        let access = self.access(who, org, None, Resource::Tokens, Action::Read);
        self.require(who, &access).map_err(LedgerError::Denied)?;
        let name = org.to_owned();
        let entries = self.store.read(move |r| r.ledger(&name)).await?;
        Ok(entries
            .into_iter()
            .filter(|e| with_sessions || e.record.kind != TokenKind::Session)
            .map(|e| self.view(e))
            .collect())
    }

    /// One token of the caller's org, by id or id prefix, with its ancestors and
    /// children. Needs `read` on tokens (of its app, for an app's token).
    pub async fn show_token(&self, who: &Principal, id: &str) -> Result<TokenDetail, LedgerError> {
        let rec = self.resolve(who, id).await?;
        let access = self.access(
            who,
            &rec.org,
            rec.app.as_deref(),
            Resource::Tokens,
            Action::Read,
        );
        self.require(who, &access).map_err(LedgerError::Denied)?;
        let org = rec.org.clone();
        let id = rec.id;
        let (entries, up, down, requirements) = self
            .store
            .read(move |r| {
                let entries = r.ledger(&org)?;
                let mut up = Vec::new();
                let mut at = entries
                    .iter()
                    .find(|e| e.record.id == id)
                    .and_then(|e| e.record.parent);
                while let Some(parent) = at.filter(|p| !up.contains(p) && up.len() < 64) {
                    up.push(parent);
                    at = entries
                        .iter()
                        .find(|e| e.record.id == parent)
                        .and_then(|e| e.record.parent);
                }
                let down = r.children(&id)?;
                let requirements = super::third_parties::requirements_of(r, &org, &id)?;
                Ok::<_, StoreError>((entries, up, down, requirements))
            })
            .await?;
        let find = |id: &TokenId| entries.iter().find(|e| e.record.id == *id).cloned();
        let token = find(&id).ok_or(IdError::NotFound)?;
        Ok(TokenDetail {
            token: self.view(token),
            ancestors: up.iter().filter_map(find).map(|e| self.view(e)).collect(),
            children: down.iter().filter_map(find).map(|e| self.view(e)).collect(),
            requirements,
        })
    }

    fn view(&self, entry: LedgerEntry) -> TokenView {
        let retired = self
            .keyring
            .is_retired(&entry.record.org, entry.record.key_version);
        TokenView {
            status: TokenStatus::of(&entry.record, self.clock.now(), retired),
            entry,
        }
    }

    /// The token of the caller's org that `text` names: its whole id, or a prefix of at
    /// least 8 hex digits that only it has. Tokens of other orgs are not found (nothing
    /// about them is told).
    pub(super) async fn resolve(
        &self,
        who: &Principal,
        text: &str,
    ) -> Result<TokenRecord, IdError> {
        let hex = text.len() >= MIN_PREFIX
            && text.len() <= 32
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex {
            return Err(IdError::Bad);
        }
        let org = who.org().to_owned();
        if let Ok(id) = text.parse::<TokenId>() {
            let rec = self
                .read_token(&id)
                .await
                .map_err(|_| IdError::NotFound)?
                .filter(|r| r.org == org);
            return rec.ok_or(IdError::NotFound);
        }
        let prefix = text.to_owned();
        let mut found: Vec<TokenRecord> = self
            .store
            .read(move |r| r.ledger(&org))
            .await
            .map_err(|_| IdError::NotFound)?
            .into_iter()
            .map(|e| e.record)
            .filter(|r| r.id.to_string().starts_with(&prefix))
            .collect();
        match found.len() {
            0 => Err(IdError::NotFound),
            1 => Ok(found.remove(0)),
            _ => {
                let names: Vec<String> = found
                    .iter()
                    .take(10)
                    .map(|r| {
                        format!(
                            "{} (\"{}\")",
                            &r.id.to_string()[..12],
                            crate::caveats::Excerpt(r.name.as_bytes())
                        )
                    })
                    .collect();
                Err(IdError::Ambiguous(names.join(", ")))
            }
        }
    }
}
