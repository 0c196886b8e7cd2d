//! The OAuth flow at the authority: consent through a dashboard session, code
//! redemption with PKCE, refresh rotation, reuse detection, and what revoking or
//! signing out does to a grant.

use super::*;
use crate::model::TokenKind;

struct Flow {
    _dir: tempfile::TempDir,
    a: Arc<Authority>,
    org: String,
    client: crate::model::OAuthClient,
    session: Principal,
}

const REDIRECT: &str = "http://127.0.0.1/cb";
const VERIFIER: &str = "a-verifier-of-forty-three-characters-or-more.";

fn challenge(verifier: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier))
}

fn creds(f: &Flow) -> ClientCredentials {
    ClientCredentials {
        id: f.client.id.clone(),
        secret: None,
    }
}

/// An org, a public client, and a dashboard session of `signed_in` (the org token
/// unless given).
async fn flow_with(signed_in: Option<TokenKind>) -> Flow {
    let (dir, a, op) = open().await;
    let org = org_token(&a, &op, "acme").await;
    let p = who(&a, &org).await;
    let client = a
        .add_oauth_client(
            &p,
            "acme",
            &NewOAuthClient {
                name: "CI dashboard".into(),
                redirect_uris: vec![REDIRECT.into()],
                public: true,
                allow_reveal: false,
            },
        )
        .await
        .unwrap()
        .client;
    let pasted = match signed_in {
        None => org.clone(),
        Some(kind) => mint_by(&a, &org, kind, None, None)
            .await
            .token
            .expose()
            .to_owned(),
    };
    let session = a
        .sign_in(&who(&a, &pasted).await, SESSION_LIFETIME)
        .await
        .unwrap();
    let session = who(&a, session.token.expose()).await;
    Flow {
        _dir: dir,
        a,
        org,
        client,
        session,
    }
}

fn params(f: &Flow, scope: &str) -> AuthorizeParams {
    AuthorizeParams {
        response_type: Some("code".into()),
        client_id: Some(f.client.id.clone()),
        redirect_uri: Some("http://127.0.0.1:53111/cb".into()),
        scope: Some(scope.into()),
        state: Some("st".into()),
        code_challenge: Some(challenge(VERIFIER)),
        code_challenge_method: Some("S256".into()),
    }
}

/// A code for `scope` as asked, approved whole.
async fn code(f: &Flow, scope: &str) -> String {
    let auth = f.a.check_authorization(&params(f, scope)).await.unwrap();
    f.a.approve_authorization(&f.session, &auth, &auth.scopes, GRANT_LIFETIME)
        .await
        .unwrap()
        .expose()
        .to_owned()
}

fn redeem(code: &str) -> TokenRequest {
    TokenRequest::Code {
        code: code.into(),
        redirect_uri: Some("http://127.0.0.1:53111/cb".into()),
        verifier: Some(VERIFIER.into()),
    }
}

#[tokio::test]
async fn a_code_gives_a_token_with_exactly_the_approved_caveats_under_the_signed_in_token() {
    let f = flow_with(None).await;
    let code = code(&f, "secrets:read app:web").await;
    let issued = f.a.oauth_token(&creds(&f), redeem(&code)).await.unwrap();
    assert_eq!(issued.expires_in, ACCESS_LIFETIME);
    assert_eq!(issued.scope, "secrets:read app:web");
    let p = who(&f.a, issued.access_token.expose()).await;
    let rec = f.a.read_token(&p.token_id()).await.unwrap().unwrap();
    assert_eq!(rec.kind, TokenKind::OAuth);
    assert_eq!(rec.name, "CI dashboard");
    let org = who(&f.a, &f.org).await;
    assert_eq!(
        rec.parent,
        Some(org.token_id()),
        "the signed-in token, not the session"
    );
    let mut want: Vec<String> = org.caveats().iter().map(ToString::to_string).collect();
    want.extend(["resource = secrets", "actions = r", "app = web:r"].map(String::from));
    assert_eq!(rec.caveats[..rec.caveats.len() - 1], want[..]);
    assert!(rec.caveats.last().unwrap().starts_with("expires < "));
}

#[tokio::test]
async fn a_narrowed_consent_gives_a_narrower_token() {
    let f = flow_with(None).await;
    let auth =
        f.a.check_authorization(&params(&f, "secrets:write app:web app:api"))
            .await
            .unwrap();
    let kept = auth
        .scopes
        .narrowed(&["secrets:write".into(), "app:api".into()], true)
        .unwrap();
    let code =
        f.a.approve_authorization(&f.session, &auth, &kept, 3600)
            .await
            .unwrap();
    let issued =
        f.a.oauth_token(&creds(&f), redeem(code.expose()))
            .await
            .unwrap();
    assert_eq!(issued.scope, "secrets:read app:api");
    let p = who(&f.a, issued.access_token.expose()).await;
    let caveats: Vec<String> = p.caveats().iter().map(ToString::to_string).collect();
    assert!(caveats.contains(&"app = api:r".to_owned()), "{caveats:?}");
    assert!(!caveats.iter().any(|c| c.contains("web")), "{caveats:?}");
}

#[tokio::test]
async fn a_code_used_twice_revokes_what_it_gave() {
    let f = flow_with(None).await;
    let code = code(&f, "secrets:read").await;
    let first = f.a.oauth_token(&creds(&f), redeem(&code)).await.unwrap();
    let again = f.a.oauth_token(&creds(&f), redeem(&code)).await;
    assert!(
        matches!(again, Err(TokenError::InvalidGrant(_))),
        "{again:?}"
    );
    assert_eq!(
        refused(&f.a, first.access_token.expose()).await,
        crate::token::FailureClass::Revoked
    );
    let refresh = TokenRequest::Refresh {
        token: first.refresh_token.expose().into(),
    };
    let after = f.a.oauth_token(&creds(&f), refresh).await;
    assert!(
        matches!(after, Err(TokenError::InvalidGrant(_))),
        "{after:?}"
    );
}

#[tokio::test]
async fn a_code_needs_its_verifier_redirect_client_and_minute() {
    let f = flow_with(None).await;
    let code = code(&f, "secrets:read").await;
    let wrong = |redirect: &str, verifier: Option<&str>| TokenRequest::Code {
        code: code.clone(),
        redirect_uri: Some(redirect.into()),
        verifier: verifier.map(str::to_owned),
    };
    let cb = "http://127.0.0.1:53111/cb";
    let other_verifier = "b".repeat(43);
    for (req, code_of) in [
        (wrong(cb, Some(&other_verifier)), "invalid_grant"),
        (wrong(cb, None), "invalid_request"),
        (wrong(cb, Some("short")), "invalid_request"),
        (
            wrong("http://127.0.0.1:9/cb", Some(VERIFIER)),
            "invalid_grant",
        ),
    ] {
        let e = f.a.oauth_token(&creds(&f), req).await.unwrap_err();
        assert_eq!(e.code(), code_of, "{e}");
    }
    let secret = ClientCredentials {
        id: f.client.id.clone(),
        secret: Some("mvcs_guess".into()),
    };
    let e = f.a.oauth_token(&secret, redeem(&code)).await.unwrap_err();
    assert_eq!(e.code(), "invalid_client");
    // None of the refusals spent it; a minute later it is gone.
    let now = f.a.now();
    f.a.set_clock(now + CODE_LIFETIME);
    let e =
        f.a.oauth_token(&creds(&f), redeem(&code))
            .await
            .unwrap_err();
    assert_eq!(
        (e.code(), e.to_string().as_str()),
        ("invalid_grant", "the code has expired")
    );
    f.a.set_clock(now);
    f.a.oauth_token(&creds(&f), redeem(&code)).await.unwrap();
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reused_one_revokes_the_grant() {
    let f = flow_with(None).await;
    let code = code(&f, "secrets:read").await;
    let first = f.a.oauth_token(&creds(&f), redeem(&code)).await.unwrap();
    let refresh = |t: &Issued| TokenRequest::Refresh {
        token: t.refresh_token.expose().into(),
    };
    let second = f.a.oauth_token(&creds(&f), refresh(&first)).await.unwrap();
    assert_ne!(second.refresh_token.expose(), first.refresh_token.expose());
    who(&f.a, second.access_token.expose()).await;
    let reused = f.a.oauth_token(&creds(&f), refresh(&first)).await;
    assert!(
        matches!(reused, Err(TokenError::InvalidGrant(_))),
        "{reused:?}"
    );
    for t in [&first, &second] {
        assert_eq!(
            refused(&f.a, t.access_token.expose()).await,
            crate::token::FailureClass::Revoked
        );
    }
    let next = f.a.oauth_token(&creds(&f), refresh(&second)).await;
    assert!(matches!(next, Err(TokenError::InvalidGrant(_))), "{next:?}");
}

#[tokio::test]
async fn two_redemptions_at_once_give_tokens_once() {
    let f = flow_with(None).await;
    let code = code(&f, "secrets:read").await;
    let c = creds(&f);
    let (x, y) = tokio::join!(
        f.a.oauth_token(&c, redeem(&code)),
        f.a.oauth_token(&c, redeem(&code))
    );
    assert_eq!(usize::from(x.is_ok()) + usize::from(y.is_ok()), 1);
}

#[tokio::test]
async fn signing_out_keeps_the_grant_and_revoking_the_signed_in_token_ends_it() {
    let f = flow_with(Some(TokenKind::Readonly)).await;
    let code = code(&f, "secrets:read").await;
    let issued = f.a.oauth_token(&creds(&f), redeem(&code)).await.unwrap();
    f.a.sign_out(&f.session, None).await.unwrap();
    who(&f.a, issued.access_token.expose()).await;
    let refresh = TokenRequest::Refresh {
        token: issued.refresh_token.expose().into(),
    };
    let next = f.a.oauth_token(&creds(&f), refresh).await.unwrap();
    // The readonly token the person signed in with, revoked by the org token.
    let org = who(&f.a, &f.org).await;
    let grants = f.a.oauth_grants(&org, "acme").await.unwrap();
    assert_eq!(grants.len(), 1);
    assert!(grants[0].live);
    let parent = grants[0].grant.parent.to_string();
    f.a.revoke(&org, &parent, RevokeOptions::default())
        .await
        .unwrap();
    assert_eq!(
        refused(&f.a, next.access_token.expose()).await,
        crate::token::FailureClass::Revoked
    );
    let refresh = TokenRequest::Refresh {
        token: next.refresh_token.expose().into(),
    };
    let e = f.a.oauth_token(&creds(&f), refresh).await.unwrap_err();
    assert_eq!(e.code(), "invalid_grant");
    assert!(!f.a.oauth_grants(&org, "acme").await.unwrap()[0].live);
}

#[tokio::test]
async fn a_person_sees_and_revokes_their_own_grants_only() {
    let f = flow_with(Some(TokenKind::Readonly)).await;
    let code = code(&f, "secrets:read").await;
    let issued = f.a.oauth_token(&creds(&f), redeem(&code)).await.unwrap();
    let mine = f.a.oauth_grants(&f.session, "acme").await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].last_used, Some(f.a.now()));
    // Another readonly token of the org sees none and revokes none.
    let other = mint_by(&f.a, &f.org, TokenKind::Readonly, None, None).await;
    let other = who(&f.a, other.token.expose()).await;
    assert!(f.a.oauth_grants(&other, "acme").await.unwrap().is_empty());
    let id = mine[0].grant.id.clone();
    let e = f.a.revoke_oauth_grant(&other, "acme", &id).await;
    assert!(matches!(e, Err(GrantError::NotFound)), "{e:?}");
    f.a.revoke_oauth_grant(&f.session, "acme", &id)
        .await
        .unwrap();
    assert_eq!(
        refused(&f.a, issued.access_token.expose()).await,
        crate::token::FailureClass::Revoked
    );
    assert!(!f.a.oauth_grants(&f.session, "acme").await.unwrap()[0].live);
}

#[tokio::test]
async fn the_client_revokes_an_access_token_or_its_whole_grant() {
    let f = flow_with(None).await;
    let code = code(&f, "secrets:read").await;
    let issued = f.a.oauth_token(&creds(&f), redeem(&code)).await.unwrap();
    let from = Client::default();
    f.a.oauth_revoke(&creds(&f), issued.access_token.expose(), from.clone())
        .await
        .unwrap();
    assert_eq!(
        refused(&f.a, issued.access_token.expose()).await,
        crate::token::FailureClass::Revoked
    );
    // Unknown tokens are no error (RFC 7009).
    f.a.oauth_revoke(&creds(&f), "mvr_nothing", from.clone())
        .await
        .unwrap();
    f.a.oauth_revoke(&creds(&f), issued.refresh_token.expose(), from)
        .await
        .unwrap();
    let refresh = TokenRequest::Refresh {
        token: issued.refresh_token.expose().into(),
    };
    let e = f.a.oauth_token(&creds(&f), refresh).await.unwrap_err();
    assert_eq!(e.code(), "invalid_grant");
}

#[tokio::test]
async fn an_authorization_request_is_checked_before_consent() {
    let f = flow_with(None).await;
    let show = |p: AuthorizeParams| {
        let a = f.a.clone();
        async move { a.check_authorization(&p).await }
    };
    let mut p = params(&f, "secrets:read");
    p.client_id = Some("mvc_unknown".into());
    assert!(matches!(show(p).await, Err(AuthorizeError::Show(_))));
    let mut p = params(&f, "secrets:read");
    p.redirect_uri = Some("http://127.0.0.1:53111/other".into());
    assert!(matches!(show(p).await, Err(AuthorizeError::Show(_))));
    let redirected = |r: Result<Authorization, AuthorizeError>| match r {
        Err(AuthorizeError::Redirect { to, error, .. }) => {
            assert!(to.starts_with("http://127.0.0.1:53111/cb?error="), "{to}");
            assert!(to.ends_with("&state=st"), "{to}");
            error
        }
        other => panic!("expected a redirect, got {other:?}"),
    };
    let mut p = params(&f, "secrets:read");
    p.code_challenge_method = Some("plain".into());
    assert_eq!(redirected(show(p).await), "invalid_request");
    let mut p = params(&f, "secrets:read");
    p.code_challenge = None;
    assert_eq!(redirected(show(p).await), "invalid_request");
    let mut p = params(&f, "secrets:read");
    p.response_type = Some("token".into());
    assert_eq!(redirected(show(p).await), "unsupported_response_type");
    let p = params(&f, "secrets:reveal");
    assert_eq!(redirected(show(p).await), "invalid_scope");
    // A client of another org is refused at consent.
    let auth =
        f.a.check_authorization(&params(&f, "secrets:read"))
            .await
            .unwrap();
    let mut other = auth.clone();
    other.client.org = "beta".into();
    let e =
        f.a.approve_authorization(&f.session, &other, &other.scopes, 60)
            .await;
    assert!(matches!(e, Err(ConsentError::OtherOrg)), "{e:?}");
    // Only a session consents.
    let org = who(&f.a, &f.org).await;
    let e =
        f.a.approve_authorization(&org, &auth, &auth.scopes, 60)
            .await;
    assert!(matches!(e, Err(ConsentError::NotASession)), "{e:?}");
}

#[tokio::test]
async fn a_client_refreshing_in_a_loop_keeps_at_most_eight_live_tokens() {
    let f = flow_with(None).await;
    let code = code(&f, "secrets:read").await;
    let mut issued = vec![f.a.oauth_token(&creds(&f), redeem(&code)).await.unwrap()];
    for _ in 0..crate::authority::oauth_flow::MAX_LIVE_TOKENS {
        let last = issued.last().unwrap();
        let req = TokenRequest::Refresh {
            token: last.refresh_token.expose().into(),
        };
        issued.push(f.a.oauth_token(&creds(&f), req).await.unwrap());
    }
    // Nine issued: the first is revoked, the other eight live.
    assert_eq!(
        refused(&f.a, issued[0].access_token.expose()).await,
        crate::token::FailureClass::Revoked
    );
    for t in &issued[1..] {
        who(&f.a, t.access_token.expose()).await;
    }
    let org = who(&f.a, &f.org).await;
    let grants = f.a.oauth_grants(&org, "acme").await.unwrap();
    assert_eq!(grants[0].grant.tokens.len(), 8);
}

#[tokio::test]
async fn an_approval_only_narrows_the_request() {
    let f = flow_with(None).await;
    let auth =
        f.a.check_authorization(&params(&f, "secrets:read app:web"))
            .await
            .unwrap();
    let wider = Scopes::parse("secrets:write app:web", false).unwrap();
    let e =
        f.a.approve_authorization(&f.session, &auth, &wider, 60)
            .await;
    assert!(
        matches!(e, Err(ConsentError::Scope(ScopeError::Widened))),
        "{e:?}"
    );
    let other_app = Scopes::parse("secrets:read app:api", false).unwrap();
    let e =
        f.a.approve_authorization(&f.session, &auth, &other_app, 60)
            .await;
    assert!(matches!(e, Err(ConsentError::Scope(_))), "{e:?}");
}
