//! The command line as a user meets it: exit codes by class, token files and stdin, id
//! prefixes, `--org` from the token, warnings about expiry and useless caveats, names
//! that cannot hide characters, completions.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::json;

use crate::support::{BIN, Server, acme, s};

fn write_token(dir: &Path, name: &str, token: &str, mode: u32) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("{token}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Runs the CLI against `srv` with `args`: (exit code, stdout, stderr).
fn cli(srv: &Server, args: &[&str]) -> (i32, String, String) {
    srv.cli(args, &[])
}

#[test]
fn exit_codes_say_what_kind_of_failure_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    let (_op, org) = acme(&srv);
    let org_file = write_token(tmp.path(), "org.token", &org, 0o600);
    let ro = srv.cli_ok(&org, &["tokens", "create", "readonly", "--expiry", "1h"]);
    let ro_file = write_token(tmp.path(), "ro.token", ro.trim(), 0o600);
    // 0: success, with --org taken from the token.
    let (c, out, _) = cli(&srv, &["orgs", "show", "--token-file", &org_file]);
    assert_eq!(c, 0);
    assert!(out.contains("acme"), "{out}");
    // 1: denied, by a caveat.
    let (c, _, err) = cli(&srv, &["keys", "rotate", "--token-file", &ro_file]);
    assert_eq!(c, 1, "{err}");
    assert!(err.contains("denied: caveat 2 (actions = r)"), "{err}");
    // 1: denied, for another org, saying which org the token is for.
    let (c, _, err) = cli(&srv, &["orgs", "show", "beta", "--token-file", &org_file]);
    assert_eq!(c, 1, "{err}");
    assert!(
        err.contains("this token is for org \"acme\", not \"beta\""),
        "{err}"
    );
    // 2: usage (clap, and a token file others can read).
    let (c, _, _) = cli(&srv, &["tokens", "create", "wizard"]);
    assert_eq!(c, 2);
    let loose = write_token(tmp.path(), "loose.token", &org, 0o644);
    let (c, _, err) = cli(&srv, &["orgs", "show", "--token-file", &loose]);
    assert_eq!(c, 2, "{err}");
    assert!(err.contains("chmod 600"), "{err}");
    // 3: not authenticated.
    let (c, _, err) = cli(&srv, &["orgs", "show", "acme", "--token", "mvt_AgIAAA"]);
    assert_eq!(c, 3, "{err}");
    // 4: unreachable (nothing listens there); a token over plain http elsewhere is warned of.
    let (c, _, err) = srv.cli(
        &[
            "orgs",
            "show",
            "acme",
            "--token-file",
            &org_file,
            "--url",
            "http://192.0.2.1:9",
        ],
        &[],
    );
    assert_eq!(c, 4, "{err}");
    assert!(err.contains("over plain http"), "{err}");
    let (c, _, err) = srv.cli(
        &[
            "orgs",
            "show",
            "acme",
            "--token-file",
            &org_file,
            "--url",
            "http://127.0.0.1:1",
        ],
        &[],
    );
    assert_eq!(c, 4, "{err}");
    assert!(!err.contains("plain http"), "loopback is fine: {err}");
    // 5: other refusals (404, 400).
    let (c, _, err) = cli(
        &srv,
        &["tokens", "show", "0123456789", "--token-file", &org_file],
    );
    assert_eq!(c, 5, "{err}");
    let (c, _, err) = cli(
        &srv,
        &["tokens", "create", "deploy", "--token-file", &org_file],
    );
    assert_eq!(c, 5, "{err}");
    assert!(err.contains("needs an app"), "{err}");
    // --json: the error as JSON on stderr, nothing on stdout.
    let (c, out, err) = cli(
        &srv,
        &[
            "tokens",
            "show",
            "0123456789",
            "--token-file",
            &org_file,
            "--json",
        ],
    );
    assert_eq!((c, out.as_str()), (5, ""));
    let body: serde_json::Value = serde_json::from_str(err.trim()).unwrap();
    assert_eq!(
        (s(&body["error"], "code"), body["exit"].clone()),
        ("not_found", json!(5))
    );
    srv.stop();
}

#[test]
fn tokens_come_from_files_stdin_or_arguments_never_only_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    let (_op, org) = acme(&srv);
    // --token - reads stdin.
    let mut child = Command::new(BIN)
        .args(["orgs", "show", "--token", "-", "--url", srv.url()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), org.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // MACVAULT_TOKEN_FILE.
    let file = write_token(tmp.path(), "org.token", &org, 0o400);
    let (c, out, err) = srv.cli(&["orgs", "show"], &[("MACVAULT_TOKEN_FILE", &file)]);
    assert_eq!(c, 0, "{err}");
    assert!(out.contains("acme"));
    // verify with no access says so.
    let (c, out, _) = srv.cli(&["tokens", "verify"], &[("MACVAULT_TOKEN_FILE", &file)]);
    assert_eq!(c, 0);
    assert!(out.starts_with("valid (no access checked)"), "{out}");
    srv.stop();
}

#[test]
fn token_ids_may_be_prefixes_within_the_callers_org() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    let (op, org) = acme(&srv);
    let (st, v) = srv.http(
        "POST",
        "/v1/orgs",
        Some(&op),
        Some(&json!({"name": "beta"})),
    );
    assert_eq!(st, 201);
    let beta = s(&v, "token").to_owned();
    let body = json!({"kind": "deploy", "app": "web", "name": "ci", "expiry_secs": 3600});
    let (_, v) = srv.http("POST", "/v1/orgs/acme/tokens", Some(&org), Some(&body));
    let id = s(&v["record"], "id").to_owned();
    // Unique: 8 digits are enough, for show, revoke and rotate alike.
    let shown = srv.cli_json(&org, &["tokens", "show", &id[..8], "--json"]);
    assert_eq!(s(&shown["record"], "id"), id);
    // Too short: a clear 400.
    let (st, v) = srv.http("GET", &format!("/v1/tokens/{}", &id[..6]), Some(&org), None);
    assert_eq!(st, 400, "{v}");
    // Another org's token is not found: whole id or prefix, nothing is told.
    for probe in [&id[..], &id[..8]] {
        let (st, v) = srv.http("GET", &format!("/v1/tokens/{probe}"), Some(&beta), None);
        assert_eq!((st, crate::support::code(&v)), (404, "not_found"), "{v}");
        let (st, _) = srv.http(
            "POST",
            &format!("/v1/tokens/{probe}/revoke"),
            Some(&beta),
            None,
        );
        assert_eq!(st, 404);
    }
    let out = srv.cli_ok(&org, &["tokens", "revoke", &id[..9]]);
    assert!(out.starts_with(&format!("revoked {id} (ci)")), "{out}");
    srv.stop();
}

#[test]
fn warnings_about_expiry_and_caveats_that_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    let (_op, org) = acme(&srv);
    let soon = srv.cli_ok(
        &org,
        &[
            "tokens", "create", "deploy", "--app", "web", "--expiry", "2d",
        ],
    );
    let soon = soon.trim();
    // Every command warns when the token expires within 7 days.
    let reader = srv.cli_ok(&org, &["tokens", "create", "readonly", "--expiry", "2d"]);
    let (c, _, err) = srv.cli(&["tokens", "list"], &[("MACVAULT_TOKEN", reader.trim())]);
    assert_eq!(c, 0);
    assert!(err.contains("warning: the token expires in "), "{err}");
    // A later expiry changes nothing; another app leaves nothing.
    let (c, _, err) = srv.cli(&["tokens", "attenuate", soon, "--expiry", "365d"], &[]);
    assert_eq!(c, 0);
    assert!(err.contains("changes nothing"), "{err}");
    let (c, _, err) = srv.cli(&["tokens", "attenuate", soon, "--app", "api"], &[]);
    assert_eq!(c, 0);
    assert!(err.contains("can do nothing at all"), "{err}");
    // An expired token is not attenuated.
    let brief = srv.cli_ok(&org, &["tokens", "create", "readonly", "--expiry", "1s"]);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let (c, out, err) = srv.cli(&["tokens", "attenuate", brief.trim(), "--read-only"], &[]);
    assert_eq!((c, out.as_str()), (5, ""), "{err}");
    assert!(err.contains("EXPIRED"), "{err}");
    let (_, out, _) = srv.cli(&["tokens", "inspect", brief.trim()], &[]);
    assert!(out.contains("EXPIRED"), "{out}");
    srv.stop();
}

#[test]
fn names_refuse_invisible_characters_and_completions_exist() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    let (_op, org) = acme(&srv);
    for name in ["ci\u{202e}gpj.exe", "ci\u{200b}", "ci\u{7}"] {
        let body = json!({"kind": "readonly", "name": name});
        let (st, v) = srv.http("POST", "/v1/orgs/acme/tokens", Some(&org), Some(&body));
        assert_eq!(st, 400, "{name:?}: {v}");
    }
    srv.stop();
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(BIN)
            .args(["completions", shell])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("macvault") && text.contains("attenuate"),
            "{shell}"
        );
    }
}
