//! `macvault audit`: an org's audit log, newest page first, filters, and paging by cursor.

use std::process::ExitCode;

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
    /// Only this action, e.g. token.mint or request.denied.
    #[arg(long)]
    action: Option<String>,
    /// Only this outcome.
    #[arg(long, value_parser = ["ok", "denied"])]
    outcome: Option<String>,
    /// Only this actor: a token id or a prefix of one.
    #[arg(long, value_name = "ID")]
    actor: Option<String>,
}

pub async fn run(ctx: &Ctx, args: AuditArgs) -> anyhow::Result<ExitCode> {
    let org = ctx.org(args.org.clone())?;
    let client = ctx.client()?;
    let mut before = args.before.clone();
    let mut pages: Vec<AuditList> = Vec::new();
    loop {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(n) = args.limit {
            query.push(("limit", n.to_string()));
        }
        for (k, v) in [
            ("action", &args.action),
            ("outcome", &args.outcome),
            ("actor", &args.actor),
        ] {
            if let Some(v) = v {
                query.push((k, v.clone()));
            }
        }
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
    if ctx.json() {
        // JSON lines: one event a line, for export.
        for e in &events {
            output::line(serde_json::to_string(e)?)?;
        }
    } else {
        table(&events, crate::authority::system_now()).print()?;
    }
    if let Some(cursor) = &before {
        eprintln!("older events: macvault audit --before {cursor}   (or --all)");
    }
    Ok(ExitCode::SUCCESS)
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
        t.row([
            relative_text(&e.time, now).as_str(),
            &e.action,
            &e.outcome,
            &actor(e),
            &or_dash(e.source_ip.as_deref()),
            &e.detail,
        ]);
    }
    t
}
