//! The secrets store (docs/DESIGN.md, "Secrets"): secrets per org (shared by its apps) or per app,
//! versioned, sealed by envelope encryption, listed by keyed digest, and authorized only
//! by the caveats of the presented token (a [`Principal`]) — the store never looks a
//! token up.
//!
//! Every operation names its [`Scope`] and checks an `Access` on `secrets` that names
//! one secret, or a listing which is then filtered name by name: a token with
//! `secret =` patterns never learns whether a name outside them exists. Actions: `read`
//! for listings, metadata and history; `write` to set or roll back; `delete` to unset or
//! destroy; `reveal` (the next issue's delivery) for values.

mod allow_env;
mod error;
pub mod limits;
pub mod loads_code;
mod read;
mod resolve;
mod reveal;
mod rotate;
mod seal;
mod write;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

pub use error::SecretError;
pub use loads_code::loads_code;
pub use read::{HistoryEntry, Listed, Listing, Shown};
pub use resolve::{Resolved, env_total, resolve};
pub use reveal::{EXPIRING_SOON, LONG_POLL_CAP, PARKED, Revealed};
pub use rotate::KeyStatus;
pub use seal::{OrgKeys, Place};
pub use write::{
    DestroyTarget, Destroyed, SetSecret, UnsetSecret, WouldChange, Write, Written, WrittenSecret,
};

use crate::authority::shared::Shared;
use crate::authority::{Authority, Principal, Refused};
use crate::caveats::{Access, Action, Resource};
use crate::model::{SecretKeys, TokenId};
use crate::store::{Read, StoreError, Tx};

/// Where secrets live: an org's own (every app sees them) or one app's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope<'a> {
    /// The org.
    pub org: &'a str,
    /// The app, or `None` for the org's own secrets.
    pub app: Option<&'a str>,
}

impl fmt::Display for Scope<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.app {
            Some(app) => write!(f, "app {app} of org {}", self.org),
            None => write!(f, "org {}", self.org),
        }
    }
}

/// The secrets versions a change produced: an app's is the org's change counter plus
/// the app's own, so a change to the org's secrets moves every app's at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretsVersions {
    /// The org's counter: the secrets version of every app without secrets of its own.
    pub org: u64,
    /// Each affected app that has secrets of its own, and its secrets version.
    pub apps: Vec<(String, u64)>,
}

/// How the store is run (`serve --max-versions`, `--rewrap-batch`, `--rewrap-pause`).
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Versions kept per secret; older ones are destroyed as new ones are written.
    pub max_versions: u64,
    /// Versions re-wrapped per transaction during a key rotation.
    pub rewrap_batch: usize,
    /// Pause between those transactions (to spare a busy database).
    pub rewrap_pause: std::time::Duration,
    /// Bytes one scope's stored versions may take ([`limits::MAX_SCOPE_STORED`]).
    pub stored_per_scope: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_versions: limits::DEFAULT_MAX_VERSIONS,
            rewrap_batch: 200,
            rewrap_pause: std::time::Duration::ZERO,
            stored_per_scope: limits::MAX_SCOPE_STORED,
        }
    }
}

/// An org's secrets keys: as stored, and opened.
struct CachedKeys {
    stored: SecretKeys,
    keys: OrgKeys,
}

/// The keys a write uses: the org's (as this node last read them), or fresh ones for an
/// org that has none yet, which the write stores.
#[derive(Clone)]
struct WriteKeys {
    cached: Arc<CachedKeys>,
    fresh: bool,
}

impl WriteKeys {
    /// Inside a write: the stored keys are still these (or there are none and these are
    /// fresh, so they are stored now, the org existing); else the write is run again
    /// with the new keys. Stored keys mean the org exists (orgs are never deleted).
    fn ensure(&self, tx: &mut dyn Tx) -> Result<&OrgKeys, SecretError> {
        let org = &self.cached.stored.org;
        match tx.secret_keys(org)? {
            Some(stored) if stored == self.cached.stored => {}
            None if self.fresh => {
                require_org(tx, org)?;
                tx.put_secret_keys(&self.cached.stored)?;
            }
            _ => return Err(SecretError::KeysChanged),
        }
        Ok(&self.cached.keys)
    }
}

/// An owned (org, app).
type ScopeKey = (String, Option<String>);

/// The secrets store.
pub struct Secrets {
    authority: Arc<Authority>,
    options: Options,
    keys: Shared<HashMap<String, Arc<CachedKeys>>>,
    /// This node's name in rotation leases.
    holder: String,
    /// Wakes the rotation worker.
    kick: tokio::sync::Notify,
    /// Scopes opened for reveals, by (org, app), each at the state it was opened at.
    opened: Shared<HashMap<ScopeKey, Arc<reveal::OpenedScope>>>,
    /// Reveals answered (read by `/metrics`).
    revealed: std::sync::atomic::AtomicU64,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// How many times a write is run again when the org's secrets keys changed under it.
const KEY_RETRIES: usize = 3;

impl Secrets {
    /// The secrets store of `authority`'s orgs.
    pub fn new(authority: Arc<Authority>, options: Options) -> Self {
        let mut id = [0u8; 8];
        // A clash would only make two nodes share a lease.
        let _ = getrandom::fill(&mut id);
        Secrets {
            authority,
            options,
            keys: Shared::default(),
            holder: id.iter().map(|b| format!("{b:02x}")).collect(),
            kick: tokio::sync::Notify::new(),
            opened: Shared::default(),
            revealed: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Reveals answered with values since the node started (each counted once its audit
    /// event is committed, as it is answered).
    pub fn reveals(&self) -> u64 {
        self.revealed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The authority whose tokens it trusts.
    pub fn authority(&self) -> &Arc<Authority> {
        &self.authority
    }

    /// The access `who` makes on secrets of `scope`.
    fn access<'a>(&self, who: &Principal, scope: Scope<'a>, action: Action) -> Access<'a> {
        self.authority
            .access(who, scope.org, scope.app, Resource::Secrets, action)
    }

    /// Whether `who` could reveal the value of `name` in `scope`.
    fn may_reveal(&self, who: &Principal, scope: Scope<'_>, name: &str) -> bool {
        let reveal = self.access(who, scope, Action::Reveal);
        self.authority.allows(who, &reveal.secret(name))
    }

    /// Whether `who` could reveal every value of `scope`: `reveal` on a listing of it,
    /// unfiltered by any `secret =` caveat. What writing a name that loads code takes
    /// ([`loads_code`]): such a name makes the app run its writer's code with every value.
    fn reveals_whole(&self, who: &Principal, scope: Scope<'_>) -> bool {
        let reveal = self.access(who, scope, Action::Reveal);
        self.authority.allows(who, &reveal.listing())
            && !who
                .caveats()
                .iter()
                .any(|c| matches!(c, crate::caveats::Caveat::Secrets(_)))
    }

    /// Refuses (and audits) a write of a name that loads code by a token that could not
    /// reveal the whole scope, unless an org token allowed that name in the scope.
    async fn require_code_writer(
        &self,
        who: &Principal,
        scope: Scope<'_>,
        names: &[&str],
    ) -> Result<(), SecretError> {
        if !names.iter().any(|n| loads_code(n)) || self.reveals_whole(who, scope) {
            return Ok(());
        }
        let allowed = self.allowed_env(scope).await?;
        let Some(name) = names
            .iter()
            .find(|n| loads_code(n) && !allowed.iter().any(|a| a == *n))
        else {
            return Ok(());
        };
        let err = SecretError::LoadsCode {
            name: (*name).to_owned(),
            scope: scope.to_string(),
        };
        self.authority
            .queue_denial(who, 0, Refused::Rule("names that load code"), || {
                err.to_string()
            });
        Err(err)
    }

    /// Allows `action` on every one of `names` (all before anything is read: a name
    /// outside the token's patterns is refused whether or not it exists), or audits the
    /// denied attempt with the names and says which caveat denied.
    fn require_each(
        &self,
        who: &Principal,
        scope: Scope<'_>,
        action: Action,
        names: &[&str],
        verb: &str,
    ) -> Result<(), SecretError> {
        let access = self.access(who, scope, action);
        for name in names {
            self.authority
                .require_about(who, &access.secret(name), || {
                    format!("{verb} {} in {scope}", names_label(names))
                })
                .map_err(SecretError::Denied)?;
        }
        Ok(())
    }

    /// The keys a write in `org` seals with: cached, read, or made for an org that has
    /// none yet.
    async fn write_keys(&self, org: &str) -> Result<WriteKeys, SecretError> {
        if let Some(cached) = self.keys.read().get(org) {
            return Ok(WriteKeys {
                cached: cached.clone(),
                fresh: false,
            });
        }
        let name = org.to_owned();
        let stored = self
            .authority
            .store()
            .read(move |r| r.secret_keys(&name))
            .await?;
        let master = self.authority.master();
        let (cached, fresh) = match stored {
            Some(stored) => {
                let keys = OrgKeys::unwrap(master, &stored)?;
                (CachedKeys { stored, keys }, false)
            }
            None => {
                let (keys, stored) = OrgKeys::generate(master, org, self.authority.now())?;
                (CachedKeys { stored, keys }, true)
            }
        };
        let cached = Arc::new(cached);
        if !fresh {
            self.keys.write().insert(org.to_owned(), cached.clone());
        }
        Ok(WriteKeys { cached, fresh })
    }

    /// Runs a write that seals or opens values, with the org's keys; if they changed
    /// meanwhile (another node stored the org's first keys, or a rotation), reads them
    /// again and runs it again.
    async fn write_with_keys<T, F>(&self, org: &str, body: F) -> Result<T, SecretError>
    where
        F: Fn(&mut dyn Tx, &WriteKeys) -> Result<T, SecretError> + Send + Sync + 'static,
        T: Send + 'static,
    {
        self.with_keys(org, body, false).await
    }

    /// [`Secrets::write_with_keys`] rehearsed: every check runs, nothing is kept (a dry
    /// run), through the store's rehearse-and-roll-back call.
    async fn rehearse_with_keys<T, F>(&self, org: &str, body: F) -> Result<T, SecretError>
    where
        F: Fn(&mut dyn Tx, &WriteKeys) -> Result<T, SecretError> + Send + Sync + 'static,
        T: Send + 'static,
    {
        self.with_keys(org, body, true).await
    }

    async fn with_keys<T, F>(&self, org: &str, body: F, rehearse: bool) -> Result<T, SecretError>
    where
        F: Fn(&mut dyn Tx, &WriteKeys) -> Result<T, SecretError> + Send + Sync + 'static,
        T: Send + 'static,
    {
        let body = Arc::new(body);
        let mut tries = 0;
        loop {
            let keys = self.write_keys(org).await?;
            let (run, used) = (body.clone(), keys.clone());
            let store = self.authority.store();
            let result = if rehearse {
                // Keys a rehearsal created are rolled back with it: not cached.
                match store.rehearse(move |tx| run(tx, &used)).await {
                    Ok(value) => return Ok(value),
                    Err(e) => Err(e),
                }
            } else {
                store.write(move |tx| run(tx, &used)).await
            };
            match result {
                Ok(done) => {
                    if keys.fresh {
                        self.keys.write().insert(org.to_owned(), keys.cached);
                    }
                    return Ok(self.announced(done));
                }
                Err(SecretError::KeysChanged) if tries < KEY_RETRIES => {
                    tries += 1;
                    self.keys.write().remove(org);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Secrets {
    /// The value of a commit, once this node's listeners (long polls) know of its
    /// changes.
    fn announced<T>(&self, done: crate::store::Committed<T>) -> T {
        for entry in &done.changes {
            self.authority.announce(&entry.change);
        }
        done.value
    }
}

/// `DB_URL, API_KEY` (names are checked `[A-Za-z0-9_]` before they get here).
fn names_label(names: &[&str]) -> String {
    names.join(", ")
}

/// The org exists.
fn require_org(r: &mut dyn Read, org: &str) -> Result<(), SecretError> {
    r.org(org)?.map(|_| ()).ok_or(SecretError::OrgNotFound)
}

/// The org exists, and so does the app of an app scope (apps exist explicitly).
fn require_scope(r: &mut dyn Read, org: &str, app: Option<&str>) -> Result<(), SecretError> {
    require_org(r, org)?;
    match app {
        Some(app) => match crate::authority::missing_app(r, org, app)? {
            Some(missing) => Err(SecretError::NoSuchApp(missing)),
            None => Ok(()),
        },
        None => Ok(()),
    }
}

/// The secrets version of `scope`, and of each of `apps` (the org's counter plus each
/// app's).
fn versions(r: &mut dyn Read, org: &str, apps: Vec<String>) -> Result<SecretsVersions, StoreError> {
    let base = r.secrets_counter(org, None)?;
    let apps = apps
        .into_iter()
        .map(|app| {
            let own = r.secrets_counter(org, Some(&app))?;
            Ok((app, base + own))
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(SecretsVersions { org: base, apps })
}

/// The name of the token that wrote a version, from the ledger (for history).
fn token_name(r: &mut dyn Read, id: Option<TokenId>) -> Result<Option<String>, StoreError> {
    Ok(match id {
        Some(id) => r.token(&id)?.map(|t| t.name),
        None => None,
    })
}

#[cfg(test)]
mod tests;
