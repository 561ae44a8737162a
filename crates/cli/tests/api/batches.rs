//! Batches over the API: submitting (and refusing), following, stopping, orders with their
//! logs and artifacts, PDF reports, and the live event streams.

use crate::helpers::*;
use futures::StreamExt;
use serde_json::{Value, json};
use std::collections::BTreeSet;

fn spec(storefront: i64, to: i64, product: i64, max_total: i64) -> Value {
    json!({
        "name": "api test",
        "accounts": {"storefront_id": storefront, "range": {"from": 1, "to": to}},
        "lines": [{"product_id": product, "quantity": 1}],
        "max_total": max_total,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_refused_with_the_field_named_and_nothing_written() {
    let s = ShopApp::spawn(|_| {}).await;
    let app = &s.app;
    let product = s.product(0).await;
    let cases = [
        (
            json!({"lines": [{"product_id": 999_999, "quantity": 1}]}),
            "lines[0].product_id",
        ),
        (
            json!({"lines": [{"product_id": product, "quantity": 0}]}),
            "lines[0].quantity",
        ),
        (json!({"max_total": 0}), "max_total"),
        (json!({"address_id": 424_242}), "address_id"),
        (
            json!({"accounts": {"storefront_id": 77, "range": {"from": 1, "to": 2}}}),
            "accounts.storefront_id",
        ),
        (
            json!({"accounts": {"storefront_id": s.storefront, "ids": [999_999]}}),
            "accounts",
        ),
        (
            json!({"accounts": {"storefront_id": s.storefront}}),
            "accounts.range",
        ),
        (
            json!({"payment": {"method": "card", "number": "4111111111111111", "cvv": "123"}}),
            "payment",
        ),
    ];
    for (change, field) in cases {
        let mut body = spec(s.storefront, 2, product, 100_000);
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = app.post("/api/v1/batches", &app.operator, body).await;
        let got = r.error(422, "invalid");
        assert!(
            got.as_deref().is_some_and(|g| g.starts_with(field)),
            "{field}: {}",
            r.text()
        );
    }
    let r = app
        .post(
            "/api/v1/batches",
            &app.viewer,
            spec(s.storefront, 2, product, 100_000),
        )
        .await;
    r.error(403, "forbidden");
    assert_eq!(
        app.count("/api/v1/batches").await,
        0,
        "nothing half-written"
    );
    assert_eq!(app.count("/api/v1/orders").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_runs_and_its_orders_logs_stats_and_reports_are_served() {
    let s = ShopApp::spawn(|_| {}).await;
    let app = &s.app;
    let product = s.product(1).await;
    let r = app
        .post(
            "/api/v1/batches",
            &app.operator,
            spec(s.storefront, 2, product, 100_000),
        )
        .await;
    let batch = r.ok(201)["id"].as_i64().unwrap();
    assert_eq!(
        r.headers["location"],
        format!("/api/v1/batches/{batch}").as_str()
    );
    assert_eq!(r.json["counts"]["total"], 2);
    let done = s.settled(batch).await;
    assert_eq!(done["state"], "finished", "{done}");
    assert_eq!(done["counts"]["placed"], 2);

    let orders = app
        .get(&format!("/api/v1/batches/{batch}/orders"), &app.viewer)
        .await;
    let items = orders.ok(200)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 2);
    let numbers: BTreeSet<String> = s.shop.shop.orders().into_iter().map(|o| o.number).collect();
    for o in &items {
        assert!(numbers.contains(o["order_number"].as_str().unwrap()), "{o}");
    }
    let id = items[0]["id"].as_i64().unwrap();
    let detail = app.get(&format!("/api/v1/orders/{id}"), &app.viewer).await;
    let log = detail.ok(200)["log"].as_array().unwrap();
    assert!(log.iter().any(|e| e["phase"] == "add_item"));
    assert!(
        log.iter()
            .any(|e| e["message"].as_str().unwrap().starts_with("placed order"))
    );
    assert!(detail.json["screenshot_url"].is_null());

    let stats = app
        .get(&format!("/api/v1/batches/{batch}/stats"), &app.viewer)
        .await;
    assert_eq!(stats.ok(200)["counts"]["placed"], 2);
    assert!(stats.json["placed_total_minor"].as_i64().unwrap() > 0);
    assert!(stats.json["duration_p50_ms"].as_i64().unwrap() > 0);

    let history = app
        .get(
            &format!(
                "/api/v1/orders?state=placed&account_id={}",
                items[0]["account_id"]
            ),
            &app.viewer,
        )
        .await;
    assert_eq!(history.ok(200)["total"], 1);

    for path in [
        format!("/api/v1/batches/{batch}/report.pdf"),
        format!("/api/v1/orders/{id}/report.pdf"),
    ] {
        let pdf = app.get(&path, &app.viewer).await;
        assert_eq!(pdf.status, 200, "{path}");
        assert_eq!(pdf.headers["content-type"], "application/pdf");
        assert!(pdf.body.starts_with(b"%PDF"), "{path}");
    }
    // A finished batch cannot be stopped or resumed.
    app.post(
        &format!("/api/v1/batches/{batch}/stop"),
        &app.operator,
        json!({}),
    )
    .await
    .error(409, "refused");
    app.post(
        &format!("/api/v1/batches/{batch}/resume"),
        &app.operator,
        json!({}),
    )
    .await
    .error(409, "refused");
    // Nothing failed: nothing to retry.
    app.post(
        &format!("/api/v1/batches/{batch}/retry-failed"),
        &app.operator,
        json!({}),
    )
    .await
    .error(409, "refused");
    app.get("/api/v1/batches/999999", &app.viewer)
        .await
        .error(404, "not_found");
    app.get("/api/v1/orders/999999", &app.viewer)
        .await
        .error(404, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_cart_keeps_its_screenshot_and_page_for_operators() {
    let s = ShopApp::spawn(|_| {}).await;
    let app = &s.app;
    let product = s.product(0).await;
    let r = app
        .post(
            "/api/v1/batches",
            &app.operator,
            spec(s.storefront, 1, product, 1),
        )
        .await;
    let batch = r.ok(201)["id"].as_i64().unwrap();
    let done = s.settled(batch).await;
    assert_eq!(done["counts"]["failed"], 1);
    let orders = app
        .get(&format!("/api/v1/batches/{batch}/orders"), &app.viewer)
        .await;
    let order = orders.ok(200)["items"][0].clone();
    assert_eq!(order["error_class"], "business");
    let id = order["id"].as_i64().unwrap();
    let detail = app.get(&format!("/api/v1/orders/{id}"), &app.viewer).await;
    let shot = detail.ok(200)["screenshot_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let png = app.get(&shot, &app.viewer).await;
    assert_eq!(png.status, 200);
    assert!(png.body.starts_with(b"\x89PNG"));
    let page = app
        .get(detail.json["snapshot_url"].as_str().unwrap(), &app.viewer)
        .await;
    assert_eq!(page.status, 200);
    assert!(
        page.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("sandbox")
    );
    // Not without signing in.
    let anonymous = app
        .call(reqwest::Method::GET, &shot, None, Body::None)
        .await;
    anonymous.error(401, "unauthorized");
    // An operator may run the failed order again (a viewer may not); it fails the same way.
    let retry = format!("/api/v1/batches/{batch}/retry-failed");
    app.post(&retry, &app.viewer, json!({}))
        .await
        .error(403, "forbidden");
    let again = app.post(&retry, &app.operator, json!({})).await;
    assert_eq!(again.ok(200)["state"], "running");
    let done = s.settled(batch).await;
    assert_eq!(done["counts"]["failed"], 1);
    let orders = app
        .get(&format!("/api/v1/batches/{batch}/orders"), &app.viewer)
        .await;
    assert_eq!(
        orders.ok(200)["items"][0]["attempts"],
        1,
        "runs counted afresh"
    );
}

/// Collects stream events until the batch is finished, then a little more.
async fn until_finished(
    s: &ShopApp,
    batch: i64,
    mut next: impl AsyncFnMut() -> Option<Value>,
) -> Vec<Value> {
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    let mut finished_at = None;
    loop {
        if let Ok(Some(e)) =
            tokio::time::timeout(std::time::Duration::from_millis(300), next()).await
        {
            seen.push(e);
        }
        if finished_at.is_none()
            && s.app
                .get(&format!("/api/v1/batches/{batch}"), &s.app.admin)
                .await
                .json["state"]
                == "finished"
        {
            finished_at = Some(std::time::Instant::now());
        }
        if finished_at.is_some_and(|t| t.elapsed() > std::time::Duration::from_secs(1)) {
            return seen;
        }
        assert!(std::time::Instant::now() < deadline);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_subscribers_get_the_backlog_then_live_events_without_gaps_or_repeats() {
    let s = ShopApp::spawn(|c| c.faults.latency_ms = 40).await;
    let app = &s.app;
    let product = s.product(2).await;
    let batch = app
        .post(
            "/api/v1/batches",
            &app.operator,
            spec(s.storefront, 3, product, 100_000),
        )
        .await
        .ok(201)["id"]
        .as_i64()
        .unwrap();
    // Join late: once events are flowing.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while app
        .get(
            &format!("/api/v1/orders?batch_id={batch}&state=queued"),
            &app.admin,
        )
        .await
        .json["total"]
        == 3
    {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let ws_url = format!(
        "{}/api/v1/ws/events?batch_id={batch}&access_token={}",
        s.app.base.replace("http", "ws"),
        app.viewer
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    let sse = s
        .app
        .http
        .get(format!("{}/api/v1/batches/{batch}/events", s.app.base))
        .bearer_auth(&app.viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(sse.headers()["content-type"], "text/event-stream");

    let ws_events = {
        let socket = &mut socket;
        until_finished(&s, batch, async || {
            loop {
                match socket.next().await? {
                    Ok(tokio_tungstenite::tungstenite::Message::Text(t)) => {
                        return serde_json::from_str(&t).ok();
                    }
                    Ok(_) => continue,
                    Err(_) => return None,
                }
            }
        })
        .await
    };
    let _ = socket.close(None).await;
    let mut sse = sse;
    let mut buffer = String::new();
    let sse_events = until_finished(&s, batch, async || {
        loop {
            if let Some(end) = buffer.find("\n\n") {
                let frame: String = buffer.drain(..end + 2).collect();
                // Events only; the `end` that closes the stream of a finished batch is not one.
                if !frame.lines().any(|l| l.trim() == "event: event") {
                    continue;
                }
                if let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data:")) {
                    return serde_json::from_str(data.trim()).ok();
                }
                continue;
            }
            let chunk = sse.chunk().await.ok()??;
            buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;

    let stored: Vec<i64> = {
        let r = app
            .get(&format!("/api/v1/orders?batch_id={batch}"), &app.admin)
            .await;
        assert_eq!(r.json["total"], 3);
        let mut ids = Vec::new();
        for o in r.json["items"].as_array().unwrap() {
            let d = app
                .get(&format!("/api/v1/orders/{}", o["id"]), &app.admin)
                .await;
            ids.extend(
                d.json["log"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["id"].as_i64().unwrap()),
            );
        }
        ids.sort_unstable();
        ids
    };
    for (name, events) in [("websocket", ws_events), ("sse", sse_events)] {
        let ids: Vec<i64> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
        let unique: BTreeSet<i64> = ids.iter().copied().collect();
        assert_eq!(unique.len(), ids.len(), "{name}: no event twice");
        let order_ids: Vec<i64> = unique
            .iter()
            .copied()
            .filter(|id| stored.binary_search(id).is_ok())
            .collect();
        assert_eq!(
            order_ids, stored,
            "{name}: every stored order event, none missing"
        );
        assert!(
            events.iter().all(|e| e["batch_id"] == batch),
            "{name}: only this batch"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_tests_are_queued_for_a_selection() {
    let s = ShopApp::spawn(|_| {}).await;
    let app = &s.app;
    let r = app
        .post(
            "/api/v1/accounts/session-checks",
            &app.operator,
            json!({"storefront_id": s.storefront, "range": {"from": 1, "to": 2}}),
        )
        .await;
    assert_eq!(r.ok(202)["queued"], 2);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let list = app
            .get(
                &format!("/api/v1/accounts?storefront_id={}&per_page=2", s.storefront),
                &app.admin,
            )
            .await;
        let statuses: Vec<Value> = list.ok(200)["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["session"]["status"].clone())
            .collect();
        if statuses.iter().all(|st| st == "ok") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{statuses:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    app.post(
        "/api/v1/accounts/session-checks",
        &app.viewer,
        json!({"storefront_id": s.storefront, "range": {"from": 1, "to": 2}}),
    )
    .await
    .error(403, "forbidden");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unresolved_order_is_settled_by_a_person_and_the_decision_is_audited() {
    let s = ShopApp::spawn(|_| {}).await;
    let app = &s.app;
    let (batch, order) = s.unresolved_order().await;
    let path = format!("/api/v1/orders/{order}/resolve");
    let detail = app
        .get(&format!("/api/v1/orders/{order}"), &app.viewer)
        .await;
    let detail = detail.ok(200);
    assert_eq!(detail["order"]["state"], "unresolved");
    assert!(
        detail["order"]["settling"]["absent_reads"]
            .as_i64()
            .unwrap()
            >= 2,
        "the evidence is shown: {detail}"
    );
    assert_eq!(s.shop.shop.orders().len(), 1, "clicked once");
    let number = s.shop.shop.orders()[0].number.clone();

    app.post(&path, &app.viewer, json!({"placed": true}))
        .await
        .error(403, "forbidden");
    let field = app
        .post(
            &path,
            &app.operator,
            json!({"placed": false, "order_number": "X1"}),
        )
        .await
        .error(422, "invalid");
    assert_eq!(field.as_deref(), Some("order_number"));
    let field = app
        .post(
            &path,
            &app.operator,
            json!({"placed": true, "run_again": true}),
        )
        .await
        .error(422, "invalid");
    assert_eq!(field.as_deref(), Some("run_again"));
    app.post(&path, &app.operator, json!({"placed": "yes"}))
        .await
        .error(422, "invalid");
    let settled = app
        .post(
            &path,
            &app.operator,
            json!({"placed": true, "order_number": number, "note": "in the shop's list"}),
        )
        .await;
    let settled = settled.ok(200);
    assert_eq!(settled["order"]["state"], "placed");
    assert_eq!(settled["order"]["order_number"], number.as_str());
    assert_eq!(settled["audit"][0]["actor"], "operator");
    assert_eq!(settled["audit"][0]["detail"]["note"], "in the shop's list");
    // Settled once; and an order that is not in doubt cannot be settled by hand.
    app.post(&path, &app.operator, json!({"placed": false}))
        .await
        .error(409, "refused");
    let b = app
        .get(&format!("/api/v1/batches/{batch}"), &app.admin)
        .await;
    let b = b.ok(200);
    assert_eq!(b["state"], "finished");
    assert_eq!(
        (
            b["counts"]["placed"].as_i64(),
            b["counts"]["unresolved"].as_i64()
        ),
        (Some(1), Some(0))
    );
    assert_eq!(s.shop.shop.orders().len(), 1, "never clicked again");
}
