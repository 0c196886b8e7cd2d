//! A stand-in CI provider: signing keys (ES256 made here, RS256 from
//! `tests/fixtures/oidc/`), its JWKS, ID tokens shaped as GitHub Actions and GitLab CI
//! issue them, and a loopback HTTP server that serves the JWKS (counting fetches) and
//! GitHub Actions' ID-token request endpoint.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

pub const GITHUB: &str = "https://token.actions.githubusercontent.com";
pub const GITLAB: &str = "https://gitlab.com";
pub const EC_KID: &str = "ec-test-1";
pub const RSA_KID: &str = "rsa-test-1";

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The provider's keys.
pub struct Provider {
    ec: EcdsaKeyPair,
    rsa: RsaKeyPair,
    rsa_jwk: Value,
}

impl Provider {
    pub fn new() -> Provider {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/oidc");
        let der = std::fs::read(root.join("rsa.pk8.der")).unwrap();
        let rsa = RsaKeyPair::from_pkcs8(&der).unwrap();
        let rsa_jwk: Value =
            serde_json::from_str(&std::fs::read_to_string(root.join("rsa.jwk.json")).unwrap())
                .unwrap();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap();
        let ec =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        Provider { ec, rsa, rsa_jwk }
    }

    /// The public keys as a JWKS document.
    pub fn jwks(&self) -> String {
        let point = self.ec.public_key().as_ref();
        let ec = json!({
            "kty": "EC", "crv": "P-256", "kid": EC_KID, "alg": "ES256", "use": "sig",
            "x": b64(&point[1..33]), "y": b64(&point[33..65]),
        });
        json!({ "keys": [self.rsa_jwk, ec] }).to_string()
    }

    /// The RSA public key's modulus bytes (for forging HS256 with it).
    pub fn rsa_public_text(&self) -> String {
        self.rsa_jwk["n"].as_str().unwrap().to_owned()
    }

    /// A JWT over `claims` with `header` (alg, kid, … as given), signed as its alg says:
    /// RS256 with the RSA key, ES256 with the EC key, HS256 with `hmac_key`, `none`
    /// unsigned.
    pub fn sign_with(&self, header: Value, claims: &Value, hmac_key: &[u8]) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let rng = SystemRandom::new();
        let sig = match header["alg"].as_str().unwrap_or("none") {
            "RS256" => {
                let mut sig = vec![0; self.rsa.public_modulus_len()];
                self.rsa
                    .sign(&RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut sig)
                    .unwrap();
                sig
            }
            "ES256" => self
                .ec
                .sign(&rng, input.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec(),
            "HS256" => {
                let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, hmac_key);
                aws_lc_rs::hmac::sign(&key, input.as_bytes())
                    .as_ref()
                    .to_vec()
            }
            _ => Vec::new(),
        };
        format!("{input}.{}", b64(&sig))
    }

    /// RS256 with the RSA key, as GitHub signs.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with(
            json!({"alg": "RS256", "kid": RSA_KID, "typ": "JWT"}),
            claims,
            b"",
        )
    }

    /// ES256 with the EC key.
    pub fn sign_es256(&self, claims: &Value) -> String {
        self.sign_with(
            json!({"alg": "ES256", "kid": EC_KID, "typ": "JWT"}),
            claims,
            b"",
        )
    }
}

/// Claims shaped as a GitHub Actions job's ID token (push to main of acme/web).
pub fn github_claims(audience: &str, now: u64, jti: &str) -> Value {
    json!({
        "iss": GITHUB,
        "aud": audience,
        "sub": "repo:acme/web:ref:refs/heads/main",
        "jti": jti,
        "iat": now - 5,
        "nbf": now - 5,
        "exp": now + 300,
        "repository": "acme/web",
        "repository_id": "892374561",
        "repository_owner": "acme",
        "repository_owner_id": "74",
        "ref": "refs/heads/main",
        "ref_type": "branch",
        "sha": "4f1c2a9e0b7d",
        "run_id": "1234567890",
        "event_name": "push",
        "environment": "production",
        "workflow_ref": "acme/web/.github/workflows/deploy.yml@refs/heads/main",
        "job_workflow_ref": "acme/web/.github/workflows/deploy.yml@refs/heads/main",
    })
}

/// Claims shaped as a GitLab CI job's ID token (a pipeline on main of acme/web).
pub fn gitlab_claims(audience: &str, now: u64, jti: &str) -> Value {
    json!({
        "iss": GITLAB,
        "aud": audience,
        "sub": "project_path:acme/web:ref_type:branch:ref:main",
        "jti": jti,
        "iat": now - 5,
        "nbf": now - 5,
        "exp": now + 300,
        "namespace_id": "72",
        "namespace_path": "acme",
        "project_id": "20",
        "project_path": "acme/web",
        "pipeline_id": "1212",
        "ref": "main",
        "ref_type": "branch",
        "ref_protected": "true",
        "sha": "714a629c0b401fdce83e847fc9589983fc6f46bc",
        "environment": "production",
        "ci_config_ref_uri": "gitlab.com/acme/web//.gitlab-ci.yml@refs/heads/main",
    })
}

/// What the loopback server answers.
struct Served {
    jwks: String,
    jwks_fetches: AtomicU64,
    id_token: Mutex<Option<(String, String)>>,
    audiences: Mutex<Vec<String>>,
}

/// A loopback HTTP server: `GET /jwks` (counted) and `GET
/// /id-token?audience=…` with `Authorization: bearer <request token>` (GitHub Actions'
/// ID-token request), answering `{"value": <id token>}`.
pub struct StandIn {
    pub url: String,
    served: Arc<Served>,
}

impl StandIn {
    pub fn start(jwks: String) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let served = Arc::new(Served {
            jwks,
            jwks_fetches: AtomicU64::new(0),
            id_token: Mutex::new(None),
            audiences: Mutex::new(Vec::new()),
        });
        let s = served.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let mut auth = String::new();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                    if h.to_ascii_lowercase().starts_with("authorization:") {
                        auth = h.split_once(':').unwrap().1.trim().to_owned();
                    }
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                let (status, body) = if path == "/jwks" {
                    s.jwks_fetches.fetch_add(1, Ordering::SeqCst);
                    ("200 OK", s.jwks.clone())
                } else if let Some(query) = path.strip_prefix("/id-token?") {
                    let audience = query
                        .split('&')
                        .find_map(|p| p.strip_prefix("audience="))
                        .unwrap_or("")
                        .to_owned();
                    s.audiences.lock().unwrap().push(audience);
                    match &*s.id_token.lock().unwrap() {
                        Some((bearer, token))
                            if auth.eq_ignore_ascii_case(&format!("bearer {bearer}")) =>
                        {
                            ("200 OK", json!({ "value": token }).to_string())
                        }
                        _ => ("401 Unauthorized", "{}".to_owned()),
                    }
                } else {
                    ("404 Not Found", "{}".to_owned())
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        StandIn { url, served }
    }

    /// How many times `/jwks` was asked for.
    pub fn jwks_fetches(&self) -> u64 {
        self.served.jwks_fetches.load(Ordering::SeqCst)
    }

    /// What `/id-token` hands out, to a request bearing `request_token`.
    pub fn issue(&self, request_token: &str, id_token: &str) {
        *self.served.id_token.lock().unwrap() = Some((request_token.into(), id_token.into()));
    }

    /// The audiences `/id-token` was asked for.
    pub fn audiences(&self) -> Vec<String> {
        self.served.audiences.lock().unwrap().clone()
    }
}
