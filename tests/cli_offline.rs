//! The offline commands of the real `macvault` binary: `tokens attenuate` and
//! `tokens inspect`, driven as a user would, plus usage and error behaviour.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use macvault::caveats::parse_time;
use macvault::token::{Bundle, Macaroon, TokenId, TokenIdentifier};
use serde_json::Value;

/// One run of the binary.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "stderr: {}", self.stderr);
        self.stdout.trim()
    }

    /// Asserts a clean failure: nonzero exit, an `error:` line, no panic.
    fn failed(&self) -> &str {
        assert_ne!(self.code, Some(0), "stdout: {}", self.stdout);
        assert!(self.code.is_some(), "killed by a signal");
        assert!(self.stderr.starts_with("error:"), "stderr: {}", self.stderr);
        assert!(!self.stderr.contains("panicked"), "stderr: {}", self.stderr);
        assert!(self.stdout.is_empty(), "stdout: {}", self.stdout);
        &self.stderr
    }
}

fn run(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_macvault"));
    cmd.args(args)
        .env_remove("MACVAULT_TOKEN")
        .env_remove("MACVAULT_URL")
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn macvault(args: &[&str]) -> Run {
    run(args, &[], None)
}

fn token_with(caveats: &[&str]) -> String {
    let id = TokenIdentifier {
        org: "acme".into(),
        key_version: 1,
        token_id: TokenId([1; 16]),
    };
    let mut m = Macaroon::mint(&[5; 32], id.encode().unwrap().as_bytes(), None);
    for c in caveats {
        m.add_first_party(c.as_bytes());
    }
    Bundle::single(m).to_text()
}

fn token() -> String {
    token_with(&["org = acme"])
}

fn inspect_json(token: &str) -> Value {
    let out = macvault(&["tokens", "inspect", token, "--json"]);
    serde_json::from_str(out.ok()).unwrap()
}

fn caveat_texts(token: &str) -> Vec<String> {
    inspect_json(token)["caveats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert_eq!(c["known"], true, "{c}");
            c["text"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// The caveats `attenuate` adds with `flags` to a token holding only `org = acme`.
fn added_by(flags: &[&str]) -> Vec<String> {
    let base = token();
    let mut args = vec!["tokens", "attenuate", "--token", &base];
    args.extend_from_slice(flags);
    let out = macvault(&args);
    let mut texts = caveat_texts(out.ok());
    assert_eq!(texts.remove(0), "org = acme");
    texts
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn help_and_version_work() {
    let out = macvault(&["--help"]);
    for word in ["serve", "orgs", "keys", "tokens", "audit", "Exit codes"] {
        assert!(out.ok().contains(word), "{word} missing from --help");
    }
    let client = macvault(&["tokens", "--help"]);
    for flag in ["--url", "--token", "--token-file", "--json"] {
        assert!(
            client.ok().contains(flag),
            "{flag} missing from tokens --help"
        );
    }
    let sub = macvault(&["tokens", "attenuate", "--help"]);
    for flag in [
        "--app",
        "--read-only",
        "--expiry",
        "--secret",
        "--ip",
        "--resource",
    ] {
        assert!(sub.ok().contains(flag), "{flag} missing");
    }
    assert!(macvault(&["--version"]).ok().starts_with("macvault "));
    // A usage error is clap's exit code 2.
    let bad = macvault(&["tokens", "frobnicate"]);
    assert_eq!(bad.code, Some(2));
    assert!(bad.stderr.starts_with("error:"), "{}", bad.stderr);
}

#[test]
fn help_never_shows_the_token_from_the_environment() {
    let t = token();
    let out = run(
        &["tokens", "verify", "--help"],
        &[("MACVAULT_TOKEN", &t)],
        None,
    );
    assert!(!out.ok().contains(&t));
}

#[test]
fn attenuate_reads_the_token_from_flag_environment_or_stdin() {
    let t = token();
    let flags = ["tokens", "attenuate", "--app", "web:r"];
    let from_flag = macvault(&[&flags[..], &["--token", &t]].concat());
    let from_env = run(&flags, &[("MACVAULT_TOKEN", &t)], None);
    let from_stdin = run(&flags, &[], Some(&format!("  {t}\n")));
    let expected = macvault::token::attenuate(
        &t,
        &[macvault::caveats::Caveat::parse("app = web:r").unwrap()],
    )
    .unwrap();
    assert_eq!(from_flag.ok(), expected);
    assert_eq!(from_env.ok(), expected);
    assert_eq!(from_stdin.ok(), expected);
    // The client flags also work between the group and its command.
    let before = macvault(&["tokens", "--token", &t, "attenuate", "--app", "web:r"]);
    assert_eq!(before.ok(), expected);
    // And as the positional token.
    let positional = macvault(&["tokens", "attenuate", &t, "--app", "web:r"]);
    assert_eq!(positional.ok(), expected);
}

#[test]
fn every_flag_adds_its_caveat() {
    assert_eq!(added_by(&["--app", "web"]), ["app = web:rwcdxv"]);
    assert_eq!(
        added_by(&["--app", "web:r", "--app", "api:rw"]),
        ["app = api:rw,web:r"]
    );
    assert_eq!(added_by(&["--read-only"]), ["actions = r"]);
    assert_eq!(
        added_by(&["--secret", "DB_*", "--secret", "API_KEY"]),
        ["secret = API_KEY,DB_*"]
    );
    assert_eq!(
        added_by(&["--ip", "2001:db8::/32", "--ip", "10.0.0.0/8"]),
        ["ip = 10.0.0.0/8,2001:db8::/32"]
    );
    assert_eq!(
        added_by(&["--resource", "tokens", "--resource", "secrets"]),
        ["resource = secrets,tokens"]
    );
}

#[test]
fn expiry_is_relative_to_now() {
    let before = now();
    let added = added_by(&["--expiry", "1h"]);
    let after = now();
    assert_eq!(added.len(), 1);
    let at = added[0].strip_prefix("expires < ").unwrap();
    let at = parse_time(at).unwrap();
    assert!((before + 3600..=after + 3600).contains(&at), "{at}");
}

#[test]
fn caveats_file_in_json_form() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("caveats.json");
    std::fs::write(
        &path,
        r#"[{"apps": {"web": "r"}}, {"validity": {"not_after": "2030-01-01T00:00:00Z"}},
            {"source_ip": ["10.0.0.0/8"]}]"#,
    )
    .unwrap();
    let path = path.to_str().unwrap();
    assert_eq!(
        added_by(&["--caveats", path]),
        [
            "app = web:r",
            "expires < 2030-01-01T00:00:00Z",
            "ip = 10.0.0.0/8"
        ]
    );
}

#[test]
fn attenuating_twice_keeps_every_caveat_visible() {
    let t = token();
    let once = macvault(&[
        "tokens",
        "attenuate",
        "--token",
        &t,
        "--app",
        "web",
        "--read-only",
    ]);
    let twice = run(
        &["tokens", "attenuate", "--secret", "DB_*", "--expiry", "30d"],
        &[],
        Some(once.ok()),
    );
    let seen = inspect_json(twice.ok());
    let texts: Vec<&str> = seen["caveats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts[..4],
        [
            "org = acme",
            "app = web:rwcdxv",
            "actions = r",
            "secret = DB_*"
        ]
    );
    assert!(texts[4].starts_with("expires < "), "{texts:?}");
    assert_eq!(texts.len(), 5);
    // The effective expiry is that caveat's time; the token id never changes.
    assert_eq!(
        seen["expires"],
        texts[4].strip_prefix("expires < ").unwrap()
    );
    assert_eq!(seen["token_id"], "01".repeat(16));
    assert_eq!(seen["org"], "acme");
    assert_eq!(seen["key_version"], 1);
    assert_eq!(
        seen["fingerprint"],
        macvault::token::fingerprint(twice.ok())
    );
}

#[test]
fn inspect_lists_what_the_token_says() {
    let t = token_with(&["org = acme", "expires < 2031-05-01T00:00:00Z", "frob = 1"]);
    let positional = macvault(&["tokens", "inspect", &t]);
    let from_flag = macvault(&["tokens", "inspect", "--token", &t]);
    let from_stdin = run(&["tokens", "inspect"], &[], Some(&t));
    let text = positional.ok();
    assert_eq!(text, from_flag.ok());
    assert_eq!(text, from_stdin.ok());
    for expected in [
        &"01".repeat(16),
        "acme",
        &macvault::token::fingerprint(&t),
        "2031-05-01T00:00:00Z",
        "1. org = acme",
        "3. frob = 1  [not a macvault caveat]",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }
    assert!(!text.contains(&t), "inspect printed the token");
}

#[test]
fn inspect_shows_a_foreign_identifier() {
    let m = Macaroon::mint(&[5; 32], b"not ours", None);
    let t = Bundle::single(m).to_text();
    let seen = inspect_json(&t);
    assert_eq!(seen["token_id"], Value::Null);
    assert_eq!(seen["foreign_identifier"], "not ours");
    let text = macvault(&["tokens", "inspect", &t]);
    assert!(text.ok().contains("not ours (not a macvault identifier)"));
}

#[test]
fn bad_inputs_fail_cleanly() {
    let t = token();
    let attenuate = |extra: &[&str]| {
        let mut args = vec!["tokens", "attenuate", "--token", &t];
        args.extend_from_slice(extra);
        macvault(&args)
    };
    let garbage = macvault(&[
        "tokens",
        "attenuate",
        "--token",
        "mvt_garbage!",
        "--read-only",
    ]);
    assert!(garbage.failed().contains("not a valid token"));
    let not_ours = macvault(&["tokens", "inspect", "hello"]);
    assert!(not_ours.failed().contains("not a valid token"));
    assert!(
        attenuate(&["--expiry", "soon"])
            .failed()
            .contains("--expiry")
    );
    assert!(
        attenuate(&["--expiry", "0s"])
            .failed()
            .contains("at least one second")
    );
    assert!(
        attenuate(&["--ip", "10.0.0.1/8"])
            .failed()
            .contains("host bits")
    );
    assert!(attenuate(&["--ip", "10.0.0.0"]).failed().contains("--ip"));
    assert!(
        attenuate(&["--app", "Web"])
            .failed()
            .contains("invalid name")
    );
    assert!(attenuate(&["--app", "web:wr"]).failed().contains("rwcdxv"));
    assert!(attenuate(&["--secret", "a b"]).failed().contains("secret"));
    assert!(
        attenuate(&["--resource", "files"])
            .failed()
            .contains("unknown resource kind; use one of apps, audit")
    );
    assert!(attenuate(&[]).failed().contains("no caveats to add"));

    let dir = tempfile::tempdir().unwrap();
    let unknown = dir.path().join("unknown.json");
    std::fs::write(&unknown, r#"[{"frob": "x"}]"#).unwrap();
    let err = attenuate(&["--caveats", unknown.to_str().unwrap()]);
    assert!(err.failed().contains("frob"), "{}", err.stderr);
    let extra = dir.path().join("extra.json");
    std::fs::write(
        &extra,
        r#"[{"validity": {"not_after": "2030-01-01T00:00:00Z", "until": 1}}]"#,
    )
    .unwrap();
    assert!(
        attenuate(&["--caveats", extra.to_str().unwrap()])
            .failed()
            .contains("until")
    );
    let empty = dir.path().join("empty.json");
    std::fs::write(&empty, "[]").unwrap();
    assert!(
        attenuate(&["--caveats", empty.to_str().unwrap()])
            .failed()
            .contains("no caveats")
    );
    let missing = dir.path().join("missing.json");
    assert!(
        attenuate(&["--caveats", missing.to_str().unwrap()])
            .failed()
            .contains("cannot open")
    );

    // No token anywhere: stdin is empty.
    let none = macvault(&["tokens", "attenuate", "--read-only"]);
    assert!(none.failed().contains("no token given"));
}

#[test]
fn errors_never_echo_the_token() {
    let mut perm = Macaroon::mint(&[5; 32], b"perm", None);
    perm.add_third_party_with_nonce(b"ci", &[2; 32], b"ticket", &[0; 24]);
    let mut discharge = Macaroon::mint(&[2; 32], b"ticket", None);
    perm.bind(&mut discharge);
    let bound = Bundle {
        token: perm,
        discharges: vec![discharge],
    }
    .to_text();
    let out = macvault(&["tokens", "attenuate", "--token", &bound, "--read-only"]);
    let err = out.failed();
    assert!(err.contains("discharge"), "{err}");
    assert!(!err.contains(&bound));
    let truncated = &token()[..30];
    let out = macvault(&["tokens", "inspect", truncated]);
    assert!(!out.failed().contains(truncated));
}

#[test]
fn serve_refuses_a_request_timeout_out_of_range() {
    // Refused while parsing arguments: nothing is created or bound.
    for (bad, says) in [
        ("0s", "at least one second"),
        ("2h", "at most 1h"),
        ("soon", "not a duration"),
    ] {
        let err = macvault(&["serve", "--listen", "127.0.0.1:0", "--request-timeout", bad])
            .failed()
            .to_owned();
        assert!(err.contains(says), "{bad}: {err}");
    }
}
