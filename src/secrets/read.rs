//! Reads: listings (filtered name by name against the token's caveats), one secret's
//! metadata, and its history. None of them opens a value.

use super::limits;
use super::resolve::resolve;
use super::{Scope, SecretError, Secrets, SecretsVersions, require_org, token_name, versions};
use crate::authority::Principal;
use crate::caveats::Action;
use crate::model::{SecretHead, TokenId};

/// One secret in a listing.
#[derive(Debug, Clone)]
pub struct Listed {
    /// The secret (`app` says which scope it comes from).
    pub head: SecretHead,
    /// Past its expiry: not revealed (and, for an app's own, the org's does not show
    /// through).
    pub expired: bool,
    /// The keyed digest of its value, for a token that may reveal it (to anyone else a
    /// digest is an oracle that confirms guesses): see [`Shown`].
    pub digest: Option<[u8; 32]>,
}

/// One secret's metadata as the token may see it: the keyed digest of the value only if
/// the token may reveal that value. A token that may write but not reveal could
/// otherwise write a guess and compare digests (docs/API.md).
#[derive(Debug, Clone)]
pub struct Shown {
    /// The secret (its `digest` field is not for the token: use `digest`).
    pub head: SecretHead,
    /// The keyed digest of the current value, if the token may reveal it.
    pub digest: Option<[u8; 32]>,
}

/// A listing.
#[derive(Debug, Clone)]
pub struct Listing {
    /// The secrets the token may see, by name.
    pub secrets: Vec<Listed>,
    /// The scope's secrets version (for an app: the org's counter plus its own).
    pub version: u64,
}

/// One version of a secret, as its history shows it.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    /// The version.
    pub version: u64,
    /// When it was written.
    pub created: u64,
    /// The token that wrote it.
    pub created_by: Option<TokenId>,
    /// That token's name, while the ledger keeps it.
    pub created_by_name: Option<String>,
    /// The version it rolled back to.
    pub rollback_of: Option<u64>,
    /// Its value was destroyed.
    pub destroyed: bool,
    /// It is the current value.
    pub current: bool,
    /// The keyed digest of its value: `None` once destroyed, and for a token that may
    /// not reveal it.
    pub digest: Option<[u8; 32]>,
}

impl Secrets {
    /// The secrets of `scope` the token may read, by name, never with values; for an
    /// app with `resolved`, what the app sees: its own over the org's. Needs `read` on
    /// a listing; each name is then kept only if the token may read that secret.
    pub async fn list(
        &self,
        who: &Principal,
        scope: Scope<'_>,
        resolved: bool,
    ) -> Result<Listing, SecretError> {
        crate::authority::check_scope(scope.org, scope.app).map_err(SecretError::InvalidScope)?;
        let access = self.access(who, scope, Action::Read);
        self.authority
            .require_about(who, &access.listing(), || {
                format!("list secrets of {scope}")
            })
            .map_err(SecretError::Denied)?;
        let (org, app) = (scope.org.to_owned(), scope.app.map(str::to_owned));
        let (org_heads, app_heads, v) = self
            .authority
            .store()
            .read(move |r| {
                super::require_scope(r, &org, app.as_deref())?;
                let apps = app.iter().cloned().collect();
                let v = versions(r, &org, apps)?;
                let org_heads = match (&app, resolved) {
                    (Some(_), false) => Vec::new(),
                    _ => r.secret_heads(&org, None)?,
                };
                let app_heads = match &app {
                    Some(app) => r.secret_heads(&org, Some(app))?,
                    None => Vec::new(),
                };
                Ok::<_, SecretError>((org_heads, app_heads, v))
            })
            .await?;
        let now = self.authority.now();
        let reveal = self.access(who, scope, Action::Reveal);
        let secrets = resolve(&org_heads, &app_heads, now)
            .into_iter()
            .filter(|r| self.authority.allows(who, &access.secret(&r.head.name)))
            .map(|r| Listed {
                head: r.head.clone(),
                expired: r.expired,
                digest: self.digest_for(who, &reveal, r.head),
            })
            .collect();
        Ok(Listing {
            secrets,
            version: scope_version(&v),
        })
    }

    /// One secret of `scope` (exactly that scope; set or unset), without its value.
    /// Needs `read` on the name.
    pub async fn get(
        &self,
        who: &Principal,
        scope: Scope<'_>,
        name: &str,
    ) -> Result<Shown, SecretError> {
        let head = self
            .read_one(who, scope, name, "read", |_, head| Ok(head))
            .await?;
        Ok(self.shown(who, scope, head))
    }

    /// `head` as `who` may see it.
    fn shown(&self, who: &Principal, scope: Scope<'_>, head: SecretHead) -> Shown {
        let reveal = self.access(who, scope, Action::Reveal);
        Shown {
            digest: self.digest_for(who, &reveal, &head),
            head,
        }
    }

    /// The digest of `head`'s value if `who` may `reveal` it (the access is the
    /// listing's reveal: for a resolved listing, an org secret is judged as the app sees
    /// it).
    fn digest_for(
        &self,
        who: &Principal,
        reveal: &crate::caveats::Access<'_>,
        head: &SecretHead,
    ) -> Option<[u8; 32]> {
        self.authority
            .allows(who, &reveal.secret(&head.name))
            .then_some(head.digest)
    }

    /// Reads one secret of `scope` the token may `read` (by name, checked before the
    /// store is asked) and hands it, with the read, to `then`.
    async fn read_one<T: Send + 'static>(
        &self,
        who: &Principal,
        scope: Scope<'_>,
        name: &str,
        verb: &str,
        then: impl FnOnce(&mut dyn crate::store::Read, SecretHead) -> Result<T, SecretError>
        + Send
        + 'static,
    ) -> Result<T, SecretError> {
        crate::authority::check_scope(scope.org, scope.app).map_err(SecretError::InvalidScope)?;
        limits::check_name(name)?;
        self.require_each(who, scope, Action::Read, &[name], verb)?;
        let (org, app, name) = (
            scope.org.to_owned(),
            scope.app.map(str::to_owned),
            name.to_owned(),
        );
        self.authority
            .store()
            .read(move |r| {
                super::require_scope(r, &org, app.as_deref())?;
                let head = r
                    .secret_head(&org, app.as_deref(), &name)?
                    .ok_or(SecretError::NotFound(name))?;
                then(r, head)
            })
            .await
    }

    /// Every version kept of a secret, oldest first, with the name of the token that
    /// wrote each. Needs `read` on the name.
    pub async fn history(
        &self,
        who: &Principal,
        scope: Scope<'_>,
        name: &str,
    ) -> Result<(Shown, Vec<HistoryEntry>), SecretError> {
        let (head, mut entries) = self
            .read_one(who, scope, name, "read the history of", |r, head| {
                let (org, app) = (head.org.clone(), head.app.clone());
                let name = head.name.clone();
                let mut entries = Vec::new();
                for v in r.secret_versions(&org, app.as_deref(), &name)? {
                    entries.push(HistoryEntry {
                        version: v.version,
                        created: v.created,
                        created_by: v.created_by,
                        created_by_name: token_name(r, v.created_by)?,
                        rollback_of: v.rollback_of,
                        destroyed: v.sealed.is_none(),
                        current: !head.unset && v.version == head.version,
                        digest: v.sealed.is_some().then_some(v.digest),
                    });
                }
                Ok((head, entries))
            })
            .await?;
        let shown = self.shown(who, scope, head);
        if shown.digest.is_none() {
            for e in &mut entries {
                e.digest = None;
            }
        }
        Ok((shown, entries))
    }
}

impl Secrets {
    /// Per scope of `org` (the org's own first, then each app by name), the set secrets
    /// whose names change how programs load code ([`super::loads_code`]), that `who`
    /// may read: what `run` and `export` withhold unless told `--allow NAME`. Scopes
    /// with none are left out.
    pub async fn loading_code(
        &self,
        who: &Principal,
        org: &str,
    ) -> Result<Vec<(Option<String>, Vec<String>)>, SecretError> {
        crate::authority::check_scope(org, None).map_err(SecretError::InvalidScope)?;
        let owned = org.to_owned();
        let scopes = self
            .authority
            .store()
            .read(move |r| {
                require_org(r, &owned)?;
                let mut out = vec![(None, r.secret_heads(&owned, None)?)];
                for app in r.secret_apps(&owned)? {
                    let heads = r.secret_heads(&owned, Some(&app))?;
                    out.push((Some(app), heads));
                }
                Ok::<_, SecretError>(out)
            })
            .await?;
        Ok(scopes
            .into_iter()
            .map(|(app, heads)| {
                let scope = Scope {
                    org,
                    app: app.as_deref(),
                };
                let read = self.access(who, scope, Action::Read);
                let names: Vec<String> = heads
                    .iter()
                    .filter(|h| !h.unset && super::loads_code(&h.name))
                    .filter(|h| self.authority.allows(who, &read.secret(&h.name)))
                    .map(|h| h.name.clone())
                    .collect();
                (app, names)
            })
            .filter(|(_, names)| !names.is_empty())
            .collect())
    }
}

/// The version of the scope a listing is of: the app's if it names one, else the org's.
fn scope_version(v: &SecretsVersions) -> u64 {
    v.apps.first().map_or(v.org, |(_, n)| *n)
}
