//! Audit events that must be on disk before the request is answered (a reveal), group
//! committed: callers queue their events; whoever gets the commit lock writes every
//! queued event in one transaction and tells each caller. One fsync serves all the
//! callers that arrived while the previous commit ran.

use std::sync::Arc;

use tokio::sync::{Mutex, oneshot};

use super::Authority;
use super::shared::Exclusive;
use crate::model::AuditEvent;
use crate::store::StoreError;

/// Most events one commit carries; the rest lead the next one.
const MAX_BATCH: usize = 1000;

type Waiting = (AuditEvent, oneshot::Sender<Result<(), StoreError>>);

/// The queue and the commit lock.
#[derive(Debug, Default)]
pub(crate) struct Journal {
    queue: Exclusive<Vec<Waiting>>,
    commit: Arc<Mutex<()>>,
}

impl Authority {
    /// Appends `event` to the audit log; returns once it is committed (or failed to be).
    pub async fn audit_durably(&self, event: AuditEvent) -> Result<(), StoreError> {
        let (reply, mut answer) = oneshot::channel();
        self.journal.queue.lock().push((event, reply));
        // The leader replies before it lets the lock go: holding the lock with no
        // answer means our event is still queued, so this commit carries it.
        let guard = self.journal.commit.clone().lock_owned().await;
        if let Ok(done) = answer.try_recv() {
            return done;
        }
        let batch: Vec<Waiting> = {
            let mut queue = self.journal.queue.lock();
            let n = queue.len().min(MAX_BATCH);
            // Oldest first, so ours (queued before we waited) is among them.
            queue.drain(..n).collect()
        };
        let events: Arc<Vec<AuditEvent>> = Arc::new(batch.iter().map(|(e, _)| e.clone()).collect());
        let store = self.store.clone();
        // A task of its own: a caller that goes away (its client hung up) must not
        // abandon the others' commit half way.
        tokio::spawn(async move {
            let result = store
                .write(move |tx| {
                    for e in events.iter() {
                        tx.append_audit(e)?;
                    }
                    Ok::<_, StoreError>(())
                })
                .await
                .map(|_| ());
            for (_, reply) in batch {
                let _ = reply.send(result.clone());
            }
            drop(guard);
        });
        answer.await.unwrap_or_else(|_| {
            Err(StoreError::Internal(
                "the audit commit ended without an answer".into(),
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::authority::tests::open;
    use crate::model::{AuditEvent, Outcome};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_events_are_all_committed_before_their_callers_return() {
        let (_dir, a, _op) = open().await;
        let before = a
            .store()
            .read(|r| r.audit_after("system", 0, 10_000))
            .await
            .unwrap()
            .len();
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let a = Arc::clone(&a);
                tokio::spawn(async move {
                    let event = AuditEvent::new(
                        "system",
                        "secret.reveal",
                        crate::model::Actor::default(),
                        Outcome::Ok,
                        format!("event {i}"),
                        1,
                    );
                    a.audit_durably(event).await.unwrap();
                    // Committed by the time the call returns: this node reads it back.
                    let seen = a
                        .store()
                        .read(|r| r.audit_after("system", 0, 10_000))
                        .await
                        .unwrap();
                    assert!(seen.iter().any(|e| e.detail == format!("event {i}")));
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let after = a
            .store()
            .read(|r| r.audit_after("system", 0, 10_000))
            .await
            .unwrap();
        assert_eq!(after.len() - before, 200);
    }
}
