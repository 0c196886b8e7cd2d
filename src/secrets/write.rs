//! Writes: set and unset (several names in one atomic write, each with an optional
//! check-and-set), rollback and destroy. Each runs in one transaction that also bumps
//! the scope's change counter, publishes the change and appends its audit event; the
//! bodies are pure, so a backend may run them again.

use std::collections::HashSet;
use std::fmt;

use zeroize::Zeroizing;

use super::limits::{self, MAX_APP_TOTAL, MAX_ORG_SECRETS, MAX_PER_WRITE};
use super::resolve::{env_total, resolve};
use super::{OrgKeys, Place, Scope, SecretError, Secrets, SecretsVersions, require_org, versions};
use crate::audit::action;
use crate::authority::Principal;
use crate::caveats::{Action, MAX_TIME};
use crate::model::{Actor, AuditEvent, Change, Outcome, SecretHead, SecretVersion};
use crate::store::{Ahead, Tx};

/// One secret a write sets.
pub struct SetSecret {
    /// The name.
    pub name: String,
    /// The value (at most 64 KiB, no NUL).
    pub value: Zeroizing<Vec<u8>>,
    /// A description for people; `None` keeps the one it has.
    pub description: Option<String>,
    /// It stops resolving this many seconds from now; `None`: never.
    pub expires_secs: Option<u64>,
    /// Check-and-set: the version it must be at (0: must not be set).
    pub if_version: Option<u64>,
}

impl fmt::Debug for SetSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SetSecret")
            .field("name", &self.name)
            .field("value_len", &self.value.len())
            .field("if_version", &self.if_version)
            .finish_non_exhaustive()
    }
}

/// One secret a write unsets.
#[derive(Debug, Clone)]
pub struct UnsetSecret {
    /// The name.
    pub name: String,
    /// Check-and-set: the version it must be at.
    pub if_version: Option<u64>,
}

/// One atomic write: every name is set or unset, or none is.
#[derive(Debug, Default)]
pub struct Write {
    /// Secrets to set.
    pub set: Vec<SetSecret>,
    /// Secrets to unset.
    pub unset: Vec<UnsetSecret>,
    /// Check everything and say what would change, but write nothing.
    pub dry_run: bool,
    /// Create the app of an app scope if the org has none of that name (needs what
    /// creating an app needs).
    pub create_app: bool,
}

/// What a dry run says a set would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WouldChange {
    /// The secret is not set now.
    Add,
    /// Its value would change.
    Change,
    /// Its value is the same (it would still get a new version).
    Unchanged,
    /// It is set; whether the value differs is not said to a token that may not reveal it
    /// (a dry run is no equality oracle).
    Set,
}

impl WouldChange {
    /// `add`, `change`, `unchanged`, `set`.
    pub fn name(self) -> &'static str {
        match self {
            WouldChange::Add => "add",
            WouldChange::Change => "change",
            WouldChange::Unchanged => "unchanged",
            WouldChange::Set => "set",
        }
    }
}

/// What a write did to one secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenSecret {
    /// The name.
    pub name: String,
    /// Its version now (for an unset one, the version it was at).
    pub version: u64,
    /// It was unset.
    pub unset: bool,
    /// In a dry run, what a set would do; in a write, `Unchanged` for a set that wrote
    /// nothing (same value, description and expiry, for a token that may reveal it).
    pub would: Option<WouldChange>,
}

/// What a write did.
#[derive(Debug, Clone)]
pub struct Written {
    /// Each secret, in the order asked.
    pub secrets: Vec<WrittenSecret>,
    /// The secrets versions it moved.
    pub versions: SecretsVersions,
}

/// Which stored values `destroy` purges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestroyTarget {
    /// One version.
    Version(u64),
    /// Every version kept.
    All,
}

/// What a destroy did.
#[derive(Debug, Clone)]
pub struct Destroyed {
    /// The versions whose values were purged now (not those purged before).
    pub versions: Vec<u64>,
    /// The current value was among them: the secret is unset.
    pub unset: bool,
    /// The secrets versions it moved (none moved if the current value stayed).
    pub versions_after: Option<SecretsVersions>,
}

/// What one transaction body knows besides the store.
struct Ctx {
    org: String,
    app: Option<String>,
    now: u64,
    actor: Actor,
    max_versions: u64,
    stored_per_scope: u64,
}

impl Ctx {
    fn app(&self) -> Option<&str> {
        self.app.as_deref()
    }

    fn scope(&self) -> Scope<'_> {
        Scope {
            org: &self.org,
            app: self.app(),
        }
    }

    fn place<'n>(&'n self, name: &'n str, version: u64) -> Place<'n> {
        Place {
            org: &self.org,
            app: self.app(),
            name,
            version,
        }
    }

    fn audit(&self, tx: &mut dyn Tx, action: &str, detail: String) -> Result<(), SecretError> {
        tx.append_audit(&AuditEvent::new(
            &self.org,
            action,
            self.actor,
            Outcome::Ok,
            format!("{detail} in {}", self.scope()),
            self.now,
        ))?;
        Ok(())
    }

    /// Writes version `version` of `head` holding `value` (sealed for its place),
    /// makes it current, and drops versions past the cap.
    fn put_version(
        &self,
        tx: &mut dyn Tx,
        keys: &OrgKeys,
        head: &mut SecretHead,
        value: &[u8],
        rollback_of: Option<u64>,
    ) -> Result<u64, SecretError> {
        let version = head.last_version + 1;
        let sealed = keys.seal(self.place(&head.name, version), value)?;
        let digest = keys.digest(self.app(), &head.name, value);
        let mut v = SecretVersion::new(
            &self.org,
            self.app(),
            &head.name,
            version,
            self.now,
            self.actor.token,
            digest,
            sealed,
        );
        v.rollback_of = rollback_of;
        tx.put_secret_version(&v)?;
        head.version = version;
        head.last_version = version;
        if head.oldest == 0 {
            head.oldest = version;
        }
        head.unset = false;
        head.updated = self.now;
        head.digest = digest;
        head.size = u32::try_from(value.len()).unwrap_or(u32::MAX);
        while head.last_version - head.oldest + 1 > self.max_versions {
            tx.delete_secret_version(&self.org, self.app(), &head.name, head.oldest)?;
            head.oldest += 1;
        }
        Ok(version)
    }

    /// The written scope stays within its own caps (names, bytes of current values,
    /// bytes stored: `limits`), and every environment this write changes still fits:
    /// the app's, or for a change to the org's own secrets, every app's (and that of
    /// apps without secrets of their own). `grows`: whether the write stores values;
    /// one that only unsets needs no room of its own (but may let an org value show
    /// through, so environments are checked for it too). `added`: whether it adds
    /// names, which the org's cap on names counts.
    fn check_sizes(&self, tx: &mut dyn Tx, grows: bool, added: bool) -> Result<(), SecretError> {
        let (org, app) = (self.org.as_str(), self.app());
        let mut ahead = vec![Ahead::SecretHeads { org, app }];
        if added {
            ahead.push(Ahead::SecretCount(org));
        }
        if grows {
            ahead.push(Ahead::SecretStoredBytes { org, app });
        }
        if app.is_some() {
            ahead.push(Ahead::SecretHeads { org, app: None });
        }
        tx.read_ahead(&ahead)?;
        if added {
            let count = tx.count_secrets(org)?;
            if count > MAX_ORG_SECRETS {
                return Err(SecretError::TooMany(count));
            }
        }
        let own = tx.secret_heads(&self.org, self.app())?;
        let full = |limit| SecretError::ScopeFull {
            scope: Scope {
                org: &self.org,
                app: self.app(),
            }
            .to_string(),
            limit,
        };
        let names = own.iter().filter(|h| !h.unset || h.size > 0).count();
        if grows && names > limits::MAX_SCOPE_SECRETS {
            return Err(full(
                "1000 secrets (set, or unset with a value stored: `destroy --all` frees one)",
            ));
        }
        let values: u64 = own
            .iter()
            .filter(|h| !h.unset)
            .map(|h| limits::env_size(&h.name, h.size))
            .sum();
        if grows && values > limits::MAX_SCOPE_VALUES {
            return Err(full("512 KiB of current values (names and values)"));
        }
        if grows && tx.secret_stored_bytes(&self.org, self.app())? > self.stored_per_scope {
            return Err(full(
                "64 MiB of stored versions, old ones and unset secrets included (destroy \
                 values to make room)",
            ));
        }
        let fits = |org_heads: &[SecretHead], app_heads: &[SecretHead], app: &str| {
            if env_total(&resolve(org_heads, app_heads, self.now)) > MAX_APP_TOTAL {
                return Err(SecretError::AppTooLarge {
                    app: format!("app {app}"),
                });
            }
            Ok(())
        };
        match &self.app {
            // The app's environment: the org's secrets under the app's own (just read).
            Some(app) => fits(&tx.secret_heads(&self.org, None)?, &own, app)?,
            None => {
                let alone = env_total(&resolve(&own, &[], self.now));
                if alone > MAX_APP_TOTAL {
                    return Err(SecretError::AppTooLarge {
                        app: "every app without secrets of its own".into(),
                    });
                }
                for app in tx.secret_apps(&self.org)? {
                    fits(&own, &tx.secret_heads(&self.org, Some(&app))?, &app)?;
                }
            }
        }
        Ok(())
    }

    /// Moves the scope's change counter (and its count of blind writes for a `blind`
    /// write: one by a token that could not reveal everything it wrote, which restarts
    /// `run --watch` whether or not the values differ, so no restart or its absence
    /// tells that writer whether it wrote the value already there), publishes the
    /// change, and answers the secrets versions it moved.
    fn bump(&self, tx: &mut dyn Tx, blind: bool) -> Result<SecretsVersions, SecretError> {
        let bumped = tx.bump_secrets_counter(&self.org, self.app())?;
        if blind {
            tx.bump_secrets_blind_writes(&self.org, self.app())?;
        }
        tx.publish(
            &self.org,
            &Change::SecretsChanged {
                org: self.org.clone(),
                app: self.app.clone(),
            },
            self.now,
        )?;
        Ok(match &self.app {
            Some(app) => SecretsVersions {
                org: bumped.org,
                apps: vec![(app.clone(), bumped.org + bumped.own)],
            },
            None => {
                let apps = tx.secret_apps(&self.org)?;
                versions(tx, &self.org, apps)?
            }
        })
    }
}

/// The version a check-and-set compares with: 0 when not set.
fn current(head: Option<&SecretHead>) -> u64 {
    head.filter(|h| !h.unset).map_or(0, |h| h.version)
}

fn check_and_set(
    name: &str,
    head: Option<&SecretHead>,
    expected: Option<u64>,
) -> Result<(), SecretError> {
    match expected {
        Some(expected) if expected != current(head) => Err(SecretError::VersionConflict {
            name: name.to_owned(),
            current: current(head),
            expected,
        }),
        _ => Ok(()),
    }
}

/// Every name valid and once, every value, description and expiry within the limits.
fn check_write(w: &Write, now: u64) -> Result<(), SecretError> {
    let count = w.set.len() + w.unset.len();
    if count == 0 {
        return Err(SecretError::BadWrite("nothing to do"));
    }
    if count > MAX_PER_WRITE {
        return Err(SecretError::BadWrite("too many"));
    }
    let mut seen = HashSet::new();
    let names = w
        .set
        .iter()
        .map(|s| &s.name)
        .chain(w.unset.iter().map(|u| &u.name));
    for name in names {
        limits::check_name(name)?;
        if !seen.insert(name.as_str()) {
            return Err(SecretError::BadWrite("a name appears twice"));
        }
    }
    for s in &w.set {
        limits::check_value(&s.name, &s.value)?;
        if let Some(d) = &s.description {
            limits::check_description(d)?;
        }
        expiry(s.expires_secs, now)?;
    }
    Ok(())
}

/// When a secret set now for `secs` expires.
fn expiry(secs: Option<u64>, now: u64) -> Result<Option<u64>, SecretError> {
    match secs {
        None => Ok(None),
        Some(0) => Err(SecretError::BadExpiry),
        Some(secs) => match now.checked_add(secs) {
            Some(at) if at <= MAX_TIME => Ok(Some(at)),
            _ => Err(SecretError::BadExpiry),
        },
    }
}

impl Secrets {
    fn ctx(&self, who: &Principal, scope: Scope<'_>) -> Ctx {
        Ctx {
            org: scope.org.to_owned(),
            app: scope.app.map(str::to_owned),
            now: self.authority.now(),
            actor: who.actor(),
            max_versions: self.options.max_versions,
            stored_per_scope: self.options.stored_per_scope,
        }
    }

    /// Sets and unsets secrets of `scope` in one atomic write. Needs `write` on each name
    /// set and `delete` on each name unset; a single name refused refuses the whole write.
    pub async fn write(
        &self,
        who: &Principal,
        scope: Scope<'_>,
        w: Write,
    ) -> Result<Written, SecretError> {
        scope_names(scope)?;
        let ctx = self.ctx(who, scope);
        let now = ctx.now;
        check_write(&w, now)?;
        let set: Vec<&str> = w.set.iter().map(|s| s.name.as_str()).collect();
        let unset: Vec<&str> = w.unset.iter().map(|u| u.name.as_str()).collect();
        if !set.is_empty() {
            self.require_each(who, scope, Action::Write, &set, "set")?;
            self.require_code_writer(who, scope, &set).await?;
        }
        if !unset.is_empty() {
            self.require_each(who, scope, Action::Delete, &unset, "unset")?;
        }
        // Values are compared (a dry run's `unchanged`, a write that writes nothing) only
        // for names the token could reveal anyway: for others no answer may confirm a
        // guessed value, so their writes always make a version.
        let comparable: HashSet<String> = set
            .iter()
            .filter(|n| self.may_reveal(who, scope, n))
            .map(|n| (*n).to_owned())
            .collect();
        let blind =
            comparable.len() < set.len() || unset.iter().any(|n| !self.may_reveal(who, scope, n));
        let dry_run = w.dry_run;
        if w.create_app && scope.app.is_some() {
            self.authority
                .may_create_app(who, scope.org)
                .map_err(|e| SecretError::App(Box::new(e)))?;
        }
        let creator = w.create_app.then(|| who.token_id());
        let body = move |tx: &mut dyn Tx, keys: &super::WriteKeys| {
            // Everything read before the first write, in one round trip on PostgreSQL.
            let org = ctx.org.as_str();
            let mut ahead = vec![Ahead::Org(org), Ahead::SecretKeys(org)];
            ahead.extend(ctx.app().map(|app| Ahead::App { org, app }));
            let names: Vec<&str> = w
                .set
                .iter()
                .map(|s| s.name.as_str())
                .chain(w.unset.iter().map(|u| u.name.as_str()))
                .collect();
            ahead.extend(names.iter().map(|name| Ahead::SecretHead {
                org,
                app: ctx.app(),
                name,
            }));
            tx.read_ahead(&ahead)?;
            // Every head before anything is written (a name appears once in a write), so
            // that a write of many names reads them all in that one round trip.
            let mut heads = Vec::with_capacity(names.len());
            for name in &names {
                heads.push(tx.secret_head(org, ctx.app(), name)?);
            }
            let unset_heads = heads.split_off(w.set.len());
            match (ctx.app(), creator) {
                (Some(app), Some(by)) => {
                    require_org(tx, &ctx.org)?;
                    if tx.app(&ctx.org, app)?.is_none() {
                        tx.insert_app(&crate::model::App {
                            org: ctx.org.clone(),
                            name: app.to_owned(),
                            created: now,
                            created_by: Some(by),
                        })?;
                    }
                }
                _ => super::require_scope(tx, &ctx.org, ctx.app())?,
            }
            let keys = keys.ensure(tx)?;
            let (mut out, mut added, mut changed) = (Vec::new(), false, !w.unset.is_empty());
            for (s, head) in w.set.iter().zip(heads) {
                check_and_set(&s.name, head.as_ref(), s.if_version)?;
                added |= head.is_none();
                // The same value, description and expiry as now: nothing to write.
                let same = head.as_ref().is_some_and(|h| {
                    !h.unset
                        && comparable.contains(&s.name)
                        && keys.digest(ctx.app(), &s.name, &s.value) == h.digest
                        && s.description
                            .as_ref()
                            .is_none_or(|d| h.description.as_ref() == Some(d))
                        && s.expires_secs.is_none()
                        && h.expires.is_none()
                });
                if same && !w.dry_run {
                    let version = head.as_ref().map_or(0, |h| h.version);
                    out.push(WrittenSecret {
                        name: s.name.clone(),
                        version,
                        unset: false,
                        would: Some(WouldChange::Unchanged),
                    });
                    continue;
                }
                changed = true;
                let would = w.dry_run.then(|| match head.as_ref().filter(|h| !h.unset) {
                    None => WouldChange::Add,
                    Some(h) if comparable.contains(&s.name) => {
                        if keys.digest(ctx.app(), &s.name, &s.value) == h.digest {
                            WouldChange::Unchanged
                        } else {
                            WouldChange::Change
                        }
                    }
                    Some(_) => WouldChange::Set,
                });
                let mut head =
                    head.unwrap_or_else(|| SecretHead::new(&ctx.org, ctx.app(), &s.name));
                let version = ctx.put_version(tx, keys, &mut head, &s.value, None)?;
                head.expires = expiry(s.expires_secs, now)?;
                if s.description.is_some() {
                    head.description.clone_from(&s.description);
                }
                tx.put_secret_head(&head)?;
                out.push(WrittenSecret {
                    name: s.name.clone(),
                    version,
                    unset: false,
                    would,
                });
            }
            for (u, head) in w.unset.iter().zip(unset_heads) {
                check_and_set(&u.name, head.as_ref(), u.if_version)?;
                let mut head = head
                    .filter(|h| !h.unset)
                    .ok_or_else(|| SecretError::NotFound(u.name.clone()))?;
                head.unset = true;
                head.updated = now;
                tx.put_secret_head(&head)?;
                out.push(WrittenSecret {
                    name: u.name.clone(),
                    version: head.version,
                    unset: true,
                    would: None,
                });
            }
            if !changed {
                // Every set was unchanged: no version, no bump (watchers stay asleep),
                // no audit event.
                let apps = ctx.app.iter().cloned().collect();
                return Ok(Written {
                    secrets: out,
                    versions: versions(tx, &ctx.org, apps)?,
                });
            }
            // (A name added is a change.)
            ctx.check_sizes(tx, !w.set.is_empty(), added)?;
            let versions = ctx.bump(tx, blind)?;
            if w.dry_run {
                // Everything checked; the rehearsal rolls the transaction back.
                return Ok(Written {
                    secrets: out,
                    versions,
                });
            }
            let label = |unset: bool| {
                let done: Vec<String> = out
                    .iter()
                    .filter(|s| s.unset == unset && s.would != Some(WouldChange::Unchanged))
                    .map(|s| format!("{} v{}", s.name, s.version))
                    .collect();
                done.join(", ")
            };
            if out
                .iter()
                .any(|s| !s.unset && s.would != Some(WouldChange::Unchanged))
            {
                ctx.audit(tx, action::SECRET_SET, format!("set {}", label(false)))?;
            }
            if !w.unset.is_empty() {
                ctx.audit(tx, action::SECRET_UNSET, format!("unset {}", label(true)))?;
            }
            Ok(Written {
                secrets: out,
                versions,
            })
        };
        if dry_run {
            self.rehearse_with_keys(scope.org, body).await
        } else {
            self.write_with_keys(scope.org, body).await
        }
    }

    /// Writes the value of an earlier version of a secret as its new version (without
    /// the expiry it has now; the description stays). Needs `write` on the name.
    pub async fn rollback(
        &self,
        who: &Principal,
        scope: Scope<'_>,
        name: &str,
        to: u64,
    ) -> Result<Written, SecretError> {
        scope_names(scope)?;
        limits::check_name(name)?;
        self.require_each(who, scope, Action::Write, &[name], "roll back")?;
        let blind = !self.may_reveal(who, scope, name);
        let name = name.to_owned();
        let ctx = self.ctx(who, scope);
        self.write_with_keys(scope.org, move |tx, keys| {
            super::require_scope(tx, &ctx.org, ctx.app())?;
            let keys = keys.ensure(tx)?;
            let mut head = tx
                .secret_head(&ctx.org, ctx.app(), &name)?
                .ok_or_else(|| SecretError::NotFound(name.clone()))?;
            let old = tx
                .secret_version(&ctx.org, ctx.app(), &name, to)?
                .ok_or_else(|| SecretError::VersionNotFound {
                    name: name.clone(),
                    version: to,
                })?;
            let sealed = old.sealed.as_ref().ok_or_else(|| SecretError::Destroyed {
                name: name.clone(),
                version: to,
            })?;
            let value = keys.open(ctx.place(&name, to), sealed)?;
            let version = ctx.put_version(tx, keys, &mut head, &value, Some(to))?;
            head.expires = None;
            tx.put_secret_head(&head)?;
            ctx.check_sizes(tx, true, false)?;
            let versions = ctx.bump(tx, blind)?;
            ctx.audit(
                tx,
                action::SECRET_ROLLBACK,
                format!("rolled {name} back to v{to} as v{version}"),
            )?;
            Ok(Written {
                secrets: vec![WrittenSecret {
                    name: name.clone(),
                    version,
                    unset: false,
                    would: None,
                }],
                versions,
            })
        })
        .await
    }

    /// Purges stored values of a secret for good (a value pasted by mistake): the
    /// versions stay in the history, marked destroyed. Destroying the current value
    /// unsets the secret. Never refused for size: it only removes. Needs `delete`.
    pub async fn destroy(
        &self,
        who: &Principal,
        scope: Scope<'_>,
        name: &str,
        target: DestroyTarget,
    ) -> Result<Destroyed, SecretError> {
        scope_names(scope)?;
        limits::check_name(name)?;
        self.require_each(who, scope, Action::Delete, &[name], "destroy")?;
        let blind = !self.may_reveal(who, scope, name);
        let name = name.to_owned();
        let ctx = self.ctx(who, scope);
        let committed = self
            .authority
            .store()
            .write(move |tx| {
                super::require_scope(tx, &ctx.org, ctx.app())?;
                let mut head = tx
                    .secret_head(&ctx.org, ctx.app(), &name)?
                    .ok_or_else(|| SecretError::NotFound(name.clone()))?;
                let targets = match target {
                    DestroyTarget::Version(v) => vec![
                        tx.secret_version(&ctx.org, ctx.app(), &name, v)?
                            .ok_or_else(|| SecretError::VersionNotFound {
                                name: name.clone(),
                                version: v,
                            })?,
                    ],
                    DestroyTarget::All => tx.secret_versions(&ctx.org, ctx.app(), &name)?,
                };
                let mut purged = Vec::new();
                for mut v in targets.into_iter().filter(|v| v.sealed.is_some()) {
                    v.sealed = None;
                    v.digest = [0; 32];
                    tx.put_secret_version(&v)?;
                    purged.push(v.version);
                }
                let hits_current =
                    !head.unset && (target == DestroyTarget::All || purged.contains(&head.version));
                let mut versions_after = None;
                if hits_current {
                    head.unset = true;
                    head.updated = ctx.now;
                    head.digest = [0; 32];
                    versions_after = Some(ctx.bump(tx, blind)?);
                }
                // No value left: the name no longer counts toward its scope's cap.
                let emptied = target == DestroyTarget::All && head.size != 0;
                if emptied {
                    head.size = 0;
                }
                if hits_current || emptied {
                    tx.put_secret_head(&head)?;
                }
                if !purged.is_empty() {
                    let shown: Vec<String> = purged.iter().map(|v| format!("v{v}")).collect();
                    let unset = if hits_current { "; it is unset" } else { "" };
                    ctx.audit(
                        tx,
                        action::SECRET_DESTROY,
                        format!("destroyed {name} {}{unset}", shown.join(", ")),
                    )?;
                }
                Ok::<_, SecretError>(Destroyed {
                    versions: purged,
                    unset: hits_current,
                    versions_after,
                })
            })
            .await?;
        Ok(self.announced(committed))
    }
}

/// The org and app are names (a bad one is a clear 400, not a miss).
fn scope_names(scope: Scope<'_>) -> Result<(), SecretError> {
    crate::authority::check_scope(scope.org, scope.app).map_err(SecretError::InvalidScope)
}
