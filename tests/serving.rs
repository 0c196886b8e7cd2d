//! Serving safely: files owner-only whatever the umask and checked at every start.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use crate::support::BIN;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `macvault init --data-dir DIR` under `umask`: its exit code and what it said.
fn init(dir: &Path, umask: &str) -> (i32, String) {
    let out = Command::new("sh")
        .args(["-c", "umask \"$2\"; exec \"$0\" init --data-dir \"$1\""])
        .arg(BIN)
        .arg(dir)
        .arg(umask)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), said)
}

#[test]
fn files_are_owner_only_under_umask_000_and_checked_at_every_start() {
    let tmp = tempfile::tempdir().unwrap();
    // A directory made by the node, and one made beforehand as 0755.
    let made = tmp.path().join("made");
    let pre = tmp.path().join("pre");
    std::fs::create_dir(&pre).unwrap();
    set_mode(&pre, 0o755);
    for dir in [&made, &pre] {
        let (c, said) = init(dir, "000");
        assert_eq!(c, 0, "{said}");
        for file in ["master.key", "macvault.redb", "operator.token"] {
            assert_eq!(mode(&dir.join(file)), 0o600, "{file} in {}", dir.display());
        }
    }
    assert_eq!(mode(&made), 0o700);
    assert_eq!(
        mode(&pre),
        0o755,
        "a directory others cannot write is kept as it is"
    );
    // Every start looks again: each unsafe mode is refused, naming the file and the fix.
    let refused = |path: &Path, bad: u32, good: u32, fix: &str| {
        set_mode(path, bad);
        let (c, said) = init(&made, "022");
        assert_ne!(c, 0, "{} at {bad:o} was accepted", path.display());
        assert!(
            said.contains(&format!("chmod {fix} {}", path.display())),
            "{said}"
        );
        set_mode(path, good);
        let (c, said) = init(&made, "022");
        assert_eq!(c, 0, "{said}");
    };
    refused(&made.join("macvault.redb"), 0o644, 0o600, "600");
    refused(&made.join("operator.token"), 0o604, 0o600, "600");
    refused(&made.join("master.key"), 0o660, 0o600, "600");
    refused(&made, 0o777, 0o700, "700");
    // A group-readable key file, as a secret mount often is, is fine.
    set_mode(&made.join("master.key"), 0o640);
    let (c, said) = init(&made, "022");
    assert_eq!(c, 0, "{said}");
}

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use crate::support::{Server, acme};

/// A connection to `srv` that gives up reading after `wait`.
fn connect(srv: &Server, wait: Duration) -> TcpStream {
    let tcp = TcpStream::connect(srv.url().trim_start_matches("http://")).unwrap();
    tcp.set_read_timeout(Some(wait)).unwrap();
    tcp
}

const HEALTH: &[u8] = b"GET /v1/health HTTP/1.1\r\nHost: macvault\r\n\r\n";

/// Reads one answer to a request on a kept-alive connection: its status.
fn status(tcp: &mut TcpStream) -> u16 {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    // The head, then as much body as Content-Length says.
    while !raw.ends_with(b"\r\n\r\n") {
        assert_eq!(tcp.read(&mut byte).unwrap(), 1, "closed before an answer");
        raw.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&raw).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map_or(0, |n| n.trim().parse().unwrap());
    let mut body = vec![0u8; length];
    tcp.read_exact(&mut body).unwrap();
    head[9..12].parse().unwrap()
}

/// Whether the server closed the connection (EOF or a reset) before `wait` ran out.
fn closed_by_server(tcp: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    match tcp.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

#[test]
fn a_half_sent_head_and_an_idle_connection_are_closed_after_the_header_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start_with(&tmp.path().join("data"), &["--header-timeout", "1s"]);
    // Half a head: closed, not answered (the read gives up only after 30 s).
    let mut slow = connect(&srv, Duration::from_secs(30));
    slow.write_all(b"GET /v1/health HTTP/1.1\r\nHost: mac")
        .unwrap();
    assert!(
        closed_by_server(&mut slow),
        "a half-sent head was kept open"
    );
    // A kept-alive connection, answered once, then idle: closed too.
    let mut idle = connect(&srv, Duration::from_secs(30));
    idle.write_all(HEALTH).unwrap();
    assert_eq!(status(&mut idle), 200);
    assert!(
        closed_by_server(&mut idle),
        "an idle connection was kept open"
    );
}

#[test]
fn a_head_over_the_cap_is_refused_and_its_connection_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    let mut tcp = connect(&srv, Duration::from_secs(30));
    tcp.write_all(b"GET /v1/health HTTP/1.1\r\nHost: macvault\r\n")
        .unwrap();
    let filler = format!("X-Filler: {}\r\n", "a".repeat(1000));
    // Past the cap (32 KiB) the server stops reading: later writes may fail.
    // 40 KiB of head, then its end: a server that took it all would answer 200.
    let sent =
        (0..40).all(|_| tcp.write_all(filler.as_bytes()).is_ok()) && tcp.write_all(b"\r\n").is_ok();
    let mut raw = Vec::new();
    let read = tcp.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.starts_with("HTTP/1.1 431") || (text.is_empty() && (!sent || read.is_ok())),
        "a 40 KiB head was not refused ({sent}, {read:?}): {text}"
    );
}

#[test]
fn past_max_connections_new_ones_wait_while_established_ones_are_served() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start_with(
        &tmp.path().join("data"),
        &["--max-connections", "2", "--header-timeout", "60s"],
    );
    let mut first = connect(&srv, Duration::from_secs(30));
    let mut second = connect(&srv, Duration::from_secs(30));
    for tcp in [&mut first, &mut second] {
        tcp.write_all(HEALTH).unwrap();
        assert_eq!(status(tcp), 200);
    }
    // A third connects (the kernel's backlog takes it) but is not served yet...
    let mut third = connect(&srv, Duration::from_millis(500));
    third.write_all(HEALTH).unwrap();
    let mut buf = [0u8; 1];
    let waited = third.read(&mut buf).unwrap_err();
    assert!(
        matches!(
            waited.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{waited}"
    );
    // ...while the established ones still are.
    first.write_all(HEALTH).unwrap();
    assert_eq!(status(&mut first), 200);
    // One closes: the third is accepted and answered.
    drop(first);
    third
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    assert_eq!(status(&mut third), 200);
}

#[test]
fn a_declared_body_over_the_limit_gets_413_before_it_is_sent() {
    let tmp = tempfile::tempdir().unwrap();
    // A request timeout far off: a 408 would mean the server waited for the body.
    let srv = Server::start_with(&tmp.path().join("data"), &["--request-timeout", "1h"]);
    let (_op, org) = acme(&srv);
    for path in [
        "/v1/orgs/acme/tokens",
        "/v1/orgs/acme/apps/web/secrets",
        "/v1/verify",
    ] {
        let mut tcp = connect(&srv, Duration::from_secs(30));
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: macvault\r\nAuthorization: Bearer {org}\r\n\
             Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n{{"
        );
        tcp.write_all(head.as_bytes()).unwrap();
        assert_eq!(status(&mut tcp), 413, "{path}");
    }
}

#[test]
fn sigterm_ends_a_long_poll_with_a_retryable_503_and_exits_0() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("data"));
    let (_op, org) = acme(&srv);
    srv.set_secrets(&org, "/v1/orgs/acme/apps/web/secrets", &[("A", "1")]);
    let waiter = srv.long_poll(
        "/v1/orgs/acme/apps/web/secrets/reveal?min_version=1000",
        &org,
    );
    // SIGTERM; stop() asserts the exit status is 0.
    srv.stop();
    let (status, answer) = waiter.join().unwrap();
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error"]["code"], "draining", "{answer}");
}

/// A client looping until the server goes away: `step` sends one request with `http`
/// and says whether to go on.
fn client_loop<F, Fut>(step: F)
where
    F: Fn(reqwest::Client) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let http = crate::support::http_client(Duration::from_secs(30));
        while step(http.clone()).await {}
    });
}

#[test]
fn with_a_drain_delay_it_says_draining_and_still_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start_with(tmp.path(), &["--drain-delay", "5m"]);
    assert_eq!(srv.http("GET", "/v1/ready", None, None).0, 200);
    srv.signal("TERM");
    let ready =
        crate::support::eventually("ready to say draining", Duration::from_secs(30), || {
            let (st, v) = srv.http("GET", "/v1/ready", None, None);
            (st == 503).then_some(v)
        });
    assert_eq!(ready["status"], "draining", "{ready}");
    // Still accepting (the delay is minutes long): a load balancer's last requests land.
    assert_eq!(srv.http("GET", "/v1/health", None, None).0, 200);
    srv.kill();
}

#[test]
fn sigterm_as_soon_as_it_listens_drains_and_exits_cleanly() {
    // The handlers are installed before "listening" is said: a process manager may
    // stop the server the moment it starts (stop() asserts exit status 0).
    let tmp = tempfile::tempdir().unwrap();
    let logs = Server::start(tmp.path()).stop();
    assert!(logs.stderr.contains("shutting down"), "{}", logs.stderr);
}

#[test]
fn sigterm_during_a_burst_loses_no_acknowledged_write_and_no_queued_event() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let srv = Server::start(&data);
    let (_op, org) = acme(&srv);
    let readonly = srv
        .cli_ok(&org, &["tokens", "create", "readonly"])
        .trim()
        .to_owned();
    let url = format!("{}/v1/orgs/acme/apps/web/secrets", srv.url());
    let (acked, denied) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    // A writer (its last acknowledged version) and a reader denied its writes (each
    // denial is an audit event queued for the background writer).
    let writer = {
        let (url, org, acked) = (url.clone(), org.clone(), acked.clone());
        std::thread::spawn(move || {
            client_loop(|http| {
                let (url, org, acked) = (url.clone(), org.clone(), acked.clone());
                async move {
                    let body = serde_json::json!({"set": [{"name": "W", "value": "x".repeat(
                        1 + acked.load(Ordering::SeqCst) as usize % 7)}]});
                    let Ok(res) = http.post(&url).bearer_auth(&org).json(&body).send().await else {
                        return false;
                    };
                    let Ok(v) = res.json::<serde_json::Value>().await else {
                        return false;
                    };
                    match v["secrets"][0]["version"].as_u64() {
                        Some(version) => {
                            acked.store(version, Ordering::SeqCst);
                            true
                        }
                        None => false,
                    }
                }
            });
        })
    };
    let denier = {
        let (url, readonly, denied) = (url.clone(), readonly.clone(), denied.clone());
        std::thread::spawn(move || {
            client_loop(|http| {
                let (url, readonly, denied) = (url.clone(), readonly.clone(), denied.clone());
                async move {
                    let body = serde_json::json!({"set": [{"name": "D", "value": "1"}]});
                    match http
                        .post(&url)
                        .bearer_auth(&readonly)
                        .json(&body)
                        .send()
                        .await
                    {
                        Ok(res) if res.status() == 403 => {
                            denied.fetch_add(1, Ordering::SeqCst);
                            true
                        }
                        _ => false,
                    }
                }
            });
        })
    };
    crate::support::eventually("a burst under way", Duration::from_secs(60), || {
        (acked.load(Ordering::SeqCst) >= 20 && denied.load(Ordering::SeqCst) >= 20).then_some(())
    });
    // SIGTERM mid-burst; stop() asserts the exit status is 0.
    srv.stop();
    writer.join().unwrap();
    denier.join().unwrap();
    let srv = Server::start(&data);
    let (_, shown) = srv.http("GET", "/v1/orgs/acme/apps/web/secrets/W", Some(&org), None);
    let version = shown["version"].as_u64().unwrap();
    assert!(
        version >= acked.load(Ordering::SeqCst),
        "acknowledged v{} but found v{version}",
        acked.load(Ordering::SeqCst)
    );
    // Every page of denials (1,000 at most per page), each counting the denials it
    // aggregates.
    let (mut events, mut page) = (0u64, String::new());
    loop {
        let path = format!("/v1/orgs/acme/audit?action=request.denied&limit=1000{page}");
        let (_, audit) = srv.http("GET", &path, Some(&org), None);
        let counts = audit["events"].as_array().unwrap().iter();
        events += counts.map(|e| e["count"].as_u64().unwrap()).sum::<u64>();
        match audit["older"].as_str() {
            Some(cursor) => page = format!("&before={cursor}"),
            None => break,
        }
    }
    assert!(
        events >= denied.load(Ordering::SeqCst),
        "{} denials answered, {events} in the audit log",
        denied.load(Ordering::SeqCst)
    );
}

/// A self-signed certificate for 127.0.0.1 and its key, made with openssl: (cert, key).
fn self_signed(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", &format!("/CN={name}")])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        // A leaf, not a CA (webpki refuses a CA certificate as a server's).
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (.ci/run installs it)");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    set_mode(&key, 0o600);
    (cert, key)
}

/// GET /v1/health over https, trusting only `root`: the status, or why it failed.
fn health_over_tls(url: &str, root: &Path) -> Result<u16, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let root = reqwest::Certificate::from_pem(&std::fs::read(root).unwrap()).unwrap();
        let http = reqwest::Client::builder()
            .tls_certs_only([root])
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        match http.get(format!("{url}/v1/health")).send().await {
            Ok(res) => Ok(res.status().as_u16()),
            Err(e) => Err(format!("{e:?}")),
        }
    })
}

#[test]
fn tls_serves_its_pair_and_reloads_it_on_sighup() {
    let tmp = tempfile::tempdir().unwrap();
    let (first, first_key) = self_signed(tmp.path(), "first");
    let (second, second_key) = self_signed(tmp.path(), "second");
    let (cert, key) = (tmp.path().join("served.crt"), tmp.path().join("served.key"));
    let serve = |from: &Path, from_key: &Path| {
        std::fs::copy(from, &cert).unwrap();
        std::fs::copy(from_key, &key).unwrap();
        set_mode(&key, 0o600);
    };
    serve(&first, &first_key);
    let srv = Server::start_with(
        &tmp.path().join("data"),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(srv.url().starts_with("https://"), "{}", srv.url());
    assert_eq!(health_over_tls(srv.url(), &first), Ok(200));
    assert!(
        health_over_tls(srv.url(), &second).is_err(),
        "second not served yet"
    );
    // A renewed pair, then SIGHUP: new connections get it.
    serve(&second, &second_key);
    let reloaded = srv.log_count("TLS certificate and key reloaded");
    srv.signal("HUP");
    srv.await_log("TLS certificate and key reloaded", reloaded);
    assert_eq!(health_over_tls(srv.url(), &second), Ok(200));
    assert!(
        health_over_tls(srv.url(), &first).is_err(),
        "first still served"
    );
    // A pair that does not load leaves the one served.
    std::fs::write(&key, "not a key").unwrap();
    let failed = srv.log_count("TLS pair not reloaded");
    srv.signal("HUP");
    srv.await_log("TLS pair not reloaded", failed);
    assert_eq!(health_over_tls(srv.url(), &second), Ok(200));
}

#[test]
fn a_tls_key_others_may_read_is_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(tmp.path(), "pair");
    set_mode(&key, 0o644);
    let data = tmp.path().join("data");
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("chmod 600 {}", key.display())),
        "{err}"
    );
    assert!(!data.exists(), "nothing written");
}

/// A request from `from` (a client address, through the trusted proxy): its status.
fn from_address(
    srv: &Server,
    from: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&serde_json::Value>,
) -> u16 {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![
        ("x-forwarded-for", from),
        ("content-type", "application/json"),
    ];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    let body = body.map(|b| serde_json::to_vec(b).unwrap());
    srv.raw(method, path, &headers, body).0
}

/// A server that believes X-Forwarded-For from loopback, so tests can speak from many
/// addresses; failures: a burst of 5, refilled at 1 an hour (nothing refills during a
/// test, however slow the machine).
fn limited_server(tmp: &tempfile::TempDir, more: &[&str]) -> Server {
    let mut args = vec![
        "--trusted-proxy",
        "127.0.0.1/32",
        "--rate-burst",
        "5",
        "--rate-limit",
        "1/h",
    ];
    args.extend_from_slice(more);
    Server::start_with(&tmp.path().join("data"), &args)
}

#[test]
fn a_401_flood_limits_its_address_only_and_never_an_allowed_request() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = limited_server(&tmp, &[]);
    let (_op, org) = acme(&srv);
    let flooder = "203.0.113.7";
    let statuses: Vec<u16> = (0..8)
        .map(|_| {
            from_address(
                &srv,
                flooder,
                "GET",
                "/v1/orgs/acme",
                Some("mvt_forged"),
                None,
            )
        })
        .collect();
    assert_eq!(&statuses[..5], [401; 5], "the burst is answered as it was");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    // The flooded address: still limited for failures, never for allowed requests.
    assert_eq!(
        from_address(&srv, flooder, "GET", "/v1/orgs/acme", Some(&org), None),
        200
    );
    assert_eq!(
        from_address(&srv, flooder, "GET", "/v1/orgs/acme", None, None),
        429
    );
    // Another address is untouched; an IPv6 /64 counts as one address.
    assert_eq!(
        from_address(
            &srv,
            "198.51.100.1",
            "GET",
            "/v1/orgs/acme",
            Some("mvt_x"),
            None
        ),
        401
    );
    for host in 1..=6 {
        let v6 = format!("2001:db8:7:7::{host}");
        let st = from_address(&srv, &v6, "GET", "/v1/orgs/acme", Some("mvt_x"), None);
        assert_eq!(st, if host <= 5 { 401 } else { 429 }, "{v6}");
    }
}

#[test]
fn relayed_verify_charges_forgeries_to_the_sender_and_denials_to_the_token() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = limited_server(&tmp, &[]);
    let (_op, org) = acme(&srv);
    let victim = srv
        .cli_ok(&org, &["tokens", "create", "readonly"])
        .trim()
        .to_owned();
    let other = srv
        .cli_ok(&org, &["tokens", "create", "readonly"])
        .trim()
        .to_owned();
    // The victim's id with a wrong signature.
    let forged = crate::support::forged(&victim);
    let verify = |from: &str, token: &str, write: bool| {
        let mut body = serde_json::json!({"token": token});
        if write {
            body["access"] = serde_json::json!(
                {"org": "acme", "resource": "secrets", "action": "write", "app": "web"});
        }
        from_address(&srv, from, "POST", "/v1/verify", None, Some(&body))
    };
    // Forgeries spend the forger's budget, not the victim's.
    let forger = "203.0.113.9";
    let forgeries: Vec<u16> = (0..7).map(|_| verify(forger, &forged, false)).collect();
    assert_eq!(&forgeries[..5], [401; 5]);
    assert!(forgeries[5..].iter().all(|s| *s == 429), "{forgeries:?}");
    assert_eq!(
        verify("198.51.100.2", &victim, true),
        200,
        "the victim is not limited"
    );
    // Denials by the victim's caveats, relayed from one service: charged to the token.
    let relay = "198.51.100.3";
    let denials: Vec<u16> = (0..6).map(|_| verify(relay, &victim, true)).collect();
    assert_eq!(
        &denials[..4],
        [200; 4],
        "answered allowed: false (one spent above)"
    );
    assert!(denials[5] == 429, "{denials:?}");
    // The relay itself is not limited: another token's denial is answered.
    assert_eq!(verify(relay, &other, true), 200);
    // An allowed verify of the limited token still passes.
    assert_eq!(verify(relay, &victim, false), 200);
}

#[test]
fn quotas_answer_429_past_their_rate() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = limited_server(&tmp, &["--quota-mint", "2/h", "--quota-reveal", "2/h"]);
    let (_op, org) = acme(&srv);
    // The first of the org token's two mints an hour.
    let runtime = srv.cli_ok(&org, &["tokens", "create", "runtime", "--app", "web"]);
    let mint = serde_json::json!({"kind": "readonly"});
    let minted: Vec<u16> = (0..2)
        .map(|_| {
            srv.http("POST", "/v1/orgs/acme/tokens", Some(&org), Some(&mint))
                .0
        })
        .collect();
    assert_eq!(minted, [201, 429]);
    let reveal = "/v1/orgs/acme/apps/web/secrets/reveal";
    let revealed: Vec<u16> = (0..3)
        .map(|_| srv.http("POST", reveal, Some(&org), None).0)
        .collect();
    assert_eq!(revealed, [200, 200, 429]);
    // Per token: another has its own.
    assert_eq!(srv.http("POST", reveal, Some(runtime.trim()), None).0, 200);
}

/// Slow connections in the short form run by `.ci/run` (`benches/attack.sh` runs the
/// full mix and records memory): connections holding half a head, and connections
/// sending heads past the cap, all from loopback, bounded in count and time.
const SLOW: usize = 200;
const BIG_HEADS: usize = 100;

#[test]
fn slow_and_oversized_heads_are_closed_by_the_server_while_health_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start_with(&tmp.path().join("data"), &["--header-timeout", "2s"]);
    let filler = format!("X-Filler: {}\r\n", "a".repeat(1000));
    let mut attack = Vec::new();
    for _ in 0..SLOW {
        let mut tcp = connect(&srv, Duration::from_secs(60));
        tcp.write_all(b"GET /v1/health HTTP/1.1\r\nHost: mac")
            .unwrap();
        attack.push(tcp);
    }
    for _ in 0..BIG_HEADS {
        let mut tcp = connect(&srv, Duration::from_secs(60));
        tcp.write_all(b"GET /v1/health HTTP/1.1\r\nHost: macvault\r\n")
            .unwrap();
        // 40 KiB of head, never ended; past the cap the server stops reading.
        for _ in 0..40 {
            if tcp.write_all(filler.as_bytes()).is_err() {
                break;
            }
        }
        attack.push(tcp);
    }
    // Meanwhile health checks are answered, each on a connection of its own.
    for _ in 0..10 {
        let mut probe = connect(&srv, Duration::from_secs(30));
        probe.write_all(HEALTH).unwrap();
        assert_eq!(status(&mut probe), 200);
    }
    // And every attacking connection is closed by the server (the read gives up only
    // after 60 s; the header timeout is 2 s). A refused head may get its 431 first.
    for (i, tcp) in attack.iter_mut().enumerate() {
        let mut rest = Vec::new();
        match tcp.read_to_end(&mut rest) {
            Ok(_) => {
                let text = String::from_utf8_lossy(&rest);
                assert!(
                    text.is_empty() || text.starts_with("HTTP/1.1 431"),
                    "connection {i} was answered: {text}"
                );
            }
            Err(e) => assert_eq!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset,
                "connection {i} was not closed: {e}"
            ),
        }
    }
}

#[test]
fn refused_discharges_spend_the_same_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = limited_server(&tmp, &[]);
    let (_op, _org) = acme(&srv);
    let garbage = serde_json::json!({"tickets": ["not a ticket"], "oidc_token": "x"});
    let path = "/3p/gha/.well-known/macvault/3p";
    let from = "203.0.113.50";
    let statuses: Vec<u16> = (0..7)
        .map(|_| from_address(&srv, from, "POST", path, None, Some(&garbage)))
        .collect();
    assert!(
        statuses[..5]
            .iter()
            .all(|s| (400..500).contains(s) && *s != 429),
        "{statuses:?}"
    );
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    // The same budget: that address's other failures are limited too.
    assert_eq!(
        from_address(&srv, from, "GET", "/v1/orgs/acme", Some("mvt_x"), None),
        429
    );
}

#[test]
fn json_logs_carry_each_request_s_id_which_the_answer_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start_with(&tmp.path().join("data"), &["--log-format", "json"]);
    let (_op, org) = acme(&srv);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let http = crate::support::http_client(Duration::from_secs(30));
    let ask = |id: Option<&str>| {
        let mut req = http
            .post(format!("{}/v1/verify", srv.url()))
            .json(&serde_json::json!({"token": org}));
        if let Some(id) = id {
            req = req.header("x-request-id", id);
        }
        rt.block_on(async { req.send().await.unwrap() })
            .headers()
            .get("x-request-id")
            .expect("an x-request-id")
            .to_str()
            .unwrap()
            .to_owned()
    };
    let first = ask(None);
    let second = ask(None);
    assert_ne!(first, second);
    // A client's own id is not believed (no trusted proxy here).
    assert_ne!(ask(Some("forged-id")), "forged-id");
    let logs = srv.stop();
    let mut lines_with_first = 0;
    for line in logs.stderr.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        if v["span"]["id"] == first.as_str() {
            assert_eq!(v["span"]["name"], "request");
            lines_with_first += 1;
        }
    }
    assert!(
        lines_with_first > 0,
        "no line carries {first}:\n{}",
        logs.stderr
    );
    assert!(!logs.stderr.contains(&org), "a token in the log");
    assert!(!logs.stderr.contains("forged-id"));
}
