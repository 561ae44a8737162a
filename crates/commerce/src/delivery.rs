//! The delivery job: for each waiting delivery of a paid order, claim its goods, write its
//! message, and hand it to the outbox: every enabled channel gets its send, or the delivery
//! page confirms it when no channel is configured. The delivery jobs running at once hand
//! their orders to one task that gathers them into batches, one transaction for a batch's
//! claims and outbox (a few batches run at once), so a burst of paid orders costs a few
//! statements per order. A delivery
//! short of stock is marked for an operator; claimers meeting locked rows try again shortly.

use crate::Commerce;
use cartwright_core::digital::{DeliveryState, DigitalProduct, ProductKind, StockItem};
use cartwright_core::ids::{DeliveryId, DigitalProductId, MarketOrderId, SendId};
use cartwright_jobs::{BoxFuture, Handler, Outcome};
use cartwright_store::{Claim, Delivery, Job, MarketOrder, Prepared, StoreError};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// At most this many orders are delivered together.
const BATCH: usize = 64;
/// Why a delivery whose line no listing maps waits for an operator.
const UNMAPPED: &str = "no listing maps this line to a product: map it, then deliver again";
/// Batches delivered at once: one batch's reads and commit overlap another's work.
const BATCHES_AT_ONCE: usize = 3;

/// Runs `delivery` jobs, batching the orders of the jobs that run at once.
pub struct DeliveryHandler {
    queue: mpsc::Sender<Asked>,
}

struct Asked {
    order: MarketOrderId,
    answer: oneshot::Sender<Outcome>,
}

impl DeliveryHandler {
    /// Over `commerce`; starts the task that delivers the batches (so inside a Tokio
    /// runtime), which stops when the handler is dropped.
    pub fn new(commerce: Arc<Commerce>) -> Self {
        let (queue, mut asked) = mpsc::channel::<Asked>(4 * BATCH);
        tokio::spawn(async move {
            let running = Arc::new(Semaphore::new(BATCHES_AT_ONCE));
            while let Some(first) = asked.recv().await {
                // The batch is gathered once a slot is free, so it holds what queued meanwhile.
                let Ok(slot) = running.clone().acquire_owned().await else {
                    return;
                };
                let mut batch = Vec::with_capacity(BATCH);
                batch.push(first);
                while batch.len() < BATCH {
                    match asked.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                let commerce = commerce.clone();
                tokio::spawn(async move {
                    answer(&commerce, batch).await;
                    drop(slot);
                });
            }
        });
        DeliveryHandler { queue }
    }
}

/// Delivers a batch and answers each of its jobs.
async fn answer(commerce: &Arc<Commerce>, batch: Vec<Asked>) {
    let orders: Vec<MarketOrderId> = batch.iter().map(|a| a.order).collect();
    let mut outcomes = deliver_batch(commerce, &orders).await;
    if outcomes.is_none() && orders.len() > 1 {
        // What failed the batch fails one order, not the others: each alone.
        let mut each = Vec::with_capacity(orders.len());
        for order in &orders {
            each.push(match deliver_batch(commerce, &[*order]).await {
                Some(mut one) => one
                    .pop()
                    .unwrap_or_else(|| retry("the delivery gave no outcome")),
                None => retry("the delivery failed; see the log"),
            });
        }
        outcomes = Some(each);
    }
    let outcomes =
        outcomes.unwrap_or_else(|| vec![retry("the delivery failed; see the log"); orders.len()]);
    for (asked, outcome) in batch.into_iter().zip(outcomes) {
        let _ = asked.answer.send(outcome);
    }
}

/// Delivers `orders` in a task of its own (a panic fails the batch, not the batching): their
/// outcomes, in order; `None` when the batch failed (logged).
async fn deliver_batch(commerce: &Arc<Commerce>, orders: &[MarketOrderId]) -> Option<Vec<Outcome>> {
    let (commerce, ids) = (commerce.clone(), orders.to_vec());
    match tokio::spawn(async move { commerce.deliver_many(&ids).await }).await {
        Ok(Ok(outcomes)) => Some(outcomes),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, orders = orders.len(), "delivering failed; trying again shortly");
            None
        }
        Err(e) => {
            tracing::error!(error = %e, orders = orders.len(), "delivering stopped");
            None
        }
    }
}

fn retry(error: &str) -> Outcome {
    Outcome::Retry {
        error: error.into(),
        after: Duration::from_secs(1),
    }
}

impl Handler for DeliveryHandler {
    fn run(&self, job: Job) -> BoxFuture<Outcome> {
        let queue = self.queue.clone();
        Box::pin(async move {
            let Some(id) = job
                .payload
                .get("market_order")
                .and_then(serde_json::Value::as_i64)
            else {
                return Outcome::Fail {
                    error: format!("the job's payload names no order: {}", job.payload),
                };
            };
            let (answer, outcome) = oneshot::channel();
            let asked = Asked {
                order: MarketOrderId(id),
                answer,
            };
            if queue.send(asked).await.is_err() {
                return retry("the deliveries are stopping");
            }
            outcome
                .await
                .unwrap_or_else(|_| retry("the deliveries are stopping"))
        })
    }
}

/// What a delivery's message is made of: its product, its order, a shared product's
/// content, the page's link.
struct Parts<'a> {
    delivery: &'a Delivery,
    order: &'a MarketOrder,
    product: &'a DigitalProduct,
    content: Option<&'a str>,
    link: String,
}

impl Commerce {
    /// Delivers what is waiting of these orders, together: each order's outcome, in order.
    pub async fn deliver_many(&self, ids: &[MarketOrderId]) -> Result<Vec<Outcome>, StoreError> {
        let orders: HashMap<MarketOrderId, MarketOrder> = self
            .store
            .market_orders_by_id(ids)
            .await?
            .into_iter()
            .filter(|o| o.state.is_paid())
            .map(|o| (o.id, o))
            .collect();
        let mut paid: Vec<MarketOrderId> = orders.keys().copied().collect();
        paid.sort_unstable();
        let deliveries = self.store.deliveries_of_orders(&paid).await?;
        let mut waiting = Vec::new();
        for delivery in &deliveries {
            let Some(order) = orders.get(&delivery.order_id) else {
                continue;
            };
            match (delivery.state, delivery.product_id) {
                (DeliveryState::Waiting, Some(product)) => waiting.push((delivery, order, product)),
                (DeliveryState::Waiting, None) => {
                    self.store
                        .delivery_needs_attention(delivery.id, UNMAPPED, None)
                        .await?;
                }
                // Claimed by a run that stopped before it was sent: sent now, with the same
                // items (claimed once, for good).
                (DeliveryState::Sending, _) => {
                    let items = self.store.delivery_items(delivery.id).await?;
                    self.send(order, delivery, &items).await?;
                }
                _ => {}
            }
        }
        // Each product read once for the batch; the messages' parts, by delivery.
        let mut products: HashMap<DigitalProductId, (DigitalProduct, Option<String>)> =
            HashMap::new();
        for (_, _, product) in &waiting {
            if !products.contains_key(product) {
                let definition = self.store.digital_product_definition(*product).await?;
                let content = match definition.kind {
                    ProductKind::Shared => self.store.digital_product_content(*product).await?,
                    _ => None,
                };
                products.insert(*product, (definition, content));
            }
        }
        let claiming: Vec<DeliveryId> = waiting.iter().map(|(d, _, _)| d.id).collect();
        let mut tokens = self.store.delivery_tokens(&claiming).await?;
        let mut parts: HashMap<DeliveryId, Parts<'_>> = HashMap::with_capacity(waiting.len());
        for (delivery, order, product) in &waiting {
            let (Some((product, content)), Some(token)) =
                (products.get(product), tokens.remove(&delivery.id))
            else {
                return Err(StoreError::Corrupt(format!(
                    "delivery {} has no page key",
                    delivery.id
                )));
            };
            parts.insert(
                delivery.id,
                Parts {
                    delivery,
                    order,
                    product,
                    content: content.as_deref(),
                    link: self.delivery_link(&token),
                },
            );
        }
        let handed = self
            .store
            .claim_and_prepare_many(&claiming, |id, items| {
                parts.get(&id).map_or_else(String::new, |p| {
                    render(
                        p.product,
                        p.order,
                        p.delivery.units,
                        items,
                        p.content,
                        &p.link,
                    )
                })
            })
            .await?;
        let mut busy = HashSet::new();
        let mut low = HashSet::new();
        for handed in handed {
            let Some(p) = parts.get(&handed.id) else {
                continue;
            };
            let (order, delivery) = (p.order, p.delivery);
            if let Some(Prepared::Unreachable) = handed.prepared {
                tracing::warn!(order = %order.external_id, line = delivery.line_no, "no configured channel reaches this buyer; the delivery waits for an operator");
            }
            match handed.claim {
                Claim::Claimed(items) => {
                    if p.product.low_stock > 0 && !items.is_empty() {
                        low.insert(p.product.id);
                    }
                }
                Claim::Busy => {
                    busy.insert(order.id);
                }
                Claim::Short { needed, available } => {
                    self.wait_for_stock(order, delivery, needed, available)
                        .await?;
                }
                Claim::NoProduct => {
                    self.store
                        .delivery_needs_attention(delivery.id, UNMAPPED, None)
                        .await?;
                }
                Claim::NotWaiting(_) => {}
            }
        }
        for product in low {
            if let Some(alert) = self.store.note_low_stock(product).await? {
                tracing::warn!("{}", alert.message);
            }
        }
        Ok(ids
            .iter()
            .map(|id| {
                if busy.contains(id) {
                    Outcome::Defer {
                        reason: "other deliveries are claiming the same stock".into(),
                        after: Duration::from_millis(100),
                    }
                } else {
                    Outcome::Done
                }
            })
            .collect())
    }

    /// Marks a delivery short of stock as waiting for it, with its alert (once per delivery
    /// that starts waiting).
    async fn wait_for_stock(
        &self,
        order: &MarketOrder,
        delivery: &Delivery,
        needed: i64,
        available: i64,
    ) -> Result<(), StoreError> {
        let why = format!(
            "not enough stock: {needed} item{} needed, {available} available; it is delivered by itself once stock is imported",
            if needed == 1 { "" } else { "s" }
        );
        let alert = cartwright_core::order::NewEvent {
            batch_id: None,
            order_id: None,
            rewards_run_id: None,
            account_id: None,
            phase: Some("delivery".into()),
            step: Some(order.external_id.clone()),
            level: cartwright_core::order::Level::Warn,
            message: format!(
                "order {} line {} waits for stock: {why}",
                order.external_id, delivery.line_no
            ),
            at: time::OffsetDateTime::now_utc(),
        };
        self.store
            .delivery_needs_attention(delivery.id, &why, Some(&alert))
            .await?;
        tracing::warn!(order = %order.external_id, line = delivery.line_no, "{why}");
        Ok(())
    }

    /// Writes a claimed delivery's message and puts it in the outbox.
    async fn send(
        &self,
        order: &MarketOrder,
        delivery: &Delivery,
        items: &[StockItem],
    ) -> Result<(), StoreError> {
        let Some(message) = self.message(order, delivery, items).await? else {
            return Ok(());
        };
        if let Prepared::Unreachable = self.store.prepare_delivery(delivery.id, &message).await? {
            tracing::warn!(order = %order.external_id, line = delivery.line_no, "no configured channel reaches this buyer; the delivery waits for an operator");
        }
        Ok(())
    }

    /// What a delivery's message is made of besides its items: the product (its current
    /// template), a shared product's content, the page's link. None without a product.
    async fn parts(
        &self,
        delivery: &Delivery,
    ) -> Result<Option<(DigitalProduct, Option<String>, String)>, StoreError> {
        let Some(product_id) = delivery.product_id else {
            return Ok(None);
        };
        let product = self.store.digital_product_definition(product_id).await?;
        let content = match product.kind {
            ProductKind::Shared => self.store.digital_product_content(product_id).await?,
            _ => None,
        };
        let link = self.delivery_link(&self.store.delivery_token(delivery.id).await?);
        Ok(Some((product, content, link)))
    }

    /// A delivery's message from its product's current template (none without a product).
    async fn message(
        &self,
        order: &MarketOrder,
        delivery: &Delivery,
        items: &[StockItem],
    ) -> Result<Option<String>, StoreError> {
        Ok(self.parts(delivery).await?.map(|(product, content, link)| {
            render(
                &product,
                order,
                delivery.units,
                items,
                content.as_deref(),
                &link,
            )
        }))
    }

    /// Sends a delivery again on an operator's word: the same items (never new ones), the
    /// message written anew from the product's template, through every enabled channel.
    pub async fn resend(
        &self,
        id: DeliveryId,
        actor: &cartwright_store::Actor,
    ) -> Result<Vec<SendId>, StoreError> {
        let delivery = self.store.delivery(id).await?;
        let order = self.store.market_order(delivery.order_id).await?;
        let items = self.store.delivery_items(id).await?;
        let message = self
            .message(&order, &delivery, &items)
            .await?
            .unwrap_or_default();
        self.store.resend_delivery(id, &message, actor).await
    }
}

/// A delivery's message: the product's template filled in for this order.
pub fn render(
    product: &DigitalProduct,
    order: &MarketOrder,
    units: i64,
    items: &[StockItem],
    content: Option<&str>,
    link: &str,
) -> String {
    let first = items.first();
    let all = items
        .iter()
        .map(|i| match i {
            StockItem::Code { code } => code.clone(),
            StockItem::Credential {
                login,
                password,
                notes,
            } => {
                if notes.is_empty() {
                    format!("{login} / {password}")
                } else {
                    format!("{login} / {password} ({notes})")
                }
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    product.message.render(|name| {
        Some(match name {
            "buyer.name" => order.buyer.name.clone().unwrap_or_default(),
            "buyer.id" => order.buyer.id.clone().unwrap_or_default(),
            "order.number" => order.external_id.clone(),
            "order.marketplace" => order.marketplace.clone(),
            "product.name" => product.name.clone(),
            "product.sku" => product.sku.clone(),
            "units" => units.to_string(),
            "delivery.link" => link.to_owned(),
            "content" => content.unwrap_or_default().to_owned(),
            "items" => all.clone(),
            "item.code" => match first {
                Some(StockItem::Code { code }) => code.clone(),
                _ => String::new(),
            },
            "item.login" | "item.password" | "item.notes" => match first {
                Some(StockItem::Credential {
                    login,
                    password,
                    notes,
                }) => match name {
                    "item.login" => login.clone(),
                    "item.password" => password.clone(),
                    _ => notes.clone(),
                },
                _ => String::new(),
            },
            _ => return None,
        })
    })
}
