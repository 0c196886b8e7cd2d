//! Dashboard sessions: a sign-in mints a child of the pasted token with its caveats,
//! for 12 hours at most; sessions list and end each other only among the sessions of
//! one token; revoking the pasted token ends them.

use std::time::Duration;

use super::*;
use crate::model::TokenId;

/// That `text` is refused as revoked.
async fn assert_revoked(a: &Authority, text: &str) {
    assert_eq!(refused(a, text).await, crate::token::FailureClass::Revoked);
}

/// Signs in with `text`: the session's token text and record.
async fn sign_in(a: &Authority, text: &str) -> Minted {
    a.sign_in(&who(a, text).await, SESSION_LIFETIME)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_sign_in_mints_a_child_with_the_pasted_tokens_caveats_for_twelve_hours() {
    let (_d, a, op) = open().await;
    let org = org_token(&a, &op, "acme").await;
    let ro = mint_by(&a, &org, TokenKind::Readonly, None, Some(30 * 86_400)).await;
    let session = sign_in(&a, ro.token.expose()).await;
    let rec = &session.record;
    assert_eq!(rec.kind, TokenKind::Session);
    assert_eq!(rec.parent, Some(ro.record.id));
    assert_ne!(rec.id, ro.record.id, "its own id");
    assert_eq!(rec.expires - rec.created, 12 * 3600);
    let pasted = &ro.record.caveats;
    assert_eq!(
        rec.caveats[..pasted.len()],
        pasted[..],
        "the pasted token's caveats"
    );
    // It holds what the pasted token holds, and no more.
    let s = who(&a, session.token.expose()).await;
    assert!(a.list_tokens(&s, "acme", false).await.is_ok());
    assert!(matches!(
        a.rotate_key(&s, "acme").await,
        Err(KeyError::Denied(_))
    ));
    assert!(
        !session.token.expose().contains(ro.token.expose()),
        "the pasted token is not in it"
    );
}

#[tokio::test]
async fn a_session_never_outlives_the_pasted_token() {
    let (_d, a, op) = open().await;
    let org = org_token(&a, &op, "acme").await;
    let short = mint_by(&a, &org, TokenKind::Org, None, Some(600)).await;
    let session = a
        .sign_in(
            &who(&a, short.token.expose()).await,
            Duration::from_secs(86_400),
        )
        .await
        .unwrap();
    assert_eq!(session.record.expires, short.record.expires);
}

#[tokio::test]
async fn a_session_cannot_sign_in_nor_be_minted_as_a_preset() {
    let (_d, a, op) = open().await;
    let org = org_token(&a, &op, "acme").await;
    let session = sign_in(&a, &org).await;
    let again = a
        .sign_in(&who(&a, session.token.expose()).await, SESSION_LIFETIME)
        .await;
    assert!(
        matches!(again, Err(SessionError::SessionOfSession)),
        "{again:?}"
    );
    let minted = a
        .mint(
            &who(&a, &org).await,
            "acme",
            &spec(TokenKind::Session, None, None),
        )
        .await;
    assert!(
        matches!(minted, Err(MintError::NotAPreset(TokenKind::Session))),
        "{minted:?}"
    );
}

#[tokio::test]
async fn revoking_the_pasted_token_ends_its_sessions() {
    let (_d, a, op) = open().await;
    let org = org_token(&a, &op, "acme").await;
    let ro = mint_by(&a, &org, TokenKind::Readonly, None, None).await;
    let session = sign_in(&a, ro.token.expose()).await;
    let id = ro.record.id.to_string();
    a.revoke(&who(&a, &org).await, &id, RevokeOptions::default())
        .await
        .unwrap();
    assert_revoked(&a, session.token.expose()).await;
}

#[tokio::test]
async fn sessions_list_and_end_only_the_sessions_of_their_token() {
    let (_d, a, op) = open().await;
    let org = org_token(&a, &op, "acme").await;
    // A readonly token: its sessions may not delete tokens by their caveats.
    let ro = mint_by(&a, &org, TokenKind::Readonly, None, None).await;
    let mine = sign_in(&a, ro.token.expose()).await;
    let other = sign_in(&a, ro.token.expose()).await;
    let third = sign_in(&a, ro.token.expose()).await;
    let elsewhere = sign_in(&a, &org).await;
    let me = who(&a, mine.token.expose()).await;
    let mut listed: Vec<TokenId> = a
        .sessions(&me)
        .await
        .unwrap()
        .iter()
        .map(|e| e.record.id)
        .collect();
    let mut expected = [mine.record.id, other.record.id, third.record.id];
    listed.sort_by_key(|id| id.0);
    expected.sort_by_key(|id| id.0);
    assert_eq!(
        listed, expected,
        "the token's three sessions, not the org token's"
    );

    // Not a session of the same token: not found, whatever it is.
    for id in [elsewhere.record.id, ro.record.id] {
        let out = a.sign_out(&me, Some(id)).await;
        assert!(matches!(out, Err(SessionError::NotFound)), "{out:?}");
    }
    a.sign_out(&me, Some(third.record.id)).await.unwrap();
    assert_eq!(a.sign_out_others(&me).await.unwrap(), 1);
    for gone in [&other, &third] {
        assert_revoked(&a, gone.token.expose()).await;
    }
    who(&a, elsewhere.token.expose()).await;
    who(&a, ro.token.expose()).await;
    let left = a.sessions(&me).await.unwrap();
    assert_eq!(left.len(), 1);
    // Signing out ends the session itself.
    a.sign_out(&me, None).await.unwrap();
    assert_revoked(&a, mine.token.expose()).await;
}

#[tokio::test]
async fn only_a_session_has_sessions() {
    let (_d, a, op) = open().await;
    let org = org_token(&a, &op, "acme").await;
    let p = who(&a, &org).await;
    assert!(matches!(
        a.sessions(&p).await,
        Err(SessionError::NotASession)
    ));
    assert!(matches!(
        a.sign_out_others(&p).await,
        Err(SessionError::NotASession)
    ));
}

#[tokio::test]
async fn the_token_list_leaves_sessions_out_unless_asked() {
    let (_d, a, op) = open().await;
    let org = org_token(&a, &op, "acme").await;
    let session = sign_in(&a, &org).await;
    let p = who(&a, &org).await;
    let ids = |views: Vec<crate::model::TokenView>| -> Vec<TokenId> {
        views.iter().map(|v| v.entry.record.id).collect()
    };
    let default = ids(a.list_tokens(&p, "acme", false).await.unwrap());
    assert!(!default.contains(&session.record.id));
    let all = ids(a.list_tokens(&p, "acme", true).await.unwrap());
    assert!(all.contains(&session.record.id));
    assert_eq!(all.len(), default.len() + 1);
}

#[tokio::test]
async fn what_a_session_mints_goes_under_the_pasted_token_and_outlives_the_session() {
    let (_d, a, op) = open().await;
    let org = org_token(&a, &op, "acme").await;
    let org_id = who(&a, &org).await.token_id();
    let session = sign_in(&a, &org).await;
    let s = who(&a, session.token.expose()).await;
    let minted = a
        .mint(&s, "acme", &spec(TokenKind::Deploy, Some("web"), None))
        .await
        .unwrap();
    assert_eq!(minted.record.parent, Some(org_id), "under the pasted token");
    assert!(
        minted.record.expires > session.record.expires,
        "it outlives the session"
    );
    a.sign_out(&s, None).await.unwrap();
    who(&a, minted.token.expose()).await;
}

#[tokio::test]
async fn a_session_of_an_attenuated_copy_mints_only_within_the_copy() {
    let (_d, a, op) = open().await;
    let org = org_token(&a, &op, "acme").await;
    // The org token narrowed offline to app web.
    let web = crate::caveats::Caveat::parse("app = web:rwcdxv").unwrap();
    let narrowed = crate::token::attenuate(&org, &[web]).unwrap();
    let session = sign_in(&a, &narrowed).await;
    let s = who(&a, session.token.expose()).await;
    let wide = a
        .mint(&s, "acme", &spec(TokenKind::Readonly, None, None))
        .await;
    assert!(matches!(wide, Err(MintError::Denied(_))), "{wide:?}");
    a.mint(&s, "acme", &spec(TokenKind::Deploy, Some("web"), None))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_session_revokes_and_rotates_as_its_token_but_never_that_token() {
    let (_d, a, op) = open().await;
    let org = org_token(&a, &op, "acme").await;
    let deploy = mint_by(&a, &org, TokenKind::Deploy, Some("web"), None).await;
    let child = mint_by(
        &a,
        deploy.token.expose(),
        TokenKind::Deploy,
        Some("web"),
        None,
    )
    .await;
    let other = mint_by(
        &a,
        deploy.token.expose(),
        TokenKind::Deploy,
        Some("web"),
        None,
    )
    .await;
    let session = sign_in(&a, deploy.token.expose()).await;
    let s = who(&a, session.token.expose()).await;
    let own = a.rotate(&s, &deploy.record.id.to_string(), 0, None).await;
    assert!(matches!(own, Err(RotateError::OwnToken)), "{own:?}");
    let rotated = a
        .rotate(&s, &child.record.id.to_string(), 0, None)
        .await
        .unwrap();
    assert_eq!(rotated.minted.record.parent, Some(deploy.record.id));
    a.revoke(&s, &other.record.id.to_string(), RevokeOptions::default())
        .await
        .unwrap();
    // Not a token of the org's other lineages.
    let outside = mint_by(&a, &org, TokenKind::Deploy, Some("web"), None).await;
    let denied = a
        .revoke(&s, &outside.record.id.to_string(), RevokeOptions::default())
        .await;
    assert!(matches!(denied, Err(RevokeError::Lineage(_))), "{denied:?}");
}
