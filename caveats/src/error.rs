//! Parse errors, denial reasons, and the escaping used whenever untrusted input is echoed.

use std::fmt;

/// Longest slice of untrusted input ever echoed back in a message.
const EXCERPT_MAX: usize = 64;

/// Why a caveat's text or JSON form (or a name, action, time…) was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    what: &'static str,
    near: Option<String>,
}

impl ParseError {
    pub(crate) const fn new(what: &'static str) -> Self {
        Self { what, near: None }
    }

    /// An error that quotes (escaped, truncated) the offending input.
    pub(crate) fn near(what: &'static str, input: impl AsRef<[u8]>) -> Self {
        Self {
            what,
            near: Some(Excerpt(input.as_ref()).to_string()),
        }
    }

    /// What is wrong, without any of the input.
    pub fn what(&self) -> &'static str {
        self.what
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.what)?;
        match &self.near {
            Some(near) => write!(f, ": \"{near}\""),
            None => Ok(()),
        }
    }
}

impl std::error::Error for ParseError {}

/// Why a caveat denied an access, e.g. `does not allow write on app "web"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Reason(pub(crate) String);

/// Whether `c` is invisible or reorders text around it (zero-width characters,
/// bidirectional controls, variation selectors, tags): such characters make one name look
/// like another, so names refuse them and terminals get them escaped.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}'
        | '\u{17B5}' | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}'
        | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{3164}'
        | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF0}'..='\u{FFF8}'
        | '\u{E0000}'..='\u{E0FFF}')
}

/// Untrusted bytes shown escaped (ASCII only, quotes and backslashes escaped) and truncated.
pub struct Excerpt<'a>(pub &'a [u8]);

impl fmt::Display for Excerpt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.get(..EXCERPT_MAX) {
            Some(head) if self.0.len() > EXCERPT_MAX => write!(f, "{}...", head.escape_ascii()),
            _ => write!(f, "{}", self.0.escape_ascii()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_escaped_and_truncated() {
        assert_eq!(Excerpt(b"a\"b\\\n\xff").to_string(), "a\\\"b\\\\\\n\\xff");
        let long = [b'a'; 100];
        assert_eq!(Excerpt(&long).to_string(), format!("{}...", "a".repeat(64)));
        assert_eq!(ParseError::near("bad", b"x\n").to_string(), "bad: \"x\\n\"");
    }
}
