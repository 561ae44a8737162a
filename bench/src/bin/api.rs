//! `bench/api`: loads 10,000 accounts and measures `GET /api/v1/accounts` (50-row pages) at 64
//! concurrent connections, printing requests/s and latency percentiles. The server is the real
//! one (`cartwright::Server`), over SQLite by default or the PostgreSQL database `--database-url`
//! names.

use anyhow::{Context, bail};
use cartwright::{Server, Settings};
use cartwright_bench::{load, next_cursor};
use cartwright_core::operator::{NewOperator, Role};
use cartwright_core::values::{Password, Username};
use std::time::Duration;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Args {
    database_url: Option<String>,
    accounts: usize,
    connections: usize,
    seconds: u64,
    per_page: usize,
}

fn args() -> anyhow::Result<Args> {
    let mut args = Args {
        database_url: None,
        accounts: 10_000,
        connections: 64,
        seconds: 10,
        per_page: 50,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--database-url" => args.database_url = Some(value()?),
            "--accounts" => args.accounts = value()?.parse()?,
            "--connections" => args.connections = value()?.parse()?,
            "--seconds" => args.seconds = value()?.parse()?,
            "--per-page" => args.per_page = value()?.parse()?,
            other => bail!(
                "unknown flag {other}; flags: --database-url URL --accounts N --connections N --seconds N --per-page N"
            ),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    let dir = tempfile::tempdir()?;
    let settings = Settings {
        data_dir: dir.path().to_path_buf(),
        database_url: args.database_url.clone(),
        listen: "127.0.0.1:0".parse()?,
        log_level: "warn".into(),
        db_max_connections: 8,
        ..Settings::default()
    };
    let server = Server::start(&settings).await?;
    let backend = format!("{:?}", server.store.backend()).to_lowercase();

    let password = "benchmark password";
    let hash = cartwright_web::auth::password::hash_blocking(password)
        .map_err(|_| anyhow::anyhow!("hash"))?;
    let new = NewOperator {
        username: Username::parse("bench").map_err(anyhow::Error::msg)?,
        email: None,
        password: Password::parse(password).map_err(anyhow::Error::msg)?,
        role: Role::Admin,
    };
    server.store.create_operator(&new, &hash).await?;

    let http = Client::new(server.addr);
    let token = http.login("bench", password).await?;
    let storefront = http
        .post_json(&token, "/api/v1/storefronts", serde_json::json!({"slug": "bench", "name": "Bench", "profile": "demo", "base_url": "https://bench.example.com/"}))
        .await?["id"]
        .as_i64()
        .context("storefront id")?;
    let mut csv = String::from("label,name,email,phone,tags\n");
    for i in 0..args.accounts {
        csv.push_str(&format!(
            "acct-{i:05},Customer {i},customer{i}@example.com,98{i:08},batch-{}\n",
            i % 10
        ));
    }
    let loaded = std::time::Instant::now();
    let report = http
        .post_csv(
            &token,
            &format!("/api/v1/accounts/import?storefront_id={storefront}"),
            csv,
        )
        .await?;
    println!(
        "api bench: {backend}, {} accounts imported in {:.2}s",
        report["created"],
        loaded.elapsed().as_secs_f64()
    );

    let pages = args.accounts.div_ceil(args.per_page).max(1);
    let per_page = args.per_page;
    let by_number = load(
        server.addr,
        args.connections,
        Duration::from_secs(2),
        Duration::from_secs(args.seconds),
        |c| {
            let mut i = c;
            let headers = vec![("authorization", format!("Bearer {token}"))];
            let next: cartwright_bench::NextPath = Box::new(move |_| {
                i += 1;
                format!(
                    "/api/v1/accounts?per_page={per_page}&page={}",
                    i % pages + 1
                )
            });
            (headers, next)
        },
    )
    .await?;
    print_report(
        &backend,
        "page numbers, every page equally",
        &args,
        &by_number,
    );

    let by_cursor = load(
        server.addr,
        args.connections,
        Duration::from_secs(2),
        Duration::from_secs(args.seconds),
        |_| {
            // Each connection walks the whole list, page after page, then starts again.
            let headers = vec![("authorization", format!("Bearer {token}"))];
            (
                headers,
                Box::new(move |previous: &[u8]| match next_cursor(previous) {
                    Some(cursor) => format!("/api/v1/accounts?per_page={per_page}&cursor={cursor}"),
                    None => format!("/api/v1/accounts?per_page={per_page}"),
                }),
            )
        },
    )
    .await?;
    print_report(
        &backend,
        "cursors, walking the whole list",
        &args,
        &by_cursor,
    );
    server.stop().await?;
    Ok(())
}

fn print_report(backend: &str, mode: &str, args: &Args, r: &cartwright_bench::LoadReport) {
    println!(
        "api bench: {backend} GET /api/v1/accounts, {} rows/page by {mode}, {} connections, {}s: \
         {:.0} requests/s, p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} errors of {}",
        args.per_page,
        args.connections,
        args.seconds,
        r.rate(),
        r.percentile_ms(50.0),
        r.percentile_ms(90.0),
        r.percentile_ms(99.0),
        r.percentile_ms(100.0),
        r.errors,
        r.requests
    );
}

/// The few set-up calls the benchmark makes, over hyper too.
struct Client {
    addr: std::net::SocketAddr,
}

impl Client {
    fn new(addr: std::net::SocketAddr) -> Self {
        Self { addr }
    }

    async fn send(
        &self,
        token: Option<&str>,
        path: &str,
        content_type: &str,
        body: String,
    ) -> anyhow::Result<serde_json::Value> {
        use http_body_util::BodyExt;
        let stream = tokio::net::TcpStream::connect(self.addr).await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let mut request = hyper::Request::post(path)
            .header("host", "bench")
            .header("content-type", content_type);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = sender
            .send_request(request.body(http_body_util::Full::new(bytes::Bytes::from(body)))?)
            .await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            bail!(
                "{path} answered {status}: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        Ok(serde_json::from_slice(&bytes)?)
    }

    async fn login(&self, username: &str, password: &str) -> anyhow::Result<String> {
        let body = serde_json::json!({"username": username, "password": password}).to_string();
        let answer = self
            .send(None, "/api/v1/auth/login", "application/json", body)
            .await?;
        answer["token"].as_str().map(str::to_owned).context("token")
    }

    async fn post_json(
        &self,
        token: &str,
        path: &str,
        body: serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        self.send(Some(token), path, "application/json", body.to_string())
            .await
    }

    async fn post_csv(
        &self,
        token: &str,
        path: &str,
        body: String,
    ) -> anyhow::Result<serde_json::Value> {
        self.send(Some(token), path, "text/csv", body).await
    }
}
