//! The marketplace's buyer chat and the assistant: new buyer messages are read from the
//! chat API (on the marketplace's chat push, and with every reconciliation poll) from where
//! the last read stopped, each handed to the assistant with its order and buyer; a reply the
//! assistant or a person sends goes back through the seller chat by its own job, once.

use crate::Commerce;
use crate::ingest::IngestError;
use cartwright_core::ids::{ChatMessageId, ConnectionId};
use cartwright_jobs::{BoxFuture, Handler, Outcome};
use cartwright_store::{Job, NewQuestion};
use std::sync::Arc;
use std::time::Duration;

/// Runs `chat_reply` jobs: a reply into the marketplace chat.
pub struct ChatReplyHandler(pub Arc<Commerce>);

impl Handler for ChatReplyHandler {
    fn run(&self, job: Job) -> BoxFuture<Outcome> {
        let commerce = self.0.clone();
        Box::pin(async move {
            let Some(id) = job.payload.get("reply").and_then(serde_json::Value::as_i64) else {
                return Outcome::Fail {
                    error: format!("the job's payload names no reply: {}", job.payload),
                };
            };
            match commerce.send_reply(ChatMessageId(id)).await {
                Ok(()) => Outcome::Done,
                // The marketplace refuses the reply's shape (a buyer id that is not its):
                // sending again cannot help.
                Err(IngestError::Market(crate::shopee::ShopeeError::Shape(e))) => {
                    Outcome::Fail { error: e }
                }
                Err(e) => Outcome::Retry {
                    error: e.to_string(),
                    after: Duration::from_secs(5),
                },
            }
        })
    }
}

impl Commerce {
    /// Reads a shop's new buyer messages and hands each to the assistant; returns how many.
    /// Without an assistant (a process that serves no API) nothing is read.
    pub async fn read_chat(&self, id: ConnectionId) -> Result<usize, IngestError> {
        let Some(assistant) = self.assistant.get() else {
            return Ok(0);
        };
        let lock = self
            .chat_reads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id)
            .or_default()
            .clone();
        let _one = lock.lock().await;
        let client = self.client(id).await?;
        let mut cursor = self.store.chat_cursor(id).await?;
        let mut read = 0;
        loop {
            let (messages, more) = client.chat_messages(cursor.as_deref()).await?;
            for m in &messages {
                let order = match &m.order_sn {
                    Some(sn) => self.store.market_order_by_number(id, sn).await?,
                    None => None,
                };
                let asked = assistant
                    .ask(&NewQuestion {
                        connection_id: Some(id),
                        buyer_id: &m.buyer_id,
                        buyer_name: m.buyer_name.as_deref(),
                        order_id: order,
                        text: &m.text,
                        external_id: Some(&m.message_id),
                    })
                    .await;
                match asked {
                    Ok(_) => {}
                    // An order Cartwright has under another buyer is not theirs to ask about:
                    // the message is kept without it.
                    Err(cartwright_assistant::AssistantError::Store(
                        cartwright_store::StoreError::Invalid(_),
                    )) => {
                        assistant
                            .ask(&NewQuestion {
                                connection_id: Some(id),
                                buyer_id: &m.buyer_id,
                                buyer_name: m.buyer_name.as_deref(),
                                order_id: None,
                                text: &m.text,
                                external_id: Some(&m.message_id),
                            })
                            .await
                            .map_err(|e| IngestError::Push(e.to_string()))?;
                    }
                    Err(cartwright_assistant::AssistantError::Store(e)) => return Err(e.into()),
                    Err(e) => return Err(IngestError::Push(e.to_string())),
                }
                self.store.set_chat_cursor(id, &m.message_id).await?;
                cursor = Some(m.message_id.clone());
                read += 1;
            }
            if !more || messages.is_empty() {
                return Ok(read);
            }
        }
    }

    /// Sends a reply into its marketplace chat, unless it was sent already.
    async fn send_reply(&self, id: ChatMessageId) -> Result<(), IngestError> {
        let Some(reply) = self.store.reply_to_send(id).await? else {
            return Ok(());
        };
        let Some(connection) = reply.connection_id else {
            return Ok(());
        };
        let mut text = reply.text.clone();
        if text.contains(cartwright_assistant::service::LINK) {
            let answer = self.store.answer_for_reply(id).await?;
            let filled = match (self.assistant.get(), answer) {
                (Some(assistant), Some(answer)) => assistant
                    .with_link(&answer)
                    .await
                    .map_err(|e| IngestError::Push(e.to_string()))?,
                _ => None,
            };
            text = filled.unwrap_or_else(|| text.replace(cartwright_assistant::service::LINK, ""));
        }
        let client = self.client(connection).await?;
        let sent = client.send_message(&reply.buyer_id, &text).await?;
        // A marketplace that gives no id still gets one unique mark per reply.
        let mark = if sent.is_empty() {
            format!("sent:{}", id.get())
        } else {
            sent
        };
        self.store.reply_sent(id, &mark).await?;
        Ok(())
    }
}
