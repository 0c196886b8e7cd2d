//! Several nodes on one PostgreSQL, through the real binary: what one node changes the
//! others follow (revocations, key rotation and retirement), a node cut off from the
//! database keeps verifying from memory and then fails closed (503 `stale`), and nodes
//! racing to initialise an empty database end with one master key and one operator
//! token. Propagation times are measured by `benches/nodes.rs`, not asserted here.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::pg::{Proxy, TestDb};
use crate::support::{Server, code, eventually, s};

/// Generous: a debug build on a busy two-core machine.
const PROPAGATION: Duration = Duration::from_secs(30);

/// `POST /v1/verify` with no access: (status, body).
fn verify(srv: &Server, token: &str) -> (u16, Value) {
    srv.http("POST", "/v1/verify", None, Some(&json!({ "token": token })))
}

fn node(dir: &Path, url: &str, key: &Path, staleness: &str) -> Server {
    let key = key.to_str().expect("utf-8 path");
    Server::start_with(
        dir,
        &[
            "--database",
            url,
            "--master-key-file",
            key,
            "--max-staleness",
            staleness,
        ],
    )
}

#[test]
fn three_nodes_follow_each_other_and_fail_closed_when_cut_off() {
    let Some(db) = TestDb::create() else { return };
    let proxy = Proxy::start(db.addr());
    let url = db.url_via(proxy.addr());
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("master.key");
    let a = node(&tmp.path().join("a"), &url, &key, "5s");
    let op = a
        .operator_token()
        .expect("the first node initialises")
        .to_owned();
    let b = node(&tmp.path().join("b"), &url, &key, "5s");
    let c = node(&tmp.path().join("c"), &url, &key, "5s");
    assert!(b.operator_token().is_none() && c.operator_token().is_none());

    // Created and minted on A, verified on B.
    let (st, v) = a.http(
        "POST",
        "/v1/orgs",
        Some(&op),
        Some(&json!({"name": "acme"})),
    );
    assert_eq!(st, 201, "{v}");
    let org = s(&v, "token").to_owned();
    crate::support::create_apps(&a, &org, "acme", &["web"]);
    let mint = json!({"kind": "deploy", "app": "web", "name": "ci", "expiry_secs": 3600});
    let (st, v) = a.http("POST", "/v1/orgs/acme/tokens", Some(&org), Some(&mint));
    assert_eq!(st, 201, "{v}");
    let deploy = s(&v, "token").to_owned();
    let deploy_id = s(&v["record"], "id").to_owned();
    let (st, v) = verify(&b, &deploy);
    assert_eq!((st, v["allowed"].clone()), (200, json!(true)), "{v}");

    // Revoked on C: A and B refuse it.
    let (st, v) = c.http(
        "POST",
        &format!("/v1/tokens/{deploy_id}/revoke"),
        Some(&org),
        None,
    );
    assert_eq!(st, 200, "{v}");
    for (name, n) in [("A", &a), ("B", &b)] {
        eventually(
            &format!("{name} refuses the revoked token"),
            PROPAGATION,
            || {
                let (st, v) = verify(n, &deploy);
                (st == 401 && code(&v) == "revoked").then_some(())
            },
        );
    }

    // Rotated on A: a token under the new key works on B at once (B fetches the key it
    // does not know yet before refusing).
    let (st, v) = a.http("POST", "/v1/orgs/acme/keys/rotate", Some(&org), None);
    assert_eq!(st, 200, "{v}");
    let (st, v) = a.http(
        "POST",
        "/v1/orgs/acme/tokens",
        Some(&org),
        Some(&json!({"kind": "org", "name": "org-v2", "expiry_secs": 3600})),
    );
    assert_eq!(st, 201, "{v}");
    let org2 = s(&v, "token").to_owned();
    let (st, v) = b.http("GET", "/v1/orgs/acme", Some(&org2), None);
    assert_eq!(st, 200, "a new-key token on another node at once: {v}");

    // Retired on B: C refuses what was minted under it.
    let confirm = json!({"confirm": true});
    let (st, v) = b.http(
        "POST",
        "/v1/orgs/acme/keys/1/retire",
        Some(&org2),
        Some(&confirm),
    );
    assert_eq!(st, 200, "{v}");
    eventually(
        "C refuses a token under the retired key",
        PROPAGATION,
        || {
            let (st, v) = verify(&c, &org);
            (st == 401 && code(&v) == "key_retired").then_some(())
        },
    );

    // Cut off from the database: verification goes on from memory...
    proxy.cut();
    let (st, v) = verify(&a, &org2);
    assert_eq!(
        (st, v["allowed"].clone()),
        (200, json!(true)),
        "from memory: {v}"
    );
    // ...until the node is staler than --max-staleness: then it fails closed.
    for (name, n) in [("A", &a), ("B", &b), ("C", &c)] {
        eventually(&format!("{name} answers 503 stale"), PROPAGATION, || {
            let (st, v) = verify(n, &org2);
            (st == 503 && code(&v) == "stale").then_some(())
        });
        let (st, v) = n.http("GET", "/v1/orgs/acme", Some(&org2), None);
        assert_eq!(
            (st, code(&v)),
            (503, "stale"),
            "{name} authenticated request: {v}"
        );
        let (st, v) = n.http("GET", "/v1/ready", None, None);
        assert_eq!(st, 503, "{name} not ready: {v}");
        let (st, _) = n.http("GET", "/v1/health", None, None);
        assert_eq!(st, 200, "{name} is alive all the same");
    }

    // The path returns: every node recovers.
    proxy.restore();
    for (name, n) in [("A", &a), ("B", &b), ("C", &c)] {
        eventually(&format!("{name} recovers"), PROPAGATION, || {
            let (st, _) = n.http("GET", "/v1/ready", None, None);
            let (vst, v) = verify(n, &org2);
            (st == 200 && vst == 200 && v["allowed"] == json!(true)).then_some(())
        });
    }
    for n in [a, b, c] {
        n.stop();
    }
}

#[test]
fn nodes_racing_to_initialise_end_with_one_operator_token() {
    let Some(db) = TestDb::create() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("shared.key");
    let (one, two) = std::thread::scope(|s| {
        let a = s.spawn(|| node(&tmp.path().join("one"), &db.url, &key, "30s"));
        let b = s.spawn(|| node(&tmp.path().join("two"), &db.url, &key, "30s"));
        (a.join().unwrap(), b.join().unwrap())
    });
    let written: Vec<bool> = ["one", "two"]
        .iter()
        .map(|d| tmp.path().join(d).join("operator.token").exists())
        .collect();
    assert_eq!(
        written.iter().filter(|w| **w).count(),
        1,
        "exactly one node wrote an operator token: {written:?}"
    );
    let op = one
        .operator_token()
        .or(two.operator_token())
        .unwrap()
        .to_owned();
    for n in [&one, &two] {
        let (st, v) = n.http("POST", "/v1/verify", None, Some(&json!({ "token": op })));
        assert_eq!(st, 200, "the one operator token works on both: {v}");
    }
    let rows = db.query_text("SELECT count(*) FROM macvault_tokens WHERE kind = 'operator'");
    assert_eq!(
        rows[0][0].as_deref(),
        Some(&b"1"[..]),
        "one operator token in the ledger"
    );

    // A node with another master key is refused, saying why.
    let other = tmp.path().join("other.key");
    let key = other.to_str().unwrap();
    let refused = Server::try_start_with(
        &tmp.path().join("three"),
        &["--database", &db.url, "--master-key-file", key],
    )
    .expect_err("a node with another master key must not start");
    assert!(
        refused
            .logs
            .stderr
            .contains("initialised with a different master key"),
        "{}",
        refused.logs.stderr
    );
    one.stop();
    two.stop();
}

/// Nodes A and B on `db` (data under `dir`), and the answer to creating org acme on A.
fn two_nodes_with_acme(db: &TestDb, dir: &Path) -> (Server, Server, Value) {
    let key = dir.join("master.key");
    let a = node(&dir.join("a"), &db.url, &key, "30s");
    let op = a.operator_token().unwrap().to_owned();
    let b = node(&dir.join("b"), &db.url, &key, "30s");
    let (st, v) = a.http(
        "POST",
        "/v1/orgs",
        Some(&op),
        Some(&json!({"name": "acme"})),
    );
    assert_eq!(st, 201, "{v}");
    (a, b, v)
}

#[test]
fn lineage_and_rotation_reach_every_node() {
    let Some(db) = TestDb::create() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, v) = two_nodes_with_acme(&db, tmp.path());
    let org = s(&v, "token").to_owned();
    crate::support::create_apps(&a, &org, "acme", &["web"]);
    let mint = |n: &Server, by: &str, name: &str, secs: u64| {
        let body = json!({"kind": "deploy", "app": "web", "name": name, "expiry_secs": secs});
        let (st, v) = n.http("POST", "/v1/orgs/acme/tokens", Some(by), Some(&body));
        assert_eq!(st, 201, "{v}");
        (s(&v, "token").to_owned(), s(&v["record"], "id").to_owned())
    };

    // A token minted on B by a token minted on A dies when A revokes its parent.
    let (parent, parent_id) = mint(&a, &org, "parent", 3600);
    let (child, _) = mint(&b, &parent, "child", 600);
    let (st, v) = a.http(
        "POST",
        &format!("/v1/tokens/{parent_id}/revoke"),
        Some(&org),
        None,
    );
    assert_eq!(
        (st, v["revoked_descendants"].clone()),
        (200, json!(1)),
        "{v}"
    );
    eventually(
        "B refuses the child of a token revoked on A",
        PROPAGATION,
        || {
            let (st, v) = verify(&b, &child);
            (st == 401 && code(&v) == "revoked").then_some(())
        },
    );

    // Rotated on B with an overlap: both tokens work on A meanwhile, only the new one after.
    let (old, old_id) = mint(&a, &org, "ci", 3600);
    let body = json!({"overlap_secs": 4});
    let (st, v) = b.http(
        "POST",
        &format!("/v1/tokens/{old_id}/rotate"),
        Some(&org),
        Some(&body),
    );
    assert_eq!(st, 201, "{v}");
    let new = s(&v, "token").to_owned();
    for n in [&a, &b] {
        assert_eq!(verify(n, &old).0, 200, "the old token during the overlap");
        assert_eq!(verify(n, &new).0, 200, "the new token");
    }
    for (name, n) in [("A", &a), ("B", &b)] {
        eventually(
            &format!("{name} refuses the old token after the overlap"),
            PROPAGATION,
            || {
                let (st, v) = verify(n, &old);
                (st == 401 && code(&v) == "revoked").then_some(())
            },
        );
        assert_eq!(verify(n, &new).0, 200);
    }
    a.stop();
    b.stop();
}

#[test]
fn audit_follow_on_one_node_sees_another_nodes_events_in_order() {
    let Some(db) = TestDb::create() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, v) = two_nodes_with_acme(&db, tmp.path());
    let org = s(&v, "token").to_owned();
    let org_id = s(&v, "token_id").to_owned();
    assert_eq!(org_id.len(), 32, "{v}");
    // Followed on B; the newest page ends with the org token's mint.
    let parked = b.log_count(macvault::authority::FOLLOW_PARKED);
    let mut follow = b.cli_lines(&org, &["audit", "--follow", "--json"]);
    let event = |line: String| -> Value { serde_json::from_str(&line).unwrap() };
    let first = loop {
        let e = event(follow.next_line());
        if s(&e, "detail").contains(&org_id) {
            break e;
        }
    };
    // The follow waits on B before anything is written on A.
    b.await_log(macvault::authority::FOLLOW_PARKED, parked);
    let mut ids = Vec::new();
    for n in 1..=3 {
        let body = json!({"kind": "readonly", "name": format!("n{n}")});
        let (st, v) = a.http("POST", "/v1/orgs/acme/tokens", Some(&org), Some(&body));
        assert_eq!(st, 201, "{v}");
        ids.push(s(&v["record"], "id").to_owned());
    }
    let mut seq = first["seq"].as_u64().unwrap();
    for id in &ids {
        let e = event(follow.next_line());
        assert_eq!(s(&e, "action"), "token.mint", "{e}");
        assert!(s(&e, "detail").contains(id.as_str()), "{e}");
        assert!(e["seq"].as_u64().unwrap() > seq, "in order: {e}");
        seq = e["seq"].as_u64().unwrap();
    }
}

/// A node's connection string: the test database, named after the node, with
/// PostgreSQL's idle-transaction timeout raised so that nothing here waits for it.
fn patient_url(db: &TestDb, name: &str) -> String {
    // Percent-encoded by hand: the driver reads `+` as itself, not as a space.
    format!(
        "{}?application_name={name}&options=-c%20idle_in_transaction_session_timeout%3D600s",
        db.url_via(db.addr())
    )
}

/// How many of node `name`'s sessions are inside an open transaction that has taken a
/// position in the change feed (it holds its org's feed counter row).
fn open_transactions(db: &TestDb, name: &str) -> usize {
    let rows = db.query_text(&format!(
        "SELECT count(*) FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid \
         WHERE a.application_name = '{name}' AND a.state LIKE 'idle in transaction%' \
         AND l.relation = 'macvault_feed_streams'::regclass AND l.mode = 'RowExclusiveLock'"
    ));
    String::from_utf8(rows[0][0].clone().unwrap())
        .unwrap()
        .parse()
        .unwrap()
}

/// Org `name` created by `op` on `srv`: its org token.
fn org_on(srv: &Server, op: &str, name: &str) -> String {
    let (st, v) = srv.http("POST", "/v1/orgs", Some(op), Some(&json!({ "name": name })));
    assert_eq!(st, 201, "{v}");
    s(&v, "token").to_owned()
}

/// On B, with A frozen: a write to another org succeeds, and a token revoked there is
/// refused on C.
fn others_go_on(b: &Server, c: &Server, beta: &str, n: usize) {
    let (st, v) = b.set_secrets(beta, "/v1/orgs/beta/secrets", &[("B", &n.to_string())]);
    assert_eq!(st, 200, "a write to beta on B while A is frozen: {v}");
    let body = json!({"kind": "readonly", "name": format!("r{n}")});
    let (st, v) = b.http("POST", "/v1/orgs/beta/tokens", Some(beta), Some(&body));
    assert_eq!(st, 201, "{v}");
    let token = s(&v, "token").to_owned();
    assert_eq!(verify(c, &token).0, 200);
    let (st, v) = b.http("POST", "/v1/tokens/self/revoke", Some(&token), None);
    assert_eq!(st, 200, "{v}");
    eventually("C to refuse the token B revoked", PROPAGATION, || {
        (verify(c, &token).0 == 401).then_some(())
    });
}

#[test]
fn a_frozen_writer_stalls_no_other_orgs_writes_or_revocations() {
    let Some(db) = TestDb::create() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("master.key");
    let start = |name: &str| {
        let url = patient_url(&db, &format!("node-{name}"));
        let key = key.to_str().unwrap().to_owned();
        Server::start_with(
            &tmp.path().join(name),
            &[
                "--database",
                &url,
                "--master-key-file",
                &key,
                "--request-timeout",
                "300s",
            ],
        )
    };
    let a = start("a");
    let op = a.operator_token().unwrap().to_owned();
    let (b, c) = (start("b"), start("c"));
    let alpha = org_on(&a, &op, "alpha");
    let beta = org_on(&a, &op, "beta");

    // A writer keeps node A busy writing alpha's secret N, counting what it was told.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writer = {
        let (url, alpha, stop, done) = (
            a.url().to_owned(),
            alpha.clone(),
            stop.clone(),
            done.clone(),
        );
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let http = crate::support::http_client(Duration::from_secs(300));
            let mut ok = 0usize;
            let mut n = 0usize;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                n += 1;
                let body = json!({"set": [{"name": "N", "value": n.to_string()}]});
                let st = rt.block_on(async {
                    http.post(format!("{url}/v1/orgs/alpha/secrets"))
                        .bearer_auth(&alpha)
                        .json(&body)
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                });
                if st.as_ref().is_ok_and(|s| *s == 200) {
                    ok += 1;
                }
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            ok
        })
    };

    // Freeze A until it is caught holding an open write transaction that has taken its
    // position in alpha's feed stream: a late committer.
    let mut caught = false;
    for _ in 0..2000 {
        let seen = done.load(std::sync::atomic::Ordering::SeqCst);
        eventually("A's writer to get an answer", PROPAGATION, || {
            (done.load(std::sync::atomic::Ordering::SeqCst) > seen).then_some(())
        });
        a.signal("STOP");
        if open_transactions(&db, "node-a") > 0 {
            caught = true;
            break;
        }
        a.signal("CONT");
    }
    assert!(caught, "never caught A inside a write transaction");
    // Another writer of alpha would wait for it (its rows are held); one of beta must not.

    // While A is frozen mid-write: B writes another org, and C refuses what B revoked.
    others_go_on(&b, &c, &beta, 1);
    // The same with a foreign transaction held open in another database on the server.
    let foreign = crate::support::pg::HeldTransaction::open_elsewhere();
    others_go_on(&b, &c, &beta, 2);
    drop(foreign);

    // Thawed, A finishes (or rolls back) its write: every write it answered 200 is
    // there once, and nothing else.
    a.signal("CONT");
    let seen = done.load(std::sync::atomic::Ordering::SeqCst);
    eventually("A to answer again", PROPAGATION, || {
        (done.load(std::sync::atomic::Ordering::SeqCst) > seen + 1).then_some(())
    });
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let ok = writer.join().unwrap();
    let (st, v) = c.http("GET", "/v1/orgs/alpha/secrets", Some(&alpha), None);
    assert_eq!(st, 200, "{v}");
    let version = v["secrets"][0]["version"].as_u64().unwrap();
    assert_eq!(
        version, ok as u64,
        "each answered write once, nothing lost: {v}"
    );
}
