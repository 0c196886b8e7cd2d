//! Third parties end to end, through the real binary: register one, mint a deploy token
//! that requires it, read the conditions, attenuate offline with only the public key,
//! and see every such token refused without a discharge, naming where to get one.

use serde_json::Value;

use crate::support::{Server, acme, s};

const JWKS: &str = r#"{"keys":[{"kty":"RSA","kid":"k1","alg":"RS256","n":"sXch","e":"AQAB"}]}"#;

const KEYS_AT_GHA: &str = "/3p/gha/.well-known/macvault/3p/keys";

/// Where the key `kid` of the third parties at location path `at` is published.
fn key_path(at: &str, kid: &str) -> String {
    format!("{at}/.well-known/macvault/3p/keys/{kid}")
}

/// Registers third party `name` of the token's org at `location`; its JSON.
fn add(srv: &Server, dir: &std::path::Path, token: &str, name: &str, location: &str) -> Value {
    let jwks = dir.join("jwks.json");
    std::fs::write(&jwks, JWKS).unwrap();
    srv.cli_json(
        token,
        &[
            "third-parties",
            "add",
            name,
            "--location",
            location,
            "--issuer",
            "https://token.actions.githubusercontent.com",
            "--audience",
            "macvault",
            "--jwks",
            jwks.to_str().unwrap(),
            "--json",
        ],
    )
}

fn beta(srv: &Server, op: &str) -> String {
    let (st, v) = srv.http(
        "POST",
        "/v1/orgs",
        Some(op),
        Some(&serde_json::json!({"name": "beta"})),
    );
    assert_eq!(st, 201, "{v}");
    s(&v, "token").to_owned()
}

#[test]
fn a_token_that_requires_a_third_party_is_refused_without_its_discharge() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path());
    let (op, org) = acme(&srv);
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, JWKS).unwrap();
    let location = format!("{}/3p/gha", srv.url());
    let add = [
        "third-parties",
        "add",
        "gha",
        "--location",
        &location,
        "--issuer",
        "https://token.actions.githubusercontent.com",
        "--audience",
        "macvault",
        "--jwks",
        jwks.to_str().unwrap(),
    ];

    // A deploy token cannot register one; the org token can.
    let deploy = srv.cli_ok(&org, &["tokens", "create", "deploy", "--app", "web"]);
    let deploy = deploy.trim();
    let (code, _, err) = srv.cli(&add, &[("MACVAULT_TOKEN", deploy)]);
    assert_eq!(code, 1, "denied: {err}");
    let mut json_add = add.to_vec();
    json_add.push("--json");
    let tp = srv.cli_json(&org, &json_add);
    assert_eq!(s(&tp, "location"), location);
    let public_key = s(&tp, "public_key").to_owned();
    assert!(public_key.starts_with("mv3pk_"), "{tp}");
    assert!(tp.get("private_key").is_none() && !tp.to_string().contains("wrapped"));
    let (code, _, err) = srv.cli(&add, &[("MACVAULT_TOKEN", &org)]);
    assert_eq!(code, 5, "a second registration of the name: {err}");

    // The public key is published at the location by its id, for anyone.
    let kid = s(&tp, "key_id").to_owned();
    let (st, published) = srv.http("GET", &key_path("/3p/gha", &kid), None, None);
    assert_eq!(st, 200, "{published}");
    assert_eq!(s(&published, "public_key"), public_key);
    assert_eq!(s(&published, "location"), location);
    assert_eq!(published["current"], true);
    let (st, _) = srv.http("GET", &key_path("/3p/nobody", &kid), None, None);
    assert_eq!(st, 404);

    // Minted with --require-ci: the conditions travel in the clear.
    let required = srv.cli_ok(
        &org,
        &[
            "tokens",
            "create",
            "deploy",
            "--app",
            "web",
            "--name",
            "ci",
            "--require-ci",
            "gha",
            "--condition",
            "claim repository_id = 123456",
            "--condition",
            "claim ref = refs/heads/main",
            "--condition",
            "max-validity = 10m",
        ],
    );
    let required = required.trim();
    let shown = srv.cli_ok(&org, &["tokens", "inspect", required]);
    for want in [
        "needs a discharge",
        "claim repository_id = 123456",
        "claim ref = refs/heads/main",
        "max-validity = 10m",
        location.as_str(),
    ] {
        assert!(shown.contains(want), "{want} in:\n{shown}");
    }
    let (code, _, err) = srv.cli(
        &[
            "tokens",
            "create",
            "deploy",
            "--app",
            "web",
            "--condition",
            "claim a = b",
        ],
        &[("MACVAULT_TOKEN", &org)],
    );
    assert_eq!(code, 2, "a condition without --require-ci: {err}");
    let (code, _, err) = srv.cli(
        &[
            "tokens",
            "create",
            "deploy",
            "--app",
            "web",
            "--require-ci",
            "gha",
            "--condition",
            "claim repository ~ x",
        ],
        &[("MACVAULT_TOKEN", &org)],
    );
    assert_eq!(code, 2, "an unknown condition: {err}");
    assert!(err.contains("--condition"), "{err}");

    // Refused alone, naming the location, by the API and by verify.
    let (st, v) = srv.http(
        "GET",
        "/v1/orgs/acme/apps/web/secrets",
        Some(required),
        None,
    );
    assert_eq!(st, 401, "{v}");
    assert_eq!(v["error"]["code"], "missing_discharge", "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains(&location), "{message}");
    let (code, out, err) = srv.cli(&["tokens", "verify", required], &[]);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains(&location), "{err}");

    // The ledger keeps the requirement; show lists the token under the third party.
    let id = {
        let list = srv.cli_json(&org, &["tokens", "list", "--json"]);
        let t = list["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "ci")
            .cloned()
            .unwrap();
        s(&t, "id").to_owned()
    };
    let detail = srv.cli_json(&org, &["tokens", "show", &id, "--json"]);
    assert_eq!(detail["third_parties"][0]["third_party"], "gha", "{detail}");
    assert_eq!(
        detail["third_parties"][0]["conditions"][0],
        "claim repository_id = 123456"
    );
    let shown = srv.cli_json(&org, &["third-parties", "show", "gha", "--json"]);
    assert_eq!(
        shown["dependents"][0]["token_id"],
        Value::String(id.clone())
    );
    assert_eq!(shown["dependents"][0]["status"], "active");
    let text = srv.cli_ok(&org, &["third-parties", "show", "gha"]);
    assert!(
        text.contains("1 token(s) need it") && text.contains(&public_key),
        "{text}"
    );

    // Offline: only the public key, no server (MACVAULT_URL points nowhere).
    let key_file = dir.path().join("gha.key");
    std::fs::write(&key_file, format!("{public_key}\n")).unwrap();
    let offline = [
        "tokens",
        "attenuate",
        deploy,
        "--third-party",
        &location,
        "--third-party-key",
        key_file.to_str().unwrap(),
        "--condition",
        "claim environment = production",
    ];
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_macvault"));
    cmd.args(offline)
        .env("MACVAULT_URL", "http://127.0.0.1:9")
        .env_remove("MACVAULT_TOKEN");
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let narrowed = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let shown = srv.cli_ok(&org, &["tokens", "inspect", &narrowed]);
    assert!(shown.contains("claim environment = production"), "{shown}");
    let (st, v) = srv.http(
        "GET",
        "/v1/orgs/acme/apps/web/secrets",
        Some(&narrowed),
        None,
    );
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (401, Some("missing_discharge")),
        "{v}"
    );
    // The plain deploy token still works (attenuation made a copy).
    let (st, _) = srv.http("GET", "/v1/orgs/acme/apps/web/secrets", Some(deploy), None);
    assert_eq!(st, 200);
    // The key fetched from the location, and the registration read by name.
    let fetched = srv.cli_ok(
        &org,
        &[
            "tokens",
            "attenuate",
            deploy,
            "--third-party",
            &location,
            "--condition",
            "claim ref = refs/tags/*",
        ],
    );
    assert!(
        srv.cli_ok(&org, &["tokens", "inspect", fetched.trim()])
            .contains("refs/tags/*")
    );
    let by_name = srv.cli_ok(
        &org,
        &["tokens", "attenuate", deploy, "--third-party", "gha"],
    );
    let (st, _) = srv.http(
        "GET",
        "/v1/orgs/acme/apps/web/secrets",
        Some(by_name.trim()),
        None,
    );
    assert_eq!(st, 401);
    // A key of another third party is not taken for this location.
    let (code, _, err) = srv.cli(
        &[
            "tokens",
            "attenuate",
            deploy,
            "--third-party",
            "gha",
            "--third-party-key",
            key_file.to_str().unwrap(),
        ],
        &[("MACVAULT_TOKEN", &org)],
    );
    assert_eq!(code, 2, "a bare key needs the location URL: {err}");

    // Another org's token can neither read nor require this org's third party.
    let beta = beta(&srv, &op);
    let (code, _, err) = srv.cli(
        &["third-parties", "show", "gha", "--org", "acme"],
        &[("MACVAULT_TOKEN", &beta)],
    );
    assert_eq!(code, 1, "{err}");
    let (code, _, err) = srv.cli(
        &[
            "tokens",
            "create",
            "deploy",
            "--app",
            "web",
            "--require-ci",
            "gha",
        ],
        &[("MACVAULT_TOKEN", &beta)],
    );
    assert_eq!(code, 5, "not found in beta: {err}");
    assert!(err.contains("third party not found"), "{err}");

    // A key rotation keeps the previous key; removal waits for the dependent token.
    let rotated = srv.cli_json(&org, &["third-parties", "rotate-key", "gha", "--json"]);
    assert_eq!(rotated["keys"][0]["key_id"], tp["key_id"]);
    assert_eq!(rotated["keys"][0]["current"], false);
    assert_ne!(rotated["key_id"], tp["key_id"]);
    let list = srv.cli_ok(&org, &["third-parties", "list"]);
    assert!(
        list.contains("gha") && list.contains(s(&rotated, "key_id")),
        "{list}"
    );
    let (code, _, err) = srv.cli(
        &["third-parties", "remove", "gha"],
        &[("MACVAULT_TOKEN", &org)],
    );
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("\"ci\"") && err.contains("--force"), "{err}");
    srv.cli_ok(&org, &["tokens", "revoke", &id]);
    srv.cli_ok(&org, &["third-parties", "remove", "gha"]);
    let (st, _) = srv.http("GET", KEYS_AT_GHA, None, None);
    assert_eq!(st, 404);

    // Audited, without any key material.
    let audit = srv.cli_ok(&org, &["audit", "--json"]);
    let events: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for want in [
        "third_party.add",
        "third_party.rotate_key",
        "third_party.remove",
    ] {
        assert!(actions.contains(&want), "{want} in {actions:?}");
    }
    srv.stop();
}

/// Two orgs' third parties at one location: each key is published by its id and in the
/// set; a location URL alone is then ambiguous and the CLI asks for the key id.
#[test]
fn third_parties_share_a_location_and_their_keys_are_published_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path());
    let (op, org) = acme(&srv);
    let beta = beta(&srv, &op);
    let location = format!("{}/3p/gha", srv.url());
    let ours = add(&srv, dir.path(), &org, "gha", &location);
    let theirs = add(&srv, dir.path(), &beta, "gha", &location);
    let (st, set) = srv.http("GET", KEYS_AT_GHA, None, None);
    assert_eq!(st, 200, "{set}");
    let mut ids: Vec<&str> = set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let mut want = [s(&ours, "key_id"), s(&theirs, "key_id")];
    want.sort_unstable();
    assert_eq!(ids, want);
    assert!(
        !set.to_string().contains("acme") && !set.to_string().contains("beta"),
        "the set names no org: {set}"
    );
    for (tp, st_want) in [(&ours, 200), (&theirs, 200)] {
        let (st, one) = srv.http("GET", &key_path("/3p/gha", s(tp, "key_id")), None, None);
        assert_eq!(st, st_want, "{one}");
        assert_eq!(one["public_key"], tp["public_key"]);
    }
    let (st, v) = srv.http("GET", &key_path("/3p/gha", "not-a-key-id"), None, None);
    assert_eq!(st, 400, "{v}");
    let (st, _) = srv.http("POST", KEYS_AT_GHA, None, None);
    assert_eq!(st, 405);

    // Attenuating with the location alone must choose, and names the candidates.
    let deploy = srv.cli_ok(&org, &["tokens", "create", "deploy", "--app", "web"]);
    let deploy = deploy.trim();
    let base = ["tokens", "attenuate", deploy, "--third-party", &location];
    let (code, _, err) = srv.cli(&base, &[("MACVAULT_TOKEN", &org)]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--third-party-key-id") && err.contains(s(&ours, "key_id")),
        "{err}"
    );
    let mut chosen = base.to_vec();
    chosen.extend(["--third-party-key-id", s(&ours, "key_id")]);
    let narrowed = srv.cli_ok(&org, &chosen);
    let seen = srv.cli_json(&org, &["tokens", "inspect", narrowed.trim(), "--json"]);
    assert!(
        seen.to_string().contains(s(&ours, "key_id")),
        "the ticket names our key: {seen}"
    );
    // The set saved to a file does the same offline.
    let (_, set_text) = srv.http("GET", KEYS_AT_GHA, None, None);
    let set_file = dir.path().join("keys.json");
    std::fs::write(&set_file, set_text.to_string()).unwrap();
    let mut offline = chosen.clone();
    offline.extend(["--third-party-key", set_file.to_str().unwrap()]);
    srv.cli_ok(&org, &offline);
    srv.stop();
}

/// Rotation keeps every older key until `retire-key`, which is refused while live
/// tokens hold tickets for the key and, with --force, says how many stop working.
#[test]
fn retire_key_refuses_keys_in_use_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path());
    let (_op, org) = acme(&srv);
    let location = format!("{}/3p/gha", srv.url());
    let tp = add(&srv, dir.path(), &org, "gha", &location);
    let first = s(&tp, "key_id").to_owned();
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
            "--require-ci",
            "gha",
        ],
    );
    srv.cli_ok(&org, &["third-parties", "rotate-key", "gha"]);
    let rotated = srv.cli_json(&org, &["third-parties", "rotate-key", "gha", "--json"]);
    assert_eq!(rotated["keys"].as_array().unwrap().len(), 3, "{rotated}");
    let current = s(&rotated, "key_id").to_owned();
    let (_, set) = srv.http("GET", KEYS_AT_GHA, None, None);
    assert_eq!(set["keys"].as_array().unwrap().len(), 3, "{set}");
    // show counts the live tokens per key.
    let shown = srv.cli_json(&org, &["third-parties", "show", "gha", "--json"]);
    let live: Vec<u64> = shown["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["live_tokens"].as_u64().unwrap())
        .collect();
    assert_eq!(live, [1, 0, 0]);
    assert_eq!(
        shown["dependents"][0]["key_id"],
        Value::String(first.clone())
    );
    let text = srv.cli_ok(&org, &["third-parties", "show", "gha"]);
    assert!(
        text.contains("LIVE TOKENS") && text.contains("new tickets"),
        "{text}"
    );

    let retire = |kid: &str, force: bool| {
        let mut args = vec!["third-parties", "retire-key", "gha", kid];
        if force {
            args.push("--force");
        }
        srv.cli(&args, &[("MACVAULT_TOKEN", &org)])
    };
    let (code, _, err) = retire(&current, false);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("rotate-key first"), "{err}");
    let (code, _, err) = retire(&first, false);
    assert_eq!(code, 5, "{err}");
    assert!(
        err.contains("1 live token(s)") && err.contains("\"ci\"") && err.contains("--force"),
        "{err}"
    );
    let (code, _, err) = retire("0011223344556677", false);
    assert_eq!(code, 5, "an unknown key: {err}");
    assert!(err.contains("no key with that id"), "{err}");
    let (code, out, err) = retire(&first, true);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("retired key {first}")) && out.contains("1 live token(s)"),
        "{out}"
    );
    let (st, _) = srv.http("GET", &key_path("/3p/gha", &first), None, None);
    assert_eq!(st, 404);
    let middle = s(&rotated["keys"][1], "key_id").to_owned();
    let (code, out, err) = retire(&middle, false);
    assert_eq!(code, 0, "no token needs it: {err}");
    assert!(!out.contains("stopped"), "{out}");
    let audit = srv.cli_ok(&org, &["audit", "--json"]);
    assert_eq!(
        audit.matches("third_party.retire_key").count(),
        2,
        "{audit}"
    );
    srv.stop();
}
