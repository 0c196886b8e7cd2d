//! The README's tour is `examples/tour.sh`; this runs it against the real binary and
//! checks that the README shows it as it stands.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn readme_shows_the_tour_verbatim() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let tour = std::fs::read_to_string(root().join("examples/tour.sh")).unwrap();
    let body = tour.split_once('\n').unwrap().1;
    assert!(
        readme.contains(body),
        "README.md must contain examples/tour.sh (without its #! line)"
    );
}

#[test]
fn tour_runs() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_macvault")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("timeout")
        .args(["120", "bash"])
        .arg(root().join("examples/tour.sh"))
        .current_dir(dir.path())
        .env("PATH", path)
        .env("MACVAULT_URL", format!("http://127.0.0.1:{port}"))
        .env("TMPDIR", dir.path())
        .env_remove("MACVAULT_TOKEN")
        .output()
        .unwrap();
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
    assert!(stdout.contains("not authenticated: revoked"), "{stdout}");
}
