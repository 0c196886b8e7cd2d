//! Revocation: of a token and, following the lineage tree, of every token minted from
//! it (Vault's token tree), in one transaction; the deny-list follows through the feed.

use std::collections::HashSet;

use super::{Authority, Principal, RevokeError};
use crate::audit::{action, token_label};
use crate::caveats::{Action, Resource};
use crate::model::{AuditEvent, Change, FeedEntry, Outcome, Revocation, TokenRecord};
use crate::store::{DenyEntry, StoreError, Tx};
use crate::token::TokenId;

/// What a revocation did.
#[derive(Debug, Clone)]
pub struct Revoked {
    /// The token's record, as revoked.
    pub record: TokenRecord,
    /// How many of its descendants were revoked with it.
    pub descendants: usize,
    /// It was revoked already (nothing changed).
    pub already: bool,
}

/// How to revoke.
#[derive(Debug, Clone, Copy, Default)]
pub struct RevokeOptions {
    /// Revoke only the token: its children move up to its parent and live on.
    pub orphan: bool,
    /// Take effect this many seconds from now (a rotation's overlap); 0 is at once.
    pub delay_secs: u64,
}

/// Marks `rec` revoked from `effective` (keeping an earlier effect), writes its deny-list
/// entry and publishes it.
fn mark(
    tx: &mut dyn Tx,
    rec: &mut TokenRecord,
    now: u64,
    effective: u64,
) -> Result<(), StoreError> {
    let effective = rec
        .revoked
        .map_or(effective, |r| r.effective.min(effective));
    rec.revoked = Some(Revocation { at: now, effective });
    tx.put_token(rec)?;
    let entry = DenyEntry {
        effective,
        expires: rec.expires,
    };
    tx.put_revocation(&rec.id, entry)?;
    tx.publish(
        &Change::Revoked {
            token: rec.id,
            effective,
            expires: rec.expires,
        },
        now,
    )?;
    Ok(())
}

/// Revokes `id` and (unless orphaning) its descendants; the transaction body of every
/// revocation.
pub(super) fn revoke_in(
    tx: &mut dyn Tx,
    id: &TokenId,
    opts: RevokeOptions,
    now: u64,
    actor: crate::model::Actor,
) -> Result<Revoked, RevokeError> {
    let mut rec = tx.token(id)?.ok_or(RevokeError::NotFound)?;
    let effective = now.saturating_add(opts.delay_secs);
    if rec.revoked.is_some_and(|r| r.effective <= effective) {
        return Ok(Revoked {
            record: rec,
            descendants: 0,
            already: true,
        });
    }
    mark(tx, &mut rec, now, effective)?;
    let mut descendants = 0;
    let children = tx.children(id)?;
    if opts.orphan {
        // They live on, under the revoked token's parent: revoking an ancestor still
        // reaches them.
        for child in children {
            if let Some(mut c) = tx.token(&child)? {
                c.parent = rec.parent;
                tx.put_token(&c)?;
            }
        }
    } else {
        let mut seen = HashSet::from([*id]);
        let mut queue = children;
        while let Some(next) = queue.pop() {
            if !seen.insert(next) {
                continue;
            }
            let Some(mut c) = tx.token(&next)? else {
                continue;
            };
            if c.expires > now && !c.is_revoked_at(effective) {
                mark(tx, &mut c, now, effective)?;
                descendants += 1;
            }
            queue.extend(tx.children(&next)?);
        }
    }
    let when = if opts.delay_secs == 0 {
        String::new()
    } else {
        format!(", effective {}", crate::caveats::format_time(effective))
    };
    let detail = match (opts.orphan, descendants) {
        (true, _) => format!(
            "{} revoked{when}; its children kept (orphaned)",
            token_label(&rec)
        ),
        (false, 0) => format!("{} revoked{when}", token_label(&rec)),
        (false, n) => format!(
            "{} revoked{when}, with {n} token(s) minted from it",
            token_label(&rec)
        ),
    };
    tx.append_audit(&AuditEvent::new(
        &rec.org,
        action::TOKEN_REVOKE,
        actor,
        Outcome::Ok,
        detail,
        now,
    ))?;
    Ok(Revoked {
        record: rec,
        descendants,
        already: false,
    })
}

impl Authority {
    /// Revokes a token by id (and with it every attenuation of it, which shares the id,
    /// and every token minted from it unless `orphan`). Needs `delete` on tokens in its
    /// org (and app).
    pub async fn revoke(
        &self,
        who: &Principal,
        id: &TokenId,
        opts: RevokeOptions,
    ) -> Result<Revoked, RevokeError> {
        let rec = self.read_token(id).await?.ok_or(RevokeError::NotFound)?;
        self.authorize_revocation(who, &rec)?;
        self.revoke_committed(who, rec.id, opts).await
    }

    /// Revokes the presented token itself. The token as minted may always do so; an
    /// attenuated copy needs `delete` on tokens like any other revoker, so that a narrow
    /// copy handed to someone else cannot kill the original.
    pub async fn revoke_self(
        &self,
        who: &Principal,
        opts: RevokeOptions,
    ) -> Result<Revoked, RevokeError> {
        let rec = self
            .read_token(&who.token_id())
            .await?
            .ok_or(RevokeError::NotFound)?;
        if !is_as_minted(who, &rec) {
            self.authorize_revocation(who, &rec)?;
        }
        self.revoke_committed(who, rec.id, opts).await
    }

    /// Revoking `rec` needs `delete` on tokens in its org (and app).
    fn authorize_revocation(&self, who: &Principal, rec: &TokenRecord) -> Result<(), RevokeError> {
        let access = self.access(
            who,
            &rec.org,
            rec.app.as_deref(),
            Resource::Tokens,
            Action::Delete,
        );
        self.require(who, &access).map_err(RevokeError::Denied)
    }

    async fn revoke_committed(
        &self,
        who: &Principal,
        id: TokenId,
        opts: RevokeOptions,
    ) -> Result<Revoked, RevokeError> {
        let now = self.clock.now();
        let actor = who.actor();
        let done = self
            .store
            .write(move |tx| revoke_in(tx, &id, opts, now, actor))
            .await?;
        self.apply_committed(&done.changes).await;
        Ok(done.value)
    }

    /// Applies what a commit published (revocations, retirements) at once.
    pub(super) async fn apply_committed(&self, changes: &[FeedEntry]) {
        self.applied(|| {
            for e in changes {
                self.apply_change(&e.change);
            }
        })
        .await;
    }

    /// A ledger record, read from the store.
    pub(super) async fn read_token(&self, id: &TokenId) -> Result<Option<TokenRecord>, StoreError> {
        let id = *id;
        self.store.read(move |r| r.token(&id)).await
    }
}

/// As minted: the same first-party caveats and no third-party ones (a copy that only
/// added a discharge requirement is still a copy).
fn is_as_minted(who: &Principal, rec: &TokenRecord) -> bool {
    who.third_party_caveats() == 0
        && who.caveats().len() == rec.caveats.len()
        && who
            .caveats()
            .iter()
            .zip(&rec.caveats)
            .all(|(c, minted)| c.to_string() == *minted)
}
