//! macvault as an OAuth 2.0 provider, over HTTP: Python's Authlib runs the whole flow
//! (metadata, PKCE, consent posted with a dashboard session, code exchange, an API call,
//! refresh, revocation); each refusal answers its RFC error; the access token holds
//! exactly the approved caveats (`tokens inspect`); signing out keeps a grant and
//! revoking the signed-in token ends it; grants are listed and revoked by the CLI and
//! the dashboard.

use serde_json::{Value, json};

use crate::dashboard::{Browser, Page};
use crate::support::{Server, acme, python_package, s};

/// A PKCE verifier and its S256 challenge.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const REDIRECT: &str = "http://127.0.0.1:53124/cb";

/// Registers a client in acme: (client_id, its secret for a confidential one).
fn register(srv: &Server, org: &str, public: bool) -> (String, Option<String>) {
    let mut args = vec![
        "oauth-clients",
        "add",
        "CI dashboard",
        "--redirect-uri",
        "http://127.0.0.1/cb",
        "--redirect-uri",
        "https://ci.example/cb",
        "--json",
    ];
    if public {
        args.push("--public");
    }
    let v = srv.cli_json(org, &args);
    let secret = v["client_secret"].as_str().map(str::to_owned);
    (s(&v, "client_id").to_owned(), secret)
}

/// An authorization request's query.
fn query(client: &str, scope: &str, extra: &[(&str, &str)]) -> String {
    let mut q = vec![
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", REDIRECT),
        ("scope", scope),
        ("state", "xyz"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    for (k, v) in extra {
        q.retain(|(k2, _)| k2 != k);
        if !v.is_empty() {
            q.push((k, v));
        }
    }
    serde_urlencoded::to_string(&q).unwrap()
}

/// The query parameters of a `Location`.
fn params_of(location: &str) -> Vec<(String, String)> {
    let q = location.split_once('?').map_or("", |(_, q)| q);
    serde_urlencoded::from_str(q).unwrap()
}

fn param(location: &str, name: &str) -> Option<String> {
    params_of(location)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// A browser signed in with `token` that has opened the consent page for `query`
/// (through the authorization endpoint and the sign-in): the page.
fn open_consent(b: &mut Browser, token: &str, query: &str) -> Page {
    let start = b.get(&format!("/oauth/authorize?{query}"));
    assert_eq!(start.status, 303, "{}", start.body);
    let consent = start.header("location").to_owned();
    assert!(consent.starts_with("/ui/consent?"), "{consent}");
    let to_sign_in = b.get(&consent);
    assert_eq!(to_sign_in.status, 303);
    let next = param(to_sign_in.header("location"), "next").unwrap();
    assert_eq!(next, consent, "sign-in returns to the consent page");
    let signed = b.sign_in(token, &next);
    assert_eq!(signed.header("location"), consent);
    let page = b.get(&consent);
    assert_eq!(page.status, 200, "{}", page.body);
    page
}

/// Posts the consent form for `query`: `decision`, keeping `keep`, with `extra`
/// fields; the answer.
fn decide(
    b: &mut Browser,
    page: &Page,
    query: &str,
    decision: &str,
    keep: &[&str],
    extra: &[(&str, &str)],
) -> Page {
    let csrf = page.csrf();
    let params: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap();
    let mut fields: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    fields.push(("csrf", &csrf));
    fields.push(("decision", decision));
    for k in keep {
        fields.push(("keep", k));
    }
    fields.extend_from_slice(extra);
    b.post("/ui/consent", &fields)
}

/// A code for `scope` approved whole by a session of `token`.
fn code_for(srv: &Server, token: &str, client: &str, scope: &str) -> String {
    let mut b = Browser::new(srv);
    let q = query(client, scope, &[]);
    let page = open_consent(&mut b, token, &q);
    let keep: Vec<&str> = scope.split(' ').collect();
    let done = decide(&mut b, &page, &q, "approve", &keep, &[]);
    assert_eq!(done.status, 303, "{}", done.body);
    let to = done.header("location");
    assert!(to.starts_with(REDIRECT), "{to}");
    assert_eq!(param(to, "state").as_deref(), Some("xyz"));
    param(to, "code").expect("a code")
}

/// A form POST to the token or revocation endpoint: (status, JSON body).
fn form_post(srv: &Server, path: &str, fields: &[(&str, &str)]) -> (u16, Value) {
    let body = serde_urlencoded::to_string(fields).unwrap();
    let (st, text) = srv.raw(
        "POST",
        path,
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(body.into_bytes()),
    );
    (
        st,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn redeem(srv: &Server, client: &str, code: &str, verifier: &str) -> (u16, Value) {
    form_post(
        srv,
        "/oauth/token",
        &[
            ("grant_type", "authorization_code"),
            ("client_id", client),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ],
    )
}

fn refresh(srv: &Server, client: &str, token: &str) -> (u16, Value) {
    form_post(
        srv,
        "/oauth/token",
        &[
            ("grant_type", "refresh_token"),
            ("client_id", client),
            ("refresh_token", token),
        ],
    )
}

fn error_of(v: &Value) -> &str {
    v["error"].as_str().unwrap_or("")
}

/// Whether `token` still reads acme's secrets.
fn reads(srv: &Server, token: &str) -> u16 {
    srv.http("GET", "/v1/orgs/acme/apps/web/secrets", Some(token), None)
        .0
}

const AUTHLIB: &str = r#"
import json, re, sys
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.common.security import generate_token

a = json.loads(sys.argv[1])
base = a["base"]
out = {}
meta = requests.get(base + "/.well-known/oauth-authorization-server").json()
out["issuer"] = meta["issuer"]
out["methods"] = meta["code_challenge_methods_supported"]

client = OAuth2Session(a["client_id"], a["client_secret"], scope="secrets:read app:web",
                       redirect_uri=a["redirect_uri"], code_challenge_method="S256",
                       token_endpoint_auth_method="client_secret_basic")
verifier = generate_token(48)
url, state = client.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier)

# The person: signs in to the dashboard and approves on the consent page.
person = requests.Session()
r = person.get(url, allow_redirects=False)
consent = r.headers["location"]
r = person.post(base + "/ui/sign-in", data={"token": a["token"], "next": consent}, allow_redirects=False)
assert r.headers["location"] == consent, r.headers
page = person.get(base + consent).text
csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
fields = dict(x.split("=", 1) for x in consent.split("?", 1)[1].split("&"))
from urllib.parse import unquote_plus
fields = {k: unquote_plus(v) for k, v in fields.items()}
fields.update({"csrf": csrf, "decision": "approve", "keep": ["secrets:read", "app:web"]})
r = person.post(base + "/ui/consent", data=fields, allow_redirects=False)
back = r.headers["location"]

token = client.fetch_token(meta["token_endpoint"], authorization_response=back, code_verifier=verifier)
out["token_type"] = token["token_type"]
out["scope"] = token["scope"]
out["access_token"] = token["access_token"]
out["call"] = client.get(base + "/v1/orgs/acme/apps/web/secrets").status_code
out["other_app"] = client.get(base + "/v1/orgs/acme/apps/api/secrets").status_code

new = client.refresh_token(meta["token_endpoint"])
out["rotated"] = new["refresh_token"] != token["refresh_token"]
out["after_refresh"] = client.get(base + "/v1/orgs/acme/apps/web/secrets").status_code
r = client.revoke_token(meta["revocation_endpoint"], token=new["refresh_token"],
                        token_type_hint="refresh_token")
out["revoke"] = r.status_code
out["after_revoke"] = client.get(base + "/v1/orgs/acme/apps/web/secrets").status_code
print(json.dumps(out))
"#;

#[test]
fn authlib_runs_the_whole_flow() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let (_op, org) = acme(&srv);
    let (client, secret) = register(&srv, &org, false);
    let authlib = python_package("Authlib==1.6.5", "authlib");
    let requests = python_package("requests==2.32.5", "requests");
    let path = std::env::join_paths([authlib, requests]).unwrap();
    let args = json!({
        "base": srv.url().trim_end_matches('/'),
        "client_id": client,
        "client_secret": secret.unwrap(),
        "redirect_uri": REDIRECT,
        "token": org,
    });
    let v = crate::support::python_json(path, AUTHLIB, args.to_string());
    assert_eq!(v["issuer"], srv.url().trim_end_matches('/'));
    assert_eq!(v["methods"], json!(["S256"]));
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["scope"], "secrets:read app:web");
    assert_eq!(v["call"], 200, "{v}");
    assert_eq!(v["other_app"], 403, "only the approved app: {v}");
    assert_eq!(v["rotated"], true);
    assert_eq!(v["after_refresh"], 200);
    assert_eq!(v["revoke"], 200);
    assert_eq!(
        v["after_revoke"], 401,
        "revoking the refresh token ends the grant"
    );
    // The access token as `tokens inspect` reads it: exactly the approved caveats on
    // the org token's.
    let inspected = srv.cli_json(
        &org,
        &["tokens", "inspect", s(&v, "access_token"), "--json"],
    );
    let caveats: Vec<&str> = inspected["caveats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap())
        .collect();
    // The org token's own (org, expiry), the approved ones, and the hour's expiry.
    assert_eq!(caveats.len(), 6, "{inspected}");
    assert_eq!(caveats[0], "org = acme");
    assert_eq!(
        caveats[2..5],
        ["resource = secrets", "actions = r", "app = web:r"],
        "{inspected}"
    );
    assert!(caveats[1].starts_with("expires < ") && caveats[5].starts_with("expires < "));
}

#[test]
fn a_narrowed_consent_yields_a_narrower_token() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let (_op, org) = acme(&srv);
    let (client, _) = register(&srv, &org, true);
    let mut b = Browser::new(&srv);
    let q = query(&client, "secrets:write app:web app:api", &[]);
    let page = open_consent(&mut b, &org, &q);
    assert!(page.body.contains("CI dashboard") && page.body.contains("acme"));
    assert!(
        page.body
            .contains("set, change, roll back and delete secrets"),
        "{}",
        page.body
    );
    // The grant is bounded by the org token (90 days), not by the 12 h session.
    assert!(
        page.body.contains("token you signed in with (<time"),
        "{}",
        page.body
    );
    assert!(!page.body.contains(">in 12h<"), "{}", page.body);
    let csp = page.header("content-security-policy");
    assert!(
        csp.ends_with("form-action 'self' http://127.0.0.1:53124"),
        "{csp}"
    );
    // Dropping every app would grant every app: refused, the form shown again.
    let none = decide(&mut b, &page, &q, "approve", &["secrets:write"], &[]);
    assert_eq!(none.status, 400);
    let done = decide(
        &mut b,
        &page,
        &q,
        "approve",
        &["secrets:write", "app:web"],
        &[("read_only", "true"), ("lifetime", "3600")],
    );
    let code = param(done.header("location"), "code").unwrap();
    let (st, t) = redeem(&srv, &client, &code, VERIFIER);
    assert_eq!(st, 200, "{t}");
    assert_eq!(t["scope"], "secrets:read app:web");
    let access = s(&t, "access_token");
    let inspected = srv.cli_json(&org, &["tokens", "inspect", access, "--json"]);
    let text = inspected["caveats"].to_string();
    assert!(
        text.contains("\"app = web:r\"") && text.contains("\"actions = r\""),
        "{text}"
    );
    assert!(!text.contains("api"), "{text}");
    let (st, _) = srv.set_secrets(access, "/v1/orgs/acme/apps/web/secrets", &[("A", "1")]);
    assert_eq!(st, 403, "read-only");
    // The grant ends within the hour the person chose: so does its token.
    let grants = srv.cli_json(&org, &["oauth-grants", "list", "--json"]);
    let g = &grants["grants"][0];
    assert_eq!(g["scopes"], json!(["secrets:read", "app:web"]));
    let ends = crate::support::parse_time(s(g, "expires")).unwrap();
    assert!(ends <= crate::support::now() + 3600, "{g}");
}

#[test]
fn refusals_answer_their_rfc_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let (op, org) = acme(&srv);
    let (client, _) = register(&srv, &org, true);
    let mut b = Browser::new(&srv);
    let error_at = |b: &mut Browser, q: &str| {
        let p = b.get(&format!("/oauth/authorize?{q}"));
        assert_eq!(p.status, 303, "{}", p.body);
        let to = p.header("location").to_owned();
        assert!(to.starts_with(REDIRECT), "{to}");
        assert_eq!(param(&to, "state").as_deref(), Some("xyz"), "{to}");
        param(&to, "error").unwrap()
    };
    // PKCE missing or plain; no such response type; a scope it may not have.
    let q = query(
        &client,
        "secrets:read",
        &[("code_challenge", ""), ("code_challenge_method", "")],
    );
    assert_eq!(error_at(&mut b, &q), "invalid_request");
    let q = query(
        &client,
        "secrets:read",
        &[("code_challenge_method", "plain")],
    );
    assert_eq!(error_at(&mut b, &q), "invalid_request");
    let q = query(&client, "secrets:read", &[("response_type", "token")]);
    assert_eq!(error_at(&mut b, &q), "unsupported_response_type");
    let q = query(&client, "secrets:reveal", &[]);
    assert_eq!(error_at(&mut b, &q), "invalid_scope");
    // An unknown client or unregistered redirect URI is shown, never redirected to.
    for q in [
        query("mvc_00000000000000000000000000000000", "secrets:read", &[]),
        query(
            &client,
            "secrets:read",
            &[("redirect_uri", "http://127.0.0.1:53124/other")],
        ),
        query(
            &client,
            "secrets:read",
            &[("redirect_uri", "http://ci.example/cb")],
        ),
    ] {
        let p = b.get(&format!("/oauth/authorize?{q}"));
        assert_eq!(p.status, 400, "{q}");
        assert!(p.header("location").is_empty());
        assert!(p.body.contains("cannot be trusted"), "{}", p.body);
    }
    // A loopback redirect on another port is the registered one.
    let q = query(
        &client,
        "secrets:read",
        &[("redirect_uri", "http://127.0.0.1:40001/cb")],
    );
    assert_eq!(b.get(&format!("/oauth/authorize?{q}")).status, 303);

    // The token endpoint: each refusal with its error, none spending the code.
    let code = code_for(&srv, &org, &client, "secrets:read");
    let unknown = "mvc_00000000000000000000000000000000";
    let wrong = "x".repeat(43);
    let code_grant = "authorization_code";
    let (cid, wrong) = (client.as_str(), wrong.as_str());
    let cases = [
        (
            code_grant,
            cid,
            REDIRECT,
            Some(wrong),
            (400, "invalid_grant"),
            "a wrong verifier",
        ),
        (
            code_grant,
            cid,
            REDIRECT,
            None,
            (400, "invalid_request"),
            "no verifier",
        ),
        (
            code_grant,
            cid,
            "http://127.0.0.1:53125/cb",
            Some(VERIFIER),
            (400, "invalid_grant"),
            "another redirect URI",
        ),
        (
            code_grant,
            unknown,
            REDIRECT,
            Some(VERIFIER),
            (401, "invalid_client"),
            "an unknown client",
        ),
        (
            "password",
            cid,
            REDIRECT,
            Some(VERIFIER),
            (400, "unsupported_grant_type"),
            "a grant type of no use",
        ),
    ];
    for (grant_type, id, redirect, verifier, want, why) in cases {
        let mut fields = vec![
            ("grant_type", grant_type),
            ("client_id", id),
            ("code", code.as_str()),
            ("redirect_uri", redirect),
        ];
        fields.extend(verifier.map(|v| ("code_verifier", v)));
        let (st, v) = form_post(&srv, "/oauth/token", &fields);
        assert_eq!((st, error_of(&v)), want, "{why}: {v}");
    }
    // Code reuse: refused, and what the first redemption gave is revoked.
    let (st, first) = redeem(&srv, &client, &code, VERIFIER);
    assert_eq!(st, 200, "{first}");
    assert_eq!(first.get("refresh_token").map(Value::is_string), Some(true));
    assert_eq!(reads(&srv, s(&first, "access_token")), 200);
    let (st, v) = redeem(&srv, &client, &code, VERIFIER);
    assert_eq!((st, error_of(&v)), (400, "invalid_grant"), "{v}");
    assert_eq!(reads(&srv, s(&first, "access_token")), 401);

    // Refresh-token reuse: refused, and the whole grant revoked.
    let code = code_for(&srv, &org, &client, "secrets:read");
    let (_, one) = redeem(&srv, &client, &code, VERIFIER);
    let (st, two) = refresh(&srv, &client, s(&one, "refresh_token"));
    assert_eq!(st, 200, "{two}");
    let (st, v) = refresh(&srv, &client, s(&one, "refresh_token"));
    assert_eq!((st, error_of(&v)), (400, "invalid_grant"), "{v}");
    assert_eq!(reads(&srv, s(&two, "access_token")), 401);
    let (st, v) = refresh(&srv, &client, s(&two, "refresh_token"));
    assert_eq!((st, error_of(&v)), (400, "invalid_grant"), "{v}");

    // A client of another org: refused at consent, back to the client.
    let (st, beta) = srv.http(
        "POST",
        "/v1/orgs",
        Some(&op),
        Some(&json!({"name": "beta"})),
    );
    assert_eq!(st, 201, "{beta}");
    let beta_org = s(&beta, "token").to_owned();
    let (other, _) = {
        let v = srv.cli_json(
            &beta_org,
            &[
                "oauth-clients",
                "add",
                "beta tool",
                "--redirect-uri",
                "http://127.0.0.1/cb",
                "--public",
                "--json",
            ],
        );
        (s(&v, "client_id").to_owned(), ())
    };
    let mut b = Browser::new(&srv);
    let q = query(&other, "secrets:read", &[]);
    let start = b.get(&format!("/oauth/authorize?{q}"));
    let consent = start.header("location").to_owned();
    b.sign_in(&org, &consent);
    let refused = b.get(&consent);
    assert_eq!(refused.status, 303);
    assert_eq!(
        param(refused.header("location"), "error").as_deref(),
        Some("unauthorized_client")
    );
    // Denying sends access_denied back.
    let q = query(&client, "secrets:read", &[]);
    let page = b.get(&format!("/ui/consent?{q}"));
    let denied = decide(&mut b, &page, &q, "deny", &[], &[]);
    assert_eq!(
        param(denied.header("location"), "error").as_deref(),
        Some("access_denied")
    );
}

#[test]
fn an_absolute_return_address_after_sign_in_is_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let (_op, org) = acme(&srv);
    let (client, _) = register(&srv, &org, true);
    let mut b = Browser::new(&srv);
    let q = query(&client, "secrets:read", &[]);
    let consent = b
        .get(&format!("/oauth/authorize?{q}"))
        .header("location")
        .to_owned();
    assert!(
        b.get(&consent)
            .header("location")
            .starts_with("/ui/sign-in?next=")
    );
    for evil in [
        "https://evil.example/ui/consent",
        "//evil.example/ui",
        "http://127.0.0.1:53124/cb",
    ] {
        let mut fresh = Browser::new(&srv);
        assert_eq!(
            fresh.sign_in(&org, evil).header("location"),
            "/ui",
            "{evil}"
        );
    }
}

#[test]
fn signing_out_keeps_a_grant_and_revoking_the_signed_in_token_ends_it() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let (_op, org) = acme(&srv);
    let (client, _) = register(&srv, &org, true);
    let (person, person_id) = crate::dashboard::mint(
        &srv,
        &org,
        json!({"kind": "deploy", "app": "web", "name": "ana"}),
    );
    let mut b = Browser::new(&srv);
    let q = query(&client, "secrets:read app:web", &[]);
    let page = open_consent(&mut b, &person, &q);
    let done = decide(
        &mut b,
        &page,
        &q,
        "approve",
        &["secrets:read", "app:web"],
        &[],
    );
    let code = param(done.header("location"), "code").unwrap();
    let (_, t) = redeem(&srv, &client, &code, VERIFIER);
    assert_eq!(reads(&srv, s(&t, "access_token")), 200, "{t}");
    let csrf = b.get("/ui/sessions").csrf();
    let out = b.post("/ui/sign-out", &[("csrf", &csrf)]);
    assert_eq!(out.status, 303);
    assert_eq!(
        reads(&srv, s(&t, "access_token")),
        200,
        "signing out keeps the grant"
    );
    let (st, t2) = refresh(&srv, &client, s(&t, "refresh_token"));
    assert_eq!(st, 200, "{t2}");
    // The access token is a child of the signed-in token in the ledger.
    let shown = srv.cli_json(&org, &["tokens", "show", &person_id, "--json"]);
    let kinds: Vec<&str> = shown["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"oauth"), "{shown}");
    srv.cli_ok(&org, &["tokens", "revoke", &person_id, "--yes"]);
    assert_eq!(reads(&srv, s(&t2, "access_token")), 401);
    let (st, v) = refresh(&srv, &client, s(&t2, "refresh_token"));
    assert_eq!((st, error_of(&v)), (400, "invalid_grant"), "{v}");
    let grants = srv.cli_json(&org, &["oauth-grants", "list", "--json"]);
    assert_eq!(grants["grants"][0]["live"], false, "{grants}");
}

#[test]
fn grants_are_listed_and_revoked_by_the_cli_and_the_dashboard() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let (_op, org) = acme(&srv);
    let (client, _) = register(&srv, &org, true);
    let (_, first) = redeem(
        &srv,
        &client,
        &code_for(&srv, &org, &client, "secrets:read"),
        VERIFIER,
    );
    let (_, second) = redeem(
        &srv,
        &client,
        &code_for(&srv, &org, &client, "audit:read"),
        VERIFIER,
    );
    let list = srv.cli_ok(&org, &["oauth-grants", "list"]);
    assert!(
        list.contains("CI dash") && list.contains("audit:read") && list.contains("live"),
        "{list}"
    );
    let grants = srv.cli_json(&org, &["oauth-grants", "list", "--json"]);
    let id_of = |scope: &str| {
        grants["grants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["scopes"] == json!([scope]))
            .map(|g| s(g, "id").to_owned())
            .unwrap()
    };
    srv.cli_ok(&org, &["oauth-grants", "revoke", &id_of("secrets:read")]);
    assert_eq!(reads(&srv, s(&first, "access_token")), 401);
    // The dashboard's "Authorized applications".
    let mut b = Browser::new(&srv);
    b.sign_in(&org, "/ui");
    let page = b.get("/ui/oauth-grants");
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("Authorized applications") && page.body.contains("audit:read"),
        "{}",
        page.body
    );
    let audit_grant = id_of("audit:read");
    let done = b.post(
        &format!("/ui/oauth-grants/{audit_grant}/revoke"),
        &[("csrf", &page.csrf())],
    );
    assert_eq!(done.status, 303, "{}", done.body);
    let (st, _) = srv.http(
        "GET",
        "/v1/orgs/acme/audit",
        Some(s(&second, "access_token")),
        None,
    );
    assert_eq!(st, 401);
    let (_, audit) = srv.http(
        "GET",
        "/v1/orgs/acme/audit?action=oauth.grant_revoke",
        Some(&org),
        None,
    );
    assert_eq!(audit["events"].as_array().unwrap().len(), 2, "{audit}");
}

#[test]
fn metadata_names_the_public_url() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start_with(tmp.path(), &["--public-url", "https://vault.example"]);
    let (st, v) = srv.http("GET", "/.well-known/oauth-authorization-server", None, None);
    assert_eq!(st, 200);
    assert_eq!(v["issuer"], "https://vault.example");
    assert_eq!(
        v["authorization_endpoint"],
        "https://vault.example/oauth/authorize"
    );
    assert_eq!(v["token_endpoint"], "https://vault.example/oauth/token");
    assert_eq!(
        v["revocation_endpoint"],
        "https://vault.example/oauth/revoke"
    );
    assert_eq!(v["code_challenge_methods_supported"], json!(["S256"]));
}
