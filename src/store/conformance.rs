//! One conformance suite, run against every backend (redb's crash tests and Vault's
//! `ExerciseBackend` are the models): every record kind, conflicts, atomicity,
//! concurrent writers, retried bodies, the feed (a writer queues behind one that has
//! published but not committed, so a reader never skips a late committer),
//! compaction, and migrations.
//!
//! It runs on redb always, and on PostgreSQL when `MACVAULT_TEST_DATABASE_URL` names a
//! server (each test creates and drops its own database there); with
//! `MACVAULT_REQUIRE_PG=1` (set by `scripts/test.sh`) a missing server fails the run.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::caveats::Condition;
use crate::model::{
    Actor, App, Jwks, OAuthClient, OAuthGrant, OAuthKey, OAuthKeyKind, Outcome, ThirdPartyKey,
    ThirdPartyKind, TokenKind,
};
use crate::token::PublicKey;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Redb,
    Postgres,
}

/// A fresh, empty store of one backend, and what keeps it alive.
struct Fresh {
    store: Store,
    location: Location,
    _dir: tempfile::TempDir,
    _db: Option<TestDb>,
}

/// A throwaway PostgreSQL database, dropped at the end.
pub(crate) struct TestDb {
    admin: String,
    name: String,
    pub(crate) url: String,
}

impl TestDb {
    /// A new database on the test server, or `None` when no server is configured (a
    /// failure instead when `MACVAULT_REQUIRE_PG=1`).
    pub(crate) async fn create() -> Option<TestDb> {
        let Ok(admin) = std::env::var("MACVAULT_TEST_DATABASE_URL") else {
            assert!(
                std::env::var("MACVAULT_REQUIRE_PG").as_deref() != Ok("1"),
                "MACVAULT_REQUIRE_PG=1 but MACVAULT_TEST_DATABASE_URL is not set"
            );
            return None;
        };
        let mut id = [0u8; 6];
        getrandom::fill(&mut id).unwrap();
        let name = format!(
            "mvtest_{}",
            id.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("cannot reach the test PostgreSQL: {e}"));
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let mut url = reqwest::Url::parse(&admin).unwrap();
        url.set_path(&format!("/{name}"));
        Some(TestDb {
            admin,
            name,
            url: url.to_string(),
        })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop runs inside a runtime; the database goes on a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
                    .await
                    .ok()?;
                tokio::spawn(conn);
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .ok()
            })
        })
        .join();
    }
}

async fn fresh(kind: Kind) -> Option<Fresh> {
    let dir = tempfile::tempdir().unwrap();
    match kind {
        Kind::Redb => {
            let location = Location::Dir(dir.path().to_owned());
            Some(Fresh {
                store: Store::open(&location).await.unwrap(),
                location,
                _dir: dir,
                _db: None,
            })
        }
        Kind::Postgres => {
            let db = TestDb::create().await?;
            let location = Location::Postgres(db.url.clone());
            Some(Fresh {
                store: Store::open(&location).await.unwrap(),
                location,
                _dir: dir,
                _db: Some(db),
            })
        }
    }
}

fn token(n: u8, org: &str, parent: Option<u8>, created: u64) -> TokenRecord {
    let mut t = TokenRecord::new(
        TokenId([n; 16]),
        org,
        &format!("t{n}"),
        TokenKind::Deploy,
        Some("web"),
        vec!["org = acme".into()],
        1,
        created,
        parent.map(|p| TokenId([p; 16])),
        created + 100,
        "abc".into(),
    );
    if parent.is_none() {
        t = t.as_lineage_root();
    }
    t
}

fn event(org: &str, detail: &str) -> AuditEvent {
    AuditEvent::new(
        org,
        "token.mint",
        Actor::default(),
        Outcome::Ok,
        detail.into(),
        7,
    )
}

async fn write<T: Send + 'static>(
    s: &Store,
    body: impl FnMut(&mut dyn Tx) -> Result<T, StoreError> + Send + 'static,
) -> Committed<T> {
    s.write(body).await.unwrap()
}

async fn read<T: Send + 'static>(
    s: &Store,
    body: impl FnOnce(&mut dyn Read) -> Result<T, StoreError> + Send + 'static,
) -> T {
    s.read(body).await.unwrap()
}

async fn every_record_kind_round_trips(kind: Kind) {
    let Some(f) = fresh(kind).await else { return };
    let s = &f.store;
    assert!(s.is_empty().await.unwrap());
    let ip: IpAddr = "10.1.2.3".parse().unwrap();
    write(s, move |tx| {
        tx.init_master_check(b"check")?;
        let mut acme = Org::new("acme", 1);
        acme.max_expiry_secs = Some(60);
        tx.insert_org(&acme)?;
        tx.insert_org(&Org::new("beta", 2))?;
        let mut k1 = RootKeyVersion::new("acme", 1, vec![1, 2, 3], 1);
        tx.put_key(&k1)?;
        tx.put_key(&RootKeyVersion::new("acme", 2, vec![4], 2))?;
        k1.retired = Some(5);
        tx.put_key(&k1)?;
        tx.put_token(&token(2, "acme", Some(1), 5))?;
        tx.put_token(&token(1, "acme", None, 3))?;
        tx.put_token(&token(3, "beta", None, 4))?;
        tx.put_token(&token(4, "acme", Some(1), 6))?;
        let used = |time| LastUsed {
            time,
            ip: Some(ip),
            user_agent: Some("ua".into()),
        };
        tx.record_use(&TokenId([1; 16]), &used(50))?;
        tx.record_use(&TokenId([1; 16]), &used(40))?; // older: ignored
        tx.record_use(&TokenId([2; 16]), &used(10))?;
        tx.put_revocation(
            &TokenId([2; 16]),
            DenyEntry {
                effective: 9,
                expires: 105,
            },
        )?;
        for d in ["a", "b", "c"] {
            tx.append_audit(&event("acme", d))?;
        }
        tx.append_audit(&event("beta", "x"))?;
        tx.publish("acme", &Change::OrgCreated { org: "acme".into() }, 1)?;
        tx.publish(
            "acme",
            &Change::Revoked {
                token: TokenId([2; 16]),
                effective: 9,
                expires: 105,
            },
            9,
        )?;
        Ok(())
    })
    .await;
    assert!(!s.is_empty().await.unwrap());
    // Re-parenting moves a token in the lineage index.
    write(s, |tx| {
        let mut t = tx.token(&TokenId([4; 16]))?.unwrap();
        t.parent = Some(TokenId([2; 16]));
        tx.put_token(&t)
    })
    .await;
    let dump = read(s, Dump::read).await;
    assert_eq!(dump.master_check.as_deref(), Some(&b"check"[..]));
    let orgs: Vec<_> = dump
        .orgs
        .iter()
        .map(|o| (o.name.as_str(), o.max_expiry_secs))
        .collect();
    assert_eq!(orgs, [("acme", Some(60)), ("beta", None)]);
    let keys: Vec<_> = dump
        .keys
        .iter()
        .map(|k| (k.version, k.retired, k.wrapped.clone()))
        .collect();
    assert_eq!(keys, [(1, Some(5), vec![1, 2, 3]), (2, None, vec![4])]);
    let (ledger, children, children2, used) = read(s, |r| {
        Ok((
            r.ledger("acme")?,
            r.children(&TokenId([1; 16]))?,
            r.children(&TokenId([2; 16]))?,
            r.last_used(&TokenId([1; 16]))?,
        ))
    })
    .await;
    let ids: Vec<u8> = ledger.iter().map(|e| e.record.id.0[0]).collect();
    assert_eq!(ids, [1, 2, 4], "oldest first, org by org");
    assert_eq!(
        ledger[0].last_used.as_ref().map(|u| u.time),
        Some(50),
        "the later use wins"
    );
    assert_eq!(ledger[1].record.parent, Some(TokenId([1; 16])));
    assert_eq!(children, [TokenId([2; 16])]);
    assert_eq!(children2, [TokenId([4; 16])]);
    assert_eq!(used.unwrap().ip, Some(ip));
    assert_eq!(
        dump.revocations,
        [(
            TokenId([2; 16]),
            DenyEntry {
                effective: 9,
                expires: 105
            }
        )]
    );
    // Audit: increasing positions per org; pages both ways.
    let (newest, older, after) = read(s, |r| {
        let newest = r.audit_before("acme", None, 2)?;
        let older = r.audit_before("acme", Some(newest[1].seq), 10)?;
        let after = r.audit_after("acme", newest[1].seq, 10)?;
        Ok((newest, older, after))
    })
    .await;
    let details = |v: &[AuditEvent]| v.iter().map(|e| e.detail.clone()).collect::<Vec<_>>();
    assert_eq!(details(&newest), ["c", "b"]);
    assert_eq!(details(&older), ["a"]);
    assert_eq!(details(&after), ["c"]);
    assert!(newest[0].seq > newest[1].seq && newest[1].seq > older[0].seq);
    // The feed.
    let (heads, entries) = read(s, |r| Ok((r.feed_heads()?, all_feed(r)?))).await;
    assert_eq!(
        heads,
        [FeedHead {
            stream: stream_of(kind, "acme"),
            head: 2,
            horizon: 0
        }]
    );
    assert_eq!(entries.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
    assert!(matches!(
        &entries[1].change,
        Change::Revoked { effective: 9, .. }
    ));
}

async fn conflicts_are_reported_and_a_failed_body_leaves_nothing(kind: Kind) {
    let Some(f) = fresh(kind).await else { return };
    let s = &f.store;
    write(s, |tx| {
        tx.insert_org(&Org::new("acme", 1))?;
        tx.init_master_check(b"one")
    })
    .await;
    let dup = s.write(|tx| tx.insert_org(&Org::new("acme", 2))).await;
    assert!(matches!(dup, Err(StoreError::Conflict("org"))), "{dup:?}");
    let dup = s.write(|tx| tx.init_master_check(b"two")).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    // Everything a body did before it failed is gone.
    let failed = s
        .write(|tx| {
            tx.insert_org(&Org::new("beta", 1))?;
            tx.publish("beta", &Change::OrgCreated { org: "beta".into() }, 1)?;
            tx.append_audit(&event("beta", "x"))?;
            Err::<(), _>(StoreError::Conflict("test"))
        })
        .await;
    assert!(failed.is_err());
    let (beta, heads, audit) = read(s, |r| {
        Ok((
            r.org("beta")?,
            r.feed_heads()?,
            r.audit_before("beta", None, 10)?,
        ))
    })
    .await;
    assert!(beta.is_none() && heads.iter().all(|h| h.head == 0) && audit.is_empty());
    assert_eq!(
        read(s, |r| r.master_check()).await.as_deref(),
        Some(&b"one"[..])
    );
}

async fn concurrent_writers_all_land_in_feed_order(kind: Kind) {
    let Some(f) = fresh(kind).await else { return };
    let s = f.store.clone();
    let mut tasks = Vec::new();
    for n in 0..16u8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.write(move |tx| {
                // Every writer reads and writes the same row too: real contention.
                let mut org = tx.org("shared")?.unwrap_or_else(|| Org::new("shared", 0));
                org.current_key += 1;
                tx.put_org(&org)?;
                tx.insert_org(&Org::new(format!("o{n}"), 1))?;
                tx.publish(
                    "shared",
                    &Change::OrgCreated {
                        org: format!("o{n}"),
                    },
                    1,
                )
            })
            .await
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap().unwrap().changes[0].seq);
    }
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=16).collect::<Vec<u64>>(),
        "one position each, none lost"
    );
    let (shared, orgs, entries) =
        read(&s, |r| Ok((r.org("shared")?, r.orgs()?, all_feed(r)?))).await;
    assert_eq!(shared.unwrap().current_key, 1 + 16, "no lost update");
    assert_eq!(orgs.len(), 17);
    assert_eq!(entries.len(), 16);
}

async fn a_body_run_again_leaves_one_effect(kind: Kind) {
    let Some(f) = fresh(kind).await else { return };
    let s = &f.store;
    s.inject_retries(2);
    let runs = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counted = runs.clone();
    let done = write(s, move |tx| {
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tx.insert_org(&Org::new("acme", 1))?;
        tx.append_audit(&event("acme", "once"))?;
        tx.publish("acme", &Change::OrgCreated { org: "acme".into() }, 1)
    })
    .await;
    assert_eq!(
        runs.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "the body ran three times"
    );
    assert_eq!(done.changes.len(), 1, "only the committed run's changes");
    assert_eq!(done.changes[0].seq, 1);
    let (audit, feed) = read(s, |r| Ok((r.audit_before("acme", None, 10)?, all_feed(r)?))).await;
    assert_eq!(audit.len(), 1);
    assert_eq!(feed.len(), 1);
}

/// A writer that publishes in `org` and then holds its transaction open until `go`
/// sends: its task (the position it got), once it has published.
async fn held_writer(
    s: &Store,
    org: &'static str,
) -> (tokio::task::JoinHandle<u64>, std::sync::mpsc::Sender<()>) {
    let (published_tx, mut published) = tokio::sync::mpsc::unbounded_channel();
    let (go, held) = std::sync::mpsc::channel::<()>();
    let held = Arc::new(std::sync::Mutex::new(held));
    let s = s.clone();
    let task = tokio::spawn(async move {
        s.write(move |tx| {
            tx.publish(org, &Change::OrgCreated { org: org.into() }, 1)?;
            // Read back, so that the entry (and the org's counter row) is written now,
            // not with the commit.
            let seq = head_of(tx, org)?;
            let _ = published_tx.send(seq);
            let _ = held.lock().unwrap().recv();
            Ok::<_, StoreError>(seq)
        })
        .await
        .unwrap()
        .value
    });
    published.recv().await.expect("the writer published");
    (task, go)
}

/// A writer that publishes in `org` at once: its task (the position it got).
fn quick_writer(s: &Store, org: &'static str) -> tokio::task::JoinHandle<u64> {
    let s = s.clone();
    tokio::spawn(async move {
        s.write(move |tx| tx.publish(org, &Change::OrgCreated { org: org.into() }, 1))
            .await
            .unwrap()
            .changes[0]
            .seq
    })
}

/// What a follower finds past `cursor` (one position per stream), moving it on.
fn follow(
    r: &mut dyn Read,
    cursor: &mut std::collections::BTreeMap<String, u64>,
) -> Result<Vec<(String, u64)>, StoreError> {
    let mut seen = Vec::new();
    for h in r.feed_heads()? {
        let at = cursor.entry(h.stream.clone()).or_default();
        for e in r.feed_after(&h.stream, *at, 1000)? {
            *at = e.seq;
            let Change::OrgCreated { org } = e.change else {
                continue;
            };
            seen.push((org, e.seq));
        }
    }
    Ok(seen)
}

async fn wait_for_a_waiting_writer(s: &Store) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while s.writers_waiting().await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the second writer never waited for the first"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A second writer's store: on PostgreSQL another node on the same database; on redb
/// the same store (one process opens the file).
async fn another_node(f: &Fresh, kind: Kind) -> Store {
    match kind {
        Kind::Redb => f.store.clone(),
        Kind::Postgres => Store::open(&f.location).await.unwrap(),
    }
}

/// The late committer: A takes its position first and commits last. A follower that
/// has read B's entry meanwhile still finds A's afterwards: on PostgreSQL they are in
/// streams of their own orgs (B did not wait for A), on redb B waited for A.
async fn a_late_committer_is_not_skipped(kind: Kind) {
    let Some(f) = fresh(kind).await else { return };
    let (s, other) = (f.store.clone(), another_node(&f, kind).await);
    let (slow, go) = held_writer(&s, "slow").await;
    let quick = quick_writer(&other, "quick");
    let mut cursor = std::collections::BTreeMap::new();
    match kind {
        Kind::Redb => {
            wait_for_a_waiting_writer(&s).await;
            assert!(!quick.is_finished(), "one writer at a time on redb");
        }
        Kind::Postgres => {
            // B commits while A holds its transaction: different orgs share no row.
            let quick_seq = tokio::time::timeout(Duration::from_secs(30), quick)
                .await
                .expect("a write to another org waited for a held one")
                .unwrap();
            let early = read(&s, |r| {
                let mut c = std::collections::BTreeMap::new();
                follow(r, &mut c).map(|seen| (seen, c))
            })
            .await;
            assert_eq!(early.0, [("quick".to_string(), quick_seq)]);
            cursor = early.1;
            go.send(()).unwrap();
            slow.await.unwrap();
            let late = read(&s, move |r| follow(r, &mut cursor)).await;
            assert_eq!(
                late,
                [("slow".to_string(), 1)],
                "the late commit is not skipped"
            );
            return;
        }
    }
    go.send(()).unwrap();
    let (slow, quick) = (slow.await.unwrap(), quick.await.unwrap());
    assert!(slow < quick, "commit order: {slow} {quick}");
    let seen = read(&s, move |r| follow(r, &mut cursor)).await;
    assert_eq!(seen, [("slow".to_string(), 1), ("quick".to_string(), 2)]);
}

/// Writers of one org queue on its counter row: the second waits until the first
/// commits, and gets the later position.
async fn one_orgs_writers_commit_in_position_order(kind: Kind) {
    let Some(f) = fresh(kind).await else { return };
    let (s, other) = (f.store.clone(), another_node(&f, kind).await);
    let (first, go) = held_writer(&s, "acme").await;
    let second = quick_writer(&other, "acme");
    wait_for_a_waiting_writer(&s).await;
    assert!(
        !second.is_finished(),
        "B committed while A held its transaction"
    );
    let early = read(&s, all_feed).await;
    assert!(early.is_empty(), "a reader saw uncommitted work: {early:?}");
    go.send(()).unwrap();
    let (first, second) = (first.await.unwrap(), second.await.unwrap());
    assert_eq!((first, second), (1, 2));
}

async fn compaction_drops_expired_and_old_entries(kind: Kind) {
    let Some(f) = fresh(kind).await else { return };
    let s = &f.store;
    write(s, |tx| {
        for (n, expires) in [(1u8, 100u64), (2, 1000)] {
            let id = TokenId([n; 16]);
            tx.put_revocation(
                &id,
                DenyEntry {
                    effective: 10,
                    expires,
                },
            )?;
            tx.publish(
                "acme",
                &Change::Revoked {
                    token: id,
                    effective: 10,
                    expires,
                },
                50,
            )?;
        }
        tx.publish(
            "acme",
            &Change::KeyAdded {
                org: "acme".into(),
                version: 2,
            },
            50,
        )?;
        tx.publish(
            "acme",
            &Change::KeyAdded {
                org: "acme".into(),
                version: 3,
            },
            500,
        )?;
        Ok(())
    })
    .await;
    // At 200: the first token expired; nothing is older than 10.
    let done = write(s, |tx| tx.compact(200, 10)).await.value;
    assert_eq!(
        done,
        Compacted {
            revocations: 1,
            feed: 1,
            id_token_uses: 0,
            oauth: 0,
        }
    );
    let (revs, heads) = read(s, |r| Ok((r.revocations()?, r.feed_heads()?))).await;
    assert_eq!(revs.len(), 1);
    assert_eq!(
        heads[0].horizon, 0,
        "dropping expired revocations loses nothing a node needs"
    );
    // Entries published before 100 go, and the horizon moves past them.
    let done = write(s, |tx| tx.compact(200, 100)).await.value;
    assert_eq!(done.feed, 2);
    let (heads, rest) = read(s, |r| Ok((r.feed_heads()?, all_feed(r)?))).await;
    assert_eq!(
        heads,
        [FeedHead {
            stream: stream_of(kind, "acme"),
            head: 4,
            horizon: 3
        }]
    );
    assert_eq!(rest.iter().map(|e| e.seq).collect::<Vec<_>>(), [4]);
}

async fn reopening_keeps_everything_and_a_newer_schema_is_refused(kind: Kind) {
    let Some(f) = fresh(kind).await else { return };
    write(&f.store, |tx| tx.insert_org(&Org::new("acme", 1))).await;
    let Fresh {
        store,
        location,
        _dir,
        _db,
    } = f;
    drop(store);
    // Opening again changes nothing (migrations are idempotent).
    let again = Store::open(&location).await.unwrap();
    assert!(read(&again, |r| r.org("acme")).await.is_some());
    drop(again);
    stamp(&location, SCHEMA_VERSION + 1, SCHEMA_COMPAT).await;
    assert!(
        Store::open(&location).await.is_ok(),
        "an additive newer schema is usable"
    );
    stamp(&location, SCHEMA_VERSION + 2, SCHEMA_VERSION + 1).await;
    let e = Store::open(&location).await.err().unwrap();
    assert!(matches!(e, OpenError::TooNew { .. }), "{e}");
}

/// Writes a schema version as a newer build would.
async fn stamp(location: &Location, version: u32, compat: u32) {
    match location {
        Location::Dir(dir) => {
            let db = ::redb::Database::create(dir.join(DB_FILE)).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut meta = txn
                    .open_table(::redb::TableDefinition::<&str, &[u8]>::new("meta"))
                    .unwrap();
                meta.insert("schema", version.to_string().as_bytes())
                    .unwrap();
                meta.insert("compat", compat.to_string().as_bytes())
                    .unwrap();
            }
            txn.commit().unwrap();
        }
        Location::Postgres(url) => {
            let client = raw_client(url).await;
            client
                .execute(
                    "UPDATE macvault_schema SET version = $1, compat = $2",
                    &[
                        &i32::try_from(version).unwrap(),
                        &i32::try_from(compat).unwrap(),
                    ],
                )
                .await
                .unwrap();
        }
    }
}

/// PostgreSQL only: nodes starting at once on an empty database migrate it once.
async fn nodes_starting_at_once_migrate_once(kind: Kind) {
    if matches!(kind, Kind::Redb) {
        return; // one process owns a redb file
    }
    let Some(db) = TestDb::create().await else {
        return;
    };
    let mut starts = Vec::new();
    for _ in 0..6 {
        let url = db.url.clone();
        starts.push(tokio::spawn(
            async move { Store::connect(&url).await.map(drop) },
        ));
    }
    for s in starts {
        s.await.unwrap().unwrap();
    }
    let client = raw_client(&db.url).await;
    let rows = client
        .query(
            "SELECT version FROM macvault_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap();
    let applied: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(
        applied,
        [2, 3, 4, 5, 6, 7],
        "each step applied exactly once"
    );
}

async fn secrets_keep_their_scopes_versions_and_counters(kind: Kind) {
    use crate::model::{Sealed, SecretHead, SecretKeys, SecretVersion};
    let Some(f) = fresh(kind).await else { return };
    let s = &f.store;
    let sealed = |b: u8| Sealed {
        key_id: 1,
        wrapped_key: vec![b; 40],
        ciphertext: vec![b; 30],
    };
    write(s, move |tx| {
        tx.insert_org(&Org::new("acme", 1))?;
        tx.insert_org(&Org::new("beta", 1))?;
        tx.put_secret_keys(&SecretKeys::new("acme", vec![1; 56], vec![2; 56], 5))?;
        for (app, name, b) in [
            (None, "DB_URL", 1u8),
            (Some("web"), "DB_URL", 2),
            (Some("web"), "API_KEY", 3),
            (Some("api"), "TOKEN", 4),
        ] {
            let mut head = SecretHead::new("acme", app, name);
            head.version = 2;
            head.last_version = 2;
            head.unset = false;
            head.digest = [b; 32];
            tx.put_secret_head(&head)?;
            for v in 1..=2 {
                tx.put_secret_version(&SecretVersion::new(
                    "acme",
                    app,
                    name,
                    v,
                    10 + v,
                    None,
                    [b; 32],
                    sealed(b),
                ))?;
            }
            tx.bump_secrets_counter("acme", app)?;
        }
        tx.bump_secrets_counter("acme", None)?;
        tx.put_secret_head(&SecretHead::new("beta", None, "X"))?;
        Ok(())
    })
    .await;
    let (keys, org_heads, web_heads, apps, count, versions, counters) = read(s, |r| {
        Ok((
            r.secret_keys("acme")?,
            r.secret_heads("acme", None)?,
            r.secret_heads("acme", Some("web"))?,
            r.secret_apps("acme")?,
            r.count_secrets("acme")?,
            r.secret_versions("acme", Some("web"), "DB_URL")?,
            (
                r.secrets_counter("acme", None)?,
                r.secrets_counter("acme", Some("web"))?,
                r.secrets_counter("acme", Some("nope"))?,
            ),
        ))
    })
    .await;
    assert_eq!(keys.unwrap().keys[0].1, vec![1; 56]);
    assert_eq!(
        org_heads
            .iter()
            .map(|h| h.name.as_str())
            .collect::<Vec<_>>(),
        ["DB_URL"]
    );
    assert_eq!(
        org_heads[0].digest, [1; 32],
        "the org's DB_URL is not web's"
    );
    assert_eq!(
        web_heads
            .iter()
            .map(|h| h.name.as_str())
            .collect::<Vec<_>>(),
        ["API_KEY", "DB_URL"]
    );
    assert_eq!(apps, ["api", "web"]);
    assert_eq!(count, 4);
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(versions[1].sealed.as_ref().unwrap().ciphertext, vec![2; 30]);
    assert_eq!(
        counters,
        (2, 2, 0),
        "one bump per web secret, two for the org"
    );
    // Versions go one by one; a destroyed one keeps its record without its value.
    write(s, |tx| {
        tx.delete_secret_version("acme", Some("web"), "DB_URL", 1)?;
        let mut v = tx
            .secret_version("acme", Some("web"), "DB_URL", 2)?
            .unwrap();
        v.sealed = None;
        tx.put_secret_version(&v)
    })
    .await;
    let versions = read(s, |r| r.secret_versions("acme", Some("web"), "DB_URL")).await;
    assert_eq!(versions.len(), 1);
    assert!(versions[0].sealed.is_none());
    // They travel with a dump.
    let dump = read(s, Dump::read).await;
    assert_eq!(
        (
            dump.secrets.len(),
            dump.secret_versions.len(),
            dump.secret_keys.len()
        ),
        (5, 7, 1)
    );
    // What a reveal reads: the set heads of one scope with their current versions.
    write(s, |tx| {
        let mut h = tx.secret_head("acme", Some("web"), "API_KEY")?.unwrap();
        h.unset = true;
        tx.put_secret_head(&h)
    })
    .await;
    let current = read(s, |r| r.secret_current("acme", Some("web"))).await;
    let seen: Vec<(&str, Option<u64>, bool)> = current
        .iter()
        .map(|(h, v)| {
            (
                h.name.as_str(),
                v.as_ref().map(|v| v.version),
                v.as_ref().is_some_and(|v| v.sealed.is_some()),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [("DB_URL", Some(2), false)],
        "unset ones are left out"
    );
    let org_current = read(s, |r| r.secret_current("acme", None)).await;
    assert_eq!(org_current.len(), 1);
    assert_eq!(org_current[0].1.as_ref().unwrap().digest, [1; 32]);
}

async fn stored_bytes_count_each_scope_and_shrink_when_values_go(kind: Kind) {
    use crate::model::{Sealed, SecretVersion};
    let Some(f) = fresh(kind).await else { return };
    let s = &f.store;
    let version = |app: Option<&str>, name: &str, v: u64, len: usize| {
        let sealed = Sealed {
            key_id: 1,
            wrapped_key: vec![7; 40],
            ciphertext: vec![7; len],
        };
        SecretVersion::new("acme", app, name, v, 10, None, [7; 32], sealed)
    };
    let bytes = |app: Option<&'static str>| async move {
        read(s, move |r| r.secret_stored_bytes("acme", app)).await
    };
    assert_eq!(bytes(Some("web")).await, 0, "nothing stored yet");
    write(s, move |tx| {
        tx.insert_org(&Org::new("acme", 1))?;
        tx.put_secret_version(&version(Some("web"), "A", 1, 1000))
    })
    .await;
    let one = bytes(Some("web")).await;
    assert!(one > 1000, "a version's row holds its ciphertext: {one}");
    // Every version and name of the scope counts; other scopes do not.
    write(s, move |tx| {
        tx.put_secret_version(&version(Some("web"), "A", 2, 1000))?;
        tx.put_secret_version(&version(Some("web"), "B", 1, 1000))?;
        tx.put_secret_version(&version(Some("api"), "A", 1, 5000))?;
        tx.put_secret_version(&version(None, "A", 1, 9000))
    })
    .await;
    assert_eq!(bytes(Some("web")).await, 3 * one);
    assert!(bytes(Some("api")).await > 5000);
    assert!(bytes(None).await > 9000);
    // A destroyed value (the row kept, the ciphertext gone) gives its bytes back, as
    // does a deleted version.
    write(s, move |tx| {
        let mut v = version(Some("web"), "A", 1, 1000);
        v.sealed = None;
        tx.put_secret_version(&v)?;
        tx.delete_secret_version("acme", Some("web"), "A", 2)
    })
    .await;
    let left = bytes(Some("web")).await;
    assert!(left < one + 200, "{left} of {}", 3 * one);
}

async fn allow_lists_of_names_that_load_code_round_trip(kind: Kind) {
    let Some(f) = fresh(kind).await else { return };
    let s = &f.store;
    write(s, |tx| {
        tx.insert_org(&Org::new("acme", 1))?;
        tx.insert_org(&Org::new("beta", 1))?;
        tx.set_allowed_env("acme", Some("web"), "NODE_OPTIONS", true)?;
        tx.set_allowed_env("acme", Some("web"), "NODE_OPTIONS", true)?;
        tx.set_allowed_env("acme", Some("web"), "LD_PRELOAD", true)?;
        tx.set_allowed_env("acme", None, "PATH", true)?;
        tx.set_allowed_env("beta", Some("web"), "PATH", true)
    })
    .await;
    let listed = read(s, |r| r.allowed_env("acme")).await;
    let want = |pairs: &[(Option<&str>, &str)]| -> Vec<(Option<String>, String)> {
        pairs
            .iter()
            .map(|(a, n)| (a.map(str::to_owned), (*n).to_owned()))
            .collect()
    };
    assert_eq!(
        listed,
        want(&[
            (None, "PATH"),
            (Some("web"), "LD_PRELOAD"),
            (Some("web"), "NODE_OPTIONS")
        ]),
        "the org's own first, then by app and name; each once; no other org's"
    );
    write(s, |tx| {
        tx.set_allowed_env("acme", Some("web"), "LD_PRELOAD", false)?;
        tx.set_allowed_env("acme", Some("web"), "NEVER_THERE", false)
    })
    .await;
    let listed = read(s, |r| r.allowed_env("acme")).await;
    assert_eq!(
        listed,
        want(&[(None, "PATH"), (Some("web"), "NODE_OPTIONS")])
    );
    // A store copy carries it.
    let dump = read(s, |r| Dump::read(r)).await;
    assert_eq!(dump.allowed_env.len(), 3, "every org's");
}

async fn a_rehearsal_checks_everything_and_keeps_nothing(kind: Kind) {
    let Some(f) = fresh(kind).await else { return };
    let s = &f.store;
    write(s, |tx| tx.insert_org(&Org::new("acme", 1))).await;
    // It sees what a write sees, answers what the body answers, and leaves nothing.
    let seq = s
        .rehearse(|tx| {
            tx.insert_org(&Org::new("beta", 1))?;
            tx.append_audit(&event("beta", "rehearsed"))?;
            tx.publish("beta", &Change::OrgCreated { org: "beta".into() }, 1)?;
            head_of(tx, "beta")
        })
        .await
        .unwrap();
    assert_eq!(seq, 1, "the body ran, at the feed's next position");
    let (beta, audit, feed) = read(s, |r| {
        Ok((
            r.org("beta")?,
            r.audit_before("beta", None, 10)?,
            all_feed(r)?,
        ))
    })
    .await;
    assert!(beta.is_none() && audit.is_empty() && feed.is_empty());
    // A conflict is reported as in a write.
    let r = s.rehearse(|tx| tx.insert_org(&Org::new("acme", 1))).await;
    assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
    // The position it used is free for the next write.
    let next = write(s, |tx| {
        tx.publish("beta", &Change::OrgCreated { org: "beta".into() }, 1)
    })
    .await;
    assert_eq!(next.changes[0].seq, 1);
}

async fn versions_page_in_order_and_leases_have_one_holder(kind: Kind) {
    use super::VersionKey;
    use crate::model::{Sealed, SecretVersion};
    let Some(f) = fresh(kind).await else { return };
    let s = &f.store;
    write(s, |tx| {
        tx.insert_org(&Org::new("acme", 1))?;
        tx.insert_org(&Org::new("beta", 1))?;
        // Names whose byte order differs from a locale's (`_` and case).
        for (org, app, name) in [
            ("acme", None, "b"),
            ("acme", None, "B_2"),
            ("acme", None, "B2"),
            ("acme", Some("api"), "Z"),
            ("acme", Some("web"), "A"),
            ("beta", None, "A"),
        ] {
            for v in 1..=3 {
                let sealed = Sealed {
                    key_id: 1,
                    wrapped_key: vec![1],
                    ciphertext: vec![2],
                };
                tx.put_secret_version(&SecretVersion::new(
                    org, app, name, v, 1, None, [0; 32], sealed,
                ))?;
            }
        }
        Ok(())
    })
    .await;
    let mut seen = Vec::new();
    let mut after: Option<VersionKey> = None;
    loop {
        let from = after.clone();
        let page = read(s, move |r| {
            r.secret_versions_after("acme", from.as_ref(), 4)
        })
        .await;
        let Some(last) = page.last() else { break };
        after = Some(VersionKey::of(last));
        seen.extend(page.iter().map(|v| {
            format!(
                "{}/{}/{}",
                v.app.as_deref().unwrap_or("-"),
                v.name,
                v.version
            )
        }));
    }
    let expected: Vec<String> = [
        ("-", "B2"),
        ("-", "B_2"),
        ("-", "b"),
        ("api", "Z"),
        ("web", "A"),
    ]
    .iter()
    .flat_map(|(a, n)| (1..=3).map(move |v| format!("{a}/{n}/{v}")))
    .collect();
    assert_eq!(
        seen, expected,
        "byte order, every scope, each once, no other org"
    );

    // A lease: one holder at a time, renewable by it, free once expired or dropped.
    let take = |holder: &'static str, now: u64| {
        let s = s.clone();
        async move {
            s.write(move |tx| tx.take_lease("rotation:acme", holder, now, now + 30))
                .await
                .unwrap()
                .value
        }
    };
    assert!(take("a", 100).await);
    assert!(!take("b", 110).await, "held by a");
    assert!(take("a", 120).await, "a renews");
    let held = read(s, |r| r.lease("rotation:acme")).await.unwrap();
    assert_eq!((held.holder.as_str(), held.until), ("a", 150));
    assert!(take("b", 150).await, "expired: b takes it");
    write(s, |tx| tx.drop_lease("rotation:acme", "a")).await;
    assert!(
        read(s, |r| r.lease("rotation:acme")).await.is_some(),
        "a cannot drop b's"
    );
    write(s, |tx| tx.drop_lease("rotation:acme", "b")).await;
    assert!(read(s, |r| r.lease("rotation:acme")).await.is_none());
}

fn third_party(org: &str, name: &str, path: &str, key: u8) -> ThirdParty {
    let public = PublicKey::from_bytes([key; 32]);
    let k = ThirdPartyKey {
        id: public.key_id(),
        public,
        wrapped: vec![key; 40],
        created: 7,
    };
    ThirdParty::new(
        org,
        name,
        ThirdPartyKind::CiOidc,
        format!("https://vault.example{path}"),
        "https://issuer.example",
        "macvault",
        Jwks::Document(r#"{"keys":[{}]}"#.into()),
        k,
        7,
        Some(TokenId([1; 16])),
    )
}

/// Schema 4: third parties by name, by location path (several share one) and by key id,
/// their requirements, removal taking the requirements, the feed entry, and a store copy.
async fn third_parties_and_requirements(kind: Kind) {
    let Some(f) = fresh(kind).await else { return };
    let s = &f.store;
    write(s, |tx| {
        tx.insert_org(&Org::new("acme", 1))?;
        tx.insert_org(&Org::new("beta", 1))?;
        tx.insert_third_party(&third_party("acme", "gha", "/3p/gha", 1))?;
        tx.insert_third_party(&third_party("acme", "gitlab", "/3p/gl", 2))?;
        tx.insert_third_party(&third_party("beta", "gha", "/3p/gha", 3))?;
        for (t, name) in [(1u8, "gha"), (2, "gha"), (3, "gitlab")] {
            tx.put_requirement(&Requirement {
                org: "acme".into(),
                third_party: name.into(),
                token: TokenId([t; 16]),
                key: PublicKey::from_bytes([t; 32]).key_id(),
                conditions: vec![Condition::parse("claim repository_id = 42").unwrap()],
                added: 9,
            })?;
        }
        tx.publish(
            "acme",
            &Change::ThirdPartyChanged {
                org: "acme".into(),
                name: "gha".into(),
            },
            9,
        )?;
        Ok(())
    })
    .await;
    let dup = s
        .write(|tx| tx.insert_third_party(&third_party("acme", "gha", "/3p/other", 4)))
        .await
        .unwrap_err();
    assert_eq!(dup, StoreError::Conflict("third party"));
    // A key id is held by one third party only.
    let taken = s
        .write(|tx| tx.insert_third_party(&third_party("beta", "x", "/3p/x", 2)))
        .await
        .unwrap_err();
    assert_eq!(taken, StoreError::Conflict("third-party key"));
    let key_of = |k: u8| PublicKey::from_bytes([k; 32]).key_id();
    let (listed, at, none, by_key, no_key, reqs, feed) = read(s, move |r| {
        Ok((
            r.third_parties("acme")?,
            r.third_parties_at("/3p/gha")?,
            r.third_parties_at("/3p/none")?,
            r.third_party_by_key(key_of(3))?,
            r.third_party_by_key(key_of(9))?,
            r.requirements("acme", "gha")?,
            all_feed(r)?,
        ))
    })
    .await;
    let names: Vec<&str> = listed.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["gha", "gitlab"]);
    assert_eq!(listed[0], third_party("acme", "gha", "/3p/gha", 1));
    let sharing: Vec<(&str, &str)> = at
        .iter()
        .map(|t| (t.org.as_str(), t.name.as_str()))
        .collect();
    assert_eq!(
        sharing,
        [("acme", "gha"), ("beta", "gha")],
        "by org and name"
    );
    assert!(none.is_empty());
    assert_eq!(
        by_key.map(|t| (t.org, t.name)),
        Some(("beta".into(), "gha".into()))
    );
    assert!(no_key.is_none());
    let ids: Vec<u8> = reqs.iter().map(|q| q.token.0[0]).collect();
    assert_eq!(ids, [1, 2]);
    assert_eq!(
        reqs[1].key,
        key_of(2),
        "the key a ticket is sealed to is kept"
    );
    assert_eq!(
        reqs[0].conditions[0].to_string(),
        "claim repository_id = 42"
    );
    assert!(matches!(&feed[0].change, Change::ThirdPartyChanged { name, .. } if name == "gha"));
    // A new key: written in place, and found by its id.
    write(s, |tx| {
        let mut tp = tx.third_party("acme", "gha")?.unwrap();
        let extra = third_party("acme", "gha", "/3p/gha", 5).keys.remove(0);
        tp.keys.push(extra);
        tx.put_third_party(&tp)
    })
    .await;
    let (keys, found) = read(s, move |r| {
        Ok((
            r.third_party("acme", "gha")?.unwrap().keys,
            r.third_party_by_key(key_of(5))?.map(|t| t.name),
        ))
    })
    .await;
    assert_eq!(keys.len(), 2);
    assert_eq!(found.as_deref(), Some("gha"));
    // A retired key is no longer found; the others still are.
    write(s, |tx| {
        let mut tp = tx.third_party("acme", "gha")?.unwrap();
        tp.keys.remove(0);
        tx.put_third_party(&tp)
    })
    .await;
    let (old, new) = read(s, move |r| {
        Ok((
            r.third_party_by_key(key_of(1))?,
            r.third_party_by_key(key_of(5))?,
        ))
    })
    .await;
    assert!(old.is_none());
    assert!(new.is_some());
    // Another third party may now hold the retired key's id.
    write(s, |tx| {
        tx.insert_third_party(&third_party("beta", "reuse", "/3p/r", 1))
    })
    .await;
    write(s, |tx| tx.delete_third_party("beta", "reuse")).await;
    // A store copy carries them.
    let target = fresh(kind).await.unwrap();
    let dump = std::sync::Arc::new(read(s, Dump::read).await);
    assert_eq!(dump.third_parties.len(), 3);
    assert_eq!(dump.requirements.len(), 3);
    let d = dump.clone();
    write(&target.store, move |tx| d.write(tx)).await;
    let copied = read(&target.store, |r| r.requirements("acme", "gitlab")).await;
    assert_eq!(copied.len(), 1);
    // Removing one takes its requirements, its place at the location and its keys.
    write(s, |tx| tx.delete_third_party("acme", "gha")).await;
    let (gone, reqs, at, key) = read(s, move |r| {
        Ok((
            r.third_party("acme", "gha")?,
            r.requirements("acme", "gha")?,
            r.third_parties_at("/3p/gha")?,
            r.third_party_by_key(key_of(5))?,
        ))
    })
    .await;
    assert!(gone.is_none() && reqs.is_empty() && key.is_none());
    let left: Vec<&str> = at.iter().map(|t| t.org.as_str()).collect();
    assert_eq!(left, ["beta"]);
    write(s, |tx| {
        tx.insert_third_party(&third_party("acme", "again", "/3p/gha", 5))
    })
    .await;
}

/// Schema 4: an ID token's use is recorded once; the same tickets again are a retry,
/// other tickets are refused; records go once past their `until`, and a copy keeps them.
async fn an_id_token_discharges_one_ticket_set(kind: Kind) {
    let Some(f) = fresh(kind).await else { return };
    let s = &f.store;
    let used = |jti: &str, tickets: u8, until: u64| IdTokenUse {
        issuer: "https://token.actions.githubusercontent.com".into(),
        jti: jti.into(),
        tickets: [tickets; 32],
        until,
    };
    let record = |u: IdTokenUse| async move {
        s.write(move |tx| tx.record_id_token(&u))
            .await
            .unwrap()
            .value
    };
    assert_eq!(record(used("a", 1, 100)).await, Recorded::New);
    assert_eq!(record(used("a", 1, 100)).await, Recorded::Again);
    assert_eq!(record(used("a", 2, 100)).await, Recorded::Other);
    assert_eq!(record(used("b", 2, 200)).await, Recorded::New);
    // Another issuer's jti is another ID token.
    let mut other = used("a", 2, 100);
    other.issuer = "https://gitlab.com".into();
    assert_eq!(record(other).await, Recorded::New);
    // A refused use changed nothing.
    let all = read(s, |r| r.id_token_uses()).await;
    assert_eq!(all.len(), 3);
    assert!(all.contains(&used("a", 1, 100)));
    // A copy keeps them.
    let target = fresh(kind).await.unwrap();
    let dump = std::sync::Arc::new(read(s, Dump::read).await);
    let d = dump.clone();
    write(&target.store, move |tx| d.write(tx)).await;
    assert_eq!(read(&target.store, |r| r.id_token_uses()).await.len(), 3);
    // Pruned once past `until`: then the jti could be recorded again (its ID token has
    // long expired, so no discharge would be made).
    let done = s.write(|tx| tx.compact(150, 0)).await.unwrap().value;
    assert_eq!(done.id_token_uses, 2);
    let left = read(s, |r| r.id_token_uses()).await;
    assert_eq!(left, [used("b", 2, 200)]);
}

/// Schema 4: apps by org and name; a name is created once; deleting frees it; a copy
/// keeps them.
async fn apps_are_created_listed_and_deleted(kind: Kind) {
    let Some(f) = fresh(kind).await else { return };
    let s = &f.store;
    let app = |org: &str, name: &str| App {
        org: org.into(),
        name: name.into(),
        created: 7,
        created_by: Some(TokenId([1; 16])),
    };
    write(s, move |tx| {
        tx.insert_org(&Org::new("acme", 1))?;
        tx.insert_org(&Org::new("beta", 1))?;
        tx.insert_app(&app("acme", "web"))?;
        tx.insert_app(&app("acme", "api"))?;
        tx.insert_app(&app("beta", "web"))
    })
    .await;
    let again = s
        .write(move |tx| tx.insert_app(&app("acme", "web")))
        .await
        .unwrap_err();
    assert_eq!(again, StoreError::Conflict("app"));
    let (listed, one, none) = read(s, |r| {
        Ok((
            r.apps("acme")?,
            r.app("beta", "web")?,
            r.app("acme", "wbe")?,
        ))
    })
    .await;
    let names: Vec<&str> = listed.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["api", "web"]);
    assert_eq!(one, Some(app("beta", "web")));
    assert!(none.is_none());
    let target = fresh(kind).await.unwrap();
    let dump = std::sync::Arc::new(read(s, Dump::read).await);
    let d = dump.clone();
    write(&target.store, move |tx| d.write(tx)).await;
    assert_eq!(read(&target.store, |r| r.apps("acme")).await.len(), 2);
    write(s, |tx| tx.delete_app("acme", "web")).await;
    assert!(read(s, |r| r.app("acme", "web")).await.is_none());
    write(s, move |tx| tx.insert_app(&app("acme", "web"))).await;
}

/// Retention prunes only events older than the cut, never an org's newest, and the
/// sequence goes on after it.
async fn audit_retention_prunes_only_older_events(kind: Kind) {
    let Some(f) = fresh(kind).await else { return };
    let s = &f.store;
    let at = |org: &str, time: u64| {
        let mut e = event(org, &format!("at {time}"));
        e.time = time;
        e
    };
    write(s, move |tx| {
        tx.insert_org(&Org::new("acme", 1))?;
        tx.insert_org(&Org::new("beta", 1))?;
        for time in [10, 20, 30, 40] {
            tx.append_audit(&at("acme", time))?;
        }
        tx.append_audit(&at("beta", 5))
    })
    .await;
    let times = |org: &'static str| async move {
        read(s, move |r| r.audit_after(org, 0, 100))
            .await
            .iter()
            .map(|e| e.time)
            .collect::<Vec<_>>()
    };
    let pruned = write(s, |tx| tx.prune_audit(25)).await;
    assert_eq!(pruned.value, 2);
    assert_eq!(times("acme").await, [30, 40]);
    assert_eq!(times("beta").await, [5], "an org's newest event stays");
    let pruned = write(s, |tx| tx.prune_audit(1000)).await;
    assert_eq!(pruned.value, 1);
    assert_eq!(times("acme").await, [40]);
    let last = read(s, |r| r.audit_after("acme", 0, 100)).await[0].seq;
    write(s, move |tx| tx.append_audit(&at("acme", 50))).await;
    let after = read(s, move |r| r.audit_after("acme", last, 100)).await;
    assert_eq!(
        after.len(),
        1,
        "the sequence goes on past the pruned events"
    );
    assert!(after[0].seq > last);
}

/// PostgreSQL sends a write whose answer is not needed with the transaction's next
/// statement, or with COMMIT: its failure is the transaction's all the same, wherever it
/// comes to light, even to a body that ignores the call that reports it; nothing of the
/// transaction commits, and the connection serves the next one.
async fn a_put_off_write_that_fails_fails_its_transaction(kind: Kind) {
    let Kind::Postgres = kind else { return };
    let Some(f) = fresh(kind).await else { return };
    let Location::Postgres(url) = &f.location else {
        unreachable!("a PostgreSQL store")
    };
    let s = &f.store;
    write(s, |tx| tx.insert_org(&Org::new("acme", 1))).await;
    raw_client(url)
        .await
        .batch_execute(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             IF NEW.action = 'test.refused' THEN RAISE EXCEPTION 'refused by the test'; \
             END IF; RETURN NEW; END $$; \
             CREATE TRIGGER refuse BEFORE INSERT ON macvault_audit \
             FOR EACH ROW EXECUTE FUNCTION refuse()",
        )
        .await
        .unwrap();
    let refused = || {
        AuditEvent::new(
            "acme",
            "test.refused",
            Actor::default(),
            Outcome::Ok,
            "x".into(),
            7,
        )
    };
    let is_refusal = |r: &Result<(), StoreError>| matches!(r, Err(StoreError::Internal(m)) if m.contains("refused by the test"));
    // At COMMIT.
    let r = s
        .write(move |tx| {
            tx.insert_org(&Org::new("beta", 1))?;
            tx.append_audit(&refused())
        })
        .await
        .map(|c| c.value);
    assert!(is_refusal(&r), "{r:?}");
    // At the next statement, which the body ignores: the write still fails.
    let r = s
        .write(move |tx| {
            tx.insert_org(&Org::new("gamma", 1))?;
            tx.append_audit(&refused())?;
            let _ = tx.org("acme");
            Ok(())
        })
        .await
        .map(|c| c.value);
    assert!(is_refusal(&r), "{r:?}");
    // In a rehearsal, as in the write.
    let r = s.rehearse(move |tx| tx.append_audit(&refused())).await;
    assert!(is_refusal(&r), "{r:?}");
    let (orgs, audit) = read(s, |r| Ok((r.orgs()?, r.audit_before("acme", None, 10)?))).await;
    assert_eq!(orgs.len(), 1, "neither beta nor gamma: {orgs:?}");
    assert!(audit.is_empty(), "{audit:?}");
    write(s, |tx| tx.append_audit(&event("acme", "after"))).await;
    assert_eq!(read(s, |r| r.audit_before("acme", None, 10)).await.len(), 1);
}

/// Reads named ahead answer as reads do: each once from the round trip that read
/// ahead, then afresh; and a write in between is seen, not what was read before it.
async fn a_read_ahead_answers_as_a_read_does(kind: Kind) {
    let Some(f) = fresh(kind).await else { return };
    let s = &f.store;
    let head = |version| {
        let mut h = SecretHead::new("acme", Some("web"), "X");
        h.version = version;
        h
    };
    write(s, move |tx| {
        tx.insert_org(&Org::new("acme", 1))?;
        tx.put_token(&token(1, "acme", None, 1))?;
        tx.put_secret_head(&head(1))
    })
    .await;
    let seen = write(s, move |tx| {
        tx.read_ahead(&[
            Ahead::SecretHead {
                org: "acme",
                app: Some("web"),
                name: "X",
            },
            Ahead::SecretHeads {
                org: "acme",
                app: Some("web"),
            },
        ])?;
        tx.put_secret_head(&head(2))?;
        let after = (
            tx.secret_head("acme", Some("web"), "X")?.map(|h| h.version),
            tx.secret_heads("acme", Some("web"))?
                .iter()
                .map(|h| h.version)
                .collect::<Vec<_>>(),
        );
        tx.read_ahead(&[
            Ahead::Org("acme"),
            Ahead::Org("none"),
            Ahead::App {
                org: "acme",
                app: "web",
            },
            Ahead::SecretKeys("acme"),
            Ahead::Token(&TokenId([1; 16])),
            Ahead::Token(&TokenId([1; 16])),
            Ahead::SecretCount("acme"),
            Ahead::SecretStoredBytes {
                org: "acme",
                app: Some("web"),
            },
        ])?;
        let named = (
            tx.org("acme")?.map(|o| o.name),
            tx.org("none")?.is_some(),
            tx.app("acme", "web")?.is_some(),
            tx.secret_keys("acme")?.is_some(),
            tx.secret_stored_bytes("acme", Some("web"))?,
            tx.org("acme")?.map(|o| o.name),
            tx.token(&TokenId([1; 16]))?.map(|t| t.name),
            tx.token(&TokenId([1; 16]))?.map(|t| t.name),
            tx.count_secrets("acme")?,
        );
        Ok((after, named))
    })
    .await
    .value;
    let (acme, t1) = (Some("acme".to_owned()), Some("t1".to_owned()));
    assert_eq!(
        seen,
        (
            (Some(2), vec![2]),
            (
                acme.clone(),
                false,
                false,
                false,
                0,
                acme,
                t1.clone(),
                t1,
                1
            )
        )
    );
    // In a read, too.
    let version = read(s, |r| {
        r.read_ahead(&[Ahead::SecretHead {
            org: "acme",
            app: Some("web"),
            name: "X",
        }])?;
        r.secret_head("acme", Some("web"), "X")
    })
    .await;
    assert_eq!(version.map(|h| h.version), Some(2));
}

/// A bump answers the scope's new count with its org's, read in the same step.
async fn a_bump_answers_the_scope_and_its_org(kind: Kind) {
    let Some(f) = fresh(kind).await else { return };
    let bumps = write(&f.store, |tx| {
        tx.insert_org(&Org::new("acme", 1))?;
        Ok([
            tx.bump_secrets_counter("acme", Some("web"))?,
            tx.bump_secrets_counter("acme", Some("web"))?,
            tx.bump_secrets_counter("acme", None)?,
            tx.bump_secrets_counter("acme", Some("web"))?,
            tx.bump_secrets_counter("acme", Some("api"))?,
            tx.bump_secrets_counter("acme", None)?,
        ])
    })
    .await
    .value;
    let pairs = bumps.map(|b| (b.org, b.own));
    assert_eq!(pairs, [(0, 1), (0, 2), (1, 1), (1, 3), (1, 1), (2, 2)]);
}

/// Blind writes are counted per scope, apart from the change counter, and travel with a
/// dump.
async fn blind_writes_are_counted_per_scope(kind: Kind) {
    let Some(f) = fresh(kind).await else { return };
    let s = &f.store;
    let counts = write(s, |tx| {
        tx.insert_org(&Org::new("acme", 1))?;
        tx.bump_secrets_counter("acme", Some("web"))?;
        tx.bump_secrets_counter("acme", Some("web"))?;
        tx.bump_secrets_counter("acme", None)?;
        Ok((
            tx.bump_secrets_blind_writes("acme", Some("web"))?,
            tx.bump_secrets_blind_writes("acme", Some("web"))?,
            tx.bump_secrets_blind_writes("acme", None)?,
        ))
    })
    .await;
    assert_eq!(counts.value, (1, 2, 1), "each bump answers the new count");
    let all = |r: &mut dyn Read| {
        Ok((
            r.secrets_blind_writes("acme", None)?,
            r.secrets_blind_writes("acme", Some("web"))?,
            r.secrets_blind_writes("acme", Some("api"))?,
            r.secrets_counter("acme", Some("web"))?,
        ))
    };
    assert_eq!(
        read(s, all).await,
        (1, 2, 0, 2),
        "the change counter is apart"
    );
    let target = fresh(kind).await.unwrap();
    let dump = std::sync::Arc::new(read(s, Dump::read).await);
    let d = dump.clone();
    write(&target.store, move |tx| d.write(tx)).await;
    assert_eq!(read(&target.store, all).await, (1, 2, 0, 2));
}

/// A database of schema 2 is brought to 5 by the additive steps, keeping its rows, and
/// the apps its tokens and secret scopes name are registered.
/// What PostgreSQL's schema step 7 changed, undone: one feed counter and one audit
/// sequence for all orgs, as a schema-6 database has them.
const UNDO_STEP_7: &str = "
    DROP TABLE macvault_feed_streams;
    DROP TABLE macvault_feed_horizons;
    DROP TABLE macvault_audit_heads;
    CREATE TABLE macvault_feed_head (id INT PRIMARY KEY, seq BIGINT NOT NULL,
        horizon BIGINT NOT NULL);
    INSERT INTO macvault_feed_head (id, seq, horizon) VALUES (1, 0, 0);
    ALTER TABLE macvault_feed DROP CONSTRAINT macvault_feed_pkey;
    ALTER TABLE macvault_feed DROP COLUMN stream;
    ALTER TABLE macvault_feed ADD PRIMARY KEY (seq);
    ALTER TABLE macvault_audit DROP CONSTRAINT macvault_audit_pkey;
    CREATE SEQUENCE macvault_audit_id_seq OWNED BY macvault_audit.id;
    SELECT setval('macvault_audit_id_seq', COALESCE((SELECT max(id) FROM macvault_audit), 0) + 1,
        false);
    ALTER TABLE macvault_audit ALTER COLUMN id SET DEFAULT nextval('macvault_audit_id_seq');
    ALTER TABLE macvault_audit ADD PRIMARY KEY (id);
    CREATE INDEX macvault_audit_org ON macvault_audit (org, id);
    DELETE FROM macvault_migrations WHERE version = 7;";

/// PostgreSQL's step 7 on a schema-6 database with data: the feed of before becomes the
/// stream `""` with its head and horizon, audit ids go on from each org's largest, and
/// new writes are numbered per org. (redb's feed and audit are unchanged by version 7.)
async fn schema_6_feed_and_audit_are_numbered_per_org(kind: Kind) {
    use super::rows::Stored as _;
    let Kind::Postgres = kind else { return };
    let Some(f) = fresh(kind).await else { return };
    let Fresh {
        store,
        location,
        _dir,
        _db,
    } = f;
    drop(store);
    let Location::Postgres(url) = &location else {
        unreachable!("a PostgreSQL store")
    };
    let client = raw_client(url).await;
    client.batch_execute(UNDO_STEP_7).await.unwrap();
    // What a schema-6 node wrote: three feed entries (the first compacted away) and
    // audit events of two orgs numbered by one sequence.
    for seq in [2i64, 3] {
        let change = Change::OrgCreated {
            org: format!("o{seq}"),
        };
        let row = super::rows::FeedRow::new(&change, 7);
        client
            .execute(
                "INSERT INTO macvault_feed (seq, time, kind, expires, row) \
                 VALUES ($1, 7, $2, NULL, $3)",
                &[&seq, &row.kind(), &row.encode().unwrap()],
            )
            .await
            .unwrap();
    }
    client
        .execute(
            "UPDATE macvault_feed_head SET seq = 3, horizon = 1 WHERE id = 1",
            &[],
        )
        .await
        .unwrap();
    for (org, detail) in [("acme", "a1"), ("beta", "b1"), ("acme", "a2")] {
        let e = event(org, detail);
        client
            .execute(
                "INSERT INTO macvault_audit (org, time, action, outcome, row) \
                 VALUES ($1, 1, $2, 'ok', $3)",
                &[&org, &e.action, &e.encode().unwrap()],
            )
            .await
            .unwrap();
    }
    stamp(&location, 6, 6).await;
    let again = Store::open(&location).await.unwrap();
    let (heads, old) = read(&again, |r| Ok((r.feed_heads()?, r.feed_after("", 1, 10)?))).await;
    assert_eq!(
        heads,
        [FeedHead {
            stream: String::new(),
            head: 3,
            horizon: 1
        }]
    );
    assert_eq!(old.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3]);
    let ids = |org: &'static str| {
        let again = again.clone();
        async move {
            read(&again, move |r| r.audit_after(org, 0, 10))
                .await
                .iter()
                .map(|e| e.seq)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        (ids("acme").await, ids("beta").await),
        (vec![1, 3], vec![2])
    );
    let done = write(&again, |tx| {
        tx.publish("acme", &Change::OrgCreated { org: "acme".into() }, 9)?;
        Ok((
            tx.append_audit_seq(&event("acme", "a3"))?,
            tx.append_audit_seq(&event("beta", "b2"))?,
        ))
    })
    .await;
    let ((a, b), p) = (done.value, done.changes[0].seq);
    assert_eq!(
        (a, b, p),
        (4, 3, 1),
        "each org goes on from its own largest"
    );
    let heads = read(&again, |r| r.feed_heads()).await;
    assert_eq!(heads.len(), 2);
}

async fn schema_2_is_upgraded_to_7(kind: Kind) {
    let Some(f) = fresh(kind).await else { return };
    write(&f.store, |tx| {
        tx.insert_org(&Org::new("acme", 1))?;
        tx.put_token(&token(1, "acme", None, 5))?;
        tx.append_audit(&event("acme", "written by schema 2"))?;
        tx.set_secrets_counter("acme", Some("api"), 3)
    })
    .await;
    let Fresh {
        store,
        location,
        _dir,
        _db,
    } = f;
    drop(store);
    // Back to what a schema-2 build left: no schema-3 tables, stamped 2.
    match &location {
        Location::Dir(dir) => {
            let db = ::redb::Database::create(dir.join(DB_FILE)).unwrap();
            let txn = db.begin_write().unwrap();
            for t in [
                "third_parties",
                "third_party_requirements",
                "id_token_uses",
                "apps",
            ] {
                txn.delete_table(::redb::TableDefinition::<(&str, &str), &[u8]>::new(t))
                    .ok();
            }
            txn.delete_table(::redb::TableDefinition::<(&str, &str, &str), &[u8]>::new(
                "third_party_locations",
            ))
            .ok();
            txn.delete_table(::redb::TableDefinition::<(&str, &str), u64>::new(
                "secret_blind_writes",
            ))
            .ok();
            txn.delete_table(::redb::TableDefinition::<&[u8], (&str, &str)>::new(
                "third_party_keys",
            ))
            .ok();
            txn.delete_table(::redb::TableDefinition::<(&str, &str, &str), &[u8]>::new(
                "allowed_env",
            ))
            .ok();
            txn.delete_table(::redb::TableDefinition::<(&str, u64), (u64, u64)>::new(
                "audit_counts",
            ))
            .ok();
            txn.delete_table(::redb::TableDefinition::<&str, &[u8]>::new("oauth_clients"))
                .ok();
            txn.delete_table(::redb::TableDefinition::<&str, &[u8]>::new("oauth_grants"))
                .ok();
            txn.delete_table(::redb::TableDefinition::<&[u8], &[u8]>::new("oauth_keys"))
                .ok();
            txn.delete_table(::redb::TableDefinition::<&[u8], u64>::new("oauth_spent"))
                .ok();
            txn.commit().unwrap();
        }
        Location::Postgres(url) => {
            let client = raw_client(url).await;
            client.batch_execute(UNDO_STEP_7).await.unwrap();
            client
                .batch_execute(
                    "DROP TABLE macvault_third_parties; \
                     DROP TABLE macvault_third_party_requirements; \
                     DROP TABLE macvault_third_party_keys; \
                     DROP TABLE macvault_id_token_uses; \
                     DROP TABLE macvault_apps; \
                     DROP TABLE macvault_secret_blind_writes; \
                     DROP TABLE macvault_allowed_env; \
                     ALTER TABLE macvault_audit DROP COLUMN count, DROP COLUMN last_time; \
                     DROP TABLE macvault_oauth_clients; \
                     DROP TABLE macvault_oauth_grants; \
                     DROP TABLE macvault_oauth_keys; \
                     DROP TABLE macvault_oauth_spent; \
                     DELETE FROM macvault_migrations WHERE version >= 3;",
                )
                .await
                .unwrap();
        }
    }
    stamp(&location, 2, 2).await;
    let again = Store::open(&location).await.unwrap();
    assert!(read(&again, |r| r.org("acme")).await.is_some());
    let apps: Vec<String> = read(&again, |r| r.apps("acme"))
        .await
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(
        apps,
        ["api", "web"],
        "registered from a secret scope and a token"
    );
    write(&again, |tx| {
        tx.insert_third_party(&third_party("acme", "gha", "/3p/gha", 1))
    })
    .await;
    assert_eq!(read(&again, |r| r.third_parties("acme")).await.len(), 1);
    write(&again, |tx| {
        tx.set_allowed_env("acme", Some("web"), "NODE_OPTIONS", true)
    })
    .await;
    assert_eq!(read(&again, |r| r.allowed_env("acme")).await.len(), 1);
    // Schema 5: the old event happened once; a new one may be counted.
    let old = read(&again, |r| r.audit_after("acme", 0, 10)).await;
    assert_eq!((old.len(), old[0].count), (1, 1));
    let seq = write(&again, |tx| {
        tx.append_audit_seq(&event("acme", "counted").times(3, 9))
    })
    .await
    .value;
    let new = read(&again, move |r| r.audit_after("acme", seq - 1, 10)).await;
    assert_eq!((new[0].count, new[0].last), (3, 9));
    write(&again, |tx| {
        tx.insert_oauth_client(&oauth_client("acme", "mvc_1"))
    })
    .await;
    assert_eq!(read(&again, |r| r.oauth_clients("acme")).await.len(), 1);
    // Schema 6: grants and their keys.
    write(&again, |tx| {
        tx.put_oauth_grant(&oauth_grant("acme", "mvg_1", 100))
    })
    .await;
    assert_eq!(read(&again, |r| r.oauth_grants("acme")).await.len(), 1);
    assert!(
        write(&again, |tx| tx.spend_oauth_key(&[1; 32], 100))
            .await
            .value
    );
}

/// A plain connection to a test database, for what the store API does not do.
async fn raw_client(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

/// Every entry of every stream of the feed, stream by stream.
fn all_feed(r: &mut dyn Read) -> Result<Vec<FeedEntry>, StoreError> {
    let mut out = Vec::new();
    for h in r.feed_heads()? {
        out.extend(r.feed_after(&h.stream, 0, 1000)?);
    }
    Ok(out)
}

/// The head of the feed stream `org`'s changes go to (its own, or redb's one).
fn head_of(r: &mut dyn Read, org: &str) -> Result<u64, StoreError> {
    let heads = r.feed_heads()?;
    heads
        .iter()
        .find(|h| h.stream == org)
        .or_else(|| heads.iter().find(|h| h.stream.is_empty()))
        .map(|h| h.head)
        .ok_or_else(|| StoreError::Internal(format!("no feed stream for {org}")))
}

/// The feed stream an org's changes go to: one per org on PostgreSQL, one for all on
/// redb.
fn stream_of(kind: Kind, org: &str) -> String {
    match kind {
        Kind::Redb => String::new(),
        Kind::Postgres => org.to_owned(),
    }
}

fn oauth_client(org: &str, id: &str) -> OAuthClient {
    OAuthClient {
        org: org.into(),
        id: id.into(),
        name: "CI dashboard".into(),
        redirect_uris: vec![
            "https://ci.example/callback".into(),
            "http://127.0.0.1/cb".into(),
        ],
        secret_hash: Some([7; 32]),
        allow_reveal: false,
        created: 5,
        created_by: Some(TokenId([1; 16])),
    }
}

/// OAuth clients: found by id across orgs, listed per org, a taken id refused,
/// removed, and copied with a dump.
async fn oauth_clients_round_trip(kind: Kind) {
    let Some(f) = fresh(kind).await else { return };
    let s = &f.store;
    let (a, b) = (oauth_client("acme", "mvc_a"), oauth_client("beta", "mvc_b"));
    let mut public = oauth_client("acme", "mvc_c");
    public.secret_hash = None;
    public.allow_reveal = true;
    let (a2, b2, p2) = (a.clone(), b.clone(), public.clone());
    write(s, move |tx| {
        tx.insert_org(&Org::new("acme", 1))?;
        tx.insert_org(&Org::new("beta", 1))?;
        tx.insert_oauth_client(&a2)?;
        tx.insert_oauth_client(&b2)?;
        tx.insert_oauth_client(&p2)
    })
    .await;
    assert_eq!(read(s, |r| r.oauth_client("mvc_b")).await, Some(b.clone()));
    assert_eq!(
        read(s, |r| r.oauth_clients("acme")).await,
        [a.clone(), public.clone()]
    );
    let taken = oauth_client("beta", "mvc_a");
    let again: Result<_, StoreError> = s.write(move |tx| tx.insert_oauth_client(&taken)).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let target = fresh(kind).await.unwrap();
    let dump = std::sync::Arc::new(read(s, Dump::read).await);
    let d = dump.clone();
    write(&target.store, move |tx| d.write(tx)).await;
    assert_eq!(
        read(&target.store, |r| r.oauth_clients("acme")).await.len(),
        2
    );
    write(s, |tx| tx.delete_oauth_client("mvc_a")).await;
    assert_eq!(read(s, |r| r.oauth_client("mvc_a")).await, None);
    assert_eq!(read(s, |r| r.oauth_clients("acme")).await, [public]);
}

fn oauth_grant(org: &str, id: &str, expires: u64) -> OAuthGrant {
    OAuthGrant {
        id: id.into(),
        org: org.into(),
        client: "mvc_a".into(),
        client_name: "CI dashboard".into(),
        parent: TokenId([2; 16]),
        app: Some("web".into()),
        scopes: vec!["secrets:read".into(), "app:web".into()],
        caveats: vec!["resource = secrets".into(), "actions = r".into()],
        created: 10,
        expires,
        redirect_uri: "http://127.0.0.1/cb".into(),
        challenge: [3; 32],
        code_expires: 70,
        tokens: vec![(TokenId([4; 16]), 90)],
        last_used: Some(20),
        revoked: None,
    }
}

fn oauth_key(hash: u8, grant: &str, kind: OAuthKeyKind, until: u64) -> OAuthKey {
    OAuthKey {
        hash: [hash; 32],
        grant: grant.into(),
        kind,
        until,
    }
}

/// OAuth grants, codes and refresh tokens: grants found by id and listed per org and
/// rewritten; a key found by its hash; a key spent once, of two concurrent spends one
/// winning; copied with a dump (spent ones spent on the copy); compaction drops grants
/// and keys past their end.
async fn oauth_grants_and_keys_are_spent_once(kind: Kind) {
    let Some(f) = fresh(kind).await else { return };
    let s = std::sync::Arc::new(f.store.clone());
    let (a, b) = (
        oauth_grant("acme", "mvg_a", 100),
        oauth_grant("beta", "mvg_b", 1000),
    );
    let code = oauth_key(1, "mvg_a", OAuthKeyKind::Code, 100);
    let refresh = oauth_key(2, "mvg_b", OAuthKeyKind::Refresh, 1000);
    let (a2, b2, c2, r2) = (a.clone(), b.clone(), code.clone(), refresh.clone());
    write(&s, move |tx| {
        tx.insert_org(&Org::new("acme", 1))?;
        tx.insert_org(&Org::new("beta", 1))?;
        tx.put_oauth_grant(&a2)?;
        tx.put_oauth_grant(&b2)?;
        tx.put_oauth_key(&c2)?;
        tx.put_oauth_key(&r2)
    })
    .await;
    assert_eq!(read(&s, |r| r.oauth_grant("mvg_b")).await, Some(b.clone()));
    assert_eq!(
        read(&s, |r| r.oauth_grants("acme")).await,
        std::slice::from_ref(&a)
    );
    assert_eq!(
        read(&s, |r| r.oauth_key(&[2; 32])).await,
        Some(refresh.clone())
    );
    assert_eq!(read(&s, |r| r.oauth_key(&[9; 32])).await, None);
    let mut revoked = a.clone();
    revoked.revoked = Some(50);
    let r3 = revoked.clone();
    write(&s, move |tx| tx.put_oauth_grant(&r3)).await;
    assert_eq!(read(&s, |r| r.oauth_grant("mvg_a")).await, Some(revoked));

    // Spent once: the first spend wins, the next sees it spent.
    assert!(
        write(&s, |tx| tx.spend_oauth_key(&[1; 32], 100))
            .await
            .value
    );
    assert!(
        !write(&s, |tx| tx.spend_oauth_key(&[1; 32], 100))
            .await
            .value
    );
    // Two at once: exactly one wins.
    let spend = |s: std::sync::Arc<Store>| async move {
        s.write(|tx| tx.spend_oauth_key(&[2; 32], 1000))
            .await
            .map(|c| c.value)
    };
    let (x, y) = tokio::join!(spend(s.clone()), spend(s.clone()));
    let (x, y): (Result<bool, StoreError>, Result<bool, StoreError>) = (x, y);
    assert_eq!([x.unwrap(), y.unwrap()].iter().filter(|w| **w).count(), 1);

    // A copy keeps what is spent.
    let target = fresh(kind).await.unwrap();
    let dump = std::sync::Arc::new(read(&s, Dump::read).await);
    assert_eq!(dump.oauth_keys.len(), 2);
    let d = dump.clone();
    write(&target.store, move |tx| d.write(tx)).await;
    assert_eq!(read(&target.store, |r| r.oauth_grants("beta")).await, [b]);
    assert!(
        !write(&target.store, |tx| tx.spend_oauth_key(&[1; 32], 100))
            .await
            .value
    );

    // Compaction: grant a and its code end at 100.
    let done = write(&s, |tx| tx.compact(150, 0)).await.value;
    assert_eq!(done.oauth, 1);
    assert_eq!(read(&s, |r| r.oauth_grant("mvg_a")).await, None);
    assert_eq!(read(&s, |r| r.oauth_key(&[1; 32])).await, None);
    assert!(
        write(&s, |tx| tx.spend_oauth_key(&[1; 32], 100))
            .await
            .value
    );
    assert_eq!(read(&s, |r| r.oauth_key(&[2; 32])).await, Some(refresh));
}

/// An aggregated event (denials counted over a window) keeps its count and last time:
/// appended with them, amended as it grows, read back on every path, pruned with its
/// event, copied with a dump.
async fn an_audit_event_counts_what_it_aggregates(kind: Kind) {
    let Some(f) = fresh(kind).await else { return };
    let s = &f.store;
    let at = |time: u64| {
        AuditEvent::new(
            "acme",
            "request.denied",
            Actor::default(),
            Outcome::Denied,
            "caveat 2 denies".into(),
            time,
        )
    };
    let (once, counted) = write(s, move |tx| {
        tx.insert_org(&Org::new("acme", 1))?;
        Ok((tx.append_audit_seq(&at(10))?, tx.append_audit_seq(&at(20))?))
    })
    .await
    .value;
    assert!(counted > once, "append answers increasing positions");
    write(s, move |tx| tx.amend_audit("acme", counted, 1000, 79)).await;
    let counts = |r: &mut dyn Read| {
        let after = r.audit_after("acme", 0, 10)?;
        let before = r.audit_before("acme", None, 10)?;
        Ok((
            after
                .iter()
                .map(|e| (e.seq, e.count, e.last))
                .collect::<Vec<_>>(),
            before
                .iter()
                .map(|e| (e.seq, e.count, e.last))
                .collect::<Vec<_>>(),
        ))
    };
    let (after, before) = read(s, counts).await;
    assert_eq!(after, [(once, 1, 10), (counted, 1000, 79)]);
    assert_eq!(before, [(counted, 1000, 79), (once, 1, 10)]);
    // Amending an event that retention pruned does nothing.
    write(s, move |tx| tx.amend_audit("acme", counted + 1000, 5, 5)).await;
    assert_eq!(read(s, counts).await.0.len(), 2);
    // A dump carries the count.
    let target = fresh(kind).await.unwrap();
    let dump = std::sync::Arc::new(read(s, Dump::read).await);
    let d = dump.clone();
    write(&target.store, move |tx| d.write(tx)).await;
    let copied = read(&target.store, |r| r.audit_after("acme", 0, 10)).await;
    assert_eq!(
        copied.iter().map(|e| (e.count, e.last)).collect::<Vec<_>>(),
        [(1, 10), (1000, 79)]
    );
    // Pruning takes the count with its event; the newest stays.
    write(s, |tx| tx.prune_audit(15)).await;
    write(s, move |tx| tx.append_audit(&at(30))).await;
    write(s, |tx| tx.prune_audit(25)).await;
    let (left, _) = read(s, counts).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].1, 1);
}

macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod on_redb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Kind::Redb).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Kind::Postgres).await;
                }
            )*
        }
    };
}

suite!(
    every_record_kind_round_trips,
    conflicts_are_reported_and_a_failed_body_leaves_nothing,
    concurrent_writers_all_land_in_feed_order,
    a_body_run_again_leaves_one_effect,
    a_late_committer_is_not_skipped,
    one_orgs_writers_commit_in_position_order,
    compaction_drops_expired_and_old_entries,
    reopening_keeps_everything_and_a_newer_schema_is_refused,
    nodes_starting_at_once_migrate_once,
    secrets_keep_their_scopes_versions_and_counters,
    versions_page_in_order_and_leases_have_one_holder,
    stored_bytes_count_each_scope_and_shrink_when_values_go,
    allow_lists_of_names_that_load_code_round_trip,
    a_rehearsal_checks_everything_and_keeps_nothing,
    third_parties_and_requirements,
    an_id_token_discharges_one_ticket_set,
    apps_are_created_listed_and_deleted,
    blind_writes_are_counted_per_scope,
    a_bump_answers_the_scope_and_its_org,
    a_read_ahead_answers_as_a_read_does,
    a_put_off_write_that_fails_fails_its_transaction,
    audit_retention_prunes_only_older_events,
    an_audit_event_counts_what_it_aggregates,
    oauth_clients_round_trip,
    oauth_grants_and_keys_are_spent_once,
    schema_2_is_upgraded_to_7,
    schema_6_feed_and_audit_are_numbered_per_org,
);
