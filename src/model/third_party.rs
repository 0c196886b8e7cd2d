//! Third parties registered in an org (ARCHITECTURE §5), and the tokens that need them.

use crate::caveats::Condition;
use crate::token::{KeyId, PublicKey, TokenId};

/// What kind of discharger a third party is. Append-only: new kinds go at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThirdPartyKind {
    /// Discharges against a CI job's OIDC ID token.
    CiOidc,
}

impl ThirdPartyKind {
    /// The kind's name as `--kind` takes it.
    pub fn name(self) -> &'static str {
        match self {
            ThirdPartyKind::CiOidc => "ci-oidc",
        }
    }
}

impl std::str::FromStr for ThirdPartyKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ci-oidc" => Ok(ThirdPartyKind::CiOidc),
            _ => Err("the only third-party kind is ci-oidc".into()),
        }
    }
}

/// Where a third party's JSON Web Key Set comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Jwks {
    /// A document given at registration (read from a file by the CLI).
    Document(String),
    /// An https URL the server fetches.
    Url(String),
}

/// One key pair of a third party: the public half is published, the private half is
/// stored wrapped by the master key and never shown.
#[derive(Clone, PartialEq, Eq)]
pub struct ThirdPartyKey {
    /// Its id (in the clear part of the tickets sealed to it).
    pub id: KeyId,
    /// The public key.
    pub public: PublicKey,
    /// The private key, sealed under the master key (purpose "third-party key").
    pub wrapped: Vec<u8>,
    /// Unix seconds.
    pub created: u64,
}

impl std::fmt::Debug for ThirdPartyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThirdPartyKey")
            .field("id", &self.id)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

/// A third party of an org.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ThirdParty {
    /// The org.
    pub org: String,
    /// Its name in the org.
    pub name: String,
    /// Its kind.
    pub kind: ThirdPartyKind,
    /// Where discharges are obtained (and its public keys are published, by key id).
    /// Several third parties (of one org or of several) may share a location.
    pub location: String,
    /// The OIDC issuer whose ID tokens it accepts.
    pub issuer: String,
    /// The audience those ID tokens must name.
    pub audience: String,
    /// The issuer's signing keys.
    pub jwks: Jwks,
    /// Its key pairs, oldest first: the last seals new tickets; every other one still
    /// opens the tickets sealed to it until it is retired.
    pub keys: Vec<ThirdPartyKey>,
    /// Unix seconds.
    pub created: u64,
    /// The token that registered it.
    pub created_by: Option<TokenId>,
}

impl ThirdParty {
    /// A new CI OIDC third party with its first key pair.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        org: impl Into<String>,
        name: impl Into<String>,
        kind: ThirdPartyKind,
        location: impl Into<String>,
        issuer: impl Into<String>,
        audience: impl Into<String>,
        jwks: Jwks,
        key: ThirdPartyKey,
        created: u64,
        created_by: Option<TokenId>,
    ) -> Self {
        ThirdParty {
            org: org.into(),
            name: name.into(),
            kind,
            location: location.into(),
            issuer: issuer.into(),
            audience: audience.into(),
            jwks,
            keys: vec![key],
            created,
            created_by,
        }
    }

    /// The path of its location: where this server publishes its keys and answers
    /// for it (shared with any other third party at the same location).
    pub fn location_path(&self) -> &str {
        location_path(&self.location)
    }

    /// The key new tickets are sealed to.
    pub fn current_key(&self) -> Option<&ThirdPartyKey> {
        self.keys.last()
    }

    /// Its key pair `id`, current or older (not retired).
    pub fn key(&self, id: KeyId) -> Option<&ThirdPartyKey> {
        self.keys.iter().find(|k| k.id == id)
    }
}

/// A token that needs a third party's discharge: what the ledger keeps of its
/// third-party caveat (the conditions, which are public; never the ticket's key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The org.
    pub org: String,
    /// The third party's name.
    pub third_party: String,
    /// The ledger token that carries (or whose copies carry) the caveat.
    pub token: TokenId,
    /// The key its ticket is sealed to: retiring that key breaks the token.
    pub key: KeyId,
    /// The conditions of the caveat.
    pub conditions: Vec<Condition>,
    /// Unix seconds.
    pub added: u64,
}

/// The path of a location URL (`https://host/a/b` → `/a/b`; no path → empty): how
/// this server finds the third party a request is for, whatever host name it came by.
pub fn location_path(location: &str) -> &str {
    let rest = location.split_once("://").map_or(location, |(_, r)| r);
    rest.find('/').map_or("", |i| &rest[i..])
}
