//! The issuers' signing keys: a JWKS document given at registration, or one fetched from
//! an https URL the operator allowed (`serve --jwks-allow`), cached and refreshed
//! (docs/THIRD_PARTIES.md).
//!
//! Per URL, one fetch at a time: requests for an unknown `kid` wait for the fetch under
//! way rather than start their own, and an unknown `kid` triggers at most one fetch a
//! minute. A failed or empty fetch keeps the last good set, for at most `max_stale`;
//! after that the URL's keys are refused.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::model::Jwks;
use crate::oidc::{PinnedKey, pinned_keys};

/// Largest JWKS document fetched, in bytes.
pub const MAX_FETCHED: usize = 256 * 1024;
/// How long a fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// A fetched set is refreshed when it is this old, in seconds.
const REFRESH: u64 = 3600;
/// An unknown `kid` fetches again at most this often, in seconds.
const UNKNOWN_KID_EVERY: u64 = 60;
/// The issuers whose JWKS URLs are allowed when the operator names none.
pub const DEFAULT_ALLOW: [&str; 2] = [
    "https://token.actions.githubusercontent.com/",
    "https://gitlab.com/",
];

/// Which JWKS URLs may be fetched, and how long a stale set may serve.
#[derive(Debug, Clone)]
pub struct JwksOptions {
    /// URL prefixes allowed (each should end with `/`).
    pub allow: Vec<String>,
    /// Also allow plain http to a loopback host (tests, local setups).
    pub insecure_loopback: bool,
    /// How long after its last good fetch a set may still serve, in seconds.
    pub max_stale: u64,
}

impl Default for JwksOptions {
    fn default() -> Self {
        JwksOptions {
            allow: DEFAULT_ALLOW.iter().map(|s| (*s).to_owned()).collect(),
            insecure_loopback: false,
            max_stale: 24 * 3600,
        }
    }
}

/// Why no key could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    /// The registration's URL is not on this server's allow-list.
    #[error("the JWKS URL is not allowed by this server (serve --jwks-allow)")]
    NotAllowed,
    /// No good set is known, or the last one is too old.
    #[error("the issuer's keys are unavailable (no successful fetch recently)")]
    Unavailable,
    /// The set has no key of this id.
    #[error("no key {0} in the issuer's keys")]
    UnknownKid(String),
}

#[derive(Default)]
struct Source {
    keys: HashMap<String, PinnedKey>,
    /// Clock time of the last good fetch (0: never).
    good_at: u64,
    /// Clock time of the last attempt (0: never).
    tried_at: u64,
}

/// The cache, shared by every request of the server.
pub struct JwksCache {
    opts: JwksOptions,
    /// `None` if no HTTP client could be built: then no URL is ever fetched.
    http: Option<reqwest::Client>,
    sources: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<Source>>>>,
    fetches: AtomicU64,
}

impl JwksCache {
    /// A cache under `opts`.
    pub fn new(opts: JwksOptions) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(FETCH_TIMEOUT)
            .build()
            .inspect_err(
                |e| tracing::error!(error = %e, "no HTTP client: JWKS URLs will not be fetched"),
            )
            .ok();
        JwksCache {
            opts,
            http,
            sources: std::sync::Mutex::new(HashMap::new()),
            fetches: AtomicU64::new(0),
        }
    }

    /// How many fetches were started (for tests and metrics).
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    fn allowed(&self, url: &str) -> bool {
        let Ok(parsed) = reqwest::Url::parse(url) else {
            return false;
        };
        let loopback = parsed.host_str().is_some_and(crate::authority::is_loopback);
        match parsed.scheme() {
            "https" => self.opts.allow.iter().any(|p| url.starts_with(p.as_str())),
            "http" => self.opts.insecure_loopback && loopback,
            _ => false,
        }
    }

    /// The key `kid` of a registration's issuer at clock time `now`.
    pub async fn key(&self, jwks: &Jwks, kid: &str, now: u64) -> Result<PinnedKey, JwksError> {
        let url = match jwks {
            Jwks::Document(doc) => {
                return pinned_keys(doc.as_bytes())
                    .into_iter()
                    .find(|(k, _)| k == kid)
                    .map(|(_, key)| key)
                    .ok_or_else(|| JwksError::UnknownKid(shown(kid)));
            }
            Jwks::Url(url) => url,
        };
        if !self.allowed(url) {
            return Err(JwksError::NotAllowed);
        }
        let source = {
            let mut all = self
                .sources
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            all.entry(url.clone()).or_default().clone()
        };
        // One fetch at a time per URL: whoever waits here finds the result of the fetch
        // it waited for, and fetches again only if the rules below still ask for it.
        let mut s = source.lock().await;
        let unknown = !s.keys.contains_key(kid);
        let due = s.good_at == 0 || now.saturating_sub(s.good_at) >= REFRESH;
        let may_retry = s.tried_at == 0 || now.saturating_sub(s.tried_at) >= UNKNOWN_KID_EVERY;
        if (due || unknown) && may_retry {
            s.tried_at = now;
            self.fetches.fetch_add(1, Ordering::Relaxed);
            match self.fetch(url).await {
                Some(keys) if !keys.is_empty() => {
                    s.keys = keys.into_iter().collect();
                    s.good_at = now;
                }
                _ => {
                    tracing::warn!(url = %url, "JWKS fetch failed or empty: keeping the last good set")
                }
            }
        }
        if s.good_at == 0 || now.saturating_sub(s.good_at) > self.opts.max_stale {
            return Err(JwksError::Unavailable);
        }
        s.keys
            .get(kid)
            .cloned()
            .ok_or_else(|| JwksError::UnknownKid(shown(kid)))
    }

    /// Fetches and reads a JWKS document: 200 only, no redirects, bounded in size and
    /// time. `None` on any failure.
    async fn fetch(&self, url: &str) -> Option<Vec<(String, PinnedKey)>> {
        let mut resp = self.http.as_ref()?.get(url).send().await.ok()?;
        if resp.status() != reqwest::StatusCode::OK {
            return None;
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.ok()? {
            if body.len() + chunk.len() > MAX_FETCHED {
                return None;
            }
            body.extend_from_slice(&chunk);
        }
        Some(pinned_keys(&body))
    }
}

fn shown(kid: &str) -> String {
    let cut: String = kid.chars().take(64).collect();
    crate::caveats::Excerpt(cut.as_bytes()).to_string()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;

    /// A JWKS with one RSA key `kid` (the components need not be a real key to be read).
    fn doc(kids: &[&str]) -> String {
        let keys: Vec<serde_json::Value> = kids
            .iter()
            .map(|k| serde_json::json!({"kty": "RSA", "kid": k, "n": "sXch", "e": "AQAB"}))
            .collect();
        serde_json::json!({ "keys": keys }).to_string()
    }

    /// A loopback JWKS server: what it serves, whether it fails, how often it was asked.
    struct Served {
        body: std::sync::Mutex<String>,
        failing: AtomicBool,
        hits: AtomicU64,
    }

    async fn serve(body: String) -> (String, Arc<Served>) {
        let served = Arc::new(Served {
            body: std::sync::Mutex::new(body),
            failing: AtomicBool::new(false),
            hits: AtomicU64::new(0),
        });
        let s = served.clone();
        let app = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                let s = s.clone();
                async move {
                    s.hits.fetch_add(1, Ordering::SeqCst);
                    // Slow enough that concurrent callers really wait on one fetch.
                    tokio::task::yield_now().await;
                    if s.failing.load(Ordering::SeqCst) {
                        (axum::http::StatusCode::INTERNAL_SERVER_ERROR, String::new())
                    } else {
                        (axum::http::StatusCode::OK, s.body.lock().unwrap().clone())
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, served)
    }

    fn cache() -> JwksCache {
        JwksCache::new(JwksOptions {
            allow: Vec::new(),
            insecure_loopback: true,
            max_stale: 24 * 3600,
        })
    }

    #[tokio::test]
    async fn twenty_requests_for_an_unknown_kid_make_one_fetch() {
        let (url, served) = serve(doc(&["a"])).await;
        let c = Arc::new(cache());
        let jwks = Jwks::Url(url);
        let now = 1_000_000;
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (c, jwks) = (c.clone(), jwks.clone());
                tokio::spawn(async move { c.key(&jwks, "b", now).await.map(|_| ()) })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), Err(JwksError::UnknownKid("b".into())));
        }
        assert_eq!(served.hits.load(Ordering::SeqCst), 1);
        assert_eq!(c.fetches(), 1);
        // Known keys need no fetch; an unknown kid fetches again after a minute only.
        assert!(c.key(&jwks, "a", now + 30).await.is_ok());
        assert!(c.key(&jwks, "b", now + 30).await.is_err());
        assert_eq!(served.hits.load(Ordering::SeqCst), 1);
        *served.body.lock().unwrap() = doc(&["a", "b"]);
        assert!(c.key(&jwks, "b", now + UNKNOWN_KID_EVERY).await.is_ok());
        assert_eq!(served.hits.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failed_or_empty_fetch_keeps_the_last_good_set_until_the_bound() {
        let (url, served) = serve(doc(&["a"])).await;
        let c = JwksCache::new(JwksOptions {
            allow: Vec::new(),
            insecure_loopback: true,
            max_stale: 2 * REFRESH,
        });
        let jwks = Jwks::Url(url);
        let t0 = 1_000_000;
        assert!(c.key(&jwks, "a", t0).await.is_ok());
        // Due for a refresh, but the server fails: the old set still serves.
        served.failing.store(true, Ordering::SeqCst);
        assert!(c.key(&jwks, "a", t0 + REFRESH).await.is_ok());
        // Empty sets do not replace it either.
        served.failing.store(false, Ordering::SeqCst);
        *served.body.lock().unwrap() = r#"{"keys":[]}"#.into();
        assert!(
            c.key(&jwks, "a", t0 + REFRESH + UNKNOWN_KID_EVERY)
                .await
                .is_ok()
        );
        // Past the bound since the last good fetch: refused.
        assert_eq!(
            c.key(&jwks, "a", t0 + 2 * REFRESH + 1).await.map(|_| ()),
            Err(JwksError::Unavailable)
        );
        // A good fetch brings it back.
        *served.body.lock().unwrap() = doc(&["a"]);
        assert!(c.key(&jwks, "a", t0 + 3 * REFRESH).await.is_ok());
    }

    #[tokio::test]
    async fn only_allowed_urls_are_fetched() {
        let (url, served) = serve(doc(&["a"])).await;
        let strict = JwksCache::new(JwksOptions::default());
        assert_eq!(
            strict.key(&Jwks::Url(url), "a", 1).await.map(|_| ()),
            Err(JwksError::NotAllowed)
        );
        assert_eq!(served.hits.load(Ordering::SeqCst), 0);
        let c = JwksCache::new(JwksOptions::default());
        assert!(c.allowed("https://token.actions.githubusercontent.com/.well-known/jwks"));
        assert!(c.allowed("https://gitlab.com/oauth/discovery/keys"));
        for no in [
            "https://token.actions.githubusercontent.com.evil.example/jwks",
            "http://gitlab.com/oauth/discovery/keys",
            "https://evil.example/jwks",
            "file:///etc/passwd",
        ] {
            assert!(!c.allowed(no), "{no}");
        }
    }

    #[test]
    fn keys_are_pinned_to_one_algorithm() {
        let doc = serde_json::json!({"keys": [
            {"kty": "RSA", "kid": "rsa", "n": "sXch", "e": "AQAB"},
            {"kty": "RSA", "kid": "rsa-ps", "alg": "PS256", "n": "sXch", "e": "AQAB"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "EC", "kid": "p384", "crv": "P-384", "x": "AA", "y": "AA"},
            {"kty": "RSA", "n": "sXch", "e": "AQAB"},
            "not a key",
        ]});
        let keys = pinned_keys(doc.to_string().as_bytes());
        let kids: Vec<(&str, jsonwebtoken::Algorithm)> =
            keys.iter().map(|(k, p)| (k.as_str(), p.alg)).collect();
        assert_eq!(kids, [("rsa", jsonwebtoken::Algorithm::RS256)]);
        assert!(pinned_keys(b"not json").is_empty());
    }
}
