//! OAuth clients through the CLI and the API: registered by an org token (a
//! confidential client's secret printed once, on stdout), listed, shown, removed;
//! refused to other tokens and for bad redirect URIs; the secret never stored or
//! logged in the clear.

use serde_json::json;

use crate::support::{Server, acme, code, contains_bytes, s};

#[test]
fn an_org_token_registers_lists_shows_and_removes_clients() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let (_op, org) = acme(&srv);
    let (status, secret, err) = srv.cli(
        &[
            "oauth-clients",
            "add",
            "CI dashboard",
            "--redirect-uri",
            "https://ci.example/cb",
            "--redirect-uri",
            "http://127.0.0.1/cb",
        ],
        &[("MACVAULT_TOKEN", &org)],
    );
    assert_eq!(status, 0, "{err}");
    let secret = secret.trim().to_owned();
    assert!(secret.starts_with("mvcs_"), "{secret}");
    let id = err
        .split_whitespace()
        .find(|w| w.starts_with("mvc_"))
        .expect("the client id on stderr")
        .to_owned();
    let public = srv.cli_json(
        &org,
        &[
            "oauth-clients",
            "add",
            "cli",
            "--redirect-uri",
            "http://[::1]/cb",
            "--public",
            "--json",
        ],
    );
    assert!(public["client_secret"].is_null() && public["public"] == json!(true));
    let list = srv.cli_ok(&org, &["oauth-clients", "list"]);
    assert!(
        list.contains(&id) && list.contains("confidential") && list.contains("public"),
        "{list}"
    );
    let shown = srv.cli_json(&org, &["oauth-clients", "show", &id, "--json"]);
    assert_eq!(s(&shown, "name"), "CI dashboard");
    assert!(!shown.to_string().contains(&secret), "shown only once");
    srv.cli_ok(&org, &["oauth-clients", "remove", &id]);
    let (st, v) = srv.http(
        "GET",
        &format!("/v1/orgs/acme/oauth-clients/{id}"),
        Some(&org),
        None,
    );
    assert_eq!((st, code(&v)), (404, "not_found"), "{v}");
    let (_, audit) = srv.http(
        "GET",
        "/v1/orgs/acme/audit?action=oauth_client.add",
        Some(&org),
        None,
    );
    assert_eq!(audit["events"].as_array().unwrap().len(), 2, "{audit}");
    let logs = srv.stop();
    let db = std::fs::read(tmp.path().join("macvault.redb")).unwrap();
    assert!(
        !contains_bytes(&db, secret.as_bytes()),
        "only its hash is stored"
    );
    assert!(!logs.stderr.contains(&secret) && !logs.stdout.contains(&secret));
}

#[test]
fn other_tokens_and_bad_redirect_uris_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let (_op, org) = acme(&srv);
    let body = |uri: &str| json!({"name": "x", "redirect_uris": [uri]});
    let (st, v) = srv.http(
        "POST",
        "/v1/orgs/acme/tokens",
        Some(&org),
        Some(&json!({"kind": "deploy", "app": "web"})),
    );
    assert_eq!(st, 201, "{v}");
    let deploy = s(&v, "token").to_owned();
    let (st, v) = srv.http(
        "POST",
        "/v1/orgs/acme/oauth-clients",
        Some(&deploy),
        Some(&body("https://x.example/cb")),
    );
    assert_eq!((st, code(&v)), (403, "denied"), "{v}");
    for uri in ["http://x.example/cb", "https://x.example/cb#f", "x"] {
        let (st, v) = srv.http(
            "POST",
            "/v1/orgs/acme/oauth-clients",
            Some(&org),
            Some(&body(uri)),
        );
        assert_eq!((st, code(&v)), (400, "bad_request"), "{uri}: {v}");
    }
}
