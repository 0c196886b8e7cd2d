//! The schema, one step per version, and migrating a database to it: every step not
//! yet applied, in one SERIALIZABLE transaction, re-run when nodes starting at once race.

use tokio_postgres::IsolationLevel;
use tokio_postgres::error::SqlState;

use super::session::{backoff, pg_err, pool_err, retryable};
use super::{MAX_ATTEMPTS, PgStore, int};
use crate::store::{OpenError, SCHEMA_COMPAT, SCHEMA_VERSION};

/// The schema, one step per version. Step 2 is the first: PostgreSQL support arrived
/// with schema version 2. Step 3 adds the allow-lists of names that load code; step 4
/// the third parties with the tokens that need them; step 5 the counts of aggregated
/// denials (NULL: the event happened once) and OAuth clients; step 6 OAuth grants and
/// their codes and refresh tokens (by hash) with the set of spent ones; step 7 the
/// change feed and the audit log numbered per org (a counter row per org instead of one
/// for all: the feed's entries of before become the stream `""`, the audit's ids go on
/// from each org's largest). Released steps are never edited: a change is a new step.
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
    (
        7,
        "CREATE TABLE macvault_feed_streams (stream TEXT PRIMARY KEY, seq BIGINT NOT NULL);
         CREATE TABLE macvault_feed_horizons (stream TEXT PRIMARY KEY, horizon BIGINT NOT NULL);
         ALTER TABLE macvault_feed ADD COLUMN stream TEXT NOT NULL DEFAULT '';
         ALTER TABLE macvault_feed DROP CONSTRAINT macvault_feed_pkey;
         ALTER TABLE macvault_feed ADD PRIMARY KEY (stream, seq);
         ALTER TABLE macvault_feed ALTER COLUMN stream DROP DEFAULT;
         INSERT INTO macvault_feed_streams (stream, seq)
             SELECT '', seq FROM macvault_feed_head WHERE id = 1 AND seq > 0;
         INSERT INTO macvault_feed_horizons (stream, horizon)
             SELECT '', horizon FROM macvault_feed_head WHERE id = 1 AND horizon > 0;
         DROP TABLE macvault_feed_head;
         CREATE TABLE macvault_audit_heads (org TEXT PRIMARY KEY, seq BIGINT NOT NULL);
         INSERT INTO macvault_audit_heads (org, seq) SELECT org, max(id) FROM macvault_audit GROUP BY org;
         ALTER TABLE macvault_audit ALTER COLUMN id DROP DEFAULT;
         DROP SEQUENCE macvault_audit_id_seq;
         ALTER TABLE macvault_audit DROP CONSTRAINT macvault_audit_pkey;
         ALTER TABLE macvault_audit ADD PRIMARY KEY (org, id);
         DROP INDEX macvault_audit_org;",
    ),
];

/// Schema 4 makes apps explicit: registers every app that a secret scope or a token of
/// an older database names, so they keep working.
async fn register_apps(txn: &tokio_postgres::Transaction<'_>) -> Result<(), MigrateError> {
    use crate::store::rows::Stored as _;
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

impl PgStore {
    /// Runs the schema steps not yet applied, in one SERIALIZABLE transaction. Nodes
    /// starting at once race; the losers' transactions fail (serialization failure, or
    /// a duplicate table or key) and are re-run, finding the work done.
    pub(super) async fn migrate(&self) -> Result<(), OpenError> {
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
