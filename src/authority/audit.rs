//! Reading an org's audit log, newest page first, with an opaque cursor to older pages.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{AuditError, Authority, Principal};
use crate::caveats::{Action, Resource};
use crate::model::AuditEvent;

/// Most events one read returns.
pub const MAX_PAGE: usize = 1000;

/// One page of an org's audit log.
#[derive(Debug, Clone)]
pub struct AuditPage {
    /// Events, oldest first.
    pub events: Vec<AuditEvent>,
    /// The cursor of the page before this one (older events), if there are any.
    pub older: Option<String>,
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
    /// cursor from a previous page), oldest first. Queued events (denials) are written
    /// first, so a reader sees them.
    pub async fn audit(
        &self,
        who: &Principal,
        org: &str,
        limit: usize,
        older_than: Option<&str>,
    ) -> Result<AuditPage, AuditError> {
        let access = self.access(who, org, None, Resource::Audit, Action::Read);
        self.require(who, &access).map_err(AuditError::Denied)?;
        let before = older_than
            .map(|c| decode_cursor(c).ok_or(AuditError::BadCursor))
            .transpose()?;
        self.flush().await?;
        let limit = limit.clamp(1, MAX_PAGE);
        let name = org.to_owned();
        let mut events = self
            .store
            .read(move |r| r.audit_before(&name, before, limit + 1))
            .await?;
        let older = if events.len() > limit {
            events.truncate(limit);
            events.last().map(|e| encode_cursor(e.seq))
        } else {
            None
        };
        events.reverse();
        Ok(AuditPage { events, older })
    }
}
