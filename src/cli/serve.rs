//! `macvault serve` and `macvault init`: open (or initialise) the store and serve.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use tokio::net::TcpListener;

use super::input::parse_duration;
use super::progress::Progress;
use crate::authority::{Authority, Config, Location, Setup};
use crate::caveats::IpNet;
use crate::http::{AppState, ServeOptions, TrustedProxies};

/// Where the store is and how this node reaches it (shared by `serve` and `init`).
#[derive(Args, Clone)]
pub struct StoreArgs {
    /// Where the node keeps its master key and embedded database (and, on the node that
    /// initialises the store, `operator.token`).
    #[arg(long, env = "MACVAULT_DATA_DIR", default_value = "./macvault-data")]
    pub data_dir: PathBuf,
    /// A PostgreSQL URL (`postgres://user@host/db`): share one store between nodes
    /// instead of the embedded one. `sslmode=require` asks for TLS.
    #[arg(
        long,
        env = "MACVAULT_DATABASE_URL",
        hide_env_values = true,
        conflicts_with = "database_url_file"
    )]
    pub database: Option<String>,
    /// A file holding the PostgreSQL URL (so a password need not be on a command line).
    #[arg(long, value_name = "FILE")]
    pub database_url_file: Option<PathBuf>,
    /// The master key file (default: DATA_DIR/master.key; created 0600 if missing).
    #[arg(long, value_name = "FILE")]
    pub master_key_file: Option<PathBuf>,
}

impl StoreArgs {
    /// The store's location.
    pub fn location(&self) -> anyhow::Result<Location> {
        if let Some(file) = &self.database_url_file {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let url = text.trim();
            anyhow::ensure!(
                url.starts_with("postgres://") || url.starts_with("postgresql://"),
                "{} does not hold a postgres:// URL",
                file.display()
            );
            return Ok(Location::Postgres(url.to_owned()));
        }
        match &self.database {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(Location::Postgres(url.clone()))
            }
            Some(_) => anyhow::bail!("--database takes a postgres:// or postgresql:// URL"),
            None => Ok(Location::Dir(self.data_dir.clone())),
        }
    }

    fn setup(&self, config: Config, may_initialise: bool) -> anyhow::Result<Setup> {
        Ok(Setup {
            store: self.location()?,
            data_dir: self.data_dir.clone(),
            master_key_file: self.master_key_file.clone(),
            may_initialise,
            config,
        })
    }
}

/// `macvault serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// The address to listen on: `127.0.0.1:7070`, `localhost:7070`, `[::]:7070`.
    #[arg(long, default_value = "127.0.0.1:7070", value_parser = parse_listen)]
    listen: SocketAddr,
    #[command(flatten)]
    store: StoreArgs,
    /// How long a request may take before it is answered 408 (`10s`, `1m`).
    #[arg(long, default_value = "10s", value_parser = parse_timeout)]
    request_timeout: Duration,
    /// How long this node may go without catching up with the store's change feed
    /// before it answers 503 `stale` instead of trusting what it holds.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    max_staleness: Duration,
    /// A load balancer's network whose `X-Forwarded-For` is believed (repeatable).
    #[arg(long, value_name = "CIDR")]
    trusted_proxy: Vec<IpNet>,
    /// Versions kept per secret; writing more destroys the oldest (1 to 10000).
    #[arg(long, default_value_t = crate::secrets::limits::DEFAULT_MAX_VERSIONS, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    max_versions: u64,
    /// During a secrets key rotation, versions re-wrapped per transaction.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    rewrap_batch: u64,
    /// During a secrets key rotation, the pause between transactions (`0s`, `50ms`), to
    /// spare a busy database.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    rewrap_pause: Duration,
    /// A URL prefix from which JWKS documents of third parties may be fetched
    /// (repeatable; default: GitHub Actions' and gitlab.com's issuers).
    #[arg(long, value_name = "URL-PREFIX")]
    pub jwks_allow: Vec<String>,
    /// Also fetch JWKS over plain http from a loopback host (tests, local setups).
    #[arg(long)]
    pub allow_insecure_jwks: bool,
    /// How long after its last good fetch an issuer's key set may still be used.
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pub jwks_max_stale: std::time::Duration,
    /// How long a connection may take to send a request's headers — the first
    /// request's, and the next one's on a kept-alive connection, so also the longest a
    /// connection may sit idle between requests (`5s`).
    #[arg(long, default_value = "5s", value_parser = parse_timeout)]
    pub header_timeout: std::time::Duration,
    /// Most connections open at once; past it new ones wait in the kernel's backlog
    /// (default: the descriptor limit minus 64).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: Option<u32>,
    /// On SIGTERM or SIGINT, how long requests in flight may run on after the node
    /// stops accepting (long polls end at once, with a retryable 503).
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub drain_timeout: std::time::Duration,
    /// On SIGTERM or SIGINT, how long the node goes on accepting once `/v1/ready`
    /// answers 503 `draining`: time for a load balancer to stop sending (its health
    /// check interval). At most 5m.
    #[arg(long, default_value = "0s", value_parser = parse_delay)]
    pub drain_delay: std::time::Duration,
    /// The log on stderr: text, or json (one object a line). Either way every line a
    /// request writes carries its id, also returned as `x-request-id`; no line ever
    /// holds a token, key, value or ID token.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// How long audit events are kept (`90d`); older ones are pruned in the background
    /// (each org's newest is kept, so its cursor never restarts). Default: for ever.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub audit_retention: Option<std::time::Duration>,
    /// How long one token's denials of one kind (the same caveat refusing the same
    /// action) count into one audit event, from the first of them.
    #[arg(long, value_name = "DUR", default_value = "60s", value_parser = parse_duration)]
    pub audit_denial_window: std::time::Duration,
    /// The address people reach this server at, when a TLS proxy stands in front
    /// (`https://vault.example`): the dashboard's origin, and its cookie is Secure.
    #[arg(long, value_name = "URL", value_parser = parse_public_url)]
    pub public_url: Option<String>,
    /// Serve HTTPS with this certificate chain (PEM, leaf first); needs --tls-key.
    /// SIGHUP reads the pair again (a renewed certificate) without a restart.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert; refused if others may read it.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Failed requests (401, 403, a refused discharge) allowed per client address (an
    /// IPv6 /64 is one) after a burst of --rate-burst, as N/s, N/m or N/h; past it,
    /// that address's failing requests get 429. Requests that authenticate and are
    /// allowed are never limited.
    #[arg(long, default_value = "10/s", value_name = "RATE")]
    pub rate_limit: crate::limits::Rate,
    /// Failed requests a client address may make at once before --rate-limit applies.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub rate_burst: u32,
    /// Reveals per token (N/s, N/m or N/h; `run --watch` makes about two a minute).
    #[arg(long, default_value = "600/m", value_name = "RATE")]
    pub quota_reveal: crate::limits::Rate,
    /// Tokens minted per token (N/s, N/m or N/h).
    #[arg(long, default_value = "60/m", value_name = "RATE")]
    pub quota_mint: crate::limits::Rate,
    /// Discharge requests allowed per minute per client address (an IPv6 /64 is one).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub discharge_limit: u32,
    /// Serve Prometheus metrics as GET /metrics on this address (HOST:PORT). It takes
    /// no token, so bind it to loopback or a private network; no label names an org,
    /// app, token or client. Default: no metrics, and nothing counted.
    #[arg(long, value_name = "ADDR", value_parser = parse_listen)]
    pub metrics_listen: Option<SocketAddr>,
}

/// `macvault init`.
#[derive(Args)]
pub struct InitArgs {
    #[command(flatten)]
    store: StoreArgs,
}

/// `macvault operator-token`.
#[derive(Args)]
pub struct OperatorTokenArgs {
    #[command(flatten)]
    store: StoreArgs,
}

/// `HOST:PORT`, the host a name (resolved, the first address) or an address.
fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs as _;
    s.to_socket_addrs()
        .map_err(|e| format!("not an address like 127.0.0.1:7070 or localhost:7070 ({e})"))?
        .next()
        .ok_or_else(|| format!("{s} resolves to no address"))
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d > Duration::from_secs(3600) {
        return Err("a timeout is at most 1h".into());
    }
    Ok(d)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Reads the TLS pair again on each SIGHUP; a pair that does not load is logged and
/// the old one kept.
async fn reload_on_sighup(tls: Arc<crate::http::Tls>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::error!("cannot listen for SIGHUP: the TLS pair will not be reloaded");
        return;
    };
    while hup.recv().await.is_some() {
        match tls.reload() {
            Ok(()) => tracing::info!("TLS certificate and key reloaded"),
            Err(e) => tracing::error!(error = %e, "TLS pair not reloaded; the old one serves on"),
        }
    }
}

/// Runs `macvault serve` until SIGINT or SIGTERM.
pub fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    init_tracing(args.log_format);
    runtime()?.block_on(async move {
        let config = Config {
            max_staleness: args.max_staleness,
            audit_retention: args.audit_retention,
            denial_window: args.audit_denial_window,
            ..Config::default()
        };
        let setup = args.store.setup(config, true)?;
        // The TLS pair and the address first: a bad file or a busy port must fail
        // before anything is written (a data directory, a master key, an operator token
        // nobody would see).
        let tls = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(crate::http::Tls::load(cert, key)?),
            _ => None,
        };
        let listener = TcpListener::bind(args.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
        let metrics_listener = match args.metrics_listen {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| {
                anyhow::anyhow!("cannot listen for --metrics-listen on {addr}: {e}")
            })?),
            None => None,
        };
        let opened = Authority::open_with(&setup).await?;
        // A closed stdout does not stop a server: what it says here is in the log too.
        if let Some(path) = &opened.operator_token {
            let _ = super::output::line(format_args!(
                "operator token written to {} (mode 0600; it is shown nowhere else)",
                path.display()
            ));
        }
        // Said before the API's address, which is the last line of the start.
        if let Some(l) = &metrics_listener {
            let addr = l.local_addr()?;
            let _ = super::output::line(format_args!("macvault metrics at http://{addr}/metrics"));
            tracing::info!(%addr, "serving metrics");
        }
        let shutdown = shutdown_signal()?;
        let addr = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let _ = super::output::line(format_args!("macvault listening on {scheme}://{addr}"));
        tracing::info!(%addr, backend = opened.authority.backend_name(), "listening");
        let background = opened.authority.start();
        let secrets = crate::secrets::Options {
            max_versions: args.max_versions,
            rewrap_batch: usize::try_from(args.rewrap_batch).unwrap_or(200),
            rewrap_pause: args.rewrap_pause,
            ..crate::secrets::Options::default()
        };
        let mut state = AppState::new(opened.authority.clone(), secrets);
        state.proxies = Arc::new(TrustedProxies::new(args.trusted_proxy));
        state.public_url = args.public_url.clone();
        state.tls = tls.is_some();
        let mut jwks = crate::discharge::jwks::JwksOptions {
            insecure_loopback: args.allow_insecure_jwks,
            max_stale: args.jwks_max_stale.as_secs(),
            ..Default::default()
        };
        if !args.jwks_allow.is_empty() {
            jwks.allow = args.jwks_allow;
        }
        state.discharger = Arc::new(crate::discharge::Discharger::new(
            opened.authority.clone(),
            crate::discharge::DischargeOptions {
                jwks,
                per_minute: std::num::NonZeroU32::new(args.discharge_limit)
                    .unwrap_or(std::num::NonZeroU32::MIN),
            },
        ));
        state.limits = Arc::new(crate::limits::Limits::new(crate::limits::LimitOptions {
            failures: args.rate_limit,
            failure_burst: std::num::NonZeroU32::new(args.rate_burst)
                .unwrap_or(std::num::NonZeroU32::MIN),
            reveals: args.quota_reveal,
            mints: args.quota_mint,
        }));
        let metrics = metrics_listener.map(|l| {
            let metrics = Arc::new(crate::http::Metrics::new(&state));
            state.metrics = Some(metrics.clone());
            tokio::spawn(async move {
                if let Err(e) = crate::http::serve_metrics(l, metrics, std::future::pending()).await
                {
                    tracing::error!(error = %e, "the metrics listener stopped");
                }
            })
        });
        let rotations = state.secrets.start();
        // The limiters keep a budget per address or token: forget idle ones.
        let (discharger, limits) = (state.discharger.clone(), state.limits.clone());
        let forgetting = tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                every.tick().await;
                discharger.forget_idle();
                limits.forget_idle();
            }
        });
        let options = ServeOptions {
            request_timeout: args.request_timeout,
            header_timeout: args.header_timeout,
            max_connections: args
                .max_connections
                .map_or_else(crate::http::default_max_connections, |n| {
                    usize::try_from(n).unwrap_or(usize::MAX)
                }),
            drain_timeout: args.drain_timeout,
            drain_delay: args.drain_delay,
            tls: tls.clone(),
        };
        let reloading = tls.map(|tls| tokio::spawn(reload_on_sighup(tls)));
        let served = crate::http::run(listener, state, options, shutdown).await;
        // A rotation stopped half way resumes at the next start (or on another node).
        rotations.abort();
        forgetting.abort();
        if let Some(m) = metrics {
            m.abort();
        }
        if let Some(r) = reloading {
            r.abort();
        }
        background.stop().await?;
        served?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Runs `macvault init`: initialises an empty store (the first `serve` does the same).
pub fn init(args: InitArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async move {
        let setup = args.store.setup(Config::default(), true)?;
        let opened = Authority::open_with(&setup).await?;
        match &opened.operator_token {
            Some(path) => super::output::line(format_args!(
                "initialised {}; operator token written to {} (mode 0600)",
                setup.store,
                path.display()
            ))?,
            None => super::output::line(format_args!("{} was initialised already", setup.store))?,
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Runs `macvault operator-token`: with the master key, a fresh operator token replaces
/// every earlier one (written to DATA_DIR/operator.token, mode 0600).
pub fn operator_token(args: OperatorTokenArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async move {
        let setup = args.store.setup(Config::default(), false)?;
        let opened = Authority::open_with(&setup).await?;
        let path = setup.data_dir.join(crate::authority::OPERATOR_FILE);
        let revoked = opened.authority.reissue_operator_token(&path).await?;
        super::output::line(format_args!(
            "a new operator token is in {} (mode 0600); {revoked} earlier operator token(s) revoked",
            path.display()
        ))?;
        Ok(ExitCode::SUCCESS)
    })
}

/// `--drain-delay`: 0 to 5 minutes.
fn parse_delay(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("not a duration like 10s ({e})"))?;
    if d > std::time::Duration::from_secs(300) {
        return Err("at most 5m".into());
    }
    Ok(d)
}

/// `--public-url`: an http or https origin (scheme, host, optional port), no path.
fn parse_public_url(s: &str) -> Result<String, String> {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .ok_or("the public URL starts with https:// (or http://)")?;
    let host = rest.strip_suffix('/').unwrap_or(rest);
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
    {
        return Err("the public URL is an origin like https://vault.example (no path)".into());
    }
    Ok(s.trim_end_matches('/').to_owned())
}

/// SIGINT or SIGTERM. The handlers are installed here, at once (before the server says
/// it listens): a signal sent as soon as it does drains it instead of killing it.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
        tracing::info!("shutting down");
    })
}

/// The log's format on stderr.
#[derive(Debug, Clone, Copy, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people.
    #[default]
    Text,
    /// One JSON object a line (with the request's span, so its `id`).
    Json,
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MACVAULT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal as _;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// `macvault store …`: offline tools on a store.
#[derive(clap::Subcommand)]
pub enum StoreCommand {
    /// Copy everything from one store into a new, empty one (a data directory or a
    /// postgres:// URL, either way round): migration, backup and restore. Root keys stay
    /// wrapped, so the target needs the same master key file. An embedded source must
    /// not be in use by a running server.
    Copy {
        /// The store to copy: a data directory or a postgres:// URL.
        #[arg(long, value_name = "DIR|URL")]
        from: String,
        /// The empty store to fill: a new data directory or an empty database.
        #[arg(long, value_name = "DIR|URL")]
        to: String,
    },
}

/// `store copy`, with a progress display on a terminal: a spinner while the source is
/// read, then a bar of the records written.
async fn copy_showing_progress(
    from: &Location,
    to: &Location,
) -> Result<crate::authority::CopyCounts, crate::authority::CopyError> {
    let progress = Arc::new(crate::authority::CopyProgress::default());
    let shown = Progress::spinner(format!("reading {from}"));
    let show = |p: &Progress| {
        let (written, total) = progress.now();
        if total > 0 && !p.is_bar() {
            p.to_bar(format!("writing {to}"), total, "records");
        }
        p.at(written);
    };
    let copy = crate::authority::copy_store_reporting(from, to, progress.clone());
    let copied = shown.follow(copy, show).await;
    match &copied {
        Ok(_) => {
            show(&shown);
            shown.done(format!("wrote {to}"));
        }
        Err(_) => shown.clear(),
    }
    copied
}

/// Runs `macvault store …`.
pub fn store(cmd: StoreCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        StoreCommand::Copy { from, to } => {
            let (from, to) = (Location::parse(&from), Location::parse(&to));
            let counts = runtime()?.block_on(copy_showing_progress(&from, &to))?;
            let what: Vec<String> = counts.iter().map(|(w, n)| format!("{n} {w}")).collect();
            super::output::line(format_args!("copied {from} to {to}: {}", what.join(", ")))?;
            eprintln!(
                "the root keys are wrapped by the master key: nodes on {to} need the master key file of {from}"
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
