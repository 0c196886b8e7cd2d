//! The caveat rules, pinned by tables: one test per rule, one row per case, with the
//! boundary on each side. These tests decide nothing by chance, so every mutant
//! `scripts/mutants.sh --no-props` makes of the rules must be killed here or by the
//! crate's unit tests (docs/TESTING.md); the property tests (`props.rs`) come on top.

#![allow(clippy::unwrap_used)] // tests may unwrap (docs/STYLE.md)

use std::net::IpAddr;

use macvault_caveats::{
    Access, AccessSpec, Action, ActionSet, AppActions, Caveat, IpNet, MAX_ITEMS, MAX_NETWORKS,
    MAX_TEXT, MAX_TIME, Name, Networks, Resource, SecretPatterns, SecretTarget, ValidityWindow,
    evaluate, is_valid_name, is_valid_secret_name, pattern_matches,
};

/// A caveat from its canonical text (panics on a typo in a table).
fn c(text: &str) -> Caveat<'static> {
    Caveat::parse(text)
        .unwrap_or_else(|e| panic!("table row {text:?}: {e}"))
        .into_owned()
}

/// A validity caveat from its bounds.
fn w(not_before: Option<u64>, not_after: Option<u64>) -> Caveat<'static> {
    Caveat::validity(not_before, not_after).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// Runs a table of `(a, b, want)` through `rule`, reporting every wrong row at once.
fn table(
    rule: &str,
    rows: &[(Caveat<'_>, Caveat<'_>, bool)],
    f: impl Fn(&Caveat<'_>, &Caveat<'_>) -> bool,
) {
    let wrong: Vec<String> = rows
        .iter()
        .filter(|(a, b, want)| f(a, b) != *want)
        .map(|(a, b, want)| format!("({a}) {rule} ({b}) should be {want}"))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

fn implication(rows: &[(Caveat<'_>, Caveat<'_>, bool)]) {
    table("implies", rows, |a, b| a.implies(b));
}

// ---- implication ------------------------------------------------------------------------

#[test]
fn org_implies_only_the_same_org() {
    implication(&[
        (c("org = acme"), c("org = acme"), true),
        (c("org = acme"), c("org = acm"), false),
        (c("org = acme"), c("org = beta"), false),
    ]);
}

#[test]
fn apps_imply_apps_when_each_app_is_listed_with_at_least_its_actions() {
    implication(&[
        (c("app = web:r"), c("app = web:r"), true),
        (c("app = web:r"), c("app = api:r,web:rw"), true),
        (c("app = api:r,web:r"), c("app = api:rw,web:rw"), true),
        (c("app = web:rw"), c("app = web:r"), false),
        (c("app = api:r,web:r"), c("app = web:r"), false),
        (c("app = api:r,web:r"), c("app = api:r"), false),
        (c("app = web:r"), c("app = api:rw"), false),
        (c("app = api:rw,web:r"), c("app = api:r,web:r"), false),
    ]);
}

#[test]
fn apps_imply_actions_when_every_app_stays_within_them() {
    implication(&[
        (c("app = api:r,web:rw"), c("actions = rw"), true),
        (c("app = web:rw"), c("actions = rw"), true),
        (c("app = api:r,web:rwc"), c("actions = rw"), false),
        (c("app = api:rwc,web:r"), c("actions = rw"), false),
        // An actions caveat allows every app, so it never implies an apps caveat.
        (c("actions = r"), c("app = web:r"), false),
    ]);
}

#[test]
fn actions_imply_a_superset() {
    implication(&[
        (c("actions = r"), c("actions = r"), true),
        (c("actions = r"), c("actions = rw"), true),
        (c("actions = w"), c("actions = rw"), true),
        (c("actions = rw"), c("actions = r"), false),
        (c("actions = r"), c("actions = w"), false),
    ]);
}

#[test]
fn a_window_implies_a_window_it_lies_inside() {
    let (nb, na) = (Some(100), Some(200));
    implication(&[
        // Both bounds: equal edges hold, one second either way does not.
        (w(nb, na), w(nb, na), true),
        (w(Some(101), Some(199)), w(nb, na), true),
        (w(Some(99), na), w(nb, na), false),
        (w(nb, Some(201)), w(nb, na), false),
        (w(None, na), w(nb, na), false),
        (w(nb, None), w(nb, na), false),
        // Only an end.
        (w(Some(50), Some(200)), w(None, na), true),
        (w(None, Some(199)), w(None, na), true),
        (w(None, Some(200)), w(None, na), true),
        (w(None, Some(201)), w(None, na), false),
        (w(Some(100), None), w(None, na), false),
        // Only a start.
        (w(Some(100), None), w(nb, None), true),
        (w(Some(101), Some(150)), w(nb, None), true),
        (w(Some(99), Some(150)), w(nb, None), false),
        (w(None, Some(150)), w(nb, None), false),
    ]);
}

#[test]
fn secret_patterns_imply_patterns_that_cover_every_name_they_match() {
    implication(&[
        // Exact names.
        (c("secret = DB_URL"), c("secret = DB_URL"), true),
        (c("secret = DB_URL"), c("secret = DB_URLS"), false),
        (c("secret = DB_URLS"), c("secret = DB_URL"), false),
        // A name under a prefix.
        (c("secret = DB_URL"), c("secret = DB_*"), true),
        (c("secret = DB_"), c("secret = DB_*"), true),
        (c("secret = DB"), c("secret = DB_*"), false),
        (c("secret = API"), c("secret = DB_*"), false),
        // A prefix under a prefix.
        (c("secret = DB_*"), c("secret = DB_*"), true),
        (c("secret = DB_X*"), c("secret = DB_*"), true),
        (c("secret = DB_X*"), c("secret = *"), true),
        (c("secret = DB_*"), c("secret = DB_X*"), false),
        (c("secret = D*"), c("secret = DB_*"), false),
        // A prefix never under an exact name.
        (c("secret = DB_*"), c("secret = DB_URL"), false),
        (c("secret = DB_*"), c("secret = DB_"), false),
        // Lists: every pattern of the first, by some pattern of the second.
        (c("secret = A"), c("secret = A,B"), true),
        (c("secret = B"), c("secret = A,B"), true),
        (c("secret = A,B"), c("secret = A"), false),
        (c("secret = A,B"), c("secret = B"), false),
        (c("secret = A,B"), c("secret = A,B*"), true),
    ]);
}

#[test]
fn resources_imply_a_superset() {
    implication(&[
        (c("resource = secrets"), c("resource = secrets"), true),
        (
            c("resource = secrets"),
            c("resource = secrets,tokens"),
            true,
        ),
        (c("resource = tokens"), c("resource = secrets,tokens"), true),
        (
            c("resource = secrets,tokens"),
            c("resource = secrets"),
            false,
        ),
        (
            c("resource = secrets,tokens"),
            c("resource = tokens"),
            false,
        ),
        (c("resource = apps"), c("resource = secrets"), false),
    ]);
}

#[test]
fn networks_imply_networks_that_contain_them() {
    implication(&[
        (c("ip = 10.1.0.0/16"), c("ip = 10.0.0.0/8"), true),
        (c("ip = 10.0.0.0/8"), c("ip = 10.0.0.0/8"), true),
        (c("ip = 10.0.0.0/9"), c("ip = 10.0.0.0/8"), true),
        // Same first address, one bit wider: not inside.
        (c("ip = 10.0.0.0/8"), c("ip = 10.0.0.0/9"), false),
        (c("ip = 10.0.0.0/8"), c("ip = 10.1.0.0/16"), false),
        // Narrow enough, elsewhere.
        (c("ip = 10.0.0.0/24"), c("ip = 192.168.0.0/16"), false),
        (c("ip = 192.168.0.0/16"), c("ip = 10.0.0.0/8"), false),
        // Families never cover each other, mapped addresses included (sound: no).
        (c("ip = ::/0"), c("ip = 0.0.0.0/0"), false),
        (c("ip = 0.0.0.0/0"), c("ip = ::/0"), false),
        (c("ip = ::ffff:10.0.0.0/104"), c("ip = 10.0.0.0/8"), false),
        (c("ip = 2001:db8:1::/48"), c("ip = 2001:db8::/32"), true),
        (c("ip = 2001:db8::/32"), c("ip = 2001:db8:1::/48"), false),
        // Lists: every network of the first, inside some network of the second.
        (c("ip = 10.0.0.0/8"), c("ip = 10.0.0.0/8,11.0.0.0/8"), true),
        (c("ip = 11.0.0.0/8"), c("ip = 10.0.0.0/8,11.0.0.0/8"), true),
        (c("ip = 10.0.0.0/8,11.0.0.0/8"), c("ip = 10.0.0.0/8"), false),
        (c("ip = 10.0.0.0/8,11.0.0.0/8"), c("ip = 11.0.0.0/8"), false),
    ]);
}

/// One caveat of each kind, for the cross-kind rows.
fn one_of_each_kind() -> Vec<Caveat<'static>> {
    vec![
        c("org = acme"),
        c("app = web:r"),
        c("actions = r"),
        w(Some(100), Some(200)),
        c("secret = A"),
        c("resource = secrets"),
        c("ip = 10.0.0.0/8"),
    ]
}

#[test]
fn across_kinds_only_apps_imply_actions() {
    let kinds = one_of_each_kind();
    let mut rows = Vec::new();
    for (i, a) in kinds.iter().enumerate() {
        for (j, b) in kinds.iter().enumerate() {
            let apps_to_actions = (i, j) == (1, 2);
            rows.push((a.clone(), b.clone(), i == j || apps_to_actions));
        }
    }
    implication(&rows);
}

// ---- exclusion --------------------------------------------------------------------------

/// Exclusion is checked both ways round: it is symmetric.
fn exclusion(rows: &[(Caveat<'_>, Caveat<'_>, bool)]) {
    table("excludes", rows, |a, b| a.excludes(b));
    table("excludes (swapped)", rows, |a, b| b.excludes(a));
}

#[test]
fn orgs_exclude_other_orgs() {
    exclusion(&[
        (c("org = acme"), c("org = beta"), true),
        (c("org = acme"), c("org = acme"), false),
    ]);
}

#[test]
fn apps_exclude_apps_sharing_no_app_and_action() {
    exclusion(&[
        (c("app = web:rw"), c("app = api:rw"), true),
        (c("app = web:r"), c("app = web:w"), true),
        (c("app = api:r,web:w"), c("app = web:r"), true),
        (c("app = web:rw"), c("app = api:r,web:r"), false),
        (c("app = api:r,web:w"), c("app = api:r"), false),
        (c("app = api:r,web:w"), c("app = web:w"), false),
    ]);
}

#[test]
fn apps_and_actions_exclude_when_no_app_keeps_an_allowed_action() {
    exclusion(&[
        (c("app = web:r"), c("actions = w"), true),
        (c("app = api:r,web:c"), c("actions = w"), true),
        (c("app = web:rw"), c("actions = r"), false),
        (c("app = api:r,web:w"), c("actions = w"), false),
        (c("app = api:w,web:r"), c("actions = w"), false),
    ]);
}

#[test]
fn actions_exclude_disjoint_actions() {
    exclusion(&[
        (c("actions = r"), c("actions = w"), true),
        (c("actions = rw"), c("actions = w"), false),
        (c("actions = rw"), c("actions = rw"), false),
    ]);
}

#[test]
fn resources_exclude_disjoint_resources() {
    exclusion(&[
        (c("resource = secrets"), c("resource = tokens"), true),
        (c("resource = apps,secrets"), c("resource = tokens"), true),
        (
            c("resource = secrets,tokens"),
            c("resource = tokens"),
            false,
        ),
        (
            c("resource = secrets,tokens"),
            c("resource = secrets"),
            false,
        ),
    ]);
}

#[test]
fn windows_exclude_windows_they_do_not_overlap() {
    exclusion(&[
        // An end meets a start: no second is in both.
        (w(None, Some(100)), w(Some(100), None), true),
        (w(None, Some(101)), w(Some(100), None), false),
        (w(None, Some(100)), w(Some(99), None), false),
        (w(Some(10), Some(20)), w(Some(20), Some(30)), true),
        (w(Some(10), Some(20)), w(Some(19), Some(30)), false),
        (w(Some(40), Some(50)), w(None, Some(30)), true),
        (w(Some(10), Some(50)), w(None, Some(30)), false),
        (w(Some(10), Some(50)), w(Some(50), None), true),
        // Open on the same side: they always overlap.
        (w(None, Some(100)), w(None, Some(50)), false),
        (w(None, Some(1)), w(None, Some(MAX_TIME)), false),
        (w(Some(10), None), w(Some(20), None), false),
        (w(Some(MAX_TIME - 1), None), w(Some(0), None), false),
    ]);
}

#[test]
fn networks_exclude_networks_they_do_not_overlap() {
    exclusion(&[
        (c("ip = 10.0.0.0/8"), c("ip = 11.0.0.0/8"), true),
        (c("ip = 10.0.0.0/8"), c("ip = ::/0"), true),
        (c("ip = 0.0.0.0/0"), c("ip = ::/0"), true),
        (c("ip = 10.0.0.0/8"), c("ip = 10.1.0.0/16"), false),
        (c("ip = 10.1.0.0/16"), c("ip = 10.0.0.0/8"), false),
        (c("ip = 10.0.0.0/8"), c("ip = 10.0.0.0/8"), false),
        (c("ip = 10.0.0.0/8,11.0.0.0/8"), c("ip = 11.0.0.0/8"), false),
        (c("ip = 10.0.0.0/8,11.0.0.0/8"), c("ip = 12.0.0.0/8"), true),
    ]);
}

#[test]
fn across_kinds_only_apps_and_actions_can_exclude() {
    let kinds = one_of_each_kind();
    let mut rows = Vec::new();
    for a in &kinds {
        for b in &kinds {
            // One of each kind never contradicts another kind (and none contradicts
            // itself); secrets caveats cannot tell.
            rows.push((a.clone(), b.clone(), false));
        }
    }
    rows.push((c("app = web:r"), c("actions = w"), true));
    rows.push((c("secret = A"), c("secret = B"), false));
    exclusion(&rows);
}

// ---- evaluation -------------------------------------------------------------------------

const NOW: u64 = 1_000;

/// Writing secret DB_URL of app web of org acme, from 10.1.2.3, at [`NOW`].
fn access() -> Access<'static> {
    Access::new("acme", Resource::Secrets, Action::Write, NOW)
        .app(Some("web"))
        .secret("DB_URL")
        .from(Some(ip("10.1.2.3")))
}

/// Runs rows of `(caveat, access, Ok or the denial's reason)` through `Caveat::check` and
/// `evaluate`, which must agree.
fn checks(rows: &[(Caveat<'_>, Access<'_>, Result<(), &str>)]) {
    let mut wrong = Vec::new();
    for (caveat, access, want) in rows {
        let got = caveat.check(access).map_err(|r| r.to_string());
        let want = want.map_err(str::to_owned);
        if got != want {
            wrong.push(format!(
                "({caveat}) on {access:?}: got {got:?}, want {want:?}"
            ));
        }
        let text = caveat.to_string();
        let evaluated = evaluate([text.as_bytes()], access).map_err(|d| d.reason);
        if evaluated != want {
            wrong.push(format!("evaluate ({caveat}): {evaluated:?}, want {want:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn org_checks_the_org() {
    checks(&[
        (c("org = acme"), access(), Ok(())),
        (
            c("org = acme"),
            Access {
                org: "acm",
                ..access()
            },
            Err("does not allow org \"acm\""),
        ),
    ]);
}

#[test]
fn apps_check_the_app_and_its_action() {
    let on = |app| access().app(Some(app));
    let doing = |action| Access { action, ..access() };
    checks(&[
        (c("app = web:w"), access(), Ok(())),
        (c("app = api:r,web:rw"), access(), Ok(())),
        (
            c("app = api:rw,web:r"),
            access(),
            Err("does not allow write on app \"web\""),
        ),
        (c("app = web:r"), doing(Action::Read), Ok(())),
        (
            c("app = web:rwcdx"),
            doing(Action::Reveal),
            Err("does not allow reveal on app \"web\""),
        ),
        (
            c("app = api:rw"),
            access(),
            Err("does not allow app \"web\""),
        ),
        (
            c("app = web:rw"),
            on("we"),
            Err("does not allow app \"we\""),
        ),
        (
            c("app = web:rw"),
            on("webs"),
            Err("does not allow app \"webs\""),
        ),
        (
            c("app = web:rw"),
            access().app(None),
            Err("does not allow org-level requests"),
        ),
    ]);
}

#[test]
fn actions_and_resources_check_membership() {
    let doing = |action| Access { action, ..access() };
    let on = |resource| Access {
        resource,
        ..access()
    };
    checks(&[
        (c("actions = w"), access(), Ok(())),
        (c("actions = rcdxv"), access(), Err("does not allow write")),
        (
            c("actions = rwcdx"),
            doing(Action::Reveal),
            Err("does not allow reveal"),
        ),
        (c("actions = v"), doing(Action::Reveal), Ok(())),
        (c("resource = secrets"), access(), Ok(())),
        (
            c("resource = apps,tokens"),
            access(),
            Err("does not allow secrets"),
        ),
        (c("resource = apps,tokens"), on(Resource::Tokens), Ok(())),
        (
            c("resource = secrets"),
            on(Resource::Audit),
            Err("does not allow audit"),
        ),
    ]);
}

#[test]
fn windows_allow_from_their_start_until_before_their_end() {
    let at = |now| Access { now, ..access() };
    let (nb, na) = (Some(NOW), Some(NOW + 10));
    let before = "is not valid before 1970-01-01T00:16:40Z";
    let after = "expired at 1970-01-01T00:16:50Z";
    checks(&[
        (w(nb, na), at(NOW - 1), Err(before)),
        (w(nb, na), at(NOW), Ok(())),
        (w(nb, na), at(NOW + 9), Ok(())),
        (w(nb, na), at(NOW + 10), Err(after)),
        (w(nb, None), at(NOW - 1), Err(before)),
        (w(nb, None), at(NOW), Ok(())),
        (w(nb, None), at(MAX_TIME), Ok(())),
        (w(None, na), at(0), Ok(())),
        (w(None, na), at(NOW + 9), Ok(())),
        (w(None, na), at(NOW + 10), Err(after)),
        (w(None, na), at(u64::MAX), Err(after)),
    ]);
}

#[test]
fn windows_contain_the_same_seconds_they_allow() {
    let rows = [
        (Some(10), Some(20), 9, false),
        (Some(10), Some(20), 10, true),
        (Some(10), Some(20), 19, true),
        (Some(10), Some(20), 20, false),
        (Some(10), None, 9, false),
        (Some(10), None, 10, true),
        (Some(10), None, u64::MAX, true),
        (None, Some(20), 0, true),
        (None, Some(20), 19, true),
        (None, Some(20), 20, false),
    ];
    for (nb, na, now, want) in rows {
        let window = ValidityWindow::new(nb, na).unwrap();
        assert_eq!(window.contains(now), want, "{nb:?}..{na:?} at {now}");
        assert_eq!((window.not_before(), window.not_after()), (nb, na));
    }
}

#[test]
fn windows_need_a_bound_in_range_and_a_start_before_their_end() {
    let rows = [
        (None, None, false),
        (Some(0), None, true),
        (None, Some(0), true),
        (Some(5), Some(6), true),
        (Some(5), Some(5), false),
        (Some(6), Some(5), false),
        (Some(MAX_TIME), None, true),
        (Some(MAX_TIME + 1), None, false),
        (None, Some(MAX_TIME), true),
        (None, Some(MAX_TIME + 1), false),
        (Some(1), Some(MAX_TIME), true),
        (Some(1), Some(MAX_TIME + 1), false),
        (Some(MAX_TIME - 1), Some(MAX_TIME), true),
    ];
    for (nb, na, ok) in rows {
        assert_eq!(ValidityWindow::new(nb, na).is_ok(), ok, "{nb:?}..{na:?}");
        assert_eq!(Caveat::validity(nb, na).is_ok(), ok, "{nb:?}..{na:?}");
    }
}

#[test]
fn expiry_is_the_end_of_a_window_and_is_clamped_to_the_last_second() {
    let rows = [
        (w(Some(10), Some(20)), Some(20)),
        (w(None, Some(20)), Some(20)),
        (w(Some(10), None), None),
        (Caveat::expires(5), Some(5)),
        (Caveat::expires(MAX_TIME), Some(MAX_TIME)),
        (Caveat::expires(MAX_TIME + 1), Some(MAX_TIME)),
        (Caveat::expires(u64::MAX), Some(MAX_TIME)),
        (c("org = acme"), None),
        (c("actions = r"), None),
    ];
    for (caveat, want) in rows {
        assert_eq!(caveat.not_after(), want, "{caveat}");
    }
}

#[test]
fn secret_caveats_check_the_name_and_deny_requests_about_no_secret() {
    let about = |secret| Access { secret, ..access() };
    checks(&[
        (c("secret = DB_URL"), access(), Ok(())),
        (c("secret = DB_*"), access(), Ok(())),
        (c("secret = *"), access(), Ok(())),
        (c("secret = API,DB_URL"), access(), Ok(())),
        (
            c("secret = DB_UR"),
            access(),
            Err("does not allow secret \"DB_URL\""),
        ),
        (
            c("secret = DB_URLS"),
            access(),
            Err("does not allow secret \"DB_URL\""),
        ),
        (
            c("secret = DB_URL_*"),
            access(),
            Err("does not allow secret \"DB_URL\""),
        ),
        (
            c("secret = API*"),
            access(),
            Err("does not allow secret \"DB_URL\""),
        ),
        (c("secret = API"), about(SecretTarget::Listing), Ok(())),
        (
            c("secret = *"),
            about(SecretTarget::None),
            Err("allows only requests about secrets"),
        ),
    ]);
}

#[test]
fn pattern_matching_is_exact_or_by_prefix() {
    let rows = [
        ("DB_URL", "DB_URL", true),
        ("DB_URL", "DB_URLX", false),
        ("DB_URL", "DB_UR", false),
        ("DB_*", "DB_URL", true),
        ("DB_*", "DB_", true),
        ("DB_*", "DB", false),
        ("DB_*", "XDB_URL", false),
        ("*", "ANY", true),
    ];
    for (pattern, name, want) in rows {
        assert_eq!(pattern_matches(pattern, name), want, "{pattern} ~ {name}");
        let patterns = SecretPatterns::parse(pattern).unwrap();
        assert_eq!(patterns.matches(name), want, "{pattern} ~ {name}");
    }
    let list = SecretPatterns::parse("API,DB_*").unwrap();
    assert_eq!(list.iter().collect::<Vec<_>>(), ["API", "DB_*"]);
    assert_eq!(
        [
            list.matches("API"),
            list.matches("DB_X"),
            list.matches("APIX")
        ],
        [true, true, false]
    );
}

#[test]
fn source_ip_checks_the_address_with_mapped_ipv4_as_ipv4() {
    let from = |s: &str| access().from(Some(ip(s)));
    let list = c("ip = 10.0.0.0/8,2001:db8::/32");
    checks(&[
        (list.clone(), from("10.0.0.0"), Ok(())),
        (list.clone(), from("10.255.255.255"), Ok(())),
        (list.clone(), from("::ffff:10.9.9.9"), Ok(())),
        (list.clone(), from("2001:db8:ffff::1"), Ok(())),
        (
            list.clone(),
            from("9.255.255.255"),
            Err("does not allow requests from 9.255.255.255"),
        ),
        (
            list.clone(),
            from("11.0.0.0"),
            Err("does not allow requests from 11.0.0.0"),
        ),
        (
            list.clone(),
            from("::ffff:11.0.0.1"),
            Err("does not allow requests from ::ffff:11.0.0.1"),
        ),
        (
            list.clone(),
            from("2001:db9::"),
            Err("does not allow requests from 2001:db9::"),
        ),
        (
            list.clone(),
            from("::a00:1"),
            Err("does not allow requests from ::a00:1"),
        ),
        (
            list,
            access().from(None),
            Err("does not allow requests from an unknown address"),
        ),
        // An IPv6 network never matches a mapped IPv4 address (it is matched as IPv4).
        (
            c("ip = ::ffff:0.0.0.0/96"),
            from("::ffff:10.0.0.1"),
            Err("does not allow requests from ::ffff:10.0.0.1"),
        ),
    ]);
    let nets = Networks::parse("10.0.0.0/8,2001:db8::/32").unwrap();
    assert_eq!(
        nets.iter().collect::<Vec<_>>(),
        [net("10.0.0.0/8"), net("2001:db8::/32")]
    );
    assert!(nets.contains(ip("::ffff:10.0.0.1")));
    assert!(!nets.contains(ip("11.0.0.1")));
}

#[test]
fn evaluation_is_a_conjunction_that_names_the_first_denial() {
    let rows: [(&[&str], Option<usize>); 7] = [
        (&[], None),
        (&["org = acme"], None),
        (&["org = beta"], Some(1)),
        (&["org = acme", "actions = rw"], None),
        (&["org = acme", "actions = r"], Some(2)),
        (&["org = acme", "actions = r", "org = beta"], Some(2)),
        (&["org = acme", "actions = rw", "frob = 1"], Some(3)),
    ];
    for (list, want) in rows {
        let got = evaluate(list.iter().map(|p| p.as_bytes()), &access());
        assert_eq!(
            got.as_ref().err().map(|d| d.index),
            want,
            "{list:?}: {got:?}"
        );
        if let Err(denial) = got {
            assert_eq!(denial.caveat, list[denial.index - 1], "{list:?}");
        }
    }
    let denial = c("actions = r").check_at(7, &access()).unwrap_err();
    assert_eq!(
        (denial.index, denial.caveat.as_str(), denial.reason.as_str()),
        (7, "actions = r", "does not allow write")
    );
    assert_eq!(c("actions = w").check_at(7, &access()), Ok(()));
}

// ---- text bounds and canonical form -------------------------------------------------------

#[test]
fn names_are_lower_case_alphanumerics_and_dashes_up_to_63() {
    let rows = [
        ("", false),
        ("a", true),
        ("0", true),
        ("a-", true),
        ("a-0", true),
        ("-a", false),
        ("A", false),
        ("a_b", false),
        ("a.b", false),
        ("é", false),
        (&"a".repeat(63), true),
        (&"a".repeat(64), false),
    ];
    for (name, ok) in rows {
        assert_eq!(is_valid_name(name), ok, "{name:?}");
        assert_eq!(Name::parse(name).is_ok(), ok, "{name:?}");
        assert_eq!(Caveat::org(name).is_ok(), ok, "{name:?}");
    }
    assert_eq!(Name::parse("acme").unwrap().as_str(), "acme");
}

#[test]
fn secret_names_and_patterns_have_their_alphabet_and_length() {
    let rows = [
        ("", false, false),
        ("A", true, true),
        ("a.B-c_9", true, true),
        ("a b", false, false),
        ("a/b", false, false),
        ("*", false, true),
        ("A*", false, true),
        ("A**", false, false),
        ("*A", false, false),
        ("A*B", false, false),
        (&"A".repeat(128), true, true),
        (&"A".repeat(129), false, false),
        (&format!("{}*", "A".repeat(128)), false, true),
        (&format!("{}*", "A".repeat(129)), false, false),
    ];
    for (text, name_ok, pattern_ok) in rows {
        assert_eq!(is_valid_secret_name(text), name_ok, "name {text:?}");
        assert_eq!(
            SecretPatterns::parse(text).is_ok(),
            pattern_ok,
            "pattern {text:?}"
        );
    }
}

#[test]
fn lists_hold_at_most_their_item_count() {
    let apps = |n: usize| {
        (0..n)
            .map(|i| format!("a{i:03}:r"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let secrets = |n: usize| {
        (0..n)
            .map(|i| format!("S{i:03}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let nets = |n: usize| {
        (0..n)
            .map(|i| format!("10.0.{i}.0/24"))
            .collect::<Vec<_>>()
            .join(",")
    };
    assert!(AppActions::parse(&apps(MAX_ITEMS)).is_ok());
    assert!(AppActions::parse(&apps(MAX_ITEMS + 1)).is_err());
    assert!(SecretPatterns::parse(&secrets(MAX_ITEMS)).is_ok());
    assert!(SecretPatterns::parse(&secrets(MAX_ITEMS + 1)).is_err());
    assert!(Networks::parse(&nets(MAX_NETWORKS)).is_ok());
    assert!(Networks::parse(&nets(MAX_NETWORKS + 1)).is_err());
    assert_eq!(
        Networks::parse(&nets(MAX_NETWORKS)).unwrap().iter().count(),
        MAX_NETWORKS
    );
}

#[test]
fn lists_are_sorted_without_repeats() {
    let rows: [(&str, bool); 15] = [
        ("app = api:r,web:r", true),
        ("app = web:r,api:r", false),
        ("app = web:r,web:w", false),
        ("app = web:r,web-1:r", true),
        ("app = web-1:r,web:r", false),
        ("secret = A,B", true),
        ("secret = B,A", false),
        ("secret = A,A", false),
        ("secret = A,A*", true),
        ("secret = A*,A", false),
        ("ip = 10.0.0.0/8,10.0.0.0/16", true),
        ("ip = 10.0.0.0/16,10.0.0.0/8", false),
        ("ip = 10.0.0.0/8,10.0.0.0/8", false),
        ("ip = 10.0.0.0/8,::/0", true),
        ("ip = ::/0,10.0.0.0/8", false),
    ];
    for (text, ok) in rows {
        assert_eq!(Caveat::parse(text).is_ok(), ok, "{text}");
    }
}

#[test]
fn app_lists_answer_each_app_by_exact_name() {
    let apps = AppActions::parse("api:r,web:rw").unwrap();
    let rw = ActionSet::from(Action::Read).with(Action::Write);
    assert_eq!(
        apps.iter().collect::<Vec<_>>(),
        [("api", ActionSet::from(Action::Read)), ("web", rw)]
    );
    let rows = [
        ("api", Some(ActionSet::from(Action::Read))),
        ("web", Some(rw)),
        ("we", None),
        ("webs", None),
        ("db", None),
    ];
    for (app, want) in rows {
        assert_eq!(apps.get(app), want, "{app}");
    }
    assert_eq!(apps.as_str(), "api:r,web:rw");
}

#[test]
fn caveat_text_is_at_most_max_text_bytes() {
    // "secret = " and patterns of 127 bytes with commas between, cut to length exactly.
    let text_of = |len: usize| {
        let mut text = String::from("secret = ");
        let mut i = 0;
        while text.len() < len {
            if i > 0 {
                text.push(',');
            }
            let room = (len - text.len()).min(127);
            let pattern = format!("P{i:02}{}", "X".repeat(127));
            text.push_str(&pattern[..room.max(4)]);
            i += 1;
        }
        text
    };
    let exact = text_of(MAX_TEXT);
    assert_eq!(exact.len(), MAX_TEXT);
    let longer = format!("{exact}X");
    let rows = [(exact.as_str(), true), (longer.as_str(), false)];
    for (text, ok) in rows {
        assert_eq!(Caveat::parse(text).is_ok(), ok, "{} bytes", text.len());
        assert_eq!(
            Caveat::parse_bytes(text.as_bytes()).is_ok(),
            ok,
            "{} bytes",
            text.len()
        );
    }
}

#[test]
fn display_writes_the_canonical_text_of_each_kind() {
    let rows = [
        (w(Some(0), None), "not-before >= 1970-01-01T00:00:00Z"),
        (w(None, Some(60)), "expires < 1970-01-01T00:01:00Z"),
        (
            w(Some(0), Some(60)),
            "valid 1970-01-01T00:00:00Z .. 1970-01-01T00:01:00Z",
        ),
        (c("org = acme"), "org = acme"),
        (c("app = web:rw"), "app = web:rw"),
        (c("actions = rv"), "actions = rv"),
        (c("secret = A,B*"), "secret = A,B*"),
        (c("resource = apps,secrets"), "resource = apps,secrets"),
        (c("ip = 10.0.0.0/8"), "ip = 10.0.0.0/8"),
    ];
    for (caveat, text) in rows {
        assert_eq!(caveat.to_string(), text);
        assert_eq!(Caveat::parse(text).unwrap(), caveat, "{text}");
    }
}

#[test]
fn constructors_merge_sort_and_refuse_empty_sets() {
    let r = ActionSet::from(Action::Read);
    let w_ = ActionSet::from(Action::Write);
    let rows: [(Result<Caveat<'static>, _>, Option<&str>); 10] = [
        (
            Caveat::apps([("web", r), ("web", w_)]),
            Some("app = web:rw"),
        ),
        (
            Caveat::apps([("web", r), ("api", w_)]),
            Some("app = api:w,web:r"),
        ),
        (Caveat::apps([("web", ActionSet::NONE)]), None),
        (Caveat::actions(r), Some("actions = r")),
        (Caveat::actions(ActionSet::NONE), None),
        (
            Caveat::resources(Resource::Keys.into()),
            Some("resource = keys"),
        ),
        (Caveat::resources(macvault_caveats::ResourceSet::NONE), None),
        (Caveat::secrets(["B", "A*", "B"]), Some("secret = A*,B")),
        (
            Caveat::source_ip([net("::/0"), net("10.0.0.0/8"), net("::/0")]),
            Some("ip = 10.0.0.0/8,::/0"),
        ),
        (Caveat::source_ip([]), None),
    ];
    for (built, want) in rows {
        assert_eq!(
            built.as_ref().ok().map(ToString::to_string).as_deref(),
            want,
            "{built:?}"
        );
    }
}

// ---- networks -----------------------------------------------------------------------------

#[test]
fn networks_need_a_prefix_within_the_address_and_no_host_bits() {
    let rows = [
        ("0.0.0.0", 0, true),
        ("10.0.0.0", 8, true),
        ("10.0.0.0", 7, true),
        ("11.0.0.0", 7, false),
        ("11.0.0.0", 8, true),
        ("10.128.0.0", 9, true),
        ("10.128.0.0", 8, false),
        ("1.2.3.4", 32, true),
        ("1.2.3.4", 31, true),
        ("1.2.3.5", 31, false),
        ("1.2.3.5", 32, true),
        ("1.2.3.0", 33, false),
        ("::", 0, true),
        ("::1", 128, true),
        ("::1", 127, false),
        ("::", 129, false),
        ("2001:db8::", 32, true),
        ("2001:db8::", 28, false),
        ("2001:db8::", 29, true),
        ("2001:db8::", 20, false),
        // The top bit of an IPv6 address is a network bit like any other.
        ("8000::", 1, true),
        ("ff00::", 8, true),
        ("fe00::", 7, true),
        ("ff00::", 7, false),
        ("ff00::", 6, false),
    ];
    for (addr, prefix, ok) in rows {
        let made = IpNet::new(ip(addr), prefix);
        assert_eq!(made.is_ok(), ok, "{addr}/{prefix}");
        if let Ok(made) = made {
            assert_eq!((made.addr(), made.prefix()), (ip(addr), prefix));
            assert_eq!(made.to_string(), format!("{addr}/{prefix}"));
            assert_eq!(made.to_string().parse::<IpNet>(), Ok(made));
        }
    }
}

#[test]
fn a_network_contains_the_addresses_under_its_prefix_in_its_family() {
    let rows = [
        ("10.0.0.0/8", "10.0.0.0", true),
        ("10.0.0.0/8", "10.255.255.255", true),
        ("10.0.0.0/8", "9.255.255.255", false),
        ("10.0.0.0/8", "11.0.0.0", false),
        ("10.0.0.0/8", "::a00:0", false),
        ("10.128.0.0/9", "10.128.0.1", true),
        ("10.128.0.0/9", "10.127.255.255", false),
        ("1.2.3.4/32", "1.2.3.4", true),
        ("1.2.3.4/32", "1.2.3.5", false),
        ("0.0.0.0/0", "255.255.255.255", true),
        ("0.0.0.0/0", "::", false),
        ("::/0", "ffff::1", true),
        ("::/0", "0.0.0.0", false),
        (
            "2001:db8::/32",
            "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
            true,
        ),
        ("2001:db8::/32", "2001:db9::", false),
        ("2001:db8::/32", "2001:db7:ffff::", false),
        ("8000::/1", "ffff::1", true),
        ("8000::/1", "7fff::1", false),
        ("ff00::/8", "ff02::1", true),
        ("ff00::/8", "fe80::1", false),
        ("::1/128", "::1", true),
        ("::1/128", "::2", false),
    ];
    for (network, addr, want) in rows {
        assert_eq!(net(network).contains(ip(addr)), want, "{network} ∋ {addr}");
    }
}

#[test]
fn network_text_is_canonical_only() {
    let rows = [
        ("10.0.0.0/8", true),
        ("0.0.0.0/0", true),
        ("::/0", true),
        ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", true),
        ("::ffff:255.255.255.255/128", true),
        ("10.0.0.0/08", false),
        ("10.0.0.0/00", false),
        ("10.0.0.0/", false),
        ("10.0.0.0", false),
        ("/8", false),
        ("10.0.0.0/8/8", false),
        ("10.0.0.0/+8", false),
        ("10.0.0.0/-8", false),
        ("::/0128", false),
        ("::/1280", false),
        ("010.0.0.0/8", false),
        ("2001:DB8::/32", false),
        ("2001:0db8::/32", false),
        ("::FFFF:1.2.3.4/128", false),
    ];
    for (text, ok) in rows {
        let parsed = text.parse::<IpNet>();
        assert_eq!(parsed.is_ok(), ok, "{text}: {parsed:?}");
        if let Ok(n) = parsed {
            assert_eq!(n.to_string(), text);
        }
    }
}

// ---- the access model ---------------------------------------------------------------------

#[test]
fn access_builders_set_one_field_each() {
    let base = Access::new("acme", Resource::Secrets, Action::Read, 7);
    assert_eq!(
        (
            base.org,
            base.app,
            base.resource,
            base.action,
            base.secret,
            base.now,
            base.source_ip
        ),
        (
            "acme",
            None,
            Resource::Secrets,
            Action::Read,
            SecretTarget::None,
            7,
            None
        )
    );
    assert_eq!(
        base.app(Some("web")),
        Access {
            app: Some("web"),
            ..base
        }
    );
    assert_eq!(
        base.secret("A"),
        Access {
            secret: SecretTarget::One("A"),
            ..base
        }
    );
    assert_eq!(
        base.listing(),
        Access {
            secret: SecretTarget::Listing,
            ..base
        }
    );
    let from = Some(ip("10.0.0.1"));
    assert_eq!(
        base.from(from),
        Access {
            source_ip: from,
            ..base
        }
    );
}

#[test]
fn an_access_spec_says_what_the_access_is_about() {
    let rows = [
        (
            r#"{"org":"acme","resource":"orgs","action":"read"}"#,
            Some(SecretTarget::None),
        ),
        (
            r#"{"org":"acme","app":"web","resource":"secrets","action":"read","secret":"A"}"#,
            Some(SecretTarget::One("A")),
        ),
        (
            r#"{"org":"acme","resource":"secrets","action":"read","listing":true}"#,
            Some(SecretTarget::Listing),
        ),
        (
            r#"{"org":"acme","resource":"secrets","action":"read","listing":false}"#,
            Some(SecretTarget::None),
        ),
        (
            r#"{"org":"acme","resource":"tokens","action":"read","secret":"A"}"#,
            None,
        ),
        (
            r#"{"org":"acme","resource":"tokens","action":"read","listing":true}"#,
            None,
        ),
        (
            r#"{"org":"acme","resource":"secrets","action":"read","secret":"A","listing":true}"#,
            None,
        ),
        (r#"{"org":"Acme","resource":"orgs","action":"read"}"#, None),
        (
            r#"{"org":"acme","app":"-web","resource":"apps","action":"read"}"#,
            None,
        ),
        (
            r#"{"org":"acme","resource":"secrets","action":"read","secret":"a b"}"#,
            None,
        ),
        (
            r#"{"org":"acme","resource":"orgs","action":"read","extra":1}"#,
            None,
        ),
    ];
    for (json, want) in rows {
        let spec = serde_json::from_str::<AccessSpec>(json);
        let got = spec.as_ref().ok().map(|s| s.access(9, Some(ip("::1"))));
        assert_eq!(got.map(|a| a.secret), want, "{json}: {spec:?}");
        if let Some(a) = got {
            assert_eq!(
                (a.org, a.now, a.source_ip),
                ("acme", 9, Some(ip("::1"))),
                "{json}"
            );
        }
    }
}
