//! The files a node keeps its secrets and state in (the data directory, `master.key`,
//! the database file, `operator.token`) are created owner-only whatever the umask
//! (directories 0700, files 0600) and checked again at every start: a file anyone may
//! read, or group or others may change, and a directory group or others may write
//! into, are refused with the `chmod` that mends them. A group-readable key file is
//! accepted, as secret mounts often are (README, "Running it").

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

/// A file or directory that others could read or change.
#[derive(Debug, thiserror::Error)]
#[error("{path} has mode {mode:03o}: {why}; run `chmod {fix} {path}`")]
pub struct UnsafeMode {
    /// The file or directory.
    pub path: String,
    /// Its permission bits.
    pub mode: u32,
    why: &'static str,
    fix: &'static str,
}

/// Refuses a file holding a secret or state that anyone may read, or that group or
/// others may write. A file that is not there passes (it is created owner-only).
pub fn check_file(path: &Path) -> Result<(), UnsafeMode> {
    let Some(mode) = mode_of(path) else {
        return Ok(());
    };
    let why = if mode & 0o002 != 0 || mode & 0o020 != 0 {
        "others can change it"
    } else if mode & 0o004 != 0 {
        "anyone on this machine can read it"
    } else {
        return Ok(());
    };
    Err(unsafe_mode(path, mode, why, "600"))
}

/// Refuses a directory group or others may write into (they could delete or replace
/// the files in it). A directory that is not there passes.
pub fn check_dir(path: &Path) -> Result<(), UnsafeMode> {
    match mode_of(path) {
        Some(mode) if mode & 0o022 != 0 => Err(unsafe_mode(
            path,
            mode,
            "others can delete or replace the files in it",
            "700",
        )),
        _ => Ok(()),
    }
}

fn mode_of(path: &Path) -> Option<u32> {
    std::fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o777)
}

fn unsafe_mode(path: &Path, mode: u32, why: &'static str, fix: &'static str) -> UnsafeMode {
    UnsafeMode {
        path: path.display().to_string(),
        mode,
        why,
        fix,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn with_mode(path: &Path, mode: u32) -> &Path {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn files_readable_by_anyone_or_writable_by_others_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("master.key");
        fs::write(&f, b"k").unwrap();
        for ok in [0o600, 0o400, 0o640, 0o440] {
            assert!(check_file(with_mode(&f, ok)).is_ok(), "{ok:o}");
        }
        for (bad, why) in [
            (0o644, "anyone on this machine can read it"),
            (0o604, "anyone on this machine can read it"),
            (0o620, "others can change it"),
            (0o602, "others can change it"),
            (0o666, "others can change it"),
        ] {
            let e = check_file(with_mode(&f, bad)).unwrap_err();
            let text = e.to_string();
            assert!(text.contains(why), "{bad:o}: {text}");
            assert!(
                text.contains(&format!("chmod 600 {}", f.display())),
                "{text}"
            );
            assert_eq!(e.mode, bad);
        }
        assert!(check_file(&dir.path().join("absent")).is_ok());
    }

    #[test]
    fn directories_others_may_write_into_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("data");
        fs::create_dir(&d).unwrap();
        for ok in [0o700, 0o750, 0o755] {
            assert!(check_dir(with_mode(&d, ok)).is_ok(), "{ok:o}");
        }
        for bad in [0o770, 0o707, 0o777] {
            let text = check_dir(with_mode(&d, bad)).unwrap_err().to_string();
            assert!(
                text.contains("others can delete or replace")
                    && text.contains(&format!("chmod 700 {}", d.display())),
                "{bad:o}: {text}"
            );
        }
    }
}
