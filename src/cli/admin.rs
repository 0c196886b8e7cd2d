//! `orgs`, `keys` and `audit`: thin wrappers over the API.

use std::borrow::Cow;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use reqwest::Method;

use super::client::Client;
use super::input::{MaxExpiry, parse_max_expiry};
use super::output::{self, clean, or_dash};
use crate::api::{
    AuditList, CreateOrgRequest, CreateOrgResponse, KeyBody, KeyList, OrgBody, UpdateOrgRequest,
};
use crate::caveats::format_span;

#[derive(Subcommand)]
pub enum OrgsCommand {
    /// Create an org (needs the operator token); prints the new org's token.
    Create {
        /// The org's name: [a-z0-9][a-z0-9-]{0,62}.
        name: String,
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
    Set {
        /// The org.
        org: String,
        /// The longest expiry a token minted in the org may have (e.g. 90d), or `none`.
        #[arg(long, value_name = "DUR|none", value_parser = parse_max_expiry)]
        max_expiry: MaxExpiry,
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
    /// Retire a root-key version: every token minted under it stops verifying.
    Retire {
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
        OrgsCommand::Create { name, json } => {
            let body = CreateOrgRequest { name };
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
        OrgsCommand::Show { org, json } => {
            let body: OrgBody = client.get(&["v1", "orgs", &org]).await?;
            show_org(&body, json)?;
        }
        OrgsCommand::Set {
            org,
            max_expiry,
            json,
        } => {
            let req = UpdateOrgRequest {
                max_expiry_secs: max_expiry.0.map(|d| d.as_secs()),
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
        KeysCommand::Retire {
            org,
            key_version,
            json,
        } => {
            let version = key_version.to_string();
            let path = ["v1", "orgs", &org, "keys", &version, "retire"];
            let key: KeyBody = client.call(Method::POST, &path, None::<&()>).await?;
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
