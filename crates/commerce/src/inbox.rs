//! The push inbox's writer: pushes that arrive together are kept in one transaction, so a
//! marketplace sending many at once gets each answered after one commit instead of waiting in
//! line for a commit of its own. A push is answered only once it is stored.

use cartwright_core::ids::ConnectionId;
use cartwright_store::Store;
use tokio::sync::{mpsc, oneshot};

/// At most this many pushes go into one transaction.
const BATCH: usize = 256;

/// Why a push could not be kept.
#[derive(Debug, thiserror::Error)]
#[error("the push could not be kept: {0}")]
pub struct InboxError(String);

struct Arrived {
    connection: ConnectionId,
    body: String,
    kept: oneshot::Sender<Result<(), String>>,
}

/// Hands pushes to the writer task.
pub struct Inbox {
    queue: mpsc::Sender<Arrived>,
}

impl Inbox {
    /// Starts the writer over `store` (it stops when the inbox is dropped).
    pub fn start(store: Store) -> Inbox {
        let (queue, mut arrived) = mpsc::channel::<Arrived>(4 * BATCH);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while let Some(first) = arrived.recv().await {
                batch.push(first);
                while batch.len() < BATCH {
                    match arrived.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                let rows: Vec<(ConnectionId, &str)> = batch
                    .iter()
                    .map(|a| (a.connection, a.body.as_str()))
                    .collect();
                let result = store
                    .keep_pushes(&rows)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string());
                if let Err(e) = &result {
                    tracing::warn!(error = %e, pushes = batch.len(), "pushes could not be kept");
                }
                for a in batch.drain(..) {
                    let _ = a.kept.send(result.clone());
                }
            }
        });
        Inbox { queue }
    }

    /// Keeps one push (with the job that takes it in); returns once it is committed.
    pub async fn keep(&self, connection: ConnectionId, body: String) -> Result<(), InboxError> {
        let (kept, done) = oneshot::channel();
        self.queue
            .send(Arrived {
                connection,
                body,
                kept,
            })
            .await
            .map_err(|_| InboxError("the inbox is closed".into()))?;
        done.await
            .map_err(|_| InboxError("the inbox stopped".into()))?
            .map_err(InboxError)
    }
}
