//! Reveal: an app's resolved values, for a token allowed `reveal` on that app (runtime
//! and org tokens; never deploy or readonly, nor anything attenuated from them). Each
//! reveal is audited durably (group committed) before it is answered. `min_version`
//! waits, up to [`LONG_POLL_CAP`], for the app's secrets version to reach it, woken by
//! this node's own writes and by the change feed.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use zeroize::Zeroizing;

use super::resolve::resolve;
use super::{CachedKeys, OrgKeys, Place, Scope, SecretError, Secrets};
use crate::audit::action;
use crate::authority::Principal;
use crate::caveats::Action;
use crate::model::{AuditEvent, Change, Outcome, SecretHead, SecretKeys, SecretVersion};
use crate::store::Read;

/// What the log says (at debug level) each time a reveal starts waiting for `min_version`.
pub const PARKED: &str = "reveal waits for a newer secrets version";
/// The longest a reveal waits for `min_version`.
pub const LONG_POLL_CAP: Duration = Duration::from_secs(30);
/// A secret expiring this soon is named in the answer (`run` warns of it).
pub const EXPIRING_SOON: u64 = 7 * 86_400;

/// What a reveal answers.
pub struct Revealed {
    /// The scope as opened (shared with other reveals of the same state).
    opened: Arc<OpenedScope>,
    /// Which of its secrets are revealed, by index, by name.
    shown: Vec<usize>,
    /// Names past their expiry: not revealed (and an app's own hides the org's).
    pub expired: Vec<String>,
    /// Names revealed that expire within [`EXPIRING_SOON`], and when.
    pub expiring: Vec<(String, u64)>,
    /// The app's secrets version the values are of.
    pub version: u64,
    /// How many of the changes that led to it were blind writes (by tokens that could
    /// not reveal what they wrote): a watcher restarts when it moves, even if the values
    /// it would inject are the same.
    pub blind_writes: u64,
    /// Names that load code an org token allowed in the app's scope or the org's own.
    pub allowed_env: Vec<String>,
}

impl fmt::Debug for Revealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.values().map(|(n, _)| n).collect();
        f.debug_struct("Revealed")
            .field("names", &names)
            .field("expired", &self.expired)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl Revealed {
    /// Name and value of each revealed secret, by name.
    pub fn values(&self) -> impl Iterator<Item = (&str, &str)> {
        self.shown.iter().filter_map(|&i| {
            let s = &self.opened.secrets[i];
            s.value.as_ref().map(|v| (s.name.as_str(), v.as_str()))
        })
    }
}

/// One consistent read of what a reveal opens.
struct Snapshot {
    keys: Option<SecretKeys>,
    org: Vec<(SecretHead, Option<SecretVersion>)>,
    app: Vec<(SecretHead, Option<SecretVersion>)>,
    counters: Counters,
}

/// The org's change counter and the app's (0 for the org's own scope): together they
/// name one state of a scope's secrets, since every change a reveal would see moves one.
/// With them, the blind writes among those changes, the org's and the app's together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Counters {
    org: u64,
    app: u64,
    blind: u64,
}

impl Counters {
    /// The scope's secrets version.
    fn version(self) -> u64 {
        self.org + self.app
    }
}

/// One resolved secret of a scope, opened.
struct OpenedSecret {
    name: String,
    expires: Option<u64>,
    /// `None` when it had expired already when it was opened (it stays expired).
    value: Option<Zeroizing<String>>,
}

/// A scope's resolved secrets, opened at one state: what reveals answer from while the
/// state lasts, so a reveal decrypts only after a change.
pub(super) struct OpenedScope {
    counters: Counters,
    secrets: Vec<OpenedSecret>,
}

/// Most scopes kept opened; past it the cache starts again (values are zeroed as they go).
const MAX_OPENED: usize = 1024;

impl Secrets {
    /// The resolved values of an app (its own over the org's), or of the org's own
    /// secrets (what an app without secrets of its own sees), that the token may reveal.
    /// Needs `reveal` on a listing of the scope, and then on each name.
    pub async fn reveal(
        &self,
        who: &Principal,
        scope: Scope<'_>,
        min_version: Option<u64>,
    ) -> Result<Revealed, SecretError> {
        let Scope { org, app } = scope;
        crate::authority::check_scope(org, app).map_err(SecretError::InvalidScope)?;
        let access = self.access(who, scope, Action::Reveal);
        self.authority
            .require_about(who, &access.listing(), || {
                format!("reveal the secrets of {scope}")
            })
            .map_err(SecretError::Denied)?;
        let opened = self.opened_at_least(who, org, app, min_version).await?;
        // The wait may have outlived the token (revoked, expired, key retired): it must
        // still authenticate to be answered, and nothing is revealed or audited if not.
        self.authority.recheck(who).map_err(SecretError::Auth)?;
        let now = self.authority.now();
        let mut out = Revealed {
            opened: opened.clone(),
            shown: Vec::with_capacity(opened.secrets.len()),
            expired: Vec::new(),
            expiring: Vec::new(),
            version: opened.counters.version(),
            blind_writes: opened.counters.blind,
            allowed_env: self.allowed_for_app(scope).await?,
        };
        for (i, s) in opened.secrets.iter().enumerate() {
            if !self.authority.allows(who, &access.secret(&s.name)) {
                continue;
            }
            match (&s.value, s.expires) {
                (Some(_), expires) if expires.is_none_or(|at| now < at) => {
                    if let Some(at) = expires.filter(|at| at - now <= EXPIRING_SOON) {
                        out.expiring.push((s.name.clone(), at));
                    }
                    out.shown.push(i);
                }
                _ => out.expired.push(s.name.clone()),
            }
        }
        let names: Vec<&str> = out.values().map(|(n, _)| n).collect();
        let detail = format!(
            "revealed {} secret(s) of {scope} at version {}: {}",
            names.len(),
            out.version,
            names.join(", ")
        );
        let event = AuditEvent::new(
            org,
            action::SECRET_REVEAL,
            who.actor(),
            Outcome::Ok,
            detail,
            now,
        );
        self.authority.audit_durably(event).await?;
        self.revealed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(out)
    }

    /// The scope opened at its current state: from the cache when the counters still
    /// match, else read and decrypted anew.
    async fn opened_now(
        &self,
        org: &str,
        app: Option<&str>,
    ) -> Result<Arc<OpenedScope>, SecretError> {
        let key = (org.to_owned(), app.map(str::to_owned));
        let counters = self.counters(org, app).await?;
        if let Some(hit) = self
            .opened
            .read()
            .get(&key)
            .filter(|o| o.counters == counters)
        {
            return Ok(hit.clone());
        }
        let snap = self.snapshot(org, app).await?;
        let opened = Arc::new(self.open_snapshot(org, snap)?);
        let mut cache = self.opened.write();
        if cache.len() >= MAX_OPENED {
            cache.clear();
        }
        cache.insert(key, opened.clone());
        Ok(opened)
    }

    /// Decrypts the resolved secrets of a snapshot.
    fn open_snapshot(&self, org: &str, snap: Snapshot) -> Result<OpenedScope, SecretError> {
        let now = self.authority.now();
        let heads = |v: &[(SecretHead, Option<SecretVersion>)]| -> Vec<SecretHead> {
            v.iter().map(|(h, _)| h.clone()).collect()
        };
        let (org_heads, app_heads) = (heads(&snap.org), heads(&snap.app));
        let keys = match &snap.keys {
            Some(stored) => Some(self.opened(stored)?),
            None => None,
        };
        let mut secrets = Vec::new();
        for r in resolve(&org_heads, &app_heads, now) {
            let name = &r.head.name;
            let value = if r.expired {
                None
            } else {
                let from = if r.head.app.is_some() {
                    &snap.app
                } else {
                    &snap.org
                };
                let sealed = from
                    .iter()
                    .find(|(h, _)| h.name == *name)
                    .and_then(|(_, v)| v.as_ref())
                    .and_then(|v| v.sealed.as_ref());
                let (Some(sealed), Some(keys)) = (sealed, &keys) else {
                    // Set, but its value is gone: a store that lost a record.
                    return Err(SecretError::Corrupt(format!("{name} has no stored value")));
                };
                let place = Place {
                    org,
                    app: r.head.app.as_deref(),
                    name,
                    version: r.head.version,
                };
                let value = keys.keys.open(place, sealed)?;
                let text = String::from_utf8(value.to_vec())
                    .map_err(|_| SecretError::Corrupt(format!("{name} is not UTF-8")))?;
                Some(Zeroizing::new(text))
            };
            secrets.push(OpenedSecret {
                name: name.clone(),
                expires: r.head.expires,
                value,
            });
        }
        Ok(OpenedScope {
            counters: snap.counters,
            secrets,
        })
    }

    /// The org's keys, opened (cached while the stored form is unchanged).
    fn opened(&self, stored: &SecretKeys) -> Result<Arc<CachedKeys>, SecretError> {
        if let Some(c) = self
            .keys
            .read()
            .get(&stored.org)
            .filter(|c| c.stored == *stored)
        {
            return Ok(c.clone());
        }
        let keys = OrgKeys::unwrap(self.authority.master(), stored)?;
        let cached = Arc::new(CachedKeys {
            stored: stored.clone(),
            keys,
        });
        self.keys.write().insert(stored.org.clone(), cached.clone());
        Ok(cached)
    }

    /// The scope opened, once its secrets version is at least `min` (or the wait is
    /// over).
    async fn opened_at_least(
        &self,
        who: &Principal,
        org: &str,
        app: Option<&str>,
        min: Option<u64>,
    ) -> Result<Arc<OpenedScope>, SecretError> {
        // It waits no longer than the token lives: woken just past its expiry (the
        // clock counts whole seconds), the caller's recheck answers 401.
        let lives = who.expires().map_or(LONG_POLL_CAP, |at| {
            Duration::from_secs(at.saturating_sub(self.authority.now()) + 1)
        });
        let deadline = tokio::time::Instant::now() + LONG_POLL_CAP.min(lives);
        // Subscribed before the first read: a change between the read and the wait
        // still wakes it.
        let mut changes = self.authority.subscribe();
        let mut drained = std::pin::pin!(self.authority.drained());
        loop {
            let opened = self.opened_now(org, app).await?;
            if min.is_none_or(|m| opened.counters.version() >= m) {
                return Ok(opened);
            }
            // Wait for a change to this org's secrets (or lost track of changes: look).
            // The log line is what tests wait on to know the poll is parked.
            tracing::debug!(org, app, min, at = opened.counters.version(), "{PARKED}");
            loop {
                let woken = tokio::select! {
                    woken = tokio::time::timeout_at(deadline, changes.recv()) => woken,
                    () = &mut drained => return Err(SecretError::Draining),
                };
                match woken {
                    Err(_) => return Ok(opened),
                    Ok(Ok(Change::SecretsChanged { org: o, app: a }))
                        if o == org && (a.is_none() || a.as_deref() == app) =>
                    {
                        break;
                    }
                    Ok(Err(RecvError::Lagged(_))) => break,
                    Ok(Err(RecvError::Closed)) => return Ok(opened),
                    // Any other change (a revocation, a key retired): is the token
                    // still good? If not, the wait ends now, with 401.
                    Ok(Ok(_)) => self.authority.recheck(who).map_err(SecretError::Auth)?,
                }
            }
        }
    }

    /// The scope's counters now.
    async fn counters(&self, org: &str, app: Option<&str>) -> Result<Counters, SecretError> {
        let (org, app) = (org.to_owned(), app.map(str::to_owned));
        self.authority
            .store()
            .read(move |r| read_counters(r, &org, app.as_deref()))
            .await
    }

    async fn snapshot(&self, org: &str, app: Option<&str>) -> Result<Snapshot, SecretError> {
        let (org, app) = (org.to_owned(), app.map(str::to_owned));
        self.authority
            .store()
            .read(move |r| {
                let counters = read_counters(r, &org, app.as_deref())?;
                let app_current = match &app {
                    Some(app) => r.secret_current(&org, Some(app))?,
                    None => Vec::new(),
                };
                Ok::<_, SecretError>(Snapshot {
                    keys: r.secret_keys(&org)?,
                    org: r.secret_current(&org, None)?,
                    app: app_current,
                    counters,
                })
            })
            .await
    }
}

fn read_counters(r: &mut dyn Read, org: &str, app: Option<&str>) -> Result<Counters, SecretError> {
    super::require_scope(r, org, app)?;
    let own = |r: &mut dyn Read, read: fn(&mut dyn Read, &str, Option<&str>) -> _| match app {
        Some(app) => read(r, org, Some(app)),
        None => Ok(0),
    };
    Ok(Counters {
        org: r.secrets_counter(org, None)?,
        app: own(r, |r, o, a| r.secrets_counter(o, a))?,
        blind: r.secrets_blind_writes(org, None)? + own(r, |r, o, a| r.secrets_blind_writes(o, a))?,
    })
}
