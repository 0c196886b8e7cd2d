//! Verification: the signature chain (with discharges, each used at most once, bound
//! to the permission token, nested at most `max_depth` deep), then the caveats.

use macvault_caveats::{Access, Caveat, Denial, Excerpt, ParseError};

use super::crypto::{self, KEY_LEN};
use super::ident::{IdentifierError, TokenId, TokenIdentifier};
use super::wire::DecodeError;
use super::{Bundle, LIMITS, Macaroon, RootKey};

/// Finds the root key a token names. Implementations must not touch the disk on
/// the hot path: keep keys in memory.
pub trait KeyResolver {
    /// The root key of `org` at `key_version`, if it exists and is not retired.
    fn root_key(&self, org: &str, key_version: u32) -> Option<RootKey>;
}

/// Why a signature chain does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError<E> {
    /// A signature (or a sealed caveat key) does not match.
    #[error("signature does not verify")]
    BadSignature,
    /// A third-party caveat has no discharge in the bundle.
    #[error("the third-party caveat of {location} has no discharge")]
    MissingDischarge {
        /// The caveat's location (escaped and cut): where the discharge comes from.
        location: String,
    },
    /// A discharge in the bundle answers no third-party caveat.
    #[error("a discharge answers no third-party caveat")]
    UnusedDischarge,
    /// Discharges nest deeper than allowed.
    #[error("third-party caveats nest deeper than {} levels", LIMITS.max_depth)]
    TooDeep,
    /// The predicate check refused a first-party caveat.
    #[error("caveat not satisfied")]
    Predicate(E),
}

/// Checks the HMAC chain of a bundle from `root_key`, calling `predicate` on each
/// first-party caveat of the token and of the discharges it uses. Signatures are
/// compared in constant time.
pub fn verify_chain<'b, E>(
    root_key: &[u8; KEY_LEN],
    bundle: &'b Bundle<'_>,
    mut predicate: impl FnMut(&'b [u8]) -> Result<(), E>,
) -> Result<(), ChainError<E>> {
    if bundle.discharges.len() > LIMITS.max_discharges.min(64) {
        return Err(ChainError::UnusedDischarge);
    }
    let mut walk = Walk {
        root_sig: &bundle.token.signature,
        discharges: &bundle.discharges,
        used: 0,
        predicate: &mut predicate,
    };
    walk.macaroon(&bundle.token, root_key, false, 0)?;
    if walk.used.count_ones() as usize != bundle.discharges.len() {
        return Err(ChainError::UnusedDischarge);
    }
    Ok(())
}

struct Walk<'b, 'r, F> {
    root_sig: &'r [u8; KEY_LEN],
    discharges: &'b [Macaroon<'b>],
    used: u64,
    predicate: &'r mut F,
}

impl<'b, F, E> Walk<'b, '_, F>
where
    F: FnMut(&'b [u8]) -> Result<(), E>,
{
    fn macaroon(
        &mut self,
        m: &'b Macaroon<'b>,
        key: &[u8; KEY_LEN],
        bound: bool,
        depth: usize,
    ) -> Result<(), ChainError<E>> {
        let mut sig = crypto::hmac(key, &m.identifier);
        for c in &m.caveats {
            match &c.vid {
                None => {
                    (self.predicate)(&c.id).map_err(ChainError::Predicate)?;
                    sig = crypto::hmac(&sig, &c.id);
                }
                Some(vid) => {
                    if depth >= LIMITS.max_depth {
                        return Err(ChainError::TooDeep);
                    }
                    let caveat_key = crypto::open_vid(&sig, vid).ok_or(ChainError::BadSignature)?;
                    let discharges = self.discharges;
                    let i = (0..discharges.len())
                        .find(|&i| self.used & (1 << i) == 0 && *discharges[i].identifier == *c.id)
                        .ok_or_else(|| ChainError::MissingDischarge {
                            location: Excerpt(c.location.as_deref().unwrap_or(b"(none)"))
                                .to_string(),
                        })?;
                    self.used |= 1 << i;
                    self.macaroon(&discharges[i], &caveat_key, true, depth + 1)?;
                    sig = crypto::hash2(&sig, vid, &c.id);
                }
            }
        }
        let expected = if bound {
            crypto::bind(self.root_sig, &sig)
        } else {
            sig
        };
        if crypto::sig_eq(&expected, &m.signature) {
            Ok(())
        } else {
            Err(ChainError::BadSignature)
        }
    }
}

/// The class of a verification failure: all a caller learns about an unauthenticated
/// token (HTTP 401 bodies carry only this).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// Not a well-formed macvault token.
    Malformed,
    /// Names an org or key version that does not exist or was retired.
    UnknownKey,
    /// The signature chain does not verify.
    BadSignature,
    /// A third-party caveat lacks its discharge.
    MissingDischarge,
    /// Outside its validity window.
    Expired,
    /// Revoked (decided by the authority, not by the core).
    Revoked,
    /// Minted under a root-key version that was retired (decided by the authority).
    KeyRetired,
}

impl FailureClass {
    /// A stable snake_case code.
    pub fn code(self) -> &'static str {
        match self {
            FailureClass::Malformed => "malformed",
            FailureClass::UnknownKey => "unknown_key",
            FailureClass::BadSignature => "bad_signature",
            FailureClass::MissingDischarge => "missing_discharge",
            FailureClass::Expired => "expired",
            FailureClass::Revoked => "revoked",
            FailureClass::KeyRetired => "key_retired",
        }
    }
}

/// Why a token does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The text or bytes are not a token.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The identifier is not ours.
    #[error(transparent)]
    Identifier(#[from] IdentifierError),
    /// No such root key.
    #[error("unknown or retired root key")]
    UnknownKey,
    /// The chain does not verify.
    #[error("{0}")]
    Chain(ChainError<()>),
    /// A first-party caveat is not one this verifier understands: fail closed.
    #[error("caveat {index} is not a caveat this verifier understands: {error}")]
    UnknownCaveat {
        /// 1-based position among the effective caveats.
        index: usize,
        /// What is wrong with it.
        error: ParseError,
    },
    /// Outside the validity window.
    #[error("token is expired or not yet valid")]
    Expired,
    /// A discharge without an expiry of its own: it would answer its caveat for ever,
    /// so it is refused (docs/THIRD_PARTIES.md).
    #[error("discharge {index} has no expiry of its own")]
    DischargeWithoutExpiry {
        /// 1-based, in bundle order.
        index: usize,
    },
}

impl VerifyError {
    /// What a caller outside may learn.
    pub fn class(&self) -> FailureClass {
        match self {
            VerifyError::Decode(_)
            | VerifyError::Identifier(_)
            | VerifyError::UnknownCaveat { .. }
            | VerifyError::DischargeWithoutExpiry { .. } => FailureClass::Malformed,
            VerifyError::UnknownKey => FailureClass::UnknownKey,
            VerifyError::Chain(ChainError::MissingDischarge { .. }) => {
                FailureClass::MissingDischarge
            }
            VerifyError::Chain(ChainError::UnusedDischarge) => FailureClass::Malformed,
            VerifyError::Chain(_) => FailureClass::BadSignature,
            VerifyError::Expired => FailureClass::Expired,
        }
    }
}

/// A token whose chain verified, whose caveats all parsed and whose validity window
/// holds. Only [`verify`] makes one.
#[derive(Debug)]
pub struct Verified<'b> {
    id: TokenIdentifier,
    caveats: Vec<Caveat<'b>>,
    expires: Option<u64>,
    third_party: usize,
    /// How many of `caveats` are the token's own (the rest are its discharges').
    own: usize,
    /// The identifiers (tickets) of the token's own third-party caveats (empty, and not
    /// allocated, for a token without any).
    tickets: Vec<Vec<u8>>,
}

impl<'b> Verified<'b> {
    /// The token's handle (the same for every attenuation of it).
    pub fn token_id(&self) -> TokenId {
        self.id.token_id
    }

    /// The org whose key signed it.
    pub fn org(&self) -> &str {
        &self.id.org
    }

    /// The root-key version that signed it.
    pub fn key_version(&self) -> u32 {
        self.id.key_version
    }

    /// The earliest `not_after` of all its caveats, unix seconds.
    pub fn expires(&self) -> Option<u64> {
        self.expires
    }

    /// How many third-party caveats the token and its discharges carry (each one was
    /// satisfied by a discharge in the bundle).
    pub fn third_party_caveats(&self) -> usize {
        self.third_party
    }

    /// Every first-party caveat of the token and of the discharges it used, in order.
    pub fn caveats(&self) -> &[Caveat<'b>] {
        &self.caveats
    }

    /// The token's own first-party caveats, in order.
    pub fn own_caveats(&self) -> &[Caveat<'b>] {
        &self.caveats[..self.own]
    }

    /// The first-party caveats of the discharges, in bundle order.
    pub fn discharge_caveats(&self) -> &[Caveat<'b>] {
        &self.caveats[self.own..]
    }

    /// The identifiers of the token's own third-party caveats.
    pub fn tickets(&self) -> &[Vec<u8>] {
        &self.tickets
    }

    /// Detaches the verified token from the bundle it was verified from.
    pub fn into_owned(self) -> Verified<'static> {
        Verified {
            id: self.id,
            caveats: self.caveats.into_iter().map(Caveat::into_owned).collect(),
            expires: self.expires,
            third_party: self.third_party,
            own: self.own,
            tickets: self.tickets,
        }
    }

    /// Allowed only if the access is in the token's org and every caveat allows it.
    pub fn check(&self, access: &Access<'_>) -> Result<(), Denial> {
        if access.org != self.id.org {
            return Err(Denial {
                index: 0,
                caveat: format!("the token's org ({})", self.id.org),
                reason: format!(
                    "this token is for org \"{}\", not \"{}\"",
                    self.id.org,
                    Excerpt(access.org.as_bytes())
                ),
            });
        }
        for (i, c) in self.caveats.iter().enumerate() {
            c.check_at(i + 1, access)?;
        }
        Ok(())
    }
}

/// Verifies a parsed bundle at time `now` (unix seconds) with keys from `keys`.
pub fn verify<'b>(
    bundle: &'b Bundle<'_>,
    keys: &(impl KeyResolver + ?Sized),
    now: u64,
) -> Result<Verified<'b>, VerifyError> {
    let id = TokenIdentifier::decode(bundle.token.identifier())?;
    let key = keys
        .root_key(&id.org, id.key_version)
        .ok_or(VerifyError::UnknownKey)?;
    // The chain first: a forged token is reported as a bad signature and nothing else.
    verify_chain(key.expose_bytes(), bundle, |_| Ok::<(), ()>(())).map_err(VerifyError::Chain)?;
    // Then the caveats, numbered as `inspect` numbers them: the token's first-party
    // caveats in order, then each discharge's (every discharge was used).
    let predicates = std::iter::once(&bundle.token)
        .chain(&bundle.discharges)
        .flat_map(|m| m.caveats())
        .filter(|c| !c.is_third_party());
    let mut caveats = Vec::with_capacity(bundle.token.caveats.len());
    let mut per_macaroon = std::iter::once(&bundle.token)
        .chain(&bundle.discharges)
        .map(|m| m.caveats().iter().filter(|c| !c.is_third_party()).count());
    let own = per_macaroon.next().unwrap_or(0);
    for (i, c) in predicates.enumerate() {
        match Caveat::parse_bytes(&c.id) {
            Ok(c) => caveats.push(c),
            Err(error) => {
                return Err(VerifyError::UnknownCaveat {
                    index: i + 1,
                    error,
                });
            }
        }
    }
    // Each discharge bounds its own life: its caveats follow the token's, in order.
    let mut start = own;
    for (d, n) in per_macaroon.enumerate() {
        if !caveats[start..start + n]
            .iter()
            .any(|c| c.not_after().is_some())
        {
            return Err(VerifyError::DischargeWithoutExpiry { index: d + 1 });
        }
        start += n;
    }
    let mut expires: Option<u64> = None;
    for c in &caveats {
        if let Caveat::Validity(w) = c
            && !w.contains(now)
        {
            return Err(VerifyError::Expired);
        }
        if let Some(t) = c.not_after() {
            expires = Some(expires.map_or(t, |e| e.min(t)));
        }
    }
    let third_party = std::iter::once(&bundle.token)
        .chain(&bundle.discharges)
        .flat_map(|m| m.caveats())
        .filter(|c| c.is_third_party())
        .count();
    let tickets = if third_party == 0 {
        Vec::new()
    } else {
        bundle
            .token
            .caveats()
            .iter()
            .filter(|c| c.is_third_party())
            .map(|c| c.id.to_vec())
            .collect()
    };
    Ok(Verified {
        id,
        caveats,
        expires,
        third_party,
        own,
        tickets,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{Bundle, Macaroon, TokenId, TokenIdentifier, inspect};
    use super::*;
    use macvault_caveats::{Action, Resource};

    struct One([u8; 32]);
    impl KeyResolver for One {
        fn root_key(&self, _: &str, _: u32) -> Option<RootKey> {
            Some(RootKey::from_bytes(self.0))
        }
    }

    /// A denial names a caveat by the number `inspect` gives it: the token's first, then
    /// the discharges', even when the third-party caveat sits between the token's.
    #[test]
    fn denial_numbers_match_inspect() {
        let id = TokenIdentifier {
            org: "acme".into(),
            key_version: 1,
            token_id: TokenId([1; 16]),
        };
        let mut t = Macaroon::mint(&[3; 32], id.encode().unwrap().as_bytes(), None);
        t.add_first_party(b"org = acme");
        t.add_third_party_with_nonce(b"ci", &[2; 32], b"ticket", &[0; 24]);
        t.add_first_party(b"resource = secrets");
        let mut d = Macaroon::mint(&[2; 32], b"ticket", None);
        d.add_first_party(b"actions = r");
        d.add_first_party(b"expires < 2030-01-01T00:00:00Z");
        t.bind(&mut d);
        let bundle = Bundle {
            token: t,
            discharges: vec![d],
        };
        let seen = inspect(&bundle.to_text()).unwrap();
        let numbered: Vec<&str> = seen
            .caveats
            .iter()
            .chain(seen.discharges.iter().flat_map(|d| &d.caveats))
            .map(|c| c.text.as_str())
            .collect();
        assert_eq!(
            numbered,
            [
                "org = acme",
                "resource = secrets",
                "actions = r",
                "expires < 2030-01-01T00:00:00Z"
            ]
        );
        let v = verify(&bundle, &One([3; 32]), 0).unwrap();
        let access = |resource, action| Access {
            org: "acme",
            app: None,
            resource,
            action,
            secret: macvault_caveats::SecretTarget::None,
            now: 0,
            source_ip: None,
        };
        let d = v
            .check(&access(Resource::Tokens, Action::Read))
            .unwrap_err();
        assert_eq!((d.index, numbered[d.index - 1]), (2, "resource = secrets"));
        let d = v
            .check(&access(Resource::Secrets, Action::Write))
            .unwrap_err();
        assert_eq!((d.index, numbered[d.index - 1]), (3, "actions = r"));
    }

    /// A discharge must bound its own life: one without an expiry caveat is refused,
    /// even when the token it answers expires (a later copy of the token without that
    /// expiry could reuse it for ever).
    #[test]
    fn a_discharge_without_its_own_expiry_is_refused() {
        let id = TokenIdentifier {
            org: "acme".into(),
            key_version: 1,
            token_id: TokenId([1; 16]),
        };
        let bundle_with = |discharge_caveats: &[&[u8]]| {
            let mut t = Macaroon::mint(&[3; 32], id.encode().unwrap().as_bytes(), None);
            t.add_first_party(b"expires < 2030-01-01T00:00:00Z");
            t.add_third_party_with_nonce(b"ci", &[2; 32], b"ticket", &[0; 24]);
            let mut d = Macaroon::mint(&[2; 32], b"ticket", None);
            for c in discharge_caveats {
                d.add_first_party(c);
            }
            t.bind(&mut d);
            Bundle {
                token: t,
                discharges: vec![d],
            }
        };
        let bare = bundle_with(&[b"actions = r"]);
        let e = verify(&bare, &One([3; 32]), 0).unwrap_err();
        assert!(
            matches!(e, VerifyError::DischargeWithoutExpiry { index: 1 }),
            "{e}"
        );
        assert_eq!(e.class(), FailureClass::Malformed);
        let bounded = bundle_with(&[b"actions = r", b"expires < 2029-01-01T00:00:00Z"]);
        let v = verify(&bounded, &One([3; 32]), 0).unwrap();
        assert_eq!(v.third_party_caveats(), 1);
    }
}
