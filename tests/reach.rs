//! A token's reach ends when it is revoked or expires, also for requests under way: a
//! long poll that wakes rechecks its token; `run --watch` stops watching on a token the
//! server no longer takes (re-reading its file first) and does with the command what
//! `--on-revoke` says; the child gets exactly the token `run` used, or none.

use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::secrets::on_each_backend;
use crate::support::{BIN, Server, acme, code, eventually, s};

const WEB: &str = "/v1/orgs/acme/apps/web/secrets";
const WAIT: Duration = Duration::from_secs(60);

/// Sets `pairs` in web with `tok`; web's secrets version after.
fn set(srv: &Server, tok: &str, pairs: &[(&str, &str)]) -> u64 {
    let (st, v) = srv.set_secrets(tok, WEB, pairs);
    assert_eq!(st, 200, "{v}");
    v["secrets_version"]["apps"]["web"].as_u64().unwrap()
}

/// A runtime token for web: (token, id).
fn runtime(srv: &Server, org: &str, expiry_secs: u64) -> (String, String) {
    let body = json!({"kind": "runtime", "app": "web", "name": "rt", "expiry_secs": expiry_secs});
    let (st, v) = srv.http("POST", "/v1/orgs/acme/tokens", Some(org), Some(&body));
    assert_eq!(st, 201, "{v}");
    (s(&v, "token").to_owned(), s(&v["record"], "id").to_owned())
}

fn revoke(srv: &Server, org: &str, id: &str) {
    let (st, v) = srv.http("POST", &format!("/v1/tokens/{id}/revoke"), Some(org), None);
    assert_eq!(st, 200, "{v}");
}

/// How many reveals the audit log holds.
fn reveals(srv: &Server, org: &str) -> usize {
    let (st, v) = srv.http(
        "GET",
        "/v1/orgs/acme/audit?action=secret.reveal",
        Some(org),
        None,
    );
    assert_eq!(st, 200, "{v}");
    v.to_string().matches("revealed ").count()
}

#[test]
fn a_long_poll_woken_after_its_token_is_revoked_answers_401_and_reveals_nothing() {
    on_each_backend(&[], |_, srv| {
        let (_op, org) = acme(&srv);
        let version = set(&srv, &org, &[("A", "1")]);
        let (rt, id) = runtime(&srv, &org, 3600);
        let before = reveals(&srv, &org);
        let waiter = srv.long_poll(&format!("{WEB}/reveal?min_version={}", version + 1), &rt);
        revoke(&srv, &org, &id);
        // The revocation itself wakes the poll (no write needed), and it says 401.
        let (st, v) = waiter.join().unwrap();
        assert_eq!((st, code(&v)), (401, "revoked"), "{v}");
        // A write after the revocation reveals nothing to it either.
        set(&srv, &org, &[("A", "2")]);
        assert_eq!(reveals(&srv, &org), before, "no reveal audited");
    });
}

#[test]
fn a_long_poll_outliving_its_token_answers_401_at_its_expiry() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    let (_op, org) = acme(&srv);
    let version = set(&srv, &org, &[("A", "1")]);
    // Ten seconds: time enough to park the poll; it then ends at the expiry, not at
    // the 30 s cap, with 401.
    let (rt, _) = runtime(&srv, &org, 10);
    let before = reveals(&srv, &org);
    let (st, v) = srv
        .long_poll(&format!("{WEB}/reveal?min_version={}", version + 1), &rt)
        .join()
        .unwrap();
    assert_eq!((st, code(&v)), (401, "expired"), "{v}");
    assert_eq!(reveals(&srv, &org), before, "no reveal audited");
}

/// `run --watch` of a child that logs its starts and stops, with a TERM trap (exit 3);
/// its stderr collected as it comes.
struct Watched {
    child: Child,
    log: std::path::PathBuf,
    stderr: Arc<Mutex<String>>,
}

impl Watched {
    fn start(srv: &Server, dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let log = dir.join("child.log");
        let script = format!(
            "trap 'echo \"term $GREETING\" >> {log}; exit 3' TERM; echo \"start $GREETING\" >> {log}; while :; do sleep 0.05; done",
            log = log.display()
        );
        let mut all = vec!["run", "--app", "web", "--watch", "--grace", "5s"];
        all.extend(args);
        all.extend(["--", "sh", "-c", &script]);
        let mut cmd = Command::new(BIN);
        cmd.args(&all)
            .env("MACVAULT_URL", srv.url())
            .env_remove("MACVAULT_TOKEN")
            .env_remove("MACVAULT_TOKEN_FILE")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let w = Watched { child, log, stderr };
        w.await_log("start one");
        w
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn await_log(&self, what: &str) {
        eventually(what, WAIT, || self.log().contains(what).then_some(()));
    }

    fn await_stderr(&self, what: &str) {
        eventually(what, WAIT, || {
            self.stderr.lock().unwrap().contains(what).then_some(())
        });
    }

    fn terminate(&mut self) -> Option<i32> {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        self.child.wait().unwrap().code()
    }
}

#[test]
fn run_watch_on_a_revoked_token_stops_the_command_with_on_revoke_stop() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    let (_op, org) = acme(&srv);
    set(&srv, &org, &[("GREETING", "one")]);
    let (rt, id) = runtime(&srv, &org, 3600);
    let mut w = Watched::start(
        &srv,
        tmp.path(),
        &["--on-revoke", "stop"],
        &[("MACVAULT_TOKEN", &rt)],
    );
    revoke(&srv, &org, &id);
    // It stops watching and stops the command: 3, the CLI's code for 401.
    let status = w.child.wait().unwrap();
    assert_eq!(status.code(), Some(3), "{}", w.stderr.lock().unwrap());
    assert!(w.log().contains("term one"), "{}", w.log());
    let err = w.stderr.lock().unwrap().clone();
    assert!(
        err.contains("stopped watching") && err.contains("revoked"),
        "{err}"
    );
    assert!(!err.contains(&rt), "the token is never printed");
}

#[test]
fn run_watch_on_a_revoked_token_keeps_the_command_by_default() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    let (_op, org) = acme(&srv);
    set(&srv, &org, &[("GREETING", "one")]);
    let (rt, id) = runtime(&srv, &org, 3600);
    let mut w = Watched::start(&srv, tmp.path(), &[], &[("MACVAULT_TOKEN", &rt)]);
    revoke(&srv, &org, &id);
    w.await_stderr("--on-revoke keep");
    assert!(
        w.child.try_wait().unwrap().is_none(),
        "run goes on with the command"
    );
    // No restart from now on: a change is not seen (and not fetched).
    set(&srv, &org, &[("GREETING", "two")]);
    assert!(!w.log().contains("term one"), "{}", w.log());
    // Signals still reach the command, whose status is run's.
    assert_eq!(w.terminate(), Some(3));
    assert!(
        w.log().contains("term one") && !w.log().contains("start two"),
        "{}",
        w.log()
    );
}

#[test]
fn run_watch_rereads_its_token_file_when_the_token_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    let (_op, org) = acme(&srv);
    set(&srv, &org, &[("GREETING", "one")]);
    let (old, old_id) = runtime(&srv, &org, 3600);
    let (new, _) = runtime(&srv, &org, 3600);
    let file = tmp.path().join("runtime.token");
    std::fs::write(&file, &old).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let file_arg = file.to_str().unwrap();
    let mut w = Watched::start(&srv, tmp.path(), &["--token-file", file_arg], &[]);
    // A rotation: the new token goes into the file, then the old one is revoked.
    std::fs::write(&file, &new).unwrap();
    revoke(&srv, &org, &old_id);
    w.await_stderr("using the new one in its file");
    // It watches on with the new token: a change restarts the command.
    set(&srv, &org, &[("GREETING", "two")]);
    w.await_log("start two");
    assert_eq!(w.terminate(), Some(3));
}

#[test]
fn the_child_gets_the_token_run_used_or_none() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    let (_op, org) = acme(&srv);
    set(&srv, &org, &[("GREETING", "one")]);
    let (rt, _) = runtime(&srv, &org, 3600);
    let file = tmp.path().join("runtime.token");
    std::fs::write(&file, &rt).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let file_arg = file.to_str().unwrap();
    let env = |args: &[&str], parent: &[(&str, &str)]| {
        let mut all = vec!["run", "--app", "web"];
        all.extend(args);
        all.extend(["--", "env"]);
        let (c, out, err) = srv.cli(&all, parent);
        assert_eq!(c, 0, "{err}");
        out
    };
    // The parent holds the org token; run is told to use the runtime token's file.
    let parent = [("MACVAULT_TOKEN", org.as_str())];
    let out = env(&["--token-file", file_arg, "--pass-token"], &parent);
    let tokens: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("MACVAULT_TOKEN"))
        .collect();
    assert_eq!(
        tokens,
        [format!("MACVAULT_TOKEN={rt}")],
        "exactly the token run used"
    );
    // Without --pass-token, no token variable at all.
    let out = env(&["--token-file", file_arg], &parent);
    assert!(!out.contains("MACVAULT_TOKEN"), "{out}");
    let out = env(&[], &[("MACVAULT_TOKEN_FILE", file_arg)]);
    assert!(!out.contains("MACVAULT_TOKEN"), "{out}");
    // With it, the token from MACVAULT_TOKEN_FILE arrives as MACVAULT_TOKEN, not the file.
    let out = env(&["--pass-token"], &[("MACVAULT_TOKEN_FILE", file_arg)]);
    let tokens: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("MACVAULT_TOKEN"))
        .collect();
    assert_eq!(tokens, [format!("MACVAULT_TOKEN={rt}")]);
    // --token on the command line works, with a warning that others can see it.
    let (c, _, err) = srv.cli(&["run", "--app", "web", "--token", &rt, "--", "true"], &[]);
    assert_eq!(c, 0, "{err}");
    assert!(err.contains("process list"), "{err}");
}

#[test]
fn a_watched_child_cannot_read_the_token_from_run_s_proc_files() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    let (_op, org) = acme(&srv);
    set(&srv, &org, &[("GREETING", "one")]);
    let (rt, _) = runtime(&srv, &org, 3600);
    // The child and run are one unprivileged user (root reads any /proc file, so as
    // root — CI — both run as `nobody`); the child tries run's environment, where
    // MACVAULT_TOKEN is, and its command line.
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).unwrap();
    let script = format!(
        "for f in environ cmdline mem; do cat /proc/$PPID/$f > {dir}/$f 2>/dev/null; \
         echo $? > {dir}/$f.rc; done; touch {dir}/done; exit 0",
        dir = out.display()
    );
    let as_root = rustix::process::geteuid().is_root();
    let mut cmd = if as_root {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "--",
            BIN,
        ]);
        c
    } else {
        Command::new(BIN)
    };
    let status = cmd
        .args(["run", "--app", "web", "--watch", "--", "sh", "-c", &script])
        .env("MACVAULT_URL", srv.url())
        .env("MACVAULT_TOKEN", &rt)
        .env_remove("MACVAULT_TOKEN_FILE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(
        out.join("done").exists(),
        "the child did not run (setpriv as root?): {}",
        String::from_utf8_lossy(&status.stderr)
    );
    // The command line is anyone's to read (hence the warning on --token); the token
    // is not in it. The environment and memory are closed.
    for (f, closed) in [("environ", true), ("mem", true), ("cmdline", false)] {
        let rc = std::fs::read_to_string(out.join(format!("{f}.rc"))).unwrap();
        let read = std::fs::read(out.join(f)).unwrap_or_default();
        if closed {
            assert_ne!(rc.trim(), "0", "the child read /proc/<run>/{f}");
        }
        assert!(
            !crate::support::contains_bytes(&read, rt.as_bytes()),
            "{f} leaked"
        );
    }
}
