//! The secrets store's rules, in-process over the embedded store (the binary's
//! end-to-end tests run the same on both backends); tampering with stored records runs
//! on both backends here.

use std::sync::Arc;

use zeroize::Zeroizing;

use super::*;
use crate::authority::Classify as _;
use crate::authority::{AuditFilter, Client, MintSpec};
use crate::caveats::Caveat;
use crate::model::{Outcome, SecretVersion, TokenKind};

struct Fixture {
    _dir: tempfile::TempDir,
    a: Arc<Authority>,
    s: Secrets,
    org: String,
}

async fn fixture_with(options: Options) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let opened = Authority::open(dir.path()).await.unwrap();
    let a = opened.authority;
    let op = std::fs::read_to_string(opened.operator_token.unwrap()).unwrap();
    let org = a
        .create_org(&who(&a, op.trim()).await, "acme", None)
        .await
        .unwrap()
        .token
        .expose()
        .to_owned();
    with_apps(&a, &org, "acme").await;
    let s = Secrets::new(a.clone(), options);
    Fixture {
        _dir: dir,
        a,
        s,
        org,
    }
}

/// The apps the tests use (`web`, `api`), created in `org` with its org token.
async fn with_apps(a: &Authority, token: &str, org: &str) {
    let p = who(a, token).await;
    for app in ["web", "api"] {
        a.create_app(&p, org, app).await.unwrap();
    }
}

async fn fixture() -> Fixture {
    fixture_with(Options::default()).await
}

async fn who(a: &Authority, text: &str) -> Principal {
    a.authenticate(text, Client::default()).await.unwrap()
}

const ORG: Scope<'static> = Scope {
    org: "acme",
    app: None,
};
const WEB: Scope<'static> = Scope {
    org: "acme",
    app: Some("web"),
};
const API: Scope<'static> = Scope {
    org: "acme",
    app: Some("api"),
};

fn set(name: &str, value: &str) -> SetSecret {
    SetSecret {
        name: name.into(),
        value: Zeroizing::new(value.as_bytes().to_vec()),
        description: None,
        expires_secs: None,
        if_version: None,
    }
}

fn sets(pairs: &[(&str, &str)]) -> Write {
    Write {
        set: pairs.iter().map(|(n, v)| set(n, v)).collect(),
        unset: Vec::new(),
        dry_run: false,
        create_app: false,
    }
}

fn unset(names: &[&str]) -> Write {
    Write {
        set: Vec::new(),
        unset: names
            .iter()
            .map(|n| UnsetSecret {
                name: (*n).into(),
                if_version: None,
            })
            .collect(),
        dry_run: false,
        create_app: false,
    }
}

impl Fixture {
    async fn token(&self, kind: TokenKind, app: Option<&str>) -> String {
        let mut spec = MintSpec::new(kind);
        spec.app = app.map(str::to_owned);
        let minted = self
            .a
            .mint(&who(&self.a, &self.org).await, "acme", &spec)
            .await
            .unwrap();
        minted.token.expose().to_owned()
    }

    async fn write(&self, token: &str, scope: Scope<'_>, w: Write) -> Result<Written, SecretError> {
        self.s.write(&who(&self.a, token).await, scope, w).await
    }

    async fn names(
        &self,
        token: &str,
        scope: Scope<'_>,
        resolved: bool,
    ) -> Vec<(String, Option<String>)> {
        let listing = self
            .s
            .list(&who(&self.a, token).await, scope, resolved)
            .await
            .unwrap();
        listing
            .secrets
            .into_iter()
            .map(|l| (l.head.name, l.head.app))
            .collect()
    }

    /// The value of the current version, opened (the next issue's reveal reads the
    /// same way; here it proves what was stored).
    async fn value(&self, scope: Scope<'_>, name: &str) -> Result<Vec<u8>, SecretError> {
        let (org, app, name) = (
            scope.org.to_owned(),
            scope.app.map(str::to_owned),
            name.to_owned(),
        );
        let keys = self.s.write_keys(&org).await?;
        self.a
            .store()
            .read(move |r| {
                let head = r.secret_head(&org, app.as_deref(), &name)?.unwrap();
                let v = r
                    .secret_version(&org, app.as_deref(), &name, head.version)?
                    .unwrap();
                let place = Place {
                    org: &org,
                    app: app.as_deref(),
                    name: &name,
                    version: head.version,
                };
                let value = keys.cached.keys.open(place, v.sealed.as_ref().unwrap())?;
                Ok(value.to_vec())
            })
            .await
    }
}

fn version_of(w: &Written, name: &str) -> u64 {
    w.secrets.iter().find(|s| s.name == name).unwrap().version
}

#[tokio::test]
async fn versions_continue_after_unset_and_history_names_the_writer() {
    let f = fixture().await;
    let w = f
        .write(&f.org, WEB, sets(&[("DB_URL", "one")]))
        .await
        .unwrap();
    assert_eq!(version_of(&w, "DB_URL"), 1);
    let w = f
        .write(&f.org, WEB, sets(&[("DB_URL", "two")]))
        .await
        .unwrap();
    assert_eq!(version_of(&w, "DB_URL"), 2);
    f.write(&f.org, WEB, unset(&["DB_URL"])).await.unwrap();
    assert!(
        f.names(&f.org, WEB, false).await.is_empty(),
        "unset: not listed"
    );
    let head =
        f.s.get(&who(&f.a, &f.org).await, WEB, "DB_URL")
            .await
            .unwrap()
            .head;
    assert!(head.unset);
    assert!(matches!(
        f.write(&f.org, WEB, unset(&["DB_URL"])).await,
        Err(SecretError::NotFound(_))
    ));
    let w = f
        .write(&f.org, WEB, sets(&[("DB_URL", "three")]))
        .await
        .unwrap();
    assert_eq!(version_of(&w, "DB_URL"), 3, "numbering continues");
    assert_eq!(f.value(WEB, "DB_URL").await.unwrap(), b"three");
    let (_, history) =
        f.s.history(&who(&f.a, &f.org).await, WEB, "DB_URL")
            .await
            .unwrap();
    let seen: Vec<(u64, bool)> = history.iter().map(|h| (h.version, h.current)).collect();
    assert_eq!(seen, [(1, false), (2, false), (3, true)]);
    assert!(
        history
            .iter()
            .all(|h| h.created_by_name.as_deref() == Some("org"))
    );
}

#[tokio::test]
async fn check_and_set_refuses_the_whole_write_with_the_current_version() {
    let f = fixture().await;
    f.write(&f.org, ORG, sets(&[("A", "1"), ("B", "1")]))
        .await
        .unwrap();
    let mut w = sets(&[("A", "2"), ("B", "2"), ("C", "new")]);
    w.set[0].if_version = Some(1);
    w.set[1].if_version = Some(7);
    w.set[2].if_version = Some(0);
    match f.write(&f.org, ORG, w).await {
        Err(SecretError::VersionConflict {
            name,
            current,
            expected,
        }) => assert_eq!((name.as_str(), current, expected), ("B", 1, 7)),
        other => panic!("{other:?}"),
    }
    // Nothing of it was applied.
    assert_eq!(f.value(ORG, "A").await.unwrap(), b"1");
    assert_eq!(f.names(&f.org, ORG, false).await.len(), 2);
    // 0 means: must not be set.
    let mut w = sets(&[("A", "x")]);
    w.set[0].if_version = Some(0);
    assert!(matches!(
        f.write(&f.org, ORG, w).await,
        Err(SecretError::VersionConflict { current: 1, .. })
    ));
    let mut w = sets(&[("A", "2"), ("C", "new")]);
    w.set[0].if_version = Some(1);
    w.set[1].if_version = Some(0);
    f.write(&f.org, ORG, w).await.unwrap();
    assert_eq!(f.value(ORG, "C").await.unwrap(), b"new");
}

#[tokio::test]
async fn a_write_is_all_or_nothing() {
    let f = fixture().await;
    for bad in [
        sets(&[("A", "1"), ("1BAD", "x")]),
        sets(&[("A", "1"), ("NUL", "a\0b")]),
        sets(&[("A", "1"), ("A", "2")]),
        Write::default(),
    ] {
        assert!(matches!(
            f.write(&f.org, ORG, bad).await.map_err(|e| e.class()),
            Err(crate::authority::ErrorClass::BadRequest)
        ));
    }
    let mut w = sets(&[("A", "1")]);
    w.unset.push(UnsetSecret {
        name: "MISSING".into(),
        if_version: None,
    });
    assert!(matches!(
        f.write(&f.org, ORG, w).await,
        Err(SecretError::NotFound(_))
    ));
    assert!(f.names(&f.org, ORG, false).await.is_empty());
}

#[tokio::test]
async fn the_version_cap_drops_the_oldest() {
    let f = fixture_with(Options {
        max_versions: 3,
        ..Options::default()
    })
    .await;
    for i in 1..=5 {
        f.write(&f.org, ORG, sets(&[("A", &i.to_string())]))
            .await
            .unwrap();
    }
    let org = who(&f.a, &f.org).await;
    let (head, history) = f.s.history(&org, ORG, "A").await.unwrap();
    assert_eq!(
        history.iter().map(|h| h.version).collect::<Vec<_>>(),
        [3, 4, 5]
    );
    assert_eq!((head.head.oldest, head.head.last_version), (3, 5));
    assert!(matches!(
        f.s.rollback(&org, ORG, "A", 1).await,
        Err(SecretError::VersionNotFound { version: 1, .. })
    ));
}

#[tokio::test]
async fn rollback_writes_the_old_value_as_a_new_version() {
    let f = fixture().await;
    f.write(&f.org, WEB, sets(&[("K", "good")])).await.unwrap();
    f.write(&f.org, WEB, sets(&[("K", "bad")])).await.unwrap();
    let org = who(&f.a, &f.org).await;
    let w = f.s.rollback(&org, WEB, "K", 1).await.unwrap();
    assert_eq!(version_of(&w, "K"), 3);
    assert_eq!(f.value(WEB, "K").await.unwrap(), b"good");
    let (head, history) = f.s.history(&org, WEB, "K").await.unwrap();
    assert_eq!(history[2].rollback_of, Some(1));
    assert_eq!(
        history[2].digest, history[0].digest,
        "same value, same digest"
    );
    assert_ne!(history[1].digest, history[0].digest);
    assert_eq!(head.digest, history[0].digest);
}

#[tokio::test]
async fn destroy_purges_values_and_destroying_the_current_one_unsets() {
    let f = fixture().await;
    f.write(&f.org, ORG, sets(&[("K", "org value")]))
        .await
        .unwrap();
    f.write(&f.org, WEB, sets(&[("K", "pasted by mistake")]))
        .await
        .unwrap();
    f.write(&f.org, WEB, sets(&[("K", "fixed")])).await.unwrap();
    let org = who(&f.a, &f.org).await;
    let d =
        f.s.destroy(&org, WEB, "K", DestroyTarget::Version(1))
            .await
            .unwrap();
    assert_eq!((d.versions.as_slice(), d.unset), (&[1][..], false));
    assert!(matches!(
        f.s.rollback(&org, WEB, "K", 1).await,
        Err(SecretError::Destroyed { version: 1, .. })
    ));
    let (_, history) = f.s.history(&org, WEB, "K").await.unwrap();
    assert!(history[0].destroyed && !history[1].destroyed);
    assert_eq!(history[0].digest, None);
    // Stored: no ciphertext left for version 1.
    let v1 =
        f.a.store()
            .read(|r| r.secret_version("acme", Some("web"), "K", 1))
            .await
            .unwrap()
            .unwrap();
    assert!(v1.sealed.is_none());
    let d =
        f.s.destroy(&org, WEB, "K", DestroyTarget::All)
            .await
            .unwrap();
    assert_eq!((d.versions.as_slice(), d.unset), (&[2][..], true));
    assert!(d.versions_after.is_some());
    // The org's value shows through again.
    assert_eq!(f.names(&f.org, WEB, true).await, [("K".to_owned(), None)]);
    let d =
        f.s.destroy(&org, WEB, "K", DestroyTarget::All)
            .await
            .unwrap();
    assert!(d.versions.is_empty() && !d.unset, "nothing left to purge");
}

#[tokio::test]
async fn an_app_secret_overrides_the_org_and_unsetting_it_lets_the_org_through() {
    let f = fixture().await;
    f.write(&f.org, ORG, sets(&[("DB_URL", "org"), ("LOG", "info")]))
        .await
        .unwrap();
    f.write(&f.org, WEB, sets(&[("DB_URL", "web")]))
        .await
        .unwrap();
    let web = Some("web".to_owned());
    assert_eq!(
        f.names(&f.org, WEB, true).await,
        [("DB_URL".to_owned(), web.clone()), ("LOG".to_owned(), None)]
    );
    assert_eq!(
        f.names(&f.org, WEB, false).await,
        [("DB_URL".to_owned(), web)]
    );
    assert_eq!(f.names(&f.org, API, true).await.len(), 2);
    f.write(&f.org, WEB, unset(&["DB_URL"])).await.unwrap();
    assert_eq!(
        f.names(&f.org, WEB, true).await,
        [("DB_URL".to_owned(), None), ("LOG".to_owned(), None)]
    );
}

#[tokio::test]
async fn an_expired_app_secret_does_not_fall_back_to_the_org() {
    let f = fixture().await;
    f.write(&f.org, ORG, sets(&[("K", "org")])).await.unwrap();
    let mut w = sets(&[("K", "web")]);
    w.set[0].expires_secs = Some(60);
    f.write(&f.org, WEB, w).await.unwrap();
    let org = who(&f.a, &f.org).await;
    let fresh = f.s.list(&org, WEB, true).await.unwrap();
    assert!(!fresh.secrets[0].expired);
    f.a.set_clock(f.a.now() + 61);
    let org = who(&f.a, &f.org).await;
    let later = f.s.list(&org, WEB, true).await.unwrap();
    assert_eq!(later.secrets.len(), 1);
    assert_eq!(later.secrets[0].head.app.as_deref(), Some("web"));
    assert!(
        later.secrets[0].expired,
        "expired, and the org's does not show"
    );
    let mut w = sets(&[("K", "x")]);
    w.set[0].expires_secs = Some(0);
    assert!(matches!(
        f.write(&f.org, WEB, w).await,
        Err(SecretError::BadExpiry)
    ));
}

#[tokio::test]
async fn limits_are_clear_errors() {
    let f = fixture().await;
    let big = "x".repeat(limits::MAX_VALUE + 1);
    assert!(matches!(
        f.write(&f.org, ORG, sets(&[("BIG", &big)])).await,
        Err(SecretError::ValueTooLarge { .. })
    ));
    // 8 values of nearly 64 KiB (with their names) fit a scope's half of an
    // environment; a 9th does not, and the error names the limit, not a total.
    let full = "x".repeat(limits::MAX_VALUE - 100);
    let names: Vec<String> = (0..9).map(|i| format!("V{i}")).collect();
    let pairs: Vec<(&str, &str)> = names[..8]
        .iter()
        .map(|n| (n.as_str(), full.as_str()))
        .collect();
    f.write(&f.org, ORG, sets(&pairs)).await.unwrap();
    let r = f.write(&f.org, ORG, sets(&[("V8", &full)])).await;
    let text = r
        .as_ref()
        .map(|_| String::new())
        .unwrap_or_else(|e| e.to_string());
    assert!(matches!(r, Err(SecretError::ScopeFull { .. })), "{text}");
    assert!(text.contains("512 KiB") && !text.contains("5243"), "{text}");
    // An app full of its own still fits one environment with the org's.
    f.write(&f.org, WEB, sets(&pairs)).await.unwrap();
}

/// The scope of app `name` of acme.
fn app(name: &str) -> Scope<'_> {
    Scope {
        org: "acme",
        app: Some(name),
    }
}

#[tokio::test]
async fn an_org_keeps_at_most_ten_thousand_secrets() {
    let f = fixture().await;
    let apps: Vec<String> = (0..10).map(|i| format!("app{i}")).collect();
    let org = who(&f.a, &f.org).await;
    for name in &apps {
        f.a.create_app(&org, "acme", name).await.unwrap();
    }
    for (batch, name) in apps.iter().enumerate() {
        let names: Vec<String> = (0..1000).map(|i| format!("S{batch}_{i}")).collect();
        let pairs: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
        f.write(&f.org, app(name), sets(&pairs)).await.unwrap();
    }
    assert!(matches!(
        f.write(&f.org, API, sets(&[("ONE_MORE", "v")])).await,
        Err(SecretError::TooMany(10_001))
    ));
    // Changing one that exists is fine.
    f.write(&f.org, app("app0"), sets(&[("S0_0", "w")]))
        .await
        .unwrap();
}

#[tokio::test]
async fn one_app_filling_its_caps_leaves_other_apps_and_the_org_writable() {
    let f = fixture_with(Options {
        stored_per_scope: 2 * 1024 * 1024,
        ..Options::default()
    })
    .await;
    let deploy = f.token(TokenKind::Deploy, Some("web")).await;
    // Names: 1000 in web, then no more (an unset one holding a value still counts).
    let names: Vec<String> = (0..1000).map(|i| format!("N{i}")).collect();
    let pairs: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
    f.write(&deploy, WEB, sets(&pairs)).await.unwrap();
    f.write(&deploy, WEB, unset(&["N0"])).await.unwrap();
    let r = f.write(&deploy, WEB, sets(&[("MORE", "v")])).await;
    assert!(matches!(r, Err(SecretError::ScopeFull { .. })), "{r:?}");
    // Destroying every value of one frees its name.
    let org = who(&f.a, &f.org).await;
    f.s.destroy(&org, WEB, "N0", DestroyTarget::All)
        .await
        .unwrap();
    f.write(&deploy, WEB, sets(&[("MORE", "v")])).await.unwrap();
    // Meanwhile the org and other apps write as before.
    f.write(&f.org, ORG, sets(&[("ORG_WIDE", "v")]))
        .await
        .unwrap();
    f.write(&f.org, API, sets(&[("OTHER_APP", "v")]))
        .await
        .unwrap();
}

#[tokio::test]
async fn one_app_full_of_values_leaves_org_wide_writes_working() {
    let f = fixture().await;
    let deploy = f.token(TokenKind::Deploy, Some("web")).await;
    let full = "x".repeat(limits::MAX_VALUE - 100);
    let names: Vec<String> = (0..9).map(|i| format!("W{i}")).collect();
    for name in &names[..8] {
        f.write(&deploy, WEB, sets(&[(name, &full)])).await.unwrap();
    }
    let r = f.write(&deploy, WEB, sets(&[(&names[8], &full)])).await;
    assert!(matches!(r, Err(SecretError::ScopeFull { .. })), "{r:?}");
    // The org's own half of the environment is untouched: it fills it, web still fits.
    let org_names: Vec<String> = (0..8).map(|i| format!("O{i}")).collect();
    for name in &org_names {
        f.write(&f.org, ORG, sets(&[(name, &full)])).await.unwrap();
    }
    f.write(&f.org, API, sets(&[("OTHER_APP", &full)]))
        .await
        .unwrap();
    let runtime = who(&f.a, &f.token(TokenKind::Runtime, Some("web")).await).await;
    let revealed = f.s.reveal(&runtime, WEB, None).await.unwrap();
    assert_eq!(revealed.values().count(), 16);
}

#[tokio::test]
async fn set_then_unset_cannot_grow_an_apps_history_without_bound() {
    let f = fixture_with(Options {
        stored_per_scope: 2 * 1024 * 1024,
        ..Options::default()
    })
    .await;
    let deploy = f.token(TokenKind::Deploy, Some("web")).await;
    let value = "x".repeat(60 * 1024);
    // Each round stores 4 × 60 KiB and unsets it again: the current values stay small,
    // the stored versions grow until the cap (2 MiB here) refuses the next.
    let names = ["H0", "H1", "H2", "H3"];
    let mut refused = None;
    for round in 0..20 {
        let pairs: Vec<(&str, &str)> = names.iter().map(|n| (*n, value.as_str())).collect();
        match f.write(&deploy, WEB, sets(&pairs)).await {
            Ok(_) => f
                .write(&deploy, WEB, unset(&names))
                .await
                .map(|_| ())
                .unwrap(),
            Err(e) => {
                refused = Some((round, e));
                break;
            }
        }
    }
    let (round, e) = refused.expect("the history cap refused a write");
    assert!(
        round >= 8,
        "refused only once the cap is reached: round {round}"
    );
    assert!(matches!(e, SecretError::ScopeFull { .. }), "{e:?}");
    assert!(e.to_string().contains("stored versions"), "{e}");
    // Other scopes are untouched by it; destroying web's values makes room again.
    f.write(&f.org, ORG, sets(&[("ORG_WIDE", &value)]))
        .await
        .unwrap();
    f.write(&f.org, API, sets(&[("OTHER", &value)]))
        .await
        .unwrap();
    let org = who(&f.a, &f.org).await;
    for name in names {
        f.s.destroy(&org, WEB, name, DestroyTarget::All)
            .await
            .unwrap();
    }
    f.write(&deploy, WEB, sets(&[("H0", &value)]))
        .await
        .unwrap();
}

#[tokio::test]
async fn secrets_versions_move_with_the_org_and_the_app() {
    let f = fixture().await;
    let w = f.write(&f.org, WEB, sets(&[("A", "1")])).await.unwrap();
    assert_eq!(w.versions.apps, [("web".to_owned(), 1)]);
    let w = f.write(&f.org, API, sets(&[("A", "1")])).await.unwrap();
    assert_eq!(w.versions.apps, [("api".to_owned(), 1)]);
    let w = f.write(&f.org, ORG, sets(&[("B", "1")])).await.unwrap();
    assert_eq!(w.versions.org, 1);
    assert_eq!(
        w.versions.apps,
        [("api".to_owned(), 2), ("web".to_owned(), 2)],
        "an org change moves every app's version"
    );
    let org = who(&f.a, &f.org).await;
    assert_eq!(f.s.list(&org, WEB, true).await.unwrap().version, 2);
    f.write(&f.org, WEB, sets(&[("A", "2")])).await.unwrap();
    assert_eq!(f.s.list(&org, WEB, true).await.unwrap().version, 3);
    assert_eq!(f.s.list(&org, API, true).await.unwrap().version, 2);
    assert_eq!(f.s.list(&org, ORG, false).await.unwrap().version, 1);
}

#[tokio::test]
async fn presets_on_each_operation() {
    let f = fixture().await;
    f.write(&f.org, ORG, sets(&[("SHARED", "s")]))
        .await
        .unwrap();
    f.write(&f.org, WEB, sets(&[("OWN", "o")])).await.unwrap();
    let readonly = f.token(TokenKind::Readonly, None).await;
    let deploy = f.token(TokenKind::Deploy, Some("web")).await;
    let runtime = f.token(TokenKind::Runtime, Some("web")).await;
    let denied = |r: Result<Written, SecretError>| matches!(r, Err(SecretError::Denied(_)));

    // readonly: lists everything, writes nothing.
    assert_eq!(f.names(&readonly, ORG, false).await.len(), 1);
    assert_eq!(f.names(&readonly, WEB, true).await.len(), 2);
    assert!(denied(f.write(&readonly, WEB, sets(&[("OWN", "x")])).await));
    assert!(denied(f.write(&readonly, ORG, unset(&["SHARED"])).await));
    // deploy: its app only.
    f.write(&deploy, WEB, sets(&[("OWN", "x")])).await.unwrap();
    f.write(&deploy, WEB, unset(&["OWN"])).await.unwrap();
    assert!(denied(f.write(&deploy, API, sets(&[("OWN", "x")])).await));
    assert!(denied(
        f.write(&deploy, ORG, sets(&[("SHARED", "x")])).await
    ));
    assert_eq!(
        f.names(&deploy, WEB, true).await.len(),
        1,
        "sees the org's through web"
    );
    let d = who(&f.a, &deploy).await;
    assert!(matches!(
        f.s.list(&d, ORG, false).await,
        Err(SecretError::Denied(_))
    ));
    assert!(matches!(
        f.s.list(&d, API, true).await,
        Err(SecretError::Denied(_))
    ));
    // runtime: reads its app, writes nothing.
    assert_eq!(f.names(&runtime, WEB, true).await.len(), 1);
    assert!(denied(f.write(&runtime, WEB, sets(&[("OWN", "x")])).await));
    let r = who(&f.a, &runtime).await;
    assert!(matches!(
        f.s.destroy(&r, WEB, "SHARED", DestroyTarget::All).await,
        Err(SecretError::Denied(_))
    ));
    assert!(matches!(
        f.s.rollback(&r, WEB, "OWN", 1).await,
        Err(SecretError::Denied(_))
    ));
}

#[tokio::test]
async fn secret_patterns_filter_listings_and_refuse_everything_else() {
    let f = fixture().await;
    f.write(
        &f.org,
        WEB,
        sets(&[("DB_URL", "1"), ("DB_PASS", "2"), ("API_KEY", "3")]),
    )
    .await
    .unwrap();
    let narrow = crate::token::attenuate(&f.org, &[Caveat::secrets(["DB_*"]).unwrap()]).unwrap();
    let names: Vec<String> = f
        .names(&narrow, WEB, false)
        .await
        .into_iter()
        .map(|n| n.0)
        .collect();
    assert_eq!(names, ["DB_PASS", "DB_URL"]);
    // A write with one name outside is refused whole.
    assert!(matches!(
        f.write(&narrow, WEB, sets(&[("DB_URL", "x"), ("API_KEY", "x")]))
            .await,
        Err(SecretError::Denied(_))
    ));
    assert_eq!(f.value(WEB, "DB_URL").await.unwrap(), b"1");
    f.write(&narrow, WEB, sets(&[("DB_URL", "x")]))
        .await
        .unwrap();
    // Outside the patterns: denied whether or not it exists (no existence oracle).
    let n = who(&f.a, &narrow).await;
    assert!(matches!(
        f.s.get(&n, WEB, "API_KEY").await,
        Err(SecretError::Denied(_))
    ));
    assert!(matches!(
        f.s.get(&n, WEB, "NOPE").await,
        Err(SecretError::Denied(_))
    ));
    assert!(matches!(
        f.s.get(&n, WEB, "DB_NOPE").await,
        Err(SecretError::NotFound(_))
    ));
    assert!(matches!(
        f.s.history(&n, WEB, "API_KEY").await,
        Err(SecretError::Denied(_))
    ));
    // Not about secrets at all: denied.
    assert!(f.a.list_tokens(&n, "acme", false).await.is_err());
    assert!(f.a.list_keys(&n, "acme").await.is_err());
    assert!(
        f.a.audit(&n, "acme", 10, None, AuditFilter::default())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn writes_and_denials_are_audited_with_names_and_never_values() {
    let f = fixture().await;
    f.write(&f.org, WEB, sets(&[("DB_URL", "hunter2-value")]))
        .await
        .unwrap();
    f.write(&f.org, WEB, unset(&["DB_URL"])).await.unwrap();
    let readonly = f.token(TokenKind::Readonly, None).await;
    let _ = f
        .write(&readonly, WEB, sets(&[("API_KEY", "other-value")]))
        .await;
    let org = who(&f.a, &f.org).await;
    f.s.destroy(&org, WEB, "DB_URL", DestroyTarget::All)
        .await
        .unwrap();
    let page =
        f.a.audit(&org, "acme", 100, None, AuditFilter::default())
            .await
            .unwrap();
    let find = |action: &str| {
        page.events
            .iter()
            .find(|e| e.action == action)
            .unwrap_or_else(|| panic!("no {action} in {:?}", page.events))
    };
    assert_eq!(
        find("secret.set").detail,
        "set DB_URL v1 in app web of org acme"
    );
    assert_eq!(
        find("secret.unset").detail,
        "unset DB_URL v1 in app web of org acme"
    );
    assert!(
        find("secret.destroy")
            .detail
            .contains("destroyed DB_URL v1")
    );
    let denial = find("request.denied");
    assert_eq!(denial.outcome, Outcome::Denied);
    assert!(
        denial
            .detail
            .starts_with("set API_KEY in app web of org acme: "),
        "{}",
        denial.detail
    );
    for e in &page.events {
        assert!(!e.detail.contains("value"), "{}", e.detail);
    }
}

#[tokio::test]
async fn denials_naming_other_secrets_in_one_window_are_one_event() {
    let f = fixture().await;
    f.a.set_clock(crate::authority::system_now());
    let readonly = f.token(TokenKind::Readonly, None).await;
    for i in 0..50 {
        let name = format!("NAME_{i}");
        let denied = f.write(&readonly, WEB, sets(&[(&name, "v")])).await;
        assert!(matches!(denied, Err(SecretError::Denied(_))), "{denied:?}");
    }
    let org = who(&f.a, &f.org).await;
    let filter = AuditFilter {
        action: Some("request.denied".into()),
        ..AuditFilter::default()
    };
    let page = f.a.audit(&org, "acme", 100, None, filter).await.unwrap();
    assert_eq!(page.events.len(), 1, "{:?}", page.events);
    let e = &page.events[0];
    assert_eq!(e.count, 50);
    assert!(
        e.detail.starts_with("set NAME_0 in app web"),
        "{}",
        e.detail
    );
}

/// Moves stored records around directly in the database and shows that what opens
/// them fails with a clear error instead of answering another secret's value.
async fn tampering_is_caught(location: crate::store::Location, dir: &tempfile::TempDir) {
    let setup = crate::authority::Setup {
        store: location,
        ..crate::authority::Setup::dir(dir.path())
    };
    let opened = Authority::open_with(&setup).await.unwrap();
    let a = opened.authority;
    let op = std::fs::read_to_string(opened.operator_token.unwrap()).unwrap();
    let op = who(&a, op.trim()).await;
    let mut tokens = Vec::new();
    for org in ["acme", "beta"] {
        tokens.push(
            a.create_org(&op, org, None)
                .await
                .unwrap()
                .token
                .expose()
                .to_owned(),
        );
    }
    with_apps(&a, &tokens[0], "acme").await;
    with_apps(&a, &tokens[1], "beta").await;
    let s = Secrets::new(a.clone(), Options::default());
    let acme = who(&a, &tokens[0]).await;
    let beta = who(&a, &tokens[1]).await;
    let beta_web = Scope {
        org: "beta",
        app: Some("web"),
    };
    s.write(
        &acme,
        WEB,
        sets(&[("DB_URL", "web-db"), ("API_KEY", "web-key")]),
    )
    .await
    .unwrap();
    s.write(&acme, WEB, sets(&[("DB_URL", "web-db-2")]))
        .await
        .unwrap();
    s.write(&acme, API, sets(&[("DB_URL", "api-db")]))
        .await
        .unwrap();
    s.write(&acme, ORG, sets(&[("DB_URL", "org-db")]))
        .await
        .unwrap();
    s.write(&beta, beta_web, sets(&[("DB_URL", "beta-db")]))
        .await
        .unwrap();

    let sealed = |org: &'static str, app: Option<&'static str>, name: &'static str, v: u64| {
        let store = a.store().clone();
        async move {
            store
                .read(move |r| r.secret_version(org, app, name, v))
                .await
                .unwrap()
                .unwrap()
        }
    };
    let target = sealed("acme", Some("web"), "DB_URL", 1).await;
    // Each donor: another app, no app, another name, another version, another org.
    let donors = [
        sealed("acme", Some("api"), "DB_URL", 1).await,
        sealed("acme", None, "DB_URL", 1).await,
        sealed("acme", Some("web"), "API_KEY", 1).await,
        sealed("acme", Some("web"), "DB_URL", 2).await,
        sealed("beta", Some("web"), "DB_URL", 1).await,
    ];
    let put = |v: SecretVersion| {
        let store = a.store().clone();
        async move {
            store
                .write(move |tx| tx.put_secret_version(&v))
                .await
                .unwrap();
        }
    };
    for donor in &donors {
        for part in ["ciphertext", "wrapped data key", "both"] {
            let mut moved = target.clone();
            let (mine, theirs) = (
                moved.sealed.as_mut().unwrap(),
                donor.sealed.as_ref().unwrap(),
            );
            match part {
                "ciphertext" => mine.ciphertext.clone_from(&theirs.ciphertext),
                "wrapped data key" => mine.wrapped_key.clone_from(&theirs.wrapped_key),
                _ => *mine = theirs.clone(),
            }
            put(moved).await;
            match s.rollback(&acme, WEB, "DB_URL", 1).await {
                Err(SecretError::Corrupt(why)) => {
                    assert!(why.contains("acme/web DB_URL v1"), "{why}");
                    assert!(!why.contains("db"), "{why}");
                }
                other => panic!("{part} from {donor:?}: {other:?}"),
            }
        }
    }
    put(target.clone()).await;
    s.rollback(&acme, WEB, "DB_URL", 1).await.unwrap();

    // An org's wrapped secrets key moved into the root-key table does not unwrap as a
    // root key: the authority refuses to start on it, saying which key.
    let keys = a
        .store()
        .read(|r| r.secret_keys("acme"))
        .await
        .unwrap()
        .unwrap();
    let root = crate::model::RootKeyVersion::new("acme", 2, keys.keys[0].1.clone(), a.now());
    a.store().write(move |tx| tx.put_key(&root)).await.unwrap();
    drop((acme, beta, s, op));
    drop(a);
    let again = Authority::open_with(&crate::authority::Setup {
        may_initialise: false,
        ..setup
    })
    .await;
    let Err(err) = again else {
        panic!("a swapped key must not load");
    };
    let err = err.to_string();
    assert!(err.contains("acme") && err.contains('2'), "{err}");
}

#[tokio::test]
async fn moved_records_do_not_open_on_redb() {
    let dir = tempfile::tempdir().unwrap();
    let location = crate::store::Location::Dir(dir.path().to_owned());
    tampering_is_caught(location, &dir).await;
}

#[tokio::test]
async fn moved_records_do_not_open_on_postgres() {
    let Some(db) = crate::store::conformance::TestDb::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    tampering_is_caught(crate::store::Location::Postgres(db.url.clone()), &dir).await;
}

#[tokio::test]
async fn a_version_1_data_directory_takes_secrets() {
    let (dir, tokens) = crate::authority::tests::upgrade::fixture();
    let opened = Authority::open(dir.path()).await.unwrap();
    let a = opened.authority;
    let acme = a.store().read(|r| r.org("acme")).await.unwrap().unwrap();
    a.set_clock(acme.created + 60);
    let s = Secrets::new(a.clone(), Options::default());
    let org = who(&a, tokens["acme"].as_str().unwrap()).await;
    s.write(&org, WEB, sets(&[("DB_URL", "v")])).await.unwrap();
    s.write(&org, ORG, sets(&[("LOG", "info")])).await.unwrap();
    let listing = s.list(&org, WEB, true).await.unwrap();
    assert_eq!(listing.secrets.len(), 2);
    assert_eq!(listing.version, 2);
    drop((s, org, a));
    // Reopened: the upgraded store and its secrets are there.
    let a = Authority::open(dir.path()).await.unwrap().authority;
    a.set_clock(acme.created + 60);
    let s = Secrets::new(a.clone(), Options::default());
    let org = who(&a, tokens["acme"].as_str().unwrap()).await;
    assert_eq!(s.list(&org, WEB, true).await.unwrap().secrets.len(), 2);
}

/// Writers on one app all land (PostgreSQL): they queue on the store's write lock
/// instead of aborting each other under SERIALIZABLE until the retries run out.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_to_one_app_all_land_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_db, a, token)) = crate::authority::tests::on_postgres(dir.path()).await else {
        return;
    };
    let s = Arc::new(Secrets::new(a.clone(), Options::default()));
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let (s, a, token) = (s.clone(), a.clone(), token.clone());
            tokio::spawn(async move {
                let org = who(&a, &token).await;
                for i in 0..25 {
                    s.write(&org, WEB, sets(&[("SHARED", &format!("{w}-{i}"))]))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let org = who(&a, &token).await;
    let head = s.get(&org, WEB, "SHARED").await.unwrap().head;
    assert_eq!(head.version, 400);
}

/// A set of one secret of an app on PostgreSQL, once the connection has prepared its
/// statements, is 4 round trips (docs/SCALING.md, "Round trips"): what it reads before
/// deciding (with BEGIN), what the size checks read (with the new version and head),
/// the counter bump (answering the org's counter too), and COMMIT (with the feed entry
/// and the audit event). The same when the write may create its app, and for a write
/// of many names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_takes_four_round_trips_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_db, a, token)) = crate::authority::tests::on_postgres(dir.path()).await else {
        return;
    };
    let s = Secrets::new(a.clone(), Options::default());
    let org = who(&a, &token).await;
    // Every pooled connection prepares the statements of a set on its first one.
    for i in 0..20 {
        s.write(&org, WEB, sets(&[("A", &i.to_string()), ("U", "u")]))
            .await
            .unwrap();
    }
    for create_app in [false, true] {
        let before = a.store().round_trips().unwrap();
        let w = Write {
            create_app,
            ..sets(&[("A", &create_app.to_string())])
        };
        s.write(&org, WEB, w).await.unwrap();
        let trips = a.store().round_trips().unwrap() - before;
        assert_eq!(
            trips, 4,
            "round trips of one set (create_app: {create_app})"
        );
    }
    let head = s.get(&org, WEB, "A").await.unwrap().head;
    assert_eq!(head.version, 22);
    let names: Vec<String> = (0..8).map(|i| format!("M{i}")).collect();
    let pairs: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
    let many = Write {
        unset: unset(&["U"]).unset,
        ..sets(&pairs)
    };
    let before = a.store().round_trips().unwrap();
    let done = s.write(&org, WEB, many).await.unwrap();
    let trips = a.store().round_trips().unwrap() - before;
    assert_eq!(done.secrets.len(), 9);
    assert_eq!(trips, 4, "round trips of a write of 9 names");
}

#[tokio::test]
async fn digests_are_shown_only_to_tokens_that_may_reveal() {
    let f = fixture().await;
    f.write(&f.org, WEB, sets(&[("PIN", "4821")]))
        .await
        .unwrap();
    let deploy = who(&f.a, &f.token(TokenKind::Deploy, Some("web")).await).await;
    // A deploy token writes a wrong guess, then the right one: nothing it is told
    // (dry run, listing, metadata, history) carries a digest or tells them apart.
    let mut told = Vec::new();
    for guess in ["1111", "4821"] {
        let dry = Write {
            dry_run: true,
            ..sets(&[("PIN", guess)])
        };
        let would = f.s.write(&deploy, WEB, dry).await.unwrap().secrets[0].would;
        f.s.write(&deploy, WEB, sets(&[("PIN", guess)]))
            .await
            .unwrap();
        let listing = f.s.list(&deploy, WEB, true).await.unwrap();
        assert!(listing.secrets.iter().all(|l| l.digest.is_none()));
        assert_eq!(f.s.get(&deploy, WEB, "PIN").await.unwrap().digest, None);
        let (shown, history) = f.s.history(&deploy, WEB, "PIN").await.unwrap();
        assert_eq!(shown.digest, None);
        assert!(history.iter().all(|h| h.digest.is_none()));
        told.push(would);
    }
    assert_eq!(told, [Some(WouldChange::Set); 2]);
    // The org token (which may reveal) sees them: the right guess matches the first.
    let org = who(&f.a, &f.org).await;
    let listing = f.s.list(&org, WEB, true).await.unwrap();
    assert!(listing.secrets.iter().all(|l| l.digest.is_some()));
    let (shown, history) = f.s.history(&org, WEB, "PIN").await.unwrap();
    assert_eq!(shown.digest, history[2].digest);
    assert_eq!(history[0].digest, history[2].digest);
    assert_ne!(history[0].digest, history[1].digest);
}

#[tokio::test]
async fn names_that_load_code_are_written_only_by_tokens_that_could_reveal_the_scope() {
    use crate::secrets::loads_code::{DATA_ONLY, FAMILIES, NAMES};
    let f = fixture().await;
    let deploy = f.token(TokenKind::Deploy, Some("web")).await;
    // An org token narrowed to the very names: it could not reveal the whole scope.
    let pythonish =
        crate::token::attenuate(&f.org, &[Caveat::secrets(["PYTHON*", "path"]).unwrap()]).unwrap();
    let mut names: Vec<String> = FAMILIES.iter().map(|p| format!("{p}X")).collect();
    names.extend(NAMES.iter().map(|n| (*n).to_owned()));
    let lower: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
    names.extend(lower);
    for name in &names {
        let r = f.write(&deploy, WEB, sets(&[(name, "x")])).await;
        let denied = crate::authority::ErrorClass::Denied;
        assert!(
            matches!(&r, Err(e @ SecretError::LoadsCode { .. }) if e.class() == denied),
            "{name}: {r:?}"
        );
        // The org token may: it can reveal every value anyway.
        f.write(&f.org, WEB, sets(&[(name, "x")])).await.unwrap();
    }
    // A token filtered to those very names does not qualify either.
    for name in ["PYTHONWARNINGS", "path"] {
        let r = f.write(&pythonish, WEB, sets(&[(name, "x")])).await;
        assert!(
            matches!(&r, Err(SecretError::LoadsCode { .. })),
            "{name}: {r:?}"
        );
    }
    // Data-only names stay writable by a deploy token, as do ordinary ones.
    for name in DATA_ONLY.iter().chain(&["DB_URL"]) {
        f.write(&deploy, WEB, sets(&[(name, "1")])).await.unwrap();
    }
    // The refusal names the rule, and is audited with the name (never the value).
    let r = f
        .write(
            &deploy,
            WEB,
            sets(&[("PYTHONWARNINGS", "all:0:antigravity.x:0:0")]),
        )
        .await;
    let text = r.unwrap_err().to_string();
    assert!(
        text.contains("PYTHONWARNINGS") && text.contains("reveal the whole scope"),
        "{text}"
    );
    let org = who(&f.a, &f.org).await;
    let page =
        f.a.audit(&org, "acme", 1000, None, AuditFilter::default())
            .await
            .unwrap();
    let denied: Vec<&str> = page
        .events
        .iter()
        .filter(|e| e.outcome == Outcome::Denied)
        .map(|e| e.detail.as_str())
        .collect();
    assert!(
        denied.iter().any(|d| d.contains("PYTHONWARNINGS")),
        "{denied:?}"
    );
    assert!(
        !denied.iter().any(|d| d.contains("antigravity")),
        "{denied:?}"
    );
}
