//! The Access model: one action on one object, as caveats see it.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::{Action, ParseError, Resource, caveat::is_valid_name, caveat::is_valid_secret_name};

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
    /// The secret's name, when the access is about one secret.
    pub secret: Option<&'a str>,
    /// Unix seconds.
    pub now: u64,
    /// The client's address, if known.
    pub source_ip: Option<IpAddr>,
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
    /// The secret's name, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl AccessSpec {
    /// The access this describes, at `now` from `source_ip`.
    pub fn access(&self, now: u64, source_ip: Option<IpAddr>) -> Access<'_> {
        Access {
            org: &self.org,
            app: self.app.as_deref(),
            resource: self.resource,
            action: self.action,
            secret: self.secret.as_deref(),
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
        let RawAccessSpec {
            org,
            app,
            resource,
            action,
            secret,
        } = raw;
        Ok(Self {
            org,
            app,
            resource,
            action,
            secret,
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
        assert_eq!((minimal.app, minimal.secret), (None, None));

        for bad in [
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
