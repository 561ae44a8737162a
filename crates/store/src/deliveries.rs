//! Deliveries: one per line of a paid marketplace order. **The claim** ([`Store::claim_delivery`])
//! is the one place items leave stock: one statement reserves all of a delivery's items or the
//! transaction takes none; on PostgreSQL the rows are locked and other claimers skip them, on
//! SQLite the one writer claims alone; an item names its delivery for good, and a delivery is
//! claimed only from `waiting`. So no item goes to two buyers and no order gets two sets.

use crate::db::{Arg, Sql, Ts, Tx, read, write};
use crate::market::MarketOrder;
use crate::{Store, StoreError};
use cartwright_core::digital::{DeliveryMove, DeliveryState, StockItem};
use cartwright_core::ids::{DeliveryId, DigitalProductId, MarketOrderId};
use cartwright_core::market::{MarketMove, MarketOrderState};
use serde::Serialize;
use utoipa::ToSchema;

/// A delivery as stored (its goods and link are sealed and not part of it).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Delivery {
    /// Identifier.
    pub id: DeliveryId,
    /// Its order.
    pub order_id: MarketOrderId,
    /// The order's line it delivers.
    pub line_no: i64,
    /// The product, when a listing maps the line to one.
    pub product_id: Option<DigitalProductId>,
    /// Units of the product.
    pub units: i64,
    /// Where it stands.
    pub state: DeliveryState,
    /// Why it waits for an operator, when it does.
    pub attention: Option<String>,
    /// When its goods were claimed.
    #[serde(with = "time::serde::rfc3339::option")]
    pub claimed_at: Option<time::OffsetDateTime>,
    /// When a channel confirmed.
    #[serde(with = "time::serde::rfc3339::option")]
    pub delivered_at: Option<time::OffsetDateTime>,
}

/// One delivery of a batch handed over ([`Store::claim_and_prepare_many`]).
#[derive(Debug, Clone)]
pub struct Handed {
    /// The delivery.
    pub id: DeliveryId,
    /// What its claim did.
    pub claim: Claim,
    /// When it claimed, what its outbox did.
    pub prepared: Option<crate::outbox::Prepared>,
}

/// What a claim did.
#[derive(Debug, Clone)]
pub enum Claim {
    /// The delivery's items are reserved for it now (none for a product without stock).
    Claimed(Vec<StockItem>),
    /// Not enough items are available: nothing was taken.
    Short {
        /// Items the delivery needs.
        needed: i64,
        /// Items available.
        available: i64,
    },
    /// Enough items exist but others are claiming them right now: try again shortly.
    Busy,
    /// The delivery is not waiting (claimed already, or ended): nothing to do.
    NotWaiting(DeliveryState),
    /// No product is mapped to its line.
    NoProduct,
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: i64,
    order_id: i64,
    line_no: i64,
    product_id: Option<i64>,
    units: i64,
    state: String,
    attention: Option<String>,
    claimed_at: Option<Ts>,
    delivered_at: Option<Ts>,
}

const DELIVERY_COLUMNS: &str =
    "id, order_id, line_no, product_id, units, state, attention, claimed_at, delivered_at";

impl TryFrom<DeliveryRow> for Delivery {
    type Error = StoreError;
    fn try_from(r: DeliveryRow) -> Result<Self, StoreError> {
        Ok(Delivery {
            id: DeliveryId(r.id),
            order_id: MarketOrderId(r.order_id),
            line_no: r.line_no,
            product_id: r.product_id.map(DigitalProductId),
            units: r.units,
            state: r.state.parse().map_err(StoreError::Corrupt)?,
            attention: r.attention,
            claimed_at: r.claimed_at.map(|t| t.0),
            delivered_at: r.delivered_at.map(|t| t.0),
        })
    }
}

fn token_context(id: MarketOrderId, line: i64) -> Vec<u8> {
    format!("cartwright/delivery-link/{id}/{line}").into_bytes()
}

pub(crate) fn message_context(id: DeliveryId) -> Vec<u8> {
    format!("cartwright/delivery-message/{id}").into_bytes()
}

/// The SHA-256 of a delivery page's key: what finds the page.
pub fn token_hash(token: &str) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).to_vec()
}

/// Opens a delivery for line `line_no` (once: a second open of the same line does nothing),
/// with a fresh page key of 256 random bits.
pub(crate) async fn open_delivery(
    store: &Store,
    tx: &mut Tx,
    order: MarketOrderId,
    line_no: i64,
    product: Option<DigitalProductId>,
    units: i64,
) -> Result<(), StoreError> {
    use base64::Engine as _;
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand_bytes());
    let sealed = store
        .goods
        .seal(token.as_bytes(), &token_context(order, line_no));
    let attention = product
        .is_none()
        .then_some("no listing maps this line to a product: map it, and the order is delivered");
    write!(tx, |c| {
        sqlx::query(
            "INSERT INTO deliveries (order_id, line_no, product_id, units, token_hash, token, attention, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        )
        .bind(order.get())
        .bind(line_no)
        .bind(product.map(|p| p.get()))
        .bind(units)
        .bind(token_hash(&token))
        .bind(sealed)
        .bind(attention)
        .bind(Ts::now())
        .execute(c)
        .await
        .map(|r| r.rows_affected())
    })?;
    Ok(())
}

fn rand_bytes() -> [u8; 32] {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    b
}

/// A cancellation or refund takes back what an order was given: items of deliveries that did
/// not go out return to stock (`Release`), items that went out are revoked (`Revoke`), never
/// sold again.
pub(crate) async fn take_back(tx: &mut Tx, order: MarketOrderId) -> Result<(), StoreError> {
    let now = Ts::now();
    for (by, items_to) in [
        (DeliveryMove::Release, "available"),
        (DeliveryMove::Revoke, "revoked"),
    ] {
        let sql = format!(
            "UPDATE deliveries SET state = $2, ended_at = $3 WHERE order_id = $1 AND state IN ({}) RETURNING id",
            by.from_sql()
        );
        let ids: Vec<i64> = write!(tx, |c| {
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(order.get())
                .bind(by.to().as_str())
                .bind(now)
                .fetch_all(c)
                .await
        })?;
        for id in ids {
            let back = items_to == "available";
            write!(tx, |c| {
                sqlx::query(
                    "UPDATE stock_items SET state = $2, delivery_id = CASE WHEN $3 THEN NULL ELSE delivery_id END, \
                     reserved_at = CASE WHEN $3 THEN NULL ELSE reserved_at END WHERE delivery_id = $1",
                )
                .bind(id)
                .bind(items_to)
                .bind(back)
                .execute(c)
                .await
                .map(|r| r.rows_affected())
            })?;
        }
    }
    Ok(())
}

/// What a buyer's delivery page shows.
#[derive(Debug, Clone)]
pub struct DeliveryPage {
    /// The product's name.
    pub product: String,
    /// The marketplace's order number.
    pub order_number: String,
    /// The message with the goods; `None` while a reveal-once page waits for its button, and
    /// after it was revealed.
    pub message: Option<String>,
    /// Whether the goods show once, behind a button.
    pub reveal_once: bool,
    /// When a reveal-once page's goods were revealed.
    pub revealed_at: Option<time::OffsetDateTime>,
    /// When it was delivered.
    pub delivered_at: Option<time::OffsetDateTime>,
    /// How many times the page was opened, this time included.
    pub views: i64,
}

impl Store {
    /// The delivery page a key opens, when the key is one, its message is written and it has
    /// not expired; counted. With `reveal`, a reveal-once page shows its goods, the first time
    /// only (one atomic update decides which request that is).
    pub async fn delivery_page(
        &self,
        token: &str,
        reveal: bool,
    ) -> Result<Option<DeliveryPage>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            id: i64,
            message: Option<Vec<u8>>,
            delivered_at: Option<Ts>,
            revealed_at: Option<Ts>,
            name: Option<String>,
            reveal_once: Option<bool>,
            external_id: String,
        }
        let now = Ts::now();
        let mut tx = self.begin().await?;
        let row: Option<Row> = write!(&mut tx, |c| {
            sqlx::query_as(
                "SELECT d.id, d.message, d.delivered_at, d.revealed_at, p.name, p.reveal_once, o.external_id FROM deliveries d \
                 JOIN market_orders o ON o.id = d.order_id LEFT JOIN digital_products p ON p.id = d.product_id \
                 WHERE d.token_hash = $1 AND d.state IN ('sending', 'delivered') AND d.message IS NOT NULL \
                 AND (d.expires_at IS NULL OR d.expires_at > $2)",
            )
            .bind(token_hash(token))
            .bind(now)
            .fetch_optional(c)
            .await
        })?;
        let Some(row) = row else {
            return Ok(None);
        };
        let reveal_once = row.reveal_once.unwrap_or(false);
        let mut revealed_at = row.revealed_at.map(|t| t.0);
        let shows = if !reveal_once {
            true
        } else if reveal && revealed_at.is_none() {
            let first = write!(&mut tx, |c| {
                sqlx::query(
                    "UPDATE deliveries SET revealed_at = $2 WHERE id = $1 AND revealed_at IS NULL",
                )
                .bind(row.id)
                .bind(now)
                .execute(c)
                .await
                .map(|r| r.rows_affected())
            })?;
            first == 1
        } else {
            false
        };
        if shows && reveal_once {
            revealed_at = Some(now.0);
        }
        let views: i64 = write!(&mut tx, |c| {
            sqlx::query_scalar(
                "UPDATE deliveries SET reveals = reveals + 1 WHERE id = $1 RETURNING reveals",
            )
            .bind(row.id)
            .fetch_one(c)
            .await
        })?;
        tx.commit().await?;
        let message = match row.message {
            Some(sealed) if shows => Some(self.open_message(DeliveryId(row.id), &sealed)?),
            _ => None,
        };
        Ok(Some(DeliveryPage {
            product: row.name.unwrap_or_default(),
            order_number: row.external_id,
            message,
            reveal_once,
            revealed_at,
            delivered_at: row.delivered_at.map(|t| t.0),
            views,
        }))
    }

    /// One delivery.
    pub async fn delivery(&self, id: DeliveryId) -> Result<Delivery, StoreError> {
        let row: Option<DeliveryRow> = read!(&self.db, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = $1"
            )))
            .bind(id.get())
            .fetch_optional(c)
            .await
        })?;
        row.ok_or_else(|| StoreError::not_found("delivery", id.get()))?
            .try_into()
    }

    /// A marketplace order's deliveries, by line.
    pub async fn deliveries_of(&self, order: MarketOrderId) -> Result<Vec<Delivery>, StoreError> {
        self.deliveries_of_orders(&[order]).await
    }

    /// These marketplace orders' deliveries, by order and line.
    pub async fn deliveries_of_orders(
        &self,
        orders: &[MarketOrderId],
    ) -> Result<Vec<Delivery>, StoreError> {
        let mut sql = Sql::new(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE order_id IN "
        ));
        sql.list(orders.iter().map(|o| o.get()))
            .push(" ORDER BY order_id, line_no");
        let rows: Vec<DeliveryRow> = self.db.rows(&sql).await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Claims a waiting delivery's items from stock: all of them, or none. See the module.
    pub async fn claim_delivery(&self, id: DeliveryId) -> Result<Claim, StoreError> {
        let mut tx = self.begin().await?;
        let claim = self.claim_in(&mut tx, id).await?;
        if let Claim::Claimed(_) = claim {
            let order = order_id_of(&mut tx, id).await?;
            self.settle_order(&mut tx, order).await?;
            tx.commit().await?;
        }
        Ok(claim)
    }

    /// Claims a waiting delivery's items and, in the same transaction, writes its message
    /// (`message` renders it from the items) and puts it in the outbox: one commit for the
    /// whole hand-over. What the claim did, and when it claimed, what the outbox did.
    pub async fn claim_and_prepare(
        &self,
        id: DeliveryId,
        message: impl FnOnce(&[StockItem]) -> String,
    ) -> Result<(Claim, Option<crate::outbox::Prepared>), StoreError> {
        let mut message = Some(message);
        let mut handed = self
            .claim_and_prepare_many(&[id], |_, items| {
                message.take().map(|m| m(items)).unwrap_or_default()
            })
            .await?;
        handed
            .pop()
            .map(|h| (h.claim, h.prepared))
            .ok_or_else(|| StoreError::not_found("delivery", id.get()))
    }

    /// [`Store::claim_and_prepare`] for many deliveries in one transaction (one commit for
    /// all, a handful of statements for the batch besides one claim of stock per delivery):
    /// what each delivery's claim did and, when it claimed, what its outbox did, in the order
    /// of `ids`. A delivery that is short of stock or meets claimed rows takes nothing and
    /// does not hold the others back. `message` renders a claimed delivery's message.
    pub async fn claim_and_prepare_many(
        &self,
        ids: &[DeliveryId],
        mut message: impl FnMut(DeliveryId, &[StockItem]) -> String,
    ) -> Result<Vec<Handed>, StoreError> {
        let mut tx = self.begin().await?;
        let claims = self.claim_many_in(&mut tx, ids).await?;
        let mut claimed = Vec::new();
        for (id, claim) in &claims {
            if let Claim::Claimed(items) = claim {
                claimed.push((*id, message(*id, items)));
            }
        }
        let prepared = self.prepare_fresh_in(&mut tx, &claimed).await?;
        tx.commit().await?;
        let mut prepared: std::collections::HashMap<DeliveryId, crate::outbox::Prepared> =
            prepared.into_iter().collect();
        Ok(claims
            .into_iter()
            .map(|(id, claim)| Handed {
                id,
                prepared: prepared.remove(&id),
                claim,
            })
            .collect())
    }

    /// The claim, inside `tx` (which the caller commits only when it claimed; the order is
    /// not settled here).
    async fn claim_in(&self, tx: &mut Tx, id: DeliveryId) -> Result<Claim, StoreError> {
        let mut claims = self.claim_many_in(tx, &[id]).await?;
        claims
            .pop()
            .map(|(_, c)| c)
            .ok_or_else(|| StoreError::not_found("delivery", id.get()))
    }

    /// Claims each of these deliveries inside `tx`, in the order of `ids` (a missing one is
    /// not found). The rows are locked in id order; the deliveries that claimed are moved to
    /// sending in one statement. Items taken by a delivery that ends short are put back in
    /// the transaction, so committing is safe whatever each claim did.
    async fn claim_many_in(
        &self,
        tx: &mut Tx,
        ids: &[DeliveryId],
    ) -> Result<Vec<(DeliveryId, Claim)>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            id: i64,
            state: String,
            product_id: Option<i64>,
            units: i64,
            kind: Option<String>,
        }
        let now = Ts::now();
        let mut locked = Sql::new(
            "SELECT id, state, product_id, units, (SELECT kind FROM digital_products p WHERE p.id = product_id) AS kind \
             FROM deliveries WHERE id IN ",
        );
        locked
            .list(ids.iter().map(|i| i.get()))
            .push(" ORDER BY id");
        locked.push(crate::db::RowLock::Update.sql(tx.backend()));
        let rows: Vec<Row> = tx.rows(&locked).await?;
        let mut claims = std::collections::HashMap::with_capacity(rows.len());
        for row in rows {
            let id = DeliveryId(row.id);
            let state: DeliveryState = row.state.parse().map_err(StoreError::Corrupt)?;
            let claim = if !DeliveryMove::Claim.from().contains(&state) {
                Claim::NotWaiting(state)
            } else if let (Some(product), Some(kind)) = (row.product_id, row.kind) {
                let kind: cartwright_core::digital::ProductKind =
                    kind.parse().map_err(StoreError::Corrupt)?;
                if kind.uses_stock() {
                    self.take_stock(tx, id, DigitalProductId(product), row.units, now)
                        .await?
                } else {
                    Claim::Claimed(Vec::new())
                }
            } else {
                Claim::NoProduct
            };
            claims.insert(id, claim);
        }
        let moved: Vec<i64> = claims
            .iter()
            .filter(|(_, c)| matches!(c, Claim::Claimed(_)))
            .map(|(id, _)| id.get())
            .collect();
        if !moved.is_empty() {
            let mut sql = Sql::new("UPDATE deliveries SET state = ");
            sql.arg(Arg::Text(DeliveryMove::Claim.to().as_str().into()))
                .push(", claimed_at = ")
                .arg(Arg::Ts(now.0))
                .push(", attention = NULL WHERE id IN ")
                .list(moved.iter().copied());
            sql.push(&format!(
                " AND state IN ({})",
                DeliveryMove::Claim.from_sql()
            ));
            tx.execute(&sql).await?;
        }
        ids.iter()
            .map(|id| {
                claims
                    .get(id)
                    .cloned()
                    .map(|c| (*id, c))
                    .ok_or_else(|| StoreError::not_found("delivery", id.get()))
            })
            .collect()
    }

    /// Reserves `units` available items of `product` for delivery `id`: all, or none (what
    /// was taken of too few is put back).
    async fn take_stock(
        &self,
        tx: &mut Tx,
        id: DeliveryId,
        product: DigitalProductId,
        units: i64,
        now: Ts,
    ) -> Result<Claim, StoreError> {
        let sql = format!(
            "UPDATE stock_items SET state = 'reserved', delivery_id = $1, reserved_at = $2 \
             WHERE id IN (SELECT id FROM stock_items WHERE product_id = $3 AND state = 'available' \
             ORDER BY id LIMIT $4{}) RETURNING secret",
            tx.backend().skip_locked()
        );
        let secrets: Vec<Vec<u8>> = write!(tx, |c| {
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(id.get())
                .bind(now)
                .bind(product.get())
                .bind(units)
                .fetch_all(c)
                .await
        })?;
        if (secrets.len() as i64) < units {
            if !secrets.is_empty() {
                // A waiting delivery holds no reserved items but these.
                write!(tx, |c| {
                    sqlx::query(
                        "UPDATE stock_items SET state = 'available', delivery_id = NULL, reserved_at = NULL \
                         WHERE delivery_id = $1 AND state = 'reserved'",
                    )
                    .bind(id.get())
                    .execute(c)
                    .await
                    .map(|r| r.rows_affected())
                })?;
            }
            // Counted in the transaction: a claimer never waits for a second connection
            // while it holds one.
            let available: i64 = write!(tx, |c| {
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM stock_items WHERE product_id = $1 AND state = 'available'",
                )
                .bind(product.get())
                .fetch_one(c)
                .await
            })?;
            return Ok(if available >= units {
                Claim::Busy
            } else {
                Claim::Short {
                    needed: units,
                    available,
                }
            });
        }
        secrets
            .iter()
            .map(|sealed| self.open_item(product, sealed))
            .collect::<Result<_, _>>()
            .map(Claim::Claimed)
    }

    /// The items a delivery holds (reserved or delivered), opened, in claim order.
    pub async fn delivery_items(&self, id: DeliveryId) -> Result<Vec<StockItem>, StoreError> {
        let rows: Vec<(i64, Vec<u8>)> = read!(&self.db, |c| {
            sqlx::query_as(
                "SELECT product_id, secret FROM stock_items WHERE delivery_id = $1 ORDER BY id",
            )
            .bind(id.get())
            .fetch_all(c)
            .await
        })?;
        rows.iter()
            .map(|(p, s)| self.open_item(DigitalProductId(*p), s))
            .collect()
    }

    /// A delivery's page key, opened: what its link carries.
    pub async fn delivery_token(&self, id: DeliveryId) -> Result<String, StoreError> {
        self.delivery_tokens(&[id])
            .await?
            .remove(&id)
            .ok_or_else(|| StoreError::not_found("delivery", id.get()))
    }

    /// These deliveries' page keys, opened (those that exist).
    pub async fn delivery_tokens(
        &self,
        ids: &[DeliveryId],
    ) -> Result<std::collections::HashMap<DeliveryId, String>, StoreError> {
        let mut sql = Sql::new("SELECT id, order_id, line_no, token FROM deliveries WHERE id IN ");
        sql.list(ids.iter().map(|i| i.get()));
        let rows: Vec<(i64, i64, i64, Vec<u8>)> = self.db.rows(&sql).await?;
        rows.into_iter()
            .map(|(id, order, line, sealed)| {
                let plain = self
                    .goods
                    .open(&sealed, &token_context(MarketOrderId(order), line))
                    .map_err(|e| StoreError::Corrupt(format!("deliveries.token: {e}")))?;
                let token =
                    String::from_utf8(plain).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                Ok((DeliveryId(id), token))
            })
            .collect()
    }

    /// A delivery's page key for a person: written to the audit log.
    pub async fn delivery_token_audited(
        &self,
        id: DeliveryId,
        actor: &crate::audit::Actor,
    ) -> Result<String, StoreError> {
        let token = self.delivery_token(id).await?;
        let mut tx = self.begin().await?;
        crate::audit::record(
            &mut tx,
            actor,
            "delivery.link",
            &format!("delivery:{}", id.get()),
            &serde_json::json!({}),
        )
        .await?;
        tx.commit().await?;
        Ok(token)
    }

    /// Records a delivery confirmed through `channel` outside the outbox (the delivery page,
    /// or the browser extension): its message (sealed), its items delivered; the order moves
    /// on when all its lines are out. False when the delivery was not sending (delivered
    /// already, or taken back meanwhile).
    pub async fn confirm_delivery(
        &self,
        id: DeliveryId,
        channel: &str,
        message: &str,
        answer: Option<&str>,
    ) -> Result<bool, StoreError> {
        let now = Ts::now();
        let sealed = self.goods.seal(message.as_bytes(), &message_context(id));
        let mut tx = self.begin().await?;
        let n = write!(&mut tx, |c| {
            sqlx::query("UPDATE deliveries SET message = $2 WHERE id = $1 AND state = 'sending'")
                .bind(id.get())
                .bind(sealed)
                .execute(c)
                .await
                .map(|r| r.rows_affected())
        })?;
        if n == 0 {
            return Ok(false);
        }
        let answer = answer.map_or_else(|| format!("confirmed by {channel}"), str::to_owned);
        crate::outbox::page_ready(&mut tx, id, 0, now, Some(&answer)).await?;
        let confirmed = crate::outbox::confirm_in(self, &mut tx, id, now).await?;
        tx.commit().await?;
        Ok(confirmed)
    }

    /// Marks a delivery as waiting for an operator (not enough stock, no product), and its
    /// order as needing attention; `alert` is recorded with it, in the same transaction, when
    /// it was not waiting for one already (then true).
    pub async fn delivery_needs_attention(
        &self,
        id: DeliveryId,
        why: &str,
        alert: Option<&cartwright_core::order::NewEvent>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let mut newly = true;
        let mut order = None;
        for already in [false, true] {
            let sql = if already {
                "UPDATE deliveries SET attention = $2 WHERE id = $1 AND state = 'waiting' RETURNING order_id"
            } else {
                "UPDATE deliveries SET attention = $2 WHERE id = $1 AND state = 'waiting' AND attention IS NULL RETURNING order_id"
            };
            order = write!(&mut tx, |c| {
                sqlx::query_scalar(sql)
                    .bind(id.get())
                    .bind(why)
                    .fetch_optional(c)
                    .await
            })?;
            if order.is_some() {
                newly = !already;
                break;
            }
        }
        let Some(order) = order else {
            return Ok(false);
        };
        self.settle_order(&mut tx, MarketOrderId(order)).await?;
        if newly && let Some(alert) = alert {
            crate::events::insert_events_in(&mut tx, std::slice::from_ref(alert)).await?;
        }
        tx.commit().await?;
        Ok(newly)
    }

    /// Orders with a delivery waiting for `product`'s stock: what an import completes.
    pub async fn orders_waiting_for(
        &self,
        product: DigitalProductId,
    ) -> Result<Vec<MarketOrderId>, StoreError> {
        let ids: Vec<i64> = read!(&self.db, |c| {
            sqlx::query_scalar(
                "SELECT DISTINCT order_id FROM deliveries WHERE product_id = $1 AND state = 'waiting' ORDER BY order_id",
            )
            .bind(product.get())
            .fetch_all(c)
            .await
        })?;
        Ok(ids.into_iter().map(MarketOrderId).collect())
    }

    /// Gives each of these orders its delivery job (one already waiting or running stays).
    pub async fn queue_deliveries(&self, orders: &[MarketOrderId]) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        for order in orders {
            crate::jobs::enqueue_delivery_job(&mut tx, order.get()).await?;
        }
        tx.commit().await
    }

    /// Moves an order to where its deliveries say it stands: delivered when every line went
    /// out, partially delivered when some did, delivering while goods are claimed, needing
    /// attention while a line waits for an operator.
    pub(crate) async fn settle_order(
        &self,
        tx: &mut Tx,
        order: MarketOrderId,
    ) -> Result<(), StoreError> {
        self.settle_orders(tx, &[order]).await
    }

    /// [`Store::settle_order`] for many orders: a few statements for all of them.
    pub(crate) async fn settle_orders(
        &self,
        tx: &mut Tx,
        orders: &[MarketOrderId],
    ) -> Result<(), StoreError> {
        #[derive(sqlx::FromRow)]
        struct Line {
            order_id: i64,
            state: String,
            stuck: bool,
        }
        if orders.is_empty() {
            return Ok(());
        }
        let mut sql = Sql::new(
            "SELECT order_id, state, attention IS NOT NULL AS stuck FROM deliveries WHERE order_id IN ",
        );
        sql.list(orders.iter().map(|o| o.get()));
        let lines: Vec<Line> = tx.rows(&sql).await?;
        let mut sql = Sql::new("SELECT id, state FROM market_orders WHERE id IN ");
        sql.list(orders.iter().map(|o| o.get()))
            .push(" ORDER BY id");
        let states: Vec<(i64, String)> = tx.rows(&sql).await?;
        // The orders to move, by move.
        let mut moves: Vec<(MarketMove, Vec<MarketOrderId>)> = Vec::new();
        for (order, state) in states {
            let rows: Vec<(&str, bool)> = lines
                .iter()
                .filter(|l| l.order_id == order)
                .map(|l| (l.state.as_str(), l.stuck))
                .collect();
            let Some(by) = settled_by(&rows) else {
                continue;
            };
            let state: MarketOrderState = state.parse().map_err(StoreError::Corrupt)?;
            if state == by.to() {
                continue;
            }
            match moves.iter_mut().find(|(m, _)| *m == by) {
                Some((_, ids)) => ids.push(MarketOrderId(order)),
                None => moves.push((by, vec![MarketOrderId(order)])),
            }
        }
        for (by, ids) in moves {
            let moved = self.move_market_orders(tx, &ids, by).await?;
            crate::market::histories(
                tx,
                &moved,
                cartwright_core::market::Source::Cartwright,
                Some(by.to()),
            )
            .await?;
        }
        Ok(())
    }
}

/// Where an order's deliveries (state, waiting for an operator) say it stands: delivered when
/// every line went out, partially delivered when some did, delivering while goods are
/// claimed, needing attention while a line waits for an operator; `None` for no move.
fn settled_by(rows: &[(&str, bool)]) -> Option<MarketMove> {
    let count = |s: &str| rows.iter().filter(|(x, _)| *x == s).count();
    let (waiting, delivered) = (count("waiting"), count("delivered"));
    // A line waits for an operator while it is short of stock (waiting) or no channel could
    // send it (sending): only the lines still on their way count as sending.
    let stuck = rows
        .iter()
        .any(|(s, a)| *a && (*s == "waiting" || *s == "sending"));
    let sending = rows.iter().filter(|(s, a)| *s == "sending" && !*a).count();
    let all_sending = count("sending");
    if delivered > 0 && waiting + all_sending == 0 {
        Some(MarketMove::Deliver)
    } else if delivered > 0 && stuck && sending == 0 {
        Some(MarketMove::DeliverPart)
    } else if stuck && sending == 0 {
        Some(MarketMove::NeedAttention)
    } else if all_sending > 0 || waiting > 0 {
        Some(MarketMove::StartDelivery)
    } else {
        None
    }
}

/// The order a delivery belongs to, read for `tx`'s work.
pub(crate) async fn order_of(
    store: &Store,
    tx: &mut Tx,
    id: DeliveryId,
) -> Result<MarketOrder, StoreError> {
    let order = order_id_of(tx, id).await?;
    store.market_order_in(tx, order).await
}

/// The order a delivery belongs to, inside `tx`.
async fn order_id_of(tx: &mut Tx, id: DeliveryId) -> Result<MarketOrderId, StoreError> {
    let order: Option<i64> = write!(tx, |c| {
        sqlx::query_scalar("SELECT order_id FROM deliveries WHERE id = $1")
            .bind(id.get())
            .fetch_optional(c)
            .await
    })?;
    order
        .map(MarketOrderId)
        .ok_or_else(|| StoreError::not_found("delivery", id.get()))
}
