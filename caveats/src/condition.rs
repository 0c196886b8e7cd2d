//! The conditions of a third-party caveat: what a discharger must find in the evidence (an
//! OIDC ID token's claims, say) before it discharges, in a canonical text form of their own.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _, ser::Error as _};

use crate::{MAX_ITEMS, MAX_TEXT, ParseError, error::Excerpt, format_span, is_invisible};

/// Longest claim name.
const MAX_CLAIM_NAME: usize = 64;

/// One condition of a third-party caveat. Build it with the constructors or [`Condition::parse`]:
/// a literal with an invalid name or value has no faithful text form (serializing refuses it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// `claim NAME = VALUE`: the claim must equal VALUE exactly.
    ClaimEquals {
        /// The claim's name, `[a-z0-9_]{1,64}`.
        name: String,
        /// The value it must have.
        value: String,
    },
    /// `claim NAME = PREFIX*`: the claim must start with PREFIX, byte for byte (so
    /// `acme/web*` also admits `acme/webhooks`: a path prefix should end with `/`).
    ClaimPrefix {
        /// The claim's name, `[a-z0-9_]{1,64}`.
        name: String,
        /// What its value must start with (never empty).
        prefix: String,
    },
    /// `max-validity = SPAN`: the discharge may be valid for at most this many seconds.
    MaxValidity(u64),
    /// `max-age = SPAN`: the evidence may have been issued at most this long ago (an ID
    /// token's `iat`); the discharger checks it, knowing the time.
    MaxAge(u64),
    /// `service-validity = SPAN`: a discharged token may be turned into a service token
    /// (without the third-party caveat) that lives at most this long. Without it, no
    /// service token.
    ServiceValidity(u64),
}

/// What the claims earned: the bounds a discharge for them must respect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Judgement {
    /// The smallest max-validity among the conditions, if any set one.
    pub max_validity: Option<u64>,
    /// The max-age, if a condition sets one: the caller checks the evidence's age.
    pub max_age: Option<u64>,
    /// The service-validity, if a condition sets one.
    pub service_validity: Option<u64>,
}

/// Which condition the claims did not meet, and what was found instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("condition {index} ({condition}) is not met: {}", Unmet(.condition, .found))]
pub struct ConditionFailure {
    /// The condition's position, from 1.
    pub index: usize,
    /// Its canonical text.
    pub condition: String,
    /// The claim's value, escaped and truncated; `None` when the claim is missing.
    pub found: Option<String>,
}

/// `claim NAME is "…"` or `no claim NAME`, NAME read back from the condition's text.
struct Unmet<'a>(&'a str, &'a Option<String>);

impl fmt::Display for Unmet<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Canonical text is `claim NAME = …` and a name has no space.
        let rest = self.0.strip_prefix("claim ").unwrap_or(self.0);
        let name = rest.split_once(' ').map_or(rest, |(name, _)| name);
        match self.1 {
            Some(found) => write!(f, "claim {name} is \"{found}\""),
            None => write!(f, "no claim {name}"),
        }
    }
}

fn check_name(name: &str) -> Result<(), ParseError> {
    let b = name.as_bytes();
    let ok = (1..=MAX_CLAIM_NAME).contains(&b.len())
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_');
    if ok {
        Ok(())
    } else {
        Err(ParseError::near(
            "invalid claim name (want [a-z0-9_]{1,64})",
            name,
        ))
    }
}

/// A value or prefix: 1..=4096 bytes, no control or invisible character, no `*` (only a
/// prefix's closing one, already stripped), no space at either end.
fn check_value(value: &str, empty: &'static str) -> Result<(), ParseError> {
    if value.is_empty() {
        return Err(ParseError::new(empty));
    }
    if value.len() > MAX_TEXT {
        return Err(ParseError::new("claim value longer than 4096 bytes"));
    }
    if value.chars().any(|c| c.is_control() || is_invisible(c)) {
        return Err(ParseError::near(
            "claim value has a control or invisible character",
            value,
        ));
    }
    if value.starts_with(char::is_whitespace) || value.ends_with(char::is_whitespace) {
        return Err(ParseError::near(
            "claim value starts or ends with a space",
            value,
        ));
    }
    if value.contains('*') {
        return Err(ParseError::near(
            "`*` is allowed only at the end of a claim value",
            value,
        ));
    }
    Ok(())
}

/// Parses a span exactly as [`format_span`] writes it: `90d`, `36h`, `10m`, `61s`, in the
/// largest unit that divides it, and at least one second.
pub fn parse_span(text: &str) -> Result<u64, ParseError> {
    let shape = || ParseError::near("expected a span like 10m, 36h or 90d", text);
    let unit = match text.as_bytes().last() {
        Some(b'd') => 86_400,
        Some(b'h') => 3_600,
        Some(b'm') => 60,
        Some(b's') => 1,
        _ => return Err(shape()),
    };
    // The unit is one ASCII byte, so this cut is on a character boundary.
    let count: u64 = text[..text.len() - 1].parse().map_err(|_| shape())?;
    let secs = count
        .checked_mul(unit)
        .ok_or_else(|| ParseError::near("span too long", text))?;
    if secs == 0 {
        return Err(ParseError::near("span shorter than 1s", text));
    }
    // Anything else that parsed (`600s`, `010m`, `+5m`) is a non-canonical spelling.
    if format_span(secs) != text {
        return Err(ParseError::near(
            "span not in its largest unit (10m, not 600s)",
            text,
        ));
    }
    Ok(secs)
}

impl Condition {
    /// Parses a condition's canonical text; any other form is an error.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        if let Some(rest) = text.strip_prefix("claim ") {
            let (name, value) = rest
                .split_once(" = ")
                .ok_or_else(|| ParseError::near("expected claim NAME = VALUE", text))?;
            match value.strip_suffix('*') {
                Some(prefix) => Self::claim_prefix(name, prefix),
                None => Self::claim_eq(name, value),
            }
        } else if let Some(rest) = text.strip_prefix("max-validity = ") {
            Self::max_validity(parse_span(rest)?)
        } else if let Some(rest) = text.strip_prefix("max-age = ") {
            Ok(Self::MaxAge(parse_span(rest)?))
        } else if let Some(rest) = text.strip_prefix("service-validity = ") {
            Ok(Self::ServiceValidity(parse_span(rest)?))
        } else {
            Err(ParseError::near("unknown condition", text))
        }
    }

    /// `claim NAME = VALUE`; a VALUE with a `*` has no text form and is refused.
    pub fn claim_eq(name: &str, value: &str) -> Result<Self, ParseError> {
        check_name(name)?;
        check_value(value, "empty claim value")?;
        Ok(Self::ClaimEquals {
            name: name.to_owned(),
            value: value.to_owned(),
        })
    }

    /// `claim NAME = PREFIX*`; PREFIX must not be empty (that would only ask for the claim).
    pub fn claim_prefix(name: &str, prefix: &str) -> Result<Self, ParseError> {
        check_name(name)?;
        check_value(prefix, "empty claim prefix")?;
        Ok(Self::ClaimPrefix {
            name: name.to_owned(),
            prefix: prefix.to_owned(),
        })
    }

    /// `max-validity = SPAN`, at least one second.
    pub fn max_validity(secs: u64) -> Result<Self, ParseError> {
        if secs == 0 {
            return Err(ParseError::new("max-validity shorter than 1s"));
        }
        Ok(Self::MaxValidity(secs))
    }
}

impl fmt::Display for Condition {
    /// The canonical text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ClaimEquals { name, value } => write!(f, "claim {name} = {value}"),
            Self::ClaimPrefix { name, prefix } => write!(f, "claim {name} = {prefix}*"),
            Self::MaxValidity(secs) => write!(f, "max-validity = {}", format_span(*secs)),
            Self::MaxAge(secs) => write!(f, "max-age = {}", format_span(*secs)),
            Self::ServiceValidity(secs) => {
                write!(f, "service-validity = {}", format_span(*secs))
            }
        }
    }
}

impl FromStr for Condition {
    type Err = ParseError;
    fn from_str(text: &str) -> Result<Self, ParseError> {
        Self::parse(text)
    }
}

impl Serialize for Condition {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // A literal such as `ClaimEquals { value: "a*" }` would print as a wider prefix
        // condition: send only text that parses back to this very condition.
        let text = self.to_string();
        if Self::parse(&text).as_ref() != Ok(self) {
            return Err(S::Error::custom("condition has no canonical text form"));
        }
        s.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(D::Error::custom)
    }
}

/// Parses a third-party caveat's conditions: at most 64, none repeated, at most one
/// each of max-validity, max-age and service-validity. No conditions at all is fine: the
/// third party then checks only its own rules.
pub fn parse_conditions(texts: &[impl AsRef<str>]) -> Result<Vec<Condition>, ParseError> {
    if texts.len() > MAX_ITEMS {
        return Err(ParseError::new("more than 64 conditions"));
    }
    let mut conditions: Vec<Condition> = Vec::with_capacity(texts.len());
    for text in texts {
        let text = text.as_ref();
        let condition = Condition::parse(text)?;
        if conditions.contains(&condition) {
            return Err(ParseError::near("repeated condition", text));
        }
        let kind = |c: &Condition| match c {
            Condition::MaxValidity(_) => Some("max-validity"),
            Condition::MaxAge(_) => Some("max-age"),
            Condition::ServiceValidity(_) => Some("service-validity"),
            Condition::ClaimEquals { .. } | Condition::ClaimPrefix { .. } => None,
        };
        if let Some(k) = kind(&condition)
            && conditions.iter().any(|c| kind(c) == Some(k))
        {
            return Err(ParseError::near(
                match k {
                    "max-validity" => "more than one max-validity condition",
                    "max-age" => "more than one max-age condition",
                    _ => "more than one service-validity condition",
                },
                text,
            ));
        }
        conditions.push(condition);
    }
    Ok(conditions)
}

/// Passes only if the claims meet every condition (a missing claim meets none), with the
/// smallest max-validity among them (and the max-age and service-validity, for the
/// caller to apply); otherwise names the first condition not met.
pub fn judge(
    conditions: &[Condition],
    claim: &dyn Fn(&str) -> Option<String>,
) -> Result<Judgement, ConditionFailure> {
    let mut out = Judgement::default();
    let least = |slot: &mut Option<u64>, secs: u64| {
        *slot = Some(slot.map_or(secs, |m| m.min(secs)));
    };
    for (i, condition) in conditions.iter().enumerate() {
        let (name, wanted, exact) = match condition {
            Condition::ClaimEquals { name, value } => (name, value, true),
            Condition::ClaimPrefix { name, prefix } => (name, prefix, false),
            Condition::MaxValidity(secs) => {
                least(&mut out.max_validity, *secs);
                continue;
            }
            Condition::MaxAge(secs) => {
                least(&mut out.max_age, *secs);
                continue;
            }
            Condition::ServiceValidity(secs) => {
                least(&mut out.service_validity, *secs);
                continue;
            }
        };
        let found = claim(name);
        let met = found.as_deref().is_some_and(|v| {
            if exact {
                v == wanted
            } else {
                v.starts_with(wanted.as_str())
            }
        });
        if !met {
            return Err(ConditionFailure {
                index: i + 1,
                condition: condition.to_string(),
                found: found.map(|v| Excerpt(v.as_bytes()).to_string()),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    const CANONICAL: &[&str] = &[
        "claim repository = acme/web",
        "claim repository_id = 123456",
        "claim job_workflow_ref = acme/web/.github/workflows/deploy.yml@refs/heads/main",
        "claim project_path = acme/web",
        "claim ref_type = branch",
        "claim email_verified = true",
        "claim ref = refs/heads/*",
        "claim ref = r*",
        "claim x = v",
        "claim 0_z9 = v",
        // A value may hold ` = ` and inner spaces: the name ends at the first ` = `.
        "claim sub = a = b",
        "claim sub = a  b",
        "claim sub = r\u{e9}sum\u{e9} \u{65e5}\u{672c}",
        "claim sub = a\u{a0}b",
        "max-validity = 1s",
        "max-validity = 59s",
        "max-validity = 61s",
        "max-validity = 1m",
        "max-validity = 10m",
        "max-validity = 1h",
        "max-validity = 36h",
        "max-validity = 1d",
        "max-validity = 90d",
        "max-validity = 18446744073709551615s",
        "max-validity = 213503982334601d",
        "max-age = 5m",
        "max-age = 90s",
        "service-validity = 30d",
        "service-validity = 1h",
    ];

    fn parse(text: &str) -> Condition {
        Condition::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    #[test]
    fn canonical_text_round_trips() {
        let printable: String = (b' '..=b'~')
            .filter(|&b| b != b'*')
            .map(char::from)
            .collect();
        let long_name = format!("claim {} = v", "a".repeat(64));
        let long_value = format!("claim v = {}", "x".repeat(MAX_TEXT));
        let long_prefix = format!("claim v = {}*", "x".repeat(MAX_TEXT));
        let ascii = format!("claim v = x{printable}");
        let extra = [&long_name, &long_value, &long_prefix, &ascii];
        for text in CANONICAL.iter().copied().chain(extra.map(String::as_str)) {
            let condition = parse(text);
            assert_eq!(condition.to_string(), text);
            assert_eq!(text.parse::<Condition>(), Ok(condition.clone()));
            let json = serde_json::to_string(&condition).unwrap();
            assert_eq!(json, serde_json::to_string(text).unwrap());
            assert_eq!(serde_json::from_str::<Condition>(&json).unwrap(), condition);
        }
    }

    #[test]
    fn each_form_parses_to_its_variant() {
        let eq = |n: &str, v: &str| Condition::ClaimEquals {
            name: n.into(),
            value: v.into(),
        };
        let prefix = |n: &str, p: &str| Condition::ClaimPrefix {
            name: n.into(),
            prefix: p.into(),
        };
        assert_eq!(
            parse("claim repository = acme/web"),
            eq("repository", "acme/web")
        );
        assert_eq!(parse("claim sub = a = b"), eq("sub", "a = b"));
        assert_eq!(
            parse("claim ref = refs/heads/*"),
            prefix("ref", "refs/heads/")
        );
        assert_eq!(parse("claim ref = r*"), prefix("ref", "r"));
        for (text, secs) in [
            ("max-validity = 1s", 1),
            ("max-validity = 61s", 61),
            ("max-validity = 10m", 600),
            ("max-validity = 36h", 129_600),
            ("max-validity = 90d", 7_776_000),
            ("max-validity = 18446744073709551615s", u64::MAX),
            (
                "max-validity = 213503982334601d",
                213_503_982_334_601 * 86_400,
            ),
        ] {
            assert_eq!(parse(text), Condition::MaxValidity(secs), "{text}");
        }
        // The constructors build the same values, and refuse what has no text form.
        assert_eq!(Condition::claim_eq("ref", "main"), Ok(eq("ref", "main")));
        assert_eq!(Condition::claim_prefix("ref", "m"), Ok(prefix("ref", "m")));
        assert_eq!(Condition::max_validity(1), Ok(Condition::MaxValidity(1)));
        assert!(Condition::max_validity(0).is_err());
        assert!(Condition::claim_eq("ref", "ma*in").is_err());
        assert!(Condition::claim_eq("ref", "main*").is_err());
        assert!(Condition::claim_eq("ref", "").is_err());
        assert!(Condition::claim_eq("Ref", "main").is_err());
        assert!(Condition::claim_eq("ref", " main").is_err());
        assert!(Condition::claim_prefix("ref", "").is_err());
        assert!(Condition::claim_prefix("ref", "m*").is_err());
        assert!(Condition::claim_prefix("ref ", "m").is_err());
        assert!(Condition::claim_prefix("ref", "m\n").is_err());
        assert!(Condition::claim_prefix("ref", &"x".repeat(MAX_TEXT + 1)).is_err());
        assert!(Condition::claim_prefix("ref", &"x".repeat(MAX_TEXT)).is_ok());
    }

    #[test]
    fn non_canonical_text_is_refused() {
        let over_name = format!("claim {} = v", "a".repeat(65));
        let over_value = format!("claim v = {}", "x".repeat(MAX_TEXT + 1));
        let over_prefix = format!("claim v = {}*", "x".repeat(MAX_TEXT + 1));
        let bad: Vec<&str> = vec![
            "",
            "claim",
            "claim ",
            "claim repo",
            "claim repo =",
            "claim repo = ",
            "claim repo =value",
            "claim repo= value",
            "claim repo=value",
            "claim  repo = v",
            "claim repo  = v",
            "claim repo =  v",
            "claim  = v",
            " claim repo = v",
            "claim repo = v ",
            "claim repo = v\u{a0}",
            "claim repo = \u{3000}v",
            "claim repo = v\n",
            "claim repo = v\t",
            "claim repo = a\tb",
            "claim repo = a\u{0}b",
            "claim repo = a\u{1f}b",
            "claim repo = a\u{7f}b",
            "claim repo = a\u{85}b",
            "claim repo = a\u{9f}b",
            "claim repo = a\u{200b}b",
            "claim repo = a\u{202e}b",
            "claim repo = \u{feff}ab",
            "claim repo = ab\u{e0041}",
            "claim repo = a*b",
            "claim repo = *a",
            "claim repo = *",
            "claim repo = **",
            "claim repo = a**",
            "claim repo = a*b*",
            "claim Repo = v",
            "claim re-po = v",
            "claim re.po = v",
            "claim re po = v",
            "claim r\u{e9}po = v",
            &over_name,
            &over_value,
            &over_prefix,
            "Claim repo = v",
            "CLAIM repo = v",
            "claims repo = v",
            "claim repo == v",
            "claim repo != v",
            "org = acme",
            "expires < 2026-12-01T00:00:00Z",
            "validity = 10m",
            "max_validity = 10m",
            "max-validity < 10m",
            "max-validity =10m",
            "max-validity  = 10m",
            "max-validity = ",
            "max-validity = 10m ",
            " max-validity = 10m",
            "max-validity = 600s",
            "max-validity = 60s",
            "max-validity = 120s",
            "max-validity = 60m",
            "max-validity = 24h",
            "max-validity = 48h",
            "max-validity = 0s",
            "max-validity = 0m",
            "max-validity = 0h",
            "max-validity = 0d",
            "max-validity = 010m",
            "max-validity = +10m",
            "max-validity = -1s",
            "max-validity = 10",
            "max-validity = m",
            "max-validity = 10M",
            "max-validity = 10 m",
            "max-validity = 1w",
            "max-validity = 1\u{e9}",
            "max-validity = 1.5h",
            "max-validity = 1h30m",
            "max-validity = 213503982334602d",
            "max-validity = 18446744073709551616s",
        ];
        for text in bad {
            assert!(Condition::parse(text).is_err(), "accepted {text:?}");
            assert!(serde_json::from_value::<Condition>(text.into()).is_err());
        }
        assert!(serde_json::from_str::<Condition>("600").is_err());
    }

    #[test]
    fn parse_errors_say_what_is_wrong_briefly() {
        let what = |text: &str| Condition::parse(text).unwrap_err().what();
        assert_eq!(what("frob = 1"), "unknown condition");
        assert_eq!(what("claim repo"), "expected claim NAME = VALUE");
        assert_eq!(
            what("claim Repo = v"),
            "invalid claim name (want [a-z0-9_]{1,64})"
        );
        assert_eq!(what("claim repo = "), "empty claim value");
        assert_eq!(what("claim repo = *"), "empty claim prefix");
        assert_eq!(
            what("claim repo = a\nb"),
            "claim value has a control or invisible character"
        );
        assert_eq!(
            what("claim repo = a "),
            "claim value starts or ends with a space"
        );
        assert_eq!(
            what("claim repo = a*b"),
            "`*` is allowed only at the end of a claim value"
        );
        let long = format!("claim repo = {}", "x".repeat(MAX_TEXT + 1));
        assert_eq!(what(&long), "claim value longer than 4096 bytes");
        assert_eq!(
            what("max-validity = 10x"),
            "expected a span like 10m, 36h or 90d"
        );
        assert_eq!(what("max-validity = 0m"), "span shorter than 1s");
        assert_eq!(
            what("max-validity = 600s"),
            "span not in its largest unit (10m, not 600s)"
        );
        assert_eq!(what("max-validity = 213503982334602d"), "span too long");
        let e = Condition::parse(&format!("frob {}", "x".repeat(1000))).unwrap_err();
        assert!(e.to_string().len() < 100, "{e}");
        let e = Condition::parse("claim repo = a\u{200b}b").unwrap_err();
        assert_eq!(
            e.to_string(),
            "claim value has a control or invisible character: \"a\\xe2\\x80\\x8bb\""
        );
    }

    #[test]
    fn spans_parse_back_what_format_span_writes() {
        for secs in (1..=200_000)
            .step_by(7)
            .chain([60, 3_600, 86_400, u64::MAX])
        {
            assert_eq!(parse_span(&format_span(secs)), Ok(secs), "{secs}");
        }
        assert!(parse_span("").is_err());
        assert!(parse_span("0d").is_err());
    }

    fn claims(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|&(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn ci() -> impl Fn(&str) -> Option<String> {
        claims(&[
            ("repository", "acme/web"),
            ("ref", "refs/heads/main"),
            ("repository_id", "42"),
            ("empty", ""),
        ])
    }

    fn run(
        texts: &[&str],
        claim: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Judgement, ConditionFailure> {
        let conditions: Vec<Condition> = texts.iter().map(|t| parse(t)).collect();
        judge(&conditions, claim)
    }

    fn passes(texts: &[&str]) -> bool {
        run(texts, &ci()).is_ok()
    }

    const NO_LIMIT: Judgement = Judgement {
        max_validity: None,
        max_age: None,
        service_validity: None,
    };

    #[test]
    fn claim_equals_is_exact() {
        assert_eq!(run(&["claim repository = acme/web"], &ci()), Ok(NO_LIMIT));
        assert_eq!(run(&["claim repository_id = 42"], &ci()), Ok(NO_LIMIT));
        assert_eq!(
            run(&["claim repository = acme/api"], &ci()),
            Err(ConditionFailure {
                index: 1,
                condition: "claim repository = acme/api".into(),
                found: Some("acme/web".into()),
            })
        );
        assert!(!passes(&["claim repository = acme/we"]));
        assert!(!passes(&["claim repository = acme/web/"]));
        assert!(!passes(&["claim repository = Acme/web"]));
        assert!(!passes(&["claim repository_id = 4"]));
        assert!(!passes(&["claim empty = x"]));
    }

    #[test]
    fn claim_prefix_is_a_prefix_of_the_value() {
        for ok in ["refs/*", "refs/heads/*", "refs/heads/main*", "r*"] {
            assert!(passes(&[&format!("claim ref = {ok}")]), "{ok}");
        }
        for no in [
            "refs/heads/main/*",
            "refs/heads/mainx*",
            "heads/*",
            "main*",
            "Refs/*",
            "x*",
        ] {
            assert!(!passes(&[&format!("claim ref = {no}")]), "{no}");
        }
        assert!(!passes(&["claim empty = x*"]));
        assert!(!passes(&["claim missing = x*"]));
        let e = run(&["claim ref = refs/tags/*"], &ci()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "condition 1 (claim ref = refs/tags/*) is not met: claim ref is \"refs/heads/main\""
        );
    }

    #[test]
    fn a_missing_claim_meets_no_condition() {
        let none = |_: &str| None;
        assert_eq!(
            run(&["claim ref = refs/heads/main"], &none),
            Err(ConditionFailure {
                index: 1,
                condition: "claim ref = refs/heads/main".into(),
                found: None,
            })
        );
        assert!(run(&["claim ref = r*"], &none).is_err());
        let e = run(
            &["claim repository = acme/web", "claim environment = prod"],
            &ci(),
        )
        .unwrap_err();
        assert_eq!(e.index, 2);
        assert_eq!(
            e.to_string(),
            "condition 2 (claim environment = prod) is not met: no claim environment"
        );
        // Only the named claim is looked up.
        let only_ref = |name: &str| (name == "ref").then(|| "refs/heads/main".to_owned());
        assert!(run(&["claim ref = refs/heads/main"], &only_ref).is_ok());
        assert!(run(&["claim repository = refs/heads/main"], &only_ref).is_err());
    }

    #[test]
    fn every_condition_is_required() {
        let (yes, no) = ("claim repository = acme/web", "claim ref = refs/tags/*");
        assert!(passes(&[yes, yes, "claim ref = refs/*"]));
        assert_eq!(run(&[yes, yes, no], &ci()).unwrap_err().index, 3);
        assert_eq!(run(&[no, yes], &ci()).unwrap_err().index, 1);
        // The first condition not met is the one named.
        let e = run(&[yes, no, "claim x = y"], &ci()).unwrap_err();
        assert_eq!((e.index, e.condition.as_str()), (2, no));
        assert!(run(&["max-validity = 1h", no], &ci()).is_err());
        assert_eq!(judge(&[], &ci()), Ok(NO_LIMIT));
    }

    #[test]
    fn max_age_and_service_validity_are_returned_for_the_caller() {
        let j = run(
            &[
                "max-age = 5m",
                "service-validity = 7d",
                "claim ref = refs/*",
            ],
            &ci(),
        )
        .unwrap();
        assert_eq!(j.max_age, Some(300));
        assert_eq!(j.service_validity, Some(7 * 86_400));
        assert_eq!(j.max_validity, None);
        assert_eq!(run(&["claim ref = refs/*"], &ci()).unwrap(), NO_LIMIT);
        for bad in [
            "max-age = 0s",
            "max-age = 300s",
            "service-validity = 24h",
            "max-age 5m",
        ] {
            assert!(Condition::parse(bad).is_err(), "{bad}");
        }
        for (twice, says) in [
            (["max-age = 5m", "max-age = 1m"], "more than one max-age"),
            (
                ["service-validity = 1d", "service-validity = 2d"],
                "more than one service-validity",
            ),
            (
                ["max-validity = 1m", "max-validity = 2m"],
                "more than one max-validity",
            ),
        ] {
            let e = parse_conditions(&twice).unwrap_err().to_string();
            assert!(e.contains(says), "{twice:?}: {e}");
        }
        assert!(parse_conditions(&["max-age = 5m", "max-validity = 5m"]).is_ok());
    }

    #[test]
    fn max_validity_is_the_smallest() {
        let max = |texts: &[&str]| run(texts, &ci()).unwrap().max_validity;
        assert_eq!(max(&["max-validity = 1h"]), Some(3_600));
        assert_eq!(max(&["max-validity = 1h", "max-validity = 10m"]), Some(600));
        assert_eq!(max(&["max-validity = 10m", "max-validity = 1h"]), Some(600));
        assert_eq!(
            max(&[
                "max-validity = 10m",
                "claim ref = refs/*",
                "max-validity = 1h",
                "max-validity = 61s"
            ]),
            Some(61)
        );
        assert_eq!(max(&["claim ref = refs/*"]), None);
    }

    #[test]
    fn found_values_are_escaped_and_cut() {
        let found = |value: &str| {
            run(&["claim v = x"], &claims(&[("v", value)]))
                .unwrap_err()
                .found
                .unwrap()
        };
        assert_eq!(found("a\"b\\\n\u{e9}"), "a\\\"b\\\\\\n\\xc3\\xa9");
        assert_eq!(found(&"y".repeat(100)), format!("{}...", "y".repeat(64)));
        assert_eq!(found(""), "");
        let e = run(&["claim v = x"], &claims(&[("v", "\u{1b}[31m")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "condition 1 (claim v = x) is not met: claim v is \"\\x1b[31m\""
        );
    }

    #[test]
    fn literals_without_a_text_form_do_not_serialize() {
        for literal in [
            Condition::ClaimEquals {
                name: "ref".into(),
                value: "refs/*".into(),
            },
            Condition::ClaimPrefix {
                name: "ref".into(),
                prefix: String::new(),
            },
            Condition::ClaimEquals {
                name: "Ref".into(),
                value: "main".into(),
            },
            Condition::MaxValidity(0),
        ] {
            let e = serde_json::to_string(&literal).unwrap_err();
            assert_eq!(e.to_string(), "condition has no canonical text form");
        }
        // Judging takes the literal at its word: an exact value is never read as a prefix.
        let star = Condition::ClaimEquals {
            name: "ref".into(),
            value: "refs/*".into(),
        };
        assert!(judge(std::slice::from_ref(&star), &ci()).is_err());
        let literal = claims(&[("ref", "refs/*")]);
        assert!(judge(&[star], &literal).is_ok());
    }

    #[test]
    fn failure_text_names_the_claim_even_when_built_by_hand() {
        let failure = |condition: &str| ConditionFailure {
            index: 7,
            condition: condition.into(),
            found: None,
        };
        assert_eq!(
            failure("claim a_b = x y").to_string(),
            "condition 7 (claim a_b = x y) is not met: no claim a_b"
        );
        assert_eq!(
            failure("odd").to_string(),
            "condition 7 (odd) is not met: no claim odd"
        );
    }

    #[test]
    fn condition_lists() {
        let ok = |texts: &[&str]| parse_conditions(texts).unwrap();
        assert_eq!(ok(&[]), vec![]);
        assert_eq!(
            ok(&[
                "claim ref = refs/*",
                "max-validity = 1h",
                "claim ref = refs/heads/main"
            ]),
            vec![
                parse("claim ref = refs/*"),
                Condition::MaxValidity(3_600),
                parse("claim ref = refs/heads/main"),
            ]
        );
        assert_eq!(ok(&["max-validity = 1h", "claim a = b"]).len(), 2);
        let most: Vec<String> = (0..MAX_ITEMS).map(|i| format!("claim c = {i}")).collect();
        assert_eq!(parse_conditions(&most).unwrap().len(), MAX_ITEMS);
        let what = |texts: &[String]| parse_conditions(texts).unwrap_err().what();
        // Counted before anything is parsed.
        let too_many = vec!["junk".to_owned(); MAX_ITEMS + 1];
        assert_eq!(what(&too_many), "more than 64 conditions");
        let texts = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            what(&texts(&["claim a = b", "claim a = b"])),
            "repeated condition"
        );
        assert_eq!(
            what(&texts(&[
                "max-validity = 1h",
                "claim a = b",
                "max-validity = 2h"
            ])),
            "more than one max-validity condition"
        );
        assert_eq!(
            what(&texts(&["claim a = b", "claim a = "])),
            "empty claim value"
        );
        // `b` and `b*` are different conditions.
        assert_eq!(ok(&["claim a = b", "claim a = b*"]).len(), 2);
    }

    fn small_condition() -> impl Strategy<Value = Condition> {
        let name = || prop::sample::select(vec!["a", "b", "c"]);
        prop_oneof![
            (name(), "[xy]{1,3}").prop_map(|(n, v)| Condition::claim_eq(n, &v).unwrap()),
            (name(), "[xy]{1,2}").prop_map(|(n, p)| Condition::claim_prefix(n, &p).unwrap()),
            (1..=5u64).prop_map(|m| Condition::MaxValidity(m * 60)),
            (1..=5u64).prop_map(|m| Condition::MaxAge(m * 60)),
            (1..=5u64).prop_map(|m| Condition::ServiceValidity(m * 3_600)),
        ]
    }

    fn claim_map() -> impl Strategy<Value = BTreeMap<&'static str, String>> {
        let name = prop::sample::select(vec!["a", "b", "c"]);
        prop::collection::btree_map(name, "[xy]{0,3}", 0..=3)
    }

    fn value_char() -> impl Strategy<Value = char> {
        prop_oneof![(b' '..=b'~').prop_map(char::from), any::<char>()]
            .prop_filter("not in a value", |&c| {
                !c.is_control() && !is_invisible(c) && c != '*'
            })
    }

    fn any_condition() -> impl Strategy<Value = Condition> {
        let value = || {
            prop::collection::vec(value_char(), 1..40)
                .prop_map(String::from_iter)
                .prop_filter("space at an end", |v| {
                    !v.starts_with(char::is_whitespace) && !v.ends_with(char::is_whitespace)
                })
        };
        let span = prop_oneof![
            1..=u64::MAX,
            (
                1..100_000u64,
                prop::sample::select(vec![1, 60, 3_600, 86_400])
            )
                .prop_map(|(n, unit)| n * unit),
        ];
        prop_oneof![
            ("[a-z0-9_]{1,64}", value()).prop_map(|(n, v)| Condition::claim_eq(&n, &v).unwrap()),
            ("[a-z0-9_]{1,64}", value())
                .prop_map(|(n, p)| Condition::claim_prefix(&n, &p).unwrap()),
            span.clone()
                .prop_map(|s| Condition::max_validity(s).unwrap()),
            span.clone().prop_map(Condition::MaxAge),
            span.prop_map(Condition::ServiceValidity),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            failure_persistence: None,
            ..ProptestConfig::with_cases(1024)
        })]

        /// An extra condition never lets more claims through, nor a longer discharge.
        #[test]
        fn conditions_only_narrow(
            base in prop::collection::vec(small_condition(), 0..5),
            extra in small_condition(),
            at in any::<prop::sample::Index>(),
            map in claim_map(),
        ) {
            let claim = |name: &str| map.get(name).map(|v| v.to_string());
            let mut more = base.clone();
            more.insert(at.index(base.len() + 1), extra.clone());
            let (before, after) = (judge(&base, &claim), judge(&more, &claim));
            if let Ok(after) = after {
                let before = before.expect("an extra condition widened the judgement");
                let infinite = |j: Judgement| j.max_validity.unwrap_or(u64::MAX);
                prop_assert!(infinite(after) <= infinite(before));
                let age = |j: Judgement| j.max_age.unwrap_or(u64::MAX);
                prop_assert!(age(after) <= age(before));
                // A service-validity is the ticket author's grant: one more condition
                // can only shorten one already there.
                if let Some(had) = before.service_validity {
                    prop_assert!(after.service_validity.is_some_and(|s| s <= had));
                }
            }
            // All conditions are required: the longer list passes exactly when both parts do.
            prop_assert_eq!(
                judge(&more, &claim).is_ok(),
                judge(&base, &claim).is_ok() && judge(&[extra], &claim).is_ok()
            );
        }

        /// Display then parse is the identity, for the text and the JSON form.
        #[test]
        fn text_round_trips(condition in any_condition()) {
            let text = condition.to_string();
            prop_assert_eq!(Condition::parse(&text), Ok(condition.clone()));
            let json = serde_json::to_string(&condition).unwrap();
            prop_assert_eq!(serde_json::from_str::<Condition>(&json).unwrap(), condition);
        }
    }
}
