//! The engine: the browser pool, the rate limiter, the profiles and the event bus, shared by
//! every run of this process, and the job handlers that run orders and sign-in tests.

use crate::browser::{BrowserPool, PoolConfig};
use crate::events::EventBus;
use crate::order::placing::SettleTiming;
use crate::order::retry::RetryPolicy;
use crate::profile::registry::Profiles;
use crate::ratelimit::RateLimiter;
use cartwright_core::order::{Level, NewEvent};
use cartwright_jobs::{Handler, Workers};
use cartwright_store::Store;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The job kind of a sign-in test.
pub const SESSION_CHECK_JOB: &str = "session_check";

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Failure screenshots and page snapshots go under this directory.
    pub artifacts: PathBuf,
    /// Profiles are read from here first (`{name}.toml`), then the built-in ones.
    pub profiles_dir: Option<PathBuf>,
    /// When failed runs are tried again.
    pub retry: RetryPolicy,
    /// Browser settings.
    pub browser: PoolConfig,
    /// How often the history is looked at while an order whose final click went out is
    /// settled.
    pub settle: SettleTiming,
    /// How often every open order is checked for a job (one left without, after a crash or a
    /// panic, gets one back, so every batch ends).
    pub sweep_every: Duration,
}

impl EngineConfig {
    /// Defaults with artifacts under `data_dir`.
    pub fn new(data_dir: &std::path::Path) -> Self {
        Self {
            artifacts: data_dir.join("artifacts"),
            profiles_dir: Some(data_dir.join("profiles")),
            retry: RetryPolicy::default(),
            browser: PoolConfig::default(),
            settle: SettleTiming::default(),
            sweep_every: Duration::from_secs(30),
        }
    }
}

/// The engine of one process.
pub struct Engine {
    pub(crate) store: Store,
    pub(crate) config: EngineConfig,
    pub(crate) pool: BrowserPool,
    pub(crate) limiter: Arc<RateLimiter>,
    pub(crate) events: Arc<EventBus>,
    pub(crate) profiles: Profiles,
    pub(crate) http: reqwest::Client,
    pub(crate) stopping: tokio::sync::watch::Sender<bool>,
}

impl Engine {
    /// An engine over `store`; Chromium starts on the first run.
    pub fn new(store: Store, config: EngineConfig) -> Arc<Self> {
        let limiter = Arc::new(RateLimiter::new());
        let events = EventBus::start(store.clone());
        Arc::new(Self {
            pool: BrowserPool::new(config.browser.clone(), limiter.clone()),
            profiles: Profiles::new(config.profiles_dir.clone()),
            store,
            config,
            limiter,
            events,
            http: crate::rewards::http_client(),
            stopping: tokio::sync::watch::Sender::new(false),
        })
    }

    /// The event bus.
    pub fn events(&self) -> &Arc<EventBus> {
        &self.events
    }

    /// The shared rate limiter.
    pub fn limiter(&self) -> &Arc<RateLimiter> {
        &self.limiter
    }

    /// The browser pool.
    pub fn browsers(&self) -> &BrowserPool {
        &self.pool
    }

    /// The profiles.
    pub fn profiles(&self) -> &Profiles {
        &self.profiles
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Where artifacts live.
    pub fn artifacts_dir(&self) -> &std::path::Path {
        &self.config.artifacts
    }

    /// How many browser runs may go at once: `wanted`, capped by what memory allows (about
    /// 100 MB per context), with a warning when capped.
    pub fn browser_concurrency(wanted: usize) -> usize {
        match crate::browser::memory_cap() {
            Some(cap) if cap < wanted => {
                tracing::warn!(
                    wanted,
                    cap,
                    "capping browser concurrency to what memory allows (about 100 MB per context)"
                );
                cap
            }
            _ => wanted.max(1),
        }
    }

    /// Workers for this engine's jobs: orders and sign-in tests share the browser lane of
    /// `concurrency` contexts; rewards runs (plain HTTP, each with its own concurrency) go two
    /// at a time in their own lane.
    pub fn workers(self: &Arc<Self>, id: impl Into<String>, concurrency: usize) -> Workers {
        let orders: Arc<dyn Handler> = Arc::new(crate::order::OrderHandler(self.clone()));
        let checks: Arc<dyn Handler> = Arc::new(crate::order::SessionCheckHandler(self.clone()));
        let rewards: Arc<dyn Handler> = Arc::new(crate::rewards::RewardsHandler(self.clone()));
        Workers::new(self.store.clone(), id)
            .lane(
                "browser",
                Self::browser_concurrency(concurrency),
                vec![
                    (cartwright_store::ORDER_JOB, orders),
                    (SESSION_CHECK_JOB, checks),
                ],
            )
            .lane("http", 2, vec![(cartwright_store::REWARDS_JOB, rewards)])
            .every(self.config.sweep_every, {
                let store = self.store.clone();
                Arc::new(move || {
                    let store = store.clone();
                    Box::pin(async move {
                        match store.sweep_orders().await {
                            Ok(0) => {}
                            Ok(n) => tracing::warn!(
                                orders = n,
                                "gave a job back to orders left without one"
                            ),
                            Err(e) => tracing::warn!(error = %e, "sweeping orders failed"),
                        }
                    })
                })
            })
    }

    /// Records an event (and mirrors failures to the process log).
    pub(crate) fn emit(&self, event: NewEvent) {
        let order = event.order_id.map(|o| o.get());
        match event.level {
            Level::Error | Level::Warn => {
                tracing::info!(order, phase = event.phase.as_deref(), "{}", event.message)
            }
            _ => tracing::debug!(order, phase = event.phase.as_deref(), "{}", event.message),
        }
        self.events.emit(event);
    }

    /// Closes the browser and writes pending events.
    pub async fn shutdown(&self) {
        self.stopping.send_replace(true);
        self.events.flush().await;
        self.pool.shutdown().await;
    }
}

impl Engine {
    /// Validates a request's account selection, and finds its storefront and that storefront's
    /// profile; problems are named under `accounts`.
    pub(crate) async fn resolve_selection(
        &self,
        accounts: &cartwright_core::selection::SelectionRequest,
    ) -> Result<
        (
            cartwright_core::selection::AccountSelection,
            cartwright_core::storefront::Storefront,
            Arc<crate::profile::Profile>,
        ),
        cartwright_store::StoreError,
    > {
        use cartwright_core::Invalid;
        use cartwright_store::StoreError;
        let selection = accounts
            .clone()
            .validate()
            .map_err(|e| Invalid::new(format!("accounts.{}", e.field), e.message))?;
        let storefront = match self.store.storefront(accounts.storefront_id).await {
            Err(StoreError::NotFound { id, .. }) => {
                return Err(Invalid::new(
                    "accounts.storefront_id",
                    format!("storefront {id} does not exist"),
                )
                .into());
            }
            other => other?,
        };
        let profile = self
            .profiles
            .get(storefront.profile.as_str())
            .map_err(|e| {
                Invalid::new(
                    "accounts.storefront_id",
                    format!("the storefront's profile cannot be used: {e}"),
                )
            })?;
        Ok((selection, storefront, profile))
    }

    /// Checks a batch against the store and writes it with its orders and jobs: the
    /// storefront and its profile, the products (of that storefront), the address (or a
    /// default one), and the accounts the selection names. Accounts the selection matches
    /// but cannot run (inactive, no cookies) get `skipped` orders saying why. Every problem
    /// is refused before anything is written, naming the field.
    pub async fn submit_batch(
        &self,
        spec: &cartwright_core::batch::NewBatch,
        created_by: Option<cartwright_core::ids::OperatorId>,
    ) -> Result<cartwright_core::batch::Batch, cartwright_store::StoreError> {
        use cartwright_core::Invalid;
        use cartwright_store::StoreError;
        let invalid =
            |field: &str, message: String| StoreError::Invalid(Invalid::new(field, message));
        spec.check()?;
        let (selection, storefront, _) = self.resolve_selection(&spec.accounts).await?;
        for (i, line) in spec.lines.iter().enumerate() {
            match self.store.product(line.product_id).await {
                Ok(p) if p.storefront_id == storefront.id => {}
                Ok(_) => {
                    return Err(invalid(
                        &format!("lines[{i}].product_id"),
                        format!("product {} belongs to another storefront", line.product_id),
                    ));
                }
                Err(StoreError::NotFound { .. }) => {
                    return Err(invalid(
                        &format!("lines[{i}].product_id"),
                        format!("product {} does not exist", line.product_id),
                    ));
                }
                Err(e) => return Err(e),
            }
        }
        match spec.address_id {
            Some(id) => match self.store.address(id).await {
                Err(StoreError::NotFound { .. }) => {
                    return Err(invalid(
                        "address_id",
                        format!("address {id} does not exist"),
                    ));
                }
                other => drop(other?),
            },
            None => {
                if self.store.default_address().await?.is_none() {
                    return Err(invalid(
                        "address_id",
                        "no address is given and none is the default: add one first".into(),
                    ));
                }
            }
        }
        let chosen = self.store.select_accounts(&selection).await?;
        if !chosen.not_found.is_empty() {
            return Err(invalid(
                "accounts",
                format!(
                    "these do not exist in the storefront: {}",
                    chosen.not_found.join(", ")
                ),
            ));
        }
        if chosen.selected.is_empty() && chosen.skipped.is_empty() {
            return Err(invalid(
                "accounts",
                "the selection matches no account".into(),
            ));
        }
        let accounts: Vec<_> = chosen.selected.iter().map(|s| s.id).collect();
        let skipped: Vec<_> = chosen
            .skipped
            .iter()
            .map(|s| (s.account.id, s.reason.clone()))
            .collect();
        self.store
            .create_batch(spec, &accounts, &skipped, created_by)
            .await
    }

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
}
