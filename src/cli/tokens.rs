//! `tokens …`: minting, listing, revoking and verifying through the API, and the
//! offline `attenuate` and `inspect`.

use std::borrow::Cow;
use std::io::Read as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand, ValueEnum};
use reqwest::{Method, StatusCode, Url};

use super::block_on;
use super::client::{ApiError, Client};
use super::input::{SecretToken, parse_duration, token_or_stdin};
use super::output::{self, clean, fields, or_dash};
use crate::api::{
    MintRequest, MintResponse, RevokeRequest, RevokeResponse, RotateRequest, RotateResponse,
    TokenList, TokenRecordBody, VerifyRequest, VerifyResponse,
};
use crate::caveats::{AccessSpec, Action, ActionSet, Caveat, IpNet, Resource, ResourceSet};
use crate::model::TokenKind;
use crate::token::{self, Inspection, TokenId};

/// Largest caveats file read.
const MAX_CAVEATS_FILE: u64 = 256 * 1024;

#[derive(Subcommand)]
pub enum TokensCommand {
    /// Mint a token in an org; prints the token (shown only once).
    Create(CreateArgs),
    /// Add caveats to a token (offline); prints the narrower token.
    Attenuate(AttenuateArgs),
    /// Show what a token says, without verifying it (offline).
    Inspect {
        /// The token (else --token / MACVAULT_TOKEN, else stdin).
        #[arg(value_name = "TOKEN")]
        given: Option<SecretToken>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List an org's tokens, revoked ones included.
    List {
        /// The org.
        #[arg(long)]
        org: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke tokens by id, or the presented token itself.
    Revoke {
        /// Token ids (32 hex digits).
        #[arg(
            value_name = "ID",
            required_unless_present = "self_",
            conflicts_with = "self_"
        )]
        ids: Vec<String>,
        /// Revoke the token given by --token / MACVAULT_TOKEN.
        #[arg(long = "self")]
        self_: bool,
        /// Revoke only these tokens: what they minted lives on (moved under their parent).
        #[arg(long)]
        orphan: bool,
    },
    /// Replace a token with a fresh sibling (same kind, caveats and creator): what it
    /// minted moves under the new one, and the old one (with every attenuated copy of
    /// it) stops at the end of the overlap. Prints the new token.
    Rotate(RotateArgs),
    /// Ask the server whether a token is valid, and whether it allows an access.
    Verify(VerifyArgs),
}

/// The kinds a token can be minted as, for the command line.
impl ValueEnum for TokenKind {
    fn value_variants<'a>() -> &'a [Self] {
        &TokenKind::PRESETS
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        let help = match self {
            TokenKind::Org => "everything in the org",
            TokenKind::Deploy => "read and change one app (no reveal)",
            TokenKind::Readonly => "read everything, reveal nothing",
            TokenKind::Runtime => "read one app's secrets at run time",
            TokenKind::Operator => return None,
        };
        Some(clap::builder::PossibleValue::new(self.name()).help(help))
    }
}

#[derive(Args)]
pub struct CreateArgs {
    /// The kind.
    kind: TokenKind,
    /// The org.
    #[arg(long)]
    org: String,
    /// The app (deploy and runtime tokens).
    #[arg(long)]
    app: Option<String>,
    /// A name for the ledger (default: the kind).
    #[arg(long)]
    name: Option<String>,
    /// Lifetime, e.g. 90d, 2160h, 1h (default 90 days).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    expiry: Option<Duration>,
    /// Print the whole JSON answer (token and ledger record).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct AttenuateArgs {
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
    /// Only these resource kinds: apps, audit, keys, orgs, secrets, tokens.
    #[arg(long, value_name = "KIND")]
    resource: Vec<Resource>,
    /// A JSON file holding an array of caveats in their JSON form.
    #[arg(long, value_name = "FILE")]
    caveats: Option<PathBuf>,
}

#[derive(Args)]
pub struct RotateArgs {
    /// The token to replace (its id).
    #[arg(value_name = "ID")]
    id: String,
    /// How long the old token keeps working beside the new one, e.g. 1h (default: it
    /// stops at once).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    overlap: Option<Duration>,
    /// The new token's lifetime (default: the old one's), never past its creator's.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    expiry: Option<Duration>,
    /// Print the whole JSON answer.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// The token (else --token / MACVAULT_TOKEN, else stdin).
    #[arg(value_name = "TOKEN")]
    given: Option<SecretToken>,
    /// The org of the access to check.
    #[arg(long, requires_all = ["resource", "action"])]
    org: Option<String>,
    /// The resource kind of the access.
    #[arg(long, requires = "org")]
    resource: Option<Resource>,
    /// The action: read, write, create, delete, control, reveal.
    #[arg(long, requires = "org")]
    action: Option<Action>,
    /// The app of the access (none: an org-level access).
    #[arg(long, requires = "org")]
    app: Option<String>,
    /// The secret the access is about.
    #[arg(long, requires = "org")]
    secret: Option<String>,
    /// The address the access comes from.
    #[arg(long)]
    source_ip: Option<IpAddr>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: TokensCommand, url: Url, token: Option<SecretToken>) -> anyhow::Result<ExitCode> {
    match cmd {
        TokensCommand::Attenuate(args) => attenuate(&args, token.as_ref()),
        TokensCommand::Inspect { given, json } => inspect(given, token.as_ref(), json),
        TokensCommand::Verify(args) => {
            let text = token_or_stdin(args.given.clone(), token.as_ref())?;
            block_on(verify(&Client::new(url, None)?, text, args))
        }
        TokensCommand::Create(args) => block_on(create(&Client::new(url, token)?, args)),
        TokensCommand::List { org, json } => block_on(list(&Client::new(url, token)?, &org, json)),
        TokensCommand::Revoke { ids, self_, orphan } => {
            block_on(revoke(&Client::new(url, token)?, &ids, self_, orphan))
        }
        TokensCommand::Rotate(args) => block_on(rotate(&Client::new(url, token)?, args)),
    }
}

/// `APP` (every action) or `APP:LETTERS`.
fn parse_app(s: &str) -> Result<(String, ActionSet), String> {
    let (name, actions) = match s.split_once(':') {
        Some((name, letters)) => (name, letters.parse().map_err(|e| format!("{e}"))?),
        None => (s, ActionSet::ALL),
    };
    Ok((name.to_owned(), actions))
}

fn attenuate(args: &AttenuateArgs, global: Option<&SecretToken>) -> anyhow::Result<ExitCode> {
    let caveats = attenuation_caveats(args, unix_now()?)?;
    if caveats.is_empty() {
        bail!(
            "no caveats to add: give at least one of --app, --read-only, --expiry, --secret, \
             --ip, --resource, --caveats"
        );
    }
    let text = token_or_stdin(None, global)?;
    let narrower = token::attenuate(text.expose(), &caveats)?;
    output::line(narrower)?;
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
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {shown}"))?;
    let mut text = String::new();
    file.take(MAX_CAVEATS_FILE + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read {shown}"))?;
    if text.len() as u64 > MAX_CAVEATS_FILE {
        bail!("{shown} is larger than {MAX_CAVEATS_FILE} bytes");
    }
    serde_json::from_str(&text).with_context(|| format!("{shown} is not a JSON array of caveats"))
}

fn unix_now() -> anyhow::Result<u64> {
    let since = SystemTime::now().duration_since(UNIX_EPOCH);
    Ok(since.context("the system clock is before 1970")?.as_secs())
}

fn inspect(
    arg: Option<SecretToken>,
    global: Option<&SecretToken>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let text = token_or_stdin(arg, global)?;
    let seen = token::inspect(text.expose())?;
    if json {
        output::json(&seen)?;
    } else {
        print_inspection(&seen)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_inspection(seen: &Inspection) -> std::io::Result<()> {
    let mut rows = match &seen.foreign_identifier {
        Some(raw) => vec![(
            "identifier",
            format!("{raw} (not a macvault identifier)").into(),
        )],
        None => vec![
            ("token id", or_dash(seen.token_id.as_deref())),
            ("org", or_dash(seen.org.as_deref())),
            (
                "key version",
                or_dash(seen.key_version.map(|v| v.to_string()).as_deref())
                    .into_owned()
                    .into(),
            ),
        ],
    };
    rows.push(("fingerprint", Cow::Borrowed(seen.fingerprint.as_str())));
    rows.push(("expires", seen.expires.as_deref().unwrap_or("never").into()));
    rows.push(("discharges", seen.discharges.len().to_string().into()));
    fields(&rows)?;
    output::line("caveats (unverified):")?;
    print_caveats(&seen.caveats, "  ")?;
    for (i, tp) in seen.third_party.iter().enumerate() {
        let at = or_dash(tp.location.as_deref());
        output::line(format_args!(
            "third-party caveat {}: discharged at {at}",
            i + 1
        ))?;
    }
    for (i, d) in seen.discharges.iter().enumerate() {
        let at = or_dash(d.location.as_deref());
        output::line(format_args!("discharge {} (from {at}):", i + 1))?;
        print_caveats(&d.caveats, "  ")?;
    }
    Ok(())
}

fn print_caveats(caveats: &[token::InspectedCaveat], indent: &str) -> std::io::Result<()> {
    if caveats.is_empty() {
        return output::line(format_args!("{indent}(none)"));
    }
    for (i, c) in caveats.iter().enumerate() {
        let mark = if c.known {
            ""
        } else {
            "  [not a macvault caveat]"
        };
        output::line(format_args!("{indent}{}. {}{mark}", i + 1, clean(&c.text)))?;
    }
    Ok(())
}

async fn create(client: &Client, args: CreateArgs) -> anyhow::Result<ExitCode> {
    let req = MintRequest {
        kind: args.kind.name().to_owned(),
        app: args.app,
        name: args.name,
        expiry_secs: args.expiry.map(|d| d.as_secs()),
    };
    let path = ["v1", "orgs", &args.org, "tokens"];
    let minted: MintResponse = client.call(Method::POST, &path, Some(&req)).await?;
    if args.json {
        output::json(&minted)?;
    } else {
        output::line(&minted.token)?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn list(client: &Client, org: &str, json: bool) -> anyhow::Result<ExitCode> {
    let list: TokenList = client.get(&["v1", "orgs", org, "tokens"]).await?;
    if json {
        output::json(&list)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows = list.tokens.iter().map(token_row).collect();
    let header = [
        "ID",
        "NAME",
        "KIND",
        "APP",
        "CREATED",
        "EXPIRES",
        "LAST USED",
        "REVOKED",
    ];
    output::table(header, rows)?;
    Ok(ExitCode::SUCCESS)
}

fn token_row(t: &TokenRecordBody) -> [Cow<'_, str>; 8] {
    let last_used = t.last_used.as_ref().map_or(Cow::Borrowed("never"), |u| {
        let mut s = u.time.clone();
        if let Some(ip) = &u.ip {
            s = format!("{s} from {ip}");
        }
        if let Some(agent) = &u.user_agent {
            s = format!("{s} ({agent})");
        }
        s.into()
    });
    [
        Cow::Borrowed(t.id.as_str()),
        t.name.as_str().into(),
        t.kind.as_str().into(),
        or_dash(t.app.as_deref()),
        t.created.as_str().into(),
        t.expires.as_str().into(),
        last_used,
        or_dash(t.revoked.as_deref()),
    ]
}

async fn rotate(client: &Client, args: RotateArgs) -> anyhow::Result<ExitCode> {
    let id: TokenId = args
        .id
        .parse()
        .with_context(|| format!("bad token id \"{}\"", clean(&args.id)))?;
    let id = id.to_string();
    let req = RotateRequest {
        overlap_secs: args.overlap.map_or(0, |d| d.as_secs()),
        expiry_secs: args.expiry.map(|d| d.as_secs()),
    };
    let path = ["v1", "tokens", &id, "rotate"];
    let done: RotateResponse = client.call(Method::POST, &path, Some(&req)).await?;
    if args.json {
        output::json(&done)?;
        return Ok(ExitCode::SUCCESS);
    }
    output::line(&done.token)?;
    eprintln!(
        "rotated {} (\"{}\") to {} (\"{}\"), expiring {}",
        clean(&done.replaced.id),
        clean(&done.replaced.name),
        clean(&done.record.id),
        clean(&done.record.name),
        clean(&done.record.expires)
    );
    eprintln!(
        "the old token and every attenuated copy of it stop at {}; {} token(s) it minted now hang on the new one",
        clean(&done.old_ends),
        done.moved_children
    );
    Ok(ExitCode::SUCCESS)
}

async fn revoke(
    client: &Client,
    ids: &[String],
    self_: bool,
    orphan: bool,
) -> anyhow::Result<ExitCode> {
    let body = RevokeRequest { orphan };
    if self_ {
        let path = ["v1", "tokens", "self", "revoke"];
        let done: RevokeResponse = client.call(Method::POST, &path, Some(&body)).await?;
        output::line(revoked_line(&done))?;
        return Ok(ExitCode::SUCCESS);
    }
    let ids: Vec<TokenId> = ids
        .iter()
        .map(|id| {
            id.parse()
                .with_context(|| format!("bad token id \"{}\"", clean(id)))
        })
        .collect::<anyhow::Result<_>>()?;
    let mut code = ExitCode::SUCCESS;
    for id in ids {
        let id = id.to_string();
        let path = ["v1", "tokens", &id, "revoke"];
        match client
            .call::<_, RevokeResponse>(Method::POST, &path, Some(&body))
            .await
        {
            Ok(done) => output::line(revoked_line(&done))?,
            Err(err) => {
                eprintln!("error: {id}: {err:#}");
                code = ExitCode::FAILURE;
            }
        }
    }
    Ok(code)
}

/// `revoked ID (NAME)`, and what went with it.
fn revoked_line(done: &RevokeResponse) -> String {
    let head = format!("revoked {} ({})", done.record.id, clean(&done.record.name));
    match (done.already_revoked, done.revoked_descendants) {
        (true, _) => format!("{head}: it was revoked already"),
        (false, 0) => head,
        (false, 1) => format!("{head} and 1 token minted from it"),
        (false, n) => format!("{head} and {n} tokens minted from it"),
    }
}

async fn verify(client: &Client, token: SecretToken, args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let access = match (args.org, args.resource, args.action) {
        (Some(org), Some(resource), Some(action)) => Some(AccessSpec {
            org,
            app: args.app,
            resource,
            action,
            secret: args.secret,
        }),
        _ => None,
    };
    let req = VerifyRequest {
        token: token.expose().into(),
        access,
        source_ip: args.source_ip,
    };
    let answer = client
        .post_anonymous::<_, VerifyResponse>(&["v1", "verify"], &req)
        .await;
    match answer {
        Ok(resp) => show_verdict(&resp, args.json),
        Err(err) => match err.downcast::<ApiError>() {
            Ok(api) if api.status == StatusCode::UNAUTHORIZED => {
                show_unauthenticated(&api, args.json)
            }
            Ok(api) => Err(api.into()),
            Err(err) => Err(err),
        },
    }
}

fn show_verdict(resp: &VerifyResponse, json: bool) -> anyhow::Result<ExitCode> {
    let code = if resp.allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    };
    if json {
        output::json(resp)?;
        return Ok(code);
    }
    if let Some(d) = resp.denial.as_ref().filter(|_| !resp.allowed) {
        let (caveat, reason) = (clean(&d.caveat), clean(&d.reason));
        output::line(format_args!(
            "denied: caveat {} ({caveat}) {reason}",
            d.index
        ))?;
        return Ok(code);
    }
    if !resp.allowed {
        output::line("denied")?;
        return Ok(code);
    }
    output::line("allowed")?;
    fields(&[
        ("token id", clean(&resp.token_id)),
        ("org", clean(&resp.org)),
        ("key version", resp.key_version.to_string().into()),
        ("expires", or_dash(resp.expires.as_deref())),
    ])?;
    output::line("caveats:")?;
    for (i, c) in resp.caveats.iter().enumerate() {
        output::line(format_args!("  {}. {}", i + 1, clean(c)))?;
    }
    Ok(code)
}

fn show_unauthenticated(api: &ApiError, json: bool) -> anyhow::Result<ExitCode> {
    match &api.body {
        Some(body) if json => output::json(body)?,
        Some(body) => output::line(format_args!(
            "not authenticated: {}",
            clean(&body.error.code)
        ))?,
        None => output::line("not authenticated")?,
    }
    Ok(ExitCode::FAILURE)
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
}
