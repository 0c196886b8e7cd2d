//! `tokens attenuate` and `tokens inspect`: offline, on the token alone.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use super::Ctx;
use super::client::{Client, parse_url};
use super::exit::usage;
use super::input::{parse_duration, parse_resource};
use super::output::{self, clean, or_dash, span2};
use crate::api::{PublishedKeyBody, PublishedKeySet, ThirdPartyBody};
use crate::caveats::{
    Action, ActionSet, Caveat, Condition, IpNet, Resource, ResourceSet, parse_time,
};
use crate::token::{self, Inspection, PublicKey};

/// Largest caveats file read.
const MAX_CAVEATS_FILE: u64 = 256 * 1024;

#[derive(Args)]
pub struct AttenuateArgs {
    /// The token (`-` for stdin; else the presented one).
    #[arg(value_name = "TOKEN")]
    given: Option<String>,
    /// Only these apps, e.g. `web` (every action) or `web:r`; all together form one caveat.
    #[arg(long, value_name = "APP[:ACTIONS]", value_parser = parse_app)]
    app: Vec<(String, ActionSet)>,
    /// Only reading (`actions = r`).
    #[arg(long)]
    read_only: bool,
    /// Expires this long from now, e.g. 1h, 7d.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    expiry: Option<Duration>,
    /// Only secrets matching these patterns (`NAME` or `PREFIX*`).
    #[arg(long, value_name = "PATTERN")]
    secret: Vec<String>,
    /// Only requests from these networks, e.g. 10.0.0.0/8.
    #[arg(long, value_name = "CIDR")]
    ip: Vec<IpNet>,
    /// Only these resource kinds: apps, audit, keys, orgs, secrets, tokens, third-parties.
    #[arg(long, value_name = "KIND", value_parser = parse_resource)]
    resource: Vec<Resource>,
    /// A JSON file holding an array of caveats in their JSON form.
    #[arg(long, value_name = "FILE")]
    caveats: Option<PathBuf>,
    /// Add a third-party caveat: the token then needs a discharge from this third
    /// party. A registered third party's NAME (its key is read from the server), or
    /// its location URL (its key is fetched from the location, or read from
    /// --third-party-key).
    #[arg(long, value_name = "NAME|URL")]
    third_party: Option<String>,
    /// The third party's public key (`mv3pk_…`, or the JSON its location publishes: one
    /// key, or the set): then nothing is fetched and the command works offline.
    #[arg(long, value_name = "FILE", requires = "third_party")]
    third_party_key: Option<PathBuf>,
    /// Which key of the location to seal to (from `third-parties show`), when several
    /// third parties share the location given as --third-party URL.
    #[arg(long, value_name = "KID", requires = "third_party")]
    third_party_key_id: Option<String>,
    /// A condition of the discharge (repeatable, all required): `claim NAME = VALUE`,
    /// `claim NAME = PREFIX*`, `max-validity = 10m`.
    #[arg(long = "condition", value_name = "COND", requires = "third_party")]
    conditions: Vec<String>,
    /// The org of a registered third party named by NAME (default: the token's).
    #[arg(long, requires = "third_party")]
    org: Option<String>,
}

#[derive(Args)]
pub struct InspectArgs {
    /// The token (`-` for stdin; else the presented one).
    #[arg(value_name = "TOKEN")]
    given: Option<String>,
}

/// `APP` (every action) or `APP:LETTERS`.
fn parse_app(s: &str) -> Result<(String, ActionSet), String> {
    let (name, actions) = match s.split_once(':') {
        Some((name, letters)) => (name, letters.parse().map_err(|e| format!("{e}"))?),
        None => (s, ActionSet::ALL),
    };
    Ok((name.to_owned(), actions))
}

/// The token's effective expiry, if it says one.
fn expires(seen: &Inspection) -> Option<u64> {
    seen.expires.as_deref().and_then(|t| parse_time(t).ok())
}

pub fn attenuate(ctx: &Ctx, args: &AttenuateArgs) -> anyhow::Result<ExitCode> {
    let now = crate::authority::system_now();
    let caveats = attenuation_caveats(args, now)?;
    if caveats.is_empty() && args.third_party.is_none() {
        return Err(usage(
            "no caveats to add: give at least one of --app, --read-only, --expiry, --secret, \
             --ip, --resource, --caveats, --third-party",
        ));
    }
    let conditions = parse_conditions(&args.conditions)?;
    let text = ctx.subject(args.given.as_deref())?;
    let seen = token::inspect(text.expose())?;
    if let Some(t) = expires(&seen).filter(|t| *t <= now) {
        anyhow::bail!(
            "the token EXPIRED {} ago: a narrower copy of it could not work either",
            span2(now - t)
        );
    }
    let held: Vec<Caveat<'_>> = seen
        .caveats
        .iter()
        .filter_map(|c| Caveat::parse(&c.text).ok())
        .collect();
    for c in &caveats {
        if let Some(h) = held.iter().find(|h| h.implies(c)) {
            eprintln!("warning: `{c}` changes nothing: the token already has `{h}`");
        }
        if let Some(h) = held.iter().find(|h| h.excludes(c)) {
            eprintln!(
                "warning: with `{c}` the token can do nothing at all: `{h}` already rules out everything it allows"
            );
        }
    }
    let mut narrower = if caveats.is_empty() {
        text.expose().to_owned()
    } else {
        token::attenuate(text.expose(), &caveats)?
    };
    if let Some(party) = &args.third_party {
        let (location, public) = third_party_key(ctx, args, party)?;
        narrower = token::add_third_party(&narrower, &location, &public, &conditions)?;
    }
    if ctx.json() {
        output::json(&serde_json::json!({ "token": narrower }))?;
    } else {
        output::precious(narrower, "the narrower token")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The caveats the flags ask for, in a fixed order.
fn attenuation_caveats(args: &AttenuateArgs, now: u64) -> anyhow::Result<Vec<Caveat<'static>>> {
    let mut caveats = Vec::new();
    if !args.app.is_empty() {
        caveats.push(Caveat::apps(args.app.iter().cloned()).context("--app")?);
    }
    if args.read_only {
        caveats.push(Caveat::actions(Action::Read.into())?);
    }
    if !args.secret.is_empty() {
        caveats.push(Caveat::secrets(&args.secret).context("--secret")?);
    }
    if !args.resource.is_empty() {
        let set: ResourceSet = args.resource.iter().copied().collect();
        caveats.push(Caveat::resources(set)?);
    }
    if !args.ip.is_empty() {
        caveats.push(Caveat::source_ip(args.ip.iter().copied()).context("--ip")?);
    }
    if let Some(d) = args.expiry {
        caveats.push(Caveat::expires(now.saturating_add(d.as_secs())));
    }
    if let Some(path) = &args.caveats {
        caveats.extend(read_caveats_file(path)?);
    }
    Ok(caveats)
}

fn read_caveats_file(path: &Path) -> anyhow::Result<Vec<Caveat<'static>>> {
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| usage(format!("cannot open {shown}: {e}")))?;
    let mut text = String::new();
    file.take(MAX_CAVEATS_FILE + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read {shown}"))?;
    if text.len() as u64 > MAX_CAVEATS_FILE {
        return Err(usage(format!(
            "{shown} is larger than {MAX_CAVEATS_FILE} bytes"
        )));
    }
    serde_json::from_str(&text)
        .map_err(|e| usage(format!("{shown} is not a JSON array of caveats: {e}")))
}

/// Condition texts from the command line, checked and in canonical form.
pub fn conditions(texts: &[String]) -> anyhow::Result<Vec<String>> {
    Ok(parse_conditions(texts)?
        .iter()
        .map(ToString::to_string)
        .collect())
}

fn parse_conditions(texts: &[String]) -> anyhow::Result<Vec<Condition>> {
    let parsed =
        crate::caveats::parse_conditions(texts).map_err(|e| usage(format!("--condition: {e}")))?;
    if let Some(warning) = names_without_ids(&parsed) {
        eprintln!("{warning}");
    }
    Ok(parsed)
}

/// Claims that name a repository, owner or project, and the numeric ids that say the
/// same without being open to re-registration.
const NAME_CLAIMS: [&str; 3] = ["repository", "repository_owner", "project_path"];
const ID_CLAIMS: [&str; 4] = [
    "repository_id",
    "repository_owner_id",
    "project_id",
    "namespace_id",
];

/// A warning when conditions bind names but no numeric id: a deleted repository's
/// name can be registered again by someone else.
pub fn names_without_ids(conditions: &[Condition]) -> Option<String> {
    let claim = |c: &Condition| match c {
        Condition::ClaimEquals { name, .. } | Condition::ClaimPrefix { name, .. } => {
            Some(name.clone())
        }
        _ => None,
    };
    let names: Vec<String> = conditions.iter().filter_map(claim).collect();
    let named: Vec<&str> = NAME_CLAIMS
        .iter()
        .copied()
        .filter(|n| names.iter().any(|c| c == n))
        .collect();
    let has_id = ID_CLAIMS.iter().any(|n| names.iter().any(|c| c == n));
    if named.is_empty() || has_id {
        return None;
    }
    Some(format!(
        "warning: the conditions name {} but no numeric id: a deleted repository's or \
         project's name can be registered again by someone else; add `claim repository_id = …` \
         (GitHub) or `claim project_id = …` (GitLab)",
        named.join(", ")
    ))
}

/// Largest public-key file read.
const MAX_KEY_FILE: u64 = 16 * 1024;

/// The location and public key of the third party `party` names: from
/// --third-party-key (offline), from the keys its location publishes (a URL), or from
/// the server's registration (a NAME).
fn third_party_key(
    ctx: &Ctx,
    args: &AttenuateArgs,
    party: &str,
) -> anyhow::Result<(String, PublicKey)> {
    let is_url = party.contains("://");
    let kid = args.third_party_key_id.as_deref();
    if let Some(path) = &args.third_party_key {
        let shown = path.display();
        let file =
            std::fs::File::open(path).map_err(|e| usage(format!("cannot open {shown}: {e}")))?;
        let mut text = String::new();
        file.take(MAX_KEY_FILE)
            .read_to_string(&mut text)
            .with_context(|| format!("cannot read {shown}"))?;
        if !text.trim_start().starts_with('{') {
            if !is_url {
                return Err(usage(
                    "with a bare mv3pk_ key, --third-party is the third party's location URL",
                ));
            }
            let public = PublicKey::from_text(&text).map_err(|e| usage(format!("{shown}: {e}")))?;
            return Ok((party.to_owned(), public));
        }
        let keys = match serde_json::from_str::<PublishedKeySet>(&text) {
            Ok(set) => set.keys,
            Err(_) => vec![
                serde_json::from_str::<PublishedKeyBody>(&text).map_err(|e| {
                    usage(format!("{shown} is not a published third-party key: {e}"))
                })?,
            ],
        };
        let key = pick_key(keys, kid, &shown.to_string())?;
        if is_url && key.location != party {
            return Err(usage(format!(
                "{shown} is a key of {}, not of {}",
                clean(&key.location),
                clean(party)
            )));
        }
        return published(key);
    }
    if is_url {
        let client = Client::new(parse_url(party)?, None)?;
        let mut segments = vec![".well-known", "macvault", "3p", "keys"];
        let keys = match kid {
            Some(kid) => {
                segments.push(kid);
                let one: PublishedKeyBody = super::block_on(client.get_anonymous(&segments))?;
                vec![one]
            }
            None => {
                let set: PublishedKeySet = super::block_on(client.get_anonymous(&segments))?;
                set.keys
            }
        };
        let key = pick_key(keys, kid, party)?;
        if key.location != party {
            anyhow::bail!(
                "{} publishes keys of {}: use that location",
                clean(party),
                clean(&key.location)
            );
        }
        return published(key);
    }
    let org = ctx.org(args.org.clone())?;
    let body: ThirdPartyBody =
        super::block_on(
            ctx.client()?
                .get(&["v1", "orgs", &org, "third-parties", party]),
        )?;
    let (key_id, public_key) = match kid {
        None => (body.key_id, body.public_key),
        Some(kid) => {
            let k = body
                .keys
                .into_iter()
                .find(|k| k.key_id == kid)
                .ok_or_else(|| {
                    usage(format!(
                        "third party {} has no key {}",
                        clean(party),
                        clean(kid)
                    ))
                })?;
            if !k.current {
                eprintln!("{}", older_key_warning(&k.key_id));
            }
            (k.key_id, k.public_key)
        }
    };
    let public = PublicKey::from_text(&public_key).context("the published key")?;
    if public.key_id().to_string() != key_id {
        anyhow::bail!("the server sent a key whose id is not {}", clean(&key_id));
    }
    Ok((body.location, public))
}

fn older_key_warning(kid: &str) -> String {
    format!(
        "warning: key {} is an older key of its third party: tickets sealed to it stop \
         working when it is retired; new ones belong on the current key",
        clean(kid)
    )
}

/// The key to seal to among those a location publishes: the one `kid` names, else the
/// only current one.
fn pick_key(
    keys: Vec<PublishedKeyBody>,
    kid: Option<&str>,
    whence: &str,
) -> anyhow::Result<PublishedKeyBody> {
    if let Some(kid) = kid {
        let key = keys
            .into_iter()
            .find(|k| k.key_id == kid)
            .ok_or_else(|| usage(format!("{} has no key {}", clean(whence), clean(kid))))?;
        if !key.current {
            eprintln!("{}", older_key_warning(&key.key_id));
        }
        return Ok(key);
    }
    let mut current: Vec<PublishedKeyBody> = keys.into_iter().filter(|k| k.current).collect();
    match current.len() {
        1 => Ok(current.remove(0)),
        0 => Err(usage(format!("{} publishes no current key", clean(whence)))),
        n => {
            let ids: Vec<String> = current
                .iter()
                .map(|k| clean(&k.key_id).into_owned())
                .collect();
            Err(usage(format!(
                "{n} third parties publish keys at {}: choose one with --third-party-key-id \
                 ({}; `third-parties show NAME` names its key)",
                clean(whence),
                ids.join(", ")
            )))
        }
    }
}

/// The location and key of a published key, its id checked against the key.
fn published(key: PublishedKeyBody) -> anyhow::Result<(String, PublicKey)> {
    let public = PublicKey::from_text(&key.public_key).context("the published key")?;
    if public.key_id().to_string() != key.key_id {
        anyhow::bail!(
            "the published key {} does not have the id it is published under",
            clean(&key.key_id)
        );
    }
    Ok((key.location, public))
}

pub fn inspect(ctx: &Ctx, args: &InspectArgs) -> anyhow::Result<ExitCode> {
    let text = ctx.subject(args.given.as_deref())?;
    let seen = token::inspect(text.expose())?;
    if ctx.json() {
        output::json(&seen)?;
    } else {
        output::line(render_inspection(&seen, crate::authority::system_now()).trim_end())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// What `inspect` prints. Caveats are numbered as the server numbers them in denials:
/// the token's first, then each discharge's, counting on.
pub fn render_inspection(seen: &Inspection, now: u64) -> String {
    let mut rows: Vec<(&str, String)> = match &seen.foreign_identifier {
        Some(raw) => vec![("identifier", format!("{raw} (not a macvault identifier)"))],
        None => vec![
            ("token id", or_dash(seen.token_id.as_deref()).into_owned()),
            ("org", or_dash(seen.org.as_deref()).into_owned()),
            (
                "key version",
                seen.key_version.map_or("-".into(), |v| v.to_string()),
            ),
        ],
    };
    rows.push(("fingerprint", seen.fingerprint.clone()));
    let expiry = match (seen.expires.as_deref(), expires(seen)) {
        (Some(text), Some(t)) if t <= now => format!("EXPIRED {} ago ({text})", span2(now - t)),
        (Some(text), Some(t)) => format!("in {} ({text})", span2(t - now)),
        (Some(text), None) => text.to_owned(),
        (None, _) => "never".into(),
    };
    rows.push(("expires", expiry));
    rows.push(("discharges", seen.discharges.len().to_string()));
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (k, v) in &rows {
        out.push_str(&format!("{k:width$}  {}\n", clean(v)));
    }
    out.push_str("caveats (unverified):\n");
    let mut n = 0;
    let mut caveats = |list: &[token::InspectedCaveat], out: &mut String| {
        if list.is_empty() {
            out.push_str("  (none)\n");
        }
        for c in list {
            n += 1;
            let mark = if c.known {
                ""
            } else {
                "  [not a macvault caveat]"
            };
            out.push_str(&format!("  {n}. {}{mark}\n", clean(&c.text)));
        }
    };
    caveats(&seen.caveats, &mut out);
    for (i, tp) in seen.third_party.iter().enumerate() {
        let at = or_dash(tp.location.as_deref());
        let state = if tp.discharged {
            "discharge in the bundle"
        } else {
            "needs a discharge"
        };
        out.push_str(&format!(
            "third-party caveat {} ({state}) from {at}:\n",
            i + 1
        ));
        match &tp.key_id {
            Some(key) => {
                out.push_str(&format!("  ticket sealed to key {key}\n"));
                if tp.conditions.is_empty() {
                    out.push_str("  (no conditions)\n");
                }
                for c in &tp.conditions {
                    out.push_str(&format!("  - {}\n", clean(c)));
                }
            }
            None => out.push_str("  (not a macvault ticket: its conditions are not readable)\n"),
        }
    }
    for (i, d) in seen.discharges.iter().enumerate() {
        let at = or_dash(d.location.as_deref());
        out.push_str(&format!("discharge {} (from {at}):\n", i + 1));
        caveats(&d.caveats, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_flags() {
        assert_eq!(parse_app("web"), Ok(("web".into(), ActionSet::ALL)));
        let r = ActionSet::from(Action::Read);
        assert_eq!(parse_app("web:r"), Ok(("web".into(), r)));
        assert!(parse_app("web:wr").is_err());
        assert!(parse_app("web:").is_err());
    }

    #[test]
    fn names_without_numeric_ids_are_warned_about() {
        let warn = |texts: &[&str]| {
            let parsed = crate::caveats::parse_conditions(texts).unwrap();
            names_without_ids(&parsed)
        };
        let w = warn(&["claim repository = acme/web", "claim ref = refs/heads/main"]).unwrap();
        assert!(
            w.contains("repository") && w.contains("repository_id"),
            "{w}"
        );
        assert!(warn(&["claim project_path = acme/web"]).is_some());
        assert!(warn(&["claim repository_owner = acme"]).is_some());
        for quiet in [
            &["claim repository = acme/web", "claim repository_id = 1"][..],
            &["claim project_path = acme/web", "claim namespace_id = 7"],
            &["claim ref = refs/heads/main"],
            &["max-validity = 10m"],
        ] {
            assert!(warn(quiet).is_none(), "{quiet:?}");
        }
    }
}
