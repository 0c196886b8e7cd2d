//! `macvault audit`: an org's audit log, newest page first, filters, paging by cursor,
//! and `--follow`: the newest page, then new events as they are written.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::keys::short_id;
use super::output::{self, Fit, Table, or_dash, relative_text};
use super::{ClientArgs, Ctx};
use crate::api::{AuditEventBody, AuditList};

#[derive(Args, Clone)]
pub struct AuditArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The org (default: the token's).
    #[arg(long)]
    org: Option<String>,
    /// Events per page (1 to 1000; default 100): the newest N, shown oldest first.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    limit: Option<u32>,
    /// The page older than this cursor (the previous page says it).
    #[arg(long, value_name = "CURSOR", conflicts_with = "all")]
    before: Option<String>,
    /// Every page, oldest first.
    #[arg(long)]
    all: bool,
    /// After the newest page, show new events as they are written, until interrupted
    /// (or the token stops working). Retries while the server is unreachable.
    #[arg(long, conflicts_with_all = ["before", "all"])]
    follow: bool,
    /// Only this action, e.g. token.mint or request.denied.
    #[arg(long)]
    action: Option<String>,
    /// Only this outcome.
    #[arg(long, value_parser = ["ok", "denied"])]
    outcome: Option<String>,
    /// Only this actor: a token id or a prefix of one.
    #[arg(long, value_name = "ID")]
    actor: Option<String>,
    /// Only events at or after this time (2026-12-01T00:00:00Z).
    #[arg(long, value_name = "TIME", value_parser = rfc3339)]
    since: Option<String>,
    /// Only events at or before this time.
    #[arg(long, value_name = "TIME", value_parser = rfc3339)]
    until: Option<String>,
}

/// A time as the server takes it (RFC 3339, UTC).
fn rfc3339(s: &str) -> Result<String, String> {
    crate::caveats::parse_time(s)
        .map(|_| s.to_owned())
        .map_err(|_| "a time like 2026-12-01T00:00:00Z".into())
}

/// The query of a read: the limit and the filters.
fn filters(args: &AuditArgs) -> Vec<(&'static str, String)> {
    let mut query: Vec<(&str, String)> = Vec::new();
    if let Some(n) = args.limit {
        query.push(("limit", n.to_string()));
    }
    for (k, v) in [
        ("action", &args.action),
        ("outcome", &args.outcome),
        ("actor", &args.actor),
        ("since", &args.since),
        ("until", &args.until),
    ] {
        if let Some(v) = v {
            query.push((k, v.clone()));
        }
    }
    query
}

pub async fn run(ctx: &Ctx, args: AuditArgs) -> anyhow::Result<ExitCode> {
    let org = ctx.org(args.org.clone())?;
    let client = ctx.client()?;
    let mut before = args.before.clone();
    let mut pages: Vec<AuditList> = Vec::new();
    loop {
        let mut query = filters(&args);
        if let Some(c) = &before {
            query.push(("before", c.clone()));
        }
        let page: AuditList = client
            .get_query(&["v1", "orgs", &org, "audit"], &query)
            .await?;
        before = page.older.clone();
        pages.push(page);
        if !args.all || before.is_none() {
            break;
        }
    }
    // Pages came newest first; each is oldest first.
    let events: Vec<&AuditEventBody> = pages.iter().rev().flat_map(|p| &p.events).collect();
    show(ctx, &events, true)?;
    if let Some(cursor) = &before {
        eprintln!("older events: macvault audit --before {cursor}   (or --all)");
    }
    if args.follow {
        let newer = pages.first().and_then(|p| p.newer.clone());
        let newer = newer.ok_or_else(|| anyhow::anyhow!("the server cannot follow its log"))?;
        follow(ctx, &client, &org, &args, newer).await?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Shows events: JSON lines with --json (one event a line, for export), else a table
/// (its header only with the first events shown).
fn show(ctx: &Ctx, events: &[&AuditEventBody], header: bool) -> anyhow::Result<()> {
    if ctx.json() {
        for e in events {
            output::line(serde_json::to_string(e)?)?;
        }
    } else if header || !events.is_empty() {
        let text = table(events, crate::authority::system_now()).render(output::width());
        let skip = usize::from(!header);
        for row in text.lines().skip(skip) {
            output::line(row)?;
        }
    }
    Ok(())
}

/// Waits for new events after `newer` and shows them, for ever: an unreachable or busy
/// server is retried (pausing up to 5 s); anything else (401: the token was revoked or
/// expired) ends the follow with its error.
async fn follow(
    ctx: &Ctx,
    client: &super::client::Client,
    org: &str,
    args: &AuditArgs,
    mut newer: String,
) -> anyhow::Result<()> {
    // The server waits up to 25 s for an event.
    let wait = Duration::from_secs(40);
    let mut pause = Duration::from_millis(200);
    loop {
        let mut query = filters(args);
        query.push(("after", newer.clone()));
        let path = ["v1", "orgs", org, "audit"];
        match client
            .get_query_waiting::<AuditList>(&path, &query, wait)
            .await
        {
            Ok(page) => {
                pause = Duration::from_millis(200);
                show(ctx, &page.events.iter().collect::<Vec<_>>(), false)?;
                if let Some(next) = page.newer {
                    newer = next;
                }
            }
            Err(e) if super::run::retryable(&e) => {
                eprintln!(
                    "warning: cannot follow the audit log: {}",
                    super::exit::describe(&e)
                );
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e),
        }
    }
}

/// `ci 3f2a9b1c0d4e`: the actor's name (chosen by its minter) and id prefix.
fn actor(e: &AuditEventBody) -> String {
    match (&e.actor_name, &e.actor) {
        (Some(name), Some(id)) => format!("{name} {}", short_id(id)),
        (None, Some(id)) => short_id(id).to_owned(),
        _ => "-".into(),
    }
}

/// The events as a table.
pub fn table(events: &[&AuditEventBody], now: u64) -> Table {
    let mut t = Table::new(&[
        ("TIME", Fit::Keep),
        ("ACTION", Fit::Keep),
        ("OUTCOME", Fit::Keep),
        ("ACTOR", Fit::Cut),
        ("SOURCE IP", Fit::Keep),
        ("DETAIL", Fit::Cut),
    ]);
    for e in events {
        let detail = match &e.last_time {
            Some(last) if e.count > 1 => format!(
                "{} times, the last {}: {}",
                e.count,
                relative_text(last, now),
                e.detail
            ),
            _ => e.detail.clone(),
        };
        t.row([
            relative_text(&e.time, now).as_str(),
            &e.action,
            &e.outcome,
            &actor(e),
            &or_dash(e.source_ip.as_deref()),
            &detail,
        ]);
    }
    t
}
