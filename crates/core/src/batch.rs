//! A batch: the same cart ordered for many accounts. What an operator submits, checked before
//! anything runs so that a mistake is refused with the field named, not discovered per order.

use crate::Invalid;
use crate::ids::{AddressId, ProductId};
use crate::money::Money;
use crate::selection::SelectionRequest;
use crate::values::Text;
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use utoipa::ToSchema;

/// Most lines one cart may have.
pub const MAX_LINES: usize = 20;
/// Most units of one product per line.
pub const MAX_QUANTITY: u32 = 10;
/// Most orders per account in one batch.
pub const MAX_REPETITIONS: u32 = 20;
/// Most runs one order may be given.
pub const MAX_RUNS: u32 = 20;

/// One line of the cart every order of the batch builds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CartLine {
    /// The product.
    pub product_id: ProductId,
    /// Units, 1 to 10.
    pub quantity: u32,
}

/// Which coupon an order applies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CouponPolicy {
    /// None.
    #[default]
    None,
    /// The first one the storefront offers and accepts.
    First,
    /// The one that lowers the total most.
    Best,
    /// The first one offered; the order fails (business) when none applies.
    Required,
}

impl CouponPolicy {
    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            CouponPolicy::None => "none",
            CouponPolicy::First => "first",
            CouponPolicy::Best => "best",
            CouponPolicy::Required => "required",
        }
    }
}

impl FromStr for CouponPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "none" => CouponPolicy::None,
            "first" => CouponPolicy::First,
            "best" => CouponPolicy::Best,
            "required" => CouponPolicy::Required,
            _ => return Err(format!("unknown coupon policy {s:?}")),
        })
    }
}

/// How an order is paid. Only methods that need no buyer at the keyboard: cash on delivery, or a
/// method the storefront has saved for the account, chosen by its label. Card numbers and
/// security codes are never taken, stored or typed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", tag = "method")]
pub enum Payment {
    /// Cash on delivery.
    #[default]
    CashOnDelivery,
    /// A method the storefront already keeps for the account, picked by the label it shows.
    Saved {
        /// The label as the storefront shows it (e.g. `UPI ending 4821`).
        label: Text,
    },
}

/// A batch as submitted.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBatch {
    /// A name for operators.
    #[serde(default)]
    pub name: Option<Text>,
    /// Which accounts order.
    pub accounts: SelectionRequest,
    /// The cart.
    pub lines: Vec<CartLine>,
    /// Orders per account, 1 to 20.
    #[serde(default = "one")]
    pub repetitions: u32,
    /// Delivery address; the default address when absent.
    #[serde(default)]
    pub address_id: Option<AddressId>,
    /// Payment method.
    #[serde(default)]
    pub payment: Payment,
    /// Coupon policy.
    #[serde(default)]
    pub coupon: CouponPolicy,
    /// A coupon code to type in (the profile's `[coupons] code` steps, `{{coupon.code}}`):
    /// the order fails (business) when the storefront refuses it. Only with the policy
    /// `none` (the default) or `required`.
    #[serde(default)]
    pub coupon_code: Option<Text>,
    /// The shipping method as the storefront labels it (`{{shipping.label}}` in profiles);
    /// the profile's choice when absent.
    #[serde(default)]
    pub shipping: Option<Text>,
    /// No order is placed whose total is above this.
    pub max_total: Money,
    /// Empty the cart before adding the lines.
    #[serde(default = "yes")]
    pub clear_cart: bool,
    /// Delete the account's saved addresses first.
    #[serde(default)]
    pub clear_addresses: bool,
    /// Most runs of one order before it fails, 1 to 20: the batch's own, whichever process
    /// runs it. Set from the submitting process's `max_runs` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_runs: Option<u32>,
}

/// Where a batch stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BatchState {
    /// Its orders are being run.
    Running,
    /// Held by the engine (the browser cannot start): queued orders wait for a resume.
    Paused,
    /// Stopped by an operator: queued orders were cancelled; a resume queues them again.
    Stopped,
    /// Every order reached a final state.
    Finished,
}

impl BatchState {
    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            BatchState::Running => "running",
            BatchState::Paused => "paused",
            BatchState::Stopped => "stopped",
            BatchState::Finished => "finished",
        }
    }
}

impl FromStr for BatchState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "running" => BatchState::Running,
            "paused" => BatchState::Paused,
            "stopped" => BatchState::Stopped,
            "finished" => BatchState::Finished,
            _ => return Err(format!("unknown batch state {s:?}")),
        })
    }
}

/// How many of a batch's orders are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrderCounts {
    /// Waiting for a worker.
    pub queued: i64,
    /// Being driven.
    pub running: i64,
    /// The final click is out.
    pub placing: i64,
    /// Placed.
    pub placed: i64,
    /// Failed.
    pub failed: i64,
    /// Cancelled by a stop.
    pub cancelled: i64,
    /// Not attempted.
    pub skipped: i64,
    /// Clicked, and the evidence cannot say whether placed: a person must settle them.
    #[serde(default)]
    pub unresolved: i64,
    /// All of them.
    pub total: i64,
}

/// A batch as stored.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Batch {
    /// Identifier.
    pub id: crate::ids::BatchId,
    /// Operator's name for it.
    pub name: Option<String>,
    /// The storefront its accounts belong to.
    pub storefront_id: crate::ids::StorefrontId,
    /// What was submitted.
    pub spec: NewBatch,
    /// Where it stands.
    pub state: BatchState,
    /// Why the engine paused it.
    pub pause_reason: Option<String>,
    /// Who started it.
    pub created_by: Option<crate::ids::OperatorId>,
    /// Its orders by state.
    pub counts: OrderCounts,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: time::OffsetDateTime,
    /// When its last order ended.
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<time::OffsetDateTime>,
}

/// A batch's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BatchStats {
    /// Orders by state.
    pub counts: OrderCounts,
    /// Failed orders by error class.
    pub failed_by_class: std::collections::BTreeMap<String, i64>,
    /// Sum of the placed orders' totals, in minor units.
    pub placed_total_minor: i64,
    /// Sum of their discounts, in minor units.
    pub discount_minor: i64,
    /// Time from start to end of finished orders, in milliseconds: median.
    pub duration_p50_ms: Option<i64>,
    /// 95th percentile.
    pub duration_p95_ms: Option<i64>,
    /// Mean.
    pub duration_mean_ms: Option<i64>,
    /// Placed orders per minute from the first start to the last end.
    pub placed_per_minute: Option<f64>,
}

fn one() -> u32 {
    1
}

fn yes() -> bool {
    true
}

impl NewBatch {
    /// Checks the rules that involve more than one value. (The selection, the products and the
    /// address are checked against the store.)
    pub fn check(&self) -> Result<(), Invalid> {
        if self.lines.is_empty() {
            return Err(Invalid::new("lines", "the cart needs at least one line"));
        }
        if self.lines.len() > MAX_LINES {
            return Err(Invalid::new("lines", format!("at most {MAX_LINES} lines")));
        }
        for (i, line) in self.lines.iter().enumerate() {
            if !(1..=MAX_QUANTITY).contains(&line.quantity) {
                return Err(Invalid::new(
                    format!("lines[{i}].quantity"),
                    format!("must be 1 to {MAX_QUANTITY}"),
                ));
            }
            if self.lines[..i]
                .iter()
                .any(|l| l.product_id == line.product_id)
            {
                return Err(Invalid::new(
                    format!("lines[{i}].product_id"),
                    "is already in the cart; raise its quantity instead",
                ));
            }
        }
        if !(1..=MAX_REPETITIONS).contains(&self.repetitions) {
            return Err(Invalid::new(
                "repetitions",
                format!("must be 1 to {MAX_REPETITIONS}"),
            ));
        }
        if self.max_total.minor() == 0 {
            return Err(Invalid::new(
                "max_total",
                "must be above 0: it is the most an order may cost",
            ));
        }
        if let Some(runs) = self.max_runs
            && !(1..=MAX_RUNS).contains(&runs)
        {
            return Err(Invalid::new("max_runs", format!("must be 1 to {MAX_RUNS}")));
        }
        if self.coupon_code.is_some()
            && matches!(self.coupon, CouponPolicy::First | CouponPolicy::Best)
        {
            return Err(Invalid::new(
                "coupon_code",
                "names the coupon: the policy must be none or required, not first or best",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(json: serde_json::Value) -> Result<(), Invalid> {
        serde_json::from_value::<NewBatch>(json)
            .map_err(|e| Invalid::new("json", e.to_string()))?
            .check()
    }

    #[test]
    fn batches_are_checked_before_anything_runs() {
        let ok = serde_json::json!({"accounts": {"storefront_id": 1, "range": {"from": 1, "to": 5}},
            "lines": [{"product_id": 1, "quantity": 2}], "max_total": 1500});
        assert!(batch(ok.clone()).is_ok());
        let mut b = ok.clone();
        b["lines"] = serde_json::json!([]);
        assert_eq!(batch(b).unwrap_err().field, "lines");
        let mut b = ok.clone();
        b["lines"] = serde_json::json!([{"product_id": 1, "quantity": 11}]);
        assert_eq!(batch(b).unwrap_err().field, "lines[0].quantity");
        let mut b = ok.clone();
        b["lines"] =
            serde_json::json!([{"product_id": 1, "quantity": 1}, {"product_id": 1, "quantity": 1}]);
        assert_eq!(batch(b).unwrap_err().field, "lines[1].product_id");
        let mut b = ok.clone();
        b["repetitions"] = serde_json::json!(0);
        assert_eq!(batch(b).unwrap_err().field, "repetitions");
        let mut b = ok.clone();
        b["max_total"] = serde_json::json!(0);
        assert_eq!(batch(b).unwrap_err().field, "max_total");
        let mut b = ok;
        b["payment"] = serde_json::json!({"method": "card", "number": "4111"});
        assert!(batch(b).is_err(), "no card payments");
    }
}
