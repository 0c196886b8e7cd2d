//! Data directories written by earlier releases open with this build: the first
//! release's (schema version 1, `tests/fixtures/v1/` by `scripts/fixtures/v1.sh`),
//! upgraded in one transaction with its orgs, keys, tokens, lineage, revocations, last
//! uses and audit intact; and schema version 2's (`tests/fixtures/v2/` by
//! `scripts/fixtures/v2.sh`), to which version 3 only adds the allow-lists of names
//! that load code; and schema version 3's (`tests/fixtures/v3/` by
//! `scripts/fixtures/v3.sh`), to which version 4 adds third parties and the record of
//! used ID tokens; and schema version 4's (`tests/fixtures/v4/` by
//! `scripts/fixtures/v4.sh`), to which version 5 adds the counts of aggregated denials;
//! and schema version 5's (`tests/fixtures/v5/` by `scripts/fixtures/v5.sh`), to which
//! version 6 adds OAuth grants and the `oauth` token kind.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use super::*;
use crate::token::FailureClass;

/// A copy of the v1 data directory, and its tokens by name.
pub(crate) fn fixture() -> (tempfile::TempDir, serde_json::Value) {
    fixture_of("v1")
}

/// A copy of the v2 data directory (`tests/fixtures/v2/`, by `scripts/fixtures/v2.sh`),
/// and its tokens by name.
fn fixture_v2() -> (tempfile::TempDir, serde_json::Value) {
    fixture_of("v2")
}

/// A copy of the v3 data directory (`tests/fixtures/v3/`, by `scripts/fixtures/v3.sh`),
/// and its tokens by name.
fn fixture_v3() -> (tempfile::TempDir, serde_json::Value) {
    fixture_of("v3")
}

/// A copy of the v4 data directory (`tests/fixtures/v4/`, by `scripts/fixtures/v4.sh`),
/// and its tokens by name.
fn fixture_v4() -> (tempfile::TempDir, serde_json::Value) {
    fixture_of("v4")
}

/// A copy of the v5 data directory (`tests/fixtures/v5/`, by `scripts/fixtures/v5.sh`),
/// and its tokens by name.
fn fixture_v5() -> (tempfile::TempDir, serde_json::Value) {
    fixture_of("v5")
}

/// A copy of `tests/fixtures/{version}/data`, and its tokens by name.
fn fixture_of(version: &str) -> (tempfile::TempDir, serde_json::Value) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(version);
    let dir = tempfile::tempdir().unwrap();
    for name in ["macvault.redb", "master.key", "operator.token"] {
        let to = dir.path().join(name);
        std::fs::copy(root.join("data").join(name), &to).unwrap();
        // git keeps no modes: key files come out of a checkout 0644.
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let tokens = std::fs::read_to_string(root.join("tokens.json")).unwrap();
    (dir, serde_json::from_str(&tokens).unwrap())
}

#[tokio::test]
async fn a_version_1_data_directory_is_upgraded_whole() {
    let (dir, tokens) = fixture();
    let t = |name: &str| tokens[name].as_str().unwrap().to_owned();
    let opened = Authority::open(dir.path()).await.unwrap();
    assert!(
        opened.operator_token.is_none(),
        "an upgraded store is initialised already"
    );
    let a = opened.authority;
    let acme = a.read_org("acme").await.unwrap().unwrap();
    // The fixture's tokens are checked at the time it was made (they expire later).
    a.set_clock(acme.created + 60);

    // Orgs and settings.
    assert_eq!(acme.current_key, 2);
    let beta = a.read_org("beta").await.unwrap().unwrap();
    assert_eq!(beta.max_expiry_secs, Some(30 * 86400));

    // Keys: both acme versions unwrap and verify their tokens; the operator still works.
    let op = who(&a, &t("operator")).await;
    assert_eq!(op.org(), "system");
    let org = who(&a, &t("acme")).await;
    assert_eq!(org.key_version(), 1);
    let deploy = who(&a, &t("deploy")).await;
    assert_eq!(deploy.key_version(), 2);
    who(&a, &t("child")).await;
    who(&a, &t("beta")).await;

    // Revocations: the readonly token revoked itself.
    assert_eq!(refused(&a, &t("readonly")).await, FailureClass::Revoked);

    // The ledger, its lineage (org tokens the operator issued are roots) and last uses.
    let ledger = a.list_tokens(&org, "acme", false).await.unwrap();
    let by_name = |n: &str| {
        ledger
            .iter()
            .find(|v| v.entry.record.name == n)
            .unwrap_or_else(|| panic!("no {n} in {ledger:#?}"))
    };
    let (org_rec, ci, child, dash) = (
        by_name("org"),
        by_name("ci"),
        by_name("child"),
        by_name("dash"),
    );
    assert_eq!(org_rec.entry.record.parent, None);
    assert_eq!(org_rec.entry.record.creator, Some(op.token_id()));
    assert_eq!(ci.entry.record.parent, Some(org_rec.entry.record.id));
    assert_eq!(child.entry.record.parent, Some(ci.entry.record.id));
    assert_eq!(dash.status, crate::model::TokenStatus::Revoked);
    assert!(
        ci.entry.last_used.is_some(),
        "verify recorded a use: {ci:?}"
    );

    // The audit log, in order, with its sequence numbers.
    let page = a
        .audit(&org, "acme", 1000, None, Default::default())
        .await
        .unwrap();
    let actions: Vec<&str> = page.events.iter().map(|e| e.action.as_str()).collect();
    for want in [
        "org.create",
        "token.mint",
        "key.rotate",
        "request.denied",
        "token.revoke",
    ] {
        assert!(actions.contains(&want), "{want} missing from {actions:?}");
    }
    let seqs: Vec<u64> = page.events.iter().map(|e| e.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");

    // Revoking the deploy token now reaches the child minted from it (lineage).
    let done = a
        .revoke(
            &org,
            &ci.entry.record.id.to_string(),
            RevokeOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(done.descendants, 1);
    assert_eq!(refused(&a, &t("child")).await, FailureClass::Revoked);

    // It opens again as version 2 (the upgrade is not repeated), master key checked.
    drop(a);
    let again = Authority::open(dir.path()).await.unwrap();
    again.authority.set_clock(acme.created + 60);
    assert_eq!(
        refused(&again.authority, &t("child")).await,
        FailureClass::Revoked
    );
    let check = again
        .authority
        .store
        .read(|r| r.master_check())
        .await
        .unwrap();
    assert!(check.is_some(), "the master key check value was added");
}

/// A data directory of schema 2 (lineage, secrets in both scopes with a rotated secrets
/// key) opens with this build as schema 4: tokens, lineage and secrets intact, and the
/// new tables work: allow-lists of names that load code (empty at first), and third
/// parties, which can be registered and required.
#[tokio::test]
async fn a_version_2_data_directory_is_upgraded_whole() {
    use crate::model::{Jwks, ThirdPartyKind};
    use crate::secrets::{Options, Scope, Secrets};

    let (dir, tokens) = fixture_v2();
    let t = |name: &str| tokens[name].as_str().unwrap().to_owned();
    let opened = Authority::open(dir.path()).await.unwrap();
    assert!(opened.operator_token.is_none());
    let a = opened.authority;
    let acme = a.read_org("acme").await.unwrap().unwrap();
    a.set_clock(acme.created + 60);
    let org = who(&a, &t("acme")).await;
    let deploy = who(&a, &t("deploy")).await;
    who(&a, &t("child")).await;
    let runtime = who(&a, &t("runtime")).await;

    // Secrets: the app's own over the org's, the latest version, under the rotated key.
    let secrets = Secrets::new(a.clone(), Options::default());
    let web = Scope {
        org: "acme",
        app: Some("web"),
    };
    let revealed = secrets.reveal(&runtime, web, None).await.unwrap();
    let values: Vec<(&str, &str)> = revealed.values().collect();
    assert_eq!(values, [("DB_URL", "second"), ("SHARED", "org-wide")]);
    assert!(revealed.allowed_env.is_empty());

    // The new table: an allow-list, which lets the deploy token write that name.
    let names = ["NODE_OPTIONS".to_owned()];
    let listed = secrets
        .set_allowed_env(&org, web, &names, true)
        .await
        .unwrap();
    assert_eq!(listed, names);
    let set = crate::secrets::SetSecret {
        name: "NODE_OPTIONS".into(),
        value: zeroize::Zeroizing::new("--inspect".into()),
        description: None,
        expires_secs: None,
        if_version: None,
    };
    let w = crate::secrets::Write {
        set: vec![set],
        unset: Vec::new(),
        dry_run: false,
        create_app: false,
    };
    secrets.write(&deploy, web, w).await.unwrap();

    // Lineage: revoking the deploy token takes the child it minted.
    let ledger = a.list_tokens(&org, "acme", false).await.unwrap();
    let ci = ledger.iter().find(|v| v.entry.record.name == "ci").unwrap();
    let done = a
        .revoke(
            &org,
            &ci.entry.record.id.to_string(),
            RevokeOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(done.descendants, 1);
    assert_eq!(refused(&a, &t("child")).await, FailureClass::Revoked);

    // The new tables are there: a third party registers and a mint can require it.
    let jwks = Jwks::Document(r#"{"keys":[{"kty":"RSA","kid":"k1"}]}"#.into());
    let new = NewThirdParty::new(
        "gha",
        ThirdPartyKind::CiOidc,
        "https://vault.example/3p/gha",
        "https://token.actions.githubusercontent.com",
        "macvault",
        jwks,
    );
    a.add_third_party(&org, "acme", &new).await.unwrap();
    let cond = crate::caveats::Condition::parse("claim repository_id = 42").unwrap();
    let spec = spec(TokenKind::Deploy, Some("web"), None).require("gha", vec![cond]);
    a.mint(&org, "acme", &spec).await.unwrap();

    // Reopened, it keeps the allow-list and the third party with its dependent.
    drop(secrets);
    drop(a);
    let again = Authority::open(dir.path()).await.unwrap().authority;
    let schema = again.store().read(|r| r.allowed_env("acme")).await.unwrap();
    assert_eq!(
        schema,
        [(Some("web".to_owned()), "NODE_OPTIONS".to_owned())]
    );
    let detail = again.third_party(&org, "acme", "gha").await.unwrap();
    assert_eq!(detail.dependents.len(), 1);
}

/// A data directory of schema 3 (an allow-list of names that load code, such a secret
/// written under it) opens with this build as schema 4: tokens, the allow-list and the
/// secrets intact, and third parties register, are required at mint and keep their
/// keys across a reopening.
#[tokio::test]
async fn a_version_3_data_directory_is_upgraded_whole() {
    use crate::model::{Jwks, ThirdPartyKind};
    use crate::secrets::{Options, Scope, Secrets};

    let (dir, tokens) = fixture_v3();
    let t = |name: &str| tokens[name].as_str().unwrap().to_owned();
    let opened = Authority::open(dir.path()).await.unwrap();
    assert!(opened.operator_token.is_none());
    let a = opened.authority;
    let acme = a.read_org("acme").await.unwrap().unwrap();
    a.set_clock(acme.created + 60);
    let org = who(&a, &t("acme")).await;
    who(&a, &t("deploy")).await;
    who(&a, &t("child")).await;
    let runtime = who(&a, &t("runtime")).await;

    // The allow-list and the secret written under it are there.
    let secrets = Secrets::new(a.clone(), Options::default());
    let web = Scope {
        org: "acme",
        app: Some("web"),
    };
    let revealed = secrets.reveal(&runtime, web, None).await.unwrap();
    let values: Vec<(&str, &str)> = revealed.values().collect();
    assert_eq!(
        values,
        [
            ("DB_URL", "first"),
            ("NODE_OPTIONS", "--max-old-space-size=512"),
            ("SHARED", "org-wide")
        ]
    );
    assert_eq!(revealed.allowed_env, ["NODE_OPTIONS".to_owned()]);

    // Third parties: registered, required at mint, rotated.
    let new = NewThirdParty::new(
        "gha",
        ThirdPartyKind::CiOidc,
        "https://vault.example/3p/gha",
        "https://token.actions.githubusercontent.com",
        "macvault",
        Jwks::Document(r#"{"keys":[{"kty":"RSA","kid":"k1"}]}"#.into()),
    );
    a.add_third_party(&org, "acme", &new).await.unwrap();
    let cond = crate::caveats::Condition::parse("claim repository_id = 42").unwrap();
    let spec = spec(TokenKind::Deploy, Some("web"), None).require("gha", vec![cond]);
    a.mint(&org, "acme", &spec).await.unwrap();
    a.rotate_third_party_key(&org, "acme", "gha").await.unwrap();

    // Reopened, all of it stays.
    drop(secrets);
    drop(a);
    let again = Authority::open(dir.path()).await.unwrap().authority;
    again.set_clock(acme.created + 60);
    let detail = again.third_party(&org, "acme", "gha").await.unwrap();
    assert_eq!(detail.third_party.keys.len(), 2);
    assert_eq!(detail.dependents.len(), 1);
    assert_eq!(detail.live_on(detail.third_party.keys[0].id), 1);
    let listed = again.store().read(|r| r.allowed_env("acme")).await.unwrap();
    assert_eq!(
        listed,
        [(Some("web".to_owned()), "NODE_OPTIONS".to_owned())]
    );
    // Apps became explicit: the one its tokens and secrets name is registered.
    let apps = again.store().read(|r| r.apps("acme")).await.unwrap();
    let names: Vec<&str> = apps.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["web"]);
}

/// Version 4's denials (one event each) read as events that happened once; new denials
/// aggregate beside them; its secrets and tokens work on.
#[tokio::test]
async fn a_version_4_data_directory_is_upgraded_whole() {
    use crate::secrets::{Options, Scope, Secrets};

    let (dir, tokens) = fixture_v4();
    let t = |name: &str| tokens[name].as_str().unwrap().to_owned();
    let opened = Authority::open(dir.path()).await.unwrap();
    assert!(opened.operator_token.is_none());
    let a = opened.authority;
    let acme = a.read_org("acme").await.unwrap().unwrap();
    let now = acme.created + 60;
    a.set_clock(now);
    let org = who(&a, &t("acme")).await;
    let deploy = who(&a, &t("deploy")).await;
    let readonly = who(&a, &t("readonly")).await;
    let denials = |page: &AuditPage| -> Vec<(u64, String)> {
        page.events
            .iter()
            .filter(|e| e.action == crate::audit::action::REQUEST_DENIED)
            .map(|e| (e.count, e.detail.clone()))
            .collect()
    };
    let page = a
        .audit(&org, "acme", 100, None, AuditFilter::default())
        .await
        .unwrap();
    let old = denials(&page);
    assert_eq!(old.len(), 3, "{old:?}");
    assert!(old.iter().all(|(count, _)| *count == 1), "{old:?}");
    assert!(old[0].1.starts_with("set A in app web"), "{}", old[0].1);

    // New denials aggregate.
    let secrets = Secrets::new(a.clone(), Options::default());
    let web = Scope {
        org: "acme",
        app: Some("web"),
    };
    for name in ["D", "E"] {
        let write = crate::secrets::Write {
            set: vec![crate::secrets::SetSecret {
                name: name.into(),
                value: zeroize::Zeroizing::new(b"x".to_vec()),
                description: None,
                expires_secs: None,
                if_version: None,
            }],
            unset: Vec::new(),
            dry_run: false,
            create_app: false,
        };
        assert!(secrets.write(&readonly, web, write).await.is_err());
    }
    let page = a
        .audit(&org, "acme", 100, None, AuditFilter::default())
        .await
        .unwrap();
    let all = denials(&page);
    assert_eq!(all.len(), 4, "{all:?}");
    assert_eq!(all[3].0, 2);
    assert!(all[3].1.starts_with("set D in app web"), "{}", all[3].1);

    // Its secret is there for its deploy token.
    let listing = secrets.list(&deploy, web, false).await.unwrap();
    let names: Vec<&str> = listing
        .secrets
        .iter()
        .map(|l| l.head.name.as_str())
        .collect();
    assert_eq!(names, ["DB_URL"]);
}

#[tokio::test]
async fn a_version_5_data_directory_is_upgraded_and_its_clients_get_grants() {
    let (dir, tokens) = fixture_v5();
    let t = |name: &str| tokens[name].as_str().unwrap().to_owned();
    let opened = Authority::open(dir.path()).await.unwrap();
    assert!(opened.operator_token.is_none());
    let a = opened.authority;
    let acme = a.read_org("acme").await.unwrap().unwrap();
    a.set_clock(acme.created + 60);
    let org = who(&a, &t("acme")).await;
    who(&a, &t("deploy")).await;
    // Its aggregated denial and its client are there.
    let page = a
        .audit(&org, "acme", 100, None, AuditFilter::default())
        .await
        .unwrap();
    let denied: Vec<u64> = page
        .events
        .iter()
        .filter(|e| e.action == crate::audit::action::REQUEST_DENIED)
        .map(|e| e.count)
        .collect();
    assert_eq!(denied, [3]);
    let client = a.oauth_client(&org, "acme", &t("client")).await.unwrap();
    assert!(client.is_public());

    // Version 6: the client gets a grant and an `oauth` token.
    let session = a.sign_in(&org, SESSION_LIFETIME).await.unwrap();
    let session = who(&a, session.token.expose()).await;
    let verifier = "v".repeat(43);
    let challenge = {
        use base64::Engine as _;
        use sha2::Digest as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(&verifier))
    };
    let params = AuthorizeParams {
        response_type: Some("code".into()),
        client_id: Some(client.id.clone()),
        redirect_uri: None,
        scope: Some("secrets:read app:web".into()),
        state: None,
        code_challenge: Some(challenge),
        code_challenge_method: Some("S256".into()),
    };
    let auth = a.check_authorization(&params).await.unwrap();
    let code = a
        .approve_authorization(&session, &auth, &auth.scopes, 3600)
        .await
        .unwrap();
    let creds = ClientCredentials {
        id: client.id.clone(),
        secret: None,
    };
    let req = TokenRequest::Code {
        code: code.expose().into(),
        redirect_uri: None,
        verifier: Some(verifier),
    };
    let issued = a.oauth_token(&creds, req).await.unwrap();
    let p = who(&a, issued.access_token.expose()).await;
    let rec = a.read_token(&p.token_id()).await.unwrap().unwrap();
    assert_eq!(rec.kind, crate::model::TokenKind::OAuth);
    assert_eq!(a.oauth_grants(&org, "acme").await.unwrap().len(), 1);
}
