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
//! each statement is driven there with `Handle::block_on`. This file connects,
//! migrates and runs transactions; `tx.rs` holds the SQL of each operation.

mod tx;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use futures_util::StreamExt as _;
use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{AsyncMessage, IsolationLevel, NoTls, Socket};

use super::{Committed, Ending, OpenError, Read, SCHEMA_COMPAT, SCHEMA_VERSION, StoreError, Tx};
use tx::PgTx;

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
/// with schema version 2. Step 3 adds the allow-lists of names that load code; step 4
/// the third parties with the tokens that need them; step 5 the counts of aggregated
/// denials (NULL: the event happened once) and OAuth clients; step 6 OAuth grants and
/// their codes and refresh tokens (by hash) with the set of spent ones. Released steps
/// are never edited: a change is a new step.
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
    (
        4,
        "CREATE TABLE macvault_third_parties (org TEXT NOT NULL, name TEXT NOT NULL,
             location_path TEXT NOT NULL, kind TEXT NOT NULL, created BIGINT NOT NULL,
             row BYTEA NOT NULL, PRIMARY KEY (org, name));
         CREATE INDEX macvault_third_parties_location ON macvault_third_parties (location_path);
         CREATE TABLE macvault_third_party_keys (kid BYTEA PRIMARY KEY, org TEXT NOT NULL,
             name TEXT NOT NULL);
         CREATE TABLE macvault_id_token_uses (issuer TEXT NOT NULL, jti TEXT NOT NULL,
             until BIGINT NOT NULL, row BYTEA NOT NULL, PRIMARY KEY (issuer, jti));
         CREATE TABLE macvault_apps (org TEXT NOT NULL, name TEXT NOT NULL,
             row BYTEA NOT NULL, PRIMARY KEY (org, name));
         CREATE TABLE macvault_secret_blind_writes (org TEXT NOT NULL, app TEXT NOT NULL,
             value BIGINT NOT NULL, PRIMARY KEY (org, app));
         CREATE TABLE macvault_third_party_requirements (org TEXT NOT NULL,
             third_party TEXT NOT NULL, token_id BYTEA NOT NULL, added BIGINT NOT NULL,
             row BYTEA NOT NULL, PRIMARY KEY (org, third_party, token_id));",
    ),
    (
        5,
        "ALTER TABLE macvault_audit ADD COLUMN count BIGINT, ADD COLUMN last_time BIGINT;
         CREATE TABLE macvault_oauth_clients (id TEXT PRIMARY KEY, org TEXT NOT NULL,
             row BYTEA NOT NULL);
         CREATE INDEX macvault_oauth_clients_org ON macvault_oauth_clients (org, id);",
    ),
    (
        6,
        "CREATE TABLE macvault_oauth_grants (id TEXT PRIMARY KEY, org TEXT NOT NULL,
             expires BIGINT NOT NULL, row BYTEA NOT NULL);
         CREATE INDEX macvault_oauth_grants_org ON macvault_oauth_grants (org, id);
         CREATE TABLE macvault_oauth_keys (hash BYTEA PRIMARY KEY, until BIGINT NOT NULL,
             row BYTEA NOT NULL);
         CREATE TABLE macvault_oauth_spent (hash BYTEA PRIMARY KEY, until BIGINT NOT NULL);",
    ),
];

/// Schema 4 makes apps explicit: registers every app that a secret scope or a token of
/// an older database names, so they keep working.
async fn register_apps(txn: &tokio_postgres::Transaction<'_>) -> Result<(), MigrateError> {
    use super::rows::Stored as _;
    let mut named: std::collections::BTreeSet<(String, String)> = Default::default();
    for row in txn
        .query(
            "SELECT org, app FROM macvault_secret_counters WHERE app <> ''",
            &[],
        )
        .await?
    {
        named.insert((row.get(0), row.get(1)));
    }
    for row in txn.query("SELECT row FROM macvault_tokens", &[]).await? {
        let rec = crate::model::TokenRecord::decode(row.get::<_, &[u8]>(0))
            .map_err(|e| MigrateError::Open(e.into()))?;
        if let Some(app) = rec.app {
            named.insert((rec.org, app));
        }
    }
    for (org, name) in named {
        let app = crate::model::App {
            org: org.clone(),
            name: name.clone(),
            created: 0,
            created_by: None,
        };
        let row = app.encode().map_err(|e| MigrateError::Open(e.into()))?;
        txn.execute(
            "INSERT INTO macvault_apps (org, name, row) VALUES ($1, $2, $3) \
             ON CONFLICT (org, name) DO NOTHING",
            &[&org, &name, &row],
        )
        .await?;
    }
    Ok(())
}

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
        if found < 4 {
            register_apps(&txn).await?;
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
