//! `secrets import` and `secrets export`: .env files in, values out.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use reqwest::Method;
use zeroize::Zeroizing;

use super::super::client::Client;
use super::super::dotenv;
use super::super::exit::usage;
use super::super::input::claim_stdin;
use super::super::output::{self, Fit, Table, clean};
use super::super::progress::Progress;
use super::{Ctx, ScopeArgs, segments, written};
use crate::api::{RevealResponse, SetBody, WriteSecretsRequest, WriteSecretsResponse};

/// The largest .env file read (an app's secrets are at most 1 MiB).
const MAX_FILE: u64 = 4 * 1024 * 1024;

/// `secrets import`.
#[derive(Args)]
pub struct ImportArgs {
    #[command(flatten)]
    scope: ScopeArgs,
    /// The .env file, or `-` for stdin.
    file: PathBuf,
    /// Say what would be added and changed, writing nothing. Whether a value would
    /// change is said only to a token that may reveal it.
    #[arg(long)]
    dry_run: bool,
    /// Create the app first if the org has none of that name (an org token's right).
    #[arg(long)]
    create_app: bool,
}

/// `secrets export --format`.
#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    /// `NAME='value'` lines python-dotenv reads back exactly (single-quoted wherever
    /// that reads back, so a shell that sources the file expands nothing).
    Dotenv,
    /// One JSON object, name to value.
    Json,
    /// `NAME='value'` lines for `sh` to source: single-quoted, `'` as `'\''`; sourcing
    /// gives exactly the values and runs nothing.
    Shell,
}

/// `secrets export`.
#[derive(Args)]
pub struct ExportArgs {
    #[command(flatten)]
    scope: ScopeArgs,
    /// dotenv (the default), json or shell; --json is --format json.
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Export this secret although its name changes how programs load or run code
    /// (PATH, LD_PRELOAD, PYTHON*… as `run` withholds them); repeatable.
    #[arg(long, value_name = "NAME")]
    allow: Vec<String>,
}

/// `value` single-quoted for a POSIX shell: nothing inside is expanded.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

fn read_file(path: &PathBuf) -> anyhow::Result<String> {
    let mut text = String::new();
    if path.as_os_str() == "-" {
        claim_stdin("the .env file")?;
        std::io::stdin()
            .lock()
            .take(MAX_FILE + 1)
            .read_to_string(&mut text)
            .context("cannot read the .env file from stdin")?;
    } else {
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_FILE + 1).read_to_string(&mut text))
            .map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
    }
    if text.len() as u64 > MAX_FILE {
        return Err(usage(format!(
            "{} is over {} MiB: not a .env file of secrets",
            path.display(),
            MAX_FILE >> 20
        )));
    }
    Ok(text)
}

pub async fn import(ctx: &Ctx, client: &Client, args: ImportArgs) -> anyhow::Result<()> {
    let text = read_file(&args.file)?;
    let pairs = dotenv::parse(&text).map_err(|e| usage(format!("{}: {e}", args.file.display())))?;
    if pairs.is_empty() {
        return Err(usage(format!("{} sets nothing", args.file.display())));
    }
    // As python-dotenv does, a name set twice takes its last value.
    let mut last: BTreeMap<&str, &str> = BTreeMap::new();
    let mut order = Vec::new();
    for (name, value) in &pairs {
        if last.insert(name, value).is_some() {
            eprintln!(
                "warning: {} is set twice; the last value is used",
                clean(name)
            );
        } else {
            order.push(name.as_str());
        }
    }
    let mut req = WriteSecretsRequest {
        set: order
            .iter()
            .map(|name| SetBody {
                name: (*name).to_owned(),
                value: last[name].to_owned(),
                description: None,
                expires_secs: None,
                if_version: None,
            })
            .collect(),
        unset: Vec::new(),
        dry_run: args.dry_run,
        create_app: args.create_app,
    };
    let path = args.scope.path(ctx, &[])?;
    // One atomic write: a spinner while it runs (a terminal only), then the answer.
    let shown = Progress::spinner(format!(
        "importing {} secret(s) from {}",
        req.set.len(),
        args.file.display()
    ));
    let done: Result<WriteSecretsResponse, _> = shown
        .follow(
            client.call(Method::POST, &segments(&path), Some(&req)),
            |_| {},
        )
        .await;
    shown.clear();
    for s in &mut req.set {
        zeroize::Zeroize::zeroize(&mut s.value);
    }
    let done = done?;
    if !args.dry_run {
        return written(ctx, &args.scope, &done);
    }
    if ctx.json() {
        return output::json(&done);
    }
    let mut t = Table::new(&[("NAME", Fit::Keep), ("WOULD", Fit::Keep)]);
    for s in &done.secrets {
        let would = match s.would.as_deref() {
            Some("add") => "add".to_owned(),
            Some("change") => format!("change (v{} -> v{})", s.version - 1, s.version),
            Some("unchanged") => "unchanged (same value)".to_owned(),
            _ => format!("set (v{} -> v{})", s.version - 1, s.version),
        };
        t.row([clean(&s.name).into_owned(), would]);
    }
    t.print()?;
    output::line(format_args!(
        "dry run: nothing was written to {}",
        args.scope.shown()
    ))?;
    Ok(())
}

pub async fn export(ctx: &Ctx, client: &Client, args: ExportArgs) -> anyhow::Result<()> {
    let format = match (args.format, ctx.json()) {
        (None, true) => Format::Json,
        (None, false) => Format::Dotenv,
        (Some(Format::Json), _) => Format::Json,
        (Some(_), true) => {
            return Err(usage(
                "--json exports JSON: drop it, or --format, to export another format",
            ));
        }
        (Some(f), false) => f,
    };
    let path = args.scope.path(ctx, &["reveal"])?;
    let revealed: RevealResponse = client
        .post_query(&segments(&path), &[], Duration::from_secs(30))
        .await?;
    for name in &revealed.expired {
        eprintln!("warning: {} has EXPIRED: not exported", clean(name));
    }
    let allowed: Vec<String> = args
        .allow
        .iter()
        .chain(&revealed.allowed_env)
        .cloned()
        .collect();
    let (kept, withheld) = crate::cli::run::withhold(
        revealed
            .secrets
            .iter()
            .map(|(n, v)| (n.clone(), v.as_str())),
        &allowed,
    );
    crate::cli::run::warn_withheld(&withheld, "exported");
    match format {
        Format::Json => {
            let map: std::collections::BTreeMap<&str, &str> =
                kept.iter().map(|(n, v)| (n.as_str(), *v)).collect();
            output::values_json(&map, "the values")
        }
        Format::Shell => {
            let lines: Vec<String> = kept
                .iter()
                .map(|(name, value)| format!("{name}={}", shell_quote(value)))
                .collect();
            let text = Zeroizing::new(lines.join("\n"));
            drop(Zeroizing::new(lines));
            if text.is_empty() {
                return Ok(());
            }
            output::values(text.as_str(), "the values")
        }
        Format::Dotenv => {
            let text =
                dotenv::write(kept.iter().map(|(n, v)| (n.as_str(), *v))).map_err(|name| {
                    anyhow::anyhow!(
                        "the value of {} cannot be written as a .env line that reads back the \
                     same: use --format json",
                        clean(&name)
                    )
                })?;
            let risky: Vec<&str> = text
                .lines()
                .filter(|l| dotenv::expands_in_a_shell(l))
                .filter_map(|l| l.split_once('=').map(|(n, _)| n))
                .collect();
            if !risky.is_empty() {
                eprintln!(
                    "warning: this .env file is for dotenv readers: a shell sourcing it would \
                     expand the values of {} (use --format shell for a file to source)",
                    risky.join(", ")
                );
            }
            if text.is_empty() {
                return Ok(());
            }
            output::values(text.trim_end_matches('\n'), "the values")
        }
    }
}
