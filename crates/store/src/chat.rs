//! The chat with buyers and what the assistant made of each question, with the interaction
//! graph written in the same transaction as each chat record: a buyer asked a message, the
//! message is about an order (which contains products), it was answered by an answer, which
//! used a FAQ entry and was sent as a reply. The graph's queries read those edges.

use crate::db::{Ts, Tx, read, write};
use crate::{Store, StoreError};
use cartwright_core::ids::{
    AnswerId, ChatMessageId, ConnectionId, FaqId, MarketOrderId, OperatorId,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The job that sends a reply into the marketplace chat.
pub const CHAT_REPLY_JOB: &str = "chat_reply";

/// Who wrote a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sender {
    /// The buyer.
    Buyer,
    /// The assistant (from the FAQ or generated).
    Assistant,
    /// A person, after a hand-off.
    Operator,
}

impl Sender {
    fn as_str(self) -> &'static str {
        match self {
            Sender::Buyer => "buyer",
            Sender::Assistant => "assistant",
            Sender::Operator => "operator",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "buyer" => Ok(Sender::Buyer),
            "assistant" => Ok(Sender::Assistant),
            "operator" => Ok(Sender::Operator),
            other => Err(StoreError::Corrupt(format!("chat_messages.sender {other}"))),
        }
    }
}

/// A message in the chat with a buyer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChatMessage {
    /// Identifier.
    pub id: ChatMessageId,
    /// The marketplace shop, when it came through one.
    pub connection_id: Option<ConnectionId>,
    /// The buyer's id on the marketplace.
    pub buyer_id: String,
    /// The buyer's name.
    pub buyer_name: Option<String>,
    /// The order it is about, when known.
    pub order_id: Option<MarketOrderId>,
    /// Who wrote it.
    pub sender: Sender,
    /// What was written.
    pub text: String,
    /// When it was recorded.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct MessageRow {
    id: i64,
    connection_id: Option<i64>,
    buyer_id: String,
    buyer_name: Option<String>,
    order_id: Option<i64>,
    sender: String,
    text: String,
    created_at: Ts,
}

const MESSAGE_COLUMNS: &str =
    "m.id, m.connection_id, m.buyer_id, m.buyer_name, m.order_id, m.sender, m.text, m.created_at";

impl TryFrom<MessageRow> for ChatMessage {
    type Error = StoreError;
    fn try_from(r: MessageRow) -> Result<Self, StoreError> {
        Ok(ChatMessage {
            id: ChatMessageId(r.id),
            connection_id: r.connection_id.map(ConnectionId),
            buyer_id: r.buyer_id,
            buyer_name: r.buyer_name,
            order_id: r.order_id.map(MarketOrderId),
            sender: Sender::parse(&r.sender)?,
            text: r.text,
            created_at: r.created_at.0,
        })
    }
}

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AnswerSource {
    /// A FAQ entry, the assistant being sure enough.
    Faq,
    /// The LLM fallback.
    Generated,
    /// Nobody yet: waiting for a person.
    HandedOff,
    /// A person.
    Operator,
}

impl AnswerSource {
    fn as_str(self) -> &'static str {
        match self {
            AnswerSource::Faq => "faq",
            AnswerSource::Generated => "generated",
            AnswerSource::HandedOff => "handed_off",
            AnswerSource::Operator => "operator",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "faq" => Ok(AnswerSource::Faq),
            "generated" => Ok(AnswerSource::Generated),
            "handed_off" => Ok(AnswerSource::HandedOff),
            "operator" => Ok(AnswerSource::Operator),
            other => Err(StoreError::Corrupt(format!(
                "assistant_answers.source {other}"
            ))),
        }
    }
}

/// Where an answer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AnswerState {
    /// Proposed to the seller, not sent (the shop is on "suggest only").
    Suggested,
    /// Sent to the buyer.
    Sent,
    /// In the hand-off queue.
    Waiting,
    /// Closed without an answer.
    Dismissed,
}

impl AnswerState {
    fn as_str(self) -> &'static str {
        match self {
            AnswerState::Suggested => "suggested",
            AnswerState::Sent => "sent",
            AnswerState::Waiting => "waiting",
            AnswerState::Dismissed => "dismissed",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "suggested" => Ok(AnswerState::Suggested),
            "sent" => Ok(AnswerState::Sent),
            "waiting" => Ok(AnswerState::Waiting),
            "dismissed" => Ok(AnswerState::Dismissed),
            other => Err(StoreError::Corrupt(format!(
                "assistant_answers.state {other}"
            ))),
        }
    }
}

/// What became of a buyer's question.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AnswerRecord {
    /// Identifier.
    pub id: AnswerId,
    /// The buyer's message.
    pub message_id: ChatMessageId,
    /// Where the answer came from.
    pub source: AnswerSource,
    /// Where it stands.
    pub state: AnswerState,
    /// The FAQ entry used, when one was.
    pub faq_id: Option<FaqId>,
    /// The retrieval's confidence in the closest entry.
    pub confidence: Option<f64>,
    /// Why: each retriever's scores for the closest entries, the fallback's error.
    #[schema(value_type = Object)]
    pub explanation: serde_json::Value,
    /// The answer's text (none while waiting).
    pub text: Option<String>,
    /// The reply sent to the buyer, when one was.
    pub reply_id: Option<ChatMessageId>,
    /// The person who answered, after a hand-off.
    pub operator_id: Option<OperatorId>,
    /// When it was recorded.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    /// When it was answered (sent or suggested).
    #[serde(with = "time::serde::rfc3339::option")]
    pub answered_at: Option<time::OffsetDateTime>,
}

#[derive(sqlx::FromRow)]
struct AnswerRow {
    id: i64,
    message_id: i64,
    source: String,
    state: String,
    faq_id: Option<i64>,
    confidence: Option<f64>,
    explanation: String,
    text: Option<String>,
    reply_id: Option<i64>,
    operator_id: Option<i64>,
    created_at: Ts,
    answered_at: Option<Ts>,
}

const ANSWER_COLUMNS: &str = "a.id, a.message_id, a.source, a.state, a.faq_id, a.confidence, \
     a.explanation, a.text, a.reply_id, a.operator_id, a.created_at, a.answered_at";

impl TryFrom<AnswerRow> for AnswerRecord {
    type Error = StoreError;
    fn try_from(r: AnswerRow) -> Result<Self, StoreError> {
        Ok(AnswerRecord {
            id: AnswerId(r.id),
            message_id: ChatMessageId(r.message_id),
            source: AnswerSource::parse(&r.source)?,
            state: AnswerState::parse(&r.state)?,
            faq_id: r.faq_id.map(FaqId),
            confidence: r.confidence,
            explanation: serde_json::from_str(&r.explanation)
                .map_err(|e| StoreError::Corrupt(format!("assistant_answers.explanation: {e}")))?,
            text: r.text,
            reply_id: r.reply_id.map(ChatMessageId),
            operator_id: r.operator_id.map(OperatorId),
            created_at: r.created_at.0,
            answered_at: r.answered_at.map(|t| t.0),
        })
    }
}

/// The columns an answer is found by.
#[derive(Clone, Copy)]
enum AnswerKey {
    Id,
    Question,
    Reply,
}

/// A buyer's message to record.
#[derive(Debug, Clone)]
pub struct NewQuestion<'a> {
    /// The marketplace shop it came through.
    pub connection_id: Option<ConnectionId>,
    /// The buyer's id on the marketplace.
    pub buyer_id: &'a str,
    /// The buyer's name.
    pub buyer_name: Option<&'a str>,
    /// The order it is about (it must be this buyer's).
    pub order_id: Option<MarketOrderId>,
    /// What the buyer wrote.
    pub text: &'a str,
    /// The marketplace's id for it: reading it again records nothing new.
    pub external_id: Option<&'a str>,
}

/// An answer to record for a question.
#[derive(Debug, Clone)]
pub struct NewAnswer<'a> {
    /// Where it came from.
    pub source: AnswerSource,
    /// Sent, suggested or waiting.
    pub state: AnswerState,
    /// The entry used.
    pub faq_id: Option<FaqId>,
    /// The retrieval's confidence.
    pub confidence: Option<f64>,
    /// Why.
    pub explanation: &'a serde_json::Value,
    /// The text (none when waiting).
    pub text: Option<&'a str>,
}

/// A question in the hand-off queue, with the buyer's message.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Handoff {
    /// The answer waiting to be written.
    pub answer: AnswerRecord,
    /// The buyer's message.
    pub message: ChatMessage,
}

/// A buyer's question with what became of it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Exchange {
    /// The buyer's message.
    pub message: ChatMessage,
    /// Its answer, when one was recorded.
    pub answer: Option<AnswerRecord>,
}

/// How often a FAQ entry answered questions about a product.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AskedCount {
    /// The product's SKU (on the marketplace order line).
    pub product: String,
    /// The entry.
    pub faq_id: FaqId,
    /// Its key.
    pub faq_key: String,
    /// Questions about the product it answered.
    pub questions: i64,
}

/// A node of the interaction graph.
#[derive(Debug, Clone, Copy)]
enum Node<'a> {
    Buyer(Option<ConnectionId>, &'a str),
    Message(i64),
    Order(i64),
    Product(&'a str),
    Answer(i64),
    Faq(i64),
}

impl Node<'_> {
    fn key(&self) -> (&'static str, String) {
        match self {
            Node::Buyer(c, b) => (
                "buyer",
                format!(
                    "{}:{b}",
                    c.map_or_else(|| "-".to_owned(), |c| c.get().to_string())
                ),
            ),
            Node::Message(id) => ("message", id.to_string()),
            Node::Order(id) => ("order", id.to_string()),
            Node::Product(sku) => ("product", (*sku).to_owned()),
            Node::Answer(id) => ("answer", id.to_string()),
            Node::Faq(id) => ("faq", id.to_string()),
        }
    }
}

/// A message recorded before under the same marketplace id, when it is this buyer's; another
/// buyer's is a conflict (never shown to this one).
fn same_buyer(m: ChatMessage, buyer: &str) -> Result<ChatMessage, StoreError> {
    if m.buyer_id == buyer {
        Ok(m)
    } else {
        Err(StoreError::Conflict {
            entity: "chat message",
            field: "message_id".into(),
        })
    }
}

/// The node's id, added when new.
async fn node(tx: &mut Tx, n: Node<'_>, label: Option<&str>, now: Ts) -> Result<i64, StoreError> {
    let (kind, reference) = n.key();
    // No update on a conflict: an upsert that writes would lock the row, and two
    // transactions meeting the same nodes in another order could deadlock.
    let added: Option<i64> = write!(tx, |c| {
        sqlx::query_scalar(
            "INSERT INTO graph_nodes (kind, ref, label, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (kind, ref) DO NOTHING RETURNING id",
        )
        .bind(kind)
        .bind(&reference)
        .bind(label)
        .bind(now)
        .fetch_optional(c)
        .await
    })?;
    if let Some(id) = added {
        return Ok(id);
    }
    Ok(write!(tx, |c| {
        sqlx::query_scalar("SELECT id FROM graph_nodes WHERE kind = $1 AND ref = $2")
            .bind(kind)
            .bind(&reference)
            .fetch_one(c)
            .await
    })?)
}

async fn edge(tx: &mut Tx, src: i64, kind: &str, dst: i64, now: Ts) -> Result<(), StoreError> {
    write!(tx, |c| {
        sqlx::query(
            "INSERT INTO graph_edges (src, dst, kind, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (src, kind, dst) DO NOTHING",
        )
        .bind(src)
        .bind(dst)
        .bind(kind)
        .bind(now)
        .execute(c)
        .await
        .map(|r| r.rows_affected())
    })?;
    Ok(())
}

async fn insert_message(
    tx: &mut Tx,
    q: &NewQuestion<'_>,
    sender: Sender,
    now: Ts,
) -> Result<i64, StoreError> {
    write!(tx, |c| {
        sqlx::query_scalar(
            "INSERT INTO chat_messages (connection_id, buyer_id, buyer_name, order_id, sender, text, external_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(q.connection_id.map(|c| c.get()))
        .bind(q.buyer_id)
        .bind(q.buyer_name)
        .bind(q.order_id.map(|o| o.get()))
        .bind(sender.as_str())
        .bind(q.text)
        .bind(q.external_id)
        .bind(now)
        .fetch_one(c)
        .await
    })
    .map_err(StoreError::on_write("chat message", "order_id"))
}

impl Store {
    /// Records a buyer's message and its place in the graph; `false` with the stored message
    /// when it was recorded before (same marketplace id). An order that is not this buyer's
    /// (or this shop's) is refused.
    pub async fn record_question(
        &self,
        q: &NewQuestion<'_>,
    ) -> Result<(ChatMessage, bool), StoreError> {
        if let (Some(c), Some(external)) = (q.connection_id, q.external_id)
            && let Some(m) = self.message_by_external(c, external).await?
        {
            return same_buyer(m, q.buyer_id).map(|m| (m, false));
        }
        let lines: Vec<(String, String)> = match q.order_id {
            Some(order) => {
                let o = self.market_order(order).await?;
                let mine =
                    o.buyer.id.as_deref() == Some(q.buyer_id) && o.connection_id == q.connection_id;
                if !mine {
                    return Err(StoreError::Invalid(cartwright_core::Invalid::new(
                        "order_id",
                        "is not an order of this buyer in this shop",
                    )));
                }
                self.market_order_skus(order).await?
            }
            None => Vec::new(),
        };
        let now = Ts::now();
        let mut tx = self.begin().await?;
        let id = match insert_message(&mut tx, q, Sender::Buyer, now).await {
            Err(StoreError::Conflict { .. }) => {
                drop(tx);
                let (Some(c), Some(external)) = (q.connection_id, q.external_id) else {
                    return Err(StoreError::Corrupt(
                        "chat message conflict without an id".into(),
                    ));
                };
                let m = self
                    .message_by_external(c, external)
                    .await?
                    .ok_or_else(|| StoreError::Corrupt("chat message conflict".into()))?;
                return same_buyer(m, q.buyer_id).map(|m| (m, false));
            }
            other => other?,
        };
        let buyer = node(
            &mut tx,
            Node::Buyer(q.connection_id, q.buyer_id),
            q.buyer_name,
            now,
        )
        .await?;
        let message = node(&mut tx, Node::Message(id), None, now).await?;
        edge(&mut tx, buyer, "asked", message, now).await?;
        if let Some(order) = q.order_id {
            let o = node(&mut tx, Node::Order(order.get()), None, now).await?;
            edge(&mut tx, message, "about", o, now).await?;
            edge(&mut tx, buyer, "placed", o, now).await?;
            for (sku, name) in &lines {
                let p = node(&mut tx, Node::Product(sku), Some(name), now).await?;
                edge(&mut tx, o, "contains", p, now).await?;
            }
        }
        tx.commit().await?;
        Ok((self.chat_message(ChatMessageId(id)).await?, true))
    }

    /// A buyer's latest orders in a shop, newest first: what the assistant may tell them
    /// about (never another buyer's).
    pub async fn buyer_orders(
        &self,
        connection: ConnectionId,
        buyer_id: &str,
        limit: i64,
    ) -> Result<Vec<crate::MarketOrder>, StoreError> {
        let ids: Vec<i64> = read!(&self.db, |c| {
            sqlx::query_scalar(
                "SELECT id FROM market_orders WHERE connection_id = $1 AND buyer_id = $2 ORDER BY id DESC LIMIT $3",
            )
            .bind(connection.get())
            .bind(buyer_id)
            .bind(limit)
            .fetch_all(c)
            .await
        })?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<MarketOrderId> = ids.into_iter().map(MarketOrderId).collect();
        let mut orders = self.market_orders_by_id(&ids).await?;
        orders.reverse();
        Ok(orders)
    }

    /// The answer recorded for a question, if any.
    pub async fn answer_to(
        &self,
        question: ChatMessageId,
    ) -> Result<Option<AnswerRecord>, StoreError> {
        self.answer_by(AnswerKey::Question, question.get()).await
    }

    /// Where a shop's chat was read up to (the last buyer message's id).
    pub async fn chat_cursor(
        &self,
        connection: ConnectionId,
    ) -> Result<Option<String>, StoreError> {
        let cursor: Option<Option<String>> = read!(&self.db, |c| {
            sqlx::query_scalar("SELECT chat_cursor FROM market_connections WHERE id = $1")
                .bind(connection.get())
                .fetch_optional(c)
                .await
        })?;
        cursor.ok_or_else(|| StoreError::not_found("connection", connection.get()))
    }

    /// Records where a shop's chat was read up to.
    pub async fn set_chat_cursor(
        &self,
        connection: ConnectionId,
        cursor: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        write!(&mut tx, |c| {
            sqlx::query("UPDATE market_connections SET chat_cursor = $2 WHERE id = $1")
                .bind(connection.get())
                .bind(cursor)
                .execute(c)
                .await
                .map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        Ok(())
    }

    /// A shop's order by its marketplace number, when Cartwright has it.
    pub async fn market_order_by_number(
        &self,
        connection: ConnectionId,
        number: &str,
    ) -> Result<Option<MarketOrderId>, StoreError> {
        let id: Option<i64> = read!(&self.db, |c| {
            sqlx::query_scalar(
                "SELECT id FROM market_orders WHERE connection_id = $1 AND external_id = $2",
            )
            .bind(connection.get())
            .bind(number)
            .fetch_optional(c)
            .await
        })?;
        Ok(id.map(MarketOrderId))
    }

    /// A reply still to be sent into its marketplace chat (none when it was sent, or is not
    /// in a marketplace's chat).
    pub async fn reply_to_send(
        &self,
        reply: ChatMessageId,
    ) -> Result<Option<ChatMessage>, StoreError> {
        let row: Option<MessageRow> = read!(&self.db, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {MESSAGE_COLUMNS} FROM chat_messages m WHERE m.id = $1 \
                 AND m.external_id IS NULL AND m.connection_id IS NOT NULL AND m.sender <> 'buyer'"
            )))
            .bind(reply.get())
            .fetch_optional(c)
            .await
        })?;
        row.map(TryInto::try_into).transpose()
    }

    /// The answer a reply was written for.
    pub async fn answer_for_reply(
        &self,
        reply: ChatMessageId,
    ) -> Result<Option<AnswerRecord>, StoreError> {
        self.answer_by(AnswerKey::Reply, reply.get()).await
    }

    /// Records the marketplace's id of a reply it accepted.
    pub async fn reply_sent(
        &self,
        reply: ChatMessageId,
        external_id: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        write!(&mut tx, |c| {
            sqlx::query(
                "UPDATE chat_messages SET external_id = $2 WHERE id = $1 AND external_id IS NULL",
            )
            .bind(reply.get())
            .bind(external_id)
            .execute(c)
            .await
            .map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        Ok(())
    }

    /// The SKUs (seller SKU, else item id) and names of an order's lines.
    pub async fn market_order_skus(
        &self,
        order: MarketOrderId,
    ) -> Result<Vec<(String, String)>, StoreError> {
        Ok(read!(&self.db, |c| {
            sqlx::query_as(
                "SELECT CASE WHEN seller_sku <> '' THEN seller_sku ELSE item_id END, name \
                 FROM market_order_lines WHERE order_id = $1 ORDER BY line_no",
            )
            .bind(order.get())
            .fetch_all(c)
            .await
        })?)
    }

    async fn message_by_external(
        &self,
        connection: ConnectionId,
        external: &str,
    ) -> Result<Option<ChatMessage>, StoreError> {
        let row: Option<MessageRow> = read!(&self.db, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {MESSAGE_COLUMNS} FROM chat_messages m WHERE m.connection_id = $1 AND m.external_id = $2"
            )))
            .bind(connection.get())
            .bind(external)
            .fetch_optional(c)
            .await
        })?;
        row.map(TryInto::try_into).transpose()
    }

    /// One chat message.
    pub async fn chat_message(&self, id: ChatMessageId) -> Result<ChatMessage, StoreError> {
        let row: Option<MessageRow> = read!(&self.db, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {MESSAGE_COLUMNS} FROM chat_messages m WHERE m.id = $1"
            )))
            .bind(id.get())
            .fetch_optional(c)
            .await
        })?;
        row.ok_or_else(|| StoreError::not_found("chat message", id.get()))?
            .try_into()
    }

    /// Records what became of a question; a sent answer is also written to the chat as the
    /// reply. One answer per question: a second is a conflict.
    pub async fn record_answer(
        &self,
        question: ChatMessageId,
        a: &NewAnswer<'_>,
    ) -> Result<AnswerRecord, StoreError> {
        let q = self.chat_message(question).await?;
        let now = Ts::now();
        let mut tx = self.begin().await?;
        let answered = (a.state != AnswerState::Waiting).then_some(now);
        let id: i64 = write!(&mut tx, |c| {
            sqlx::query_scalar(
                "INSERT INTO assistant_answers (message_id, source, state, faq_id, confidence, explanation, text, created_at, answered_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
            )
            .bind(question.get())
            .bind(a.source.as_str())
            .bind(a.state.as_str())
            .bind(a.faq_id.map(|f| f.get()))
            .bind(a.confidence)
            .bind(a.explanation.to_string())
            .bind(a.text)
            .bind(now)
            .bind(answered)
            .fetch_one(c)
            .await
        })
        .map_err(StoreError::on_write("answer", "faq_id"))?;
        let message = node(&mut tx, Node::Message(question.get()), None, now).await?;
        let answer = node(&mut tx, Node::Answer(id), Some(a.source.as_str()), now).await?;
        edge(&mut tx, message, "answered_by", answer, now).await?;
        if let Some(faq) = a.faq_id {
            let f = node(&mut tx, Node::Faq(faq.get()), None, now).await?;
            edge(&mut tx, answer, "used", f, now).await?;
        }
        if a.state == AnswerState::Sent
            && let Some(text) = a.text
        {
            reply(&mut tx, &q, id, answer, Sender::Assistant, text, now).await?;
        }
        tx.commit().await?;
        self.answer(AnswerId(id)).await
    }

    /// The answer whose `key` column holds `value`, if any.
    async fn answer_by(
        &self,
        key: AnswerKey,
        value: i64,
    ) -> Result<Option<AnswerRecord>, StoreError> {
        let column = match key {
            AnswerKey::Id => "id",
            AnswerKey::Question => "message_id",
            AnswerKey::Reply => "reply_id",
        };
        let row: Option<AnswerRow> = read!(&self.db, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {ANSWER_COLUMNS} FROM assistant_answers a WHERE a.{column} = $1"
            )))
            .bind(value)
            .fetch_optional(c)
            .await
        })?;
        row.map(TryInto::try_into).transpose()
    }

    /// One answer.
    pub async fn answer(&self, id: AnswerId) -> Result<AnswerRecord, StoreError> {
        self.answer_by(AnswerKey::Id, id.get())
            .await?
            .ok_or_else(|| StoreError::not_found("answer", id.get()))
    }

    /// A person answers a question: a waiting one from the hand-off queue, or a suggested
    /// one (sent as written). The reply goes into the chat.
    pub async fn answer_by_operator(
        &self,
        id: AnswerId,
        operator: OperatorId,
        text: &str,
    ) -> Result<AnswerRecord, StoreError> {
        let current = self.answer(id).await?;
        let q = self.chat_message(current.message_id).await?;
        let now = Ts::now();
        let mut tx = self.begin().await?;
        let n = write!(&mut tx, |c| {
            sqlx::query(
                "UPDATE assistant_answers SET source = CASE WHEN state = 'waiting' THEN 'operator' ELSE source END, \
                 state = 'sent', text = $2, operator_id = $3, answered_at = $4 \
                 WHERE id = $1 AND state IN ('waiting', 'suggested')",
            )
            .bind(id.get())
            .bind(text)
            .bind(operator.get())
            .bind(now)
            .execute(c)
            .await
            .map(|r| r.rows_affected())
        })?;
        if n == 0 {
            return Err(StoreError::Refused {
                field: "answer".into(),
                message: "this question was answered or closed already".into(),
            });
        }
        let answer = node(&mut tx, Node::Answer(id.get()), None, now).await?;
        let sender = if current.state == AnswerState::Waiting {
            Sender::Operator
        } else {
            Sender::Assistant
        };
        reply(&mut tx, &q, id.get(), answer, sender, text, now).await?;
        tx.commit().await?;
        self.answer(id).await
    }

    /// Closes a waiting or suggested answer without sending anything.
    pub async fn dismiss_answer(&self, id: AnswerId) -> Result<AnswerRecord, StoreError> {
        let mut tx = self.begin().await?;
        let n = write!(&mut tx, |c| {
            sqlx::query(
                "UPDATE assistant_answers SET state = 'dismissed' WHERE id = $1 AND state IN ('waiting', 'suggested')",
            )
            .bind(id.get())
            .execute(c)
            .await
            .map(|r| r.rows_affected())
        })?;
        if n == 0 {
            self.answer(id).await?;
            return Err(StoreError::Refused {
                field: "answer".into(),
                message: "this question was answered or closed already".into(),
            });
        }
        tx.commit().await?;
        self.answer(id).await
    }

    /// Questions waiting for a person (and, with `suggested`, answers waiting for the
    /// seller's approval), oldest first.
    pub async fn handoffs(&self, suggested: bool, limit: i64) -> Result<Vec<Handoff>, StoreError> {
        let states = if suggested {
            "('waiting', 'suggested')"
        } else {
            "('waiting')"
        };
        let rows: Vec<AnswerRow> = read!(&self.db, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {ANSWER_COLUMNS} FROM assistant_answers a WHERE a.state IN {states} ORDER BY a.id LIMIT $1"
            )))
            .bind(limit)
            .fetch_all(c)
            .await
        })?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let answer: AnswerRecord = r.try_into()?;
            let message = self.chat_message(answer.message_id).await?;
            out.push(Handoff { answer, message });
        }
        Ok(out)
    }

    /// A buyer's questions and what became of them, newest first — read through the graph
    /// (buyer → asked → message → answered_by → answer).
    pub async fn buyer_history(
        &self,
        connection: Option<ConnectionId>,
        buyer_id: &str,
        limit: i64,
    ) -> Result<Vec<Exchange>, StoreError> {
        let (_, reference) = Node::Buyer(connection, buyer_id).key();
        let ids: Vec<(i64, Option<i64>)> = read!(&self.db, |c| {
            sqlx::query_as(
                "SELECT CAST(mn.ref AS BIGINT), CAST(an.ref AS BIGINT) FROM graph_nodes b \
                 JOIN graph_edges asked ON asked.src = b.id AND asked.kind = 'asked' \
                 JOIN graph_nodes mn ON mn.id = asked.dst \
                 LEFT JOIN graph_edges ab ON ab.src = mn.id AND ab.kind = 'answered_by' \
                 LEFT JOIN graph_nodes an ON an.id = ab.dst \
                 WHERE b.kind = 'buyer' AND b.ref = $1 \
                 ORDER BY CAST(mn.ref AS BIGINT) DESC LIMIT $2",
            )
            .bind(&reference)
            .bind(limit)
            .fetch_all(c)
            .await
        })?;
        let mut out = Vec::with_capacity(ids.len());
        for (message, answer) in ids {
            out.push(Exchange {
                message: self.chat_message(ChatMessageId(message)).await?,
                answer: match answer {
                    Some(a) => Some(self.answer(AnswerId(a)).await?),
                    None => None,
                },
            });
        }
        Ok(out)
    }

    /// The whole chat with a buyer (questions and replies), oldest first.
    pub async fn conversation(
        &self,
        connection: Option<ConnectionId>,
        buyer_id: &str,
        limit: i64,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        let Some(connection) = connection else {
            return Ok(Vec::new());
        };
        let rows: Vec<MessageRow> = read!(&self.db, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT * FROM (SELECT {MESSAGE_COLUMNS} FROM chat_messages m \
                 WHERE m.connection_id = $1 AND m.buyer_id = $2 \
                 ORDER BY m.id DESC LIMIT $3) t ORDER BY id"
            )))
            .bind(connection.get())
            .bind(buyer_id)
            .bind(limit)
            .fetch_all(c)
            .await
        })?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Per product, the FAQ entries that answered most questions about it — read through the
    /// graph (product ← contains ← order ← about ← message → answered_by → answer → used → faq).
    pub async fn most_asked(&self, limit: i64) -> Result<Vec<AskedCount>, StoreError> {
        let rows: Vec<(String, i64, String, i64)> = read!(&self.db, |c| {
            sqlx::query_as(
                "SELECT p.ref, f.id, f.key, COUNT(DISTINCT m.id) AS n FROM graph_nodes p \
                 JOIN graph_edges ct ON ct.dst = p.id AND ct.kind = 'contains' \
                 JOIN graph_edges ab ON ab.dst = ct.src AND ab.kind = 'about' \
                 JOIN graph_nodes m ON m.id = ab.src \
                 JOIN graph_edges ans ON ans.src = m.id AND ans.kind = 'answered_by' \
                 JOIN graph_edges u ON u.src = ans.dst AND u.kind = 'used' \
                 JOIN graph_nodes fn ON fn.id = u.dst \
                 JOIN faq_entries f ON CAST(f.id AS TEXT) = fn.ref \
                 WHERE p.kind = 'product' \
                 GROUP BY p.ref, f.id, f.key ORDER BY n DESC, p.ref, f.key LIMIT $1",
            )
            .bind(limit)
            .fetch_all(c)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(|(product, faq, key, questions)| AskedCount {
                product,
                faq_id: FaqId(faq),
                faq_key: key,
                questions,
            })
            .collect())
    }

    /// Questions the FAQ did not answer (generated, handed off or answered by a person),
    /// newest first: what to write new entries from.
    pub async fn unanswered_by_faq(&self, limit: i64) -> Result<Vec<Exchange>, StoreError> {
        let ids: Vec<(i64, i64)> = read!(&self.db, |c| {
            sqlx::query_as(
                "SELECT CAST(m.ref AS BIGINT), CAST(a.ref AS BIGINT) FROM graph_nodes a \
                 JOIN graph_edges ab ON ab.dst = a.id AND ab.kind = 'answered_by' \
                 JOIN graph_nodes m ON m.id = ab.src \
                 JOIN assistant_answers r ON CAST(r.id AS TEXT) = a.ref \
                 WHERE a.kind = 'answer' AND r.source <> 'faq' \
                 ORDER BY a.id DESC LIMIT $1",
            )
            .bind(limit)
            .fetch_all(c)
            .await
        })?;
        let mut out = Vec::with_capacity(ids.len());
        for (message, answer) in ids {
            out.push(Exchange {
                message: self.chat_message(ChatMessageId(message)).await?,
                answer: Some(self.answer(AnswerId(answer)).await?),
            });
        }
        Ok(out)
    }

    /// FAQ entries no answer ever used.
    pub async fn unused_faq(&self) -> Result<Vec<crate::faq::FaqEntry>, StoreError> {
        let used: Vec<String> = read!(&self.db, |c| {
            sqlx::query_scalar(
                "SELECT DISTINCT f.ref FROM graph_nodes f \
                 JOIN graph_edges u ON u.dst = f.id AND u.kind = 'used' WHERE f.kind = 'faq'",
            )
            .fetch_all(c)
            .await
        })?;
        Ok(self
            .faq_entries()
            .await?
            .into_iter()
            .filter(|e| !used.contains(&e.id.get().to_string()))
            .collect())
    }
}

/// Writes the reply to the chat and links it to its answer.
async fn reply(
    tx: &mut Tx,
    q: &ChatMessage,
    answer_id: i64,
    answer_node: i64,
    sender: Sender,
    text: &str,
    now: Ts,
) -> Result<(), StoreError> {
    let reply = NewQuestion {
        connection_id: q.connection_id,
        buyer_id: &q.buyer_id,
        buyer_name: q.buyer_name.as_deref(),
        order_id: q.order_id,
        text,
        external_id: None,
    };
    let reply_id = insert_message(tx, &reply, sender, now).await?;
    write!(tx, |c| {
        sqlx::query("UPDATE assistant_answers SET reply_id = $2 WHERE id = $1")
            .bind(answer_id)
            .bind(reply_id)
            .execute(c)
            .await
            .map(|r| r.rows_affected())
    })?;
    let r = node(tx, Node::Message(reply_id), None, now).await?;
    edge(tx, answer_node, "sent_as", r, now).await?;
    if q.connection_id.is_some() {
        let job = crate::jobs::NewJob {
            priority: 20,
            max_attempts: 8,
            unique_key: Some(format!("chat-reply:{reply_id}")),
            ..crate::jobs::NewJob::new(CHAT_REPLY_JOB, serde_json::json!({ "reply": reply_id }))
        };
        crate::jobs::enqueue_in(tx, &job).await?;
    }
    Ok(())
}
