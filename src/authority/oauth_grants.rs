//! OAuth grants after consent (docs/OAUTH.md, "Grants"): listed and revoked by the
//! people who made them (or by tokens above theirs in the lineage), revoked by their
//! client (RFC 7009), and ended whole when a code or refresh token is used twice.

use super::oauth_flow::{ClientCredentials, TokenError, hash};
use super::{Authority, Classify, ErrorClass, Principal, RevokeError, RevokeOptions};
use crate::audit::action;
use crate::caveats::Excerpt;
use crate::model::{Actor, AuditEvent, OAuthClient, OAuthGrant, OAuthKeyKind, Outcome};
use crate::store::StoreError;

/// Why a person's grant listing or revocation failed.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    /// Not a grant the caller may see (or none of that id).
    #[error("no such OAuth grant")]
    NotFound,
    /// Another org's grants.
    #[error("not your org")]
    OtherOrg,
    /// Revoking failed.
    #[error(transparent)]
    Revoke(#[from] RevokeError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Classify for GrantError {
    fn class(&self) -> ErrorClass {
        match self {
            GrantError::NotFound => ErrorClass::NotFound,
            GrantError::OtherOrg => ErrorClass::Denied,
            GrantError::Revoke(e) => e.class(),
            GrantError::Store(e) => e.class(),
        }
    }
}

/// A grant as a person sees it.
#[derive(Debug, Clone)]
pub struct GrantView {
    /// The grant.
    pub grant: OAuthGrant,
    /// The last time the client used it: a code redemption, a refresh, or a request
    /// with one of its access tokens.
    pub last_used: Option<u64>,
    /// Whether it still works (not revoked, not past its end, its signed-in token live).
    pub live: bool,
}

impl Authority {
    /// Revokes grant `id` and every access token it issued that may still be live.
    pub(super) async fn end_grant(
        &self,
        id: &str,
        actor: Actor,
        why: &str,
    ) -> Result<OAuthGrant, RevokeError> {
        let now = self.clock.now();
        let id = id.to_owned();
        let why = why.to_owned();
        let grant = self
            .store
            .write(move |tx| {
                let Some(mut grant) = tx.oauth_grant(&id)? else {
                    return Ok(None);
                };
                if grant.revoked.is_none() {
                    grant.revoked = Some(now);
                    tx.put_oauth_grant(&grant)?;
                    let event = AuditEvent::new(
                        &grant.org,
                        action::OAUTH_GRANT_REVOKE,
                        actor,
                        Outcome::Ok,
                        format!(
                            "OAuth grant {} to client \"{}\" ({}) revoked: {why}",
                            grant.id,
                            Excerpt(grant.client_name.as_bytes()),
                            grant.client
                        ),
                        now,
                    );
                    tx.append_audit(&event)?;
                }
                Ok::<_, StoreError>(Some(grant))
            })
            .await?
            .value
            .ok_or(RevokeError::NotFound)?;
        for (token, expires) in &grant.tokens {
            if *expires > now {
                self.revoke_tree(*token, RevokeOptions::default(), actor)
                    .await?;
            }
        }
        Ok(grant)
    }

    /// RFC 7009: revokes an access token or a refresh token (with its whole grant)
    /// that was issued to the client `creds` authenticate. A token that is unknown,
    /// another client's, or no longer valid is not an error.
    pub async fn oauth_revoke(
        &self,
        creds: &ClientCredentials,
        token: &str,
        from: super::Client,
    ) -> Result<(), TokenError> {
        let client = self.oauth_client_of(creds).await?;
        if token.starts_with("mvt_") {
            // Verified, so that a forged identifier cannot name someone else's token.
            let Ok(who) = self.authenticate(token, from).await else {
                return Ok(());
            };
            let id = who.token_id();
            let org = client.org.clone();
            let grants = self.store.read(move |r| r.oauth_grants(&org)).await?;
            let ours = grants
                .iter()
                .any(|g| g.client == client.id && g.tokens.iter().any(|(t, _)| *t == id));
            if ours {
                let actor = Actor {
                    token: Some(id),
                    ip: who.client().ip,
                };
                self.revoke_tree(id, RevokeOptions::default(), actor)
                    .await?;
            }
            return Ok(());
        }
        let grant = self
            .grant_of(hash(token), OAuthKeyKind::Refresh, &client)
            .await?;
        if let Some(grant) = grant {
            self.end_grant(&grant.id, Actor::default(), "the client revoked it")
                .await?;
        }
        Ok(())
    }

    /// The grant of `client` that the code or refresh token (`kind`) of SHA-256 `hash`
    /// belongs to, read in one snapshot; `None` if it is unknown, of the other kind, or
    /// another client's.
    pub(super) async fn grant_of(
        &self,
        hash: [u8; 32],
        kind: OAuthKeyKind,
        client: &OAuthClient,
    ) -> Result<Option<OAuthGrant>, StoreError> {
        let grant = self
            .store
            .read(
                move |r| match r.oauth_key(&hash)?.filter(|k| k.kind == kind) {
                    Some(key) => r.oauth_grant(&key.grant),
                    None => Ok(None),
                },
            )
            .await?;
        Ok(grant.filter(|g| g.client == client.id))
    }

    /// The grants of `org` that `who` may revoke: those made under it (or under the
    /// token a dashboard session was signed in with), or under any token it may revoke
    /// by lineage (every grant of the org, for an org token), newest first.
    pub async fn oauth_grants(
        &self,
        who: &Principal,
        org: &str,
    ) -> Result<Vec<GrantView>, GrantError> {
        if who.org() != org {
            return Err(GrantError::OtherOrg);
        }
        let name = org.to_owned();
        let grants = self.store.read(move |r| r.oauth_grants(&name)).await?;
        let now = self.clock.now();
        let mut out = Vec::new();
        for grant in grants {
            let Some(parent) = self.read_token(&grant.parent).await? else {
                continue;
            };
            if !self.lineage_allows(who, &parent).await? {
                continue;
            }
            let ids: Vec<_> = grant.tokens.iter().map(|(t, _)| *t).collect();
            let used = self
                .store
                .read(move |r| {
                    let mut last = None;
                    for id in &ids {
                        last = last.max(r.last_used(id)?.map(|u| u.time));
                    }
                    Ok::<_, StoreError>(last)
                })
                .await?;
            let live = grant.is_live_at(now) && !parent.is_revoked_at(now) && parent.expires > now;
            out.push(GrantView {
                last_used: grant.last_used.max(used),
                live,
                grant,
            });
        }
        out.sort_by(|a, b| (b.grant.created, &b.grant.id).cmp(&(a.grant.created, &a.grant.id)));
        Ok(out)
    }

    /// Revokes grant `id` of `org`, which must be one [`Authority::oauth_grants`] shows
    /// `who`: the client can refresh no more, and its access tokens are revoked.
    pub async fn revoke_oauth_grant(
        &self,
        who: &Principal,
        org: &str,
        id: &str,
    ) -> Result<OAuthGrant, GrantError> {
        let visible = self.oauth_grants(who, org).await?;
        let grant = visible
            .into_iter()
            .find(|g| g.grant.id == id)
            .ok_or(GrantError::NotFound)?;
        Ok(self
            .end_grant(&grant.grant.id, who.actor(), "revoked by a person")
            .await?)
    }
}
