//! Revocation: of a token and, following the lineage tree, of every token minted from
//! it (Vault's token tree), in one transaction; the deny-list follows through the feed.

use std::collections::HashSet;

use super::{Authority, OutsideLineage, Principal, RevokeError};
use crate::audit::{action, token_label};
use crate::caveats::{Action, Resource};
use crate::model::{
    Actor, AuditEvent, Change, FeedEntry, Outcome, Revocation, TokenKind, TokenRecord,
};
use crate::store::{DenyEntry, StoreError, Tx};
use crate::token::TokenId;

/// How far up the lineage tree a revocation looks for the caller (deeper trees are
/// not minted in practice; past it, the answer is no).
const MAX_LINEAGE_WALK: usize = 1024;

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
        &rec.org,
        &Change::Revoked {
            token: rec.id,
            effective,
            expires: rec.expires,
        },
        now,
    )?;
    Ok(())
}

/// The first step of every revocation: marks `id` revoked from `delay_secs` from now
/// (or reports it was already), re-parenting its children when orphaning. Point reads
/// and writes only, so a flood of mints by the token cannot starve it under
/// SERIALIZABLE: once it commits, every later mint by the token is refused.
pub(super) fn revoke_one(
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
    if opts.orphan {
        // They live on, under the revoked token's parent: revoking an ancestor still
        // reaches them.
        for child in tx.children(id)? {
            if let Some(mut c) = tx.token(&child)? {
                c.parent = rec.parent;
                tx.put_token(&c)?;
            }
        }
    }
    let when = if opts.delay_secs == 0 {
        String::new()
    } else {
        format!(", effective {}", crate::caveats::format_time(effective))
    };
    let orphaned = if opts.orphan {
        "; the tokens it minted live on (orphaned)"
    } else {
        ""
    };
    tx.append_audit(&AuditEvent::new(
        &rec.org,
        action::TOKEN_REVOKE,
        actor,
        Outcome::Ok,
        format!("{} revoked{when}{orphaned}", token_label(&rec)),
        now,
    ))?;
    Ok(Revoked {
        record: rec,
        descendants: 0,
        already: false,
    })
}

/// One level of a cascade: revokes the live children of `frontier` and returns every
/// child (the next level) and how many were revoked. Mints by the tokens revoked here
/// insert into the next level, not this one, so they cannot starve it either.
fn revoke_children(
    tx: &mut dyn Tx,
    frontier: &[TokenId],
    now: u64,
) -> Result<(Vec<TokenId>, usize), StoreError> {
    let (mut next, mut revoked) = (Vec::new(), 0);
    for parent in frontier {
        for child in tx.children(parent)? {
            let Some(mut c) = tx.token(&child)? else {
                continue;
            };
            if c.expires > now && !c.is_revoked_at(now) {
                mark(tx, &mut c, now, now)?;
                revoked += 1;
            }
            next.push(child);
        }
    }
    Ok((next, revoked))
}

impl Authority {
    /// Revokes a token of the caller's org by id or id prefix (and with it every
    /// attenuation of it, which shares the id,
    /// and every token minted from it unless `orphan`). Needs `delete` on tokens in its
    /// org (and app).
    pub async fn revoke(
        &self,
        who: &Principal,
        id: &str,
        opts: RevokeOptions,
    ) -> Result<Revoked, RevokeError> {
        let rec = self.revocable(who, Some(id)).await?;
        self.revoke_committed(who, rec.id, opts).await
    }

    /// The token `who` would revoke (by id or prefix; `None`: itself), once the
    /// revocation is allowed: `delete` on tokens and the lineage rule, except that the
    /// presented token as minted may always revoke itself.
    async fn revocable(
        &self,
        who: &Principal,
        id: Option<&str>,
    ) -> Result<TokenRecord, RevokeError> {
        let rec = match id {
            Some(id) => self.resolve(who, id).await?,
            None => {
                let rec = self
                    .read_token(&who.token_id())
                    .await?
                    .ok_or(RevokeError::NotFound)?;
                if is_as_minted(who, &rec) {
                    return Ok(rec);
                }
                rec
            }
        };
        self.authorize_revocation(who, &rec)?;
        if !self.lineage_allows(who, &rec).await? {
            return Err(RevokeError::Lineage(OutsideLineage));
        }
        Ok(rec)
    }

    /// Whether `who` is an org token as minted (not an attenuated copy): what changing
    /// an app's allow-list of names that load code takes.
    pub(crate) async fn is_org_token_as_minted(&self, who: &Principal) -> Result<bool, StoreError> {
        Ok(self
            .read_token(&who.token_id())
            .await?
            .is_some_and(|own| own.kind == TokenKind::Org && is_as_minted(who, &own)))
    }

    /// Whether `who` may revoke (or rotate) `rec` by lineage, whatever its caveats
    /// allow: itself as minted (an attenuated copy shares its original's id, and may
    /// not), a token minted from it (transitively, through the lineage tree), any token
    /// of its org for an org token, and for the operator the tokens of its own org and
    /// the org tokens it issued. Never a parent or a sibling (docs/API.md).
    pub(super) async fn lineage_allows(
        &self,
        who: &Principal,
        rec: &TokenRecord,
    ) -> Result<bool, StoreError> {
        let Some(own) = self.read_token(&who.token_id()).await? else {
            return Ok(false);
        };
        let as_minted = is_as_minted(who, &own);
        // A session acts as the token it was signed in with: as minted only if what
        // was pasted was that token as minted.
        let (own, as_minted) = match (own.kind, own.parent) {
            (TokenKind::Session, Some(parent)) if as_minted => {
                let Some(pasted) = self.read_token(&parent).await? else {
                    return Ok(false);
                };
                let held = &own.caveats[..own.caveats.len().saturating_sub(1)];
                let as_minted = held == pasted.caveats.as_slice();
                (pasted, as_minted)
            }
            _ => (own, as_minted),
        };
        let allowed = match own.kind {
            TokenKind::Org => rec.org == own.org,
            TokenKind::Operator => rec.org == own.org || rec.creator == Some(own.id),
            _ if rec.id == own.id => as_minted,
            _ => {
                let (me, start) = (own.id, rec.parent);
                self.store
                    .read(move |r| {
                        // Up the tree from the target: is the caller an ancestor?
                        let mut at = start;
                        for _ in 0..MAX_LINEAGE_WALK {
                            match at {
                                Some(p) if p == me => return Ok::<_, StoreError>(true),
                                Some(p) => at = r.token(&p)?.and_then(|t| t.parent),
                                None => break,
                            }
                        }
                        Ok(false)
                    })
                    .await?
            }
        };
        Ok(allowed)
    }

    /// What revoking token `id` (by id or prefix; `None`: the presented token itself)
    /// would take with it, with the same checks as the revocation, changing nothing:
    /// the token and its live descendants (none when `orphan`), nearest first.
    pub async fn revoke_preview(
        &self,
        who: &Principal,
        id: Option<&str>,
        orphan: bool,
    ) -> Result<(TokenRecord, Vec<TokenRecord>), RevokeError> {
        let rec = self.revocable(who, id).await?;
        if orphan {
            return Ok((rec, Vec::new()));
        }
        let now = self.clock.now();
        let root = rec.id;
        let live = self
            .store
            .read(move |r| {
                let mut seen = HashSet::from([root]);
                let (mut frontier, mut live) = (vec![root], Vec::new());
                while !frontier.is_empty() {
                    let mut next = Vec::new();
                    for parent in &frontier {
                        for child in r.children(parent)? {
                            if !seen.insert(child) {
                                continue;
                            }
                            if let Some(c) = r.token(&child)? {
                                if c.expires > now && !c.is_revoked_at(now) {
                                    live.push(c);
                                }
                                next.push(child);
                            }
                        }
                    }
                    frontier = next;
                }
                Ok::<_, StoreError>(live)
            })
            .await?;
        Ok((rec, live))
    }

    /// Revokes the presented token itself. The token as minted may always do so; an
    /// attenuated copy needs `delete` on tokens like any other revoker, so that a narrow
    /// copy handed to someone else cannot kill the original.
    pub async fn revoke_self(
        &self,
        who: &Principal,
        opts: RevokeOptions,
    ) -> Result<Revoked, RevokeError> {
        let rec = self.revocable(who, None).await?;
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
        self.revoke_tree(id, opts, who.actor()).await
    }

    /// Revokes `id`, then (unless orphaning) its descendants level by level. Run again
    /// on a revoked token, it finishes a cascade that was cut short.
    pub(super) async fn revoke_tree(
        &self,
        id: TokenId,
        opts: RevokeOptions,
        actor: Actor,
    ) -> Result<Revoked, RevokeError> {
        let now = self.clock.now();
        let done = self
            .store
            .write(move |tx| revoke_one(tx, &id, opts, now, actor))
            .await?;
        self.apply_committed(&done.changes).await;
        let mut revoked = done.value;
        if !opts.orphan && opts.delay_secs == 0 {
            revoked.descendants = self.cascade(&revoked.record, actor).await?;
        }
        Ok(revoked)
    }

    /// Revokes every live descendant of the (revoked) token `root`, one lineage level per
    /// transaction; how many.
    pub(super) async fn cascade(
        &self,
        root: &TokenRecord,
        actor: Actor,
    ) -> Result<usize, RevokeError> {
        let now = self.clock.now();
        let mut seen = HashSet::from([root.id]);
        let mut frontier = vec![root.id];
        let mut total = 0;
        while !frontier.is_empty() {
            let level = frontier.clone();
            let done = self
                .store
                .write(move |tx| revoke_children(tx, &level, now))
                .await?;
            self.apply_committed(&done.changes).await;
            let (next, revoked) = done.value;
            total += revoked;
            frontier = next.into_iter().filter(|id| seen.insert(*id)).collect();
        }
        if total > 0 {
            let event = AuditEvent::new(
                &root.org,
                action::TOKEN_REVOKE,
                actor,
                Outcome::Ok,
                format!(
                    "{total} token(s) minted from {} revoked with it",
                    token_label(root)
                ),
                now,
            );
            self.store.write(move |tx| tx.append_audit(&event)).await?;
        }
        Ok(total)
    }

    /// Finishes cascades a crash (or a lost database) cut short: a token whose
    /// revocation is in effect keeps no live child. Part of compaction.
    pub(super) async fn sweep_cascades(&self) -> Result<usize, RevokeError> {
        let now = self.clock.now();
        let unfinished = self
            .store
            .read(move |r| {
                let mut out = Vec::new();
                for org in r.orgs()? {
                    let ledger = r.ledger(&org.name)?;
                    let live: HashSet<TokenId> = ledger
                        .iter()
                        .filter(|e| e.record.expires > now && !e.record.is_revoked_at(now))
                        .map(|e| e.record.id)
                        .collect();
                    for e in ledger {
                        let rec = e.record;
                        if rec.is_revoked_at(now)
                            && rec.expires > now
                            && r.children(&rec.id)?.iter().any(|c| live.contains(c))
                        {
                            out.push(rec);
                        }
                    }
                }
                Ok::<_, StoreError>(out)
            })
            .await?;
        let mut total = 0;
        for rec in &unfinished {
            total += self.cascade(rec, Actor::default()).await?;
        }
        Ok(total)
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
pub(super) fn is_as_minted(who: &Principal, rec: &TokenRecord) -> bool {
    who.third_party_caveats() == 0
        && who.caveats().len() == rec.caveats.len()
        && who
            .caveats()
            .iter()
            .zip(&rec.caveats)
            .all(|(c, minted)| c.to_string() == *minted)
}
