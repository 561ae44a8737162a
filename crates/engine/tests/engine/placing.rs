//! The one promise: an order whose final click had an unknown outcome is never clicked again,
//! and is never reported failed when the shop has it. Faults here outlast every timeout and
//! retry window of the run (the profile's timeouts are cut to a few seconds, and so are the
//! engine's retry and settling waits), not only the ones that heal in time.

use crate::kit::*;
use cartwright_core::order::OrderState;
use cartwright_demo_shop::{Confirmation, Faults};
use std::time::{Duration, Instant};

/// Timeouts of a few seconds and one reload of a failed page, so that the faults below
/// outlast all of them: the page (and its reload), a step, the confirmation.
fn short_timeouts(p: String) -> String {
    p.replace(
        "page_timeout = \"15s\"",
        "page_timeout = \"4s\"\npage_retries = 1",
    )
    .replace("step_timeout = \"8s\"", "step_timeout = \"3s\"")
    .replace("confirm_timeout = \"20s\"", "confirm_timeout = \"4s\"")
}

/// One account, a shop whose confirmations behave as `faults` say, timeouts of a few
/// seconds.
async fn shop_where(faults: Faults) -> Fixture {
    let f = Fixture::new(1, |c| c.faults = faults).await;
    f.edit_profile(short_timeouts);
    f
}

/// Submits one order of product `product` and waits until the shop has taken it: its final
/// click went out.
async fn clicked(f: &Fixture, product: usize) -> cartwright_core::batch::Batch {
    let batch = f.submit(&f.batch(1, &[(product, 1)], 100_000)).await;
    f.wait_for(
        "the shop to take the order",
        Duration::from_secs(60),
        async || !f.shop.shop.orders().is_empty(),
    )
    .await;
    batch
}

/// What the shop and Cartwright say of one batch at the end: how many orders the shop has,
/// and the state of each of Cartwright's (every number Cartwright reports is the shop's).
async fn outcome(f: &Fixture, batch: cartwright_core::ids::BatchId) -> (usize, Vec<OrderState>) {
    let shop = f.shop.shop.orders();
    let ours = f.orders(batch).await;
    for o in &ours {
        if let Some(n) = &o.order_number {
            assert!(
                shop.iter().any(|s| &s.number == n),
                "{n} is the shop's number"
            );
        }
    }
    (shop.len(), ours.iter().map(|o| o.state).collect())
}

/// The scenario: the confirmation hangs; the moment the shop has the order, every
/// page of the shop fails for `outage`, then the shop heals.
async fn confirmation_lost_then_the_shop_down_for(outage: Duration) {
    let f = shop_where(Faults {
        confirmation: Confirmation::Hang,
        ..Faults::default()
    })
    .await;
    let workers = f.workers("w", 1);
    let batch = clicked(&f, 2).await;
    f.shop.shop.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    let down = Instant::now();
    tokio::time::sleep(outage).await;
    // Throughout the outage the order waits, clicked once, neither failed nor run again.
    let during = f.orders(batch.id).await.remove(0);
    assert_eq!(during.state, OrderState::Placing, "{during:?}");
    assert_eq!(during.attempts, 1);
    f.shop.shop.set_faults(Faults::default());
    eprintln!("shop down for {:?}", down.elapsed());
    let done = f.settled(batch.id, Duration::from_secs(120)).await;
    workers.shutdown(Duration::from_secs(5)).await;
    let (shop_orders, states) = outcome(&f, batch.id).await;
    let order = f.orders(batch.id).await.remove(0);
    assert_eq!(shop_orders, 1, "one click, one order");
    assert_eq!(states, vec![OrderState::Placed], "{order:?}");
    assert_eq!(done.counts.placed, 1);
    assert_eq!(order.attempts, 1, "settling is not another run");
    let settling = order.settling.expect("settled from the history");
    assert!(settling.looks >= 1, "{settling:?}");
    f.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_outage_after_a_lost_confirmation_places_the_order_once() {
    confirmation_lost_then_the_shop_down_for(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_around_every_timeout_places_the_order_once() {
    // Past the confirmation's timeout (4 s) and this run's share of looking (3 s): the job
    // looks again in a fresh session.
    confirmation_lost_then_the_shop_down_for(Duration::from_secs(9)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_far_longer_than_every_timeout_and_retry_window_places_the_order_once() {
    // Many times every timeout, retry wait (1 s), lease (2 s), settling wait (1 s) and the
    // history's window (3 s).
    confirmation_lost_then_the_shop_down_for(Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_that_stays_down_keeps_the_order_placing_until_it_can_be_read() {
    // The confirmation hangs; once the shop has the order only its history is down, far
    // longer than anything waits.
    let f = shop_where(Faults {
        confirmation: Confirmation::Hang,
        ..Faults::default()
    })
    .await;
    let workers = f.workers("w", 1);
    let batch = clicked(&f, 1).await;
    f.shop.shop.set_faults(Faults {
        confirmation: Confirmation::Hang,
        history_error_rate: 1.0,
        ..Faults::default()
    });
    tokio::time::sleep(Duration::from_secs(20)).await;
    let during = f.orders(batch.id).await.remove(0);
    assert_eq!(during.state, OrderState::Placing, "{during:?}");
    let evidence = during
        .settling
        .clone()
        .expect("evidence kept while placing");
    assert!(evidence.looks >= 3, "looked again and again: {evidence:?}");
    assert!(evidence.unreadable.is_some(), "{evidence:?}");
    assert_eq!(evidence.absent_reads, 0, "no read ever succeeded");
    f.shop.shop.set_faults(Faults::default());
    let done = f.settled(batch.id, Duration::from_secs(60)).await;
    workers.shutdown(Duration::from_secs(5)).await;
    let (shop_orders, states) = outcome(&f, batch.id).await;
    assert_eq!((shop_orders, states), (1, vec![OrderState::Placed]));
    assert_eq!(done.counts.placed, 1);
    f.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_slower_than_its_first_reads_still_finds_the_order() {
    // The shop lists a new order 5 s after it is placed; the profile waits 10 s before an
    // absence counts. The first reads do not show the order; a later one does.
    let f = Fixture::new(1, |c| {
        c.faults = Faults {
            confirmation: Confirmation::Lost,
            history_lag_ms: 5_000,
            ..Faults::default()
        }
    })
    .await;
    f.edit_profile(|p| {
        short_timeouts(p).replace(
            &format!("absent_for = \"{ABSENT_FOR}\""),
            "absent_for = \"10s\"",
        )
    });
    let workers = f.workers("w", 1);
    let batch = f.submit(&f.batch(1, &[(0, 1)], 100_000)).await;
    let done = f.settled(batch.id, Duration::from_secs(90)).await;
    workers.shutdown(Duration::from_secs(5)).await;
    let (shop_orders, states) = outcome(&f, batch.id).await;
    let order = f.orders(batch.id).await.remove(0);
    assert_eq!(
        (shop_orders, states),
        (1, vec![OrderState::Placed]),
        "{order:?}"
    );
    assert_eq!(done.counts.placed, 1);
    let evidence = order.settling.expect("settled from the history");
    assert!(
        evidence.absent_reads >= 1,
        "the lagging history was read without the order first: {evidence:?}"
    );
    f.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absence_the_profile_does_not_trust_goes_to_a_person_and_is_never_clicked_again() {
    // The history lags longer than the profile's window, and the profile does not say its
    // history lists every order: the absence proves nothing, so a person decides.
    let f = Fixture::new(1, |c| {
        c.faults = Faults {
            confirmation: Confirmation::Lost,
            history_lag_ms: 600_000,
            ..Faults::default()
        }
    })
    .await;
    f.edit_profile(|p| short_timeouts(p).replace("reliable = true", "reliable = false"));
    let workers = f.workers("w", 1);
    let batch = f.submit(&f.batch(1, &[(0, 1)], 100_000)).await;
    let done = f.settled(batch.id, Duration::from_secs(90)).await;
    let (shop_orders, states) = outcome(&f, batch.id).await;
    assert_eq!(shop_orders, 1);
    assert_eq!(
        states,
        vec![OrderState::Unresolved],
        "not failed, not run again"
    );
    assert_eq!(done.counts.unresolved, 1);
    let order = f.orders(batch.id).await.remove(0);
    let evidence = order.settling.clone().expect("the evidence is kept");
    assert!(evidence.absent_reads >= 2, "{evidence:?}");
    assert!(
        order
            .error_message
            .as_deref()
            .unwrap_or_default()
            .contains("does not say"),
        "{order:?}"
    );
    // A person looks at the shop and settles it; the decision is audited.
    let number = f.shop.shop.orders()[0].number.clone();
    let person = cartwright_store::Actor {
        id: None,
        name: "asha".into(),
    };
    let settled = f
        .store
        .resolve_order(
            order.id,
            &person,
            &cartwright_store::Resolution::Placed {
                number: Some(number.clone()),
            },
            Some("seen in the shop's order list"),
        )
        .await
        .unwrap();
    assert_eq!(settled.state, OrderState::Placed);
    assert_eq!(settled.order_number.as_deref(), Some(number.as_str()));
    let audit = f
        .store
        .audit_of(&format!("order:{}", order.id))
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].actor, "asha");
    assert_eq!(audit[0].detail["from"], "unresolved");
    // Settled once: a second decision is refused.
    let again = f
        .store
        .resolve_order(
            order.id,
            &person,
            &cartwright_store::Resolution::NotPlaced { run_again: true },
            None,
        )
        .await;
    assert!(
        matches!(again, Err(cartwright_store::StoreError::Refused { .. })),
        "{again:?}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    workers.shutdown(Duration::from_secs(5)).await;
    assert_eq!(f.shop.shop.orders().len(), 1, "never clicked again");
    f.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_killed_between_the_click_and_the_confirmation_places_the_order_once() {
    let f = shop_where(Faults {
        confirmation: Confirmation::Hang,
        ..Faults::default()
    })
    .await;
    let workers = f.workers("w", 1);
    let batch = clicked(&f, 3).await;
    let browsers = our_chromium();
    assert!(!browsers.is_empty(), "a browser runs");
    for pid in browsers {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    f.shop.shop.set_faults(Faults::default());
    let done = f.settled(batch.id, Duration::from_secs(90)).await;
    workers.shutdown(Duration::from_secs(5)).await;
    let (shop_orders, states) = outcome(&f, batch.id).await;
    assert_eq!((shop_orders, states), (1, vec![OrderState::Placed]));
    assert_eq!(done.counts.placed, 1);
    assert_eq!(f.orders(batch.id).await[0].attempts, 1);
    f.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repetitions_of_one_account_under_a_lost_confirmation_place_each_once() {
    let f = Fixture::new(1, |c| {
        c.faults = Faults {
            confirmation: Confirmation::Lost,
            ..Faults::default()
        }
    })
    .await;
    let workers = f.workers("w", 2);
    let mut spec = f.batch(1, &[(0, 1)], 100_000);
    spec.repetitions = 3;
    let batch = f.submit(&spec).await;
    let done = f.settled(batch.id, Duration::from_secs(180)).await;
    workers.shutdown(Duration::from_secs(5)).await;
    let (shop_orders, states) = outcome(&f, batch.id).await;
    assert_eq!(shop_orders, 3, "one order per repetition");
    assert_eq!(states, vec![OrderState::Placed; 3]);
    assert_eq!(done.counts.placed, 3);
    let mut ours: Vec<String> = f
        .orders(batch.id)
        .await
        .into_iter()
        .map(|o| o.order_number.unwrap())
        .collect();
    let mut theirs: Vec<String> = f.shop.shop.orders().into_iter().map(|o| o.number).collect();
    ours.sort();
    theirs.sort();
    assert_eq!(ours, theirs, "each repetition has its own order's number");
    f.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_racing_one_order_after_a_forced_lease_expiry_place_it_once() {
    let f = Fixture::new(1, |c| {
        c.faults = Faults {
            latency_ms: 250,
            ..Faults::default()
        }
    })
    .await;
    let first = f.workers("first", 1);
    let batch = f.submit(&f.batch(1, &[(0, 2), (1, 1)], 100_000)).await;
    let order = f.orders(batch.id).await.remove(0);
    f.wait_for(
        "the first worker to fill the cart",
        Duration::from_secs(60),
        async || {
            f.store
                .events(&cartwright_store::EventQuery {
                    order: Some(order.id),
                    limit: 1_000,
                    ..Default::default()
                })
                .await
                .unwrap()
                .iter()
                .any(|e| e.phase.as_deref() == Some("add_item"))
        },
    )
    .await;
    // The first worker's lease runs out under it (a long stall, a clock gone wrong), and the
    // job is rescued for a second worker while the first still drives the cart.
    f.exec("UPDATE jobs SET lease_until = '2000-01-01T00:00:00.000000Z' WHERE state = 'running'")
        .await;
    assert_eq!(f.store.rescue_jobs().await.unwrap(), 1);
    let second = f.workers("second", 1);
    let done = f.settled(batch.id, Duration::from_secs(120)).await;
    first.shutdown(Duration::from_secs(5)).await;
    second.shutdown(Duration::from_secs(5)).await;
    let (shop_orders, states) = outcome(&f, batch.id).await;
    assert_eq!((shop_orders, states), (1, vec![OrderState::Placed]));
    assert_eq!(done.counts.placed, 1);
    let placed = &f.shop.shop.orders()[0];
    let products = f.shop.shop.products();
    let mut lines: Vec<(String, u32)> = placed
        .lines
        .iter()
        .map(|l| {
            let slug = products
                .iter()
                .find(|x| x.id == l.product)
                .unwrap()
                .slug
                .clone();
            (slug, l.qty)
        })
        .collect();
    lines.sort();
    let mut asked = vec![(products[0].slug.clone(), 2), (products[1].slug.clone(), 1)];
    asked.sort();
    assert_eq!(
        lines, asked,
        "the cart that was placed is the one asked for"
    );
    let order = f.orders(batch.id).await.remove(0);
    assert_eq!(order.attempts, 2, "the second worker ran it again");
    let log = f
        .store
        .events(&cartwright_store::EventQuery {
            order: Some(order.id),
            limit: 5_000,
            ..Default::default()
        })
        .await
        .unwrap();
    let clicks = log
        .iter()
        .filter(|e| e.message == "placing the order")
        .count();
    assert_eq!(clicks, 1, "one run reached the final click");
    f.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_lost_its_lease_neither_clicks_nor_records_anything() {
    use cartwright_store::{Finish, Marked, OrderStart, Recorded, RunRecord};
    let f = Fixture::new(1, |_| {}).await;
    let batch = f.submit(&f.batch(1, &[(0, 1)], 100_000)).await;
    let order = f.orders(batch.id).await.remove(0);
    let lease = hold_jobs(&f.store).await.remove(&order.id).unwrap();
    assert!(matches!(
        f.store.start_order(order.id, 3).await.unwrap(),
        OrderStart::Run(_)
    ));
    // The lease runs out by the database's clock, whatever this node thinks.
    f.exec("UPDATE jobs SET lease_until = '2000-01-01T00:00:00.000000Z' WHERE state = 'running'")
        .await;
    let record = RunRecord::default();
    assert_eq!(
        f.store
            .mark_placing(order.id, &lease, &[], &record)
            .await
            .unwrap(),
        Marked::LeaseLost,
        "no click without the lease"
    );
    let retry = Finish::Retry {
        message: "a timeout".into(),
    };
    assert_eq!(
        f.store
            .finish_order(order.id, &retry, &record, Some(&lease))
            .await
            .unwrap(),
        Recorded::Stale,
        "a run that lost its lease records nothing"
    );
    assert_eq!(
        f.store
            .heartbeat_jobs(&lease.worker, &[lease.job], Duration::from_secs(60))
            .await
            .unwrap(),
        vec![],
        "an expired lease is not renewed"
    );
    assert_eq!(f.orders(batch.id).await[0].state, OrderState::Running);
    // Rescued, it runs to its end on a real worker.
    assert_eq!(f.store.rescue_jobs().await.unwrap(), 1);
    let workers = f.workers("w", 1);
    let done = f.settled(batch.id, Duration::from_secs(60)).await;
    workers.shutdown(Duration::from_secs(5)).await;
    assert_eq!(done.counts.placed, 1);
    assert_eq!(f.shop.shop.orders().len(), 1);
    f.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_left_running_by_a_panicked_handler_gets_a_job_back_and_its_batch_ends() {
    let f = Fixture::new(1, |_| {}).await;
    let batch = f.submit(&f.batch(1, &[(0, 1)], 100_000)).await;
    let order = f.orders(batch.id).await.remove(0);
    let lease = hold_jobs(&f.store).await.remove(&order.id).unwrap();
    assert!(matches!(
        f.store.start_order(order.id, 3).await.unwrap(),
        cartwright_store::OrderStart::Run(_)
    ));
    // What the workers write when a handler panics: the job failed for good, the order left
    // running with no job.
    f.store
        .retry_job(
            &lease.worker,
            lease.job,
            "the handler panicked: boom",
            Duration::ZERO,
            true,
        )
        .await
        .unwrap();
    let workers = f.workers("w", 1);
    let done = f.settled(batch.id, Duration::from_secs(60)).await;
    workers.shutdown(Duration::from_secs(5)).await;
    assert_eq!(done.counts.placed, 1, "{:?}", done.counts);
    assert_eq!(f.shop.shop.orders().len(), 1);
    f.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_account_has_one_order_run_or_settled_at_a_time() {
    use cartwright_store::{Marked, OrderStart, RunRecord};
    let f = Fixture::new(1, |_| {}).await;
    let mut spec = f.batch(1, &[(0, 1)], 100_000);
    spec.repetitions = 2;
    let batch = f.submit(&spec).await;
    let orders = f.orders(batch.id).await;
    let (a, b) = (orders[0].id, orders[1].id);
    let mut leases = hold_jobs(&f.store).await;
    let lease_a = leases.remove(&a).unwrap();
    assert!(matches!(
        f.store.start_order(a, 3).await.unwrap(),
        OrderStart::Run(_)
    ));
    assert_eq!(
        f.store
            .mark_placing(a, &lease_a, &[], &RunRecord::default())
            .await
            .unwrap(),
        Marked::Placing
    );
    // A's run is lost after its click: its job waits to settle it, and runs nowhere now.
    f.store.release_jobs("test", &[lease_a.job]).await.unwrap();
    assert!(
        matches!(
            f.store.start_order(b, 3).await.unwrap(),
            OrderStart::Busy { settling: true }
        ),
        "no order of the account runs while another may have been placed"
    );
    assert_eq!(f.orders(batch.id).await[1].state, OrderState::Queued);
    // While B runs, A is not settled: B's order would show in the history as a new one.
    f.exec(&format!(
        "UPDATE orders SET state = 'running' WHERE id = {b}"
    ))
    .await;
    assert!(
        matches!(
            f.store.start_order(a, 3).await.unwrap(),
            OrderStart::Busy { .. }
        ),
        "not settled while another order of the account is being run"
    );
    f.exec(&format!(
        "UPDATE jobs SET state = 'queued', worker = NULL WHERE unique_key = 'order:{b}'"
    ))
    .await;
    assert!(matches!(
        f.store.start_order(a, 3).await.unwrap(),
        OrderStart::Resolve(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_cannot_settle_an_order_a_worker_is_looking_at_nor_rerun_one_still_settling() {
    use cartwright_store::{Actor, Marked, OrderStart, Resolution, RunRecord, StoreError};
    let f = Fixture::new(2, |_| {}).await;
    let batch = f.submit(&f.batch(2, &[(0, 1)], 100_000)).await;
    let order = f.orders(batch.id).await.remove(0).id;
    let lease = hold_jobs(&f.store).await.remove(&order).unwrap();
    assert!(matches!(
        f.store.start_order(order, 3).await.unwrap(),
        OrderStart::Run(_)
    ));
    assert_eq!(
        f.store
            .mark_placing(order, &lease, &[], &RunRecord::default())
            .await
            .unwrap(),
        Marked::Placing
    );
    let person = Actor {
        id: None,
        name: "asha".into(),
    };
    let not_placed = Resolution::NotPlaced { run_again: false };
    // The click may be in flight: its worker still holds the job.
    let refused = f
        .store
        .resolve_order(order, &person, &not_placed, None)
        .await;
    assert!(
        matches!(refused, Err(StoreError::Refused { .. })),
        "{refused:?}"
    );
    f.store
        .release_jobs(&lease.worker, &[lease.job])
        .await
        .unwrap();
    // Still being settled: not run again by a person, whatever they think.
    let again = Resolution::NotPlaced { run_again: true };
    let refused = f.store.resolve_order(order, &person, &again, None).await;
    assert!(
        matches!(refused, Err(StoreError::Refused { .. })),
        "{refused:?}"
    );
    assert_eq!(f.orders(batch.id).await[0].state, OrderState::Placing);
    let settled = f
        .store
        .resolve_order(order, &person, &not_placed, Some("not in the shop"))
        .await
        .unwrap();
    assert_eq!(settled.state, OrderState::Cancelled);
    // A resume never runs an order whose click went out and that a person settled; the
    // stop's own cancellations wait again.
    f.store.stop_batch(batch.id).await.unwrap();
    f.store.resume_batch(batch.id).await.unwrap();
    let states: Vec<_> = f.orders(batch.id).await.iter().map(|o| o.state).collect();
    assert_eq!(states, vec![OrderState::Cancelled, OrderState::Queued]);
}
