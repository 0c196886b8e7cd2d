//! The accept loop: one for the router and the `/v1/verify` fast path alike, over
//! hyper's HTTP/1 connection builder (axum's own `serve` offers none of these knobs).
//!
//! - **Header timeout** (`serve --header-timeout`): a connection that has not sent a
//!   whole request head within it is closed — the first request's and, on a kept-alive
//!   connection, the next one's, so it is also the longest a connection may sit idle
//!   between requests. One setting, since hyper times both the same way.
//! - **Header size**: a request head over [`MAX_HEAD`] is answered 431 and the
//!   connection closed, so unfinished heads cannot pile up memory.
//! - **Connection cap** (`serve --max-connections`): past it the loop stops accepting;
//!   new connections wait in the kernel's backlog while established ones are served.
//! - **Drain**: when `shutdown` completes the node says so (`/v1/ready` answers 503, a
//!   long poll ends with a retryable 503); it goes on accepting for `serve
//!   --drain-delay` (default none), time for a load balancer to see it unready, then
//!   stops accepting, lets requests in flight finish for up to `serve
//!   --drain-timeout`, and returns; `serve` then flushes what is queued for the store.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::Service as _;
use tracing::Instrument as _;

use super::{AppState, Connection, app};

/// Largest request head (request line and headers) read.
pub const MAX_HEAD: usize = 32 * 1024;

/// Descriptors kept back from the connection cap's default for the store, the log and
/// outgoing connections.
const RESERVED_FDS: u64 = 64;

/// How the server serves connections.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// How long a request may take before it is answered 408.
    pub request_timeout: Duration,
    /// How long a connection may take to send a request head, or sit idle between
    /// requests.
    pub header_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
    /// How long requests in flight may run on once draining starts.
    pub drain_timeout: Duration,
    /// How long the node goes on accepting once it says it is draining.
    pub drain_delay: Duration,
    /// Serve HTTPS with this pair (else plain HTTP).
    pub tls: Option<Arc<super::tls::Tls>>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            request_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(5),
            max_connections: default_max_connections(),
            drain_timeout: Duration::from_secs(30),
            drain_delay: Duration::ZERO,
            tls: None,
        }
    }
}

/// The process's descriptor limit minus a reserve (at least 16).
pub fn default_max_connections() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(1024);
    usize::try_from(limit.saturating_sub(RESERVED_FDS).max(16)).unwrap_or(usize::MAX)
}

/// Serves `state` on `listener` until `shutdown` completes, then drains.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = app(state.clone(), options.request_timeout);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout)
        .max_header_size(MAX_HEAD)
        .max_buf_size(2 * MAX_HEAD)
        .keep_alive(true);
    let permits = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    // Said unready first; still accepting for the delay (load balancers poll readiness).
    let (authority, delay) = (state.authority.clone(), options.drain_delay);
    let shutdown = async move {
        shutdown.await;
        if !delay.is_zero() {
            authority.begin_drain();
            tracing::info!(
                ?delay,
                "draining: ready answers 503; accepting for the delay"
            );
            tokio::time::sleep(delay).await;
        }
    };
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // A free place first: past the cap, connections wait in the backlog.
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.map_err(std::io::Error::other)?,
            () = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors or a connection reset before it was taken:
                    // wait a moment rather than spin, and go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Answers are single small writes: send them at once rather than wait on Nagle.
        let _ = tcp.set_nodelay(true);
        // Counted open until the connection's task ends, with its permit.
        let open = state.metrics.as_ref().map(|m| m.connection());
        let connection = Connection {
            state: state.clone(),
            router: router.clone(),
            peer,
            request_timeout: options.request_timeout,
        };
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let mut connection = connection.clone();
            let id = super::request_id::of(peer.ip(), req.headers(), &connection.state.proxies);
            // Every line the request logs carries its id.
            let span = tracing::info_span!("request", id = id.to_str().unwrap_or("-"));
            async move {
                let mut response = connection.call(req.map(Body::new)).await?;
                response.headers_mut().insert(super::request_id::HEADER, id);
                Ok::<_, std::convert::Infallible>(response)
            }
            .instrument(span)
        });
        let (http, watcher, tls) = (http.clone(), graceful.watcher(), options.tls.clone());
        let handshake_timeout = options.header_timeout;
        tokio::spawn(async move {
            let served = match tls {
                None => {
                    watcher
                        .watch(http.serve_connection(TokioIo::new(tcp), service))
                        .await
                }
                // The handshake is bounded as a request head is.
                Some(tls) => {
                    match tokio::time::timeout(handshake_timeout, tls.acceptor().accept(tcp)).await
                    {
                        Ok(Ok(stream)) => {
                            watcher
                                .watch(http.serve_connection(TokioIo::new(stream), service))
                                .await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "TLS handshake failed");
                            Ok(())
                        }
                        Err(_) => Ok(()),
                    }
                }
            };
            if let Err(e) = served {
                tracing::debug!(error = %e, "connection ended");
            }
            drop(permit);
            drop(open);
        });
    }
    drop(listener);
    state.authority.begin_drain();
    tracing::info!("draining: no new connections; requests in flight may finish");
    if tokio::time::timeout(options.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            after = ?options.drain_timeout,
            "requests still in flight at the end of the drain were cut"
        );
    }
    Ok(())
}
