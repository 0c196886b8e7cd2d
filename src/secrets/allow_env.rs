//! Allow-lists of names that load code: the escape hatch for a CI that legitimately sets
//! one (`NODE_OPTIONS`, say). An org token as minted adds a name to a scope's list
//! (audited); from then on a token that may write that scope may write that name, and
//! `run` injects it (reveal answers the list) without `--allow`. See [`super::loads_code`].

use super::{Scope, SecretError, Secrets, limits, loads_code, require_org};
use crate::audit::action;
use crate::authority::{Principal, Refused};
use crate::caveats::Action;
use crate::model::{AuditEvent, Outcome};

impl Secrets {
    /// The names an org token allowed in exactly `scope`, in order.
    pub(super) async fn allowed_env(&self, scope: Scope<'_>) -> Result<Vec<String>, SecretError> {
        self.allowed_names(scope, false).await
    }

    /// What an app's `run` may inject without `--allow`: the names allowed in the app's
    /// scope and in the org's own (whose values the app sees too).
    pub(super) async fn allowed_for_app(
        &self,
        scope: Scope<'_>,
    ) -> Result<Vec<String>, SecretError> {
        self.allowed_names(scope, true).await
    }

    /// One read of the org's lists: `scope`'s names, and with `with_org_own` the org's
    /// own scope's too; sorted, each once.
    async fn allowed_names(
        &self,
        scope: Scope<'_>,
        with_org_own: bool,
    ) -> Result<Vec<String>, SecretError> {
        let org = scope.org.to_owned();
        let all = self
            .authority
            .store()
            .read(move |r| r.allowed_env(&org))
            .await?;
        let mut names: Vec<String> = all
            .into_iter()
            .filter(|(app, _)| app.as_deref() == scope.app || (with_org_own && app.is_none()))
            .map(|(_, name)| name)
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// The allow-list of `scope`, for a token that may read its listing.
    pub async fn list_allowed_env(
        &self,
        who: &Principal,
        scope: Scope<'_>,
    ) -> Result<Vec<String>, SecretError> {
        crate::authority::check_scope(scope.org, scope.app).map_err(SecretError::InvalidScope)?;
        let read = self.access(who, scope, Action::Read);
        self.authority
            .require_about(who, &read.listing(), || {
                format!("read the allowed names that load code of {scope}")
            })
            .map_err(SecretError::Denied)?;
        self.allowed_env(scope).await
    }

    /// Adds `names` to (or, with `allowed` false, removes them from) the allow-list of
    /// `scope`; the list after. Only an org token as minted may (an attenuated copy may
    /// not, so a narrowed org token handed on cannot open the door), and only for names
    /// that load code. Audited in the same transaction.
    pub async fn set_allowed_env(
        &self,
        who: &Principal,
        scope: Scope<'_>,
        names: &[String],
        allowed: bool,
    ) -> Result<Vec<String>, SecretError> {
        crate::authority::check_scope(scope.org, scope.app).map_err(SecretError::InvalidScope)?;
        if names.is_empty() || names.len() > limits::MAX_PER_WRITE {
            return Err(SecretError::BadWrite(
                "an allow-list change names 1 to 1000 names",
            ));
        }
        for name in names {
            limits::check_name(name)?;
            if !loads_code(name) {
                return Err(SecretError::NotCodeName(name.clone()));
            }
        }
        let control = self.access(who, scope, Action::Control);
        self.authority
            .require_about(who, &control.listing(), || {
                format!("change the allowed names that load code of {scope}")
            })
            .map_err(SecretError::Denied)?;
        if !self.authority.is_org_token_as_minted(who).await? {
            let err = SecretError::OrgTokenOnly;
            self.authority
                .queue_denial(who, 0, Refused::Rule("org token only"), || {
                    format!("{err} ({scope})")
                });
            return Err(err);
        }
        let (org, app) = (scope.org.to_owned(), scope.app.map(str::to_owned));
        let names = names.to_vec();
        let (actor, now) = (who.actor(), self.authority.now());
        let detail = format!(
            "{} deploy tokens to write {} in {scope}",
            if allowed {
                "allowed"
            } else {
                "no longer allowed"
            },
            names.join(", ")
        );
        self.authority
            .store()
            .write(move |tx| {
                require_org(tx, &org)?;
                for name in &names {
                    tx.set_allowed_env(&org, app.as_deref(), name, allowed)?;
                }
                let event = AuditEvent::new(
                    &org,
                    action::SECRET_ALLOW_ENV,
                    actor,
                    Outcome::Ok,
                    detail.clone(),
                    now,
                );
                tx.append_audit(&event)?;
                Ok::<_, SecretError>(())
            })
            .await?;
        self.allowed_env(scope).await
    }
}
