//! Delivering secrets through the real binary: reveal (who may, what it shows, long
//! polls woken locally and from another node), `macvault run` (environment, refusals,
//! exit codes, signals, retries, `--watch`), import and export against python-dotenv,
//! and a key rotation interrupted by SIGKILL.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::secrets::{Backend, on_each_backend};
use crate::support::pg::{Proxy, TestDb};
use crate::support::{BIN, Server, acme, code, eventually, s};

const WAIT: Duration = Duration::from_secs(60);
const WEB: &str = "/v1/orgs/acme/apps/web/secrets";
const ORG: &str = "/v1/orgs/acme/secrets";

fn set(srv: &Server, tok: &str, scope: &str, pairs: &[(&str, &str)]) -> Value {
    let (st, v) = srv.set_secrets(tok, scope, pairs);
    assert_eq!(st, 200, "{v}");
    v
}

fn reveal(srv: &Server, tok: &str, query: &str) -> (u16, Value) {
    srv.http("POST", &format!("{WEB}/reveal{query}"), Some(tok), None)
}

fn mint(srv: &Server, by: &str, kind: &str, app: Option<&str>) -> String {
    let mut body = json!({"kind": kind, "name": kind});
    if let Some(app) = app {
        body["app"] = json!(app);
    }
    let (st, v) = srv.http("POST", "/v1/orgs/acme/tokens", Some(by), Some(&body));
    assert_eq!(st, 201, "{v}");
    s(&v, "token").to_owned()
}

fn attenuate(srv: &Server, token: &str, args: &[&str]) -> String {
    let mut all = vec!["tokens", "attenuate"];
    all.extend(args);
    srv.cli_ok(token, &all).trim().to_owned()
}

#[test]
fn reveal_is_for_runtime_and_org_tokens_only_and_narrows_by_name() {
    on_each_backend(&[], |_, srv| {
        let (_op, org) = acme(&srv);
        set(
            &srv,
            &org,
            ORG,
            &[("SHARED", "org-value"), ("DB_URL", "org-db")],
        );
        set(&srv, &org, WEB, &[("DB_URL", "web-db"), ("API_KEY", "key")]);
        let (st, w) = srv.http(
            "POST",
            WEB,
            Some(&org),
            Some(
                &json!({"set": [{"name": "OLD", "value": "x", "expires_secs": 1},
                                  {"name": "SOON", "value": "y", "expires_secs": 3 * 86400}]}),
            ),
        );
        assert_eq!(st, 200, "{w}");
        let runtime = mint(&srv, &org, "runtime", Some("web"));
        let deploy = mint(&srv, &org, "deploy", Some("web"));
        let readonly = mint(&srv, &org, "readonly", None);
        let other_runtime = mint(&srv, &org, "runtime", Some("api"));
        let expected =
            json!({"API_KEY": "key", "DB_URL": "web-db", "SHARED": "org-value", "SOON": "y"});
        let got = eventually("OLD to expire", WAIT, || {
            let (st, v) = reveal(&srv, &runtime, "");
            assert_eq!(st, 200, "{v}");
            (v["expired"] == json!(["OLD"])).then_some(v)
        });
        assert_eq!(got["secrets"], expected);
        assert_eq!(got["expiring"][0]["name"], "SOON");
        let (st, v) = reveal(&srv, &org, "");
        assert_eq!((st, &v["secrets"]), (200, &expected));
        // Never to deploy or readonly, nor to attenuations of them, nor another app's.
        let deploy_narrow = attenuate(&srv, &deploy, &["--secret", "DB_*"]);
        let readonly_web = attenuate(&srv, &readonly, &["--app", "web"]);
        for (who, token) in [
            ("deploy", &deploy),
            ("readonly", &readonly),
            ("deploy narrowed", &deploy_narrow),
            ("readonly for web", &readonly_web),
            ("runtime of api", &other_runtime),
        ] {
            let (st, v) = reveal(&srv, token, "");
            assert_eq!((st, code(&v)), (403, "denied"), "{who}: {v}");
            assert!(!v.to_string().contains("web-db"), "{who}");
        }
        // secret = narrows what is revealed.
        let narrow = attenuate(&srv, &runtime, &["--secret", "DB_*"]);
        let (_, v) = reveal(&srv, &narrow, "");
        assert_eq!(v["secrets"], json!({"DB_URL": "web-db"}));
        // Every reveal is in the audit log with its names, never its values.
        let (_, audit) = srv.http(
            "GET",
            "/v1/orgs/acme/audit?action=secret.reveal",
            Some(&org),
            None,
        );
        let text = audit.to_string();
        assert!(
            text.contains("revealed 1 secret(s) of app web of org acme") && text.contains("DB_URL"),
            "{text}"
        );
        let logs = srv.stop();
        for value in ["web-db", "org-value", "org-db"] {
            assert!(!text.contains(value), "audit holds {value}");
            assert!(
                !logs.stderr.contains(value) && !logs.stdout.contains(value),
                "logs hold {value}"
            );
        }
    });
}

#[test]
fn min_version_waits_is_woken_by_a_write_and_times_out_at_its_cap() {
    on_each_backend(&["--request-timeout", "2s"], |_, srv| {
        let (_op, org) = acme(&srv);
        let v = set(&srv, &org, WEB, &[("A", "1")]);
        let version = v["secrets_version"]["apps"]["web"].as_u64().unwrap();
        // Already there: at once.
        let (st, r) = reveal(&srv, &org, &format!("?min_version={version}"));
        assert_eq!((st, r["secrets_version"].as_u64()), (200, Some(version)));
        // Waits past --request-timeout (2 s) for a write made meanwhile: the write
        // comes once the poll is parked and more than 2 s old.
        let started = std::time::Instant::now();
        let waiter = srv.long_poll(&format!("{WEB}/reveal?min_version={}", version + 1), &org);
        if let Some(rest) = Duration::from_secs(3).checked_sub(started.elapsed()) {
            std::thread::sleep(rest); // time passing is what is tested, not a hand-off
        }
        set(&srv, &org, ORG, &[("B", "2")]);
        let (_, woken) = waiter.join().unwrap();
        assert_eq!(woken["secrets"], json!({"A": "1", "B": "2"}), "{woken}");
        assert!(woken["secrets_version"].as_u64().unwrap() > version);
        // Nothing changes: answered at the cap (30 s) with the version it has.
        let (_, r) = srv
            .long_poll(&format!("{WEB}/reveal?min_version=1000"), &org)
            .join()
            .unwrap();
        assert!(r["secrets_version"].as_u64().unwrap() < 1000, "{r}");
        assert_eq!(r["secrets"]["A"], "1");
    });
}

#[test]
fn a_long_poll_is_woken_by_a_write_on_another_node() {
    let Some(db) = TestDb::create() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("master.key");
    let key_arg = key.to_str().unwrap();
    let a = Server::start_with(
        &tmp.path().join("a"),
        &["--database", &db.url, "--master-key-file", key_arg],
    );
    let b = Server::start_with(
        &tmp.path().join("b"),
        &["--database", &db.url, "--master-key-file", key_arg],
    );
    let (_op, org) = acme(&a);
    let v = set(&a, &org, WEB, &[("A", "1")]);
    let version = v["secrets_version"]["apps"]["web"].as_u64().unwrap();
    let waiter = a.long_poll(&format!("{WEB}/reveal?min_version={}", version + 1), &org);
    set(&b, &org, WEB, &[("A", "from-b")]);
    let (_, woken) = waiter.join().unwrap();
    assert_eq!(woken["secrets"]["A"], "from-b", "{woken}");
}

/// Runs `macvault run` with `env` and `args`; (code, stdout, stderr).
fn run(srv: &Server, env: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["run"];
    all.extend(args);
    srv.cli(&all, env)
}

#[test]
fn run_injects_the_environment_with_its_rules_and_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    let (_op, org) = acme(&srv);
    set(
        &srv,
        &org,
        ORG,
        &[
            ("SHARED", "org"),
            ("HOME_DIR", "from-secret"),
            ("LD_PRELOAD", "/evil.so"),
            ("NODE_OPTIONS", "--require /evil.js"),
            ("PATH", "/evil"),
        ],
    );
    set(&srv, &org, WEB, &[("DB_URL", "web-db")]);
    let runtime = mint(&srv, &org, "runtime", Some("web"));
    let env = [
        ("MACVAULT_TOKEN", runtime.as_str()),
        ("HOME_DIR", "inherited"),
    ];
    // The child's environment.
    let (c, out, err) = run(&srv, &env, &["--app", "web", "--", "env"]);
    assert_eq!(c, 0, "{err}");
    let vars: BTreeMap<&str, &str> = out.lines().filter_map(|l| l.split_once('=')).collect();
    assert_eq!(vars.get("DB_URL"), Some(&"web-db"));
    assert_eq!(vars.get("SHARED"), Some(&"org"));
    assert_eq!(vars.get("HOME_DIR"), Some(&"from-secret"), "replaced");
    assert!(
        !vars.contains_key("MACVAULT_TOKEN"),
        "the token is not passed on"
    );
    assert!(!vars.contains_key("LD_PRELOAD") && !vars.contains_key("NODE_OPTIONS"));
    assert_ne!(vars.get("PATH"), Some(&"/evil"));
    let warning = err
        .lines()
        .find(|l| l.contains("not injected"))
        .unwrap_or("");
    for name in ["LD_PRELOAD", "NODE_OPTIONS", "PATH"] {
        assert!(warning.contains(name), "{err}");
    }
    // --preserve-env, --prefix, --allow, --pass-token.
    let (_, out, _) = run(&srv, &env, &["--app", "web", "--preserve-env", "--", "env"]);
    assert!(out.lines().any(|l| l == "HOME_DIR=inherited"), "{out}");
    let (_, out, _) = run(
        &srv,
        &env,
        &["--app", "web", "--prefix", "APP_", "--", "env"],
    );
    assert!(
        out.lines().any(|l| l == "APP_DB_URL=web-db")
            && out.lines().any(|l| l == "APP_LD_PRELOAD=/evil.so"),
        "{out}"
    );
    let (_, out, _) = run(
        &srv,
        &env,
        &[
            "--app",
            "web",
            "--allow",
            "NODE_OPTIONS",
            "--pass-token",
            "--",
            "env",
        ],
    );
    assert!(
        out.lines().any(|l| l == "NODE_OPTIONS=--require /evil.js"),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("MACVAULT_TOKEN=")),
        "{out}"
    );
    // The command's own status; 126 and 127; a signal kills as it would.
    let (c, _, _) = run(&srv, &env, &["--app", "web", "--", "sh", "-c", "exit 42"]);
    assert_eq!(c, 42);
    let (c, _, err) = run(
        &srv,
        &env,
        &["--app", "web", "--", "no-such-command-anywhere"],
    );
    assert_eq!(c, 127, "{err}");
    let (c, _, err) = run(
        &srv,
        &env,
        &["--app", "web", "--", tmp.path().to_str().unwrap()],
    );
    assert_eq!(c, 126, "{err}");
    let status = Command::new(BIN)
        .args(["run", "--app", "web", "--", "sh", "-c", "kill -TERM $$"])
        .env("MACVAULT_URL", srv.url())
        .env("MACVAULT_TOKEN", &runtime)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(15),
        "exec'd: the signal is CMD's"
    );
    // 125: macvault's own failures (a deploy token may not reveal).
    let deploy = mint(&srv, &org, "deploy", Some("web"));
    let (c, _, err) = run(
        &srv,
        &[("MACVAULT_TOKEN", &deploy)],
        &["--app", "web", "--", "true"],
    );
    assert_eq!(c, 125, "{err}");
    assert!(err.contains("does not allow reveal"), "{err}");
    let logs = srv.stop();
    for value in ["web-db", "/evil.so", "from-secret"] {
        assert!(!logs.stderr.contains(value), "server log holds {value}");
    }
}

#[test]
fn run_retries_an_unreachable_server_then_gives_up() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    let (_op, org) = acme(&srv);
    set(&srv, &org, WEB, &[("DB_URL", "web-db")]);
    let target = srv.url().trim_start_matches("http://").parse().unwrap();
    let proxy = Proxy::start(target);
    proxy.cut();
    let url = format!("http://{}", proxy.addr());
    let child = Command::new(BIN)
        .args([
            "run",
            "--app",
            "web",
            "--timeout",
            "60s",
            "--",
            "sh",
            "-c",
            "echo $DB_URL",
        ])
        .env("MACVAULT_URL", &url)
        .env("MACVAULT_TOKEN", &org)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // It has met the cut twice (a first try and a retry) before the way opens.
    eventually("run to retry", Duration::from_secs(60), || {
        (proxy.refused() >= 2).then_some(())
    });
    proxy.restore();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "web-db");
    // Never reachable: it gives up after --timeout, without starting the command.
    proxy.cut();
    let out = Command::new(BIN)
        .args([
            "run",
            "--app",
            "web",
            "--timeout",
            "2s",
            "--",
            "sh",
            "-c",
            "echo started",
        ])
        .env("MACVAULT_URL", &url)
        .env("MACVAULT_TOKEN", &org)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("started"));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("gave up after 2s"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn run_watch_restarts_on_a_change_and_forwards_signals() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    let (_op, org) = acme(&srv);
    set(&srv, &org, WEB, &[("GREETING", "one")]);
    let log = tmp.path().join("child.log");
    let script = format!(
        "trap 'echo \"term $GREETING\" >> {log}; exit 3' TERM; echo \"start $GREETING\" >> {log}; while :; do sleep 0.05; done",
        log = log.display()
    );
    let mut child = Command::new(BIN)
        .args([
            "run", "--app", "web", "--watch", "--grace", "5s", "--", "sh", "-c", &script,
        ])
        .env("MACVAULT_URL", srv.url())
        .env("MACVAULT_TOKEN", &org)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    eventually("the first start", WAIT, || {
        read().contains("start one").then_some(())
    });
    set(&srv, &org, WEB, &[("GREETING", "two")]);
    eventually("a restart with the new value", WAIT, || {
        read().contains("start two").then_some(())
    });
    assert!(
        read().contains("term one"),
        "stopped with SIGTERM first: {}",
        read()
    );
    // SIGTERM to run goes to the command, whose status run then exits with.
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3));
    assert!(read().contains("term two"), "{}", read());
}

#[test]
fn run_watch_restarts_only_when_the_environment_differs_or_a_blind_writer_wrote() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    let (_op, org) = acme(&srv);
    set(
        &srv,
        &org,
        WEB,
        &[("GREETING", "one"), ("OVERRIDDEN", "app")],
    );
    set(&srv, &org, ORG, &[("OVERRIDDEN", "org")]);
    let deploy = mint(&srv, &org, "deploy", Some("web"));
    let (log, err) = (tmp.path().join("child.log"), tmp.path().join("run.err"));
    let script = format!(
        "echo \"start $GREETING $OVERRIDDEN\" >> {log}; exec sleep 600",
        log = log.display()
    );
    let mut child = Command::new(BIN)
        .args(["run", "--app", "web", "--watch", "--", "sh", "-c", &script])
        .env("MACVAULT_URL", srv.url())
        .env("MACVAULT_TOKEN", &org)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let starts = || std::fs::read_to_string(&log).unwrap_or_default();
    let passed = || {
        std::fs::read_to_string(&err)
            .unwrap_or_default()
            .matches("not what the command gets: not restarting")
            .count()
    };
    let started = |n: usize| {
        eventually(&format!("start {n}"), WAIT, || {
            (starts().lines().count() == n).then_some(())
        });
    };
    started(1);
    // A new description: a new version, the same environment.
    let cli = |token: &str, args: &[&str]| srv.cli_ok(token, args);
    cli(
        &org,
        &[
            "secrets",
            "set",
            "--app",
            "web",
            "GREETING=one",
            "--description",
            "hi",
        ],
    );
    eventually("the description passed over", WAIT, || {
        (passed() == 1).then_some(())
    });
    // The org's value of a name the app overrides.
    cli(&org, &["secrets", "set", "OVERRIDDEN=org2"]);
    eventually("the hidden org value passed over", WAIT, || {
        (passed() == 2).then_some(())
    });
    // The same value written by a token that may not read it: a restart all the same,
    // so the writer cannot tell that it guessed right.
    cli(&deploy, &["secrets", "set", "--app", "web", "GREETING=one"]);
    started(2);
    // A real change.
    cli(&org, &["secrets", "set", "--app", "web", "GREETING=two"]);
    started(3);
    assert_eq!(
        starts().lines().collect::<Vec<_>>(),
        ["start one app", "start one app", "start two app"]
    );
    assert_eq!(passed(), 2, "{}", std::fs::read_to_string(&err).unwrap());
    // SIGTERM to run goes on to the command, so nothing is left running.
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    child.wait().unwrap();
}

/// python-dotenv 1.2.4 from PyPI.
fn python_dotenv() -> std::path::PathBuf {
    crate::support::python_package("python-dotenv==1.2.4", "dotenv")
}

fn dotenv_values(file: &Path) -> Value {
    crate::support::python_json(
        python_dotenv(),
        "import json, sys\nfrom dotenv import dotenv_values\nprint(json.dumps(dotenv_values(sys.argv[1], interpolate=False)))",
        file,
    )
}

#[test]
fn import_reads_what_python_dotenv_reads_and_export_round_trips() {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dotenv/every-case.env");
    let python = dotenv_values(&fixture);
    assert_eq!(
        python.as_object().unwrap().len(),
        23,
        "the fixture's cases: {python}"
    );
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    let (_op, org) = acme(&srv);
    let f = fixture.to_str().unwrap();
    srv.cli_ok(&org, &["secrets", "import", "--app", "web", f]);
    let exported = srv.cli_json(
        &org,
        &["secrets", "export", "--app", "web", "--format", "json"],
    );
    assert_eq!(
        exported, python,
        "import reads the values python-dotenv reads"
    );
    // Export as .env; python-dotenv and import read it back the same.
    let dotenv = srv.cli_ok(&org, &["secrets", "export", "--app", "web"]);
    let file = tmp.path().join("exported.env");
    std::fs::write(&file, &dotenv).unwrap();
    assert_eq!(dotenv_values(&file), python);
    srv.cli_ok(
        &org,
        &["secrets", "import", "--app", "api", file.to_str().unwrap()],
    );
    let (_, api) = srv.http(
        "POST",
        "/v1/orgs/acme/apps/api/secrets/reveal",
        Some(&org),
        None,
    );
    assert_eq!(api["secrets"], python);

    // A dry run writes nothing, and to a deploy token says only "would set".
    let changed = tmp.path().join("changed.env");
    std::fs::write(&changed, "PLAIN=value\nEMPTY=now set\nNEW=1\n").unwrap();
    let before = srv.http("GET", WEB, Some(&org), None).1;
    let deploy = mint(&srv, &org, "deploy", Some("web"));
    let c = changed.to_str().unwrap();
    let dry = srv.cli_json(
        &deploy,
        &[
            "secrets",
            "import",
            "--app",
            "web",
            c,
            "--dry-run",
            "--json",
        ],
    );
    let would: Vec<(&str, &str)> = dry["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["would"].as_str().unwrap()))
        .collect();
    assert_eq!(would, [("PLAIN", "set"), ("EMPTY", "set"), ("NEW", "add")]);
    let dry = srv.cli_json(
        &org,
        &[
            "secrets",
            "import",
            "--app",
            "web",
            c,
            "--dry-run",
            "--json",
        ],
    );
    let would: Vec<&str> = dry["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["would"].as_str().unwrap())
        .collect();
    assert_eq!(would, ["unchanged", "change", "add"]);
    assert_eq!(
        srv.http("GET", WEB, Some(&org), None).1,
        before,
        "nothing written"
    );
    // A file that does not parse names its line and writes nothing.
    let bad = tmp.path().join("bad.env");
    std::fs::write(&bad, "OK=1\nBROKEN=\"never closed\n").unwrap();
    let (code, _, err) = srv.cli(
        &["secrets", "import", "--app", "web", bad.to_str().unwrap()],
        &[("MACVAULT_TOKEN", &org)],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn rotating_the_secrets_key_survives_a_sigkill_and_retires_the_old_key() {
    on_each_backend(
        &[
            "--rewrap-batch",
            "20",
            // An hour between pages: the rotation is surely still under way when the
            // server is killed (the restart below pages without a pause).
            "--rewrap-pause",
            "1h",
            "--max-versions",
            "1000",
        ],
        |backend, srv| {
            let (_op, org) = acme(&srv);
            // 60 secrets with 20 versions each: 1,200 data keys to re-wrap, 60 pages.
            for round in 0..20 {
                let set_: Vec<Value> = (0..60)
                    .map(|i| json!({"name": format!("S{i:02}"), "value": format!("v{round}-{i}")}))
                    .collect();
                let (st, v) = srv.http("POST", WEB, Some(&org), Some(&json!({ "set": set_ })));
                assert_eq!(st, 200, "{v}");
            }
            let (st, status) =
                srv.http("POST", "/v1/orgs/acme/secrets-key/rotate", Some(&org), None);
            assert_eq!((st, &status["keys"]), (200, &json!([1, 2])), "{status}");
            // Reads and writes go on meanwhile.
            for i in 0..5 {
                let (st, r) = srv.http("POST", &format!("{WEB}/reveal"), Some(&org), None);
                assert_eq!(st, 200, "{r}");
                assert_eq!(r["secrets"]["S00"], "v19-0");
                set(&srv, &org, WEB, &[("DURING", &format!("d{i}"))]);
            }
            let (st, mid) = srv.http("GET", "/v1/orgs/acme/secrets-key", Some(&org), None);
            assert_eq!(
                (st, mid["rotating"].as_bool()),
                (200, Some(true)),
                "still under way: {mid}"
            );
            let (dir, args) = (
                srv.data_dir().to_owned(),
                srv.args()
                    .iter()
                    .map(|&a| if a == "1h" { "0s" } else { a }.to_owned())
                    .collect::<Vec<_>>(),
            );
            srv.kill();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let srv = Server::start_with(&dir, &args);
            // The restart resumes it; it ends with the old key gone.
            eventually("the rotation to finish", Duration::from_secs(120), || {
                let (_, s) = srv.http("GET", "/v1/orgs/acme/secrets-key", Some(&org), None);
                (s["keys"] == json!([2])).then_some(())
            });
            let (_, r) = srv.http("POST", &format!("{WEB}/reveal"), Some(&org), None);
            for i in 0..60 {
                assert_eq!(r["secrets"][format!("S{i:02}")], format!("v19-{i}"), "{r}");
            }
            assert_eq!(r["secrets"]["DURING"], "d4");
            // Every old version opens too (a rollback reads one), under the new key.
            let (st, v) = srv.http(
                "POST",
                &format!("{WEB}/S07/rollback"),
                Some(&org),
                Some(&json!({"version": 3})),
            );
            assert_eq!(st, 200, "{v}");
            let (_, r) = srv.http("POST", &format!("{WEB}/reveal"), Some(&org), None);
            assert_eq!(r["secrets"]["S07"], "v2-7");
            let logs = srv.stop();
            assert!(!logs.stderr.contains("v19-"), "no value in the log");
            if let Backend::Postgres(db) = backend {
                let rows = db.query_text("SELECT count(*) FROM macvault_leases");
                assert_eq!(
                    rows[0][0].as_deref(),
                    Some(&b"0"[..]),
                    "the lease is given up"
                );
            }
        },
    );
}
