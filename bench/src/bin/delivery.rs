//! `bench/delivery`: the digital-goods side's figures on SQLite or the PostgreSQL database
//! `--database-url` names:
//! 1. stock import: 100,000 keys into one product (sealed, fingerprinted, duplicates checked);
//! 2. paid → delivered: N paid orders (ingested first, each with its delivery job) delivered
//!    by the real workers through the delivery page channel, orders/s from the workers' start
//!    to the last delivered;
//! 3. the push receiver through the real server: 64 connections sending signed, distinct
//!    pushes for 10 s, answer time p50/p99 (each push kept in the inbox with its job; the
//!    server's workers off, so the figure is the receiver's own).

use cartwright_commerce::{Commerce, CommerceConfig, DeliveryHandler};
use cartwright_core::digital::{NewDigitalProduct, ProductKind};
use cartwright_core::market::{
    Buyer, IncomingLine, IncomingOrder, MarketOrderState, Reported, Source,
};
use cartwright_core::values::Text;
use cartwright_jobs::{Handler, Workers};
use cartwright_store::{DbSettings, NewConnection, SecretKey, Store};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut database_url = None;
    let mut items = 100_000usize;
    let mut orders = 5_000usize;
    let mut concurrency = cartwright_commerce::LANE_WIDTH;
    let mut senders = 64usize;
    let mut seconds = 10u64;
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_default();
        let number = || -> anyhow::Result<usize> {
            value
                .parse()
                .map_err(|_| anyhow::anyhow!("{flag} takes a number, not {value:?}"))
        };
        match flag.as_str() {
            "--database-url" => database_url = Some(value.clone()),
            "--items" => items = number()?,
            "--orders" => orders = number()?,
            "--concurrency" => concurrency = number()?,
            "--senders" => senders = number()?,
            "--seconds" => seconds = number()? as u64,
            other => anyhow::bail!(
                "unknown flag {other}; flags: --database-url URL --items N --orders N --concurrency N --senders N --seconds S"
            ),
        }
    }
    let dir = tempfile::tempdir()?;
    let url = database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("goods.db").display()));
    let store = Store::connect(
        &DbSettings {
            url,
            max_connections: 16,
        },
        &SecretKey::generate(),
    )
    .await?;
    store.migrate().await?;
    let backend = format!("{:?}", store.backend()).to_lowercase();

    // 1. Stock import.
    let product = |sku: &str| NewDigitalProduct {
        sku: Text::parse(sku).expect("a valid SKU"),
        name: Text::parse(sku).expect("a valid name"),
        kind: ProductKind::Code,
        message: "Your code: {{item.code}} — {{delivery.link}}".into(),
        content: None,
        low_stock: 0,
        page: Default::default(),
    };
    let big = store.create_digital_product(&product("BULK")).await?;
    let text: String = (0..items)
        .map(|i| {
            format!(
                "BULK-{i:08}-{:08X}\n",
                (i as u64).wrapping_mul(2_654_435_761) as u32
            )
        })
        .collect();
    let started = Instant::now();
    let report = store.import_stock(big.id, &text, false).await?;
    let import = started.elapsed();
    anyhow::ensure!(
        report.stock.available == items as i64,
        "imported {} of {items}",
        report.stock.available
    );
    println!(
        "delivery bench: {backend}: stock import of {items} keys: {:.2}s ({:.0} keys/s)",
        import.as_secs_f64(),
        items as f64 / import.as_secs_f64()
    );

    // 2. Paid → delivered.
    let goods = store.create_digital_product(&product("GIFT")).await?;
    let keys: String = (0..orders).map(|i| format!("GIFT-{i:08}\n")).collect();
    store.import_stock(goods.id, &keys, false).await?;
    let connection = store.create_connection(&bench_connection()).await?;
    store
        .create_listing(connection.id, "777", "", "", goods.id, 1)
        .await?;
    let started = Instant::now();
    for n in 0..orders {
        store.ingest_order(&paid(n), Source::Api, None).await?;
    }
    let ingest = started.elapsed();
    let commerce = Commerce::new(
        store.clone(),
        CommerceConfig {
            public_url: "https://goods.example".into(),
        },
    );
    let handler: Arc<dyn Handler> = Arc::new(DeliveryHandler::new(commerce));
    let started = Instant::now();
    let workers = Workers::new(store.clone(), "bench")
        .lane(
            "goods",
            concurrency,
            vec![(cartwright_store::DELIVERY_JOB, handler)],
        )
        .start();
    loop {
        let delivered = store
            .market_order_counts()
            .await?
            .into_iter()
            .find(|(s, _)| *s == MarketOrderState::Delivered)
            .map_or(0, |(_, n)| n);
        if delivered as usize >= orders {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivered = started.elapsed();
    workers.shutdown(Duration::from_secs(5)).await;
    println!(
        "delivery bench: {backend}: paid → delivered: {orders} orders, {concurrency} at once: {:.0} orders/s ({:.2}s); ingested at {:.0} orders/s",
        orders as f64 / delivered.as_secs_f64(),
        delivered.as_secs_f64(),
        orders as f64 / ingest.as_secs_f64()
    );
    store.close().await;

    // 3. The push receiver, through the server.
    let data = tempfile::tempdir()?;
    let settings = cartwright::Settings {
        data_dir: data.path().to_path_buf(),
        database_url: database_url
            .map(|u| sibling_database(&u, &format!("cw_bench_push_{}", std::process::id()))),
        listen: "127.0.0.1:0".parse()?,
        workers: 0,
        ..Default::default()
    };
    if let Some(url) = &settings.database_url {
        create_database(sibling_database(url, "postgres"), url).await?;
    }
    let server = cartwright::Server::start(&settings).await?;
    let connection = server.store.create_connection(&bench_connection()).await?;
    let push_url = server.commerce.push_url(connection.id);
    let path = format!("/api/v1/market/push/{}", connection.id);
    let report = push_load(
        server.addr,
        &push_url,
        &path,
        senders,
        Duration::from_secs(seconds),
    )
    .await?;
    println!(
        "delivery bench: {backend}: push receiver, {senders} senders for {seconds}s: {:.0} pushes/s, p50 {:.2} ms, p99 {:.2} ms, {} errors",
        report.rate(),
        report.percentile_ms(50.0),
        report.percentile_ms(99.0),
        report.errors
    );
    server.stop().await?;
    Ok(())
}

/// The benchmark's marketplace connection (nothing is ever fetched from it).
fn bench_connection() -> NewConnection {
    NewConnection {
        marketplace: "shopee".into(),
        name: "Bench".into(),
        shop_id: "1".into(),
        base_url: "http://127.0.0.1:9".into(),
        partner_id: "1".into(),
        partner_key: PARTNER_KEY.into(),
        access_token: "token".into(),
        refresh_token: None,
    }
}

const PARTNER_KEY: &str = "bench-partner-key-0123456789";

fn paid(n: usize) -> IncomingOrder {
    IncomingOrder {
        marketplace: "shopee".into(),
        shop_id: "1".into(),
        external_id: format!("261207B{n:07}"),
        buyer: Buyer {
            name: Some(format!("buyer{n}")),
            id: Some(n.to_string()),
            email: None,
        },
        lines: vec![IncomingLine {
            item_id: "777".into(),
            model_id: String::new(),
            seller_sku: String::new(),
            name: "Gift card".into(),
            quantity: 1,
            unit_price_minor: Some(5_000_000),
        }],
        total_minor: Some(5_000_000),
        currency: Some("IDR".into()),
        payment_method: Some("ShopeePay".into()),
        status: Reported::Paid,
        updated_at: time::OffsetDateTime::now_utc(),
    }
}

/// The database named `name` on the server `url` names.
fn sibling_database(url: &str, name: &str) -> String {
    match url.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => url.to_owned(),
    }
}

async fn create_database(admin: String, url: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    let name = url.rsplit_once('/').map(|(_, n)| n).unwrap_or_default();
    let mut c = sqlx::PgConnection::connect(&admin).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut c)
        .await?;
    Ok(())
}

/// `senders` keep-alive connections POSTing signed status pushes, each for a new order.
async fn push_load(
    addr: std::net::SocketAddr,
    push_url: &str,
    path: &str,
    senders: usize,
    duration: Duration,
) -> anyhow::Result<cartwright_bench::LoadReport> {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper_util::rt::TokioIo;
    let warmup = Duration::from_secs(1);
    let start = Instant::now() + warmup;
    let end = start + duration;
    let mut tasks = Vec::with_capacity(senders);
    for c in 0..senders {
        let (push_url, path) = (push_url.to_owned(), path.to_owned());
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            let (mut latencies, mut errors) = (Vec::new(), 0usize);
            for n in 0u64.. {
                let body = format!(
                    r#"{{"data":{{"items":[],"ordersn":"2612{c:03}P{n:07}","status":"READY_TO_SHIP","completed_scenario":"","update_time":{t}}},"shop_id":1,"code":3,"timestamp":{t}}}"#,
                    t = time::OffsetDateTime::now_utc().unix_timestamp()
                );
                let authorization = cartwright_commerce::shopee::sign(
                    PARTNER_KEY,
                    &format!("{push_url}|{body}"),
                );
                let request = hyper::Request::post(path.as_str())
                    .header("host", "bench")
                    .header("content-type", "application/json")
                    .header("authorization", authorization)
                    .body(Full::new(Bytes::from(body)))?;
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let response = sender.send_request(request).await?;
                let ok = response.status() == 200;
                response.into_body().collect().await?;
                if sent >= start {
                    latencies.push(sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                    errors += usize::from(!ok);
                }
            }
            anyhow::Ok((latencies, errors))
        }));
    }
    cartwright_bench::LoadReport::gather(duration, tasks).await
}
