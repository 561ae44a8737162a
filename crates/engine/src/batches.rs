//! Batches as operators handle them: submitted (checked whole, then written with their orders
//! and jobs in one transaction), stopped, paused and resumed. The API, the dashboard, the CLI
//! and the demo all go through here.

use crate::engine::Engine;
use cartwright_core::Invalid;
use cartwright_core::batch::{Batch, NewBatch};
use cartwright_core::ids::{BatchId, OperatorId};
use cartwright_store::StoreError;

/// Why a batch request was not done.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The request is wrong: the field, and why.
    #[error("{}: {}", .0.field, .0.message)]
    Invalid(Invalid),
    /// The batch is in a state that refuses it (stopping a finished batch, say).
    #[error("{message}")]
    Refused {
        /// The field the refusal is about.
        field: String,
        /// Why.
        message: String,
    },
    /// There is no such batch.
    #[error("batch {0} does not exist")]
    NotFound(BatchId),
    /// The database failed.
    #[error("the database failed: {0}")]
    Store(StoreError),
}

impl From<Invalid> for BatchError {
    fn from(e: Invalid) -> Self {
        BatchError::Invalid(e)
    }
}

impl BatchError {
    fn from_store(e: StoreError, id: Option<BatchId>) -> Self {
        match e {
            StoreError::Invalid(i) => BatchError::Invalid(i),
            StoreError::Refused { field, message } => BatchError::Refused { field, message },
            StoreError::NotFound {
                entity: "batch",
                id: n,
            } => BatchError::NotFound(id.unwrap_or(BatchId(n))),
            e => BatchError::Store(e),
        }
    }
}

impl From<StoreError> for BatchError {
    fn from(e: StoreError) -> Self {
        BatchError::from_store(e, None)
    }
}

impl Engine {
    /// Checks a batch and writes it with its orders and jobs: the storefront and its profile,
    /// the products (of that storefront), the address (or the default one), read together in
    /// one snapshot, and the accounts the selection names. Accounts the selection matches but
    /// that cannot run (inactive, no cookies) get `skipped` orders saying why. Every problem is
    /// refused before anything is written, naming the field.
    pub async fn submit_batch(
        &self,
        spec: &NewBatch,
        created_by: Option<OperatorId>,
    ) -> Result<Batch, BatchError> {
        let (accounts, skipped) = self.check_batch(spec).await?;
        // The limit of runs goes with the batch: every process that runs it keeps it.
        let mut spec = spec.clone();
        spec.max_runs.get_or_insert(self.config.retry.max_runs);
        Ok(self
            .store
            .create_batch(&spec, &accounts, &skipped, created_by)
            .await?)
    }

    /// Rehearses a batch's order for the first account its selection can run, checked as a
    /// submitted batch is: every phase up to, never including, the final click.
    pub async fn rehearse_batch(
        self: &std::sync::Arc<Self>,
        spec: &NewBatch,
    ) -> Result<crate::order::RehearsalReport, BatchError> {
        let (accounts, skipped) = self.check_batch(spec).await?;
        let Some(account) = accounts.first() else {
            let why = skipped
                .first()
                .map_or_else(String::new, |(id, why)| format!(": account {id} {why}"));
            return Err(
                Invalid::new("accounts", format!("no selected account can run{why}")).into(),
            );
        };
        // A rehearsal builds the account's cart: never beside an order that uses it.
        if let Some((order, batch, state)) = self.store.account_order_in_flight(*account).await? {
            return Err(Invalid::new(
                "accounts",
                format!(
                    "account {account} has order {order} of batch {batch} {}: rehearse with another account, or once that batch is done",
                    state.as_str()
                ),
            )
            .into());
        }
        Ok(self
            .rehearse(&crate::order::Rehearsal {
                storefront: spec.accounts.storefront_id,
                account: *account,
                spec: spec.clone(),
            })
            .await)
    }

    /// Checks a batch before anything is written: the accounts that will run, and those
    /// skipped with why.
    async fn check_batch(
        &self,
        spec: &NewBatch,
    ) -> Result<
        (
            Vec<cartwright_core::ids::AccountId>,
            Vec<(cartwright_core::ids::AccountId, String)>,
        ),
        BatchError,
    > {
        spec.check()?;
        let selection = spec
            .accounts
            .clone()
            .validate()
            .map_err(|e| Invalid::new(format!("accounts.{}", e.field), e.message))?;
        let products: Vec<_> = spec.lines.iter().map(|l| l.product_id).collect();
        let inputs = self
            .store
            .batch_inputs(spec.accounts.storefront_id, &products, spec.address_id)
            .await?;
        let storefront = inputs.storefront.ok_or_else(|| {
            Invalid::new(
                "accounts.storefront_id",
                format!("storefront {} does not exist", spec.accounts.storefront_id),
            )
        })?;
        self.profile_of_storefront(&storefront)?;
        for (i, line) in spec.lines.iter().enumerate() {
            match inputs.products.iter().find(|p| p.id == line.product_id) {
                Some(p) if p.storefront_id == storefront.id => {}
                Some(_) => Err(Invalid::new(
                    format!("lines[{i}].product_id"),
                    format!("product {} belongs to another storefront", line.product_id),
                ))?,
                None => Err(Invalid::new(
                    format!("lines[{i}].product_id"),
                    format!("product {} does not exist", line.product_id),
                ))?,
            }
        }
        if inputs.address.is_none() {
            Err(match spec.address_id {
                Some(id) => Invalid::new("address_id", format!("address {id} does not exist")),
                None => Invalid::new(
                    "address_id",
                    "no address is given and none is the default: add one first",
                ),
            })?;
        }
        let chosen = self.store.select_accounts(&selection).await?;
        if !chosen.not_found.is_empty() {
            Err(Invalid::new(
                "accounts",
                format!(
                    "these do not exist in the storefront: {}",
                    chosen.not_found.join(", ")
                ),
            ))?;
        }
        if chosen.selected.is_empty() && chosen.skipped.is_empty() {
            Err(Invalid::new("accounts", "the selection matches no account"))?;
        }
        let accounts: Vec<_> = chosen.selected.iter().map(|s| s.id).collect();
        let orders = accounts.len() as u64 * u64::from(spec.repetitions);
        let cap = self.config.max_batch_orders;
        if orders > cap {
            Err(Invalid::new(
                "accounts",
                format!(
                    "the batch would place {orders} orders ({} accounts × {} repetitions); \
                     one batch places at most {cap} (the max_batch_orders setting): split it",
                    accounts.len(),
                    spec.repetitions
                ),
            ))?;
        }
        let skipped: Vec<_> = chosen
            .skipped
            .iter()
            .map(|s| (s.account.id, s.reason.clone()))
            .collect();
        Ok((accounts, skipped))
    }

    /// Stops a batch: waiting orders are cancelled; running ones stop after their current
    /// step; one whose final click is out completes.
    pub async fn stop_batch(&self, id: BatchId) -> Result<Batch, BatchError> {
        self.store
            .stop_batch(id)
            .await
            .map_err(|e| BatchError::from_store(e, Some(id)))
    }

    /// Pauses a batch (the browser cannot run): waiting orders wait for the resume.
    pub async fn pause_batch(&self, id: BatchId, reason: &str) -> Result<Batch, BatchError> {
        self.store
            .pause_batch(id, reason)
            .await
            .map_err(|e| BatchError::from_store(e, Some(id)))
    }

    /// Runs a batch's failed orders again, each with its runs counted afresh: never one whose
    /// final click went out. The batch, running again.
    pub async fn retry_failed(&self, id: BatchId) -> Result<Batch, BatchError> {
        let (batch, queued) = self
            .store
            .retry_failed(id)
            .await
            .map_err(|e| BatchError::from_store(e, Some(id)))?;
        self.emit(cartwright_core::order::NewEvent {
            batch_id: Some(id),
            order_id: None,
            rewards_run_id: None,
            account_id: None,
            phase: None,
            step: None,
            level: cartwright_core::order::Level::Info,
            message: format!(
                "{queued} failed order{} queued to run again",
                if queued == 1 { "" } else { "s" }
            ),
            at: time::OffsetDateTime::now_utc(),
        });
        Ok(batch)
    }

    /// Resumes a stopped or paused batch: what the stop cancelled waits again (never an
    /// order whose final click went out), and every waiting order gets its job back.
    pub async fn resume_batch(&self, id: BatchId) -> Result<Batch, BatchError> {
        self.store
            .resume_batch(id)
            .await
            .map_err(|e| BatchError::from_store(e, Some(id)))
    }
}
