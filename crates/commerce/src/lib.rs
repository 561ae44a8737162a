//! The digital-goods side of Cartwright: a marketplace order's goods, delivered exactly once.
//! A paid order gets a delivery per line (the store opens them in the transaction that records
//! the payment, with the order's delivery job); the job claims each delivery's items
//! (`Store::claim_delivery`, the one place items leave stock), writes the message, and hands
//! it to the channels through the outbox (`channels`: one job per send). An order short of stock waits for an operator and completes by itself
//! when stock is imported.

pub mod channels;
mod delivery;
mod ingest;
pub mod shopee;

pub use channels::SendHandler;
pub use delivery::{DeliveryHandler, render};
pub use ingest::{IngestError, PollHandler, PushHandler};

use cartwright_store::Store;

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
}

impl Commerce {
    /// Over `store`.
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
            store,
            config,
            http,
        })
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Where a connection's pushes are to be sent: the address their signature covers.
    pub fn push_url(&self, connection: cartwright_core::ids::ConnectionId) -> String {
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
