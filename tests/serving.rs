//! Serving safely: files owner-only whatever the umask and checked at every start.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use crate::support::BIN;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `macvault init --data-dir DIR` under `umask`: its exit code and what it said.
fn init(dir: &Path, umask: &str) -> (i32, String) {
    let out = Command::new("sh")
        .args(["-c", "umask \"$2\"; exec \"$0\" init --data-dir \"$1\""])
        .arg(BIN)
        .arg(dir)
        .arg(umask)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), said)
}

#[test]
fn files_are_owner_only_under_umask_000_and_checked_at_every_start() {
    let tmp = tempfile::tempdir().unwrap();
    // A directory made by the node, and one made beforehand as 0755.
    let made = tmp.path().join("made");
    let pre = tmp.path().join("pre");
    std::fs::create_dir(&pre).unwrap();
    set_mode(&pre, 0o755);
    for dir in [&made, &pre] {
        let (c, said) = init(dir, "000");
        assert_eq!(c, 0, "{said}");
        for file in ["master.key", "macvault.redb", "operator.token"] {
            assert_eq!(mode(&dir.join(file)), 0o600, "{file} in {}", dir.display());
        }
    }
    assert_eq!(mode(&made), 0o700);
    assert_eq!(
        mode(&pre),
        0o755,
        "a directory others cannot write is kept as it is"
    );
    // Every start looks again: each unsafe mode is refused, naming the file and the fix.
    let refused = |path: &Path, bad: u32, good: u32, fix: &str| {
        set_mode(path, bad);
        let (c, said) = init(&made, "022");
        assert_ne!(c, 0, "{} at {bad:o} was accepted", path.display());
        assert!(
            said.contains(&format!("chmod {fix} {}", path.display())),
            "{said}"
        );
        set_mode(path, good);
        let (c, said) = init(&made, "022");
        assert_eq!(c, 0, "{said}");
    };
    refused(&made.join("macvault.redb"), 0o644, 0o600, "600");
    refused(&made.join("operator.token"), 0o604, 0o600, "600");
    refused(&made.join("master.key"), 0o660, 0o600, "600");
    refused(&made, 0o777, 0o700, "700");
    // A group-readable key file, as a secret mount often is, is fine.
    set_mode(&made.join("master.key"), 0o640);
    let (c, said) = init(&made, "022");
    assert_eq!(c, 0, "{said}");
}
