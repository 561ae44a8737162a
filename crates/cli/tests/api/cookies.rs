use crate::helpers::TestApp;
use cartwright_core::ids::AccountId;
use serde_json::json;

const EXPORT: &str = r#"[
  {"domain": ".shop.example.com", "expirationDate": 1798000000.25, "hostOnly": false, "httpOnly": true,
   "name": "f.session", "path": "/", "sameSite": "no_restriction", "secure": true, "session": false,
   "storeId": "0", "value": "s%3AVERYSECRETVALUE.sig", "id": 1},
  {"domain": "shop.example.com", "name": "pref", "value": "lang=en", "sameSite": "unspecified", "session": true}
]"#;

#[tokio::test]
async fn cookies_are_normalised_sealed_and_never_returned() {
    let app = TestApp::spawn().await;
    let sf = app.storefront("shop").await;
    let account = app.account(sf, "a@example.com", json!({})).await;
    let id = account["id"].as_i64().unwrap();
    let path = format!("/api/v1/accounts/{id}/cookies");

    let r = app
        .put_raw(&path, &app.operator, "application/json", EXPORT)
        .await;
    let body = r.ok(200).clone();
    assert!(!r.text().contains("VERYSECRET"));
    assert_eq!(body["session"]["has_cookies"], true);
    assert_eq!(body["session"]["status"], "unknown");
    let cookies = body["session"]["cookies"].as_array().unwrap();
    assert_eq!(cookies[0]["name"], "f.session");
    assert_eq!(cookies[0]["domain"], ".shop.example.com");
    assert_eq!(cookies[0]["expires_at"], "2026-12-23T04:26:40Z");
    assert!(cookies[0].get("value").is_none());
    assert!(cookies[1]["expires_at"].is_null());

    for listing in [
        app.get(&format!("/api/v1/accounts/{id}"), &app.admin).await,
        app.get("/api/v1/accounts", &app.admin).await,
        app.get("/api/v1/accounts/export?format=json", &app.admin)
            .await,
        app.get("/api/v1/accounts/export", &app.admin).await,
    ] {
        assert_eq!(listing.status, 200);
        assert!(
            !listing.text().contains("VERYSECRET"),
            "cookie values never leave the store"
        );
    }

    // The store gives the engine the jar back, whole.
    let jar = app
        .store()
        .account_cookies(AccountId(id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(jar.cookies()[0].value, "s%3AVERYSECRETVALUE.sig");

    // A header string works too; cookies without a domain get the storefront's host.
    let r = app
        .put_raw(
            &path,
            &app.operator,
            "text/plain",
            "f.session=s%3Aother; theme=dark",
        )
        .await;
    let cookies = r.ok(200)["session"]["cookies"].clone();
    assert_eq!(cookies[0]["domain"], "shop.example.com");
    assert_eq!(cookies.as_array().unwrap().len(), 2);

    let r = app.delete(&path, &app.operator).await;
    assert_eq!(r.ok(200)["session"]["has_cookies"], false);
    assert!(
        app.store()
            .account_cookies(AccountId(id))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn cookie_values_are_encrypted_at_rest() {
    let app = TestApp::spawn_with(|s| s.database_url = None).await;
    let sf = app.storefront("shop").await;
    let id = app.account(sf, "a@example.com", json!({})).await["id"]
        .as_i64()
        .unwrap();
    app.put_raw(
        &format!("/api/v1/accounts/{id}/cookies"),
        &app.operator,
        "text/plain",
        "f.session=PLAINTEXTMARKER",
    )
    .await
    .ok(200);
    app.store().close().await;
    let dir = app.store_dir();
    let mut found = false;
    for entry in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        found |= bytes.windows(15).any(|w| w == b"PLAINTEXTMARKER");
    }
    assert!(
        !found,
        "the cookie value must not appear in any database file"
    );
}

#[tokio::test]
async fn bad_cookies_name_the_cookie_and_field() {
    let app = TestApp::spawn().await;
    let sf = app.storefront("shop").await;
    let id = app.account(sf, "a@example.com", json!({})).await["id"]
        .as_i64()
        .unwrap();
    let path = format!("/api/v1/accounts/{id}/cookies");
    let cases = [
        (
            r#"[{"name":"a","value":"1"},{"name":"b","value":"2","sameSite":"sideways"}]"#,
            "cookies[1].sameSite",
        ),
        (r#"[{"value":"1"}]"#, "cookies[0].name"),
        (
            r#"[{"name":"a","expirationDate":"tomorrow"}]"#,
            "cookies[0].expirationDate",
        ),
        (
            r#"[{"name":"a","domain":"not a domain"}]"#,
            "cookies[0].domain",
        ),
        (r#"[{"name":"a","path":"relative"}]"#, "cookies[0].path"),
        ("[]", "cookies"),
        ("[1,", "cookies"),
        ("novalue", "cookies[0]"),
    ];
    for (body, field) in cases {
        let r = app
            .put_raw(&path, &app.operator, "application/json", body)
            .await;
        assert_eq!(r.error(422, "invalid").as_deref(), Some(field), "{body}");
    }
    assert_eq!(
        app.get(&format!("/api/v1/accounts/{id}"), &app.operator)
            .await
            .ok(200)["session"]["has_cookies"],
        false
    );
    app.put_raw(
        "/api/v1/accounts/999/cookies",
        &app.operator,
        "text/plain",
        "a=1",
    )
    .await
    .error(404, "not_found");
    app.put_raw(&path, &app.viewer, "text/plain", "a=1")
        .await
        .error(403, "forbidden");
}
