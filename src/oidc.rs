//! Checking a CI job's OIDC ID token (docs/THIRD_PARTIES.md): the issuer before any key
//! is looked up, the algorithm pinned by the key, the signature (jsonwebtoken), then the
//! audience, the times and the `jti` by our own rules and clock.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use macvault_caveats::Excerpt;

/// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY: u64 = 30;
/// Longest ID token read, in bytes.
pub const MAX_ID_TOKEN: usize = 16 * 1024;

/// Why an ID token is not accepted. Never holds the token itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    /// Not a JWT of three base64url parts with JSON header and claims.
    #[error("the ID token is malformed: {0}")]
    Malformed(&'static str),
    /// Its `iss` is not the third party's issuer.
    #[error("the ID token's issuer ({0}) is not this third party's")]
    Issuer(String),
    /// No `kid` in its header.
    #[error("the ID token's header names no key (kid)")]
    NoKid,
    /// The issuer's keys hold no key of that id (after a refresh).
    #[error("the issuer has no key {0}")]
    UnknownKid(String),
    /// The header's `alg` is not the one the key is for.
    #[error("the ID token is signed with {header}, but key {kid} is an {key} key")]
    Algorithm {
        /// The header's alg, escaped.
        header: String,
        /// The key's id, escaped.
        kid: String,
        /// The key's alg.
        key: &'static str,
    },
    /// The signature does not verify.
    #[error("the ID token's signature does not verify")]
    Signature,
    /// The audience is missing, not ours, or more than one.
    #[error("the ID token's audience {0}")]
    Audience(String),
    /// A claim the rules require is missing or of the wrong type.
    #[error("the ID token has no {0} claim (or not of the right type)")]
    Missing(&'static str),
    /// Past its `exp`.
    #[error("the ID token expired")]
    Expired,
    /// Before its `nbf`.
    #[error("the ID token is not valid yet (nbf)")]
    NotYetValid,
    /// Its `iat` is in the future.
    #[error("the ID token claims to be issued in the future (iat)")]
    IssuedInFuture,
}

/// A key of the issuer, with the one algorithm it may be used with.
#[derive(Clone)]
pub struct PinnedKey {
    /// RS256 for an RSA key, ES256 for a P-256 one.
    pub alg: Algorithm,
    /// The key.
    pub key: DecodingKey,
}

impl std::fmt::Debug for PinnedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PinnedKey({:?})", self.alg)
    }
}

/// The usable keys of a JWKS document, by `kid`: RSA keys for RS256 and P-256 keys for
/// ES256, each with a `kid`. A key whose own `alg` says otherwise, an HMAC or any other
/// key is left out, so no header can choose it.
pub fn pinned_keys(doc: &[u8]) -> Vec<(String, PinnedKey)> {
    let Ok(value) = serde_json::from_slice::<Value>(doc) else {
        return Vec::new();
    };
    let Some(keys) = value.get("keys").and_then(Value::as_array) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for k in keys {
        let Some(kid) = k.get("kid").and_then(Value::as_str) else {
            continue;
        };
        let (alg, name) = match (
            k.get("kty").and_then(Value::as_str),
            k.get("crv").and_then(Value::as_str),
        ) {
            (Some("RSA"), _) => (Algorithm::RS256, "RS256"),
            (Some("EC"), Some("P-256")) => (Algorithm::ES256, "ES256"),
            _ => continue,
        };
        if k.get("alg")
            .and_then(Value::as_str)
            .is_some_and(|a| a != name)
        {
            continue;
        }
        let Ok(jwk) = serde_json::from_value::<jsonwebtoken::jwk::Jwk>(k.clone()) else {
            continue;
        };
        if let Ok(key) = DecodingKey::from_jwk(&jwk) {
            out.push((kid.to_owned(), PinnedKey { alg, key }));
        }
    }
    out
}

/// What can be read from an ID token before its signature is checked: only used to
/// compare the issuer and find the key.
#[derive(Debug)]
pub struct Unverified {
    /// The header's `kid`.
    pub kid: Option<String>,
    /// The header's `alg`, as written.
    pub alg: String,
    /// The claimed `iss`.
    pub issuer: Option<String>,
}

fn part(b64: &str) -> Result<Map<String, Value>, OidcError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|_| OidcError::Malformed("a part is not base64url"))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(OidcError::Malformed("a part is not a JSON object")),
    }
}

/// Reads the header and the issuer, without trusting them.
pub fn peek(token: &str) -> Result<Unverified, OidcError> {
    if token.len() > MAX_ID_TOKEN {
        return Err(OidcError::Malformed("longer than 16 KiB"));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(OidcError::Malformed("not three dot-separated parts"));
    };
    let header = part(h)?;
    let claims = part(c)?;
    Ok(Unverified {
        kid: header.get("kid").and_then(Value::as_str).map(str::to_owned),
        alg: header
            .get("alg")
            .and_then(Value::as_str)
            .unwrap_or("(none)")
            .to_owned(),
        issuer: claims.get("iss").and_then(Value::as_str).map(str::to_owned),
    })
}

/// A verified ID token's claims.
#[derive(Debug, Clone)]
pub struct Claims {
    map: Map<String, Value>,
    /// `iss`.
    pub issuer: String,
    /// `jti`.
    pub jti: String,
    /// `exp`.
    pub exp: u64,
    /// `iat`.
    pub iat: u64,
}

impl Claims {
    /// A claim as canonical text: a string as it is, an integer in decimal, `true` or
    /// `false`; anything else (objects, arrays, null, fractions) is no claim at all.
    /// Compared exactly, case included.
    pub fn text(&self, name: &str) -> Option<String> {
        match self.map.get(name)? {
            Value::String(s) => Some(s.clone()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
            _ => None,
        }
    }

    /// A claim for an audit record: escaped and cut short; `-` when absent.
    pub fn shown(&self, name: &str) -> String {
        self.text(name).map_or_else(
            || "-".to_owned(),
            |v| {
                let cut: String = v.chars().take(120).collect();
                Excerpt(cut.as_bytes()).to_string()
            },
        )
    }
}

fn seconds(map: &Map<String, Value>, name: &'static str) -> Result<u64, OidcError> {
    map.get(name)
        .and_then(Value::as_u64)
        .ok_or(OidcError::Missing(name))
}

/// Checks `token` against a key already chosen by its `kid`, the third party's
/// `issuer` and `audience`, at `now`.
pub fn verify(
    token: &str,
    kid: &str,
    key: &PinnedKey,
    issuer: &str,
    audience: &str,
    now: u64,
) -> Result<Claims, OidcError> {
    let seen = peek(token)?;
    let key_alg = if key.alg == Algorithm::RS256 {
        "RS256"
    } else {
        "ES256"
    };
    if seen.alg != key_alg {
        return Err(OidcError::Algorithm {
            header: Excerpt(seen.alg.as_bytes()).to_string(),
            kid: Excerpt(kid.as_bytes()).to_string(),
            key: key_alg,
        });
    }
    // The signature only: times, issuer and audience are checked below, by our rules
    // and our clock.
    let mut v = Validation::new(key.alg);
    v.required_spec_claims.clear();
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &v)
        .map_err(|_| OidcError::Signature)?;
    let map = data.claims;
    let iss = map
        .get("iss")
        .and_then(Value::as_str)
        .ok_or(OidcError::Missing("iss"))?;
    if iss != issuer {
        return Err(OidcError::Issuer(Excerpt(iss.as_bytes()).to_string()));
    }
    match map.get("aud") {
        Some(Value::String(a)) if a == audience => {}
        Some(Value::Array(a)) if a.len() == 1 && a[0].as_str() == Some(audience) => {}
        Some(Value::Array(a)) if a.len() > 1 => {
            return Err(OidcError::Audience(format!(
                "names {} audiences: one is required",
                a.len()
            )));
        }
        Some(_) => {
            return Err(OidcError::Audience(format!(
                "is not {}",
                Excerpt(audience.as_bytes())
            )));
        }
        None => return Err(OidcError::Missing("aud")),
    }
    let exp = seconds(&map, "exp")?;
    let nbf = seconds(&map, "nbf")?;
    let iat = seconds(&map, "iat")?;
    if now >= exp.saturating_add(LEEWAY) {
        return Err(OidcError::Expired);
    }
    if now.saturating_add(LEEWAY) < nbf {
        return Err(OidcError::NotYetValid);
    }
    if now.saturating_add(LEEWAY) < iat {
        return Err(OidcError::IssuedInFuture);
    }
    let jti = match map.get("jti") {
        Some(Value::String(j)) if !j.is_empty() && j.len() <= 256 => j.clone(),
        _ => return Err(OidcError::Missing("jti")),
    };
    Ok(Claims {
        issuer: iss.to_owned(),
        jti,
        exp,
        iat,
        map,
    })
}
