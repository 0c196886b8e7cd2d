//! RFC 3339 UTC timestamps (`YYYY-MM-DDTHH:MM:SSZ`) <-> unix seconds, strictly.

use std::fmt;

use crate::ParseError;

/// The last second with a four-digit year: 9999-12-31T23:59:59Z.
pub const MAX_TIME: u64 = 253_402_300_799;

const DAY: u64 = 86_400;

/// Displays unix seconds as `YYYY-MM-DDTHH:MM:SSZ` without allocating.
#[derive(Debug, Clone, Copy)]
pub struct Timestamp(pub u64);

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (days, secs) = (self.0 / DAY, self.0 % DAY);
        let (y, m, d) = civil_from_days(days);
        let (hh, mm, ss) = (secs / 3600, secs / 60 % 60, secs % 60);
        if y > 9999 {
            return f.pad(&format!("{y}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z"));
        }
        // Every verify answer writes two of these: digits by hand, not through `fmt`.
        let mut out = *b"0000-00-00T00:00:00Z";
        for (at, width, mut v) in [
            (0, 4, y),
            (5, 2, m),
            (8, 2, d),
            (11, 2, hh),
            (14, 2, mm),
            (17, 2, ss),
        ] {
            for i in (at..at + width).rev() {
                out[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        }
        f.pad(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

/// Formats unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (years past 9999 get more digits).
pub fn format_time(unix: u64) -> String {
    Timestamp(unix).to_string()
}

/// A span of seconds in the largest unit that divides it: `90d`, `36h`, `5m`, `61s`
/// (what `--expiry` and `--max-expiry` accept back).
pub fn format_span(secs: u64) -> String {
    match secs {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Parses exactly `YYYY-MM-DDTHH:MM:SSZ` (UTC, years 1970..=9999, real calendar dates).
pub fn parse_time(text: &str) -> Result<u64, ParseError> {
    let b = text.as_bytes();
    let shape_ok = b.len() == 20
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'Z',
            _ => c.is_ascii_digit(),
        });
    if !shape_ok {
        return Err(ParseError::near(
            "expected a time like 2026-12-01T00:00:00Z",
            b,
        ));
    }
    let num = |at: usize, len: usize| {
        b[at..at + len]
            .iter()
            .fold(0u64, |n, &c| n * 10 + u64::from(c - b'0'))
    };
    let (y, m, d) = (num(0, 4), num(5, 2), num(8, 2));
    let (hh, mm, ss) = (num(11, 2), num(14, 2), num(17, 2));
    if y < 1970 || !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return Err(ParseError::near("not a date between 1970 and 9999", b));
    }
    if hh > 23 || mm > 59 || ss > 59 {
        return Err(ParseError::near("not a time of day", b));
    }
    Ok(days_from_civil(y, m, d) * DAY + hh * 3600 + mm * 60 + ss)
}

fn days_in_month(y: u64, m: u64) -> u64 {
    match m {
        2 if y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400)) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's days_from_civil / civil_from_days, restricted to dates from 1970
// (so everything stays unsigned); eras are 400-year cycles starting on March 1st.
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let (era, yoe) = (y / 400, y % 400);
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let (era, doe) = (z / 146_097, z % 146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        for (text, unix) in [
            ("1970-01-01T00:00:00Z", 0),
            ("2000-02-29T12:34:56Z", 951_827_696),
            ("2026-11-01T00:00:00Z", 1_793_491_200),
            ("9999-12-31T23:59:59Z", MAX_TIME),
        ] {
            assert_eq!(parse_time(text), Ok(unix), "{text}");
            assert_eq!(format_time(unix), text);
        }
        // Past year 9999 (never parsed, but Display must neither lie nor panic).
        assert_eq!(format_time(MAX_TIME + 1), "10000-01-01T00:00:00Z");
        assert!(format_time(u64::MAX).ends_with('Z'));
        // Width and alignment apply as to any string.
        assert_eq!(format!("{:>22}", Timestamp(0)), "  1970-01-01T00:00:00Z");
    }

    #[test]
    fn spans() {
        for (secs, text) in [
            (7_776_000, "90d"),
            (129_600, "36h"),
            (300, "5m"),
            (61, "61s"),
            (0, "0d"),
        ] {
            assert_eq!(format_span(secs), text);
        }
    }

    #[test]
    fn rejects_non_canonical() {
        for bad in [
            "2026-02-30T00:00:00Z",
            "2100-02-29T00:00:00Z",
            "1969-12-31T23:59:59Z",
            "2026-11-01T00:00:00+00:00",
            "2026-11-01T00:00:00z",
            "2026-11-01 00:00:00Z",
            "2026-11-01T24:00:00Z",
            "2026-11-01T00:00:60Z",
            "2026-13-01T00:00:00Z",
            "2026-00-01T00:00:00Z",
            "2026-11-00T00:00:00Z",
            "2026-11-01T00:00:00.0Z",
            "+026-11-01T00:00:00Z",
            "",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_day_round_trips() {
        for day in (0..=MAX_TIME / DAY).step_by(7) {
            let t = day * DAY + 86_399;
            assert_eq!(parse_time(&format_time(t)), Ok(t));
        }
    }
}
