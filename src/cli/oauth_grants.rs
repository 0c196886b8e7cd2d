//! `macvault oauth-grants …`: what people granted OAuth clients (docs/OAUTH.md), as far
//! as the token may revoke it: its own grants, or every grant of the org for an org
//! token.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use reqwest::Method;

use super::output::{self, Fit, Table, clean};
use super::{ClientArgs, Ctx};
use crate::api::{OAuthGrantBody, OAuthGrantList};

#[derive(Args)]
pub struct OAuthGrantsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: OAuthGrantsCommand,
}

#[derive(Subcommand)]
pub enum OAuthGrantsCommand {
    /// List the grants this token may revoke, newest first.
    List {
        /// The org (default: the token's).
        #[arg(long)]
        org: Option<String>,
    },
    /// Revoke a grant: the client can refresh no more, and its tokens are revoked.
    Revoke {
        /// Its id (`mvg_…`).
        id: String,
        /// The org (default: the token's).
        #[arg(long)]
        org: Option<String>,
    },
}

pub async fn run(ctx: &Ctx, cmd: OAuthGrantsCommand) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    match cmd {
        OAuthGrantsCommand::List { org } => {
            let org = ctx.org(org)?;
            let list: OAuthGrantList = client.get(&["v1", "orgs", &org, "oauth-grants"]).await?;
            if ctx.json() {
                output::json(&list)?;
            } else {
                table(&list.grants).print()?;
            }
        }
        OAuthGrantsCommand::Revoke { id, org } => {
            let org = ctx.org(org)?;
            let path = ["v1", "orgs", &org, "oauth-grants", &id, "revoke"];
            let g: OAuthGrantBody = client.call::<(), _>(Method::POST, &path, None).await?;
            if ctx.json() {
                output::json(&g)?;
            } else {
                output::line(format_args!(
                    "revoked OAuth grant {} to \"{}\" ({})",
                    g.id,
                    clean(&g.client_name),
                    g.client_id
                ))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn table(grants: &[OAuthGrantBody]) -> Table {
    let mut t = Table::new(&[
        ("GRANT", Fit::Keep),
        ("CLIENT", Fit::Cut),
        ("SCOPES", Fit::Keep),
        ("CREATED", Fit::Keep),
        ("LAST USED", Fit::Keep),
        ("STATUS", Fit::Keep),
    ]);
    for g in grants {
        let status = if g.live { "live" } else { "ended" };
        t.row([
            g.id.as_str(),
            &g.client_name,
            &g.scopes.join(" "),
            &g.created,
            g.last_used.as_deref().unwrap_or("never"),
            status,
        ]);
    }
    t
}
