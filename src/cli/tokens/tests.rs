//! What the CLI prints, as snapshots at 100 columns: fixed records and a fixed "now", so
//! every run renders the same text. `cargo insta review` after a deliberate change.

use super::*;
use crate::api::{AuditEventBody, ErrorBody, ErrorDetail, LastUsedBody};
use crate::caveats::format_time;
use crate::cli::audit;
use crate::cli::offline::render_inspection;

/// 2026-12-02T12:00:00Z.
const NOW: u64 = 1_796_212_800;

fn record(
    n: u8,
    name: &str,
    kind: &str,
    app: Option<&str>,
    status: &str,
    expires_in: i64,
) -> TokenRecordBody {
    let id: String = format!("{n:02x}").repeat(16);
    TokenRecordBody {
        id,
        org: "acme".into(),
        name: name.into(),
        kind: kind.into(),
        app: app.map(str::to_owned),
        caveats: vec![
            "org = acme".into(),
            "app = web:rwcdx".into(),
            "expires < 2027-03-02T12:00:00Z".into(),
        ],
        key_version: 1,
        created: format_time(NOW - 86_400 * 3),
        creator: Some("ab".repeat(16)),
        parent: Some("ab".repeat(16)),
        expires: format_time(NOW.saturating_add_signed(expires_in)),
        fingerprint: "0123456789ab".into(),
        revoked: (status == "revoked").then(|| format_time(NOW - 3600)),
        status: status.into(),
        last_used: n.is_multiple_of(2).then(|| LastUsedBody {
            time: format_time(NOW - 17),
            ip: Some("10.1.2.3".into()),
            user_agent: Some("macvault-cli/0.1.0".into()),
        }),
    }
}

fn ledger() -> Vec<TokenRecordBody> {
    vec![
        record(1, "org", "org", None, "active", 88 * 86_400),
        record(
            2,
            "ci-deploy-for-the-web-frontend-with-a-long-descriptive-name",
            "deploy",
            Some("web"),
            "active",
            3 * 86_400,
        ),
        record(3, "dash", "readonly", None, "revoked", 20 * 86_400),
        record(4, "web-runtime", "runtime", Some("web"), "expired", -600),
        record(5, "old-admin", "org", None, "key_retired", 40 * 86_400),
    ]
}

/// At 100 columns the short names fit; a name longer than the room is shown whole all
/// the same (names and ids are never cut: only flexible columns are).
#[test]
fn tokens_list_at_100_columns() {
    let list = ledger();
    let refs: Vec<&TokenRecordBody> = list.iter().collect();
    let text = list_table(&refs, NOW, false).render(100);
    for r in &list {
        assert!(text.contains(&r.name), "{} cut:\n{text}", r.name);
    }
    let short: Vec<&TokenRecordBody> = list.iter().filter(|r| r.name.len() < 20).collect();
    let fits = list_table(&short, NOW, false).render(100);
    assert!(
        fits.lines()
            .all(|l| unicode_width::UnicodeWidthStr::width(l) <= 100),
        "{fits}"
    );
    insta::assert_snapshot!(text);
}

#[test]
fn tokens_list_fits_80_columns_without_cutting_a_name() {
    let list = ledger();
    let refs: Vec<&TokenRecordBody> = list.iter().collect();
    let text = list_table(&refs, NOW, false).render(80);
    for r in &list {
        assert!(text.contains(&r.name), "{} cut:\n{text}", r.name);
    }
    insta::assert_snapshot!(text);
}

#[test]
fn tokens_show_with_lineage() {
    let ledger = ledger();
    let detail = TokenDetailBody {
        record: ledger[1].clone(),
        ancestors: vec![ledger[0].clone()],
        children: vec![ledger[3].clone()],
        third_parties: vec![crate::api::RequirementBody {
            third_party: "gha".into(),
            conditions: vec![
                "claim repository_id = 42".into(),
                "max-validity = 10m".into(),
            ],
        }],
    };
    insta::assert_snapshot!(render_show(&detail, NOW));
}

#[test]
fn audit_fits_100_columns() {
    let event =
        |n: u64, action: &str, outcome: &str, name: Option<&str>, detail: &str| AuditEventBody {
            seq: n,
            time: format_time(NOW - 60 * (10 - n)),
            org: "acme".into(),
            action: action.into(),
            actor: Some("02".repeat(16)),
            actor_name: name.map(str::to_owned),
            source_ip: Some("127.0.0.1".into()),
            outcome: outcome.into(),
            detail: detail.into(),
            count: 1,
            last_time: None,
        };
    let mut events = [
        event(
            1,
            "token.mint",
            "ok",
            Some("org"),
            "deploy token \"ci\" (0202…) for app web, expires 2027-03-02T12:00:00Z",
        ),
        event(
            2,
            "request.denied",
            "denied",
            Some("ci"),
            "caveat 2 (app = web:rwcdx) does not allow reveal on app \"web\"",
        ),
        event(
            3,
            "token.revoke",
            "ok",
            None,
            "deploy token \"ci\" (0202…) revoked",
        ),
    ];
    // Aggregated denials say how many and when the last was.
    events[1].count = 1000;
    events[1].last_time = Some(format_time(NOW - 30));
    let refs: Vec<&AuditEventBody> = events.iter().collect();
    let text = audit::table(&refs, NOW).render(100);
    assert!(
        text.lines()
            .all(|l| unicode_width::UnicodeWidthStr::width(l) <= 100),
        "{text}"
    );
    insta::assert_snapshot!(text);
}

#[test]
fn inspect_says_when_it_expires() {
    use crate::token::{Bundle, Macaroon, TokenId, TokenIdentifier};
    let id = TokenIdentifier {
        org: "acme".into(),
        key_version: 2,
        token_id: TokenId([0x5a; 16]),
    };
    let mut m = Macaroon::mint(&[9; 32], id.encode().unwrap().as_bytes(), None);
    for c in ["org = acme", "app = web:rwcdx"] {
        m.add_first_party(c.as_bytes());
    }
    let expiry = format!("expires < {}", format_time(NOW + 6 * 86_400 + 23 * 3600));
    m.add_first_party(expiry.as_bytes());
    let text = Bundle::single(m).to_text();
    let seen = crate::token::inspect(&text).unwrap();
    let shown = render_inspection(&seen, NOW);
    assert!(
        shown.contains("expires      in 6d 23h (2026-12-09T11:00:00Z)"),
        "{shown}"
    );
    insta::assert_snapshot!("inspect_soon", shown);
    let later = render_inspection(&seen, NOW + 7 * 86_400 + 3);
    assert!(later.contains("EXPIRED 1h ago"), "{later}");
}

#[test]
fn main_error_messages() {
    let api = |status: u16, code: &str, message: &str, denial: Option<crate::api::DenialBody>| {
        ApiError {
            status: StatusCode::from_u16(status).unwrap(),
            body: Some(ErrorBody {
                error: ErrorDetail {
                    code: code.into(),
                    message: message.into(),
                },
                denial,
                conflict: None,
            }),
        }
        .to_string()
    };
    let denial = |index: usize, caveat: &str, reason: &str| {
        Some(crate::api::DenialBody {
            index,
            caveat: caveat.into(),
            reason: reason.into(),
        })
    };
    let lines = [
        api(401, "expired", "token not accepted: expired", None),
        api(
            403,
            "denied",
            "",
            denial(
                0,
                "the token's org (acme)",
                "this token is for org \"acme\", not \"acm\"",
            ),
        ),
        api(
            403,
            "denied",
            "",
            denial(2, "app = web:rwcdx", "does not allow reveal on app \"web\""),
        ),
        api(
            409,
            "ambiguous",
            "the id prefix is ambiguous: 020202020202 (\"ci\"), 020202020299 (\"web\"); give more digits",
            None,
        ),
        api(
            503,
            "stale",
            "this node has not caught up with revocations and keys for 31 s (more than --max-staleness); try another node or retry shortly",
            None,
        ),
        crate::cli::client::parse_url("vault.example.com")
            .unwrap_err()
            .to_string(),
        crate::cli::input::parse_action("peek").unwrap_err(),
        crate::cli::input::parse_resource("files").unwrap_err(),
    ];
    insta::assert_snapshot!(lines.join("\n"));
}
