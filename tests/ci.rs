//! CI discharges end to end, through the real binary, with a stand-in provider
//! (`support::oidc`): a CI-requiring token is refused alone, `tokens discharge` with the
//! job's ID token completes it, each ID token discharges one ticket set, and every
//! check of the ID token and of the conditions refuses what it should, naming the
//! ticket and the check.

use std::path::Path;

use serde_json::{Value, json};

use crate::support::oidc::{GITHUB, GITLAB, Provider, StandIn, github_claims, gitlab_claims};
use crate::support::pg::TestDb;
use crate::support::{Server, acme, now};

const AUDIENCE: &str = "macvault";
const REPO_ID: &str = "claim repository_id = 892374561";
const MAIN: &str = "claim ref = refs/heads/main";

/// A server with the org `acme`, its third party `gha` (GitHub's issuer, keys from a
/// JWKS file) and a deploy token for `web` that requires it.
struct Ci {
    dir: tempfile::TempDir,
    srv: Server,
    org: String,
    provider: Provider,
    ci_token: String,
}

fn register(srv: &Server, dir: &Path, org: &str, name: &str, issuer: &str, jwks: &str) -> Value {
    let jwks_arg = if jwks.starts_with("http") {
        jwks.to_owned()
    } else {
        let file = dir.join(format!("{name}-jwks.json"));
        std::fs::write(&file, jwks).unwrap();
        file.to_str().unwrap().to_owned()
    };
    let location = format!("{}/3p/acme-{name}", srv.url());
    srv.cli_json(
        org,
        &[
            "third-parties",
            "add",
            name,
            "--location",
            &location,
            "--issuer",
            issuer,
            "--audience",
            AUDIENCE,
            "--jwks",
            &jwks_arg,
            "--json",
        ],
    )
}

fn mint(srv: &Server, org: &str, third_party: &str, conditions: &[&str]) -> String {
    let mut args = vec![
        "tokens",
        "create",
        "deploy",
        "--app",
        "web",
        "--require-ci",
        third_party,
    ];
    for c in conditions {
        args.extend(["--condition", c]);
    }
    srv.cli_ok(org, &args).trim().to_owned()
}

impl Ci {
    fn start(serve_args: &[&str]) -> Ci {
        let dir = tempfile::tempdir().unwrap();
        let srv = Server::start_with(&dir.path().join("data"), serve_args);
        let (_op, org) = acme(&srv);
        let provider = Provider::new();
        register(&srv, dir.path(), &org, "gha", GITHUB, &provider.jwks());
        let ci_token = mint(&srv, &org, "gha", &[REPO_ID, MAIN]);
        Ci {
            dir,
            srv,
            org,
            provider,
            ci_token,
        }
    }

    /// An ID token of a push to acme/web's main, with `jti`.
    fn id_token(&self, jti: &str) -> String {
        self.provider.sign(&github_claims(AUDIENCE, now(), jti))
    }

    fn file(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    }

    /// `tokens discharge BUNDLE… --oidc-token-file`: (exit code, stdout, stderr).
    fn discharge(&self, bundles: &[&str], id_token: &str) -> (i32, String, String) {
        let file = self.file("id-token", id_token);
        let mut args = vec!["tokens", "discharge"];
        args.extend(bundles);
        args.extend(["--oidc-token-file", &file]);
        self.srv.cli(&args, &[])
    }

    /// The discharge endpoint, raw: (status, body).
    fn post(&self, tickets: &[String], id_token: &str) -> (u16, Value) {
        let path = "/3p/acme-gha/.well-known/macvault/3p";
        self.srv.http(
            "POST",
            path,
            None,
            Some(&json!({ "tickets": tickets, "oidc_token": id_token })),
        )
    }
}

/// The tickets (base64url) of a bundle's undischarged third-party caveats.
fn tickets(bundle: &str) -> Vec<String> {
    let bytes = macvault::token::decode_text(bundle).unwrap();
    let b = macvault::token::Bundle::parse(&bytes).unwrap();
    b.token
        .caveats()
        .iter()
        .filter(|c| c.is_third_party())
        .map(|c| macvault::token::Ticket::text_of(&c.id))
        .collect()
}

fn list_secrets(srv: &Server, bundle: &str) -> (u16, Value) {
    srv.http("GET", "/v1/orgs/acme/apps/web/secrets", Some(bundle), None)
}

#[test]
fn a_ci_token_works_only_with_a_discharge_for_the_jobs_id_token() {
    let ci = Ci::start(&[]);
    let (st, v) = list_secrets(&ci.srv, &ci.ci_token);
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (401, Some("missing_discharge"))
    );

    let id_token = ci.id_token("run-1-attempt-1");
    let (code, out, err) = ci.discharge(&[&ci.ci_token], &id_token);
    assert_eq!(code, 0, "{err}");
    let bundle = out.trim().to_owned();
    let (st, v) = ci.srv.http(
        "POST",
        "/v1/orgs/acme/apps/web/secrets",
        Some(&bundle),
        Some(&json!({"set": [{"name": "DB_URL", "value": "postgres://db/web"}]})),
    );
    assert_eq!(st, 200, "the discharged bundle sets web's secrets: {v}");
    // The discharge lives at most 10 minutes, and less than the ID token.
    let seen = ci
        .srv
        .cli_json(&ci.org, &["tokens", "inspect", &bundle, "--json"]);
    let expiry = seen["discharges"][0]["caveats"][0]["text"]
        .as_str()
        .unwrap();
    let t = crate::support::parse_time(expiry.trim_start_matches("expires < ")).unwrap();
    assert!(t <= now() + 600 && t > now(), "{expiry}");

    // The same ID token and tickets again: answered again (a retried step recovers).
    let (code, again, err) = ci.discharge(&[&ci.ci_token], &id_token);
    assert_eq!(code, 0, "{err}");
    assert_eq!(list_secrets(&ci.srv, again.trim()).0, 200);
    // With other tickets: refused, naming the rule.
    let other = mint(&ci.srv, &ci.org, "gha", &[REPO_ID]);
    let (code, _, err) = ci.discharge(&[&other], &id_token);
    assert_eq!(code, 5, "{err}");
    assert!(
        err.contains("id_token_used") && err.contains("one set of tickets"),
        "{err}"
    );
    ci.srv.stop();
}

#[test]
fn one_id_token_discharges_two_bundles_in_one_request() {
    let ci = Ci::start(&[]);
    let second = mint(&ci.srv, &ci.org, "gha", &[REPO_ID]);
    let (code, out, err) = ci.discharge(&[&ci.ci_token, &second], &ci.id_token("two"));
    assert_eq!(code, 0, "{err}");
    let bundles: Vec<&str> = out.lines().collect();
    assert_eq!(bundles.len(), 2, "{out}");
    for b in bundles {
        assert_eq!(list_secrets(&ci.srv, b).0, 200);
    }
    // A discharge answers only the token it was bound to: moved onto the other token,
    // or on its own, it does not verify.
    let (_, first, _) = ci.discharge(&[&ci.ci_token], &ci.id_token("three"));
    let bytes = macvault::token::decode_text(first.trim()).unwrap();
    let b = macvault::token::Bundle::parse(&bytes).unwrap();
    let discharge =
        macvault::token::Bundle::single(b.discharges.into_iter().next().unwrap().into_owned())
            .to_text();
    let moved = macvault::token::bind_discharges(&second, &[discharge]).unwrap();
    assert_eq!(list_secrets(&ci.srv, &moved).0, 401);
    ci.srv.stop();
}

#[test]
fn refusals_name_the_ticket_and_the_check_and_record_nothing() {
    let ci = Ci::start(&[]);
    let t = tickets(&ci.ci_token);
    let p = &ci.provider;
    let at = now();
    let claims = |f: &dyn Fn(&mut Value)| {
        let mut c = github_claims(AUDIENCE, at, "refused");
        f(&mut c);
        c
    };
    let cases: Vec<(&str, String, u16, &str, &str)> = vec![
        (
            "another repository",
            p.sign(&claims(&|c| c["repository_id"] = json!("1"))),
            403,
            "condition_not_met",
            "claim repository_id is \"1\"",
        ),
        (
            "another ref",
            p.sign(&claims(&|c| c["ref"] = json!("refs/heads/dev"))),
            403,
            "condition_not_met",
            "claim ref is \"refs/heads/dev\"",
        ),
        (
            "pull_request_target",
            p.sign(&claims(&|c| c["event_name"] = json!("pull_request_target"))),
            403,
            "condition_not_met",
            "claim event_name = pull_request_target",
        ),
        (
            "workflow_run",
            p.sign(&claims(&|c| c["event_name"] = json!("workflow_run"))),
            403,
            "condition_not_met",
            "workflow_run are refused",
        ),
        (
            "a missing claim a condition names",
            p.sign(&claims(&|c| {
                c.as_object_mut().unwrap().remove("ref");
            })),
            403,
            "condition_not_met",
            "no claim ref",
        ),
        (
            "expired",
            p.sign(&claims(&|c| c["exp"] = json!(at - 100))),
            401,
            "invalid_id_token",
            "expired",
        ),
        (
            "not yet valid",
            p.sign(&claims(&|c| c["nbf"] = json!(at + 300))),
            401,
            "invalid_id_token",
            "not valid yet",
        ),
        (
            "issued in the future",
            p.sign(&claims(&|c| c["iat"] = json!(at + 300))),
            401,
            "invalid_id_token",
            "issued in the future",
        ),
        (
            "no iat",
            p.sign(&claims(&|c| {
                c.as_object_mut().unwrap().remove("iat");
            })),
            401,
            "invalid_id_token",
            "no iat claim",
        ),
        (
            "no jti",
            p.sign(&claims(&|c| {
                c.as_object_mut().unwrap().remove("jti");
            })),
            401,
            "invalid_id_token",
            "no jti claim",
        ),
        (
            "two audiences",
            p.sign(&claims(&|c| c["aud"] = json!([AUDIENCE, "other"]))),
            401,
            "invalid_id_token",
            "2 audiences",
        ),
        (
            "another audience",
            p.sign(&claims(&|c| c["aud"] = json!("pypi"))),
            401,
            "invalid_id_token",
            "audience is not",
        ),
        (
            "another issuer",
            p.sign(&claims(&|c| c["iss"] = json!("https://evil.example"))),
            401,
            "invalid_id_token",
            "issuer (https://evil.example)",
        ),
        (
            "a key not in the JWKS",
            p.sign_with(
                json!({"alg": "RS256", "kid": "nope"}),
                &claims(&|_| {}),
                b"",
            ),
            401,
            "invalid_id_token",
            "no key nope",
        ),
        (
            "alg none",
            p.sign_with(
                json!({"alg": "none", "kid": "rsa-test-1"}),
                &claims(&|_| {}),
                b"",
            ),
            401,
            "invalid_id_token",
            "signed with none",
        ),
        (
            "HS256 keyed with the public key",
            p.sign_with(
                json!({"alg": "HS256", "kid": "rsa-test-1"}),
                &claims(&|_| {}),
                p.rsa_public_text().as_bytes(),
            ),
            401,
            "invalid_id_token",
            "signed with HS256",
        ),
        (
            "an ES256 header on the RSA key",
            p.sign_with(
                json!({"alg": "ES256", "kid": "rsa-test-1"}),
                &claims(&|_| {}),
                b"",
            ),
            401,
            "invalid_id_token",
            "is an RS256 key",
        ),
        (
            "no kid",
            p.sign_with(json!({"alg": "RS256"}), &claims(&|_| {}), b""),
            401,
            "invalid_id_token",
            "names no key",
        ),
        (
            "a bad signature",
            {
                let good = p.sign(&claims(&|_| {}));
                let (head, _) = good.rsplit_once('.').unwrap();
                format!("{head}.AAAA")
            },
            401,
            "invalid_id_token",
            "signature does not verify",
        ),
        (
            "not a JWT",
            "not-a-jwt".into(),
            401,
            "invalid_id_token",
            "malformed",
        ),
    ];
    for (what, id_token, status, code, says) in &cases {
        let (st, v) = ci.post(&t, id_token);
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (*status, Some(*code)),
            "{what}: {v}"
        );
        assert!(
            message.starts_with("ticket 1: "),
            "{what}: names the ticket: {message}"
        );
        assert!(message.contains(says), "{what}: {message}");
        assert!(
            !message.contains(id_token.as_str()),
            "{what}: the ID token was echoed"
        );
    }
    // A condition that names the event lets it through.
    let prt = mint(
        &ci.srv,
        &ci.org,
        "gha",
        &[REPO_ID, "claim event_name = pull_request_target"],
    );
    let named = p.sign(&claims(&|c| {
        c["event_name"] = json!("pull_request_target");
        c["jti"] = json!("named");
    }));
    assert_eq!(ci.post(&tickets(&prt), &named).0, 201);
    // Malformed bodies and tickets: 4xx, never 500.
    for (body, status) in [
        (json!({"tickets": [], "oidc_token": "x"}), 400),
        (json!({"tickets": ["@@@"], "oidc_token": "x"}), 400),
        (json!({"tickets": ["AAAA"], "oidc_token": "x"}), 400),
        (json!({"tickets": t, "oidc_token": "x", "extra": 1}), 400),
        (json!({"oidc_token": "x"}), 400),
        (json!([1, 2]), 400),
    ] {
        let (st, v) = ci.srv.http(
            "POST",
            "/3p/acme-gha/.well-known/macvault/3p",
            None,
            Some(&body),
        );
        assert_eq!(st, status, "{body}: {v}");
    }
    let (st, _) = ci.srv.http(
        "POST",
        "/3p/nobody/.well-known/macvault/3p",
        None,
        Some(&json!({"tickets": t, "oidc_token": "x"})),
    );
    assert_eq!(st, 404, "a ticket for another location");
    let (st, _) = ci
        .srv
        .http("GET", "/3p/acme-gha/.well-known/macvault/3p", None, None);
    assert_eq!(st, 405);
    // None of the refusals used up the ID token's jti: a good one still works.
    let good = p.sign(&claims(&|_| {}));
    assert_eq!(ci.post(&t, &good).0, 201);
    // Refusals are audited with the failing check and claims, never the ID token.
    let audit = ci.srv.cli_ok(
        &ci.org,
        &["audit", "--json", "--action", "third_party.discharge"],
    );
    assert!(audit.contains("claim repository_id is"), "{audit}");
    assert!(
        audit.contains("jti refused") || audit.contains("refused"),
        "{audit}"
    );
    for (_, id_token, ..) in &cases {
        let sig = id_token.rsplit('.').next().unwrap();
        assert!(
            sig.len() < 8 || !audit.contains(sig),
            "an ID token reached the audit log"
        );
    }
    ci.srv.stop();
}

#[test]
fn workflow_ref_and_job_workflow_ref_are_distinct_conditions() {
    let ci = Ci::start(&[]);
    let deploy_yml = "acme/web/.github/workflows/deploy.yml@refs/heads/main";
    let by_caller = mint(
        &ci.srv,
        &ci.org,
        "gha",
        &[REPO_ID, &format!("claim workflow_ref = {deploy_yml}")],
    );
    let by_reusable = mint(
        &ci.srv,
        &ci.org,
        "gha",
        &["claim job_workflow_ref = acme/shared/.github/workflows/deploy.yml@refs/tags/v1"],
    );
    let at = now();
    let token = |jti: &str, workflow: &str, job_workflow: &str| {
        let mut c = github_claims(AUDIENCE, at, jti);
        c["workflow_ref"] = json!(workflow);
        c["job_workflow_ref"] = json!(job_workflow);
        ci.provider.sign(&c)
    };
    // Another workflow of the same repository is refused.
    let other = token(
        "w1",
        "acme/web/.github/workflows/lint.yml@refs/heads/main",
        deploy_yml,
    );
    let (st, v) = ci.post(&tickets(&by_caller), &other);
    assert_eq!(st, 403, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("claim workflow_ref is"),
        "{v}"
    );
    assert_eq!(
        ci.post(&tickets(&by_caller), &token("w2", deploy_yml, "x"))
            .0,
        201
    );
    // A reusable workflow at another ref is refused; pinned, it passes.
    let moved = token(
        "w3",
        deploy_yml,
        "acme/shared/.github/workflows/deploy.yml@refs/heads/main",
    );
    assert_eq!(ci.post(&tickets(&by_reusable), &moved).0, 403);
    let pinned = token(
        "w4",
        deploy_yml,
        "acme/shared/.github/workflows/deploy.yml@refs/tags/v1",
    );
    assert_eq!(ci.post(&tickets(&by_reusable), &pinned).0, 201);
    ci.srv.stop();
}

#[test]
fn gitlab_jobs_pass_their_id_token_from_the_environment() {
    let ci = Ci::start(&[]);
    register(
        &ci.srv,
        ci.dir.path(),
        &ci.org,
        "gitlab",
        GITLAB,
        &ci.provider.jwks(),
    );
    let token = mint(
        &ci.srv,
        &ci.org,
        "gitlab",
        &[
            "claim project_id = 20",
            "claim ref = main",
            "claim ref_type = branch",
        ],
    );
    let id_token = ci
        .provider
        .sign_es256(&gitlab_claims(AUDIENCE, now(), "gl-1"));
    let (code, out, err) = ci.srv.cli(
        &[
            "tokens",
            "discharge",
            &token,
            "--oidc-token-env",
            "MACVAULT_ID_TOKEN",
        ],
        &[("MACVAULT_ID_TOKEN", &id_token)],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(list_secrets(&ci.srv, out.trim()).0, 200);
    // `ref` is a branch name on GitLab: a tag of the same name is another ref_type.
    let mut tag = gitlab_claims(AUDIENCE, now(), "gl-2");
    tag["ref_type"] = json!("tag");
    let (code, _, err) = ci.srv.cli(
        &[
            "tokens",
            "discharge",
            &token,
            "--oidc-token-env",
            "MACVAULT_ID_TOKEN",
        ],
        &[("MACVAULT_ID_TOKEN", &ci.provider.sign_es256(&tag))],
    );
    assert_eq!(code, 1, "denied: {err}");
    assert!(err.contains("claim ref_type is \"tag\""), "{err}");
    ci.srv.stop();
}

#[test]
fn in_github_actions_the_id_token_is_requested_for_the_third_partys_audience() {
    let ci = Ci::start(&[]);
    let stand_in = StandIn::start(ci.provider.jwks());
    stand_in.issue("request-token", &ci.id_token("gha-request"));
    let url = format!("{}/id-token?api-version=2.0", stand_in.url);
    let (code, out, err) = ci.srv.cli(
        &["tokens", "discharge", &ci.ci_token],
        &[
            ("ACTIONS_ID_TOKEN_REQUEST_URL", &url),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "request-token"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(list_secrets(&ci.srv, out.trim()).0, 200);
    assert_eq!(stand_in.audiences(), [AUDIENCE]);
    // Without any source of an ID token: a usage error that says what to do.
    let (code, _, err) = ci.srv.cli(&["tokens", "discharge", &ci.ci_token], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("id-token: write"), "{err}");
    ci.srv.stop();
}

#[test]
fn jwks_urls_must_be_allowed_and_are_fetched_once_for_many_requests() {
    let provider = Provider::new();
    let stand_in = StandIn::start(provider.jwks());
    let jwks_url = format!("{}/jwks", stand_in.url);
    for (allowed, args) in [(false, vec![]), (true, vec!["--allow-insecure-jwks"])] {
        let dir = tempfile::tempdir().unwrap();
        let srv = Server::start_with(&dir.path().join("data"), &args);
        let (_op, org) = acme(&srv);
        register(&srv, dir.path(), &org, "gha", GITHUB, &jwks_url);
        let t = tickets(&mint(&srv, &org, "gha", &[REPO_ID]));
        let before = stand_in.jwks_fetches();
        // An unregistered issuer costs no fetch.
        let mut foreign = github_claims(AUDIENCE, now(), "foreign");
        foreign["iss"] = json!("https://evil.example");
        let path = "/3p/acme-gha/.well-known/macvault/3p";
        let post = |id: &str| {
            srv.http(
                "POST",
                path,
                None,
                Some(&json!({"tickets": t, "oidc_token": id})),
            )
        };
        assert_eq!(post(&provider.sign(&foreign)).0, 401);
        assert_eq!(
            stand_in.jwks_fetches(),
            before,
            "no JWKS request for an unknown issuer"
        );
        let (st, v) = post(&provider.sign(&github_claims(AUDIENCE, now(), "u1")));
        if !allowed {
            assert_eq!(
                (st, v["error"]["code"].as_str()),
                (403, Some("jwks_not_allowed")),
                "{v}"
            );
            assert_eq!(stand_in.jwks_fetches(), before);
            srv.stop();
            continue;
        }
        assert_eq!(st, 201, "{v}");
        for i in 0..5 {
            let mint_again = tickets(&mint(&srv, &org, "gha", &[REPO_ID]));
            let id = provider.sign(&github_claims(AUDIENCE, now(), &format!("u{}", i + 2)));
            let (st, _) = srv.http(
                "POST",
                path,
                None,
                Some(&json!({"tickets": mint_again, "oidc_token": id})),
            );
            assert_eq!(st, 201);
        }
        assert_eq!(
            stand_in.jwks_fetches(),
            before + 1,
            "one fetch serves many requests"
        );
        srv.stop();
    }
}

#[test]
fn discharges_are_limited_per_client_address() {
    let ci = Ci::start(&["--discharge-limit", "2"]);
    let t = tickets(&ci.ci_token);
    assert_eq!(ci.post(&t, "x").0, 401);
    assert_eq!(ci.post(&t, "x").0, 401);
    let (status, text) = ci.srv.raw(
        "POST",
        "/3p/acme-gha/.well-known/macvault/3p",
        &[("content-type", "application/json")],
        Some(serde_json::to_vec(&json!({"tickets": t, "oidc_token": "x"})).unwrap()),
    );
    assert_eq!(status, 429, "{text}");
    assert!(text.contains("rate_limited"), "{text}");
    ci.srv.stop();
}

#[test]
fn a_discharge_is_audited_with_the_jobs_identity_and_never_its_id_token() {
    let ci = Ci::start(&[]);
    let id_token = ci.id_token("audited-1");
    let (code, _, err) = ci.discharge(&[&ci.ci_token], &id_token);
    assert_eq!(code, 0, "{err}");
    let audit = ci.srv.cli_ok(
        &ci.org,
        &["audit", "--json", "--action", "third_party.discharge"],
    );
    for want in [
        "issuer https://token.actions.githubusercontent.com",
        "jti audited-1",
        "repository acme/web (id 892374561)",
        "ref refs/heads/main",
        "sha 4f1c2a9e0b7d",
        "run_id 1234567890",
        "workflow_ref acme/web/.github/workflows/deploy.yml@refs/heads/main",
        // JSON-escaped quotes.
        "third party \\\"gha\\\" discharged ticket 1 of 1",
    ] {
        assert!(audit.contains(want), "{want} in {audit}");
    }
    let logs = ci.srv.stop();
    let signature = id_token.rsplit('.').next().unwrap();
    assert!(!logs.stderr.contains(signature) && !logs.stdout.contains(signature));
    let db = std::fs::read(ci.dir.path().join("data/macvault.redb")).unwrap();
    assert!(!crate::support::contains_bytes(&db, id_token.as_bytes()));
    assert!(!crate::support::contains_bytes(&db, signature.as_bytes()));
}

#[test]
fn conditions_on_names_without_ids_are_warned_about() {
    let ci = Ci::start(&[]);
    let (code, _, err) = ci.srv.cli(
        &[
            "tokens",
            "create",
            "deploy",
            "--app",
            "web",
            "--require-ci",
            "gha",
            "--condition",
            "claim repository = acme/web",
        ],
        &[("MACVAULT_TOKEN", &ci.org)],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning") && err.contains("repository_id"),
        "{err}"
    );
    ci.srv.stop();
}

/// On PostgreSQL, an ID token used at one node is used at every node.
#[test]
fn an_id_token_is_used_once_across_nodes() {
    let Some(db) = TestDb::create() else { return };
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("master.key");
    let node = |name: &str| {
        Server::start_with(
            &dir.path().join(name),
            &[
                "--database",
                &db.url,
                "--master-key-file",
                key.to_str().unwrap(),
            ],
        )
    };
    let a = node("a");
    let b = node("b");
    let (_op, org) = acme(&a);
    let provider = Provider::new();
    register(&a, dir.path(), &org, "gha", GITHUB, &provider.jwks());
    let first = tickets(&mint(&a, &org, "gha", &[REPO_ID]));
    let second = tickets(&mint(&a, &org, "gha", &[REPO_ID]));
    let id = provider.sign(&github_claims(AUDIENCE, now(), "nodes-1"));
    let post = |srv: &Server, t: &[String]| {
        // Each node answers for the location on its own address.
        let path = "/3p/acme-gha/.well-known/macvault/3p";
        srv.http(
            "POST",
            path,
            None,
            Some(&json!({"tickets": t, "oidc_token": id})),
        )
    };
    assert_eq!(post(&a, &first).0, 201);
    let (st, v) = crate::support::eventually(
        "node b knows the third party",
        std::time::Duration::from_secs(30),
        || {
            let (st, v) = post(&b, &second);
            (st != 404).then_some((st, v))
        },
    );
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (409, Some("id_token_used")),
        "{v}"
    );
    assert_eq!(
        post(&b, &first).0,
        201,
        "the same tickets again, at another node"
    );
    a.stop();
    b.stop();
}

/// The ledger id of the org's token named `name`.
fn token_id(srv: &Server, org: &str, name: &str) -> String {
    let list = srv.cli_json(org, &["tokens", "list", "--json"]);
    let t = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no token {name} in {list}"));
    t["id"].as_str().unwrap().to_owned()
}

#[test]
fn a_service_token_needs_service_validity_lives_at_most_that_and_cannot_mint() {
    let ci = Ci::start(&[]);
    // Without service-validity in the ticket: refused.
    let (code, out, err) = ci.discharge(&[&ci.ci_token], &ci.id_token("svc-0"));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = ci
        .srv
        .cli(&["tokens", "strip"], &[("MACVAULT_TOKEN", out.trim())]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no service-validity"), "{err}");
    // A token that needs no discharge has nothing to strip.
    let (code, _, err) = ci
        .srv
        .cli(&["tokens", "strip"], &[("MACVAULT_TOKEN", &ci.org)]);
    assert_eq!(code, 1, "{err}");

    let permission = ci.srv.cli_ok(
        &ci.org,
        &[
            "tokens",
            "create",
            "deploy",
            "--app",
            "web",
            "--name",
            "nightly",
            "--require-ci",
            "gha",
            "--condition",
            REPO_ID,
            "--condition",
            "service-validity = 1d",
        ],
    );
    let (code, bundle, err) = ci.discharge(&[permission.trim()], &ci.id_token("svc-1"));
    assert_eq!(code, 0, "{err}");
    let service = ci
        .srv
        .cli_json(bundle.trim(), &["tokens", "strip", "--json"]);
    let service_token = service["token"].as_str().unwrap().to_owned();
    // Unattended: no discharge needed.
    assert_eq!(list_secrets(&ci.srv, &service_token).0, 200);
    let seen = ci
        .srv
        .cli_json(&ci.org, &["tokens", "inspect", &service_token, "--json"]);
    assert!(
        seen["third_party"].as_array().is_none_or(Vec::is_empty),
        "{seen}"
    );
    let expires = crate::support::parse_time(seen["expires"].as_str().unwrap()).unwrap();
    assert!(
        expires <= now() + 86_400 && expires > now() + 86_000,
        "{seen}"
    );
    assert!(
        seen.to_string()
            .contains("resource = apps,audit,keys,orgs,secrets"),
        "{seen}"
    );
    // It cannot mint.
    let (code, _, err) = ci.srv.cli(
        &["tokens", "create", "deploy", "--app", "web"],
        &[("MACVAULT_TOKEN", &service_token)],
    );
    assert_eq!(code, 1, "{err}");
    // It descends from its permission token: revoking that revokes it.
    let shown = ci.srv.cli_json(&ci.org, &["tokens", "list", "--json"]);
    assert!(shown.to_string().contains("nightly-service"), "{shown}");
    let id = token_id(&ci.srv, &ci.org, "nightly");
    ci.srv.cli_ok(&ci.org, &["tokens", "revoke", &id, "--yes"]);
    let (st, v) = list_secrets(&ci.srv, &service_token);
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (401, Some("revoked")),
        "{v}"
    );
    ci.srv.stop();
}

/// The shell steps of a README CI example: GitHub's `run:` lines, GitLab's `script:` items.
fn steps(example: &str) -> Vec<String> {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(example)).unwrap();
    text.lines()
        .filter_map(|l| {
            let l = l.trim_start();
            l.strip_prefix("run: ")
                .or_else(|| l.strip_prefix("- ").filter(|s| s.contains("macvault ")))
                .map(str::to_owned)
        })
        .collect()
}

/// Runs `steps` with bash in `dir`, `macvault` on PATH and `env` set, as a runner would.
fn run_steps(dir: &Path, steps: &[String], env: &[(&str, &str)]) {
    let bin = Path::new(env!("CARGO_BIN_EXE_macvault")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for step in steps {
        let out = std::process::Command::new("bash")
            .args(["-euo", "pipefail", "-c", step])
            .current_dir(dir)
            .env("PATH", &path)
            .env_remove("MACVAULT_TOKEN_FILE")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{step}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_readme_ci_examples_run_against_a_stand_in_provider() {
    let ci = Ci::start(&[]);
    let gh = steps("examples/ci/github-deploy.yml");
    assert_eq!(gh.len(), 2, "{gh:?}");
    let stand_in = StandIn::start(ci.provider.jwks());
    stand_in.issue("runner-request-token", &ci.id_token("readme-gh"));
    let request_url = format!("{}/id-token?api-version=2.0", stand_in.url);
    let work = tempfile::tempdir().unwrap();
    run_steps(
        work.path(),
        &gh,
        &[
            ("MACVAULT_URL", ci.srv.url()),
            ("MACVAULT_TOKEN", &ci.ci_token),
            ("GITHUB_SHA", "4f1c2a9e0b7d"),
            ("ACTIONS_ID_TOKEN_REQUEST_URL", &request_url),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "runner-request-token"),
        ],
    );
    assert_eq!(stand_in.audiences(), [AUDIENCE]);

    register(
        &ci.srv,
        ci.dir.path(),
        &ci.org,
        "gitlab",
        GITLAB,
        &ci.provider.jwks(),
    );
    let gl_token = mint(
        &ci.srv,
        &ci.org,
        "gitlab",
        &["claim project_id = 20", "claim ref = main"],
    );
    let gl = steps("examples/ci/gitlab-ci.yml");
    assert_eq!(gl.len(), 2, "{gl:?}");
    let id_token = ci
        .provider
        .sign_es256(&gitlab_claims(AUDIENCE, now(), "readme-gl"));
    run_steps(
        work.path(),
        &gl,
        &[
            ("MACVAULT_URL", ci.srv.url()),
            ("MACVAULT_TOKEN", &gl_token),
            ("CI_COMMIT_SHA", "714a629c"),
            ("MACVAULT_ID_TOKEN", &id_token),
        ],
    );
    let history = ci
        .srv
        .cli_ok(&ci.org, &["secrets", "history", "--app", "web", "RELEASE"]);
    assert!(
        history.lines().count() >= 3,
        "both jobs set RELEASE: {history}"
    );
    ci.srv.stop();
}

#[test]
fn max_age_bounds_how_long_ago_the_id_token_was_issued() {
    let ci = Ci::start(&[]);
    let fresh_only = tickets(&mint(&ci.srv, &ci.org, "gha", &[REPO_ID, "max-age = 1m"]));
    let at = now();
    let mut old = github_claims(AUDIENCE, at, "old");
    old["iat"] = json!(at - 120);
    let (st, v) = ci.post(&fresh_only, &ci.provider.sign(&old));
    assert_eq!(st, 403, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max-age = 1m"),
        "{v}"
    );
    assert_eq!(ci.post(&fresh_only, &ci.id_token("young")).0, 201);
    ci.srv.stop();
}
