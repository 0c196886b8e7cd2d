//! Prometheus metrics: `GET /metrics` on a listener of its own (`serve
//! --metrics-listen ADDR`; without it nothing is counted and no listener opens).
//!
//! The listener takes no token, so bind it to loopback or a private network. What it
//! tells names no org, app, token, secret or client address: every label comes from a
//! fixed set — a route *template* as the router matched it, its parameters written
//! `:name` (`/v1/orgs/:org/apps`), or `other` for a path no route matched; a status
//! code; an outcome; a failure class.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `macvault_http_requests_total` | counter | `route`, `status` |
//! | `macvault_verify_decisions_total` | counter | `outcome` (`allowed`, `denied`, `refused`), `class` |
//! | `macvault_verify_duration_seconds` | histogram | |
//! | `macvault_open_connections` | gauge | |
//! | `macvault_rate_limited_total` | counter | `limit` (`address`, `token`, `discharge`) |
//! | `macvault_quota_refusals_total` | counter | `quota` (`reveal`, `mint`) |
//! | `macvault_reveals_total` | counter | |
//! | `macvault_flush_lag_seconds`, `macvault_flush_errors_total` | gauge, counter | |
//! | `macvault_feed_position`, `macvault_feed_lag_seconds` | gauges | |
//! | `macvault_audit_queue_depth`, `macvault_last_used_queue_depth` | gauges | |
//! | `macvault_queue_dropped_total` | counter | `queue` (`audit`, `last_used`) |
//!
//! Cost: what is counted as it happens is atomics, resolved once at start where the
//! verify fast path needs them (its statuses, its decisions, its latency histogram, which
//! is ours because prometheus-client's takes a lock per observation); the router's
//! requests go through a `Family` (a read lock and a hash of the template). Whatever
//! can be read when scraped is (queues, the feed, the writer, limiter refusals, reveals).
//! `benches/endpoint.rs` measures the verify path with and without.

use std::fmt::Write as _;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
    MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tower::Service as _;

use super::{ApiError, AppState};
use crate::authority::{AuthError, Authority};
use crate::discharge::{DISCHARGE_PATH, Discharger};
use crate::limits::Limits;
use crate::secrets::Secrets;
use crate::token::FailureClass;

/// The path the metrics listener answers.
pub const PATH: &str = "/metrics";
/// The OpenMetrics text format, for a scraper that asks for it.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The Prometheus text format (0.0.4), otherwise.
const PROMETHEUS_TEXT: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
/// Most connections the metrics listener serves at once (scrapers are few).
const MAX_SCRAPERS: usize = 16;
/// How long a scraper may take to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// The route label of a request no route matched.
const OTHER: &str = "other";
/// The route label of a discharge request (at any third party's location).
const DISCHARGE: &str = "{location}/.well-known/macvault/3p";
/// The route label of the keys a location publishes (the set, or one key).
const PUBLISHED_KEYS: &str = "{location}/.well-known/macvault/3p/keys";
/// The verify endpoint's route label.
const VERIFY: &str = "/v1/verify";

/// Statuses `/v1/verify` answers, counted without a lookup; any other goes through the
/// family.
const VERIFY_STATUSES: [u16; 10] = [200, 400, 401, 405, 408, 413, 415, 429, 500, 503];

/// Upper bounds of the verify latency buckets, in nanoseconds (the endpoint's own work
/// is about 4 µs; over loopback a request takes tens of µs).
const LATENCY_BOUNDS_NS: [u64; 14] = [
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    50_000_000,
    250_000_000,
    1_000_000_000,
];

/// What a `/v1/verify` decided, for `macvault_verify_decisions_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The token verified and the access, if one was asked, is allowed.
    Allowed,
    /// The token verified and its caveats deny the access.
    Denied,
    /// The token was not accepted, for this reason.
    Refused(FailureClass),
    /// The node is too far behind the change feed to decide (503 `stale`).
    Stale,
}

/// Each decision's (outcome, class) labels, by [`Decision::index`].
const DECISIONS: [(&str, &str); 10] = [
    ("allowed", "none"),
    ("denied", "none"),
    ("refused", "malformed"),
    ("refused", "unknown_key"),
    ("refused", "bad_signature"),
    ("refused", "missing_discharge"),
    ("refused", "expired"),
    ("refused", "revoked"),
    ("refused", "key_retired"),
    ("refused", "stale"),
];

impl Decision {
    /// Its place in [`DECISIONS`].
    fn index(self) -> usize {
        match self {
            Decision::Allowed => 0,
            Decision::Denied => 1,
            Decision::Refused(class) => match class {
                FailureClass::Malformed => 2,
                FailureClass::UnknownKey => 3,
                FailureClass::BadSignature => 4,
                FailureClass::MissingDischarge => 5,
                FailureClass::Expired => 6,
                FailureClass::Revoked => 7,
                FailureClass::KeyRetired => 8,
            },
            Decision::Stale => 9,
        }
    }

    /// The decision behind a refusal of the authority, if it is one.
    pub(super) fn of_refusal(e: &AuthError) -> Decision {
        match e {
            AuthError::Unauthenticated(class) => Decision::Refused(*class),
            AuthError::MissingDischarge { .. } => Decision::Refused(FailureClass::MissingDischarge),
            AuthError::Stale { .. } => Decision::Stale,
        }
    }
}

/// A route label: a template the router matched, or one of the fixed names above.
#[derive(Debug, Clone)]
enum Route {
    Template(MatchedPath),
    Fixed(&'static str),
}

impl Route {
    fn as_str(&self) -> &str {
        match self {
            Route::Template(t) => t.as_str(),
            Route::Fixed(f) => f,
        }
    }

    /// The route of a request: its template, or for a path no route matched what the
    /// fallback serves there (never the path itself: it holds names).
    fn of(req: &Request) -> Route {
        if let Some(t) = req.extensions().get::<MatchedPath>() {
            return Route::Template(t.clone());
        }
        let path = req.uri().path();
        if path.ends_with(DISCHARGE_PATH) {
            Route::Fixed(DISCHARGE)
        } else if super::third_parties::is_published_keys(path) {
            Route::Fixed(PUBLISHED_KEYS)
        } else {
            Route::Fixed(OTHER)
        }
    }
}

impl PartialEq for Route {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Route {}

impl Hash for Route {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl EncodeLabelValue for Route {
    /// The template with its parameters as `:name` (`/v1/orgs/:org`), as written when
    /// scraped: a `}` inside a label value is valid, but simple parsers of the format
    /// (prometheus-parse among them) end the label set at the first one.
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        for (i, part) in self.as_str().split('{').enumerate() {
            if i > 0 {
                encoder.write_char(':')?;
            }
            encoder.write_str(&part.replace('}', ""))?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    route: Route,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DecisionLabels {
    outcome: &'static str,
    class: &'static str,
}

/// A latency histogram of atomics: an observation is two relaxed adds, no lock.
#[derive(Debug, Default)]
struct Latency {
    /// Observations per bucket (not cumulative); the last is past every bound.
    buckets: [AtomicU64; LATENCY_BOUNDS_NS.len() + 1],
    sum_ns: AtomicU64,
}

impl Latency {
    fn observe(&self, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let i = LATENCY_BOUNDS_NS.partition_point(|bound| *bound < ns);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }
}

impl TypedMetric for Latency {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Latency {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> std::fmt::Result {
        let mut buckets = [(f64::INFINITY, 0u64); LATENCY_BOUNDS_NS.len() + 1];
        for (i, (bound, n)) in buckets.iter_mut().enumerate() {
            if let Some(ns) = LATENCY_BOUNDS_NS.get(i) {
                *bound = *ns as f64 / 1e9;
            }
            *n = self.buckets[i].load(Ordering::Relaxed);
        }
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// The shared [`Latency`], as a registered metric.
#[derive(Debug, Clone, Default)]
struct SharedLatency(Arc<Latency>);

impl EncodeMetric for SharedLatency {
    fn encode(&self, encoder: MetricEncoder<'_>) -> std::fmt::Result {
        self.0.encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        Latency::TYPE
    }
}

/// A node's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    /// `requests` of `/v1/verify` by [`VERIFY_STATUSES`], resolved at start.
    verify_statuses: [Counter; VERIFY_STATUSES.len()],
    /// By [`Decision::index`], resolved at start.
    decisions: [Counter; DECISIONS.len()],
    verify_latency: Arc<Latency>,
    connections: Gauge,
}

impl Metrics {
    /// Metrics of the node serving `state`; what is read when scraped is read from its
    /// authority, limits, secrets store and discharger.
    pub fn new(state: &AppState) -> Self {
        Self::build(Some(Sampled {
            authority: state.authority.clone(),
            limits: state.limits.clone(),
            secrets: state.secrets.clone(),
            discharger: state.discharger.clone(),
        }))
    }

    /// The metrics counted as things happen, without those read when scraped (for
    /// `benches/endpoint.rs`).
    pub fn detached() -> Self {
        Self::build(None)
    }

    fn build(sampled: Option<Sampled>) -> Self {
        let mut registry = Registry::with_prefix("macvault");
        let requests = Family::<RequestLabels, Counter>::default();
        let verify_statuses = VERIFY_STATUSES.map(|status| {
            requests.get_or_create_owned(&RequestLabels {
                route: Route::Fixed(VERIFY),
                status,
            })
        });
        registry.register(
            "http_requests",
            "Requests answered, by route template and status",
            requests.clone(),
        );
        let family = Family::<DecisionLabels, Counter>::default();
        let decisions = DECISIONS
            .map(|(outcome, class)| family.get_or_create_owned(&DecisionLabels { outcome, class }));
        registry.register(
            "verify_decisions",
            "POST /v1/verify decisions, by outcome and, for a refused token, failure class",
            family,
        );
        let latency = SharedLatency::default();
        registry.register(
            "verify_duration_seconds",
            "Time to answer POST /v1/verify, from its head to its answer",
            latency.clone(),
        );
        let connections = Gauge::default();
        registry.register(
            "open_connections",
            "Connections open on the API listener",
            connections.clone(),
        );
        if let Some(sampled) = sampled {
            registry.register_collector(Box::new(sampled));
        }
        Metrics {
            registry,
            requests,
            verify_statuses,
            decisions,
            verify_latency: latency.0,
            connections,
        }
    }

    /// Counts one answer of the router.
    fn request(&self, route: Route, status: StatusCode) {
        self.requests
            .get_or_create(&RequestLabels {
                route,
                status: status.as_u16(),
            })
            .inc();
    }

    /// Counts one answer of `/v1/verify` begun at `started`: its status, its decision
    /// (none for a request that never reached one: a bad body, a wrong method) and how
    /// long it took. No lock and no allocation for the statuses it usually answers.
    pub fn verify_answered(
        &self,
        started: Instant,
        status: StatusCode,
        decision: Option<Decision>,
    ) {
        self.verify_latency.observe(started.elapsed());
        if let Some(d) = decision {
            self.decisions[d.index()].inc();
        }
        let code = status.as_u16();
        match VERIFY_STATUSES.iter().position(|s| *s == code) {
            Some(i) => {
                self.verify_statuses[i].inc();
            }
            None => self.request(Route::Fixed(VERIFY), status),
        }
    }

    /// Counts a connection open until the guard is dropped.
    pub(super) fn connection(&self) -> OpenConnection {
        self.connections.inc();
        OpenConnection(self.connections.clone())
    }

    /// The metrics in the Prometheus text format, or OpenMetrics if `openmetrics`.
    pub fn encode(&self, openmetrics: bool) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(8 * 1024);
        if openmetrics {
            prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        }
        Ok(out)
    }
}

/// One open connection (see [`Metrics::connection`]).
#[derive(Debug)]
pub(super) struct OpenConnection(Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Middleware on the router: counts each answer by route template and status.
pub(super) async fn count_requests(
    State(metrics): State<Arc<Metrics>>,
    req: Request,
    next: Next,
) -> Response {
    let route = Route::of(&req);
    let response = next.run(req).await;
    metrics.request(route, response.status());
    response
}

/// What is read when scraped.
struct Sampled {
    authority: Arc<Authority>,
    limits: Arc<Limits>,
    secrets: Arc<Secrets>,
    discharger: Arc<Discharger>,
}

impl std::fmt::Debug for Sampled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sampled").finish_non_exhaustive()
    }
}

/// Writes one metric of `kind` without labels.
fn single(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    metric: &impl EncodeMetric,
) -> std::fmt::Result {
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// Writes a counter with one label, a value for each of `values`.
fn labelled(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    label: &'static str,
    values: &[(&'static str, u64)],
) -> std::fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, n) in values {
        let labels = [(label, *value)];
        ConstCounter::new(*n).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for Sampled {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let ready = self.authority.readiness();
        let flush = self.authority.flush_health();
        let refused = self.limits.refusals();
        let e = &mut encoder;
        single(
            e,
            "feed_position",
            "The last change-feed entry this node applied",
            &ConstGauge::new(i64::try_from(ready.position).unwrap_or(i64::MAX)),
        )?;
        single(
            e,
            "feed_lag_seconds",
            "Time since this node last caught up with the change feed",
            &ConstGauge::new(ready.lag.as_secs_f64()),
        )?;
        single(
            e,
            "flush_lag_seconds",
            "Time since the background writer of last-used times and events last succeeded",
            &ConstGauge::new(flush.lag.as_secs_f64()),
        )?;
        single(
            e,
            "flush_errors",
            "Background writes of last-used times and events that failed (and were queued again)",
            &ConstCounter::new(flush.errors),
        )?;
        let (uses, events) = ready.queued;
        single(
            e,
            "audit_queue_depth",
            "Audit events (denials) waiting for the background writer",
            &ConstGauge::new(i64::try_from(events).unwrap_or(i64::MAX)),
        )?;
        single(
            e,
            "last_used_queue_depth",
            "Tokens whose last use waits for the background writer",
            &ConstGauge::new(i64::try_from(uses).unwrap_or(i64::MAX)),
        )?;
        let (dropped_uses, dropped_events) = ready.dropped;
        labelled(
            e,
            "queue_dropped",
            "Entries dropped because the background writer's queue was full",
            "queue",
            &[("audit", dropped_events), ("last_used", dropped_uses)],
        )?;
        labelled(
            e,
            "rate_limited",
            "Requests answered 429 by a rate limit: failures per address or per token, \
             discharges per address",
            "limit",
            &[
                ("address", refused.address),
                ("token", refused.token),
                ("discharge", self.discharger.refused()),
            ],
        )?;
        labelled(
            e,
            "quota_refusals",
            "Requests answered 429 because the token's quota was spent",
            "quota",
            &[("reveal", refused.reveals), ("mint", refused.mints)],
        )?;
        single(
            e,
            "reveals",
            "Reveals answered with values",
            &ConstCounter::new(self.secrets.reveals()),
        )
    }
}

/// Whether the scraper asked for OpenMetrics.
fn wants_openmetrics(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"))
}

async fn scrape(State(metrics): State<Arc<Metrics>>, headers: HeaderMap) -> Response {
    let openmetrics = wants_openmetrics(&headers);
    match metrics.encode(openmetrics) {
        Ok(text) => {
            let kind = if openmetrics {
                OPENMETRICS
            } else {
                PROMETHEUS_TEXT
            };
            ([(header::CONTENT_TYPE, kind)], text).into_response()
        }
        Err(_) => ApiError::internal().into_response(),
    }
}

/// The metrics listener's router: `GET /metrics`, 405 for another method, 404 elsewhere.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route(PATH, get(scrape))
        .fallback(super::health::not_found)
        .method_not_allowed_fallback(super::health::method_not_allowed)
        .with_state(metrics)
}

/// Serves [`router`] on `listener` until `shutdown` completes: HTTP/1, at most
/// [`MAX_SCRAPERS`] connections, a request head within [`HEAD_TIMEOUT`].
pub async fn serve_metrics(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = router(metrics);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(2 * super::MAX_HEAD);
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_SCRAPERS));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.map_err(std::io::Error::other)?,
            () = &mut shutdown => return Ok(()),
        };
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let mut router = router.clone();
            async move { router.call(req.map(Body::new)).await }
        });
        let http = http.clone();
        tokio::spawn(async move {
            if let Err(e) = http.serve_connection(TokioIo::new(tcp), service).await {
                tracing::debug!(error = %e, "metrics connection ended");
            }
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_decision_has_its_own_labels() {
        let all = [
            Decision::Allowed,
            Decision::Denied,
            Decision::Refused(FailureClass::Malformed),
            Decision::Refused(FailureClass::UnknownKey),
            Decision::Refused(FailureClass::BadSignature),
            Decision::Refused(FailureClass::MissingDischarge),
            Decision::Refused(FailureClass::Expired),
            Decision::Refused(FailureClass::Revoked),
            Decision::Refused(FailureClass::KeyRetired),
            Decision::Stale,
        ];
        let mut seen: Vec<usize> = all.iter().map(|d| d.index()).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), DECISIONS.len());
        for d in all {
            if let Decision::Refused(class) = d {
                assert_eq!(DECISIONS[d.index()], ("refused", class.code()));
            }
        }
    }

    /// `metrics` scraped and read back by prometheus-parse: name → value.
    fn scraped(metrics: &Metrics) -> std::collections::HashMap<String, f64> {
        let text = metrics.encode(false).unwrap();
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())));
        scrape
            .unwrap()
            .samples
            .into_iter()
            .filter_map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => Some((s.metric, v)),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn the_writer_s_queues_are_read_when_scraped() {
        let dir = tempfile::tempdir().unwrap();
        let opened = Authority::open(dir.path()).await.unwrap();
        let op = std::fs::read_to_string(opened.operator_token.unwrap()).unwrap();
        let authority = opened.authority;
        let state = AppState::new(authority.clone(), crate::secrets::Options::default());
        let metrics = Metrics::new(&state);
        let who = authority
            .authenticate(op.trim(), crate::authority::Client::default())
            .await
            .unwrap();
        let refused = crate::authority::Refused::Rule("a test");
        authority.queue_denial(&who, 0, refused, || "a test denial".into());
        let m = scraped(&metrics);
        assert_eq!(m["macvault_audit_queue_depth"], 1.0);
        assert_eq!(m["macvault_last_used_queue_depth"], 1.0);
        authority.flush().await.unwrap();
        let m = scraped(&metrics);
        assert_eq!(m["macvault_audit_queue_depth"], 0.0);
        assert_eq!(m["macvault_last_used_queue_depth"], 0.0);
        assert_eq!(m["macvault_flush_errors_total"], 0.0);
        assert!(m["macvault_flush_lag_seconds"] < 60.0, "{m:?}");
    }

    #[test]
    fn verify_answers_move_their_status_decision_and_histogram() {
        let metrics = Metrics::detached();
        let started = Instant::now();
        metrics.verify_answered(started, StatusCode::OK, Some(Decision::Allowed));
        metrics.verify_answered(
            started,
            StatusCode::UNAUTHORIZED,
            Some(Decision::Refused(FailureClass::Expired)),
        );
        // A status outside the resolved set goes through the family.
        metrics.verify_answered(started, StatusCode::IM_A_TEAPOT, None);
        let text = metrics.encode(false).unwrap();
        for line in [
            r#"macvault_http_requests_total{route="/v1/verify",status="200"} 1"#,
            r#"macvault_http_requests_total{route="/v1/verify",status="401"} 1"#,
            r#"macvault_http_requests_total{route="/v1/verify",status="418"} 1"#,
            r#"macvault_verify_decisions_total{outcome="allowed",class="none"} 1"#,
            r#"macvault_verify_decisions_total{outcome="refused",class="expired"} 1"#,
            r#"macvault_verify_decisions_total{outcome="denied",class="none"} 0"#,
            r#"macvault_verify_duration_seconds_bucket{le="+Inf"} 3"#,
            "macvault_verify_duration_seconds_count 3",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
        }
        assert_eq!(
            scraped(&metrics)["macvault_verify_duration_seconds_count"],
            3.0
        );
    }

    #[test]
    fn latency_lands_in_the_first_bucket_whose_bound_it_does_not_pass() {
        let l = Latency::default();
        for ns in [1, 5_000, 5_001, 2_000_000_000] {
            l.observe(Duration::from_nanos(ns));
        }
        let counts: Vec<u64> = l
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        assert_eq!(counts[0], 2, "1 ns and exactly 5 µs");
        assert_eq!(counts[1], 1, "5.001 µs");
        assert_eq!(counts[LATENCY_BOUNDS_NS.len()], 1, "past every bound");
        assert_eq!(
            l.sum_ns.load(Ordering::Relaxed),
            1 + 5_000 + 5_001 + 2_000_000_000
        );
    }
}
