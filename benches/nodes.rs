//! Figures for many nodes (docs/SCALING.md), all in one run so the shared machine's
//! drift hits every side alike:
//! 1. the verify endpoint's work on a redb-backed node and a PostgreSQL-backed node,
//!    alternating rounds (verification reads no database: the medians should agree);
//! 2. mint and revoke latency, p50 and p99, on both backends (durable commits);
//! 3. revocation propagation between two nodes on one PostgreSQL: from `revoke`
//!    returning on one node to the other refusing the token, p50 and p99;
//! 4. writers of one org on two nodes against as many on one node, alternating rounds:
//!    mints a second (each appends to the org's audit log, so they meet on its
//!    counter row) and how many failed. On one node an org's writers take turns; on
//!    two, the nodes' writers meet in the database and one of them retries.
//!
//! `benches/nodes.sh` starts a durable throwaway PostgreSQL and runs this; by hand:
//! `MACVAULT_BENCH_DATABASE_URL=postgres://… cargo bench --bench nodes`.

// Set-up failures end the bench with their reason, as in tests.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use macvault::authority::{
    AuthError, Authority, Client, ClientRef, Config, Location, MintSpec, RevokeOptions, Setup,
};
use macvault::caveats::Caveat;
use macvault::http::verify_body;
use macvault::model::TokenKind;
use macvault::token::{FailureClass, attenuate};

const ROUNDS: usize = 9;
const VERIFIES_PER_ROUND: usize = 20_000;
const WRITES: usize = 200;
const REVOCATIONS: usize = 120;
const CONTENDED_ROUNDS: usize = 3;
const CONTENDED_FOR: Duration = Duration::from_secs(3);
const WRITERS_PER_NODE: usize = 4;

struct Node {
    authority: Arc<Authority>,
    org: String,
}

async fn node(dir: &Path, store: Location, key: &Path, initialise: bool) -> Node {
    let setup = Setup {
        store,
        data_dir: dir.to_owned(),
        master_key_file: Some(key.to_owned()),
        may_initialise: initialise,
        config: Config::default(),
    };
    let opened = Authority::open_with(&setup).await.expect("open");
    let authority = opened.authority;
    std::mem::forget(authority.start()); // the followers run for the whole bench
    let org = match opened.operator_token {
        Some(path) => {
            let op = std::fs::read_to_string(path).unwrap();
            let op = authority
                .authenticate(op.trim(), Client::default())
                .await
                .unwrap();
            authority
                .create_org(&op, "acme", None)
                .await
                .unwrap()
                .token
                .expose()
                .to_owned()
        }
        None => String::new(),
    };
    Node { authority, org }
}

fn body(token: &str) -> String {
    format!(
        r#"{{"token": "{token}", "access": {{"org":"acme","app":"web","resource":"secrets","action":"read","secret":"DB_URL"}}}}"#
    )
}

async fn verify_body_for(n: &Node) -> String {
    let org = n
        .authority
        .authenticate(&n.org, Client::default())
        .await
        .unwrap();
    // The app exists once (the first call creates it; later ones find it).
    let _ = n.authority.create_app(&org, "acme", "web").await;
    let deploy = n
        .authority
        .mint(&org, "acme", &MintSpec::new(TokenKind::Deploy).app("web"))
        .await
        .unwrap();
    let narrow = [
        Caveat::parse("actions = r").unwrap(),
        Caveat::parse("secret = DB_*").unwrap(),
    ];
    body(&attenuate(deploy.token.expose(), &narrow).unwrap())
}

fn per_op_ns(n: &Node, body: &str) -> f64 {
    let client = ClientRef {
        ip: Some([127, 0, 0, 1].into()),
        user_agent: Some("bench/1"),
    };
    let start = Instant::now();
    for _ in 0..VERIFIES_PER_ROUND {
        black_box(
            verify_body(&n.authority, black_box(body.as_bytes()), client)
                .map(|a| a.len())
                .ok(),
        );
    }
    start.elapsed().as_nanos() as f64 / VERIFIES_PER_ROUND as f64
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summary(label: &str, mut v: Vec<f64>, unit: &str) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let p50 = percentile(&v, 0.5);
    println!(
        "{label:<44} p50 {p50:>9.2} {unit}  p99 {:>9.2} {unit}  min {:>9.2}  max {:>9.2}  (n = {})",
        percentile(&v, 0.99),
        v[0],
        v[v.len() - 1],
        v.len()
    );
    p50
}

async fn writes(label: &str, n: &Node) {
    let org = n
        .authority
        .authenticate(&n.org, Client::default())
        .await
        .unwrap();
    let mut mint = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..WRITES {
        let t = Instant::now();
        let m = n
            .authority
            .mint(
                &org,
                "acme",
                &MintSpec::new(TokenKind::Readonly).expiry_secs(3600),
            )
            .await
            .unwrap();
        mint.push(t.elapsed().as_secs_f64() * 1e3);
        ids.push(m.record.id);
    }
    let mut revoke = Vec::new();
    for id in &ids {
        let t = Instant::now();
        n.authority
            .revoke(&org, &id.to_string(), RevokeOptions::default())
            .await
            .unwrap();
        revoke.push(t.elapsed().as_secs_f64() * 1e3);
    }
    summary(&format!("mint ({label})"), mint, "ms");
    summary(&format!("revoke ({label})"), revoke, "ms");
}

async fn propagation(a: &Node, b: &Node) {
    let org_a = a
        .authority
        .authenticate(&a.org, Client::default())
        .await
        .unwrap();
    let mut times = Vec::new();
    for _ in 0..REVOCATIONS {
        let m = a
            .authority
            .mint(
                &org_a,
                "acme",
                &MintSpec::new(TokenKind::Readonly).expiry_secs(3600),
            )
            .await
            .unwrap();
        let text = m.token.expose().to_owned();
        // B knows the token before it is revoked.
        let deadline = Instant::now() + Duration::from_secs(10);
        while b
            .authority
            .authenticate(&text, Client::default())
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "B never accepted the token");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        a.authority
            .revoke(&org_a, &m.record.id.to_string(), RevokeOptions::default())
            .await
            .unwrap();
        let t = Instant::now();
        loop {
            match b.authority.authenticate(&text, Client::default()).await {
                Err(AuthError::Unauthenticated(FailureClass::Revoked)) => break,
                _ if t.elapsed() > Duration::from_secs(30) => panic!("B never saw the revocation"),
                _ => tokio::time::sleep(Duration::from_micros(500)).await,
            }
        }
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    summary("revocation propagation A -> B (postgres)", times, "ms");
}

/// Mints a second by `per_node` writers on each of `nodes`, all in org acme, for
/// `CONTENDED_FOR`, and how many failed.
async fn one_org_writers(nodes: &[&Node], per_node: usize) -> (f64, usize) {
    let start = Instant::now();
    let writers = nodes.iter().flat_map(|n| {
        (0..per_node).map(move |_| async move {
            let org = n
                .authority
                .authenticate(&n.org, Client::default())
                .await
                .unwrap();
            let spec = MintSpec::new(TokenKind::Readonly).expiry_secs(3600);
            let (mut ok, mut failed) = (0usize, 0usize);
            while start.elapsed() < CONTENDED_FOR {
                match n.authority.mint(&org, "acme", &spec).await {
                    Ok(_) => ok += 1,
                    Err(e) => {
                        if failed == 0 {
                            println!("  a mint failed: {e}");
                        }
                        failed += 1;
                    }
                }
            }
            (ok, failed)
        })
    });
    let counts = futures_util::future::join_all(writers).await;
    let ok: usize = counts.iter().map(|c| c.0).sum();
    let failed = counts.iter().map(|c| c.1).sum();
    (ok as f64 / start.elapsed().as_secs_f64(), failed)
}

/// One org's writers all on node A, then split between A and B, alternating rounds.
async fn contention(a: &Node, b: &Node) {
    let (mut one, mut two, mut failed) = (Vec::new(), Vec::new(), 0);
    for _ in 0..CONTENDED_ROUNDS {
        let (rate, f) = one_org_writers(&[a], 2 * WRITERS_PER_NODE).await;
        one.push(rate);
        failed += f;
        let (rate, f) = one_org_writers(&[a, b], WRITERS_PER_NODE).await;
        two.push(rate);
        failed += f;
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(|x, y| x.total_cmp(y));
        v[v.len() / 2]
    };
    let (one, two) = (median(one), median(two));
    println!(
        "mints/s, {w} writers of one org: on one node {one:>6.0}, on two nodes {two:>6.0} \
         ({:.2}x); failed: {failed}",
        two / one,
        w = 2 * WRITERS_PER_NODE
    );
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken.
    let Ok(url) = std::env::var("MACVAULT_BENCH_DATABASE_URL") else {
        println!("nodes: set MACVAULT_BENCH_DATABASE_URL (benches/nodes.sh does) to run");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let tmp = tempfile::tempdir().unwrap();
        let key = tmp.path().join("master.key");
        let redb = node(
            &tmp.path().join("redb"),
            Location::Dir(tmp.path().join("redb")),
            &key,
            true,
        )
        .await;
        let pg = node(
            &tmp.path().join("pg-a"),
            Location::Postgres(url.clone()),
            &key,
            true,
        )
        .await;
        let mut pg_b = node(
            &tmp.path().join("pg-b"),
            Location::Postgres(url),
            &key,
            false,
        )
        .await;
        pg_b.org = pg.org.clone();

        println!(
            "== 1. the verify endpoint's work, {ROUNDS} alternating rounds of {VERIFIES_PER_ROUND}"
        );
        let (body_redb, body_pg) = (verify_body_for(&redb).await, verify_body_for(&pg).await);
        let (mut on_redb, mut on_pg) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            on_redb.push(per_op_ns(&redb, &body_redb) / 1000.0);
            on_pg.push(per_op_ns(&pg, &body_pg) / 1000.0);
        }
        let a = summary("verify on a redb node", on_redb, "us");
        let b = summary("verify on a postgres node", on_pg, "us");
        println!("median ratio postgres/redb: {:.3}", b / a);

        println!("== 2. durable writes through the authority, {WRITES} each");
        writes("redb", &redb).await;
        writes("postgres", &pg).await;

        println!("== 3. revocation propagation over {REVOCATIONS} revocations");
        propagation(&pg, &pg_b).await;

        println!(
            "== 4. writers of one org (postgres), {CONTENDED_ROUNDS} alternating rounds of {}s",
            CONTENDED_FOR.as_secs()
        );
        contention(&pg, &pg_b).await;
    });
}
