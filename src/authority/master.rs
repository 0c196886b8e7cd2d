//! The master key: it wraps every root key before a root key touches the disk.

use std::fs::{self, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use zeroize::Zeroizing;

use super::sealing::{self, SealError};

use crate::token::{KEY_LEN, RootKey};

/// Why the master key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    /// The file is readable or writable by group or others.
    #[error("master key file {0}")]
    Permissions(#[from] super::files::UnsafeMode),
    /// The file is not exactly 32 bytes.
    #[error("master key file {0} is not a 32-byte key")]
    Length(String),
    /// Reading, creating or writing failed.
    #[error("master key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// No randomness.
    #[error("no randomness from the operating system")]
    Random,
    /// A wrapped key does not open: wrong master key or tampered database.
    #[error("a root key does not unwrap with this master key")]
    Unwrap,
}

/// The 32-byte master key. Wiped on drop; never printed.
pub struct MasterKey(Zeroizing<[u8; KEY_LEN]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey").finish_non_exhaustive()
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> MasterKeyError + '_ {
    move |source| MasterKeyError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Refuses a key file anyone may read or group or others may write (a group-readable
/// one, as secret mounts often are, is accepted: docs in `files`).
fn check_private(path: &Path) -> Result<(), MasterKeyError> {
    Ok(super::files::check_file(path)?)
}

/// Creates a file readable by its owner only and writes `bytes` to it.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Creates `path` (mode 0600) holding `bytes`, all at once: the bytes go to a temporary
/// file beside it, which is then linked into place, failing with `AlreadyExists` if
/// `path` exists. So another process that finds `path` never reads it half written
/// (two nodes starting together on one new key file).
fn create_whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(|e| std::io::Error::other(e.to_string()))?;
    let name = path
        .file_name()
        .map_or_else(|| "key".into(), |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(
        ".{name}.{}.tmp",
        suffix
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    ));
    write_private(&tmp, bytes)?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    linked
}

impl MasterKey {
    /// Loads the key file, or creates it (mode 0600) with a fresh random key.
    pub fn load_or_create(path: &Path) -> Result<Self, MasterKeyError> {
        if path.exists() {
            check_private(path)?;
            let mut bytes = Zeroizing::new(Vec::new());
            fs::File::open(path)
                .map_err(io(path))?
                .read_to_end(&mut bytes)
                .map_err(io(path))?;
            let key: [u8; KEY_LEN] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| MasterKeyError::Length(path.display().to_string()))?;
            return Ok(MasterKey(Zeroizing::new(key)));
        }
        let key = RootKey::generate().map_err(|_| MasterKeyError::Random)?;
        match create_whole(path, key.expose_bytes()) {
            Ok(()) => Ok(MasterKey(Zeroizing::new(*key.expose_bytes()))),
            // Another node sharing this path created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load_or_create(path),
            Err(e) => Err(io(path)(e)),
        }
    }

    /// A value that shows which master key initialised a store without revealing it:
    /// HMAC-SHA256 of a fixed label under the key.
    pub fn check_value(&self) -> [u8; 32] {
        use hmac::{KeyInit as _, Mac as _};
        let mut mac = <hmac::Hmac<sha2::Sha256>>::new_from_slice(&*self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(b"macvault master key check v1");
        mac.finalize().into_bytes().into()
    }

    /// A key for one purpose (`label`), the same on every node that shares this master
    /// key: HMAC-SHA256 of the label under it.
    pub(crate) fn derive(&self, label: &[u8]) -> Zeroizing<[u8; 32]> {
        use hmac::{KeyInit as _, Mac as _};
        let mut mac = <hmac::Hmac<sha2::Sha256>>::new_from_slice(&*self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(label);
        Zeroizing::new(mac.finalize().into_bytes().into())
    }

    /// Whether `check` is this key's check value (constant time).
    pub fn matches(&self, check: &[u8]) -> bool {
        use subtle::ConstantTimeEq as _;
        bool::from(self.check_value().as_slice().ct_eq(check))
    }

    /// `nonce || XChaCha20-Poly1305(root key)`, bound to (org, version) as associated data.
    pub fn wrap(&self, org: &str, version: u32, key: &RootKey) -> Result<Vec<u8>, MasterKeyError> {
        self.seal_key(&root_aad(org, version), key.expose_bytes())
    }

    /// Opens a wrapped root key; fails if it was moved to another org or version.
    pub fn unwrap_key(
        &self,
        org: &str,
        version: u32,
        wrapped: &[u8],
    ) -> Result<RootKey, MasterKeyError> {
        let key = self.open_key(&root_aad(org, version), wrapped)?;
        Ok(RootKey::from_bytes(*key))
    }

    /// Seals a 32-byte key under the master key, bound to `aad` (each kind of key has
    /// its own purpose label in it: see [`sealing`]).
    pub(crate) fn seal_key(
        &self,
        aad: &[u8],
        key: &[u8; KEY_LEN],
    ) -> Result<Vec<u8>, MasterKeyError> {
        sealing::seal(&self.0, aad, key).map_err(|e| match e {
            SealError::Random => MasterKeyError::Random,
            SealError::Open => MasterKeyError::Unwrap,
        })
    }

    /// Opens a key sealed by [`MasterKey::seal_key`] with the same `aad`.
    pub(crate) fn open_key(
        &self,
        aad: &[u8],
        wrapped: &[u8],
    ) -> Result<Zeroizing<[u8; KEY_LEN]>, MasterKeyError> {
        sealing::open_key(&self.0, aad, wrapped).map_err(|_| MasterKeyError::Unwrap)
    }
}

/// The associated data of a root key: its purpose, org and version.
fn root_aad(org: &str, version: u32) -> Vec<u8> {
    let mut aad = b"macvault root key v1\0".to_vec();
    aad.extend_from_slice(org.as_bytes());
    aad.push(0);
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn a_key_file_appears_whole_and_only_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        create_whole(&path, &[7; 32]).unwrap();
        assert_eq!(fs::read(&path).unwrap(), [7; 32]);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let again = create_whole(&path, &[8; 32]).unwrap_err();
        assert_eq!(again.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&path).unwrap(), [7; 32], "the first stays");
        let left: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn wrap_is_bound_to_org_and_version() {
        let dir = tempfile::tempdir().unwrap();
        let m = MasterKey::load_or_create(&dir.path().join("k")).unwrap();
        let key = RootKey::from_bytes([7; 32]);
        let w = m.wrap("acme", 1, &key).unwrap();
        assert_eq!(
            m.unwrap_key("acme", 1, &w).unwrap().expose_bytes(),
            &[7; 32]
        );
        assert!(m.unwrap_key("acme", 2, &w).is_err());
        assert!(m.unwrap_key("beta", 1, &w).is_err());
        let mut bad = w.clone();
        bad[30] ^= 1;
        assert!(m.unwrap_key("acme", 1, &bad).is_err());
        assert!(
            !w.windows(32).any(|win| win == [7; 32]),
            "the key must not appear in the clear"
        );
    }

    #[test]
    fn key_file_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let a = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let b = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(*a.0, *b.0);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = MasterKey::load_or_create(&path).unwrap_err();
        assert!(matches!(err, MasterKeyError::Permissions(_)), "{err}");
        assert!(err.to_string().contains("chmod 600"), "{err}");
        // Group-readable, as a secret mount often is: accepted.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        MasterKey::load_or_create(&path).unwrap();
        assert!(!format!("{a:?}").contains(&format!("{:?}", &a.0[..4])));
    }
}
