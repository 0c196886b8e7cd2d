//! Transactions are pure: a body run more than once (a retried serialization failure)
//! leaves the same state as a body run once, and memory changes only after commit.

use super::*;
use crate::store::Dump;
use crate::token::FailureClass;

/// Everything a store holds, without the parts that differ between two runs (ids,
/// times, wrapped keys): what each run did, not which random numbers it drew.
fn shape(d: &Dump) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    out.extend(d.orgs.iter().map(|o| {
        format!(
            "org {} key {} max {:?}",
            o.name, o.current_key, o.max_expiry_secs
        )
    }));
    out.extend(d.keys.iter().map(|k| {
        format!(
            "key {} v{} retired {}",
            k.org,
            k.version,
            k.retired.is_some()
        )
    }));
    out.extend(d.tokens.iter().map(|t| {
        format!(
            "token {} {} {} revoked {} root {}",
            t.record.org,
            t.record.kind,
            t.record.name,
            t.record.revoked.is_some(),
            t.record.parent.is_none()
        )
    }));
    out.push(format!("revocations {}", d.revocations.len()));
    out.extend(d.audit.iter().map(|e| {
        format!(
            "audit {} {} {} {}",
            e.org,
            e.seq,
            e.action,
            e.outcome.name()
        )
    }));
    out.sort();
    out
}

/// One scenario touching every kind of write; returns the store's contents after it.
async fn scenario(extra_runs: u32) -> Vec<String> {
    let (_d, a, op) = open().await;
    a.store.inject_retries(extra_runs);
    let org = org_token(&a, &op, "acme").await;
    let org_p = who(&a, &org).await;
    a.set_max_expiry(&org_p, "acme", Some(30 * 86400))
        .await
        .unwrap();
    let deploy = mint_by(&a, &org, TokenKind::Deploy, Some("web"), Some(3600)).await;
    let child = mint_by(
        &a,
        deploy.token.expose(),
        TokenKind::Deploy,
        Some("web"),
        Some(600),
    )
    .await;
    a.rotate_key(&org_p, "acme").await.unwrap();
    let fresh = a
        .mint(&org_p, "acme", &spec(TokenKind::Org, None, Some(600)))
        .await
        .unwrap();
    a.revoke(
        &org_p,
        &deploy.record.id.to_string(),
        RevokeOptions::default(),
    )
    .await
    .unwrap();
    // Memory followed each commit: both are refused, the org token is not.
    assert_eq!(
        refused(&a, deploy.token.expose()).await,
        FailureClass::Revoked
    );
    assert_eq!(
        refused(&a, child.token.expose()).await,
        FailureClass::Revoked
    );
    who(&a, &org).await;
    a.retire_key(&who(&a, fresh.token.expose()).await, "acme", 1, true)
        .await
        .unwrap();
    assert_eq!(refused(&a, &org).await, FailureClass::KeyRetired);
    who(&a, fresh.token.expose()).await;
    a.flush().await.unwrap();
    let dump = a.store.read(Dump::read).await.unwrap();
    shape(&dump)
}

#[tokio::test]
async fn a_write_run_twice_leaves_the_same_state_as_once() {
    let once = scenario(0).await;
    let thrice = scenario(2).await;
    assert!(once.iter().any(|l| l.contains("token.revoke")), "{once:#?}");
    assert_eq!(once, thrice);
}
