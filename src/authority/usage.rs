//! What waits for the background writer: last-used times (coalesced per token) and
//! denials (aggregated). Bounded: when full, the oldest uses and the newest kinds of
//! denial are dropped and counted, so a flood of requests cannot grow memory without
//! limit while the store is slow.
//!
//! Denials are aggregated so that no token can bury an org's audit log
//! (docs/DESIGN.md, "Audit"): they are keyed by (token id, the denying caveat's
//! position, what was denied), never by the reason's text, which carries names the
//! request chose. Refused discharges, which need no token, are keyed by (third party,
//! ticket position, kind of refusal) the same way. A key's window opens at its first denial and lasts the configured
//! window; all its denials in the window are one event with a count and the first and
//! last time, written at the first flush and amended at later ones. A token has at
//! most [`MAX_KINDS_PER_TOKEN`] keys open; further kinds of denial go to one overflow
//! event of that token.

use std::collections::HashMap;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use super::shared::Exclusive;
use crate::audit::action;
use crate::caveats::{Action, Resource};
use crate::model::{Actor, AuditEvent, LastUsed, Outcome};
use crate::token::TokenId;

/// Longest user agent kept in the ledger.
const MAX_USER_AGENT: usize = 256;
/// Most tokens with a queued last-used time.
pub(crate) const MAX_USES: usize = 100_000;
/// Most kinds of denial held at once (open windows and closed ones not yet written).
pub(crate) const MAX_EVENTS: usize = 10_000;
/// Most kinds of denial one token has open at once; more go to its overflow event.
pub const MAX_KINDS_PER_TOKEN: usize = 16;

/// What a denial refused, for aggregation: fixed kinds, never a name from the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Refused {
    /// An action on a kind of object.
    Access(Resource, Action),
    /// A refusal that is not one access (minting rights not held, a service token…).
    Rule(&'static str),
}

/// Whose denials: a token's, or (for refused discharges, which carry none) a third
/// party's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Subject {
    Token(TokenId),
    /// (org, name).
    ThirdParty(Box<(String, String)>),
}

/// Which denials aggregate into one event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct DenialKey {
    subject: Subject,
    /// The denying caveat's position (0: a rule, not a caveat; for a third party, the
    /// ticket's) and what it refused; `None`: the subject's overflow event.
    kind: Option<(usize, Refused)>,
}

/// One aggregate: its event (first time and detail, count, last time), where it stands
/// in the log once written, and whether it changed since it was last taken.
#[derive(Debug, Clone)]
struct Aggregate {
    event: AuditEvent,
    /// Opening order (events are appended in it).
    order: u64,
    seq: Option<u64>,
    dirty: bool,
}

#[derive(Default)]
struct Pending {
    uses: HashMap<TokenId, LastUsed>,
    /// Tokens in the order their first update since the last flush arrived.
    order: VecDeque<TokenId>,
    /// Open windows.
    denials: HashMap<DenialKey, Aggregate>,
    /// Open keys per subject (not counting its overflow event).
    kinds: HashMap<Subject, usize>,
    /// Windows that ended before their last change was written.
    closed: Vec<(DenialKey, Aggregate)>,
    opened: u64,
}

/// A denial event to write: appended if it has no position yet, else amended.
#[derive(Debug, Clone)]
pub(crate) struct TakenDenial {
    key: DenialKey,
    order: u64,
    /// Its position in the org's log, once written.
    pub(crate) seq: Option<u64>,
    /// The event, with its count so far.
    pub(crate) event: AuditEvent,
}

/// What one flush writes.
#[derive(Debug, Default, Clone)]
pub(crate) struct Batch {
    /// Last uses, oldest first.
    pub(crate) uses: Vec<(TokenId, LastUsed)>,
    /// Denial events, in the order their windows opened.
    pub(crate) denials: Vec<TakenDenial>,
}

impl Batch {
    pub(crate) fn is_empty(&self) -> bool {
        self.uses.is_empty() && self.denials.is_empty()
    }
}

/// The queue.
#[derive(Debug)]
pub(crate) struct UsageQueue {
    pending: Exclusive<Pending>,
    max_uses: usize,
    max_events: usize,
    /// How long a kind of denial aggregates, from its first (seconds).
    window: u64,
    dropped_uses: AtomicU64,
    dropped_events: AtomicU64,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("uses", &self.uses.len())
            .field("denials", &self.denials.len())
            .finish()
    }
}

/// The default aggregation window of denials (seconds).
pub const DENIAL_WINDOW: u64 = 60;

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
            window: DENIAL_WINDOW,
            dropped_uses: AtomicU64::new(0),
            dropped_events: AtomicU64::new(0),
        }
    }

    /// The same, aggregating denials over `window` seconds (at least 1).
    pub(crate) fn with_window(mut self, window: u64) -> Self {
        self.window = window.max(1);
        self
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

    /// Counts a denial of `actor`'s token in `org`'s log: caveat `caveat` (0: a rule)
    /// refused `refused`; `detail` (names, never values) is made only for the first
    /// denial of a window. A denial without a token is not aggregated (there is none:
    /// only authenticated requests are denied by caveats).
    pub(crate) fn deny(
        &self,
        org: &str,
        actor: Actor,
        caveat: usize,
        refused: Refused,
        detail: impl FnOnce() -> String,
        now: u64,
    ) {
        let Some(token) = actor.token else { return };
        let key = DenialKey {
            subject: Subject::Token(token),
            kind: Some((caveat, refused)),
        };
        self.count(key, org, actor, detail, now);
    }

    /// Counts a refused discharge of ticket `ticket` for third party `name` of `org`
    /// (`kind`: a fixed name of the refusal; `detail` made for the first of a window).
    pub(crate) fn refuse_discharge(
        &self,
        (org, name): (&str, &str),
        ip: Option<IpAddr>,
        ticket: usize,
        kind: &'static str,
        detail: impl FnOnce() -> String,
        now: u64,
    ) {
        let key = DenialKey {
            subject: Subject::ThirdParty(Box::new((org.to_owned(), name.to_owned()))),
            kind: Some((ticket, Refused::Rule(kind))),
        };
        let actor = Actor { token: None, ip };
        self.count(key, org, actor, detail, now);
    }

    fn count(
        &self,
        mut key: DenialKey,
        org: &str,
        actor: Actor,
        detail: impl FnOnce() -> String,
        now: u64,
    ) {
        let mut p = self.pending.lock();
        if !p.denials.contains_key(&key)
            && p.kinds.get(&key.subject).copied().unwrap_or(0) >= MAX_KINDS_PER_TOKEN
        {
            key.kind = None;
        }
        if let Some(open) = p.denials.get_mut(&key) {
            if now < open.event.time.saturating_add(self.window) {
                open.event.count += 1;
                open.event.last = open.event.last.max(now);
                open.event.source_ip = actor.ip.or(open.event.source_ip);
                open.dirty = true;
                return;
            }
            // Its window ended: it is closed (kept until written) and a new one opens.
            if let Some(old) = p.denials.remove(&key) {
                if key.kind.is_some() {
                    forget_kind(&mut p.kinds, &key.subject);
                }
                // A clean one is written, or in flight (and put back if its write fails).
                if old.dirty {
                    p.closed.push((key.clone(), old));
                }
            }
        }
        if p.denials.len() + p.closed.len() >= self.max_events {
            self.dropped_events.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let detail = match (&key.kind, &key.subject) {
            (Some(_), _) => detail(),
            (None, Subject::Token(_)) => format!(
                "further kinds of denial of this token (more than {MAX_KINDS_PER_TOKEN} in one window)"
            ),
            (None, Subject::ThirdParty(tp)) => format!(
                "further kinds of refused discharge for third party \"{}\" (more than \
                 {MAX_KINDS_PER_TOKEN} in one window)",
                tp.1
            ),
        };
        if key.kind.is_some() {
            *p.kinds.entry(key.subject.clone()).or_default() += 1;
        }
        p.opened += 1;
        let order = p.opened;
        let action = match key.subject {
            Subject::Token(_) => action::REQUEST_DENIED,
            Subject::ThirdParty(_) => action::THIRD_PARTY_DISCHARGE,
        };
        let event = AuditEvent::new(org, action, actor, Outcome::Denied, detail, now);
        p.denials.insert(
            key,
            Aggregate {
                event,
                order,
                seq: None,
                dirty: true,
            },
        );
    }

    /// Takes everything queued at `now`: last uses, and the denial events that changed
    /// since they were last taken. Windows that ended and are written are let go.
    pub(crate) fn take(&self, now: u64) -> Batch {
        let mut p = self.pending.lock();
        let p = &mut *p;
        let mut uses = std::mem::take(&mut p.uses);
        let uses = std::mem::take(&mut p.order)
            .into_iter()
            .filter_map(|id| uses.remove(&id).map(|u| (id, u)))
            .collect();
        let mut denials: Vec<TakenDenial> = p
            .closed
            .drain(..)
            .map(|(key, a)| TakenDenial {
                key,
                order: a.order,
                seq: a.seq,
                event: a.event,
            })
            .collect();
        let window = self.window;
        let mut ended = Vec::new();
        for (key, a) in &mut p.denials {
            if a.dirty {
                a.dirty = false;
                denials.push(TakenDenial {
                    key: key.clone(),
                    order: a.order,
                    seq: a.seq,
                    event: a.event.clone(),
                });
            }
            if now >= a.event.time.saturating_add(window) {
                ended.push(key.clone());
            }
        }
        for key in ended {
            p.denials.remove(&key);
            if key.kind.is_some() {
                forget_kind(&mut p.kinds, &key.subject);
            }
        }
        denials.sort_by_key(|d| d.order);
        Batch { uses, denials }
    }

    /// A batch was written: `seqs` are its denial events' positions, in order. Later
    /// changes to the same windows amend those events.
    pub(crate) fn written(&self, batch: &Batch, seqs: &[u64]) {
        let mut p = self.pending.lock();
        for (taken, &seq) in batch.denials.iter().zip(seqs) {
            if let Some(open) = p.denials.get_mut(&taken.key)
                && open.order == taken.order
            {
                open.seq = Some(seq);
            }
            if let Some((_, closed)) = p
                .closed
                .iter_mut()
                .find(|(k, a)| *k == taken.key && a.order == taken.order)
            {
                closed.seq = Some(seq);
            }
        }
    }

    /// Puts back a batch whose write failed, under what was queued since: newer
    /// last-used times win; denial events are written again (with their counts since);
    /// the bounds still hold.
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
        for taken in older.denials {
            let again = |a: &Aggregate| a.order == taken.order;
            if let Some(open) = p.denials.get_mut(&taken.key).filter(|a| again(a)) {
                open.dirty = true;
                continue;
            }
            if p.closed.iter().any(|(k, a)| *k == taken.key && again(a)) {
                continue;
            }
            if p.denials.len() + p.closed.len() >= self.max_events {
                self.dropped_events.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let aggregate = Aggregate {
                event: taken.event,
                order: taken.order,
                seq: taken.seq,
                dirty: true,
            };
            p.closed.push((taken.key, aggregate));
        }
    }

    /// Queued (uses, denial events waiting to be written).
    pub(crate) fn depth(&self) -> (usize, usize) {
        let p = self.pending.lock();
        let dirty = p.denials.values().filter(|a| a.dirty).count();
        (p.uses.len(), dirty + p.closed.len())
    }

    /// Dropped so far because the queue was full: (uses, denial events).
    pub(crate) fn dropped(&self) -> (u64, u64) {
        (
            self.dropped_uses.load(Ordering::Relaxed),
            self.dropped_events.load(Ordering::Relaxed),
        )
    }
}

/// One open key of `subject` fewer.
fn forget_kind(kinds: &mut HashMap<Subject, usize>, subject: &Subject) {
    if let Some(n) = kinds.get_mut(subject) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            kinds.remove(subject);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> TokenId {
        TokenId([n; 16])
    }

    fn by(n: u8) -> Actor {
        Actor {
            token: Some(id(n)),
            ip: None,
        }
    }

    const REVEAL: Refused = Refused::Access(Resource::Secrets, Action::Reveal);

    /// A denial of token `n` by caveat `caveat`, at `now`, saying `detail`.
    fn deny(q: &UsageQueue, n: u8, caveat: usize, detail: &str, now: u64) {
        q.deny("acme", by(n), caveat, REVEAL, || detail.to_owned(), now);
    }

    /// (count, time, last, detail, seq) of each denial event taken.
    fn taken(batch: &Batch) -> Vec<(u64, u64, u64, String, Option<u64>)> {
        batch
            .denials
            .iter()
            .map(|d| {
                let e = &d.event;
                (e.count, e.time, e.last, e.detail.clone(), d.seq)
            })
            .collect()
    }

    #[test]
    fn uses_coalesce_per_token() {
        let q = UsageQueue::default();
        q.record(id(1), None, Some("a"), 10);
        q.record(id(2), None, None, 11);
        q.record(id(1), Some([10, 0, 0, 1].into()), Some("b"), 12);
        let batch = q.take(12);
        assert_eq!(batch.uses.len(), 2);
        let (first, used) = &batch.uses[0];
        assert_eq!(*first, id(1), "ordered by first arrival");
        assert_eq!((used.time, used.user_agent.as_deref()), (12, Some("b")));
        assert!(q.take(12).is_empty());
    }

    #[test]
    fn long_user_agents_are_cut() {
        let q = UsageQueue::default();
        q.record(id(1), None, Some(&"é".repeat(1000)), 1);
        let batch = q.take(1);
        let ua = batch.uses[0].1.user_agent.clone().unwrap();
        assert_eq!(ua.chars().count(), MAX_USER_AGENT);
    }

    #[test]
    fn uses_are_bounded_dropping_the_oldest_and_counting() {
        let q = UsageQueue::with_bounds(3, 2);
        for n in 1..=5 {
            q.record(id(n), None, None, u64::from(n));
        }
        assert_eq!(q.depth().0, 3);
        assert_eq!(q.dropped().0, 2);
        let batch = q.take(5);
        let ids: Vec<_> = batch.uses.iter().map(|(i, _)| i.0[0]).collect();
        assert_eq!(ids, [3, 4, 5], "the oldest went");
    }

    #[test]
    fn denials_of_one_kind_in_a_window_are_one_event() {
        let q = UsageQueue::default();
        deny(&q, 1, 2, "first name", 100);
        for t in 101..1100 {
            deny(&q, 1, 2, "another name", t.min(159));
        }
        let batch = q.take(159);
        assert_eq!(
            taken(&batch),
            [(1000, 100, 159, "first name".to_owned(), None)],
            "counted, first and last time, the first's detail"
        );
        assert_eq!(q.depth().1, 0, "written once taken");
    }

    #[test]
    fn a_window_ends_its_length_after_its_first_denial() {
        let q = UsageQueue::default().with_window(60);
        deny(&q, 1, 2, "a", 100);
        deny(&q, 1, 2, "b", 159);
        deny(&q, 1, 2, "c", 160);
        deny(&q, 1, 2, "d", 170);
        let got = taken(&q.take(170));
        assert_eq!(
            got,
            [
                (2, 100, 159, "a".to_owned(), None),
                (2, 160, 170, "c".to_owned(), None)
            ]
        );
    }

    #[test]
    fn tokens_caveats_and_actions_are_kept_apart() {
        let q = UsageQueue::default();
        deny(&q, 1, 2, "token 1 caveat 2", 1);
        deny(&q, 2, 2, "token 2 caveat 2", 1);
        deny(&q, 1, 3, "token 1 caveat 3", 1);
        let write = Refused::Access(Resource::Secrets, Action::Write);
        q.deny("acme", by(1), 2, write, || "write".into(), 1);
        q.deny("acme", by(1), 0, Refused::Rule("mint"), || "mint".into(), 1);
        assert_eq!(q.take(1).denials.len(), 5);
    }

    #[test]
    fn a_token_has_a_few_kinds_open_then_one_overflow_event() {
        let q = UsageQueue::default();
        let kinds = MAX_KINDS_PER_TOKEN + 50;
        for caveat in 1..=kinds {
            deny(&q, 1, caveat, &format!("caveat {caveat}"), 1);
        }
        deny(&q, 2, 1, "another token", 1);
        let got = taken(&q.take(1));
        assert_eq!(got.len(), MAX_KINDS_PER_TOKEN + 2);
        let overflow = &got[MAX_KINDS_PER_TOKEN];
        assert_eq!(overflow.0, 50, "the overflow counts the rest");
        assert!(overflow.3.contains("further kinds"), "{}", overflow.3);
        assert_eq!(
            got.last().unwrap().3,
            "another token",
            "other tokens unaffected"
        );
    }

    #[test]
    fn a_written_event_is_amended_as_it_grows() {
        let q = UsageQueue::default();
        deny(&q, 1, 2, "a", 1);
        let first = q.take(1);
        q.written(&first, &[7]);
        assert!(q.take(2).is_empty(), "nothing new");
        deny(&q, 1, 2, "b", 3);
        assert_eq!(taken(&q.take(3)), [(2, 1, 3, "a".to_owned(), Some(7))]);
    }

    #[test]
    fn denials_during_a_write_are_not_appended_twice() {
        let q = UsageQueue::default();
        deny(&q, 1, 2, "a", 1);
        let in_flight = q.take(1);
        deny(&q, 1, 2, "b", 2);
        q.written(&in_flight, &[7]);
        assert_eq!(taken(&q.take(2)), [(2, 1, 2, "a".to_owned(), Some(7))]);
    }

    #[test]
    fn a_failed_write_is_taken_again_with_what_came_since() {
        let q = UsageQueue::default().with_window(60);
        q.record(id(1), None, Some("old"), 1);
        deny(&q, 1, 2, "a", 1);
        deny(&q, 2, 2, "other", 1);
        let failed = q.take(1);
        q.record(id(1), None, Some("new"), 2);
        q.record(id(2), None, None, 3);
        deny(&q, 1, 2, "b", 3);
        q.requeue(failed);
        let batch = q.take(62);
        let one = batch.uses.iter().find(|(i, _)| *i == id(1)).unwrap();
        assert_eq!(one.1.user_agent.as_deref(), Some("new"));
        assert_eq!(batch.uses.len(), 2);
        assert_eq!(
            taken(&batch),
            [
                (2, 1, 3, "a".to_owned(), None),
                (1, 1, 1, "other".to_owned(), None)
            ]
        );
        assert!(q.take(63).is_empty(), "ended windows are let go once taken");
    }

    #[test]
    fn a_failed_write_of_a_window_since_replaced_is_still_written() {
        let q = UsageQueue::default().with_window(60);
        deny(&q, 1, 2, "a", 1);
        let failed = q.take(1);
        deny(&q, 1, 2, "next window", 70);
        q.requeue(failed);
        assert_eq!(
            taken(&q.take(70)),
            [
                (1, 1, 1, "a".to_owned(), None),
                (1, 70, 70, "next window".to_owned(), None)
            ]
        );
    }

    #[test]
    fn refused_discharges_aggregate_per_third_party_ticket_and_kind() {
        let q = UsageQueue::default();
        let ip = Some([10, 0, 0, 1].into());
        for _ in 0..100 {
            q.refuse_discharge(("acme", "gha"), ip, 1, "invalid_id_token", || "x".into(), 5);
        }
        q.refuse_discharge(("acme", "gha"), ip, 1, "id_token_used", || "y".into(), 5);
        q.refuse_discharge(("acme", "gl"), ip, 1, "invalid_id_token", || "z".into(), 5);
        let batch = q.take(5);
        let got: Vec<_> = batch
            .denials
            .iter()
            .map(|d| (d.event.action.as_str(), d.event.count, d.event.actor))
            .collect();
        assert_eq!(
            got,
            [
                ("third_party.discharge", 100, None),
                ("third_party.discharge", 1, None),
                ("third_party.discharge", 1, None)
            ]
        );
        assert_eq!(batch.denials[0].event.outcome, Outcome::Denied);
    }

    #[test]
    fn kinds_of_denial_are_bounded_and_the_rest_counted() {
        let q = UsageQueue::with_bounds(10, 2);
        for n in 1..=5 {
            deny(&q, n, 1, "x", 1);
        }
        assert_eq!(q.depth().1, 2);
        assert_eq!(q.dropped().1, 3);
    }
}
