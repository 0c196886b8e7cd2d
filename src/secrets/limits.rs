//! What a secret may be: names are environment-variable names, values fit an
//! environment, and an org's and an app's totals are bounded.

use super::SecretError;

/// Longest name, in bytes (what a `secret =` pattern can name).
pub const MAX_NAME: usize = 128;
/// Largest value, in bytes.
pub const MAX_VALUE: usize = 64 * 1024;
/// Largest total of an app's resolved secrets (names and values), in bytes: what an
/// environment can hold.
pub const MAX_APP_TOTAL: u64 = 1024 * 1024;
/// Most secrets an org keeps, in every scope, set or unset.
pub const MAX_ORG_SECRETS: usize = 10_000;
/// Most secrets one scope (an app, or the org's own) keeps: set, or unset with a value
/// still stored (`destroy --all` frees the name). Below the org's, so that one app's
/// writer cannot use up the org's room.
pub const MAX_SCOPE_SECRETS: usize = 1_000;
/// Most bytes of one scope's own current values (names and values, as an environment
/// counts them): half an environment, so that the org's own and any app's always fit
/// one together — a full app never blocks an org-wide write, nor the reverse.
pub const MAX_SCOPE_VALUES: u64 = MAX_APP_TOTAL / 2;
/// Most bytes one scope's stored versions take (old versions and unset secrets
/// included), so that writing and unsetting cannot grow the disk without bound;
/// destroying values gives their bytes back.
pub const MAX_SCOPE_STORED: u64 = 64 * 1024 * 1024;
/// Longest description, in characters.
pub const MAX_DESCRIPTION: usize = 256;
/// Versions kept per secret unless `serve --max-versions` says otherwise.
pub const DEFAULT_MAX_VERSIONS: u64 = 100;
/// Most secrets one write changes.
pub const MAX_PER_WRITE: usize = 1000;

/// `[A-Za-z_][A-Za-z0-9_]*`, at most [`MAX_NAME`] bytes.
pub fn check_name(name: &str) -> Result<(), SecretError> {
    let b = name.as_bytes();
    let ok = (1..=MAX_NAME).contains(&b.len())
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_');
    if ok {
        Ok(())
    } else {
        Err(SecretError::InvalidName(shown_name(name)))
    }
}

/// A name as text for an error: letters of any script as they are (`CLÉ`), but control,
/// invisible and bidirectional-control characters, quotes and backslashes escaped, and
/// cut at 64 characters.
pub fn shown_name(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if i == 64 {
            out.push_str("...");
            break;
        }
        if c.is_control() || crate::caveats::is_invisible(c) || c == '"' || c == '\\' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// At most [`MAX_VALUE`] bytes and no NUL (an environment cannot hold one).
pub fn check_value(name: &str, value: &[u8]) -> Result<(), SecretError> {
    if value.len() > MAX_VALUE {
        return Err(SecretError::ValueTooLarge {
            name: name.to_owned(),
            size: value.len(),
        });
    }
    if value.contains(&0) {
        return Err(SecretError::ValueHasNul(name.to_owned()));
    }
    Ok(())
}

/// At most [`MAX_DESCRIPTION`] printable characters.
pub fn check_description(d: &str) -> Result<(), SecretError> {
    let bad = |c: char| c.is_control() || crate::caveats::is_invisible(c);
    if d.chars().count() > MAX_DESCRIPTION || d.chars().any(bad) {
        return Err(SecretError::BadDescription);
    }
    Ok(())
}

/// What a secret counts toward an environment's size: `NAME=value` and its end.
pub fn env_size(name: &str, value_len: u32) -> u64 {
    name.len() as u64 + 2 + u64::from(value_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_shown_as_text_but_controls_escaped() {
        assert_eq!(shown_name("CL\u{c9}"), "CL\u{c9}");
        assert_eq!(shown_name("a\nb\"c"), "a\\nb\\\"c");
        assert_eq!(shown_name("x\u{202e}y"), "x\\u{202e}y");
        assert!(shown_name(&"n".repeat(100)).ends_with("..."));
        let e = check_name("CL\u{c9}").unwrap_err().to_string();
        assert!(e.contains("CL\u{c9}"), "{e}");
    }

    #[test]
    fn names_are_environment_variable_names() {
        for ok in ["A", "_", "DB_URL", "a1", &"X".repeat(128)] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1A", "A-B", "A.B", "A B", "É", &"X".repeat(129)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_fit_an_environment() {
        assert!(check_value("A", b"plain").is_ok());
        assert!(check_value("A", &vec![b'x'; MAX_VALUE]).is_ok());
        assert!(check_value("A", &vec![b'x'; MAX_VALUE + 1]).is_err());
        assert!(check_value("A", b"a\0b").is_err());
    }
}
