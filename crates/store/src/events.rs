//! The event log: every run's steps and results, stored in order and streamed to every
//! process (PostgreSQL NOTIFY; on SQLite the one process streams its own).

use crate::db::{Arg, Sql, Ts};
use crate::{Store, StoreError};
use cartwright_core::ids::{AccountId, BatchId, EventId, OrderId};
use cartwright_core::order::{Event, Level, NewEvent};

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

impl Store {
    /// Stores events; returns them with their ids, in order.
    pub async fn insert_events(&self, events: &[NewEvent]) -> Result<Vec<Event>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin().await?;
        let out = insert_events_in(&mut tx, events).await?;
        tx.commit().await?;
        Ok(out)
    }
}

/// Stores events inside `tx` (streamed once it commits).
pub(crate) async fn insert_events_in(
    tx: &mut crate::db::Tx,
    events: &[NewEvent],
) -> Result<Vec<Event>, StoreError> {
    let mut out = Vec::with_capacity(events.len());
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
    Ok(out)
}

impl Store {
    /// On PostgreSQL, the events every process stores, as they commit (this process's
    /// included); `None` on SQLite, where one process writes and streams them itself.
    pub fn listen_events(&self) -> Option<tokio::sync::mpsc::Receiver<Vec<Event>>> {
        let crate::db::Db::Postgres(pool) = &self.db else {
            return None;
        };
        let mut payloads = crate::db::listen(pool.clone(), "cartwright_events");
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        tokio::spawn(async move {
            while let Some(payload) = payloads.recv().await {
                match serde_json::from_str::<Vec<Event>>(&payload) {
                    Ok(events) => {
                        if tx.send(events).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "an event notification did not parse"),
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
}

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
