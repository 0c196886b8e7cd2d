//! Token lifecycle through the real binary: no org is ever locked out (the operator
//! issues org tokens; a lost operator token is replaced offline), revocation follows
//! lineage, rotation keeps both tokens valid for an overlap, key retirement previews and
//! spares its caller. Short expiries stand in for days; the clock is never faked.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{BIN, Server, code, eventually, s};

const WAIT: Duration = Duration::from_secs(30);

fn verify(srv: &Server, token: &str) -> (u16, String) {
    let (st, v) = srv.http("POST", "/v1/verify", None, Some(&json!({ "token": token })));
    (st, code(&v).to_owned())
}

fn get_org(srv: &Server, token: &str, org: &str) -> (u16, String) {
    let (st, v) = srv.http("GET", &format!("/v1/orgs/{org}"), Some(token), None);
    (st, code(&v).to_owned())
}

/// Mints in acme over HTTP: (token, record).
fn mint(
    srv: &Server,
    by: &str,
    kind: &str,
    app: Option<&str>,
    name: &str,
    secs: u64,
) -> (String, Value) {
    let mut body = json!({"kind": kind, "name": name, "expiry_secs": secs});
    if let Some(app) = app {
        body["app"] = json!(app);
    }
    let (st, v) = srv.http("POST", "/v1/orgs/acme/tokens", Some(by), Some(&body));
    assert_eq!(st, 201, "mint {name}: {v}");
    (s(&v, "token").to_owned(), v["record"].clone())
}

fn ledger(srv: &Server, by: &str) -> Vec<Value> {
    let (st, v) = srv.http("GET", "/v1/orgs/acme/tokens", Some(by), None);
    assert_eq!(st, 200, "{v}");
    v["tokens"].as_array().unwrap().clone()
}

fn record<'a>(list: &'a [Value], id: &str) -> &'a Value {
    list.iter()
        .find(|r| s(r, "id") == id)
        .expect("in the ledger")
}

/// Org acme with an org token lasting `expiry`: (operator token, org token).
fn acme(srv: &Server, expiry: &str) -> (String, String) {
    let op = srv.operator_token().expect("operator token").to_owned();
    let org = srv.cli_ok(&op, &["orgs", "create", "acme", "--expiry", expiry]);
    crate::support::create_apps(srv, org.trim(), "acme", &["web", "api"]);
    (op, org.trim().to_owned())
}

#[test]
fn an_org_outlives_its_first_token_and_its_revocation() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    // Long enough to outlive the set-up on a loaded machine; the wait below is for its end.
    let (op, first) = acme(&srv, "10s");
    assert_eq!(get_org(&srv, &first, "acme").0, 200);
    eventually("the first org token expires", WAIT, || {
        (verify(&srv, &first) == (401, "expired".into())).then_some(())
    });
    // Locked out by expiry: the operator issues a new org token.
    let fresh = srv.cli_ok(&op, &["orgs", "token", "acme", "--expiry", "1h"]);
    let fresh = fresh.trim();
    assert!(
        fresh.starts_with("mvt_") && !fresh.contains('\n'),
        "only the token: {fresh:?}"
    );
    assert_eq!(get_org(&srv, fresh, "acme").0, 200);
    mint(&srv, fresh, "deploy", Some("web"), "ci", 600);
    // Audited in the org and in the operator's own log.
    for (org, by) in [("acme", fresh), ("system", op.as_str())] {
        let (st, v) = srv.http("GET", &format!("/v1/orgs/{org}/audit"), Some(by), None);
        assert_eq!(st, 200, "{v}");
        let issued = v["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| s(e, "detail").contains("issued by the operator"));
        assert!(issued, "{org}: {v:#}");
    }
    // Locked out by revocation: the same way back.
    let (st, _) = srv.http("POST", "/v1/tokens/self/revoke", Some(fresh), None);
    assert_eq!(st, 200);
    assert_eq!(get_org(&srv, fresh, "acme"), (401, "revoked".into()));
    let again = srv.cli_ok(&op, &["orgs", "token", "acme"]);
    assert_eq!(get_org(&srv, again.trim(), "acme").0, 200);
    // Capped by the org's maximum; the operator lists every org.
    srv.cli_ok(again.trim(), &["orgs", "set", "acme", "--max-expiry", "1d"]);
    let (code_, _, err) = srv.cli(
        &["orgs", "token", "acme", "--expiry", "2d"],
        &[("MACVAULT_TOKEN", &op)],
    );
    assert_ne!(code_, 0);
    assert!(err.contains("maximum"), "{err}");
    let list = srv.cli_json(&op, &["orgs", "list", "--json"]);
    let names: Vec<&str> = list["orgs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| s(o, "name"))
        .collect();
    assert_eq!(names, ["acme", "system"]);
    // Nobody else may issue org tokens.
    let (c, _, err) = srv.cli(
        &["orgs", "token", "acme"],
        &[("MACVAULT_TOKEN", again.trim())],
    );
    assert_ne!(c, 0, "{err}");
    srv.stop();
}

fn operator_token_offline(data: &Path) -> (bool, String) {
    let out = Command::new(BIN)
        .args(["operator-token", "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_operator_token_is_not_a_single_point_of_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let srv = Server::start(&data);
    let (op, org) = acme(&srv, "1h");
    // The operator revokes itself: the orgs it created live on (their tokens are roots).
    let out = srv.cli_ok(&op, &["tokens", "revoke", "--self"]);
    assert!(out.starts_with("revoked "), "{out}");
    assert_eq!(verify(&srv, &op), (401, "revoked".into()));
    assert_eq!(get_org(&srv, &org, "acme").0, 200);
    srv.stop();

    // Offline, with the master key, a new one.
    let (ok, out) = operator_token_offline(&data);
    assert!(ok, "{out}");
    assert!(out.contains("operator.token"), "{out}");
    let new_op = std::fs::read_to_string(data.join("operator.token")).unwrap();
    let new_op = new_op.trim().to_owned();
    assert_ne!(new_op, op);
    let srv = Server::start(&data);
    let (st, _) = srv.http("GET", "/v1/orgs", Some(&new_op), None);
    assert_eq!(st, 200, "the new operator token works");
    assert_eq!(verify(&srv, &op), (401, "revoked".into()));
    assert_eq!(get_org(&srv, &org, "acme").0, 200);
    srv.stop();

    // Issued again (the one before leaked, say): the previous one is revoked.
    let (ok, out) = operator_token_offline(&data);
    assert!(
        ok && out.contains("1 earlier operator token(s) revoked"),
        "{out}"
    );
    let srv = Server::start(&data);
    assert_eq!(verify(&srv, &new_op), (401, "revoked".into()));
    srv.stop();
}

#[test]
fn revoking_a_token_revokes_what_it_minted_unless_orphaned() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    let (_op, org) = acme(&srv, "1h");
    let (a, a_rec) = mint(&srv, &org, "deploy", Some("web"), "leaked", 3000);
    let (b, _) = mint(&srv, &a, "deploy", Some("web"), "child", 2000);
    let (c, _) = mint(&srv, &b, "deploy", Some("web"), "grandchild", 1000);
    let a_id = s(&a_rec, "id");
    let out = srv.cli_ok(&org, &["tokens", "revoke", a_id, "--yes"]);
    assert_eq!(
        out.trim(),
        format!("revoked {a_id} (leaked) and 2 tokens minted from it")
    );
    for t in [&a, &b, &c] {
        assert_eq!(verify(&srv, t), (401, "revoked".into()));
    }
    // Again: 200, and it says so.
    let (st, v) = srv.http(
        "POST",
        &format!("/v1/tokens/{a_id}/revoke"),
        Some(&org),
        None,
    );
    assert_eq!(
        (st, v["already_revoked"].clone()),
        (200, json!(true)),
        "{v}"
    );

    // --orphan: only the token; its child lives on, under the revoked token's parent.
    let (a2, a2_rec) = mint(&srv, &org, "deploy", Some("web"), "leaked-2", 3000);
    let (b2, b2_rec) = mint(&srv, &a2, "deploy", Some("web"), "child-2", 2000);
    let out = srv.cli_ok(&org, &["tokens", "revoke", "--orphan", s(&a2_rec, "id")]);
    assert!(out.starts_with("revoked "), "{out}");
    assert_eq!(verify(&srv, &a2), (401, "revoked".into()));
    assert_eq!(verify(&srv, &b2), (200, String::new()));
    let list = ledger(&srv, &org);
    let org_id = s(record(&list, s(&a2_rec, "id")), "parent");
    assert_eq!(s(record(&list, s(&b2_rec, "id")), "parent"), org_id);
    assert_eq!(
        s(record(&list, s(&b2_rec, "id")), "creator"),
        s(&a2_rec, "id")
    );
    srv.stop();
}

#[test]
fn rotation_overlaps_then_only_the_new_token_works() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    let (_op, org) = acme(&srv, "1h");
    let (old, old_rec) = mint(&srv, &org, "deploy", Some("web"), "ci", 3000);
    let (child, child_rec) = mint(&srv, &old, "deploy", Some("web"), "ci-child", 600);
    let old_id = s(&old_rec, "id").to_owned();

    // A token cannot rotate itself.
    let (st, v) = srv.http(
        "POST",
        &format!("/v1/tokens/{old_id}/rotate"),
        Some(&old),
        None,
    );
    assert_eq!((st, code(&v)), (400, "bad_request"), "{v}");
    // Nor can a deploy token rotate a runtime token into a fresh one with reveal.
    let (_, rt) = mint(&srv, &org, "runtime", Some("web"), "rt", 600);
    let path = format!("/v1/tokens/{}/rotate", s(&rt, "id"));
    let (st, v) = srv.http("POST", &path, Some(&child), None);
    assert_eq!((st, code(&v)), (403, "denied"), "{v}");

    let done = srv.cli_json(
        &org,
        &["tokens", "rotate", &old_id, "--overlap", "4s", "--json"],
    );
    let new = s(&done, "token").to_owned();
    let new_id = s(&done["record"], "id").to_owned();
    assert!(s(&done["record"], "name").starts_with("ci-2"), "{done:#}");
    assert_eq!(s(&done["record"], "kind"), "deploy");
    assert_eq!(done["moved_children"], json!(1));
    // During the overlap: both work; the old one can no longer mint.
    assert_eq!(verify(&srv, &old), (200, String::new()));
    assert_eq!(verify(&srv, &new), (200, String::new()));
    let body = json!({"kind": "deploy", "app": "web", "expiry_secs": 60});
    let (st, v) = srv.http("POST", "/v1/orgs/acme/tokens", Some(&old), Some(&body));
    assert_eq!((st, code(&v)), (401, "revoked"), "{v}");
    // Its children now hang on the new token.
    let list = ledger(&srv, &org);
    assert_eq!(s(record(&list, s(&child_rec, "id")), "parent"), new_id);
    // After it: only the new one, and the moved child lives on.
    eventually(
        "the old token stops at the end of the overlap",
        WAIT,
        || (verify(&srv, &old) == (401, "revoked".into())).then_some(()),
    );
    assert_eq!(verify(&srv, &new), (200, String::new()));
    assert_eq!(verify(&srv, &child), (200, String::new()));
    srv.stop();
}

#[test]
fn key_retirement_previews_needs_yes_and_spares_its_caller() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    let (_op, org1) = acme(&srv, "1h");
    let (t1, _) = mint(&srv, &org1, "deploy", Some("web"), "under-v1", 3000);
    srv.cli_ok(&org1, &["keys", "rotate", "--org", "acme"]);
    let (org2, _) = mint(&srv, &org1, "org", None, "admin-v2", 3000);
    let (t2, _) = mint(&srv, &t1, "deploy", Some("web"), "child-under-v2", 600);

    // The preview names what would stop; without --yes nothing happens.
    let (c, out, err) = srv.cli(
        &["keys", "retire", "--org", "acme", "1"],
        &[("MACVAULT_TOKEN", &org2)],
    );
    assert_ne!(c, 0);
    assert!(
        out.contains("under-v1") && err.contains("--yes"),
        "{out}\n{err}"
    );
    assert_eq!(verify(&srv, &t1), (200, String::new()));
    // The caller's own version, never.
    let (c, _, err) = srv.cli(
        &["keys", "retire", "--org", "acme", "1", "--yes"],
        &[("MACVAULT_TOKEN", &org1)],
    );
    assert_ne!(c, 0);
    assert!(err.contains("minted under key version 1"), "{err}");
    // With --yes: tokens minted under v1 stop, and say why.
    srv.cli_ok(&org2, &["keys", "retire", "--org", "acme", "1", "--yes"]);
    assert_eq!(verify(&srv, &t1), (401, "key_retired".into()));
    assert_eq!(verify(&srv, &org1), (401, "key_retired".into()));
    // A token minted under v2 by a v1 token lives on: retirement is not revocation.
    assert_eq!(verify(&srv, &t2), (200, String::new()));
    srv.stop();
}
