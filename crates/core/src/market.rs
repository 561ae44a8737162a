//! Marketplace orders of digital goods, in one place: the states an order goes through, every
//! move between them by name ([`MarketMove`]), where each reported status came from, and how a
//! marketplace's own statuses map onto ours. The store writes a state only through one of these
//! moves and takes its allowed source states from here, as it does for [`crate::order`].

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use utoipa::ToSchema;

/// Where a marketplace order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MarketOrderState {
    /// Placed by the buyer, not paid.
    Unpaid,
    /// Paid: its goods are due.
    Paid,
    /// Its goods are claimed and on their way.
    Delivering,
    /// Every line's goods reached the buyer (a channel confirmed).
    Delivered,
    /// Some lines' goods reached the buyer; the others wait for stock.
    PartiallyDelivered,
    /// It cannot be delivered by itself (not enough stock, a listing mapped to no product):
    /// an operator is told; it completes by itself once the cause goes (stock imported).
    NeedsAttention,
    /// Cancelled before its goods went out: what was reserved for it went back to stock.
    Cancelled,
    /// Refunded: goods that went out are revoked (never sold again), the rest went back.
    Refunded,
}

impl MarketOrderState {
    /// Every state.
    pub const ALL: [MarketOrderState; 8] = [
        MarketOrderState::Unpaid,
        MarketOrderState::Paid,
        MarketOrderState::Delivering,
        MarketOrderState::Delivered,
        MarketOrderState::PartiallyDelivered,
        MarketOrderState::NeedsAttention,
        MarketOrderState::Cancelled,
        MarketOrderState::Refunded,
    ];

    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            MarketOrderState::Unpaid => "unpaid",
            MarketOrderState::Paid => "paid",
            MarketOrderState::Delivering => "delivering",
            MarketOrderState::Delivered => "delivered",
            MarketOrderState::PartiallyDelivered => "partially_delivered",
            MarketOrderState::NeedsAttention => "needs_attention",
            MarketOrderState::Cancelled => "cancelled",
            MarketOrderState::Refunded => "refunded",
        }
    }

    /// Whether the buyer has paid (whatever happened since).
    pub fn is_paid(self) -> bool {
        !matches!(self, MarketOrderState::Unpaid | MarketOrderState::Cancelled)
    }

    /// Whether the order may move to `next` by some [`MarketMove`].
    pub fn can_move_to(self, next: MarketOrderState) -> bool {
        MarketMove::ALL
            .iter()
            .any(|m| m.to() == next && m.from().contains(&self))
    }
}

impl fmt::Display for MarketOrderState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MarketOrderState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        MarketOrderState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| format!("unknown marketplace order state {s:?}"))
    }
}

/// Every move a marketplace order can make, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MarketMove {
    /// The marketplace says the buyer paid.
    Pay,
    /// Its deliveries claimed their goods and are sending them.
    StartDelivery,
    /// Every line's goods reached the buyer.
    Deliver,
    /// Some lines' goods reached the buyer; the others wait for stock.
    DeliverPart,
    /// A line cannot be delivered by itself (stock short, no product): an operator is told.
    NeedAttention,
    /// The marketplace says it was cancelled before anything went out.
    Cancel,
    /// The marketplace (or an operator) says it was refunded.
    Refund,
}

impl MarketMove {
    /// Every move.
    pub const ALL: [MarketMove; 7] = [
        MarketMove::Pay,
        MarketMove::StartDelivery,
        MarketMove::Deliver,
        MarketMove::DeliverPart,
        MarketMove::NeedAttention,
        MarketMove::Cancel,
        MarketMove::Refund,
    ];

    /// The states the move may start from.
    pub fn from(self) -> &'static [MarketOrderState] {
        use MarketOrderState::*;
        match self {
            MarketMove::Pay => &[Unpaid],
            MarketMove::StartDelivery => &[Paid, NeedsAttention, PartiallyDelivered],
            // From paid too: claimed and sent in one transaction, never seen delivering.
            MarketMove::Deliver | MarketMove::DeliverPart => {
                &[Paid, Delivering, NeedsAttention, PartiallyDelivered]
            }
            MarketMove::NeedAttention => &[Paid, Delivering, PartiallyDelivered],
            // Once anything went out it is a refund, not a cancellation.
            MarketMove::Cancel => &[Unpaid, Paid, NeedsAttention],
            MarketMove::Refund => &[
                Paid,
                Delivering,
                Delivered,
                PartiallyDelivered,
                NeedsAttention,
            ],
        }
    }

    /// The state the move leads to.
    pub fn to(self) -> MarketOrderState {
        use MarketOrderState::*;
        match self {
            MarketMove::Pay => Paid,
            MarketMove::StartDelivery => Delivering,
            MarketMove::Deliver => Delivered,
            MarketMove::DeliverPart => PartiallyDelivered,
            MarketMove::NeedAttention => NeedsAttention,
            MarketMove::Cancel => Cancelled,
            MarketMove::Refund => Refunded,
        }
    }

    /// The source states as an SQL list, for `WHERE state IN (…)`.
    pub fn from_sql(self) -> String {
        self.from()
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Where a marketplace order's news came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A push from the marketplace.
    Push,
    /// The reconciliation poll of the marketplace's order list.
    Poll,
    /// A call of Cartwright's API.
    Api,
    /// The browser extension on the seller centre.
    Extension,
    /// An operator.
    Operator,
    /// Cartwright itself (a delivery's progress).
    Cartwright,
}

impl Source {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Push => "push",
            Source::Poll => "poll",
            Source::Api => "api",
            Source::Extension => "extension",
            Source::Operator => "operator",
            Source::Cartwright => "cartwright",
        }
    }
}

impl FromStr for Source {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [
            Source::Push,
            Source::Poll,
            Source::Api,
            Source::Extension,
            Source::Operator,
            Source::Cartwright,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
        .ok_or_else(|| format!("unknown source {s:?}"))
    }
}

/// What a marketplace says about an order's payment, in our terms: the part of its status
/// that ingestion acts on. Delivery states are Cartwright's own and never come from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reported {
    /// Not paid yet.
    Unpaid,
    /// Paid.
    Paid,
    /// Cancelled (or being cancelled).
    Cancelled,
    /// Refunded or returned.
    Refunded,
}

impl Reported {
    /// How far along it is: a report never moves an order back to an earlier one.
    pub fn rank(self) -> u8 {
        match self {
            Reported::Unpaid => 0,
            Reported::Paid => 1,
            Reported::Cancelled => 2,
            Reported::Refunded => 3,
        }
    }
}

/// Maps a Shopee order status onto what it says of payment. `READY_TO_SHIP` means paid for an
/// order not paid on delivery; a cash-on-delivery order is paid only once completed.
pub fn shopee_status(status: &str, cash_on_delivery: bool) -> Option<Reported> {
    Some(match status {
        "UNPAID" | "INVOICE_PENDING" => Reported::Unpaid,
        "READY_TO_SHIP" | "PROCESSED" | "RETRY_SHIP" | "SHIPPED" | "TO_CONFIRM_RECEIVE"
            if cash_on_delivery =>
        {
            Reported::Unpaid
        }
        "READY_TO_SHIP" | "PROCESSED" | "RETRY_SHIP" | "SHIPPED" | "TO_CONFIRM_RECEIVE"
        | "COMPLETED" => Reported::Paid,
        "IN_CANCEL" | "CANCELLED" => Reported::Cancelled,
        "TO_RETURN" => Reported::Refunded,
        _ => return None,
    })
}

/// A seller-centre status label, as the extension reads it (English or Indonesian), mapped
/// like [`shopee_status`].
pub fn seller_centre_label(label: &str) -> Option<Reported> {
    let l = label.trim().to_lowercase();
    Some(match l.as_str() {
        "unpaid" | "belum bayar" => Reported::Unpaid,
        "to ship" | "perlu dikirim" | "shipping" | "dikirim" | "completed" | "selesai" => {
            Reported::Paid
        }
        "cancelled" | "batal" | "dibatalkan" => Reported::Cancelled,
        "return/refund" | "pengembalian" => Reported::Refunded,
        _ => return None,
    })
}

/// Whether a report seen at `at` (the marketplace's update time) may change what an order
/// holds from one seen at `held_at`: a newer report always may; an equal time only to a
/// status further along; an older report never. So the same order told by three paths ends
/// as the newest said, whatever order the paths arrive in.
pub fn report_applies(
    held: Reported,
    held_at: time::OffsetDateTime,
    new: Reported,
    at: time::OffsetDateTime,
) -> bool {
    at > held_at || (at == held_at && new.rank() > held.rank())
}

/// A buyer as the marketplace names them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Buyer {
    /// Their name or user name.
    #[serde(default)]
    pub name: Option<String>,
    /// Their id on the marketplace.
    #[serde(default)]
    pub id: Option<String>,
    /// Their e-mail, when the marketplace gives it.
    #[serde(default)]
    pub email: Option<String>,
}

/// One line of an order as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IncomingLine {
    /// The marketplace's item id.
    #[serde(default)]
    pub item_id: String,
    /// The item's model (variant) id.
    #[serde(default)]
    pub model_id: String,
    /// The seller's SKU for it.
    #[serde(default)]
    pub seller_sku: String,
    /// What it is called.
    pub name: String,
    /// Units bought.
    pub quantity: u32,
    /// Price of a unit, in minor units.
    #[serde(default)]
    pub unit_price_minor: Option<i64>,
}

/// An order as a marketplace (or the extension, or an API caller) reports it: every path of
/// ingestion brings one of these, and the same order reported by three paths is one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IncomingOrder {
    /// The marketplace (`shopee`, `demo`).
    pub marketplace: String,
    /// The shop on it.
    pub shop_id: String,
    /// The marketplace's order number.
    pub external_id: String,
    /// The buyer.
    #[serde(default)]
    pub buyer: Buyer,
    /// What was bought (empty when only the status is known yet).
    #[serde(default)]
    pub lines: Vec<IncomingLine>,
    /// The total paid, in minor units.
    #[serde(default)]
    pub total_minor: Option<i64>,
    /// Its currency (`IDR`).
    #[serde(default)]
    pub currency: Option<String>,
    /// How it is paid (`cod` for cash on delivery).
    #[serde(default)]
    pub payment_method: Option<String>,
    /// What the marketplace says of its payment.
    pub status: Reported,
    /// When the marketplace last changed it: an older report never overwrites a newer one.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: time::OffsetDateTime,
}

impl IncomingOrder {
    /// Checks what every path must give: names that fit, lines with units, at most 100 lines.
    pub fn check(&self) -> Result<(), crate::Invalid> {
        use crate::Invalid;
        let word = |field: &str, v: &str, max: usize| {
            let v = v.trim();
            if v.is_empty() || v.chars().count() > max || v.chars().any(char::is_control) {
                Err(Invalid::new(
                    field,
                    format!("must be one line of 1 to {max} characters"),
                ))
            } else {
                Ok(())
            }
        };
        word("marketplace", &self.marketplace, 40)?;
        word("shop_id", &self.shop_id, 100)?;
        word("external_id", &self.external_id, 100)?;
        if self.lines.len() > 100 {
            return Err(Invalid::new("lines", "must be at most 100 lines"));
        }
        for (i, line) in self.lines.iter().enumerate() {
            word(&format!("lines[{i}].name"), &line.name, 300)?;
            if !(1..=10_000).contains(&line.quantity) {
                return Err(Invalid::new(
                    format!("lines[{i}].quantity"),
                    "must be between 1 and 10,000",
                ));
            }
            if line.item_id.trim().is_empty() && line.seller_sku.trim().is_empty() {
                return Err(Invalid::new(
                    format!("lines[{i}]"),
                    "needs the marketplace's item_id or the seller's seller_sku, to find its product",
                ));
            }
        }
        Ok(())
    }

    /// Whether it is paid on delivery.
    pub fn cash_on_delivery(&self) -> bool {
        self.payment_method
            .as_deref()
            .is_some_and(|m| m.eq_ignore_ascii_case("cod") || m.to_lowercase().contains("cash"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goods_go_out_only_once_paid_and_a_cancellation_after_is_a_refund() {
        use MarketOrderState::*;
        assert!(!Unpaid.can_move_to(Delivering), "nothing goes out unpaid");
        assert!(Paid.can_move_to(Delivering));
        assert!(
            !Delivered.can_move_to(Cancelled),
            "after delivery it is a refund"
        );
        assert!(Delivered.can_move_to(Refunded));
        assert!(NeedsAttention.can_move_to(Delivering), "stock arrived");
        assert!(!Refunded.can_move_to(Paid) && !Cancelled.can_move_to(Paid));
        for s in MarketOrderState::ALL {
            assert_eq!(s.as_str().parse::<MarketOrderState>().unwrap(), s);
        }
        assert_eq!(MarketMove::Pay.from_sql(), "'unpaid'");
    }

    #[test]
    fn shopee_statuses_and_seller_centre_labels_say_when_it_is_paid() {
        assert_eq!(shopee_status("READY_TO_SHIP", false), Some(Reported::Paid));
        assert_eq!(shopee_status("READY_TO_SHIP", true), Some(Reported::Unpaid));
        assert_eq!(shopee_status("COMPLETED", true), Some(Reported::Paid));
        assert_eq!(shopee_status("IN_CANCEL", false), Some(Reported::Cancelled));
        assert_eq!(shopee_status("NO_SUCH", false), None);
        assert_eq!(seller_centre_label("Perlu Dikirim"), Some(Reported::Paid));
        assert_eq!(seller_centre_label(" Belum Bayar "), Some(Reported::Unpaid));
        assert_eq!(seller_centre_label("Batal"), Some(Reported::Cancelled));
    }

    #[test]
    fn an_older_report_never_overwrites_a_newer_one() {
        let t = |s| time::OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(s);
        assert!(report_applies(
            Reported::Unpaid,
            t(10),
            Reported::Paid,
            t(20)
        ));
        assert!(!report_applies(
            Reported::Paid,
            t(20),
            Reported::Unpaid,
            t(10)
        ));
        assert!(report_applies(
            Reported::Unpaid,
            t(20),
            Reported::Paid,
            t(20)
        ));
        assert!(!report_applies(
            Reported::Paid,
            t(20),
            Reported::Unpaid,
            t(20)
        ));
        assert!(
            report_applies(Reported::Paid, t(20), Reported::Unpaid, t(30)),
            "a newer report wins even backwards (the marketplace says so)"
        );
    }
}
