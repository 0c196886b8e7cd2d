//! What a newcomer trips on, mended: one value from stdin at a time, one value read
//! alone (`secrets reveal NAME`), and `--app` taken from a token limited to one app.

use serde_json::json;

use crate::support::{Server, acme, s};

const WEB: &str = "/v1/orgs/acme/apps/web/secrets";

fn runtime(srv: &Server, org: &str) -> String {
    let body = json!({"kind": "runtime", "app": "web", "name": "boot"});
    let (st, v) = srv.http("POST", "/v1/orgs/acme/tokens", Some(org), Some(&body));
    assert_eq!(st, 201, "{v}");
    s(&v, "token").to_owned()
}

#[test]
fn stdin_gives_one_value_per_command() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    let (_op, org) = acme(&srv);
    let env = [("MACVAULT_TOKEN", org.as_str())];
    let args = ["secrets", "set", "--app", "web", "A=-", "B=-"];
    let (c, _, err) = srv.cli_stdin(&args, &env, b"first\n");
    assert_eq!(c, 2, "{err}");
    assert!(err.contains("stdin can be read once"), "{err}");
    let (st, v) = srv.http("GET", WEB, Some(&org), None);
    assert_eq!(
        (st, v["secrets"].as_array().map(Vec::len)),
        (200, Some(0)),
        "nothing written: {v}"
    );
    // One is fine.
    let (c, _, err) = srv.cli_stdin(
        &["secrets", "set", "--app", "web", "A=-", "B=2"],
        &env,
        b"first\n",
    );
    assert_eq!(c, 0, "{err}");
}

#[test]
fn secrets_reveal_prints_one_value_and_reveals_only_it() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    let (_op, org) = acme(&srv);
    let (st, v) = srv.set_secrets(&org, WEB, &[("DB_URL", "postgres://db"), ("API_KEY", "k")]);
    assert_eq!(st, 200, "{v}");
    let rt = runtime(&srv, &org);
    let env = [("MACVAULT_TOKEN", rt.as_str())];
    // The runtime token names its one app: no --app needed.
    let (c, out, err) = srv.cli(&["secrets", "reveal", "DB_URL"], &env);
    assert_eq!((c, out.as_str()), (0, "postgres://db\n"), "{err}");
    let (c, out, err) = srv.cli(&["secrets", "reveal", "DB_URL", "--json"], &env);
    assert_eq!(c, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v, json!({"name": "DB_URL", "value": "postgres://db"}));
    // The audit names that one secret only.
    let (_, audit) = srv.http(
        "GET",
        "/v1/orgs/acme/audit?action=secret.reveal",
        Some(&org),
        None,
    );
    let text = audit.to_string();
    assert!(
        text.contains("revealed 1 secret(s) of app web of org acme at version 1: DB_URL"),
        "{text}"
    );
    assert!(!text.contains("API_KEY"), "{text}");
    // A name that is not there, and a token that may not reveal: refused, nothing printed.
    let (c, out, err) = srv.cli(&["secrets", "reveal", "NOPE"], &env);
    assert_eq!((c, out.as_str()), (5, ""), "{err}");
    assert!(err.contains("no secret NOPE in app web"), "{err}");
    let body = json!({"kind": "deploy", "app": "web", "name": "ci"});
    let (_, v) = srv.http("POST", "/v1/orgs/acme/tokens", Some(&org), Some(&body));
    let (c, out, err) = srv.cli(
        &["secrets", "reveal", "DB_URL"],
        &[("MACVAULT_TOKEN", s(&v, "token"))],
    );
    assert_eq!((c, out.as_str()), (1, ""), "{err}");
}

#[test]
fn app_defaults_to_the_one_app_a_token_is_limited_to() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    let (_op, org) = acme(&srv);
    let (st, v) = srv.set_secrets(&org, WEB, &[("GREETING", "hi")]);
    assert_eq!(st, 200, "{v}");
    let rt = runtime(&srv, &org);
    let env = [("MACVAULT_TOKEN", rt.as_str())];
    let (c, out, err) = srv.cli(&["run", "--", "sh", "-c", "echo $GREETING"], &env);
    assert_eq!((c, out.as_str()), (0, "hi\n"), "{err}");
    let (c, out, err) = srv.cli(&["secrets", "export", "--format", "shell"], &env);
    assert_eq!((c, out.as_str()), (0, "GREETING='hi'\n"), "{err}");
    // An org token names no app: run asks for one.
    let (c, _, err) = srv.cli(&["run", "--", "true"], &[("MACVAULT_TOKEN", org.as_str())]);
    assert_eq!(c, 125, "{err}");
    assert!(err.contains("give --app"), "{err}");
}

#[test]
fn a_bad_token_file_is_named_with_what_is_wrong() {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    let (_op, org) = acme(&srv);
    let file = |name: &str, text: &str| {
        let path = tmp.path().join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let truncated = &org[..org.len() / 2];
    let cases = [
        (
            file("app.env", "DB_URL=postgres://x\nAPI_KEY=1\n"),
            "does not hold a token",
        ),
        (file("empty.token", "\n"), "is empty"),
        (file("half.token", truncated), "truncated or damaged"),
        (file("garbage.token", "mvt_garbage"), "truncated or damaged"),
    ];
    for (path, says) in &cases {
        let (c, _, err) = srv.cli(&["orgs", "show", "--token-file", path], &[]);
        assert_eq!(c, 2, "{path}: {err}");
        assert!(
            err.contains(says) && err.contains(path.as_str()),
            "{path}: {err}"
        );
    }
    let dir = tmp.path().to_str().unwrap();
    let (c, _, err) = srv.cli(&["orgs", "show", "--token-file", dir], &[]);
    assert_eq!(c, 2, "{err}");
    assert!(err.contains("is a directory"), "{err}");
    // A truncated token given another way says so too, not "give --org".
    let (c, _, err) = srv.cli(&["orgs", "show"], &[("MACVAULT_TOKEN", truncated)]);
    assert_eq!(c, 2, "{err}");
    assert!(err.contains("does not decode"), "{err}");
}

#[test]
fn nothing_is_created_by_accident() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    // operator-token on a mistyped data directory creates nothing and says why.
    let typo = tmp.path().join("dtaa");
    let (c, _, err) = srv.cli(
        &["operator-token", "--data-dir", typo.to_str().unwrap()],
        &[],
    );
    assert_ne!(c, 0, "{err}");
    assert!(
        err.contains("no macvault store here") && err.contains("dtaa"),
        "{err}"
    );
    assert!(!typo.exists(), "the typo'd directory was created");
    // serve on a port already taken fails before it writes anything.
    let fresh = tmp.path().join("fresh");
    let busy = srv.url().trim_start_matches("http://").to_owned();
    let out = std::process::Command::new(crate::support::BIN)
        .args(["serve", "--listen", &busy, "--data-dir"])
        .arg(&fresh)
        .env_remove("MACVAULT_DATA_DIR")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("cannot listen on"),
        "{err}"
    );
    assert!(!fresh.exists(), "a failed serve left {}", fresh.display());
}
