//! Minting: a preset in an org, by a token that holds every right it grants.

use super::{
    Authority, MasterKeyError, MintError, NameError, Principal, ThirdPartyError, check_name,
    presets,
};
use crate::audit::{action, mint_detail};
use crate::caveats::{Action, Caveat, Condition, Denial, Excerpt, MAX_TIME, Resource};
use crate::model::{AuditEvent, Org, Outcome, Requirement, ThirdParty, TokenKind, TokenRecord};
use crate::store::Ahead;
use crate::token::{Bundle, Macaroon, RootKey, Ticket, TokenId, TokenIdentifier, fingerprint};

/// Longest token name, in characters.
pub(super) const MAX_NAME: usize = 64;

/// What to mint.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MintSpec {
    /// The kind.
    pub kind: TokenKind,
    /// The app (deploy and runtime).
    pub app: Option<String>,
    /// The ledger name (defaults to the kind's name).
    pub name: Option<String>,
    /// Lifetime in seconds (defaults to [`DEFAULT_EXPIRY`](super::DEFAULT_EXPIRY)).
    pub expiry_secs: Option<u64>,
    /// A registered third party whose discharge the token needs, with the conditions
    /// its ticket carries (`--require-ci NAME --condition …`).
    pub require: Option<(String, Vec<Condition>)>,
}

impl MintSpec {
    /// A token of `kind` with every default.
    pub fn new(kind: TokenKind) -> Self {
        MintSpec {
            kind,
            app: None,
            name: None,
            expiry_secs: None,
            require: None,
        }
    }

    /// For `app`.
    pub fn app(mut self, app: impl Into<String>) -> Self {
        self.app = Some(app.into());
        self
    }

    /// Named `name` in the ledger.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Expiring `secs` seconds from now.
    pub fn expiry_secs(mut self, secs: u64) -> Self {
        self.expiry_secs = Some(secs);
        self
    }

    /// Needing a discharge from registered third party `name` under `conditions`.
    pub fn require(mut self, name: impl Into<String>, conditions: Vec<Condition>) -> Self {
        self.require = Some((name.into(), conditions));
        self
    }
}

/// A token minted by the authority: the text (shown once) and its ledger record.
#[derive(Debug)]
pub struct Minted {
    /// The token text.
    pub token: Secret,
    /// Its ledger record.
    pub record: TokenRecord,
}

/// A token text that must not be logged: `Debug` hides it.
pub struct Secret(String);

impl Secret {
    /// Wraps a text that must not be logged.
    pub(super) fn new(text: String) -> Secret {
        Secret(text)
    }

    /// The text, for the one place that hands it to its owner.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

/// Why a token could not be built.
#[derive(Debug)]
pub(super) enum BuildError {
    /// No randomness for its id.
    Random,
    /// The org name does not fit an identifier.
    InvalidOrg(NameError),
    /// The third party has no key (a corrupt registration).
    NoThirdPartyKey,
    /// The ticket could not be sealed (too many conditions, say).
    Ticket(String),
}

impl From<BuildError> for MintError {
    fn from(e: BuildError) -> Self {
        match e {
            BuildError::Random => MintError::Crypto(MasterKeyError::Random),
            BuildError::InvalidOrg(n) => MintError::InvalidName(n),
            BuildError::NoThirdPartyKey => {
                MintError::ThirdParty(Box::new(ThirdPartyError::NotFound))
            }
            BuildError::Ticket(why) => MintError::ThirdParty(Box::new(ThirdPartyError::BadField {
                what: "third-party caveat",
                why,
            })),
        }
    }
}

impl From<BuildError> for super::RotateError {
    fn from(e: BuildError) -> Self {
        super::RotateError::Mint(e.into())
    }
}

impl From<BuildError> for super::StartError {
    fn from(e: BuildError) -> Self {
        super::StartError::Mint(e.into())
    }
}

impl From<BuildError> for super::OrgError {
    fn from(e: BuildError) -> Self {
        match e {
            BuildError::InvalidOrg(n) => super::OrgError::InvalidName(n),
            // Org tokens carry no third-party caveat.
            _ => super::OrgError::Crypto(MasterKeyError::Random),
        }
    }
}

/// Whether a token name is acceptable: 1 to [`MAX_NAME`] printable characters.
pub(super) fn check_token_name(name: &str) -> Result<(), MintError> {
    let bad = |c: char| c.is_control() || crate::caveats::is_invisible(c);
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(bad) {
        return Err(MintError::BadTokenName { max: MAX_NAME });
    }
    Ok(())
}

/// The expiry of a new token asked to live `asked` seconds (default 90 days): the
/// default is cut to the org's maximum and to `limit` (the minter's own expiry; nothing
/// outlives its minter); an explicit one that does not fit either is refused.
pub(super) fn expiry(
    asked: Option<u64>,
    org_max: Option<u64>,
    limit: Option<u64>,
    now: u64,
) -> Result<u64, MintError> {
    let ttl = match (asked, org_max) {
        (Some(0), _) => return Err(MintError::ZeroExpiry),
        (Some(ttl), Some(max)) if ttl > max => {
            return Err(MintError::OverOrgMaximum { ttl, max });
        }
        (Some(ttl), _) => ttl,
        (None, max) => {
            let default = super::DEFAULT_EXPIRY.as_secs();
            max.map_or(default, |m| m.min(default))
        }
    };
    let expires = now.saturating_add(ttl);
    if expires > MAX_TIME {
        return Err(MintError::TooFar(ttl));
    }
    match limit {
        Some(limit) if expires > limit && asked.is_some() => {
            Err(MintError::AfterMinter { expires, limit })
        }
        Some(limit) if expires > limit => Ok(limit),
        _ => Ok(expires),
    }
}

/// What a new token is.
pub(super) struct NewToken<'a> {
    pub org: &'a str,
    pub key_version: u32,
    pub kind: TokenKind,
    pub app: Option<&'a str>,
    pub name: &'a str,
    pub caveats: &'a [Caveat<'a>],
    pub creator: Option<TokenId>,
    pub now: u64,
    pub expires: u64,
    /// A third-party caveat to add after the first-party ones: the third party and the
    /// conditions of its ticket.
    pub third_party: Option<(&'a ThirdParty, &'a [Condition])>,
}

/// Whose rights a mint spends and under whom the new token goes in the lineage: the
/// presented token, or for a dashboard session the token it was signed in with (so
/// that signing out does not end what was minted).
pub(super) struct Minter {
    /// The lineage parent and creator of the new token.
    pub id: TokenId,
    /// The caveats the new token must imply.
    pub held: Vec<Caveat<'static>>,
    /// The earliest expiry among them: the new token may not outlive it.
    pub expires: Option<u64>,
}

impl Minter {
    /// The presented token itself.
    pub(super) fn presented(who: &Principal) -> Self {
        Minter {
            id: who.token_id(),
            held: who.caveats().to_vec(),
            expires: who.expires(),
        }
    }
}

impl Authority {
    /// Mints a preset. The presented token must be allowed to create tokens (for the
    /// app, if any) and must itself hold every right it grants: each of its caveats
    /// must be implied by a caveat of the new token, expiry included. Nothing outlives
    /// the token that minted it.
    pub async fn mint(
        &self,
        who: &Principal,
        org_name: &str,
        spec: &MintSpec,
    ) -> Result<Minted, MintError> {
        let minter = self.minter_of(who).await?;
        self.mint_as(who, &minter, org_name, spec).await
    }

    /// [`Authority::mint`] spending `minter`'s rights: the access is still checked
    /// against `who`'s caveats.
    pub(super) async fn mint_as(
        &self,
        who: &Principal,
        minter: &Minter,
        org_name: &str,
        spec: &MintSpec,
    ) -> Result<Minted, MintError> {
        check_name("org", org_name).map_err(MintError::InvalidName)?;
        if let Some(app) = &spec.app {
            check_name("app", app).map_err(MintError::InvalidName)?;
        }
        if matches!(spec.kind, TokenKind::Operator | TokenKind::Session) {
            return Err(MintError::NotAPreset(spec.kind));
        }
        let access = self.access(
            who,
            org_name,
            spec.app.as_deref(),
            Resource::Tokens,
            Action::Create,
        );
        self.require(who, &access).map_err(MintError::Denied)?;
        let org = self
            .read_org(org_name)
            .await?
            .ok_or(MintError::OrgNotFound)?;
        let name = spec.name.as_deref().unwrap_or(spec.kind.name());
        check_token_name(name)?;
        let now = self.clock.now();
        let expires = expiry(spec.expiry_secs, org.max_expiry_secs, minter.expires, now)?;
        if who.third_party_caveats() > 0 {
            // The new token would not carry the third-party requirement: minting would
            // launder it away (a CI token would mint tokens usable without the CI job).
            let denial = Denial {
                index: 0,
                caveat: "third-party caveat".into(),
                reason: "a token that needs a discharge cannot mint tokens".into(),
            };
            return Err(MintError::Denied(self.denied(who, "mint", denial)));
        }
        let caveats = presets::caveats(spec.kind, org_name, spec.app.as_deref(), expires)?;
        self.require_implied(who, &minter.held, &caveats, spec.kind)?;
        let required = match &spec.require {
            Some((name, conditions)) => {
                let tp = self
                    .third_party_for(org_name, name)
                    .await
                    .map_err(|e| MintError::ThirdParty(Box::new(e)))?;
                Some((tp, conditions.clone()))
            }
            None => None,
        };
        let key = self.minting_key(&org).await?;
        let minted = self.build_token(
            &key,
            &NewToken {
                org: org_name,
                key_version: org.current_key,
                kind: spec.kind,
                app: spec.app.as_deref(),
                name,
                caveats: &caveats,
                creator: Some(minter.id),
                now,
                expires,
                third_party: required.as_ref().map(|(tp, c)| (tp, c.as_slice())),
            },
        )?;
        let requirement = match required {
            Some((tp, conditions)) => Some(Requirement {
                org: org_name.to_owned(),
                key: tp
                    .current_key()
                    .ok_or(MintError::ThirdParty(Box::new(ThirdPartyError::UnknownKey)))?
                    .id,
                third_party: tp.name,
                token: minted.record.id,
                conditions,
                added: now,
            }),
            None => None,
        };
        let event = AuditEvent::new(
            org_name,
            action::TOKEN_MINT,
            who.actor(),
            Outcome::Ok,
            mint_detail(&minted.record),
            now,
        );
        let record = minted.record.clone();
        let (minter, presented) = (minter.id, who.token_id());
        self.store
            .write(move |tx| {
                let mut ahead = vec![Ahead::Token(&minter), Ahead::Token(&presented)];
                ahead.extend(record.app.as_deref().map(|app| Ahead::App {
                    org: &record.org,
                    app,
                }));
                tx.read_ahead(&ahead)?;
                // Inside the transaction: a revocation committed meanwhile (here or on
                // another node) must not leave a child behind; nor may a token being
                // rotated out (revoked at the end of an overlap) mint children that the
                // move to its replacement would miss.
                for id in [minter, presented] {
                    if tx.token(&id)?.is_some_and(|m| m.revoked.is_some()) {
                        return Err(MintError::MinterRevoked);
                    }
                }
                if let Some(app) = &record.app
                    && let Some(missing) = super::apps::missing_app(tx, &record.org, app)?
                {
                    return Err(MintError::NoSuchApp(missing));
                }
                if let Some(req) = &requirement {
                    super::third_parties::still_holds(tx, req)
                        .map_err(|e| MintError::ThirdParty(Box::new(e)))?;
                    tx.put_requirement(req)?;
                }
                tx.put_token(&record)?;
                tx.append_audit(&event)?;
                Ok(())
            })
            .await?;
        Ok(minted)
    }

    /// Every caveat the minter holds must be implied by a caveat of the new token (a
    /// denial is audited as `who`'s).
    pub(super) fn require_implied(
        &self,
        who: &Principal,
        held: &[Caveat<'_>],
        caveats: &[Caveat<'_>],
        kind: TokenKind,
    ) -> Result<(), MintError> {
        for (i, held) in held.iter().enumerate() {
            if !caveats.iter().any(|c| c.implies(held)) {
                let denial = Denial {
                    index: i + 1,
                    caveat: held.to_string(),
                    reason: format!(
                        "is not implied by the {kind} token being minted: a token cannot mint rights it does not hold"
                    ),
                };
                return Err(MintError::Denied(self.denied(who, "mint", denial)));
            }
        }
        Ok(())
    }

    /// The org's current root key: from memory, or (not yet followed here, e.g. just
    /// rotated on another node) from the store.
    pub(super) async fn minting_key(&self, org: &Org) -> Result<RootKey, MintError> {
        use crate::token::KeyResolver as _;
        if let Some(key) = self.keyring.root_key(&org.name, org.current_key) {
            return Ok(key);
        }
        let (name, version) = (org.name.clone(), org.current_key);
        let rec = self
            .store
            .read(move |r| r.key(&name, version))
            .await?
            .filter(|k| k.retired.is_none())
            .ok_or_else(|| MintError::NoLiveKey(org.name.clone()))?;
        let key = self
            .master
            .unwrap_key(&rec.org, rec.version, &rec.wrapped)?;
        self.applied(|| self.keyring.insert(&rec.org, rec.version, &key))
            .await;
        Ok(key)
    }

    /// Mints the token text and its ledger record (nothing is stored yet).
    pub(super) fn build_token(
        &self,
        key: &RootKey,
        new: &NewToken<'_>,
    ) -> Result<Minted, BuildError> {
        let id = TokenId::generate().map_err(|_| BuildError::Random)?;
        let identifier = TokenIdentifier {
            org: new.org.to_owned(),
            key_version: new.key_version,
            token_id: id,
        }
        .encode()
        .map_err(|_| {
            BuildError::InvalidOrg(NameError {
                what: "org",
                shown: Excerpt(new.org.as_bytes()).to_string(),
            })
        })?;
        let mut m = Macaroon::mint(key.expose_bytes(), identifier.as_bytes(), None);
        let texts: Vec<String> = new.caveats.iter().map(ToString::to_string).collect();
        for t in &texts {
            m.add_first_party(t.as_bytes());
        }
        if let Some((tp, conditions)) = new.third_party {
            let public = &tp.current_key().ok_or(BuildError::NoThirdPartyKey)?.public;
            let caveat_key = RootKey::generate().map_err(|_| BuildError::Random)?;
            let ticket = Ticket::seal(public, &tp.location, conditions, &caveat_key)
                .map_err(|e| BuildError::Ticket(e.to_string()))?;
            m.add_third_party(
                tp.location.as_bytes(),
                caveat_key.expose_bytes(),
                &ticket.encode(),
            )
            .map_err(|_| BuildError::Random)?;
        }
        let text = Bundle::single(m).to_text();
        let record = TokenRecord::new(
            id,
            new.org,
            new.name,
            new.kind,
            new.app,
            texts,
            new.key_version,
            new.now,
            new.creator,
            new.expires,
            fingerprint(&text),
        );
        Ok(Minted {
            token: Secret(text),
            record,
        })
    }

    /// An org, read from the store.
    pub(super) async fn read_org(
        &self,
        name: &str,
    ) -> Result<Option<Org>, crate::store::StoreError> {
        let name = name.to_owned();
        self.store.read(move |r| r.org(&name)).await
    }
}
