//! OAuth clients (docs/OAUTH.md): integrations an org registers so that people can
//! grant them narrowed macaroons by consent instead of pasting tokens. A client is its
//! own kind of resource, managed by the org's org tokens (as minted) only. A
//! confidential client gets a secret, shown once and stored only as its SHA-256; a
//! public one has none and, like every client, must use PKCE.

use sha2::Digest as _;

use super::{Authority, Classify, ErrorClass, Principal, Secret};
use crate::audit::action;
use crate::caveats::Excerpt;
use crate::model::{AuditEvent, OAuthClient, Outcome};
use crate::store::StoreError;

/// Most redirect URIs a client registers.
pub const MAX_REDIRECT_URIS: usize = 10;
/// Longest redirect URI.
pub const MAX_REDIRECT_URI: usize = 512;
/// Longest client name.
pub const MAX_CLIENT_NAME: usize = 64;

/// Why an OAuth client could not be registered, read or removed.
#[derive(Debug, thiserror::Error)]
pub enum OAuthClientError {
    /// The presented token is not an org token as minted of the org.
    #[error("only an org token of the org (not an attenuated copy) manages its OAuth clients")]
    OrgTokenOnly,
    /// The name is empty, too long, or has control or invisible characters.
    #[error(
        "a client name is 1 to {MAX_CLIENT_NAME} printable characters, without control or \
         invisible characters"
    )]
    BadName,
    /// Too few or too many redirect URIs.
    #[error("a client has 1 to {MAX_REDIRECT_URIS} redirect URIs")]
    RedirectCount,
    /// A redirect URI that codes may not be sent to.
    #[error("redirect URI {shown}: {why}")]
    BadRedirect {
        /// The URI, escaped and cut.
        shown: String,
        /// What is wrong.
        why: &'static str,
    },
    /// No client of the org has this id.
    #[error("no such OAuth client")]
    NotFound,
    /// No randomness for an id or a secret.
    #[error("no randomness for the client's id or secret")]
    Random,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Classify for OAuthClientError {
    fn class(&self) -> ErrorClass {
        match self {
            OAuthClientError::OrgTokenOnly => ErrorClass::Denied,
            OAuthClientError::BadName
            | OAuthClientError::RedirectCount
            | OAuthClientError::BadRedirect { .. } => ErrorClass::BadRequest,
            OAuthClientError::NotFound => ErrorClass::NotFound,
            OAuthClientError::Random => ErrorClass::Internal,
            OAuthClientError::Store(e) => e.class(),
        }
    }
}

/// A client to register.
#[derive(Debug, Clone)]
pub struct NewOAuthClient {
    /// Its name, shown on the consent page.
    pub name: String,
    /// Where codes may be sent.
    pub redirect_uris: Vec<String>,
    /// A public client (a native app or CLI, which cannot keep a secret): no secret.
    pub public: bool,
    /// Whether it may ask for `reveal`.
    pub allow_reveal: bool,
}

/// A registered client, and its secret (confidential clients; shown once).
#[derive(Debug)]
pub struct Registered {
    /// The client.
    pub client: OAuthClient,
    /// Its secret, if it is confidential.
    pub secret: Option<Secret>,
}

/// Whether codes may be sent to `uri`: https (any host), or http to a loopback address
/// (`127.0.0.1` or `[::1]`, as RFC 8252 allows native apps); no fragment, no spaces.
pub fn check_redirect_uri(uri: &str) -> Result<(), &'static str> {
    if uri.len() > MAX_REDIRECT_URI {
        return Err("too long");
    }
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("spaces and control characters are not allowed");
    }
    if uri.contains('#') {
        return Err("a redirect URI has no fragment");
    }
    let (scheme, rest) = uri.split_once("://").ok_or("not an absolute URI")?;
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return Err("no host (or a user name in it)");
    }
    match scheme {
        "https" => Ok(()),
        "http" if loopback_host(authority).is_some() => Ok(()),
        "http" => Err("http only to 127.0.0.1 or [::1] (a native app's loopback); else https"),
        _ => Err("https, or http to a loopback address"),
    }
}

/// The host of a loopback `authority` (`127.0.0.1:8080`, `[::1]`), if it is one.
fn loopback_host(authority: &str) -> Option<&str> {
    let host = match authority.strip_prefix('[') {
        Some(v6) => &authority[..v6.find(']')? + 2],
        None => authority.split(':').next()?,
    };
    let port = &authority[host.len()..];
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    (port_ok && (host == "127.0.0.1" || host == "[::1]")).then_some(host)
}

/// Whether a redirect URI presented in a request is one `client` registered: the same
/// text, or for a loopback http one the same but for the port (RFC 8252 §7.3).
pub fn redirect_matches(client: &OAuthClient, presented: &str) -> bool {
    let loopback = without_loopback_port(presented);
    client.redirect_uris.iter().any(|registered| {
        registered == presented
            || loopback.is_some() && without_loopback_port(registered) == loopback
    })
}

/// A loopback http URI without its port, or `None` if it is not one.
fn without_loopback_port(uri: &str) -> Option<String> {
    let rest = uri.strip_prefix("http://")?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let host = loopback_host(&rest[..end])?;
    Some(format!("http://{host}{}", &rest[end..]))
}

/// `len` random bytes.
fn random<const N: usize>() -> Result<[u8; N], OAuthClientError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|_| OAuthClientError::Random)?;
    Ok(b)
}

impl Authority {
    /// Only an org token of `org` as minted manages its clients.
    async fn require_org_token(&self, who: &Principal, org: &str) -> Result<(), OAuthClientError> {
        if who.org() == org && self.is_org_token_as_minted(who).await? {
            Ok(())
        } else {
            Err(OAuthClientError::OrgTokenOnly)
        }
    }

    /// Registers a client in `org`: a new id, and for a confidential client a secret
    /// (shown once; stored as its SHA-256).
    pub async fn add_oauth_client(
        &self,
        who: &Principal,
        org: &str,
        new: &NewOAuthClient,
    ) -> Result<Registered, OAuthClientError> {
        self.require_org_token(who, org).await?;
        let name = new.name.trim();
        let bad = |c: char| c.is_control() || crate::caveats::is_invisible(c);
        if name.is_empty() || name.chars().count() > MAX_CLIENT_NAME || name.chars().any(bad) {
            return Err(OAuthClientError::BadName);
        }
        if new.redirect_uris.is_empty() || new.redirect_uris.len() > MAX_REDIRECT_URIS {
            return Err(OAuthClientError::RedirectCount);
        }
        for uri in &new.redirect_uris {
            check_redirect_uri(uri).map_err(|why| OAuthClientError::BadRedirect {
                shown: Excerpt(uri.as_bytes()).to_string(),
                why,
            })?;
        }
        let id: [u8; 16] = random()?;
        let id = format!(
            "mvc_{}",
            id.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let secret = if new.public {
            None
        } else {
            use base64::Engine as _;
            let raw: [u8; 32] = random()?;
            Some(format!(
                "mvcs_{}",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
            ))
        };
        let now = self.clock.now();
        let client = OAuthClient {
            org: org.to_owned(),
            id,
            name: name.to_owned(),
            redirect_uris: new.redirect_uris.clone(),
            secret_hash: secret
                .as_ref()
                .map(|s| sha2::Sha256::digest(s.as_bytes()).into()),
            allow_reveal: new.allow_reveal,
            created: now,
            created_by: Some(who.token_id()),
        };
        let event = AuditEvent::new(
            org,
            action::OAUTH_CLIENT_ADD,
            who.actor(),
            Outcome::Ok,
            format!(
                "OAuth client \"{}\" ({}), {}{}",
                Excerpt(client.name.as_bytes()),
                client.id,
                if new.public { "public" } else { "confidential" },
                if new.allow_reveal {
                    ", may ask to reveal"
                } else {
                    ""
                }
            ),
            now,
        );
        let stored = client.clone();
        self.store
            .write(move |tx| {
                tx.insert_oauth_client(&stored)?;
                tx.append_audit(&event)?;
                Ok::<_, StoreError>(())
            })
            .await?;
        Ok(Registered {
            client,
            secret: secret.map(Secret::new),
        })
    }

    /// The org's clients.
    pub async fn oauth_clients(
        &self,
        who: &Principal,
        org: &str,
    ) -> Result<Vec<OAuthClient>, OAuthClientError> {
        self.require_org_token(who, org).await?;
        let org = org.to_owned();
        Ok(self.store.read(move |r| r.oauth_clients(&org)).await?)
    }

    /// One client of the org.
    pub async fn oauth_client(
        &self,
        who: &Principal,
        org: &str,
        id: &str,
    ) -> Result<OAuthClient, OAuthClientError> {
        self.require_org_token(who, org).await?;
        let id = id.to_owned();
        let client = self.store.read(move |r| r.oauth_client(&id)).await?;
        client
            .filter(|c| c.org == org)
            .ok_or(OAuthClientError::NotFound)
    }

    /// Removes a client of the org: it can ask for nothing more.
    pub async fn remove_oauth_client(
        &self,
        who: &Principal,
        org: &str,
        id: &str,
    ) -> Result<OAuthClient, OAuthClientError> {
        let client = self.oauth_client(who, org, id).await?;
        let event = AuditEvent::new(
            org,
            action::OAUTH_CLIENT_REMOVE,
            who.actor(),
            Outcome::Ok,
            format!(
                "OAuth client \"{}\" ({}) removed",
                Excerpt(client.name.as_bytes()),
                client.id
            ),
            self.clock.now(),
        );
        let id = client.id.clone();
        self.store
            .write(move |tx| {
                tx.delete_oauth_client(&id)?;
                tx.append_audit(&event)?;
                Ok::<_, StoreError>(())
            })
            .await?;
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_are_https_or_loopback_http() {
        for ok in [
            "https://ci.example/callback",
            "https://ci.example:8443/cb?x=1",
            "http://127.0.0.1/cb",
            "http://127.0.0.1:53123/cb",
            "http://[::1]:8080/",
        ] {
            assert_eq!(check_redirect_uri(ok), Ok(()), "{ok}");
        }
        for bad in [
            "http://ci.example/cb",
            "http://localhost/cb",
            "http://127.0.0.1.evil.example/cb",
            "http://127.0.0.1:x/cb",
            "https://ci.example/cb#frag",
            "https://user@ci.example/cb",
            "https:///cb",
            "ci.example/cb",
            "javascript://x",
            "https://ci.example/ cb",
        ] {
            assert!(check_redirect_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_loopback_redirect_matches_on_any_port_others_exactly() {
        let client = OAuthClient {
            org: "acme".into(),
            id: "mvc_1".into(),
            name: "x".into(),
            redirect_uris: vec!["http://127.0.0.1/cb".into(), "https://ci.example/cb".into()],
            secret_hash: None,
            allow_reveal: false,
            created: 0,
            created_by: None,
        };
        assert!(redirect_matches(&client, "http://127.0.0.1:51234/cb"));
        assert!(redirect_matches(&client, "http://127.0.0.1/cb"));
        assert!(redirect_matches(&client, "https://ci.example/cb"));
        assert!(!redirect_matches(&client, "http://127.0.0.1:51234/other"));
        assert!(!redirect_matches(&client, "https://ci.example:444/cb"));
        assert!(!redirect_matches(&client, "https://ci.example/cb/"));
        assert!(!redirect_matches(&client, "http://[::1]/cb"));
    }
}
