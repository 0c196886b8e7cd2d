//! The bodies of `/v1/orgs/{org}[/apps/{app}]/secrets…`. Values travel only in write
//! requests (as JSON strings); no answer here carries one.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::caveats::format_time;
use crate::model::SecretHead;
use crate::secrets::{
    Destroyed, HistoryEntry, KeyStatus, Listed, Listing, Revealed, SecretsVersions, SetSecret,
    UnsetSecret, Write, Written,
};

/// One secret to set.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetBody {
    /// The name.
    pub name: String,
    /// The value (UTF-8; at most 64 KiB, no NUL).
    pub value: String,
    /// For people; absent keeps the one it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// It stops resolving this many seconds from now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_secs: Option<u64>,
    /// Check-and-set: the version it must be at now (0: must not be set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_version: Option<u64>,
}

impl fmt::Debug for SetBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SetBody")
            .field("name", &self.name)
            .field("value", &super::REDACTED)
            .field("if_version", &self.if_version)
            .finish_non_exhaustive()
    }
}

/// One secret to unset.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnsetBody {
    /// The name.
    pub name: String,
    /// Check-and-set: the version it must be at now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_version: Option<u64>,
}

/// `POST …/secrets`: one atomic write.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteSecretsRequest {
    /// Secrets to set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<SetBody>,
    /// Secrets to unset.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unset: Vec<UnsetBody>,
    /// Check it all and answer what would change, writing nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// Create the app if the org has none of that name (org-level `apps/create`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub create_app: bool,
}

impl From<WriteSecretsRequest> for Write {
    fn from(req: WriteSecretsRequest) -> Self {
        Write {
            set: req
                .set
                .into_iter()
                .map(|s| SetSecret {
                    name: s.name,
                    value: Zeroizing::new(s.value.into_bytes()),
                    description: s.description,
                    expires_secs: s.expires_secs,
                    if_version: s.if_version,
                })
                .collect(),
            unset: req
                .unset
                .into_iter()
                .map(|u| UnsetSecret {
                    name: u.name,
                    if_version: u.if_version,
                })
                .collect(),
            dry_run: req.dry_run,
            create_app: req.create_app,
        }
    }
}

/// Secrets versions: an app's is the org's counter plus its own.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SecretsVersionBody {
    /// The org's counter (the version of every app without secrets of its own).
    pub org: u64,
    /// Each affected app with secrets of its own: its secrets version.
    pub apps: BTreeMap<String, u64>,
}

impl From<&SecretsVersions> for SecretsVersionBody {
    fn from(v: &SecretsVersions) -> Self {
        SecretsVersionBody {
            org: v.org,
            apps: v.apps.iter().cloned().collect(),
        }
    }
}

/// What a write did to one secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WrittenBody {
    /// The name.
    pub name: String,
    /// Its version now.
    pub version: u64,
    /// It was unset.
    #[serde(default)]
    pub unset: bool,
    /// In a dry run, what the set would do: `add`, `change`, `unchanged`, or `set`
    /// (the token may not reveal it, so whether the value differs is not said). In a
    /// write, `unchanged` for a set that wrote nothing: the same value, description and
    /// expiry as its current version, said only to a token that may reveal it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub would: Option<String>,
}

/// 200 answer of a write or a rollback.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WriteSecretsResponse {
    /// Each secret, in the order asked.
    pub secrets: Vec<WrittenBody>,
    /// The secrets versions it moved.
    pub secrets_version: SecretsVersionBody,
}

impl From<&Written> for WriteSecretsResponse {
    fn from(w: &Written) -> Self {
        WriteSecretsResponse {
            secrets: w
                .secrets
                .iter()
                .map(|s| WrittenBody {
                    name: s.name.clone(),
                    version: s.version,
                    unset: s.unset,
                    would: s.would.map(|w| w.name().to_owned()),
                })
                .collect(),
            secrets_version: (&w.versions).into(),
        }
    }
}

/// One secret's metadata (never its value).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretBody {
    /// The name.
    pub name: String,
    /// The app it belongs to; absent: the org's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// The current version (for an unset secret, the last one set).
    pub version: u64,
    /// Unset: nothing resolves, the history remains.
    #[serde(default)]
    pub unset: bool,
    /// The keyed digest of the current value (64 hex digits): equal digests, equal
    /// values of the same name and scope. Only for a token that may reveal the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// When it last changed.
    pub updated: String,
    /// When it stops resolving.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Past its expiry.
    #[serde(default)]
    pub expired: bool,
    /// For people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl SecretBody {
    /// The body of `head` with `digest` (if the token may see it), expired or not at `now`.
    pub fn new(head: &SecretHead, digest: Option<&[u8; 32]>, now: u64) -> Self {
        SecretBody {
            name: head.name.clone(),
            app: head.app.clone(),
            version: head.version,
            unset: head.unset,
            // An unset (or destroyed) secret has no current value, so no digest: never
            // the zeros a destroyed one keeps.
            digest: digest.filter(|_| !head.unset).map(|d| hex(d)),
            updated: format_time(head.updated),
            expires: head.expires.map(format_time),
            expired: head.expires.is_some_and(|e| e <= now),
            description: head.description.clone(),
        }
    }
}

impl From<&Listed> for SecretBody {
    fn from(l: &Listed) -> Self {
        let mut body = SecretBody::new(&l.head, l.digest.as_ref(), 0);
        body.expired = l.expired;
        body
    }
}

/// 200 answer of `GET …/secrets`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretList {
    /// The secrets the token may see, by name.
    pub secrets: Vec<SecretBody>,
    /// The scope's secrets version.
    pub secrets_version: u64,
}

impl From<&Listing> for SecretList {
    fn from(l: &Listing) -> Self {
        SecretList {
            secrets: l.secrets.iter().map(Into::into).collect(),
            secrets_version: l.version,
        }
    }
}

/// One version in a history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionBody {
    /// The version.
    pub version: u64,
    /// When it was written.
    pub created: String,
    /// The id of the token that wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// That token's name, while the ledger keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by_name: Option<String>,
    /// The version whose value it wrote again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<u64>,
    /// Its value was destroyed.
    #[serde(default)]
    pub destroyed: bool,
    /// It is the current value.
    #[serde(default)]
    pub current: bool,
    /// The keyed digest of its value (absent once destroyed, and for a token that may
    /// not reveal it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

impl From<&HistoryEntry> for VersionBody {
    fn from(h: &HistoryEntry) -> Self {
        VersionBody {
            version: h.version,
            created: format_time(h.created),
            created_by: h.created_by.map(|t| t.to_string()),
            created_by_name: h.created_by_name.clone(),
            rollback_of: h.rollback_of,
            destroyed: h.destroyed,
            current: h.current,
            digest: h.digest.as_ref().map(|d| hex(d)),
        }
    }
}

/// 200 answer of `GET …/secrets/{name}/history`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryBody {
    /// The secret now.
    pub secret: SecretBody,
    /// Every version kept, oldest first.
    pub versions: Vec<VersionBody>,
}

/// `POST …/secrets/{name}/rollback`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The version whose value becomes current again (as a new version).
    pub version: u64,
}

/// `POST …/secrets/{name}/destroy`: exactly one of the two.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestroyRequest {
    /// Purge this version's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// Purge every version's value.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
}

/// 200 answer of a destroy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DestroyResponse {
    /// The versions whose values were purged now.
    pub destroyed: Vec<u64>,
    /// The current value was among them: the secret is unset.
    pub unset: bool,
    /// The secrets versions it moved, if it unset the secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets_version: Option<SecretsVersionBody>,
}

impl From<&Destroyed> for DestroyResponse {
    fn from(d: &Destroyed) -> Self {
        DestroyResponse {
            destroyed: d.versions.clone(),
            unset: d.unset,
            secrets_version: d.versions_after.as_ref().map(Into::into),
        }
    }
}

/// A secret that expires soon.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExpiringBody {
    /// The name.
    pub name: String,
    /// When it expires.
    pub expires: String,
}

/// 200 answer of `POST …/apps/{app}/secrets/reveal`: the only answer with values.
#[derive(Serialize, Deserialize)]
pub struct RevealResponse {
    /// Name → value, for the names the token may reveal.
    pub secrets: BTreeMap<String, String>,
    /// Names past their expiry (not revealed; an app's own hides the org's).
    pub expired: Vec<String>,
    /// Revealed names that expire within 7 days.
    pub expiring: Vec<ExpiringBody>,
    /// The app's secrets version these values are of (below `min_version` when the
    /// wait ran out).
    pub secrets_version: u64,
    /// How many of the changes up to `secrets_version` were blind writes (by tokens
    /// that could not reveal what they wrote): `run --watch` restarts when it moves,
    /// and otherwise only when the environment it would inject differs.
    #[serde(default)]
    pub blind_writes: u64,
    /// Names that load code an org token allowed for the app (or the org's own):
    /// `run` injects these without `--allow`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_env: Vec<String>,
}

impl fmt::Debug for RevealResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevealResponse")
            .field("names", &self.secrets.keys().collect::<Vec<_>>())
            .field("expired", &self.expired)
            .field("secrets_version", &self.secrets_version)
            .finish_non_exhaustive()
    }
}

impl Drop for RevealResponse {
    fn drop(&mut self) {
        for value in self.secrets.values_mut() {
            zeroize::Zeroize::zeroize(value);
        }
    }
}

/// [`RevealResponse`] as the server writes it: serialized from the revealed scope
/// without copying its values.
#[derive(Serialize)]
pub struct RevealAnswer<'a> {
    secrets: RevealedValues<'a>,
    expired: &'a [String],
    expiring: Vec<ExpiringBody>,
    secrets_version: u64,
    blind_writes: u64,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    allowed_env: &'a [String],
}

struct RevealedValues<'a>(&'a Revealed);

impl Serialize for RevealedValues<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.values())
    }
}

impl<'a> From<&'a Revealed> for RevealAnswer<'a> {
    fn from(r: &'a Revealed) -> Self {
        RevealAnswer {
            secrets: RevealedValues(r),
            expired: &r.expired,
            expiring: expiring(r),
            secrets_version: r.version,
            blind_writes: r.blind_writes,
            allowed_env: &r.allowed_env,
        }
    }
}

fn expiring(r: &Revealed) -> Vec<ExpiringBody> {
    r.expiring
        .iter()
        .map(|(name, at)| ExpiringBody {
            name: name.clone(),
            expires: format_time(*at),
        })
        .collect()
}

impl From<&Revealed> for RevealResponse {
    fn from(r: &Revealed) -> Self {
        RevealResponse {
            secrets: r
                .values()
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect(),
            expired: r.expired.clone(),
            expiring: expiring(r),
            secrets_version: r.version,
            blind_writes: r.blind_writes,
            allowed_env: r.allowed_env.clone(),
        }
    }
}

/// `GET`, `POST` and `DELETE` of `…/allowed-env`: a scope's allow-list of names that
/// load code (the body of a change, and every answer).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AllowedEnvBody {
    /// The names.
    pub names: Vec<String>,
}

/// `GET /v1/orgs/{org}/secrets-key` and the answer of a rotation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyStatusBody {
    /// The key id new values are sealed under.
    pub current: u32,
    /// Every key id still kept: more than one while older data keys are re-wrapped.
    pub keys: Vec<u32>,
    /// Re-wrapping is under way.
    pub rotating: bool,
}

impl From<&KeyStatus> for KeyStatusBody {
    fn from(s: &KeyStatus) -> Self {
        KeyStatusBody {
            current: s.current,
            keys: s.keys.clone(),
            rotating: s.rotating(),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One scope's secrets whose names change how programs load code.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WithheldScope {
    /// The app; absent: the org's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// The names, in order.
    pub names: Vec<String>,
}

/// 200 answer of `GET /v1/orgs/{org}/secrets-withheld`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WithheldBody {
    /// Every scope with such names the token may read: the org's own first.
    pub scopes: Vec<WithheldScope>,
}
