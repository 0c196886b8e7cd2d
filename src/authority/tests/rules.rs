//! Minting, revocation, keys and names: what may and may not happen.

use super::*;
use crate::caveats::{Access, Action, Caveat, Resource};
use crate::token::{Bundle, FailureClass, Macaroon, decode_text};

#[tokio::test]
async fn default_expiry_is_cut_to_the_minting_token() {
    let (_d, a, op) = open().await;
    let org = org_token(&a, &op, "acme").await;
    let minter = who(&a, &org).await;
    let m = a
        .mint(&minter, "acme", &spec(TokenKind::Deploy, Some("web"), None))
        .await
        .unwrap();
    assert_eq!(Some(m.record.expires), minter.expires());
    let err = a
        .mint(
            &minter,
            "acme",
            &spec(TokenKind::Deploy, Some("web"), Some(200 * 86400)),
        )
        .await;
    assert!(
        matches!(&err, Err(e @ MintError::AfterMinter { .. }) if e.to_string().contains("own expiry")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_token_mints_only_what_it_holds() {
    let (_d, a, op) = open().await;
    let org = org_token(&a, &op, "acme").await;
    let deploy = mint_by(&a, &org, TokenKind::Deploy, Some("web"), Some(3600)).await;
    let deploy = who(&a, deploy.token.expose()).await;
    // Same app, same rights: allowed.
    a.mint(
        &deploy,
        "acme",
        &spec(TokenKind::Deploy, Some("web"), Some(60)),
    )
    .await
    .unwrap();
    for (kind, app) in [
        (TokenKind::Org, None),
        (TokenKind::Runtime, Some("web")),
        (TokenKind::Readonly, None),
        (TokenKind::Deploy, Some("api")),
    ] {
        let r = a.mint(&deploy, "acme", &spec(kind, app, Some(60))).await;
        assert!(
            matches!(r, Err(MintError::Denied(_))),
            "{kind:?} {app:?}: {r:?}"
        );
    }
    let ro = mint_by(&a, &org, TokenKind::Readonly, None, Some(60)).await;
    let r = a
        .mint(
            &who(&a, ro.token.expose()).await,
            "acme",
            &spec(TokenKind::Readonly, None, Some(30)),
        )
        .await;
    assert!(
        matches!(r, Err(MintError::Denied(_))),
        "readonly cannot create tokens: {r:?}"
    );
}

/// `text` with a third-party caveat added, and its (caveat-free) discharge bound to it.
fn with_discharge(text: &str) -> String {
    let bytes = decode_text(text).unwrap();
    let mut token = Bundle::parse(&bytes).unwrap().token.into_owned();
    let caveat_key = [4u8; 32];
    token
        .add_third_party(b"https://ci.example", &caveat_key, b"ticket")
        .unwrap();
    let mut discharge = Macaroon::mint(&caveat_key, b"ticket", None);
    // Every discharge bounds its own life.
    discharge.add_first_party(b"expires < 2090-01-01T00:00:00Z");
    token.bind(&mut discharge);
    Bundle {
        token,
        discharges: vec![discharge],
    }
    .to_text()
}

#[tokio::test]
async fn a_token_that_needs_a_discharge_cannot_mint() {
    let (_d, a, op) = open().await;
    let org = org_token(&a, &op, "acme").await;
    let ci = who(&a, &with_discharge(&org)).await;
    assert_eq!(ci.third_party_caveats(), 1);
    let r = a
        .mint(&ci, "acme", &spec(TokenKind::Deploy, Some("web"), Some(60)))
        .await;
    assert!(matches!(r, Err(MintError::Denied(_))), "{r:?}");
}

#[tokio::test]
async fn a_copy_narrowed_by_a_third_party_caveat_is_not_the_token_as_minted() {
    let (_d, a, op) = open().await;
    let org = org_token(&a, &op, "acme").await;
    let readonly = mint_by(&a, &org, TokenKind::Readonly, None, Some(3600)).await;
    let readonly = readonly.token.expose().to_owned();
    // Same first-party caveats as minted, but it needed a discharge: the CI hand-off.
    let ci = who(&a, &with_discharge(&readonly)).await;
    let r = a.revoke_self(&ci, RevokeOptions::default()).await;
    assert!(matches!(r, Err(RevokeError::Denied(_))), "{r:?}");
    who(&a, &readonly).await;
}

#[tokio::test]
async fn revocation_and_key_retirement_take_effect_at_once_and_persist() {
    let dir = tempfile::tempdir().unwrap();
    let (deploy, org) = {
        let opened = Authority::open(dir.path()).await.unwrap();
        let a = opened.authority;
        let op = std::fs::read_to_string(opened.operator_token.unwrap()).unwrap();
        let org = org_token(&a, op.trim(), "acme").await;
        let deploy = mint_by(&a, &org, TokenKind::Deploy, Some("web"), Some(3600)).await;
        let d = who(&a, deploy.token.expose()).await;
        a.revoke(
            &who(&a, &org).await,
            &d.token_id().to_string(),
            RevokeOptions::default(),
        )
        .await
        .unwrap();
        assert_eq!(
            refused(&a, deploy.token.expose()).await,
            FailureClass::Revoked
        );
        a.rotate_key(&who(&a, &org).await, "acme").await.unwrap();
        (deploy.token.expose().to_owned(), org)
    };
    let opened = Authority::open(dir.path()).await.unwrap();
    assert!(
        opened.operator_token.is_none(),
        "the operator token is written on first start only"
    );
    let a = opened.authority;
    assert_eq!(refused(&a, &deploy).await, FailureClass::Revoked);
    // The org token (key v1) still verifies after rotation; a new one uses v2.
    let org_v = who(&a, &org).await;
    assert_eq!(org_v.key_version(), 1);
    let fresh = a
        .mint(&org_v, "acme", &spec(TokenKind::Org, None, Some(60)))
        .await
        .unwrap();
    assert_eq!(fresh.record.key_version, 2);
    let r = a.retire_key(&org_v, "acme", 2, true).await;
    assert!(matches!(r, Err(KeyError::RetireCurrent(2))), "{r:?}");
    // The v1 token may not retire v1 (it would lock itself out), and nothing changed.
    let r = a.retire_key(&org_v, "acme", 1, true).await;
    assert!(
        matches!(&r, Err(e @ KeyError::RetireOwn(1)) if e.to_string().contains("minted under key version 1")),
        "{r:?}"
    );
    who(&a, &org).await;
    let fresh_v = who(&a, fresh.token.expose()).await;
    a.retire_key(&fresh_v, "acme", 1, true).await.unwrap();
    assert_eq!(refused(&a, &org).await, FailureClass::KeyRetired);
}

#[tokio::test]
async fn an_attenuated_copy_cannot_revoke_its_original_by_itself() {
    let (_d, a, op) = open().await;
    let org = org_token(&a, &op, "acme").await;
    let deploy = mint_by(&a, &org, TokenKind::Deploy, Some("web"), Some(3600)).await;
    let deploy = deploy.token.expose().to_owned();
    let readonly =
        crate::token::attenuate(&deploy, &[Caveat::actions(Action::Read.into()).unwrap()]).unwrap();
    let r = a
        .revoke_self(&who(&a, &readonly).await, RevokeOptions::default())
        .await;
    assert!(matches!(r, Err(RevokeError::Denied(_))), "{r:?}");
    who(&a, &deploy).await;
    // Nor may a copy that keeps `delete` on tokens: it shares the original's id, and
    // only the token as minted may revoke itself.
    let narrower = crate::token::attenuate(&deploy, &[Caveat::expires(a.now() + 60)]).unwrap();
    let r = a
        .revoke_self(&who(&a, &narrower).await, RevokeOptions::default())
        .await;
    assert!(matches!(r, Err(RevokeError::Lineage(_))), "{r:?}");
    who(&a, &deploy).await;
    a.revoke_self(&who(&a, &deploy).await, RevokeOptions::default())
        .await
        .unwrap();
    assert_eq!(refused(&a, &deploy).await, FailureClass::Revoked);
    let other = mint_by(&a, &org, TokenKind::Readonly, None, Some(3600)).await;
    a.revoke_self(
        &who(&a, other.token.expose()).await,
        RevokeOptions::default(),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn org_maximum_cuts_the_default_and_refuses_longer() {
    let (_d, a, op) = open().await;
    let org = org_token(&a, &op, "acme").await;
    a.set_max_expiry(&who(&a, &org).await, "acme", Some(3600))
        .await
        .unwrap();
    let t = mint_by(&a, &org, TokenKind::Readonly, None, None).await;
    assert!(t.record.expires - t.record.created <= 3600);
    let r = a
        .mint(
            &who(&a, &org).await,
            "acme",
            &spec(TokenKind::Readonly, None, Some(7200)),
        )
        .await;
    assert!(
        matches!(&r, Err(e @ MintError::OverOrgMaximum { .. }) if e.to_string().contains("2h") && e.to_string().contains("1h")),
        "{r:?}"
    );
    let r = a
        .mint(
            &who(&a, &org).await,
            "acme",
            &spec(TokenKind::Readonly, None, Some(u64::MAX)),
        )
        .await;
    assert!(matches!(r, Err(MintError::OverOrgMaximum { .. })), "{r:?}");
}

#[tokio::test]
async fn untrusted_names_are_echoed_escaped_and_cut() {
    let (_d, a, op) = open().await;
    let org = org_token(&a, &op, "acme").await;
    let pasted = format!("mvt_{}\"", "S".repeat(300));
    let r = a
        .mint(
            &who(&a, &org).await,
            "acme",
            &spec(TokenKind::Deploy, Some(&pasted), Some(60)),
        )
        .await;
    let Err(e @ MintError::InvalidName(_)) = r else {
        panic!("{r:?}")
    };
    let m = e.to_string();
    assert!(!m.contains(&pasted[..100]) && m.len() < 250, "{m}");
    let access = Access {
        org: &pasted,
        app: None,
        resource: Resource::Tokens,
        action: Action::Read,
        secret: crate::caveats::SecretTarget::None,
        now: a.now(),
        source_ip: None,
    };
    let denial = who(&a, &org).await.check(&access).unwrap_err();
    assert!(
        !denial.reason.contains(&pasted[..100]) && denial.reason.len() < 150,
        "{}",
        denial.reason
    );
}

#[tokio::test]
async fn a_flush_writes_uses_and_denials() {
    let (_d, a, op) = open().await;
    let org = org_token(&a, &op, "acme").await;
    let ro = mint_by(&a, &org, TokenKind::Readonly, None, Some(3600)).await;
    let ro_p = who(&a, ro.token.expose()).await;
    let denied = a.rotate_key(&ro_p, "acme").await;
    assert!(matches!(denied, Err(KeyError::Denied(_))), "{denied:?}");
    assert_eq!(a.usage.depth().1, 1, "the denial waits for the writer");
    a.flush().await.unwrap();
    assert_eq!(a.usage.depth(), (0, 0));
    let ledger = a
        .list_tokens(&who(&a, &org).await, "acme", false)
        .await
        .unwrap();
    let used = ledger
        .iter()
        .find(|v| v.entry.record.id == ro.record.id)
        .unwrap();
    assert!(used.entry.last_used.is_some(), "{used:?}");
    let page = a
        .audit(&who(&a, &org).await, "acme", 100, None, Default::default())
        .await
        .unwrap();
    let denial = page
        .events
        .iter()
        .find(|e| e.action == "request.denied")
        .unwrap();
    assert_eq!(denial.actor, Some(ro.record.id));
}

#[tokio::test]
async fn an_id_prefix_names_one_token_of_the_callers_org_or_says_which() {
    let (_d, a, op) = open().await;
    let org = org_token(&a, &op, "acme").await;
    let template = mint_by(&a, &org, TokenKind::Readonly, None, Some(600))
        .await
        .record;
    // Two tokens whose ids share their first 8 hex digits.
    for (last, name) in [(0x01u8, "first"), (0x02, "second")] {
        let mut rec = template.clone();
        rec.id = crate::token::TokenId([
            0xab, 0xcd, 0xef, 0x01, last, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last,
        ]);
        rec.name = name.into();
        a.store.write(move |tx| tx.put_token(&rec)).await.unwrap();
    }
    let who = who(&a, &org).await;
    let r = a.show_token(&who, "abcdef01").await;
    let Err(LedgerError::Id(IdError::Ambiguous(list))) = r else {
        panic!("{r:?}")
    };
    assert!(
        list.contains("\"first\"") && list.contains("\"second\""),
        "{list}"
    );
    let one = a.show_token(&who, "abcdef0102").await.unwrap();
    assert_eq!(one.token.entry.record.name, "second");
    assert!(matches!(
        a.show_token(&who, "abcdef0").await,
        Err(LedgerError::Id(IdError::Bad))
    ));
    assert!(matches!(
        a.show_token(&who, "ABCDEF01").await,
        Err(LedgerError::Id(IdError::Bad))
    ));
}

/// Mints a preset in `acme` with `by`; (token, id).
async fn minted(a: &Authority, by: &str, kind: TokenKind, app: Option<&str>) -> (String, String) {
    let m = mint_by(a, by, kind, app, Some(3600)).await;
    (m.token.expose().to_owned(), m.record.id.to_string())
}

#[tokio::test]
async fn revocation_follows_lineage_never_up_or_sideways() {
    let (_d, a, op) = open().await;
    // Each level asks for an hour: on a running clock, a child minted a second after
    // its parent would ask to outlive it.
    a.set_clock(crate::authority::system_now());
    let org = org_token(&a, &op, "acme").await;
    let (parent, parent_id) = minted(&a, &org, TokenKind::Deploy, Some("web")).await;
    let (child, child_id) = minted(&a, &parent, TokenKind::Deploy, Some("web")).await;
    let (_sibling, sibling_id) = minted(&a, &parent, TokenKind::Deploy, Some("web")).await;
    let (grandchild, _) = minted(&a, &child, TokenKind::Deploy, Some("web")).await;
    let (_, great_id) = minted(&a, &grandchild, TokenKind::Deploy, Some("web")).await;
    let (_, runtime_id) = minted(&a, &org, TokenKind::Runtime, Some("web")).await;
    let revoke = |by: String, id: String| {
        let a = a.clone();
        async move {
            let who = who(&a, &by).await;
            a.revoke(
                &who,
                &id,
                RevokeOptions {
                    orphan: true,
                    ..Default::default()
                },
            )
            .await
        }
    };
    let outside = |r: Result<Revoked, RevokeError>| matches!(r, Err(RevokeError::Lineage(_)));
    // Never a parent, a sibling, or a token of the same app minted by someone else.
    assert!(outside(revoke(child.clone(), parent_id.clone()).await));
    assert!(outside(revoke(child.clone(), sibling_id.clone()).await));
    assert!(outside(revoke(parent.clone(), runtime_id.clone()).await));
    // Rotating follows the same rule.
    let r = a.rotate(&who(&a, &child).await, &parent_id, 0, None).await;
    assert!(matches!(r, Err(RotateError::Lineage(_))), "{r:?}");
    // Down the tree, at any depth (orphaning, so each level stays to be tried).
    revoke(parent.clone(), great_id).await.unwrap();
    revoke(parent.clone(), child_id).await.unwrap();
    // An org token reaches any token of its org.
    revoke(org.clone(), runtime_id).await.unwrap();
    revoke(org.clone(), sibling_id).await.unwrap();
    revoke(org.clone(), parent_id).await.unwrap();
    assert_eq!(refused(&a, &parent).await, FailureClass::Revoked);
}
