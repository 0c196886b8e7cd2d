//! Following the change feed, and the background work of a node.
//!
//! Memory (keys, deny-list) changes only after a commit: from what the commit itself
//! returned (right after this node's own writes), and from the feed, which every node
//! polls (the correctness path) and wakes on when the store signals (LISTEN/NOTIFY).
//! Both go through one lock, so a late application of an older snapshot can never
//! undo a newer change. A node that cannot catch up for longer than `max_staleness`
//! stops authenticating (503 `stale`) rather than trust what it holds.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::shared::Exclusive;
use super::{AuthError, Authority, StartError};
use crate::model::{Change, FeedEntry, RootKeyVersion};
use crate::store::{DenyEntry, Read, StoreError};
use crate::token::{RootKey, TokenId};

/// Most feed entries applied per read.
const BATCH: usize = 1000;
/// At most one refresh a second is forced by tokens under an unknown key version.
const FORCED_REFRESH_EVERY: Duration = Duration::from_secs(1);

/// Where this node stands on the feed.
#[derive(Debug)]
pub(crate) struct Follower {
    /// The sum of its positions in every stream: grows with every entry applied (what
    /// `/v1/ready` shows).
    position: AtomicU64,
    /// When the node last caught up, in milliseconds since `epoch` (an atomic: the
    /// verify path reads it on every request).
    synced_ms: AtomicU64,
    epoch: Instant,
    store_ok: AtomicBool,
    /// Held while applying: the last position applied in each stream of the feed.
    apply: tokio::sync::Mutex<Cursor>,
    last_forced: Exclusive<Option<Instant>>,
    max_staleness: Duration,
}

/// How the background writer of last-used times and events fares.
#[derive(Debug)]
pub(crate) struct Flushes {
    epoch: Instant,
    /// When a flush last succeeded, in milliseconds since `epoch`.
    ok_ms: AtomicU64,
    errors: AtomicU64,
}

impl Flushes {
    pub(super) fn new() -> Self {
        Flushes {
            epoch: Instant::now(),
            ok_ms: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn record(&self, ok: bool) {
        if ok {
            self.ok_ms.fetch_max(self.millis(), Ordering::Release);
        } else {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// How the background writer of last-used times and events fares (`/metrics`).
#[derive(Debug, Clone, Copy)]
pub struct FlushHealth {
    /// Time since a flush last succeeded (or since the node started, if none has): with
    /// a flush every second it stays under about a second while the store takes writes.
    pub lag: Duration,
    /// Flushes that failed (their batch queued again) since the node started.
    pub errors: u64,
}

/// What `/v1/ready` reports.
#[derive(Debug, Clone)]
pub struct Readiness {
    /// `redb` or `postgres`.
    pub backend: &'static str,
    /// The last feed position applied.
    pub position: u64,
    /// Time since the node last caught up with the feed.
    pub lag: Duration,
    /// Whether the last attempt to read the store succeeded.
    pub store_ok: bool,
    /// Last-used times and events waiting for the background writer.
    pub queued: (usize, usize),
    /// Last-used times and events dropped because the queue was full.
    pub dropped: (u64, u64),
    /// Whether the node is shutting down (see [`Authority::begin_drain`]).
    pub draining: bool,
    /// Whether the node serves authenticated requests, and takes new ones.
    pub ready: bool,
}

impl Follower {
    pub(super) fn new(max_staleness: Duration) -> Self {
        Follower {
            position: AtomicU64::new(0),
            synced_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            store_ok: AtomicBool::new(true),
            apply: tokio::sync::Mutex::new(Cursor::new()),
            last_forced: Exclusive::new(None),
            max_staleness,
        }
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lag(&self) -> Duration {
        let synced = self.synced_ms.load(Ordering::Acquire);
        Duration::from_millis(self.millis().saturating_sub(synced))
    }

    /// `Stale` when the node has not caught up for longer than allowed.
    pub(super) fn ensure_fresh(&self) -> Result<(), AuthError> {
        let lag = self.lag();
        if lag > self.max_staleness {
            return Err(AuthError::Stale {
                lag_secs: lag.as_secs(),
            });
        }
        Ok(())
    }

    fn synced_now(&self, position: u64) {
        self.position.fetch_max(position, Ordering::SeqCst);
        self.synced_ms.fetch_max(self.millis(), Ordering::Release);
        self.store_ok.store(true, Ordering::SeqCst);
    }
}

/// The last position applied in each stream of the feed (docs/SCALING.md, "The change
/// feed"): one stream on redb, one per org on PostgreSQL.
type Cursor = BTreeMap<String, u64>;

/// What one read of the feed found.
enum Step {
    /// The node is behind a stream's compaction horizon (or starting): everything.
    Reload {
        heads: Cursor,
        keys: Vec<RootKeyVersion>,
        revocations: Vec<(TokenId, DenyEntry)>,
    },
    /// New entries, with the current records of the keys they name; `full` if there
    /// may be more.
    Apply {
        entries: Vec<FeedEntry>,
        keys: Vec<RootKeyVersion>,
        full: bool,
    },
}

fn read_step(r: &mut dyn Read, cursor: &Cursor, reload: bool) -> Result<Step, StoreError> {
    let heads = r.feed_heads()?;
    let at = |stream: &str| cursor.get(stream).copied().unwrap_or(0);
    if reload || heads.iter().any(|h| h.horizon > at(&h.stream)) {
        return Ok(Step::Reload {
            heads: heads.into_iter().map(|h| (h.stream, h.head)).collect(),
            keys: r.all_keys()?,
            revocations: r.revocations()?,
        });
    }
    let (mut entries, mut full) = (Vec::new(), false);
    for h in heads.iter().filter(|h| h.head > at(&h.stream)) {
        let room = BATCH - entries.len();
        let got = r.feed_after(&h.stream, at(&h.stream), room)?;
        full |= got.len() == room;
        entries.extend(got);
        if entries.len() == BATCH {
            break;
        }
    }
    let mut keys = Vec::new();
    for e in &entries {
        match &e.change {
            Change::OrgCreated { org } => keys.extend(r.keys(org)?),
            Change::KeyAdded { org, version } => keys.extend(r.key(org, *version)?),
            Change::KeyRetired { .. }
            | Change::Revoked { .. }
            | Change::SecretsChanged { .. }
            | Change::SecretKeysChanged { .. }
            | Change::ThirdPartyChanged { .. } => {}
        }
    }
    Ok(Step::Apply {
        entries,
        keys,
        full,
    })
}

impl Authority {
    /// Loads keys and the deny-list whole, and the feed position they stand at.
    pub(super) async fn reload(&self) -> Result<(), StartError> {
        self.catch_up_from(true).await.map_err(StartError::Store)
    }

    /// Applies every feed entry this node has not applied yet.
    pub(crate) async fn catch_up(&self) -> Result<(), StoreError> {
        self.catch_up_from(false).await
    }

    async fn catch_up_from(&self, mut reload: bool) -> Result<(), StoreError> {
        let mut cursor = self.follower.apply.lock().await;
        loop {
            let at = cursor.clone();
            let step = self
                .store
                .read(move |r| read_step(r, &at, reload))
                .await
                .inspect_err(|_| self.follower.store_ok.store(false, Ordering::SeqCst))?;
            reload = false;
            match step {
                Step::Reload {
                    heads,
                    keys,
                    revocations,
                } => {
                    let loaded = keys
                        .iter()
                        .map(|k| Ok((k.org.clone(), k.version, self.live_key(k)?)))
                        .collect::<Result<_, StoreError>>()?;
                    self.keyring.replace(loaded);
                    self.deny.replace(revocations);
                    *cursor = heads;
                    let position = cursor.values().sum();
                    self.follower.position.store(position, Ordering::SeqCst);
                    self.follower.synced_now(position);
                    return Ok(());
                }
                Step::Apply {
                    entries,
                    keys,
                    full,
                } => {
                    for k in &keys {
                        match self.live_key(k)? {
                            Some(key) => self.keyring.insert(&k.org, k.version, &key),
                            None => self.keyring.retire(&k.org, k.version),
                        }
                    }
                    for e in &entries {
                        self.apply_change(&e.change);
                    }
                    for e in &entries {
                        let at = cursor.entry(e.stream.clone()).or_default();
                        *at = (*at).max(e.seq);
                    }
                    self.follower.synced_now(cursor.values().sum());
                    if !full {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// The unwrapped key of a live version; `None` if it is retired.
    fn live_key(&self, k: &RootKeyVersion) -> Result<Option<RootKey>, StoreError> {
        if k.retired.is_some() {
            return Ok(None);
        }
        self.master
            .unwrap_key(&k.org, k.version, &k.wrapped)
            .map(Some)
            .map_err(|_| {
                StoreError::Corrupt(format!(
                    "root key {} v{} does not unwrap with this master key",
                    k.org, k.version
                ))
            })
    }

    /// What an entry changes in memory (keys were loaded with the entries).
    pub(super) fn apply_change(&self, change: &Change) {
        match change {
            Change::KeyRetired { org, version } => self.keyring.retire(org, *version),
            Change::Revoked {
                token,
                effective,
                expires,
            } => self.deny.insert(
                *token,
                DenyEntry {
                    effective: *effective,
                    expires: *expires,
                },
            ),
            Change::SecretsChanged { .. }
            | Change::SecretKeysChanged { .. }
            | Change::ThirdPartyChanged { .. } => {}
            Change::OrgCreated { .. } | Change::KeyAdded { .. } => return,
        }
        // For whoever keeps secrets state or waits (the secrets store's caches, long
        // polls, which recheck their token on a revocation or a retired key), after the
        // deny-list and keys above took the change in; nobody listening is fine.
        let _ = self.changes.send(change.clone());
    }

    /// Changes of secrets, revocations and retired keys, as this node learns of them
    /// (its own commits and the feed).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// Tells this node's listeners of a change it committed itself, at once (the feed
    /// brings it again later; listeners re-read what they need, so twice is harmless).
    pub(crate) fn announce(&self, change: &Change) {
        let _ = self.changes.send(change.clone());
    }

    /// Applies what this node's own commit changed, at once (the feed brings the same
    /// again later; applying is idempotent).
    pub(super) async fn applied<R>(&self, f: impl FnOnce() -> R) -> R {
        let _apply = self.follower.apply.lock().await;
        f()
    }

    /// A refresh forced by a token under a key version this node does not know: at most
    /// one a second; callers within that second wait for the refresh under way. Whether
    /// verifying again is worth it.
    pub async fn refresh_for_unknown_key(&self) -> bool {
        let due = {
            let mut last = self.follower.last_forced.lock();
            let due = last.is_none_or(|t| t.elapsed() >= FORCED_REFRESH_EVERY);
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        if due {
            self.catch_up().await.is_ok()
        } else {
            drop(self.follower.apply.lock().await);
            true
        }
    }

    /// Writes queued last-used times and events in one transaction; on failure they
    /// are queued again for the next flush.
    pub async fn flush(&self) -> Result<(), StoreError> {
        // Held from taking the batch until it is written (or queued again).
        let _one_at_a_time = self.flushing.lock().await;
        let batch = self.usage.take(self.clock.now());
        if batch.is_empty() {
            self.flushes.record(true);
            return Ok(());
        }
        let batch = Arc::new(batch);
        let queued = batch.clone();
        let written = self
            .store
            .write(move |tx| {
                for (id, used) in &queued.uses {
                    tx.record_use(id, used)?;
                }
                // An aggregate of denials is appended once, then amended as it grows.
                let mut seqs = Vec::with_capacity(queued.denials.len());
                for d in &queued.denials {
                    let e = &d.event;
                    seqs.push(match d.seq {
                        Some(seq) => tx.amend_audit(&e.org, seq, e.count, e.last).map(|()| seq)?,
                        None => tx.append_audit_seq(e)?,
                    });
                }
                Ok::<_, StoreError>(seqs)
            })
            .await;
        self.flushes.record(written.is_ok());
        match written {
            Ok(seqs) => {
                self.usage.written(&batch, &seqs.value);
                Ok(())
            }
            Err(e) => {
                let batch = Arc::try_unwrap(batch).unwrap_or_else(|shared| (*shared).clone());
                self.usage.requeue(batch);
                Err(e)
            }
        }
    }

    /// How the background writer fares: its lag and its failures.
    pub fn flush_health(&self) -> FlushHealth {
        let f = &self.flushes;
        let ok = f.ok_ms.load(Ordering::Acquire);
        FlushHealth {
            lag: Duration::from_millis(f.millis().saturating_sub(ok)),
            errors: f.errors.load(Ordering::Relaxed),
        }
    }

    /// Drops deny-list and feed entries of expired tokens, feed entries older than the
    /// retention, and audit events older than theirs (if one is set).
    pub async fn compact(&self) -> Result<(), StoreError> {
        let now = self.clock.now();
        let before = now.saturating_sub(self.config.feed_retention.as_secs());
        let done = self.store.write(move |tx| tx.compact(now, before)).await?;
        if let Some(keep) = self.config.audit_retention {
            let before = now.saturating_sub(keep.as_secs());
            let gone = self.store.write(move |tx| tx.prune_audit(before)).await?;
            if gone.value > 0 {
                tracing::info!(
                    events = gone.value,
                    "audit events past --audit-retention pruned"
                );
            }
        }
        let dropped = self.deny.collect_garbage(now);
        let pruned = self.prune_ledgers(now).await?;
        let swept = self.sweep_cascades().await.map_err(|e| match e {
            super::RevokeError::Store(s) => s,
            other => StoreError::Internal(other.to_string()),
        })?;
        if swept > 0 {
            tracing::warn!(swept, "finished revoking the descendants of revoked tokens");
        }
        tracing::debug!(
            revocations = done.value.revocations,
            feed = done.value.feed,
            in_memory = dropped,
            ledger = pruned,
            "compacted"
        );
        Ok(())
    }

    /// Drops ledger records that expired or were revoked longer ago than their org's
    /// ledger retention (orgs without one keep them).
    async fn prune_ledgers(&self, now: u64) -> Result<usize, StoreError> {
        let orgs = self.store.read(|r| r.orgs()).await?;
        let mut pruned = 0;
        for org in orgs {
            let Some(keep) = org.ledger_retention_secs else {
                continue;
            };
            let cutoff = now.saturating_sub(keep);
            let done = self
                .store
                .write(move |tx| {
                    let gone: Vec<_> = tx
                        .ledger(&org.name)?
                        .into_iter()
                        .map(|e| e.record)
                        .filter(|r| {
                            r.expires <= cutoff || r.revoked.is_some_and(|v| v.effective <= cutoff)
                        })
                        .map(|r| r.id)
                        .collect();
                    for id in &gone {
                        tx.delete_token(id)?;
                    }
                    Ok::<_, StoreError>(gone.len())
                })
                .await?;
            pruned += done.value;
        }
        Ok(pruned)
    }

    /// Liveness aside, whether this node should be sent traffic.
    pub fn readiness(&self) -> Readiness {
        let lag = self.follower.lag();
        let store_ok = self.follower.store_ok.load(Ordering::SeqCst);
        let draining = self.is_draining();
        Readiness {
            backend: self.store.backend_name(),
            position: self.follower.position.load(Ordering::SeqCst),
            lag,
            store_ok,
            queued: self.usage.depth(),
            dropped: self.usage.dropped(),
            draining,
            ready: store_ok && lag <= self.follower.max_staleness && !draining,
        }
    }

    /// The node is shutting down: readiness turns 503 (load balancers stop sending),
    /// and long polls end with a retryable answer. There is no way back.
    pub fn begin_drain(&self) {
        self.draining.send_replace(true);
    }

    /// Whether [`Authority::begin_drain`] was called.
    pub fn is_draining(&self) -> bool {
        *self.draining.borrow()
    }

    /// Completes once the node begins to drain.
    pub(crate) fn drained(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.draining.subscribe();
        async move {
            let _ = rx.wait_for(|d| *d).await;
        }
    }

    /// How many revoked ids the deny-list holds.
    pub fn deny_list_len(&self) -> usize {
        self.deny.len()
    }
}

/// The background tasks of a running authority.
pub struct Background {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    authority: Arc<Authority>,
}

impl std::fmt::Debug for Background {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Background")
            .field("tasks", &self.tasks.len())
            .finish_non_exhaustive()
    }
}

impl Background {
    /// Stops the tasks, then writes what is still queued.
    pub async fn stop(self) -> Result<(), StoreError> {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        self.authority.flush().await
    }
}

/// Runs `work` every `every` (and when `wake` fires) until stopped.
fn every<F, Fut>(
    mut stop: watch::Receiver<bool>,
    every: Duration,
    wake: Option<Arc<tokio::sync::Notify>>,
    mut work: F,
) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        loop {
            let woken = async {
                match &wake {
                    Some(n) => n.notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = stop.changed() => return,
                () = tokio::time::sleep(every) => {}
                () = woken => {}
            }
            work().await;
        }
    })
}

pub(super) fn start(authority: &Arc<Authority>) -> Background {
    let (stop, rx) = watch::channel(false);
    let cfg = authority.config.clone();
    let a = authority.clone();
    let flusher = every(rx.clone(), cfg.flush_every, None, move || {
        let a = a.clone();
        async move {
            if let Err(e) = a.flush().await {
                tracing::error!(error = %e, "writing last-used times and events failed");
            }
        }
    });
    let a = authority.clone();
    let failing = Arc::new(AtomicBool::new(false));
    let follower = every(
        rx.clone(),
        cfg.poll_every,
        Some(authority.store.feed_signal()),
        move || {
            let (a, failing) = (a.clone(), failing.clone());
            async move {
                match a.catch_up().await {
                    // Said once when it starts failing and once when it recovers.
                    Ok(()) if failing.swap(false, Ordering::SeqCst) => {
                        tracing::info!("caught up with the change feed again");
                    }
                    Ok(()) => {}
                    Err(e) if !failing.swap(true, Ordering::SeqCst) => {
                        tracing::warn!(error = %e, "cannot read the change feed");
                    }
                    Err(_) => {}
                }
            }
        },
    );
    let a = authority.clone();
    let compactor = every(rx, cfg.compact_every, None, move || {
        let a = a.clone();
        async move {
            if let Err(e) = a.compact().await {
                tracing::warn!(error = %e, "compaction failed");
            }
        }
    });
    Background {
        stop,
        tasks: vec![flusher, follower, compactor],
        authority: authority.clone(),
    }
}
