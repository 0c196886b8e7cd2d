//! Ticket bytes -> Ticket: decoding is strict (what decodes encodes back to the same
//! bytes), never panics, and no changed ticket opens to a root key other than the one
//! sealed in it.
//!
//! The first input byte picks the mode: even, the rest is a ticket as is (the seeds
//! are tickets sealed to this target's key); odd, the rest is pairs (offset, xor mask)
//! applied to a ticket sealed at start-up, so mutations land in a valid layout.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use macvault::token::{MAX_CONDITIONS, PrivateKey, RootKey, Ticket, check_location};
use macvault_caveats::Condition;
use zeroize::Zeroizing;

/// The third party's private key the seeds were sealed to.
const PRIVATE: [u8; 32] = [0x07; 32];
/// The root key every seed seals.
const ROOT: [u8; 32] = [0x11; 32];

fn private() -> PrivateKey {
    PrivateKey::from_bytes(Zeroizing::new(PRIVATE))
}

fn sealed() -> &'static [u8] {
    static SEALED: OnceLock<Vec<u8>> = OnceLock::new();
    SEALED.get_or_init(|| {
        let public = private().public_key().expect("a fixed key");
        let conditions = ["claim repository_id = 123", "claim ref = refs/heads/*", "max-validity = 10m"]
            .map(|c| Condition::parse(c).expect("a valid condition"));
        Ticket::seal(&public, "https://ci.example/discharge", &conditions, &RootKey::from_bytes(ROOT))
            .expect("sealing to a fixed key")
            .encode()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let bytes = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        let mut t = sealed().to_vec();
        for pair in rest.chunks_exact(2) {
            let at = usize::from(pair[0]) * t.len() / 256;
            t[at] ^= pair[1];
        }
        t
    };
    let Ok(ticket) = Ticket::decode(&bytes) else {
        return;
    };
    assert_eq!(ticket.encode(), bytes, "decoded a non-canonical ticket");
    assert!(check_location(ticket.location()).is_ok());
    assert!(ticket.conditions().len() <= MAX_CONDITIONS);
    for c in ticket.conditions() {
        assert_eq!(Condition::parse(&c.to_string()).as_ref(), Ok(c));
    }
    let _ = format!("{ticket:?}");
    if let Ok(root) = ticket.open(&private()) {
        assert_eq!(root.expose_bytes(), &ROOT, "a changed ticket opened to another key");
    }
});
