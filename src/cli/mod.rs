//! The `macvault` command line: the server, a client of its HTTP API, and offline token
//! tools (attenuate, inspect).

mod admin;
mod client;
mod input;
mod output;
mod serve;
mod tokens;

use std::io;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use reqwest::Url;

pub use client::ApiError;
pub use input::SecretToken;

use client::Client;

/// macvault: a token authority built on macaroons.
#[derive(Parser)]
#[command(name = "macvault", version, about, propagate_version = true)]
pub struct Cli {
    /// The server's base URL.
    #[arg(
        long,
        global = true,
        env = "MACVAULT_URL",
        help_heading = "Global options",
        default_value = "http://127.0.0.1:7070"
    )]
    url: Url,
    /// The token to present (or, for offline commands, to work on).
    #[arg(
        long,
        global = true,
        env = "MACVAULT_TOKEN",
        hide_env_values = true,
        help_heading = "Global options"
    )]
    token: Option<SecretToken>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(serve::ServeArgs),
    /// Initialise an empty store (a PostgreSQL database) without serving.
    Init(serve::InitArgs),
    /// Replace a lost or leaked operator token, offline with the master key: revokes
    /// every earlier one (the org tokens it issued live on). Stop an embedded server first.
    OperatorToken(serve::OperatorTokenArgs),
    /// Offline tools on a store: copy (migrate, back up, restore).
    #[command(subcommand)]
    Store(serve::StoreCommand),
    /// Create and configure orgs.
    #[command(subcommand)]
    Orgs(admin::OrgsCommand),
    /// List, rotate and retire an org's root keys.
    #[command(subcommand)]
    Keys(admin::KeysCommand),
    /// Mint, attenuate, inspect, list, revoke and verify tokens.
    #[command(subcommand)]
    Tokens(tokens::TokensCommand),
    /// Show an org's audit log.
    Audit(admin::AuditArgs),
}

/// Parses the command line, runs the command, and reports errors as `error: …`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let Cli {
        url,
        token,
        command,
    } = cli;
    match command {
        Command::Serve(args) => serve::serve(args),
        Command::Init(args) => serve::init(args),
        Command::OperatorToken(args) => serve::operator_token(args),
        Command::Store(cmd) => serve::store(cmd),
        Command::Tokens(cmd) => tokens::run(cmd, url, token),
        Command::Orgs(cmd) => block_on(admin::orgs(&Client::new(url, token)?, cmd)),
        Command::Keys(cmd) => block_on(admin::keys(&Client::new(url, token)?, cmd)),
        Command::Audit(args) => block_on(admin::audit(&Client::new(url, token)?, args)),
    }
}

/// Runs one client command to completion on a current-thread runtime.
fn block_on<T>(command: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(command)
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    /// Every subcommand path, e.g. `["keys", "retire"]`.
    fn paths(cmd: &clap::Command, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
        for sub in cmd.get_subcommands() {
            let mut path = prefix.clone();
            path.push(sub.get_name().to_owned());
            paths(sub, path.clone(), out);
            out.push(path);
        }
    }

    #[test]
    fn command_line_definition_is_consistent() {
        let cmd = Cli::command();
        cmd.clone().debug_assert();
        // Subcommands are only fully built (and checked) when used: ask each for help.
        let mut all = Vec::new();
        paths(&cmd, Vec::new(), &mut all);
        assert!(all.len() > 15);
        for path in all {
            let args = ["macvault"]
                .into_iter()
                .chain(path.iter().map(String::as_str))
                .chain(["--help"]);
            let err = Cli::try_parse_from(args).err().unwrap();
            assert_eq!(err.kind(), clap::error::ErrorKind::DisplayHelp, "{path:?}");
        }
    }
}
