//! Scale-out on PostgreSQL: one server and two worker processes share a batch of 200 demo
//! orders; one worker is killed with SIGKILL mid-run, its jobs are rescued and finished;
//! every order is placed exactly once and every stored event reaches a WebSocket subscriber
//! of the server, whichever node wrote it.
//!
//! Worker processes on other machines need one shared database server: on SQLite this test
//! checks the same batch with the server's own workers only.

use crate::helpers::*;
use futures::StreamExt;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn worker(app: &TestApp, name: &str, concurrency: usize) -> Group {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cartwright"));
    cmd.current_dir(app.store_dir())
        .env("CARTWRIGHT_DATA_DIR", app.store_dir().join(name))
        .env("CARTWRIGHT_DATABASE_URL", &app.database_url)
        .env("CARTWRIGHT_SECRET_KEY", &app.secret_key)
        .env("CARTWRIGHT_JOB_STALE_AFTER", "3s")
        .env("CARTWRIGHT_ALLOW_INTERNAL_ADDRESSES", "true")
        .env("CARTWRIGHT_NODE_ID", name)
        .env("RUST_LOG", "warn")
        .args(["worker", "--concurrency", &concurrency.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    Group::spawn(cmd)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_processes_and_a_server_place_200_orders_once_each_through_a_crash() {
    let s = ShopApp::spawn(|c| {
        c.customers = 20;
        // A session value the killed worker's browser received dies with it; with rotation on,
        // that account's later orders would fail as logged out, which is not what this tests.
        c.rotate_every = 0;
    })
    .await;
    let app = &s.app;
    let postgres = app.database_url.starts_with("postgres");
    let product = s.product(0).await;
    // On SQLite only the server's own two contexts work: a smaller batch proves the same.
    let reps: usize = if postgres { 10 } else { 1 };
    let total = 20 * reps;
    let spec = json!({
        "name": "scale-out",
        "accounts": {"storefront_id": s.storefront, "range": {"from": 1, "to": 20}},
        "lines": [{"product_id": product, "quantity": 1}],
        "repetitions": reps,
        "max_total": 1_000_000,
    });
    let batch = app.post("/api/v1/batches", &app.operator, spec).await;
    let batch = batch.ok(201)["id"].as_i64().unwrap();
    let ws_url = format!(
        "{}/api/v1/ws/events?batch_id={batch}&access_token={}",
        app.base.replace("http", "ws"),
        app.viewer
    );
    let (socket, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    let received = std::sync::Arc::new(std::sync::Mutex::new(BTreeSet::<i64>::new()));
    let reader = {
        let received = received.clone();
        tokio::spawn(async move {
            let mut socket = socket;
            while let Some(Ok(message)) = socket.next().await {
                if let tokio_tungstenite::tungstenite::Message::Text(t) = message
                    && let Ok(e) = serde_json::from_str::<serde_json::Value>(&t)
                    && let Some(id) = e["id"].as_i64()
                {
                    received.lock().unwrap().insert(id);
                }
            }
        })
    };

    let placed = async || -> i64 {
        app.get(&format!("/api/v1/batches/{batch}"), &app.viewer)
            .await
            .ok(200)["counts"]["placed"]
            .as_i64()
            .unwrap()
    };
    let mut workers = Vec::new();
    if postgres {
        let mut doomed = worker(app, "doomed", 2);
        workers.push(worker(app, "steady", 2));
        let deadline = Instant::now() + Duration::from_secs(600);
        while placed().await < 40 {
            assert!(Instant::now() < deadline, "the workers place orders");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        doomed.signal("-KILL");
        doomed.wait();
    }
    // 200 orders through Chromium on two cores take minutes: wait for the end generously.
    let deadline = Instant::now() + Duration::from_secs(900);
    let done = loop {
        let b = app
            .get(&format!("/api/v1/batches/{batch}"), &app.viewer)
            .await
            .ok(200)
            .clone();
        if b["state"] != "running" {
            break b;
        }
        assert!(Instant::now() < deadline, "the batch ends: {b}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(done["state"], "finished", "{done}");
    let failed = app
        .get(
            &format!("/api/v1/orders?batch_id={batch}&state=failed"),
            &app.viewer,
        )
        .await;
    assert_eq!(
        done["counts"]["placed"].as_u64(),
        Some(total as u64),
        "{done}\nfailed: {}",
        failed.text()
    );

    // The shop's own record: 10 orders for each of the 20 accounts, none twice.
    let orders = s.shop.shop.orders();
    assert_eq!(orders.len(), total);
    let mut per_account: BTreeMap<u32, usize> = BTreeMap::new();
    for o in &orders {
        *per_account.entry(o.customer).or_default() += 1;
    }
    assert!(
        per_account.values().all(|n| *n == reps) && per_account.len() == 20,
        "{per_account:?}"
    );
    let numbers: BTreeSet<_> = orders.iter().map(|o| o.number.clone()).collect();
    assert_eq!(numbers.len(), total);

    // Every stored event of the batch reached the subscriber, from every node.
    let stored: BTreeSet<i64> = app
        .store()
        .events(&cartwright_store::EventQuery {
            batch: Some(cartwright_core::ids::BatchId(batch)),
            limit: 5_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .iter()
        .map(|e| e.id.get())
        .collect();
    assert!(stored.len() > total, "a real log: {}", stored.len());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let missing: Vec<i64> = stored
            .difference(&received.lock().unwrap())
            .copied()
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} stored events never reached the subscriber: {:?}",
            missing.len(),
            &missing[..missing.len().min(10)]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for w in &workers {
        w.signal("-TERM");
    }
    for mut w in workers {
        let status = w.wait();
        assert!(
            status.success(),
            "a worker stops cleanly on SIGTERM: {status:?}"
        );
    }
    reader.abort();
}

/// Exactly-once delivery across processes: 200 paid orders reported through the API for a
/// product with 150 keys, delivered on PostgreSQL by two worker processes, one killed with
/// SIGKILL once it has delivered (its claimed jobs are rescued when its lease runs out); on
/// SQLite by the server's own workers. 150 delivered with 150 distinct keys, 50 waiting for
/// stock; 50 keys imported and those 50 complete by themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_processes_deliver_200_orders_from_150_keys_once_each_through_a_kill() {
    let postgres =
        std::env::var("CARTWRIGHT_TEST_DATABASE_URL").is_ok_and(|u| u.starts_with("postgres"));
    let app = TestApp::spawn_with(|s| {
        if postgres {
            s.workers = 0;
        }
    })
    .await;
    let app = &app;
    let product = app
        .post(
            "/api/v1/digital-products",
            &app.operator,
            json!({"sku": "STEAM-120", "name": "Steam wallet 120K", "kind": "code",
                   "message": "Your Steam code: {{item.code}}"}),
        )
        .await;
    let product = product.ok(201)["id"].as_i64().unwrap();
    let keys = |from: usize, n: usize| -> Vec<u8> {
        (from..from + n)
            .map(|i| format!("STM-{i:05}-{:06X}\n", i * 7919))
            .collect::<String>()
            .into_bytes()
    };
    let stock = format!("/api/v1/digital-products/{product}/stock");
    app.post_raw(&stock, &app.operator, "text/plain", &keys(0, 150))
        .await
        .ok(200);
    let token = app
        .post(
            "/api/v1/tokens",
            &app.admin,
            json!({"name": "shop system", "scopes": ["webhook"]}),
        )
        .await;
    let token = token.ok(201)["secret"].as_str().unwrap().to_owned();
    let report = async |n: usize| {
        app.post(
            "/api/v1/market/orders",
            &token,
            json!({"marketplace": "shopee", "shop_id": "42", "external_id": format!("261207S{n:07}"),
                   "buyer": {"name": format!("buyer{n}"), "id": n.to_string()},
                   "lines": [{"item_id": "120", "seller_sku": "STEAM-120", "name": "Steam 120K", "quantity": 1}],
                   "status": "paid", "updated_at": "2026-12-07T01:00:00Z"}),
        )
        .await
        .ok(200)["order_id"]
            .as_i64()
            .unwrap()
    };
    // The listing maps the seller's SKU on any shop (the orders come without a connection).
    let connection = app
        .post(
            "/api/v1/market/connections",
            &app.admin,
            json!({"marketplace": "shopee", "name": "Shop", "shop_id": "42", "base_url": "https://partner.example",
                   "partner_id": "1", "partner_key": "k", "access_token": "t"}),
        )
        .await;
    let connection = connection.ok(201)["id"].as_i64().unwrap();
    app.post(
        "/api/v1/market/listings",
        &app.operator,
        json!({"connection_id": connection, "seller_sku": "STEAM-120", "product_id": product}),
    )
    .await
    .ok(201);

    let mut workers = Vec::new();
    let mut orders = Vec::new();
    if postgres {
        let mut doomed = worker(app, "doomed", 2);
        workers.push(worker(app, "steady", 2));
        for n in 0..60 {
            orders.push(report(n).await);
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let ran: i64 = app
                .count_sql(
                    "SELECT COUNT(*) FROM jobs WHERE kind = 'delivery' AND worker LIKE 'doomed%'",
                )
                .await;
            if ran > 0 {
                break;
            }
            assert!(Instant::now() < deadline, "the doomed worker delivers");
            // The steady worker may have started first and taken every job so far: keep
            // orders coming until the doomed one has one of its own.
            if orders.len() < 150 {
                orders.push(report(orders.len()).await);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        doomed.signal("-KILL");
        doomed.wait();
    }
    for n in orders.len()..200 {
        orders.push(report(n).await);
    }
    let store = app.store();
    let counts = async || {
        let mut delivered = 0;
        let mut waiting = 0;
        let mut items = BTreeSet::new();
        for o in &orders {
            for d in store
                .deliveries_of(cartwright_core::ids::MarketOrderId(*o))
                .await
                .unwrap()
            {
                match d.state {
                    cartwright_core::digital::DeliveryState::Delivered => {
                        delivered += 1;
                        for i in store.delivery_items(d.id).await.unwrap() {
                            assert!(items.insert(format!("{i:?}")), "an item delivered twice");
                        }
                    }
                    cartwright_core::digital::DeliveryState::Waiting if d.attention.is_some() => {
                        waiting += 1
                    }
                    _ => {}
                }
            }
        }
        (delivered, waiting, items.len())
    };
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let c = counts().await;
        if c == (150, 50, 150) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "150 delivered, 50 waiting: {c:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let states = app
        .get("/api/v1/market/orders?limit=500", &app.viewer)
        .await;
    let mut by_state = BTreeMap::<String, i64>::new();
    for o in states.ok(200).as_array().unwrap() {
        *by_state
            .entry(o["state"].as_str().unwrap().into())
            .or_default() += 1;
    }
    assert_eq!(
        by_state,
        BTreeMap::from([("delivered".into(), 150), ("needs_attention".into(), 50)])
    );

    app.post_raw(&stock, &app.operator, "text/plain", &keys(10_000, 50))
        .await
        .ok(200);
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let c = counts().await;
        if c == (200, 0, 200) {
            break;
        }
        assert!(Instant::now() < deadline, "all 200 delivered: {c:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for w in &workers {
        w.signal("-TERM");
    }
    for mut w in workers {
        w.wait();
    }
}
