//! Lifecycle rules that need a clock or a race: garbage collection of what expired,
//! ledger retention, a mint racing its minter's revocation (on both backends), and the
//! last live org token.

use super::*;
use crate::token::FailureClass;

#[tokio::test]
async fn expired_revocations_are_collected_and_the_ledger_keeps_its_records() {
    let (_d, a, op) = open().await;
    let org = org_token(&a, &op, "acme").await;
    let t = mint_by(&a, &org, TokenKind::Readonly, None, Some(600)).await;
    a.revoke(
        &who(&a, &org).await,
        &t.record.id.to_string(),
        RevokeOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(a.deny_list_len(), 1);
    // Past the token's expiry its deny-list entry goes (memory and store); the ledger
    // keeps listing it, with its status, as no retention is set.
    a.set_clock(a.now() + 601);
    a.compact().await.unwrap();
    assert_eq!(a.deny_list_len(), 0);
    assert!(a.store.read(|r| r.revocations()).await.unwrap().is_empty());
    let org_p = who(&a, &org).await;
    let listed = a.list_tokens(&org_p, "acme", false).await.unwrap();
    let rec = listed
        .iter()
        .find(|v| v.entry.record.id == t.record.id)
        .unwrap();
    assert_eq!(rec.status, crate::model::TokenStatus::Revoked);
    // An org retention drops records dead for longer than it.
    let change = OrgChange {
        ledger_retention_secs: Some(Some(60)),
        ..OrgChange::default()
    };
    a.update_org(&org_p, "acme", change).await.unwrap();
    a.set_clock(a.now() + 61);
    a.compact().await.unwrap();
    let listed = a
        .list_tokens(&who(&a, &org).await, "acme", false)
        .await
        .unwrap();
    assert!(
        listed.iter().all(|v| v.entry.record.id != t.record.id),
        "pruned"
    );
    assert!(
        listed.iter().any(|v| v.entry.record.kind == TokenKind::Org),
        "live ones stay"
    );
}

/// Mints from `minter` before, during and after its revocation, always with the
/// principal authenticated before it: whatever was minted must not outlive it.
async fn race(a: &Authority, org: &str) {
    let minter = mint_by(a, org, TokenKind::Deploy, Some("web"), Some(3600)).await;
    let text = minter.token.expose().to_owned();
    let m = who(a, &text).await;
    let spec = spec(TokenKind::Deploy, Some("web"), Some(600));
    let org_p = who(a, org).await;
    let revoked = std::sync::atomic::AtomicBool::new(false);
    let minting = async {
        let (mut minted, mut after) = (Vec::new(), 0);
        while after < 4 {
            let late = revoked.load(std::sync::atomic::Ordering::SeqCst);
            if let Ok(child) = a.mint(&m, "acme", &spec).await {
                minted.push(child);
            }
            if late {
                after += 1;
            }
        }
        minted
    };
    let revoke = async {
        tokio::task::yield_now().await;
        a.revoke(
            &org_p,
            &minter.record.id.to_string(),
            RevokeOptions::default(),
        )
        .await
        .unwrap();
        revoked.store(true, std::sync::atomic::Ordering::SeqCst);
    };
    let parallel = futures_util::future::join_all((0..6).map(|_| a.mint(&m, "acme", &spec)));
    let (minted, (), raced) = tokio::join!(minting, revoke, parallel);
    let mut survived = Vec::new();
    for child in minted.into_iter().chain(raced.into_iter().flatten()) {
        if a.authenticate(child.token.expose(), Client::default())
            .await
            .is_ok()
        {
            survived.push(child.record.id);
        }
    }
    assert!(
        survived.is_empty(),
        "children outlived their revoked minter: {survived:?}"
    );
    assert_eq!(refused(a, &text).await, FailureClass::Revoked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mint_racing_a_revocation_does_not_survive_it_on_redb() {
    let (_d, a, op) = open().await;
    let org = org_token(&a, &op, "acme").await;
    for _ in 0..3 {
        race(&a, &org).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mint_racing_a_revocation_does_not_survive_it_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_db, a, org)) = on_postgres(dir.path()).await else {
        return;
    };
    for _ in 0..3 {
        race(&a, &org).await;
    }
}

/// A mint's write on PostgreSQL, once the connection has prepared its statements, is 2
/// round trips: its reads (the tokens it checks, the app) with BEGIN, then COMMIT with
/// the token and its audit event (docs/SCALING.md, "Round trips"). Before it, two read
/// transactions of 2 each (the presented token: is it a dashboard session? the org).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mint_takes_two_round_trips_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_db, a, org)) = on_postgres(dir.path()).await else {
        return;
    };
    let minter = who(&a, &org).await;
    let spec = spec(TokenKind::Deploy, Some("web"), Some(600));
    // Every pooled connection prepares the statements of a mint on its first one.
    for _ in 0..20 {
        a.mint(&minter, "acme", &spec).await.unwrap();
    }
    let before = a.store().round_trips().unwrap();
    a.mint(&minter, "acme", &spec).await.unwrap();
    assert_eq!(a.store().round_trips().unwrap() - before, 2 + 2 + 2);
}

#[tokio::test]
async fn the_last_live_org_token_is_never_retired() {
    let (_d, a, op) = open().await;
    let first = org_token(&a, &op, "acme").await;
    a.rotate_key(&who(&a, &first).await, "acme").await.unwrap();
    let second = mint_by(&a, &first, TokenKind::Org, None, Some(3600)).await;
    let caller = who(&a, second.token.expose()).await;
    // The v2 org token goes (revoked by another holder); its holder still asks.
    a.revoke(
        &who(&a, &first).await,
        &second.record.id.to_string(),
        RevokeOptions::default(),
    )
    .await
    .unwrap();
    let r = a.retire_key(&caller, "acme", 1, true).await;
    assert!(
        matches!(r, Err(KeyError::LastOrgToken { version: 1, .. })),
        "{r:?}"
    );
    who(&a, &first).await;
}

#[tokio::test]
async fn a_cascade_cut_short_is_finished_by_compaction() {
    let (_d, a, op) = open().await;
    let org = org_token(&a, &op, "acme").await;
    let parent = mint_by(&a, &org, TokenKind::Deploy, Some("web"), Some(3600)).await;
    let child = mint_by(
        &a,
        parent.token.expose(),
        TokenKind::Deploy,
        Some("web"),
        Some(600),
    )
    .await;
    let grandchild = mint_by(
        &a,
        child.token.expose(),
        TokenKind::Deploy,
        Some("web"),
        Some(60),
    )
    .await;
    // Only the first step of a revocation committed (the node died before the rest).
    let (id, now) = (parent.record.id, a.now());
    let done = a
        .store
        .write(move |tx| {
            super::super::revoke::revoke_one(
                tx,
                &id,
                RevokeOptions::default(),
                now,
                Default::default(),
            )
        })
        .await
        .unwrap();
    a.apply_committed(&done.changes).await;
    who(&a, child.token.expose()).await;
    a.compact().await.unwrap();
    assert_eq!(
        refused(&a, child.token.expose()).await,
        FailureClass::Revoked
    );
    assert_eq!(
        refused(&a, grandchild.token.expose()).await,
        FailureClass::Revoked
    );
}

#[tokio::test]
async fn a_draining_node_is_not_ready_and_wakes_what_waits_for_the_drain() {
    let (_d, a, _op) = open().await;
    assert!(a.readiness().ready && !a.readiness().draining);
    let drained = tokio::spawn(a.drained());
    a.begin_drain();
    drained.await.unwrap();
    let r = a.readiness();
    assert!(r.draining && !r.ready, "{r:?}");
    assert_eq!(crate::api::ReadyBody::from(&r).status, "draining");
    // Once drained, a later wait ends at once.
    a.drained().await;
}

#[tokio::test]
async fn compaction_prunes_audit_events_past_the_retention() {
    let dir = tempfile::tempdir().unwrap();
    let mut setup = Setup::dir(dir.path());
    setup.config.audit_retention = Some(Duration::from_secs(3600));
    let opened = Authority::open_with(&setup).await.unwrap();
    let a = opened.authority;
    let op = std::fs::read_to_string(opened.operator_token.unwrap()).unwrap();
    let t0 = system_now() + 1000;
    a.clock.set(t0);
    let org = org_token(&a, op.trim(), "acme").await;
    a.clock.set(t0 + 7200);
    mint_by(&a, &org, TokenKind::Readonly, None, Some(600)).await;
    a.flush().await.unwrap();
    let times = || async {
        a.store()
            .read(|r| r.audit_after("acme", 0, 1000))
            .await
            .unwrap()
            .iter()
            .map(|e| e.time)
            .collect::<Vec<_>>()
    };
    let before = times().await;
    assert!(
        before.contains(&t0) && before.contains(&(t0 + 7200)),
        "{before:?}"
    );
    a.compact().await.unwrap();
    assert_eq!(
        times().await,
        [t0 + 7200],
        "only the event within the hour stays"
    );
}
