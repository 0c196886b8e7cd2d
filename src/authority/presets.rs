//! The minting presets (docs/DESIGN.md, "Presets"): the caveats each kind of token carries.

use std::time::Duration;

use super::{MintError, NameError, SYSTEM_ORG};
use crate::caveats::{Action, ActionSet, Caveat, Excerpt, Resource, ResourceSet};
use crate::model::TokenKind;

/// Lifetime of a minted token unless asked otherwise.
pub const DEFAULT_EXPIRY: Duration = Duration::from_secs(90 * 24 * 3600);
/// How long the operator token lives.
pub(super) const OPERATOR_EXPIRY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// The caveats of a token of `kind` in `org` (the app is required exactly for deploy
/// and runtime), ending with its expiry.
pub(super) fn caveats(
    kind: TokenKind,
    org: &str,
    app: Option<&str>,
    expires: u64,
) -> Result<Vec<Caveat<'static>>, MintError> {
    let invalid = |what: &'static str, name: &str| {
        MintError::InvalidName(NameError {
            what,
            shown: Excerpt(name.as_bytes()).to_string(),
        })
    };
    let org = if kind == TokenKind::Operator {
        SYSTEM_ORG
    } else {
        org
    };
    let mut out = vec![Caveat::org(org).map_err(|_| invalid("org", org))?];
    match (kind, app) {
        (TokenKind::Session | TokenKind::OAuth, _) => return Err(MintError::NotAPreset(kind)),
        (TokenKind::Deploy | TokenKind::Runtime, None) => return Err(MintError::AppRequired(kind)),
        (TokenKind::Org | TokenKind::Readonly | TokenKind::Operator, Some(_)) => {
            return Err(MintError::AppNotAllowed(kind));
        }
        (TokenKind::Org | TokenKind::Operator, None) => {}
        (TokenKind::Readonly, None) => out.push(Caveat::Actions(Action::Read.into())),
        (TokenKind::Deploy, Some(app)) => {
            let all_but_reveal =
                ActionSet::from_iter(Action::ALL.into_iter().filter(|a| *a != Action::Reveal));
            out.push(Caveat::apps([(app, all_but_reveal)]).map_err(|_| invalid("app", app))?);
        }
        (TokenKind::Runtime, Some(app)) => {
            let read_reveal = ActionSet::from_iter([Action::Read, Action::Reveal]);
            out.push(Caveat::apps([(app, read_reveal)]).map_err(|_| invalid("app", app))?);
            out.push(Caveat::Resources(ResourceSet::from(Resource::Secrets)));
        }
    }
    out.push(Caveat::expires(expires));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(k: TokenKind, app: Option<&str>) -> Vec<String> {
        caveats(k, "acme", app, 1_800_000_000)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn preset_caveats() {
        let exp = "expires < 2027-01-15T08:00:00Z";
        assert_eq!(texts(TokenKind::Org, None), ["org = acme", exp]);
        assert_eq!(
            texts(TokenKind::Deploy, Some("web")),
            ["org = acme", "app = web:rwcdx", exp]
        );
        assert_eq!(
            texts(TokenKind::Readonly, None),
            ["org = acme", "actions = r", exp]
        );
        assert_eq!(
            texts(TokenKind::Runtime, Some("web")),
            ["org = acme", "app = web:rv", "resource = secrets", exp]
        );
        assert_eq!(texts(TokenKind::Operator, None), ["org = system", exp]);
        assert!(caveats(TokenKind::Deploy, "acme", None, 1).is_err());
        assert!(caveats(TokenKind::Org, "acme", Some("web"), 1).is_err());
        assert!(caveats(TokenKind::Deploy, "acme", Some("Web"), 1).is_err());
        assert!("admin".parse::<TokenKind>().is_err());
        assert!("operator".parse::<TokenKind>().is_err(), "not mintable");
    }
}
