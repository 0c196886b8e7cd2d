//! What waits for the background writer: last-used times (coalesced per token) and
//! denial events. Bounded: when full, the oldest entries are dropped and counted, so a
//! flood of requests cannot grow memory without limit while the store is slow.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use super::shared::Exclusive;
use crate::model::{AuditEvent, LastUsed};
use crate::token::TokenId;

/// Longest user agent kept in the ledger.
const MAX_USER_AGENT: usize = 256;
/// Most tokens with a queued last-used time.
pub(crate) const MAX_USES: usize = 100_000;
/// Most queued events.
pub(crate) const MAX_EVENTS: usize = 10_000;

#[derive(Default)]
struct Pending {
    uses: HashMap<TokenId, LastUsed>,
    /// Tokens in the order their first update since the last flush arrived.
    order: VecDeque<TokenId>,
    events: VecDeque<AuditEvent>,
}

/// What one flush writes.
#[derive(Debug, Default, Clone)]
pub(crate) struct Batch {
    /// Last uses, oldest first.
    pub(crate) uses: Vec<(TokenId, LastUsed)>,
    /// Events, in the order they happened.
    pub(crate) events: Vec<AuditEvent>,
}

impl Batch {
    pub(crate) fn is_empty(&self) -> bool {
        self.uses.is_empty() && self.events.is_empty()
    }
}

/// The queue.
#[derive(Debug)]
pub(crate) struct UsageQueue {
    pending: Exclusive<Pending>,
    max_uses: usize,
    max_events: usize,
    dropped_uses: AtomicU64,
    dropped_events: AtomicU64,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("uses", &self.uses.len())
            .field("events", &self.events.len())
            .finish()
    }
}

impl Default for UsageQueue {
    fn default() -> Self {
        UsageQueue::with_bounds(MAX_USES, MAX_EVENTS)
    }
}

impl UsageQueue {
    pub(crate) fn with_bounds(max_uses: usize, max_events: usize) -> Self {
        UsageQueue {
            pending: Exclusive::new(Pending::default()),
            max_uses: max_uses.max(1),
            max_events: max_events.max(1),
            dropped_uses: AtomicU64::new(0),
            dropped_events: AtomicU64::new(0),
        }
    }

    /// Queues a use of `id`. A returning client (same user agent) allocates nothing.
    pub(crate) fn record(
        &self,
        id: TokenId,
        ip: Option<IpAddr>,
        user_agent: Option<&str>,
        now: u64,
    ) {
        let ua = user_agent.map(|ua| {
            let cut = ua
                .char_indices()
                .nth(MAX_USER_AGENT)
                .map_or(ua.len(), |(i, _)| i);
            &ua[..cut]
        });
        let mut p = self.pending.lock();
        if let Some(used) = p.uses.get_mut(&id) {
            used.time = now;
            used.ip = ip;
            if used.user_agent.as_deref() != ua {
                used.user_agent = ua.map(str::to_owned);
            }
            return;
        }
        if p.uses.len() >= self.max_uses {
            self.evict_oldest_use(&mut p);
        }
        let used = LastUsed {
            time: now,
            ip,
            user_agent: ua.map(str::to_owned),
        };
        p.uses.insert(id, used);
        p.order.push_back(id);
    }

    fn evict_oldest_use(&self, p: &mut Pending) {
        while let Some(old) = p.order.pop_front() {
            if p.uses.remove(&old).is_some() {
                self.dropped_uses.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    }

    /// Queues an event.
    pub(crate) fn push_event(&self, event: AuditEvent) {
        let mut p = self.pending.lock();
        if p.events.len() >= self.max_events {
            p.events.pop_front();
            self.dropped_events.fetch_add(1, Ordering::Relaxed);
        }
        p.events.push_back(event);
    }

    /// Takes everything queued.
    pub(crate) fn take(&self) -> Batch {
        let mut p = self.pending.lock();
        let Pending {
            mut uses,
            order,
            events,
        } = std::mem::take(&mut *p);
        let uses = order
            .into_iter()
            .filter_map(|id| uses.remove(&id).map(|u| (id, u)))
            .collect();
        Batch {
            uses,
            events: events.into(),
        }
    }

    /// Puts back a batch whose write failed, under what was queued since: newer
    /// last-used times win, older events stay first; the bounds still hold.
    pub(crate) fn requeue(&self, older: Batch) {
        let mut p = self.pending.lock();
        for (id, used) in older.uses.into_iter().rev() {
            if p.uses.contains_key(&id) {
                continue;
            }
            if p.uses.len() >= self.max_uses {
                self.dropped_uses.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            p.uses.insert(id, used);
            p.order.push_front(id);
        }
        let newer = std::mem::take(&mut p.events);
        let mut events: VecDeque<AuditEvent> = older.events.into();
        events.extend(newer);
        while events.len() > self.max_events {
            events.pop_front();
            self.dropped_events.fetch_add(1, Ordering::Relaxed);
        }
        p.events = events;
    }

    /// Queued (uses, events).
    pub(crate) fn depth(&self) -> (usize, usize) {
        let p = self.pending.lock();
        (p.uses.len(), p.events.len())
    }

    /// Dropped so far because the queue was full: (uses, events).
    pub(crate) fn dropped(&self) -> (u64, u64) {
        (
            self.dropped_uses.load(Ordering::Relaxed),
            self.dropped_events.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Actor, Outcome};

    fn id(n: u8) -> TokenId {
        TokenId([n; 16])
    }

    fn event(detail: &str) -> AuditEvent {
        AuditEvent::new(
            "acme",
            "request.denied",
            Actor::default(),
            Outcome::Denied,
            detail.into(),
            1,
        )
    }

    #[test]
    fn uses_coalesce_per_token() {
        let q = UsageQueue::default();
        q.record(id(1), None, Some("a"), 10);
        q.record(id(2), None, None, 11);
        q.record(id(1), Some([10, 0, 0, 1].into()), Some("b"), 12);
        let batch = q.take();
        assert_eq!(batch.uses.len(), 2);
        let (first, used) = &batch.uses[0];
        assert_eq!(*first, id(1), "ordered by first arrival");
        assert_eq!((used.time, used.user_agent.as_deref()), (12, Some("b")));
        assert!(q.take().is_empty());
    }

    #[test]
    fn long_user_agents_are_cut() {
        let q = UsageQueue::default();
        q.record(id(1), None, Some(&"é".repeat(1000)), 1);
        let batch = q.take();
        let ua = batch.uses[0].1.user_agent.clone().unwrap();
        assert_eq!(ua.chars().count(), MAX_USER_AGENT);
    }

    #[test]
    fn bounded_dropping_the_oldest_and_counting() {
        let q = UsageQueue::with_bounds(3, 2);
        for n in 1..=5 {
            q.record(id(n), None, None, u64::from(n));
        }
        for d in ["a", "b", "c"] {
            q.push_event(event(d));
        }
        assert_eq!(q.depth(), (3, 2));
        assert_eq!(q.dropped(), (2, 1));
        let batch = q.take();
        let ids: Vec<_> = batch.uses.iter().map(|(i, _)| i.0[0]).collect();
        assert_eq!(ids, [3, 4, 5], "the oldest went");
        let details: Vec<_> = batch.events.iter().map(|e| e.detail.as_str()).collect();
        assert_eq!(details, ["b", "c"]);
    }

    #[test]
    fn requeue_keeps_newer_uses_and_older_events_first() {
        let q = UsageQueue::default();
        q.record(id(1), None, Some("old"), 1);
        q.push_event(event("first"));
        let failed = q.take();
        q.record(id(1), None, Some("new"), 2);
        q.record(id(2), None, None, 3);
        q.push_event(event("second"));
        q.requeue(failed);
        let batch = q.take();
        let one = batch.uses.iter().find(|(i, _)| *i == id(1)).unwrap();
        assert_eq!(one.1.user_agent.as_deref(), Some("new"));
        assert_eq!(batch.uses.len(), 2);
        let details: Vec<_> = batch.events.iter().map(|e| e.detail.as_str()).collect();
        assert_eq!(details, ["first", "second"]);
    }
}
