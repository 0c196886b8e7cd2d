//! `orgs`, `keys` and `audit`: thin wrappers over the API.

use std::borrow::Cow;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use reqwest::Method;

use super::client::Client;
use std::time::Duration;

use super::input::{MaxExpiry, parse_duration, parse_max_expiry};
use super::output::{self, clean, or_dash};
use crate::api::{
    AuditList, CreateOrgRequest, CreateOrgResponse, IssueOrgTokenRequest, KeyBody, KeyDetail,
    KeyList, MintResponse, OrgBody, OrgList, RetireRequest, UpdateOrgRequest,
};
use crate::caveats::format_span;

#[derive(Subcommand)]
pub enum OrgsCommand {
    /// Create an org (needs the operator token); prints the new org's token.
    Create {
        /// The org's name: [a-z0-9][a-z0-9-]{0,62}.
        name: String,
        /// Lifetime of its first org token, e.g. 90d (the default).
        #[arg(long, value_name = "DUR", value_parser = parse_duration)]
        expiry: Option<Duration>,
        /// Print the whole JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// List every org (needs the operator token).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Issue a fresh org token for any org (needs the operator token): the way back in
    /// when an org's tokens expired or were revoked. Prints only the token.
    Token {
        /// The org.
        org: String,
        /// Its lifetime, e.g. 30d (default 90 days, cut to the org's maximum).
        #[arg(long, value_name = "DUR", value_parser = parse_duration)]
        expiry: Option<Duration>,
        /// Print the whole JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// Show an org's settings.
    Show {
        /// The org.
        org: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change an org's settings.
    #[command(group(clap::ArgGroup::new("setting").required(true).multiple(true)))]
    Set {
        /// The org.
        org: String,
        /// The longest expiry a token minted in the org may have (e.g. 90d), or `none`.
        #[arg(long, value_name = "DUR|none", value_parser = parse_max_expiry, group = "setting")]
        max_expiry: Option<MaxExpiry>,
        /// How long expired and revoked tokens stay listed (e.g. 180d), or `none` (kept).
        #[arg(long, value_name = "DUR|none", value_parser = parse_max_expiry, group = "setting")]
        ledger_retention: Option<MaxExpiry>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// List the org's root-key versions.
    List {
        /// The org.
        #[arg(long)]
        org: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make a new root key current for minting; older versions keep verifying.
    Rotate {
        /// The org.
        #[arg(long)]
        org: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a version and the live tokens minted under it (what retiring it would stop).
    Show {
        /// The org.
        #[arg(long)]
        org: String,
        /// The key version.
        #[arg(value_name = "VERSION")]
        key_version: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Retire a root-key version: every token minted under it stops verifying. Lists
    /// the live tokens that would stop and refuses without --yes.
    Retire {
        /// The org.
        #[arg(long)]
        org: String,
        /// The key version.
        #[arg(value_name = "VERSION")]
        key_version: u32,
        /// Go ahead although live tokens stop working.
        #[arg(long)]
        yes: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct AuditArgs {
    /// The org.
    #[arg(long)]
    org: String,
    /// At most this many events (the newest).
    #[arg(long)]
    limit: Option<u32>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub async fn orgs(client: &Client, cmd: OrgsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        OrgsCommand::Create { name, expiry, json } => {
            let body = CreateOrgRequest {
                name,
                expiry_secs: expiry.map(|d| d.as_secs()),
            };
            let created: CreateOrgResponse = client
                .call(Method::POST, &["v1", "orgs"], Some(&body))
                .await?;
            if json {
                output::json(&created)?;
            } else {
                output::line(&created.token)?;
                eprintln!(
                    "created org {}; its org token {} expires {} and is shown only once",
                    clean(&created.org),
                    clean(&created.token_id),
                    clean(&created.expires)
                );
            }
        }
        OrgsCommand::List { json } => {
            let list: OrgList = client.get(&["v1", "orgs"]).await?;
            if json {
                output::json(&list)?;
            } else {
                let rows = list
                    .orgs
                    .iter()
                    .map(|o| {
                        [
                            clean(&o.name),
                            clean(&o.created),
                            o.current_key_version.to_string().into(),
                            o.max_expiry_secs
                                .map_or(Cow::Borrowed("none"), |s| format_span(s).into()),
                        ]
                    })
                    .collect();
                output::table(["NAME", "CREATED", "KEY", "MAX EXPIRY"], rows)?;
            }
        }
        OrgsCommand::Token { org, expiry, json } => {
            let body = IssueOrgTokenRequest {
                expiry_secs: expiry.map(|d| d.as_secs()),
            };
            let path = ["v1", "orgs", &org, "org-token"];
            let minted: MintResponse = client.call(Method::POST, &path, Some(&body)).await?;
            if json {
                output::json(&minted)?;
            } else {
                output::line(&minted.token)?;
                eprintln!(
                    "issued an org token for {} ({}), expiring {}; it is shown only once",
                    clean(&org),
                    clean(&minted.record.id),
                    clean(&minted.record.expires)
                );
            }
        }
        OrgsCommand::Show { org, json } => {
            let body: OrgBody = client.get(&["v1", "orgs", &org]).await?;
            show_org(&body, json)?;
        }
        OrgsCommand::Set {
            org,
            max_expiry,
            ledger_retention,
            json,
        } => {
            let secs = |m: MaxExpiry| m.0.map(|d| d.as_secs());
            let req = UpdateOrgRequest {
                max_expiry_secs: max_expiry.map(secs),
                ledger_retention_secs: ledger_retention.map(secs),
            };
            let path = ["v1", "orgs", &org];
            let body: OrgBody = client.call(Method::PATCH, &path, Some(&req)).await?;
            show_org(&body, json)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn show_org(org: &OrgBody, json: bool) -> anyhow::Result<()> {
    if json {
        return output::json(org);
    }
    let max = org
        .max_expiry_secs
        .map_or(Cow::Borrowed("none"), |s| format_span(s).into());
    output::fields(&[
        ("name", clean(&org.name)),
        ("created", clean(&org.created)),
        ("current key", org.current_key_version.to_string().into()),
        ("max expiry", max),
        (
            "ledger retention",
            org.ledger_retention_secs
                .map_or(Cow::Borrowed("kept"), |s| format_span(s).into()),
        ),
    ])?;
    Ok(())
}

pub async fn keys(client: &Client, cmd: KeysCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        KeysCommand::List { org, json } => {
            let list: KeyList = client.get(&["v1", "orgs", &org, "keys"]).await?;
            if json {
                output::json(&list)?;
            } else {
                key_table(&list.keys)?;
            }
        }
        KeysCommand::Rotate { org, json } => {
            let path = ["v1", "orgs", &org, "keys", "rotate"];
            let key: KeyBody = client.call(Method::POST, &path, None::<&()>).await?;
            show_key(key, json)?;
        }
        KeysCommand::Show {
            org,
            key_version,
            json,
        } => {
            let version = key_version.to_string();
            let detail: KeyDetail = client.get(&["v1", "orgs", &org, "keys", &version]).await?;
            if json {
                output::json(&detail)?;
            } else {
                key_table(std::slice::from_ref(&detail.key))?;
                live_tokens(&detail)?;
            }
        }
        KeysCommand::Retire {
            org,
            key_version,
            yes,
            json,
        } => {
            let version = key_version.to_string();
            if !yes {
                let detail: KeyDetail = client.get(&["v1", "orgs", &org, "keys", &version]).await?;
                // The current version is refused by the server anyway, with the reason.
                if !detail.key.current && !detail.live_tokens.is_empty() {
                    live_tokens(&detail)?;
                    anyhow::bail!(
                        "retiring key version {version} stops the {} live token(s) above: run again with --yes to go ahead",
                        detail.live_tokens.len()
                    );
                }
            }
            let path = ["v1", "orgs", &org, "keys", &version, "retire"];
            let body = RetireRequest { confirm: yes };
            let key: KeyBody = client.call(Method::POST, &path, Some(&body)).await?;
            show_key(key, json)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn show_key(key: KeyBody, json: bool) -> anyhow::Result<()> {
    if json {
        output::json(&key)
    } else {
        Ok(key_table(&[key])?)
    }
}

fn live_tokens(detail: &KeyDetail) -> std::io::Result<()> {
    if detail.live_tokens.is_empty() {
        return output::line("no live token was minted under this version");
    }
    output::line(format_args!(
        "{} live token(s) minted under version {}:",
        detail.live_tokens.len(),
        detail.key.version
    ))?;
    let rows = detail
        .live_tokens
        .iter()
        .map(|t| {
            [
                clean(&t.id),
                clean(&t.name),
                clean(&t.kind),
                or_dash(t.app.as_deref()),
            ]
        })
        .collect();
    output::table(["ID", "NAME", "KIND", "APP"], rows)
}

fn key_table(keys: &[KeyBody]) -> std::io::Result<()> {
    let rows = keys
        .iter()
        .map(|k| {
            [
                k.version.to_string().into(),
                clean(&k.created),
                or_dash(k.retired.as_deref()),
                if k.current { "yes" } else { "" }.into(),
            ]
        })
        .collect();
    output::table(["VERSION", "CREATED", "RETIRED", "CURRENT"], rows)
}

pub async fn audit(client: &Client, args: AuditArgs) -> anyhow::Result<ExitCode> {
    let query: Vec<(&str, String)> = args
        .limit
        .map(|n| ("limit", n.to_string()))
        .into_iter()
        .collect();
    let path = ["v1", "orgs", &args.org, "audit"];
    let list: AuditList = client.get_query(&path, &query).await?;
    if args.json {
        output::json(&list)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows = list
        .events
        .iter()
        .map(|e| {
            [
                e.seq.to_string().into(),
                clean(&e.time),
                clean(&e.action),
                clean(&e.outcome),
                or_dash(e.actor.as_deref()),
                or_dash(e.source_ip.as_deref()),
                clean(&e.detail),
            ]
        })
        .collect();
    let header = [
        "SEQ",
        "TIME",
        "ACTION",
        "OUTCOME",
        "ACTOR",
        "SOURCE IP",
        "DETAIL",
    ];
    output::table(header, rows)?;
    Ok(ExitCode::SUCCESS)
}
