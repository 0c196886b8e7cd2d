//! The token authority: orgs and their root keys, minting presets, the ledger,
//! revocation, last-used, the audit trail, and full verification of a request.
//!
//! Verification never reads the disk: root keys and the deny-list live in memory, and
//! last-used times and denial events are queued and written by [`Authority::flush`].

mod master;
mod presets;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use zeroize::Zeroizing;

pub use master::{MasterKey, MasterKeyError};
pub use presets::{DEFAULT_EXPIRY, Preset};

use crate::audit::{self, Actor, action};
use crate::caveats::{
    Access, AccessSpec, Action, Caveat, Denial, Excerpt, MAX_TIME, Resource, format_span,
    format_time, is_valid_name,
};
use crate::store::{
    AuditRecord, KeyRecord, LastUsed, OrgRecord, Outcome, Store, StoreError, TokenKind, TokenRecord,
};
use crate::token::{
    Bundle, FailureClass, KEY_LEN, KeyResolver, Macaroon, RootKey, TokenId, TokenIdentifier,
    Verified, decode_text, fingerprint, verify,
};

/// The org whose tokens administer the authority itself (creating orgs).
pub const SYSTEM_ORG: &str = "system";
/// How long the operator token lives.
const OPERATOR_EXPIRY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Longest user agent kept in the ledger.
const MAX_USER_AGENT: usize = 256;
/// Longest token name.
const MAX_NAME: usize = 64;

/// Why a request to the authority failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthorityError {
    /// The presented token does not authenticate; only the class is told.
    #[error("token does not authenticate: {}", .0.code())]
    Unauthenticated(FailureClass),
    /// A caveat denies the request.
    #[error("{0}")]
    Denied(Denial),
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// No such thing.
    #[error("no such {0}")]
    NotFound(&'static str),
    /// It conflicts with what exists.
    #[error("{0}")]
    Conflict(String),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
    /// The master key failed.
    #[error(transparent)]
    Master(#[from] MasterKeyError),
    /// Creating the data directory or a file in it failed.
    #[error("{0}")]
    Io(String),
}

impl From<StoreError> for AuthorityError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => {
                AuthorityError::Conflict(format!("{what} already exists"))
            }
            other => AuthorityError::Store(other),
        }
    }
}

type Result<T, E = AuthorityError> = std::result::Result<T, E>;

/// The client side of a request: where it came from and what it calls itself.
#[derive(Debug, Clone, Default)]
pub struct Client {
    /// The peer address.
    pub ip: Option<IpAddr>,
    /// The User-Agent header.
    pub user_agent: Option<String>,
}

impl Client {
    /// The same, borrowed.
    pub fn borrowed(&self) -> ClientRef<'_> {
        ClientRef {
            ip: self.ip,
            user_agent: self.user_agent.as_deref(),
        }
    }
}

/// [`Client`] borrowed from the request, for the verify path, which copies nothing
/// unless the ledger's last-used record changes.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientRef<'a> {
    /// The peer address.
    pub ip: Option<IpAddr>,
    /// The User-Agent header.
    pub user_agent: Option<&'a str>,
}

/// The current time, unix seconds.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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

/// Live root keys of one org, by version.
type OrgKeys = Vec<(u32, Zeroizing<[u8; KEY_LEN]>)>;

/// What waits for the next flush.
#[derive(Default)]
struct Pending {
    usage: HashMap<TokenId, LastUsed>,
    audit: Vec<AuditRecord>,
}

impl Pending {
    /// Puts back `older`, taken for a write that failed, under what was queued since:
    /// newer last-used times win, older audit events stay first.
    fn requeue(&mut self, older: Pending) {
        for (id, used) in older.usage {
            self.usage.entry(id).or_insert(used);
        }
        let newer = std::mem::replace(&mut self.audit, older.audit);
        self.audit.extend(newer);
    }
}

/// The authority: store, master key, and the in-memory state the verify path reads.
pub struct Authority {
    store: Store,
    master: MasterKey,
    data_dir: PathBuf,
    keys: RwLock<HashMap<String, OrgKeys>>,
    revoked: RwLock<HashSet<TokenId>>,
    pending: Mutex<Pending>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl KeyResolver for Authority {
    fn root_key(&self, org: &str, key_version: u32) -> Option<RootKey> {
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        let versions = keys.get(org)?;
        versions
            .iter()
            .find(|(v, _)| *v == key_version)
            .map(|(_, k)| RootKey::from_bytes(**k))
    }
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> AuthorityError {
    AuthorityError::Io(format!("{what} {}: {e}", path.display()))
}

fn check_name(what: &str, name: &str) -> Result<()> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(AuthorityError::BadRequest(format!(
            "invalid {what} name \"{}\": use 1 to 63 of a-z, 0-9 and '-', starting with a letter or digit",
            Excerpt(name.as_bytes())
        )))
    }
}

impl Authority {
    /// Opens the data directory, creating it, the master key and the database on
    /// first start. On first start it also mints the operator token, saves it as
    /// `operator.token` (mode 0600) and returns it so it can be shown once.
    pub fn open(data_dir: &Path) -> Result<(Self, Option<Secret>)> {
        use std::os::unix::fs::DirBuilderExt as _;
        if !data_dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(data_dir)
                .map_err(|e| io_err("cannot create data directory", data_dir, e))?;
        }
        let master = MasterKey::load_or_create(&data_dir.join("master.key"))?;
        let store = Store::open(&data_dir.join("macvault.redb"))?;
        let authority = Authority {
            store,
            master,
            data_dir: data_dir.to_owned(),
            keys: RwLock::new(HashMap::new()),
            revoked: RwLock::new(HashSet::new()),
            pending: Mutex::new(Pending::default()),
        };
        authority.load()?;
        let operator = if authority.store.org(SYSTEM_ORG)?.is_none() {
            Some(authority.bootstrap()?)
        } else {
            None
        };
        Ok((authority, operator))
    }

    fn load(&self) -> Result<()> {
        let mut keys: HashMap<String, OrgKeys> = HashMap::new();
        for (org, rec) in self.store.all_keys()? {
            if rec.retired.is_none() {
                let key = self.master.unwrap_key(&org, rec.version, &rec.wrapped)?;
                keys.entry(org)
                    .or_default()
                    .push((rec.version, Zeroizing::new(*key.expose_bytes())));
            }
        }
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = keys;
        let revoked = self.store.revoked()?.into_iter().collect();
        *self.revoked.write().unwrap_or_else(|p| p.into_inner()) = revoked;
        Ok(())
    }

    /// Creates the system org and the operator token.
    fn bootstrap(&self) -> Result<Secret> {
        let now = now();
        let expires = now + OPERATOR_EXPIRY.as_secs();
        let caveats = vec![
            Caveat::org(SYSTEM_ORG).map_err(|e| AuthorityError::BadRequest(e.to_string()))?,
            Caveat::expires(expires),
        ];
        let first = FirstToken {
            kind: TokenKind::Operator,
            name: "operator",
            caveats,
            expires,
        };
        let minted = self.found_org(SYSTEM_ORG, first, Actor::default(), now, |minted| {
            // Saved before the org is committed: if saving fails, the next start
            // bootstraps again instead of leaving an operator token nobody has.
            let path = self.data_dir.join("operator.token");
            if path.exists() {
                std::fs::remove_file(&path).map_err(|e| io_err("cannot replace", &path, e))?;
            }
            master::write_private(&path, format!("{}\n", minted.token.expose()).as_bytes())
                .map_err(|e| io_err("cannot write", &path, e))?;
            Ok(())
        })?;
        Ok(minted.token)
    }

    /// Creates an org with its first root key and its first token, in one transaction.
    fn found_org(
        &self,
        name: &str,
        first: FirstToken<'_>,
        actor: Actor,
        now: u64,
        before_commit: impl FnOnce(&Minted) -> Result<()>,
    ) -> Result<Minted> {
        let (key, key_rec) = self.new_root_key(name, 1, now)?;
        let org = OrgRecord {
            name: name.to_owned(),
            created: now,
            current_key: 1,
            max_expiry_secs: None,
        };
        let minted = self.build_token(
            &org,
            &key,
            first.kind,
            None,
            first.name,
            &first.caveats,
            actor.token,
            now,
            first.expires,
        )?;
        before_commit(&minted)?;
        let created = format!("org {name} created");
        self.store.write(|w| {
            w.create_org(&org)?;
            w.put_key(name, &key_rec)?;
            w.put_token(&minted.record)?;
            w.append_audit(audit::event(
                name,
                action::ORG_CREATE,
                actor,
                Outcome::Ok,
                created.clone(),
                now,
            ))?;
            w.append_audit(audit::event(
                name,
                action::TOKEN_MINT,
                actor,
                Outcome::Ok,
                mint_detail(&minted.record),
                now,
            ))?;
            if name != SYSTEM_ORG {
                // The operator's own log shows every org it created.
                w.append_audit(audit::event(
                    SYSTEM_ORG,
                    action::ORG_CREATE,
                    actor,
                    Outcome::Ok,
                    created,
                    now,
                ))?;
            }
            Ok::<_, AuthorityError>(())
        })?;
        self.add_live_key(name, 1, &key);
        Ok(minted)
    }

    fn new_root_key(&self, org: &str, version: u32, now: u64) -> Result<(RootKey, KeyRecord)> {
        let key = RootKey::generate().map_err(|_| MasterKeyError::Random)?;
        let wrapped = self.master.wrap(org, version, &key)?;
        Ok((
            key,
            KeyRecord {
                version,
                wrapped,
                created: now,
                retired: None,
            },
        ))
    }

    fn add_live_key(&self, org: &str, version: u32, key: &RootKey) {
        let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
        keys.entry(org.to_owned())
            .or_default()
            .push((version, Zeroizing::new(*key.expose_bytes())));
    }

    /// Mints the token text and its ledger record (nothing is stored yet).
    #[allow(clippy::too_many_arguments)]
    fn build_token(
        &self,
        org: &OrgRecord,
        key: &RootKey,
        kind: TokenKind,
        app: Option<&str>,
        name: &str,
        caveats: &[Caveat<'_>],
        creator: Option<TokenId>,
        now: u64,
        expires: u64,
    ) -> Result<Minted> {
        let id = TokenId::generate().map_err(|_| MasterKeyError::Random)?;
        let identifier = TokenIdentifier {
            org: org.name.clone(),
            key_version: org.current_key,
            token_id: id,
        };
        let identifier = identifier
            .encode()
            .map_err(|e| AuthorityError::BadRequest(e.to_string()))?;
        let mut m = Macaroon::mint(key.expose_bytes(), identifier.as_bytes(), None);
        let texts: Vec<String> = caveats.iter().map(ToString::to_string).collect();
        for t in &texts {
            m.add_first_party(t.as_bytes());
        }
        let text = Bundle::single(m).to_text();
        let record = TokenRecord {
            id,
            org: org.name.clone(),
            name: name.to_owned(),
            kind,
            app: app.map(str::to_owned),
            caveats: texts,
            key_version: org.current_key,
            created: now,
            creator,
            expires,
            fingerprint: fingerprint(&text),
            revoked: None,
            last_used: None,
        };
        Ok(Minted {
            token: Secret(text),
            record,
        })
    }

    fn current_key(&self, org: &OrgRecord) -> Result<RootKey> {
        self.root_key(&org.name, org.current_key).ok_or_else(|| {
            AuthorityError::Conflict(format!("org {} has no live root key", org.name))
        })
    }

    fn org(&self, name: &str) -> Result<OrgRecord> {
        self.store.org(name)?.ok_or(AuthorityError::NotFound("org"))
    }

    fn is_revoked(&self, id: &TokenId) -> bool {
        self.revoked
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(id)
    }

    /// Verifies a bearer token (chain, key, validity, revocation) and records its use.
    pub fn authenticate(&self, text: &str, client: &Client) -> Result<Verified<'static>> {
        self.verified(text, client.borrowed(), |verified, _| verified.into_owned())
            .map_err(AuthorityError::Unauthenticated)
    }

    /// The one verification path: decode, verify chain and caveats at `now`, check the
    /// deny-list, record the use (with the caller's own address), then hand the
    /// verified token to `then`. Reads no disk.
    fn verified<R>(
        &self,
        text: &str,
        client: ClientRef<'_>,
        then: impl FnOnce(Verified<'_>, u64) -> R,
    ) -> Result<R, FailureClass> {
        let now = now();
        let checked = decode_text(text)
            .map_err(|_| FailureClass::Malformed)
            .and_then(|bytes| {
                let bundle = Bundle::parse(&bytes).map_err(|_| FailureClass::Malformed)?;
                let verified = verify(&bundle, self, now).map_err(|e| e.class())?;
                if self.is_revoked(&verified.token_id()) {
                    return Err(FailureClass::Revoked);
                }
                self.record_use(verified.token_id(), client, now);
                Ok(then(verified, now))
            });
        if let Err(class) = &checked {
            // The class and the address only: never the token.
            tracing::debug!(class = class.code(), ip = ?client.ip, "token not accepted");
        }
        checked
    }

    /// Checks an access against a verified token; a denial is audited.
    pub fn authorize(&self, who: &Verified<'_>, access: &Access<'_>) -> Result<()> {
        who.check(access)
            .map_err(|denial| self.denied(who, access.org, access.source_ip, denial))
    }

    /// Authorizes `who` for one action on one object (audited when denied).
    fn require(
        &self,
        who: &Verified<'_>,
        org: &str,
        app: Option<&str>,
        resource: Resource,
        action: Action,
        client: &Client,
    ) -> Result<()> {
        self.authorize(who, &Self::access(org, app, resource, action, client.ip))
    }

    fn denied(
        &self,
        who: &Verified<'_>,
        org: &str,
        ip: Option<IpAddr>,
        denial: Denial,
    ) -> AuthorityError {
        // Denials in an org the token does not belong to are logged in the token's own
        // org: nobody may fill another org's audit log.
        let log_org = if who.org() == org { org } else { who.org() };
        let event = audit::event(
            log_org,
            action::REQUEST_DENIED,
            Actor {
                token: Some(who.token_id()),
                ip,
            },
            Outcome::Denied,
            denial.to_string(),
            now(),
        );
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .audit
            .push(event);
        AuthorityError::Denied(denial)
    }

    fn access<'a>(
        org: &'a str,
        app: Option<&'a str>,
        resource: Resource,
        action: Action,
        ip: Option<IpAddr>,
    ) -> Access<'a> {
        Access {
            org,
            app,
            resource,
            action,
            secret: None,
            now: now(),
            source_ip: ip,
        }
    }

    fn record_use(&self, id: TokenId, client: ClientRef<'_>, now: u64) {
        let ua = client.user_agent.map(|ua| {
            let cut = ua
                .char_indices()
                .nth(MAX_USER_AGENT)
                .map_or(ua.len(), |(i, _)| i);
            &ua[..cut]
        });
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        match pending.usage.get_mut(&id) {
            // The same client again (the common case): no allocation.
            Some(used) if used.user_agent.as_deref() == ua => {
                used.time = now;
                used.ip = client.ip;
            }
            _ => {
                let used = LastUsed {
                    time: now,
                    ip: client.ip,
                    user_agent: ua.map(str::to_owned),
                };
                pending.usage.insert(id, used);
            }
        }
    }

    /// Writes queued last-used times and audit events in one transaction.
    pub fn flush(&self) -> Result<()> {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        if pending.usage.is_empty() && pending.audit.is_empty() {
            return Ok(());
        }
        let written = self.store.write(|w| {
            for (id, used) in &pending.usage {
                if let Some(mut rec) = w.token(id)? {
                    rec.last_used = Some(used.clone());
                    w.put_token(&rec)?;
                }
            }
            for event in &pending.audit {
                w.append_audit(event.clone())?;
            }
            Ok::<_, AuthorityError>(())
        });
        if written.is_err() {
            // Nothing was committed: keep it all for the next flush.
            self.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .requeue(pending);
        }
        written
    }

    /// `POST /v1/verify`: verifies `token` and, if an access is given, decides it (an IP
    /// caveat against `source_ip`); hands the verified token and the denial, if any, to
    /// `then`. Everything stays borrowed from the caller.
    pub fn decide<R>(
        &self,
        token: &str,
        access: Option<&AccessSpec>,
        source_ip: Option<IpAddr>,
        client: ClientRef<'_>,
        then: impl FnOnce(&Verified<'_>, Option<Denial>) -> R,
    ) -> Result<R, FailureClass> {
        // `source_ip` is the caller's say-so: fine for deciding an IP caveat, not for the
        // ledger, which records the caller's own address (`client`).
        self.verified(token, client, |verified, now| {
            let denial = access.and_then(|spec| verified.check(&spec.access(now, source_ip)).err());
            then(&verified, denial)
        })
    }

    /// Creates an org with its first root key; returns an `org` token for it.
    pub fn create_org(&self, who: &Verified<'_>, name: &str, client: &Client) -> Result<Minted> {
        self.require(
            who,
            SYSTEM_ORG,
            None,
            Resource::Orgs,
            Action::Create,
            client,
        )?;
        check_name("org", name)?;
        if name == SYSTEM_ORG {
            return Err(AuthorityError::Conflict(format!(
                "org {SYSTEM_ORG} is reserved"
            )));
        }
        let now = now();
        let expires = now + DEFAULT_EXPIRY.as_secs();
        let caveats = Preset::Org.caveats(name, None, expires)?;
        let first = FirstToken {
            kind: TokenKind::Org,
            name: "org",
            caveats,
            expires,
        };
        self.found_org(name, first, actor(who, client), now, |_| Ok(()))
    }

    /// An org's settings.
    pub fn get_org(&self, who: &Verified<'_>, name: &str, client: &Client) -> Result<OrgRecord> {
        self.require(who, name, None, Resource::Orgs, Action::Read, client)?;
        self.org(name)
    }

    /// Sets an org's maximum token lifetime.
    pub fn set_max_expiry(
        &self,
        who: &Verified<'_>,
        name: &str,
        max: Option<u64>,
        client: &Client,
    ) -> Result<OrgRecord> {
        self.require(who, name, None, Resource::Orgs, Action::Write, client)?;
        if max == Some(0) {
            return Err(AuthorityError::BadRequest(
                "max expiry must be positive".into(),
            ));
        }
        let actor = actor(who, client);
        let now = now();
        self.store.write(|w| {
            let mut org = w.org(name)?.ok_or(AuthorityError::NotFound("org"))?;
            org.max_expiry_secs = max;
            w.put_org(&org)?;
            let detail = match max {
                Some(s) => format!("max expiry set to {}", format_span(s)),
                None => "max expiry removed".into(),
            };
            w.append_audit(audit::event(
                name,
                action::ORG_UPDATE,
                actor,
                Outcome::Ok,
                detail,
                now,
            ))?;
            Ok(org)
        })
    }

    /// Mints a preset. The presented token must be allowed to create tokens (for the
    /// app, if any) and must itself hold every right it grants: each of its caveats
    /// must be implied by a caveat of the new token, expiry included.
    pub fn mint(
        &self,
        who: &Verified<'_>,
        org_name: &str,
        req: &MintSpec,
        client: &Client,
    ) -> Result<Minted> {
        check_name("org", org_name)?;
        if let Some(app) = &req.app {
            check_name("app", app)?;
        }
        self.require(
            who,
            org_name,
            req.app.as_deref(),
            Resource::Tokens,
            Action::Create,
            client,
        )?;
        let org = self.org(org_name)?;
        let name = req.name.as_deref().unwrap_or(req.preset.name());
        if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control)
        {
            return Err(AuthorityError::BadRequest(format!(
                "a token name is 1 to {MAX_NAME} printable characters"
            )));
        }
        // The default lifetime is cut to the org's maximum; an explicit one over it is refused.
        let ttl = match (req.expiry_secs, org.max_expiry_secs) {
            (Some(0), _) => {
                return Err(AuthorityError::BadRequest("expiry must be positive".into()));
            }
            (Some(ttl), Some(max)) if ttl > max => {
                return Err(AuthorityError::BadRequest(format!(
                    "expiry {} exceeds the org's maximum of {}",
                    format_span(ttl),
                    format_span(max)
                )));
            }
            (Some(ttl), _) => ttl,
            (None, max) => max.map_or(DEFAULT_EXPIRY.as_secs(), |m| {
                m.min(DEFAULT_EXPIRY.as_secs())
            }),
        };
        if who.third_party_caveats() > 0 {
            // The new token would not carry the third-party requirement: minting would
            // launder it away (a CI token would mint tokens usable without the CI job).
            let denial = Denial {
                index: 0,
                caveat: "third-party caveat".into(),
                reason: "a token that needs a discharge cannot mint tokens".into(),
            };
            return Err(self.denied(who, org_name, client.ip, denial));
        }
        let now = now();
        let mut expires = now.saturating_add(ttl);
        if expires > MAX_TIME {
            return Err(AuthorityError::BadRequest(format!(
                "expiry {} is too far away",
                format_span(ttl)
            )));
        }
        if let Some(limit) = who.expires()
            && expires > limit
        {
            // Nothing outlives the token that minted it: the default expiry is cut to
            // fit; an explicit one that does not fit is refused.
            if req.expiry_secs.is_some() {
                return Err(AuthorityError::BadRequest(format!(
                    "expiry {} is later than the presenting token's own expiry ({})",
                    format_time(expires),
                    format_time(limit)
                )));
            }
            expires = limit;
        }
        let caveats = req.preset.caveats(org_name, req.app.as_deref(), expires)?;
        for (i, held) in who.caveats().iter().enumerate() {
            if !caveats.iter().any(|c| c.implies(held)) {
                let denial = Denial {
                    index: i + 1,
                    caveat: held.to_string(),
                    reason: format!(
                        "is not implied by the {} token being minted: a token cannot mint rights it does not hold",
                        req.preset.name()
                    ),
                };
                return Err(self.denied(who, org_name, client.ip, denial));
            }
        }
        let key = self.current_key(&org)?;
        let minted = self.build_token(
            &org,
            &key,
            req.preset.kind(),
            req.app.as_deref(),
            name,
            &caveats,
            Some(who.token_id()),
            now,
            expires,
        )?;
        let actor = actor(who, client);
        self.store.write(|w| {
            w.put_token(&minted.record)?;
            w.append_audit(audit::event(
                org_name,
                action::TOKEN_MINT,
                actor,
                Outcome::Ok,
                mint_detail(&minted.record),
                now,
            ))
        })?;
        Ok(minted)
    }

    /// The ledger of an org.
    pub fn list_tokens(
        &self,
        who: &Verified<'_>,
        org: &str,
        client: &Client,
    ) -> Result<Vec<TokenRecord>> {
        self.require(who, org, None, Resource::Tokens, Action::Read, client)?;
        Ok(self.store.tokens(org)?)
    }

    /// Revokes a token by id (and with it every token attenuated from it).
    pub fn revoke(&self, who: &Verified<'_>, id: &TokenId, client: &Client) -> Result<TokenRecord> {
        let rec = self
            .store
            .token(id)?
            .ok_or(AuthorityError::NotFound("token"))?;
        self.authorize_revocation(who, &rec, client)?;
        self.revoke_record(rec.id, who, client)
    }

    /// Revokes the presented token itself, and with it everything attenuated from it.
    /// The token as minted may always do so; an attenuated copy needs `delete` on
    /// tokens like any other revoker, so that a narrow copy handed to someone else
    /// cannot kill the original.
    pub fn revoke_self(&self, who: &Verified<'_>, client: &Client) -> Result<TokenRecord> {
        let rec = self
            .store
            .token(&who.token_id())?
            .ok_or(AuthorityError::NotFound("token"))?;
        // As minted: the same first-party caveats and no third-party ones (a copy that
        // only added a discharge requirement is still a copy).
        let as_minted = who.third_party_caveats() == 0
            && who.caveats().len() == rec.caveats.len()
            && who
                .caveats()
                .iter()
                .zip(&rec.caveats)
                .all(|(c, minted)| c.to_string() == *minted);
        if !as_minted {
            self.authorize_revocation(who, &rec, client)?;
        }
        self.revoke_record(rec.id, who, client)
    }

    /// Revoking `rec` needs `delete` on tokens in its org (and app).
    fn authorize_revocation(
        &self,
        who: &Verified<'_>,
        rec: &TokenRecord,
        client: &Client,
    ) -> Result<()> {
        let app = rec.app.as_deref();
        self.require(who, &rec.org, app, Resource::Tokens, Action::Delete, client)
    }

    fn revoke_record(
        &self,
        id: TokenId,
        who: &Verified<'_>,
        client: &Client,
    ) -> Result<TokenRecord> {
        let now = now();
        let actor = actor(who, client);
        // Read and write in one transaction, so a concurrent last-used flush is kept.
        let rec = self.store.write(|w| {
            let mut rec = w.token(&id)?.ok_or(AuthorityError::NotFound("token"))?;
            if rec.revoked.is_some() {
                return Ok(rec);
            }
            rec.revoked = Some(now);
            w.put_token(&rec)?;
            w.put_revoked(&rec.id, now)?;
            let detail = format!(
                "{} token \"{}\" ({}) revoked",
                rec.kind.name(),
                rec.name,
                rec.id
            );
            w.append_audit(audit::event(
                &rec.org,
                action::TOKEN_REVOKE,
                actor,
                Outcome::Ok,
                detail,
                now,
            ))?;
            Ok::<_, AuthorityError>(rec)
        })?;
        self.revoked
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(rec.id);
        Ok(rec)
    }

    /// An org's root-key versions (never the keys).
    pub fn list_keys(
        &self,
        who: &Verified<'_>,
        org: &str,
        client: &Client,
    ) -> Result<(OrgRecord, Vec<KeyRecord>)> {
        self.require(who, org, None, Resource::Keys, Action::Read, client)?;
        let rec = self.org(org)?;
        Ok((rec, self.store.keys(org)?))
    }

    /// Adds a root-key version and makes it the one used for minting.
    pub fn rotate_key(
        &self,
        who: &Verified<'_>,
        org: &str,
        client: &Client,
    ) -> Result<(OrgRecord, KeyRecord)> {
        self.require(who, org, None, Resource::Keys, Action::Control, client)?;
        let now = now();
        let actor = actor(who, client);
        let mut added = None;
        let rotated = self.store.write(|w| {
            let mut rec = w.org(org)?.ok_or(AuthorityError::NotFound("org"))?;
            let version = w
                .last_key_version(org)?
                .unwrap_or(0)
                .checked_add(1)
                .ok_or_else(|| AuthorityError::Conflict("no key versions left".into()))?;
            let (key, key_rec) = self.new_root_key(org, version, now)?;
            rec.current_key = version;
            w.put_key(org, &key_rec)?;
            w.put_org(&rec)?;
            w.append_audit(audit::event(
                org,
                action::KEY_ROTATE,
                actor,
                Outcome::Ok,
                format!("root key version {version} is now current"),
                now,
            ))?;
            // Live before the commit makes it current, so that no mint in between
            // finds the new version on disk but not in memory.
            self.add_live_key(org, version, &key);
            added = Some(version);
            Ok::<_, AuthorityError>((rec, key_rec))
        });
        match rotated {
            Ok(done) => Ok(done),
            Err(e) => {
                // Not committed: the version made live above goes again.
                let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
                if let (Some(added), Some(versions)) = (added, keys.get_mut(org)) {
                    versions.retain(|(v, _)| *v != added);
                }
                Err(e)
            }
        }
    }

    /// Retires a root-key version: every token minted under it stops verifying.
    pub fn retire_key(
        &self,
        who: &Verified<'_>,
        org: &str,
        version: u32,
        client: &Client,
    ) -> Result<(OrgRecord, KeyRecord)> {
        self.require(who, org, None, Resource::Keys, Action::Control, client)?;
        // Retiring the version the caller's own token hangs on would lock the caller out
        // (for the operator, out of the whole server): it must hold a newer token first.
        if who.org() == org && who.key_version() == version {
            return Err(AuthorityError::Conflict(format!(
                "the token making this request was minted under key version {version}; \
                 retire it with a token minted under the current version"
            )));
        }
        let now = now();
        let actor = actor(who, client);
        let out = self.store.write(|w| {
            let rec = w.org(org)?.ok_or(AuthorityError::NotFound("org"))?;
            let mut key = w
                .key(org, version)?
                .ok_or(AuthorityError::NotFound("key version"))?;
            if version == rec.current_key {
                return Err(AuthorityError::Conflict(format!(
                    "version {version} is the current key: rotate first"
                )));
            }
            if key.retired.is_none() {
                key.retired = Some(now);
                w.put_key(org, &key)?;
                w.append_audit(audit::event(
                    org,
                    action::KEY_RETIRE,
                    actor,
                    Outcome::Ok,
                    format!("root key version {version} retired"),
                    now,
                ))?;
            }
            Ok((rec, key))
        })?;
        let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
        if let Some(versions) = keys.get_mut(org) {
            versions.retain(|(v, _)| *v != version);
        }
        Ok(out)
    }

    /// The last `limit` audit events of an org.
    pub fn audit(
        &self,
        who: &Verified<'_>,
        org: &str,
        limit: usize,
        client: &Client,
    ) -> Result<Vec<AuditRecord>> {
        self.require(who, org, None, Resource::Audit, Action::Read, client)?;
        // Queued events (denials) become visible to the reader who asks for them.
        self.flush()?;
        Ok(self.store.audit(org, limit.clamp(1, 1000))?)
    }
}

/// The audit actor of a request.
fn actor(who: &Verified<'_>, client: &Client) -> Actor {
    Actor {
        token: Some(who.token_id()),
        ip: client.ip,
    }
}

/// A lifetime for people: `90d`, `36h`, `15m`, `42s` (the largest unit that divides it).
fn mint_detail(rec: &TokenRecord) -> String {
    let app = rec
        .app
        .as_ref()
        .map(|a| format!(" for app {a}"))
        .unwrap_or_default();
    format!(
        "{} token \"{}\" ({}){app}, expires {}",
        rec.kind.name(),
        rec.name,
        rec.id,
        format_time(rec.expires)
    )
}

/// The first token of a new org.
struct FirstToken<'a> {
    kind: TokenKind,
    name: &'a str,
    caveats: Vec<Caveat<'static>>,
    expires: u64,
}

/// What to mint.
#[derive(Debug, Clone)]
pub struct MintSpec {
    /// The preset.
    pub preset: Preset,
    /// The app (deploy and runtime).
    pub app: Option<String>,
    /// The ledger name (defaults to the preset's name).
    pub name: Option<String>,
    /// Lifetime in seconds (defaults to [`DEFAULT_EXPIRY`]).
    pub expiry_secs: Option<u64>,
}

#[cfg(test)]
mod tests;
