//! Demo Beauty: a storefront and a marketplace seller centre that behave like the real sites
//! Cartwright automates, and that we control. Data is seeded and deterministic; faults (slow
//! pages, server errors, rate limits, expiring sessions, stock running out, a confirmation
//! page that fails after the order is placed) are switched on per run; inspection endpoints
//! let tests check what was ordered and how fast clients came.
//!
//! Served by `cartwright demo` beside Cartwright, or alone by `cartwright demo-shop`.

#![allow(clippy::inconsistent_digit_grouping)] // amounts in paise are written rupees_paise: 499_00 is ₹499.00
#![allow(clippy::result_large_err)] // handlers return an early `Response` as their error, as axum code does

mod api;
mod classes;
mod control;
mod guard;
pub mod marketplace;
pub mod model;
mod pages;
pub mod seed;
pub mod session;
pub mod threads;
pub mod traffic;

use axum::Router;
use axum::extract::State;
use model::ShopData;
use serde::{Deserialize, Serialize};
use session::Sessions;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;
use traffic::Traffic;

pub use classes::Classes;
pub use marketplace::MarketplaceConfig;
pub use pages::CUSTOMER_PASSWORD;

/// How a shop starts.
#[derive(Debug, Clone)]
pub struct ShopConfig {
    /// Seeds the data and the class-name hashes.
    pub seed: u64,
    /// How many customers to create.
    pub customers: usize,
    /// Replace the session cookie's value every this many responses (0: never).
    pub rotate_every: u32,
    /// How long a replaced session value keeps working.
    pub rotation_grace: Duration,
    /// How long a session lasts.
    pub session_ttl: Duration,
    /// How long the PIN code lookup takes to answer.
    pub pincode_delay: Duration,
    /// Faults switched on from the start.
    pub faults: Faults,
    /// The seller centre.
    pub marketplace: MarketplaceConfig,
    /// Which storefront pages it serves.
    pub flavour: Flavour,
}

/// Which storefront pages a shop serves; the data, sessions, faults and seller centre are
/// the same.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flavour {
    /// Demo Beauty: script-driven pages, a bag with drawers (profiles/demo.toml).
    #[default]
    Beauty,
    /// Demo Threads: form posts, sizes, a three-page checkout (profiles/threads.toml).
    Threads,
}

impl std::str::FromStr for Flavour {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "beauty" => Ok(Flavour::Beauty),
            "threads" => Ok(Flavour::Threads),
            _ => Err(format!("unknown shop flavour {s:?} (beauty or threads)")),
        }
    }
}

impl Default for ShopConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            customers: 60,
            rotate_every: 10,
            rotation_grace: Duration::from_secs(120),
            session_ttl: Duration::from_secs(30 * 86_400),
            pincode_delay: Duration::from_millis(300),
            faults: Faults::default(),
            marketplace: MarketplaceConfig::default(),
            flavour: Flavour::Beauty,
        }
    }
}

/// What can go wrong, switched per run through the config or `PUT /_control/faults`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Added to every storefront page (HTML) response, in milliseconds.
    pub latency_ms: u64,
    /// Share of storefront requests (0.0–1.0) answered with a 500, 502 or 503.
    pub error_rate: f64,
    /// Requests per second one signed-in account may make before getting 429.
    pub account_rate_limit: Option<f64>,
    /// Requests per second the whole storefront serves before answering 429.
    pub shop_rate_limit: Option<f64>,
    /// This product (slug) sells out the moment anyone places an order containing it.
    pub sell_out_at_checkout: Option<String>,
    /// How the order confirmation behaves once an order is placed.
    pub confirmation: Confirmation,
    /// Share of order-history page loads (0.0–1.0) answered with a 500, 502 or 503, on top
    /// of `error_rate`: a history that is down while the rest of the shop works.
    pub history_error_rate: f64,
    /// How long a placed order takes to appear in the order history, in milliseconds: a
    /// history that lags behind the orders.
    pub history_lag_ms: u64,
    /// Share of storefront requests (0.0–1.0) that are done and then answered with a 502, as
    /// a proxy that loses the shop's answer does: what was asked happened, the client cannot
    /// tell.
    pub error_after_rate: f64,
}

/// The confirmation's fault modes. In every mode the order is placed and in the history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Confirmation {
    /// Normal: the confirmation page shows the order number.
    #[default]
    Ok,
    /// The confirmation page answers 500.
    Error,
    /// The confirmation page never answers.
    Hang,
    /// The order request itself answers 502 after the order was placed, so the page shows an
    /// error and never navigates.
    Lost,
}

/// The shop's shared state.
pub struct Shop {
    config: ShopConfig,
    classes: Classes,
    data: Mutex<ShopData>,
    sessions: Mutex<Sessions>,
    faults: RwLock<Faults>,
    traffic: Mutex<Traffic>,
    /// How many times the script and the stylesheet were served.
    static_served: AtomicU64,
    chaos: Mutex<rand::rngs::StdRng>,
    market: Arc<marketplace::Market>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shop {
    /// A shop seeded from `config`.
    pub fn new(config: ShopConfig) -> Arc<Self> {
        use rand::SeedableRng;
        Arc::new(Shop {
            classes: Classes::new(config.seed),
            data: Mutex::new(seed::shop(config.seed, config.customers)),
            sessions: Mutex::new(Sessions::new(
                config.seed,
                config.session_ttl,
                config.rotate_every,
                config.rotation_grace,
            )),
            faults: RwLock::new(config.faults.clone()),
            traffic: Mutex::new(Traffic::default()),
            static_served: Default::default(),
            chaos: Mutex::new(rand::rngs::StdRng::seed_from_u64(config.seed ^ 0x000c_4a05)),
            market: Arc::new(marketplace::Market::new(&config.marketplace, config.seed)),
            config,
        })
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        self.faults
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Switches faults.
    pub fn set_faults(&self, faults: Faults) {
        *self.faults.write().unwrap_or_else(|p| p.into_inner()) = faults;
    }

    /// Signs a customer in and returns the `f.session` cookie value: how the seeded accounts
    /// get the cookies Cartwright imports.
    pub fn sign_in(&self, customer: u32) -> Option<String> {
        lock(&self.data).customer(customer)?;
        Some(lock(&self.sessions).issue(customer))
    }

    /// Whether a session cookie value is the newest one of its session (not replaced).
    pub fn session_is_current(&self, value: &str) -> bool {
        lock(&self.sessions).is_current(value)
    }

    /// The seeded customers: id, first and last name, email, phone.
    pub fn customers(&self) -> Vec<model::Customer> {
        lock(&self.data).customers.clone()
    }

    /// The products on sale.
    pub fn products(&self) -> Vec<model::Product> {
        lock(&self.data).products.clone()
    }

    /// Puts one unit of a product in a customer's bag, as the shop's Add to Bag does: how
    /// tests leave a bag that is not what a batch asks for.
    pub fn add_to_cart(&self, customer: u32, product: u32) -> Result<(), model::ShopError> {
        lock(&self.data).add_to_cart(customer, product)
    }

    /// Every order placed so far.
    pub fn orders(&self) -> Vec<model::Order> {
        lock(&self.data).orders.clone()
    }

    /// The class names of this seed's build.
    pub fn classes(&self) -> &Classes {
        &self.classes
    }

    /// The confirmation page's fault, when one is switched on: a 500 saying `words`, or a
    /// page that never answers. `None` when the page is served.
    pub(crate) async fn confirmation_fault(&self, words: &str) -> Option<axum::response::Response> {
        use axum::response::IntoResponse;
        match self.faults().confirmation {
            Confirmation::Error => Some(
                (
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    words.to_owned(),
                )
                    .into_response(),
            ),
            Confirmation::Hang => std::future::pending().await,
            Confirmation::Ok | Confirmation::Lost => None,
        }
    }

    /// The seller centre.
    pub fn market(&self) -> &Arc<marketplace::Market> {
        &self.market
    }
}

/// The shop's routes: storefront pages, its JSON API, the rewards API, the seller centre,
/// the Open Platform API and the control endpoints.
pub fn router(shop: Arc<Shop>) -> Router {
    let pages = match shop.config.flavour {
        Flavour::Beauty => pages::router().merge(api::router()),
        Flavour::Threads => threads::router(),
    };
    let storefront = pages.layer(axum::middleware::from_fn_with_state(
        shop.clone(),
        guard::storefront,
    ));
    storefront
        .merge(marketplace::router())
        .merge(control::router())
        .route("/static/shop.js", axum::routing::get(static_js))
        .route("/static/shop.css", axum::routing::get(static_css))
        .with_state(shop)
}

/// How long a browser may keep the shop's script and stylesheet, as a storefront's static
/// bundles are kept: pages after the first in a session do not fetch them again.
const STATIC_CACHE: &str = "public, max-age=3600";

fn served_static(shop: &Shop) {
    shop.static_served.fetch_add(1, Ordering::Relaxed);
}

async fn static_js(State(shop): State<Arc<Shop>>) -> impl axum::response::IntoResponse {
    served_static(&shop);
    (
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/javascript; charset=utf-8",
            ),
            (axum::http::header::CACHE_CONTROL, STATIC_CACHE),
        ],
        include_str!("../static/shop.js"),
    )
}

async fn static_css(State(shop): State<Arc<Shop>>) -> impl axum::response::IntoResponse {
    served_static(&shop);
    (
        [
            (axum::http::header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (axum::http::header::CACHE_CONTROL, STATIC_CACHE),
        ],
        include_str!("../static/shop.css"),
    )
}

/// A shop serving on a socket.
pub struct RunningShop {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state, for seeding and inspection.
    pub shop: Arc<Shop>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningShop {
    /// The base URL, e.g. `http://127.0.0.1:8090`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving.
    pub async fn stop(self) -> std::io::Result<()> {
        let _ = self.stop.send(());
        self.task
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }
}

/// Binds `addr` and serves a shop built from `config`.
pub async fn start(addr: SocketAddr, config: ShopConfig) -> std::io::Result<RunningShop> {
    let shop = Shop::new(config);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    shop.market.set_base_url(&format!("http://{addr}"));
    marketplace::spawn_auto_advance(&shop.market);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = router(shop.clone());
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });
    Ok(RunningShop {
        addr,
        shop,
        stop,
        task,
    })
}
