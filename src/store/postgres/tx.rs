//! A transaction's statements on PostgreSQL: each driven with `Handle::block_on` on the
//! blocking pool; a serialization failure marks the body for another run. The SQL of
//! each operation is in `reads.rs` ([`Read`](crate::store::Read)) and `writes.rs`
//! ([`Tx`](crate::store::Tx)).

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
}

impl<'r> PgTx<'r> {
    pub(super) fn new(
        txn: &'r deadpool_postgres::ClientWrapper,
        h: &'r Handle,
        lanes: Option<(&'r Lanes, &'r mut Queued)>,
    ) -> Self {
        PgTx {
            txn,
            h,
            lanes,
            changes: Vec::new(),
            retry: false,
            orgs: std::collections::BTreeSet::new(),
        }
    }

    /// Before this write changes `org`'s rows (its counter rows above all): its place in
    /// this node's queue of the org's writers. Taken at once if free; if another write of this node holds
    /// it, this attempt gives up (rolling back frees whatever it took, so nothing
    /// waits inside a transaction) and the re-run queues for the place first.
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

    pub(super) fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let txn = self.txn;
        let r = self.h.block_on(async {
            let st = txn.prepare_cached(sql).await?;
            txn.query(&st, params).await
        });
        r.map_err(|e| self.fail(e))
    }

    pub(super) fn execute(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let txn = self.txn;
        let r = self.h.block_on(async {
            let st = txn.prepare_cached(sql).await?;
            txn.execute(&st, params).await
        });
        r.map_err(|e| self.fail(e))
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
        self.query(sql, params)?
            .iter()
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
