//! Digital goods in Chromium: the buyer opens the private delivery page and sees the key; the operator sees the product low on stock, imports more with a
//! dry run first (the duplicate reported by line), reveals an item, follows the order's
//! deliveries with each channel's result, sends one again, and finds the overview's card.

use crate::browser::Chrome;
use crate::helpers::{PASSWORD, TestApp};
use serde_json::json;
use std::time::{Duration, Instant};

/// Lists `product` under `sku`, reports a paid order for it, waits until it is delivered;
/// returns the order, its delivery and the path of the buyer's page.
async fn sell(
    app: &TestApp,
    token: &str,
    connection: i64,
    product: i64,
    sku: &str,
    number: &str,
    buyer: &str,
) -> (i64, i64, String) {
    app.post(
        "/api/v1/market/listings",
        &app.operator,
        json!({"connection_id": connection, "seller_sku": sku, "product_id": product}),
    )
    .await
    .ok(201);
    let order = app
        .post(
            "/api/v1/market/orders",
            token,
            json!({"marketplace": "shopee", "shop_id": "5", "external_id": number,
                   "buyer": {"name": buyer},
                   "lines": [{"seller_sku": sku, "name": sku, "quantity": 1}],
                   "status": "paid", "updated_at": "2026-12-07T01:00:00Z"}),
        )
        .await;
    let order = order.ok(200)["order_id"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let delivery = loop {
        let d = app
            .get(&format!("/api/v1/market/orders/{order}"), &app.viewer)
            .await;
        let d = d.ok(200).clone();
        if d["order"]["state"] == "delivered" {
            break d["deliveries"][0]["id"].as_i64().unwrap();
        }
        assert!(Instant::now() < deadline, "not delivered: {d}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let link = app
        .post(
            &format!("/api/v1/deliveries/{delivery}/link"),
            &app.operator,
            json!({}),
        )
        .await;
    let link = link.ok(200)["link"].as_str().unwrap().to_owned();
    (
        order,
        delivery,
        link.strip_prefix(&app.base).unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buyer_reads_the_key_on_the_page_and_an_operator_follows_it_in_the_dashboard() {
    crate::logs();
    let shots = crate::screenshot_dir("goods");
    let app = TestApp::spawn().await;
    let product = app
        .post(
            "/api/v1/digital-products",
            &app.operator,
            json!({"sku": "SPT-3M", "name": "Spotify Premium 3 months", "kind": "code", "low_stock": 2,
                   "message": "Hi {{buyer.name}}! Your Spotify code: {{item.code}}"}),
        )
        .await;
    let product = product.ok(201)["id"].as_i64().unwrap();
    app.post_raw(
        &format!("/api/v1/digital-products/{product}/stock"),
        &app.operator,
        "text/plain",
        b"SPOT-AAAA-1111\nSPOT-BBBB-2222\nSPOT-CCCC-3333\n",
    )
    .await
    .ok(200);
    let token = app
        .post(
            "/api/v1/tokens",
            &app.admin,
            json!({"name": "shop", "scopes": ["webhook"]}),
        )
        .await;
    let token = token.ok(201)["secret"].as_str().unwrap().to_owned();
    let connection = app
        .post(
            "/api/v1/market/connections",
            &app.admin,
            json!({"marketplace": "shopee", "name": "Shop", "shop_id": "5", "base_url": "https://partner.example",
                   "partner_id": "1", "partner_key": "k", "access_token": "t"}),
        )
        .await;
    let connection = connection.ok(201)["id"].as_i64().unwrap();
    let (order, delivery, path) = sell(
        &app,
        &token,
        connection,
        product,
        "SPT-3M",
        "261207UIPAGE01",
        "Putri",
    )
    .await;

    let c = Chrome::launch(&app.base, shots).await;
    // The buyer, on a phone.
    c.open(&path).await;
    c.wait_for(
        "the goods on the page",
        "document.body.innerText.includes('SPOT-AAAA-1111')",
    )
    .await;
    assert!(
        c.text("document.body.innerText").await.contains("Putri"),
        "the message is the product's, filled in"
    );
    c.shoot("delivery-page").await;
    c.open("/d/not-a-real-key-at-all-000000000000000").await;
    assert!(
        !c.text("document.body.innerText").await.contains("SPOT-"),
        "a made-up key shows nothing"
    );

    // A reveal-once page that expires: a visit (or a link preview) does not show the goods,
    // the button does, once; once expired the page shows nothing.
    let bad = app
        .post(
            "/api/v1/digital-products",
            &app.operator,
            json!({"sku": "NFX-1M", "name": "Netflix 1 month", "kind": "code", "message": "Code: {{item.code}}",
                   "page": {"reveal_once": true, "expires_after_days": 0}}),
        )
        .await;
    assert_eq!(
        bad.error(422, "invalid").as_deref(),
        Some("page.expires_after_days")
    );
    let once = app
        .post(
            "/api/v1/digital-products",
            &app.operator,
            json!({"sku": "NFX-1M", "name": "Netflix 1 month", "kind": "code", "message": "Code: {{item.code}}",
                   "page": {"reveal_once": true, "expires_after_days": 7}}),
        )
        .await;
    let once = once.ok(201)["id"].as_i64().unwrap();
    app.post_raw(
        &format!("/api/v1/digital-products/{once}/stock"),
        &app.operator,
        "text/plain",
        b"NFX-ONCE-0001\n",
    )
    .await
    .ok(200);
    let (_, _, once_path) = sell(
        &app,
        &token,
        connection,
        once,
        "NFX-1M",
        "261207UIONCE01",
        "Wayan",
    )
    .await;
    c.open(&once_path).await;
    assert!(c.has("#reveal").await, "a button, not the goods");
    assert!(!c.text("document.body.innerText").await.contains("NFX-ONCE"));
    c.click("#reveal").await;
    c.wait_for(
        "the goods, once",
        "document.body.innerText.includes('NFX-ONCE-0001')",
    )
    .await;
    c.shoot("delivery-page-revealed").await;
    c.open(&once_path).await;
    c.wait_for("shown before", "!!document.getElementById('revealed')")
        .await;
    assert!(!c.text("document.body.innerText").await.contains("NFX-ONCE"));
    app.exec_sql(&format!(
        "UPDATE deliveries SET expires_at = '2000-01-01T00:00:00Z' WHERE id = {delivery}"
    ))
    .await;
    c.open(&path).await;
    assert!(
        c.text("document.body.innerText")
            .await
            .contains("Nothing here"),
        "an expired page shows nothing"
    );

    // The operator.
    c.open("/").await;
    c.fill("username", "admin").await;
    c.fill("password", PASSWORD).await;
    c.submit("Sign in").await;
    c.wait_for("the goods card", "!!document.getElementById('goods-card')")
        .await;
    assert_eq!(
        c.text("document.getElementById('tile-delivered').textContent")
            .await,
        "2"
    );
    assert!(
        c.text("document.getElementById('low-stock').textContent")
            .await
            .contains("Spotify"),
        "2 left at an alert of 2: low"
    );
    c.shoot("overview-goods").await;

    c.open("/goods").await;
    let goods = c.text("document.querySelector('main').innerText").await;
    assert!(
        goods.contains(&format!("/api/v1/market/push/{connection}")),
        "the connection with its push address: {goods}"
    );
    assert!(goods.contains("SKU SPT-3M"), "the listing: {goods}");
    c.shoot("goods").await;

    c.open(&format!("/goods/{product}")).await;
    c.set("items", "SPOT-DDDD-4444\nSPOT-AAAA-1111\nSPOT-DDDD-4444\n")
        .await;
    c.click("#dry_run").await;
    c.submit("Import").await;
    c.wait_for("the report", "!!document.getElementById('import-report')")
        .await;
    let report = c
        .text("document.getElementById('import-report').innerText")
        .await;
    assert!(report.contains("duplicate in file"), "{report}");
    assert!(report.contains("duplicate in stock"), "{report}");
    assert!(
        c.text("document.getElementById('import-summary').textContent")
            .await
            .contains("Dry run: 1 would be imported")
    );
    assert_eq!(
        c.text("document.getElementById('stock-available').textContent")
            .await,
        "2",
        "a dry run changes nothing"
    );
    c.set("items", "SPOT-DDDD-4444\nSPOT-EEEE-5555\n").await;
    c.submit("Import").await;
    c.wait_for(
        "the import",
        "document.getElementById('stock-available').textContent === '4'",
    )
    .await;
    assert!(
        !c.text("document.querySelector('main').innerText")
            .await
            .contains("SPOT-EEEE-5555"),
        "items are listed masked"
    );
    c.submit("Reveal").await;
    c.wait_for("the revealed item", "!!document.getElementById('revealed')")
        .await;
    assert!(
        c.text("document.getElementById('revealed').textContent")
            .await
            .contains("SPOT-AAAA-1111")
    );
    c.shoot("goods-product").await;

    c.open("/market").await;
    c.click(&format!("#market-orders a[href='/market/{order}']"))
        .await;
    c.wait_for("the order", "!!document.getElementById('history')")
        .await;
    let page = c.text("document.querySelector('main').innerText").await;
    assert!(page.contains("page"), "{page}");
    assert!(page.contains("api"), "where the status came from: {page}");
    c.click(&format!("#resend-{delivery}")).await;
    c.wait_for("the re-send", "location.search.includes('notice=resent')")
        .await;
    c.shoot("market-order").await;
    let audit = app
        .count_sql("SELECT COUNT(*) FROM audit WHERE action = 'delivery.resend'")
        .await;
    assert_eq!(audit, 1);
    c.close().await;
}
