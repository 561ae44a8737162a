//! Rewards checks over the API: starting (and refusing) runs, following them to the end,
//! results, CSV export, the event stream, history, cancelling, schedules.

use crate::helpers::*;
use serde_json::{Value, json};

fn run(storefront: i64, to: i64) -> Value {
    json!({"accounts": {"storefront_id": storefront, "range": {"from": 1, "to": to}}})
}

async fn finished(s: &ShopApp, id: i64) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let r = s
            .app
            .get(&format!("/api/v1/rewards/runs/{id}"), &s.app.viewer)
            .await
            .ok(200)
            .clone();
        if r["state"] != "running" {
            return r;
        }
        assert!(std::time::Instant::now() < deadline, "run {id}: {r}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_refused_with_the_field_named() {
    let s = ShopApp::spawn(|_| {}).await;
    let app = &s.app;
    let cases = [
        (run(77, 2), "accounts.storefront_id"),
        (
            json!({"accounts": {"storefront_id": s.storefront, "ids": [999_999]}}),
            "accounts",
        ),
        (
            json!({"accounts": {"storefront_id": s.storefront}}),
            "accounts.range",
        ),
        (
            json!({"accounts": run(s.storefront, 2)["accounts"], "concurrency": 0}),
            "concurrency",
        ),
        (
            json!({"accounts": run(s.storefront, 2)["accounts"], "rate_limit": -1}),
            "rate_limit",
        ),
    ];
    for (body, field) in cases {
        let r = app.post("/api/v1/rewards/runs", &app.operator, body).await;
        assert_eq!(
            r.error(422, "invalid").as_deref(),
            Some(field),
            "{}",
            r.text()
        );
    }
    app.post("/api/v1/rewards/runs", &app.viewer, run(s.storefront, 2))
        .await
        .error(403, "forbidden");
    let runs = app.get("/api/v1/rewards/runs", &app.viewer).await;
    assert_eq!(runs.ok(200).as_array().unwrap().len(), 0, "nothing written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_followed_to_its_results_export_events_and_history() {
    let s = ShopApp::spawn(|_| {}).await;
    let app = &s.app;
    let r = app
        .post("/api/v1/rewards/runs", &app.operator, run(s.storefront, 8))
        .await;
    let started = r.ok(201).clone();
    let id = started["id"].as_i64().unwrap();
    assert_eq!(started["total"], 8);
    let done = finished(&s, id).await;
    assert_eq!(done["state"], "finished", "{done}");
    assert_eq!(
        (done["checked"].as_i64(), done["ok"].as_i64()),
        (Some(8), Some(8))
    );
    assert!(done["duration_ms"].as_i64().is_some());

    let results = app
        .get(&format!("/api/v1/rewards/runs/{id}/results"), &app.viewer)
        .await;
    let results = results.ok(200).as_array().unwrap().clone();
    assert_eq!(results.len(), 8);
    let sum: i64 = results.iter().map(|r| r["points"].as_i64().unwrap()).sum();
    assert_eq!(sum, done["points_total"].as_i64().unwrap());
    assert!(
        results
            .iter()
            .all(|r| r["status"] == "ok" && r["tier"].is_string())
    );

    let csv = app
        .get(
            &format!("/api/v1/rewards/runs/{id}/results.csv"),
            &app.viewer,
        )
        .await;
    assert_eq!(csv.status, 200);
    assert!(
        csv.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = csv.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 9, "a header and one row per account: {text}");
    assert!(lines[0].starts_with("account_id,label,status,points,tier"));

    // The stored events come first on the stream, the summary among them.
    let response = app
        .http
        .get(format!(
            "{}/api/v1/rewards/runs/{id}/events?access_token={}",
            app.base, app.viewer
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut response = response;
    let mut seen = String::new();
    while !seen.contains("finished: checked 8 of 8") {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), response.chunk())
            .await
            .expect("the summary arrives")
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("\"rewards_run_id\":"), "{seen}");
    // The run is over: the stream says so and ends, rather than keeping the client waiting.
    while let Some(chunk) =
        tokio::time::timeout(std::time::Duration::from_secs(30), response.chunk())
            .await
            .expect("the stream ends")
            .unwrap()
    {
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let end = seen.rfind("event: end").expect("an end event");
    assert!(seen.rfind("event: event").unwrap() < end, "{seen}");
    assert!(seen[end..].contains(r#"{"state":"finished"}"#), "{seen}");

    let account = results[0]["account_id"].as_i64().unwrap();
    let history = app
        .get(&format!("/api/v1/accounts/{account}/rewards"), &app.viewer)
        .await;
    assert_eq!(history.ok(200).as_array().unwrap().len(), 1);
    let days = app
        .get("/api/v1/rewards/points-by-day?days=7", &app.viewer)
        .await;
    let days = days.ok(200).as_array().unwrap().clone();
    assert_eq!(days.len(), 1);
    assert_eq!(days[0]["points"], done["points_total"]);
    let list = app.get("/api/v1/rewards/runs", &app.viewer).await;
    assert_eq!(list.ok(200)[0]["id"], id);
    let acct = app
        .get(&format!("/api/v1/accounts/{account}"), &app.viewer)
        .await;
    assert_eq!(acct.ok(200)["points"], results[0]["points"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_can_be_cancelled_and_keeps_what_it_checked() {
    let s = ShopApp::spawn(|_| {}).await;
    let app = &s.app;
    let mut body = run(s.storefront, 8);
    body["rate_limit"] = json!(2.0);
    let id = app
        .post("/api/v1/rewards/runs", &app.operator, body)
        .await
        .ok(201)["id"]
        .as_i64()
        .unwrap();
    let cancelled = app
        .post(
            &format!("/api/v1/rewards/runs/{id}/cancel"),
            &app.operator,
            json!(null),
        )
        .await;
    assert_eq!(cancelled.ok(200)["state"], "cancelled");
    let done = finished(&s, id).await;
    assert_eq!(done["state"], "cancelled");
    assert!(done["checked"].as_i64().unwrap() < 8, "{done}");
    app.post(
        &format!("/api/v1/rewards/runs/{id}/cancel"),
        &app.operator,
        json!(null),
    )
    .await
    .error(409, "refused");
    app.get("/api/v1/rewards/runs/424242", &app.viewer)
        .await
        .error(404, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_are_checked_made_changed_and_deleted() {
    let s = ShopApp::spawn(|_| {}).await;
    let app = &s.app;
    let good = json!({
        "name": "every morning",
        "cron": "0 9 * * *",
        "timezone": "Asia/Kolkata",
        "run": run(s.storefront, 4),
    });
    let bad = [
        (json!({"cron": "0 9 * *"}), "cron"),
        (json!({"cron": "0 25 * * *"}), "cron"),
        (json!({"timezone": "Mars/Olympus"}), "timezone"),
        (json!({"run": run(77, 2)}), "run.accounts.storefront_id"),
        (
            json!({"run": {"accounts": run(s.storefront, 2)["accounts"], "concurrency": 0}}),
            "run.concurrency",
        ),
    ];
    for (change, field) in bad {
        let mut body = good.clone();
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = app.post("/api/v1/schedules", &app.operator, body).await;
        assert_eq!(
            r.error(422, "invalid").as_deref(),
            Some(field),
            "{}",
            r.text()
        );
    }
    let made = app
        .post("/api/v1/schedules", &app.operator, good.clone())
        .await;
    let made = made.ok(201).clone();
    let id = made["id"].as_i64().unwrap();
    let next = made["next_run_at"].as_str().unwrap();
    assert!(
        next.ends_with("03:30:00Z"),
        "09:00 in Kolkata is 03:30 UTC: {next}"
    );
    app.post("/api/v1/schedules", &app.operator, good.clone())
        .await
        .error(409, "conflict");
    app.post("/api/v1/schedules", &app.viewer, good.clone())
        .await
        .error(403, "forbidden");
    let mut off = good.clone();
    off["enabled"] = json!(false);
    let changed = app
        .put_raw(
            &format!("/api/v1/schedules/{id}"),
            &app.operator,
            "application/json",
            &off.to_string(),
        )
        .await;
    assert_eq!(changed.ok(200)["enabled"], false);
    assert!(changed.json["next_run_at"].is_null());
    let list = app.get("/api/v1/schedules", &app.viewer).await;
    assert_eq!(list.ok(200).as_array().unwrap().len(), 1);
    assert_eq!(
        app.delete(&format!("/api/v1/schedules/{id}"), &app.operator)
            .await
            .status,
        204
    );
    app.get(&format!("/api/v1/schedules/{id}"), &app.viewer)
        .await
        .error(404, "not_found");
}
