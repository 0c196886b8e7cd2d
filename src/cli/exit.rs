//! Exit codes by class, and how a failed command reports itself.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success; allowed |
//! | 1 | denied (403, or `allowed: false`) |
//! | 2 | usage (bad arguments, unusable token file) |
//! | 3 | not authenticated (401) |
//! | 4 | server unreachable, timeout or 5xx |
//! | 5 | any other refusal (400, 404, 409, 413, 429; a local refusal) |

use std::process::ExitCode;

use super::client::{ApiError, TransportError};
use super::output::clean;

/// The exit codes, for `--help`.
pub const HELP: &str = "Exit codes: 0 success or allowed, 1 denied, 2 usage, 3 not authenticated, \
4 server unreachable (or timeout, 5xx), 5 any other refusal (400, 404, 409, 413, 429).";

/// A command's outcome class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0.
    Success = 0,
    /// 1: a caveat denied.
    Denied = 1,
    /// 2: the command line (or a file it names) is unusable.
    Usage = 2,
    /// 3: the token does not authenticate.
    Unauthenticated = 3,
    /// 4: no usable answer from the server.
    Unreachable = 4,
    /// 5: any other refusal.
    Refused = 5,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> ExitCode {
        ExitCode::from(self as u8)
    }

    fn name(self) -> &'static str {
        match self {
            Exit::Success => "ok",
            Exit::Denied => "denied",
            Exit::Usage => "usage",
            Exit::Unauthenticated => "unauthenticated",
            Exit::Unreachable => "unreachable",
            Exit::Refused => "refused",
        }
    }
}

/// A mistake in how the command was called (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A usage error.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

/// The class of a failed command, from the first cause that has one.
pub fn classify(err: &anyhow::Error) -> Exit {
    for cause in err.chain() {
        if let Some(api) = cause.downcast_ref::<ApiError>() {
            return api.exit();
        }
        if cause.is::<TransportError>() {
            return Exit::Unreachable;
        }
        if cause.is::<UsageError>() {
            return Exit::Usage;
        }
    }
    Exit::Refused
}

/// An error as one line for people: every cause, terminal controls escaped.
pub fn describe(err: &anyhow::Error) -> String {
    clean(&format!("{err:#}")).into_owned()
}

/// Reports `err` on stderr (as JSON with `--json`) and gives its exit code.
pub fn report(err: &anyhow::Error, json: bool) -> ExitCode {
    let exit = classify(err);
    if json {
        let code = err
            .chain()
            .find_map(|c| c.downcast_ref::<ApiError>())
            .and_then(|api| api.body.as_ref().map(|b| b.error.code.clone()))
            .unwrap_or_else(|| exit.name().to_owned());
        let body = serde_json::json!({
            "error": {"code": code, "message": format!("{err:#}")},
            "exit": exit as u8,
        });
        eprintln!("{body}");
    } else {
        eprintln!("error: {}", describe(err));
    }
    exit.code()
}
