//! Full verification of a 5-caveat token, from its text form to an allowed decision,
//! against the floor: the bare HMAC-SHA256 steps of the same chain.
//!
//! `cargo bench --bench verify` prints criterion's figures, then a summary line with
//! both medians and their ratio.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use hmac::{Hmac, KeyInit, Mac};
use macvault::caveats::{Access, Action, Resource};
use macvault::token::{
    Bundle, KeyResolver, Macaroon, RootKey, TokenId, TokenIdentifier, decode_text, verify,
};
use sha2::Sha256;

struct OneKey([u8; 32]);

impl KeyResolver for OneKey {
    fn root_key(&self, org: &str, key_version: u32) -> Option<RootKey> {
        (org == "acme" && key_version == 1).then(|| RootKey::from_bytes(self.0))
    }
}

const CAVEATS: [&str; 5] = [
    "org = acme",
    "expires < 2099-01-01T00:00:00Z",
    "app = web:rwcd",
    "actions = r",
    "secret = DB_*",
];

fn token(key: &[u8; 32]) -> (String, Vec<u8>) {
    let id = TokenIdentifier {
        org: "acme".into(),
        key_version: 1,
        token_id: TokenId([9; 16]),
    };
    let id = id.encode().unwrap_or_default();
    let mut m = Macaroon::mint(key, id.as_bytes(), None);
    for c in CAVEATS {
        m.add_first_party(c.as_bytes());
    }
    (Bundle::single(m).to_text(), id.into_bytes())
}

fn access() -> Access<'static> {
    Access {
        org: "acme",
        app: Some("web"),
        resource: Resource::Secrets,
        action: Action::Read,
        secret: macvault::caveats::SecretTarget::One("DB_URL"),
        now: 1_800_000_000,
        source_ip: None,
    }
}

fn full_verify(text: &str, keys: &OneKey, access: &Access<'_>) -> bool {
    let Ok(bytes) = decode_text(text) else {
        return false;
    };
    let Ok(bundle) = Bundle::parse(&bytes) else {
        return false;
    };
    let Ok(verified) = verify(&bundle, keys, access.now) else {
        return false;
    };
    verified.check(access).is_ok()
}

/// The HMAC steps alone: `steps` chained HMAC-SHA256 over the chain's messages.
fn floor(key: &[u8; 32], messages: &[&[u8]], steps: usize) -> [u8; 32] {
    let mut sig = *key;
    for m in messages.iter().cycle().take(steps) {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&sig) else {
            return sig;
        };
        mac.update(m);
        sig = mac.finalize().into_bytes().into();
    }
    sig
}

fn setup() -> (OneKey, String, Vec<u8>) {
    let key = [42u8; 32];
    let (text, id) = token(&key);
    assert!(
        full_verify(&text, &OneKey(key), &access()),
        "the bench token must verify"
    );
    (OneKey(key), text, id)
}

fn messages(id: &[u8]) -> Vec<&[u8]> {
    std::iter::once(id)
        .chain(CAVEATS.iter().map(|c| c.as_bytes()))
        .collect()
}

fn bench(c: &mut Criterion) {
    let (keys, text, id) = setup();
    let msgs = messages(&id);
    let access = access();
    c.bench_function("verify/full_5_caveats", |b| {
        b.iter(|| full_verify(black_box(&text), &keys, &access))
    });
    c.bench_function("verify/floor_7_hmac", |b| {
        b.iter(|| floor(black_box(&keys.0), &msgs, 7))
    });
    c.bench_function("verify/chain_6_hmac", |b| {
        b.iter(|| floor(black_box(&keys.0), &msgs, 6))
    });
}

/// Median nanoseconds per call over several timed batches.
fn median_ns(mut f: impl FnMut()) -> f64 {
    let mut samples = Vec::new();
    for _ in 0..31 {
        let start = Instant::now();
        let mut n = 0u32;
        while start.elapsed() < Duration::from_millis(20) {
            f();
            n += 1;
        }
        samples.push(start.elapsed().as_nanos() as f64 / f64::from(n));
    }
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn summary() {
    let (keys, text, id) = setup();
    let msgs = messages(&id);
    let access = access();
    let full = median_ns(|| {
        black_box(full_verify(black_box(&text), &keys, &access));
    });
    let floor7 = median_ns(|| {
        black_box(floor(black_box(&keys.0), &msgs, 7));
    });
    println!(
        "summary: full verify {full:.0} ns, floor (7 HMAC-SHA256 steps) {floor7:.0} ns, ratio {:.2}x",
        full / floor7
    );
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
