//! `macvault keys …`: an org's root-key versions.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use reqwest::Method;

use super::exit::usage;
use super::output::{self, Fit, Table, or_dash};
use super::{ClientArgs, Ctx};
use crate::api::{KeyBody, KeyDetail, KeyList, RetireRequest};

#[derive(Args)]
pub struct KeysArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// List the org's root-key versions.
    List {
        /// The org (default: the token's).
        #[arg(long)]
        org: Option<String>,
    },
    /// Show a version and the live tokens minted under it (what retiring it would stop).
    Show {
        /// The org (default: the token's).
        #[arg(long)]
        org: Option<String>,
        /// The key version.
        #[arg(value_name = "VERSION")]
        key_version: u32,
    },
    /// Make a new root key current for minting; older versions keep verifying.
    Rotate {
        /// The org (default: the token's).
        #[arg(long)]
        org: Option<String>,
    },
    /// Retire a root-key version: every token minted under it stops verifying. Lists
    /// the live tokens that would stop and refuses without --yes.
    Retire {
        /// The org (default: the token's).
        #[arg(long)]
        org: Option<String>,
        /// The key version.
        #[arg(value_name = "VERSION")]
        key_version: u32,
        /// Go ahead although live tokens stop working.
        #[arg(long)]
        yes: bool,
    },
}

pub async fn run(ctx: &Ctx, cmd: KeysCommand) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    match cmd {
        KeysCommand::List { org } => {
            let org = ctx.org(org)?;
            let list: KeyList = client.get(&["v1", "orgs", &org, "keys"]).await?;
            if ctx.json() {
                output::json(&list)?;
            } else {
                key_table(&list.keys)?;
            }
        }
        KeysCommand::Show { org, key_version } => {
            let org = ctx.org(org)?;
            let version = key_version.to_string();
            let detail: KeyDetail = client.get(&["v1", "orgs", &org, "keys", &version]).await?;
            if ctx.json() {
                output::json(&detail)?;
            } else {
                key_table(std::slice::from_ref(&detail.key))?;
                live_tokens(&detail)?;
            }
        }
        KeysCommand::Rotate { org } => {
            let org = ctx.org(org)?;
            let path = ["v1", "orgs", &org, "keys", "rotate"];
            let key: KeyBody = client.call(Method::POST, &path, None::<&()>).await?;
            show_key(ctx, key)?;
        }
        KeysCommand::Retire {
            org,
            key_version,
            yes,
        } => {
            let org = ctx.org(org)?;
            let version = key_version.to_string();
            if !yes {
                let detail: KeyDetail = client.get(&["v1", "orgs", &org, "keys", &version]).await?;
                // The current version is refused by the server anyway, with the reason.
                if !detail.key.current && !detail.live_tokens.is_empty() {
                    live_tokens(&detail)?;
                    return Err(usage(format!(
                        "retiring key version {version} stops the {} live token(s) above: \
                         run again with --yes to go ahead",
                        detail.live_tokens.len()
                    )));
                }
            }
            let path = ["v1", "orgs", &org, "keys", &version, "retire"];
            let body = RetireRequest { confirm: yes };
            let key: KeyBody = client.call(Method::POST, &path, Some(&body)).await?;
            show_key(ctx, key)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn show_key(ctx: &Ctx, key: KeyBody) -> anyhow::Result<()> {
    if ctx.json() {
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
    let mut t = Table::new(&[
        ("ID", Fit::Keep),
        ("NAME", Fit::Keep),
        ("KIND", Fit::Keep),
        ("APP", Fit::Cut),
    ]);
    for tok in &detail.live_tokens {
        t.row([
            short_id(&tok.id),
            &tok.name,
            &tok.kind,
            &or_dash(tok.app.as_deref()),
        ]);
    }
    t.print()
}

/// The first 12 hex digits of a token id: enough to name it anywhere an id is taken.
pub(super) fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn key_table(keys: &[KeyBody]) -> std::io::Result<()> {
    let mut t = Table::new(&[
        ("VERSION", Fit::Keep),
        ("CREATED", Fit::Keep),
        ("RETIRED", Fit::Keep),
        ("CURRENT", Fit::Keep),
    ]);
    for k in keys {
        t.row([
            k.version.to_string().as_str(),
            &k.created,
            &or_dash(k.retired.as_deref()),
            if k.current { "yes" } else { "" },
        ]);
    }
    t.print()
}
