//! At most once: a worker that dies while an order is being placed, and an order marked
//! placing whose click never went out.

use crate::kit::*;
use cartwright_core::order::OrderState;
use cartwright_demo_shop::{Confirmation, Faults};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_after_the_click_leaves_one_order_settled_from_the_history() {
    // The confirmation hangs: the order exists at the shop while the run waits for it.
    let f = Fixture::new(1, |c| {
        c.faults = Faults {
            confirmation: Confirmation::Hang,
            ..Faults::default()
        }
    })
    .await;
    let workers = f.workers("doomed", 1);
    let batch = f.submit(&f.batch(1, &[(3, 1)], 100_000)).await;
    f.wait_for(
        "the shop to take the order",
        Duration::from_secs(60),
        async || !f.shop.shop.orders().is_empty(),
    )
    .await;
    let order = f.orders(batch.id).await.remove(0);
    assert_eq!(
        order.state,
        OrderState::Placing,
        "the click is out and unconfirmed"
    );
    workers.abandon().await; // as if the process were killed
    f.shop.shop.set_faults(Faults::default());

    let rescuer = f.workers("rescuer", 1);
    let done = f.settled(batch.id, Duration::from_secs(60)).await;
    rescuer.shutdown(Duration::from_secs(5)).await;
    let order = f.orders(batch.id).await.remove(0);
    let shop_orders = f.shop.shop.orders();
    assert_eq!(shop_orders.len(), 1, "never a second click");
    assert_eq!(done.counts.placed, 1);
    assert_eq!(
        order.order_number.as_deref(),
        Some(shop_orders[0].number.as_str())
    );
    assert_eq!(order.attempts, 1, "settling is not another run");
    f.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_marked_placing_whose_click_never_went_out_runs_again_once() {
    let f = Fixture::new(1, |_| {}).await;
    // A batch created but not run; its order taken to `placing` by hand, as if the worker had
    // died between marking it and clicking.
    let batch = f.submit(&f.batch(1, &[(1, 1)], 100_000)).await;
    let order = f.orders(batch.id).await.remove(0);
    let lease = hold_jobs(&f.store).await.remove(&order.id).unwrap();
    match f.store.start_order(order.id, 3).await.unwrap() {
        cartwright_store::OrderStart::Run(_) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(
        f.store
            .mark_placing(order.id, &lease, &[], &Default::default())
            .await
            .unwrap(),
        cartwright_store::Marked::Placing
    );
    // The worker that marked it dies: its job goes back to the queue.
    f.store.release_jobs("test", &[lease.job]).await.unwrap();
    let workers = f.workers("w", 1);
    let done = f.settled(batch.id, Duration::from_secs(90)).await;
    workers.shutdown(Duration::from_secs(5)).await;
    let order = f.orders(batch.id).await.remove(0);
    assert_eq!(done.counts.placed, 1, "{order:?}");
    assert_eq!(f.shop.shop.orders().len(), 1);
    assert_eq!(
        order.attempts, 2,
        "the history showed nothing, so it ran again"
    );
    f.engine.shutdown().await;
}
