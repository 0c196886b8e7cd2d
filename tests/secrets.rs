//! The secrets store through the real binary, on redb and on PostgreSQL: every operation
//! over HTTP and the CLI, versions and check-and-set, expiry and fallback, limits, each
//! preset and attenuation on each endpoint, restart, and no plaintext anywhere a value
//! could leak to.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::pg::TestDb;
use crate::support::{Server, acme, code, contains_bytes, eventually, s};

const WAIT: Duration = Duration::from_secs(30);
const ORG: &str = "/v1/orgs/acme/secrets";
const WEB: &str = "/v1/orgs/acme/apps/web/secrets";
const API: &str = "/v1/orgs/acme/apps/api/secrets";

/// Where a test's server keeps its data.
pub enum Backend<'a> {
    /// The embedded store in this directory.
    Redb(&'a Path),
    /// A PostgreSQL database.
    Postgres(&'a TestDb),
}

/// Runs `test` against a fresh server on redb, then on PostgreSQL when one is configured.
pub fn on_each_backend(extra: &[&str], test: impl Fn(&Backend<'_>, Server)) {
    let tmp = tempfile::tempdir().unwrap();
    let redb = tmp.path().join("redb");
    test(&Backend::Redb(&redb), Server::start_with(&redb, extra));
    if let Some(db) = TestDb::create() {
        let mut args = vec!["--database", db.url.as_str()];
        args.extend(extra);
        test(
            &Backend::Postgres(&db),
            Server::start_with(&tmp.path().join("pg"), &args),
        );
    }
}

fn write(srv: &Server, tok: &str, scope: &str, body: Value) -> (u16, Value) {
    srv.http("POST", scope, Some(tok), Some(&body))
}

fn set(srv: &Server, tok: &str, scope: &str, pairs: &[(&str, &str)]) -> Value {
    let set: Vec<Value> = pairs
        .iter()
        .map(|(n, v)| json!({"name": n, "value": v}))
        .collect();
    let (st, v) = write(srv, tok, scope, json!({ "set": set }));
    assert_eq!(st, 200, "set {pairs:?} in {scope}: {v}");
    v
}

fn list(srv: &Server, tok: &str, scope: &str, resolved: bool) -> Value {
    let (st, v) = srv.http(
        "GET",
        &format!("{scope}?resolved={resolved}"),
        Some(tok),
        None,
    );
    assert_eq!(st, 200, "list {scope}: {v}");
    v
}

/// (name, app or "org", version, expired) of each listed secret.
fn listed(v: &Value) -> Vec<(String, String, u64, bool)> {
    v["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                s(e, "name").to_owned(),
                e["app"].as_str().unwrap_or("org").to_owned(),
                e["version"].as_u64().unwrap(),
                e["expired"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn names(v: &Value) -> Vec<String> {
    listed(v).into_iter().map(|e| e.0).collect()
}

fn version_of(v: &Value, name: &str) -> u64 {
    v["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| s(e, "name") == name)
        .and_then(|e| e["version"].as_u64())
        .unwrap_or_else(|| panic!("{name} not in {v}"))
}

fn mint(srv: &Server, by: &str, kind: &str, app: Option<&str>) -> String {
    let mut body = json!({"kind": kind, "name": kind});
    if let Some(app) = app {
        body["app"] = json!(app);
    }
    let (st, v) = srv.http("POST", "/v1/orgs/acme/tokens", Some(by), Some(&body));
    assert_eq!(st, 201, "mint {kind}: {v}");
    s(&v, "token").to_owned()
}

/// `token` narrowed to secrets matching `patterns`.
fn only_secrets(srv: &Server, token: &str, patterns: &[&str]) -> String {
    let mut args = vec!["tokens", "attenuate"];
    for p in patterns {
        args.extend(["--secret", p]);
    }
    srv.cli_ok(token, &args).trim().to_owned()
}

#[test]
fn set_list_get_history_rollback_destroy_and_restart() {
    on_each_backend(&["--max-versions", "3"], |_, srv| {
        let (_op, org) = acme(&srv);
        let env = [("MACVAULT_TOKEN", org.as_str())];
        // The CLI: a value on the command line, one from stdin, in one atomic write.
        let (c, out, err) = srv.cli_stdin(
            &[
                "secrets",
                "set",
                "--app",
                "web",
                "DB_URL=postgres://db",
                "API_KEY=-",
            ],
            &env,
            b"from-stdin\n",
        );
        assert_eq!(c, 0, "{out}{err}");
        assert!(
            out.contains("set DB_URL (v1), set API_KEY (v1) in app web"),
            "{out}"
        );
        let table = srv.cli_ok(&org, &["secrets", "list", "--app", "web"]);
        let header = table.lines().next().unwrap();
        for col in [
            "NAME",
            "SCOPE",
            "VERSION",
            "DIGEST",
            "UPDATED",
            "EXPIRES",
            "DESCRIPTION",
        ] {
            assert!(header.contains(col), "{header}");
        }
        assert!(!table.contains("postgres://db") && !table.contains("from-stdin"));
        // get: metadata only.
        let got = srv.cli_json(
            &org,
            &["secrets", "get", "--app", "web", "API_KEY", "--json"],
        );
        assert_eq!(
            (s(&got, "name"), got["version"].as_u64()),
            ("API_KEY", Some(1))
        );
        assert!(!got.to_string().contains("from-stdin"));
        // Versions, the CLI's check-and-set, history with the writer's name.
        set(&srv, &org, WEB, &[("DB_URL", "two")]);
        let (c, _, err) = srv.cli(
            &[
                "secrets",
                "set",
                "--app",
                "web",
                "DB_URL=three",
                "--if-version",
                "1",
            ],
            &env,
        );
        assert_eq!(c, 5, "a conflict is refused (exit 5): {err}");
        assert!(err.contains("DB_URL is at version 2, not 1"), "{err}");
        srv.cli_ok(
            &org,
            &[
                "secrets",
                "set",
                "--app",
                "web",
                "DB_URL=three",
                "--if-version",
                "2",
            ],
        );
        let history = srv.cli_ok(&org, &["secrets", "history", "--app", "web", "DB_URL"]);
        assert_eq!(history.lines().count(), 4, "{history}");
        assert!(
            history.contains("org ("),
            "the writer's name and id: {history}"
        );
        // Rollback: the old value as a new version; the cap (3) drops v1.
        let back = srv.cli_json(
            &org,
            &[
                "secrets", "rollback", "--app", "web", "DB_URL", "2", "--json",
            ],
        );
        assert_eq!(version_of(&back, "DB_URL"), 4);
        let (st, h) = srv.http("GET", &format!("{WEB}/DB_URL/history"), Some(&org), None);
        assert_eq!(st, 200, "{h}");
        let versions: Vec<u64> = h["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].as_u64().unwrap())
            .collect();
        assert_eq!(versions, [2, 3, 4], "at most --max-versions kept");
        assert_eq!(h["versions"][2]["rollback_of"], 2);
        assert_eq!(h["versions"][2]["digest"], h["versions"][0]["digest"]);
        let (st, v) = srv.http(
            "POST",
            &format!("{WEB}/DB_URL/rollback"),
            Some(&org),
            Some(&json!({"version": 1})),
        );
        assert_eq!((st, code(&v)), (404, "not_found"), "{v}");
        // Destroy one version, then all: the history says so, the secret is unset.
        srv.cli_ok(
            &org,
            &[
                "secrets",
                "destroy",
                "--app",
                "web",
                "DB_URL",
                "--version",
                "3",
            ],
        );
        let (st, v) = srv.http(
            "POST",
            &format!("{WEB}/DB_URL/rollback"),
            Some(&org),
            Some(&json!({"version": 3})),
        );
        assert_eq!((st, code(&v)), (409, "destroyed"), "{v}");
        let (st, v) = srv.http(
            "POST",
            &format!("{WEB}/DB_URL/destroy"),
            Some(&org),
            Some(&json!({})),
        );
        assert_eq!(st, 400, "destroy names what: {v}");
        let gone = srv.cli_json(
            &org,
            &[
                "secrets", "destroy", "--app", "web", "DB_URL", "--all", "--json",
            ],
        );
        assert_eq!(gone["unset"], true);
        assert_eq!(names(&list(&srv, &org, WEB, false)), ["API_KEY"]);
        // Unset is soft: a later set continues the numbers.
        srv.cli_ok(&org, &["secrets", "unset", "--app", "web", "API_KEY"]);
        assert!(names(&list(&srv, &org, WEB, false)).is_empty());
        let again = set(&srv, &org, WEB, &[("API_KEY", "again")]);
        assert_eq!(version_of(&again, "API_KEY"), 2);
        // Everything survives a restart.
        let (_logs, srv) = srv.restart();
        let after = list(&srv, &org, WEB, false);
        assert_eq!(listed(&after), [("API_KEY".into(), "web".into(), 2, false)]);
        let (_, h) = srv.http("GET", &format!("{WEB}/DB_URL/history"), Some(&org), None);
        assert_eq!(h["versions"].as_array().unwrap().len(), 3);
        assert!(
            h["versions"]
                .as_array()
                .unwrap()
                .iter()
                .all(|v| v["destroyed"] == true)
        );
    });
}

#[test]
fn check_and_set_and_multi_set_are_atomic() {
    on_each_backend(&[], |_, srv| {
        let (_op, org) = acme(&srv);
        set(&srv, &org, ORG, &[("A", "1"), ("B", "1")]);
        // One stale expectation refuses the whole write, naming the current version.
        let (st, v) = write(
            &srv,
            &org,
            ORG,
            json!({"set": [
                {"name": "A", "value": "2", "if_version": 1},
                {"name": "B", "value": "2", "if_version": 9},
                {"name": "C", "value": "new", "if_version": 0},
            ]}),
        );
        assert_eq!((st, code(&v)), (409, "version_conflict"), "{v}");
        assert_eq!(
            v["conflict"],
            json!({"name": "B", "current_version": 1, "expected_version": 9})
        );
        assert_eq!(
            listed(&list(&srv, &org, ORG, false))
                .iter()
                .map(|e| e.2)
                .collect::<Vec<_>>(),
            [1, 1]
        );
        // 0: must not exist.
        let (st, v) = write(
            &srv,
            &org,
            ORG,
            json!({"set": [{"name": "A", "value": "x", "if_version": 0}]}),
        );
        assert_eq!(
            (st, v["conflict"]["current_version"].as_u64()),
            (409, Some(1))
        );
        // One bad name, or an unset of a missing one, and nothing is written.
        for bad in [
            json!({"set": [{"name": "C", "value": "1"}, {"name": "9X", "value": "1"}]}),
            json!({"set": [{"name": "C", "value": "1"}], "unset": [{"name": "MISSING"}]}),
            json!({"set": [{"name": "C", "value": "a\u{0}b"}]}),
            json!({"set": [{"name": "C", "value": "1"}, {"name": "C", "value": "2"}]}),
            json!({}),
        ] {
            let (st, v) = write(&srv, &org, ORG, bad.clone());
            assert!(st == 400 || st == 404, "{bad}: {st} {v}");
        }
        assert_eq!(names(&list(&srv, &org, ORG, false)), ["A", "B"]);
        // A good multi-write: set and unset together, versions answered.
        let (st, v) = write(
            &srv,
            &org,
            ORG,
            json!({"set": [{"name": "A", "value": "2", "if_version": 1}, {"name": "C", "value": "c", "if_version": 0}],
                   "unset": [{"name": "B", "if_version": 1}]}),
        );
        assert_eq!(st, 200, "{v}");
        assert_eq!((version_of(&v, "A"), version_of(&v, "C")), (2, 1));
        assert_eq!(names(&list(&srv, &org, ORG, false)), ["A", "C"]);
    });
}

#[test]
fn overrides_unset_fallback_expiry_and_secrets_versions() {
    on_each_backend(&[], |_, srv| {
        let (_op, org) = acme(&srv);
        let w = set(
            &srv,
            &org,
            ORG,
            &[("DB_URL", "org"), ("LOG", "info"), ("TTL", "org")],
        );
        assert_eq!(w["secrets_version"]["org"], 1);
        let w = set(&srv, &org, WEB, &[("DB_URL", "web")]);
        assert_eq!(w["secrets_version"]["apps"]["web"], 2, "org 1 + web 1");
        let (st, w) = write(
            &srv,
            &org,
            WEB,
            json!({"set": [{"name": "TTL", "value": "web", "expires_secs": 6}]}),
        );
        assert_eq!(st, 200, "{w}");
        let resolved = list(&srv, &org, WEB, true);
        assert_eq!(
            listed(&resolved),
            [
                ("DB_URL".into(), "web".into(), 1, false),
                ("LOG".into(), "org".into(), 1, false),
                ("TTL".into(), "web".into(), 1, false),
            ]
        );
        assert_eq!(resolved["secrets_version"], 3);
        // An org change moves every app's version.
        let w = set(&srv, &org, ORG, &[("LOG", "debug")]);
        assert_eq!(w["secrets_version"], json!({"org": 2, "apps": {"web": 4}}));
        // Expired: shown as such, and the org's TTL does not show through.
        let later = eventually("TTL to expire", WAIT, || {
            let v = list(&srv, &org, WEB, true);
            listed(&v).iter().any(|e| e.0 == "TTL" && e.3).then_some(v)
        });
        assert!(listed(&later).contains(&("TTL".into(), "web".into(), 1, true)));
        let table = srv.cli_ok(&org, &["secrets", "list", "--app", "web", "--resolved"]);
        assert!(
            table
                .lines()
                .any(|l| l.starts_with("TTL") && l.contains("EXPIRED")),
            "{table}"
        );
        // Unsetting the override lets the org's value through again (documented).
        srv.cli_ok(&org, &["secrets", "unset", "--app", "web", "DB_URL", "TTL"]);
        assert_eq!(
            listed(&list(&srv, &org, WEB, true)),
            [
                ("DB_URL".into(), "org".into(), 1, false),
                ("LOG".into(), "org".into(), 2, false),
                ("TTL".into(), "org".into(), 1, false),
            ]
        );
        // An app without secrets of its own sees the org's.
        assert_eq!(
            names(&list(&srv, &org, API, true)),
            ["DB_URL", "LOG", "TTL"]
        );
    });
}

#[test]
fn limits_are_clear_400s_and_writes_take_bigger_bodies() {
    on_each_backend(&[], |_, srv| {
        let (_op, org) = acme(&srv);
        let cases = [
            (
                json!({"set": [{"name": "X".repeat(129), "value": "v"}]}),
                "invalid secret name",
            ),
            (
                json!({"set": [{"name": "A-B", "value": "v"}]}),
                "invalid secret name",
            ),
            (
                json!({"set": [{"name": "BIG", "value": "x".repeat(64 * 1024 + 1)}]}),
                "at most 65536 bytes",
            ),
            (json!({"set": [{"name": "N", "value": "a\u{0}b"}]}), "NUL"),
            (
                json!({"set": [{"name": "E", "value": "v", "expires_secs": 0}]}),
                "expiry",
            ),
            (
                json!({"set": [{"name": "D", "value": "v", "description": "a\u{7}b"}]}),
                "description",
            ),
        ];
        for (body, says) in cases {
            let (st, v) = write(&srv, &org, ORG, body);
            assert_eq!(st, 400, "{v}");
            assert!(
                v["error"]["message"].as_str().unwrap().contains(says),
                "{v}"
            );
        }
        // 17 values of 63 KiB: a 1.1 MiB body is accepted by a write endpoint and
        // refused for the app's own cap (half an environment), not for its size; the
        // error names the limit, never a byte-exact total.
        let value = "x".repeat(63 * 1024);
        let many: Vec<Value> = (0..17)
            .map(|i| json!({"name": format!("V{i}"), "value": value}))
            .collect();
        let (st, v) = write(&srv, &org, WEB, json!({ "set": many }));
        assert_eq!(st, 400, "{v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("app web") && message.contains("512 KiB"),
            "{v}"
        );
        assert!(!message.contains("total"), "no byte-exact total: {v}");
        let (st, _) = write(&srv, &org, WEB, json!({ "set": many[..8] }));
        assert_eq!(st, 200);
        // Over 2 MiB: 413 on a write; every other endpoint keeps 64 KiB.
        let huge = "x".repeat(2 * 1024 * 1024 + 1);
        let (st, _) = srv.raw(
            "POST",
            ORG,
            &[
                ("authorization", &format!("Bearer {org}")),
                ("content-type", "application/json"),
            ],
            Some(huge.into_bytes()),
        );
        assert_eq!(st, 413);
        let body = serde_json::to_vec(&json!({"kind": "readonly", "name": "x".repeat(70 * 1024)}))
            .unwrap();
        let (st, _) = srv.raw(
            "POST",
            "/v1/orgs/acme/tokens",
            &[
                ("authorization", &format!("Bearer {org}")),
                ("content-type", "application/json"),
            ],
            Some(body),
        );
        assert_eq!(st, 413);
        let rollback =
            serde_json::to_vec(&json!({"version": 1, "pad": "x".repeat(70 * 1024)})).unwrap();
        let (st, _) = srv.raw(
            "POST",
            &format!("{WEB}/V1/rollback"),
            &[
                ("authorization", &format!("Bearer {org}")),
                ("content-type", "application/json"),
            ],
            Some(rollback),
        );
        assert_eq!(st, 413, "only the write endpoints take big bodies");
    });
}

/// (status, code) of every secrets endpoint for `token` in `scope`, about `name`.
fn each_endpoint(srv: &Server, token: &str, scope: &str, name: &str) -> Vec<(&'static str, u16)> {
    let t = Some(token);
    let set = json!({"set": [{"name": name, "value": "v"}]});
    let unset = json!({"unset": [{"name": name}]});
    vec![
        ("list", srv.http("GET", scope, t, None).0),
        (
            "get",
            srv.http("GET", &format!("{scope}/{name}"), t, None).0,
        ),
        (
            "history",
            srv.http("GET", &format!("{scope}/{name}/history"), t, None)
                .0,
        ),
        ("set", srv.http("POST", scope, t, Some(&set)).0),
        (
            "rollback",
            srv.http(
                "POST",
                &format!("{scope}/{name}/rollback"),
                t,
                Some(&json!({"version": 1})),
            )
            .0,
        ),
        ("unset", srv.http("POST", scope, t, Some(&unset)).0),
        (
            "destroy",
            srv.http(
                "POST",
                &format!("{scope}/{name}/destroy"),
                t,
                Some(&json!({"version": 1})),
            )
            .0,
        ),
    ]
}

fn allowed(results: &[(&'static str, u16)]) -> Vec<&'static str> {
    results.iter().filter(|r| r.1 != 403).map(|r| r.0).collect()
}

#[test]
fn presets_and_attenuations_on_each_endpoint() {
    on_each_backend(&[], |_, srv| {
        let (_op, org) = acme(&srv);
        let reset = |srv: &Server| {
            for scope in [ORG, WEB, API] {
                set(srv, &org, scope, &[("K", "v"), ("DB_URL", "v")]);
            }
        };
        reset(&srv);
        let readonly = mint(&srv, &org, "readonly", None);
        let deploy = mint(&srv, &org, "deploy", Some("web"));
        let runtime = mint(&srv, &org, "runtime", Some("web"));
        let reads = ["list", "get", "history"];
        let everything = [
            "list", "get", "history", "set", "rollback", "unset", "destroy",
        ];
        for scope in [ORG, WEB] {
            assert_eq!(
                allowed(&each_endpoint(&srv, &readonly, scope, "K")),
                reads,
                "readonly {scope}"
            );
            reset(&srv);
        }
        assert_eq!(
            allowed(&each_endpoint(&srv, &deploy, WEB, "K")),
            everything,
            "deploy, its app"
        );
        reset(&srv);
        assert!(
            allowed(&each_endpoint(&srv, &deploy, API, "K")).is_empty(),
            "deploy, another app"
        );
        assert!(
            allowed(&each_endpoint(&srv, &deploy, ORG, "K")).is_empty(),
            "deploy, the org's"
        );
        assert_eq!(
            allowed(&each_endpoint(&srv, &runtime, WEB, "K")),
            reads,
            "runtime, its app"
        );
        assert!(allowed(&each_endpoint(&srv, &runtime, API, "K")).is_empty());
        // The deploy token sees the org's secrets through its app, and no others.
        assert_eq!(names(&list(&srv, &deploy, WEB, true)), ["DB_URL", "K"]);

        // secret = narrows listings, writes and everything else.
        let narrow = only_secrets(&srv, &org, &["DB_*"]);
        assert_eq!(names(&list(&srv, &narrow, WEB, true)), ["DB_URL"]);
        assert_eq!(names(&list(&srv, &narrow, ORG, false)), ["DB_URL"]);
        assert_eq!(
            allowed(&each_endpoint(&srv, &narrow, WEB, "DB_URL")),
            everything
        );
        reset(&srv);
        assert_eq!(
            allowed(&each_endpoint(&srv, &narrow, WEB, "K")),
            ["list"],
            "only the listing, filtered"
        );
        // No existence oracle: an unknown name outside the patterns is 403 like a known one.
        let (st, v) = srv.http("GET", &format!("{WEB}/NO_SUCH"), Some(&narrow), None);
        assert_eq!((st, code(&v)), (403, "denied"), "{v}");
        let (st, _) = srv.http("GET", &format!("{WEB}/DB_NO_SUCH"), Some(&narrow), None);
        assert_eq!(st, 404);
        // A multi-name write with one name outside is refused whole.
        let count = |srv: &Server| {
            let (_, h) = srv.http("GET", &format!("{WEB}/DB_URL/history"), Some(&org), None);
            h["versions"].as_array().unwrap().len()
        };
        let before = count(&srv);
        let (st, _) = write(
            &srv,
            &narrow,
            WEB,
            json!({"set": [{"name": "DB_URL", "value": "x"}, {"name": "K", "value": "x"}]}),
        );
        assert_eq!(st, 403);
        assert_eq!(count(&srv), before, "nothing written");
        // Not about secrets: denied.
        for path in [
            "/v1/orgs/acme",
            "/v1/orgs/acme/tokens",
            "/v1/orgs/acme/keys",
            "/v1/orgs/acme/audit",
        ] {
            let (st, v) = srv.http("GET", path, Some(&narrow), None);
            assert_eq!(st, 403, "{path}: {v}");
        }
        // A readonly attenuation with secret = lists the matching names only.
        let ro_narrow = only_secrets(&srv, &readonly, &["K"]);
        assert_eq!(names(&list(&srv, &ro_narrow, WEB, true)), ["K"]);
        assert_eq!(allowed(&each_endpoint(&srv, &ro_narrow, WEB, "K")), reads);
        // /v1/verify tells a relying service the effective patterns.
        let narrower = only_secrets(&srv, &narrow, &["DB_URL", "API_*"]);
        let (st, v) = srv.http(
            "POST",
            "/v1/verify",
            None,
            Some(&json!({"token": narrower})),
        );
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["secrets"], json!([["DB_*"], ["API_*", "DB_URL"]]));
        let (_, v) = srv.http("POST", "/v1/verify", None, Some(&json!({"token": org})));
        assert!(v.get("secrets").is_none(), "no patterns: every name");
        let (_, v) = srv.http(
            "POST",
            "/v1/verify",
            None,
            Some(&json!({"token": narrow, "access": {"org": "acme", "app": "web", "resource": "secrets", "action": "read", "listing": true}})),
        );
        assert_eq!(v["allowed"], true, "{v}");
        let (_, v) = srv.http(
            "POST",
            "/v1/verify",
            None,
            Some(&json!({"token": narrow, "access": {"org": "acme", "resource": "tokens", "action": "read"}})),
        );
        assert_eq!(v["allowed"], false, "{v}");
    });
}

/// `needle` as it could appear: raw, or hex as PostgreSQL prints bytea.
fn leaks(hay: &[u8], needle: &str) -> bool {
    let hex: String = needle.bytes().map(|b| format!("{b:02x}")).collect();
    contains_bytes(hay, needle.as_bytes()) || contains_bytes(hay, hex.as_bytes())
}

#[test]
fn no_plaintext_in_logs_audit_or_storage() {
    on_each_backend(&[], |backend, srv| {
        let (_op, org) = acme(&srv);
        let values = [
            "pl41ntext-db-url-9f3c",
            "pl41ntext-api-key-77ab",
            "pl41ntext-stdin-c0de",
        ];
        set(
            &srv,
            &org,
            WEB,
            &[("DB_URL", values[0]), ("API_KEY", values[1])],
        );
        set(&srv, &org, ORG, &[("DB_URL", values[1])]);
        let (c, _, err) = srv.cli_stdin(
            &["secrets", "set", "STDIN_ONE=-"],
            &[("MACVAULT_TOKEN", &org)],
            values[2].as_bytes(),
        );
        assert_eq!(c, 0, "{err}");
        set(&srv, &org, WEB, &[("DB_URL", "next")]);
        srv.http(
            "POST",
            &format!("{WEB}/DB_URL/rollback"),
            Some(&org),
            Some(&json!({"version": 1})),
        );
        srv.http(
            "POST",
            &format!("{WEB}/API_KEY/destroy"),
            Some(&org),
            Some(&json!({"all": true})),
        );
        // Denied and failed attempts carrying values.
        let readonly = mint(&srv, &org, "readonly", None);
        write(
            &srv,
            &readonly,
            WEB,
            json!({"set": [{"name": "DB_URL", "value": values[0]}]}),
        );
        write(
            &srv,
            &org,
            WEB,
            json!({"set": [{"name": "DB_URL", "value": values[0], "if_version": 99}]}),
        );
        let (st, audit) = srv.http("GET", "/v1/orgs/acme/audit?limit=1000", Some(&org), None);
        assert_eq!(st, 200);
        let audit = audit.to_string();
        assert!(
            audit.contains("secret.set")
                && audit.contains("secret.destroy")
                && audit.contains("request.denied"),
            "{audit}"
        );
        let logs = srv.stop();
        for value in values {
            assert!(!audit.contains(value), "audit holds {value}");
            assert!(
                !leaks(logs.stderr.as_bytes(), value),
                "server log holds {value}"
            );
            assert!(
                !leaks(logs.stdout.as_bytes(), value),
                "server stdout holds {value}"
            );
        }
        match backend {
            Backend::Redb(dir) => {
                let file = std::fs::read(dir.join("macvault.redb")).unwrap();
                for value in values {
                    assert!(!leaks(&file, value), "the redb file holds {value}");
                }
            }
            Backend::Postgres(db) => {
                let tables = db.query_text(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
                );
                assert!(tables.len() >= 5, "{} tables", tables.len());
                for row in tables {
                    let table = String::from_utf8(row[0].clone().unwrap()).unwrap();
                    let dump = db.query_text(&format!("SELECT t::text FROM \"{table}\" t"));
                    let bytes: Vec<u8> = dump.into_iter().flatten().flatten().flatten().collect();
                    for value in values {
                        assert!(!leaks(&bytes, value), "table {table} holds {value}");
                    }
                }
            }
        }
    });
}
