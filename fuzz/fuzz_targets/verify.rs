//! Full verification must never panic, whatever the input; tokens whose chain is valid
//! must agree with plain predicate evaluation; a mutated seed token must never verify
//! with caveats other than the seed's.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use macvault::token::{
    self, Bundle, KeyResolver, LIMITS, Macaroon, RootKey, TokenId, TokenIdentifier, VerifyError,
};
use macvault_caveats::{Access, Action, Resource, evaluate};

const ROOT_KEY: [u8; 32] = [0x42; 32];
const CAVEAT_KEY: [u8; 32] = [0x33; 32];
/// 2027-01-15T08:00:00Z: inside the seed token's validity.
const NOW: u64 = 1_800_000_000;

struct Keys;

impl KeyResolver for Keys {
    fn root_key(&self, org: &str, key_version: u32) -> Option<RootKey> {
        (org == "acme" && key_version == 1).then(|| RootKey::from_bytes(ROOT_KEY))
    }
}

fn access() -> Access<'static> {
    Access {
        org: "acme",
        app: Some("web"),
        resource: Resource::Secrets,
        action: Action::Write,
        secret: macvault::caveats::SecretTarget::One("DB_URL"),
        now: NOW,
        source_ip: Some(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3))),
    }
}

fn identifier() -> String {
    TokenIdentifier {
        org: "acme".into(),
        key_version: 1,
        token_id: TokenId([7; 16]),
    }
    .encode()
    .expect("valid identifier")
}

const SEED_TOKEN_CAVEATS: [&str; 3] = [
    "org = acme",
    "app = web:rw",
    "expires < 2030-01-01T00:00:00Z",
];
const SEED_TOKEN_CAVEATS_AFTER: [&str; 1] = ["ip = 10.0.0.0/8"];
/// A discharge bounds its own life (verification refuses one that does not).
const SEED_DISCHARGE_CAVEATS: [&str; 3] = [
    "actions = rw",
    "secret = API_KEY,DB_*",
    "expires < 2030-01-01T00:00:00Z",
];

/// The seed bundle: a token with first-party caveats, one third-party caveat and its
/// bound discharge; and the effective caveats verification must report for it.
fn seed() -> &'static (Vec<u8>, Vec<&'static str>) {
    static SEED: OnceLock<(Vec<u8>, Vec<&'static str>)> = OnceLock::new();
    SEED.get_or_init(|| {
        let mut t = Macaroon::mint(&ROOT_KEY, identifier().as_bytes(), None);
        for c in SEED_TOKEN_CAVEATS {
            t.add_first_party(c.as_bytes());
        }
        t.add_third_party_with_nonce(b"https://ci.example", &CAVEAT_KEY, b"ticket-1", &[9; 24]);
        for c in SEED_TOKEN_CAVEATS_AFTER {
            t.add_first_party(c.as_bytes());
        }
        let mut d = Macaroon::mint(&CAVEAT_KEY, b"ticket-1", Some(b"https://ci.example"));
        for c in SEED_DISCHARGE_CAVEATS {
            d.add_first_party(c.as_bytes());
        }
        t.bind(&mut d);
        let bundle = Bundle {
            token: t,
            discharges: vec![d],
        };
        // The token's own caveats, then its discharges'.
        let effective = SEED_TOKEN_CAVEATS
            .into_iter()
            .chain(SEED_TOKEN_CAVEATS_AFTER)
            .chain(SEED_DISCHARGE_CAVEATS)
            .collect();
        let bytes = bundle.to_bytes().to_vec();
        // Sanity: the unmutated seed verifies and allows the fixed access.
        {
            let parsed = Bundle::parse(&bytes).expect("seed parses");
            let v = token::verify(&parsed, &Keys, NOW).expect("seed verifies");
            v.check(&access()).expect("seed allows the access");
        }
        (bytes, effective)
    })
}

/// Verifies; if verified, `check` must agree with evaluating the effective caveats.
fn verify_and_check(bundle: &Bundle<'_>) -> Result<Vec<String>, VerifyError> {
    let v = token::verify(bundle, &Keys, NOW)?;
    assert_eq!(v.org(), "acme");
    assert_eq!(v.key_version(), 1);
    if let Some(exp) = v.expires() {
        assert!(exp > NOW, "verified a token that expired at {exp}");
    }
    let texts: Vec<String> = v.caveats().iter().map(ToString::to_string).collect();
    let access = access();
    let checked = v.check(&access);
    let evaluated = evaluate(texts.iter().map(|t| t.as_bytes()), &access);
    assert_eq!(
        checked, evaluated,
        "Verified::check disagrees with evaluate"
    );
    Ok(texts)
}

/// Path: the input as token text (lossy UTF-8) and as raw bundle bytes.
fn untrusted(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(bytes) = token::decode_text(&text) {
        if let Ok(b) = Bundle::parse(&bytes) {
            let _ = verify_and_check(&b);
        }
    }
    if let Ok(b) = Bundle::parse(data) {
        let _ = verify_and_check(&b);
    }
}

/// Path: the seed bundle with the input XORed in at a position the input picks
/// (or truncated there when nothing follows the position).
fn mutated_seed(data: &[u8]) {
    let (seed, effective) = seed();
    let Some((pos, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let pos = usize::from(u16::from_le_bytes(*pos)) % seed.len();
    let mut bytes = seed.clone();
    if rest.is_empty() {
        bytes.truncate(pos);
    } else {
        for (b, x) in bytes[pos..].iter_mut().zip(rest) {
            *b ^= x;
        }
    }
    let Ok(b) = Bundle::parse(&bytes) else {
        return;
    };
    if let Ok(texts) = verify_and_check(&b) {
        // Only locations are outside the signatures; nothing else may change.
        assert_eq!(
            &texts, effective,
            "a mutated token verified with other caveats"
        );
        assert_eq!(b.token.identifier(), identifier().as_bytes());
    }
}

/// Path: a correctly signed token whose predicates come from the input (split at NUL),
/// some of them in a bound discharge, so verification reaches caveat parsing and checks.
fn signed_from_input(data: &[u8]) {
    let Some((&[a, b], rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let preds: Vec<&[u8]> = rest.split(|&c| c == 0).filter(|p| !p.is_empty()).collect();
    if preds.len() > 3 * LIMITS.max_caveats / 2 {
        return;
    }
    let n = preds.len();
    // token gets preds[..i] + a third-party caveat (if asked) + preds[j..]; the
    // discharge gets preds[i..j].
    let with_tp = a & 1 == 1;
    let i = usize::from(a >> 1) % (n + 1);
    let j = if with_tp {
        i + usize::from(b) % (n - i + 1)
    } else {
        i
    };
    let mut t = Macaroon::mint(&ROOT_KEY, identifier().as_bytes(), None);
    for p in &preds[..i] {
        t.add_first_party(p);
    }
    let mut d = None;
    if with_tp {
        t.add_third_party_with_nonce(b"", &CAVEAT_KEY, b"tp", &[b; 24]);
        let mut dm = Macaroon::mint(&CAVEAT_KEY, b"tp", None);
        for p in &preds[i..j] {
            dm.add_first_party(p);
        }
        d = Some(dm);
    }
    for p in &preds[j..] {
        t.add_first_party(p);
    }
    if let Some(dm) = &mut d {
        t.bind(dm);
    }
    let bundle = Bundle {
        token: t,
        discharges: d.into_iter().collect(),
    };
    // Through the text form, as a client would send it.
    let text = bundle.to_text();
    let within_limits = text.len() <= LIMITS.max_text
        && preds.iter().all(|p| p.len() <= LIMITS.max_field)
        && i + (n - j) + usize::from(with_tp) <= LIMITS.max_caveats
        && j - i <= LIMITS.max_caveats;
    let Ok(bytes) = token::decode_text(&text) else {
        assert!(
            !within_limits,
            "to_text output within limits does not decode"
        );
        return;
    };
    let parsed = match Bundle::parse(&bytes) {
        Ok(p) => p,
        Err(e) => {
            assert!(
                !within_limits,
                "to_text output within limits does not parse: {e}"
            );
            return;
        }
    };
    match verify_and_check(&parsed) {
        Ok(texts) => {
            // The token's own predicates in order, then the discharge's.
            let expected: Vec<&[u8]> = preds[..i]
                .iter()
                .chain(&preds[j..])
                .chain(&preds[i..j])
                .copied()
                .collect();
            let got: Vec<&[u8]> = texts.iter().map(|t| t.as_bytes()).collect();
            assert_eq!(
                got, expected,
                "verified caveats are not the token's predicates"
            );
        }
        Err(VerifyError::Chain(e)) => {
            panic!("a correctly signed bundle failed its chain check: {e:?}")
        }
        // A discharge made of the input's predicates may hold no expiry: refused.
        Err(
            VerifyError::UnknownCaveat { .. }
            | VerifyError::Expired
            | VerifyError::DischargeWithoutExpiry { .. },
        ) => {}
        Err(e) => panic!("unexpected verification error for a signed bundle: {e:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    untrusted(data);
    mutated_seed(data);
    signed_from_input(data);
});
