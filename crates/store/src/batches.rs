//! Batches: written whole with their orders and jobs, read with their order counts in one
//! statement, stopped, paused and resumed, and their figures.

use crate::db::{Arg, Sql, Ts, Tx, bind_args, read, write};
use crate::{PageRequest, PageStart, Store, StoreError};
use cartwright_core::batch::{Batch, BatchState, BatchStats, NewBatch, OrderCounts};
use cartwright_core::ids::{AccountId, BatchId, OperatorId, StorefrontId};
use cartwright_core::order::{OrderMove, OrderState};

/// A batch row with its order counts, read by one statement: read apart, the counts could
/// come from after the last order's transaction and the row from before it (a batch shown
/// running with nothing left to run).
#[derive(sqlx::FromRow)]
struct BatchWithCounts {
    #[sqlx(flatten)]
    row: BatchRow,
    n_queued: i64,
    n_running: i64,
    n_placing: i64,
    n_placed: i64,
    n_failed: i64,
    n_cancelled: i64,
    n_skipped: i64,
    n_unresolved: i64,
    n_total: i64,
}

impl BatchWithCounts {
    fn into_batch(self) -> Result<Batch, StoreError> {
        let mut counts = OrderCounts::default();
        for (state, n) in [
            (OrderState::Queued, self.n_queued),
            (OrderState::Running, self.n_running),
            (OrderState::Placing, self.n_placing),
            (OrderState::Placed, self.n_placed),
            (OrderState::Failed, self.n_failed),
            (OrderState::Cancelled, self.n_cancelled),
            (OrderState::Skipped, self.n_skipped),
            (OrderState::Unresolved, self.n_unresolved),
        ] {
            add_count(&mut counts, state, n);
        }
        counts.total = self.n_total;
        self.row.into_batch(counts)
    }
}

/// Adds `n` orders in `state` to `counts` (not to the total).
fn add_count(counts: &mut OrderCounts, state: OrderState, n: i64) {
    let slot = match state {
        OrderState::Queued => &mut counts.queued,
        OrderState::Running => &mut counts.running,
        OrderState::Placing => &mut counts.placing,
        OrderState::Placed => &mut counts.placed,
        OrderState::Failed => &mut counts.failed,
        OrderState::Cancelled => &mut counts.cancelled,
        OrderState::Skipped => &mut counts.skipped,
        OrderState::Unresolved => &mut counts.unresolved,
    };
    *slot += n;
}

/// `SELECT` of the batches `page` picks (a query over `batches` returning [`BATCH_COLUMNS`]),
/// each with its order counts per state (`n_queued`, …), in `page`'s order.
fn batches_with_counts(page: &str) -> String {
    let sums: String = OrderState::ALL
        .iter()
        .map(|s| format!(", SUM(CASE WHEN state = '{s}' THEN 1 ELSE 0 END) AS {s}"))
        .collect();
    let picks: String = OrderState::ALL
        .iter()
        .map(|s| format!(", COALESCE(c.{s}, 0) AS n_{s}"))
        .collect();
    format!(
        "WITH page AS ({page}) \
         SELECT page.*{picks}, COALESCE(c.total, 0) AS n_total FROM page LEFT JOIN \
         (SELECT batch_id{sums}, COUNT(*) AS total FROM orders \
          WHERE batch_id IN (SELECT id FROM page) GROUP BY batch_id) c ON c.batch_id = page.id \
         ORDER BY page.id DESC"
    )
}

#[derive(sqlx::FromRow)]
struct BatchRow {
    id: i64,
    name: Option<String>,
    storefront_id: i64,
    spec: String,
    state: String,
    pause_reason: Option<String>,
    created_by: Option<i64>,
    created_at: Ts,
    updated_at: Ts,
    finished_at: Option<Ts>,
}

const BATCH_COLUMNS: &str = "id, name, storefront_id, spec, state, pause_reason, created_by, created_at, updated_at, finished_at";

impl BatchRow {
    fn into_batch(self, counts: OrderCounts) -> Result<Batch, StoreError> {
        Ok(Batch {
            id: BatchId(self.id),
            name: self.name,
            storefront_id: StorefrontId(self.storefront_id),
            spec: serde_json::from_str(&self.spec)
                .map_err(|e| StoreError::Corrupt(format!("batches.spec: {e}")))?,
            state: self.state.parse().map_err(StoreError::Corrupt)?,
            pause_reason: self.pause_reason,
            created_by: self.created_by.map(OperatorId),
            counts,
            created_at: self.created_at.0,
            updated_at: self.updated_at.0,
            finished_at: self.finished_at.map(|t| t.0),
        })
    }
}

#[derive(sqlx::FromRow)]
struct StatRow {
    state: String,
    error_class: Option<String>,
    total_minor: Option<i64>,
    discount_minor: Option<i64>,
    started_at: Option<Ts>,
    finished_at: Option<Ts>,
}

fn counts_from(states: &[OrderState]) -> OrderCounts {
    let mut c = OrderCounts::default();
    for state in states {
        add_count(&mut c, *state, 1);
        c.total += 1;
    }
    c
}

/// What a batch names, as the database holds it at one moment: what submitting one checks.
#[derive(Debug, Clone)]
pub struct BatchInputs {
    /// The storefront, if it exists.
    pub storefront: Option<cartwright_core::storefront::Storefront>,
    /// The products named that exist (of any storefront).
    pub products: Vec<cartwright_core::catalog::Product>,
    /// The address named, or the default one when none is; `None` when it does not exist.
    pub address: Option<cartwright_core::address::Address>,
}

impl Store {
    /// Reads what a batch names in one snapshot: its storefront, its products, its address
    /// (or the default).
    pub async fn batch_inputs(
        &self,
        storefront: StorefrontId,
        products: &[cartwright_core::ids::ProductId],
        address: Option<cartwright_core::ids::AddressId>,
    ) -> Result<BatchInputs, StoreError> {
        use crate::addresses::{ADDRESS_COLUMNS, AddressRow};
        use crate::products::{PRODUCT_COLUMNS, ProductRow};
        use crate::storefronts::{STOREFRONT_COLUMNS, StorefrontRow};
        let mut snap = self.db.snapshot().await?;
        let storefront: Option<StorefrontRow> = write!(&mut snap, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {STOREFRONT_COLUMNS} FROM storefronts WHERE id = $1"
            )))
            .bind(storefront.get())
            .fetch_optional(c)
            .await
        })?;
        let mut sql = Sql::new(&format!(
            "SELECT {PRODUCT_COLUMNS} FROM products WHERE id IN (NULL"
        ));
        for id in products {
            sql.push(", ").arg(Arg::Int(id.get()));
        }
        sql.push(")");
        let product_rows: Vec<ProductRow> = write!(&mut snap, |c| {
            bind_args!(
                sqlx::query_as(sqlx::AssertSqlSafe(sql.text.clone())),
                &sql.args
            )
            .fetch_all(c)
            .await
        })?;
        let sql = format!(
            "SELECT {ADDRESS_COLUMNS} FROM addresses WHERE {}",
            if address.is_some() {
                "id = $1"
            } else {
                "is_default"
            }
        );
        let address: Option<AddressRow> = write!(&mut snap, |c| {
            let q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
            match address {
                Some(id) => q.bind(id.get()),
                None => q,
            }
            .fetch_optional(c)
            .await
        })?;
        Ok(BatchInputs {
            storefront: storefront.map(TryInto::try_into).transpose()?,
            products: product_rows
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            address: address.map(TryInto::try_into).transpose()?,
        })
    }

    /// Writes a batch, one order per account and repetition, and their jobs, in one
    /// transaction: either all of it exists or none. `skipped` accounts (inactive, no cookies)
    /// get orders already `skipped` with the reason, so the batch shows them.
    pub async fn create_batch(
        &self,
        spec: &NewBatch,
        accounts: &[AccountId],
        skipped: &[(AccountId, String)],
        created_by: Option<OperatorId>,
    ) -> Result<Batch, StoreError> {
        let now = Ts::now();
        let spec_json = serde_json::to_string(spec)
            .map_err(|e| StoreError::Corrupt(format!("batch spec: {e}")))?;
        let mut tx = self.begin().await?;
        let batch_id: i64 = write!(&mut tx, |c| {
            sqlx::query_scalar(
                "INSERT INTO batches (name, storefront_id, spec, state, created_by, created_at, updated_at) \
                 VALUES ($1, $2, $3, 'running', $4, $5, $5) RETURNING id",
            )
            .bind(spec.name.as_ref().map(|n| n.as_str().to_owned()))
            .bind(spec.accounts.storefront_id.get())
            .bind(&spec_json)
            .bind(created_by.map(|o| o.get()))
            .bind(now)
            .fetch_one(c)
            .await
        })
        .map_err(StoreError::on_write("batch", "accounts.storefront_id"))?;
        // Repetition-major: every account's first order comes before anyone's second, so the
        // orders of one account rarely wait on each other.
        let mut order_ids = Vec::with_capacity(accounts.len() * spec.repetitions as usize);
        for repetition in 1..=i64::from(spec.repetitions) {
            for chunk in accounts.chunks(500) {
                let mut sql = Sql::new(
                    "INSERT INTO orders (batch_id, account_id, repetition, state, created_at, updated_at) VALUES ",
                );
                for (i, account) in chunk.iter().enumerate() {
                    sql.values_row(
                        i == 0,
                        [
                            Some(Arg::Int(batch_id)),
                            Some(Arg::Int(account.get())),
                            Some(Arg::Int(repetition)),
                            Some(Arg::Text("queued".into())),
                            Some(Arg::Ts(now.0)),
                            Some(Arg::Ts(now.0)),
                        ],
                    );
                }
                sql.push(" RETURNING id");
                let ids: Vec<i64> = write!(&mut tx, |c| {
                    bind_args!(
                        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.text.clone())),
                        &sql.args
                    )
                    .fetch_all(c)
                    .await
                })
                .map_err(StoreError::on_write("order", "accounts"))?;
                order_ids.extend(ids);
            }
        }
        for (account, reason) in skipped {
            write!(&mut tx, |c| {
                sqlx::query(
                    "INSERT INTO orders (batch_id, account_id, repetition, state, error_message, created_at, updated_at, finished_at) \
                     VALUES ($1, $2, 1, 'skipped', $3, $4, $4, $4)",
                )
                .bind(batch_id)
                .bind(account.get())
                .bind(reason)
                .bind(now)
                .execute(c)
                .await
                .map(|r| r.rows_affected())
            })
            .map_err(StoreError::on_write("order", "accounts"))?;
        }
        order_ids.sort_unstable();
        for id in &order_ids {
            crate::jobs::enqueue_order_job(&mut tx, *id).await?;
        }
        if order_ids.is_empty() {
            finish_batch_if_done(&mut tx, batch_id).await?;
        }
        tx.commit().await?;
        self.analyze_jobs_after(order_ids.len()).await;
        self.batch(BatchId(batch_id)).await
    }

    /// A batch with its order counts.
    pub async fn batch(&self, id: BatchId) -> Result<Batch, StoreError> {
        let sql = batches_with_counts(&format!(
            "SELECT {BATCH_COLUMNS} FROM batches WHERE id = $1"
        ));
        let row: Option<BatchWithCounts> = read!(&self.db, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(id.get())
                .fetch_optional(c)
                .await
        })?;
        row.ok_or_else(|| StoreError::not_found("batch", id.get()))?
            .into_batch()
    }

    /// Batches, newest first.
    pub async fn batches(&self, page: &PageRequest) -> Result<crate::Page<Batch>, StoreError> {
        let mut sql = Sql::new(&format!("SELECT {BATCH_COLUMNS} FROM batches"));
        if let PageStart::After(cursor) = &page.start {
            sql.push(" WHERE id < ").arg(Arg::Int(cursor.id));
        }
        sql.push(" ORDER BY id DESC LIMIT ")
            .arg(Arg::Int(i64::from(page.per_page)));
        if let Some(offset) = page.offset() {
            sql.push(" OFFSET ").arg(Arg::Int(offset));
        }
        sql.text = batches_with_counts(&sql.text);
        let rows: Vec<BatchWithCounts> = self.db.rows(&sql).await?;
        let total: i64 = read!(&self.db, |c| sqlx::query_scalar(
            "SELECT COUNT(*) FROM batches"
        )
        .fetch_one(c)
        .await)?;
        let last = rows.last().map(|r| r.row.id);
        let items = rows
            .into_iter()
            .map(BatchWithCounts::into_batch)
            .collect::<Result<Vec<_>, _>>()?;
        let next = last.map(|id| crate::Cursor {
            sort: "id".into(),
            descending: true,
            value: None,
            id,
        });
        Ok(page.page_of(items, total, next))
    }

    /// their current step; an order whose final click is out completes.
    pub async fn stop_batch(&self, id: BatchId) -> Result<Batch, StoreError> {
        self.change_batch(id, BatchState::Stopped, None).await
    }

    /// Pauses a batch the engine cannot run (the browser does not start): queued orders wait.
    pub async fn pause_batch(&self, id: BatchId, reason: &str) -> Result<Batch, StoreError> {
        self.change_batch(id, BatchState::Paused, Some(reason))
            .await
    }

    async fn change_batch(
        &self,
        id: BatchId,
        to: BatchState,
        reason: Option<&str>,
    ) -> Result<Batch, StoreError> {
        let now = Ts::now();
        let mut tx = self.begin().await?;
        let state = lock_batch(&mut tx, id.get()).await?;
        if !matches!(state, BatchState::Running | BatchState::Paused) || state == to {
            return Err(StoreError::Refused {
                field: "state".into(),
                message: format!(
                    "the batch is {}: only a running or paused batch can be {}",
                    state.as_str(),
                    to.as_str()
                ),
            });
        }
        write!(&mut tx, |c| {
            sqlx::query(
                "UPDATE batches SET state = $2, pause_reason = $3, updated_at = $4 WHERE id = $1",
            )
            .bind(id.get())
            .bind(to.as_str())
            .bind(reason)
            .bind(now)
            .execute(c)
            .await
            .map(|r| r.rows_affected())
        })?;
        crate::jobs::cancel_waiting_order_jobs(&mut tx, id).await?;
        if to == BatchState::Stopped {
            // The waiting orders are cancelled (the `Cancel` move, from `queued` only: running
            // ones stop after their step, and a click in flight completes).
            debug_assert!(OrderMove::Cancel.from().contains(&OrderState::Queued));
            write!(&mut tx, |c| {
                sqlx::query(
                    "UPDATE orders SET state = 'cancelled', error_message = 'stopped by the operator', \
                     updated_at = $2, finished_at = $2 WHERE batch_id = $1 AND state = 'queued'",
                )
                .bind(id.get())
                .bind(now)
                .execute(c)
                .await
                .map(|r| r.rows_affected())
            })?;
        }
        tx.commit().await?;
        self.batch(id).await
    }

    /// Resumes a stopped or paused batch: what the stop cancelled is queued again (the
    /// `Resume` move; never an order whose final click went out and that a person settled as
    /// not placed), and every queued order gets its job back.
    pub async fn resume_batch(&self, id: BatchId) -> Result<Batch, StoreError> {
        let now = Ts::now();
        let mut tx = self.begin().await?;
        let state = lock_batch(&mut tx, id.get()).await?;
        if !matches!(state, BatchState::Stopped | BatchState::Paused) {
            return Err(StoreError::Refused {
                field: "state".into(),
                message: format!(
                    "the batch is {}: only a stopped or paused batch can be resumed",
                    state.as_str()
                ),
            });
        }
        set_running(&mut tx, id, now).await?;
        // One statement (each order row written once): what the stop cancelled waits again
        // (the `Resume` move), and held orders, waiting already, lose their message.
        let resume = format!(
            "UPDATE orders SET state = 'queued', error_message = NULL, updated_at = $2, \
             finished_at = NULL WHERE batch_id = $1 \
             AND (state = 'queued' OR (state IN ({}) AND placing_at IS NULL)) RETURNING id",
            OrderMove::Resume.from_sql()
        );
        let ids: Vec<i64> = write!(&mut tx, |c| {
            sqlx::query_scalar(sqlx::AssertSqlSafe(resume))
                .bind(id.get())
                .bind(now)
                .fetch_all(c)
                .await
        })?;
        enqueue_all(&mut tx, ids).await?;
        tx.commit().await?;
        self.batch(id).await
    }

    /// Queues a batch's failed orders again (the `RetryFailed` move), each with a new job and
    /// its runs counted afresh: never one whose final click went out. A finished batch runs
    /// again; a stopped or paused one is resumed first. The batch, and how many were queued.
    pub async fn retry_failed(&self, id: BatchId) -> Result<(Batch, usize), StoreError> {
        let now = Ts::now();
        let mut tx = self.begin().await?;
        let state = lock_batch(&mut tx, id.get()).await?;
        if matches!(state, BatchState::Stopped | BatchState::Paused) {
            return Err(StoreError::Refused {
                field: "state".into(),
                message: format!(
                    "the batch is {}: resume it first, then retry its failed orders",
                    state.as_str()
                ),
            });
        }
        let retry = format!(
            "UPDATE orders SET state = 'queued', attempts = 0, error_class = NULL, \
             error_message = NULL, updated_at = $2, finished_at = NULL \
             WHERE batch_id = $1 AND state IN ({}) AND placing_at IS NULL RETURNING id",
            OrderMove::RetryFailed.from_sql()
        );
        let ids: Vec<i64> = write!(&mut tx, |c| {
            sqlx::query_scalar(sqlx::AssertSqlSafe(retry))
                .bind(id.get())
                .bind(now)
                .fetch_all(c)
                .await
        })?;
        if ids.is_empty() {
            return Err(StoreError::Refused {
                field: "state".into(),
                message: "the batch has no failed order that can run again (one whose final click went out is settled, not retried)".into(),
            });
        }
        set_running(&mut tx, id, now).await?;
        let queued = ids.len();
        enqueue_all(&mut tx, ids).await?;
        tx.commit().await?;
        Ok((self.batch(id).await?, queued))
    }

    /// A batch's figures.
    pub async fn batch_stats(&self, id: BatchId) -> Result<BatchStats, StoreError> {
        let _: (i64,) = self
            .db
            .row_by_id("id", "batches", id.get(), "batch")
            .await?;
        let rows: Vec<StatRow> = read!(&self.db, |c| {
            sqlx::query_as(
                "SELECT state, error_class, total_minor, discount_minor, started_at, finished_at FROM orders WHERE batch_id = $1",
            )
            .bind(id.get())
            .fetch_all(c)
            .await
        })?;
        let mut stats = BatchStats::default();
        let mut states: Vec<OrderState> = Vec::new();
        let mut durations = Vec::new();
        let (mut first, mut last) = (None::<Ts>, None::<Ts>);
        for StatRow {
            state,
            error_class: class,
            total_minor: total,
            discount_minor: discount,
            started_at: started,
            finished_at: finished,
        } in rows
        {
            if state == "placed" {
                stats.placed_total_minor += total.unwrap_or(0);
                stats.discount_minor += discount.unwrap_or(0);
            }
            if state == "failed" {
                *stats
                    .failed_by_class
                    .entry(class.unwrap_or_else(|| "unknown".into()))
                    .or_default() += 1;
            }
            if let (Some(s), Some(f)) = (started, finished)
                && matches!(state.as_str(), "placed" | "failed")
            {
                durations.push((f.0 - s.0).whole_milliseconds() as i64);
                first = Some(first.map_or(s, |x| x.min(s)));
                last = Some(last.map_or(f, |x| x.max(f)));
            }
            states.push(state.parse().map_err(StoreError::Corrupt)?);
        }
        stats.counts = counts_from(&states);
        durations.sort_unstable();
        if !durations.is_empty() {
            let at = |q: f64| durations[((durations.len() as f64 - 1.0) * q).round() as usize];
            stats.duration_p50_ms = Some(at(0.5));
            stats.duration_p95_ms = Some(at(0.95));
            stats.duration_mean_ms = Some(durations.iter().sum::<i64>() / durations.len() as i64);
        }
        if let (Some(f), Some(l)) = (first, last) {
            let minutes = (l.0 - f.0).as_seconds_f64() / 60.0;
            if minutes > 0.0 {
                stats.placed_per_minute = Some(stats.counts.placed as f64 / minutes);
            }
        }
        Ok(stats)
    }

    /// A batch's state alone: what a run checks between steps.
    pub async fn batch_state(&self, id: BatchId) -> Result<BatchState, StoreError> {
        let (state,): (String,) = self
            .db
            .row_by_id("state", "batches", id.get(), "batch")
            .await?;
        state.parse().map_err(StoreError::Corrupt)
    }
}

/// Reads a batch's state in a transaction, locking its row on PostgreSQL until the end
/// against stops, resumes and other runs' moves (`NO KEY UPDATE`: the events and orders that
/// refer to the batch are still written meanwhile).
/// Sets a batch running again (no pause reason, not finished).
async fn set_running(tx: &mut Tx, id: BatchId, now: Ts) -> Result<(), StoreError> {
    write!(tx, |c| {
        sqlx::query("UPDATE batches SET state = 'running', pause_reason = NULL, updated_at = $2, finished_at = NULL WHERE id = $1")
            .bind(id.get())
            .bind(now)
            .execute(c)
            .await
            .map(|r| r.rows_affected())
    })?;
    Ok(())
}

/// Gives each order a job, in id order (locks taken in one order everywhere).
async fn enqueue_all(tx: &mut Tx, mut ids: Vec<i64>) -> Result<(), StoreError> {
    ids.sort_unstable();
    for order in ids {
        crate::jobs::enqueue_order_job(tx, order).await?;
    }
    Ok(())
}

pub(crate) async fn lock_batch(tx: &mut Tx, batch: i64) -> Result<BatchState, StoreError> {
    let sql = format!(
        "SELECT state FROM batches WHERE id = $1{}",
        crate::db::RowLock::NoKeyUpdate.sql(tx.backend())
    );
    let state: Option<String> = write!(tx, |c| {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(batch)
            .fetch_optional(c)
            .await
    })?;
    let state = state.ok_or_else(|| StoreError::not_found("batch", batch))?;
    state.parse().map_err(StoreError::Corrupt)
}

/// Marks a running batch finished once none of its orders can move any more by itself.
pub(crate) async fn finish_batch_if_done(tx: &mut Tx, batch: i64) -> Result<(), StoreError> {
    let now = Ts::now();
    let sql = format!(
        "UPDATE batches SET state = 'finished', finished_at = $2, updated_at = $2 \
         WHERE id = $1 AND state = 'running' \
         AND NOT EXISTS (SELECT 1 FROM orders WHERE batch_id = $1 AND state IN ({}))",
        OrderState::open_sql()
    );
    write!(tx, |c| {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(batch)
            .bind(now)
            .execute(c)
            .await
            .map(|r| r.rows_affected())
    })?;
    Ok(())
}
