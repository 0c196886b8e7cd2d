//! The authority's sense of time. Release builds read the system clock; tests can fix
//! it (only under `cfg(test)`: there is no clock override in a release build).

use std::time::{SystemTime, UNIX_EPOCH};

/// The current time, unix seconds.
pub fn system_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Where the authority reads the time.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    #[cfg(test)]
    fixed: std::sync::atomic::AtomicU64,
}

impl Clock {
    /// Unix seconds.
    pub(crate) fn now(&self) -> u64 {
        #[cfg(test)]
        {
            let fixed = self.fixed.load(std::sync::atomic::Ordering::SeqCst);
            if fixed != 0 {
                return fixed;
            }
        }
        system_now()
    }

    /// Fixes the time (0: the system clock again).
    #[cfg(test)]
    pub(crate) fn set(&self, now: u64) {
        self.fixed.store(now, std::sync::atomic::Ordering::SeqCst);
    }
}
