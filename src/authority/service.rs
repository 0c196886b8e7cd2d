//! Service tokens (docs/THIRD_PARTIES.md): a discharged token made into one that runs
//! unattended, without its third-party caveat, only where its tickets allow it
//! (`service-validity = SPAN`) and for at most that long.

use super::mint::NewToken;
use super::{Authority, MintError, Minted, Principal};
use crate::audit::{action, token_label};
use crate::caveats::{Caveat, Condition, Denial, Resource, ResourceSet};
use crate::model::{AuditEvent, Outcome};
use crate::token::Ticket;

impl Authority {
    /// Mints a service token from a discharged bundle (needs `tokens/create` for the
    /// token's app): the permission token's caveats and its discharges' caveats other
    /// than their validity, without the third-party caveats, barred from `tokens` and
    /// `third-parties` (so it cannot mint), expiring at the earliest of every ticket's
    /// `service-validity`, the permission token's own expiry and the org's maximum. It
    /// descends from the permission token: revoking that revokes it.
    pub async fn mint_service(
        &self,
        who: &Principal,
        name: Option<&str>,
    ) -> Result<Minted, MintError> {
        let v = who.verified();
        let refuse = |reason: &str| Denial {
            index: 0,
            caveat: "third-party caveat".into(),
            reason: reason.to_owned(),
        };
        let org_name = who.org().to_owned();
        if v.tickets().is_empty() {
            let d =
                refuse("only a token with discharged third-party caveats becomes a service token");
            return Err(MintError::Denied(self.denied(who, "service token", d)));
        }
        if v.tickets().len() != v.third_party_caveats() {
            let d = refuse("its discharges carry third-party caveats of their own");
            return Err(MintError::Denied(self.denied(who, "service token", d)));
        }
        let mut lifetime = u64::MAX;
        for raw in v.tickets() {
            let service = Ticket::decode(raw).ok().and_then(|t| {
                t.conditions().iter().find_map(|c| match c {
                    Condition::ServiceValidity(s) => Some(*s),
                    _ => None,
                })
            });
            let Some(secs) = service else {
                let d = refuse(
                    "its ticket has no service-validity condition: it only works with a fresh \
                     discharge",
                );
                return Err(MintError::Denied(self.denied(who, "service token", d)));
            };
            lifetime = lifetime.min(secs);
        }
        let id = who.token_id();
        let record = self
            .store
            .read(move |r| r.token(&id))
            .await?
            .ok_or(MintError::MinterRevoked)?;
        let access = self.access(
            who,
            &org_name,
            record.app.as_deref(),
            Resource::Tokens,
            crate::caveats::Action::Create,
        );
        self.require(who, &access).map_err(MintError::Denied)?;
        let org = self
            .read_org(&org_name)
            .await?
            .ok_or(MintError::OrgNotFound)?;
        let now = self.clock.now();
        let own_expiry = v
            .own_caveats()
            .iter()
            .filter_map(Caveat::not_after)
            .min()
            .unwrap_or(u64::MAX);
        let mut expires = now.saturating_add(lifetime).min(own_expiry);
        if let Some(max) = org.max_expiry_secs {
            expires = expires.min(now.saturating_add(max));
        }
        let mut caveats: Vec<Caveat<'_>> = v.own_caveats().to_vec();
        caveats.extend(
            v.discharge_caveats()
                .iter()
                .filter(|c| !matches!(c, Caveat::Validity(_)))
                .cloned(),
        );
        caveats.push(Caveat::expires(expires));
        let reach = Resource::ALL
            .into_iter()
            .filter(|r| !matches!(r, Resource::Tokens | Resource::ThirdParties))
            .fold(ResourceSet::NONE, ResourceSet::with);
        caveats.push(
            Caveat::resources(reach)
                .map_err(|e| MintError::Denied(refuse(&format!("no resource caveat: {e}"))))?,
        );
        let name = name.map_or_else(|| format!("{}-service", record.name), str::to_owned);
        super::mint::check_token_name(&name)?;
        let key = self.minting_key(&org).await?;
        let minted = self.build_token(
            &key,
            &NewToken {
                org: &org_name,
                key_version: org.current_key,
                kind: record.kind,
                app: record.app.as_deref(),
                name: &name,
                caveats: &caveats,
                creator: Some(id),
                now,
                expires,
                third_party: None,
            },
        )?;
        let event = AuditEvent::new(
            &org_name,
            action::TOKEN_MINT,
            who.actor(),
            Outcome::Ok,
            format!(
                "service token {} from {}",
                token_label(&minted.record),
                token_label(&record)
            ),
            now,
        );
        let new = minted.record.clone();
        self.store
            .write(move |tx| {
                if tx.token(&id)?.is_some_and(|m| m.revoked.is_some()) {
                    return Err(MintError::MinterRevoked);
                }
                tx.put_token(&new)?;
                tx.append_audit(&event)?;
                Ok(())
            })
            .await?;
        Ok(minted)
    }
}
