//! Where the CLI gets its inputs: the token (flag, environment or stdin) and durations.

use std::convert::Infallible;
use std::fmt;
use std::io::{self, IsTerminal as _, Read as _};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context as _, bail};
use zeroize::Zeroizing;

use crate::token::LIMITS;

/// A token text given on the command line, in the environment or on stdin. Never
/// printed by `Debug`; wiped on drop.
#[derive(Clone)]
pub struct SecretToken(Zeroizing<String>);

impl SecretToken {
    /// The token text, for sending it or decoding it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl FromStr for SecretToken {
    type Err = Infallible;
    fn from_str(s: &str) -> Result<Self, Infallible> {
        Ok(Self(Zeroizing::new(s.trim().to_owned())))
    }
}

impl fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SecretToken").finish_non_exhaustive()
    }
}

/// The first token given: `explicit`, then `global` (`--token` / `MACVAULT_TOKEN`),
/// then stdin.
pub fn token_or_stdin(
    explicit: Option<SecretToken>,
    global: Option<&SecretToken>,
) -> anyhow::Result<SecretToken> {
    match explicit.or_else(|| global.cloned()) {
        Some(token) if token.expose().is_empty() => bail!("the token given is empty"),
        Some(token) => Ok(token),
        None => read_stdin_token(),
    }
}

fn read_stdin_token() -> anyhow::Result<SecretToken> {
    let stdin = io::stdin();
    if stdin.is_terminal() {
        bail!("no token given: pass it with --token, set MACVAULT_TOKEN, or pipe it on stdin");
    }
    // A token is at most LIMITS.max_text bytes; allow for surrounding whitespace.
    let cap = LIMITS.max_text as u64 + 1024;
    let mut text = Zeroizing::new(String::new());
    stdin
        .lock()
        .take(cap + 1)
        .read_to_string(&mut text)
        .context("cannot read the token from stdin")?;
    if text.len() as u64 > cap {
        bail!("stdin holds more than a token (over {cap} bytes)");
    }
    let token = SecretToken(Zeroizing::new(text.trim().to_owned()));
    if token.expose().is_empty() {
        bail!("no token given: stdin is empty (pass --token or set MACVAULT_TOKEN)");
    }
    Ok(token)
}

/// A positive duration such as `90d`, `2160h` or `1h30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("not a duration like 90d, 2160h or 1h30m ({e})"))?;
    if d.as_secs() == 0 {
        return Err("the duration must be at least one second".into());
    }
    Ok(d)
}

/// A duration, or `none` for no limit.
#[derive(Debug, Clone, Copy)]
pub struct MaxExpiry(pub Option<Duration>);

/// Parses `none` or a duration.
pub fn parse_max_expiry(s: &str) -> Result<MaxExpiry, String> {
    if s == "none" {
        Ok(MaxExpiry(None))
    } else {
        parse_duration(s).map(|d| MaxExpiry(Some(d)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_max_expiry("none").is_ok_and(|m| m.0.is_none()));
    }

    #[test]
    fn tokens_are_trimmed_and_not_debug_printed() {
        let t: SecretToken = " mvt_abc\n".parse().unwrap();
        assert_eq!(t.expose(), "mvt_abc");
        assert!(!format!("{t:?}").contains("abc"));
    }
}
