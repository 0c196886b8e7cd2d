//! Where the CLI gets its inputs: the token (flag, file, environment or stdin, in that
//! order), durations, and the resource kinds and actions of an access.

use std::fmt;
use std::io::{self, IsTerminal as _, Read as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context as _;
use zeroize::Zeroizing;

use super::exit::usage;
use crate::caveats::{Action, Resource};
use crate::token::LIMITS;

/// A token text given on the command line, in a file, in the environment or on stdin.
/// Never printed by `Debug`; wiped on drop.
#[derive(Clone)]
pub struct SecretToken(Zeroizing<String>);

impl SecretToken {
    /// The token text, for sending it or decoding it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub(crate) fn new(text: &str) -> anyhow::Result<Self> {
        let text = text.trim();
        if text.is_empty() {
            return Err(usage("the token given is empty"));
        }
        Ok(SecretToken(Zeroizing::new(text.to_owned())))
    }
}

impl fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SecretToken").finish_non_exhaustive()
    }
}

/// Who has claimed stdin this run: two arguments cannot both read it.
static STDIN: Mutex<Option<&'static str>> = Mutex::new(None);

/// Claims stdin for `what`; a usage error if something else already did.
pub fn claim_stdin(what: &'static str) -> anyhow::Result<()> {
    let mut claim = STDIN.lock().unwrap_or_else(|p| p.into_inner());
    match *claim {
        Some(other) if other == what => Err(usage(format!(
            "stdin can be read once: give {what} as - only once (the others on the command \
             line, or in a file)"
        ))),
        Some(other) => Err(usage(format!(
            "both {other} and {what} want to read stdin: give one of them another way \
             (for a token, --token-file)"
        ))),
        None => {
            *claim = Some(what);
            Ok(())
        }
    }
}

/// Reads stdin whole, at most `cap` bytes.
pub fn read_stdin(what: &'static str, cap: u64) -> anyhow::Result<Zeroizing<String>> {
    claim_stdin(what)?;
    let stdin = io::stdin();
    if stdin.is_terminal() {
        return Err(usage(format!(
            "{what} is to be read from stdin, but stdin is a terminal: pipe it in"
        )));
    }
    let mut text = Zeroizing::new(String::new());
    stdin
        .lock()
        .take(cap + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read {what} from stdin"))?;
    if text.len() as u64 > cap {
        // Not a mistake in the command line: the input is over a documented limit.
        return Err(TooLarge(format!(
            "stdin holds more than {what} may (over {cap} bytes)"
        ))
        .into());
    }
    Ok(text)
}

/// On a terminal, asks for a value without echoing it (a second `-` is refused like a
/// second read of stdin); `None` when stdin is not a terminal (then it is read).
pub fn prompt_hidden(prompt: &str) -> anyhow::Result<Option<Zeroizing<String>>> {
    if !io::stdin().is_terminal() {
        return Ok(None);
    }
    claim_stdin("a secret's value")?;
    let typed = rpassword::prompt_password(prompt).context("cannot read the value typed")?;
    Ok(Some(Zeroizing::new(typed)))
}

/// Input over a documented limit (a local refusal, exit 5).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TooLarge(pub String);

/// The largest token text read from a file or stdin, with room for whitespace.
fn token_cap() -> u64 {
    LIMITS.max_text as u64 + 1024
}

/// A token from `--token VALUE`: `-` reads it from stdin.
pub fn token_arg(value: &str) -> anyhow::Result<SecretToken> {
    if value == "-" {
        let text = read_stdin("the token", token_cap())?;
        return SecretToken::new(&text);
    }
    SecretToken::new(value)
}

/// A token from a file readable by its owner only (like an ssh key).
pub fn token_file(path: &Path) -> anyhow::Result<SecretToken> {
    let shown = path.display();
    let meta = std::fs::metadata(path)
        .map_err(|e| usage(format!("cannot read the token file {shown}: {e}")))?;
    if meta.is_dir() {
        return Err(usage(format!("{shown} is a directory, not a token file")));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(usage(format!(
            "the token file {shown} is readable or writable by others (mode {mode:o}): \
             run `chmod 600 {shown}`"
        )));
    }
    let mut text = Zeroizing::new(String::new());
    std::fs::File::open(path)
        .and_then(|f| f.take(token_cap() + 1).read_to_string(&mut text))
        .map_err(|e| usage(format!("cannot read the token file {shown}: {e}")))?;
    if text.len() as u64 > token_cap() {
        return Err(usage(format!("{shown} holds more than a token")));
    }
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(usage(format!("the token file {shown} is empty")));
    }
    if crate::token::inspect(trimmed).is_err() {
        return Err(usage(if trimmed.starts_with("mvt_") {
            format!(
                "the token file {shown} holds a token that does not decode: truncated or damaged?"
            )
        } else {
            format!(
                "the token file {shown} does not hold a token: expected text starting with mvt_ \
                 (or a libmacaroons token)"
            )
        }));
    }
    SecretToken::new(trimmed)
}

/// The file the presented token comes from, if it comes from one: `--token-file`, or
/// `MACVAULT_TOKEN_FILE` when neither `--token` nor `MACVAULT_TOKEN` gives one (the
/// precedence of [`presented`]).
pub fn presented_file(flag: Option<&str>, file: Option<&Path>) -> Option<std::path::PathBuf> {
    if flag.is_some() {
        return None;
    }
    if let Some(path) = file {
        return Some(path.to_owned());
    }
    if std::env::var("MACVAULT_TOKEN").is_ok_and(|v| !v.trim().is_empty()) {
        return None;
    }
    std::env::var_os("MACVAULT_TOKEN_FILE")
        .filter(|p| !p.is_empty())
        .map(std::path::PathBuf::from)
}

/// The token of a command: `--token` (or `-` for stdin), `--token-file`, then
/// `MACVAULT_TOKEN`, then `MACVAULT_TOKEN_FILE`; `None` if there is none.
pub fn presented(flag: Option<&str>, file: Option<&Path>) -> anyhow::Result<Option<SecretToken>> {
    if let Some(value) = flag {
        return token_arg(value).map(Some);
    }
    if let Some(path) = file {
        return token_file(path).map(Some);
    }
    if let Ok(value) = std::env::var("MACVAULT_TOKEN")
        && !value.trim().is_empty()
    {
        return SecretToken::new(&value).map(Some);
    }
    if let Some(path) = std::env::var_os("MACVAULT_TOKEN_FILE").filter(|p| !p.is_empty()) {
        return token_file(Path::new(&path)).map(Some);
    }
    Ok(None)
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

/// An action by name (`read`) or caveat letter (`r`), listing what is valid otherwise.
pub fn parse_action(s: &str) -> Result<Action, String> {
    if let Ok(a) = Action::from_str(s) {
        return Ok(a);
    }
    if let [letter] = s.as_bytes()
        && let Some(a) = Action::from_letter(*letter)
    {
        return Ok(a);
    }
    let valid: Vec<String> = Action::ALL
        .iter()
        .map(|a| format!("{} ({})", a.name(), a.letter()))
        .collect();
    Err(format!("unknown action; use one of {}", valid.join(", ")))
}

/// A resource kind by name (`secrets`, or `secret`), listing what is valid otherwise.
pub fn parse_resource(s: &str) -> Result<Resource, String> {
    let plural = if s.ends_with('s') {
        s.to_owned()
    } else {
        format!("{s}s")
    };
    Resource::ALL
        .iter()
        .copied()
        .find(|r| r.to_string() == s || r.to_string() == plural)
        .ok_or_else(|| {
            let valid: Vec<String> = Resource::ALL.iter().map(ToString::to_string).collect();
            format!("unknown resource kind; use one of {}", valid.join(", "))
        })
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
    fn actions_and_resources_by_name_or_letter() {
        assert_eq!(parse_action("r"), Ok(Action::Read));
        assert_eq!(parse_action("reveal"), Ok(Action::Reveal));
        assert_eq!(parse_action("v"), Ok(Action::Reveal));
        let e = parse_action("peek").unwrap_err();
        assert!(e.contains("read (r)") && e.contains("reveal (v)"), "{e}");
        assert_eq!(parse_resource("secret"), Ok(Resource::Secrets));
        assert_eq!(parse_resource("tokens"), Ok(Resource::Tokens));
        let e = parse_resource("files").unwrap_err();
        assert!(e.contains("apps") && e.contains("tokens"), "{e}");
    }

    #[test]
    fn tokens_are_trimmed_and_not_debug_printed() {
        let t = token_arg(" mvt_abc\n").unwrap();
        assert_eq!(t.expose(), "mvt_abc");
        assert!(!format!("{t:?}").contains("abc"));
        assert!(token_arg("  ").is_err());
    }

    #[test]
    fn token_files_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        let token = crate::token::Macaroon::mint(&[7; 32], b"an id", None);
        let text = crate::token::Bundle::single(token).to_text();
        std::fs::write(&path, format!("{text}\n")).unwrap();
        for (mode, ok) in [
            (0o600, true),
            (0o400, true),
            (0o640, false),
            (0o644, false),
            (0o602, false),
        ] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let r = token_file(&path);
            assert_eq!(r.is_ok(), ok, "mode {mode:o}: {:?}", r.err());
            if let Err(e) = r {
                assert!(e.to_string().contains("chmod 600"), "{e}");
            }
        }
    }
}
