//! Revoked token ids in memory, with when each revocation takes effect.

use std::collections::HashMap;

use super::shared::Shared;
use crate::store::DenyEntry;
use crate::token::TokenId;

/// The deny-list: verification refuses a token whose entry is in effect.
#[derive(Debug, Default)]
pub(crate) struct DenyList {
    entries: Shared<HashMap<TokenId, DenyEntry>>,
}

impl DenyList {
    /// Adds an entry; if the token is already listed, the earlier effect wins (a
    /// revocation at once overrides a pending one with overlap, never the reverse).
    pub(crate) fn insert(&self, id: TokenId, entry: DenyEntry) {
        let mut entries = self.entries.write();
        entries
            .entry(id)
            .and_modify(|e| {
                if entry.effective < e.effective {
                    *e = entry;
                }
            })
            .or_insert(entry);
    }

    /// Whether a revocation of `id` is in effect at `now`.
    pub(crate) fn is_revoked(&self, id: &TokenId, now: u64) -> bool {
        self.entries
            .read()
            .get(id)
            .is_some_and(|e| e.effective <= now)
    }

    /// Replaces everything (a full reload).
    pub(crate) fn replace(&self, entries: impl IntoIterator<Item = (TokenId, DenyEntry)>) {
        let mut map = HashMap::new();
        for (id, entry) in entries {
            map.entry(id)
                .and_modify(|e: &mut DenyEntry| {
                    if entry.effective < e.effective {
                        *e = entry;
                    }
                })
                .or_insert(entry);
        }
        *self.entries.write() = map;
    }

    /// Drops the entries of tokens expired by `now` (they fail verification anyway).
    pub(crate) fn collect_garbage(&self, now: u64) -> usize {
        let mut entries = self.entries.write();
        let before = entries.len();
        entries.retain(|_, e| e.expires > now);
        before - entries.len()
    }

    /// How many entries are held.
    pub(crate) fn len(&self) -> usize {
        self.entries.read().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(effective: u64, expires: u64) -> DenyEntry {
        DenyEntry { effective, expires }
    }

    #[test]
    fn effect_time_earliest_wins_and_gc() {
        let list = DenyList::default();
        let (a, b) = (TokenId([1; 16]), TokenId([2; 16]));
        list.insert(a, entry(100, 1000));
        assert!(!list.is_revoked(&a, 99));
        assert!(list.is_revoked(&a, 100));
        // A later (overlap) revocation does not postpone one already in effect.
        list.insert(a, entry(500, 1000));
        assert!(list.is_revoked(&a, 100));
        // An immediate one overrides a pending overlap.
        list.insert(b, entry(500, 2000));
        list.insert(b, entry(200, 2000));
        assert!(list.is_revoked(&b, 200));
        assert_eq!(list.collect_garbage(1000), 1);
        assert!(!list.is_revoked(&a, 1500), "expired entries go");
        assert!(list.is_revoked(&b, 1500));
        list.replace([(a, entry(1, 5))]);
        assert_eq!(list.len(), 1);
        assert!(!list.is_revoked(&b, 1500));
    }
}
