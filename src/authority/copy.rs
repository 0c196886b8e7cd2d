//! `macvault store copy`: everything in one store into another, empty one, in either
//! direction between a data directory and PostgreSQL. It is also the backup and
//! restore path (docs/SCALING.md). Root keys stay wrapped: the target needs the same
//! master key file.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::StartError;
use super::bootstrap::make_private_dir;
use crate::store::{Dump, Location, OpenError, Store, StoreError};

/// Why a copy failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// Source and target are the same.
    #[error("--from and --to name the same store")]
    Same,
    /// The target holds data already.
    #[error("{0} is not empty: copy only into a new data directory or an empty database")]
    NotEmpty(String),
    /// A store could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// A store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The target directory could not be made.
    #[error(transparent)]
    Start(#[from] StartError),
}

/// What a copy moved: (what, how many).
pub type CopyCounts = [(&'static str, usize); 7];

/// How far a copy has got, for a progress display: the records it will write (0 while
/// it reads the source) and those written so far.
#[derive(Debug, Default)]
pub struct CopyProgress {
    total: AtomicU64,
    written: AtomicU64,
}

impl CopyProgress {
    /// (written, total): total is 0 while the source is being read.
    pub fn now(&self) -> (u64, u64) {
        (
            self.written.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        )
    }
}

/// Copies everything from `from` into the empty store `to`, in one transaction.
pub async fn copy_store(from: &Location, to: &Location) -> Result<CopyCounts, CopyError> {
    copy_store_reporting(from, to, Arc::default()).await
}

/// [`copy_store`], reporting how far it has got in `progress`.
pub async fn copy_store_reporting(
    from: &Location,
    to: &Location,
    progress: Arc<CopyProgress>,
) -> Result<CopyCounts, CopyError> {
    if from == to {
        return Err(CopyError::Same);
    }
    if let Location::Dir(dir) = to {
        make_private_dir(dir)?;
    }
    let source = Store::open(from).await?;
    let target = Store::open(to).await?;
    if !target.is_empty().await? {
        return Err(CopyError::NotEmpty(to.to_string()));
    }
    let dump = Arc::new(source.read(Dump::read).await?);
    let counts = dump.counts();
    progress.total.store(dump.records(), Ordering::Relaxed);
    target
        .write(move |tx| dump.write_counting(tx, &progress.written))
        .await?;
    Ok(counts)
}
