//! A transaction's statements on PostgreSQL, sent in as few round trips as they allow
//! (docs/SCALING.md, "Round trips"): a write whose answer the body does not need (an
//! upsert, the feed entry, the audit event) is put off and sent with the next statement
//! that needs an answer, or with COMMIT; BEGIN goes with the first statement. Each
//! round trip is driven with `Handle::block_on` on the blocking pool. A statement that
//! fails ends the transaction here as it does on the server: nothing more is sent, and
//! it cannot commit. A serialization failure marks the body for another run. The SQL of
//! each operation is in `reads.rs` ([`Read`](crate::store::Read)) and `writes.rs`
//! ([`Tx`](crate::store::Tx)).

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use tokio::runtime::Handle;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::super::StoreError;
use super::super::rows::Stored;
use super::session::{pg_err, retryable};
use super::{int, uint};
use crate::model::{AuditEvent, FeedEntry, ThirdParty, TokenId};

/// This node's queue of writers per org (see `session.rs`).
pub(super) type Lanes =
    std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<tokio::sync::Mutex<()>>>>;

/// Org `org`'s queue in `lanes` (made on first use).
pub(super) fn lane(lanes: &Lanes, org: &str) -> std::sync::Arc<tokio::sync::Mutex<()>> {
    let mut lanes = lanes.lock().unwrap_or_else(|p| p.into_inner());
    lanes.entry(org.to_owned()).or_default().clone()
}

/// The orgs a write has its place for in this node's queues, and the places.
#[derive(Default)]
pub(super) struct Queued {
    pub(super) orgs: std::collections::BTreeSet<String>,
    pub(super) guards: Vec<tokio::sync::OwnedMutexGuard<()>>,
}

/// A parameter of a statement put off: owned, as it is sent after the call returns.
pub(super) type Param = Box<dyn ToSql + Sync + Send>;

/// `v` as a parameter of a statement put off.
pub(super) fn param<T: ToSql + Sync + Send + 'static>(v: T) -> Param {
    Box::new(v)
}

/// A statement put off until the next round trip.
struct Later {
    sql: Cow<'static, str>,
    params: Vec<Param>,
    /// The index in `changes` of the feed entry whose position this statement answers.
    numbers: Option<usize>,
}

/// How a transaction starts: sent with its first round trip.
pub(super) const BEGIN_WRITE: &str = "BEGIN ISOLATION LEVEL SERIALIZABLE";
pub(super) const BEGIN_READ: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

pub(super) struct PgTx<'r> {
    txn: &'r deadpool_postgres::ClientWrapper,
    h: &'r Handle,
    /// For a write: this node's queues, and the places this write holds.
    lanes: Option<(&'r Lanes, &'r mut Queued)>,
    pub(super) changes: Vec<FeedEntry>,
    /// A statement failed with a serialization failure: re-run the body.
    pub(super) retry: bool,
    /// The orgs whose counter rows this transaction took (feed, audit): what a re-run
    /// queues on.
    pub(super) orgs: std::collections::BTreeSet<String>,
    /// BEGIN, until it is sent.
    begin: Option<&'static str>,
    /// The transaction is open on the server (BEGIN sent, no end yet).
    open: bool,
    later: Vec<Later>,
    /// The first statement that failed: the transaction is aborted.
    failed: Option<StoreError>,
    /// BEGIN failed: the connection is closed, whatever else it answers.
    broken: bool,
    /// Round trips made (a statement's first preparation on the connection included).
    pub(super) round_trips: u64,
    /// Rows read ahead, by SQL and parameters (as `Debug` shows them), until used or
    /// until any statement is sent or put off.
    ahead: Vec<(&'static str, String, Vec<Row>)>,
}

impl<'r> PgTx<'r> {
    pub(super) fn new(
        txn: &'r deadpool_postgres::ClientWrapper,
        h: &'r Handle,
        lanes: Option<(&'r Lanes, &'r mut Queued)>,
        begin: &'static str,
    ) -> Self {
        PgTx {
            txn,
            h,
            lanes,
            changes: Vec::new(),
            retry: false,
            orgs: std::collections::BTreeSet::new(),
            begin: Some(begin),
            open: false,
            later: Vec::new(),
            failed: None,
            broken: false,
            round_trips: 0,
            ahead: Vec::new(),
        }
    }

    /// Whether the transaction may still be open on the server, or the connection is
    /// otherwise unfit: then it must not go back to the pool.
    pub(super) fn is_open(&self) -> bool {
        self.open || self.broken
    }

    /// Before this write changes `org`'s rows (its counter rows above all): its place in
    /// this node's queue of the org's writers. Taken at once if free; if another write
    /// of this node holds it, this attempt gives up (rolling back frees whatever it
    /// took, so nothing waits inside a transaction) and the re-run queues for the place
    /// first.
    pub(super) fn claim(&mut self, org: &str) -> Result<(), StoreError> {
        self.orgs.insert(org.to_owned());
        let Some((lanes, queued)) = &mut self.lanes else {
            return Ok(());
        };
        if queued.orgs.contains(org) {
            return Ok(());
        }
        match lane(lanes, org).try_lock_owned() {
            Ok(guard) => {
                queued.orgs.insert(org.to_owned());
                queued.guards.push(guard);
                Ok(())
            }
            Err(_) => {
                self.retry = true;
                Err(StoreError::Unavailable(
                    "another write of this org goes first; try again".into(),
                ))
            }
        }
    }

    pub(super) fn fail(&mut self, e: tokio_postgres::Error) -> StoreError {
        if retryable(&e) {
            self.retry = true;
        }
        pg_err(e)
    }

    /// Puts off a statement whose answer is not needed: it is sent with the next round
    /// trip, and its failure is that round trip's (or COMMIT's).
    pub(super) fn later(&mut self, sql: impl Into<Cow<'static, str>>, params: Vec<Param>) {
        // What was read ahead may be what this changes.
        self.ahead.clear();
        self.later.push(Later {
            sql: sql.into(),
            params,
            numbers: None,
        });
    }

    /// Puts off the statement that writes `entry` to the feed; it answers the entry's
    /// position, filled in when it has run.
    pub(super) fn later_feed_entry(
        &mut self,
        sql: &'static str,
        params: Vec<Param>,
        entry: FeedEntry,
    ) {
        self.ahead.clear();
        self.changes.push(entry);
        self.later.push(Later {
            sql: sql.into(),
            params,
            numbers: Some(self.changes.len() - 1),
        });
    }

    pub(super) fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        Ok(self.one_trip(sql, params)?.0)
    }

    /// The rows the statement changed.
    pub(super) fn execute(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        Ok(self.one_trip(sql, params)?.1)
    }

    fn one_trip(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<(Vec<Row>, u64), StoreError> {
        let mut answers = self.round_trip(&[(sql, params)], None)?;
        Ok(answers.pop().unwrap_or_default())
    }

    /// Sends `reads` (the SQL of each from `reads.rs`) in one round trip, with what was
    /// put off, and keeps their rows for [`PgTx::read`].
    pub(super) fn read_ahead_sql(
        &mut self,
        reads: Vec<(&'static str, Vec<Param>)>,
    ) -> Result<(), StoreError> {
        let asks: Vec<(&str, Vec<&(dyn ToSql + Sync)>)> =
            reads.iter().map(|(sql, p)| (*sql, refs(p))).collect();
        let asks: Vec<(&str, &[&(dyn ToSql + Sync)])> =
            asks.iter().map(|(sql, p)| (*sql, &p[..])).collect();
        let answers = self.round_trip(&asks, None)?;
        self.ahead = reads
            .iter()
            .zip(answers)
            .map(|((sql, p), (rows, _))| (*sql, format!("{p:?}"), rows))
            .collect();
        Ok(())
    }

    /// The rows of a read (the SQL and parameters `reads.rs` gives it): those read
    /// ahead if they are still the answer, else from a round trip of its own.
    pub(super) fn read(
        &mut self,
        sql: &'static str,
        params: Vec<Param>,
    ) -> Result<Vec<Row>, StoreError> {
        if !self.ahead.is_empty() {
            let key = format!("{params:?}");
            if let Some(i) = self
                .ahead
                .iter()
                .position(|(s, k, _)| *s == sql && *k == key)
            {
                return Ok(self.ahead.swap_remove(i).2);
            }
        }
        self.query(sql, &refs(&params))
    }

    /// Ends the transaction with `end` (`COMMIT`, `NOTIFY …; COMMIT` or `ROLLBACK`),
    /// sent with the statements put off: their failure is the transaction's. A
    /// transaction that sent nothing has nothing to end. A failure leaves it rolled back
    /// (or the connection marked open, to be closed).
    pub(super) fn finish(&mut self, end: &str) -> Result<(), StoreError> {
        if let Some(e) = &self.failed {
            let e = e.clone();
            self.abandon();
            return Err(e);
        }
        if !self.open && self.later.is_empty() {
            // Nothing was sent: there is no transaction to end.
            self.begin = None;
            return Ok(());
        }
        match self.round_trip(&[], Some(end)) {
            Ok(_) => {
                self.open = false;
                Ok(())
            }
            Err(e) => {
                self.abandon();
                Err(e)
            }
        }
    }

    /// Ends a transaction whose body failed: what was put off is dropped unsent.
    pub(super) fn abandon(&mut self) {
        self.later.clear();
        self.begin = None;
        if self.open {
            self.round_trips += 1;
            if self.h.block_on(self.txn.batch_execute("ROLLBACK")).is_ok() {
                self.open = false;
            }
        }
    }

    /// The statement prepared (from the connection's cache after its first use).
    fn prepare(&mut self, sql: &str) -> Result<tokio_postgres::Statement, StoreError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let txn = self.txn;
        let cached = txn.statement_cache.size();
        let r = self.h.block_on(txn.prepare_cached(sql));
        if txn.statement_cache.size() != cached || r.is_err() {
            self.round_trips += 1;
        }
        r.map_err(|e| self.failed(e))
    }

    /// Records the first failure: the transaction is aborted on the server, so nothing
    /// more is sent and it cannot commit.
    fn failed(&mut self, e: tokio_postgres::Error) -> StoreError {
        let e = self.fail(e);
        self.failed.get_or_insert_with(|| e.clone());
        e
    }

    /// One round trip: BEGIN if not sent yet, the statements put off, then `asks` (their
    /// rows and counts answered, in order), then the batch `end`, pipelined in this
    /// order. What was read ahead is dropped: any statement may change it. Each statement
    /// has its own sync point, so one that fails does not hide the next (which fails
    /// too, the transaction being aborted): the first failure is the answer.
    ///
    /// BEGIN is sent with the statement after it rather than before, a round trip
    /// earlier. BEGIN fails only on a connection that cannot run that statement either
    /// (one lost, or in an aborted transaction; a session left inside a transaction is
    /// never reused, see `session.rs`), so the statement never runs outside the
    /// transaction; if BEGIN fails the connection is dropped all the same.
    fn round_trip(
        &mut self,
        asks: &[(&str, &[&(dyn ToSql + Sync)])],
        end: Option<&str>,
    ) -> Result<Vec<(Vec<Row>, u64)>, StoreError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.ahead.clear();
        let later = std::mem::take(&mut self.later);
        let mut statements = Vec::with_capacity(later.len());
        for l in &later {
            statements.push(self.prepare(&l.sql)?);
        }
        let mut asked = Vec::with_capacity(asks.len());
        for (sql, params) in asks {
            asked.push((self.prepare(sql)?, *params));
        }
        let begin = self.begin.take();
        if begin.is_some() {
            self.open = true;
        }
        let txn = self.txn;
        let params: Vec<Vec<&(dyn ToSql + Sync)>> = later.iter().map(|l| refs(&l.params)).collect();
        let mut sent: Vec<Pin<Box<dyn Future<Output = Answer> + '_>>> =
            Vec::with_capacity(later.len() + asked.len() + 2);
        if let Some(b) = begin {
            sent.push(Box::pin(async move {
                txn.batch_execute(b).await.map(|()| (Vec::new(), 0))
            }));
        }
        for (st, p) in statements.iter().zip(&params) {
            sent.push(Box::pin(run(txn, st, p)));
        }
        for (st, p) in &asked {
            sent.push(Box::pin(run(txn, st, p)));
        }
        if let Some(end) = end {
            sent.push(Box::pin(async move {
                txn.batch_execute(end).await.map(|()| (Vec::new(), 0))
            }));
        }
        self.round_trips += 1;
        let mut results = self.h.block_on(in_order(sent)).into_iter();
        if begin.is_some()
            && let Some(Err(e)) = results.next()
        {
            // The connection goes (see above).
            self.broken = true;
            return Err(self.failed(e));
        }
        let mut first: Option<tokio_postgres::Error> = None;
        for (l, r) in later.iter().zip(&mut results) {
            match r {
                Ok((rows, _)) => {
                    // The statement succeeded (and may have committed with this round
                    // trip's COMMIT): a position it did not answer stays 0 rather than
                    // failing a write that is done. It always answers one.
                    let seq = rows.first().and_then(|r| r.try_get::<_, i64>(0).ok());
                    if let (Some(i), Some(seq)) = (l.numbers, seq)
                        && let Some(c) = self.changes.get_mut(i)
                    {
                        c.seq = uint(seq);
                    }
                }
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        let mut answers = Vec::with_capacity(asked.len());
        for r in results.by_ref().take(asked.len()) {
            match r {
                Ok(answer) => answers.push(answer),
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        if let Some(Err(e)) = end.and_then(|_| results.next()) {
            first.get_or_insert(e);
        }
        match first {
            Some(e) => Err(self.failed(e)),
            None => Ok(answers),
        }
    }

    /// A scope's number in `table` (`macvault_secret_counters` or
    /// `macvault_secret_blind_writes`: `org`, `app`, `value`), 0 when it has none.
    pub(super) fn scope_number(
        &mut self,
        table: &str,
        org: &str,
        app: Option<&str>,
    ) -> Result<u64, StoreError> {
        let sql = format!("SELECT value FROM {table} WHERE org = $1 AND app = $2");
        let rows = self.query(&sql, &[&org, &scope(app)])?;
        match rows.first() {
            Some(r) => Ok(uint(r.try_get(0).map_err(|e| self.fail(e))?)),
            None => Ok(0),
        }
    }

    /// Adds one to a scope's number in `table`; the new value.
    pub(super) fn bump_scope_number(
        &mut self,
        table: &str,
        org: &str,
        app: Option<&str>,
    ) -> Result<u64, StoreError> {
        let sql = format!(
            "INSERT INTO {table} (org, app, value) VALUES ($1, $2, 1) \
             ON CONFLICT (org, app) DO UPDATE SET value = {table}.value + 1 RETURNING value"
        );
        let rows = self.query(&sql, &[&org, &scope(app)])?;
        match rows.first() {
            Some(r) => Ok(uint(r.try_get(0).map_err(|e| self.fail(e))?)),
            None => Err(StoreError::Internal(format!(
                "no value returned by {table}"
            ))),
        }
    }

    /// Sets a scope's number in `table`.
    pub(super) fn set_scope_number(
        &mut self,
        table: &str,
        org: &str,
        app: Option<&str>,
        value: u64,
    ) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO {table} (org, app, value) VALUES ($1, $2, $3) \
             ON CONFLICT (org, app) DO UPDATE SET value = excluded.value"
        );
        self.execute(&sql, &[&org, &scope(app), &int(value)])?;
        Ok(())
    }

    pub(super) fn rows<T: Stored>(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<T>, StoreError> {
        let rows = self.query(sql, params)?;
        self.decoded(rows)
    }

    /// Rows of one column, a stored record each.
    pub(super) fn decoded<T: Stored>(&mut self, rows: Vec<Row>) -> Result<Vec<T>, StoreError> {
        rows.iter()
            .map(|r| T::decode(r.try_get::<_, &[u8]>(0).map_err(|e| self.fail(e))?))
            .collect()
    }

    pub(super) fn one<T: Stored>(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<T>, StoreError> {
        Ok(self.rows(sql, params)?.into_iter().next())
    }

    /// Indexes a third party's key ids anew: those it no longer holds go, and a key
    /// id another third party holds is a conflict.
    pub(super) fn index_third_party_keys(&mut self, tp: &ThirdParty) -> Result<(), StoreError> {
        self.execute(
            "DELETE FROM macvault_third_party_keys WHERE org = $1 AND name = $2",
            &[&tp.org, &tp.name],
        )?;
        for key in &tp.keys {
            let added = self.execute(
                "INSERT INTO macvault_third_party_keys (kid, org, name) VALUES ($1, $2, $3) \
                 ON CONFLICT (kid) DO NOTHING",
                &[&&key.id.0[..], &tp.org, &tp.name],
            )?;
            if added == 0 {
                return Err(StoreError::Conflict("third-party key"));
            }
        }
        Ok(())
    }

    pub(super) fn audit_rows(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = self.query(sql, params)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: i64 = r.try_get(0).map_err(|e| self.fail(e))?;
            let mut event = AuditEvent::decode(r.try_get(1).map_err(|e| self.fail(e))?)?;
            event.seq = uint(id);
            let count: Option<i64> = r.try_get(2).map_err(|e| self.fail(e))?;
            let last: Option<i64> = r.try_get(3).map_err(|e| self.fail(e))?;
            if let (Some(count), Some(last)) = (count, last) {
                event = event.times(uint(count), uint(last));
            }
            out.push(event);
        }
        Ok(out)
    }
}

/// Parameters as the driver takes them.
fn refs(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect()
}

/// A statement's rows and the count of rows it changed.
type Answer = Result<(Vec<Row>, u64), tokio_postgres::Error>;

/// Runs a prepared statement: its request is sent on the first poll.
async fn run(
    txn: &deadpool_postgres::ClientWrapper,
    st: &tokio_postgres::Statement,
    params: &[&(dyn ToSql + Sync)],
) -> Answer {
    let stream = txn.query_raw(st, params.iter().copied()).await?;
    futures_util::pin_mut!(stream);
    let mut rows = Vec::new();
    while let Some(row) = futures_util::TryStreamExt::try_next(&mut stream).await? {
        rows.push(row);
    }
    Ok((rows, stream.rows_affected().unwrap_or(0)))
}

/// The futures' outputs, polled in their order: each sends its request on its first
/// poll, so the requests go out in this order, one after the other without waiting.
async fn in_order<'f, T>(mut futures: Vec<Pin<Box<dyn Future<Output = T> + 'f>>>) -> Vec<T> {
    let mut done: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut waiting = false;
        for (f, d) in futures.iter_mut().zip(done.iter_mut()) {
            if d.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *d = Some(v),
                    Poll::Pending => waiting = true,
                }
            }
        }
        if waiting {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    done.into_iter().flatten().collect()
}

/// An org's own secrets are kept under the app '' (app names are never empty).
pub(super) fn scope(app: Option<&str>) -> &str {
    app.unwrap_or("")
}

pub(super) fn token_id(bytes: &[u8]) -> Result<TokenId, StoreError> {
    let id: [u8; 16] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("token id".into()))?;
    Ok(TokenId(id))
}

pub(super) fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
