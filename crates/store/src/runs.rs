//! Batches, their orders and the event log. The order state machine of `core` is enforced in
//! SQL: every transition names the states it may start from, so two processes can never move
//! one order twice, and the final click is only allowed to an order that is `running` in a
//! batch that is still `running` (a stop wins over a click that has not been sent).

use crate::db::{Arg, Sql, Ts, Tx, bind_args, read, write};
use crate::jobs::NewJob;
use crate::{PageRequest, PageStart, Store, StoreError};
use cartwright_core::account::SessionStatus;
use cartwright_core::batch::{Batch, BatchState, BatchStats, NewBatch, OrderCounts};
use cartwright_core::cookies::CookieJar;
use cartwright_core::ids::{AccountId, BatchId, EventId, OperatorId, OrderId, StorefrontId};
use cartwright_core::order::{ErrorClass, Event, Level, NewEvent, Order, OrderState, Totals};
use std::collections::BTreeMap;

/// The job kind that runs one order.
pub const ORDER_JOB: &str = "order";
/// Orders come before rewards checks, after sign-in tests.
const ORDER_PRIORITY: i64 = 10;

fn order_key(id: i64) -> String {
    format!("order:{id}")
}

fn order_job(id: i64) -> NewJob {
    NewJob {
        priority: ORDER_PRIORITY,
        // The order counts its own runs (see `start_order`); the job's attempts only guard
        // against a run that crashes its worker every time.
        max_attempts: 1_000,
        unique_key: Some(order_key(id)),
        ..NewJob::new(ORDER_JOB, serde_json::json!({ "order": id }))
    }
}

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
    n_total: i64,
}

impl BatchWithCounts {
    fn into_batch(self) -> Result<Batch, StoreError> {
        self.row.into_batch(OrderCounts {
            queued: self.n_queued,
            running: self.n_running,
            placing: self.n_placing,
            placed: self.n_placed,
            failed: self.n_failed,
            cancelled: self.n_cancelled,
            skipped: self.n_skipped,
            total: self.n_total,
        })
    }
}

/// `SELECT` of the batches `page` picks (a query over `batches` returning [`BATCH_COLUMNS`]),
/// each with its order counts, in `page`'s order.
fn batches_with_counts(page: &str) -> String {
    let states = [
        "queued",
        "running",
        "placing",
        "placed",
        "failed",
        "cancelled",
        "skipped",
    ];
    let sums: String = states
        .iter()
        .map(|s| format!(", SUM(CASE WHEN state = '{s}' THEN 1 ELSE 0 END) AS {s}"))
        .collect();
    let picks: String = states
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
struct OrderRow {
    id: i64,
    batch_id: i64,
    account_id: i64,
    account: Option<String>,
    repetition: i64,
    state: String,
    attempts: i64,
    error_class: Option<String>,
    error_message: Option<String>,
    subtotal_minor: Option<i64>,
    discount_minor: Option<i64>,
    total_minor: Option<i64>,
    coupon: Option<String>,
    order_number: Option<String>,
    timings: Option<String>,
    screenshot: Option<String>,
    snapshot: Option<String>,
    created_at: Ts,
    updated_at: Ts,
    started_at: Option<Ts>,
    placing_at: Option<Ts>,
    finished_at: Option<Ts>,
}

const ORDER_SELECT: &str = "SELECT o.id, o.batch_id, o.account_id, COALESCE(a.label, a.email, a.phone) AS account, \
     o.repetition, o.state, o.attempts, o.error_class, o.error_message, o.subtotal_minor, o.discount_minor, \
     o.total_minor, o.coupon, o.order_number, o.timings, o.screenshot, o.snapshot, o.created_at, o.updated_at, \
     o.started_at, o.placing_at, o.finished_at FROM orders o JOIN accounts a ON a.id = o.account_id";

impl TryFrom<OrderRow> for Order {
    type Error = StoreError;
    fn try_from(r: OrderRow) -> Result<Self, StoreError> {
        Ok(Order {
            id: OrderId(r.id),
            batch_id: BatchId(r.batch_id),
            account_id: AccountId(r.account_id),
            account: r.account,
            repetition: u32::try_from(r.repetition).unwrap_or(0),
            state: r.state.parse().map_err(StoreError::Corrupt)?,
            attempts: u32::try_from(r.attempts).unwrap_or(0),
            error_class: r
                .error_class
                .map(|c| c.parse())
                .transpose()
                .map_err(StoreError::Corrupt)?,
            error_message: r.error_message,
            subtotal_minor: r.subtotal_minor,
            discount_minor: r.discount_minor,
            total_minor: r.total_minor,
            coupon: r.coupon,
            order_number: r.order_number,
            timings: match r.timings {
                Some(t) => serde_json::from_str(&t)
                    .map_err(|e| StoreError::Corrupt(format!("orders.timings: {e}")))?,
                None => BTreeMap::new(),
            },
            has_screenshot: r.screenshot.is_some(),
            has_snapshot: r.snapshot.is_some(),
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
            started_at: r.started_at.map(|t| t.0),
            placing_at: r.placing_at.map(|t| t.0),
            finished_at: r.finished_at.map(|t| t.0),
        })
    }
}

#[derive(sqlx::FromRow)]
struct EventRow {
    id: i64,
    batch_id: Option<i64>,
    order_id: Option<i64>,
    rewards_run_id: Option<i64>,
    account_id: Option<i64>,
    phase: Option<String>,
    step: Option<String>,
    level: String,
    message: String,
    at: Ts,
}

impl TryFrom<EventRow> for Event {
    type Error = StoreError;
    fn try_from(r: EventRow) -> Result<Self, StoreError> {
        Ok(Event {
            id: EventId(r.id),
            batch_id: r.batch_id.map(BatchId),
            order_id: r.order_id.map(OrderId),
            rewards_run_id: r.rewards_run_id.map(cartwright_core::ids::RewardsRunId),
            account_id: r.account_id.map(AccountId),
            phase: r.phase,
            step: r.step,
            level: r.level.parse().map_err(StoreError::Corrupt)?,
            message: r.message,
            at: r.at.0,
        })
    }
}

/// What a worker does with an order it picked up.
#[derive(Debug, Clone)]
pub enum OrderStart {
    /// Run it: it is now `running`, this is its run number `attempt`.
    Run(Box<OrderTicket>),
    /// It was `placing` when its run was lost: settle it from the storefront's history, never
    /// by clicking again.
    Resolve(Box<OrderTicket>),
    /// Another order of the same account is being run: try again shortly.
    Busy,
    /// Nothing to do, for this reason (final already, batch not running, out of attempts);
    /// the order's job has ended with this answer (a resume queues a new one).
    Nothing(String),
}

/// What a run needs about its order.
#[derive(Debug, Clone)]
pub struct OrderTicket {
    /// The order.
    pub order: Order,
    /// Its batch.
    pub batch: Batch,
    /// The history snapshot taken before the final click (only when resolving).
    pub history_before: Option<Vec<String>>,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub enum Finish {
    /// The storefront confirmed (or its history showed) this order number.
    Placed {
        /// The storefront's number.
        number: String,
    },
    /// Failed for good.
    Failed {
        /// Why, as a class.
        class: ErrorClass,
        /// Why, in words.
        message: String,
        /// The failure's screenshot, relative to the artifacts directory.
        screenshot: Option<String>,
        /// The page's HTML, relative to the artifacts directory.
        snapshot: Option<String>,
    },
    /// A transient failure, or a placing order the history shows was not placed: queued for
    /// another run.
    Retry {
        /// What went wrong.
        message: String,
    },
    /// Stopped by the operator before the final click (queued again instead when the batch
    /// was resumed meanwhile: [`Recorded::RunAgain`]).
    Cancelled,
    /// The batch paused (the browser cannot run): back to queued, to run on resume (in this
    /// run's job when the batch was resumed meanwhile: [`Recorded::RunAgain`]).
    Held {
        /// Why.
        message: String,
    },
}

/// What recording the end of a run did to its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// The order moved to this state.
    Moved(OrderState),
    /// The run stopped for a stop or pause, but the batch was resumed before the run recorded
    /// it: the order is queued again, and the run's job must run it once more.
    RunAgain,
    /// The order had already moved on (another process settled it); nothing changed.
    Stale,
}

/// An order's move as SQL needs it.
struct Transition<'a> {
    to: OrderState,
    /// The states it may move from, as an SQL list.
    from: &'static str,
    class: Option<ErrorClass>,
    message: Option<&'a str>,
    screenshot: Option<&'a str>,
    snapshot: Option<&'a str>,
    number: Option<&'a str>,
}

impl<'a> Transition<'a> {
    fn to(to: OrderState, from: &'static str, message: Option<&'a str>) -> Self {
        Transition {
            to,
            from,
            class: None,
            message,
            screenshot: None,
            snapshot: None,
            number: None,
        }
    }
}

impl Finish {
    fn transition(&self) -> Transition<'_> {
        let base = Transition::to;
        match self {
            Finish::Placed { number } => Transition {
                number: Some(number),
                ..base(OrderState::Placed, "'placing'", None)
            },
            Finish::Failed {
                class,
                message,
                screenshot,
                snapshot,
            } => Transition {
                class: Some(*class),
                screenshot: screenshot.as_deref(),
                snapshot: snapshot.as_deref(),
                ..base(
                    OrderState::Failed,
                    "'queued', 'running', 'placing'",
                    Some(message),
                )
            },
            Finish::Retry { message } => {
                base(OrderState::Queued, "'running', 'placing'", Some(message))
            }
            Finish::Held { message } => base(OrderState::Queued, "'running'", Some(message)),
            Finish::Cancelled => base(
                OrderState::Cancelled,
                "'queued', 'running'",
                Some("stopped by the operator"),
            ),
        }
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

/// What else a finishing run records.
#[derive(Debug, Clone, Default)]
pub struct RunRecord {
    /// The cart's figures, when read.
    pub totals: Option<Totals>,
    /// The coupon applied.
    pub coupon: Option<String>,
    /// Milliseconds per phase.
    pub timings: BTreeMap<String, u64>,
}

/// Which events to read.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Of this batch.
    pub batch: Option<BatchId>,
    /// Of this order.
    pub order: Option<OrderId>,
    /// Of this rewards run.
    pub rewards_run: Option<cartwright_core::ids::RewardsRunId>,
    /// At least this loud.
    pub min_level: Option<Level>,
    /// With ids above this.
    pub after: Option<EventId>,
    /// At most this many (up to 5,000).
    pub limit: u32,
}

/// Which orders to list.
#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    /// Of this batch.
    pub batch: Option<BatchId>,
    /// From this account.
    pub account: Option<AccountId>,
    /// In this state.
    pub state: Option<OrderState>,
}

fn counts_from(rows: &[(String, i64)]) -> OrderCounts {
    let mut c = OrderCounts::default();
    for (state, n) in rows {
        match state.as_str() {
            "queued" => c.queued += n,
            "running" => c.running += n,
            "placing" => c.placing += n,
            "placed" => c.placed += n,
            "failed" => c.failed += n,
            "cancelled" => c.cancelled += n,
            "skipped" => c.skipped += n,
            _ => {}
        }
        c.total += n;
    }
    c
}

impl Store {
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
            self.enqueue_in(&mut tx, &order_job(*id)).await?;
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

    /// One order.
    pub async fn order(&self, id: OrderId) -> Result<Order, StoreError> {
        let row: Option<OrderRow> = read!(&self.db, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{ORDER_SELECT} WHERE o.id = $1"
            )))
            .bind(id.get())
            .fetch_optional(c)
            .await
        })?;
        row.ok_or_else(|| StoreError::not_found("order", id.get()))?
            .try_into()
    }

    /// Orders, oldest first.
    pub async fn orders(
        &self,
        filter: &OrderFilter,
        page: &PageRequest,
    ) -> Result<crate::Page<Order>, StoreError> {
        let mut where_ = Sql::new(" WHERE 1 = 1");
        if let Some(b) = filter.batch {
            where_.push(" AND o.batch_id = ").arg(Arg::Int(b.get()));
        }
        if let Some(a) = filter.account {
            where_.push(" AND o.account_id = ").arg(Arg::Int(a.get()));
        }
        if let Some(s) = filter.state {
            where_
                .push(" AND o.state = ")
                .arg(Arg::Text(s.as_str().into()));
        }
        let count = Sql {
            text: format!("SELECT COUNT(*) FROM orders o{}", where_.text),
            args: where_.args.clone(),
        };
        let total = self.db.int(&count).await?;
        let mut sql = Sql {
            text: format!("{ORDER_SELECT}{}", where_.text),
            args: where_.args.clone(),
        };
        if let PageStart::After(cursor) = &page.start {
            sql.push(" AND o.id > ").arg(Arg::Int(cursor.id));
        }
        sql.push(" ORDER BY o.id LIMIT ")
            .arg(Arg::Int(i64::from(page.per_page)));
        if let Some(offset) = page.offset() {
            sql.push(" OFFSET ").arg(Arg::Int(offset));
        }
        let rows: Vec<OrderRow> = self.db.rows(&sql).await?;
        let last = rows.last().map(|r| r.id);
        let items = rows
            .into_iter()
            .map(Order::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let next = last.map(|id| crate::Cursor {
            sort: "id".into(),
            descending: false,
            value: None,
            id,
        });
        Ok(page.page_of(items, total, next))
    }

    /// The stored artifact paths of an order (screenshot, HTML), relative to the artifacts
    /// directory.
    pub async fn order_artifacts(
        &self,
        id: OrderId,
    ) -> Result<(Option<String>, Option<String>), StoreError> {
        let row: Option<(Option<String>, Option<String>)> = read!(&self.db, |c| {
            sqlx::query_as("SELECT screenshot, snapshot FROM orders WHERE id = $1")
                .bind(id.get())
                .fetch_optional(c)
                .await
        })?;
        row.ok_or_else(|| StoreError::not_found("order", id.get()))
    }

    /// Picks up an order for a run: decides whether to run it, resolve it, wait, or leave it,
    /// and moves it to `running` when it runs. One order per account runs at a time (the
    /// storefront keeps one cart per account); an order out of `max_runs` fails.
    pub async fn start_order(&self, id: OrderId, max_runs: u32) -> Result<OrderStart, StoreError> {
        let now = Ts::now();
        let mut tx = self.begin().await?;
        // The account and batch never change; the rest is read under their locks.
        let (account, batch_id): (i64, i64) = write!(&mut tx, |c| {
            sqlx::query_as("SELECT account_id, batch_id FROM orders WHERE id = $1")
                .bind(id.get())
                .fetch_optional(c)
                .await
        })?
        .ok_or_else(|| StoreError::not_found("order", id.get()))?;
        // Serialise the starts of one account's orders across processes.
        if let crate::db::TxConn::Postgres(t) = &mut tx.conn {
            sqlx::query("SELECT id FROM accounts WHERE id = $1 FOR UPDATE")
                .bind(account)
                .execute(&mut **t)
                .await?;
        }
        // Locked: a stop or resume of the batch waits for this decision, or comes before it.
        let batch_state = lock_batch(&mut tx, batch_id).await?;
        let (state, attempts, last_error): (String, i64, Option<String>) = write!(&mut tx, |c| {
            sqlx::query_as("SELECT state, attempts, error_message FROM orders WHERE id = $1")
                .bind(id.get())
                .fetch_one(c)
                .await
        })?;
        let state: OrderState = state.parse().map_err(StoreError::Corrupt)?;
        if state.is_final() {
            end_order_job(&mut tx, id).await?;
            tx.commit().await?;
            return Ok(OrderStart::Nothing(format!("the order is {state} already")));
        }
        if state == OrderState::Placing {
            let before: Option<String> = write!(&mut tx, |c| {
                sqlx::query_scalar("SELECT history_before FROM orders WHERE id = $1")
                    .bind(id.get())
                    .fetch_one(c)
                    .await
            })?;
            tx.commit().await?;
            let history_before = before.and_then(|b| serde_json::from_str(&b).ok());
            let ticket = self.ticket(id, BatchId(batch_id), history_before).await?;
            return Ok(OrderStart::Resolve(Box::new(ticket)));
        }
        if batch_state != BatchState::Running {
            // Its run was lost before the click, or a retry queued it, and the batch has been
            // stopped or paused since: what the stop or pause does to it.
            let finish = match batch_state {
                BatchState::Stopped => Some(Finish::Cancelled),
                BatchState::Paused if state == OrderState::Running => Some(Finish::Held {
                    message: "its run was lost while the batch was paused".into(),
                }),
                _ => None,
            };
            // A resume gives it a new job: this one ends with the transaction (with the
            // order's move, when there is one).
            match finish {
                Some(finish) => {
                    let batch = (batch_id, batch_state);
                    self.finish_in(&mut tx, id, batch, &finish, &RunRecord::default())
                        .await?;
                }
                None => end_order_job(&mut tx, id).await?,
            }
            tx.commit().await?;
            return Ok(OrderStart::Nothing(format!(
                "the batch is {}",
                batch_state.as_str()
            )));
        }
        let busy: bool = write!(&mut tx, |c| {
            sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM orders o JOIN jobs j ON j.unique_key = 'order:' || o.id \
                 AND j.state = 'running' WHERE o.account_id = $1 AND o.id <> $2 AND o.state IN ('running', 'placing'))",
            )
            .bind(account)
            .bind(id.get())
            .fetch_one(c)
            .await
        })?;
        if busy {
            return Ok(OrderStart::Busy);
        }
        if attempts >= i64::from(max_runs) {
            let message = format!(
                "gave up after {attempts} runs{}",
                last_error
                    .map(|e| format!("; the last: {e}"))
                    .unwrap_or_default()
            );
            let finish = Finish::Failed {
                class: ErrorClass::Transient,
                message: message.clone(),
                screenshot: None,
                snapshot: None,
            };
            self.finish_in(
                &mut tx,
                id,
                (batch_id, batch_state),
                &finish,
                &RunRecord::default(),
            )
            .await?;
            tx.commit().await?;
            return Ok(OrderStart::Nothing(message));
        }
        write!(&mut tx, |c| {
            sqlx::query(
                "UPDATE orders SET state = 'running', attempts = attempts + 1, started_at = $2, updated_at = $2 \
                 WHERE id = $1 AND state IN ('queued', 'running')",
            )
            .bind(id.get())
            .bind(now)
            .execute(c)
            .await
            .map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        let ticket = self.ticket(id, BatchId(batch_id), None).await?;
        Ok(OrderStart::Run(Box::new(ticket)))
    }

    async fn ticket(
        &self,
        id: OrderId,
        batch: BatchId,
        history_before: Option<Vec<String>>,
    ) -> Result<OrderTicket, StoreError> {
        Ok(OrderTicket {
            order: self.order(id).await?,
            batch: self.batch(batch).await?,
            history_before,
        })
    }

    /// Marks an order as `placing` just before the final click, with the account's order
    /// history as it stands. False when the click must not happen: the order is no longer
    /// running or its batch was stopped or paused.
    pub async fn mark_placing(
        &self,
        id: OrderId,
        history_before: &[String],
        record: &RunRecord,
    ) -> Result<bool, StoreError> {
        let now = Ts::now();
        let history = serde_json::to_string(history_before).unwrap_or_else(|_| "[]".into());
        let mut tx = self.begin().await?;
        let totals = record.totals.unwrap_or_default();
        let n = write!(&mut tx, |c| {
            sqlx::query(
                "UPDATE orders SET state = 'placing', history_before = $2, placing_at = $3, updated_at = $3, \
                 subtotal_minor = $4, discount_minor = $5, total_minor = $6, coupon = $7 \
                 WHERE id = $1 AND state = 'running' \
                 AND EXISTS (SELECT 1 FROM batches b WHERE b.id = orders.batch_id AND b.state = 'running')",
            )
            .bind(id.get())
            .bind(history)
            .bind(now)
            .bind(totals.subtotal_minor)
            .bind(totals.discount_minor)
            .bind(record.totals.map(|t| t.total_minor))
            .bind(record.coupon.as_deref())
            .execute(c)
            .await
            .map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Ends a run and says what that did to the order.
    pub async fn finish_order(
        &self,
        id: OrderId,
        finish: &Finish,
        record: &RunRecord,
    ) -> Result<Recorded, StoreError> {
        let mut tx = self.begin().await?;
        let batch: Option<i64> = write!(&mut tx, |c| {
            sqlx::query_scalar("SELECT batch_id FROM orders WHERE id = $1")
                .bind(id.get())
                .fetch_optional(c)
                .await
        })?;
        let Some(batch) = batch else {
            return Ok(Recorded::Stale);
        };
        // Locked: a stop or resume of the batch, and the batch's own end, see this move whole.
        let batch_state = lock_batch(&mut tx, batch).await?;
        let state = self
            .finish_in(&mut tx, id, (batch, batch_state), finish, record)
            .await?;
        tx.commit().await?;
        Ok(state)
    }

    /// Records a run's end in `tx`; the caller has locked the order's batch (`lock_batch`).
    async fn finish_in(
        &self,
        tx: &mut Tx,
        id: OrderId,
        (batch, batch_state): (i64, BatchState),
        finish: &Finish,
        record: &RunRecord,
    ) -> Result<Recorded, StoreError> {
        let now = Ts::now();
        let stopped_run = matches!(finish, Finish::Cancelled | Finish::Held { .. });
        let asked = finish.transition();
        let (transition, recorded) = match batch_state {
            // The batch was resumed after the run saw it stop or pause: the order runs again,
            // in the same job (the resume found it running and left it to this run).
            BatchState::Running if stopped_run => (
                Transition::to(OrderState::Queued, "'running'", None),
                Recorded::RunAgain,
            ),
            // A stopped batch keeps no order waiting: what would wait (a retry, a held run)
            // is cancelled, as the stop cancelled the queued ones.
            BatchState::Stopped if asked.to == OrderState::Queued => (
                Transition::to(
                    OrderState::Cancelled,
                    asked.from,
                    Some("stopped by the operator"),
                ),
                Recorded::Moved(OrderState::Cancelled),
            ),
            _ => {
                let to = asked.to;
                (asked, Recorded::Moved(to))
            }
        };
        // The job carries the order on after a retry or a resume; otherwise it ends with this
        // move (a resume queues a new one and must not find it live).
        let job_ends = match recorded {
            Recorded::RunAgain | Recorded::Stale => false,
            Recorded::Moved(to) => to.is_final() || !matches!(finish, Finish::Retry { .. }),
        };
        let Transition {
            to,
            from,
            class,
            message,
            screenshot,
            snapshot,
            number,
        } = transition;
        let timings = (!record.timings.is_empty())
            .then(|| serde_json::to_string(&record.timings).unwrap_or_default());
        let fin = to.is_final().then_some(now);
        let totals = record.totals;
        let sql = format!(
            "UPDATE orders SET state = $2, error_class = $3, error_message = $4, \
             screenshot = COALESCE($5, screenshot), snapshot = COALESCE($6, snapshot), \
             order_number = COALESCE($7, order_number), timings = COALESCE($8, timings), \
             subtotal_minor = COALESCE($9, subtotal_minor), discount_minor = COALESCE($10, discount_minor), \
             total_minor = COALESCE($11, total_minor), coupon = COALESCE($12, coupon), \
             updated_at = $13, finished_at = $14, \
             attempts = attempts - CASE WHEN $15 AND state = 'running' THEN 1 ELSE 0 END \
             WHERE id = $1 AND state IN ({from}) RETURNING batch_id"
        );
        let moved: Option<i64> = write!(tx, |c| {
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(id.get())
                .bind(to.as_str())
                .bind(class.map(ErrorClass::as_str))
                .bind(message)
                .bind(screenshot)
                .bind(snapshot)
                .bind(number)
                .bind(timings)
                .bind(totals.and_then(|t| t.subtotal_minor))
                .bind(totals.and_then(|t| t.discount_minor))
                .bind(totals.map(|t| t.total_minor))
                .bind(record.coupon.as_deref())
                .bind(now)
                .bind(fin)
                // A run the operator stopped, or a pause held, does not count toward the
                // order's runs.
                .bind(stopped_run)
                .fetch_optional(c)
                .await
        })?;
        if moved.is_none() {
            return Ok(Recorded::Stale);
        }
        if job_ends {
            end_order_job(tx, id).await?;
        }
        if to.is_final() {
            finish_batch_if_done(tx, batch).await?;
        }
        Ok(recorded)
    }

    /// Stops a batch: queued orders are cancelled with their jobs; running orders stop after
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
        write!(&mut tx, |c| {
            sqlx::query(
                "UPDATE jobs SET state = 'cancelled', finished_at = $2 WHERE state = 'queued' AND unique_key IN \
                 (SELECT 'order:' || id FROM orders WHERE batch_id = $1 AND state = 'queued')",
            )
            .bind(id.get())
            .bind(now)
            .execute(c)
            .await
            .map(|r| r.rows_affected())
        })?;
        if to == BatchState::Stopped {
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

    /// Resumes a stopped or paused batch: cancelled orders are queued again and every queued
    /// order gets its job back.
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
        write!(&mut tx, |c| {
            sqlx::query("UPDATE batches SET state = 'running', pause_reason = NULL, updated_at = $2, finished_at = NULL WHERE id = $1")
                .bind(id.get())
                .bind(now)
                .execute(c)
                .await
                .map(|r| r.rows_affected())
        })?;
        let ids: Vec<i64> = write!(&mut tx, |c| {
            sqlx::query_scalar(
                "UPDATE orders SET state = 'queued', error_message = NULL, updated_at = $2, finished_at = NULL \
                 WHERE batch_id = $1 AND state IN ('cancelled', 'queued') RETURNING id",
            )
            .bind(id.get())
            .bind(now)
            .fetch_all(c)
            .await
        })?;
        let mut ids = ids;
        ids.sort_unstable();
        for order in ids {
            self.enqueue_in(&mut tx, &order_job(order)).await?;
        }
        tx.commit().await?;
        self.batch(id).await
    }

    /// Gives a job back to every unfinished order of a running batch that has none (its job
    /// failed for good after crashing its workers, or was lost), and to every `placing` order
    /// whatever its batch: they must be settled. Returns how many were enqueued.
    pub async fn sweep_orders(&self) -> Result<usize, StoreError> {
        let ids: Vec<i64> = read!(&self.db, |c| {
            sqlx::query_scalar(
                "SELECT o.id FROM orders o JOIN batches b ON b.id = o.batch_id \
                 WHERE (o.state = 'placing' OR (o.state IN ('queued', 'running') AND b.state = 'running')) \
                 AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.unique_key = 'order:' || o.id AND j.state IN ('queued', 'running')) \
                 ORDER BY o.id",
            )
            .fetch_all(c)
            .await
        })?;
        if ids.is_empty() {
            return Ok(0);
        }
        let jobs: Vec<NewJob> = ids.into_iter().map(order_job).collect();
        self.enqueue_many(&jobs).await
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
        let mut states: Vec<(String, i64)> = Vec::new();
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
            states.push((state, 1));
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

    /// Stores events; returns them with their ids, in order.
    pub async fn insert_events(&self, events: &[NewEvent]) -> Result<Vec<Event>, StoreError> {
        let mut out = Vec::with_capacity(events.len());
        if events.is_empty() {
            return Ok(out);
        }
        let mut tx = self.begin().await?;
        for chunk in events.chunks(400) {
            let mut sql = Sql::new(
                "INSERT INTO events (batch_id, order_id, rewards_run_id, account_id, phase, step, level, message, at) VALUES ",
            );
            for (i, e) in chunk.iter().enumerate() {
                sql.values_row(
                    i == 0,
                    [
                        e.batch_id.map(|b| Arg::Int(b.get())),
                        e.order_id.map(|o| Arg::Int(o.get())),
                        e.rewards_run_id.map(|r| Arg::Int(r.get())),
                        e.account_id.map(|a| Arg::Int(a.get())),
                        e.phase.clone().map(Arg::Text),
                        e.step.clone().map(Arg::Text),
                        Some(Arg::Text(e.level.as_str().into())),
                        Some(Arg::Text(e.message.clone())),
                        Some(Arg::Ts(e.at)),
                    ],
                );
            }
            sql.push(" RETURNING id");
            let ids: Vec<i64> = tx.ints(&sql).await?;
            for (id, e) in ids.into_iter().zip(chunk) {
                out.push(Event {
                    id: EventId(id),
                    batch_id: e.batch_id,
                    order_id: e.order_id,
                    rewards_run_id: e.rewards_run_id,
                    account_id: e.account_id,
                    phase: e.phase.clone(),
                    step: e.step.clone(),
                    level: e.level,
                    message: e.message.clone(),
                    at: Ts::from(e.at).0,
                });
            }
        }
        out.sort_by_key(|e| e.id);
        if let crate::db::TxConn::Postgres(t) = &mut tx.conn {
            // Every process streams events from these notifications, its own included: they
            // arrive once the insert commits, in commit order.
            for payload in notify_payloads(&out) {
                sqlx::query("SELECT pg_notify('cartwright_events', $1)")
                    .bind(payload)
                    .execute(&mut **t)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    /// On PostgreSQL, the events every process stores, as they commit (this process's
    /// included); `None` on SQLite, where one process writes and streams them itself.
    pub fn listen_events(&self) -> Option<tokio::sync::mpsc::Receiver<Vec<Event>>> {
        let crate::db::Db::Postgres(pool) = &self.db else {
            return None;
        };
        let pool = pool.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        tokio::spawn(async move {
            while !tx.is_closed() {
                let listen = async {
                    let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
                    listener.listen("cartwright_events").await?;
                    loop {
                        let n = listener.recv().await?;
                        match serde_json::from_str::<Vec<Event>>(n.payload()) {
                            Ok(events) => {
                                if tx.send(events).await.is_err() {
                                    return Ok(());
                                }
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "an event notification did not parse")
                            }
                        }
                    }
                };
                let result: Result<(), sqlx::Error> = listen.await;
                if let Err(e) = result {
                    if pool.is_closed() {
                        return;
                    }
                    tracing::debug!(error = %e, "event listener reconnecting");
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
            }
        });
        Some(rx)
    }

    /// Events in id order.
    pub async fn events(&self, query: &EventQuery) -> Result<Vec<Event>, StoreError> {
        let mut sql = Sql::new(
            "SELECT id, batch_id, order_id, rewards_run_id, account_id, phase, step, level, message, at FROM events WHERE 1 = 1",
        );
        if let Some(b) = query.batch {
            sql.push(" AND batch_id = ").arg(Arg::Int(b.get()));
        }
        if let Some(o) = query.order {
            sql.push(" AND order_id = ").arg(Arg::Int(o.get()));
        }
        if let Some(r) = query.rewards_run {
            sql.push(" AND rewards_run_id = ").arg(Arg::Int(r.get()));
        }
        if let Some(after) = query.after {
            sql.push(" AND id > ").arg(Arg::Int(after.get()));
        }
        if let Some(min) = query.min_level {
            let levels: Vec<&str> = [Level::Debug, Level::Info, Level::Warn, Level::Error]
                .into_iter()
                .filter(|l| *l >= min)
                .map(Level::as_str)
                .collect();
            sql.push(" AND level IN (");
            for (i, l) in levels.iter().enumerate() {
                sql.push(if i == 0 { "" } else { ", " })
                    .arg(Arg::Text((*l).into()));
            }
            sql.push(")");
        }
        sql.push(" ORDER BY id LIMIT ")
            .arg(Arg::Int(i64::from(query.limit.clamp(1, 5_000))));
        let rows: Vec<EventRow> = self.db.rows(&sql).await?;
        rows.into_iter().map(Event::try_from).collect()
    }

    /// A batch's state alone: what a run checks between steps.
    pub async fn batch_state(&self, id: BatchId) -> Result<BatchState, StoreError> {
        let (state,): (String,) = self
            .db
            .row_by_id("state", "batches", id.get(), "batch")
            .await?;
        state.parse().map_err(StoreError::Corrupt)
    }

    /// The storefront order numbers already recorded for an account's orders: a number in
    /// the account's history that is one of these is not a new order.
    pub async fn account_order_numbers(&self, id: AccountId) -> Result<Vec<String>, StoreError> {
        read!(&self.db, |c| {
            sqlx::query_scalar("SELECT order_number FROM orders WHERE account_id = $1 AND order_number IS NOT NULL")
                .bind(id.get())
                .fetch_all(c)
                .await
        })
        .map_err(Into::into)
    }

    /// Fills in an account's details as its storefront profile shows them (a sign-in test):
    /// only values that parse are kept; a value another account of the storefront already has
    /// is a conflict.
    pub async fn record_account_details(
        &self,
        id: AccountId,
        email: Option<&str>,
        phone: Option<&str>,
        name: Option<&str>,
    ) -> Result<cartwright_core::account::Account, StoreError> {
        use cartwright_core::patch::Patch;
        use cartwright_core::values::{Email, Phone, Text};
        let patch = cartwright_core::account::AccountPatch {
            email: email
                .and_then(|e| Email::parse(e).ok())
                .map_or(Patch::Keep, Patch::Set),
            phone: phone
                .and_then(|p| Phone::parse(p).ok())
                .map_or(Patch::Keep, Patch::Set),
            name: name
                .and_then(|n| Text::parse(n).ok())
                .map_or(Patch::Keep, Patch::Set),
            ..Default::default()
        };
        self.update_account(id, &patch).await
    }

    /// Records what a run learnt about an account's session: its state, and the cookies the
    /// storefront refreshed (sealed), when there are any.
    pub async fn record_session(
        &self,
        id: AccountId,
        status: SessionStatus,
        jar: Option<&CookieJar>,
    ) -> Result<(), StoreError> {
        let sealed = jar
            .map(|j| crate::accounts::sealed_jar(self, j))
            .transpose()?;
        let mut tx = self.begin().await?;
        tx.touch(crate::db::Topic::Accounts);
        let n = write!(&mut tx, |c| {
            sqlx::query(
                "UPDATE accounts SET session_status = $2, cookies = COALESCE($3, cookies), \
                 cookie_info = COALESCE($4, cookie_info), updated_at = $5 WHERE id = $1",
            )
            .bind(id.get())
            .bind(status.as_str())
            .bind(sealed.as_ref().map(|(s, _)| s.clone()))
            .bind(sealed.as_ref().map(|(_, i)| i.clone()))
            .bind(Ts::now())
            .execute(c)
            .await
            .map(|r| r.rows_affected())
        })?;
        if n == 0 {
            return Err(StoreError::not_found("account", id.get()));
        }
        tx.commit().await
    }
}

/// Events as JSON arrays under PostgreSQL's 8,000-byte notification limit; long messages are
/// cut in the notification (the stored event keeps them whole).
fn notify_payloads(events: &[Event]) -> Vec<String> {
    const LIMIT: usize = 7_000;
    let mut out = Vec::new();
    let mut current = String::from("[");
    for e in events {
        let mut e = e.clone();
        if e.message.len() > 1_500 {
            let mut cut = 1_500;
            while !e.message.is_char_boundary(cut) {
                cut -= 1;
            }
            e.message.truncate(cut);
            e.message.push('…');
        }
        let json = serde_json::to_string(&e).unwrap_or_default();
        if current.len() + json.len() + 2 > LIMIT && current.len() > 1 {
            current.push(']');
            out.push(std::mem::replace(&mut current, String::from("[")));
        }
        if current.len() > 1 {
            current.push(',');
        }
        current.push_str(&json);
    }
    if current.len() > 1 {
        current.push(']');
        out.push(current);
    }
    out
}

/// Reads a batch's state in a transaction, locking its row on PostgreSQL until the end
/// against stops, resumes and other runs' moves (`NO KEY UPDATE`: the events and orders that
/// refer to the batch are still written meanwhile).
async fn lock_batch(tx: &mut Tx, batch: i64) -> Result<BatchState, StoreError> {
    let lock = match tx.conn {
        crate::db::TxConn::Postgres(_) => " FOR NO KEY UPDATE",
        crate::db::TxConn::Sqlite(_) => "",
    };
    let sql = format!("SELECT state FROM batches WHERE id = $1{lock}");
    let state: Option<String> = write!(tx, |c| {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(batch)
            .fetch_optional(c)
            .await
    })?;
    let state = state.ok_or_else(|| StoreError::not_found("batch", batch))?;
    state.parse().map_err(StoreError::Corrupt)
}

/// Ends the running job of an order, in the transaction that takes the order out of its
/// care: a resume in between would otherwise find the job live, add none, and the order would
/// wait with no job once this one completes.
async fn end_order_job(tx: &mut Tx, order: OrderId) -> Result<(), StoreError> {
    let now = Ts::now();
    write!(tx, |c| {
        sqlx::query(
            "UPDATE jobs SET state = 'done', finished_at = $2 WHERE unique_key = $1 AND state = 'running'",
        )
        .bind(order_key(order.get()))
        .bind(now)
        .execute(c)
        .await
        .map(|r| r.rows_affected())
    })?;
    Ok(())
}

/// Marks a running batch finished once none of its orders can move any more.
async fn finish_batch_if_done(tx: &mut Tx, batch: i64) -> Result<(), StoreError> {
    let now = Ts::now();
    write!(tx, |c| {
        sqlx::query(
            "UPDATE batches SET state = 'finished', finished_at = $2, updated_at = $2 \
             WHERE id = $1 AND state = 'running' \
             AND NOT EXISTS (SELECT 1 FROM orders WHERE batch_id = $1 AND state IN ('queued', 'running', 'placing'))",
        )
        .bind(batch)
        .bind(now)
        .execute(c)
        .await
        .map(|r| r.rows_affected())
    })?;
    Ok(())
}
