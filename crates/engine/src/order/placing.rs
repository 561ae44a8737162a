//! The final click, in one place. Placing an order spends real money and cannot be undone, so
//! this module holds the one rule Cartwright must never break: **no order is placed twice**.
//!
//! 1. Before the click the order is recorded `placing`, with the account's order history as
//!    it stood, in one statement that also checks the order still runs, its batch was not
//!    stopped, and this worker still holds its job's lease ([`Engine::mark_placing`]). Only
//!    that record yields a [`ClickPermit`], and only a permit runs the `place` and `confirm`
//!    phases ([`Flow::final_click`]).
//! 2. From then on the order leaves `placing` only on positive evidence, judged by
//!    `cartwright_core::placing`: a confirmation with the order's number, or the history read
//!    successfully after the click showing one new order (placed); or read successfully over
//!    the profile's window never showing it (not placed: it runs again, or fails for the
//!    storefront's refusal, if the profile says its history lists every order; otherwise a
//!    person decides). Several new orders also go to a person.
//! 3. Anything else (the history unreadable, the browser gone, a timeout, a signed-out
//!    session, a crash, a lost lease) keeps the order `placing`. It is looked at again with
//!    backoff, in this run for a while and then by its job in a fresh session, for as long as
//!    it takes — never clicked again.
//!
//! The store allows the moves out of `placing` only as `cartwright_core::order::OrderMove`s
//! that carry this evidence, or a person's decision.

use super::{RunLog, history_of};
use crate::engine::Engine;
use crate::flow::{Flow, FlowError};
use crate::profile::{Phase, Profile};
use cartwright_core::ids::OrderId;
use cartwright_core::order::{ErrorClass, Level};
use cartwright_core::placing::{Look, Refusal, Settling, Verdict, look_at};
use cartwright_store::{Lease, Marked, OrderTicket, RunRecord, StoreError};
use std::collections::HashSet;
use std::time::Duration;
use tokio::time::Instant;

/// Proof that an order is recorded `placing` (its history snapshot kept, the lease held):
/// what running the `place` and `confirm` phases requires.
#[derive(Debug)]
pub struct ClickPermit {
    order: OrderId,
}

impl ClickPermit {
    /// The order it was given for.
    pub fn order(&self) -> OrderId {
        self.order
    }

    /// A permit with no order recorded behind it, for driving a profile's phases by hand in
    /// the engine's own tests: nothing else may click without the record.
    #[cfg(feature = "testing")]
    pub fn unrecorded() -> Self {
        ClickPermit { order: OrderId(0) }
    }
}

/// Where a placing order stands after a run looked at it.
#[derive(Debug)]
pub(crate) enum Settled {
    /// Placed; `settling` holds the evidence when it came from the history.
    Placed {
        number: String,
        settling: Option<Settling>,
    },
    /// The history proves the click placed nothing: it runs again.
    NotPlaced(Settling),
    /// The storefront refused, and the history proves nothing was placed.
    Refused(Refusal, Settling),
    /// A person must decide.
    Unresolved(String, Option<Settling>),
    /// Nothing proven yet (the evidence so far is kept with the order): look again after
    /// `next_look`, in a fresh session.
    StillPlacing { next_look: Duration },
    /// No longer this run's to settle: someone settled it meanwhile, or this worker lost the
    /// order's job to another.
    Gone,
}

impl Engine {
    /// Records the order `placing` just before the final click: the permit to click, or why
    /// the click must not happen (the order stopped running, its batch was stopped or
    /// paused, or this worker's lease on the job ran out).
    pub(crate) async fn mark_placing(
        &self,
        order: OrderId,
        lease: &Lease,
        history_before: &[String],
        record: &RunRecord,
    ) -> Result<Result<ClickPermit, Marked>, StoreError> {
        Ok(
            match self
                .store
                .mark_placing(order, lease, history_before, record)
                .await?
            {
                Marked::Placing => Ok(ClickPermit { order }),
                refused => Err(refused),
            },
        )
    }

    /// The final click and the confirmation; when the confirmation does not show the order's
    /// number, the order is settled from the history.
    pub(crate) async fn click_and_confirm(
        &self,
        flow: &mut Flow<'_>,
        permit: &ClickPermit,
        ticket: &OrderTicket,
        lease: &Lease,
        before: &[String],
        log: &RunLog,
    ) -> Settled {
        // Only what this confirmation shows counts, and a number the history had before the
        // click is not this order's.
        flow.unset("order_number");
        let why = match flow.final_click(permit).await {
            Ok(()) => match flow
                .var("order_number")
                .and_then(serde_json::Value::as_str)
                .map(str::trim)
                .filter(|n| !n.is_empty() && !before.iter().any(|b| b == n))
            {
                Some(number) => {
                    return Settled::Placed {
                        number: number.to_owned(),
                        settling: None,
                    };
                }
                None => Settling::new("the confirmation showed no order number"),
            },
            Err(FlowError::Failed(f)) => {
                let mut settling = Settling::new(f.to_string());
                // Only the storefront's own words count as a refusal; a signed-out page after
                // the click says nothing about the order.
                if f.class == ErrorClass::Business {
                    settling.refusal = Some(Refusal {
                        class: f.class,
                        message: f.to_string(),
                    });
                }
                settling
            }
            Err(FlowError::Stopped) => Settling::new("the run was stopped after the click"),
        };
        log.say(
            Level::Warn,
            format!(
                "the final click's outcome is not known ({}): settling it from the order history, never by clicking again",
                why.why
            ),
        );
        self.settle(flow, ticket, lease, before, why, log).await
    }

    /// Looks at the history until the evidence proves something, or this run's share of
    /// looking is over.
    pub(crate) async fn settle(
        &self,
        flow: &mut Flow<'_>,
        ticket: &OrderTicket,
        lease: &Lease,
        before: &[String],
        mut settling: Settling,
        log: &RunLog,
    ) -> Settled {
        let profile = flow.profile();
        let rule = profile.history.rule;
        let timing = self.config.settle;
        let until = Instant::now() + timing.in_run;
        loop {
            let look = self.look(flow, profile, ticket, before).await;
            let verdict = settling.record(look.clone(), self.clock().await, &rule);
            say_look(log, &look, &settling);
            match self
                .store
                .record_settling(ticket.order.id, &settling, lease)
                .await
            {
                Ok(true) => {}
                // Settled elsewhere meanwhile, or this worker lost the job: not ours to say.
                Ok(false) => return Settled::Gone,
                Err(e) => tracing::debug!(error = %e, "keeping the evidence"),
            }
            match verdict {
                Verdict::Placed(number) => {
                    log.say(Level::Info, format!("found order {number} in the history"));
                    return Settled::Placed {
                        number,
                        settling: Some(settling),
                    };
                }
                Verdict::RunAgain => return Settled::NotPlaced(settling),
                Verdict::Refused(refusal) => return Settled::Refused(refusal, settling),
                Verdict::Unresolved(why) => return Settled::Unresolved(why, Some(settling)),
                Verdict::KeepLooking => {}
            }
            let wait = settling.next_look_in(timing.first, timing.max, &rule);
            if Instant::now() + wait > until {
                return Settled::StillPlacing { next_look: wait };
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// One read of the history, compared with the one taken before the click.
    async fn look(
        &self,
        flow: &mut Flow<'_>,
        profile: &Profile,
        ticket: &OrderTicket,
        before: &[String],
    ) -> Look {
        let known: HashSet<String> = match self
            .store
            .account_order_numbers(ticket.order.account_id)
            .await
        {
            Ok(k) => k.into_iter().collect(),
            Err(e) => return Look::Unreadable(format!("the database failed: {e}")),
        };
        flow.unset("history");
        if let Err(e) = flow.phase(Phase::FindInHistory).await {
            return Look::Unreadable(e.to_string());
        }
        let history = history_of(flow);
        let empty_shown = match &profile.history.empty {
            Some(empty) if history.is_empty() => {
                flow.count(empty, "present").await.unwrap_or(0) > 0
            }
            _ => false,
        };
        look_at(&history, before, &known, empty_shown)
    }

    /// Notes a look that could not even open the history (no session, no browser) and says
    /// when to look again.
    pub(crate) async fn could_not_look(
        &self,
        ticket: &OrderTicket,
        lease: &Lease,
        settling: &mut Settling,
        why: String,
        log: &RunLog,
    ) -> Duration {
        let profile_rule = self
            .profile_of(ticket)
            .await
            .map(|p| p.history.rule)
            .unwrap_or_else(|| crate::profile::History::default().rule);
        let look = Look::Unreadable(why);
        settling.record(look.clone(), self.clock().await, &profile_rule);
        say_look(log, &look, settling);
        if let Err(e) = self
            .store
            .record_settling(ticket.order.id, settling, lease)
            .await
        {
            tracing::debug!(error = %e, "keeping the evidence");
        }
        let timing = self.config.settle;
        settling.next_look_in(timing.first, timing.max, &profile_rule)
    }
}

impl Engine {
    /// When a look happens, by the database's clock (this node's when the database does not
    /// answer): the absence window is measured by one clock whichever node looks.
    async fn clock(&self) -> time::OffsetDateTime {
        self.store
            .clock_now()
            .await
            .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
    }
}

fn say_look(log: &RunLog, look: &Look, settling: &Settling) {
    let (level, text) = match look {
        Look::Found(n) => (Level::Info, format!("the history shows new order {n}")),
        Look::Several(ns) => (
            Level::Warn,
            format!(
                "the history shows {} new orders: {}",
                ns.len(),
                ns.join(", ")
            ),
        ),
        Look::Absent => (
            Level::Info,
            format!(
                "the history does not show the order (read {} time{} without it)",
                settling.absent_reads,
                if settling.absent_reads == 1 { "" } else { "s" }
            ),
        ),
        Look::Unreadable(why) => (
            Level::Warn,
            format!("the history could not be read ({why}): the order stays placing"),
        ),
    };
    log.say(level, format!("look {}: {text}", settling.looks));
}
