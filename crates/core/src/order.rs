//! An order's life, in one place: the states an order of a batch goes through and exactly the
//! moves allowed between them. The irreversible click happens only in `Placing`; an order found
//! in `Placing` after a crash is resolved from the storefront's history, never clicked again.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use utoipa::ToSchema;

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    /// Waiting for a worker.
    Queued,
    /// A worker is driving the browser: signing in, filling the cart, checking out.
    Running,
    /// The final click is being (or was) sent. From here the order is placed or not, and only
    /// the storefront's order history can say which.
    Placing,
    /// Placed; the storefront's order number is known.
    Placed,
    /// Not placed, for the reason in its error class.
    Failed,
    /// Stopped by an operator before it was placed.
    Cancelled,
    /// Not attempted: the account could not take part (inactive, no cookies).
    Skipped,
}

impl OrderState {
    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::Queued => "queued",
            OrderState::Running => "running",
            OrderState::Placing => "placing",
            OrderState::Placed => "placed",
            OrderState::Failed => "failed",
            OrderState::Cancelled => "cancelled",
            OrderState::Skipped => "skipped",
        }
    }

    /// Whether nothing more will happen to the order.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            OrderState::Placed | OrderState::Failed | OrderState::Cancelled | OrderState::Skipped
        )
    }

    /// Whether the order may move to `next`.
    ///
    /// - `Queued` → `Running` (a worker starts), `Cancelled` (stopped), `Skipped`.
    /// - `Running` → `Placing` (about to click), `Queued` (a transient failure, to retry),
    ///   `Failed`, `Cancelled` (stopped between steps), `Skipped`.
    /// - `Placing` → `Placed`, `Failed` (refused before the order existed, or unresolvable), and
    ///   `Queued` only once the history shows the order was not placed. Never `Cancelled`:
    ///   a click in flight completes.
    /// - Final states do not move, except `Cancelled` → `Queued` when a stopped batch resumes.
    pub fn can_move_to(self, next: OrderState) -> bool {
        use OrderState::*;
        matches!(
            (self, next),
            (Queued, Running | Cancelled | Skipped)
                | (Running, Placing | Queued | Failed | Cancelled | Skipped)
                | (Placing, Placed | Failed | Queued)
                | (Cancelled, Queued)
        )
    }
}

impl fmt::Display for OrderState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OrderState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "queued" => OrderState::Queued,
            "running" => OrderState::Running,
            "placing" => OrderState::Placing,
            "placed" => OrderState::Placed,
            "failed" => OrderState::Failed,
            "cancelled" => OrderState::Cancelled,
            "skipped" => OrderState::Skipped,
            _ => return Err(format!("unknown order state {s:?}")),
        })
    }
}

/// Why an order failed, which decides what happens next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// A timeout, a 5xx, a network error: retried with backoff up to a limit.
    Transient,
    /// The storefront signed the account out: the account is marked, no retry.
    SessionExpired,
    /// The storefront refused for a business reason (out of stock, cart above its cap, no
    /// coupon when one was required): no retry.
    Business,
    /// The profile does not match the page (no selector matched): no retry; the snapshot says
    /// what the page looked like.
    Profile,
    /// The browser cannot run at all: the batch pauses.
    Fatal,
    /// The order was being placed when the run was lost and the history could not settle
    /// whether it exists: an operator must look. Never retried.
    Unresolved,
}

impl ErrorClass {
    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::SessionExpired => "session_expired",
            ErrorClass::Business => "business",
            ErrorClass::Profile => "profile",
            ErrorClass::Fatal => "fatal",
            ErrorClass::Unresolved => "unresolved",
        }
    }

    /// Whether another attempt may help.
    pub fn retryable(self) -> bool {
        self == ErrorClass::Transient
    }
}

impl FromStr for ErrorClass {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "transient" => ErrorClass::Transient,
            "session_expired" => ErrorClass::SessionExpired,
            "business" => ErrorClass::Business,
            "profile" => ErrorClass::Profile,
            "fatal" => ErrorClass::Fatal,
            "unresolved" => ErrorClass::Unresolved,
            _ => return Err(format!("unknown error class {s:?}")),
        })
    }
}

/// An order of a batch, as stored.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Order {
    /// Identifier.
    pub id: crate::ids::OrderId,
    /// Its batch.
    pub batch_id: crate::ids::BatchId,
    /// The account it is placed from.
    pub account_id: crate::ids::AccountId,
    /// The account's label, email or phone, for display.
    pub account: Option<String>,
    /// Which of the account's orders in the batch (from 1).
    pub repetition: u32,
    /// Where it stands.
    pub state: OrderState,
    /// Runs so far.
    pub attempts: u32,
    /// Why it failed.
    pub error_class: Option<ErrorClass>,
    /// What went wrong, or what was retried.
    pub error_message: Option<String>,
    /// Cart value before discounts, in minor units.
    pub subtotal_minor: Option<i64>,
    /// Discount, in minor units.
    pub discount_minor: Option<i64>,
    /// What the order costs, in minor units.
    pub total_minor: Option<i64>,
    /// The coupon applied.
    pub coupon: Option<String>,
    /// The storefront's order number.
    pub order_number: Option<String>,
    /// Milliseconds per phase.
    pub timings: std::collections::BTreeMap<String, u64>,
    /// A screenshot of the failure was kept.
    pub has_screenshot: bool,
    /// The page's HTML at the failure was kept.
    pub has_snapshot: bool,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: time::OffsetDateTime,
    /// When its last run started.
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<time::OffsetDateTime>,
    /// When the final click went out.
    #[serde(with = "time::serde::rfc3339::option")]
    pub placing_at: Option<time::OffsetDateTime>,
    /// When it ended.
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<time::OffsetDateTime>,
}

/// A cart's figures as read from the storefront, in minor units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Totals {
    /// Before discounts (the MRP sum when the site shows it).
    pub subtotal_minor: Option<i64>,
    /// Discount.
    pub discount_minor: Option<i64>,
    /// What will be paid.
    pub total_minor: i64,
}

/// How loud an event is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Each step.
    Debug,
    /// Progress: phases, results.
    Info,
    /// Something went wrong but the run goes on.
    Warn,
    /// The run failed.
    Error,
}

impl Level {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

impl FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "debug" => Level::Debug,
            "info" => Level::Info,
            "warn" => Level::Warn,
            "error" => Level::Error,
            _ => return Err(format!("unknown level {s:?}: debug, info, warn or error")),
        })
    }
}

/// One line of a run's log: a step, a phase, a result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    /// Identifier, increasing.
    pub id: crate::ids::EventId,
    /// The batch.
    pub batch_id: Option<crate::ids::BatchId>,
    /// The order.
    pub order_id: Option<crate::ids::OrderId>,
    /// The rewards run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewards_run_id: Option<crate::ids::RewardsRunId>,
    /// The account.
    pub account_id: Option<crate::ids::AccountId>,
    /// The phase (`add_item`).
    pub phase: Option<String>,
    /// The step (`2.1`).
    pub step: Option<String>,
    /// How loud.
    pub level: Level,
    /// What happened.
    pub message: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: time::OffsetDateTime,
}

/// An event before it is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// The batch.
    pub batch_id: Option<crate::ids::BatchId>,
    /// The order.
    pub order_id: Option<crate::ids::OrderId>,
    /// The rewards run.
    pub rewards_run_id: Option<crate::ids::RewardsRunId>,
    /// The account.
    pub account_id: Option<crate::ids::AccountId>,
    /// The phase.
    pub phase: Option<String>,
    /// The step.
    pub step: Option<String>,
    /// How loud.
    pub level: Level,
    /// What happened.
    pub message: String,
    /// When.
    pub at: time::OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::OrderState::*;
    use super::*;

    #[test]
    fn a_click_in_flight_cannot_be_cancelled_or_repeated_blindly() {
        assert!(Running.can_move_to(Placing));
        assert!(!Placing.can_move_to(Cancelled));
        assert!(
            !Placing.can_move_to(Running),
            "a placing order is resolved, not rerun"
        );
        assert!(
            Placing.can_move_to(Queued),
            "only after the history shows it was not placed"
        );
        assert!(!Placed.can_move_to(Queued));
        assert!(
            !Queued.can_move_to(Placing),
            "the click needs a running session"
        );
        for s in [Queued, Running, Placing, Placed, Failed, Cancelled, Skipped] {
            assert_eq!(s.as_str().parse::<OrderState>().unwrap(), s);
            assert!(!s.can_move_to(s), "{s} does not move to itself");
        }
        assert!(Cancelled.can_move_to(Queued), "a stopped batch resumes");
        assert!(!Failed.can_move_to(Queued));
        assert!(ErrorClass::Transient.retryable() && !ErrorClass::Business.retryable());
    }
}
