//! Digital goods through the real server: a product whose message is checked, stock imported
//! with its per-line report and shown masked, a connection and a listing, a paid order
//! reported by a machine with an ingest token (twice: one order), its goods delivered on their
//! own, the buyer's page behind its link, and the audited reveal.

use crate::helpers::TestApp;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_order_reported_by_api_gets_its_key_on_a_private_page() {
    let app = TestApp::spawn().await;
    let bad = app
        .post(
            "/api/v1/digital-products",
            &app.operator,
            json!({"sku": "GAME-1", "name": "Game", "kind": "code", "message": "Key: {{item.login}}"}),
        )
        .await;
    assert_eq!(bad.error(422, "invalid").as_deref(), Some("message"));
    assert!(
        bad.text().contains("{{item.login}} is not a variable"),
        "{}",
        bad.text()
    );
    let product = app
        .post(
            "/api/v1/digital-products",
            &app.operator,
            json!({"sku": "GAME-1", "name": "Game key", "kind": "code", "low_stock": 1,
                   "message": "Hi {{buyer.name}}, your key: {{item.code}} — {{delivery.link}}"}),
        )
        .await;
    let product = product.ok(201)["id"].as_i64().unwrap();
    let path = format!("/api/v1/digital-products/{product}/stock");
    let dry = app
        .post_raw(
            &format!("{path}?dry_run=true"),
            &app.operator,
            "text/plain",
            b"AAAA-1111-ZZZZ\nBBBB-2222-YYYY\nAAAA-1111-ZZZZ\n",
        )
        .await;
    let dry = dry.ok(200);
    assert_eq!(
        (dry["applied"].as_bool(), dry["imported"].as_i64()),
        (Some(false), Some(2))
    );
    assert_eq!(dry["lines"][0]["outcome"], "duplicate_in_file");
    assert_eq!(dry["lines"][0]["line"], 3);
    let done = app
        .post_raw(
            &path,
            &app.operator,
            "text/plain",
            b"AAAA-1111-ZZZZ\nBBBB-2222-YYYY\n",
        )
        .await;
    assert_eq!(done.ok(200)["stock"]["available"], 2);
    let listed = app.get(&path, &app.viewer).await;
    let listed = listed.ok(200);
    assert_eq!(listed["items"][0]["masked"], "AAAA-…-ZZZZ");
    assert!(
        !listed.to_string().contains("1111"),
        "never shown whole in lists"
    );

    app.post(
        "/api/v1/market/connections",
        &app.operator,
        json!({"marketplace": "shopee", "name": "Shop", "shop_id": "77", "base_url": "https://partner.example",
               "partner_id": "1", "partner_key": "secret-key", "access_token": "token"}),
    )
    .await
    .error(403, "forbidden");
    let connection = app
        .post(
            "/api/v1/market/connections",
            &app.admin,
            json!({"marketplace": "shopee", "name": "Shop", "shop_id": "77", "base_url": "https://partner.example",
                   "partner_id": "1", "partner_key": "secret-key", "access_token": "token"}),
        )
        .await;
    let connection = connection.ok(201);
    assert!(
        !connection.to_string().contains("secret-key"),
        "keys are never shown"
    );
    let connection = connection["id"].as_i64().unwrap();
    app.post(
        "/api/v1/market/listings",
        &app.operator,
        json!({"connection_id": connection, "item_id": "9001", "product_id": product}),
    )
    .await
    .ok(201);

    let token = app
        .post(
            "/api/v1/tokens",
            &app.admin,
            json!({"name": "shop system", "scopes": ["webhook"]}),
        )
        .await;
    let token = token.ok(201)["secret"].as_str().unwrap().to_owned();
    let order = json!({
        "marketplace": "shopee", "shop_id": "77", "external_id": "261207ABCDEF12",
        "buyer": {"name": "Ayu", "id": "555"},
        "lines": [{"item_id": "9001", "name": "Game key", "quantity": 1, "unit_price_minor": 1500000}],
        "payment_method": "ShopeePay", "status": "paid", "updated_at": "2026-12-07T01:00:00Z"
    });
    app.post("/api/v1/market/orders", &app.viewer, order.clone())
        .await
        .error(403, "forbidden");
    let first = app
        .post("/api/v1/market/orders", &token, order.clone())
        .await;
    let first = first.ok(200).clone();
    assert_eq!(
        (first["created"].as_bool(), first["state"].as_str()),
        (Some(true), Some("paid"))
    );
    let again = app
        .post("/api/v1/market/orders", &token, order.clone())
        .await;
    assert_eq!(
        again.ok(200)["created"],
        false,
        "the same order, reported again, is one order"
    );
    let older = json!({
        "marketplace": "shopee", "shop_id": "77", "external_id": "261207ABCDEF12",
        "status": "unpaid", "updated_at": "2026-12-07T00:00:00Z"
    });
    let older = app.post("/api/v1/market/orders", &token, older).await;
    assert_eq!(
        older.ok(200)["changed"],
        false,
        "an older status changes nothing"
    );

    let id = first["order_id"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let detail = loop {
        let d = app
            .get(&format!("/api/v1/market/orders/{id}"), &app.viewer)
            .await;
        let d = d.ok(200).clone();
        if d["order"]["state"] == "delivered" {
            break d;
        }
        assert!(Instant::now() < deadline, "not delivered: {d}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(detail["deliveries"][0]["state"], "delivered");
    let sources: Vec<&str> = detail["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["source"].as_str())
        .collect();
    assert!(
        sources.contains(&"api") && sources.contains(&"cartwright"),
        "{sources:?}"
    );
    assert!(
        detail["history"]
            .to_string()
            .contains("older than what is known"),
        "the ignored report is kept with why"
    );

    let delivery = detail["deliveries"][0]["id"].as_i64().unwrap();
    let link = app
        .post(
            &format!("/api/v1/deliveries/{delivery}/link"),
            &app.operator,
            json!({}),
        )
        .await;
    let link = link.ok(200)["link"].as_str().unwrap().to_owned();
    assert!(link.starts_with(&app.base), "{link}");
    let page = app.http.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["cache-control"], "no-store, private");
    let html = page.text().await.unwrap();
    assert!(
        html.contains("261207ABCDEF12") && html.contains("Hi Ayu, your key: AAAA-1111-ZZZZ"),
        "{html}"
    );
    let key = &link[link.len() - 43..];
    let other = format!(
        "{}{}",
        &key[..42],
        if key.ends_with('x') { 'y' } else { 'x' }
    );
    for wrong in ["nope", other.as_str()] {
        let r = app
            .http
            .get(format!("{}/d/{wrong}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{wrong}");
    }
    let stock = app
        .get(&format!("/api/v1/digital-products/{product}"), &app.viewer)
        .await;
    assert_eq!(stock.ok(200)["stock"]["delivered"], 1);
    let item = app.get(&path, &app.viewer).await.json["items"][0]["id"]
        .as_i64()
        .unwrap();
    app.post(
        &format!("/api/v1/stock-items/{item}/reveal"),
        &app.viewer,
        json!({}),
    )
    .await
    .error(403, "forbidden");
    let revealed = app
        .post(
            &format!("/api/v1/stock-items/{item}/reveal"),
            &app.operator,
            json!({}),
        )
        .await;
    assert_eq!(revealed.ok(200)["code"], "AAAA-1111-ZZZZ");
}

/// A count of rows, straight from the test database.
async fn rows(app: &TestApp, table: &str) -> i64 {
    app.count_sql(&format!("SELECT COUNT(*) FROM {table}"))
        .await
}

async fn order_state(app: &TestApp, external: &str) -> Option<String> {
    let list = app.get("/api/v1/market/orders", &app.admin).await;
    list.ok(200)
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["external_id"] == external)
        .map(|o| o["state"].as_str().unwrap_or_default().to_owned())
}

async fn until_state(app: &TestApp, external: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state = order_state(app, external).await;
        if state.as_deref() == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{external}: {state:?}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_marketplace_pushes_and_polls_orders_in_and_a_bad_signature_keeps_nothing() {
    use cartwright_demo_shop::marketplace::{Item, Status};
    let shop = cartwright_demo_shop::start(
        "127.0.0.1:0".parse().unwrap(),
        cartwright_demo_shop::ShopConfig::default(),
    )
    .await
    .unwrap();
    let app = TestApp::spawn_with(|s| {
        s.market_poll_every = cartwright::config::HumanDuration(Duration::from_secs(1));
    })
    .await;
    let connection = crate::channels::connect_demo(&app, &shop).await;
    let product = app
        .post(
            "/api/v1/digital-products",
            &app.operator,
            json!({"sku": "WIN11", "name": "Windows 11 Pro", "kind": "code",
                   "message": "Your licence key: {{item.code}}"}),
        )
        .await;
    let product = product.ok(201)["id"].as_i64().unwrap();
    app.post_raw(
        &format!("/api/v1/digital-products/{product}/stock"),
        &app.operator,
        "text/plain",
        b"W11-AAAA-0001\nW11-AAAA-0002\nW11-AAAA-0003\n",
    )
    .await
    .ok(200);
    app.post(
        "/api/v1/market/listings",
        &app.operator,
        json!({"connection_id": connection, "seller_sku": "WIN11-PRO", "product_id": product}),
    )
    .await
    .ok(201);
    let items = || {
        Some(vec![Item {
            item_id: 3_100_201,
            name: "Windows 11 Pro Licence Key".into(),
            sku: "WIN11-PRO".into(),
            qty: 1,
            price: 249_000,
        }])
    };

    // Pushed: the buyer pays, the marketplace pushes, the key goes out.
    let push_url = format!("{}/api/v1/market/push/{connection}", app.base);
    shop.shop.market().set_push_url(Some(push_url.clone()));
    let pushed = shop
        .shop
        .market()
        .create_order(Some("budi.santoso"), items());
    shop.shop.market().set_status(&pushed, Status::ReadyToShip);
    until_state(&app, &pushed, "delivered").await;
    assert_ne!(
        shop.shop.market().access_token(),
        cartwright_demo_shop::marketplace::MarketplaceConfig::default().access_token,
        "a connection with a refresh token renews its access token before using it"
    );

    // A push with a wrong signature: 401, nothing kept.
    let kept = rows(&app, "market_inbox").await;
    let forged = app
        .http
        .post(&push_url)
        .header("authorization", "00".repeat(32))
        .body(r#"{"code":3,"data":{"ordersn":"X"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    assert_eq!(rows(&app, "market_inbox").await, kept, "nothing kept");
    // The same (genuine) push three times: one order, delivered once.
    let genuine = shop
        .shop
        .market()
        .pushes()
        .into_iter()
        .rfind(|p| p.body.contains(&pushed))
        .unwrap();
    for _ in 0..3 {
        let r = app
            .http
            .post(&push_url)
            .header("authorization", &genuine.authorization)
            .body(genuine.body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.text().await.unwrap().is_empty(), "an empty 2xx, at once");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let orders = app.get("/api/v1/market/orders", &app.admin).await;
    let same: Vec<_> = orders
        .ok(200)
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["external_id"] == pushed.as_str())
        .cloned()
        .collect();
    assert_eq!(same.len(), 1, "one order");
    let id = same[0]["id"].as_i64().unwrap();
    let history = app
        .get(&format!("/api/v1/market/orders/{id}"), &app.admin)
        .await;
    assert!(
        history.ok(200)["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["source"] == "push"),
        "the pushes were taken in"
    );
    let stock = app
        .get(&format!("/api/v1/digital-products/{product}"), &app.viewer)
        .await;
    assert_eq!(stock.ok(200)["stock"]["delivered"], 1, "delivered once");

    // A push lost on the way: the poll brings the order in.
    shop.shop.market().set_push_url(None);
    let lost = shop.shop.market().create_order(Some("siti_rahma"), items());
    shop.shop.market().set_status(&lost, Status::ReadyToShip);
    until_state(&app, &lost, "delivered").await;
    let detail = app.get("/api/v1/market/orders", &app.admin).await;
    let id = detail
        .ok(200)
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["external_id"] == lost.as_str())
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let detail = app
        .get(&format!("/api/v1/market/orders/{id}"), &app.admin)
        .await;
    assert_eq!(detail.ok(200)["history"][0]["source"], "poll");
}
