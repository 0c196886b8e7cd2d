//! OAuth clients: registered, listed, shown and removed by the org's org tokens as
//! minted only; a confidential client's secret is returned once and kept as a hash.

use super::*;
use crate::model::TokenKind;

fn new(name: &str, uris: &[&str], public: bool) -> NewOAuthClient {
    NewOAuthClient {
        name: name.into(),
        redirect_uris: uris.iter().map(|u| (*u).to_owned()).collect(),
        public,
        allow_reveal: false,
    }
}

#[tokio::test]
async fn a_confidential_client_gets_a_secret_once_kept_as_a_hash() {
    let (_d, a, op) = open().await;
    let org = org_token(&a, &op, "acme").await;
    let p = who(&a, &org).await;
    let done = a
        .add_oauth_client(
            &p,
            "acme",
            &new("CI dashboard", &["https://ci.example/cb"], false),
        )
        .await
        .unwrap();
    let secret = done.secret.expect("a confidential client's secret");
    assert!(secret.expose().starts_with("mvcs_"));
    assert!(done.client.id.starts_with("mvc_") && done.client.id.len() == 36);
    let stored = a.oauth_client(&p, "acme", &done.client.id).await.unwrap();
    use sha2::Digest as _;
    let hash: [u8; 32] = sha2::Sha256::digest(secret.expose().as_bytes()).into();
    assert_eq!(stored.secret_hash, Some(hash));
    let public = a
        .add_oauth_client(&p, "acme", &new("cli", &["http://127.0.0.1/cb"], true))
        .await
        .unwrap();
    assert!(public.secret.is_none() && public.client.is_public());
    let ids: Vec<String> = a
        .oauth_clients(&p, "acme")
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids.len(), 2);
    a.remove_oauth_client(&p, "acme", &done.client.id)
        .await
        .unwrap();
    let gone = a.oauth_client(&p, "acme", &done.client.id).await;
    assert!(matches!(gone, Err(OAuthClientError::NotFound)), "{gone:?}");
}

#[tokio::test]
async fn only_an_org_token_as_minted_of_the_org_manages_clients() {
    let (_d, a, op) = open().await;
    let org = org_token(&a, &op, "acme").await;
    let beta = org_token(&a, &op, "beta").await;
    let deploy = mint_by(&a, &org, TokenKind::Deploy, Some("web"), None).await;
    let narrowed = crate::token::attenuate(
        &org,
        &[crate::caveats::Caveat::parse("app = web:rwcdxv").unwrap()],
    )
    .unwrap();
    let session = a
        .sign_in(&who(&a, &org).await, SESSION_LIFETIME)
        .await
        .unwrap();
    let client = new("x", &["https://x.example/cb"], true);
    for text in [
        deploy.token.expose(),
        narrowed.as_str(),
        &beta,
        session.token.expose(),
    ] {
        let refused = a
            .add_oauth_client(&who(&a, text).await, "acme", &client)
            .await;
        assert!(
            matches!(refused, Err(OAuthClientError::OrgTokenOnly)),
            "{refused:?}"
        );
    }
    // Another org's client is not found from here.
    let theirs = a
        .add_oauth_client(&who(&a, &beta).await, "beta", &client)
        .await
        .unwrap();
    let looked = a
        .oauth_client(&who(&a, &org).await, "acme", &theirs.client.id)
        .await;
    assert!(
        matches!(looked, Err(OAuthClientError::NotFound)),
        "{looked:?}"
    );
}

#[tokio::test]
async fn bad_registrations_are_refused_with_the_reason() {
    let (_d, a, op) = open().await;
    let org = org_token(&a, &op, "acme").await;
    let p = who(&a, &org).await;
    let cases = [
        (new("", &["https://x.example/cb"], true), "name"),
        (new("x", &[], true), "1 to 10"),
        (new("x", &["http://x.example/cb"], true), "loopback"),
        (new("x", &["https://x.example/cb#f"], true), "fragment"),
    ];
    for (client, why) in cases {
        let e = a.add_oauth_client(&p, "acme", &client).await.unwrap_err();
        assert_eq!(e.class(), ErrorClass::BadRequest, "{e}");
        assert!(e.to_string().contains(why), "{e}");
    }
}
