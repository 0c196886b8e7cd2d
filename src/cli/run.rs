//! `macvault run --app A -- CMD ARGS…`: reveals the app's secrets with the token it is
//! given and runs CMD with them in its environment. Without `--watch` it becomes CMD
//! (`exec`: CMD's signals and exit status are its own); with `--watch` it supervises
//! CMD, forwarding signals and restarting it when the environment it would give CMD
//! changes (the resolved names and values, not versions: a new description or an org
//! value the app overrides restarts nothing) — and after every blind write (by a token
//! that could not reveal what it wrote), changed or not, so that a writer who may not
//! read learns nothing from whether the app restarted.
//!
//! Exit codes of `run` itself, as `env` and `docker run` use them: 125 when macvault
//! fails before CMD starts, 126 when CMD cannot be executed, 127 when it is not found;
//! otherwise CMD's own status (128 + N for a death by signal N, under `--watch`).
//!
//! Under `--watch`, a token the server stops accepting (401: revoked, expired, its key
//! retired) is first read again from its file, where a rotation may have put a new one;
//! an unreachable or stale server is retried. Anything else ends the watching with one
//! error, and `--on-revoke` says what becomes of CMD: `keep` (the default: a rotation's
//! overlap ending must not take an app down) lets it run on, and `run` exits with its
//! status; `stop` stops it, and `run` exits with the CLI's code for the failure (3 for
//! 401, see `exit`).
//!
//! The child gets the token `run` authenticated with, as `MACVAULT_TOKEN`, only with
//! `--pass-token`, and no other token variable ever. Once it has its token, `run` makes
//! itself non-dumpable, so a child of the same user cannot read the token from
//! `/proc/<run>/environ` or its memory under `--watch`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io;
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use rustix::process::{Pid, Signal, kill_process};
use tokio::signal::unix::{SignalKind, signal};

use super::client::{ApiError, TransportError};
use super::exit::usage;
use super::input::parse_duration;
use super::output::{clean, span2};
use super::{ClientArgs, Ctx};
use crate::api::RevealResponse;

/// macvault failed before CMD started.
const FAILED: u8 = 125;
/// CMD exists but cannot be executed.
const CANNOT_EXECUTE: u8 = 126;
/// CMD was not found.
const NOT_FOUND: u8 = 127;

/// The variables through which `run` may have got its own token: never passed on as
/// they are (`--pass-token` sets the first to the token `run` used).
const TOKEN_VARS: [&str; 2] = ["MACVAULT_TOKEN", "MACVAULT_TOKEN_FILE"];

/// `macvault run`.
#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The org (default: the token's).
    #[arg(long)]
    org: Option<String>,
    /// The app whose secrets (its own over the org's) CMD gets (default: the one app
    /// the token is limited to, if it is).
    #[arg(long)]
    app: Option<String>,
    /// Put this before every name (`APP_` makes DB_URL into APP_DB_URL).
    #[arg(long, value_name = "PREFIX")]
    prefix: Option<String>,
    /// Keep variables CMD would inherit rather than replacing them with secrets of the
    /// same name.
    #[arg(long)]
    preserve_env: bool,
    /// Supervise CMD: forward signals, and restart it when what it gets changes (or a
    /// token that may not read the secrets wrote one).
    #[arg(long)]
    watch: bool,
    /// Under --watch, how long CMD has to stop after SIGTERM before SIGKILL.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    grace: Duration,
    /// How long to keep trying an unreachable server before giving up (CMD never starts
    /// without its secrets).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    timeout: Duration,
    /// Inject this secret although its name changes how programs load or run code
    /// (PATH, LD_PRELOAD, NODE_OPTIONS, PYTHON*… see the README); repeatable.
    #[arg(long, value_name = "NAME")]
    allow: Vec<String>,
    /// Give CMD the token run authenticated with, as MACVAULT_TOKEN (without it, no
    /// token variable reaches CMD).
    #[arg(long)]
    pass_token: bool,
    /// Under --watch, what becomes of CMD when the token stops working (revoked,
    /// expired) or the secrets can no longer be watched: keep it running, or stop it.
    #[arg(long, value_enum, default_value_t = OnRevoke::Keep)]
    on_revoke: OnRevoke,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<OsString>,
}

/// What `--watch` does with CMD once it can no longer watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnRevoke {
    /// CMD runs on with the secrets it has; `run` exits with its status.
    Keep,
    /// CMD is stopped (SIGTERM, then SIGKILL after --grace); `run` exits with the
    /// failure's code.
    Stop,
}

/// Runs `macvault run`; its own failures are 125.
pub fn run(args: RunArgs) -> ExitCode {
    let ctx = Ctx::new(args.client.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let outcome = match runtime {
        Ok(rt) => rt.block_on(run_in(&ctx, args)),
        Err(e) => Err(anyhow::Error::from(e).context("cannot start the async runtime")),
    };
    match outcome {
        Ok(code) => code,
        Err(err) => {
            eprintln!("macvault run: {}", super::exit::describe(&err));
            ExitCode::from(FAILED)
        }
    }
}

impl RunArgs {
    /// The app (resolved by `run_in` before anything uses it).
    fn app(&self) -> &str {
        self.app.as_deref().unwrap_or_default()
    }
}

async fn run_in(ctx: &Ctx, mut args: RunArgs) -> anyhow::Result<ExitCode> {
    // About to hold a token (and MACVAULT_TOKEN may be in our environment already): no
    // same-user process may read it from /proc or memory.
    if let Err(e) =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
    {
        eprintln!("warning: cannot keep other processes from reading the token: {e}");
    }
    let app = ctx.app(args.app.take())?.ok_or_else(|| {
        usage("give --app: the token is not limited to one app, so it cannot say which")
    })?;
    args.app = Some(app);
    if args.client.token.as_deref().is_some_and(|t| t != "-") {
        eprintln!(
            "warning: --token puts the token in the process list, where any local user can \
             read it: use --token-file or MACVAULT_TOKEN_FILE"
        );
    }
    let org = ctx.org(args.org.clone())?;
    let client = ctx.client()?;
    let revealed = reveal(&client, &org, args.app(), None, args.timeout).await?;
    let env = environment(&args, &revealed, ctx.token()?.as_ref())?;
    if !args.watch {
        return Ok(exec(&args.command, &env));
    }
    let seen = Seen {
        version: revealed.secrets_version,
        blind_writes: revealed.blind_writes,
    };
    supervise(ctx, client, &org, &args, seen, env).await
}

/// Where the watch is: the secrets version CMD's environment is of, and the blind writes
/// counted up to it.
#[derive(Debug, Clone, Copy)]
struct Seen {
    version: u64,
    blind_writes: u64,
}

/// Reveals, retrying an unreachable or unavailable server with backoff for `patience`.
async fn reveal(
    client: &super::client::Client,
    org: &str,
    app: &str,
    min_version: Option<u64>,
    patience: Duration,
) -> anyhow::Result<RevealResponse> {
    let path = ["v1", "orgs", org, "apps", app, "secrets", "reveal"];
    let query: Vec<(&str, String)> = min_version
        .map(|v| ("min_version", v.to_string()))
        .into_iter()
        .collect();
    // A long poll waits up to 30 s on the server.
    let wait = Duration::from_secs(if min_version.is_some() { 45 } else { 15 });
    let deadline = tokio::time::Instant::now() + patience;
    let mut pause = Duration::from_millis(200);
    loop {
        match client.post_query(&path, &query, wait).await {
            Ok(r) => return Ok(r),
            Err(e) if retryable(&e) && tokio::time::Instant::now() + pause < deadline => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            Err(e) if retryable(&e) => {
                return Err(e.context(format!(
                    "gave up after {} (--timeout)",
                    span2(patience.as_secs().max(1))
                )));
            }
            Err(e) => return Err(e),
        }
    }
}

/// The server could not be reached or could not answer now.
pub(super) fn retryable(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.is::<TransportError>()
            || c.downcast_ref::<ApiError>()
                .is_some_and(|a| a.status.as_u16() == 408 || a.status.is_server_error())
    })
}

/// The HTTP status of a failed request, if the server answered.
fn status(e: &anyhow::Error) -> Option<u16> {
    e.chain()
        .find_map(|c| c.downcast_ref::<ApiError>())
        .map(|a| a.status.as_u16())
}

/// CMD's environment: ours without any token variable, with the secrets, prefixed,
/// over it (or under it with --preserve-env), code-loading names left out; with
/// --pass-token, `token` (the one `run` used) as MACVAULT_TOKEN. Warns of expired and
/// soon-expiring secrets and of every name left out.
fn environment(
    args: &RunArgs,
    revealed: &RevealResponse,
    token: Option<&super::input::SecretToken>,
) -> anyhow::Result<BTreeMap<OsString, OsString>> {
    let prefix = args.prefix.as_deref().unwrap_or("");
    if !prefix
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(usage("--prefix takes letters, digits and _"));
    }
    let mut env: BTreeMap<OsString, OsString> = std::env::vars_os()
        .filter(|(k, _)| !TOKEN_VARS.iter().any(|t| k == t))
        .collect();
    if let (true, Some(token)) = (args.pass_token, token) {
        env.insert(TOKEN_VARS[0].into(), token.expose().into());
    }
    for name in &revealed.expired {
        eprintln!("warning: {} has EXPIRED: not injected", clean(name));
    }
    let now = crate::authority::system_now();
    for e in &revealed.expiring {
        let left = crate::caveats::parse_time(&e.expires).map_or(0, |t| t.saturating_sub(now));
        eprintln!(
            "warning: {} expires in {} ({})",
            clean(&e.name),
            span2(left),
            clean(&e.expires)
        );
    }
    let allowed: Vec<String> = args
        .allow
        .iter()
        .cloned()
        .chain(revealed.allowed_env.iter().map(|n| format!("{prefix}{n}")))
        .collect();
    let (kept, withheld) = withhold(
        revealed
            .secrets
            .iter()
            .map(|(name, value)| (format!("{prefix}{name}"), value.as_str())),
        &allowed,
    );
    warn_withheld(&withheld, "injected");
    for (full, value) in kept {
        let key = OsString::from(&full);
        if args.preserve_env && env.contains_key(&key) {
            continue;
        }
        env.insert(key, OsString::from(value));
    }
    Ok(env)
}

/// Splits `(name, value)` pairs into those passed on and the names withheld: names that
/// change how programs load code (`crate::secrets::loads_code`), unless in `allow` (the
/// command line's `--allow` and what an org token allowed for the app).
pub fn withhold<'v>(
    pairs: impl IntoIterator<Item = (String, &'v str)>,
    allow: &[String],
) -> (Vec<(String, &'v str)>, Vec<String>) {
    let (mut kept, mut withheld) = (Vec::new(), Vec::new());
    for (name, value) in pairs {
        if crate::secrets::loads_code(&name) && !allow.contains(&name) {
            withheld.push(name);
        } else {
            kept.push((name, value));
        }
    }
    (kept, withheld)
}

/// One warning naming every name withheld (`what`: "injected", "exported").
pub fn warn_withheld(withheld: &[String], what: &str) {
    if withheld.is_empty() {
        return;
    }
    let names: Vec<String> = withheld.iter().map(|n| clean(n).into_owned()).collect();
    eprintln!(
        "warning: not {what}, as these names change how programs load or run code: {} \
         (--allow NAME passes one on)",
        names.join(", ")
    );
}

fn command(cmd: &[OsString], env: &BTreeMap<OsString, OsString>) -> std::process::Command {
    let mut c = std::process::Command::new(&cmd[0]);
    c.args(&cmd[1..]).env_clear().envs(env);
    c
}

/// 126 or 127 for a CMD that did not start, with the reason.
fn not_started(cmd: &OsString, e: &io::Error) -> ExitCode {
    let shown = clean(&cmd.to_string_lossy()).into_owned();
    if e.kind() == io::ErrorKind::NotFound {
        eprintln!("macvault run: {shown}: command not found");
        ExitCode::from(NOT_FOUND)
    } else {
        eprintln!("macvault run: {shown}: cannot execute: {e}");
        ExitCode::from(CANNOT_EXECUTE)
    }
}

/// Becomes CMD; returns only if that failed.
fn exec(cmd: &[OsString], env: &BTreeMap<OsString, OsString>) -> ExitCode {
    let e = command(cmd, env).exec();
    not_started(&cmd[0], &e)
}

/// CMD's status as ours: its code, or 128 + the signal that ended it.
fn status_code(status: std::process::ExitStatus) -> ExitCode {
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        (None, Some(sig)) => ExitCode::from(u8::try_from(128 + sig).unwrap_or(255)),
        _ => ExitCode::from(1),
    }
}

/// The signals forwarded to CMD under --watch.
const FORWARDED: [(fn() -> SignalKind, Signal); 6] = [
    (SignalKind::terminate, Signal::TERM),
    (SignalKind::interrupt, Signal::INT),
    (SignalKind::hangup, Signal::HUP),
    (SignalKind::quit, Signal::QUIT),
    (SignalKind::user_defined1, Signal::USR1),
    (SignalKind::user_defined2, Signal::USR2),
];

fn send(child: &tokio::process::Child, sig: Signal) {
    if let Some(pid) = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(Pid::from_raw)
    {
        // It may have just exited: nothing to do then.
        let _ = kill_process(pid, sig);
    }
}

/// The next of the forwarded signals to arrive.
async fn any_signal(signals: &mut [(tokio::signal::unix::Signal, Signal)]) -> Signal {
    let next = signals.iter_mut().map(|(s, sig)| {
        let sig = *sig;
        Box::pin(async move {
            s.recv().await;
            sig
        })
    });
    futures_util::future::select_all(next).await.0
}

/// Asks CMD to stop (SIGTERM), then makes it (SIGKILL after `grace`).
async fn stop(child: &mut tokio::process::Child, grace: Duration) -> io::Result<()> {
    send(child, Signal::TERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        send(child, Signal::KILL);
        child.wait().await?;
    }
    Ok(())
}

/// What the watch does after a failed long poll.
enum Watch {
    /// Try again (after a pause).
    Retry,
    /// Go on with a new client (the token file held a new token).
    Renewed(super::client::Client),
    /// Stop watching, for this reason.
    Over(anyhow::Error),
}

/// A 401 re-reads the token file; an unreachable, timed-out or unavailable (503
/// `stale`) server is retried; anything else ends the watch.
fn after_failure(ctx: &Ctx, used: Option<&str>, e: anyhow::Error) -> Watch {
    if retryable(&e) {
        eprintln!(
            "warning: cannot watch the secrets: {}",
            super::exit::describe(&e)
        );
        return Watch::Retry;
    }
    if status(&e) == Some(401) {
        match ctx.reread_token() {
            Ok(Some(fresh)) if Some(fresh.expose()) != used => {
                eprintln!(
                    "macvault run: the token was not accepted; using the new one in its file"
                );
                return match ctx.client() {
                    Ok(client) => Watch::Renewed(client),
                    Err(e) => Watch::Over(e),
                };
            }
            Ok(_) => {}
            Err(read) => return Watch::Over(e.context(format!("{read:#}"))),
        }
    }
    Watch::Over(e)
}

async fn supervise(
    ctx: &Ctx,
    mut client: super::client::Client,
    org: &str,
    args: &RunArgs,
    mut seen: Seen,
    mut env: BTreeMap<OsString, OsString>,
) -> anyhow::Result<ExitCode> {
    let mut signals = Vec::new();
    for (kind, sig) in FORWARDED {
        signals.push((signal(kind()).context("cannot listen for signals")?, sig));
    }
    loop {
        let mut child = match tokio::process::Command::from(command(&args.command, &env)).spawn() {
            Ok(c) => c,
            Err(e) => return Ok(not_started(&args.command[0], &e)),
        };
        // Runs until CMD exits (its status is ours) or what it gets changes (restart).
        let (next, fresh) = loop {
            let change = reveal(
                &client,
                org,
                args.app(),
                Some(seen.version + 1),
                Duration::from_secs(3600),
            );
            tokio::select! {
                status = child.wait() => {
                    return Ok(status_code(status.context("cannot wait for the command")?));
                }
                sig = any_signal(&mut signals) => send(&child, sig),
                changed = change => match changed {
                    Ok(r) if r.secrets_version > seen.version => {
                        // A restart only for a different environment — or for a blind
                        // write, so that a writer who may not read learns nothing from
                        // whether CMD restarted.
                        let fresh = environment(args, &r, ctx.token()?.as_ref())?;
                        if fresh != env || r.blind_writes != seen.blind_writes {
                            break (r, fresh);
                        }
                        eprintln!(
                            "macvault run: the secrets of app {} changed (version {} -> {}), \
                             not what the command gets: not restarting",
                            clean(args.app()),
                            seen.version,
                            r.secrets_version
                        );
                        seen.version = r.secrets_version;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let used = ctx.token()?;
                        match after_failure(ctx, used.as_ref().map(|t| t.expose()), e) {
                            Watch::Retry => tokio::time::sleep(Duration::from_secs(1)).await,
                            Watch::Renewed(fresh) => client = fresh,
                            Watch::Over(e) => return watch_over(&mut child, &mut signals, args, &e).await,
                        }
                    }
                },
            }
        };
        eprintln!(
            "macvault run: the secrets of app {} changed (version {} -> {}): restarting",
            clean(args.app()),
            seen.version,
            next.secrets_version
        );
        stop(&mut child, args.grace).await?;
        seen = Seen {
            version: next.secrets_version,
            blind_writes: next.blind_writes,
        };
        env = fresh;
    }
}

/// The watch is over (`e` says why): CMD runs on or is stopped, as `--on-revoke` says.
async fn watch_over(
    child: &mut tokio::process::Child,
    signals: &mut [(tokio::signal::unix::Signal, Signal)],
    args: &RunArgs,
    e: &anyhow::Error,
) -> anyhow::Result<ExitCode> {
    let app = clean(args.app()).into_owned();
    match args.on_revoke {
        OnRevoke::Stop => {
            eprintln!(
                "macvault run: stopped watching the secrets of app {app}: {}; stopping the \
                 command (--on-revoke stop)",
                super::exit::describe(e)
            );
            stop(child, args.grace).await?;
            Ok(super::exit::classify(e).code())
        }
        OnRevoke::Keep => {
            eprintln!(
                "macvault run: stopped watching the secrets of app {app}: {}; the command runs \
                 on with the secrets it has (--on-revoke keep)",
                super::exit::describe(e)
            );
            loop {
                tokio::select! {
                    status = child.wait() => {
                        return Ok(status_code(status.context("cannot wait for the command")?));
                    }
                    sig = any_signal(signals) => send(child, sig),
                }
            }
        }
    }
}
