//! The audit log through the server and the CLI: `audit --follow` shows new events as
//! they are written and ends when its token is revoked; a follow's cursor is checked.
//! (Aggregated denials and the cursors are tested in-process, in the authority's tests;
//! a follow across nodes, in `multinode.rs`.)

use serde_json::{Value, json};

use crate::support::{Server, acme, code, s};

/// Mints a readonly token named `name` with `token`: its id.
fn mint(srv: &Server, token: &str, name: &str) -> String {
    let body = json!({"kind": "readonly", "name": name});
    let (st, v) = srv.http("POST", "/v1/orgs/acme/tokens", Some(token), Some(&body));
    assert_eq!(st, 201, "{v}");
    s(&v["record"], "id").to_owned()
}

#[test]
fn audit_follow_shows_new_events_and_ends_when_its_token_is_revoked() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let (_op, org) = acme(&srv);
    let body = json!({"kind": "org", "name": "watcher"});
    let (st, v) = srv.http("POST", "/v1/orgs/acme/tokens", Some(&org), Some(&body));
    assert_eq!(st, 201, "{v}");
    let (watcher, watcher_id) = (s(&v, "token").to_owned(), s(&v["record"], "id").to_owned());
    assert_eq!(watcher_id.len(), 32, "{v}");
    let args = ["audit", "--follow", "--json", "--action", "token.mint"];
    let mut follow = srv.cli_lines(&watcher, &args);
    // The newest page first: the watcher's own mint is its last line.
    let event = |line: String| -> Value { serde_json::from_str(&line).unwrap() };
    loop {
        let e = event(follow.next_line());
        if s(&e, "detail").contains(&watcher_id) {
            break;
        }
    }
    let ids: Vec<String> = (1..=3)
        .map(|n| mint(&srv, &org, &format!("n{n}")))
        .collect();
    for id in &ids {
        let e = event(follow.next_line());
        assert_eq!(s(&e, "action"), "token.mint");
        assert!(s(&e, "detail").contains(id.as_str()), "{e}");
    }
    let (st, v) = srv.http(
        "POST",
        &format!("/v1/tokens/{watcher_id}/revoke"),
        Some(&org),
        Some(&json!({})),
    );
    assert_eq!(st, 200, "{v}");
    let (exit, err) = follow.wait();
    assert_ne!(exit, 0, "{err}");
    assert!(err.contains("revoked"), "{err}");
}

#[test]
fn a_follow_needs_its_own_cursor_and_not_a_page_cursor_beside_it() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let (_op, org) = acme(&srv);
    let (st, page) = srv.http("GET", "/v1/orgs/acme/audit", Some(&org), None);
    assert_eq!(st, 200, "{page}");
    let newer = s(&page, "newer").to_owned();
    let (st, v) = srv.http(
        "GET",
        &format!("/v1/orgs/acme/audit?after={newer}&before={newer}"),
        Some(&org),
        None,
    );
    assert_eq!((st, code(&v)), (400, "bad_request"), "{v}");
    let (st, v) = srv.http(
        "GET",
        "/v1/orgs/acme/audit?after=not-a-cursor",
        Some(&org),
        None,
    );
    assert_eq!((st, code(&v)), (400, "bad_request"), "{v}");
    // A follow from an older position answers what came since at once.
    let (st, v) = srv.http(
        "GET",
        "/v1/orgs/acme/audit?after=AAAAAAAAAAA",
        Some(&org),
        None,
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(s(&v, "newer"), newer, "{v}");
    assert!(!v["events"].as_array().unwrap().is_empty());
}
