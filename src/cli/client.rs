//! The HTTP client of the macvault API (docs/API.md).

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use anyhow::Context as _;
use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::exit::{Exit, usage};
use super::input::SecretToken;
use super::output::clean;
use crate::api::ErrorBody;

const USER_AGENT: &str = concat!("macvault-cli/", env!("CARGO_PKG_VERSION"));
const TIMEOUT: Duration = Duration::from_secs(30);

/// A non-2xx answer of the server.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The JSON error body, when the server sent one.
    pub body: Option<ErrorBody>,
}

impl ApiError {
    /// The exit class of this answer.
    pub fn exit(&self) -> Exit {
        match self.status.as_u16() {
            401 => Exit::Unauthenticated,
            403 => Exit::Denied,
            408 | 500..=599 => Exit::Unreachable,
            _ => Exit::Refused,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.status.as_u16();
        let Some(body) = &self.body else {
            let reason = self.status.canonical_reason().unwrap_or("error");
            return write!(f, "{status} {reason} from the server");
        };
        let code = clean(&body.error.code);
        match (&body.denial, self.status) {
            // Where the missing discharge comes from is in the message.
            (_, StatusCode::UNAUTHORIZED) if code == "missing_discharge" => {
                write!(f, "not authenticated: {}", clean(&body.error.message))
            }
            (_, StatusCode::UNAUTHORIZED) => write!(f, "not authenticated ({code})"),
            // Index 0 is the token's own org: the reason says it all.
            (Some(d), _) if d.index == 0 => write!(f, "denied: {}", clean(&d.reason)),
            (Some(d), _) => write!(
                f,
                "denied: caveat {} ({}) {}",
                d.index,
                clean(&d.caveat),
                clean(&d.reason)
            ),
            (None, _) => write!(f, "{status} {code}: {}", clean(&body.error.message)),
        }
    }
}

impl StdError for ApiError {}

/// No usable answer: the server could not be reached or did not answer in time.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(String);

/// Parses `--url`, suggesting a scheme when it has none.
pub fn parse_url(text: &str) -> anyhow::Result<Url> {
    let has_scheme = text.starts_with("http://") || text.starts_with("https://");
    let url = if has_scheme {
        Url::parse(text).map_err(|e| usage(format!("--url {}: {e}", clean(text))))?
    } else {
        let guess = Url::parse(&format!("http://{text}")).ok();
        let suggestion = match guess.as_ref().and_then(|u| u.host_str()) {
            Some(host) if is_loopback(host) => format!("http://{text}"),
            Some(_) => format!("https://{text}"),
            None => "https://HOST:PORT".into(),
        };
        return Err(usage(format!(
            "--url needs a scheme: try --url {}",
            clean(&suggestion)
        )));
    };
    if url.cannot_be_a_base() || url.host_str().is_none() {
        return Err(usage(
            "--url must be an http:// or https:// URL with a host",
        ));
    }
    Ok(url)
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A client for one server, presenting one token (or none).
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Option<SecretToken>,
}

impl Client {
    /// A client of the server at `base`, authenticating with `token` if given. Warns
    /// once when a token would travel in clear to another host.
    pub fn new(base: Url, token: Option<SecretToken>) -> anyhow::Result<Self> {
        if base.scheme() == "http" && token.is_some() && !base.host_str().is_some_and(is_loopback) {
            eprintln!(
                "warning: the token goes to {} over plain http, readable on the way: use https://",
                clean(base.host_str().unwrap_or("?"))
            );
        }
        // A connection idle for 2 s is not reused: the server closes idle connections
        // after its --header-timeout (5 s by default), and a request sent on one as it
        // closes would fail.
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(2))
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Self { http, base, token })
    }

    /// `GET` the path made of `segments` (each escaped), with the bearer token.
    pub async fn get<T: DeserializeOwned>(&self, segments: &[&str]) -> anyhow::Result<T> {
        self.send(self.authed(Method::GET, segments, &[])?).await
    }

    /// `GET` with query parameters.
    pub async fn get_query<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> anyhow::Result<T> {
        self.send(self.authed(Method::GET, segments, query)?).await
    }

    /// `GET` with query parameters, waiting up to `timeout` for the answer (a long poll).
    pub async fn get_query_waiting<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
        timeout: Duration,
    ) -> anyhow::Result<T> {
        let req = self.authed(Method::GET, segments, query)?.timeout(timeout);
        self.send(req).await
    }

    /// `method` with a JSON body (or none), with the bearer token.
    pub async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<&B>,
    ) -> anyhow::Result<T> {
        let mut req = self.authed(method, segments, &[])?;
        if let Some(body) = body {
            req = req.json(body);
        }
        self.send(req).await
    }

    /// `POST` with query parameters and no body, waiting up to `timeout` for the answer
    /// (a long poll).
    pub async fn post_query<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
        timeout: Duration,
    ) -> anyhow::Result<T> {
        let req = self.authed(Method::POST, segments, query)?.timeout(timeout);
        self.send(req).await
    }

    /// `GET` without a bearer token (a third party's published key).
    pub async fn get_anonymous<T: DeserializeOwned>(&self, segments: &[&str]) -> anyhow::Result<T> {
        let req = self.http.get(self.url(segments, &[]));
        self.send(req).await
    }

    /// `POST` without a bearer token (`/v1/verify` carries the token in its body).
    pub async fn post_anonymous<B: Serialize, T: DeserializeOwned>(
        &self,
        segments: &[&str],
        body: &B,
    ) -> anyhow::Result<T> {
        let req = self.http.post(self.url(segments, &[])).json(body);
        self.send(req).await
    }

    fn authed(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> anyhow::Result<RequestBuilder> {
        let Some(token) = &self.token else {
            return Err(usage(
                "this command needs a token: --token-file FILE, --token (- for stdin), \
                 or MACVAULT_TOKEN / MACVAULT_TOKEN_FILE",
            ));
        };
        let req = self.http.request(method, self.url(segments, query));
        Ok(req.bearer_auth(token.expose()))
    }

    fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    async fn send<T: DeserializeOwned>(&self, req: RequestBuilder) -> anyhow::Result<T> {
        let resp = req.send().await.map_err(|e| self.transport_error(&e))?;
        let status = resp.status();
        if !status.is_success() {
            let bytes = resp.bytes().await.unwrap_or_default();
            let body = serde_json::from_slice(&bytes).ok();
            return Err(ApiError { status, body }.into());
        }
        let bytes = resp.bytes().await.map_err(|e| self.transport_error(&e))?;
        serde_json::from_slice(&bytes)
            .with_context(|| format!("unexpected answer from {}", self.shown_base()))
    }

    fn transport_error(&self, err: &reqwest::Error) -> anyhow::Error {
        let base = self.shown_base();
        let cause = root_cause(err);
        TransportError(if err.is_timeout() {
            format!("no answer from {base} within {}s", TIMEOUT.as_secs())
        } else if err.is_connect() {
            format!("cannot connect to the macvault server at {base}: {cause}")
        } else {
            format!("request to {base} failed: {cause}")
        })
        .into()
    }

    /// The base URL without any password it may carry.
    fn shown_base(&self) -> Url {
        let mut url = self.base.clone();
        if url.password().is_some() {
            let _ = url.set_password(None);
        }
        url
    }
}

fn root_cause(err: &(dyn StdError + 'static)) -> String {
    let mut cause = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{DenialBody, ErrorDetail};

    fn err(status: u16, code: &str, denial: Option<DenialBody>) -> ApiError {
        ApiError {
            status: StatusCode::from_u16(status).unwrap(),
            body: Some(ErrorBody {
                error: ErrorDetail {
                    code: code.into(),
                    message: "no such org".into(),
                },
                denial,
                conflict: None,
            }),
        }
    }

    #[test]
    fn api_errors_read_well_and_classify() {
        let denial = DenialBody {
            index: 2,
            caveat: "app = web:r".into(),
            reason: "does not allow write on app \"web\"".into(),
        };
        let denied = err(403, "denied", Some(denial));
        assert_eq!(
            denied.to_string(),
            "denied: caveat 2 (app = web:r) does not allow write on app \"web\""
        );
        assert_eq!(denied.exit(), Exit::Denied);
        let wrong_org = DenialBody {
            index: 0,
            caveat: "the token's org (acme)".into(),
            reason: "this token is for org \"acme\", not \"acm\"".into(),
        };
        assert_eq!(
            err(403, "denied", Some(wrong_org)).to_string(),
            "denied: this token is for org \"acme\", not \"acm\""
        );
        assert_eq!(
            err(401, "expired", None).to_string(),
            "not authenticated (expired)"
        );
        assert_eq!(err(401, "expired", None).exit(), Exit::Unauthenticated);
        assert_eq!(
            err(404, "not_found", None).to_string(),
            "404 not_found: no such org"
        );
        for (status, exit) in [
            (400, Exit::Refused),
            (404, Exit::Refused),
            (409, Exit::Refused),
            (413, Exit::Refused),
            (429, Exit::Refused),
            (503, Exit::Unreachable),
            (500, Exit::Unreachable),
        ] {
            assert_eq!(err(status, "x", None).exit(), exit, "{status}");
        }
        let bare = ApiError {
            status: StatusCode::BAD_GATEWAY,
            body: None,
        };
        assert_eq!(bare.to_string(), "502 Bad Gateway from the server");
    }

    #[test]
    fn urls_need_a_scheme_and_keep_a_base_path() {
        let e = parse_url("localhost:7070").unwrap_err().to_string();
        assert!(e.contains("http://localhost:7070"), "{e}");
        let e = parse_url("vault.example.com").unwrap_err().to_string();
        assert!(e.contains("https://vault.example.com"), "{e}");
        let base = parse_url("http://h:1/prefix/").unwrap();
        let c = Client::new(base, None).unwrap();
        let url = c.url(&["v1", "orgs", "a/b?c"], &[("limit", "5".into())]);
        assert_eq!(url.as_str(), "http://h:1/prefix/v1/orgs/a%2Fb%3Fc?limit=5");
        assert!(parse_url("file:///x").is_err());
    }
}
