//! Everything the CLI writes to stdout: plain lines, `key  value` blocks, tables that fit
//! the terminal (its width, or `COLUMNS`, or 100 when stdout is not one), relative
//! times, JSON.

use std::borrow::Cow;
use std::io::{self, Write as _};

use serde::Serialize;
use unicode_width::{UnicodeWidthChar as _, UnicodeWidthStr as _};

/// Tables are cut to this width unless `COLUMNS` says otherwise.
const DEFAULT_WIDTH: usize = 100;
/// A flexible column is never cut below this.
const MIN_FLEX: usize = 8;

/// Writes `text` and a newline to stdout; a closed pipe is reported as an error, not a
/// panic (the caller treats `BrokenPipe` as a quiet exit).
pub fn line(text: impl std::fmt::Display) -> io::Result<()> {
    writeln!(io::stdout().lock(), "{text}")
}

/// A line that is the only copy of what it holds (a new token, a value): if stdout is
/// closed, the command fails loudly instead of ending quietly as a listing does.
pub fn precious(text: impl std::fmt::Display, what: &str) -> anyhow::Result<()> {
    loud(text, || {
        format!("could not write {what} to stdout, and it was the only copy")
    })
}

/// Secret values (a reveal, an export): like [`precious`], a closed stdout is a loud
/// failure, never a quiet success that delivered nothing.
pub fn values(text: impl std::fmt::Display, what: &str) -> anyhow::Result<()> {
    loud(text, || {
        format!("could not write {what} to stdout: nothing was delivered")
    })
}

/// [`values`] as pretty JSON.
pub fn values_json(value: &impl Serialize, what: &str) -> anyhow::Result<()> {
    values(serde_json::to_string_pretty(value)?, what)
}

fn loud(text: impl std::fmt::Display, why: impl FnOnce() -> String) -> anyhow::Result<()> {
    line(text).map_err(|e| anyhow::Error::new(LostOutput(e.kind())).context(why()))
}

/// Writing a token or value failed (not a broken pipe to be ignored).
#[derive(Debug, thiserror::Error)]
#[error("stdout: {0}")]
pub struct LostOutput(io::ErrorKind);

/// Pretty JSON of `value` on stdout.
pub fn json(value: &impl Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    Ok(line(text)?)
}

/// Aligned `key  value` lines.
pub fn fields(rows: &[(&str, Cow<'_, str>)]) -> io::Result<()> {
    line(render_fields(rows).trim_end())
}

fn render_fields(rows: &[(&str, Cow<'_, str>)]) -> String {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (key, value) in rows {
        out.push_str(&format!("{key:width$}  {}\n", clean(value)));
    }
    out
}

/// The width tables are cut to: `COLUMNS` if it is a number, else the terminal's
/// width when stdout is one, else 100.
pub fn width() -> usize {
    let columns = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|w| *w >= 20);
    columns.or_else(terminal_width).unwrap_or(DEFAULT_WIDTH)
}

/// The width of the terminal stdout is, if it is one.
fn terminal_width() -> Option<usize> {
    let stdout = io::stdout();
    let size = rustix::termios::tcgetwinsize(&stdout).ok()?;
    Some(usize::from(size.ws_col)).filter(|w| *w >= 20)
}

/// Whether a column may be cut (with "…") to make the table fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// Never cut (ids, times, statuses).
    Keep,
    /// Cut when the table is too wide (names, details).
    Cut,
}

/// A borderless table: a header and rows, cells cleaned, never wrapped.
#[derive(Debug)]
pub struct Table {
    columns: Vec<(&'static str, Fit)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these columns.
    pub fn new(columns: &[(&'static str, Fit)]) -> Self {
        Table {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (missing cells are blank).
    pub fn row<S: AsRef<str>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(
            cells
                .into_iter()
                .map(|c| clean(c.as_ref()).into_owned())
                .collect(),
        );
    }

    /// The table as text, at most `width` columns wide where cuttable columns allow.
    pub fn render(&self, width: usize) -> String {
        let n = self.columns.len();
        let cell = |r: &Vec<String>, i: usize| r.get(i).map_or("", String::as_str).to_owned();
        let mut widths: Vec<usize> = (0..n)
            .map(|i| {
                self.rows
                    .iter()
                    .map(|r| cell(r, i).width())
                    .chain([self.columns[i].0.width()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let total = |w: &[usize]| w.iter().sum::<usize>() + 2 * n.saturating_sub(1);
        // Cut the widest cuttable column by one, until it fits or nothing can be cut.
        while total(&widths) > width {
            let widest = (0..n)
                .filter(|&i| self.columns[i].1 == Fit::Cut && widths[i] > MIN_FLEX)
                .max_by_key(|&i| widths[i]);
            match widest {
                Some(i) => widths[i] -= 1,
                None => break,
            }
        }
        let mut out = String::new();
        let headers: Vec<String> = self.columns.iter().map(|(h, _)| (*h).to_owned()).collect();
        for row in std::iter::once(&headers).chain(&self.rows) {
            let mut line = String::new();
            for (i, w) in widths.iter().enumerate() {
                let text = cut(cell_str(row, i), *w);
                line.push_str(&text);
                if i + 1 < n {
                    line.push_str(&" ".repeat(w - text.width() + 2));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    /// Prints the table at the terminal's width.
    pub fn print(&self) -> io::Result<()> {
        line(self.render(width()).trim_end_matches('\n'))
    }
}

fn cell_str(row: &[String], i: usize) -> &str {
    row.get(i).map_or("", String::as_str)
}

/// `text` in at most `width` columns, ending in "…" when cut.
pub fn cut(text: &str, width: usize) -> Cow<'_, str> {
    if text.width() <= width {
        return Cow::Borrowed(text);
    }
    let mut out = String::new();
    let mut used = 0;
    for ch in text.chars() {
        let w = ch.width().unwrap_or(0);
        if used + w + 1 > width {
            break;
        }
        out.push(ch);
        used += w;
    }
    out.push('…');
    Cow::Owned(out)
}

/// Text from the server or a token, made safe for a terminal: control characters and
/// bidirectional or invisible formatting characters escaped.
pub fn clean(text: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() || crate::caveats::is_invisible(c);
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| {
                if unsafe_char(c) {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// `-` for a missing value.
pub fn or_dash(value: Option<&str>) -> Cow<'_, str> {
    value.map_or(Cow::Borrowed("-"), clean)
}

pub use crate::model::spans::{relative, span1, span2};

/// [`relative`] of an RFC 3339 time from the server (as it came, if it is not one).
pub fn relative_text(t: &str, now: u64) -> String {
    crate::caveats::parse_time(t).map_or_else(|_| t.to_owned(), |t| relative(t, now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_escapes_terminal_controls_and_invisibles() {
        assert_eq!(clean("plain"), "plain");
        assert!(matches!(clean("plain"), Cow::Borrowed(_)));
        assert_eq!(clean("a\x1b[2Jb\n"), "a\\u{1b}[2Jb\\u{a}");
        assert_eq!(clean("evil\u{202e}txt"), "evil\\u{202e}txt");
        assert_eq!(or_dash(None), "-");
    }

    #[test]
    fn spans_and_relative_times() {
        assert_eq!(span1(29 * 86_400 + 5), "29d");
        assert_eq!(span1(90 * 86_400 - 3), "90d", "a fresh 90-day token");
        assert_eq!(span1(89 * 86_400 + 11 * 3600), "89d");
        assert_eq!(span1(59 * 60 + 40), "1h");
        assert_eq!(span1(23 * 3600 + 31 * 60), "1d");
        assert_eq!(span1(90), "2m");
        assert_eq!(span1(0), "0s");
        assert_eq!(span2(6 * 86_400 + 23 * 3600 + 59), "6d 23h");
        assert_eq!(span2(3600), "1h");
        assert_eq!(span2(42), "42s");
        assert_eq!(relative(100, 83), "in 17s");
        assert_eq!(relative(83, 100), "17s ago");
        assert_eq!(relative(5, 5), "now");
    }

    #[test]
    fn tables_fit_by_cutting_what_may_be_cut() {
        let mut t = Table::new(&[("ID", Fit::Keep), ("NAME", Fit::Cut), ("WHEN", Fit::Keep)]);
        t.row(["0123456789ab", &"long-name-".repeat(10), "in 29d"]);
        t.row(["ba9876543210", "short", "3s ago"]);
        let text = t.render(40);
        assert!(text.lines().all(|l| l.width() <= 40), "{text}");
        assert!(text.contains('…') && text.contains("0123456789ab") && text.contains("in 29d"));
        // Wide enough: nothing is cut.
        assert!(!t.render(200).contains('…'));
    }
}
