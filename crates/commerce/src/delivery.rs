//! The delivery job: for each waiting delivery of a paid order, claim its goods, write its
//! message, and hand it to the outbox (`Store::prepare_delivery`): every enabled channel gets
//! its send, or the delivery page confirms it when no channel is configured. A delivery short of stock is marked for an operator; claimers
//! meeting locked rows try again shortly.

use crate::Commerce;
use cartwright_core::digital::{DeliveryState, DigitalProduct, ProductKind, StockItem};
use cartwright_core::ids::{DeliveryId, MarketOrderId, SendId};
use cartwright_jobs::{BoxFuture, Handler, Outcome};
use cartwright_store::{Claim, Delivery, Job, MarketOrder, Prepared, StoreError};
use std::sync::Arc;
use std::time::Duration;

/// Runs `delivery` jobs.
pub struct DeliveryHandler(pub Arc<Commerce>);

impl Handler for DeliveryHandler {
    fn run(&self, job: Job) -> BoxFuture<Outcome> {
        let commerce = self.0.clone();
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
            match commerce.deliver(MarketOrderId(id)).await {
                Ok(outcome) => outcome,
                Err(e) => Outcome::Retry {
                    error: format!("the database failed: {e}"),
                    after: Duration::from_secs(1),
                },
            }
        })
    }
}

impl Commerce {
    /// Delivers what is waiting of an order.
    pub async fn deliver(&self, order_id: MarketOrderId) -> Result<Outcome, StoreError> {
        let order = self.store.market_order(order_id).await?;
        if !order.state.is_paid() {
            return Ok(Outcome::Done);
        }
        let mut busy = false;
        for delivery in self.store.deliveries_of(order_id).await? {
            match delivery.state {
                DeliveryState::Waiting => {}
                // Claimed by a run that stopped before it was sent: sent now, with the same
                // items (claimed once, for good).
                DeliveryState::Sending => {
                    let items = self.store.delivery_items(delivery.id).await?;
                    self.send(&order, &delivery, &items).await?;
                    continue;
                }
                _ => continue,
            }
            // Claimed, its message written and in the outbox: one transaction.
            let mut alerts = false;
            let claim = match self.parts(&delivery).await? {
                Some((product, content, link)) => {
                    alerts = product.low_stock > 0;
                    let (claim, prepared) = self
                        .store
                        .claim_and_prepare(delivery.id, |items| {
                            render(
                                &product,
                                &order,
                                delivery.units,
                                items,
                                content.as_deref(),
                                &link,
                            )
                        })
                        .await?;
                    if let Some(Prepared::Unreachable) = prepared {
                        tracing::warn!(order = %order.external_id, line = delivery.line_no, "no configured channel reaches this buyer; the delivery waits for an operator");
                    }
                    claim
                }
                None => Claim::NoProduct,
            };
            match claim {
                Claim::Claimed(items) => {
                    if let Some(product) = delivery.product_id
                        && alerts
                        && !items.is_empty()
                        && let Some(alert) = self.store.note_low_stock(product).await?
                    {
                        tracing::warn!("{}", alert.message);
                    }
                }
                Claim::Busy => busy = true,
                Claim::Short { needed, available } => {
                    let why = format!(
                        "not enough stock: {needed} item{} needed, {available} available; it is delivered by itself once stock is imported",
                        if needed == 1 { "" } else { "s" }
                    );
                    // The alert goes with the mark, once per delivery that starts waiting.
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
                }
                Claim::NoProduct => {
                    self.store
                        .delivery_needs_attention(
                            delivery.id,
                            "no listing maps this line to a product: map it, then deliver again",
                            None,
                        )
                        .await?;
                }
                Claim::NotWaiting(_) => {}
            }
        }
        Ok(if busy {
            Outcome::Defer {
                reason: "other deliveries are claiming the same stock".into(),
                after: Duration::from_millis(100),
            }
        } else {
            Outcome::Done
        })
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
