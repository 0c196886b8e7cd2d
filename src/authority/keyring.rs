//! The live root keys, by org and version, in memory: what verification reads.

use std::collections::HashMap;

use zeroize::Zeroizing;

use super::shared::Shared;
use crate::token::{KEY_LEN, KeyResolver, RootKey};

#[derive(Default)]
struct OrgKeys {
    live: Vec<(u32, Zeroizing<[u8; KEY_LEN]>)>,
    retired: Vec<u32>,
}

/// Root keys in memory. A retired version is remembered (without its key) so that a
/// token minted under it is told `key_retired` rather than `unknown_key`.
#[derive(Default)]
pub(crate) struct Keyring {
    orgs: Shared<HashMap<String, OrgKeys>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("orgs", &self.orgs.read().len())
            .finish_non_exhaustive()
    }
}

/// Keys to load at once: (org, version, key or `None` if retired).
pub(crate) type Loaded = Vec<(String, u32, Option<RootKey>)>;

impl Keyring {
    /// Adds a live version (idempotent; a version known to be retired stays retired).
    pub(crate) fn insert(&self, org: &str, version: u32, key: &RootKey) {
        let mut orgs = self.orgs.write();
        let keys = orgs.entry(org.to_owned()).or_default();
        if keys.retired.contains(&version) || keys.live.iter().any(|(v, _)| *v == version) {
            return;
        }
        keys.live
            .push((version, Zeroizing::new(*key.expose_bytes())));
    }

    /// Forgets a version's key and remembers that it was retired.
    pub(crate) fn retire(&self, org: &str, version: u32) {
        let mut orgs = self.orgs.write();
        let keys = orgs.entry(org.to_owned()).or_default();
        keys.live.retain(|(v, _)| *v != version);
        if !keys.retired.contains(&version) {
            keys.retired.push(version);
        }
    }

    /// Whether `version` of `org` was retired.
    pub(crate) fn is_retired(&self, org: &str, version: u32) -> bool {
        self.orgs
            .read()
            .get(org)
            .is_some_and(|k| k.retired.contains(&version))
    }

    /// Whether `version` of `org` is live here.
    pub(crate) fn has(&self, org: &str, version: u32) -> bool {
        self.orgs
            .read()
            .get(org)
            .is_some_and(|k| k.live.iter().any(|(v, _)| *v == version))
    }

    /// Replaces everything (a full reload).
    pub(crate) fn replace(&self, loaded: Loaded) {
        let mut orgs: HashMap<String, OrgKeys> = HashMap::new();
        for (org, version, key) in loaded {
            let keys = orgs.entry(org).or_default();
            match key {
                Some(k) => keys.live.push((version, Zeroizing::new(*k.expose_bytes()))),
                None => keys.retired.push(version),
            }
        }
        *self.orgs.write() = orgs;
    }
}

impl KeyResolver for Keyring {
    fn root_key(&self, org: &str, key_version: u32) -> Option<RootKey> {
        let orgs = self.orgs.read();
        let keys = orgs.get(org)?;
        keys.live
            .iter()
            .find(|(v, _)| *v == key_version)
            .map(|(_, k)| RootKey::from_bytes(**k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_retire_and_reload() {
        let ring = Keyring::default();
        ring.insert("acme", 1, &RootKey::from_bytes([1; 32]));
        ring.insert("acme", 2, &RootKey::from_bytes([2; 32]));
        // Idempotent: the first key of a version stays.
        ring.insert("acme", 2, &RootKey::from_bytes([9; 32]));
        assert_eq!(ring.root_key("acme", 2).unwrap().expose_bytes(), &[2; 32]);
        assert!(ring.root_key("beta", 1).is_none());
        ring.retire("acme", 1);
        assert!(ring.root_key("acme", 1).is_none());
        assert!(ring.is_retired("acme", 1) && !ring.is_retired("acme", 2));
        // A retired version cannot come back through a late insert.
        ring.insert("acme", 1, &RootKey::from_bytes([1; 32]));
        assert!(!ring.has("acme", 1));
        ring.replace(vec![
            ("beta".into(), 1, Some(RootKey::from_bytes([3; 32]))),
            ("beta".into(), 2, None),
        ]);
        assert!(ring.root_key("acme", 2).is_none(), "replaced wholesale");
        assert!(ring.has("beta", 1) && ring.is_retired("beta", 2));
        assert!(!format!("{ring:?}").contains('3'), "no key bytes in Debug");
    }
}
