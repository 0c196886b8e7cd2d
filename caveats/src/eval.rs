//! Evaluating a token's predicates against an access.

use crate::{Access, Caveat, error::Excerpt};

/// Which caveat denied an access, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("caveat {index} ({caveat}) {reason}")]
pub struct Denial {
    /// The caveat's position, from 1.
    pub index: usize,
    /// Its canonical text, or its raw text escaped and truncated if it did not parse.
    pub caveat: String,
    /// Why it denied.
    pub reason: String,
}

/// Allows `access` only if every predicate parses and allows it; fails closed on anything
/// unparseable.
pub fn evaluate<'p>(
    predicates: impl IntoIterator<Item = &'p [u8]>,
    access: &Access<'_>,
) -> Result<(), Denial> {
    for (i, predicate) in predicates.into_iter().enumerate() {
        let index = i + 1;
        match Caveat::parse_bytes(predicate) {
            Ok(caveat) => caveat.check_at(index, access)?,
            Err(e) => {
                return Err(Denial {
                    index,
                    caveat: Excerpt(predicate).to_string(),
                    reason: format!("is not a caveat this verifier understands: {e}"),
                });
            }
        }
    }
    Ok(())
}

impl Caveat<'_> {
    /// [`Caveat::check`] for the caveat at `index` (from 1) of a list: a denial names it.
    pub fn check_at(&self, index: usize, access: &Access<'_>) -> Result<(), Denial> {
        self.check(access).map_err(|reason| Denial {
            index,
            caveat: self.to_string(),
            reason: reason.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Action, Resource};

    fn access() -> Access<'static> {
        Access {
            org: "acme",
            app: Some("web"),
            resource: Resource::Secrets,
            action: Action::Write,
            secret: crate::SecretTarget::None,
            now: 0,
            source_ip: None,
        }
    }

    #[test]
    fn denial_names_the_caveat() {
        let list: [&[u8]; 3] = [b"org = acme", b"actions = rw", b"app = web:r"];
        let denial = evaluate(list, &access()).unwrap_err();
        assert_eq!(denial.index, 3);
        assert_eq!(
            denial.to_string(),
            r#"caveat 3 (app = web:r) does not allow write on app "web""#
        );
        assert_eq!(evaluate(list[..2].iter().copied(), &access()), Ok(()));
    }

    #[test]
    fn unparseable_predicates_deny() {
        let list: [&[u8]; 2] = [b"org = acme", b"org = acme\n\xff"];
        let denial = evaluate(list, &access()).unwrap_err();
        assert_eq!(
            denial.to_string(),
            "caveat 2 (org = acme\\n\\xff) is not a caveat this verifier understands: \
             caveat is not UTF-8: \"org = acme\\n\\xff\""
        );
        let long = vec![b'z'; 10_000];
        let denial = evaluate([&long[..]], &access()).unwrap_err();
        assert!(denial.to_string().len() < 200, "{denial}");
    }
}
