//! Durable jobs: rows in `jobs`, enqueued in the same transaction as the rows they concern,
//! claimed by workers in any process (PostgreSQL `FOR UPDATE SKIP LOCKED`; SQLite's single
//! writer), kept alive by heartbeats, rescued when a worker stops beating, retried with
//! backoff, at most one queued or running job per unique key.
//!
//! Why not a queue library: apalis 1.0 (the first choice) runs `PRAGMA synchronous = OFF` on the
//! application's SQLite connections, kills its worker on a payload that does not decode, leaves
//! a panicked job marked running to be run again, and has no cron; a job here places orders.

use crate::db::{Arg, Sql, Ts, Tx, bind_args, read, write};
use crate::{Store, StoreError};
use cartwright_core::ids::JobId;
use serde::Serialize;
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// What it is (`order`, `rewards_check`, …): selects the handler.
    pub kind: &'static str,
    /// The handler's input.
    pub payload: serde_json::Value,
    /// Higher runs first.
    pub priority: i64,
    /// Attempts before it fails for good.
    pub max_attempts: i64,
    /// Not before this time (now when absent).
    pub run_at: Option<OffsetDateTime>,
    /// At most one queued or running job per key; a second is not enqueued.
    pub unique_key: Option<String>,
}

impl NewJob {
    /// A job of `kind` with defaults: priority 0, five attempts, now, not unique.
    pub fn new(kind: &'static str, payload: serde_json::Value) -> Self {
        Self {
            kind,
            payload,
            priority: 0,
            max_attempts: 5,
            run_at: None,
            unique_key: None,
        }
    }
}

/// A worker's hold on a running job: valid until the job's lease runs out by the database's
/// clock. An irreversible step checks it in the transaction that records the step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The job.
    pub job: JobId,
    /// The worker holding it.
    pub worker: String,
}

/// A claimed job.
#[derive(Debug, Clone)]
pub struct Job {
    /// Identifier.
    pub id: JobId,
    /// The worker that claimed it.
    pub worker: String,
    /// Kind.
    pub kind: String,
    /// Input.
    pub payload: serde_json::Value,
    /// This attempt's number, from 1.
    pub attempt: i64,
    /// Attempts allowed.
    pub max_attempts: i64,
}

impl Job {
    /// The claiming worker's hold on it.
    pub fn lease(&self) -> Lease {
        Lease {
            job: self.id,
            worker: self.worker.clone(),
        }
    }
}

/// Whether `lease` is still held (its job running for its worker, its lease not run out by
/// the database's clock), locking the job's row until `tx` ends so that no rescue can take it
/// before what `tx` records as the lease's holder commits.
pub(crate) async fn hold_lease(tx: &mut Tx, lease: &Lease) -> Result<bool, StoreError> {
    let sql = format!(
        "SELECT id FROM jobs WHERE id = $1 AND state = 'running' AND worker = $2 AND lease_until > {}{}",
        tx.backend().clock(),
        crate::db::RowLock::NoKeyUpdate.sql(tx.backend())
    );
    let held: Option<i64> = write!(tx, |c| {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(lease.job.get())
            .bind(lease.worker.as_str())
            .fetch_optional(c)
            .await
    })?;
    Ok(held.is_some())
}

/// How many jobs are in each state, per kind.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobCount {
    /// Kind.
    pub kind: String,
    /// State.
    pub state: String,
    /// How many.
    pub count: i64,
}

#[derive(sqlx::FromRow)]
struct JobRow {
    id: i64,
    kind: String,
    payload: String,
    attempts: i64,
    max_attempts: i64,
}

/// The job kind that runs one order.
pub const ORDER_JOB: &str = "order";
/// Orders come before rewards checks, after sign-in tests.
const ORDER_PRIORITY: i64 = 10;

/// An order's job's unique key, as SQL over the order's id column `id`: the one place it is
/// built (one live job per order).
pub(crate) fn order_key_sql(id: &str) -> String {
    format!("'order:' || {id}")
}

fn order_key(id: i64) -> String {
    format!("order:{id}")
}

/// `EXISTS (…)`: whether the order whose id column is `id` has a job waiting or running.
pub(crate) fn order_job_live_sql(id: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM jobs j WHERE j.unique_key = {} AND j.state IN ('queued', 'running'))",
        order_key_sql(id)
    )
}

/// `EXISTS (…)`: whether the order whose id column is `id` is being run by a worker now.
pub(crate) fn order_job_running_sql(id: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM jobs j WHERE j.unique_key = {} AND j.state = 'running')",
        order_key_sql(id)
    )
}

/// Gives order `id` its job, in `tx` (none when it has one waiting or running already).
pub(crate) async fn enqueue_order_job(tx: &mut Tx, id: i64) -> Result<(), StoreError> {
    let job = NewJob {
        priority: ORDER_PRIORITY,
        // The order counts its own runs (see `start_order`); the job's attempts only guard
        // against a run that crashes its worker every time.
        max_attempts: 1_000,
        unique_key: Some(order_key(id)),
        ..NewJob::new(ORDER_JOB, serde_json::json!({ "order": id }))
    };
    enqueue_in(tx, &job).await.map(drop)
}

/// Gives marketplace order `id` its delivery job, in `tx` (none when it has one waiting or
/// running already).
pub(crate) async fn enqueue_delivery_job(tx: &mut Tx, id: i64) -> Result<(), StoreError> {
    let job = NewJob {
        priority: 30,
        max_attempts: 1_000,
        unique_key: Some(format!("delivery:{id}")),
        ..NewJob::new(
            crate::market::DELIVERY_JOB,
            serde_json::json!({ "market_order": id }),
        )
    };
    enqueue_in(tx, &job).await.map(drop)
}

/// Ends the running job of an order, in the transaction that takes the order out of its
/// care: a resume in between would otherwise find the job live, add none, and the order would
/// wait with no job once this one completes.
pub(crate) async fn end_order_job(tx: &mut Tx, order: i64) -> Result<(), StoreError> {
    let now = Ts::now();
    write!(tx, |c| {
        sqlx::query(
            "UPDATE jobs SET state = 'done', finished_at = $2 WHERE unique_key = $1 AND state = 'running'",
        )
        .bind(order_key(order))
        .bind(now)
        .execute(c)
        .await
        .map(|r| r.rows_affected())
    })?;
    Ok(())
}

/// Cancels the waiting jobs of a batch's waiting orders (a stop or a pause).
pub(crate) async fn cancel_waiting_order_jobs(
    tx: &mut Tx,
    batch: cartwright_core::ids::BatchId,
) -> Result<(), StoreError> {
    let sql = format!(
        "UPDATE jobs SET state = 'cancelled', finished_at = $2 WHERE state = 'queued' AND unique_key IN \
         (SELECT {} FROM orders WHERE batch_id = $1 AND state = 'queued')",
        order_key_sql("id")
    );
    write!(tx, |c| {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(batch.get())
            .bind(Ts::now())
            .execute(c)
            .await
            .map(|r| r.rows_affected())
    })?;
    Ok(())
}

/// Enqueues jobs without unique keys inside `tx`, in one statement.
pub(crate) async fn enqueue_plain_in(tx: &mut Tx, jobs: &[NewJob]) -> Result<(), StoreError> {
    if jobs.is_empty() {
        return Ok(());
    }
    let now = OffsetDateTime::now_utc();
    let mut sql = crate::db::Sql::new(
        "INSERT INTO jobs (kind, payload, priority, max_attempts, run_at, created_at) VALUES ",
    );
    for (i, job) in jobs.iter().enumerate() {
        debug_assert!(job.unique_key.is_none(), "plain jobs have no unique key");
        sql.values_row(
            i == 0,
            [
                Some(crate::db::Arg::Text(job.kind.to_owned())),
                Some(crate::db::Arg::Text(job.payload.to_string())),
                Some(crate::db::Arg::Int(job.priority)),
                Some(crate::db::Arg::Int(job.max_attempts)),
                Some(crate::db::Arg::Ts(job.run_at.unwrap_or(now))),
                Some(crate::db::Arg::Ts(now)),
            ],
        );
    }
    tx.execute(&sql).await?;
    tx.notify_jobs();
    Ok(())
}

/// Enqueues a job inside `tx`; it becomes visible when `tx` commits. Returns `None` when a
/// queued or running job already holds its unique key.
pub(crate) async fn enqueue_in(tx: &mut Tx, job: &NewJob) -> Result<Option<JobId>, StoreError> {
    let now = Ts::now();
    let payload = job.payload.to_string();
    let run_at = job.run_at.map_or(now, Ts::from);
    let id: Option<i64> = write!(tx, |c| {
        sqlx::query_scalar(
            "INSERT INTO jobs (kind, payload, priority, max_attempts, run_at, unique_key, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING id",
        )
        .bind(job.kind)
        .bind(payload)
        .bind(job.priority)
        .bind(job.max_attempts)
        .bind(run_at)
        .bind(job.unique_key.as_deref())
        .bind(now)
        .fetch_optional(c)
        .await
    })?;
    tx.notify_jobs();
    Ok(id.map(JobId))
}

impl Store {
    /// Enqueues many jobs in one transaction; returns how many were enqueued (unique keys
    /// already live are skipped).
    pub async fn enqueue_many(&self, jobs: &[NewJob]) -> Result<usize, StoreError> {
        let mut tx = self.begin().await?;
        let mut n = 0;
        for job in jobs {
            n += usize::from(enqueue_in(&mut tx, job).await?.is_some());
        }
        tx.commit().await?;
        self.analyze_jobs_after(n).await;
        Ok(n)
    }

    /// After a bulk enqueue, refreshes PostgreSQL's statistics of the jobs table: planned on
    /// stale statistics, the claim sorts every queued job instead of reading the claim index.
    pub(crate) async fn analyze_jobs_after(&self, enqueued: usize) {
        if enqueued >= 1_000 {
            self.db.analyze("jobs").await;
        }
    }

    /// Enqueues a job on its own.
    pub async fn enqueue(&self, job: &NewJob) -> Result<Option<JobId>, StoreError> {
        let mut tx = self.begin().await?;
        let id = enqueue_in(&mut tx, job).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Signalled when a job may have been enqueued or re-queued (by this process, or by any
    /// process on PostgreSQL): idle workers wait on it instead of polling hard.
    pub fn job_signal(&self) -> &tokio::sync::Notify {
        &self.job_signal
    }

    /// Claims up to `limit` due jobs of the given kinds for `worker`, highest priority first.
    pub async fn claim_jobs(
        &self,
        worker: &str,
        kinds: &[&str],
        limit: i64,
        lease: std::time::Duration,
    ) -> Result<Vec<Job>, StoreError> {
        if kinds.is_empty() || limit <= 0 {
            return Ok(Vec::new());
        }
        let now = Ts::now();
        let mut sql = Sql::new("UPDATE jobs SET state = 'running', worker = ");
        let backend = self.backend();
        sql.arg(Arg::Text(worker.to_owned()))
            .push(", lease_until = ")
            .bound(Arg::Int(millis(lease)), |p| backend.clock_plus(p))
            .push(", attempts = attempts + 1 WHERE id IN (SELECT id FROM jobs WHERE state = 'queued' AND run_at <= ")
            .arg(Arg::Ts(now.0))
            .push(" AND kind IN (");
        for (i, kind) in kinds.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.arg(Arg::Text((*kind).to_owned()));
        }
        sql.push(") ORDER BY priority DESC, run_at, id LIMIT ")
            .arg(Arg::Int(limit));
        // Claimers in other processes skip what this one locked.
        sql.push(self.backend().skip_locked());
        sql.push(") RETURNING id, kind, payload, attempts, max_attempts");
        let mut tx = self.begin().await?;
        let rows: Vec<JobRow> = write!(&mut tx, |c| {
            bind_args!(
                sqlx::query_as(sqlx::AssertSqlSafe(sql.text.clone())),
                &sql.args
            )
            .fetch_all(c)
            .await
        })?;
        tx.commit().await?;
        let mut jobs: Vec<Job> = rows
            .into_iter()
            .map(|r| Job {
                id: JobId(r.id),
                worker: worker.to_owned(),
                kind: r.kind,
                payload: serde_json::from_str(&r.payload).unwrap_or(serde_json::Value::Null),
                attempt: r.attempts,
                max_attempts: r.max_attempts,
            })
            .collect();
        jobs.sort_by_key(|j| j.id);
        Ok(jobs)
    }

    /// Renews `worker`'s lease on these jobs for `lease` from now (by the database's clock);
    /// returns the ones renewed. A job missing from the answer is no longer this worker's: its
    /// lease ran out (it may be rescued and run elsewhere), and its run must stop.
    pub async fn heartbeat_jobs(
        &self,
        worker: &str,
        ids: &[JobId],
        lease: std::time::Duration,
    ) -> Result<Vec<JobId>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let backend = self.backend();
        let mut sql = Sql::new("UPDATE jobs SET lease_until = ");
        sql.bound(Arg::Int(millis(lease)), |p| backend.clock_plus(p))
            .push(" WHERE state = 'running' AND worker = ")
            .arg(Arg::Text(worker.to_owned()))
            .push(" AND lease_until > ")
            .push(backend.clock());
        in_ids(&mut sql, ids);
        sql.push(" RETURNING id");
        let mut tx = self.begin().await?;
        let renewed = tx.ints(&sql).await?;
        tx.commit().await?;
        Ok(renewed.into_iter().map(JobId).collect())
    }

    /// Marks jobs done. Only the worker holding them can: a job rescued from a worker thought
    /// dead is not closed by that worker's late answer.
    pub async fn complete_jobs(&self, worker: &str, ids: &[JobId]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut sql = Sql::new("UPDATE jobs SET state = 'done', finished_at = ");
        sql.arg(Arg::Ts(Ts::now().0))
            .push(" WHERE state = 'running' AND worker = ")
            .arg(Arg::Text(worker.to_owned()));
        in_ids(&mut sql, ids);
        self.execute(sql).await.map(drop)
    }

    /// A failed attempt: queued again after `delay` while attempts remain, failed for good
    /// otherwise (or when `give_up`).
    pub async fn retry_job(
        &self,
        worker: &str,
        id: JobId,
        error: &str,
        delay: std::time::Duration,
        give_up: bool,
    ) -> Result<(), StoreError> {
        let now = Ts::now();
        let run_at = Ts(now.0 + Duration::try_from(delay).unwrap_or(Duration::HOUR));
        let mut tx = self.begin().await?;
        write!(&mut tx, |c| {
            sqlx::query(
                "UPDATE jobs SET state = CASE WHEN $4 OR attempts >= max_attempts THEN 'failed' ELSE 'queued' END, \
                 run_at = $5, last_error = $3, worker = NULL, lease_until = NULL, \
                 finished_at = CASE WHEN $4 OR attempts >= max_attempts THEN $6 ELSE NULL END \
                 WHERE id = $1 AND state = 'running' AND worker = $2",
            )
            .bind(id.get())
            .bind(worker)
            .bind(truncate(error))
            .bind(give_up)
            .bind(run_at)
            .bind(now)
            .execute(c)
            .await
            .map(|r| r.rows_affected())
        })?;
        tx.notify_jobs();
        tx.commit().await
    }

    /// Puts a job back in the queue for `delay` without counting the attempt: what it needs
    /// is busy (another order of the same account is running).
    pub async fn defer_job(
        &self,
        worker: &str,
        id: JobId,
        reason: &str,
        delay: std::time::Duration,
    ) -> Result<(), StoreError> {
        let run_at = Ts(Ts::now().0 + Duration::try_from(delay).unwrap_or(Duration::MINUTE));
        let mut tx = self.begin().await?;
        write!(&mut tx, |c| {
            sqlx::query(
                "UPDATE jobs SET state = 'queued', run_at = $3, last_error = $4, worker = NULL, \
                 lease_until = NULL, attempts = attempts - 1 WHERE id = $1 AND state = 'running' AND worker = $2",
            )
            .bind(id.get())
            .bind(worker)
            .bind(run_at)
            .bind(truncate(reason))
            .execute(c)
            .await
            .map(|r| r.rows_affected())
        })?;
        tx.notify_jobs();
        tx.commit().await
    }

    /// Puts jobs a worker holds back in the queue without counting the attempt: a graceful
    /// shutdown handing work to others.
    pub async fn release_jobs(&self, worker: &str, ids: &[JobId]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut sql = Sql::new(
            "UPDATE jobs SET state = 'queued', worker = NULL, lease_until = NULL, attempts = attempts - 1 \
             WHERE state = 'running' AND worker = ",
        );
        sql.arg(Arg::Text(worker.to_owned()));
        in_ids(&mut sql, ids);
        self.execute(sql).await.map(drop)
    }

    /// Re-queues running jobs whose lease ran out by the database's clock (their worker
    /// crashed, was killed, or stalled past its lease, and stopped beating); a job out of
    /// attempts fails instead. Returns how many were rescued.
    pub async fn rescue_jobs(&self) -> Result<u64, StoreError> {
        let now = Ts::now();
        let sql = format!(
            "UPDATE jobs SET state = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END, \
             last_error = 'its worker stopped answering', worker = NULL, lease_until = NULL, \
             finished_at = CASE WHEN attempts >= max_attempts THEN $1 ELSE NULL END \
             WHERE state = 'running' AND lease_until < {}",
            self.backend().clock()
        );
        let mut tx = self.begin().await?;
        let n = write!(&mut tx, |c| {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(now)
                .execute(c)
                .await
                .map(|r| r.rows_affected())
        })?;
        if n > 0 {
            tx.notify_jobs();
        }
        tx.commit().await?;
        Ok(n)
    }

    /// Whether a job with this unique key is queued or running.
    pub async fn job_pending(&self, unique_key: &str) -> Result<bool, StoreError> {
        let n: i64 = read!(&self.db, |c| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM jobs WHERE unique_key = $1 AND state IN ('queued', 'running')",
            )
            .bind(unique_key)
            .fetch_one(c)
            .await
        })?;
        Ok(n > 0)
    }

    /// Job counts per kind and state, for metrics and the dashboard.
    pub async fn job_counts(&self) -> Result<Vec<JobCount>, StoreError> {
        let rows: Vec<(String, String, i64)> = read!(&self.db, |c| {
            sqlx::query_as(
                "SELECT kind, state, COUNT(*) FROM jobs GROUP BY kind, state ORDER BY kind, state",
            )
            .fetch_all(c)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(|(kind, state, count)| JobCount { kind, state, count })
            .collect())
    }

    async fn execute(&self, sql: Sql) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let n = write!(&mut tx, |c| {
            bind_args!(
                sqlx::query(sqlx::AssertSqlSafe(sql.text.clone())),
                &sql.args
            )
            .execute(c)
            .await
            .map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        Ok(n)
    }
}

fn in_ids(sql: &mut Sql, ids: &[JobId]) {
    sql.push(" AND id IN (");
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.arg(Arg::Int(id.get()));
    }
    sql.push(")");
}

fn truncate(error: &str) -> &str {
    match error.char_indices().nth(2000) {
        Some((i, _)) => &error[..i],
        None => error,
    }
}

/// A duration in whole milliseconds, for the database's clock arithmetic.
fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
