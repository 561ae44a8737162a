//! The test harness: a real server on a free port, over a fresh database — a temporary SQLite
//! file, or a new PostgreSQL database when `CARTWRIGHT_TEST_DATABASE_URL` names a server.

use base64::Engine;
use cartwright::{Server, Settings};
use cartwright_core::operator::{NewOperator, Role};
use cartwright_core::values::{Password, Username};
use cartwright_store::Store;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection;

pub const PASSWORD: &str = "correct horse battery";

/// A running server with three operators (admin, operator, viewer) signed in.
pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub admin: String,
    pub operator: String,
    pub viewer: String,
    pub secret_key: String,
    pub database_url: String,
    server: Option<Server>,
    pg: Option<(String, String)>,
    dir: tempfile::TempDir,
}

/// An answer: status, headers and the body as JSON (or `Null` when it is not JSON).
pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
    pub json: Value,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts an error answer with this status and code, and returns its `field`.
    #[track_caller]
    pub fn error(&self, status: u16, code: &str) -> Option<String> {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.text()
        );
        assert_eq!(
            self.json["error"]["code"],
            code,
            "unexpected code; body: {}",
            self.text()
        );
        assert!(
            self.json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        self.json["error"]["field"].as_str().map(str::to_owned)
    }

    #[track_caller]
    pub fn ok(&self, status: u16) -> &Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.text()
        );
        &self.json
    }
}

/// A request body.
pub enum Body<'a> {
    None,
    Json(Value),
    Raw(&'a str, Vec<u8>),
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut pg = None;
        let database_url = match std::env::var("CARTWRIGHT_TEST_DATABASE_URL") {
            Ok(server) if server.starts_with("postgres") => {
                let name = format!("cw_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(&server)
                    .await
                    .expect("PostgreSQL test server");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let (base, _) = server.rsplit_once('/').expect("database URL with a path");
                pg = Some((server.clone(), name.clone()));
                format!("{base}/{name}")
            }
            _ => format!("sqlite://{}", dir.path().join("test.db").display()),
        };
        let secret_key = base64::engine::general_purpose::STANDARD.encode(rand_bytes());
        let mut settings = Settings {
            data_dir: dir.path().to_path_buf(),
            database_url: Some(database_url.clone()),
            listen: "127.0.0.1:0".parse().expect("address"),
            secret_key: Some(secret_key.clone()),
            db_max_connections: 4,
            // The demo shops of the tests listen on 127.0.0.1.
            allow_internal_addresses: true,
            ..Settings::default()
        };
        adjust(&mut settings);
        let database_url = settings.database_url();
        let server = Server::start(&settings).await.expect("server starts");
        let base = format!("http://{}", server.addr);
        for (name, role) in [
            ("admin", Role::Admin),
            ("operator", Role::Operator),
            ("viewer", Role::Viewer),
        ] {
            create_operator(&server.store, name, role).await;
        }
        let mut app = TestApp {
            base,
            http: reqwest::Client::new(),
            admin: String::new(),
            operator: String::new(),
            viewer: String::new(),
            secret_key,
            database_url,
            server: Some(server),
            pg,
            dir,
        };
        app.admin = app.login("admin", PASSWORD).await;
        app.operator = app.login("operator", PASSWORD).await;
        app.viewer = app.login("viewer", PASSWORD).await;
        app
    }

    /// The data directory (holds the SQLite files when SQLite is in use).
    pub fn store_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    pub fn store(&self) -> &Store {
        &self.server.as_ref().expect("running").store
    }

    /// Stops the server as a signal would: gracefully.
    pub async fn stop(&mut self) -> std::io::Result<()> {
        self.server.take().expect("running").stop().await
    }

    pub async fn login(&self, username: &str, password: &str) -> String {
        let r = self
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Body::Json(json!({"username": username, "password": password})),
            )
            .await;
        r.ok(200)["token"].as_str().expect("token").to_owned()
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Body<'_>,
    ) -> Resp {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req = match body {
            Body::None => req,
            Body::Json(v) => req.json(&v),
            Body::Raw(content_type, bytes) => req.header("content-type", content_type).body(bytes),
        };
        let response = req.send().await.expect("request sent");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.expect("body").to_vec();
        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
            json,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.call(Method::GET, path, Some(token), Body::None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(token), Body::Json(body))
            .await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::PUT, path, Some(token), Body::Json(body))
            .await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::PATCH, path, Some(token), Body::Json(body))
            .await
    }

    pub async fn put_raw(&self, path: &str, token: &str, content_type: &str, body: &str) -> Resp {
        self.call(
            Method::PUT,
            path,
            Some(token),
            Body::Raw(content_type, body.as_bytes().to_vec()),
        )
        .await
    }

    pub async fn post_raw(&self, path: &str, token: &str, content_type: &str, body: &[u8]) -> Resp {
        self.call(
            Method::POST,
            path,
            Some(token),
            Body::Raw(content_type, body.to_vec()),
        )
        .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Resp {
        self.call(Method::DELETE, path, Some(token), Body::None)
            .await
    }

    /// A storefront on `https://{slug}.example.com/`.
    pub async fn storefront(&self, slug: &str) -> i64 {
        let r = self
            .post(
                "/api/v1/storefronts",
                &self.admin,
                json!({"slug": slug, "name": slug, "profile": "demo", "base_url": format!("https://{slug}.example.com/")}),
            )
            .await;
        r.ok(201)["id"].as_i64().expect("id")
    }

    /// An account with this email.
    pub async fn account(&self, storefront: i64, email: &str, extra: Value) -> Value {
        let mut body = json!({"storefront_id": storefront, "email": email});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        self.post("/api/v1/accounts", &self.operator, body)
            .await
            .ok(201)
            .clone()
    }

    /// The `total` of a list route: how many rows exist, to prove nothing was half-written.
    pub async fn count(&self, path: &str) -> i64 {
        self.get(path, &self.admin).await.ok(200)["total"]
            .as_i64()
            .expect("total")
    }
}

fn rand_bytes() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    for chunk in bytes.chunks_mut(16) {
        chunk.copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    bytes
}

async fn create_operator(store: &Store, name: &str, role: Role) {
    let new = NewOperator {
        username: Username::parse(name).expect("username"),
        email: None,
        password: Password::parse(PASSWORD).expect("password"),
        role,
    };
    let hash = cartwright_web::auth::password::hash_blocking(PASSWORD).expect("hash");
    store.create_operator(&new, &hash).await.expect("operator");
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Dropping the server's stop signal ends it with the test's runtime. The PostgreSQL
        // database is dropped from a thread of its own (Drop cannot await, and the test's
        // runtime is busy dropping us); FORCE ends the server's remaining connections.
        drop(self.server.take());
        let Some((admin_url, name)) = self.pg.take() else {
            return;
        };
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url).await {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

impl TestApp {
    /// Runs one SQL statement straight on the test database, behind the server's back: for
    /// states the API cannot produce (an expired token).
    pub async fn exec_sql(&self, sql: &str) {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        if self.database_url.starts_with("postgres") {
            let mut conn = sqlx::PgConnection::connect(&self.database_url)
                .await
                .expect("connect");
            sqlx::query(sql)
                .execute(&mut conn)
                .await
                .expect("statement");
        } else {
            let mut conn = sqlx::SqliteConnection::connect(&self.database_url)
                .await
                .expect("connect");
            sqlx::query(sql)
                .execute(&mut conn)
                .await
                .expect("statement");
        }
    }

    /// Reads one count straight from the test database (`SELECT COUNT(*) …`).
    pub async fn count_sql(&self, sql: &str) -> i64 {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        if self.database_url.starts_with("postgres") {
            let mut conn = sqlx::PgConnection::connect(&self.database_url)
                .await
                .expect("connect");
            sqlx::query_scalar(sql)
                .fetch_one(&mut conn)
                .await
                .expect("count")
        } else {
            let mut conn = sqlx::SqliteConnection::connect(&self.database_url)
                .await
                .expect("connect");
            sqlx::query_scalar(sql)
                .fetch_one(&mut conn)
                .await
                .expect("count")
        }
    }
}

/// A server with the demo shop beside it, seeded the way `cartwright demo` seeds it.
pub struct ShopApp {
    pub app: TestApp,
    pub shop: cartwright_demo_shop::RunningShop,
    pub storefront: i64,
}

impl ShopApp {
    pub async fn spawn(adjust: impl FnOnce(&mut cartwright_demo_shop::ShopConfig)) -> ShopApp {
        Self::spawn_with(adjust, |s| s.workers = 2).await
    }

    /// Like [`ShopApp::spawn`], with Cartwright's settings adjusted too.
    pub async fn spawn_with(
        adjust: impl FnOnce(&mut cartwright_demo_shop::ShopConfig),
        settings: impl FnOnce(&mut Settings),
    ) -> ShopApp {
        let mut config = cartwright_demo_shop::ShopConfig {
            customers: 8,
            pincode_delay: std::time::Duration::from_millis(100),
            ..Default::default()
        };
        adjust(&mut config);
        let shop = cartwright_demo_shop::start("127.0.0.1:0".parse().unwrap(), config)
            .await
            .unwrap();
        let app = TestApp::spawn_with(settings).await;
        cartwright::demo::seed(app.store(), &shop).await.unwrap();
        let storefronts = app.get("/api/v1/storefronts", &app.admin).await;
        let storefront = storefronts.ok(200).as_array().unwrap()[0]["id"]
            .as_i64()
            .unwrap();
        ShopApp {
            app,
            shop,
            storefront,
        }
    }

    /// Runs one order (account 1, one unit of the first product) whose confirmation is lost
    /// while the shop's history lags far behind, under a demo profile that does not trust
    /// its history: it ends `unresolved`, for a person. Returns the batch and order ids.
    pub async fn unresolved_order(&self) -> (i64, i64) {
        let profiles = self.app.store_dir().join("profiles");
        std::fs::create_dir_all(&profiles).unwrap();
        let demo = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../profiles/demo.toml"),
        )
        .unwrap()
        .replace("reliable = true", "reliable = false")
        .replace("absent_for = \"1m\"", "absent_for = \"2s\"");
        std::fs::write(profiles.join("demo.toml"), demo).unwrap();
        self.shop.shop.set_faults(cartwright_demo_shop::Faults {
            confirmation: cartwright_demo_shop::Confirmation::Lost,
            history_lag_ms: 600_000,
            ..Default::default()
        });
        let product = self.product(0).await;
        let batch = self
            .app
            .post(
                "/api/v1/batches",
                &self.app.operator,
                json!({
                    "accounts": {"storefront_id": self.storefront, "range": {"from": 1, "to": 1}},
                    "lines": [{"product_id": product, "quantity": 1}],
                    "max_total": 100_000,
                }),
            )
            .await
            .ok(201)["id"]
            .as_i64()
            .unwrap();
        let done = self.settled(batch).await;
        assert_eq!(done["counts"]["unresolved"], 1, "{done}");
        let orders = self
            .app
            .get(&format!("/api/v1/batches/{batch}/orders"), &self.app.admin)
            .await;
        let order = orders.ok(200)["items"][0]["id"].as_i64().unwrap();
        (batch, order)
    }

    /// The id of the `n`th product (from 0) that the shop has in stock.
    pub async fn product(&self, n: usize) -> i64 {
        let list = self
            .app
            .get(
                "/api/v1/products?per_page=100&in_stock=true",
                &self.app.admin,
            )
            .await;
        list.ok(200)["items"].as_array().unwrap()[n]["id"]
            .as_i64()
            .unwrap()
    }

    /// Waits for the batch to leave `running` or go idle, and returns it.
    pub async fn settled(&self, batch: i64) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
        loop {
            let b = self
                .app
                .get(&format!("/api/v1/batches/{batch}"), &self.app.admin)
                .await
                .ok(200)
                .clone();
            let c = &b["counts"];
            let busy = c["queued"].as_i64().unwrap()
                + c["running"].as_i64().unwrap()
                + c["placing"].as_i64().unwrap();
            if busy == 0 || b["state"] != "running" {
                return b;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "batch {batch} did not settle: {b}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        }
    }
}

/// A child process in its own process group (so a signal reaches its Chromium too), killed
/// with everything under it when the test ends — also when the test fails.
pub struct Group(std::process::Child);

impl Group {
    pub fn spawn(mut cmd: std::process::Command) -> Group {
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        Group(cmd.spawn().expect("the process starts"))
    }

    /// Sends `signal` (`-KILL`, `-TERM`) to the whole group.
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([signal, "--", &format!("-{}", self.0.id())])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal}");
    }

    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.0.wait().expect("wait")
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .stderr(std::process::Stdio::null())
            .status();
        let _ = self.0.wait();
    }
}
