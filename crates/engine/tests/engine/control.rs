//! Failures and their classes, stopping and resuming, rate limits, coupons, sign-in tests.

use crate::kit::*;
use cartwright_core::account::SessionStatus;
use cartwright_core::batch::BatchState;
use cartwright_core::order::{ErrorClass, OrderState};
use cartwright_demo_shop::Faults;
use reqwest::Method;
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_fails_the_order_and_marks_the_account() {
    let f = Fixture::new(2, |_| {}).await;
    let email = f.store.account(f.accounts[0]).await.unwrap().email.unwrap();
    f.control(
        Method::POST,
        "/_control/sessions/expire",
        json!({"accounts": [email.as_str()]}),
    )
    .await;
    let workers = f.workers("w", 2);
    let batch = f.submit(&f.batch(2, &[(0, 1)], 100_000)).await;
    let done = f.settled(batch.id, Duration::from_secs(90)).await;
    workers.shutdown(Duration::from_secs(5)).await;
    assert_eq!((done.counts.placed, done.counts.failed), (1, 1));
    let orders = f.orders(batch.id).await;
    let failed = orders
        .iter()
        .find(|o| o.state == OrderState::Failed)
        .unwrap();
    assert_eq!(failed.account_id, f.accounts[0]);
    assert_eq!(failed.error_class, Some(ErrorClass::SessionExpired));
    assert_eq!(failed.attempts, 1, "no retry");
    assert_eq!(
        f.store.account(f.accounts[0]).await.unwrap().session.status,
        SessionStatus::LoggedOut
    );
    f.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_and_out_of_stock_is_not() {
    // Every answer a 5xx: the first run fails as transient and the order waits for a retry.
    let f = Fixture::new(1, |c| {
        c.faults = Faults {
            error_rate: 1.0,
            ..Faults::default()
        }
    })
    .await;
    let workers = f.workers("w", 1);
    let batch = f.submit(&f.batch(1, &[(5, 1)], 100_000)).await;
    f.wait_for(
        "the first run to fail",
        Duration::from_secs(60),
        async || {
            let o = f.orders(batch.id).await.remove(0);
            o.attempts == 1 && o.state == OrderState::Queued
        },
    )
    .await;
    let order = f.orders(batch.id).await.remove(0);
    assert!(
        order
            .error_message
            .as_deref()
            .unwrap_or_default()
            .contains("answered 5"),
        "{order:?}"
    );
    f.shop.shop.set_faults(Faults::default());
    let done = f.settled(batch.id, Duration::from_secs(60)).await;
    let order = f.orders(batch.id).await.remove(0);
    assert_eq!(done.counts.placed, 1, "{order:?}");
    assert_eq!(order.attempts, 2);
    assert_eq!(f.shop.shop.orders().len(), 1);

    // Sold out at checkout: a business failure, not retried.
    f.shop.shop.set_faults(Faults {
        sell_out_at_checkout: Some(f.shop.shop.products()[6].slug.clone()),
        ..Faults::default()
    });
    let before = f.shop.shop.orders().len();
    let batch = f.submit(&f.batch(1, &[(6, 1)], 100_000)).await;
    let done = f.settled(batch.id, Duration::from_secs(90)).await;
    workers.shutdown(Duration::from_secs(5)).await;
    let order = f.orders(batch.id).await.remove(0);
    for e in f
        .store
        .events(&cartwright_store::EventQuery {
            order: Some(order.id),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
    {
        if e.level >= cartwright_core::order::Level::Info {
            eprintln!("{:?} {:?} {}", e.phase, e.step, e.message);
        }
    }
    assert_eq!(done.counts.failed, 1, "{order:?}");
    assert_eq!(order.error_class, Some(ErrorClass::Business), "{order:?}");
    assert_eq!(order.attempts, 1);
    assert_eq!(f.shop.shop.orders().len(), before);
    f.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_batch_cancels_what_waits_and_resumes_without_duplicates() {
    let f = Fixture::new(4, |c| {
        c.faults = Faults {
            latency_ms: 150,
            ..Faults::default()
        }
    })
    .await;
    let workers = f.workers("w", 1);
    let batch = f.submit(&f.batch(4, &[(0, 1)], 100_000)).await;
    f.wait_for("a run to start", Duration::from_secs(30), async || {
        f.store.batch(batch.id).await.unwrap().counts.running > 0
    })
    .await;
    let stopped = f.store.stop_batch(batch.id).await.unwrap();
    assert_eq!(stopped.state, BatchState::Stopped);
    assert!(stopped.counts.cancelled >= 3, "{:?}", stopped.counts);
    // The running order stops after its current step (or completes if it was placing).
    f.wait_for(
        "the running order to stop",
        Duration::from_secs(30),
        async || {
            let c = f.store.batch(batch.id).await.unwrap().counts;
            c.running + c.placing == 0
        },
    )
    .await;
    let after_stop = f.store.batch(batch.id).await.unwrap();
    assert_eq!(after_stop.state, BatchState::Stopped);
    assert_eq!(after_stop.counts.cancelled + after_stop.counts.placed, 4);
    assert!(
        f.store.stop_batch(batch.id).await.is_err(),
        "a stopped batch cannot be stopped again"
    );

    let resumed = f.store.resume_batch(batch.id).await.unwrap();
    assert_eq!(resumed.state, BatchState::Running);
    let done = f.settled(batch.id, Duration::from_secs(120)).await;
    workers.shutdown(Duration::from_secs(5)).await;
    assert_eq!(done.state, BatchState::Finished);
    assert_eq!(done.counts.placed, 4);
    assert_eq!(f.shop.shop.orders().len(), 4, "each account ordered once");
    f.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_context_together_keeps_to_the_sites_rate_limit() {
    let f = Fixture::new(3, |_| {}).await;
    f.edit_profile(|p| p.replace("rate_limit = 40.0", "rate_limit = 12.0"));
    let workers = f.workers("w", 3);
    let batch = f.submit(&f.batch(3, &[(0, 1)], 100_000)).await;
    let done = f.settled(batch.id, Duration::from_secs(180)).await;
    workers.shutdown(Duration::from_secs(5)).await;
    assert_eq!(done.counts.placed, 3);
    let log = f
        .control(Method::GET, "/_control/requests", json!(null))
        .await;
    let mut at: Vec<u64> = log["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["at_ms"].as_u64().unwrap())
        .collect();
    at.sort_unstable();
    assert!(at.len() > 25, "a real amount of traffic: {}", at.len());
    // In any one-second window: at most 12 (the bucket starts with one token).
    let mut worst = 0;
    for (i, start) in at.iter().enumerate() {
        let n = at[i..].iter().take_while(|t| **t < start + 1000).count();
        worst = worst.max(n);
    }
    assert!(
        worst <= 13,
        "{worst} requests within one second at a limit of 12/s"
    );
    f.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_pauses_the_site_and_the_batch_still_completes() {
    let f = Fixture::new(2, |c| {
        c.faults = Faults {
            shop_rate_limit: Some(15.0),
            ..Faults::default()
        }
    })
    .await;
    let workers = f.workers("w", 2);
    let batch = f.submit(&f.batch(2, &[(1, 1)], 100_000)).await;
    let done = f.settled(batch.id, Duration::from_secs(240)).await;
    workers.shutdown(Duration::from_secs(5)).await;
    assert_eq!(done.counts.placed, 2, "{:?}", f.orders(batch.id).await);
    assert_eq!(f.shop.shop.orders().len(), 2);
    let log = f
        .control(Method::GET, "/_control/requests", json!(null))
        .await;
    let statuses: Vec<u64> = log["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert!(
        limited * 10 < statuses.len(),
        "429s stay rare once honoured: {limited} of {}",
        statuses.len()
    );
    f.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coupon_policies_first_best_and_required() {
    let f = Fixture::new(3, |_| {}).await;
    let workers = f.workers("w", 1);
    // Two units of a pricier product: several coupons apply; the best saves most.
    let mut spec = f.batch(1, &[(0, 3)], 1_000_000);
    spec.coupon = cartwright_core::batch::CouponPolicy::Best;
    let best = f.submit(&spec).await;
    let done = f.settled(best.id, Duration::from_secs(180)).await;
    let order = f.orders(best.id).await.remove(0);
    assert_eq!(done.counts.placed, 1, "{order:?}");
    let placed = f
        .shop
        .shop
        .orders()
        .into_iter()
        .find(|o| Some(&o.number) == order.order_number.as_ref())
        .unwrap();
    assert_eq!(
        order.coupon, placed.coupon,
        "the code recorded is the one applied"
    );
    let subtotal = placed.totals.mrp - placed.totals.mrp_discount;
    let best_discount = [
        // (percent, cap, minimum subtotal), money in paise.
        (10, 150 * 100, 499 * 100),
        (0, 100 * 100, 999 * 100),
        (15, 300 * 100, 1_499 * 100),
        (0, 500 * 100, 4_999 * 100),
        (0, 50 * 100, 0),
    ]
    .iter()
    .filter(|(_, _, min)| subtotal >= *min)
    .map(|(pct, cap, _)| {
        if *pct > 0 {
            (subtotal * pct / 100).min(*cap)
        } else {
            *cap
        }
    })
    .max()
    .unwrap();
    assert_eq!(
        placed.totals.coupon_discount, best_discount,
        "subtotal {subtotal}"
    );
    // The offers were compared on the cart (the profile's [coupons] total): checkout was
    // loaded once, for the order itself.
    assert_eq!(seen(&f.shop, "GET /checkout").await, 1);

    let mut spec = f.batch(2, &[(0, 1)], 1_000_000);
    spec.coupon = cartwright_core::batch::CouponPolicy::First;
    let first = f.submit(&spec).await;
    let done = f.settled(first.id, Duration::from_secs(180)).await;
    workers.shutdown(Duration::from_secs(5)).await;
    assert_eq!(done.counts.placed, 2);
    assert!(f.orders(first.id).await.iter().all(|o| o.coupon.is_some()));
    f.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_test_reads_the_profile_into_the_account() {
    let f = Fixture::new(2, |_| {}).await;
    let email = f.store.account(f.accounts[1]).await.unwrap().email.unwrap();
    f.control(
        Method::POST,
        "/_control/sessions/expire",
        json!({"accounts": [email.as_str()]}),
    )
    .await;
    let workers = f.workers("w", 2);
    let jobs: Vec<cartwright_store::NewJob> = f
        .accounts
        .iter()
        .map(|a| {
            cartwright_store::NewJob::new(
                cartwright_engine::SESSION_CHECK_JOB,
                json!({"account": a.get()}),
            )
        })
        .collect();
    f.store.enqueue_many(&jobs).await.unwrap();
    f.wait_for("both checks", Duration::from_secs(60), async || {
        let a = f.store.account(f.accounts[0]).await.unwrap().session.status;
        let b = f.store.account(f.accounts[1]).await.unwrap().session.status;
        a != SessionStatus::Unknown && b != SessionStatus::Unknown
    })
    .await;
    workers.shutdown(Duration::from_secs(5)).await;
    let ok = f.store.account(f.accounts[0]).await.unwrap();
    assert_eq!(ok.session.status, SessionStatus::Ok);
    let customer = &f.shop.shop.customers()[0];
    assert_eq!(
        ok.phone.as_ref().map(|p| p.as_str().to_owned()),
        Some(customer.phone.clone())
    );
    assert_eq!(
        ok.name.as_ref().map(|n| n.as_str().to_owned()),
        Some(format!("{} {}", customer.first_name, customer.last_name))
    );
    assert_eq!(
        f.store.account(f.accounts[1]).await.unwrap().session.status,
        SessionStatus::LoggedOut
    );
    f.engine.shutdown().await;
}

/// A batch's row and its order counts are read together: while its orders finish, nobody
/// reading it (one batch or the list) sees it running with nothing left to run, and the
/// transaction that ends the last order is the one that shows it finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_never_read_running_with_nothing_left_to_run() {
    use cartwright_store::{Finish, OrderStart, PageRequest, Recorded, RunRecord};
    let f = Fixture::new(3, |_| {}).await;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|i| {
            let store = f.store.clone();
            let done = done.clone();
            tokio::spawn(async move {
                let mut reads = 0u32;
                while !done.load(std::sync::atomic::Ordering::Acquire) {
                    // One reader takes the list; the other the newest batch on its own.
                    let mut batches = store
                        .batches(&PageRequest::number(1, 5).unwrap())
                        .await
                        .unwrap()
                        .items;
                    if i == 1 {
                        batches.truncate(1);
                        for b in &mut batches {
                            *b = store.batch(b.id).await.unwrap();
                        }
                    }
                    for b in batches {
                        let c = b.counts;
                        assert!(
                            b.state != BatchState::Running || c.queued + c.running + c.placing > 0,
                            "batch {} read running with nothing left: {c:?}",
                            b.id
                        );
                        assert_eq!(
                            c.total,
                            c.queued
                                + c.running
                                + c.placing
                                + c.placed
                                + c.failed
                                + c.cancelled
                                + c.skipped
                                + c.unresolved
                        );
                    }
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for round in 0..15 {
        let batch = f.submit(&f.batch(3, &[(0, 1)], 100_000)).await;
        let leases = hold_jobs(&f.store).await;
        for (i, order) in f.orders(batch.id).await.into_iter().enumerate() {
            assert!(matches!(
                f.store.start_order(order.id, 3).await.unwrap(),
                OrderStart::Run(_)
            ));
            let record = RunRecord::default();
            assert_eq!(
                f.store
                    .mark_placing(order.id, &leases[&order.id], &[], &record)
                    .await
                    .unwrap(),
                cartwright_store::Marked::Placing
            );
            let finish = Finish::Placed {
                number: format!("R{round:02}N{i}"),
                settling: None,
            };
            assert_eq!(
                f.store
                    .finish_order(order.id, &finish, &record, None)
                    .await
                    .unwrap(),
                Recorded::Moved(OrderState::Placed)
            );
        }
        let b = f.store.batch(batch.id).await.unwrap();
        assert_eq!(b.state, BatchState::Finished);
        assert_eq!((b.counts.placed, b.counts.total), (3, 3));
    }
    done.store(true, std::sync::atomic::Ordering::Release);
    for r in readers {
        assert!(r.await.unwrap() > 0, "a reader never read");
    }
}

/// On PostgreSQL, a connection holding the lock of the order's account in an open
/// transaction (ROLLBACK releases it); `None` on SQLite.
async fn hold_account_lock(
    f: &Fixture,
    order: cartwright_core::ids::OrderId,
) -> Option<sqlx::PgConnection> {
    use sqlx::Connection;
    if !f.db_url.starts_with("postgres") {
        return None;
    }
    let account = f.store.order(order).await.unwrap().account_id;
    let mut holder = sqlx::PgConnection::connect(&f.db_url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("SELECT id FROM accounts WHERE id = $1 FOR NO KEY UPDATE")
        .bind(account.get())
        .execute(&mut holder)
        .await
        .unwrap();
    Some(holder)
}

/// No order job can be claimed now.
async fn nothing_claimable(f: &Fixture) -> bool {
    let jobs = f
        .store
        .claim_jobs(
            "probe",
            &[cartwright_store::ORDER_JOB],
            10,
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    jobs.is_empty()
}

/// Every order of a running batch that is not finished has a live job: what the startup
/// sweep would have to mend is nothing.
async fn every_open_order_has_a_job(f: &Fixture) {
    assert_eq!(
        f.store.sweep_orders().await.unwrap(),
        0,
        "an order waits with no job"
    );
}

/// A stop and a resume can land anywhere around a run's end: before the run records its
/// stop, between that and its job's completion, or while a job has just been claimed. In
/// every order of events the resumed batch has a job for each order, and places each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_anywhere_around_a_runs_end_leaves_no_order_without_a_job() {
    use cartwright_core::ids::OrderId;
    use cartwright_store::{Finish, ORDER_JOB, OrderStart, Recorded, RunRecord};
    let f = Fixture::new(3, |_| {}).await;
    let batch = f.submit(&f.batch(3, &[(0, 1)], 100_000)).await;
    let lease = Duration::from_secs(60);
    // Claims the next order job: (job, order).
    let claim = async || {
        let jobs = f
            .store
            .claim_jobs("w", &[ORDER_JOB], 1, lease)
            .await
            .unwrap();
        assert_eq!(jobs.len(), 1, "a queued order job");
        let order = OrderId(jobs[0].payload["order"].as_i64().unwrap());
        (jobs[0].id, order)
    };
    let run = async |order| {
        assert!(matches!(
            f.store.start_order(order, 10).await.unwrap(),
            OrderStart::Run(_)
        ));
    };
    let state = async |order| f.store.order(order).await.unwrap().state;
    let record = RunRecord::default();
    // The run records that it stopped for the operator.
    let record_stop = async |order| {
        f.store
            .finish_order(order, &Finish::Cancelled, &record, None)
            .await
            .unwrap()
    };

    // 1. The run records its stop, the operator resumes, then the old job completes.
    let (job, order) = claim().await;
    run(order).await;
    f.store.stop_batch(batch.id).await.unwrap();
    assert_eq!(
        record_stop(order).await,
        Recorded::Moved(OrderState::Cancelled)
    );
    f.store.resume_batch(batch.id).await.unwrap();
    f.store.complete_jobs("w", &[job]).await.unwrap();
    assert_eq!(state(order).await, OrderState::Queued);
    assert_eq!(
        f.store.order(order).await.unwrap().attempts,
        0,
        "a stopped run does not count toward the order's runs"
    );
    every_open_order_has_a_job(&f).await;

    // 2. The operator stops and resumes before the run records its stop: the run's job
    //    runs the order again, and the stopped run is not counted.
    let (job, order) = claim().await;
    let before = f.store.order(order).await.unwrap().attempts;
    run(order).await;
    f.store.stop_batch(batch.id).await.unwrap();
    f.store.resume_batch(batch.id).await.unwrap();
    assert_eq!(record_stop(order).await, Recorded::RunAgain);
    assert_eq!(state(order).await, OrderState::Queued);
    assert_eq!(f.store.order(order).await.unwrap().attempts, before);
    f.store
        .defer_job("w", job, "resumed", Duration::ZERO)
        .await
        .unwrap();
    every_open_order_has_a_job(&f).await;

    // 3. A job claimed just before a stop finds its order cancelled; a resume comes before
    //    that job completes.
    let (job, order) = claim().await;
    f.store.stop_batch(batch.id).await.unwrap();
    assert_eq!(state(order).await, OrderState::Cancelled);
    assert!(matches!(
        f.store.start_order(order, 10).await.unwrap(),
        OrderStart::Nothing(_)
    ));
    f.store.resume_batch(batch.id).await.unwrap();
    f.store.complete_jobs("w", &[job]).await.unwrap();
    every_open_order_has_a_job(&f).await;

    // 4. The same, but the resume commits while the start waits for the account's lock
    //    (PostgreSQL; SQLite runs write transactions one at a time): the start decides on the
    //    order as the resume left it, and runs it in the job it has.
    let (job, order) = claim().await;
    f.store.stop_batch(batch.id).await.unwrap();
    let started = match hold_account_lock(&f, order).await {
        Some(mut holder) => {
            let store = f.store.clone();
            let start = tokio::spawn(async move { store.start_order(order, 10).await.unwrap() });
            wait_until(
                "the start to wait for the lock",
                Duration::from_secs(10),
                async || {
                    sqlx::query_scalar::<_, i64>(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'",
                    )
                    .fetch_one(&mut holder)
                    .await
                    .unwrap()
                        > 0
                },
            )
            .await;
            f.store.resume_batch(batch.id).await.unwrap();
            sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
            start.await.unwrap()
        }
        None => {
            f.store.resume_batch(batch.id).await.unwrap();
            f.store.start_order(order, 10).await.unwrap()
        }
    };
    assert!(matches!(started, OrderStart::Run(_)), "{started:?}");
    let retry = Finish::Retry {
        message: "a timeout".into(),
    };
    assert_eq!(
        f.store
            .finish_order(order, &retry, &record, None)
            .await
            .unwrap(),
        Recorded::Moved(OrderState::Queued)
    );
    f.store
        .retry_job("w", job, "a timeout", Duration::ZERO, false)
        .await
        .unwrap();
    every_open_order_has_a_job(&f).await;

    // 5. A retry recorded after a stop cancels the order, as the stop cancelled the queued
    //    ones: nothing waits in a stopped batch.
    let (job, order) = claim().await;
    run(order).await;
    f.store.stop_batch(batch.id).await.unwrap();
    assert_eq!(
        f.store
            .finish_order(order, &retry, &record, None)
            .await
            .unwrap(),
        Recorded::Moved(OrderState::Cancelled)
    );
    f.store
        .retry_job("w", job, "a timeout", Duration::ZERO, false)
        .await
        .unwrap();
    let stopped = f.store.batch(batch.id).await.unwrap();
    assert_eq!(stopped.counts.cancelled, 3, "{:?}", stopped.counts);
    assert!(
        nothing_claimable(&f).await,
        "no job lives in a stopped batch"
    );

    // 6. A run lost while the batch is paused: its rescued job holds the order for the
    //    resume, which gives it a new job.
    f.store.resume_batch(batch.id).await.unwrap();
    let (job, order) = claim().await;
    let before = f.store.order(order).await.unwrap().attempts;
    run(order).await;
    f.store.pause_batch(batch.id, "a test").await.unwrap();
    assert!(matches!(
        f.store.start_order(order, 10).await.unwrap(),
        OrderStart::Nothing(_)
    ));
    assert_eq!(state(order).await, OrderState::Queued);
    assert_eq!(f.store.order(order).await.unwrap().attempts, before);
    f.store.complete_jobs("w", &[job]).await.unwrap();
    assert!(
        nothing_claimable(&f).await,
        "no job lives in a paused batch"
    );

    // The resumed batch runs to its end on real workers, one order per account.
    f.store.resume_batch(batch.id).await.unwrap();
    every_open_order_has_a_job(&f).await;
    let workers = f.workers("w2", 2);
    let done = f.settled(batch.id, Duration::from_secs(120)).await;
    workers.shutdown(Duration::from_secs(5)).await;
    assert_eq!(done.state, BatchState::Finished);
    let failed: Vec<_> = f
        .orders(batch.id)
        .await
        .into_iter()
        .filter(|o| o.state != OrderState::Placed)
        .map(|o| (o.id, o.attempts, o.error_message))
        .collect();
    assert_eq!(done.counts.placed, 3, "{failed:?}");
    assert_eq!(f.shop.shop.orders().len(), 3, "each account ordered once");
    f.engine.shutdown().await;
}

/// Orders of one batch that end at the same moment, in different transactions, still end
/// their batch: the last one to commit sees the others final.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_ending_together_finish_their_batch() {
    use cartwright_store::{Finish, OrderStart, RunRecord};
    let f = Fixture::new(6, |_| {}).await;
    for round in 0..10 {
        let batch = f.submit(&f.batch(6, &[(0, 1)], 100_000)).await;
        let orders = f.orders(batch.id).await;
        for order in &orders {
            assert!(matches!(
                f.store.start_order(order.id, 3).await.unwrap(),
                OrderStart::Run(_)
            ));
        }
        let ends: Vec<_> = orders
            .iter()
            .enumerate()
            .map(|(i, order)| {
                let store = f.store.clone();
                let id = order.id;
                tokio::spawn(async move {
                    let finish = Finish::Failed {
                        class: ErrorClass::Business,
                        message: format!("round {round}, order {i}"),
                        screenshot: None,
                        snapshot: None,
                    };
                    store
                        .finish_order(id, &finish, &RunRecord::default(), None)
                        .await
                        .unwrap()
                })
            })
            .collect();
        for end in ends {
            end.await.unwrap();
        }
        let b = f.store.batch(batch.id).await.unwrap();
        assert_eq!(b.counts.failed, 6, "{:?}", b.counts);
        assert_eq!(b.state, BatchState::Finished, "round {round}");
    }
    f.engine.shutdown().await;
}

/// An operator stopping and resuming in quick succession, over and over, while runs go on:
/// every order is still placed, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stops_and_resumes_in_quick_succession_place_every_order_once() {
    let f = Fixture::new(4, |c| {
        c.faults = Faults {
            latency_ms: 100,
            ..Faults::default()
        }
    })
    .await;
    let workers = f.workers("w", 2);
    let batch = f.submit(&f.batch(4, &[(0, 1)], 100_000)).await;
    let mut toggles = 0;
    while toggles < 12 {
        f.wait_for("a run to start", Duration::from_secs(60), async || {
            let b = f.store.batch(batch.id).await.unwrap();
            b.counts.running > 0 || b.state != BatchState::Running
        })
        .await;
        // Refused once the batch has finished.
        if f.store.stop_batch(batch.id).await.is_err() {
            break;
        }
        // Stops of different lengths land in different places: before a run's stop check
        // (4 a second) sees them, and after it, while the run winds down.
        tokio::time::sleep(Duration::from_millis(40 * (toggles % 10))).await;
        f.store.resume_batch(batch.id).await.unwrap();
        toggles += 1;
    }
    let done = f.settled(batch.id, Duration::from_secs(120)).await;
    workers.shutdown(Duration::from_secs(5)).await;
    assert!(toggles > 0, "the batch finished before the first stop");
    assert_eq!(done.state, BatchState::Finished);
    assert_eq!(done.counts.placed, 4, "{:?}", done.counts);
    assert_eq!(f.shop.shop.orders().len(), 4, "each account ordered once");
    every_open_order_has_a_job(&f).await;
    f.engine.shutdown().await;
}
