//! Marketplace orders coming in by themselves: pushes (kept as received by the receiver, taken
//! in here with the order's details), and the reconciliation poll of the order list by update
//! time, so that a lost push is caught within one poll. Both report through the store's one
//! idempotent ingestion.

use crate::Commerce;
use crate::shopee::{Client, ShopeeError};
use cartwright_core::ids::ConnectionId;
use cartwright_core::market::Source;
use cartwright_jobs::{BoxFuture, Handler, Outcome};
use cartwright_store::{Job, StoreError};
use std::sync::Arc;
use std::time::Duration;

/// How far back each poll reads before where the last one stopped: a change the marketplace
/// recorded late is not missed.
const OVERLAP: time::Duration = time::Duration::minutes(5);

/// Why taking orders in failed.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The marketplace failed or refused.
    #[error(transparent)]
    Market(#[from] ShopeeError),
    /// The push cannot be taken in, ever (not JSON).
    #[error("{0}")]
    Push(String),
}

/// Runs `market_push` jobs.
pub struct PushHandler(pub Arc<Commerce>);

/// Runs `market_poll` jobs.
pub struct PollHandler(pub Arc<Commerce>);

fn outcome(result: Result<(), IngestError>) -> Outcome {
    match result {
        Ok(()) => Outcome::Done,
        Err(IngestError::Push(why)) => Outcome::Fail { error: why },
        Err(e) => Outcome::Retry {
            error: e.to_string(),
            after: Duration::from_secs(5),
        },
    }
}

impl Handler for PushHandler {
    fn run(&self, job: Job) -> BoxFuture<Outcome> {
        let commerce = self.0.clone();
        Box::pin(async move {
            let Some(id) = job.payload.get("push").and_then(serde_json::Value::as_i64) else {
                return Outcome::Fail {
                    error: format!("the job's payload names no push: {}", job.payload),
                };
            };
            let result = commerce.take_push(id).await;
            if let Err(e) = &result {
                let last = job.attempt >= job.max_attempts || matches!(e, IngestError::Push(_));
                if last {
                    let _ = commerce.store.push_done(id, Some(&e.to_string())).await;
                }
            }
            outcome(result)
        })
    }
}

impl Handler for PollHandler {
    fn run(&self, job: Job) -> BoxFuture<Outcome> {
        let commerce = self.0.clone();
        Box::pin(async move {
            let Some(id) = job
                .payload
                .get("connection")
                .and_then(serde_json::Value::as_i64)
            else {
                return Outcome::Fail {
                    error: format!("the job's payload names no connection: {}", job.payload),
                };
            };
            outcome(commerce.poll(ConnectionId(id)).await)
        })
    }
}

impl Commerce {
    /// A signed client of a connection, its access token renewed first when it is due.
    pub(crate) async fn client(&self, id: ConnectionId) -> Result<Client, IngestError> {
        let connection = self.store.connection(id).await?;
        let keys = self.store.connection_keys(id).await?;
        let now = time::OffsetDateTime::now_utc();
        if !keys.due(now) {
            return Ok(Client::new(self.http.clone(), connection, keys));
        }
        let client = Client::new(self.http.clone(), connection.clone(), keys);
        let (access, refresh, lasts) = client.refresh().await?;
        let keys = self
            .store
            .set_connection_tokens(id, &access, &refresh, now + time::Duration::seconds(lasts))
            .await?;
        tracing::info!(connection = %id, "renewed the marketplace access token");
        Ok(Client::new(self.http.clone(), connection, keys))
    }

    /// Takes in a kept push: the order's details are fetched and reported.
    async fn take_push(&self, id: i64) -> Result<(), IngestError> {
        let (connection, body) = self.store.push(id).await?;
        let push: serde_json::Value = serde_json::from_str(&body)
            .map_err(|e| IngestError::Push(format!("the push is not JSON: {e}")))?;
        let sn = push["data"]["ordersn"]
            .as_str()
            .or_else(|| push["data"]["order_sn"].as_str());
        // A chat push (code 10): the shop's new buyer messages are read.
        if push["code"].as_i64() == Some(10) {
            self.read_chat(connection).await?;
            self.store.push_done(id, None).await?;
            return Ok(());
        }
        // Pushes about anything but an order's status change are kept, not acted on.
        if push["code"].as_i64() != Some(3) || sn.is_none() {
            self.store.push_done(id, None).await?;
            return Ok(());
        }
        let client = self.client(connection).await?;
        for order in client.orders(&[sn.unwrap_or_default().to_owned()]).await? {
            self.store
                .ingest_order(&order, Source::Push, Some(connection))
                .await?;
        }
        self.store.push_done(id, None).await?;
        Ok(())
    }

    /// Reads the orders changed since the last poll (with an overlap) and reports each.
    pub async fn poll(&self, id: ConnectionId) -> Result<(), IngestError> {
        let connection = self.store.connection(id).await?;
        let client = self.client(id).await?;
        let to = time::OffsetDateTime::now_utc();
        let from = connection
            .polled_to
            .map_or(to - time::Duration::days(1), |t| t - OVERLAP)
            .max(to - time::Duration::days(15) + time::Duration::minutes(1));
        let mut cursor: Option<String> = None;
        loop {
            let page = client
                .changed_orders(
                    from.unix_timestamp(),
                    to.unix_timestamp(),
                    cursor.as_deref(),
                )
                .await?;
            for chunk in page.orders.chunks(50) {
                for order in client.orders(chunk).await? {
                    self.store
                        .ingest_order(&order, Source::Poll, Some(id))
                        .await?;
                }
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        self.store.polled_to(id, to).await?;
        // The chat is read beside the orders; a marketplace without the chat API (or a
        // failing one) does not hold the orders' poll up.
        if let Err(e) = self.read_chat(id).await {
            tracing::warn!(connection = %id, error = %e, "reading the buyer chat failed");
        }
        Ok(())
    }
}
