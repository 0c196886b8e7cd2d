//! Bodies of `/v1/orgs/{org}/apps…`.

use serde::{Deserialize, Serialize};

use super::TokenRecordBody;
use crate::authority::{AppDetail, DeletedApp};
use crate::caveats::format_time;

/// `POST /v1/orgs/{org}/apps`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAppRequest {
    /// Its name (lowercase letters, digits and dashes).
    pub name: String,
}

/// An app and what names it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppBody {
    /// Its name.
    pub name: String,
    /// When it was created (`null`: registered by the upgrade that made apps explicit).
    pub created: Option<String>,
    /// Secrets set in its scope.
    pub secrets: usize,
    /// Live tokens naming it.
    pub tokens: usize,
    /// Its secrets' version (what `run --watch` follows).
    pub secrets_version: u64,
    /// Those tokens (`GET …/apps/{app}` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub live_tokens: Vec<TokenRecordBody>,
}

/// `GET /v1/orgs/{org}/apps`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppList {
    /// By name.
    pub apps: Vec<AppBody>,
}

/// `DELETE /v1/orgs/{org}/apps/{app}` (the body is optional).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteAppRequest {
    /// Delete it although secrets or live tokens name it: revoke those tokens and
    /// destroy those secrets' values.
    #[serde(default)]
    pub force: bool,
    /// Change nothing: answer what it would do.
    #[serde(default)]
    pub dry_run: bool,
}

/// What deleting an app did (or would do).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeletedAppBody {
    /// The app.
    pub name: String,
    /// Tokens revoked.
    pub revoked: Vec<TokenRecordBody>,
    /// Secrets whose values were destroyed.
    pub destroyed: Vec<String>,
    /// Whether this was a dry run.
    pub dry_run: bool,
}

impl AppBody {
    /// The body of `d`, with its live tokens listed when `with_tokens`.
    pub fn new(d: &AppDetail, with_tokens: bool) -> Self {
        AppBody {
            name: d.app.name.clone(),
            created: (d.app.created > 0).then(|| format_time(d.app.created)),
            secrets: d.secrets,
            tokens: d.tokens.len(),
            secrets_version: d.version,
            live_tokens: if with_tokens {
                d.tokens
                    .iter()
                    .map(|t| TokenRecordBody::new(t, "active", None))
                    .collect()
            } else {
                Vec::new()
            },
        }
    }
}

impl DeletedAppBody {
    /// The body of `d`.
    pub fn new(d: &DeletedApp, dry_run: bool) -> Self {
        DeletedAppBody {
            name: d.app.name.clone(),
            revoked: d
                .revoked
                .iter()
                .map(|t| TokenRecordBody::new(t, "revoked", None))
                .collect(),
            destroyed: d.destroyed.clone(),
            dry_run,
        }
    }
}
