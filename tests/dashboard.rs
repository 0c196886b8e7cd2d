//! The dashboard over HTTP, as a browser without script uses it: signing in (the
//! cookie's attributes, the pasted token never stored), the security headers, forms
//! that need the session's anti-forgery token and a same-origin browser, a readonly
//! session shown no write controls and refused the write anyway, tokens minted,
//! revoked after a preview and rotated, sessions ended from another session, and no
//! token or secret value on any page but the one that shows a new token once.

use std::collections::HashMap;

use serde_json::json;

use crate::support::{Server, acme, contains_bytes, s};

/// An answer: status, headers (lower-case names; repeated ones joined by "\n"), body.
pub(crate) struct Page {
    pub(crate) status: u16,
    pub(crate) headers: HashMap<String, String>,
    pub(crate) body: String,
}

impl Page {
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    /// The value of the first hidden `csrf` field.
    pub(crate) fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a form with csrf")
            + 19;
        self.body[at..].split('"').next().unwrap().to_owned()
    }
}

/// A browser without script: one cookie jar (the session cookie), no redirects
/// followed, and the `Origin` a browser sends with a form.
pub(crate) struct Browser {
    base: String,
    origin: String,
    cookie: Option<String>,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

impl Browser {
    pub(crate) fn new(srv: &Server) -> Browser {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Browser {
            base: srv.url().to_owned(),
            origin: srv.url().trim_end_matches('/').to_owned(),
            cookie: None,
            http,
            rt,
        }
    }

    fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let req = match &self.cookie {
            Some(c) => req.header("cookie", format!("macvault_session={c}")),
            None => req,
        };
        let page = self.rt.block_on(async {
            let res = req.send().await.expect("send");
            let status = res.status().as_u16();
            let mut headers: HashMap<String, String> = HashMap::new();
            for (k, v) in res.headers() {
                let v = v.to_str().unwrap_or("").to_owned();
                headers
                    .entry(k.as_str().to_owned())
                    .and_modify(|e| {
                        e.push('\n');
                        e.push_str(&v);
                    })
                    .or_insert(v);
            }
            let body = res.text().await.expect("body");
            Page {
                status,
                headers,
                body,
            }
        });
        if let Some(set) = page.headers.get("set-cookie") {
            let value = set
                .split(';')
                .next()
                .and_then(|kv| kv.strip_prefix("macvault_session="))
                .unwrap_or("");
            self.cookie = Some(value.to_owned()).filter(|v| !v.is_empty());
        }
        page
    }

    pub(crate) fn get(&mut self, path: &str) -> Page {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(req)
    }

    /// A form POST as a browser on this dashboard's page sends it.
    pub(crate) fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        self.post_from(&self.origin.clone(), path, fields)
    }

    fn post_from(&mut self, origin: &str, path: &str, fields: &[(&str, &str)]) -> Page {
        let body = serde_urlencoded::to_string(fields).unwrap();
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("origin", origin)
            .body(body);
        self.send(req)
    }

    /// Signs in with `token`: the answer (a redirect with the cookie).
    pub(crate) fn sign_in(&mut self, token: &str, next: &str) -> Page {
        self.post("/ui/sign-in", &[("token", token), ("next", next)])
    }
}

/// Mints a token of `kind` (JSON body fields) with `by`: (token, id).
pub(crate) fn mint(srv: &Server, by: &str, body: serde_json::Value) -> (String, String) {
    let (st, v) = srv.http("POST", "/v1/orgs/acme/tokens", Some(by), Some(&body));
    assert_eq!(st, 201, "{v}");
    (s(&v, "token").to_owned(), s(&v["record"], "id").to_owned())
}

#[test]
fn signing_in_sets_a_session_cookie_and_keeps_no_pasted_token() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let (_op, org) = acme(&srv);
    let mut b = Browser::new(&srv);
    let out = b.get("/ui/tokens");
    assert_eq!(out.status, 303);
    assert_eq!(out.header("location"), "/ui/sign-in?next=/ui/tokens");
    let signed = b.sign_in(&org, "/ui/tokens?kind=org");
    assert_eq!(signed.status, 303, "{}", signed.body);
    assert_eq!(signed.header("location"), "/ui/tokens?kind=org");
    let cookie = signed.header("set-cookie");
    for part in [
        "macvault_session=mvt_",
        "HttpOnly",
        "SameSite=Lax",
        "Path=/",
        "Max-Age=43200",
    ] {
        assert!(cookie.contains(part), "{part} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");
    let session = b.cookie.clone().unwrap();
    assert_ne!(session, org, "a token of its own");
    let page = b.get("/ui/tokens?kind=org");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Mint a token"));
    // Sessions are listed apart from tokens.
    let sessions = b.get("/ui/sessions");
    assert!(sessions.body.contains("this session"), "{}", sessions.body);
    let (_, list) = srv.http("GET", "/v1/orgs/acme/tokens", Some(&org), None);
    assert!(!list.to_string().contains("\"session\""), "{list}");
    let (_, all) = srv.http(
        "GET",
        "/v1/orgs/acme/tokens?sessions=true",
        Some(&org),
        None,
    );
    assert!(all.to_string().contains("\"session\""), "{all}");
    // Neither token is in the database.
    let logs = srv.stop();
    let db = std::fs::read(tmp.path().join("macvault.redb")).unwrap();
    for token in [&org, &session] {
        assert!(!contains_bytes(&db, token.as_bytes()));
        assert!(!logs.stderr.contains(token.as_str()) && !logs.stdout.contains(token.as_str()));
    }
}

#[test]
fn after_sign_in_the_browser_returns_only_to_a_dashboard_path() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let (_op, org) = acme(&srv);
    for (next, to) in [
        ("https://evil.example/ui", "/ui"),
        ("//evil.example/ui", "/ui"),
        (
            "/oauth/authorize?client_id=x",
            "/oauth/authorize?client_id=x",
        ),
        ("/ui/audit", "/ui/audit"),
    ] {
        let mut b = Browser::new(&srv);
        let page = b.sign_in(&org, next);
        assert_eq!((page.status, page.header("location")), (303, to), "{next}");
    }
}

#[test]
fn a_public_https_url_makes_the_cookie_secure_and_names_the_origin() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start_with(tmp.path(), &["--public-url", "https://vault.example"]);
    let (_op, org) = acme(&srv);
    let mut b = Browser::new(&srv);
    b.origin = "https://vault.example".into();
    let page = b.sign_in(&org, "/ui");
    assert_eq!(page.status, 303, "{}", page.body);
    assert!(page.header("set-cookie").contains("; Secure"));
    // The server's own address is not the public origin.
    let mut other = Browser::new(&srv);
    assert_eq!(other.sign_in(&org, "/ui").status, 403);
}

#[test]
fn pages_carry_the_security_headers() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let (_op, org) = acme(&srv);
    let mut b = Browser::new(&srv);
    let sign_in = b.get("/ui/sign-in");
    assert_eq!(sign_in.header("cache-control"), "no-store");
    assert!(
        sign_in
            .header("content-security-policy")
            .contains("frame-ancestors 'none'")
    );
    b.sign_in(&org, "/ui");
    for path in ["/ui/tokens", "/ui/audit", "/ui/sessions", "/ui/tokens/new"] {
        let page = b.get(path);
        assert_eq!(page.status, 200, "{path}");
        assert_eq!(
            page.header("content-security-policy"),
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
            "{path}"
        );
        assert_eq!(page.header("cache-control"), "no-store", "{path}");
        assert_eq!(page.header("referrer-policy"), "no-referrer", "{path}");
        assert!(
            !page.body.contains("<script") && !page.body.contains("style="),
            "{path}"
        );
    }
    let css = b.get("/ui/static/ui.css");
    assert_eq!(css.status, 200);
    assert!(css.header("content-type").starts_with("text/css"));
}

/// A mint form with `csrf`.
fn form(csrf: &str) -> [(&str, &str); 3] {
    [("kind", "readonly"), ("name", "forged"), ("csrf", csrf)]
}

#[test]
fn a_form_needs_the_sessions_anti_forgery_token_and_a_same_origin_browser() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let (_op, org) = acme(&srv);
    let mut b = Browser::new(&srv);
    b.sign_in(&org, "/ui");
    let csrf = b.get("/ui/tokens/new").csrf();
    let csrf = csrf.as_str();
    let missing = b.post("/ui/tokens/new", &form("")[..2]);
    assert_eq!(missing.status, 403, "{}", missing.body);
    let wrong = b.post("/ui/tokens/new", &form("AAAA"));
    assert_eq!(wrong.status, 403);
    // Another session's token is not this one's.
    let mut other = Browser::new(&srv);
    other.sign_in(&org, "/ui");
    let theirs = other.get("/ui/tokens/new").csrf();
    let theirs = theirs.as_str();
    assert_ne!(theirs, csrf);
    assert_eq!(b.post("/ui/tokens/new", &form(theirs)).status, 403);
    // From another site (localhost is not 127.0.0.1), even with the right token.
    let cross = b.post_from("http://localhost:1", "/ui/tokens/new", &form(csrf));
    assert_eq!(cross.status, 403);
    let (_, list) = srv.http("GET", "/v1/orgs/acme/tokens", Some(&org), None);
    assert!(!list.to_string().contains("forged"), "nothing was minted");
    let ok = b.post("/ui/tokens/new", &form(csrf));
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(ok.body.contains("Token minted"));
}

#[test]
fn a_readonly_session_sees_no_write_controls_and_is_refused_the_write() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let (_op, org) = acme(&srv);
    let (readonly, _) = mint(&srv, &org, json!({"kind": "readonly", "name": "auditor"}));
    let (_, deploy_id) = mint(
        &srv,
        &org,
        json!({"kind": "deploy", "app": "web", "name": "ci"}),
    );
    let mut b = Browser::new(&srv);
    assert_eq!(b.sign_in(&readonly, "/ui").status, 303);
    let list = b.get("/ui/tokens");
    assert_eq!(list.status, 200);
    assert!(!list.body.contains("Mint a token"));
    let token = b.get(&format!("/ui/tokens/{deploy_id}"));
    assert_eq!(token.status, 200);
    assert!(!token.body.contains("Revoke") && !token.body.contains("Rotate"));
    let csrf = list.csrf();
    let forged = b.post(
        "/ui/tokens/new",
        &[("kind", "readonly"), ("name", "x"), ("csrf", &csrf)],
    );
    assert_eq!(forged.status, 403, "{}", forged.body);
    let revoke = b.post(
        &format!("/ui/tokens/{deploy_id}/revoke"),
        &[("csrf", &csrf)],
    );
    assert_eq!(revoke.status, 403, "{}", revoke.body);
    // Yet it signs itself out.
    let out = b.post("/ui/sign-out", &[("csrf", &csrf)]);
    assert_eq!((out.status, out.header("location")), (303, "/ui/sign-in"));
    assert!(out.header("set-cookie").contains("Max-Age=0"));
}

#[test]
fn a_failed_sign_in_is_a_401_counted_by_the_failure_limiter() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start_with(tmp.path(), &["--rate-burst", "2", "--rate-limit", "1/h"]);
    let mut b = Browser::new(&srv);
    let statuses: Vec<u16> = (0..3)
        .map(|_| b.sign_in("mvt_not-a-token", "/ui").status)
        .collect();
    assert_eq!(statuses, [401, 401, 429]);
}

#[test]
fn tokens_are_minted_revoked_after_a_preview_and_rotated_and_shown_only_once() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let (_op, org) = acme(&srv);
    let (parent, parent_id) = mint(
        &srv,
        &org,
        json!({"kind": "deploy", "app": "web", "name": "parent"}),
    );
    let (_, child_id) = mint(
        &srv,
        &parent,
        json!({"kind": "deploy", "app": "web", "name": "child"}),
    );
    let mut b = Browser::new(&srv);
    b.sign_in(&org, "/ui");
    let csrf = b.get("/ui/tokens").csrf();
    // Minted: the token once, then never again.
    let minted = b.post(
        "/ui/tokens/new",
        &[
            ("kind", "deploy"),
            ("app", "web"),
            ("name", "from-ui"),
            ("expiry", "30d"),
            ("csrf", &csrf),
        ],
    );
    assert_eq!(minted.status, 200, "{}", minted.body);
    let at = minted.body.find("mvt_").unwrap();
    let shown: String = minted.body[at..]
        .chars()
        .take_while(|c| *c != '<')
        .collect();
    let (st, v) = srv.http("POST", "/v1/verify", None, Some(&json!({"token": shown})));
    assert_eq!(st, 200, "the shown token works: {v}");
    // Found by its fingerprint, with its last use.
    let at = minted.body.find("Fingerprint <code>").unwrap() + 18;
    let fingerprint: String = minted.body[at..].chars().take(12).collect();
    let path = format!("/ui/tokens?find={fingerprint}");
    let found = crate::support::eventually(
        "the verify to show as the token's last use",
        std::time::Duration::from_secs(30),
        || Some(b.get(&path)).filter(|p| !p.body.contains("<td>never</td>")),
    );
    assert!(found.body.contains("from-ui"), "{}", found.body);
    assert!(found.body.contains("1 of 4 tokens"), "{}", found.body);
    assert!(found.body.contains("127.0.0.1"), "{}", found.body);
    let mut pages = vec![found.body];
    // Revoke the parent: the preview names the child; the confirmation revokes both.
    let preview = b.get(&format!("/ui/tokens/{parent_id}/revoke"));
    assert_eq!(preview.status, 200);
    assert!(preview.body.contains("child"), "{}", preview.body);
    let done = b.post(
        &format!("/ui/tokens/{parent_id}/revoke"),
        &[("csrf", &csrf)],
    );
    assert_eq!(done.status, 303, "{}", done.body);
    let (st, _) = srv.http("POST", "/v1/verify", None, Some(&json!({"token": parent})));
    assert_eq!(st, 401);
    let child = b.get(&format!("/ui/tokens/{child_id}"));
    assert!(child.body.contains("status revoked"), "{}", child.body);
    pages.push(child.body);
    // Rotated: the replacement once.
    let id = s(&v, "token_id").to_owned();
    let rotated = b.post(
        &format!("/ui/tokens/{id}/rotate"),
        &[("overlap", "0s"), ("csrf", &csrf)],
    );
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    assert!(rotated.body.contains("Token rotated") && rotated.body.contains("mvt_"));
    let (st, _) = srv.http("POST", "/v1/verify", None, Some(&json!({"token": shown})));
    assert_eq!(st, 401, "the old one ended");
    // No page but those two answers shows a token.
    for path in [
        "/ui/tokens",
        "/ui/audit",
        "/ui/sessions",
        &format!("/ui/tokens/{id}"),
    ] {
        pages.push(b.get(path).body);
    }
    for page in &pages {
        assert!(!page.contains("mvt_"), "a token on a page:\n{page}");
    }
}

#[test]
fn signing_out_other_sessions_ends_them() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let (_op, org) = acme(&srv);
    let mut mine = Browser::new(&srv);
    let mut theirs = Browser::new(&srv);
    mine.sign_in(&org, "/ui");
    theirs.sign_in(&org, "/ui");
    assert_eq!(theirs.get("/ui/tokens").status, 200);
    let panel = mine.get("/ui/sessions");
    assert_eq!(
        panel.body.matches("Sign out</button>").count(),
        3,
        "two rows and the frame"
    );
    let csrf = panel.csrf();
    let done = mine.post("/ui/sessions/end-others", &[("csrf", &csrf)]);
    assert_eq!(done.status, 303);
    let refused = theirs.get("/ui/tokens");
    assert_eq!(refused.status, 303, "sent to sign in");
    assert!(refused.header("location").starts_with("/ui/sign-in"));
    assert_eq!(mine.get("/ui/tokens").status, 200);
}

#[test]
fn secrets_are_set_rolled_back_unset_and_compared_and_no_value_reaches_a_page() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let (_op, org) = acme(&srv);
    let values = [
        "first-value-1f3a",
        "second-value-9c2e",
        "api-only-77d1",
        "shared-org-5b90",
    ];
    srv.set_secrets(&org, "/v1/orgs/acme/secrets", &[("SHARED", values[3])]);
    srv.set_secrets(
        &org,
        "/v1/orgs/acme/apps/api/secrets",
        &[("DB_URL", values[2]), ("ONLY_API", "x")],
    );
    let mut b = Browser::new(&srv);
    b.sign_in(&org, "/ui");
    let mut pages = Vec::new();
    let web = b.get("/ui/apps/web/secrets");
    assert_eq!(web.status, 200);
    assert!(
        web.body.contains("type=\"password\""),
        "the value goes in a password field"
    );
    let csrf = web.csrf();
    for value in &values[..2] {
        let set = b.post(
            "/ui/apps/web/secrets",
            &[
                ("name", "DB_URL"),
                ("value", value),
                ("description", "the database"),
                ("csrf", &csrf),
            ],
        );
        assert_eq!(
            (set.status, set.header("location")),
            (303, "/ui/apps/web/secrets"),
            "{}",
            set.body
        );
    }
    let listed = b.get("/ui/apps/web/secrets");
    assert!(listed.body.contains("v2") && listed.body.contains("the database"));
    assert!(listed.body.contains("SHARED"), "the org's show through");
    pages.push(listed.body);
    let rolled = b.post(
        "/ui/apps/web/secrets/DB_URL/rollback",
        &[("to", "1"), ("csrf", &csrf)],
    );
    assert_eq!(rolled.status, 303, "{}", rolled.body);
    let history = b.get("/ui/apps/web/secrets/DB_URL");
    assert!(
        history.body.contains("v3") && history.body.contains("rollback to v1"),
        "{}",
        history.body
    );
    pages.push(history.body);
    let (_, revealed) = srv.http(
        "POST",
        "/v1/orgs/acme/apps/web/secrets/reveal",
        Some(&org),
        None,
    );
    assert!(
        revealed.to_string().contains(values[0]),
        "rolled back to the first value"
    );
    // A bad name is shown on the page, not a crash.
    let bad = b.post(
        "/ui/apps/web/secrets",
        &[("name", "no spaces"), ("value", "x"), ("csrf", &csrf)],
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("role=\"alert\""));
    // Compared by the server: names only, each side audited as a reveal.
    let compared = b.post(
        "/ui/compare",
        &[("a", "web"), ("b", "api"), ("csrf", &csrf)],
    );
    assert_eq!(compared.status, 200, "{}", compared.body);
    let section = |title: &str| -> String {
        let at = compared.body.find(&format!("<dt>{title}")).unwrap();
        compared.body[at..]
            .split("</dd>")
            .next()
            .unwrap()
            .to_owned()
    };
    assert!(section("Different values").contains("DB_URL"));
    assert!(section("Only in api").contains("ONLY_API"));
    assert!(section("The same").contains("SHARED"));
    pages.push(compared.body.clone());
    let (_, audit) = srv.http(
        "GET",
        "/v1/orgs/acme/audit?action=secret.reveal",
        Some(&org),
        None,
    );
    let reveals = audit["events"].as_array().unwrap();
    assert!(
        reveals.len() >= 3,
        "two for the comparison, one above: {audit}"
    );
    // Unset: gone from the list, its history kept.
    let unset = b.post("/ui/apps/web/secrets/DB_URL/unset", &[("csrf", &csrf)]);
    assert_eq!(unset.status, 303);
    for path in [
        "/ui/apps",
        "/ui/secrets",
        "/ui/apps/web/secrets",
        "/ui/apps/web/secrets/DB_URL",
        "/ui/audit",
    ] {
        let page = b.get(path);
        assert_eq!(page.status, 200, "{path}");
        pages.push(page.body);
    }
    for page in &pages {
        for value in values {
            assert!(!page.contains(value), "a value on a page:\n{page}");
        }
    }
}

#[test]
fn a_readonly_session_gets_no_secret_forms_and_its_forged_write_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let (_op, org) = acme(&srv);
    let (readonly, _) = mint(&srv, &org, json!({"kind": "readonly", "name": "auditor"}));
    let mut b = Browser::new(&srv);
    b.sign_in(&readonly, "/ui");
    let page = b.get("/ui/apps/web/secrets");
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("Set a secret") && !page.body.contains("type=\"password\""));
    assert!(!b.get("/ui/apps").body.contains("Compare two apps"));
    let csrf = page.csrf();
    let forged = b.post(
        "/ui/apps/web/secrets",
        &[("name", "X"), ("value", "y"), ("csrf", &csrf)],
    );
    assert_eq!(forged.status, 403, "{}", forged.body);
    let (_, list) = srv.http("GET", "/v1/orgs/acme/apps/web/secrets", Some(&org), None);
    assert!(!list.to_string().contains("\"X\""), "{list}");
}

#[test]
fn third_parties_are_listed_added_and_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let (_op, org) = acme(&srv);
    let mut b = Browser::new(&srv);
    b.sign_in(&org, "/ui");
    let page = b.get("/ui/third-parties");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("None registered"));
    let csrf = page.csrf();
    let location = format!("{}/3p/gha", srv.url());
    let added = b.post(
        "/ui/third-parties",
        &[
            ("name", "gha"),
            ("location", &location),
            ("issuer", "https://token.actions.githubusercontent.com"),
            ("audience", "macvault"),
            (
                "jwks_url",
                "https://token.actions.githubusercontent.com/.well-known/jwks",
            ),
            ("csrf", &csrf),
        ],
    );
    assert_eq!(added.status, 303, "{}", added.body);
    let listed = b.get("/ui/third-parties");
    assert!(listed.body.contains("gha") && listed.body.contains("ci-oidc"));
    let (_, api) = srv.http("GET", "/v1/orgs/acme/third-parties", Some(&org), None);
    assert_eq!(api["third_parties"].as_array().unwrap().len(), 1, "{api}");
    // A bad registration is said on the page.
    let bad = b.post(
        "/ui/third-parties",
        &[
            ("name", "x"),
            ("location", "nowhere"),
            ("issuer", "i"),
            ("audience", "a"),
            ("jwks_url", "u"),
            ("csrf", &csrf),
        ],
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("role=\"alert\""));
    let removed = b.post("/ui/third-parties/gha/remove", &[("csrf", &csrf)]);
    assert_eq!(removed.status, 303, "{}", removed.body);
    assert!(b.get("/ui/third-parties").body.contains("None registered"));
}

#[test]
fn the_audit_page_filters_by_action_token_and_time() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let (_op, org) = acme(&srv);
    let (_, ci) = mint(
        &srv,
        &org,
        json!({"kind": "deploy", "app": "web", "name": "ci"}),
    );
    let mut b = Browser::new(&srv);
    b.sign_in(&org, "/ui");
    let all = b.get("/ui/audit?action=token.mint");
    assert_eq!(all.status, 200);
    assert!(all.body.contains(&ci[..12]), "{}", all.body);
    let none = b.get("/ui/audit?action=token.mint&until=2001-01-01");
    assert!(none.body.contains("No events."), "{}", none.body);
    let hour_ago = macvault::caveats::format_time(crate::support::now() - 3600);
    let since = b.get(&format!(
        "/ui/audit?action=token.mint&since={}",
        &hour_ago[..16]
    ));
    assert!(since.body.contains(&ci[..12]));
    let bad = b.get("/ui/audit?since=yesterday");
    assert_eq!(bad.status, 400);
}
