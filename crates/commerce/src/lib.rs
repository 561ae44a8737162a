//! The digital-goods side of Cartwright: a marketplace order's goods, delivered exactly once.
//! A paid order gets a delivery per line (the store opens them in the transaction that records
//! the payment, with the order's delivery job); the job claims each delivery's items
//! (`Store::claim_delivery`, the one place items leave stock), writes the message, and hands
//! it to the channels through the outbox (`channels`: one job per send). An order short of stock waits for an operator and completes by itself
//! when stock is imported.

pub mod channels;
mod chat;
mod delivery;
mod inbox;
mod ingest;
pub mod shopee;

pub use channels::SendHandler;
pub use chat::ChatReplyHandler;
pub use delivery::{DeliveryHandler, render};
pub use inbox::{Inbox, InboxError};
pub use ingest::{IngestError, PollHandler, PushHandler};

use cartwright_core::ids::ConnectionId;
use cartwright_store::Store;

/// How many goods jobs (deliveries, pushes, polls, sends) one process runs at once: sends wait
/// on their receivers, and the deliveries running at once are handed over together.
pub const LANE_WIDTH: usize = 96;

/// What the digital-goods side needs to run.
#[derive(Debug, Clone)]
pub struct CommerceConfig {
    /// The address buyers reach Cartwright at: delivery links start with it.
    pub public_url: String,
}

/// The digital-goods side of one process.
pub struct Commerce {
    pub(crate) store: Store,
    pub(crate) config: CommerceConfig,
    pub(crate) http: reqwest::Client,
    /// Where received pushes are kept.
    pub inbox: Inbox,
    /// The buyer assistant that answers chat messages, once attached.
    pub(crate) assistant:
        std::sync::OnceLock<std::sync::Arc<cartwright_assistant::service::Assistant>>,
    /// One chat read at a time per shop in this process (a push and a poll may both ask).
    pub(crate) chat_reads: std::sync::Mutex<
        std::collections::HashMap<ConnectionId, std::sync::Arc<tokio::sync::Mutex<()>>>,
    >,
    /// Each connection's partner key, opened once: a connection's keys never change.
    partner_keys: std::sync::Mutex<std::collections::HashMap<ConnectionId, std::sync::Arc<str>>>,
}

impl Commerce {
    /// Over `store`; starts the push inbox's writer (so inside a Tokio runtime).
    pub fn new(store: Store, config: CommerceConfig) -> std::sync::Arc<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .user_agent(concat!("Cartwright/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "the HTTP client could not be configured; using defaults");
                reqwest::Client::new()
            });
        std::sync::Arc::new(Commerce {
            inbox: Inbox::start(store.clone()),
            assistant: std::sync::OnceLock::new(),
            chat_reads: Default::default(),
            partner_keys: Default::default(),
            store,
            config,
            http,
        })
    }

    /// A connection's partner key (what signs its pushes), opened once and kept.
    pub async fn partner_key(
        &self,
        connection: ConnectionId,
    ) -> Result<std::sync::Arc<str>, cartwright_store::StoreError> {
        let known = self
            .partner_keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&connection)
            .cloned();
        if let Some(key) = known {
            return Ok(key);
        }
        let key: std::sync::Arc<str> = self
            .store
            .connection_keys(connection)
            .await?
            .partner_key
            .into();
        self.partner_keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(connection, key.clone());
        Ok(key)
    }

    /// The assistant that answers the marketplaces' buyer chats: the one this process has,
    /// else a new one over the store with the embedding model in `model_dir`, whose answers
    /// link to this side's delivery pages.
    pub fn assistant(
        self: &std::sync::Arc<Self>,
        model_dir: Option<std::path::PathBuf>,
    ) -> std::sync::Arc<cartwright_assistant::service::Assistant> {
        self.assistant
            .get_or_init(|| {
                let assistant =
                    cartwright_assistant::service::Assistant::new(self.store.clone(), model_dir);
                let links = std::sync::Arc::downgrade(self);
                assistant.set_links(std::sync::Arc::new(move |token: &str| {
                    links
                        .upgrade()
                        .map(|c| c.delivery_link(token))
                        .unwrap_or_default()
                }));
                std::sync::Arc::new(assistant)
            })
            .clone()
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Where a connection's pushes are to be sent: the address their signature covers.
    pub fn push_url(&self, connection: ConnectionId) -> String {
        format!(
            "{}/api/v1/market/push/{connection}",
            self.config.public_url.trim_end_matches('/')
        )
    }

    /// The link to a delivery's page.
    pub fn delivery_link(&self, token: &str) -> String {
        format!("{}/d/{token}", self.config.public_url.trim_end_matches('/'))
    }
}
