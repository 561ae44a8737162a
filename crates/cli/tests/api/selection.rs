use crate::helpers::TestApp;
use serde_json::{Value, json};

fn ids(list: &Value) -> Vec<i64> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_i64().or(a["account"]["id"].as_i64()).unwrap())
        .collect()
}

#[tokio::test]
async fn selections_by_range_ids_and_tag() {
    let app = TestApp::spawn().await;
    let sf = app.storefront("shop").await;
    let other = app.storefront("other").await;
    let foreign = app
        .account(other, "x@example.com", json!({"tags": ["vip"]}))
        .await["id"]
        .as_i64()
        .unwrap();
    let mut made = Vec::new();
    for i in 1..=6 {
        let tags = if i % 2 == 0 {
            json!(["vip"])
        } else {
            json!([])
        };
        let a = app
            .account(
                sf,
                &format!("u{i}@example.com"),
                json!({"tags": tags, "active": i != 2}),
            )
            .await;
        made.push(a["id"].as_i64().unwrap());
    }
    // Deleting one account shifts later positions: positions count accounts as they are now.
    app.delete(&format!("/api/v1/accounts/{}", made[3]), &app.operator)
        .await
        .ok(204);

    let r = app
        .post(
            "/api/v1/accounts/selection",
            &app.viewer,
            json!({"storefront_id": sf, "range": {"from": 1, "to": 4}}),
        )
        .await;
    let body = r.ok(200);
    assert_eq!(ids(&body["selected"]), [made[0], made[2], made[4]]);
    let positions: Vec<i64> = body["selected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["position"].as_i64().unwrap())
        .collect();
    assert_eq!(positions, [1, 3, 4]);
    assert_eq!(ids(&body["skipped"]), [made[1]]);
    assert_eq!(body["skipped"][0]["reason"], "inactive");
    assert_eq!(body["not_found"], json!([]));
    assert_eq!(body["selection"]["by"]["by"], "range");

    let r = app
        .post(
            "/api/v1/accounts/selection",
            &app.viewer,
            json!({"storefront_id": sf, "range": {"from": 4, "to": 9}}),
        )
        .await;
    let body = r.ok(200);
    assert_eq!(ids(&body["selected"]), [made[4], made[5]]);
    assert_eq!(
        body["not_found"],
        json!(["positions 6-9 (the storefront has 5 accounts)"])
    );

    let r = app
        .post(
            "/api/v1/accounts/selection",
            &app.viewer,
            json!({"storefront_id": sf, "ids": [made[5], made[0], 999, foreign, made[5]]}),
        )
        .await;
    let body = r.ok(200);
    assert_eq!(
        ids(&body["selected"]),
        [made[5], made[0]],
        "in the order asked, duplicates dropped"
    );
    assert_eq!(
        body["not_found"],
        json!(["account 999", format!("account {foreign}")])
    );

    let r = app
        .post(
            "/api/v1/accounts/selection",
            &app.viewer,
            json!({"storefront_id": sf, "tag": "VIP"}),
        )
        .await;
    let body = r.ok(200);
    assert_eq!(ids(&body["selected"]), [made[5]]);
    assert_eq!(ids(&body["skipped"]), [made[1]]);
}

#[tokio::test]
async fn bad_selections_name_the_field() {
    let app = TestApp::spawn().await;
    let sf = app.storefront("shop").await;
    let cases = [
        (json!({"storefront_id": sf}), "range"),
        (
            json!({"storefront_id": sf, "tag": "vip", "ids": [1]}),
            "range",
        ),
        (
            json!({"storefront_id": sf, "range": {"from": 0, "to": 5}}),
            "range.from",
        ),
        (
            json!({"storefront_id": sf, "range": {"from": 5, "to": 2}}),
            "range.to",
        ),
        (
            json!({"storefront_id": sf, "range": {"from": 1, "to": 200000}}),
            "range",
        ),
        (
            json!({"storefront_id": sf, "range": {"from": -1, "to": 2}}),
            "range.from",
        ),
        (
            json!({"storefront_id": sf, "range": {"from": 1}}),
            "range.to",
        ),
        (json!({"storefront_id": sf, "ids": []}), "ids"),
        (json!({"storefront_id": sf, "ids": ["a"]}), "ids[0]"),
        (json!({"storefront_id": sf, "tag": "no spaces"}), "tag"),
        (json!({"storefront_id": 999, "tag": "vip"}), "storefront_id"),
    ];
    for (body, field) in cases {
        let r = app
            .post("/api/v1/accounts/selection", &app.viewer, body.clone())
            .await;
        assert_eq!(r.error(422, "invalid").as_deref(), Some(field), "{body}");
    }
}
