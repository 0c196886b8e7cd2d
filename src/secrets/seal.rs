//! Envelope encryption of secret values. Each version gets a fresh random data key; the
//! value is sealed under it and the data key under the org's current secrets key, which
//! is itself wrapped by the master key. Every layer's associated data names its purpose
//! and where it belongs — (org, app, name, version, key id) — so a ciphertext or a
//! wrapped key moved to another record, another table or another layer does not open.
//! Listing digests are HMACs under the org's digest key over (app, name, value): equal
//! values under different names do not compare equal, and a guess cannot be checked
//! without the key.

use hmac::{KeyInit as _, Mac as _};
use zeroize::Zeroizing;

use super::SecretError;
use crate::authority::MasterKey;
use crate::authority::sealing::{self, SealError, aad};
use crate::model::{Sealed, SecretKeys};

const SECRETS_KEY: &str = "macvault org secrets key v1";
const DIGEST_KEY: &str = "macvault org digest key v1";
const DATA_KEY: &str = "macvault secret data key v1";
const VALUE: &str = "macvault secret value v1";
const DIGEST: &str = "macvault secret digest v1";

/// Where a value belongs: what its associated data binds it to.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    /// The org.
    pub org: &'a str,
    /// The app, or `None` for an org secret.
    pub app: Option<&'a str>,
    /// The name.
    pub name: &'a str,
    /// The version.
    pub version: u64,
}

impl Place<'_> {
    fn aad(&self, purpose: &str, key_id: u32) -> Vec<u8> {
        aad(
            purpose,
            &[
                self.org.as_bytes(),
                self.app.unwrap_or("").as_bytes(),
                &[u8::from(self.app.is_some())],
                self.name.as_bytes(),
                &self.version.to_be_bytes(),
                &key_id.to_be_bytes(),
            ],
        )
    }

    fn shown(&self) -> String {
        match self.app {
            Some(app) => format!("{}/{} {} v{}", self.org, app, self.name, self.version),
            None => format!("{} {} v{}", self.org, self.name, self.version),
        }
    }
}

/// An org's secrets keys, unwrapped, in memory.
pub struct OrgKeys {
    /// The key new data keys are wrapped under.
    pub current: u32,
    keks: Vec<(u32, Zeroizing<[u8; 32]>)>,
    digest: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for OrgKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrgKeys")
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

pub(super) fn random_key() -> Result<Zeroizing<[u8; 32]>, SecretError> {
    let mut k = Zeroizing::new([0u8; 32]);
    getrandom::fill(&mut *k).map_err(|_| crate::authority::MasterKeyError::Random)?;
    Ok(k)
}

fn sealed_err(e: SealError) -> SecretError {
    match e {
        SealError::Random => crate::authority::MasterKeyError::Random.into(),
        SealError::Open => SecretError::Corrupt("sealing".into()),
    }
}

/// The associated data of an org's secrets key `id`.
pub fn secrets_key_aad(org: &str, id: u32) -> Vec<u8> {
    aad(SECRETS_KEY, &[org.as_bytes(), &id.to_be_bytes()])
}

fn digest_key_aad(org: &str) -> Vec<u8> {
    aad(DIGEST_KEY, &[org.as_bytes()])
}

impl OrgKeys {
    /// Fresh keys for an org (version 1 of its secrets key, and its digest key), and
    /// their stored, wrapped form.
    pub fn generate(
        master: &MasterKey,
        org: &str,
        now: u64,
    ) -> Result<(OrgKeys, SecretKeys), SecretError> {
        let kek = random_key()?;
        let digest = random_key()?;
        let stored = SecretKeys::new(
            org,
            master.seal_key(&secrets_key_aad(org, 1), &kek)?,
            master.seal_key(&digest_key_aad(org), &digest)?,
            now,
        );
        Ok((
            OrgKeys {
                current: 1,
                keks: vec![(1, kek)],
                digest,
            },
            stored,
        ))
    }

    /// Unwraps an org's stored keys.
    pub fn unwrap(master: &MasterKey, stored: &SecretKeys) -> Result<OrgKeys, SecretError> {
        let org = &stored.org;
        let corrupt = |what: &str| SecretError::Corrupt(format!("{what} of org {org}"));
        let keks = stored
            .keys
            .iter()
            .map(|(id, wrapped, _)| {
                master
                    .open_key(&secrets_key_aad(org, *id), wrapped)
                    .map(|k| (*id, k))
                    .map_err(|_| corrupt(&format!("secrets key {id}")))
            })
            .collect::<Result<_, _>>()?;
        let digest = master
            .open_key(&digest_key_aad(org), &stored.digest_key)
            .map_err(|_| corrupt("the digest key"))?;
        Ok(OrgKeys {
            current: stored.current,
            keks,
            digest,
        })
    }

    fn kek(&self, id: u32) -> Option<&[u8; 32]> {
        self.keks
            .iter()
            .find(|(k, _)| *k == id)
            .map(|(_, key)| &**key)
    }

    /// Seals `value` for `place` under a fresh data key and the current secrets key.
    pub fn seal(&self, place: Place<'_>, value: &[u8]) -> Result<Sealed, SecretError> {
        self.seal_with(self.current, place, value)
    }

    /// Seals under secrets key `key_id` (a rotation re-wraps under a new one).
    pub fn seal_with(
        &self,
        key_id: u32,
        place: Place<'_>,
        value: &[u8],
    ) -> Result<Sealed, SecretError> {
        let kek = self.kek(key_id).ok_or(SecretError::KeysChanged)?;
        let dek = random_key()?;
        let ciphertext =
            sealing::seal(&dek, &place.aad(VALUE, key_id), value).map_err(sealed_err)?;
        let wrapped_key =
            sealing::seal(kek, &place.aad(DATA_KEY, key_id), &*dek).map_err(sealed_err)?;
        Ok(Sealed {
            key_id,
            wrapped_key,
            ciphertext,
        })
    }

    /// The data key of `sealed`, opened.
    fn data_key(
        &self,
        place: Place<'_>,
        sealed: &Sealed,
    ) -> Result<Zeroizing<[u8; 32]>, SecretError> {
        let kek = self.kek(sealed.key_id).ok_or_else(|| {
            SecretError::Corrupt(format!(
                "{} (secrets key {} is gone)",
                place.shown(),
                sealed.key_id
            ))
        })?;
        sealing::open_key(
            kek,
            &place.aad(DATA_KEY, sealed.key_id),
            &sealed.wrapped_key,
        )
        .map_err(|_| SecretError::Corrupt(format!("the data key of {}", place.shown())))
    }

    /// The value sealed for `place`; an error (never another value) if it was sealed
    /// for anywhere else.
    pub fn open(
        &self,
        place: Place<'_>,
        sealed: &Sealed,
    ) -> Result<Zeroizing<Vec<u8>>, SecretError> {
        let dek = self.data_key(place, sealed)?;
        sealing::open(&dek, &place.aad(VALUE, sealed.key_id), &sealed.ciphertext)
            .map_err(|_| SecretError::Corrupt(format!("the value of {}", place.shown())))
    }

    /// `sealed` with its data key wrapped under secrets key `to` instead (rotation:
    /// the value's ciphertext is unchanged).
    pub fn rewrap(
        &self,
        place: Place<'_>,
        sealed: &Sealed,
        to: u32,
    ) -> Result<Sealed, SecretError> {
        let dek = self.data_key(place, sealed)?;
        let kek = self.kek(to).ok_or(SecretError::KeysChanged)?;
        // The value is bound to its key id too: it is sealed again under the same data key.
        let value = sealing::open(&dek, &place.aad(VALUE, sealed.key_id), &sealed.ciphertext)
            .map_err(|_| SecretError::Corrupt(format!("the value of {}", place.shown())))?;
        Ok(Sealed {
            key_id: to,
            wrapped_key: sealing::seal(kek, &place.aad(DATA_KEY, to), &*dek).map_err(sealed_err)?,
            ciphertext: sealing::seal(&dek, &place.aad(VALUE, to), &value).map_err(sealed_err)?,
        })
    }

    /// The keyed digest of a value, as listings show it.
    pub fn digest(&self, app: Option<&str>, name: &str, value: &[u8]) -> [u8; 32] {
        let mut mac = <hmac::Hmac<sha2::Sha256>>::new_from_slice(&*self.digest)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(&aad(
            DIGEST,
            &[
                app.unwrap_or("").as_bytes(),
                &[u8::from(app.is_some())],
                name.as_bytes(),
                value,
            ],
        ));
        mac.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> (tempfile::TempDir, MasterKey, OrgKeys, SecretKeys) {
        let dir = tempfile::tempdir().unwrap();
        let master = MasterKey::load_or_create(&dir.path().join("k")).unwrap();
        let (k, stored) = OrgKeys::generate(&master, "acme", 1).unwrap();
        (dir, master, k, stored)
    }

    fn place<'a>(app: Option<&'a str>, name: &'a str, version: u64) -> Place<'a> {
        Place {
            org: "acme",
            app,
            name,
            version,
        }
    }

    #[test]
    fn a_value_opens_only_in_its_place() {
        let (_d, master, k, stored) = keys();
        let here = place(Some("web"), "DB_URL", 3);
        let s = k.seal(here, b"postgres://secret").unwrap();
        assert_eq!(&*k.open(here, &s).unwrap(), b"postgres://secret");
        for elsewhere in [
            place(Some("api"), "DB_URL", 3),
            place(None, "DB_URL", 3),
            place(Some("web"), "DB_URI", 3),
            place(Some("web"), "DB_URL", 4),
            Place {
                org: "beta",
                ..here
            },
        ] {
            assert!(
                matches!(k.open(elsewhere, &s), Err(SecretError::Corrupt(_))),
                "{elsewhere:?}"
            );
        }
        // A data key moved between records does not open either.
        let other = k.seal(place(Some("web"), "API_KEY", 1), b"x").unwrap();
        let swapped = Sealed {
            wrapped_key: other.wrapped_key.clone(),
            ..s.clone()
        };
        assert!(k.open(here, &swapped).is_err());
        // Another org's keys open nothing of this one's, and the stored form reopens.
        let (_d2, _, other_org, _) = keys();
        assert!(other_org.open(here, &s).is_err());
        let again = OrgKeys::unwrap(&master, &stored).unwrap();
        assert_eq!(&*again.open(here, &s).unwrap(), b"postgres://secret");
        // The plaintext appears nowhere in what is stored.
        assert!(!s.ciphertext.windows(8).any(|w| w == b"postgres"));
    }

    #[test]
    fn a_secrets_key_is_not_a_root_key() {
        let (_d, master, _k, stored) = keys();
        // A wrapped secrets key put where a root key belongs does not unwrap as one.
        assert!(master.unwrap_key("acme", 1, &stored.keys[0].1).is_err());
        assert!(
            master
                .open_key(&secrets_key_aad("acme", 2), &stored.keys[0].1)
                .is_err()
        );
        assert!(
            master
                .open_key(&secrets_key_aad("beta", 1), &stored.keys[0].1)
                .is_err()
        );
    }

    #[test]
    fn digests_are_keyed_and_bound_to_name_and_app() {
        let (_d, _, k, _) = keys();
        let d = k.digest(Some("web"), "A", b"v");
        assert_eq!(d, k.digest(Some("web"), "A", b"v"));
        assert_ne!(d, k.digest(Some("web"), "B", b"v"));
        assert_ne!(d, k.digest(Some("api"), "A", b"v"));
        assert_ne!(d, k.digest(None, "A", b"v"));
        let (_d2, _, other, _) = keys();
        assert_ne!(d, other.digest(Some("web"), "A", b"v"));
    }

    #[test]
    fn rewrapping_keeps_the_value_under_a_new_key() {
        let (_d, master, mut k, _) = keys();
        let here = place(None, "A", 1);
        let s = k.seal(here, b"v").unwrap();
        let kek2 = random_key().unwrap();
        k.keks.push((2, kek2));
        let moved = k.rewrap(here, &s, 2).unwrap();
        assert_eq!(moved.key_id, 2);
        assert_eq!(&*k.open(here, &moved).unwrap(), b"v");
        k.keks.retain(|(id, _)| *id == 2);
        assert!(k.open(here, &s).is_err(), "the old key is gone");
        assert_eq!(&*k.open(here, &moved).unwrap(), b"v");
        drop(master);
    }
}
