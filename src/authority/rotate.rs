//! Rotation as one step (the runbook: mint the new token, hand it over, verify, revoke
//! the old): a sibling with the same creator, kind and caveats takes over the old
//! token's place in the lineage, and the old one is revoked at the end of an overlap.

use super::mint::{NewToken, expiry};
use super::revoke::{RevokeOptions, revoke_one};
use super::{
    Authority, MintError, Minted, Principal, RevokeError, RotateError, ThirdPartyError, presets,
};
use crate::audit::{action, token_label};
use crate::caveats::{Action, MAX_TIME, Resource, format_time};
use crate::model::{AuditEvent, Outcome, TokenKind, TokenRecord};

/// What a rotation did.
#[derive(Debug)]
pub struct Rotated {
    /// The replacement (shown once).
    pub minted: Minted,
    /// The old token, revoked from `ends` on.
    pub replaced: TokenRecord,
    /// When the old token (and every attenuated copy of it) stops working.
    pub ends: u64,
    /// How many tokens minted by the old one moved under the replacement.
    pub moved: usize,
}

/// `ci` → `ci-20261202`; a date suffix of an earlier rotation (with its counter) is
/// replaced; when the org has that name already (a second rotation that day), `-2`,
/// `-3`… follows. The name is cut to fit the ledger's limit.
pub(super) fn rotated_name(name: &str, now: u64, taken: &dyn Fn(&str) -> bool) -> String {
    let date: String = format_time(now)
        .chars()
        .take(10)
        .filter(|c| *c != '-')
        .collect();
    let is_date = |s: &str| s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit());
    let is_count = |s: &str| !s.is_empty() && s.len() <= 4 && s.bytes().all(|b| b.is_ascii_digit());
    let mut base = name;
    if let Some((head, tail)) = base.rsplit_once('-')
        && is_count(tail)
        && head.rsplit_once('-').is_some_and(|(_, d)| is_date(d))
    {
        base = head;
    }
    if let Some((head, tail)) = base.rsplit_once('-')
        && is_date(tail)
    {
        base = head;
    }
    let candidate = |n: u32| {
        let suffix = if n == 1 {
            format!("-{date}")
        } else {
            format!("-{date}-{n}")
        };
        let room = super::mint::MAX_NAME.saturating_sub(suffix.len());
        let cut: String = base.chars().take(room).collect();
        format!("{cut}{suffix}")
    };
    (1..=9999)
        .map(candidate)
        .find(|c| !taken(c))
        .unwrap_or_else(|| candidate(9999))
}

impl Authority {
    /// Rotates token `id`: mints a sibling (same creator, kind and caveats; expiring
    /// after `expiry_secs`, by default the old token's lifetime from now, never after
    /// its creator), moves the tokens the old one minted under it, and revokes the old
    /// one from `overlap_secs` from now (0: at once). Needs what revoking it needs plus
    /// `create` on tokens, and every right the replacement grants; a token cannot
    /// rotate itself.
    pub async fn rotate(
        &self,
        who: &Principal,
        id: &str,
        overlap_secs: u64,
        expiry_secs: Option<u64>,
    ) -> Result<Rotated, RotateError> {
        let old = self.resolve(who, id).await?;
        for action in [Action::Delete, Action::Create] {
            let access = self.access(who, &old.org, old.app.as_deref(), Resource::Tokens, action);
            self.require(who, &access).map_err(RotateError::Denied)?;
        }
        // A session rotates as the token it was signed in with (and not that one).
        let minter = self.minter_of(who).await?;
        if old.id == who.token_id() || old.id == minter.id {
            return Err(RotateError::OwnToken);
        }
        if !self.lineage_allows(who, &old).await? {
            return Err(RotateError::Lineage(super::OutsideLineage));
        }
        if old.kind == TokenKind::Operator {
            return Err(RotateError::Operator);
        }
        if old.revoked.is_some() {
            return Err(RotateError::Revoked);
        }
        let org = self
            .read_org(&old.org)
            .await?
            .ok_or(RotateError::NotFound)?;
        let now = self.clock.now();
        // Nothing outlives its minter: the replacement ends by its lineage parent's
        // expiry, and by the presenting token's.
        let parent_expiry = match old.parent {
            Some(p) => self.read_token(&p).await?.map(|r| r.expires),
            None => None,
        };
        let limit = [minter.expires, parent_expiry].into_iter().flatten().min();
        let expires = match expiry_secs {
            Some(_) => expiry(expiry_secs, org.max_expiry_secs, limit, now)?,
            None => {
                let lifetime = old.expires.saturating_sub(old.created).max(1);
                let cap = org
                    .max_expiry_secs
                    .map_or(u64::MAX, |m| now.saturating_add(m));
                now.saturating_add(lifetime)
                    .min(cap)
                    .min(limit.unwrap_or(u64::MAX))
                    .min(MAX_TIME)
            }
        };
        let caveats = presets::caveats(old.kind, &old.org, old.app.as_deref(), expires)?;
        self.require_implied(who, &minter.held, &caveats, old.kind)?;
        // A token that needs a third party's discharge is replaced by one that needs it
        // too, under the same conditions (sealed to the third party's current key).
        let (o, old_id) = (old.org.clone(), old.id);
        let required = match self
            .store
            .read(move |r| super::third_parties::requirements_of(r, &o, &old_id))
            .await?
            .into_iter()
            .next()
        {
            Some(req) => {
                let tp = self
                    .third_party_for(&old.org, &req.third_party)
                    .await
                    .map_err(|e| RotateError::Mint(MintError::ThirdParty(Box::new(e))))?;
                Some((tp, req))
            }
            None => None,
        };
        let key = self.minting_key(&org).await?;
        let org_name = old.org.clone();
        let names: std::collections::HashSet<String> = self
            .store
            .read(move |r| {
                Ok::<_, crate::store::StoreError>(
                    r.ledger(&org_name)?
                        .into_iter()
                        .map(|e| e.record.name)
                        .collect(),
                )
            })
            .await?;
        let name = rotated_name(&old.name, now, &|n| names.contains(n));
        let mut minted = self.build_token(
            &key,
            &NewToken {
                org: &old.org,
                key_version: org.current_key,
                kind: old.kind,
                app: old.app.as_deref(),
                name: &name,
                caveats: &caveats,
                creator: old.creator,
                now,
                expires,
                third_party: required
                    .as_ref()
                    .map(|(tp, req)| (tp, req.conditions.as_slice())),
            },
        )?;
        minted.record.parent = old.parent;
        let requirement = match required {
            Some((tp, mut req)) => {
                req.token = minted.record.id;
                req.added = now;
                req.key = tp
                    .current_key()
                    .ok_or(MintError::ThirdParty(Box::new(ThirdPartyError::UnknownKey)))?
                    .id;
                Some(req)
            }
            None => None,
        };
        let ends = now.saturating_add(overlap_secs);
        let event = AuditEvent::new(
            &old.org,
            action::TOKEN_ROTATE,
            who.actor(),
            Outcome::Ok,
            format!(
                "{} rotated: replaced by {}; the old one ends {}",
                token_label(&old),
                token_label(&minted.record),
                format_time(ends)
            ),
            now,
        );
        let (new, old_id, actor) = (minted.record.clone(), old.id, who.actor());
        let done = self
            .store
            .write(move |tx| {
                let current = tx.token(&old_id)?.ok_or(RotateError::NotFound)?;
                if current.revoked.is_some() {
                    return Err(RotateError::Revoked);
                }
                if let Some(req) = &requirement {
                    super::third_parties::still_holds(tx, req)
                        .map_err(|e| RotateError::Mint(MintError::ThirdParty(Box::new(e))))?;
                    tx.put_requirement(req)?;
                }
                tx.put_token(&new)?;
                let children = tx.children(&old_id)?;
                for child in &children {
                    if let Some(mut c) = tx.token(child)? {
                        c.parent = Some(new.id);
                        tx.put_token(&c)?;
                    }
                }
                let opts = RevokeOptions {
                    orphan: false,
                    delay_secs: overlap_secs,
                };
                let revoked = revoke_one(tx, &old_id, opts, now, actor).map_err(|e| match e {
                    RevokeError::NotFound
                    | RevokeError::Denied(_)
                    | RevokeError::Lineage(_)
                    | RevokeError::Id(_) => RotateError::NotFound,
                    RevokeError::Store(s) => RotateError::Store(s),
                })?;
                tx.append_audit(&event)?;
                Ok((children.len(), revoked.record))
            })
            .await?;
        self.apply_committed(&done.changes).await;
        let (moved, replaced) = done.value;
        Ok(Rotated {
            minted,
            replaced,
            ends,
            moved,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::rotated_name;

    #[test]
    fn names_get_one_date_suffix() {
        let now = 1_796_169_600; // 2026-12-02
        let free = |_: &str| false;
        assert_eq!(rotated_name("ci", now, &free), "ci-20261202");
        assert_eq!(rotated_name("ci-20250101", now, &free), "ci-20261202");
        assert_eq!(rotated_name("ci-20250101-3", now, &free), "ci-20261202");
        assert_eq!(rotated_name("my-app", now, &free), "my-app-20261202");
        assert_eq!(rotated_name("build-2", now, &free), "build-2-20261202");
        let long = "x".repeat(64);
        let r = rotated_name(&long, now, &free);
        assert_eq!(r.chars().count(), 64);
        assert!(r.ends_with("-20261202"));
    }

    #[test]
    fn a_second_rotation_on_one_day_gets_a_distinct_name() {
        let now = 1_796_169_600;
        let taken = ["ci-20261202", "ci-20261202-2"];
        let used = |n: &str| taken.contains(&n);
        assert_eq!(rotated_name("ci", now, &used), "ci-20261202-3");
        assert_eq!(rotated_name("ci-20261202-2", now, &used), "ci-20261202-3");
        let long = "x".repeat(64);
        let first = rotated_name(&long, now, &|_| false);
        let second = rotated_name(&long, now, &|n| n == first);
        assert_ne!(first, second);
        assert_eq!(second.chars().count(), 64);
    }
}
