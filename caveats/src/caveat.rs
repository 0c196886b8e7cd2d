//! The caveats, their canonical text form, and how each one checks an access.

use std::{borrow::Cow, collections::BTreeMap, fmt, net::IpAddr};

use crate::{
    Access, ActionSet, IpNet, ParseError, Reason, ResourceSet, SecretTarget,
    error::Excerpt,
    time::{MAX_TIME, Timestamp},
};

/// Longest predicate text accepted.
pub const MAX_TEXT: usize = 4096;
/// Most items in one caveat's list.
pub const MAX_ITEMS: usize = 64;
/// Most networks in one `ip` caveat.
pub const MAX_NETWORKS: usize = 32;

/// One first-party caveat: a restriction on which accesses a token allows.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Caveat<'a> {
    /// `org = acme`: only accesses inside this org.
    Org(Name<'a>),
    /// `app = api:r,web:rw`: only these apps, each with at most these actions.
    Apps(AppActions<'a>),
    /// `actions = rw`: at most these actions.
    Actions(ActionSet),
    /// `expires < T`, `not-before >= T` or `valid T1 .. T2`: time bounds.
    Validity(ValidityWindow),
    /// `secret = API_KEY,DB_*`: only secrets matching one of these patterns.
    Secrets(SecretPatterns<'a>),
    /// `resource = secrets,tokens`: only these resource kinds.
    Resources(ResourceSet),
    /// `ip = 10.0.0.0/8`: only requests from these networks.
    SourceIp(Networks<'a>),
}

/// A validated org or app name: `[a-z0-9][a-z0-9-]{0,62}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name<'a>(Cow<'a, str>);

/// The canonical list `name:letters,…` of an `app` caveat (sorted, unique, 1..=64 items).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AppActions<'a>(Cow<'a, str>);

/// The canonical list of a `secret` caveat's patterns (sorted by bytes, unique, 1..=64).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecretPatterns<'a>(Cow<'a, str>);

/// The canonical list of an `ip` caveat's networks (sorted, unique, 1..=32).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Networks<'a>(Cow<'a, str>);

/// Time bounds `not_before <= now < not_after`, at least one present, both within 1970..=9999.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ValidityWindow {
    not_before: Option<u64>,
    not_after: Option<u64>,
}

/// Whether `s` is a valid org or app name.
pub fn is_valid_name(s: &str) -> bool {
    let b = s.as_bytes();
    let lower_alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    (1..=63).contains(&b.len())
        && b.first().is_some_and(lower_alnum)
        && b.iter().all(|c| lower_alnum(c) || *c == b'-')
}

/// Whether `s` is a valid secret name: `[A-Za-z0-9_.-]{1,128}`.
pub fn is_valid_secret_name(s: &str) -> bool {
    (1..=128).contains(&s.len()) && s.bytes().all(is_secret_byte)
}

fn is_secret_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

fn is_valid_pattern(s: &str) -> bool {
    match s.strip_suffix('*') {
        Some(prefix) => prefix.len() <= 128 && prefix.bytes().all(is_secret_byte),
        None => is_valid_secret_name(s),
    }
}

/// Whether secret `name` matches `pattern` (exact, or `PREFIX*`).
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// Splits a non-empty comma list, rejecting more than `max` items.
fn items(list: &str, max: usize) -> Result<impl Iterator<Item = &str>, ParseError> {
    if list.split(',').nth(max).is_some() {
        return Err(ParseError::new("too many items in list"));
    }
    Ok(list.split(','))
}

impl<'a> Name<'a> {
    /// Validates `s` as an org or app name, borrowing it.
    pub fn parse(s: &'a str) -> Result<Self, ParseError> {
        if is_valid_name(s) {
            Ok(Self(Cow::Borrowed(s)))
        } else {
            Err(ParseError::near(
                "invalid name (want [a-z0-9][a-z0-9-]{0,62})",
                s,
            ))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn into_owned(self) -> Name<'static> {
        Name(Cow::Owned(self.0.into_owned()))
    }
}

impl<'a> AppActions<'a> {
    /// Validates `list` as the canonical text `name:letters,…`, borrowing it.
    pub fn parse(list: &'a str) -> Result<Self, ParseError> {
        let mut prev: Option<&str> = None;
        for item in items(list, MAX_ITEMS)? {
            let (name, letters) = item
                .split_once(':')
                .ok_or_else(|| ParseError::near("expected app:actions", item))?;
            Name::parse(name)?;
            letters.parse::<ActionSet>()?;
            if prev.is_some_and(|p| p >= name) {
                return Err(ParseError::near(
                    "apps not sorted by name or repeated",
                    name,
                ));
            }
            prev = Some(name);
        }
        Ok(Self(Cow::Borrowed(list)))
    }

    /// The apps and their action sets, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, ActionSet)> {
        self.0.split(',').map(|item| {
            let (name, letters) = item.split_once(':').unwrap_or((item, ""));
            // Validated on construction; an impossible failure grants nothing.
            (name, letters.parse().unwrap_or(ActionSet::NONE))
        })
    }

    /// The actions allowed on `app`, if it is listed.
    pub fn get(&self, app: &str) -> Option<ActionSet> {
        self.iter()
            .find(|&(name, _)| name == app)
            .map(|(_, set)| set)
    }

    /// The canonical list text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'a> SecretPatterns<'a> {
    /// Validates `list` as the canonical pattern list, borrowing it.
    pub fn parse(list: &'a str) -> Result<Self, ParseError> {
        let mut prev: Option<&str> = None;
        for pattern in items(list, MAX_ITEMS)? {
            if !is_valid_pattern(pattern) {
                return Err(ParseError::near("invalid secret pattern", pattern));
            }
            if prev.is_some_and(|p| p >= pattern) {
                return Err(ParseError::near(
                    "secret patterns not sorted or repeated",
                    pattern,
                ));
            }
            prev = Some(pattern);
        }
        Ok(Self(Cow::Borrowed(list)))
    }

    /// The patterns, sorted by bytes.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.split(',')
    }

    /// Whether some pattern matches secret `name`.
    pub fn matches(&self, name: &str) -> bool {
        self.iter().any(|p| pattern_matches(p, name))
    }

    /// The canonical list text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'a> Networks<'a> {
    /// Validates `list` as the canonical network list, borrowing it.
    pub fn parse(list: &'a str) -> Result<Self, ParseError> {
        let mut prev: Option<IpNet> = None;
        for item in items(list, MAX_NETWORKS)? {
            let net: IpNet = item.parse()?;
            if prev.is_some_and(|p| p >= net) {
                return Err(ParseError::near("networks not sorted or repeated", item));
            }
            prev = Some(net);
        }
        Ok(Self(Cow::Borrowed(list)))
    }

    /// The networks, in canonical order.
    pub fn iter(&self) -> impl Iterator<Item = IpNet> {
        // Validated on construction; an impossible failure matches nothing.
        self.0.split(',').filter_map(|item| item.parse().ok())
    }

    /// Whether `ip` is in one of the networks; an IPv4-mapped IPv6 address counts as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.iter().any(|net| net.contains(ip))
    }

    /// The canonical list text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl ValidityWindow {
    /// A window; at least one bound, both at most 9999-12-31T23:59:59Z, and `not_before < not_after`.
    pub fn new(not_before: Option<u64>, not_after: Option<u64>) -> Result<Self, ParseError> {
        match (not_before, not_after) {
            (None, None) => Err(ParseError::new("validity window without bounds")),
            _ if not_before.max(not_after).is_some_and(|t| t > MAX_TIME) => {
                Err(ParseError::new("time after 9999-12-31T23:59:59Z"))
            }
            (Some(nb), Some(na)) if nb >= na => {
                Err(ParseError::new("validity window ends before it starts"))
            }
            _ => Ok(Self {
                not_before,
                not_after,
            }),
        }
    }

    /// The first second the window allows.
    pub fn not_before(&self) -> Option<u64> {
        self.not_before
    }

    /// The first second the window no longer allows.
    pub fn not_after(&self) -> Option<u64> {
        self.not_after
    }

    /// Whether `now` is inside the window.
    pub fn contains(&self, now: u64) -> bool {
        self.not_before.is_none_or(|nb| nb <= now) && self.not_after.is_none_or(|na| now < na)
    }
}

impl<'a> Caveat<'a> {
    /// Parses a caveat's canonical text, borrowing from it; any other form is an error.
    pub fn parse(text: &'a str) -> Result<Self, ParseError> {
        if text.len() > MAX_TEXT {
            return Err(ParseError::new("caveat longer than 4096 bytes"));
        }
        let time = crate::parse_time;
        if let Some(rest) = text.strip_prefix("org = ") {
            Ok(Self::Org(Name::parse(rest)?))
        } else if let Some(rest) = text.strip_prefix("app = ") {
            Ok(Self::Apps(AppActions::parse(rest)?))
        } else if let Some(rest) = text.strip_prefix("actions = ") {
            Ok(Self::Actions(rest.parse()?))
        } else if let Some(rest) = text.strip_prefix("expires < ") {
            Ok(Self::Validity(ValidityWindow::new(
                None,
                Some(time(rest)?),
            )?))
        } else if let Some(rest) = text.strip_prefix("not-before >= ") {
            Ok(Self::Validity(ValidityWindow::new(
                Some(time(rest)?),
                None,
            )?))
        } else if let Some(rest) = text.strip_prefix("valid ") {
            let (from, to) = rest
                .split_once(" .. ")
                .ok_or_else(|| ParseError::near("expected valid T1 .. T2", text))?;
            Ok(Self::Validity(ValidityWindow::new(
                Some(time(from)?),
                Some(time(to)?),
            )?))
        } else if let Some(rest) = text.strip_prefix("secret = ") {
            Ok(Self::Secrets(SecretPatterns::parse(rest)?))
        } else if let Some(rest) = text.strip_prefix("resource = ") {
            Ok(Self::Resources(rest.parse()?))
        } else if let Some(rest) = text.strip_prefix("ip = ") {
            Ok(Self::SourceIp(Networks::parse(rest)?))
        } else {
            Err(ParseError::near("unknown caveat", text))
        }
    }

    /// Parses a predicate's bytes: UTF-8, then [`Caveat::parse`].
    pub fn parse_bytes(bytes: &'a [u8]) -> Result<Self, ParseError> {
        if bytes.len() > MAX_TEXT {
            return Err(ParseError::new("caveat longer than 4096 bytes"));
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|_| ParseError::near("caveat is not UTF-8", bytes))?;
        Self::parse(text)
    }

    /// The same caveat, owning its text.
    pub fn into_owned(self) -> Caveat<'static> {
        let own = |cow: Cow<'a, str>| Cow::Owned(cow.into_owned());
        match self {
            Self::Org(name) => Caveat::Org(name.into_owned()),
            Self::Apps(apps) => Caveat::Apps(AppActions(own(apps.0))),
            Self::Actions(set) => Caveat::Actions(set),
            Self::Validity(window) => Caveat::Validity(window),
            Self::Secrets(patterns) => Caveat::Secrets(SecretPatterns(own(patterns.0))),
            Self::Resources(set) => Caveat::Resources(set),
            Self::SourceIp(nets) => Caveat::SourceIp(Networks(own(nets.0))),
        }
    }

    /// The caveat's expiry, if it sets one.
    pub fn not_after(&self) -> Option<u64> {
        match self {
            Self::Validity(window) => window.not_after,
            _ => None,
        }
    }

    /// Allows `access`, or says why not.
    pub fn check(&self, access: &Access<'_>) -> Result<(), Reason> {
        let deny = |reason: String| Err(Reason(reason));
        match self {
            Self::Org(org) if org.as_str() != access.org => deny(format!(
                "does not allow org \"{}\"",
                Excerpt(access.org.as_bytes())
            )),
            Self::Apps(apps) => {
                let Some(app) = access.app else {
                    return deny("does not allow org-level requests".into());
                };
                match apps.get(app) {
                    Some(set) if set.contains(access.action) => Ok(()),
                    Some(_) => deny(format!(
                        "does not allow {} on app \"{}\"",
                        access.action,
                        Excerpt(app.as_bytes())
                    )),
                    None => deny(format!(
                        "does not allow app \"{}\"",
                        Excerpt(app.as_bytes())
                    )),
                }
            }
            Self::Actions(set) if !set.contains(access.action) => {
                deny(format!("does not allow {}", access.action))
            }
            Self::Validity(window) => match (window.not_before, window.not_after) {
                (Some(nb), _) if access.now < nb => {
                    deny(format!("is not valid before {}", Timestamp(nb)))
                }
                (_, Some(na)) if access.now >= na => deny(format!("expired at {}", Timestamp(na))),
                _ => Ok(()),
            },
            Self::Secrets(patterns) => match access.secret {
                SecretTarget::One(name) if patterns.matches(name) => Ok(()),
                SecretTarget::One(name) => deny(format!(
                    "does not allow secret \"{}\"",
                    Excerpt(name.as_bytes())
                )),
                // A listing is filtered name by name by the caller, against every caveat.
                SecretTarget::Listing => Ok(()),
                SecretTarget::None => deny("allows only requests about secrets".into()),
            },
            Self::Resources(set) if !set.contains(access.resource) => {
                deny(format!("does not allow {}", access.resource))
            }
            Self::SourceIp(nets) => match access.source_ip {
                None => deny("does not allow requests from an unknown address".into()),
                Some(ip) if !nets.contains(ip) => {
                    deny(format!("does not allow requests from {ip}"))
                }
                Some(_) => Ok(()),
            },
            Self::Org(_) | Self::Actions(_) | Self::Resources(_) => Ok(()),
        }
    }

    /// `org = name`.
    pub fn org(name: &str) -> Result<Caveat<'static>, ParseError> {
        Ok(Caveat::Org(Name::parse(name)?.into_owned()))
    }

    /// `app = …` from any (name, actions) pairs: sorted by name, repeated names merged.
    pub fn apps<I, S>(apps: I) -> Result<Caveat<'static>, ParseError>
    where
        I: IntoIterator<Item = (S, ActionSet)>,
        S: AsRef<str>,
    {
        let mut merged = BTreeMap::<String, ActionSet>::new();
        for (name, set) in apps {
            let entry = merged.entry(name.as_ref().to_owned()).or_default();
            *entry = entry.union(set);
        }
        let list: Vec<String> = merged
            .iter()
            .map(|(name, set)| format!("{name}:{set}"))
            .collect();
        from_canonical(format!("app = {}", list.join(",")))
    }

    /// `actions = …`; an empty set has no text form and is rejected.
    pub fn actions(set: ActionSet) -> Result<Caveat<'static>, ParseError> {
        if set.is_empty() {
            return Err(ParseError::new("empty action set"));
        }
        Ok(Caveat::Actions(set))
    }

    /// `expires < T`; a time past 9999 is clamped to the last representable second,
    /// which only narrows.
    pub fn expires(not_after: u64) -> Caveat<'static> {
        Caveat::Validity(ValidityWindow {
            not_before: None,
            not_after: Some(not_after.min(MAX_TIME)),
        })
    }

    /// `not-before >= T`, `expires < T` or `valid T1 .. T2`.
    pub fn validity(
        not_before: Option<u64>,
        not_after: Option<u64>,
    ) -> Result<Caveat<'static>, ParseError> {
        Ok(Caveat::Validity(ValidityWindow::new(
            not_before, not_after,
        )?))
    }

    /// `secret = …` from any patterns: sorted by bytes, repeats dropped.
    pub fn secrets<I, S>(patterns: I) -> Result<Caveat<'static>, ParseError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut patterns: Vec<String> = patterns
            .into_iter()
            .map(|p| p.as_ref().to_owned())
            .collect();
        patterns.sort_unstable();
        patterns.dedup();
        from_canonical(format!("secret = {}", patterns.join(",")))
    }

    /// `resource = …`; the set must not be empty.
    pub fn resources(set: ResourceSet) -> Result<Caveat<'static>, ParseError> {
        if set.is_empty() {
            return Err(ParseError::new("empty resource set"));
        }
        Ok(Caveat::Resources(set))
    }

    /// `ip = …` from any networks: sorted, repeats dropped.
    pub fn source_ip(nets: impl IntoIterator<Item = IpNet>) -> Result<Caveat<'static>, ParseError> {
        let mut nets: Vec<IpNet> = nets.into_iter().collect();
        nets.sort_unstable();
        nets.dedup();
        let list: Vec<String> = nets.iter().map(IpNet::to_string).collect();
        from_canonical(format!("ip = {}", list.join(",")))
    }
}

/// Constructors build the canonical text and run the parser on it, so a constructed caveat
/// is valid exactly when its text would be accepted.
fn from_canonical(text: String) -> Result<Caveat<'static>, ParseError> {
    Ok(Caveat::parse(&text)?.into_owned())
}

impl fmt::Display for Caveat<'_> {
    /// The canonical text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Org(name) => write!(f, "org = {}", name.as_str()),
            Self::Apps(apps) => write!(f, "app = {}", apps.as_str()),
            Self::Actions(set) => write!(f, "actions = {set}"),
            Self::Validity(w) => match (w.not_before, w.not_after) {
                (None, Some(na)) => write!(f, "expires < {}", Timestamp(na)),
                (Some(nb), None) => write!(f, "not-before >= {}", Timestamp(nb)),
                (Some(nb), Some(na)) => write!(f, "valid {} .. {}", Timestamp(nb), Timestamp(na)),
                // Unreachable: a window always has a bound; never claim one it lacks.
                (None, None) => f.write_str("valid"),
            },
            Self::Secrets(patterns) => write!(f, "secret = {}", patterns.as_str()),
            Self::Resources(set) => write!(f, "resource = {set}"),
            Self::SourceIp(nets) => write!(f, "ip = {}", nets.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Action, Resource};

    const CANONICAL: &[&str] = &[
        "org = acme",
        "org = a",
        "app = api:r,web:rw",
        "app = web:rwcdxv",
        "actions = r",
        "actions = rwcdxv",
        "expires < 2026-12-01T00:00:00Z",
        "not-before >= 2026-11-01T00:00:00Z",
        "valid 2026-11-01T00:00:00Z .. 2026-12-01T00:00:00Z",
        "secret = API_KEY,DB_*",
        "secret = *",
        "resource = secrets,tokens",
        "resource = apps,audit,keys,orgs,secrets,tokens",
        "ip = 10.0.0.0/8,2001:db8::/32",
        "ip = 10.0.0.0/8,10.0.0.0/16,::ffff:0.0.0.0/96",
        // The fuzz seed `caveat_decode/11_ip`: it must be canonical to seed the accept path.
        "ip = 10.0.0.0/8,::ffff:0.0.0.0/96,2001:db8::/32",
    ];

    #[test]
    fn canonical_text_round_trips_without_allocating() {
        for &text in CANONICAL {
            let caveat = Caveat::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(caveat.to_string(), text);
            assert_eq!(Caveat::parse_bytes(text.as_bytes()), Ok(caveat.clone()));
            // Borrowed text is the proof that parsing did not copy the list.
            let borrowed = match &caveat {
                Caveat::Org(Name(c))
                | Caveat::Apps(AppActions(c))
                | Caveat::Secrets(SecretPatterns(c))
                | Caveat::SourceIp(Networks(c)) => matches!(c, Cow::Borrowed(_)),
                Caveat::Actions(_) | Caveat::Validity(_) | Caveat::Resources(_) => true,
            };
            assert!(borrowed, "{text}");
            assert_eq!(caveat.clone().into_owned(), caveat);
        }
    }

    #[test]
    fn non_canonical_text_is_rejected() {
        let long_org = format!("org = {}", "a".repeat(64));
        let many_apps = format!(
            "app = {}",
            (0..65)
                .map(|i| format!("a{i:03}:r"))
                .collect::<Vec<_>>()
                .join(",")
        );
        // 64 valid, sorted patterns: only the 4096-byte cap rejects this.
        let over_long = format!(
            "secret = {}",
            (0..64)
                .map(|i| format!("A{i:03}{}", "B".repeat(124)))
                .collect::<Vec<_>>()
                .join(",")
        );
        let many_nets = format!(
            "ip = {}",
            (0..33)
                .map(|i| format!("10.0.{i}.0/24"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let bad: Vec<&str> = vec![
            "",
            "org =  acme",
            "org= acme",
            " org = acme",
            "org = acme ",
            "org = acme\n",
            "org = Acme",
            "org = -acme",
            "org = ac_me",
            "org = ",
            &long_org,
            "app = web:rw,api:r",
            "app = api:r,api:w",
            "app = api:wr",
            "app = api:",
            "app = api",
            "app = ",
            "app = api:r, web:r",
            "app = api:r,",
            &many_apps,
            "actions = ",
            "actions = wr",
            "actions = rr",
            "actions = R",
            "expires < 2026-12-01T00:00:00+00:00",
            "expires < 2026-02-30T00:00:00Z",
            "expires <  2026-12-01T00:00:00Z",
            "expires <= 2026-12-01T00:00:00Z",
            "not-before > 2026-11-01T00:00:00Z",
            "valid 2026-12-01T00:00:00Z .. 2026-12-01T00:00:00Z",
            "valid 2026-12-01T00:00:00Z .. 2026-11-01T00:00:00Z",
            "valid 2026-11-01T00:00:00Z..2026-12-01T00:00:00Z",
            "valid 2026-11-01T00:00:00Z .. 2026-12-01T00:00:00Z .. 2027-01-01T00:00:00Z",
            "secret = DB_*,API_KEY",
            "secret = A,A",
            "secret = ",
            "secret = a b",
            "secret = A**",
            "secret = *A",
            &over_long,
            "resource = tokens,secrets",
            "resource = secrets,secrets",
            "resource = ",
            "resource = secret",
            "ip = 10.0.0.1/8",
            "ip = 10.0.0.0",
            "ip = 2001:db8::/32,10.0.0.0/8",
            "ip = 10.0.0.0/16,10.0.0.0/8",
            "ip = 10.0.0.0/8,10.0.0.0/8",
            "ip = 2001:DB8::/32",
            "ip = ",
            &many_nets,
            "Org = acme",
            "apps = api:r",
        ];
        for text in bad {
            assert!(Caveat::parse(text).is_err(), "accepted {text:?}");
        }
        assert!(Caveat::parse_bytes(b"org = ac\xffme").is_err());
        assert!(Caveat::parse_bytes(b"org = acme\0").is_err());
    }

    #[test]
    fn parse_errors_say_what_is_wrong_briefly() {
        let e = Caveat::parse("app = web:wr").unwrap_err();
        assert_eq!(
            e.to_string(),
            "action letters not in the order rwcdxv: \"wr\""
        );
        let e = Caveat::parse(&format!("frob = {}", "x".repeat(1000))).unwrap_err();
        assert!(e.to_string().len() < 100, "{e}");
        let e = Caveat::parse_bytes(b"org = \xff\"").unwrap_err();
        assert_eq!(e.to_string(), "caveat is not UTF-8: \"org = \\xff\\\"\"");
    }

    fn access() -> Access<'static> {
        Access {
            org: "acme",
            app: Some("web"),
            resource: Resource::Secrets,
            action: Action::Write,
            secret: SecretTarget::One("DB_URL"),
            now: 1_793_491_200,
            source_ip: Some("10.1.2.3".parse().unwrap()),
        }
    }

    fn check(text: &str, access: Access<'_>) -> Result<(), String> {
        Caveat::parse(text)
            .unwrap()
            .check(&access)
            .map_err(|r| r.to_string())
    }

    #[test]
    fn org() {
        assert_eq!(check("org = acme", access()), Ok(()));
        let other = Access {
            org: "beta",
            ..access()
        };
        assert_eq!(
            check("org = acme", other),
            Err("does not allow org \"beta\"".into())
        );
    }

    #[test]
    fn apps() {
        assert_eq!(check("app = api:r,web:rw", access()), Ok(()));
        assert_eq!(
            check("app = api:r,web:r", access()),
            Err("does not allow write on app \"web\"".into())
        );
        assert_eq!(
            check("app = api:rw", access()),
            Err("does not allow app \"web\"".into())
        );
        let org_level = Access {
            app: None,
            ..access()
        };
        assert_eq!(
            check("app = api:rw,web:rwcdxv", org_level),
            Err("does not allow org-level requests".into())
        );
        // A prefix of a listed name is a different app.
        let we = Access {
            app: Some("we"),
            ..access()
        };
        assert!(check("app = web:rw", we).is_err());
    }

    #[test]
    fn actions_and_resources() {
        assert_eq!(check("actions = rw", access()), Ok(()));
        assert_eq!(
            check("actions = rv", access()),
            Err("does not allow write".into())
        );
        assert_eq!(check("resource = secrets", access()), Ok(()));
        assert_eq!(
            check("resource = apps,tokens", access()),
            Err("does not allow secrets".into())
        );
    }

    #[test]
    fn validity_edges() {
        let (nb, na) = (1_000, 2_000);
        let window = Caveat::validity(Some(nb), Some(na)).unwrap();
        let at = |now| {
            window
                .check(&Access { now, ..access() })
                .map_err(|r| r.to_string())
        };
        assert_eq!(at(nb), Ok(()));
        assert_eq!(at(na - 1), Ok(()));
        assert_eq!(at(na), Err("expired at 1970-01-01T00:33:20Z".into()));
        assert_eq!(
            at(nb - 1),
            Err("is not valid before 1970-01-01T00:16:40Z".into())
        );
        assert_eq!(window.not_after(), Some(na));
        assert_eq!(
            Caveat::expires(na).to_string(),
            "expires < 1970-01-01T00:33:20Z"
        );
        assert_eq!(Caveat::expires(u64::MAX).not_after(), Some(MAX_TIME));
        assert!(Caveat::validity(None, None).is_err());
        assert!(Caveat::validity(Some(5), Some(5)).is_err());
        assert!(Caveat::validity(Some(MAX_TIME + 1), None).is_err());
        assert_eq!(Caveat::org("acme").unwrap().not_after(), None);
        // The window itself (what the token core checks) agrees at every edge.
        let w = ValidityWindow::new(Some(nb), Some(na)).unwrap();
        let inside: Vec<bool> = [nb - 1, nb, na - 1, na].map(|t| w.contains(t)).into();
        assert_eq!(inside, [false, true, true, false]);
        let from = ValidityWindow::new(Some(nb), None).unwrap();
        assert_eq!(
            [nb - 1, nb, u64::MAX].map(|t| from.contains(t)),
            [false, true, true]
        );
        let until = ValidityWindow::new(None, Some(na)).unwrap();
        assert_eq!(
            [0, na - 1, na].map(|t| until.contains(t)),
            [true, true, false]
        );
    }

    #[test]
    fn caveat_texts_are_at_most_max_text_bytes() {
        // `secret = ` and 32 patterns with commas between: exactly MAX_TEXT bytes.
        let patterns: Vec<String> = (0..32)
            .map(|i| {
                let len = if i < 24 { 127 } else { 126 };
                format!("P{i:02}{}", "X".repeat(len - 3))
            })
            .collect();
        let text = format!("secret = {}", patterns.join(","));
        assert_eq!(text.len(), MAX_TEXT);
        assert!(Caveat::parse(&text).is_ok());
        assert!(Caveat::parse_bytes(text.as_bytes()).is_ok());
        let longer = format!("{text}X");
        let too_long = |r: Result<Caveat<'_>, ParseError>| {
            r.is_err_and(|e| e.to_string().contains("longer than 4096"))
        };
        assert!(too_long(Caveat::parse(&longer)));
        assert!(too_long(Caveat::parse_bytes(longer.as_bytes())));
        // Bytes are measured before they are read as UTF-8.
        assert!(too_long(Caveat::parse_bytes(&[0xff; MAX_TEXT + 1])));
    }

    #[test]
    fn secrets() {
        assert_eq!(check("secret = API_KEY,DB_*", access()), Ok(()));
        assert_eq!(check("secret = DB_URL", access()), Ok(()));
        assert_eq!(check("secret = *", access()), Ok(()));
        assert_eq!(
            check("secret = API_KEY,DB_URL_*", access()),
            Err("does not allow secret \"DB_URL\"".into())
        );
        assert_eq!(check("secret = DB_UR", access()).map_err(|_| ()), Err(()));
        let listing = Access {
            secret: SecretTarget::Listing,
            ..access()
        };
        assert_eq!(check("secret = API_KEY", listing), Ok(()));
        // Not about a secret (a token, a key, the audit log…): denied.
        let other = Access {
            secret: SecretTarget::None,
            resource: Resource::Tokens,
            ..access()
        };
        assert_eq!(
            check("secret = *", other),
            Err("allows only requests about secrets".into())
        );
    }

    #[test]
    fn source_ip() {
        let text = "ip = 10.0.0.0/8,2001:db8::/32";
        let from = |ip: &str| Access {
            source_ip: Some(ip.parse().unwrap()),
            ..access()
        };
        assert_eq!(check(text, access()), Ok(()));
        assert_eq!(check(text, from("::ffff:10.9.9.9")), Ok(()));
        assert_eq!(check(text, from("2001:db8:1::1")), Ok(()));
        assert_eq!(
            check(text, from("11.0.0.1")),
            Err("does not allow requests from 11.0.0.1".into())
        );
        assert!(check(text, from("::ffff:11.0.0.1")).is_err());
        assert!(check(text, from("2001:db9::1")).is_err());
        let unknown = Access {
            source_ip: None,
            ..access()
        };
        assert_eq!(
            check(text, unknown),
            Err("does not allow requests from an unknown address".into())
        );
    }

    #[test]
    fn constructors_canonicalize() {
        let rw = ActionSet::from(Action::Read).with(Action::Write);
        let apps = Caveat::apps([
            ("web", ActionSet::from(Action::Read)),
            ("api", rw),
            ("web", rw),
        ]);
        assert_eq!(apps.unwrap().to_string(), "app = api:rw,web:rw");
        assert!(Caveat::apps([("Web", rw)]).is_err());
        assert!(Caveat::apps([("web", ActionSet::NONE)]).is_err());
        assert!(Caveat::apps(Vec::<(&str, ActionSet)>::new()).is_err());
        let long_names = (0..64).map(|i| (format!("{i:02}{}", "a".repeat(61)), ActionSet::ALL));
        assert!(Caveat::apps(long_names).is_err(), "longer than 4096 bytes");
        let secrets = Caveat::secrets(["DB_*", "API_KEY", "DB_*"]).unwrap();
        assert_eq!(secrets.to_string(), "secret = API_KEY,DB_*");
        assert!(Caveat::secrets(["a b"]).is_err());
        assert!(Caveat::secrets(Vec::<String>::new()).is_err());
        let nets = ["2001:db8::/32", "10.0.0.0/8", "10.0.0.0/8"].map(|n| n.parse().unwrap());
        assert_eq!(
            Caveat::source_ip(nets).unwrap().to_string(),
            "ip = 10.0.0.0/8,2001:db8::/32"
        );
        assert!(Caveat::resources(ResourceSet::NONE).is_err());
        assert!(Caveat::actions(ActionSet::NONE).is_err());
        assert_eq!(
            Caveat::resources(Resource::Tokens.into())
                .unwrap()
                .to_string(),
            "resource = tokens"
        );
        assert_eq!(Caveat::org("acme").unwrap().to_string(), "org = acme");
        assert!(Caveat::org("ACME").is_err());
    }
}
