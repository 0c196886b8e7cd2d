//! Orgs: founding one (its first root key and first token in one transaction), reading
//! and changing its settings.

use super::mint::{NewToken, expiry};
use super::{Authority, Minted, OrgError, Principal, SYSTEM_ORG, check_name, presets};
use crate::audit::{action, mint_detail};
use crate::caveats::{Action, Caveat, Resource, format_span};
use crate::model::{Actor, AuditEvent, Change, Org, Outcome, RootKeyVersion, TokenId, TokenKind};
use crate::store::StoreError;
use crate::token::RootKey;

/// A change to an org's settings: `None` leaves a setting as it is, `Some(None)`
/// removes it.
#[derive(Debug, Clone, Copy, Default)]
pub struct OrgChange {
    /// The longest lifetime of a token minted in the org, seconds.
    pub max_expiry_secs: Option<Option<u64>>,
    /// How long expired and revoked tokens stay in the ledger, seconds.
    pub ledger_retention_secs: Option<Option<u64>>,
}

/// The first token of a new org.
pub(super) struct FirstToken<'a> {
    pub kind: TokenKind,
    pub name: &'a str,
    pub caveats: Vec<Caveat<'static>>,
    pub expires: u64,
    /// Who issued it (kept for the record; it is a lineage root either way).
    pub issuer: Option<TokenId>,
}

impl Authority {
    /// Creates an org with its first root key; returns an `org` token for it, expiring
    /// `expiry_secs` from now (default 90 days). The token is a lineage root: it does not
    /// die with the operator token that issued it.
    pub async fn create_org(
        &self,
        who: &Principal,
        name: &str,
        expiry_secs: Option<u64>,
    ) -> Result<Minted, OrgError> {
        let access = self.access(who, SYSTEM_ORG, None, Resource::Orgs, Action::Create);
        self.require(who, &access).map_err(OrgError::Denied)?;
        check_name("org", name).map_err(OrgError::InvalidName)?;
        if name == SYSTEM_ORG {
            return Err(OrgError::Reserved(SYSTEM_ORG));
        }
        let now = self.clock.now();
        let expires = expiry(expiry_secs, None, who.expires(), now)?;
        let caveats = presets::caveats(TokenKind::Org, name, None, expires)?;
        let first = FirstToken {
            kind: TokenKind::Org,
            name: "org",
            caveats,
            expires,
            issuer: Some(who.token_id()),
        };
        self.found_org(name, first, who.actor(), None).await
    }

    /// Creates an org, its root key version 1 and its first token in one transaction
    /// (with the master key's check value, when this founds the system org of a new
    /// store).
    pub(super) async fn found_org(
        &self,
        name: &str,
        first: FirstToken<'_>,
        actor: Actor,
        master_check: Option<Vec<u8>>,
    ) -> Result<Minted, OrgError> {
        let now = self.clock.now();
        let key = RootKey::generate().map_err(|_| super::MasterKeyError::Random)?;
        let key_rec = RootKeyVersion::new(name, 1, self.master.wrap(name, 1, &key)?, now);
        let org = Org::new(name, now);
        let mut minted = self.build_token(
            &key,
            &NewToken {
                org: name,
                key_version: 1,
                kind: first.kind,
                app: None,
                name: first.name,
                caveats: &first.caveats,
                creator: first.issuer,
                now,
                expires: first.expires,
                third_party: None,
            },
        )?;
        minted.record = minted.record.as_lineage_root();
        let created = format!("org {name} created");
        let mut events = vec![
            AuditEvent::new(
                name,
                action::ORG_CREATE,
                actor,
                Outcome::Ok,
                created.clone(),
                now,
            ),
            AuditEvent::new(
                name,
                action::TOKEN_MINT,
                actor,
                Outcome::Ok,
                mint_detail(&minted.record),
                now,
            ),
        ];
        if name != SYSTEM_ORG {
            // The operator's own log shows every org it created.
            events.push(AuditEvent::new(
                SYSTEM_ORG,
                action::ORG_CREATE,
                actor,
                Outcome::Ok,
                created,
                now,
            ));
        }
        let record = minted.record.clone();
        let org_name = name.to_owned();
        self.store
            .write(move |tx| {
                if let Some(check) = &master_check {
                    tx.init_master_check(check)?;
                }
                tx.insert_org(&org).map_err(|e| match e {
                    StoreError::Conflict(_) => OrgError::Exists(org_name.clone()),
                    other => other.into(),
                })?;
                tx.put_key(&key_rec)?;
                tx.put_token(&record)?;
                for e in &events {
                    tx.append_audit(e)?;
                }
                tx.publish(
                    &org_name,
                    &Change::OrgCreated {
                        org: org_name.clone(),
                    },
                    now,
                )?;
                Ok::<_, OrgError>(())
            })
            .await?;
        self.applied(|| self.keyring.insert(name, 1, &key)).await;
        Ok(minted)
    }

    /// Every org (the operator's view).
    pub async fn list_orgs(&self, who: &Principal) -> Result<Vec<Org>, OrgError> {
        let access = self.access(who, SYSTEM_ORG, None, Resource::Orgs, Action::Read);
        self.require(who, &access).map_err(OrgError::Denied)?;
        Ok(self.store.read(|r| r.orgs()).await?)
    }

    /// The operator's way out of a lockout: a fresh org token for any org (its first
    /// token expired, or was revoked), capped by the org's maximum, audited in that org
    /// and in `system`. A lineage root, like the org's first token.
    pub async fn issue_org_token(
        &self,
        who: &Principal,
        org_name: &str,
        expiry_secs: Option<u64>,
    ) -> Result<Minted, OrgError> {
        let access = self.access(who, SYSTEM_ORG, None, Resource::Orgs, Action::Control);
        self.require(who, &access).map_err(OrgError::Denied)?;
        check_name("org", org_name).map_err(OrgError::InvalidName)?;
        if org_name == SYSTEM_ORG {
            return Err(OrgError::Reserved(SYSTEM_ORG));
        }
        let org = self.read_org(org_name).await?.ok_or(OrgError::NotFound)?;
        let now = self.clock.now();
        let expires = expiry(expiry_secs, org.max_expiry_secs, who.expires(), now)?;
        let caveats = presets::caveats(TokenKind::Org, org_name, None, expires)?;
        let key = self.minting_key(&org).await?;
        let minted = self.build_token(
            &key,
            &NewToken {
                org: org_name,
                key_version: org.current_key,
                kind: TokenKind::Org,
                app: None,
                name: "org",
                caveats: &caveats,
                creator: Some(who.token_id()),
                now,
                expires,
                third_party: None,
            },
        )?;
        let record = minted.record.clone().as_lineage_root();
        let detail = format!("{} (issued by the operator)", mint_detail(&record));
        let events = [org_name, SYSTEM_ORG].map(|o| {
            AuditEvent::new(
                o,
                action::TOKEN_MINT,
                who.actor(),
                Outcome::Ok,
                detail.clone(),
                now,
            )
        });
        let stored = record.clone();
        self.store
            .write(move |tx| {
                tx.put_token(&stored)?;
                for e in &events {
                    tx.append_audit(e)?;
                }
                Ok::<_, OrgError>(())
            })
            .await?;
        Ok(Minted {
            token: minted.token,
            record,
        })
    }

    /// An org's settings.
    pub async fn get_org(&self, who: &Principal, name: &str) -> Result<Org, OrgError> {
        let access = self.access(who, name, None, Resource::Orgs, Action::Read);
        self.require(who, &access).map_err(OrgError::Denied)?;
        self.read_org(name).await?.ok_or(OrgError::NotFound)
    }

    /// Changes an org's settings: each `Some` is set (its inner `None` removes it).
    pub async fn update_org(
        &self,
        who: &Principal,
        name: &str,
        change: OrgChange,
    ) -> Result<Org, OrgError> {
        let access = self.access(who, name, None, Resource::Orgs, Action::Write);
        self.require(who, &access).map_err(OrgError::Denied)?;
        if change.max_expiry_secs == Some(Some(0)) || change.ledger_retention_secs == Some(Some(0))
        {
            return Err(OrgError::ZeroMaxExpiry);
        }
        let now = self.clock.now();
        let span = |v: Option<u64>, what: &str| match v {
            Some(s) => format!("{what} set to {}", format_span(s)),
            None => format!("{what} removed"),
        };
        let mut details = Vec::new();
        if let Some(v) = change.max_expiry_secs {
            details.push(span(v, "max expiry"));
        }
        if let Some(v) = change.ledger_retention_secs {
            details.push(span(v, "ledger retention"));
        }
        let event = AuditEvent::new(
            name,
            action::ORG_UPDATE,
            who.actor(),
            Outcome::Ok,
            details.join("; "),
            now,
        );
        let name = name.to_owned();
        let done = self
            .store
            .write(move |tx| {
                let mut org = tx.org(&name)?.ok_or(OrgError::NotFound)?;
                if let Some(v) = change.max_expiry_secs {
                    org.max_expiry_secs = v;
                }
                if let Some(v) = change.ledger_retention_secs {
                    org.ledger_retention_secs = v;
                }
                tx.put_org(&org)?;
                tx.append_audit(&event)?;
                Ok::<_, OrgError>(org)
            })
            .await?;
        Ok(done.value)
    }

    /// Sets (or with `None` removes) an org's maximum token lifetime.
    pub async fn set_max_expiry(
        &self,
        who: &Principal,
        name: &str,
        max: Option<u64>,
    ) -> Result<Org, OrgError> {
        let change = OrgChange {
            max_expiry_secs: Some(max),
            ledger_retention_secs: None,
        };
        self.update_org(who, name, change).await
    }
}
