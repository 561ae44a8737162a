//! An order's lifecycle in the store: picking it up for a run, recording the final click,
//! the evidence gathered after it, a run's end, a person's decision, and the sweep that gives
//! every open order a job. Every change of state is one of core's [`OrderMove`]s and takes
//! its source states from it (`WHERE state IN (…)`), so two processes never move one order
//! twice and the store makes no move core does not know.

use crate::batches::{finish_batch_if_done, lock_batch};
use crate::db::{Arg, Sql, Ts, Tx, read, write};
use crate::jobs::{Lease, end_order_job, enqueue_order_job, hold_lease};
use crate::{PageRequest, PageStart, Store, StoreError};
use cartwright_core::batch::{Batch, BatchState};
use cartwright_core::ids::{AccountId, BatchId, OrderId};
use cartwright_core::order::{ErrorClass, Order, OrderMove, OrderState, Totals};
use cartwright_core::placing::{Refusal, Settling};
use std::collections::BTreeMap;

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
    settling: Option<String>,
}

const ORDER_SELECT: &str = "SELECT o.id, o.batch_id, o.account_id, COALESCE(a.label, a.email, a.phone) AS account, \
     o.repetition, o.state, o.attempts, o.error_class, o.error_message, o.subtotal_minor, o.discount_minor, \
     o.total_minor, o.coupon, o.order_number, o.timings, o.screenshot, o.snapshot, o.created_at, o.updated_at, \
     o.started_at, o.placing_at, o.finished_at, o.settling FROM orders o JOIN accounts a ON a.id = o.account_id";

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
            settling: r
                .settling
                .map(|s| {
                    serde_json::from_str(&s)
                        .map_err(|e| StoreError::Corrupt(format!("orders.settling: {e}")))
                })
                .transpose()?,
        })
    }
}

/// What a worker does with an order it picked up.
#[derive(Debug, Clone)]
pub enum OrderStart {
    /// Run it: it is now `running`, this is its run number `attempt`.
    Run(Box<OrderTicket>),
    /// Its final click may have gone out: settle it from the storefront's history, never by
    /// clicking again.
    Resolve(Box<OrderTicket>),
    /// Another order of the same account is being run or settled: try again shortly (later
    /// when that one's final click is being settled, which can take long).
    Busy {
        /// The order in the way is `placing`.
        settling: bool,
    },
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

/// How a run ended: each is one [`OrderMove`].
#[derive(Debug, Clone)]
pub enum Finish {
    /// The storefront confirmed this order number, or its history showed it (`Confirm`).
    Placed {
        /// The storefront's number.
        number: String,
        /// The evidence, when it was settled from the history.
        settling: Option<Settling>,
    },
    /// Failed for good before the final click (`Fail`).
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
    /// A transient failure before the final click: queued for another run (`Retry`).
    Retry {
        /// What went wrong.
        message: String,
    },
    /// Stopped by the operator before the final click (`Cancel`; queued again instead when
    /// the batch was resumed meanwhile: [`Recorded::RunAgain`]).
    Cancelled,
    /// The batch paused (the browser cannot run): back to queued, to run on resume (`Hold`;
    /// in this run's job when the batch was resumed meanwhile: [`Recorded::RunAgain`]).
    Held {
        /// Why.
        message: String,
    },
    /// The history, read over the profile's window, proves the click placed nothing: it
    /// runs again (`RunAgain`).
    NotPlaced {
        /// The evidence.
        settling: Settling,
    },
    /// The storefront refused the click and the history proves it placed nothing
    /// (`Refused`).
    Refused {
        /// The refusal.
        refusal: Refusal,
        /// The evidence.
        settling: Settling,
        /// The page when it refused.
        screenshot: Option<String>,
        /// Its HTML.
        snapshot: Option<String>,
    },
    /// The evidence cannot settle it: a person must (`Unresolve`).
    Unresolved {
        /// Why.
        message: String,
        /// The evidence.
        settling: Option<Settling>,
        /// The page when it was given up.
        screenshot: Option<String>,
        /// Its HTML.
        snapshot: Option<String>,
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
    /// The order had already moved on (another process settled it, or a person did);
    /// nothing changed.
    Stale,
}

/// What recording the final click found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marked {
    /// The order is `placing`: the click may go.
    Placing,
    /// The order no longer runs, or its batch was stopped or paused: no click.
    Stopped,
    /// This worker's lease on the job ran out (another worker may have the order now): no
    /// click, and nothing of this run may be recorded.
    LeaseLost,
}

/// A person's decision about an order whose final click went out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// It was placed, with this storefront number when known.
    Placed {
        /// The storefront's number.
        number: Option<String>,
    },
    /// It was not placed; `run_again` places it now (otherwise it is cancelled).
    NotPlaced {
        /// Queue it for another run.
        run_again: bool,
    },
}

impl Resolution {
    fn order_move(&self) -> OrderMove {
        match self {
            Resolution::Placed { .. } => OrderMove::ResolvePlaced,
            Resolution::NotPlaced { run_again: true } => OrderMove::ResolveRunAgain,
            Resolution::NotPlaced { run_again: false } => OrderMove::ResolveNotPlaced,
        }
    }
}

/// An order's move as SQL needs it.
struct Change<'a> {
    by: OrderMove,
    class: Option<ErrorClass>,
    message: Option<&'a str>,
    screenshot: Option<&'a str>,
    snapshot: Option<&'a str>,
    number: Option<&'a str>,
    settling: Option<&'a Settling>,
}

impl<'a> Change<'a> {
    fn new(by: OrderMove, message: Option<&'a str>) -> Self {
        Change {
            by,
            class: None,
            message,
            screenshot: None,
            snapshot: None,
            number: None,
            settling: None,
        }
    }
}

impl Finish {
    fn change(&self) -> Change<'_> {
        match self {
            Finish::Placed { number, settling } => Change {
                number: Some(number),
                settling: settling.as_ref(),
                ..Change::new(OrderMove::Confirm, None)
            },
            Finish::Failed {
                class,
                message,
                screenshot,
                snapshot,
            } => Change {
                class: Some(*class),
                screenshot: screenshot.as_deref(),
                snapshot: snapshot.as_deref(),
                ..Change::new(OrderMove::Fail, Some(message))
            },
            Finish::Retry { message } => Change::new(OrderMove::Retry, Some(message)),
            Finish::Held { message } => Change::new(OrderMove::Hold, Some(message)),
            Finish::Cancelled => Change::new(OrderMove::Cancel, Some("stopped by the operator")),
            Finish::NotPlaced { settling } => Change {
                settling: Some(settling),
                ..Change::new(
                    OrderMove::RunAgain,
                    Some("the history shows the final click placed nothing: it runs again"),
                )
            },
            Finish::Refused {
                refusal,
                settling,
                screenshot,
                snapshot,
            } => Change {
                class: Some(refusal.class),
                settling: Some(settling),
                screenshot: screenshot.as_deref(),
                snapshot: snapshot.as_deref(),
                ..Change::new(OrderMove::Refused, Some(&refusal.message))
            },
            Finish::Unresolved {
                message,
                settling,
                screenshot,
                snapshot,
            } => Change {
                settling: settling.as_ref(),
                screenshot: screenshot.as_deref(),
                snapshot: snapshot.as_deref(),
                ..Change::new(OrderMove::Unresolve, Some(message))
            },
        }
    }
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

impl Store {
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

    /// An order of `account` that waits, runs or is being settled (the shop's cart and history
    /// of the account are, or are about to be, in use), with its batch: what a rehearsal must
    /// not run beside.
    pub async fn account_order_in_flight(
        &self,
        account: cartwright_core::ids::AccountId,
    ) -> Result<Option<(OrderId, BatchId, OrderState)>, StoreError> {
        let row: Option<(i64, i64, String)> = read!(&self.db, |c| {
            sqlx::query_as(
                "SELECT id, batch_id, state FROM orders WHERE account_id = $1 \
                 AND state IN ('queued', 'running', 'placing') ORDER BY id LIMIT 1",
            )
            .bind(account.get())
            .fetch_optional(c)
            .await
        })?;
        row.map(|(id, batch, state)| {
            Ok((
                OrderId(id),
                BatchId(batch),
                state.parse().map_err(StoreError::Corrupt)?,
            ))
        })
        .transpose()
    }

    /// Picks up an order for a run: decides whether to run it, settle it, wait, or leave it,
    /// and moves it to `running` when it runs. One order per account is run or settled at a
    /// time (the storefront keeps one cart and one history per account: an order settled
    /// while another of its account runs could take that one's number); an order out of
    /// `max_runs` fails.
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
        // Serialise the starts of one account's orders across processes (`NO KEY UPDATE`: the
        // foreign-key checks of writes to the account's orders still pass meanwhile).
        tx.lock_row("accounts", account, crate::db::RowLock::NoKeyUpdate)
            .await?;
        // Locked: a stop or resume of the batch waits for this decision, or comes before it.
        let batch_state = lock_batch(&mut tx, batch_id).await?;
        let (state, attempts, last_error, before): (String, i64, Option<String>, Option<String>) =
            write!(&mut tx, |c| {
                sqlx::query_as(
                    "SELECT state, attempts, error_message, history_before FROM orders WHERE id = $1",
                )
                .bind(id.get())
                .fetch_one(c)
                .await
            })?;
        let state: OrderState = state.parse().map_err(StoreError::Corrupt)?;
        if state.is_final() {
            end_order_job(&mut tx, id.get()).await?;
            tx.commit().await?;
            return Ok(OrderStart::Nothing(format!("the order is {state} already")));
        }
        if state == OrderState::Placing {
            // Settled whatever the batch's state, but not while another order of the account
            // is being run or settled.
            if account_busy(&mut tx, account, id, true).await?.is_some() {
                return Ok(OrderStart::Busy { settling: false });
            }
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
                None => end_order_job(&mut tx, id.get()).await?,
            }
            tx.commit().await?;
            return Ok(OrderStart::Nothing(format!(
                "the batch is {}",
                batch_state.as_str()
            )));
        }
        if let Some(in_the_way) = account_busy(&mut tx, account, id, false).await? {
            return Ok(OrderStart::Busy {
                settling: in_the_way == OrderState::Placing,
            });
        }
        let max_runs = batch_max_runs(&mut tx, batch_id).await?.unwrap_or(max_runs);
        if attempts >= i64::from(max_runs) {
            let message = format!(
                "gave up after {attempts} run{}{}",
                if attempts == 1 { "" } else { "s" },
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
        let sql = format!(
            "UPDATE orders SET state = 'running', attempts = attempts + 1, started_at = $2, updated_at = $2 \
             WHERE id = $1 AND state IN ({})",
            OrderMove::Start.from_sql()
        );
        write!(&mut tx, |c| {
            sqlx::query(sqlx::AssertSqlSafe(sql))
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
    /// history as it stands — only while the order runs, its batch runs, and this worker holds
    /// its job's lease, all checked in the one transaction that records it.
    pub async fn mark_placing(
        &self,
        id: OrderId,
        lease: &Lease,
        history_before: &[String],
        record: &RunRecord,
    ) -> Result<Marked, StoreError> {
        let now = Ts::now();
        let history = serde_json::to_string(history_before).unwrap_or_else(|_| "[]".into());
        let mut tx = self.begin().await?;
        // Locks in the one order: batch (a stop waits for the click's record, or wins), then
        // job, then order.
        let batch: Option<i64> = write!(&mut tx, |c| {
            sqlx::query_scalar("SELECT batch_id FROM orders WHERE id = $1")
                .bind(id.get())
                .fetch_optional(c)
                .await
        })?;
        let Some(batch) = batch else {
            return Ok(Marked::Stopped);
        };
        if lock_batch(&mut tx, batch).await? != BatchState::Running {
            return Ok(Marked::Stopped);
        }
        if !hold_lease(&mut tx, lease).await? {
            return Ok(Marked::LeaseLost);
        }
        let totals = record.totals.unwrap_or_default();
        let sql = format!(
            "UPDATE orders SET state = 'placing', history_before = $2, placing_at = $3, updated_at = $3, \
             subtotal_minor = $4, discount_minor = $5, total_minor = $6, coupon = $7, settling = NULL \
             WHERE id = $1 AND state IN ({})",
            OrderMove::MarkPlacing.from_sql(),
        );
        let n = write!(&mut tx, |c| {
            sqlx::query(sqlx::AssertSqlSafe(sql))
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
        Ok(if n == 1 {
            Marked::Placing
        } else {
            Marked::Stopped
        })
    }

    /// The database's clock: when a look at the history happened, so that the absence
    /// window is measured by one clock whichever node looks.
    pub async fn clock_now(&self) -> Result<time::OffsetDateTime, StoreError> {
        let sql = format!("SELECT {}", self.backend().clock());
        let now: Ts = read!(&self.db, |c| {
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(c)
                .await
        })?;
        Ok(now.0)
    }

    /// Keeps the evidence gathered so far about a `placing` order (false when it is no longer
    /// placing, someone settled it meanwhile, or this worker's lease on its job ran out).
    pub async fn record_settling(
        &self,
        id: OrderId,
        settling: &Settling,
        lease: &Lease,
    ) -> Result<bool, StoreError> {
        let json = serde_json::to_string(settling)
            .map_err(|e| StoreError::Corrupt(format!("settling: {e}")))?;
        let mut tx = self.begin().await?;
        if !hold_lease(&mut tx, lease).await? {
            return Ok(false);
        }
        let n = write!(&mut tx, |c| {
            sqlx::query(
                "UPDATE orders SET settling = $2, updated_at = $3 WHERE id = $1 AND state = 'placing'",
            )
            .bind(id.get())
            .bind(json)
            .bind(Ts::now())
            .execute(c)
            .await
            .map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Ends a run and says what that did to the order. A run records its end only while it
    /// holds its job's `lease` (checked in the same transaction): a run whose lease ran out
    /// may have been taken over, and its end is [`Recorded::Stale`].
    pub async fn finish_order(
        &self,
        id: OrderId,
        finish: &Finish,
        record: &RunRecord,
        lease: Option<&Lease>,
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
        // (Locks are taken batch, then job, then order, everywhere.)
        let batch_state = lock_batch(&mut tx, batch).await?;
        // A confirmed number is evidence whoever holds the job now: it lands (from `placing`
        // only, as ever). Everything else needs the lease.
        let evidence = matches!(finish, Finish::Placed { .. });
        if let Some(lease) = lease
            && !evidence
            && !hold_lease(&mut tx, lease).await?
        {
            return Ok(Recorded::Stale);
        }
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
        let stopped_run = matches!(finish, Finish::Cancelled | Finish::Held { .. });
        let asked = finish.change();
        let (change, recorded) = match batch_state {
            // The batch was resumed after the run saw it stop or pause: the order runs again,
            // in the same job (the resume found it running and left it to this run).
            BatchState::Running if stopped_run => {
                (Change::new(OrderMove::Hold, None), Recorded::RunAgain)
            }
            // A stopped batch keeps no run waiting: a retry or a held run is cancelled, as the
            // stop cancelled the queued ones. (An order proven not placed after its click waits
            // queued for a resume: the stop did not cancel it, its click was in flight.)
            BatchState::Stopped if matches!(asked.by, OrderMove::Retry | OrderMove::Hold) => (
                Change::new(OrderMove::Cancel, Some("stopped by the operator")),
                Recorded::Moved(OrderState::Cancelled),
            ),
            _ => {
                let to = asked.by.to();
                (asked, Recorded::Moved(to))
            }
        };
        let timings = (!record.timings.is_empty())
            .then(|| serde_json::to_string(&record.timings).unwrap_or_default());
        // A run the operator stopped, or a pause held, does not count toward the order's runs.
        if !move_order(tx, id, &change, record, timings.as_deref(), stopped_run).await? {
            return Ok(Recorded::Stale);
        }
        // The job carries the order on after a retry or a resume; otherwise it ends with this
        // move (a resume queues a new one and must not find it live).
        let job_ends = match recorded {
            Recorded::RunAgain | Recorded::Stale => false,
            Recorded::Moved(to) => {
                to.is_final()
                    || batch_state != BatchState::Running
                    || !matches!(finish, Finish::Retry { .. } | Finish::NotPlaced { .. })
            }
        };
        if job_ends {
            end_order_job(tx, id.get()).await?;
        }
        if let Recorded::Moved(to) = recorded
            && to.is_final()
        {
            finish_batch_if_done(tx, batch).await?;
        }
        Ok(recorded)
    }

    /// A person settles an order whose final click went out (`placing` or `unresolved`):
    /// placed, or not placed (cancelled, or queued for another run). Audited as `actor`.
    pub async fn resolve_order(
        &self,
        id: OrderId,
        actor: &crate::audit::Actor,
        resolution: &Resolution,
        note: Option<&str>,
    ) -> Result<Order, StoreError> {
        let by = resolution.order_move();
        let mut tx = self.begin().await?;
        let (batch, state): (i64, String) = write!(&mut tx, |c| {
            sqlx::query_as("SELECT batch_id, state FROM orders WHERE id = $1")
                .bind(id.get())
                .fetch_optional(c)
                .await
        })?
        .ok_or_else(|| StoreError::not_found("order", id.get()))?;
        let batch_state = lock_batch(&mut tx, batch).await?;
        let state: OrderState = state.parse().map_err(StoreError::Corrupt)?;
        if !by.from().contains(&state) {
            return Err(StoreError::Refused {
                field: "state".into(),
                message: if by == OrderMove::ResolveRunAgain && state == OrderState::Placing {
                    "the order is still being settled from the history: it can be run again only once it is unresolved".into()
                } else {
                    format!(
                        "the order is {state}: only an order whose final click went out (placing or unresolved) is settled by hand"
                    )
                },
            });
        }
        // Not while a run has it: its click may be in flight, or a look under way.
        let running_now: bool = write!(&mut tx, |c| {
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT {}",
                crate::jobs::order_job_running_sql("$1")
            )))
            .bind(id.get())
            .fetch_one(c)
            .await
        })?;
        if running_now {
            return Err(StoreError::Refused {
                field: "state".into(),
                message: "a worker is looking at this order right now (its click may be in flight): try again in a moment".into(),
            });
        }
        let message = match resolution {
            Resolution::Placed { .. } => format!("{} settled it as placed", actor.name),
            Resolution::NotPlaced { run_again: true } => {
                format!("{} settled it as not placed: it runs again", actor.name)
            }
            Resolution::NotPlaced { run_again: false } => {
                format!("{} settled it as not placed", actor.name)
            }
        };
        let number = match resolution {
            Resolution::Placed { number } => number.as_deref(),
            Resolution::NotPlaced { .. } => None,
        };
        let change = Change {
            number,
            ..Change::new(by, Some(&message))
        };
        // A settling run still going has its job ended: its answers are stale now, and a run
        // again needs a job of its own. (Locks: batch, then job, then order.)
        end_order_job(&mut tx, id.get()).await?;
        if !move_order(&mut tx, id, &change, &RunRecord::default(), None, false).await? {
            return Err(StoreError::Refused {
                field: "state".into(),
                message: "the order changed meanwhile: look at it again".into(),
            });
        }
        crate::audit::record(
            &mut tx,
            actor,
            "order.resolve",
            &format!("order:{}", id.get()),
            &serde_json::json!({
                "from": state.as_str(),
                "to": by.to().as_str(),
                "order_number": number,
                "note": note,
            }),
        )
        .await?;
        if by.to() == OrderState::Queued {
            if batch_state == BatchState::Finished {
                reopen_batch(&mut tx, batch).await?;
            }
            if matches!(batch_state, BatchState::Running | BatchState::Finished) {
                enqueue_order_job(&mut tx, id.get()).await?;
            }
        } else {
            finish_batch_if_done(&mut tx, batch).await?;
        }
        tx.commit().await?;
        self.order(id).await
    }

    /// Gives a job back to every unfinished order of a running batch that has none (its job
    /// failed for good after crashing its workers, or was lost), and to every `placing` order
    /// whatever its batch: they must be settled. Returns how many were enqueued. Run at start
    /// and periodically, so that no order is left without a job and every batch ends.
    pub async fn sweep_orders(&self) -> Result<usize, StoreError> {
        let sql = format!(
            "SELECT o.id FROM orders o JOIN batches b ON b.id = o.batch_id \
             WHERE (o.state = 'placing' OR (o.state IN ('queued', 'running') AND b.state = 'running')) \
             AND NOT {} ORDER BY o.id",
            crate::jobs::order_job_live_sql("o.id")
        );
        let ids: Vec<i64> = read!(&self.db, |c| {
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_all(c)
                .await
        })?;
        if ids.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin().await?;
        for id in &ids {
            enqueue_order_job(&mut tx, *id).await?;
        }
        tx.commit().await?;
        Ok(ids.len())
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
}

/// The state of another order of `account` that is being run or settled, so that order `id`
/// must wait. An order being settled (`settling`) waits only for orders being worked on now,
/// so two orders left `placing` by a crash never wait for each other.
/// The most runs the batch gives an order, when it says (batches from before it did not).
async fn batch_max_runs(tx: &mut Tx, batch: i64) -> Result<Option<u32>, StoreError> {
    let spec: String = write!(tx, |c| {
        sqlx::query_scalar("SELECT spec FROM batches WHERE id = $1")
            .bind(batch)
            .fetch_one(c)
            .await
    })?;
    let spec: cartwright_core::batch::NewBatch = serde_json::from_str(&spec)
        .map_err(|e| StoreError::Corrupt(format!("batches.spec: {e}")))?;
    Ok(spec.max_runs)
}

async fn account_busy(
    tx: &mut Tx,
    account: i64,
    id: OrderId,
    settling: bool,
) -> Result<Option<OrderState>, StoreError> {
    let running = crate::jobs::order_job_running_sql("o.id");
    let sql = if settling {
        format!(
            "SELECT o.state FROM orders o WHERE o.account_id = $1 AND o.id <> $2 \
             AND o.state IN ('running', 'placing') AND {running} LIMIT 1"
        )
    } else {
        format!(
            "SELECT o.state FROM orders o WHERE o.account_id = $1 AND o.id <> $2 \
             AND (o.state = 'placing' OR (o.state = 'running' AND {running})) \
             ORDER BY o.state = 'placing' DESC LIMIT 1"
        )
    };
    let state: Option<String> = write!(tx, |c| {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(account)
            .bind(id.get())
            .fetch_optional(c)
            .await
    })?;
    state
        .map(|s| s.parse().map_err(StoreError::Corrupt))
        .transpose()
}

/// Makes `change` to order `id` (only from the states its move starts from); false when the
/// order was not in one of them. `uncount` gives back the run's attempt.
async fn move_order(
    tx: &mut Tx,
    id: OrderId,
    change: &Change<'_>,
    record: &RunRecord,
    timings: Option<&str>,
    uncount: bool,
) -> Result<bool, StoreError> {
    let now = Ts::now();
    let to = change.by.to();
    let fin = to.is_final().then_some(now);
    let totals = record.totals;
    let settling = change
        .settling
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("settling: {e}")))?;
    // Out of `placing` into `queued`, the click is known not to have placed anything: the
    // next run records its own.
    let clears_click = change.by.from().contains(&OrderState::Placing) && to == OrderState::Queued;
    let sql = format!(
        "UPDATE orders SET state = $2, error_class = $3, error_message = $4, \
         screenshot = COALESCE($5, screenshot), snapshot = COALESCE($6, snapshot), \
         order_number = COALESCE($7, order_number), timings = COALESCE($8, timings), \
         subtotal_minor = COALESCE($9, subtotal_minor), discount_minor = COALESCE($10, discount_minor), \
         total_minor = COALESCE($11, total_minor), coupon = COALESCE($12, coupon), \
         updated_at = $13, finished_at = $14, settling = COALESCE($16, settling), \
         attempts = attempts - CASE WHEN $15 AND state = 'running' THEN 1 ELSE 0 END{clear} \
         WHERE id = $1 AND state IN ({from}) RETURNING batch_id",
        from = change.by.from_sql(),
        clear = if clears_click {
            ", placing_at = NULL, history_before = NULL"
        } else {
            ""
        },
    );
    let moved: Option<i64> = write!(tx, |c| {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(id.get())
            .bind(to.as_str())
            .bind(change.class.map(ErrorClass::as_str))
            .bind(change.message)
            .bind(change.screenshot)
            .bind(change.snapshot)
            .bind(change.number)
            .bind(timings)
            .bind(totals.and_then(|t| t.subtotal_minor))
            .bind(totals.and_then(|t| t.discount_minor))
            .bind(totals.map(|t| t.total_minor))
            .bind(record.coupon.as_deref())
            .bind(now)
            .bind(fin)
            .bind(uncount)
            .bind(settling)
            .fetch_optional(c)
            .await
    })?;
    Ok(moved.is_some())
}

/// Takes a finished batch back to running: an order of it was queued again by a person.
async fn reopen_batch(tx: &mut Tx, batch: i64) -> Result<(), StoreError> {
    write!(tx, |c| {
        sqlx::query(
            "UPDATE batches SET state = 'running', finished_at = NULL, updated_at = $2 WHERE id = $1 AND state = 'finished'",
        )
        .bind(batch)
        .bind(Ts::now())
        .execute(c)
        .await
        .map(|r| r.rows_affected())
    })?;
    Ok(())
}
