//! Which secret an app sees: its own of that name if it has one set (expired or not: an
//! expired app secret does not fall back), else the org's.

use std::collections::BTreeMap;

use super::limits::env_size;
use crate::model::SecretHead;

/// A secret as an app sees it.
#[derive(Debug, Clone, Copy)]
pub struct Resolved<'a> {
    /// The secret (its `app` says which scope it comes from).
    pub head: &'a SecretHead,
    /// Past its expiry: not revealed, and it hides the org's secret of the same name.
    pub expired: bool,
}

/// The set secrets an app with secrets `app` sees, by name (`app` empty: what an app
/// without secrets of its own sees).
pub fn resolve<'a>(org: &'a [SecretHead], app: &'a [SecretHead], now: u64) -> Vec<Resolved<'a>> {
    let mut out: BTreeMap<&str, &SecretHead> = BTreeMap::new();
    for h in org.iter().chain(app).filter(|h| !h.unset) {
        out.insert(&h.name, h);
    }
    out.into_values()
        .map(|head| Resolved {
            expired: head.expires.is_some_and(|e| e <= now),
            head,
        })
        .collect()
}

/// The environment size of what resolves and is not expired (what `run` would inject).
pub fn env_total(resolved: &[Resolved<'_>]) -> u64 {
    resolved
        .iter()
        .filter(|r| !r.expired)
        .map(|r| env_size(&r.head.name, r.head.size))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(app: Option<&str>, name: &str, unset: bool, expires: Option<u64>) -> SecretHead {
        let mut h = SecretHead::new("acme", app, name);
        h.version = 1;
        h.unset = unset;
        h.expires = expires;
        h.size = 10;
        h
    }

    #[test]
    fn an_app_secret_overrides_and_an_unset_one_lets_the_org_show_through() {
        let org = [
            head(None, "A", false, None),
            head(None, "B", false, None),
            head(None, "C", false, None),
        ];
        let app = [
            head(Some("web"), "A", false, None),
            head(Some("web"), "B", true, None),
            head(Some("web"), "C", false, Some(5)),
            head(Some("web"), "D", false, None),
        ];
        let r = resolve(&org, &app, 10);
        let shown: Vec<(&str, Option<&str>, bool)> = r
            .iter()
            .map(|r| (r.head.name.as_str(), r.head.app.as_deref(), r.expired))
            .collect();
        assert_eq!(
            shown,
            [
                ("A", Some("web"), false),
                ("B", None, false),
                ("C", Some("web"), true),
                ("D", Some("web"), false)
            ]
        );
        // A, B and D count (`NAME=` + 10 bytes + the end); the expired C does not.
        assert_eq!(env_total(&r), 3 * 13);
        assert_eq!(env_total(&resolve(&org, &[], 10)), 3 * 13);
    }
}
