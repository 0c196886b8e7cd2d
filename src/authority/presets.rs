//! The minting presets (ARCHITECTURE §2.3) and their caveats.

use std::str::FromStr;
use std::time::Duration;

use super::AuthorityError;
use crate::caveats::{Action, ActionSet, Caveat, Resource, ResourceSet};
use crate::store::TokenKind;

/// Lifetime of a minted token unless asked otherwise.
pub const DEFAULT_EXPIRY: Duration = Duration::from_secs(90 * 24 * 3600);

/// A kind of token the authority mints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// Manage one org: tokens, keys, apps, secrets (including reveal).
    Org,
    /// CI/CD for one app: every action on it but `reveal`.
    Deploy,
    /// Look, never change, never reveal.
    Readonly,
    /// What a running app uses to read its secrets.
    Runtime,
}

impl FromStr for Preset {
    type Err = AuthorityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "org" => Ok(Preset::Org),
            "deploy" => Ok(Preset::Deploy),
            "readonly" => Ok(Preset::Readonly),
            "runtime" => Ok(Preset::Runtime),
            _ => Err(AuthorityError::BadRequest(format!(
                "unknown token kind {:?}: use org, deploy, readonly or runtime",
                s.chars().take(32).collect::<String>()
            ))),
        }
    }
}

impl Preset {
    /// Its name.
    pub fn name(self) -> &'static str {
        self.kind().name()
    }

    /// Its ledger kind.
    pub fn kind(self) -> TokenKind {
        match self {
            Preset::Org => TokenKind::Org,
            Preset::Deploy => TokenKind::Deploy,
            Preset::Readonly => TokenKind::Readonly,
            Preset::Runtime => TokenKind::Runtime,
        }
    }

    /// The caveats of a token of this kind (the app is required exactly for deploy and runtime).
    pub fn caveats(
        self,
        org: &str,
        app: Option<&str>,
        expires: u64,
    ) -> Result<Vec<Caveat<'static>>, AuthorityError> {
        let bad = |e: crate::caveats::ParseError| AuthorityError::BadRequest(e.to_string());
        let name = self.name();
        let scoped = match (self, app) {
            (Preset::Deploy | Preset::Runtime, None) => {
                return Err(AuthorityError::BadRequest(format!(
                    "a {name} token needs an app"
                )));
            }
            (Preset::Org | Preset::Readonly, Some(_)) => {
                return Err(AuthorityError::BadRequest(format!(
                    "a {name} token is for the whole org; attenuate it to narrow it to an app"
                )));
            }
            (Preset::Org, None) => vec![],
            (Preset::Readonly, None) => vec![Caveat::actions(ActionSet::from(Action::Read))],
            (Preset::Deploy, Some(app)) => {
                let all_but_reveal =
                    ActionSet::from_iter(Action::ALL.into_iter().filter(|a| *a != Action::Reveal));
                vec![Caveat::apps([(app, all_but_reveal)])]
            }
            (Preset::Runtime, Some(app)) => {
                let read_reveal = ActionSet::from_iter([Action::Read, Action::Reveal]);
                vec![
                    Caveat::apps([(app, read_reveal)]),
                    Caveat::resources(ResourceSet::from(Resource::Secrets)),
                ]
            }
        };
        let mut caveats = vec![Caveat::org(org).map_err(bad)?];
        for c in scoped {
            caveats.push(c.map_err(bad)?);
        }
        caveats.push(Caveat::expires(expires));
        Ok(caveats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(p: Preset, app: Option<&str>) -> Vec<String> {
        p.caveats("acme", app, 1_800_000_000)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn preset_caveats() {
        let exp = "expires < 2027-01-15T08:00:00Z";
        assert_eq!(texts(Preset::Org, None), ["org = acme", exp]);
        assert_eq!(
            texts(Preset::Deploy, Some("web")),
            ["org = acme", "app = web:rwcdx", exp]
        );
        assert_eq!(
            texts(Preset::Readonly, None),
            ["org = acme", "actions = r", exp]
        );
        assert_eq!(
            texts(Preset::Runtime, Some("web")),
            ["org = acme", "app = web:rv", "resource = secrets", exp]
        );
        assert!(Preset::Deploy.caveats("acme", None, 1).is_err());
        assert!(Preset::Org.caveats("acme", Some("web"), 1).is_err());
        assert!("admin".parse::<Preset>().is_err());
    }
}
