//! The Access model: one action on one object, as caveats see it.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::{Action, ParseError, Resource, caveat::is_valid_name, caveat::is_valid_secret_name};

/// What an access on secrets is about. Every secrets endpoint chooses one; an access
/// that chose none (`None`, which every access starts as) is denied by any `secret =`
/// caveat: fail closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretTarget<'a> {
    /// Not about one secret or a listing: a request about something else.
    None,
    /// One secret, by name.
    One(&'a str),
    /// A listing, which the caller filters name by name against the caveats.
    Listing,
}

/// One action on one object, at one time, from one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access<'a> {
    /// The org the object belongs to.
    pub org: &'a str,
    /// The app, or `None` for an org-level request.
    pub app: Option<&'a str>,
    /// The kind of object.
    pub resource: Resource,
    /// What is done to it.
    pub action: Action,
    /// Which secret (or a listing of them) the access is about.
    pub secret: SecretTarget<'a>,
    /// Unix seconds.
    pub now: u64,
    /// The client's address, if known.
    pub source_ip: Option<IpAddr>,
}

impl<'a> Access<'a> {
    /// `action` on the `resource` of `org` (org-level, about no secret), at `now`.
    pub fn new(org: &'a str, resource: Resource, action: Action, now: u64) -> Self {
        Access {
            org,
            app: None,
            resource,
            action,
            secret: SecretTarget::None,
            now,
            source_ip: None,
        }
    }

    /// The same, for `app`.
    pub fn app(mut self, app: Option<&'a str>) -> Self {
        self.app = app;
        self
    }

    /// The same, about the secret `name`.
    pub fn secret(mut self, name: &'a str) -> Self {
        self.secret = SecretTarget::One(name);
        self
    }

    /// The same, about a listing of secrets.
    pub fn listing(mut self) -> Self {
        self.secret = SecretTarget::Listing;
        self
    }

    /// The same, from `ip`.
    pub fn from(mut self, ip: Option<IpAddr>) -> Self {
        self.source_ip = ip;
        self
    }
}

/// An owned, serializable description of an access (without time and address).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawAccessSpec")]
pub struct AccessSpec {
    /// The org.
    pub org: String,
    /// The app, or `None` for an org-level request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// The kind of object.
    pub resource: Resource,
    /// What is done to it.
    pub action: Action,
    /// The secret's name, if the access is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Whether the access is a listing of secrets (which the caller filters by name).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub listing: bool,
}

impl AccessSpec {
    /// The access this describes, at `now` from `source_ip`.
    pub fn access(&self, now: u64, source_ip: Option<IpAddr>) -> Access<'_> {
        let secret = match (&self.secret, self.listing) {
            (Some(name), _) => SecretTarget::One(name),
            (None, true) => SecretTarget::Listing,
            (None, false) => SecretTarget::None,
        };
        Access {
            org: &self.org,
            app: self.app.as_deref(),
            resource: self.resource,
            action: self.action,
            secret,
            now,
            source_ip,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccessSpec {
    org: String,
    #[serde(default)]
    app: Option<String>,
    resource: Resource,
    action: Action,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    listing: bool,
}

impl TryFrom<RawAccessSpec> for AccessSpec {
    type Error = ParseError;
    fn try_from(raw: RawAccessSpec) -> Result<Self, ParseError> {
        if !is_valid_name(&raw.org) {
            return Err(ParseError::near("invalid org name", &raw.org));
        }
        if let Some(app) = raw.app.as_deref().filter(|a| !is_valid_name(a)) {
            return Err(ParseError::near("invalid app name", app));
        }
        if let Some(secret) = raw.secret.as_deref().filter(|s| !is_valid_secret_name(s)) {
            return Err(ParseError::near("invalid secret name", secret));
        }
        if raw.listing && raw.secret.is_some() {
            return Err(ParseError::new(
                "an access is about one secret or a listing, not both",
            ));
        }
        if (raw.listing || raw.secret.is_some()) && raw.resource != Resource::Secrets {
            return Err(ParseError::new(
                "only a secrets access names a secret or a listing",
            ));
        }
        let RawAccessSpec {
            org,
            app,
            resource,
            action,
            secret,
            listing,
        } = raw;
        Ok(Self {
            org,
            app,
            resource,
            action,
            secret,
            listing,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_and_validation() {
        let json = r#"{"org":"acme","app":"web","resource":"secrets","action":"reveal","secret":"DB_URL"}"#;
        let spec: AccessSpec = serde_json::from_str(json).unwrap();
        assert_eq!(serde_json::to_string(&spec).unwrap(), json);
        let access = spec.access(5, None);
        assert_eq!(
            (access.org, access.app, access.now),
            ("acme", Some("web"), 5)
        );

        let minimal: AccessSpec =
            serde_json::from_str(r#"{"org":"acme","resource":"orgs","action":"read"}"#).unwrap();
        assert_eq!((&minimal.app, &minimal.secret), (&None, &None));

        let listing: AccessSpec = serde_json::from_str(
            r#"{"org":"acme","resource":"secrets","action":"read","listing":true}"#,
        )
        .unwrap();
        assert_eq!(listing.access(0, None).secret, SecretTarget::Listing);
        assert_eq!(minimal.access(0, None).secret, SecretTarget::None);
        for bad in [
            r#"{"org":"acme","resource":"tokens","action":"read","secret":"A"}"#,
            r#"{"org":"acme","resource":"secrets","action":"read","secret":"A","listing":true}"#,
            r#"{"org":"Acme","resource":"orgs","action":"read"}"#,
            r#"{"org":"acme","app":"-web","resource":"apps","action":"read"}"#,
            r#"{"org":"acme","resource":"secrets","action":"read","secret":"a b"}"#,
            r#"{"org":"acme","resource":"orgs","action":"read","extra":1}"#,
            r#"{"org":"acme","resource":"orgs","action":"peek"}"#,
        ] {
            assert!(serde_json::from_str::<AccessSpec>(bad).is_err(), "{bad}");
        }
    }
}
