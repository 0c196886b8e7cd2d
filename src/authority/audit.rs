//! Reading an org's audit log: the newest page first, an opaque cursor to older pages,
//! filters by action, outcome and actor, and the actors' names from the ledger; and
//! following it (`audit --follow`): a long poll for the events after a cursor.
//!
//! Positions are in commit order on both backends (docs/DESIGN.md, "Audit"): redb has
//! one writer, and on PostgreSQL an org's events are numbered by the org's counter
//! row, which each writer holds until it commits, so no event can appear behind a
//! position a follower has passed.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use super::{AuditError, Authority, Principal};
use crate::caveats::{Action, Resource};
use crate::model::{AuditEvent, Outcome, TokenId};
use crate::store::{Read, StoreError};

/// Most events one read returns.
pub const MAX_PAGE: usize = 1000;
/// Most events one read looks at to fill a filtered page (it answers a cursor after).
const MAX_SCAN: usize = 20_000;
/// The longest a follow waits for a new event before answering none.
pub const FOLLOW_CAP: Duration = Duration::from_secs(25);
/// How often a waiting follow looks for events written by other nodes (changes wake it
/// sooner; denials, aggregated on each node, are written within a second).
const FOLLOW_POLL: Duration = Duration::from_secs(1);

/// One page of an org's audit log.
#[derive(Debug, Clone)]
pub struct AuditPage {
    /// Events, oldest first.
    pub events: Vec<AuditEvent>,
    /// The cursor of the page before this one (older events), if there are any.
    pub older: Option<String>,
    /// The names (chosen by their minters) of the actors, where the ledger has them.
    pub names: HashMap<TokenId, String>,
    /// On the newest page: the cursor after its newest event (filtered out or not), to
    /// follow the log from.
    pub newer: Option<String>,
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
    /// Only events at or after this time (unix seconds; an aggregate by its last).
    pub since: Option<u64>,
    /// Only events at or before this time (unix seconds; an aggregate by its first).
    pub until: Option<u64>,
}

impl AuditFilter {
    fn keeps(&self, e: &AuditEvent) -> bool {
        self.action.as_ref().is_none_or(|a| *a == e.action)
            && self.outcome.is_none_or(|o| o == e.outcome)
            && self.actor.as_ref().is_none_or(|p| {
                e.actor
                    .is_some_and(|a| a.to_string().starts_with(p.as_str()))
            })
            && self.since.is_none_or(|t| e.last >= t)
            && self.until.is_none_or(|t| e.time <= t)
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
        let (mut events, older, names, newest) = self
            .store
            .read(move |r| {
                let (mut kept, mut scanned, mut cursor) = (Vec::new(), 0, before);
                let mut older = None;
                let mut newest = None;
                loop {
                    let batch = r.audit_before(&name, cursor, MAX_PAGE)?;
                    newest = newest.or(batch.first().map(|e| e.seq));
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
                let names = actor_names(r, &name, &kept)?;
                Ok::<_, StoreError>((kept, older, names, newest))
            })
            .await?;
        events.reverse();
        Ok(AuditPage {
            events,
            older,
            names,
            newer: before.is_none().then(|| encode_cursor(newest.unwrap_or(0))),
        })
    }

    /// Up to `limit` of an org's events after `after` (a `newer` cursor) that pass
    /// `filter`, oldest first; if there are none, waits for some up to [`FOLLOW_CAP`]
    /// (and no longer than the token lives). The answer's `newer` is where the next
    /// follow starts. The wait ends as soon as the token stops authenticating (a
    /// revocation anywhere), or the node starts draining.
    pub async fn follow_audit(
        &self,
        who: &Principal,
        org: &str,
        limit: usize,
        after: &str,
        filter: AuditFilter,
    ) -> Result<AuditPage, AuditError> {
        let access = self.access(who, org, None, Resource::Audit, Action::Read);
        self.require(who, &access).map_err(AuditError::Denied)?;
        let mut after = decode_cursor(after).ok_or(AuditError::BadCursor)?;
        let limit = limit.clamp(1, MAX_PAGE);
        let lives = who.expires().map_or(FOLLOW_CAP, |at| {
            Duration::from_secs(at.saturating_sub(self.now()) + 1)
        });
        let deadline = tokio::time::Instant::now() + FOLLOW_CAP.min(lives);
        // Subscribed before the first read: a change between the read and the wait
        // still wakes it.
        let mut changes = self.subscribe();
        let mut drained = std::pin::pin!(self.drained());
        loop {
            self.recheck(who).map_err(AuditError::Auth)?;
            let (name, keep) = (org.to_owned(), filter.clone());
            let (events, scanned_to, names) = self
                .store
                .read(move |r| {
                    let (mut kept, mut scanned, mut cursor) = (Vec::new(), 0, after);
                    while kept.len() < limit && scanned < MAX_SCAN {
                        let batch = r.audit_after(&name, cursor, MAX_PAGE)?;
                        if batch.is_empty() {
                            break;
                        }
                        scanned += batch.len();
                        for e in batch {
                            if kept.len() == limit {
                                break;
                            }
                            cursor = e.seq;
                            if keep.keeps(&e) {
                                kept.push(e);
                            }
                        }
                    }
                    let names = actor_names(r, &name, &kept)?;
                    Ok::<_, StoreError>((kept, cursor, names))
                })
                .await?;
            after = scanned_to;
            let now = tokio::time::Instant::now();
            if !events.is_empty() || now >= deadline {
                return Ok(AuditPage {
                    events,
                    older: None,
                    names,
                    newer: Some(encode_cursor(after)),
                });
            }
            tracing::debug!(org, "{FOLLOW_PARKED}");
            let wake = deadline.min(now + FOLLOW_POLL);
            tokio::select! {
                woken = tokio::time::timeout_at(wake, changes.recv()) => {
                    if let Ok(Err(RecvError::Closed)) = woken {
                        tokio::time::sleep_until(wake).await;
                    }
                }
                () = &mut drained => return Err(AuditError::Draining),
            }
        }
    }
}

/// What the log says (at debug level) each time a follow starts waiting.
pub const FOLLOW_PARKED: &str = "audit follow waits for new events";

/// The names (chosen by their minters) of the actors of `events`.
fn actor_names(
    r: &mut dyn Read,
    org: &str,
    events: &[AuditEvent],
) -> Result<HashMap<TokenId, String>, StoreError> {
    Ok(r.ledger(org)?
        .into_iter()
        .map(|e| (e.record.id, e.record.name))
        .filter(|(id, _)| events.iter().any(|k| k.actor == Some(*id)))
        .collect())
}
