//! `.env` files in the dialect python-dotenv (1.2) reads: comments, `export`, single and
//! double quotes (escapes in both; multi-line values), inline `#` comments after
//! unquoted values (a `#` after whitespace), empty values, `=` inside values. No
//! `${VAR}` interpolation. Unlike python-dotenv, a line it would skip with a warning is
//! an error here, naming the line: an import writes everything or nothing.

use std::fmt;

/// A line that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DotenvError {
    /// 1-based.
    pub line: usize,
    /// What is wrong.
    pub reason: &'static str,
}

impl fmt::Display for DotenvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for DotenvError {}

/// Python's `\s`: Unicode whitespace, and the separators U+001C to U+001F.
fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Whitespace that does not end a line.
fn is_blank(c: char) -> bool {
    is_space(c) && c != '\r' && c != '\n'
}

struct Reader<'a> {
    text: &'a str,
    at: usize,
    line: usize,
}

impl<'a> Reader<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.at..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn advance(&mut self, bytes: usize) -> &'a str {
        let taken = &self.text[self.at..self.at + bytes];
        // \r\n, \n and \r each end a line.
        self.line += taken.matches('\n').count() + taken.matches('\r').count()
            - taken.matches("\r\n").count();
        self.at += bytes;
        taken
    }

    fn take_while(&mut self, f: impl Fn(char) -> bool) -> &'a str {
        let n = self.rest().find(|c| !f(c)).unwrap_or(self.rest().len());
        self.advance(n)
    }

    fn error(&self, reason: &'static str) -> DotenvError {
        DotenvError {
            line: self.line,
            reason,
        }
    }

    /// `export` and blanks before a key.
    fn export(&mut self) {
        if let Some(after) = self.rest().strip_prefix("export")
            && after.starts_with(is_blank)
        {
            self.advance("export".len());
            self.take_while(is_blank);
        }
    }

    fn key(&mut self) -> Result<Option<&'a str>, DotenvError> {
        match self.peek() {
            Some('#') => Ok(None),
            Some('\'') => {
                let body = &self.rest()[1..];
                match body.find('\'') {
                    Some(end) if end > 0 => {
                        self.advance(1);
                        let key = self.advance(end);
                        self.advance(1);
                        Ok(Some(key))
                    }
                    _ => Err(self.error("unterminated quoted name")),
                }
            }
            _ => {
                let key = self.take_while(|c| c != '=' && c != '#' && !is_space(c));
                if key.is_empty() {
                    Err(self.error("expected a name"))
                } else {
                    Ok(Some(key))
                }
            }
        }
    }

    /// A quoted value's body: up to the first `quote` not preceded by a backslash or,
    /// failing one, the last quote there is (as python-dotenv's regular expression
    /// backtracks to).
    fn quoted(&mut self, quote: u8) -> Result<&'a str, DotenvError> {
        // Backslash-quote is one piece; any other byte is one (both delimiters are
        // ASCII, so UTF-8 needs no care). The body ends at the first quote outside a
        // piece; failing one, at the quote of the last backslash-quote piece.
        let body = &self.rest().as_bytes()[1..];
        let (mut i, mut end, mut last_pair) = (0, None, None);
        while i < body.len() {
            if body[i] == b'\\' && body.get(i + 1) == Some(&quote) {
                last_pair = Some(i + 1);
                i += 2;
            } else if body[i] == quote {
                end = Some(i);
                break;
            } else {
                i += 1;
            }
        }
        let end = end
            .or(last_pair)
            .ok_or_else(|| self.error("unterminated quoted value"))?;
        self.advance(1);
        let value = self.advance(end);
        self.advance(1);
        Ok(value)
    }

    fn value(&mut self) -> Result<String, DotenvError> {
        match self.peek() {
            Some(q @ ('\'' | '"')) => {
                let body = self.quoted(q as u8)?;
                Ok(unescape(body, q == '"'))
            }
            None | Some('\n' | '\r') => Ok(String::new()),
            Some(_) => {
                let part = self.take_while(|c| c != '\n' && c != '\r');
                Ok(strip_comment(part).trim_end_matches(is_space).to_owned())
            }
        }
    }

    /// A comment, blanks and the end of the line (or of the text).
    fn end_of_line(&mut self) -> Result<(), DotenvError> {
        self.take_while(is_blank);
        if self.peek() == Some('#') {
            self.take_while(|c| c != '\n' && c != '\r');
        }
        self.take_while(is_blank);
        let rest = self.rest();
        if rest.is_empty() {
            Ok(())
        } else if rest.starts_with("\r\n") {
            self.advance(2);
            Ok(())
        } else if rest.starts_with(['\n', '\r']) {
            self.advance(1);
            Ok(())
        } else {
            Err(self.error("unexpected text after the value"))
        }
    }
}

/// Removes an inline comment: from the first `#` that follows whitespace.
fn strip_comment(part: &str) -> &str {
    let mut prev_space = None;
    for (i, c) in part.char_indices() {
        if c == '#'
            && let Some(start) = prev_space
        {
            return &part[..start];
        }
        if is_space(c) {
            prev_space.get_or_insert(i);
        } else {
            prev_space = None;
        }
    }
    part
}

/// Decodes `\\` and `\'` (single quotes), and also `\"` `\a` `\b` `\f` `\n` `\r` `\t`
/// `\v` (double quotes); any other backslash stays as it is.
fn unescape(body: &str, double: bool) -> String {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let decoded = match chars.peek() {
            Some('\\') => Some('\\'),
            Some('\'') => Some('\''),
            Some('"') if double => Some('"'),
            Some('a') if double => Some('\u{7}'),
            Some('b') if double => Some('\u{8}'),
            Some('f') if double => Some('\u{c}'),
            Some('n') if double => Some('\n'),
            Some('r') if double => Some('\r'),
            Some('t') if double => Some('\t'),
            Some('v') if double => Some('\u{b}'),
            _ => None,
        };
        match decoded {
            Some(d) => {
                out.push(d);
                chars.next();
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Every `NAME=value` in `text`, in order (a name set twice appears twice).
pub fn parse(text: &str) -> Result<Vec<(String, String)>, DotenvError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut r = Reader {
        text,
        at: 0,
        line: 1,
    };
    let mut out = Vec::new();
    loop {
        r.take_while(is_space);
        if r.rest().is_empty() {
            return Ok(out);
        }
        r.export();
        let key = r.key()?;
        r.take_while(is_blank);
        let value = if r.peek() == Some('=') {
            r.advance(1);
            r.take_while(is_blank);
            Some(r.value()?)
        } else {
            None
        };
        let line = r.line;
        r.end_of_line()?;
        match (key, value) {
            (Some(k), Some(v)) => out.push((k.to_owned(), v)),
            (Some(_), None) => {
                return Err(DotenvError {
                    line,
                    reason: "a name without `=` (write NAME= for an empty value)",
                });
            }
            (None, _) => {}
        }
    }
}

/// One `NAME=value` line that [`parse`] reads back as `value`: single-quoted as it is
/// (which a shell sourcing the file reads alike, expanding nothing) when that reads
/// back, else double-quoted with escapes, else as it is, else single-quoted with
/// escapes; `None` if no form reads back.
fn line(name: &str, value: &str) -> Option<String> {
    let mut quoted = String::with_capacity(value.len() + 2);
    for c in value.chars() {
        match c {
            '\\' => quoted.push_str("\\\\"),
            '"' => quoted.push_str("\\\""),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            c => quoted.push(c),
        }
    }
    let single: String = value.replace('\\', "\\\\").replace('\'', "\\'");
    let literal = (!value.contains(['\'', '\\'])).then(|| format!("{name}='{value}'\n"));
    literal
        .into_iter()
        .chain([
            format!("{name}=\"{quoted}\"\n"),
            format!("{name}={value}\n"),
            format!("{name}='{single}'\n"),
        ])
        // Followed by a line with quotes: a form that reads back only at the end of a file
        // (python-dotenv's backtracking past an escaped quote) does not count.
        .find(|l| {
            let expected = [
                (name.to_owned(), value.to_owned()),
                ("X".to_owned(), String::new()),
            ];
            parse(&format!("{l}X=\"\"\n")).is_ok_and(|p| p == expected)
        })
}

/// Whether a line [`write`] wrote would make a shell that sources it expand something
/// (a value that could not be single-quoted as it is, with `$` or a backtick in it).
pub fn expands_in_a_shell(line: &str) -> bool {
    let value = line.split_once('=').map_or("", |(_, v)| v);
    !value.starts_with('\'') && value.contains(['$', '`'])
}

/// A `.env` text of `pairs` that [`parse`] (and python-dotenv) reads back exactly, or
/// the first name whose value no form can carry.
pub fn write<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<String, String> {
    let pairs: Vec<(&str, &str)> = pairs.into_iter().collect();
    let mut out = String::new();
    for (name, value) in &pairs {
        out.push_str(&line(name, value).ok_or_else(|| (*name).to_owned())?);
    }
    // Each line reads back alone; check that the whole does too.
    let back = parse(&out).map_err(|_| String::new())?;
    let same = back.len() == pairs.len()
        && back
            .iter()
            .zip(&pairs)
            .all(|((n, v), (m, w))| n == m && v == w);
    if same { Ok(out) } else { Err(String::new()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> String {
        let p = parse(text).unwrap();
        assert_eq!(p.len(), 1, "{text:?} -> {p:?}");
        p[0].1.clone()
    }

    #[test]
    fn the_dialect() {
        assert_eq!(one("A=b"), "b");
        assert_eq!(one("export A=b"), "b");
        assert_eq!(one("  A = b  "), "b");
        assert_eq!(one("A=b # comment"), "b");
        assert_eq!(one("A=b#not"), "b#not");
        assert_eq!(one("A="), "");
        assert_eq!(one("A=a=b=c"), "a=b=c");
        assert_eq!(one("A='x # y'"), "x # y");
        assert_eq!(one("A=\"x\\ny\""), "x\ny");
        assert_eq!(one("A='x\\ny'"), "x\\ny");
        assert_eq!(one("A=\"line1\nline2\""), "line1\nline2");
        assert_eq!(one("A=\"say \\\"hi\\\"\""), "say \"hi\"");
        assert_eq!(one("A='it\\'s'"), "it's");
        assert_eq!(one("'A'=b"), "b");
        assert_eq!(one("\u{feff}A=b"), "b");
        assert_eq!(parse("# only\n\n  # comments\n").unwrap(), []);
        assert!(parse("A=\"open").is_err());
        assert_eq!(parse("A=\"x\" junk").unwrap_err().line, 1);
        assert_eq!(parse("A=1\nB\n").unwrap_err().line, 2);
    }

    #[test]
    fn written_values_read_back() {
        let hard = [
            ("A", "plain"),
            ("B", "with \"quotes\" and 'apostrophes'"),
            ("C", "multi\nline\r\nvalue"),
            ("D", "ends with a backslash \\"),
            ("E", " leading and trailing "),
            ("F", "a # not a comment"),
            ("G", ""),
            ("H", "tab\tand \\n literally"),
        ];
        let text = write(hard.iter().copied()).unwrap();
        let back = parse(&text).unwrap();
        let back: Vec<(&str, &str)> = back.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        assert_eq!(back, hard);
    }
}
