//! The delivery outbox: a claimed delivery's message goes out through every enabled channel,
//! one row per delivery and channel in `delivery_sends`, each with its own idempotency key,
//! attempts and the receiver's answer, each sent by its own job. The delivery is `delivered`
//! once one channel confirmed; when every channel gave up it waits for an operator, who may
//! send it again: the same items, a new message, new keys.

use crate::db::{Arg, Sql, Ts, Tx, read, write};
use crate::deliveries::message_context;
use crate::jobs::{NewJob, enqueue_in};
use crate::{Store, StoreError};
use cartwright_core::channel::{ChannelKind, ChannelTarget, SendState, send_backoff};
use cartwright_core::digital::{DeliveryMove, DeliveryState};
use cartwright_core::ids::{ChannelId, DeliveryId, MarketOrderId, SendId, StockItemId};
use serde::Serialize;
use std::time::Duration;
use utoipa::ToSchema;

/// The kind of the jobs that send one row of the outbox.
pub const SEND_JOB: &str = "delivery_send";

/// One send of a delivery through one channel.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Send {
    /// Identifier.
    pub id: SendId,
    /// Its delivery.
    pub delivery_id: DeliveryId,
    /// The channel (none for the delivery page).
    pub channel_id: Option<ChannelId>,
    /// The channel's kind.
    pub channel: ChannelKind,
    /// The key the receiver recognises a repeat by.
    pub idempotency_key: String,
    /// Where it stands.
    pub state: SendState,
    /// Attempts made.
    pub attempts: i64,
    /// Why the last attempt failed, or why it was skipped.
    pub last_error: Option<String>,
    /// What the receiver answered (at most 2 KB of it).
    pub answer: Option<String>,
    /// When the last attempt was made.
    #[serde(with = "time::serde::rfc3339::option")]
    pub tried_at: Option<time::OffsetDateTime>,
    /// When the channel confirmed.
    #[serde(with = "time::serde::rfc3339::option")]
    pub sent_at: Option<time::OffsetDateTime>,
}

#[derive(sqlx::FromRow)]
struct SendRow {
    id: i64,
    delivery_id: i64,
    channel_id: i64,
    channel: String,
    idempotency_key: String,
    state: String,
    attempts: i64,
    last_error: Option<String>,
    answer: Option<String>,
    tried_at: Option<Ts>,
    sent_at: Option<Ts>,
}

const SEND_COLUMNS: &str = "id, delivery_id, channel_id, channel, idempotency_key, state, attempts, last_error, answer, tried_at, sent_at";

impl TryFrom<SendRow> for Send {
    type Error = StoreError;
    fn try_from(r: SendRow) -> Result<Self, StoreError> {
        Ok(Send {
            id: SendId(r.id),
            delivery_id: DeliveryId(r.delivery_id),
            channel_id: (r.channel_id != 0).then_some(ChannelId(r.channel_id)),
            channel: r.channel.parse().map_err(StoreError::Corrupt)?,
            idempotency_key: r.idempotency_key,
            state: r.state.parse().map_err(StoreError::Corrupt)?,
            attempts: r.attempts,
            last_error: r.last_error,
            answer: r.answer,
            tried_at: r.tried_at.map(|t| t.0),
            sent_at: r.sent_at.map(|t| t.0),
        })
    }
}

/// What preparing a delivery's sends did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prepared {
    /// No channel is configured: the delivery page confirmed it.
    Delivered,
    /// Its sends are queued, each with its job.
    Sending(Vec<SendId>),
    /// Channels are configured but none reaches this buyer: it waits for an operator.
    Unreachable,
    /// The delivery is not sending (delivered already, or taken back): nothing was done.
    NotSending(DeliveryState),
}

/// What a send job needs.
#[derive(Debug, Clone)]
pub struct SendWork {
    /// The send.
    pub send: Send,
    /// Where it goes (its secret apart).
    pub target: ChannelTarget,
    /// The channel's secret, opened.
    pub secret: Option<String>,
    /// The delivery's message.
    pub message: String,
    /// Its order.
    pub order_id: MarketOrderId,
}

/// The longest answer kept from a receiver.
const ANSWER_BYTES: usize = 2048;

fn clip(s: &str) -> String {
    if s.len() <= ANSWER_BYTES {
        return s.to_owned();
    }
    let mut end = ANSWER_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn send_key(delivery: DeliveryId, channel: i64, resends: i64) -> String {
    format!("cartwright-{delivery}-{channel}-{resends}")
}

/// Moves a sending delivery to delivered in `tx`: its items delivered, its order settled.
/// False when it was not sending.
pub(crate) async fn confirm_in(
    store: &Store,
    tx: &mut Tx,
    id: DeliveryId,
    now: Ts,
) -> Result<bool, StoreError> {
    Ok(!confirm_many_in(store, tx, &[id], now).await?.is_empty())
}

/// [`confirm_in`] for many deliveries, a few statements for all: those that were sending.
pub(crate) async fn confirm_many_in(
    store: &Store,
    tx: &mut Tx,
    ids: &[DeliveryId],
    now: Ts,
) -> Result<Vec<DeliveryId>, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Confirmed {
        id: i64,
        order_id: i64,
        link_days: Option<i64>,
    }
    let mut sql = Sql::new("UPDATE deliveries SET state = ");
    sql.arg(Arg::Text(DeliveryMove::Confirm.to().as_str().into()))
        .push(", delivered_at = ")
        .arg(Arg::Ts(now.0))
        .push(", attention = NULL WHERE id IN ")
        .list(ids.iter().map(|i| i.get()));
    sql.push(&format!(
        " AND state IN ({}) RETURNING id, order_id, \
         (SELECT p.link_days FROM digital_products p WHERE p.id = product_id) AS link_days",
        DeliveryMove::Confirm.from_sql()
    ));
    let mut confirmed: Vec<Confirmed> = tx.rows(&sql).await?;
    if confirmed.is_empty() {
        return Ok(Vec::new());
    }
    confirmed.sort_unstable_by_key(|c| c.id);
    // The buyer's page shows the goods for the product's days from now, when it has a limit.
    let mut limited: Vec<(i64, Vec<i64>)> = Vec::new();
    for c in &confirmed {
        if let Some(days) = c.link_days {
            match limited.iter_mut().find(|(d, _)| *d == days) {
                Some((_, ids)) => ids.push(c.id),
                None => limited.push((days, vec![c.id])),
            }
        }
    }
    for (days, ids) in limited {
        let mut sql = Sql::new("UPDATE deliveries SET expires_at = ");
        sql.arg(Arg::Ts(now.0 + time::Duration::days(days)))
            .push(" WHERE id IN ")
            .list(ids);
        tx.execute(&sql).await?;
    }
    let mut sql = Sql::new("UPDATE stock_items SET state = 'delivered', delivered_at = ");
    sql.arg(Arg::Ts(now.0))
        .push(" WHERE state = 'reserved' AND delivery_id IN ")
        .list(confirmed.iter().map(|c| c.id));
    tx.execute(&sql).await?;
    let mut orders: Vec<MarketOrderId> = confirmed
        .iter()
        .map(|c| MarketOrderId(c.order_id))
        .collect();
    orders.sort_unstable();
    orders.dedup();
    store.settle_orders(tx, &orders).await?;
    Ok(confirmed.into_iter().map(|c| DeliveryId(c.id)).collect())
}

/// Records the delivery page's row of the outbox for each of these deliveries: ready the
/// moment the message is stored.
pub(crate) async fn pages_ready(
    tx: &mut Tx,
    ids: &[DeliveryId],
    resends: i64,
    now: Ts,
    answer: Option<&str>,
) -> Result<(), StoreError> {
    let mut sql = Sql::new(
        "INSERT INTO delivery_sends (delivery_id, channel_id, channel, idempotency_key, state, attempts, answer, created_at, tried_at, sent_at) VALUES ",
    );
    for (i, id) in ids.iter().enumerate() {
        sql.values_row(
            i == 0,
            [
                Some(Arg::Int(id.get())),
                Some(Arg::Int(0)),
                Some(Arg::Text("page".into())),
                Some(Arg::Text(send_key(*id, 0, resends))),
                Some(Arg::Text("sent".into())),
                Some(Arg::Int(1)),
                answer.map(|a| Arg::Text(a.to_owned())),
                Some(Arg::Ts(now.0)),
                Some(Arg::Ts(now.0)),
                Some(Arg::Ts(now.0)),
            ],
        );
    }
    sql.push(
        " ON CONFLICT (delivery_id, channel_id) DO UPDATE SET state = 'sent', \
         idempotency_key = excluded.idempotency_key, answer = excluded.answer, sent_at = excluded.sent_at",
    );
    tx.execute(&sql).await.map(drop)
}

/// [`pages_ready`] for one delivery.
pub(crate) async fn page_ready(
    tx: &mut Tx,
    id: DeliveryId,
    resends: i64,
    now: Ts,
    answer: Option<&str>,
) -> Result<(), StoreError> {
    pages_ready(tx, &[id], resends, now, answer).await
}

impl Store {
    /// Stores a claimed delivery's message and queues it to every enabled channel (each send
    /// with its job), or confirms it through the delivery page when no channel is configured.
    /// Idempotent: a second call for a delivery that has its sends does not add any, and the
    /// first message stays.
    pub async fn prepare_delivery(
        &self,
        id: DeliveryId,
        message: &str,
    ) -> Result<Prepared, StoreError> {
        let mut tx = self.begin().await?;
        let prepared = self.prepare_in(&mut tx, id, message).await?;
        tx.commit().await?;
        Ok(prepared)
    }

    /// [`Store::prepare_delivery`] inside `tx`; the order is settled with it.
    pub(crate) async fn prepare_in(
        &self,
        tx: &mut Tx,
        id: DeliveryId,
        message: &str,
    ) -> Result<Prepared, StoreError> {
        let now = Ts::now();
        let lock = crate::db::RowLock::Update.sql(tx.backend());
        let row: Option<(String, i64, bool)> = write!(tx, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT state, resends, message IS NOT NULL FROM deliveries WHERE id = $1{lock}"
            )))
            .bind(id.get())
            .fetch_optional(c)
            .await
        })?;
        let (state, resends, has_message) =
            row.ok_or_else(|| StoreError::not_found("delivery", id.get()))?;
        let state: DeliveryState = state.parse().map_err(StoreError::Corrupt)?;
        if state != DeliveryState::Sending {
            return Ok(Prepared::NotSending(state));
        }
        let existing: Vec<(i64, String)> = write!(tx, |c| {
            sqlx::query_as(
                "SELECT id, state FROM delivery_sends WHERE delivery_id = $1 AND channel_id <> 0",
            )
            .bind(id.get())
            .fetch_all(c)
            .await
        })?;
        if !existing.is_empty() {
            // Prepared before (by a run that stopped): its sends carry on with their jobs.
            let pending: Vec<SendId> = existing
                .iter()
                .filter(|(_, s)| s == "pending")
                .map(|(i, _)| SendId(*i))
                .collect();
            for send in &pending {
                enqueue_send(tx, *send, None).await?;
            }
            let order = crate::deliveries::order_of(self, tx, id).await?;
            self.settle_order(tx, order.id).await?;
            return Ok(Prepared::Sending(pending));
        }
        if !has_message {
            self.store_message(tx, id, message).await?;
        }
        self.open_outbox(tx, id, resends, now).await
    }

    /// [`Store::prepare_in`] for deliveries claimed in this same transaction, with their
    /// messages: waiting until now, they have no message, no sends and no re-sends yet. What
    /// each one's outbox did, in the order given.
    pub(crate) async fn prepare_fresh_in(
        &self,
        tx: &mut Tx,
        claimed: &[(DeliveryId, String)],
    ) -> Result<Vec<(DeliveryId, Prepared)>, StoreError> {
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        let now = Ts::now();
        let ids: Vec<DeliveryId> = claimed.iter().map(|(id, _)| *id).collect();
        // Every message in one statement.
        let mut sql = Sql::new("UPDATE deliveries SET message = CASE id");
        for (id, message) in claimed {
            let sealed = self.goods.seal(message.as_bytes(), &message_context(*id));
            sql.push(" WHEN ")
                .arg(Arg::Int(id.get()))
                .push(" THEN ")
                .arg(Arg::Bytes(sealed));
        }
        sql.push(" END WHERE id IN ")
            .list(ids.iter().map(|i| i.get()));
        tx.execute(&sql).await?;
        let channels = enabled_channels(tx).await?;
        if channels.is_empty() {
            self.confirm_by_page(tx, &ids, 0, now).await?;
            return Ok(ids
                .into_iter()
                .map(|id| (id, Prepared::Delivered))
                .collect());
        }
        let mut prepared = Vec::with_capacity(ids.len());
        for id in ids {
            let outbox = self.open_sends_of(tx, id, 0, now, &channels).await?;
            prepared.push((id, outbox));
        }
        Ok(prepared)
    }

    async fn store_message(
        &self,
        tx: &mut Tx,
        id: DeliveryId,
        message: &str,
    ) -> Result<(), StoreError> {
        let sealed = self.goods.seal(message.as_bytes(), &message_context(id));
        write!(tx, |c| {
            sqlx::query("UPDATE deliveries SET message = $2 WHERE id = $1")
                .bind(id.get())
                .bind(sealed)
                .execute(c)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// No channel is configured: the delivery page confirms these deliveries.
    async fn confirm_by_page(
        &self,
        tx: &mut Tx,
        ids: &[DeliveryId],
        resends: i64,
        now: Ts,
    ) -> Result<(), StoreError> {
        pages_ready(tx, ids, resends, now, Some("confirmed: no other channel")).await?;
        confirm_many_in(self, tx, ids, now).await.map(drop)
    }

    /// The outbox of a sending delivery whose message is stored: every enabled channel's
    /// send, or the page's confirmation when there is none.
    async fn open_outbox(
        &self,
        tx: &mut Tx,
        id: DeliveryId,
        resends: i64,
        now: Ts,
    ) -> Result<Prepared, StoreError> {
        let channels = enabled_channels(tx).await?;
        if channels.is_empty() {
            self.confirm_by_page(tx, &[id], resends, now).await?;
            return Ok(Prepared::Delivered);
        }
        self.open_sends_of(tx, id, resends, now, &channels).await
    }

    /// The sends of a delivery through `channels` (not empty), with the page's row.
    async fn open_sends_of(
        &self,
        tx: &mut Tx,
        id: DeliveryId,
        resends: i64,
        now: Ts,
        channels: &[(i64, ChannelTarget)],
    ) -> Result<Prepared, StoreError> {
        page_ready(tx, id, resends, now, None).await?;
        let order = crate::deliveries::order_of(self, tx, id).await?;
        let sends = self
            .open_sends(tx, id, &order, channels, resends, now)
            .await?;
        Ok(if sends.is_empty() {
            mark_unreachable(self, tx, id).await?;
            Prepared::Unreachable
        } else {
            self.settle_order(tx, order.id).await?;
            Prepared::Sending(sends)
        })
    }

    /// Writes one outbox row per channel (replacing earlier ones: a re-send) and queues the
    /// pending ones; returns those.
    async fn open_sends(
        &self,
        tx: &mut Tx,
        id: DeliveryId,
        order: &crate::market::MarketOrder,
        channels: &[(i64, ChannelTarget)],
        resends: i64,
        now: Ts,
    ) -> Result<Vec<SendId>, StoreError> {
        let mut pending = Vec::new();
        let mut live = false;
        for (channel_id, target) in channels {
            let (state, why) = match target {
                ChannelTarget::Webhook { .. } => (SendState::Pending, None),
                ChannelTarget::Email { .. } => match &order.buyer.email {
                    Some(_) => (SendState::Pending, None),
                    None => (
                        SendState::Skipped,
                        Some("the marketplace gave no e-mail address for this buyer"),
                    ),
                },
                ChannelTarget::Chat => {
                    if order.buyer.id.is_none() {
                        (
                            SendState::Skipped,
                            Some("the marketplace gave no buyer id to write to"),
                        )
                    } else if order.connection_id.is_some() {
                        (SendState::Pending, None)
                    } else {
                        (
                            SendState::Queued,
                            Some(
                                "no marketplace connection: waiting for the browser extension to send it",
                            ),
                        )
                    }
                }
            };
            live |= matches!(state, SendState::Pending | SendState::Queued);
            let send: i64 = write!(tx, |c| {
                sqlx::query_scalar(
                    "INSERT INTO delivery_sends (delivery_id, channel_id, channel, idempotency_key, state, attempts, last_error, created_at) \
                     VALUES ($1, $2, $3, $4, $5, 0, $6, $7) \
                     ON CONFLICT (delivery_id, channel_id) DO UPDATE SET idempotency_key = $4, state = $5, attempts = 0, \
                     last_error = $6, answer = NULL, tried_at = NULL, sent_at = NULL RETURNING id",
                )
                .bind(id.get())
                .bind(channel_id)
                .bind(target.kind().as_str())
                .bind(send_key(id, *channel_id, resends))
                .bind(state.as_str())
                .bind(why)
                .bind(now)
                .fetch_one(c)
                .await
            })?;
            if state == SendState::Pending {
                enqueue_send(tx, SendId(send), None).await?;
                pending.push(SendId(send));
            }
        }
        if !live {
            pending.clear();
        }
        Ok(pending)
    }

    /// What a send job needs, or `None` when the send is not pending (sent, failed, or its
    /// delivery taken back).
    pub async fn send_work(&self, id: SendId) -> Result<Option<SendWork>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            send: SendRow,
            settings: Option<String>,
            message: Option<Vec<u8>>,
            order_id: i64,
            delivery_state: String,
        }
        let row: Option<Row> = read!(&self.db, |c| {
            sqlx::query_as(
                "SELECT s.id, s.delivery_id, s.channel_id, s.channel, s.idempotency_key, s.state, s.attempts, \
                 s.last_error, s.answer, s.tried_at, s.sent_at, ch.settings, d.message, d.order_id, d.state AS delivery_state \
                 FROM delivery_sends s JOIN deliveries d ON d.id = s.delivery_id \
                 LEFT JOIN channels ch ON ch.id = s.channel_id WHERE s.id = $1",
            )
            .bind(id.get())
            .fetch_optional(c)
            .await
        })?;
        let Some(row) = row else {
            return Err(StoreError::not_found("send", id.get()));
        };
        let send: Send = row.send.try_into()?;
        let delivery_state: DeliveryState =
            row.delivery_state.parse().map_err(StoreError::Corrupt)?;
        if send.state != SendState::Pending
            || !matches!(
                delivery_state,
                DeliveryState::Sending | DeliveryState::Delivered
            )
        {
            return Ok(None);
        }
        let (Some(settings), Some(channel)) = (row.settings, send.channel_id) else {
            return Ok(None);
        };
        let target: ChannelTarget = serde_json::from_str(&settings)
            .map_err(|e| StoreError::Corrupt(format!("channels.settings: {e}")))?;
        let secret = self.channel_secret(channel).await?;
        let message = match row.message {
            Some(sealed) => self.open_message(send.delivery_id, &sealed)?,
            None => return Ok(None),
        };
        Ok(Some(SendWork {
            send,
            target,
            secret,
            message,
            order_id: MarketOrderId(row.order_id),
        }))
    }

    /// Records that a channel confirmed a send; the delivery is delivered with it (when it
    /// was not already). False when the send was not pending.
    pub async fn send_succeeded(
        &self,
        id: SendId,
        answer: Option<&str>,
    ) -> Result<bool, StoreError> {
        let now = Ts::now();
        let mut tx = self.begin().await?;
        let delivery: Option<i64> = write!(&mut tx, |c| {
            sqlx::query_scalar(
                "UPDATE delivery_sends SET state = 'sent', attempts = attempts + 1, answer = $2, last_error = NULL, \
                 tried_at = $3, sent_at = $3 WHERE id = $1 AND state IN ('pending', 'queued') RETURNING delivery_id",
            )
            .bind(id.get())
            .bind(answer.map(clip))
            .bind(now)
            .fetch_optional(c)
            .await
        })?;
        let Some(delivery) = delivery else {
            return Ok(false);
        };
        confirm_in(self, &mut tx, DeliveryId(delivery), now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records a failed attempt. Returns how long to wait before the next, or `None` when the
    /// send failed for good (refused, or out of attempts); when no channel of the delivery is
    /// left that may still confirm it, the delivery waits for an operator.
    pub async fn send_failed(
        &self,
        id: SendId,
        error: &str,
        answer: Option<&str>,
        permanent: bool,
    ) -> Result<Option<Duration>, StoreError> {
        let now = Ts::now();
        let mut tx = self.begin().await?;
        let row: Option<(i64, i64)> = write!(&mut tx, |c| {
            sqlx::query_as(
                "UPDATE delivery_sends SET attempts = attempts + 1, last_error = $2, answer = $3, tried_at = $4 \
                 WHERE id = $1 AND state = 'pending' RETURNING delivery_id, attempts",
            )
            .bind(id.get())
            .bind(clip(error))
            .bind(answer.map(clip))
            .bind(now)
            .fetch_optional(c)
            .await
        })?;
        let Some((delivery, attempts)) = row else {
            return Ok(None);
        };
        let retry = if permanent {
            None
        } else {
            send_backoff(u32::try_from(attempts).unwrap_or(u32::MAX))
        };
        if retry.is_none() {
            write!(&mut tx, |c| {
                sqlx::query("UPDATE delivery_sends SET state = 'failed' WHERE id = $1")
                    .bind(id.get())
                    .execute(c)
                    .await
                    .map(|r| r.rows_affected())
            })?;
            let live: i64 = write!(&mut tx, |c| {
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM delivery_sends WHERE delivery_id = $1 AND channel_id <> 0 \
                     AND state IN ('pending', 'queued', 'sent')",
                )
                .bind(delivery)
                .fetch_one(c)
                .await
            })?;
            if live == 0 {
                mark_unreachable(self, &mut tx, DeliveryId(delivery)).await?;
            }
        }
        tx.commit().await?;
        Ok(retry)
    }

    /// A delivery's outbox, the page first.
    pub async fn sends_of(&self, id: DeliveryId) -> Result<Vec<Send>, StoreError> {
        let rows: Vec<SendRow> = read!(&self.db, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {SEND_COLUMNS} FROM delivery_sends WHERE delivery_id = $1 ORDER BY channel_id"
            )))
            .bind(id.get())
            .fetch_all(c)
            .await
        })?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Sends a delivery again, with `message` (re-rendered by the caller) and the same items:
    /// through every enabled channel, each with a new idempotency key. Only a delivery that
    /// holds its goods (sending or delivered) can be sent again; audited.
    pub async fn resend_delivery(
        &self,
        id: DeliveryId,
        message: &str,
        actor: &crate::audit::Actor,
    ) -> Result<Vec<SendId>, StoreError> {
        let now = Ts::now();
        let mut tx = self.begin().await?;
        let lock = crate::db::RowLock::Update.sql(tx.backend());
        let row: Option<String> = write!(&mut tx, |c| {
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT state FROM deliveries WHERE id = $1{lock}"
            )))
            .bind(id.get())
            .fetch_optional(c)
            .await
        })?;
        let state: DeliveryState = row
            .ok_or_else(|| StoreError::not_found("delivery", id.get()))?
            .parse()
            .map_err(StoreError::Corrupt)?;
        if !matches!(state, DeliveryState::Sending | DeliveryState::Delivered) {
            return Err(StoreError::Refused {
                field: "state".into(),
                message: format!(
                    "delivery {id} is {state}: only a delivery that holds its goods (sending or delivered) can be sent again"
                ),
            });
        }
        let sealed = self.goods.seal(message.as_bytes(), &message_context(id));
        let resends: i64 = write!(&mut tx, |c| {
            sqlx::query_scalar(
                "UPDATE deliveries SET message = $2, resends = resends + 1, attention = NULL WHERE id = $1 RETURNING resends",
            )
            .bind(id.get())
            .bind(sealed)
            .fetch_one(c)
            .await
        })?;
        page_ready(&mut tx, id, resends, now, None).await?;
        let channels = enabled_channels(&mut tx).await?;
        let order = crate::deliveries::order_of(self, &mut tx, id).await?;
        let sends = self
            .open_sends(&mut tx, id, &order, &channels, resends, now)
            .await?;
        if channels.is_empty() {
            confirm_in(self, &mut tx, id, now).await?;
        } else if sends.is_empty() && state == DeliveryState::Sending {
            mark_unreachable(self, &mut tx, id).await?;
        } else {
            self.settle_order(&mut tx, order.id).await?;
        }
        crate::audit::record(
            &mut tx,
            actor,
            "delivery.resend",
            &format!("delivery:{}", id.get()),
            &serde_json::json!({ "resends": resends, "sends": sends.len() }),
        )
        .await?;
        tx.commit().await?;
        Ok(sends)
    }

    /// Puts a revoked item back on sale: an operator's explicit decision (a cancelled order's
    /// buyer never saw it, say). Audited.
    pub async fn return_item_to_stock(
        &self,
        item: StockItemId,
        actor: &crate::audit::Actor,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let product: Option<i64> = write!(&mut tx, |c| {
            sqlx::query_scalar(
                "UPDATE stock_items SET state = 'available', delivery_id = NULL, reserved_at = NULL, delivered_at = NULL \
                 WHERE id = $1 AND state = 'revoked' RETURNING product_id",
            )
            .bind(item.get())
            .fetch_optional(c)
            .await
        })?;
        let Some(product) = product else {
            let exists: Option<String> = write!(&mut tx, |c| {
                sqlx::query_scalar("SELECT state FROM stock_items WHERE id = $1")
                    .bind(item.get())
                    .fetch_optional(c)
                    .await
            })?;
            return Err(match exists {
                None => StoreError::not_found("stock item", item.get()),
                Some(state) => StoreError::Refused {
                    field: "state".into(),
                    message: format!(
                        "stock item {item} is {state}: only a revoked item can be returned to stock"
                    ),
                },
            });
        };
        crate::audit::record(
            &mut tx,
            actor,
            "stock.return",
            &format!("stock_item:{}", item.get()),
            &serde_json::json!({ "product": product }),
        )
        .await?;
        tx.commit().await
    }

    /// Gives a delivery job to every paid order with a delivery waiting while its product
    /// has stock: what completes an order whose job was running (and missed the news) when
    /// stock was imported. Returns how many orders were queued.
    pub async fn sweep_deliveries(&self) -> Result<usize, StoreError> {
        let orders: Vec<i64> = read!(&self.db, |c| {
            sqlx::query_scalar(
                "SELECT DISTINCT d.order_id FROM deliveries d WHERE d.state = 'waiting' AND d.product_id IS NOT NULL \
                 AND EXISTS (SELECT 1 FROM stock_items s WHERE s.product_id = d.product_id AND s.state = 'available') \
                 AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.unique_key = 'delivery:' || d.order_id AND j.state IN ('queued', 'running')) \
                 ORDER BY d.order_id LIMIT 1000",
            )
            .fetch_all(c)
            .await
        })?;
        if orders.is_empty() {
            return Ok(0);
        }
        let ids: Vec<MarketOrderId> = orders.into_iter().map(MarketOrderId).collect();
        self.queue_deliveries(&ids).await?;
        Ok(ids.len())
    }

    pub(crate) fn open_message(&self, id: DeliveryId, sealed: &[u8]) -> Result<String, StoreError> {
        let plain = self
            .goods
            .open(sealed, &message_context(id))
            .map_err(|e| StoreError::Corrupt(format!("deliveries.message: {e}")))?;
        String::from_utf8(plain).map_err(|e| StoreError::Corrupt(e.to_string()))
    }
}

async fn enabled_channels(tx: &mut Tx) -> Result<Vec<(i64, ChannelTarget)>, StoreError> {
    let rows: Vec<(i64, String)> = write!(tx, |c| {
        sqlx::query_as("SELECT id, settings FROM channels WHERE enabled = TRUE ORDER BY id")
            .fetch_all(c)
            .await
    })?;
    rows.into_iter()
        .map(|(id, s)| {
            serde_json::from_str(&s)
                .map(|t| (id, t))
                .map_err(|e| StoreError::Corrupt(format!("channels.settings: {e}")))
        })
        .collect()
}

/// Queues the job of one send (none when it has one waiting or running).
async fn enqueue_send(tx: &mut Tx, id: SendId, after: Option<Duration>) -> Result<(), StoreError> {
    let job = NewJob {
        priority: 30,
        max_attempts: 1_000,
        run_at: after.map(|a| time::OffsetDateTime::now_utc() + a),
        unique_key: Some(format!("send:{id}")),
        ..NewJob::new(SEND_JOB, serde_json::json!({ "send": id.get() }))
    };
    enqueue_in(tx, &job).await.map(drop)
}

/// No channel left can confirm a sending delivery: it waits for an operator (who re-sends).
async fn mark_unreachable(store: &Store, tx: &mut Tx, id: DeliveryId) -> Result<(), StoreError> {
    let order: Option<i64> = write!(tx, |c| {
        sqlx::query_scalar(
            "UPDATE deliveries SET attention = $2 WHERE id = $1 AND state = 'sending' RETURNING order_id",
        )
        .bind(id.get())
        .bind("no channel could send it (see each channel's answer): fix the channel, then send it again; the buyer's page has it")
        .fetch_optional(c)
        .await
    })?;
    if let Some(order) = order {
        store.settle_order(tx, MarketOrderId(order)).await?;
    }
    Ok(())
}
