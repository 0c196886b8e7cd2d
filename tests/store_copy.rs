//! `macvault store copy`: an embedded store with orgs, rotated keys, tokens,
//! revocations and audit, copied into PostgreSQL and back out to a new data directory;
//! nodes on each copy verify the old tokens and refuse the revoked ones.

use std::process::Command;

use serde_json::json;

use crate::support::pg::TestDb;
use crate::support::{BIN, Server, acme, code, s};

fn copy(from: &str, to: &str) -> (bool, String) {
    let out = Command::new(BIN)
        .args(["store", "copy", "--from", from, "--to", to])
        .output()
        .expect("run store copy");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn verify(srv: &Server, token: &str) -> (u16, String) {
    let (st, v) = srv.http("POST", "/v1/verify", None, Some(&json!({ "token": token })));
    (st, code(&v).to_owned())
}

#[test]
fn a_store_copied_into_postgres_and_back_keeps_its_tokens_and_revocations() {
    let Some(db) = TestDb::create() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let srv = Server::start(&src);
    let (_op, org) = acme(&srv);
    let (st, _) = srv.http("POST", "/v1/orgs/acme/keys/rotate", Some(&org), None);
    assert_eq!(st, 200);
    let mint = |name: &str| {
        let body = json!({"kind": "deploy", "app": "web", "name": name, "expiry_secs": 3600});
        let (st, v) = srv.http("POST", "/v1/orgs/acme/tokens", Some(&org), Some(&body));
        assert_eq!(st, 201, "{v}");
        (s(&v, "token").to_owned(), s(&v["record"], "id").to_owned())
    };
    let (kept, _) = mint("kept");
    let (gone, gone_id) = mint("gone");
    let (st, _) = srv.http(
        "POST",
        &format!("/v1/tokens/{gone_id}/revoke"),
        Some(&org),
        None,
    );
    assert_eq!(st, 200);
    srv.stop();

    let check = |node: &Server, label: &str| {
        assert_eq!(
            verify(node, &org),
            (200, String::new()),
            "{label}: the v1 org token"
        );
        assert_eq!(
            verify(node, &kept),
            (200, String::new()),
            "{label}: a v2 token"
        );
        assert_eq!(
            verify(node, &gone),
            (401, "revoked".into()),
            "{label}: the revoked one"
        );
        let (st, v) = node.http("GET", "/v1/orgs/acme/audit?limit=1000", Some(&org), None);
        assert_eq!(st, 200, "{label}: {v}");
        let actions: Vec<&str> = v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        for want in ["org.create", "key.rotate", "token.mint", "token.revoke"] {
            assert!(
                actions.contains(&want),
                "{label}: {want} not in {actions:?}"
            );
        }
    };

    // Into PostgreSQL.
    let src_dir = src.to_str().unwrap();
    let (ok, out) = copy(src_dir, &db.url);
    assert!(ok, "{out}");
    assert!(
        out.contains("2 orgs") && out.contains("master key"),
        "{out}"
    );
    let (ok, out) = copy(src_dir, &db.url);
    assert!(
        !ok && out.contains("is not empty"),
        "a non-empty target is refused: {out}"
    );
    let key = src.join("master.key");
    let node = Server::start_with(
        &tmp.path().join("pg-node"),
        &[
            "--database",
            &db.url,
            "--master-key-file",
            key.to_str().unwrap(),
        ],
    );
    assert!(
        node.operator_token().is_none(),
        "the copy is initialised already"
    );
    check(&node, "on PostgreSQL");
    node.stop();

    // And back out, to a new data directory (with the master key beside it).
    let back = tmp.path().join("back");
    let (ok, out) = copy(&db.url, back.to_str().unwrap());
    assert!(ok, "{out}");
    std::fs::copy(&key, back.join("master.key")).unwrap();
    let node = Server::start(&back);
    check(&node, "back in a data directory");
    node.stop();
}
