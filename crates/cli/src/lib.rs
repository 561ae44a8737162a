//! The `cartwright` program as a library: configuration and the start-up that the binary, the
//! tests and the benchmarks share, so that all three run the same server.

pub mod catalog;
pub mod config;
pub mod demo;
pub mod faq;
pub mod rehearse;
pub mod rewards;
pub mod run;

pub use config::{ConfigError, LogFormat, Settings};

use cartwright_engine::Engine;
use cartwright_jobs::RunningWorkers;
use cartwright_store::{CryptoError, DbSettings, SecretKey, Store, StoreError};
use cartwright_web::{AppState, WebOptions};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The secret key could not be read or created.
    #[error(transparent)]
    Key(#[from] CryptoError),
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The data directory or the listening socket failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The failure.
        source: std::io::Error,
    },
}

/// The install's master key: from the settings, else the key file in the data directory
/// (created on first start).
pub fn secret_key(settings: &Settings) -> Result<SecretKey, StartError> {
    if let Some(text) = &settings.secret_key {
        return Ok(SecretKey::from_text(text)?);
    }
    std::fs::create_dir_all(&settings.data_dir).map_err(|source| StartError::Io {
        what: format!("creating data_dir {}", settings.data_dir.display()),
        source,
    })?;
    let path = settings.data_dir.join("secret.key");
    let (key, created) = SecretKey::load_or_create(&path)?;
    if created {
        tracing::info!(path = %path.display(), "created a new secret key; back it up: cookies cannot be decrypted without it");
    }
    Ok(key)
}

/// Opens the database the settings name and applies pending migrations.
pub async fn open_store(settings: &Settings, key: &SecretKey) -> Result<Store, StartError> {
    std::fs::create_dir_all(&settings.data_dir).map_err(|source| StartError::Io {
        what: format!("creating data_dir {}", settings.data_dir.display()),
        source,
    })?;
    let db = DbSettings {
        url: settings.database_url(),
        max_connections: settings.db_max_connections,
    };
    let store = Store::connect(&db, key).await?;
    store.migrate().await?;
    Ok(store)
}

/// A running HTTP server, with its workers unless `workers` is 0.
pub struct Server {
    /// Where it listens (useful with port 0).
    pub addr: SocketAddr,
    /// Its store, shared with the handlers.
    pub store: Store,
    /// Its master key.
    pub key: SecretKey,
    /// Its engine.
    pub engine: Arc<Engine>,
    /// Its digital-goods side.
    pub commerce: Arc<cartwright_commerce::Commerce>,
    workers: Option<RunningWorkers>,
    web: AppState,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

/// How long running orders get to finish when the process stops before their jobs are
/// handed back (an order being placed is settled by whoever picks it up).
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(20);

/// Starts the workers: the engine's for `settings.workers` browser runs at once and its
/// rewards checks, and the deliveries of digital goods; sweeps orders that lost their job
/// (after a crash) back into the queue.
pub async fn start_workers(
    settings: &Settings,
    engine: &Arc<Engine>,
    commerce: &Arc<cartwright_commerce::Commerce>,
) -> Result<RunningWorkers, StartError> {
    // A worker process answers the buyer chats its polls read too.
    commerce.assistant(settings.embedding_model());
    let swept = engine.store().sweep_orders().await?;
    if swept > 0 {
        tracing::info!(orders = swept, "re-queued orders whose jobs were lost");
    }
    let deliveries: Arc<dyn cartwright_jobs::Handler> =
        Arc::new(cartwright_commerce::DeliveryHandler::new(commerce.clone()));
    let pushes: Arc<dyn cartwright_jobs::Handler> =
        Arc::new(cartwright_commerce::PushHandler(commerce.clone()));
    let polls: Arc<dyn cartwright_jobs::Handler> =
        Arc::new(cartwright_commerce::PollHandler(commerce.clone()));
    let sends: Arc<dyn cartwright_jobs::Handler> =
        Arc::new(cartwright_commerce::SendHandler(commerce.clone()));
    let replies: Arc<dyn cartwright_jobs::Handler> =
        Arc::new(cartwright_commerce::ChatReplyHandler(commerce.clone()));
    let store = engine.store().clone();
    let workers = engine
        .workers(settings.node(), settings.workers)
        .lane(
            "goods",
            cartwright_commerce::LANE_WIDTH,
            vec![
                (cartwright_store::DELIVERY_JOB, deliveries),
                (cartwright_store::PUSH_JOB, pushes),
                (cartwright_store::POLL_JOB, polls),
                (cartwright_store::SEND_JOB, sends),
                (cartwright_store::CHAT_REPLY_JOB, replies),
            ],
        )
        .every(
            settings.market_poll_every.0,
            Arc::new(move || {
                let store = store.clone();
                Box::pin(async move {
                    if let Err(e) = store.queue_polls().await {
                        tracing::warn!(error = %e, "queueing the marketplace polls failed");
                    }
                    match store.sweep_deliveries().await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(
                            orders = n,
                            "queued deliveries that stock can complete now"
                        ),
                        Err(e) => {
                            tracing::warn!(error = %e, "sweeping the waiting deliveries failed")
                        }
                    }
                })
            }),
        )
        .timing(settings.job_timing())
        .start();
    tokio::spawn(engine.clone().run_schedules());
    tracing::info!(concurrency = settings.workers, node = %settings.node(), "workers started");
    Ok(workers)
}

impl Server {
    /// Opens the store, binds the listener and starts serving.
    pub async fn start(settings: &Settings) -> Result<Server, StartError> {
        let key = secret_key(settings)?;
        let store = open_store(settings, &key).await?;
        if store.count_operators().await? == 0 {
            tracing::warn!(
                "no operator exists yet: create one with `cartwright admin create --username admin`"
            );
        }
        let options = WebOptions {
            token_ttl: settings.token_ttl.0,
            login_max_failures_per_user: settings.login_max_failures,
            login_max_failures_per_ip: settings.login_max_failures_per_ip,
            public_origin: settings
                .public_url
                .as_deref()
                .and_then(|u| url::Url::parse(u).ok())
                .map(|u| u.origin().ascii_serialization()),
            max_body_bytes: settings.max_body_bytes,
            max_upload_bytes: settings.max_upload_bytes,
            ..WebOptions::default()
        };
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .map_err(|source| StartError::Io {
                what: format!("listening on {}", settings.listen),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Io {
            what: "reading the listening address".into(),
            source,
        })?;
        let engine = Engine::new(store.clone(), settings.engine());
        let commerce = cartwright_commerce::Commerce::new(store.clone(), settings.commerce(addr));
        let assistant = commerce.assistant(settings.embedding_model());
        let workers = if settings.workers > 0 {
            Some(start_workers(settings, &engine, &commerce).await?)
        } else {
            None
        };
        let web = AppState::new(
            store.clone(),
            &key,
            options,
            engine.clone(),
            commerce.clone(),
            assistant,
        );
        let app = cartwright_web::app(web.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(cartwright_web::serve(listener, app, async move {
            let _ = stopped.await;
        }));
        tracing::info!(%addr, database = ?store.backend(), "serving");
        Ok(Server {
            addr,
            store,
            key,
            engine,
            commerce,
            workers,
            web,
            stop,
            task,
        })
    }

    /// Stops accepting connections, lets in-flight requests finish, closes the database.
    pub async fn stop(self) -> std::io::Result<()> {
        if let Some(workers) = self.workers {
            workers.shutdown(SHUTDOWN_GRACE).await;
        }
        self.engine.shutdown().await;
        // Live streams never end by themselves; the graceful shutdown waits for every
        // response, so they are ended first.
        self.web.streams.close_all();
        let _ = self.stop.send(());
        // A client that stopped reading holds its response open: past the grace period the
        // server is stopped without it.
        let mut task = self.task;
        let result = match tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await {
            Ok(joined) => joined.unwrap_or_else(|e| Err(std::io::Error::other(e))),
            Err(_) => {
                tracing::warn!("requests still open after the grace period were cut");
                task.abort();
                Ok(())
            }
        };
        self.store.close().await;
        result
    }
}
