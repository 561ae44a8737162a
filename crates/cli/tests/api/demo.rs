use crate::helpers::TestApp;
use cartwright::demo::{DEMO_ACCOUNTS, DEMO_PASSWORD, DEMO_USERNAME, ensure_admin};
use cartwright_core::ids::AccountId;
use serde_json::Value;

async fn login(http: &reqwest::Client, base: &str) -> String {
    let r = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({"username": DEMO_USERNAME, "password": DEMO_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Every stored account cookie signs in at the shop's rewards API.
async fn cookies_work(demo: &cartwright::demo::Demo, accounts: &Value) {
    let http = reqwest::Client::new();
    for account in accounts["items"].as_array().unwrap().iter().take(5) {
        let jar = demo
            .server
            .store
            .account_cookies(AccountId(account["id"].as_i64().unwrap()))
            .await
            .unwrap()
            .unwrap();
        let cookie = &jar.cookies()[0];
        assert_eq!(cookie.name, "f.session");
        let r = http
            .get(format!(
                "{}/ext/reward-engine/application/api/v1.0/user/account",
                demo.shop.url()
            ))
            .header("cookie", format!("f.session={}", cookie.value))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            200,
            "the imported cookie of {} signs in",
            account["email"]
        );
    }
}

#[tokio::test]
async fn the_demo_seeds_cartwright_from_the_shop_and_refreshes_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let settings = cartwright::Settings {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    };
    let shop_addr = "127.0.0.1:0".parse().unwrap();
    let http = reqwest::Client::new();

    let demo = cartwright::demo::start(&settings, shop_addr).await.unwrap();
    assert!(
        !ensure_admin(&demo.server.store).await.unwrap(),
        "the demo admin exists"
    );
    let base = format!("http://{}", demo.server.addr);
    let token = login(&http, &base).await;
    let get = |path: &str| {
        let (http, token, url) = (http.clone(), token.clone(), format!("{base}{path}"));
        async move {
            http.get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let storefronts = get("/api/v1/storefronts").await;
    assert_eq!(storefronts[0]["slug"], "demo");
    assert_eq!(storefronts[0]["base_url"], format!("{}/", demo.shop.url()));
    let demo_id = storefronts[0]["id"].as_i64().unwrap();
    // The second storefront: the shop's Threads pages, its accounts, products in sizes.
    assert_eq!(storefronts[1]["slug"], "threads");
    assert_eq!(storefronts[1]["profile"], "threads");
    assert_eq!(
        storefronts[1]["base_url"],
        format!("{}/", demo.threads.url())
    );
    let threads_id = storefronts[1]["id"].as_i64().unwrap();
    assert_eq!(
        get(&format!("/api/v1/accounts?storefront_id={threads_id}")).await["total"],
        20
    );
    let sized = get(&format!(
        "/api/v1/products?storefront_id={threads_id}&per_page=100"
    ))
    .await;
    assert_eq!(sized["total"], 24 + 4 * 2);
    assert!(
        sized["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["variant"] == "Mini")
    );
    let accounts = get(&format!(
        "/api/v1/accounts?per_page=100&storefront_id={demo_id}"
    ))
    .await;
    assert_eq!(accounts["total"], DEMO_ACCOUNTS);
    assert!(
        accounts["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["session"]["has_cookies"] == true)
    );
    assert_eq!(
        get(&format!(
            "/api/v1/accounts?tag=batch-b&storefront_id={demo_id}"
        ))
        .await["total"],
        DEMO_ACCOUNTS / 2
    );
    let products = get(&format!(
        "/api/v1/products?per_page=100&storefront_id={demo_id}"
    ))
    .await;
    assert_eq!(products["total"], 24);
    assert!(
        products["items"][0]["url"]
            .as_str()
            .unwrap()
            .starts_with(&demo.shop.url())
    );
    let addresses = get("/api/v1/addresses").await;
    assert_eq!(addresses.as_array().unwrap().len(), 2);
    assert_eq!(addresses[0]["is_default"], true);
    cookies_work(&demo, &accounts).await;
    // Digital goods: the marketplace connected, its catalogue stocked, and new orders coming
    // in and delivered through its chat within a minute, nobody touching anything.
    let goods = get("/api/v1/digital-products").await;
    assert_eq!(goods.as_array().unwrap().len(), 8);
    assert_eq!(get("/api/v1/channels").await[0]["target"]["kind"], "chat");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let delivered = loop {
        let orders = get("/api/v1/market/orders?state=delivered").await;
        if let Some(o) = orders.as_array().and_then(|o| o.first()) {
            break o.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a demo order delivered within a minute"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    let number = delivered["external_id"].as_str().unwrap();
    let chats = demo.shop.shop.market().orders();
    let chat = &chats
        .iter()
        .find(|o| o.order_sn == number)
        .unwrap()
        .messages;
    assert!(
        chat.iter()
            .any(|m| m.from == "seller" && m.text.contains("thanks for order")),
        "the goods went to the buyer's chat: {chat:?}"
    );
    assert!(
        dir.path().join("cartwright.db").exists(),
        "the demo runs on SQLite in its data dir"
    );
    demo.server.stop().await.unwrap();
    demo.shop.stop().await.unwrap();
    demo.threads.stop().await.unwrap();

    // A second start: a new shop (new port, new sessions); Cartwright is pointed at it again.
    let demo = cartwright::demo::start(&settings, shop_addr).await.unwrap();
    let base = format!("http://{}", demo.server.addr);
    let token = login(&http, &base).await;
    let accounts: Value = http
        .get(format!(
            "{base}/api/v1/accounts?per_page=100&storefront_id={demo_id}"
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(accounts["total"], DEMO_ACCOUNTS, "no duplicates");
    let products: Value = http
        .get(format!(
            "{base}/api/v1/products?per_page=100&storefront_id={demo_id}"
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(products["total"], 24);
    assert!(
        products["items"][0]["url"]
            .as_str()
            .unwrap()
            .starts_with(&demo.shop.url())
    );
    cookies_work(&demo, &accounts).await;
    let connections = demo.server.store.connections().await.unwrap();
    assert_eq!(connections.len(), 1, "connected once");
    assert_eq!(
        connections[0].base_url.trim_end_matches('/'),
        demo.shop.url(),
        "pointed at the new shop"
    );
    assert_eq!(demo.server.store.digital_products().await.unwrap().len(), 8);
    demo.server.stop().await.unwrap();
    demo.shop.stop().await.unwrap();
    demo.threads.stop().await.unwrap();

    // Existing installs keep their operators.
    let app = TestApp::spawn().await;
    assert!(!ensure_admin(app.store()).await.unwrap());
}
