//! An order's life, in one place: the states an order of a batch goes through and every move
//! between them, named ([`OrderMove`]). The store writes a state only through one of these
//! moves and takes its allowed source states from here, so this file is the one source of
//! what can happen to an order. The irreversible click happens only in `Placing`; what may
//! take an order out of `Placing` is decided by [`crate::placing`].

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
    /// positive evidence says which: a confirmation with a number, or the storefront's order
    /// history read successfully.
    Placing,
    /// Placed; the storefront's order number is known.
    Placed,
    /// Not placed, for the reason in its error class.
    Failed,
    /// Stopped by an operator before it was placed (or settled by one as not placed).
    Cancelled,
    /// Not attempted: the account could not take part (inactive, no cookies).
    Skipped,
    /// The final click went out and the evidence cannot say whether the order exists (the
    /// history shows several new orders, or the profile does not trust an absence): a person
    /// must settle it. Never run again by itself.
    Unresolved,
}

impl OrderState {
    /// Every state, in the order they are shown.
    pub const ALL: [OrderState; 8] = [
        OrderState::Queued,
        OrderState::Running,
        OrderState::Placing,
        OrderState::Placed,
        OrderState::Failed,
        OrderState::Cancelled,
        OrderState::Skipped,
        OrderState::Unresolved,
    ];

    /// The states an order is created in: waiting, or skipped with the reason.
    pub const INITIAL: [OrderState; 2] = [OrderState::Queued, OrderState::Skipped];

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
            OrderState::Unresolved => "unresolved",
        }
    }

    /// Whether nothing more happens to the order by itself (an operator may still move a
    /// cancelled or unresolved one): its batch can end.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            OrderState::Queued | OrderState::Running | OrderState::Placing
        )
    }

    /// Whether the order may move to `next` by some [`OrderMove`].
    pub fn can_move_to(self, next: OrderState) -> bool {
        OrderMove::ALL
            .iter()
            .any(|m| m.to() == next && m.from().contains(&self))
    }

    /// The states that are not final, as an SQL list (`'queued', 'running', 'placing'`).
    pub fn open_sql() -> String {
        sql_list(OrderState::ALL.iter().copied().filter(|s| !s.is_final()))
    }
}

fn sql_list(states: impl Iterator<Item = OrderState>) -> String {
    states
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every move an order can make, by name. Each has the states it may start from and the
/// state it leads to; the store's SQL takes both from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderMove {
    /// A worker takes the order up: a queued one, or a running one whose run was lost before
    /// the final click (that run's attempt counts).
    Start,
    /// Recorded just before the final click, while the batch runs and the worker holds its
    /// job's lease.
    MarkPlacing,
    /// A run failed in a way another run may fix, before the final click.
    Retry,
    /// The batch paused while the order ran (the browser cannot run): it waits for the resume.
    Hold,
    /// Failed for good before the final click; or given up when picked up out of runs.
    Fail,
    /// Stopped by an operator before the final click.
    Cancel,
    /// A stopped batch resumes: what the stop cancelled waits again. (Orders a person settled
    /// as not placed are not among them: see the store's resume.)
    Resume,
    /// The confirmation showed the order's number, or the history, read after the click,
    /// showed exactly one new order.
    Confirm,
    /// The history, read successfully over the profile's window, never showed the order, and
    /// the profile says the history lists every order: it was not placed and runs again.
    RunAgain,
    /// The storefront refused the click, and the history, read successfully over the
    /// profile's window, never showed the order: it failed for the refusal's reason.
    Refused,
    /// The evidence cannot settle it (several new orders in the history, or an absence the
    /// profile does not trust): a person must.
    Unresolve,
    /// A person settled it as placed.
    ResolvePlaced,
    /// A person settled an unresolved order as not placed, and asked for another run.
    ResolveRunAgain,
    /// A person settled it as not placed, not to run again.
    ResolveNotPlaced,
    /// A person asked for the failed orders of a batch to run again (a fixed profile, fresh
    /// cookies, a shop back up). Only orders whose final click never went out.
    RetryFailed,
}

impl OrderMove {
    /// Every move.
    pub const ALL: [OrderMove; 15] = [
        OrderMove::Start,
        OrderMove::MarkPlacing,
        OrderMove::Retry,
        OrderMove::Hold,
        OrderMove::Fail,
        OrderMove::Cancel,
        OrderMove::Resume,
        OrderMove::Confirm,
        OrderMove::RunAgain,
        OrderMove::Refused,
        OrderMove::Unresolve,
        OrderMove::ResolvePlaced,
        OrderMove::ResolveRunAgain,
        OrderMove::ResolveNotPlaced,
        OrderMove::RetryFailed,
    ];

    /// The states the move may start from.
    pub fn from(self) -> &'static [OrderState] {
        use OrderState::*;
        match self {
            OrderMove::Start => &[Queued, Running],
            OrderMove::MarkPlacing | OrderMove::Retry | OrderMove::Hold => &[Running],
            OrderMove::Fail | OrderMove::Cancel => &[Queued, Running],
            OrderMove::Resume => &[Cancelled],
            OrderMove::Confirm
            | OrderMove::RunAgain
            | OrderMove::Refused
            | OrderMove::Unresolve => &[Placing],
            OrderMove::ResolvePlaced | OrderMove::ResolveNotPlaced => &[Placing, Unresolved],
            // Another run is the one thing a person cannot take back: only once the
            // automation has given the order up.
            OrderMove::ResolveRunAgain => &[Unresolved],
            OrderMove::RetryFailed => &[Failed],
        }
    }

    /// The state the move leads to.
    pub fn to(self) -> OrderState {
        use OrderState::*;
        match self {
            OrderMove::Start => Running,
            OrderMove::MarkPlacing => Placing,
            OrderMove::Retry
            | OrderMove::Hold
            | OrderMove::Resume
            | OrderMove::RunAgain
            | OrderMove::ResolveRunAgain
            | OrderMove::RetryFailed => Queued,
            OrderMove::Fail | OrderMove::Refused => Failed,
            OrderMove::Cancel | OrderMove::ResolveNotPlaced => Cancelled,
            OrderMove::Confirm | OrderMove::ResolvePlaced => Placed,
            OrderMove::Unresolve => Unresolved,
        }
    }

    /// Whether only an operator's decision makes this move.
    pub fn by_operator(self) -> bool {
        matches!(
            self,
            OrderMove::ResolvePlaced
                | OrderMove::ResolveRunAgain
                | OrderMove::ResolveNotPlaced
                | OrderMove::RetryFailed
        )
    }

    /// The source states as an SQL list, for `WHERE state IN (…)`.
    pub fn from_sql(self) -> String {
        sql_list(self.from().iter().copied())
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
        OrderState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| format!("unknown order state {s:?}"))
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
    /// What settling it after its final click has found, while that matters (`placing`,
    /// `unresolved`, or settled from the history).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settling: Option<crate::placing::Settling>,
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
        let by_itself = |from: OrderState, to: OrderState| {
            OrderMove::ALL
                .iter()
                .any(|m| !m.by_operator() && m.from().contains(&from) && m.to() == to)
        };
        assert!(Running.can_move_to(Placing));
        assert!(
            !by_itself(Placing, Cancelled),
            "a click in flight completes"
        );
        assert!(
            !Placing.can_move_to(Running),
            "a placing order is settled, not rerun"
        );
        // Out of placing only by evidence or by a person; never by a plain retry.
        for m in OrderMove::ALL {
            if m.from().contains(&Placing) {
                assert!(
                    matches!(
                        m,
                        OrderMove::Confirm
                            | OrderMove::RunAgain
                            | OrderMove::Refused
                            | OrderMove::Unresolve
                    ) || m.by_operator(),
                    "{m:?}"
                );
            }
        }
        assert!(!OrderMove::Retry.from().contains(&Placing));
        assert!(!Placed.can_move_to(Queued));
        assert!(
            !Queued.can_move_to(Placing),
            "the click needs a running session"
        );
        assert!(
            !by_itself(Unresolved, Queued) && Unresolved.can_move_to(Queued),
            "an unresolved order runs again only when a person says so"
        );
        for s in OrderState::ALL {
            assert_eq!(s.as_str().parse::<OrderState>().unwrap(), s);
        }
        assert!(
            Running.can_move_to(Running),
            "a run lost before the click starts again"
        );
        assert!(Cancelled.can_move_to(Queued), "a stopped batch resumes");
        assert!(
            !by_itself(Failed, Queued) && Failed.can_move_to(Queued),
            "a failed order runs again only when a person asks"
        );
        assert!(ErrorClass::Transient.retryable() && !ErrorClass::Business.retryable());
        assert_eq!(OrderState::open_sql(), "'queued', 'running', 'placing'");
        assert_eq!(OrderMove::Confirm.from_sql(), "'placing'");
    }

    #[test]
    fn every_state_is_reachable_and_every_open_state_can_end() {
        for s in OrderState::ALL {
            let reachable =
                OrderState::INITIAL.contains(&s) || OrderMove::ALL.iter().any(|m| m.to() == s);
            assert!(reachable, "{s} is reachable");
            if !s.is_final() {
                assert!(
                    OrderMove::ALL
                        .iter()
                        .any(|m| m.from().contains(&s) && m.to().is_final()),
                    "{s} can end"
                );
            }
        }
    }
}
