//! Spans and relative times for people (`90d`, `6d 23h`, `in 29d`, `17s ago`): what
//! the command line and the dashboard show.

/// A span in its largest unit, rounded to the nearest: `90d` for 89 days 23 hours,
/// `1h` for 59m 40s, `42s`.
pub fn span1(secs: u64) -> String {
    const UNITS: [(u64, &str); 4] = [(86_400, "d"), (3600, "h"), (60, "m"), (1, "s")];
    let Some(at) = UNITS.iter().position(|(u, _)| secs >= *u) else {
        return "0s".into();
    };
    let (u, name) = UNITS[at];
    let n = secs.saturating_add(u / 2) / u;
    // Rounding up may reach the next unit: 59m 40s is 1h, not 60m.
    if at > 0 {
        let (bigger, bigger_name) = UNITS[at - 1];
        if n * u >= bigger && (n * u).is_multiple_of(bigger) {
            return format!("{}{bigger_name}", n * u / bigger);
        }
    }
    format!("{n}{name}")
}

/// A span in its two largest units: `6d 23h`, `3h 5m`, `42s`.
pub fn span2(secs: u64) -> String {
    let units = [(86_400, "d"), (3600, "h"), (60, "m"), (1, "s")];
    let Some(first) = units.iter().position(|(u, _)| secs >= *u) else {
        return "0s".into();
    };
    let (u1, n1) = units[first];
    let head = format!("{}{n1}", secs / u1);
    match units.get(first + 1) {
        Some((u2, n2)) if (secs % u1) / u2 > 0 => format!("{head} {}{n2}", (secs % u1) / u2),
        _ => head,
    }
}

/// `in 29d`, `17s ago`, `now`, for a time relative to `now`.
pub fn relative(t: u64, now: u64) -> String {
    match t.cmp(&now) {
        std::cmp::Ordering::Greater => format!("in {}", span1(t - now)),
        std::cmp::Ordering::Less => format!("{} ago", span1(now - t)),
        std::cmp::Ordering::Equal => "now".into(),
    }
}
