use crate::helpers::{Body, TestApp};
use reqwest::Method;

#[tokio::test]
async fn health_reports_the_database() {
    let app = TestApp::spawn().await;
    let r = app.call(Method::GET, "/api/health", None, Body::None).await;
    let body = r.ok(200);
    assert_eq!(body["status"], "ok");
    let expected =
        if std::env::var("CARTWRIGHT_TEST_DATABASE_URL").is_ok_and(|u| u.starts_with("postgres")) {
            "postgres"
        } else {
            "sqlite"
        };
    assert_eq!(body["database"], expected);
    assert!(r.headers.contains_key("x-request-id"));
}

#[tokio::test]
async fn metrics_count_requests_by_route() {
    let app = TestApp::spawn().await;
    app.get("/api/v1/accounts", &app.viewer).await.ok(200);
    let r = app.call(Method::GET, "/metrics", None, Body::None).await;
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(text.contains("http_requests_total{"), "{text}");
    assert!(text.contains("route=\"/api/v1/accounts\""), "{text}");
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "{text}"
    );
}

#[tokio::test]
async fn openapi_document_and_docs_page() {
    let app = TestApp::spawn().await;
    let r = app
        .call(Method::GET, "/api/openapi.json", None, Body::None)
        .await;
    let doc = r.ok(200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/api/v1/auth/login",
        "/api/v1/accounts",
        "/api/v1/accounts/{id}/cookies",
        "/api/v1/accounts/import",
        "/api/v1/accounts/selection",
        "/api/v1/products/{id}",
        "/api/v1/addresses",
        "/api/v1/tokens",
        "/api/health",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} documented");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["components"]["schemas"]["Account"].is_object());
    let r = app.call(Method::GET, "/api/docs/", None, Body::None).await;
    assert_eq!(r.status, 200);
    assert!(
        r.text().contains("swagger"),
        "docs page served from the binary"
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_json() {
    let app = TestApp::spawn().await;
    app.get("/api/v1/nothing-here", &app.admin)
        .await
        .error(404, "not_found");
    app.call(
        Method::PUT,
        "/api/v1/accounts",
        Some(&app.admin),
        Body::None,
    )
    .await
    .error(405, "method_not_allowed");
    let r = app
        .http
        .get(format!("{}/api/health", app.base))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["x-request-id"],
        "trace-me-42",
        "a caller's request id is kept"
    );
}

#[tokio::test]
async fn bodies_over_the_configured_limits_are_refused_whole() {
    let app = TestApp::spawn_with(|s| {
        s.max_body_bytes = 2048;
        s.max_upload_bytes = 4096;
    })
    .await;
    let sf = app.storefront("shop").await;
    let label = "x".repeat(3000);
    let body = format!(
        "{{\"storefront_id\": {sf}, \"email\": \"a@example.com\", \"label\": \"{label}\"}}"
    );
    let r = app
        .call(
            Method::POST,
            "/api/v1/accounts",
            Some(&app.operator),
            Body::Raw("application/json", body.into_bytes()),
        )
        .await;
    r.error(413, "too_large");
    // Uploads may be larger than JSON bodies, up to their own limit.
    let mut csv = String::from("email\n");
    for i in 0..150 {
        csv.push_str(&format!("user{i}@example.com\n"));
    }
    assert!(csv.len() > 2048 && csv.len() < 4096);
    let url = format!("/api/v1/accounts/import?storefront_id={sf}");
    app.post_raw(&url, &app.operator, "text/csv", csv.as_bytes())
        .await
        .ok(200);
    csv.push_str(&"more@example.com\n".repeat(200));
    app.post_raw(&url, &app.operator, "text/csv", csv.as_bytes())
        .await
        .error(413, "too_large");
    assert_eq!(app.count("/api/v1/accounts").await, 150);
}
