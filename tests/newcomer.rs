//! What a newcomer trips on, mended: one value from stdin at a time (prompted for on a
//! terminal), one value read alone (`secrets reveal NAME`), `--app` taken from a token
//! limited to one app, token files named with what is wrong, nothing created by
//! accident, revocations previewed, distinct rotation names, and the operator token as
//! the README describes it.

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

/// `tokens revoke` shows what goes with a token first; more than the token itself needs
/// a yes (refused without a terminal), and `--dry-run` only shows.
#[test]
fn revoke_previews_what_it_takes_and_wants_a_yes() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    let (_op, org) = acme(&srv);
    let id_file = tmp.path().join("deploy.id");
    let deploy = srv.cli_ok(
        &org,
        &[
            "tokens",
            "create",
            "deploy",
            "--app",
            "web",
            "--name",
            "ci",
            "--id-file",
            id_file.to_str().unwrap(),
        ],
    );
    let deploy = deploy.trim();
    let id = std::fs::read_to_string(&id_file).unwrap().trim().to_owned();
    assert_eq!(id.len(), 32, "the id file holds the id: {id}");
    srv.cli_ok(
        deploy,
        &[
            "tokens", "create", "deploy", "--app", "web", "--name", "child",
        ],
    );

    let (c, out, err) = srv.cli(
        &["tokens", "revoke", &id, "--dry-run"],
        &[("MACVAULT_TOKEN", &org)],
    );
    assert_eq!(c, 0, "{err}");
    assert!(
        out.contains("takes 1 token(s)") && out.contains("deploy \"child\""),
        "{out}"
    );
    let (c, _, err) = srv.cli(&["tokens", "revoke", &id], &[("MACVAULT_TOKEN", &org)]);
    assert_eq!(c, 5, "no terminal, no --yes: {err}");
    assert!(err.contains("\"child\"") && err.contains("--yes"), "{err}");
    let (st, _) = srv.http("GET", "/v1/orgs/acme/apps/web/secrets", Some(deploy), None);
    assert_eq!(st, 200, "nothing was revoked");
    let (c, out, err) = srv.cli(
        &["tokens", "revoke", &id, "--yes"],
        &[("MACVAULT_TOKEN", &org)],
    );
    assert_eq!(c, 0, "{err}");
    assert!(out.contains("revoked"), "{out}");
    // A token that minted nothing goes without asking.
    let lone = srv.cli_ok(&org, &["tokens", "create", "readonly", "--name", "lone"]);
    let (c, _, err) = srv.cli(
        &["tokens", "revoke", "--self"],
        &[("MACVAULT_TOKEN", lone.trim())],
    );
    assert_eq!(c, 0, "{err}");
    srv.stop();
}

/// Two rotations on one day get distinct names; `--id-file` gives scripts the new id.
#[test]
fn rotations_on_one_day_get_distinct_names() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    let (_op, org) = acme(&srv);
    let first_id = tmp.path().join("first.id");
    srv.cli_ok(
        &org,
        &[
            "tokens",
            "create",
            "deploy",
            "--app",
            "web",
            "--name",
            "ci",
            "--id-file",
            first_id.to_str().unwrap(),
        ],
    );
    let mut id = std::fs::read_to_string(&first_id)
        .unwrap()
        .trim()
        .to_owned();
    let mut names = Vec::new();
    for _ in 0..2 {
        let next = tmp.path().join("next.id");
        let (c, _, err) = srv.cli(
            &["tokens", "rotate", &id, "--id-file", next.to_str().unwrap()],
            &[("MACVAULT_TOKEN", &org)],
        );
        assert_eq!(c, 0, "{err}");
        id = std::fs::read_to_string(&next).unwrap().trim().to_owned();
        let shown = srv.cli_json(&org, &["tokens", "show", &id, "--json"]);
        names.push(s(&shown["record"], "name").to_owned());
    }
    assert_ne!(names[0], names[1], "{names:?}");
    assert!(names[0].starts_with("ci-"), "{names:?}");
    // The second of one day gets -2 (across midnight it names the next day instead; the
    // rule itself is tested on a fixed clock in src/authority/rotate.rs).
    let day = |n: &str| n.get(..11).map(str::to_owned);
    if day(&names[0]) == day(&names[1]) {
        assert!(names[1].ends_with("-2"), "{names:?}");
    }
    srv.stop();
}

/// `NAME=-` on a terminal prompts for the value without echoing it.
#[test]
fn a_value_from_a_terminal_is_prompted_for_without_echo() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    let (_op, org) = acme(&srv);
    let (code, shown) = on_a_terminal(
        &["secrets", "set", "--app", "web", "API_KEY=-"],
        &[("MACVAULT_URL", srv.url()), ("MACVAULT_TOKEN", &org)],
        Some(("value of API_KEY: ", "typed-secret")),
    );
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains("value of API_KEY: "), "{shown}");
    assert!(
        !shown.contains("typed-secret"),
        "the value was echoed: {shown}"
    );
    let runtime = srv.cli_ok(&org, &["tokens", "create", "runtime", "--app", "web"]);
    let value = srv.cli_ok(runtime.trim(), &["secrets", "reveal", "API_KEY"]);
    assert_eq!(value.trim(), "typed-secret");
    srv.stop();
}

/// What the README says of the operator token is what the binary does: written to a
/// file and shown nowhere else; it works in org `system` only (creating orgs, issuing
/// their org tokens), not inside an org.
#[test]
fn the_operator_token_does_what_the_readme_says() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    let op = srv.operator_token().unwrap().to_owned();
    let (_op, org) = acme(&srv);
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(readme.contains("shown nowhere else") && !readme.contains("printed once"));
    let (c, _, err) = srv.cli(&["orgs", "show", "acme"], &[("MACVAULT_TOKEN", &op)]);
    assert_eq!(c, 1, "denied inside the org: {err}");
    srv.cli_ok(&op, &["orgs", "token", "acme", "--expiry", "1d"]);
    srv.cli_ok(&org, &["orgs", "show"]);
    let logs = srv.stop();
    assert!(
        logs.stdout.contains("shown nowhere else"),
        "{}",
        logs.stdout
    );
    assert!(!logs.stdout.contains(&op) && !logs.stderr.contains(&op));
}

/// Runs the CLI with stdout a pipe whose reader is already closed: (exit code, stderr).
fn with_closed_stdout(srv: &Server, token: &str, args: &[&str]) -> (i32, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_macvault"))
        .args(args)
        .env("MACVAULT_URL", srv.url())
        .env("MACVAULT_TOKEN", token)
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `| head` ends a listing quietly; a command printing the only copy of a token or a
/// value fails loudly instead.
#[test]
fn a_closed_stdout_ends_listings_quietly_and_new_tokens_loudly() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    let (op, org) = acme(&srv);
    // Something to list in every listing.
    srv.cli_ok(&org, &["secrets", "set", "--app", "web", "A=1", "PATH=/x"]);
    srv.cli_ok(&org, &["secrets", "set", "--app", "web", "A=2"]);
    let jwks = tmp.path().join("jwks.json");
    let key = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/oidc/rsa.jwk.json"),
    )
    .unwrap();
    std::fs::write(&jwks, format!(r#"{{"keys": [{key}]}}"#)).unwrap();
    srv.cli_ok(
        &org,
        &[
            "third-parties",
            "add",
            "gha",
            "--kind",
            "ci-oidc",
            "--location",
            &format!("{}/3p", srv.url()),
            "--issuer",
            "https://token.actions.githubusercontent.com",
            "--audience",
            "macvault",
            "--jwks",
            jwks.to_str().unwrap(),
        ],
    );
    let ledger = srv.cli_json(&org, &["tokens", "list", "--json"]);
    let id = s(&ledger["tokens"][0], "id").to_owned();
    for listing in [
        &["tokens", "list"][..],
        &["tokens", "show", &id],
        &["audit"],
        &["audit", "--json"],
        &["apps", "list"],
        &["apps", "show", "web"],
        &["orgs", "show"],
        &["secrets", "list", "--app", "web"],
        &["secrets", "get", "--app", "web", "A"],
        &["secrets", "history", "--app", "web", "A"],
        &["secrets", "withheld"],
        &["keys", "list"],
        &["keys", "show", "1"],
        &["third-parties", "list"],
        &["third-parties", "show", "gha"],
        &["completions", "zsh"],
        &["--help"],
    ] {
        let (code, err) = with_closed_stdout(&srv, &org, listing);
        assert_eq!((code, err.as_str()), (0, ""), "{listing:?}");
    }
    for empty in [&["tokens", "show", ""][..], &["tokens", "revoke", " "]] {
        let (c, _, err) = srv.cli(empty, &[("MACVAULT_TOKEN", &org)]);
        assert_eq!(c, 2, "{empty:?}: {err}");
        assert!(err.contains("give a token id"), "{err}");
    }
    for (token, precious) in [
        (
            &org,
            &["tokens", "create", "readonly", "--name", "lost"][..],
        ),
        (&op, &["orgs", "token", "acme"]),
    ] {
        let (code, err) = with_closed_stdout(&srv, token, precious);
        assert_ne!(code, 0, "{precious:?}");
        assert!(err.contains("only copy"), "{precious:?}: {err}");
    }
    // Values: a closed stdout delivered nothing, and says so.
    let runtime = srv.cli_ok(&org, &["tokens", "create", "runtime", "--app", "web"]);
    let runtime = runtime.trim();
    for (token, values) in [
        (runtime, &["secrets", "reveal", "A"][..]),
        (runtime, &["secrets", "reveal", "A", "--json"]),
        (&org, &["secrets", "export", "--app", "web"]),
        (
            &org,
            &["secrets", "export", "--app", "web", "--format", "json"],
        ),
        (
            &org,
            &["secrets", "export", "--app", "web", "--format", "shell"],
        ),
    ] {
        let (code, err) = with_closed_stdout(&srv, token, values);
        assert_ne!(code, 0, "{values:?}");
        assert!(err.contains("nothing was delivered"), "{values:?}: {err}");
    }
    srv.stop();
}

/// A value over the limit states the documented limit and is a refusal (exit 5), from
/// stdin or the command line; relative times round (a fresh 60-day token: 60d).
#[test]
fn limits_and_times_read_as_documented() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    let (_op, org) = acme(&srv);
    let env = [("MACVAULT_TOKEN", org.as_str())];
    // Exactly what the CLI reads before it stops (64 KiB and a newline's room, plus
    // one): all of it is read, so the writer never meets a closed pipe.
    let big = vec![b'x'; 64 * 1024 + 3];
    let (c, _, err) = srv.cli_stdin(&["secrets", "set", "--app", "web", "BIG=-"], &env, &big);
    assert_eq!(c, 5, "{err}");
    assert!(err.contains("over 64 KiB") && err.contains("BIG"), "{err}");
    let inline = format!("BIG={}", "y".repeat(70 * 1024));
    let (c, _, err) = srv.cli(&["secrets", "set", "--app", "web", &inline], &env);
    assert_eq!(c, 5, "{err}");
    assert!(err.contains("over 64 KiB"), "{err}");
    srv.cli_ok(
        &org,
        &[
            "tokens", "create", "readonly", "--name", "fresh", "--expiry", "60d",
        ],
    );
    let list = srv.cli_ok(&org, &["tokens", "list", "--name", "fresh"]);
    assert!(list.contains("in 60d"), "a fresh 60-day token: {list}");
    srv.stop();
}

/// Apps exist explicitly: a typo is refused with the names the org has; an org token
/// creates, lists, shows and deletes them; a deploy token can do neither.
#[test]
fn a_typo_in_an_app_name_is_refused_with_the_known_names() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    let (_op, org) = acme(&srv);
    let env = [("MACVAULT_TOKEN", org.as_str())];
    for typo in [
        &["secrets", "set", "--app", "wbe", "X=1"][..],
        &["tokens", "create", "deploy", "--app", "wbe"],
        &["secrets", "list", "--app", "wbe"],
    ] {
        let (c, _, err) = srv.cli(typo, &env);
        assert_eq!(c, 5, "{typo:?}: {err}");
        assert!(
            err.contains("no app \"wbe\"")
                && err.contains("api, web")
                && err.contains("apps create wbe"),
            "{typo:?}: {err}"
        );
    }
    let runtime = srv.cli_ok(&org, &["tokens", "create", "runtime", "--app", "web"]);
    let (c, _, err) = srv.cli(
        &["run", "--app", "wbe", "--", "true"],
        &[("MACVAULT_TOKEN", runtime.trim())],
    );
    assert_ne!(c, 0, "run against a missing app fails: {err}");
    let (st, v) = srv.http("GET", "/v1/orgs/acme/apps", Some(&org), None);
    assert_eq!(st, 200, "{v}");
    // --create-app on a first write is fine, for an org token.
    srv.cli_ok(
        &org,
        &["secrets", "set", "--app", "worker", "--create-app", "X=1"],
    );
    let list = srv.cli_ok(&org, &["apps", "list"]);
    assert!(list.contains("worker") && list.contains("web"), "{list}");
    // A deploy token can neither create nor delete apps, nor create one by writing.
    let deploy = srv.cli_ok(&org, &["tokens", "create", "deploy", "--app", "web"]);
    let denv = [("MACVAULT_TOKEN", deploy.trim())];
    for denied in [
        &["apps", "create", "other"][..],
        &["apps", "delete", "api"],
        &["secrets", "set", "--app", "web", "--create-app", "Y=1"],
    ] {
        let (c, _, err) = srv.cli(denied, &denv);
        assert_eq!(c, 1, "{denied:?}: {err}");
    }
    srv.stop();
}

#[test]
fn deleting_an_app_in_use_needs_force_and_yes_and_lets_nothing_back_in() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    let (_op, org) = acme(&srv);
    let deploy = srv.cli_ok(
        &org,
        &["tokens", "create", "deploy", "--app", "web", "--name", "ci"],
    );
    let deploy = deploy.trim();
    srv.cli_ok(
        deploy,
        &["secrets", "set", "--app", "web", "DB_URL=postgres://db/web"],
    );
    let env = [("MACVAULT_TOKEN", org.as_str())];
    let shown = srv.cli_ok(&org, &["apps", "show", "web"]);
    assert!(
        shown.contains("1 secret(s), 1 live token(s)") && shown.contains("\"ci\""),
        "{shown}"
    );
    let (c, _, err) = srv.cli(&["apps", "delete", "web"], &env);
    assert_eq!(c, 5, "{err}");
    assert!(err.contains("--force") && err.contains("\"ci\""), "{err}");
    // --force alone previews and changes nothing.
    let (c, out, err) = srv.cli(&["apps", "delete", "web", "--force"], &env);
    assert_eq!(c, 5, "{err}");
    assert!(
        out.contains("would revoke 1 token(s)") && out.contains("secret DB_URL"),
        "{out}"
    );
    let (st, _) = srv.http("GET", "/v1/orgs/acme/apps/web/secrets", Some(deploy), None);
    assert_eq!(st, 200, "nothing changed");
    let (c, out, err) = srv.cli(&["apps", "delete", "web", "--force", "--yes"], &env);
    assert_eq!(c, 0, "{err}");
    assert!(out.contains("did revoke 1 token(s)"), "{out}");
    // Re-created, the name lets neither the old token nor the old value back in.
    srv.cli_ok(&org, &["apps", "create", "web"]);
    let (st, v) = srv.http("GET", "/v1/orgs/acme/apps/web/secrets", Some(deploy), None);
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (401, Some("revoked")),
        "{v}"
    );
    let runtime = srv.cli_ok(&org, &["tokens", "create", "runtime", "--app", "web"]);
    let (c, _, err) = srv.cli(
        &["secrets", "reveal", "DB_URL"],
        &[("MACVAULT_TOKEN", runtime.trim())],
    );
    assert_ne!(c, 0, "the destroyed value is gone: {err}");
    let audit = srv.cli_ok(&org, &["audit", "--action", "app.delete"]);
    assert!(audit.contains("forced"), "{audit}");
    srv.stop();
}

/// A set that changes nothing writes nothing, for a token that may reveal the value;
/// a token that may not still makes a version, so no answer confirms a guess.
#[test]
fn a_write_that_changes_nothing_writes_nothing_for_a_revealer_only() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    let (_op, org) = acme(&srv);
    let set = ["secrets", "set", "--app", "web", "DB_URL=postgres://db/web"];
    srv.cli_ok(&org, &set);
    let out = srv.cli_ok(&org, &set);
    assert!(out.contains("DB_URL unchanged (still v1)"), "{out}");
    let history = srv.cli_json(
        &org,
        &["secrets", "history", "--app", "web", "DB_URL", "--json"],
    );
    assert_eq!(
        history["versions"].as_array().map(Vec::len),
        Some(1),
        "{history}"
    );
    let audit = srv.cli_ok(&org, &["audit", "--action", "secret.set"]);
    assert_eq!(
        audit.matches("DB_URL").count(),
        1,
        "one set audited: {audit}"
    );
    // A new description is a change.
    let out = srv.cli_ok(&org, &[&set[..], &["--description", "primary"]].concat());
    assert!(out.contains("set DB_URL (v2)"), "{out}");
    // A deploy token may not reveal: its same-value write makes a version regardless.
    let deploy = srv.cli_ok(&org, &["tokens", "create", "deploy", "--app", "web"]);
    let out = srv.cli_ok(deploy.trim(), &set);
    assert!(
        out.contains("set DB_URL (v3)") && !out.contains("unchanged"),
        "{out}"
    );
    srv.stop();
}

/// `--json` covers usage errors, and is refused where it means nothing (`run`); names
/// are shown as text; a destroyed secret shows no digest; history shows an unset.
#[test]
fn json_errors_names_as_text_and_destroyed_secrets_read_as_such() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    let (_op, org) = acme(&srv);
    let env = [("MACVAULT_TOKEN", org.as_str())];
    let (c, out, err) = srv.cli(&["tokens", "create", "--json"], &env);
    assert_eq!(c, 2, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(err.trim()).expect("a JSON usage error");
    assert_eq!(
        (v["error"]["code"].as_str(), v["exit"].as_u64()),
        (Some("usage"), Some(2)),
        "{v}"
    );
    let (c, _, err) = srv.cli(&["run", "--json", "--app", "web", "--", "true"], &env);
    assert_eq!(c, 2, "{err}");
    assert!(err.contains("--json means nothing for run"), "{err}");
    let (c, _, err) = srv.cli(&["secrets", "set", "--app", "web", "CL\u{c9}=1"], &env);
    assert_eq!(c, 5, "{err}");
    assert!(err.contains("CL\u{c9}") && !err.contains("\\xc3"), "{err}");
    srv.cli_ok(&org, &["secrets", "set", "--app", "web", "GONE=x"]);
    srv.cli_ok(
        &org,
        &["secrets", "destroy", "--app", "web", "GONE", "--all"],
    );
    let shown = srv.cli_json(&org, &["secrets", "get", "--app", "web", "GONE", "--json"]);
    assert!(shown["digest"].is_null(), "no digest of zeros: {shown}");
    let history = srv.cli_ok(&org, &["secrets", "history", "--app", "web", "GONE"]);
    assert!(
        history.contains("destroyed") && history.contains("unset"),
        "{history}"
    );
    srv.stop();
}

/// Tables fit the terminal they are printed on (asked from the terminal), cutting a
/// description, never a name; `COLUMNS` overrides.
#[test]
fn tables_fit_the_terminal_and_never_cut_a_name() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    let (_op, org) = acme(&srv);
    let name = "DATABASE_PRIMARY_URL";
    srv.cli_ok(
        &org,
        &[
            "secrets",
            "set",
            "--app",
            "web",
            &format!("{name}=v"),
            "--description",
            &"a long description ".repeat(8),
        ],
    );
    // A pseudo-terminal 80 columns wide: the child sets it on its own stdout first.
    let script = r#"
import fcntl, os, pty, struct, sys, termios
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(1, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    os.execv(sys.argv[1], sys.argv[1:])
seen = b""
while True:
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    seen += chunk
os.waitpid(pid, 0)
sys.stdout.write(seen.decode("utf-8", "replace"))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, env!("CARGO_BIN_EXE_macvault")])
        .args(["secrets", "list", "--app", "web"])
        .env("MACVAULT_URL", srv.url())
        .env("MACVAULT_TOKEN", &org)
        .env_remove("COLUMNS")
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(shown.contains(name), "{shown}");
    assert!(shown.contains('…'), "the description is cut: {shown}");
    for line in shown.lines() {
        assert!(
            line.chars().count() <= 80,
            "wider than the terminal: {line:?}"
        );
    }
    // Not a terminal: 100 columns, unless COLUMNS says otherwise.
    let (c, wide, _) = srv.cli(
        &["secrets", "list", "--app", "web"],
        &[("MACVAULT_TOKEN", org.as_str()), ("COLUMNS", "140")],
    );
    assert_eq!(c, 0);
    assert!(wide.lines().any(|l| l.chars().count() > 100), "{wide}");
    srv.stop();
}

/// Runs the binary with `args` on a pseudo-terminal (stdout and stderr both on it),
/// typing `answer` once `prompt` shows and echo is off: its exit code and everything it
/// showed.
fn on_a_terminal(
    args: &[&str],
    env: &[(&str, &str)],
    answer: Option<(&str, &str)>,
) -> (i32, String) {
    let script = r#"
import os, pty, sys, termios, time
prompt, answer = os.environ.get("PTY_PROMPT"), os.environ.get("PTY_ANSWER")
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
seen = b""
while prompt and prompt.encode() not in seen:
    chunk = os.read(fd, 1024)
    if not chunk:
        break
    seen += chunk
if prompt:
    # The prompt is written before echo is turned off: type only once it is.
    while termios.tcgetattr(fd)[3] & termios.ECHO:
        time.sleep(0.01)
    os.write(fd, answer.encode() + b"\n")
while True:
    try:
        chunk = os.read(fd, 1024)
    except OSError:
        break
    if not chunk:
        break
    seen += chunk
_, status = os.waitpid(pid, 0)
sys.stdout.write(seen.decode("utf-8", "replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    let mut cmd = std::process::Command::new("python3");
    cmd.args(["-c", script, env!("CARGO_BIN_EXE_macvault")])
        .args(args)
        .envs(env.iter().copied());
    if let Some((prompt, typed)) = answer {
        cmd.env("PTY_PROMPT", prompt).env("PTY_ANSWER", typed);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `store copy`, `secrets import` and `secrets rotate-key --wait` show progress on a
/// terminal, and nothing of it when stderr is not one.
#[test]
fn long_operations_show_progress_on_a_terminal_only() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let srv = Server::start(&data);
    let (_op, org) = acme(&srv);
    let env_file = tmp.path().join("app.env");
    let lines: String = (0..50).map(|i| format!("NAME_{i}=value-{i}\n")).collect();
    std::fs::write(&env_file, lines).unwrap();
    let import = [
        "secrets",
        "import",
        "--app",
        "web",
        env_file.to_str().unwrap(),
    ];
    let (c, out, err) = srv.cli(&import, &[("MACVAULT_TOKEN", &org)]);
    assert_eq!(c, 0, "{err}");
    assert!(
        !err.contains("importing"),
        "no progress off a terminal: {err}"
    );
    assert!(out.contains("NAME_49"), "{out}");
    let rotate = ["secrets", "rotate-key", "--wait"];
    let (c, out, err) = srv.cli(&rotate, &[("MACVAULT_TOKEN", &org)]);
    assert_eq!(c, 0, "{err}");
    assert!(!err.contains("re-wrapping data keys"), "{err}");
    assert!(out.contains("the older keys are deleted"), "{out}");
    srv.stop();

    let copy = |to: &str| {
        [
            "store",
            "copy",
            "--from",
            data.to_str().unwrap(),
            "--to",
            tmp.path().join(to).to_str().unwrap(),
        ]
        .map(str::to_owned)
    };
    let args = copy("on-terminal");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (c, shown) = on_a_terminal(&args, &[], None);
    assert_eq!(c, 0, "{shown}");
    let on_terminal = tmp.path().join("on-terminal");
    assert!(
        shown.contains(&format!("wrote {}", on_terminal.display())) && shown.contains(" records"),
        "a bar of the records written: {shown}"
    );
    let args = copy("piped");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_macvault"))
        .args(&args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        !err.contains("records") && !err.contains("reading") && !err.contains('\r'),
        "no progress off a terminal: {err}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("copied "));
}

/// `--json` means JSON on every client command: `secrets export --json` exports JSON,
/// and asking for another format beside it is a usage error.
#[test]
fn export_json_is_json() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    let (_op, org) = acme(&srv);
    srv.cli_ok(&org, &["secrets", "set", "--app", "web", "A=1 2"]);
    let exported = srv.cli_json(&org, &["secrets", "export", "--app", "web", "--json"]);
    assert_eq!(exported, json!({"A": "1 2"}));
    let (c, out, err) = srv.cli(
        &[
            "secrets", "export", "--app", "web", "--json", "--format", "shell",
        ],
        &[("MACVAULT_TOKEN", &org)],
    );
    assert_eq!((c, out.as_str()), (2, ""), "{err}");
    let err: serde_json::Value = serde_json::from_str(err.trim()).unwrap();
    assert_eq!(err["error"]["code"], "usage", "{err}");
}
