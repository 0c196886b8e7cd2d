//! What a person does in the dashboard, in a real browser.

use std::future::Future;
use std::io::{Read as _, Write as _};
use std::time::Duration;

use fantoccini::{Client, Locator};
use serde_json::json;

use super::{browser, driver, html, screenshot, submit, wait_for};
use crate::support::{Server, acme, eventually, s};

/// Runs one step of a test in a runtime of its own (the server helpers block).
fn on<T>(rt: &tokio::runtime::Runtime, step: impl Future<Output = T>) -> T {
    rt.block_on(step)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// Mints a token with `by` (JSON body): (token, its record).
fn mint(srv: &Server, by: &str, body: serde_json::Value) -> (String, serde_json::Value) {
    let (st, v) = srv.http("POST", "/v1/orgs/acme/tokens", Some(by), Some(&body));
    assert_eq!(st, 201, "{v}");
    (s(&v, "token").to_owned(), v["record"].clone())
}

/// Signs `c` in with `token` from the sign-in page a visit to `path` leads to.
async fn sign_in(c: &Client, srv: &Server, path: &str, token: &str) {
    c.goto(&format!("{}{path}", srv.url())).await.unwrap();
    let url = c.current_url().await.unwrap();
    assert_eq!(url.path(), "/ui/sign-in", "sent to sign in first");
    submit(c, "form[action='/ui/sign-in']", &[("token", token)]).await;
    wait_for(c, "the page after signing in", |at, _| at == path).await;
}

async fn text_of(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[test]
fn a_token_is_found_by_fingerprint_seen_used_revoked_through_the_preview_and_rotated() {
    let Some((driver, chromium)) = driver() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let (_op, org) = acme(&srv);
    let (ci, record) = mint(
        &srv,
        &org,
        json!({"kind": "deploy", "app": "web", "name": "ci"}),
    );
    let (_child, _) = mint(
        &srv,
        &ci,
        json!({"kind": "deploy", "app": "web", "name": "ci-child"}),
    );
    let (_, other) = mint(
        &srv,
        &org,
        json!({"kind": "runtime", "app": "web", "name": "boot"}),
    );
    let (st, _) = srv.http("POST", "/v1/verify", None, Some(&json!({"token": ci})));
    assert_eq!(st, 200);
    let rt = runtime();
    let c = on(&rt, browser(&driver, &chromium, 1280));
    on(&rt, sign_in(&c, &srv, "/ui/tokens", &org));
    on(&rt, screenshot(&c, "tokens"));
    // Found by its fingerprint, its last use shown once the writer has flushed it.
    let fingerprint = s(&record, "fingerprint").to_owned();
    let found = eventually("the last use on the page", Duration::from_secs(30), || {
        on(&rt, async {
            c.goto(&format!("{}/ui/tokens", srv.url())).await.unwrap();
            submit(&c, "form.filters", &[("find", &fingerprint)]).await;
            // The filtered list, not the one the filter was typed into.
            let filtered = format!("value=\"{fingerprint}\"");
            let page = wait_for(&c, "the filtered list", |_, page| page.contains(&filtered)).await;
            page.contains("127.0.0.1").then_some(page)
        })
    });
    assert!(found.contains(">ci<") && !found.contains("ci-child") && !found.contains("boot"));
    // Its page, then the preview, which names what goes with it, then the revocation.
    on(&rt, async {
        c.find(Locator::LinkText("ci"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_for(&c, "the token's page", |at, _| {
            at.starts_with("/ui/tokens/")
        })
        .await;
        assert!(text_of(&c, "h1").await.starts_with("ci"));
        screenshot(&c, "token").await;
        c.find(Locator::LinkText("Revoke…"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let preview = wait_for(&c, "the preview", |at, _| at.ends_with("/revoke")).await;
        assert!(preview.contains("ci-child"), "the preview names the child");
        screenshot(&c, "revoke").await;
        c.find(Locator::Css("form.actions button.danger"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_for(&c, "the revoked token's page", |_, page| {
            page.contains("status revoked")
        })
        .await;
    });
    let (st, _) = srv.http("POST", "/v1/verify", None, Some(&json!({"token": ci})));
    assert_eq!(st, 401, "revoked");
    // Rotated: the replacement is shown once.
    let id = s(&other, "id").to_owned();
    on(&rt, async {
        c.goto(&format!("{}/ui/tokens/{id}", srv.url()))
            .await
            .unwrap();
        submit(&c, "form[action$='/rotate']", &[("overlap", "0s")]).await;
        wait_for(&c, "the rotated token", |_, page| {
            page.contains("Token rotated")
        })
        .await;
        let shown = c
            .find(Locator::Id("token"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap();
        assert!(shown.is_some_and(|t| t.starts_with("mvt_")));
        screenshot(&c, "token-once").await;
        c.close().await.unwrap();
    });
}

#[test]
fn a_secret_is_set_and_its_new_version_shown_without_its_value() {
    let Some((driver, chromium)) = driver() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let (_op, org) = acme(&srv);
    let value = "browser-typed-value-83c1f0";
    let rt = runtime();
    for width in [1280, 390] {
        let c = on(&rt, browser(&driver, &chromium, width));
        on(&rt, async {
            sign_in(&c, &srv, "/ui/apps/web/secrets", &org).await;
            submit(
                &c,
                "form[action='/ui/apps/web/secrets']",
                &[
                    ("name", "API_KEY"),
                    ("value", value),
                    ("description", "the API's key"),
                ],
            )
            .await;
            let page = wait_for(&c, "the secret listed", |_, page| page.contains("API_KEY")).await;
            assert!(page.contains("the API"), "{page}");
            assert!(!page.contains(value), "no value on the page");
            screenshot(&c, &format!("secrets-{width}")).await;
            c.goto(&format!("{}/ui/apps", srv.url())).await.unwrap();
            screenshot(&c, &format!("apps-{width}")).await;
            c.goto(&format!("{}/ui/tokens", srv.url())).await.unwrap();
            screenshot(&c, &format!("tokens-{width}")).await;
            c.close().await.unwrap();
        });
    }
    let (_, history) = srv.http(
        "GET",
        "/v1/orgs/acme/apps/web/secrets/API_KEY/history",
        Some(&org),
        None,
    );
    // Set the same from both windows: one version (an unchanged value writes nothing).
    assert_eq!(
        history["versions"].as_array().map(Vec::len),
        Some(1),
        "{history}"
    );
}

#[test]
fn signing_out_other_sessions_refuses_the_other_browser() {
    let Some((driver, chromium)) = driver() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let (_op, org) = acme(&srv);
    let rt = runtime();
    let mine = on(&rt, browser(&driver, &chromium, 1280));
    let theirs = on(&rt, browser(&driver, &chromium, 1280));
    on(&rt, async {
        sign_in(&mine, &srv, "/ui/sessions", &org).await;
        sign_in(&theirs, &srv, "/ui/tokens", &org).await;
        mine.refresh().await.unwrap();
        screenshot(&mine, "sessions").await;
        mine.find(Locator::Css(
            "form[action='/ui/sessions/end-others'] button",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
        wait_for(&mine, "the panel again", |at, page| {
            at == "/ui/sessions" && page.matches("Sign out</button>").count() == 2
        })
        .await;
        theirs.refresh().await.unwrap();
        wait_for(&theirs, "the other browser sent to sign in", |at, _| {
            at == "/ui/sign-in"
        })
        .await;
        mine.goto(&format!("{}/ui/tokens", srv.url()))
            .await
            .unwrap();
        assert_eq!(mine.current_url().await.unwrap().path(), "/ui/tokens");
        mine.close().await.unwrap();
        theirs.close().await.unwrap();
    });
}

/// Builds a form in the page (as a forger would) and submits it.
const FORGE: &str = "const f = document.createElement('form'); f.method = 'post'; \
    f.action = arguments[0]; for (const [k, v] of Object.entries(arguments[1])) { \
    const i = document.createElement('input'); i.name = k; i.value = v; f.appendChild(i); } \
    document.body.appendChild(f); f.submit();";

#[test]
fn a_readonly_session_sees_no_write_controls_and_forged_posts_are_refused() {
    let Some((driver, chromium)) = driver() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let (_op, org) = acme(&srv);
    let (readonly, _) = mint(&srv, &org, json!({"kind": "readonly", "name": "auditor"}));
    let (_, deploy) = mint(
        &srv,
        &org,
        json!({"kind": "deploy", "app": "web", "name": "ci"}),
    );
    let rt = runtime();
    let c = on(&rt, browser(&driver, &chromium, 1280));
    on(&rt, async {
        sign_in(&c, &srv, "/ui/tokens", &readonly).await;
        assert!(!html(&c).await.contains("Mint a token"));
        let id = s(&deploy, "id");
        c.goto(&format!("{}/ui/tokens/{id}", srv.url()))
            .await
            .unwrap();
        let page = html(&c).await;
        assert!(!page.contains("Revoke") && !page.contains("Rotate"));
        c.goto(&format!("{}/ui/apps/web/secrets", srv.url()))
            .await
            .unwrap();
        assert!(!html(&c).await.contains("Set a secret"));
        // A forged POST with the session's own anti-forgery token: refused by the caveats.
        let csrf = c
            .find(Locator::Css("input[name='csrf']"))
            .await
            .unwrap()
            .attr("value")
            .await
            .unwrap()
            .unwrap();
        let fields = json!({"kind": "readonly", "name": "forged", "csrf": csrf});
        c.execute(FORGE, vec![json!("/ui/tokens/new"), fields])
            .await
            .unwrap();
        wait_for(&c, "the refusal", |_, page| {
            page.contains("<h1>Not allowed</h1>")
        })
        .await;
        // Without it: refused before anything else.
        let fields = json!({"kind": "readonly", "name": "forged"});
        c.goto(&format!("{}/ui/tokens", srv.url())).await.unwrap();
        c.execute(FORGE, vec![json!("/ui/tokens/new"), fields])
            .await
            .unwrap();
        wait_for(&c, "the refusal", |_, page| {
            page.contains("was not made by this dashboard")
        })
        .await;
        c.close().await.unwrap();
    });
    let (_, list) = srv.http("GET", "/v1/orgs/acme/tokens", Some(&org), None);
    assert!(!list.to_string().contains("forged"), "{list}");
}

/// A page of another site (`localhost`, not `127.0.0.1`) with a form aimed at the
/// dashboard: serves it to every request until dropped; its address.
fn attacker_page(target: &str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let page = format!(
        "<!doctype html><title>win a prize</title><form method=post action='{target}/ui/tokens/new'>\
         <input name=kind value=org><input name=name value=cross-site>\
         <button id=go type=submit>Claim</button></form>"
    );
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
    format!("http://localhost:{port}/")
}

#[test]
fn a_cross_site_post_is_refused() {
    let Some((driver, chromium)) = driver() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let (_op, org) = acme(&srv);
    let evil = attacker_page(srv.url().trim_end_matches('/'));
    let rt = runtime();
    let c = on(&rt, browser(&driver, &chromium, 1280));
    on(&rt, async {
        sign_in(&c, &srv, "/ui/tokens", &org).await;
        c.goto(&evil).await.unwrap();
        c.find(Locator::Id("go"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_for(&c, "the refusal", |at, page| {
            at == "/ui/tokens/new" && (page.contains("another site") || page.contains("signed out"))
        })
        .await;
        c.close().await.unwrap();
    });
    let (_, list) = srv.http("GET", "/v1/orgs/acme/tokens", Some(&org), None);
    assert!(!list.to_string().contains("cross-site"), "{list}");
}

/// A native app's loopback callback: answers every request with a small page until
/// dropped; its port.
fn callback() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let page = "<!doctype html><title>callback</title><p>signed in";
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
    port
}

#[test]
fn an_application_is_approved_on_the_consent_page_and_gets_its_code() {
    let Some((driver, chromium)) = driver() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let (_op, org) = acme(&srv);
    let added = srv.cli_json(
        &org,
        &[
            "oauth-clients",
            "add",
            "Deploy bot",
            "--redirect-uri",
            "http://127.0.0.1/cb",
            "--public",
            "--json",
        ],
    );
    let client = s(&added, "client_id").to_owned();
    let port = callback();
    let redirect = format!("http://127.0.0.1:{port}/cb");
    // RFC 7636, appendix B.
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let query = serde_urlencoded::to_string([
        ("response_type", "code"),
        ("client_id", &client),
        ("redirect_uri", &redirect),
        ("scope", "secrets:write app:web app:api"),
        ("state", "s1"),
        (
            "code_challenge",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        ),
        ("code_challenge_method", "S256"),
    ])
    .unwrap();
    let rt = runtime();
    let c = on(&rt, browser(&driver, &chromium, 1280));
    let back = on(&rt, async {
        c.goto(&format!(
            "{}/oauth/authorize?{query}",
            srv.url().trim_end_matches('/')
        ))
        .await
        .unwrap();
        wait_for(&c, "the sign-in page", |at, _| at == "/ui/sign-in").await;
        submit(&c, "form[action='/ui/sign-in']", &[("token", &org)]).await;
        let page = wait_for(&c, "the consent page", |at, _| at == "/ui/consent").await;
        assert!(
            page.contains("Deploy bot") && page.contains("acme"),
            "{page}"
        );
        screenshot(&c, "consent").await;
        // Narrowed: not the app api, read-only.
        c.find(Locator::Css("input[name='keep'][value='app:api']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        c.find(Locator::Css("input[name='read_only']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        c.find(Locator::Css("button[value='approve']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_for(&c, "the application's callback", |at, _| at == "/cb").await;
        let url = c.current_url().await.unwrap();
        c.close().await.unwrap();
        url
    });
    let pairs: std::collections::HashMap<String, String> =
        back.query_pairs().into_owned().collect();
    assert_eq!(back.port(), Some(port));
    assert_eq!(pairs.get("state").map(String::as_str), Some("s1"));
    let body = serde_urlencoded::to_string([
        ("grant_type", "authorization_code"),
        ("client_id", client.as_str()),
        ("code", &pairs["code"]),
        ("redirect_uri", &redirect),
        ("code_verifier", verifier),
    ])
    .unwrap();
    let (st, text) = srv.raw(
        "POST",
        "/oauth/token",
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(body.into_bytes()),
    );
    assert_eq!(st, 200, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["scope"], "secrets:read app:web");
}
