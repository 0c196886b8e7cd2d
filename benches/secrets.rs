//! Durable `secrets set` against the disk's own floor, side by side in one run so the
//! shared machine's drift hits every side alike (README "Performance"):
//! - a set of one 1 KiB value through the secrets store (seal, version, head, counter,
//!   feed entry and audit event in one transaction), on redb and on PostgreSQL;
//! - a bare commit of one row of the same size: a redb write transaction with
//!   `Durability::Immediate`, and a PostgreSQL `INSERT` in its own transaction;
//!
//! in alternating rounds, p50 and p99 latency of each, and throughput with concurrent
//! writers. The target: set's p99 within 2× of its backend's bare commit. Then, on each
//! backend, writes/s of one writer against 8 writers each on an org of its own (on
//! PostgreSQL they share no row, so they should scale; redb has one writer at a time).
//!
//! `benches/secrets.sh` starts a durable throwaway PostgreSQL and runs this; by hand:
//! `MACVAULT_BENCH_DATABASE_URL=postgres://… cargo bench --bench secrets` (without the
//! variable, only redb is measured).

// Set-up failures end the bench with their reason, as in tests.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use macvault::authority::{Authority, Client, Config, Location, Principal, Setup};
use macvault::secrets::{Options, Scope, Secrets, SetSecret, Write};
use zeroize::Zeroizing;

const ROUNDS: usize = 5;
const PER_ROUND: usize = 60;
const VALUE: usize = 1024;
/// What one set stores besides the value: ciphertext overhead, wrapped key, the head,
/// the counter, the feed entry and the audit event, roughly.
const ROW: usize = VALUE + 600;
const WRITERS: usize = 4;
const THROUGHPUT_FOR: Duration = Duration::from_secs(2);

const WEB: Scope<'static> = Scope {
    org: "acme",
    app: Some("web"),
};

struct Node {
    secrets: Arc<Secrets>,
    org: Principal,
    /// Org tokens of `o0`…`o7`, for writers on orgs of their own.
    orgs: Vec<Principal>,
}

/// Orgs for writers of their own.
const ORGS: usize = 8;

async fn node(dir: &Path, store: Location) -> Node {
    let setup = Setup {
        store,
        data_dir: dir.to_owned(),
        master_key_file: None,
        may_initialise: true,
        config: Config::default(),
    };
    let opened = Authority::open_with(&setup).await.expect("open");
    let authority = opened.authority;
    std::mem::forget(authority.start());
    let op = std::fs::read_to_string(opened.operator_token.unwrap()).unwrap();
    let op = authority
        .authenticate(op.trim(), Client::default())
        .await
        .unwrap();
    let mut orgs = Vec::new();
    for name in std::iter::once("acme".to_owned()).chain((0..ORGS).map(|i| format!("o{i}"))) {
        let created = authority.create_org(&op, &name, None).await.unwrap();
        orgs.push(
            authority
                .authenticate(created.token.expose(), Client::default())
                .await
                .unwrap(),
        );
    }
    let org = orgs.remove(0);
    Node {
        secrets: Arc::new(Secrets::new(authority, Options::default())),
        org,
        orgs,
    }
}

fn one(name: String) -> Write {
    Write {
        set: vec![SetSecret {
            name,
            value: Zeroizing::new(vec![b'x'; VALUE]),
            description: None,
            expires_secs: None,
            if_version: None,
        }],
        unset: Vec::new(),
        dry_run: false,
        // The org token creates the app on its first write.
        create_app: true,
    }
}

/// A bare durable write of `ROW` bytes: the disk's (or the database's) own floor.
enum Floor {
    Redb(Arc<redb::Database>),
    Postgres(deadpool_postgres::Pool),
}

const FLOOR: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("floor");

impl Floor {
    async fn commit(&self, i: u64) {
        match self {
            Floor::Redb(db) => {
                let db = db.clone();
                tokio::task::spawn_blocking(move || {
                    let mut tx = db.begin_write().unwrap();
                    tx.set_durability(redb::Durability::Immediate).unwrap();
                    tx.open_table(FLOOR)
                        .unwrap()
                        .insert(i, vec![b'x'; ROW].as_slice())
                        .unwrap();
                    tx.commit().unwrap();
                })
                .await
                .unwrap();
            }
            Floor::Postgres(pool) => {
                let mut client = pool.get().await.unwrap();
                let tx = client.transaction().await.unwrap();
                tx.execute(
                    "INSERT INTO bench_floor (id, data) VALUES ($1, $2)",
                    &[&(i as i64), &vec![b'x'; ROW]],
                )
                .await
                .unwrap();
                tx.commit().await.unwrap();
            }
        }
    }
}

async fn pg_floor(url: &str) -> Floor {
    let mut cfg = deadpool_postgres::Config::new();
    cfg.url = Some(url.to_owned());
    let pool = cfg
        .create_pool(
            Some(deadpool_postgres::Runtime::Tokio1),
            tokio_postgres::NoTls,
        )
        .unwrap();
    pool.get()
        .await
        .unwrap()
        .batch_execute("CREATE TABLE IF NOT EXISTS bench_floor (id bigint PRIMARY KEY, data bytea)")
        .await
        .unwrap();
    Floor::Postgres(pool)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// (p50, p99) in ms.
fn summary(label: &str, mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    let (p50, p99) = (percentile(&v, 0.5), percentile(&v, 0.99));
    println!(
        "{label:<34} p50 {p50:>7.2} ms  p99 {p99:>7.2} ms  max {:>7.2} ms  (n = {})",
        v[v.len() - 1],
        v.len()
    );
    (p50, p99)
}

/// One side of the comparison: a set through the store, or a bare commit.
enum Side<'a> {
    Set(&'a Node),
    Floor(&'a Floor),
}

impl Side<'_> {
    async fn once(&self, i: u64) {
        match self {
            // A few names, so each write is a new version of a secret that has history.
            Side::Set(n) => {
                n.secrets
                    .write(&n.org, WEB, one(format!("S{}", i % 8)))
                    .await
                    .unwrap();
            }
            Side::Floor(f) => f.commit(i).await,
        }
    }
}

async fn latencies(side: &Side<'_>, from: u64) -> Vec<f64> {
    let mut out = Vec::with_capacity(PER_ROUND);
    for i in 0..PER_ROUND as u64 {
        let t = Instant::now();
        side.once(from + i).await;
        out.push(t.elapsed().as_secs_f64() * 1e3);
    }
    out
}

/// Writes per second with `WRITERS` concurrent writers.
async fn throughput(side: &Side<'_>, from: u64) -> f64 {
    let start = Instant::now();
    let counts = futures_util::future::join_all((0..WRITERS as u64).map(|w| async move {
        let mut n = 0u64;
        while start.elapsed() < THROUGHPUT_FOR {
            side.once(from + w * 1_000_000 + n).await;
            n += 1;
        }
        n
    }))
    .await;
    counts.iter().sum::<u64>() as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let url = std::env::var("MACVAULT_BENCH_DATABASE_URL").ok();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let tmp = tempfile::tempdir().unwrap();
        let redb = node(&tmp.path().join("redb"), Location::Dir(tmp.path().join("redb"))).await;
        let redb_floor =
            Floor::Redb(Arc::new(redb::Database::create(tmp.path().join("floor.redb")).unwrap()));
        let mut sides: Vec<(String, Side<'_>)> = vec![
            ("set (redb)".into(), Side::Set(&redb)),
            ("bare commit (redb)".into(), Side::Floor(&redb_floor)),
        ];
        let mut nodes: Vec<(&str, &Node)> = vec![("redb", &redb)];
        let pg;
        let pg_floor_;
        if let Some(url) = &url {
            pg = node(&tmp.path().join("pg"), Location::Postgres(url.clone())).await;
            pg_floor_ = pg_floor(url).await;
            sides.push(("set (postgres)".into(), Side::Set(&pg)));
            nodes.push(("postgres", &pg));
            sides.push(("bare commit (postgres)".into(), Side::Floor(&pg_floor_)));
        } else {
            println!("(set MACVAULT_BENCH_DATABASE_URL, as benches/secrets.sh does, for PostgreSQL)");
        }
        println!(
            "== durable writes of a {VALUE}-byte value, {ROUNDS} alternating rounds of {PER_ROUND}; \
             throughput with {WRITERS} writers"
        );
        let mut lat: Vec<Vec<f64>> = vec![Vec::new(); sides.len()];
        let mut tput: Vec<Vec<f64>> = vec![Vec::new(); sides.len()];
        for round in 0..ROUNDS as u64 {
            for (i, (_, side)) in sides.iter().enumerate() {
                let from = round * 10_000_000 + i as u64 * 100_000_000;
                lat[i].extend(latencies(side, from).await);
                tput[i].push(throughput(side, from + 5_000_000).await);
            }
        }
        let mut p99s = Vec::new();
        for (i, (label, _)) in sides.iter().enumerate() {
            let (_, p99) = summary(label, lat[i].clone());
            let mut t = tput[i].clone();
            t.sort_by(|a, b| a.total_cmp(b));
            println!("{:<34} {:>9.0} writes/s (median of {ROUNDS} rounds)", "", t[t.len() / 2]);
            p99s.push(p99);
        }
        for pair in p99s.chunks(2) {
            if let [set, floor] = pair {
                println!("p99 set / p99 bare commit: {:.2}", set / floor);
            }
        }
        for (label, node) in &nodes {
            across_orgs(label, node).await;
        }
        for (label, node) in &nodes {
            group_commit(label, node).await;
        }
    });
}

/// Writes/s of `writers` concurrent writers, writer `w` on org `o{w}`, for
/// `THROUGHPUT_FOR`.
async fn on_own_orgs(n: &Node, writers: usize) -> f64 {
    let start = Instant::now();
    let counts = futures_util::future::join_all(n.orgs[..writers].iter().enumerate().map(
        |(w, org)| async move {
            let scope = Scope {
                org: ["o0", "o1", "o2", "o3", "o4", "o5", "o6", "o7"][w],
                app: Some("web"),
            };
            let mut k = 0u64;
            while start.elapsed() < THROUGHPUT_FOR {
                n.secrets
                    .write(org, scope, one(format!("S{}", k % 8)))
                    .await
                    .unwrap();
                k += 1;
            }
            k
        },
    ))
    .await;
    counts.iter().sum::<u64>() as f64 / start.elapsed().as_secs_f64()
}

/// One writer against 8 writers on 8 orgs, alternating rounds; medians.
async fn across_orgs(label: &str, n: &Node) {
    let (mut one_w, mut eight) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        one_w.push(on_own_orgs(n, 1).await);
        eight.push(on_own_orgs(n, ORGS).await);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (one_w, eight) = (median(one_w), median(eight));
    println!(
        "writes/s ({label}): 1 writer {one_w:>6.0}, {ORGS} writers on {ORGS} orgs {eight:>6.0} ({:.2}x)",
        eight / one_w
    );
}

/// What a reveal's durable audit event costs: alone (one commit each) and with 64
/// callers at once (commits shared).
async fn group_commit(label: &str, n: &Node) {
    let authority = n.secrets.authority().clone();
    let event = || {
        macvault::model::AuditEvent::new(
            "acme",
            "secret.reveal",
            macvault::model::Actor::default(),
            macvault::model::Outcome::Ok,
            "revealed 50 secret(s) of app web of org acme at version 1: …".into(),
            1,
        )
    };
    let alone = Instant::now();
    for _ in 0..PER_ROUND {
        authority.audit_durably(event()).await.unwrap();
    }
    let alone = alone.elapsed().as_secs_f64() * 1e6 / PER_ROUND as f64;
    let (callers, each) = (64, 40);
    let shared = Instant::now();
    futures_util::future::join_all((0..callers).map(|_| {
        let a = authority.clone();
        async move {
            for _ in 0..each {
                a.audit_durably(event()).await.unwrap();
            }
        }
    }))
    .await;
    let shared = shared.elapsed().as_secs_f64() * 1e6 / f64::from(callers * each);
    println!(
        "durable audit event ({label}): {alone:>7.1} us each alone, {shared:>6.1} us each with {callers} callers at once"
    );
}
