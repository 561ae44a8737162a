//! `bench/jobs`: no-op jobs per second through the real queue and workers, on SQLite and on
//! the PostgreSQL database `--database-url` names.

use cartwright_jobs::{Handler, Outcome, Workers};
use cartwright_store::{DbSettings, Job, NewJob, SecretKey, Store};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut database_url = None;
    let mut jobs = 50_000usize;
    let mut concurrency = 64usize;
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--database-url" => database_url = args.next(),
            "--jobs" => jobs = args.next().unwrap_or_default().parse()?,
            "--concurrency" => concurrency = args.next().unwrap_or_default().parse()?,
            other => anyhow::bail!(
                "unknown flag {other}; flags: --database-url URL --jobs N --concurrency N"
            ),
        }
    }
    let dir = tempfile::tempdir()?;
    let url = database_url
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("jobs.db").display()));
    let store = Store::connect(
        &DbSettings {
            url,
            max_connections: 8,
        },
        &SecretKey::generate(),
    )
    .await?;
    store.migrate().await?;
    let backend = format!("{:?}", store.backend()).to_lowercase();

    let batch: Vec<NewJob> = (0..jobs)
        .map(|i| NewJob::new("noop", serde_json::json!({ "i": i })))
        .collect();
    let enqueue = Instant::now();
    for chunk in batch.chunks(5_000) {
        store.enqueue_many(chunk).await?;
    }
    let enqueue = enqueue.elapsed();

    let noop: Arc<dyn Handler> = Arc::new(|_job: Job| async { Outcome::Done });
    let started = Instant::now();
    let workers = Workers::new(store.clone(), format!("bench-{}", std::process::id()))
        .lane("noop", concurrency, vec![("noop", noop)])
        .start();
    loop {
        let done: i64 = store
            .job_counts()
            .await?
            .iter()
            .filter(|c| c.state == "done")
            .map(|c| c.count)
            .sum();
        if done as usize >= jobs {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed();
    workers.shutdown(Duration::from_secs(5)).await;
    println!(
        "jobs bench: {backend}, {jobs} no-op jobs, {concurrency} at once: {:.0} jobs/s run ({:.2}s); enqueued at {:.0} jobs/s",
        jobs as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64(),
        jobs as f64 / enqueue.as_secs_f64()
    );
    store.close().await;
    Ok(())
}
