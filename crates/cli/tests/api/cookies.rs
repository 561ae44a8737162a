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

/// A sealed cookie jar opens only for its own account: copied into another account's row
/// (by someone with write access to the database), it is refused. Jars sealed before they
/// were bound are bound at the next start.
#[tokio::test]
async fn a_cookie_jar_opens_only_for_its_own_account() {
    let app = TestApp::spawn().await;
    let sf = app.storefront("shop").await;
    let a = app.account(sf, "a@example.com", json!({})).await["id"]
        .as_i64()
        .unwrap();
    let b = app.account(sf, "b@example.com", json!({})).await["id"]
        .as_i64()
        .unwrap();
    for (id, value) in [(a, "alpha"), (b, "beta")] {
        app.put_raw(
            &format!("/api/v1/accounts/{id}/cookies"),
            &app.operator,
            "text/plain",
            &format!("session={value}"),
        )
        .await
        .ok(200);
    }
    let store = app.store();
    let jar = store.account_cookies(AccountId(a)).await.unwrap().unwrap();
    assert_eq!(jar.cookies()[0].value, "alpha");
    app.exec_sql(&format!(
        "UPDATE accounts SET cookies = (SELECT cookies FROM accounts WHERE id = {b}) WHERE id = {a}"
    ))
    .await;
    let swapped = store.account_cookies(AccountId(a)).await;
    assert!(
        swapped.is_err(),
        "b's jar does not open as a's: {swapped:?}"
    );

    // A jar sealed the old way (bound to nothing) is bound at the next start.
    let key = cartwright_store::SecretKey::from_text(&app.secret_key).unwrap();
    let plain = serde_json::to_vec(&jar).unwrap();
    let legacy = key
        .sealer("account-cookies")
        .seal(&plain, b"cartwright/account-cookies");
    let hex: String = legacy.iter().map(|b| format!("{b:02x}")).collect();
    let literal = if app.database_url.starts_with("postgres") {
        format!("'\\x{hex}'::bytea")
    } else {
        format!("X'{hex}'")
    };
    app.exec_sql(&format!(
        "UPDATE accounts SET cookies = {literal}, cookies_bound = FALSE WHERE id = {a}"
    ))
    .await;
    assert!(store.account_cookies(AccountId(a)).await.is_err());
    store.migrate().await.unwrap();
    let jar = store.account_cookies(AccountId(a)).await.unwrap().unwrap();
    assert_eq!(jar.cookies()[0].value, "alpha");
    assert_eq!(
        app.count_sql(
            "SELECT COUNT(*) FROM accounts WHERE NOT cookies_bound AND cookies IS NOT NULL"
        )
        .await,
        0
    );
}
