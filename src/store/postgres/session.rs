//! A store operation's connection and transaction: the write loop (SERIALIZABLE,
//! retries on 40001 and 40P01, NOTIFY with the commit), the read-only snapshot for
//! reads, and what driver errors mean to the rest of the store.

use std::sync::atomic::Ordering;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use tokio_postgres::Socket;
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};

use super::tx::{BEGIN_READ, BEGIN_WRITE, PgTx, Queued, lane};
use super::{CHANNEL, CONNECT_TIMEOUT, MAX_ATTEMPTS, POOL_SIZE, PgStore};
use crate::store::{Committed, Ending, Read, StoreError, Tx};

pub(super) fn retryable(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(&SqlState::T_R_SERIALIZATION_FAILURE) | Some(&SqlState::T_R_DEADLOCK_DETECTED)
    )
}

pub(super) fn pg_err(e: tokio_postgres::Error) -> StoreError {
    match e.code() {
        Some(&SqlState::UNIQUE_VIOLATION) => StoreError::Conflict("record"),
        // `lock_timeout`: another node holds a row this write needs (a write to the
        // same org, stuck).
        Some(&SqlState::LOCK_NOT_AVAILABLE) => {
            StoreError::Unavailable("the database is busy with other writes; try again".into())
        }
        Some(&SqlState::T_R_SERIALIZATION_FAILURE) | Some(&SqlState::T_R_DEADLOCK_DETECTED) => {
            StoreError::Unavailable("too many conflicting transactions; try again".into())
        }
        Some(code) if code.code().starts_with("08") || code.code().starts_with("57") => {
            StoreError::Unavailable(e.to_string())
        }
        // The server's message (tokio-postgres shows only "db error").
        Some(code) => StoreError::Internal(match e.as_db_error() {
            Some(db) => format!("{} ({})", db.message(), code.code()),
            None => e.to_string(),
        }),
        // No SQLSTATE: the connection itself failed.
        None => StoreError::Unavailable(e.to_string()),
    }
}

pub(super) fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Unavailable(format!("no database connection: {e}"))
}

impl PgStore {
    /// Sessions of this database waiting for a lock (any node's: a writer queued on a
    /// row another write of its org holds).
    #[cfg(test)]
    pub(crate) async fn writers_waiting(&self) -> usize {
        let conn = self.pool.get().await.expect("a connection");
        let row = conn
            .query_one(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND pid IN \
                 (SELECT pid FROM pg_stat_activity WHERE datname = current_database())",
                &[],
            )
            .await
            .expect("pg_locks");
        usize::try_from(row.get::<_, i64>(0)).unwrap_or(usize::MAX)
    }

    pub(in crate::store) fn write<T, E: From<StoreError>>(
        &self,
        body: &mut dyn FnMut(&mut dyn Tx) -> Result<T, E>,
        ending: Ending,
    ) -> Result<Committed<T>, E> {
        let h = &self.handle;
        let mut conn = Session::new(h.block_on(self.pool.get()).map_err(pool_err)?);
        // No lock but the rows a write touches: a write takes the counter rows of its
        // own org's feed stream and audit log, so writers of one org queue on them (or
        // abort each other and retry) and writers of different orgs never wait on each
        // other (docs/SCALING.md, "Writes"). So that writers of one org on this node do
        // not abort each other round after round, they also take turns: a write takes
        // its place in this node's queue of an org's writers before it takes the org's
        // counter rows (`PgTx::claim`), and one that conflicted, or found the place
        // taken, queues for its orgs' places before it runs again.
        let mut queued = Queued::default();
        let mut injected = self.extra_runs.load(Ordering::SeqCst);
        let mut attempt = 0;
        loop {
            attempt += 1;
            // Set before the body runs, so that a panic in it closes the connection.
            conn.in_transaction = true;
            let mut tx = PgTx::new(
                conn.client(),
                h,
                Some((&self.queues, &mut queued)),
                BEGIN_WRITE,
            );
            let result = body(&mut tx);
            let commit = result.is_ok() && injected == 0 && ending == Ending::Commit;
            // NOTIFY only takes effect with the commit, sent with it (in the same round
            // trip as the statements put off); optional (CockroachDB has none), so a
            // failure only costs listeners promptness. A rehearsal (or a run rolled back
            // for a test) sends what was put off too: its failure is the write's.
            let ended = match (&result, commit, tx.changes.is_empty()) {
                (Err(_), _, _) => {
                    tx.abandon();
                    Ok(())
                }
                (Ok(_), true, false) => tx.finish(&format!("NOTIFY {CHANNEL}; COMMIT")),
                (Ok(_), true, true) => tx.finish("COMMIT"),
                (Ok(_), false, _) => tx.finish("ROLLBACK"),
            };
            let (retry, changes) = (tx.retry, std::mem::take(&mut tx.changes));
            let touched = std::mem::take(&mut tx.orgs);
            let open = tx.is_open();
            self.round_trips.fetch_add(tx.round_trips, Ordering::SeqCst);
            drop(tx);
            // Still open: even ROLLBACK failed, and the connection goes (see `Session`).
            conn.in_transaction = open;
            match (result, ended) {
                (Ok(_), Ok(())) if injected > 0 => injected -= 1,
                (Ok(value), Ok(())) if ending == Ending::RollBack => {
                    return Ok(Committed {
                        value,
                        changes: Vec::new(),
                    });
                }
                (Ok(value), Ok(())) => return Ok(Committed { value, changes }),
                (Ok(_), Err(_)) | (Err(_), _) if injected > 0 => injected -= 1,
                (Ok(_), Err(_)) | (Err(_), _) if retry && attempt < MAX_ATTEMPTS => {
                    if !self.queue(&mut queued, touched) {
                        std::thread::sleep(backoff(attempt));
                    }
                }
                (Ok(_), Err(e)) => return Err(e.into()),
                (Err(e), _) => return Err(e),
            }
            if conn.in_transaction {
                // The rollback failed: the connection goes (see `Session`), and so does
                // this write.
                return Err(StoreError::Unavailable("lost the database connection".into()).into());
            }
        }
    }

    /// Queues behind this node's other writers of `touched` (with the orgs already
    /// queued on; the lane `""` for a write that failed before it took any): whether it
    /// took new places (then the conflicting writer has
    /// committed, and the re-run need not back off). Places are taken afresh in name
    /// order, so that two writers never wait on each other's.
    fn queue(&self, queued: &mut Queued, mut touched: std::collections::BTreeSet<String>) -> bool {
        if touched.is_empty() {
            // It failed before it took an org's counter rows: the node-wide lane.
            touched.insert(String::new());
        }
        if touched.is_subset(&queued.orgs) {
            return false;
        }
        queued.orgs.extend(touched);
        queued.guards.clear();
        for org in &queued.orgs {
            let q = lane(&self.queues, org);
            queued.guards.push(self.handle.block_on(q.lock_owned()));
        }
        true
    }

    pub(in crate::store) fn read<T, E: From<StoreError>>(
        &self,
        body: impl FnOnce(&mut dyn Read) -> Result<T, E>,
    ) -> Result<T, E> {
        let h = &self.handle;
        let mut conn = Session::new(h.block_on(self.pool.get()).map_err(pool_err)?);
        conn.in_transaction = true;
        let mut tx = PgTx::new(conn.client(), h, None, BEGIN_READ);
        let out = body(&mut tx);
        // A read's failure is its body's: the end only frees the snapshot.
        let _ = tx.finish("COMMIT");
        let open = tx.is_open();
        self.round_trips.fetch_add(tx.round_trips, Ordering::SeqCst);
        drop(tx);
        conn.in_transaction = open;
        out
    }
}

/// A pooled connection while a store operation uses it. If the operation ends with
/// the connection inside a transaction (an error mid-way, or a panic), the connection
/// is closed instead of going back to the pool: the server then rolls back and releases
/// the rows it held.
struct Session {
    client: Option<deadpool_postgres::Object>,
    in_transaction: bool,
}

impl Session {
    fn new(client: deadpool_postgres::Object) -> Self {
        Session {
            client: Some(client),
            in_transaction: false,
        }
    }

    fn client(&self) -> &deadpool_postgres::ClientWrapper {
        self.client
            .as_ref()
            .unwrap_or_else(|| unreachable!("the client is taken only on drop"))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.in_transaction
            && let Some(client) = self.client.take()
        {
            drop(deadpool_postgres::Object::take(client));
        }
    }
}

/// 2, 4, 8 … ms, at most 200 ms, with jitter so that racing nodes spread out.
pub(super) fn backoff(attempt: u32) -> Duration {
    let base = 2u64.saturating_pow(attempt.min(7)).min(200);
    let mut jitter = [0u8; 1];
    let _ = getrandom::fill(&mut jitter);
    Duration::from_millis(base + u64::from(jitter[0]) % (base + 1))
}

pub(super) fn make_pool<T>(config: tokio_postgres::Config, tls: T) -> Result<Pool, String>
where
    T: MakeTlsConnect<Socket> + Clone + Sync + Send + 'static,
    T::Stream: Sync + Send,
    T::TlsConnect: Sync + Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    let manager = Manager::from_config(
        config,
        tls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(POOL_SIZE)
        .timeouts(Timeouts {
            wait: Some(CONNECT_TIMEOUT),
            create: Some(CONNECT_TIMEOUT),
            recycle: Some(CONNECT_TIMEOUT),
        })
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| e.to_string())
}
