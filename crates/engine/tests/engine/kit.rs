//! Shared helpers: a demo shop on a free port, the demo profile, a browser pool, a log that
//! keeps its lines.

use cartwright_demo_shop::{RunningShop, ShopConfig};
use cartwright_engine::browser::{BrowserPool, PoolConfig, SessionOptions};
use cartwright_engine::flow::{Level, StepLog};
use cartwright_engine::profile::{Phase, Profile};
use cartwright_engine::ratelimit::RateLimiter;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub async fn shop(adjust: impl FnOnce(&mut ShopConfig)) -> RunningShop {
    let mut config = ShopConfig {
        customers: 12,
        pincode_delay: Duration::from_millis(100),
        ..ShopConfig::default()
    };
    adjust(&mut config);
    cartwright_demo_shop::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap()
}

pub fn demo_profile() -> Profile {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../profiles/demo.toml");
    cartwright_engine::profile::load_file(&path).unwrap()
}

pub fn pool() -> BrowserPool {
    BrowserPool::new(PoolConfig::default(), Arc::new(RateLimiter::new()))
}

pub fn session_cookie(shop: &RunningShop, customer: u32) -> cartwright_core::cookies::Cookie {
    cartwright_core::cookies::Cookie {
        name: "f.session".into(),
        value: shop.shop.sign_in(customer).unwrap(),
        domain: "127.0.0.1".into(),
        path: "/".into(),
        expires: None,
        http_only: true,
        secure: false,
        same_site: cartwright_core::cookies::SameSite::Lax,
    }
}

/// The shop's request log (`/_control/requests`).
pub async fn requests(shop: &RunningShop) -> serde_json::Value {
    reqwest::get(format!("{}/_control/requests", shop.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// How many times the shop saw `what` (`"GET /cart"`), from its request log.
pub async fn seen(shop: &RunningShop, what: &str) -> u64 {
    requests(shop).await["counts"][what].as_u64().unwrap_or(0)
}

/// A session signed in as `customer`, from `pool`.
pub async fn signed_in(
    pool: &BrowserPool,
    shop: &RunningShop,
    customer: u32,
) -> cartwright_engine::browser::Session {
    pool.session(options(vec![session_cookie(shop, customer)]))
        .await
        .unwrap()
}

pub fn options(cookies: Vec<cartwright_core::cookies::Cookie>) -> SessionOptions {
    SessionOptions {
        cookies,
        proxy: None,
        call_timeout: Duration::from_secs(20),
    }
}

/// A log that keeps every line.
#[derive(Default)]
pub struct Lines(pub Mutex<Vec<(Option<Phase>, Level, String)>>);

impl StepLog for Lines {
    fn log(&self, phase: Option<Phase>, step: Option<&str>, level: Level, message: &str) {
        let line = format!(
            "{} {} {message}",
            phase.map_or("-", Phase::as_str),
            step.unwrap_or("-")
        );
        eprintln!("{line}");
        self.0.lock().unwrap().push((phase, level, line));
    }
}

// ---- a whole installation: store, demo shop, seeded storefront, engine ----

use cartwright_core::account::NewAccount;
use cartwright_core::address::{AddressKind, NewAddress};
use cartwright_core::catalog::NewProduct;
use cartwright_core::cookies::CookieJar;
use cartwright_core::ids::{AccountId, AddressId, ProductId, StorefrontId};
use cartwright_core::money::Money;
use cartwright_core::storefront::{Currency, NewStorefront};
use cartwright_core::values::{Email, HttpUrl, Phone, Postcode, Slug, Tags, Text};
use cartwright_engine::policy::SettleTiming;
use cartwright_engine::{Engine, EngineConfig};
use cartwright_jobs::{RunningWorkers, Timing};
use cartwright_store::{DbSettings, SecretKey, Store};
use sqlx::Connection;

/// A migrated store, and its database's URL.
pub async fn store(dir: &std::path::Path) -> (Store, String) {
    let url = match std::env::var("CARTWRIGHT_TEST_DATABASE_URL") {
        Ok(server) if server.starts_with("postgres") => {
            let name = format!("cw_engine_{}_{}", std::process::id(), rand::random::<u32>());
            let mut conn = sqlx::PgConnection::connect(&server).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .unwrap();
            format!("{}/{name}", server.rsplit_once('/').unwrap().0)
        }
        _ => format!("sqlite://{}", dir.join("cartwright.db").display()),
    };
    let store = Store::connect(
        &DbSettings {
            url: url.clone(),
            max_connections: 8,
        },
        &SecretKey::generate(),
    )
    .await
    .unwrap();
    store.migrate().await.unwrap();
    (store, url)
}

pub struct Fixture {
    pub shop: RunningShop,
    pub store: Store,
    /// The store's database, for tests that need a connection of their own.
    pub db_url: String,
    pub engine: std::sync::Arc<Engine>,
    pub storefront: StorefrontId,
    pub accounts: Vec<AccountId>,
    pub products: Vec<ProductId>,
    pub _address: AddressId,
    pub dir: tempfile::TempDir,
    /// The storefront's profile: `demo` or `threads`.
    pub profile: &'static str,
}

/// The demo profile's history window in the engine's tests.
pub const ABSENT_FOR: &str = "3s";

/// Claims every waiting order job as a test worker would: each order's lease, to record its
/// final click by hand.
pub async fn hold_jobs(
    store: &Store,
) -> std::collections::HashMap<cartwright_core::ids::OrderId, cartwright_store::Lease> {
    store
        .claim_jobs(
            "test",
            &[cartwright_store::ORDER_JOB],
            1_000,
            Duration::from_secs(3_600),
        )
        .await
        .unwrap()
        .into_iter()
        .map(|j| {
            let order = cartwright_core::ids::OrderId(j.payload["order"].as_i64().unwrap());
            (order, j.lease())
        })
        .collect()
}

pub fn fast_timing() -> Timing {
    Timing {
        idle_poll: Duration::from_millis(100),
        heartbeat: Duration::from_millis(200),
        stale_after: Duration::from_secs(2),
    }
}

impl Fixture {
    /// A shop, a store with the demo storefront, `accounts` signed-in accounts, the shop's
    /// products and one address; an engine with fast retries.
    pub async fn new(accounts: usize, adjust: impl FnOnce(&mut ShopConfig)) -> Fixture {
        Self::flavoured(cartwright_demo_shop::Flavour::Beauty, accounts, adjust).await
    }

    /// The same with the shop's pages of `flavour` and its profile.
    pub async fn flavoured(
        flavour: cartwright_demo_shop::Flavour,
        accounts: usize,
        adjust: impl FnOnce(&mut ShopConfig),
    ) -> Fixture {
        let (profile, product_path) = match flavour {
            cartwright_demo_shop::Flavour::Beauty => ("demo", "p"),
            cartwright_demo_shop::Flavour::Threads => ("threads", "products"),
        };
        let shop = shop(|c| {
            c.flavour = flavour;
            adjust(c)
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let (store, db_url) = store(dir.path()).await;
        let storefront = store
            .create_storefront(&NewStorefront {
                slug: Slug::parse(profile).unwrap(),
                name: Text::parse(profile).unwrap(),
                profile: Slug::parse(profile).unwrap(),
                base_url: HttpUrl::parse(&format!("{}/", shop.url())).unwrap(),
                currency: Currency::parse("INR").unwrap(),
            })
            .await
            .unwrap();
        let mut ids = Vec::new();
        for c in shop.shop.customers().iter().take(accounts) {
            let account = store
                .create_account(&NewAccount {
                    storefront_id: storefront.id,
                    label: Some(Text::parse(&format!("acct-{:02}", c.id)).unwrap()),
                    name: None,
                    email: Some(Email::parse(&c.email).unwrap()),
                    phone: None,
                    tags: Tags::default(),
                    active: true,
                })
                .await
                .unwrap();
            let jar = CookieJar::parse(
                &format!("f.session={}", shop.shop.sign_in(c.id).unwrap()),
                "127.0.0.1",
            )
            .unwrap();
            store.set_cookies(account.id, &jar).await.unwrap();
            ids.push(account.id);
        }
        let mut products = Vec::new();
        for p in shop.shop.products() {
            let product = store
                .create_product(&NewProduct {
                    storefront_id: storefront.id,
                    name: Text::parse(&p.name).unwrap(),
                    url: HttpUrl::parse(&format!("{}/{product_path}/{}", shop.url(), p.slug))
                        .unwrap(),
                    variant: None,
                    sku: None,
                    price: Some(Money::from_minor(p.price).unwrap()),
                    brand: None,
                    category: None,
                    in_stock: p.stock > 0,
                    image_url: None,
                })
                .await
                .unwrap();
            products.push(product.id);
        }
        let address = store
            .create_address(&NewAddress {
                label: Text::parse("Mumbai office").ok(),
                full_name: Text::parse("Asha Rao").unwrap(),
                line1: Text::parse("Flat 4, Sea View").unwrap(),
                street: Text::parse("Linking Road, Bandra West").ok(),
                landmark: None,
                postcode: Postcode::parse("400050").unwrap(),
                city: Text::parse("Mumbai").unwrap(),
                state: Text::parse("Maharashtra").unwrap(),
                phone: Phone::parse("9820012345").unwrap(),
                kind: AddressKind::Home,
                is_default: true,
            })
            .await
            .unwrap();
        let mut config = EngineConfig::new(dir.path());
        config.allow_internal = true;
        config.retry.base = Duration::from_millis(200);
        config.retry.max = Duration::from_secs(1);
        config.settle = SettleTiming {
            first: Duration::from_millis(200),
            max: Duration::from_secs(1),
            in_run: Duration::from_secs(3),
        };
        config.sweep_every = Duration::from_secs(1);
        let engine = Engine::new(store.clone(), config);
        let fixture = Fixture {
            shop,
            store,
            db_url,
            engine,
            storefront: storefront.id,
            accounts: ids,
            products,
            _address: address.id,
            dir,
            profile,
        };
        fixture.edit_profile(|p| p);
        fixture
    }

    pub fn workers(&self, name: &str, concurrency: usize) -> RunningWorkers {
        self.engine
            .workers(name, concurrency)
            .timing(fast_timing())
            .start()
    }

    /// A batch spec over the first `n` accounts.
    pub fn batch(
        &self,
        n: usize,
        lines: &[(usize, u32)],
        max_total: i64,
    ) -> cartwright_core::batch::NewBatch {
        serde_json::from_value(serde_json::json!({
            "accounts": {"storefront_id": self.storefront.get(), "range": {"from": 1, "to": n}},
            "lines": lines.iter().map(|(p, q)| serde_json::json!({"product_id": self.products[*p].get(), "quantity": q})).collect::<Vec<_>>(),
            "max_total": max_total,
        }))
        .unwrap()
    }

    /// Creates the batch for the accounts it selects.
    pub async fn submit(
        &self,
        spec: &cartwright_core::batch::NewBatch,
    ) -> cartwright_core::batch::Batch {
        let n = match &spec.accounts.range {
            Some(r) => r.to as usize,
            None => self.accounts.len(),
        };
        self.store
            .create_batch(spec, &self.accounts[..n], &[], None)
            .await
            .unwrap()
    }

    /// Waits until the batch leaves `running` (or has no order left to move).
    pub async fn settled(
        &self,
        batch: cartwright_core::ids::BatchId,
        limit: Duration,
    ) -> cartwright_core::batch::Batch {
        let deadline = std::time::Instant::now() + limit;
        loop {
            // A batch leaves `running` in the transaction that ends its last order.
            let b = self.store.batch(batch).await.unwrap();
            let c = b.counts;
            if b.state != cartwright_core::batch::BatchState::Running {
                return b;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "batch {batch} did not settle: {c:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn orders(
        &self,
        batch: cartwright_core::ids::BatchId,
    ) -> Vec<cartwright_core::order::Order> {
        let filter = cartwright_store::OrderFilter {
            batch: Some(batch),
            ..Default::default()
        };
        self.store
            .orders(
                &filter,
                &cartwright_store::PageRequest::number(1, 500).unwrap(),
            )
            .await
            .unwrap()
            .items
    }
}

impl Fixture {
    /// Writes a copy of the fixture's profile with `edit` applied into the engine's profile
    /// directory: it replaces the built-in one from the next run. Its history's window is a
    /// few seconds instead of a minute (the demo shop lists an order at once).
    pub fn edit_profile(&self, edit: impl FnOnce(String) -> String) {
        let file = format!("{}.toml", self.profile);
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../profiles")
                .join(&file),
        )
        .unwrap()
        .replace(
            "absent_for = \"1m\"",
            &format!("absent_for = \"{ABSENT_FOR}\""),
        );
        let dir = self.dir.path().join("profiles");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(file), edit(text)).unwrap();
    }

    /// Calls a control endpoint of the shop.
    pub async fn control(
        &self,
        method: reqwest::Method,
        path: &str,
        body: serde_json::Value,
    ) -> serde_json::Value {
        let response = reqwest::Client::new()
            .request(method, format!("{}{path}", self.shop.url()))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap_or(serde_json::Value::Null)
    }

    /// Runs SQL on the store's database from a connection of its own, as another process
    /// (or a person at a console) would.
    pub async fn exec(&self, sql: &str) {
        if self.db_url.starts_with("postgres") {
            let mut c = sqlx::PgConnection::connect(&self.db_url).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                .execute(&mut c)
                .await
                .unwrap();
        } else {
            let mut c = sqlx::SqliteConnection::connect(&self.db_url).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                .execute(&mut c)
                .await
                .unwrap();
        }
    }

    pub async fn wait_for(&self, what: &str, limit: Duration, check: impl AsyncFnMut() -> bool) {
        wait_until(what, limit, check).await;
    }
}

/// Polls `check` until it holds; fails the test after `limit`, naming `what`.
pub async fn wait_until(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- processes ----

/// A process's parent, while it runs (not gone, not exited and waiting to be reaped).
pub fn running_parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let (state, parent) = (fields.next()?, fields.next()?);
    (state != "Z").then(|| parent.parse().ok())?
}

/// Whether a process runs.
pub fn running(pid: u32) -> bool {
    running_parent(pid).is_some()
}

/// Chromium processes started by this test process (nextest runs each test in its own),
/// with the binary each runs, but not those that exited and wait to be reaped.
pub fn our_chromium_binaries() -> Vec<(u32, std::path::PathBuf)> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let parent = running_parent(pid)?;
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
            let chromium = exe
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("chromium"));
            (chromium && parent == me).then_some((pid, exe))
        })
        .collect()
}

pub fn our_chromium() -> Vec<u32> {
    our_chromium_binaries()
        .into_iter()
        .map(|(pid, _)| pid)
        .collect()
}
