//! Opening an authority: the data directory, the master key, the store, and the first
//! initialisation of an empty store (the master key's check value, the system org and
//! the operator token), once, however many nodes start at once.

use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::orgs::FirstToken;
use super::revoke::RevokeOptions;
use super::{
    Authority, Config, MasterKey, OrgError, SYSTEM_ORG, StartError, files, master, presets,
};
use crate::audit::{action, mint_detail};
use crate::model::{Actor, AuditEvent, Outcome, TokenKind};
use crate::store::{Location, Store, StoreError};

/// The operator token's file in the data directory.
pub const OPERATOR_FILE: &str = "operator.token";
/// The master key's file in the data directory (unless told otherwise).
pub const MASTER_FILE: &str = "master.key";

/// Where a node keeps its store and keys.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Where the store is.
    pub store: Location,
    /// The node's own directory: its master key file (by default) and, on the node
    /// that initialises the store, `operator.token`.
    pub data_dir: PathBuf,
    /// The master key file, if not `data_dir/master.key`.
    pub master_key_file: Option<PathBuf>,
    /// Whether this node may initialise an empty store.
    pub may_initialise: bool,
    /// How the node runs.
    pub config: Config,
}

impl Setup {
    /// The embedded store in `data_dir`, initialised on first start.
    pub fn dir(data_dir: &Path) -> Self {
        Setup {
            store: Location::Dir(data_dir.to_owned()),
            data_dir: data_dir.to_owned(),
            master_key_file: None,
            may_initialise: true,
            config: Config::default(),
        }
    }

    fn master_path(&self) -> PathBuf {
        self.master_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join(MASTER_FILE))
    }
}

/// What opening did.
#[derive(Debug)]
pub struct Opened {
    /// The authority.
    pub authority: Arc<Authority>,
    /// Where the operator token was written, if this start initialised the store.
    pub operator_token: Option<PathBuf>,
}

fn io<'p>(what: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> StartError + 'p {
    move |source| StartError::Io {
        what,
        path: path.display().to_string(),
        source,
    }
}

/// The modes of the data directory, the database file and the operator token file, as
/// every start checks them (the master key's is checked as it is read).
fn check_files(setup: &Setup) -> Result<(), StartError> {
    files::check_dir(&setup.data_dir)?;
    if let crate::store::Location::Dir(dir) = &setup.store {
        files::check_dir(dir)?;
        files::check_file(&dir.join(crate::store::DB_FILE))?;
    }
    files::check_file(&setup.data_dir.join(OPERATOR_FILE))?;
    Ok(())
}

/// Creates `dir` (mode 0700) if it does not exist.
pub(crate) fn make_private_dir(dir: &Path) -> Result<(), StartError> {
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io("cannot create directory", dir))?;
    }
    Ok(())
}

impl Authority {
    /// Opens the embedded store in `data_dir`, creating the directory, the master key
    /// and the database on first start (and then the operator token, in
    /// `operator.token`, mode 0600).
    pub async fn open(data_dir: &Path) -> Result<Opened, StartError> {
        Authority::open_with(&Setup::dir(data_dir)).await
    }

    /// Opens the store `setup` names.
    pub async fn open_with(setup: &Setup) -> Result<Opened, StartError> {
        if !setup.may_initialise {
            // Look before touching anything: a typo must not leave a new data directory,
            // master key and empty database behind.
            let mut needed = vec![setup.master_path()];
            if let crate::store::Location::Dir(dir) = &setup.store {
                needed.push(dir.join(crate::store::DB_FILE));
            }
            if let Some(missing) = needed.iter().find(|p| !p.exists()) {
                return Err(StartError::NothingThere(missing.display().to_string()));
            }
        }
        make_private_dir(&setup.data_dir)?;
        check_files(setup)?;
        let master = MasterKey::load_or_create(&setup.master_path())?;
        let store = Store::open(&setup.store).await?;
        let authority = Authority::new(store, master, setup.config.clone()).await?;
        let operator_token = if setup.may_initialise {
            authority
                .initialise(&setup.data_dir.join(OPERATOR_FILE))
                .await?
        } else if authority.store.is_empty().await? {
            return Err(StartError::NotInitialised);
        } else {
            None
        };
        Ok(Opened {
            authority: Arc::new(authority),
            operator_token,
        })
    }

    /// Initialises an empty store: the master key's check value, the system org and
    /// the operator token (written to `operator_file`, mode 0600), in one transaction.
    /// Returns where the token went, or `None` if the store was initialised already
    /// (by this node before, or by another node just now).
    pub async fn initialise(&self, operator_file: &Path) -> Result<Option<PathBuf>, StartError> {
        if !self.store.is_empty().await? {
            return Ok(None);
        }
        let now = self.clock.now();
        let expires = now.saturating_add(presets::OPERATOR_EXPIRY.as_secs());
        let caveats = presets::caveats(TokenKind::Operator, SYSTEM_ORG, None, expires)
            .map_err(|e| StartError::Store(StoreError::Internal(e.to_string())))?;
        let first = FirstToken {
            kind: TokenKind::Operator,
            name: "operator",
            caveats,
            expires,
            issuer: None,
        };
        let check = self.master.check_value().to_vec();
        match self
            .found_org(SYSTEM_ORG, first, Actor::default(), Some(check))
            .await
        {
            Ok(minted) => {
                write_token_file(operator_file, minted.token.expose())?;
                Ok(Some(operator_file.to_owned()))
            }
            // Another node initialised it meanwhile: fine if it used the same master key.
            Err(OrgError::Store(StoreError::Conflict(_)) | OrgError::Exists(_)) => {
                self.check_master().await?;
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Refuses a store initialised with another master key. A store from before check
    /// values (schema version 1) gets one, once a root key proves the master key.
    pub(super) async fn check_master(&self) -> Result<(), StartError> {
        let (check, first_key) = self
            .store
            .read(|r| {
                let key = r.all_keys()?.into_iter().next();
                Ok::<_, StoreError>((r.master_check()?, key))
            })
            .await?;
        let mismatch = || StartError::MasterMismatch("this node's master key".into());
        match (check, first_key) {
            (Some(c), _) if self.master.matches(&c) => Ok(()),
            (Some(_), _) => Err(mismatch()),
            (None, None) => Ok(()),
            (None, Some(k)) => {
                self.master
                    .unwrap_key(&k.org, k.version, &k.wrapped)
                    .map_err(|_| mismatch())?;
                let check = self.master.check_value().to_vec();
                let stored = self
                    .store
                    .write(move |tx| match tx.init_master_check(&check) {
                        Err(StoreError::Conflict(_)) => Ok(()),
                        other => other,
                    })
                    .await;
                stored.map(|_| ()).map_err(StartError::Store)
            }
        }
    }
}

impl Authority {
    /// The offline way out of a lost or leaked operator token: mints a fresh one (a
    /// lineage root), revokes every earlier one (with what each minted in `system`;
    /// org tokens it issued are lineage roots and live on) and writes the new one to
    /// `operator_file` (mode 0600). Needs the master key, as opening the store does.
    pub async fn reissue_operator_token(&self, operator_file: &Path) -> Result<usize, StartError> {
        let system = self
            .read_org(SYSTEM_ORG)
            .await?
            .ok_or(StartError::NotInitialised)?;
        let now = self.clock.now();
        let expires = now.saturating_add(presets::OPERATOR_EXPIRY.as_secs());
        let caveats = presets::caveats(TokenKind::Operator, SYSTEM_ORG, None, expires)?;
        let key = self.minting_key(&system).await?;
        let minted = self.build_token(
            &key,
            &super::mint::NewToken {
                org: SYSTEM_ORG,
                key_version: system.current_key,
                kind: TokenKind::Operator,
                app: None,
                name: "operator",
                caveats: &caveats,
                creator: None,
                now,
                expires,
                third_party: None,
            },
        )?;
        let record = minted.record.clone();
        let event = AuditEvent::new(
            SYSTEM_ORG,
            action::TOKEN_MINT,
            Actor::default(),
            Outcome::Ok,
            format!(
                "{} issued offline with the master key",
                mint_detail(&record)
            ),
            now,
        );
        let done = self
            .store
            .write(move |tx| {
                tx.put_token(&record)?;
                tx.append_audit(&event)?;
                let earlier: Vec<_> = tx
                    .ledger(SYSTEM_ORG)?
                    .into_iter()
                    .map(|e| e.record)
                    .filter(|r| r.kind == TokenKind::Operator && r.id != record.id)
                    .filter(|r| !r.is_revoked_at(now) && r.expires > now)
                    .map(|r| r.id)
                    .collect();
                Ok::<_, StartError>(earlier)
            })
            .await?;
        // Written first: if revoking the old ones fails, the new one is already safe.
        write_token_file(operator_file, minted.token.expose())?;
        for old in &done.value {
            self.revoke_tree(*old, RevokeOptions::default(), Actor::default())
                .await?;
        }
        Ok(done.value.len())
    }
}

/// Writes a token file (mode 0600 whatever the umask), replacing an older one whole.
pub(crate) fn write_token_file(path: &Path, token: &str) -> Result<(), StartError> {
    let tmp = path.with_extension("token.tmp");
    let _ = std::fs::remove_file(&tmp);
    master::write_private(&tmp, format!("{token}\n").as_bytes())
        .map_err(io("cannot write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("cannot write", path))
}
