//! The README's tour is `examples/tour.sh`; this runs it against the real binary and
//! checks that the README shows it as it stands.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The examples the README shows, each a script the tests run.
const EXAMPLES: [&str; 7] = [
    "examples/tour.sh",
    "examples/oauth.sh",
    "examples/lifecycle.sh",
    "examples/secrets.sh",
    "examples/third-parties.sh",
    "examples/ci/github-deploy.yml",
    "examples/ci/gitlab-ci.yml",
];

#[test]
fn readme_shows_the_examples_verbatim() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    for example in EXAMPLES {
        let script = std::fs::read_to_string(root().join(example)).unwrap();
        let body = script.split_once('\n').unwrap().1;
        assert!(
            readme.contains(body),
            "README.md must contain {example} (without its #! line)"
        );
    }
}

/// A port that is free now and that nothing else in this process will take before the
/// script's server binds it: below the kernel's ephemeral range (which every `bind` to
/// port 0 and every outgoing connection draws from), and handed out once.
fn script_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let low: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    // Test processes running at once start apart.
    let start = low.saturating_sub(4000) + (std::process::id() % 200) as u16 * 16;
    let _ = NEXT.compare_exchange(0, start, Ordering::SeqCst, Ordering::SeqCst);
    loop {
        let port = NEXT.fetch_add(1, Ordering::SeqCst);
        assert!(port < low, "no free port below the ephemeral range");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Runs an example script with the built binary on PATH against a free port.
fn run_example(script: &str) -> std::process::Output {
    let port = script_port();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_macvault")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let dir = tempfile::tempdir().unwrap();
    Command::new("timeout")
        .args(["120", "bash"])
        .arg(root().join(script))
        .current_dir(dir.path())
        .env("PATH", path)
        .env("MACVAULT_URL", format!("http://127.0.0.1:{port}"))
        .env("TMPDIR", dir.path())
        .env_remove("MACVAULT_TOKEN")
        .env_remove("MACVAULT_TOKEN_FILE")
        .output()
        .unwrap()
}

#[test]
fn lifecycle_runbooks_run() {
    let out = run_example("examples/lifecycle.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "runbooks failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stderr.contains("stop at"),
        "rotation says when the old token stops: {stderr}"
    );
    assert!(stdout.contains("allowed"), "{stdout}");
    assert!(
        stdout.contains("earlier operator token(s) revoked"),
        "{stdout}"
    );
    assert!(stderr.contains("not authenticated: revoked"), "{stderr}");
}

#[test]
fn tour_runs() {
    let out = run_example("examples/tour.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "tour failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("\nallowed\n"), "{stdout}");
    assert!(
        stdout.contains("denied: caveat 4 (actions = r) does not allow write"),
        "{stdout}"
    );
    assert!(stderr.contains("not authenticated: revoked"), "{stderr}");
}

#[test]
fn oauth_walkthrough_runs() {
    let out = run_example("examples/oauth.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "OAuth walk-through failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("\"code_challenge_methods_supported\":[\"S256\"]"),
        "{stdout}"
    );
    // The access token: the admin token's caveats, then exactly the approved ones.
    assert!(stdout.contains("5. app = web:r"), "{stdout}");
    assert!(stdout.contains("secrets:read app:web"), "{stdout}");
    assert!(stdout.contains("revoked OAuth grant mvg_"), "{stdout}");
    assert!(stderr.contains("not authenticated (revoked)"), "{stderr}");
}

#[test]
fn secrets_walkthrough_runs() {
    let out = run_example("examples/secrets.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "secrets walk-through failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    // web's own DB_URL over the org's, then the org's again once it is unset.
    let row = |name: &str, scope: &str| {
        stdout
            .lines()
            .filter(|l| l.starts_with(name) && l.contains(scope))
            .count()
    };
    assert!(row("DB_URL", "app web") >= 2, "{stdout}");
    assert!(row("DB_URL", " org ") >= 1, "{stdout}");
    assert!(stderr.contains("DB_URL is at version 2, not 1"), "{stderr}");
    assert!(stdout.contains("current, rollback to v1"), "{stdout}");
    assert!(
        stdout.contains("destroyed the values of API_KEY v1"),
        "{stdout}"
    );
    assert!(
        stderr.contains("does not allow secret \"API_KEY\""),
        "{stderr}"
    );
    assert!(stderr.contains("denied"), "{stderr}");
    assert!(
        stdout.contains("web connects to postgres://web-db-3/acme"),
        "{stdout}"
    );
    assert!(stdout.contains("every data key is under k2"), "{stdout}");
    for value in ["my-laptop-password", "postgres://web-db/acme"] {
        assert!(!stdout.contains(value), "a value was printed: {stdout}");
    }
}

#[test]
fn third_party_walkthrough_runs() {
    let out = run_example("examples/third-parties.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "third-party walk-through failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    // inspect shows the conditions; verify names where the discharge comes from.
    for want in [
        "claim repository_id = 892374561",
        "claim ref = refs/heads/main",
        "max-validity = 10m",
        "ticket sealed to key",
    ] {
        assert!(stdout.contains(want), "{want} in:\n{stdout}");
    }
    assert!(
        stderr.contains("missing discharge") && stderr.contains("/3p/acme-gha"),
        "{stderr}"
    );
    // After the rotation, show lists both keys: the older one with its live token.
    assert!(
        stdout.contains("older only   1") && stdout.contains("new tickets  0"),
        "{stdout}"
    );
    assert!(stdout.contains("1 token(s) need it"), "{stdout}");
}
