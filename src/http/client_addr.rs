//! Who the client is behind a load balancer: `--trusted-proxy` networks whose
//! `X-Forwarded-For` is believed.

use std::net::IpAddr;

use axum::http::HeaderMap;

use crate::caveats::IpNet;

/// The networks of proxies in front of this server.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Trust no proxy: the client is the peer.
    pub fn none() -> Self {
        TrustedProxies(Vec::new())
    }

    /// Trust these networks.
    pub fn new(nets: Vec<IpNet>) -> Self {
        TrustedProxies(nets)
    }

    /// Whether `ip` is one of the trusted proxies.
    pub(super) fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|n| n.contains(ip))
    }

    /// The client's address: the peer's, unless the peer is a trusted proxy; then the
    /// right-most address of `X-Forwarded-For` that is not a trusted proxy (the hops a
    /// client can forge are to the left of it). `None` when the header is garbled: an
    /// unknown address, which `ip =` caveats deny.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer.to_canonical();
        if self.0.is_empty() || !self.trusts(peer) {
            return Some(peer);
        }
        let mut hops: Vec<&str> = Vec::new();
        for value in headers.get_all("x-forwarded-for") {
            let Ok(text) = value.to_str() else {
                return None;
            };
            hops.extend(text.split(',').map(str::trim).filter(|h| !h.is_empty()));
        }
        let mut nearest = peer;
        for hop in hops.iter().rev() {
            let ip: IpAddr = hop.parse().ok()?;
            let ip = ip.to_canonical();
            if !self.trusts(ip) {
                return Some(ip);
            }
            nearest = ip;
        }
        // Every hop is a proxy of ours: the left-most is as near the client as we know.
        Some(nearest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(xff: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", HeaderValue::from_static(v));
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_header_is_believed_only_from_a_trusted_peer() {
        let proxies = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
        let forged = headers(&["6.6.6.6"]);
        // An untrusted peer: its header is ignored.
        assert_eq!(
            proxies.client_ip(ip("1.2.3.4"), &forged),
            Some(ip("1.2.3.4"))
        );
        // Trusted: the right-most untrusted hop, skipping our own proxies.
        let chain = headers(&["6.6.6.6, 7.7.7.7", "10.1.1.1"]);
        assert_eq!(
            proxies.client_ip(ip("10.0.0.1"), &chain),
            Some(ip("7.7.7.7"))
        );
        // Mapped addresses count as IPv4.
        assert_eq!(
            proxies.client_ip(ip("::ffff:10.0.0.1"), &headers(&["8.8.8.8"])),
            Some(ip("8.8.8.8"))
        );
        // No header: the proxy itself; a garbled one: unknown.
        assert_eq!(
            proxies.client_ip(ip("10.0.0.1"), &HeaderMap::new()),
            Some(ip("10.0.0.1"))
        );
        assert_eq!(
            proxies.client_ip(ip("10.0.0.1"), &headers(&["8.8.8.8, junk"])),
            None
        );
        // Trusting nobody: always the peer.
        assert_eq!(
            TrustedProxies::none().client_ip(ip("10.0.0.1"), &chain),
            Some(ip("10.0.0.1"))
        );
    }
}
