//! Typed identifiers, so an account id can never be passed where a product id is expected.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

macro_rules! ids {
    ($($(#[$doc:meta])* $name:ident),+ $(,)?) => {$(
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
        )]
        #[serde(transparent)]
        #[schema(value_type = i64, format = Int64, minimum = 1)]
        pub struct $name(pub i64);

        impl $name {
            /// The raw database value.
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<i64> for $name {
            fn from(id: i64) -> Self {
                Self(id)
            }
        }
    )+};
}

ids! {
    /// A person who signs in to Cartwright.
    OperatorId,
    /// A machine credential (extension, webhook sender, script).
    TokenId,
    /// A site whose customer accounts Cartwright operates.
    StorefrontId,
    /// A customer account on a storefront.
    AccountId,
    /// A product on a storefront.
    ProductId,
    /// A shipping address.
    AddressId,
    /// A durable job.
    JobId,
    /// An order batch.
    BatchId,
    /// One order of a batch: one account, one repetition.
    OrderId,
    /// An event in the run log.
    EventId,
    /// A run of rewards checks over an account selection.
    RewardsRunId,
    /// A recurring job (a rewards run every day at 09:00).
    ScheduleId,
    /// A digital product: what a seller sells on a marketplace.
    DigitalProductId,
    /// One unique item of a digital product's stock.
    StockItemId,
    /// A connection to a marketplace shop.
    ConnectionId,
    /// A listing on a marketplace, mapped to a digital product.
    ListingId,
    /// An order on a marketplace.
    MarketOrderId,
    /// The delivery of one line of a marketplace order.
    DeliveryId,
    /// A delivery channel (a webhook, e-mail, the marketplace chat).
    ChannelId,
    /// One send of a delivery through one channel: a row of the outbox.
    SendId,
    /// A FAQ entry.
    FaqId,
    /// A message in the chat with a buyer.
    ChatMessageId,
    /// What the assistant (or a person) made of a buyer's question.
    AnswerId,
}
