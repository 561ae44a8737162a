//! Rewards runs, their snapshots (every check's result, kept as history) and schedules.
//!
//! A run is written with its job in one transaction; the job checks the accounts not yet
//! snapshotted in the run, so a run picked up again after a crash goes on where it stopped and
//! never checks an account twice (a unique index on run and account makes sure).

use crate::db::{Arg, Sql, Ts, Tx, bind_args, read, write};
use crate::{NewJob, Store, StoreError};
use cartwright_core::cookies::CookieJar;
use cartwright_core::ids::{AccountId, OperatorId, RewardsRunId, ScheduleId, StorefrontId};
use cartwright_core::rewards::{
    CheckStatus, NewRewardsRun, NewSchedule, NewSnapshot, RewardsRun, RunState, Schedule, Snapshot,
};
use time::OffsetDateTime;

/// The job kind that works through a rewards run.
pub const REWARDS_JOB: &str = "rewards_run";

const RUN_COLUMNS: &str = "id, storefront_id, schedule_id, state, total, skipped, checked, ok, \
    logged_out, failed, points_total, concurrency, rate_limit, created_by, created_at, started_at, finished_at";

#[derive(sqlx::FromRow)]
struct RunRow {
    id: i64,
    storefront_id: i64,
    schedule_id: Option<i64>,
    state: String,
    total: i64,
    skipped: i64,
    checked: i64,
    ok: i64,
    logged_out: i64,
    failed: i64,
    points_total: i64,
    concurrency: i64,
    rate_limit: Option<f64>,
    created_by: Option<i64>,
    created_at: Ts,
    started_at: Option<Ts>,
    finished_at: Option<Ts>,
}

impl TryFrom<RunRow> for RewardsRun {
    type Error = StoreError;
    fn try_from(r: RunRow) -> Result<Self, StoreError> {
        let started_at = r.started_at.map(|t| t.0);
        let finished_at = r.finished_at.map(|t| t.0);
        Ok(RewardsRun {
            id: RewardsRunId(r.id),
            storefront_id: StorefrontId(r.storefront_id),
            schedule_id: r.schedule_id.map(ScheduleId),
            state: r.state.parse().map_err(StoreError::Corrupt)?,
            total: r.total,
            skipped: r.skipped,
            checked: r.checked,
            ok: r.ok,
            logged_out: r.logged_out,
            failed: r.failed,
            points_total: r.points_total,
            concurrency: r.concurrency,
            rate_limit: r.rate_limit,
            created_by: r.created_by.map(OperatorId),
            created_at: r.created_at.0,
            started_at,
            finished_at,
            duration_ms: started_at
                .zip(finished_at)
                .map(|(s, f)| (f - s).whole_milliseconds() as i64),
        })
    }
}

#[derive(sqlx::FromRow)]
struct SnapshotRow {
    id: i64,
    run_id: Option<i64>,
    account_id: i64,
    account_label: Option<String>,
    status: String,
    points: Option<i64>,
    tier: Option<String>,
    http_status: Option<i64>,
    error: Option<String>,
    duration_ms: i64,
    checked_at: Ts,
}

impl TryFrom<SnapshotRow> for Snapshot {
    type Error = StoreError;
    fn try_from(r: SnapshotRow) -> Result<Self, StoreError> {
        Ok(Snapshot {
            id: r.id,
            run_id: r.run_id.map(RewardsRunId),
            account_id: AccountId(r.account_id),
            account_label: r.account_label,
            status: r.status.parse().map_err(StoreError::Corrupt)?,
            points: r.points,
            tier: r.tier,
            http_status: r.http_status,
            error: r.error,
            duration_ms: r.duration_ms,
            checked_at: r.checked_at.0,
        })
    }
}

const SCHEDULE_COLUMNS: &str =
    "id, name, cron, timezone, enabled, spec, next_run_at, last_run_id, last_run_at, created_at";

#[derive(sqlx::FromRow)]
struct ScheduleRow {
    id: i64,
    name: String,
    cron: String,
    timezone: String,
    enabled: bool,
    spec: String,
    next_run_at: Option<Ts>,
    last_run_id: Option<i64>,
    last_run_at: Option<Ts>,
    created_at: Ts,
}

impl TryFrom<ScheduleRow> for Schedule {
    type Error = StoreError;
    fn try_from(r: ScheduleRow) -> Result<Self, StoreError> {
        Ok(Schedule {
            id: ScheduleId(r.id),
            name: r.name,
            cron: r.cron,
            timezone: r.timezone,
            enabled: r.enabled,
            run: serde_json::from_str(&r.spec)
                .map_err(|e| StoreError::Corrupt(format!("schedules.spec: {e}")))?,
            next_run_at: r.next_run_at.map(|t| t.0),
            last_run_id: r.last_run_id.map(RewardsRunId),
            last_run_at: r.last_run_at.map(|t| t.0),
            created_at: r.created_at.0,
        })
    }
}

/// A schedule's occurrence being turned into a run: the run is only made when the schedule
/// still expects `due` (another node did not take it first), and the schedule moves on to
/// `next` in the same transaction.
#[derive(Debug, Clone, Copy)]
pub struct ScheduleTurn {
    /// The schedule.
    pub schedule: ScheduleId,
    /// The occurrence being started.
    pub due: OffsetDateTime,
    /// The one after it.
    pub next: Option<OffsetDateTime>,
}

/// Which snapshots to list.
#[derive(Debug, Clone, Default)]
pub struct SnapshotFilter {
    /// Of this run.
    pub run: Option<RewardsRunId>,
    /// Of this account.
    pub account: Option<AccountId>,
    /// With this status.
    pub status: Option<CheckStatus>,
    /// With ids above this (to page through a run).
    pub after: Option<i64>,
    /// At most this many (up to 10,000).
    pub limit: u32,
}

/// What a run still has to do.
#[derive(Debug, Clone)]
pub struct RunWork {
    /// The run.
    pub run: RewardsRun,
    /// Accounts not yet checked in it, in selection order.
    pub remaining: Vec<AccountId>,
}

impl Store {
    /// Writes a run over `accounts` and its job in one transaction. With `turn`, the run is
    /// only made if the schedule still expects that occurrence (`Ok(None)` otherwise).
    pub async fn create_rewards_run(
        &self,
        spec: &NewRewardsRun,
        accounts: &[AccountId],
        skipped: i64,
        concurrency: u32,
        created_by: Option<OperatorId>,
        turn: Option<ScheduleTurn>,
    ) -> Result<Option<RewardsRun>, StoreError> {
        let now = Ts::now();
        let spec_json = serde_json::to_string(spec)
            .map_err(|e| StoreError::Corrupt(format!("rewards run spec: {e}")))?;
        let ids: Vec<i64> = accounts.iter().map(|a| a.get()).collect();
        let accounts_json = serde_json::to_string(&ids)
            .map_err(|e| StoreError::Corrupt(format!("rewards run accounts: {e}")))?;
        let mut tx = self.begin().await?;
        if let Some(turn) = turn {
            let taken = write!(&mut tx, |c| {
                sqlx::query(
                    "UPDATE schedules SET next_run_at = $3, last_run_at = $4, updated_at = $4 \
                     WHERE id = $1 AND enabled AND next_run_at = $2",
                )
                .bind(turn.schedule.get())
                .bind(Ts(turn.due))
                .bind(turn.next.map(Ts))
                .bind(now)
                .execute(c)
                .await
                .map(|r| r.rows_affected())
            })?;
            if taken == 0 {
                return Ok(None);
            }
        }
        let finished = accounts.is_empty();
        let id: i64 = write!(&mut tx, |c| {
            sqlx::query_scalar(
                "INSERT INTO rewards_runs (storefront_id, schedule_id, spec, accounts, state, total, skipped, \
                 concurrency, rate_limit, created_by, created_at, started_at, finished_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) RETURNING id",
            )
            .bind(spec.accounts.storefront_id.get())
            .bind(turn.map(|t| t.schedule.get()))
            .bind(&spec_json)
            .bind(&accounts_json)
            .bind(if finished { "finished" } else { "running" })
            .bind(ids.len() as i64)
            .bind(skipped)
            .bind(i64::from(concurrency))
            .bind(spec.rate_limit)
            .bind(created_by.map(|o| o.get()))
            .bind(now)
            .bind(finished.then_some(now))
            .fetch_one(c)
            .await
        })
        .map_err(StoreError::on_write("rewards run", "accounts.storefront_id"))?;
        if let Some(turn) = turn {
            write!(&mut tx, |c| {
                sqlx::query("UPDATE schedules SET last_run_id = $2 WHERE id = $1")
                    .bind(turn.schedule.get())
                    .bind(id)
                    .execute(c)
                    .await
                    .map(|r| r.rows_affected())
            })?;
        }
        if !finished {
            let job = NewJob {
                priority: 0,
                max_attempts: 10,
                unique_key: Some(format!("{REWARDS_JOB}:{id}")),
                ..NewJob::new(REWARDS_JOB, serde_json::json!({ "run": id }))
            };
            crate::jobs::enqueue_in(&mut tx, &job).await?;
        }
        let run: RunRow = tx
            .row_by_id(RUN_COLUMNS, "rewards_runs", id, "rewards run")
            .await?;
        tx.commit().await?;
        run.try_into().map(Some)
    }

    /// One run.
    pub async fn rewards_run(&self, id: RewardsRunId) -> Result<RewardsRun, StoreError> {
        let row: RunRow = self
            .db
            .row_by_id(RUN_COLUMNS, "rewards_runs", id.get(), "rewards run")
            .await?;
        row.try_into()
    }

    /// Runs, newest first, optionally of one storefront; `before` pages back by id.
    pub async fn rewards_runs(
        &self,
        storefront: Option<StorefrontId>,
        before: Option<RewardsRunId>,
        limit: u32,
    ) -> Result<Vec<RewardsRun>, StoreError> {
        let mut sql = Sql::new(&format!(
            "SELECT {RUN_COLUMNS} FROM rewards_runs WHERE 1 = 1"
        ));
        if let Some(s) = storefront {
            sql.push(" AND storefront_id = ").arg(Arg::Int(s.get()));
        }
        if let Some(b) = before {
            sql.push(" AND id < ").arg(Arg::Int(b.get()));
        }
        sql.push(" ORDER BY id DESC LIMIT ")
            .arg(Arg::Int(i64::from(limit.clamp(1, 500))));
        let rows: Vec<RunRow> = self.db.rows(&sql).await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// The run and the accounts it has not checked yet; marks it started.
    pub async fn rewards_run_work(&self, id: RewardsRunId) -> Result<RunWork, StoreError> {
        let mut tx = self.begin().await?;
        write!(&mut tx, |c| {
            sqlx::query(
                "UPDATE rewards_runs SET started_at = COALESCE(started_at, $2) WHERE id = $1",
            )
            .bind(id.get())
            .bind(Ts::now())
            .execute(c)
            .await
            .map(|r| r.rows_affected())
        })?;
        let run: RunRow = tx
            .row_by_id(RUN_COLUMNS, "rewards_runs", id.get(), "rewards run")
            .await?;
        let accounts: String = write!(&mut tx, |c| {
            sqlx::query_scalar("SELECT accounts FROM rewards_runs WHERE id = $1")
                .bind(id.get())
                .fetch_one(c)
                .await
        })?;
        let done: Vec<i64> = write!(&mut tx, |c| {
            sqlx::query_scalar("SELECT account_id FROM rewards_snapshots WHERE run_id = $1")
                .bind(id.get())
                .fetch_all(c)
                .await
        })?;
        tx.commit().await?;
        let all: Vec<i64> = serde_json::from_str(&accounts)
            .map_err(|e| StoreError::Corrupt(format!("rewards_runs.accounts: {e}")))?;
        let done: std::collections::HashSet<i64> = done.into_iter().collect();
        Ok(RunWork {
            run: run.try_into()?,
            remaining: all
                .into_iter()
                .filter(|a| !done.contains(a))
                .map(AccountId)
                .collect(),
        })
    }

    /// Records checks of a run in one transaction: their snapshots, the accounts' points, tier,
    /// session state and refreshed cookies, and the run's counts (finishing it when every
    /// account is checked). A check already recorded for the run is ignored. Returns the run.
    pub async fn record_checks(
        &self,
        run: RewardsRunId,
        checks: &[(NewSnapshot, Option<CookieJar>)],
    ) -> Result<RewardsRun, StoreError> {
        let sealed: Vec<Option<(Vec<u8>, String)>> = checks
            .iter()
            .map(|(s, jar)| {
                jar.as_ref()
                    .map(|j| crate::accounts::sealed_jar(self, j, s.account_id))
                    .transpose()
            })
            .collect::<Result<_, _>>()?;
        let mut tx = self.begin().await?;
        tx.touch(crate::db::Topic::Accounts);
        let mut inserted = std::collections::HashSet::new();
        for chunk in checks.chunks(200) {
            let mut sql = Sql::new(
                "INSERT INTO rewards_snapshots (run_id, account_id, status, points, tier, http_status, error, duration_ms, checked_at) VALUES ",
            );
            for (i, (s, _)) in chunk.iter().enumerate() {
                sql.values_row(
                    i == 0,
                    [
                        Some(Arg::Int(run.get())),
                        Some(Arg::Int(s.account_id.get())),
                        Some(Arg::Text(s.status.as_str().into())),
                        s.points.map(Arg::Int),
                        s.tier.clone().map(Arg::Text),
                        s.http_status.map(|c| Arg::Int(i64::from(c))),
                        s.error.clone().map(Arg::Text),
                        Some(Arg::Int(s.duration_ms)),
                        Some(Arg::Ts(s.checked_at)),
                    ],
                );
            }
            sql.push(" ON CONFLICT DO NOTHING RETURNING account_id");
            let ids: Vec<i64> = write!(&mut tx, |c| {
                bind_args!(
                    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.text.clone())),
                    &sql.args
                )
                .fetch_all(c)
                .await
            })
            .map_err(StoreError::on_write("snapshot", "account_id"))?;
            inserted.extend(ids);
        }
        let (mut ok, mut logged_out, mut failed, mut points) = (0i64, 0i64, 0i64, 0i64);
        for ((s, _), sealed) in checks.iter().zip(&sealed) {
            if !inserted.remove(&s.account_id.get()) {
                continue;
            }
            match s.status {
                CheckStatus::Ok => {
                    ok += 1;
                    points += s.points.unwrap_or(0);
                }
                CheckStatus::LoggedOut => logged_out += 1,
                CheckStatus::Failed => failed += 1,
            }
            update_account(&mut tx, s, sealed.as_ref()).await?;
        }
        // One statement: the counts, and the end of the run when this batch completes it
        // (SET reads the row as it was, on both backends).
        let sql = format!(
            "UPDATE rewards_runs SET checked = checked + $2, ok = ok + $3, logged_out = logged_out + $4, \
             failed = failed + $5, points_total = points_total + $6, \
             state = CASE WHEN state = 'running' AND checked + $2 >= total THEN 'finished' ELSE state END, \
             finished_at = CASE WHEN state = 'running' AND checked + $2 >= total THEN $7 ELSE finished_at END \
             WHERE id = $1 RETURNING {RUN_COLUMNS}"
        );
        let row: RunRow = write!(&mut tx, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(run.get())
                .bind(ok + logged_out + failed)
                .bind(ok)
                .bind(logged_out)
                .bind(failed)
                .bind(points)
                .bind(Ts::now())
                .fetch_one(c)
                .await
        })
        .map_err(|e| match e {
            sqlx::Error::RowNotFound => StoreError::not_found("rewards run", run.get()),
            e => e.into(),
        })?;
        tx.commit().await?;
        row.try_into()
    }

    /// Cancels a running run: checks under way finish, nothing more starts.
    pub async fn cancel_rewards_run(&self, id: RewardsRunId) -> Result<RewardsRun, StoreError> {
        let mut tx = self.begin().await?;
        let row: RunRow = tx
            .row_by_id(RUN_COLUMNS, "rewards_runs", id.get(), "rewards run")
            .await?;
        if row.state != RunState::Running.as_str() {
            return Err(StoreError::Refused {
                field: "state".into(),
                message: format!("the run is {}, not running", row.state),
            });
        }
        let now = Ts::now();
        write!(&mut tx, |c| {
            sqlx::query(
                "UPDATE rewards_runs SET state = 'cancelled', finished_at = $2 WHERE id = $1",
            )
            .bind(id.get())
            .bind(now)
            .execute(c)
            .await
            .map(|r| r.rows_affected())
        })?;
        write!(&mut tx, |c| {
            sqlx::query(
                "UPDATE jobs SET state = 'cancelled', finished_at = $2 WHERE unique_key = $1 AND state = 'queued'",
            )
            .bind(format!("{REWARDS_JOB}:{id}"))
            .bind(now)
            .execute(c)
            .await
            .map(|r| r.rows_affected())
        })?;
        let row: RunRow = tx
            .row_by_id(RUN_COLUMNS, "rewards_runs", id.get(), "rewards run")
            .await?;
        tx.commit().await?;
        row.try_into()
    }

    /// Snapshots, oldest first within the filter.
    pub async fn snapshots(&self, filter: &SnapshotFilter) -> Result<Vec<Snapshot>, StoreError> {
        let mut sql = Sql::new(
            "SELECT s.id, s.run_id, s.account_id, a.label AS account_label, s.status, s.points, s.tier, \
             s.http_status, s.error, s.duration_ms, s.checked_at \
             FROM rewards_snapshots s LEFT JOIN accounts a ON a.id = s.account_id WHERE 1 = 1",
        );
        if let Some(r) = filter.run {
            sql.push(" AND s.run_id = ").arg(Arg::Int(r.get()));
        }
        if let Some(a) = filter.account {
            sql.push(" AND s.account_id = ").arg(Arg::Int(a.get()));
        }
        if let Some(s) = filter.status {
            sql.push(" AND s.status = ")
                .arg(Arg::Text(s.as_str().into()));
        }
        if let Some(after) = filter.after {
            sql.push(" AND s.id > ").arg(Arg::Int(after));
        }
        sql.push(" ORDER BY s.id LIMIT ")
            .arg(Arg::Int(i64::from(filter.limit.clamp(1, 10_000))));
        let rows: Vec<SnapshotRow> = self.db.rows(&sql).await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Every result of a run, in the order recorded (for exports).
    pub async fn run_snapshots(&self, run: RewardsRunId) -> Result<Vec<Snapshot>, StoreError> {
        let mut all = Vec::new();
        loop {
            let page = self
                .snapshots(&SnapshotFilter {
                    run: Some(run),
                    after: all.last().map(|s: &Snapshot| s.id),
                    limit: 10_000,
                    ..Default::default()
                })
                .await?;
            let full = page.len() == 10_000;
            all.extend(page);
            if !full {
                return Ok(all);
            }
        }
    }

    /// Points over time across a storefront's accounts: per day, the sum of each account's
    /// last points read that day. For charts.
    pub async fn points_by_day(
        &self,
        storefront: Option<StorefrontId>,
        days: u32,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let since = Ts(OffsetDateTime::now_utc() - time::Duration::days(i64::from(days)));
        let day = self.db.backend().day_of("s.checked_at");
        let sql = format!(
            "SELECT day, CAST(SUM(points) AS BIGINT) FROM ( \
               SELECT {day} AS day, s.account_id, s.points, \
                 ROW_NUMBER() OVER (PARTITION BY {day}, s.account_id ORDER BY s.id DESC) AS n \
               FROM rewards_snapshots s JOIN accounts a ON a.id = s.account_id \
               WHERE s.status = 'ok' AND s.checked_at >= $1 AND ($2 IS NULL OR a.storefront_id = $2) \
             ) AS last WHERE n = 1 GROUP BY day ORDER BY day"
        );
        let rows: Vec<(String, i64)> = read!(&self.db, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(since)
                .bind(storefront.map(|s| s.get()))
                .fetch_all(c)
                .await
        })?;
        Ok(rows)
    }

    /// How many accounts there are and their current points in total, for the overview.
    pub async fn account_totals(&self) -> Result<(i64, i64), StoreError> {
        let (count, points): (i64, Option<i64>) = read!(&self.db, |c| {
            sqlx::query_as("SELECT COUNT(*), CAST(SUM(points) AS BIGINT) FROM accounts")
                .fetch_one(c)
                .await
        })?;
        Ok((count, points.unwrap_or(0)))
    }

    /// Cookies of many accounts, unsealed, for the rewards checker.
    pub async fn account_jars(
        &self,
        ids: &[AccountId],
    ) -> Result<Vec<(AccountId, Option<CookieJar>)>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let mut sql = Sql::new("SELECT id, cookies FROM accounts WHERE id IN (");
            for (i, id) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.arg(Arg::Int(id.get()));
            }
            sql.push(")");
            let rows: Vec<(i64, Option<Vec<u8>>)> = read!(&self.db, |c| {
                bind_args!(
                    sqlx::query_as(sqlx::AssertSqlSafe(sql.text.clone())),
                    &sql.args
                )
                .fetch_all(c)
                .await
            })?;
            let mut jars: std::collections::HashMap<i64, Option<CookieJar>> = rows
                .into_iter()
                .map(|(id, sealed)| {
                    Ok((
                        id,
                        sealed
                            .map(|s| self.open_jar(AccountId(id), &s))
                            .transpose()?,
                    ))
                })
                .collect::<Result<_, StoreError>>()?;
            out.extend(
                chunk
                    .iter()
                    .map(|id| (*id, jars.remove(&id.get()).flatten())),
            );
        }
        Ok(out)
    }

    /// Makes a schedule; `next` is its first occurrence.
    pub async fn create_schedule(
        &self,
        spec: &NewSchedule,
        next: OffsetDateTime,
        created_by: Option<OperatorId>,
    ) -> Result<Schedule, StoreError> {
        let spec_json = serde_json::to_string(&spec.run)
            .map_err(|e| StoreError::Corrupt(format!("schedule spec: {e}")))?;
        let now = Ts::now();
        let mut tx = self.begin().await?;
        let id: i64 = write!(&mut tx, |c| {
            sqlx::query_scalar(
                "INSERT INTO schedules (name, cron, timezone, enabled, spec, next_run_at, created_by, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id",
            )
            .bind(spec.name.as_str())
            .bind(spec.cron.trim())
            .bind(&spec.timezone)
            .bind(spec.enabled)
            .bind(&spec_json)
            .bind(spec.enabled.then_some(Ts(next)))
            .bind(created_by.map(|o| o.get()))
            .bind(now)
            .fetch_one(c)
            .await
        })
        .map_err(StoreError::on_write("schedule", "run"))?;
        let row: ScheduleRow = tx
            .row_by_id(SCHEDULE_COLUMNS, "schedules", id, "schedule")
            .await?;
        tx.commit().await?;
        row.try_into()
    }

    /// Replaces a schedule's settings; `next` is its next occurrence.
    pub async fn update_schedule(
        &self,
        id: ScheduleId,
        spec: &NewSchedule,
        next: OffsetDateTime,
    ) -> Result<Schedule, StoreError> {
        let spec_json = serde_json::to_string(&spec.run)
            .map_err(|e| StoreError::Corrupt(format!("schedule spec: {e}")))?;
        let mut tx = self.begin().await?;
        let n = write!(&mut tx, |c| {
            sqlx::query(
                "UPDATE schedules SET name = $2, cron = $3, timezone = $4, enabled = $5, spec = $6, \
                 next_run_at = $7, updated_at = $8 WHERE id = $1",
            )
            .bind(id.get())
            .bind(spec.name.as_str())
            .bind(spec.cron.trim())
            .bind(&spec.timezone)
            .bind(spec.enabled)
            .bind(&spec_json)
            .bind(spec.enabled.then_some(Ts(next)))
            .bind(Ts::now())
            .execute(c)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(StoreError::on_write("schedule", "run"))?;
        if n == 0 {
            return Err(StoreError::not_found("schedule", id.get()));
        }
        let row: ScheduleRow = tx
            .row_by_id(SCHEDULE_COLUMNS, "schedules", id.get(), "schedule")
            .await?;
        tx.commit().await?;
        row.try_into()
    }

    /// Moves a schedule past an occurrence that could not start a run.
    pub async fn skip_schedule_turn(&self, turn: ScheduleTurn) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        write!(&mut tx, |c| {
            sqlx::query(
                "UPDATE schedules SET next_run_at = $3, updated_at = $4 \
                 WHERE id = $1 AND next_run_at = $2",
            )
            .bind(turn.schedule.get())
            .bind(Ts(turn.due))
            .bind(turn.next.map(Ts))
            .bind(Ts::now())
            .execute(c)
            .await
            .map(|r| r.rows_affected())
        })?;
        tx.commit().await
    }

    /// One schedule.
    pub async fn schedule(&self, id: ScheduleId) -> Result<Schedule, StoreError> {
        let row: ScheduleRow = self
            .db
            .row_by_id(SCHEDULE_COLUMNS, "schedules", id.get(), "schedule")
            .await?;
        row.try_into()
    }

    /// Every schedule, by name.
    pub async fn schedules(&self) -> Result<Vec<Schedule>, StoreError> {
        let sql = Sql::new(&format!(
            "SELECT {SCHEDULE_COLUMNS} FROM schedules ORDER BY name"
        ));
        let rows: Vec<ScheduleRow> = self.db.rows(&sql).await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Enabled schedules whose next occurrence is at or before `now`.
    pub async fn due_schedules(&self, now: OffsetDateTime) -> Result<Vec<Schedule>, StoreError> {
        let mut sql = Sql::new(&format!(
            "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE enabled AND next_run_at <= "
        ));
        sql.arg(Arg::Ts(now))
            .push(" ORDER BY next_run_at LIMIT 100");
        let rows: Vec<ScheduleRow> = self.db.rows(&sql).await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// The earliest next occurrence of any enabled schedule.
    pub async fn next_schedule_at(&self) -> Result<Option<OffsetDateTime>, StoreError> {
        let at: Option<Ts> = read!(&self.db, |c| {
            sqlx::query_scalar("SELECT MIN(next_run_at) FROM schedules WHERE enabled")
                .fetch_one(c)
                .await
        })?;
        Ok(at.map(|t| t.0))
    }

    /// Deletes a schedule; the runs it started stay.
    pub async fn delete_schedule(&self, id: ScheduleId) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        tx.delete_by_id("schedules", id.get(), "schedule").await?;
        tx.commit().await
    }
}

async fn update_account(
    tx: &mut Tx,
    s: &NewSnapshot,
    sealed: Option<&(Vec<u8>, String)>,
) -> Result<(), StoreError> {
    let status = match s.status {
        CheckStatus::Ok => Some("ok"),
        CheckStatus::LoggedOut => Some("logged_out"),
        CheckStatus::Failed => None,
    };
    let ok = s.status == CheckStatus::Ok;
    write!(tx, |c| {
        sqlx::query(
            "UPDATE accounts SET \
             points = CASE WHEN $2 THEN $3 ELSE points END, \
             tier = CASE WHEN $2 THEN $4 ELSE tier END, \
             session_status = COALESCE($5, session_status), \
             last_checked_at = $6, \
             cookies = COALESCE($7, cookies), cookie_info = COALESCE($8, cookie_info), updated_at = $6, \
             cookies_bound = cookies_bound OR $7 IS NOT NULL \
             WHERE id = $1",
        )
        .bind(s.account_id.get())
        .bind(ok)
        .bind(s.points)
        .bind(s.tier.as_deref())
        .bind(status)
        .bind(Ts(s.checked_at))
        .bind(sealed.map(|(b, _)| b.clone()))
        .bind(sealed.map(|(_, i)| i.clone()))
        .execute(c)
        .await
        .map(|r| r.rows_affected())
    })?;
    Ok(())
}
