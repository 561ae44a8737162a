//! A rehearsal: every phase of an order up to, never including, the final click, for one
//! account, with each step recorded (what its selector's alternatives matched, how long it
//! took, a screenshot). How a profile for a real shop is written without spending money.

use super::{Ended, RunLog};
use crate::engine::Engine;
use crate::flow::{Failure, Flow, StepRecord};
use cartwright_core::account::SessionStatus;
use cartwright_core::batch::NewBatch;
use cartwright_core::ids::{AccountId, StorefrontId};
use cartwright_core::order::{ErrorClass, Level, Totals};
use cartwright_store::RunRecord;
use std::sync::{Arc, Mutex};

/// What to rehearse: the batch's cart, address, payment and coupon for one account.
#[derive(Debug, Clone)]
pub struct Rehearsal {
    /// The storefront.
    pub storefront: StorefrontId,
    /// The account whose session is used.
    pub account: AccountId,
    /// The order as a batch would ask it (its account selection is not used).
    pub spec: NewBatch,
}

/// What a rehearsal did.
#[derive(Debug)]
pub struct RehearsalReport {
    /// Every step run, in order.
    pub steps: Vec<StepRecord>,
    /// The run's log.
    pub log: Vec<(Level, String)>,
    /// The totals read, when the cart got that far.
    pub totals: Option<Totals>,
    /// The coupon applied.
    pub coupon: Option<String>,
    /// Ready for the final click (which was not made), or why not.
    pub outcome: Result<(), Failure>,
}

impl Engine {
    /// Runs every phase of an order up to the final click, which it never makes, recording
    /// each step. The account's refreshed cookies are written back as after a run.
    pub async fn rehearse(self: &Arc<Self>, r: &Rehearsal) -> RehearsalReport {
        let log = RunLog::kept(self, r.account);
        let recorder = Mutex::new(Vec::new());
        let mut record = RunRecord::default();
        let outcome = self.rehearse_in(r, &log, &recorder, &mut record).await;
        log.say(
            Level::Info,
            match &outcome {
                Ok(()) => {
                    "rehearsal finished: ready for the final click, which a rehearsal never makes"
                        .to_owned()
                }
                Err(f) => format!("rehearsal stopped: {f}"),
            },
        );
        RehearsalReport {
            steps: recorder.into_inner().unwrap_or_else(|p| p.into_inner()),
            log: log.lines(),
            totals: record.totals,
            coupon: record.coupon,
            outcome,
        }
    }

    async fn rehearse_in(
        self: &Arc<Self>,
        r: &Rehearsal,
        log: &RunLog,
        recorder: &Mutex<Vec<StepRecord>>,
        record: &mut RunRecord,
    ) -> Result<(), Failure> {
        let prepared = self.prepare_for(r.storefront, r.account, &r.spec).await?;
        let session = self.open(&prepared).await?;
        let ended = {
            let mut flow = Flow::new(
                &session,
                &prepared.profile,
                prepared.base_url.clone(),
                prepared.context.clone(),
                log,
            );
            flow.record_into(recorder);
            self.ready_to_click(&r.spec, &prepared, &mut flow, record, log)
                .await
        };
        let (status, outcome) = match ended {
            Ok(_) => (SessionStatus::Ok, Ok(())),
            Err(Ended::Failed(f)) if f.class == ErrorClass::SessionExpired => {
                (SessionStatus::LoggedOut, Err(f))
            }
            Err(Ended::Failed(f)) => (SessionStatus::Ok, Err(f)),
            Err(_) => (
                SessionStatus::Unknown,
                Err(Failure::new(
                    ErrorClass::Transient,
                    "the rehearsal was stopped",
                )),
            ),
        };
        self.write_back(&session, &prepared, r.account, status, log)
            .await;
        session.close().await;
        outcome
    }
}
