//! The work of one `POST /v1/verify` without the network: parse the JSON body, verify
//! the 5-caveat token against a real authority (redb store in a temp dir, root key
//! unwrapped in memory), decide the access, record the use, serialize the answer.
//! `benches/load.sh` measures the same request over HTTP; the difference between the
//! two is HTTP and the kernel.
//!
//! Metrics' cost on that path is measured in the same run: the same request counted as
//! the server counts it with `--metrics-listen` (clock read, latency histogram, decision
//! and status counters) and not counted at all, as without.
//!
//! `cargo bench --bench endpoint`

// Set-up failures end the bench with their reason, as in tests.
#![allow(clippy::expect_used)]

use std::hint::black_box;

use axum::http::StatusCode;
use criterion::{Criterion, criterion_group, criterion_main};
use macvault::authority::{Authority, Client, ClientRef, MintSpec, Setup};
use macvault::caveats::Caveat;
use macvault::http::{Decision, Metrics, verify_body, verify_body_metered};
use macvault::limits::{Charged, LimitOptions, Limits};
use macvault::model::TokenKind;
use macvault::token::{TokenId, attenuate};

async fn setup(dir: &std::path::Path) -> (std::sync::Arc<Authority>, String) {
    // No feed follower runs here: a staleness bound past the bench's length keeps the
    // node from refusing (`stale`) half way through.
    let mut setup = Setup::dir(dir);
    setup.config.max_staleness = std::time::Duration::from_secs(24 * 3600);
    let opened = Authority::open_with(&setup).await.expect("open authority");
    let authority = opened.authority;
    let path = opened
        .operator_token
        .expect("first start writes the operator token");
    let operator = std::fs::read_to_string(path).expect("read operator.token");
    let op = authority
        .authenticate(operator.trim(), Client::default())
        .await
        .expect("operator token verifies");
    let org = authority
        .create_org(&op, "acme", None)
        .await
        .expect("create org");
    let org = authority
        .authenticate(org.token.expose(), Client::default())
        .await
        .expect("org token verifies");
    authority
        .create_app(&org, "acme", "web")
        .await
        .expect("create app");
    let deploy = authority
        .mint(&org, "acme", &MintSpec::new(TokenKind::Deploy).app("web"))
        .await
        .expect("mint deploy");
    let narrow = [
        Caveat::parse("actions = r").expect("caveat"),
        Caveat::parse("secret = DB_*").expect("caveat"),
    ];
    let token = attenuate(deploy.token.expose(), &narrow).expect("attenuate");
    let body = format!(
        r#"{{"token": "{token}", "access": {{"org":"acme","app":"web","resource":"secrets","action":"read","secret":"DB_URL"}}}}"#
    );
    (authority, body)
}

fn bench(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (authority, body) = rt.block_on(setup(&tmp.path().join("data")));
    let client = ClientRef {
        ip: Some([127, 0, 0, 1].into()),
        user_agent: Some("bench/1"),
    };
    let answer = verify_body(&authority, body.as_bytes(), client).expect("verifies");
    let answer = String::from_utf8(answer).expect("UTF-8");
    assert!(answer.contains(r#""allowed":true"#), "{answer}");
    assert_eq!(
        answer.matches(" = ").count() + answer.matches(" < ").count(),
        5,
        "{answer}"
    );
    c.bench_function("endpoint/verify_request_5_caveats", |b| {
        b.iter(|| {
            verify_body(&authority, black_box(body.as_bytes()), client).map_or(0, |a| a.len())
        })
    });
    // Metrics off (no listener: nothing counted) and on, alternately in one run.
    let metrics = Metrics::detached();
    for (name, on) in [
        ("endpoint/verify_request_metrics_off", None),
        ("endpoint/verify_request_metrics_on", Some(&metrics)),
    ] {
        c.bench_function(name, |b| {
            b.iter(|| {
                verify_body_metered(&authority, black_box(body.as_bytes()), client, on)
                    .map_or(0, |a| a.len())
            })
        });
    }
    // What metrics add, alone: small beside the run-to-run noise of the whole request.
    let recorder = Metrics::detached();
    c.bench_function("endpoint/metrics_recording_alone", |b| {
        b.iter(|| {
            recorder.verify_answered(
                std::time::Instant::now(),
                black_box(StatusCode::OK),
                black_box(Some(Decision::Allowed)),
            )
        })
    });
    // Every request measured was allowed (none refused, e.g. as stale).
    let counted = metrics.encode(false).expect("encodes");
    let decided = |labels: &str| {
        let line = format!("macvault_verify_decisions_total{{{labels}}} ");
        counted
            .lines()
            .find_map(|l| l.strip_prefix(line.as_str()))
            .and_then(|n| n.parse::<u64>().ok())
            .expect("a decision count")
    };
    let total: u64 = ["stale", "malformed", "bad_signature", "expired"]
        .iter()
        .map(|class| decided(&format!(r#"outcome="refused",class="{class}""#)))
        .sum();
    assert_eq!(total, 0, "{counted}");
    assert!(
        decided(r#"outcome="allowed",class="none""#) > 0,
        "{counted}"
    );
    // The limiter's cost, beside the same work without it: an access the caveats deny
    // (`write`, where the token may only read) is the one /v1/verify charges (to the
    // token); allowed requests never reach the limiter. The burst is out of reach, so
    // every charge is the steady path (look up the key, update its cell).
    let denied = body.replace(r#""action":"read""#, r#""action":"write""#);
    let answer = verify_body(&authority, denied.as_bytes(), client).expect("answers");
    assert!(String::from_utf8_lossy(&answer).contains(r#""allowed":false"#));
    let limits = Limits::new(LimitOptions {
        failures: "1000000000/s".parse().expect("rate"),
        failure_burst: std::num::NonZeroU32::MAX,
        ..LimitOptions::default()
    });
    let token = Charged::Token(TokenId([7; 16]));
    c.bench_function("endpoint/denied_request_without_limiter", |b| {
        b.iter(|| {
            verify_body(&authority, black_box(denied.as_bytes()), client).map_or(0, |a| a.len())
        })
    });
    c.bench_function("endpoint/denied_request_with_limiter", |b| {
        b.iter(|| {
            let n = verify_body(&authority, black_box(denied.as_bytes()), client)
                .map_or(0, |a| a.len());
            limits
                .charge_failure(black_box(token))
                .map_or(n, |()| n + 1)
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
