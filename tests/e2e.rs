//! The whole lifecycle through the real binary: the server on an ephemeral port, the
//! CLI where a command exists and plain HTTP otherwise; then a restart on the same data
//! directory, file permissions, and a sweep for leaked secrets.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::support::{
    Checks, Server, USER_AGENT, code, contains_bytes, eventually, now, parse_time, s,
};

/// Every token text seen, labelled, so none may leak.
#[derive(Default)]
struct Seen(Vec<(String, String)>);

impl Seen {
    fn add(&mut self, label: &str, token: &str) -> String {
        assert!(
            token.starts_with("mvt_"),
            "{label} is not a token: {token:?}"
        );
        self.0.push((label.to_owned(), token.to_owned()));
        token.to_owned()
    }
}

/// A minted preset to check: (record, token, kind, app, caveats between org and expiry).
type Preset<'a> = (&'a Value, &'a str, &'a str, Option<&'a str>, &'a [&'a str]);

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

fn lower_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `tokens inspect --json` (offline).
fn inspect(srv: &Server, token: &str) -> Value {
    srv.cli_json(token, &["tokens", "inspect", "--json"])
}

fn caveat_texts(inspection: &Value) -> Vec<String> {
    inspection["caveats"]
        .as_array()
        .expect("caveats array")
        .iter()
        .map(|c| s(c, "text").to_owned())
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| x.as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// `tokens verify --json [access…]`: (exit code, the JSON printed).
fn verify(srv: &Server, token: &str, access: &[&str]) -> (i32, Value) {
    let mut args = vec!["tokens", "verify", "--json"];
    args.extend_from_slice(access);
    let (code, out, err) = srv.cli(&args, &[("MACVAULT_TOKEN", token)]);
    // Verdicts go to stdout; a token that does not authenticate is an error, on stderr.
    let text = if out.trim().is_empty() {
        err.lines().last().unwrap_or_default()
    } else {
        out.as_str()
    };
    let v = serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("verify {access:?} printed no JSON ({e}): {out}\n{err}"));
    (code, v)
}

/// The access flags of `tokens verify` for a secrets access in acme.
fn secrets(app: &'static str, action: &'static str) -> [&'static str; 8] {
    [
        "--org",
        "acme",
        "--app",
        app,
        "--resource",
        "secrets",
        "--action",
        action,
    ]
}

/// `tokens create KIND --org acme … --json` presented with `by`: (token, record).
fn mint(
    srv: &Server,
    by: &str,
    kind: &str,
    app: Option<&str>,
    name: &str,
    expiry: &str,
) -> (String, Value) {
    let mut args = vec!["tokens", "create", kind, "--org", "acme", "--name", name];
    if let Some(app) = app {
        args.extend(["--app", app]);
    }
    args.extend(["--expiry", expiry, "--json"]);
    let v = srv.cli_json(by, &args);
    (s(&v, "token").to_owned(), v["record"].clone())
}

fn find<'a>(list: &'a Value, key: &str, value: &str) -> &'a Value {
    list.as_array()
        .and_then(|a| a.iter().find(|r| s(r, key) == value))
        .unwrap_or_else(|| panic!("no entry with {key} = {value} in {list:#}"))
}

fn ledger(srv: &Server, by: &str) -> Value {
    srv.cli_json(by, &["tokens", "list", "--org", "acme", "--json"])["tokens"].clone()
}

fn audit_events(srv: &Server, by: &str, org: &str) -> Value {
    let (st, v) = srv.http(
        "GET",
        &format!("/v1/orgs/{org}/audit?limit=1000"),
        Some(by),
        None,
    );
    assert_eq!(st, 200, "audit of {org}: {v}");
    v["events"].clone()
}

fn events_with<'a>(events: &'a Value, action: &str) -> Vec<&'a Value> {
    events
        .as_array()
        .map(|a| a.iter().filter(|e| s(e, "action") == action).collect())
        .unwrap_or_default()
}

/// The HTTP status and error code of a request that should not authenticate.
fn get_org(srv: &Server, token: &str) -> (u16, String) {
    let (st, v) = srv.http("GET", "/v1/orgs/acme", Some(token), None);
    (st, code(&v).to_owned())
}

#[test]
fn e2e_lifecycle_restart_and_secrecy() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let mut c = Checks::new();
    let mut seen = Seen::default();

    // ---- first start -------------------------------------------------------------
    let srv = Server::start(&data);
    let op = seen.add(
        "operator",
        srv.operator_token()
            .expect("first start prints the operator token"),
    );
    let op_file = std::fs::read_to_string(data.join("operator.token")).expect("operator.token");
    c.same(
        op_file.trim(),
        op.as_str(),
        "operator.token holds the printed token",
    );
    c.same(mode(&data.join("master.key")), 0o600, "master.key mode");
    c.same(
        mode(&data.join("operator.token")),
        0o600,
        "operator.token mode",
    );
    c.same(mode(&data), 0o700, "data directory mode");
    let master = std::fs::read(data.join("master.key")).expect("master.key");
    c.same(master.len(), 32, "master.key length");
    let first_url = srv.url().to_owned();
    c.check(
        first_url.starts_with("http://127.0.0.1:"),
        format!("url: {first_url}"),
    );
    let (st, health) = srv.http("GET", "/v1/health", None, None);
    c.same((st, health), (200, json!({"status": "ok"})), "health");
    let op_id = s(&inspect(&srv, &op), "token_id").to_owned();
    c.same(op_id.len(), 32, "operator token id is 32 hex");

    // ---- orgs ------------------------------------------------------------------
    let created = srv.cli_json(&op, &["orgs", "create", "acme", "--json"]);
    c.same(s(&created, "org"), "acme", "orgs create answer");
    let org_tok = seen.add("acme org token", s(&created, "token"));
    crate::support::create_apps(&srv, &org_tok, "acme", &["web", "api"]);
    let org_tok_id = s(&created, "token_id").to_owned();
    let org_created_at = Instant::now();
    // The text form prints only the token on stdout.
    let (rc, out, err) = srv.cli(&["orgs", "create", "beta"], &[("MACVAULT_TOKEN", &op)]);
    c.same(rc, 0, format!("orgs create beta: {err}"));
    let beta_tok = seen.add("beta org token", out.trim());
    c.check(
        err.contains("beta"),
        format!("orgs create tells on stderr: {err}"),
    );
    let (rc, _, err) = srv.cli(&["orgs", "create", "acme"], &[("MACVAULT_TOKEN", &op)]);
    c.check(
        rc != 0 && err.contains("409"),
        format!("creating acme again is a 409: {rc} {err}"),
    );

    // ---- mint every preset -------------------------------------------------------
    let t0 = now();
    let (admin, admin_rec) = mint(&srv, &org_tok, "org", None, "admin", "1000h");
    let admin = seen.add("admin", &admin);
    let (deploy, deploy_rec) = mint(&srv, &org_tok, "deploy", Some("web"), "ci-web", "1000h");
    let deploy = seen.add("deploy", &deploy);
    let (ro, ro_rec) = mint(&srv, &org_tok, "readonly", None, "auditor", "1000h");
    let ro = seen.add("readonly", &ro);
    let (rt, rt_rec) = mint(
        &srv,
        &org_tok,
        "runtime",
        Some("web"),
        "web-runtime",
        "1000h",
    );
    let rt = seen.add("runtime", &rt);
    let t1 = now();
    let presets: [Preset<'_>; 4] = [
        (&admin_rec, &admin, "org", None, &[]),
        (
            &deploy_rec,
            &deploy,
            "deploy",
            Some("web"),
            &["app = web:rwcdx"],
        ),
        (&ro_rec, &ro, "readonly", None, &["actions = r"]),
        (
            &rt_rec,
            &rt,
            "runtime",
            Some("web"),
            &["app = web:rv", "resource = secrets"],
        ),
    ];
    for (rec, token, kind, app, middle) in presets {
        let name = s(rec, "name");
        c.same(s(rec, "kind"), kind, format!("{name}: kind"));
        c.same(rec["app"].as_str(), app, format!("{name}: app"));
        c.same(
            rec["key_version"].as_u64(),
            Some(1),
            format!("{name}: key version"),
        );
        c.same(
            s(rec, "creator"),
            org_tok_id.as_str(),
            format!("{name}: creator"),
        );
        c.same(s(rec, "org"), "acme", format!("{name}: org"));
        c.check(rec["revoked"].is_null(), format!("{name}: not revoked"));
        c.check(rec["last_used"].is_null(), format!("{name}: never used"));
        let expires = s(rec, "expires");
        let exp = parse_time(expires).unwrap_or(0);
        c.check(
            exp >= t0 + 1000 * 3600 && exp <= t1 + 1000 * 3600,
            format!("{name}: expires {expires} is 1000h from now"),
        );
        let mut want = vec!["org = acme".to_owned()];
        want.extend(middle.iter().map(|m| (*m).to_owned()));
        want.push(format!("expires < {expires}"));
        c.same(
            strings(&rec["caveats"]),
            want.clone(),
            format!("{name}: caveats"),
        );
        let seen_by_holder = inspect(&srv, token);
        c.same(
            s(&seen_by_holder, "fingerprint"),
            s(rec, "fingerprint"),
            format!("{name}: inspect fingerprint = ledger fingerprint"),
        );
        c.same(
            s(&seen_by_holder, "token_id"),
            s(rec, "id"),
            format!("{name}: inspect token id"),
        );
        c.same(
            caveat_texts(&seen_by_holder),
            want,
            format!("{name}: inspected caveats"),
        );
    }

    // ---- attenuate offline ------------------------------------------------------
    let out = srv.cli_ok(
        &deploy,
        &["tokens", "attenuate", "--read-only", "--expiry", "1h"],
    );
    let att_at = now();
    let att = seen.add("deploy attenuated read-only 1h", out.trim());
    let att_seen = inspect(&srv, &att);
    let att_caveats = caveat_texts(&att_seen);
    let mut want = strings(&deploy_rec["caveats"]);
    want.push("actions = r".into());
    c.same(
        att_caveats.len(),
        5,
        format!("attenuated caveats: {att_caveats:?}"),
    );
    c.same(
        att_caveats.get(..4).map(<[String]>::to_vec),
        Some(want),
        "attenuation keeps the deploy caveats and adds actions = r",
    );
    let att_exp = att_caveats
        .get(4)
        .and_then(|t| t.strip_prefix("expires < "))
        .and_then(parse_time)
        .unwrap_or(0);
    c.check(
        att_exp >= att_at + 3600 - 60 && att_exp <= att_at + 3600,
        format!("attenuated expiry is 1h from now: {att_caveats:?}"),
    );
    c.same(
        att_seen["expires"].as_str().and_then(parse_time),
        Some(att_exp),
        "inspect expires is the earliest expiry",
    );
    c.same(
        s(&att_seen, "token_id"),
        s(&deploy_rec, "id"),
        "an attenuation keeps the token id",
    );
    c.check(
        att_seen["caveats"]
            .as_array()
            .is_some_and(|a| a.iter().all(|x| x["known"] == json!(true))),
        "every attenuated caveat is known",
    );
    c.check(
        s(&att_seen, "fingerprint") != s(&deploy_rec, "fingerprint"),
        "an attenuation has its own fingerprint",
    );
    let text = srv.cli_ok(&att, &["tokens", "inspect"]);
    c.check(
        text.contains("actions = r") && text.contains(s(&deploy_rec, "id")),
        format!("inspect text: {text}"),
    );
    // Naming another app in an attenuation grants nothing.
    let out = srv.cli_ok(&deploy, &["tokens", "attenuate", "--app", "api"]);
    let att_api = seen.add("deploy attenuated to app api", out.trim());

    // ---- verify -------------------------------------------------------------------
    let (rc, v) = verify(&srv, &att, &secrets("web", "read"));
    c.same(
        (rc, v["allowed"].clone()),
        (0, json!(true)),
        format!("att reads web: {v}"),
    );
    c.same(v["key_version"].as_u64(), Some(1), "verify key version");
    c.same(s(&v, "token_id"), s(&deploy_rec, "id"), "verify token id");
    c.same(
        strings(&v["caveats"]),
        att_caveats.clone(),
        "verify caveats",
    );
    let (rc, v) = verify(&srv, &att, &secrets("web", "write"));
    c.same(
        (rc, v["allowed"].clone()),
        (1, json!(false)),
        format!("att writes web: {v}"),
    );
    c.same(
        (v["denial"]["index"].as_u64(), s(&v["denial"], "caveat")),
        (Some(4), "actions = r"),
        format!("att write denial names the read-only caveat: {v}"),
    );
    let (rc, out, _) = srv.cli(
        &[&["tokens", "verify"][..], &secrets("web", "write")].concat(),
        &[("MACVAULT_TOKEN", &att)],
    );
    c.check(
        rc == 1 && out.starts_with("denied: caveat 4 (actions = r)"),
        format!("verify text names the caveat: {rc} {out}"),
    );
    let (rc, v) = verify(&srv, &deploy, &secrets("web", "reveal"));
    c.same(
        (rc, s(&v["denial"], "caveat")),
        (1, "app = web:rwcdx"),
        format!("deploy cannot reveal: {v}"),
    );
    let (rc, v) = verify(&srv, &deploy, &secrets("api", "read"));
    c.same(
        (rc, s(&v["denial"], "caveat")),
        (1, "app = web:rwcdx"),
        format!("deploy cannot touch api: {v}"),
    );
    let (rc, v) = verify(&srv, &att_api, &secrets("api", "read"));
    c.same(
        (rc, s(&v["denial"], "caveat")),
        (1, "app = web:rwcdx"),
        format!("attenuating to another app grants nothing: {v}"),
    );
    let mut reveal = secrets("web", "reveal").to_vec();
    reveal.extend(["--secret", "DB_URL"]);
    let (rc, v) = verify(&srv, &rt, &reveal);
    c.same(
        (rc, v["allowed"].clone()),
        (0, json!(true)),
        format!("runtime reveals: {v}"),
    );
    let (rc, v) = verify(&srv, &rt, &secrets("web", "write"));
    c.same(
        (rc, s(&v["denial"], "caveat")),
        (1, "app = web:rv"),
        format!("runtime cannot write: {v}"),
    );
    let (rc, v) = verify(&srv, &ro, &secrets("api", "read"));
    c.same(
        (rc, v["allowed"].clone()),
        (0, json!(true)),
        format!("readonly reads: {v}"),
    );
    let (rc, v) = verify(
        &srv,
        &ro,
        &[
            "--org",
            "acme",
            "--resource",
            "tokens",
            "--action",
            "create",
        ],
    );
    c.same(
        (rc, s(&v["denial"], "caveat")),
        (1, "actions = r"),
        format!("readonly cannot mint: {v}"),
    );
    let (rc, v) = verify(&srv, &ro, &[]);
    c.same(
        (rc, v["allowed"].clone()),
        (0, json!(true)),
        "verify without access",
    );
    let (rc, v) = verify(&srv, "mvt_garbage", &[]);
    c.same(
        (rc, code(&v)),
        (3, "malformed"),
        format!("verify garbage: {v}"),
    );

    // ---- uses, a denial, a child token -------------------------------------------
    let (st, org_body) = srv.http("GET", "/v1/orgs/acme", Some(&ro), None);
    c.same(st, 200, format!("readonly reads the org: {org_body}"));
    c.same(s(&org_body, "name"), "acme", "org body");
    c.same(org_body["current_key_version"].as_u64(), Some(1), "org key");
    c.check(org_body["max_expiry_secs"].is_null(), "no max expiry yet");
    let mint_body = json!({"kind": "readonly", "expiry_secs": 60});
    let (st, v) = srv.http("POST", "/v1/orgs/acme/tokens", Some(&ro), Some(&mint_body));
    c.same(
        (st, code(&v)),
        (403, "denied"),
        format!("readonly cannot mint: {v}"),
    );
    c.same(
        s(&v["denial"], "caveat"),
        "actions = r",
        "readonly mint denial",
    );
    let (idle, _) = mint(&srv, &org_tok, "readonly", None, "idle", "1h");
    seen.add("idle", &idle);
    let (child, child_rec) = mint(&srv, &deploy, "deploy", Some("web"), "ci-child", "1h");
    let child = seen.add("deploy child", &child);
    c.same(
        s(&child_rec, "creator"),
        s(&deploy_rec, "id"),
        "child's creator is the deploy token",
    );

    // ---- revoke by id -------------------------------------------------------------
    let deploy_id = s(&deploy_rec, "id").to_owned();
    let out = srv.cli_ok(&admin, &["tokens", "revoke", &deploy_id, "--yes"]);
    c.same(
        out.trim().to_owned(),
        format!("revoked {deploy_id} (ci-web) and 1 token minted from it"),
        "revoke output",
    );
    for (label, token) in [
        ("deploy", &deploy),
        ("its attenuation", &att),
        ("att api", &att_api),
    ] {
        let (rc, v) = verify(&srv, token, &[]);
        c.same(
            (rc, code(&v)),
            (3, "revoked"),
            format!("revoked {label} verify: {v}"),
        );
        let (st, v) = srv.http(
            "POST",
            "/v1/orgs/acme/tokens",
            Some(token),
            Some(&mint_body),
        );
        c.same(
            (st, code(&v)),
            (401, "revoked"),
            format!("revoked {label} over HTTP: {v}"),
        );
    }
    c.same(
        get_org(&srv, &ro),
        (200, String::new()),
        "sibling readonly still works",
    );
    c.same(
        get_org(&srv, &admin),
        (200, String::new()),
        "sibling admin still works",
    );
    let (rc, v) = verify(&srv, &rt, &secrets("web", "read"));
    c.same(
        (rc, v["allowed"].clone()),
        (0, json!(true)),
        "sibling runtime still works",
    );
    // Revocation follows lineage: what the revoked token minted dies with it.
    let (rc, v) = verify(&srv, &child, &secrets("web", "read"));
    c.same(
        (rc, code(&v)),
        (3, "revoked"),
        format!("a token minted by a revoked token is revoked with it: {v}"),
    );
    let (st, again) = srv.http(
        "POST",
        &format!("/v1/tokens/{deploy_id}/revoke"),
        Some(&admin),
        None,
    );
    c.same(st, 200, format!("revoking twice is idempotent: {again}"));

    // ---- revoke self ----------------------------------------------------------------
    let (temp, temp_rec) = mint(&srv, &admin, "readonly", None, "temp", "1h");
    let temp = seen.add("temp", &temp);
    let temp_id = s(&temp_rec, "id").to_owned();
    let out = srv.cli_ok(&temp, &["tokens", "revoke", "--self"]);
    c.same(
        out.trim().to_owned(),
        format!("revoked {temp_id} (temp)"),
        "revoke --self output",
    );
    c.same(
        get_org(&srv, &temp),
        (401, "revoked".into()),
        "self-revoked token",
    );
    let (rc, _, err) = srv.cli(
        &["tokens", "revoke", "--self"],
        &[("MACVAULT_TOKEN", &temp)],
    );
    c.check(
        rc != 0 && err.contains("revoked"),
        format!("revoke --self twice: {rc} {err}"),
    );

    // ---- ledger with last-used times --------------------------------------------------
    // Last-used times are flushed in the background (every second): wait for them.
    // The uses they record are all done by now (the listing below shows them as "ago"
    // once a whole second has passed: a passing of time, waited for there). A flush may
    // land between two uses of one token, so the wait is for each token's *last* use:
    // the auditor's was over HTTP (this test's user agent), after its CLI verifies.
    let uses_done = Instant::now();
    let list = eventually(
        "last-used times in the ledger",
        Duration::from_secs(30),
        || {
            let list = ledger(&srv, &admin);
            let flushed = ["ci-web", "web-runtime"]
                .iter()
                .all(|n| !find(&list, "name", n)["last_used"].is_null());
            let auditor_last =
                find(&list, "name", "auditor")["last_used"]["user_agent"] == json!(USER_AGENT);
            (flushed && auditor_last).then_some(list)
        },
    );
    for (name, kind) in [
        ("org", "org"),
        ("admin", "org"),
        ("ci-web", "deploy"),
        ("auditor", "readonly"),
        ("web-runtime", "runtime"),
        ("ci-child", "deploy"),
        ("temp", "readonly"),
    ] {
        c.same(
            s(find(&list, "name", name), "kind"),
            kind,
            format!("ledger kind of {name}"),
        );
    }
    let auditor = &find(&list, "name", "auditor")["last_used"];
    c.same(
        s(auditor, "ip"),
        "127.0.0.1",
        format!("auditor last used ip: {auditor}"),
    );
    c.same(
        s(auditor, "user_agent"),
        USER_AGENT,
        "auditor last used user agent",
    );
    let used_at = parse_time(s(auditor, "time")).unwrap_or(0);
    c.check(
        used_at >= t0 && used_at <= now(),
        format!("auditor last used time: {auditor}"),
    );
    let ci = find(&list, "name", "ci-web");
    c.check(
        s(&ci["last_used"], "user_agent").starts_with("macvault-cli/")
            && s(&ci["last_used"], "ip") == "127.0.0.1",
        format!("ci-web last used by the CLI: {ci}"),
    );
    let revoked_at = s(ci, "revoked").to_owned();
    c.check(
        parse_time(&revoked_at).is_some_and(|t| t >= t0 && t <= now()),
        format!("ci-web revoked time: {ci}"),
    );
    c.same(
        s(&again, "revoked"),
        revoked_at.as_str(),
        "second revoke keeps the time",
    );
    c.check(
        !find(&list, "name", "web-runtime")["last_used"].is_null(),
        "verify records the runtime token's use",
    );
    c.check(
        find(&list, "name", "idle")["last_used"].is_null(),
        "idle never used",
    );
    c.check(
        !find(&list, "name", "temp")["revoked"].is_null(),
        "temp revoked in the ledger",
    );
    for name in ["admin", "auditor", "web-runtime"] {
        c.check(
            find(&list, "name", name)["revoked"].is_null(),
            format!("{name} is not revoked"),
        );
    }
    c.check(
        !find(&list, "name", "ci-child")["revoked"].is_null(),
        "ci-child was revoked with the deploy token that minted it",
    );
    if let Some(wait) = Duration::from_millis(1100).checked_sub(uses_done.elapsed()) {
        std::thread::sleep(wait);
    }
    let text = srv.cli_ok(&admin, &["tokens", "list", "--org", "acme"]);
    for want in [
        "NAME", "STATUS", "ci-web", "auditor", "readonly", "runtime", "never", "revoked", "ago",
    ] {
        c.check(
            text.contains(want),
            format!("tokens list shows {want:?}:\n{text}"),
        );
    }
    c.check(
        text.lines().all(|l| l.chars().count() <= 100),
        format!("tokens list fits 100 columns:\n{text}"),
    );
    // The details (the last use's address and agent, the revocation time) are in `show`,
    // which takes an id prefix.
    let deploy_prefix = &deploy_id[..10];
    let shown = srv.cli_ok(&admin, &["tokens", "show", deploy_prefix]);
    c.check(
        (shown.contains(USER_AGENT) || shown.contains("macvault-cli/"))
            && shown.contains("from 127.0.0.1")
            && shown.contains(&revoked_at),
        format!("tokens show has the last use and the revocation:\n{shown}"),
    );

    // Nothing outlives the token that minted it: a default-expiry mint with the org
    // token of `orgs create` (itself 90 days, the default) is cut to that token's expiry
    // once a second has passed; an explicit longer one is refused.
    if let Some(wait) = Duration::from_millis(1100).checked_sub(org_created_at.elapsed()) {
        std::thread::sleep(wait);
    }
    let v = srv.cli_json(
        &org_tok,
        &[
            "tokens", "create", "readonly", "--org", "acme", "--name", "dflt", "--json",
        ],
    );
    seen.add("default-expiry readonly", s(&v, "token"));
    c.same(
        s(&v["record"], "expires"),
        s(&created, "expires"),
        "a default expiry is cut to the minting token's",
    );
    let (rc, _, err) = srv.cli(
        &[
            "tokens", "create", "readonly", "--org", "acme", "--expiry", "2160h",
        ],
        &[("MACVAULT_TOKEN", &org_tok)],
    );
    c.check(
        rc != 0 && err.contains("400"),
        format!("an explicit expiry past the minting token's is refused: {rc} {err}"),
    );

    // ---- keys ------------------------------------------------------------------------
    let keys = srv.cli_json(&admin, &["keys", "list", "--org", "acme", "--json"]);
    c.same(
        keys["keys"].as_array().map(Vec::len),
        Some(1),
        format!("one key: {keys}"),
    );
    c.same(
        (
            keys["keys"][0]["version"].as_u64(),
            keys["keys"][0]["current"].as_bool(),
        ),
        (Some(1), Some(true)),
        "v1 current",
    );
    let rotated = srv.cli_json(&admin, &["keys", "rotate", "--org", "acme", "--json"]);
    c.same(
        (rotated["version"].as_u64(), rotated["current"].as_bool()),
        (Some(2), Some(true)),
        format!("rotate: {rotated}"),
    );
    let (admin2, admin2_rec) = mint(&srv, &admin, "org", None, "admin2", "500h");
    let admin2 = seen.add("admin2", &admin2);
    let (ci2, ci2_rec) = mint(&srv, &admin, "deploy", Some("web"), "ci-v2", "500h");
    let ci2 = seen.add("ci-v2", &ci2);
    // Revoked under v2, so that the revocation itself is what the restart must keep.
    let (doomed, doomed_rec) = mint(&srv, &admin, "deploy", Some("web"), "doomed", "500h");
    let doomed = seen.add("doomed", &doomed);
    let out = srv.cli_ok(&doomed, &["tokens", "attenuate", "--app", "web:r"]);
    let doomed_att = seen.add("doomed attenuated", out.trim());
    let doomed_id = s(&doomed_rec, "id").to_owned();
    srv.cli_ok(&admin, &["tokens", "revoke", &doomed_id]);
    let (rc, v) = verify(&srv, &doomed_att, &[]);
    c.same((rc, code(&v)), (3, "revoked"), "revoked v2 attenuation");
    c.same(
        admin2_rec["key_version"].as_u64(),
        Some(2),
        "new tokens use v2",
    );
    c.same(
        ci2_rec["key_version"].as_u64(),
        Some(2),
        "new tokens use v2",
    );
    c.same(
        inspect(&srv, &ci2)["key_version"].as_u64(),
        Some(2),
        "inspect v2",
    );
    c.same(
        get_org(&srv, &admin),
        (200, String::new()),
        "v1 token still works",
    );
    let (rc, v) = verify(&srv, &ro, &[]);
    c.same(
        (rc, v["key_version"].as_u64()),
        (0, Some(1)),
        "v1 token still verifies",
    );
    let (st, v) = srv.http("GET", "/v1/orgs/acme", Some(&admin2), None);
    c.same(
        (st, v["current_key_version"].as_u64()),
        (200, Some(2)),
        "org shows key 2",
    );
    let (rc, _, err) = srv.cli(
        &["keys", "retire", "--org", "acme", "2"],
        &[("MACVAULT_TOKEN", &admin2)],
    );
    c.check(
        rc != 0 && err.contains("409"),
        format!("retiring the current key: {rc} {err}"),
    );
    let (st, v) = srv.http("POST", "/v1/orgs/acme/keys/2/retire", Some(&admin2), None);
    c.same(
        (st, code(&v)),
        (409, "conflict"),
        format!("retire current over HTTP: {v}"),
    );
    let (st, v) = srv.http("POST", "/v1/orgs/acme/keys/99/retire", Some(&admin2), None);
    c.same(
        (st, code(&v)),
        (404, "not_found"),
        format!("retire unknown version: {v}"),
    );
    let retired = srv.cli_json(
        &admin2,
        &["keys", "retire", "--org", "acme", "1", "--yes", "--json"],
    );
    c.check(
        retired["version"] == json!(1)
            && retired["current"] == json!(false)
            && retired["retired"].as_str().and_then(parse_time).is_some(),
        format!("retire v1: {retired}"),
    );
    c.same(
        get_org(&srv, &admin),
        (401, "key_retired".into()),
        "v1 admin after retire",
    );
    c.same(
        get_org(&srv, &ro),
        (401, "key_retired".into()),
        "v1 readonly after retire",
    );
    let (rc, v) = verify(&srv, &rt, &[]);
    c.same(
        (rc, code(&v)),
        (3, "key_retired"),
        "v1 runtime after retire",
    );
    c.same(
        get_org(&srv, &admin2),
        (200, String::new()),
        "v2 admin after retire",
    );
    let (rc, v) = verify(&srv, &ci2, &secrets("web", "write"));
    c.same(
        (rc, v["allowed"].clone()),
        (0, json!(true)),
        "v2 deploy after retire",
    );
    let keys = srv.cli_json(&admin2, &["keys", "list", "--org", "acme", "--json"]);
    c.check(
        keys["keys"][0]["retired"].is_string()
            && keys["keys"][1]["retired"].is_null()
            && keys["keys"][1]["current"] == json!(true),
        format!("keys after retire: {keys}"),
    );

    // ---- org max expiry ------------------------------------------------------------
    let org = srv.cli_json(
        &admin2,
        &["orgs", "set", "acme", "--max-expiry", "24h", "--json"],
    );
    c.same(
        org["max_expiry_secs"].as_u64(),
        Some(86_400),
        format!("orgs set: {org}"),
    );
    let (rc, _, err) = srv.cli(
        &[
            "tokens", "create", "readonly", "--org", "acme", "--expiry", "48h",
        ],
        &[("MACVAULT_TOKEN", &admin2)],
    );
    c.check(
        rc != 0 && err.contains("400"),
        format!("a mint longer than the max is refused: {rc} {err}"),
    );
    let too_long = json!({"kind": "readonly", "expiry_secs": 2 * 86_400});
    let (st, v) = srv.http(
        "POST",
        "/v1/orgs/acme/tokens",
        Some(&admin2),
        Some(&too_long),
    );
    c.check(
        st == 400 && code(&v) == "bad_request" && s(&v["error"], "message").contains("maximum"),
        format!("HTTP mint over the max: {st} {v}"),
    );
    let (short, short_rec) = mint(&srv, &admin2, "readonly", None, "short", "12h");
    let short = seen.add("short", &short);
    let shown = srv.cli_json(&admin2, &["orgs", "show", "acme", "--json"]);
    c.same(shown["max_expiry_secs"].as_u64(), Some(86_400), "orgs show");
    let shown = srv.cli_ok(&admin2, &["orgs", "show", "acme"]);
    c.check(
        shown
            .lines()
            .any(|l| l.contains("max") && l.trim_end().ends_with(" 1d")),
        format!("orgs show writes the maximum as --max-expiry takes it:\n{shown}"),
    );

    // ---- audit ------------------------------------------------------------------------
    let events = audit_events(&srv, &admin2, "acme");
    // `audit --json` writes JSON lines (one event a line, for export).
    let lines = srv.cli_ok(&admin2, &["audit", "--org", "acme", "--json"]);
    let cli_events: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON event per line"))
        .collect();
    c.same(
        Some(cli_events.len()),
        events.as_array().map(Vec::len),
        "audit CLI and HTTP agree",
    );
    let text = srv.cli_ok(&admin2, &["audit", "--org", "acme"]);
    c.check(
        text.contains("token.revoke") && text.contains("request.denied"),
        format!("audit text:\n{text}"),
    );
    let seqs: Vec<u64> = events
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["seq"].as_u64())
        .collect();
    c.check(
        seqs.windows(2).all(|w| w[0] < w[1]),
        format!("audit seqs increase: {seqs:?}"),
    );
    let admin_id = s(&admin_rec, "id");
    let admin2_id = s(&admin2_rec, "id");
    let ro_id = s(&ro_rec, "id");
    let has = |action: &str, actor: &str, detail: &str, outcome: &str| {
        events_with(&events, action).iter().any(|e| {
            s(e, "actor") == actor
                && s(e, "source_ip") == "127.0.0.1"
                && s(e, "detail").contains(detail)
                && s(e, "outcome") == outcome
                && s(e, "org") == "acme"
        })
    };
    for (action, actor, detail, outcome) in [
        ("org.create", op_id.as_str(), "acme", "ok"),
        ("token.mint", op_id.as_str(), "org", "ok"),
        ("token.mint", org_tok_id.as_str(), "admin", "ok"),
        ("token.mint", deploy_id.as_str(), "ci-child", "ok"),
        ("token.revoke", admin_id, deploy_id.as_str(), "ok"),
        ("token.revoke", temp_id.as_str(), "temp", "ok"),
        ("key.rotate", admin_id, "2", "ok"),
        ("key.retire", admin2_id, "1", "ok"),
        ("org.update", admin2_id, "", "ok"),
        ("request.denied", ro_id, "actions = r", "denied"),
    ] {
        c.check(
            has(action, actor, detail, outcome),
            format!("audit has {action} by {actor} ({detail:?}, {outcome}) from 127.0.0.1"),
        );
    }
    let system = audit_events(&srv, &op, "system");
    for org in ["acme", "beta"] {
        c.check(
            events_with(&system, "org.create")
                .iter()
                .any(|e| s(e, "actor") == op_id && s(e, "detail").contains(org)),
            format!("system audit has org.create {org} by the operator: {system}"),
        );
    }

    // ---- what must survive a restart -------------------------------------------------------
    let before_ledger = ledger(&srv, &admin2);
    let before_audit = audit_events(&srv, &admin2, "acme");
    // A use and a denial right before SIGTERM: flushed on shutdown at the latest.
    c.same(
        get_org(&srv, &short),
        (200, String::new()),
        "short reads the org",
    );
    let (st, _) = srv.http("POST", "/v1/orgs/acme/keys/rotate", Some(&short), None);
    c.same(st, 403, "short cannot rotate");
    let short_id = s(&short_rec, "id").to_owned();

    let (logs1, srv) = srv.restart();
    c.check(
        srv.operator_token().is_none(),
        "no operator token on the second start",
    );
    c.same(
        std::fs::read_to_string(data.join("operator.token")).ok(),
        Some(op_file.clone()),
        "operator.token unchanged by a restart",
    );
    let (st, org) = srv.http("GET", "/v1/orgs/acme", Some(&admin2), None);
    c.same(st, 200, "acme after restart");
    c.same(
        (
            org["current_key_version"].as_u64(),
            org["max_expiry_secs"].as_u64(),
        ),
        (Some(2), Some(86_400)),
        format!("org settings after restart: {org}"),
    );
    let (st, _) = srv.http("GET", "/v1/orgs/beta", Some(&beta_tok), None);
    c.same(st, 200, "beta after restart");
    let after_ledger = ledger(&srv, &admin2);
    let ids = |l: &Value| -> Vec<(String, String)> {
        l.as_array()
            .map(|a| {
                a.iter()
                    .map(|r| (s(r, "id").to_owned(), s(r, "revoked").to_owned()))
                    .collect()
            })
            .unwrap_or_default()
    };
    c.same(
        ids(&after_ledger),
        ids(&before_ledger),
        "ledger ids and revocations survive",
    );
    let short_used = &find(&after_ledger, "id", &short_id)["last_used"];
    c.same(
        s(short_used, "user_agent"),
        USER_AGENT,
        format!("last use just before SIGTERM was flushed: {short_used}"),
    );
    for (label, token) in [("v2 deploy", &doomed), ("its attenuation", &doomed_att)] {
        let (rc, v) = verify(&srv, token, &[]);
        c.same(
            (rc, code(&v)),
            (3, "revoked"),
            format!("revoked {label} still revoked"),
        );
    }
    // Revoked and then retired: the key is checked first.
    c.same(
        get_org(&srv, &temp),
        (401, "key_retired".into()),
        "temp (v1) stays dead",
    );
    c.same(
        get_org(&srv, &admin),
        (401, "key_retired".into()),
        "v1 still retired",
    );
    c.same(
        get_org(&srv, &admin2),
        (200, String::new()),
        "admin2 still valid",
    );
    let (rc, v) = verify(&srv, &ci2, &secrets("web", "read"));
    c.same(
        (rc, v["allowed"].clone()),
        (0, json!(true)),
        "ci-v2 still valid",
    );
    let keys = srv.cli_json(&admin2, &["keys", "list", "--org", "acme", "--json"]);
    c.check(
        keys["keys"][0]["retired"].is_string()
            && keys["keys"][1]["current"] == json!(true)
            && keys["keys"].as_array().map(Vec::len) == Some(2),
        format!("key versions survive: {keys}"),
    );
    let after_audit = audit_events(&srv, &admin2, "acme");
    let before_n = before_audit.as_array().map_or(0, Vec::len);
    c.same(
        after_audit
            .as_array()
            .and_then(|a| a.get(..before_n))
            .map(<[Value]>::to_vec),
        before_audit.as_array().cloned(),
        "audit survives (same events, same order)",
    );
    c.check(
        events_with(&after_audit, "request.denied")
            .iter()
            .any(|e| s(e, "actor") == short_id),
        "a denial just before SIGTERM was flushed",
    );
    // New events continue the sequence instead of overwriting the old ones.
    let last_seq = after_audit
        .as_array()
        .and_then(|a| a.last())
        .and_then(|e| e["seq"].as_u64())
        .unwrap_or(0);
    srv.cli_json(
        &admin2,
        &["orgs", "set", "acme", "--max-expiry", "48h", "--json"],
    );
    let later = audit_events(&srv, &admin2, "acme");
    let later = later.as_array().cloned().unwrap_or_default();
    c.check(
        later.len() == after_audit.as_array().map_or(0, Vec::len) + 1
            && later.last().is_some_and(|e| {
                s(e, "action") == "org.update" && e["seq"].as_u64() > Some(last_seq)
            }),
        format!("an event after restart is appended after seq {last_seq}"),
    );
    let gamma = srv.cli_json(&op, &["orgs", "create", "gamma", "--json"]);
    let gamma_tok = seen.add("gamma org token", s(&gamma, "token"));
    let (st, _) = srv.http("GET", "/v1/orgs/gamma", Some(&gamma_tok), None);
    c.same(st, 200, "a new org after restart");

    // ---- secrecy: collect everything the server said or stored about itself ---------------
    let mut said: Vec<(String, String)> = Vec::new();
    for (org, by) in [
        ("acme", admin2.as_str()),
        ("beta", beta_tok.as_str()),
        ("gamma", gamma_tok.as_str()),
        ("system", op.as_str()),
    ] {
        let events = audit_events(&srv, by, org);
        said.push((format!("audit of {org}"), events.to_string()));
        let (rc, out, err) = srv.cli(
            &["tokens", "list", "--org", org, "--json"],
            &[("MACVAULT_TOKEN", by)],
        );
        c.same(rc, 0, format!("ledger of {org}: {err}"));
        if org == "system" {
            c.check(
                out.contains("\"kind\": \"operator\""),
                format!("the system ledger lists the operator token: {out}"),
            );
        }
        said.push((format!("ledger of {org}"), out));
    }
    let logs2 = srv.stop();
    let redb = std::fs::read(data.join("macvault.redb")).expect("macvault.redb");

    // The operator token is never printed (stdout is the log under systemd or a
    // container): the first start says where it wrote it.
    c.same(
        logs1.stdout.matches(op.as_str()).count(),
        0,
        "operator token never printed",
    );
    let lines: Vec<&str> = logs1.stdout.lines().collect();
    let token_file = data.join("operator.token");
    c.check(
        lines.len() >= 2
            && lines[0]
                == format!(
                    "operator token written to {} (mode 0600; it is shown nowhere else)",
                    token_file.display()
                )
            && lines[1] == format!("macvault listening on {first_url}"),
        format!("first start stdout:\n{}", logs1.stdout),
    );
    c.check(
        logs1.stderr.contains("DEBUG") && logs1.stderr.contains("/v1/orgs/acme"),
        "the server logs at debug level (so the sweep means something)",
    );
    c.check(
        logs1.stderr.contains("token not accepted") && logs1.stderr.contains("class=\"revoked\""),
        "refused tokens are logged at debug level, by class (and swept for secrets below)",
    );
    let mut haystacks: Vec<(String, Vec<u8>)> = vec![
        ("first stderr".into(), logs1.stderr.clone().into_bytes()),
        ("second stderr".into(), logs2.stderr.clone().into_bytes()),
        ("second stdout".into(), logs2.stdout.clone().into_bytes()),
        ("macvault.redb".into(), redb),
    ];
    haystacks.extend(said.into_iter().map(|(k, v)| (k, v.into_bytes())));
    let first_stdout_without_op = logs1.stdout.replacen(op.as_str(), "", 1);
    haystacks.push((
        "first stdout (but the operator line)".into(),
        first_stdout_without_op.into_bytes(),
    ));
    let b64 = base64::engine::general_purpose::STANDARD;
    let b64_np = base64::engine::general_purpose::STANDARD_NO_PAD;
    let b64_url = base64::engine::general_purpose::URL_SAFE;
    let b64_url_np = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut needles: Vec<(String, Vec<u8>)> = seen
        .0
        .iter()
        .map(|(label, t)| (format!("token {label}"), t.clone().into_bytes()))
        .collect();
    needles.extend([
        ("raw master key".to_owned(), master.clone()),
        ("master key hex".into(), lower_hex(&master).into_bytes()),
        (
            "master key HEX".into(),
            lower_hex(&master).to_uppercase().into_bytes(),
        ),
        ("master key base64".into(), b64.encode(&master).into_bytes()),
        (
            "master key base64 (no pad)".into(),
            b64_np.encode(&master).into_bytes(),
        ),
        (
            "master key base64url".into(),
            b64_url.encode(&master).into_bytes(),
        ),
        (
            "master key base64url (no pad)".into(),
            b64_url_np.encode(&master).into_bytes(),
        ),
    ]);
    for (hay_name, hay) in &haystacks {
        for (needle_name, needle) in &needles {
            c.check(
                !contains_bytes(hay, needle),
                format!("{needle_name} appears in {hay_name}"),
            );
        }
    }

    // ---- a world-readable master key is refused --------------------------------------------
    let key_path = data.join("master.key");
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    match Server::try_start(&data) {
        Ok(srv) => {
            srv.stop();
            c.check(false, "the server started with a mode 644 master.key");
        }
        Err(failure) => {
            c.check(
                failure.status.is_some_and(|s| !s.success()),
                format!("non-zero exit with a 644 master key: {:?}", failure.status),
            );
            c.check(
                failure.logs.stderr.contains("master key") && failure.logs.stderr.contains("600"),
                format!("clear message: {}", failure.logs.stderr),
            );
            c.check(!failure.logs.stdout.contains("listening"), "never listened");
        }
    }
    c.finish();
}
