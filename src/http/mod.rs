//! The HTTP API (docs/API.md): the accept loop ([`listen`]: header timeout, connection
//! cap, TLS, drain), the axum router with one file per resource, body limits, the
//! failure limiter, the bearer extractor, error mapping, and `POST /v1/verify` served
//! beside the router. Handlers translate requests into authority calls; they hold no
//! crypto and no caveat logic. [`metrics`] counts what the server does and serves it as
//! `GET /metrics` on a listener of its own (`serve --metrics-listen`). `ui` is the
//! dashboard under `/ui`; `oauth` the OAuth 2.0 provider's endpoints (`/oauth/…`, its
//! metadata, and the grants people list and revoke).

mod apps;
mod audit;
mod auth;
mod body;
mod client_addr;
mod error;
mod health;
mod keys;
mod limits;
mod listen;
pub mod metrics;
mod oauth;
mod oauth_clients;
mod orgs;
mod request_id;
mod secrets;
mod third_parties;
mod tls;
mod tokens;
mod ui;
mod verify;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request};
use axum::http::header;
use axum::response::{IntoResponse as _, Response};
use axum::routing::{get, post};
use tower::Service;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;

pub use auth::Caller;
pub use client_addr::TrustedProxies;
pub use error::ApiError;
pub use listen::{MAX_HEAD, ServeOptions, default_max_connections, run};
pub use metrics::{Decision, Metrics, serve_metrics};
pub use tls::{Tls, TlsError};
pub use verify::{BODY_PENDING, VerifyFailure, verify_body, verify_body_metered};

use crate::authority::Authority;
use crate::secrets::Secrets;

/// Largest accepted request body.
pub const MAX_BODY: usize = 64 * 1024;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The authority.
    pub authority: Arc<Authority>,
    /// The secrets store over its orgs.
    pub secrets: Arc<Secrets>,
    /// Whose `X-Forwarded-For` is believed.
    pub proxies: Arc<TrustedProxies>,
    /// The built-in CI discharger.
    pub discharger: Arc<crate::discharge::Discharger>,
    /// Rate limits and quotas.
    pub limits: Arc<crate::limits::Limits>,
    /// What is counted for `/metrics` (`None`: nothing is, and nothing costs).
    pub metrics: Option<Arc<Metrics>>,
    /// The address people reach this server at (`serve --public-url`), if it differs
    /// from what the request says (behind a TLS proxy): the dashboard's origin.
    pub public_url: Option<String>,
    /// Whether this server itself serves HTTPS (`--tls-cert`).
    pub tls: bool,
}

impl AppState {
    /// State over `authority` with the secrets store run with `options`, trusting no
    /// proxy.
    pub fn new(authority: Arc<Authority>, options: crate::secrets::Options) -> Self {
        AppState {
            secrets: Arc::new(Secrets::new(authority.clone(), options)),
            discharger: Arc::new(crate::discharge::Discharger::new(
                authority.clone(),
                crate::discharge::DischargeOptions::default(),
            )),
            authority,
            proxies: Arc::new(TrustedProxies::none()),
            limits: Arc::new(crate::limits::Limits::default()),
            metrics: None,
            public_url: None,
            tls: false,
        }
    }
}

/// The router with every endpoint but `POST /v1/verify` (served beside it, by
/// [`verify::serve`], from [`run`]) and the middleware around them.
pub fn app(state: AppState, request_timeout: Duration) -> Router {
    let limited = state.clone();
    let state_metrics = state.metrics.clone();
    let router = Router::new()
        .route("/v1/health", get(health::health))
        .route("/v1/ready", get(health::ready))
        .route("/v1/orgs", post(orgs::create).get(orgs::list))
        .route("/v1/orgs/{org}", get(orgs::show).patch(orgs::update))
        .route("/v1/orgs/{org}/org-token", post(orgs::issue_token))
        .route(
            "/v1/orgs/{org}/tokens",
            post(tokens::mint).get(tokens::list),
        )
        .route("/v1/tokens/self/revoke", post(tokens::revoke_self))
        .route("/v1/tokens/service", post(tokens::service))
        .route("/v1/tokens/{id}", get(tokens::show))
        .route("/v1/tokens/{id}/revoke", post(tokens::revoke))
        .route("/v1/tokens/{id}/rotate", post(tokens::rotate))
        .route("/v1/orgs/{org}/keys", get(keys::list))
        .route("/v1/orgs/{org}/keys/rotate", post(keys::rotate))
        .route("/v1/orgs/{org}/keys/{version}", get(keys::show))
        .route("/v1/orgs/{org}/keys/{version}/retire", post(keys::retire))
        .route("/v1/orgs/{org}/audit", get(audit::list))
        .merge(secrets_routes("/v1/orgs/{org}/secrets"))
        .route("/v1/orgs/{org}/secrets-key", get(secrets::key_status))
        .route("/v1/orgs/{org}/secrets-withheld", get(secrets::withheld))
        .route(
            "/v1/orgs/{org}/secrets-key/rotate",
            post(secrets::rotate_key),
        )
        .merge(secrets_routes("/v1/orgs/{org}/apps/{app}/secrets"))
        .route(
            "/v1/orgs/{org}/allowed-env",
            get(secrets::allowed_env)
                .post(secrets::allow_env)
                .delete(secrets::disallow_env),
        )
        .route(
            "/v1/orgs/{org}/apps/{app}/allowed-env",
            get(secrets::allowed_env)
                .post(secrets::allow_env)
                .delete(secrets::disallow_env),
        )
        .route("/v1/orgs/{org}/apps", post(apps::create).get(apps::list))
        .route(
            "/v1/orgs/{org}/oauth-clients",
            post(oauth_clients::add).get(oauth_clients::list),
        )
        .route(
            "/v1/orgs/{org}/oauth-clients/{id}",
            get(oauth_clients::show).delete(oauth_clients::remove),
        )
        .route("/v1/orgs/{org}/oauth-grants", get(oauth::grants))
        .route(
            "/v1/orgs/{org}/oauth-grants/{id}/revoke",
            post(oauth::revoke_grant),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(oauth::metadata),
        )
        .route("/oauth/token", post(oauth::token))
        .route("/oauth/revoke", post(oauth::revoke))
        .route(
            "/v1/orgs/{org}/apps/{app}",
            get(apps::show).delete(apps::delete),
        )
        .route(
            "/v1/orgs/{org}/third-parties",
            post(third_parties::add).get(third_parties::list),
        )
        .route(
            "/v1/orgs/{org}/third-parties/{name}",
            get(third_parties::show).delete(third_parties::remove),
        )
        .route(
            "/v1/orgs/{org}/third-parties/{name}/rotate-key",
            post(third_parties::rotate_key),
        )
        .route(
            "/v1/orgs/{org}/third-parties/{name}/keys/{key_id}/retire",
            post(third_parties::retire_key),
        )
        .merge(ui::routes().layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ui::guard,
        )))
        .fallback(third_parties::fallback)
        .method_not_allowed_fallback(health::method_not_allowed)
        .with_state(state)
        // Each route's limit is body::limit_of's, applied after routing.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn(body::limit))
        .layer(axum::middleware::from_fn_with_state(
            limited,
            limits::charge_failures,
        ))
        .layer(axum::middleware::from_fn(
            move |req: Request, next: axum::middleware::Next| async move {
                let (path, query) = (req.uri().path(), req.uri().query());
                let limit = if secrets::is_long_poll(path, query) {
                    crate::secrets::LONG_POLL_CAP + request_timeout
                } else if audit::is_follow(path, query) {
                    crate::authority::FOLLOW_CAP + request_timeout
                } else {
                    request_timeout
                };
                tokio::time::timeout(limit, next.run(req))
                    .await
                    .unwrap_or_else(|_| ApiError::timeout().into_response())
            },
        ))
        .layer(CatchPanicLayer::custom(health::panic_response));
    // Outside the panic catcher and the limiter: counts the status the client gets. A
    // layer of the router's, so it runs after routing and sees the matched template.
    let router = match &state_metrics {
        Some(m) => router.layer(axum::middleware::from_fn_with_state(
            m.clone(),
            metrics::count_requests,
        )),
        None => router,
    };
    // Per-request spans cost time on the verify path; they are built only when
    // someone will read them (MACVAULT_LOG=debug).
    let router = if tracing::enabled!(tracing::Level::DEBUG) {
        router.layer(TraceLayer::new_for_http())
    } else {
        router
    };
    // Outermost, so the trace layer already sees the header marked sensitive.
    router.layer(SetSensitiveRequestHeadersLayer::new([
        header::AUTHORIZATION,
        header::COOKIE,
    ]))
}

/// The secrets endpoints under `base` (the org's own, or an app's); writes take bodies
/// up to [`secrets::MAX_WRITE_BODY`] (see `body::limit_of`).
fn secrets_routes(base: &str) -> Router<AppState> {
    Router::new()
        .route(base, post(secrets::write).get(secrets::list))
        // Static beside `{name}`: a secret named `reveal` is read through listings.
        .route(&format!("{base}/reveal"), post(secrets::reveal))
        .route(&format!("{base}/{{name}}"), get(secrets::show))
        .route(&format!("{base}/{{name}}/history"), get(secrets::history))
        .route(
            &format!("{base}/{{name}}/rollback"),
            post(secrets::rollback),
        )
        .route(&format!("{base}/{{name}}/destroy"), post(secrets::destroy))
}

/// One connection's service: `POST /v1/verify` goes to [`verify::serve`], everything
/// else to the router (with the peer address as `ConnectInfo`).
#[derive(Clone)]
struct Connection {
    state: AppState,
    router: Router,
    peer: SocketAddr,
    request_timeout: Duration,
}

type ResponseFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl Service<Request> for Connection {
    type Response = Response;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request) -> ResponseFuture {
        if req.uri().path() == verify::PATH {
            let (state, peer, timeout) = (self.state.clone(), self.peer, self.request_timeout);
            return Box::pin(async move { Ok(verify::serve(state, peer, timeout, req).await) });
        }
        req.extensions_mut().insert(ConnectInfo(self.peer));
        Box::pin(self.router.call(req))
    }
}
