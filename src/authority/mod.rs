//! The token authority: orgs and their root keys, minting presets, the ledger,
//! lineage and revocation, last-used, the audit trail, the change feed, dashboard
//! sessions, the OAuth provider (clients, scopes, consent, codes, grants), and full
//! verification of a request.
//!
//! Verification never reads the disk: root keys ([`Keyring`](keyring)) and the
//! deny-list ([`DenyList`](denylist)) live in memory and follow the store's change
//! feed; last-used times and denial events wait in a bounded queue ([`UsageQueue`](usage))
//! for the background writer. [`Authority::authenticate`] is the only way to a
//! [`Principal`], and every operation takes one.

mod apps;
mod audit;
mod authenticate;
mod bootstrap;
mod clock;
mod copy;
mod denylist;
mod discharges;
mod error;
mod feed;
pub mod files;
mod journal;
mod keyring;
mod keys;
mod ledger;
mod master;
mod mint;
mod oauth;
mod oauth_flow;
mod oauth_grants;
mod oauth_scopes;
mod orgs;
mod presets;
mod principal;
mod revoke;
mod rotate;
pub(crate) mod sealing;
mod service;
mod sessions;
pub(crate) mod shared;
mod third_parties;
mod usage;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

pub(crate) use apps::missing_app;
pub use apps::{AppDetail, AppError, DeletedApp, NoSuchApp};
pub use audit::{AuditFilter, AuditPage, FOLLOW_CAP, FOLLOW_PARKED, MAX_PAGE};
pub use bootstrap::{MASTER_FILE, OPERATOR_FILE, Opened, Setup};
pub use clock::system_now;
pub use copy::{CopyCounts, CopyError, CopyProgress, copy_store, copy_store_reporting};
pub use error::{
    AuditError, AuthError, Classify, Error, ErrorClass, IdError, KeyError, LedgerError, MintError,
    NameError, OrgError, OutsideLineage, RevokeError, RotateError, StartError, ThirdPartyError,
};
pub use feed::{FlushHealth, Readiness};
pub use keys::RetirePreview;
pub use ledger::TokenDetail;
pub use master::{MasterKey, MasterKeyError};
pub use mint::{MintSpec, Minted, Secret};
pub use oauth::{
    MAX_REDIRECT_URIS, NewOAuthClient, OAuthClientError, Registered, check_redirect_uri,
    redirect_matches,
};
pub use oauth_flow::{
    ACCESS_LIFETIME, Authorization, AuthorizeError, AuthorizeParams, CODE_LIFETIME,
    ClientCredentials, ConsentError, GRANT_LIFETIME, Issued, TokenError, TokenRequest,
};
pub use oauth_grants::{GrantError, GrantView};
pub use oauth_scopes::{Scope, ScopeError, Scopes};
pub use orgs::OrgChange;
pub use presets::DEFAULT_EXPIRY;
pub use principal::Principal;
pub use revoke::{RevokeOptions, Revoked};
pub use rotate::Rotated;
pub use sessions::{SESSION_LIFETIME, SESSION_NAME, SessionError};
pub(crate) use third_parties::is_loopback;
pub use third_parties::{
    KEYS_PATH, MAX_JWKS, NewThirdParty, PublishedKey, RetiredKey, ThirdPartyDetail,
    parse_conditions,
};
pub(crate) use usage::Refused;

use crate::caveats::{Excerpt, is_valid_name};
/// Where a store lives (a data directory or a PostgreSQL URL).
pub use crate::store::Location;
use crate::store::Store;
use clock::Clock;
use denylist::DenyList;
use feed::Follower;
use keyring::Keyring;
use usage::UsageQueue;

/// The org whose tokens administer the authority itself (creating orgs).
pub const SYSTEM_ORG: &str = "system";

/// The client side of a request: where it came from and what it calls itself.
#[derive(Debug, Clone, Default)]
pub struct Client {
    /// The client's address (the peer, or from a trusted proxy's header).
    pub ip: Option<IpAddr>,
    /// The User-Agent header.
    pub user_agent: Option<String>,
}

impl Client {
    /// The same, borrowed.
    pub fn borrowed(&self) -> ClientRef<'_> {
        ClientRef {
            ip: self.ip,
            user_agent: self.user_agent.as_deref(),
        }
    }
}

/// [`Client`] borrowed from the request, for the verify path, which copies nothing
/// unless the ledger's last-used record changes.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientRef<'a> {
    /// The client's address.
    pub ip: Option<IpAddr>,
    /// The User-Agent header.
    pub user_agent: Option<&'a str>,
}

/// How a node runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// How long the node may go without catching up with the change feed before it
    /// refuses to authenticate (`serve --max-staleness`).
    pub max_staleness: Duration,
    /// How often the feed is polled (LISTEN/NOTIFY, where there is one, is quicker).
    pub poll_every: Duration,
    /// How often queued last-used times and events are written.
    pub flush_every: Duration,
    /// How often expired deny-list and feed entries are dropped.
    pub compact_every: Duration,
    /// How long feed entries are kept (a node away longer reloads everything).
    pub feed_retention: Duration,
    /// How long audit events are kept (`serve --audit-retention`; `None`: for ever).
    pub audit_retention: Option<Duration>,
    /// How long one token's denials of one kind aggregate into one audit event, from
    /// the first (`serve --audit-denial-window`; whole seconds, at least 1).
    pub denial_window: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_staleness: Duration::from_secs(30),
            poll_every: Duration::from_millis(250),
            flush_every: Duration::from_secs(1),
            compact_every: Duration::from_secs(600),
            feed_retention: Duration::from_secs(24 * 3600),
            audit_retention: None,
            denial_window: Duration::from_secs(usage::DENIAL_WINDOW),
        }
    }
}

/// The authority: the store, the master key, and the in-memory state the verify path
/// reads.
pub struct Authority {
    store: Store,
    master: Arc<MasterKey>,
    config: Config,
    clock: Clock,
    keyring: Keyring,
    deny: DenyList,
    usage: UsageQueue,
    /// One flush of queued uses and events at a time: two concurrent flushes (the
    /// background writer's and an audit read's) could otherwise commit out of order,
    /// and an older use of the same second overwrite a newer one.
    flushing: tokio::sync::Mutex<()>,
    /// How those flushes fare.
    flushes: feed::Flushes,
    follower: Follower,
    changes: tokio::sync::broadcast::Sender<crate::model::Change>,
    journal: journal::Journal,
    /// Set once when the node starts shutting down.
    draining: tokio::sync::watch::Sender<bool>,
    /// The dashboard's anti-forgery key, derived from the master key once.
    csrf_key: zeroize::Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Authority {
    /// The authority over `store`, whose root keys `master` unwraps. Refuses a store
    /// initialised with another master key; loads keys and the deny-list.
    pub async fn new(store: Store, master: MasterKey, config: Config) -> Result<Self, StartError> {
        let csrf_key = master.derive(b"macvault dashboard csrf v1");
        let authority = Authority {
            csrf_key,
            store,
            master: Arc::new(master),
            follower: Follower::new(config.max_staleness),
            usage: UsageQueue::default().with_window(config.denial_window.as_secs()),
            config,
            clock: Clock::default(),
            keyring: Keyring::default(),
            deny: DenyList::default(),
            flushing: tokio::sync::Mutex::new(()),
            flushes: feed::Flushes::new(),
            changes: tokio::sync::broadcast::channel(1024).0,
            journal: journal::Journal::default(),
            draining: tokio::sync::watch::Sender::new(false),
        };
        authority.check_master().await?;
        authority.reload().await?;
        Ok(authority)
    }

    /// The store, for the layers built on the authority inside this crate (the
    /// secrets store, `store copy`); `http/` and `cli/` go through the authority.
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// `redb` or `postgres`: which backend the store is on.
    pub fn backend_name(&self) -> &'static str {
        self.store.backend_name()
    }

    /// The master key (the secrets store wraps its org keys with it).
    pub(crate) fn master(&self) -> &Arc<MasterKey> {
        &self.master
    }

    /// The time the authority works with, unix seconds.
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// Starts the background work: the writer of last-used times and events, the
    /// change-feed follower and compaction. [`Background::stop`] ends it.
    pub fn start(self: &Arc<Self>) -> Background {
        feed::start(self)
    }

    #[cfg(test)]
    pub(crate) fn set_clock(&self, now: u64) {
        self.clock.set(now);
    }
}

pub use feed::Background;

/// An org name and, if given, an app name.
pub(crate) fn check_scope(org: &str, app: Option<&str>) -> Result<(), NameError> {
    check_name("org", org)?;
    app.map_or(Ok(()), |app| check_name("app", app))
}

fn check_name(what: &'static str, name: &str) -> Result<(), NameError> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(NameError {
            what,
            shown: Excerpt(name.as_bytes()).to_string(),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests;
