//! The PostgreSQL backend, for many nodes on one database.
//!
//! Every transaction is SERIALIZABLE and is re-run (with a bound) on 40001 and 40P01.
//! No lock is taken but the rows a write touches: the change feed and the audit log
//! are numbered per org by a counter row of the org, so writes of one org are ordered
//! and writes of different orgs share no row (docs/SCALING.md, "Writes"). The SQL
//! keeps to what CockroachDB and YugabyteDB also take: no server-side functions, no
//! advisory locks, `INSERT … ON CONFLICT`. Only PostgreSQL 15 is tested here. Tables
//! have real columns for what is filtered or joined beside the versioned row payload
//! (`row`), which is the record's source of truth.
//!
//! Bodies are synchronous (see the module above): they run on the blocking pool, and
//! each round trip is driven there with `Handle::block_on`. One file per job:
//!
//! - this file: the store, connecting (the pool and the LISTEN task);
//! - `tls.rs`: what the URL asks of TLS, and the rustls connector;
//! - `schema.rs`: the schema steps and migrating to them;
//! - `session.rs`: a transaction's connection, its retries, and error mapping;
//! - `listen.rs`: the LISTEN connection that wakes the feed's followers;
//! - `tx.rs`: a transaction's statements, sent in as few round trips as they allow
//!   (BEGIN with the first statement, writes whose answer is not needed put off, reads
//!   named ahead; docs/SCALING.md, "Round trips"); `reads.rs` and `writes.rs`: the SQL
//!   of each read and each write.

mod listen;
mod reads;
mod schema;
mod session;
mod tls;
mod tx;
mod writes;

use std::sync::Arc;
#[cfg(test)]
use std::sync::atomic::Ordering;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio_postgres::NoTls;

use super::OpenError;
use listen::listen;
use session::make_pool;
pub use tls::redact_url;
use tls::{rustls_connector, tls_ask};

/// How many times a transaction is tried before its conflict is reported.
/// 20: writers of one org on different nodes race for its counter rows, and one that
/// lost 12 times in a row was seen (3 of about 12,700 mints by 4 writers on each of two
/// nodes, `benches/nodes.sh`); the backoffs of 20 runs add up to at most about 5 s,
/// inside a request's 10 s.
const MAX_ATTEMPTS: u32 = 20;
/// Connections a node keeps.
const POOL_SIZE: usize = 16;
/// How long to wait for a connection (or to make one) before answering "unavailable".
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The NOTIFY channel of the change feed.
const CHANNEL: &str = "macvault_feed";
/// Session settings of every connection: a writer waits at most this long for a row
/// another write of its org holds (then answers "unavailable"); a session stuck in a
/// transaction (a node cut off mid-write) is ended by the server, and a client gone
/// silent is noticed by keepalives, so a lost node releases its org's rows within about
/// half a minute. Writers of other orgs never wait for it.
const SESSION_OPTIONS: &str = "-c lock_timeout=10s -c idle_in_transaction_session_timeout=15s \
     -c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3";

/// A PostgreSQL store: a pool of connections and a LISTEN connection for the feed.
pub struct PgStore {
    pool: Pool,
    handle: Handle,
    feed_signal: Arc<Notify>,
    listener: tokio::task::JoinHandle<()>,
    extra_runs: AtomicU32,
    /// Round trips to the database made by store operations (tests count them).
    round_trips: AtomicU64,
    /// One queue per org on this node: a write re-run after a conflict waits here for
    /// this node's other writers of the orgs it touched (see `session.rs`).
    queues: tx::Lanes,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// Unix seconds and counters as BIGINT (they fit: seconds until 9999 are far below 2^63).
fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn uint(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
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
        // The URL's own `options` come last, so they win (a test sets the idle timeout
        // high to show that other orgs' writes never wait for it).
        let options = match config.get_options() {
            Some(own) => format!("{SESSION_OPTIONS} {own}"),
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
            round_trips: AtomicU64::new(0),
            queues: Default::default(),
        };
        store.migrate().await?;
        Ok(store)
    }
    pub(super) fn feed_signal(&self) -> Arc<Notify> {
        self.feed_signal.clone()
    }

    #[cfg(test)]
    pub(super) fn inject_retries(&self, extra: u32) {
        self.extra_runs.store(extra, Ordering::SeqCst);
    }

    #[cfg(test)]
    pub(super) fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::SeqCst)
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
        // Spaces stay spaces for the driver; a plus stays a plus.
        let spaced =
            tls_ask("postgres://h/db?options=-c%20lock_timeout%3D5s&application_name=a%2Bb")
                .unwrap();
        assert_eq!(
            spaced.url,
            "postgres://h/db?options=-c%20lock_timeout%3D5s&application_name=a%2Bb"
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
