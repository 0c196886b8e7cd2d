//! Append-only audit events: the actions audited and how their details read. Events
//! never carry a token, a key or a secret value: actors are token ids, and names that
//! came from requests are escaped and cut.

use crate::caveats::{Excerpt, format_time};
use crate::model::TokenRecord;

/// Audited actions (stable strings; the API shows them).
pub mod action {
    /// An org was created.
    pub const ORG_CREATE: &str = "org.create";
    /// An app was created.
    pub const APP_CREATE: &str = "app.create";
    /// An app was deleted.
    pub const APP_DELETE: &str = "app.delete";
    /// An org's settings changed.
    pub const ORG_UPDATE: &str = "org.update";
    /// A token was minted.
    pub const TOKEN_MINT: &str = "token.mint";
    /// A token was revoked.
    pub const TOKEN_REVOKE: &str = "token.revoke";
    /// A token was replaced by a sibling.
    pub const TOKEN_ROTATE: &str = "token.rotate";
    /// A root key was rotated.
    pub const KEY_ROTATE: &str = "key.rotate";
    /// A root key was retired.
    pub const KEY_RETIRE: &str = "key.retire";
    /// Secrets were set (new versions written).
    pub const SECRET_SET: &str = "secret.set";
    /// Secrets were unset (their history remains).
    pub const SECRET_UNSET: &str = "secret.unset";
    /// A secret's old value was written again as a new version.
    pub const SECRET_ROLLBACK: &str = "secret.rollback";
    /// An app's secret values were revealed (to `run`, say).
    pub const SECRET_REVEAL: &str = "secret.reveal";
    /// An org's secrets key was rotated (or its old keys deleted once re-wrapped).
    pub const SECRET_KEY_ROTATE: &str = "secret.key_rotate";
    /// Stored values of a secret were purged for good.
    pub const SECRET_DESTROY: &str = "secret.destroy";
    /// A scope's allow-list of names that load code changed.
    pub const SECRET_ALLOW_ENV: &str = "secret.allow_env";
    /// A third party was registered.
    pub const THIRD_PARTY_ADD: &str = "third_party.add";
    /// A third party was removed.
    pub const THIRD_PARTY_REMOVE: &str = "third_party.remove";
    /// A third party got a new key pair.
    pub const THIRD_PARTY_ROTATE: &str = "third_party.rotate_key";
    /// A third party's older key retired.
    pub const THIRD_PARTY_RETIRE_KEY: &str = "third_party.retire_key";
    /// The built-in discharger discharged a ticket (or refused to).
    pub const THIRD_PARTY_DISCHARGE: &str = "third_party.discharge";
    /// A caveat denied a request.
    pub const REQUEST_DENIED: &str = "request.denied";
    /// An OAuth client was registered.
    pub const OAUTH_CLIENT_ADD: &str = "oauth_client.add";
    /// An OAuth client was removed.
    pub const OAUTH_CLIENT_REMOVE: &str = "oauth_client.remove";
    /// A person granted an OAuth client access (a consent).
    pub const OAUTH_GRANT: &str = "oauth.grant";
    /// An OAuth grant was revoked (by a person, by its client, or for a reused code or
    /// refresh token).
    pub const OAUTH_GRANT_REVOKE: &str = "oauth.grant_revoke";
}

/// `deploy token "ci" (ID) for app web, expires T`.
pub fn mint_detail(rec: &TokenRecord) -> String {
    let app = rec
        .app
        .as_ref()
        .map(|a| format!(" for app {a}"))
        .unwrap_or_default();
    format!(
        "{} token \"{}\" ({}){app}, expires {}",
        rec.kind.name(),
        Excerpt(rec.name.as_bytes()),
        rec.id,
        format_time(rec.expires)
    )
}

/// `deploy token "ci" (ID)`.
pub fn token_label(rec: &TokenRecord) -> String {
    format!(
        "{} token \"{}\" ({})",
        rec.kind.name(),
        Excerpt(rec.name.as_bytes()),
        rec.id
    )
}
