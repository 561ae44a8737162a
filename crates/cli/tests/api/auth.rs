use crate::helpers::{Body, PASSWORD, TestApp};
use jsonwebtoken::{EncodingKey, Header};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn login_issues_a_token_that_identifies_the_operator() {
    let app = TestApp::spawn().await;
    let r = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Body::Json(json!({"username": "Admin", "password": PASSWORD})),
        )
        .await;
    let body = r.ok(200);
    assert!(body["expires_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(body["operator"]["role"], "admin");
    assert!(body["operator"].get("password_hash").is_none());
    let token = body["token"].as_str().unwrap();
    let me = app.get("/api/v1/auth/me", token).await;
    assert_eq!(me.ok(200)["operator"]["username"], "admin");
    assert_eq!(me.json["kind"], "operator");
}

#[tokio::test]
async fn bad_credentials_and_bad_bodies() {
    let app = TestApp::spawn().await;
    let login = |body: Body<'static>| app.call(Method::POST, "/api/v1/auth/login", None, body);
    login(Body::Json(
        json!({"username": "admin", "password": "wrong password"}),
    ))
    .await
    .error(401, "unauthorized");
    login(Body::Json(
        json!({"username": "nobody", "password": PASSWORD}),
    ))
    .await
    .error(401, "unauthorized");
    login(Body::Raw("application/json", b"{\"username\":".to_vec()))
        .await
        .error(400, "bad_request");
    let field = login(Body::Json(json!({"username": "admin"})))
        .await
        .error(422, "invalid");
    assert_eq!(field.as_deref(), Some("password"));
    let field = login(Body::Json(json!({"username": 7, "password": PASSWORD})))
        .await
        .error(422, "invalid");
    assert_eq!(field.as_deref(), Some("username"));
    let field = login(Body::Json(
        json!({"username": "admin", "password": PASSWORD, "otp": 1}),
    ))
    .await
    .error(422, "invalid");
    assert_eq!(field.as_deref(), Some("otp"));
    login(Body::Raw("text/plain", b"admin".to_vec()))
        .await
        .error(415, "unsupported_media_type");
}

#[tokio::test]
async fn requests_without_valid_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let r = app
        .call(Method::GET, "/api/v1/accounts", None, Body::None)
        .await;
    r.error(401, "unauthorized");
    assert_eq!(r.headers["www-authenticate"], "Bearer");
    app.get("/api/v1/accounts", "garbage")
        .await
        .error(401, "unauthorized");
    app.call(Method::GET, "/api/v1/accounts", None, Body::None)
        .await
        .error(401, "unauthorized");

    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = |exp: i64| json!({"sub": "1", "ver": 1, "iss": "cartwright", "iat": now - 7200, "exp": exp});
    let forged = jsonwebtoken::encode(
        &Header::default(),
        &claims(now + 3600),
        &EncodingKey::from_secret(&[9; 32]),
    )
    .unwrap();
    app.get("/api/v1/accounts", &forged)
        .await
        .error(401, "unauthorized");

    // Signed with the server's own key, but expired.
    let key = cartwright_store::SecretKey::from_text(&app.secret_key)
        .unwrap()
        .derive("jwt");
    let expired = jsonwebtoken::encode(
        &Header::default(),
        &claims(now - 600),
        &EncodingKey::from_secret(&key),
    )
    .unwrap();
    let r = app.get("/api/v1/accounts", &expired).await;
    r.error(401, "unauthorized");
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    let valid = jsonwebtoken::encode(
        &Header::default(),
        &claims(now + 600),
        &EncodingKey::from_secret(&key),
    )
    .unwrap();
    // Signed, current, but naming no sign-in: it cannot be ended, so it is refused.
    let r = app.get("/api/v1/accounts", &valid).await;
    r.error(401, "unauthorized");
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sign in again")
    );
    // An API-token-shaped secret that was never issued.
    app.get("/api/v1/accounts", "cwt_notarealtoken")
        .await
        .error(401, "unauthorized");
}

#[tokio::test]
async fn roles_are_enforced_per_route() {
    let app = TestApp::spawn().await;
    let sf = app.storefront("shop").await;
    app.get("/api/v1/accounts", &app.viewer).await.ok(200);
    let create = json!({"storefront_id": sf, "email": "v@example.com"});
    app.post("/api/v1/accounts", &app.viewer, create.clone())
        .await
        .error(403, "forbidden");
    app.get("/api/v1/operators", &app.operator)
        .await
        .error(403, "forbidden");
    app.get("/api/v1/tokens", &app.viewer)
        .await
        .error(403, "forbidden");
    app.post("/api/v1/accounts", &app.operator, create)
        .await
        .ok(201);
    assert_eq!(
        app.count("/api/v1/accounts").await,
        1,
        "the refused create wrote nothing"
    );
}

#[tokio::test]
async fn failed_logins_are_throttled_per_username() {
    let app = TestApp::spawn().await;
    let attempt = |password: &'static str| {
        app.call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Body::Json(json!({"username": "operator", "password": password})),
        )
    };
    for _ in 0..5 {
        attempt("wrong password").await.error(401, "unauthorized");
    }
    let r = attempt(PASSWORD).await;
    r.error(429, "too_many_requests");
    let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=900).contains(&wait));
    // Other usernames from the same address still get in.
    app.login("viewer", PASSWORD).await;
}

#[tokio::test]
async fn failed_logins_are_throttled_per_address() {
    let app = TestApp::spawn().await;
    for i in 0..30 {
        let body = json!({"username": format!("guess{i}"), "password": "nope nope"});
        app.call(Method::POST, "/api/v1/auth/login", None, Body::Json(body))
            .await
            .error(401, "unauthorized");
    }
    let body = json!({"username": "admin", "password": PASSWORD});
    let r = app
        .call(Method::POST, "/api/v1/auth/login", None, Body::Json(body))
        .await;
    r.error(429, "too_many_requests");
    assert!(r.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn changing_a_password_ends_other_sign_ins() {
    let app = TestApp::spawn().await;
    let other_session = app.login("operator", PASSWORD).await;
    let r = app
        .call(
            Method::PUT,
            "/api/v1/auth/password",
            Some(&app.operator),
            Body::Json(
                json!({"current_password": "not it at all", "new_password": "a brand new secret"}),
            ),
        )
        .await;
    assert_eq!(r.error(422, "invalid").as_deref(), Some("current_password"));
    let r = app
        .call(
            Method::PUT,
            "/api/v1/auth/password",
            Some(&app.operator),
            Body::Json(json!({"current_password": PASSWORD, "new_password": "short"})),
        )
        .await;
    assert_eq!(r.error(422, "invalid").as_deref(), Some("new_password"));
    let r = app
        .call(
            Method::PUT,
            "/api/v1/auth/password",
            Some(&app.operator),
            Body::Json(json!({"current_password": PASSWORD, "new_password": "a brand new secret"})),
        )
        .await;
    let fresh = r.ok(200)["token"].as_str().unwrap().to_owned();
    app.get("/api/v1/auth/me", &other_session)
        .await
        .error(401, "unauthorized");
    app.get("/api/v1/auth/me", &app.operator)
        .await
        .error(401, "unauthorized");
    app.get("/api/v1/auth/me", &fresh).await.ok(200);
    app.login("operator", "a brand new secret").await;
}

#[tokio::test]
async fn api_tokens_act_within_their_scopes_until_revoked() {
    let app = TestApp::spawn().await;
    let sf = app.storefront("shop").await;
    let r = app
        .post(
            "/api/v1/tokens",
            &app.admin,
            json!({"name": "reader", "scopes": ["read"]}),
        )
        .await;
    let created = r.ok(201).clone();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("cwt_") && secret.len() > 40);
    assert!(secret.starts_with(created["token"]["prefix"].as_str().unwrap()));
    let id = created["token"]["id"].as_i64().unwrap();

    let listed = app.get("/api/v1/tokens", &app.admin).await;
    assert!(!listed.text().contains(&secret), "secrets are shown once");
    assert_eq!(listed.json[0]["scopes"], json!(["read"]));

    app.get("/api/v1/accounts", &secret).await.ok(200);
    let me = app.get("/api/v1/auth/me", &secret).await;
    assert_eq!(me.ok(200)["kind"], "token");
    app.post(
        "/api/v1/accounts",
        &secret,
        json!({"storefront_id": sf, "email": "t@example.com"}),
    )
    .await
    .error(403, "forbidden");
    app.get("/api/v1/tokens", &secret)
        .await
        .error(403, "forbidden");

    let writer = app
        .post(
            "/api/v1/tokens",
            &app.admin,
            json!({"name": "writer", "scopes": ["operate"], "expires_in_days": 30}),
        )
        .await;
    let writer_secret = writer.ok(201)["secret"].as_str().unwrap().to_owned();
    assert!(writer.json["token"]["expires_at"].is_string());
    app.post(
        "/api/v1/accounts",
        &writer_secret,
        json!({"storefront_id": sf, "email": "t@example.com"}),
    )
    .await
    .ok(201);

    let ext = app
        .post(
            "/api/v1/tokens",
            &app.admin,
            json!({"name": "extension", "scopes": ["extension"]}),
        )
        .await;
    let ext_secret = ext.ok(201)["secret"].as_str().unwrap().to_owned();
    app.get("/api/v1/accounts", &ext_secret)
        .await
        .error(403, "forbidden");

    let revoked = app
        .delete(&format!("/api/v1/tokens/{id}"), &app.admin)
        .await;
    assert!(revoked.ok(200)["revoked_at"].is_string());
    app.get("/api/v1/accounts", &secret)
        .await
        .error(401, "unauthorized");

    // Last use is recorded (in the background).
    let mut used = false;
    for _ in 0..50 {
        let tokens = app.get("/api/v1/tokens", &app.admin).await;
        if tokens
            .json
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == id && t["last_used_at"].is_string())
        {
            used = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(used, "last_used_at recorded");
}

#[tokio::test]
async fn token_requests_are_validated() {
    let app = TestApp::spawn().await;
    let field = app
        .post(
            "/api/v1/tokens",
            &app.admin,
            json!({"name": "x", "scopes": []}),
        )
        .await
        .error(422, "invalid");
    assert_eq!(field.as_deref(), Some("scopes"));
    let field = app
        .post(
            "/api/v1/tokens",
            &app.admin,
            json!({"name": "x", "scopes": ["root"]}),
        )
        .await
        .error(422, "invalid");
    assert_eq!(field.as_deref(), Some("scopes[0]"));
    let field = app
        .post(
            "/api/v1/tokens",
            &app.admin,
            json!({"name": "x", "scopes": ["read"], "expires_in_days": 0}),
        )
        .await
        .error(422, "invalid");
    assert_eq!(field.as_deref(), Some("expires_in_days"));
    app.post(
        "/api/v1/tokens",
        &app.operator,
        json!({"name": "x", "scopes": ["read"]}),
    )
    .await
    .error(403, "forbidden");
    app.delete("/api/v1/tokens/999", &app.admin)
        .await
        .error(404, "not_found");
    assert_eq!(
        app.get("/api/v1/tokens", &app.admin)
            .await
            .ok(200)
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

#[tokio::test]
async fn expired_api_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let r = app
        .post(
            "/api/v1/tokens",
            &app.admin,
            json!({"name": "old", "scopes": ["read"], "expires_in_days": 1}),
        )
        .await;
    let created = r.ok(201).clone();
    let secret = created["secret"].as_str().unwrap();
    app.exec_sql(&format!(
        "UPDATE api_tokens SET expires_at = '2020-01-01T00:00:00.000000Z' WHERE id = {}",
        created["token"]["id"]
    ))
    .await;
    let r = app.get("/api/v1/accounts", secret).await;
    r.error(401, "unauthorized");
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
}

#[tokio::test]
async fn spellings_of_one_username_share_one_throttle() {
    let app = TestApp::spawn().await;
    for name in [
        "operator",
        "Operator",
        " operator",
        "OPERATOR ",
        "operator\t",
    ] {
        let body = json!({"username": name, "password": "wrong password"});
        app.call(Method::POST, "/api/v1/auth/login", None, Body::Json(body))
            .await
            .error(401, "unauthorized");
    }
    let body = json!({"username": "operator", "password": PASSWORD});
    app.call(Method::POST, "/api/v1/auth/login", None, Body::Json(body))
        .await
        .error(429, "too_many_requests");
}

/// A token's sign-in, as the list shows it.
async fn sign_ins(app: &TestApp, token: &str) -> Vec<serde_json::Value> {
    app.get("/api/v1/auth/sessions", token)
        .await
        .ok(200)
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn signing_out_ends_the_token_and_sign_ins_are_listed_and_ended_one_by_one() {
    let app = TestApp::spawn().await;
    let login_as = async |agent: &str| {
        let r = app
            .http
            .post(format!("{}/api/v1/auth/login", app.base))
            .header("user-agent", agent)
            .json(&json!({"username": "operator", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = r.json().await.unwrap();
        body["token"].as_str().unwrap().to_owned()
    };
    let laptop = login_as("Laptop browser").await;
    let phone = login_as("Phone\t browser").await;

    // Each sees both sign-ins (the fixture's own one too), its own marked current.
    let list = sign_ins(&app, &laptop).await;
    assert_eq!(list.len(), 3, "{list:?}");
    let mine: Vec<_> = list.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["client"], "Laptop browser");
    assert_eq!(mine[0]["address"], "127.0.0.1");
    let phone_entry = list
        .iter()
        .find(|s| s["client"] == "Phone browser")
        .unwrap();
    let phone_id = phone_entry["id"].as_i64().unwrap();

    // Another operator cannot end it, nor can an API token list anything.
    app.delete(&format!("/api/v1/auth/sessions/{phone_id}"), &app.admin)
        .await
        .error(404, "not_found");
    app.get("/api/v1/auth/me", &phone).await.ok(200);
    // The laptop ends the phone's sign-in: its token stops working at once.
    app.delete(&format!("/api/v1/auth/sessions/{phone_id}"), &laptop)
        .await
        .ok(204);
    let r = app.get("/api/v1/auth/me", &phone).await;
    r.error(401, "unauthorized");
    app.delete(&format!("/api/v1/auth/sessions/{phone_id}"), &laptop)
        .await
        .error(404, "not_found");
    assert_eq!(sign_ins(&app, &laptop).await.len(), 2);

    // Signing out ends the token itself, long before it expires.
    app.call(
        Method::POST,
        "/api/v1/auth/logout",
        Some(&laptop),
        Body::None,
    )
    .await
    .ok(204);
    app.get("/api/v1/auth/me", &laptop)
        .await
        .error(401, "unauthorized");
    app.get("/api/v1/auth/me", &app.operator).await.ok(200);

    let token = app
        .post(
            "/api/v1/tokens",
            &app.admin,
            json!({"name": "script", "scopes": ["read"]}),
        )
        .await;
    let token = token.ok(201)["secret"].as_str().unwrap().to_owned();
    app.get("/api/v1/auth/sessions", &token)
        .await
        .error(403, "forbidden");
}

#[tokio::test]
async fn signing_out_everywhere_else_keeps_this_sign_in_only() {
    let app = TestApp::spawn().await;
    let others = [
        app.login("viewer", PASSWORD).await,
        app.login("viewer", PASSWORD).await,
    ];
    let here = app.login("viewer", PASSWORD).await;
    let r = app.delete("/api/v1/auth/sessions", &here).await;
    assert_eq!(r.ok(200)["ended"], 3, "the two and the fixture's");
    for t in &others {
        app.get("/api/v1/auth/me", t)
            .await
            .error(401, "unauthorized");
    }
    let list = sign_ins(&app, &here).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["current"], true);
}

#[tokio::test]
async fn a_disabled_operator_is_answered_like_a_wrong_password() {
    let app = TestApp::spawn().await;
    let id = app.get("/api/v1/auth/me", &app.viewer).await.ok(200)["operator"]["id"]
        .as_i64()
        .unwrap();
    app.patch(
        &format!("/api/v1/operators/{id}"),
        &app.admin,
        json!({"disabled": true}),
    )
    .await
    .ok(200);
    let attempt = async |password: &str| {
        app.call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Body::Json(json!({"username": "viewer", "password": password})),
        )
        .await
    };
    let right = attempt(PASSWORD).await;
    let wrong = attempt("not the password").await;
    right.error(401, "unauthorized");
    wrong.error(401, "unauthorized");
    assert_eq!(
        right.json, wrong.json,
        "the answer does not confirm the password"
    );
}

#[tokio::test]
async fn failed_sign_ins_slow_down_and_an_admin_lets_the_operator_in_again() {
    let app = TestApp::spawn().await;
    let attempt = async |password: &str| {
        app.call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Body::Json(json!({"username": "operator", "password": password})),
        )
        .await
    };
    for _ in 0..5 {
        attempt("a wrong guess").await.error(401, "unauthorized");
    }
    let r = attempt(PASSWORD).await;
    r.error(429, "too_many_requests");
    let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(
        wait <= 2,
        "the first wait is short, not a lock-out: {wait} s"
    );
    let id = app.get("/api/v1/auth/me", &app.operator).await.ok(200)["operator"]["id"]
        .as_i64()
        .unwrap();
    app.call(
        Method::POST,
        &format!("/api/v1/operators/{id}/unlock"),
        Some(&app.operator),
        Body::None,
    )
    .await
    .error(403, "forbidden");
    app.call(
        Method::POST,
        &format!("/api/v1/operators/{id}/unlock"),
        Some(&app.admin),
        Body::None,
    )
    .await
    .ok(204);
    attempt(PASSWORD).await.ok(200);
}

#[tokio::test]
async fn an_admins_api_tokens_end_when_they_stop_being_an_admin() {
    let app = TestApp::spawn().await;
    let r = app
        .post(
            "/api/v1/operators",
            &app.admin,
            json!({"username": "deputy", "password": PASSWORD, "role": "admin"}),
        )
        .await;
    let deputy_id = r.ok(201)["id"].as_i64().unwrap();
    let deputy = app.login("deputy", PASSWORD).await;
    let mut secrets = Vec::new();
    for name in ["first", "second"] {
        let r = app
            .post(
                "/api/v1/tokens",
                &deputy,
                json!({"name": name, "scopes": ["read"]}),
            )
            .await;
        secrets.push(r.ok(201)["secret"].as_str().unwrap().to_owned());
    }
    let other = app
        .post(
            "/api/v1/tokens",
            &app.admin,
            json!({"name": "admin's", "scopes": ["read"]}),
        )
        .await;
    let other = other.ok(201)["secret"].as_str().unwrap().to_owned();
    app.get("/api/v1/accounts", &secrets[0]).await.ok(200);
    app.patch(
        &format!("/api/v1/operators/{deputy_id}"),
        &app.admin,
        json!({"role": "operator"}),
    )
    .await
    .ok(200);
    let r = app.get("/api/v1/accounts", &secrets[0]).await;
    r.error(401, "unauthorized");
    assert!(r.text().contains("revoked"), "{}", r.text());
    app.get("/api/v1/accounts", &other).await.ok(200);

    // Deleting an admin ends theirs too.
    let r = app
        .post(
            "/api/v1/operators",
            &app.admin,
            json!({"username": "temp", "password": PASSWORD, "role": "admin"}),
        )
        .await;
    let temp_id = r.ok(201)["id"].as_i64().unwrap();
    let temp = app.login("temp", PASSWORD).await;
    let r = app
        .post(
            "/api/v1/tokens",
            &temp,
            json!({"name": "temp's", "scopes": ["read"]}),
        )
        .await;
    let secret = r.ok(201)["secret"].as_str().unwrap().to_owned();
    app.delete(&format!("/api/v1/operators/{temp_id}"), &app.admin)
        .await
        .ok(204);
    app.get("/api/v1/accounts", &secret)
        .await
        .error(401, "unauthorized");
}

#[tokio::test]
async fn a_token_in_the_url_is_taken_by_the_event_streams_only() {
    let app = TestApp::spawn().await;
    let r = app
        .call(
            Method::GET,
            &format!("/api/v1/accounts?access_token={}", app.viewer),
            None,
            Body::None,
        )
        .await;
    r.error(401, "unauthorized");
    assert!(r.text().contains("event streams"), "{}", r.text());
}

#[tokio::test]
async fn the_per_address_limit_is_a_setting() {
    let app = TestApp::spawn_with(|s| {
        s.login_max_failures = 100;
        s.login_max_failures_per_ip = 2;
    })
    .await;
    let attempt = async |username: &str| {
        app.call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Body::Json(json!({"username": username, "password": "a wrong guess"})),
        )
        .await
    };
    attempt("operator").await.error(401, "unauthorized");
    attempt("viewer").await.error(401, "unauthorized");
    // A third name from the same address: the address has used its two.
    attempt("admin").await.error(429, "too_many_requests");
}
