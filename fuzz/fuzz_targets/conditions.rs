//! Condition text -> Condition; the text form is canonical, and judging never panics.
//!
//! The input is a condition's text, then optionally a NUL and claims `name=value`
//! separated by NULs (no condition text holds a NUL), which the claim lookup answers from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use macvault_caveats::{Condition, judge};

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|&b| b == 0);
    let head = parts.next().unwrap_or_default();
    let Ok(text) = std::str::from_utf8(head) else {
        return;
    };
    let Ok(condition) = Condition::parse(text) else {
        return;
    };
    let shown = condition.to_string();
    assert_eq!(shown, text, "accepted a non-canonical condition text");
    assert_eq!(
        Condition::parse(&shown).as_ref(),
        Ok(&condition),
        "the text form does not parse back"
    );
    let claims: Vec<(String, String)> = parts
        .map(|claim| {
            let claim = String::from_utf8_lossy(claim);
            let (name, value) = claim.split_once('=').unwrap_or((&claim, ""));
            (name.to_owned(), value.to_owned())
        })
        .collect();
    let lookup = |name: &str| {
        claims
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let conditions = [condition.clone()];
    match judge(&conditions, &lookup) {
        Ok(judgement) => {
            let (validity, age, service) = match condition {
                Condition::MaxValidity(s) => (Some(s), None, None),
                Condition::MaxAge(s) => (None, Some(s), None),
                Condition::ServiceValidity(s) => (None, None, Some(s)),
                _ => (None, None, None),
            };
            assert_eq!(judgement.max_validity, validity);
            assert_eq!(judgement.max_age, age);
            assert_eq!(judgement.service_validity, service);
        }
        Err(failure) => {
            assert_eq!((failure.index, failure.condition.as_str()), (1, text));
            assert!(failure.found.as_deref().is_none_or(|f| f.is_ascii()));
            let _ = failure.to_string();
        }
    }
    // Without claims only the spans pass; with the claim it asks for, everything does.
    let none = |_: &str| None;
    let claimless = matches!(
        condition,
        Condition::MaxValidity(_) | Condition::MaxAge(_) | Condition::ServiceValidity(_)
    );
    assert_eq!(judge(&conditions, &none).is_ok(), claimless);
    let wanted = match &condition {
        Condition::ClaimEquals { name, value } => Some((name.clone(), value.clone())),
        Condition::ClaimPrefix { name, prefix } => Some((name.clone(), format!("{prefix}tail"))),
        Condition::MaxValidity(_) | Condition::MaxAge(_) | Condition::ServiceValidity(_) => None,
    };
    let met = |name: &str| {
        wanted
            .as_ref()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert!(
        judge(&conditions, &met).is_ok(),
        "{text:?} refused its own claim"
    );
});
