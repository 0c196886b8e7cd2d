//! Dashboard sessions (docs/DESIGN.md, "Dashboard sessions"): signing in with a token
//! mints a *session* token, a child of the token pasted in — its own id, kind `session`,
//! the pasted token's caveats, 12 hours at most and never longer than the pasted token —
//! so that the pasted token is never stored, and a session can be listed, seen last
//! used, and ended on its own. Minting one needs no `tokens`/`create`: it grants nothing
//! the pasted token does not hold.
//!
//! Beside the revocation rules, one of its own: a session may end itself and the other
//! sessions minted from the same token ("sign out other sessions"), whatever its
//! caveats, and nothing else.

use std::time::Duration;

use super::mint::{Minter, NewToken};
use super::{Authority, MintError, Minted, Principal, RevokeError, RevokeOptions};
use crate::audit::{action, mint_detail, token_label};
use crate::model::{AuditEvent, LedgerEntry, Outcome, TokenId, TokenKind, TokenRecord};
use crate::store::StoreError;

/// How long a session lives unless asked otherwise (never past the pasted token).
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// The name sessions get in the ledger.
pub const SESSION_NAME: &str = "dashboard session";

/// Why a sign-in or a session's own request failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// A session was pasted: sign in with the token itself.
    #[error("a dashboard session cannot sign in: sign in with the token it came from")]
    SessionOfSession,
    /// The pasted token needs a third party's discharge, which a session cannot carry.
    #[error("a token that needs a discharge cannot sign in")]
    NeedsDischarge,
    /// The pasted token is not in the ledger (nothing minted it here).
    #[error("this token is not in its org's ledger")]
    NotInLedger,
    /// The request is a session's own, and the presented token is not a session.
    #[error("only a dashboard session can do this")]
    NotASession,
    /// No session of the same token has this id.
    #[error("no such session")]
    NotFound,
    /// Minting failed.
    #[error(transparent)]
    Mint(#[from] MintError),
    /// Revoking failed.
    #[error(transparent)]
    Revoke(#[from] RevokeError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl super::Classify for SessionError {
    fn class(&self) -> super::ErrorClass {
        use super::ErrorClass;
        match self {
            SessionError::SessionOfSession
            | SessionError::NeedsDischarge
            | SessionError::NotInLedger
            | SessionError::NotASession => ErrorClass::Denied,
            SessionError::NotFound => ErrorClass::NotFound,
            SessionError::Mint(e) => e.class(),
            SessionError::Revoke(e) => e.class(),
            SessionError::Store(e) => e.class(),
        }
    }
}

impl Authority {
    /// Signs in with `who` (the pasted token): mints a session, a child of it with its
    /// caveats, living `lifetime` (at least a second) but never past `who`.
    pub async fn sign_in(
        &self,
        who: &Principal,
        lifetime: Duration,
    ) -> Result<Minted, SessionError> {
        if who.third_party_caveats() > 0 {
            return Err(SessionError::NeedsDischarge);
        }
        let own = self
            .read_token(&who.token_id())
            .await?
            .ok_or(SessionError::NotInLedger)?;
        if own.kind == TokenKind::Session {
            return Err(SessionError::SessionOfSession);
        }
        let org = self
            .read_org(who.org())
            .await?
            .ok_or(MintError::OrgNotFound)?;
        let now = self.clock.now();
        let mut expires = now.saturating_add(lifetime.as_secs().max(1));
        if let Some(limit) = who.expires() {
            expires = expires.min(limit);
        }
        // Its caveats are the pasted token's as presented (an attenuated copy's own
        // included), then its expiry.
        let mut caveats = who.caveats().to_vec();
        caveats.push(crate::caveats::Caveat::expires(expires));
        let key = self.minting_key(&org).await?;
        let minted = self
            .build_token(
                &key,
                &NewToken {
                    org: &org.name,
                    key_version: org.current_key,
                    kind: TokenKind::Session,
                    app: own.app.as_deref(),
                    name: SESSION_NAME,
                    caveats: &caveats,
                    creator: Some(who.token_id()),
                    now,
                    expires,
                    third_party: None,
                },
            )
            .map_err(MintError::from)?;
        let event = AuditEvent::new(
            &org.name,
            action::TOKEN_MINT,
            who.actor(),
            Outcome::Ok,
            format!("{} (a sign-in)", mint_detail(&minted.record)),
            now,
        );
        let record = minted.record.clone();
        let minter = who.token_id();
        self.store
            .write(move |tx| {
                // As for any mint: a revocation committed meanwhile leaves no child.
                if tx.token(&minter)?.is_some_and(|m| m.revoked.is_some()) {
                    return Err(MintError::MinterRevoked);
                }
                tx.put_token(&record)?;
                tx.append_audit(&event)?;
                Ok(())
            })
            .await?;
        Ok(minted)
    }

    /// The live sessions minted from the same token as `who` (a session), itself
    /// included, oldest first, with their last uses.
    pub async fn sessions(&self, who: &Principal) -> Result<Vec<LedgerEntry>, SessionError> {
        let (_, parent) = self.own_session(who).await?;
        let now = self.clock.now();
        let entries = self
            .store
            .read(move |r| {
                let mut out = Vec::new();
                for id in r.children(&parent)? {
                    let Some(record) = r.token(&id)? else {
                        continue;
                    };
                    if record.kind != TokenKind::Session
                        || record.expires <= now
                        || record.is_revoked_at(now)
                    {
                        continue;
                    }
                    let last_used = r.last_used(&id)?;
                    out.push(LedgerEntry { record, last_used });
                }
                Ok::<_, StoreError>(out)
            })
            .await?;
        let mut entries = entries;
        entries.sort_by_key(|e| (e.record.created, e.record.id.0));
        Ok(entries)
    }

    /// Ends the session `id` (`None`: `who` itself), which must be `who` or another
    /// session minted from the same token.
    pub async fn sign_out(&self, who: &Principal, id: Option<TokenId>) -> Result<(), SessionError> {
        let (own, parent) = self.own_session(who).await?;
        let target = match id {
            None => own,
            Some(id) => {
                let rec = self.read_token(&id).await?.ok_or(SessionError::NotFound)?;
                if rec.kind != TokenKind::Session || rec.parent != Some(parent) {
                    return Err(SessionError::NotFound);
                }
                rec
            }
        };
        self.end_session(who, &target).await
    }

    /// Ends every other live session minted from the same token as `who`: how many.
    pub async fn sign_out_others(&self, who: &Principal) -> Result<usize, SessionError> {
        let others: Vec<TokenRecord> = self
            .sessions(who)
            .await?
            .into_iter()
            .map(|e| e.record)
            .filter(|r| r.id != who.token_id())
            .collect();
        for rec in &others {
            self.end_session(who, rec).await?;
        }
        Ok(others.len())
    }

    /// Whose rights `who` spends when it mints or rotates: a session as minted spends
    /// the pasted token's (its own caveats but its expiry, and the pasted token's
    /// place in the lineage), so what it mints outlives the session; any other token
    /// its own.
    pub(super) async fn minter_of(&self, who: &Principal) -> Result<Minter, StoreError> {
        let Some((own, parent)) = self.session_of(who).await? else {
            return Ok(Minter::presented(who));
        };
        let pasted = own.caveats.len().saturating_sub(1);
        let mut held = Vec::with_capacity(pasted);
        for text in &own.caveats[..pasted] {
            let caveat = crate::caveats::Caveat::parse(text)
                .map_err(|_| StoreError::Corrupt("a session's caveats".into()))?;
            held.push(caveat.into_owned());
        }
        let expires = held
            .iter()
            .filter_map(|c| match c {
                crate::caveats::Caveat::Validity(w) => w.not_after(),
                _ => None,
            })
            .min();
        Ok(Minter {
            id: parent,
            held,
            expires,
        })
    }

    /// Whether `who` is a dashboard session as minted.
    pub async fn is_session(&self, who: &Principal) -> bool {
        matches!(self.session_of(who).await, Ok(Some(_)))
    }

    /// `who`'s session record and its parent, if `who` is a session as minted.
    pub(super) async fn session_of(
        &self,
        who: &Principal,
    ) -> Result<Option<(TokenRecord, TokenId)>, StoreError> {
        let Some(own) = self.read_token(&who.token_id()).await? else {
            return Ok(None);
        };
        Ok(match (own.kind, own.parent) {
            (TokenKind::Session, Some(parent)) if super::revoke::is_as_minted(who, &own) => {
                Some((own, parent))
            }
            _ => None,
        })
    }

    /// The dashboard's anti-forgery token for session `id`, the same on every node:
    /// HMAC-SHA256 of the session's id under a key derived from the master key.
    pub fn csrf_token(&self, id: TokenId) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.csrf_mac(id))
    }

    /// Whether `given` is session `id`'s anti-forgery token (constant time).
    pub fn csrf_ok(&self, id: TokenId, given: &str) -> bool {
        use base64::Engine as _;
        use subtle::ConstantTimeEq as _;
        let Ok(given) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(given) else {
            return false;
        };
        bool::from(self.csrf_mac(id).as_slice().ct_eq(&given))
    }

    fn csrf_mac(&self, id: TokenId) -> [u8; 32] {
        use hmac::{KeyInit as _, Mac as _};
        let mut mac = <hmac::Hmac<sha2::Sha256>>::new_from_slice(&*self.csrf_key)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(&id.0);
        mac.finalize().into_bytes().into()
    }

    /// `who`'s own session record (it must be a session as minted) and its parent.
    async fn own_session(&self, who: &Principal) -> Result<(TokenRecord, TokenId), SessionError> {
        self.session_of(who).await?.ok_or(SessionError::NotASession)
    }

    async fn end_session(&self, who: &Principal, rec: &TokenRecord) -> Result<(), SessionError> {
        let opts = RevokeOptions::default();
        let done = self.revoke_tree(rec.id, opts, who.actor()).await?;
        tracing::debug!(session = %token_label(&done.record), "session ended");
        Ok(())
    }
}
