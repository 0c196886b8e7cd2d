//! Authorization through the real server: a table of tokens × endpoints with the exact
//! outcome of every cell, and malformed requests that must get a clean 4xx, never a 500.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Checks, Server, acme, code, is_error_body, s};

/// Mints in acme over HTTP: (token, id).
fn mint(srv: &Server, by: &str, body: &Value) -> (String, String) {
    let (st, v) = srv.http("POST", "/v1/orgs/acme/tokens", Some(by), Some(body));
    assert_eq!(st, 201, "mint {body}: {v}");
    (s(&v, "token").to_owned(), s(&v["record"], "id").to_owned())
}

/// `tokens attenuate ARGS…` through the CLI (offline).
fn attenuate(srv: &Server, token: &str, args: &[&str]) -> String {
    let mut all = vec!["tokens", "attenuate"];
    all.extend_from_slice(args);
    srv.cli_ok(token, &all).trim().to_owned()
}

/// A bad-input case: (what, method, path, authorization, content type, body, status, code).
type Case<'a> = (
    &'a str,
    &'a str,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    Option<Vec<u8>>,
    u16,
    &'a str,
);

/// The columns: an endpoint and action each. `ok` is the status of an allowed request.
const COLUMNS: [(&str, u16); 20] = [
    ("GET org", 200),
    ("PATCH org", 200),
    ("mint org", 201),
    ("mint deploy web", 201),
    ("mint deploy api", 201),
    ("mint readonly", 201),
    ("mint runtime web", 201),
    ("list tokens", 200),
    ("revoke deploy-web id", 200),
    ("list keys", 200),
    ("rotate key", 200),
    ("retire key v2", 200),
    ("audit", 200),
    ("create org", 201),
    ("verify web read", 200),
    ("verify web write", 200),
    ("verify web reveal", 200),
    ("verify api read", 200),
    ("verify api write", 200),
    ("verify api reveal", 200),
];

/// The request of column `col` for row `row` presenting `token`.
fn cell(srv: &Server, col: &str, row: &str, token: &str, victim: &str) -> (u16, Value) {
    let t = Some(token);
    let mint_body = |kind: &str, app: Option<&str>| {
        let mut b = json!({"kind": kind, "name": format!("by-{row}"), "expiry_secs": 3600});
        if let Some(app) = app {
            b["app"] = json!(app);
        }
        b
    };
    let tokens = "/v1/orgs/acme/tokens";
    match col {
        "GET org" => srv.http("GET", "/v1/orgs/acme", t, None),
        "PATCH org" => srv.http(
            "PATCH",
            "/v1/orgs/acme",
            t,
            Some(&json!({"max_expiry_secs": null})),
        ),
        "mint org" => srv.http("POST", tokens, t, Some(&mint_body("org", None))),
        "mint deploy web" => srv.http("POST", tokens, t, Some(&mint_body("deploy", Some("web")))),
        "mint deploy api" => srv.http("POST", tokens, t, Some(&mint_body("deploy", Some("api")))),
        "mint readonly" => srv.http("POST", tokens, t, Some(&mint_body("readonly", None))),
        "mint runtime web" => srv.http("POST", tokens, t, Some(&mint_body("runtime", Some("web")))),
        "list tokens" => srv.http("GET", tokens, t, None),
        "revoke deploy-web id" => srv.http("POST", &format!("/v1/tokens/{victim}/revoke"), t, None),
        "list keys" => srv.http("GET", "/v1/orgs/acme/keys", t, None),
        "rotate key" => srv.http("POST", "/v1/orgs/acme/keys/rotate", t, None),
        "retire key v2" => srv.http("POST", "/v1/orgs/acme/keys/2/retire", t, None),
        "audit" => srv.http("GET", "/v1/orgs/acme/audit", t, None),
        "create org" => srv.http(
            "POST",
            "/v1/orgs",
            t,
            Some(&json!({"name": format!("new-{row}")})),
        ),
        verify => {
            let mut words = verify.split(' ').skip(1);
            let (app, action) = (words.next(), words.next());
            let body = json!({
                "token": token,
                "access": {"org": "acme", "app": app, "resource": "secrets", "action": action},
            });
            srv.http("POST", "/v1/verify", None, Some(&body))
        }
    }
}

/// Checks one answer against its expectation letter: `A` allowed, `D` denied by a caveat,
/// `L` 403 outside the token's lineage (caveats allow it, lineage does not), `N` 404 (a
/// token of another org is out of reach: not even its existence is told), `E` 401
/// expired, `R` 401 revoked.
fn judge(col: &str, ok: u16, want: char, st: u16, v: &Value) -> Result<(), String> {
    let is_verify = col.starts_with("verify");
    let denial_ok =
        |d: &Value| d["index"].is_u64() && d["caveat"].is_string() && !s(d, "reason").is_empty();
    let good = match want {
        'A' if is_verify => st == 200 && v["allowed"] == json!(true),
        'A' => st == ok,
        'D' if is_verify => st == 200 && v["allowed"] == json!(false) && denial_ok(&v["denial"]),
        'D' => st == 403 && code(v) == "denied" && denial_ok(&v["denial"]),
        'L' => st == 403 && code(v) == "denied" && v["denial"].is_null(),
        'N' => st == 404 && code(v) == "not_found",
        'E' => st == 401 && code(v) == "expired",
        'R' => st == 401 && code(v) == "revoked",
        other => return Err(format!("bad expectation letter {other:?}")),
    };
    let what = match want {
        'A' if is_verify => "200 allowed".to_owned(),
        'A' => format!("{ok}"),
        'D' if is_verify => "200 with allowed=false and a denial".to_owned(),
        'D' => "403 denied with a denial".to_owned(),
        'L' => "403 denied by lineage".to_owned(),
        'E' => "401 expired".to_owned(),
        'N' => "404 not_found".to_owned(),
        _ => "401 revoked".to_owned(),
    };
    if good {
        Ok(())
    } else {
        Err(format!("want {what}, got {st} {v}"))
    }
}

#[test]
fn authz_matrix() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // Hundreds of denials from one address: the failure limiter (tested in serving.rs)
    // is set out of the way, so each answer is the rule's own.
    let srv = Server::start_with(&tmp.path().join("data"), &["--rate-burst", "1000000"]);
    let (op, org) = acme(&srv);
    let (st, v) = srv.http(
        "POST",
        "/v1/orgs",
        Some(&op),
        Some(&json!({"name": "beta"})),
    );
    assert_eq!(st, 201, "create beta: {v}");
    let beta = s(&v, "token").to_owned();
    let beta_id = s(&v, "token_id").to_owned();

    // The expired token first, so the sleep overlaps the rest of the set-up.
    let expired_at = Instant::now();
    let (expired, _) = mint(
        &srv,
        &org,
        &json!({"kind": "org", "name": "short-lived", "expiry_secs": 1}),
    );
    let day = 86_400;
    let (deploy, deploy_id) = mint(
        &srv,
        &org,
        &json!({"kind": "deploy", "app": "web", "name": "ci", "expiry_secs": day}),
    );
    let (readonly, _) = mint(&srv, &org, &json!({"kind": "readonly", "expiry_secs": day}));
    let (runtime, _) = mint(
        &srv,
        &org,
        &json!({"kind": "runtime", "app": "web", "expiry_secs": day}),
    );
    let (_, victim) = mint(
        &srv,
        &org,
        &json!({"kind": "deploy", "app": "web", "name": "victim", "expiry_secs": day}),
    );
    let (doomed, doomed_id) = mint(
        &srv,
        &org,
        &json!({"kind": "deploy", "app": "web", "name": "doomed", "expiry_secs": day}),
    );
    let deploy_ro = attenuate(&srv, &deploy, &["--read-only"]);
    let org_web_r = attenuate(&srv, &org, &["--app", "web:r"]);
    let doomed_att = attenuate(&srv, &doomed, &["--read-only"]);
    let (st, v) = srv.http(
        "POST",
        &format!("/v1/tokens/{doomed_id}/revoke"),
        Some(&org),
        None,
    );
    assert_eq!(st, 200, "revoke doomed: {v}");
    // Spare key versions: every row token is under v1; v2 is retired by the matrix.
    for _ in 0..2 {
        let (st, v) = srv.http("POST", "/v1/orgs/acme/keys/rotate", Some(&org), None);
        assert_eq!(st, 200, "rotate: {v}");
    }
    if let Some(wait) = Duration::from_millis(2100).checked_sub(expired_at.elapsed()) {
        std::thread::sleep(wait);
    }

    // Columns (see COLUMNS), grouped 7 + 7 + 6 for reading.
    #[rustfmt::skip]
    let rows: [(&str, &str, &str); 11] = [
        //                            GET PATCH mint:org dweb dapi ro rt | list revoke keys rotate retire audit create | verify: web r w v, api r w v
        ("org",           org.as_str(),       "AAAAAAA AAAAAAD AAAAAA"),
        ("deploy-web",    deploy.as_str(),    "DDDADDD DLDDDDD AADDDD"),
        ("readonly",      readonly.as_str(),  "ADDDDDD ADADDAD ADDADD"),
        ("runtime-web",   runtime.as_str(),   "DDDDDDD DDDDDDD ADADDD"),
        ("operator",      op.as_str(),        "DDDDDDD DNDDDDA DDDDDD"),
        ("beta-org",      beta.as_str(),      "DDDDDDD DNDDDDD DDDDDD"),
        ("deploy-web-ro", deploy_ro.as_str(), "DDDDDDD DDDDDDD ADDDDD"),
        ("org-web-r",     org_web_r.as_str(), "DDDDDDD DDDDDDD ADDDDD"),
        ("expired",       expired.as_str(),   "EEEEEEE EEEEEEE EEEEEE"),
        ("revoked",       doomed.as_str(),    "RRRRRRR RRRRRRR RRRRRR"),
        ("revoked-att",   doomed_att.as_str(), "RRRRRRR RRRRRRR RRRRRR"),
    ];
    // Cells whose denial must name a particular caveat or reason: (row, column, text).
    let denials: [(&str, &str, &str); 10] = [
        (
            "beta-org",
            "GET org",
            "this token is for org \"beta\", not \"acme\"",
        ),
        (
            "operator",
            "mint org",
            "this token is for org \"system\", not \"acme\"",
        ),
        ("readonly", "PATCH org", "actions = r"),
        ("readonly", "mint readonly", "actions = r"),
        ("deploy-web", "mint deploy api", "app = web:rwcdx"),
        (
            "deploy-web",
            "mint org",
            "does not allow org-level requests",
        ),
        (
            "deploy-web",
            "mint runtime web",
            "cannot mint rights it does not hold",
        ),
        ("deploy-web", "verify web reveal", "app = web:rwcdx"),
        // Another deploy token of web, minted by the org: not in deploy-web's lineage.
        (
            "deploy-web",
            "revoke deploy-web id",
            "only itself (as minted) and the tokens minted from it",
        ),
        ("org-web-r", "verify web write", "app = web:r"),
    ];

    let mut c = Checks::new();
    for (row, token, expect) in rows {
        let letters: Vec<char> = expect.chars().filter(|ch| !ch.is_whitespace()).collect();
        assert_eq!(
            letters.len(),
            COLUMNS.len(),
            "row {row} has a letter per column"
        );
        for ((col, ok), want) in COLUMNS.iter().zip(letters) {
            let (st, v) = cell(&srv, col, row, token, &victim);
            if let Err(why) = judge(col, *ok, want, st, &v) {
                c.check(false, format!("[{row} × {col}] {why}"));
                continue;
            }
            c.check(st != 500, format!("[{row} × {col}] 500"));
            if st >= 400 {
                c.check(
                    is_error_body(&v),
                    format!("[{row} × {col}] error body: {v}"),
                );
            }
            for (r, cl, text) in denials {
                if r == row && cl == *col {
                    let d = &v["denial"];
                    c.check(
                        s(d, "caveat").contains(text)
                            || s(d, "reason").contains(text)
                            || s(&v["error"], "message").contains(text),
                        format!("[{row} × {col}] denial should mention {text:?}: {d}"),
                    );
                }
            }
        }
    }

    // Denials are logged in the denied token's own org: beta's never reach acme's log.
    let (st, acme_log) = srv.http("GET", "/v1/orgs/acme/audit?limit=1000", Some(&org), None);
    c.same(st, 200, "acme audit");
    let acme_events = acme_log["events"].as_array().cloned().unwrap_or_default();
    c.check(
        acme_events.iter().all(|e| s(e, "actor") != beta_id),
        "beta's token appears in acme's audit log",
    );
    c.check(
        acme_events
            .iter()
            .any(|e| s(e, "action") == "request.denied" && s(e, "actor") == deploy_id),
        "acme's audit has the deploy token's denials",
    );
    let (st, beta_log) = srv.http("GET", "/v1/orgs/beta/audit?limit=1000", Some(&beta), None);
    c.same(st, 200, "beta audit");
    c.check(
        beta_log["events"].as_array().is_some_and(|a| {
            a.iter()
                .any(|e| s(e, "action") == "request.denied" && s(e, "actor") == beta_id)
        }),
        format!("beta's denials are in beta's log: {beta_log}"),
    );
    // The victim was revoked by the first allowed row, and v2 retired.
    let (st, keys) = srv.http("GET", "/v1/orgs/acme/keys", Some(&org), None);
    c.check(
        st == 200
            && keys["keys"][1]["version"] == json!(2)
            && keys["keys"][1]["retired"].is_string(),
        format!("v2 retired by the matrix: {keys}"),
    );

    let logs = srv.stop();
    c.check(
        !logs.stderr.contains("panicked") && !logs.stderr.contains("internal error"),
        "the server log shows a panic or an internal error",
    );
    c.finish();
}

#[test]
fn authz_bad_input_is_4xx_never_500() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let srv = Server::start(&tmp.path().join("data"));
    let (op, org) = acme(&srv);
    let org_bearer = format!("Bearer {org}");
    let op_bearer = format!("Bearer {op}");
    let auth = org_bearer.as_str();
    let lower_bearer = format!("bearer {org}");
    let json_ct = ("content-type", "application/json");
    let big = format!(r#"{{"kind":"org","name":"{}"}}"#, "x".repeat(70 * 1024));
    let big_verify = format!(r#"{{"token":"mvt_{}"}}"#, "A".repeat(70 * 1024));
    // A bit flipped in the signature (the last 32 bytes; base64 keeps it clear of the end).
    let forged = crate::support::forged(&org);
    let forged_bearer = format!("Bearer {forged}");
    let long_bearer = format!("Bearer mvt_{}", "A".repeat(20_000));
    let verify_org = |access: Value| json!({"token": org, "access": access}).to_string();

    let mint = "/v1/orgs/acme/tokens";
    #[rustfmt::skip]
    let cases: Vec<Case<'_>> = vec![
        ("malformed JSON", "POST", mint, Some(auth), Some("application/json"), Some(r#"{"kind": "org","#.into()), 400, "bad_request"),
        ("not JSON at all", "POST", mint, Some(auth), Some("application/json"), Some("kind=org".into()), 400, "bad_request"),
        ("JSON without content type", "POST", mint, Some(auth), None, Some(r#"{"kind":"org"}"#.into()), 400, "bad_request"),
        ("empty body", "POST", mint, Some(auth), Some("application/json"), Some(Vec::new()), 400, "bad_request"),
        ("not UTF-8", "POST", mint, Some(auth), Some("application/json"), Some(b"{\"kind\":\"\xff\"}".to_vec()), 400, "bad_request"),
        ("unknown field", "POST", mint, Some(auth), Some("application/json"), Some(r#"{"kind":"org","expiry_secs":60,"colour":"red"}"#.into()), 400, "bad_request"),
        ("wrong type", "POST", mint, Some(auth), Some("application/json"), Some(r#"{"kind":"org","expiry_secs":"soon"}"#.into()), 400, "bad_request"),
        ("negative expiry", "POST", mint, Some(auth), Some("application/json"), Some(r#"{"kind":"org","expiry_secs":-1}"#.into()), 400, "bad_request"),
        ("expiry beyond u64", "POST", mint, Some(auth), Some("application/json"), Some(r#"{"kind":"org","expiry_secs":100000000000000000000}"#.into()), 400, "bad_request"),
        ("zero expiry", "POST", mint, Some(auth), Some("application/json"), Some(r#"{"kind":"org","expiry_secs":0}"#.into()), 400, "bad_request"),
        ("expiry u64::MAX outlives the presenter", "POST", mint, Some(auth), Some("application/json"), Some(r#"{"kind":"org","expiry_secs":18446744073709551615}"#.into()), 400, "bad_request"),
        ("unknown kind", "POST", mint, Some(auth), Some("application/json"), Some(r#"{"kind":"admin","expiry_secs":60}"#.into()), 400, "bad_request"),
        ("deploy without app", "POST", mint, Some(auth), Some("application/json"), Some(r#"{"kind":"deploy","expiry_secs":60}"#.into()), 400, "bad_request"),
        ("readonly with app", "POST", mint, Some(auth), Some("application/json"), Some(r#"{"kind":"readonly","app":"web","expiry_secs":60}"#.into()), 400, "bad_request"),
        ("invalid app name", "POST", mint, Some(auth), Some("application/json"), Some(r#"{"kind":"deploy","app":"Web!","expiry_secs":60}"#.into()), 400, "bad_request"),
        ("empty token name", "POST", mint, Some(auth), Some("application/json"), Some(r#"{"kind":"org","name":"","expiry_secs":60}"#.into()), 400, "bad_request"),
        ("token name too long", "POST", mint, Some(auth), Some("application/json"), Some(format!(r#"{{"kind":"org","name":"{}","expiry_secs":60}}"#, "n".repeat(65)).into_bytes()), 400, "bad_request"),
        ("control character in name", "POST", mint, Some(auth), Some("application/json"), Some(r#"{"kind":"org","name":"a\u0007b","expiry_secs":60}"#.into()), 400, "bad_request"),
        ("invalid org in path", "POST", "/v1/orgs/ACME!/tokens", Some(auth), Some("application/json"), Some(r#"{"kind":"org","expiry_secs":60}"#.into()), 400, "bad_request"),
        ("another org in path", "POST", "/v1/orgs/ghost/tokens", Some(auth), Some("application/json"), Some(r#"{"kind":"org","expiry_secs":60}"#.into()), 403, "denied"),
        ("body over 64 KiB (mint)", "POST", mint, Some(auth), Some("application/json"), Some(big.clone().into_bytes()), 413, "too_large"),
        ("body over 64 KiB (patch)", "PATCH", "/v1/orgs/acme", Some(auth), Some("application/json"), Some(big.clone().into_bytes()), 413, "too_large"),
        ("body over 64 KiB (create org)", "POST", "/v1/orgs", Some(op_bearer.as_str()), Some("application/json"), Some(big.into_bytes()), 413, "too_large"),
        ("body over 64 KiB (verify)", "POST", "/v1/verify", None, Some("application/json"), Some(big_verify.into_bytes()), 413, "too_large"),
        ("garbage bearer", "GET", "/v1/orgs/acme", Some("Bearer garbage"), None, None, 401, "malformed"),
        ("empty mvt_ bearer", "GET", "/v1/orgs/acme", Some("Bearer mvt_"), None, None, 401, "malformed"),
        ("short mvt_ bearer", "GET", "/v1/orgs/acme", Some("Bearer mvt_AAAA"), None, None, 401, "malformed"),
        ("20 KB bearer", "GET", "/v1/orgs/acme", Some(long_bearer.as_str()), None, None, 401, "malformed"),
        ("forged signature", "GET", "/v1/orgs/acme", Some(forged_bearer.as_str()), None, None, 401, "bad_signature"),
        ("missing bearer", "GET", "/v1/orgs/acme", None, None, None, 401, "missing_token"),
        ("basic auth", "GET", "/v1/orgs/acme", Some("Basic YTpi"), None, None, 401, "missing_token"),
        ("missing bearer on mint", "POST", mint, None, Some("application/json"), Some(r#"{"kind":"org"}"#.into()), 401, "missing_token"),
        ("unknown route", "GET", "/v1/nope", Some(auth), None, None, 404, "not_found"),
        ("root", "GET", "/", None, None, None, 404, "not_found"),
        ("unknown org sub-route", "GET", "/v1/orgs/acme/widgets", Some(auth), None, None, 404, "not_found"),
        ("wrong method", "DELETE", "/v1/orgs/acme", Some(auth), None, None, 405, "method_not_allowed"),
        ("bad token id", "POST", "/v1/tokens/zzz/revoke", Some(auth), None, None, 400, "bad_request"),
        ("token id too short", "POST", "/v1/tokens/abcd/revoke", Some(auth), None, None, 400, "bad_request"),
        ("unknown token id", "POST", "/v1/tokens/0123456789abcdef0123456789abcdef/revoke", Some(auth), None, None, 404, "not_found"),
        ("bad key version", "POST", "/v1/orgs/acme/keys/abc/retire", Some(auth), None, None, 400, "bad_request"),
        ("negative key version", "POST", "/v1/orgs/acme/keys/-1/retire", Some(auth), None, None, 400, "bad_request"),
        ("key version 0", "POST", "/v1/orgs/acme/keys/0/retire", Some(auth), None, None, 404, "not_found"),
        ("retire the current key", "POST", "/v1/orgs/acme/keys/1/retire", Some(auth), None, None, 409, "conflict"),
        ("audit limit not a number", "GET", "/v1/orgs/acme/audit?limit=abc", Some(auth), None, None, 400, "bad_request"),
        ("audit limit overflows", "GET", "/v1/orgs/acme/audit?limit=99999999999999999999999", Some(auth), None, None, 400, "bad_request"),
        ("audit unknown parameter", "GET", "/v1/orgs/acme/audit?bogus=1", Some(auth), None, None, 400, "bad_request"),
        ("verify without body", "POST", "/v1/verify", None, Some("application/json"), None, 400, "bad_request"),
        ("verify garbage token", "POST", "/v1/verify", None, Some("application/json"), Some(r#"{"token":"x"}"#.into()), 401, "malformed"),
        ("verify unknown action", "POST", "/v1/verify", None, Some("application/json"), Some(verify_org(json!({"org":"acme","resource":"secrets","action":"peek"})).into_bytes()), 400, "bad_request"),
        ("verify invalid secret name", "POST", "/v1/verify", None, Some("application/json"), Some(verify_org(json!({"org":"acme","resource":"secrets","action":"read","secret":"a b"})).into_bytes()), 400, "bad_request"),
        ("verify unknown field", "POST", "/v1/verify", None, Some("application/json"), Some(json!({"token": org, "extra": 1}).to_string().into_bytes()), 400, "bad_request"),
        ("verify bad source ip", "POST", "/v1/verify", None, Some("application/json"), Some(json!({"token": org, "source_ip": "not-an-ip"}).to_string().into_bytes()), 400, "bad_request"),
        ("create org: invalid name", "POST", "/v1/orgs", Some(op_bearer.as_str()), Some("application/json"), Some(r#"{"name":"Bad Name"}"#.into()), 400, "bad_request"),
        ("create org: name too long", "POST", "/v1/orgs", Some(op_bearer.as_str()), Some("application/json"), Some(format!(r#"{{"name":"{}"}}"#, "a".repeat(64)).into_bytes()), 400, "bad_request"),
        ("create org: exists", "POST", "/v1/orgs", Some(op_bearer.as_str()), Some("application/json"), Some(r#"{"name":"acme"}"#.into()), 409, "conflict"),
        ("create org: system", "POST", "/v1/orgs", Some(op_bearer.as_str()), Some("application/json"), Some(r#"{"name":"system"}"#.into()), 409, "conflict"),
        ("create org: unknown field", "POST", "/v1/orgs", Some(op_bearer.as_str()), Some("application/json"), Some(r#"{"name":"delta","owner":"me"}"#.into()), 400, "bad_request"),
        ("patch: field missing", "PATCH", "/v1/orgs/acme", Some(auth), Some("application/json"), Some(r#"{}"#.into()), 400, "bad_request"),
        ("patch: zero max expiry", "PATCH", "/v1/orgs/acme", Some(auth), Some("application/json"), Some(r#"{"max_expiry_secs":0}"#.into()), 400, "bad_request"),
        ("patch: negative max expiry", "PATCH", "/v1/orgs/acme", Some(auth), Some("application/json"), Some(r#"{"max_expiry_secs":-5}"#.into()), 400, "bad_request"),
        ("patch: unknown org", "PATCH", "/v1/orgs/ghost", Some(auth), Some("application/json"), Some(r#"{"max_expiry_secs":60}"#.into()), 403, "denied"),
    ];

    let mut c = Checks::new();
    for (what, method, path, authz, ct, body, want_status, want_code) in cases {
        let mut headers = Vec::new();
        if let Some(a) = authz {
            headers.push(("authorization", a));
        }
        if let Some(ct) = ct {
            headers.push((json_ct.0, ct));
        }
        let (st, text) = srv.raw(method, path, &headers, body);
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        let shown = v.to_string().chars().take(300).collect::<String>();
        c.check(st != 500, format!("{what}: 500 {shown}"));
        c.same(
            st,
            want_status,
            format!("{what}: status ({method} {path}) {shown}"),
        );
        c.check(
            is_error_body(&v),
            format!("{what}: error body is {{\"error\": {{\"code\", \"message\"}}}}: {shown}"),
        );
        if !want_code.is_empty() {
            c.same(code(&v), want_code, format!("{what}: error code"));
        }
    }
    // The scheme name of `Authorization` is case-insensitive (RFC 9110).
    let (st, _) = srv.raw(
        "GET",
        "/v1/orgs/acme",
        &[("authorization", lower_bearer.as_str())],
        None,
    );
    c.same(st, 200, "lowercase bearer scheme");
    // The server is still healthy and the org token still works.
    let (st, _) = srv.http("GET", "/v1/orgs/acme", Some(&org), None);
    c.same(st, 200, "acme after the bad requests");
    let logs = srv.stop();
    c.check(
        !logs.stderr.contains("panicked") && !logs.stderr.contains("internal error"),
        "the server log shows a panic or an internal error",
    );
    c.finish();
}
