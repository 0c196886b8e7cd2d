//! The HTTP API (docs/API.md): axum router, the bearer-token extractor, thin handlers.
//! Handlers translate requests into authority calls; they hold no crypto and no caveat
//! logic.

mod error;
mod handlers;
mod verify;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse as _, Response};
use axum::routing::{get, post};
use axum::serve::{IncomingStream, ListenerExt as _};
use tokio::net::TcpListener;
use tower::Service;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;

pub use error::ApiError;
pub use verify::verify_body;

use crate::authority::{Authority, Client, ClientRef};
use crate::token::Verified;

/// Largest accepted request body.
pub const MAX_BODY: usize = 64 * 1024;
/// How often queued last-used times and audit events are written.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// What every handler shares.
pub type AppState = Arc<Authority>;

/// The router with every endpoint but `POST /v1/verify` (served beside it, by
/// [`verify::serve`], from [`run`]) and the middleware around them.
pub fn app(state: AppState, request_timeout: Duration) -> Router {
    let router = Router::new()
        .route("/v1/health", get(handlers::health))
        .route("/v1/orgs", post(handlers::create_org))
        .route(
            "/v1/orgs/{org}",
            get(handlers::get_org).patch(handlers::update_org),
        )
        .route(
            "/v1/orgs/{org}/tokens",
            post(handlers::mint).get(handlers::list_tokens),
        )
        .route("/v1/tokens/self/revoke", post(handlers::revoke_self))
        .route("/v1/tokens/{id}/revoke", post(handlers::revoke))
        .route("/v1/orgs/{org}/keys", get(handlers::list_keys))
        .route("/v1/orgs/{org}/keys/rotate", post(handlers::rotate_key))
        .route(
            "/v1/orgs/{org}/keys/{version}/retire",
            post(handlers::retire_key),
        )
        .route("/v1/orgs/{org}/audit", get(handlers::audit))
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .with_state(state)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(
            move |req: Request, next: axum::middleware::Next| async move {
                tokio::time::timeout(request_timeout, next.run(req))
                    .await
                    .unwrap_or_else(|_| ApiError::timeout().into_response())
            },
        ))
        .layer(CatchPanicLayer::custom(handlers::panic_response));
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

/// Who is calling, as far as the connection and headers tell.
fn client(parts: &Parts) -> Client {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let seen = client_ref(peer, &parts.headers);
    Client {
        ip: seen.ip,
        user_agent: seen.user_agent.map(str::to_owned),
    }
}

/// [`client`], borrowed from the headers (the verify path).
fn client_ref(peer: Option<SocketAddr>, headers: &HeaderMap) -> ClientRef<'_> {
    ClientRef {
        ip: peer.map(|p| p.ip()),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
    }
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

/// An authenticated caller: its verified token (not yet authorized for anything).
pub struct Caller {
    /// The verified bearer token.
    pub token: Verified<'static>,
    /// Where it came from.
    pub client: Client,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let client = client(parts);
        let text = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer)
            .ok_or_else(ApiError::missing_token)?;
        let token = state.authenticate(text, &client)?;
        Ok(Caller { token, client })
    }
}

/// The credentials of `Bearer <token>`; the scheme name is case-insensitive (RFC 9110).
fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Serves `state` on `listener` until `shutdown` completes, then writes what is queued.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    request_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let flusher = {
        let state = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FLUSH_EVERY);
            loop {
                tick.tick().await;
                let s = state.clone();
                match tokio::task::spawn_blocking(move || s.flush()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "writing last-used times failed"),
                    Err(e) => tracing::error!(error = %e, "flush task failed"),
                }
            }
        })
    };
    let router = app(state.clone(), request_timeout);
    let service = {
        let state = state.clone();
        tower::service_fn(move |incoming: IncomingStream<'_, _>| {
            let connection = Connection {
                state: state.clone(),
                router: router.clone(),
                peer: *incoming.remote_addr(),
                request_timeout,
            };
            std::future::ready(Ok::<_, Infallible>(connection))
        })
    };
    // Answers are single small writes: send them at once rather than wait on Nagle.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await?;
    flusher.abort();
    tokio::task::spawn_blocking(move || state.flush()).await??;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

/// `macvault serve`: opens the data directory and serves until SIGINT or SIGTERM.
pub async fn serve(
    listen: SocketAddr,
    data_dir: PathBuf,
    request_timeout: Duration,
) -> anyhow::Result<()> {
    init_tracing();
    let dir = data_dir.clone();
    let (authority, operator) =
        tokio::task::spawn_blocking(move || Authority::open(&dir)).await??;
    if let Some(token) = operator {
        println!(
            "operator token (shown once; also saved in {}):\n{}",
            data_dir.join("operator.token").display(),
            token.expose()
        );
    }
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    println!("macvault listening on http://{addr}");
    tracing::info!(%addr, "listening");
    run(
        listener,
        Arc::new(authority),
        request_timeout,
        shutdown_signal(),
    )
    .await
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MACVAULT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal as _;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::bearer;

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer("Bearer mvt_x"), Some("mvt_x"));
        assert_eq!(bearer("bearer mvt_x "), Some("mvt_x"));
        assert_eq!(bearer("BEARER  mvt_x"), Some("mvt_x"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("mvt_x"), None);
    }
}
