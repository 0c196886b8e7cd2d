//! The one verification path, shared by bearer authentication and `POST /v1/verify`:
//! decode, verify the chain and caveats at `now` under a key in memory, check the
//! deny-list and the node's freshness, record the use. Reads no disk.

use std::net::IpAddr;

use super::usage::Refused;
use super::{AuthError, Authority, Classify as _, Client, ClientRef, Principal};
use crate::caveats::{Access, AccessSpec, Action, Denial, Resource};
use crate::token::{
    Bundle, ChainError, FailureClass, TokenIdentifier, Verified, VerifyError, decode_text, verify,
};

impl Authority {
    /// Verifies a bearer token (chain, key, validity, revocation, freshness) and
    /// records its use: the only way to a [`Principal`]. A token under a key version
    /// this node does not know yet triggers one (rate-limited) refresh from the store
    /// before it is refused.
    pub async fn authenticate(&self, text: &str, client: Client) -> Result<Principal, AuthError> {
        let first = self.verified(text, client.borrowed(), |v, _| v.into_owned());
        let token = match first {
            Err(AuthError::Unauthenticated(FailureClass::UnknownKey))
                if self.refresh_for_unknown_key().await =>
            {
                self.verified(text, client.borrowed(), |v, _| v.into_owned())
            }
            other => other,
        }?;
        Ok(Principal::new(token, client))
    }

    /// Whether `who` still authenticates now, as it did when the request began: the
    /// node is fresh, the token has not expired, been revoked or lost its key version
    /// meanwhile. Every long poll calls it when it wakes, before it answers: a token's
    /// reach ends the moment it is revoked, also for a request under way.
    pub fn recheck(&self, who: &Principal) -> Result<(), AuthError> {
        self.follower.ensure_fresh()?;
        let now = self.clock.now();
        let (org, version) = (who.org(), who.key_version());
        let class = if who.expires().is_some_and(|at| now >= at) {
            Some(FailureClass::Expired)
        } else if self.deny.is_revoked(&who.token_id(), now) {
            Some(FailureClass::Revoked)
        } else if !self.keyring.has(org, version) {
            Some(self.missing_key(org, version))
        } else {
            None
        };
        match class {
            Some(class) => {
                tracing::debug!(class = class.code(), ip = ?who.client().ip, "token no longer accepted");
                Err(AuthError::Unauthenticated(class))
            }
            None => Ok(()),
        }
    }

    /// `POST /v1/verify`: verifies `token` and, if an access is given, decides it (an
    /// `ip` caveat against `source_ip`); hands the verified token and the denial, if
    /// any, to `then`. Everything stays borrowed from the caller. The caller retries
    /// once after [`Authority::refresh_for_unknown_key`] on `unknown_key`.
    pub fn decide<R>(
        &self,
        token: &str,
        access: Option<&AccessSpec>,
        source_ip: Option<IpAddr>,
        client: ClientRef<'_>,
        then: impl FnOnce(&Verified<'_>, Option<Denial>) -> R,
    ) -> Result<R, AuthError> {
        // `source_ip` is the caller's say-so: fine for deciding an IP caveat, not for the
        // ledger, which records the caller's own address (`client`).
        self.verified(token, client, |verified, now| {
            let denial = access.and_then(|spec| verified.check(&spec.access(now, source_ip)).err());
            then(&verified, denial)
        })
    }

    fn verified<R>(
        &self,
        text: &str,
        client: ClientRef<'_>,
        then: impl FnOnce(Verified<'_>, u64) -> R,
    ) -> Result<R, AuthError> {
        self.follower.ensure_fresh()?;
        let now = self.clock.now();
        let refused = AuthError::Unauthenticated;
        let checked = decode_text(text)
            .map_err(|_| refused(FailureClass::Malformed))
            .and_then(|bytes| {
                let bundle = Bundle::parse(&bytes).map_err(|_| refused(FailureClass::Malformed))?;
                let verified = match verify(&bundle, &self.keyring, now) {
                    Ok(v) => v,
                    Err(VerifyError::UnknownKey) => return Err(refused(self.unknown_key(&bundle))),
                    Err(VerifyError::Chain(ChainError::MissingDischarge { location })) => {
                        return Err(AuthError::MissingDischarge { location });
                    }
                    Err(e) => return Err(refused(e.class())),
                };
                if self.deny.is_revoked(&verified.token_id(), now) {
                    return Err(refused(FailureClass::Revoked));
                }
                self.usage
                    .record(verified.token_id(), client.ip, client.user_agent, now);
                Ok(then(verified, now))
            });
        if let Err(class) = &checked {
            // The class and the address only: never the token.
            tracing::debug!(class = class.code(), ip = ?client.ip, "token not accepted");
        }
        checked
    }

    /// Why a bundle's key is not there: see [`Authority::missing_key`].
    fn unknown_key(&self, bundle: &Bundle<'_>) -> FailureClass {
        match TokenIdentifier::decode(bundle.token.identifier()) {
            Ok(id) => self.missing_key(&id.org, id.key_version),
            Err(_) => FailureClass::UnknownKey,
        }
    }

    /// `key_retired` for a version this node saw retired, else `unknown_key`.
    fn missing_key(&self, org: &str, version: u32) -> FailureClass {
        if self.keyring.is_retired(org, version) {
            FailureClass::KeyRetired
        } else {
            FailureClass::UnknownKey
        }
    }

    /// The access `who` makes: one action on one kind of object in `org` (and `app`),
    /// now, from the caller's address.
    pub(crate) fn access<'a>(
        &self,
        who: &Principal,
        org: &'a str,
        app: Option<&'a str>,
        resource: Resource,
        action: Action,
    ) -> Access<'a> {
        Access::new(org, resource, action, self.clock.now())
            .app(app)
            .from(who.client().ip)
    }

    /// Allows `access` for `who`, or counts a denial event and says which caveat denied.
    pub(crate) fn require(&self, who: &Principal, access: &Access<'_>) -> Result<(), Denial> {
        self.require_saying(who, access, Denial::to_string)
    }

    /// Allows `access` for `who`, or counts a denial event that says what was asked
    /// (`about`: names, never values) and which caveat denied.
    pub(crate) fn require_about(
        &self,
        who: &Principal,
        access: &Access<'_>,
        about: impl FnOnce() -> String,
    ) -> Result<(), Denial> {
        self.require_saying(who, access, |denial| format!("{}: {denial}", about()))
    }

    fn require_saying(
        &self,
        who: &Principal,
        access: &Access<'_>,
        detail: impl FnOnce(&Denial) -> String,
    ) -> Result<(), Denial> {
        who.check(access).inspect_err(|denial| {
            let refused = Refused::Access(access.resource, access.action);
            self.queue_denial(who, denial.index, refused, || detail(denial));
        })
    }

    /// Whether every caveat of `who` allows `access`: filtering a listing name by name
    /// (what is filtered out is not a denied request, so it is not audited).
    pub(crate) fn allows(&self, who: &Principal, access: &Access<'_>) -> bool {
        who.check(access).is_ok()
    }

    /// Counts the audit event of a denial by a rule (`rule`: what it refused, a fixed
    /// text) and hands the denial back.
    pub(super) fn denied(&self, who: &Principal, rule: &'static str, denial: Denial) -> Denial {
        self.queue_denial(who, denial.index, Refused::Rule(rule), || {
            denial.to_string()
        });
        denial
    }

    /// Counts a denied request in the audit log of the token's own org (nobody may fill
    /// another org's log), aggregated with the token's other denials by the same caveat
    /// (`caveat`: its position, 0 for a rule) of the same `refused` in one window
    /// (`detail`: names, never values; made for the first of a window only).
    pub(crate) fn queue_denial(
        &self,
        who: &Principal,
        caveat: usize,
        refused: Refused,
        detail: impl FnOnce() -> String,
    ) {
        self.usage.deny(
            who.org(),
            who.actor(),
            caveat,
            refused,
            detail,
            self.clock.now(),
        );
    }
}
