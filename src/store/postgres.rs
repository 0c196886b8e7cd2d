//! The PostgreSQL backend, for many nodes on one database.
//!
//! Every transaction is SERIALIZABLE and is re-run (with a bound) on 40001 and 40P01.
//! Writers queue on one session advisory lock (see `PgStore::write`), which ties the
//! writes to PostgreSQL; otherwise the SQL keeps to what CockroachDB and YugabyteDB
//! also take: no server-side functions, `INSERT … ON CONFLICT`. Only PostgreSQL 15 is
//! tested here (docs/SCALING.md). Tables have real columns for what is filtered or joined beside
//! the versioned row payload (`row`), which is the record's source of truth.
//!
//! Bodies are synchronous (see the module above): they run on the blocking pool, and
//! each statement is driven there with `Handle::block_on`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use futures_util::StreamExt as _;
use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, IsolationLevel, NoTls, Row, Socket};

use super::rows::{FeedRow, Stored};
use super::{
    Committed, Compacted, DenyEntry, Ending, FeedHead, Lease, OpenError, Read, SCHEMA_COMPAT,
    SCHEMA_VERSION, StoreError, Tx, VersionKey,
};
use crate::model::{
    AuditEvent, Change, FeedEntry, LastUsed, LedgerEntry, Org, RootKeyVersion, SecretHead,
    SecretKeys, SecretVersion, TokenId, TokenRecord,
};

/// How many times a transaction is tried before its conflict is reported.
const MAX_ATTEMPTS: u32 = 12;
/// Connections a node keeps.
const POOL_SIZE: usize = 16;
/// How long to wait for a connection (or to make one) before answering "unavailable".
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The NOTIFY channel of the change feed.
const CHANNEL: &str = "macvault_feed";
/// The session advisory lock every writer holds around its transaction.
const WRITE_LOCK: i64 = 0x6d76_5f77_7269_7465; // "mv_write"
/// Session settings of every connection: a writer waits at most this long for the write
/// lock (then answers "unavailable"); a session stuck in a transaction (a node cut off
/// mid-write) is ended by the server, and a client gone silent is noticed by keepalives,
/// so a lost node releases the write lock within about half a minute.
const SESSION_OPTIONS: &str = "-c lock_timeout=10s -c idle_in_transaction_session_timeout=15s \
     -c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3";

/// The schema, one step per version. Step 2 is the first: PostgreSQL support arrived
/// with schema version 2. Step 3 adds the allow-lists of names that load code (additive:
/// schema 2 builds still use the database, `SCHEMA_COMPAT`).
const STEPS: &[(u32, &str)] = &[(
    2,
    "CREATE TABLE macvault_meta (key TEXT PRIMARY KEY, value BYTEA NOT NULL);
     CREATE TABLE macvault_orgs (name TEXT PRIMARY KEY, created BIGINT NOT NULL, row BYTEA NOT NULL);
     CREATE TABLE macvault_root_keys (org TEXT NOT NULL, version BIGINT NOT NULL,
         created BIGINT NOT NULL, retired BIGINT, row BYTEA NOT NULL, PRIMARY KEY (org, version));
     CREATE TABLE macvault_tokens (id BYTEA PRIMARY KEY, org TEXT NOT NULL, kind TEXT NOT NULL,
         app TEXT, creator BYTEA, parent BYTEA, key_version BIGINT NOT NULL,
         created BIGINT NOT NULL, expires BIGINT NOT NULL, revoked_effective BIGINT,
         row BYTEA NOT NULL);
     CREATE INDEX macvault_tokens_org ON macvault_tokens (org, created, id);
     CREATE INDEX macvault_tokens_parent ON macvault_tokens (parent);
     CREATE TABLE macvault_last_used (token_id BYTEA PRIMARY KEY, time BIGINT NOT NULL,
         row BYTEA NOT NULL);
     CREATE TABLE macvault_revocations (token_id BYTEA PRIMARY KEY, effective BIGINT NOT NULL,
         expires BIGINT NOT NULL);
     CREATE TABLE macvault_audit (id BIGSERIAL PRIMARY KEY, org TEXT NOT NULL,
         time BIGINT NOT NULL, action TEXT NOT NULL, outcome TEXT NOT NULL, actor BYTEA,
         row BYTEA NOT NULL);
     CREATE INDEX macvault_audit_org ON macvault_audit (org, id);
     CREATE TABLE macvault_feed (seq BIGINT PRIMARY KEY, time BIGINT NOT NULL,
         kind TEXT NOT NULL, expires BIGINT, row BYTEA NOT NULL);
     CREATE TABLE macvault_feed_head (id INT PRIMARY KEY, seq BIGINT NOT NULL,
         horizon BIGINT NOT NULL);
     INSERT INTO macvault_feed_head (id, seq, horizon) VALUES (1, 0, 0);
     CREATE TABLE macvault_secret_keys (org TEXT PRIMARY KEY, row BYTEA NOT NULL);
     CREATE TABLE macvault_secret_heads (org TEXT NOT NULL, app TEXT NOT NULL,
         name TEXT NOT NULL, version BIGINT NOT NULL, unset BOOLEAN NOT NULL,
         updated BIGINT NOT NULL, row BYTEA NOT NULL, PRIMARY KEY (org, app, name));
     CREATE TABLE macvault_secret_versions (org TEXT NOT NULL, app TEXT NOT NULL,
         name TEXT NOT NULL, version BIGINT NOT NULL, created BIGINT NOT NULL,
         row BYTEA NOT NULL, PRIMARY KEY (org, app, name, version));
     CREATE TABLE macvault_secret_counters (org TEXT NOT NULL, app TEXT NOT NULL,
         value BIGINT NOT NULL, PRIMARY KEY (org, app));
     CREATE TABLE macvault_leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL,
         until BIGINT NOT NULL);",
    ),
    (
        3,
        "CREATE TABLE macvault_allowed_env (org TEXT NOT NULL, app TEXT NOT NULL,
         name TEXT NOT NULL, PRIMARY KEY (org, app, name));",
    ),
];

/// The URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "(unparseable database URL)".into(),
    }
}

/// A PostgreSQL store: a pool of connections and a LISTEN connection for the feed.
pub struct PgStore {
    pool: Pool,
    handle: Handle,
    feed_signal: Arc<Notify>,
    listener: tokio::task::JoinHandle<()>,
    extra_runs: AtomicU32,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

fn retryable(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(&SqlState::T_R_SERIALIZATION_FAILURE) | Some(&SqlState::T_R_DEADLOCK_DETECTED)
    )
}

/// Waiting for the write lock timed out (`lock_timeout`), or the connection failed.
fn lock_err(e: tokio_postgres::Error) -> StoreError {
    match e.code() {
        Some(&SqlState::LOCK_NOT_AVAILABLE) => {
            StoreError::Unavailable("the database is busy with other writes; try again".into())
        }
        _ => pg_err(e),
    }
}

fn pg_err(e: tokio_postgres::Error) -> StoreError {
    match e.code() {
        Some(&SqlState::UNIQUE_VIOLATION) => StoreError::Conflict("record"),
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

fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Unavailable(format!("no database connection: {e}"))
}

/// Unix seconds and counters as BIGINT (they fit: seconds until 9999 are far below 2^63).
fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn uint(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// What the URL asks of TLS: `sslmode=require`, and libpq's `sslrootcert=FILE` (the
/// CA to trust instead of the system's roots). tokio-postgres refuses options it does
/// not know, so `sslrootcert` is taken out of the URL here.
struct TlsAsk {
    url: String,
    wanted: bool,
    root_cert: Option<std::path::PathBuf>,
}

fn tls_ask(url: &str) -> Result<TlsAsk, String> {
    let mut parsed = reqwest::Url::parse(url).map_err(|e| e.to_string())?;
    let mut root_cert = None;
    let mut wanted = false;
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter_map(|(k, v)| match k.as_ref() {
            "sslrootcert" => {
                root_cert = Some(std::path::PathBuf::from(v.as_ref()));
                None
            }
            "sslmode" => {
                wanted = v == "require";
                Some((k.into_owned(), v.into_owned()))
            }
            _ => Some((k.into_owned(), v.into_owned())),
        })
        .collect();
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    if root_cert.is_some() && !wanted {
        return Err("sslrootcert needs sslmode=require".into());
    }
    Ok(TlsAsk {
        url: parsed.to_string(),
        wanted,
        root_cert,
    })
}

/// TLS with rustls, verifying the server against `root_cert` or the system's roots.
fn rustls_connector(
    root_cert: Option<&std::path::Path>,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    match root_cert {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    if roots.is_empty() {
        return Err("sslmode=require, but no trusted root certificate was found".into());
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

impl PgStore {
    /// Connects, creates or upgrades the schema, and starts listening for the feed.
    pub async fn connect(url: &str) -> Result<Self, OpenError> {
        let shown = redact_url(url);
        let open_err = |reason: String| OpenError::Open {
            what: shown.clone(),
            reason,
        };
        let ask = tls_ask(url).map_err(open_err)?;
        let mut config: tokio_postgres::Config = ask
            .url
            .parse()
            .map_err(|e: tokio_postgres::Error| open_err(e.to_string()))?;
        config.connect_timeout(CONNECT_TIMEOUT);
        let options = match config.get_options() {
            Some(own) => format!("{own} {SESSION_OPTIONS}"),
            None => SESSION_OPTIONS.to_owned(),
        };
        config.options(&options);
        if config.get_application_name().is_none() {
            config.application_name("macvault");
        }
        let signal = Arc::new(Notify::new());
        let (pool, listener) = if ask.wanted {
            let tls = rustls_connector(ask.root_cert.as_deref()).map_err(open_err)?;
            let listener = tokio::spawn(listen(config.clone(), tls.clone(), signal.clone()));
            (make_pool(config, tls), listener)
        } else {
            let listener = tokio::spawn(listen(config.clone(), NoTls, signal.clone()));
            (make_pool(config, NoTls), listener)
        };
        let pool = pool.map_err(open_err)?;
        let store = PgStore {
            pool,
            handle: Handle::current(),
            feed_signal: signal,
            listener,
            extra_runs: AtomicU32::new(0),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Runs the schema steps not yet applied, in one SERIALIZABLE transaction. Nodes
    /// starting at once race; the losers' transactions fail (serialization failure, or
    /// a duplicate table or key) and are re-run, finding the work done.
    async fn migrate(&self) -> Result<(), OpenError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.migrate_once().await {
                Err(MigrateError::Db(e)) if attempt < MAX_ATTEMPTS && migration_retryable(&e) => {
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(MigrateError::Db(e)) => return Err(pg_err(e).into()),
                Err(MigrateError::Open(e)) => return Err(e),
                Ok(()) => return Ok(()),
            }
        }
    }

    async fn migrate_once(&self) -> Result<(), MigrateError> {
        let mut client = self
            .pool
            .get()
            .await
            .map_err(|e| MigrateError::Open(pool_err(e).into()))?;
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS macvault_schema (id INT PRIMARY KEY, \
                 version INT NOT NULL, compat INT NOT NULL);
                 CREATE TABLE IF NOT EXISTS macvault_migrations (version INT PRIMARY KEY, \
                 applied BIGINT NOT NULL);
                 INSERT INTO macvault_schema (id, version, compat) VALUES (1, 0, 0) \
                 ON CONFLICT (id) DO NOTHING;",
            )
            .await?;
        let txn = client
            .build_transaction()
            .isolation_level(IsolationLevel::Serializable)
            .start()
            .await?;
        let row = txn
            .query_one(
                "SELECT version, compat FROM macvault_schema WHERE id = 1",
                &[],
            )
            .await?;
        let found = u32::try_from(row.get::<_, i32>(0)).unwrap_or(0);
        let compat = u32::try_from(row.get::<_, i32>(1)).unwrap_or(0);
        if found > SCHEMA_VERSION {
            if compat > SCHEMA_VERSION {
                return Err(MigrateError::Open(OpenError::TooNew { found, compat }));
            }
            return Ok(());
        }
        if found == SCHEMA_VERSION {
            return Ok(());
        }
        let now = int(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()));
        for (version, sql) in STEPS.iter().filter(|(v, _)| *v > found) {
            txn.batch_execute(sql).await?;
            txn.execute(
                "INSERT INTO macvault_migrations (version, applied) VALUES ($1, $2)",
                &[&i32::try_from(*version).unwrap_or(i32::MAX), &now],
            )
            .await?;
        }
        let v = i32::try_from(SCHEMA_VERSION).unwrap_or(i32::MAX);
        let c = i32::try_from(SCHEMA_COMPAT).unwrap_or(i32::MAX);
        txn.execute(
            "UPDATE macvault_schema SET version = $1, compat = $2 WHERE id = 1",
            &[&v, &c],
        )
        .await?;
        txn.commit().await?;
        Ok(())
    }

    pub(super) fn feed_signal(&self) -> Arc<Notify> {
        self.feed_signal.clone()
    }

    #[cfg(test)]
    pub(super) fn inject_retries(&self, extra: u32) {
        self.extra_runs.store(extra, Ordering::SeqCst);
    }

    /// Sessions of this database waiting for the write lock (any node's).
    #[cfg(test)]
    pub(super) async fn writers_waiting(&self) -> usize {
        let conn = self.pool.get().await.expect("a connection");
        let row = conn
            .query_one(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                &[],
            )
            .await
            .expect("pg_locks");
        usize::try_from(row.get::<_, i64>(0)).unwrap_or(usize::MAX)
    }

    pub(super) fn write<T, E: From<StoreError>>(
        &self,
        body: &mut dyn FnMut(&mut dyn Tx) -> Result<T, E>,
        ending: Ending,
    ) -> Result<Committed<T>, E> {
        let h = &self.handle;
        let mut conn = Session::new(h.block_on(self.pool.get()).map_err(pool_err)?);
        // Every write moves the feed's counter row, so writers conflict whatever they
        // change: under SERIALIZABLE, concurrent ones abort and retry each other into the
        // ground. One session lock across the nodes makes them queue instead (readers
        // never take it). It is taken before the transaction begins, so a writer's
        // snapshot is taken after the previous writer committed. The lock and BEGIN, and
        // COMMIT and the unlock, are each sent together (pipelined: one round trip).
        let lock = format!("SELECT pg_advisory_lock({WRITE_LOCK})");
        let mut injected = self.extra_runs.load(Ordering::SeqCst);
        let mut attempt = 0;
        loop {
            attempt += 1;
            conn.locked = true;
            conn.in_transaction = true;
            let (locked, begun) = h.block_on(futures_util::future::join(
                conn.client().batch_execute(&lock),
                conn.client()
                    .batch_execute("BEGIN ISOLATION LEVEL SERIALIZABLE"),
            ));
            locked.map_err(lock_err)?;
            begun.map_err(pg_err)?;
            let mut tx = PgTx::new(conn.client(), h);
            let result = body(&mut tx);
            let (retry, changes) = (tx.retry, std::mem::take(&mut tx.changes));
            let commit = result.is_ok() && injected == 0 && ending == Ending::Commit;
            // NOTIFY only takes effect with a commit; optional (CockroachDB has none),
            // so a failure only costs listeners promptness.
            let unlock = if commit && !changes.is_empty() {
                format!("NOTIFY {CHANNEL}; SELECT pg_advisory_unlock({WRITE_LOCK})")
            } else {
                format!("SELECT pg_advisory_unlock({WRITE_LOCK})")
            };
            // After a failed COMMIT the server has rolled the transaction back.
            let (ended, unlocked) = h.block_on(futures_util::future::join(
                conn.client()
                    .batch_execute(if commit { "COMMIT" } else { "ROLLBACK" }),
                conn.client().batch_execute(&unlock),
            ));
            conn.in_transaction = false;
            conn.locked = unlocked.is_err();
            match (result, ended) {
                (Ok(_), Ok(())) if injected > 0 => injected -= 1,
                (Ok(value), Ok(())) if ending == Ending::RollBack => {
                    return Ok(Committed {
                        value,
                        changes: Vec::new(),
                    });
                }
                (Ok(value), Ok(())) => return Ok(Committed { value, changes }),
                (Ok(_), Err(e)) if retryable(&e) && attempt < MAX_ATTEMPTS => {
                    std::thread::sleep(backoff(attempt));
                }
                (Ok(_), Err(e)) => return Err(pg_err(e).into()),
                (Err(_), _) if injected > 0 => injected -= 1,
                (Err(_), _) if retry && attempt < MAX_ATTEMPTS => {
                    std::thread::sleep(backoff(attempt));
                }
                (Err(e), _) => return Err(e),
            }
            if conn.locked {
                // The unlock failed: the connection goes (see `Session`), and so does
                // this write.
                return Err(StoreError::Unavailable("lost the database connection".into()).into());
            }
        }
    }

    pub(super) fn read<T, E: From<StoreError>>(
        &self,
        body: impl FnOnce(&mut dyn Read) -> Result<T, E>,
    ) -> Result<T, E> {
        let h = &self.handle;
        let mut conn = Session::new(h.block_on(self.pool.get()).map_err(pool_err)?);
        h.block_on(
            conn.client()
                .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"),
        )
        .map_err(pg_err)?;
        conn.in_transaction = true;
        let mut tx = PgTx::new(conn.client(), h);
        let out = body(&mut tx);
        drop(tx);
        if h.block_on(conn.client().batch_execute("COMMIT")).is_ok() {
            conn.in_transaction = false;
        }
        out
    }
}

/// A pooled connection while a store operation uses it. If the operation ends with
/// the connection inside a transaction or holding the write lock (an error mid-way, or
/// a panic), the connection is closed instead of going back to the pool: the server
/// then rolls back and releases the lock.
struct Session {
    client: Option<deadpool_postgres::Object>,
    in_transaction: bool,
    locked: bool,
}

impl Session {
    fn new(client: deadpool_postgres::Object) -> Self {
        Session {
            client: Some(client),
            in_transaction: false,
            locked: false,
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
        if (self.in_transaction || self.locked)
            && let Some(client) = self.client.take()
        {
            drop(deadpool_postgres::Object::take(client));
        }
    }
}

enum MigrateError {
    Db(tokio_postgres::Error),
    Open(OpenError),
}

impl From<tokio_postgres::Error> for MigrateError {
    fn from(e: tokio_postgres::Error) -> Self {
        MigrateError::Db(e)
    }
}

fn migration_retryable(e: &tokio_postgres::Error) -> bool {
    retryable(e)
        || matches!(
            e.code(),
            Some(&SqlState::UNIQUE_VIOLATION)
                | Some(&SqlState::DUPLICATE_TABLE)
                | Some(&SqlState::DUPLICATE_OBJECT)
        )
}

/// 2, 4, 8 … ms, at most 200 ms, with jitter so that racing nodes spread out.
fn backoff(attempt: u32) -> Duration {
    let base = 2u64.saturating_pow(attempt.min(7)).min(200);
    let mut jitter = [0u8; 1];
    let _ = getrandom::fill(&mut jitter);
    Duration::from_millis(base + u64::from(jitter[0]) % (base + 1))
}

fn make_pool<T>(config: tokio_postgres::Config, tls: T) -> Result<Pool, String>
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

/// Keeps a LISTEN connection open (reconnecting), signalling on every notification and
/// after every reconnect (notifications may have been missed meanwhile).
async fn listen<T>(config: tokio_postgres::Config, tls: T, signal: Arc<Notify>)
where
    T: MakeTlsConnect<Socket> + Clone + Send + 'static,
    T::Stream: Send,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    loop {
        if let Ok((client, mut connection)) = config.connect(tls.clone()).await {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let driver = tokio::spawn(async move {
                let mut messages =
                    futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                while let Some(message) = messages.next().await {
                    let stop = message.is_err();
                    if tx.send(message).is_err() || stop {
                        break;
                    }
                }
            });
            if client
                .batch_execute(&format!("LISTEN {CHANNEL}"))
                .await
                .is_ok()
            {
                signal.notify_one();
                while let Some(message) = rx.recv().await {
                    match message {
                        Ok(AsyncMessage::Notification(_)) => signal.notify_one(),
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
            }
            driver.abort();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

struct PgTx<'r> {
    txn: &'r deadpool_postgres::ClientWrapper,
    h: &'r Handle,
    changes: Vec<FeedEntry>,
    /// A statement failed with a serialization failure: re-run the body.
    retry: bool,
}

impl<'r> PgTx<'r> {
    fn new(txn: &'r deadpool_postgres::ClientWrapper, h: &'r Handle) -> Self {
        PgTx {
            txn,
            h,
            changes: Vec::new(),
            retry: false,
        }
    }

    fn fail(&mut self, e: tokio_postgres::Error) -> StoreError {
        if retryable(&e) {
            self.retry = true;
        }
        pg_err(e)
    }

    fn query(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, StoreError> {
        let txn = self.txn;
        let r = self.h.block_on(async {
            let st = txn.prepare_cached(sql).await?;
            txn.query(&st, params).await
        });
        r.map_err(|e| self.fail(e))
    }

    fn execute(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        let txn = self.txn;
        let r = self.h.block_on(async {
            let st = txn.prepare_cached(sql).await?;
            txn.execute(&st, params).await
        });
        r.map_err(|e| self.fail(e))
    }

    fn rows<T: Stored>(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<T>, StoreError> {
        self.query(sql, params)?
            .iter()
            .map(|r| T::decode(r.try_get::<_, &[u8]>(0).map_err(|e| self.fail(e))?))
            .collect()
    }

    fn one<T: Stored>(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<T>, StoreError> {
        Ok(self.rows(sql, params)?.into_iter().next())
    }

    fn audit_rows(
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
            out.push(event);
        }
        Ok(out)
    }
}

/// An org's own secrets are kept under the app '' (app names are never empty).
fn scope(app: Option<&str>) -> &str {
    app.unwrap_or("")
}

fn token_id(bytes: &[u8]) -> Result<TokenId, StoreError> {
    let id: [u8; 16] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("token id".into()))?;
    Ok(TokenId(id))
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Read for PgTx<'_> {
    fn org(&mut self, name: &str) -> Result<Option<Org>, StoreError> {
        self.one("SELECT row FROM macvault_orgs WHERE name = $1", &[&name])
    }

    fn orgs(&mut self) -> Result<Vec<Org>, StoreError> {
        self.rows("SELECT row FROM macvault_orgs ORDER BY name", &[])
    }

    fn key(&mut self, org: &str, version: u32) -> Result<Option<RootKeyVersion>, StoreError> {
        self.one(
            "SELECT row FROM macvault_root_keys WHERE org = $1 AND version = $2",
            &[&org, &i64::from(version)],
        )
    }

    fn keys(&mut self, org: &str) -> Result<Vec<RootKeyVersion>, StoreError> {
        self.rows(
            "SELECT row FROM macvault_root_keys WHERE org = $1 ORDER BY version",
            &[&org],
        )
    }

    fn all_keys(&mut self) -> Result<Vec<RootKeyVersion>, StoreError> {
        self.rows(
            "SELECT row FROM macvault_root_keys ORDER BY org, version",
            &[],
        )
    }

    fn token(&mut self, id: &TokenId) -> Result<Option<TokenRecord>, StoreError> {
        self.one(
            "SELECT row FROM macvault_tokens WHERE id = $1",
            &[&&id.0[..]],
        )
    }

    fn ledger(&mut self, org: &str) -> Result<Vec<LedgerEntry>, StoreError> {
        let rows = self.query(
            "SELECT t.row, u.row FROM macvault_tokens t \
             LEFT JOIN macvault_last_used u ON u.token_id = t.id \
             WHERE t.org = $1 ORDER BY t.created, t.id",
            &[&org],
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let record = TokenRecord::decode(r.try_get(0).map_err(|e| self.fail(e))?)?;
            let used: Option<&[u8]> = r.try_get(1).map_err(|e| self.fail(e))?;
            let last_used = used.map(LastUsed::decode).transpose()?;
            out.push(LedgerEntry { record, last_used });
        }
        Ok(out)
    }

    fn children(&mut self, parent: &TokenId) -> Result<Vec<TokenId>, StoreError> {
        let rows = self.query(
            "SELECT id FROM macvault_tokens WHERE parent = $1 ORDER BY id",
            &[&&parent.0[..]],
        )?;
        rows.iter()
            .map(|r| token_id(r.try_get(0).map_err(|e| self.fail(e))?))
            .collect()
    }

    fn last_used(&mut self, id: &TokenId) -> Result<Option<LastUsed>, StoreError> {
        self.one(
            "SELECT row FROM macvault_last_used WHERE token_id = $1",
            &[&&id.0[..]],
        )
    }

    fn revocations(&mut self) -> Result<Vec<(TokenId, DenyEntry)>, StoreError> {
        let rows = self.query(
            "SELECT token_id, effective, expires FROM macvault_revocations",
            &[],
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let id = token_id(r.try_get(0).map_err(|e| self.fail(e))?)?;
            let effective: i64 = r.try_get(1).map_err(|e| self.fail(e))?;
            let expires: i64 = r.try_get(2).map_err(|e| self.fail(e))?;
            out.push((
                id,
                DenyEntry {
                    effective: uint(effective),
                    expires: uint(expires),
                },
            ));
        }
        Ok(out)
    }

    fn audit_before(
        &mut self,
        org: &str,
        before: Option<u64>,
        n: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let before = int(before.unwrap_or(u64::MAX));
        self.audit_rows(
            "SELECT id, row FROM macvault_audit WHERE org = $1 AND id < $2 \
             ORDER BY id DESC LIMIT $3",
            &[&org, &before, &limit(n)],
        )
    }

    fn audit_after(
        &mut self,
        org: &str,
        after: u64,
        n: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        self.audit_rows(
            "SELECT id, row FROM macvault_audit WHERE org = $1 AND id > $2 ORDER BY id LIMIT $3",
            &[&org, &int(after), &limit(n)],
        )
    }

    fn feed_head(&mut self) -> Result<FeedHead, StoreError> {
        let rows = self.query(
            "SELECT seq, horizon FROM macvault_feed_head WHERE id = 1",
            &[],
        )?;
        let Some(r) = rows.first() else {
            return Err(StoreError::Corrupt("feed head".into()));
        };
        let head: i64 = r.try_get(0).map_err(|e| self.fail(e))?;
        let horizon: i64 = r.try_get(1).map_err(|e| self.fail(e))?;
        Ok(FeedHead {
            head: uint(head),
            horizon: uint(horizon),
        })
    }

    fn feed_after(&mut self, after: u64, n: usize) -> Result<Vec<FeedEntry>, StoreError> {
        let rows = self.query(
            "SELECT seq, row FROM macvault_feed WHERE seq > $1 ORDER BY seq LIMIT $2",
            &[&int(after), &limit(n)],
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let seq: i64 = r.try_get(0).map_err(|e| self.fail(e))?;
            let row = FeedRow::decode(r.try_get(1).map_err(|e| self.fail(e))?)?;
            out.push(FeedEntry {
                seq: uint(seq),
                change: row.change.into(),
            });
        }
        Ok(out)
    }

    fn master_check(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        let rows = self.query(
            "SELECT value FROM macvault_meta WHERE key = 'master_check'",
            &[],
        )?;
        rows.first()
            .map(|r| r.try_get::<_, Vec<u8>>(0).map_err(|e| self.fail(e)))
            .transpose()
    }

    fn secret_keys(&mut self, org: &str) -> Result<Option<SecretKeys>, StoreError> {
        self.one(
            "SELECT row FROM macvault_secret_keys WHERE org = $1",
            &[&org],
        )
    }

    fn secret_head(
        &mut self,
        org: &str,
        app: Option<&str>,
        name: &str,
    ) -> Result<Option<SecretHead>, StoreError> {
        self.one(
            "SELECT row FROM macvault_secret_heads WHERE org = $1 AND app = $2 AND name = $3",
            &[&org, &scope(app), &name],
        )
    }

    fn secret_heads(
        &mut self,
        org: &str,
        app: Option<&str>,
    ) -> Result<Vec<SecretHead>, StoreError> {
        self.rows(
            "SELECT row FROM macvault_secret_heads WHERE org = $1 AND app = $2 ORDER BY name",
            &[&org, &scope(app)],
        )
    }

    fn secret_apps(&mut self, org: &str) -> Result<Vec<String>, StoreError> {
        let rows = self.query(
            "SELECT app FROM macvault_secret_counters WHERE org = $1 AND app <> '' ORDER BY app",
            &[&org],
        )?;
        rows.iter()
            .map(|r| r.try_get::<_, String>(0).map_err(|e| self.fail(e)))
            .collect()
    }

    fn count_secrets(&mut self, org: &str) -> Result<usize, StoreError> {
        let rows = self.query(
            "SELECT count(*) FROM macvault_secret_heads WHERE org = $1",
            &[&org],
        )?;
        let n: i64 = match rows.first() {
            Some(r) => r.try_get(0).map_err(|e| self.fail(e))?,
            None => 0,
        };
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    fn secret_stored_bytes(&mut self, org: &str, app: Option<&str>) -> Result<u64, StoreError> {
        let rows = self.query(
            "SELECT COALESCE(sum(octet_length(row)), 0)::BIGINT FROM macvault_secret_versions \
             WHERE org = $1 AND app = $2",
            &[&org, &scope(app)],
        )?;
        let n: i64 = match rows.first() {
            Some(r) => r.try_get(0).map_err(|e| self.fail(e))?,
            None => 0,
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn secret_version(
        &mut self,
        org: &str,
        app: Option<&str>,
        name: &str,
        version: u64,
    ) -> Result<Option<SecretVersion>, StoreError> {
        self.one(
            "SELECT row FROM macvault_secret_versions \
             WHERE org = $1 AND app = $2 AND name = $3 AND version = $4",
            &[&org, &scope(app), &name, &int(version)],
        )
    }

    fn secret_versions(
        &mut self,
        org: &str,
        app: Option<&str>,
        name: &str,
    ) -> Result<Vec<SecretVersion>, StoreError> {
        self.rows(
            "SELECT row FROM macvault_secret_versions \
             WHERE org = $1 AND app = $2 AND name = $3 ORDER BY version",
            &[&org, &scope(app), &name],
        )
    }

    fn secret_current(
        &mut self,
        org: &str,
        app: Option<&str>,
    ) -> Result<Vec<(SecretHead, Option<SecretVersion>)>, StoreError> {
        let rows = self.query(
            "SELECT h.row, v.row FROM macvault_secret_heads h LEFT JOIN macvault_secret_versions v \
             ON v.org = h.org AND v.app = h.app AND v.name = h.name AND v.version = h.version \
             WHERE h.org = $1 AND h.app = $2 AND NOT h.unset ORDER BY h.name COLLATE \"C\"",
            &[&org, &scope(app)],
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let head: &[u8] = r.try_get(0).map_err(|e| self.fail(e))?;
            let version: Option<&[u8]> = r.try_get(1).map_err(|e| self.fail(e))?;
            out.push((
                SecretHead::decode(head)?,
                version.map(SecretVersion::decode).transpose()?,
            ));
        }
        Ok(out)
    }

    fn secret_versions_after(
        &mut self,
        org: &str,
        after: Option<&VersionKey>,
        limit: usize,
    ) -> Result<Vec<SecretVersion>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        match after {
            Some(k) => self.rows(
                "SELECT row FROM macvault_secret_versions WHERE org = $1 \
                 AND (app COLLATE \"C\", name COLLATE \"C\", version) > ($2, $3, $4) \
                 ORDER BY app COLLATE \"C\", name COLLATE \"C\", version LIMIT $5",
                &[
                    &org,
                    &scope(k.app.as_deref()),
                    &k.name,
                    &int(k.version),
                    &limit,
                ],
            ),
            None => self.rows(
                "SELECT row FROM macvault_secret_versions WHERE org = $1 \
                 ORDER BY app COLLATE \"C\", name COLLATE \"C\", version LIMIT $2",
                &[&org, &limit],
            ),
        }
    }

    fn allowed_env(&mut self, org: &str) -> Result<Vec<(Option<String>, String)>, StoreError> {
        let rows = self.query(
            "SELECT app, name FROM macvault_allowed_env WHERE org = $1 ORDER BY app, name",
            &[&org],
        )?;
        rows.iter()
            .map(|r| {
                let app: String = r.try_get(0).map_err(|e| self.fail(e))?;
                let name: String = r.try_get(1).map_err(|e| self.fail(e))?;
                Ok(((!app.is_empty()).then_some(app), name))
            })
            .collect()
    }

    fn lease(&mut self, name: &str) -> Result<Option<Lease>, StoreError> {
        let rows = self.query(
            "SELECT holder, until FROM macvault_leases WHERE name = $1",
            &[&name],
        )?;
        match rows.first() {
            Some(r) => Ok(Some(Lease {
                holder: r.try_get(0).map_err(|e| self.fail(e))?,
                until: uint(r.try_get(1).map_err(|e| self.fail(e))?),
            })),
            None => Ok(None),
        }
    }

    fn secrets_counter(&mut self, org: &str, app: Option<&str>) -> Result<u64, StoreError> {
        let rows = self.query(
            "SELECT value FROM macvault_secret_counters WHERE org = $1 AND app = $2",
            &[&org, &scope(app)],
        )?;
        match rows.first() {
            Some(r) => Ok(uint(r.try_get(0).map_err(|e| self.fail(e))?)),
            None => Ok(0),
        }
    }
}

impl Tx for PgTx<'_> {
    fn insert_org(&mut self, org: &Org) -> Result<(), StoreError> {
        let n = self.execute(
            "INSERT INTO macvault_orgs (name, created, row) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
            &[&org.name, &int(org.created), &org.encode()?],
        )?;
        if n == 0 {
            return Err(StoreError::Conflict("org"));
        }
        Ok(())
    }

    fn put_org(&mut self, org: &Org) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO macvault_orgs (name, created, row) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET created = excluded.created, row = excluded.row",
            &[&org.name, &int(org.created), &org.encode()?],
        )?;
        Ok(())
    }

    fn put_key(&mut self, key: &RootKeyVersion) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO macvault_root_keys (org, version, created, retired, row) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (org, version) DO UPDATE SET \
             created = excluded.created, retired = excluded.retired, row = excluded.row",
            &[
                &key.org,
                &i64::from(key.version),
                &int(key.created),
                &key.retired.map(int),
                &key.encode()?,
            ],
        )?;
        Ok(())
    }

    fn put_token(&mut self, rec: &TokenRecord) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO macvault_tokens (id, org, kind, app, creator, parent, key_version, \
             created, expires, revoked_effective, row) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (id) DO UPDATE SET \
             org = excluded.org, kind = excluded.kind, app = excluded.app, \
             creator = excluded.creator, parent = excluded.parent, \
             key_version = excluded.key_version, created = excluded.created, \
             expires = excluded.expires, revoked_effective = excluded.revoked_effective, \
             row = excluded.row",
            &[
                &&rec.id.0[..],
                &rec.org,
                &rec.kind.name(),
                &rec.app,
                &rec.creator.as_ref().map(|c| &c.0[..]),
                &rec.parent.as_ref().map(|p| &p.0[..]),
                &i64::from(rec.key_version),
                &int(rec.created),
                &int(rec.expires),
                &rec.revoked.map(|r| int(r.effective)),
                &rec.encode()?,
            ],
        )?;
        Ok(())
    }

    fn delete_token(&mut self, id: &TokenId) -> Result<(), StoreError> {
        self.execute(
            "DELETE FROM macvault_last_used WHERE token_id = $1",
            &[&&id.0[..]],
        )?;
        self.execute("DELETE FROM macvault_tokens WHERE id = $1", &[&&id.0[..]])?;
        Ok(())
    }

    fn put_revocation(&mut self, id: &TokenId, entry: DenyEntry) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO macvault_revocations (token_id, effective, expires) VALUES ($1, $2, $3) \
             ON CONFLICT (token_id) DO UPDATE SET effective = excluded.effective, \
             expires = excluded.expires",
            &[&&id.0[..], &int(entry.effective), &int(entry.expires)],
        )?;
        Ok(())
    }

    fn record_use(&mut self, id: &TokenId, used: &LastUsed) -> Result<(), StoreError> {
        // Each node writes its own uses; the later one wins, and nothing else is touched.
        self.execute(
            "INSERT INTO macvault_last_used (token_id, time, row) VALUES ($1, $2, $3) \
             ON CONFLICT (token_id) DO UPDATE SET time = excluded.time, row = excluded.row \
             WHERE macvault_last_used.time <= excluded.time",
            &[&&id.0[..], &int(used.time), &used.encode()?],
        )?;
        Ok(())
    }

    fn append_audit(&mut self, event: &AuditEvent) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO macvault_audit (org, time, action, outcome, actor, row) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &event.org,
                &int(event.time),
                &event.action,
                &event.outcome.name(),
                &event.actor.as_ref().map(|a| &a.0[..]),
                &event.encode()?,
            ],
        )?;
        Ok(())
    }

    fn publish(&mut self, change: &Change, time: u64) -> Result<u64, StoreError> {
        // A counter row, not a sequence: sequences hand out numbers in call order, not
        // commit order, and a reader of `seq > last` would skip a late commit for ever.
        // Every publisher updates this one row, so commits are ordered by it.
        // One statement, one round trip: take the next number and write the entry.
        let row = FeedRow::new(change, time);
        let rows = self.query(
            "WITH head AS (UPDATE macvault_feed_head SET seq = seq + 1 WHERE id = 1 RETURNING seq) \
             INSERT INTO macvault_feed (seq, time, kind, expires, row) \
             SELECT seq, $1, $2, $3, $4 FROM head RETURNING seq",
            &[
                &int(time),
                &row.kind(),
                &row.expires().map(int),
                &row.encode()?,
            ],
        )?;
        let seq: i64 = rows
            .first()
            .ok_or_else(|| StoreError::Corrupt("feed head".into()))?
            .try_get(0)
            .map_err(|e| self.fail(e))?;
        let seq = uint(seq);
        self.changes.push(FeedEntry {
            seq,
            change: change.clone(),
        });
        Ok(seq)
    }

    fn init_master_check(&mut self, check: &[u8]) -> Result<(), StoreError> {
        let n = self.execute(
            "INSERT INTO macvault_meta (key, value) VALUES ('master_check', $1) \
             ON CONFLICT (key) DO NOTHING",
            &[&check],
        )?;
        if n == 0 {
            return Err(StoreError::Conflict("master key"));
        }
        Ok(())
    }

    fn put_secret_keys(&mut self, keys: &SecretKeys) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO macvault_secret_keys (org, row) VALUES ($1, $2) \
             ON CONFLICT (org) DO UPDATE SET row = excluded.row",
            &[&keys.org, &keys.encode()?],
        )?;
        Ok(())
    }

    fn put_secret_head(&mut self, head: &SecretHead) -> Result<(), StoreError> {
        let app = scope(head.app.as_deref());
        // With it, in the same statement, the scope's counter row: every scope has one,
        // so the apps with secrets can be listed.
        self.execute(
            "WITH counter AS (INSERT INTO macvault_secret_counters (org, app, value) \
             VALUES ($1, $2, 0) ON CONFLICT (org, app) DO NOTHING) \
             INSERT INTO macvault_secret_heads (org, app, name, version, unset, updated, row) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (org, app, name) DO UPDATE SET \
             version = excluded.version, unset = excluded.unset, updated = excluded.updated, \
             row = excluded.row",
            &[
                &head.org,
                &app,
                &head.name,
                &int(head.version),
                &head.unset,
                &int(head.updated),
                &head.encode()?,
            ],
        )?;
        Ok(())
    }

    fn put_secret_version(&mut self, v: &SecretVersion) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO macvault_secret_versions (org, app, name, version, created, row) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (org, app, name, version) DO UPDATE \
             SET created = excluded.created, row = excluded.row",
            &[
                &v.org,
                &scope(v.app.as_deref()),
                &v.name,
                &int(v.version),
                &int(v.created),
                &v.encode()?,
            ],
        )?;
        Ok(())
    }

    fn delete_secret_version(
        &mut self,
        org: &str,
        app: Option<&str>,
        name: &str,
        version: u64,
    ) -> Result<(), StoreError> {
        self.execute(
            "DELETE FROM macvault_secret_versions \
             WHERE org = $1 AND app = $2 AND name = $3 AND version = $4",
            &[&org, &scope(app), &name, &int(version)],
        )?;
        Ok(())
    }

    fn bump_secrets_counter(&mut self, org: &str, app: Option<&str>) -> Result<u64, StoreError> {
        let rows = self.query(
            "INSERT INTO macvault_secret_counters (org, app, value) VALUES ($1, $2, 1) \
             ON CONFLICT (org, app) DO UPDATE SET value = macvault_secret_counters.value + 1 \
             RETURNING value",
            &[&org, &scope(app)],
        )?;
        match rows.first() {
            Some(r) => Ok(uint(r.try_get(0).map_err(|e| self.fail(e))?)),
            None => Err(StoreError::Internal("no counter returned".into())),
        }
    }

    fn take_lease(
        &mut self,
        name: &str,
        holder: &str,
        now: u64,
        until: u64,
    ) -> Result<bool, StoreError> {
        let n = self.execute(
            "INSERT INTO macvault_leases (name, holder, until) VALUES ($1, $2, $4) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until \
             WHERE macvault_leases.holder = $2 OR macvault_leases.until <= $3",
            &[&name, &holder, &int(now), &int(until)],
        )?;
        Ok(n == 1)
    }

    fn set_allowed_env(
        &mut self,
        org: &str,
        app: Option<&str>,
        name: &str,
        allowed: bool,
    ) -> Result<(), StoreError> {
        let sql = if allowed {
            "INSERT INTO macvault_allowed_env (org, app, name) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING"
        } else {
            "DELETE FROM macvault_allowed_env WHERE org = $1 AND app = $2 AND name = $3"
        };
        self.execute(sql, &[&org, &scope(app), &name])?;
        Ok(())
    }

    fn drop_lease(&mut self, name: &str, holder: &str) -> Result<(), StoreError> {
        self.execute(
            "DELETE FROM macvault_leases WHERE name = $1 AND holder = $2",
            &[&name, &holder],
        )?;
        Ok(())
    }

    fn set_secrets_counter(
        &mut self,
        org: &str,
        app: Option<&str>,
        value: u64,
    ) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO macvault_secret_counters (org, app, value) VALUES ($1, $2, $3) \
             ON CONFLICT (org, app) DO UPDATE SET value = excluded.value",
            &[&org, &scope(app), &int(value)],
        )?;
        Ok(())
    }

    fn compact(&mut self, now: u64, feed_before: u64) -> Result<Compacted, StoreError> {
        let now = int(now);
        let before = int(feed_before);
        let revocations = self.execute(
            "DELETE FROM macvault_revocations WHERE expires <= $1",
            &[&now],
        )?;
        let rows = self.query(
            "SELECT max(seq) FROM macvault_feed WHERE time < $1",
            &[&before],
        )?;
        let dropped: Option<i64> = match rows.first() {
            Some(r) => r.try_get(0).map_err(|e| self.fail(e))?,
            None => None,
        };
        let feed = self.execute(
            "DELETE FROM macvault_feed WHERE time < $1 OR expires <= $2",
            &[&before, &now],
        )?;
        if let Some(seq) = dropped {
            let head = self.feed_head()?;
            if uint(seq) > head.horizon {
                self.execute(
                    "UPDATE macvault_feed_head SET horizon = $1 WHERE id = 1",
                    &[&seq],
                )?;
            }
        }
        Ok(Compacted {
            revocations: usize::try_from(revocations).unwrap_or(usize::MAX),
            feed: usize::try_from(feed).unwrap_or(usize::MAX),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslrootcert_is_taken_out_of_the_url() {
        let ask =
            tls_ask("postgres://u:p@h:5/db?sslmode=require&sslrootcert=/ca.pem&application_name=x")
                .unwrap();
        assert!(ask.wanted);
        assert_eq!(
            ask.root_cert.as_deref(),
            Some(std::path::Path::new("/ca.pem"))
        );
        assert_eq!(
            ask.url,
            "postgres://u:p@h:5/db?sslmode=require&application_name=x"
        );
        let plain = tls_ask("postgres://h/db").unwrap();
        assert!(!plain.wanted && plain.root_cert.is_none());
        assert_eq!(plain.url, "postgres://h/db");
        assert!(
            tls_ask("postgres://h/db?sslrootcert=/ca.pem").is_err(),
            "a CA without TLS"
        );
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
    }

    /// With `sslmode=require` the connection is encrypted and the server verified: a
    /// server whose certificate no trusted root signed is refused.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tls_when_the_url_asks_for_it() {
        let Some(db) = super::super::conformance::TestDb::create().await else {
            return;
        };
        let Ok(ca) = std::env::var("MACVAULT_TEST_PG_CA") else {
            assert!(
                std::env::var("MACVAULT_REQUIRE_PG").as_deref() != Ok("1"),
                "scripts/test.sh serves TLS (it needs openssl): MACVAULT_TEST_PG_CA is not set"
            );
            return;
        };
        let url = format!("{}?sslmode=require&sslrootcert={ca}", db.url);
        let store = PgStore::connect(&url).await.unwrap();
        let client = store.pool.get().await.unwrap();
        let row = client
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .unwrap();
        assert!(row.get::<_, bool>(0), "the connection is encrypted");
        // Without our CA (the system's roots only), the test server is not trusted.
        let untrusted = PgStore::connect(&format!("{}?sslmode=require", db.url)).await;
        assert!(untrusted.is_err(), "an unverified server must be refused");
    }
}
