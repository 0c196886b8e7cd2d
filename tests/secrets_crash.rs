//! A crash under load: concurrent writers each set a pair of secrets in one write, the
//! server is SIGKILLed mid-run and started again. Every acknowledged write is there, no
//! pair is half applied, and the store opens cleanly and takes writes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::secrets::on_each_backend;
use crate::support::{Server, acme, eventually, s};

const WRITERS: usize = 4;
const ORG: &str = "/v1/orgs/acme/secrets";

/// One writer: sets `A{w}` and `B{w}` together until the server goes away; the last
/// version acknowledged is in `acked`.
fn writer(url: String, token: String, w: usize, acked: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let http = crate::support::http_client(Duration::from_secs(30));
        let mut k = 0u64;
        while !stop.load(Ordering::SeqCst) {
            k += 1;
            let value = format!("w{w}-k{k}");
            let body = json!({"set": [
                {"name": format!("A{w}"), "value": value},
                {"name": format!("B{w}"), "value": value},
            ]});
            let sent = http
                .post(format!("{url}{ORG}"))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await;
            let Ok(res) = sent else { break };
            if res.status() != 200 {
                break;
            }
            let Ok(v) = res.json::<Value>().await else {
                break;
            };
            let a = v["secrets"][0]["version"].as_u64().unwrap();
            assert_eq!(
                v["secrets"][1]["version"].as_u64(),
                Some(a),
                "one write, one version"
            );
            acked.store(a, Ordering::SeqCst);
        }
    });
}

#[test]
fn sigkill_mid_write_loses_nothing_acknowledged_and_halves_nothing() {
    on_each_backend(&[], |_, srv| {
        let (_op, org) = acme(&srv);
        let stop = Arc::new(AtomicBool::new(false));
        let acked: Vec<Arc<AtomicU64>> =
            (0..WRITERS).map(|_| Arc::new(AtomicU64::new(0))).collect();
        let threads: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (url, token) = (srv.url().to_owned(), org.clone());
                let (acked, stop) = (acked[w].clone(), stop.clone());
                std::thread::spawn(move || writer(url, token, w, acked, stop))
            })
            .collect();
        // Kill it once every writer has had several writes acknowledged.
        eventually("writers to get going", Duration::from_secs(60), || {
            acked
                .iter()
                .all(|a| a.load(Ordering::SeqCst) >= 5)
                .then_some(())
        });
        let (dir, args) = (
            srv.data_dir().to_owned(),
            srv.args()
                .iter()
                .map(|a| (*a).to_owned())
                .collect::<Vec<_>>(),
        );
        srv.kill();
        stop.store(true, Ordering::SeqCst);
        for t in threads {
            t.join().unwrap();
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let srv = Server::start_with(&dir, &args);
        let (st, list) = srv.http("GET", ORG, Some(&org), None);
        assert_eq!(st, 200, "{list}");
        let version = |name: &str| {
            list["secrets"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| s(e, "name") == name)
                .and_then(|e| e["version"].as_u64())
                .unwrap_or(0)
        };
        for (w, acked) in acked.iter().enumerate() {
            let acked = acked.load(Ordering::SeqCst);
            let (a, b) = (version(&format!("A{w}")), version(&format!("B{w}")));
            assert_eq!(a, b, "writer {w}: a pair is never half applied");
            assert!(
                a == acked || a == acked + 1,
                "writer {w}: acknowledged v{acked}, found v{a} (at most one unacknowledged write may have landed)"
            );
        }
        // It takes writes again, continuing the numbers.
        let (st, v) = srv.http(
            "POST",
            ORG,
            Some(&org),
            Some(&json!({"set": [{"name": "A0", "value": "after"}]})),
        );
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["secrets"][0]["version"].as_u64(), Some(version("A0") + 1));
    });
}
