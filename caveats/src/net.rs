//! CIDR networks in their one canonical text form.

use std::{
    fmt::{self, Write as _},
    net::IpAddr,
    str::FromStr,
};

use crate::ParseError;

/// An IP network `addr/prefix` with its host bits zero; ordered v4 before v6, then by
/// address, then by prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// The network `addr/prefix`; rejects a prefix too long or host bits set.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, ParseError> {
        let net = Self { addr, prefix };
        if prefix > net.max_prefix() {
            return Err(ParseError::new("prefix longer than the address"));
        }
        if net.bits() & !net.mask() != 0 {
            return Err(ParseError::new("host bits set in network address"));
        }
        Ok(net)
    }

    /// The network's first address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is inside the network (the address families must match).
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4() && addr_bits(ip) & self.mask() == self.bits()
    }

    fn max_prefix(&self) -> u8 {
        if self.addr.is_ipv4() { 32 } else { 128 }
    }

    fn bits(&self) -> u128 {
        addr_bits(self.addr)
    }

    /// The netmask, as the top `prefix` bits of the address width, in a u128.
    fn mask(&self) -> u128 {
        let width = u32::from(self.max_prefix());
        let host_bits = width - u32::from(self.prefix);
        let full = u128::MAX >> (128 - width);
        full.checked_shl(host_bits).unwrap_or(0) & full
    }
}

fn addr_bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for IpNet {
    type Err = ParseError;
    /// Accepts only the canonical form: std `Display` address, `/`, prefix without leading zeros.
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let bad = || ParseError::near("not a canonical CIDR like 10.0.0.0/8", s);
        let (addr_text, prefix_text) = s.split_once('/').ok_or_else(bad)?;
        let addr: IpAddr = addr_text.parse().map_err(|_| bad())?;
        // std parsers accept a few spellings (e.g. IPv6 with uppercase or extra zeros);
        // only the Display form is canonical. A stack buffer keeps this allocation-free.
        let mut shown = StackStr::default();
        write!(shown, "{addr}").map_err(|_| bad())?;
        let canonical_prefix = prefix_text == "0" || !prefix_text.starts_with('0');
        if shown.as_bytes() != addr_text.as_bytes()
            || !canonical_prefix
            || prefix_text.len() > 3
            || !prefix_text.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let prefix = prefix_text.parse().map_err(|_| bad())?;
        Self::new(addr, prefix).map_err(|e| ParseError::near(e.what(), s))
    }
}

/// A small fixed buffer that `write!` can fill, for canonical-form checks without allocating.
struct StackStr {
    buf: [u8; 64],
    len: usize,
}

impl Default for StackStr {
    fn default() -> Self {
        Self {
            buf: [0; 64],
            len: 0,
        }
    }
}

impl StackStr {
    fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

impl fmt::Write for StackStr {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_nets() {
        for ok in [
            "10.0.0.0/8",
            "0.0.0.0/0",
            "1.2.3.4/32",
            "2001:db8::/32",
            "::/0",
            "::1/128",
        ] {
            let net: IpNet = ok.parse().unwrap();
            assert_eq!(net.to_string(), ok);
        }
        for bad in [
            "10.0.0.1/8",
            "10.0.0.0",
            "10.0.0.0/08",
            "10.0.0.0/33",
            "010.0.0.0/8",
            "2001:DB8::/32",
            "2001:0db8::/32",
            "::/129",
            "10.0.0.0/+8",
            "10.0.0.0/ 8",
            "2001:db8::1/32",
        ] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn containment() {
        let net: IpNet = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains("10.255.0.1".parse().unwrap()));
        assert!(!net.contains("11.0.0.0".parse().unwrap()));
        assert!(!net.contains("::a00:1".parse().unwrap()));
        let all: IpNet = "::/0".parse().unwrap();
        assert!(all.contains("::1".parse().unwrap()));
        assert!(!all.contains("1.1.1.1".parse().unwrap()));
    }
}
