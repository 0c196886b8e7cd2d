//! `macvault tokens …`: minting, listing, showing, revoking, rotating and verifying
//! through the API; `attenuate` and `inspect` work offline (`offline.rs`).

use std::borrow::Cow;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

use clap::{Args, Subcommand, ValueEnum};
use reqwest::{Method, StatusCode};

use super::client::ApiError;
use super::exit::{Exit, usage};
use super::input::{parse_action, parse_duration, parse_resource};
use super::keys::short_id;
use super::offline;
use super::output::{self, Fit, Table, clean, fields, or_dash, relative_text, span1};
use super::{ClientArgs, Ctx, block_on};
use crate::api::{
    MintRequest, MintResponse, RevokeRequest, RevokeResponse, RotateRequest, RotateResponse,
    TokenDetailBody, TokenList, TokenRecordBody, VerifyRequest, VerifyResponse,
};
use crate::caveats::{AccessSpec, Action, Resource, parse_time};
use crate::model::TokenKind;

#[derive(Args)]
pub struct TokensArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: TokensCommand,
}

#[derive(Subcommand)]
pub enum TokensCommand {
    /// Mint a token in an org; prints the token (shown only once).
    Create(CreateArgs),
    /// Add caveats to a token (offline); prints the narrower token.
    Attenuate(offline::AttenuateArgs),
    /// Show what a token says, without verifying it (offline).
    Inspect(offline::InspectArgs),
    /// List an org's tokens: status, expiry and last use at a glance.
    List(ListArgs),
    /// Show one token (by id or id prefix) with its lineage up and down.
    Show {
        /// Its id, or a prefix of at least 8 hex digits.
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Revoke tokens by id (or id prefix), or the presented token itself; what they
    /// minted goes with them unless --orphan. Shows what would go first: when that is
    /// more than the token (and its attenuated copies), asks on a terminal and needs
    /// --yes otherwise.
    Revoke {
        /// Token ids, or prefixes of at least 8 hex digits.
        #[arg(
            value_name = "ID",
            required_unless_present = "self_",
            conflicts_with = "self_"
        )]
        ids: Vec<String>,
        /// Revoke the presented token.
        #[arg(long = "self")]
        self_: bool,
        /// Revoke only these tokens: what they minted lives on (moved under their parent).
        #[arg(long)]
        orphan: bool,
        /// Revoke the tokens minted from them too without asking.
        #[arg(long)]
        yes: bool,
        /// Only show what would be revoked.
        #[arg(long, conflicts_with = "yes")]
        dry_run: bool,
    },
    /// Replace a token with a fresh sibling (same kind, caveats and creator): what it
    /// minted moves under the new one, and the old one (with every attenuated copy of
    /// it) stops at the end of the overlap. Prints the new token.
    Rotate(RotateArgs),
    /// Ask the server whether a token is valid, and whether it allows an access.
    Verify(VerifyArgs),
    /// Get the discharges the bundles' third-party caveats need (in CI: with the job's
    /// OIDC ID token), one request per location; prints each bundle complete.
    Discharge(super::discharge::DischargeArgs),
    /// Make the presented discharged bundle a service token, for code that runs
    /// unattended: without its third-party caveat, barred from tokens, and only where
    /// its tickets carry `service-validity` (it lives at most that long). Prints it.
    Strip {
        /// Its ledger name (default: the permission token's, with `-service`).
        #[arg(long)]
        name: Option<String>,
    },
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
            TokenKind::Operator | TokenKind::Session | TokenKind::OAuth => return None,
        };
        Some(clap::builder::PossibleValue::new(self.name()).help(help))
    }
}

#[derive(Args)]
pub struct CreateArgs {
    /// The kind.
    kind: TokenKind,
    /// Also write the new token's id (not the token) to this file, for scripts.
    #[arg(long, value_name = "FILE")]
    id_file: Option<PathBuf>,
    /// The org (default: the token's).
    #[arg(long)]
    org: Option<String>,
    /// The app (deploy and runtime tokens).
    #[arg(long)]
    app: Option<String>,
    /// A name for the ledger (default: the kind).
    #[arg(long)]
    name: Option<String>,
    /// Lifetime, e.g. 90d, 2160h, 1h (default 90 days).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    expiry: Option<Duration>,
    /// Make the token useless without a discharge from this registered third party
    /// (`third-parties add`), e.g. a CI job's OIDC identity.
    #[arg(long, value_name = "NAME")]
    require_ci: Option<String>,
    /// A condition of that discharge (repeatable, all required): `claim NAME = VALUE`,
    /// `claim NAME = PREFIX*`, `max-validity = 10m`.
    #[arg(long = "condition", value_name = "COND", requires = "require_ci")]
    conditions: Vec<String>,
}

#[derive(Args)]
pub struct ListArgs {
    /// The org (default: the token's).
    #[arg(long)]
    org: Option<String>,
    /// Only tokens that work now.
    #[arg(long)]
    active: bool,
    /// Only this kind.
    #[arg(long)]
    kind: Option<TokenKind>,
    /// Only this app's tokens.
    #[arg(long)]
    app: Option<String>,
    /// Only names containing this.
    #[arg(long)]
    name: Option<String>,
    /// Whole ids and fingerprints.
    #[arg(long)]
    wide: bool,
    /// Dashboard sessions too (kind session; left out by default).
    #[arg(long)]
    sessions: bool,
}

#[derive(Args)]
pub struct RotateArgs {
    /// The token to replace: its id, or a prefix of at least 8 hex digits.
    #[arg(value_name = "ID")]
    id: String,
    /// How long the old token keeps working beside the new one, e.g. 1h (default: it
    /// stops at once).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    overlap: Option<Duration>,
    /// The new token's lifetime (default: the old one's), never past its creator's.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    expiry: Option<Duration>,
    /// Also write the new token's id (not the token) to this file, for scripts.
    #[arg(long, value_name = "FILE")]
    id_file: Option<PathBuf>,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// The token (`-` for stdin; else the presented one).
    #[arg(value_name = "TOKEN")]
    given: Option<String>,
    /// The org of the access (default: the token's).
    #[arg(long, requires_all = ["resource", "action"])]
    org: Option<String>,
    /// The resource kind of the access: apps, audit, keys, orgs, secrets, tokens.
    #[arg(long, value_parser = parse_resource, requires = "action")]
    resource: Option<Resource>,
    /// The action: read (r), write (w), create (c), delete (d), control (x), reveal (v).
    #[arg(long, value_parser = parse_action, requires = "resource")]
    action: Option<Action>,
    /// The app of the access (none: an org-level access).
    #[arg(long, requires = "resource")]
    app: Option<String>,
    /// The secret the access is about.
    #[arg(long, requires = "resource", conflicts_with = "listing")]
    secret: Option<String>,
    /// The access is a listing of secrets (not about one).
    #[arg(long, requires = "resource")]
    listing: bool,
    /// The address the access comes from.
    #[arg(long)]
    source_ip: Option<IpAddr>,
}

pub fn run(ctx: &Ctx, cmd: TokensCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TokensCommand::Attenuate(args) => offline::attenuate(ctx, &args),
        TokensCommand::Inspect(args) => offline::inspect(ctx, &args),
        TokensCommand::Verify(args) => block_on(verify(ctx, args)),
        TokensCommand::Create(args) => block_on(create(ctx, args)),
        TokensCommand::List(args) => block_on(list(ctx, args)),
        TokensCommand::Show { id } => block_on(show(ctx, &id)),
        TokensCommand::Revoke {
            ids,
            self_,
            orphan,
            yes,
            dry_run,
        } => block_on(revoke(
            ctx,
            &ids,
            self_,
            Revoking {
                orphan,
                yes,
                dry_run,
            },
        )),
        TokensCommand::Rotate(args) => block_on(rotate(ctx, args)),
        TokensCommand::Discharge(args) => super::discharge::discharge(ctx, &args),
        TokensCommand::Strip { name } => block_on(strip(ctx, name)),
    }
}

async fn strip(ctx: &Ctx, name: Option<String>) -> anyhow::Result<ExitCode> {
    let req = crate::api::ServiceRequest { name };
    let minted: MintResponse = ctx
        .client()?
        .call(Method::POST, &["v1", "tokens", "service"], Some(&req))
        .await?;
    if ctx.json() {
        output::json(&minted)?;
    } else {
        output::precious(&minted.token, "the new token")?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn create(ctx: &Ctx, args: CreateArgs) -> anyhow::Result<ExitCode> {
    let org = ctx.org(args.org)?;
    let req = MintRequest {
        kind: args.kind.name().to_owned(),
        app: args.app,
        name: args.name,
        expiry_secs: args.expiry.map(|d| d.as_secs()),
        require_ci: args.require_ci,
        conditions: offline::conditions(&args.conditions)?,
    };
    let path = ["v1", "orgs", &org, "tokens"];
    let minted: MintResponse = ctx.client()?.call(Method::POST, &path, Some(&req)).await?;
    if ctx.json() {
        output::json(&minted)?;
    } else {
        output::precious(&minted.token, "the new token")?;
    }
    // After the token is out: it is the only copy.
    write_id(args.id_file.as_deref(), &minted.record.id)?;
    Ok(ExitCode::SUCCESS)
}

async fn list(ctx: &Ctx, args: ListArgs) -> anyhow::Result<ExitCode> {
    let org = ctx.org(args.org.clone())?;
    let path = ["v1", "orgs", &org, "tokens"];
    let query = [("sessions", args.sessions.to_string())];
    let list: TokenList = ctx.client()?.get_query(&path, &query).await?;
    let keep = |t: &&TokenRecordBody| {
        (!args.active || t.status == "active")
            && args.kind.is_none_or(|k| t.kind == k.name())
            && args.app.as_ref().is_none_or(|a| t.app.as_ref() == Some(a))
            && args
                .name
                .as_ref()
                .is_none_or(|n| t.name.contains(n.as_str()))
    };
    let tokens: Vec<&TokenRecordBody> = list.tokens.iter().filter(keep).collect();
    if ctx.json() {
        let tokens = tokens.into_iter().cloned().collect();
        output::json(&TokenList { tokens })?;
    } else {
        list_table(&tokens, crate::authority::system_now(), args.wide).print()?;
    }
    Ok(ExitCode::SUCCESS)
}

/// What a token's STATUS column says: `active`, `expires in 3d` (within 7 days),
/// `ends in 1h` (being rotated out), `expired`, `revoked`, `key retired`.
fn status(t: &TokenRecordBody, now: u64) -> Cow<'static, str> {
    let at = |s: &str| parse_time(s).ok();
    match t.status.as_str() {
        "active" => match (t.revoked.as_deref().and_then(at), at(&t.expires)) {
            (Some(ends), _) if ends > now => format!("ends in {}", span1(ends - now)).into(),
            (_, Some(exp)) if exp > now && exp - now < 7 * 86_400 => {
                format!("expires in {}", span1(exp - now)).into()
            }
            _ => "active".into(),
        },
        "key_retired" => "key retired".into(),
        other => Cow::Owned(other.to_owned()),
    }
}

/// The ledger as a table.
pub fn list_table(tokens: &[&TokenRecordBody], now: u64, wide: bool) -> Table {
    let mut cols = vec![
        ("ID", Fit::Keep),
        ("NAME", Fit::Keep),
        ("KIND", Fit::Keep),
        ("STATUS", Fit::Keep),
        ("APP", Fit::Cut),
        ("EXPIRES", Fit::Keep),
        ("LAST USED", Fit::Keep),
    ];
    if wide {
        cols.push(("FINGERPRINT", Fit::Keep));
    }
    let mut t = Table::new(&cols);
    for tok in tokens {
        let last = tok
            .last_used
            .as_ref()
            .map_or("never".into(), |u| relative_text(&u.time, now));
        let mut row = vec![
            if wide {
                tok.id.clone()
            } else {
                short_id(&tok.id).to_owned()
            },
            tok.name.clone(),
            tok.kind.clone(),
            status(tok, now).into_owned(),
            or_dash(tok.app.as_deref()).into_owned(),
            relative_text(&tok.expires, now),
            last,
        ];
        if wide {
            row.push(tok.fingerprint.clone());
        }
        t.row(row);
    }
    t
}

/// A token id argument is there at all (an empty one would name no endpoint).
fn id_given(id: &str) -> anyhow::Result<&str> {
    match id.trim() {
        "" => Err(usage(
            "give a token id, or a prefix of at least 8 hex digits (tokens list shows them)",
        )),
        id => Ok(id),
    }
}

async fn show(ctx: &Ctx, id: &str) -> anyhow::Result<ExitCode> {
    let id = id_given(id)?;
    let detail: TokenDetailBody = ctx.client()?.get(&["v1", "tokens", id]).await?;
    if ctx.json() {
        output::json(&detail)?;
    } else {
        output::line(render_show(&detail, crate::authority::system_now()).trim_end())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// One token with its lineage, as `tokens show` prints it.
pub fn render_show(d: &TokenDetailBody, now: u64) -> String {
    let r = &d.record;
    let when = |t: &str| format!("{t} ({})", relative_text(t, now));
    let last = r.last_used.as_ref().map_or("never".to_owned(), |u| {
        let mut s = when(&u.time);
        if let Some(ip) = &u.ip {
            s.push_str(&format!(" from {ip}"));
        }
        if let Some(ua) = &u.user_agent {
            s.push_str(&format!(", {ua}"));
        }
        s
    });
    let rows: Vec<(&str, Cow<'_, str>)> = vec![
        ("id", r.id.as_str().into()),
        ("name", r.name.as_str().into()),
        ("kind", r.kind.as_str().into()),
        ("status", status(r, now)),
        ("org", r.org.as_str().into()),
        ("app", or_dash(r.app.as_deref())),
        ("key version", r.key_version.to_string().into()),
        ("created", when(&r.created).into()),
        ("expires", when(&r.expires).into()),
        (
            "revoked",
            r.revoked.as_deref().map_or("-".into(), |t| when(t).into()),
        ),
        ("last used", last.into()),
        ("fingerprint", r.fingerprint.as_str().into()),
    ];
    let mut out = String::new();
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in &rows {
        out.push_str(&format!("{k:width$}  {}\n", clean(v)));
    }
    out.push_str("caveats (as minted):\n");
    for (i, c) in r.caveats.iter().enumerate() {
        out.push_str(&format!("  {}. {}\n", i + 1, clean(c)));
    }
    for req in &d.third_parties {
        out.push_str(&format!(
            "needs a discharge from third party {}:\n",
            clean(&req.third_party)
        ));
        for c in &req.conditions {
            out.push_str(&format!("  - {}\n", clean(c)));
        }
    }
    let line = |t: &TokenRecordBody| {
        format!(
            "{}  {} ({}, {})",
            short_id(&t.id),
            clean(&t.name),
            clean(&t.kind),
            status(t, now)
        )
    };
    out.push_str("lineage, up (parent first):\n");
    if d.ancestors.is_empty() {
        out.push_str("  none: a lineage root\n");
    }
    for a in &d.ancestors {
        out.push_str(&format!("  ↑ {}\n", line(a)));
    }
    out.push_str("minted from it:\n");
    if d.children.is_empty() {
        out.push_str("  none\n");
    }
    for c in &d.children {
        out.push_str(&format!("  ↓ {}\n", line(c)));
    }
    out
}

/// Writes a new token's id to `--id-file` (the token itself goes to stdout only).
fn write_id(path: Option<&std::path::Path>, id: &str) -> anyhow::Result<()> {
    if let Some(path) = path {
        std::fs::write(path, format!("{id}\n"))
            .with_context(|| format!("cannot write the token's id to {}", path.display()))?;
    }
    Ok(())
}

async fn rotate(ctx: &Ctx, args: RotateArgs) -> anyhow::Result<ExitCode> {
    let req = RotateRequest {
        overlap_secs: args.overlap.map_or(0, |d| d.as_secs()),
        expiry_secs: args.expiry.map(|d| d.as_secs()),
    };
    let path = ["v1", "tokens", &args.id, "rotate"];
    let done: RotateResponse = ctx.client()?.call(Method::POST, &path, Some(&req)).await?;
    if ctx.json() {
        output::json(&done)?;
        write_id(args.id_file.as_deref(), &done.record.id)?;
        return Ok(ExitCode::SUCCESS);
    }
    output::precious(&done.token, "the new token")?;
    write_id(args.id_file.as_deref(), &done.record.id)?;
    eprintln!(
        "rotated {} (\"{}\") to {} (\"{}\"), expiring {}",
        short_id(&done.replaced.id),
        clean(&done.replaced.name),
        short_id(&done.record.id),
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

/// How `tokens revoke` goes about it.
#[derive(Clone, Copy)]
struct Revoking {
    orphan: bool,
    yes: bool,
    dry_run: bool,
}

/// What a revocation would take: one line per token, nearest first.
fn preview_lines(p: &RevokeResponse) -> Vec<String> {
    let taken = p.would_revoke.as_deref().unwrap_or_default();
    let mut out = vec![format!(
        "revoking {} ({} \"{}\") takes {} token(s) minted from it{}",
        short_id(&p.record.id),
        clean(&p.record.kind),
        clean(&p.record.name),
        taken.len(),
        if taken.is_empty() { "" } else { ":" }
    )];
    for t in taken {
        out.push(format!(
            "  {}  {} \"{}\"",
            short_id(&t.id),
            clean(&t.kind),
            clean(&t.name)
        ));
    }
    out
}

/// Asks on the terminal whether to go on; `false` without one.
fn confirm(question: &str) -> bool {
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return false;
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim(), "y" | "Y" | "yes")
}

async fn revoke(ctx: &Ctx, ids: &[String], self_: bool, how: Revoking) -> anyhow::Result<ExitCode> {
    for id in ids {
        id_given(id)?;
    }
    let client = ctx.client()?;
    let orphan = how.orphan;
    let body = RevokeRequest {
        orphan,
        dry_run: false,
    };
    let ask = RevokeRequest {
        orphan,
        dry_run: true,
    };
    let paths: Vec<Vec<String>> = if self_ {
        vec![vec![
            "v1".into(),
            "tokens".into(),
            "self".into(),
            "revoke".into(),
        ]]
    } else {
        ids.iter()
            .map(|id| vec!["v1".into(), "tokens".into(), id.clone(), "revoke".into()])
            .collect()
    };
    let (mut done, mut failed) = (Vec::new(), None);
    for path in &paths {
        let segments: Vec<&str> = path.iter().map(String::as_str).collect();
        let preview = match client
            .call::<_, RevokeResponse>(Method::POST, &segments, Some(&ask))
            .await
        {
            Ok(p) => p,
            Err(err) if paths.len() > 1 => {
                eprintln!("error: {}: {err:#}", clean(&path[2]));
                failed.get_or_insert(err);
                continue;
            }
            Err(err) => return Err(err),
        };
        let taken = preview.would_revoke.as_ref().map_or(0, Vec::len);
        if how.dry_run {
            if !ctx.json() {
                for line in preview_lines(&preview) {
                    output::line(line)?;
                }
            }
            done.push(preview);
            continue;
        }
        if taken > 0 && !how.yes {
            for line in preview_lines(&preview) {
                eprintln!("{line}");
            }
            if !confirm(&format!("Revoke it and these {taken} token(s)?")) {
                let err = anyhow::anyhow!(
                    "not revoked: it would take {taken} token(s) minted from it (listed above); \
                     pass --yes to revoke them too, or --orphan to let them live"
                );
                if paths.len() > 1 {
                    eprintln!("error: {}: {err:#}", clean(&path[2]));
                    failed.get_or_insert(err);
                    continue;
                }
                return Err(err);
            }
        }
        match client
            .call::<_, RevokeResponse>(Method::POST, &segments, Some(&body))
            .await
        {
            Ok(r) => {
                if !ctx.json() {
                    output::line(revoked_line(&r))?;
                }
                done.push(r);
            }
            // One failure does not stop the others; the first decides the exit code.
            Err(err) if paths.len() > 1 => {
                eprintln!("error: {}: {err:#}", clean(&path[2]));
                failed.get_or_insert(err);
            }
            Err(err) => return Err(err),
        }
    }
    if ctx.json() {
        output::json(&done)?;
    }
    match failed {
        Some(err) => Ok(super::exit::classify(&err).code()),
        None => Ok(ExitCode::SUCCESS),
    }
}

/// `revoked ID (NAME)`, and what went with it.
fn revoked_line(done: &RevokeResponse) -> String {
    let head = format!("revoked {} ({})", done.record.id, clean(&done.record.name));
    match (done.already_revoked, done.revoked_descendants) {
        (true, 0) => format!("{head}: it was revoked already"),
        (_, 0) => head,
        (_, 1) => format!("{head} and 1 token minted from it"),
        (_, n) => format!("{head} and {n} tokens minted from it"),
    }
}

async fn verify(ctx: &Ctx, args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let token = ctx.subject(args.given.as_deref())?;
    let access = match (args.resource, args.action) {
        (Some(resource), Some(action)) => {
            let org = match args.org {
                Some(org) => org,
                None => crate::token::inspect(token.expose())
                    .ok()
                    .and_then(|i| i.org)
                    .ok_or_else(|| usage("give --org: the token does not name an org"))?,
            };
            Some(AccessSpec {
                org,
                app: args.app,
                resource,
                action,
                secret: args.secret,
                listing: args.listing,
            })
        }
        _ => None,
    };
    let checked = access.is_some();
    let req = VerifyRequest {
        token: token.expose().into(),
        access,
        source_ip: args.source_ip,
    };
    let answer = ctx
        .anonymous()?
        .post_anonymous::<_, VerifyResponse>(&["v1", "verify"], &req)
        .await;
    match answer {
        Ok(resp) => show_verdict(ctx, &resp, checked),
        Err(err) => match err.downcast::<ApiError>() {
            Ok(api) if api.status == StatusCode::UNAUTHORIZED => {
                let code = api
                    .body
                    .as_ref()
                    .map_or("unauthenticated", |b| b.error.code.as_str());
                if ctx.json() {
                    super::exit::report(&api.into(), true);
                } else if code == "missing_discharge" {
                    eprintln!("{api}");
                } else {
                    eprintln!("not authenticated: {}", clean(code));
                }
                Ok(Exit::Unauthenticated.code())
            }
            Ok(api) => Err(api.into()),
            Err(err) => Err(err),
        },
    }
}

fn show_verdict(ctx: &Ctx, resp: &VerifyResponse, checked: bool) -> anyhow::Result<ExitCode> {
    let code = if resp.allowed {
        ExitCode::SUCCESS
    } else {
        Exit::Denied.code()
    };
    if ctx.json() {
        output::json(resp)?;
        return Ok(code);
    }
    if !resp.allowed {
        match &resp.denial {
            Some(d) if d.index == 0 => output::line(format_args!("denied: {}", clean(&d.reason)))?,
            Some(d) => output::line(format_args!(
                "denied: caveat {} ({}) {}",
                d.index,
                clean(&d.caveat),
                clean(&d.reason)
            ))?,
            None => output::line("denied")?,
        }
        return Ok(code);
    }
    output::line(if checked {
        "allowed"
    } else {
        "valid (no access checked)"
    })?;
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

#[cfg(test)]
mod tests;
