//! Workers against a real database: the temporary SQLite file by default, PostgreSQL when
//! `CARTWRIGHT_TEST_DATABASE_URL` names a server.

#![allow(clippy::unwrap_used)]

use cartwright_jobs::{Handler, Outcome, Timing, Workers};
use cartwright_store::{DbSettings, Job, NewJob, SecretKey, Store};
use sqlx::Connection;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

async fn store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = match std::env::var("CARTWRIGHT_TEST_DATABASE_URL") {
        Ok(server) if server.starts_with("postgres") => {
            let name = format!(
                "cw_jobs_{}",
                std::process::id() as u64 * 1000 + rand_suffix()
            );
            let mut conn = sqlx::PgConnection::connect(&server).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .unwrap();
            format!("{}/{name}", server.rsplit_once('/').unwrap().0)
        }
        _ => format!("sqlite://{}", dir.path().join("jobs.db").display()),
    };
    let store = Store::connect(
        &DbSettings {
            url,
            max_connections: 4,
        },
        &SecretKey::generate(),
    )
    .await
    .unwrap();
    store.migrate().await.unwrap();
    (store, dir)
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    (SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        % 1000) as u64
}

fn fast() -> Timing {
    Timing {
        idle_poll: Duration::from_millis(50),
        heartbeat: Duration::from_millis(100),
        stale_after: Duration::from_millis(600),
    }
}

async fn wait_until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..400 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn count(store: &Store, kind: &str, state: &str) -> i64 {
    store
        .job_counts()
        .await
        .unwrap()
        .iter()
        .filter(|c| c.kind == kind && c.state == state)
        .map(|c| c.count)
        .sum()
}

#[tokio::test]
async fn jobs_run_once_by_priority_and_retry_then_fail() {
    let (store, _dir) = store().await;
    let order: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = order.clone();
    let record: Arc<dyn Handler> = Arc::new(move |job: Job| {
        let seen = seen.clone();
        async move {
            seen.lock()
                .unwrap()
                .push(job.payload["name"].as_str().unwrap().to_owned());
            Outcome::Done
        }
    });
    let attempts = Arc::new(AtomicUsize::new(0));
    let tries = attempts.clone();
    let flaky: Arc<dyn Handler> = Arc::new(move |_job: Job| {
        let tries = tries.clone();
        async move {
            tries.fetch_add(1, Ordering::SeqCst);
            Outcome::Retry {
                error: "try again".into(),
                after: Duration::from_millis(10),
            }
        }
    });
    // Enqueued before any worker runs: priority decides the order within the lane.
    for (name, priority) in [("low", 1), ("high", 9), ("mid", 5)] {
        let mut job = NewJob::new("record", serde_json::json!({"name": name}));
        job.priority = priority;
        store.enqueue(&job).await.unwrap();
    }
    let mut job = NewJob::new("flaky", serde_json::json!({}));
    job.max_attempts = 3;
    store.enqueue(&job).await.unwrap();

    let workers = Workers::new(store.clone(), "w1")
        .timing(fast())
        .lane("one", 1, vec![("record", record), ("flaky", flaky)])
        .start();
    wait_until("all records", async || {
        count(&store, "record", "done").await == 3
    })
    .await;
    wait_until("the flaky job to fail", async || {
        count(&store, "flaky", "failed").await == 1
    })
    .await;
    assert_eq!(*order.lock().unwrap(), ["high", "mid", "low"]);
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        3,
        "three attempts, then failed for good"
    );
    workers.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn unique_keys_allow_one_live_job() {
    let (store, _dir) = store().await;
    let mut job = NewJob::new("check", serde_json::json!({}));
    job.unique_key = Some("account:7".into());
    assert!(store.enqueue(&job).await.unwrap().is_some());
    assert!(
        store.enqueue(&job).await.unwrap().is_none(),
        "a second live job with the key is not enqueued"
    );
    let done: Arc<dyn Handler> = Arc::new(|_job: Job| async { Outcome::Done });
    let workers = Workers::new(store.clone(), "w")
        .timing(fast())
        .lane("l", 2, vec![("check", done)])
        .start();
    wait_until("the job done", async || {
        count(&store, "check", "done").await == 1
    })
    .await;
    assert!(
        store.enqueue(&job).await.unwrap().is_some(),
        "once done, the key is free"
    );
    workers.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_dead_workers_jobs_are_rescued_and_a_panic_fails_the_job() {
    let (store, _dir) = store().await;
    store
        .enqueue(&NewJob::new("slow", serde_json::json!({})))
        .await
        .unwrap();
    // This worker claims the job, then "dies": it never beats and never answers.
    let claimed = store
        .claim_jobs("dead", &["slow"], 10, fast().stale_after)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let ran = Arc::new(AtomicUsize::new(0));
    let counter = ran.clone();
    let slow: Arc<dyn Handler> = Arc::new(move |_job: Job| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            Outcome::Done
        }
    });
    let boom: Arc<dyn Handler> = Arc::new(|_job: Job| async { panic!("kaboom") });
    store
        .enqueue(&NewJob::new("boom", serde_json::json!({})))
        .await
        .unwrap();
    let workers = Workers::new(store.clone(), "alive")
        .timing(fast())
        .lane("l", 2, vec![("slow", slow), ("boom", boom)])
        .start();
    wait_until("the rescued job to run", async || {
        count(&store, "slow", "done").await == 1
    })
    .await;
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    wait_until("the panicking job to fail", async || {
        count(&store, "boom", "failed").await == 1
    })
    .await;
    // The dead worker's late answer does not close a job it no longer holds.
    store.complete_jobs("dead", &[claimed[0].id]).await.unwrap();
    workers.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn shutdown_hands_unfinished_jobs_back() {
    let (store, _dir) = store().await;
    store
        .enqueue(&NewJob::new("forever", serde_json::json!({})))
        .await
        .unwrap();
    let started = Arc::new(tokio::sync::Notify::new());
    let signal = started.clone();
    let forever: Arc<dyn Handler> = Arc::new(move |_job: Job| {
        let signal = signal.clone();
        async move {
            signal.notify_one();
            std::future::pending::<()>().await;
            Outcome::Done
        }
    });
    let workers = Workers::new(store.clone(), "w")
        .timing(fast())
        .lane("l", 1, vec![("forever", forever)])
        .start();
    started.notified().await;
    assert_eq!(workers.running(), 1);
    workers.shutdown(Duration::from_millis(200)).await;
    assert_eq!(
        count(&store, "forever", "queued").await,
        1,
        "handed back, ready for another worker"
    );
    let again = store
        .claim_jobs("other", &["forever"], 1, fast().stale_after)
        .await
        .unwrap();
    assert_eq!(
        again[0].attempt, 1,
        "handing back does not spend an attempt"
    );
}

#[tokio::test]
async fn a_node_with_a_shorter_lease_never_takes_a_live_job_of_a_node_with_a_longer_one() {
    let (store, _dir) = store().await;
    store
        .enqueue(&NewJob::new("steady", serde_json::json!({})))
        .await
        .unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let counter = ran.clone();
    // Beats every 500 ms on a 3 s lease (a beat is older than the other node's whole lease
    // most of the time), and runs for longer than that lease.
    let steady: Arc<dyn Handler> = Arc::new(move |_job: Job| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(1_500)).await;
            Outcome::Done
        }
    });
    let patient = Workers::new(store.clone(), "patient")
        .timing(Timing {
            idle_poll: Duration::from_millis(50),
            heartbeat: Duration::from_millis(500),
            stale_after: Duration::from_secs(3),
        })
        .lane("l", 1, vec![("steady", steady.clone())])
        .start();
    wait_until("the job to start", async || ran.load(Ordering::SeqCst) == 1).await;
    // This node rescues whatever it believes dead after 300 ms, many times over.
    let hasty = Workers::new(store.clone(), "hasty")
        .timing(Timing {
            idle_poll: Duration::from_millis(50),
            heartbeat: Duration::from_millis(50),
            stale_after: Duration::from_millis(300),
        })
        .lane("l", 1, vec![("steady", steady)])
        .start();
    wait_until("the job to finish", async || {
        count(&store, "steady", "done").await == 1
    })
    .await;
    assert_eq!(ran.load(Ordering::SeqCst), 1, "run once, by its owner");
    hasty.shutdown(Duration::from_secs(5)).await;
    patient.shutdown(Duration::from_secs(5)).await;
}

/// Counts a run's end however it ends: finished, or dropped when its worker stops it.
struct Ends(Arc<AtomicUsize>);

impl Drop for Ends {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_worker_that_loses_a_jobs_lease_stops_its_run_and_another_runs_it_once() {
    let (store, _dir) = store().await;
    let job = store
        .enqueue(&NewJob::new("cart", serde_json::json!({})))
        .await
        .unwrap()
        .unwrap();
    let (started, ended) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (s, e) = (started.clone(), ended.clone());
    // The first run never ends by itself: it stands for a run stalled on its cart.
    let stalls: Arc<dyn Handler> = Arc::new(move |_job: Job| {
        let (s, e) = (s.clone(), e.clone());
        async move {
            let _ends = Ends(e);
            s.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<()>().await;
            Outcome::Done
        }
    });
    let first = Workers::new(store.clone(), "first")
        .timing(fast())
        .lane("l", 1, vec![("cart", stalls)])
        .start();
    wait_until("the first run to start", async || {
        started.load(Ordering::SeqCst) == 1
    })
    .await;
    // The job is taken from under the first worker (rescued after its lease ran out, and
    // claimed by another node): its next beat finds the lease gone and its run is stopped.
    store.release_jobs(first.id(), &[job]).await.unwrap();
    let taken = store
        .claim_jobs("second", &["cart"], 1, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(taken.len(), 1, "the other node has it");
    wait_until("the first run to be stopped", async || {
        ended.load(Ordering::SeqCst) == 1
    })
    .await;
    wait_until("the first worker to hold nothing", async || {
        first.running() == 0
    })
    .await;
    // The other node finishes it; the first never ran it again.
    store.complete_jobs("second", &[job]).await.unwrap();
    assert_eq!(count(&store, "cart", "done").await, 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(started.load(Ordering::SeqCst), 1);
    first.shutdown(Duration::from_secs(1)).await;
}
