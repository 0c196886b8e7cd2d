//! HTTP edge cases that need a raw socket: bodies that arrive late, in pieces, chunked
//! or never; methods the verify endpoint does not take. The verify endpoint is served
//! beside the router (src/http/verify.rs), so each guarantee of the router's layers is
//! checked here for it, and the timeout also for a routed endpoint.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Server, acme};
use macvault::http::BODY_PENDING;

/// Starts a server with a short request timeout and an org; returns it and the org token.
fn server(tmp: &tempfile::TempDir) -> (Server, String) {
    server_with_timeout(tmp, "1s")
}

fn server_with_timeout(tmp: &tempfile::TempDir, timeout: &str) -> (Server, String) {
    // The org is made first without the short timeout, which would otherwise cut a set-up
    // request that a loaded machine answers slowly.
    let data = tmp.path().join("data");
    let srv = Server::start(&data);
    let (_, org) = acme(&srv);
    srv.stop();
    (
        Server::start_with(&data, &["--request-timeout", timeout]),
        org,
    )
}

fn connect(srv: &Server) -> TcpStream {
    let addr = srv.url().trim_start_matches("http://");
    let tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    tcp
}

/// Reads one whole answer (the request said `Connection: close`): status, headers, body.
fn answer(mut tcp: TcpStream) -> (u16, String, String) {
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).expect("read answer");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete answer");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    (status, head.to_ascii_lowercase(), body.to_owned())
}

fn head(method: &str, path: &str, extra: &str) -> String {
    format!("{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n{extra}\r\n")
}

fn verify_body(token: &str) -> String {
    json!({"token": token, "access": {"org": "acme", "resource": "tokens", "action": "read"}})
        .to_string()
}

#[test]
fn http_edges_of_the_verify_endpoint() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (srv, org) = server(&tmp);
    let body = verify_body(&org);

    // Chunked, within the limit: 200.
    let mut tcp = connect(&srv);
    let req = head(
        "POST",
        "/v1/verify",
        "content-type: application/json\r\ntransfer-encoding: chunked\r\n",
    );
    let chunked = format!("{req}{:x}\r\n{body}\r\n0\r\n\r\n", body.len());
    tcp.write_all(chunked.as_bytes()).expect("write");
    let (st, _, text) = answer(tcp);
    assert_eq!(st, 200, "chunked body: {text}");

    // Chunked past 64 KiB (no content-length to refuse it early): 413.
    let mut tcp = connect(&srv);
    let mut req = head(
        "POST",
        "/v1/verify",
        "content-type: application/json\r\ntransfer-encoding: chunked\r\n",
    );
    let chunk = "A".repeat(16 * 1024);
    for _ in 0..5 {
        req.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    req.push_str("0\r\n\r\n");
    // The server may answer and close before it has read everything.
    let _ = tcp.write_all(req.as_bytes());
    let (st, _, text) = answer(tcp);
    assert_eq!(st, 413, "chunked body over the limit: {text}");
    assert!(text.contains("\"too_large\""), "{text}");

    // A body that never comes: 408 after the request timeout, as JSON.
    let mut tcp = connect(&srv);
    let req = head(
        "POST",
        "/v1/verify",
        "content-type: application/json\r\ncontent-length: 500\r\n",
    );
    tcp.write_all(format!("{req}{{\"token\":").as_bytes())
        .expect("write");
    let started = Instant::now();
    let (st, _, text) = answer(tcp);
    assert_eq!(st, 408, "stalled body: {text}");
    assert!(text.contains("\"timeout\""), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the 1 s timeout took {:?}",
        started.elapsed()
    );

    // Another method: 405 naming the one it takes.
    let tcp_get = {
        let mut tcp = connect(&srv);
        tcp.write_all(head("GET", "/v1/verify", "").as_bytes())
            .expect("write");
        tcp
    };
    let (st, headers, text) = answer(tcp_get);
    assert_eq!(st, 405, "GET /v1/verify: {text}");
    assert!(headers.contains("\r\nallow: post"), "{headers}");
    assert!(text.contains("\"method_not_allowed\""), "{text}");

    // Not JSON by its content type: 400, never parsed.
    let mut tcp = connect(&srv);
    let req = head(
        "POST",
        "/v1/verify",
        &format!(
            "content-type: text/plain\r\ncontent-length: {}\r\n",
            body.len()
        ),
    );
    tcp.write_all(format!("{req}{body}").as_bytes())
        .expect("write");
    let (st, _, text) = answer(tcp);
    assert_eq!(st, 400, "text/plain: {text}");

    // Only the exact path is the verify endpoint.
    let mut tcp = connect(&srv);
    tcp.write_all(head("POST", "/v1/verify/", "content-length: 0\r\n").as_bytes())
        .expect("write");
    let (st, _, text) = answer(tcp);
    assert_eq!(st, 404, "POST /v1/verify/: {text}");
}

#[test]
fn http_a_verify_body_in_two_pieces_is_read_whole() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // A long timeout: the second piece is sent only once the server has said it waits.
    let (srv, org) = server_with_timeout(&tmp, "60s");
    let body = verify_body(&org);
    let mut tcp = connect(&srv);
    let (first, rest) = body.split_at(body.len() / 2);
    let req = head(
        "POST",
        "/v1/verify",
        &format!(
            "content-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        ),
    );
    let waiting = srv.log_count(BODY_PENDING);
    tcp.write_all(format!("{req}{first}").as_bytes())
        .expect("write");
    srv.await_log(BODY_PENDING, waiting);
    tcp.write_all(rest.as_bytes()).expect("write");
    let (st, _, text) = answer(tcp);
    assert_eq!(st, 200, "late second piece: {text}");
    let v: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(v["allowed"], json!(true), "{v}");
}

#[test]
fn http_a_stalled_body_times_out_on_routed_endpoints_too() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (srv, org) = server(&tmp);
    let mut tcp = connect(&srv);
    let req = head(
        "POST",
        "/v1/orgs/acme/tokens",
        &format!(
            "authorization: Bearer {org}\r\ncontent-type: application/json\r\ncontent-length: 200\r\n"
        ),
    );
    tcp.write_all(format!("{req}{{\"kind\":").as_bytes())
        .expect("write");
    let (st, _, text) = answer(tcp);
    assert_eq!(st, 408, "stalled mint body: {text}");
    assert!(text.contains("\"timeout\""), "{text}");
}

/// `GET /v1/orgs/acme` presenting `token` with an `X-Forwarded-For` header.
fn forwarded(srv: &Server, token: &str, xff: &str) -> u16 {
    let auth = format!("Bearer {token}");
    srv.raw(
        "GET",
        "/v1/orgs/acme",
        &[("authorization", &auth), ("x-forwarded-for", xff)],
        None,
    )
    .0
}

#[test]
fn the_client_address_comes_from_a_trusted_proxy_only() {
    let tmp = tempfile::tempdir().unwrap();
    // Loopback is the load balancer here: its X-Forwarded-For is believed.
    let srv = Server::start_with(
        &tmp.path().join("data"),
        &["--trusted-proxy", "127.0.0.0/8"],
    );
    let (_, org) = acme(&srv);
    let narrow = srv
        .cli_ok(&org, &["tokens", "attenuate", "--ip", "10.9.9.0/24"])
        .trim()
        .to_owned();
    assert_eq!(
        forwarded(&srv, &narrow, "10.9.9.9"),
        200,
        "the client behind the proxy"
    );
    assert_eq!(
        forwarded(&srv, &narrow, "10.9.9.9, 127.0.0.1"),
        200,
        "our own proxies on the right are skipped"
    );
    assert_eq!(forwarded(&srv, &narrow, "11.0.0.1"), 403, "another client");
    assert_eq!(
        forwarded(&srv, &narrow, "10.9.9.9, 11.0.0.1"),
        403,
        "a forged hop to the left of the real client is ignored"
    );
    srv.stop();
    // Without --trusted-proxy the header is the client's say-so, and ignored.
    let srv = Server::start(&tmp.path().join("data"));
    assert_eq!(forwarded(&srv, &narrow, "10.9.9.9"), 403);
    srv.stop();
}
