use crate::kit::{control, shop};
use cartwright_demo_shop::marketplace::sign;
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A signed Open Platform GET.
async fn open_api(
    shop: &cartwright_demo_shop::RunningShop,
    path: &str,
    params: &[(&str, String)],
    key: Option<&str>,
    timestamp: i64,
) -> Value {
    let c = shop.shop.market().config();
    let base = format!(
        "{}{path}{timestamp}{}{}",
        c.partner_id, c.access_token, c.shop_id
    );
    let signature = sign(key.unwrap_or(&c.partner_key), &base);
    let mut query: Vec<(&str, String)> = vec![
        ("partner_id", c.partner_id.to_string()),
        ("timestamp", timestamp.to_string()),
        ("access_token", c.access_token.clone()),
        ("shop_id", c.shop_id.to_string()),
        ("sign", signature),
    ];
    query.extend(params.iter().cloned());
    reqwest::Client::new()
        .get(format!("{}{path}", shop.url()))
        .query(&query)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn open_platform_lists_and_details_orders_with_signed_requests() {
    let shop = shop(|_| {}).await;
    let list_params = |status: &str| {
        vec![
            ("time_range_field", "create_time".to_owned()),
            ("time_from", (now() - 86_400).to_string()),
            ("time_to", (now() + 60).to_string()),
            ("page_size", "5".to_owned()),
            ("order_status", status.to_owned()),
            ("response_optional_fields", "order_status".to_owned()),
        ]
    };
    let page = open_api(
        &shop,
        "/api/v2/order/get_order_list",
        &list_params(""),
        None,
        now(),
    )
    .await;
    assert_eq!(page["error"], "");
    assert_eq!(page["response"]["order_list"].as_array().unwrap().len(), 5);
    assert_eq!(page["response"]["more"], true);
    let (mut seen, mut cursor) = (
        5,
        page["response"]["next_cursor"].as_str().unwrap().to_owned(),
    );
    while !cursor.is_empty() {
        let mut params = list_params("");
        params.push(("cursor", cursor));
        let next = open_api(&shop, "/api/v2/order/get_order_list", &params, None, now()).await;
        seen += next["response"]["order_list"].as_array().unwrap().len();
        cursor = next["response"]["next_cursor"].as_str().unwrap().to_owned();
        assert_eq!(next["response"]["more"], !cursor.is_empty());
    }
    assert_eq!(seen, 12, "the pages cover every seeded order once");

    let ready = open_api(
        &shop,
        "/api/v2/order/get_order_list",
        &list_params("READY_TO_SHIP"),
        None,
        now(),
    )
    .await;
    let sns: Vec<String> = ready["response"]["order_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["order_sn"].as_str().unwrap().to_owned())
        .collect();
    assert!(!sns.is_empty());
    assert!(
        ready["response"]["order_list"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["order_status"] == "READY_TO_SHIP")
    );

    let detail = open_api(
        &shop,
        "/api/v2/order/get_order_detail",
        &[
            ("order_sn_list", sns.join(",")),
            (
                "response_optional_fields",
                "buyer_username,item_list,total_amount,pay_time".into(),
            ),
        ],
        None,
        now(),
    )
    .await;
    let order = &detail["response"]["order_list"][0];
    assert_eq!(order["order_sn"], sns[0].as_str());
    assert_eq!(order["order_status"], "READY_TO_SHIP");
    assert!(order["buyer_username"].is_string());
    assert!(order["item_list"][0]["item_name"].is_string());
    assert!(order["total_amount"].as_f64().unwrap() > 0.0);

    let forged = open_api(
        &shop,
        "/api/v2/order/get_order_list",
        &list_params(""),
        Some("wrong key"),
        now(),
    )
    .await;
    assert_eq!(forged["error"], "error_sign");
    let stale = open_api(
        &shop,
        "/api/v2/order/get_order_list",
        &list_params(""),
        None,
        now() - 3600,
    )
    .await;
    assert_eq!(stale["error"], "error_param");
    let mut too_long = list_params("");
    too_long[1].1 = (now() - 20 * 86_400).to_string();
    let r = open_api(
        &shop,
        "/api/v2/order/get_order_list",
        &too_long,
        None,
        now(),
    )
    .await;
    assert_eq!(r["error"], "order.order_list_invalid_time");
}

#[tokio::test]
async fn status_changes_are_pushed_signed_like_shopee() {
    // A receiver that keeps what it is sent.
    let received: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/push",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let sink = sink.clone();
            async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                sink.lock().unwrap().push((auth, body));
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let push_url = format!("http://{}/push", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let shop = shop(|_| {}).await;
    control(
        &shop,
        Method::PUT,
        "/_control/marketplace/push-url",
        Some(json!({"url": push_url})),
    )
    .await;
    let created = control(
        &shop,
        Method::POST,
        "/_control/marketplace/orders",
        Some(json!({"buyer": "budi.santoso"})),
    )
    .await;
    let sn = created["order_sn"].as_str().unwrap().to_owned();
    assert!(
        sn.len() >= 10
            && sn
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    );
    control(
        &shop,
        Method::PUT,
        &format!("/_control/marketplace/orders/{sn}/status"),
        Some(json!({"status": "READY_TO_SHIP"})),
    )
    .await;

    let mut pushes = Vec::new();
    for _ in 0..100 {
        pushes = received.lock().unwrap().clone();
        if pushes.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        pushes.len(),
        2,
        "one push for the new order, one for its payment"
    );
    let key = &shop.shop.market().config().partner_key;
    for (auth, body) in &pushes {
        assert_eq!(
            auth,
            &sign(key, &format!("{push_url}|{body}")),
            "Authorization is hex HMAC-SHA256 of url|body"
        );
    }
    let last: Value = serde_json::from_str(&pushes[1].1).unwrap();
    assert_eq!(last["code"], 3);
    assert_eq!(last["data"]["ordersn"], sn.as_str());
    assert_eq!(last["data"]["status"], "READY_TO_SHIP");
    let log = control(&shop, Method::GET, "/_control/marketplace/pushes", None).await;
    assert!(log.as_array().unwrap().iter().all(|p| p["status"] == 200));
}

#[tokio::test]
async fn the_seller_centre_shows_cards_in_english_and_indonesian() {
    let shop = shop(|_| {}).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = shop.url();
    let r = http
        .get(format!("{base}/seller/orders"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        303,
        "signed-out sellers are sent to the login page"
    );
    let wrong = http
        .post(format!("{base}/seller/login"))
        .form(&[("username", "seller"), ("password", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let ok = http
        .post(format!("{base}/seller/login"))
        .form(&[("username", "seller"), ("password", "seller-demo")])
        .send()
        .await
        .unwrap();
    let cookie = ok.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = |lang: &'static str| {
        let (http, cookie, base) = (http.clone(), cookie.clone(), base.clone());
        async move {
            http.get(format!("{base}/seller/orders?lang={lang}"))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let english = page("en").await;
    let indonesian = page("id").await;
    for label in ["Unpaid", "To Ship", "Shipping", "Completed", "Cancelled"] {
        assert!(english.contains(label), "{label}");
    }
    for label in [
        "Belum Bayar",
        "Perlu Dikirim",
        "Dikirim",
        "Selesai",
        "Batal",
    ] {
        assert!(indonesian.contains(label), "{label}");
    }

    // Statuses move on; the buyer can write in the chat and the seller answer.
    let orders = control(&shop, Method::GET, "/_control/marketplace/orders", None).await;
    let unpaid = orders
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["status"] == "UNPAID")
        .unwrap()["order_sn"]
        .as_str()
        .unwrap()
        .to_owned();
    let moved = control(&shop, Method::POST, "/_control/marketplace/advance", None).await;
    assert!(moved["moved"].as_u64().unwrap() > 0);
    let orders = control(&shop, Method::GET, "/_control/marketplace/orders", None).await;
    assert_eq!(
        orders
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["order_sn"] == unpaid.as_str())
            .unwrap()["status"],
        "READY_TO_SHIP"
    );
    let r = reqwest::Client::new()
        .post(format!(
            "{base}/_control/marketplace/orders/{unpaid}/messages"
        ))
        .json(&json!({"text": "Kapan kodenya dikirim?"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let chat = http
        .get(format!("{base}/seller/orders/{unpaid}/chat"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(chat.contains("Kapan kodenya dikirim?"));
    let sent = http
        .post(format!("{base}/seller/orders/{unpaid}/chat"))
        .header("cookie", &cookie)
        .form(&[("text", "Sudah dikirim lewat chat, terima kasih!")])
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 303);
    let chat = http
        .get(format!("{base}/seller/orders/{unpaid}/chat"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(chat.contains("data-from=\"seller\""));
}
