//! The audit log cannot be buried: a token's denials of one kind in one window are one
//! event with a count; every event stays reachable through the cursors; a follow waits
//! for new events and ends when its token is revoked or the node drains.

use super::*;
use crate::audit::action;
use crate::model::AuditEvent;

/// A fixed clock at a time the tokens are valid.
const T0: u64 = 2_000_000_000;

async fn fixture() -> (tempfile::TempDir, Arc<Authority>, String) {
    let (d, a, op) = open().await;
    a.set_clock(T0);
    let org = org_token(&a, &op, "acme").await;
    (d, a, org)
}

/// A readonly token, and what it takes to have it denied once (a key rotation).
async fn denied_once(a: &Authority, p: &Principal) {
    let denied = a.rotate_key(p, "acme").await;
    assert!(matches!(denied, Err(KeyError::Denied(_))), "{denied:?}");
}

async fn newest(a: &Authority, org: &str, limit: usize) -> AuditPage {
    let p = who(a, org).await;
    a.audit(&p, "acme", limit, None, AuditFilter::default())
        .await
        .unwrap()
}

/// A follow of acme's log from `newer`, waiting in a task of its own.
fn spawn_follow(
    a: &Arc<Authority>,
    who: Principal,
    newer: String,
    filter: AuditFilter,
) -> tokio::task::JoinHandle<Result<AuditPage, AuditError>> {
    let a = a.clone();
    tokio::spawn(async move { a.follow_audit(&who, "acme", 10, &newer, filter).await })
}

fn denials(page: &AuditPage) -> Vec<&AuditEvent> {
    page.events
        .iter()
        .filter(|e| e.action == action::REQUEST_DENIED)
        .collect()
}

#[tokio::test]
async fn a_thousand_denials_are_one_event_and_bury_nothing() {
    let (_d, a, org) = fixture().await;
    let victim = mint_by(&a, &org, TokenKind::Deploy, Some("web"), None).await;
    let id = victim.record.id.to_string();
    a.revoke(&who(&a, &org).await, &id, RevokeOptions::default())
        .await
        .unwrap();
    let ro = mint_by(&a, &org, TokenKind::Readonly, None, None).await;
    let ro = who(&a, ro.token.expose()).await;
    for i in 0..1000 {
        // Spread over the window, flushed now and then: one event all the same.
        a.set_clock(T0 + i * 59 / 999);
        denied_once(&a, &ro).await;
        if i % 100 == 0 {
            a.flush().await.unwrap();
        }
    }
    let page = newest(&a, &org, 1000).await;
    let denied = denials(&page);
    assert_eq!(denied.len(), 1, "{:?}", page.events);
    assert_eq!(
        (denied[0].count, denied[0].time, denied[0].last),
        (1000, T0, T0 + 59)
    );
    assert!(
        page.events
            .iter()
            .any(|e| e.action == action::TOKEN_REVOKE && e.detail.contains(&id)),
        "the revocation is on the first page"
    );
}

#[tokio::test]
async fn a_kind_of_denial_opens_a_new_event_once_its_window_ends() {
    let (_d, a, org) = fixture().await;
    let ro = mint_by(&a, &org, TokenKind::Readonly, None, None).await;
    let ro = who(&a, ro.token.expose()).await;
    for at in [T0, T0 + 59, T0 + 60, T0 + 61] {
        a.set_clock(at);
        denied_once(&a, &ro).await;
    }
    let page = newest(&a, &org, 100).await;
    let got: Vec<_> = denials(&page)
        .iter()
        .map(|e| (e.count, e.time, e.last))
        .collect();
    assert_eq!(got, [(2, T0, T0 + 59), (2, T0 + 60, T0 + 61)]);
}

#[tokio::test]
async fn every_event_is_reachable_through_the_cursors() {
    let (_d, a, org) = fixture().await;
    let ro = mint_by(&a, &org, TokenKind::Readonly, None, None).await;
    let ro_p = who(&a, ro.token.expose()).await;
    for i in 0..5 {
        mint_by(&a, &org, TokenKind::Readonly, None, None).await;
        a.set_clock(T0 + 100 * i);
        denied_once(&a, &ro_p).await;
        denied_once(&a, &ro_p).await;
    }
    a.flush().await.unwrap();
    let all: Vec<u64> = a
        .store()
        .read(|r| r.audit_after("acme", 0, 1000))
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    let p = who(&a, &org).await;
    // Back from the newest, one event a page.
    let mut back = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let filter = AuditFilter::default();
        let page = a
            .audit(&p, "acme", 1, before.as_deref(), filter)
            .await
            .unwrap();
        back.extend(page.events.iter().map(|e| e.seq));
        match page.older {
            Some(c) => before = Some(c),
            None => break,
        }
    }
    back.reverse();
    assert_eq!(back, all);
    // Forward from the start, two events an answer.
    let mut forward = Vec::new();
    let mut after = super::super::audit::encode_cursor(0);
    while forward.len() < all.len() {
        let page = a
            .follow_audit(&p, "acme", 2, &after, AuditFilter::default())
            .await
            .unwrap();
        forward.extend(page.events.iter().map(|e| e.seq));
        after = page.newer.unwrap();
    }
    assert_eq!(forward, all);
    assert!(all.len() >= 5 + 5 + 2, "{all:?}");
}

#[tokio::test]
async fn a_follow_answers_the_next_event_written() {
    let (_d, a, org) = fixture().await;
    let p = who(&a, &org).await;
    let newer = newest(&a, &org, 10).await.newer.unwrap();
    let follow = spawn_follow(&a, p, newer, AuditFilter::default());
    let minted = mint_by(&a, &org, TokenKind::Readonly, None, None).await;
    let page = follow.await.unwrap().unwrap();
    assert_eq!(page.events.len(), 1, "{:?}", page.events);
    assert_eq!(page.events[0].action, action::TOKEN_MINT);
    assert!(
        page.events[0]
            .detail
            .contains(&minted.record.id.to_string())
    );
}

#[tokio::test]
async fn a_follow_ends_when_its_token_is_revoked() {
    let (_d, a, org) = fixture().await;
    let watcher = mint_by(&a, &org, TokenKind::Org, None, None).await;
    let w = who(&a, watcher.token.expose()).await;
    let newer = newest(&a, &org, 10).await.newer.unwrap();
    // Only secret writes: the revocation's own event does not end the wait.
    let filter = AuditFilter {
        action: Some(action::SECRET_SET.into()),
        ..AuditFilter::default()
    };
    let follow = spawn_follow(&a, w, newer, filter);
    let id = watcher.record.id.to_string();
    a.revoke(&who(&a, &org).await, &id, RevokeOptions::default())
        .await
        .unwrap();
    let ended = follow.await.unwrap();
    assert!(matches!(ended, Err(AuditError::Auth(_))), "{ended:?}");
}

#[tokio::test]
async fn a_follow_ends_when_the_node_drains() {
    let (_d, a, org) = fixture().await;
    let p = who(&a, &org).await;
    let newer = newest(&a, &org, 10).await.newer.unwrap();
    let follow = spawn_follow(&a, p, newer, AuditFilter::default());
    a.begin_drain();
    let ended = follow.await.unwrap();
    assert!(matches!(ended, Err(AuditError::Draining)), "{ended:?}");
}

#[tokio::test]
async fn a_follow_refuses_what_is_not_its_cursor() {
    let (_d, a, org) = fixture().await;
    let p = who(&a, &org).await;
    let bad = a
        .follow_audit(&p, "acme", 10, "not a cursor", AuditFilter::default())
        .await;
    assert!(matches!(bad, Err(AuditError::BadCursor)), "{bad:?}");
}

#[tokio::test]
async fn events_are_filtered_by_time() {
    let (_d, a, org) = fixture().await;
    for at in [T0 + 100, T0 + 200, T0 + 300] {
        a.set_clock(at);
        mint_by(&a, &org, TokenKind::Readonly, None, None).await;
    }
    let p = who(&a, &org).await;
    let times = |since: Option<u64>, until: Option<u64>| {
        let (a, p) = (a.clone(), &p);
        async move {
            let filter = AuditFilter {
                action: Some(action::TOKEN_MINT.into()),
                since,
                until,
                ..AuditFilter::default()
            };
            let page = a.audit(p, "acme", 100, None, filter).await.unwrap();
            page.events.iter().map(|e| e.time).collect::<Vec<_>>()
        }
    };
    assert_eq!(times(Some(T0 + 200), None).await, [T0 + 200, T0 + 300]);
    assert_eq!(times(None, Some(T0 + 200)).await, [T0, T0 + 100, T0 + 200]);
    assert_eq!(times(Some(T0 + 150), Some(T0 + 250)).await, [T0 + 200]);
}
