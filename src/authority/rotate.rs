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

/// `ci` → `ci-20261202`; a date suffix of an earlier rotation is replaced, and the name
/// is cut to fit the ledger's limit.
pub(super) fn rotated_name(name: &str, now: u64) -> String {
    let date: String = format_time(now)
        .chars()
        .take(10)
        .filter(|c| *c != '-')
        .collect();
    let base = match name.rsplit_once('-') {
        Some((head, tail)) if tail.len() == 8 && tail.bytes().all(|b| b.is_ascii_digit()) => head,
        _ => name,
    };
    let room = super::mint::MAX_NAME - date.len() - 1;
    let base: String = base.chars().take(room).collect();
    format!("{base}-{date}")
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
        if old.id == who.token_id() {
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
        let limit = [who.expires(), parent_expiry].into_iter().flatten().min();
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
        self.require_implied(who, &old.org, &caveats, old.kind)?;
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
        let name = rotated_name(&old.name, now);
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
        assert_eq!(rotated_name("ci", now), "ci-20261202");
        assert_eq!(rotated_name("ci-20250101", now), "ci-20261202");
        assert_eq!(rotated_name("my-app", now), "my-app-20261202");
        let long = "x".repeat(64);
        let r = rotated_name(&long, now);
        assert_eq!(r.chars().count(), 64);
        assert!(r.ends_with("-20261202"));
    }
}
