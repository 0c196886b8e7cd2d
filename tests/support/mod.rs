//! A harness for end-to-end tests: runs the real `macvault` binary as a server on an
//! ephemeral port with its own data directory, talks to it over HTTP and through the
//! CLI, and always stops it (SIGTERM, then SIGKILL if it does not exit in time).

use std::fmt::Display;
use std::fs::File;
use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod oidc;
pub mod pg;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_macvault");
/// How long a server may take to start listening (debug build, busy 2-core machine).
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a server may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// How long one CLI invocation may take.
const CLI_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one HTTP request may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// The User-Agent the HTTP helper sends.
pub const USER_AGENT: &str = "macvault-e2e/1";

/// Creates org `acme` with the operator token, and its apps `web` and `api`: (operator
/// token, acme's org token).
pub fn acme(srv: &Server) -> (String, String) {
    let op = srv.operator_token().expect("operator token").to_owned();
    let (st, v) = srv.http(
        "POST",
        "/v1/orgs",
        Some(&op),
        Some(&serde_json::json!({"name": "acme"})),
    );
    assert_eq!(st, 201, "create acme: {v}");
    let org = s(&v, "token").to_owned();
    create_apps(srv, &org, "acme", &["web", "api"]);
    (op, org)
}

/// Creates apps in `org` with its org token.
pub fn create_apps(srv: &Server, token: &str, org: &str, apps: &[&str]) {
    for app in apps {
        let (st, v) = srv.http(
            "POST",
            &format!("/v1/orgs/{org}/apps"),
            Some(token),
            Some(&serde_json::json!({ "name": app })),
        );
        assert_eq!(st, 201, "create app {app}: {v}");
    }
}

/// Numbers the log files of successive starts.
static STARTS: AtomicUsize = AtomicUsize::new(0);

/// What a server wrote while it ran.
#[derive(Debug, Clone, Default)]
pub struct Logs {
    /// Everything on stdout.
    pub stdout: String,
    /// Everything on stderr (the tracing log).
    pub stderr: String,
}

/// Why a server did not come up.
#[derive(Debug)]
pub struct StartFailure {
    /// How it exited (None: it was still running and had to be killed).
    pub status: Option<ExitStatus>,
    /// What it wrote.
    pub logs: Logs,
}

/// A running `macvault serve`.
pub struct Server {
    child: Option<Child>,
    data_dir: PathBuf,
    args: Vec<String>,
    url: String,
    operator: Option<String>,
    stdout: Arc<Mutex<String>>,
    stdout_reader: Option<JoinHandle<()>>,
    stderr_path: PathBuf,
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("url", &self.url).finish()
    }
}

fn read_file_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Sends SIGTERM, waits up to [`STOP_TIMEOUT`], then SIGKILLs. Never panics.
fn terminate(child: &mut Child) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

impl Server {
    /// Starts a server on `data_dir` (created by the server if missing); panics if it
    /// does not come up. Log files go next to the data directory.
    pub fn start(data_dir: &Path) -> Server {
        Self::start_with(data_dir, &[])
    }

    /// [`Server::start`] with more `serve` arguments.
    pub fn start_with(data_dir: &Path, args: &[&str]) -> Server {
        match Self::try_start_with(data_dir, args) {
            Ok(s) => s,
            Err(f) => panic!(
                "server did not start: {:?}\nstdout:\n{}\nstderr:\n{}",
                f.status, f.logs.stdout, f.logs.stderr
            ),
        }
    }

    /// Starts a server on `data_dir`, or says how it failed.
    pub fn try_start(data_dir: &Path) -> Result<Server, StartFailure> {
        Self::try_start_with(data_dir, &[])
    }

    pub fn try_start_with(data_dir: &Path, args: &[&str]) -> Result<Server, StartFailure> {
        let n = STARTS.fetch_add(1, Ordering::SeqCst);
        let log_dir = data_dir.parent().unwrap_or(data_dir);
        let stderr_path = log_dir.join(format!("serve-{n}.stderr.log"));
        let stderr_file = File::create(&stderr_path).expect("create stderr log");
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(args)
            .env("MACVAULT_LOG", "debug")
            .env_remove("MACVAULT_TOKEN")
            .env_remove("MACVAULT_URL")
            .env_remove("MACVAULT_DATA_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr_file))
            .spawn()
            .expect("spawn macvault serve");
        let out = child.stdout.take().expect("piped stdout");
        let stdout = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel::<String>();
        let reader = {
            let stdout = stdout.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if let Ok(mut s) = stdout.lock() {
                        s.push_str(&line);
                        s.push('\n');
                    }
                    // The receiver stops listening once the server is up.
                    let _ = tx.send(line);
                }
            })
        };
        let deadline = Instant::now() + START_TIMEOUT;
        let mut lines = Vec::new();
        let url = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(i) = line.find("listening on ") {
                        break line[i + "listening on ".len()..].trim().to_owned();
                    }
                    lines.push(line);
                }
                Err(_) => {
                    // Exited (stdout closed) or too slow.
                    let status = terminate(&mut child);
                    let _ = reader.join();
                    let logs = Logs {
                        stdout: stdout.lock().map(|s| s.clone()).unwrap_or_default(),
                        stderr: read_file_lossy(&stderr_path),
                    };
                    return Err(StartFailure { status, logs });
                }
            }
        };
        // A first start writes the operator token to a file and says where, never the
        // token itself.
        let operator = lines
            .iter()
            .find_map(|l| l.strip_prefix("operator token written to "))
            .and_then(|rest| rest.split(" (").next())
            .map(|path| {
                std::fs::read_to_string(path)
                    .expect("read operator.token")
                    .trim()
                    .to_owned()
            });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let http = http_client(HTTP_TIMEOUT);
        Ok(Server {
            child: Some(child),
            data_dir: data_dir.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            url,
            operator,
            stdout,
            stdout_reader: Some(reader),
            stderr_path,
            rt,
            http,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Everything it wrote on stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The operator token, if this start printed one (first start only).
    pub fn operator_token(&self) -> Option<&str> {
        self.operator.as_deref()
    }

    /// SIGTERM, wait for a clean exit, and return what the server wrote.
    pub fn stop(mut self) -> Logs {
        let mut child = self.child.take().expect("server is running");
        let status = terminate(&mut child);
        assert!(
            status.is_some_and(|s| s.success()),
            "server did not exit cleanly on SIGTERM: {status:?}"
        );
        if let Some(reader) = self.stdout_reader.take() {
            let _ = reader.join();
        }
        Logs {
            stdout: self.stdout.lock().map(|s| s.clone()).unwrap_or_default(),
            stderr: read_file_lossy(&self.stderr_path),
        }
    }

    /// Stops this server and starts a new one on the same data directory, with the
    /// same arguments.
    pub fn restart(self) -> (Logs, Server) {
        let (dir, args) = (self.data_dir.clone(), self.args.clone());
        let logs = self.stop();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        (logs, Server::start_with(&dir, &args))
    }

    /// SIGKILL (a crash: nothing is flushed or closed) and return what it wrote.
    pub fn kill(mut self) -> Logs {
        let mut child = self.child.take().expect("server is running");
        let _ = child.kill();
        let _ = child.wait();
        if let Some(reader) = self.stdout_reader.take() {
            let _ = reader.join();
        }
        Logs {
            stdout: self.stdout.lock().map(|s| s.clone()).unwrap_or_default(),
            stderr: read_file_lossy(&self.stderr_path),
        }
    }

    /// The arguments it was started with (after `--data-dir DIR`).
    pub fn args(&self) -> Vec<&str> {
        self.args.iter().map(String::as_str).collect()
    }

    /// Its data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A reveal waiting (in a thread of its own) at `path` (with `?min_version=`);
    /// returns once the server has parked it (its log says so), so whatever the test
    /// does next happens during the wait. The thread ends with the answer.
    pub fn long_poll(&self, path: &str, token: &str) -> JoinHandle<(u16, Value)> {
        let (url, token) = (format!("{}{path}", self.url), token.to_owned());
        let parked = self.log_count(macvault::secrets::PARKED);
        let waiter = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            rt.block_on(async move {
                let res = reqwest::Client::new()
                    .post(url)
                    .bearer_auth(token)
                    .timeout(Duration::from_secs(60))
                    .send()
                    .await
                    .expect("long poll sent");
                let status = res.status().as_u16();
                (status, res.json::<Value>().await.expect("a JSON answer"))
            })
        });
        self.await_log(macvault::secrets::PARKED, parked);
        waiter
    }

    /// Sets `pairs` (name, value) in the secrets `scope` (a `/v1/orgs/…/secrets` path)
    /// with `token`, in one write: (status, answer).
    pub fn set_secrets(&self, token: &str, scope: &str, pairs: &[(&str, &str)]) -> (u16, Value) {
        let set: Vec<Value> = pairs
            .iter()
            .map(|(n, v)| serde_json::json!({"name": n, "value": v}))
            .collect();
        let body = serde_json::json!({ "set": set });
        self.http("POST", scope, Some(token), Some(&body))
    }

    /// How many lines of its log (stderr, at debug level) contain `needle` so far.
    pub fn log_count(&self, needle: &str) -> usize {
        read_file_lossy(&self.stderr_path)
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Sends the server `signal` (`HUP`, …).
    pub fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("server is running");
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{signal}");
    }

    /// Waits until its log has more than `seen` lines containing `needle`: for a test to
    /// know the server has reached a state (a long poll parked, a body half read) rather
    /// than sleep and hope. Take `seen` from [`Server::log_count`] before acting.
    pub fn await_log(&self, needle: &str, seen: usize) {
        eventually(
            &format!("the server to log {needle:?}"),
            Duration::from_secs(60),
            || (self.log_count(needle) > seen).then_some(()),
        );
    }

    /// Runs the CLI against this server (`MACVAULT_URL` set, `MACVAULT_TOKEN` only if
    /// given in `env`); returns (exit code, stdout, stderr).
    pub fn cli(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        run_bounded(self.cli_command(args, env), args)
    }

    fn cli_command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env("MACVAULT_URL", &self.url)
            .env_remove("MACVAULT_TOKEN")
            .env_remove("MACVAULT_LOG");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    /// A CLI command that runs until stopped (`audit --follow`), with `MACVAULT_TOKEN`
    /// set: its stdout, line by line, as it comes.
    pub fn cli_lines(&self, token: &str, args: &[&str]) -> Lines {
        let mut child = self
            .cli_command(args, &[("MACVAULT_TOKEN", token)])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn macvault");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines { child, rx }
    }

    /// [`Server::cli`] with `stdin` piped in.
    pub fn cli_stdin(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
        stdin: &[u8],
    ) -> (i32, String, String) {
        run_bounded_with(self.cli_command(args, env), args, Some(stdin))
    }

    /// The CLI with `MACVAULT_TOKEN=token`, expecting success and JSON on stdout.
    pub fn cli_json(&self, token: &str, args: &[&str]) -> Value {
        let (code, out, err) = self.cli(args, &[("MACVAULT_TOKEN", token)]);
        assert_eq!(code, 0, "macvault {args:?} failed:\n{out}\n{err}");
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("macvault {args:?} did not print JSON ({e}):\n{out}"))
    }

    /// The CLI with `MACVAULT_TOKEN=token`, expecting success; returns stdout.
    pub fn cli_ok(&self, token: &str, args: &[&str]) -> String {
        let (code, out, err) = self.cli(args, &[("MACVAULT_TOKEN", token)]);
        assert_eq!(code, 0, "macvault {args:?} failed:\n{out}\n{err}");
        out
    }

    /// One JSON request: (status, body as JSON; a non-JSON body becomes a JSON string).
    pub fn http(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut headers = Vec::new();
        let bearer_header;
        if let Some(b) = bearer {
            bearer_header = format!("Bearer {b}");
            headers.push(("authorization", bearer_header.as_str()));
        }
        let bytes = body.map(|b| serde_json::to_vec(b).expect("serialize body"));
        if bytes.is_some() {
            headers.push(("content-type", "application/json"));
        }
        let (status, text) = self.raw(method, path, &headers, bytes);
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, json)
    }

    /// Any request: (status, body text).
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> (u16, String) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        self.rt.block_on(async {
            let resp = req.send().await.expect("send request");
            let status = resp.status().as_u16();
            let text = resp.text().await.expect("read response body");
            (status, text)
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child);
        }
        if let Some(reader) = self.stdout_reader.take() {
            let _ = reader.join();
        }
    }
}

/// Runs `cmd` with piped output and no stdin, killing it after [`CLI_TIMEOUT`].
fn run_bounded(cmd: Command, args: &[&str]) -> (i32, String, String) {
    run_bounded_with(cmd, args, None)
}

/// [`run_bounded`] with `stdin` piped in.
fn run_bounded_with(
    mut cmd: Command,
    args: &[&str],
    stdin: Option<&[u8]>,
) -> (i32, String, String) {
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn macvault");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        std::io::Write::write_all(&mut pipe, input).expect("write stdin");
    }
    let drain = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + CLI_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for macvault") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("macvault {args:?} took longer than {CLI_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    (status.code().unwrap_or(-1), out, err)
}

/// `token` with a wrong signature: a character ten from the end changed (the last
/// character's low bits fall outside the signature's bytes, so changing it may leave
/// the signature intact or make the token malformed instead).
pub fn forged(token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    let at = chars.len() - 10;
    chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

/// A running CLI command's stdout lines (see [`Server::cli_lines`]); killed when dropped.
pub struct Lines {
    child: Child,
    rx: std::sync::mpsc::Receiver<String>,
}

impl Lines {
    /// The next line; panics if none comes within a minute (or the command ended).
    pub fn next_line(&mut self) -> String {
        match self.rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => line,
            Err(e) => {
                let _ = self.child.kill();
                let mut err = String::new();
                if let Some(mut pipe) = self.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut pipe, &mut err);
                }
                panic!("no line from the command ({e}); its stderr:\n{err}")
            }
        }
    }

    /// Waits (up to a minute) for the command to end by itself: (exit code, stderr).
    pub fn wait(mut self) -> (i32, String) {
        let status = eventually("the command to end", Duration::from_secs(60), || {
            self.child.try_wait().expect("wait for macvault")
        });
        let mut err = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut pipe, &mut err);
        }
        (status.code().unwrap_or(-1), err)
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Collects failed checks so one run reports all of them, then panics in [`Checks::finish`].
#[derive(Debug, Default)]
pub struct Checks {
    failures: Vec<String>,
    count: usize,
}

impl Checks {
    /// A new, empty collector.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a failure unless `ok`.
    pub fn check(&mut self, ok: bool, what: impl Display) {
        self.count += 1;
        if !ok {
            self.failures.push(what.to_string());
        }
    }

    /// Records a failure unless `left == right`.
    pub fn same<T: PartialEq + std::fmt::Debug>(&mut self, left: T, right: T, what: impl Display) {
        let ok = left == right;
        self.check(ok, format_args!("{what}: got {left:?}, want {right:?}"));
    }

    /// Panics listing every failure, if any.
    pub fn finish(self) {
        assert!(
            self.failures.is_empty(),
            "{} of {} checks failed:\n  - {}",
            self.failures.len(),
            self.count,
            self.failures.join("\n  - ")
        );
    }
}

/// The string at `v[key]`, or "" (for terse assertions).
pub fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The error code of an error body (`error.code`), or "".
pub fn code(v: &Value) -> &str {
    v.pointer("/error/code")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Whether `v` is a well-formed error body: `{"error": {"code": "…", "message": "…"}}`.
pub fn is_error_body(v: &Value) -> bool {
    v.pointer("/error/code").is_some_and(Value::is_string)
        && v.pointer("/error/message").is_some_and(Value::is_string)
}

/// Unix seconds now.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// Unix seconds of an RFC 3339 UTC time `YYYY-MM-DDTHH:MM:SSZ`, if it is one.
pub fn parse_time(t: &str) -> Option<u64> {
    let b = t.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[19] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| t.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    // Days from civil (Howard Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

/// Calls `probe` until it returns `Some`, for at most `deadline`; panics naming `what`.
pub fn eventually<T>(what: &str, deadline: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < end, "gave up waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An HTTP client opening a fresh connection per request (a kept-alive one may be
/// closed by the server, idle past --header-timeout, just as a request goes out on it).
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .timeout(timeout)
        .pool_max_idle_per_host(0)
        .build()
        .expect("http client")
}

/// Whether `needle` occurs in `hay`.
pub fn contains_bytes(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// A Python package from PyPI (`name==version`), installed once into the target
/// directory; the directory to put on `PYTHONPATH`. A failed install fails the test:
/// an interop check that cannot run is not skipped.
/// Runs the Python `script` with `arg` and the packages under `path` (a PYTHONPATH):
/// what it prints, as JSON (it must succeed).
pub fn python_json(
    path: impl AsRef<std::ffi::OsStr>,
    script: &str,
    arg: impl AsRef<std::ffi::OsStr>,
) -> Value {
    let out = Command::new("python3")
        .env("PYTHONPATH", path)
        .args(["-c", script])
        .arg(arg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

pub fn python_package(spec: &str, module: &str) -> std::path::PathBuf {
    // Tests run in parallel threads: one pip at a time, so no two write one directory.
    static PIP: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = PIP
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(spec.replace("==", "-"));
    if !dir.join(module).exists() {
        let ok = Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--target",
            ])
            .arg(&dir)
            .arg(spec)
            .status()
            .unwrap();
        assert!(ok.success(), "pip install {spec}");
    }
    dir
}
