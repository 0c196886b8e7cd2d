//! Implication between caveats: whether one caveat is at least as strict as another.
//! The authority uses it so that a token can only mint tokens it could itself act as.

use crate::{ActionSet, Caveat, IpNet, ResourceSet};

fn actions_within(a: ActionSet, b: ActionSet) -> bool {
    a.intersection(b) == a
}

fn resources_within(a: ResourceSet, b: ResourceSet) -> bool {
    a.iter().all(|r| b.contains(r))
}

/// Whether every secret name `inner` matches, `outer` matches too.
fn pattern_covers(outer: &str, inner: &str) -> bool {
    match (outer.strip_suffix('*'), inner.strip_suffix('*')) {
        (Some(o), Some(i)) => i.starts_with(o),
        (Some(o), None) => inner.starts_with(o),
        (None, Some(_)) => false,
        (None, None) => outer == inner,
    }
}

fn net_covers(outer: IpNet, inner: IpNet) -> bool {
    outer.prefix() <= inner.prefix()
        && outer.addr().is_ipv4() == inner.addr().is_ipv4()
        && outer.contains(inner.addr())
}

impl Caveat<'_> {
    /// Whether every access this caveat allows, `other` allows too. A sound test, not
    /// a complete one: `false` may also mean "cannot tell", which callers treat as no.
    pub fn implies(&self, other: &Caveat<'_>) -> bool {
        match (self, other) {
            (Caveat::Org(a), Caveat::Org(b)) => a.as_str() == b.as_str(),
            (Caveat::Apps(a), Caveat::Apps(b)) => a.iter().all(|(app, set)| {
                b.get(app)
                    .is_some_and(|allowed| actions_within(set, allowed))
            }),
            // An apps caveat denies org-level requests, so only its actions matter.
            (Caveat::Apps(a), Caveat::Actions(b)) => {
                a.iter().all(|(_, set)| actions_within(set, *b))
            }
            (Caveat::Actions(a), Caveat::Actions(b)) => actions_within(*a, *b),
            (Caveat::Validity(a), Caveat::Validity(b)) => {
                let starts_late_enough = b
                    .not_before()
                    .is_none_or(|bn| a.not_before().is_some_and(|an| an >= bn));
                let ends_early_enough = b
                    .not_after()
                    .is_none_or(|bn| a.not_after().is_some_and(|an| an <= bn));
                starts_late_enough && ends_early_enough
            }
            (Caveat::Secrets(a), Caveat::Secrets(b)) => {
                a.iter().all(|p| b.iter().any(|q| pattern_covers(q, p)))
            }
            (Caveat::Resources(a), Caveat::Resources(b)) => resources_within(*a, *b),
            (Caveat::SourceIp(a), Caveat::SourceIp(b)) => {
                a.iter().all(|n| b.iter().any(|m| net_covers(m, n)))
            }
            _ => false,
        }
    }
}

fn nets_overlap(a: IpNet, b: IpNet) -> bool {
    a.addr().is_ipv4() == b.addr().is_ipv4() && (a.contains(b.addr()) || b.contains(a.addr()))
}

fn windows_overlap(a: &crate::ValidityWindow, b: &crate::ValidityWindow) -> bool {
    let start = a.not_before().max(b.not_before()).unwrap_or(0);
    let end = match (a.not_after(), b.not_after()) {
        (Some(x), Some(y)) => x.min(y),
        (Some(x), None) | (None, Some(x)) => x,
        (None, None) => u64::MAX,
    };
    start < end
}

impl Caveat<'_> {
    /// Whether no access passes both this caveat and `other`: together they leave a
    /// token able to do nothing. Sound, not complete: `false` may mean "cannot tell".
    pub fn excludes(&self, other: &Caveat<'_>) -> bool {
        let disjoint_actions = |apps: &crate::AppActions<'_>, set: ActionSet| {
            apps.iter().all(|(_, s)| s.intersection(set).is_empty())
        };
        match (self, other) {
            (Caveat::Org(a), Caveat::Org(b)) => a.as_str() != b.as_str(),
            (Caveat::Apps(a), Caveat::Apps(b)) => a.iter().all(|(app, set)| {
                b.get(app)
                    .is_none_or(|other| other.intersection(set).is_empty())
            }),
            (Caveat::Apps(a), Caveat::Actions(b)) | (Caveat::Actions(b), Caveat::Apps(a)) => {
                disjoint_actions(a, *b)
            }
            (Caveat::Actions(a), Caveat::Actions(b)) => a.intersection(*b).is_empty(),
            (Caveat::Resources(a), Caveat::Resources(b)) => !a.iter().any(|r| b.contains(r)),
            (Caveat::Validity(a), Caveat::Validity(b)) => !windows_overlap(a, b),
            (Caveat::SourceIp(a), Caveat::SourceIp(b)) => {
                !a.iter().any(|n| b.iter().any(|m| nets_overlap(n, m)))
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn implies(a: &str, b: &str) -> bool {
        Caveat::parse(a)
            .unwrap()
            .implies(&Caveat::parse(b).unwrap())
    }

    #[test]
    fn implication_table() {
        let yes = [
            ("org = acme", "org = acme"),
            ("app = web:r", "app = api:r,web:rw"),
            ("app = web:rw", "actions = rw"),
            ("actions = r", "actions = rw"),
            (
                "expires < 2026-01-01T00:00:00Z",
                "expires < 2027-01-01T00:00:00Z",
            ),
            (
                "valid 2026-01-01T00:00:00Z .. 2026-02-01T00:00:00Z",
                "expires < 2026-02-01T00:00:00Z",
            ),
            ("secret = DB_URL", "secret = DB_*"),
            ("secret = DB_X*", "secret = DB_*"),
            ("resource = secrets", "resource = secrets,tokens"),
            ("ip = 10.1.0.0/16", "ip = 10.0.0.0/8"),
        ];
        for (a, b) in yes {
            assert!(implies(a, b), "{a} should imply {b}");
        }
        let no = [
            ("org = acme", "org = beta"),
            ("app = web:rw", "app = web:r"),
            ("app = api:r", "app = web:r"),
            ("actions = r", "app = web:r"),
            ("actions = rw", "actions = r"),
            (
                "expires < 2027-01-01T00:00:00Z",
                "expires < 2026-01-01T00:00:00Z",
            ),
            (
                "expires < 2026-01-01T00:00:00Z",
                "not-before >= 2025-01-01T00:00:00Z",
            ),
            ("secret = DB_*", "secret = DB_URL"),
            ("secret = *", "secret = DB_*"),
            ("ip = 10.0.0.0/8", "ip = 10.1.0.0/16"),
            // Same first address, narrower: a wider network is not inside a narrower one.
            ("ip = 10.0.0.0/8", "ip = 10.0.0.0/16"),
            // Longer prefix, elsewhere.
            ("ip = 192.168.0.0/16", "ip = 10.0.0.0/8"),
            ("ip = ::/0", "ip = 0.0.0.0/0"),
            ("org = acme", "actions = r"),
        ];
        for (a, b) in no {
            assert!(!implies(a, b), "{a} should not imply {b}");
        }
    }

    fn excludes(a: &str, b: &str) -> bool {
        Caveat::parse(a)
            .unwrap()
            .excludes(&Caveat::parse(b).unwrap())
    }

    #[test]
    fn exclusion_table() {
        let yes = [
            ("org = acme", "org = beta"),
            ("app = web:rw", "app = api:rw"),
            ("app = web:r", "app = web:w"),
            ("app = web:r", "actions = w"),
            ("actions = w", "app = web:r"),
            ("actions = r", "actions = w"),
            ("resource = secrets", "resource = tokens"),
            (
                "expires < 2026-01-01T00:00:00Z",
                "not-before >= 2026-01-01T00:00:00Z",
            ),
            ("ip = 10.0.0.0/8", "ip = 11.0.0.0/8"),
            ("ip = 10.0.0.0/8", "ip = ::/0"),
        ];
        for (a, b) in yes {
            assert!(excludes(a, b), "{a} should exclude {b}");
        }
        let no = [
            ("org = acme", "org = acme"),
            ("app = web:rw", "app = api:r,web:r"),
            ("app = web:rw", "actions = r"),
            ("actions = rw", "actions = w"),
            ("resource = secrets,tokens", "resource = tokens"),
            (
                "expires < 2026-01-02T00:00:00Z",
                "not-before >= 2026-01-01T00:00:00Z",
            ),
            ("ip = 10.0.0.0/8", "ip = 10.1.0.0/16"),
            ("ip = 10.1.0.0/16", "ip = 10.0.0.0/8"),
            ("secret = A", "secret = B"),
            ("org = acme", "actions = r"),
        ];
        for (a, b) in no {
            assert!(!excludes(a, b), "{a} should not exclude {b}");
        }
    }
}
