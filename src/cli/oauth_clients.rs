//! `macvault oauth-clients …`: the org's OAuth clients (integrations that people grant
//! narrowed tokens by consent); an org token's business.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use reqwest::Method;

use super::output::{self, Fit, Table, clean};
use super::{ClientArgs, Ctx};
use crate::api::{AddOAuthClientRequest, AddOAuthClientResponse, OAuthClientBody, OAuthClientList};

#[derive(Args)]
pub struct OAuthClientsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: OAuthClientsCommand,
}

#[derive(Subcommand)]
pub enum OAuthClientsCommand {
    /// Register a client; a confidential one's secret is printed once (stdout), its id
    /// on stderr.
    Add {
        /// Its name, shown to people on the consent page.
        name: String,
        /// Where codes may be sent (repeat for several): https, or http to 127.0.0.1 or
        /// [::1] on any port (a native app or CLI).
        #[arg(long = "redirect-uri", value_name = "URI", required = true)]
        redirect_uris: Vec<String>,
        /// A public client (a native app or CLI that cannot keep a secret): no secret,
        /// PKCE only.
        #[arg(long)]
        public: bool,
        /// It may ask for `reveal` (nothing maps to it otherwise).
        #[arg(long)]
        allow_reveal: bool,
        /// The org (default: the token's).
        #[arg(long)]
        org: Option<String>,
    },
    /// List the org's clients.
    List {
        /// The org (default: the token's).
        #[arg(long)]
        org: Option<String>,
    },
    /// Show one client.
    Show {
        /// Its client id (`mvc_…`).
        id: String,
        /// The org (default: the token's).
        #[arg(long)]
        org: Option<String>,
    },
    /// Remove a client: it can ask for nothing more.
    Remove {
        /// Its client id (`mvc_…`).
        id: String,
        /// The org (default: the token's).
        #[arg(long)]
        org: Option<String>,
    },
}

pub async fn run(ctx: &Ctx, cmd: OAuthClientsCommand) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    match cmd {
        OAuthClientsCommand::Add {
            name,
            redirect_uris,
            public,
            allow_reveal,
            org,
        } => {
            let org = ctx.org(org)?;
            let req = AddOAuthClientRequest {
                name,
                redirect_uris,
                public,
                allow_reveal,
            };
            let path = ["v1", "orgs", &org, "oauth-clients"];
            let added: AddOAuthClientResponse =
                client.call(Method::POST, &path, Some(&req)).await?;
            if ctx.json() {
                output::json(&added)?;
            } else {
                let c = &added.client;
                eprintln!(
                    "registered OAuth client \"{}\": client_id {}",
                    clean(&c.name),
                    c.client_id
                );
                match &added.client_secret {
                    Some(secret) => {
                        eprintln!("its secret (shown only now; only its hash is kept):");
                        output::precious(secret, "the client secret")?;
                    }
                    None => output::line(&c.client_id)?,
                }
            }
        }
        OAuthClientsCommand::List { org } => {
            let org = ctx.org(org)?;
            let list: OAuthClientList = client.get(&["v1", "orgs", &org, "oauth-clients"]).await?;
            if ctx.json() {
                output::json(&list)?;
            } else {
                table(&list.clients).print()?;
            }
        }
        OAuthClientsCommand::Show { id, org } => {
            let org = ctx.org(org)?;
            let c: OAuthClientBody = client
                .get(&["v1", "orgs", &org, "oauth-clients", &id])
                .await?;
            show(ctx, &c)?;
        }
        OAuthClientsCommand::Remove { id, org } => {
            let org = ctx.org(org)?;
            let c: OAuthClientBody = client
                .call::<(), _>(
                    Method::DELETE,
                    &["v1", "orgs", &org, "oauth-clients", &id],
                    None,
                )
                .await?;
            if ctx.json() {
                output::json(&c)?;
            } else {
                output::line(format_args!(
                    "removed OAuth client \"{}\" ({})",
                    clean(&c.name),
                    c.client_id
                ))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn show(ctx: &Ctx, c: &OAuthClientBody) -> anyhow::Result<()> {
    if ctx.json() {
        return output::json(c);
    }
    let kind = if c.public { "public" } else { "confidential" };
    output::fields(&[
        ("client_id", c.client_id.as_str().into()),
        ("name", clean(&c.name)),
        ("kind", kind.into()),
        (
            "may reveal",
            if c.allow_reveal { "yes" } else { "no" }.into(),
        ),
        ("redirect URIs", c.redirect_uris.join(" ").into()),
        ("created", c.created.as_str().into()),
    ])?;
    Ok(())
}

fn table(clients: &[OAuthClientBody]) -> Table {
    let mut t = Table::new(&[
        ("CLIENT ID", Fit::Keep),
        ("NAME", Fit::Cut),
        ("KIND", Fit::Keep),
        ("REDIRECT URIS", Fit::Cut),
    ]);
    for c in clients {
        let kind = if c.public { "public" } else { "confidential" };
        t.row([
            c.client_id.as_str(),
            &c.name,
            kind,
            &c.redirect_uris.join(" "),
        ]);
    }
    t
}
