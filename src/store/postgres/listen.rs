//! The LISTEN connection that wakes the feed's followers when a write commits.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::sync::Notify;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{AsyncMessage, Socket};

use super::CHANNEL;

/// Keeps a LISTEN connection open (reconnecting), signalling on every notification and
/// after every reconnect (notifications may have been missed meanwhile).
pub(super) async fn listen<T>(config: tokio_postgres::Config, tls: T, signal: Arc<Notify>)
where
    T: MakeTlsConnect<Socket> + Clone + Send + 'static,
    T::Stream: Send,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    loop {
        if let Ok((client, mut connection)) = config.connect(tls.clone()).await {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let driver = tokio::spawn(async move {
                let mut messages =
                    futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                while let Some(message) = messages.next().await {
                    let stop = message.is_err();
                    if tx.send(message).is_err() || stop {
                        break;
                    }
                }
            });
            if client
                .batch_execute(&format!("LISTEN {CHANNEL}"))
                .await
                .is_ok()
            {
                signal.notify_one();
                while let Some(message) = rx.recv().await {
                    match message {
                        Ok(AsyncMessage::Notification(_)) => signal.notify_one(),
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
            }
            driver.abort();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
