//! What every handler shares.

use crate::auth::jwt::Jwt;
use crate::auth::throttle::LoginThrottle;
use cartwright_store::{SecretKey, Store};
use std::sync::Arc;
use std::time::Duration;

/// Tunables of the HTTP layer.
#[derive(Debug, Clone)]
pub struct WebOptions {
    /// How long a sign-in token stays valid.
    pub token_ttl: Duration,
    /// Failed sign-ins per username within `login_window` before it is locked.
    pub login_max_failures_per_user: u32,
    /// Failed sign-ins per client address within `login_window` before it is locked.
    pub login_max_failures_per_ip: u32,
    /// The window over which failed sign-ins count.
    pub login_window: Duration,
    /// Largest JSON body accepted.
    pub max_body_bytes: usize,
    /// Largest upload accepted (CSV imports, backups).
    pub max_upload_bytes: usize,
    /// Limits of live event streams.
    pub streams: crate::streams::StreamLimits,
    /// The origin browsers see this server at when a proxy in front changes the `Host`
    /// (`https://cartwright.example.com`): pages there may open the WebSocket too.
    pub public_origin: Option<String>,
}

impl Default for WebOptions {
    fn default() -> Self {
        Self {
            token_ttl: Duration::from_secs(12 * 3600),
            login_max_failures_per_user: 5,
            login_max_failures_per_ip: 30,
            login_window: Duration::from_secs(15 * 60),
            max_body_bytes: 1024 * 1024,
            max_upload_bytes: 32 * 1024 * 1024,
            streams: Default::default(),
            public_origin: None,
        }
    }
}

/// Shared state: the store, the token keys, the sign-in throttle. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// The shared parts.
pub struct Inner {
    /// Persistence.
    pub store: Store,
    /// Sign-in token issuer and checker.
    pub jwt: Jwt,
    /// Failed sign-in counter.
    pub throttle: LoginThrottle,
    /// Tunables.
    pub options: WebOptions,
    /// The automation engine: batches, events, artifacts, profiles.
    pub engine: Arc<cartwright_engine::Engine>,
    /// The digital-goods side: deliveries and their links.
    pub commerce: Arc<cartwright_commerce::Commerce>,
    /// The buyer assistant.
    pub assistant: Arc<cartwright_assistant::service::Assistant>,
    /// When each credential's use was last written, so a busy one is written once a minute.
    pub uses: std::sync::Mutex<std::collections::HashMap<Use, std::time::Instant>>,
    /// The open live streams.
    pub streams: crate::streams::Streams,
}

impl AppState {
    /// Builds the state; token keys are derived from the install's secret key.
    pub fn new(
        store: Store,
        key: &SecretKey,
        options: WebOptions,
        engine: Arc<cartwright_engine::Engine>,
        commerce: Arc<cartwright_commerce::Commerce>,
        assistant: Arc<cartwright_assistant::service::Assistant>,
    ) -> Self {
        Self(Arc::new(Inner {
            engine,
            commerce,
            assistant,
            store,
            jwt: Jwt::new(&key.derive("jwt"), options.token_ttl),
            throttle: LoginThrottle::new(
                options.login_max_failures_per_user,
                options.login_max_failures_per_ip,
                options.login_window,
            ),
            streams: crate::streams::Streams::new(options.streams),
            options,
            uses: Default::default(),
        }))
    }
}

/// A credential whose last use is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Use {
    /// An API token.
    Token(cartwright_core::ids::TokenId),
    /// A sign-in.
    SignIn(i64),
}

impl AppState {
    /// Whether this credential's use should be written now: at most once a minute per
    /// credential and node, however many requests arrive before the write lands.
    pub fn note_use(&self, key: Use) -> bool {
        let now = std::time::Instant::now();
        let mut uses = self.uses.lock().unwrap_or_else(|p| p.into_inner());
        if uses.len() >= 10_000 {
            uses.retain(|_, at| now.duration_since(*at) < Duration::from_secs(60));
        }
        match uses.get(&key) {
            Some(at) if now.duration_since(*at) < Duration::from_secs(60) => false,
            _ => {
                uses.insert(key, now);
                true
            }
        }
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
