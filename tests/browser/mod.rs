//! The dashboard in a real headless Chromium, driven over WebDriver (chromedriver, by
//! fantoccini): signing in, finding a token by its fingerprint and its last use,
//! revoking through the preview, rotating, setting a secret with no value on the page,
//! signing out another browser's session, a readonly session without write controls,
//! forged and cross-site posts refused. Screenshots go under `target/browser/` (and,
//! from `scripts/screenshots.sh`, into `docs/screenshots/`).
//!
//! Needs `chromium` and `chromium-driver` (Debian); `scripts/test.sh` installs them
//! and sets MACVAULT_REQUIRE_BROWSER=1 so that a missing browser fails instead of
//! skipping.

mod flows;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};

use crate::support::eventually;

/// A chromedriver of our own, on a free port, in a process group of its own: dropped
/// (also when a test panics before it closes its session), the whole group is killed,
/// the browsers chromedriver started included.
pub struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The chromedriver and chromium binaries, if installed.
fn binaries() -> Option<(PathBuf, PathBuf)> {
    let find = |names: &[&str]| names.iter().map(PathBuf::from).find(|p| p.exists());
    Some((
        find(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"])?,
        find(&["/usr/bin/chromium", "/usr/lib/chromium/chromium"])?,
    ))
}

/// A browser to drive, or `None` (the test skips) where none is installed and none is
/// required.
pub fn driver() -> Option<(Driver, PathBuf)> {
    let Some((driver, chromium)) = binaries() else {
        assert!(
            std::env::var_os("MACVAULT_REQUIRE_BROWSER").is_none(),
            "MACVAULT_REQUIRE_BROWSER is set but chromium and chromium-driver are not installed"
        );
        eprintln!("skipped: chromium and chromium-driver are not installed");
        return None;
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    use std::os::unix::process::CommandExt as _;
    let child = Command::new(driver)
        .process_group(0)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    eventually("chromedriver to listen", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .ok()
            .map(|_| ())
    });
    Some((
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        },
        chromium,
    ))
}

/// A headless Chromium window `width` pixels wide, with a profile of its own.
pub async fn browser(driver: &Driver, chromium: &std::path::Path, width: u32) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-dev-shm-usage",
                "--disable-gpu",
                format!("--window-size={width},900"),
            ],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session");
    client
        .set_window_size(width, 900)
        .await
        .expect("window size");
    client
}

/// Waits (up to 30 s) until the page's path and HTML satisfy `ready`, and answers the
/// HTML: a navigation that a click or a script started may still be under way when
/// the command returns.
pub async fn wait_for(c: &Client, what: &str, ready: impl Fn(&str, &str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let path = c.current_url().await.map(|u| u.path().to_owned());
        let page = c.source().await;
        if let (Ok(path), Ok(page)) = (&path, &page)
            && ready(path, page)
        {
            return page.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited 30 s for {what}; at {path:?}:\n{}",
            page.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The page's HTML.
pub async fn html(c: &Client) -> String {
    c.source().await.expect("page source")
}

/// Fills the form field `name` of the form matching `form` and submits it with its
/// submit button.
pub async fn submit(c: &Client, form: &str, fields: &[(&str, &str)]) {
    let f = c.form(Locator::Css(form)).await.expect("the form");
    for (name, value) in fields {
        f.set_by_name(name, value).await.expect("a field");
    }
    f.submit().await.expect("submit");
}

/// Saves a screenshot as `name.png` under `target/browser/` (and into
/// MACVAULT_SCREENSHOTS, a directory, when set).
pub async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("a screenshot");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![root.join("target/browser")];
    if let Some(extra) = std::env::var_os("MACVAULT_SCREENSHOTS") {
        dirs.push(root.join(extra));
    }
    for dir in dirs {
        std::fs::create_dir_all(&dir).expect("screenshot directory");
        std::fs::write(dir.join(format!("{name}.png")), &png).expect("write screenshot");
    }
}
