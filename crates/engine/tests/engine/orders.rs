//! Batches of orders run by the engine's workers against the demo shop, in Chromium.

use crate::kit::*;
use cartwright_core::batch::BatchState;
use cartwright_core::order::{ErrorClass, OrderState};
use cartwright_demo_shop::{Confirmation, Faults};
use cartwright_store::EventQuery;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_places_one_order_per_account_and_records_everything() {
    let f = Fixture::new(3, |_| {}).await;
    let workers = f.workers("w1", 3);
    let batch = f.submit(&f.batch(3, &[(0, 2), (1, 1)], 100_000)).await;
    assert_eq!(batch.counts.total, 3);
    let done = f.settled(batch.id, Duration::from_secs(120)).await;
    workers.shutdown(Duration::from_secs(5)).await;
    assert_eq!(done.state, BatchState::Finished, "{:?}", done.counts);
    assert_eq!(done.counts.placed, 3);
    let shop_orders = f.shop.shop.orders();
    assert_eq!(shop_orders.len(), 3, "exactly one order per account");
    let customers: std::collections::HashSet<_> = shop_orders.iter().map(|o| o.customer).collect();
    assert_eq!(customers.len(), 3, "each run signed in as its own account");
    for order in f.orders(batch.id).await {
        assert_eq!(order.state, OrderState::Placed);
        let number = order.order_number.clone().unwrap();
        let placed = shop_orders
            .iter()
            .find(|o| o.number == number)
            .expect("the number is the shop's");
        assert_eq!(placed.lines.len(), 2);
        assert_eq!(
            placed.totals.total,
            order.total_minor.unwrap(),
            "the total read is what the shop charged"
        );
        assert!(order.timings.contains_key("add_item") && order.timings.contains_key("place"));
        let events = f
            .store
            .events(&EventQuery {
                order: Some(order.id),
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(
            events
                .iter()
                .any(|e| e.message.contains(&format!("placed order {number}"))),
            "the log says so"
        );
        assert!(
            events
                .iter()
                .any(|e| e.phase.as_deref() == Some("add_item"))
        );
    }
    // The session cookie rotates every 10 responses: the stored one is the fresh value.
    for id in &f.accounts {
        let jar = f.store.account_cookies(*id).await.unwrap().unwrap();
        let value = &jar
            .cookies()
            .iter()
            .find(|c| c.name == "f.session")
            .unwrap()
            .value;
        let account = f.store.account(*id).await.unwrap();
        assert_eq!(
            account.session.status,
            cartwright_core::account::SessionStatus::Ok
        );
        assert!(
            f.shop.shop.session_is_current(value),
            "the written-back cookie is the shop's newest value"
        );
    }
    let stats = f.store.batch_stats(batch.id).await.unwrap();
    assert_eq!(stats.counts.placed, 3);
    assert!(stats.placed_total_minor > 0 && stats.duration_p50_ms.is_some());
    f.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cart_above_the_cap_is_never_submitted() {
    let f = Fixture::new(2, |_| {}).await;
    let workers = f.workers("w1", 2);
    // One unit costs several hundred rupees; the cap is 1 rupee.
    let batch = f.submit(&f.batch(2, &[(0, 1)], 1)).await;
    let done = f.settled(batch.id, Duration::from_secs(90)).await;
    workers.shutdown(Duration::from_secs(5)).await;
    assert_eq!(done.counts.failed, 2);
    assert!(f.shop.shop.orders().is_empty(), "nothing was ordered");
    for order in f.orders(batch.id).await {
        assert_eq!(order.error_class, Some(ErrorClass::Business));
        assert!(
            order
                .error_message
                .as_deref()
                .unwrap()
                .contains("above the batch's cap"),
            "{:?}",
            order.error_message
        );
        assert!(order.total_minor.unwrap() > 100);
        assert_eq!(order.attempts, 1, "a business failure is not retried");
        assert!(order.placing_at.is_none());
        assert!(order.has_screenshot && order.has_snapshot);
        let (png, html) = f.store.order_artifacts(order.id).await.unwrap();
        let png = std::fs::read(f.dir.path().join("artifacts").join(png.unwrap())).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let html =
            std::fs::read_to_string(f.dir.path().join("artifacts").join(html.unwrap())).unwrap();
        assert!(html.contains("Proceed to Checkout") || html.contains("Total"));
    }
    f.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cart_that_is_not_the_batchs_is_never_paid_for() {
    let f = Fixture::new(2, |_| {}).await;
    // Lines left in the bags of a batch that does not clear them: a product the batch does
    // not ask for in the first, one more unit of the product it asks for in the second. Both
    // carts are well under the cap.
    let customers = f.shop.shop.customers();
    let products = f.shop.shop.products();
    f.shop
        .shop
        .add_to_cart(customers[0].id, products[1].id)
        .unwrap();
    f.shop
        .shop
        .add_to_cart(customers[1].id, products[0].id)
        .unwrap();
    let mut spec = f.batch(2, &[(0, 1)], 1_000_000);
    spec.clear_cart = false;
    let workers = f.workers("w1", 2);
    let batch = f.submit(&spec).await;
    let done = f.settled(batch.id, Duration::from_secs(120)).await;
    workers.shutdown(Duration::from_secs(5)).await;
    assert_eq!(done.counts.failed, 2, "{:?}", done.counts);
    assert!(f.shop.shop.orders().is_empty(), "nothing was ordered");
    let mut messages = Vec::new();
    for order in f.orders(batch.id).await {
        assert!(order.placing_at.is_none(), "no final click was prepared");
        // Another run would add to a cart the batch does not clear: a person looks.
        assert_eq!(order.error_class, Some(ErrorClass::Business));
        assert_eq!(order.attempts, 1);
        let message = order.error_message.clone().unwrap_or_default();
        assert!(
            message.contains("the cart is not what the batch asks, so the order was not placed"),
            "{message}"
        );
        messages.push(message);
    }
    let (other, more) = (
        format!(
            "/p/{} × 1 is in the cart but not in the batch",
            products[1].slug
        ),
        format!("/p/{}: 2 in the cart, 1 asked", products[0].slug),
    );
    assert!(messages.iter().any(|m| m.contains(&other)), "{messages:?}");
    assert!(messages.iter().any(|m| m.contains(&more)), "{messages:?}");
    f.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_confirmation_is_settled_from_the_history_without_a_second_click() {
    for mode in [Confirmation::Lost, Confirmation::Error, Confirmation::Hang] {
        let f = Fixture::new(1, |c| {
            c.faults = Faults {
                confirmation: mode,
                ..Faults::default()
            }
        })
        .await;
        let workers = f.workers("w1", 1);
        let batch = f.submit(&f.batch(1, &[(2, 1)], 100_000)).await;
        let done = f.settled(batch.id, Duration::from_secs(120)).await;
        workers.shutdown(Duration::from_secs(5)).await;
        let orders = f.orders(batch.id).await;
        for e in f
            .store
            .events(&EventQuery {
                order: Some(orders[0].id),
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap()
        {
            eprintln!(
                "{mode:?} {} {:?} {:?} {}",
                e.at.time(),
                e.phase,
                e.step,
                e.message
            );
        }
        let shop_orders = f.shop.shop.orders();
        assert_eq!(shop_orders.len(), 1, "{mode:?}: one click, one order");
        assert_eq!(done.counts.placed, 1, "{mode:?}: {:?}", orders[0]);
        assert_eq!(
            orders[0].order_number.as_deref(),
            Some(shop_orders[0].number.as_str()),
            "{mode:?}"
        );
        assert_eq!(orders[0].attempts, 1, "{mode:?}");
        f.engine.shutdown().await;
    }
}

/// A batch of one run per order over `accounts` accounts of a shop where every request fails
/// and no page is loaded again.
async fn failing_batch(accounts: usize) -> (Fixture, cartwright_core::batch::Batch) {
    let f = Fixture::new(accounts, |c| {
        c.faults = Faults {
            error_rate: 1.0,
            ..Faults::default()
        };
    })
    .await;
    f.edit_profile(|t| {
        t.replace(
            "page_timeout = \"15s\"",
            "page_timeout = \"15s\"\npage_retries = 0",
        )
    });
    let mut spec = f.batch(accounts, &[(0, 1)], 100_000);
    spec.max_runs = Some(1);
    let batch = f.engine.submit_batch(&spec, None).await.unwrap();
    (f, batch)
}

/// The most runs an order gets is the batch's, written when it is submitted: a batch asking
/// for one run gives up after one, though the engine's own setting would give five.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_keeps_its_own_limit_of_runs() {
    let (f, batch) = failing_batch(1).await;
    assert_eq!(batch.spec.max_runs, Some(1));
    let defaulted = f
        .engine
        .submit_batch(&f.batch(1, &[(0, 1)], 100_000), None)
        .await
        .unwrap();
    assert_eq!(
        defaulted.spec.max_runs,
        Some(5),
        "a batch that does not say gets the submitting engine's limit"
    );
    f.engine.stop_batch(defaulted.id).await.unwrap();
    let workers = f.workers("w1", 1);
    let done = f.settled(batch.id, Duration::from_secs(60)).await;
    workers.shutdown(Duration::from_secs(5)).await;
    assert_eq!(done.counts.failed, 1, "{:?}", done.counts);
    let order = f.orders(batch.id).await.remove(0);
    assert_eq!(order.attempts, 1);
    assert!(
        order
            .error_message
            .as_deref()
            .is_some_and(|m| m.contains("gave up after 1 run")),
        "{:?}",
        order.error_message
    );
}

/// A finished batch's failed orders run again when an operator asks, with their runs counted
/// afresh; the placed ones are left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_orders_of_a_finished_batch_run_again_when_asked() {
    let (f, batch) = failing_batch(2).await;
    let workers = f.workers("w1", 2);
    let done = f.settled(batch.id, Duration::from_secs(60)).await;
    assert_eq!(
        (done.state, done.counts.failed),
        (BatchState::Finished, 2),
        "{:?}",
        done.counts
    );
    // The shop is back.
    f.shop.shop.set_faults(Faults::default());
    let again = f.engine.retry_failed(batch.id).await.unwrap();
    assert_eq!(again.state, BatchState::Running);
    let done = f.settled(batch.id, Duration::from_secs(120)).await;
    workers.shutdown(Duration::from_secs(5)).await;
    assert_eq!(done.counts.placed, 2, "{:?}", done.counts);
    assert_eq!(f.shop.shop.orders().len(), 2);
    let refused = f.engine.retry_failed(batch.id).await.unwrap_err();
    assert!(refused.to_string().contains("no failed order"), "{refused}");
}
