//! The OAuth scope vocabulary (docs/OAUTH.md, "Scopes"): what an integration may ask
//! for, in words a person can judge, and the caveats each approved set maps to.
//!
//! A macaroon's caveats are a conjunction, so a set of scopes maps to one
//! `resource = …` and one `actions = …` caveat (and `app = …` for app scopes). A set is
//! granted only if that conjunction allows exactly what its scopes say: every resource
//! named gets the same actions. `secrets:write tokens:read` is refused (`invalid_scope`),
//! since its conjunction would let the client write tokens too.

use std::collections::BTreeSet;

use crate::caveats::{Action, ActionSet, Caveat, Resource, ResourceSet};

/// Most apps one request may name.
pub const MAX_APPS: usize = 16;

/// One scope.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// `secrets:read`: names, versions and history of secrets, never values.
    SecretsRead,
    /// `secrets:write`: set, change, roll back and delete secrets (and read their
    /// names).
    SecretsWrite,
    /// `secrets:reveal`: read secret values; only for a client registered with
    /// `--allow-reveal`.
    SecretsReveal,
    /// `tokens:read`: list the org's tokens.
    TokensRead,
    /// `audit:read`: read the audit log.
    AuditRead,
    /// `app:NAME`: only in this app (several may be named).
    App(String),
}

/// Why a scope request cannot be granted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// No scope was asked for.
    #[error("no scope asked for")]
    Empty,
    /// A word outside the vocabulary.
    #[error(
        "unknown scope \"{0}\" (secrets:read, secrets:write, secrets:reveal, tokens:read, \
         audit:read, app:NAME)"
    )]
    Unknown(String),
    /// Only app scopes: nothing says what may be done in them.
    #[error("app scopes need a scope saying what to do there (secrets:read, …)")]
    OnlyApps,
    /// Too many apps.
    #[error("at most {MAX_APPS} app scopes")]
    TooManyApps,
    /// Scopes whose conjunction would allow more than their union.
    #[error(
        "these scopes cannot be granted together: one token's caveats give every resource \
         named the same actions (ask for tokens:read and audit:read only with \
         secrets:read)"
    )]
    NotTogether,
    /// An approval that asks for more than the request did.
    #[error("an approval may only narrow what was asked for")]
    Widened,
    /// `secrets:reveal` by a client not registered with `--allow-reveal`.
    #[error("this client may not ask for secrets:reveal")]
    RevealNotAllowed,
}

impl Scope {
    /// Its text.
    pub fn text(&self) -> String {
        match self {
            Scope::SecretsRead => "secrets:read".into(),
            Scope::SecretsWrite => "secrets:write".into(),
            Scope::SecretsReveal => "secrets:reveal".into(),
            Scope::TokensRead => "tokens:read".into(),
            Scope::AuditRead => "audit:read".into(),
            Scope::App(name) => format!("app:{name}"),
        }
    }

    /// What it allows, in plain words for the consent page.
    pub fn words(&self) -> String {
        match self {
            Scope::SecretsRead => {
                "see the names, versions and history of secrets (not their values)".into()
            }
            Scope::SecretsWrite => {
                "set, change, roll back and delete secrets (without reading their values)".into()
            }
            Scope::SecretsReveal => "read the values of secrets".into(),
            Scope::TokensRead => "list the org's tokens".into(),
            Scope::AuditRead => "read the audit log".into(),
            Scope::App(name) => format!("only in the app \"{name}\""),
        }
    }

    /// The resource and actions it allows (`None` for an app scope).
    fn allows(&self) -> Option<(Resource, ActionSet)> {
        let set = |actions: &[Action]| actions.iter().copied().collect::<ActionSet>();
        Some(match self {
            Scope::SecretsRead => (Resource::Secrets, set(&[Action::Read])),
            Scope::SecretsWrite => (
                Resource::Secrets,
                set(&[Action::Read, Action::Write, Action::Create, Action::Delete]),
            ),
            Scope::SecretsReveal => (Resource::Secrets, set(&[Action::Read, Action::Reveal])),
            Scope::TokensRead => (Resource::Tokens, set(&[Action::Read])),
            Scope::AuditRead => (Resource::Audit, set(&[Action::Read])),
            Scope::App(_) => return None,
        })
    }

    /// This scope as a read-only one: `secrets:write` becomes `secrets:read`.
    fn read_only(self) -> Scope {
        match self {
            Scope::SecretsWrite => Scope::SecretsRead,
            other => other,
        }
    }
}

/// A set of scopes that can be granted together, sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scopes(BTreeSet<Scope>);

impl Scopes {
    /// Parses a space-separated `scope` parameter (RFC 6749 §3.3) and checks that it
    /// can be granted to a client that may (or may not) ask for `reveal`.
    pub fn parse(text: &str, allow_reveal: bool) -> Result<Scopes, ScopeError> {
        let mut set = BTreeSet::new();
        for word in text.split(' ').filter(|w| !w.is_empty()) {
            let scope = match word {
                "secrets:read" => Scope::SecretsRead,
                "secrets:write" => Scope::SecretsWrite,
                "secrets:reveal" => Scope::SecretsReveal,
                "tokens:read" => Scope::TokensRead,
                "audit:read" => Scope::AuditRead,
                _ => match word.strip_prefix("app:") {
                    Some(app) if crate::caveats::is_valid_name(app) => Scope::App(app.into()),
                    _ => {
                        let shown = crate::caveats::Excerpt(word.as_bytes()).to_string();
                        return Err(ScopeError::Unknown(shown));
                    }
                },
            };
            set.insert(scope);
        }
        if set.contains(&Scope::SecretsReveal) && !allow_reveal {
            return Err(ScopeError::RevealNotAllowed);
        }
        let scopes = Scopes(set);
        scopes.caveats()?;
        Ok(scopes)
    }

    /// The scopes.
    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }

    /// The canonical `scope` text: sorted, space-separated.
    pub fn text(&self) -> String {
        self.0.iter().map(Scope::text).collect::<Vec<_>>().join(" ")
    }

    /// What a person narrowed this request to: only the scopes in `kept` (texts), made
    /// read-only if asked. The result must still be grantable: in particular, keeping
    /// no app of an app-scoped request is refused rather than read as "every app".
    pub fn narrowed(&self, kept: &[String], read_only: bool) -> Result<Scopes, ScopeError> {
        let had_apps = self.0.iter().any(|s| matches!(s, Scope::App(_)));
        let set: BTreeSet<Scope> = self
            .0
            .iter()
            .filter(|s| kept.contains(&s.text()))
            .cloned()
            .map(|s| if read_only { s.read_only() } else { s })
            .collect();
        if had_apps && !set.iter().any(|s| matches!(s, Scope::App(_))) {
            return Err(ScopeError::OnlyApps);
        }
        let scopes = Scopes(set);
        scopes.caveats()?;
        Ok(scopes)
    }

    /// Whether these scopes ask for nothing `asked` did not: each was asked for, or is
    /// `secrets:read` where `secrets:write` was (what [`Scopes::narrowed`] can give).
    pub fn is_within(&self, asked: &Scopes) -> bool {
        self.0.iter().all(|s| {
            asked.0.contains(s)
                || (*s == Scope::SecretsRead && asked.0.contains(&Scope::SecretsWrite))
        })
    }

    /// The caveats these scopes map to: `resource = …`, `actions = …`, and `app = …`
    /// when apps are named.
    pub fn caveats(&self) -> Result<Vec<Caveat<'static>>, ScopeError> {
        let mut per_resource: Vec<(Resource, ActionSet)> = Vec::new();
        for (resource, actions) in self.0.iter().filter_map(Scope::allows) {
            match per_resource.iter_mut().find(|(r, _)| *r == resource) {
                Some((_, set)) => *set = set.union(actions),
                None => per_resource.push((resource, actions)),
            }
        }
        let apps: Vec<&str> = self
            .0
            .iter()
            .filter_map(|s| match s {
                Scope::App(name) => Some(name.as_str()),
                _ => None,
            })
            .collect();
        if per_resource.is_empty() {
            return Err(if apps.is_empty() {
                ScopeError::Empty
            } else {
                ScopeError::OnlyApps
            });
        }
        if apps.len() > MAX_APPS {
            return Err(ScopeError::TooManyApps);
        }
        let all = per_resource
            .iter()
            .fold(ActionSet::NONE, |acc, (_, set)| acc.union(*set));
        if per_resource.iter().any(|(_, set)| *set != all) {
            return Err(ScopeError::NotTogether);
        }
        let resources: ResourceSet = per_resource.iter().map(|(r, _)| *r).collect();
        let impossible = |_| ScopeError::Empty;
        let mut caveats = vec![
            Caveat::resources(resources).map_err(impossible)?,
            Caveat::actions(all).map_err(impossible)?,
        ];
        if !apps.is_empty() {
            // Apps come sorted (the set is ordered), as the canonical text wants.
            let list: Vec<String> = apps.iter().map(|a| format!("{a}:{all}")).collect();
            let text = format!("app = {}", list.join(","));
            caveats.push(Caveat::parse(&text).map_err(impossible)?.into_owned());
        }
        Ok(caveats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(s: &Scopes) -> Vec<String> {
        s.caveats()
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn scopes_map_to_exactly_their_caveats() {
        let s = Scopes::parse("secrets:read app:web app:api", false).unwrap();
        assert_eq!(
            texts(&s),
            ["resource = secrets", "actions = r", "app = api:r,web:r"]
        );
        assert_eq!(s.text(), "secrets:read app:api app:web");
        let s = Scopes::parse("secrets:read tokens:read audit:read", false).unwrap();
        assert_eq!(
            texts(&s),
            ["resource = audit,secrets,tokens", "actions = r"]
        );
        let s = Scopes::parse("secrets:write secrets:read", false).unwrap();
        assert_eq!(texts(&s), ["resource = secrets", "actions = rwcd"]);
        let s = Scopes::parse("secrets:reveal", true).unwrap();
        assert_eq!(texts(&s), ["resource = secrets", "actions = rv"]);
    }

    #[test]
    fn scopes_that_would_grant_more_together_are_refused() {
        for (text, err) in [
            ("secrets:write tokens:read", ScopeError::NotTogether),
            ("secrets:reveal audit:read", ScopeError::NotTogether),
            ("", ScopeError::Empty),
            ("app:web", ScopeError::OnlyApps),
            (
                "secrets:read app:Web",
                ScopeError::Unknown("app:Web".into()),
            ),
            (
                "secrets:read tokens:write",
                ScopeError::Unknown("tokens:write".into()),
            ),
            ("secrets:reveal", ScopeError::RevealNotAllowed),
        ] {
            let may_reveal = text != "secrets:reveal";
            assert_eq!(Scopes::parse(text, may_reveal), Err(err), "{text}");
        }
    }

    #[test]
    fn narrowing_keeps_a_subset_and_never_widens() {
        let asked = Scopes::parse("secrets:write app:web app:api", false).unwrap();
        let kept = ["secrets:write".to_owned(), "app:web".to_owned()];
        let n = asked.narrowed(&kept, true).unwrap();
        assert_eq!(
            texts(&n),
            ["resource = secrets", "actions = r", "app = web:r"]
        );
        // A scope that was not asked for is not added by naming it.
        let n = asked
            .narrowed(
                &["secrets:write".into(), "app:web".into(), "app:db".into()],
                false,
            )
            .unwrap();
        assert_eq!(n.text(), "secrets:write app:web");
        // Dropping every app would mean every app: refused.
        assert_eq!(
            asked.narrowed(&["secrets:write".into()], false),
            Err(ScopeError::OnlyApps)
        );
        assert_eq!(asked.narrowed(&[], false), Err(ScopeError::OnlyApps));
    }
}
