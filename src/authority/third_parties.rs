//! Third parties (ARCHITECTURE §5): registering dischargers in an org, their key pairs
//! (the private half wrapped by the master key, never shown), the tokens that need
//! them, and the public keys anyone may fetch to seal tickets offline.

use super::{Authority, Principal, ThirdPartyError, check_name};
use crate::audit::action;
use crate::caveats::{Action, Condition, Excerpt, Resource};
use crate::model::{
    AuditEvent, Change, Jwks, Outcome, Requirement, ThirdParty, ThirdPartyKey, ThirdPartyKind,
    TokenId, TokenStatus,
};
use crate::store::{Read, StoreError, Tx};
use crate::token::{KeyId, MAX_LOCATION, PrivateKey, PublicKey};

/// Largest JWKS document kept in a registration, in bytes.
pub const MAX_JWKS: usize = 64 * 1024;
/// Longest issuer or JWKS URL, and audience, in bytes.
const MAX_URL: usize = 512;
const MAX_AUDIENCE: usize = 256;
/// The path under a location where the public keys of its third parties are published:
/// the set here, one key at `{KEYS_PATH}/{key id}`.
pub const KEYS_PATH: &str = "/.well-known/macvault/3p/keys";

/// What to register.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NewThirdParty {
    /// Its name in the org.
    pub name: String,
    /// Its kind.
    pub kind: ThirdPartyKind,
    /// Where discharges are obtained: this server's URL and a path of its own.
    pub location: String,
    /// The OIDC issuer.
    pub issuer: String,
    /// The audience ID tokens must name.
    pub audience: String,
    /// The issuer's keys.
    pub jwks: Jwks,
}

impl NewThirdParty {
    /// A registration of every required field.
    pub fn new(
        name: impl Into<String>,
        kind: ThirdPartyKind,
        location: impl Into<String>,
        issuer: impl Into<String>,
        audience: impl Into<String>,
        jwks: Jwks,
    ) -> Self {
        NewThirdParty {
            name: name.into(),
            kind,
            location: location.into(),
            issuer: issuer.into(),
            audience: audience.into(),
            jwks,
        }
    }
}

/// A third party with the tokens known to need it.
#[derive(Debug, Clone)]
pub struct ThirdPartyDetail {
    /// The registration.
    pub third_party: ThirdParty,
    /// Ledger tokens that carry (or whose copies carry) its caveat, with their status
    /// (`None`: gone from the ledger). Each requirement names the key its ticket is
    /// sealed to.
    pub dependents: Vec<(Requirement, Option<(String, TokenStatus)>)>,
}

impl ThirdPartyDetail {
    /// How many live (active) tokens hold tickets sealed to key `id`.
    pub fn live_on(&self, id: KeyId) -> usize {
        self.dependents
            .iter()
            .filter(|(req, status)| {
                req.key == id && matches!(status, Some((_, TokenStatus::Active)))
            })
            .count()
    }
}

/// A published key of a third party: what sealing a ticket to it needs.
#[derive(Debug, Clone)]
pub struct PublishedKey {
    /// The third party's location.
    pub location: String,
    /// The key.
    pub public: PublicKey,
    /// Whether new tickets are sealed to it (else it only opens older tickets).
    pub current: bool,
    /// Unix seconds.
    pub created: u64,
    /// The audience its third party's ID tokens must name (what a CI job asks its
    /// provider for).
    pub audience: String,
}

impl PublishedKey {
    fn of(tp: &ThirdParty, key: &ThirdPartyKey) -> Self {
        PublishedKey {
            location: tp.location.clone(),
            public: key.public.clone(),
            current: tp.current_key().is_some_and(|c| c.id == key.id),
            created: key.created,
            audience: tp.audience.clone(),
        }
    }
}

/// What retiring a key did.
#[derive(Debug, Clone)]
pub struct RetiredKey {
    /// The third party without the key.
    pub third_party: ThirdParty,
    /// The key retired.
    pub key: KeyId,
    /// Live tokens whose tickets were sealed to it (only with `force`): they stop
    /// working.
    pub stopped: usize,
}

/// Whether a URL's host is this machine: `localhost` or a loopback address.
pub(crate) fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Checks an http(s) URL: https, or http to a loopback host (tests, local setups).
fn check_url(what: &'static str, url: &str, max: usize) -> Result<(), ThirdPartyError> {
    let bad = |why: &str| ThirdPartyError::BadField {
        what,
        why: why.to_owned(),
    };
    if url.is_empty() || url.len() > max {
        return Err(bad(&format!("must be 1 to {max} bytes")));
    }
    if !url.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad("must be printable ASCII without spaces"));
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| bad(&format!("is not a URL ({e})")))?;
    if parsed.query().is_some() || parsed.fragment().is_some() || !parsed.username().is_empty() {
        return Err(bad("must not have a query, a fragment or credentials"));
    }
    let Some(host) = parsed.host_str() else {
        return Err(bad("needs a host"));
    };
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(host) => Ok(()),
        _ => Err(bad("must be https (http only to a loopback host)")),
    }
}

fn check_registration(new: &NewThirdParty) -> Result<(), ThirdPartyError> {
    check_name("third party", &new.name).map_err(ThirdPartyError::InvalidName)?;
    check_url("location", &new.location, MAX_LOCATION)?;
    if new.location.ends_with('/') {
        return Err(ThirdPartyError::BadField {
            what: "location",
            why: "must not end with /".into(),
        });
    }
    check_url("issuer", &new.issuer, MAX_URL)?;
    let audience_ok = !new.audience.is_empty()
        && new.audience.len() <= MAX_AUDIENCE
        && new.audience.bytes().all(|b| b.is_ascii_graphic());
    if !audience_ok {
        return Err(ThirdPartyError::BadField {
            what: "audience",
            why: format!("must be 1 to {MAX_AUDIENCE} printable ASCII bytes"),
        });
    }
    match &new.jwks {
        Jwks::Url(url) => check_url("jwks", url, MAX_URL),
        Jwks::Document(doc) => check_jwks_document(doc),
    }
}

/// A JWKS document: a JSON object whose `keys` is a non-empty array of objects.
fn check_jwks_document(doc: &str) -> Result<(), ThirdPartyError> {
    let bad = |why: &str| ThirdPartyError::BadField {
        what: "jwks",
        why: why.to_owned(),
    };
    if doc.len() > MAX_JWKS {
        return Err(bad(&format!("a JWKS document is at most {MAX_JWKS} bytes")));
    }
    let value: serde_json::Value =
        serde_json::from_str(doc).map_err(|e| bad(&format!("is not JSON ({e})")))?;
    let keys = value
        .get("keys")
        .and_then(|k| k.as_array())
        .filter(|k| !k.is_empty() && k.iter().all(serde_json::Value::is_object));
    match keys {
        Some(_) => Ok(()),
        None => Err(bad("needs a non-empty \"keys\" array of JSON Web Keys")),
    }
}

/// The associated data of a third party's private key.
fn key_aad(org: &str, name: &str, id: KeyId) -> Vec<u8> {
    super::sealing::aad(
        "macvault third-party key v1",
        &[org.as_bytes(), name.as_bytes(), &id.0],
    )
}

/// Publishes that third party `name` of `org` changed, in the transaction; the change,
/// to announce once it commits.
fn changed(tx: &mut dyn Tx, org: &str, name: &str, now: u64) -> Result<Change, StoreError> {
    let change = Change::ThirdPartyChanged {
        org: org.to_owned(),
        name: name.to_owned(),
    };
    tx.publish(org, &change, now)?;
    Ok(change)
}

/// The names of the active ledger tokens that need third party `name` of `org`, of
/// those requirements `which` picks.
fn live_dependents<R: Read + ?Sized>(
    r: &mut R,
    org: &str,
    name: &str,
    now: u64,
    which: impl Fn(&Requirement) -> bool,
) -> Result<Vec<String>, StoreError> {
    let mut live = Vec::new();
    for req in r.requirements(org, name)?.iter().filter(|q| which(q)) {
        if let Some(t) = r.token(&req.token)?
            && TokenStatus::of(&t, now, false) == TokenStatus::Active
        {
            live.push(t.name);
        }
    }
    Ok(live)
}

/// The first few of `names`, quoted and escaped, for an error.
fn first_names(names: &[String]) -> String {
    let quoted: Vec<String> = names
        .iter()
        .take(3)
        .map(|n| format!("\"{}\"", Excerpt(n.as_bytes())))
        .collect();
    quoted.join(", ")
}

/// Checks, inside the transaction that records `req`, that its third party still
/// exists and still holds the key its ticket was sealed to (neither removed nor
/// retired meanwhile, here or on another node): else the token could never be
/// discharged.
pub(crate) fn still_holds<R: Read + ?Sized>(
    r: &mut R,
    req: &Requirement,
) -> Result<(), ThirdPartyError> {
    let tp = r
        .third_party(&req.org, &req.third_party)?
        .ok_or(ThirdPartyError::NotFound)?;
    match tp.key(req.key) {
        Some(_) => Ok(()),
        None => Err(ThirdPartyError::UnknownKey),
    }
}

/// The requirements of ledger token `id` in `org`.
pub(crate) fn requirements_of(
    r: &mut dyn Read,
    org: &str,
    id: &TokenId,
) -> Result<Vec<Requirement>, StoreError> {
    let mut out = Vec::new();
    for tp in r.third_parties(org)? {
        out.extend(
            r.requirements(org, &tp.name)?
                .into_iter()
                .filter(|q| q.token == *id),
        );
    }
    Ok(out)
}

impl Authority {
    fn third_party_access(
        &self,
        who: &Principal,
        org: &str,
        action: Action,
    ) -> Result<(), ThirdPartyError> {
        check_name("org", org).map_err(ThirdPartyError::InvalidName)?;
        let access = self.access(who, org, None, Resource::ThirdParties, action);
        self.require(who, &access).map_err(ThirdPartyError::Denied)
    }

    /// A fresh key pair for third party `name` of `org`, the private half wrapped.
    fn new_third_party_key(&self, org: &str, name: &str) -> Result<ThirdPartyKey, ThirdPartyError> {
        let (private, public) = PrivateKey::generate().map_err(|_| ThirdPartyError::Random)?;
        let id = public.key_id();
        let wrapped = self
            .master
            .seal_key(&key_aad(org, name, id), private.expose_bytes())?;
        Ok(ThirdPartyKey {
            id,
            public,
            wrapped,
            created: self.clock.now(),
        })
    }

    /// Opens the private key `id` of a third party (for its discharger).
    pub fn third_party_private_key(
        &self,
        tp: &ThirdParty,
        id: KeyId,
    ) -> Result<PrivateKey, ThirdPartyError> {
        let key = tp
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or(ThirdPartyError::UnknownKey)?;
        let bytes = self
            .master
            .open_key(&key_aad(&tp.org, &tp.name, id), &key.wrapped)?;
        Ok(PrivateKey::from_bytes(bytes))
    }

    /// Registers a third party in `org` with its first key pair (needs
    /// `third-parties/create`).
    pub async fn add_third_party(
        &self,
        who: &Principal,
        org: &str,
        new: &NewThirdParty,
    ) -> Result<ThirdParty, ThirdPartyError> {
        self.third_party_access(who, org, Action::Create)?;
        check_registration(new)?;
        if self.read_org(org).await?.is_none() {
            return Err(ThirdPartyError::OrgNotFound);
        }
        let now = self.clock.now();
        let key = self.new_third_party_key(org, &new.name)?;
        let tp = ThirdParty::new(
            org,
            &new.name,
            new.kind,
            &new.location,
            &new.issuer,
            &new.audience,
            new.jwks.clone(),
            key,
            now,
            Some(who.token_id()),
        );
        let event = self.third_party_event(who, &tp, action::THIRD_PARTY_ADD, now);
        let record = tp.clone();
        let committed = self
            .store
            .write(move |tx| {
                tx.insert_third_party(&record)?;
                tx.append_audit(&event)?;
                let change = changed(tx, &record.org, &record.name, now)?;
                Ok::<_, ThirdPartyError>(change)
            })
            .await
            .map_err(|e| match e {
                ThirdPartyError::Store(StoreError::Conflict("third party")) => {
                    ThirdPartyError::Exists
                }
                other => other,
            })?;
        self.announce(&committed.value);
        Ok(tp)
    }

    /// An org's third parties, by name (needs `third-parties/read`).
    pub async fn third_parties(
        &self,
        who: &Principal,
        org: &str,
    ) -> Result<Vec<ThirdParty>, ThirdPartyError> {
        self.third_party_access(who, org, Action::Read)?;
        let org = org.to_owned();
        Ok(self.store.read(move |r| r.third_parties(&org)).await?)
    }

    /// One third party with the tokens known to need it (needs `third-parties/read`).
    pub async fn third_party(
        &self,
        who: &Principal,
        org: &str,
        name: &str,
    ) -> Result<ThirdPartyDetail, ThirdPartyError> {
        self.third_party_access(who, org, Action::Read)?;
        let now = self.clock.now();
        let (org, name) = (org.to_owned(), name.to_owned());
        let found = self
            .store
            .read(move |r| {
                let Some(tp) = r.third_party(&org, &name)? else {
                    return Ok::<_, StoreError>(None);
                };
                let mut dependents = Vec::new();
                for req in r.requirements(&org, &name)? {
                    let status = r
                        .token(&req.token)?
                        .map(|t| (t.name.clone(), TokenStatus::of(&t, now, false)));
                    dependents.push((req, status));
                }
                Ok(Some(ThirdPartyDetail {
                    third_party: tp,
                    dependents,
                }))
            })
            .await?;
        found.ok_or(ThirdPartyError::NotFound)
    }

    /// The registered third party `name` of `org` that `who` may use (`tokens/create`
    /// to mint against it; reading it is enough to seal a ticket, which anyone can do
    /// with the public key anyway).
    pub(crate) async fn third_party_for(
        &self,
        org: &str,
        name: &str,
    ) -> Result<ThirdParty, ThirdPartyError> {
        let (o, n) = (org.to_owned(), name.to_owned());
        self.store
            .read(move |r| r.third_party(&o, &n))
            .await?
            .ok_or(ThirdPartyError::NotFound)
    }

    /// Removes a third party (needs `third-parties/delete`). Refused while live tokens
    /// need it, unless `force`: those tokens can then never be discharged.
    pub async fn remove_third_party(
        &self,
        who: &Principal,
        org: &str,
        name: &str,
        force: bool,
    ) -> Result<ThirdParty, ThirdPartyError> {
        self.third_party_access(who, org, Action::Delete)?;
        let now = self.clock.now();
        let (o, n) = (org.to_owned(), name.to_owned());
        let actor = who.actor();
        let committed = self
            .store
            .write(move |tx| {
                let tp = tx.third_party(&o, &n)?.ok_or(ThirdPartyError::NotFound)?;
                let live = live_dependents(tx, &o, &n, now, |_| true)?;
                if !live.is_empty() && !force {
                    return Err(ThirdPartyError::InUse {
                        count: live.len(),
                        names: first_names(&live),
                    });
                }
                tx.delete_third_party(&o, &n)?;
                let detail = format!(
                    "third party \"{}\" at {}{}",
                    tp.name,
                    tp.location,
                    if live.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " (forced: {} live token(s) can no longer be discharged)",
                            live.len()
                        )
                    }
                );
                tx.append_audit(&AuditEvent::new(
                    &o,
                    action::THIRD_PARTY_REMOVE,
                    actor,
                    Outcome::Ok,
                    detail,
                    now,
                ))?;
                let change = changed(tx, &o, &n, now)?;
                Ok((tp, change))
            })
            .await?;
        let (tp, change) = committed.value;
        self.announce(&change);
        Ok(tp)
    }

    /// Gives a third party a new key pair (needs `third-parties/write`): new tickets are
    /// sealed to it; every older key keeps opening the tickets sealed to it until
    /// [`Authority::retire_third_party_key`].
    pub async fn rotate_third_party_key(
        &self,
        who: &Principal,
        org: &str,
        name: &str,
    ) -> Result<ThirdParty, ThirdPartyError> {
        self.third_party_access(who, org, Action::Write)?;
        check_name("third party", name).map_err(ThirdPartyError::InvalidName)?;
        let key = self.new_third_party_key(org, name)?;
        let now = self.clock.now();
        let (o, n) = (org.to_owned(), name.to_owned());
        let actor = who.actor();
        let committed = self
            .store
            .write(move |tx| {
                let mut tp = tx.third_party(&o, &n)?.ok_or(ThirdPartyError::NotFound)?;
                let previous = tp.current_key().map(|k| k.id);
                tp.keys.push(key.clone());
                tx.put_third_party(&tp)?;
                let mut detail = format!("third party \"{}\": new key {}", tp.name, key.id);
                if let Some(old) = previous {
                    detail.push_str(&format!(" (key {old} still opens its tickets)"));
                }
                tx.append_audit(&AuditEvent::new(
                    &o,
                    action::THIRD_PARTY_ROTATE,
                    actor,
                    Outcome::Ok,
                    detail,
                    now,
                ))?;
                let change = changed(tx, &o, &n, now)?;
                Ok::<_, ThirdPartyError>((tp, change))
            })
            .await?;
        let (tp, change) = committed.value;
        self.announce(&change);
        Ok(tp)
    }

    /// Retires key `id` of a third party (needs `third-parties/write`): tickets sealed
    /// to it no longer open. Refused for the current key (rotate first), and while live
    /// tokens hold tickets sealed to it, unless `force`, which reports how many stop
    /// working.
    pub async fn retire_third_party_key(
        &self,
        who: &Principal,
        org: &str,
        name: &str,
        id: KeyId,
        force: bool,
    ) -> Result<RetiredKey, ThirdPartyError> {
        self.third_party_access(who, org, Action::Write)?;
        check_name("third party", name).map_err(ThirdPartyError::InvalidName)?;
        let now = self.clock.now();
        let (o, n) = (org.to_owned(), name.to_owned());
        let actor = who.actor();
        let committed = self
            .store
            .write(move |tx| {
                let mut tp = tx.third_party(&o, &n)?.ok_or(ThirdPartyError::NotFound)?;
                if tp.key(id).is_none() {
                    return Err(ThirdPartyError::UnknownKey);
                }
                if tp.current_key().is_some_and(|k| k.id == id) {
                    return Err(ThirdPartyError::CurrentKey(id));
                }
                let live = live_dependents(tx, &o, &n, now, |req| req.key == id)?;
                if !live.is_empty() && !force {
                    return Err(ThirdPartyError::KeyInUse {
                        count: live.len(),
                        names: first_names(&live),
                    });
                }
                tp.keys.retain(|k| k.id != id);
                tx.put_third_party(&tp)?;
                let mut detail = format!("third party \"{}\": key {id} retired", tp.name);
                if !live.is_empty() {
                    detail.push_str(&format!(
                        " (forced: {} live token(s) stop working)",
                        live.len()
                    ));
                }
                tx.append_audit(&AuditEvent::new(
                    &o,
                    action::THIRD_PARTY_RETIRE_KEY,
                    actor,
                    Outcome::Ok,
                    detail,
                    now,
                ))?;
                let change = changed(tx, &o, &n, now)?;
                Ok((
                    RetiredKey {
                        third_party: tp,
                        key: id,
                        stopped: live.len(),
                    },
                    change,
                ))
            })
            .await?;
        let (retired, change) = committed.value;
        self.announce(&change);
        Ok(retired)
    }

    /// The published key `id` of a third party at a location path (unauthenticated:
    /// public keys are public). A key of a third party at another location is not
    /// found here.
    pub async fn published_key(
        &self,
        path: &str,
        id: KeyId,
    ) -> Result<PublishedKey, ThirdPartyError> {
        let tp = self
            .store
            .read(move |r| r.third_party_by_key(id))
            .await?
            .filter(|tp| tp.location_path() == path)
            .ok_or(ThirdPartyError::UnknownKey)?;
        let key = tp.key(id).ok_or(ThirdPartyError::UnknownKey)?;
        Ok(PublishedKey::of(&tp, key))
    }

    /// Every published key of the third parties at a location path (unauthenticated),
    /// by third party, oldest key first. Empty when none is registered there.
    pub async fn published_keys(&self, path: &str) -> Result<Vec<PublishedKey>, ThirdPartyError> {
        let path = path.to_owned();
        let tps = self.store.read(move |r| r.third_parties_at(&path)).await?;
        Ok(tps
            .iter()
            .flat_map(|tp| tp.keys.iter().map(|k| PublishedKey::of(tp, k)))
            .collect())
    }

    fn third_party_event(
        &self,
        who: &Principal,
        tp: &ThirdParty,
        what: &str,
        now: u64,
    ) -> AuditEvent {
        let detail = format!(
            "third party \"{}\" ({}) at {}, issuer {}, audience {}",
            tp.name,
            tp.kind.name(),
            tp.location,
            tp.issuer,
            tp.audience
        );
        AuditEvent::new(&tp.org, what, who.actor(), Outcome::Ok, detail, now)
    }
}

/// The conditions of a requirement as written in a mint request, checked.
pub fn parse_conditions(texts: &[String]) -> Result<Vec<Condition>, ThirdPartyError> {
    crate::caveats::parse_conditions(texts).map_err(|e| ThirdPartyError::BadField {
        what: "condition",
        why: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_paths() {
        use crate::model::location_path;
        assert_eq!(location_path("https://vault.example/3p/acme"), "/3p/acme");
        assert_eq!(location_path("https://vault.example"), "");
        assert_eq!(location_path("http://127.0.0.1:8080/ci"), "/ci");
    }

    #[test]
    fn urls_are_checked() {
        for ok in [
            "https://token.actions.githubusercontent.com",
            "http://127.0.0.1:9/x",
            "http://localhost/x",
            "http://[::1]:80/x",
        ] {
            assert!(check_url("issuer", ok, MAX_URL).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "http://example.com/x",
            "ftp://example.com",
            "https://example.com/?q=1",
            "https://u:p@example.com",
            "https://example.com/a b",
            "not a url",
        ] {
            assert!(check_url("issuer", bad, MAX_URL).is_err(), "{bad}");
        }
        assert!(check_jwks_document(r#"{"keys":[{"kty":"RSA"}]}"#).is_ok());
        for bad in ["", "{}", r#"{"keys":[]}"#, r#"{"keys":[1]}"#, "[1]"] {
            assert!(check_jwks_document(bad).is_err(), "{bad}");
        }
    }
}
