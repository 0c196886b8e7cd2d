//! Names that change how programs load or run code (`secrets::loads_code`): a deploy
//! token may not write one, `run` and `export` pass one on only with `--allow`, with
//! one warning naming all they withheld, and `secrets withheld` lists them. End to end,
//! the Python and git ways from such a name to every value lead nowhere. Export in the
//! shell format is safe to source.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Server, acme, code, eventually};

const WEB: &str = "/v1/orgs/acme/apps/web/secrets";
const ORG: &str = "/v1/orgs/acme/secrets";

fn set(srv: &Server, tok: &str, scope: &str, pairs: &[(&str, &str)]) -> (u16, Value) {
    srv.set_secrets(tok, scope, pairs)
}

fn deploy(srv: &Server, org: &str) -> String {
    let body = json!({"kind": "deploy", "app": "web", "name": "ci"});
    let (st, v) = srv.http("POST", "/v1/orgs/acme/tokens", Some(org), Some(&body));
    assert_eq!(st, 201, "{v}");
    v["token"].as_str().unwrap().to_owned()
}

/// `macvault run --app web ARGS… -- CMD…` with `token`: (code, stdout, stderr).
fn run(srv: &Server, token: &str, args: &[&str], cmd: &[&str]) -> (i32, String, String) {
    let mut all = vec!["run", "--app", "web"];
    all.extend(args);
    all.push("--");
    all.extend(cmd);
    srv.cli(&all, &[("MACVAULT_TOKEN", token)])
}

#[test]
fn a_deploy_token_cannot_write_a_name_that_loads_code() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    let (_op, org) = acme(&srv);
    let ci = deploy(&srv, &org);
    for name in [
        "PYTHONWARNINGS",
        "BROWSER",
        "GIT_CONFIG_KEY_0",
        "path",
        "npm_config_x",
    ] {
        let (st, v) = set(&srv, &ci, WEB, &[(name, "x")]);
        assert_eq!((st, code(&v)), (403, "denied"), "{name}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("reveal the whole scope")
        );
    }
    // Data-only exceptions and ordinary names stay writable.
    let (st, v) = set(
        &srv,
        &ci,
        WEB,
        &[("NODE_ENV", "production"), ("DB_URL", "x")],
    );
    assert_eq!(st, 200, "{v}");
    // The org token may (it can reveal every value anyway).
    let (st, v) = set(&srv, &org, WEB, &[("PYTHONWARNINGS", "ignore")]);
    assert_eq!(st, 200, "{v}");
}

#[test]
fn run_withholds_such_names_with_one_warning_unless_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    let (_op, org) = acme(&srv);
    let pairs = [
        ("DB_URL", "db"),
        ("path", "/evil"),
        ("PERL5OPT", "-d"),
        ("NODE_ENV", "prod"),
    ];
    let (st, v) = set(&srv, &org, WEB, &pairs);
    assert_eq!(st, 200, "{v}");
    let (c, out, err) = run(&srv, &org, &[], &["env"]);
    assert_eq!(c, 0, "{err}");
    let vars: Vec<&str> = out.lines().collect();
    assert!(
        vars.contains(&"DB_URL=db") && vars.contains(&"NODE_ENV=prod"),
        "{out}"
    );
    assert!(!out.contains("/evil") && !out.contains("PERL5OPT"), "{out}");
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("not injected")).collect();
    assert_eq!(warnings.len(), 1, "one warning: {err}");
    assert!(
        warnings[0].contains("PERL5OPT") && warnings[0].contains("path"),
        "{err}"
    );
    let (c, out, err) = run(&srv, &org, &["--allow", "PERL5OPT"], &["env"]);
    assert_eq!(c, 0, "{err}");
    assert!(out.lines().any(|l| l == "PERL5OPT=-d"), "{out}");
    // `secrets withheld` lists them, per scope.
    let (st, v) = set(&srv, &org, ORG, &[("LD_PRELOAD", "/x.so")]);
    assert_eq!(st, 200, "{v}");
    let (c, out, err) = srv.cli(&["secrets", "withheld"], &[("MACVAULT_TOKEN", &org)]);
    assert_eq!(c, 0, "{err}");
    assert_eq!(out, "org: LD_PRELOAD\napp web: PERL5OPT, path\n");
}

/// Whether `path` appears within a few seconds (a program started in the background
/// writes it), for the control cases that show the attack works when allowed.
fn appears(path: &Path) {
    eventually(
        "the injected command to run",
        Duration::from_secs(30),
        || path.exists().then_some(()),
    );
}

#[test]
fn the_python_way_to_every_value_leads_nowhere() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    let (_op, org) = acme(&srv);
    let leak = tmp.path().join("python-leak");
    let browser = format!("/bin/sh -c \"env > {}\" %s", leak.display());
    let pairs = [
        ("PYTHONWARNINGS", "all:0:antigravity.x:0:0"),
        ("BROWSER", browser.as_str()),
        ("DB_URL", "the-value"),
    ];
    // A deploy token cannot plant it.
    let (st, _) = set(&srv, &deploy(&srv, &org), WEB, &pairs);
    assert_eq!(st, 403);
    // Planted by a token that could read everything anyway, run still withholds it.
    let (st, v) = set(&srv, &org, WEB, &pairs);
    assert_eq!(st, 200, "{v}");
    let (c, _, err) = run(&srv, &org, &[], &["python3", "-c", "pass"]);
    assert_eq!(c, 0, "{err}");
    assert!(!leak.exists(), "python ran the injected command");
    // Control: allowed, the same names do make python run it (so the case is real).
    let allow = ["--allow", "PYTHONWARNINGS", "--allow", "BROWSER"];
    let (c, _, err) = run(&srv, &org, &allow, &["python3", "-c", "pass"]);
    assert_eq!(c, 0, "{err}");
    appears(&leak);
}

#[test]
fn the_git_way_to_every_value_leads_nowhere() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    let (_op, org) = acme(&srv);
    let repo = tmp.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    let ok = std::process::Command::new("git")
        .args(["init", "-q"])
        .current_dir(&repo)
        .status()
        .unwrap();
    assert!(ok.success(), "git init");
    let leak = tmp.path().join("git-leak");
    let hook = format!("env > {}; false", leak.display());
    let pairs = [
        ("GIT_CONFIG_COUNT", "1"),
        ("GIT_CONFIG_KEY_0", "core.fsmonitor"),
        ("GIT_CONFIG_VALUE_0", hook.as_str()),
    ];
    let (st, _) = set(&srv, &deploy(&srv, &org), WEB, &pairs);
    assert_eq!(st, 403);
    let (st, v) = set(&srv, &org, WEB, &pairs);
    assert_eq!(st, 200, "{v}");
    let git = ["git", "-C", repo.to_str().unwrap(), "status", "--short"];
    let (c, _, err) = run(&srv, &org, &[], &git);
    assert_eq!(c, 0, "{err}");
    // git runs the monitor before it answers: had it run, the file would be there now.
    assert!(!leak.exists(), "git ran the injected command");
    let mut allow = Vec::new();
    for (name, _) in pairs {
        allow.extend(["--allow", name]);
    }
    let (_, _, _) = run(&srv, &org, &allow, &git);
    appears(&leak);
}

#[test]
fn export_in_the_shell_format_is_safe_to_source_and_withholds_code_names() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    let (_op, org) = acme(&srv);
    let pwned = tmp.path().join("pwned");
    let p = pwned.display();
    let hostile = [
        ("SUBST", format!("$(touch {p})")),
        ("TICKS", format!("`touch {p}`")),
        ("QUOTES", "it's \"quoted\" ''".to_owned()),
        ("LINES", "one\ntwo\n".to_owned()),
        ("SLASH", "back\\slash \\n \\'".to_owned()),
        ("DOLLAR", "$HOME ${HOME} $1".to_owned()),
    ];
    let pairs: Vec<(&str, &str)> = hostile.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let (st, v) = set(&srv, &org, WEB, &pairs);
    assert_eq!(st, 200, "{v}");
    let (st, v) = set(&srv, &org, WEB, &[("LD_PRELOAD", "/evil.so")]);
    assert_eq!(st, 200, "{v}");
    let args = ["secrets", "export", "--app", "web", "--format", "shell"];
    let (c, out, err) = srv.cli(&args, &[("MACVAULT_TOKEN", &org)]);
    assert_eq!(c, 0, "{err}");
    assert!(
        err.contains("not exported") && err.contains("LD_PRELOAD"),
        "{err}"
    );
    assert!(!out.contains("LD_PRELOAD"), "{out}");
    let file = tmp.path().join("exported.sh");
    std::fs::write(&file, &out).unwrap();
    // Sourced as the issue tried it; python prints what the shell ended up with.
    let names: Vec<&str> = hostile.iter().map(|(n, _)| *n).collect();
    let show =
        format!("import json, os; print(json.dumps({{n: os.environ.get(n) for n in {names:?}}}))");
    let sourced = std::process::Command::new("sh")
        .args(["-c", "set -a; . \"$1\"; exec python3 -c \"$2\"", "sh"])
        .arg(&file)
        .arg(&show)
        .output()
        .unwrap();
    assert!(
        sourced.status.success(),
        "{}",
        String::from_utf8_lossy(&sourced.stderr)
    );
    let got: Value = serde_json::from_slice(&sourced.stdout).unwrap();
    let want: Value = hostile
        .iter()
        .map(|(n, v)| (n.to_string(), json!(v)))
        .collect();
    assert_eq!(got, want, "sourcing gives exactly the stored values");
    assert!(!pwned.exists(), "sourcing ran a command");
    // --allow exports it.
    let mut allowed = args.to_vec();
    allowed.extend(["--allow", "LD_PRELOAD"]);
    let (c, out, err) = srv.cli(&allowed, &[("MACVAULT_TOKEN", &org)]);
    assert_eq!(c, 0, "{err}");
    assert!(out.contains("LD_PRELOAD='/evil.so'"), "{out}");
}

#[test]
fn an_org_token_may_allow_a_name_for_deploy_tokens_and_run_then_injects_it() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    let (_op, org) = acme(&srv);
    let ci = deploy(&srv, &org);
    let cli = |token: &str, args: &[&str]| {
        let mut all = vec!["secrets", "allow-env", "--app", "web"];
        all.extend(args);
        srv.cli(&all, &[("MACVAULT_TOKEN", token)])
    };
    // Neither the deploy token nor a narrowed copy of the org token may open the door.
    let (c, _, err) = cli(&ci, &["NODE_OPTIONS"]);
    assert_eq!(c, 1, "{err}");
    assert!(err.contains("only an org token as minted"), "{err}");
    let narrowed = srv.cli_ok(&org, &["tokens", "attenuate", "--expiry", "1h"]);
    let (c, _, err) = cli(narrowed.trim(), &["NODE_OPTIONS"]);
    assert_eq!(c, 1, "{err}");
    // Only names that load code are listed.
    let (c, _, err) = cli(&org, &["DB_URL"]);
    assert_eq!(c, 5, "{err}");
    assert!(err.contains("does not load code"), "{err}");
    // The org token as minted may; the list is answered, and audited.
    let (c, out, err) = cli(&org, &["NODE_OPTIONS"]);
    assert_eq!((c, out.as_str()), (0, "app web: NODE_OPTIONS\n"), "{err}");
    let (_, audit) = srv.http(
        "GET",
        "/v1/orgs/acme/audit?action=secret.allow_env",
        Some(&org),
        None,
    );
    assert!(
        audit
            .to_string()
            .contains("allowed deploy tokens to write NODE_OPTIONS in app web"),
        "{audit}"
    );
    // Now the deploy token may write that name (not another), and run injects it.
    let (st, v) = set(
        &srv,
        &ci,
        WEB,
        &[("NODE_OPTIONS", "--max-old-space-size=512")],
    );
    assert_eq!(st, 200, "{v}");
    let (st, _) = set(&srv, &ci, WEB, &[("NODE_PATH", "/x")]);
    assert_eq!(st, 403);
    let (c, out, err) = run(&srv, &org, &[], &["env"]);
    assert_eq!(c, 0, "{err}");
    assert!(
        out.lines()
            .any(|l| l == "NODE_OPTIONS=--max-old-space-size=512"),
        "{out}"
    );
    assert!(!err.contains("not injected"), "{err}");
    // Taken off the list: refused again, and withheld again.
    let (c, out, err) = cli(&org, &["--remove", "NODE_OPTIONS"]);
    assert_eq!(
        (c, out.as_str()),
        (
            0,
            "app web: no name that loads code is allowed for deploy tokens\n"
        ),
        "{err}"
    );
    let (st, _) = set(&srv, &ci, WEB, &[("NODE_OPTIONS", "--inspect")]);
    assert_eq!(st, 403);
    let (_, out, err) = run(&srv, &org, &[], &["env"]);
    assert!(
        !out.contains("NODE_OPTIONS") && err.contains("NODE_OPTIONS"),
        "{out}{err}"
    );
}
