//! The `macvault` command line: the server, a client of its HTTP API, and offline token
//! tools (attenuate, inspect).
//!
//! Conventions every command follows: the token comes from `--token` (`-` for stdin),
//! `--token-file`, `MACVAULT_TOKEN` or `MACVAULT_TOKEN_FILE`; `--org` defaults to the
//! org the token names; `--json` prints JSON (and errors as JSON on stderr); tables fit
//! the terminal (`COLUMNS` overrides it; 100 columns off a terminal); long operations
//! show progress on a terminal's stderr only ([`progress`]); the exit code says what
//! kind of failure it was ([`exit`]).

mod apps;
pub(crate) mod audit;
pub(crate) mod client;
mod discharge;
mod dotenv;
mod exit;
pub(crate) mod input;
mod keys;
mod oauth_clients;
mod oauth_grants;
pub(crate) mod offline;
mod orgs;
mod output;
mod progress;
mod run;
mod secrets;
mod serve;
mod third_parties;
mod tokens;

use std::cell::RefCell;
use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, CommandFactory as _, Parser, Subcommand};

pub use client::ApiError;
pub use exit::Exit;
pub use input::SecretToken;

use client::{Client, parse_url};
use exit::usage;
use output::span2;

/// macvault: a token authority built on macaroons.
#[derive(Parser)]
#[command(name = "macvault", version, about, propagate_version = true, after_help = exit::HELP)]
pub struct Cli {
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
    /// Create, list and configure orgs; issue org tokens (the operator).
    Orgs(orgs::OrgsArgs),
    /// List, rotate and retire an org's root keys.
    Keys(keys::KeysArgs),
    /// Mint, list, show, revoke, rotate and verify tokens; attenuate and inspect offline.
    Tokens(tokens::TokensArgs),
    /// Set, list, roll back and destroy an org's and its apps' secrets (never printing a value).
    Secrets(secrets::SecretsArgs),
    /// Show an org's audit log.
    Audit(audit::AuditArgs),
    /// Register, list, show, remove the org's third parties (dischargers such as a CI
    /// job's OIDC identity) and rotate their keys.
    ThirdParties(third_parties::ThirdPartiesArgs),
    /// Create, list, show and delete the org's apps (app-scoped tokens and secrets name
    /// only apps the org has).
    Apps(apps::AppsArgs),
    /// Register, list, show and remove the org's OAuth clients (integrations that people
    /// grant narrowed tokens by consent); an org token's business.
    OauthClients(oauth_clients::OAuthClientsArgs),
    /// List and revoke what people granted OAuth clients (the grants this token may
    /// revoke).
    OauthGrants(oauth_grants::OAuthGrantsArgs),
    /// Run a command with an app's secrets in its environment: `macvault run --app web -- ./server`.
    /// Exits with the command's status; 125 when macvault fails first, 126 when the
    /// command cannot be executed, 127 when it is not found.
    Run(Box<run::RunArgs>),
    /// Print a shell completion script: `macvault completions bash > /etc/bash_completion.d/macvault`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

/// The options of every command that talks to a server or works on a token.
#[derive(Args, Clone, Debug)]
pub struct ClientArgs {
    /// The server's base URL.
    #[arg(
        long,
        global = true,
        env = "MACVAULT_URL",
        default_value = "http://127.0.0.1:7070",
        help_heading = "Client options"
    )]
    url: String,
    /// The token to present, or `-` to read it from stdin. Otherwise --token-file,
    /// then MACVAULT_TOKEN, then MACVAULT_TOKEN_FILE.
    #[arg(
        long,
        global = true,
        value_name = "TOKEN|-",
        conflicts_with = "token_file",
        help_heading = "Client options"
    )]
    token: Option<String>,
    /// A file holding the token, readable by its owner only (like an ssh key).
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        help_heading = "Client options"
    )]
    token_file: Option<PathBuf>,
    /// Print JSON (and errors as JSON on stderr).
    #[arg(long, global = true, help_heading = "Client options")]
    json: bool,
}

/// A client command's context: its options and, once read, its token.
pub struct Ctx {
    args: ClientArgs,
    token: RefCell<Option<Option<SecretToken>>>,
}

impl Ctx {
    fn new(args: ClientArgs) -> Self {
        Ctx {
            args,
            token: RefCell::new(None),
        }
    }

    /// Whether to print JSON.
    pub fn json(&self) -> bool {
        self.args.json
    }

    /// The presented token, read once (a warning on stderr if it expires soon).
    pub fn token(&self) -> anyhow::Result<Option<SecretToken>> {
        if let Some(t) = self.token.borrow().as_ref() {
            return Ok(t.clone());
        }
        let t = input::presented(self.args.token.as_deref(), self.args.token_file.as_deref())?;
        if let Some(t) = &t {
            warn_expiry(t);
        }
        *self.token.borrow_mut() = Some(t.clone());
        Ok(t)
    }

    /// The token a command works on: `given` (its positional argument; `-` reads
    /// stdin), else the presented one, else stdin when it is not a terminal.
    pub fn subject(&self, given: Option<&str>) -> anyhow::Result<SecretToken> {
        if let Some(value) = given {
            return input::token_arg(value);
        }
        if let Some(t) = self.token()? {
            return Ok(t);
        }
        use std::io::IsTerminal as _;
        const NONE: &str = "no token given: as an argument, --token-file FILE, --token (- for \
                            stdin), MACVAULT_TOKEN, or piped on stdin";
        if io::stdin().is_terminal() {
            return Err(usage(NONE));
        }
        let text = input::read_stdin("the token", crate::token::LIMITS.max_text as u64 + 1024)?;
        if text.trim().is_empty() {
            return Err(usage(format!("{NONE} (stdin was empty)")));
        }
        input::token_arg(&text)
    }

    /// Reads the token again from the file it came from (a rotated token may be there
    /// now); `None` when it did not come from a file.
    pub fn reread_token(&self) -> anyhow::Result<Option<SecretToken>> {
        let Some(path) =
            input::presented_file(self.args.token.as_deref(), self.args.token_file.as_deref())
        else {
            return Ok(None);
        };
        let token = input::token_file(&path)?;
        *self.token.borrow_mut() = Some(Some(token.clone()));
        Ok(Some(token))
    }

    /// A client of the server presenting the token.
    pub fn client(&self) -> anyhow::Result<Client> {
        Client::new(parse_url(&self.args.url)?, self.token()?)
    }

    /// A client of the server presenting `token` (a narrowed copy of the given one).
    pub fn client_with(&self, token: SecretToken) -> anyhow::Result<Client> {
        Client::new(parse_url(&self.args.url)?, Some(token))
    }

    /// A client of the server presenting no token (`/v1/verify`).
    pub fn anonymous(&self) -> anyhow::Result<Client> {
        Client::new(parse_url(&self.args.url)?, None)
    }

    /// `explicit`, else the org the presented token names.
    pub fn org(&self, explicit: Option<String>) -> anyhow::Result<String> {
        if let Some(org) = explicit {
            return Ok(org);
        }
        let token = self
            .token()?
            .ok_or_else(|| usage("give --org, or a token (whose org is the default)"))?;
        let inspection = crate::token::inspect(token.expose()).map_err(|e| {
            usage(format!(
                "the token given does not decode ({e}): truncated, or not a token?"
            ))
        })?;
        inspection
            .org
            .ok_or_else(|| usage("give --org: the token does not name an org"))
    }
}

impl Ctx {
    /// `--app`, or the one app the token is limited to: when its first `app =` caveat
    /// names exactly one app, every org-level request is denied to it anyway, so that
    /// app is the only scope it can mean. `None` otherwise (the org's own scope).
    pub fn app(&self, explicit: Option<String>) -> anyhow::Result<Option<String>> {
        if explicit.is_some() {
            return Ok(explicit);
        }
        let Some(token) = self.token()? else {
            return Ok(None);
        };
        let Ok(inspection) = crate::token::inspect(token.expose()) else {
            return Ok(None);
        };
        let only =
            inspection
                .caveats
                .iter()
                .find_map(|c| match crate::caveats::Caveat::parse(&c.text) {
                    Ok(crate::caveats::Caveat::Apps(apps)) => {
                        let mut names = apps.iter().map(|(name, _)| name.to_owned());
                        match (names.next(), names.next()) {
                            (Some(one), None) => Some(Some(one)),
                            _ => Some(None),
                        }
                    }
                    _ => None,
                });
        Ok(only.flatten())
    }
}

/// Warns on stderr when a token has expired or expires within 7 days.
fn warn_expiry(token: &SecretToken) {
    let Some(expires) = crate::token::inspect(token.expose())
        .ok()
        .and_then(|i| i.expires)
        .and_then(|t| crate::caveats::parse_time(&t).ok())
    else {
        return;
    };
    let now = crate::authority::system_now();
    if expires <= now {
        eprintln!("warning: the token EXPIRED {} ago", span2(now - expires));
    } else if expires - now < 7 * 86_400 {
        eprintln!("warning: the token expires in {}", span2(expires - now));
    }
}

/// Parses the command line, runs the command, and reports errors by class.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // A command line clap refuses: with --json, the refusal is JSON too.
        Err(e) if e.use_stderr() && std::env::args().any(|a| a == "--json") => {
            let message = e.kind().to_string();
            let detail = e.render().to_string();
            let detail = detail
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ");
            return exit::report(
                &exit::usage(if detail.is_empty() {
                    message
                } else {
                    detail.to_owned()
                }),
                true,
            );
        }
        Err(e) => e.exit(),
    };
    let json = match &cli.command {
        Command::Orgs(a) => a.client.json,
        Command::Keys(a) => a.client.json,
        Command::Tokens(a) => a.client.json,
        Command::Audit(a) => a.client.json,
        Command::Secrets(a) => a.client.json,
        Command::ThirdParties(a) => a.client.json,
        Command::Apps(a) => a.client.json,
        Command::OauthClients(a) => a.client.json,
        _ => false,
    };
    match run(cli) {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => exit::report(&err, json),
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve::serve(args),
        Command::Init(args) => serve::init(args),
        Command::OperatorToken(args) => serve::operator_token(args),
        Command::Store(cmd) => serve::store(cmd),
        Command::Orgs(a) => block_on(orgs::run(&Ctx::new(a.client), a.command)),
        Command::Keys(a) => block_on(keys::run(&Ctx::new(a.client), a.command)),
        Command::Tokens(a) => tokens::run(&Ctx::new(a.client), a.command),
        Command::Audit(a) => block_on(audit::run(&Ctx::new(a.client.clone()), a)),
        Command::Secrets(a) => block_on(secrets::run(&Ctx::new(a.client), a.command)),
        Command::ThirdParties(a) => block_on(third_parties::run(&Ctx::new(a.client), a.command)),
        Command::Apps(a) => block_on(apps::run(&Ctx::new(a.client), a.command)),
        Command::OauthClients(a) => block_on(oauth_clients::run(&Ctx::new(a.client), a.command)),
        Command::OauthGrants(a) => block_on(oauth_grants::run(&Ctx::new(a.client), a.command)),
        Command::Run(args) if args.client.json => Err(exit::usage(
            "--json means nothing for run: its output is the command's own",
        )),
        Command::Run(args) => Ok(run::run(*args)),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "macvault", &mut script);
            // Through our writer: a closed stdout (`| head`) ends it quietly.
            io::Write::write_all(&mut io::stdout().lock(), &script)?;
            Ok(ExitCode::SUCCESS)
        }
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
        assert!(all.len() > 20);
        for path in all {
            let args = ["macvault"]
                .into_iter()
                .chain(path.iter().map(String::as_str))
                .chain(["--help"]);
            let err = Cli::try_parse_from(args).err().unwrap();
            assert_eq!(err.kind(), clap::error::ErrorKind::DisplayHelp, "{path:?}");
        }
    }

    /// Every command's `--help`, as a snapshot: a change to what a command says about
    /// itself shows in review.
    #[test]
    fn every_help_is_as_reviewed() {
        let mut all = Vec::new();
        paths(&Cli::command(), Vec::new(), &mut all);
        all.push(Vec::new());
        all.sort();
        let mut text = String::new();
        for path in all {
            let mut cmd = Cli::command().term_width(100);
            let mut at = &mut cmd;
            for name in &path {
                at = at.find_subcommand_mut(name).unwrap();
            }
            text.push_str(&format!("===== macvault {} --help\n", path.join(" ")));
            text.push_str(&at.render_long_help().to_string());
            text.push('\n');
        }
        insta::assert_snapshot!(text);
    }

    #[test]
    fn serve_help_has_no_client_options() {
        let mut cmd = Cli::command();
        let serve = cmd.find_subcommand_mut("serve").unwrap();
        let help = serve.render_long_help().to_string();
        for client_only in ["--token", "--url", "--json"] {
            assert!(
                !help.contains(client_only),
                "{client_only} in serve --help:\n{help}"
            );
        }
        let mut cmd = Cli::command();
        let list = cmd
            .find_subcommand_mut("tokens")
            .unwrap()
            .find_subcommand_mut("list")
            .unwrap();
        let usage = list.render_usage().to_string();
        assert!(
            usage.contains("[OPTIONS]") && !usage.contains("--org <"),
            "{usage}"
        );
    }
}
