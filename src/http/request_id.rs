//! Request ids: every request gets one, returned as `x-request-id` and carried by every
//! log line the request writes (a `request` span). An incoming `x-request-id` is kept
//! only from a trusted proxy (`--trusted-proxy`), and only if it is 1 to 64 characters
//! of `A-Z a-z 0-9 . _ -`; anyone else's is replaced, so a client cannot forge another
//! request's id into the logs.

use std::net::IpAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{HeaderMap, HeaderName, HeaderValue};

use super::TrustedProxies;

/// The header.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// This process's ids: a random prefix, then a counter.
fn next() -> HeaderValue {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        let mut b = [0u8; 4];
        let _ = getrandom::fill(&mut b);
        b.iter().map(|x| format!("{x:02x}")).collect()
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    HeaderValue::from_str(&format!("{prefix}-{n:x}")).unwrap_or(HeaderValue::from_static("-"))
}

fn acceptable(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    (1..=64).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// The id of a request from `peer` with `headers`.
pub(super) fn of(peer: IpAddr, headers: &HeaderMap, proxies: &TrustedProxies) -> HeaderValue {
    match headers.get(&HEADER) {
        Some(v) if proxies.trusts(peer) && acceptable(v) => v.clone(),
        _ => next(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_incoming_id_is_kept_from_a_trusted_proxy_only_and_only_if_plain() {
        let proxies = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
        let (proxy, client): (IpAddr, IpAddr) =
            ("10.1.2.3".parse().unwrap(), "192.0.2.1".parse().unwrap());
        let mut h = HeaderMap::new();
        h.insert(&HEADER, HeaderValue::from_static("lb-7f3a.2"));
        assert_eq!(of(proxy, &h, &proxies), "lb-7f3a.2");
        assert_ne!(of(client, &h, &proxies), "lb-7f3a.2", "not from a client");
        for bad in ["a b", "x\"y", &"a".repeat(65)] {
            h.insert(&HEADER, HeaderValue::from_str(bad).unwrap());
            assert_ne!(of(proxy, &h, &proxies).to_str().unwrap(), bad);
        }
        let (a, b) = (next(), next());
        assert_ne!(a, b, "each request its own");
    }
}
