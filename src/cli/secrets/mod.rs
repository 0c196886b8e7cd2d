//! `macvault secrets …`: an org's or an app's secrets, never printing a value.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use reqwest::Method;
use zeroize::Zeroizing;

use super::exit::usage;
use super::input::{parse_duration, read_stdin};
use super::keys::short_id;
use super::output::{self, Fit, Table, clean, or_dash, relative_text};
use super::progress::Progress;
use super::{ClientArgs, Ctx};
mod files;

use crate::api::{
    AllowedEnvBody, DestroyRequest, DestroyResponse, HistoryBody, KeyStatusBody, RollbackRequest,
    SecretBody, SecretList, SecretsVersionBody, SetBody, UnsetBody, WithheldBody,
    WriteSecretsRequest, WriteSecretsResponse,
};

#[derive(Args)]
pub struct SecretsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: SecretsCommand,
}

/// Where the secrets are: `--org` (default: the token's) and `--app` (default: the
/// org's own, which every app sees unless it has its own of the same name).
#[derive(Args, Clone)]
pub struct ScopeArgs {
    /// The org (default: the token's).
    #[arg(long)]
    org: Option<String>,
    /// The app (default: the org's own secrets, shared by its apps).
    #[arg(long)]
    app: Option<String>,
}

#[derive(Subcommand)]
pub enum SecretsCommand {
    /// Set secrets, all in one atomic write: NAME=VALUE, or NAME=- to read the value
    /// from stdin (one trailing newline dropped). Values on the command line land in
    /// shell history: prefer NAME=-.
    Set {
        #[command(flatten)]
        scope: ScopeArgs,
        /// NAME=VALUE or NAME=- (names like environment variables: [A-Za-z_][A-Za-z0-9_]*).
        #[arg(value_name = "NAME=VALUE", required = true)]
        pairs: Vec<String>,
        /// A description, for people (every name set).
        #[arg(long)]
        description: Option<String>,
        /// Stop resolving after this long (`30d`, `12h`): an expired secret is not
        /// revealed and does not fall back to the org's of the same name.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        expires: Option<Duration>,
        /// Check-and-set: refuse unless the secret is at this version now (0: not set).
        /// For one name only.
        #[arg(long, value_name = "N")]
        if_version: Option<u64>,
        /// Create the app first if the org has none of that name (an org token's right).
        #[arg(long)]
        create_app: bool,
    },
    /// Show a secret's metadata (never its value).
    Get {
        #[command(flatten)]
        scope: ScopeArgs,
        /// The secret.
        name: String,
    },
    /// Unset secrets (their history remains; setting one again continues its version
    /// numbers). Unsetting an app's own lets the org's of the same name show through.
    Unset {
        #[command(flatten)]
        scope: ScopeArgs,
        /// The secrets.
        #[arg(required = true)]
        names: Vec<String>,
        /// Check-and-set: refuse unless the secret is at this version now. For one name.
        #[arg(long, value_name = "N")]
        if_version: Option<u64>,
    },
    /// List secrets: name, scope, version, digest, dates, description — never values.
    List {
        #[command(flatten)]
        scope: ScopeArgs,
        /// With --app: what the app sees, its own over the org's (SCOPE says which).
        #[arg(long, requires = "app")]
        resolved: bool,
    },
    /// Show every version kept of a secret: who set it, when, rollbacks, destroyed ones.
    History {
        #[command(flatten)]
        scope: ScopeArgs,
        /// The secret.
        name: String,
    },
    /// Make an earlier version's value current again (written as a new version).
    Rollback {
        #[command(flatten)]
        scope: ScopeArgs,
        /// The secret.
        name: String,
        /// The version whose value comes back.
        #[arg(value_name = "VERSION")]
        to_version: u64,
    },
    /// Purge stored values for good (a value pasted by mistake); audited. Destroying
    /// the current value unsets the secret.
    // `--version N` names the version here, so the program's own --version is off.
    #[command(disable_version_flag = true)]
    Destroy {
        #[command(flatten)]
        scope: ScopeArgs,
        /// The secret.
        name: String,
        /// The version whose value is purged.
        #[arg(
            long = "version",
            value_name = "N",
            conflicts_with = "all",
            required_unless_present = "all"
        )]
        purge_version: Option<u64>,
        /// Purge every version's value.
        #[arg(long)]
        all: bool,
    },
    /// Set every secret of a .env file (python-dotenv's dialect; no ${VAR}
    /// interpolation) in one atomic write; `-` reads stdin.
    Import(files::ImportArgs),
    /// Print the resolved values (needs `reveal`): as a .env file that import (and
    /// python-dotenv) reads back exactly, or JSON.
    Export(files::ExportArgs),
    /// Print one secret's value (needs `reveal`; audited as a reveal of that one name).
    Reveal {
        #[command(flatten)]
        scope: ScopeArgs,
        /// The secret.
        name: String,
    },
    /// Allow deploy tokens to write these names that load code in the scope (and `run`
    /// to inject them without --allow); only an org token as minted may. Without
    /// names, list the allowed ones.
    AllowEnv {
        #[command(flatten)]
        scope: ScopeArgs,
        /// The names (PATH, NODE_OPTIONS, PYTHON*…).
        names: Vec<String>,
        /// Take the names off the list instead.
        #[arg(long)]
        remove: bool,
    },
    /// List, per app, the secrets whose names change how programs load or run code
    /// (PATH, LD_PRELOAD, PYTHON*…): what `run` and `export` withhold unless told
    /// `--allow NAME`.
    Withheld {
        /// The org (default: the token's).
        #[arg(long)]
        org: Option<String>,
    },
    /// Make a new secrets key current for the org; older data keys are re-wrapped in the
    /// background and then the old key is deleted.
    RotateKey {
        /// The org (default: the token's).
        #[arg(long)]
        org: Option<String>,
        /// Wait until every data key is re-wrapped and the old key is gone.
        #[arg(long)]
        wait: bool,
    },
}

/// Largest value read from stdin (the server refuses more than 64 KiB anyway).
const STDIN_CAP: u64 = crate::secrets::limits::MAX_VALUE as u64;

impl ScopeArgs {
    /// The path to the scope's secrets, then `rest`. Without `--app`, a token limited to
    /// one app means that app ([`Ctx::app`]).
    fn path(&self, ctx: &Ctx, rest: &[&str]) -> anyhow::Result<Vec<String>> {
        let org = ctx.org(self.org.clone())?;
        let mut path = vec!["v1".to_owned(), "orgs".to_owned(), org];
        if let Some(app) = ctx.app(self.app.clone())? {
            path.extend(["apps".to_owned(), app]);
        }
        path.push("secrets".to_owned());
        path.extend(rest.iter().map(|s| (*s).to_owned()));
        Ok(path)
    }

    fn shown(&self) -> String {
        match &self.app {
            Some(app) => format!("app {}", clean(app)),
            None => "the org".to_owned(),
        }
    }
}

pub(super) fn segments(path: &[String]) -> Vec<&str> {
    path.iter().map(String::as_str).collect()
}

/// A value over the documented limit: a refusal (exit 5), naming the limit.
fn too_large(name: &str) -> anyhow::Error {
    super::input::TooLarge(format!(
        "the value of {} is over 64 KiB, the most a secret holds",
        clean(name)
    ))
    .into()
}

/// `NAME=VALUE` or `NAME=-` (stdin, once; on a terminal, a prompt without echo).
fn parse_pair(pair: &str) -> anyhow::Result<(String, Zeroizing<String>)> {
    let (name, value) = pair.split_once('=').ok_or_else(|| {
        usage(format!(
            "\"{}\" is not NAME=VALUE (or NAME=- to read the value from stdin)",
            clean(pair.get(..pair.len().min(40)).unwrap_or(""))
        ))
    })?;
    if value != "-" {
        if value.len() as u64 > STDIN_CAP {
            return Err(too_large(name));
        }
        return Ok((name.to_owned(), Zeroizing::new(value.to_owned())));
    }
    if let Some(typed) = super::input::prompt_hidden(&format!("value of {}: ", clean(name)))? {
        if typed.len() as u64 > STDIN_CAP {
            return Err(too_large(name));
        }
        return Ok((name.to_owned(), typed));
    }
    let mut text = match read_stdin("a secret's value", STDIN_CAP + 2) {
        Err(e) if e.is::<super::input::TooLarge>() => return Err(too_large(name)),
        other => other?,
    };
    for end in ["\r\n", "\n"] {
        if text.ends_with(end) {
            let keep = text.len() - end.len();
            text.truncate(keep);
            break;
        }
    }
    Ok((name.to_owned(), text))
}

/// `secrets reveal NAME`: the token is narrowed offline to that one name before it is
/// sent, so the server reveals (and audits) exactly that name and nothing else.
async fn reveal_one(ctx: &Ctx, scope: &ScopeArgs, name: &str) -> anyhow::Result<()> {
    crate::secrets::limits::check_name(name).map_err(|e| usage(e.to_string()))?;
    let path = scope.path(ctx, &["reveal"])?;
    let token = ctx
        .token()?
        .ok_or_else(|| usage("no token given: revealing needs one"))?;
    let narrowed = crate::token::attenuate(
        token.expose(),
        &[crate::caveats::Caveat::secrets([name]).map_err(|e| usage(e.to_string()))?],
    )
    .map_err(|e| anyhow::anyhow!("cannot narrow the token to that secret: {e}"))?;
    let client = ctx.client_with(super::input::SecretToken::new(&narrowed)?)?;
    let revealed: crate::api::RevealResponse = client
        .post_query(&segments(&path), &[], std::time::Duration::from_secs(30))
        .await?;
    if revealed.expired.iter().any(|n| n == name) {
        return Err(anyhow::anyhow!(
            "{} has EXPIRED: it is not revealed",
            clean(name)
        ));
    }
    let Some(value) = revealed.secrets.get(name) else {
        let place = match ctx.app(scope.app.clone())? {
            Some(app) => format!("app {}", clean(&app)),
            None => "the org".to_owned(),
        };
        return Err(anyhow::anyhow!(
            "no secret {} in {place} (or none that the token may reveal)",
            clean(name),
        ));
    };
    if ctx.json() {
        output::values_json(
            &serde_json::json!({ "name": name, "value": value }),
            "the value",
        )?;
    } else {
        output::values(value.as_str(), "the value")?;
    }
    Ok(())
}

/// `--if-version`, given with exactly one name.
fn one_name(names: &[String], if_version: Option<u64>) -> anyhow::Result<Option<u64>> {
    if if_version.is_some() && names.len() != 1 {
        return Err(usage(
            "--if-version is for one name; the API takes a version per name",
        ));
    }
    Ok(if_version)
}

pub async fn run(ctx: &Ctx, cmd: SecretsCommand) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    match cmd {
        SecretsCommand::Set {
            scope,
            pairs,
            description,
            expires,
            if_version,
            create_app,
        } => {
            let if_version = one_name(&pairs, if_version)?;
            let mut req = WriteSecretsRequest {
                create_app,
                ..WriteSecretsRequest::default()
            };
            for pair in &pairs {
                let (name, value) = parse_pair(pair)?;
                req.set.push(SetBody {
                    name,
                    value: value.to_string(),
                    description: description.clone(),
                    expires_secs: expires.map(|d| d.as_secs()),
                    if_version,
                });
            }
            let path = scope.path(ctx, &[])?;
            let done: Result<WriteSecretsResponse, _> = client
                .call(Method::POST, &segments(&path), Some(&req))
                .await;
            for s in &mut req.set {
                zeroize::Zeroize::zeroize(&mut s.value);
            }
            written(ctx, &scope, &done?)?;
        }
        SecretsCommand::Unset {
            scope,
            names,
            if_version,
        } => {
            let if_version = one_name(&names, if_version)?;
            let req = WriteSecretsRequest {
                dry_run: false,
                create_app: false,
                set: Vec::new(),
                unset: names
                    .iter()
                    .map(|name| UnsetBody {
                        name: name.clone(),
                        if_version,
                    })
                    .collect(),
            };
            let path = scope.path(ctx, &[])?;
            let done: WriteSecretsResponse = client
                .call(Method::POST, &segments(&path), Some(&req))
                .await?;
            written(ctx, &scope, &done)?;
        }
        SecretsCommand::Get { scope, name } => {
            let path = scope.path(ctx, &[&name])?;
            let secret: SecretBody = client.get(&segments(&path)).await?;
            if ctx.json() {
                output::json(&secret)?;
            } else {
                secret_fields(&secret)?;
            }
        }
        SecretsCommand::List { scope, resolved } => {
            let path = scope.path(ctx, &[])?;
            let query = [("resolved", resolved.to_string())];
            let list: SecretList = client.get_query(&segments(&path), &query).await?;
            if ctx.json() {
                output::json(&list)?;
            } else if list.secrets.is_empty() {
                output::line(format_args!("no secrets in {}", scope.shown()))?;
            } else {
                secret_table(&list.secrets, crate::authority::system_now()).print()?;
            }
        }
        SecretsCommand::History { scope, name } => {
            let path = scope.path(ctx, &[&name, "history"])?;
            let history: HistoryBody = client.get(&segments(&path)).await?;
            if ctx.json() {
                output::json(&history)?;
            } else {
                history_table(&history, crate::authority::system_now()).print()?;
            }
        }
        SecretsCommand::Rollback {
            scope,
            name,
            to_version,
        } => {
            let path = scope.path(ctx, &[&name, "rollback"])?;
            let body = RollbackRequest {
                version: to_version,
            };
            let done: WriteSecretsResponse = client
                .call(Method::POST, &segments(&path), Some(&body))
                .await?;
            written(ctx, &scope, &done)?;
        }
        SecretsCommand::Destroy {
            scope,
            name,
            purge_version,
            all,
        } => {
            let path = scope.path(ctx, &[&name, "destroy"])?;
            let body = DestroyRequest {
                version: purge_version,
                all,
            };
            let done: DestroyResponse = client
                .call(Method::POST, &segments(&path), Some(&body))
                .await?;
            if ctx.json() {
                output::json(&done)?;
            } else if done.destroyed.is_empty() {
                output::line(format_args!(
                    "nothing to destroy: {} holds no stored value there",
                    clean(&name)
                ))?;
            } else {
                let shown: Vec<String> = done.destroyed.iter().map(|v| format!("v{v}")).collect();
                let unset = if done.unset { "; it is unset now" } else { "" };
                output::line(format_args!(
                    "destroyed the values of {} {}{unset}",
                    clean(&name),
                    shown.join(", ")
                ))?;
            }
        }
        SecretsCommand::Import(args) => files::import(ctx, &client, args).await?,
        SecretsCommand::Export(args) => files::export(ctx, &client, args).await?,
        SecretsCommand::Reveal { scope, name } => reveal_one(ctx, &scope, &name).await?,
        SecretsCommand::AllowEnv {
            scope,
            names,
            remove,
        } => {
            let mut path = scope.path(ctx, &[])?;
            path.pop();
            path.push("allowed-env".to_owned());
            let list: AllowedEnvBody = if names.is_empty() {
                client
                    .call(Method::GET, &segments(&path), None::<&()>)
                    .await?
            } else {
                let method = if remove { Method::DELETE } else { Method::POST };
                let body = AllowedEnvBody { names };
                client.call(method, &segments(&path), Some(&body)).await?
            };
            if ctx.json() {
                output::json(&list)?;
            } else if list.names.is_empty() {
                output::line(format_args!(
                    "{}: no name that loads code is allowed for deploy tokens",
                    scope.shown()
                ))?;
            } else {
                let names: Vec<String> = list.names.iter().map(|n| clean(n).into_owned()).collect();
                output::line(format_args!("{}: {}", scope.shown(), names.join(", ")))?;
            }
        }
        SecretsCommand::Withheld { org } => {
            let org = ctx.org(org)?;
            let path = ["v1", "orgs", &org, "secrets-withheld"];
            let body: WithheldBody = client.call(Method::GET, &path, None::<&()>).await?;
            if ctx.json() {
                output::json(&body)?;
            } else if body.scopes.is_empty() {
                output::line(format_args!(
                    "no secret that you may read has a name that loads code"
                ))?;
            } else {
                for scope in &body.scopes {
                    let names: Vec<String> =
                        scope.names.iter().map(|n| clean(n).into_owned()).collect();
                    let place = scope
                        .app
                        .as_deref()
                        .map_or_else(|| "org".to_owned(), |a| format!("app {}", clean(a)));
                    output::line(format_args!("{place}: {}", names.join(", ")))?;
                }
            }
        }
        SecretsCommand::RotateKey { org, wait } => {
            let org = ctx.org(org)?;
            let path = ["v1", "orgs", &org, "secrets-key", "rotate"];
            let mut status: KeyStatusBody = client.call(Method::POST, &path, None::<&()>).await?;
            if !ctx.json() {
                output::line(format_args!(
                    "secrets key k{} is current; re-wrapping the data keys of the older ones",
                    status.current
                ))?;
            }
            let shown = wait.then(|| Progress::spinner(rewrapping(&status)));
            while wait && status.rotating {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                status = client.get(&["v1", "orgs", &org, "secrets-key"]).await?;
                if let Some(shown) = &shown {
                    shown.say(rewrapping(&status));
                }
            }
            if let Some(shown) = shown {
                shown.clear();
            }
            if ctx.json() {
                output::json(&status)?;
            } else if !status.rotating {
                output::line(format_args!(
                    "every data key is under k{}; the older keys are deleted",
                    status.current
                ))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What a rotation waits for, in words.
fn rewrapping(status: &KeyStatusBody) -> String {
    let old: Vec<String> = status
        .keys
        .iter()
        .filter(|k| **k != status.current)
        .map(|k| format!("k{k}"))
        .collect();
    format!(
        "re-wrapping data keys under k{}: {} still in use",
        status.current,
        old.join(", ")
    )
}

pub(super) fn written(
    ctx: &Ctx,
    scope: &ScopeArgs,
    done: &WriteSecretsResponse,
) -> anyhow::Result<()> {
    if ctx.json() {
        return output::json(done);
    }
    let each: Vec<String> = done
        .secrets
        .iter()
        .map(|s| match (s.unset, s.would.as_deref()) {
            (true, _) => format!("unset {} (v{})", clean(&s.name), s.version),
            (false, Some("unchanged")) => {
                format!("{} unchanged (still v{})", clean(&s.name), s.version)
            }
            (false, _) => format!("set {} (v{})", clean(&s.name), s.version),
        })
        .collect();
    output::line(format_args!(
        "{} in {}; {}",
        each.join(", "),
        scope.shown(),
        versions_line(&done.secrets_version)
    ))?;
    Ok(())
}

/// `secrets version 7 (app web)` / `secrets version 4 for every app (org counter)`.
fn versions_line(v: &SecretsVersionBody) -> String {
    if v.apps.is_empty() {
        return format!("secrets version {} for every app", v.org);
    }
    let apps: Vec<String> = v
        .apps
        .iter()
        .map(|(app, n)| format!("{} {n}", clean(app)))
        .collect();
    format!("secrets versions: {} (others {})", apps.join(", "), v.org)
}

fn scope_cell(s: &SecretBody) -> String {
    match &s.app {
        Some(app) => format!("app {}", clean(app)),
        None => "org".to_owned(),
    }
}

fn expires_cell(s: &SecretBody, now: u64) -> String {
    match (&s.expires, s.expired) {
        (Some(_), true) => "EXPIRED".to_owned(),
        (Some(t), false) => relative_text(t, now),
        (None, _) => "-".to_owned(),
    }
}

/// `secrets list` as a table, times relative to `now`.
fn secret_table(secrets: &[SecretBody], now: u64) -> Table {
    let mut t = Table::new(&[
        ("NAME", Fit::Keep),
        ("SCOPE", Fit::Cut),
        ("VERSION", Fit::Keep),
        ("DIGEST", Fit::Keep),
        ("UPDATED", Fit::Keep),
        ("EXPIRES", Fit::Keep),
        ("DESCRIPTION", Fit::Cut),
    ]);
    for s in secrets {
        t.row([
            clean(&s.name).into_owned(),
            scope_cell(s),
            s.version.to_string(),
            s.digest.as_deref().map_or("-", short_id).to_owned(),
            relative_text(&s.updated, now),
            expires_cell(s, now),
            or_dash(s.description.as_deref()).into_owned(),
        ]);
    }
    t
}

fn secret_fields(s: &SecretBody) -> std::io::Result<()> {
    let now = crate::authority::system_now();
    let state = if s.unset {
        "unset (its history remains)"
    } else if s.expired {
        "EXPIRED: not revealed"
    } else {
        "set"
    };
    output::fields(&[
        ("name", clean(&s.name)),
        ("scope", scope_cell(s).into()),
        ("state", state.into()),
        ("version", s.version.to_string().into()),
        (
            "digest",
            match (&s.digest, s.unset) {
                (Some(d), _) => d.as_str(),
                (None, true) => "- (unset: no current value)",
                (None, false) => "- (shown only to tokens that may reveal the value)",
            }
            .into(),
        ),
        (
            "updated",
            format!("{} ({})", s.updated, relative_text(&s.updated, now)).into(),
        ),
        ("expires", expires_cell(s, now).into()),
        ("description", or_dash(s.description.as_deref())),
    ])
}

/// `secrets history` as a table, times relative to `now`.
fn history_table(h: &HistoryBody, now: u64) -> Table {
    let mut t = Table::new(&[
        ("VERSION", Fit::Keep),
        ("WHEN", Fit::Keep),
        ("BY", Fit::Cut),
        ("DIGEST", Fit::Keep),
        ("NOTE", Fit::Cut),
    ]);
    for v in &h.versions {
        let by = match (&v.created_by_name, &v.created_by) {
            (Some(name), Some(id)) => format!("{} ({})", clean(name), short_id(id)),
            (None, Some(id)) => short_id(id).to_owned(),
            _ => "-".to_owned(),
        };
        let mut notes = Vec::new();
        if v.current {
            notes.push("current".to_owned());
        }
        if let Some(of) = v.rollback_of {
            notes.push(format!("rollback to v{of}"));
        }
        if v.destroyed {
            notes.push("destroyed".to_owned());
        }
        t.row([
            v.version.to_string(),
            relative_text(&v.created, now),
            by,
            v.digest.as_deref().map_or("-", short_id).to_owned(),
            notes.join(", "),
        ]);
    }
    if h.secret.unset {
        t.row([
            "-".to_owned(),
            relative_text(&h.secret.updated, now),
            "-".to_owned(),
            "-".to_owned(),
            "unset: no version is current".to_owned(),
        ]);
    }
    t
}

#[cfg(test)]
mod tests;
