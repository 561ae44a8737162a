//! The engine: the browser pool, the rate limiter, the profiles and the event bus, shared by
//! every run of this process, and the job handlers that run orders and sign-in tests.

use crate::browser::{BrowserPool, PoolConfig};
use crate::events::EventBus;
use crate::profile::registry::Profiles;
use crate::ratelimit::RateLimiter;
use cartwright_core::ids::{AccountId, BatchId, OrderId};
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
    /// Runs an order gets before a transient failure becomes final.
    pub max_runs: u32,
    /// First wait before a retry; doubled each time, with jitter.
    pub retry_base: Duration,
    /// Longest wait before a retry.
    pub retry_max: Duration,
    /// Browser settings.
    pub browser: PoolConfig,
    /// How long the history is watched for an order whose confirmation was lost.
    pub resolve_window: Duration,
}

impl EngineConfig {
    /// Defaults with artifacts under `data_dir`.
    pub fn new(data_dir: &std::path::Path) -> Self {
        Self {
            artifacts: data_dir.join("artifacts"),
            profiles_dir: Some(data_dir.join("profiles")),
            max_runs: 3,
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_secs(120),
            browser: PoolConfig::default(),
            resolve_window: Duration::from_secs(6),
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
    /// `concurrency` contexts.
    pub fn workers(self: &Arc<Self>, id: impl Into<String>, concurrency: usize) -> Workers {
        let orders: Arc<dyn Handler> = Arc::new(crate::run::OrderHandler(self.clone()));
        let checks: Arc<dyn Handler> = Arc::new(crate::run::SessionCheckHandler(self.clone()));
        Workers::new(self.store.clone(), id).lane(
            "browser",
            Self::browser_concurrency(concurrency),
            vec![
                (cartwright_store::ORDER_JOB, orders),
                (SESSION_CHECK_JOB, checks),
            ],
        )
    }

    /// Records an event.
    pub(crate) fn emit(
        &self,
        batch: Option<BatchId>,
        order: Option<OrderId>,
        account: Option<AccountId>,
        phase: Option<&str>,
        step: Option<&str>,
        level: Level,
        message: String,
    ) {
        match level {
            Level::Error | Level::Warn => {
                tracing::info!(order = ?order.map(|o| o.get()), phase, "{message}")
            }
            _ => tracing::debug!(order = ?order.map(|o| o.get()), phase, "{message}"),
        }
        self.events.emit(NewEvent {
            batch_id: batch,
            order_id: order,
            account_id: account,
            phase: phase.map(str::to_owned),
            step: step.map(str::to_owned),
            level,
            message,
            at: time::OffsetDateTime::now_utc(),
        });
    }

    /// Closes the browser and writes pending events.
    pub async fn shutdown(&self) {
        self.events.flush().await;
        self.pool.shutdown().await;
    }
}
