//! The sign-in test: whether an account's stored session still signs in, and what its
//! profile page says about it (email, phone, name).

use super::{Prepared, RunLog, store_retry};
use crate::engine::Engine;
use crate::flow::{Flow, FlowError};
use crate::profile::Phase;
use cartwright_core::account::SessionStatus;
use cartwright_core::ids::AccountId;
use cartwright_core::order::{ErrorClass, Level};
use cartwright_jobs::{BoxFuture, Handler, Outcome};
use cartwright_store::{Job, StoreError};
use serde_json::{Value, json};
use std::sync::Arc;

/// The job kind of a sign-in test.
pub const SESSION_CHECK_JOB: &str = "session_check";

/// Runs `session_check` jobs.
pub(crate) struct SessionCheckHandler(pub Arc<Engine>);

impl Handler for SessionCheckHandler {
    fn run(&self, job: Job) -> BoxFuture<Outcome> {
        let engine = self.0.clone();
        Box::pin(async move {
            let Some(id) = job.payload.get("account").and_then(Value::as_i64) else {
                return Outcome::Fail {
                    error: format!("the job's payload names no account: {}", job.payload),
                };
            };
            engine
                .check_session(AccountId(id), job.attempt, job.max_attempts)
                .await
        })
    }
}

impl Engine {
    /// Queues a sign-in test for each account the selection runs; returns how many were
    /// queued (an account with a test already waiting is not queued twice).
    pub async fn queue_session_checks(
        &self,
        selection: cartwright_core::selection::SelectionRequest,
    ) -> Result<usize, cartwright_store::StoreError> {
        let selection = selection.validate()?;
        let chosen = self.store.select_accounts(&selection).await?;
        let jobs: Vec<cartwright_store::NewJob> = chosen
            .selected
            .iter()
            .map(|a| cartwright_store::NewJob {
                priority: 20,
                max_attempts: 3,
                unique_key: Some(format!("session_check:{}", a.id)),
                ..cartwright_store::NewJob::new(
                    SESSION_CHECK_JOB,
                    serde_json::json!({ "account": a.id.get() }),
                )
            })
            .collect();
        self.store.enqueue_many(&jobs).await
    }
    /// A sign-in test: checks the session and reads the profile's details into the account.
    pub(crate) async fn check_session(
        self: &Arc<Self>,
        id: AccountId,
        attempt: i64,
        max_attempts: i64,
    ) -> Outcome {
        let log = RunLog {
            engine: self.clone(),
            batch: None,
            order: None,
            account: id,
            kept: None,
        };
        let account = match self.store.account(id).await {
            Ok(a) => a,
            Err(StoreError::NotFound { .. }) => return Outcome::Done,
            Err(e) => return store_retry(&e),
        };
        let storefront = match self.store.storefront(account.storefront_id).await {
            Ok(s) => s,
            Err(e) => return store_retry(&e),
        };
        let profile = match self.profiles.get(storefront.profile.as_str()) {
            Ok(p) => p,
            Err(e) => {
                log.say(Level::Error, format!("sign-in test: {e}"));
                return Outcome::Fail {
                    error: e.to_string(),
                };
            }
        };
        let cookies = match self.store.account_cookies(id).await {
            Ok(Some(j)) if !j.cookies().is_empty() => j,
            Ok(_) => {
                log.say(Level::Error, "sign-in test: the account has no cookies");
                let _ = self
                    .store
                    .record_session(id, SessionStatus::LoggedOut, None)
                    .await;
                return Outcome::Done;
            }
            Err(e) => return store_retry(&e),
        };
        let Ok(base_url) = url::Url::parse(storefront.base_url.as_str()) else {
            return Outcome::Fail {
                error: "the storefront's base URL does not parse".into(),
            };
        };
        if let Err(e) = self.reachable(&base_url).await {
            log.say(Level::Error, format!("sign-in test: {}", e.message));
            return Outcome::Fail { error: e.message };
        }
        let prepared = Prepared {
            host: base_url.host_str().unwrap_or_default().to_owned(),
            profile,
            base_url,
            cookies,
            context: json!({ "account": { "id": id.get() } }),
            lines: Vec::new(),
        };
        let session = match self.open(&prepared).await {
            Ok(s) => s,
            Err(e) => {
                log.say(Level::Error, format!("sign-in test: {e}"));
                return Outcome::Retry {
                    error: e.to_string(),
                    after: self.config.retry.base,
                };
            }
        };
        let mut flow = Flow::new(
            &session,
            &prepared.profile,
            prepared.base_url.clone(),
            prepared.context.clone(),
            &log,
        );
        let mut result = flow.phase(Phase::CheckLogin).await;
        if result.is_ok() && !prepared.profile.phase(Phase::ReadProfile).is_empty() {
            result = flow.phase(Phase::ReadProfile).await;
        }
        let text = |name: &str| {
            flow.var(name)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let (email, phone) = (text("email"), text("phone"));
        let name = match (text("first_name"), text("last_name")) {
            (Some(f), Some(l)) => Some(format!("{f} {l}")),
            (f, l) => f.or(l).or_else(|| text("name")),
        };
        drop(flow);
        let status = match &result {
            Err(FlowError::Failed(f)) if f.class == ErrorClass::SessionExpired => {
                SessionStatus::LoggedOut
            }
            Err(_) => SessionStatus::Unknown,
            Ok(()) => SessionStatus::Ok,
        };
        self.write_back(&session, &prepared, id, status, &log).await;
        session.close().await;
        match result {
            Ok(()) => {
                if (email.is_some() || phone.is_some() || name.is_some())
                    && let Err(e) = self
                        .store
                        .record_account_details(
                            id,
                            email.as_deref(),
                            phone.as_deref(),
                            name.as_deref(),
                        )
                        .await
                {
                    log.say(
                        Level::Warn,
                        format!("sign-in test: the details read could not be kept: {e}"),
                    );
                }
                log.say(Level::Info, "sign-in test: signed in");
                Outcome::Done
            }
            Err(FlowError::Failed(f))
                if f.class == ErrorClass::Transient && attempt < max_attempts =>
            {
                log.say(Level::Warn, format!("sign-in test: {f}; trying again"));
                Outcome::Retry {
                    error: f.to_string(),
                    after: self
                        .config
                        .retry
                        .backoff(u32::try_from(attempt).unwrap_or(u32::MAX), None),
                }
            }
            Err(e) => {
                log.say(Level::Error, format!("sign-in test: {e}"));
                Outcome::Done
            }
        }
    }
}
