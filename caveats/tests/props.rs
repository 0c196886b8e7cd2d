//! Property tests: text and JSON round trips, attenuation only narrows, the parser is total
//! and accepts only canonical text.

#![allow(clippy::unwrap_used)] // tests may unwrap (docs/STYLE.md)

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use macvault_caveats::{
    Access, Action, ActionSet, Caveat, IpNet, MAX_TIME, Resource, ResourceSet, SecretTarget,
    evaluate,
};
use proptest::{collection::vec, prelude::*, sample::select};

#[path = "support/repeatable.rs"]
mod repeatable;

const ORGS: &[&str] = &["acme", "beta"];
const APPS: &[&str] = &["api", "db", "web"];
const SECRETS: &[&str] = &["API_KEY", "DB_PASS", "DB_URL", "X"];

fn action() -> impl Strategy<Value = Action> {
    select(Action::ALL.to_vec())
}

fn resource() -> impl Strategy<Value = Resource> {
    select(Resource::ALL.to_vec())
}

fn action_set() -> impl Strategy<Value = ActionSet> {
    vec(action(), 1..4).prop_map(|actions| actions.into_iter().collect())
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(ORGS.iter().chain(APPS).map(|s| s.to_string()).collect::<Vec<_>>()),
        1 => "[a-z0-9][a-z0-9-]{0,62}",
    ]
}

/// Times near the accesses' `now`, so windows both allow and deny.
fn time() -> impl Strategy<Value = u64> {
    prop_oneof![3 => 0u64..3000, 1 => 0..=MAX_TIME]
}

fn net() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        (any::<u32>(), 0u8..=32).prop_map(|(bits, prefix)| {
            let host = u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
            IpNet::new(Ipv4Addr::from(bits & !host).into(), prefix).unwrap()
        }),
        (
            select(vec![0x0a00_0000u32, 0x0a01_0000, 0x0b00_0000]),
            8u8..=16
        )
            .prop_map(|(bits, prefix)| {
                let host = u32::MAX >> prefix;
                IpNet::new(Ipv4Addr::from(bits & !host).into(), prefix).unwrap()
            }),
        (any::<u128>(), 0u8..=128).prop_map(|(bits, prefix)| {
            let host = u128::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
            IpNet::new(Ipv6Addr::from(bits & !host).into(), prefix).unwrap()
        }),
    ]
}

fn caveat() -> impl Strategy<Value = Caveat<'static>> {
    prop_oneof![
        name().prop_map(|n| Caveat::org(&n).unwrap()),
        vec(
            (
                prop_oneof![3 => select(APPS).prop_map(String::from), 1 => name()],
                action_set()
            ),
            1..4
        )
        .prop_map(|apps| Caveat::apps(apps).unwrap()),
        action_set().prop_map(|set| Caveat::actions(set).unwrap()),
        (proptest::option::of(time()), proptest::option::of(time()))
            .prop_filter_map("empty window", |(nb, na)| Caveat::validity(nb, na).ok()),
        vec(
            prop_oneof![
                select(SECRETS).prop_map(String::from),
                "[A-Z_]{0,4}\\*",
                "[A-Za-z0-9_.-]{1,128}",
            ],
            1..4
        )
        .prop_map(|patterns| Caveat::secrets(patterns).unwrap()),
        vec(resource(), 1..4)
            .prop_map(
                |kinds| Caveat::resources(kinds.into_iter().collect::<ResourceSet>()).unwrap()
            ),
        vec(net(), 1..4).prop_map(|nets| Caveat::source_ip(nets).unwrap()),
    ]
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|b| IpAddr::from(Ipv4Addr::from(b))),
        (0u32..0x0200_0000).prop_map(|b| IpAddr::from(Ipv4Addr::from(0x0a00_0000 + b))),
        (0u32..0x0200_0000)
            .prop_map(|b| IpAddr::from(Ipv4Addr::from(0x0a00_0000 + b).to_ipv6_mapped())),
        any::<u128>().prop_map(|b| IpAddr::from(Ipv6Addr::from(b))),
    ]
}

fn access() -> impl Strategy<Value = Access<'static>> {
    (
        select(ORGS),
        proptest::option::of(select(APPS)),
        resource(),
        action(),
        prop_oneof![
            Just(SecretTarget::None),
            Just(SecretTarget::Listing),
            select(SECRETS).prop_map(SecretTarget::One),
        ],
        0u64..3000,
        proptest::option::of(ip()),
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

/// A predicate as it may appear in a token: usually a valid caveat, sometimes garbage.
fn predicate() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => caveat().prop_map(|c| c.to_string().into_bytes()),
        1 => vec(any::<u8>(), 0..40),
    ]
}

fn allowed(list: &[Vec<u8>], access: &Access<'_>) -> bool {
    evaluate(list.iter().map(Vec::as_slice), access).is_ok()
}

/// Keywords and characters of the language, so random text often gets deep into the parser.
fn caveat_like_text() -> impl Strategy<Value = String> {
    let heads = vec![
        "org = ",
        "app = ",
        "actions = ",
        "expires < ",
        "not-before >= ",
        "valid ",
        "secret = ",
        "resource = ",
        "ip = ",
    ];
    (select(heads), "[a-z0-9A-Z:,.*/ <>=_+Z T-]{0,48}").prop_map(|(h, t)| format!("{h}{t}"))
}

/// Canonical text with one byte inserted, removed or replaced.
fn mutated_text() -> impl Strategy<Value = String> {
    (
        caveat(),
        any::<prop::sample::Index>(),
        0u8..3,
        select(b" ,:-/*.0aAzZ9\n".to_vec()),
    )
        .prop_map(|(c, at, op, byte)| {
            let mut bytes = c.to_string().into_bytes();
            let i = at.index(bytes.len() + 1);
            match op {
                0 => bytes.insert(i, byte),
                1 if i < bytes.len() => {
                    bytes.remove(i);
                }
                _ if i < bytes.len() => bytes[i] = byte,
                _ => bytes.push(byte),
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
}

proptest! {
    #![proptest_config(repeatable::config(512))]

    #[test]
    fn text_and_json_round_trip(c in caveat()) {
        let text = c.to_string();
        prop_assert_eq!(Caveat::parse(&text), Ok(c.clone()));
        prop_assert_eq!(Caveat::parse_bytes(text.as_bytes()), Ok(c.clone()));
        let json = serde_json::to_string(&c).unwrap();
        prop_assert_eq!(serde_json::from_str::<Caveat<'static>>(&json).unwrap(), c);
    }

    #[test]
    fn checks_agree_with_evaluate(c in caveat(), access in access()) {
        let text = c.to_string();
        prop_assert_eq!(c.check(&access).is_ok(), evaluate([text.as_bytes()], &access).is_ok());
    }

    #[test]
    fn attenuation_only_narrows(
        list in vec(predicate(), 0..5),
        extra in predicate(),
        at in any::<prop::sample::Index>(),
        access in access(),
    ) {
        let mut longer = list.clone();
        longer.insert(at.index(list.len() + 1), extra.clone());
        let before = allowed(&list, &access);
        let after = allowed(&longer, &access);
        prop_assert!(before || !after, "adding {:?} turned a denial into an allowance", extra);
        // Evaluation is a conjunction: the longer list allows exactly when both parts do.
        prop_assert_eq!(after, before && allowed(&[extra], &access));
    }

    /// Implication is sound: if `a` implies `b`, no access allowed by `a` is denied by `b`.
    #[test]
    fn implication_is_sound(a in caveat(), b in caveat(), access in access()) {
        if a.implies(&b) && a.check(&access).is_ok() {
            prop_assert!(b.check(&access).is_ok(), "{} implies {} but {:?}", a, b, access);
        }
        prop_assert!(a.implies(&a), "{} does not imply itself", a);
    }

    #[test]
    fn exclusion_is_sound(a in caveat(), b in caveat(), access in access()) {
        if a.excludes(&b) {
            prop_assert!(
                a.check(&access).is_err() || b.check(&access).is_err(),
                "{} excludes {} but both allow {:?}", a, b, access
            );
            prop_assert!(b.excludes(&a), "exclusion is symmetric: {} {}", a, b);
        }
    }

    #[test]
    fn arbitrary_strings_never_panic(s in "\\PC{0,64}") {
        if let Ok(c) = Caveat::parse(&s) {
            prop_assert_eq!(c.to_string(), s);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in vec(any::<u8>(), 0..64)) {
        if let Ok(c) = Caveat::parse_bytes(&b) {
            prop_assert_eq!(c.to_string().into_bytes(), b);
        }
    }

    #[test]
    fn caveat_like_text_parses_only_canonically(s in prop_oneof![caveat_like_text(), mutated_text()]) {
        if let Ok(c) = Caveat::parse(&s) {
            prop_assert_eq!(c.to_string(), s);
        }
    }

    #[test]
    fn times_round_trip(t in 0..=MAX_TIME) {
        prop_assert_eq!(macvault_caveats::parse_time(&macvault_caveats::format_time(t)), Ok(t));
    }
}
