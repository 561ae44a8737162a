//! The engine: the browser pool, the rate limiter, the profiles and the event bus, shared by
//! every run of this process, and the job handlers that run orders and sign-in tests.

use crate::browser::{BrowserPool, PoolConfig};
use crate::events::EventBus;
use crate::policy::{RetryPolicy, SettleTiming};
use crate::profile::registry::Profiles;
use crate::ratelimit::RateLimiter;
use cartwright_core::order::{Level, NewEvent};
use cartwright_store::Store;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

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
    /// Whether storefronts may be on this machine or a private network (see [`crate::net`]).
    pub allow_internal: bool,
    /// Most orders one batch may hold (accounts × repetitions).
    pub max_batch_orders: u64,
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
            allow_internal: false,
            max_batch_orders: 10_000,
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
        let allow_internal = config.allow_internal;
        let limiter = Arc::new(RateLimiter::new());
        let events = EventBus::start(store.clone());
        Arc::new(Self {
            pool: BrowserPool::new(
                PoolConfig {
                    block_internal: !config.allow_internal,
                    ..config.browser.clone()
                },
                limiter.clone(),
            ),
            profiles: Profiles::new(config.profiles_dir.clone()),
            store,
            config,
            limiter,
            events,
            http: http_client(allow_internal),
            stopping: tokio::sync::watch::Sender::new(false),
        })
    }

    /// Whether storefronts may be on this machine or a private network.
    pub fn allows_internal(&self) -> bool {
        self.config.allow_internal
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
        let profile = self.profile_of_storefront(&storefront)?;
        Ok((selection, storefront, profile))
    }

    /// A storefront's profile, or why it cannot be used (named under
    /// `accounts.storefront_id`, where requests name the storefront).
    pub(crate) fn profile_of_storefront(
        &self,
        storefront: &cartwright_core::storefront::Storefront,
    ) -> Result<Arc<crate::profile::Profile>, cartwright_core::Invalid> {
        self.profiles.get(storefront.profile.as_str()).map_err(|e| {
            cartwright_core::Invalid::new(
                "accounts.storefront_id",
                format!("the storefront's profile cannot be used: {e}"),
            )
        })
    }
}

/// The engine's HTTP client (rewards checks): no redirects followed, Cartwright named as the
/// user agent, and unless `allow_internal` names resolved to internal addresses dropped.
pub(crate) fn http_client(allow_internal: bool) -> reqwest::Client {
    let builder = if allow_internal {
        reqwest::Client::builder()
    } else {
        reqwest::Client::builder().dns_resolver(Arc::new(crate::net::PublicOnly))
    };
    builder
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(512)
        .user_agent(concat!("Cartwright/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "the HTTP client could not be configured; using defaults");
            reqwest::Client::new()
        })
}
