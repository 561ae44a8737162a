//! The second storefront flavour (Demo Threads, profiles/threads.toml): form posts, sizes, a
//! discount code, a three-page checkout with a shipping choice, through the engine's workers
//! in Chromium.

use crate::kit::*;
use cartwright_core::batch::BatchState;
use cartwright_core::catalog::NewProduct;
use cartwright_core::ids::ProductId;
use cartwright_core::money::Money;
use cartwright_core::order::OrderState;
use cartwright_core::values::{HttpUrl, Text};
use cartwright_demo_shop::{Faults, Flavour, model};
use std::collections::BTreeMap;
use std::time::Duration;

/// The shop product `index` in a size, as a product of its own (same page, another variant).
async fn sized(f: &Fixture, index: usize, size: &str) -> ProductId {
    let p = &f.shop.shop.products()[index];
    f.store
        .create_product(&NewProduct {
            storefront_id: f.storefront,
            name: Text::parse(&format!("{} ({size})", p.name)).unwrap(),
            url: HttpUrl::parse(&format!("{}/products/{}", f.shop.url(), p.slug)).unwrap(),
            variant: Some(Text::parse(size).unwrap()),
            sku: None,
            price: Some(Money::from_minor(p.price).unwrap()),
            brand: None,
            category: None,
            in_stock: true,
            image_url: None,
        })
        .await
        .unwrap()
        .id
}

fn spec(
    f: &Fixture,
    accounts: usize,
    lines: &[(ProductId, u32)],
    extra: serde_json::Value,
) -> cartwright_core::batch::NewBatch {
    let mut spec = serde_json::json!({
        "accounts": {"storefront_id": f.storefront.get(), "range": {"from": 1, "to": accounts}},
        "lines": lines.iter().map(|(p, q)| serde_json::json!({"product_id": p.get(), "quantity": q})).collect::<Vec<_>>(),
        "max_total": 100_000,
    });
    if let (Some(spec), serde_json::Value::Object(extra)) = (spec.as_object_mut(), extra) {
        spec.extend(extra);
    }
    serde_json::from_value(spec).unwrap()
}

/// A shop order's lines as (slug, size, units), sorted.
fn bought(f: &Fixture, order: &model::Order) -> Vec<(String, Option<String>, u32)> {
    let products = f.shop.shop.products();
    let mut lines: Vec<_> = order
        .lines
        .iter()
        .map(|l| {
            let slug = products
                .iter()
                .find(|p| p.id == l.product)
                .unwrap()
                .slug
                .clone();
            (slug, l.variant.clone(), l.qty)
        })
        .collect();
    lines.sort();
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sizes_a_discount_code_and_express_shipping_are_ordered_as_the_batch_says() {
    let f = Fixture::flavoured(Flavour::Threads, 2, |_| {}).await;
    let mini = sized(&f, 0, "Mini").await;
    let large = sized(&f, 0, "Large").await;
    let workers = f.workers("w1", 2);
    let batch = f
        .submit(&spec(
            &f,
            2,
            &[(mini, 2), (large, 1), (f.products[1], 1)],
            serde_json::json!({"coupon_code": "welcome10", "shipping": "Express"}),
        ))
        .await;
    let done = f.settled(batch.id, Duration::from_secs(180)).await;
    workers.shutdown(Duration::from_secs(5)).await;
    assert_eq!(done.state, BatchState::Finished, "{:?}", done.counts);
    assert_eq!(done.counts.placed, 2, "{:?}", done.counts);
    let products = f.shop.shop.products();
    let (first, second) = (&products[0].slug, &products[1].slug);
    let shop_orders = f.shop.shop.orders();
    assert_eq!(shop_orders.len(), 2);
    for order in f.orders(batch.id).await {
        assert_eq!(order.state, OrderState::Placed);
        let number = order.order_number.clone().unwrap();
        let placed = shop_orders.iter().find(|o| o.number == number).unwrap();
        let mut asked = vec![
            (first.clone(), Some("Large".into()), 1),
            (first.clone(), Some("Mini".into()), 2),
            (second.clone(), Some("Regular".into()), 1),
        ];
        asked.sort();
        assert_eq!(
            bought(&f, placed),
            asked,
            "each size is its own line; a product without one takes the page's first"
        );
        assert_eq!(placed.coupon.as_deref(), Some("WELCOME10"));
        assert_eq!(order.coupon.as_deref(), Some("welcome10"));
        assert_eq!(
            placed.totals.shipping,
            model::EXPRESS_FEE,
            "express was chosen"
        );
        assert_eq!(
            order.total_minor,
            Some(placed.totals.total),
            "the total is the last page's, shipping included"
        );
        assert_eq!(
            order.discount_minor,
            Some(placed.totals.coupon_discount),
            "the discount is the one the page shows, not subtotal − total"
        );
        assert_eq!(
            placed.address.full_name, "Asha Rao",
            "first and last name typed apart"
        );
    }
}

/// Runs one order of product 0 with `extra` in its batch, checks it failed and that the shop
/// took no order; the order.
async fn fails_placing_nothing(
    f: &Fixture,
    extra: serde_json::Value,
) -> cartwright_core::order::Order {
    let workers = f.workers("w1", 1);
    let batch = f.submit(&spec(f, 1, &[(f.products[0], 1)], extra)).await;
    let done = f.settled(batch.id, Duration::from_secs(120)).await;
    workers.shutdown(Duration::from_secs(5)).await;
    assert_eq!(done.counts.failed, 1, "{:?}", done.counts);
    assert!(f.shop.shop.orders().is_empty());
    f.orders(batch.id).await.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_the_shop_refuses_places_nothing() {
    let f = Fixture::flavoured(Flavour::Threads, 1, |_| {}).await;
    let order = fails_placing_nothing(&f, serde_json::json!({"coupon_code": "NOSUCHCODE"})).await;
    assert_eq!(
        order.error_class,
        Some(cartwright_core::order::ErrorClass::Business)
    );
    let message = order.error_message.unwrap_or_default();
    assert!(message.contains("NOSUCHCODE"), "{message}");
}

/// Runs a batch over `n` accounts (two of product 0 in Mini, one of product 1, the code
/// TRY50, express shipping) under `faults` with four workers, and checks the promise: no
/// account ordered twice, every order the shop took is the batch's cart and is recorded as
/// placed. The batch's counts.
async fn batch_under(n: usize, faults: Faults) -> cartwright_core::batch::OrderCounts {
    let f = Fixture::flavoured(Flavour::Threads, n, |c| {
        c.customers = n;
        c.faults = faults;
    })
    .await;
    let mini = sized(&f, 0, "Mini").await;
    let workers = f.workers("w1", 4);
    let batch = f
        .submit(&spec(
            &f,
            n,
            &[(mini, 2), (f.products[1], 1)],
            serde_json::json!({"coupon_code": "TRY50", "shipping": "Express"}),
        ))
        .await;
    let done = f.settled(batch.id, Duration::from_secs(900)).await;
    workers.shutdown(Duration::from_secs(5)).await;
    eprintln!("counts {:?}", done.counts);
    let orders = f.orders(batch.id).await;
    for o in orders.iter().filter(|o| o.state != OrderState::Placed) {
        eprintln!("not placed: {:?} {:?}", o.error_class, o.error_message);
    }
    let shop_orders = f.shop.shop.orders();
    let slugs = f.shop.shop.products();
    let mut asked = vec![
        (slugs[0].slug.clone(), Some("Mini".to_owned()), 2),
        (slugs[1].slug.clone(), Some("Regular".to_owned()), 1),
    ];
    asked.sort();
    let mut per_customer: BTreeMap<u32, usize> = BTreeMap::new();
    for o in &shop_orders {
        *per_customer.entry(o.customer).or_default() += 1;
        assert_eq!(
            bought(&f, o),
            asked,
            "order {} is the batch's cart",
            o.number
        );
        assert_eq!(o.coupon.as_deref(), Some("TRY50"));
        assert_eq!(o.totals.shipping, model::EXPRESS_FEE);
    }
    assert!(
        per_customer.values().all(|n| *n == 1),
        "no account ordered twice: {per_customer:?}"
    );
    let placed: Vec<_> = orders
        .iter()
        .filter(|o| o.state == OrderState::Placed)
        .collect();
    assert_eq!(
        placed.len(),
        shop_orders.len(),
        "every shop order is a placed order: {:?}",
        done.counts
    );
    for o in &placed {
        let number = o.order_number.as_deref().unwrap();
        assert!(shop_orders.iter().any(|s| s.number == number), "{number}");
    }
    done.counts
}

/// The bar: under a 20 % error rate on every page and form, with default settings,
/// at least 95 % of 40 orders are placed, none twice, none with a cart other than the batch's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_orders_under_a_fifth_of_requests_failing() {
    let counts = batch_under(
        40,
        Faults {
            error_rate: 0.2,
            ..Faults::default()
        },
    )
    .await;
    assert!(
        counts.placed >= 38,
        "placed {} of 40: {counts:?}",
        counts.placed
    );
}

/// The loyalty API answers in a shape of its own (`/customer/loyalty/balance`): the profile's
/// pointers read it, and an expired session is told apart by its 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loyalty_api_of_another_shape_is_read_by_the_profile() {
    let f = Fixture::flavoured(Flavour::Threads, 4, |_| {}).await;
    let first = f.store.account(f.accounts[0]).await.unwrap();
    f.control(
        reqwest::Method::POST,
        "/_control/sessions/expire",
        serde_json::json!({"accounts": [first.email.as_ref().unwrap().to_string()]}),
    )
    .await;
    let workers = f.workers("w", 1);
    let spec: cartwright_core::rewards::NewRewardsRun = serde_json::from_value(serde_json::json!({
        "accounts": {"storefront_id": f.storefront.get(), "range": {"from": 1, "to": 4}},
    }))
    .unwrap();
    let run = f.engine.start_rewards_run(&spec, None).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let done = loop {
        let now = f.store.rewards_run(run.id).await.unwrap();
        if now.state != cartwright_core::rewards::RunState::Running {
            break now;
        }
        assert!(std::time::Instant::now() < deadline, "{now:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    workers.shutdown(Duration::from_secs(5)).await;
    assert_eq!(
        (done.ok, done.logged_out, done.failed),
        (3, 1, 0),
        "{done:?}"
    );
    let customers = f.shop.shop.customers();
    for id in &f.accounts[1..] {
        let a = f.store.account(*id).await.unwrap();
        let email = a.email.as_ref().unwrap().to_string();
        let c = customers.iter().find(|c| c.email == email).unwrap();
        assert_eq!(a.points, Some(c.points), "{email}");
        assert_eq!(a.tier.as_deref(), Some(c.tier.as_str()), "{email}");
    }
}

/// A rehearsal runs every phase but the final click, records each step with a screenshot and
/// what its selectors matched, and leaves the shop without an order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rehearsal_goes_to_the_payment_page_and_places_nothing() {
    let f = Fixture::flavoured(Flavour::Threads, 1, |_| {}).await;
    let mini = sized(&f, 0, "Mini").await;
    // Never beside an order of the account: its cart is that order's.
    let waiting = f
        .submit(&spec(&f, 1, &[(mini, 1)], serde_json::json!({})))
        .await;
    let refused = f
        .engine
        .rehearse_batch(&spec(&f, 1, &[(mini, 1)], serde_json::json!({})))
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("has order"), "{refused}");
    f.engine.stop_batch(waiting.id).await.unwrap();
    let report = f
        .engine
        .rehearse_batch(&spec(
            &f,
            1,
            &[(mini, 1)],
            serde_json::json!({"coupon_code": "TRY50", "shipping": "Express"}),
        ))
        .await
        .unwrap();
    assert!(report.outcome.is_ok(), "{:?}", report.outcome);
    assert!(f.shop.shop.orders().is_empty(), "nothing was ordered");
    let last = report.steps.last().unwrap();
    assert!(last.url.contains("/checkouts/payment"), "{}", last.url);
    assert!(
        report.steps.iter().all(|s| s.screenshot.is_some()),
        "a screenshot per step"
    );
    let add = report
        .steps
        .iter()
        .find(|s| s.what.contains("Add to cart"))
        .unwrap();
    assert_eq!(add.matches[0].count, 1);
    assert!(
        add.matches[0]
            .excerpt
            .as_deref()
            .is_some_and(|h| h.contains("<button")),
        "{:?}",
        add.matches
    );
    assert!(
        report.steps.iter().any(|s| s.what.contains("/products/")),
        "the URL opened is shown, not its template"
    );
    let totals = report.totals.unwrap();
    assert_eq!(totals.discount_minor, Some(50_00));
    assert_eq!(report.coupon.as_deref(), Some("TRY50"));
}

/// A batch that names a shipping method on a profile that reads no total after choosing it:
/// the total the cap was checked on is not the one paid, so nothing is placed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shipping_choice_whose_total_is_not_read_again_places_nothing() {
    let f = Fixture::flavoured(Flavour::Threads, 1, |_| {}).await;
    f.edit_profile(|t| {
        t.replace(
            "  { click = { aria = \"Cash on Delivery\" } },\n  { extract = { target = \"summary_total\", into = \"total\", number = true } },\n",
            "  { click = { aria = \"Cash on Delivery\" } },\n",
        )
    });
    let order = fails_placing_nothing(&f, serde_json::json!({"shipping": "Express"})).await;
    assert_eq!(
        order.error_class,
        Some(cartwright_core::order::ErrorClass::Profile)
    );
    assert!(
        order
            .error_message
            .as_deref()
            .is_some_and(|m| m.contains("reads no total after choosing it")),
        "{:?}",
        order.error_message
    );
}

/// A shop whose answers are lost after it did what was asked (a proxy's 502): forms the engine
/// sends again may add twice. Whatever happens, no order is placed twice and none with a cart
/// other than the batch's; every order the shop took is one Cartwright records as placed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_lost_after_the_shop_acted_never_pay_for_a_wrong_cart() {
    let counts = batch_under(
        12,
        Faults {
            error_after_rate: 0.12,
            ..Faults::default()
        },
    )
    .await;
    assert!(counts.placed > 0, "{counts:?}");
}
