//! Everything the CLI writes to stdout: plain lines, `key  value` blocks, tables, JSON.

use std::borrow::Cow;
use std::io::{self, Write as _};

use comfy_table::{ContentArrangement, Table, presets};
use serde::Serialize;

/// Writes `text` and a newline to stdout; a closed pipe is reported as an error, not a
/// panic (the caller treats `BrokenPipe` as a quiet exit).
pub fn line(text: impl std::fmt::Display) -> io::Result<()> {
    writeln!(io::stdout().lock(), "{text}")
}

/// Pretty JSON of `value` on stdout.
pub fn json(value: &impl Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    Ok(line(text)?)
}

/// Aligned `key  value` lines.
pub fn fields(rows: &[(&str, Cow<'_, str>)]) -> io::Result<()> {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = io::stdout().lock();
    for (key, value) in rows {
        writeln!(out, "{key:width$}  {value}")?;
    }
    Ok(())
}

/// A borderless table with `header`, one row per item.
pub fn table<const N: usize>(header: [&str; N], rows: Vec<[Cow<'_, str>; N]>) -> io::Result<()> {
    let mut table = Table::new();
    table
        .load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header);
    for row in rows {
        table.add_row(row.map(|cell| clean(&cell).into_owned()));
    }
    line(table.trim_fmt())
}

/// Text from the server or a token, made safe for a terminal: control characters escaped.
pub fn clean(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_escapes_terminal_controls() {
        assert_eq!(clean("plain"), "plain");
        assert!(matches!(clean("plain"), Cow::Borrowed(_)));
        assert_eq!(clean("a\x1b[2Jb\n"), "a\\u{1b}[2Jb\\n");
        assert_eq!(or_dash(None), "-");
    }
}
