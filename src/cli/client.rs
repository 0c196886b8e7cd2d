//! The HTTP client of the macvault API (docs/API.md).

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

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

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.status.as_u16();
        let Some(body) = &self.body else {
            let reason = self.status.canonical_reason().unwrap_or("error");
            return write!(f, "{status} {reason} from the server");
        };
        let code = clean(&body.error.code);
        match (&body.denial, self.status) {
            (_, StatusCode::UNAUTHORIZED) => write!(f, "not authenticated ({code})"),
            (Some(d), _) => write!(
                f,
                "{status} {code}: caveat {} ({}) {}",
                d.index,
                clean(&d.caveat),
                clean(&d.reason)
            ),
            (None, _) => write!(f, "{status} {code}: {}", clean(&body.error.message)),
        }
    }
}

impl StdError for ApiError {}

/// A client for one server, presenting one token (or none).
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Option<SecretToken>,
}

impl Client {
    /// A client of the server at `base`, authenticating with `token` if given.
    pub fn new(base: Url, token: Option<SecretToken>) -> anyhow::Result<Self> {
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            bail!("--url must be an http:// or https:// URL");
        }
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
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
            bail!("this command needs a token: pass --token or set MACVAULT_TOKEN");
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
        if err.is_timeout() {
            anyhow!("no answer from {base} within {}s", TIMEOUT.as_secs())
        } else if err.is_connect() {
            anyhow!("cannot connect to the macvault server at {base}: {cause}")
        } else {
            anyhow!("request to {base} failed: {cause}")
        }
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

    fn err(status: u16, code: &str, denial: Option<DenialBody>) -> String {
        ApiError {
            status: StatusCode::from_u16(status).unwrap(),
            body: Some(ErrorBody {
                error: ErrorDetail {
                    code: code.into(),
                    message: "no such org".into(),
                },
                denial,
            }),
        }
        .to_string()
    }

    #[test]
    fn api_errors_read_well() {
        let denial = DenialBody {
            index: 2,
            caveat: "app = web:r".into(),
            reason: "does not allow write on app \"web\"".into(),
        };
        assert_eq!(
            err(403, "denied", Some(denial)),
            "403 denied: caveat 2 (app = web:r) does not allow write on app \"web\""
        );
        assert_eq!(err(401, "expired", None), "not authenticated (expired)");
        assert_eq!(err(404, "not_found", None), "404 not_found: no such org");
        let bare = ApiError {
            status: StatusCode::BAD_GATEWAY,
            body: None,
        };
        assert_eq!(bare.to_string(), "502 Bad Gateway from the server");
    }

    #[test]
    fn urls_escape_segments_and_keep_a_base_path() {
        let base: Url = "http://h:1/prefix/".parse().unwrap();
        let c = Client::new(base, None).unwrap();
        let url = c.url(&["v1", "orgs", "a/b?c"], &[("limit", "5".into())]);
        assert_eq!(url.as_str(), "http://h:1/prefix/v1/orgs/a%2Fb%3Fc?limit=5");
        assert!(Client::new("file:///x".parse().unwrap(), None).is_err());
    }
}
