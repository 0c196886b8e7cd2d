//! PostgreSQL for end-to-end tests: a throwaway database per test on the server named by
//! `MACVAULT_TEST_DATABASE_URL` (scripts/test.sh starts one), and a loopback TCP proxy
//! the test can cut, to stand for a network partition between a node and the database.

use std::io::ErrorKind;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A database created for one test and dropped after it.
pub struct TestDb {
    admin: String,
    name: String,
    /// Its URL.
    pub url: String,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn admin_sql(admin: &str, sql: &str) -> Result<(), String> {
    runtime().block_on(async {
        let (client, conn) = tokio_postgres::connect(admin, tokio_postgres::NoTls)
            .await
            .map_err(|e| format!("cannot reach the test PostgreSQL: {e}"))?;
        tokio::spawn(conn);
        client.batch_execute(sql).await.map_err(|e| e.to_string())
    })
}

impl TestDb {
    /// A new database, or `None` when no server is configured (then the test is
    /// skipped, unless `MACVAULT_REQUIRE_PG=1`, which makes it fail).
    pub fn create() -> Option<TestDb> {
        let Ok(admin) = std::env::var("MACVAULT_TEST_DATABASE_URL") else {
            assert!(
                std::env::var("MACVAULT_REQUIRE_PG").as_deref() != Ok("1"),
                "MACVAULT_REQUIRE_PG=1 but MACVAULT_TEST_DATABASE_URL is not set"
            );
            eprintln!("skipped: MACVAULT_TEST_DATABASE_URL is not set");
            return None;
        };
        let mut id = [0u8; 6];
        getrandom::fill(&mut id).expect("random");
        let name = format!(
            "mve2e_{}",
            id.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        admin_sql(&admin, &format!("CREATE DATABASE {name}")).expect("create database");
        let mut url = reqwest::Url::parse(&admin).expect("test database URL");
        url.set_path(&format!("/{name}"));
        Some(TestDb {
            admin,
            name,
            url: url.to_string(),
        })
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        let url = reqwest::Url::parse(&self.url).expect("url");
        let host = url.host_str().expect("host");
        format!("{host}:{}", url.port().unwrap_or(5432))
            .parse()
            .expect("a numeric host:port")
    }

    /// The same database reached through `addr` (a proxy).
    pub fn url_via(&self, addr: SocketAddr) -> String {
        let mut url = reqwest::Url::parse(&self.url).expect("url");
        url.set_ip_host(addr.ip()).expect("ip host");
        url.set_port(Some(addr.port())).expect("port");
        url.to_string()
    }

    /// Runs SQL on this database (to look at what the nodes stored).
    pub fn query_text(&self, sql: &str) -> Vec<Vec<Option<Vec<u8>>>> {
        let url = self.url.clone();
        let sql = sql.to_owned();
        runtime().block_on(async move {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .expect("connect");
            tokio::spawn(conn);
            let rows = client.simple_query(&sql).await.expect("query");
            rows.into_iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                        (0..r.len())
                            .map(|i| r.get(i).map(|v| v.as_bytes().to_vec()))
                            .collect(),
                    ),
                    _ => None,
                })
                .collect()
        })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = admin_sql(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// A TCP proxy on loopback to one target, which the test can cut and restore.
pub struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    refused: Arc<AtomicUsize>,
}

impl Proxy {
    /// Starts forwarding to `target`.
    pub fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let up = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let refused = Arc::new(AtomicUsize::new(0));
        let (up2, stop2, open2, refused2) =
            (up.clone(), stop.clone(), open.clone(), refused.clone());
        std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        if !up2.load(Ordering::SeqCst) {
                            let _ = client.shutdown(Shutdown::Both);
                            refused2.fetch_add(1, Ordering::SeqCst);
                            continue;
                        }
                        let _ = client.set_nonblocking(false);
                        let Ok(server) = TcpStream::connect(target) else {
                            let _ = client.shutdown(Shutdown::Both);
                            continue;
                        };
                        pipe(client, server, &open2);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => break,
                }
            }
        });
        Proxy {
            addr,
            up,
            stop,
            open,
            refused,
        }
    }

    /// Where to connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for s in self.open.lock().expect("lock").drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// How many connections it has refused while cut: a test waits on this to know a
    /// client has met the cut, instead of sleeping and hoping.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }

    /// Forwards again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.cut();
    }
}

fn pipe(client: TcpStream, server: TcpStream, open: &Mutex<Vec<TcpStream>>) {
    let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    if let Ok(mut list) = open.lock() {
        for s in [&client, &server] {
            if let Ok(clone) = s.try_clone() {
                list.push(clone);
            }
        }
    }
    let copy = |mut from: TcpStream, mut to: TcpStream| {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Both);
            let _ = from.shutdown(Shutdown::Both);
        });
    };
    copy(client, s2);
    copy(server, c2);
}

/// A transaction held open, with an id, in another database of the same server (the
/// one `MACVAULT_TEST_DATABASE_URL` names) until dropped: what holds back
/// `pg_snapshot_xmin` for every database on the server.
pub struct HeldTransaction {
    release: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HeldTransaction {
    pub fn open_elsewhere() -> HeldTransaction {
        let admin = std::env::var("MACVAULT_TEST_DATABASE_URL").expect("a test server");
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            runtime().block_on(async move {
                let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
                    .await
                    .expect("connect");
                tokio::spawn(conn);
                client
                    .batch_execute("BEGIN; SELECT txid_current();")
                    .await
                    .expect("a transaction with an id");
                ready_tx.send(()).expect("the test waits");
                let _ = tokio::task::spawn_blocking(move || released.recv()).await;
                let _ = client.batch_execute("ROLLBACK").await;
            });
        });
        ready.recv().expect("the transaction opened");
        HeldTransaction {
            release: Some(release),
            thread: Some(thread),
        }
    }
}

impl Drop for HeldTransaction {
    fn drop(&mut self) {
        drop(self.release.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
