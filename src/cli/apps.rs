//! `macvault apps …`: the apps of an org, which app-scoped tokens and secrets name.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use reqwest::Method;

use super::keys::short_id;
use super::output::{self, Fit, Table, clean, or_dash};
use super::{ClientArgs, Ctx};
use crate::api::{AppBody, AppList, CreateAppRequest, DeleteAppRequest, DeletedAppBody};

#[derive(Args)]
pub struct AppsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: AppsCommand,
}

#[derive(Subcommand)]
pub enum AppsCommand {
    /// Create an app (an org token's right): app-scoped tokens and secrets may then name it.
    Create {
        /// Its name (lowercase letters, digits and dashes).
        name: String,
        /// The org (default: the token's).
        #[arg(long)]
        org: Option<String>,
    },
    /// List the org's apps: secrets, live tokens, secrets version.
    List {
        /// The org (default: the token's).
        #[arg(long)]
        org: Option<String>,
    },
    /// Show an app and the live tokens that name it.
    Show {
        /// Its name.
        name: String,
        /// The org (default: the token's).
        #[arg(long)]
        org: Option<String>,
    },
    /// Delete an app; refused while secrets or live tokens name it, unless --force,
    /// which shows what it would do (revoke those tokens, destroy those secrets' values)
    /// and needs --yes.
    Delete {
        /// Its name.
        name: String,
        /// The org (default: the token's).
        #[arg(long)]
        org: Option<String>,
        /// Delete it although secrets or live tokens name it.
        #[arg(long)]
        force: bool,
        /// With --force: go ahead.
        #[arg(long, requires = "force")]
        yes: bool,
    },
}

pub async fn run(ctx: &Ctx, cmd: AppsCommand) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    match cmd {
        AppsCommand::Create { name, org } => {
            let org = ctx.org(org)?;
            let req = CreateAppRequest { name };
            let app: AppBody = client
                .call(Method::POST, &["v1", "orgs", &org, "apps"], Some(&req))
                .await?;
            if ctx.json() {
                output::json(&app)?;
            } else {
                output::line(format_args!("created app {}", clean(&app.name)))?;
            }
        }
        AppsCommand::List { org } => {
            let org = ctx.org(org)?;
            let list: AppList = client.get(&["v1", "orgs", &org, "apps"]).await?;
            if ctx.json() {
                output::json(&list)?;
            } else if list.apps.is_empty() {
                output::line("no apps: create one with `macvault apps create NAME`")?;
            } else {
                let mut t = Table::new(&[
                    ("NAME", Fit::Keep),
                    ("SECRETS", Fit::Keep),
                    ("TOKENS", Fit::Keep),
                    ("VERSION", Fit::Keep),
                    ("CREATED", Fit::Cut),
                ]);
                for a in &list.apps {
                    t.row([
                        a.name.clone(),
                        a.secrets.to_string(),
                        a.tokens.to_string(),
                        a.secrets_version.to_string(),
                        or_dash(a.created.as_deref()).into_owned(),
                    ]);
                }
                t.print()?;
            }
        }
        AppsCommand::Show { name, org } => {
            let org = ctx.org(org)?;
            let app: AppBody = client.get(&["v1", "orgs", &org, "apps", &name]).await?;
            if ctx.json() {
                output::json(&app)?;
            } else {
                output::line(format_args!(
                    "app {}: {} secret(s), {} live token(s), secrets version {}",
                    clean(&app.name),
                    app.secrets,
                    app.tokens,
                    app.secrets_version
                ))?;
                for t in &app.live_tokens {
                    output::line(format_args!(
                        "  {}  {} \"{}\"",
                        short_id(&t.id),
                        clean(&t.kind),
                        clean(&t.name)
                    ))?;
                }
            }
        }
        AppsCommand::Delete {
            name,
            org,
            force,
            yes,
        } => {
            let org = ctx.org(org)?;
            let path = ["v1", "orgs", &org, "apps", &name];
            let preview = force && !yes;
            let req = DeleteAppRequest {
                force,
                dry_run: preview,
            };
            let done: DeletedAppBody = client.call(Method::DELETE, &path, Some(&req)).await?;
            if ctx.json() {
                output::json(&done)?;
            } else {
                let what = if done.dry_run { "would" } else { "did" };
                output::line(format_args!(
                    "deleting app {} {what} revoke {} token(s) and destroy the values of {} secret(s)",
                    clean(&done.name),
                    done.revoked.len(),
                    done.destroyed.len()
                ))?;
                for t in &done.revoked {
                    output::line(format_args!(
                        "  token {}  {} \"{}\"",
                        short_id(&t.id),
                        clean(&t.kind),
                        clean(&t.name)
                    ))?;
                }
                for s in &done.destroyed {
                    output::line(format_args!("  secret {}", clean(s)))?;
                }
            }
            if done.dry_run {
                eprintln!("nothing deleted: add --yes to delete it");
                return Ok(super::exit::Exit::Refused.code());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
