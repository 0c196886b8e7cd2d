//! Third parties: who may register and remove them, what a required discharge does to
//! a token, rotation of their keys and of the tokens that need them.

use super::*;
use crate::caveats::{Caveat, Condition};
use crate::model::{Jwks, ThirdPartyKind};
use crate::token::{
    Bundle, FailureClass, KeyId, RootKey, Ticket, bind_discharges, decode_text, make_discharge,
};

const LOCATION: &str = "https://vault.example/3p/gha";

fn registration(name: &str, location: &str) -> NewThirdParty {
    NewThirdParty::new(
        name,
        ThirdPartyKind::CiOidc,
        location,
        "https://token.actions.githubusercontent.com",
        "macvault",
        Jwks::Document(r#"{"keys":[{"kty":"RSA","kid":"k1","n":"x","e":"AQAB"}]}"#.into()),
    )
}

fn cond(text: &str) -> Condition {
    Condition::parse(text).unwrap()
}

/// The ticket of the token's (only) third-party caveat.
fn ticket_of(text: &str) -> Vec<u8> {
    let bytes = decode_text(text).unwrap();
    let bundle = Bundle::parse(&bytes).unwrap();
    let c = bundle
        .token
        .caveats()
        .iter()
        .find(|c| c.is_third_party())
        .expect("a third-party caveat");
    c.id.to_vec()
}

/// What the third party's discharger would do: open the ticket with its private key and
/// mint a discharge with `caveats`, bound to `text`.
fn discharged(
    a: &Authority,
    tp: &crate::model::ThirdParty,
    text: &str,
    caveats: &[Caveat<'_>],
) -> String {
    let raw = ticket_of(text);
    let ticket = Ticket::decode(&raw).unwrap();
    let private = a.third_party_private_key(tp, ticket.key_id()).unwrap();
    let root: RootKey = ticket.open(&private).unwrap();
    let d = make_discharge(&raw, ticket.location(), &root, caveats);
    bind_discharges(text, &[Bundle::single(d).to_text()]).unwrap()
}

async fn setup() -> (tempfile::TempDir, std::sync::Arc<Authority>, String, String) {
    let (d, a, op) = open().await;
    let org = org_token(&a, &op, "acme").await;
    (d, a, op, org)
}

#[tokio::test]
async fn only_tokens_allowed_third_parties_register_and_remove_them() {
    let (_d, a, op, org) = setup().await;
    let org_p = who(&a, &org).await;
    let deploy = mint_by(&a, &org, TokenKind::Deploy, Some("web"), None).await;
    let deploy_p = who(&a, deploy.token.expose()).await;
    let e = a
        .add_third_party(&deploy_p, "acme", &registration("gha", LOCATION))
        .await
        .unwrap_err();
    assert!(matches!(e, ThirdPartyError::Denied(_)), "{e}");
    let readonly = mint_by(&a, &org, TokenKind::Readonly, None, None).await;
    let ro = who(&a, readonly.token.expose()).await;
    assert!(matches!(
        a.add_third_party(&ro, "acme", &registration("gha", LOCATION))
            .await,
        Err(ThirdPartyError::Denied(_))
    ));
    let tp = a
        .add_third_party(&org_p, "acme", &registration("gha", LOCATION))
        .await
        .unwrap();
    assert_eq!(tp.keys.len(), 1);
    assert_eq!(tp.created_by, Some(org_p.token_id()));
    // Read by readonly; not removable by it, nor by deploy.
    assert_eq!(a.third_parties(&ro, "acme").await.unwrap().len(), 1);
    assert!(matches!(
        a.third_parties(&deploy_p, "acme").await,
        Err(ThirdPartyError::Denied(_))
    ));
    assert!(matches!(
        a.remove_third_party(&ro, "acme", "gha", false).await,
        Err(ThirdPartyError::Denied(_))
    ));
    // Names are unique in an org.
    assert!(matches!(
        a.add_third_party(
            &org_p,
            "acme",
            &registration("gha", "https://vault.example/3p/x")
        )
        .await,
        Err(ThirdPartyError::Exists)
    ));
    let beta = org_token(&a, &op, "beta").await;
    let beta_p = who(&a, &beta).await;
    // Another org's token can neither read nor require this org's third party.
    assert!(matches!(
        a.third_party(&beta_p, "acme", "gha").await,
        Err(ThirdPartyError::Denied(_))
    ));
    let spec = spec(TokenKind::Deploy, Some("web"), None).require("gha", vec![]);
    let e = a.mint(&beta_p, "beta", &spec).await.unwrap_err();
    assert!(
        matches!(&e, MintError::ThirdParty(b) if matches!(**b, ThirdPartyError::NotFound)),
        "{e}"
    );
    a.remove_third_party(&org_p, "acme", "gha", false)
        .await
        .unwrap();
    assert!(matches!(
        a.third_party(&org_p, "acme", "gha").await,
        Err(ThirdPartyError::NotFound)
    ));
}

#[tokio::test]
async fn registrations_are_checked() {
    let (_d, a, _op, org) = setup().await;
    let org_p = who(&a, &org).await;
    let bad = async |r: NewThirdParty| a.add_third_party(&org_p, "acme", &r).await.unwrap_err();
    let mut r = registration("gha", "http://vault.example/3p");
    assert!(matches!(
        bad(r.clone()).await,
        ThirdPartyError::BadField {
            what: "location",
            ..
        }
    ));
    r = registration("Bad Name", LOCATION);
    assert!(matches!(bad(r).await, ThirdPartyError::InvalidName(_)));
    r = registration("gha", LOCATION);
    r.jwks = Jwks::Document("{\"keys\": []}".into());
    assert!(matches!(
        bad(r.clone()).await,
        ThirdPartyError::BadField { what: "jwks", .. }
    ));
    r.jwks = Jwks::Url("ftp://x".into());
    assert!(matches!(
        bad(r.clone()).await,
        ThirdPartyError::BadField { what: "jwks", .. }
    ));
    r = registration("gha", LOCATION);
    r.audience = String::new();
    assert!(matches!(
        bad(r).await,
        ThirdPartyError::BadField {
            what: "audience",
            ..
        }
    ));
    r = registration("gha", LOCATION);
    r.issuer = "not a url".into();
    assert!(matches!(
        bad(r).await,
        ThirdPartyError::BadField { what: "issuer", .. }
    ));
    // Loopback http is fine (tests, local setups).
    a.add_third_party(
        &org_p,
        "acme",
        &registration("local", "http://127.0.0.1:7070/3p"),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_required_discharge_gates_the_token_and_its_caveats_restrict() {
    let (_d, a, _op, org) = setup().await;
    let org_p = who(&a, &org).await;
    let tp = a
        .add_third_party(&org_p, "acme", &registration("gha", LOCATION))
        .await
        .unwrap();
    let conditions = vec![cond("claim repository_id = 42"), cond("max-validity = 10m")];
    let spec = spec(TokenKind::Deploy, Some("web"), None).require("gha", conditions.clone());
    let minted = a.mint(&org_p, "acme", &spec).await.unwrap();
    let text = minted.token.expose();
    // Alone it is refused, naming where the discharge comes from.
    match a.authenticate(text, Client::default()).await {
        Err(AuthError::MissingDischarge { location }) => assert_eq!(location, LOCATION),
        other => panic!("{other:?}"),
    }
    // The ticket's clear part carries the conditions; the ledger keeps them.
    let ticket = Ticket::decode(&ticket_of(text)).unwrap();
    assert_eq!(ticket.conditions(), conditions.as_slice());
    assert_eq!(ticket.key_id(), tp.keys[0].id);
    let detail = a
        .show_token(&org_p, &minted.record.id.to_string())
        .await
        .unwrap();
    assert_eq!(detail.requirements.len(), 1);
    assert_eq!(detail.requirements[0].conditions, conditions);
    let shown = a.third_party(&org_p, "acme", "gha").await.unwrap();
    assert_eq!(shown.dependents.len(), 1);
    // With a discharge it works, and the discharge's caveats restrict it.
    let now = a.now();
    let ok = discharged(&a, &tp, text, &[Caveat::expires(now + 300)]);
    let p = who(&a, &ok).await;
    assert_eq!(p.token_id(), minted.record.id);
    let read_only = discharged(
        &a,
        &tp,
        text,
        &[
            Caveat::expires(now + 300),
            Caveat::Actions(crate::caveats::Action::Read.into()),
        ],
    );
    let p = who(&a, &read_only).await;
    let write = a.access(
        &p,
        "acme",
        Some("web"),
        crate::caveats::Resource::Secrets,
        crate::caveats::Action::Write,
    );
    assert!(
        p.check(&write).is_err(),
        "the discharge's `actions = r` holds"
    );
    let expired = discharged(&a, &tp, text, &[Caveat::expires(now - 1)]);
    assert_eq!(refused(&a, &expired).await, FailureClass::Expired);
    // A discharge for another token's ticket does not answer this one.
    let other = a.mint(&org_p, "acme", &spec).await.unwrap();
    let theirs = discharged(&a, &tp, other.token.expose(), &[Caveat::expires(now + 300)]);
    let bytes = decode_text(&theirs).unwrap();
    let b = Bundle::parse(&bytes).unwrap();
    let moved = bind_discharges(
        text,
        &[Bundle::single(b.discharges.into_iter().next().unwrap().into_owned()).to_text()],
    )
    .unwrap();
    assert!(a.authenticate(&moved, Client::default()).await.is_err());
    // A discharged token cannot mint (it would launder the requirement away).
    let p = who(&a, &ok).await;
    assert!(matches!(
        a.mint(
            &p,
            "acme",
            &self::spec(TokenKind::Deploy, Some("web"), None)
        )
        .await,
        Err(MintError::Denied(_))
    ));
    // Removing the third party is refused while the tokens live, unless forced.
    assert!(matches!(
        a.remove_third_party(&org_p, "acme", "gha", false).await,
        Err(ThirdPartyError::InUse { count: 2, .. })
    ));
    a.remove_third_party(&org_p, "acme", "gha", true)
        .await
        .unwrap();
}

#[tokio::test]
async fn several_third_parties_share_a_location_and_publish_their_keys_by_id() {
    let (_d, a, op, org) = setup().await;
    let org_p = who(&a, &org).await;
    let acme = a
        .add_third_party(&org_p, "acme", &registration("gha", LOCATION))
        .await
        .unwrap();
    let beta = org_token(&a, &op, "beta").await;
    let beta_p = who(&a, &beta).await;
    let theirs = a
        .add_third_party(&beta_p, "beta", &registration("gha", LOCATION))
        .await
        .unwrap();
    let acme_ci = a
        .add_third_party(&org_p, "acme", &registration("ci", LOCATION))
        .await
        .unwrap();
    // Each key is found by its id under the location's path, and only there.
    for tp in [&acme, &theirs, &acme_ci] {
        let id = tp.keys[0].id;
        let key = a.published_key("/3p/gha", id).await.unwrap();
        assert_eq!(key.public, tp.keys[0].public);
        assert_eq!(key.location, LOCATION);
        assert!(key.current);
        assert!(matches!(
            a.published_key("/3p/other", id).await,
            Err(ThirdPartyError::UnknownKey)
        ));
    }
    // The set holds every key at the location, and nothing is at another path.
    let set = a.published_keys("/3p/gha").await.unwrap();
    let mut ids: Vec<KeyId> = set.iter().map(|k| k.public.key_id()).collect();
    ids.sort();
    let mut want = vec![acme.keys[0].id, theirs.keys[0].id, acme_ci.keys[0].id];
    want.sort();
    assert_eq!(ids, want);
    assert!(a.published_keys("/3p/none").await.unwrap().is_empty());
    // Tokens of each org are sealed to their own third party's key.
    let spec = spec(TokenKind::Deploy, Some("web"), None).require("gha", vec![]);
    let mine = a.mint(&org_p, "acme", &spec).await.unwrap();
    let other = a.mint(&beta_p, "beta", &spec).await.unwrap();
    let key_of = |t: &Minted| {
        Ticket::decode(&ticket_of(t.token.expose()))
            .unwrap()
            .key_id()
    };
    assert_eq!(key_of(&mine), acme.keys[0].id);
    assert_eq!(key_of(&other), theirs.keys[0].id);
    // Removing one leaves the others' keys published.
    a.remove_third_party(&org_p, "acme", "ci", false)
        .await
        .unwrap();
    assert!(matches!(
        a.published_key("/3p/gha", acme_ci.keys[0].id).await,
        Err(ThirdPartyError::UnknownKey)
    ));
    assert_eq!(a.published_keys("/3p/gha").await.unwrap().len(), 2);
}

#[tokio::test]
async fn key_rotation_keeps_every_older_key_until_it_is_retired() {
    let (_d, a, _op, org) = setup().await;
    let org_p = who(&a, &org).await;
    a.add_third_party(&org_p, "acme", &registration("gha", LOCATION))
        .await
        .unwrap();
    let spec = spec(TokenKind::Deploy, Some("web"), None)
        .require("gha", vec![cond("claim ref = refs/heads/main")]);
    let first = a.mint(&org_p, "acme", &spec).await.unwrap();
    a.rotate_third_party_key(&org_p, "acme", "gha")
        .await
        .unwrap();
    let second = a.mint(&org_p, "acme", &spec).await.unwrap();
    let tp = a
        .rotate_third_party_key(&org_p, "acme", "gha")
        .await
        .unwrap();
    let ids: Vec<KeyId> = tp.keys.iter().map(|k| k.id).collect();
    assert_eq!(ids.len(), 3, "no rotation drops a key");
    // Tickets sealed to both older keys still open.
    let now = a.now();
    for t in [&first, &second] {
        who(
            &a,
            &discharged(&a, &tp, t.token.expose(), &[Caveat::expires(now + 60)]),
        )
        .await;
    }
    // `show` counts the live tokens per key.
    let detail = a.third_party(&org_p, "acme", "gha").await.unwrap();
    let counts: Vec<usize> = ids.iter().map(|id| detail.live_on(*id)).collect();
    assert_eq!(counts, [1, 1, 0]);
    // The current key cannot be retired; nor a key the third party does not hold.
    assert!(matches!(
        a.retire_third_party_key(&org_p, "acme", "gha", ids[2], true)
            .await,
        Err(ThirdPartyError::CurrentKey(_))
    ));
    let stranger = KeyId([7; 8]);
    assert!(matches!(
        a.retire_third_party_key(&org_p, "acme", "gha", stranger, true)
            .await,
        Err(ThirdPartyError::UnknownKey)
    ));
    // A key live tokens hold tickets for is refused, naming how many.
    assert!(matches!(
        a.retire_third_party_key(&org_p, "acme", "gha", ids[0], false)
            .await,
        Err(ThirdPartyError::KeyInUse { count: 1, .. })
    ));
    // Once its token is rotated onto the current key (and the old one revoked), it goes
    // without --force.
    a.rotate(&org_p, &first.record.id.to_string(), 0, None)
        .await
        .unwrap();
    let done = a
        .retire_third_party_key(&org_p, "acme", "gha", ids[0], false)
        .await
        .unwrap();
    assert_eq!(done.stopped, 0);
    // --force retires a key in use and says how many tokens stop working.
    let done = a
        .retire_third_party_key(&org_p, "acme", "gha", ids[1], true)
        .await
        .unwrap();
    assert_eq!(done.stopped, 1);
    let tp = done.third_party;
    assert_eq!(tp.keys.iter().map(|k| k.id).collect::<Vec<_>>(), [ids[2]]);
    assert!(matches!(
        a.third_party_private_key(&tp, ids[1]),
        Err(ThirdPartyError::UnknownKey)
    ));
    assert!(matches!(
        a.published_key("/3p/gha", ids[1]).await,
        Err(ThirdPartyError::UnknownKey)
    ));
    // Readonly tokens cannot rotate or retire.
    let readonly = mint_by(&a, &org, TokenKind::Readonly, None, None).await;
    let ro = who(&a, readonly.token.expose()).await;
    assert!(matches!(
        a.rotate_third_party_key(&ro, "acme", "gha").await,
        Err(ThirdPartyError::Denied(_))
    ));
    assert!(matches!(
        a.retire_third_party_key(&ro, "acme", "gha", ids[2], true)
            .await,
        Err(ThirdPartyError::Denied(_))
    ));
}

#[tokio::test]
async fn a_rotated_token_keeps_its_requirement_sealed_to_the_current_key() {
    let (_d, a, _op, org) = setup().await;
    let org_p = who(&a, &org).await;
    a.add_third_party(&org_p, "acme", &registration("gha", LOCATION))
        .await
        .unwrap();
    let spec = spec(TokenKind::Deploy, Some("web"), None)
        .require("gha", vec![cond("claim ref = refs/heads/main")]);
    let minted = a.mint(&org_p, "acme", &spec).await.unwrap();
    let tp = a
        .rotate_third_party_key(&org_p, "acme", "gha")
        .await
        .unwrap();
    let rotated = a
        .rotate(&org_p, &minted.record.id.to_string(), 0, None)
        .await
        .unwrap();
    let new_text = rotated.minted.token.expose();
    let new_ticket = Ticket::decode(&ticket_of(new_text)).unwrap();
    assert_eq!(new_ticket.key_id(), tp.keys[1].id);
    assert_eq!(
        new_ticket.conditions()[0].to_string(),
        "claim ref = refs/heads/main"
    );
    assert!(matches!(
        a.authenticate(new_text, Client::default()).await,
        Err(AuthError::MissingDischarge { .. })
    ));
    let detail = a
        .show_token(&org_p, &rotated.minted.record.id.to_string())
        .await
        .unwrap();
    assert_eq!(detail.requirements.len(), 1);
    assert_eq!(detail.requirements[0].key, tp.keys[1].id);
}
