//! Apps exist explicitly (docs/API.md): created by an org-level token, listed, shown;
//! app-scoped tokens and secrets name only apps the org has, so a typo is refused with
//! the names it could have meant instead of starting a new, empty scope.

use super::{Authority, Principal, check_name};
use crate::audit::action;
use crate::caveats::{Action, Denial, Excerpt, Resource};
use crate::model::{App, AuditEvent, Outcome, TokenRecord, TokenStatus};
use crate::store::{Read, StoreError};

/// Why an app operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A caveat denies it.
    #[error(transparent)]
    Denied(Denial),
    /// A name is not acceptable.
    #[error(transparent)]
    InvalidName(super::NameError),
    /// No such org.
    #[error("org not found")]
    OrgNotFound,
    /// The org has no app of that name.
    #[error("{0}")]
    NoSuchApp(NoSuchApp),
    /// The org has an app of that name.
    #[error("the org already has an app of that name")]
    Exists,
    /// Secrets or live tokens still name it.
    #[error(
        "{secrets} secret(s) and {tokens} live token(s) name this app{names}; remove them first, \
         or delete it with --force (which revokes those tokens and destroys those secrets)"
    )]
    InUse {
        /// Secrets set in its scope.
        secrets: usize,
        /// Live tokens naming it.
        tokens: usize,
        /// The first few token names, escaped.
        names: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An app the org does not have, with the ones it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoSuchApp {
    /// The name asked for, escaped.
    pub name: String,
    /// The org's apps.
    pub known: Vec<String>,
}

impl std::fmt::Display for NoSuchApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the org has no app \"{}\" ", self.name)?;
        if self.known.is_empty() {
            write!(f, "(it has none yet)")?;
        } else {
            write!(f, "(it has: {})", self.known.join(", "))?;
        }
        write!(
            f,
            "; an org token creates it with `macvault apps create {}`",
            self.name
        )
    }
}

impl super::Classify for AppError {
    fn class(&self) -> super::ErrorClass {
        use super::ErrorClass;
        match self {
            AppError::Denied(_) => ErrorClass::Denied,
            AppError::InvalidName(_) => ErrorClass::BadRequest,
            AppError::OrgNotFound | AppError::NoSuchApp(_) => ErrorClass::NotFound,
            AppError::Exists | AppError::InUse { .. } => ErrorClass::Conflict,
            AppError::Store(e) => e.class(),
        }
    }
    fn code(&self) -> &'static str {
        match self {
            AppError::NoSuchApp(_) => "no_such_app",
            AppError::InUse { .. } => "in_use",
            other => other.class().code(),
        }
    }
    fn denial(&self) -> Option<&Denial> {
        match self {
            AppError::Denied(d) => Some(d),
            _ => None,
        }
    }
}

/// An app with what names it.
#[derive(Debug, Clone)]
pub struct AppDetail {
    /// The app.
    pub app: App,
    /// Secrets set in its scope.
    pub secrets: usize,
    /// Live tokens naming it.
    pub tokens: Vec<TokenRecord>,
    /// Its secrets' version counter (what watchers follow).
    pub version: u64,
}

/// That `org` has no app `app`, with the apps it has.
fn no_such_app<R: Read + ?Sized>(r: &mut R, org: &str, app: &str) -> Result<NoSuchApp, StoreError> {
    Ok(NoSuchApp {
        name: Excerpt(app.as_bytes()).to_string(),
        known: r.apps(org)?.into_iter().map(|a| a.name).collect(),
    })
}

/// Inside a transaction: `None` if `org` has `app`, else which apps it has. A store
/// failure is an error, never a pass.
pub(crate) fn missing_app<R: Read + ?Sized>(
    r: &mut R,
    org: &str,
    app: &str,
) -> Result<Option<NoSuchApp>, StoreError> {
    match r.app(org, app)? {
        Some(_) => Ok(None),
        None => no_such_app(r, org, app).map(Some),
    }
}

/// What names `app`: set secrets in its scope, and live tokens.
pub(crate) fn naming<R: Read + ?Sized>(
    r: &mut R,
    org: &str,
    app: &str,
    now: u64,
) -> Result<(usize, Vec<TokenRecord>), StoreError> {
    let secrets = r
        .secret_heads(org, Some(app))?
        .iter()
        .filter(|h| !h.unset)
        .count();
    let tokens = r
        .ledger(org)?
        .into_iter()
        .map(|e| e.record)
        .filter(|t| {
            t.app.as_deref() == Some(app) && TokenStatus::of(t, now, false) == TokenStatus::Active
        })
        .collect();
    Ok((secrets, tokens))
}

impl Authority {
    fn app_access(
        &self,
        who: &Principal,
        org: &str,
        app: Option<&str>,
        action: Action,
    ) -> Result<(), AppError> {
        check_name("org", org).map_err(AppError::InvalidName)?;
        if let Some(app) = app {
            check_name("app", app).map_err(AppError::InvalidName)?;
        }
        let access = self.access(who, org, app, Resource::Apps, action);
        self.require(who, &access).map_err(AppError::Denied)
    }

    /// Whether `who` may create apps in `org` (for a write that creates its app).
    pub(crate) fn may_create_app(&self, who: &Principal, org: &str) -> Result<(), AppError> {
        self.app_access(who, org, None, Action::Create)
    }

    /// Creates app `name` in `org` (an org-level `apps/create`: a token limited to apps
    /// cannot).
    pub async fn create_app(
        &self,
        who: &Principal,
        org: &str,
        name: &str,
    ) -> Result<App, AppError> {
        self.app_access(who, org, None, Action::Create)?;
        check_name("app", name).map_err(AppError::InvalidName)?;
        let now = self.clock.now();
        let app = App {
            org: org.to_owned(),
            name: name.to_owned(),
            created: now,
            created_by: Some(who.token_id()),
        };
        let event = AuditEvent::new(
            org,
            action::APP_CREATE,
            who.actor(),
            Outcome::Ok,
            format!("app {name} created"),
            now,
        );
        let record = app.clone();
        self.store
            .write(move |tx| {
                if tx.org(&record.org)?.is_none() {
                    return Err(AppError::OrgNotFound);
                }
                tx.insert_app(&record).map_err(|e| match e {
                    StoreError::Conflict("app") => AppError::Exists,
                    other => other.into(),
                })?;
                tx.append_audit(&event)?;
                Ok(())
            })
            .await?;
        Ok(app)
    }

    /// An org's apps with what names each (org-level `apps/read`).
    pub async fn apps(&self, who: &Principal, org: &str) -> Result<Vec<AppDetail>, AppError> {
        self.app_access(who, org, None, Action::Read)?;
        let now = self.clock.now();
        let org = org.to_owned();
        Ok(self
            .store
            .read(move |r| {
                let mut out = Vec::new();
                for app in r.apps(&org)? {
                    let (secrets, tokens) = naming(r, &org, &app.name, now)?;
                    let version = r.secrets_counter(&org, Some(&app.name))?;
                    out.push(AppDetail {
                        app,
                        secrets,
                        tokens,
                        version,
                    });
                }
                Ok::<_, StoreError>(out)
            })
            .await?)
    }

    /// One app (`apps/read` on it).
    pub async fn app(&self, who: &Principal, org: &str, name: &str) -> Result<AppDetail, AppError> {
        self.app_access(who, org, Some(name), Action::Read)?;
        let now = self.clock.now();
        let (o, n) = (org.to_owned(), name.to_owned());
        let found = self
            .store
            .read(move |r| {
                let Some(app) = r.app(&o, &n)? else {
                    return Ok::<_, StoreError>(Err(no_such_app(r, &o, &n)?));
                };
                let (secrets, tokens) = naming(r, &o, &n, now)?;
                let version = r.secrets_counter(&o, Some(&n))?;
                Ok(Ok(AppDetail {
                    app,
                    secrets,
                    tokens,
                    version,
                }))
            })
            .await?;
        found.map_err(AppError::NoSuchApp)
    }
}

/// What deleting an app did (or, in a dry run, would do).
#[derive(Debug, Clone)]
pub struct DeletedApp {
    /// The app.
    pub app: App,
    /// The live tokens naming it, revoked.
    pub revoked: Vec<TokenRecord>,
    /// The secrets of its scope whose values were destroyed.
    pub destroyed: Vec<String>,
}

impl Authority {
    /// Deletes app `name` of `org` (an org-level `apps/delete`). Refused while secrets
    /// or live tokens name it, unless `force`: then those tokens are revoked and the
    /// values of its secrets destroyed, so re-creating the name later lets no old token
    /// or value back in. A `dry_run` answers what it would do and changes nothing.
    pub async fn delete_app(
        &self,
        who: &Principal,
        org: &str,
        name: &str,
        force: bool,
        dry_run: bool,
    ) -> Result<DeletedApp, AppError> {
        self.app_access(who, org, None, Action::Delete)?;
        check_name("app", name).map_err(AppError::InvalidName)?;
        let now = self.clock.now();
        let (o, n) = (org.to_owned(), name.to_owned());
        let actor = who.actor();
        let body = move |tx: &mut dyn crate::store::Tx| {
            let Some(app) = tx.app(&o, &n)? else {
                return Err(AppError::NoSuchApp(no_such_app(tx, &o, &n)?));
            };
            let (secrets, tokens) = naming(tx, &o, &n, now)?;
            if (secrets > 0 || !tokens.is_empty()) && !force {
                let names: Vec<String> = tokens
                    .iter()
                    .take(3)
                    .map(|t| format!("\"{}\"", Excerpt(t.name.as_bytes())))
                    .collect();
                return Err(AppError::InUse {
                    secrets,
                    tokens: tokens.len(),
                    names: if names.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", names.join(", "))
                    },
                });
            }
            for t in &tokens {
                super::revoke::revoke_one(tx, &t.id, super::RevokeOptions::default(), now, actor)
                    .map_err(|e| match e {
                    super::RevokeError::Store(s) => AppError::Store(s),
                    other => AppError::Store(StoreError::Internal(other.to_string())),
                })?;
            }
            let mut destroyed = Vec::new();
            for mut head in tx.secret_heads(&o, Some(&n))? {
                for mut v in tx.secret_versions(&o, Some(&n), &head.name)? {
                    if v.sealed.is_some() {
                        v.sealed = None;
                        v.digest = [0; 32];
                        tx.put_secret_version(&v)?;
                    }
                }
                if !head.unset || head.size != 0 {
                    head.unset = true;
                    head.size = 0;
                    head.digest = [0; 32];
                    head.updated = now;
                    tx.put_secret_head(&head)?;
                }
                destroyed.push(head.name.clone());
            }
            if !destroyed.is_empty() {
                // Watchers of the scope see a change.
                let next = tx.secrets_counter(&o, Some(&n))?.saturating_add(1);
                tx.set_secrets_counter(&o, Some(&n), next)?;
            }
            tx.delete_app(&o, &n)?;
            tx.append_audit(&AuditEvent::new(
                &o,
                action::APP_DELETE,
                actor,
                Outcome::Ok,
                format!(
                    "app {n} deleted{}",
                    if tokens.is_empty() && destroyed.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " (forced: {} token(s) revoked, the values of {} secret(s) destroyed)",
                            tokens.len(),
                            destroyed.len()
                        )
                    }
                ),
                now,
            ))?;
            Ok(DeletedApp {
                app,
                revoked: tokens,
                destroyed,
            })
        };
        if dry_run {
            return self.store.rehearse(body).await;
        }
        let done = self.store.write(body).await?;
        self.apply_committed(&done.changes).await;
        Ok(done.value)
    }
}
