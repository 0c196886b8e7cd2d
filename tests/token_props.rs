//! Property tests of the token core: attenuation only narrows, encodings round-trip,
//! and no single flipped bit survives verification.

use std::net::{IpAddr, Ipv4Addr};

use macvault::caveats::{
    Access, Action, ActionSet, Caveat, IpNet, Resource, ResourceSet, SecretTarget,
};
use macvault::token::{
    Bundle, KeyResolver, Macaroon, PrivateKey, RootKey, Ticket, TokenId, TokenIdentifier,
    add_third_party, bind_discharges, decode_text, encode_text, verify,
};
use proptest::prelude::*;

#[path = "../caveats/tests/support/repeatable.rs"]
mod repeatable;

const KEY: [u8; 32] = [5; 32];
const NOW: u64 = 1_800_000_000;

struct Keys;

impl KeyResolver for Keys {
    fn root_key(&self, org: &str, key_version: u32) -> Option<RootKey> {
        (org == "acme" && key_version == 1).then(|| RootKey::from_bytes(KEY))
    }
}

fn identifier(id: [u8; 16]) -> String {
    TokenIdentifier {
        org: "acme".into(),
        key_version: 1,
        token_id: TokenId(id),
    }
    .encode()
    .unwrap()
}

fn mint(caveats: &[String]) -> Macaroon<'static> {
    let mut m = Macaroon::mint(&KEY, identifier([1; 16]).as_bytes(), None);
    for c in caveats {
        m.add_first_party(c.as_bytes());
    }
    m
}

/// Text-form verification and decision for one access.
fn decide(text: &str, access: &Access<'_>) -> Result<(), String> {
    let bytes = decode_text(text).map_err(|e| e.to_string())?;
    let bundle = Bundle::parse(&bytes).map_err(|e| e.to_string())?;
    let v = verify(&bundle, &Keys, access.now).map_err(|e| e.to_string())?;
    v.check(access).map_err(|d| d.to_string())
}

fn name() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["acme", "beta", "web", "api", "db"])
}

fn actions() -> impl Strategy<Value = ActionSet> {
    (1u8..64).prop_map(|bits| {
        Action::ALL
            .iter()
            .enumerate()
            .filter(|(i, _)| bits & (1 << i) != 0)
            .map(|(_, a)| *a)
            .collect()
    })
}

fn resources() -> impl Strategy<Value = ResourceSet> {
    (1u8..64).prop_map(|bits| {
        Resource::ALL
            .iter()
            .enumerate()
            .filter(|(i, _)| bits & (1 << i) != 0)
            .fold(ResourceSet::NONE, |set, (_, r)| set.with(*r))
    })
}

/// Any macvault caveat, in its canonical text form.
fn caveat() -> impl Strategy<Value = String> {
    let c = prop_oneof![
        name().prop_map(|n| Caveat::org(n).unwrap()),
        prop::collection::vec((name(), actions()), 1..3).prop_map(|v| Caveat::apps(v).unwrap()),
        actions().prop_map(|a| Caveat::actions(a).unwrap()),
        (NOW - 100..NOW + 100).prop_map(Caveat::expires),
        (NOW - 100..NOW + 100).prop_map(|t| Caveat::validity(Some(t), None).unwrap()),
        prop::collection::vec(
            prop::sample::select(vec!["DB_*", "API_KEY", "*", "X"]),
            1..3
        )
        .prop_map(|v| Caveat::secrets(v).unwrap()),
        resources().prop_map(|r| Caveat::resources(r).unwrap()),
        (0u8..=255, 8u8..=32).prop_map(|(a, p)| {
            let net = IpNet::new(IpAddr::V4(Ipv4Addr::new(10, a, 0, 0)), p)
                .unwrap_or_else(|_| IpNet::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0)), 8).unwrap());
            Caveat::source_ip([net]).unwrap()
        }),
    ];
    prop_oneof![
        9 => c.prop_map(|c| c.to_string()),
        // Predicates this verifier does not understand.
        1 => "[ -~]{0,20}",
    ]
}

fn access() -> impl Strategy<Value = Access<'static>> {
    (
        name(),
        prop::option::of(name()),
        prop::sample::select(Resource::ALL.to_vec()),
        prop::sample::select(Action::ALL.to_vec()),
        prop_oneof![
            Just(SecretTarget::None),
            Just(SecretTarget::Listing),
            prop::sample::select(vec!["DB_URL", "API_KEY", "X", "Y"]).prop_map(SecretTarget::One),
        ],
        NOW - 100..NOW + 100,
        prop::option::of((0u8..=255).prop_map(|b| IpAddr::V4(Ipv4Addr::new(10, b, 1, 1)))),
    )
        .prop_map(
            |(org, app, resource, action, secret, now, source_ip)| Access {
                org,
                app,
                resource,
                action,
                secret,
                now,
                source_ip,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..repeatable::config(512) })]

    /// (a) Appending any caveat never turns a denied access into an allowed one.
    #[test]
    fn attenuation_only_narrows(
        base in prop::collection::vec(caveat(), 0..5),
        extra in caveat(),
        access in access(),
    ) {
        let before = decide(&Bundle::single(mint(&base)).to_text(), &access);
        // Attenuate offline, from the text form, as a holder does.
        let text = Bundle::single(mint(&base)).to_text();
        let bytes = decode_text(&text).unwrap();
        let mut m = Bundle::parse(&bytes).unwrap().token.into_owned();
        m.add_first_party(extra.as_bytes());
        let after = decide(&Bundle::single(m).to_text(), &access);
        if before.is_err() {
            prop_assert!(after.is_err(), "widened: {base:?} + {extra:?} for {access:?}");
        }
    }

    /// (a') Adding a third-party caveat never turns a denied access into an allowed
    /// one: without its discharge everything is denied, and with a bound discharge
    /// carrying any caveats the access is allowed only if it was before.
    #[test]
    fn a_third_party_caveat_only_narrows(
        base in prop::collection::vec(caveat(), 0..4),
        discharge_caveats in prop::collection::vec(caveat(), 0..3),
        access in access(),
    ) {
        let text = Bundle::single(mint(&base)).to_text();
        let before = decide(&text, &access);
        let (private, public) = PrivateKey::generate().unwrap();
        let with = add_third_party(&text, "https://ci.example", &public, &[]).unwrap();
        prop_assert!(decide(&with, &access).is_err(), "allowed without its discharge");

        // The discharger's part: open the ticket, mint the discharge under its key.
        let bytes = decode_text(&with).unwrap();
        let bundle = Bundle::parse(&bytes).unwrap();
        let ticket = &bundle.token.caveats().last().unwrap().id;
        let root = Ticket::decode(ticket).unwrap().open(&private).unwrap();
        let mut d = Macaroon::mint(root.expose_bytes(), ticket, Some(b"https://ci.example"));
        // A discharge always bounds its own life (past every access time drawn here).
        d.add_first_party(Caveat::expires(NOW + 1000).to_string().as_bytes());
        for c in &discharge_caveats {
            d.add_first_party(c.as_bytes());
        }
        let bound = bind_discharges(&with, &[encode_text(&d.to_v2())]).unwrap();
        let after = decide(&bound, &access);
        if before.is_err() {
            prop_assert!(after.is_err(), "widened: {base:?} + discharge {discharge_caveats:?} for {access:?}");
        }
        // The discharge's caveats count: one with only its expiry leaves the decision as
        // it was.
        if discharge_caveats.is_empty() {
            prop_assert_eq!(before.is_ok(), after.is_ok());
        }
    }

    /// (b) decode(encode(x)) == x for tokens (v2, v1, text form).
    #[test]
    fn tokens_round_trip(
        id in prop::collection::vec(any::<u8>(), 0..80),
        location in prop::collection::vec(any::<u8>(), 0..20),
        caveats in prop::collection::vec(
            (prop::collection::vec(any::<u8>(), 0..60), prop::option::of((any::<[u8; 32]>(), any::<[u8; 24]>(), prop::collection::vec(any::<u8>(), 0..10)))),
            0..6,
        ),
    ) {
        let mut m = Macaroon::mint(&KEY, &id, Some(&location));
        for (cid, third) in &caveats {
            match third {
                None => m.add_first_party(cid),
                Some((key, nonce, loc)) => m.add_third_party_with_nonce(loc, key, cid, nonce),
            }
        }
        let v2 = m.to_v2();
        let back = Macaroon::from_v2(&v2).unwrap();
        prop_assert_eq!(back.identifier(), m.identifier());
        prop_assert_eq!(back.location(), m.location());
        prop_assert_eq!(back.caveats(), m.caveats());
        prop_assert_eq!(back.expose_signature(), m.expose_signature());
        prop_assert_eq!(back.to_v2(), v2.clone());
        let v1 = m.to_v1().unwrap();
        let back1 = Macaroon::from_v1(&v1).unwrap();
        prop_assert_eq!(back1.to_v2(), v2.clone());
        let text = Bundle::single(m).to_text();
        let bytes = decode_text(&text).unwrap();
        prop_assert_eq!(Bundle::parse(&bytes).unwrap().to_text(), text);
    }

    /// (c) Flipping any single bit of a token's text makes verification fail.
    #[test]
    fn any_bit_flip_fails(caveats in prop::collection::vec(caveat(), 0..5), token_id in any::<[u8; 16]>(), pick in any::<prop::sample::Index>(), bit in 0u8..8) {
        let good: Vec<String> = caveats.into_iter().filter(|c| Caveat::parse(c).is_ok()).collect();
        let mut m = Macaroon::mint(&KEY, identifier(token_id).as_bytes(), None);
        for c in &good {
            m.add_first_party(c.as_bytes());
        }
        let text = Bundle::single(m).to_text();
        let ok = decode_text(&text).and_then(|b| Bundle::parse(&b).map(|_| ())).is_ok();
        prop_assert!(ok);
        let mut bytes = text.into_bytes();
        let i = pick.index(bytes.len());
        bytes[i] ^= 1 << bit;
        if let Ok(flipped) = String::from_utf8(bytes) {
            let verified = decode_text(&flipped)
                .ok()
                .and_then(|b| Bundle::parse(&b).ok().map(|bundle| verify(&bundle, &Keys, 0).is_ok()));
            prop_assert_ne!(verified, Some(true), "bit {} of byte {} survived", bit, i);
        }
    }

    /// The same for a flipped bit of the binary form.
    #[test]
    fn any_binary_bit_flip_fails(caveats in prop::collection::vec(caveat(), 0..5), pick in any::<prop::sample::Index>(), bit in 0u8..8) {
        let good: Vec<String> = caveats.into_iter().filter(|c| Caveat::parse(c).is_ok()).collect();
        let mut bytes = mint(&good).to_v2();
        let i = pick.index(bytes.len());
        bytes[i] ^= 1 << bit;
        if let Ok(bundle) = Bundle::parse(&bytes) {
            prop_assert!(verify(&bundle, &Keys, 0).is_err(), "bit {} of byte {} survived", bit, i);
        }
    }
}
