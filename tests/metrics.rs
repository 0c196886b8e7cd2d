//! `serve --metrics-listen`: `GET /metrics` on a listener of its own, read by an
//! independent parser of the Prometheus text format (prometheus-parse). Each test takes
//! a scrape, makes requests, scrapes again and checks that the counters moved by exactly
//! what the requests did; no label names an org, app, token or client.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use prometheus_parse::{Scrape, Value};
use serde_json::{Value as Json, json};

use crate::support::pg::{Proxy, TestDb};
use crate::support::{BIN, Server, acme, eventually, http_client, s};

/// Generous: a debug build on a busy two-core machine.
const PATIENCE: Duration = Duration::from_secs(60);

/// A server with metrics on, and a client for its metrics listener.
struct Node {
    srv: Server,
    /// `http://127.0.0.1:PORT/metrics`.
    metrics: String,
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    _tmp: tempfile::TempDir,
}

impl Node {
    fn start(more: &[&str]) -> Node {
        let tmp = tempfile::tempdir().unwrap();
        let mut args = vec!["--metrics-listen", "127.0.0.1:0"];
        args.extend_from_slice(more);
        let srv = Server::start_with(&tmp.path().join("data"), &args);
        Self::over(srv, tmp)
    }

    fn over(srv: Server, tmp: tempfile::TempDir) -> Node {
        let out = srv.stdout();
        let metrics = out
            .lines()
            .find_map(|l| l.strip_prefix("macvault metrics at "))
            .unwrap_or_else(|| panic!("no metrics address in:\n{out}"))
            .trim()
            .to_owned();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Node {
            srv,
            metrics,
            rt,
            http: http_client(Duration::from_secs(30)),
            _tmp: tmp,
        }
    }

    /// `method path` on the metrics listener with `accept`: (status, content type, body).
    fn ask(&self, method: &str, path: &str, accept: Option<&str>) -> (u16, String, String) {
        let base = self.metrics.trim_end_matches("/metrics");
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(method, format!("{base}{path}"));
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        self.rt.block_on(async {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            let kind = res
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            (status, kind, res.text().await.unwrap())
        })
    }

    fn scrape(&self) -> Metrics {
        let (status, _, text) = self.ask("GET", "/metrics", None);
        assert_eq!(status, 200, "{text}");
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        Metrics(Scrape::parse(lines).unwrap(), text)
    }
}

/// One scrape, parsed.
struct Metrics(Scrape, String);

impl Metrics {
    /// The value of `name` with `labels` (summed over any other labels; 0 if absent).
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match &s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
                Value::Histogram(_) | Value::Summary(_) => panic!("{name} is not a number"),
            })
            .sum()
    }

    /// Whether a sample of `name` is there at all, with its type as declared.
    fn typed(&self, name: &str) -> Option<&'static str> {
        self.0
            .samples
            .iter()
            .find(|s| s.metric == name)
            .map(|s| match s.value {
                Value::Counter(_) => "counter",
                Value::Gauge(_) => "gauge",
                Value::Histogram(_) => "histogram",
                Value::Summary(_) => "summary",
                Value::Untyped(_) => "untyped",
            })
    }

    /// The cumulative count of `name`'s histogram in its `+Inf` bucket.
    fn histogram_total(&self, name: &str) -> f64 {
        let sample = self.0.samples.iter().find(|s| s.metric == name);
        match sample.map(|s| &s.value) {
            Some(Value::Histogram(buckets)) => buckets
                .iter()
                .find(|b| b.less_than.is_infinite())
                .map(|b| b.count)
                .unwrap(),
            other => panic!("{name} is not a histogram: {other:?}"),
        }
    }

    /// Every label value of every sample.
    fn label_values(&self) -> Vec<String> {
        self.0
            .samples
            .iter()
            .flat_map(|s| s.labels.values().cloned())
            .collect()
    }
}

/// How much `name` with `labels` moved from `before` to `after`.
fn moved(before: &Metrics, after: &Metrics, name: &str, labels: &[(&str, &str)]) -> f64 {
    after.get(name, labels) - before.get(name, labels)
}

/// Mints a token of `kind` (in app `web` for app-bound kinds) with the org token:
/// (token, id, fingerprint).
fn mint(srv: &Server, org: &str, kind: &str) -> (String, String, String) {
    let mut body = json!({ "kind": kind });
    if kind == "runtime" || kind == "deploy" {
        body["app"] = json!("web");
    }
    let (st, v) = srv.http("POST", "/v1/orgs/acme/tokens", Some(org), Some(&body));
    assert_eq!(st, 201, "{v}");
    (
        s(&v, "token").to_owned(),
        s(&v["record"], "id").to_owned(),
        s(&v["record"], "fingerprint").to_owned(),
    )
}

/// `POST /v1/verify` of `token`, asking to `action` web's secrets if given.
fn verify(srv: &Server, token: &str, action: Option<&str>) -> (u16, Json) {
    let mut body = json!({ "token": token });
    if let Some(a) = action {
        body["access"] = json!({"org": "acme", "app": "web", "resource": "secrets", "action": a});
    }
    srv.http("POST", "/v1/verify", None, Some(&body))
}

/// Asserts that no label value holds any of `names`.
fn no_label_holds(m: &Metrics, names: &[&str]) {
    for value in m.label_values() {
        for name in names.iter().filter(|n| !n.is_empty()) {
            assert!(
                !value.contains(name),
                "label value {value:?} holds {name:?}:\n{}",
                m.1
            );
        }
    }
}

#[test]
fn requests_are_counted_by_route_template_and_status_without_names() {
    let node = Node::start(&[]);
    let srv = &node.srv;
    let (_op, org) = acme(srv);
    let (runtime, id, fingerprint) = mint(srv, &org, "runtime");
    let before = node.scrape();
    let asked = [
        ("GET", "/v1/orgs/acme", Some(org.as_str()), 200),
        ("GET", "/v1/orgs/acme", None, 401),
        ("GET", "/v1/orgs/acme/apps/web/secrets", Some(&org), 200),
        ("GET", &format!("/v1/tokens/{id}"), Some(&org), 200),
        ("GET", "/v1/no/such/thing", None, 404),
        ("POST", "/v1/health", None, 405),
    ];
    for (method, path, token, want) in asked {
        let (st, v) = srv.http(method, path, token, None);
        assert_eq!(st, want, "{method} {path}: {v}");
    }
    assert_eq!(verify(srv, &runtime, None).0, 200);
    let after = node.scrape();
    let requests = "macvault_http_requests_total";
    assert_eq!(after.typed(requests), Some("counter"));
    for (route, status) in [
        ("/v1/orgs/:org", "200"),
        ("/v1/orgs/:org", "401"),
        ("/v1/orgs/:org/apps/:app/secrets", "200"),
        ("/v1/tokens/:id", "200"),
        ("other", "404"),
        ("/v1/health", "405"),
        ("/v1/verify", "200"),
    ] {
        let labels = [("route", route), ("status", status)];
        assert_eq!(
            moved(&before, &after, requests, &labels),
            1.0,
            "{route} {status}:\n{}",
            after.1
        );
    }
    // Seven requests, each counted once (the scrapes are on another listener).
    assert_eq!(moved(&before, &after, requests, &[]), 7.0);
    no_label_holds(
        &after,
        &[
            "acme",
            "web",
            &id,
            &fingerprint,
            &org,
            &runtime,
            "127.0.0.1",
            "no/such",
        ],
    );
}

#[test]
fn verify_decisions_are_counted_by_outcome_and_class_and_timed() {
    let node = Node::start(&[]);
    let srv = &node.srv;
    let (_op, org) = acme(srv);
    let (readonly, _, _) = mint(srv, &org, "readonly");
    let (revoked, revoked_id, _) = mint(srv, &org, "readonly");
    let (st, v) = srv.http(
        "POST",
        &format!("/v1/tokens/{revoked_id}/revoke"),
        Some(&org),
        None,
    );
    assert_eq!(st, 200, "{v}");
    // The readonly token with a bit flipped in its signature (the last 32 bytes; ten
    // characters from the end is clear of the base64's last, partial character).
    let forged = crate::support::forged(&readonly);
    let before = node.scrape();
    assert_eq!(verify(srv, &readonly, Some("read")).1["allowed"], true);
    assert_eq!(verify(srv, &readonly, Some("write")).1["allowed"], false);
    assert_eq!(verify(srv, &org, None).0, 200);
    let (st, v) = verify(srv, &forged, None);
    assert_eq!(
        (st, crate::support::code(&v)),
        (401, "bad_signature"),
        "{v}"
    );
    assert_eq!(verify(srv, "mvt_nonsense", None).0, 401);
    assert_eq!(verify(srv, &revoked, None).0, 401);
    // No decision: a body that is not a verify request.
    let (st, _) = srv.raw("POST", "/v1/verify", &[], Some(b"{".to_vec()));
    assert_eq!(st, 400);
    let after = node.scrape();
    let decisions = "macvault_verify_decisions_total";
    for (outcome, class, n) in [
        ("allowed", "none", 2.0),
        ("denied", "none", 1.0),
        ("refused", "bad_signature", 1.0),
        ("refused", "malformed", 1.0),
        ("refused", "revoked", 1.0),
        ("refused", "expired", 0.0),
        ("refused", "stale", 0.0),
    ] {
        let labels = [("outcome", outcome), ("class", class)];
        assert_eq!(
            moved(&before, &after, decisions, &labels),
            n,
            "{outcome}/{class}"
        );
    }
    assert_eq!(moved(&before, &after, decisions, &[]), 6.0);
    // Every answer is timed, the one that decided nothing too.
    let latency = "macvault_verify_duration_seconds";
    assert_eq!(after.typed(latency), Some("histogram"));
    assert_eq!(
        after.histogram_total(latency) - before.histogram_total(latency),
        7.0
    );
    let count = format!("{latency}_count");
    assert_eq!(moved(&before, &after, &count, &[]), 7.0);
    assert!(moved(&before, &after, &format!("{latency}_sum"), &[]) > 0.0);
    let requests = "macvault_http_requests_total";
    let verify = |status| [("route", "/v1/verify"), ("status", status)];
    assert_eq!(moved(&before, &after, requests, &verify("200")), 3.0);
    assert_eq!(moved(&before, &after, requests, &verify("401")), 3.0);
    assert_eq!(moved(&before, &after, requests, &verify("400")), 1.0);
}

/// A request from `from` (through the trusted proxy, loopback): its status.
fn from(srv: &Server, addr: &str, method: &str, path: &str, token: Option<&str>) -> u16 {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![
        ("x-forwarded-for", addr),
        ("content-type", "application/json"),
    ];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    let body = (method == "POST").then(|| b"{}".to_vec());
    srv.raw(method, path, &headers, body).0
}

#[test]
fn rate_limited_requests_and_quota_refusals_are_counted_by_limit() {
    let node = Node::start(&[
        "--trusted-proxy",
        "127.0.0.1/32",
        "--rate-burst",
        "2",
        "--rate-limit",
        "1/h",
        "--quota-mint",
        "1/h",
        "--quota-reveal",
        "1/h",
        "--discharge-limit",
        "1",
    ]);
    let srv = &node.srv;
    let (_op, org) = acme(srv);
    let (readonly, _, _) = mint(srv, &org, "readonly");
    let before = node.scrape();
    // An address's failures: two answered 401, then 429.
    let statuses: Vec<u16> = (0..4)
        .map(|_| from(srv, "203.0.113.7", "GET", "/v1/orgs/acme", Some("mvt_x")))
        .collect();
    assert_eq!(statuses, [401, 401, 429, 429]);
    // A token's denials relayed by one service: two answered, then 429.
    let denied: Vec<u16> = (0..3)
        .map(|_| verify(srv, &readonly, Some("write")).0)
        .collect();
    assert_eq!(denied, [200, 200, 429]);
    // Discharges from one address: one a minute.
    let discharge = "/3p/gha/.well-known/macvault/3p";
    let d: Vec<u16> = (0..2)
        .map(|_| from(srv, "198.51.100.4", "POST", discharge, None))
        .collect();
    assert_eq!(d[1], 429, "{d:?}");
    // The org token's quotas: one mint (acme's was made with the operator's), one reveal.
    let mint_body = json!({"kind": "readonly"});
    let mints: Vec<u16> = (0..2)
        .map(|_| {
            srv.http("POST", "/v1/orgs/acme/tokens", Some(&org), Some(&mint_body))
                .0
        })
        .collect();
    let reveals: Vec<u16> = (0..2)
        .map(|_| {
            srv.http(
                "POST",
                "/v1/orgs/acme/apps/web/secrets/reveal",
                Some(&org),
                None,
            )
            .0
        })
        .collect();
    // The readonly mint above was the org token's one mint of the hour.
    assert_eq!(mints, [429, 429]);
    assert_eq!(reveals, [200, 429]);
    let after = node.scrape();
    let limited = "macvault_rate_limited_total";
    assert_eq!(
        moved(&before, &after, limited, &[("limit", "address")]),
        2.0
    );
    assert_eq!(moved(&before, &after, limited, &[("limit", "token")]), 1.0);
    assert_eq!(
        moved(&before, &after, limited, &[("limit", "discharge")]),
        1.0
    );
    let quota = "macvault_quota_refusals_total";
    assert_eq!(moved(&before, &after, quota, &[("quota", "mint")]), 2.0);
    assert_eq!(moved(&before, &after, quota, &[("quota", "reveal")]), 1.0);
    // A discharge is counted under its fixed template, never its location.
    let requests = "macvault_http_requests_total";
    let route = ":location/.well-known/macvault/3p";
    let labels = [("route", route), ("status", "429")];
    assert_eq!(
        moved(&before, &after, requests, &labels),
        1.0,
        "{}",
        after.1
    );
    no_label_holds(&after, &["gha", "203.0.113.7", "198.51.100.4", "acme"]);
}

#[test]
fn reveals_answered_are_counted_and_refused_ones_not() {
    let node = Node::start(&[]);
    let srv = &node.srv;
    let (_op, org) = acme(srv);
    let (st, v) = srv.set_secrets(&org, "/v1/orgs/acme/apps/web/secrets", &[("A", "1")]);
    assert_eq!(st, 200, "{v}");
    let (runtime, _, _) = mint(srv, &org, "runtime");
    let (readonly, _, _) = mint(srv, &org, "readonly");
    let reveal = "/v1/orgs/acme/apps/web/secrets/reveal";
    let before = node.scrape();
    assert_eq!(srv.http("POST", reveal, Some(&runtime), None).0, 200);
    assert_eq!(srv.http("POST", reveal, Some(&runtime), None).0, 200);
    assert_eq!(srv.http("POST", reveal, Some(&readonly), None).0, 403);
    let after = node.scrape();
    assert_eq!(after.typed("macvault_reveals_total"), Some("counter"));
    assert_eq!(moved(&before, &after, "macvault_reveals_total", &[]), 2.0);
    let requests = "macvault_http_requests_total";
    let route = "/v1/orgs/:org/apps/:app/secrets/reveal";
    assert_eq!(
        moved(
            &before,
            &after,
            requests,
            &[("route", route), ("status", "403")]
        ),
        1.0
    );
}

/// A kept-alive connection to the API that has been answered once.
fn open_connection(srv: &Server) -> TcpStream {
    let mut tcp = TcpStream::connect(srv.url().trim_start_matches("http://")).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    tcp.write_all(b"GET /v1/health HTTP/1.1\r\nHost: macvault\r\n\r\n")
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(tcp.read(&mut byte).unwrap(), 1);
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200"));
    tcp
}

#[test]
fn open_connections_follow_the_api_listener() {
    let node = Node::start(&["--header-timeout", "60s"]);
    let open = |n: f64| {
        eventually(&format!("{n} open connections"), PATIENCE, || {
            (node.scrape().get("macvault_open_connections", &[]) == n).then_some(())
        })
    };
    // The harness's own requests closed their connections.
    open(0.0);
    let first = open_connection(&node.srv);
    let second = open_connection(&node.srv);
    open(2.0);
    drop(first);
    open(1.0);
    drop(second);
    open(0.0);
    assert_eq!(
        node.scrape().typed("macvault_open_connections"),
        Some("gauge")
    );
}

#[test]
fn the_feed_position_moves_with_changes_and_the_background_keeps_up() {
    let node = Node::start(&[]);
    let srv = &node.srv;
    let before = node.scrape();
    let (_op, org) = acme(srv);
    let position = |m: &Metrics| m.get("macvault_feed_position", &[]);
    // acme and its apps are feed entries: applied by the node's follower.
    let after = eventually("the feed position to move", PATIENCE, || {
        let m = node.scrape();
        (position(&m) > position(&before)).then_some(m)
    });
    for gauge in [
        "macvault_feed_position",
        "macvault_feed_lag_seconds",
        "macvault_flush_lag_seconds",
        "macvault_audit_queue_depth",
        "macvault_last_used_queue_depth",
    ] {
        assert_eq!(after.typed(gauge), Some("gauge"), "{gauge}");
    }
    // A denial and a use are queued for the background writer, which empties the queue
    // (the depth itself, caught between two flushes, is in the unit tests).
    let (readonly, _, _) = mint(srv, &org, "readonly");
    let (st, _) = srv.set_secrets(&readonly, "/v1/orgs/acme/secrets", &[("A", "1")]);
    assert_eq!(st, 403);
    eventually("the writer to empty its queues", PATIENCE, || {
        let m = node.scrape();
        (m.get("macvault_audit_queue_depth", &[]) == 0.0
            && m.get("macvault_last_used_queue_depth", &[]) == 0.0)
            .then_some(())
    });
    let (_, audit) = srv.http(
        "GET",
        "/v1/orgs/acme/audit?action=request.denied",
        Some(&org),
        None,
    );
    assert_eq!(audit["events"].as_array().unwrap().len(), 1, "{audit}");
    let m = node.scrape();
    assert_eq!(m.get("macvault_flush_errors_total", &[]), 0.0);
    assert_eq!(
        m.get("macvault_queue_dropped_total", &[("queue", "audit")]),
        0.0
    );
}

#[test]
fn flush_errors_and_lags_grow_while_the_database_is_cut_off() {
    let Some(db) = TestDb::create() else { return };
    let proxy = Proxy::start(db.addr());
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("master.key");
    let srv = Server::start_with(
        &tmp.path().join("data"),
        &[
            "--database",
            &db.url_via(proxy.addr()),
            "--master-key-file",
            key.to_str().unwrap(),
            "--metrics-listen",
            "127.0.0.1:0",
        ],
    );
    let node = Node::over(srv, tmp);
    let (_op, org) = acme(&node.srv);
    assert_eq!(node.scrape().get("macvault_flush_errors_total", &[]), 0.0);
    proxy.cut();
    // A use of the org token (verified from memory), queued for a writer that cannot
    // write.
    assert_eq!(verify(&node.srv, &org, None).0, 200);
    let cut = eventually("flushes to fail and lags to grow", PATIENCE, || {
        let m = node.scrape();
        (m.get("macvault_flush_errors_total", &[]) >= 1.0
            && m.get("macvault_flush_lag_seconds", &[]) >= 2.0
            && m.get("macvault_feed_lag_seconds", &[]) >= 2.0
            && m.get("macvault_last_used_queue_depth", &[]) >= 1.0)
            .then_some(m)
    });
    proxy.restore();
    eventually("the writer to catch up", PATIENCE, || {
        let m = node.scrape();
        (m.get("macvault_flush_lag_seconds", &[]) < cut.get("macvault_flush_lag_seconds", &[])
            && m.get("macvault_last_used_queue_depth", &[]) == 0.0)
            .then_some(())
    });
}

#[test]
fn the_metrics_listener_serves_get_metrics_only_in_either_text_format() {
    let node = Node::start(&[]);
    let (st, kind, text) = node.ask("GET", "/metrics", None);
    assert_eq!(st, 200);
    assert_eq!(kind, "text/plain; version=0.0.4; charset=utf-8");
    assert!(
        text.contains("# TYPE macvault_http_requests_total counter"),
        "{text}"
    );
    let (st, kind, text) = node.ask(
        "GET",
        "/metrics",
        Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"),
    );
    assert_eq!(st, 200);
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    assert!(text.ends_with("# EOF\n"), "{text}");
    for path in ["/", "/v1/health", "/metrics/x"] {
        assert_eq!(node.ask("GET", path, None).0, 404, "{path}");
    }
    assert_eq!(node.ask("POST", "/metrics", None).0, 405);
    // And the API listener does not serve it.
    assert_eq!(node.srv.http("GET", "/metrics", None, None).0, 404);
}

/// `macvault serve` with `args` that must fail to start: (exit code, stderr).
fn refused_start(args: &[&str]) -> (i32, String, std::path::PathBuf, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), err, data, tmp)
}

#[test]
fn a_bad_metrics_address_is_a_usage_error_and_a_busy_one_stops_the_start() {
    let (code, err, _, _) = refused_start(&["--metrics-listen", "not-an-address"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--metrics-listen"), "{err}");
    assert!(err.contains("not an address like 127.0.0.1:7070"), "{err}");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let (code, err, data, _tmp) = refused_start(&["--metrics-listen", &addr]);
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains(&format!("cannot listen for --metrics-listen on {addr}")),
        "{err}"
    );
    assert!(!data.exists(), "nothing written");
}

#[test]
fn without_metrics_listen_no_metrics_listener_is_opened() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    let out = srv.stdout();
    assert!(!out.contains("metrics"), "{out}");
    assert_eq!(srv.log_count("serving metrics"), 0);
}
