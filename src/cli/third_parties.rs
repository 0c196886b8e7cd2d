//! `macvault third-parties …`: the dischargers registered in an org.

use std::borrow::Cow;
use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use reqwest::Method;

use super::exit::usage;
use super::keys::short_id;
use super::output::{self, Fit, Table, fields, or_dash};
use super::{ClientArgs, Ctx};
use crate::api::{
    AddThirdPartyRequest, RemoveThirdPartyRequest, RetireKeyRequest, RetireKeyResponse,
    ThirdPartyBody, ThirdPartyList,
};
use crate::authority::MAX_JWKS;

#[derive(Args)]
pub struct ThirdPartiesArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: ThirdPartiesCommand,
}

#[derive(Subcommand)]
pub enum ThirdPartiesCommand {
    /// Register a third party: a discharger that checks a CI job's OIDC ID token.
    Add(AddArgs),
    /// List the org's third parties.
    List {
        /// The org (default: the token's).
        #[arg(long)]
        org: Option<String>,
    },
    /// Show a third party, its public key and the tokens that need it.
    Show {
        /// Its name.
        name: String,
        /// The org (default: the token's).
        #[arg(long)]
        org: Option<String>,
    },
    /// Remove a third party; refused while live tokens need it, unless --force.
    Remove {
        /// Its name.
        name: String,
        /// The org (default: the token's).
        #[arg(long)]
        org: Option<String>,
        /// Remove it although live tokens need it (they can then never be discharged).
        #[arg(long)]
        force: bool,
    },
    /// Give a third party a new key pair: new tickets are sealed to it; every older
    /// key keeps opening the tickets sealed to it until retire-key.
    RotateKey {
        /// Its name.
        name: String,
        /// The org (default: the token's).
        #[arg(long)]
        org: Option<String>,
    },
    /// Retire an older key: tickets sealed to it stop opening. Refused while live
    /// tokens hold such tickets (`show` counts them per key), unless --force.
    RetireKey {
        /// Its name.
        name: String,
        /// The key id (16 hex digits, from `show`).
        key_id: String,
        /// The org (default: the token's).
        #[arg(long)]
        org: Option<String>,
        /// Retire it although live tokens hold tickets sealed to it (they stop working).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Args)]
pub struct AddArgs {
    /// Its name in the org (lowercase letters, digits and dashes).
    name: String,
    /// Its kind (ci-oidc: a CI job's OIDC ID token).
    #[arg(long, default_value = "ci-oidc")]
    kind: String,
    /// Where its discharges are obtained: this server's URL and a path of its own, e.g.
    /// https://vault.example.com/3p/acme-ci.
    #[arg(long, value_name = "URL")]
    location: String,
    /// The OIDC issuer, e.g. https://token.actions.githubusercontent.com.
    #[arg(long, value_name = "ISS")]
    issuer: String,
    /// The audience the ID tokens must name.
    #[arg(long, value_name = "AUD")]
    audience: String,
    /// The issuer's JSON Web Key Set: a file, or an https URL to fetch it from.
    #[arg(long, value_name = "FILE|URL")]
    jwks: String,
    /// The org (default: the token's).
    #[arg(long)]
    org: Option<String>,
}

pub async fn run(ctx: &Ctx, cmd: ThirdPartiesCommand) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    match cmd {
        ThirdPartiesCommand::Add(args) => {
            let org = ctx.org(args.org.clone())?;
            let (jwks, jwks_url) =
                if args.jwks.starts_with("https://") || args.jwks.starts_with("http://") {
                    (None, Some(args.jwks.clone()))
                } else {
                    (Some(read_jwks(&PathBuf::from(&args.jwks))?), None)
                };
            let req = AddThirdPartyRequest {
                name: args.name,
                kind: args.kind,
                location: args.location,
                issuer: args.issuer,
                audience: args.audience,
                jwks,
                jwks_url,
            };
            let path = ["v1", "orgs", &org, "third-parties"];
            let tp: ThirdPartyBody = client.call(Method::POST, &path, Some(&req)).await?;
            show(ctx, &tp)?;
        }
        ThirdPartiesCommand::List { org } => {
            let org = ctx.org(org)?;
            let list: ThirdPartyList = client.get(&["v1", "orgs", &org, "third-parties"]).await?;
            if ctx.json() {
                output::json(&list)?;
            } else {
                table(&list.third_parties)?;
            }
        }
        ThirdPartiesCommand::Show { name, org } => {
            let org = ctx.org(org)?;
            let tp: ThirdPartyBody = client
                .get(&["v1", "orgs", &org, "third-parties", &name])
                .await?;
            show(ctx, &tp)?;
        }
        ThirdPartiesCommand::Remove { name, org, force } => {
            let org = ctx.org(org)?;
            let path = ["v1", "orgs", &org, "third-parties", &name];
            let body = RemoveThirdPartyRequest { force };
            let tp: ThirdPartyBody = client.call(Method::DELETE, &path, Some(&body)).await?;
            if ctx.json() {
                output::json(&tp)?;
            } else {
                output::line(format_args!("removed third party {}", tp.name))?;
            }
        }
        ThirdPartiesCommand::RotateKey { name, org } => {
            let org = ctx.org(org)?;
            let path = ["v1", "orgs", &org, "third-parties", &name, "rotate-key"];
            let tp: ThirdPartyBody = client.call(Method::POST, &path, None::<&()>).await?;
            show(ctx, &tp)?;
        }
        ThirdPartiesCommand::RetireKey {
            name,
            key_id,
            org,
            force,
        } => {
            let org = ctx.org(org)?;
            let path = [
                "v1",
                "orgs",
                &org,
                "third-parties",
                &name,
                "keys",
                &key_id,
                "retire",
            ];
            let body = RetireKeyRequest { force };
            let done: RetireKeyResponse = client.call(Method::POST, &path, Some(&body)).await?;
            if ctx.json() {
                output::json(&done)?;
            } else {
                output::line(format_args!(
                    "retired key {} of third party {}",
                    done.key_id, done.third_party.name
                ))?;
                if done.tokens_stopped > 0 {
                    output::line(format_args!(
                        "{} live token(s) held tickets sealed to it: they stopped working",
                        done.tokens_stopped
                    ))?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn read_jwks(path: &PathBuf) -> anyhow::Result<String> {
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| {
        usage(format!(
            "--jwks: cannot open {shown}: {e} (give a file or an https URL)"
        ))
    })?;
    let mut text = String::new();
    file.take(MAX_JWKS as u64 + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read {shown}"))?;
    if text.len() > MAX_JWKS {
        return Err(usage(format!("{shown} is larger than {MAX_JWKS} bytes")));
    }
    Ok(text)
}

fn show(ctx: &Ctx, tp: &ThirdPartyBody) -> anyhow::Result<()> {
    if ctx.json() {
        return output::json(tp);
    }
    let jwks = tp.jwks_url.as_deref().map_or(
        Cow::Borrowed("(document given at registration)"),
        Cow::Borrowed,
    );
    fields(&[
        ("name", Cow::Borrowed(tp.name.as_str())),
        ("kind", Cow::Borrowed(tp.kind.as_str())),
        ("location", Cow::Borrowed(tp.location.as_str())),
        ("issuer", Cow::Borrowed(tp.issuer.as_str())),
        ("audience", Cow::Borrowed(tp.audience.as_str())),
        ("jwks", jwks),
        ("key id", Cow::Borrowed(tp.key_id.as_str())),
        ("public key", Cow::Borrowed(tp.public_key.as_str())),
        ("created", Cow::Borrowed(tp.created.as_str())),
    ])?;
    let mut keys = Table::new(&[
        ("KEY ID", Fit::Keep),
        ("CREATED", Fit::Keep),
        ("SEALS", Fit::Keep),
        ("LIVE TOKENS", Fit::Keep),
        ("PUBLIC KEY", Fit::Cut),
    ]);
    for k in &tp.keys {
        let seals = if k.current {
            "new tickets"
        } else {
            "older only"
        };
        let live = k.live_tokens.to_string();
        keys.row([
            k.key_id.as_str(),
            k.created.as_str(),
            seals,
            live.as_str(),
            k.public_key.as_str(),
        ]);
    }
    keys.print()?;
    if tp.dependents.is_empty() {
        return Ok(output::line("no token known to need it")?);
    }
    output::line(format_args!("{} token(s) need it:", tp.dependents.len()))?;
    let mut t = Table::new(&[
        ("ID", Fit::Keep),
        ("NAME", Fit::Keep),
        ("STATUS", Fit::Keep),
        ("KEY ID", Fit::Keep),
        ("CONDITIONS", Fit::Cut),
    ]);
    for d in &tp.dependents {
        t.row([
            short_id(&d.token_id),
            &or_dash(d.name.as_deref()),
            &d.status,
            &d.key_id,
            &d.conditions.join("; "),
        ]);
    }
    Ok(t.print()?)
}

fn table(list: &[ThirdPartyBody]) -> std::io::Result<()> {
    if list.is_empty() {
        return output::line("no third parties");
    }
    let mut t = Table::new(&[
        ("NAME", Fit::Keep),
        ("KIND", Fit::Keep),
        ("LOCATION", Fit::Cut),
        ("ISSUER", Fit::Cut),
        ("KEY", Fit::Keep),
    ]);
    for tp in list {
        t.row([&tp.name, &tp.kind, &tp.location, &tp.issuer, &tp.key_id]);
    }
    t.print()
}
