//! The authority's rules, exercised in-process.

use super::*;
use crate::token::{Bundle, decode_text};

fn open() -> (tempfile::TempDir, Authority, String) {
    let dir = tempfile::tempdir().unwrap();
    let (a, op) = Authority::open(dir.path()).unwrap();
    (dir, a, op.unwrap().expose().to_owned())
}

fn who(a: &Authority, text: &str) -> Verified<'static> {
    a.authenticate(text, &Client::default()).unwrap()
}

fn spec(preset: Preset, app: Option<&str>, expiry_secs: Option<u64>) -> MintSpec {
    MintSpec {
        preset,
        app: app.map(str::to_owned),
        name: None,
        expiry_secs,
    }
}

/// Mints a preset in `acme` with the token `by` (test setup: must succeed).
fn mint_by(
    a: &Authority,
    by: &str,
    preset: Preset,
    app: Option<&str>,
    expiry: Option<u64>,
) -> Minted {
    a.mint(
        &who(a, by),
        "acme",
        &spec(preset, app, expiry),
        &Client::default(),
    )
    .unwrap()
}

fn org_token(a: &Authority, op: &str, name: &str) -> String {
    a.create_org(&who(a, op), name, &Client::default())
        .unwrap()
        .token
        .expose()
        .to_owned()
}

#[test]
fn default_expiry_is_cut_to_the_minting_token() {
    let (_d, a, op) = open();
    let org = org_token(&a, &op, "acme");
    let minter = who(&a, &org);
    let m = a
        .mint(
            &minter,
            "acme",
            &spec(Preset::Deploy, Some("web"), None),
            &Client::default(),
        )
        .unwrap();
    assert_eq!(Some(m.record.expires), minter.expires());
    let err = a.mint(
        &minter,
        "acme",
        &spec(Preset::Deploy, Some("web"), Some(200 * 86400)),
        &Client::default(),
    );
    assert!(
        matches!(err, Err(AuthorityError::BadRequest(ref m)) if m.contains("own expiry")),
        "{err:?}"
    );
}

#[test]
fn a_token_mints_only_what_it_holds() {
    let (_d, a, op) = open();
    let org = org_token(&a, &op, "acme");
    let c = Client::default();
    let deploy = mint_by(&a, &org, Preset::Deploy, Some("web"), Some(3600));
    let deploy = who(&a, deploy.token.expose());
    // Same app, same rights: allowed.
    a.mint(
        &deploy,
        "acme",
        &spec(Preset::Deploy, Some("web"), Some(60)),
        &c,
    )
    .unwrap();
    for (preset, app) in [
        (Preset::Org, None),
        (Preset::Runtime, Some("web")),
        (Preset::Readonly, None),
        (Preset::Deploy, Some("api")),
    ] {
        let r = a.mint(&deploy, "acme", &spec(preset, app, Some(60)), &c);
        assert!(
            matches!(r, Err(AuthorityError::Denied(_))),
            "{preset:?} {app:?}: {r:?}"
        );
    }
    let ro = mint_by(&a, &org, Preset::Readonly, None, Some(60));
    let r = a.mint(
        &who(&a, ro.token.expose()),
        "acme",
        &spec(Preset::Readonly, None, Some(30)),
        &c,
    );
    assert!(
        matches!(r, Err(AuthorityError::Denied(_))),
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
    token.bind(&mut discharge);
    Bundle {
        token,
        discharges: vec![discharge],
    }
    .to_text()
}

#[test]
fn a_token_that_needs_a_discharge_cannot_mint() {
    let (_d, a, op) = open();
    let org = org_token(&a, &op, "acme");
    let ci = who(&a, &with_discharge(&org));
    assert_eq!(ci.third_party_caveats(), 1);
    let r = a.mint(
        &ci,
        "acme",
        &spec(Preset::Deploy, Some("web"), Some(60)),
        &Client::default(),
    );
    assert!(matches!(r, Err(AuthorityError::Denied(_))), "{r:?}");
}

#[test]
fn a_copy_narrowed_by_a_third_party_caveat_is_not_the_token_as_minted() {
    let (_d, a, op) = open();
    let org = org_token(&a, &op, "acme");
    let readonly = mint_by(&a, &org, Preset::Readonly, None, Some(3600));
    let readonly = readonly.token.expose().to_owned();
    // Same first-party caveats as minted, but it needed a discharge: the CI hand-off.
    let ci = who(&a, &with_discharge(&readonly));
    let r = a.revoke_self(&ci, &Client::default());
    assert!(matches!(r, Err(AuthorityError::Denied(_))), "{r:?}");
    who(&a, &readonly);
}

#[test]
fn revocation_and_key_retirement_take_effect_at_once_and_persist() {
    let dir = tempfile::tempdir().unwrap();
    let (deploy, org) = {
        let (a, op) = Authority::open(dir.path()).unwrap();
        let op = op.unwrap().expose().to_owned();
        let org = org_token(&a, &op, "acme");
        let c = Client::default();
        let deploy = mint_by(&a, &org, Preset::Deploy, Some("web"), Some(3600));
        let d = who(&a, deploy.token.expose());
        a.revoke(&who(&a, &org), &d.token_id(), &c).unwrap();
        let r = a.authenticate(deploy.token.expose(), &c);
        assert!(
            matches!(
                r,
                Err(AuthorityError::Unauthenticated(FailureClass::Revoked))
            ),
            "{r:?}"
        );
        a.rotate_key(&who(&a, &org), "acme", &c).unwrap();
        (deploy.token.expose().to_owned(), org)
    };
    let (a, op) = Authority::open(dir.path()).unwrap();
    assert!(
        op.is_none(),
        "the operator token is printed only on first start"
    );
    let c = Client::default();
    let r = a.authenticate(&deploy, &c);
    assert!(
        matches!(
            r,
            Err(AuthorityError::Unauthenticated(FailureClass::Revoked))
        ),
        "{r:?}"
    );
    // The org token (key v1) still verifies after rotation; a new one uses v2.
    let org_v = who(&a, &org);
    assert_eq!(org_v.key_version(), 1);
    let fresh = a
        .mint(&org_v, "acme", &spec(Preset::Org, None, Some(60)), &c)
        .unwrap();
    assert_eq!(fresh.record.key_version, 2);
    let r = a.retire_key(&org_v, "acme", 2, &c);
    assert!(matches!(r, Err(AuthorityError::Conflict(_))), "{r:?}");
    // The v1 token may not retire v1 (it would lock itself out), and nothing changed.
    let r = a.retire_key(&org_v, "acme", 1, &c);
    assert!(
        matches!(&r, Err(AuthorityError::Conflict(m)) if m.contains("minted under key version 1")),
        "{r:?}"
    );
    who(&a, &org);
    let fresh_v = who(&a, fresh.token.expose());
    a.retire_key(&fresh_v, "acme", 1, &c).unwrap();
    let r = a.authenticate(&org, &c);
    assert!(
        matches!(
            r,
            Err(AuthorityError::Unauthenticated(FailureClass::UnknownKey))
        ),
        "{r:?}"
    );
}

#[test]
fn an_attenuated_copy_cannot_revoke_its_original_by_itself() {
    let (_d, a, op) = open();
    let org = org_token(&a, &op, "acme");
    let c = Client::default();
    let deploy = mint_by(&a, &org, Preset::Deploy, Some("web"), Some(3600));
    let deploy = deploy.token.expose().to_owned();
    let readonly =
        crate::token::attenuate(&deploy, &[Caveat::actions(Action::Read.into()).unwrap()]).unwrap();
    let r = a.revoke_self(&who(&a, &readonly), &c);
    assert!(matches!(r, Err(AuthorityError::Denied(_))), "{r:?}");
    who(&a, &deploy);
    // A copy that keeps `delete` on tokens may; so may the token as minted.
    let narrower = crate::token::attenuate(&deploy, &[Caveat::expires(now() + 60)]).unwrap();
    a.revoke_self(&who(&a, &narrower), &c).unwrap();
    let r = a.authenticate(&deploy, &c);
    assert!(
        matches!(
            r,
            Err(AuthorityError::Unauthenticated(FailureClass::Revoked))
        ),
        "{r:?}"
    );
    let other = mint_by(&a, &org, Preset::Readonly, None, Some(3600));
    a.revoke_self(&who(&a, other.token.expose()), &c).unwrap();
}

#[test]
fn org_maximum_cuts_the_default_and_refuses_longer() {
    let (_d, a, op) = open();
    let org = org_token(&a, &op, "acme");
    let c = Client::default();
    a.set_max_expiry(&who(&a, &org), "acme", Some(3600), &c)
        .unwrap();
    let t = mint_by(&a, &org, Preset::Readonly, None, None);
    assert!(t.record.expires - t.record.created <= 3600);
    let r = a.mint(
        &who(&a, &org),
        "acme",
        &spec(Preset::Readonly, None, Some(7200)),
        &c,
    );
    assert!(
        matches!(r, Err(AuthorityError::BadRequest(ref m)) if m.contains("2h") && m.contains("1h")),
        "{r:?}"
    );
    let r = a.mint(
        &who(&a, &org),
        "acme",
        &spec(Preset::Readonly, None, Some(u64::MAX)),
        &c,
    );
    assert!(matches!(r, Err(AuthorityError::BadRequest(_))), "{r:?}");
}

#[test]
fn a_failed_flush_loses_nothing_and_keeps_order() {
    let used = |time| LastUsed {
        time,
        ip: None,
        user_agent: None,
    };
    let event = |n: u64| {
        audit::event(
            "acme",
            "x",
            Actor {
                token: None,
                ip: None,
            },
            Outcome::Ok,
            n.to_string(),
            n,
        )
    };
    let (a, b) = (TokenId([1; 16]), TokenId([2; 16]));
    let mut since = Pending::default();
    since.usage.insert(a, used(20));
    since.audit.push(event(3));
    let mut taken = Pending::default();
    taken.usage.insert(a, used(10));
    taken.usage.insert(b, used(11));
    taken.audit.extend([event(1), event(2)]);
    since.requeue(taken);
    assert_eq!(since.usage[&a].time, 20, "the newer use wins");
    assert_eq!(since.usage[&b].time, 11, "the older one is kept");
    let order: Vec<_> = since.audit.iter().map(|e| e.detail.as_str()).collect();
    assert_eq!(order, ["1", "2", "3"]);
}

#[test]
fn untrusted_names_are_echoed_escaped_and_cut() {
    let (_d, a, op) = open();
    let org = org_token(&a, &op, "acme");
    let pasted = format!("mvt_{}\"", "S".repeat(300));
    let r = a.mint(
        &who(&a, &org),
        "acme",
        &spec(Preset::Deploy, Some(&pasted), Some(60)),
        &Client::default(),
    );
    let Err(AuthorityError::BadRequest(m)) = r else {
        panic!("{r:?}")
    };
    assert!(!m.contains(&pasted[..100]) && m.len() < 250, "{m}");
    let access = Access {
        org: &pasted,
        app: None,
        resource: Resource::Tokens,
        action: Action::Read,
        secret: None,
        now: now(),
        source_ip: None,
    };
    let denial = who(&a, &org).check(&access).unwrap_err();
    assert!(
        !denial.reason.contains(&pasted[..100]) && denial.reason.len() < 150,
        "{}",
        denial.reason
    );
}
