//! The digital-goods side of Cartwright: a marketplace order's goods, delivered exactly once.
//! A paid order gets a delivery per line (the store opens them in the transaction that records
//! the payment, with the order's delivery job); the job claims each delivery's items
//! (`Store::claim_delivery`, the one place items leave stock), writes the message, and hands
//! it to the channels. An order short of stock waits for an operator and completes by itself
//! when stock is imported.

mod delivery;

pub use delivery::{DeliveryHandler, render};

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
}

impl Commerce {
    /// Over `store`.
    pub fn new(store: Store, config: CommerceConfig) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Commerce { store, config })
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The link to a delivery's page.
    pub fn delivery_link(&self, token: &str) -> String {
        format!("{}/d/{token}", self.config.public_url.trim_end_matches('/'))
    }
}
