//! A discharge request body -> what the endpoint reads of it before it checks any key:
//! the JSON, each ticket's text form, and the ID token (its header and claims, then the
//! full check against a fixed RSA key), none of which may panic; and no input verifies
//! against a key it was not signed with.
//!
//! The first input byte picks the mode: even, the rest is the body as is; odd, the rest
//! is an ID token put into a body with a valid ticket, so mutations reach the JWT checks.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use macvault::oidc::{self, PinnedKey};
use macvault::token::{PrivateKey, RootKey, Ticket};
use macvault_caveats::Condition;

/// A real RSA public key (tests/fixtures/oidc/rsa.jwk.json): a signature that verifies
/// against it would need its private key, which no input has.
const JWKS: &str = include_str!("../../tests/fixtures/oidc/rsa.jwk.json");

fn key() -> &'static PinnedKey {
    static KEY: OnceLock<PinnedKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let doc = format!("{{\"keys\":[{JWKS}]}}");
        oidc::pinned_keys(doc.as_bytes())
            .into_iter()
            .next()
            .expect("the fixture key")
            .1
    })
}

fn ticket() -> &'static str {
    static TICKET: OnceLock<String> = OnceLock::new();
    TICKET.get_or_init(|| {
        let (_, public) = PrivateKey::generate().expect("randomness");
        let c = [Condition::parse("claim ref = refs/heads/main").expect("a condition")];
        let t = Ticket::seal(
            &public,
            "https://vault.example/3p/ci",
            &c,
            &RootKey::from_bytes([1; 32]),
        )
        .expect("sealing");
        Ticket::text_of(&t.encode())
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let body: Vec<u8> = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        let token = String::from_utf8_lossy(rest);
        serde_json::json!({ "tickets": [ticket()], "oidc_token": token })
            .to_string()
            .into_bytes()
    };
    let Ok(serde_json::Value::Object(req)) = serde_json::from_slice::<serde_json::Value>(&body)
    else {
        return;
    };
    if let Some(tickets) = req.get("tickets").and_then(|t| t.as_array()) {
        for t in tickets.iter().filter_map(|t| t.as_str()) {
            if let Ok((raw, ticket)) = Ticket::from_text(t) {
                assert_eq!(ticket.encode(), raw, "a ticket read back differently");
            }
        }
    }
    let Some(token) = req.get("oidc_token").and_then(|t| t.as_str()) else {
        return;
    };
    let _ = oidc::peek(token);
    let checked = oidc::verify(
        token,
        "rsa-test-1",
        key(),
        "https://token.actions.githubusercontent.com",
        "macvault",
        1_800_000_000,
    );
    assert!(
        checked.is_err(),
        "an ID token verified without the key's private half"
    );
});
