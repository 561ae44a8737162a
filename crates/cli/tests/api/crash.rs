//! At most once across a real crash: the server process (and its browser) is killed with
//! SIGKILL while an order is being placed; the server started again finds the storefront's
//! history down, keeps the order placing until it can be read, then settles it from there and
//! the batch goes on to its end. One click, one order.

use crate::helpers::Group;
use base64::Engine as _;
use cartwright::Settings;
use cartwright_demo_shop::{Confirmation, Faults, ShopConfig};
use sqlx::Connection;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `cartwright serve` with one browser worker, on a free port.
fn server(dir: &std::path::Path, settings: &Settings, name: &str) -> Group {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cartwright"));
    cmd.current_dir(dir)
        .env("CARTWRIGHT_DATA_DIR", &settings.data_dir)
        .env("CARTWRIGHT_DATABASE_URL", settings.database_url())
        .env(
            "CARTWRIGHT_SECRET_KEY",
            settings.secret_key.as_deref().unwrap(),
        )
        .env("CARTWRIGHT_JOB_STALE_AFTER", "3s")
        .env("CARTWRIGHT_ALLOW_INTERNAL_ADDRESSES", "true")
        // Orders waiting out the history's outage below get the runs it takes.
        .env("CARTWRIGHT_MAX_RUNS", "10")
        .env("CARTWRIGHT_NODE_ID", name)
        .env("RUST_LOG", "warn")
        .args(["serve", "--listen", "127.0.0.1:0", "--workers", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // Its own process group, so that the kill takes its Chromium with it, as a crash of the
    // machine would.
    Group::spawn(cmd)
}

async fn wait(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_placing_leaves_exactly_one_order() {
    let dir = tempfile::tempdir().unwrap();
    let shop = cartwright_demo_shop::start(
        "127.0.0.1:0".parse().unwrap(),
        ShopConfig {
            customers: 4,
            faults: Faults {
                confirmation: Confirmation::Hang,
                ..Faults::default()
            },
            ..ShopConfig::default()
        },
    )
    .await
    .unwrap();
    let database_url = match std::env::var("CARTWRIGHT_TEST_DATABASE_URL") {
        Ok(server) if server.starts_with("postgres") => {
            let name = format!("cw_crash_{}", uuid::Uuid::new_v4().simple());
            let mut conn = sqlx::PgConnection::connect(&server).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .unwrap();
            format!("{}/{name}", server.rsplit_once('/').unwrap().0)
        }
        _ => format!("sqlite://{}", dir.path().join("crash.db").display()),
    };
    let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let settings = Settings {
        data_dir: dir.path().join("data"),
        database_url: Some(database_url),
        secret_key: Some(key),
        ..Settings::default()
    };
    let secret = cartwright::secret_key(&settings).unwrap();
    let store = cartwright::open_store(&settings, &secret).await.unwrap();
    cartwright::demo::seed(&store, &shop).await.unwrap();
    let storefront = store.storefronts().await.unwrap()[0].id;
    let product = store
        .products(
            &cartwright_store::ProductFilter {
                storefront_id: Some(storefront),
                in_stock: Some(true),
                text: None,
            },
            cartwright_store::PageRequest::number(1, 1).unwrap(),
        )
        .await
        .unwrap()
        .items[0]
        .id;
    let spec: cartwright_core::batch::NewBatch = serde_json::from_value(serde_json::json!({
        "accounts": {"storefront_id": storefront.get(), "range": {"from": 1, "to": 3}},
        "lines": [{"product_id": product.get(), "quantity": 1}],
        "max_total": 100_000,
    }))
    .unwrap();
    let engine = cartwright_engine::Engine::new(store.clone(), settings.engine());
    let batch = engine.submit_batch(&spec, None).await.unwrap();

    let mut doomed = server(dir.path(), &settings, "doomed");
    wait(
        "the click to reach the shop",
        Duration::from_secs(90),
        async || !shop.shop.orders().is_empty(),
    )
    .await;
    let order = store
        .orders(
            &cartwright_store::OrderFilter {
                batch: Some(batch.id),
                state: Some(cartwright_core::order::OrderState::Placing),
                ..Default::default()
            },
            &cartwright_store::PageRequest::number(1, 5).unwrap(),
        )
        .await
        .unwrap()
        .items
        .remove(0);
    doomed.signal("-KILL");
    doomed.wait();
    // The shop's order history is down when the server comes back, longer than a job's
    // lease: the crashed order stays placing, never clicked again, until it can be read.
    shop.shop.set_faults(Faults {
        history_error_rate: 1.0,
        ..Faults::default()
    });
    let mut rescuer = server(dir.path(), &settings, "rescuer");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let during = store.order(order.id).await.unwrap();
    assert_eq!(
        during.state,
        cartwright_core::order::OrderState::Placing,
        "{during:?}"
    );
    assert_eq!(
        shop.shop.orders().len(),
        1,
        "nothing clicked again meanwhile"
    );
    shop.shop.set_faults(Faults::default());
    wait(
        "the order to be settled",
        Duration::from_secs(90),
        async || {
            store.batch(batch.id).await.unwrap().state
                == cartwright_core::batch::BatchState::Finished
        },
    )
    .await;
    rescuer.signal("-TERM");
    let status = rescuer.wait();
    assert!(
        status.success(),
        "the server stops cleanly on SIGTERM: {status:?}"
    );

    let order = store.order(order.id).await.unwrap();
    let placed = shop.shop.orders();
    assert_eq!(
        placed.len(),
        3,
        "one click, one order, for each of the three"
    );
    assert_eq!(order.state, cartwright_core::order::OrderState::Placed);
    assert!(
        placed
            .iter()
            .any(|p| Some(p.number.as_str()) == order.order_number.as_deref()),
        "the crashed order's number is the one the shop recorded"
    );
    assert_eq!(order.attempts, 1);
    let batch = store.batch(batch.id).await.unwrap();
    assert_eq!(batch.counts.placed, 3, "the batch went on to its end");
    engine.shutdown().await;
    store.close().await;
}
