//! Rate limits and quotas (docs/API.md, "Limits"), per node, with `governor`:
//!
//! - **Failures** are charged after they happen, to a key: the client's address (an
//!   IPv6 /64 counts as one) for requests that do not authenticate or are denied, and
//!   for the discharge endpoint's 4xx; the token's id for a relayed `/v1/verify` whose
//!   token verifies but whose caveats deny (token ids are public, so a bad signature
//!   naming one is charged to the address that sent it, never to the token). A key
//!   whose budget is spent gets 429 with `Retry-After` instead of its failure; requests
//!   that authenticate and are allowed never spend or meet the budget, so clients
//!   behind one address (CI runners, NAT, a proxy) are not locked out by one of them.
//! - **Quotas** bound the costly calls each token may make: reveals and mints.
//!
//! Each limiter counts what it refuses ([`Limits::refusals`], read by `/metrics`): one
//! relaxed atomic add on a refusal, nothing on an allowed request.
//!
//! Memory is bounded: budgets unused for a while are forgotten ([`Limits::forget_idle`],
//! every minute), and past [`MAX_KEYS`] tracked keys a new key's failure is refused as
//! if its budget were spent (failures only: allowed requests are never refused).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::token::TokenId;

/// Most keys tracked by each limiter.
pub const MAX_KEYS: usize = 100_000;

/// What a failure is charged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Charged {
    /// A client address (IPv6: its /64).
    Address(IpAddr),
    /// A token, by id.
    Token(TokenId),
}

impl Charged {
    /// `ip`'s key: see [`address_key`].
    pub fn address(ip: Option<IpAddr>) -> Self {
        Charged::Address(address_key(ip))
    }
}

/// The address a client is limited by: its own, or for IPv6 its /64 (one host usually
/// holds a whole /64). No address (a test client) is one key of its own.
pub fn address_key(ip: Option<IpAddr>) -> IpAddr {
    match ip {
        Some(IpAddr::V6(v6)) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        Some(v4) => v4,
        None => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
    }
}

/// A rate: `count` per `per` (`10/s`, `600/m`, `1/h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// How many.
    pub count: NonZeroU32,
    /// In how long.
    pub per: Duration,
}

impl Rate {
    /// `count` per `per`.
    pub fn new(count: u32, per: Duration) -> Self {
        Rate {
            count: NonZeroU32::new(count).unwrap_or(NonZeroU32::MIN),
            per,
        }
    }

    /// One replenished every `per / count`, up to `burst` at once.
    fn quota(self, burst: NonZeroU32) -> Quota {
        let every = (self.per / self.count.get()).max(Duration::from_nanos(1));
        Quota::with_period(every)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
            .allow_burst(burst)
    }
}

impl std::str::FromStr for Rate {
    type Err = String;

    /// `N/s`, `N/m` or `N/h`, N from 1.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?}: expected a rate such as 10/s, 600/m or 1/h");
        let (n, unit) = s.trim().split_once('/').ok_or_else(bad)?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        let per = match unit.trim() {
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        NonZeroU32::new(count).ok_or_else(bad)?;
        Ok(Rate::new(count, per))
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s",
            60 => "m",
            _ => "h",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// The limits, as `serve` sets them.
#[derive(Debug, Clone, Copy)]
pub struct LimitOptions {
    /// Failures per key once the burst is spent (`--rate-limit`).
    pub failures: Rate,
    /// Failures a key may have at once (`--rate-burst`).
    pub failure_burst: NonZeroU32,
    /// Reveals per token (`--quota-reveal`): as many at once as the rate's count.
    pub reveals: Rate,
    /// Mints per token (`--quota-mint`), likewise.
    pub mints: Rate,
}

impl Default for LimitOptions {
    fn default() -> Self {
        LimitOptions {
            failures: Rate::new(10, Duration::from_secs(1)),
            failure_burst: NonZeroU32::new(50).unwrap_or(NonZeroU32::MIN),
            reveals: Rate::new(600, Duration::from_secs(60)),
            mints: Rate::new(60, Duration::from_secs(60)),
        }
    }
}

/// The limiters of one node.
pub struct Limits {
    failures: DefaultKeyedRateLimiter<Charged>,
    reveals: DefaultKeyedRateLimiter<TokenId>,
    mints: DefaultKeyedRateLimiter<TokenId>,
    refused: [AtomicU64; 4],
}

/// What the limiters of a node have refused since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Refusals {
    /// Failures refused to a client address (answered 429).
    pub address: u64,
    /// Denied verifications refused to a token (answered 429).
    pub token: u64,
    /// Reveals past a token's quota.
    pub reveals: u64,
    /// Mints past a token's quota.
    pub mints: u64,
}

/// Indices into `Limits::refused`.
const ADDRESS: usize = 0;
const TOKEN: usize = 1;
const REVEALS: usize = 2;
const MINTS: usize = 3;

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("failure_keys", &self.failures.len())
            .finish_non_exhaustive()
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::new(LimitOptions::default())
    }
}

/// Seconds to wait when a budget is spent.
pub type RetryAfter = u64;

impl Limits {
    /// Limiters with `opts`.
    pub fn new(opts: LimitOptions) -> Self {
        Limits {
            failures: RateLimiter::keyed(opts.failures.quota(opts.failure_burst)),
            reveals: RateLimiter::keyed(opts.reveals.quota(opts.reveals.count)),
            mints: RateLimiter::keyed(opts.mints.quota(opts.mints.count)),
            refused: Default::default(),
        }
    }

    /// Counts a refusal of kind `which` and hands `refused` back.
    fn count<T>(&self, which: usize, refused: Result<(), T>) -> Result<(), T> {
        if refused.is_err() {
            self.refused[which].fetch_add(1, Ordering::Relaxed);
        }
        refused
    }

    /// What was refused so far.
    pub fn refusals(&self) -> Refusals {
        let n = |i: usize| self.refused[i].load(Ordering::Relaxed);
        Refusals {
            address: n(ADDRESS),
            token: n(TOKEN),
            reveals: n(REVEALS),
            mints: n(MINTS),
        }
    }

    /// Charges one failure to `key`: `Err` (seconds to wait) when its budget is spent,
    /// and the failure is to be answered 429 instead.
    pub fn charge_failure(&self, key: Charged) -> Result<(), RetryAfter> {
        let which = match key {
            Charged::Address(_) => ADDRESS,
            Charged::Token(_) => TOKEN,
        };
        if self.failures.len() >= MAX_KEYS {
            // Full: forget what is idle; if still full, refuse rather than grow.
            self.failures.retain_recent();
            if self.failures.len() >= MAX_KEYS {
                return self.count(which, Err(1));
            }
        }
        self.count(which, check(&self.failures, &key))
    }

    /// One reveal by `token`: `Err` past its quota.
    pub fn reveal(&self, token: TokenId) -> Result<(), RetryAfter> {
        self.count(REVEALS, bounded(&self.reveals, &token))
    }

    /// One mint by `token`: `Err` past its quota.
    pub fn mint(&self, token: TokenId) -> Result<(), RetryAfter> {
        self.count(MINTS, bounded(&self.mints, &token))
    }

    /// Forgets budgets not used lately (call every minute or so).
    pub fn forget_idle(&self) {
        self.failures.retain_recent();
        self.reveals.retain_recent();
        self.mints.retain_recent();
    }

    /// Keys tracked now: (failures, reveals, mints).
    pub fn tracked(&self) -> (usize, usize, usize) {
        (self.failures.len(), self.reveals.len(), self.mints.len())
    }
}

/// A quota check that keeps its map bounded (a quota key is a token that authenticated,
/// so a full map means many live tokens: forget idle ones, then let it through).
fn bounded(limiter: &DefaultKeyedRateLimiter<TokenId>, token: &TokenId) -> Result<(), RetryAfter> {
    if limiter.len() >= MAX_KEYS {
        limiter.retain_recent();
        if limiter.len() >= MAX_KEYS {
            return Ok(());
        }
    }
    check(limiter, token)
}

fn check<K: std::hash::Hash + Eq + Clone>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
) -> Result<(), RetryAfter> {
    limiter.check_key(key).map_err(|not_until| {
        not_until
            .wait_time_from(DefaultClock::default().now())
            .as_secs()
            .max(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(v: u32) -> NonZeroU32 {
        NonZeroU32::new(v).unwrap()
    }

    /// Budgets that do not refill within a test.
    fn tight() -> Limits {
        Limits::new(LimitOptions {
            failures: "1/h".parse().unwrap(),
            failure_burst: n(3),
            reveals: "2/h".parse().unwrap(),
            mints: "1/h".parse().unwrap(),
        })
    }

    #[test]
    fn rates_read_and_print_as_written() {
        for text in ["10/s", "600/m", "1/h"] {
            assert_eq!(text.parse::<Rate>().unwrap().to_string(), text);
        }
        for bad in ["0/s", "10", "10/d", "x/s", "-1/s", ""] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_key_gets_its_burst_of_failures_and_then_a_wait() {
        let l = tight();
        let a = Charged::address(Some("10.0.0.1".parse().unwrap()));
        for _ in 0..3 {
            assert!(l.charge_failure(a).is_ok());
        }
        assert!(l.charge_failure(a).unwrap_err() >= 1);
        // Other keys are untouched: another address, a token.
        let b = Charged::address(Some("10.0.0.2".parse().unwrap()));
        assert!(l.charge_failure(b).is_ok());
        assert!(l.charge_failure(Charged::Token(TokenId([7; 16]))).is_ok());
        assert_eq!(
            l.refusals(),
            Refusals {
                address: 1,
                ..Refusals::default()
            },
            "only the refusal is counted"
        );
    }

    #[test]
    fn an_ipv6_slash_64_is_one_key() {
        let one = Charged::address(Some("2001:db8:1:2:aaaa::1".parse().unwrap()));
        let same = Charged::address(Some("2001:db8:1:2:bbbb::9".parse().unwrap()));
        let other = Charged::address(Some("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(one, same);
        assert_ne!(one, other);
    }

    #[test]
    fn quotas_count_per_token() {
        let l = tight();
        let (t, u) = (TokenId([1; 16]), TokenId([2; 16]));
        assert!(l.reveal(t).is_ok() && l.reveal(t).is_ok());
        assert!(l.reveal(t).is_err());
        assert!(l.reveal(u).is_ok());
        assert!(l.mint(t).is_ok());
        assert!(l.mint(t).is_err());
        let token = Charged::Token(t);
        while l.charge_failure(token).is_ok() {}
        assert_eq!(
            l.refusals(),
            Refusals {
                address: 0,
                token: 1,
                reveals: 1,
                mints: 1
            }
        );
    }

    #[test]
    fn many_addresses_stay_within_the_bound() {
        let l = Limits::new(LimitOptions {
            failures: "1000000/s".parse().unwrap(),
            failure_burst: n(1),
            ..LimitOptions::default()
        });
        for i in 0..(MAX_KEYS as u32 + 10) {
            let _ = l.charge_failure(Charged::address(Some(IpAddr::V4(i.into()))));
        }
        assert!(l.tracked().0 <= MAX_KEYS, "{:?}", l.tracked());
    }
}
