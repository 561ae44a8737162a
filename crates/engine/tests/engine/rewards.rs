//! Rewards checks over plain HTTP against the demo shop: results and history, logged-out
//! sessions, cookie write-back, rate limits, a run picked up after its worker died, schedules
//! started once across nodes.

use crate::kit::*;
use cartwright_core::account::SessionStatus;
use cartwright_core::rewards::{CheckStatus, NewRewardsRun, NewSchedule, RewardsRun, RunState};
use cartwright_store::SnapshotFilter;
use reqwest::Method;
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;

fn run_spec(f: &Fixture, to: usize, rate_limit: Option<f64>) -> NewRewardsRun {
    serde_json::from_value(json!({
        "accounts": {"storefront_id": f.storefront.get(), "range": {"from": 1, "to": to}},
        "concurrency": 8,
        "rate_limit": rate_limit,
    }))
    .unwrap()
}

async fn finished(f: &Fixture, run: &RewardsRun, limit: Duration) -> RewardsRun {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let now = f.store.rewards_run(run.id).await.unwrap();
        if now.state != RunState::Running {
            return now;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "run {} did not finish: {now:?}",
            run.id
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn all_accounts(f: &Fixture) -> Vec<cartwright_core::account::Account> {
    let mut out = Vec::new();
    for id in &f.accounts {
        out.push(f.store.account(*id).await.unwrap());
    }
    out
}

async fn shop_points(f: &Fixture) -> HashMap<String, (i64, String)> {
    let customers = f
        .control(Method::GET, "/_control/customers", json!(null))
        .await;
    customers
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["email"].as_str().unwrap().to_owned(),
                (
                    c["points"].as_i64().unwrap(),
                    c["tier"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_reads_every_account_marks_refused_sessions_and_keeps_history() {
    let f = Fixture::new(12, |c| {
        // Every answer replaces the session value, and the old one stops working at once:
        // only a checker that keeps the refreshed cookie signs in the second time.
        c.rotate_every = 1;
        c.rotation_grace = Duration::ZERO;
    })
    .await;
    let accounts = all_accounts(&f).await;
    let expired: Vec<String> = accounts[..2]
        .iter()
        .map(|a| a.email.as_ref().unwrap().to_string())
        .collect();
    f.control(
        Method::POST,
        "/_control/sessions/expire",
        json!({"accounts": expired}),
    )
    .await;
    let workers = f.workers("w", 1);
    let run = f
        .engine
        .start_rewards_run(&run_spec(&f, 12, None), None)
        .await
        .unwrap();
    assert_eq!((run.total, run.state), (12, RunState::Running));
    let done = finished(&f, &run, Duration::from_secs(60)).await;
    assert_eq!(done.state, RunState::Finished);
    assert_eq!(
        (done.checked, done.ok, done.logged_out, done.failed),
        (12, 10, 2, 0)
    );
    let truth = shop_points(&f).await;
    let accounts = all_accounts(&f).await;
    let mut expected_total = 0;
    for a in &accounts {
        let email = a.email.as_ref().unwrap().to_string();
        if expired.contains(&email) {
            assert_eq!(a.session.status, SessionStatus::LoggedOut, "{email}");
            continue;
        }
        let (points, tier) = &truth[&email];
        expected_total += points;
        assert_eq!(a.points, Some(*points), "{email}");
        assert_eq!(a.tier.as_deref(), Some(tier.as_str()), "{email}");
        assert_eq!(a.session.status, SessionStatus::Ok, "{email}");
        assert!(a.last_checked_at.is_some());
    }
    assert_eq!(done.points_total, expected_total);
    let results = f
        .store
        .snapshots(&SnapshotFilter {
            run: Some(run.id),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(results.len(), 12);
    let refused: Vec<_> = results
        .iter()
        .filter(|s| s.status == CheckStatus::LoggedOut)
        .collect();
    assert_eq!(refused.len(), 2);
    assert!(
        refused
            .iter()
            .all(|s| s.http_status == Some(401)
                && s.error.as_deref().is_some_and(|e| e.contains("401"))),
        "{refused:?}"
    );

    // The second run signs in with the cookies the first one kept: the old values are dead.
    let again = f
        .engine
        .start_rewards_run(&run_spec(&f, 12, None), None)
        .await
        .unwrap();
    let again = finished(&f, &again, Duration::from_secs(60)).await;
    assert_eq!((again.ok, again.logged_out), (10, 2), "{again:?}");
    let history = f
        .store
        .snapshots(&SnapshotFilter {
            account: Some(f.accounts[5]),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        history.len(),
        2,
        "one snapshot per run: history, not only the latest"
    );
    assert!(history.iter().all(|s| s.status == CheckStatus::Ok));
    let events = f
        .store
        .events(&cartwright_store::EventQuery {
            rewards_run: Some(run.id),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.message.starts_with("finished: checked 12 of 12")),
        "{events:?}"
    );
    workers.shutdown(Duration::from_secs(5)).await;
    f.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_keeps_to_its_own_rate_limit_and_the_sites() {
    let f = Fixture::new(30, |c| c.customers = 30).await;
    let workers = f.workers("w", 1);
    let run = f
        .engine
        .start_rewards_run(&run_spec(&f, 30, Some(15.0)), None)
        .await
        .unwrap();
    let done = finished(&f, &run, Duration::from_secs(60)).await;
    assert_eq!(done.ok, 30);
    let log = f
        .control(Method::GET, "/_control/requests", json!(null))
        .await;
    let mut at: Vec<u64> = log["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.contains("reward-engine"))
        })
        .map(|r| r["at_ms"].as_u64().unwrap())
        .collect();
    at.sort_unstable();
    assert_eq!(at.len(), 30, "one request per account");
    let mut worst = 0;
    for (i, start) in at.iter().enumerate() {
        worst = worst.max(at[i..].iter().take_while(|t| **t < start + 1000).count());
    }
    assert!(worst <= 16, "{worst} requests within one second at 15/s");
    workers.shutdown(Duration::from_secs(5)).await;
    f.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_worker_died_is_finished_by_another_checking_each_account_once() {
    let f = Fixture::new(40, |c| c.customers = 40).await;
    let first = f.workers("dies", 1);
    let run = f
        .engine
        .start_rewards_run(&run_spec(&f, 40, Some(20.0)), None)
        .await
        .unwrap();
    f.wait_for(
        "some checks recorded",
        Duration::from_secs(30),
        async || f.store.rewards_run(run.id).await.unwrap().checked >= 10,
    )
    .await;
    // The worker vanishes without handing its job back, as in a crash.
    first.abandon().await;
    let rescuer = f.workers("rescuer", 1);
    let done = finished(&f, &run, Duration::from_secs(60)).await;
    assert_eq!(
        (done.state, done.checked, done.ok),
        (RunState::Finished, 40, 40)
    );
    let results = f
        .store
        .snapshots(&SnapshotFilter {
            run: Some(run.id),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut ids: Vec<_> = results.iter().map(|s| s.account_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        (results.len(), ids.len()),
        (40, 40),
        "one result per account"
    );
    rescuer.shutdown(Duration::from_secs(5)).await;
    f.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_schedule_starts_one_run_however_many_nodes_look() {
    let f = Fixture::new(3, |_| {}).await;
    let now = time::OffsetDateTime::now_utc();
    let spec = NewSchedule {
        name: cartwright_core::values::Text::parse("every morning").unwrap(),
        cron: "0 9 * * *".into(),
        timezone: "Asia/Kolkata".into(),
        enabled: true,
        run: run_spec(&f, 3, None),
    };
    let next = spec.check(now).unwrap();
    let schedule = f.store.create_schedule(&spec, next, None).await.unwrap();
    assert_eq!(schedule.next_run_at, Some(next));
    // Two engines on one database (two nodes) both find it due.
    let other = cartwright_engine::Engine::new(
        f.store.clone(),
        cartwright_engine::EngineConfig::new(f.dir.path()),
    );
    let later = next + time::Duration::minutes(1);
    let (a, b) = tokio::join!(
        f.engine.start_due_schedules(later),
        other.start_due_schedules(later)
    );
    assert_eq!(
        a.unwrap() + b.unwrap(),
        1,
        "exactly one run for the occurrence"
    );
    let schedule = f.store.schedule(schedule.id).await.unwrap();
    assert_eq!(
        schedule.next_run_at,
        Some(next + time::Duration::days(1)),
        "moved to the next morning"
    );
    let run = f
        .store
        .rewards_run(schedule.last_run_id.unwrap())
        .await
        .unwrap();
    assert_eq!((run.schedule_id, run.total), (Some(schedule.id), 3));
    assert_eq!(
        f.engine.start_due_schedules(later).await.unwrap(),
        0,
        "not due again"
    );
    let workers = f.workers("w", 1);
    let done = finished(&f, &run, Duration::from_secs(60)).await;
    assert_eq!(done.ok, 3);
    workers.shutdown(Duration::from_secs(5)).await;
    f.engine.shutdown().await;
    other.shutdown().await;
}
