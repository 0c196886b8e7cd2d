//! The secrets tables as people see them, at 80 and 100 columns.

use super::{history_table, secret_table};
use crate::api::{HistoryBody, SecretBody};

/// 2026-12-02T00:00:00Z.
const NOW: u64 = 1_796_169_600;

fn secrets() -> Vec<SecretBody> {
    serde_json::from_value(serde_json::json!([
        {"name": "DATABASE_URL", "app": "web", "version": 4, "digest": "3f2a9c0d1e7b5a64",
         "updated": "2026-12-01T22:00:00Z",
         "description": "primary database, read-write; rotate with the runbook in docs/ops"},
        {"name": "LOG_LEVEL", "version": 1, "digest": "9e8d7c6b5a4f3e2d",
         "updated": "2026-11-02T00:00:00Z"},
        {"name": "STRIPE_SECRET_KEY_FOR_THE_CHECKOUT_SERVICE", "app": "web", "version": 12,
         "updated": "2026-12-01T23:59:00Z", "expires": "2026-12-20T00:00:00Z",
         "description": "the live key"},
        {"name": "OLD_TOKEN", "app": "web", "version": 2, "digest": "0011223344556677",
         "updated": "2026-10-01T00:00:00Z", "expires": "2026-11-01T00:00:00Z",
         "expired": true},
    ]))
    .unwrap()
}

fn history() -> HistoryBody {
    serde_json::from_value(serde_json::json!({
        "secret": {"name": "DATABASE_URL", "app": "web", "version": 4, "unset": true,
                   "updated": "2026-12-01T22:00:00Z"},
        "versions": [
            {"version": 1, "created": "2026-11-01T00:00:00Z", "created_by": "0a0a0a0a0a0a0a0a",
             "created_by_name": "admin", "digest": "1111111111111111"},
            {"version": 2, "created": "2026-11-15T00:00:00Z", "created_by": "0b0b0b0b0b0b0b0b",
             "created_by_name": "ci-deploy-for-the-web-frontend", "destroyed": true},
            {"version": 3, "created": "2026-11-20T00:00:00Z", "created_by": "0a0a0a0a0a0a0a0a",
             "rollback_of": 1, "digest": "1111111111111111"},
            {"version": 4, "created": "2026-12-01T12:00:00Z", "digest": "4444444444444444"},
        ],
    }))
    .unwrap()
}

fn widest(text: &str) -> usize {
    text.lines()
        .map(unicode_width::UnicodeWidthStr::width)
        .max()
        .unwrap_or(0)
}

#[test]
fn secrets_list_fits_100_and_80_columns_without_cutting_a_name() {
    let list = secrets();
    for width in [100, 80] {
        let text = secret_table(&list, NOW).render(width);
        for s in &list {
            assert!(text.contains(&s.name), "{} cut at {width}:\n{text}", s.name);
        }
        insta::assert_snapshot!(format!("secrets_list_{width}"), text);
    }
    // Without the one long name, the table fits by cutting descriptions.
    let short: Vec<SecretBody> = list.into_iter().filter(|s| s.name.len() < 20).collect();
    for width in [100, 80] {
        let text = secret_table(&short, NOW).render(width);
        assert!(widest(&text) <= width, "{text}");
        assert!(
            text.contains("DATABASE_URL") && text.contains('…'),
            "{text}"
        );
        insta::assert_snapshot!(format!("secrets_list_short_names_{width}"), text);
    }
}

#[test]
fn secrets_history_at_100_and_80_columns_shows_unset_destroyed_and_rollbacks() {
    let h = history();
    for width in [100, 80] {
        let text = history_table(&h, NOW).render(width);
        assert!(widest(&text) <= width, "{text}");
        for want in ["destroyed", "rollback to v1", "unset: no version"] {
            assert!(text.contains(want), "{want} at {width}:\n{text}");
        }
        insta::assert_snapshot!(format!("secrets_history_{width}"), text);
    }
}
