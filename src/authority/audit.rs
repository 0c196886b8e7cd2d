//! Reading an org's audit log: the newest page first, an opaque cursor to older pages,
//! filters by action, outcome and actor, and the actors' names from the ledger.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{AuditError, Authority, Principal};
use crate::caveats::{Action, Resource};
use crate::model::{AuditEvent, Outcome, TokenId};
use crate::store::StoreError;

/// Most events one read returns.
pub const MAX_PAGE: usize = 1000;
/// Most events one read looks at to fill a filtered page (it answers a cursor after).
const MAX_SCAN: usize = 20_000;

/// One page of an org's audit log.
#[derive(Debug, Clone)]
pub struct AuditPage {
    /// Events, oldest first.
    pub events: Vec<AuditEvent>,
    /// The cursor of the page before this one (older events), if there are any.
    pub older: Option<String>,
    /// The names (chosen by their minters) of the actors, where the ledger has them.
    pub names: HashMap<TokenId, String>,
}

/// Which events to read.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this action (`token.mint`, …).
    pub action: Option<String>,
    /// Only this outcome.
    pub outcome: Option<Outcome>,
    /// Only actors whose id starts with these hex digits.
    pub actor: Option<String>,
}

impl AuditFilter {
    fn keeps(&self, e: &AuditEvent) -> bool {
        self.action.as_ref().is_none_or(|a| *a == e.action)
            && self.outcome.is_none_or(|o| o == e.outcome)
            && self.actor.as_ref().is_none_or(|p| {
                e.actor
                    .is_some_and(|a| a.to_string().starts_with(p.as_str()))
            })
    }
}

/// An opaque position in an org's log.
pub fn encode_cursor(seq: u64) -> String {
    URL_SAFE_NO_PAD.encode(seq.to_be_bytes())
}

/// The position a cursor names.
pub fn decode_cursor(cursor: &str) -> Option<u64> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

impl Authority {
    /// Up to `limit` (1 to 1000) of an org's newest events before `older_than` (a
    /// cursor from a previous page) that pass `filter`, oldest first. Queued events
    /// (denials) are written first, so a reader sees them.
    pub async fn audit(
        &self,
        who: &Principal,
        org: &str,
        limit: usize,
        older_than: Option<&str>,
        filter: AuditFilter,
    ) -> Result<AuditPage, AuditError> {
        let access = self.access(who, org, None, Resource::Audit, Action::Read);
        self.require(who, &access).map_err(AuditError::Denied)?;
        let before = older_than
            .map(|c| decode_cursor(c).ok_or(AuditError::BadCursor))
            .transpose()?;
        self.flush().await?;
        let limit = limit.clamp(1, MAX_PAGE);
        let name = org.to_owned();
        let (mut events, older, names) = self
            .store
            .read(move |r| {
                let (mut kept, mut scanned, mut cursor) = (Vec::new(), 0, before);
                let mut older = None;
                loop {
                    let batch = r.audit_before(&name, cursor, MAX_PAGE)?;
                    let Some(last) = batch.last() else { break };
                    cursor = Some(last.seq);
                    let full = batch.len() == MAX_PAGE;
                    for e in batch {
                        scanned += 1;
                        if kept.len() == limit {
                            // One more exists: the next page starts after the last kept.
                            older = kept.last().map(|k: &AuditEvent| encode_cursor(k.seq));
                            break;
                        }
                        let seq = e.seq;
                        if filter.keeps(&e) {
                            kept.push(e);
                        }
                        if scanned >= MAX_SCAN {
                            older = Some(encode_cursor(seq));
                            break;
                        }
                    }
                    if older.is_some() || !full {
                        break;
                    }
                }
                let ledger = r.ledger(&name)?;
                let names = ledger
                    .into_iter()
                    .map(|e| (e.record.id, e.record.name))
                    .filter(|(id, _)| kept.iter().any(|k| k.actor == Some(*id)))
                    .collect();
                Ok::<_, StoreError>((kept, older, names))
            })
            .await?;
        events.reverse();
        Ok(AuditPage {
            events,
            older,
            names,
        })
    }
}
