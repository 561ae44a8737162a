use crate::helpers::{PASSWORD, TestApp};
use serde_json::json;

#[tokio::test]
async fn admins_manage_operators() {
    let app = TestApp::spawn().await;
    let r = app
        .post("/api/v1/operators", &app.admin, json!({"username": "Riya", "email": "riya@example.com", "password": "long enough pw", "role": "operator"}))
        .await;
    let created = r.ok(201).clone();
    assert_eq!(created["username"], "riya");
    let id = created["id"].as_i64().unwrap();
    assert_eq!(r.headers["location"], format!("/api/v1/operators/{id}"));
    assert_eq!(
        app.get(&format!("/api/v1/operators/{id}"), &app.admin)
            .await
            .ok(200)["email"],
        "riya@example.com"
    );
    let list = app.get("/api/v1/operators", &app.admin).await;
    assert_eq!(list.ok(200).as_array().unwrap().len(), 4);

    let token = app.login("riya", "long enough pw").await;
    app.get("/api/v1/accounts", &token).await.ok(200);

    // A role change takes effect at once and ends the operator's sign-ins.
    let r = app
        .patch(
            &format!("/api/v1/operators/{id}"),
            &app.admin,
            json!({"role": "viewer", "email": null}),
        )
        .await;
    assert_eq!(r.ok(200)["role"], "viewer");
    assert!(r.json["email"].is_null());
    app.get("/api/v1/accounts", &token)
        .await
        .error(401, "unauthorized");
    let token = app.login("riya", "long enough pw").await;
    app.post("/api/v1/storefronts", &token, json!({}))
        .await
        .error(403, "forbidden");

    // Disabling ends sign-ins and refuses new ones.
    app.patch(
        &format!("/api/v1/operators/{id}"),
        &app.admin,
        json!({"disabled": true}),
    )
    .await
    .ok(200);
    app.get("/api/v1/accounts", &token)
        .await
        .error(401, "unauthorized");
    let r = app
        .call(
            reqwest::Method::POST,
            "/api/v1/auth/login",
            None,
            crate::helpers::Body::Json(json!({"username": "riya", "password": "long enough pw"})),
        )
        .await;
    r.error(401, "unauthorized");

    // An admin can reset a password.
    app.patch(
        &format!("/api/v1/operators/{id}"),
        &app.admin,
        json!({"disabled": false, "password": "reset by admin"}),
    )
    .await
    .ok(200);
    app.login("riya", "reset by admin").await;

    app.delete(&format!("/api/v1/operators/{id}"), &app.admin)
        .await
        .ok(204);
    app.get(&format!("/api/v1/operators/{id}"), &app.admin)
        .await
        .error(404, "not_found");
    app.delete(&format!("/api/v1/operators/{id}"), &app.admin)
        .await
        .error(404, "not_found");
}

#[tokio::test]
async fn operator_input_is_validated() {
    let app = TestApp::spawn().await;
    let new = |username: &str, email: &str| json!({"username": username, "email": email, "password": PASSWORD, "role": "viewer"});
    let field = app
        .post(
            "/api/v1/operators",
            &app.admin,
            new("operator", "x@example.com"),
        )
        .await
        .error(409, "conflict");
    assert_eq!(field.as_deref(), Some("username"));
    app.post(
        "/api/v1/operators",
        &app.admin,
        new("one", "same@example.com"),
    )
    .await
    .ok(201);
    let field = app
        .post(
            "/api/v1/operators",
            &app.admin,
            new("two", "same@example.com"),
        )
        .await
        .error(409, "conflict");
    assert_eq!(field.as_deref(), Some("email"));
    let field = app
        .post("/api/v1/operators", &app.admin, new("a b", "c@example.com"))
        .await
        .error(422, "invalid");
    assert_eq!(field.as_deref(), Some("username"));
    let mut body = new("three", "t@example.com");
    body["role"] = json!("superuser");
    assert_eq!(
        app.post("/api/v1/operators", &app.admin, body)
            .await
            .error(422, "invalid")
            .as_deref(),
        Some("role")
    );
    let mut body = new("four", "f@example.com");
    body["password"] = json!("short");
    assert_eq!(
        app.post("/api/v1/operators", &app.admin, body)
            .await
            .error(422, "invalid")
            .as_deref(),
        Some("password")
    );
    app.get("/api/v1/operators/abc", &app.admin)
        .await
        .error(400, "bad_request");
    app.patch(
        "/api/v1/operators/999",
        &app.admin,
        json!({"role": "admin"}),
    )
    .await
    .error(404, "not_found");
    assert_eq!(
        app.get("/api/v1/operators", &app.admin)
            .await
            .ok(200)
            .as_array()
            .unwrap()
            .len(),
        4
    );
}

#[tokio::test]
async fn the_last_admin_cannot_be_removed() {
    let app = TestApp::spawn().await;
    let admin_id = app.get("/api/v1/auth/me", &app.admin).await.ok(200)["operator"]["id"]
        .as_i64()
        .unwrap();
    let path = format!("/api/v1/operators/{admin_id}");
    assert_eq!(
        app.patch(&path, &app.admin, json!({"role": "operator"}))
            .await
            .error(409, "refused")
            .as_deref(),
        Some("role")
    );
    assert_eq!(
        app.patch(&path, &app.admin, json!({"disabled": true}))
            .await
            .error(409, "refused")
            .as_deref(),
        Some("disabled")
    );
    app.delete(&path, &app.admin).await.error(409, "refused");
    assert_eq!(
        app.get(&path, &app.admin).await.ok(200)["role"],
        "admin",
        "nothing changed"
    );

    // With a second admin, the first may step down.
    let operator_id = app.get("/api/v1/auth/me", &app.operator).await.ok(200)["operator"]["id"]
        .as_i64()
        .unwrap();
    app.patch(
        &format!("/api/v1/operators/{operator_id}"),
        &app.admin,
        json!({"role": "admin"}),
    )
    .await
    .ok(200);
    app.patch(&path, &app.admin, json!({"role": "viewer"}))
        .await
        .ok(200);
}
