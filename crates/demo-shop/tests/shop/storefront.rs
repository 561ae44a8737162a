use crate::kit::{Shopper, control, shop};
use reqwest::Method;
use serde_json::json;
use std::time::{Duration, Instant};

const REWARDS: &str = "/ext/reward-engine/application/api/v1.0/user/account";

#[tokio::test]
async fn rewards_answer_with_a_session_and_refuse_without() {
    let shop = shop(|_| {}).await;
    let mut anonymous = Shopper::new(&shop, None);
    let r = anonymous.get(REWARDS).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["success"], false);

    let customer = &shop.shop.customers()[2];
    let mut shopper = Shopper::new(&shop, shop.shop.sign_in(customer.id));
    let r = shopper.get(REWARDS).await;
    assert_eq!(r.status, 200);
    let body = r.json();
    assert_eq!(body["success"], true);
    assert_eq!(body["pointSummary"]["available"], customer.points);
    assert_eq!(body["userTier"]["name"], customer.tier.as_str());

    let mut forged = Shopper::new(&shop, Some("s%3Anobody.forged".into()));
    assert_eq!(forged.get(REWARDS).await.status, 401);
}

#[tokio::test]
async fn the_session_cookie_rotates_and_the_old_value_stops_working() {
    let shop = shop(|c| {
        c.rotate_every = 3;
        c.rotation_grace = Duration::ZERO;
    })
    .await;
    let first = shop.shop.sign_in(1).unwrap();
    let mut shopper = Shopper::new(&shop, Some(first.clone()));
    let mut rotations = 0;
    for _ in 0..6 {
        let r = shopper.get(REWARDS).await;
        assert_eq!(
            r.status, 200,
            "a client keeping the refreshed value stays signed in"
        );
        rotations += r.headers.get_all("set-cookie").iter().count();
    }
    assert_eq!(rotations, 2, "a new value every third response");
    assert_ne!(shopper.cookie.as_deref(), Some(first.as_str()));
    let mut stale = Shopper::new(&shop, Some(first));
    assert_eq!(
        stale.get(REWARDS).await.status,
        401,
        "the replaced value no longer signs in"
    );
}

#[tokio::test]
async fn pages_show_the_signed_in_state() {
    let shop = shop(|_| {}).await;
    let mut anonymous = Shopper::new(&shop, None);
    let home = anonymous.get("/").await;
    assert!(home.text.contains(">Login<"));
    let cart = anonymous.get("/cart").await;
    assert_eq!(cart.status, 200);
    assert!(cart.text.contains("Login to continue"));

    let customer = &shop.shop.customers()[0];
    let mut shopper = Shopper::new(&shop, shop.shop.sign_in(customer.id));
    let home = shopper.get("/").await;
    assert!(home.text.contains(&format!("Hi, {}", customer.first_name)));
    assert!(home.text.contains("My Account"));
    let details = shopper.get("/profile/details").await;
    assert!(details.text.contains(&customer.email) && details.text.contains(&customer.phone));

    // Class names carry a build hash that depends on the seed.
    let other = crate::kit::shop(|c| c.seed = 99).await;
    let a = shop.shop.classes().primary.clone();
    let b = other.shop.classes().primary.clone();
    assert!(a.starts_with("primary--") && b.starts_with("primary--") && a != b);
    assert!(
        Shopper::new(&shop, None)
            .get("/p/velvet-matte-lipstick")
            .await
            .text
            .contains(&a)
    );
}

#[tokio::test]
async fn a_purchase_over_the_api_and_its_inspection() {
    let shop = shop(|_| {}).await;
    let customer = shop.shop.customers()[1].clone();
    let mut s = Shopper::new(&shop, shop.shop.sign_in(customer.id));
    assert_eq!(
        s.post("/api/cart/items", json!({"slug": "vitamin-c-serum"}))
            .await
            .status,
        200
    );
    assert_eq!(
        s.post("/api/cart/items", json!({"slug": "vitamin-c-serum"}))
            .await
            .status,
        200
    );
    let out_of_stock = s
        .post("/api/cart/items", json!({"slug": "nude-eyeshadow-palette"}))
        .await;
    assert_eq!(out_of_stock.status, 409);
    assert!(
        out_of_stock.json()["error"]
            .as_str()
            .unwrap()
            .contains("out of stock")
    );
    let before = s.get("/api/cart").await.json()["totals"]["total"]
        .as_i64()
        .unwrap();
    assert_eq!(
        s.post("/api/cart/coupon", json!({"code": "WELCOME10"}))
            .await
            .status,
        200
    );
    let after = s.get("/api/cart").await.json()["totals"]["total"]
        .as_i64()
        .unwrap();
    assert!(after < before, "a coupon lowers the total");
    let cart_page = s.get("/cart").await.text;
    for text in [
        "Total MRP",
        ">Total<",
        "Decrease Quantity",
        "Apply Coupons",
        "WELCOME10",
    ] {
        assert!(cart_page.contains(text), "cart page shows {text}");
    }

    let place = s.get("/api/pincode/560001").await;
    assert_eq!(place.json()["city"], "Bengaluru");
    let address = s
        .post("/api/addresses", json!({"full_name": "Asha Rao", "phone": "9800000000", "line1": "Flat 4", "street": "MG Road", "pincode": "560001", "kind": "Home"}))
        .await;
    assert_eq!(address.status, 201);
    let address_id = address.json()["id"].as_u64().unwrap();
    let order = s
        .post(
            "/api/orders",
            json!({"address_id": address_id, "payment": "cod"}),
        )
        .await;
    assert_eq!(order.status, 201);
    let number = order.json()["number"].as_str().unwrap().to_owned();
    let confirmation = s.get(&format!("/order-confirmation/{number}")).await;
    assert!(confirmation.text.contains(&number));
    assert!(s.get("/profile/orders").await.text.contains(&number));

    let orders = control(
        &shop,
        Method::GET,
        &format!("/_control/orders?account={}", customer.email),
        None,
    )
    .await;
    assert_eq!(orders.as_array().unwrap().len(), 1);
    assert_eq!(orders[0]["number"], number.as_str());
    assert_eq!(orders[0]["total"], after);
    assert_eq!(orders[0]["coupon"], "WELCOME10");
    assert_eq!(
        orders[0]["items"][0],
        json!({"slug": "vitamin-c-serum", "qty": 2, "unit_price": shop.shop.products()[7].price, "variant": null})
    );
    let requests = control(
        &shop,
        Method::GET,
        &format!("/_control/requests?account={}", customer.email),
        None,
    )
    .await;
    assert_eq!(requests["counts"]["POST /api/cart/items"], 3);
    assert_eq!(requests["counts"]["POST /api/orders"], 1);

    control(&shop, Method::POST, "/_control/reset", None).await;
    assert_eq!(
        control(&shop, Method::GET, "/_control/orders", None).await,
        json!([])
    );
    assert_eq!(
        control(&shop, Method::GET, "/_control/requests", None).await["total"],
        0
    );
}

#[tokio::test]
async fn addresses_are_edited_then_deleted_with_confirmation() {
    let shop = shop(|_| {}).await;
    let mut s = Shopper::new(&shop, shop.shop.sign_in(1));
    for name in ["Home One", "Home Two"] {
        let r = s.post("/api/addresses", json!({"full_name": name, "phone": "9800000000", "line1": "1", "street": "Main", "pincode": "400001"})).await;
        assert_eq!(r.status, 201);
    }
    let page = s.get("/profile/address").await.text;
    assert!(
        page.contains("Edit address") && page.contains(">Delete<") && page.contains(">Remove<")
    );
    let list = s.get("/api/addresses").await.json();
    let id = list[0]["id"].as_u64().unwrap();
    assert_eq!(
        s.send(Method::DELETE, &format!("/api/addresses/{id}"), None)
            .await
            .status,
        200
    );
    assert_eq!(
        s.get("/api/addresses")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let bad = s
        .post(
            "/api/addresses",
            json!({"full_name": "X", "phone": "1", "line1": "1", "street": "s", "pincode": "12"}),
        )
        .await;
    assert_eq!(bad.status, 422);
}

#[tokio::test]
async fn fault_latency_errors_and_rate_limits() {
    let shop = shop(|_| {}).await;
    let mut s = Shopper::new(&shop, shop.shop.sign_in(1));

    control(
        &shop,
        Method::PUT,
        "/_control/faults",
        Some(json!({"latency_ms": 250})),
    )
    .await;
    let started = Instant::now();
    assert_eq!(s.get("/").await.status, 200);
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "pages are slowed by the latency fault"
    );

    control(
        &shop,
        Method::PUT,
        "/_control/faults",
        Some(json!({"error_rate": 1.0})),
    )
    .await;
    for _ in 0..5 {
        assert!(s.get("/").await.status.is_server_error());
    }
    control(
        &shop,
        Method::PUT,
        "/_control/faults",
        Some(json!({"error_rate": 0.5})),
    )
    .await;
    let mut errors = 0;
    for _ in 0..40 {
        errors += usize::from(s.get(REWARDS).await.status.is_server_error());
    }
    assert!((5..=35).contains(&errors), "about half fail: {errors}");

    control(
        &shop,
        Method::PUT,
        "/_control/faults",
        Some(json!({"account_rate_limit": 2.0})),
    )
    .await;
    let mut limited = None;
    for _ in 0..4 {
        let r = s.get(REWARDS).await;
        if r.status == 429 {
            limited = Some(r);
            break;
        }
    }
    let limited = limited.expect("the third request within a second is refused");
    let wait: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait >= 1);
    let mut other = Shopper::new(&shop, shop.shop.sign_in(2));
    assert_eq!(
        other.get(REWARDS).await.status,
        200,
        "another account has its own allowance"
    );

    control(
        &shop,
        Method::PUT,
        "/_control/faults",
        Some(json!({"shop_rate_limit": 1.0})),
    )
    .await;
    let statuses = [
        other.get(REWARDS).await.status.as_u16(),
        other.get(REWARDS).await.status.as_u16(),
    ];
    assert!(
        statuses.contains(&429),
        "the whole shop is limited too: {statuses:?}"
    );
    let seen = control(&shop, Method::GET, "/_control/requests", None).await;
    assert!(
        seen["requests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["status"] == 429)
    );
}

#[tokio::test]
async fn fault_expired_sessions() {
    let shop = shop(|_| {}).await;
    let customers = shop.shop.customers();
    let mut a = Shopper::new(&shop, shop.shop.sign_in(customers[0].id));
    let mut b = Shopper::new(&shop, shop.shop.sign_in(customers[1].id));
    let r = control(
        &shop,
        Method::POST,
        "/_control/sessions/expire",
        Some(json!({"accounts": [customers[0].email]})),
    )
    .await;
    assert_eq!(r["expired"], 1);
    assert_eq!(a.get(REWARDS).await.status, 401);
    assert!(
        a.get("/").await.text.contains(">Login<"),
        "the storefront shows the signed-out state"
    );
    assert_eq!(b.get(REWARDS).await.status, 200);
}

async fn ready_to_order(shop: &cartwright_demo_shop::RunningShop, slug: &str) -> (Shopper, u64) {
    let mut s = Shopper::new(shop, shop.shop.sign_in(1));
    assert_eq!(
        s.post("/api/cart/items", json!({"slug": slug}))
            .await
            .status,
        200
    );
    let a = s.post("/api/addresses", json!({"full_name": "A", "phone": "9800000000", "line1": "1", "street": "Main", "pincode": "110001"})).await;
    (s, a.json()["id"].as_u64().unwrap())
}

#[tokio::test]
async fn fault_selling_out_at_checkout() {
    let shop = shop(|_| {}).await;
    let (mut s, address) = ready_to_order(&shop, "argan-hair-oil").await;
    control(
        &shop,
        Method::PUT,
        "/_control/faults",
        Some(json!({"sell_out_at_checkout": "argan-hair-oil"})),
    )
    .await;
    let r = s
        .post(
            "/api/orders",
            json!({"address_id": address, "payment": "cod"}),
        )
        .await;
    assert_eq!(r.status, 409);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("Argan Hair Oil is out of stock")
    );
    assert_eq!(
        control(&shop, Method::GET, "/_control/orders", None).await,
        json!([])
    );
    // Stock can also be changed directly.
    control(
        &shop,
        Method::PUT,
        "/_control/products/repair-shampoo",
        Some(json!({"stock": 0})),
    )
    .await;
    assert_eq!(
        s.post("/api/cart/items", json!({"slug": "repair-shampoo"}))
            .await
            .status,
        409
    );
}

#[tokio::test]
async fn fault_confirmation_fails_after_the_order_is_placed() {
    for mode in ["error", "lost"] {
        let shop = shop(|_| {}).await;
        let (mut s, address) = ready_to_order(&shop, "vitamin-c-serum").await;
        control(
            &shop,
            Method::PUT,
            "/_control/faults",
            Some(json!({"confirmation": mode})),
        )
        .await;
        let placed = s
            .post(
                "/api/orders",
                json!({"address_id": address, "payment": "cod"}),
            )
            .await;
        let orders = control(&shop, Method::GET, "/_control/orders", None).await;
        assert_eq!(
            orders.as_array().unwrap().len(),
            1,
            "{mode}: the order is placed"
        );
        let number = orders[0]["number"].as_str().unwrap().to_owned();
        if mode == "lost" {
            assert_eq!(placed.status, 502, "the order request itself fails");
        } else {
            assert_eq!(placed.status, 201);
            assert_eq!(
                s.get(&format!("/order-confirmation/{number}")).await.status,
                500
            );
        }
        assert!(
            s.get("/profile/orders").await.text.contains(&number),
            "{mode}: but it is in the history"
        );
    }
}

#[tokio::test]
async fn fault_confirmation_hangs() {
    let shop = shop(|_| {}).await;
    let (mut s, address) = ready_to_order(&shop, "vitamin-c-serum").await;
    control(
        &shop,
        Method::PUT,
        "/_control/faults",
        Some(json!({"confirmation": "hang"})),
    )
    .await;
    let number = s
        .post(
            "/api/orders",
            json!({"address_id": address, "payment": "cod"}),
        )
        .await
        .json()["number"]
        .as_str()
        .unwrap()
        .to_owned();
    let hung = tokio::time::timeout(
        Duration::from_millis(500),
        s.get(&format!("/order-confirmation/{number}")),
    )
    .await;
    assert!(hung.is_err(), "the confirmation page never answers");
    assert!(s.get("/profile/orders").await.text.contains(&number));
}
