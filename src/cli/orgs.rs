//! `macvault orgs …`: create, list, show and configure orgs; issue org tokens.

use std::borrow::Cow;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use reqwest::Method;

use super::input::{MaxExpiry, parse_duration, parse_max_expiry};
use super::output::{self, Fit, Table, clean};
use super::{ClientArgs, Ctx};
use crate::api::{
    CreateOrgRequest, CreateOrgResponse, IssueOrgTokenRequest, MintResponse, OrgBody, OrgList,
    UpdateOrgRequest,
};
use crate::caveats::format_span;

#[derive(Args)]
pub struct OrgsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: OrgsCommand,
}

#[derive(Subcommand)]
pub enum OrgsCommand {
    /// Create an org (the operator); prints the new org's first token.
    Create {
        /// The org's name: [a-z0-9][a-z0-9-]{0,62}.
        name: String,
        /// Lifetime of its first org token, e.g. 90d (the default).
        #[arg(long, value_name = "DUR", value_parser = parse_duration)]
        expiry: Option<Duration>,
    },
    /// List every org (the operator).
    List,
    /// Issue a fresh org token for any org (the operator): the way back in when an org's
    /// tokens expired or were revoked. Prints only the token.
    Token {
        /// The org.
        org: String,
        /// Its lifetime, e.g. 30d (default 90 days, cut to the org's maximum).
        #[arg(long, value_name = "DUR", value_parser = parse_duration)]
        expiry: Option<Duration>,
    },
    /// Show an org's settings (default: the token's org).
    Show {
        /// The org.
        org: Option<String>,
    },
    /// Change an org's settings (default: the token's org).
    #[command(group(clap::ArgGroup::new("setting").required(true).multiple(true)))]
    Set {
        /// The org.
        org: Option<String>,
        /// The longest expiry a token minted in the org may have (e.g. 90d), or `none`.
        #[arg(long, value_name = "DUR|none", value_parser = parse_max_expiry, group = "setting")]
        max_expiry: Option<MaxExpiry>,
        /// How long expired and revoked tokens stay listed (e.g. 180d), or `none` (kept).
        #[arg(long, value_name = "DUR|none", value_parser = parse_max_expiry, group = "setting")]
        ledger_retention: Option<MaxExpiry>,
    },
}

pub async fn run(ctx: &Ctx, cmd: OrgsCommand) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    match cmd {
        OrgsCommand::Create { name, expiry } => {
            let body = CreateOrgRequest {
                name,
                expiry_secs: expiry.map(|d| d.as_secs()),
            };
            let created: CreateOrgResponse = client
                .call(Method::POST, &["v1", "orgs"], Some(&body))
                .await?;
            if ctx.json() {
                output::json(&created)?;
            } else {
                output::precious(&created.token, "the org token")?;
                eprintln!(
                    "created org {}; its org token {} expires {} and is shown only once",
                    clean(&created.org),
                    clean(&created.token_id),
                    clean(&created.expires)
                );
            }
        }
        OrgsCommand::List => {
            let list: OrgList = client.get(&["v1", "orgs"]).await?;
            if ctx.json() {
                output::json(&list)?;
            } else {
                let mut t = Table::new(&[
                    ("NAME", Fit::Keep),
                    ("CREATED", Fit::Keep),
                    ("KEY", Fit::Keep),
                    ("MAX EXPIRY", Fit::Keep),
                ]);
                for o in &list.orgs {
                    let max = o.max_expiry_secs.map_or("none".into(), format_span);
                    t.row([
                        &o.name,
                        &o.created,
                        &o.current_key_version.to_string(),
                        &max,
                    ]);
                }
                t.print()?;
            }
        }
        OrgsCommand::Token { org, expiry } => {
            let body = IssueOrgTokenRequest {
                expiry_secs: expiry.map(|d| d.as_secs()),
            };
            let path = ["v1", "orgs", &org, "org-token"];
            let minted: MintResponse = client.call(Method::POST, &path, Some(&body)).await?;
            if ctx.json() {
                output::json(&minted)?;
            } else {
                output::precious(&minted.token, "the org token")?;
                eprintln!(
                    "issued an org token for {} ({}), expiring {}; it is shown only once",
                    clean(&org),
                    clean(&minted.record.id),
                    clean(&minted.record.expires)
                );
            }
        }
        OrgsCommand::Show { org } => {
            let org = ctx.org(org)?;
            let body: OrgBody = client.get(&["v1", "orgs", &org]).await?;
            show(ctx, &body)?;
        }
        OrgsCommand::Set {
            org,
            max_expiry,
            ledger_retention,
        } => {
            let org = ctx.org(org)?;
            let secs = |m: MaxExpiry| m.0.map(|d| d.as_secs());
            let req = UpdateOrgRequest {
                max_expiry_secs: max_expiry.map(secs),
                ledger_retention_secs: ledger_retention.map(secs),
            };
            let path = ["v1", "orgs", &org];
            let body: OrgBody = client.call(Method::PATCH, &path, Some(&req)).await?;
            show(ctx, &body)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn show(ctx: &Ctx, org: &OrgBody) -> anyhow::Result<()> {
    if ctx.json() {
        return output::json(org);
    }
    let span = |v: Option<u64>, none: &'static str| {
        v.map_or(Cow::Borrowed(none), |s| format_span(s).into())
    };
    output::fields(&[
        ("name", clean(&org.name)),
        ("created", clean(&org.created)),
        ("current key", org.current_key_version.to_string().into()),
        ("max expiry", span(org.max_expiry_secs, "none")),
        ("ledger retention", span(org.ledger_retention_secs, "kept")),
    ])?;
    Ok(())
}
