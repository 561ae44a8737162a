use crate::helpers::{Body, TestApp};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn account_lifecycle() {
    let app = TestApp::spawn().await;
    let sf = app.storefront("shop").await;
    let r = app
        .post(
            "/api/v1/accounts",
            &app.operator,
            json!({"storefront_id": sf, "label": "acct-001", "name": " Riya Sharma ", "email": "Riya@Example.com",
                   "phone": "+91 98765-43210", "tags": ["VIP", "north", "vip"]}),
        )
        .await;
    let account = r.ok(201).clone();
    let id = account["id"].as_i64().unwrap();
    assert_eq!(r.headers["location"], format!("/api/v1/accounts/{id}"));
    assert_eq!(account["email"], "riya@example.com");
    assert_eq!(account["phone"], "+919876543210");
    assert_eq!(account["name"], "Riya Sharma");
    assert_eq!(account["tags"], json!(["north", "vip"]));
    assert_eq!(account["active"], true);
    assert_eq!(
        account["session"],
        json!({"status": "unknown", "has_cookies": false, "cookies": []})
    );

    let path = format!("/api/v1/accounts/{id}");
    assert_eq!(app.get(&path, &app.viewer).await.ok(200), &account);

    let r = app
        .patch(
            &path,
            &app.operator,
            json!({"name": null, "active": false, "tags": []}),
        )
        .await;
    let patched = r.ok(200);
    assert!(patched["name"].is_null());
    assert_eq!(patched["label"], "acct-001", "absent fields are kept");
    assert_eq!(patched["active"], false);
    assert_eq!(patched["tags"], json!([]));

    // Clearing both email and phone is refused, and nothing is changed.
    let field = app
        .patch(
            &path,
            &app.operator,
            json!({"email": null, "phone": null, "label": "changed"}),
        )
        .await
        .error(422, "invalid");
    assert_eq!(field.as_deref(), Some("email"));
    assert_eq!(
        app.get(&path, &app.operator).await.ok(200)["label"],
        "acct-001"
    );
    app.patch(&path, &app.operator, json!({"email": null}))
        .await
        .ok(200);

    app.delete(&path, &app.operator).await.ok(204);
    app.get(&path, &app.operator).await.error(404, "not_found");
    app.delete(&path, &app.operator)
        .await
        .error(404, "not_found");
    app.patch(&path, &app.operator, json!({"label": "x"}))
        .await
        .error(404, "not_found");
}

#[tokio::test]
async fn account_input_is_validated() {
    let app = TestApp::spawn().await;
    let sf = app.storefront("shop").await;
    let other = app.storefront("other").await;
    app.account(sf, "a@example.com", json!({"phone": "9876543210"}))
        .await;

    let create = |body: serde_json::Value| app.post("/api/v1/accounts", &app.operator, body);
    let cases = [
        (
            json!({"storefront_id": sf, "email": "A@example.com"}),
            409,
            "conflict",
            "email",
        ),
        (
            json!({"storefront_id": sf, "email": "b@example.com", "phone": "98765 43210"}),
            409,
            "conflict",
            "phone",
        ),
        (json!({"storefront_id": sf}), 422, "invalid", "email"),
        (
            json!({"storefront_id": sf, "email": "not-an-email"}),
            422,
            "invalid",
            "email",
        ),
        (
            json!({"storefront_id": sf, "phone": "12"}),
            422,
            "invalid",
            "phone",
        ),
        (
            json!({"storefront_id": sf, "email": "c@example.com", "tags": ["bad tag"]}),
            422,
            "invalid",
            "tags[0]",
        ),
        (
            json!({"storefront_id": sf, "email": "c@example.com", "active": "yes"}),
            422,
            "invalid",
            "active",
        ),
        (
            json!({"storefront_id": "one", "email": "c@example.com"}),
            422,
            "invalid",
            "storefront_id",
        ),
        (
            json!({"email": "c@example.com"}),
            422,
            "invalid",
            "storefront_id",
        ),
        (
            json!({"storefront_id": 999, "email": "c@example.com"}),
            422,
            "invalid",
            "storefront_id",
        ),
        (
            json!({"storefront_id": sf, "email": "c@example.com", "password": "x"}),
            422,
            "invalid",
            "password",
        ),
        (
            json!({"storefront_id": sf, "email": "c@example.com", "label": "x".repeat(201)}),
            422,
            "invalid",
            "label",
        ),
    ];
    for (body, status, code, field) in cases {
        let r = create(body.clone()).await;
        assert_eq!(r.error(status, code).as_deref(), Some(field), "{body}");
    }
    // The same email on another storefront is a different account.
    app.account(other, "a@example.com", json!({})).await;
    assert_eq!(
        app.count("/api/v1/accounts").await,
        2,
        "no refused request wrote anything"
    );

    let r = app
        .call(
            Method::POST,
            "/api/v1/accounts",
            Some(&app.operator),
            Body::Raw("application/json", b"{\"storefront_id\": 1,".to_vec()),
        )
        .await;
    r.error(400, "bad_request");
    let big = format!(
        "{{\"storefront_id\": {sf}, \"email\": \"big@example.com\", \"label\": \"{}\"}}",
        "x".repeat(2 * 1024 * 1024)
    );
    let r = app
        .call(
            Method::POST,
            "/api/v1/accounts",
            Some(&app.operator),
            Body::Raw("application/json", big.into_bytes()),
        )
        .await;
    r.error(413, "too_large");
    app.get("/api/v1/accounts/x", &app.operator)
        .await
        .error(400, "bad_request");
    assert_eq!(app.count("/api/v1/accounts").await, 2);
}

#[tokio::test]
async fn lists_page_filter_and_sort() {
    let app = TestApp::spawn().await;
    let sf = app.storefront("shop").await;
    let other = app.storefront("other").await;
    for i in 1..=12 {
        let tags = if i % 3 == 0 {
            json!(["vip"])
        } else {
            json!(["batch_7"])
        };
        app.account(
            sf,
            &format!("user{i:02}@example.com"),
            json!({"label": format!("acct-{i:02}"), "tags": tags, "active": i != 5}),
        )
        .await;
    }
    app.account(other, "elsewhere@example.com", json!({"tags": ["vip"]}))
        .await;

    let page = app
        .get(
            &format!("/api/v1/accounts?storefront_id={sf}&per_page=5&page=2"),
            &app.viewer,
        )
        .await;
    let body = page.ok(200);
    assert_eq!(body["total"], 12);
    assert_eq!(body["page"], 2);
    assert_eq!(body["per_page"], 5);
    let labels: Vec<_> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["label"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        labels,
        ["acct-06", "acct-07", "acct-08", "acct-09", "acct-10"]
    );

    let vip = app
        .get(
            &format!("/api/v1/accounts?storefront_id={sf}&tag=vip"),
            &app.viewer,
        )
        .await;
    assert_eq!(vip.ok(200)["total"], 4);
    // `_` in a tag is not a wildcard.
    let underscore = app.get("/api/v1/accounts?tag=batch_7", &app.viewer).await;
    assert_eq!(underscore.ok(200)["total"], 8);
    let inactive = app.get("/api/v1/accounts?active=false", &app.viewer).await;
    assert_eq!(inactive.ok(200)["items"][0]["label"], "acct-05");
    let text = app.get("/api/v1/accounts?q=USER1", &app.viewer).await;
    assert_eq!(text.ok(200)["total"], 3);
    let text = app.get("/api/v1/accounts?q=%25", &app.viewer).await;
    assert_eq!(text.ok(200)["total"], 0, "% is searched for literally");
    let status = app
        .get("/api/v1/accounts?status=unknown", &app.viewer)
        .await;
    assert_eq!(status.ok(200)["total"], 13);
    let sorted = app
        .get(
            &format!("/api/v1/accounts?storefront_id={sf}&sort=-email&per_page=1"),
            &app.viewer,
        )
        .await;
    assert_eq!(sorted.ok(200)["items"][0]["email"], "user12@example.com");

    for (query, field) in [
        ("sort=password", "sort"),
        ("per_page=0", "per_page"),
        ("per_page=501", "per_page"),
        ("page=0", "page"),
        ("page=x", "page"),
        ("status=sleepy", "status"),
        ("tag=bad%20tag", "tag"),
        ("active=maybe", "active"),
        ("colour=red", "colour"),
        ("format=csv", "format"),
    ] {
        let r = app
            .get(&format!("/api/v1/accounts?{query}"), &app.viewer)
            .await;
        assert_eq!(r.error(422, "invalid").as_deref(), Some(field), "{query}");
    }
}

#[tokio::test]
async fn cursors_walk_every_sort_without_gaps_or_repeats() {
    let app = TestApp::spawn().await;
    let sf = app.storefront("shop").await;
    for i in 0..13 {
        // Some labels repeat and some are missing: ties and NULLs must not lose rows.
        let extra = match i % 4 {
            0 => json!({}),
            1 => json!({"label": "same"}),
            _ => json!({"label": format!("acct-{:02}", 20 - i)}),
        };
        app.account(sf, &format!("user{i:02}@example.com"), extra)
            .await;
    }
    for sort in [
        "id",
        "-id",
        "label",
        "-label",
        "email",
        "-email",
        "updated_at",
        "-points",
    ] {
        let all = app
            .get(
                &format!("/api/v1/accounts?sort={sort}&per_page=500"),
                &app.viewer,
            )
            .await
            .ok(200)
            .clone();
        assert!(
            all["next_cursor"].is_null(),
            "a short page has no next page"
        );
        let expected: Vec<i64> = all["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_i64().unwrap())
            .collect();

        let mut walked = Vec::new();
        let mut path = format!("/api/v1/accounts?sort={sort}&per_page=4");
        loop {
            let page = app.get(&path, &app.viewer).await.ok(200).clone();
            assert_eq!(page["total"], 13);
            assert!(page["page"].is_null() || walked.is_empty());
            walked.extend(
                page["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a["id"].as_i64().unwrap()),
            );
            match page["next_cursor"].as_str() {
                Some(cursor) => {
                    path = format!("/api/v1/accounts?sort={sort}&per_page=4&cursor={cursor}")
                }
                None => break,
            }
        }
        assert_eq!(walked, expected, "sort {sort}");
    }

    let first = app
        .get("/api/v1/accounts?sort=label&per_page=2", &app.viewer)
        .await
        .ok(200)
        .clone();
    let cursor = first["next_cursor"].as_str().unwrap();
    for (query, field) in [
        (format!("sort=email&cursor={cursor}"), "cursor"),
        (format!("sort=label&page=2&cursor={cursor}"), "cursor"),
        ("cursor=garbage".to_owned(), "cursor"),
    ] {
        let r = app
            .get(&format!("/api/v1/accounts?{query}"), &app.viewer)
            .await;
        assert_eq!(r.error(422, "invalid").as_deref(), Some(field), "{query}");
    }
}

#[tokio::test]
async fn null_cannot_clear_a_required_field() {
    let app = TestApp::spawn().await;
    let sf = app.storefront("shop").await;
    let id = app
        .account(sf, "a@example.com", json!({"tags": ["vip"]}))
        .await["id"]
        .as_i64()
        .unwrap();
    let path = format!("/api/v1/accounts/{id}");
    for (body, field) in [
        (json!({"active": null}), "active"),
        (json!({"tags": null}), "tags"),
    ] {
        let r = app.patch(&path, &app.operator, body).await;
        assert_eq!(r.error(422, "invalid").as_deref(), Some(field));
    }
    let r = app
        .patch(
            &format!("/api/v1/storefronts/{sf}"),
            &app.admin,
            json!({"name": null}),
        )
        .await;
    assert_eq!(r.error(422, "invalid").as_deref(), Some("name"));
    assert_eq!(
        app.get(&path, &app.viewer).await.ok(200)["tags"],
        json!(["vip"])
    );
}
